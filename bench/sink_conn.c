/*
 * sink_conn: the sink's accept stream and connections (sink_conn.h).
 *
 * Each connection is a small machine driven by pump(): handshake if one is
 * due; feed buffered input to the SMTP session and act on its events; send
 * the replies (one write for everything a read produced); then close, start
 * TLS or read, as the session asked. At most one io_uring operation is in
 * flight per connection (recv, send or poll), so the session's buffers stay
 * put while the kernel uses them, and a completion just calls pump() again.
 *
 * TLS: the handshake runs on a socket BIO (io_uring polls for readiness),
 * which is what lets OpenSSL 3.0 switch kTLS on. Afterwards each direction
 * the kernel did not take over moves to a memory BIO carried by io_uring
 * recv/send, so that a busy sink pays one io_uring_enter for many
 * connections instead of read(2)/write(2) per record; a direction the kernel
 * encrypts stays on the socket BIO (SSL_read/SSL_write on the fd).
 */
#include "sink_conn.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#include "sink_bio.h"

/* Input per connection: big enough to batch a pipelined burst of messages. */
#define RBUF (32 * 1024)
/* Ciphertext per recv: a 1 MB message is 4 receives, not 32, and each
 * receive lets the kernel acknowledge more at once. malloc maps a buffer
 * this size on its own, so an idle connection holds the pages it touched. */
#define CIN             (256 * 1024)
#define ACCEPT_RETRY_MS 100

enum tag {
    T_NONE = 0,
    T_ACCEPT = 1,
    T_RECV = 2,
    T_SEND = 3,
    T_POLL = 4,
    T_RECV_TLS = 5, /* ciphertext into cin, which the read BIO hands to OpenSSL */
    T_SEND_TLS = 6, /* ciphertext from cout, out of the memory write BIO */
};

enum phase {
    P_PLAIN = 1,
    P_HANDSHAKE = 2,
    P_TLS = 3,
};

struct sink_conn {
    struct sink_server *srv;
    struct sink_conn *prev, *next;
    unsigned long long id;
    int fd;
    loop_slot slot;
    struct sink_smtp *smtp;
    SSL *ssl;
    enum phase phase;
    enum tag busy; /* the operation in flight */
    bool closing;
    bool want_close, want_tls, held, eof, fault_close;
    bool drained;        /* the last SSL_read ended on WANT_READ: poll before reading */
    bool rx_mem, tx_mem; /* after the handshake: io_uring and a buffer BIO (no kTLS) */
    struct sink_cin cin; /* rx_mem: received ciphertext (cin.eof: the peer closed) */
    char *cout;
    size_t cout_len, cout_off, cout_cap;
    unsigned tls_msgs;
    struct sink_store_tls tls;
    struct loop_timer delay;
    size_t rpos, rlen;
    char rbuf[RBUF];
};

static void pump(struct sink_conn *c);

static struct sink_stats *stats(const struct sink_server *srv)
{
    return sink_store_stats(srv->store);
}

/* ---- lifetime ---- */

static void check_done(struct sink_server *srv)
{
    if (srv->stopping && srv->live == 0 && srv->listen_fd < 0 && !srv->done) {
        srv->done = true;
        loop_timer_disarm(srv->loop, &srv->grace);
        loop_stop(srv->loop);
    }
}

static void conn_released(void *ctx)
{
    struct sink_conn *c = ctx;
    struct sink_server *srv = c->srv;

    SSL_free(c->ssl); /* SSL_set_fd's BIO does not own the fd */
    close(c->fd);
    free(c->cin.buf);
    free(c->cout);
    sink_smtp_destroy(c->smtp);
    free(c);
    srv->live--;
    check_done(srv);
}

