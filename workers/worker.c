/*
 * worker: one worker process of `ringmail run`. It owns an io_uring loop,
 * its Redis consumer (queue), and one pool of persistent connections per
 * relay, and turns stream entries into deliveries and outcomes:
 *
 *   entry -> job_parse -> (redelivered? read its state record)
 *         -> "data-sent" (confirmed before the transaction starts) -> pool
 *         -> per-recipient outcome -> one atomic write: ack / retry / dead,
 *            with one events entry per recipient.
 *
 * A crash between the final dot and the ack is thus always visible on
 * redelivery: "data-sent" means the message may have arrived, so it is
 * resent with the same Message-ID and counted. (The record is deleted with
 * the outcome; "done", "retry" and "dead" records, written by versions
 * before that, still mean only ack.)
 */
#include "worker.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cli_util.h"
#include "config.h"
#include "job.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "pool.h"
#include "queue.h"
#include "smtp_auth.h"
#include "tls.h"
#include "worker_job.h"
#include "worker_resolve.h"

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static char consumer_prefix[128];
static struct metrics *shared_metrics;

void worker_set_metrics(struct metrics *m)
{
    shared_metrics = m;
}

void worker_set_consumer_prefix(const char *prefix)
{
    snprintf(consumer_prefix, sizeof(consumer_prefix), "%s", prefix);
}

static int setup_relays(struct worker *w, char *err, size_t errlen)
{
    const struct config *cfg = w->cfg;
    size_t i;

    w->nrelays = cfg->nrelays;
    w->relays = calloc(cfg->nrelays, sizeof(*w->relays));
    w->relay_names = calloc(cfg->nrelays, sizeof(*w->relay_names));
    if (!w->relays || !w->relay_names) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (i = 0; i < cfg->nrelays; i++) {
        const struct config_relay *r = &cfg->relays[i];
        struct worker_relay *wr = &w->relays[i];
        struct tls_policy pol;
        struct pool_config pc;
        char e[TLS_ERRBUF_MAX];
        int numeric;

        w->relay_names[i] = r->name;
        config_relay_tls_policy(r, &pol);
        wr->tls = tls_ctx_new(&pol, e, sizeof(e));
        if (!wr->tls) {
            snprintf(err, errlen, "relay %s: %s", r->name, e);
            return -1;
        }
        if (tls_ctx_insecure(wr->tls))
            log_always(LOG_WARN, "tls_verify_disabled", "relay", r->name, "detail",
                       "insecure_no_verify is set and no pin: connections to this relay are "
                       "encrypted but not authenticated",
                       NULL);
        if (r->username) {
            char pw[SMTP_AUTH_FIELD_MAX + 1];
            const char *ae;
            int rc;
            if (config_secret_load(r->password_file, SMTP_AUTH_FIELD_MAX, pw, err, errlen) != 0)
                return -1;
            rc = smtp_auth_encode(r->username, pw, &wr->creds, &ae);
            explicit_bzero(pw, sizeof(pw));
            if (rc != 0) {
                snprintf(err, errlen, "relay %s: %s", r->name, ae);
                return -1;
            }
        }
        config_relay_pool_config(cfg, r, &pc);
        /* A name is looked up off the loop (worker_resolve.c); the pool
         * waits for it. One that does not resolve defers that relay's
         * jobs and leaves the worker running. */
        numeric = worker_resolve_numeric(r->host, r->port, &pc.addr, &pc.addrlen) == 0;
        if (!numeric)
            pc.addrlen = 0;
        pc.name = r->name;
        pc.tls = wr->tls;
        pc.metrics = w->mw;
        pc.metrics_relay = (unsigned)i;
        pc.smtp.ehlo_name = cfg->ehlo_name;
        pc.smtp.tls_mode =
            r->tls == CONFIG_TLS_IMPLICIT ? SMTP_CLIENT_IMPLICIT_TLS : SMTP_CLIENT_STARTTLS;
        pc.smtp.auth_plain_b64 = wr->creds.plain_b64;
        pc.smtp.auth_user_b64 = wr->creds.user_b64;
        pc.smtp.auth_pass_b64 = wr->creds.pass_b64;
        wr->pool = pool_new(w->loop, &pc, e, sizeof(e));
        if (!wr->pool) {
            snprintf(err, errlen, "relay %s: %s", r->name, e);
            return -1;
        }
        metrics_set_relay_resolved(w->mw, (unsigned)i, 1);
        if (!numeric && !(wr->resolve = worker_resolve_start(w->loop, wr->pool, w->mw, (unsigned)i,
                                                             r->name, r->host, r->port))) {
            snprintf(err, errlen, "relay %s: out of memory", r->name);
            return -1;
        }
        /* Room for every connection to carry a full burst (pipeline_depth)
         * while as many again wait on Redis (data-sent, outcomes). */
        w->max_inflight +=
            pc.connections * (2 * (pc.smtp.pipeline_depth > 1 ? pc.smtp.pipeline_depth : 1) + 2);
    }
    return 0;
}

