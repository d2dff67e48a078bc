/* cli_util: small helpers the subcommands share (files, secrets, names). */
#ifndef RINGMAIL_CLI_UTIL_H
#define RINGMAIL_CLI_UTIL_H

#include <stddef.h>
#include <sys/socket.h>

/* Monotonic seconds. */
double cli_now_s(void);

/* The whole file, from malloc (a NUL after it), or NULL with errno (EFBIG
 * past limit octets). */
char *cli_read_file(const char *path, size_t *len, size_t limit);

/* The first line of a file (a password file), without its line end. 0, or
 * -1 with "cannot read PATH: reason" in err. Callers wipe out afterwards. */
int cli_read_secret(const char *path, char *out, size_t cap, char *err, size_t errlen);

/* The first address of host:port. 0, or -1 with the resolver's reason. */
int cli_resolve(const char *host, unsigned port, struct sockaddr_storage *ss, socklen_t *len,
                char *err, size_t errlen);

#endif
