/*
 * message: wire preparation of a message for SMTP transfer (see message.h).
 *
 * One pass over the input does everything: find the next line end (or NUL)
 * a word at a time, copy the run of ordinary bytes before it with one
 * memcpy, write CRLF for whatever line end the producer used, and dot-stuff
 * for DATA. message_scan() is the same pass with nowhere to write, so the
 * two can never disagree about a message.
 */
#include "message.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__) && !defined(MESSAGE_NO_SIMD)
#include <emmintrin.h>
#endif

/* The DATA terminator; the CRLF before it is the last line's own line end. */
#define TERMINATOR     ".\r\n"
#define TERMINATOR_LEN 3

#define ONES  0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

static const char *const err_names[] = {
    [MESSAGE_OK] = "ok",
    [MESSAGE_E_LINE_TOO_LONG] = "line-too-long",
    [MESSAGE_E_NUL] = "nul-in-message",
    [MESSAGE_E_EMPTY] = "empty-message",
    [MESSAGE_E_SPACE] = "no-space",
    [MESSAGE_E_NOMEM] = "out-of-memory",
    [MESSAGE_E_BAD_WIRE] = "bad-wire-format",
};

const char *message_strerror(int err)
{
    /* Callers hold either the enum or the negated return value. */
    if (err == INT_MIN)
        return "unknown";
    if (err < 0)
        err = -err;
    if ((size_t)err >= sizeof(err_names) / sizeof(err_names[0]) || !err_names[err])
        return "unknown";
    return err_names[err];
}

/*
 * Length of the run of p[0..n) before the first NUL, CR or LF (n if none).
 * Sets the high bits of *acc when an octet of the run has bit 7 set, so
 * the caller learns about 8-bit content without a second pass.
 *
 * This is the whole cost of sending a message that is already in wire
 * form (a scan at intake, and nothing else), so x86-64 gets SSE2 (part
 * of its baseline): 16 octets per step instead of 8, and three compares
 * instead of three zero-byte tricks. MESSAGE_NO_SIMD selects the portable
 * loop, which the fuzz_message_portable target checks on x86-64 too.
 */
#if defined(__SSE2__) && !defined(MESSAGE_NO_SIMD)
static size_t find_special(const unsigned char *p, size_t n, uint64_t *acc)
{
    const __m128i cr = _mm_set1_epi8('\r'), lf = _mm_set1_epi8('\n'), zero = _mm_setzero_si128();
    __m128i bits = zero;
    size_t i = 0;
    unsigned high = 0;

    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
        __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, lf)),
                                   _mm_cmpeq_epi8(v, zero));
        unsigned m = (unsigned)_mm_movemask_epi8(hit);
        if (m) {
            unsigned k = (unsigned)__builtin_ctz(m);
            high |= (unsigned)_mm_movemask_epi8(v) & ((1u << k) - 1);
            i += k;
            goto done;
        }
        bits = _mm_or_si128(bits, v);
    }
    for (; i < n; i++) {
        unsigned char c = p[i];
        if (c == '\0' || c == '\r' || c == '\n')
            break;
        high |= c & 0x80;
    }
done:
    if (high | (unsigned)_mm_movemask_epi8(bits))
        *acc |= HIGHS;
    return i;
}
#else
/* Non-zero bit 7 in every byte of w that is zero (exact for the lowest one). */
static inline uint64_t zero_bytes(uint64_t w)
{
    return (w - ONES) & ~w & HIGHS;
}

static size_t find_special(const unsigned char *p, size_t n, uint64_t *acc)
{
    uint64_t bits = 0;
    size_t i = 0;

    /* A word at a time; memcpy loads keep it alignment-safe and the
     * compiler turns them into plain loads. */
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (zero_bytes(w) | zero_bytes(w ^ (ONES * '\r')) | zero_bytes(w ^ (ONES * '\n')))
            break;
        bits |= w;
    }
    for (; i < n; i++) {
        unsigned char c = p[i];
        if (c == '\0' || c == '\r' || c == '\n')
            break;
        bits |= c;
    }
    *acc |= bits;
    return i;
}
#endif

int message_has_8bit(const void *s, size_t len)
{
    const unsigned char *p = s;
    uint64_t bits = 0;
    size_t i = 0;

    /* Check a block at a time so a long ASCII text costs one OR per word. */
    for (; i + 64 <= len; i += 64) {
        for (size_t j = 0; j < 64; j += 8) {
            uint64_t w;
            memcpy(&w, p + i + j, 8);
            bits |= w;
        }
        if (bits & HIGHS)
            return 1;
    }
    for (; i < len; i++)
        bits |= p[i];
    return (bits & HIGHS) != 0;
}

/*
 * Bound, proved per input octet: an ordinary octet gives 1 output octet; a
 * stuffed "." at a line start gives 2; LF and bare CR each give CRLF (2); a
 * CRLF pair gives 2 for 2. So every octet costs at most 2. At the end a
 * missing line end adds CRLF (2) and DATA adds ".\r\n" (3): 2*len + 5. For
 * BDAT a missing line end means the last octet was ordinary (1, not 2, as
 * BDAT stuffs nothing), so 2*(len-1) + 1 + 2 = 2*len + 1. Both are reached:
 * "\n." for DATA, "\na" for BDAT.
 */
