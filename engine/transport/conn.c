/*
 * conn: one SMTP connection driven by the io_uring loop.
 *
 * Phases: CONNECTING -> PLAIN (greeting, EHLO, STARTTLS; single-shot
 * receives into a small buffer) -> HANDSHAKE (OpenSSL writes to the socket
 * itself; ciphertext arrives through a multishot receive into the loop's
 * shared buffers) -> TLS (commands and bodies go out as plaintext on the fd
 * when the kernel encrypts, or through tls_conn_encrypt() otherwise) ->
 * CLOSING -> DEAD. One send is in flight at a time, so output stays in
 * order without a queue of our own: the protocol core and the TLS module
 * already hold what waits.
 */
#include "conn.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn_internal.h"

void conn_timeouts_default(struct conn_timeouts *t)
{
    if (!t->connect_ms)
        t->connect_ms = 30000;
    if (!t->greeting_ms)
        t->greeting_ms = 300000;
    if (!t->command_ms)
        t->command_ms = 300000;
    if (!t->tls_ms)
        t->tls_ms = 60000;
    if (!t->data_block_ms)
        t->data_block_ms = 180000;
    if (!t->data_done_ms)
        t->data_done_ms = 600000;
    if (!t->quit_ms)
        t->quit_ms = 10000;
}

static void arm_timer(struct conn *c);

static void errf(char *err, size_t errlen, const char *what, int e)
{
    if (err && errlen)
        snprintf(err, errlen, "%s: %s", what, strerror(e));
}

/* ---- receiving -------------------------------------------------------- */

static void arm_plain_recv(struct conn *c)
{
    if (c->recv_pending || c->phase != CP_PLAIN)
        return;
    if (loop_recv(c->loop, c->slot, TAG_RECV, c->fd, c->pbuf, PLAIN_BUF, 0) == 0)
        c->recv_pending = 1;
    else
        smtp_client_abort(c->smtp, SMTP_CLIENT_R_LOCAL, "cannot queue a receive");
}

static void arm_multi_recv(struct conn *c)
{
    if (c->multi_armed)
        return;
    if (loop_recv_multi(c->loop, c->slot, TAG_RECV_MULTI, c->fd) == 0)
        c->multi_armed = 1;
    else
        smtp_client_abort(c->smtp, SMTP_CLIENT_R_LOCAL, "cannot queue a receive");
}

/* Hand plaintext replies to the protocol core, acting on its events when
 * its queue fills up. */
static void feed_client(struct conn *c, const char *p, size_t len)
{
    c->got_reply = 1;
    while (len) {
        long n = smtp_client_feed(c->smtp, p, len);
        conn_process_events(c);
        if (n <= 0)
            return;
        p += n;
        len -= (size_t)n;
    }
}

static void drain_tls(struct conn *c)
{
    char buf[READ_CHUNK];
    for (;;) {
        size_t got = 0;
        enum tls_status s;
        const char *detail = NULL;
        if (c->phase != CP_TLS)
            return;
        s = tls_conn_read(c->tls, buf, sizeof(buf), &got);
        switch (s) {
        case TLS_OK:
            feed_client(c, buf, got);
            continue;
        case TLS_WANT_READ:
        case TLS_WANT_WRITE:
            return;
        case TLS_CLOSED:
            smtp_client_eof(c->smtp);
            return;
        case TLS_ERROR:
            tls_conn_error(c->tls, &detail);
            smtp_client_abort(c->smtp, SMTP_CLIENT_R_CONNECTION, detail);
            return;
        }
    }
}

/*
 * kTLS TX: the protocol core learns that body bytes have gone only when
 * the splice completes, and a splice runs in an io-wq worker whose
 * completion races our receive: the server's reply to the body could be
 * fed first and looked early (a BDAT reply while the body still seemed
 * queued: a "protocol" failure of the whole pipelined burst, seen in the
 * kTLS guest in a few percent of 600-message runs). So received records
 * wait in the TLS read buffer until the splice completes; not while it
 * waits for room on a full socket, where a reply is the server's own
 * (a 421) and must be read. A SEND completes in our own task before any
 * reply to it can be processed; without kTLS the core counts bytes as sent
 * when they are encrypted.
 */
static int replies_wait(const struct conn *c)
{
    return c->splicing && !c->splice_wait && c->phase == CP_TLS;
}

