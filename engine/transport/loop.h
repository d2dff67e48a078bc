/*
 * loop: the io_uring event loop of one process (a worker or the sink).
 *
 * One ring per process, single-threaded. Everything that waits on the kernel
 * (a connection, a listener, the Redis client) opens a *slot*: a handler plus
 * a context pointer. Operations are queued on a slot and their completions
 * come back to the handler as struct loop_cqe, with the caller's tag. The
 * 64-bit io_uring user_data of every operation names the slot, the slot's
 * generation and the operation, so a completion that outlives its slot is
 * recognised and dropped instead of reaching the next owner of the index.
 *
 * Lifetime (docs/architecture.md, convention 6): a slot counts its operations in flight
 * (a multishot operation and a SEND_ZC until their final completion).
 * loop_slot_close() cancels them and calls on_released(ctx) only once the
 * kernel has returned every one; the owner frees its memory there. After
 * loop_slot_close() the handler is never called again.
 *
 * Timers live in user space (a binary heap of struct loop_timer embedded in
 * their owners), not as io_uring timeouts: the loop sleeps in io_uring_enter
 * until the nearest deadline. The clock is read once per iteration.
 *
 * Create the loop in the process and thread that uses it (after fork): the
 * ring is set up SINGLE_ISSUER / DEFER_TASKRUN where the kernel allows.
 */
#ifndef RINGMAIL_LOOP_H
#define RINGMAIL_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* Operation kinds; the low byte of every user_data. */
enum loop_op {
    LOOP_OP_NONE = 0,
    LOOP_OP_NOP = 1,
    LOOP_OP_CONNECT = 2,
    LOOP_OP_ACCEPT = 3,     /* multishot where the kernel has it, else re-armed */
    LOOP_OP_RECV = 4,       /* single-shot into the caller's buffer */
    LOOP_OP_RECV_MULTI = 5, /* multishot into the loop's shared buffer pool */
    LOOP_OP_SEND = 6,
    LOOP_OP_SENDV = 7, /* sendmsg with an iovec array */
    LOOP_OP_SEND_ZC = 8,
    LOOP_OP_POLL = 9, /* one-shot poll_add */
    LOOP_OP_SPLICE = 10,
    LOOP_OP_CLOSE = 11,
    LOOP_OP_CANCEL = 12, /* internal: never reaches a handler */
    LOOP_OP__COUNT
};

/* "recv-multi", ...; "unknown" outside the enum; never NULL. */
const char *loop_op_name(enum loop_op op);

/*
 * loop_cqe.flags: the kernel's IORING_CQE_F_* bits (equal values, so owners
 * need not include liburing). F_MORE set: more completions follow for this
 * operation (a multishot stream, or the SEND_ZC notification); the loop sets
 * it itself when it re-arms a stream the kernel ended (buffers ran out, the
 * kernel lacks multishot). F_MORE clear: the operation is over.
 */
#define LOOP_CQE_F_BUFFER        (1u << 0)
#define LOOP_CQE_F_MORE          (1u << 1)
#define LOOP_CQE_F_SOCK_NONEMPTY (1u << 2)
#define LOOP_CQE_F_NOTIF         (1u << 3)

/* A completion as a handler sees it. */
struct loop_cqe {
    enum loop_op op;
    int32_t res;    /* as a CQE: >= 0 or -errno */
    uint32_t flags; /* LOOP_CQE_F_* (the buffer id rides in the top 16 bits, as in a CQE) */
    unsigned tag;   /* the caller's tag for this operation */
    /* F_BUFFER (LOOP_OP_RECV_MULTI): res bytes at buf, from pool buffer bid.
     * The handler owns the buffer until loop_buf_release(loop, bid). */
    uint16_t bid;
    void *buf;
};

struct loop;
typedef void loop_handler_fn(void *ctx, const struct loop_cqe *cqe);
typedef void loop_released_fn(void *ctx);

/* A slot handle: >= 0 (index and generation), or -errno from open. */
typedef int64_t loop_slot;

/* Config flags: test hooks and forced fallbacks. */
enum loop_cfg_flag {
    LOOP_CFG_PLAIN_SETUP = 1 << 0,  /* no IORING_SETUP_* flags at all, as on old kernels */
    LOOP_CFG_NO_MULTISHOT = 1 << 1, /* emulate multishot recv/accept with re-armed single shots */
    LOOP_CFG_NO_SEND_ZC = 1 << 2,   /* act as if the kernel lacked SEND_ZC */
};

struct loop_config {
    unsigned sq_entries; /* 0: 4096 */
    unsigned cq_entries; /* 0: 4 * sq_entries */
    unsigned buf_count;  /* provided-buffer pool: power of two <= 32768; 0: no pool */
    unsigned buf_size;   /* bytes per pool buffer; 0: 16384 */
    unsigned flags;      /* enum loop_cfg_flag */
    /* Test hook: start the setup fallback this many steps down (0: best
     * first). The steps: SINGLE_ISSUER|DEFER_TASKRUN (6.1), SINGLE_ISSUER|
     * COOP_TASKRUN (6.0), COOP_TASKRUN (5.19), CQSIZE only, none. */
    unsigned setup_skip;
};

