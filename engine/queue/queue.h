/*
 * queue: the Redis side of one worker process. Jobs are entries of a Redis
 * Stream read through a consumer group; every outcome (delivered, retry
 * later, dead) is one atomic Lua script that acknowledges the entry and
 * writes an events-stream entry; temporary failures wait in a sorted set
 * until a timer moves them back into the stream with a higher attempt
 * count. hiredis does all RESP; its async API runs on our io_uring loop
 * (queue_redis.c).
 *
 * Two connections: a blocking XREADGROUP holds its connection for up to
 * block_ms, and an ack (or the data-sent state record the caller waits for
 * before the final dot) must not queue behind it. So reads (XREADGROUP,
 * XAUTOCLAIM) use one connection and everything else the other.
 *
 * Nothing is lost when Redis goes away: both connections reconnect with
 * backoff (100 ms doubling to 5 s, jittered); writes wait in a bounded
 * outbox and are re-sent in order after the reconnect; reads resume, first
 * taking back this consumer's own pending entries. A write whose reply was
 * lost may have been applied: every outcome script first XACKs and does
 * nothing more when the entry was no longer pending, so a replay adds no
 * second event and no second retry (done status 0).
 *
 * Delivery is at least once. An entry handed to the caller stays "in hand"
 * (a set in this process) until its outcome is confirmed or it is released;
 * an in-hand entry is never delivered twice by this queue (after a reconnect
 * the pending scan skips it), while entries this process never saw (a reply
 * lost with the connection, a dead consumer's entries) come back with
 * from_pending = 1.
 *
 * Not thread-safe; one loop. Callbacks run from the loop.
 */
#ifndef RINGMAIL_QUEUE_H
#define RINGMAIL_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "loop.h"

/* One field of an entry: binary-safe, neither string NUL-terminated for
 * sure. (The same layout as job.h's struct job_field.) */
