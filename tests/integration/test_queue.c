/*
 * test_queue: the Redis queue against a real redis-server started here
 * (queue_harness.h). Each case uses its own key prefix. Exits 77 when
 * redis-server is not installed.
 */
#include "queue_harness.h"

/* ---- cases -------------------------------------------------------------- */
/* Jobs enqueued before the group existed arrive (group at "0"), in batches
 * no larger than asked; acks remove them and write events and state. */
static void test_fetch_ack(void)
{
    struct queue_config c = config("t1", "c1");
    char ids[10][48];
    struct got g;
    struct queue *q;
    redisReply *r;

    c.batch = 4;
    xadd(&srv, "t1:jobs", 10, ids);
    q = start(&c, &g);
    queue_fetch(q, 4);
    CHECK(run_until(NULL, &g.n, 4, 3000));
    run_for(100);
    CHECK_INT(g.n, 4);
    CHECK_INT(g.batches, 1);
    queue_fetch(q, 100);
    CHECK(run_until(NULL, &g.n, 10, 3000));
    CHECK_INT(g.n, 10);
    for (int i = 0; i < 10; i++) {
        CHECK_STR(g.id[i], ids[i]);
        CHECK_INT(g.from_pending[i], 0);
    }
    CHECK_MEM(g.data[0], g.data_len[0], "hello", 5);
    CHECK_INT(pending_count(&srv, "t1:jobs"), 10);

    /* A job's state record, as a worker writes it before sending. */
    CHECK_INT(queue_state_set(q, ids[0], "data-sent", NULL, NULL), 0);
    for (int i = 0; i < 8; i++)
        CHECK_INT(ack(q, &g, ids[i]), 0);
    {
        /* No event at all; then one event per recipient. */
        struct queue_outcome o = {.id = ids[8], .no_event = 1};
        struct queue_field r1[] = {queue_str("rcpt", "a@example.net"), queue_str("status", "sent"),
                                   queue_str("code", "250")};
        struct queue_field r2[] = {queue_str("rcpt", "b@example.net"), queue_str("status", "sent"),
                                   queue_str("code", "250")};
        struct queue_event list[] = {{r1, 3}, {r2, 3}};
        CHECK_INT(queue_ack(q, &o, on_done, &g), 0);
        o = (struct queue_outcome){.id = ids[9], .event_list = list, .nevent_list = 2};
        CHECK_INT(queue_ack(q, &o, on_done, &g), 0);
    }
    CHECK(run_until(&g.ndone, NULL, 10, 3000));
    CHECK_INT(events_for(&srv, "t1:events", ids[8], "delivered"), 0);
    CHECK_INT(events_for(&srv, "t1:events", ids[9], "delivered"), 2);
    CHECK_INT(g.status_sum, 10);
    CHECK_INT(pending_count(&srv, "t1:jobs"), 0);
    CHECK_INT(rc_int(&srv, "XLEN t1:jobs"), 0); /* XDEL after the ack */
    CHECK_INT(rc_int(&srv, "XLEN t1:events"), 10);
    CHECK_INT(events_for(&srv, "t1:events", ids[3], "delivered"), 1);
    /* The state record goes with the outcome (the XACK says it all). */
    CHECK_INT(rc_int(&srv, "EXISTS t1:state:%s", ids[0]), 0);
    r = rc(&srv, "XREVRANGE t1:events + - COUNT 1");
    CHECK(r && r->type == REDIS_REPLY_ARRAY && r->elements == 1);
    if (r && r->elements == 1) {
        const redisReply *fv = r->element[0]->element[1], *f;
        CHECK((f = field(fv, "status")) && !strcmp(f->str, "sent"));
        CHECK((f = field(fv, "code")) && !strcmp(f->str, "250"));
        CHECK((f = field(fv, "outcome")) && !strcmp(f->str, "delivered"));
    }
    freeReplyObject(r);

    /* A replay (the same ack again) changes nothing and says so. */
    CHECK_INT(ack(q, &g, ids[0]), 0);
    CHECK(run_until(&g.ndone, NULL, 11, 3000));
    CHECK_INT(g.done[10], 0);
    CHECK_INT(rc_int(&srv, "XLEN t1:events"), 10);

    struct queue_counters k;
    queue_counters(q, &k);
    CHECK_INT(k.in_hand, 0);
    CHECK_INT(k.acked, 10);
    CHECK_INT(k.replayed, 1);
    CHECK_INT(k.outbox, 0);

    /* Lengths, in one script. */
    xadd(&srv, "t1:jobs", 2, NULL);
    CHECK_INT(queue_stats(q, on_stats, &g), 0);
    CHECK(run_until(&g.stats_calls, NULL, 1, 3000));
    CHECK_INT(g.stats_ok, 1);
    CHECK(g.len.stream == 2 || g.len.stream == 1 || g.len.stream == 0);
    CHECK_INT(g.len.events, 10);
    CHECK_INT(g.len.retry, 0);
    CHECK_INT(g.len.dead, 0);
    queue_free(q);
}

