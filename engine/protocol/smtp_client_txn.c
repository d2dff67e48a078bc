/*
 * smtp_client_txn: mail transactions of the SMTP client state machine:
 * MAIL, RCPT, DATA or BDAT, pipelined (RFC 2920) or lockstep, with every
 * reply matched to its command by counting.
 */
#include "smtp_client_internal.h"

#include <stdio.h>
#include <string.h>

/* ---- transactions ----------------------------------------------------- */

static void send_rcpt(struct smtp_client *c, struct smtp_client_inflight *f)
{
    smtp_client_out_cmd(c, "RCPT TO:<", f->txn->rcpts[f->rcpt_sent++], ">", NULL);
}

static void send_data_cmd(struct smtp_client *c, struct smtp_client_inflight *f)
{
    char line[48];
    if (c->bdat) {
        snprintf(line, sizeof(line), "BDAT %zu LAST", f->txn->body_len);
        smtp_client_out_cmd(c, line, NULL, NULL, NULL);
        smtp_client_out_body(c, f->txn);
        f->phase = PH_BDAT;
    } else {
        smtp_client_out_cmd(c, "DATA", NULL, NULL, NULL);
        f->phase = PH_DATA;
    }
}

/* The envelope replies are all in (lockstep or pipelined without the data
 * command): send the data command if anyone is listening. */
static void envelope_complete(struct smtp_client *c, struct smtp_client_inflight *f)
{
    if (f->mail_ok && f->txn->accepted > 0)
        send_data_cmd(c, f);
    else
        smtp_client_txn_done(c, 0);
}

static void on_mail_reply(struct smtp_client *c, struct smtp_client_inflight *f,
                          const struct smtp_reply *r)
{
    struct smtp_client_txn *t = f->txn;
    f->mail_due = 0;
    f->mail_ok = r->code >= 200 && r->code < 300;
    if (!f->mail_ok && smtp_client_is_session_limit(r)) {
        /* "Too many messages": the session is spent, the transaction is
         * not. Its other replies are still read (the session stays in
         * step), then QUIT; the caller may send it again elsewhere. */
        t->retry_elsewhere = 1;
        c->quit_due = 1;
    }
    if (!f->mail_ok) {
        /* Every recipient shares the sender's fate. */
        smtp_client_settle_pending(t, smtp_client_outcome_of(r->code), SMTP_CLIENT_R_NONE, r->code,
                                   r->enhanced, r->text, r->text_len);
        if (c->lockstep)
            smtp_client_txn_done(c, 0);
        return;
    }
    if (c->lockstep)
        send_rcpt(c, f);
}

static void on_rcpt_reply(struct smtp_client *c, struct smtp_client_inflight *f,
                          const struct smtp_reply *r)
{
    struct smtp_client_txn *t = f->txn;
    size_t i = f->rcpt_replied++;
    if (f->mail_ok) {
        if (r->code >= 200 && r->code < 300)
            t->accepted++;
        else
            smtp_client_set_result(&t->results[i], smtp_client_outcome_of(r->code),
                                   SMTP_CLIENT_R_NONE, r->code, r->enhanced, r->text, r->text_len);
    }
    if (f->rcpt_replied < t->nrcpt) {
        if (c->lockstep)
            send_rcpt(c, f);
        return;
    }
    if (!f->datacmd_due)
        envelope_complete(c, f);
}

/* Some of this transaction's body is still waiting to be sent. */
static int body_queued(const struct smtp_client *c, const struct smtp_client_txn *t)
{
    size_t i;
    for (i = 0; i < c->nseg; i++)
        if (c->segs[i].body && c->segs[i].txn == t)
            return 1;
    return 0;
}

