/*
 * loop: the running ring. The slot table with its generations, SQEs (with
 * submission when the SQ is full), the shared buffer pool at run time,
 * completion dispatch (stale, closing, stream re-arm), deferred work
 * (synthetic completions, releases, parked receives) and the iteration: one
 * io_uring_enter that both submits the batch and waits for the nearest
 * timer. Setup is in loop_setup.c, operations in loop_ops.c, timers in
 * loop_timer.c.
 */
#include "loop_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

_Static_assert(LOOP_CQE_F_BUFFER == IORING_CQE_F_BUFFER && LOOP_CQE_F_MORE == IORING_CQE_F_MORE &&
                   LOOP_CQE_F_SOCK_NONEMPTY == IORING_CQE_F_SOCK_NONEMPTY &&
                   LOOP_CQE_F_NOTIF == IORING_CQE_F_NOTIF,
               "loop_cqe flags are the kernel's");

/* An unbounded wait still wakes now and then; loop_run() just goes round. */
#define LOOP_WAIT_CAP_MS 60000
/* CQEs copied out of the ring at a time, so the ring has room again before
 * handlers run (and may submit, and complete inline). */
#define LOOP_REAP_BATCH 256

uint64_t loop_clock_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void loop_buf_add(struct loop *loop, unsigned bid)
{
    io_uring_buf_ring_add(loop->br, loop->buf_mem + (size_t)bid * loop->buf_size, loop->buf_size,
                          (unsigned short)bid, io_uring_buf_ring_mask(loop->buf_count), 0);
    io_uring_buf_ring_advance(loop->br, 1);
}

/* ---- slots ---- */

struct loop_slot_ent *loop_slot_at(const struct loop *loop, uint32_t idx)
{
    if (idx >= loop->nslots)
        return NULL;
    return &loop->chunks[idx / LOOP_CHUNK_SLOTS][idx % LOOP_CHUNK_SLOTS];
}

/* The slot a handle names, whatever its state, if the generation matches. */
struct loop_slot_ent *loop_slot_find(const struct loop *loop, loop_slot slot, uint32_t *idx)
{
    struct loop_slot_ent *s;

    if (slot < 0)
        return NULL;
    *idx = (uint32_t)slot;
    s = loop_slot_at(loop, *idx);
    if (!s || s->state == LOOP_SLOT_FREE || s->gen != (uint32_t)((uint64_t)slot >> 32))
        return NULL;
    return s;
}

static int slots_grow(struct loop *loop)
{
    struct loop_slot_ent **chunks, *c;
    uint32_t base = loop->nslots;

    if (base + LOOP_CHUNK_SLOTS > LOOP_IDX_INTERNAL)
        return -ENOMEM;
    chunks = realloc(loop->chunks, (loop->nchunks + 1) * sizeof(*chunks));
    if (!chunks)
        return -ENOMEM;
    loop->chunks = chunks;
    if (!(c = calloc(LOOP_CHUNK_SLOTS, sizeof(*c))))
        return -ENOMEM;
    chunks[loop->nchunks++] = c;
    loop->nslots += LOOP_CHUNK_SLOTS;
    /* Lowest index on top of the free list. */
    for (uint32_t j = LOOP_CHUNK_SLOTS; j-- > 0;) {
        c[j].next = loop->free_head;
        loop->free_head = base + j;
    }
    return 0;
}

loop_slot loop_slot_open(struct loop *loop, loop_handler_fn *handler, void *ctx)
{
    struct loop_slot_ent *s;
    uint32_t idx;

    if (!handler)
        return -EINVAL;
    if (loop->free_head == LOOP_NONE && slots_grow(loop))
        return -ENOMEM;
    idx = loop->free_head;
    s = loop_slot_at(loop, idx);
    loop->free_head = s->next;
    s->next = LOOP_NONE;
    s->handler = handler;
    s->ctx = ctx;
    s->on_released = NULL;
    s->used = 0;
    s->state = LOOP_SLOT_OPEN;
    return (loop_slot)((uint64_t)s->gen << 32 | idx);
}

static void release_queue(struct loop *loop, uint32_t idx, struct loop_slot_ent *s)
{
    s->state = LOOP_SLOT_RELEASING;
    s->next = LOOP_NONE;
    if (loop->rel_tail == LOOP_NONE)
        loop->rel_head = idx;
    else
        loop_slot_at(loop, loop->rel_tail)->next = idx;
    loop->rel_tail = idx;
}

