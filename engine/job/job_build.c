/*
 * job_build: the RFC 5322 / MIME message ringmail writes for a job given as
 * subject with text and/or html (job.h lists the fields).
 *
 * The rules, decided here once so every message has the same shape:
 * - Header order: Date, From, To, Subject, Message-ID, the header.* fields
 *   in the order given, MIME-Version, Content-Type, Content-Transfer-Encoding.
 *   header.Date, header.From, header.To and header.Message-ID take the place
 *   of the made ones. Lines end in CRLF.
 * - Date is the enqueue time (job.c passes it), so a resend of the same job
 *   is byte-identical; Message-ID is <ringmail.ID@DOMAIN> with the job id
 *   escaped to atext: letters, digits and '-' stay, every other octet is
 *   =XX (so '=' itself too, which keeps the escape reversible and distinct
 *   ids distinct).
 * - Header values lose surrounding whitespace and are folded at whitespace
 *   before 78 octets where a word allows; a line never exceeds 998.
 *   Unstructured fields (Subject, Comments, X-*) that are not plain ASCII,
 *   that contain "=?" (which a reader would take for an encoded word) or
 *   that a long word would push over 998 are written as RFC 2047 encoded
 *   words (UTF-8, Q), split between characters, at most 75 octets each
 *   and 76 to a line.
 *   Structured fields (every other name) are written as given: ASCII only,
 *   or UTF-8 when the envelope already needs SMTPUTF8 (RFC 6532); a word
 *   that cannot fit 998 octets is an error, as folding it would change it.
 * - Bodies are text/plain and text/html, charset=utf-8 (so they must be
 *   valid UTF-8 and hold no NUL). Content-Transfer-Encoding: 7bit for ASCII,
 *   8bit for UTF-8 (readable, and 8BITMIME is near universal; the client
 *   refuses with 5.6.3 where it is not), quoted-printable when a line is
 *   longer than 998 octets. Line ends become CRLF; a missing last one is
 *   added for a single part, and kept missing inside a multipart.
 * - Both bodies: multipart/alternative, text first (RFC 2046 5.1.4: the
 *   preferred last), boundary "=_rm_<hash of the id>_<n>": the first n for
 *   which it occurs in neither body (a quoted-printable body cannot hold
 *   "=_" at all), no preamble, no epilogue.
 *
 * Sizing and writing are the same emit pass, first counting, then into one
 * buffer of exactly that size, so they cannot disagree.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "job_internal.h"
#include "message.h"

#define FOLD_AT 78 /* RFC 5322 2.1.1: SHOULD */
#define EW_MAX  75 /* RFC 2047 2: an encoded word's length, */
#define EW_LINE 76 /* and a line that holds one */
#define EW_HEAD "=?UTF-8?Q?"
#define EW_TAIL "?="
/* An encoded word with one 4-octet character: the least that progresses. */
#define EW_MIN (sizeof(EW_HEAD) - 1 + 12 + sizeof(EW_TAIL) - 1)

/* The emit pass's output: p == NULL only counts. */
struct out {
    char *p;
    size_t len;
};

static void put(struct out *o, const void *s, size_t n)
{
    if (o->p && n)
        memcpy(o->p + o->len, s, n);
    o->len += n;
}
#define PUTS(o, lit) put((o), lit, sizeof(lit) - 1)

static const char hexdig[] = "0123456789ABCDEF";

static void put_hex(struct out *o, unsigned char c)
{
    char e[3] = {'=', hexdig[c >> 4], hexdig[c & 15]};
    put(o, e, 3);
}

static int is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

static struct job_span trim(const char *p, size_t n)
{
    while (n && is_wsp(p[0]))
        p++, n--;
    while (n && is_wsp(p[n - 1]))
        n--;
    return (struct job_span){p, n};
}

