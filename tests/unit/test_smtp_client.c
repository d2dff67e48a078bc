/*
 * Unit tests for smtp_client beyond the golden transcripts: input that
 * would corrupt a command, caller-facing flags and output pieces, idle-time
 * commands, and connection reuse over many transactions.
 */
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "smtp_client.h"

struct h {
    struct smtp_client *c;
    char out[8192];
    size_t outlen;
    int body_pieces;
    struct smtp_client_event ev[16];
    size_t nev;
};

static void flush(struct h *h)
{
    struct smtp_client_out o[8];
    size_t n, i, total = 0;
    n = smtp_client_output(h->c, o, 8);
    for (i = 0; i < n; i++) {
        if (h->outlen + o[i].len < sizeof(h->out)) {
            memcpy(h->out + h->outlen, o[i].base, o[i].len);
            h->outlen += o[i].len;
        }
        h->body_pieces += o[i].body != 0;
        total += o[i].len;
    }
    h->out[h->outlen] = 0;
    smtp_client_sent(h->c, total);
}

static void events(struct h *h)
{
    h->nev = 0;
    while (h->nev < 16 && smtp_client_next_event(h->c, &h->ev[h->nev]))
        h->nev++;
}

static long feed(struct h *h, const char *s)
{
    long n = smtp_client_feed(h->c, s, strlen(s));
    events(h);
    flush(h);
    return n;
}

static void clear(struct h *h)
{
    h->outlen = 0;
    h->out[0] = 0;
    h->body_pieces = 0;
}

static const char *EHLO_TLS = "250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n";

/* Bring a client to READY over STARTTLS, pipeline_depth depth. */
static void to_ready_depth(struct h *h, const char *post_tls_ehlo, unsigned depth)
{
    struct smtp_client_config cfg = {0};
    const char *err = NULL;
    memset(h, 0, sizeof(*h));
    cfg.ehlo_name = "client.test";
    cfg.tls_mode = SMTP_CLIENT_STARTTLS;
    cfg.pipeline_body = depth > 0;
    cfg.pipeline_depth = depth;
    h->c = smtp_client_new(&cfg, &err);
    feed(h, "220 mx.test ESMTP\r\n");
    feed(h, "250-mx.test\r\n250-AUTH PLAIN\r\n250-SIZE 100\r\n250 STARTTLS\r\n");
    feed(h, "220 go\r\n");
    smtp_client_tls_done(h->c, 1, SMTP_CLIENT_R_NONE, NULL);
    flush(h);
    feed(h, post_tls_ehlo);
    clear(h);
}

static void to_ready(struct h *h, const char *post_tls_ehlo)
{
    to_ready_depth(h, post_tls_ehlo, 0);
}

#define EHLO_BAD_CHAR                                                                              \
    "EHLO name contains a character that is not allowed in a domain (letters, digits, '-' and "    \
    "'.'; no '_')"

static void test_config_refusals(void)
{
    struct smtp_client_config cfg = {0};
    const char *err = NULL;
    static const struct {
        const char *name;
        const char *want;
    } names[] = {
        {"", "EHLO name is empty"},
        {"host\r\nMAIL FROM:<x>", EHLO_BAD_CHAR},
        {"host name", EHLO_BAD_CHAR},
        {"h\x01", EHLO_BAD_CHAR},
    };
    size_t i;
    char longname[300];

    cfg.tls_mode = SMTP_CLIENT_STARTTLS;
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        cfg.ehlo_name = names[i].name;
        err = NULL;
        CHECK(smtp_client_new(&cfg, &err) == NULL);
        CHECK_STR(err, names[i].want);
    }
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    cfg.ehlo_name = longname;
    CHECK(smtp_client_new(&cfg, &err) == NULL);
    CHECK_STR(err, "EHLO name is longer than 255 octets");

    cfg.ehlo_name = "[192.0.2.1]";
    cfg.tls_mode = 0;
    CHECK(smtp_client_new(&cfg, &err) == NULL);
    CHECK_STR(err, "TLS mode must be starttls or implicit");

    cfg.tls_mode = SMTP_CLIENT_IMPLICIT_TLS;
    cfg.auth_plain_b64 = "AHUAcA==";
    CHECK(smtp_client_new(&cfg, &err) == NULL);
    CHECK_STR(err, "AUTH credentials are incomplete");
    cfg.auth_user_b64 = "dQ==";
    cfg.auth_pass_b64 = "cA==\r\nRCPT";
    CHECK(smtp_client_new(&cfg, &err) == NULL);
    CHECK_STR(err, "AUTH credentials are not base64");
}

