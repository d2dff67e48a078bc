/*
 * Fuzz target: arbitrary server bytes against the client state machine.
 * The harness plays a transport that completes every TLS handshake, starts
 * transactions whenever the client is READY and sends everything queued.
 * Invariants (abort on violation): no envelope, AUTH or body byte leaves
 * before TLS is up; every finished transaction has every recipient decided;
 * the client never consumes more than it was given; with transactions
 * back to back, once the connection has failed every one started is
 * decided, and every body piece names its transaction.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_client.h"

static const char body_data[] = "Subject: x\r\n\r\nhello\r\n.\r\n";
static const char body_bdat[] = "Subject: x\r\n\r\nhello\r\n";

struct harness {
    struct smtp_client *c;
    struct smtp_client_txn txn[3];
    struct smtp_client_rcpt_result res[3][2];
    int started;
};

static void check_output(struct harness *h)
{
    struct smtp_client_out o[8];
    size_t n, i, total = 0;
    int tls = smtp_client_tls_active(h->c);
    n = smtp_client_output(h->c, o, 8);
    for (i = 0; i < n; i++) {
        const char *p = o[i].base;
        if (!tls && o[i].body)
            abort();
        if (o[i].body && !o[i].txn)
            abort();
        if (!tls && o[i].len >= 4 &&
            (!memcmp(p, "MAIL", 4) || !memcmp(p, "RCPT", 4) || !memcmp(p, "AUTH", 4) ||
             !memcmp(p, "DATA", 4) || !memcmp(p, "BDAT", 4)))
            abort();
        total += o[i].len;
    }
    smtp_client_sent(h->c, total);
}

static void check_txn(const struct smtp_client_txn *t)
{
    size_t i;
    for (i = 0; t && i < t->nrcpt; i++)
        if (t->results[i].outcome == SMTP_CLIENT_PENDING)
            abort();
}

static void drain(struct harness *h)
{
    struct smtp_client_event ev;
    static const char *const rcpts[2] = {"a@example.net", "b@example.net"};
    while (smtp_client_next_event(h->c, &ev)) {
        if (ev.type == SMTP_CLIENT_EV_NEED_TLS) {
            smtp_client_tls_done(h->c, 1, SMTP_CLIENT_R_NONE, NULL);
        } else if (ev.type == SMTP_CLIENT_EV_READY) {
            if (h->started >= 3)
                smtp_client_quit(h->c);
            /* As a pool does: as many as the connection takes now. */
            while (h->started < 3 && smtp_client_can_start(h->c)) {
                struct smtp_client_txn *t = &h->txn[h->started];
                const char *err;
                int bdat = smtp_client_body_encoding(h->c) == MESSAGE_ENC_BDAT;
                memset(t, 0, sizeof(*t));
                t->from = "s@example.org";
                t->rcpts = rcpts;
                t->nrcpt = 2;
                t->body = bdat ? body_bdat : body_data;
                t->body_len = bdat ? sizeof(body_bdat) - 1 : sizeof(body_data) - 1;
                t->facts.size = sizeof(body_bdat) - 1;
                t->results = h->res[h->started];
                h->started++;
                /* A READY may be stale: later bytes of the same read can
                 * have failed the connection before we saw the event. */
                if (smtp_client_start(h->c, t, &err) != 0) {
                    if (smtp_client_is_ready(h->c))
                        abort();
                    h->started--; /* never started: nothing to decide */
                    break;
                }
            }
        } else if (ev.type == SMTP_CLIENT_EV_TXN_DONE) {
            check_txn(ev.txn);
        } else if (ev.type == SMTP_CLIENT_EV_FAILED) {
            int i;
            for (i = 0; i < h->started; i++)
                check_txn(&h->txn[i]);
        }
        check_output(h);
    }
    check_output(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct harness h;
    struct smtp_client_config cfg;
    const char *err;
    size_t off = 2, step;

    if (size < 2)
        return 0;
    memset(&h, 0, sizeof(h));
    memset(&cfg, 0, sizeof(cfg));
    cfg.ehlo_name = "client.example";
    cfg.tls_mode = (data[0] & 1) ? SMTP_CLIENT_IMPLICIT_TLS : SMTP_CLIENT_STARTTLS;
    cfg.pipeline_body = (data[0] >> 1) & 1;
    cfg.pipeline_depth = (data[0] & 8) ? 3 : 1;
    if (data[0] & 4) {
        cfg.auth_plain_b64 = "AHUAcA==";
        cfg.auth_user_b64 = "dQ==";
        cfg.auth_pass_b64 = "cA==";
    }
    step = (size_t)data[1] % 64 + 1;
    h.c = smtp_client_new(&cfg, &err);
    if (!h.c)
        abort();
    drain(&h);
    while (off < size) {
        size_t k = size - off < step ? size - off : step;
        long n = smtp_client_feed(h.c, data + off, k);
        if (n > (long)k)
            abort();
        drain(&h);
        if (n < 0)
            break;
        off += (size_t)n;
    }
    smtp_client_eof(h.c);
    drain(&h);
    smtp_client_free(h.c);
    return 0;
}
