/* cli_util: small helpers the subcommands share (files, names); password
 * files are read by config_secret_load() (config.h). */
#ifndef RINGMAIL_CLI_UTIL_H
#define RINGMAIL_CLI_UTIL_H

#include <stddef.h>
#include <sys/socket.h>

/* Monotonic seconds. */
double cli_now_s(void);

/* The whole file, from malloc (a NUL after it), or NULL with errno (EFBIG
 * past limit octets). */
char *cli_read_file(const char *path, size_t *len, size_t limit);

/* The first address of host:port. 0, or -1 with the resolver's reason. */
int cli_resolve(const char *host, unsigned port, struct sockaddr_storage *ss, socklen_t *len,
                char *err, size_t errlen);

#endif
