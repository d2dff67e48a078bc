/*
 * smtp_reply: the incremental SMTP reply parser and the EHLO capability
 * parser declared in smtp_reply.h.
 *
 * The parser is defined by what it does with one byte at a time (see
 * absorb() and the feed loop); the fast path over whole lines with memchr
 * must reach the same verdict at the same byte whatever the split, so every
 * check is tied to the position of the byte that triggers it:
 *   - a content byte (anything but CR and LF) first passes the size checks
 *     (line, then reply), then the NUL check, then the code/separator checks
 *     when it is one of the first four octets of its line;
 *   - a CR is held back; the byte after it must be LF, else the lone CR is a
 *     syntax error. A CR has no meaning inside a reply line and, passed on,
 *     would let a server forge line breaks in our logs; some servers in the
 *     wild do send bare LF, so LF alone still ends a line.
 * Sizes are counted as if every line ended in CRLF, whatever it ended in,
 * so a reply is "content + 2" per line both for line_max and size_max.
 */
#include "smtp_reply.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Small enough to keep per idle connection, large enough for most replies. */
#define BUF_FLOOR 256

struct smtp_reply_parser {
    size_t line_max; /* content octets per line: the line limit less CRLF */
    size_t size_max;
    char *buf; /* text of the reply so far: lines joined by '\n' */
    size_t cap;
    size_t cap_max;
    size_t len;       /* octets of text in buf */
    size_t total;     /* normalised size of the completed lines */
    size_t c;         /* content octets of the current line so far */
    size_t nlines;    /* completed lines */
    size_t first_len; /* text length of the first line */
    int code;         /* the reply's code, from its first line */
    int lcode;        /* the current line's code, as its digits arrive */
    unsigned char sep;
    unsigned char cr_pending;
    unsigned char done; /* a reply was handed out: its text lives in buf */
    int err;
};

const char *smtp_reply_strerror(int err)
{
    static const char *const names[] = {
        [SMTP_REPLY_OK] = "ok",
        [SMTP_REPLY_E_SYNTAX] = "syntax",
        [SMTP_REPLY_E_CODE] = "bad-code",
        [SMTP_REPLY_E_CODE_MISMATCH] = "code-mismatch",
        [SMTP_REPLY_E_LINE_TOO_LONG] = "line-too-long",
        [SMTP_REPLY_E_TOO_LARGE] = "reply-too-large",
        [SMTP_REPLY_E_NUL] = "nul-in-reply",
        [SMTP_REPLY_E_NOMEM] = "out-of-memory",
    };
    if (err < 0 && err != INT_MIN)
        err = -err;
    if (err < 0 || (size_t)err >= sizeof(names) / sizeof(names[0]))
        return "unknown";
    return names[err];
}

static void begin_reply(struct smtp_reply_parser *p)
{
    p->len = 0;
    p->total = 0;
    p->c = 0;
    p->nlines = 0;
    p->first_len = 0;
    p->code = 0;
    p->lcode = 0;
    p->sep = 0;
    p->cr_pending = 0;
    p->done = 0;
}

struct smtp_reply_parser *smtp_reply_parser_new(const struct smtp_reply_limits *limits)
{
    struct smtp_reply_parser *p = calloc(1, sizeof(*p));
    size_t line_max = SMTP_REPLY_LINE_MAX_DEFAULT, size_max = SMTP_REPLY_SIZE_MAX_DEFAULT;

    if (!p)
        return NULL;
    if (limits && limits->line_max)
        line_max = limits->line_max;
    if (limits && limits->size_max)
        size_max = limits->size_max;
    p->line_max = line_max > 2 ? line_max - 2 : 0;
    p->size_max = size_max;
    /* The text never outgrows the normalised reply size (each line gives at
     * most content - 4 octets plus one '\n'), so size_max + NUL bounds it. */
    p->cap_max = size_max < BUF_FLOOR ? BUF_FLOOR : size_max;
    if (p->cap_max < SIZE_MAX)
        p->cap_max++;
    p->buf = malloc(BUF_FLOOR);
    if (!p->buf) {
        free(p);
        return NULL;
    }
    p->cap = BUF_FLOOR;
    begin_reply(p);
    return p;
}

void smtp_reply_parser_free(struct smtp_reply_parser *p)
{
    if (!p)
        return;
    free(p->buf);
    free(p);
}

int smtp_reply_parser_pending(const struct smtp_reply_parser *p)
{
    /* After an error what is buffered depends on where the input was cut;
     * the answer must not, and a broken reply is an unfinished one. */
    if (p->err)
        return 1;
    return !p->done && (p->c > 0 || p->nlines > 0 || p->cr_pending);
}

