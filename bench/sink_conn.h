/*
 * sink_conn: ringmail-sink's listener and connections over the io_uring
 * loop. A connection runs one step at a time (read, feed the session,
 * write the batched replies, read again), so the session's output buffer
 * is never touched while a send of it is in flight. Plaintext moves with
 * io_uring recv/send; once TLS starts, the SSL object reads and writes the
 * non-blocking fd itself (socket BIO: kTLS possible both ways) and io_uring
 * polls for readiness.
 */
#ifndef RINGMAIL_SINK_CONN_H
#define RINGMAIL_SINK_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "loop.h"
#include "sink_smtp.h"
#include "sink_store.h"

struct sink_conn;

/* The server: one per process, owned by main. */
struct sink_server {
    struct loop *loop;
    struct sink_smtp_config *smtp;
    SSL_CTX *ssl_ctx; /* NULL: --plaintext */
    struct sink_store *store;
    bool implicit;             /* TLS first, then the greeting */
    bool slow;                 /* one byte per write */
    bool verbose;              /* a line per connection on stderr */
    unsigned key_update_after; /* messages per TLS 1.3 connection between KeyUpdates */
    uint64_t max_messages;     /* stop after this many; 0: never */
    unsigned grace_ms;         /* after stop, how long connections may finish */
    int listen_fd;
    /* state */
    loop_slot listen_slot;
    bool stopping, done;
    unsigned long long conn_seq;
    struct sink_conn *conns; /* open connections */
    unsigned live;           /* connections not yet released */
    struct loop_timer grace;
};

/* Starts accepting on srv->listen_fd. 0 or -errno. */
int sink_server_start(struct sink_server *srv);
/* Stop accepting; idle connections get 421 and close, the rest get
 * grace_ms to finish. srv->done turns true when all are gone. */
void sink_server_stop(struct sink_server *srv);

#endif
