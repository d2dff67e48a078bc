/*
 * test_sink_smtp: the sink's pure SMTP server session (bench/sink_smtp.h).
 *
 * Table-driven: each case is a configuration, the client's bytes (with
 * "\001" where the TLS handshake would complete), the exact reply bytes
 * expected and a log of the events. Every case runs fed whole, fed one byte
 * at a time and fed in random splits, with a fresh configuration each time
 * (fault counters live there), and must give the same transcript. A harness
 * plays the transport: it resumes delays at once, completes the handshake
 * at the marker, stops at CLOSE. Then the property test: random messages,
 * dot-stuffed by message_prepare(), must come out of DATA exactly as
 * message_unstuff() says and out of BDAT byte for byte.
 */
#include "check.h"
#include "message.h"
#include "sink_smtp.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TLS   "\001"
#define GREET "220 sink.test ESMTP ringmail-sink\r\n"
#define EHLO_HEAD                                                                                  \
    "250-sink.test\r\n250-PIPELINING\r\n250-SIZE 36700160\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"     \
    "250-CHUNKING\r\n"
#define EHLO_PLAIN EHLO_HEAD "250-STARTTLS\r\n250 ENHANCEDSTATUSCODES\r\n"
#define EHLO_TLS   EHLO_HEAD "250 ENHANCEDSTATUSCODES\r\n"
#define EHLO_AUTH  EHLO_HEAD "250-AUTH PLAIN LOGIN\r\n250 ENHANCEDSTATUSCODES\r\n"
#define OK_MAIL    "250 2.1.0 Ok\r\n"
#define OK_RCPT    "250 2.1.5 Ok\r\n"
#define GO_DATA    "354 End data with <CR><LF>.<CR><LF>\r\n"
#define OK         "250 2.0.0 Ok\r\n"
#define BYE        "221 2.0.0 Bye\r\n"
#define NEED_MAIL  "503 5.5.1 Error: need MAIL command\r\n"
#define NO_RCPT    "554 5.5.1 Error: no valid recipients\r\n"
#define Q(n)       "250 2.0.0 Ok: queued as " #n "\r\n"
#define ENV        "EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\n"
#define ENV_OUT    EHLO_PLAIN OK_MAIL OK_RCPT

/* ---- the harness ---- */

struct run {
    char out[1 << 17];
    size_t out_len;
    char log[4096];
    size_t log_len;
    char body[1 << 16];
    size_t body_len;
    bool closed, tls_pending;
};