static int setup_queue(struct worker *w, char *err, size_t errlen)
{
    const struct config_redis *r = &w->cfg->redis;
    struct queue_config qc;
    static const struct queue_callbacks cb = {worker_on_entries, worker_on_queue_state};
    char pw[CONFIG_REDIS_PASSWORD_MAX + 1];

    memset(&qc, 0, sizeof(qc));
    qc.host = r->host;
    qc.port = r->port;
    qc.unix_path = r->unix_path;
    qc.db = r->db;
    qc.user = r->user;
    qc.password = r->password;
    if (r->password_file) {
        if (config_secret_load(r->password_file, CONFIG_REDIS_PASSWORD_MAX, pw, err, errlen) != 0)
            return -1;
        qc.password = pw;
    }
    qc.stream = r->stream;
    qc.group = r->group;
    qc.events = r->events;
    qc.dead = r->dead;
    qc.retry = r->retry;
    qc.state_prefix = r->state_prefix;
    snprintf(w->consumer, sizeof(w->consumer), "%s:worker-%u",
             consumer_prefix[0] ? consumer_prefix : w->cfg->ehlo_name, w->index);
    qc.consumer = w->consumer;
    qc.events_maxlen = r->events_maxlen;
    qc.dead_maxlen = r->dead_maxlen;
    qc.batch = r->batch;
    qc.block_ms = r->block_ms;
    qc.claim_min_idle_ms = r->claim_min_idle_ms;
    qc.claim_interval_ms = r->claim_interval_ms;
    qc.command_timeout_ms = r->command_timeout_ms;
    qc.state_ttl = r->state_ttl;
    w->q = queue_new(w->loop, &qc, &cb, w, err, errlen);
    explicit_bzero(pw, sizeof(pw));
    return w->q ? 0 : -1;
}

static void on_queue_lengths(void *arg, int ok, const struct queue_lengths *len)
{
    (void)arg;
    if (ok && shared_metrics)
        metrics_set_queue(shared_metrics, len->stream > 0 ? (uint64_t)len->stream : 0,
                          len->pending > 0 ? (uint64_t)len->pending : 0,
                          len->retry > 0 ? (uint64_t)len->retry : 0,
                          len->dead > 0 ? (uint64_t)len->dead : 0);
}

/* Worker 0 reads the Redis-side lengths for the queue gauges. */
static void on_stats_timer(void *ctx)
{
    struct worker *w = ctx;
    loop_timer_arm(w->loop, &w->stats_timer, 5000);
    queue_stats(w->q, on_queue_lengths, w);
}

/* Ask for as many entries as there is room for. */
void worker_refill(struct worker *w)
{
    if (w->stopping)
        return;
    unsigned room = w->inflight < w->max_inflight ? w->max_inflight - w->inflight : 0;
    if (w->stuck_paused)
        room = 0; /* Redis refuses outcomes: every job taken would be stuck too */
    if (!w->avg_job_bytes && room > 16)
        room = 16; /* a first look at how large the jobs are */
    if (room && w->avg_job_bytes > 0) {
        size_t left = w->inflight_bytes < WORKER_INFLIGHT_BYTES
                          ? WORKER_INFLIGHT_BYTES - w->inflight_bytes
                          : 0;
        double fit = (double)left / w->avg_job_bytes;
        /* At least one when nothing is in hand: a job over the budget
         * still goes, alone. */
        if (fit < 1 && !w->inflight)
            fit = 1;
        if (fit < room)
            room = (unsigned)fit;
        fit = (double)WORKER_READ_BYTES / w->avg_job_bytes;
        queue_read_size(w->q, fit < 1 ? 1 : fit < UINT_MAX ? (unsigned)fit : 0);
    }
    queue_fetch(w->q, room);
}

static void begin_stop(struct worker *w)
{
    size_t i;
    char idx[16];
    w->stopping = 1;
    w->stop_deadline = loop_now_ms(w->loop) + (uint64_t)w->cfg->shutdown_timeout * 1000;
    queue_fetch(w->q, 0);
    /* Before the pools fail their queued jobs: those go back to the group
     * at once, for the other engines to deliver now, not after
     * claim_min_idle_ms. */
    queue_drain(w->q);
    for (i = 0; i < w->nrelays; i++)
        pool_drain(w->relays[i].pool);
    snprintf(idx, sizeof(idx), "%u", w->index);
    log_event(LOG_INFO, "worker_draining", "worker", idx, NULL);
}

/* Drained: no job in flight, every outcome confirmed, every connection
 * closed politely. */