void smtp_reply_parser_reset(struct smtp_reply_parser *p)
{
    begin_reply(p);
    p->err = 0;
}

void smtp_reply_parser_trim(struct smtp_reply_parser *p)
{
    char *nb;

    if (p->cap <= BUF_FLOOR || smtp_reply_parser_pending(p))
        return;
    nb = realloc(p->buf, BUF_FLOOR);
    if (!nb)
        return; /* keeping the larger buffer is harmless */
    p->buf = nb;
    p->cap = BUF_FLOOR;
    /* A reply handed out earlier may have lived above the floor. */
    begin_reply(p);
}

static long fail(struct smtp_reply_parser *p, enum smtp_reply_err e)
{
    p->err = (int)e;
    return -(long)e;
}

/* Room for need octets in buf; growth doubles, up to cap_max. */
static int reserve(struct smtp_reply_parser *p, size_t need)
{
    size_t ncap = p->cap;
    char *nb;

    if (need <= p->cap)
        return 0;
    if (need > p->cap_max)
        return -1; /* cannot happen while the size checks hold */
    while (ncap < need)
        ncap = ncap > p->cap_max / 2 ? p->cap_max : ncap * 2;
    nb = realloc(p->buf, ncap);
    if (!nb)
        return -1;
    p->buf = nb;
    p->cap = ncap;
    return 0;
}

/*
 * Content octets the current line may still take before a limit is
 * crossed; *which says which limit that is (the line limit wins a tie).
 */
static size_t content_room(const struct smtp_reply_parser *p, enum smtp_reply_err *which)
{
    size_t line_room = p->line_max > p->c ? p->line_max - p->c : 0;
    size_t size_left = p->size_max - p->total; /* total <= size_max always */
    size_t size_room = size_left >= p->c + 2 ? size_left - p->c - 2 : 0;

    if (line_room <= size_room) {
        *which = SMTP_REPLY_E_LINE_TOO_LONG;
        return line_room;
    }
    *which = SMTP_REPLY_E_TOO_LARGE;
    return size_room;
}

/* n content octets (no CR, no LF) of the current line. */
static long absorb(struct smtp_reply_parser *p, const char *s, size_t n)
{
    enum smtp_reply_err which;
    size_t room = content_room(p, &which);
    size_t ok = n < room ? n : room;
    size_t i = 0;

    /* Even an empty line costs its CRLF: once the reply has no room for
     * that, the first octet of another line is already too much. */
    if (p->size_max - p->total < p->c + 2)
        return fail(p, SMTP_REPLY_E_TOO_LARGE);

    /* Code and separator: at most four octets, checked as they come. */
    for (; i < ok && p->c < 4; i++, p->c++) {
        unsigned char b = (unsigned char)s[i];
        if (b == '\0')
            return fail(p, SMTP_REPLY_E_NUL);
        if (p->c == 3) {
            if (b != ' ' && b != '-')
                return fail(p, SMTP_REPLY_E_SYNTAX);
            p->sep = b;
            continue;
        }
        if (b < '0' || b > '9')
            return fail(p, SMTP_REPLY_E_SYNTAX);
        p->lcode = p->lcode * 10 + (b - '0');
        if (p->c == 2) {
            if (p->lcode < 200 || p->lcode > 599 || p->lcode / 10 % 10 > 5)
                return fail(p, SMTP_REPLY_E_CODE);
            if (p->nlines > 0 && p->lcode != p->code)
                return fail(p, SMTP_REPLY_E_CODE_MISMATCH);
        }
    }
    if (i < ok) {
        size_t t = ok - i;
        if (memchr(s + i, '\0', t))
            return fail(p, SMTP_REPLY_E_NUL);
        /* + 1 for the '\n' or NUL that will follow this line's text. */
        if (reserve(p, p->len + t + 1) < 0)
            return fail(p, SMTP_REPLY_E_NOMEM);
        memcpy(p->buf + p->len, s + i, t);
        p->len += t;
        p->c += t;
    }
    if (n > room)
        return fail(p, which);
    return 0;
}

/*
 * RFC 3463 "class.subject.detail" at the start of the first line's text,
 * followed by a space or the end of the line, and of the reply's class.
 */
