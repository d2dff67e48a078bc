/*
 * tls_internal: what the files of the tls module (tls.c, tls_out.c,
 * tls_verify.c, tls_facts.c) share. Not for other modules: they use tls.h.
 */
#ifndef RINGMAIL_TLS_INTERNAL_H
#define RINGMAIL_TLS_INTERNAL_H

#include <time.h>

#include <openssl/ssl.h>

#include "tls.h"

#define TLS_PIN_LEN TLS_PIN_OCTETS /* SHA-256 */

struct tls_ctx {
    SSL_CTX *ssl_ctx;
    BIO_METHOD *out_method; /* the ciphertext queue as a write BIO (kTLS TX off) */
    char *servername;       /* NULL when the policy had none (verification off) */
    int servername_is_ip;
    int verify;
    unsigned char (*pins)[TLS_PIN_LEN];
    size_t npins;
    SSL_SESSION *session; /* latest resumable session of a fully checked conn */
    unsigned refs;        /* the caller's, plus one per live conn */
};

/* Pending ciphertext: a list of chunks that never move, so that the caller
 * may SEND (or SEND_ZC) from them while more is encrypted behind. */
struct tls_chunk {
    struct tls_chunk *next;
    size_t len; /* bytes written */
    size_t cap; /* bytes writable; lowered to len to close a chunk early */
    unsigned char data[];
};

struct tls_outq {
    struct tls_chunk *head, *tail;
    size_t off; /* bytes of head already consumed */
    size_t len; /* bytes pending, all chunks */
};

enum tls_conn_state {
    TLS_ST_HANDSHAKE = 1,
    TLS_ST_READY = 2,
    TLS_ST_SHUTDOWN = 3, /* close_notify queued */
    TLS_ST_FAILED = 4,
};

struct tls_conn {
    struct tls_ctx *ctx;
    SSL *ssl;
    int fd;
    enum tls_conn_state state;
    int checked; /* handshake done and pins matched: sessions may be kept */
    int ktls_tx;
    int key_stale;
    int eof_fed;
    struct timespec t0;
    int t0_set;
    SSL_SESSION *pending_session; /* from the handshake, kept once checked */
    struct tls_outq out;
    enum tls_err err;
    char detail[TLS_DETAIL_MAX];
    struct tls_facts facts;
};

/* tls_verify.c */

/* Parse policy pins into ctx->pins; -1 with err written on a bad one. */
int tls_pins_parse(struct tls_ctx *ctx, const char *const *pins, size_t npins, char *err,
                   size_t errlen);
/* 1 when a pin matches the leaf (or, verification on, the verified chain). */
int tls_pins_match(const struct tls_ctx *ctx, SSL *ssl);
/* Classify the failure of an SSL call (ssl_error: SSL_get_error(), sys_errno:
 * errno right after the call) into c->err and c->detail, and clear
 * OpenSSL's error queue. */
void tls_fail_classify(struct tls_conn *c, int ssl_error, int sys_errno);
/* Mark c failed with err and a printf-style detail. */
void tls_fail(struct tls_conn *c, enum tls_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The reason of the first error queued in OpenSSL ("No such file or
 * directory", "no certificate or crl found"), into buf. */
const char *tls_ossl_reason(char *buf, size_t len);

/* tls_out.c */

/* A write BIO that appends to q and never refuses (NULL: out of memory). */
BIO *tls_outq_bio_new(struct tls_outq *q);
void tls_outq_clear(struct tls_outq *q);

/* tls_facts.c */

/* Fill the facts of a connection whose handshake just completed. */
void tls_facts_collect(struct tls_conn *c);

#endif