/* Header names with a rule of their own (compared without case). */
enum {
    H_ONCE = 1,   /* RFC 5322 3.6: at most one */
    H_SLOT = 2,   /* replaces the field ringmail would make */
    H_UNSTR = 4,  /* unstructured: encoded words allowed */
    H_REFUSE = 8, /* never from a producer */
};
static const struct hname {
    const char *name;
    unsigned flags;
    const char *why; /* H_REFUSE */
} hnames[] = {
    {"Date", H_ONCE | H_SLOT, NULL},
    {"From", H_ONCE | H_SLOT, NULL},
    {"To", H_ONCE | H_SLOT, NULL},
    {"Message-ID", H_ONCE | H_SLOT, NULL},
    {"Sender", H_ONCE, NULL},
    {"Reply-To", H_ONCE, NULL},
    {"Cc", H_ONCE, NULL},
    {"In-Reply-To", H_ONCE, NULL},
    {"References", H_ONCE, NULL},
    {"Comments", H_UNSTR, NULL},
    {"Subject", H_REFUSE, "use the subject field"},
    {"Bcc", H_REFUSE, "it would disclose the blind recipients"},
    {"MIME-Version", H_REFUSE, "ringmail writes the MIME structure"},
    {"Content-Type", H_REFUSE, "ringmail writes the MIME structure"},
    {"Content-Transfer-Encoding", H_REFUSE, "ringmail writes the MIME structure"},
    {"Received", H_REFUSE, "trace fields are for servers"},
    {"Return-Path", H_REFUSE, "trace fields are for servers"},
};
#define NHNAMES (sizeof(hnames) / sizeof(hnames[0]))

/* Index into hnames, or -1. */
static int hname_find(const char *n, size_t len)
{
    for (size_t i = 0; i < NHNAMES; i++)
        if (strlen(hnames[i].name) == len && strncasecmp(hnames[i].name, n, len) == 0)
            return (int)i;
    return -1;
}

static unsigned hname_flags(const char *n, size_t len)
{
    int k = hname_find(n, len);

    if (k >= 0)
        return hnames[k].flags;
    return len >= 2 && strncasecmp(n, "X-", 2) == 0 ? H_UNSTR : 0;
}

/* Octets of the UTF-8 sequence that c starts (the value is valid UTF-8). */
static size_t utf8_len(unsigned char c)
{
    return c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
}

/* What RFC 2047 Q keeps literal in any position (5(3), the strictest). */
static int q_literal(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '!' ||
           c == '*' || c == '+' || c == '-' || c == '/';
}

static size_t q_len(const unsigned char *s, size_t k)
{
    size_t n = 0;

    for (size_t i = 0; i < k; i++)
        n += q_literal(s[i]) || s[i] == ' ' ? 1 : 3;
    return n;
}

/* "Name: value" folded at whitespace; returns the longest line written. */
static size_t put_folded(struct out *o, const char *name, size_t nl, struct job_span v)
{
    size_t line = nl + 1, longest = 0, i = 0;

    put(o, name, nl);
    PUTS(o, ":");
    while (i < v.n) {
        size_t ws = i, tok;
        while (i < v.n && is_wsp(v.p[i]))
            i++;
        while (i < v.n && !is_wsp(v.p[i]))
            i++;
        tok = i - ws + (ws == 0); /* the first word gets the space after ':' */
        if (ws > 0 && line + tok > FOLD_AT) {
            PUTS(o, "\r\n");
            if (line > longest)
                longest = line;
            line = 0;
        }
        if (ws == 0)
            PUTS(o, " ");
        put(o, v.p + ws, i - ws);
        line += tok;
    }
    PUTS(o, "\r\n");
    return line > longest ? line : longest;
}

