/*
 * metrics: the shared region, the worker-side counters and the
 * per-connection slot protocol. Rendering is metrics_text.c.
 *
 * Concurrency. Each worker block has one writer (its worker) and any
 * number of readers (the master's HTTP thread). Counters are uint64 cells
 * that the writer updates with a relaxed atomic load and store (one writer:
 * no read-modify-write needed, so no locked instruction on the hot path)
 * and readers read with relaxed atomic loads: a scrape may see one counter
 * a message ahead of another, never a torn value.
 *
 * Connection slots carry strings, which cannot be stored atomically, so a
 * slot is a sequence lock (Boehm, "Can seqlocks get along with programming
 * language memory models?", 2012):
 *
 *   writer: seq = seq + 1 (odd, relaxed store); release fence;
 *           write the fields (relaxed atomic stores, byte by byte for text);
 *           seq = seq + 1 (even, release store)
 *   reader: s1 = seq (acquire load); odd: retry;
 *           copy the fields (relaxed atomic loads); acquire fence;
 *           s2 = seq (relaxed load); s1 != s2: retry
 *
 * Every field access is atomic, so there is no data race in the C11 sense,
 * and a copy whose seq did not move is one the writer published whole.
 * Opening a slot clears its counters inside the write section; closing sets
 * it free inside one. A reader gives up on a slot after a bounded number of
 * tries: a worker killed mid-write leaves seq odd until the master's
 * metrics_worker_reset() clears the block.
 */
#include "metrics.h"

#include <errno.h>
#include <string.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#include "metrics_internal.h"
#include "tls_facts.h"

const uint64_t metrics_bucket_le_us[METRICS_NBUCKETS] = {
    1000,     2500,      5000,      10000,      25000,       50000,    100000,
    250000,   500000,    1000000,   2500000,    5000000,     10000000, 30000000,
    60000000, 120000000, 300000000, 3600000000, 86400000000,
};
const char *const metrics_bucket_le_text[METRICS_NBUCKETS] = {
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",   "1",
    "2.5",   "5",      "10",    "30",   "60",    "120",  "300", "3600", "86400",
};

#define ALIGN64(x) (((x) + 63) & ~(size_t)63)
/* Reader tries per slot before skipping it (see the protocol above). */
#define SLOT_READ_TRIES 1000

static const char *const status_names[METRICS_STATUS_COUNT] = {"delivered", "deferred", "bounced",
                                                               "dead"};

const char *metrics_status_name(enum metrics_status s)
{
    if ((unsigned)s < METRICS_STATUS_COUNT)
        return status_names[s];
    return "unknown";
}

