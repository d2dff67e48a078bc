/*
 * loop_setup: bringing the ring up and down. Setup flags are tried best
 * first and dropped step by step on EINVAL, recording what took effect; the
 * opcode probe decides which operations are offered; the provided-buffer
 * pool is registered as a buffer ring. Also the op name table and the
 * feature line for logs.
 */
#include "loop_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static const char *const op_names[LOOP_OP__COUNT] = {
    [LOOP_OP_NONE] = "none",     [LOOP_OP_NOP] = "nop",       [LOOP_OP_CONNECT] = "connect",
    [LOOP_OP_ACCEPT] = "accept", [LOOP_OP_RECV] = "recv",     [LOOP_OP_RECV_MULTI] = "recv-multi",
    [LOOP_OP_SEND] = "send",     [LOOP_OP_SENDV] = "sendv",   [LOOP_OP_SEND_ZC] = "send-zc",
    [LOOP_OP_POLL] = "poll",     [LOOP_OP_SPLICE] = "splice", [LOOP_OP_CLOSE] = "close",
    [LOOP_OP_CANCEL] = "cancel",
};

const char *loop_op_name(enum loop_op op)
{
    if ((unsigned)op >= LOOP_OP__COUNT || !op_names[op])
        return "unknown";
    return op_names[op];
}

/* ---- setup ---- */

/*
 * Best first. DEFER_TASKRUN (6.1) runs completion work only when we enter
 * with GETEVENTS, i.e. in our own batches; SINGLE_ISSUER (6.0) is its
 * prerequisite; COOP_TASKRUN (5.19) avoids IPIs; SUBMIT_ALL (5.18) keeps a
 * batch going past a bad SQE; CLAMP keeps too-large sizes from failing.
 */
static const unsigned setup_tries[] = {
    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL |
        IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP,
    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP,
    IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SUBMIT_ALL |
        IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP,
    IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP,
    0,
};

#define SETUP_TRIES (sizeof(setup_tries) / sizeof(setup_tries[0]))

static int ring_setup(struct loop *loop, unsigned sq, unsigned cq, unsigned skip)
{
    int rc = -EINVAL;

    for (size_t i = skip < SETUP_TRIES ? skip : SETUP_TRIES - 1; i < SETUP_TRIES; i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof(p));
        p.flags = setup_tries[i];
        p.cq_entries = cq;
        loop->feat.setup_attempts++;
        rc = io_uring_queue_init_params(sq, &loop->ring, &p);
        if (rc == 0) {
            loop->feat.setup_flags = loop->ring.flags;
            loop->feat.kernel_features = p.features;
            loop->feat.sq_entries = p.sq_entries;
            loop->feat.cq_entries = p.cq_entries;
            return 0;
        }
        if (rc != -EINVAL) /* ENOMEM, EPERM (io_uring_disabled), ENOSYS: no point going on */
            return rc;
    }
    return rc;
}

static void probe_ops(struct loop *loop, unsigned cfg_flags)
{
    static const struct {
        enum loop_op op;
        int uring_op;
    } map[] = {
        {LOOP_OP_NOP, IORING_OP_NOP},
        {LOOP_OP_CONNECT, IORING_OP_CONNECT},
        {LOOP_OP_ACCEPT, IORING_OP_ACCEPT},
        {LOOP_OP_RECV, IORING_OP_RECV},
        {LOOP_OP_RECV_MULTI, IORING_OP_RECV},
        {LOOP_OP_SEND, IORING_OP_SEND},
        {LOOP_OP_SENDV, IORING_OP_SENDMSG},
        {LOOP_OP_SEND_ZC, IORING_OP_SEND_ZC},
        {LOOP_OP_POLL, IORING_OP_POLL_ADD},
        {LOOP_OP_SPLICE, IORING_OP_SPLICE},
        {LOOP_OP_CANCEL, IORING_OP_ASYNC_CANCEL},
    };
    /* NULL only where probing itself is missing (before 5.6): offer
     * everything and let the CQEs say EINVAL. */
    struct io_uring_probe *p = io_uring_get_probe_ring(&loop->ring);
    uint32_t ops = 0;

    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (!p || io_uring_opcode_supported(p, map[i].uring_op))
            ops |= 1u << map[i].op;
    loop->uring_close = !p || io_uring_opcode_supported(p, IORING_OP_CLOSE);
    if (p)
        io_uring_free_probe(p);
    ops |= 1u << LOOP_OP_CLOSE; /* close(2) fallback */
    if (!loop->br)
        ops &= ~(1u << LOOP_OP_RECV_MULTI);
    if (cfg_flags & LOOP_CFG_NO_SEND_ZC)
        ops &= ~(1u << LOOP_OP_SEND_ZC);
    loop->feat.ops = ops;
    loop->feat.send_zc = (ops >> LOOP_OP_SEND_ZC) & 1;
    loop->feat.recv_multishot = loop->br && !(cfg_flags & LOOP_CFG_NO_MULTISHOT);
    loop->feat.accept_multishot = !(cfg_flags & LOOP_CFG_NO_MULTISHOT);
}

