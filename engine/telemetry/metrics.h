/*
 * metrics: the counters the workers keep for Prometheus, in one shared
 * memory region that the master maps before it forks them, and their
 * rendering in the Prometheus text format (metrics_text.c) served over HTTP
 * by the master (metrics_http.c).
 *
 * Each worker writes only its own block (counters per relay, histograms,
 * and a fixed array of per-connection slots); the master only reads. So
 * nothing is locked: a worker's counters are single-writer atomics, and a
 * connection slot is published with a sequence lock (see metrics.c) so
 * that the reader never renders a half-written slot.
 *
 * The flow:
 *
 *   master, before fork:  m = metrics_create(nworkers, nrelays, names, 10000, err, len);
 *                         h = metrics_http_start(m, host, port, per_connection, ...);
 *   worker i:             mw = metrics_worker(m, i);
 *                         metrics_set_redis_up(mw, 1);
 *                         slot = metrics_conn_open(mw, relay);       (-1: all slots busy)
 *                         metrics_conn_tls(mw, slot, facts);         (after TLS_OK)
 *                         metrics_conn_message(mw, slot, bytes); metrics_message(mw, relay, ...)
 *                         metrics_conn_close(mw, slot);              (the series go away)
 *   master, worker i died: metrics_worker_reset(m, i); metrics_worker_restart(m);
 *   master, exit:         metrics_http_stop(h); metrics_free(m);
 *
 * Every worker-side call is a few loads and stores, no system call, and
 * accepts a NULL mw or a slot of -1 (doing nothing), so wiring code need
 * not test for "metrics off" or "no slot".
 */
#ifndef RINGMAIL_METRICS_H
#define RINGMAIL_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "smtp_client.h"

struct tls_facts;
struct metrics;
struct metrics_worker;
struct metrics_http;

/* Longest relay name kept (longer ones are truncated), NUL included. */
#define METRICS_RELAY_NAME_MAX 64
/* Limits metrics_create() accepts. */
#define METRICS_WORKERS_MAX 1024
#define METRICS_RELAYS_MAX  256
#define METRICS_CONNS_MAX   100000
/* Longest error text metrics_create() and metrics_http_start() write. */
#define METRICS_ERR_MAX 256

/* The final fate of one recipient, as in the events stream. */
enum metrics_status {
    METRICS_DELIVERED = 0,
    METRICS_DEFERRED = 1,
    METRICS_BOUNCED = 2,
    METRICS_DEAD = 3,
};
#define METRICS_STATUS_COUNT 4
/* "delivered", "deferred", "bounced", "dead"; "unknown" otherwise. */
const char *metrics_status_name(enum metrics_status s);

/*
 * Map one shared region (MAP_SHARED | MAP_ANONYMOUS) for nworkers workers,
 * nrelays relays (names copied; they become label values) and at most
 * conns_per_worker_max live connections per worker. Call before fork: the
 * workers inherit the mapping. Pages nobody touches cost no memory, so
 * 10,000 slots per worker (about 2.5 MB each) is a fine default. NULL with
 * err written on bad arguments or when mmap fails.
 */
struct metrics *metrics_create(unsigned nworkers, unsigned nrelays, const char *const *relay_names,
                               unsigned conns_per_worker_max, char *err, size_t errlen);
/* Unmaps the region (in the master, after the workers are gone). */
void metrics_free(struct metrics *m);

/* Where kernel TLS statistics are read (default /proc/net/tls_stat; tests
 * point it at a fixture). NULL turns the kernel series off. Set it before
 * metrics_http_start(): the HTTP thread reads it. 0, or -1 if too long. */
int metrics_set_tls_stat_path(struct metrics *m, const char *path);

/* ---- worker side: call only from the worker that owns index ---- */

/* Worker index's block, or NULL when index is out of range. */
struct metrics_worker *metrics_worker(struct metrics *m, unsigned index);

/* One recipient's final status on relay. */
void metrics_message(struct metrics_worker *mw, unsigned relay, enum metrics_status s);
/* A TLS handshake toward relay ended: reason SMTP_CLIENT_R_NONE when it
 * completed, otherwise what ended it (cert-verify, protocol-version,
 * timeout, connection, injection, ...). Once per connection that asked for
 * one. Out-of-range reasons count as SMTP_CLIENT_R_LOCAL. */
void metrics_handshake(struct metrics_worker *mw, unsigned relay, enum smtp_client_reason reason);
/* A connection to relay failed for reason (SMTP_CLIENT_R_*: the reason
 * classes of smtp_client_reason_name()). Out-of-range reasons count as
 * SMTP_CLIENT_R_LOCAL. */
void metrics_tls_failure(struct metrics_worker *mw, unsigned relay, enum smtp_client_reason reason);
/* Enqueue-to-outcome latency of one message, and the SMTP transaction
 * (MAIL to the final reply) that carried it; seconds. */
