/*
 * queue_acks: delivered outcomes, written in batches. Each job's ack is one
 * script (XACK first, so a replay is harmless; XDEL; its events; its state
 * record "done"), and running a script costs Redis several microseconds
 * before it does any work: per job that was as much as the work itself.
 * So acks go as one script call for many jobs, self-clocked like Nagle's
 * algorithm: with no batch in the outbox an ack goes at once (a batch of
 * one: no added latency when idle); while one is in the outbox, acks wait
 * and go together as the next batch when it is answered, or when
 * ACK_BATCH_MAX of them wait. A batch is sticky like every write: after a
 * reconnect it is sent again, and the XACK gate makes that harmless.
 *
 * A batch that Redis refuses as a whole (a wrong type, an ACL NOPERM, a
 * script error) is split: each job goes again alone, so that one job's
 * trouble cannot take the others with it (what the refused batch already
 * did, the XACK gate makes a replay). A job refused alone goes to the
 * fallback dead letter (queue_fallback.c).
 */
#include "queue_internal.h"

#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACK_BATCH_MAX 128

/* Copy one job's arguments (id, events), state key and job id out of the
 * caller's memory, which is only lent for the call. */
static struct queue_pending_ack *pending_new(struct queue *q, const struct queue_outcome *o,
                                             const struct queue_key *key)
{
    struct queue_args a = {0};
    struct queue_pending_ack *p = NULL;
    char(*nums)[24] = calloc(o->nevent_list + 2, sizeof(*nums));
    size_t bytes, plen = strlen(q->cfg.state_prefix), idlen = strlen(o->id), i;
    size_t jlen = o->job_id ? strnlen(o->job_id, QUEUE_JOB_ID_MAX) : 0;
    char *d;

    if (!nums)
        return NULL;
    queue_arg_str(&a, o->id);
    queue_arg_events(&a, o, nums);
    if (a.oom)
        goto out;
    bytes = plen + idlen + jlen + 1;
    for (i = 0; i < a.n; i++)
        bytes += a.len[i];
    p = malloc(sizeof(*p) + a.n * (sizeof(*p->v) + sizeof(*p->len)) + bytes + 1);
    if (!p)
        goto out;
    p->next = NULL;
    p->n = a.n;
    p->v = (const char **)(void *)p->data;
    p->len = (size_t *)(void *)(p->data + a.n * sizeof(*p->v));
    d = p->data + a.n * (sizeof(*p->v) + sizeof(*p->len));
    memcpy(d, q->cfg.state_prefix, plen);
    memcpy(d + plen, o->id, idlen);
    p->state_key = d;
    p->state_key_len = plen + idlen;
    d += plen + idlen;
    if (jlen)
        memcpy(d, o->job_id, jlen);
    d[jlen] = 0;
    p->item.job_id = d;
    d += jlen + 1;
    for (i = 0; i < a.n; i++) {
        memcpy(d, a.v[i], a.len[i]);
        p->v[i] = d;
        p->len[i] = a.len[i];
        d += a.len[i];
    }
    p->item.key = *key;
out:
    free(a.v);
    free(a.len);
    free(nums);
    return p;
}

/* One script call for the n acks of the list at head (which it takes on
 * success). NULL on no memory. */
static struct queue_op *batch_op(struct queue *q, struct queue_pending_ack *head, size_t n)
{
    struct queue_args a = {0};
    struct queue_pending_ack *p;
    struct queue_op *op;
    char numkeys[24];
    size_t i;

    snprintf(numkeys, sizeof(numkeys), "%zu", n + 2);
    queue_arg_str(&a, "EVALSHA");
    queue_arg_str(&a, q->sha[QUEUE_SCRIPT_ACK]);
    queue_arg_str(&a, numkeys);
    queue_arg_str(&a, q->cfg.stream);
    queue_arg_str(&a, q->cfg.events);
    for (i = 0, p = head; i < n; i++, p = p->next)
        queue_arg(&a, p->state_key, p->state_key_len);
    queue_arg_str(&a, q->cfg.group);
    queue_arg_str(&a, q->maxlen);
    queue_arg_str(&a, q->ttl);
    queue_arg_str(&a, q->keep);
    for (i = 0, p = head; i < n; i++, p = p->next)
        for (size_t k = 0; k < p->n; k++)
            queue_arg(&a, p->v[k], p->len[k]);
    /* Unbounded: these were accepted when they were queued. */
    op = queue_op_new(q, QUEUE_OP_ACK, &a, false);
    if (op) {
        op->acks = head;
        op->nitems = n;
    }
    return op;
}

