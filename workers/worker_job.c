/*
 * worker_job: one stream entry's way through a worker, from the entries
 * callback of the queue to its single, atomic outcome write.
 */
#include "worker_job.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "job.h"
#include "log.h"
#include "loop.h"
#include "message.h"
#include "metrics.h"
#include "pool.h"
#include "worker.h"

struct wjob {
    struct pool_job pj; /* first: the pool hands it back */
    struct worker *w;
    struct job *job;
    char entry[64];
    struct queue_field *fields; /* the entry as received, for retries and dead letters */
    size_t nfields;
    char *fbuf;
    size_t bytes; /* of the entry, counted in w->inflight_bytes */
    struct smtp_client_rcpt_result *results;
    char *wire;
    int resent;         /* redelivered with state data-sent */
    int oversize;       /* over job.max_fields or job.max_bytes: dead-lettered bounded */
    uint64_t submitted; /* loop clock when handed to the pool */
};

/* Fields of one recipient's events-stream entry. */
#define EVENT_FIELDS 12

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static double unit_random(struct worker *w)
{
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 7;
    w->rng ^= w->rng << 17;
    return (double)(w->rng >> 11) / (double)(1ull << 53);
}

static struct wjob *wjob_new(struct worker *w, const struct queue_entry *e)
{
    struct wjob *wj = calloc(1, sizeof(*wj));
    size_t i, total = 0;
    char *p;
    if (!wj)
        return NULL;
    for (i = 0; i < e->nfields; i++)
        total += e->fields[i].name_len + e->fields[i].value_len + 2;
    wj->fields = calloc(e->nfields ? e->nfields : 1, sizeof(*wj->fields));
    wj->fbuf = malloc(total ? total : 1);
    if (!wj->fields || !wj->fbuf) {
        free(wj->fields);
        free(wj->fbuf);
        free(wj);
        return NULL;
    }
    p = wj->fbuf;
    for (i = 0; i < e->nfields; i++) {
        const struct queue_field *f = &e->fields[i];
        memcpy(p, f->name, f->name_len);
        p[f->name_len] = 0;
        wj->fields[i].name = p;
        wj->fields[i].name_len = f->name_len;
        p += f->name_len + 1;
        memcpy(p, f->value, f->value_len);
        p[f->value_len] = 0;
        wj->fields[i].value = p;
        wj->fields[i].value_len = f->value_len;
        p += f->value_len + 1;
    }
    wj->nfields = e->nfields;
    snprintf(wj->entry, sizeof(wj->entry), "%s", e->id);
    wj->w = w;
    wj->bytes = total;
    w->inflight_bytes += total;
    w->avg_job_bytes =
        w->avg_job_bytes > 0 ? 0.9 * w->avg_job_bytes + 0.1 * (double)total : (double)total;
    return wj;
}

static void wjob_finish(struct wjob *wj)
{
    struct worker *w = wj->w;
    job_free(wj->job);
    free(wj->fields);
    free(wj->fbuf);
    free(wj->results);
    free(wj->wire);
    w->inflight_bytes -= wj->bytes;
    free(wj);
    w->inflight--;
    worker_refill(w);
}

/*
 * A job whose outcome cannot even be queued (no memory, the outbox full):
 * its entry leaves the in-hand set, stays pending in Redis and comes back
 * after claim_min_idle_ms. Never only wjob_finish(): the refresh would keep
 * the entry from ever looking idle, and nobody would deliver it until this
 * worker restarts.
 */
static void wjob_release(struct wjob *wj, const char *what)
{
    char detail[160];
    snprintf(detail, sizeof(detail), "%s: %s; released, redelivered after claim_min_idle_ms", what,
             strerror(errno));
    log_event(LOG_ERROR, "job_released", "entry", wj->entry, "detail", detail, NULL);
    queue_release(wj->w->q, wj->entry);
    wjob_finish(wj);
}