static void conn_close(struct sink_conn *c, bool graceful, const char *why)
{
    struct sink_server *srv = c->srv;

    if (c->closing)
        return;
    c->closing = true;
    loop_timer_disarm(srv->loop, &c->delay);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    /* close_notify, best effort: the socket is non-blocking. */
    if (graceful && c->phase == P_TLS) {
        if (SSL_shutdown(c->ssl) < 0)
            ERR_clear_error();
        if (c->tx_mem) {
            char alert[256];
            int k = BIO_read(SSL_get_wbio(c->ssl), alert, sizeof(alert));
            if (k > 0) /* best effort: the peer may be gone already */
                (void)send(c->fd, alert, (size_t)k, MSG_DONTWAIT | MSG_NOSIGNAL);
        }
    }
    if (srv->verbose)
        fprintf(stderr, "sink: conn %llu closed (%s)\n", c->id, why);
    if (loop_slot_close(srv->loop, c->slot, conn_released) < 0)
        abort(); /* the slot is ours and open until here */
}

/* ---- events of the session ---- */

static void on_message(struct sink_conn *c)
{
    struct sink_server *srv = c->srv;
    struct sink_smtp_message m;

    sink_smtp_message(c->smtp, &m);
    sink_store_message(srv->store, &m, c->phase == P_TLS ? &c->tls : NULL,
                       sink_smtp_auth_user(c->smtp), loop_now_ms(srv->loop));
    if (c->ssl && srv->key_update_after && SSL_version(c->ssl) == TLS1_3_VERSION &&
        ++c->tls_msgs % srv->key_update_after == 0) {
        if (c->tls.ktls_tx) {
            stats(srv)->key_updates_skipped_ktls++;
        } else if (SSL_key_update(c->ssl, SSL_KEY_UPDATE_REQUESTED) == 1) {
            /* Sent at once; the reply that follows uses the new key. */
            stats(srv)->key_updates++;
            if (SSL_do_handshake(c->ssl) <= 0)
                ERR_clear_error();
        }
    }
    if (srv->max_messages && stats(srv)->messages >= srv->max_messages && !srv->stopping)
        sink_server_stop(srv);
}

static void take_events(struct sink_conn *c)
{
    struct sink_server *srv = c->srv;
    struct sink_smtp_event ev;
    size_t n;

    while (sink_smtp_next_event(c->smtp, &ev)) {
        switch (ev.type) {
        case SINK_SMTP_EV_MESSAGE:
            on_message(c);
            break;
        case SINK_SMTP_EV_STARTTLS:
            c->want_tls = true;
            break;
        case SINK_SMTP_EV_DELAY:
            c->held = true;
            stats(srv)->delays++;
            if (loop_timer_arm(srv->loop, &c->delay, ev.ms) < 0) {
                c->held = false; /* no memory for the timer: no delay */
                sink_smtp_resume(c->smtp);
            }
            break;
        case SINK_SMTP_EV_STALL:
            stats(srv)->stalls++;
            break;
        case SINK_SMTP_EV_CLOSE:
            c->want_close = true;
            if (ev.point == SINK_SMTP_P_QUIT && !ev.fault)
                stats(srv)->quits++;
            if (ev.fault) {
                c->fault_close = true;
                stats(srv)->fault_disconnects++;
            }
            if (!ev.flush) { /* drop what was not sent */
                sink_smtp_output(c->smtp, &n);
                sink_smtp_sent(c->smtp, n);
            }
            break;
        case SINK_SMTP_EV_AUTH:
            stats(srv)->auth_successes++;
            break;
        case SINK_SMTP_EV_NONE:
            break;
        }
    }
}

static void delay_fired(void *ctx)
{
    struct sink_conn *c = ctx;

    c->held = false;
    sink_smtp_resume(c->smtp);
    pump(c);
}

/* ---- I/O steps: each returns 1 (go on), 0 (an operation is in flight) or
 * -1 (the connection is closing) ---- */

static int post(struct sink_conn *c, int rc, enum tag tag)
{
    if (rc < 0) {
        conn_close(c, false, "cannot queue an operation");
        return -1;
    }
    c->busy = tag;
    return 0;
}