/* ---- TLS ------------------------------------------------------------- */

static enum smtp_client_reason reason_of(enum tls_err e)
{
    switch (tls_err_class(e)) {
    case TLS_ERR_CERT_VERIFY:
        return SMTP_CLIENT_R_CERT_VERIFY;
    case TLS_ERR_PROTOCOL_VERSION:
        return SMTP_CLIENT_R_PROTOCOL_VERSION;
    case TLS_ERR_LOCAL:
        return SMTP_CLIENT_R_LOCAL;
    default:
        return SMTP_CLIENT_R_HANDSHAKE;
    }
}

static void log_handshake(struct conn *c)
{
    const struct tls_facts *f = tls_conn_facts(c->tls);
    char ms[32], na[32];
    snprintf(ms, sizeof(ms), "%.3f", (double)f->handshake_us / 1000.0);
    snprintf(na, sizeof(na), "%lld", (long long)f->not_after);
    log_event(LOG_INFO, "tls_handshake", "relay", c->name, "protocol", f->protocol, "cipher",
              f->cipher, "group", f->group, "verify", f->verify, "ktls_tx", f->ktls_tx ? "1" : "0",
              "resumed", f->resumed ? "1" : "0", "handshake_ms", ms, "cert_not_after", na,
              "subject", f->subject, "issuer", f->issuer, NULL);
    if (tls_ctx_insecure(c->tls_ctx))
        log_always(LOG_WARN, "tls_verify_disabled", "relay", c->name, "detail",
                   "certificate verification is off for this relay: this connection is not "
                   "authenticated",
                   NULL);
}

/* Once per connection whose handshake was asked for: ok (NONE) or why not. */
static void report_handshake(struct conn *c, enum smtp_client_reason reason)
{
    if (!c->hs_begun || c->hs_reported)
        return;
    c->hs_reported = 1;
    if (c->cb.handshake)
        c->cb.handshake(c, reason, c->user);
}

static void handshake_step(struct conn *c)
{
    const char *detail = NULL;
    enum tls_err e;

    switch (tls_conn_handshake(c->tls)) {
    case TLS_OK:
        c->phase = CP_TLS;
        report_handshake(c, SMTP_CLIENT_R_NONE);
        log_handshake(c);
        smtp_client_tls_done(c->smtp, 1, SMTP_CLIENT_R_NONE, NULL);
        conn_process_events(c);
        drain_tls(c); /* a reply may have come with the last flight */
        return;
    case TLS_WANT_READ:
        arm_multi_recv(c);
        return;
    case TLS_WANT_WRITE:
        if (!c->poll_pending && loop_poll(c->loop, c->slot, TAG_POLL, c->fd, POLLOUT) == 0)
            c->poll_pending = 1;
        return;
    default:
        e = tls_conn_error(c->tls, &detail);
        smtp_client_tls_done(c->smtp, 0, reason_of(e), detail);
        return;
    }
}

static void start_tls(struct conn *c)
{
    char err[TLS_ERRBUF_MAX];
    char b;

    c->hs_begun = 1;
    /* The 220 must answer our STARTTLS: the command has wholly left (its
     * send completed; a reply to it cannot be read before that) and nothing
     * else is queued behind it. A 220 read while it was still queued was
     * injected ahead of it. The protocol core refuses this too; the
     * transport does not start a handshake on its word alone. */
    if (!c->implicit && (c->send_pending || smtp_client_output_len(c->smtp))) {
        smtp_client_abort(c->smtp, SMTP_CLIENT_R_INJECTION,
                          "a 220 arrived before our STARTTLS was sent (response injection)");
        return;
    }
    /* Nothing may arrive before our ClientHello: a byte already waiting in
     * the socket was sent after the 220 (response injection). No receive is
     * in flight now, so nothing can have been taken out of the socket. */
    if (!c->implicit) {
        ssize_t k = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (k > 0) {
            smtp_client_abort(c->smtp, SMTP_CLIENT_R_INJECTION,
                              "bytes received after the STARTTLS 220 reply (response injection)");
            return;
        }
        if (k == 0) {
            smtp_client_abort(c->smtp, SMTP_CLIENT_R_CONNECTION, "connection closed by the server");
            return;
        }
    }
    free(c->pbuf);
    c->pbuf = NULL;
    c->tls = tls_conn_new(c->tls_ctx, c->fd, err, sizeof(err));
    if (!c->tls) {
        smtp_client_tls_done(c->smtp, 0, SMTP_CLIENT_R_LOCAL, err);
        return;
    }
    c->phase = CP_HANDSHAKE;
    handshake_step(c);
}

