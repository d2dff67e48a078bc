/*
 * sink_bio: an OpenSSL read BIO over a buffer the connection owns.
 *
 * io_uring receives ciphertext into the buffer; SSL_read takes it from
 * there. A memory BIO (BIO_s_mem) would copy every byte once more on the
 * way in (BIO_write) and zero its growing buffer: 7 % of the sink's CPU at
 * 1 MB messages, on the core that bounds the benchmark's transport figures.
 */
#ifndef RINGMAIL_SINK_BIO_H
#define RINGMAIL_SINK_BIO_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/bio.h>

struct sink_cin {
    char *buf;
    size_t cap;
    size_t off, len; /* unread ciphertext is buf[off, len) */
    bool eof;        /* the peer closed: EOF once the buffer is empty */
};

/* A BIO reading from in, which must outlive it; NULL without memory.
 * Reads copy out of buf[off, len) and "retry" when it is empty (until eof);
 * the caller refills the buffer only once it is empty. */
BIO *sink_bio_new(struct sink_cin *in);

/* Frees the BIO_METHOD (at exit, after every SSL is freed). */
void sink_bio_cleanup(void);

#endif