/* The shared pool: one group of buf_count buffers that every receive stream
 * draws from, so an idle connection holds no receive memory. */
static int pool_setup(struct loop *loop, unsigned count, unsigned size)
{
    struct io_uring_buf_reg reg;
    int rc;

    if (count == 0)
        return 0;
    if (count > 32768 || (count & (count - 1)) || size == 0)
        return -EINVAL;
    /* The ring must be page aligned (5.19): mmap gives that. */
    loop->br_bytes = (size_t)count * sizeof(struct io_uring_buf);
    loop->br =
        mmap(NULL, loop->br_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (loop->br == MAP_FAILED) {
        loop->br = NULL;
        return -errno;
    }
    loop->buf_mem_bytes = (size_t)count * size;
    loop->buf_mem =
        mmap(NULL, loop->buf_mem_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    loop->buf_held = calloc(count, 1);
    if (loop->buf_mem == MAP_FAILED || !loop->buf_held) {
        if (loop->buf_mem == MAP_FAILED)
            loop->buf_mem = NULL;
        return -ENOMEM;
    }
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (uint64_t)(uintptr_t)loop->br;
    reg.ring_entries = count;
    reg.bgid = LOOP_BGID;
    rc = io_uring_register_buf_ring(&loop->ring, &reg, 0);
    if (rc) {
        /* Before 5.19: no ring-mapped buffers; recv-multi is then unsupported. */
        munmap(loop->br, loop->br_bytes);
        loop->br = NULL;
        return rc == -EINVAL ? 0 : rc;
    }
    loop->buf_count = count;
    loop->buf_size = size;
    io_uring_buf_ring_init(loop->br);
    for (unsigned bid = 0; bid < count; bid++)
        loop_buf_add(loop, bid);
    loop->buf_free = count;
    loop->feat.buf_ring = true;
    return 0;
}

int loop_create(struct loop **out, const struct loop_config *cfg)
{
    struct loop_config c = {0};
    struct loop *loop;
    int rc;

    *out = NULL;
    if (cfg)
        c = *cfg;
    if (!c.sq_entries)
        c.sq_entries = 4096;
    if (!c.cq_entries)
        c.cq_entries = 4 * c.sq_entries;
    if (!c.buf_size)
        c.buf_size = 16384;
    if (!(loop = calloc(1, sizeof(*loop))))
        return -ENOMEM;
    loop->ring.ring_fd = -1;
    loop->free_head = loop->rel_head = loop->rel_tail = LOOP_NONE;
    loop->cfg_flags = c.flags;
    rc = ring_setup(loop, c.sq_entries, c.cq_entries,
                    (c.flags & LOOP_CFG_PLAIN_SETUP) ? SETUP_TRIES - 1 : c.setup_skip);
    if (rc) {
        loop->ring.ring_fd = -1;
        goto fail;
    }
    if ((rc = pool_setup(loop, c.buf_count, c.buf_size)))
        goto fail;
    probe_ops(loop, c.flags);
    /* Without cancellation a slot with a pending receive could never close. */
    if (!(loop->feat.ops & (1u << LOOP_OP_CANCEL))) {
        rc = -EOPNOTSUPP;
        goto fail;
    }
    loop->feat.buf_ring = loop->br != NULL;
    loop->now = loop_clock_ms();
    *out = loop;
    return 0;
fail:
    loop_destroy(loop);
    return rc;
}

static void pool_free(struct loop *loop)
{
    if (loop->br) {
        io_uring_unregister_buf_ring(&loop->ring, LOOP_BGID);
        munmap(loop->br, loop->br_bytes);
    }
    if (loop->buf_mem)
        munmap(loop->buf_mem, loop->buf_mem_bytes);
    free(loop->buf_held);
}

void loop_destroy(struct loop *loop)
{
    if (!loop)
        return;
    loop_timers_clear(loop); /* owners are going away: no callbacks now */
    if (loop->ring.ring_fd >= 0) {
        /* Owners should have closed their slots; drop the rest silently, then
         * let pending releases finish so on_released callbacks still run. */
        for (uint32_t i = 0; i < loop->nslots; i++) {
            struct loop_slot_ent *s = loop_slot_at(loop, i);
            if (s->state == LOOP_SLOT_OPEN)
                loop_slot_close(loop, (loop_slot)s->gen << 32 | i, NULL);
        }
        uint64_t until = loop_clock_ms() + 2000;
        for (;;) {
            bool busy = false;
            for (uint32_t i = 0; i < loop->nslots && !busy; i++)
                busy = loop_slot_at(loop, i)->state != LOOP_SLOT_FREE;
            if (!busy || loop_clock_ms() > until || loop_run_once(loop, 10) < 0)
                break;
        }
        pool_free(loop);
        io_uring_queue_exit(&loop->ring);
    } else {
        pool_free(loop);
    }
    for (uint32_t i = 0; i < loop->nchunks; i++) {
        for (uint32_t j = 0; j < LOOP_CHUNK_SLOTS; j++)
            for (unsigned r = 0; r < LOOP_SLOT_RECS; r++)
                free(loop->chunks[i][j].recs[r].aux);
        free(loop->chunks[i]);
    }
    free(loop->chunks);
    free(loop->parked);
    free(loop->synth);
    free(loop);
}

void loop_features(const struct loop *loop, struct loop_features *out)
{
    *out = loop->feat;
}

int loop_features_describe(const struct loop_features *f, char *buf, size_t len)
{
    static const struct {
        unsigned bit;
        const char *name;
    } flags[] = {
        {IORING_SETUP_SINGLE_ISSUER, "SINGLE_ISSUER"},
        {IORING_SETUP_DEFER_TASKRUN, "DEFER_TASKRUN"},
        {IORING_SETUP_COOP_TASKRUN, "COOP_TASKRUN"},
        {IORING_SETUP_TASKRUN_FLAG, "TASKRUN_FLAG"},
        {IORING_SETUP_SUBMIT_ALL, "SUBMIT_ALL"},
        {IORING_SETUP_CQSIZE, "CQSIZE"},
        {IORING_SETUP_CLAMP, "CLAMP"},
    };
    char setup[160] = "";
    char ops[160] = "";
    size_t n = 0;

    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]) && n < sizeof(setup); i++)
        if (f->setup_flags & flags[i].bit)
            n +=
                (size_t)snprintf(setup + n, sizeof(setup) - n, "%s%s", n ? "|" : "", flags[i].name);
    n = 0;
    for (unsigned op = 1; op < LOOP_OP__COUNT && n < sizeof(ops); op++)
        if (f->ops & (1u << op))
            n += (size_t)snprintf(ops + n, sizeof(ops) - n, "%s%s", n ? "," : "", loop_op_name(op));
    return snprintf(buf, len,
                    "setup=%s tries=%u sq=%u cq=%u nodrop=%d ext_arg=%d buf_ring=%d "
                    "recv_multishot=%d accept_multishot=%d send_zc=%d ops=%s",
                    setup[0] ? setup : "none", f->setup_attempts, f->sq_entries, f->cq_entries,
                    !!(f->kernel_features & IORING_FEAT_NODROP),
                    !!(f->kernel_features & IORING_FEAT_EXT_ARG), f->buf_ring, f->recv_multishot,
                    f->accept_multishot, f->send_zc, ops);
}

void loop_stats(const struct loop *loop, struct loop_stats *out)
{
    *out = loop->stats;
    out->cq_dropped = loop->stats.cq_dropped + *loop->ring.cq.koverflow;
}