/* "Name: =?UTF-8?Q?...?=" in words split between characters. */
static void put_encoded(struct out *o, const char *name, size_t nl, struct job_span v)
{
    const unsigned char *s = (const unsigned char *)v.p;
    size_t line = nl + 1, i = 0;

    put(o, name, nl);
    PUTS(o, ":");
    while (i < v.n) {
        size_t cap = EW_LINE - 1 > line ? EW_LINE - 1 - line : 0, wl = sizeof(EW_HEAD) - 1;
        if (cap > EW_MAX)
            cap = EW_MAX;
        if (cap < EW_MIN)
            cap = EW_MIN; /* a long name: the line may pass 76, never 998 */
        PUTS(o, " " EW_HEAD);
        while (i < v.n) {
            size_t k = utf8_len(s[i]), e = q_len(s + i, k);
            if (wl > sizeof(EW_HEAD) - 1 && wl + e + sizeof(EW_TAIL) - 1 > cap)
                break;
            for (size_t j = 0; j < k; j++) {
                if (s[i + j] == ' ')
                    PUTS(o, "_");
                else if (q_literal(s[i + j]))
                    put(o, s + i + j, 1);
                else
                    put_hex(o, s[i + j]);
            }
            wl += e;
            i += k;
        }
        PUTS(o, EW_TAIL);
        line += 1 + wl + sizeof(EW_TAIL) - 1;
        if (i < v.n) {
            PUTS(o, "\r\n");
            line = 0;
        }
    }
    PUTS(o, "\r\n");
}

/* An unstructured value is written as encoded words when plain folding
 * would not carry it faithfully. */
static int needs_encoding(size_t nl, struct job_span v)
{
    struct out count = {NULL, 0};

    if (message_has_8bit(v.p, v.n))
        return 1;
    for (size_t i = 0; i + 1 < v.n; i++)
        if (v.p[i] == '=' && v.p[i + 1] == '?')
            return 1;
    return put_folded(&count, "", nl, v) > MESSAGE_LINE_MAX;
}

static void put_unstructured(struct out *o, const char *name, size_t nl, struct job_span v)
{
    if (needs_encoding(nl, v))
        put_encoded(o, name, nl, v);
    else
        put_folded(o, name, nl, v);
}

/*
 * The checks every header value gets: label names it in the reason. The
 * value is already trimmed.
 */
static int check_value(const char *label, size_t label_len, size_t nl, struct job_span v,
                       unsigned flags, int smtputf8, char *reason, size_t reasonlen)
{
    int eight = 0;
    struct out count = {NULL, 0};

    for (size_t i = 0; i < v.n; i++) {
        unsigned char c = (unsigned char)v.p[i];
        if (c == '\r' || c == '\n' || c == '\0') {
            job_reason(reason, reasonlen, "%.*s: CR, LF or NUL in value (header injection)",
                       (int)label_len, label);
            return -1;
        }
    }
    for (size_t i = 0; i < v.n; i++) {
        unsigned char c = (unsigned char)v.p[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            job_reason(reason, reasonlen, "%.*s: control character in value", (int)label_len,
                       label);
            return -1;
        }
        eight |= c >= 0x80;
    }
    if (eight && !job_utf8_valid((const unsigned char *)v.p, v.n)) {
        job_reason(reason, reasonlen, "%.*s: not valid UTF-8", (int)label_len, label);
        return -1;
    }
    if (flags & H_UNSTR)
        return 0; /* encoded words carry anything else */
    if (eight && !smtputf8) {
        job_reason(reason, reasonlen,
                   "%.*s: non-ASCII in a structured header (encode it per RFC 2047)",
                   (int)label_len, label);
        return -1;
    }
    if (put_folded(&count, "", nl, v) > MESSAGE_LINE_MAX) {
        job_reason(reason, reasonlen, "%.*s: a word too long to fold within 998 octets",
                   (int)label_len, label);
        return -1;
    }
    return 0;
}

/* RFC 5322 msg-id, kept to its simple form: "<" left "@" right ">". */
static int msgid_valid(struct job_span v)
{
    const char *at;

    if (v.n < 5 || v.p[0] != '<' || v.p[v.n - 1] != '>')
        return 0;
    for (size_t i = 1; i + 1 < v.n; i++)
        if (v.p[i] < 0x21 || v.p[i] > 0x7e || v.p[i] == '<' || v.p[i] == '>')
            return 0;
    at = memchr(v.p + 1, '@', v.n - 2);
    return at && at > v.p + 1 && at < v.p + v.n - 2;
}

