/*
 * queue: life cycle, the two connections, reading jobs, and the in-hand set
 * (see queue.h). Writes are in queue_out.c.
 *
 * Reading is one state machine on the read connection, as the caller's
 * credit allows; one command in flight at a time, except that a read of new
 * entries that found more than it took has a second one behind it:
 *   1. after every (re)connect: this consumer's pending entries, paged
 *      (XREADGROUP ... STREAMS stream <cursor>, from "0"), from_pending = 1;
 *   2. when the claim timer said so (every claim_interval_ms): XAUTOCLAIM
 *      with its cursor until the scan wraps to 0-0, from_pending = 1; it
 *      takes a dead consumer's entries, and at once those a draining one
 *      handed back (queue_handback.c);
 *   3. otherwise: XREADGROUP ... BLOCK block_ms STREAMS stream >.
 * Pending and claimed entries the caller already holds (in hand) are
 * skipped, so a reconnect never hands out a job twice in one process.
 */
#include "queue_internal.h"

#include "log.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum queue_read {
    QUEUE_READ_PENDING = 1,
    QUEUE_READ_CLAIM = 2,
    QUEUE_READ_NEW = 3,
};

const char *queue_state_name(enum queue_state s)
{
    switch (s) {
    case QUEUE_DOWN:
        return "down";
    case QUEUE_UP:
        return "up";
    }
    return "unknown";
}

/* ---- the in-hand set --------------------------------------------------- */

int queue_key_parse(const char *id, size_t len, struct queue_key *k)
{
    char buf[48], *end;
    const char *dash;

    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, id, len);
    buf[len] = 0;
    if (!(dash = strchr(buf, '-')) || dash == buf || buf[0] < '0' || buf[0] > '9')
        return -1;
    errno = 0;
    k->ms = strtoull(buf, &end, 10);
    if (end != dash || errno)
        return -1;
    if (dash[1] < '0' || dash[1] > '9')
        return -1;
    k->seq = strtoull(dash + 1, &end, 10);
    if (*end || errno || (k->ms == 0 && k->seq == 0))
        return -1;
    return 0;
}

static size_t key_hash(const struct queue_key *k, size_t cap)
{
    uint64_t h = k->ms * 0x9E3779B97F4A7C15ull ^ (k->seq + 0x632BE59BD9B4E019ull);
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    return (size_t)h & (cap - 1);
}

static bool key_empty(const struct queue_key *k)
{
    return !k->ms && !k->seq;
}

static bool key_eq(const struct queue_key *a, const struct queue_key *b)
{
    return a->ms == b->ms && a->seq == b->seq;
}

/* The slot holding k, or the empty slot where it would go. */
static size_t set_find(const struct queue_keyset *s, const struct queue_key *k)
{
    size_t i = key_hash(k, s->cap);

    while (!key_empty(&s->v[i]) && !key_eq(&s->v[i], k))
        i = (i + 1) & (s->cap - 1);
    return i;
}

static bool set_has(const struct queue_keyset *s, const struct queue_key *k)
{
    return s->len && !key_empty(&s->v[set_find(s, k)]);
}

static int set_add(struct queue_keyset *s, const struct queue_key *k)
{
    size_t i;

    if ((s->len + 1) * 2 > s->cap) { /* load <= 1/2 keeps probes short */
        size_t cap = s->cap ? s->cap * 2 : 256, oldcap = s->cap;
        struct queue_key *old = s->v, *n = calloc(cap, sizeof(*n));
        if (!n)
            return -1;
        s->v = n;
        s->cap = cap;
        for (size_t j = 0; j < oldcap; j++)
            if (!key_empty(&old[j]))
                s->v[set_find(s, &old[j])] = old[j];
        free(old);
    }
    i = set_find(s, k);
    if (key_empty(&s->v[i])) {
        s->v[i] = *k;
        s->len++;
    }
    return 0;
}

/* Backward-shift deletion: no tombstones, so lookups never slow down. */
static void set_del(struct queue_keyset *s, const struct queue_key *k)
{
    size_t mask = s->cap - 1, i, j;

    if (!s->len || key_empty(&s->v[i = set_find(s, k)]))
        return;
    s->len--;
    for (j = (i + 1) & mask; !key_empty(&s->v[j]); j = (j + 1) & mask) {
        size_t home = key_hash(&s->v[j], s->cap);
        /* Move j into the hole at i unless its home lies in (i, j]. */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            s->v[i] = s->v[j];
            i = j;
        }
    }
    s->v[i].ms = s->v[i].seq = 0;
}

