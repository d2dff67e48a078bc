/*
 * loop_impl: what loop.c, loop_ops.c and loop_timer.c share and nobody else
 * sees: the ring, the slot table, the operation records, the user_data
 * layout.
 *
 * user_data (64 bits):  slot index 28 | generation 24 | record 4 | op 8
 * The record number makes every in-flight operation's user_data unique, so
 * ASYNC_CANCEL by user_data hits exactly one request; the op byte keeps a
 * completion readable in a trace. Index 0xFFFFFFF is reserved for untracked
 * internal SQEs (and liburing's own LIBURING_UDATA_TIMEOUT, all ones).
 */
#ifndef RINGMAIL_LOOP_IMPL_H
#define RINGMAIL_LOOP_IMPL_H

#include "loop.h"

#include <liburing.h>

#define LOOP_IDX_BITS     28
#define LOOP_GEN_BITS     24
#define LOOP_IDX_INTERNAL ((1u << LOOP_IDX_BITS) - 1)
#define LOOP_GEN_MASK     ((1u << LOOP_GEN_BITS) - 1)
#define LOOP_SLOT_RECS    16 /* operations in flight per slot: 4 bits of user_data */
#define LOOP_CHUNK_SLOTS  256
#define LOOP_NONE         UINT32_MAX
#define LOOP_BGID         0 /* the one provided-buffer group */

static inline uint64_t loop_ud(uint32_t idx, uint32_t gen, unsigned rec, unsigned op)
{
    return (uint64_t)idx << 36 | (uint64_t)(gen & LOOP_GEN_MASK) << 12 | (uint64_t)(rec & 15) << 8 |
           (op & 0xff);
}
static inline uint32_t loop_ud_idx(uint64_t ud)
{
    return (uint32_t)(ud >> 36);
}
static inline uint32_t loop_ud_gen(uint64_t ud)
{
    return (uint32_t)(ud >> 12) & LOOP_GEN_MASK;
}
static inline unsigned loop_ud_rec(uint64_t ud)
{
    return (unsigned)(ud >> 8) & 15;
}
static inline unsigned loop_ud_op(uint64_t ud)
{
    return (unsigned)ud & 0xff;
}

enum loop_rec_state {
    LOOP_REC_FREE = 0,
    LOOP_REC_ARMED = 1,  /* the kernel (or the synthetic queue) owes a completion */
    LOOP_REC_PARKED = 2, /* a receive stream waiting for a pool buffer: nothing in the kernel */
    LOOP_REC_DONE = 3,   /* final completion seen; waiting for our cancel's completion */
};

enum loop_rec_flag {
    LOOP_RF_STREAM = 1 << 0,      /* re-armed by the loop: accept, recv-multi */
    LOOP_RF_SINGLE = 1 << 1,      /* stream emulated with single shots */
    LOOP_RF_GOT = 1 << 2,         /* a successful completion was seen */
    LOOP_RF_CANCEL_REQ = 1 << 3,  /* the owner cancelled: do not re-arm */
    LOOP_RF_CANCEL_WANT = 1 << 4, /* a cancel is owed but no SQE was available */
    LOOP_RF_FELLBACK = 1 << 5,    /* this stream found multishot refused */
};

struct loop_rec {
    void *aux;    /* loop-owned copy (sockaddr, msghdr + iovecs), freed with the record */
    uint32_t tag; /* the caller's */
    int32_t fd;
    uint32_t arg; /* accept flags */
    uint8_t op;
    uint8_t state;
    uint8_t flags;
    uint8_t cancels; /* our ASYNC_CANCELs targeting this record, not completed yet */
};

enum loop_slot_state {
    LOOP_SLOT_FREE = 0,
    LOOP_SLOT_OPEN = 1,
    LOOP_SLOT_CLOSING = 2,   /* cancels issued, waiting for completions */
    LOOP_SLOT_RELEASING = 3, /* nothing in flight: on_released queued */
};

struct loop_slot_ent {
    loop_handler_fn *handler;
    void *ctx;
    loop_released_fn *on_released;
    uint32_t gen;
    uint32_t next; /* free list or release queue link */
    uint16_t used; /* bit per record in use */
    uint8_t state;
    struct loop_rec recs[LOOP_SLOT_RECS];
};

struct loop_synth {
    uint64_t ud;
    int32_t res;
    uint32_t flags;
};

struct loop {
    struct io_uring ring;
    struct loop_features feat;
    struct loop_stats stats;
    uint64_t now;
    uint64_t last_ud;
    bool stop;
    bool running;     /* inside loop_run_once() */
    bool uring_close; /* IORING_OP_CLOSE usable */
    unsigned cfg_flags;

    /* Slots in fixed chunks: pointers stay valid while handlers open more. */
    struct loop_slot_ent **chunks;
    uint32_t nchunks;
    uint32_t nslots;
    uint32_t free_head;
    uint32_t rel_head, rel_tail; /* slots whose on_released is due */
    unsigned cancel_backlog;

    /* Provided-buffer pool. */
    struct io_uring_buf_ring *br;
    size_t br_bytes;
    unsigned char *buf_mem;
    size_t buf_mem_bytes;
    unsigned buf_count, buf_size, buf_free;
    unsigned char *buf_held; /* 1 while a handler holds the buffer */

    /* Receive streams parked on -ENOBUFS, oldest first (user_data values). */
    uint64_t *parked;
    size_t parked_head, parked_len, parked_cap;

    /* Completions made in user space (close(2) fallback, cancelled parked streams). */
    struct loop_synth *synth;
    size_t synth_len, synth_cap;

    /* Timer heap (loop_timer.c). */
    struct loop_timer **heap;
    size_t heap_len, heap_cap;
    uint64_t timer_seq;
};

/* loop.c */
uint64_t loop_clock_ms(void);
void loop_buf_add(struct loop *loop, unsigned bid);
struct loop_slot_ent *loop_slot_at(const struct loop *loop, uint32_t idx);
struct loop_slot_ent *loop_slot_find(const struct loop *loop, loop_slot slot, uint32_t *idx);
struct io_uring_sqe *loop_get_sqe(struct loop *loop);
void loop_rec_maybe_free(struct loop *loop, uint32_t idx, struct loop_slot_ent *s, unsigned ri);
int loop_synth_push(struct loop *loop, uint64_t ud, int32_t res);
int loop_synth_reserve(struct loop *loop);

/* loop_ops.c */
int loop_rec_issue(struct loop *loop, uint32_t idx, struct loop_slot_ent *s, unsigned ri);
int loop_rec_cancel(struct loop *loop, uint32_t idx, struct loop_slot_ent *s, unsigned ri);
void loop_slot_cancel_all(struct loop *loop, uint32_t idx, struct loop_slot_ent *s);

/* loop_timer.c */
int loop_timers_next_ms(const struct loop *loop);
unsigned loop_timers_fire(struct loop *loop);
void loop_timers_clear(struct loop *loop);

#endif