static void test_txn_refusals(void)
{
    struct h h;
    struct smtp_client_rcpt_result res[2];
    const char *err;
    static const char body[] = "hi\r\n.\r\n";
    static const struct {
        const char *from;
        const char *to;
        const char *want;
    } cases[] = {
        {"a@x\r\nRCPT TO:<evil@x>", "b@y", "CR, LF or NUL in address"},
        {"a@x", "b@y\nDATA", "CR, LF or NUL in address"},
        {"a@x>", "b@y", "'<' or '>' in address (give the bare address)"},
        {"a@x", "<b@y", "'<' or '>' in address (give the bare address)"},
        {"a b@x", "b@y", "space outside a quoted local part"},
        {"\"a@x", "b@y", "unterminated quoted local part"},
        {"a@x", "", "recipient address is empty"},
    };
    size_t i;
    char longaddr[300];

    to_ready(&h, EHLO_TLS);
    CHECK(smtp_client_is_ready(h.c));
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *rcpts[1] = {cases[i].to};
        struct smtp_client_txn t = {0};
        t.from = cases[i].from;
        t.rcpts = rcpts;
        t.nrcpt = 1;
        t.body = body;
        t.body_len = sizeof(body) - 1;
        t.results = res;
        err = NULL;
        CHECK_INT(smtp_client_start(h.c, &t, &err), -1);
        CHECK_STR(err, cases[i].want);
        CHECK(smtp_client_is_ready(h.c));
        CHECK_INT(smtp_client_output_len(h.c), 0);
    }
    memset(longaddr, 'a', sizeof(longaddr) - 1);
    longaddr[sizeof(longaddr) - 1] = 0;
    {
        const char *rcpts[1] = {longaddr};
        struct smtp_client_txn t = {0};
        t.from = "";
        t.rcpts = rcpts;
        t.nrcpt = 1;
        t.body = body;
        t.body_len = sizeof(body) - 1;
        t.results = res;
        CHECK_INT(smtp_client_start(h.c, &t, &err), -1);
        CHECK_STR(err, "address longer than 254 octets");
        rcpts[0] = "b@y";
        t.nrcpt = 0;
        CHECK_INT(smtp_client_start(h.c, &t, &err), -1);
        CHECK_STR(err, "transaction has no recipients");
        t.nrcpt = 1;
        t.body_len = 2; /* not prepared for DATA */
        CHECK_INT(smtp_client_start(h.c, &t, &err), -1);
        CHECK_STR(err, "body is not prepared for DATA (no CRLF.CRLF terminator)");
        t.results = NULL;
        t.body_len = sizeof(body) - 1;
        CHECK_INT(smtp_client_start(h.c, &t, &err), -1);
        CHECK_STR(err, "transaction has no results array");
        /* The null sender is fine. */
        t.results = res;
        CHECK_INT(smtp_client_start(h.c, &t, &err), 0);
        flush(&h);
        CHECK(strncmp(h.out, "MAIL FROM:<>\r\n", 14) == 0);
        /* Not READY now: a second start is refused. */
        CHECK_INT(smtp_client_start(h.c, &t, &err), -1);
        CHECK_STR(err, "connection is not ready for a transaction");
    }
    smtp_client_free(h.c);
}