static void set_clear(struct queue_keyset *s)
{
    if (s->len)
        memset(s->v, 0, s->cap * sizeof(*s->v));
    s->len = 0;
}

void queue_entry_finished(struct queue *q, const struct queue_key *k)
{
    set_del(&q->hand, k);
    /* The two connections are not ordered with each other: a pending scan
     * or claim in flight may have run in Redis before this outcome and
     * still list the entry. Its reply must not hand it out again. */
    if (q->reads_inflight && q->read_kind != QUEUE_READ_NEW)
        set_add(&q->fin, k);
}

static int release(struct queue *q, const char *id, bool unsent)
{
    struct queue_key k;

    if (!id || queue_key_parse(id, strlen(id), &k) || !set_has(&q->hand, &k))
        return -1;
    set_del(&q->hand, &k);
    if (queue_handback_on(q))
        queue_handback_add(q, &k, unsent);
    return 0;
}

int queue_release(struct queue *q, const char *id)
{
    return release(q, id, false);
}

int queue_release_unsent(struct queue *q, const char *id)
{
    return release(q, id, true);
}

/* ---- connection state -------------------------------------------------- */

static void next_read(struct queue *q);

static void update_state(struct queue *q, const char *detail)
{
    enum queue_state st =
        queue_redis_ready(q->rd) && queue_redis_ready(q->cmd) ? QUEUE_UP : QUEUE_DOWN;

    if (st == q->state || q->closing)
        return;
    q->state = st;
    if (q->cb.state) {
        q->in_cb++;
        q->cb.state(q->user, st, st == QUEUE_UP ? NULL : detail);
        q->in_cb--;
    }
    if (st == QUEUE_UP)
        next_read(q);
}

/* XGROUP CREATE ... 0 MKSTREAM on every connection: a Redis restarted
 * without its data has lost the group. "0", not "$": jobs enqueued before
 * the first worker ever started are delivered too. Only unfinished jobs
 * stay in the stream (finished ones are XDELed unless keep_acked), so a
 * group recreated over a surviving stream redelivers little. */
static void group_created(struct queue_redis *link, redisReply *reply)
{
    char why[128];

    if (reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "BUSYGROUP", 9)) {
        snprintf(why, sizeof(why), "XGROUP CREATE: %.100s", reply->str);
        queue_redis_fail(link, why);
    }
}

static void group_created_rd(void *priv, redisReply *reply)
{
    group_created(((struct queue *)priv)->rd, reply);
}

static void group_created_cmd(void *priv, redisReply *reply)
{
    group_created(((struct queue *)priv)->cmd, reply);
}

