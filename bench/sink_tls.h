/*
 * sink_tls: the OpenSSL server context of ringmail-sink. The sink lets the
 * SSL object own a socket BIO on the non-blocking fd in both directions:
 * that is what lets OpenSSL 3.0 install kTLS keys for TX and RX
 * (SSL_OP_ENABLE_KTLS); io_uring only says when the fd is ready.
 */
#ifndef RINGMAIL_SINK_TLS_H
#define RINGMAIL_SINK_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

struct sink_tls_opts {
    const char *cert; /* PEM, chain allowed (leaf first) */
    const char *key;
    const char *versions;     /* "1.2-1.3" (default), "1.3", "1.0-1.1", ... */
    const char *ciphers;      /* TLS <= 1.2 cipher list; NULL: OpenSSL's default */
    const char *ciphersuites; /* TLS 1.3; NULL: OpenSSL's default */
    bool read_ahead;
    /* No SSL_OP_ENABLE_KTLS: OpenSSL 3.0 cannot send a KeyUpdate on a kTLS
     * socket, and a kTLS test may want to count only its client's offload. */
    bool no_ktls;
};

/* "1.0".."1.3" or "A-B" into TLS1_VERSION.. constants. 0, or -1. */
int sink_tls_parse_versions(const char *spec, int *min, int *max);

/* A server context, or NULL with the reason (OpenSSL's queue included) in err. */
SSL_CTX *sink_tls_ctx_new(const struct sink_tls_opts *o, char *err, size_t errlen);

#endif
