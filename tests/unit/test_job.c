/*
 * test_job: a mail job from its stream fields. Every field and its default;
 * every malformed case with its exact reason (table); the messages ringmail
 * builds, byte for byte with a fixed enqueue time and host (text, html,
 * multipart, RFC 2047 subjects, folding, 8-bit and long-line bodies,
 * header overrides); the deterministic Message-ID; data passthrough with
 * its Message-ID found, its BDAT facts handed on, and borrowed instead of
 * copied when asked. Every message a job carries must pass message_scan.
 */
#include "check.h"
#include "job.h"
#include "message.h"

#include <stdlib.h>
#include <string.h>

/* A field from two literals, so values can hold NUL octets. */
#define F(n, v)                                                                                    \
    {                                                                                              \
        n, sizeof(n) - 1, v, sizeof(v) - 1                                                         \
    }
#define FROM  F("from", "a@example.com")
#define TO    F("to", "b@example.org")
#define SUBJ  F("subject", "Hi")
#define TEXT  F("text", "Hello\n")
#define DATA  F("data", "Subject: x\n\nbody\n")
#define ENTRY "1795872600000-0" /* Sat, 28 Nov 2026 13:30:00 +0000 */

static const char *const relays[] = {"main", "bulk"};
static char reason[JOB_REASON_MAX];

static struct job_limits limits(void)
{
    struct job_limits l = {0, 0, relays, 2, "mx.example.net", 1700000000, 0, 0, 0};
    return l;
}

/* Every message a job carries is valid wire input, and short lines. */
static void check_wire(const struct job *j)
{
    struct message_facts f;
    size_t len;
    const char *m = job_message(j, &len);

    CHECK_INT(message_scan(m, len, MESSAGE_ENC_DATA, &f), 0);
    CHECK(f.line_max <= MESSAGE_LINE_MAX);
    CHECK_INT(m[len], '\0');
}

static struct job *parse_n(const struct job_field *f, size_t n, const struct job_limits *l)
{
    struct job *j = job_parse(ENTRY, f, n, l, reason, sizeof(reason));
    if (j)
        check_wire(j);
    return j;
}
#define PARSE(arr, l) parse_n(arr, sizeof(arr) / sizeof(arr[0]), l)

/* A field list built at run time. */
struct list {
    struct job_field f[128];
    size_t n;
};

static void add(struct list *l, const char *name, const char *value, size_t len)
{
    l->f[l->n++] = (struct job_field){name, strlen(name), value, len};
}
#define ADDS(l, name, lit) add(l, name, lit, sizeof(lit) - 1)

static void test_defaults(void)
{
    struct job_limits l = limits();
    struct job_field f[] = {FROM, TO, F("to", "c@example.org"), SUBJ, TEXT};
    struct job *j = PARSE(f, &l);
    size_t n = 0;
    const char *const *r;

    CHECK(j != NULL);
    if (!j)
        return;
    CHECK_STR(reason, "ok");
    CHECK_STR(job_id(j), ENTRY);
    CHECK_STR(job_from(j), "a@example.com");
    r = job_rcpts(j, &n);
    CHECK_INT(n, 2);
    CHECK_STR(r[0], "b@example.org");
    CHECK_STR(r[1], "c@example.org");
    CHECK(r[2] == NULL);
    CHECK_STR(job_relay(j), "main");
    CHECK_INT(job_relay_index(j), 0);
    CHECK_INT(job_attempt(j), 1);
    CHECK_INT(job_max_attempts(j), 0);
    CHECK_INT(job_expires(j), 0);
    CHECK_INT(job_enqueued_ms(j), 1795872600000LL);
    CHECK_INT(job_needs_smtputf8(j), 0);
    CHECK_INT(job_built(j), 1);
    CHECK_INT(job_ignored_fields(j), 0);
    CHECK_STR(job_message_id(j), "<ringmail.1795872600000-0@mx.example.net>");
    job_free(j);
}

static void test_options(void)
{
    struct job_limits l = limits();
    struct job_field f[] = {
        F("campaign", "spring"),
        FROM,
        TO,
        SUBJ,
        TEXT,
        F("id", "order.42/7"),
        F("relay", "bulk"),
        F("max_attempts", "5"),
        F("expires", "1795900000"),
        F("attempt", "3"),
        F("enqueued", "1700000000123"),
        F("Header.X-Not", "case matters"),
        F("expires_at", "ignored"),
    };
    struct job *j = PARSE(f, &l);

    CHECK(j != NULL);
    if (!j)
        return;
    CHECK_STR(job_id(j), "order.42/7");
    CHECK_STR(job_relay(j), "bulk");
    CHECK_INT(job_relay_index(j), 1);
    CHECK_INT(job_max_attempts(j), 5);
    CHECK_INT(job_expires(j), 1795900000);
    CHECK_INT(job_attempt(j), 3);
    CHECK_INT(job_enqueued_ms(j), 1700000000123LL);
    CHECK_INT(job_ignored_fields(j), 3);
    /* The id, escaped to atext, makes the Message-ID; the enqueue time the Date. */
    CHECK_STR(job_message_id(j), "<ringmail.order=2E42=2F7@mx.example.net>");
    CHECK(strncmp(job_message(j, NULL), "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n", 39) == 0);
    job_free(j);
}

