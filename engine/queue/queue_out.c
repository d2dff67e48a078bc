/*
 * queue_out: the outbox. Every command on the command connection is
 * formatted once in RESP (redisFormatSdsCommandArgv: binary-safe lengths, no
 * value ever formatted into a command string) and kept in a list in
 * submission order until its reply arrives. At most `pipeline` are in
 * flight; when the connection drops, the sticky ones (outcomes, state
 * records) wait in place and go again, in the same order, after the
 * reconnect; the others (promote, stats) fail to their callback, as running
 * them later would be pointless. A Redis that says "later" (LOADING, BUSY,
 * NOSCRIPT after a SCRIPT FLUSH, ...) fails the connection: the backoff
 * paces the retry and the handshake reloads the scripts.
 */
#include "queue_internal.h"

#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fields one XADD of a script may carry: Lua's unpack() has a stack limit
 * (8000 values in Redis's Lua 5.1). */
#define QUEUE_JOB_FIELDS_MAX   3000
#define QUEUE_EVENT_FIELDS_MAX 1000
#define QUEUE_EVENTS_MAX       4096

/* ---- argument lists ---------------------------------------------------- */

void queue_arg(struct queue_args *a, const char *s, size_t len)
{
    if (a->oom)
        return;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 32;
        const char **v = realloc(a->v, cap * sizeof(*v));
        size_t *l = v ? realloc(a->len, cap * sizeof(*l)) : NULL;
        if (v)
            a->v = v;
        if (!v || !l) {
            a->oom = true;
            return;
        }
        a->len = l;
        a->cap = cap;
    }
    a->v[a->n] = s;
    a->len[a->n] = len;
    a->n++;
}

void queue_arg_str(struct queue_args *a, const char *s)
{
    queue_arg(a, s, strlen(s));
}

static void arg_fields(struct queue_args *a, const struct queue_field *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        queue_arg(a, f[i].name, f[i].name_len);
        queue_arg(a, f[i].value, f[i].value_len);
    }
}

static bool name_eq(const struct queue_field *a, const struct queue_field *b)
{
    return a->name_len == b->name_len && !memcmp(a->name, b->name, a->name_len);
}

/* The job's fields with o->set applied: a set field replaces the first job
 * field of its name (later ones of that name go), or is appended. */
static void arg_merged(struct queue_args *a, const struct queue_outcome *o)
{
    for (size_t i = 0; i < o->njob; i++) {
        const struct queue_field *f = &o->job[i];
        bool seen = false, replaced = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = name_eq(&o->job[j], f);
        for (size_t j = 0; j < o->nset && !replaced; j++) {
            if (name_eq(&o->set[j], f)) {
                replaced = true;
                if (!seen)
                    arg_fields(a, &o->set[j], 1);
            }
        }
        if (!replaced)
            arg_fields(a, f, 1);
    }
    for (size_t j = 0; j < o->nset; j++) {
        bool found = false;
        for (size_t i = 0; i < o->njob && !found; i++)
            found = name_eq(&o->set[j], &o->job[i]);
        if (!found)
            arg_fields(a, &o->set[j], 1);
    }
}

/* A retry-set member: "<len>:<bytes>" for the entry ID, then for each
 * argument from `from` on (the merged fields). See queue_scripts.h. */
static char *member(const struct queue_args *a, size_t from, const char *id, size_t *len)
{
    size_t cap = strlen(id) + 24, n = 0;
    char *m, *p;

    for (size_t i = from; i < a->n; i++)
        cap += a->len[i] + 24;
    if (!(m = p = malloc(cap)))
        return NULL;
    n = (size_t)snprintf(p, cap, "%zu:%s", strlen(id), id);
    for (size_t i = from; i < a->n; i++) {
        n += (size_t)snprintf(m + n, cap - n, "%zu:", a->len[i]);
        memcpy(m + n, a->v[i], a->len[i]);
        n += a->len[i];
    }
    *len = n;
    return m;
}

/* ---- the list ---------------------------------------------------------- */

static void unlink_op(struct queue *q, struct queue_op *op)
{
    if (q->out_next == op)
        q->out_next = op->next;
    if (op->prev)
        op->prev->next = op->next;
    else
        q->out_head = op->next;
    if (op->next)
        op->next->prev = op->prev;
    else
        q->out_tail = op->prev;
    op->prev = op->next = NULL;
    q->out_len--;
    if (op->kind == QUEUE_OP_PROMOTE)
        q->promote_queued = false;
}

void queue_op_free(struct queue_op *op)
{
    redisFreeSdsCommand(op->cmd);
    queue_acks_free_list(op->acks);
    free(op->job_id);
    free(op);
}