/* EVALSHA calls so far, from INFO commandstats. */
static long long evalsha_calls(struct server *s)
{
    redisReply *r = rc(s, "INFO commandstats");
    long long n = -1;
    const char *p =
        r && r->type == REDIS_REPLY_STRING ? strstr(r->str, "cmdstat_evalsha:calls=") : NULL;
    if (p)
        n = atoll(p + strlen("cmdstat_evalsha:calls="));
    freeReplyObject(r);
    return n;
}

/* Acks queued faster than Redis answers go as batches (queue_acks.c): far
 * fewer script calls than jobs, every job answered in order with its own
 * result (a replay inside a batch says 0 for that job only), and each
 * one's events and state record written. */
/* queue_read_size: reads ask for fewer entries than the batch, and the
 * credit still takes them all, a read after a read. */
static void test_read_size(void)
{
    struct queue_config c = config("t1r", "c1");
    char ids[10][48];
    struct got g;
    struct queue *q;

    c.batch = 8;
    xadd(&srv, "t1r:jobs", 10, ids);
    q = start(&c, &g);
    queue_read_size(q, 3);
    queue_fetch(q, 100);
    CHECK(run_until(NULL, &g.n, 10, 3000));
    run_for(100);
    CHECK_INT(g.n, 10);
    CHECK_INT(g.batches, 4); /* 3 + 3 + 3 + 1 */
    for (int i = 0; i < 10; i++)
        CHECK_STR(g.id[i], ids[i]);
    queue_free(q);
}

/* Two reads of new entries in flight: the second asks only for the credit
 * the first does not hold, every entry comes once and in order, and an
 * empty stream gets one blocking read that still delivers what comes. */
static void test_read_pipelined(void)
{
    struct queue_config c = config("t1p", "c1");
    struct queue_counters cnt;
    char ids[20][48], late[1][48];
    struct got g;
    struct queue *q;

    c.batch = 4;
    xadd(&srv, "t1p:jobs", 20, ids);
    q = start(&c, &g);
    queue_fetch(q, 6); /* 4, then 2: never 4 + 4 */
    CHECK(run_until(NULL, &g.n, 6, 3000));
    run_for(200);
    CHECK_INT(g.n, 6);
    queue_fetch(q, 100);
    CHECK(run_until(NULL, &g.n, 20, 3000));
    run_for(200);
    CHECK_INT(g.n, 20);
    for (int i = 0; i < 20; i++)
        CHECK_STR(g.id[i], ids[i]);
    CHECK_INT(pending_count(&srv, "t1p:jobs"), 20);
    xadd(&srv, "t1p:jobs", 1, late);
    CHECK(run_until(NULL, &g.n, 21, 3000));
    run_for(200);
    CHECK_INT(g.n, 21);
    CHECK_STR(g.id[20], late[0]);
    queue_counters(q, &cnt);
    CHECK_INT(cnt.duplicates, 0);
    queue_free(q);
}

static void test_ack_batches(void)
{
    struct queue_config c = config("tb", "c1");
    static char ids[600][48];
    struct got *g = calloc(1, sizeof(*g));
    struct queue *q;
    long long calls;

    xadd(&srv, "tb:jobs", 600, ids);
    q = start(&c, g);
    queue_fetch(q, 600);
    CHECK(run_until(NULL, &g->n, 600, 5000));
    calls = evalsha_calls(&srv);
    CHECK_INT(queue_state_set(q, ids[450], "data-sent", NULL, NULL), 0);
    for (int i = 0; i < 300; i++)
        CHECK_INT(ack(q, g, ids[i]), 0);
    CHECK(run_until(&g->ndone, NULL, 300, 5000));
    /* Replays of 0..9 mixed into a batch with 10 new ones. */
    for (int i = 0; i < 20; i++)
        CHECK_INT(ack(q, g, ids[i < 10 ? i : 300 + i]), 0);
    for (int i = 320; i < 600; i++)
        CHECK_INT(ack(q, g, ids[i]), 0);
    CHECK(run_until(&g->ndone, NULL, 600, 5000));
    for (int i = 0; i < 300; i++)
        CHECK_INT(g->done[i], 1);
    for (int i = 300; i < 320; i++)
        CHECK_INT(g->done[i], i < 310 ? 0 : 1);
    CHECK_INT(g->status_sum, 590);
    CHECK(evalsha_calls(&srv) - calls < 60);
    CHECK_INT(rc_int(&srv, "XLEN tb:events"), 590);
    CHECK_INT(pending_count(&srv, "tb:jobs"), 10); /* ids 300..309 were never acked */
    CHECK_INT(events_for(&srv, "tb:events", ids[599], "delivered"), 1);
    CHECK_INT(events_for(&srv, "tb:events", ids[5], "delivered"), 1);
    CHECK_INT(rc_int(&srv, "EXISTS tb:state:%s", ids[450]), 0);
    queue_free(q);
    free(g);
}

/* MAXLEN ~ keeps the events stream near events_maxlen. */
static void test_trim(void)
{
    struct queue_config c = config("t3", "c3");
    struct got g;
    struct queue *q;
    long long len;

    c.events_maxlen = 10;
    xadd(&srv, "t3:jobs", 300, NULL);
    q = start(&c, &g);
    queue_fetch(q, 300);
    CHECK(run_until(NULL, &g.n, 300, 5000));
    for (size_t i = 0; i < g.n; i++)
        ack(q, &g, g.id[i]);
    CHECK(run_until(&g.ndone, NULL, 300, 5000));
    CHECK_INT(g.status_sum, 300);
    len = rc_int(&srv, "XLEN t3:events");
    CHECK(len >= 10 && len <= 10 + 2 * 16);
    queue_free(q);
}