int loop_slot_close(struct loop *loop, loop_slot slot, loop_released_fn *on_released)
{
    uint32_t idx;
    struct loop_slot_ent *s = loop_slot_find(loop, slot, &idx);

    if (!s || s->state != LOOP_SLOT_OPEN)
        return -ESTALE;
    s->state = LOOP_SLOT_CLOSING;
    s->on_released = on_released;
    s->handler = NULL;
    loop_slot_cancel_all(loop, idx, s);
    if (s->state == LOOP_SLOT_CLOSING && !s->used)
        release_queue(loop, idx, s);
    return 0;
}

unsigned loop_slot_inflight(const struct loop *loop, loop_slot slot)
{
    uint32_t idx;
    struct loop_slot_ent *s = loop_slot_find(loop, slot, &idx);

    return s ? (unsigned)__builtin_popcount(s->used) : 0;
}

void loop_rec_maybe_free(struct loop *loop, uint32_t idx, struct loop_slot_ent *s, unsigned ri)
{
    struct loop_rec *r = &s->recs[ri];

    if (r->state != LOOP_REC_DONE || r->cancels)
        return;
    if (r->flags & LOOP_RF_CANCEL_WANT)
        loop->cancel_backlog--;
    free(r->aux);
    memset(r, 0, sizeof(*r));
    s->used &= (uint16_t) ~(1u << ri);
    if (s->state == LOOP_SLOT_CLOSING && !s->used)
        release_queue(loop, idx, s);
}

/* ---- submission ---- */

static int submit(struct loop *loop, int (*fn)(struct io_uring *))
{
    unsigned before = io_uring_sq_ready(&loop->ring);
    int rc = fn(&loop->ring);

    loop->stats.enter_calls++;
    loop->stats.sqes_submitted += before - io_uring_sq_ready(&loop->ring);
    return rc;
}

/* An SQE, submitting the queued batch first if the SQ is full. */
struct io_uring_sqe *loop_get_sqe(struct loop *loop)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&loop->ring);

    if (!sqe) {
        submit(loop, io_uring_submit);
        sqe = io_uring_get_sqe(&loop->ring);
    }
    return sqe;
}

/* ---- buffers ---- */

int loop_buf_release(struct loop *loop, unsigned bid)
{
    if (bid >= loop->buf_count || !loop->buf_held[bid])
        return -EINVAL;
    loop->buf_held[bid] = 0;
    loop_buf_add(loop, bid);
    loop->buf_free++;
    return 0;
}

unsigned loop_buf_free(const struct loop *loop)
{
    return loop->buf_free;
}

/* What a completion nobody will see carries goes back: a pool buffer to
 * the pool, an accepted connection to the kernel (else the fd leaks). */
static void cqe_drop(struct loop *loop, unsigned op, int32_t res, uint32_t cflags)
{
    unsigned bid = cflags >> IORING_CQE_BUFFER_SHIFT;

    if ((cflags & IORING_CQE_F_BUFFER) && bid < loop->buf_count)
        loop_buf_add(loop, bid);
    if (op == LOOP_OP_ACCEPT && res >= 0)
        close(res);
}

/* ---- synthetic completions ---- */

int loop_synth_reserve(struct loop *loop)
{
    struct loop_synth *v;
    size_t cap;

    if (loop->synth_len < loop->synth_cap)
        return 0;
    cap = loop->synth_cap ? loop->synth_cap * 2 : 16;
    if (!(v = realloc(loop->synth, cap * sizeof(*v))))
        return -ENOMEM;
    loop->synth = v;
    loop->synth_cap = cap;
    return 0;
}

int loop_synth_push(struct loop *loop, uint64_t ud, int32_t res)
{
    int rc = loop_synth_reserve(loop);

    if (rc)
        return rc;
    loop->synth[loop->synth_len++] = (struct loop_synth){.ud = ud, .res = res, .flags = 0};
    return 0;
}

static int park(struct loop *loop, uint64_t ud)
{
    if (loop->parked_head + loop->parked_len == loop->parked_cap) {
        if (loop->parked_head) { /* compact before growing */
            memmove(loop->parked, loop->parked + loop->parked_head,
                    loop->parked_len * sizeof(*loop->parked));
            loop->parked_head = 0;
        } else {
            size_t cap = loop->parked_cap ? loop->parked_cap * 2 : 64;
            uint64_t *v = realloc(loop->parked, cap * sizeof(*v));
            if (!v)
                return -ENOMEM;
            loop->parked = v;
            loop->parked_cap = cap;
        }
    }
    loop->parked[loop->parked_head + loop->parked_len++] = ud;
    return 0;
}