static void op_reply(void *priv, redisReply *reply);

void queue_out_pump(struct queue *q)
{
    while (!q->closing && q->out_next && q->out_inflight < q->cfg.pipeline &&
           queue_redis_ready(q->cmd)) {
        struct queue_op *op = q->out_next;
        if (queue_redis_formatted(q->cmd, 0, 0, op->cmd, op->len, op_reply, op))
            break;
        op->sent = true;
        q->out_inflight++;
        q->out_next = op->next;
    }
}

static void finish(struct queue *q, struct queue_op *op, const redisReply *reply);

void queue_out_reset(struct queue *q)
{
    struct queue_op *op = q->out_head, *next;

    /* The NULL callbacks already marked every sent op unsent and failed
     * the sent non-sticky ones; fail the unsent non-sticky ones too: a
     * promote or a stats read is no use after an outage. */
    for (; op; op = next) {
        next = op->next;
        if (!op->sticky)
            finish(q, op, NULL);
    }
    q->out_inflight = 0;
    q->out_next = q->out_head;
}

void queue_out_clear(struct queue *q)
{
    queue_acks_clear(q);
    queue_fallback_clear(q);
    while (q->out_head) {
        struct queue_op *op = q->out_head;
        unlink_op(q, op);
        queue_op_free(op);
    }
}

struct queue_op *queue_op_new(struct queue *q, enum queue_op_kind kind, struct queue_args *a,
                              bool bounded)
{
    struct queue_op *op = NULL;
    int len;

    if (a->oom) {
        errno = ENOMEM;
        goto out;
    }
    if (bounded && q->out_len >= q->cfg.outbox_max) {
        errno = ENOBUFS;
        goto out;
    }
    if (!(op = calloc(1, sizeof(*op)))) {
        errno = ENOMEM;
        goto out;
    }
    /* The sds formatter: the same RESP, without a sprintf per argument
     * (which was a tenth of a worker's CPU at 2 KB messages). */
    len = redisFormatSdsCommandArgv(&op->cmd, (int)a->n, a->v, a->len);
    if (len < 0) {
        free(op);
        op = NULL;
        errno = ENOMEM;
        goto out;
    }
    op->len = (size_t)len;
    op->q = q;
    op->kind = kind;
    op->sticky = kind != QUEUE_OP_PROMOTE && kind != QUEUE_OP_STATS;
out:
    free(a->v);
    free(a->len);
    a->v = NULL;
    a->len = NULL;
    return op;
}

void queue_op_push(struct queue *q, struct queue_op *op)
{
    op->prev = q->out_tail;
    if (q->out_tail)
        q->out_tail->next = op;
    else
        q->out_head = op;
    q->out_tail = op;
    if (!q->out_next)
        q->out_next = op;
    q->out_len++;
    if (op->kind == QUEUE_OP_PROMOTE)
        q->promote_queued = true;
    queue_out_pump(q);
}

bool queue_op_outcome(enum queue_op_kind k)
{
    return k == QUEUE_OP_ACK || k == QUEUE_OP_RETRY || k == QUEUE_OP_DEAD ||
           k == QUEUE_OP_LAST_DEAD;
}

const char *queue_op_name(enum queue_op_kind k)
{
    static const char *const names[] = {
        [QUEUE_OP_ACK] = "ack",
        [QUEUE_OP_RETRY] = "retry",
        [QUEUE_OP_DEAD] = "dead",
        [QUEUE_OP_STATE_SET] = "state-set",
        [QUEUE_OP_STATE_GET] = "state-get",
        [QUEUE_OP_PROMOTE] = "promote",
        [QUEUE_OP_STATS] = "stats",
        [QUEUE_OP_XACK] = "xack",
        [QUEUE_OP_LAST_DEAD] = "last-dead",
    };
    return k > 0 && (size_t)k < sizeof(names) / sizeof(names[0]) ? names[k] : "unknown";
}

/* The reply decides; reply NULL means failed (a non-sticky op lost with
 * the connection, or refused). */