static void on_written(void *arg, int status)
{
    struct wjob *wj = arg;
    if (status < 0) {
        /* The queue took the entry over: it dead-letters it with the Redis
         * error as reason, or keeps it in hand (never sent again) until it
         * can (queue_fallback.c). */
        log_event(LOG_ERROR, "outcome_write_failed", "entry", wj->entry, "id",
                  wj->job ? job_id(wj->job) : "", "detail",
                  "Redis refused the outcome: the job is dead-lettered instead", NULL);
        metrics_redis_error(wj->w->mw);
    }
    wjob_finish(wj);
}

/* ---- outcomes ------------------------------------------------------------ */

/* One events entry per recipient (a job has up to JOB_DEFAULT_MAX_RCPTS). */
struct events {
    struct queue_field *f;
    struct queue_event *e;
    char (*num)[4][24];
    size_t n, cap;
};

static int events_init(struct events *ev, size_t cap)
{
    memset(ev, 0, sizeof(*ev));
    ev->cap = cap ? cap : 1;
    ev->f = calloc(ev->cap * EVENT_FIELDS, sizeof(*ev->f));
    ev->e = calloc(ev->cap, sizeof(*ev->e));
    ev->num = calloc(ev->cap, sizeof(*ev->num));
    return ev->f && ev->e && ev->num ? 0 : -1;
}

static void events_free(struct events *ev)
{
    free(ev->f);
    free(ev->e);
    free(ev->num);
}

static void event_add(struct events *ev, struct wjob *wj, const char *rcpt, const char *status,
                      const struct smtp_client_rcpt_result *r, const char *relay,
                      const struct tls_facts *tf)
{
    struct queue_field *f;
    size_t i = ev->n;
    if (i >= ev->cap)
        return;
    f = &ev->f[i * EVENT_FIELDS];
    snprintf(ev->num[i][0], sizeof(ev->num[i][0]), "%d", r ? r->code : 0);
    snprintf(ev->num[i][1], sizeof(ev->num[i][1]), "%d", wj->job ? job_attempt(wj->job) : 1);
    snprintf(ev->num[i][2], sizeof(ev->num[i][2]), "%llu",
             (unsigned long long)(wj->job ? wall_ms() - (uint64_t)job_enqueued_ms(wj->job) : 0));
    snprintf(ev->num[i][3], sizeof(ev->num[i][3]), "%d", tf ? tf->ktls_tx : 0);
    f[0] = queue_str("id", wj->job ? job_id(wj->job) : wj->entry);
    f[1] = queue_str("rcpt", rcpt);
    f[2] = queue_str("status", status);
    f[3] = queue_str("code", ev->num[i][0]);
    f[4] = queue_str("enhanced", r ? r->enhanced : "");
    f[5] = queue_str("reply", r ? r->reply : "");
    f[6] = queue_str("relay", relay);
    f[7] = queue_str("attempt", ev->num[i][1]);
    f[8] = queue_str("latency_ms", ev->num[i][2]);
    f[9] = queue_str("tls_version", tf ? tf->protocol : "");
    f[10] = queue_str("cipher", tf ? tf->cipher : "");
    f[11] = queue_str("ktls", ev->num[i][3]);
    ev->e[i].fields = f;
    ev->e[i].nfields = EVENT_FIELDS;
    ev->n++;
}

/* Counters for one recipient's outcome; latency only once it is final. */
static void record(struct wjob *wj, const char *status)
{
    struct worker *w = wj->w;
    unsigned relay = wj->job ? (unsigned)job_relay_index(wj->job) : 0;
    enum metrics_status st = !strcmp(status, "delivered") ? METRICS_DELIVERED
                             : !strcmp(status, "bounced") ? METRICS_BOUNCED
                             : !strcmp(status, "dead")    ? METRICS_DEAD
                                                          : METRICS_DEFERRED;
    metrics_message(w->mw, relay, st);
    if (st != METRICS_DEFERRED && wj->job)
        metrics_latency(w->mw, relay,
                        (double)(wall_ms() - (uint64_t)job_enqueued_ms(wj->job)) / 1000.0);
}

