/*
 * fuzz_message: property checks of message wire preparation. Any input is a
 * message; a naive, obviously correct normaliser written here is the oracle.
 * For both encodings: success exactly when the oracle finds no NUL, no long
 * line and some bytes; BDAT equals the oracle; DATA is well formed and
 * unstuffs to BDAT; scan, prepare, prepare_alloc and the facts all agree;
 * the bound holds and the exact wire_len is enough. The same again for the
 * input in wire form (BDAT's fast path). Violations abort().
 */
#include "message.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ASSERT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

/* What the oracle says about the input, normalised octet by octet. */
struct oracle {
    unsigned char *norm;
    size_t len;
    size_t lines;
    size_t line_max;
    int eightbit;
    int first_err;     /* the first octet that breaks a rule: what it breaks */
    size_t first_line; /* and its 1-based line */
};

static void oracle_build(const uint8_t *in, size_t size, struct oracle *o)
{
    size_t cur = 0;

    memset(o, 0, sizeof(*o));
    o->norm = malloc(2 * size + 2);
    ASSERT(o->norm);
    for (size_t i = 0; i < size; i++) {
        uint8_t c = in[i];
        if (c == '\r' || c == '\n') {
            if (c == '\r' && i + 1 < size && in[i + 1] == '\n')
                i++;
            o->norm[o->len++] = '\r';
            o->norm[o->len++] = '\n';
            o->lines++;
            cur = 0;
            continue;
        }
        o->norm[o->len++] = c;
        cur++;
        if (c >= 0x80)
            o->eightbit = 1;
        if (!o->first_err && (c == 0 || cur > MESSAGE_LINE_MAX)) {
            o->first_err = c == 0 ? MESSAGE_E_NUL : MESSAGE_E_LINE_TOO_LONG;
            o->first_line = o->lines + 1;
        }
        if (cur > o->line_max)
            o->line_max = cur;
    }
    if (size > 0 && in[size - 1] != '\r' && in[size - 1] != '\n') {
        o->norm[o->len++] = '\r';
        o->norm[o->len++] = '\n';
        o->lines++;
    }
}

static void check_facts_equal(const struct message_facts *a, const struct message_facts *b)
{
    ASSERT(a->size == b->size);
    ASSERT(a->wire_len == b->wire_len);
    ASSERT(a->lines == b->lines);
    ASSERT(a->line_max == b->line_max);
    ASSERT(a->eightbit == b->eightbit);
    ASSERT(a->bad_line == b->bad_line);
}

/* Well-formed DATA: CRLF only, short lines, one terminator at the end. */
static void check_data_shape(const unsigned char *w, size_t n)
{
    size_t start = 0;

    ASSERT(n >= 5 && memcmp(w + n - 5, "\r\n.\r\n", 5) == 0);
    for (size_t i = 0; i < n; i++) {
        if (w[i] == '\r')
            ASSERT(i + 1 < n && w[i + 1] == '\n');
        if (w[i] != '\n')
            continue;
        ASSERT(i > 0 && w[i - 1] == '\r');
        {
            size_t line = i + 1 - start; /* CRLF included */
            int is_last = i + 1 == n;
            int lone_dot = line == 3 && w[start] == '.';
            /* RFC 5321 4.5.3.1.6: the dot added for transparency is not counted. */
            int stuffed = w[start] == '.' && !is_last;
            ASSERT(lone_dot == is_last);
            ASSERT(line - (size_t)stuffed <= MESSAGE_LINE_MAX + 2);
        }
        start = i + 1;
    }
    ASSERT(start == n);
}

