/*
 * pool: persistent connections of one relay. Each of the configured slots
 * holds at most one connection; a slot whose connection went away reconnects
 * after a backoff (at once after a clean rotation). Jobs queue in FIFO order
 * and go to whichever connection becomes idle first. When more jobs wait
 * than connections are idle, and the relay allows it (PIPELINING, CHUNKING,
 * pipeline_body), a connection takes several back to back in one burst.
 */
#include "pool.h"

#include "log.h"
#include "message.h"
#include "metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum slot_state {
    PS_EMPTY = 0,      /* no connection; maybe a reconnect timer */
    PS_CONNECTING = 1, /* connection on its way to READY */
    PS_IDLE = 2,
    PS_BUSY = 3,
    PS_CLOSING = 4, /* QUIT sent (rotation, drain) */
};

struct pool_slot {
    struct pool *pool;
    unsigned index;
    struct conn *conn;
    enum slot_state st;
    struct pool_job *jobs, *jobs_tail; /* in flight on this connection, oldest first */
    int was_ready;
    int mslot; /* metrics connection slot, -1: none */
    unsigned backoff_ms;
    struct loop_timer retry;
};

struct pool {
    struct loop *loop;
    struct pool_config cfg;
    struct pool_slot *slots;
    struct pool_job *qhead, *qtail;
    unsigned consecutive_fail, policy_fail;
    uint64_t breaker_until;
    int draining, freeing;
    unsigned live, inflight;
    struct pool_stats st;
    enum smtp_client_reason last_reason;
    char last_detail[SMTP_CLIENT_REPLY_TEXT_MAX];
    /* Messages a session took before the relay said "too many messages"
     * (the least seen; 0: never said): connections rotate at it, so later
     * bursts do not run into the limit and move their jobs again. */
    uint64_t learned_max;
    uint64_t rng;
    /* pool_set_unresolved()'s detail while the name does not resolve ("":
     * resolved, or not known yet); send_zc_min left to the address. */
    char unresolved[SMTP_CLIENT_REPLY_TEXT_MAX];
    int zc_auto;
};

static void open_slot(struct pool_slot *s);

/* A relay on this host. The kernel cannot send zero-copy to a local
 * socket: it copies the pinned pages on delivery (skb_copy_ubufs, see the
 * kernel's msg_zerocopy.rst), so SEND_ZC there only moves the copy to the
 * receiver and adds the notifications (measured: the sink's CPU +25% at
 * 1 MB, the sender's no better). */
static int is_loopback(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)a;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)a;
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
               (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127);
    }
    return 0;
}
static void dispatch(struct pool *p);

/* xorshift64: jitter only needs to spread reconnects, not be secret. */
static unsigned jitter(struct pool *p, unsigned ms)
{
    p->rng ^= p->rng << 13;
    p->rng ^= p->rng >> 7;
    p->rng ^= p->rng << 17;
    return ms / 2 + (unsigned)(p->rng % (ms / 2 + 1));
}

static int policy_reason(enum smtp_client_reason r)
{
    switch (r) {
    case SMTP_CLIENT_R_AUTH:
    case SMTP_CLIENT_R_CERT_VERIFY:
    case SMTP_CLIENT_R_PROTOCOL_VERSION:
    case SMTP_CLIENT_R_HANDSHAKE:
    case SMTP_CLIENT_R_NO_STARTTLS:
    case SMTP_CLIENT_R_STARTTLS_REJECTED:
    case SMTP_CLIENT_R_INJECTION:
        return 1;
    default:
        return 0;
    }
}

static int breaker_open(const struct pool *p)
{
    return p->breaker_until && loop_now_ms(p->loop) < p->breaker_until;
}

/* Every recipient of a job that never reached a server gets outcome o,
 * with an enhanced code when one is given. */
static void fail_job_code(struct pool *p, struct pool_job *j, enum smtp_client_outcome o,
                          enum smtp_client_reason reason, const char *enhanced, const char *detail)
{
    size_t i;
    for (i = 0; i < j->txn.nrcpt; i++) {
        struct smtp_client_rcpt_result *r = &j->txn.results[i];
        memset(r, 0, sizeof(*r));
        r->outcome = o;
        r->reason = reason;
        snprintf(r->enhanced, sizeof(r->enhanced), "%s", enhanced ? enhanced : "");
        snprintf(r->reply, sizeof(r->reply), "%s", detail ? detail : "");
    }
    p->st.jobs_done++;
    j->done(j, reason, detail, NULL);
}