/* Single-writer increment: see the concurrency note at the top. */
static inline void bump(uint64_t *p, uint64_t n)
{
    __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

static inline void put64(uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
}

static void puttext(char *dst, size_t cap, const char *src)
{
    size_t i = 0;
    if (src)
        for (; i + 1 < cap && src[i]; i++)
            __atomic_store_n(&dst[i], src[i], __ATOMIC_RELAXED);
    for (; i < cap; i++)
        __atomic_store_n(&dst[i], '\0', __ATOMIC_RELAXED);
}

static void gettext(char *dst, const char *src, size_t cap)
{
    for (size_t i = 0; i < cap; i++)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
    dst[cap - 1] = '\0';
}

static int64_t now_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void setmsg(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
}

struct metrics *metrics_create(unsigned nworkers, unsigned nrelays, const char *const *relay_names,
                               unsigned conns_per_worker_max, char *err, size_t errlen)
{
    struct metrics *m = NULL;
    size_t names_off, workers_off, relays_off, slots_off, free_off, stride, size;
    void *base;

    if (nworkers == 0 || nworkers > METRICS_WORKERS_MAX || nrelays == 0 ||
        nrelays > METRICS_RELAYS_MAX || conns_per_worker_max == 0 ||
        conns_per_worker_max > METRICS_CONNS_MAX || !relay_names) {
        setmsg(err, errlen, "metrics: workers, relays or connection slots out of range");
        return NULL;
    }
    for (unsigned r = 0; r < nrelays; r++)
        if (!relay_names[r]) {
            setmsg(err, errlen, "metrics: a relay has no name");
            return NULL;
        }

    names_off = ALIGN64(sizeof(struct metrics_header));
    workers_off = ALIGN64(names_off + (size_t)nrelays * METRICS_RELAY_NAME_MAX);
    relays_off = ALIGN64(sizeof(struct metrics_worker));
    slots_off = ALIGN64(relays_off + (size_t)nrelays * sizeof(struct metrics_relay_counters));
    free_off = ALIGN64(slots_off + (size_t)conns_per_worker_max * sizeof(struct metrics_slot));
    stride = ALIGN64(free_off + (size_t)conns_per_worker_max * sizeof(uint32_t));
    size = workers_off + (size_t)nworkers * stride;

    m = calloc(1, sizeof(*m));
    if (!m) {
        setmsg(err, errlen, "metrics: out of memory");
        return NULL;
    }
    /* MAP_NORESERVE: most slots are never touched; untouched shared pages
     * cost nothing, so do not charge them against overcommit either. */
    base =
        mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
        if (err && errlen)
            snprintf(err, errlen, "metrics: mmap %zu bytes: %s", size, strerror(errno));
        free(m);
        return NULL;
    }
    m->base = base;
    m->size = size;
    m->hdr = base;
    m->hdr->nworkers = nworkers;
    m->hdr->nrelays = nrelays;
    m->hdr->conns_max = conns_per_worker_max;
    m->hdr->names_off = names_off;
    m->hdr->workers_off = workers_off;
    m->hdr->worker_stride = stride;
    for (unsigned r = 0; r < nrelays; r++)
        snprintf((char *)base + names_off + (size_t)r * METRICS_RELAY_NAME_MAX,
                 METRICS_RELAY_NAME_MAX, "%s", relay_names[r]);
    for (unsigned i = 0; i < nworkers; i++) {
        struct metrics_worker *mw = metrics_block(m, i);
        mw->index = i;
        mw->nrelays = nrelays;
        mw->conns_max = conns_per_worker_max;
        mw->relays_off = relays_off;
        mw->slots_off = slots_off;
        mw->free_off = free_off;
        metrics_worker_reset(m, i);
    }
    snprintf(m->tls_stat_path, sizeof(m->tls_stat_path), "%s", "/proc/net/tls_stat");
    return m;
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    munmap(m->base, m->size);
    free(m);
}

int metrics_set_tls_stat_path(struct metrics *m, const char *path)
{
    if (!path) {
        m->tls_stat_path[0] = '\0';
        return 0;
    }
    if (strlen(path) >= sizeof(m->tls_stat_path))
        return -1;
    snprintf(m->tls_stat_path, sizeof(m->tls_stat_path), "%s", path);
    return 0;
}

struct metrics_worker *metrics_worker(struct metrics *m, unsigned index)
{
    if (!m || index >= m->hdr->nworkers)
        return NULL;
    return metrics_block(m, index);
}

static uint32_t *free_stack(struct metrics_worker *mw)
{
    return (uint32_t *)((char *)mw + mw->free_off);
}

static struct metrics_relay_counters *relay_of(struct metrics_worker *mw, unsigned relay)
{
    if (!mw || relay >= mw->nrelays)
        return NULL;
    return &metrics_block_relays(mw)[relay];
}

void metrics_message(struct metrics_worker *mw, unsigned relay, enum metrics_status s)
{
    struct metrics_relay_counters *rc = relay_of(mw, relay);
    if (rc && (unsigned)s < METRICS_STATUS_COUNT)
        bump(&rc->messages[s], 1);
}

void metrics_handshake(struct metrics_worker *mw, unsigned relay, enum smtp_client_reason reason)
{
    struct metrics_relay_counters *rc = relay_of(mw, relay);
    if (!rc)
        return;
    if ((unsigned)reason >= SMTP_CLIENT_R_COUNT)
        reason = SMTP_CLIENT_R_LOCAL;
    bump(&rc->handshakes[reason], 1);
}

void metrics_tls_failure(struct metrics_worker *mw, unsigned relay, enum smtp_client_reason reason)
{
    struct metrics_relay_counters *rc = relay_of(mw, relay);
    if (!rc)
        return;
    if ((unsigned)reason >= SMTP_CLIENT_R_COUNT)
        reason = SMTP_CLIENT_R_LOCAL;
    bump(&rc->failures[reason], 1);
}

static void observe(struct metrics_hist *h, double seconds)
{
    uint64_t us;
    unsigned b = 0;

    /* NaN and negatives (a clock step) count as 0; beyond ~584,000 years
     * as +Inf with a clamped sum. */
    if (!(seconds > 0))
        us = 0;
    else if (seconds >= 1.8e13)
        us = UINT64_C(18000000000000000000);
    else
        us = (uint64_t)(seconds * 1e6 + 0.5);
    while (b < METRICS_NBUCKETS && us > metrics_bucket_le_us[b])
        b++;
    bump(&h->counts[b], 1);
    bump(&h->sum_us, us);
}

