/*
 * tls_out: the send path of a connection whose kernel does not encrypt
 * (kTLS TX off): plaintext pieces coalesced into full records by SSL_write,
 * and the resulting ciphertext kept in chunks that never move, so that the
 * caller can SEND (or SEND_ZC) straight from them while more is encrypted
 * behind, and consume them as the sends complete.
 */
#include "tls_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>

/* Plaintext per record: OpenSSL's default maximum (tls.c leaves it alone:
 * OpenSSL 3.0 refuses kTLS for any other max_send_fragment). */
#define RECORD_PLAIN 16384
/* Ciphertext added per record, rounded up: header 5, explicit nonce 8 (1.2
 * GCM), tag 16, inner content type 1 (1.3). */
#define RECORD_OVERHEAD 32
/* Smallest chunk: one full record and then some, so a burst of small records
 * shares one allocation. */
#define CHUNK_MIN (RECORD_PLAIN + 512)
/* Largest single chunk: a bigger burst spans several. */
#define CHUNK_MAX ((size_t)4 << 20)

void tls_outq_clear(struct tls_outq *q)
{
    struct tls_chunk *ch = q->head, *next;
    for (; ch; ch = next) {
        next = ch->next;
        free(ch);
    }
    memset(q, 0, sizeof(*q));
}

/* Make room for need contiguous bytes at the tail, so that a burst encrypted
 * in one call is one piece to send. */
static int outq_reserve(struct tls_outq *q, size_t need)
{
    struct tls_chunk *ch;
    if (q->tail && q->tail->cap - q->tail->len >= need)
        return 0;
    if (need < CHUNK_MIN)
        need = CHUNK_MIN;
    if (need > CHUNK_MAX)
        need = CHUNK_MAX;
    ch = malloc(sizeof(*ch) + need);
    if (!ch)
        return -1;
    ch->next = NULL;
    ch->len = 0;
    ch->cap = need;
    if (q->tail) {
        q->tail->cap = q->tail->len; /* closed: later bytes go to the new chunk */
        q->tail->next = ch;
    } else {
        q->head = ch;
    }
    q->tail = ch;
    return 0;
}

static int outq_append(struct tls_outq *q, const void *data, size_t len)
{
    const unsigned char *p = data;
    while (len) {
        struct tls_chunk *t = q->tail;
        size_t take;
        if (!t || t->len == t->cap) {
            if (outq_reserve(q, len) < 0)
                return -1;
            t = q->tail;
        }
        take = t->cap - t->len;
        if (take > len)
            take = len;
        memcpy(t->data + t->len, p, take);
        t->len += take;
        q->len += take;
        p += take;
        len -= take;
    }
    return 0;
}

/* The write BIO over the queue: it takes everything, so SSL_write never
 * returns WANT_WRITE in this mode and the caller bounds the queue. */
static int outq_bio_write(BIO *b, const char *data, size_t len, size_t *written)
{
    BIO_clear_retry_flags(b);
    if (outq_append(BIO_get_data(b), data, len) < 0) {
        ERR_raise(ERR_LIB_BIO, ERR_R_MALLOC_FAILURE);
        return 0;
    }
    *written = len;
    return 1;
}

static long outq_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    /* Flushing is the caller's SEND; nothing else applies (no kTLS here). */
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

/* One method for the process: BIO type indexes are a small process-wide
 * range, so one per ctx would run out across reloads. */
static CRYPTO_ONCE outq_once = CRYPTO_ONCE_STATIC_INIT;
static BIO_METHOD *outq_method;

static void outq_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ringmail tls out");
    if (m && BIO_meth_set_write_ex(m, outq_bio_write) && BIO_meth_set_ctrl(m, outq_bio_ctrl)) {
        outq_method = m;
        return;
    }
    BIO_meth_free(m);
}

BIO *tls_outq_bio_new(struct tls_outq *q)
{
    BIO *b;
    if (!CRYPTO_THREAD_run_once(&outq_once, outq_method_init) || !outq_method)
        return NULL;
    b = BIO_new(outq_method);
    if (b) {
        BIO_set_data(b, q);
        BIO_set_init(b, 1);
    }
    return b;
}

/* ---- encrypting and handing out ciphertext ---- */