void metrics_latency(struct metrics_worker *mw, unsigned relay, double seconds);
void metrics_txn_duration(struct metrics_worker *mw, unsigned relay, double seconds);
/* A Redis command failed (connection lost, error reply). */
void metrics_redis_error(struct metrics_worker *mw);
/* n more outcome writes failed: transient (re-sent after a reconnect) or
 * permanent (refused by Redis: the job is dead-lettered instead). */
void metrics_outcome_failures(struct metrics_worker *mw, int permanent, uint64_t n);
/* Jobs this worker holds whose outcome and dead letter Redis refused. */
void metrics_set_outcome_stuck(struct metrics_worker *mw, uint64_t n);
/* This worker's Redis connection is up (1) or down (0): readiness. */
void metrics_set_redis_up(struct metrics_worker *mw, int up);
/* The relay's host name resolves (1) or does not (0) in this worker:
 * readiness names a relay that does not. */
void metrics_set_relay_resolved(struct metrics_worker *mw, unsigned relay, int resolved);

/*
 * Per-connection slots. metrics_conn_open() takes a free slot for a new
 * connection to relay and returns its index, or -1 when all slots are busy
 * (counted in ringmail_metrics_slots_full_total; the connection then goes
 * uncounted). The other calls take that index; -1 does nothing. The series
 * of a connection appear once metrics_conn_tls() gave its facts, and go
 * away at metrics_conn_close(), which frees the slot: the number of series
 * stays bounded by the live connections.
 */
int metrics_conn_open(struct metrics_worker *mw, unsigned relay);
void metrics_conn_tls(struct metrics_worker *mw, int slot, const struct tls_facts *f);
/* A message went out on the connection: bytes of message data sent. */
void metrics_conn_message(struct metrics_worker *mw, int slot, uint64_t bytes);
/* A transaction or command on the connection failed. */
void metrics_conn_error(struct metrics_worker *mw, int slot);
void metrics_conn_close(struct metrics_worker *mw, int slot);

/* ---- master side (any process may call the queue setter) ---- */

/*
 * Worker index is gone (reaped): its connections died with it. Frees its
 * slots and marks its Redis down; its counters stay, so the sums stay
 * monotonic. Call it before forking the replacement. Not while a live
 * worker owns index.
 */
void metrics_worker_reset(struct metrics *m, unsigned index);
/* The master restarted a worker that had exited or crashed. */
void metrics_worker_restart(struct metrics *m);
/* Queue gauges: stream length, entries pending in the group, retry set
 * size, dead-letter length. Absent from /metrics until first set. Several
 * writers may race; the last one wins, which is fine for gauges. */
void metrics_set_queue(struct metrics *m, uint64_t stream, uint64_t pending, uint64_t retry,
                       uint64_t dead);

/*
 * 1 while the engine can deliver: every worker reports Redis up, every
 * relay's host name resolves, and every relay has at least one live
 * connection whose peer certificate was verified (verification on and
 * passed, or a pin matched). 0 otherwise,
 * with *why (when why is non-NULL) set to a constant reason.
 */
int metrics_ready(const struct metrics *m, const char **why);
/* The same, with a reason that names the worker or relay, into buf. */
int metrics_ready_explain(const struct metrics *m, char *buf, size_t len);

/*
 * Write the Prometheus text exposition (format 0.0.4) of everything to
 * out; per-connection series only when per_connection is non-zero. Safe
 * while the workers run. 0, or -1 on a write error.
 */
int metrics_render(const struct metrics *m, int per_connection, FILE *out);

/*
 * Serve GET /metrics, /healthz and /readyz on host:port (a numeric IPv4 or
 * IPv6 address; port 0 picks a free port) with libmicrohttpd, driven by the
 * caller's loop (no thread: the master forks, and fork and threads do not
 * mix): poll metrics_http_fd() for input, at most metrics_http_timeout_ms()
 * (-1: no deadline), then call metrics_http_run(). It only reads m. NULL
 * with err written when the address is bad or cannot be bound.
 *
 * Fork note: a worker forked after this inherits the listening socket and
 * any scrape connection open at that instant (fork copies descriptors, not
 * the thread). A scraper would then wait for its response's EOF until the
 * worker exits, and the port would outlive the master. A worker should
 * close what it inherited right after fork, e.g. close_range(3, ~0U, 0)
 * before opening its own descriptors.
 */
struct metrics_http *metrics_http_start(struct metrics *m, const char *host, unsigned port,
                                        int per_connection, char *err, size_t errlen);
int metrics_http_fd(const struct metrics_http *h);
void metrics_http_run(struct metrics_http *h);
int metrics_http_timeout_ms(const struct metrics_http *h);
/* The port actually bound (useful after port 0). */
unsigned metrics_http_port(const struct metrics_http *h);
/* Closes the socket and every scrape connection. NULL is fine. */
void metrics_http_stop(struct metrics_http *h);

#endif