/* Retry: into the set, back into the stream with attempt+1 only when due;
 * binary-safe; never both in the set and the stream; two promoters at once
 * move each member once. Dead letters carry the fields and the reason. */
static void test_retry_dead(void)
{
    struct queue_config c = config("t4", "c4");
    struct got g;
    struct queue *q, *q2;
    static const char bin[] = "a\0b:c\r\n3:x";
    redisReply *r;
    char id[48];

    q = start(&c, &g);
    r = rc(&srv, "XADD t4:jobs * to x@example.net attempt 1 data %b", bin, sizeof(bin) - 1);
    CHECK(r && r->type == REDIS_REPLY_STRING);
    snprintf(id, sizeof(id), "%s", r ? r->str : "");
    freeReplyObject(r);
    queue_fetch(q, 10);
    CHECK(run_until(NULL, &g.n, 1, 3000));
    {
        struct queue_field job[] = {queue_str("to", "x@example.net"),
                                    queue_str("attempt", "1"),
                                    {"data", 4, bin, sizeof(bin) - 1}};
        struct queue_field set[] = {queue_str("attempt", "2"), queue_str("id", "job-1")};
        struct queue_field ev[] = {queue_str("code", "451")};
        struct queue_outcome o = {.id = id,
                                  .job = job,
                                  .njob = 3,
                                  .set = set,
                                  .nset = 2,
                                  .events = ev,
                                  .nevents = 1,
                                  .delay_ms = 300};
        CHECK_INT(queue_retry(q, &o, on_done, &g), 0);
    }
    CHECK(run_until(&g.ndone, NULL, 1, 3000));
    CHECK_INT(g.done[0], 1);
    CHECK_INT(rc_int(&srv, "ZCARD t4:retry"), 1);
    CHECK_INT(pending_count(&srv, "t4:jobs"), 0);
    CHECK_INT(rc_int(&srv, "XLEN t4:jobs"), 0);
    CHECK_INT(events_for(&srv, "t4:events", id, "retry"), 1);

    CHECK_INT(queue_promote_due(q, on_promoted, &g), 0);
    CHECK(run_until(&g.promote_calls, NULL, 1, 3000));
    CHECK_INT(g.promoted, 0); /* not due yet */
    CHECK_INT(rc_int(&srv, "ZCARD t4:retry"), 1);
    run_for(400);
    CHECK_INT(queue_promote_due(q, on_promoted, &g), 0);
    CHECK(run_until(&g.promote_calls, NULL, 2, 3000));
    CHECK_INT(g.promoted, 1);
    CHECK_INT(rc_int(&srv, "ZCARD t4:retry"), 0);
    CHECK(run_until(NULL, &g.n, 2, 3000));
    CHECK_STR(g.attempt[1], "2");
    CHECK_INT(g.from_pending[1], 0);
    CHECK_MEM(g.data[1], g.data_len[1], bin, sizeof(bin) - 1);
    r = rc(&srv, "XRANGE t4:jobs %s %s", g.id[1], g.id[1]);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
        const redisReply *fv = r->element[0]->element[1], *f;
        CHECK((f = field(fv, "id")) && !strcmp(f->str, "job-1"));
        CHECK((f = field(fv, "to")) && !strcmp(f->str, "x@example.net"));
        CHECK_INT(fv->elements, 8); /* to, attempt, data, id: attempt replaced, not added */
    } else {
        CHECK(!"the promoted entry");
    }
    freeReplyObject(r);

    /* Dead letter. */
    {
        struct queue_field job[] = {queue_str("to", "x@example.net"), queue_str("attempt", "2")};
        struct queue_field set[] = {queue_str("attempt", "3"),
                                    queue_str("reason", "550 5.1.1 no such user")};
        struct queue_outcome o = {.id = g.id[1], .job = job, .njob = 2, .set = set, .nset = 2};
        CHECK_INT(queue_dead(q, &o, on_done, &g), 0);
    }
    CHECK(run_until(&g.ndone, NULL, 2, 3000));
    CHECK_INT(g.done[1], 1);
    CHECK_INT(rc_int(&srv, "XLEN t4:dead"), 1);
    CHECK_INT(pending_count(&srv, "t4:jobs"), 0);
    CHECK_INT(events_for(&srv, "t4:events", g.id[1], "dead"), 1);
    r = rc(&srv, "XRANGE t4:dead - +");
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
        const redisReply *fv = r->element[0]->element[1], *f;
        CHECK((f = field(fv, "reason")) && !strcmp(f->str, "550 5.1.1 no such user"));
        CHECK((f = field(fv, "attempt")) && !strcmp(f->str, "3"));
        CHECK((f = field(fv, "to")) && !strcmp(f->str, "x@example.net"));
    } else {
        CHECK(!"the dead letter");
    }
    freeReplyObject(r);

    /* Bad arguments. */
    {
        struct queue_outcome o = {.id = "not-an-id"};
        errno = 0;
        CHECK_INT(queue_ack(q, &o, NULL, NULL), -1);
        CHECK_INT(errno, EINVAL);
        o.id = g.id[1];
        CHECK_INT(queue_retry(q, &o, NULL, NULL), -1); /* no fields to re-enqueue */
    }

    /* 50 due members, two promoters in the same instant: each moves once. */
    for (int i = 0; i < 50; i++) {
        char m[64]; /* entry ID "m-<i>", then to = <digit> */
        snprintf(m, sizeof(m), "%d:m-%d2:to1:%d", i < 10 ? 3 : 4, i, i % 10);
        CHECK_INT(rc_int(&srv, "ZADD t4:retry 1 %s", m), 1);
    }
    /* One that does not parse goes to the dead stream. */
    CHECK_INT(rc_int(&srv, "ZADD t4:retry 1 garbage"), 1);
    {
        struct got g2;
        struct queue_config c2 = config("t4", "c4b");
        q2 = start(&c2, &g2);
        g.promote_calls = 0;
        queue_promote_due(q, on_promoted, &g);
        queue_promote_due(q2, on_promoted, &g);
        CHECK(run_until(&g.promote_calls, NULL, 2, 3000));
        CHECK_INT(rc_int(&srv, "ZCARD t4:retry"), 0);
        CHECK_INT(rc_int(&srv, "XLEN t4:jobs"), 50);
        CHECK_INT(rc_int(&srv, "XLEN t4:dead"), 2); /* + the malformed member */
        queue_free(q2);
    }
    queue_free(q);
}

