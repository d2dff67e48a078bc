/* cli_util: small helpers the subcommands share (files, names); secrets are
 * config_secret_load()'s. */
#include "cli_util.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double cli_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

char *cli_read_file(const char *path, size_t *len, size_t limit)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0;
    if (!f)
        return NULL;
    for (;;) {
        size_t k;
        if (n + 1 >= cap) {
            char *nb;
            cap = cap ? cap * 2 : 65536;
            if (cap > limit + 2)
                cap = limit + 2;
            nb = n + 1 < cap ? realloc(buf, cap) : NULL;
            if (!nb) {
                free(buf);
                fclose(f);
                errno = n >= limit ? EFBIG : ENOMEM;
                return NULL;
            }
            buf = nb;
        }
        k = fread(buf + n, 1, cap - n - 1, f);
        n += k;
        if (k == 0)
            break;
    }
    if (ferror(f)) {
        free(buf);
        fclose(f);
        errno = EIO;
        return NULL;
    }
    fclose(f);
    buf[n] = 0;
    *len = n;
    return buf;
}

int cli_resolve(const char *host, unsigned port, struct sockaddr_storage *ss, socklen_t *len,
                char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    char p[16];
    int rc;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    snprintf(p, sizeof(p), "%u", port);
    rc = getaddrinfo(host, p, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}