/* The null sender, internationalised and literal addresses, quoting. */
static void test_addresses(void)
{
    struct job_limits l = limits();
    struct job_field f[] = {F("from", ""),
                            F("header.From", "Mailer <mailer@example.com>"),
                            F("to", "j\303\266rg@b\303\274cher.example"),
                            F("to", "\"john smith\"@example.org"),
                            F("to", "b@[192.0.2.1]"),
                            F("to", "b@[IPv6:2001:db8::1]"),
                            F("to", "x!#$%&'*+-/=?^_`{|}~.y@a-b.c1"),
                            SUBJ,
                            TEXT};
    struct job *j = PARSE(f, &l);
    size_t n;

    CHECK(j != NULL);
    if (!j)
        return;
    CHECK_STR(job_from(j), "");
    CHECK_INT(job_needs_smtputf8(j), 1);
    CHECK_STR(job_rcpts(j, &n)[1], "\"john smith\"@example.org");
    CHECK_INT(n, 5);
    job_free(j);
}

struct bad_case {
    const char *reason;
    struct job_field f[8];
};
#define END                                                                                        \
    {                                                                                              \
        NULL, 0, NULL, 0                                                                           \
    }

static const struct bad_case bad_cases[] = {
    /* Which fields there are. */
    {"missing from", {TO, SUBJ, TEXT, END}},
    {"missing to", {FROM, SUBJ, TEXT, END}},
    {"missing body (data, or subject with text and/or html)", {FROM, TO, END}},
    {"missing text or html", {FROM, TO, SUBJ, END}},
    {"missing subject", {FROM, TO, TEXT, END}},
    {"data and subject are exclusive", {FROM, TO, DATA, SUBJ, END}},
    {"data and text are exclusive", {FROM, TO, DATA, TEXT, END}},
    {"data and html are exclusive", {FROM, TO, F("html", "x"), DATA, END}},
    {"data and header.* fields are exclusive", {FROM, TO, DATA, F("header.X-A", "1"), END}},
    {"duplicate field 'from'", {FROM, TO, FROM, SUBJ, TEXT, END}},
    {"duplicate field 'subject'", {FROM, TO, SUBJ, TEXT, SUBJ, END}},
    {"duplicate field 'data'", {FROM, TO, DATA, DATA, END}},
    {"duplicate field 'id'", {FROM, TO, SUBJ, TEXT, F("id", "a"), F("id", "a"), END}},
    /* Addresses: injection first, then lengths, then syntax. */
    {"from: no '@' in address", {F("from", "alice"), TO, SUBJ, TEXT, END}},
    {"to #1: empty address", {FROM, F("to", ""), SUBJ, TEXT, END}},
    {"to #2: CR, LF or NUL in address",
     {FROM, TO, F("to", "b@x.org>\r\nRCPT TO:<evil@x.org"), SUBJ, TEXT, END}},
    {"to #1: CR, LF or NUL in address", {FROM, F("to", "b\0@x.org"), SUBJ, TEXT, END}},
    {"from: CR, LF or NUL in address", {F("from", "a@x.org\n"), TO, SUBJ, TEXT, END}},
    {"to #1: control character in address", {FROM, F("to", "b\033@x.org"), SUBJ, TEXT, END}},
    {"to #1: '<' or '>' in address (give the bare address)",
     {FROM, F("to", "<b@x.org>"), SUBJ, TEXT, END}},
    {"to #1: address is not valid UTF-8", {FROM, F("to", "b\xff@x.org"), SUBJ, TEXT, END}},
    {"to #1: address is not valid UTF-8", {FROM, F("to", "b\xc0\xaf@x.org"), SUBJ, TEXT, END}},
    {"to #1: no '@' in address", {FROM, F("to", "bob"), SUBJ, TEXT, END}},
    {"to #1: local part longer than 64 octets",
     {FROM, F("to", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@x.org"),
      SUBJ, TEXT, END}},
    {"to #1: space outside a quoted local part", {FROM, F("to", "b c@x.org"), SUBJ, TEXT, END}},
    {"to #1: space outside a quoted local part", {FROM, F("to", "b@x .org"), SUBJ, TEXT, END}},
    {"to #1: unterminated quoted local part", {FROM, F("to", "\"bc@x.org"), SUBJ, TEXT, END}},
    {"to #1: invalid character in quoted local part",
     {FROM, F("to", "\"b\tc\"@x.org"), SUBJ, TEXT, END}},
    {"to #1: invalid character in local part", {FROM, F("to", "b(c)@x.org"), SUBJ, TEXT, END}},
    {"to #1: invalid character in local part", {FROM, F("to", "\"b\"c@x.org"), SUBJ, TEXT, END}},
    {"to #1: misplaced '.' in local part", {FROM, F("to", ".b@x.org"), SUBJ, TEXT, END}},
    {"to #1: misplaced '.' in local part", {FROM, F("to", "b.@x.org"), SUBJ, TEXT, END}},
    {"to #1: misplaced '.' in local part", {FROM, F("to", "b..c@x.org"), SUBJ, TEXT, END}},
    {"to #1: empty local part", {FROM, F("to", "@x.org"), SUBJ, TEXT, END}},
    {"to #1: empty domain", {FROM, F("to", "b@"), SUBJ, TEXT, END}},
    {"to #1: empty domain label", {FROM, F("to", "b@x..org"), SUBJ, TEXT, END}},
    {"to #1: empty domain label", {FROM, F("to", "b@x.org."), SUBJ, TEXT, END}},
    {"to #1: domain label longer than 63 octets",
     {FROM, F("to", "b@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.org"), SUBJ,
      TEXT, END}},
    {"to #1: domain label starts or ends with '-'", {FROM, F("to", "b@-x.org"), SUBJ, TEXT, END}},
    {"to #1: domain label starts or ends with '-'", {FROM, F("to", "b@x-.org"), SUBJ, TEXT, END}},
    {"to #1: invalid character in domain", {FROM, F("to", "b@x_y.org"), SUBJ, TEXT, END}},
    {"to #1: invalid character in domain", {FROM, F("to", "b@x@y.org"), SUBJ, TEXT, END}},
    {"to #1: invalid address literal", {FROM, F("to", "b@[192.0.2]"), SUBJ, TEXT, END}},
    {"to #1: invalid address literal", {FROM, F("to", "b@[IPv6:zz::1]"), SUBJ, TEXT, END}},
    {"to #1: invalid address literal", {FROM, F("to", "b@[x:1]"), SUBJ, TEXT, END}},
    /* Options. */
    {"id: empty", {FROM, TO, SUBJ, TEXT, F("id", ""), END}},
    {"id: control or non-ASCII octet", {FROM, TO, SUBJ, TEXT, F("id", "a\nb"), END}},
    {"id: control or non-ASCII octet", {FROM, TO, SUBJ, TEXT, F("id", "caf\303\251"), END}},
    {"relay: not a configured relay", {FROM, TO, SUBJ, TEXT, F("relay", "Main"), END}},
    {"relay: not a configured relay", {FROM, TO, SUBJ, TEXT, F("relay", ""), END}},
    {"max_attempts: not a positive integer", {FROM, TO, SUBJ, TEXT, F("max_attempts", "0"), END}},
    {"max_attempts: not a positive integer", {FROM, TO, SUBJ, TEXT, F("max_attempts", "-1"), END}},
    {"max_attempts: not a positive integer", {FROM, TO, SUBJ, TEXT, F("max_attempts", " 3"), END}},
    {"max_attempts: not a positive integer", {FROM, TO, SUBJ, TEXT, F("max_attempts", ""), END}},
    {"max_attempts: out of range", {FROM, TO, SUBJ, TEXT, F("max_attempts", "2147483648"), END}},
    {"attempt: not a positive integer", {FROM, TO, SUBJ, TEXT, F("attempt", "0"), END}},
    {"expires: not a non-negative integer", {FROM, TO, SUBJ, TEXT, F("expires", "1.5"), END}},
    {"expires: out of range", {FROM, TO, SUBJ, TEXT, F("expires", "253402300800"), END}},
    {"enqueued: not a non-negative integer", {FROM, TO, SUBJ, TEXT, F("enqueued", "+1"), END}},
    {"enqueued: out of range",
     {FROM, TO, SUBJ, TEXT, F("enqueued", "99999999999999999999999"), END}},
    /* data. */
    {"data: empty message", {FROM, TO, F("data", ""), END}},
    {"data: NUL octet on line 2", {FROM, TO, F("data", "Subject: x\n\0\n"), END}},
    /* Built: header injection and header rules. */
    {"subject: CR, LF or NUL in value (header injection)",
     {FROM, TO, F("subject", "Hi\r\nBcc: evil@x.org"), TEXT, END}},
    {"subject: CR, LF or NUL in value (header injection)",
     {FROM, TO, F("subject", "Hi\0"), TEXT, END}},
    {"subject: control character in value", {FROM, TO, F("subject", "Hi\033[1m"), TEXT, END}},
    {"subject: not valid UTF-8", {FROM, TO, F("subject", "Gr\xfc\xdf"), TEXT, END}},
    {"header.X-Tag: CR, LF or NUL in value (header injection)",
     {FROM, TO, SUBJ, TEXT, F("header.X-Tag", "a\nBcc: evil@x.org"), END}},
    {"header.* #1: invalid header name", {FROM, TO, SUBJ, TEXT, F("header.X Tag", "a"), END}},
    {"header.* #2: invalid header name",
     {FROM, TO, SUBJ, TEXT, F("header.X-A", "a"), F("header.X:Tag", "a"), END}},
    {"header.* #1: invalid header name", {FROM, TO, SUBJ, TEXT, F("header.X\303\244", "a"), END}},
    {"header.* #1: header name empty", {FROM, TO, SUBJ, TEXT, F("header.", "a"), END}},
    {"header.* #1: header name longer than 76 octets",
     {FROM, TO, SUBJ, TEXT,
      F("header.X-0123456789012345678901234567890123456789012345678901234567890123456789012345",
        "a"),
      END}},
    {"header.Bcc: refused (it would disclose the blind recipients)",
     {FROM, TO, SUBJ, TEXT, F("header.Bcc", "c@x.org"), END}},
    {"header.Subject: refused (use the subject field)",
     {FROM, TO, SUBJ, TEXT, F("header.Subject", "x"), END}},
    {"header.mime-version: refused (ringmail writes the MIME structure)",
     {FROM, TO, SUBJ, TEXT, F("header.mime-version", "1.0"), END}},
    {"header.Content-Type: refused (ringmail writes the MIME structure)",
     {FROM, TO, SUBJ, TEXT, F("header.Content-Type", "text/plain"), END}},
    {"header.Received: refused (trace fields are for servers)",
     {FROM, TO, SUBJ, TEXT, F("header.Received", "from x"), END}},
    {"header.reply-to: given twice",
     {FROM, TO, SUBJ, TEXT, F("header.Reply-To", "r@x.org"), F("header.reply-to", "s@x.org"), END}},
    {"header.X-Tag: empty value", {FROM, TO, SUBJ, TEXT, F("header.X-Tag", " \t "), END}},
    {"header.Reply-To: non-ASCII in a structured header (encode it per RFC 2047)",
     {FROM, TO, SUBJ, TEXT, F("header.Reply-To", "J\303\266rg <j@x.org>"), END}},
    {"header.Message-ID: not <left@right>",
     {FROM, TO, SUBJ, TEXT, F("header.Message-ID", "abc@x.org"), END}},
    {"header.Message-ID: not <left@right>",
     {FROM, TO, SUBJ, TEXT, F("header.Message-ID", "<abc>"), END}},
    {"header.Message-ID: not <left@right>",
     {FROM, TO, SUBJ, TEXT, F("header.Message-ID", "<a b@x.org>"), END}},
    {"the null sender needs header.From", {F("from", ""), TO, SUBJ, TEXT, END}},
    {"text: NUL octet", {FROM, TO, SUBJ, F("text", "a\0b"), END}},
    {"html: not valid UTF-8 (the charset is utf-8)",
     {FROM, TO, SUBJ, TEXT, F("html", "<p>Gr\xfc\xdf</p>"), END}},
};

static void test_bad_table(void)
{
    struct job_limits l = limits();

    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *c = &bad_cases[i];
        size_t n = 0;
        struct job *j;

        while (n < 8 && c->f[n].name)
            n++;
        j = parse_n(c->f, n, &l);
        CHECK(j == NULL);
        if (strcmp(reason, c->reason) != 0)
            fprintf(stderr, "case %zu:\n", i);
        CHECK_STR(reason, c->reason);
        job_free(j);
    }
}

