/*
 * test_message: the wire preparation rules, one table row per rule or trap:
 * line-end normalisation, dot-stuffing, the DATA terminator, line limits,
 * NUL, 8-bit detection, the SIZE value, buffer sizes, the output bound and
 * message_unstuff() as the inverse of DATA stuffing.
 */
#include "check.h"
#include "message.h"

#include <stdlib.h>
#include <string.h>

/* A string literal with its length, so rows can hold NUL octets. */
#define S(lit) lit, sizeof(lit) - 1

struct prep_case {
    const char *in;
    size_t in_len;
    const char *bdat; /* NULL: an error for both encodings */
    size_t bdat_len;
    const char *data;
    size_t data_len;
    int err;
    size_t bad_line;
    size_t lines;
    size_t line_max;
    int eightbit;
};

static const struct prep_case prep_cases[] = {
    {S("a\r\nb\r\n"), S("a\r\nb\r\n"), S("a\r\nb\r\n.\r\n"), 0, 0, 2, 1, 0},
    {S("a\nb\n"), S("a\r\nb\r\n"), S("a\r\nb\r\n.\r\n"), 0, 0, 2, 1, 0},
    {S("a\rb\r"), S("a\r\nb\r\n"), S("a\r\nb\r\n.\r\n"), 0, 0, 2, 1, 0},
    {S("a\r\nb\nc\rd"), S("a\r\nb\r\nc\r\nd\r\n"), S("a\r\nb\r\nc\r\nd\r\n.\r\n"), 0, 0, 4, 1, 0},
    {S("no newline"), S("no newline\r\n"), S("no newline\r\n.\r\n"), 0, 0, 1, 10, 0},
    {S("ends with cr\r"), S("ends with cr\r\n"), S("ends with cr\r\n.\r\n"), 0, 0, 1, 12, 0},
    {S("x\r\r\n"), S("x\r\n\r\n"), S("x\r\n\r\n.\r\n"), 0, 0, 2, 1, 0},
    {S("\n\n"), S("\r\n\r\n"), S("\r\n\r\n.\r\n"), 0, 0, 2, 0, 0},
    {S("\r"), S("\r\n"), S("\r\n.\r\n"), 0, 0, 1, 0, 0},
    {S("\n\r"), S("\r\n\r\n"), S("\r\n\r\n.\r\n"), 0, 0, 2, 0, 0},
    {S("\r\n\r"), S("\r\n\r\n"), S("\r\n\r\n.\r\n"), 0, 0, 2, 0, 0},
    /* Dot-stuffing: DATA only, and only at a line start. */
    {S(".\n"), S(".\r\n"), S("..\r\n.\r\n"), 0, 0, 1, 1, 0},
    {S("."), S(".\r\n"), S("..\r\n.\r\n"), 0, 0, 1, 1, 0},
    {S("a\n.\nb\n"), S("a\r\n.\r\nb\r\n"), S("a\r\n..\r\nb\r\n.\r\n"), 0, 0, 3, 1, 0},
    {S("..x\n"), S("..x\r\n"), S("...x\r\n.\r\n"), 0, 0, 1, 3, 0},
    {S("a.b\n.c\r.d\r\n.e"), S("a.b\r\n.c\r\n.d\r\n.e\r\n"), S("a.b\r\n..c\r\n..d\r\n..e\r\n.\r\n"),
     0, 0, 4, 3, 0},
    {S("x\r\n.\r\n"), S("x\r\n.\r\n"), S("x\r\n..\r\n.\r\n"), 0, 0, 2, 1, 0},
    {S(" .\n"), S(" .\r\n"), S(" .\r\n.\r\n"), 0, 0, 1, 2, 0},
    /* 8-bit content: UTF-8 (octal, as hex escapes swallow letters), a lone 0x80, 0xff, DEL. */
    {S("Gr\303\274\303\237e\n"), S("Gr\303\274\303\237e\r\n"), S("Gr\303\274\303\237e\r\n.\r\n"), 0,
     0, 1, 7, 1},
    {S("0123456789abcdef0123456789\x80"), S("0123456789abcdef0123456789\x80\r\n"),
     S("0123456789abcdef0123456789\x80\r\n.\r\n"), 0, 0, 1, 27, 1},
    {S("\xff\n"), S("\xff\r\n"), S("\xff\r\n.\r\n"), 0, 0, 1, 1, 1},
    {S("del \x7f\n"), S("del \x7f\r\n"), S("del \x7f\r\n.\r\n"), 0, 0, 1, 5, 0},
    /* Errors. */
    {S(""), NULL, 0, NULL, 0, MESSAGE_E_EMPTY, 0, 0, 0, 0},
    {S("a\nb\0c\n"), NULL, 0, NULL, 0, MESSAGE_E_NUL, 2, 0, 0, 0},
    {S("\0"), NULL, 0, NULL, 0, MESSAGE_E_NUL, 1, 0, 0, 0},
    {S("a\r\n\r\n\r\0"), NULL, 0, NULL, 0, MESSAGE_E_NUL, 4, 0, 0, 0},
    {S("0123456789abcdef\0"), NULL, 0, NULL, 0, MESSAGE_E_NUL, 1, 0, 0, 0},
};