static void parse_enhanced(const char *t, size_t n, int code, char *out)
{
    size_t i = 2, start, part;

    memset(out, 0, SMTP_REPLY_ENHANCED_MAX);
    if (n < 5 || t[0] != '0' + code / 100 || t[1] != '.')
        return;
    if (t[0] != '2' && t[0] != '4' && t[0] != '5')
        return;
    for (part = 0; part < 2; part++) {
        start = i;
        while (i < n && i - start < 4 && t[i] >= '0' && t[i] <= '9')
            i++;
        if (i == start || i - start > 3)
            return;
        if (part == 0) {
            if (i >= n || t[i] != '.')
                return;
            i++;
        }
    }
    if (i < n && t[i] != ' ')
        return;
    memcpy(out, t, i);
}

/* The current line ended. Returns 1 when it ended the reply. */
static long end_line(struct smtp_reply_parser *p)
{
    if (p->c < 3)
        return fail(p, SMTP_REPLY_E_SYNTAX);
    if (p->nlines == 0) {
        p->code = p->lcode;
        p->first_len = p->len;
    }
    p->nlines++;
    p->total += p->c + 2;
    if (reserve(p, p->len + 1) < 0)
        return fail(p, SMTP_REPLY_E_NOMEM);
    if (p->c > 3 && p->sep == '-') {
        p->buf[p->len++] = '\n';
        p->c = 0;
        p->lcode = 0;
        p->sep = 0;
        return 0;
    }
    p->buf[p->len] = '\0';
    p->c = 0;
    p->done = 1;
    return 1;
}

long smtp_reply_parser_feed(struct smtp_reply_parser *p, const void *buf, size_t len,
                            struct smtp_reply *out)
{
    const char *start = buf, *s = buf, *end;
    long r;

    if (p->err)
        return -(long)p->err;
    if (p->done)
        begin_reply(p);
    if (len == 0)
        return 0;
    end = s + len;
    while (s < end) {
        if (p->cr_pending) {
            if (*s != '\n')
                return fail(p, SMTP_REPLY_E_SYNTAX);
            p->cr_pending = 0;
            s++;
        } else {
            enum smtp_reply_err which;
            size_t avail = (size_t)(end - s), scan, n, cn;
            const char *lf, *cr, *seg_end;
            int ends_cr;

            /* A valid line has at most room content octets, a CR and a LF:
             * no need to look further for its end, however long the input. */
            scan = content_room(p, &which);
            scan = scan < avail && avail - scan > 2 ? scan + 2 : avail;
            lf = memchr(s, '\n', scan);
            seg_end = lf ? lf : s + scan;
            n = (size_t)(seg_end - s);
            ends_cr = n > 0 && seg_end[-1] == '\r';
            cn = n - (size_t)ends_cr;
            cr = memchr(s, '\r', cn);
            if (cr) {
                /* A non-LF octet follows it in the input: a lone CR. */
                r = absorb(p, s, (size_t)(cr - s));
                return r < 0 ? r : fail(p, SMTP_REPLY_E_SYNTAX);
            }
            r = absorb(p, s, cn);
            if (r < 0)
                return r;
            if (!lf) {
                /* Input ends inside the line, maybe between its CR and LF. */
                p->cr_pending = (unsigned char)ends_cr;
                s = seg_end;
                continue;
            }
            s = lf + 1;
        }
        r = end_line(p);
        if (r < 0)
            return r;
        if (r > 0) {
            out->code = p->code;
            out->nlines = p->nlines;
            out->text = p->buf;
            out->text_len = p->len;
            parse_enhanced(p->buf, p->first_len, p->code, out->enhanced);
            return (long)(s - start);
        }
    }
    return 0;
}

/* ---- EHLO capabilities ---- */

/* ASCII only: keywords are ASCII, and the locale must not matter. */
static int word_eq(const char *s, size_t n, const char *kw)
{
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char a = (unsigned char)s[i], b = (unsigned char)kw[i];
        if (b == '\0')
            return 0;
        if (a >= 'a' && a <= 'z')
            a = (unsigned char)(a - 'a' + 'A');
        if (a != b)
            return 0;
    }
    return kw[n] == '\0';
}

static const struct {
    const char *kw;
    unsigned bit;
} ext_words[] = {
    {"PIPELINING", SMTP_EXT_PIPELINING}, {"STARTTLS", SMTP_EXT_STARTTLS},
    {"CHUNKING", SMTP_EXT_CHUNKING},     {"8BITMIME", SMTP_EXT_8BITMIME},
    {"SMTPUTF8", SMTP_EXT_SMTPUTF8},     {"ENHANCEDSTATUSCODES", SMTP_EXT_ENHANCEDSTATUSCODES},
    {"REQUIRETLS", SMTP_EXT_REQUIRETLS}, {"DSN", SMTP_EXT_DSN},
    {"BINARYMIME", SMTP_EXT_BINARYMIME},
};