static int write_all(struct tls_conn *c, const unsigned char *p, size_t len)
{
    while (len) {
        size_t w = 0;
        int r, saved;
        ERR_clear_error();
        errno = 0;
        /* Partial-write mode returns after each record: loop. */
        r = SSL_write_ex(c->ssl, p, len, &w);
        if (r != 1) {
            saved = errno;
            tls_fail_classify(c, SSL_get_error(c->ssl, r), saved);
            return -1;
        }
        p += w;
        len -= w;
    }
    return 0;
}

int tls_conn_encrypt(struct tls_conn *c, const struct iovec *iov, size_t n)
{
    unsigned char stage[RECORD_PLAIN];
    size_t used = 0, total = 0, i;

    if (c->state != TLS_ST_READY) {
        if (c->state != TLS_ST_FAILED)
            tls_fail(c, TLS_ERR_LOCAL, "encrypt %s",
                     c->state == TLS_ST_HANDSHAKE ? "before the handshake completed"
                                                  : "after shutdown");
        return -1;
    }
    if (c->ktls_tx) {
        tls_fail(c, TLS_ERR_LOCAL, "encrypt with kTLS TX on: send plaintext on the socket");
        return -1;
    }
    for (i = 0; i < n; i++)
        total += iov[i].iov_len;
    if (!total)
        return 0;
    if (outq_reserve(&c->out, total + (total / RECORD_PLAIN + 2) * RECORD_OVERHEAD) < 0) {
        tls_fail(c, TLS_ERR_LOCAL, "out of memory for ciphertext");
        return -1;
    }
    /* Full records: small pieces are gathered in stage (one copy of a few
     * bytes), whole records of a large piece go to SSL_write in place. */
    for (i = 0; i < n; i++) {
        const unsigned char *p = iov[i].iov_base;
        size_t len = iov[i].iov_len;
        while (len) {
            size_t take;
            if (used == 0 && len >= RECORD_PLAIN) {
                take = i + 1 == n ? len : len - len % RECORD_PLAIN;
                if (write_all(c, p, take) < 0)
                    return -1;
                p += take;
                len -= take;
                continue;
            }
            take = RECORD_PLAIN - used;
            if (take > len)
                take = len;
            memcpy(stage + used, p, take);
            used += take;
            p += take;
            len -= take;
            if (used == RECORD_PLAIN) {
                if (write_all(c, stage, used) < 0)
                    return -1;
                used = 0;
            }
        }
    }
    if (used && write_all(c, stage, used) < 0)
        return -1;
    return 0;
}

size_t tls_conn_pending_len(const struct tls_conn *c)
{
    return c->out.len;
}

size_t tls_conn_pending_iov(const struct tls_conn *c, size_t skip, struct iovec *iov, size_t max)
{
    const struct tls_chunk *ch;
    size_t k = 0, off = c->out.off;
    for (ch = c->out.head; ch && k < max; ch = ch->next, off = 0) {
        size_t avail = ch->len - off;
        if (skip >= avail) {
            skip -= avail;
            continue;
        }
        iov[k].iov_base = (void *)(ch->data + off + skip);
        iov[k].iov_len = avail - skip;
        skip = 0;
        k++;
    }
    return k;
}

int tls_conn_pending_out(const struct tls_conn *c, const void **ptr, size_t *len)
{
    struct iovec v;
    if (tls_conn_pending_iov(c, 0, &v, 1) == 0) {
        *ptr = NULL;
        *len = 0;
        return 0;
    }
    *ptr = v.iov_base;
    *len = v.iov_len;
    return 1;
}

void tls_conn_consume_out(struct tls_conn *c, size_t n)
{
    struct tls_outq *q = &c->out;
    if (n > q->len)
        n = q->len; /* a caller bug, but never walk off the end */
    q->len -= n;
    /* Free every chunk consumed to its end (the open tail too: an idle
     * connection holds no ciphertext memory). */
    while (q->head) {
        struct tls_chunk *h = q->head;
        size_t avail = h->len - q->off;
        if (n < avail) {
            q->off += n;
            break;
        }
        n -= avail;
        q->head = h->next;
        q->off = 0;
        free(h);
    }
    if (!q->head)
        q->tail = NULL;
}
