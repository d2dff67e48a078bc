/*
 * conn_send: the way out of a connection. What the protocol core has queued
 * goes as plaintext on the socket (before TLS, or when the kernel encrypts:
 * kTLS TX, with bodies spliced from their file), or through
 * tls_conn_encrypt() and a SEND (or SEND_ZC) of the ciphertext. One send is
 * in flight at a time, so output stays in order.
 */
#include "conn_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void send_iov(struct conn *c, struct iovec *iov, size_t n, int more)
{
    int rc = loop_sendv(c->loop, c->slot, TAG_SEND, c->fd, iov, (unsigned)n,
                        MSG_NOSIGNAL | (more ? MSG_MORE : 0));
    if (rc < 0) {
        smtp_client_abort(c->smtp, SMTP_CLIENT_R_LOCAL, "cannot queue a send");
        return;
    }
    c->send_pending = 1;
    c->st.sends++;
}

/*
 * The zero-copy body path (kTLS TX on, body in a file): file -> pipe ->
 * socket with splice, one pipe-load at a time; the kernel encrypts on the
 * way out. remaining: bytes of t's body not yet sent.
 */
static void splice_body(struct conn *c, const struct smtp_client_txn *t, size_t remaining)
{
    const struct smtp_client_body_file *bf = t->body_file;
    long long off = bf->off + (long long)(t->body_len - remaining);
    unsigned chunk;
    int rc;

    if (c->pipe_fd[0] < 0) {
        if (pipe2(c->pipe_fd, O_CLOEXEC) != 0) {
            c->pipe_fd[0] = c->pipe_fd[1] = -1;
            smtp_client_abort(c->smtp, SMTP_CLIENT_R_LOCAL, "pipe: cannot splice the body");
            return;
        }
        /* A bigger pipe means fewer splices per message (1 MiB is the
         * default pipe-max-size for unprivileged processes). */
        fcntl(c->pipe_fd[1], F_SETPIPE_SZ, 1 << 20);
    }
    chunk = remaining > (1u << 20) ? 1u << 20 : (unsigned)remaining;
    c->splice_more = remaining > chunk;
    rc = loop_splice(c->loop, c->slot, TAG_SPLICE_IN, bf->fd, off, c->pipe_fd[1], -1, chunk,
                     SPLICE_F_MOVE);
    if (rc < 0) {
        smtp_client_abort(c->smtp, SMTP_CLIENT_R_LOCAL, "cannot queue a splice");
        return;
    }
    c->send_pending = 1;
    c->splicing = 1;
    c->st.sends++;
}

/* Move the pipe-load to the socket (the kernel encrypts on the way out). */
void conn_splice_out(struct conn *c)
{
    /* SPLICE_F_MORE (MSG_MORE to kTLS) only while body bytes remain behind
     * this pipe-load: on the last one it would leave the final record open
     * and the TCP segment corked, so the end of the message would wait for
     * the kernel's ~200 ms cork timer while the server waits for it (seen
     * in the kTLS guest: 4 messages/s with 2 KB bodies). */
    int rc =
        loop_splice(c->loop, c->slot, TAG_SPLICE_OUT, c->pipe_fd[0], -1, c->fd, -1,
                    (unsigned)c->pipe_bytes, SPLICE_F_MOVE | (c->splice_more ? SPLICE_F_MORE : 0));
    if (rc < 0) {
        c->send_pending = c->splicing = 0;
        smtp_client_abort(c->smtp, SMTP_CLIENT_R_LOCAL, "cannot queue a splice");
    }
}

void conn_on_spliced(struct conn *c, int tag, int res)
{
    if (res == -EAGAIN && tag == TAG_SPLICE_OUT && !c->poll_pending) {
        /* The socket is non-blocking and full (a slow reader): io_uring
         * does not poll-retry a splice as it does a send, so wait for room
         * and splice again; the send stays pending meanwhile. Seen in the
         * kTLS guest with a large body and a server that paused reading. */
        if (loop_poll(c->loop, c->slot, TAG_POLL, c->fd, POLLOUT) == 0) {
            c->poll_pending = 1;
            c->splice_wait = 1;
            return;
        }
    }
    if (res <= 0) {
        char d[96];
        c->send_pending = c->splicing = 0;
        snprintf(d, sizeof(d), "splice: %s", res ? strerror(-res) : "short file");
        smtp_client_abort(c->smtp, res == 0 ? SMTP_CLIENT_R_LOCAL : SMTP_CLIENT_R_CONNECTION, d);
        return;
    }
    if (tag == TAG_SPLICE_IN) {
        c->pipe_bytes = (size_t)res;
    } else {
        c->pipe_bytes -= (size_t)res;
        c->st.bytes_sent += (uint64_t)res;
        c->st.spliced_bytes += (uint64_t)res;
        smtp_client_sent(c->smtp, (size_t)res);
    }
    if (!c->pipe_bytes) {
        c->send_pending = c->splicing = 0; /* conn_pump() takes the next pipe-load or piece */
        return;
    }
    conn_splice_out(c);
}