/* ---- events from the protocol core ---------------------------------- */

static void begin_close(struct conn *c, enum smtp_client_reason reason, const char *detail,
                        struct smtp_client_txn *txn)
{
    int was_tls = c->phase == CP_TLS;
    if (c->closed_reported)
        return;
    c->closed_reported = 1;
    /* A handshake that was asked for and never completed failed, for the
     * reason the connection ends (ours, if it ends without one). */
    report_handshake(c, reason != SMTP_CLIENT_R_NONE ? reason : SMTP_CLIENT_R_LOCAL);
    c->phase = CP_CLOSING;
    if (reason != SMTP_CLIENT_R_NONE)
        log_event(LOG_WARN, "connection_failed", "relay", c->name, "reason",
                  smtp_client_reason_name(reason), "detail", detail ? detail : "", NULL);
    else
        log_event(LOG_DEBUG, "connection_closed", "relay", c->name, NULL);
    if (c->cb.closed)
        c->cb.closed(c, reason, detail, txn, c->user);
    /* A clean end over TLS says close_notify; after a TLS or transport
     * failure there is nobody to say it to. */
    if (was_tls && (reason == SMTP_CLIENT_R_NONE || reason == SMTP_CLIENT_R_AUTH ||
                    reason == SMTP_CLIENT_R_SERVER_CLOSED || reason == SMTP_CLIENT_R_PROTOCOL)) {
        struct smtp_client_out out[OUT_PIECES];
        struct iovec iov[OUT_PIECES];
        size_t n = smtp_client_output(c->smtp, out, OUT_PIECES), i, total = 0;
        if (!tls_conn_ktls_tx(c->tls)) {
            for (i = 0; i < n; i++) {
                iov[i].iov_base = (void *)out[i].base;
                iov[i].iov_len = out[i].len;
                total += out[i].len;
            }
            if (n && tls_conn_encrypt(c->tls, iov, n) == 0)
                smtp_client_sent(c->smtp, total);
        }
        /* close_notify must be the last record. With kTLS TX, SSL_shutdown
         * writes it straight to the socket, so it waits for the QUIT still
         * queued as plaintext (and for any send in flight): sent first, it
         * made the server drop the QUIT unread (seen in the kTLS guest
         * after a refused AUTH: the sink saw EOF, not QUIT). */
        if (!c->send_pending && (!tls_conn_ktls_tx(c->tls) || !smtp_client_output_len(c->smtp)))
            tls_conn_shutdown(c->tls);
        else
            c->notify_due = 1;
    }
    if (c->send_pending || smtp_client_output_len(c->smtp) ||
        (c->tls && !tls_conn_ktls_tx(c->tls) && tls_conn_pending_len(c->tls))) {
        loop_timer_arm(c->loop, &c->timer, c->to.quit_ms);
        conn_pump(c);
        return;
    }
    conn_finish_close(c);
}

void conn_process_events(struct conn *c)
{
    struct smtp_client_event ev;
    while (c->phase != CP_DEAD && smtp_client_next_event(c->smtp, &ev)) {
        switch (ev.type) {
        case SMTP_CLIENT_EV_NEED_TLS:
            start_tls(c);
            break;
        case SMTP_CLIENT_EV_READY:
            if (c->quit_requested) {
                smtp_client_quit(c->smtp);
            } else if (c->cb.ready && !c->closed_reported) {
                c->cb.ready(c, c->user);
            }
            break;
        case SMTP_CLIENT_EV_TXN_DONE:
            if (ev.txn->delivered)
                c->st.messages++;
            if (c->cb.txn_done && !c->closed_reported)
                c->cb.txn_done(c, ev.txn, c->user);
            break;
        case SMTP_CLIENT_EV_FAILED:
            begin_close(c, ev.reason, ev.text, ev.txn);
            break;
        case SMTP_CLIENT_EV_CLOSED:
            begin_close(c, SMTP_CLIENT_R_NONE, "closed after QUIT", NULL);
            break;
        default:
            break;
        }
    }
}