static void finish(struct queue *q, struct queue_op *op, const redisReply *reply)
{
    bool err = !reply || reply->type == REDIS_REPLY_ERROR;
    int status = err ? -1 : reply->type == REDIS_REPLY_INTEGER ? (reply->integer ? 1 : 0) : 1;

    unlink_op(q, op);
    if (op->kind == QUEUE_OP_ACK) { /* a batch: one reply per job */
        /* queue_acks_finish() logs a refusal, and splits the batch. */
        q->in_cb++;
        queue_acks_finish(q, op, reply);
        q->in_cb--;
        queue_op_free(op);
        queue_acks_flush(q);
        return;
    }
    if (reply && err)
        log_event(LOG_ERROR, "queue_write_refused", "op", queue_op_name(op->kind), "detail",
                  reply->str, NULL);
    if (op->kind == QUEUE_OP_LAST_DEAD) {
        if (err)
            queue_fallback_stuck(q, op, reply ? reply->str : "no reply");
        else
            queue_fallback_done(q, op, status);
        return;
    }
    /* A refused outcome keeps its entry in hand: the fallback dead letter
     * finishes it (sent again by XAUTOCLAIM otherwise, for as long as
     * Redis refuses). Sticky ops only get here with a reply. */
    if (op->has_key && err && queue_op_outcome(op->kind))
        queue_fallback_dead(q, op->kind, &op->key, op->job_id, reply ? reply->str : "no reply");
    else if (op->has_key)
        queue_entry_finished(q, &op->key);
    q->in_cb++;
    switch (op->kind) {
    case QUEUE_OP_ACK: /* handled above */
    case QUEUE_OP_LAST_DEAD:
        break;
    case QUEUE_OP_RETRY:
    case QUEUE_OP_DEAD:
        if (status < 0) {
            q->cnt.write_errors++;
            q->cnt.outcome_permanent++;
        } else if (status == 0)
            q->cnt.replayed++;
        else if (op->kind == QUEUE_OP_RETRY)
            q->cnt.retried++;
        else
            q->cnt.dead++;
        /* fall through */
    case QUEUE_OP_STATE_SET:
    case QUEUE_OP_XACK:
        if (op->fn.done)
            op->fn.done(op->arg, status > 0 && op->kind == QUEUE_OP_STATE_SET ? 1 : status);
        break;
    case QUEUE_OP_STATE_GET:
        if (op->fn.state)
            op->fn.state(op->arg, err ? -1 : 1,
                         !err && reply->type == REDIS_REPLY_STRING ? reply->str : NULL);
        break;
    case QUEUE_OP_PROMOTE:
        if (op->fn.promote)
            op->fn.promote(op->arg, err ? -1 : reply->integer);
        break;
    case QUEUE_OP_STATS: {
        struct queue_lengths l = {-1, -1, -1, -1, -1};
        long long *v[] = {&l.stream, &l.pending, &l.retry, &l.dead, &l.events};
        bool ok = !err && reply->type == REDIS_REPLY_ARRAY && reply->elements == 5;
        for (size_t i = 0; ok && i < 5; i++)
            if (reply->element[i]->type == REDIS_REPLY_INTEGER)
                *v[i] = reply->element[i]->integer;
        if (op->fn.stats)
            op->fn.stats(op->arg, ok, &l);
        break;
    }
    }
    q->in_cb--;
    queue_op_free(op);
}

static void op_reply(void *priv, redisReply *reply)
{
    struct queue_op *op = priv;
    struct queue *q = op->q;

    op->sent = false;
    if (q->out_inflight)
        q->out_inflight--;
    if (q->closing) {
        unlink_op(q, op);
        queue_op_free(op);
        return;
    }
    if (!reply || queue_redis_transient(reply)) {
        if (queue_op_outcome(op->kind))
            q->cnt.outcome_transient += op->kind == QUEUE_OP_ACK ? op->nitems : 1;
        if (reply) {
            log_event(LOG_WARN, "queue_write_later", "detail", reply->str, NULL);
            queue_redis_fail(q->cmd, reply->str);
        }
        if (op->sticky)
            return; /* stays in place; queue_out_reset() re-sends from the head */
        reply = NULL;
    }
    finish(q, op, reply);
    queue_out_pump(q);
}

/* ---- the writes -------------------------------------------------------- */

bool queue_outcome_valid(enum queue_op_kind kind, const struct queue_outcome *o,
                         struct queue_key *key)
{
    if (!o || !o->id || queue_key_parse(o->id, strlen(o->id), key) ||
        o->njob + o->nset > QUEUE_JOB_FIELDS_MAX || (o->njob && !o->job) || (o->nset && !o->set) ||
        (kind != QUEUE_OP_ACK && o->njob + o->nset == 0))
        return false;
    if (o->no_event)
        return true;
    if (o->nevent_list) {
        if (!o->event_list || o->nevent_list > QUEUE_EVENTS_MAX)
            return false;
        for (size_t i = 0; i < o->nevent_list; i++)
            if (o->event_list[i].nfields > QUEUE_EVENT_FIELDS_MAX ||
                (o->event_list[i].nfields && !o->event_list[i].fields))
                return false;
        return true;
    }
    return o->nevents <= QUEUE_EVENT_FIELDS_MAX && (!o->nevents || o->events);
}