size_t message_wire_bound(size_t len, enum message_encoding enc)
{
    size_t extra = enc == MESSAGE_ENC_BDAT ? 1 : 5; /* unknown enc: the larger */

    if (len > (SIZE_MAX - extra) / 2)
        return SIZE_MAX;
    return 2 * len + extra;
}

/* The output side of the pass: out == NULL (a scan) or full only counts. */
struct sink {
    unsigned char *out;
    size_t cap;
    size_t len;
    int full;
};

static inline void put(struct sink *s, const void *p, size_t n)
{
    if (s->out && !s->full) {
        if (n > s->cap - s->len) {
            /* Keep counting so the content errors and wire_len stay exact. */
            s->full = 1;
        } else {
            memmove(s->out + s->len, p, n); /* message_unstuff works in place */
        }
    }
    s->len += n;
}

#if defined(__SSE2__) && !defined(MESSAGE_NO_SIMD)
/* Bit i of each mask: octet i of the 64 at p is CR, LF, NUL, or >= 0x80. */
struct block_masks {
    uint64_t cr, lf, nul, high;
};

static void block_masks(const unsigned char *p, struct block_masks *m)
{
    const __m128i cr = _mm_set1_epi8('\r'), lf = _mm_set1_epi8('\n'), zero = _mm_setzero_si128();

    memset(m, 0, sizeof(*m));
    for (unsigned k = 0; k < 64; k += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + k));
        m->cr |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, cr)) << k;
        m->lf |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, lf)) << k;
        m->nul |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, zero)) << k;
        m->high |= (uint64_t)(unsigned)_mm_movemask_epi8(v) << k;
    }
}

/*
 * BDAT's fast path: is the message already its own wire form (every line
 * ends in CRLF, no other CR or LF, no NUL, no line over 998)? If so, the
 * facts are filled in and 1 returned; otherwise 0, and the line-by-line
 * pass decides (and names the error). Whole 64-octet blocks as bit masks,
 * no work per line but a bit scan: a 1 MB message of 70-octet lines costs
 * a third of what the line-by-line pass does. Every LF must sit right
 * after a CR and every CR right before an LF: lf == cr << 1, with the
 * block's last CR carried into the next.
 */
static int scan_wire_clean(const unsigned char *p, size_t len, struct message_facts *f)
{
    unsigned char tail[64];
    uint64_t carry = 0, high = 0;
    size_t pos, start = 0, lines = 0, line_max = 0;

    if (len < 2 || p[len - 2] != '\r' || p[len - 1] != '\n')
        return 0;
    for (pos = 0; pos < len; pos += 64) {
        const unsigned char *b = p + pos;
        size_t n = len - pos < 64 ? len - pos : 64;
        struct block_masks m;

        if (n < 64) { /* zeros after the end: NUL bits, masked off */
            memset(tail, 0, sizeof(tail));
            memcpy(tail, b, n);
            b = tail;
        }
        block_masks(b, &m);
        if (n < 64)
            m.nul &= ((uint64_t)1 << n) - 1;
        if (m.nul || m.lf != ((m.cr << 1) | carry))
            return 0;
        carry = m.cr >> 63;
        high |= m.high;
        for (uint64_t l = m.lf; l; l &= l - 1) {
            size_t at = pos + (size_t)__builtin_ctzll(l), line = at - 1 - start;
            if (line > MESSAGE_LINE_MAX)
                return 0;
            if (line > line_max)
                line_max = line;
            start = at + 1;
            lines++;
        }
    }
    f->size = f->wire_len = len;
    f->lines = lines;
    f->line_max = line_max;
    f->eightbit = high != 0;
    return 1;
}
#else
static int scan_wire_clean(const unsigned char *p, size_t len, struct message_facts *f)
{
    (void)p, (void)len, (void)f;
    return 0; /* the line-by-line pass does it all */
}
#endif

/*
 * The single pass. Errors are reported for the first offending octet in
 * input order: a NUL within the first 998 octets of a line is a NUL error,
 * an octet past 998 is a line-too-long error. The message errors outrank
 * MESSAGE_E_SPACE, which only a larger buffer would fix, and on
 * MESSAGE_E_SPACE facts->wire_len is the size that buffer needs.
 */