/* ---- dispatch ---- */

enum stream_end { STREAM_END = 0, STREAM_REARMED = 1, STREAM_SILENT = 2 };

/* A stream's request ended (no F_MORE). Decide whether the owner sees the
 * end, or the loop quietly keeps the stream going. */
static enum stream_end stream_end(struct loop *loop, uint32_t idx, struct loop_slot_ent *s,
                                  unsigned ri, int32_t res)
{
    struct loop_rec *r = &s->recs[ri];
    bool recv = r->op == LOOP_OP_RECV_MULTI;
    bool again;

    if (r->flags & LOOP_RF_CANCEL_REQ)
        return STREAM_END;
    if (res == -EINVAL && !(r->flags & (LOOP_RF_GOT | LOOP_RF_SINGLE))) {
        /* A kernel without the multishot flag refuses it at once: note it
         * and emulate with single shots from now on. */
        if (recv)
            loop->feat.recv_multishot = false;
        else
            loop->feat.accept_multishot = false;
        r->flags |= LOOP_RF_SINGLE | LOOP_RF_FELLBACK;
        return loop_rec_issue(loop, idx, s, ri) ? STREAM_END : STREAM_SILENT;
    }
    if (res == -EINVAL && (r->flags & LOOP_RF_FELLBACK) && !(r->flags & LOOP_RF_GOT)) {
        /* Single shots are refused too: the fd is at fault (an accept on a
         * socket that is not listening), not the kernel. */
        if (!(loop->cfg_flags & LOOP_CFG_NO_MULTISHOT)) {
            if (recv)
                loop->feat.recv_multishot = loop->br != NULL;
            else
                loop->feat.accept_multishot = true;
        }
        return STREAM_END;
    }
    if (recv && res == -ENOBUFS) {
        /* Re-arming now would fail again at once while data is pending:
         * wait until a buffer comes back (run_once re-arms). */
        if (park(loop, loop_ud(idx, s->gen, ri, r->op)))
            return STREAM_END;
        r->state = LOOP_REC_PARKED;
        loop->stats.enobufs++;
        return STREAM_SILENT;
    }
    if (recv)
        again = res > 0;
    else
        again = res >= 0 || res == -EAGAIN || res == -EINTR || res == -ECONNABORTED;
    if (!again || loop_rec_issue(loop, idx, s, ri))
        return STREAM_END;
    loop->stats.rearms++;
    return STREAM_REARMED;
}

static void dispatch(struct loop *loop, uint64_t ud, int32_t res, uint32_t cflags)
{
    uint32_t idx = loop_ud_idx(ud);
    unsigned ri = loop_ud_rec(ud), op = loop_ud_op(ud);
    struct loop_slot_ent *s;
    struct loop_rec *r;
    struct loop_cqe c;
    bool more = (cflags & IORING_CQE_F_MORE) != 0;

    if (idx == LOOP_IDX_INTERNAL) /* debug NOPs, liburing's own timeouts */
        return;
    s = loop_slot_at(loop, idx);
    if (!s || s->state == LOOP_SLOT_FREE || s->gen != loop_ud_gen(ud) || !(s->used & (1u << ri)))
        goto stale;
    r = &s->recs[ri];
    if (op == LOOP_OP_CANCEL) {
        if (!r->cancels)
            goto stale;
        r->cancels--;
        loop_rec_maybe_free(loop, idx, s, ri);
        return;
    }
    if (r->op != op || r->state != LOOP_REC_ARMED)
        goto stale;
    if (s->state != LOOP_SLOT_OPEN) {
        loop->stats.closing_cqes++;
        cqe_drop(loop, op, res, cflags);
        if (!more) {
            r->state = LOOP_REC_DONE;
            loop_rec_maybe_free(loop, idx, s, ri);
        }
        return;
    }
    memset(&c, 0, sizeof(c));
    c.op = (enum loop_op)op;
    c.res = res;
    c.flags = cflags;
    c.tag = r->tag;
    if ((cflags & IORING_CQE_F_BUFFER) && (cflags >> IORING_CQE_BUFFER_SHIFT) < loop->buf_count) {
        c.bid = (uint16_t)(cflags >> IORING_CQE_BUFFER_SHIFT);
        c.buf = loop->buf_mem + (size_t)c.bid * loop->buf_size;
        loop->buf_held[c.bid] = 1;
        loop->buf_free--;
    }
    if (res >= 0)
        r->flags |= LOOP_RF_GOT;
    if (!more && (r->flags & LOOP_RF_STREAM)) {
        /* Re-arm before the handler runs: it may cancel or close, and then
         * finds a request in the kernel to cancel like any other. */
        enum stream_end e = stream_end(loop, idx, s, ri, res);
        if (e == STREAM_SILENT)
            return;
        if (e == STREAM_REARMED) {
            c.flags |= IORING_CQE_F_MORE;
            more = true;
        }
    }
    if (!more) { /* free first: the handler may start the next operation */
        r->state = LOOP_REC_DONE;
        loop_rec_maybe_free(loop, idx, s, ri);
    }
    loop->stats.dispatched++;
    s->handler(s->ctx, &c);
    return;
stale:
    loop->stats.stale_cqes++;
    cqe_drop(loop, op, res, cflags);
}