static void fail_job(struct pool *p, struct pool_job *j, enum smtp_client_outcome o,
                     enum smtp_client_reason reason, const char *detail)
{
    fail_job_code(p, j, o, reason, NULL, detail);
}

/* The body could not be prepared (rc from the job's prepare). Only the
 * message's own faults are permanent; running out of memory is ours and
 * passes, so it is temporary (a bounce for it would lose a good message). */
static void prepare_failed(struct pool *p, struct pool_job *j, int rc)
{
    char detail[SMTP_CLIENT_REPLY_TEXT_MAX];
    switch (-rc) {
    case MESSAGE_E_LINE_TOO_LONG:
    case MESSAGE_E_NUL:
    case MESSAGE_E_EMPTY:
    case MESSAGE_E_BAD_WIRE:
        snprintf(detail, sizeof(detail), "bad message: %s", message_strerror(-rc));
        fail_job_code(p, j, SMTP_CLIENT_PERMANENT, SMTP_CLIENT_R_NONE, "5.6.0", detail);
        return;
    default:
        snprintf(detail, sizeof(detail), "local error: %s while preparing the message",
                 -rc == MESSAGE_E_NOMEM ? "out of memory" : message_strerror(-rc));
        fail_job_code(p, j, SMTP_CLIENT_TEMPORARY, SMTP_CLIENT_R_LOCAL, "4.3.0", detail);
        return;
    }
}

/*
 * A job the server refused for the session, not for itself (too many
 * messages, or a 421, to its MAIL): nothing of it was accepted, so it goes
 * back to the head of the queue for another connection, without counting
 * as a delivery attempt (its done() is not called). 0 when requeued; -1
 * when it must end now, as temporary with the server's reply already in
 * its results: it was moved POOL_RETIRE_MAX - 1 times already, or the pool
 * is closing and would never send it.
 */
static int requeue(struct pool *p, struct pool_job *j)
{
    if (!j->txn.retry_elsewhere || ++j->retired >= POOL_RETIRE_MAX || p->draining || p->freeing)
        return -1;
    j->next = p->qhead;
    p->qhead = j;
    if (!p->qtail)
        p->qtail = j;
    p->st.queued++;
    p->st.requeued++;
    return 0;
}

/* The job at the head of the queue, taken off it; NULL when none waits. */
static struct pool_job *pop_queued(struct pool *p)
{
    struct pool_job *j = p->qhead;
    if (!j)
        return NULL;
    p->qhead = j->next;
    if (!p->qhead)
        p->qtail = NULL;
    p->st.queued--;
    return j;
}

static void fail_queued(struct pool *p, enum smtp_client_reason reason, const char *detail)
{
    struct pool_job *j;
    while ((j = pop_queued(p)))
        fail_job(p, j, SMTP_CLIENT_TEMPORARY, reason, detail);
}

static int live_ready(const struct pool *p)
{
    unsigned i;
    for (i = 0; i < p->cfg.connections; i++)
        if (p->slots[i].st == PS_IDLE || p->slots[i].st == PS_BUSY)
            return 1;
    return 0;
}

static int needs_rotation(const struct pool *p, const struct pool_slot *s)
{
    struct conn_stats cs;
    conn_stats(s->conn, &cs);
    if (conn_key_stale(s->conn))
        return 1;
    if (p->cfg.max_messages_per_conn && cs.messages >= p->cfg.max_messages_per_conn)
        return 1;
    if (p->learned_max && cs.messages >= p->learned_max)
        return 1;
    if (p->cfg.max_bytes_per_conn && cs.bytes_sent >= p->cfg.max_bytes_per_conn)
        return 1;
    if (p->cfg.max_age_ms && loop_now_ms(p->loop) - cs.opened_ms >= p->cfg.max_age_ms)
        return 1;
    return 0;
}

/* ---- connection callbacks --------------------------------------------- */