/* A job that cannot be delivered at all (malformed, expired, exhausted). */
static void dead_letter(struct wjob *wj, const char *reason, struct events *ev)
{
    struct queue_outcome o;
    struct queue_field set[4], idf[1];
    struct events local;
    char attempt[16], nf[24], nb[24];

    memset(&local, 0, sizeof(local));
    if (!ev) {
        ev = &local;
        if (events_init(ev, 1) != 0) {
            events_free(ev);
            queue_release(wj->w->q, wj->entry);
            wjob_finish(wj);
            return;
        }
        event_add(ev, wj, "", "dead", NULL, wj->job ? job_relay(wj->job) : "", NULL);
        ev->f[5] = queue_str("reply", reason);
        record(wj, "dead");
    }
    snprintf(attempt, sizeof(attempt), "%d", wj->job ? job_attempt(wj->job) : 1);
    set[0] = queue_str("reason", reason);
    set[1] = queue_str("attempt", attempt);
    memset(&o, 0, sizeof(o));
    o.id = wj->entry;
    o.job = wj->fields;
    o.njob = wj->nfields;
    o.set = set;
    o.nset = 2;
    o.event_list = ev->e;
    o.nevent_list = ev->n;
    o.job_id = wj->job ? job_id(wj->job) : NULL;
    if (wj->oversize) {
        /* Not the fields that made it too large (no outcome write could
         * carry 3000 of them): its id when that is short, its size. */
        o.njob = 0;
        for (size_t i = 0; i < wj->nfields; i++)
            if (!strcmp(wj->fields[i].name, "id") && wj->fields[i].value_len <= JOB_ID_MAX) {
                idf[0] = wj->fields[i];
                o.job = idf;
                o.njob = 1;
            }
        snprintf(nf, sizeof(nf), "%zu", wj->nfields);
        snprintf(nb, sizeof(nb), "%zu", wj->bytes - 2 * wj->nfields); /* as job.max_bytes */
        set[2] = queue_str("fields", nf);
        set[3] = queue_str("bytes", nb);
        o.nset = 4;
    }
    log_event(LOG_WARN, "job_dead", "id", wj->job ? job_id(wj->job) : wj->entry, "reason", reason,
              NULL);
    /* The queue has serialised everything it needs when it returns. */
    if (queue_dead(wj->w->q, &o, on_written, wj) != 0)
        wjob_release(wj, "dead letter not queued");
    events_free(&local);
}

/* The job's fields for its next attempt: the temporary recipients only. */
static void retry(struct wjob *wj, const char *const *rcpts, const int *temp, size_t n,
                  struct events *ev)
{
    struct worker *w = wj->w;
    const struct config_retry *rc = &w->cfg->retry;
    struct queue_field *f = calloc(wj->nfields + n + 4, sizeof(*f));
    struct queue_outcome o;
    char attempt[16], enq[24];
    size_t i, k = 0;
    int a = job_attempt(wj->job);
    double delay;

    if (!f) {
        queue_release(w->q, wj->entry);
        wjob_finish(wj);
        return;
    }
    for (i = 0; i < wj->nfields; i++) {
        const char *name = wj->fields[i].name;
        if (strcmp(name, "to") && strcmp(name, "attempt") && strcmp(name, "id") &&
            strcmp(name, "enqueued"))
            f[k++] = wj->fields[i];
    }
    for (i = 0; i < n; i++)
        if (temp[i])
            f[k++] = queue_str("to", rcpts[i]);
    snprintf(attempt, sizeof(attempt), "%d", a + 1);
    snprintf(enq, sizeof(enq), "%lld", job_enqueued_ms(wj->job));
    /* The same id keeps the same Message-ID on every attempt. */
    f[k++] = queue_str("id", job_id(wj->job));
    f[k++] = queue_str("attempt", attempt);
    f[k++] = queue_str("enqueued", enq);
    delay = rc->schedule[(size_t)(a - 1) < rc->nschedule ? (size_t)(a - 1) : rc->nschedule - 1];
    delay *= 1000.0 * (1.0 + rc->jitter * (2.0 * unit_random(w) - 1.0));
    memset(&o, 0, sizeof(o));
    o.id = wj->entry;
    o.job = f;
    o.njob = k;
    o.event_list = ev->e;
    o.nevent_list = ev->n;
    o.delay_ms = delay > 0 ? (uint64_t)delay : 0;
    o.job_id = job_id(wj->job);
    if (queue_retry(w->q, &o, on_written, wj) != 0)
        wjob_release(wj, "retry not queued");
    free(f); /* the queue serialised it */
}