/* The malformed cases that need limits or sizes of their own. */
static void test_bad_sized(void)
{
    struct job_limits l = limits();
    struct job_field f[] = {FROM, TO, F("to", "c@x.org"), F("to", "d@x.org"), SUBJ, TEXT};
    struct job_field d[] = {FROM, TO, F("data", "Subject: x\n\n0123456789\n")};
    static char big[1200], refs[1200];
    struct list h = {.n = 0};
    char small[4];

    l.max_rcpts = 2;
    CHECK(PARSE(f, &l) == NULL);
    CHECK_STR(reason, "too many recipients (over 2)");
    l = limits();
    l.max_message = 20;
    CHECK(PARSE(d, &l) == NULL);
    CHECK_STR(reason, "data: message larger than 20 octets");
    CHECK(PARSE(f, &l) == NULL);
    CHECK_STR(reason, "message larger than 20 octets");
    l = limits();
    l.msgid_domain = NULL;
    CHECK(PARSE(f, &l) == NULL);
    CHECK_STR(reason, "msgid domain: not configured");
    l.msgid_domain = "bad_host";
    CHECK(PARSE(f, &l) == NULL);
    CHECK_STR(reason, "msgid domain: invalid character in domain");
    {
        struct job *j = PARSE(d, &l); /* data never needs the domain */
        CHECK(j != NULL);
        job_free(j);
    }
    l = limits();
    l.nrelays = 0;
    CHECK(PARSE(f, &l) == NULL);
    CHECK_STR(reason, "no relay configured");
    l = limits();
    CHECK(job_parse("bogus", f, 6, &l, reason, sizeof(reason)) == NULL);
    CHECK_STR(reason, "entry id: not MS-SEQ");
    CHECK(job_parse(NULL, f, 6, &l, reason, sizeof(reason)) == NULL);
    /* A reason truncates cleanly in a small buffer, and a NULL one is fine. */
    CHECK(job_parse(NULL, f, 6, &l, small, sizeof(small)) == NULL);
    CHECK_STR(small, "ent");
    CHECK(job_parse(NULL, f, 6, &l, NULL, 0) == NULL);

    /* A 999-octet line in data; an unfoldable word; too many headers. */
    memcpy(big, "Subject: x\n\n", 12);
    memset(big + 12, 'a', 999);
    ADDS(&h, "from", "a@x.org");
    ADDS(&h, "to", "b@x.org");
    add(&h, "data", big, 12 + 999);
    CHECK(parse_n(h.f, h.n, &l) == NULL);
    CHECK_STR(reason, "data: line 3 longer than 998 octets");
    h.n = 2;
    ADDS(&h, "subject", "s");
    ADDS(&h, "text", "t");
    memset(refs, 'r', sizeof(refs));
    memcpy(refs, "<a@", 3);
    refs[990] = '>';
    add(&h, "header.References", refs, 991);
    CHECK(parse_n(h.f, h.n, &l) == NULL);
    CHECK_STR(reason, "header.References: a word too long to fold within 998 octets");
    h.n = 4;
    for (int i = 0; i < 101; i++)
        ADDS(&h, "header.X-Many", "v");
    CHECK(parse_n(h.f, h.n, &l) == NULL);
    CHECK_STR(reason, "too many header.* fields (over 100)");
    h.n = 4;
    ADDS(&h, "id",
         "0123456789012345678901234567890123456789012345678901234567890123456789"
         "0123456789012345678901234567890123456789012345678901234567890123456789"
         "0123456789012345678901234567890123456789012345678901234567890123");
    CHECK(parse_n(h.f, h.n, &l) == NULL);
    CHECK_STR(reason, "id: longer than 200 octets");
    /* A 255-octet address (its domain alone is fine): labels of 63. */
    h.n = 0;
    memcpy(big, "b@", 2);
    for (size_t i = 2; i < 255; i++)
        big[i] = (i - 2) % 64 == 63 ? '.' : 'a';
    ADDS(&h, "from", "a@x.org");
    ADDS(&h, "data", "x\n");
    add(&h, "to", big, 255);
    CHECK(parse_n(h.f, h.n, &l) == NULL);
    CHECK_STR(reason, "to #1: address longer than 254 octets");
    h.f[2].value_len--; /* 254: the most RFC 5321 allows */
    {
        struct job *j = parse_n(h.f, h.n, &l);
        CHECK(j != NULL);
        if (!j)
            fprintf(stderr, "  reason: %s\n", reason);
        job_free(j);
    }
}