/* After a restart the consumer's own pending entries come first, paged,
 * with from_pending; a pending entry whose content was deleted is acked. */
static void test_pending_restart(void)
{
    struct queue_config c = config("t6", "c6");
    char ids[5][48];
    struct got g;
    struct queue *q;

    xadd(&srv, "t6:jobs", 5, ids);
    q = start(&c, &g);
    queue_fetch(q, 5);
    CHECK(run_until(NULL, &g.n, 5, 3000));
    queue_free(q);
    CHECK_INT(rc_int(&srv, "XDEL t6:jobs %s", ids[4]), 1);

    c.batch = 2;
    q = start(&c, &g);
    queue_fetch(q, 100);
    CHECK(run_until(NULL, &g.n, 4, 3000));
    CHECK_INT(g.n, 4);
    for (int i = 0; i < 4; i++) {
        CHECK_STR(g.id[i], ids[i]);
        CHECK_INT(g.from_pending[i], 1);
    }
    run_for(200);
    CHECK_INT(pending_count(&srv, "t6:jobs"), 4); /* the deleted one was acked */
    xadd(&srv, "t6:jobs", 1, NULL);
    CHECK(run_until(NULL, &g.n, 5, 3000));
    CHECK_INT(g.from_pending[4], 0);
    queue_free(q);
}

/* XAUTOCLAIM takes over a dead consumer's entries after min-idle. */
static void test_autoclaim(void)
{
    struct queue_config c = config("t7", "dead-one");
    char ids[3][48];
    struct got g;
    struct queue *q;
    redisReply *r;

    xadd(&srv, "t7:jobs", 3, ids);
    q = start(&c, &g);
    queue_fetch(q, 3);
    CHECK(run_until(NULL, &g.n, 3, 3000));
    queue_free(q);

    c = config("t7", "alive");
    c.claim_min_idle_ms = 150;
    c.claim_interval_ms = 100;
    c.block_ms = 50;
    q = start(&c, &g);
    queue_fetch(q, 10);
    CHECK(run_until(NULL, &g.n, 3, 3000));
    for (int i = 0; i < 3; i++) {
        CHECK_STR(g.id[i], ids[i]);
        CHECK_INT(g.from_pending[i], 1);
    }
    r = rc(&srv, "XPENDING t7:jobs g - + 10 alive");
    CHECK(r && r->type == REDIS_REPLY_ARRAY && r->elements == 3);
    freeReplyObject(r);
    /* In hand: a later scan claims them again (idle) but does not redeliver. */
    run_for(500);
    CHECK_INT(g.n, 3);
    queue_free(q);
}

static void test_state(void)
{
    struct queue_config c = config("t8", "c8");
    struct got g;
    struct queue *q = start(&c, &g);

    CHECK_INT(queue_state_set(q, "1700000000000-1", "data-sent", on_done, &g), 0);
    CHECK(run_until(&g.ndone, NULL, 1, 3000));
    CHECK_INT(g.done[0], 1);
    CHECK_INT(queue_state_get(q, "1700000000000-1", on_state_get, &g), 0);
    CHECK(run_until(&g.state_status, NULL, 1, 3000));
    CHECK_STR(g.state_val, "data-sent");
    CHECK(rc_int(&srv, "TTL t8:state:1700000000000-1") > 600000);
    g.state_status = 0;
    CHECK_INT(queue_state_get(q, "1700000000000-2", on_state_get, &g), 0);
    CHECK(run_until(&g.state_status, NULL, 1, 3000));
    CHECK_STR(g.state_val, "(nil)");
    queue_free(q);
}