static void check_prepare(const char *in, size_t in_len, enum message_encoding enc,
                          const char *want, size_t want_len, int err, size_t bad_line,
                          const struct message_facts *want_facts)
{
    size_t bound = message_wire_bound(in_len, enc);
    char *out = malloc(bound);
    struct message_facts f, sf;
    int rc = message_prepare(in, in_len, enc, out, bound, &f);
    int src = message_scan(in, in_len, enc, &sf);

    CHECK_INT(src, rc);
    if (!want) {
        CHECK_INT(rc, -err);
        CHECK_INT(f.bad_line, bad_line);
        CHECK_INT(sf.bad_line, bad_line);
        free(out);
        return;
    }
    CHECK_INT(rc, 0);
    CHECK_MEM(out, f.wire_len, want, want_len);
    CHECK(f.wire_len <= bound);
    CHECK_INT(sf.wire_len, f.wire_len);
    CHECK_INT(sf.size, f.size);
    CHECK_INT(sf.lines, f.lines);
    CHECK_INT(sf.line_max, f.line_max);
    CHECK_INT(sf.eightbit, f.eightbit);
    CHECK_INT(f.bad_line, 0);
    if (want_facts) {
        CHECK_INT(f.size, want_facts->size);
        CHECK_INT(f.lines, want_facts->lines);
        CHECK_INT(f.line_max, want_facts->line_max);
        CHECK_INT(f.eightbit, want_facts->eightbit);
    }
    /* The exact size is enough, one octet less is not, and the message
       errors are not masked by the space one. */
    if (rc == 0 && f.wire_len > 0) {
        char *exact = malloc(f.wire_len);
        struct message_facts ef;
        CHECK_INT(message_prepare(in, in_len, enc, exact, f.wire_len, &ef), 0);
        CHECK_MEM(exact, ef.wire_len, want, want_len);
        CHECK_INT(message_prepare(in, in_len, enc, exact, f.wire_len - 1, &ef), -MESSAGE_E_SPACE);
        CHECK_INT(ef.wire_len, f.wire_len);
        CHECK_INT(message_prepare(in, in_len, enc, NULL, 0, &ef), -MESSAGE_E_SPACE);
        free(exact);
    }
    free(out);
}

static void test_prepare_table(void)
{
    for (size_t i = 0; i < sizeof(prep_cases) / sizeof(prep_cases[0]); i++) {
        const struct prep_case *c = &prep_cases[i];
        struct message_facts want = {0};
        want.size = c->bdat_len;
        want.lines = c->lines;
        want.line_max = c->line_max;
        want.eightbit = c->eightbit;
        check_prepare(c->in, c->in_len, MESSAGE_ENC_BDAT, c->bdat, c->bdat_len, c->err, c->bad_line,
                      &want);
        check_prepare(c->in, c->in_len, MESSAGE_ENC_DATA, c->data, c->data_len, c->err, c->bad_line,
                      &want);
    }
}

/* Lines at and past the limit, built at run time. */
struct long_case {
    const char *prefix; /* lines before the long one */
    size_t octets;      /* length of the long line, line end excluded */
    char first;         /* its first octet */
    const char *eol;    /* its line end ("" for none) */
    int err;
    size_t bad_line;
};