/* A built message compared byte for byte. */
static void check_built(const struct job_field *f, size_t n, const char *want)
{
    struct job_limits l = limits();
    struct job *j = parse_n(f, n, &l);
    size_t len;
    const char *m;

    CHECK(j != NULL);
    if (!j) {
        fprintf(stderr, "  reason: %s\n", reason);
        return;
    }
    m = job_message(j, &len);
    if (len != strlen(want) || memcmp(m, want, len) != 0)
        fprintf(stderr, "got:\n%.*s\nwant:\n%s\n", (int)len, m, want);
    CHECK_MEM(m, len, want, strlen(want));
    job_free(j);
}
#define BUILT(arr, want) check_built(arr, sizeof(arr) / sizeof(arr[0]), want)

#define HEAD(subject_line)                                                                         \
    "Date: Sat, 28 Nov 2026 13:30:00 +0000\r\n"                                                    \
    "From: a@example.com\r\n"                                                                      \
    "To: b@example.org\r\n" subject_line                                                           \
    "Message-ID: <ringmail.1795872600000-0@mx.example.net>\r\n"

static void test_built_golden(void)
{
    struct job_field text[] = {FROM, TO, SUBJ, F("text", "Hello\nWorld")};
    struct job_field html[] = {FROM, TO, SUBJ, F("html", "<p>Hello</p>\r\n")};
    struct job_field both[] = {FROM, TO, SUBJ, F("text", "Hello\n"), F("html", "<p>Hello</p>")};
    struct job_field utf8[] = {FROM, TO, F("subject", "  Gr\303\274\303\237e aus K\303\266ln  "),
                               F("text", "Gr\303\274\303\237e\n")};
    struct job_field empty[] = {FROM, TO, F("subject", ""), F("text", "")};
    struct job_field lines[] = {FROM, TO, SUBJ, F("text", "a\rb\r\nc\n\n.d")};

    BUILT(text, HEAD("Subject: Hi\r\n") "MIME-Version: 1.0\r\n"
                                        "Content-Type: text/plain; charset=utf-8\r\n"
                                        "Content-Transfer-Encoding: 7bit\r\n"
                                        "\r\n"
                                        "Hello\r\nWorld\r\n");
    BUILT(html, HEAD("Subject: Hi\r\n") "MIME-Version: 1.0\r\n"
                                        "Content-Type: text/html; charset=utf-8\r\n"
                                        "Content-Transfer-Encoding: 7bit\r\n"
                                        "\r\n"
                                        "<p>Hello</p>\r\n");
    /* The text body's own last line end stays part of it; html has none. */
    BUILT(both, HEAD("Subject: Hi\r\n") "MIME-Version: 1.0\r\n"
                                        "Content-Type: multipart/alternative; "
                                        "boundary=\"=_rm_18adfca5ec992c47_0\"\r\n"
                                        "\r\n"
                                        "--=_rm_18adfca5ec992c47_0\r\n"
                                        "Content-Type: text/plain; charset=utf-8\r\n"
                                        "Content-Transfer-Encoding: 7bit\r\n"
                                        "\r\n"
                                        "Hello\r\n"
                                        "\r\n"
                                        "--=_rm_18adfca5ec992c47_0\r\n"
                                        "Content-Type: text/html; charset=utf-8\r\n"
                                        "Content-Transfer-Encoding: 7bit\r\n"
                                        "\r\n"
                                        "<p>Hello</p>\r\n"
                                        "--=_rm_18adfca5ec992c47_0--\r\n");
    BUILT(
        utf8,
        HEAD("Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\r\n") "MIME-Version: 1.0\r\n"
                                                                       "Content-Type: text/plain; "
                                                                       "charset=utf-8\r\n"
                                                                       "Content-Transfer-Encoding: "
                                                                       "8bit\r\n"
                                                                       "\r\n"
                                                                       "Gr\303\274\303\237e\r\n");
    BUILT(empty, HEAD("Subject:\r\n") "MIME-Version: 1.0\r\n"
                                      "Content-Type: text/plain; charset=utf-8\r\n"
                                      "Content-Transfer-Encoding: 7bit\r\n"
                                      "\r\n");
    /* Any line end becomes CRLF (the dot is message_prepare's to stuff). */
    BUILT(lines, HEAD("Subject: Hi\r\n") "MIME-Version: 1.0\r\n"
                                         "Content-Type: text/plain; charset=utf-8\r\n"
                                         "Content-Transfer-Encoding: 7bit\r\n"
                                         "\r\n"
                                         "a\r\nb\r\nc\r\n\r\n.d\r\n");
}