static void on_ready(struct conn *c, void *user)
{
    struct pool_slot *s = user;
    struct pool *p = s->pool;
    if (s->st == PS_CLOSING)
        return;
    if (!s->was_ready) {
        s->was_ready = 1;
        s->backoff_ms = 0;
        p->st.handshakes++;
        metrics_conn_tls(p->cfg.metrics, s->mslot, conn_tls_facts(c));
        p->consecutive_fail = 0;
        p->policy_fail = 0;
    }
    if (s->st == PS_BUSY)
        return; /* a NOOP's READY while a job is still being handed over */
    if (p->draining || needs_rotation(p, s)) {
        if (!p->draining)
            p->st.rotations++;
        s->st = PS_CLOSING;
        conn_quit(s->conn);
        return;
    }
    s->st = PS_IDLE;
    dispatch(p);
}

/* Take j off its slot's list of jobs in flight. */
static void slot_unlink(struct pool_slot *s, struct pool_job *j)
{
    struct pool_job **pp = &s->jobs, *prev = NULL;
    while (*pp && *pp != j) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return;
    *pp = j->next;
    if (s->jobs_tail == j)
        s->jobs_tail = prev;
    j->next = NULL;
}

static void on_txn_done(struct conn *c, struct smtp_client_txn *txn, void *user)
{
    struct pool_slot *s = user;
    struct pool *p = s->pool;
    /* The oldest, except a local refusal, which finishes at once. */
    struct pool_job *j = (struct pool_job *)((char *)txn - offsetof(struct pool_job, txn));
    slot_unlink(s, j);
    if (!s->jobs && s->st == PS_BUSY)
        s->st = p->draining ? PS_CLOSING : PS_IDLE; /* draining: its QUIT follows */
    p->inflight--;
    if (txn->delivered)
        metrics_conn_message(p->cfg.metrics, s->mslot, txn->body_len);
    if (txn->retry_elsewhere) {
        /* The server's session limit: the connection ends with QUIT (the
         * client sends it once the burst's replies are in) and is replaced
         * at once; the job goes to the next connection that is idle. */
        struct conn_stats cs;
        conn_stats(c, &cs);
        if (cs.messages && (!p->learned_max || cs.messages < p->learned_max))
            p->learned_max = cs.messages;
        if (s->st != PS_CLOSING) {
            char code[8];
            p->st.retirements++;
            snprintf(code, sizeof(code), "%d", txn->nrcpt ? txn->results[0].code : 0);
            /* Once per connection: the reply that ended its session, for
             * whoever wonders why connections turn over. */
            log_event(LOG_INFO, "connection_retired", "relay", p->cfg.name, "code", code, "reply",
                      txn->nrcpt ? txn->results[0].reply : "", NULL);
        }
        s->st = PS_CLOSING;
        if (requeue(p, j) == 0) {
            dispatch(p);
            return;
        }
    }
    p->st.jobs_done++;
    j->done(j, SMTP_CLIENT_R_NONE, NULL, conn_tls_facts(c));
}

static void on_handshake(struct conn *c, enum smtp_client_reason reason, void *user)
{
    struct pool_slot *s = user;
    (void)c;
    metrics_handshake(s->pool->cfg.metrics, s->pool->cfg.metrics_relay, reason);
}

static void schedule_reconnect(struct pool *p, struct pool_slot *s, int clean)
{
    unsigned ms;
    if (p->draining || p->freeing)
        return;
    if (clean) {
        open_slot(s);
        return;
    }
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : p->cfg.backoff_min_ms;
    if (s->backoff_ms > p->cfg.backoff_max_ms)
        s->backoff_ms = p->cfg.backoff_max_ms;
    ms = jitter(p, s->backoff_ms);
    if (breaker_open(p) && loop_now_ms(p->loop) + ms < p->breaker_until)
        ms = (unsigned)(p->breaker_until - loop_now_ms(p->loop));
    loop_timer_arm(p->loop, &s->retry, ms);
}

static void maybe_free(struct pool *p);

static void on_closed(struct conn *c, enum smtp_client_reason reason, const char *detail,
                      struct smtp_client_txn *txn, void *user)
{
    struct pool_slot *s = user;
    struct pool *p = s->pool;
    struct pool_job *j = s->jobs;
    int was_ready = s->was_ready, clean = reason == SMTP_CLIENT_R_NONE, requeued = 0;