/* Validate every header.* field and note the overrides. */
static int check_headers(const struct job_build_in *in, struct job_build_plan *plan, char *reason,
                         size_t reasonlen)
{
    unsigned once = 0;
    size_t k = 0;

    for (size_t i = 0; i < in->nfields; i++) {
        const struct job_field *f = &in->fields[i];
        const char *name = f->name + JOB_HEADER_PREFIX_LEN;
        size_t nl = f->name_len - JOB_HEADER_PREFIX_LEN;
        struct job_span v;
        int h;

        if (!job_is_header(f))
            continue;
        if (++k > JOB_HEADER_MAX) {
            job_reason(reason, reasonlen, "too many header.* fields (over %d)", JOB_HEADER_MAX);
            return -1;
        }
        /* RFC 5322 ftext: printable ASCII but ':'. */
        for (size_t j = 0; j < nl; j++) {
            if (name[j] < 0x21 || name[j] > 0x7e || name[j] == ':') {
                job_reason(reason, reasonlen, "header.* #%zu: invalid header name", k);
                return -1;
            }
        }
        if (nl == 0 || nl > JOB_HEADER_NAME_MAX) {
            job_reason(reason, reasonlen, "header.* #%zu: header name %s", k,
                       nl ? "longer than 76 octets" : "empty");
            return -1;
        }
        h = hname_find(name, nl);
        if (h >= 0 && (hnames[h].flags & H_REFUSE)) {
            job_reason(reason, reasonlen, "header.%.*s: refused (%s)", (int)nl, name,
                       hnames[h].why);
            return -1;
        }
        if (h >= 0 && (hnames[h].flags & H_ONCE)) {
            if (once & (1u << h)) {
                job_reason(reason, reasonlen, "header.%.*s: given twice", (int)nl, name);
                return -1;
            }
            once |= 1u << h;
        }
        v = trim(f->value, f->value_len);
        if (v.n == 0) {
            job_reason(reason, reasonlen, "header.%.*s: empty value", (int)nl, name);
            return -1;
        }
        if (check_value(f->name, f->name_len, nl, v, hname_flags(name, nl), in->smtputf8, reason,
                        reasonlen) < 0)
            return -1;
        if (h >= 0 && (hnames[h].flags & H_SLOT)) {
            const struct job_field **slot[] = {&plan->h_date, &plan->h_from, &plan->h_to,
                                               &plan->h_msgid};
            *slot[h] = f; /* the H_SLOT names lead the table in this order */
        }
    }
    if (plan->h_msgid && !msgid_valid(trim(plan->h_msgid->value, plan->h_msgid->value_len))) {
        job_reason(reason, reasonlen, "header.Message-ID: not <left@right>");
        return -1;
    }
    return 0;
}

/* Lines of a body with any line end (CRLF, LF, lone CR), as message.c
 * counts them. The next LF is remembered so that many lone CRs before it
 * do not make the walk quadratic. */
struct lines {
    const char *p;
    size_t n, pos, lf;
};

static void lines_init(struct lines *it, const char *p, size_t n)
{
    it->p = p;
    it->n = n;
    it->pos = 0;
    it->lf = 0;
    if (n) {
        const char *lf = memchr(p, '\n', n);
        it->lf = lf ? (size_t)(lf - p) : n;
    }
}

/* Next line: 1 with p[*a..*a+*len) and *eol, or 0 at the end. */
static int lines_next(struct lines *it, size_t *a, size_t *len, int *eol)
{
    const char *cr;

    if (it->pos >= it->n)
        return 0;
    if (it->lf < it->pos) {
        const char *lf = memchr(it->p + it->pos, '\n', it->n - it->pos);
        it->lf = lf ? (size_t)(lf - it->p) : it->n;
    }
    *a = it->pos;
    cr = memchr(it->p + it->pos, '\r', it->lf - it->pos);
    if (cr) {
        *len = (size_t)(cr - it->p) - *a;
        it->pos = *a + *len + 1;
        if (it->pos < it->n && it->p[it->pos] == '\n')
            it->pos++;
        *eol = 1;
    } else {
        *len = it->lf - *a;
        *eol = it->lf < it->n;
        it->pos = it->lf + 1;
    }
    return 1;
}