static const struct {
    const char *name;
    unsigned bit;
} auth_words[] = {
    {"PLAIN", SMTP_AUTH_PLAIN},
    {"LOGIN", SMTP_AUTH_LOGIN},
    {"CRAM-MD5", SMTP_AUTH_CRAM_MD5},
    {"XOAUTH2", SMTP_AUTH_XOAUTH2},
};

static int is_space(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* Mechanism names separated by blanks. */
static unsigned parse_auth(const char *s, size_t n)
{
    unsigned bits = 0;
    size_t i = 0, j, k;

    while (i < n) {
        while (i < n && is_space(s[i]))
            i++;
        j = i;
        while (j < n && !is_space(s[j]))
            j++;
        if (j > i) {
            unsigned bit = SMTP_AUTH_OTHER;
            for (k = 0; k < sizeof(auth_words) / sizeof(auth_words[0]); k++) {
                if (word_eq(s + i, j - i, auth_words[k].name)) {
                    bit = auth_words[k].bit;
                    break;
                }
            }
            bits |= bit;
        }
        i = j;
    }
    return bits;
}

/* SIZE's first parameter; 0 when absent, not decimal or beyond uint64. */
static uint64_t parse_size(const char *s, size_t n)
{
    uint64_t v = 0;
    size_t i = 0;

    while (i < n && is_space(s[i]))
        i++;
    if (i == n)
        return 0;
    for (; i < n && !is_space(s[i]); i++) {
        unsigned d = (unsigned)((unsigned char)s[i] - '0');
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    return v;
}

static void keep_unknown(struct smtp_ehlo *out, const char *s, size_t n)
{
    size_t used, need;

    if (out->unknown_truncated)
        return; /* keep the list a prefix of what the server sent */
    used = out->unknown_count ? strlen(out->unknown) : 0;
    need = (out->unknown_count ? 1 : 0) + n;
    if (used + need + 1 > sizeof(out->unknown)) {
        out->unknown_truncated = 1;
        return;
    }
    if (out->unknown_count)
        out->unknown[used++] = '\n';
    memcpy(out->unknown + used, s, n);
    out->unknown[used + n] = '\0';
    out->unknown_count++;
}

static void parse_cap_line(struct smtp_ehlo *out, const char *s, size_t n)
{
    size_t kw, k;

    while (n > 0 && is_space(*s)) {
        s++;
        n--;
    }
    if (n == 0 || memchr(s, '\0', n))
        return; /* nothing to record, or nothing safe to keep as a string */
    kw = 0;
    while (kw < n && !is_space(s[kw]))
        kw++;
    if (kw >= 5 && word_eq(s, 5, "AUTH=")) {
        out->ext |= SMTP_EXT_AUTH;
        out->auth |= parse_auth(s + 5, n - 5);
        return;
    }
    if (word_eq(s, kw, "AUTH")) {
        out->ext |= SMTP_EXT_AUTH;
        out->auth |= parse_auth(s + kw, n - kw);
        return;
    }
    if (word_eq(s, kw, "SIZE")) {
        out->ext |= SMTP_EXT_SIZE;
        out->size_max = parse_size(s + kw, n - kw);
        return;
    }
    for (k = 0; k < sizeof(ext_words) / sizeof(ext_words[0]); k++) {
        if (word_eq(s, kw, ext_words[k].kw)) {
            out->ext |= ext_words[k].bit;
            return;
        }
    }
    keep_unknown(out, s, n);
}

void smtp_ehlo_parse_text(const char *text, size_t len, struct smtp_ehlo *out)
{
    const char *s = text, *end, *nl;

    memset(out, 0, sizeof(*out));
    if (!text || len == 0)
        return;
    end = text + len;
    /* The first line names the server; it is no capability. */
    nl = memchr(s, '\n', len);
    if (!nl)
        return;
    s = nl + 1;
    while (s < end) {
        nl = memchr(s, '\n', (size_t)(end - s));
        if (!nl)
            nl = end;
        parse_cap_line(out, s, (size_t)(nl - s));
        s = nl + 1;
    }
}

int smtp_ehlo_parse(const struct smtp_reply *r, struct smtp_ehlo *out)
{
    memset(out, 0, sizeof(*out));
    if (!r || r->code != 250)
        return -1;
    smtp_ehlo_parse_text(r->text, r->text_len, out);
    return 0;
}