    s->conn = NULL;
    s->jobs = s->jobs_tail = NULL;
    s->st = PS_EMPTY;
    s->was_ready = 0;
    p->live--;
    if (reason != SMTP_CLIENT_R_NONE) {
        metrics_conn_error(p->cfg.metrics, s->mslot);
        if (policy_reason(reason)) /* TLS and STARTTLS policy refusals only */
            metrics_tls_failure(p->cfg.metrics, p->cfg.metrics_relay, reason);
    }
    metrics_conn_close(p->cfg.metrics, s->mslot);
    s->mslot = -1;
    if (reason != SMTP_CLIENT_R_NONE) {
        p->st.failures++;
        p->last_reason = reason;
        snprintf(p->last_detail, sizeof(p->last_detail), "%s", detail ? detail : "");
    }
    /* Every job in flight here: the client filled their pending results
     * as temporary (txn is the oldest of them). */
    (void)txn;
    while (j) {
        struct pool_job *next = j->next;
        j->next = NULL;
        p->inflight--;
        /* A 421 in place of their MAIL: they go to another connection. */
        if (requeue(p, j) == 0) {
            requeued++;
            j = next;
            continue;
        }
        p->st.jobs_done++;
        j->done(j, reason, detail, conn_tls_facts(c));
        j = next;
    }
    if (!was_ready && !clean) {
        p->consecutive_fail++;
        if (policy_reason(reason) && ++p->policy_fail >= p->cfg.breaker_threshold &&
            !breaker_open(p)) {
            p->breaker_until = loop_now_ms(p->loop) + p->cfg.breaker_cooldown_ms;
            p->st.breaker_opens++;
        }
    }
    if (breaker_open(p))
        fail_queued(p, reason, p->last_detail);
    else if (p->consecutive_fail >= p->cfg.fail_queued_after && !live_ready(p))
        fail_queued(p, p->last_reason, p->last_detail);
    if (requeued)
        p->st.retirements++;
    schedule_reconnect(p, s, clean && was_ready);
    if (requeued)
        dispatch(p);
    maybe_free(p);
}

static const struct conn_callbacks callbacks = {on_ready, on_txn_done, on_closed, on_handshake};

/* ---- slots ------------------------------------------------------------- */

static void open_slot(struct pool_slot *s)
{
    struct pool *p = s->pool;
    struct conn_config cc;
    char err[256];

    if (p->draining || p->freeing || s->conn || !p->cfg.addrlen)
        return;
    if (breaker_open(p)) {
        loop_timer_arm(p->loop, &s->retry, (unsigned)(p->breaker_until - loop_now_ms(p->loop)));
        return;
    }
    memset(&cc, 0, sizeof(cc));
    cc.name = p->cfg.name;
    cc.addr = (const struct sockaddr *)&p->cfg.addr;
    cc.addrlen = p->cfg.addrlen;
    cc.smtp = p->cfg.smtp;
    cc.tls = p->cfg.tls;
    cc.timeouts = p->cfg.timeouts;
    cc.keepalive_ms = p->cfg.keepalive_ms;
    cc.send_zc_min = p->cfg.send_zc_min == POOL_SEND_ZC_OFF ? 0 : p->cfg.send_zc_min;
    p->st.connects++;
    s->conn = conn_new(p->loop, &cc, &callbacks, s, err, sizeof(err));
    if (!s->conn) {
        p->consecutive_fail++;
        p->last_reason = SMTP_CLIENT_R_LOCAL;
        snprintf(p->last_detail, sizeof(p->last_detail), "%s", err);
        if (p->consecutive_fail >= p->cfg.fail_queued_after && !live_ready(p))
            fail_queued(p, SMTP_CLIENT_R_LOCAL, err);
        schedule_reconnect(p, s, 0);
        return;
    }
    s->st = PS_CONNECTING;
    p->live++;
    s->mslot = metrics_conn_open(p->cfg.metrics, p->cfg.metrics_relay);
}

static void on_retry(void *ctx)
{
    open_slot(ctx);
}

/* How many jobs an idle slot takes now: its share of the queue, within
 * what the connection accepts back to back and what is left of its
 * message budget before rotation. */