/* Validate a body and choose its transfer encoding. */
static int check_body(const char *label, struct job_span b, enum job_cte *cte, char *reason,
                      size_t reasonlen)
{
    struct lines it;
    size_t a, len, longest = 0;
    int eol, eight;

    if (memchr(b.p, '\0', b.n)) {
        job_reason(reason, reasonlen, "%s: NUL octet", label);
        return -1;
    }
    eight = message_has_8bit(b.p, b.n);
    if (eight && !job_utf8_valid((const unsigned char *)b.p, b.n)) {
        job_reason(reason, reasonlen, "%s: not valid UTF-8 (the charset is utf-8)", label);
        return -1;
    }
    lines_init(&it, b.p, b.n);
    while (lines_next(&it, &a, &len, &eol))
        if (len > longest)
            longest = len;
    *cte = longest > MESSAGE_LINE_MAX ? JOB_CTE_QP : eight ? JOB_CTE_8BIT : JOB_CTE_7BIT;
    return 0;
}

/* RFC 2045 6.7: lines of at most 76 with soft breaks, '=' and the octets
 * that are not printable ASCII as =XX, and whitespace before a line end
 * too. */
static void put_qp_line(struct out *o, const unsigned char *s, size_t n)
{
    size_t col = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        int lit = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && i + 1 < n);
        size_t e = lit ? 1 : 3;
        if (col + e > 75) {
            PUTS(o, "=\r\n");
            col = 0;
        }
        if (lit)
            put(o, &c, 1);
        else
            put_hex(o, c);
        col += e;
    }
}

/* The body with CRLF line ends (and encoded for QP); returns non-zero when
 * its last line had a line end. */
static int put_body(struct out *o, struct job_span b, enum job_cte cte)
{
    struct lines it;
    size_t a, len;
    int eol = 1;

    lines_init(&it, b.p, b.n);
    while (lines_next(&it, &a, &len, &eol)) {
        if (cte == JOB_CTE_QP)
            put_qp_line(o, (const unsigned char *)b.p + a, len);
        else
            put(o, b.p + a, len);
        if (eol)
            PUTS(o, "\r\n");
    }
    return eol;
}

static const char *cte_name(enum job_cte c)
{
    return c == JOB_CTE_QP ? "quoted-printable" : c == JOB_CTE_8BIT ? "8bit" : "7bit";
}

static void put_part_headers(struct out *o, const char *subtype, enum job_cte cte)
{
    PUTS(o, "Content-Type: text/");
    put(o, subtype, strlen(subtype));
    PUTS(o, "; charset=utf-8\r\nContent-Transfer-Encoding: ");
    put(o, cte_name(cte), strlen(cte_name(cte)));
    PUTS(o, "\r\n");
}

/* RFC 5322 3.3 date-time in UTC, from days-since-epoch arithmetic (H.
 * Hinnant's civil_from_days) so no time zone state is read. */
static char *two_digits(char *p, long long v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
    return p + 2;
}

