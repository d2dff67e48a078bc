/*
 * queue_internal: what queue.c (life cycle, connections, reads, the in-hand
 * set) and queue_out.c (the outbox: every write, retried across reconnects)
 * share. Nobody else includes it.
 */
#ifndef RINGMAIL_QUEUE_INTERNAL_H
#define RINGMAIL_QUEUE_INTERNAL_H

#include "queue.h"
#include "queue_redis.h"
#include "queue_scripts.h"

#include <stdbool.h>

/* A stream entry ID as numbers: the in-hand set's key. {0, 0} is never a
 * valid entry ID (XADD refuses 0-0), so it marks an empty hash slot. */
struct queue_key {
    uint64_t ms, seq;
};

/* A set of entry IDs: open addressing, linear probing. */
struct queue_keyset {
    struct queue_key *v;
    size_t cap, len;
};

enum queue_op_kind {
    QUEUE_OP_ACK = 1,
    QUEUE_OP_RETRY = 2,
    QUEUE_OP_DEAD = 3,
    QUEUE_OP_STATE_SET = 4,
    QUEUE_OP_STATE_GET = 5,
    QUEUE_OP_PROMOTE = 6,
    QUEUE_OP_STATS = 7,
    QUEUE_OP_XACK = 8,      /* cleanup of a pending entry whose content was deleted */
    QUEUE_OP_LAST_DEAD = 9, /* the bounded dead letter of a job whose outcome was refused */
};

/* The most of a job id a fallback dead letter keeps (job.h's JOB_ID_MAX). */
#define QUEUE_JOB_ID_MAX 200

/* One job of an ack batch: who to tell, and the entry leaving the in-hand set. */
struct queue_ack_item {
    queue_done_fn *done;
    void *arg;
    struct queue_key key;
    const char *job_id; /* into the pending ack's data; "" when none */
};

/* An ack waiting for the batch in flight, then part of it until its reply
 * (a refused batch is split into these): its arguments, copied. */
struct queue_pending_ack {
    struct queue_pending_ack *next;
    struct queue_ack_item item;
    const char *state_key; /* into data */
    size_t state_key_len;
    size_t n;       /* the script arguments of this job: id, events */
    const char **v; /* into data */
    size_t *len;
    char data[];
};

/* Argument lists for redisFormatSdsCommandArgv: pointers, not copies. */
struct queue_args {
    const char **v;
    size_t *len;
    size_t n, cap;
    bool oom;
};
void queue_arg(struct queue_args *a, const char *s, size_t len);
void queue_arg_str(struct queue_args *a, const char *s);

/* A write (or read) on the command connection, formatted once in RESP. The
 * outbox is a list in submission order: a prefix already sent (waiting for
 * replies, in order), then what waits for the connection. */
struct queue_op {
    struct queue_op *prev, *next;
    struct queue *q;
    enum queue_op_kind kind;
    bool sent;
    bool sticky; /* re-sent after a reconnect; otherwise failed to its callback */
    sds cmd;     /* RESP, from redisFormatSdsCommandArgv */
    size_t len;
    union {
        queue_done_fn *done;
        queue_state_fn *state;
        queue_promote_fn *promote;
        queue_stats_fn *stats;
    } fn;
    void *arg;
    struct queue_key key; /* the entry leaving the in-hand set (ack, retry, dead) */
    bool has_key;
    struct queue_pending_ack *acks; /* QUEUE_OP_ACK: the batch's jobs, in ARGV order */
    size_t nitems;
    char *job_id;   /* retry, dead, last-dead: for a fallback dead letter */
    bool was_stuck; /* last-dead: counted in q->cnt.stuck */
};

/* Reads of new entries in flight at once: the next one is on its way
 * while the worker handles a reply (a reply is handed over only whole). */
#define QUEUE_READS_MAX 2

struct queue {
    struct loop *loop;
    struct queue_config cfg; /* strings are our copies */
    struct queue_callbacks cb;
    void *user;
    struct queue_redis *rd;  /* XREADGROUP, XAUTOCLAIM */
    struct queue_redis *cmd; /* everything else */
    enum queue_state state;
    bool closing;             /* queue_free() called: no callback runs any more */
    unsigned in_cb;           /* inside a caller's callback: queue_free() defers */
    struct loop_timer reaper; /* the deferred queue_free() */
    char sha[QUEUE_SCRIPT__COUNT][41];
    char maxlen[24], ttl[16], keep[2];

