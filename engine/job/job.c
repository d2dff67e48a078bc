/*
 * job: parsing and validation of one mail job from its stream fields (see
 * job.h for the fields and the decisions), and the job object.
 *
 * The work is a few linear passes over the fields with no temporary
 * allocation: classify every field (repeats, counts), validate the envelope
 * and the options, size the message (a passthrough scan of data, or the
 * builder's plan), then one allocation holds the job, its strings and its
 * message. The first problem found wins, in a fixed order, so a given
 * entry always gets the same reason.
 */
#include "job.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "job_internal.h"
#include "message.h"
#include "smtp_syntax.h"

/* Year 9999 ends here: beyond, a Date header cannot be written. */
#define UNIX_MAX_S 253402300799LL

struct job {
    char *id;
    char *from;
    const char **rcpts; /* nrcpts + NULL */
    size_t nrcpts;
    char *relay;
    size_t relay_index;
    const char *message; /* in the block, or the caller's data (borrow_data) */
    size_t message_len;
    struct message_facts bdat; /* data: message_scan as BDAT, from the parse */
    char *message_id;
    int attempt;
    int max_attempts;
    long long expires;
    long long enqueued_ms;
    int smtputf8;
    int built;
    size_t ignored;
    /* one block: this struct, the rcpt pointers, then the strings */
};