void queue_arg_events(struct queue_args *a, const struct queue_outcome *o, char (*nums)[24])
{
    size_t n = o->no_event ? 0 : o->nevent_list ? o->nevent_list : 1;

    snprintf(nums[0], 24, "%zu", n);
    queue_arg_str(a, nums[0]);
    for (size_t i = 0; i < n; i++) {
        const struct queue_field *f = o->nevent_list ? o->event_list[i].fields : o->events;
        size_t nf = o->nevent_list ? o->event_list[i].nfields : o->nevents;
        snprintf(nums[i + 1], 24, "%zu", 2 * nf);
        queue_arg_str(a, nums[i + 1]);
        arg_fields(a, f, nf);
    }
}

/* The job id a fallback dead letter carries: o->job_id, else the job's id
 * field; at most QUEUE_JOB_ID_MAX octets. A copy ("" when none), NULL on
 * no memory. */
static char *job_id_of(const struct queue_outcome *o)
{
    const char *v = o->job_id ? o->job_id : "";
    size_t n = o->job_id ? strnlen(o->job_id, QUEUE_JOB_ID_MAX) : 0;
    char *c;

    for (size_t i = 0; !o->job_id && i < o->njob; i++)
        if (o->job[i].name_len == 2 && !memcmp(o->job[i].name, "id", 2)) {
            v = o->job[i].value;
            n = o->job[i].value_len < QUEUE_JOB_ID_MAX ? o->job[i].value_len : QUEUE_JOB_ID_MAX;
        }
    if ((c = malloc(n + 1))) {
        memcpy(c, v, n);
        c[n] = 0;
    }
    return c;
}

static int outcome(struct queue *q, enum queue_op_kind kind, const struct queue_outcome *o,
                   queue_done_fn *done, void *arg_)
{
    static const enum queue_script script[] = {
        [QUEUE_OP_RETRY] = QUEUE_SCRIPT_RETRY,
        [QUEUE_OP_DEAD] = QUEUE_SCRIPT_DEAD,
    };
    struct queue_args a = {0};
    struct queue_op *op;
    struct queue_key key;
    char *state_key = NULL, *blob = NULL, delay[24], ndead[24], (*nums)[24] = NULL;
    size_t blob_len = 0, mark;
    int rc = -1;

    if (!queue_outcome_valid(kind, o, &key)) {
        errno = EINVAL;
        return -1;
    }
    nums = calloc(o->nevent_list + 2, sizeof(*nums));
    if (!nums || asprintf(&state_key, "%s%s", q->cfg.state_prefix, o->id) < 0) {
        free(nums);
        errno = ENOMEM;
        return -1;
    }
    queue_arg_str(&a, "EVALSHA");
    queue_arg_str(&a, q->sha[script[kind]]);
    queue_arg_str(&a, "4");
    queue_arg_str(&a, q->cfg.stream);
    queue_arg_str(&a, q->cfg.events);
    queue_arg_str(&a, state_key);
    if (kind == QUEUE_OP_RETRY)
        queue_arg_str(&a, q->cfg.retry);
    else if (kind == QUEUE_OP_DEAD)
        queue_arg_str(&a, q->cfg.dead);
    queue_arg_str(&a, q->cfg.group);
    queue_arg_str(&a, o->id);
    queue_arg_str(&a, q->maxlen);
    /* ARGV[4]: the dead-letter bound for the dead script (the state TTL,
     * unused, for the retry script). */
    queue_arg_str(&a, kind == QUEUE_OP_DEAD ? q->deadmax : q->ttl);
    queue_arg_str(&a, q->keep);
    if (kind == QUEUE_OP_RETRY) {
        /* The member is built from the merged fields, appended and then
         * cut off again, so that one merge serves both. */
        snprintf(delay, sizeof(delay), "%llu", (unsigned long long)o->delay_ms);
        queue_arg_str(&a, delay);
        mark = a.n;
        arg_merged(&a, o);
        if (!a.oom && !(blob = member(&a, mark, o->id, &blob_len)))
            a.oom = true;
        a.n = mark;
        queue_arg(&a, blob, blob_len);
    } else if (kind == QUEUE_OP_DEAD) {
        queue_arg_str(&a, "0");
        mark = a.n;
        arg_merged(&a, o);
        /* The count goes before the fields: fill in the placeholder. */
        snprintf(ndead, sizeof(ndead), "%zu", a.n - mark);
        if (!a.oom) {
            a.v[mark - 1] = ndead;
            a.len[mark - 1] = strlen(ndead);
        }
    }
    queue_arg_events(&a, o, nums);
    if ((op = queue_op_new(q, kind, &a, true)) && !(op->job_id = job_id_of(o))) {
        queue_op_free(op);
        op = NULL;
        errno = ENOMEM;
    }
    if (op) {
        op->fn.done = done;
        op->arg = arg_;
        op->key = key;
        op->has_key = true;
        queue_op_push(q, op);
        rc = 0;
    }
    free(state_key);
    free(blob);
    free(nums);
    return rc;
}

