/*
 * fuzz_job: property checks of job parsing and message building. The input
 * is a flags byte, then fields as NUL-separated name, value, name, value...
 * (with flag 0x80, the octet 0x01 in a value stands for NUL, so values can
 * hold one). The flags pick the limits, so the small caps get hit too.
 *
 * Invariants, each an abort(): no crash or leak; a failure has a short,
 * printable reason; a job's message passes message_scan within max_message,
 * a built one has no 8-bit octet in its header section unless the envelope
 * needs SMTPUTF8, and carries its Message-ID; every recipient and the
 * sender are safe on an SMTP command line; parsing the same input again
 * gives the same job, octet for octet.
 */
#include "job.h"
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

#define MAX_FIELDS 256

static const char *const relay_names[] = {"main", "bulk", "eu"};

static void check_addr(const char *a, int may_be_empty)
{
    size_t n = strlen(a);

    if (n == 0) {
        ASSERT(may_be_empty);
        return;
    }
    ASSERT(n <= 254);
    ASSERT(strchr(a, '@'));
    for (size_t i = 0; i < n; i++)
        ASSERT(a[i] != '\r' && a[i] != '\n' && a[i] != '<' && a[i] != '>');
}

static void check_job(const struct job *j, const struct job_limits *lim)
{
    size_t len, n;
    const char *m = job_message(j, &len);
    const char *const *r = job_rcpts(j, &n);
    struct message_facts f;
    int eight = message_has_8bit(job_from(j), strlen(job_from(j)));
    const char *msgid = job_message_id(j);

    ASSERT(m[len] == '\0');
    ASSERT(message_scan(m, len, MESSAGE_ENC_DATA, &f) == 0);
    ASSERT(f.size <= (lim->max_message ? lim->max_message : JOB_DEFAULT_MAX_MESSAGE));
    check_addr(job_from(j), 1);
    ASSERT(n >= 1 && n <= (lim->max_rcpts ? lim->max_rcpts : JOB_DEFAULT_MAX_RCPTS));
    for (size_t i = 0; i < n; i++) {
        check_addr(r[i], 0);
        eight |= message_has_8bit(r[i], strlen(r[i]));
    }
    ASSERT(r[n] == NULL);
    ASSERT(job_needs_smtputf8(j) == eight);
    ASSERT(job_relay_index(j) < lim->nrelays);
    ASSERT(strcmp(job_relay(j), lim->relays[job_relay_index(j)]) == 0);
    ASSERT(job_attempt(j) >= 1 && job_max_attempts(j) >= 0);
    ASSERT(job_expires(j) >= 0 && job_enqueued_ms(j) >= 0);
    ASSERT(strlen(job_id(j)) >= 1 && strlen(job_id(j)) <= JOB_ID_MAX + 40);
    for (const char *c = msgid; *c; c++)
        ASSERT(*c > 0x20 && *c < 0x7f);
    if (job_built(j)) {
        const char *end = memmem(m, len, "\r\n\r\n", 4);
        ASSERT(end);
        ASSERT(msgid[0] == '<' && strchr(msgid, '@'));
        ASSERT(memmem(m, (size_t)(end - m), msgid, strlen(msgid)));
        ASSERT(memmem(m, (size_t)(end - m), "\r\nMIME-Version: 1.0\r\n", 21));
        if (!job_needs_smtputf8(j))
            ASSERT(!message_has_8bit(m, (size_t)(end - m)));
        /* CRLF only, as built. */
        for (size_t i = 0; i < len; i++)
            ASSERT((m[i] != '\r' || m[i + 1] == '\n') && (m[i] != '\n' || (i && m[i - 1] == '\r')));
    }
}

static void check_same(const struct job *a, const struct job *b)
{
    size_t la, lb, na, nb;
    const char *ma = job_message(a, &la), *mb = job_message(b, &lb);
    const char *const *ra = job_rcpts(a, &na), *const *rb = job_rcpts(b, &nb);

    ASSERT(la == lb && memcmp(ma, mb, la) == 0);
    ASSERT(na == nb);
    for (size_t i = 0; i < na; i++)
        ASSERT(strcmp(ra[i], rb[i]) == 0);
    ASSERT(strcmp(job_id(a), job_id(b)) == 0 && strcmp(job_from(a), job_from(b)) == 0);
    ASSERT(strcmp(job_message_id(a), job_message_id(b)) == 0);
    ASSERT(job_relay_index(a) == job_relay_index(b) && job_attempt(a) == job_attempt(b));
    ASSERT(job_max_attempts(a) == job_max_attempts(b) && job_expires(a) == job_expires(b));
    ASSERT(job_enqueued_ms(a) == job_enqueued_ms(b) && job_built(a) == job_built(b));
    ASSERT(job_ignored_fields(a) == job_ignored_fields(b));
}