static void on_done(struct pool_job *pj, enum smtp_client_reason reason, const char *detail,
                    const struct tls_facts *tf)
{
    struct wjob *wj = (struct wjob *)pj;
    struct worker *w = wj->w;
    const struct config_retry *rc = &w->cfg->retry;
    struct events ev;
    size_t n, i, ntemp = 0;
    const char *const *rcpts = job_rcpts(wj->job, &n);
    int *temp;
    int maxa = job_max_attempts(wj->job) ? job_max_attempts(wj->job) : (int)rc->max_attempts;
    long long exp = job_expires(wj->job);
    uint64_t now = wall_ms();
    int exhausted, expired;
    struct queue_outcome o;

    if (w->stopping && reason == SMTP_CLIENT_R_LOCAL && !pj->txn.body_started) {
        /* Never tried: hand it back to the group for whoever comes next.
         * Its data-sent record is this process's own (no earlier attempt
         * had one) unless it was resent: then it stays. */
        if (wj->resent)
            queue_release(w->q, wj->entry);
        else
            queue_release_unsent(w->q, wj->entry);
        wjob_finish(wj);
        return;
    }
    (void)detail;
    exhausted = job_attempt(wj->job) >= maxa;
    expired = (exp && (long long)(now / 1000) >= exp) ||
              now > (uint64_t)job_enqueued_ms(wj->job) + (uint64_t)rc->max_age * 1000;
    temp = calloc(n ? n : 1, sizeof(*temp));
    if (!temp || events_init(&ev, n) != 0) {
        /* Out of memory: the entry stays pending and comes back. */
        free(temp);
        events_free(&ev);
        queue_release(w->q, wj->entry);
        wjob_finish(wj);
        return;
    }
    for (i = 0; i < n; i++) {
        const struct smtp_client_rcpt_result *r = &pj->txn.results[i];
        const char *status = "delivered";
        if (r->outcome == SMTP_CLIENT_PERMANENT) {
            status = "bounced";
        } else if (r->outcome != SMTP_CLIENT_DELIVERED) {
            temp[i] = 1;
            ntemp++;
            status = exhausted || expired ? "dead" : "deferred";
        }
        event_add(&ev, wj, rcpts[i], status, r, job_relay(wj->job), tf);
        record(wj, status);
        if (log_enabled(LOG_DEBUG)) {
            char code[16];
            snprintf(code, sizeof(code), "%d", r->code);
            log_event(LOG_DEBUG, "delivery", "id", job_id(wj->job), "rcpt", rcpts[i], "status",
                      status, "code", code, "enhanced", r->enhanced, "reply", r->reply, "relay",
                      job_relay(wj->job), NULL);
        }
    }
    if (reason == SMTP_CLIENT_R_NONE)
        metrics_txn_duration(w->mw, (unsigned)job_relay_index(wj->job),
                             (double)(loop_now_ms(w->loop) - wj->submitted) / 1000.0);
    if (ntemp && (exhausted || expired)) {
        dead_letter(wj, expired ? "expired before delivery" : "delivery attempts exhausted", &ev);
    } else if (ntemp) {
        retry(wj, rcpts, temp, n, &ev);
    } else {
        memset(&o, 0, sizeof(o));
        o.id = wj->entry;
        o.event_list = ev.e;
        o.nevent_list = ev.n;
        o.job_id = job_id(wj->job);
        if (queue_ack(w->q, &o, on_written, wj) != 0)
            wjob_release(wj, "ack not queued");
    }
    free(temp);
    events_free(&ev);
}

