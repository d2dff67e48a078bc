/*
 * queue_fallback: what becomes of an outcome that Redis refuses for good
 * (an ACL NOPERM, WRONGTYPE on the events, retry or dead key, a script
 * error). Dropping it would leave the entry pending with its data-sent
 * record, and XAUTOCLAIM would hand it to somebody who sends the mail
 * again, every claim_min_idle_ms, for as long as the error lasts. So the
 * job is dead-lettered instead, with an entry that needs nothing the
 * refused write needed: no events key (it may be the one refused), a few
 * bounded fields (entry, id, outcome, reason: the Redis error), XADD
 * MAXLEN ~ dead_maxlen. Should Redis refuse that too, the entry stays in
 * hand (the refresh keeps it from looking idle, so nobody takes it) and the
 * dead letter is tried again with backoff until it is taken: counted as
 * stuck, so that the worker stops taking new work when too many are.
 */
#include "queue_internal.h"

#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STUCK_BACKOFF_MIN_MS 1000
#define STUCK_BACKOFF_MAX_MS 60000
/* A Redis error with a script's location can be long; the reason keeps
 * this much of it. */
#define REASON_MAX 300

static const char *outcome_name(enum queue_op_kind k)
{
    return k == QUEUE_OP_ACK ? "delivered" : k == QUEUE_OP_RETRY ? "retry" : "dead";
}

void queue_fallback_dead(struct queue *q, enum queue_op_kind refused, const struct queue_key *key,
                         const char *job_id, const char *detail)
{
    struct queue_args a = {0};
    struct queue_op *op;
    char entry[48], reason[REASON_MAX], *state_key = NULL;
    const char *jid = job_id ? job_id : "";

    snprintf(entry, sizeof(entry), "%llu-%llu", (unsigned long long)key->ms,
             (unsigned long long)key->seq);
    snprintf(reason, sizeof(reason), "outcome write refused by Redis: %s", detail);
    log_event(LOG_ERROR, "outcome_refused", "entry", entry, "id", jid, "outcome",
              outcome_name(refused), "detail", detail, "action",
              "dead-lettered with the Redis error as reason, without events", NULL);
    if (asprintf(&state_key, "%s%s", q->cfg.state_prefix, entry) < 0)
        state_key = NULL;
    if (state_key) {
        queue_arg_str(&a, "EVALSHA");
        queue_arg_str(&a, q->sha[QUEUE_SCRIPT_LAST_DEAD]);
        queue_arg_str(&a, "3");
        queue_arg_str(&a, q->cfg.stream);
        queue_arg_str(&a, state_key);
        queue_arg_str(&a, q->cfg.dead);
        queue_arg_str(&a, q->cfg.group);
        queue_arg_str(&a, entry);
        queue_arg_str(&a, q->deadmax);
        queue_arg_str(&a, q->keep);
        queue_arg_str(&a, "entry");
        queue_arg_str(&a, entry);
        queue_arg_str(&a, "id");
        queue_arg_str(&a, jid);
        queue_arg_str(&a, "outcome");
        queue_arg_str(&a, outcome_name(refused));
        queue_arg_str(&a, "reason");
        queue_arg_str(&a, reason);
    } else {
        a.oom = true;
    }
    /* Unbounded: the entry is already in hand and must end somewhere. */
    op = queue_op_new(q, QUEUE_OP_LAST_DEAD, &a, false);
    free(state_key);
    if (op && !(op->job_id = strdup(jid))) {
        queue_op_free(op);
        op = NULL;
    }
    if (!op) {
        /* Out of memory: let it go; it comes back after claim_min_idle_ms. */
        log_event(LOG_ERROR, "outcome_lost", "entry", entry, "detail",
                  "out of memory for its dead letter: released, redelivered after "
                  "claim_min_idle_ms",
                  NULL);
        queue_entry_finished(q, key);
        return;
    }
    op->key = *key;
    op->has_key = true;
    op->fn.done = NULL;
    queue_op_push(q, op);
}

void queue_fallback_stuck(struct queue *q, struct queue_op *op, const char *detail)
{
    bool was_empty = !q->stuck_head;
    char entry[48];

    if (!op->was_stuck) {
        op->was_stuck = true;
        q->cnt.stuck++;
        snprintf(entry, sizeof(entry), "%llu-%llu", (unsigned long long)op->key.ms,
                 (unsigned long long)op->key.seq);
        log_event(LOG_ERROR, "outcome_stuck", "entry", entry, "id", op->job_id ? op->job_id : "",
                  "detail", detail, "action",
                  "neither its outcome nor its dead letter can be written: kept in hand (not "
                  "sent again), the dead letter is retried with backoff",
                  NULL);
    }
    op->sent = false;
    op->prev = NULL;
    op->next = q->stuck_head;
    q->stuck_head = op;
    if (was_empty) {
        if (q->stuck_backoff_ms < STUCK_BACKOFF_MIN_MS)
            q->stuck_backoff_ms = STUCK_BACKOFF_MIN_MS;
        loop_timer_arm(q->loop, &q->stuck_timer, q->stuck_backoff_ms);
    }
}

void queue_fallback_done(struct queue *q, struct queue_op *op, int status)
{
    char entry[48];

    queue_entry_finished(q, &op->key);
    if (op->was_stuck && q->cnt.stuck)
        q->cnt.stuck--;
    if (status > 0) {
        q->cnt.outcome_dead_letters++;
        snprintf(entry, sizeof(entry), "%llu-%llu", (unsigned long long)op->key.ms,
                 (unsigned long long)op->key.seq);
        log_event(LOG_WARN, "job_dead", "entry", entry, "id", op->job_id ? op->job_id : "",
                  "reason", "outcome write refused by Redis", NULL);
    } else {
        q->cnt.replayed++;
    }
    if (!q->cnt.stuck)
        q->stuck_backoff_ms = 0;
    queue_op_free(op);
}

void queue_fallback_timer(void *ctx)
{
    struct queue *q = ctx;
    struct queue_op *op = q->stuck_head, *next;

    if (q->closing)
        return;
    q->stuck_head = NULL;
    q->stuck_backoff_ms *= 2;
    if (q->stuck_backoff_ms > STUCK_BACKOFF_MAX_MS)
        q->stuck_backoff_ms = STUCK_BACKOFF_MAX_MS;
    for (; op; op = next) {
        next = op->next;
        op->next = NULL;
        queue_op_push(q, op);
    }
}

void queue_fallback_clear(struct queue *q)
{
    while (q->stuck_head) {
        struct queue_op *op = q->stuck_head;
        q->stuck_head = op->next;
        queue_op_free(op);
    }
}
