/*
 * ringmail: the command-line entry point. Subcommands are looked up in one
 * table so that --help always lists exactly what the binary can do.
 * Exit codes follow sysexits(3): 0 success, 64 usage error.
 */
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "commands.h"
#include "version.h"

struct command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
};

static int cmd_version(int argc, char **argv);
static int cmd_help(int argc, char **argv);

static const struct command commands[] = {
    {"help", "show this help", cmd_help},
    {"run", "run the engine: consume jobs from Redis and deliver them", cmd_run},
    {"enqueue", "add mail jobs to the Redis stream (scripts, demos, load)", cmd_enqueue},
    {"send", "send a message file to a relay under the TLS policy", cmd_send},
    {"probe", "grade an SMTP server's TLS (STARTTLS, certificate, versions, ciphers)", cmd_probe},
    {"check-config", "validate a configuration file without running", cmd_check_config},
    {"version", "print the version", cmd_version},
};

static void usage(FILE *f)
{
    size_t i;
    fprintf(f, "Usage: ringmail [--help] [--version] COMMAND [ARGS...]\n"
               "\n"
               "ringmail is a high-throughput SMTP mail engine: jobs from Redis, persistent\n"
               "connections with STARTTLS required, io_uring sockets, kernel TLS offload.\n"
               "\n"
               "Commands:\n");
    for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n"
               "Options:\n"
               "  -h, --help     show this help and exit\n"
               "  -V, --version  print the version and exit\n"
               "\n"
               "Exit status: 0 on success, 64 on a usage error; each command documents more.\n");
}

static int cmd_help(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    usage(stdout);
    return 0;
}

static int cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("ringmail %s\n", RINGMAIL_VERSION);
    return 0;
}

int main(int argc, char **argv)
{
    size_t i;

    /* Large buffers come and go per message: the ciphertext of a burst
     * (tls_out.c), a 1 MB job and its Redis reply. With glibc's defaults
     * they come and go by mmap/munmap or heap trimming, and every page is
     * faulted in and zeroed again: 30% of the sender's system time at 1 MB
     * messages. Keep them in the heap, and give memory back only past
     * 512 MiB free. */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);

    if (argc < 2) {
        usage(stderr);
        return EX_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
        return cmd_help(argc - 1, argv + 1);
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)
        return cmd_version(argc - 1, argv + 1);
    for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "ringmail: unknown command '%s' (see 'ringmail --help')\n", argv[1]);
    return EX_USAGE;
}
