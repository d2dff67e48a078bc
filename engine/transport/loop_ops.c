/*
 * loop_ops: the operations an owner queues on its slot. Each takes a free
 * operation record of the slot (its number goes into user_data), copies what
 * the kernel reads later (addresses, iovec arrays) into loop-owned memory,
 * and prepares one SQE. Nothing is submitted here unless the SQ is full:
 * loop_run_once() submits the whole batch with its single io_uring_enter.
 */
#include "loop_impl.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct op_res {
    struct loop_slot_ent *s;
    uint32_t idx;
    unsigned ri;
};

/* Finds the slot and a free record; nothing is changed yet. */
static int op_reserve(struct loop *loop, loop_slot slot, enum loop_op op, struct op_res *o)
{
    if (!(loop->feat.ops & (1u << op)))
        return -EOPNOTSUPP;
    o->s = loop_slot_find(loop, slot, &o->idx);
    if (!o->s || o->s->state != LOOP_SLOT_OPEN)
        return -ESTALE;
    if (o->s->used == 0xffff)
        return -EBUSY;
    o->ri = (unsigned)__builtin_ctz(~(unsigned)o->s->used);
    return 0;
}

/* Takes the record and stamps the SQE (already prepared) with its user_data. */
static void op_commit(struct loop *loop, const struct op_res *o, struct io_uring_sqe *sqe,
                      enum loop_op op, unsigned tag, int fd, void *aux)
{
    struct loop_rec *r = &o->s->recs[o->ri];

    memset(r, 0, sizeof(*r));
    r->aux = aux;
    r->tag = tag;
    r->fd = fd;
    r->op = (uint8_t)op;
    r->state = LOOP_REC_ARMED;
    o->s->used |= (uint16_t)(1u << o->ri);
    if (sqe) {
        loop->last_ud = loop_ud(o->idx, o->s->gen, o->ri, op);
        io_uring_sqe_set_data64(sqe, loop->last_ud);
    }
}

int loop_nop(struct loop *loop, loop_slot slot, unsigned tag)
{
    struct op_res o;
    struct io_uring_sqe *sqe;
    int rc = op_reserve(loop, slot, LOOP_OP_NOP, &o);

    if (rc)
        return rc;
    if (!(sqe = loop_get_sqe(loop)))
        return -EBUSY;
    io_uring_prep_nop(sqe);
    op_commit(loop, &o, sqe, LOOP_OP_NOP, tag, -1, NULL);
    return 0;
}

int loop_connect(struct loop *loop, loop_slot slot, unsigned tag, int fd,
                 const struct sockaddr *addr, socklen_t addrlen)
{
    struct op_res o;
    struct io_uring_sqe *sqe;
    void *copy;
    int rc = op_reserve(loop, slot, LOOP_OP_CONNECT, &o);

    if (rc)
        return rc;
    if (!addr || addrlen == 0 || addrlen > sizeof(struct sockaddr_storage))
        return -EINVAL;
    /* The kernel may read the address after this call returns (the SQE is
     * submitted later, and may be retried from io-wq): keep our own copy. */
    if (!(copy = malloc(addrlen)))
        return -ENOMEM;
    memcpy(copy, addr, addrlen);
    if (!(sqe = loop_get_sqe(loop))) {
        free(copy);
        return -EBUSY;
    }
    io_uring_prep_connect(sqe, fd, copy, addrlen);
    op_commit(loop, &o, sqe, LOOP_OP_CONNECT, tag, fd, copy);
    return 0;
}

static int stream_start(struct loop *loop, loop_slot slot, enum loop_op op, unsigned tag, int fd,
                        uint32_t arg, bool multishot)
{
    struct op_res o;
    struct loop_rec *r;
    int rc = op_reserve(loop, slot, op, &o);

    if (rc)
        return rc;
    op_commit(loop, &o, NULL, op, tag, fd, NULL);
    r = &o.s->recs[o.ri];
    r->arg = arg;
    r->flags = LOOP_RF_STREAM | (multishot ? 0 : LOOP_RF_SINGLE);
    rc = loop_rec_issue(loop, o.idx, o.s, o.ri);
    if (rc) {
        r->state = LOOP_REC_DONE;
        loop_rec_maybe_free(loop, o.idx, o.s, o.ri);
    }
    return rc;
}

int loop_accept(struct loop *loop, loop_slot slot, unsigned tag, int fd, int flags)
{
    return stream_start(loop, slot, LOOP_OP_ACCEPT, tag, fd, (uint32_t)flags,
                        loop->feat.accept_multishot);
}

int loop_recv_multi(struct loop *loop, loop_slot slot, unsigned tag, int fd)
{
    return stream_start(loop, slot, LOOP_OP_RECV_MULTI, tag, fd, 0, loop->feat.recv_multishot);
}