int queue_retry(struct queue *q, const struct queue_outcome *o, queue_done_fn *done, void *arg_)
{
    return outcome(q, QUEUE_OP_RETRY, o, done, arg_);
}

int queue_dead(struct queue *q, const struct queue_outcome *o, queue_done_fn *done, void *arg_)
{
    return outcome(q, QUEUE_OP_DEAD, o, done, arg_);
}

/* A plain command (SET, GET, XACK, EVALSHA for promote and stats). */
static struct queue_op *simple(struct queue *q, enum queue_op_kind kind, const char *const *argv,
                               size_t argc, bool bounded)
{
    struct queue_args a = {0};

    for (size_t i = 0; i < argc; i++)
        queue_arg_str(&a, argv[i]);
    return queue_op_new(q, kind, &a, bounded);
}

int queue_state_set(struct queue *q, const char *id, const char *state, queue_done_fn *done,
                    void *arg_)
{
    char *key = NULL;
    struct queue_op *op;

    if (!id || !state) {
        errno = EINVAL;
        return -1;
    }
    if (asprintf(&key, "%s%s", q->cfg.state_prefix, id) < 0) {
        errno = ENOMEM;
        return -1;
    }
    op = simple(q, QUEUE_OP_STATE_SET, (const char *const[]){"SET", key, state, "EX", q->ttl}, 5,
                true);
    free(key);
    if (!op)
        return -1;
    op->fn.done = done;
    op->arg = arg_;
    queue_op_push(q, op);
    return 0;
}

int queue_state_get(struct queue *q, const char *id, queue_state_fn *fn, void *arg_)
{
    char *key = NULL;
    struct queue_op *op;

    if (!id) {
        errno = EINVAL;
        return -1;
    }
    if (asprintf(&key, "%s%s", q->cfg.state_prefix, id) < 0) {
        errno = ENOMEM;
        return -1;
    }
    op = simple(q, QUEUE_OP_STATE_GET, (const char *const[]){"GET", key}, 2, true);
    free(key);
    if (!op)
        return -1;
    op->fn.state = fn;
    op->arg = arg_;
    queue_op_push(q, op);
    return 0;
}

void queue_out_xack(struct queue *q, const char *id)
{
    struct queue_op *op = simple(
        q, QUEUE_OP_XACK, (const char *const[]){"XACK", q->cfg.stream, q->cfg.group, id}, 4, false);
    if (op)
        queue_op_push(q, op);
}

int queue_promote_due(struct queue *q, queue_promote_fn *done, void *arg_)
{
    char limit[16];
    struct queue_op *op;

    if (!queue_redis_ready(q->cmd)) {
        errno = ENOTCONN;
        return -1;
    }
    snprintf(limit, sizeof(limit), "%u", q->cfg.promote_batch);
    op = simple(q, QUEUE_OP_PROMOTE,
                (const char *const[]){"EVALSHA", q->sha[QUEUE_SCRIPT_PROMOTE], "3", q->cfg.retry,
                                      q->cfg.stream, q->cfg.dead, limit, q->deadmax},
                8, false);
    if (!op)
        return -1;
    op->fn.promote = done;
    op->arg = arg_;
    queue_op_push(q, op);
    return 0;
}

int queue_stats(struct queue *q, queue_stats_fn *fn, void *arg_)
{
    struct queue_op *op;

    if (!queue_redis_ready(q->cmd)) {
        errno = ENOTCONN;
        return -1;
    }
    op = simple(q, QUEUE_OP_STATS,
                (const char *const[]){"EVALSHA", q->sha[QUEUE_SCRIPT_STATS], "4", q->cfg.stream,
                                      q->cfg.retry, q->cfg.dead, q->cfg.events, q->cfg.group},
                8, true);
    if (!op)
        return -1;
    op->fn.stats = fn;
    op->arg = arg_;
    queue_op_push(q, op);
    return 0;
}
