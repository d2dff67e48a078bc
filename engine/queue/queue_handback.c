/*
 * queue_handback: a draining process gives the entries it took but never
 * started back to the group at once, instead of leaving them pending under
 * its own consumer name until claim_min_idle_ms (10 minutes by default).
 * Under a rolling deploy the new pods have new consumer names, so nobody
 * would otherwise take a drained pod's prefetched mail for that long.
 *
 * How: XCLAIM <entry> ... IDLE HANDBACK_IDLE_MS JUSTID, which keeps the
 * entry pending to this consumer but makes it look idle for longer than
 * any engine's claim_min_idle_ms (a 32-bit count of milliseconds: the
 * configuration cannot set more), so the next XAUTOCLAIM scan of any
 * consumer in the group takes it (every claim_interval_ms, queue.c).
 * JUSTID leaves the delivery count alone.
 *
 * Why not a re-enqueue (XADD a copy, XACK + XDEL the old): the entry keeps
 * its ID, from which a job without id or enqueued fields takes its
 * Message-ID and its enqueue time (latency_ms counts from it); it keeps its
 * place instead of going behind the whole backlog of a deep stream; and no
 * message (up to megabytes) is copied through a script.
 *
 * Exactly once: the script hands an entry back only while it is still
 * pending to this consumer (XPENDING filtered by consumer), so an entry
 * some other consumer claimed meanwhile is never taken from it; a live
 * engine's own entries are never touched (it keeps them fresh: queue.c's
 * refresh timer). The caller releases only jobs that never reached a relay
 * in this process. When it also knows that no earlier attempt wrote a
 * data-sent record (queue_release_unsent), the record this process wrote
 * before queueing the job for a connection is deleted in the same script:
 * the next consumer then sends it as a first attempt, not as a resend
 * after a possible delivery (which it logs and counts).
 *
 * A batch at a time, like the acks; sticky across reconnects (the script
 * is idempotent). Should Redis refuse it, the entries simply stay pending
 * here and come back after claim_min_idle_ms, as they did before: nothing
 * is lost either way.
 */
#include "queue_internal.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Above every claim_min_idle_ms (config: 1000 .. UINT32_MAX), and far
 * below Redis's clock (an IDLE beyond now counts as 0). */
#define HANDBACK_IDLE_MS "4294967295"
/* Entries per script call: each is an XPENDING and an XCLAIM. */
#define HANDBACK_BATCH 256

/* KEYS[1] the stream, KEYS[1 + j] entry j's state record; ARGV[1] group,
 * ARGV[2] consumer, ARGV[3] idle ms, then per entry ARGV[2 + 2j] its ID and
 * ARGV[3 + 2j] "1" to delete its state record. Returns how many were
 * handed back (the others were no longer pending to this consumer). */
static const char handback_script[] =
    "local n = 0\n"
    "for j = 1, #KEYS - 1 do\n"
    "  local id = ARGV[2 + 2 * j]\n"
    "  local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1, ARGV[2])\n"
    "  if #p == 1 then\n"
    "    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'IDLE', ARGV[3], 'JUSTID')\n"
    "    if ARGV[3 + 2 * j] == '1' then redis.call('DEL', KEYS[1 + j]) end\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n";

struct handback_item {
    struct queue_key key;
    bool drop_state;
};

struct queue_handback {
    struct handback_item *wait; /* not yet sent */
    size_t nwait, cap;
    struct handback_item *fly; /* the batch in flight */
    size_t nfly;
    bool inflight;
};

static void flush(struct queue *q);

void queue_drain(struct queue *q)
{
    if (!q->hb)
        q->hb = calloc(1, sizeof(*q->hb));
    /* No memory: releases leave entries pending, as before. */
}

bool queue_handback_on(const struct queue *q)
{
    return q->hb != NULL;
}

static int push(struct queue_handback *hb, const struct handback_item *it)
{
    if (hb->nwait == hb->cap) {
        size_t cap = hb->cap ? hb->cap * 2 : 64;
        struct handback_item *n = realloc(hb->wait, cap * sizeof(*n));
        if (!n)
            return -1;
        hb->wait = n;
        hb->cap = cap;
    }
    hb->wait[hb->nwait++] = *it;
    return 0;
}

void queue_handback_add(struct queue *q, const struct queue_key *k, bool drop_state)
{
    struct handback_item it = {*k, drop_state};

    if (push(q->hb, &it) != 0) {
        log_event(LOG_WARN, "queue_handback_failed", "detail",
                  "out of memory: the entry stays pending until claim_min_idle_ms", NULL);
        return;
    }
    flush(q);
}