/* Folding, encoded words and header overrides. */
static void test_built_headers(void)
{
    struct job_field fold[] = {
        FROM,
        TO,
        F("to", "c@example.org"),
        F("to", "dddddddddddddddddddd@example.org"),
        F("to", "eeeeeeeeeeeeeeeeeeee@example.org"),
        F("subject", "A rather long subject line that needs folding because it goes past "
                     "seventy-eight octets"),
        F("text", "x"),
        F("header.X-Campaign", "spring  sale"),
        F("header.X-Note", "=?not an encoded word?="),
        F("header.List-Unsubscribe",
          "<https://example.com/unsubscribe/1234567890>, <mailto:u@example.com>"),
    };
    struct job_field over[] = {
        F("from", ""),
        TO,
        SUBJ,
        F("text", "x"),
        F("header.from", "Shop <shop@example.com>"),
        F("header.TO", "Customers:;"),
        F("header.Date", "Mon, 1 Jan 2024 00:00:00 +0000"),
        F("header.Message-Id", " <own.1@example.com> "),
        F("header.Reply-To", "help@example.com"),
    };

    BUILT(fold, "Date: Sat, 28 Nov 2026 13:30:00 +0000\r\n"
                "From: a@example.com\r\n"
                "To: b@example.org, c@example.org, dddddddddddddddddddd@example.org,\r\n"
                " eeeeeeeeeeeeeeeeeeee@example.org\r\n"
                "Subject: A rather long subject line that needs folding because it goes past\r\n"
                " seventy-eight octets\r\n"
                "Message-ID: <ringmail.1795872600000-0@mx.example.net>\r\n"
                "X-Campaign: spring  sale\r\n"
                "X-Note: =?UTF-8?Q?=3D=3Fnot_an_encoded_word=3F=3D?=\r\n"
                "List-Unsubscribe: <https://example.com/unsubscribe/1234567890>,\r\n"
                " <mailto:u@example.com>\r\n"
                "MIME-Version: 1.0\r\n"
                "Content-Type: text/plain; charset=utf-8\r\n"
                "Content-Transfer-Encoding: 7bit\r\n"
                "\r\n"
                "x\r\n");
    BUILT(over, "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
                "From: Shop <shop@example.com>\r\n"
                "To: Customers:;\r\n"
                "Subject: Hi\r\n"
                "Message-ID: <own.1@example.com>\r\n"
                "Reply-To: help@example.com\r\n"
                "MIME-Version: 1.0\r\n"
                "Content-Type: text/plain; charset=utf-8\r\n"
                "Content-Transfer-Encoding: 7bit\r\n"
                "\r\n"
                "x\r\n");
    {
        struct job_limits l = limits();
        struct job *j = PARSE(over, &l);
        CHECK(j != NULL);
        if (j)
            CHECK_STR(job_message_id(j), "<own.1@example.com>");
        job_free(j);
    }
}