static unsigned slot_share(const struct pool *p, const struct pool_slot *s, unsigned idle)
{
    unsigned want = (unsigned)((p->st.queued + idle - 1) / idle), cap = conn_can_submit(s->conn);
    uint64_t max = p->cfg.max_messages_per_conn;
    if (p->learned_max && (!max || p->learned_max < max))
        max = p->learned_max;
    if (max) {
        struct conn_stats cs;
        conn_stats(s->conn, &cs);
        if (cs.messages < max && max - cs.messages < cap)
            cap = (unsigned)(max - cs.messages);
    }
    return want < cap ? want : cap;
}

static void dispatch(struct pool *p)
{
    unsigned i, idle = 0;
    for (i = 0; i < p->cfg.connections; i++)
        idle += p->slots[i].st == PS_IDLE;
    for (i = 0; i < p->cfg.connections && p->qhead && idle; i++) {
        struct pool_slot *s = &p->slots[i];
        unsigned want, sent = 0;
        if (s->st != PS_IDLE)
            continue;
        want = slot_share(p, s, idle--);
        /* Asked again each time: a local refusal inside conn_submit can run
         * a nested dispatch that fills this connection up. */
        while (sent < want && p->qhead && s->conn && (s->st == PS_IDLE || s->st == PS_BUSY) &&
               conn_can_submit(s->conn)) {
            struct pool_job *j = pop_queued(p);
            const char *err = NULL;
            j->next = NULL;
            {
                int prc = j->prepare(j, conn_body_encoding(s->conn));
                if (prc != 0) {
                    prepare_failed(p, j, prc);
                    continue;
                }
            }
            /* On the slot's list before the submit: a local refusal
             * finishes (on_txn_done) inside it. */
            if (s->jobs_tail)
                s->jobs_tail->next = j;
            else
                s->jobs = j;
            s->jobs_tail = j;
            s->st = PS_BUSY;
            p->inflight++;
            if (conn_submit(s->conn, &j->txn, 1, &err) != 0) {
                slot_unlink(s, j);
                if (!s->jobs)
                    s->st = PS_IDLE;
                p->inflight--;
                fail_job(p, j, SMTP_CLIENT_PERMANENT, SMTP_CLIENT_R_NONE, err);
                continue;
            }
            sent++;
        }
        /* One burst for all of them. */
        if (sent && s->conn)
            conn_flush(s->conn);
    }
}

/* ---- public ------------------------------------------------------------ */

struct pool *pool_new(struct loop *loop, const struct pool_config *cfg, char *err, size_t errlen)
{
    struct pool *p = calloc(1, sizeof(*p));
    unsigned i;

    if (p)
        p->slots = calloc(cfg->connections ? cfg->connections : 16, sizeof(*p->slots));
    if (!p || !p->slots) {
        free(p);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->loop = loop;
    p->cfg = *cfg;
    if (!p->cfg.connections)
        p->cfg.connections = 16;
    if (!p->cfg.keepalive_ms)
        p->cfg.keepalive_ms = 60000;
    p->zc_auto = !p->cfg.send_zc_min;
    if (p->zc_auto && p->cfg.addrlen)
        p->cfg.send_zc_min = is_loopback(&p->cfg.addr) ? POOL_SEND_ZC_OFF : 65536;
    if (!p->cfg.backoff_min_ms)
        p->cfg.backoff_min_ms = 500;
    if (!p->cfg.backoff_max_ms)
        p->cfg.backoff_max_ms = 60000;
    if (!p->cfg.fail_queued_after)
        p->cfg.fail_queued_after = p->cfg.connections;
    if (!p->cfg.breaker_threshold)
        p->cfg.breaker_threshold = 3;
    if (!p->cfg.breaker_cooldown_ms)
        p->cfg.breaker_cooldown_ms = 300000;
    p->rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)p ^ loop_now_ms(loop);
    for (i = 0; i < p->cfg.connections; i++) {
        p->slots[i].pool = p;
        p->slots[i].index = i;
        p->slots[i].mslot = -1;
        loop_timer_init(&p->slots[i].retry, on_retry, &p->slots[i]);
    }
    for (i = 0; i < p->cfg.connections; i++)
        open_slot(&p->slots[i]);
    return p;
}

/* A job for a relay whose name does not resolve: temporary, 4.4.3
 * (RFC 3463: directory server failure), with the resolver's word. */