static const struct long_case long_cases[] = {
    {"", 998, 'x', "\n", 0, 0},
    {"", 998, 'x', "\r\n", 0, 0},
    {"", 998, 'x', "\r", 0, 0},
    {"", 998, 'x', "", 0, 0},
    {"", 998, '.', "\r\n", 0, 0}, /* 999 on the wire: the stuffed dot is not counted */
    {"", 999, 'x', "\n", MESSAGE_E_LINE_TOO_LONG, 1},
    {"", 999, 'x', "\r\n", MESSAGE_E_LINE_TOO_LONG, 1},
    {"", 999, 'x', "", MESSAGE_E_LINE_TOO_LONG, 1},
    {"a\nb\r\n\r", 999, 'x', "\n", MESSAGE_E_LINE_TOO_LONG, 4},
    {"a\nb\r\n\r", 5000, 'x', "", MESSAGE_E_LINE_TOO_LONG, 4},
    {"", 999, '.', "\n", MESSAGE_E_LINE_TOO_LONG, 1},
};

static void test_long_lines(void)
{
    for (size_t i = 0; i < sizeof(long_cases) / sizeof(long_cases[0]); i++) {
        const struct long_case *c = &long_cases[i];
        size_t plen = strlen(c->prefix), elen = strlen(c->eol);
        size_t in_len = plen + c->octets + elen;
        char *in = malloc(in_len), *norm = malloc(in_len + 2), *stuffed = malloc(in_len + 6);
        size_t nlen, slen;

        memcpy(in, c->prefix, plen);
        memset(in + plen, 'x', c->octets);
        in[plen] = c->first;
        memcpy(in + plen + c->octets, c->eol, elen);

        nlen = c->octets;
        memcpy(norm, in + plen, c->octets);
        memcpy(norm + nlen, "\r\n", 2);
        nlen += 2;
        slen = 0;
        if (c->first == '.')
            stuffed[slen++] = '.';
        memcpy(stuffed + slen, norm, nlen);
        slen += nlen;
        memcpy(stuffed + slen, ".\r\n", 3);
        slen += 3;

        if (c->err) {
            check_prepare(in, in_len, MESSAGE_ENC_BDAT, NULL, 0, c->err, c->bad_line, NULL);
            check_prepare(in, in_len, MESSAGE_ENC_DATA, NULL, 0, c->err, c->bad_line, NULL);
        } else {
            struct message_facts want = {nlen, 0, 1, c->octets, 0, 0};
            check_prepare(in, in_len, MESSAGE_ENC_BDAT, norm, nlen, 0, 0, &want);
            check_prepare(in, in_len, MESSAGE_ENC_DATA, stuffed, slen, 0, 0, &want);
        }
        free(in);
        free(norm);
        free(stuffed);
    }
}

/* A NUL is reported where it is met: inside the limit, or after it. */
static void test_nul_vs_long(void)
{
    char in[1200];
    struct message_facts f;

    memset(in, 'x', sizeof(in));
    in[500] = '\0';
    CHECK_INT(message_scan(in, sizeof(in), MESSAGE_ENC_DATA, &f), -MESSAGE_E_NUL);
    CHECK_INT(f.bad_line, 1);
    in[500] = 'x';
    in[1100] = '\0';
    CHECK_INT(message_scan(in, sizeof(in), MESSAGE_ENC_DATA, &f), -MESSAGE_E_LINE_TOO_LONG);
    CHECK_INT(f.bad_line, 1);
    /* A NULL facts pointer is allowed. */
    CHECK_INT(message_scan(in, sizeof(in), MESSAGE_ENC_BDAT, NULL), -MESSAGE_E_LINE_TOO_LONG);
}