static unsigned reap(struct loop *loop)
{
    struct io_uring_cqe *cqe;
    struct loop_synth batch[LOOP_REAP_BATCH];
    unsigned head, total = 0;
    /* Bounded by what is there now: completions that handlers cause inline
     * wait for the next iteration. */
    unsigned limit = io_uring_cq_ready(&loop->ring);

    while (total < limit) {
        unsigned n = 0;
        io_uring_for_each_cqe(&loop->ring, head, cqe)
        {
            batch[n].ud = cqe->user_data;
            batch[n].res = cqe->res;
            batch[n].flags = cqe->flags;
            if (++n == LOOP_REAP_BATCH || total + n == limit)
                break;
        }
        if (!n)
            break;
        io_uring_cq_advance(&loop->ring, n);
        loop->stats.cqes += n;
        for (unsigned i = 0; i < n; i++)
            dispatch(loop, batch[i].ud, batch[i].res, batch[i].flags);
        total += n;
    }
    return total;
}

/* ---- deferred work ---- */

static unsigned run_synth(struct loop *loop)
{
    size_t n = loop->synth_len;

    /* By index: handlers may push (and reallocate) while we go. */
    for (size_t i = 0; i < n; i++) {
        struct loop_synth e = loop->synth[i];
        dispatch(loop, e.ud, e.res, e.flags);
    }
    if (n && loop->synth_len > n)
        memmove(loop->synth, loop->synth + n, (loop->synth_len - n) * sizeof(*loop->synth));
    loop->synth_len -= n;
    return (unsigned)n;
}

static unsigned run_releases(struct loop *loop)
{
    unsigned n = 0;

    while (loop->rel_head != LOOP_NONE) {
        uint32_t idx = loop->rel_head;
        struct loop_slot_ent *s = loop_slot_at(loop, idx);
        loop_released_fn *fn = s->on_released;
        void *ctx = s->ctx;

        loop->rel_head = s->next;
        if (loop->rel_head == LOOP_NONE)
            loop->rel_tail = LOOP_NONE;
        /* Recycle first: on_released may open a slot, even this index. */
        s->gen = (s->gen + 1) & LOOP_GEN_MASK;
        s->state = LOOP_SLOT_FREE;
        s->handler = NULL;
        s->ctx = NULL;
        s->on_released = NULL;
        s->next = loop->free_head;
        loop->free_head = idx;
        n++;
        if (fn)
            fn(ctx);
    }
    return n;
}

/* Parked receive streams get as many re-arms as there are free buffers:
 * each re-armed stream with data waiting takes at least one. */
static void run_parked(struct loop *loop)
{
    unsigned budget = loop->buf_free;

    while (loop->parked_len && budget) {
        uint64_t ud = loop->parked[loop->parked_head];
        uint32_t idx = loop_ud_idx(ud);
        unsigned ri = loop_ud_rec(ud);
        struct loop_slot_ent *s = loop_slot_at(loop, idx);

        if (s && s->state == LOOP_SLOT_OPEN && s->gen == loop_ud_gen(ud) &&
            (s->used & (1u << ri)) && s->recs[ri].state == LOOP_REC_PARKED) {
            if (loop_rec_issue(loop, idx, s, ri))
                return; /* no SQE: try next iteration */
            loop->stats.rearms++;
            budget--;
        }
        loop->parked_head++;
        if (!--loop->parked_len)
            loop->parked_head = 0;
    }
}