    /* Reads. */
    unsigned credit;
    unsigned read_max; /* queue_read_size(): entries per read, below batch; 0: batch */
    /* Reads in flight, oldest first, and the entries each asked for (the
     * credit they hold until their reply). Only reads of new entries go
     * two at a time; a pending scan or a claim goes alone. */
    unsigned reads_inflight, asked[QUEUE_READS_MAX];
    bool read_full; /* the last read of new entries got all it asked: more wait */
    bool need_pending, claim_due;
    int read_kind; /* of the reads in flight */
    char pend_cursor[48], claim_cursor[48];
    struct loop_timer claim_timer, promote_timer, refresh_timer;

    /* Entries handed out and not finished; entries finished while a
     * pending scan or claim was in flight (cleared at the next read). */
    struct queue_keyset hand, fin;

    /* The outbox. */
    struct queue_op *out_head, *out_tail, *out_next;
    size_t out_len;
    unsigned out_inflight;
    bool promote_queued;

    /* Acks wait here while a batch of them is in the outbox, then go as the
     * next batch: one script call for many jobs (queue_acks.c). */
    struct queue_pending_ack *acks_head, *acks_tail;
    size_t nacks;
    struct queue_op *ack_op;

    /* Fallback dead letters Redis refused too (their entries stay in
     * hand): tried again when the timer fires, with backoff. */
    struct queue_op *stuck_head;
    struct loop_timer stuck_timer;
    unsigned stuck_backoff_ms;
    char deadmax[24];

    struct queue_counters cnt;
    struct queue_handback *hb; /* after queue_drain(): entries to hand back */
};

/* queue.c */
int queue_key_parse(const char *id, size_t len, struct queue_key *k);
/* An outcome for k was confirmed: it leaves the in-hand set. */
void queue_entry_finished(struct queue *q, const struct queue_key *k);

/* queue_out.c */
void queue_out_pump(struct queue *q);
/* The command connection went down: everything in the outbox waits again. */
void queue_out_reset(struct queue *q);
/* queue_free(): drop every write without its callback. */
void queue_out_clear(struct queue *q);
/* XACK of a pending entry with no content left (internal, sticky). */
void queue_out_xack(struct queue *q, const char *id);
/* Takes the formatted command from the args; NULL on failure (errno). */
struct queue_op *queue_op_new(struct queue *q, enum queue_op_kind kind, struct queue_args *a,
                              bool bounded);
void queue_op_push(struct queue *q, struct queue_op *op);
bool queue_outcome_valid(enum queue_op_kind kind, const struct queue_outcome *o,
                         struct queue_key *key);
/* The events of o in the scripts' layout; nums holds the counts' text
 * (o->nevent_list + 1 entries). */
void queue_arg_events(struct queue_args *a, const struct queue_outcome *o, char (*nums)[24]);

/* True for the outcome writes (ack, retry, dead, last-dead). */
bool queue_op_outcome(enum queue_op_kind kind);
const char *queue_op_name(enum queue_op_kind kind);
void queue_op_free(struct queue_op *op);

/* queue_fallback.c */
/* A single job's outcome (op: retry, dead; or an ack of one, given as its
 * key and job id) was refused with detail: dead-letter it instead. The
 * entry stays in hand until that is confirmed. */
void queue_fallback_dead(struct queue *q, enum queue_op_kind refused, const struct queue_key *key,
                         const char *job_id, const char *detail);
/* The fallback dead letter op was refused too: keep it (and the entry in
 * hand) and try again later. Takes op. */
void queue_fallback_stuck(struct queue *q, struct queue_op *op, const char *detail);
/* The fallback dead letter op was answered (1 or 0). */
void queue_fallback_done(struct queue *q, struct queue_op *op, int status);
void queue_fallback_timer(void *ctx);
/* queue_free(): drop the stuck ones. */
void queue_fallback_clear(struct queue *q);

/* queue_handback.c */
/* queue_drain() was called: released entries go back to the group. */
bool queue_handback_on(const struct queue *q);
/* Hand k back (drop_state: and delete its state record). */
void queue_handback_add(struct queue *q, const struct queue_key *k, bool drop_state);
/* The command connection is up: send what waits. */
void queue_handback_up(struct queue *q);
/* Entries waiting or in flight. */
size_t queue_handback_len(const struct queue *q);
void queue_handback_free(struct queue *q);

/* queue_acks.c */
/* The ack batch in flight finished: the waiting acks go as the next one. */
void queue_acks_flush(struct queue *q);
/* Its reply, job by job; a batch refused as a whole is split. */
void queue_acks_finish(struct queue *q, struct queue_op *op, const redisReply *reply);
/* queue_free(): drop the waiting acks without their callbacks. */
void queue_acks_clear(struct queue *q);
void queue_acks_free_list(struct queue_pending_ack *p);

#endif