static void create_group(struct queue *q, struct queue_redis *link, queue_redis_reply_fn *fn)
{
    const char *argv[] = {"XGROUP", "CREATE", q->cfg.stream, q->cfg.group, "0", "MKSTREAM"};
    size_t lens[6];

    for (int i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    if (queue_redis_command(link, QUEUE_REDIS_HANDSHAKE, 0, 6, argv, lens, fn, q))
        queue_redis_fail(link, "cannot queue XGROUP CREATE");
}

/* SCRIPT LOAD answers the SHA-1 we computed; anything else would make every
 * EVALSHA fail, so it fails the connection instead. */
static void script_loaded(void *priv, redisReply *reply)
{
    struct queue *q = priv;

    if (!reply)
        return;
    if (reply->type != REDIS_REPLY_STRING) {
        queue_redis_fail(q->cmd, reply->type == REDIS_REPLY_ERROR ? reply->str : "SCRIPT LOAD");
        return;
    }
    for (int i = 0; i < QUEUE_SCRIPT__COUNT; i++)
        if (reply->len == 40 && !memcmp(reply->str, q->sha[i], 40))
            return;
    queue_redis_fail(q->cmd, "SCRIPT LOAD answered an unexpected SHA-1");
}

static void cmd_hello(void *owner)
{
    struct queue *q = owner;
    const char *argv[3] = {"SCRIPT", "LOAD", NULL};
    size_t lens[3] = {6, 4, 0};

    create_group(q, q->cmd, group_created_cmd);
    for (int i = 0; i < QUEUE_SCRIPT__COUNT; i++) {
        argv[2] = queue_scripts[i];
        lens[2] = strlen(queue_scripts[i]);
        if (queue_redis_command(q->cmd, QUEUE_REDIS_HANDSHAKE, 0, 3, argv, lens, script_loaded,
                                q)) {
            log_event(LOG_WARN, "queue_script_load", "script", queue_script_names[i], NULL);
            queue_redis_fail(q->cmd, "cannot queue SCRIPT LOAD");
        }
    }
}

static void cmd_up(void *owner)
{
    struct queue *q = owner;

    update_state(q, NULL);
    queue_out_pump(q);
    queue_handback_up(q);
}

static void cmd_down(void *owner, const char *why)
{
    struct queue *q = owner;

    queue_out_reset(q);
    update_state(q, why);
}

static void rd_hello(void *owner)
{
    struct queue *q = owner;
    create_group(q, q->rd, group_created_rd);
}

static void rd_up(void *owner)
{
    struct queue *q = owner;

    /* Entries delivered by a read whose reply died with the connection are
     * in our pending list now: take them back first. */
    q->need_pending = true;
    strcpy(q->pend_cursor, "0");
    update_state(q, NULL);
}

static void rd_down(void *owner, const char *why)
{
    struct queue *q = owner;

    q->reads_inflight = 0; /* their replies never come: the credit is free again */
    update_state(q, why);
}

/* ---- reading ----------------------------------------------------------- */

/* Hands a list of [id, [field, value, ...]] to the caller, skipping what is
 * already in hand. */
static void deliver(struct queue *q, const redisReply *list, int from_pending)
{
    struct queue_entry *ents = NULL;
    struct queue_field *fields = NULL;
    size_t nfields = 0, n = 0, used = 0;

    if (!list || list->type != REDIS_REPLY_ARRAY || !list->elements)
        return;
    for (size_t i = 0; i < list->elements; i++) {
        const redisReply *e = list->element[i];
        if (e && e->type == REDIS_REPLY_ARRAY && e->elements == 2 &&
            e->element[1]->type == REDIS_REPLY_ARRAY)
            nfields += e->element[1]->elements / 2;
    }
    ents = calloc(list->elements, sizeof(*ents));
    fields = calloc(nfields ? nfields : 1, sizeof(*fields));
    if (!ents || !fields)
        goto out; /* the entries stay pending: they come back */
    for (size_t i = 0; i < list->elements; i++) {
        const redisReply *e = list->element[i], *fv;
        struct queue_key k;

        /* XAUTOCLAIM on Redis 6.2 lists a deleted entry as nil. */
        if (!e || e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[0]->type != REDIS_REPLY_STRING ||
            queue_key_parse(e->element[0]->str, e->element[0]->len, &k))
            continue;
        fv = e->element[1];
        if (set_has(&q->hand, &k) || set_has(&q->fin, &k)) {
            q->cnt.duplicates++;
            continue;
        }
        if (fv->type != REDIS_REPLY_ARRAY || fv->elements < 2) {
            /* Pending, but its content was deleted (XDEL, trimming): there
             * is no job left to run; acknowledge it so it stops coming back. */
            log_event(LOG_WARN, "queue_entry_gone", "entry", e->element[0]->str, NULL);
            queue_out_xack(q, e->element[0]->str);
            continue;
        }
        if (set_add(&q->hand, &k))
            continue;
        ents[n].id = e->element[0]->str;
        ents[n].fields = fields + used;
        for (size_t j = 0; j + 1 < fv->elements; j += 2) {
            fields[used].name = fv->element[j]->str;
            fields[used].name_len = fv->element[j]->len;
            fields[used].value = fv->element[j + 1]->str;
            fields[used].value_len = fv->element[j + 1]->len;
            used++;
        }
        ents[n].nfields = (size_t)(fields + used - ents[n].fields);
        n++;
    }
    q->credit = q->credit > n ? q->credit - (unsigned)n : 0;
    q->cnt.delivered += n;
    if (from_pending)
        q->cnt.redelivered += n;
    if (n && q->cb.entries && !q->closing) {
        q->in_cb++;
        q->cb.entries(q->user, ents, n, from_pending);
        q->in_cb--;
    }
out:
    free(ents);
    free(fields);
}

/* The entries of a one-stream XREADGROUP reply ([[stream, entries]]), or NULL. */
static const redisReply *xread_entries(const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1)
        return NULL;
    r = r->element[0];
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2)
        return NULL;
    return r->element[1];
}