struct queue_field {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* A field from two C strings. */
static inline struct queue_field queue_str(const char *name, const char *value)
{
    struct queue_field f = {name, strlen(name), value, strlen(value)};
    return f;
}

struct queue_config {
    /* Where: a unix socket path, else host (default "127.0.0.1") and port
     * (default 6379). The host is resolved when connecting (blocking
     * getaddrinfo in hiredis: use an address or a local name). */
    const char *host;
    unsigned port;
    const char *unix_path;
    unsigned db;          /* SELECT when not 0 */
    const char *user;     /* AUTH user password (ACL), or NULL for AUTH password */
    const char *password; /* NULL: no AUTH */
    /* Keys (defaults: ringmail:jobs, ringmail, ringmail:events, ringmail:dead,
     * ringmail:retry, ringmail:state:). In Redis Cluster give them all one
     * hash tag ({rm}:jobs, ...): the scripts touch several in one call. */
    const char *stream;
    const char *group;
    const char *events;
    const char *dead;
    const char *retry;
    const char *state_prefix;
    /* This consumer in the group: unique per host and worker
     * ("hostname:pid:worker-N"). Required. */
    const char *consumer;
    uint64_t events_maxlen;     /* XADD MAXLEN ~ on events; 0: never trim (as config.h) */
    uint64_t dead_maxlen;       /* XADD MAXLEN ~ on the dead-letter stream; 0: never trim */
    unsigned batch;             /* most entries one read asks for (default 256) */
    unsigned block_ms;          /* XREADGROUP BLOCK (default 1000) */
    unsigned claim_min_idle_ms; /* XAUTOCLAIM min-idle (default 600000): above the slowest send */
    unsigned claim_interval_ms; /* how often to look for a dead consumer's entries (default 5000) */
    unsigned command_timeout_ms;  /* connect, and each reply (default 5000); a miss drops the
                                     connection */
    unsigned state_ttl;           /* seconds a state record lives (default 604800) */
    unsigned promote_interval_ms; /* retry set -> stream timer (default 1000; UINT32_MAX: never) */
    unsigned promote_batch;       /* most members one promote moves (default 1000) */
    unsigned pipeline;            /* most writes in flight on the connection (default 256) */
    unsigned outbox_max;          /* most writes waiting or in flight (default 65536) */
    int keep_acked;               /* 0 (default): XDEL a finished entry, so the stream holds
                                     only unfinished jobs; 1: leave it (other groups read it) */
    unsigned backoff_min_ms;      /* reconnect backoff (default 100) */
    unsigned backoff_max_ms;      /* (default 5000) */
};

/* An entry as delivered; every pointer is valid during the callback only. */
struct queue_entry {
    const char *id; /* "1700000000000-0" */
    size_t nfields;
    const struct queue_field *fields;
};

enum queue_state {
    QUEUE_DOWN = 0, /* at least one connection is not ready */
    QUEUE_UP = 1,   /* both connections ready */
};
/* "down", "up"; "unknown" outside the enum. */
const char *queue_state_name(enum queue_state s);

struct queue_callbacks {
    /* A batch of jobs (n >= 1). from_pending: taken back from the group's
     * pending list (this consumer's after a restart or reconnect, or claimed
     * from a dead consumer): check the state record before sending. */
    void (*entries)(void *user, const struct queue_entry *e, size_t n, int from_pending);
    /* Readiness changed; detail says why when down (never a secret). May be NULL. */
    void (*state)(void *user, enum queue_state st, const char *detail);
};

struct queue;

/*
 * Copies the config and starts connecting; never waits for Redis (a Redis
 * that is down is retried with backoff). NULL with err written on a bad
 * config or no memory.
 */
struct queue *queue_new(struct loop *loop, const struct queue_config *cfg,
                        const struct queue_callbacks *cb, void *user, char *err, size_t errlen);
/* Drops both connections. Writes not yet confirmed are dropped without
 * their callbacks (their entries stay pending in Redis and come back):
 * wait for queue_outbox_len() == 0 first to drain. No callback runs after
 * this call. Safe from inside a queue callback (the memory then goes on the
 * next loop iteration). NULL is a no-op. */
void queue_free(struct queue *q);

/*
 * The caller can take up to max more entries now (replacing the previous
 * figure; what is delivered counts against it). The queue keeps one read in
 * flight (two for new entries while the stream has more than a read takes),
 * each asking for min(max, batch) less what the other holds: first its own
 * pending entries (after start and every reconnect), then XAUTOCLAIM when
 * due, else new entries with BLOCK block_ms. 0 stops further reads; a read
 * already in flight may still deliver. Returns 0.
 */
int queue_fetch(struct queue *q, unsigned max);

/*
 * Entries one read asks for at most, below the configured batch (0: the
 * batch). A reply is handed over only once all of it has arrived, so a
 * caller whose jobs are large keeps each read small: the first jobs go
 * out while the next read is on its way, instead of after 64 MB of them.
 */
void queue_read_size(struct queue *q, unsigned n);

/*
 * The result of a write. status 1: applied; 0: the outcome was not applied
 * because the entry was no longer pending (already finished: a replay after
 * a lost reply, or another consumer finished it); -1: Redis refused it (a
 * wrong key type, an ACL NOPERM, a script error: logged). Writes are
 * retried across reconnects until one of these; a "later" reply (LOADING,
 * BUSY, READONLY, OOM, ...) or a lost connection is such a retry, paced by
 * the reconnect backoff, never a -1.
 *
 * An outcome (ack, retry, dead) refused with -1 is not dropped: its entry
 * would stay pending with its data-sent record and be sent again once
 * XAUTOCLAIM takes it back. An ack batch refused as a whole is split and
 * each job written alone, so one bad job cannot take the others with it;
 * a job whose own outcome is refused gets -1, and the queue then
 * dead-letters it with a bounded entry (entry, id, outcome, reason: the
 * Redis error) and no event (queue_fallback.c). Should even that be
 * refused, the entry stays in hand ("stuck": never redelivered by this
 * process, its idle time refreshed) and the dead letter is tried again
 * with backoff (1 s doubling to 60 s) until Redis takes it.
 */
typedef void queue_done_fn(void *arg, int status);

/* One events-stream entry's own fields (a recipient's, say). */
struct queue_event {
    const struct queue_field *fields;
    size_t nfields;
};

/* The outcome of one entry. Limits: job + set 3000 fields, an event 1000,
 * event_list 4096 entries. */
struct queue_outcome {
    const char *id; /* the stream entry ID */
    /* Retry and dead: the entry's fields as received, and fields that replace
     * those of the same name (or are appended): attempt, id, enqueued for a
     * retry (see job.h), reason, attempt for a dead letter. */
    const struct queue_field *job;
    size_t njob;
    const struct queue_field *set;
    size_t nset;
    /* Events-stream entries, each after the two fields the queue writes
     * first: outcome (delivered, retry, dead) and entry (the ID). One entry
     * of events; or, when event_list is given, one entry per element (a
     * recipient each) instead; no_event: none at all (an ack whose outcome
     * was already recorded). */
    const struct queue_field *events;
    size_t nevents;
    const struct queue_event *event_list;
    size_t nevent_list;
    int no_event;
    uint64_t delay_ms; /* retry: due this long after now by Redis's clock */
    /* The job's id field for a dead letter written in place of a refused
     * outcome (NULL: the job's "id" field, else none). At most 200 octets
     * are kept. */
    const char *job_id;
};

/*
 * Outcome writes, each one atomic script (XACK first: nothing happens when
 * the entry is not pending; XDEL unless keep_acked; the state record
 * deleted):
 *   ack:   XADD events (each entry).
 *   retry: ZADD retry (due, member: the job's fields with set applied,
 *          serialised), XADD events.
 *   dead:  XADD dead (the job's fields with set applied), XADD events.
 * The entry leaves the in-hand set when the write is confirmed. done may
 * be NULL. 0 queued; -1 with errno: EINVAL (bad arguments), ENOBUFS (the
 * outbox is full: slow down), ENOMEM.
 */
int queue_ack(struct queue *q, const struct queue_outcome *o, queue_done_fn *done, void *arg);
int queue_retry(struct queue *q, const struct queue_outcome *o, queue_done_fn *done, void *arg);
int queue_dead(struct queue *q, const struct queue_outcome *o, queue_done_fn *done, void *arg);

/* Forget an entry taken but not finished: it stays pending in Redis and
 * comes back after claim_min_idle_ms (XAUTOCLAIM), or, after queue_drain(),
 * at the next XAUTOCLAIM scan of any consumer in the group. 0, or -1 when
 * it was not in hand. */
int queue_release(struct queue *q, const char *id);
/* The same for an entry that never reached a relay and had no state record
 * before this process wrote data-sent: once handed back, that record is
 * deleted too (the next consumer sends it as a first attempt). */
int queue_release_unsent(struct queue *q, const char *id);
/* Shutting down: entries released from now on are handed back to the group
 * at once (XCLAIM ... IDLE, queue_handback.c) instead of waiting
 * claim_min_idle_ms under this consumer's name. Until Redis confirms that,
 * they count in queue_outbox_len(). */
void queue_drain(struct queue *q);

/*
 * State record state_prefix + id = state (EX state_ttl): "data-sent" before
 * the transaction starts; wait for done (status 1) before sending it. Retried across reconnects
 * like the outcomes.
 */
int queue_state_set(struct queue *q, const char *id, const char *state, queue_done_fn *done,
                    void *arg);
/* state: the record ("data-sent"; "done", "retry", "dead" from older versions) or
 * NULL when there is none; status 1 read, -1 refused. Retried across
 * reconnects. The string is valid during the callback only. */
typedef void queue_state_fn(void *arg, int status, const char *state);
int queue_state_get(struct queue *q, const char *id, queue_state_fn *fn, void *arg);

/* Move due members of the retry set into the stream now (the timer does it
 * every promote_interval_ms). Safe on any number of workers and hosts at
 * once. done (may be NULL) gets the number moved, or -1. Not retried: a
 * promote lost with a connection simply runs again. -1 with ENOTCONN while
 * the command connection is down. */
typedef void queue_promote_fn(void *arg, long long moved);
int queue_promote_due(struct queue *q, queue_promote_fn *done, void *arg);

/* Redis-side lengths, read in one atomic script; -1 where unknown (a
 * missing group). Not retried: ok 0 when the connection failed; -1 with
 * ENOTCONN while it is down. */
struct queue_lengths {
    long long stream;  /* XLEN: unfinished jobs (without keep_acked) */
    long long pending; /* XPENDING: delivered, not finished */
    long long retry;   /* ZCARD of the retry set */
    long long dead;    /* XLEN of the dead-letter stream */
    long long events;  /* XLEN of the events stream */
};
typedef void queue_stats_fn(void *arg, int ok, const struct queue_lengths *len);
int queue_stats(struct queue *q, queue_stats_fn *fn, void *arg);

/* This process's own figures, for metrics and tests. */
struct queue_counters {
    enum queue_state state;
    size_t outbox;                           /* writes waiting or in flight */
    size_t in_hand;                          /* entries delivered and not finished */
    uint64_t delivered;                      /* entries handed to the caller */
    uint64_t redelivered;                    /* of those, from_pending */
    uint64_t duplicates;                     /* pending entries skipped because in hand */
    uint64_t acked, retried, dead, replayed; /* replayed: status 0 */
    uint64_t write_errors;                   /* status -1 */
    uint64_t handed_back;                    /* released entries handed back (queue_drain) */
    /* Outcome writes (per job) that failed: transient (a "later" reply, a
     * connection lost with it in flight: re-sent) and permanent (refused:
     * split, dead-lettered or stuck); jobs dead-lettered because their own
     * outcome was refused; jobs stuck in hand now (even that refused). */
    uint64_t outcome_transient, outcome_permanent, outcome_dead_letters;
    size_t stuck;
    uint64_t connects; /* connections that reached ready, both links */
    uint64_t connect_attempts;
    uint64_t timeouts; /* connections dropped for a late reply */
};
void queue_counters(const struct queue *q, struct queue_counters *out);
/* Writes waiting or in flight (the stuck dead letters waiting for their
 * next try are not among them: see queue_stuck()). */
size_t queue_outbox_len(const struct queue *q);
/* Entries in hand whose outcome and dead letter Redis refused (stuck). */
size_t queue_stuck(const struct queue *q);

#endif