void metrics_latency(struct metrics_worker *mw, unsigned relay, double seconds)
{
    struct metrics_relay_counters *rc = relay_of(mw, relay);
    if (rc)
        observe(&rc->latency, seconds);
}

void metrics_txn_duration(struct metrics_worker *mw, unsigned relay, double seconds)
{
    struct metrics_relay_counters *rc = relay_of(mw, relay);
    if (rc)
        observe(&rc->txn, seconds);
}

void metrics_redis_error(struct metrics_worker *mw)
{
    if (mw)
        bump(&mw->redis_errors, 1);
}

void metrics_outcome_failures(struct metrics_worker *mw, int permanent, uint64_t n)
{
    if (mw && n)
        bump(&mw->outcome_failures[permanent ? 1 : 0], n);
}

void metrics_set_outcome_stuck(struct metrics_worker *mw, uint64_t n)
{
    if (mw)
        __atomic_store_n(&mw->outcome_stuck, n, __ATOMIC_RELAXED);
}

void metrics_set_redis_up(struct metrics_worker *mw, int up)
{
    if (mw)
        __atomic_store_n(&mw->redis_up, up ? 1u : 0u, __ATOMIC_RELAXED);
}

void metrics_set_relay_resolved(struct metrics_worker *mw, unsigned relay, int resolved)
{
    struct metrics_relay_counters *rc = relay_of(mw, relay);
    if (rc)
        put64(&rc->unresolved, resolved ? 0 : 1);
}

/* ---- slots: the writer side of the sequence lock ---- */