static void put_date(struct out *o, long long t)
{
    static const char wd[7][4] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
    static const char mn[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    long long days = t / 86400, secs = t % 86400;
    long long z = days + 719468, era = z / 146097, doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    long long d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
    long long y = yoe + era * 400 + (m <= 2);
    char b[40], *p = b;

    /* t is in [0, year 9999] (job.c clamps it), so every term is positive
     * and fits its digits. Written by hand: it runs twice per job (plan and
     * write) and snprintf was a visible share of a worker's CPU. */
    memcpy(p, "Date: ", 6);
    memcpy(p + 6, wd[days % 7], 3);
    p += 9;
    *p++ = ',';
    *p++ = ' ';
    if (d >= 10)
        *p++ = (char)('0' + d / 10);
    *p++ = (char)('0' + d % 10);
    *p++ = ' ';
    memcpy(p, mn[m - 1], 3);
    p += 3;
    *p++ = ' ';
    p = two_digits(p, y / 100);
    p = two_digits(p, y % 100);
    *p++ = ' ';
    p = two_digits(p, secs / 3600);
    *p++ = ':';
    p = two_digits(p, secs / 60 % 60);
    *p++ = ':';
    p = two_digits(p, secs % 60);
    memcpy(p, " +0000\r\n", 8);
    p += 8;
    put(o, b, (size_t)(p - b));
}

/* <ringmail.ESCAPED-ID@DOMAIN> */
static void put_msgid(struct out *o, const struct job_build_in *in)
{
    PUTS(o, "<ringmail.");
    for (size_t i = 0; i < in->id_len; i++) {
        unsigned char c = (unsigned char)in->id[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-')
            put(o, &c, 1);
        else
            put_hex(o, c);
    }
    PUTS(o, "@");
    put(o, in->msgid_domain, strlen(in->msgid_domain));
    PUTS(o, ">");
}

void job_build_msgid(const struct job_build_in *in, const struct job_build_plan *plan, char *out)
{
    struct out o = {out, 0};

    if (plan->h_msgid) {
        struct job_span v = trim(plan->h_msgid->value, plan->h_msgid->value_len);
        put(&o, v.p, v.n);
    } else {
        put_msgid(&o, in);
    }
    if (o.len != plan->msgid_len)
        abort(); /* the plan and the write disagree: a bug */
}

/* The To field made from the envelope: one address per token. */
static void put_to_list(struct out *o, const struct job_build_in *in)
{
    size_t line = 3, left = 0;

    for (size_t i = 0; i < in->nfields; i++)
        left += JOB_NAME_IS(&in->fields[i], "to");
    PUTS(o, "To:");
    for (size_t i = 0; i < in->nfields; i++) {
        const struct job_field *f = &in->fields[i];
        size_t tok;
        if (!JOB_NAME_IS(f, "to"))
            continue;
        left--;
        tok = 1 + f->value_len + (left > 0);
        if (line > 3 && line + tok > FOLD_AT) {
            PUTS(o, "\r\n");
            line = 0;
        }
        PUTS(o, " ");
        put(o, f->value, f->value_len);
        if (left)
            PUTS(o, ",");
        line += tok;
    }
    PUTS(o, "\r\n");
}

static void put_header_field(struct out *o, const char *name, size_t nl, const struct job_field *f)
{
    struct job_span v = trim(f->value, f->value_len);

    if (hname_flags(name, nl) & H_UNSTR)
        put_unstructured(o, name, nl, v);
    else
        put_folded(o, name, nl, v);
}

/* The whole message: the one code path for sizing and for writing. */
static void emit(struct out *o, const struct job_build_in *in, const struct job_build_plan *plan)
{
    if (plan->h_date)
        put_header_field(o, "Date", 4, plan->h_date);
    else
        put_date(o, in->date);
    if (plan->h_from) {
        put_header_field(o, "From", 4, plan->h_from);
    } else {
        PUTS(o, "From: ");
        put(o, in->from, in->from_len);
        PUTS(o, "\r\n");
    }
    if (plan->h_to)
        put_header_field(o, "To", 2, plan->h_to);
    else
        put_to_list(o, in);
    put_unstructured(o, "Subject", 7, trim(in->subject.p, in->subject.n));
    PUTS(o, "Message-ID: ");
    if (plan->h_msgid) {
        struct job_span v = trim(plan->h_msgid->value, plan->h_msgid->value_len);
        put(o, v.p, v.n);
    } else {
        put_msgid(o, in);
    }
    PUTS(o, "\r\n");
    for (size_t i = 0; i < in->nfields; i++) {
        const struct job_field *f = &in->fields[i];
        if (!job_is_header(f) || f == plan->h_date || f == plan->h_from || f == plan->h_to ||
            f == plan->h_msgid)
            continue;
        put_header_field(o, f->name + JOB_HEADER_PREFIX_LEN, f->name_len - JOB_HEADER_PREFIX_LEN,
                         f);
    }
    PUTS(o, "MIME-Version: 1.0\r\n");
    if (!plan->boundary[0]) {
        int text = in->text.p != NULL;
        struct job_span b = text ? in->text : in->html;
        put_part_headers(o, text ? "plain" : "html", text ? plan->text_cte : plan->html_cte);
        PUTS(o, "\r\n");
        if (!put_body(o, b, text ? plan->text_cte : plan->html_cte))
            PUTS(o, "\r\n");
        return;
    }
    PUTS(o, "Content-Type: multipart/alternative; boundary=\"");
    put(o, plan->boundary, strlen(plan->boundary));
    PUTS(o, "\"\r\n\r\n--");
    put(o, plan->boundary, strlen(plan->boundary));
    PUTS(o, "\r\n");
    put_part_headers(o, "plain", plan->text_cte);
    PUTS(o, "\r\n");
    put_body(o, in->text, plan->text_cte);
    PUTS(o, "\r\n--");
    put(o, plan->boundary, strlen(plan->boundary));
    PUTS(o, "\r\n");
    put_part_headers(o, "html", plan->html_cte);
    PUTS(o, "\r\n");
    put_body(o, in->html, plan->html_cte);
    PUTS(o, "\r\n--");
    put(o, plan->boundary, strlen(plan->boundary));
    PUTS(o, "--\r\n");
}

/* FNV-1a: a fixed, well-spread hash of the id, so the boundary is the same
 * on every resend of the job. */
static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h;
}

static int body_holds(struct job_span b, enum job_cte cte, const char *s)
{
    return cte != JOB_CTE_QP && b.n && memmem(b.p, b.n, s, strlen(s));
}

static int choose_boundary(const struct job_build_in *in, struct job_build_plan *plan)
{
    uint64_t h = fnv1a(in->id, in->id_len);

    for (unsigned n = 0; n < 10; n++) {
        snprintf(plan->boundary, sizeof(plan->boundary), "=_rm_%016llx_%u", (unsigned long long)h,
                 n);
        if (!body_holds(in->text, plan->text_cte, plan->boundary) &&
            !body_holds(in->html, plan->html_cte, plan->boundary))
            return 0;
    }
    return -1;
}

int job_build_plan(const struct job_build_in *in, size_t max_message, struct job_build_plan *plan,
                   char *reason, size_t reasonlen)
{
    struct out count = {NULL, 0};
    struct job_span subject = trim(in->subject.p, in->subject.n);
    const char *why;

    memset(plan, 0, sizeof(*plan));
    /* Encoding only grows a body: their sum over the cap is final. */
    if (in->text.n > max_message || in->html.n > max_message - in->text.n) {
        job_reason(reason, reasonlen, "message larger than %zu octets", max_message);
        return -1;
    }
    if (check_value("subject", 7, 7, subject, H_UNSTR, in->smtputf8, reason, reasonlen) < 0)
        return -1;
    if (check_headers(in, plan, reason, reasonlen) < 0)
        return -1;
    if (in->from_len == 0 && !plan->h_from) {
        job_reason(reason, reasonlen, "the null sender needs header.From");
        return -1;
    }
    if (in->text.p && check_body("text", in->text, &plan->text_cte, reason, reasonlen) < 0)
        return -1;
    if (in->html.p && check_body("html", in->html, &plan->html_cte, reason, reasonlen) < 0)
        return -1;
    if (in->text.p && in->html.p && choose_boundary(in, plan) < 0) {
        job_reason(reason, reasonlen, "no MIME boundary: the bodies hold every candidate");
        return -1;
    }
    if (plan->h_msgid) {
        plan->msgid_len = trim(plan->h_msgid->value, plan->h_msgid->value_len).n;
    } else {
        if (!in->msgid_domain) {
            job_reason(reason, reasonlen, "msgid domain: not configured");
            return -1;
        }
        if ((why = job_check_domain(in->msgid_domain, strlen(in->msgid_domain), 0))) {
            job_reason(reason, reasonlen, "msgid domain: %s", why);
            return -1;
        }
        put_msgid(&count, in);
        plan->msgid_len = count.len;
        count.len = 0;
    }
    emit(&count, in, plan);
    if (count.len > max_message) {
        job_reason(reason, reasonlen, "message larger than %zu octets", max_message);
        return -1;
    }
    plan->size = count.len;
    return 0;
}

void job_build_write(const struct job_build_in *in, const struct job_build_plan *plan, char *out)
{
    struct out o = {out, 0};

    emit(&o, in, plan);
    if (o.len != plan->size)
        abort(); /* the plan and the write disagree: a bug */
}