static void test_flags_and_pieces(void)
{
    struct h h;
    struct smtp_client_rcpt_result res[1];
    struct smtp_client_txn t = {0};
    const char *rcpts[1] = {"b@y"};
    const char *err;
    static const char body[] = "hi\r\n.\r\n";
    struct smtp_client_out o[4];
    size_t n;

    to_ready(&h, EHLO_TLS);
    t.from = "a@x";
    t.rcpts = rcpts;
    t.nrcpt = 1;
    t.body = body;
    t.body_len = sizeof(body) - 1;
    t.results = res;
    CHECK_INT(smtp_client_start(h.c, &t, &err), 0);
    flush(&h);
    CHECK_STR(h.out, "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n");
    CHECK_INT(t.body_started, 0);
    smtp_client_feed(h.c, "250 ok\r\n250 ok\r\n354 go\r\n", 24);
    CHECK_INT(t.body_started, 1);
    CHECK_INT(t.body_sent, 0);
    n = smtp_client_output(h.c, o, 4);
    CHECK_INT(n, 1);
    CHECK(o[0].body && o[0].base == body && o[0].len == sizeof(body) - 1);
    /* Partial sends advance within the piece. */
    smtp_client_sent(h.c, 3);
    n = smtp_client_output(h.c, o, 4);
    CHECK(n == 1 && o[0].base == body + 3);
    CHECK_INT(t.body_sent, 0);
    smtp_client_sent(h.c, sizeof(body) - 1 - 3);
    CHECK_INT(t.body_sent, 1);
    CHECK_INT(smtp_client_output_len(h.c), 0);
    feed(&h, "250 2.0.0 queued\r\n");
    CHECK_INT(h.nev, 2);
    CHECK_INT(h.ev[0].type, SMTP_CLIENT_EV_TXN_DONE);
    CHECK(h.ev[0].txn == &t);
    CHECK_INT(h.ev[1].type, SMTP_CLIENT_EV_READY);
    CHECK_INT(res[0].outcome, SMTP_CLIENT_DELIVERED);
    CHECK_STR(res[0].enhanced, "2.0.0");
    CHECK_STR(res[0].reply, "2.0.0 queued");
    CHECK_INT(t.delivered, 1);
    smtp_client_free(h.c);
}

static void test_caps_forgotten(void)
{
    struct h h;
    to_ready(&h, "250-mx.test\r\n250 PIPELINING\r\n");
    /* Pre-TLS the server offered AUTH and SIZE 100: both forgotten. */
    CHECK(!(smtp_client_caps(h.c)->ext & SMTP_EXT_AUTH));
    CHECK(!(smtp_client_caps(h.c)->ext & SMTP_EXT_SIZE));
    CHECK(smtp_client_caps(h.c)->ext & SMTP_EXT_PIPELINING);
    CHECK(smtp_client_tls_active(h.c));
    CHECK_INT(smtp_client_body_encoding(h.c), MESSAGE_ENC_DATA);
    smtp_client_free(h.c);
}

static void test_idle_commands(void)
{
    struct h h;
    to_ready(&h, EHLO_TLS);
    CHECK_INT(smtp_client_noop(h.c), 0);
    flush(&h);
    CHECK_STR(h.out, "NOOP\r\n");
    CHECK_INT(smtp_client_noop(h.c), -1); /* not READY while NOOP is out */
    feed(&h, "250 2.0.0 Ok\r\n");
    CHECK(h.nev == 1 && h.ev[0].type == SMTP_CLIENT_EV_READY);
    /* An unsolicited 421 while idle (server timeout) ends the connection. */
    CHECK_INT(feed(&h, "421 4.4.2 Timeout\r\n"), -1);
    CHECK(h.nev == 1 && h.ev[0].type == SMTP_CLIENT_EV_FAILED);
    CHECK_INT(h.ev[0].reason, SMTP_CLIENT_R_SERVER_CLOSED);
    CHECK_INT(h.ev[0].code, 421);
    CHECK_STR(h.ev[0].enhanced, "4.4.2");
    smtp_client_free(h.c);

    to_ready(&h, EHLO_TLS);
    CHECK_INT(smtp_client_quit(h.c), 0);
    flush(&h);
    CHECK_STR(h.out, "QUIT\r\n");
    smtp_client_eof(h.c); /* some servers close without a 221 */
    events(&h);
    CHECK(h.nev == 1 && h.ev[0].type == SMTP_CLIENT_EV_CLOSED);
    smtp_client_free(h.c);
}

/* A close asked for while the session is busy is a QUIT once it is idle
 * and in step again, never a reset: after a NOOP's reply, in place of the
 * next command of a session being set up, and not at all once it failed. */