/* Non-ASCII in header.*: encoded words where unstructured; raw UTF-8 in a
 * structured field only when the envelope needs SMTPUTF8 anyway. */
static void test_header_utf8(void)
{
    struct job_field f[] = {
        F("from", "j\303\266rg@example.com"),
        TO,
        SUBJ,
        F("text", "x"),
        F("header.Reply-To", "J\303\266rg <j\303\266rg@example.com>"),
        F("header.X-Kunde", "M\303\274ller"),
        F("header.X-A-Rather-Long-Header-Name-That-Leaves-Little-Room-For-Words-0123456789",
          "\303\274"),
    };

    BUILT(f, "Date: Sat, 28 Nov 2026 13:30:00 +0000\r\n"
             "From: j\303\266rg@example.com\r\n"
             "To: b@example.org\r\n"
             "Subject: Hi\r\n"
             "Message-ID: <ringmail.1795872600000-0@mx.example.net>\r\n"
             "Reply-To: J\303\266rg <j\303\266rg@example.com>\r\n"
             "X-Kunde: =?UTF-8?Q?M=C3=BCller?=\r\n"
             "X-A-Rather-Long-Header-Name-That-Leaves-Little-Room-For-Words-0123456789: "
             "=?UTF-8?Q?=C3=BC?=\r\n"
             "MIME-Version: 1.0\r\n"
             "Content-Type: text/plain; charset=utf-8\r\n"
             "Content-Transfer-Encoding: 7bit\r\n"
             "\r\n"
             "x\r\n");
}

/* An unstructured value with a word too long for 998 octets is carried
 * in encoded words instead of being refused. */
static void test_long_word(void)
{
    struct list h = {.n = 0};
    static char word[1500];
    struct job_limits l = limits();
    struct job *j;
    const char *m, *p, *e;
    size_t xs = 0;

    memset(word, 'x', sizeof(word));
    ADDS(&h, "from", "a@x.org");
    ADDS(&h, "to", "b@x.org");
    ADDS(&h, "subject", "s");
    ADDS(&h, "text", "t");
    add(&h, "header.X-Token", word, sizeof(word));
    j = parse_n(h.f, h.n, &l);
    CHECK(j != NULL);
    if (!j)
        return;
    m = job_message(j, NULL);
    p = strstr(m, "X-Token:");
    CHECK(p != NULL);
    /* Every line of the field within 76 octets; all 1500 octets carried. */
    for (e = strstr(p, "\r\n"); p && (p == strstr(m, "X-Token:") || *p == ' ');
         p = e + 2, e = strstr(p, "\r\n")) {
        CHECK(e - p <= 76);
        for (const char *c = strstr(p, "?Q?") + 3; c < e - 2; c++)
            xs += *c == 'x';
    }
    CHECK_INT(xs, 1500);
    job_free(j);
}

/* Long subjects: split between characters, every line within 76 octets. */
static void test_encoded_words(void)
{
    struct list h = {.n = 0};
    static char subj[600];
    struct job_limits l = limits();
    struct job *j;
    const char *m, *line;
    size_t len, pieces = 0;

    for (size_t i = 0; i + 2 <= 500; i += 2)
        memcpy(subj + i, "\303\251", 2); /* 250 x U+00E9 */
    ADDS(&h, "from", "a@x.org");
    ADDS(&h, "to", "b@x.org");
    add(&h, "subject", subj, 500);
    ADDS(&h, "text", "t");
    j = parse_n(h.f, h.n, &l);
    CHECK(j != NULL);
    if (!j)
        return;
    m = job_message(j, &len);
    line = strstr(m, "Subject:");
    CHECK(line != NULL);
    while (line && (line == strstr(m, "Subject:") || *line == ' ')) {
        const char *e = strstr(line, "\r\n");
        const char *w = strstr(line, "=?UTF-8?Q?");
        CHECK(e - line <= 76);
        CHECK(w && w < e && e[-1] == '=' && e[-2] == '?');
        /* whole characters only: every word holds =C3=A9 pairs */
        CHECK((e - 2 - (w + 10)) % 6 == 0);
        pieces += (size_t)(e - 2 - (w + 10)) / 6;
        line = e + 2;
    }
    CHECK_INT(pieces, 250);
    job_free(j);
}

