/*
 * metrics_internal: the layout of the shared region, shared by metrics.c
 * (the writers and the slot protocol) and metrics_text.c (the reader).
 *
 * Region: [header][relay names][worker block 0][worker block 1]...
 * Worker block: [struct metrics_worker][relay counters x nrelays]
 *               [slots x conns_max][free-slot stack x conns_max]
 * Every part starts 64-byte aligned; the strides live in the header and in
 * each block, so a block finds its parts from its own address.
 */
#ifndef RINGMAIL_METRICS_INTERNAL_H
#define RINGMAIL_METRICS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "metrics.h"

/* Histogram upper bounds, microseconds (le="0.001" ... le="86400"); the
 * counts array has one more cell for +Inf. Stored per bucket, not
 * cumulative: one increment per observation; the renderer accumulates. */
#define METRICS_NBUCKETS 19
extern const uint64_t metrics_bucket_le_us[METRICS_NBUCKETS];
extern const char *const metrics_bucket_le_text[METRICS_NBUCKETS];

struct metrics_hist {
    uint64_t counts[METRICS_NBUCKETS + 1];
    uint64_t sum_us;
};

/* What one worker counts for one relay. */
struct metrics_relay_counters {
    uint64_t messages[METRICS_STATUS_COUNT];
    uint64_t handshakes[SMTP_CLIENT_R_COUNT]; /* [NONE] ok, the others failed by reason */
    uint64_t failures[SMTP_CLIENT_R_COUNT];
    struct metrics_hist latency;
    struct metrics_hist txn;
    uint64_t unresolved; /* 1 while the relay's host name does not resolve here */
};

/* Slot states (under the slot's sequence lock). */
enum metrics_slot_state {
    METRICS_SLOT_FREE = 0,
    METRICS_SLOT_OPEN = 1, /* connecting / before the handshake: counted, not rendered */
    METRICS_SLOT_TLS = 2,  /* facts known: rendered */
};

#define METRICS_SLOT_VERIFY_MAX 64

/*
 * One live connection. seq is the sequence lock over every other field:
 * odd while the worker rewrites them. The three counters change without
 * taking the lock (the worker bumps them per message), but a reader reads
 * them inside its seq window, so a slot reused meanwhile is never mixed up.
 */
struct metrics_slot {
    uint32_t seq;
    uint8_t state;
    uint8_t ktls_tx;
    uint8_t resumed;
    uint8_t verified; /* verification on and passed, or pinned */
    uint16_t relay;
    uint16_t pad;
    uint64_t conn_id;     /* the worker's count of opened connections: the conn label */
    int64_t opened_ns;    /* CLOCK_MONOTONIC, shared by all processes */
    int64_t handshake_us; /* from tls_facts */
    int64_t not_after;    /* Unix seconds; 0: unknown */
    uint64_t messages, bytes, errors;
    char protocol[16];
    char cipher[48];
    char group[48];
    char verify[METRICS_SLOT_VERIFY_MAX];
};

/* A worker's block header; only its worker writes it (and the master, via
 * metrics_worker_reset(), while no worker owns it). */
struct metrics_worker {
    uint32_t index;
    uint32_t nrelays;
    uint32_t conns_max;
    uint32_t redis_up;
    uint64_t redis_errors;
    uint64_t slots_full;
    /* Outcome writes that failed, [0] transient, [1] permanent; jobs stuck
     * in hand now, their outcome and dead letter refused (a gauge). */
    uint64_t outcome_failures[2];
    uint64_t outcome_stuck;
    uint64_t conn_seq; /* ids handed out: the writer's own */
    uint32_t free_top; /* entries on the free stack: the writer's own */
    /* One past the highest slot ever handed out (release store): readers
     * scan no further, so they never fault in the pages of unused slots. */
    uint32_t slots_hw;
    size_t relays_off; /* from this struct's address */
    size_t slots_off;
    size_t free_off;
};

struct metrics_header {
    uint32_t nworkers;
    uint32_t nrelays;
    uint32_t conns_max;
    uint32_t queue_set; /* queue gauges valid (release after the first set) */
    uint64_t restarts;
    uint64_t queue_stream, queue_pending, queue_retry, queue_dead;
    size_t names_off; /* from the region's start */
    size_t workers_off;
    size_t worker_stride;
};

/* The process-local handle (copied into each worker by fork). */
struct metrics {
    void *base;
    size_t size;
    struct metrics_header *hdr;
    char tls_stat_path[256]; /* "": kernel series off */
};

static inline const char *metrics_relay_name(const struct metrics *m, unsigned r)
{
    return (const char *)m->base + m->hdr->names_off + (size_t)r * METRICS_RELAY_NAME_MAX;
}

static inline struct metrics_worker *metrics_block(const struct metrics *m, unsigned i)
{
    return (struct metrics_worker *)((char *)m->base + m->hdr->workers_off +
                                     (size_t)i * m->hdr->worker_stride);
}

static inline struct metrics_relay_counters *metrics_block_relays(const struct metrics_worker *mw)
{
    return (struct metrics_relay_counters *)((char *)mw + mw->relays_off);
}

static inline struct metrics_slot *metrics_block_slots(const struct metrics_worker *mw)
{
    return (struct metrics_slot *)((char *)mw + mw->slots_off);
}

static inline uint32_t metrics_slots_hw(const struct metrics_worker *mw)
{
    return __atomic_load_n(&mw->slots_hw, __ATOMIC_ACQUIRE);
}

static inline uint64_t metrics_load(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/*
 * A consistent copy of slot s into out; 0, or -1 when the slot is free or
 * stayed mid-write through every retry (a worker that died while writing:
 * metrics_worker_reset() repairs it).
 */
int metrics_slot_read(const struct metrics_slot *s, struct metrics_slot *out);

/* Parse a tls_stat file: calls fn for each "Name value" line whose name is
 * [A-Za-z0-9]+. 0, or -1 when the file cannot be opened. */
typedef void metrics_tls_stat_fn(const char *name, uint64_t value, void *user);
int metrics_tls_stat_read(const char *path, metrics_tls_stat_fn *fn, void *user);

#endif
