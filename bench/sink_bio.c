/*
 * sink_bio: the read BIO over a connection's receive buffer (sink_bio.h).
 */
#include "sink_bio.h"

#include <string.h>

static BIO_METHOD *method;

static int cin_read(BIO *b, char *out, size_t n, size_t *got)
{
    struct sink_cin *in = BIO_get_data(b);
    size_t k = in->len - in->off;

    BIO_clear_retry_flags(b);
    *got = 0;
    if (k == 0) {
        if (in->eof)
            return 0;
        BIO_set_retry_read(b);
        return 0;
    }
    if (k > n)
        k = n;
    memcpy(out, in->buf + in->off, k);
    in->off += k;
    if (in->off == in->len)
        in->off = in->len = 0;
    *got = k;
    return 1;
}

/* Writing is not this BIO's job: the sink writes through its own BIO. */
static int cin_write(BIO *b, const char *data, size_t n, size_t *done)
{
    (void)b, (void)data, (void)n;
    *done = 0;
    return 0;
}

static long cin_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    struct sink_cin *in = BIO_get_data(b);

    (void)num, (void)ptr;
    switch (cmd) {
    case BIO_CTRL_PENDING:
        return (long)(in->len - in->off);
    case BIO_CTRL_EOF:
        return in->eof && in->len == in->off;
    case BIO_CTRL_FLUSH:
        return 1;
    default:
        return 0; /* kTLS, push/pop, ...: not this BIO */
    }
}

static int cin_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

BIO *sink_bio_new(struct sink_cin *in)
{
    BIO *b;

    if (!method) {
        method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "sink receive buffer");
        if (!method || !BIO_meth_set_read_ex(method, cin_read) ||
            !BIO_meth_set_write_ex(method, cin_write) || !BIO_meth_set_ctrl(method, cin_ctrl) ||
            !BIO_meth_set_create(method, cin_create)) {
            BIO_meth_free(method);
            method = NULL;
            return NULL;
        }
    }
    if (!(b = BIO_new(method)))
        return NULL;
    BIO_set_data(b, in);
    return b;
}

void sink_bio_cleanup(void)
{
    BIO_meth_free(method);
    method = NULL;
}