/* Bodies: 8bit for UTF-8, quoted-printable for a line over 998 octets. */
static void test_bodies(void)
{
    struct list h = {.n = 0};
    static char body[1100], want[2000];
    struct job_limits l = limits();
    struct job *j;
    const char *m, *b;
    size_t len, w = 0;

    memset(body, 'a', 1000);
    memcpy(body + 1000, "= \303\251 \n", 6);
    ADDS(&h, "from", "a@x.org");
    ADDS(&h, "to", "b@x.org");
    ADDS(&h, "subject", "s");
    add(&h, "text", body, 1006);
    j = parse_n(h.f, h.n, &l);
    CHECK(j != NULL);
    if (!j)
        return;
    m = job_message(j, &len);
    CHECK(strstr(m, "Content-Transfer-Encoding: quoted-printable\r\n") != NULL);
    b = strstr(m, "\r\n\r\n") + 4;
    for (int i = 0; i < 13; i++) {
        memset(want + w, 'a', 75);
        memcpy(want + w + 75, "=\r\n", 3);
        w += 78;
    }
    memset(want + w, 'a', 25);
    w += 25;
    /* '=' and 8-bit octets as =XX, a space literal inside, encoded at the end. */
    memcpy(want + w, "=3D =C3=A9=20\r\n", 15);
    w += 15;
    CHECK_MEM(b, (size_t)(m + len - b), want, w);
    job_free(j);

    /* Only html is long: text keeps 8bit. */
    h.n = 3;
    ADDS(&h, "text", "caf\303\251\n");
    add(&h, "html", body, 1006);
    j = parse_n(h.f, h.n, &l);
    CHECK(j != NULL);
    if (!j) {
        fprintf(stderr, "  reason: %s\n", reason);
        return;
    }
    m = job_message(j, NULL);
    CHECK(strstr(m, "Content-Transfer-Encoding: 8bit\r\n\r\ncaf\303\251\r\n\r\n--") != NULL);
    CHECK(strstr(m, "Content-Transfer-Encoding: quoted-printable\r\n") != NULL);
    job_free(j);
}

/* The same job gives the same message, whenever and however often it is
 * parsed; the boundary avoids what the bodies hold. */
static void test_deterministic(void)
{
    struct job_field f[] = {FROM, TO, SUBJ, F("id", "k-1"), F("text", "a"), F("html", "b")};
    struct job_limits l = limits();
    struct job *a = PARSE(f, &l), *b;
    size_t alen, blen;
    const char *bnd;
    char bodies[400];
    size_t n = 0;

    l.now = 1900000000;
    b = job_parse("1795872600001-5", f, 6, &l, reason, sizeof(reason));
    CHECK(a && b);
    if (!a || !b)
        goto out;
    CHECK_STR(job_message_id(a), "<ringmail.k-1@mx.example.net>");
    CHECK_STR(job_message_id(a), job_message_id(b));
    job_message(a, &alen);
    job_message(b, &blen);
    CHECK_MEM(job_message(a, NULL), alen, job_message(b, NULL), blen);

    /* Bodies that hold the first candidates push the boundary on. */
    bnd = strstr(job_message(a, NULL), "boundary=\"") + 10;
    for (char d = '0'; d <= '2'; d++) {
        memcpy(bodies + n, bnd, 22);
        bodies[n + 22] = d;
        bodies[n + 23] = '\n';
        n += 24;
    }
    f[4].value = bodies;
    f[4].value_len = n;
    job_free(b);
    b = PARSE(f, &l);
    CHECK(b != NULL);
    if (b)
        CHECK(strstr(job_message(b, NULL), "boundary=\"=_rm_") != NULL &&
              memcmp(strstr(job_message(b, NULL), "boundary=\"") + 10 + 22, "3\"", 2) == 0);
    job_free(b);
    /* ... and bodies that hold all ten are refused. */
    for (char d = '3'; d <= '9'; d++) {
        memcpy(bodies + n, bnd, 22);
        bodies[n + 22] = d;
        bodies[n + 23] = '\n';
        n += 24;
    }
    f[4].value_len = n;
    b = PARSE(f, &l);
    CHECK(b == NULL);
    CHECK_STR(reason, "no MIME boundary: the bodies hold every candidate");
out:
    job_free(a);
    job_free(b);
}

/* data goes as given; its Message-ID is found for the logs. */
/* The parse's scan, handed on so the worker need not scan again, is what
 * message_scan says of the message as BDAT; built messages have none. */
static void check_bdat_facts(const struct job *j)
{
    const struct message_facts *known = job_message_bdat_facts(j);
    struct message_facts f;
    size_t len;
    const char *m = job_message(j, &len);

    CHECK(known != NULL);
    if (!known)
        return;
    CHECK_INT(message_scan(m, len, MESSAGE_ENC_BDAT, &f), 0);
    CHECK(known->size == f.size && known->wire_len == f.wire_len && known->lines == f.lines);
    CHECK(known->line_max == f.line_max && known->eightbit == f.eightbit);
}

