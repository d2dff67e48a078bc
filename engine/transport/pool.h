/*
 * pool: the persistent connections of one relay in one worker.
 *
 * A configured number of connections is opened ahead of need and reused
 * across messages; a job waits for an idle connection when all are busy.
 * Connections are rotated after a number of messages, bytes or an age (and
 * at once when TLS says the kernel's key went stale), kept alive with NOOP
 * below server idle limits, and replaced with exponential backoff and
 * jitter when they fail. A circuit breaker stops hammering a relay that
 * keeps refusing us on policy grounds (authentication, certificates, TLS):
 * while it is open, jobs fail at once with the reason, as temporary.
 */
#ifndef RINGMAIL_POOL_H
#define RINGMAIL_POOL_H

#include <stdint.h>
#include <sys/socket.h>

#include "conn.h"

struct pool_job;
struct metrics_worker;

/* Called once per job with its results filled. conn_reason: the connection
 * failure that decided it, or SMTP_CLIENT_R_NONE. facts: the TLS facts of
 * the connection that carried it (NULL if none got that far); copy them. */
typedef void pool_job_done_fn(struct pool_job *job, enum smtp_client_reason conn_reason,
                              const char *detail, const struct tls_facts *facts);
/* Fill job->txn.body, body_len and facts for this encoding. 0, or
 * -MESSAGE_E_* (message.h): a fault of the message itself (a line too long,
 * a NUL, empty) fails the job permanently ("bad message: ..."); a local
 * one (-MESSAGE_E_NOMEM, -MESSAGE_E_SPACE) temporarily, as
 * SMTP_CLIENT_R_LOCAL with 4.3.0 "local error: ...", so it is retried. */
typedef int pool_job_prepare_fn(struct pool_job *job, enum message_encoding enc);

/* A job as the pool sees it; embed it in your own struct. */
struct pool_job {
    struct smtp_client_txn txn; /* from, rcpts, nrcpt, results: set by the submitter */
    pool_job_prepare_fn *prepare;
    pool_job_done_fn *done;
    struct pool_job *next; /* the pool's */
    /* The pool's: how often a session limit (the server's "too many
     * messages", or a 421, to its MAIL) sent it to another connection. */
    unsigned retired;
};

/* A job refused for the session this many times is not moved again: it
 * ends as temporary with the server's reply (a relay that says 452 to
 * every first MAIL must not make the pool loop). */
#define POOL_RETIRE_MAX 2

#define POOL_SEND_ZC_OFF 0xffffffffu

struct pool_config {
    const char *name;
    struct sockaddr_storage addr; /* the relay's address */
    socklen_t addrlen;
    struct smtp_client_config smtp;
    struct tls_ctx *tls;
    struct conn_timeouts timeouts;
    unsigned connections;           /* persistent connections (default 16) */
    unsigned max_messages_per_conn; /* rotate after (default 1000; 0: never) */
    uint64_t max_bytes_per_conn;    /* rotate after (default 0: never) */
    unsigned max_age_ms;            /* rotate after (default 1 hour; 0: never) */
    unsigned keepalive_ms;          /* NOOP when idle this long (default 60 s) */
    /* Userspace TLS: ciphertext runs of at least this go with SEND_ZC
     * (default 64 KiB: it spares the sender a copy per byte; but off for a
     * relay on this host, where the kernel copies on delivery anyway, see
     * pool.c); POOL_SEND_ZC_OFF turns it off. */
    unsigned send_zc_min;
    unsigned backoff_min_ms; /* reconnect backoff (default 500 ms) */
    unsigned backoff_max_ms; /* (default 60 s) */
    /* Consecutive failed connection attempts, with no connection up, after
     * which queued jobs fail instead of waiting (default: connections). */
    unsigned fail_queued_after;
    unsigned breaker_threshold; /* consecutive policy failures that open it (default 3) */
    /* Where this worker's counters for this relay go (NULL: nowhere). */
    struct metrics_worker *metrics;
    unsigned metrics_relay;
    unsigned breaker_cooldown_ms; /* how long it stays open (default 5 min) */
};

/* Counters for metrics and the send report. */
struct pool_stats {
    uint64_t connects;    /* connection attempts */
    uint64_t handshakes;  /* connections that reached READY */
    uint64_t failures;    /* connections that failed before or after READY */
    uint64_t rotations;   /* QUIT for age, messages, bytes or a stale key */
    uint64_t retirements; /* connections ended for a session limit (QUIT) */
    uint64_t requeued;    /* jobs moved to another connection by a session limit */
    uint64_t jobs_done;   /* jobs handed back */
    uint64_t breaker_opens;
    unsigned live;   /* connections now open (any phase) */
    unsigned idle;   /* connections now READY without a job */
    unsigned queued; /* jobs waiting */
    int breaker_open;
};

struct pool;

struct pool *pool_new(struct loop *loop, const struct pool_config *cfg, char *err, size_t errlen);
/* Closes every connection (QUIT when idle) and fails queued jobs as
 * temporary; the pool is freed once the last connection is gone. */
void pool_free(struct pool *p);

/* Queue a job; it is started on an idle connection as soon as one exists. */
void pool_submit(struct pool *p, struct pool_job *job);

/* Stop opening connections, let jobs in flight finish, QUIT the rest. */
void pool_drain(struct pool *p);

/*
 * The relay's address, when its name is resolved after pool_new(): a pool
 * made with cfg->addrlen 0 opens no connection (jobs wait as for a busy
 * pool) until pool_set_addr() gives one. pool_set_unresolved() says the
 * name did not resolve: until pool_set_addr(), every job waiting or
 * submitted fails at once as temporary (4.4.3, SMTP_CLIENT_R_CONNECTION)
 * with detail as its reply, so it goes to the retry schedule.
 */
void pool_set_addr(struct pool *p, const struct sockaddr_storage *addr, socklen_t addrlen);
void pool_set_unresolved(struct pool *p, const char *detail);
/* 1 when no job is queued or in flight. */
int pool_idle(const struct pool *p);

void pool_get_stats(const struct pool *p, struct pool_stats *out);

/* Visit each live connection that finished its handshake (for reports and
 * per-connection metrics). */
typedef void pool_conn_fn(void *arg, unsigned index, const struct tls_facts *facts,
                          const struct conn_stats *st);
void pool_foreach_conn(const struct pool *p, pool_conn_fn *fn, void *arg);

#endif