/* The batch in flight waits again (order does not matter: each entry is
 * handed back on its own). */
static void requeue(struct queue_handback *hb)
{
    for (size_t i = 0; i < hb->nfly; i++)
        if (push(hb, &hb->fly[i]) != 0)
            break; /* those stay pending until claim_min_idle_ms */
    free(hb->fly);
    hb->fly = NULL;
    hb->nfly = 0;
}

static void on_reply(void *priv, redisReply *reply)
{
    struct queue *q = priv;
    struct queue_handback *hb = q->hb;
    char n[24];

    hb->inflight = false;
    if (q->closing) {
        free(hb->fly);
        hb->fly = NULL;
        hb->nfly = 0;
        return;
    }
    if (!reply) { /* the connection went: again after the reconnect */
        requeue(hb);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR && queue_redis_transient(reply)) {
        requeue(hb);
        queue_redis_fail(q->cmd, reply->str);
        return;
    }
    if (reply->type == REDIS_REPLY_INTEGER) {
        q->cnt.handed_back += (uint64_t)reply->integer;
        snprintf(n, sizeof(n), "%lld", reply->integer);
        log_event(LOG_INFO, "queue_handed_back", "entries", n, "detail",
                  "taken, never started: any consumer's next XAUTOCLAIM takes them", NULL);
    } else {
        log_event(LOG_WARN, "queue_handback_failed", "detail",
                  reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply", NULL);
    }
    free(hb->fly);
    hb->fly = NULL;
    hb->nfly = 0;
    flush(q);
}

static void flush(struct queue *q)
{
    struct queue_handback *hb = q->hb;
    size_t n, plen = strlen(q->cfg.state_prefix), argc, i;
    const char **argv = NULL;
    size_t *lens = NULL;
    char *keys = NULL, (*ids)[44] = NULL, numkeys[24];

    if (!hb || hb->inflight || !hb->nwait || q->closing || !queue_redis_ready(q->cmd))
        return;
    n = hb->nwait < HANDBACK_BATCH ? hb->nwait : HANDBACK_BATCH;
    argc = 3 + 1 + n + 3 + 2 * n; /* EVAL script numkeys, keys, args */
    argv = calloc(argc, sizeof(*argv));
    lens = calloc(argc, sizeof(*lens));
    ids = calloc(n, sizeof(*ids));
    keys = malloc(n * (plen + sizeof(ids[0])));
    hb->fly = malloc(n * sizeof(*hb->fly));
    if (!argv || !lens || !ids || !keys || !hb->fly) {
        free(hb->fly);
        hb->fly = NULL;
        goto out; /* tried again at the next release or reconnect */
    }
    snprintf(numkeys, sizeof(numkeys), "%zu", n + 1);
    argv[0] = "EVAL";
    argv[1] = handback_script;
    argv[2] = numkeys;
    argv[3] = q->cfg.stream;
    for (i = 0; i < n; i++) {
        const struct handback_item *it = &hb->wait[i];
        char *key = keys + i * (plen + sizeof(ids[0]));
        snprintf(ids[i], sizeof(ids[i]), "%llu-%llu", (unsigned long long)it->key.ms,
                 (unsigned long long)it->key.seq);
        snprintf(key, plen + sizeof(ids[0]), "%s%s", q->cfg.state_prefix, ids[i]);
        argv[4 + i] = key;
        argv[4 + n + 3 + 2 * i] = ids[i];
        argv[4 + n + 3 + 2 * i + 1] = it->drop_state ? "1" : "0";
    }
    argv[4 + n] = q->cfg.group;
    argv[4 + n + 1] = q->cfg.consumer;
    argv[4 + n + 2] = HANDBACK_IDLE_MS;
    for (i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    if (queue_redis_command(q->cmd, 0, 0, (int)argc, argv, lens, on_reply, q) != 0) {
        free(hb->fly);
        hb->fly = NULL;
        goto out;
    }
    memcpy(hb->fly, hb->wait, n * sizeof(*hb->fly));
    hb->nfly = n;
    hb->nwait -= n;
    memmove(hb->wait, hb->wait + n, hb->nwait * sizeof(*hb->wait));
    hb->inflight = true;
out:
    free(argv);
    free(lens);
    free(ids);
    free(keys);
}

void queue_handback_up(struct queue *q)
{
    flush(q);
}

size_t queue_handback_len(const struct queue *q)
{
    return q->hb ? q->hb->nwait + q->hb->nfly : 0;
}

void queue_handback_free(struct queue *q)
{
    if (!q->hb)
        return;
    free(q->hb->wait);
    free(q->hb->fly);
    free(q->hb);
    q->hb = NULL;
}