static void slot_begin(struct metrics_slot *s)
{
    uint32_t seq = __atomic_load_n(&s->seq, __ATOMIC_RELAXED);
    __atomic_store_n(&s->seq, seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

static void slot_end(struct metrics_slot *s)
{
    uint32_t seq = __atomic_load_n(&s->seq, __ATOMIC_RELAXED);
    __atomic_store_n(&s->seq, seq + 1, __ATOMIC_RELEASE);
}

static struct metrics_slot *slot_of(struct metrics_worker *mw, int slot)
{
    if (!mw || slot < 0 || (unsigned)slot >= mw->conns_max)
        return NULL;
    struct metrics_slot *s = &metrics_block_slots(mw)[slot];
    /* A slot index the caller no longer owns is a wiring bug; ignoring it
     * keeps metrics from ever taking a worker down. */
    if (__atomic_load_n(&s->state, __ATOMIC_RELAXED) == METRICS_SLOT_FREE)
        return NULL;
    return s;
}

int metrics_conn_open(struct metrics_worker *mw, unsigned relay)
{
    struct metrics_slot *s;
    uint32_t idx;

    if (!mw || relay >= mw->nrelays)
        return -1;
    if (mw->free_top == 0) {
        bump(&mw->slots_full, 1);
        return -1;
    }
    idx = free_stack(mw)[--mw->free_top];
    s = &metrics_block_slots(mw)[idx];
    mw->conn_seq++;

    slot_begin(s);
    __atomic_store_n(&s->state, (uint8_t)METRICS_SLOT_OPEN, __ATOMIC_RELAXED);
    __atomic_store_n(&s->ktls_tx, (uint8_t)0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->resumed, (uint8_t)0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->verified, (uint8_t)0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->relay, (uint16_t)relay, __ATOMIC_RELAXED);
    put64(&s->conn_id, mw->conn_seq);
    __atomic_store_n(&s->opened_ns, now_mono_ns(), __ATOMIC_RELAXED);
    __atomic_store_n(&s->handshake_us, (int64_t)0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->not_after, (int64_t)0, __ATOMIC_RELAXED);
    put64(&s->messages, 0);
    put64(&s->bytes, 0);
    put64(&s->errors, 0);
    puttext(s->protocol, sizeof(s->protocol), NULL);
    puttext(s->cipher, sizeof(s->cipher), NULL);
    puttext(s->group, sizeof(s->group), NULL);
    puttext(s->verify, sizeof(s->verify), NULL);
    slot_end(s);
    if (idx >= mw->slots_hw)
        __atomic_store_n(&mw->slots_hw, idx + 1, __ATOMIC_RELEASE);
    return (int)idx;
}

void metrics_conn_tls(struct metrics_worker *mw, int slot, const struct tls_facts *f)
{
    struct metrics_slot *s = slot_of(mw, slot);
    if (!s || !f)
        return;
    int verified = (f->verify_enabled && f->verify_code == 0) || f->pinned;
    slot_begin(s);
    __atomic_store_n(&s->state, (uint8_t)METRICS_SLOT_TLS, __ATOMIC_RELAXED);
    __atomic_store_n(&s->ktls_tx, (uint8_t)(f->ktls_tx ? 1 : 0), __ATOMIC_RELAXED);
    __atomic_store_n(&s->resumed, (uint8_t)(f->resumed ? 1 : 0), __ATOMIC_RELAXED);
    __atomic_store_n(&s->verified, (uint8_t)verified, __ATOMIC_RELAXED);
    __atomic_store_n(&s->handshake_us, f->handshake_us, __ATOMIC_RELAXED);
    __atomic_store_n(&s->not_after, f->not_after, __ATOMIC_RELAXED);
    puttext(s->protocol, sizeof(s->protocol), f->protocol);
    puttext(s->cipher, sizeof(s->cipher), f->cipher);
    puttext(s->group, sizeof(s->group), f->group);
    puttext(s->verify, sizeof(s->verify), f->verify);
    slot_end(s);
}

void metrics_conn_message(struct metrics_worker *mw, int slot, uint64_t bytes)
{
    struct metrics_slot *s = slot_of(mw, slot);
    if (!s)
        return;
    bump(&s->messages, 1);
    bump(&s->bytes, bytes);
}

void metrics_conn_error(struct metrics_worker *mw, int slot)
{
    struct metrics_slot *s = slot_of(mw, slot);
    if (s)
        bump(&s->errors, 1);
}

void metrics_conn_close(struct metrics_worker *mw, int slot)
{
    struct metrics_slot *s = slot_of(mw, slot);
    if (!s)
        return;
    slot_begin(s);
    __atomic_store_n(&s->state, (uint8_t)METRICS_SLOT_FREE, __ATOMIC_RELAXED);
    slot_end(s);
    free_stack(mw)[mw->free_top++] = (uint32_t)slot;
}

/* ---- the reader side ---- */

int metrics_slot_read(const struct metrics_slot *s, struct metrics_slot *out)
{
    for (int tries = 0; tries < SLOT_READ_TRIES; tries++) {
        uint32_t s1 = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
        if (s1 & 1)
            continue;
        out->state = __atomic_load_n(&s->state, __ATOMIC_RELAXED);
        if (out->state == METRICS_SLOT_FREE) {
            /* Free is final for a reader: no fields to keep consistent. */
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            if (__atomic_load_n(&s->seq, __ATOMIC_RELAXED) == s1)
                return -1;
            continue;
        }
        out->ktls_tx = __atomic_load_n(&s->ktls_tx, __ATOMIC_RELAXED);
        out->resumed = __atomic_load_n(&s->resumed, __ATOMIC_RELAXED);
        out->verified = __atomic_load_n(&s->verified, __ATOMIC_RELAXED);
        out->relay = __atomic_load_n(&s->relay, __ATOMIC_RELAXED);
        out->conn_id = metrics_load(&s->conn_id);
        out->opened_ns = __atomic_load_n(&s->opened_ns, __ATOMIC_RELAXED);
        out->handshake_us = __atomic_load_n(&s->handshake_us, __ATOMIC_RELAXED);
        out->not_after = __atomic_load_n(&s->not_after, __ATOMIC_RELAXED);
        out->messages = metrics_load(&s->messages);
        out->bytes = metrics_load(&s->bytes);
        out->errors = metrics_load(&s->errors);
        gettext(out->protocol, s->protocol, sizeof(out->protocol));
        gettext(out->cipher, s->cipher, sizeof(out->cipher));
        gettext(out->group, s->group, sizeof(out->group));
        gettext(out->verify, s->verify, sizeof(out->verify));
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&s->seq, __ATOMIC_RELAXED) == s1) {
            out->seq = s1;
            return 0;
        }
    }
    return -1;
}

/* ---- master side ---- */