/* Inputs that cost the most per octet never exceed the bound. */
static void test_bound(void)
{
    static const char *const units[] = {"\n", "\r", ".\n", ".\r", "\r\n", ".", "\n.", "x"};
    static const size_t counts[] = {1, 2, 3, 997, 998, 999, 4096};

    for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
        for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
            size_t ul = strlen(units[u]), len = ul * counts[k];
            char *in = malloc(len);
            for (size_t i = 0; i < counts[k]; i++)
                memcpy(in + i * ul, units[u], ul);
            for (int e = MESSAGE_ENC_DATA; e <= MESSAGE_ENC_BDAT; e++) {
                struct message_facts f;
                size_t bound = message_wire_bound(len, (enum message_encoding)e);
                char *out = malloc(bound);
                int rc = message_prepare(in, len, (enum message_encoding)e, out, bound, &f);
                if (rc == 0)
                    CHECK(f.wire_len <= bound);
                else
                    CHECK_INT(rc, -MESSAGE_E_LINE_TOO_LONG);
                free(out);
            }
            free(in);
        }
    }
    /* The bounds are reached, so they are tight. */
    CHECK_INT(message_wire_bound(2, MESSAGE_ENC_DATA), 9);
    CHECK_INT(message_wire_bound(2, MESSAGE_ENC_BDAT), 5);
    CHECK(message_wire_bound((size_t)-1, MESSAGE_ENC_DATA) == (size_t)-1);
    CHECK(message_wire_bound((size_t)-1 / 2, MESSAGE_ENC_BDAT) == (size_t)-1);
}

static void test_alloc(void)
{
    char *out = (char *)1;
    size_t out_len = 99;
    struct message_facts f;
    static const char big_in[] = "line\n";
    char *in;
    size_t len = 100000 * (sizeof(big_in) - 1);

    CHECK_INT(message_prepare_alloc(S(".a\nb"), MESSAGE_ENC_DATA, &out, &out_len, &f), 0);
    CHECK_MEM(out, out_len, "..a\r\nb\r\n.\r\n", 11);
    CHECK_INT(f.size, 7);
    free(out);
    CHECK_INT(message_prepare_alloc(S(".a\nb"), MESSAGE_ENC_BDAT, &out, &out_len, NULL), 0);
    CHECK_MEM(out, out_len, ".a\r\nb\r\n", 7);
    free(out);
    CHECK_INT(message_prepare_alloc(S(""), MESSAGE_ENC_BDAT, &out, &out_len, &f), -MESSAGE_E_EMPTY);
    CHECK(out == NULL);
    CHECK_INT(out_len, 0);
    CHECK_INT(message_prepare_alloc(S("a\0"), MESSAGE_ENC_DATA, &out, &out_len, &f),
              -MESSAGE_E_NUL);
    CHECK(out == NULL);

    /* Large enough for the shrinking realloc. */
    in = malloc(len);
    for (size_t i = 0; i < len; i += sizeof(big_in) - 1)
        memcpy(in + i, big_in, sizeof(big_in) - 1);
    CHECK_INT(message_prepare_alloc(in, len, MESSAGE_ENC_DATA, &out, &out_len, &f), 0);
    CHECK_INT(out_len, 100000 * 6 + 3);
    CHECK_INT(f.size, 100000 * 6);
    CHECK_INT(f.lines, 100000);
    CHECK_MEM(out + out_len - 9, 9, "line\r\n.\r\n", 9);
    free(out);
    free(in);
}

struct unstuff_case {
    const char *in;
    size_t in_len;
    const char *want; /* NULL: BAD_WIRE */
    size_t want_len;
};

static const struct unstuff_case unstuff_cases[] = {
    {S("a\r\n.\r\n"), S("a\r\n")},
    {S("..\r\n.\r\n"), S(".\r\n")},
    {S("...x\r\n..\r\nb\r\n.\r\n"), S("..x\r\n.\r\nb\r\n")},
    {S("\r\n.\r\n"), S("\r\n")},
    {S(".x\r\n.\r\n"), S("x\r\n")}, /* an unstuffed leading dot: removed (RFC 5321 4.5.2) */
    {S(".\r\n"), NULL, 0},          /* an empty message: never ours */
    {S("a\r\n"), NULL, 0},
    {S("a\r\n.\r\nb\r\n.\r\n"), NULL, 0},
    {S(".\r\na\r\n.\r\n"), NULL, 0},
    {S("a\nb\r\n.\r\n"), NULL, 0},
    {S("a\rb\r\n.\r\n"), NULL, 0},
    {S("a\r\r\n.\r\n"), NULL, 0},
    {S("a\r\n.\n"), NULL, 0},
    {S("a\r\n..\r\n"), NULL, 0},
    {S(".\rx\r\n.\r\n"), NULL, 0},
    {S(""), NULL, 0},
};