/* cfg may be NULL for the defaults (no buffer pool). Returns 0 or -errno. */
int loop_create(struct loop **out, const struct loop_config *cfg);
/* Finishes pending releases (bounded wait), drops still-open slots without
 * calling anyone, then tears the ring down. Not from a handler or a timer.
 * NULL is a no-op. */
void loop_destroy(struct loop *loop);

/* What the kernel gave us, for logs and tests. */
struct loop_features {
    unsigned setup_flags;     /* IORING_SETUP_* the ring runs with */
    unsigned kernel_features; /* IORING_FEAT_* */
    unsigned sq_entries;
    unsigned cq_entries;
    unsigned setup_attempts; /* flag sets tried before one was accepted */
    uint32_t ops;            /* bit (1u << enum loop_op) for each usable operation */
    bool buf_ring;           /* the shared buffer pool is registered */
    bool recv_multishot;     /* false once the kernel refused it (or forced off) */
    bool accept_multishot;
    bool send_zc;
};
void loop_features(const struct loop *loop, struct loop_features *out);
/* One line for logs ("setup=SINGLE_ISSUER|DEFER_TASKRUN|... ops=..."); returns
 * snprintf's count. */
int loop_features_describe(const struct loop_features *f, char *buf, size_t len);

/* Counters since creation: the benchmark divides them by messages. */
struct loop_stats {
    uint64_t iterations;
    uint64_t enter_calls;    /* liburing calls that entered the kernel */
    uint64_t sqes_submitted; /* SQEs the kernel consumed */
    uint64_t cqes;           /* CQEs reaped, all kinds */
    uint64_t dispatched;     /* completions delivered to handlers */
    uint64_t stale_cqes;     /* generation or operation mismatch: dropped */
    uint64_t closing_cqes;   /* completions of closing slots: consumed silently */
    uint64_t timers_fired;
    uint64_t enobufs;    /* multishot receives parked for want of a pool buffer */
    uint64_t rearms;     /* streams re-armed by the loop */
    uint64_t cancels;    /* ASYNC_CANCEL requests issued */
    uint64_t overflow;   /* times the kernel flagged a CQ overflow (NODROP backlog) */
    uint64_t cq_dropped; /* CQEs the kernel lost: must stay 0 (see loop.c, EBADR) */
};
void loop_stats(const struct loop *loop, struct loop_stats *out);

/* ---- slots ---- */

/* Returns a handle (>= 0) or -ENOMEM. handler must not be NULL. */
loop_slot loop_slot_open(struct loop *loop, loop_handler_fn *handler, void *ctx);
/*
 * Cancels every operation of the slot; the handler is not called any more.
 * on_released(ctx) (may be NULL) runs from the loop, never from inside this
 * call, after the last completion. Owners close their fds in on_released or
 * later: an fd closed earlier may be reused while the kernel still holds the
 * old file. Returns 0, or -ESTALE for a handle already closed.
 */
int loop_slot_close(struct loop *loop, loop_slot slot, loop_released_fn *on_released);
/* Slots open or waiting for their release: 0 once every owner is gone, so
 * a process can tell when a graceful shutdown has finished. */
unsigned loop_slots_busy(const struct loop *loop);
/* Operations in flight on the slot (0 for a stale handle). */
unsigned loop_slot_inflight(const struct loop *loop, loop_slot slot);

/* ---- operations ----
 * Each queues one SQE (submitting the SQ first if it is full; otherwise the
 * loop submits once per iteration) and returns 0 or -errno:
 * -ESTALE (closed handle), -EBUSY (16 operations already in flight on the
 * slot, or no SQE), -EOPNOTSUPP (the kernel lacks the operation), -EINVAL.
 * Buffers passed in stay the caller's and must stay valid until the
 * operation's final completion (SEND_ZC: until the F_NOTIF one). Addresses
 * and iovec arrays are copied: the caller's may live on the stack. */

int loop_nop(struct loop *loop, loop_slot slot, unsigned tag);
int loop_connect(struct loop *loop, loop_slot slot, unsigned tag, int fd,
                 const struct sockaddr *addr, socklen_t addrlen);
/* A stream of accepted fds (res), each with F_MORE while it continues.
 * flags: SOCK_NONBLOCK | SOCK_CLOEXEC. It ends on an error other than a
 * transient one (EAGAIN, EINTR, ECONNABORTED) or on loop_cancel(). */
int loop_accept(struct loop *loop, loop_slot slot, unsigned tag, int fd, int flags);
int loop_recv(struct loop *loop, loop_slot slot, unsigned tag, int fd, void *buf, size_t len,
              int msg_flags);