static int on_prepare(struct pool_job *pj, enum message_encoding enc)
{
    struct wjob *wj = (struct wjob *)pj;
    size_t len;
    const char *m = job_message(wj->job, &len);
    const struct message_facts *known = job_message_bdat_facts(wj->job);

    free(wj->wire);
    wj->wire = NULL;
    /* For BDAT the wire form differs from the message only by growing
     * (bare CR or LF to CRLF, a final CRLF), so a scan that finds the
     * same length proves them identical: send the message as it is, no
     * copy (most messages ringmail builds itself). A data message was
     * scanned by the parse: no second pass over it. DATA always differs
     * (dot-stuffing, the terminator). */
    if (enc == MESSAGE_ENC_BDAT && known)
        pj->txn.facts = *known;
    if (enc == MESSAGE_ENC_BDAT && (known || message_scan(m, len, enc, &pj->txn.facts) == 0) &&
        pj->txn.facts.wire_len == len) {
        pj->txn.body = m;
        pj->txn.body_len = len;
        return 0;
    }
    {
        /* The error says whose fault it is: the pool bounces a bad message
         * and defers on running out of memory. */
        int rc = message_prepare_alloc(m, len, enc, &wj->wire, &pj->txn.body_len, &pj->txn.facts);
        if (rc != 0)
            return rc;
    }
    pj->txn.body = wj->wire;
    return 0;
}

/* ---- the way in ----------------------------------------------------------- */

static void submit(struct wjob *wj)
{
    struct worker *w = wj->w;
    size_t n;
    wj->pj.txn.from = job_from(wj->job);
    wj->pj.txn.rcpts = job_rcpts(wj->job, &n);
    wj->pj.txn.nrcpt = n;
    wj->results = calloc(n, sizeof(*wj->results));
    if (!wj->results) {
        queue_release(w->q, wj->entry);
        wjob_finish(wj);
        return;
    }
    wj->pj.txn.results = wj->results;
    wj->pj.prepare = on_prepare;
    wj->pj.done = on_done;
    wj->submitted = loop_now_ms(w->loop);
    pool_submit(w->relays[job_relay_index(wj->job)].pool, &wj->pj);
}

static void on_data_sent(void *arg, int status)
{
    struct wjob *wj = arg;
    if (status != 1) {
        log_event(LOG_ERROR, "state_write_failed", "entry", wj->entry, NULL);
        queue_release(wj->w->q, wj->entry);
        wjob_finish(wj);
        return;
    }
    submit(wj);
}

/* Fresh, or redelivered without a record that says otherwise. */
static void claim(struct wjob *wj)
{
    struct worker *w = wj->w;
    const struct config_retry *rc = &w->cfg->retry;
    long long exp = job_expires(wj->job);
    uint64_t now = wall_ms();
    int maxa = job_max_attempts(wj->job) ? job_max_attempts(wj->job) : (int)rc->max_attempts;

    if (exp && (long long)(now / 1000) >= exp) {
        dead_letter(wj, "expired before delivery", NULL);
        return;
    }
    if (job_attempt(wj->job) > maxa) {
        dead_letter(wj, "delivery attempts exhausted", NULL);
        return;
    }
    /* Recorded before anything is sent: a crash after the final dot is then
     * known on redelivery. (No "claimed" record first: the group's pending
     * list already says who holds the entry, and the record would be
     * overwritten by this one in the same round trip.) */
    if (queue_state_set(w->q, wj->entry, "data-sent", on_data_sent, wj) != 0) {
        queue_release(w->q, wj->entry);
        wjob_finish(wj);
    }
}

static void on_state(void *arg, int status, const char *state)
{
    struct wjob *wj = arg;
    struct worker *w = wj->w;
    if (status == 1 && state &&
        (!strcmp(state, "done") || !strcmp(state, "retry") || !strcmp(state, "dead"))) {
        /* Its outcome was written; only the acknowledgement went missing.
         * (Records of older versions: the outcome now deletes the record
         * in the script that acknowledges, so this no longer arises.) */
        struct queue_outcome o;
        w->acked_done++;
        log_event(LOG_INFO, "job_already_done", "id", job_id(wj->job), "state", state, NULL);
        memset(&o, 0, sizeof(o));
        o.id = wj->entry;
        o.no_event = 1;
        o.job_id = job_id(wj->job);
        if (queue_ack(w->q, &o, on_written, wj) != 0)
            wjob_release(wj, "ack not queued");
        return;
    }
    if (status == 1 && state && !strcmp(state, "data-sent")) {
        w->resent_data_sent++;
        wj->resent = 1;
        log_event(LOG_INFO, "job_resent", "id", job_id(wj->job), "message_id",
                  job_message_id(wj->job), "detail",
                  "redelivered after data may have been sent: same Message-ID", NULL);
    }
    claim(wj);
}

