/* commands: the subcommands of the ringmail binary, one function each. */
#ifndef RINGMAIL_COMMANDS_H
#define RINGMAIL_COMMANDS_H

/* argv[0] is the command's name; returns the process exit status. */
int cmd_send(int argc, char **argv);
int cmd_check_config(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_enqueue(int argc, char **argv);
int cmd_probe(int argc, char **argv);

#endif