/* (Re-)arms a stream record from what it remembers. */
int loop_rec_issue(struct loop *loop, uint32_t idx, struct loop_slot_ent *s, unsigned ri)
{
    struct loop_rec *r = &s->recs[ri];
    struct io_uring_sqe *sqe = loop_get_sqe(loop);
    bool single = (r->flags & LOOP_RF_SINGLE) != 0;

    if (!sqe)
        return -EBUSY;
    if (r->op == LOOP_OP_ACCEPT) {
        if (single)
            io_uring_prep_accept(sqe, r->fd, NULL, NULL, (int)r->arg);
        else
            io_uring_prep_multishot_accept(sqe, r->fd, NULL, NULL, (int)r->arg);
    } else {
        /* Multishot receive wants len 0 on 6.0/6.1 (a buffer's size is the
         * limit); a single shot names the size. */
        if (single)
            io_uring_prep_recv(sqe, r->fd, NULL, loop->buf_size, 0);
        else
            io_uring_prep_recv_multishot(sqe, r->fd, NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = LOOP_BGID;
    }
    r->state = LOOP_REC_ARMED;
    loop->last_ud = loop_ud(idx, s->gen, ri, r->op);
    io_uring_sqe_set_data64(sqe, loop->last_ud);
    return 0;
}

int loop_recv(struct loop *loop, loop_slot slot, unsigned tag, int fd, void *buf, size_t len,
              int msg_flags)
{
    struct op_res o;
    struct io_uring_sqe *sqe;
    int rc = op_reserve(loop, slot, LOOP_OP_RECV, &o);

    if (rc)
        return rc;
    if (len > UINT32_MAX)
        return -EINVAL;
    if (!(sqe = loop_get_sqe(loop)))
        return -EBUSY;
    io_uring_prep_recv(sqe, fd, buf, len, msg_flags);
    op_commit(loop, &o, sqe, LOOP_OP_RECV, tag, fd, NULL);
    return 0;
}

int loop_send(struct loop *loop, loop_slot slot, unsigned tag, int fd, const void *buf, size_t len,
              int msg_flags)
{
    struct op_res o;
    struct io_uring_sqe *sqe;
    int rc = op_reserve(loop, slot, LOOP_OP_SEND, &o);

    if (rc)
        return rc;
    if (len > UINT32_MAX)
        return -EINVAL;
    if (!(sqe = loop_get_sqe(loop)))
        return -EBUSY;
    io_uring_prep_send(sqe, fd, buf, len, msg_flags);
    op_commit(loop, &o, sqe, LOOP_OP_SEND, tag, fd, NULL);
    return 0;
}

/* The msghdr and a copy of the iovec array, in one allocation. */
struct sendv_aux {
    struct msghdr mh;
    struct iovec iov[];
};

int loop_sendv(struct loop *loop, loop_slot slot, unsigned tag, int fd, const struct iovec *iov,
               unsigned iovcnt, int msg_flags)
{
    struct op_res o;
    struct io_uring_sqe *sqe;
    struct sendv_aux *a;
    int rc = op_reserve(loop, slot, LOOP_OP_SENDV, &o);

    if (rc)
        return rc;
    if (!iov || iovcnt == 0 || iovcnt > LOOP_IOV_MAX)
        return -EINVAL;
    if (!(a = calloc(1, sizeof(*a) + iovcnt * sizeof(a->iov[0]))))
        return -ENOMEM;
    memcpy(a->iov, iov, iovcnt * sizeof(a->iov[0]));
    a->mh.msg_iov = a->iov;
    a->mh.msg_iovlen = iovcnt;
    if (!(sqe = loop_get_sqe(loop))) {
        free(a);
        return -EBUSY;
    }
    io_uring_prep_sendmsg(sqe, fd, &a->mh, (unsigned)msg_flags);
    op_commit(loop, &o, sqe, LOOP_OP_SENDV, tag, fd, a);
    return 0;
}

int loop_send_zc(struct loop *loop, loop_slot slot, unsigned tag, int fd, const void *buf,
                 size_t len, int msg_flags)
{
    struct op_res o;
    struct io_uring_sqe *sqe;
    int rc = op_reserve(loop, slot, LOOP_OP_SEND_ZC, &o);

    if (rc)
        return rc;
    if (len > UINT32_MAX)
        return -EINVAL;
    if (!(sqe = loop_get_sqe(loop)))
        return -EBUSY;
    io_uring_prep_send_zc(sqe, fd, buf, len, msg_flags, 0);
    op_commit(loop, &o, sqe, LOOP_OP_SEND_ZC, tag, fd, NULL);
    return 0;
}

int loop_poll(struct loop *loop, loop_slot slot, unsigned tag, int fd, unsigned events)
{
    struct op_res o;
    struct io_uring_sqe *sqe;
    int rc = op_reserve(loop, slot, LOOP_OP_POLL, &o);

    if (rc)
        return rc;
    if (!(sqe = loop_get_sqe(loop)))
        return -EBUSY;
    io_uring_prep_poll_add(sqe, fd, events);
    op_commit(loop, &o, sqe, LOOP_OP_POLL, tag, fd, NULL);
    return 0;
}

int loop_splice(struct loop *loop, loop_slot slot, unsigned tag, int fd_in, int64_t off_in,
                int fd_out, int64_t off_out, unsigned len, unsigned splice_flags)
{
    struct op_res o;
    struct io_uring_sqe *sqe;
    int rc = op_reserve(loop, slot, LOOP_OP_SPLICE, &o);

    if (rc)
        return rc;
    if (!(sqe = loop_get_sqe(loop)))
        return -EBUSY;
    io_uring_prep_splice(sqe, fd_in, off_in, fd_out, off_out, len, splice_flags);
    op_commit(loop, &o, sqe, LOOP_OP_SPLICE, tag, fd_out, NULL);
    return 0;
}

int loop_close_fd(struct loop *loop, loop_slot slot, unsigned tag, int fd)
{
    struct op_res o;
    struct io_uring_sqe *sqe;
    int rc = op_reserve(loop, slot, LOOP_OP_CLOSE, &o);

    if (rc)
        return rc;
    if (!loop->uring_close) {
        /* Room first: once the fd is closed the result must be delivered. */
        if ((rc = loop_synth_reserve(loop)))
            return rc;
        rc = close(fd) < 0 ? -errno : 0;
        op_commit(loop, &o, NULL, LOOP_OP_CLOSE, tag, fd, NULL);
        return loop_synth_push(loop, loop_ud(o.idx, o.s->gen, o.ri, LOOP_OP_CLOSE), rc);
    }
    if (!(sqe = loop_get_sqe(loop)))
        return -EBUSY;
    io_uring_prep_close(sqe, fd);
    op_commit(loop, &o, sqe, LOOP_OP_CLOSE, tag, fd, NULL);
    return 0;
}

/* Asks the kernel to stop one record's request. Tracked as an operation of
 * the record (op byte CANCEL), so the record, and the slot, outlive the
 * cancel: a late cancel can never hit a newer request reusing the record. */
int loop_rec_cancel(struct loop *loop, uint32_t idx, struct loop_slot_ent *s, unsigned ri)
{
    struct loop_rec *r = &s->recs[ri];
    struct io_uring_sqe *sqe = loop_get_sqe(loop);

    if (!sqe) {
        if (!(r->flags & LOOP_RF_CANCEL_WANT)) {
            r->flags |= LOOP_RF_CANCEL_WANT;
            loop->cancel_backlog++;
        }
        return -EBUSY;
    }
    io_uring_prep_cancel64(sqe, loop_ud(idx, s->gen, ri, r->op), 0);
    io_uring_sqe_set_data64(sqe, loop_ud(idx, s->gen, ri, LOOP_OP_CANCEL));
    r->cancels++;
    loop->stats.cancels++;
    return 0;
}

/* Whether cancelling the record's request means anything. */
static bool rec_cancellable(const struct loop_rec *r)
{
    return r->state == LOOP_REC_ARMED && !r->cancels && r->op != LOOP_OP_CLOSE &&
           r->op != LOOP_OP_NOP;
}

int loop_cancel(struct loop *loop, loop_slot slot, enum loop_op op, int tag)
{
    uint32_t idx;
    struct loop_slot_ent *s = loop_slot_find(loop, slot, &idx);
    int n = 0;

    if (!s || s->state != LOOP_SLOT_OPEN)
        return -ESTALE;
    for (unsigned ri = 0; ri < LOOP_SLOT_RECS; ri++) {
        struct loop_rec *r = &s->recs[ri];
        if (!(s->used & (1u << ri)))
            continue;
        if ((op != LOOP_OP_NONE && r->op != op) || (tag >= 0 && r->tag != (unsigned)tag))
            continue;
        if (r->state == LOOP_REC_PARKED) {
            /* Nothing in the kernel to cancel: complete it ourselves. */
            if (loop_synth_push(loop, loop_ud(idx, s->gen, ri, r->op), -ECANCELED))
                continue;
            r->state = LOOP_REC_ARMED;
            r->flags |= LOOP_RF_CANCEL_REQ;
            n++;
        } else if (rec_cancellable(r) && !(r->flags & LOOP_RF_CANCEL_REQ)) {
            r->flags |= LOOP_RF_CANCEL_REQ;
            loop_rec_cancel(loop, idx, s, ri); /* -EBUSY: retried from the backlog */
            n++;
        }
    }
    return n;
}

/* Used by loop_slot_close(): stop everything the slot has in the kernel. */
void loop_slot_cancel_all(struct loop *loop, uint32_t idx, struct loop_slot_ent *s)
{
    for (unsigned ri = 0; ri < LOOP_SLOT_RECS; ri++) {
        struct loop_rec *r = &s->recs[ri];
        if (!(s->used & (1u << ri)))
            continue;
        r->flags |= LOOP_RF_CANCEL_REQ;
        if (r->state == LOOP_REC_PARKED) {
            r->state = LOOP_REC_DONE;
            loop_rec_maybe_free(loop, idx, s, ri);
        } else if (rec_cancellable(r)) {
            loop_rec_cancel(loop, idx, s, ri);
        }
    }
}

uint64_t loop_debug_last_user_data(const struct loop *loop)
{
    return loop->last_ud;
}

int loop_debug_nop(struct loop *loop, uint64_t user_data)
{
    struct io_uring_sqe *sqe = loop_get_sqe(loop);

    if (!sqe)
        return -EBUSY;
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, user_data);
    loop->last_ud = user_data;
    return 0;
}
