/*
 * config_secret: the one loader of password files (redis.password_file, a
 * relay's password_file, `ringmail send --password-file`), for every
 * subcommand. read(2) into a buffer of ours, no stdio: a FILE's buffer
 * would keep a copy of the secret in freed memory. Every copy made here is
 * wiped with explicit_bzero before it is released.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

int config_secret_load(const char *path, size_t max, char *out, char *err, size_t errlen)
{
    /* Room for the longest secret, its "\r\n", and one octet more to see
     * that a file is too long without reading all of it. */
    char buf[CONFIG_SECRET_MAX + 3];
    size_t n = 0, want;
    int fd, rc = -1;

    out[0] = 0;
    if (max == 0 || max > CONFIG_SECRET_MAX) {
        snprintf(err, errlen, "%s: secret limit %zu is out of range", path, max);
        return -1;
    }
    want = max + 3;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    while (n < want) {
        ssize_t k = read(fd, buf + n, want - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
            goto out;
        }
        if (k == 0)
            break;
        n += (size_t)k;
    }
    /* One line end is how editors and `echo` leave a file; more is not
     * part of any password we could send. */
    if (n > 0 && buf[n - 1] == '\n')
        n -= n > 1 && buf[n - 2] == '\r' ? 2 : 1;
    if (n > max) {
        snprintf(err, errlen, "%s: the secret is longer than %zu octets", path, max);
    } else if (n == 0) {
        snprintf(err, errlen, "%s: the file is empty (no secret in it)", path);
    } else if (memchr(buf, '\0', n)) {
        snprintf(err, errlen, "%s: the secret contains a NUL octet", path);
    } else if (memchr(buf, '\n', n) || memchr(buf, '\r', n)) {
        snprintf(err, errlen,
                 "%s: the secret spans several lines (only one trailing line end is allowed)",
                 path);
    } else {
        memcpy(out, buf, n);
        out[n] = 0;
        rc = 0;
    }
out:
    explicit_bzero(buf, sizeof(buf));
    close(fd);
    return rc;
}