/* ---- completions ------------------------------------------------------- */

static void on_connected(struct conn *c, int res)
{
    if (res < 0) {
        char d[96];
        snprintf(d, sizeof(d), "connect: %s", strerror(-res));
        smtp_client_abort(c->smtp, SMTP_CLIENT_R_CONNECTION, d);
        return;
    }
    c->phase = CP_PLAIN;
    if (!c->implicit)
        arm_plain_recv(c);
}

static void on_plain(struct conn *c, int res)
{
    c->recv_pending = 0;
    if (res == 0) {
        smtp_client_eof(c->smtp);
        return;
    }
    if (res < 0) {
        char d[96];
        if (res == -ECANCELED)
            return;
        snprintf(d, sizeof(d), "recv: %s", strerror(-res));
        smtp_client_abort(c->smtp, SMTP_CLIENT_R_CONNECTION, d);
        return;
    }
    feed_client(c, c->pbuf, (size_t)res);
    arm_plain_recv(c);
}

static void on_cipher(struct conn *c, const struct loop_cqe *q)
{
    if (!(q->flags & LOOP_CQE_F_MORE))
        c->multi_armed = 0;
    if (q->flags & LOOP_CQE_F_BUFFER) {
        if (q->res > 0 && c->tls && (c->phase == CP_HANDSHAKE || c->phase == CP_TLS))
            tls_conn_feed(c->tls, q->buf, (size_t)q->res);
        loop_buf_release(c->loop, q->bid);
    }
    if (c->phase != CP_HANDSHAKE && c->phase != CP_TLS)
        return;
    if (q->res == 0 || (q->res < 0 && q->res != -ECANCELED)) {
        if (q->res == 0)
            tls_conn_feed_eof(c->tls);
        if (c->phase == CP_HANDSHAKE) {
            handshake_step(c);
        } else {
            drain_tls(c);
            if (q->res == 0)
                smtp_client_eof(c->smtp);
            else
                smtp_client_abort(c->smtp, SMTP_CLIENT_R_CONNECTION, strerror(-q->res));
        }
        return;
    }
    if (c->phase == CP_HANDSHAKE)
        handshake_step(c);
    else if (replies_wait(c))
        c->replies_held = 1;
    else
        drain_tls(c);
    if (!c->multi_armed && (c->phase == CP_HANDSHAKE || c->phase == CP_TLS))
        arm_multi_recv(c);
}

static void handler(void *ctx, const struct loop_cqe *q)
{
    struct conn *c = ctx;
    if (c->phase == CP_DEAD)
        return;
    switch ((enum conn_tag)q->tag) {
    case TAG_CONNECT:
        on_connected(c, q->res);
        break;
    case TAG_RECV:
        on_plain(c, q->res);
        break;
    case TAG_RECV_MULTI:
        on_cipher(c, q);
        break;
    case TAG_SEND:
        conn_on_sent(c, q->res);
        break;
    case TAG_SEND_ZC:
        if (q->flags & LOOP_CQE_F_NOTIF) {
            conn_on_sent(c, c->zc_res);
        } else if (q->res == -EOPNOTSUPP) {
            c->send_zc_min = 0; /* this socket refuses it: nothing was sent */
            c->send_pending = 0;
        } else {
            c->zc_res = q->res;
            if (!(q->flags & LOOP_CQE_F_MORE))
                conn_on_sent(c, q->res);
        }
        break;
    case TAG_SPLICE_IN:
    case TAG_SPLICE_OUT:
        conn_on_spliced(c, (int)q->tag, q->res);
        break;
    case TAG_POLL:
        c->poll_pending = 0;
        if (c->phase == CP_HANDSHAKE) {
            handshake_step(c);
        } else if (c->splice_wait) {
            c->splice_wait = 0;
            conn_splice_out(c); /* POLLERR or POLLHUP: the splice says what went wrong */
        }
        break;
    }
    if (c->replies_held && !replies_wait(c)) {
        c->replies_held = 0;
        drain_tls(c); /* the send is accounted for: its reply may come in */
    }
    conn_process_events(c);
    conn_pump(c);
    arm_timer(c);
}

/* ---- timers ------------------------------------------------------------ */