/* A data job hands on its parse's scan: what message_scan says as BDAT. */
static void check_bdat_facts(const struct job *j)
{
    const struct message_facts *k = job_message_bdat_facts(j);
    struct message_facts f;
    size_t len;
    const char *m = job_message(j, &len);

    ASSERT(!k == !!job_built(j));
    if (!k)
        return;
    ASSERT(message_scan(m, len, MESSAGE_ENC_BDAT, &f) == 0);
    ASSERT(k->size == f.size && k->wire_len == f.wire_len && k->lines == f.lines);
    ASSERT(k->line_max == f.line_max && k->eightbit == f.eightbit && k->bad_line == 0);
}

static void check_reason(const char *reason)
{
    size_t n = strlen(reason);

    ASSERT(n > 0 && n < JOB_REASON_MAX);
    for (size_t i = 0; i < n; i++)
        ASSERT(reason[i] >= 0x20 && reason[i] < 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t rcpt_caps[4] = {0, 1, 3, 5};
    struct job_field fields[MAX_FIELDS];
    struct job_limits lim;
    char *copy, reason[512], reason2[512], tiny[8];
    size_t nf = 0, pos = 1;
    unsigned flags;
    struct job *a, *b;

    if (size < 1)
        return 0;
    flags = data[0];
    /* One octet more, a NUL: every value is then NUL-terminated, as
     * borrow_data requires of its caller. */
    copy = malloc(size + 1);
    ASSERT(copy);
    memcpy(copy, data, size);
    copy[size] = '\0';
    /* Split into tokens; pair them as name, value (a trailing name has ""). */
    while (pos <= size && nf < MAX_FIELDS) {
        const char *nul = memchr(copy + pos, '\0', size - pos);
        size_t end = nul ? (size_t)(nul - copy) : size;
        struct job_field *f = &fields[nf];
        if (pos == size)
            break;
        f->name = copy + pos;
        f->name_len = end - pos;
        pos = end + 1;
        f->value = "";
        f->value_len = 0;
        if (pos < size) {
            nul = memchr(copy + pos, '\0', size - pos);
            end = nul ? (size_t)(nul - copy) : size;
            f->value = copy + pos;
            f->value_len = end - pos;
            if (flags & 0x80)
                for (size_t i = pos; i < end; i++)
                    if (copy[i] == 1)
                        copy[i] = 0;
            pos = end + 1;
        }
        nf++;
    }

    lim.max_rcpts = rcpt_caps[flags & 3];
    lim.max_message = flags & 4 ? 300 : 0;
    lim.relays = relay_names;
    lim.nrelays = 1 + (flags >> 4 & 1) + (flags >> 5 & 1);
    lim.msgid_domain = flags & 8 ? NULL : "mx.example.net";
    lim.now = 1795872600;
    lim.borrow_data = 0;
    {
        const char *entry = flags & 0x40 ? "0-1" : "1795872600000-0";
        struct job_limits borrow = lim;
        /* The same job whether it copies the data or borrows it. */
        borrow.borrow_data = 1;
        a = job_parse(entry, fields, nf, &lim, reason, sizeof(reason));
        b = job_parse(entry, fields, nf, &borrow, reason2, sizeof(reason2));
        ASSERT(!a == !b);
        if (a) {
            check_job(a, &lim);
            check_job(b, &borrow);
            check_same(a, b);
            check_bdat_facts(a);
            check_bdat_facts(b);
            ASSERT(strcmp(reason, "ok") == 0);
        } else {
            check_reason(reason);
            ASSERT(strcmp(reason, reason2) == 0);
            /* A short buffer truncates, never overflows. */
            ASSERT(!job_parse(entry, fields, nf, &lim, tiny, sizeof(tiny)));
            ASSERT(strlen(tiny) < sizeof(tiny));
        }
    }
    job_free(a);
    job_free(b);
    free(copy);
    return 0;
}