static void on_data_reply(struct smtp_client *c, struct smtp_client_inflight *f,
                          const struct smtp_reply *r)
{
    struct smtp_client_txn *t = f->txn;
    int wanted = f->mail_ok && t->accepted > 0;

    f->datacmd_due = 0;
    if (f->phase == PH_BDAT || c->bdat) {
        if (body_queued(c, t)) {
            /* RFC 3030 2: the server reads the whole chunk before replying. */
            smtp_client_fail(c, SMTP_CLIENT_R_PROTOCOL, r, NULL, 0);
            return;
        }
        /* The chunk carried LAST: this reply decides the message. */
        if (wanted)
            smtp_client_settle_pending(t, smtp_client_outcome_of(r->code), SMTP_CLIENT_R_NONE,
                                       r->code, r->enhanced, r->text, r->text_len);
        smtp_client_txn_done(c, wanted && r->code >= 200 && r->code < 300);
        return;
    }
    if (r->code == 354) {
        if (wanted) {
            smtp_client_out_body(c, t);
            f->phase = PH_BODY;
        } else {
            /* No recipient, yet the server wants data: end it empty. */
            smtp_client_out_cmd(c, ".", NULL, NULL, NULL);
            f->phase = PH_DOT_ABORT;
        }
        return;
    }
    if (wanted)
        smtp_client_settle_pending(t, smtp_client_outcome_of(r->code), SMTP_CLIENT_R_NONE, r->code,
                                   r->enhanced, r->text, r->text_len);
    smtp_client_txn_done(c, 0);
}

void smtp_client_on_txn_reply(struct smtp_client *c, const struct smtp_reply *r)
{
    struct smtp_client_inflight *f = smtp_client_head(c);
    struct smtp_client_txn *t = f->txn;

    if (smtp_client_is_421(r) && !f->rset_due && f->phase == PH_ENVELOPE && f->mail_due) {
        /* 421 to MAIL is a session limit like 452 4.5.3. A server that
         * closes now ends the session with EOF (smtp_client_fail then
         * moves what it never answered); Exim, at
         * smtp_accept_max_per_connection, says 421 to MAIL and goes on
         * answering what is in flight, and closing with those replies
         * unread resets the connection under it. So read on, then QUIT,
         * as after a 452; the wait is bounded as QUIT's (quit_ms). */
        c->after_421 = 1;
        on_mail_reply(c, f, r);
        return;
    }
    if (smtp_client_is_421(r)) {
        /* In place of the head's MAIL (or of the RSET in front of it) the
         * server closes: nothing in flight was accepted (those behind it
         * have had no reply at all), so each may go on a fresh connection.
         * QUIT politely; the server is closing anyway. */
        int before_mail = f->phase == PH_ENVELOPE && f->mail_due;
        size_t i;
        for (i = 0; before_mail && i < c->qcount; i++)
            c->q[(c->qhead + i) % c->depth].txn->retry_elsewhere = 1;
        smtp_client_fail(c, SMTP_CLIENT_R_SERVER_CLOSED, r, NULL, before_mail);
        return;
    }
    if (f->rset_due) {
        /* The RSET in front of a transaction sent behind another. Anything
         * but 2xx leaves the session in an unknown state: end it (what is
         * in flight is retried). */
        f->rset_due = 0;
        if (r->code < 200 || r->code >= 300)
            smtp_client_fail(c, SMTP_CLIENT_R_PROTOCOL, r, NULL, 1);
        return;
    }
    switch (f->phase) {
    case PH_ENVELOPE:
        if (f->mail_due)
            on_mail_reply(c, f, r);
        else if (f->rcpt_replied < f->rcpt_sent)
            on_rcpt_reply(c, f, r);
        else if (f->datacmd_due)
            on_data_reply(c, f, r);
        else
            smtp_client_fail(c, SMTP_CLIENT_R_PROTOCOL, r, NULL, 0);
        return;
    case PH_DATA:
    case PH_BDAT:
        on_data_reply(c, f, r);
        return;
    case PH_BODY:
        if (body_queued(c, t)) {
            smtp_client_fail(c, SMTP_CLIENT_R_PROTOCOL, r, NULL, 0);
            return;
        }
        smtp_client_settle_pending(t, smtp_client_outcome_of(r->code), SMTP_CLIENT_R_NONE, r->code,
                                   r->enhanced, r->text, r->text_len);
        smtp_client_txn_done(c, r->code >= 200 && r->code < 300);
        return;
    case PH_DOT_ABORT:
        smtp_client_txn_done(c, 0);
        return;
    }
}

static int is_8bit_str(const char *s)
{
    return message_has_8bit(s, strlen(s));
}

/* Refused before a byte is sent: done at once, outside the queue of
 * transactions in flight, whose order it does not disturb. */
static void refuse_locally(struct smtp_client *c, struct smtp_client_txn *t, const char *enhanced,
                           const char *text)
{
    struct smtp_client_event *ev;
    smtp_client_settle_pending(t, SMTP_CLIENT_PERMANENT, SMTP_CLIENT_R_NONE, 0, enhanced, text,
                               strlen(text));
    ev = smtp_client_push_event(c, SMTP_CLIENT_EV_TXN_DONE);
    ev->txn = t;
    if (!c->qcount)
        smtp_client_ready(c);
}