static void fail_unresolved(struct pool *p, struct pool_job *j)
{
    for (size_t i = 0; i < j->txn.nrcpt; i++) {
        struct smtp_client_rcpt_result *r = &j->txn.results[i];
        memset(r, 0, sizeof(*r));
        r->outcome = SMTP_CLIENT_TEMPORARY;
        r->reason = SMTP_CLIENT_R_CONNECTION;
        snprintf(r->enhanced, sizeof(r->enhanced), "4.4.3");
        snprintf(r->reply, sizeof(r->reply), "%s", p->unresolved);
    }
    p->st.jobs_done++;
    j->done(j, SMTP_CLIENT_R_CONNECTION, p->unresolved, NULL);
}

void pool_set_unresolved(struct pool *p, const char *detail)
{
    struct pool_job *j;
    if (p->cfg.addrlen)
        return; /* resolved once: keep using that address */
    snprintf(p->unresolved, sizeof(p->unresolved), "%s", detail && *detail ? detail : "4.4.3");
    while ((j = pop_queued(p)))
        fail_unresolved(p, j);
}

void pool_set_addr(struct pool *p, const struct sockaddr_storage *addr, socklen_t addrlen)
{
    if (p->cfg.addrlen || !addrlen || addrlen > sizeof(p->cfg.addr))
        return;
    memcpy(&p->cfg.addr, addr, addrlen);
    p->cfg.addrlen = addrlen;
    p->unresolved[0] = 0;
    if (p->zc_auto)
        p->cfg.send_zc_min = is_loopback(&p->cfg.addr) ? POOL_SEND_ZC_OFF : 65536;
    for (unsigned i = 0; i < p->cfg.connections; i++)
        open_slot(&p->slots[i]);
}

void pool_submit(struct pool *p, struct pool_job *job)
{
    if (p->draining || p->freeing) {
        fail_job(p, job, SMTP_CLIENT_TEMPORARY, SMTP_CLIENT_R_LOCAL, "shutting down");
        return;
    }
    if (p->unresolved[0]) {
        fail_unresolved(p, job);
        return;
    }
    if (breaker_open(p)) {
        fail_job(p, job, SMTP_CLIENT_TEMPORARY, p->last_reason, p->last_detail);
        return;
    }
    job->next = NULL;
    job->retired = 0;
    if (p->qtail)
        p->qtail->next = job;
    else
        p->qhead = job;
    p->qtail = job;
    p->st.queued++;
    dispatch(p);
}

void pool_drain(struct pool *p)
{
    unsigned i;
    if (p->draining)
        return;
    p->draining = 1;
    fail_queued(p, SMTP_CLIENT_R_LOCAL, "shutting down");
    for (i = 0; i < p->cfg.connections; i++) {
        struct pool_slot *s = &p->slots[i];
        loop_timer_disarm(p->loop, &s->retry);
        if (s->conn && s->st != PS_CLOSING) {
            if (s->st != PS_BUSY)
                s->st = PS_CLOSING;
            conn_quit(s->conn);
        }
    }
}

int pool_idle(const struct pool *p)
{
    return p->qhead == NULL && p->inflight == 0;
}

static void maybe_free(struct pool *p)
{
    if (p->freeing && p->live == 0) {
        free(p->slots);
        free(p);
    }
}

void pool_free(struct pool *p)
{
    if (!p)
        return;
    pool_drain(p);
    p->freeing = 1;
    maybe_free(p);
}

void pool_get_stats(const struct pool *p, struct pool_stats *out)
{
    unsigned i;
    *out = p->st;
    out->live = p->live;
    out->idle = 0;
    for (i = 0; i < p->cfg.connections; i++)
        out->idle += p->slots[i].st == PS_IDLE;
    out->breaker_open = breaker_open(p);
}

void pool_foreach_conn(const struct pool *p, pool_conn_fn *fn, void *arg)
{
    unsigned i;
    for (i = 0; i < p->cfg.connections; i++) {
        const struct pool_slot *s = &p->slots[i];
        const struct tls_facts *f;
        struct conn_stats cs;
        if (!s->conn || !(f = conn_tls_facts(s->conn)))
            continue;
        conn_stats(s->conn, &cs);
        fn(arg, i, f, &cs);
    }
}
