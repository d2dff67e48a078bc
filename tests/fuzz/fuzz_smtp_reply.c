/*
 * fuzz_smtp_reply: libFuzzer target for the incremental reply parser.
 *
 * Input: one configuration octet, then the server's bytes. The octet picks
 * the limits (bits 0-1: line_max, bits 2-3: size_max; '@' means defaults)
 * and seeds the random cuts of the third run. The same bytes are fed whole,
 * one octet at a time and in random cuts; the three runs must give the same
 * replies and the same error, and every reply must respect the contract
 * (code range, NUL-terminated text of the stated length, limits). Under
 * ASan the parser's heap is also measured: it must stay bounded by the
 * limits whatever the input. Any violation aborts.
 */
#include "smtp_reply.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define FUZZ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_ASAN 1
#endif
#endif
#ifdef FUZZ_ASAN
/* From <sanitizer/allocator_interface.h>, which gcc does not ship. */
size_t __sanitizer_get_current_allocated_bytes(void);
#define heap_now() ((long long)__sanitizer_get_current_allocated_bytes())
#else
#define heap_now() 0LL
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const size_t line_choices[4] = {0, 16, 64, 1000};
static const size_t size_choices[4] = {0, 24, 300, 4096};

/* What a run produced, in a comparable form. */
struct trace {
    char *b;
    size_t len, cap;
};

static void put(struct trace *t, const void *p, size_t n)
{
    if (t->len + n > t->cap) {
        size_t ncap = t->cap ? t->cap : 1024;
        while (ncap < t->len + n)
            ncap *= 2;
        t->b = realloc(t->b, ncap);
        if (!t->b)
            abort();
        t->cap = ncap;
    }
    memcpy(t->b + t->len, p, n);
    t->len += n;
}

static void put_long(struct trace *t, long v)
{
    put(t, &v, sizeof(v));
}

enum cut_mode { CUT_WHOLE, CUT_BYTES, CUT_RANDOM };

struct run {
    const char *s;
    size_t n;
    struct smtp_reply_limits lim;
    size_t line_eff, size_eff; /* the limits as the parser applies them */
    enum cut_mode mode;
    uint32_t rng;
};

static size_t next_cut(struct run *r, size_t left)
{
    size_t c;

    if (r->mode == CUT_WHOLE)
        return left;
    if (r->mode == CUT_BYTES)
        return 1;
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 17;
    r->rng ^= r->rng << 5;
    c = 1 + (r->rng >> 8) % ((size_t)1 << (r->rng % 11));
    return c < left ? c : left;
}

static void check_reply(const struct run *r, const struct smtp_reply *rep)
{
    const char *t = rep->text, *line, *nl;
    size_t lines = 1, el;

    if (rep->code < 200 || rep->code > 559 || rep->code / 10 % 10 > 5)
        abort();
    if (!t || t[rep->text_len] != '\0' || strlen(t) != rep->text_len)
        abort();
    if (rep->text_len > r->size_eff)
        abort();
    for (line = t; (nl = strchr(line, '\n')); line = nl + 1) {
        if (r->line_eff >= 6 && (size_t)(nl - line) > r->line_eff - 6)
            abort();
        lines++;
    }
    if (r->line_eff >= 6 && strlen(line) > r->line_eff - 6)
        abort();
    if (rep->nlines < 1 || rep->nlines != lines)
        abort();
    if (memchr(t, '\r', rep->text_len))
        abort();
    el = strnlen(rep->enhanced, sizeof(rep->enhanced));
    if (el == sizeof(rep->enhanced))
        abort();
    if (el) {
        if (el < 5 || rep->enhanced[0] != '0' + rep->code / 100 || strncmp(t, rep->enhanced, el))
            abort();
        if (t[el] != '\0' && t[el] != ' ' && t[el] != '\n')
            abort();
    }
}

static void run_once(struct run *r, struct trace *t)
{
    struct smtp_reply_parser *p;
    struct smtp_reply rep;
    size_t off = 0, since_lf = 0, since_reply = 0;
    long long mem, before;
    /* Parser struct, buffer floor, a little allocator rounding. */
    long long mem_max = (long long)r->size_eff + 1 + 1024;
    long v;

    before = heap_now();
    p = smtp_reply_parser_new(&r->lim);
    if (!p)
        abort();
    mem = heap_now() - before;
    while (off < r->n) {
        size_t end = off + next_cut(r, r->n - off);
        while (off < end) {
            before = heap_now();
            v = smtp_reply_parser_feed(p, r->s + off, end - off, &rep);
            mem += heap_now() - before;
            if (mem > mem_max)
                abort();
            if (v > 0) {
                if ((size_t)v > end - off)
                    abort();
                if (smtp_reply_parser_pending(p))
                    abort();
                check_reply(r, &rep);
                put_long(t, (long)(off + (size_t)v)); /* where the reply ended */
                put_long(t, rep.code);
                put_long(t, (long)rep.nlines);
                put(t, rep.enhanced, strlen(rep.enhanced) + 1);
                put(t, rep.text, rep.text_len + 1);
                off += (size_t)v;
                since_lf = since_reply = 0;
                continue;
            }
            if (v < 0) {
                if (v < -(long)SMTP_REPLY_E_NOMEM)
                    abort();
                /* One octet at a time: the limit is hit at its exact octet. */
                if (r->mode == CUT_BYTES && v == -(long)SMTP_REPLY_E_LINE_TOO_LONG &&
                    since_lf + 1 != (r->line_eff > 2 ? r->line_eff - 2 : 0) + 1)
                    abort();
                if (smtp_reply_parser_feed(p, r->s, r->n, &rep) != v)
                    abort(); /* sticky */
                put_long(t, v);
                goto out;
            }
            if (r->mode == CUT_BYTES) {
                since_reply++;
                since_lf = r->s[off] == '\n' ? 0 : since_lf + 1;
                /* Nothing beyond the limits is ever accepted. */
                if (since_reply > r->size_eff || since_lf + 1 > r->line_eff)
                    abort();
            }
            off = end;
        }
    }
    put_long(t, 0);
out:
    put_long(t, smtp_reply_parser_pending(p));
    smtp_reply_parser_trim(p);
    smtp_reply_parser_reset(p);
    if (smtp_reply_parser_pending(p))
        abort();
    smtp_reply_parser_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct trace tr[3] = {{0}};
    struct run r;
    int i;

    if (size < 1)
        return 0;
    memset(&r, 0, sizeof(r));
    r.s = (const char *)data + 1;
    r.n = size - 1;
    r.lim.line_max = line_choices[data[0] & 3];
    r.lim.size_max = size_choices[(data[0] >> 2) & 3];
    r.line_eff = r.lim.line_max ? r.lim.line_max : SMTP_REPLY_LINE_MAX_DEFAULT;
    r.size_eff = r.lim.size_max ? r.lim.size_max : SMTP_REPLY_SIZE_MAX_DEFAULT;
    for (i = 0; i < 3; i++) {
        r.mode = (enum cut_mode)i;
        r.rng = ((uint32_t)data[0] * 2654435761u) ^ (uint32_t)size;
        if (!r.rng)
            r.rng = 1;
        run_once(&r, &tr[i]);
    }
    for (i = 1; i < 3; i++) {
        if (tr[i].len != tr[0].len || memcmp(tr[i].b, tr[0].b, tr[0].len) != 0)
            abort();
    }
    for (i = 0; i < 3; i++)
        free(tr[i].b);
    return 0;
}