static void copy_id(char *dst, size_t cap, const redisReply *r)
{
    if (r && r->type == REDIS_REPLY_STRING && r->len < cap) {
        memcpy(dst, r->str, r->len);
        dst[r->len] = 0;
    }
}

static void on_read(void *priv, redisReply *reply)
{
    struct queue *q = priv;
    const redisReply *list = NULL;
    int from_pending = q->read_kind != QUEUE_READ_NEW;
    unsigned asked = 0;

    if (q->reads_inflight) { /* replies come in the order of the reads */
        asked = q->asked[0];
        q->reads_inflight--;
        memmove(q->asked, q->asked + 1, q->reads_inflight * sizeof(q->asked[0]));
    }
    if (!reply || q->closing)
        return; /* reading resumes when both connections are up */
    if (reply->type == REDIS_REPLY_ERROR) {
        /* NOGROUP (a group deleted under us), LOADING, ...: the reconnect
         * handshake recreates the group, and the backoff paces it. */
        log_event(LOG_WARN, "queue_read_error", "detail", reply->str, NULL);
        queue_redis_fail(q->rd, reply->str);
        return;
    }
    /* Cursors move before the caller runs: it may call queue_fetch(). */
    switch (q->read_kind) {
    case QUEUE_READ_PENDING:
        list = xread_entries(reply);
        if (!list || !list->elements) {
            q->need_pending = false;
            list = NULL;
        } else {
            const redisReply *last = list->element[list->elements - 1];
            if (last->type == REDIS_REPLY_ARRAY && last->elements >= 1)
                copy_id(q->pend_cursor, sizeof(q->pend_cursor), last->element[0]);
            else
                q->need_pending = false; /* cannot page on: the next reconnect retries */
        }
        break;
    case QUEUE_READ_CLAIM:
        if (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 2) {
            copy_id(q->claim_cursor, sizeof(q->claim_cursor), reply->element[0]);
            list = reply->element[1];
        }
        if (!list || !strcmp(q->claim_cursor, "0-0")) {
            q->claim_due = false;
            strcpy(q->claim_cursor, "0-0");
        }
        break;
    default:
        if (reply->type != REDIS_REPLY_NIL)
            list = xread_entries(reply);
        q->read_full = list && asked && list->elements >= asked;
        break;
    }
    deliver(q, list, from_pending);
    next_read(q);
}

/* Issues one read if the credit and the state allow: 1 when it did. */
static int read_one(struct queue *q)
{
    const char *argv[12];
    size_t lens[12];
    char count[16], block[16], idle[16];
    unsigned held = 0, n, extra = 0;
    int argc = 0;

    for (unsigned i = 0; i < q->reads_inflight; i++)
        held += q->asked[i];
    n = q->credit > held ? q->credit - held : 0;
    if (n > q->cfg.batch)
        n = q->cfg.batch;
    if (q->read_max && n > q->read_max)
        n = q->read_max;
    /* Reads wait for both connections: a job taken while writes cannot go
     * would stall at its first state record. */
    if (q->closing || !n || q->state != QUEUE_UP)
        return 0;
    /* A second read only behind a read of new entries that found more than
     * it took, for new entries: a blocking read waits alone, and the
     * pending scan and the claim page with cursors, one at a time. */
    if (q->reads_inflight &&
        (q->reads_inflight == QUEUE_READS_MAX || q->read_kind != QUEUE_READ_NEW || !q->read_full ||
         q->need_pending || q->claim_due))
        return 0;
    snprintf(count, sizeof(count), "%u", n);
    if (q->need_pending || !q->claim_due) {
        const char *head[] = {"XREADGROUP", "GROUP", q->cfg.group, q->cfg.consumer, "COUNT", count};
        for (int i = 0; i < 6; i++)
            argv[argc++] = head[i];
        if (!q->need_pending) {
            snprintf(block, sizeof(block), "%u", q->cfg.block_ms);
            argv[argc++] = "BLOCK";
            argv[argc++] = block;
            /* Behind another read, its BLOCK may start only when that
             * one's ends. */
            extra = q->cfg.block_ms * (q->reads_inflight + 1);
        }
        argv[argc++] = "STREAMS";
        argv[argc++] = q->cfg.stream;
        argv[argc++] = q->need_pending ? q->pend_cursor : ">";
        q->read_kind = q->need_pending ? QUEUE_READ_PENDING : QUEUE_READ_NEW;
    } else {
        const char *c[] = {"XAUTOCLAIM", q->cfg.stream,   q->cfg.group, q->cfg.consumer,
                           idle,         q->claim_cursor, "COUNT",      count};
        snprintf(idle, sizeof(idle), "%u", q->cfg.claim_min_idle_ms);
        for (int i = 0; i < 8; i++)
            argv[argc++] = c[i];
        q->read_kind = QUEUE_READ_CLAIM;
    }
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    set_clear(&q->fin); /* outcomes confirmed before this read ran before it */
    if (queue_redis_command(q->rd, 0, extra, argc, argv, lens, on_read, q) != 0)
        return 0;
    q->asked[q->reads_inflight++] = n;
    return 1;
}