/* After an SSL call returned r <= 0: wait for what it wants, or give up. */
static int tls_wait(struct sink_conn *c, int r, const char *what)
{
    struct sink_server *srv = c->srv;
    int err = SSL_get_error(c->ssl, r);

    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
        return post(c,
                    loop_poll(srv->loop, c->slot, T_POLL, c->fd,
                              err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT),
                    T_POLL);
    if (srv->verbose) {
        unsigned long e = ERR_peek_error();
        fprintf(stderr, "sink: conn %llu %s failed: %s\n", c->id, what,
                e ? ERR_reason_error_string(e) : "connection closed");
    }
    ERR_clear_error();
    conn_close(c, false, what);
    return -1;
}

static void start_tls(struct sink_conn *c)
{
    c->want_tls = false;
    c->ssl = SSL_new(c->srv->ssl_ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) {
        ERR_clear_error();
        conn_close(c, false, "SSL_new");
        return;
    }
    SSL_set_accept_state(c->ssl);
    c->phase = P_HANDSHAKE;
}

/* Directions without kTLS leave the socket BIO (SSL_set0_* drop its
 * references; the BIO does not own the fd). Records OpenSSL has already
 * read ahead stay in its buffer and come out of SSL_read first. */
static int to_memory_bios(struct sink_conn *c)
{
    BIO *b;

    c->rx_mem = !c->tls.ktls_rx;
    c->tx_mem = !c->tls.ktls_tx;
    if (c->rx_mem) {
        if (!(c->cin.buf = malloc(CIN)) || !(b = sink_bio_new(&c->cin)))
            return -1;
        c->cin.cap = CIN;
        SSL_set0_rbio(c->ssl, b);
    }
    if (c->tx_mem) {
        if (!(b = BIO_new(BIO_s_mem())))
            return -1;
        SSL_set0_wbio(c->ssl, b);
    }
    return 0;
}

static int handshake(struct sink_conn *c)
{
    struct sink_server *srv = c->srv;
    struct sink_stats *s = stats(srv);
    int r = SSL_do_handshake(c->ssl);

    if (r != 1) {
        int err = SSL_get_error(c->ssl, r);
        if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
            s->tls_handshake_failures++;
        return tls_wait(c, r, "handshake");
    }
    c->phase = P_TLS;
    c->tls.version = SSL_get_version(c->ssl);
    c->tls.cipher = SSL_get_cipher_name(c->ssl);
    /* OpenSSL falls back to userspace silently: ask the BIOs. */
    c->tls.ktls_tx = BIO_get_ktls_send(SSL_get_wbio(c->ssl)) > 0;
    c->tls.ktls_rx = BIO_get_ktls_recv(SSL_get_rbio(c->ssl)) > 0;
    s->tls_handshakes++;
    s->ktls_tx_connections += c->tls.ktls_tx;
    s->ktls_rx_connections += c->tls.ktls_rx;
    if (to_memory_bios(c) < 0) {
        conn_close(c, false, "out of memory");
        return -1;
    }
    if (srv->verbose)
        fprintf(stderr, "sink: conn %llu tls %s %s ktls_tx=%d ktls_rx=%d\n", c->id, c->tls.version,
                c->tls.cipher, c->tls.ktls_tx, c->tls.ktls_rx);
    if (sink_smtp_tls_active(c->smtp))
        abort(); /* TLS twice on one connection */
    if (srv->implicit)
        sink_smtp_start(c->smtp, true);
    else
        sink_smtp_tls_started(c->smtp);
    take_events(c);
    return 1;
}

/* Feeds buffered input to the session until it is used up or the session
 * has to wait (a delay, a close, STARTTLS, or output to send first). */