static int drained(struct worker *w)
{
    size_t i;
    if (w->inflight || queue_outbox_len(w->q))
        return 0;
    for (i = 0; i < w->nrelays; i++) {
        struct pool_stats ps;
        pool_get_stats(w->relays[i].pool, &ps);
        if (ps.live)
            return 0;
    }
    return 1;
}

static void teardown(struct worker *w)
{
    size_t i;
    if (w->loop)
        loop_timer_disarm(w->loop, &w->stats_timer);
    for (i = 0; i < w->nrelays; i++) {
        worker_resolve_free(w->relays[i].resolve); /* it feeds the pool */
        if (w->relays[i].pool)
            pool_free(w->relays[i].pool);
    }
    queue_free(w->q);
    for (i = 0; i < 50 && loop_slots_busy(w->loop); i++)
        loop_run_once(w->loop, 20);
    loop_destroy(w->loop);
    for (i = 0; i < w->nrelays; i++) {
        if (w->relays[i].tls)
            tls_ctx_free(w->relays[i].tls);
        smtp_auth_free(&w->relays[i].creds);
    }
    free(w->relays);
    free(w->relay_names);
}

int worker_main(const struct config *cfg, unsigned index)
{
    struct worker w;
    struct loop_config lc;
    struct sigaction sa;
    char err[512], idx[16];
    size_t i;
    int rc;

    memset(&w, 0, sizeof(w));
    w.cfg = cfg;
    w.index = index;
    log_set_level(cfg->log_level);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    if (getrandom(&w.rng, sizeof(w.rng), 0) != sizeof(w.rng))
        w.rng = (uint64_t)getpid() * 2654435761u;
    w.rng |= 1;

    w.mw = shared_metrics ? metrics_worker(shared_metrics, index) : NULL;
    memset(&lc, 0, sizeof(lc));
    lc.buf_count = 256;
    for (i = 0; i < cfg->nrelays; i++)
        while (lc.buf_count < cfg->relays[i].connections * 2 && lc.buf_count < 4096)
            lc.buf_count *= 2;
    rc = loop_create(&w.loop, &lc);
    snprintf(idx, sizeof(idx), "%u", index);
    if (rc < 0) {
        log_event(LOG_ERROR, "worker_failed", "worker", idx, "error", strerror(-rc), NULL);
        return 71;
    }
    if (setup_relays(&w, err, sizeof(err)) != 0 || setup_queue(&w, err, sizeof(err)) != 0) {
        log_event(LOG_ERROR, "worker_failed", "worker", idx, "error", err, NULL);
        teardown(&w);
        return 78;
    }
    log_event(LOG_INFO, "worker_ready", "worker", idx, "consumer", w.consumer, NULL);
    loop_timer_init(&w.stats_timer, on_stats_timer, &w);
    if (index == 0 && shared_metrics)
        loop_timer_arm(w.loop, &w.stats_timer, 1000);
    worker_refill(&w);
    while (!w.stopping || !drained(&w)) {
        if (loop_run_once(w.loop, 200) < 0)
            break;
        worker_job_tick(&w);
        if (stop_requested && !w.stopping)
            begin_stop(&w);
        if (w.stopping && loop_now_ms(w.loop) > w.stop_deadline) {
            log_event(LOG_WARN, "worker_drain_timeout", "worker", idx, "detail",
                      "in-flight jobs stay pending in Redis and will be redelivered", NULL);
            break;
        }
    }
    {
        /* Drained means every entry ended in an outcome or a release: one
         * still in hand was lost track of (or is stuck: Redis refused its
         * outcome and its dead letter), and stays pending in Redis. */
        struct queue_counters hq;
        queue_counters(w.q, &hq);
        if (hq.in_hand) {
            char n[24], s[24];
            snprintf(n, sizeof(n), "%zu", hq.in_hand);
            snprintf(s, sizeof(s), "%zu", hq.stuck);
            log_event(LOG_ERROR, "worker_drain_in_hand", "worker", idx, "in_hand", n, "stuck", s,
                      "detail",
                      "entries still in hand at the end of the drain: they stay pending in "
                      "Redis and are redelivered after claim_min_idle_ms",
                      NULL);
        }
    }
    {
        char a[32], b[32], c[32];
        struct queue_counters qc;
        queue_counters(w.q, &qc);
        snprintf(a, sizeof(a), "%llu", (unsigned long long)w.resent_data_sent);
        snprintf(b, sizeof(b), "%llu", (unsigned long long)w.acked_done);
        snprintf(c, sizeof(c), "%llu", (unsigned long long)qc.handed_back);
        log_event(LOG_INFO, "worker_stopped", "worker", idx, "resent_after_data_sent", a,
                  "acked_already_done", b, "handed_back", c, NULL);
    }
    teardown(&w);
    return 0;
}