static void on_timer(void *ctx)
{
    struct conn *c = ctx;
    const struct smtp_client_txn *txn = smtp_client_current(c->smtp); /* the oldest */
    const char *what;

    switch (c->phase) {
    case CP_DEAD:
        return;
    case CP_CLOSING:
        conn_finish_close(c);
        return;
    case CP_CONNECTING:
        what = "timeout connecting";
        break;
    case CP_HANDSHAKE:
        what = "timeout in the TLS handshake";
        break;
    default:
        if (smtp_client_is_ready(c->smtp) && !txn && c->keepalive_ms) {
            smtp_client_noop(c->smtp);
            conn_pump(c);
            arm_timer(c);
            return;
        }
        if (!c->got_reply)
            what = "timeout waiting for the greeting";
        else if (txn && txn->body_sent)
            what = "timeout waiting for the reply to the end of data";
        else if (txn && txn->body_started)
            what = "timeout sending the message";
        else
            what = "timeout waiting for a reply";
    }
    smtp_client_abort(c->smtp, SMTP_CLIENT_R_TIMEOUT, what);
    conn_process_events(c);
}

static void arm_timer(struct conn *c)
{
    const struct smtp_client_txn *txn = smtp_client_current(c->smtp); /* the oldest */
    unsigned ms;
    switch (c->phase) {
    case CP_DEAD:
    case CP_CLOSING:
        return; /* the close deadline stays as armed */
    case CP_CONNECTING:
        ms = c->to.connect_ms;
        break;
    case CP_HANDSHAKE:
        ms = c->to.tls_ms;
        break;
    default:
        if (smtp_client_quitting(c->smtp))
            ms = c->to.quit_ms; /* only QUIT's reply (or the close) is awaited */
        else if (!c->got_reply && !c->implicit)
            ms = c->to.greeting_ms;
        else if (smtp_client_is_ready(c->smtp) && !txn)
            ms = c->keepalive_ms;
        else if (txn && txn->body_sent)
            ms = c->to.data_done_ms;
        else if (txn && txn->body_started)
            ms = c->to.data_block_ms;
        else
            ms = c->to.command_ms;
    }
    if (ms)
        loop_timer_arm(c->loop, &c->timer, ms);
    else
        loop_timer_disarm(c->loop, &c->timer);
}

/* ---- life cycle -------------------------------------------------------- */

static void on_released(void *ctx)
{
    struct conn *c = ctx;
    if (c->tls)
        tls_conn_free(c->tls);
    if (c->fd >= 0)
        close(c->fd);
    if (c->pipe_fd[0] >= 0) {
        close(c->pipe_fd[0]);
        close(c->pipe_fd[1]);
    }
    smtp_client_free(c->smtp);
    free(c->pbuf);
    free(c);
}

void conn_finish_close(struct conn *c)
{
    if (c->phase == CP_DEAD)
        return;
    c->phase = CP_DEAD;
    loop_timer_disarm(c->loop, &c->timer);
    loop_slot_close(c->loop, c->slot, on_released);
}

