/*
 * fuzz_address: the job parser and the SMTP client must agree on every
 * address. The input is a flags byte, then the address octets. Bit 0 puts
 * the address in "from", else in "to" (the only recipient). The job is
 * parsed from Redis-like fields; the client, brought to READY with
 * SMTPUTF8 offered, is given the same address in smtp_client_start().
 *
 * Invariants, each an abort(): the parser accepts exactly when the client
 * does; when the parser refuses, the reason names the address field; an
 * accepted job needs SMTPUTF8 exactly when the address has an 8-bit octet;
 * the accepted address comes back octet for octet.
 */
#include "job.h"
#include "message.h"
#include "smtp_client.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ASSERT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

#define F(n, v)                                                                                    \
    {                                                                                              \
        n, sizeof(n) - 1, v, strlen(v)                                                             \
    }

static const char *const relay_names[] = {"main"};
static const char body_data[] = "Subject: x\r\n\r\nx\r\n.\r\n";

static void drain_output(struct smtp_client *c)
{
    struct smtp_client_out o[8];
    size_t n, i, total = 0;
    n = smtp_client_output(c, o, 8);
    for (i = 0; i < n; i++)
        total += o[i].len;
    smtp_client_sent(c, total);
}

static void feed(struct smtp_client *c, const char *s)
{
    struct smtp_client_event ev;
    ASSERT(smtp_client_feed(c, s, strlen(s)) == (long)strlen(s));
    while (smtp_client_next_event(c, &ev))
        if (ev.type == SMTP_CLIENT_EV_NEED_TLS)
            smtp_client_tls_done(c, 1, SMTP_CLIENT_R_NONE, NULL);
    drain_output(c);
}

/* 1 when the client takes the envelope into a transaction. */
static int client_accepts(const char *from, const char *to)
{
    struct smtp_client_config cfg;
    struct smtp_client_txn t;
    struct smtp_client_rcpt_result res[1];
    const char *rcpts[1] = {to}, *err = NULL;
    struct smtp_client *c;
    int ok;

    memset(&cfg, 0, sizeof(cfg));
    cfg.ehlo_name = "client.example";
    cfg.tls_mode = SMTP_CLIENT_STARTTLS;
    c = smtp_client_new(&cfg, &err);
    ASSERT(c);
    drain_output(c);
    feed(c, "220 mx.test ESMTP\r\n");
    feed(c, "250-mx.test\r\n250 STARTTLS\r\n");
    feed(c, "220 go\r\n");
    feed(c, "250-mx.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n");
    ASSERT(smtp_client_is_ready(c));
    memset(&t, 0, sizeof(t));
    t.from = from;
    t.rcpts = rcpts;
    t.nrcpt = 1;
    t.body = body_data;
    t.body_len = sizeof(body_data) - 1;
    t.facts.size = t.body_len;
    t.results = res;
    ok = smtp_client_start(c, &t, &err) == 0;
    /* A refusal is always the address's: the connection, the body and the
     * rest of the transaction are valid. */
    ASSERT(ok || (err && strncmp(err, "connection", 10) != 0 &&
                  strncmp(err, "transaction", 11) != 0 && strncmp(err, "body", 4) != 0));
    smtp_client_free(c);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char addr[300], reason[JOB_REASON_MAX];
    int in_from, has_nul, eight;
    struct job_limits lim;
    struct job *j;
    size_t n;

    if (size < 2 || size - 1 >= sizeof(addr))
        return 0;
    in_from = data[0] & 1;
    n = size - 1;
    memcpy(addr, data + 1, n);
    addr[n] = 0;
    has_nul = memchr(addr, 0, n) != NULL;
    eight = message_has_8bit(addr, n);

    struct job_field fields[] = {
        {"from", 4, in_from ? addr : "s@example.org", in_from ? n : 13},
        {"to", 2, in_from ? "r@example.net" : addr, in_from ? 13 : n},
        F("subject", "x"),
        F("text", "x"),
    };
    memset(&lim, 0, sizeof(lim));
    lim.relays = relay_names;
    lim.nrelays = 1;
    lim.msgid_domain = "mx.example.net";
    lim.now = 1795872600;
    j = job_parse("1-1", fields, sizeof(fields) / sizeof(fields[0]), &lim, reason, sizeof(reason));
    if (!j) {
        /* Only the address can be wrong here. */
        ASSERT(strncmp(reason, in_from ? "from: " : "to #1: ", in_from ? 6 : 7) == 0);
    } else {
        const char *got = in_from ? job_from(j) : job_rcpts(j, &(size_t){0})[0];
        ASSERT(!has_nul);
        ASSERT(strlen(got) == n && memcmp(got, addr, n) == 0);
        ASSERT(job_needs_smtputf8(j) == eight);
    }
    /* A C string cannot carry a NUL to the client: the parser refusing it
     * is all there is to check. */
    if (!has_nul)
        ASSERT(client_accepts(in_from ? addr : "s@example.org", in_from ? "r@example.net" : addr) ==
               (j != NULL));
    job_free(j);
    return 0;
}