void queue_acks_flush(struct queue *q)
{
    struct queue_pending_ack *p, *head = q->acks_head;
    struct queue_op *op;
    size_t n = q->nacks, i;

    if (!n || (q->ack_op && n < ACK_BATCH_MAX))
        return;
    if (n > ACK_BATCH_MAX)
        n = ACK_BATCH_MAX;
    if (!(op = batch_op(q, head, n)))
        return; /* they wait for the next flush */
    for (i = 1, p = head; i < n; i++)
        p = p->next;
    q->acks_head = p->next;
    p->next = NULL;
    if (!q->acks_head)
        q->acks_tail = NULL;
    q->nacks -= n;
    q->ack_op = op;
    queue_op_push(q, op);
}

int queue_ack(struct queue *q, const struct queue_outcome *o, queue_done_fn *done, void *arg)
{
    struct queue_key key;
    struct queue_pending_ack *p;

    if (!queue_outcome_valid(QUEUE_OP_ACK, o, &key)) {
        errno = EINVAL;
        return -1;
    }
    if (q->out_len + q->nacks >= q->cfg.outbox_max) {
        errno = ENOBUFS;
        return -1;
    }
    if (!(p = pending_new(q, o, &key))) {
        errno = ENOMEM;
        return -1;
    }
    p->item.done = done;
    p->item.arg = arg;
    if (q->acks_tail)
        q->acks_tail->next = p;
    else
        q->acks_head = p;
    q->acks_tail = p;
    q->nacks++;
    queue_acks_flush(q);
    return 0;
}

/* A refused batch of several: each job again, alone, in order. */
static bool split(struct queue *q, struct queue_op *op)
{
    struct queue_pending_ack *p = op->acks, *next;
    struct queue_op *one;

    for (; p; p = next) {
        next = p->next;
        p->next = NULL;
        if (!(one = batch_op(q, p, 1))) {
            p->next = next;
            op->acks = p;
            return false; /* the rest are refused with the batch */
        }
        queue_op_push(q, one);
    }
    op->acks = NULL;
    return true;
}

void queue_acks_finish(struct queue *q, struct queue_op *op, const redisReply *reply)
{
    bool err = !reply || reply->type == REDIS_REPLY_ERROR;
    bool shape = !err && reply->type == REDIS_REPLY_ARRAY && reply->elements == op->nitems;
    const char *detail = !shape && !err ? "the ack script's reply does not have one result per job"
                         : reply        ? reply->str
                                        : "no reply";
    size_t i = 0;

    if (q->ack_op == op)
        q->ack_op = NULL;
    if (!shape) {
        log_event(LOG_ERROR, "queue_write_refused", "op", "ack", "detail", detail, NULL);
        if (op->nitems > 1 && split(q, op))
            return;
    }
    for (struct queue_pending_ack *p = op->acks; p; p = p->next, i++) {
        const struct queue_ack_item *it = &p->item;
        int status = -1;
        if (shape && reply->element[i]->type == REDIS_REPLY_INTEGER)
            status = reply->element[i]->integer ? 1 : 0;
        if (status < 0) {
            /* Refused alone: still in hand until its dead letter is in. */
            q->cnt.write_errors++;
            q->cnt.outcome_permanent++;
            queue_fallback_dead(q, QUEUE_OP_ACK, &it->key, it->job_id, detail);
        } else {
            queue_entry_finished(q, &it->key);
            if (status == 0)
                q->cnt.replayed++;
            else
                q->cnt.acked++;
        }
        if (it->done)
            it->done(it->arg, status);
    }
}

void queue_acks_free_list(struct queue_pending_ack *p)
{
    while (p) {
        struct queue_pending_ack *next = p->next;
        free(p);
        p = next;
    }
}

void queue_acks_clear(struct queue *q)
{
    queue_acks_free_list(q->acks_head);
    q->acks_head = q->acks_tail = NULL;
    q->nacks = 0;
    q->ack_op = NULL;
}