/* Redis SIGKILLed while the queue runs: it reconnects with backoff (not a
 * spin), the writes made during the outage wait and are applied after the
 * restart, entries in hand are not handed out again, reads resume. */
static void test_kill_restart(void)
{
    struct queue_config c = config("t9", "c9");
    char ids[5][48];
    struct got g;
    struct queue *q;
    struct queue_counters k0, k1;

    c.command_timeout_ms = 1000;
    xadd(&srv, "t9:jobs", 5, ids);
    q = start(&c, &g);
    queue_fetch(q, 100);
    CHECK(run_until(NULL, &g.n, 5, 3000));

    server_kill(&srv);
    CHECK(run_until(&g.downs, NULL, 1, 3000));
    CHECK_INT(g.state, QUEUE_DOWN);
    for (int i = 0; i < 5; i++)
        CHECK_INT(ack(q, &g, ids[i]), 0);
    CHECK_INT(queue_state_set(q, "t9-x", "data-sent", on_done, &g), 0);
    CHECK_INT(queue_outbox_len(q), 6);
    errno = 0;
    CHECK_INT(queue_stats(q, on_stats, &g), -1);
    CHECK_INT(errno, ENOTCONN);
    queue_counters(q, &k0);
    run_for(1000);
    queue_counters(q, &k1);
    /* Two links, backoff 50 ms doubling to 400 ms, jittered: a handful of
     * attempts in a second, never hundreds. */
    CHECK(k1.connect_attempts - k0.connect_attempts >= 2);
    CHECK(k1.connect_attempts - k0.connect_attempts <= 20);
    CHECK_INT(g.ndone, 0);
    CHECK_INT(queue_outbox_len(q), 6);

    CHECK_INT(server_start(&srv), 0);
    CHECK(run_until(&g.ndone, NULL, 6, 5000));
    CHECK_INT(g.status_sum, 6);
    CHECK(run_until(&g.ups, NULL, 2, 5000)); /* the read link may come second */
    CHECK_INT(g.state, QUEUE_UP);
    CHECK_INT(pending_count(&srv, "t9:jobs"), 0);
    for (int i = 0; i < 5; i++)
        CHECK_INT(events_for(&srv, "t9:events", ids[i], "delivered"), 1);
    {
        redisReply *r = rc(&srv, "GET t9:state:t9-x");
        CHECK(r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, "data-sent"));
        freeReplyObject(r);
    }
    CHECK_INT(g.n, 5); /* nothing handed out twice */
    xadd(&srv, "t9:jobs", 1, NULL);
    CHECK(run_until(NULL, &g.n, 6, 5000));
    queue_counters(q, &k1);
    /* New, unless a reply was lost (a timeout on a loaded machine): then
     * the pending scan of the reconnect hands it out. */
    CHECK(g.from_pending[5] == 0 || k1.timeouts > 0);
    if (g.from_pending[5])
        fprintf(stderr, "note: from_pending after %llu timeouts, %llu connects\n",
                (unsigned long long)k1.timeouts, (unsigned long long)k1.connects);
    queue_free(q);
}

/* A server that stops answering (SIGSTOP) fails the connection after
 * command_timeout_ms; after SIGCONT the write is applied exactly once. */
static void test_timeout(void)
{
    struct queue_config c = config("t10", "c10");
    char ids[2][48];
    struct got g;
    struct queue *q;
    struct queue_counters k;

    c.command_timeout_ms = 300;
    c.block_ms = 100;
    xadd(&srv, "t10:jobs", 2, ids);
    q = start(&c, &g);
    queue_fetch(q, 100);
    CHECK(run_until(NULL, &g.n, 2, 3000));

    kill(srv.pid, SIGSTOP);
    CHECK_INT(ack(q, &g, ids[0]), 0);
    run_for(1200);
    queue_counters(q, &k);
    CHECK(k.timeouts >= 1);
    CHECK_INT(g.state, QUEUE_DOWN);
    CHECK_INT(g.ndone, 0);
    kill(srv.pid, SIGCONT);
    CHECK(run_until(&g.ndone, NULL, 1, 8000));
    /* 1, or 0 when the write sent before the timeout ran after SIGCONT and
     * the re-sent one found the entry finished: either way exactly one
     * event. */
    CHECK(g.done[0] == 1 || g.done[0] == 0);
    CHECK(run_until(&g.ups, NULL, 2, 5000));
    CHECK_INT(events_for(&srv, "t10:events", ids[0], "delivered"), 1);
    CHECK_INT(pending_count(&srv, "t10:jobs"), 1);
    CHECK_INT(ack(q, &g, ids[1]), 0);
    CHECK(run_until(&g.ndone, NULL, 2, 3000));
    CHECK_INT(g.done[1], 1);
    CHECK_INT(g.n, 2);
    queue_free(q);
}

/* queue_free with writes outstanding and the server gone: no leak, no
 * callback afterwards (ASan checks the rest). */