static void next_read(struct queue *q)
{
    while (read_one(q)) {
    }
}

void queue_read_size(struct queue *q, unsigned n)
{
    q->read_max = n;
}

int queue_fetch(struct queue *q, unsigned max)
{
    q->credit = max;
    next_read(q);
    return 0;
}

static void on_claim_timer(void *ctx)
{
    struct queue *q = ctx;

    q->claim_due = true;
    loop_timer_arm(q->loop, &q->claim_timer, q->cfg.claim_interval_ms);
    next_read(q);
}

/*
 * XAUTOCLAIM takes entries idle longer than claim_min_idle_ms from any
 * consumer, a live one included. An entry this process still works on (a
 * slow relay, a long queue for a connection) must not look idle: every
 * third of that time its idle clock is reset with XCLAIM ... JUSTID, which
 * changes neither the owner nor the delivery count.
 */
#define REFRESH_BATCH 500

static void on_refresh_reply(void *priv, redisReply *reply)
{
    (void)priv;
    (void)reply; /* best effort: the next round tries again */
}

static void on_refresh_timer(void *ctx)
{
    struct queue *q = ctx;
    const char *argv[6 + REFRESH_BATCH];
    size_t lens[6 + REFRESH_BATCH], i;
    char ids[REFRESH_BATCH][44];
    int n = 0;

    loop_timer_arm(q->loop, &q->refresh_timer,
                   q->cfg.claim_min_idle_ms / 3 > 1000 ? q->cfg.claim_min_idle_ms / 3 : 1000);
    if (q->closing || !q->hand.len || !queue_redis_ready(q->cmd))
        return;
    for (i = 0; i <= q->hand.cap; i++) {
        if (n && (n == REFRESH_BATCH || i == q->hand.cap)) {
            const char *head[] = {"XCLAIM", q->cfg.stream, q->cfg.group, q->cfg.consumer, "0"};
            int k, argc = 0;
            for (k = 0; k < 5; k++)
                argv[argc++] = head[k];
            for (k = 0; k < n; k++)
                argv[argc++] = ids[k];
            argv[argc++] = "JUSTID";
            for (k = 0; k < argc; k++)
                lens[k] = strlen(argv[k]);
            queue_redis_command(q->cmd, 0, 0, argc, argv, lens, on_refresh_reply, q);
            n = 0;
        }
        if (i < q->hand.cap && !key_empty(&q->hand.v[i]))
            snprintf(ids[n++], sizeof(ids[0]), "%llu-%llu", (unsigned long long)q->hand.v[i].ms,
                     (unsigned long long)q->hand.v[i].seq);
    }
}

static void on_promote_done(void *arg, long long moved)
{
    struct queue *q = arg;

    /* A full batch: more may be due; go again on the next iteration. */
    if (moved >= (long long)q->cfg.promote_batch)
        loop_timer_arm(q->loop, &q->promote_timer, 0);
}

static void on_promote_timer(void *ctx)
{
    struct queue *q = ctx;

    loop_timer_arm(q->loop, &q->promote_timer, q->cfg.promote_interval_ms);
    if (!q->closing && !q->promote_queued && queue_redis_ready(q->cmd))
        queue_promote_due(q, on_promote_done, q);
}

/* ---- life cycle -------------------------------------------------------- */