void metrics_worker_reset(struct metrics *m, unsigned index)
{
    struct metrics_worker *mw = metrics_worker(m, index);
    struct metrics_slot *slots;
    uint32_t *stack;

    if (!mw)
        return;
    slots = metrics_block_slots(mw);
    stack = free_stack(mw);
    __atomic_store_n(&mw->redis_up, 0u, __ATOMIC_RELAXED);
    __atomic_store_n(&mw->outcome_stuck, 0u, __ATOMIC_RELAXED); /* its entries left with it */
    /* Its replacement resolves the relay names again and says so. */
    for (uint32_t r = 0; r < mw->nrelays; r++)
        put64(&metrics_block_relays(mw)[r].unresolved, 0);
    for (uint32_t i = 0; i < mw->slots_hw; i++) {
        struct metrics_slot *s = &slots[i];
        if (__atomic_load_n(&s->state, __ATOMIC_RELAXED) != METRICS_SLOT_FREE ||
            (__atomic_load_n(&s->seq, __ATOMIC_RELAXED) & 1)) {
            uint32_t seq = __atomic_load_n(&s->seq, __ATOMIC_RELAXED) | 1;
            __atomic_store_n(&s->seq, seq, __ATOMIC_RELAXED);
            __atomic_thread_fence(__ATOMIC_RELEASE);
            __atomic_store_n(&s->state, (uint8_t)METRICS_SLOT_FREE, __ATOMIC_RELAXED);
            __atomic_store_n(&s->seq, seq + 1, __ATOMIC_RELEASE);
        }
    }
    /* Lowest indexes on top: a worker with few connections keeps to the
     * first pages of its slot array. */
    for (uint32_t i = 0; i < mw->conns_max; i++)
        stack[i] = mw->conns_max - 1 - i;
    mw->free_top = mw->conns_max;
}

void metrics_worker_restart(struct metrics *m)
{
    if (m)
        __atomic_fetch_add(&m->hdr->restarts, 1, __ATOMIC_RELAXED);
}

void metrics_set_queue(struct metrics *m, uint64_t stream, uint64_t pending, uint64_t retry,
                       uint64_t dead)
{
    if (!m)
        return;
    put64(&m->hdr->queue_stream, stream);
    put64(&m->hdr->queue_pending, pending);
    put64(&m->hdr->queue_retry, retry);
    put64(&m->hdr->queue_dead, dead);
    __atomic_store_n(&m->hdr->queue_set, 1u, __ATOMIC_RELEASE);
}

static int ready(const struct metrics *m, const char **why, char *buf, size_t len)
{
    const struct metrics_header *h = m->hdr;
    const char *reason = NULL;
    unsigned nrelays = h->nrelays;
    unsigned char verified[METRICS_RELAYS_MAX] = {0};
    struct metrics_slot copy;

    for (unsigned i = 0; i < h->nworkers; i++) {
        const struct metrics_worker *mw = metrics_block(m, i);
        if (!__atomic_load_n(&mw->redis_up, __ATOMIC_RELAXED)) {
            reason = "a worker has no Redis connection";
            if (buf)
                snprintf(buf, len, "worker %u: Redis not connected", i);
            goto out;
        }
    }
    /* A relay whose name does not resolve has no connection either: say
     * the cause (its jobs are deferred meanwhile). */
    for (unsigned r = 0; r < nrelays; r++)
        for (unsigned i = 0; i < h->nworkers; i++)
            if (metrics_load(&metrics_block_relays(metrics_block(m, i))[r].unresolved)) {
                reason = "a relay's host name does not resolve";
                if (buf)
                    snprintf(buf, len,
                             "relay %s: its host name does not resolve (its jobs are deferred)",
                             metrics_relay_name(m, r));
                goto out;
            }
    for (unsigned i = 0; i < h->nworkers; i++) {
        const struct metrics_worker *mw = metrics_block(m, i);
        const struct metrics_slot *slots = metrics_block_slots(mw);
        uint32_t hw = metrics_slots_hw(mw);
        for (uint32_t k = 0; k < hw; k++)
            if (metrics_slot_read(&slots[k], &copy) == 0 && copy.state == METRICS_SLOT_TLS &&
                copy.verified && copy.relay < nrelays)
                verified[copy.relay] = 1;
    }
    for (unsigned r = 0; r < nrelays; r++)
        if (!verified[r]) {
            reason = "a relay has no live verified connection";
            if (buf)
                snprintf(buf, len, "relay %s: no live connection with a verified certificate",
                         metrics_relay_name(m, r));
            goto out;
        }
out:
    if (why)
        *why = reason ? reason : "ready";
    if (!reason && buf)
        snprintf(buf, len, "ready");
    return reason ? 0 : 1;
}

int metrics_ready(const struct metrics *m, const char **why)
{
    return ready(m, why, NULL, 0);
}

int metrics_ready_explain(const struct metrics *m, char *buf, size_t len)
{
    return ready(m, NULL, buf, len);
}