static void test_free_busy(void)
{
    struct queue_config c = config("t11", "c11");
    struct got g;
    struct queue *q = start(&c, &g);

    queue_fetch(q, 10);
    CHECK_INT(queue_state_set(q, "1-1", "claimed", on_done, &g), 0);
    queue_free(q);
    run_for(100);
    CHECK_INT(g.ndone, 0);

    /* From inside callbacks: an entries batch, then a done. */
    xadd(&srv, "t11:jobs", 3, NULL);
    q = start(&c, &g);
    g.free_me = q;
    queue_fetch(q, 1);
    CHECK(run_until(NULL, &g.n, 1, 3000));
    CHECK(g.free_me == NULL);
    run_for(100);
    CHECK_INT(g.n, 1);

    q = start(&c, &g);
    for (int i = 0; i < 3; i++)
        CHECK_INT(queue_state_set(q, "1-1", "claimed", on_done, &g), 0);
    g.free_me = q;
    CHECK(run_until(&g.ndone, NULL, 1, 3000));
    run_for(100);
    CHECK_INT(g.ndone, 1); /* the two others came back in the same read: dropped */
}

/* AUTH with an ACL user, SELECT, over the unix socket; a wrong password
 * keeps the queue down, retrying with backoff. */
static void test_auth_db_unix(void)
{
    struct queue_config c = config("t12", "c12");
    struct got g;
    struct queue *q;
    struct queue_counters k;
    redisReply *r;

    r = rc(&srv, "ACL SETUSER rm on >s3cret ~* &* +@all");
    CHECK(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    c.host = NULL;
    c.unix_path = srv.sock;
    c.user = "rm";
    c.password = "s3cret";
    c.db = 3;
    q = start(&c, &g);
    CHECK_INT(queue_state_set(q, "1-7", "claimed", on_done, &g), 0);
    CHECK(run_until(&g.ndone, NULL, 1, 3000));
    CHECK_INT(g.done[0], 1);
    freeReplyObject(rc(&srv, "SELECT 3"));
    r = rc(&srv, "GET t12:state:1-7");
    CHECK(r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, "claimed"));
    freeReplyObject(r);
    freeReplyObject(rc(&srv, "SELECT 0"));
    queue_free(q);

    c.password = "wrong";
    memset(&g, 0, sizeof(g));
    q = queue_new(loop, &c, &callbacks, &g, NULL, 0);
    CHECK(q != NULL);
    run_for(800);
    queue_counters(q, &k);
    CHECK_INT(g.ups, 0);
    CHECK(k.connect_attempts >= 2 && k.connect_attempts <= 20);
    queue_free(q);
}

/* SCRIPT FLUSH: NOSCRIPT reconnects, reloads and re-sends. A key of the
 * wrong type: the ack is refused (-1), and the job is not left pending for
 * XAUTOCLAIM to send again: it is dead-lettered (queue_fallback.c). */
static void test_script_errors(void)
{
    struct queue_config c = config("t13", "c13");
    char ids[2][48];
    struct got g;
    struct queue *q;
    struct queue_counters k;

    xadd(&srv, "t13:jobs", 2, ids);
    q = start(&c, &g);
    queue_fetch(q, 10);
    CHECK(run_until(NULL, &g.n, 2, 3000));
    freeReplyObject(rc(&srv, "SCRIPT FLUSH"));
    CHECK_INT(ack(q, &g, ids[0]), 0);
    CHECK(run_until(&g.ndone, NULL, 1, 5000));
    CHECK_INT(g.done[0], 1);
    CHECK_INT(events_for(&srv, "t13:events", ids[0], "delivered"), 1);

    freeReplyObject(rc(&srv, "SET t13:events not-a-stream"));
    CHECK_INT(ack(q, &g, ids[1]), 0);
    CHECK(run_until(&g.ndone, NULL, 2, 3000));
    CHECK_INT(g.done[1], -1);
    for (int i = 0; i < 100 && rc_int(&srv, "XLEN t13:dead") < 1; i++)
        run_for(20);
    CHECK_INT(pending_count(&srv, "t13:jobs"), 0);
    queue_counters(q, &k);
    CHECK_INT(k.write_errors, 1);
    CHECK_INT(k.outcome_dead_letters, 1);
    CHECK_INT(k.in_hand, 0);
    queue_free(q);
}

/* The dead letter's field name of entry id, or "" (into out). */
static void dead_field(const char *dead, const char *id, const char *name, char *out, size_t cap)
{
    redisReply *r = rc(&srv, "XRANGE %s - +", dead);
    out[0] = 0;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *fv = r->element[i]->element[1], *e = field(fv, "entry"), *f;
        if (e && !strcmp(e->str, id) && (f = field(fv, name)))
            snprintf(out, cap, "%s", f->str);
    }
    freeReplyObject(r);
}

/* Outcomes Redis refuses for good. A wrong-type events key: a batch of
 * acks and a retry, each job dead-lettered (bounded: entry, id, outcome,
 * the Redis error as reason), nothing left pending or in hand. Then the
 * dead stream too: the job stays in hand (stuck, not pending for anyone
 * else to resend) until its dead letter can be written, tried again with
 * backoff. A batch refused for one job's sake (an ACL that forbids one
 * job's state key) is split: the others are delivered with their events. */