static void on_reaper(void *ctx);

static int dup_str(const char **dst, const char *src, const char *dflt)
{
    const char *s = src ? src : dflt;
    char *c;

    *dst = NULL;
    if (!s)
        return 0;
    if (!(c = strdup(s)))
        return -1;
    *dst = c;
    return 0;
}

/* Frees (or, with forget, just clears) the config's strings. */
static void strs_drop(struct queue_config *c, bool forget)
{
    const char **s[] = {&c->host,   &c->unix_path,    &c->user,    &c->password,
                        &c->stream, &c->group,        &c->events,  &c->dead,
                        &c->retry,  &c->state_prefix, &c->consumer};
    if (!forget && c->password) /* do not leave the secret in freed memory */
        explicit_bzero((char *)c->password, strlen(c->password));
    for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
        if (!forget)
            free((char *)*s[i]);
        *s[i] = NULL;
    }
}

static void free_strs_init(struct queue_config *c)
{
    strs_drop(c, true);
}

static int copy_config(struct queue_config *d, const struct queue_config *s)
{
    *d = *s;
    free_strs_init(d); /* until copied, the strings are the caller's */
    if (dup_str(&d->host, s->unix_path ? NULL : s->host, s->unix_path ? NULL : "127.0.0.1") ||
        dup_str(&d->unix_path, s->unix_path, NULL) || dup_str(&d->user, s->user, NULL) ||
        dup_str(&d->password, s->password, NULL) ||
        dup_str(&d->stream, s->stream, "ringmail:jobs") ||
        dup_str(&d->group, s->group, "ringmail") ||
        dup_str(&d->events, s->events, "ringmail:events") ||
        dup_str(&d->dead, s->dead, "ringmail:dead") ||
        dup_str(&d->retry, s->retry, "ringmail:retry") ||
        dup_str(&d->state_prefix, s->state_prefix, "ringmail:state:") ||
        dup_str(&d->consumer, s->consumer, NULL))
        return -1;
#define DEFAULT(f, v)                                                                              \
    if (!d->f)                                                                                     \
    d->f = (v)
    DEFAULT(port, 6379);
    DEFAULT(batch, 256);
    DEFAULT(block_ms, 1000);
    DEFAULT(claim_min_idle_ms, 600000);
    DEFAULT(claim_interval_ms, 5000);
    DEFAULT(command_timeout_ms, 5000);
    DEFAULT(state_ttl, 604800);
    DEFAULT(promote_interval_ms, 1000);
    DEFAULT(promote_batch, 1000);
    DEFAULT(pipeline, 256);
    DEFAULT(outbox_max, 65536);
    DEFAULT(backoff_min_ms, 100);
    DEFAULT(backoff_max_ms, 5000);
#undef DEFAULT
    return 0;
}

static int script_shas(struct queue *q)
{
    for (int i = 0; i < QUEUE_SCRIPT__COUNT; i++) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned mdlen = 0;
        if (!EVP_Digest(queue_scripts[i], strlen(queue_scripts[i]), md, &mdlen, EVP_sha1(), NULL) ||
            mdlen != 20)
            return -1;
        for (unsigned j = 0; j < 20; j++)
            snprintf(q->sha[i] + 2 * j, 3, "%02x", md[j]);
    }
    return 0;
}