static void process_input(struct sink_conn *c)
{
    while (c->rpos < c->rlen && !c->held && !c->want_close && !c->want_tls) {
        size_t n = sink_smtp_feed(c->smtp, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rpos += n;
        take_events(c);
        if (n == 0)
            break;
    }
    if (c->want_tls)
        c->rpos = c->rlen; /* plaintext after STARTTLS is dropped (RFC 3207 4.2) */
    if (c->rpos == c->rlen)
        c->rpos = c->rlen = 0;
}

/* Replies through SSL_write into the memory BIO, the records out with one
 * io_uring send (KeyUpdate and alerts OpenSSL queued go along). */
static int flush_mem(struct sink_conn *c)
{
    struct sink_server *srv = c->srv;
    BIO *wb = SSL_get_wbio(c->ssl);
    size_t n, pend;
    const char *o;

    if (c->cout_off == c->cout_len) {
        o = sink_smtp_output(c->smtp, &n);
        while (n) {
            int r = SSL_write(c->ssl, o, srv->slow ? 1 : n > INT_MAX ? INT_MAX : (int)n);
            if (r <= 0) {
                ERR_clear_error();
                conn_close(c, false, "SSL_write");
                return -1;
            }
            sink_smtp_sent(c->smtp, (size_t)r);
            if (srv->slow)
                break; /* one record, one send */
            o = sink_smtp_output(c->smtp, &n);
        }
        pend = BIO_ctrl_pending(wb);
        if (!pend)
            return 1;
        if (pend > c->cout_cap) {
            char *p = realloc(c->cout, pend);
            if (!p) {
                conn_close(c, false, "out of memory");
                return -1;
            }
            c->cout = p;
            c->cout_cap = pend;
        }
        c->cout_len = (size_t)BIO_read(wb, c->cout, (int)pend);
        c->cout_off = 0;
    }
    return post(c,
                loop_send(srv->loop, c->slot, T_SEND_TLS, c->fd, c->cout + c->cout_off,
                          c->cout_len - c->cout_off, MSG_NOSIGNAL),
                T_SEND_TLS);
}

static int flush(struct sink_conn *c)
{
    struct sink_server *srv = c->srv;
    size_t n;
    const char *o = sink_smtp_output(c->smtp, &n);

    if (c->phase == P_PLAIN) {
        if (!n)
            return 1;
        return post(
            c, loop_send(srv->loop, c->slot, T_SEND, c->fd, o, srv->slow ? 1 : n, MSG_NOSIGNAL),
            T_SEND);
    }
    if (c->tx_mem)
        return flush_mem(c);
    while (n) {
        int r = SSL_write(c->ssl, o, srv->slow ? 1 : n > INT_MAX ? INT_MAX : (int)n);
        if (r <= 0)
            return tls_wait(c, r, "write");
        sink_smtp_sent(c->smtp, (size_t)r);
        o = sink_smtp_output(c->smtp, &n);
    }
    return 1;
}

/* More ciphertext into cin. OpenSSL asks for more only once the BIO ran
 * dry, so cin is empty and this is the whole buffer; the move is there in
 * case a record layer ever keeps bytes back. */
static int recv_cin(struct sink_conn *c)
{
    struct sink_cin *in = &c->cin;

    if (in->off) {
        memmove(in->buf, in->buf + in->off, in->len - in->off);
        in->len -= in->off;
        in->off = 0;
    }
    if (in->len == in->cap) {
        conn_close(c, false, "ciphertext buffer full");
        return -1;
    }
    return post(c,
                loop_recv(c->srv->loop, c->slot, T_RECV_TLS, c->fd, in->buf + in->len,
                          in->cap - in->len, 0),
                T_RECV_TLS);
}

static int read_mem(struct sink_conn *c)
{
    bool got = false;

    while (c->rlen < RBUF) {
        int r = SSL_read(c->ssl, c->rbuf + c->rlen, (int)(RBUF - c->rlen)), err;
        if (r > 0) {
            c->rlen += (size_t)r;
            got = true;
            continue;
        }
        err = SSL_get_error(c->ssl, r);
        if (err == SSL_ERROR_WANT_READ && !got && !c->cin.eof)
            return recv_cin(c);
        if (err != SSL_ERROR_WANT_READ) {
            ERR_clear_error();
            c->eof = true; /* close_notify, EOF or a TLS error: no more input */
        } else if (!got) {
            c->eof = true; /* the peer closed and every record was read */
        }
        return 1;
    }
    return 1;
}

static int read_more(struct sink_conn *c)
{
    struct sink_server *srv = c->srv;
    bool got = false;

    if (c->rpos) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos;
        c->rpos = 0;
    }
    if (c->rlen == RBUF) {
        conn_close(c, false, "input buffer full"); /* the session consumes unless it waits */
        return -1;
    }
    if (c->phase == P_PLAIN)
        return post(
            c, loop_recv(srv->loop, c->slot, T_RECV, c->fd, c->rbuf + c->rlen, RBUF - c->rlen, 0),
            T_RECV);
    if (c->rx_mem)
        return read_mem(c);
    /* The socket was empty when the input now answered was read: one
     * read(2) fewer per round trip for a client that waits for replies. */
    if (c->drained && !SSL_has_pending(c->ssl)) {
        c->drained = false;
        return post(c, loop_poll(srv->loop, c->slot, T_POLL, c->fd, POLLIN), T_POLL);
    }
    c->drained = false;
    /* Read what is there (read-ahead and SSL_pending included) so that one
     * batch of replies answers it all. */
    while (c->rlen < RBUF) {
        int r = SSL_read(c->ssl, c->rbuf + c->rlen, (int)(RBUF - c->rlen)), err;
        if (r > 0) {
            c->rlen += (size_t)r;
            got = true;
            continue;
        }
        err = SSL_get_error(c->ssl, r);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
            if (!got)
                return tls_wait(c, r, "read");
            c->drained = err == SSL_ERROR_WANT_READ;
            return 1;
        }
        ERR_clear_error();
        c->eof = true; /* close_notify, EOF or a TLS error: no more input */
        return 1;
    }
    return 1;
}