static void test_unstuff(void)
{
    for (size_t i = 0; i < sizeof(unstuff_cases) / sizeof(unstuff_cases[0]); i++) {
        const struct unstuff_case *c = &unstuff_cases[i];
        char out[64], inplace[64];
        long n = message_unstuff(c->in, c->in_len, out, sizeof(out));

        if (!c->want) {
            CHECK_INT(n, -MESSAGE_E_BAD_WIRE);
            /* A malformed body is not mistaken for a small buffer. */
            CHECK_INT(message_unstuff(c->in, c->in_len, out, 0), -MESSAGE_E_BAD_WIRE);
            continue;
        }
        CHECK_INT(n, (long)c->want_len);
        if (n >= 0)
            CHECK_MEM(out, (size_t)n, c->want, c->want_len);
        CHECK_INT(message_unstuff(c->in, c->in_len, out, c->want_len), (long)c->want_len);
        CHECK_INT(message_unstuff(c->in, c->in_len, out, c->want_len - 1), -MESSAGE_E_SPACE);
        CHECK_INT(message_unstuff(c->in, c->in_len, NULL, 0), -MESSAGE_E_SPACE);
        memcpy(inplace, c->in, c->in_len);
        n = message_unstuff(inplace, c->in_len, inplace, c->in_len);
        CHECK_INT(n, (long)c->want_len);
        if (n >= 0)
            CHECK_MEM(inplace, (size_t)n, c->want, c->want_len);
    }
}

/* unstuff(DATA) == BDAT for every successful row of the prepare table. */
static void test_round_trip(void)
{
    for (size_t i = 0; i < sizeof(prep_cases) / sizeof(prep_cases[0]); i++) {
        const struct prep_case *c = &prep_cases[i];
        char *data, *bdat, *back;
        size_t dlen, blen;
        long n;

        if (!c->bdat)
            continue;
        CHECK_INT(message_prepare_alloc(c->in, c->in_len, MESSAGE_ENC_DATA, &data, &dlen, NULL), 0);
        CHECK_INT(message_prepare_alloc(c->in, c->in_len, MESSAGE_ENC_BDAT, &bdat, &blen, NULL), 0);
        back = malloc(dlen);
        n = message_unstuff(data, dlen, back, dlen);
        CHECK_INT(n, (long)blen);
        if (n >= 0)
            CHECK_MEM(back, (size_t)n, bdat, blen);
        free(back);
        free(data);
        free(bdat);
    }
}

static void test_has_8bit(void)
{
    char buf[200];

    memset(buf, 'a', sizeof(buf));
    CHECK_INT(message_has_8bit(buf, sizeof(buf)), 0);
    CHECK_INT(message_has_8bit(buf, 0), 0);
    CHECK_INT(message_has_8bit(S("\x7f\x01")), 0);
    for (size_t at = 0; at < sizeof(buf); at += 7) {
        buf[at] = (char)0x80;
        CHECK_INT(message_has_8bit(buf, sizeof(buf)), 1);
        CHECK_INT(message_has_8bit(buf, at), 0);
        CHECK_INT(message_has_8bit(buf, at + 1), 1);
        buf[at] = 'a';
    }
    CHECK_INT(message_has_8bit(S("j\xc3\xb6rg@example.org")), 1);
}

static void test_strerror(void)
{
    static const struct {
        int err;
        const char *name;
    } names[] = {
        {0, "ok"},
        {MESSAGE_E_LINE_TOO_LONG, "line-too-long"},
        {-MESSAGE_E_LINE_TOO_LONG, "line-too-long"},
        {-MESSAGE_E_NUL, "nul-in-message"},
        {-MESSAGE_E_EMPTY, "empty-message"},
        {-MESSAGE_E_SPACE, "no-space"},
        {-MESSAGE_E_NOMEM, "out-of-memory"},
        {MESSAGE_E_BAD_WIRE, "bad-wire-format"},
        {-MESSAGE_E_BAD_WIRE, "bad-wire-format"},
        {7, "unknown"},
        {-7, "unknown"},
        {-2147483647 - 1, "unknown"},
        {2147483647, "unknown"},
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        CHECK_STR(message_strerror(names[i].err), names[i].name);
}

int main(void)
{
    test_prepare_table();
    test_long_lines();
    test_nul_vs_long();
    test_bound();
    test_alloc();
    test_unstuff();
    test_round_trip();
    test_has_8bit();
    test_strerror();
    return check_done();
}
