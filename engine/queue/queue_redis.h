/*
 * queue_redis: one Redis connection that keeps itself alive, for queue.c.
 * hiredis's async context runs on our io_uring loop through an adapter
 * (hiredis's ev hooks mapped to one-shot loop_poll operations, re-armed as
 * hiredis asks), adds what hiredis 0.14 lacks (a deadline on connect and
 * on every reply), and reconnects with jittered exponential backoff.
 *
 * Life of a connection: connect, then the handshake (AUTH, SELECT, the
 * owner's commands from hello(), a PING); ready once every handshake reply
 * came back without error; up(). Any failure (a refused connect, EOF, a
 * late reply, an error reply the owner or the handshake calls fatal) ends
 * it: every command still waiting gets its callback with a NULL reply, in
 * order, then down(), then a reconnect after the backoff.
 */
#ifndef RINGMAIL_QUEUE_REDIS_H
#define RINGMAIL_QUEUE_REDIS_H

#include <stdbool.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "loop.h"

struct queue_redis_config {
    const char *name; /* "read", "cmd": for logs */
    /* As struct queue_config; the strings are kept, not copied. */
    const char *host;
    unsigned port;
    const char *unix_path;
    unsigned db;
    const char *user;
    const char *password;
    unsigned timeout_ms; /* connect and each reply */
    unsigned backoff_min_ms;
    unsigned backoff_max_ms;
    uint64_t seed; /* jitter */
};

/* reply NULL: the connection ended before the reply came (the command may
 * or may not have run). The reply is hiredis's, valid during the call. */
typedef void queue_redis_reply_fn(void *priv, redisReply *reply);

struct queue_redis_ops {
    /* A new connection: send the handshake commands
     * (QUEUE_REDIS_HANDSHAKE). The replies come before ready. */
    void (*hello)(void *owner);
    void (*up)(void *owner);
    /* The connection ended (after its NULL callbacks); a reconnect is
     * scheduled. Not called for a connection that never reached ready
     * unless it did reach hello(). */
    void (*down)(void *owner, const char *why);
};

enum queue_redis_flag {
    QUEUE_REDIS_HANDSHAKE = 1 << 0, /* part of the handshake: ready waits for it */
};

struct queue_redis;

/* Starts connecting at once. NULL on no memory. */
struct queue_redis *queue_redis_new(struct loop *loop, const struct queue_redis_config *cfg,
                                    const struct queue_redis_ops *ops, void *owner);
/* Ends the connection: pending callbacks get NULL replies during this
 * call (the owner must expect that), down() is not called. NULL: no-op. */
void queue_redis_free(struct queue_redis *r);

bool queue_redis_ready(const struct queue_redis *r);

/* Queues a command (sent when the socket allows). extra_ms adds to the
 * reply deadline (a BLOCK). 0, or -1 when there is no connection (or no
 * memory): fn is then not called. */
int queue_redis_command(struct queue_redis *r, unsigned flags, unsigned extra_ms, int argc,
                        const char **argv, const size_t *argvlen, queue_redis_reply_fn *fn,
                        void *priv);
/* The same with a command already in RESP (redisFormatCommandArgv). */
int queue_redis_formatted(struct queue_redis *r, unsigned flags, unsigned extra_ms, const char *cmd,
                          size_t len, queue_redis_reply_fn *fn, void *priv);

/* Ends the connection soon (from the loop, never inside this call: safe in
 * reply callbacks); it stops being ready at once. */
void queue_redis_fail(struct queue_redis *r, const char *why);

struct queue_redis_stats {
    uint64_t attempts; /* connections started */
    uint64_t ready;    /* connections that reached ready */
    uint64_t timeouts; /* connections dropped for a late reply or connect */
    unsigned inflight; /* commands waiting for a reply */
    unsigned backoff_ms;
};
void queue_redis_stats(const struct queue_redis *r, struct queue_redis_stats *out);

/* True for error replies that say "try again later" (LOADING, BUSY,
 * NOSCRIPT, READONLY, MASTERDOWN, OOM, ...): the owner then fails the
 * connection and re-sends after the reconnect. */
bool queue_redis_transient(const redisReply *reply);

#endif