static void pump(struct sink_conn *c)
{
    struct sink_server *srv = c->srv;

    while (!c->closing && !c->busy) {
        if (c->phase == P_HANDSHAKE) {
            if (handshake(c) <= 0)
                return;
            continue;
        }
        process_input(c);
        if (flush(c) <= 0)
            return;
        if (c->held)
            return; /* the delay timer calls pump() */
        if (c->want_close) {
            conn_close(c, !c->fault_close, c->fault_close ? "fault" : "quit");
            return;
        }
        if (c->want_tls) {
            start_tls(c);
            continue;
        }
        if (c->rlen > c->rpos)
            continue; /* the session paused for its output: feed the rest */
        if (srv->stopping && sink_smtp_idle(c->smtp)) {
            sink_smtp_shutdown(c->smtp); /* 421, then close */
            take_events(c);
            continue;
        }
        if (c->eof) {
            conn_close(c, false, "eof");
            return;
        }
        if (read_more(c) <= 0)
            return;
    }
}

static void conn_handler(void *ctx, const struct loop_cqe *cqe)
{
    struct sink_conn *c = ctx;

    c->busy = T_NONE;
    switch (cqe->tag) {
    case T_RECV:
        if (cqe->res > 0)
            c->rlen += (size_t)cqe->res;
        else if (cqe->res != -ECANCELED && cqe->res != -EINTR && cqe->res != -EAGAIN)
            c->eof = true; /* 0: the client closed; < 0: reset */
        break;
    case T_SEND:
        if (cqe->res > 0) {
            sink_smtp_sent(c->smtp, (size_t)cqe->res);
        } else if (cqe->res != -EINTR && cqe->res != -EAGAIN) {
            conn_close(c, false, "send failed");
            return;
        }
        break;
    case T_RECV_TLS:
        if (cqe->res > 0) {
            c->cin.len += (size_t)cqe->res;
        } else if (cqe->res != -ECANCELED && cqe->res != -EINTR && cqe->res != -EAGAIN) {
            c->cin.eof = true;
        }
        break;
    case T_SEND_TLS:
        if (cqe->res > 0) {
            c->cout_off += (size_t)cqe->res;
        } else if (cqe->res != -EINTR && cqe->res != -EAGAIN) {
            conn_close(c, false, "send failed");
            return;
        }
        break;
    case T_POLL:
        if (cqe->res < 0 && cqe->res != -ECANCELED && cqe->res != -EINTR) {
            conn_close(c, false, "poll failed");
            return;
        }
        break;
    default:
        break;
    }
    pump(c);
}

