/*
 * worker_resolve: each relay's host name, looked up without stalling the
 * loop. glibc's getaddrinfo_a runs the blocking lookup in a helper thread;
 * the loop looks at the request on a short timer while it is in flight
 * (no signal, no descriptor: nothing else in the worker changes).
 *
 * A name that does not resolve no longer stops the worker (it exited 78,
 * and the master's restarts stopped delivery to every relay): the relay's
 * pool stays without connections and fails its jobs at once as temporary
 * (4.4.3 with the host and the resolver's error), so they go to the retry
 * schedule; /readyz names the relay; other relays deliver as usual; the
 * lookup is tried again after 1 s, doubling to 60 s, and the first success
 * opens the pool's connections. A resolved name is kept for the life of
 * the worker, as before. (A later change replaces this resolver; it is
 * kept to this file.)
 */
#include "worker_resolve.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "pool.h"
#include "smtp_client.h"

#define POLL_MS        10
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000

struct worker_resolve {
    struct loop *loop;
    struct pool *pool;
    struct metrics_worker *mw;
    unsigned relay;
    const char *name, *host;
    char port[8];
    struct addrinfo hints;
    struct gaicb req;
    int inflight;
    int failed; /* the last lookup failed */
    char last_error[128];
    unsigned backoff_ms;
    struct loop_timer timer; /* polls while in flight; the retry after a failure */
};

int worker_resolve_numeric(const char *host, unsigned port, struct sockaddr_storage *ss,
                           socklen_t *len)
{
    struct addrinfo hints, *res = NULL;
    char p[8];

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    snprintf(p, sizeof(p), "%u", port);
    if (getaddrinfo(host, p, &hints, &res) != 0 || !res)
        return -1;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void failed(struct worker_resolve *r, int rc);

static void start_lookup(struct worker_resolve *r)
{
    struct gaicb *list[1] = {&r->req};
    int rc;

    memset(&r->req, 0, sizeof(r->req));
    r->req.ar_name = r->host;
    r->req.ar_service = r->port;
    r->req.ar_request = &r->hints;
    rc = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL);
    if (rc != 0) { /* not even queued (EAI_AGAIN, EAI_MEMORY): a failed lookup */
        failed(r, rc);
        return;
    }
    r->inflight = 1;
    loop_timer_arm(r->loop, &r->timer, 1);
}

static void failed(struct worker_resolve *r, int rc)
{
    char detail[SMTP_CLIENT_REPLY_TEXT_MAX], retry[16];
    const char *why = gai_strerror(rc);

    snprintf(detail, sizeof(detail), "4.4.3 relay host %s does not resolve: %s", r->host, why);
    pool_set_unresolved(r->pool, detail);
    metrics_set_relay_resolved(r->mw, r->relay, 0);
    r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (r->backoff_ms > BACKOFF_MAX_MS)
        r->backoff_ms = BACKOFF_MAX_MS;
    /* Once per failure, not per retry: the retries say the same. */
    if (!r->failed || strcmp(r->last_error, why)) {
        snprintf(retry, sizeof(retry), "%u", r->backoff_ms);
        log_event(LOG_WARN, "relay_unresolved", "relay", r->name, "host", r->host, "error", why,
                  "retry_ms", retry, "detail",
                  "its jobs are deferred as temporary until the name resolves", NULL);
    }
    snprintf(r->last_error, sizeof(r->last_error), "%s", why);
    r->failed = 1;
    loop_timer_arm(r->loop, &r->timer, r->backoff_ms);
}

static void resolved(struct worker_resolve *r)
{
    const struct addrinfo *ai = r->req.ar_result;

    pool_set_addr(r->pool, (const struct sockaddr_storage *)(const void *)ai->ai_addr,
                  ai->ai_addrlen);
    metrics_set_relay_resolved(r->mw, r->relay, 1);
    if (r->failed)
        log_event(LOG_INFO, "relay_resolved", "relay", r->name, "host", r->host, NULL);
    r->failed = 0;
    freeaddrinfo(r->req.ar_result);
    r->req.ar_result = NULL;
}

/* In flight: has it finished? Otherwise: the retry after a failure. */
static void on_timer(void *ctx)
{
    struct worker_resolve *r = ctx;
    int rc;

    if (!r->inflight) {
        start_lookup(r);
        return;
    }
    rc = gai_error(&r->req);
    if (rc == EAI_INPROGRESS) {
        loop_timer_arm(r->loop, &r->timer, POLL_MS);
        return;
    }
    r->inflight = 0;
    if (rc == 0 && r->req.ar_result) {
        resolved(r);
        return;
    }
    if (r->req.ar_result) {
        freeaddrinfo(r->req.ar_result);
        r->req.ar_result = NULL;
    }
    failed(r, rc ? rc : EAI_FAIL);
}

struct worker_resolve *worker_resolve_start(struct loop *loop, struct pool *pool,
                                            struct metrics_worker *mw, unsigned relay,
                                            const char *name, const char *host, unsigned port)
{
    struct worker_resolve *r = calloc(1, sizeof(*r));

    if (!r)
        return NULL;
    r->loop = loop;
    r->pool = pool;
    r->mw = mw;
    r->relay = relay;
    r->name = name;
    r->host = host;
    snprintf(r->port, sizeof(r->port), "%u", port);
    r->hints.ai_socktype = SOCK_STREAM;
    r->hints.ai_flags = AI_NUMERICSERV;
    loop_timer_init(&r->timer, on_timer, r);
    start_lookup(r);
    return r;
}

void worker_resolve_free(struct worker_resolve *r)
{
    if (!r)
        return;
    loop_timer_disarm(r->loop, &r->timer);
    if (r->inflight && gai_cancel(&r->req) == EAI_NOTCANCELED) {
        /* The helper thread is inside the lookup and will write into
         * r->req: wait for it a little, and if it is still busy leave r
         * to it (the worker is exiting). */
        const struct gaicb *list[1] = {&r->req};
        struct timespec ts = {2, 0};
        gai_suspend(list, 1, &ts);
        if (gai_error(&r->req) == EAI_INPROGRESS)
            return;
    }
    if (r->req.ar_result)
        freeaddrinfo(r->req.ar_result);
    free(r);
}