/* A stream of received chunks in pool buffers (F_BUFFER, bid, buf). Ends
 * with res 0 (EOF), an error, or -ECANCELED after loop_cancel(). -ENOBUFS is
 * never seen: the stream waits for a buffer to be released and resumes. */
int loop_recv_multi(struct loop *loop, loop_slot slot, unsigned tag, int fd);
/* Never MSG_WAITALL (docs/architecture.md); MSG_MORE and MSG_NOSIGNAL are the usual flags.
 * Keep one send-type operation in flight per socket (or use loop_sendv):
 * two sends waiting for socket space may run in either order, and a short
 * send must be finished before the next bytes go. */
int loop_send(struct loop *loop, loop_slot slot, unsigned tag, int fd, const void *buf, size_t len,
              int msg_flags);
/* sendmsg with up to LOOP_IOV_MAX iovecs (the array is copied). */
#define LOOP_IOV_MAX 64
int loop_sendv(struct loop *loop, loop_slot slot, unsigned tag, int fd, const struct iovec *iov,
               unsigned iovcnt, int msg_flags);
/* Two completions: the send result with F_MORE, then F_NOTIF when the
 * kernel no longer reads buf. -EOPNOTSUPP here when the kernel lacks
 * SEND_ZC; a socket that refuses it (kTLS) answers -EOPNOTSUPP in the CQE. */
int loop_send_zc(struct loop *loop, loop_slot slot, unsigned tag, int fd, const void *buf,
                 size_t len, int msg_flags);
/* One-shot; res is the revents mask. */
int loop_poll(struct loop *loop, loop_slot slot, unsigned tag, int fd, unsigned events);
/* splice(2) semantics: one side must be a pipe (file -> pipe -> socket takes
 * two splices). off -1: the fd's own position / a pipe. */
int loop_splice(struct loop *loop, loop_slot slot, unsigned tag, int fd_in, int64_t off_in,
                int fd_out, int64_t off_out, unsigned len, unsigned splice_flags);
/* io_uring close where the kernel has it, else close(2) with the result
 * delivered as a completion on the next iteration. */
int loop_close_fd(struct loop *loop, loop_slot slot, unsigned tag, int fd);
/* Cancels the slot's operations matching op (LOOP_OP_NONE: any) and tag
 * (< 0: any); they complete with -ECANCELED (or normally, if too late).
 * Returns how many were asked to stop, or -ESTALE. */
int loop_cancel(struct loop *loop, loop_slot slot, enum loop_op op, int tag);

/* Gives a pool buffer back. 0, or -EINVAL for a bid not held by a handler. */
int loop_buf_release(struct loop *loop, unsigned bid);
/* Pool buffers currently available to the kernel. */
unsigned loop_buf_free(const struct loop *loop);

/* ---- running ---- */

/* One iteration: submit what was queued, wait up to max_wait_ms (< 0: until
 * something happens, bounded by the nearest timer) for completions, dispatch
 * them, fire expired timers. Returns completions + timers handled, or -errno
 * on a ring failure. A signal ends the wait early and returns 0. */
int loop_run_once(struct loop *loop, int max_wait_ms);
/* Iterates until loop_stop(); returns 0 or -errno. */
int loop_run(struct loop *loop);
/* Safe from handlers and timers (not from signal handlers: set a flag there). */
void loop_stop(struct loop *loop);

/* ---- timers ---- */

typedef void loop_timer_fn(void *ctx);

/* Embedded in its owner; fields are the loop's. */
struct loop_timer {
    uint64_t deadline; /* loop_now_ms() value at which it fires */
    uint64_t seq;      /* arming order: equal deadlines fire first-armed first */
    loop_timer_fn *fn;
    void *ctx;
    uint32_t heap_pos; /* 1-based index in the loop's heap; 0: not armed */
};

void loop_timer_init(struct loop_timer *t, loop_timer_fn *fn, void *ctx);
/* Arms (or re-arms) to fire ms after loop_now_ms(). 0 or -ENOMEM. */
int loop_timer_arm(struct loop *loop, struct loop_timer *t, uint64_t ms);
/* No-op when not armed. Must be called before the owner frees t. */
void loop_timer_disarm(struct loop *loop, struct loop_timer *t);
bool loop_timer_armed(const struct loop_timer *t);
/* Monotonic milliseconds, read once per iteration. */
uint64_t loop_now_ms(const struct loop *loop);
/* Armed timers. */
size_t loop_timer_count(const struct loop *loop);

/* ---- test and diagnostic hooks ---- */

/* user_data of the SQE queued last (0 if none). */
uint64_t loop_debug_last_user_data(const struct loop *loop);
/* Queues an untracked NOP carrying any user_data: lets a test replay a
 * completion of a slot generation that is gone. */
int loop_debug_nop(struct loop *loop, uint64_t user_data);

#endif
