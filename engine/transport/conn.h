/*
 * conn: one SMTP connection to a relay: a socket driven by the io_uring
 * loop, the TLS session (tls), and the pure protocol state (smtp_client),
 * with the operations in flight on them and the connection's lifetime.
 *
 * The conn reports to its owner (the pool) through callbacks: ready (idle,
 * can take a transaction), txn_done, and closed (exactly once; after it the
 * owner must forget the pointer: the memory goes when the kernel has
 * returned every operation). It never sends a byte of mail or a credential
 * before the handshake completed: the protocol core does not queue any.
 */
#ifndef RINGMAIL_CONN_H
#define RINGMAIL_CONN_H

#include <stdint.h>
#include <sys/socket.h>

#include "loop.h"
#include "smtp_client.h"
#include "tls.h"

/* Per-stage timeouts, milliseconds. RFC 5321 4.5.3.2 gives the defaults. */
struct conn_timeouts {
    unsigned connect_ms;    /* TCP connect: 30 s */
    unsigned greeting_ms;   /* initial 220: 5 min */
    unsigned command_ms;    /* EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA, NOOP, RSET: 5 min */
    unsigned tls_ms;        /* TLS handshake: 60 s */
    unsigned data_block_ms; /* progress while sending the body: 3 min */
    unsigned data_done_ms;  /* reply to the end of data: 10 min */
    unsigned quit_ms;       /* reply to QUIT, and the close: 10 s */
};
/* Fill zero fields with the defaults above. */
void conn_timeouts_default(struct conn_timeouts *t);

struct conn;

struct conn_callbacks {
    /* Idle and usable: conn_submit(), conn_quit() or nothing. */
    void (*ready)(struct conn *c, void *user);
    /* A transaction ended; its results are filled. ready() follows once no
     * other transaction is in flight on this connection. */
    void (*txn_done)(struct conn *c, struct smtp_client_txn *txn, void *user);
    /* The connection is over (failure or QUIT). reason NONE: a clean QUIT.
     * txn: the transaction that was in flight (results filled, temporary),
     * or NULL. Called once; forget c afterwards. */
    void (*closed)(struct conn *c, enum smtp_client_reason reason, const char *detail,
                   struct smtp_client_txn *txn, void *user);
    /* The TLS handshake ended, once per connection that got as far as
     * asking for one: reason NONE when it completed, otherwise what ended
     * it (cert-verify, protocol-version, timeout, connection, injection
     * when the 220 could not be trusted, ...). Optional (NULL). */
    void (*handshake)(struct conn *c, enum smtp_client_reason reason, void *user);
};

struct conn_config {
    const char *name;            /* the relay's name, for logs (kept, not copied) */
    const struct sockaddr *addr; /* copied */
    socklen_t addrlen;
    struct smtp_client_config smtp;
    struct tls_ctx *tls; /* the relay's; the conn takes a reference via tls_conn */
    struct conn_timeouts timeouts;
    unsigned keepalive_ms; /* NOOP after this long idle; 0: never */
    /* Userspace TLS only: send ciphertext runs of at least this many bytes
     * with SEND_ZC (0: never). See bench/transport_figures.sh for whether
     * it pays on a given machine. */
    unsigned send_zc_min;
};

/*
 * Create the socket and start connecting. Returns NULL with err written
 * ("socket: Too many open files", ...) when it cannot start; callbacks then
 * never run.
 */
struct conn *conn_new(struct loop *loop, const struct conn_config *cfg,
                      const struct conn_callbacks *cb, void *user, char *err, size_t errlen);

/* How many transactions conn_submit() takes now: 0 busy, 1 after ready(),
 * more when the relay lets them go back to back (smtp_client_can_start). */
unsigned conn_can_submit(const struct conn *c);
/* Start a transaction (only while conn_can_submit() > 0). 0, or -1 with
 * *err. more: another conn_submit() follows at once, so hold the bytes
 * back and send them all in one burst with the last. */
int conn_submit(struct conn *c, struct smtp_client_txn *txn, int more, const char **err);
/* Send what conn_submit(..., more = 1, ...) held back. */
void conn_flush(struct conn *c);
/* The encoding the next transaction's body needs. */
enum message_encoding conn_body_encoding(const struct conn *c);
/* Close politely: QUIT now when idle, or once what is in flight (a
 * transaction, a NOOP, the session's set-up, the handshake) is answered;
 * no new transaction is taken meanwhile. Only a connection with no session
 * yet (connecting) or one already broken is closed without QUIT. closed()
 * follows either way. */
void conn_quit(struct conn *c);
/* Close now (no QUIT); closed() follows from the loop. */
void conn_abort(struct conn *c, enum smtp_client_reason reason, const char *detail);

/* TLS facts once the handshake is done, else NULL. */
const struct tls_facts *conn_tls_facts(const struct conn *c);
/* The peer sent a KeyUpdate while the kernel encrypts: retire after this. */
int conn_key_stale(const struct conn *c);

struct conn_stats {
    uint64_t opened_ms;  /* loop clock when created */
    uint64_t messages;   /* transactions with at least one recipient delivered */
    uint64_t bytes_sent; /* payload bytes written to the socket (ciphertext when userspace TLS) */
    uint64_t sends;      /* send operations submitted */
    uint64_t spliced_bytes; /* body bytes spliced from a file (kTLS zero-copy path) */
};
void conn_stats(const struct conn *c, struct conn_stats *out);

#endif