/* ---- the listener ---- */

static void conn_new(struct sink_server *srv, int fd)
{
    struct sink_conn *c = calloc(1, sizeof(*c));
    struct sink_stats *s = stats(srv);
    int one = 1;

    if (!c || !(c->smtp = sink_smtp_create(srv->smtp))) {
        free(c);
        close(fd);
        return;
    }
    c->srv = srv;
    c->fd = fd;
    c->id = ++srv->conn_seq;
    c->phase = P_PLAIN;
    c->slot = loop_slot_open(srv->loop, conn_handler, c);
    if (c->slot < 0) {
        sink_smtp_destroy(c->smtp);
        free(c);
        close(fd);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    loop_timer_init(&c->delay, delay_fired, c);
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->live++;
    if (s->connections++ == 0)
        s->first_ms = loop_now_ms(srv->loop);
    if (srv->verbose)
        fprintf(stderr, "sink: conn %llu accepted\n", c->id);
    if (srv->implicit) {
        start_tls(c);
    } else {
        sink_smtp_start(c->smtp, false);
        take_events(c);
    }
    pump(c);
}

static void accept_arm(struct sink_server *srv)
{
    if (srv->stopping || srv->listen_fd < 0)
        return;
    if (loop_accept(srv->loop, srv->listen_slot, T_ACCEPT, srv->listen_fd,
                    SOCK_NONBLOCK | SOCK_CLOEXEC) < 0)
        loop_timer_arm(srv->loop, &srv->grace, ACCEPT_RETRY_MS);
}

static void accept_handler(void *ctx, const struct loop_cqe *cqe)
{
    struct sink_server *srv = ctx;

    if (cqe->res >= 0) {
        if (srv->stopping)
            close(cqe->res);
        else
            conn_new(srv, cqe->res);
    } else if (cqe->res != -ECANCELED) {
        fprintf(stderr, "sink: accept: %s\n", strerror(-cqe->res));
    }
    if (!(cqe->flags & LOOP_CQE_F_MORE) && !srv->stopping) {
        /* The stream ended (EMFILE, ...): try again a little later. */
        loop_timer_arm(srv->loop, &srv->grace, ACCEPT_RETRY_MS);
    }
}

static void listener_released(void *ctx)
{
    struct sink_server *srv = ctx;

    close(srv->listen_fd);
    srv->listen_fd = -1;
    check_done(srv);
}

/* One timer, two jobs: re-arming accept while running, and the end of the
 * grace period once stopping. */
static void server_timer(void *ctx)
{
    struct sink_server *srv = ctx;

    if (!srv->stopping) {
        accept_arm(srv);
        return;
    }
    while (srv->conns)
        conn_close(srv->conns, false, "grace period over");
    check_done(srv);
}

int sink_server_start(struct sink_server *srv)
{
    srv->conns = NULL;
    srv->live = 0;
    srv->stopping = srv->done = false;
    loop_timer_init(&srv->grace, server_timer, srv);
    srv->listen_slot = loop_slot_open(srv->loop, accept_handler, srv);
    if (srv->listen_slot < 0)
        return (int)srv->listen_slot;
    return loop_accept(srv->loop, srv->listen_slot, T_ACCEPT, srv->listen_fd,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
}

void sink_server_stop(struct sink_server *srv)
{
    if (srv->stopping) {
        server_timer(srv); /* asked twice: no more grace */
        return;
    }
    srv->stopping = true;
    loop_slot_close(srv->loop, srv->listen_slot, listener_released);
    loop_timer_arm(srv->loop, &srv->grace, srv->grace_ms);
    /* Connections waiting for a client that may never speak: wake them so
     * that an idle one answers 421 and closes now. */
    for (struct sink_conn *c = srv->conns; c; c = c->next)
        if (c->busy == T_RECV || c->busy == T_RECV_TLS || (c->busy == T_POLL && c->phase == P_TLS))
            loop_cancel(srv->loop, c->slot, LOOP_OP_NONE, -1);
    check_done(srv);
}