static void test_quit_when_busy(void)
{
    struct smtp_client_config cfg = {0};
    const char *err = NULL;
    struct h h;

    to_ready(&h, EHLO_TLS);
    CHECK_INT(smtp_client_noop(h.c), 0);
    flush(&h);
    clear(&h);
    CHECK_INT(smtp_client_quit(h.c), 0);
    CHECK(!smtp_client_quitting(h.c)); /* the NOOP's reply is awaited first */
    CHECK_INT(smtp_client_can_start(h.c), 0);
    CHECK_INT((long)smtp_client_output_len(h.c), 0); /* NOOP's reply first */
    feed(&h, "250 2.0.0 Ok\r\n");
    CHECK_INT((long)h.nev, 0); /* no READY: nobody may start a transaction */
    CHECK_STR(h.out, "QUIT\r\n");
    CHECK(smtp_client_quitting(h.c));
    feed(&h, "221 2.0.0 Bye\r\n");
    CHECK(h.nev == 1 && h.ev[0].type == SMTP_CLIENT_EV_CLOSED);
    CHECK_INT(smtp_client_quit(h.c), -1);
    smtp_client_free(h.c);

    /* Before the greeting: QUIT instead of EHLO. */
    memset(&h, 0, sizeof(h));
    cfg.ehlo_name = "client.test";
    cfg.tls_mode = SMTP_CLIENT_STARTTLS;
    h.c = smtp_client_new(&cfg, &err);
    CHECK_INT(smtp_client_quit(h.c), 0);
    feed(&h, "220 mx.test ESMTP\r\n");
    CHECK_STR(h.out, "QUIT\r\n");
    feed(&h, "221 Bye\r\n");
    CHECK(h.nev == 1 && h.ev[0].type == SMTP_CLIENT_EV_CLOSED);
    smtp_client_free(h.c);

    /* During the handshake: QUIT (over TLS) instead of the second EHLO. */
    memset(&h, 0, sizeof(h));
    h.c = smtp_client_new(&cfg, &err);
    feed(&h, "220 mx.test ESMTP\r\n");
    feed(&h, "250-mx.test\r\n250 STARTTLS\r\n");
    feed(&h, "220 go\r\n");
    clear(&h);
    CHECK_INT(smtp_client_quit(h.c), 0);
    smtp_client_tls_done(h.c, 1, SMTP_CLIENT_R_NONE, NULL);
    flush(&h);
    CHECK_STR(h.out, "QUIT\r\n");
    smtp_client_free(h.c);

    /* A broken session is not QUIT: there is nothing to say it to. */
    to_ready(&h, EHLO_TLS);
    smtp_client_abort(h.c, SMTP_CLIENT_R_TIMEOUT, "timeout");
    CHECK_INT(smtp_client_quit(h.c), -1);
    CHECK_INT((long)smtp_client_output_len(h.c), 0);
    smtp_client_free(h.c);
}

static void test_session_limit(void)
{
    static const struct {
        int code;
        const char *enhanced, *text;
        int want;
    } cases[] = {
        {452, "4.5.3", "4.5.3 Too many messages sent", 1},       /* OpenSMTPD max-mails */
        {421, "4.7.0", "4.7.0 Try again later, closing", 1},     /* any 421 */
        {450, "", "Too many mails in this session", 1},          /* text, any case */
        {451, "4.7.0", "4.7.0 too MANY messages, slow down", 1}, /* text, any case */
        {451, "4.7.1", "4.7.1 Greylisted, try again later", 0},  /* per transaction */
        {452, "4.3.1", "4.3.1 Insufficient system storage", 0},
        {552, "5.5.3", "5.5.3 Too many messages", 0}, /* permanent stays permanent */
        {250, "2.1.0", "2.1.0 too many messages ok", 0},
    };
    size_t i;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct smtp_reply r;
        memset(&r, 0, sizeof(r));
        r.code = cases[i].code;
        snprintf(r.enhanced, sizeof(r.enhanced), "%s", cases[i].enhanced);
        r.text = cases[i].text;
        r.text_len = strlen(cases[i].text);
        CHECK_INT(smtp_client_is_session_limit(&r), cases[i].want);
    }
}

