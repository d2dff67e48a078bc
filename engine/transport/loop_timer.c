/*
 * loop_timer: deadlines for thousands of connections without one io_uring
 * timeout each. A binary min-heap of struct loop_timer pointers ordered by
 * (deadline, arming sequence): arm and disarm are O(log n), the nearest
 * deadline is O(1) and bounds the loop's wait in io_uring_enter. The timer
 * records its heap position, so disarming needs no search.
 */
#include "loop_impl.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>

static bool timer_before(const struct loop_timer *a, const struct loop_timer *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void heap_put(struct loop *loop, size_t i, struct loop_timer *t)
{
    loop->heap[i] = t;
    t->heap_pos = (uint32_t)(i + 1);
}

static void sift_up(struct loop *loop, size_t i)
{
    struct loop_timer *t = loop->heap[i];

    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!timer_before(t, loop->heap[parent]))
            break;
        heap_put(loop, i, loop->heap[parent]);
        i = parent;
    }
    heap_put(loop, i, t);
}

static void sift_down(struct loop *loop, size_t i)
{
    struct loop_timer *t = loop->heap[i];
    size_t n = loop->heap_len;

    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n)
            break;
        if (child + 1 < n && timer_before(loop->heap[child + 1], loop->heap[child]))
            child++;
        if (!timer_before(loop->heap[child], t))
            break;
        heap_put(loop, i, loop->heap[child]);
        i = child;
    }
    heap_put(loop, i, t);
}

/* Removes heap[i], filling the hole with the last element. */
static void heap_remove(struct loop *loop, size_t i)
{
    struct loop_timer *t = loop->heap[i];
    struct loop_timer *last = loop->heap[--loop->heap_len];

    t->heap_pos = 0;
    if (last == t)
        return;
    heap_put(loop, i, last);
    /* The moved element may belong above or below its new place. */
    if (i > 0 && timer_before(last, loop->heap[(i - 1) / 2]))
        sift_up(loop, i);
    else
        sift_down(loop, i);
}

void loop_timer_init(struct loop_timer *t, loop_timer_fn *fn, void *ctx)
{
    t->deadline = 0;
    t->seq = 0;
    t->fn = fn;
    t->ctx = ctx;
    t->heap_pos = 0;
}

int loop_timer_arm(struct loop *loop, struct loop_timer *t, uint64_t ms)
{
    uint64_t deadline = loop->now + ms;

    if (deadline < loop->now) /* overflow: "never" in practice */
        deadline = UINT64_MAX;
    if (t->heap_pos) {
        size_t i = t->heap_pos - 1;
        uint64_t old = t->deadline;
        t->deadline = deadline;
        t->seq = ++loop->timer_seq;
        /* A later deadline (or the same one with a newer seq) moves down. */
        if (deadline < old)
            sift_up(loop, i);
        else
            sift_down(loop, i);
        return 0;
    }
    if (loop->heap_len == loop->heap_cap) {
        size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
        struct loop_timer **h = realloc(loop->heap, cap * sizeof(*h));
        if (!h)
            return -ENOMEM;
        loop->heap = h;
        loop->heap_cap = cap;
    }
    t->deadline = deadline;
    t->seq = ++loop->timer_seq;
    loop->heap[loop->heap_len] = t;
    loop->heap_len++;
    sift_up(loop, loop->heap_len - 1);
    return 0;
}

void loop_timer_disarm(struct loop *loop, struct loop_timer *t)
{
    if (!t->heap_pos)
        return;
    heap_remove(loop, t->heap_pos - 1);
}

bool loop_timer_armed(const struct loop_timer *t)
{
    return t->heap_pos != 0;
}

uint64_t loop_now_ms(const struct loop *loop)
{
    return loop->now;
}

size_t loop_timer_count(const struct loop *loop)
{
    return loop->heap_len;
}

/* Milliseconds until the nearest deadline: 0 if one has passed, -1 if none. */
int loop_timers_next_ms(const struct loop *loop)
{
    uint64_t d;

    if (!loop->heap_len)
        return -1;
    d = loop->heap[0]->deadline;
    if (d <= loop->now)
        return 0;
    return d - loop->now > INT_MAX ? INT_MAX : (int)(d - loop->now);
}

unsigned loop_timers_fire(struct loop *loop)
{
    /* Timers armed by the callbacks below wait for the next iteration, even
     * at 0 ms: a callback re-arming itself must not spin here. Such a timer
     * has deadline >= now and a newer seq, so it sorts after every timer
     * already due, and the first one met ends the pass. */
    uint64_t last_seq = loop->timer_seq;
    unsigned fired = 0;

    while (loop->heap_len) {
        struct loop_timer *t = loop->heap[0];
        if (t->deadline > loop->now || t->seq > last_seq)
            break;
        heap_remove(loop, 0);
        fired++;
        loop->stats.timers_fired++;
        t->fn(t->ctx);
    }
    return fired;
}

void loop_timers_clear(struct loop *loop)
{
    for (size_t i = 0; i < loop->heap_len; i++)
        loop->heap[i]->heap_pos = 0;
    free(loop->heap);
    loop->heap = NULL;
    loop->heap_len = loop->heap_cap = 0;
}