static void logf_(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(struct run *r, const char *fmt, ...)
{
    va_list ap;
    int k;

    va_start(ap, fmt);
    k = vsnprintf(r->log + r->log_len, sizeof(r->log) - r->log_len, fmt, ap);
    va_end(ap);
    if (k > 0 && (size_t)k < sizeof(r->log) - r->log_len)
        r->log_len += (size_t)k;
}

static void drain_output(struct sink_smtp *s, struct run *r)
{
    size_t n;
    const char *p = sink_smtp_output(s, &n);

    if (n > sizeof(r->out) - r->out_len)
        n = sizeof(r->out) - r->out_len;
    memcpy(r->out + r->out_len, p, n);
    r->out_len += n;
    sink_smtp_sent(s, n);
}

static void on_message(struct sink_smtp *s, struct run *r)
{
    struct sink_smtp_message m;
    const char *rc;

    sink_smtp_message(s, &m);
    logf_(r, "M(q=%llu,from=%s", m.queue_id, m.from);
    rc = m.rcpts;
    for (size_t i = 0; i < m.nrcpt; i++) {
        logf_(r, "%s%s", i ? ";" : ",rcpt=", rc);
        rc += strlen(rc) + 1;
    }
    logf_(r, ",size=%llu", (unsigned long long)m.size);
    if (m.eightbitmime)
        logf_(r, ",8bit");
    if (m.smtputf8)
        logf_(r, ",utf8");
    if (m.bdat)
        logf_(r, ",bdat");
    if (m.message_id)
        logf_(r, ",id=%s", m.message_id);
    logf_(r, ")");
    CHECK(m.body_len == m.size);
    if (m.body_len <= sizeof(r->body)) {
        memcpy(r->body, m.body, m.body_len);
        r->body_len = m.body_len;
    }
}

static void drain_events(struct sink_smtp *s, struct run *r)
{
    struct sink_smtp_event ev;

    while (sink_smtp_next_event(s, &ev)) {
        switch (ev.type) {
        case SINK_SMTP_EV_MESSAGE:
            on_message(s, r);
            break;
        case SINK_SMTP_EV_STARTTLS:
            logf_(r, "T");
            r->tls_pending = true;
            break;
        case SINK_SMTP_EV_DELAY:
            logf_(r, "D%u", ev.ms);
            drain_output(s, r); /* what precedes the delayed reply goes first */
            sink_smtp_resume(s);
            break;
        case SINK_SMTP_EV_STALL:
            logf_(r, "S(%s)", sink_smtp_point_name(ev.point));
            break;
        case SINK_SMTP_EV_CLOSE:
            if (ev.fault)
                logf_(r, "C(%s)", sink_smtp_point_name(ev.point));
            else
                logf_(r, "C");
            r->closed = true;
            break;
        case SINK_SMTP_EV_AUTH:
            logf_(r, "A(%s)", sink_smtp_auth_user(s));
            break;
        case SINK_SMTP_EV_NONE:
            CHECK(0);
            break;
        }
    }
    drain_output(s, r);
}

static void feed_all(struct sink_smtp *s, struct run *r, const char *p, size_t len)
{
    size_t off = 0;

    while (off < len && !r->closed) {
        size_t n = sink_smtp_feed(s, p + off, len - off);
        off += n;
        drain_events(s, r);
        if (n == 0 && !r->closed) {
            /* only the output soft limit stops a feed without an event */
            size_t left;
            sink_smtp_output(s, &left);
            CHECK_INT(left, 0);
            if (left)
                break;
        }
    }
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static bool auth_check(void *arg, enum sink_smtp_auth_mech mech, const char *a, const char *b,
                       char *user, size_t cap)
{
    (void)arg;
    if ((mech == SINK_SMTP_AUTH_PLAIN && strcmp(a, "AHVzZXIAcGFzcw==") == 0) ||
        (mech == SINK_SMTP_AUTH_LOGIN && strcmp(a, "dXNlcg==") == 0 &&
         strcmp(b, "cGFzcw==") == 0)) {
        snprintf(user, cap, "user");
        return true;
    }
    return false;
}

typedef void setup_fn(struct sink_smtp_config *cfg);

static void base_config(struct sink_smtp_config *cfg)
{
    sink_smtp_config_init(cfg);
    cfg->hostname = "sink.test";
    cfg->allow_plaintext = true;
    cfg->auth_check = auth_check;
}

/* split: 0 whole, 1 byte by byte, 2 random pieces */
static void run_case(setup_fn *setup, bool implicit, const char *in, size_t len, int split,
                     struct run *r)
{
    static struct sink_smtp_config cfg;
    struct sink_smtp *s;
    size_t pos = 0;

    memset(r, 0, sizeof(*r));
    base_config(&cfg);
    if (setup)
        setup(&cfg);
    s = sink_smtp_create(&cfg);
    CHECK(s != NULL);
    sink_smtp_start(s, implicit);
    drain_events(s, r);
    while (pos < len && !r->closed) {
        const char *mark = memchr(in + pos, '\001', len - pos);
        size_t seg = mark ? (size_t)(mark - (in + pos)) : len - pos;
        size_t done = 0;
        while (done < seg && !r->closed) {
            size_t k = seg - done;
            if (split == 1)
                k = 1;
            else if (split == 2 && k > 1)
                k = 1 + (size_t)(rng() % (k < 9 ? k : 9));
            feed_all(s, r, in + pos + done, k);
            done += k;
        }
        pos += seg;
        if (mark) {
            pos++;
            if (r->tls_pending) {
                r->tls_pending = false;
                sink_smtp_tls_started(s);
            }
        }
    }
    sink_smtp_destroy(s);
}

struct tcase {
    const char *name;
    setup_fn *setup;
    bool implicit;
    const char *in;
    const char *out; /* after the greeting */
    const char *log;
    const char *greet; /* NULL: GREET */
};

static void check_case(const struct tcase *t)
{
    static struct run r;
    static char want[1 << 16];
    size_t wlen;

    wlen = (size_t)snprintf(want, sizeof(want), "%s%s", t->greet ? t->greet : GREET, t->out);
    for (int split = 0; split < 3; split++) {
        run_case(t->setup, t->implicit, t->in, strlen(t->in), split, &r);
        r.out[r.out_len] = '\0';
        r.log[r.log_len] = '\0';
        if (r.out_len != wlen || memcmp(r.out, want, r.out_len) != 0 || strcmp(r.log, t->log) != 0)
            fprintf(stderr, "case %s (split %d):\n--- got:\n%s[%s]\n--- want:\n%s[%s]\n", t->name,
                    split, r.out, r.log, want, t->log);
        CHECK_MEM(r.out, r.out_len, want, wlen);
        CHECK_STR(r.log, t->log);
    }
}

/* ---- configurations ---- */

static void tls_required(struct sink_smtp_config *c)
{
    c->allow_plaintext = false;
}
static void no_starttls(struct sink_smtp_config *c)
{
    c->starttls = false;
}
static void minimal(struct sink_smtp_config *c)
{
    c->pipelining = c->chunking = c->eightbitmime = c->smtputf8 = false;
    c->size_max = 0;
}
static void with_auth(struct sink_smtp_config *c)
{
    c->auth = true;
    c->allow_plaintext = false;
}
static void small_size(struct sink_smtp_config *c)
{
    c->size_max = 10;
}
static void inject(struct sink_smtp_config *c)
{
    c->allow_plaintext = false;
    c->inject_after_220 = "250 evil\r\n25";
    c->inject_len = strlen(c->inject_after_220);
}
static void starttls_454(struct sink_smtp_config *c)
{
    c->starttls_reply = "454 4.7.0 TLS not available";
    c->starttls_reply_len = strlen(c->starttls_reply);
}
static void starttls_garbage(struct sink_smtp_config *c)
{
    c->starttls_reply = "garbage\r\n";
    c->starttls_reply_len = strlen(c->starttls_reply);
    c->inject_after_220 = "250 x";
    c->inject_len = 5;
}
static void fault_reply(struct sink_smtp_config *c, enum sink_smtp_point p, int code,
                        const char *text, unsigned every)
{
    c->faults[p].reply.code = code;
    c->faults[p].reply.every = every;
    snprintf(c->faults[p].reply.text, sizeof(c->faults[p].reply.text), "%s", text);
}
static void rcpt_550_every2(struct sink_smtp_config *c)
{
    fault_reply(c, SINK_SMTP_P_RCPT, 550, "5.1.1 No such user", 2);
}
static void rcpt_550(struct sink_smtp_config *c)
{
    fault_reply(c, SINK_SMTP_P_RCPT, 550, "", 1);
}
static void mail_451(struct sink_smtp_config *c)
{
    fault_reply(c, SINK_SMTP_P_MAIL, 451, "", 1);
}
static void data_554(struct sink_smtp_config *c)
{
    fault_reply(c, SINK_SMTP_P_DATA, 554, "5.7.1 Spam", 1);
}
static void bdat_452(struct sink_smtp_config *c)
{
    fault_reply(c, SINK_SMTP_P_BDAT, 452, "", 1);
}
static void greeting_554(struct sink_smtp_config *c)
{
    fault_reply(c, SINK_SMTP_P_GREETING, 554, "5.3.2 Go away", 1);
}
static void greeting_421(struct sink_smtp_config *c)
{
    fault_reply(c, SINK_SMTP_P_GREETING, 421, "4.3.2 Busy", 1);
}
static void ehlo_554(struct sink_smtp_config *c)
{
    fault_reply(c, SINK_SMTP_P_EHLO, 554, "", 1);
}
static void auth_535(struct sink_smtp_config *c)
{
    with_auth(c);
    fault_reply(c, SINK_SMTP_P_AUTH, 535, "", 1);
}
static void starttls_fault_454(struct sink_smtp_config *c)
{
    fault_reply(c, SINK_SMTP_P_STARTTLS, 454, "", 1);
}
static void delay_rcpt(struct sink_smtp_config *c)
{
    c->faults[SINK_SMTP_P_RCPT].delay_every = 1;
    c->faults[SINK_SMTP_P_RCPT].delay_ms = 250;
}
static void stall_data(struct sink_smtp_config *c)
{
    c->faults[SINK_SMTP_P_DATA].stall_every = 1;
}
static void disc_mail(struct sink_smtp_config *c)
{
    c->faults[SINK_SMTP_P_MAIL].disconnect_every = 1;
}
static void disc_body(struct sink_smtp_config *c)
{
    c->faults[SINK_SMTP_P_DATA_BODY].disconnect_every = 1;
}
static void disc_bdat_body(struct sink_smtp_config *c)
{
    c->faults[SINK_SMTP_P_BDAT_BODY].disconnect_every = 1;
}
static void disc_end(struct sink_smtp_config *c)
{
    c->faults[SINK_SMTP_P_DATA_END].disconnect_every = 2;
}
static void disc_greeting(struct sink_smtp_config *c)
{
    c->faults[SINK_SMTP_P_GREETING].disconnect_every = 1;
}

/* ---- the table ---- */

static const struct tcase cases[] = {
    {"pipelined-envelope", NULL, false,
     "EHLO client.test\r\nMAIL FROM:<a@x> BODY=8BITMIME SIZE=20\r\nRCPT TO:<b@y>\r\n"
     "RCPT TO:<c@z>\r\nDATA\r\nSubject: hi\r\nMessage-ID: <1@x>\r\n\r\nbody\r\n.\r\nQUIT\r\n",
     EHLO_PLAIN OK_MAIL OK_RCPT OK_RCPT GO_DATA Q(1) BYE,
     "M(q=1,from=a@x,rcpt=b@y;c@z,size=40,8bit,id=<1@x>)C", NULL},
    {"two-messages-rset", NULL, false,
     ENV "DATA\r\nx\r\n.\r\nRSET\r\nMAIL FROM:<>\r\nRCPT TO:<d@y>\r\nDATA\r\n..dot\r\n.\r\n",
     ENV_OUT GO_DATA Q(1) OK OK_MAIL OK_RCPT GO_DATA Q(2),
     "M(q=1,from=a@x,rcpt=b@y,size=3)M(q=2,from=,rcpt=d@y,size=6)", NULL},
    {"unstuffing", NULL, false, ENV "DATA\r\n..\r\n...x\r\n.a\r\nb.\r\n. \r\n.\rz\r\n.\r\n",
     ENV_OUT GO_DATA Q(1), "M(q=1,from=a@x,rcpt=b@y,size=22)", NULL},
    {"empty-message", NULL, false, ENV "DATA\r\n.\r\nNOOP\r\n", ENV_OUT GO_DATA Q(1) OK,
     "M(q=1,from=a@x,rcpt=b@y,size=0)", NULL},
    {"bdat-chunks", NULL, false, ENV "BDAT 5\r\nabcdeBDAT 3\r\nf\r\nBDAT 0 LAST\r\nNOOP\r\n",
     ENV_OUT "250 2.0.0 5 octets received\r\n250 2.0.0 8 octets received\r\n" Q(1) OK,
     "M(q=1,from=a@x,rcpt=b@y,size=8,bdat)", NULL},
    {"bdat-last-with-data", NULL, false, ENV "BDAT 12 LAST\r\nQUIT\r\nRSET\r\nNOOP\r\n",
     ENV_OUT Q(1) OK, "M(q=1,from=a@x,rcpt=b@y,size=12,bdat)", NULL},
    {"bdat-no-rcpt-consumes", rcpt_550, false,
     "EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT 10 LAST\r\nQUIT\r\nQUITNOOP\r\n",
     EHLO_PLAIN OK_MAIL "550 5.0.0 Fault injected at RCPT\r\n" NO_RCPT OK, "", NULL},
    {"bdat-without-mail", NULL, false, "EHLO c\r\nBDAT 6\r\nRSET\r\nNOOP\r\n",
     EHLO_PLAIN NEED_MAIL OK, "", NULL},
    {"bdat-bad-syntax", NULL, false, ENV "BDAT x\r\nBDAT 1 MORE\r\nBDAT 1 last\r\nZ",
     ENV_OUT "501 5.5.4 Syntax: BDAT size [LAST]\r\n501 5.5.4 Syntax: BDAT size [LAST]\r\n" Q(1),
     "M(q=1,from=a@x,rcpt=b@y,size=1,bdat)", NULL},
    {"bdat-not-offered", minimal, false, "EHLO c\r\nMAIL FROM:<a@x>\r\nBDAT 4\r\nNOOPNOOP\r\n",
     "250-sink.test\r\n250-STARTTLS\r\n250 ENHANCEDSTATUSCODES\r\n" OK_MAIL
     "502 5.5.1 Error: command not implemented\r\n" OK,
     "", NULL},
    {"data-after-bdat", NULL, false, ENV "BDAT 1\r\nxDATA\r\nRCPT TO:<q@r>\r\n",
     ENV_OUT "250 2.0.0 1 octets received\r\n503 5.5.1 Error: BDAT in progress\r\n"
             "503 5.5.1 Error: BDAT in progress\r\n",
     "", NULL},
    {"bad-sequences", NULL, false,
     "MAIL FROM:<a@x>\r\nEHLO c\r\nRCPT TO:<b@y>\r\nDATA\r\nMAIL FROM:<a@x>\r\nDATA\r\n"
     "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA x\r\nFOO\r\nEHLO\r\n\r\nVRFY\r\nVRFY u\r\n"
     "HELO h\r\nQUIT now\r\n",
     "503 5.5.1 Error: send HELO/EHLO first\r\n" EHLO_PLAIN NEED_MAIL NEED_MAIL OK_MAIL NO_RCPT
     "503 5.5.1 Error: nested MAIL command\r\n" OK_RCPT "501 5.5.4 Syntax: DATA\r\n"
     "500 5.5.2 Error: command not recognized\r\n501 5.5.4 Syntax: EHLO hostname\r\n"
     "500 5.5.2 Error: command not recognized\r\n501 5.5.4 Syntax: VRFY address\r\n"
     "252 2.0.0 Cannot VRFY user, but will accept message\r\n250 sink.test\r\n" BYE,
     "C", NULL},
    {"syntax", NULL, false,
     "EHLO c\r\nMAIL FROM:a@x\r\nMAIL TO:<a@x>\r\nMAIL FROM:<a@x> RET=HDRS\r\n"
     "MAIL FROM:<\xc3\xa9@x>\r\nMAIL FROM: <a@x> SMTPUTF8 SIZE=5\r\nRCPT TO:<>\r\n"
     "RCPT TO:<b@y> NOTIFY=NEVER\r\nRCPT TO:<\xc3\xa9@y>\r\nmail from:<b@x>\r\n",
     EHLO_PLAIN
     "501 5.1.7 Bad sender address syntax\r\n501 5.5.4 Syntax: MAIL FROM:<address>\r\n"
     "555 5.5.4 Unsupported option: RET\r\n"
     "553 5.6.7 Must declare SMTPUTF8 to send UTF-8 address\r\n" OK_MAIL
     "501 5.1.3 Bad recipient address syntax\r\n555 5.5.4 Unsupported option: NOTIFY\r\n" OK_RCPT
     "503 5.5.1 Error: nested MAIL command\r\n",
     "", NULL},
    {"line-too-long", NULL, false,
     "EHLO c\r\nNOOP "
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "\r\nNOOP\n",
     EHLO_PLAIN "500 5.5.2 Error: line too long\r\n" OK, "", NULL},
    {"tls-required", tls_required, false,
     "EHLO c\r\nMAIL FROM:<a@x>\r\nSTARTTLS\r\nMAIL FROM:<evil@x>\r\n" TLS
     "MAIL FROM:<a@x>\r\nEHLO c\r\nSTARTTLS\r\n" ENV "DATA\r\nm\r\n.\r\n",
     EHLO_PLAIN "530 5.7.0 Must issue a STARTTLS command first\r\n"
                "220 2.0.0 Ready to start TLS\r\n"
                "503 5.5.1 Error: send HELO/EHLO first\r\n" EHLO_TLS
                "503 5.5.1 Error: TLS already active\r\n" EHLO_TLS OK_MAIL OK_RCPT GO_DATA Q(1),
     "TM(q=1,from=a@x,rcpt=b@y,size=3)", NULL},
    {"implicit-tls", tls_required, true, ENV "QUIT\r\n", EHLO_TLS OK_MAIL OK_RCPT BYE, "C", NULL},
    {"no-starttls", no_starttls, false, "EHLO c\r\nSTARTTLS\r\n",
     EHLO_TLS "502 5.5.1 Error: command not implemented\r\n", "", NULL},
    {"inject-after-220", inject, false, "EHLO c\r\nSTARTTLS\r\nEHLO x\r\n" TLS "NOOP\r\n",
     EHLO_PLAIN "220 2.0.0 Ready to start TLS\r\n250 evil\r\n25" OK, "T", NULL},
    {"starttls-reply-454", starttls_454, false, "EHLO c\r\nSTARTTLS\r\n" TLS "NOOP\r\n",
     EHLO_PLAIN "454 4.7.0 TLS not available\r\n" OK, "", NULL},
    {"starttls-reply-garbage", starttls_garbage, false, "STARTTLS\r\nNOOP\r\n",
     "garbage\r\n250 x" OK, "", NULL},
    {"starttls-fault-454", starttls_fault_454, false, "STARTTLS\r\n",
     "454 4.0.0 Fault injected at STARTTLS\r\n", "", NULL},
    {"auth", with_auth, false,
     "EHLO c\r\nAUTH PLAIN AHVzZXIAcGFzcw==\r\nSTARTTLS\r\n" TLS
     "EHLO c\r\nMAIL FROM:<a@x>\r\nAUTH PLAIN AHVzZXIAcGFzcz==\r\nAUTH LOGIN\r\n*\r\n"
     "AUTH CRAM-MD5\r\nAUTH LOGIN\r\ndXNlcg==\r\ncGFzcw==\r\nAUTH PLAIN\r\n"
     "MAIL FROM:<a@x> AUTH=<>\r\n",
     EHLO_PLAIN "538 5.7.11 Encryption required for requested authentication mechanism\r\n"
                "220 2.0.0 Ready to start TLS\r\n" EHLO_AUTH "530 5.7.0 Authentication required\r\n"
                "535 5.7.8 Error: authentication failed\r\n334 VXNlcm5hbWU6\r\n"
                "501 5.7.0 Authentication aborted\r\n"
                "504 5.5.4 Error: unsupported authentication mechanism\r\n"
                "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 2.7.0 Authentication successful\r\n"
                "503 5.5.1 Error: already authenticated\r\n" OK_MAIL,
     "TA(user)", NULL},
    {"auth-plain-challenge", with_auth, true, "EHLO c\r\nAUTH PLAIN\r\nAHVzZXIAcGFzcw==\r\n",
     EHLO_AUTH "334 \r\n235 2.7.0 Authentication successful\r\n", "A(user)", NULL},
    {"auth-fault-535", auth_535, true, "EHLO c\r\nAUTH PLAIN AHVzZXIAcGFzcw==\r\nMAIL FROM:<>\r\n",
     EHLO_AUTH "535 5.0.0 Fault injected at AUTH\r\n530 5.7.0 Authentication required\r\n", "",
     NULL},
    {"size-limits", small_size, false,
     "EHLO c\r\nMAIL FROM:<a@x> SIZE=11\r\nMAIL FROM:<a@x> SIZE=10\r\nRCPT TO:<b@y>\r\n"
     "DATA\r\n0123456789\r\n.\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT 6\r\n012345"
     "BDAT 6 LAST\r\n012345NOOP\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT 10 LAST\r\n0123456789",
     "250-sink.test\r\n250-PIPELINING\r\n250-SIZE 10\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
     "250-CHUNKING\r\n250-STARTTLS\r\n250 ENHANCEDSTATUSCODES\r\n"
     "552 5.3.4 Error: message exceeds fixed maximum message size\r\n" OK_MAIL OK_RCPT GO_DATA
     "552 5.3.4 Error: message exceeds fixed maximum message size\r\n" OK_MAIL OK_RCPT
     "250 2.0.0 6 octets received\r\n"
     "552 5.3.4 Error: message exceeds fixed maximum message size\r\n" OK OK_MAIL OK_RCPT Q(1),
     "M(q=1,from=a@x,rcpt=b@y,size=10,bdat)", NULL},
    {"rcpt-550-every-2nd", rcpt_550_every2, false,
     "EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<1@y>\r\nRCPT TO:<2@y>\r\nRCPT TO:<3@y>\r\n"
     "RCPT TO:<4@y>\r\nDATA\r\n.\r\n",
     EHLO_PLAIN OK_MAIL OK_RCPT "550 5.1.1 No such user\r\n" OK_RCPT
                                "550 5.1.1 No such user\r\n" GO_DATA Q(1),
     "M(q=1,from=a@x,rcpt=1@y;3@y,size=0)", NULL},
    {"mail-451", mail_451, false, "EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\n",
     EHLO_PLAIN "451 4.0.0 Fault injected at MAIL\r\n" NEED_MAIL, "", NULL},
    {"data-554", data_554, false, ENV "DATA\r\nx\r\n.\r\nRCPT TO:<b@y>\r\n",
     ENV_OUT GO_DATA "554 5.7.1 Spam\r\n" NEED_MAIL, "", NULL},
    {"bdat-452", bdat_452, false, ENV "BDAT 2\r\nabBDAT 1 LAST\r\ncNOOP\r\n",
     ENV_OUT "452 4.0.0 Fault injected at BDAT\r\n" NEED_MAIL OK, "", NULL},
    {"greeting-554", greeting_554, false, "EHLO c\r\nNOOP\r\nQUIT\r\n",
     "503 5.5.1 Error: this session was refused; send QUIT\r\n"
     "503 5.5.1 Error: this session was refused; send QUIT\r\n" BYE,
     "C", "554 5.3.2 Go away\r\n"},
    {"greeting-421", greeting_421, false, "EHLO c\r\n", "", "C(GREETING)", "421 4.3.2 Busy\r\n"},
    {"greeting-disconnect", disc_greeting, false, "EHLO c\r\n", "", "C(GREETING)", ""},
    {"ehlo-554", ehlo_554, false, "EHLO c\r\nMAIL FROM:<a@x>\r\n",
     "554 5.0.0 Fault injected at EHLO\r\n503 5.5.1 Error: send HELO/EHLO first\r\n", "", NULL},
    {"delay-rcpt", delay_rcpt, false, ENV "NOOP\r\n", ENV_OUT OK, "D250", NULL},
    {"stall-data", stall_data, false, ENV "DATA\r\nx\r\n.\r\nNOOP\r\n", ENV_OUT GO_DATA, "S(DATA)",
     NULL},
    {"disconnect-mail", disc_mail, false, "EHLO c\r\nMAIL FROM:<a@x>\r\nNOOP\r\n", EHLO_PLAIN,
     "C(MAIL)", NULL},
    {"disconnect-data-body", disc_body, false, ENV "DATA\r\nx\r\n.\r\nNOOP\r\n", ENV_OUT GO_DATA,
     "C(DATA-BODY)", NULL},
    {"disconnect-bdat-body", disc_bdat_body, false, ENV "BDAT 0\r\nBDAT 3 LAST\r\nabc",
     ENV_OUT "250 2.0.0 0 octets received\r\n", "C(BDAT-BODY)", NULL},
    {"disconnect-data-end-2nd", disc_end, false,
     ENV "DATA\r\nx\r\n.\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\ny\r\n.\r\nNOOP\r\n",
     ENV_OUT GO_DATA Q(1) OK_MAIL OK_RCPT GO_DATA,
     "M(q=1,from=a@x,rcpt=b@y,size=3)M(q=2,from=a@x,rcpt=b@y,size=3)C(DATA-END)", NULL},
    {"minimal-ehlo-8bit", minimal, false,
     "EHLO c\r\nMAIL FROM:<a@x> BODY=8BITMIME\r\nMAIL FROM:<a@x> SMTPUTF8\r\n"
     "MAIL FROM:<a@x> BODY=7BIT\r\n",
     "250-sink.test\r\n250-STARTTLS\r\n250 ENHANCEDSTATUSCODES\r\n555 5.5.4 Unsupported option: "
     "BODY\r\n"
     "555 5.5.4 Unsupported option: SMTPUTF8\r\n" OK_MAIL,
     "", NULL},
    {"smtputf8-ok", NULL, false,
     "EHLO c\r\nMAIL FROM:<\xc3\xa9@x> SMTPUTF8\r\nRCPT TO:<\xc3\xa9@y>\r\nBDAT 1 LAST\r\n\xff",
     EHLO_PLAIN OK_MAIL OK_RCPT Q(1), "M(q=1,from=\xc3\xa9@x,rcpt=\xc3\xa9@y,size=1,utf8,bdat)",
     NULL},
    {"lf-commands", NULL, false, "EHLO c\nNOOP\nQUIT\n", EHLO_PLAIN OK BYE, "C", NULL},
    {"message-id-folded", NULL, false,
     ENV "DATA\r\nFrom: a\r\nmessage-id :\r\n  <fold@x>  \r\nSubject: s\r\n\r\nMessage-ID: <no>\r\n"
         ".\r\n",
     ENV_OUT GO_DATA Q(1), "M(q=1,from=a@x,rcpt=b@y,size=69,id=<fold@x>)", NULL},
};

/* ---- other checks ---- */

static void test_message_id(void)
{
    char out[16];

    CHECK_INT(sink_smtp_find_message_id("Message-ID: <a@b>\r\n\r\n", 21, out, sizeof(out)), 5);
    CHECK_STR(out, "<a@b>");
    CHECK_INT(
        sink_smtp_find_message_id("Subject: x\r\n\r\nMessage-ID: <a@b>\r\n", 33, out, sizeof(out)),
        -1);
    CHECK_INT(sink_smtp_find_message_id("X-Message-ID: <a>\r\n", 19, out, sizeof(out)), -1);
    CHECK_INT(sink_smtp_find_message_id("Message-Id:<a>", 14, out, sizeof(out)), 3);
    CHECK_STR(out, "<a>");
    CHECK_INT(sink_smtp_find_message_id("Message-ID: <0123456789abcdefgh>\n", 33, out, sizeof(out)),
              15);
    CHECK_INT(sink_smtp_find_message_id("Message-ID:\r\n\r\n", 15, out, sizeof(out)), 0);
}

static void test_names(void)
{
    for (int p = 0; p < SINK_SMTP_P_COUNT; p++) {
        const char *n = sink_smtp_point_name(p);
        CHECK_INT(sink_smtp_point_parse(n, strlen(n)), p);
    }
    CHECK_INT(sink_smtp_point_parse(".", 1), SINK_SMTP_P_DATA);
    CHECK_INT(sink_smtp_point_parse("rcpt", 4), SINK_SMTP_P_RCPT);
    CHECK_INT(sink_smtp_point_parse("RCPTX", 5), -1);
    CHECK_STR(sink_smtp_point_name(99), "unknown");
    CHECK_STR(sink_smtp_event_name(SINK_SMTP_EV_STARTTLS), "starttls");
    CHECK(sink_smtp_point_has_reply(SINK_SMTP_P_QUIT));
    CHECK(!sink_smtp_point_has_reply(SINK_SMTP_P_DATA_END));
}

/* Over 2048 octets the line is dropped as it streams; AUTH may use 2048. */
static void test_long_lines(void)
{
    static char in[8000], want[2000];
    static struct run r;
    size_t n = 0, w;

    n += (size_t)snprintf(in + n, sizeof(in) - n, "EHLO c\r\nNOOP ");
    memset(in + n, 'x', 3000);
    n += 3000;
    n += (size_t)snprintf(in + n, sizeof(in) - n, "\r\nNOOP\r\n");
    w = (size_t)snprintf(want, sizeof(want), "%s%s%s%s", GREET, EHLO_PLAIN,
                         "500 5.5.2 Error: line too long\r\n", OK);
    for (int split = 0; split < 3; split++) {
        run_case(NULL, false, in, n, split, &r);
        CHECK_MEM(r.out, r.out_len, want, w);
    }

    n = (size_t)snprintf(in, sizeof(in), "EHLO c\r\nAUTH PLAIN ");
    memset(in + n, 'A', 1500);
    n += 1500;
    n += (size_t)snprintf(in + n, sizeof(in) - n, "\r\n");
    w = (size_t)snprintf(want, sizeof(want), "%s%s%s", GREET, EHLO_AUTH,
                         "535 5.7.8 Error: authentication failed\r\n");
    run_case(with_auth, true, in, n, 2, &r);
    CHECK_MEM(r.out, r.out_len, want, w);
}

/* A flood of pipelined commands: the soft limit splits the feed, nothing is lost. */
static void test_output_backpressure(void)
{
    static char in[40000];
    static struct run r;
    size_t n = 0, want = strlen(GREET EHLO_PLAIN);

    memcpy(in, "EHLO c\r\n", 8);
    n = 8;
    while (n + 6 < sizeof(in)) {
        memcpy(in + n, "NOOP\r\n", 6);
        n += 6;
        want += strlen(OK);
    }
    run_case(NULL, false, in, n, 0, &r);
    CHECK_INT(r.out_len, want);
}

/* Shutdown: 421 and CLOSE; idle tells whether it is safe to do it now. */
static void test_shutdown_idle(void)
{
    struct sink_smtp_config cfg;
    struct sink_smtp *s;
    struct sink_smtp_event ev;
    const char *o;
    size_t n;

    base_config(&cfg);
    s = sink_smtp_create(&cfg);
    sink_smtp_start(s, false);
    o = sink_smtp_output(s, &n);
    sink_smtp_sent(s, n);
    CHECK(sink_smtp_idle(s));
    CHECK_INT(sink_smtp_feed(s, "NOO", 3), 3);
    CHECK(!sink_smtp_idle(s));
    CHECK_INT(sink_smtp_feed(s, "P\r\n", 3), 3);
    CHECK(sink_smtp_idle(s));
    sink_smtp_shutdown(s);
    o = sink_smtp_output(s, &n);
    CHECK_MEM(o, n, OK "421 4.3.2 sink.test Service shutting down\r\n",
              strlen(OK "421 4.3.2 sink.test Service shutting down\r\n"));
    CHECK_INT(sink_smtp_next_event(s, &ev), 1);
    CHECK_INT(ev.type, SINK_SMTP_EV_CLOSE);
    CHECK(ev.flush);
    CHECK_INT(sink_smtp_feed(s, "NOOP\r\n", 6), 0);
    CHECK(!sink_smtp_tls_active(s));
    sink_smtp_destroy(s);
}

/* A delay holds the reply back until resume, and input waits meanwhile. */
static void test_delay_holds(void)
{
    struct sink_smtp_config cfg;
    struct sink_smtp *s;
    struct sink_smtp_event ev;
    const char *in = "EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nNOOP\r\n";
    size_t n, used;
    const char *o;

    base_config(&cfg);
    delay_rcpt(&cfg);
    s = sink_smtp_create(&cfg);
    sink_smtp_start(s, false);
    used = sink_smtp_feed(s, in, strlen(in));
    CHECK_INT(used, strlen(in) - 6); /* stopped after RCPT */
    CHECK_INT(sink_smtp_next_event(s, &ev), 1);
    CHECK_INT(ev.type, SINK_SMTP_EV_DELAY);
    CHECK_INT(ev.ms, 250);
    CHECK_INT(sink_smtp_feed(s, in + used, 6), 0); /* held */
    o = sink_smtp_output(s, &n);
    CHECK_MEM(o, n, GREET EHLO_PLAIN OK_MAIL, strlen(GREET EHLO_PLAIN OK_MAIL));
    sink_smtp_sent(s, n);
    sink_smtp_resume(s);
    CHECK_INT(sink_smtp_feed(s, in + used, 6), 6);
    o = sink_smtp_output(s, &n);
    CHECK_MEM(o, n, OK_RCPT OK, strlen(OK_RCPT OK));
    sink_smtp_destroy(s);
}

/* Random messages: DATA un-stuffs to message_unstuff's answer, BDAT keeps bytes. */
static void test_property(void)
{
    static char msg[6000], wire[13000], script[14000], back[13000];
    static struct run r;

    for (int iter = 0; iter < 400; iter++) {
        size_t len = 1 + rng() % 3000, wlen, slen;
        struct message_facts f;
        long want;
        static const char alphabet[] = ".\r\n..a \xe9";

        for (size_t i = 0; i < len; i++)
            msg[i] = alphabet[rng() % (sizeof(alphabet) - 1)];
        if (message_prepare(msg, len, MESSAGE_ENC_DATA, wire, sizeof(wire), &f) != 0)
            continue;
        wlen = f.wire_len;
        want = message_unstuff(wire, wlen, back, sizeof(back));
        CHECK(want >= 0);
        slen = (size_t)snprintf(script, sizeof(script), "%sDATA\r\n", ENV);
        memcpy(script + slen, wire, wlen);
        slen += wlen;
        run_case(NULL, false, script, slen, (int)(iter % 3), &r);
        CHECK_MEM(r.body, r.body_len, back, (size_t)(want < 0 ? 0 : want));

        /* BDAT: the prepared body in random chunks, byte for byte. */
        if (message_prepare(msg, len, MESSAGE_ENC_BDAT, wire, sizeof(wire), &f) != 0)
            continue;
        slen = (size_t)snprintf(script, sizeof(script), "%s", ENV);
        for (size_t off = 0; off < f.wire_len;) {
            size_t k = 1 + rng() % 700;
            if (k > f.wire_len - off)
                k = f.wire_len - off;
            slen += (size_t)snprintf(script + slen, sizeof(script) - slen, "BDAT %zu%s\r\n", k,
                                     off + k == f.wire_len ? " LAST" : "");
            memcpy(script + slen, wire + off, k);
            slen += k;
            off += k;
        }
        run_case(NULL, false, script, slen, (int)(iter % 3), &r);
        CHECK_MEM(r.body, r.body_len, wire, f.wire_len);
    }
}

int main(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_case(&cases[i]);
    test_message_id();
    test_names();
    test_long_lines();
    test_output_backpressure();
    test_shutdown_idle();
    test_delay_holds();
    test_property();
    return check_done();
}