static void test_abort_in_flight(void)
{
    struct h h;
    struct smtp_client_rcpt_result res[2];
    struct smtp_client_txn t = {0};
    const char *rcpts[2] = {"b@y", "c@y"};
    const char *err;
    static const char body[] = "hi\r\n.\r\n";

    to_ready(&h, EHLO_TLS);
    t.from = "a@x";
    t.rcpts = rcpts;
    t.nrcpt = 2;
    t.body = body;
    t.body_len = sizeof(body) - 1;
    t.results = res;
    CHECK_INT(smtp_client_start(h.c, &t, &err), 0);
    flush(&h);
    feed(&h, "250 ok\r\n550 5.1.1 unknown\r\n");
    smtp_client_abort(h.c, SMTP_CLIENT_R_TIMEOUT, "RCPT reply timed out");
    events(&h);
    CHECK(h.nev == 1 && h.ev[0].type == SMTP_CLIENT_EV_FAILED && h.ev[0].txn == &t);
    CHECK_INT(h.ev[0].reason, SMTP_CLIENT_R_TIMEOUT);
    CHECK_STR(h.ev[0].text, "RCPT reply timed out");
    CHECK_INT(res[0].outcome, SMTP_CLIENT_PERMANENT);
    CHECK_INT(res[1].outcome, SMTP_CLIENT_TEMPORARY);
    CHECK_INT(res[1].reason, SMTP_CLIENT_R_TIMEOUT);
    CHECK_INT(smtp_client_output_len(h.c), 0);
    CHECK_INT(smtp_client_feed(h.c, "250 ok\r\n", 8), -1);
    smtp_client_free(h.c);
}

/* Transactions back to back: how many the client takes, the body pieces
 * naming their transaction, a local refusal that does not disturb the
 * order, and a failure with several in flight settling every one. */
static void test_pipelined_txns(void)
{
    static const char *const chunking = "250-mx.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n";
    static const char body[] = "hi\r\n";
    static const char eightbit[] = "h\xc3\xa9\r\n";
    struct smtp_client_rcpt_result res[4][1];
    struct smtp_client_txn t[4];
    struct smtp_client_out o[16];
    const char *rcpts[1] = {"b@y"};
    const char *err;
    struct h h;
    size_t i, n;

    /* Without CHUNKING (DATA waits for 354) or without pipeline_body: one. */
    to_ready_depth(&h, EHLO_TLS, 8);
    CHECK_INT(smtp_client_can_start(h.c), 1);
    smtp_client_free(h.c);
    to_ready_depth(&h, chunking, 0);
    CHECK_INT(smtp_client_can_start(h.c), 1);
    smtp_client_free(h.c);

    to_ready_depth(&h, chunking, 3);
    CHECK_INT(smtp_client_can_start(h.c), 3);
    CHECK(smtp_client_current(h.c) == NULL);
    for (i = 0; i < 4; i++) {
        memset(&t[i], 0, sizeof(t[i]));
        t[i].from = "a@x";
        t[i].rcpts = rcpts;
        t[i].nrcpt = 1;
        t[i].body = i == 1 ? eightbit : body;
        t[i].body_len = i == 1 ? sizeof(eightbit) - 1 : sizeof(body) - 1;
        t[i].facts.eightbit = i == 1;
        t[i].results = res[i];
    }
    CHECK_INT(smtp_client_start(h.c, &t[0], &err), 0);
    CHECK_INT(smtp_client_can_start(h.c), 2);
    CHECK(smtp_client_current(h.c) == &t[0]);
    /* No 8BITMIME: refused at once, ahead of t[0], which stays in flight. */
    CHECK_INT(smtp_client_start(h.c, &t[1], &err), 0);
    events(&h);
    CHECK(h.nev == 1 && h.ev[0].type == SMTP_CLIENT_EV_TXN_DONE && h.ev[0].txn == &t[1]);
    CHECK_INT(res[1][0].outcome, SMTP_CLIENT_PERMANENT);
    CHECK_INT(smtp_client_start(h.c, &t[2], &err), 0);
    CHECK_INT(smtp_client_start(h.c, &t[3], &err), 0);
    CHECK_INT(smtp_client_can_start(h.c), 0);
    CHECK_INT(smtp_client_start(h.c, &t[1], &err), -1);
    n = smtp_client_output(h.c, o, 16);
    CHECK_INT(n, 6); /* commands, body, commands, body, commands, body */
    CHECK(o[1].body && o[1].txn == &t[0] && o[3].txn == &t[2] && o[5].txn == &t[3]);
    CHECK(!o[0].body && o[0].txn == NULL);
    flush(&h);
    CHECK(t[0].body_sent && t[2].body_sent && t[3].body_sent);
    CHECK(strstr(h.out, "hi\r\nRSET\r\nMAIL FROM:<a@x>") != NULL); /* RSET behind another */
    /* The first is delivered; the second gets its RSET, MAIL and RCPT
     * replies, then the connection drops: both left fail as temporary,
     * and the event names the oldest. */
    feed(&h, "250 ok\r\n250 ok\r\n250 queued\r\n250 reset\r\n250 ok\r\n250 ok\r\n");
    CHECK(h.nev == 1 && h.ev[0].type == SMTP_CLIENT_EV_TXN_DONE && h.ev[0].txn == &t[0]);
    CHECK_INT(res[0][0].outcome, SMTP_CLIENT_DELIVERED);
    CHECK(smtp_client_current(h.c) == &t[2]);
    CHECK_INT(smtp_client_can_start(h.c), 1);
    smtp_client_eof(h.c);
    events(&h);
    CHECK(h.nev == 1 && h.ev[0].type == SMTP_CLIENT_EV_FAILED && h.ev[0].txn == &t[2]);
    CHECK_INT(res[2][0].outcome, SMTP_CLIENT_TEMPORARY);
    CHECK_INT(res[3][0].outcome, SMTP_CLIENT_TEMPORARY);
    CHECK_INT(res[3][0].reason, SMTP_CLIENT_R_CONNECTION);
    CHECK(smtp_client_current(h.c) == NULL);
    CHECK_INT(smtp_client_can_start(h.c), 0);
    smtp_client_free(h.c);
}