int smtp_client_start(struct smtp_client *c, struct smtp_client_txn *t, const char **err)
{
    const char *e = NULL;
    char params[96];
    int utf8 = 0;
    size_t i, plen = 0;

    struct smtp_client_inflight *f;

    if (!smtp_client_can_start(c))
        e = "connection is not ready for a transaction";
    else if (!t->rcpts || t->nrcpt == 0)
        e = "transaction has no recipients";
    else if (!t->results)
        e = "transaction has no results array";
    else if (!t->body || t->body_len == 0)
        e = "transaction has no body";
    if (!e)
        e = smtp_client_check_addr(t->from, 1);
    for (i = 0; !e && i < t->nrcpt; i++)
        e = smtp_client_check_addr(t->rcpts[i], 0);
    c->bdat = (c->caps.ext & SMTP_EXT_CHUNKING) != 0;
    if (!e && !c->bdat &&
        (t->body_len < 5 || memcmp((const char *)t->body + t->body_len - 5, "\r\n.\r\n", 5) != 0))
        e = "body is not prepared for DATA (no CRLF.CRLF terminator)";
    if (e) {
        *err = e;
        return -1;
    }
    memset(t->results, 0, t->nrcpt * sizeof(*t->results));
    t->accepted = t->delivered = 0;
    t->body_started = t->body_sent = 0;
    t->retry_elsewhere = 0;
    c->lockstep = !(c->pipelining_allowed && (c->caps.ext & SMTP_EXT_PIPELINING));

    utf8 = is_8bit_str(t->from);
    for (i = 0; i < t->nrcpt; i++)
        utf8 |= is_8bit_str(t->rcpts[i]);
    if (utf8 && !(c->caps.ext & SMTP_EXT_SMTPUTF8)) {
        refuse_locally(c, t, "5.6.7", "non-ASCII address but the server does not offer SMTPUTF8");
        return 0;
    }
    if (t->facts.eightbit && !(c->caps.ext & SMTP_EXT_8BITMIME)) {
        refuse_locally(c, t, "5.6.3", "8-bit message but the server does not offer 8BITMIME");
        return 0;
    }
    if ((c->caps.ext & SMTP_EXT_SIZE) && c->caps.size_max && t->facts.size > c->caps.size_max) {
        refuse_locally(c, t, "5.3.4", "message is larger than the server's SIZE limit");
        return 0;
    }
    params[0] = 0;
    if (c->caps.ext & SMTP_EXT_SIZE)
        plen += (size_t)snprintf(params + plen, sizeof(params) - plen, " SIZE=%zu", t->facts.size);
    if (t->facts.eightbit)
        plen += (size_t)snprintf(params + plen, sizeof(params) - plen, " BODY=8BITMIME");
    if (utf8)
        snprintf(params + plen, sizeof(params) - plen, " SMTPUTF8");
    f = &c->q[(c->qhead + c->qcount++) % c->depth];
    memset(f, 0, sizeof(*f));
    f->txn = t;
    f->phase = PH_ENVELOPE;
    f->mail_due = 1;
    c->st = ST_TXN;
    if (c->qcount > 1) {
        /* Behind another transaction whose fate is not known yet. A server
         * that keeps a transaction open after refusing its BDAT LAST (RFC
         * 3030 says it is over; not every server agrees) would take this
         * one's RCPT and BDAT into it, under the other's sender, while
         * answering this MAIL with 503. RSET first makes every transaction
         * in the burst stand alone, on every server, for a few bytes. */
        smtp_client_out_cmd(c, "RSET", NULL, NULL, NULL);
        f->rset_due = 1;
    }
    smtp_client_out_cmd(c, "MAIL FROM:<", t->from, ">", params);
    if (c->lockstep) {
        smtp_client_check_oom(c);
        return 0;
    }
    while (f->rcpt_sent < t->nrcpt)
        send_rcpt(c, f);
    /* RFC 2920: DATA ends a pipelined group; BDAT may join it when the
     * caller accepts sending a body that may find no recipient. */
    if (!c->bdat || c->pipeline_body) {
        send_data_cmd(c, f);
        f->phase = PH_ENVELOPE;
        f->datacmd_due = 1;
    }
    smtp_client_check_oom(c);
    return 0;
}
