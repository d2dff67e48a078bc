/*
 * worker: one worker process of `ringmail run` (see worker.c), and the
 * state its job handling (worker_job.c) shares with it.
 */
#ifndef RINGMAIL_WORKER_H
#define RINGMAIL_WORKER_H

#include <stddef.h>

/* Job bytes a worker holds at most (its reads ask for fewer entries as the
 * average job grows): 64 MiB is 32,000 jobs of 2 KB, but 64 of 1 MB. */
#define WORKER_INFLIGHT_BYTES ((size_t)64 << 20)
/* Job bytes one read asks for, about (queue_read_size): 4 of 1 MB. */
#define WORKER_READ_BYTES ((size_t)4 << 20)
#include <stdint.h>

#include "loop.h"
#include "smtp_auth.h"

struct config;
struct metrics;
struct metrics_worker;
struct loop;
struct pool;
struct queue;
struct tls_ctx;
struct worker_resolve;

struct worker_relay {
    struct tls_ctx *tls;
    struct pool *pool;
    struct smtp_auth_creds creds;
    struct worker_resolve *resolve; /* its host name's lookup; NULL for an address */
};

struct worker {
    const struct config *cfg;
    unsigned index;
    struct loop *loop;
    struct queue *q;
    struct worker_relay *relays;
    const char **relay_names; /* for job_parse: the first is the default */
    size_t nrelays;
    char consumer[256];
    unsigned inflight, max_inflight;
    /* Job bytes in hand, and their running average per job: reads are
     * bounded by bytes too, so 1 MB jobs do not arrive 256 at a time. */
    size_t inflight_bytes;
    double avg_job_bytes;
    int stopping;
    uint64_t stop_deadline;
    uint64_t rng;
    /* Redelivered entries whose state record said data-sent (resent with
     * the same Message-ID) or done (only acknowledged). */
    uint64_t resent_data_sent, acked_done;
    /* worker_job_tick(): the queue's outcome-failure counts already in
     * the metrics, and whether stuck jobs stopped new work. */
    uint64_t outcome_transient_seen, outcome_permanent_seen;
    int stuck_paused;
    struct metrics_worker *mw; /* NULL when metrics are off */
    struct loop_timer stats_timer;
};

/* The process: returns its exit status (0 after a clean drain). */
int worker_main(const struct config *cfg, unsigned index);
/* Consumer names are PREFIX:worker-N (default: the EHLO name); a second
 * engine instance on the same host needs its own prefix. */
void worker_set_consumer_prefix(const char *prefix);
/* The shared-memory counters the master mapped before forking. */
void worker_set_metrics(struct metrics *m);
void worker_refill(struct worker *w);

#endif