static void check_encoding(const uint8_t *in, size_t size, enum message_encoding enc,
                           const struct oracle *o)
{
    size_t bound = message_wire_bound(size, enc);
    unsigned char *out = malloc(bound);
    struct message_facts f, sf, af;
    char *aout = NULL;
    size_t alen = 0;
    int rc, src, arc;

    ASSERT(out);
    memset(&f, 0xa5, sizeof(f));
    rc = message_prepare(in, size, enc, out, bound, &f);
    src = message_scan(in, size, enc, &sf);
    arc = message_prepare_alloc(in, size, enc, &aout, &alen, &af);
    ASSERT(rc == src && rc == arc);
    check_facts_equal(&f, &sf);
    check_facts_equal(&f, &af);

    /* Errors exactly when the oracle sees a reason, the first one in order. */
    if (size == 0) {
        ASSERT(rc == -MESSAGE_E_EMPTY);
    } else if (o->first_err) {
        ASSERT(rc == -o->first_err);
        ASSERT(f.bad_line == o->first_line);
    } else {
        ASSERT(rc == 0);
    }
    if (rc != 0) {
        ASSERT(aout == NULL && alen == 0);
        goto out;
    }

    ASSERT(f.wire_len <= bound);
    ASSERT(alen == f.wire_len && memcmp(aout, out, alen) == 0);
    ASSERT(f.size == o->len);
    ASSERT(f.lines == o->lines);
    ASSERT(f.line_max == o->line_max);
    ASSERT(f.eightbit == o->eightbit);
    ASSERT(f.eightbit == message_has_8bit(in, size));
    ASSERT(f.bad_line == 0);

    if (enc == MESSAGE_ENC_BDAT) {
        ASSERT(f.wire_len == o->len && memcmp(out, o->norm, o->len) == 0);
    } else {
        unsigned char *back = malloc(f.wire_len);
        long n;
        ASSERT(back);
        check_data_shape(out, f.wire_len);
        n = message_unstuff(out, f.wire_len, back, f.wire_len);
        ASSERT(n >= 0 && (size_t)n == o->len && memcmp(back, o->norm, o->len) == 0);
        free(back);
    }

    /* The exact size is enough (ASan guards its end); one less is not. */
    {
        unsigned char *exact = malloc(f.wire_len);
        struct message_facts ef;
        ASSERT(exact);
        ASSERT(message_prepare(in, size, enc, exact, f.wire_len, &ef) == 0);
        ASSERT(memcmp(exact, out, f.wire_len) == 0);
        check_facts_equal(&f, &ef);
        free(exact);
        exact = malloc(f.wire_len - 1);
        ASSERT(exact);
        ASSERT(message_prepare(in, size, enc, exact, f.wire_len - 1, &ef) == -MESSAGE_E_SPACE);
        ASSERT(ef.wire_len == f.wire_len);
        free(exact);
    }
out:
    free(aout);
    free(out);
}

/* message_unstuff on arbitrary bytes: safe, and never longer than its input. */
static void check_unstuff_raw(const uint8_t *in, size_t size)
{
    unsigned char *a = malloc(size + 1), *b = malloc(size + 1);
    long n, m;

    ASSERT(a && b);
    n = message_unstuff(in, size, a, size);
    ASSERT(n == -MESSAGE_E_BAD_WIRE || (n >= 0 && (size_t)n + 3 <= size));
    if (size)
        memcpy(b, in, size);
    m = message_unstuff(b, size, b, size);
    ASSERT(m == n);
    if (n >= 0) {
        ASSERT(memcmp(a, b, (size_t)n) == 0);
        ASSERT(!memchr(a, '\n', (size_t)n) || a[n - 1] == '\n');
        if (n > 0)
            ASSERT(message_unstuff(in, size, a, (size_t)n - 1) == -MESSAGE_E_SPACE);
    }
    free(a);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct oracle o;

    oracle_build(data, size, &o);
    check_encoding(data, size, MESSAGE_ENC_BDAT, &o);
    check_encoding(data, size, MESSAGE_ENC_DATA, &o);
    check_unstuff_raw(data, size);
    /* The input in wire form (CRLF only) as well: that is what takes BDAT's
     * block-at-a-time path, which random octets would seldom reach. */
    if (size) {
        struct oracle w;
        oracle_build(o.norm, o.len, &w);
        check_encoding(o.norm, o.len, MESSAGE_ENC_BDAT, &w);
        check_encoding(o.norm, o.len, MESSAGE_ENC_DATA, &w);
        free(w.norm);
    }
    free(o.norm);
    return 0;
}