static int prepare(const unsigned char *in, size_t len, enum message_encoding enc,
                   unsigned char *out, size_t cap, struct message_facts *facts)
{
    struct sink s = {out, cap, 0, 0};
    uint64_t acc = 0;
    size_t pos = 0, lines = 0, line_max = 0, stuffed = 0;
    int data;

    if (enc != MESSAGE_ENC_DATA && enc != MESSAGE_ENC_BDAT)
        abort(); /* the caller picks enc from the server's CHUNKING: a bug */
    data = enc == MESSAGE_ENC_DATA;
    memset(facts, 0, sizeof(*facts));
    if (len == 0)
        return -MESSAGE_E_EMPTY;
    if (!data && scan_wire_clean(in, len, facts)) {
        if (!out)
            return 0;
        if (len > cap)
            return -MESSAGE_E_SPACE;
        memmove(out, in, len);
        return 0;
    }

    while (pos < len) {
        size_t room = len - pos, n;

        /* Looking one octet past the limit is enough to know it is broken. */
        if (room > MESSAGE_LINE_MAX + 1)
            room = MESSAGE_LINE_MAX + 1;
        n = find_special(in + pos, room, &acc);
        if (n > MESSAGE_LINE_MAX) {
            facts->bad_line = lines + 1;
            return -MESSAGE_E_LINE_TOO_LONG;
        }
        if (data && in[pos] == '.') {
            put(&s, ".", 1);
            stuffed++;
        }
        put(&s, in + pos, n);
        if (n > line_max)
            line_max = n;
        pos += n;
        lines++;
        if (pos == len) {
            put(&s, "\r\n", 2); /* the producer left the last line open */
            break;
        }
        if (in[pos] == '\0') {
            facts->bad_line = lines;
            return -MESSAGE_E_NUL;
        }
        /* CRLF is one line end; a bare CR or a bare LF is one each. */
        if (in[pos] == '\r' && pos + 1 < len && in[pos + 1] == '\n')
            pos++;
        pos++;
        put(&s, "\r\n", 2);
    }

    facts->size = s.len - stuffed; /* SIZE= counts the message, not its stuffing */
    if (data)
        put(&s, TERMINATOR, TERMINATOR_LEN);
    facts->wire_len = s.len;
    facts->lines = lines;
    facts->line_max = line_max;
    facts->eightbit = (acc & HIGHS) != 0;
    return s.full ? -MESSAGE_E_SPACE : 0;
}

int message_scan(const void *in, size_t len, enum message_encoding enc, struct message_facts *facts)
{
    struct message_facts local;

    return prepare(in, len, enc, NULL, 0, facts ? facts : &local);
}

int message_prepare(const void *in, size_t len, enum message_encoding enc, void *out, size_t cap,
                    struct message_facts *facts)
{
    struct message_facts local;
    int rc;

    if (!facts)
        facts = &local;
    if (out)
        return prepare(in, len, enc, out, cap, facts);
    /* No buffer is no space, not a scan in disguise. */
    rc = prepare(in, len, enc, NULL, 0, facts);
    return rc == 0 ? -MESSAGE_E_SPACE : rc;
}

int message_prepare_alloc(const void *in, size_t len, enum message_encoding enc, char **out,
                          size_t *out_len, struct message_facts *facts)
{
    struct message_facts local;
    size_t bound = message_wire_bound(len, enc);
    char *buf = NULL;
    int rc;

    *out = NULL;
    *out_len = 0;
    if (!facts)
        facts = &local;
    if (len == 0)
        return prepare(in, len, enc, NULL, 0, facts);
    if (bound == SIZE_MAX)
        return -MESSAGE_E_NOMEM;
    buf = malloc(bound);
    if (!buf)
        return -MESSAGE_E_NOMEM;
    rc = prepare(in, len, enc, (unsigned char *)buf, bound, facts);
    if (rc < 0)
        goto fail;
    /* The bound is twice the input; give back what a normal message leaves. */
    if (bound - facts->wire_len > 4096) {
        char *small = realloc(buf, facts->wire_len);
        if (small)
            buf = small;
    }
    *out = buf;
    *out_len = facts->wire_len;
    return 0;
fail:
    free(buf);
    return rc;
}

/*
 * The receiving side's view: strict, since a body that a server would
 * misread is exactly what the property tests hunt for. Writes never
 * overtake reads, so out may be in (memmove). As in prepare(), a malformed
 * body outranks a small buffer.
 */
long message_unstuff(const void *in, size_t len, void *out, size_t cap)
{
    const unsigned char *p = in;
    struct sink s = {out, cap, 0, 0};
    size_t pos = 0, end;

    if (len < 2 + TERMINATOR_LEN || len > LONG_MAX ||
        memcmp(p + len - 2 - TERMINATOR_LEN, "\r\n" TERMINATOR, 2 + TERMINATOR_LEN) != 0)
        return -MESSAGE_E_BAD_WIRE;
    end = len - TERMINATOR_LEN; /* the body, with its final CRLF */

    while (pos < end) {
        const unsigned char *cr, *lf;
        size_t n;

        if (p[pos] == '.') {
            if (p[pos + 1] == '\r')
                return -MESSAGE_E_BAD_WIRE; /* a lone "." would end it early */
            pos++;
        }
        /* Every line of the body ends in CRLF, the last one included. */
        cr = memchr(p + pos, '\r', end - pos);
        lf = memchr(p + pos, '\n', end - pos);
        if (!cr || !lf || lf != cr + 1)
            return -MESSAGE_E_BAD_WIRE;
        n = (size_t)(lf + 1 - (p + pos));
        put(&s, p + pos, n);
        pos += n;
    }
    return s.full || !out ? -MESSAGE_E_SPACE : (long)s.len;
}