struct conn *conn_new(struct loop *loop, const struct conn_config *cfg,
                      const struct conn_callbacks *cb, void *user, char *err, size_t errlen)
{
    struct conn *c = calloc(1, sizeof(*c));
    const char *e = NULL;
    int one = 1, rc;

    if (!c) {
        errf(err, errlen, "conn", ENOMEM);
        return NULL;
    }
    c->fd = -1;
    c->pipe_fd[0] = c->pipe_fd[1] = -1;
    c->loop = loop;
    c->cb = *cb;
    c->user = user;
    c->tls_ctx = cfg->tls;
    c->name = cfg->name ? cfg->name : "relay";
    c->to = cfg->timeouts;
    conn_timeouts_default(&c->to);
    c->keepalive_ms = cfg->keepalive_ms;
    c->send_zc_min = cfg->send_zc_min;
    c->implicit = cfg->smtp.tls_mode == SMTP_CLIENT_IMPLICIT_TLS;
    c->st.opened_ms = loop_now_ms(loop);
    memcpy(&c->addr, cfg->addr, cfg->addrlen);
    c->addrlen = cfg->addrlen;
    loop_timer_init(&c->timer, on_timer, c);
    c->smtp = smtp_client_new(&cfg->smtp, &e);
    if (!c->smtp) {
        if (err && errlen)
            snprintf(err, errlen, "%s", e);
        goto fail;
    }
    c->pbuf = malloc(PLAIN_BUF);
    if (!c->pbuf) {
        errf(err, errlen, "conn", ENOMEM);
        goto fail;
    }
    c->fd = socket(cfg->addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        errf(err, errlen, "socket", errno);
        goto fail;
    }
    /* Pipelined commands are small writes that must not wait for acks. */
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->slot = loop_slot_open(loop, handler, c);
    if (c->slot < 0) {
        errf(err, errlen, "loop slot", (int)-c->slot);
        goto fail;
    }
    c->phase = CP_CONNECTING;
    rc = loop_connect(loop, c->slot, TAG_CONNECT, c->fd, (const struct sockaddr *)&c->addr,
                      c->addrlen);
    if (rc < 0) {
        errf(err, errlen, "connect", -rc);
        loop_slot_close(loop, c->slot, NULL);
        goto fail;
    }
    arm_timer(c);
    log_event(LOG_DEBUG, "connection_opened", "relay", c->name, NULL);
    return c;
fail:
    if (c->fd >= 0)
        close(c->fd);
    if (c->pipe_fd[0] >= 0) {
        close(c->pipe_fd[0]);
        close(c->pipe_fd[1]);
    }
    smtp_client_free(c->smtp);
    free(c->pbuf);
    free(c);
    return NULL;
}

void conn_flush(struct conn *c)
{
    if (c->phase == CP_DEAD)
        return;
    conn_pump(c);
    arm_timer(c);
}

unsigned conn_can_submit(const struct conn *c)
{
    if (c->phase != CP_TLS || c->closed_reported || c->quit_requested)
        return 0;
    return smtp_client_can_start(c->smtp);
}

int conn_submit(struct conn *c, struct smtp_client_txn *txn, int more, const char **err)
{
    if (c->phase != CP_TLS || c->closed_reported) {
        *err = "connection is not ready";
        return -1;
    }
    if (smtp_client_start(c->smtp, txn, err) != 0)
        return -1;
    /* Local refusals (SIZE, 8BITMIME, SMTPUTF8) complete at once. */
    conn_process_events(c);
    if (more)
        return 0; /* the caller submits the rest, then the burst goes in one send */
    conn_pump(c);
    arm_timer(c);
    return 0;
}

enum message_encoding conn_body_encoding(const struct conn *c)
{
    return smtp_client_body_encoding(c->smtp);
}

void conn_quit(struct conn *c)
{
    if (c->phase == CP_DEAD || c->closed_reported)
        return;
    if (c->phase == CP_CONNECTING) {
        /* No session yet: nobody to say QUIT to. */
        conn_abort(c, SMTP_CLIENT_R_NONE, "closed before it was ready");
    } else if (smtp_client_is_ready(c->smtp)) {
        c->quit_requested = 1;
        smtp_client_quit(c->smtp);
        conn_pump(c);
        loop_timer_arm(c->loop, &c->timer, c->to.quit_ms);
    } else if (smtp_client_quit(c->smtp) == 0) {
        /* Busy (a transaction, a NOOP or RSET, the set-up or the
         * handshake): the core says QUIT once its reply is in; the stage
         * timers bound the wait. */
        c->quit_requested = 1;
    } else if (!smtp_client_quitting(c->smtp)) {
        conn_abort(c, SMTP_CLIENT_R_NONE, "closed before it was ready");
    }
}

void conn_abort(struct conn *c, enum smtp_client_reason reason, const char *detail)
{
    if (c->phase == CP_DEAD)
        return;
    if (!c->closed_reported) {
        smtp_client_abort(c->smtp, reason, detail);
        conn_process_events(c);
    }
    if (!c->closed_reported)
        begin_close(c, reason, detail, NULL);
    conn_finish_close(c);
}

const struct tls_facts *conn_tls_facts(const struct conn *c)
{
    return c->tls ? tls_conn_facts(c->tls) : NULL;
}

int conn_key_stale(const struct conn *c)
{
    return c->tls ? tls_conn_key_stale(c->tls) : 0;
}

void conn_stats(const struct conn *c, struct conn_stats *out)
{
    *out = c->st;
}