/* Plaintext encrypted per send when there is more: a burst of eight 1 MB
 * bodies encrypted at once left 8 MB of ciphertext for the kernel to copy
 * from memory, and that copy was a sixth of the sender's CPU. Sixteen full
 * records, so a slice boundary does not make a short record. */
#define ENCRYPT_AHEAD (16 * 16384)

void conn_pump(struct conn *c)
{
    struct smtp_client_out out[OUT_PIECES];
    struct iovec iov[OUT_PIECES];
    size_t n, i, total = 0;
    int ciphered;

    if (c->send_pending || c->phase == CP_CONNECTING || c->phase == CP_DEAD ||
        c->phase == CP_HANDSHAKE)
        return;
    ciphered = c->tls && tls_conn_facts(c->tls) && !tls_conn_ktls_tx(c->tls);
    n = smtp_client_output(c->smtp, out, OUT_PIECES);
    for (i = 0; i < n; i++) {
        iov[i].iov_base = (void *)out[i].base;
        iov[i].iov_len = out[i].len;
        total += out[i].len;
    }
    if (!ciphered) {
        if (!n)
            return;
        if (c->phase == CP_TLS && tls_conn_ktls_tx(c->tls)) {
            /* Bodies with a file go by splice; what comes before the first
             * of them goes by send. Transactions in flight back to back
             * each have their own body (and file). */
            size_t k, before = 0;
            for (k = 0; k < n && !(out[k].body && out[k].txn->body_file); k++)
                before += out[k].len;
            if (k == 0) {
                splice_body(c, out[0].txn, out[0].len);
                return;
            }
            if (k < n) { /* the commands first, the body right after */
                c->send_plain = before;
                c->send_cipher = 0;
                send_iov(c, iov, k, 1);
                return;
            }
        }
        c->send_plain = total;
        c->send_cipher = 0;
        send_iov(c, iov, n, 0);
        return;
    }
    if (n) {
        /* A large output is encrypted a slice per send, so that the kernel
         * copies ciphertext still in this core's cache. */
        size_t budget = ENCRYPT_AHEAD;
        total = 0;
        for (i = 0; i < n && budget; i++) {
            if (iov[i].iov_len > budget)
                iov[i].iov_len = budget;
            budget -= iov[i].iov_len;
            total += iov[i].iov_len;
        }
        n = i;
        if (tls_conn_encrypt(c->tls, iov, n) != 0) {
            const char *detail = NULL;
            tls_conn_error(c->tls, &detail);
            smtp_client_abort(c->smtp, SMTP_CLIENT_R_LOCAL, detail);
            conn_process_events(c);
            return;
        }
        smtp_client_sent(c->smtp, total);
    }
    n = tls_conn_pending_iov(c->tls, 0, iov, OUT_PIECES);
    if (!n)
        return;
    if (c->send_zc_min && iov[0].iov_len >= c->send_zc_min) {
        /* The ciphertext stays put until consumed, so the kernel may read it
         * after the send completes, until the notification. */
        int rc = loop_send_zc(c->loop, c->slot, TAG_SEND_ZC, c->fd, iov[0].iov_base, iov[0].iov_len,
                              MSG_NOSIGNAL);
        if (rc == 0) {
            c->send_plain = 0;
            c->send_cipher = 1;
            c->send_pending = 1;
            c->zc_res = -EINPROGRESS;
            c->st.sends++;
            return;
        }
        c->send_zc_min = 0; /* the kernel lacks it: copy from now on */
    }
    c->send_plain = 0;
    c->send_cipher = 1;
    send_iov(c, iov, n, 0);
}

void conn_on_sent(struct conn *c, int res)
{
    c->send_pending = 0;
    if (res < 0) {
        char d[96];
        snprintf(d, sizeof(d), "send: %s", strerror(-res));
        if (c->phase == CP_CLOSING) {
            conn_finish_close(c);
            return;
        }
        smtp_client_abort(c->smtp, SMTP_CLIENT_R_CONNECTION, d);
        conn_process_events(c);
        return;
    }
    c->st.bytes_sent += (uint64_t)res;
    if (c->send_cipher)
        tls_conn_consume_out(c->tls, (size_t)res);
    else
        smtp_client_sent(c->smtp, (size_t)res);
    if (c->phase == CP_CLOSING) {
        if (smtp_client_output_len(c->smtp) ||
            (c->tls && !tls_conn_ktls_tx(c->tls) && tls_conn_pending_len(c->tls))) {
            conn_pump(c);
        } else if (c->notify_due) {
            c->notify_due = 0;
            tls_conn_shutdown(c->tls); /* kTLS: written now; otherwise queued */
            if (!tls_conn_ktls_tx(c->tls) && tls_conn_pending_len(c->tls))
                conn_pump(c);
            else
                conn_finish_close(c);
        } else {
            conn_finish_close(c);
        }
    }
}