void worker_on_entries(void *user, const struct queue_entry *e, size_t n, int from_pending)
{
    struct worker *w = user;
    struct job_limits lim;
    size_t i;

    if (w->stopping || w->stuck_paused) {
        /* A read that was in flight when the drain began, or when stuck
         * outcomes stopped new work: not ours now (pending, unsent: whoever
         * claims it sends it once). */
        for (i = 0; i < n; i++)
            queue_release(w->q, e[i].id);
        return;
    }
    memset(&lim, 0, sizeof(lim));
    lim.relays = w->relay_names;
    lim.nrelays = w->nrelays;
    lim.msgid_domain = w->cfg->ehlo_name;
    lim.now = (long long)(wall_ms() / 1000);
    lim.borrow_data = 1; /* wjob_new's copy lives until wjob_finish() */
    lim.max_fields = w->cfg->job.max_fields;
    lim.max_bytes = w->cfg->job.max_bytes;
    for (i = 0; i < n; i++) {
        struct wjob *wj = wjob_new(w, &e[i]);
        char reason[JOB_REASON_MAX];
        if (!wj) {
            queue_release(w->q, e[i].id);
            continue;
        }
        w->inflight++;
        if (job_check_size(wj->nfields, wj->bytes - 2 * wj->nfields, &lim, reason, sizeof(reason)) <
            0) {
            wj->oversize = 1;
            dead_letter(wj, reason, NULL);
            continue;
        }
        wj->job = job_parse(wj->entry, (const struct job_field *)(const void *)wj->fields,
                            wj->nfields, &lim, reason, sizeof(reason));
        if (!wj->job) {
            dead_letter(wj, reason, NULL);
            continue;
        }
        if (from_pending) {
            if (queue_state_get(w->q, wj->entry, on_state, wj) != 0)
                claim(wj);
        } else {
            claim(wj);
        }
    }
}

void worker_job_tick(struct worker *w)
{
    struct queue_counters k;
    size_t max = w->cfg->redis.outcome_stuck_max;
    int paused;
    char n[24];

    queue_counters(w->q, &k);
    metrics_outcome_failures(w->mw, 0, k.outcome_transient - w->outcome_transient_seen);
    metrics_outcome_failures(w->mw, 1, k.outcome_permanent - w->outcome_permanent_seen);
    w->outcome_transient_seen = k.outcome_transient;
    w->outcome_permanent_seen = k.outcome_permanent;
    metrics_set_outcome_stuck(w->mw, k.stuck);
    paused = max && k.stuck >= max;
    if (paused == w->stuck_paused)
        return;
    w->stuck_paused = paused;
    snprintf(n, sizeof(n), "%zu", k.stuck);
    if (paused)
        log_event(LOG_ERROR, "worker_paused", "stuck", n, "detail",
                  "redis.outcome_stuck_max jobs are in hand whose outcome and dead letter Redis "
                  "refuses: taking no new work until they are written",
                  NULL);
    else
        log_event(LOG_INFO, "worker_resumed", "stuck", n, NULL);
    worker_refill(w);
}

void worker_on_queue_state(void *user, enum queue_state st, const char *detail)
{
    struct worker *w = user;
    char idx[16];
    snprintf(idx, sizeof(idx), "%u", w->index);
    metrics_set_redis_up(w->mw, st == QUEUE_UP);
    if (st != QUEUE_UP)
        metrics_redis_error(w->mw);
    log_event(st == QUEUE_UP ? LOG_INFO : LOG_WARN, "redis_state", "worker", idx, "state",
              queue_state_name(st), "detail", detail ? detail : "", NULL);
}