static void run_cancel_backlog(struct loop *loop)
{
    for (uint32_t idx = 0; idx < loop->nslots && loop->cancel_backlog; idx++) {
        struct loop_slot_ent *s = loop_slot_at(loop, idx);
        for (unsigned ri = 0; ri < LOOP_SLOT_RECS; ri++) {
            struct loop_rec *r = &s->recs[ri];
            if (!(s->used & (1u << ri)) || !(r->flags & LOOP_RF_CANCEL_WANT))
                continue;
            r->flags &= (uint8_t)~LOOP_RF_CANCEL_WANT;
            loop->cancel_backlog--;
            if (r->state == LOOP_REC_ARMED && loop_rec_cancel(loop, idx, s, ri))
                return;
        }
    }
}

static bool deferred_pending(const struct loop *loop)
{
    return loop->synth_len || loop->rel_head != LOOP_NONE || (loop->parked_len && loop->buf_free) ||
           loop->cancel_backlog;
}

static unsigned run_deferred(struct loop *loop)
{
    unsigned n = run_synth(loop);

    if (loop->cancel_backlog)
        run_cancel_backlog(loop);
    if (loop->parked_len && loop->buf_free)
        run_parked(loop);
    return n + run_releases(loop);
}

/* ---- iteration ---- */

/* Submits the batch and, unless wait_ms is 0, waits for one completion or
 * the timeout, in one io_uring_enter. GETEVENTS is always part of it: with
 * DEFER_TASKRUN that is what runs the completion work at all. */
static int enter(struct loop *loop, int wait_ms)
{
    struct io_uring *ring = &loop->ring;
    struct __kernel_timespec ts;
    struct io_uring_cqe *cqe;
    unsigned before = io_uring_sq_ready(ring);
    int rc;

    if (io_uring_cq_has_overflow(ring))
        loop->stats.overflow++;
    if (wait_ms == 0 || io_uring_cq_ready(ring)) {
        if (!before && io_uring_cq_ready(ring) && !io_uring_cq_has_overflow(ring))
            return 0; /* work at hand and nothing to tell the kernel */
        rc = io_uring_submit_and_get_events(ring);
    } else {
        ts.tv_sec = wait_ms / 1000;
        ts.tv_nsec = (long long)(wait_ms % 1000) * 1000000;
        rc = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL);
    }
    loop->stats.enter_calls++;
    loop->stats.sqes_submitted += before - io_uring_sq_ready(ring);
    /* Timeouts, signals, and a full CQ backlog (EBUSY/EAGAIN: reap, then
     * retry next round) are not failures of the loop. EBADR: the kernel
     * dropped completions (no memory for its overflow list); slots waiting
     * for them will never be released, so make it visible. */
    if (rc == -EBADR) {
        loop->stats.cq_dropped++;
        return 0;
    }
    if (rc >= 0 || rc == -ETIME || rc == -EINTR || rc == -EBUSY || rc == -EAGAIN)
        return 0;
    return rc;
}

int loop_run_once(struct loop *loop, int max_wait_ms)
{
    unsigned events;
    int wait, t, rc;

    if (loop->running) /* from a handler or timer: the batch in hand would be lost */
        return -EBUSY;
    loop->running = true;
    loop->stats.iterations++;
    events = run_deferred(loop);
    if (loop->stop || deferred_pending(loop)) {
        wait = 0;
    } else {
        wait = max_wait_ms < 0 || max_wait_ms > LOOP_WAIT_CAP_MS ? LOOP_WAIT_CAP_MS : max_wait_ms;
        t = loop_timers_next_ms(loop);
        if (t >= 0 && t < wait)
            wait = t;
    }
    rc = enter(loop, wait);
    loop->now = loop_clock_ms();
    events += reap(loop);
    events += run_releases(loop);
    events += loop_timers_fire(loop);
    loop->running = false;
    if (rc < 0)
        return rc;
    return events > INT32_MAX ? INT32_MAX : (int)events;
}

int loop_run(struct loop *loop)
{
    while (!loop->stop) {
        int rc = loop_run_once(loop, -1);
        if (rc < 0)
            return rc;
    }
    loop->stop = false;
    return 0;
}

void loop_stop(struct loop *loop)
{
    loop->stop = true;
}

unsigned loop_slots_busy(const struct loop *loop)
{
    unsigned n = 0;
    for (uint32_t i = 0; i < loop->nslots; i++)
        n += loop_slot_at(loop, i)->state != LOOP_SLOT_FREE;
    return n;
}