struct queue *queue_new(struct loop *loop, const struct queue_config *cfg,
                        const struct queue_callbacks *cb, void *user, char *err, size_t errlen)
{
    static const struct queue_redis_ops rd_ops = {rd_hello, rd_up, rd_down};
    static const struct queue_redis_ops cmd_ops = {cmd_hello, cmd_up, cmd_down};
    struct queue *q = calloc(1, sizeof(*q));
    struct queue_redis_config rc = {0};
    const char *e = NULL;

    if (!q) {
        e = "out of memory";
        goto fail;
    }
    if (!cfg->consumer || !cfg->consumer[0]) {
        e = "queue: a consumer name is required";
        goto fail;
    }
    if (copy_config(&q->cfg, cfg) || script_shas(q)) {
        e = "out of memory";
        goto fail;
    }
    q->loop = loop;
    q->cb = *cb;
    q->user = user;
    q->state = QUEUE_DOWN;
    snprintf(q->maxlen, sizeof(q->maxlen), "%llu", (unsigned long long)q->cfg.events_maxlen);
    snprintf(q->deadmax, sizeof(q->deadmax), "%llu", (unsigned long long)q->cfg.dead_maxlen);
    snprintf(q->ttl, sizeof(q->ttl), "%u", q->cfg.state_ttl);
    strcpy(q->keep, q->cfg.keep_acked ? "1" : "0");
    strcpy(q->pend_cursor, "0");
    strcpy(q->claim_cursor, "0-0");
    loop_timer_init(&q->claim_timer, on_claim_timer, q);
    loop_timer_init(&q->promote_timer, on_promote_timer, q);
    loop_timer_init(&q->reaper, on_reaper, q);
    loop_timer_init(&q->refresh_timer, on_refresh_timer, q);
    loop_timer_init(&q->stuck_timer, queue_fallback_timer, q);

    rc.host = q->cfg.host;
    rc.port = q->cfg.port;
    rc.unix_path = q->cfg.unix_path;
    rc.db = q->cfg.db;
    rc.user = q->cfg.user;
    rc.password = q->cfg.password;
    rc.timeout_ms = q->cfg.command_timeout_ms;
    rc.backoff_min_ms = q->cfg.backoff_min_ms;
    rc.backoff_max_ms = q->cfg.backoff_max_ms;
    rc.seed = (uint64_t)getpid() << 32 ^ (uint64_t)(uintptr_t)q ^ loop_now_ms(loop);
    rc.name = "cmd";
    if (!(q->cmd = queue_redis_new(loop, &rc, &cmd_ops, q))) {
        e = "out of memory";
        goto fail;
    }
    rc.name = "read";
    rc.seed = rc.seed * 0x9E3779B97F4A7C15ull + 1;
    if (!(q->rd = queue_redis_new(loop, &rc, &rd_ops, q))) {
        e = "out of memory";
        goto fail;
    }
    if (loop_timer_arm(loop, &q->claim_timer, q->cfg.claim_interval_ms) ||
        loop_timer_arm(loop, &q->refresh_timer,
                       q->cfg.claim_min_idle_ms / 3 > 1000 ? q->cfg.claim_min_idle_ms / 3 : 1000) ||
        (q->cfg.promote_interval_ms != UINT32_MAX &&
         loop_timer_arm(loop, &q->promote_timer, q->cfg.promote_interval_ms))) {
        e = "out of memory";
        goto fail;
    }
    return q;
fail:
    if (err && errlen)
        snprintf(err, errlen, "%s", e);
    queue_free(q);
    return NULL;
}

static void teardown(struct queue *q)
{
    loop_timer_disarm(q->loop, &q->reaper);
    loop_timer_disarm(q->loop, &q->claim_timer);
    loop_timer_disarm(q->loop, &q->refresh_timer);
    loop_timer_disarm(q->loop, &q->promote_timer);
    loop_timer_disarm(q->loop, &q->stuck_timer);
    /* Their pending callbacks run now with NULL replies and see closing. */
    queue_redis_free(q->rd);
    queue_redis_free(q->cmd);
    queue_handback_free(q);
    queue_out_clear(q);
    free(q->hand.v);
    free(q->fin.v);
    strs_drop(&q->cfg, false);
    free(q);
}

static void on_reaper(void *ctx)
{
    teardown(ctx);
}

void queue_free(struct queue *q)
{
    if (!q)
        return;
    q->closing = true;
    /* From inside one of our callbacks the code below it still uses q (and
     * hiredis its context): finish from the loop instead. */
    if (q->in_cb && loop_timer_arm(q->loop, &q->reaper, 0) == 0)
        return;
    teardown(q);
}

void queue_counters(const struct queue *q, struct queue_counters *out)
{
    struct queue_redis_stats a, b;

    *out = q->cnt;
    out->state = q->state;
    out->outbox = q->out_len + q->nacks;
    out->in_hand = q->hand.len;
    queue_redis_stats(q->rd, &a);
    queue_redis_stats(q->cmd, &b);
    out->connects = a.ready + b.ready;
    out->connect_attempts = a.attempts + b.attempts;
    out->timeouts = a.timeouts + b.timeouts;
}

size_t queue_outbox_len(const struct queue *q)
{
    return q->out_len + q->nacks + queue_handback_len(q);
}

size_t queue_stuck(const struct queue *q)
{
    return q->cnt.stuck;
}