void job_reason(char *reason, size_t reasonlen, const char *fmt, ...)
{
    va_list ap;

    if (!reason || reasonlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(reason, reasonlen, fmt, ap);
    va_end(ap);
}

/* The job's names are checked by the engine's one validator of each
 * (smtp_syntax), the one the SMTP client applies too: a job accepted here is
 * never refused by the client, and the other way round. */
int job_utf8_valid(const unsigned char *s, size_t n)
{
    return smtp_syntax_utf8_valid(s, n);
}

const char *job_check_domain(const char *d, size_t n, int allow_utf8)
{
    return smtp_syntax_domain(d, n, allow_utf8);
}

/* Decimal digits only, no sign: 0 and *out, or -1 (syntax) / -2 (> max). */
static int parse_uint(const char *p, size_t n, unsigned long long max, unsigned long long *out)
{
    unsigned long long v = 0;

    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned d;
        if (p[i] < '0' || p[i] > '9')
            return -1;
        d = (unsigned)(p[i] - '0');
        if (v > (max - d) / 10)
            return -2;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Redis "MS-SEQ": the milliseconds part, or -1. */
static long long entry_ms(const char *id)
{
    const char *dash;
    unsigned long long ms, seq;

    if (!id || !(dash = strchr(id, '-')))
        return -1;
    if (parse_uint(id, (size_t)(dash - id), UNIX_MAX_S * 1000 + 999, &ms) < 0 ||
        parse_uint(dash + 1, strlen(dash + 1), UINT64_MAX, &seq) < 0)
        return -1;
    return (long long)ms;
}

/* The first Message-ID of data's header section as "<...>" of printable
 * ASCII, or an empty span: it is for logs and duplicate counting, so an
 * odd one is left out rather than refused. */
static struct job_span data_msgid(const char *p, size_t n)
{
    struct job_span none = {"", 0};
    size_t pos = 0;
    int in_field = 0;

    while (pos < n) {
        const char *nl = memchr(p + pos, '\n', n - pos);
        size_t end = nl ? (size_t)(nl - p) : n, len = end - pos;
        const char *line = p + pos;

        if (len && line[len - 1] == '\r')
            len--;
        if (len == 0)
            break; /* the blank line: the body follows */
        if (line[0] == ' ' || line[0] == '\t') {
            /* a continuation of the field before */
        } else if (len > 10 && strncasecmp(line, "Message-ID", 10) == 0) {
            size_t k = 10;
            while (k < len && (line[k] == ' ' || line[k] == '\t'))
                k++;
            in_field = k < len && line[k] == ':';
            if (in_field) {
                line += k + 1;
                len -= k + 1;
            }
        } else {
            in_field = 0;
        }
        if (in_field) {
            const char *lt = memchr(line, '<', len), *gt;
            if (lt && (gt = memchr(lt, '>', len - (size_t)(lt - line)))) {
                for (const char *c = lt + 1; c < gt; c++)
                    if (*c < 0x21 || *c > 0x7e || *c == '<')
                        return none;
                return (struct job_span){lt, (size_t)(gt - lt) + 1};
            }
            if (lt)
                return none;
        }
        pos = end + 1;
    }
    return none;
}

/* The fields job_parse() looks at, each found at most once. */
struct seen {
    const struct job_field *from, *data, *subject, *text, *html, *id, *relay, *max_attempts,
        *expires, *attempt, *enqueued;
    const struct job_field *first_header;
    size_t nto, nheader, ignored;
};

static const struct job_field **seen_slot(struct seen *s, const struct job_field *f)
{
    switch (f->name_len) {
    case 2:
        return JOB_NAME_IS(f, "id") ? &s->id : NULL;
    case 4:
        if (JOB_NAME_IS(f, "from"))
            return &s->from;
        if (JOB_NAME_IS(f, "data"))
            return &s->data;
        if (JOB_NAME_IS(f, "text"))
            return &s->text;
        return JOB_NAME_IS(f, "html") ? &s->html : NULL;
    case 5:
        return JOB_NAME_IS(f, "relay") ? &s->relay : NULL;
    case 7:
        if (JOB_NAME_IS(f, "subject"))
            return &s->subject;
        if (JOB_NAME_IS(f, "expires"))
            return &s->expires;
        return JOB_NAME_IS(f, "attempt") ? &s->attempt : NULL;
    case 8:
        return JOB_NAME_IS(f, "enqueued") ? &s->enqueued : NULL;
    case 12:
        return JOB_NAME_IS(f, "max_attempts") ? &s->max_attempts : NULL;
    default:
        return NULL;
    }
}

/* Pass 1: find each field, refuse repeats, count recipients and headers. */
static int classify(const struct job_field *fields, size_t nfields, size_t max_rcpts,
                    struct seen *s, char *reason, size_t reasonlen)
{
    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < nfields; i++) {
        const struct job_field *f = &fields[i];
        const struct job_field **slot;

        if (JOB_NAME_IS(f, "to")) {
            if (++s->nto > max_rcpts) {
                job_reason(reason, reasonlen, "too many recipients (over %zu)", max_rcpts);
                return -1;
            }
        } else if (job_is_header(f)) {
            if (!s->first_header)
                s->first_header = f;
            s->nheader++;
        } else if ((slot = seen_slot(s, f))) {
            if (*slot) {
                job_reason(reason, reasonlen, "duplicate field '%.*s'", (int)f->name_len, f->name);
                return -1;
            }
            *slot = f;
        } else {
            s->ignored++;
        }
    }
    if (!s->from) {
        job_reason(reason, reasonlen, "missing from");
        return -1;
    }
    if (s->nto == 0) {
        job_reason(reason, reasonlen, "missing to");
        return -1;
    }
    if (s->data) {
        const struct job_field *other = s->subject ? s->subject : s->text ? s->text : s->html;
        if (other) {
            job_reason(reason, reasonlen, "data and %s are exclusive",
                       other == s->subject ? "subject"
                       : other == s->text  ? "text"
                                           : "html");
            return -1;
        }
        if (s->first_header) {
            job_reason(reason, reasonlen, "data and header.* fields are exclusive");
            return -1;
        }
        return 0;
    }
    if (!s->text && !s->html) {
        job_reason(reason, reasonlen,
                   s->subject ? "missing text or html"
                              : "missing body (data, or subject with "
                                "text and/or html)");
        return -1;
    }
    if (!s->subject) {
        job_reason(reason, reasonlen, "missing subject");
        return -1;
    }
    return 0;
}

/* An integer option: 0 (and *out), or -1 with the reason. */
static int int_field(const struct job_field *f, unsigned long long min, unsigned long long max,
                     unsigned long long *out, char *reason, size_t reasonlen)
{
    int rc = parse_uint(f->value, f->value_len, max, out);

    if (rc == -1 || (rc == 0 && *out < min)) {
        job_reason(reason, reasonlen, "%.*s: not a %s integer", (int)f->name_len, f->name,
                   min ? "positive" : "non-negative");
        return -1;
    }
    if (rc == -2) {
        job_reason(reason, reasonlen, "%.*s: out of range", (int)f->name_len, f->name);
        return -1;
    }
    return 0;
}

/* The options: id, relay, and the integers. */
static int options(const struct seen *s, const char *entry_id, const struct job_limits *lim,
                   struct job *o, struct job_span *id, char *reason, size_t reasonlen)
{
    long long ms = entry_ms(entry_id);
    unsigned long long v;

    if (ms < 0) {
        job_reason(reason, reasonlen, "entry id: not MS-SEQ");
        return -1;
    }
    *id = (struct job_span){entry_id, strlen(entry_id)};
    if (s->id) {
        /* It is a key in logs, events and Redis: visible ASCII and spaces. */
        if (s->id->value_len == 0) {
            job_reason(reason, reasonlen, "id: empty");
            return -1;
        }
        if (s->id->value_len > JOB_ID_MAX) {
            job_reason(reason, reasonlen, "id: longer than %d octets", JOB_ID_MAX);
            return -1;
        }
        for (size_t i = 0; i < s->id->value_len; i++) {
            unsigned char c = (unsigned char)s->id->value[i];
            if (c < 0x20 || c > 0x7e) {
                job_reason(reason, reasonlen, "id: control or non-ASCII octet");
                return -1;
            }
        }
        *id = (struct job_span){s->id->value, s->id->value_len};
    }

    o->relay_index = 0;
    if (s->relay) {
        size_t i;
        for (i = 0; i < lim->nrelays; i++) {
            const char *r = lim->relays[i];
            if (r && strlen(r) == s->relay->value_len &&
                (s->relay->value_len == 0 || memcmp(r, s->relay->value, s->relay->value_len) == 0))
                break;
        }
        if (i == lim->nrelays) {
            job_reason(reason, reasonlen, "relay: not a configured relay");
            return -1;
        }
        o->relay_index = i;
    }

    o->max_attempts = 0;
    if (s->max_attempts) {
        if (int_field(s->max_attempts, 1, INT32_MAX, &v, reason, reasonlen) < 0)
            return -1;
        o->max_attempts = (int)v;
    }
    o->expires = 0;
    if (s->expires) {
        if (int_field(s->expires, 0, UNIX_MAX_S, &v, reason, reasonlen) < 0)
            return -1;
        o->expires = (long long)v;
    }
    o->attempt = 1;
    if (s->attempt) {
        if (int_field(s->attempt, 1, INT32_MAX, &v, reason, reasonlen) < 0)
            return -1;
        o->attempt = (int)v;
    }
    o->enqueued_ms = ms;
    if (s->enqueued) {
        if (int_field(s->enqueued, 0, UNIX_MAX_S * 1000 + 999, &v, reason, reasonlen) < 0)
            return -1;
        o->enqueued_ms = (long long)v;
    }
    return 0;
}

/* The envelope: from and every to; sums the recipients' lengths. */
static int envelope(const struct seen *s, const struct job_field *fields, size_t nfields, int *utf8,
                    size_t *rcpt_bytes, char *reason, size_t reasonlen)
{
    const char *why;
    size_t k = 0;

    *utf8 = 0;
    *rcpt_bytes = 0;
    if (s->from->value_len > 0 &&
        (why = smtp_syntax_mailbox(s->from->value, s->from->value_len, utf8))) {
        job_reason(reason, reasonlen, "from: %s", why);
        return -1;
    }
    for (size_t i = 0; i < nfields; i++) {
        if (!JOB_NAME_IS(&fields[i], "to"))
            continue;
        k++;
        if ((why = smtp_syntax_mailbox(fields[i].value, fields[i].value_len, utf8))) {
            job_reason(reason, reasonlen, "to #%zu: %s", k, why);
            return -1;
        }
        *rcpt_bytes += fields[i].value_len + 1;
    }
    return 0;
}

/* data sent as given: only what makes it unsendable is refused. */
static int check_data(const struct job_field *f, size_t max_message, struct job_span *msgid,
                      struct message_facts *out, char *reason, size_t reasonlen)
{
    struct message_facts facts;
    int rc;

    if (f->value_len == 0) {
        job_reason(reason, reasonlen, "data: empty message");
        return -1;
    }
    /* Normalising only grows a message: a raw length over the cap is final. */
    if (f->value_len > max_message) {
        job_reason(reason, reasonlen, "data: message larger than %zu octets", max_message);
        return -1;
    }
    rc = message_scan(f->value, f->value_len, MESSAGE_ENC_BDAT, &facts);
    if (rc == -MESSAGE_E_NUL) {
        job_reason(reason, reasonlen, "data: NUL octet on line %zu", facts.bad_line);
        return -1;
    }
    if (rc == -MESSAGE_E_LINE_TOO_LONG) {
        job_reason(reason, reasonlen, "data: line %zu longer than 998 octets", facts.bad_line);
        return -1;
    }
    if (rc < 0) {
        job_reason(reason, reasonlen, "data: %s", message_strerror(rc));
        return -1;
    }
    if (facts.size > max_message) {
        job_reason(reason, reasonlen, "data: message larger than %zu octets", max_message);
        return -1;
    }
    *msgid = data_msgid(f->value, f->value_len);
    *out = facts;
    return 0;
}

/* A field's value as a span; absent is {NULL, 0}, and a present empty
 * value is never a NULL pointer, which memchr() and friends may not get. */
static struct job_span span(const struct job_field *f)
{
    if (!f)
        return (struct job_span){NULL, 0};
    return (struct job_span){f->value_len ? f->value : "", f->value_len};
}

/* Copies n octets to *p and a NUL; returns the copy. */
static char *put_str(char **p, const char *s, size_t n)
{
    char *d = *p;

    if (n)
        memcpy(d, s, n);
    d[n] = '\0';
    *p = d + n + 1;
    return d;
}

int job_check_size(size_t nfields, size_t bytes, const struct job_limits *lim, char *reason,
                   size_t reasonlen)
{
    size_t max_fields = lim && lim->max_fields ? lim->max_fields : JOB_DEFAULT_MAX_FIELDS;
    size_t max_bytes = lim && lim->max_bytes ? lim->max_bytes : JOB_DEFAULT_MAX_BYTES;

    if (nfields > max_fields) {
        job_reason(reason, reasonlen, "too many fields: %zu (job.max_fields is %zu)", nfields,
                   max_fields);
        return -1;
    }
    if (bytes > max_bytes) {
        job_reason(reason, reasonlen, "too large: %zu octets (job.max_bytes is %zu)", bytes,
                   max_bytes);
        return -1;
    }
    return 0;
}

struct job *job_parse(const char *entry_id, const struct job_field *fields, size_t nfields,
                      const struct job_limits *lim, char *reason, size_t reasonlen)
{
    struct seen s;
    struct job o, *j;
    struct job_span id, msgid = {"", 0};
    struct job_build_in in;
    struct job_build_plan plan;
    struct message_facts bdat;
    size_t max_rcpts, max_message, rcpt_bytes, relay_len, msg_len, total;
    const char *relay;
    char *p;

    job_reason(reason, reasonlen, "ok");
    if (!lim || lim->nrelays == 0 || !lim->relays || !lim->relays[0]) {
        job_reason(reason, reasonlen, "no relay configured");
        return NULL;
    }
    if (!fields && nfields) {
        job_reason(reason, reasonlen, "no fields");
        return NULL;
    }
    /* Size first: an entry over the limits is refused before any work on
     * it, with a reason that names the limit. */
    total = 0;
    for (size_t i = 0; i < nfields; i++)
        total += fields[i].name_len + fields[i].value_len;
    if (job_check_size(nfields, total, lim, reason, reasonlen) < 0)
        return NULL;
    max_rcpts = lim->max_rcpts ? lim->max_rcpts : JOB_DEFAULT_MAX_RCPTS;
    max_message = lim->max_message ? lim->max_message : JOB_DEFAULT_MAX_MESSAGE;
    memset(&o, 0, sizeof(o));
    memset(&bdat, 0, sizeof(bdat));

    if (classify(fields, nfields, max_rcpts, &s, reason, reasonlen) < 0)
        return NULL;
    if (envelope(&s, fields, nfields, &o.smtputf8, &rcpt_bytes, reason, reasonlen) < 0)
        return NULL;
    if (options(&s, entry_id, lim, &o, &id, reason, reasonlen) < 0)
        return NULL;

    if (s.data) {
        if (check_data(s.data, max_message, &msgid, &bdat, reason, reasonlen) < 0)
            return NULL;
        msg_len = s.data->value_len;
    } else {
        long long date = o.enqueued_ms / 1000;
        if (o.enqueued_ms == 0)
            date = lim->now < 0 ? 0 : lim->now > UNIX_MAX_S ? UNIX_MAX_S : lim->now;
        in = (struct job_build_in){
            .id = id.p,
            .id_len = id.n,
            .from = s.from->value,
            .from_len = s.from->value_len,
            .fields = fields,
            .nfields = nfields,
            .subject = span(s.subject),
            .text = span(s.text),
            .html = span(s.html),
            .date = date,
            .msgid_domain = lim->msgid_domain,
            .smtputf8 = o.smtputf8,
        };
        if (job_build_plan(&in, max_message, &plan, reason, reasonlen) < 0)
            return NULL;
        msg_len = plan.size;
        msgid.n = plan.msgid_len;
    }

    relay = lim->relays[o.relay_index];
    relay_len = strlen(relay);
    /* Every term is bounded (fields by their lengths, the message by
     * max_message), but max_message is the caller's: keep the sum honest. */
    total = sizeof(struct job) + (s.nto + 1) * sizeof(char *) + id.n + 1 + s.from->value_len + 1 +
            rcpt_bytes + relay_len + 1 + msgid.n + 1;
    if (msg_len >= SIZE_MAX - total) {
        job_reason(reason, reasonlen, "out of memory");
        return NULL;
    }
    if (!s.data || !lim->borrow_data)
        total += msg_len + 1;
    j = malloc(total);
    if (!j) {
        job_reason(reason, reasonlen, "out of memory");
        return NULL;
    }
    *j = o;
    j->rcpts = (const char **)(j + 1);
    p = (char *)(j->rcpts + s.nto + 1);
    j->id = put_str(&p, id.p, id.n);
    j->from = put_str(&p, s.from->value, s.from->value_len);
    for (size_t i = 0; i < nfields; i++)
        if (JOB_NAME_IS(&fields[i], "to"))
            j->rcpts[j->nrcpts++] = put_str(&p, fields[i].value, fields[i].value_len);
    j->rcpts[j->nrcpts] = NULL;
    j->relay = put_str(&p, relay, relay_len);
    j->ignored = s.ignored;
    j->built = !s.data;
    j->message_len = msg_len;
    if (s.data) {
        j->message_id = put_str(&p, msgid.p, msgid.n);
        j->bdat = bdat;
        j->message = lim->borrow_data ? s.data->value : put_str(&p, s.data->value, msg_len);
    } else {
        j->message_id = p;
        job_build_msgid(&in, &plan, p);
        p[msgid.n] = '\0';
        p += msgid.n + 1;
        j->message = p;
        job_build_write(&in, &plan, p);
        p[msg_len] = '\0';
    }
    job_reason(reason, reasonlen, "ok");
    return j;
}

void job_free(struct job *j)
{
    free(j);
}

const char *job_id(const struct job *j)
{
    return j->id;
}

const char *job_from(const struct job *j)
{
    return j->from;
}

const char *const *job_rcpts(const struct job *j, size_t *n)
{
    if (n)
        *n = j->nrcpts;
    return j->rcpts;
}

const char *job_relay(const struct job *j)
{
    return j->relay;
}

size_t job_relay_index(const struct job *j)
{
    return j->relay_index;
}

const char *job_message(const struct job *j, size_t *len)
{
    if (len)
        *len = j->message_len;
    return j->message;
}

const struct message_facts *job_message_bdat_facts(const struct job *j)
{
    return j->built ? NULL : &j->bdat;
}

const char *job_message_id(const struct job *j)
{
    return j->message_id;
}

int job_attempt(const struct job *j)
{
    return j->attempt;
}

int job_max_attempts(const struct job *j)
{
    return j->max_attempts;
}

long long job_expires(const struct job *j)
{
    return j->expires;
}

long long job_enqueued_ms(const struct job *j)
{
    return j->enqueued_ms;
}

int job_needs_smtputf8(const struct job *j)
{
    return j->smtputf8;
}

int job_built(const struct job *j)
{
    return j->built;
}

size_t job_ignored_fields(const struct job *j)
{
    return j->ignored;
}