static void test_refused_outcomes(void)
{
    struct queue_config c = config("t14", "c14");
    char ids[8][48], buf[400];
    struct got g;
    struct queue *q;
    struct queue_counters k;
    struct queue_field job[] = {queue_str("from", "a@example.com"), queue_str("id", "job-7")};
    struct queue_outcome o = {.job = job, .njob = 2, .delay_ms = 10};

    xadd(&srv, "t14:jobs", 8, ids);
    q = start(&c, &g);
    queue_fetch(q, 10);
    CHECK(run_until(NULL, &g.n, 8, 3000));
    freeReplyObject(rc(&srv, "SET t14:events not-a-stream"));
    for (int i = 0; i < 5; i++) /* one alone, then a batch of four */
        CHECK_INT(ack(q, &g, ids[i]), 0);
    o.id = ids[5];
    CHECK_INT(queue_retry(q, &o, on_done, &g), 0);
    CHECK(run_until(&g.ndone, NULL, 6, 3000));
    for (int i = 0; i < 6; i++)
        CHECK_INT(g.done[i], -1);
    for (int i = 0; i < 100 && rc_int(&srv, "XLEN t14:dead") < 6; i++)
        run_for(20);
    CHECK_INT(rc_int(&srv, "XLEN t14:dead"), 6);
    CHECK_INT(pending_count(&srv, "t14:jobs"), 2);
    dead_field("t14:dead", ids[3], "reason", buf, sizeof(buf));
    CHECK(strstr(buf, "outcome write refused by Redis: WRONGTYPE t14:events") == buf);
    dead_field("t14:dead", ids[3], "outcome", buf, sizeof(buf));
    CHECK_STR(buf, "delivered");
    dead_field("t14:dead", ids[5], "outcome", buf, sizeof(buf));
    CHECK_STR(buf, "retry");
    dead_field("t14:dead", ids[5], "id", buf, sizeof(buf));
    CHECK_STR(buf, "job-7");
    queue_counters(q, &k);
    CHECK_INT(k.outcome_permanent, 6);
    CHECK_INT(k.outcome_dead_letters, 6);
    CHECK_INT(k.in_hand, 2);
    CHECK_INT(k.stuck, 0);

    /* The dead stream refused too: stuck in hand, then written once it can be. */
    freeReplyObject(rc(&srv, "SET t14:dead not-a-stream-either"));
    CHECK_INT(ack(q, &g, ids[6]), 0);
    CHECK(run_until(&g.ndone, NULL, 7, 3000));
    CHECK_INT(g.done[6], -1);
    for (int i = 0; i < 100 && queue_stuck(q) < 1; i++)
        run_for(20);
    queue_counters(q, &k);
    CHECK_INT(k.stuck, 1);
    CHECK_INT(k.in_hand, 2);
    CHECK_INT(queue_outbox_len(q), 0);
    CHECK_INT(pending_count(&srv, "t14:jobs"), 2);
    run_for(1500); /* a retry or two, still refused */
    CHECK_INT(queue_stuck(q), 1);
    freeReplyObject(rc(&srv, "DEL t14:dead"));
    for (int i = 0; i < 250 && queue_stuck(q) > 0; i++)
        run_for(20);
    queue_counters(q, &k);
    CHECK_INT(k.stuck, 0);
    CHECK_INT(k.in_hand, 1);
    CHECK_INT(rc_int(&srv, "XLEN t14:dead"), 1);
    CHECK_INT(pending_count(&srv, "t14:jobs"), 1);
    queue_free(q);

    /* Split: a user that may not write ids[1]'s state record. */
    struct got *g2 = calloc(1, sizeof(*g2));
    redisReply *r;
    xadd(&srv, "t15:jobs", 4, ids);
    r = rc(&srv,
           "ACL SETUSER t15 on >pw resetkeys ~t15:jobs ~t15:events ~t15:dead ~t15:state:%s "
           "~t15:state:%s ~t15:state:%s %s -@all +@read +@write +@scripting +@connection",
           ids[0], ids[2], ids[3], "%R~t15:state:*");
    CHECK(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    c = config("t15", "c15");
    c.user = "t15";
    c.password = "pw";
    q = start(&c, g2);
    queue_fetch(q, 10);
    CHECK(run_until(NULL, &g2->n, 4, 3000));
    CHECK_INT(ack(q, g2, ids[0]), 0);
    for (int i = 1; i < 4; i++) /* a batch of three behind the first */
        CHECK_INT(ack(q, g2, ids[i]), 0);
    CHECK(run_until(&g2->ndone, NULL, 4, 3000));
    CHECK_INT(g2->status_sum, 3 - 1);
    for (int i = 0; i < 4; i++)
        CHECK_INT(events_for(&srv, "t15:events", ids[i], "delivered"), i == 1 ? 0 : 1);
    CHECK_INT(pending_count(&srv, "t15:jobs"),
              1); /* ids[1]: stuck in hand, not pending for another */
    for (int i = 0; i < 100 && queue_stuck(q) < 1; i++)
        run_for(20);
    CHECK_INT(queue_stuck(q), 1);
    queue_free(q);
    free(g2);
}

/* dead_maxlen: MAXLEN ~ keeps the dead-letter stream near its bound. */
static void test_dead_trim(void)
{
    struct queue_config c = config("t16", "c16");
    struct queue_field job[] = {queue_str("from", "a@example.com")};
    struct queue_field set[] = {queue_str("reason", "test")};
    struct got g;
    struct queue *q;
    long long len;

    c.dead_maxlen = 10;
    xadd(&srv, "t16:jobs", 300, NULL);
    q = start(&c, &g);
    queue_fetch(q, 300);
    CHECK(run_until(NULL, &g.n, 300, 5000));
    for (size_t i = 0; i < g.n; i++) {
        struct queue_outcome o = {.id = g.id[i], .job = job, .njob = 1, .set = set, .nset = 1};
        CHECK_INT(queue_dead(q, &o, on_done, &g), 0);
    }
    CHECK(run_until(&g.ndone, NULL, 300, 5000));
    CHECK_INT(g.status_sum, 300);
    len = rc_int(&srv, "XLEN t16:dead");
    CHECK(len >= 10 && len <= 10 + 2 * 100);
    queue_free(q);
}

/* A draining consumer hands back what it released: another consumer's
 * XAUTOCLAIM takes it at its next scan although its min-idle is ten
 * minutes. An entry released before queue_drain() waits as before; one
 * another consumer took meanwhile stays with that one; the data-sent
 * record goes only with queue_release_unsent(). */
static void test_handback(void)
{
    struct queue_config c = config("t17", "leaving");
    struct queue_counters qc;
    char ids[4][48];
    struct got g, g2;
    struct queue *q;
    redisReply *r;
    int i;

    xadd(&srv, "t17:jobs", 4, ids);
    q = start(&c, &g);
    queue_fetch(q, 4);
    CHECK(run_until(NULL, &g.n, 4, 3000));
    queue_fetch(q, 0);
    for (i = 1; i <= 2; i++)
        CHECK_INT(queue_state_set(q, ids[i], "data-sent", on_done, &g), 0);
    CHECK(run_until(&g.ndone, NULL, 2, 3000));
    freeReplyObject(rc(&srv, "XCLAIM t17:jobs g other 0 %s JUSTID", ids[3]));
    CHECK_INT(queue_release(q, ids[0]), 0);
    queue_drain(q);
    CHECK_INT(queue_release_unsent(q, ids[1]), 0);
    CHECK_INT(queue_release(q, ids[2]), 0);
    CHECK_INT(queue_release_unsent(q, ids[3]), 0);
    CHECK(queue_outbox_len(q) > 0); /* a drain waits for the hand-back */
    for (i = 0; i < 150 && queue_outbox_len(q); i++)
        run_for(20);
    CHECK_INT(queue_outbox_len(q), 0);
    queue_counters(q, &qc);
    CHECK_INT(qc.handed_back, 2);
    CHECK_INT(rc_int(&srv, "EXISTS t17:state:%s", ids[1]), 0);
    CHECK_INT(rc_int(&srv, "EXISTS t17:state:%s", ids[2]), 1);
    r = rc(&srv, "XPENDING t17:jobs g - + 10 other");
    CHECK(r && r->type == REDIS_REPLY_ARRAY && r->elements == 1);
    freeReplyObject(r);
    queue_free(q);

    c = config("t17", "arriving");
    c.claim_min_idle_ms = 600000;
    c.claim_interval_ms = 100;
    c.block_ms = 50;
    q = start(&c, &g2);
    queue_fetch(q, 10);
    CHECK(run_until(NULL, &g2.n, 2, 3000));
    run_for(400);
    CHECK_INT(g2.n, 2);
    CHECK_STR(g2.id[0], ids[1]);
    CHECK_STR(g2.id[1], ids[2]);
    CHECK_INT(g2.from_pending[0], 1);
    r = rc(&srv, "XPENDING t17:jobs g - + 10 leaving");
    CHECK(r && r->type == REDIS_REPLY_ARRAY && r->elements == 1); /* ids[0] waits */
    freeReplyObject(r);
    queue_free(q);
}

int main(void)
{
    char tmpl[] = "/tmp/ringmail-queue-XXXXXX";
    char cmd[128];

    signal(SIGPIPE, SIG_IGN);
    if (system("command -v redis-server >/dev/null 2>&1") != 0)
        return check_skip("redis-server is not installed (tests/setup.sh installs it)");
    if (!mkdtemp(tmpl)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(srv.dir, sizeof(srv.dir), "%s", tmpl);
    snprintf(srv.sock, sizeof(srv.sock), "%s/redis.sock", tmpl);
    srv.port = free_port();
    if (srv.port <= 0 || server_start(&srv)) {
        fprintf(stderr, "cannot start redis-server on port %d\n", srv.port);
        server_kill(&srv);
        return 1;
    }
    if (loop_create(&loop, NULL)) {
        fprintf(stderr, "loop_create failed\n");
        server_kill(&srv);
        return 1;
    }
    test_fetch_ack();
    test_read_size();
    test_read_pipelined();
    test_trim();
    test_ack_batches();
    test_retry_dead();
    test_pending_restart();
    test_autoclaim();
    test_handback();
    test_state();
    test_kill_restart();
    test_timeout();
    test_free_busy();
    test_auth_db_unix();
    test_script_errors();
    test_refused_outcomes();
    test_dead_trim();
    loop_destroy(loop);
    server_kill(&srv);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpl);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpl);
    return check_done();
}