static void test_data(void)
{
    static const struct {
        const char *data;
        const char *msgid;
    } cases[] = {
        {"Message-ID: <abc@x.org>\nSubject: x\n\nbody\n", "<abc@x.org>"},
        {"Subject: x\r\nmessage-id :\r\n  <folded@x.org>\r\n\r\nbody\r\n", "<folded@x.org>"},
        {"Subject: x\n\nMessage-ID: <in-body@x.org>\n", ""},
        {"Message-IDs: <no@x.org>\n\nb\n", ""},
        {"Message-ID: <sp ace@x.org>\n\nb\n", ""},
        {"Message-ID: no brackets\n\nb\n", ""},
        {"Message-ID: <a@x.org>\nMessage-ID: <b@x.org>\n", "<a@x.org>"},
        {"just one line", ""},
    };
    struct job_limits l = limits();

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct job_field f[] = {FROM, TO, {"data", 4, cases[i].data, strlen(cases[i].data)}};
        struct job *j = PARSE(f, &l);
        size_t len;
        const char *m;
        CHECK(j != NULL);
        if (!j)
            continue;
        CHECK_INT(job_built(j), 0);
        CHECK_STR(job_message_id(j), cases[i].msgid);
        m = job_message(j, &len);
        CHECK_MEM(m, len, cases[i].data, strlen(cases[i].data));
        CHECK(m != cases[i].data); /* a copy: the fields may go */
        check_bdat_facts(j);
        job_free(j);
    }
}

/* borrow_data: the message is the caller's value itself, not a copy. */
static void test_borrow_data(void)
{
    static const char crlf[] = "Subject: x\r\n\r\nbody\r\n";
    static const char lf[] = "Subject: x\n\n\xc3\xa9t\xc3\xa9\n";
    struct job_field fc[] = {FROM, TO, F("data", crlf)}, fl[] = {FROM, TO, F("data", lf)},
                     fb[] = {FROM, TO, SUBJ, TEXT};
    struct job_limits l = limits();
    struct job *j;
    size_t len;

    l.borrow_data = 1;
    j = PARSE(fc, &l);
    CHECK(j && job_message(j, &len) == fc[2].value && len == sizeof(crlf) - 1);
    if (j) {
        check_bdat_facts(j);
        CHECK(job_message_bdat_facts(j)->wire_len == len); /* sent as it is */
    }
    job_free(j);
    j = PARSE(fl, &l);
    CHECK(j && job_message(j, &len) == fl[2].value);
    if (j) {
        check_bdat_facts(j);
        CHECK(job_message_bdat_facts(j)->wire_len == len + 3); /* three LF become CRLF */
        CHECK_INT(job_message_bdat_facts(j)->eightbit, 1);
    }
    job_free(j);
    j = PARSE(fb, &l); /* built: ringmail's own block, and no parse facts */
    CHECK(j && job_message_bdat_facts(j) == NULL);
    job_free(j);
}

/* The parser and the SMTP client share one address validator
 * (smtp_syntax): an escaped quote leaves a quoted local part open, a
 * quoted backslash before the closing quote does not. */
static void test_quoted_agreement(void)
{
    struct job_limits l = limits();
    struct job_field bad[] = {FROM, F("to", "\"a\\\"@example.com"), SUBJ, TEXT};
    struct job_field good[] = {FROM, F("to", "\"a\\\\\"@example.com"), SUBJ, TEXT};
    struct job *j;
    size_t n;

    CHECK(PARSE(bad, &l) == NULL);
    CHECK_STR(reason, "to #1: unterminated quoted local part");
    j = PARSE(good, &l);
    CHECK(j != NULL);
    if (j)
        CHECK_STR(job_rcpts(j, &n)[0], "\"a\\\\\"@example.com");
    job_free(j);
}

/* job.max_fields and job.max_bytes: an entry over them is refused first
 * (before a field is looked at), with a reason that names the limit; the
 * defaults take 1000 recipients and the unknown fields a producer adds,
 * and refuse the 3001 fields that no outcome write could carry again. */
static void test_size_limits(void)
{
    static struct job_field f[3001];
    static char rcpts[1000][24];
    struct job_limits l = limits();
    struct job *j;
    size_t n = 0;

    f[n++] = (struct job_field)FROM;
    f[n++] = (struct job_field)SUBJ;
    f[n++] = (struct job_field)TEXT;
    for (int i = 0; i < 1000; i++) {
        snprintf(rcpts[i], sizeof(rcpts[i]), "u%d@x.org", i);
        f[n++] = (struct job_field){"to", 2, rcpts[i], strlen(rcpts[i])};
    }
    while (n < 2000)
        f[n++] = (struct job_field)F("x-track", "1");
    j = parse_n(f, n, &l); /* at the default limit: accepted */
    CHECK(j != NULL);
    job_free(j);
    while (n < 3001)
        f[n++] = (struct job_field)F("x-track", "1");
    CHECK(parse_n(f, n, &l) == NULL);
    CHECK_STR(reason, "too many fields: 3001 (job.max_fields is 2000)");
    l.max_fields = 3001;
    j = parse_n(f, n, &l);
    CHECK(j != NULL);
    job_free(j);
    l = limits();
    l.max_fields = 4;
    CHECK(parse_n(f, 5, &l) == NULL);
    CHECK_STR(reason, "too many fields: 5 (job.max_fields is 4)");
    l = limits();
    l.max_bytes = 30;
    CHECK(parse_n(f, 3, &l) == NULL);
    CHECK(strncmp(reason, "too large: ", 11) == 0 && strstr(reason, "(job.max_bytes is 30)"));
    CHECK_INT(job_check_size(2000, JOB_DEFAULT_MAX_BYTES, NULL, reason, sizeof(reason)), 0);
    CHECK_INT(job_check_size(2000, JOB_DEFAULT_MAX_BYTES + 1, NULL, reason, sizeof(reason)), -1);
}

int main(void)
{
    test_size_limits();
    test_defaults();
    test_options();
    test_addresses();
    test_bad_table();
    test_bad_sized();
    test_built_golden();
    test_built_headers();
    test_header_utf8();
    test_long_word();
    test_encoded_words();
    test_bodies();
    test_deterministic();
    test_data();
    test_borrow_data();
    test_quoted_agreement();
    return check_done();
}