/* Many transactions on one connection, replies fed in odd splits. */
static void test_reuse_many(void)
{
    struct h h;
    struct smtp_client_rcpt_result res[1];
    const char *rcpts[1] = {"b@y"};
    const char *err;
    static const char body[] = "hi\r\n.\r\n";
    static const char replies[] = "250 ok\r\n250 ok\r\n354 go\r\n250 queued\r\n";
    int i, delivered = 0;

    to_ready(&h, EHLO_TLS);
    for (i = 0; i < 10000; i++) {
        struct smtp_client_txn t = {0};
        size_t off = 0, step = (size_t)(i % 7) + 1;
        t.from = "a@x";
        t.rcpts = rcpts;
        t.nrcpt = 1;
        t.body = body;
        t.body_len = sizeof(body) - 1;
        t.results = res;
        if (smtp_client_start(h.c, &t, &err) != 0)
            break;
        clear(&h);
        flush(&h);
        while (off < sizeof(replies) - 1) {
            size_t k = off + step > sizeof(replies) - 1 ? sizeof(replies) - 1 - off : step;
            smtp_client_feed(h.c, replies + off, k);
            flush(&h);
            off += k;
        }
        events(&h);
        if (h.nev == 2 && h.ev[0].type == SMTP_CLIENT_EV_TXN_DONE &&
            res[0].outcome == SMTP_CLIENT_DELIVERED)
            delivered++;
        if (i % 1000 == 0)
            smtp_client_trim(h.c);
    }
    CHECK_INT(delivered, 10000);
    smtp_client_free(h.c);
}

static void test_names(void)
{
    CHECK_STR(smtp_client_reason_name(SMTP_CLIENT_R_NO_STARTTLS), "no-starttls");
    CHECK_STR(smtp_client_reason_name(SMTP_CLIENT_R_STARTTLS_REJECTED), "starttls-rejected");
    CHECK_STR(smtp_client_reason_name(SMTP_CLIENT_R_CERT_VERIFY), "cert-verify");
    CHECK_STR(smtp_client_reason_name(SMTP_CLIENT_R_PROTOCOL_VERSION), "protocol-version");
    CHECK_STR(smtp_client_reason_name((enum smtp_client_reason)99), "unknown");
    CHECK_STR(smtp_client_outcome_name(SMTP_CLIENT_TEMPORARY), "temporary");
    CHECK_STR(smtp_client_event_name(SMTP_CLIENT_EV_NEED_TLS), "need-tls");
}

/* The client checks envelopes and EHLO names with the validators the job
 * parser and check-config use (smtp_syntax): an RFC 5321 quoted-pair
 * before the closing quote is valid, a name with '_' or no '@' is not. */
