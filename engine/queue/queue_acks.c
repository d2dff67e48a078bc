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
 */
#include "queue_internal.h"

#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACK_BATCH_MAX 128

/* Copy one job's arguments (id, events) and state key out of the
 * caller's memory, which is only lent for the call. */
static struct queue_pending_ack *pending_new(struct queue *q, const struct queue_outcome *o,
                                             const struct queue_key *key)
{
    struct queue_args a = {0};
    struct queue_pending_ack *p = NULL;
    char(*nums)[24] = calloc(o->nevent_list + 2, sizeof(*nums));
    size_t bytes, plen = strlen(q->cfg.state_prefix), idlen = strlen(o->id), i;
    char *d;

    if (!nums)
        return NULL;
    queue_arg_str(&a, o->id);
    queue_arg_events(&a, o, nums);
    if (a.oom)
        goto out;
    bytes = plen + idlen;
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

void queue_acks_flush(struct queue *q)
{
    struct queue_args a = {0};
    struct queue_pending_ack *p;
    struct queue_op *op;
    struct queue_ack_item *items;
    char numkeys[24];
    size_t n = q->nacks, i;

    if (!n || (q->ack_op && n < ACK_BATCH_MAX))
        return;
    if (n > ACK_BATCH_MAX)
        n = ACK_BATCH_MAX;
    items = malloc(n * sizeof(*items));
    if (!items)
        return; /* they wait for the next flush */
    snprintf(numkeys, sizeof(numkeys), "%zu", n + 2);
    queue_arg_str(&a, "EVALSHA");
    queue_arg_str(&a, q->sha[QUEUE_SCRIPT_ACK]);
    queue_arg_str(&a, numkeys);
    queue_arg_str(&a, q->cfg.stream);
    queue_arg_str(&a, q->cfg.events);
    for (i = 0, p = q->acks_head; i < n; i++, p = p->next)
        queue_arg(&a, p->state_key, p->state_key_len);
    queue_arg_str(&a, q->cfg.group);
    queue_arg_str(&a, q->maxlen);
    queue_arg_str(&a, q->ttl);
    queue_arg_str(&a, q->keep);
    for (i = 0, p = q->acks_head; i < n; i++, p = p->next)
        for (size_t k = 0; k < p->n; k++)
            queue_arg(&a, p->v[k], p->len[k]);
    /* Unbounded: these were accepted when they were queued. */
    op = queue_op_new(q, QUEUE_OP_ACK, &a, false);
    if (!op) {
        free(items);
        return;
    }
    for (i = 0; i < n; i++) {
        p = q->acks_head;
        items[i] = p->item;
        q->acks_head = p->next;
        free(p);
    }
    if (!q->acks_head)
        q->acks_tail = NULL;
    q->nacks -= n;
    op->items = items;
    op->nitems = n;
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

void queue_acks_finish(struct queue *q, struct queue_op *op, const redisReply *reply)
{
    bool err = !reply || reply->type == REDIS_REPLY_ERROR;
    bool shape = !err && reply->type == REDIS_REPLY_ARRAY && reply->elements == op->nitems;

    if (q->ack_op == op)
        q->ack_op = NULL;
    if (!err && !shape)
        log_event(LOG_ERROR, "queue_write_refused", "op", "ack", "detail",
                  "the ack script's reply does not have one result per job", NULL);
    for (size_t i = 0; i < op->nitems; i++) {
        const struct queue_ack_item *it = &op->items[i];
        int status = -1;
        if (shape && reply->element[i]->type == REDIS_REPLY_INTEGER)
            status = reply->element[i]->integer ? 1 : 0;
        queue_entry_finished(q, &it->key);
        if (status < 0)
            q->cnt.write_errors++;
        else if (status == 0)
            q->cnt.replayed++;
        else
            q->cnt.acked++;
        if (it->done)
            it->done(it->arg, status);
    }
}

void queue_acks_clear(struct queue *q)
{
    while (q->acks_head) {
        struct queue_pending_ack *p = q->acks_head;
        q->acks_head = p->next;
        free(p);
    }
    q->acks_tail = NULL;
    q->nacks = 0;
    q->ack_op = NULL;
}