static void test_shared_validators(void)
{
    static const char body[] = "hi\r\n.\r\n";
    static const struct {
        const char *to;
        const char *want; /* NULL: accepted */
    } cases[] = {
        {"\"a\\\\\"@example.com", NULL}, /* "a\\"@example.com: a quoted backslash */
        {"\"a b\"@example.com", NULL},
        {"a@[192.0.2.1]", NULL},
        {"\"a\\\"@example.com", "unterminated quoted local part"}, /* "a\"@example.com */
        {"postmaster", "no '@' in address"},
        {"a..b@example.com", "misplaced '.' in local part"},
        {"a@x_y.example", "invalid character in domain"},
        {"a@[192.0.2.300]", "invalid address literal"},
    };
    struct smtp_client_config cfg = {0};
    struct smtp_client_rcpt_result res[1];
    const char *err;
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct h h;
        const char *rcpts[1] = {cases[i].to};
        struct smtp_client_txn t = {0};
        to_ready(&h, EHLO_TLS);
        t.from = "s@example.org";
        t.rcpts = rcpts;
        t.nrcpt = 1;
        t.body = body;
        t.body_len = sizeof(body) - 1;
        t.results = res;
        err = NULL;
        CHECK_INT(smtp_client_start(h.c, &t, &err), cases[i].want ? -1 : 0);
        if (cases[i].want)
            CHECK_STR(err, cases[i].want);
        smtp_client_free(h.c);
    }
    cfg.tls_mode = SMTP_CLIENT_STARTTLS;
    cfg.ehlo_name = "mail_1.example.com";
    err = NULL;
    CHECK(smtp_client_new(&cfg, &err) == NULL);
    CHECK_STR(err, EHLO_BAD_CHAR);
    cfg.ehlo_name = "mail.-example.com";
    CHECK(smtp_client_new(&cfg, &err) == NULL);
    CHECK_STR(err, "EHLO name has a label that starts or ends with '-'");
    cfg.ehlo_name = "[300.0.0.1]";
    CHECK(smtp_client_new(&cfg, &err) == NULL);
    CHECK_STR(err, "EHLO name is not a valid address literal ([192.0.2.1] or [IPv6:2001:db8::1])");
}

/* Once AUTH has left, the bytes that carried the credentials are wiped in
 * the client's output buffer (which lives on for later commands), not just
 * marked free. */
static void test_auth_output_wiped(void)
{
    struct smtp_client_config cfg = {0};
    struct smtp_client_out o[8];
    const char *err = NULL, *b64 = "AHVzZXIAc2VjcmV0LXBhc3N3b3Jk"; /* \0user\0secret-password */
    const char *where = NULL;
    size_t n, i, total = 0;
    struct h h;

    memset(&h, 0, sizeof(h));
    cfg.ehlo_name = "client.test";
    cfg.tls_mode = SMTP_CLIENT_STARTTLS;
    cfg.auth_plain_b64 = b64;
    cfg.auth_user_b64 = "dXNlcg==";
    cfg.auth_pass_b64 = "c2VjcmV0LXBhc3N3b3Jk";
    h.c = smtp_client_new(&cfg, &err);
    CHECK(h.c != NULL);
    if (!h.c)
        return;
    feed(&h, "220 mx.test ESMTP\r\n");
    feed(&h, "250-mx.test\r\n250 STARTTLS\r\n");
    feed(&h, "220 go\r\n");
    smtp_client_tls_done(h.c, 1, SMTP_CLIENT_R_NONE, NULL);
    flush(&h);
    {
        static const char ehlo[] = "250-mx.test\r\n250 AUTH PLAIN LOGIN\r\n";
        CHECK_INT(smtp_client_feed(h.c, ehlo, sizeof(ehlo) - 1), (long)sizeof(ehlo) - 1);
    }
    n = smtp_client_output(h.c, o, 8);
    for (i = 0; i < n; i++) {
        if (o[i].len >= 11 && memcmp(o[i].base, "AUTH PLAIN ", 11) == 0)
            where = (const char *)o[i].base + 11;
        total += o[i].len;
    }
    CHECK(where != NULL);
    if (where) {
        CHECK(memcmp(where, b64, strlen(b64)) == 0);
        smtp_client_sent(h.c, total);
        /* Still the client's memory: the buffer is kept for what comes next. */
        for (total = 0, i = 0; i < strlen(b64); i++)
            total += where[i] != 0;
        CHECK_INT(total, 0); /* octets of the credentials left */
    }
    smtp_client_free(h.c);
}

int main(void)
{
    test_config_refusals();
    test_txn_refusals();
    test_flags_and_pieces();
    test_caps_forgotten();
    test_idle_commands();
    test_quit_when_busy();
    test_session_limit();
    test_abort_in_flight();
    test_reuse_many();
    test_pipelined_txns();
    test_names();
    test_shared_validators();
    test_auth_output_wiped();
    return check_done();
}
