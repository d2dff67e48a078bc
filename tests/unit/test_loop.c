/*
 * test_loop: the io_uring event loop against real sockets on loopback:
 * timers, accept/connect/send/recv, the shared buffer pool (reuse, ENOBUFS
 * parking), sendmsg, SEND_ZC, poll, splice, cancellation, slot close with
 * operations in flight and stale generations, the plain-setup fallback, and
 * a thousand connections at once.
 */
#include "check.h"
#include "loop.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Iterates until cond holds (3 s at most, then the CHECK fails). */
#define RUN_UNTIL(loop, cond)                                                                      \
    do {                                                                                           \
        uint64_t ru_end_ = mono_ms() + 3000;                                                       \
        while (!(cond) && mono_ms() < ru_end_)                                                     \
            loop_run_once((loop), 5);                                                              \
        CHECK(cond);                                                                               \
    } while (0)

/* ---- a recording owner ---- */

#define EV_MAX 512

struct rec {
    struct loop *loop;
    int nev;
    struct loop_cqe ev[EV_MAX];
    int finals;
    int fds[8];
    int nfds;
    unsigned char *data; /* recv-multi bytes, appended */
    size_t len, cap;
    int keep; /* hold pool buffers instead of releasing them */
    uint16_t held[64];
    int nheld;
    int released;
};

static void rec_init(struct rec *r, struct loop *loop, unsigned char *data, size_t cap)
{
    memset(r, 0, sizeof(*r));
    r->loop = loop;
    r->data = data;
    r->cap = cap;
}

static void on_cqe(void *ctx, const struct loop_cqe *c)
{
    struct rec *r = ctx;

    if (r->nev < EV_MAX)
        r->ev[r->nev] = *c;
    r->nev++;
    if (!(c->flags & LOOP_CQE_F_MORE))
        r->finals++;
    if (c->op == LOOP_OP_ACCEPT && c->res >= 0 && r->nfds < 8)
        r->fds[r->nfds++] = c->res;
    if (c->flags & LOOP_CQE_F_BUFFER) {
        CHECK(c->buf != NULL);
        if (c->res > 0 && r->data && r->len + (size_t)c->res <= r->cap) {
            memcpy(r->data + r->len, c->buf, (size_t)c->res);
            r->len += (size_t)c->res;
        }
        if (r->keep && r->nheld < 64)
            r->held[r->nheld++] = c->bid;
        else
            CHECK_INT(loop_buf_release(r->loop, c->bid), 0);
    }
}

static void on_released(void *ctx)
{
    ((struct rec *)ctx)->released++;
}

static const struct loop_cqe *last_ev(const struct rec *r)
{
    static const struct loop_cqe none = {.op = LOOP_OP_NONE, .res = -9999};
    return r->nev > 0 && r->nev <= EV_MAX ? &r->ev[r->nev - 1] : &none;
}

static void fill_pattern(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)((i * 131 + seed * 7 + (i >> 8)) & 0xff);
}

/* ---- sockets ---- */

static int tcp_listener(struct sockaddr_in *addr)
{
    socklen_t len = sizeof(*addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    memset(addr, 0, sizeof(*addr));
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)addr, sizeof(*addr)) || listen(fd, 64) ||
        getsockname(fd, (struct sockaddr *)addr, &len)) {
        perror("listener");
        exit(1);
    }
    return fd;
}

/* A connected loopback TCP pair made with plain syscalls (for tests whose
 * subject is not connect/accept). */
static void tcp_pair(int fds[2])
{
    struct sockaddr_in a;
    int l = tcp_listener(&a);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct pollfd p = {.fd = l, .events = POLLIN};

    if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a)) || poll(&p, 1, 2000) != 1) {
        perror("tcp_pair");
        exit(1);
    }
    fds[0] = c;
    fds[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    close(l);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    fcntl(fds[1], F_SETFL, O_NONBLOCK);
}

static void unix_pair(int fds[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds)) {
        perror("socketpair");
        exit(1);
    }
}

static struct loop *new_loop(unsigned buf_count, unsigned buf_size, unsigned flags)
{
    struct loop_config cfg = {
        .sq_entries = 256, .buf_count = buf_count, .buf_size = buf_size, .flags = flags};
    struct loop *loop = NULL;
    int rc = loop_create(&loop, &cfg);

    CHECK_INT(rc, 0);
    if (rc) {
        fprintf(stderr, "loop_create: %s\n", strerror(-rc));
        exit(1);
    }
    return loop;
}

/* ---- names and features ---- */

static void test_names_features(void)
{
    struct loop *loop = new_loop(8, 64, 0);
    struct loop_features f;
    char line[512];

    CHECK_STR(loop_op_name(LOOP_OP_RECV_MULTI), "recv-multi");
    CHECK_STR(loop_op_name(LOOP_OP_SEND_ZC), "send-zc");
    CHECK_STR(loop_op_name(LOOP_OP__COUNT), "unknown");
    for (int op = 0; op < LOOP_OP__COUNT; op++)
        CHECK(strcmp(loop_op_name((enum loop_op)op), "unknown") != 0);
    loop_features(loop, &f);
    CHECK(f.sq_entries >= 256);
    CHECK(f.cq_entries >= f.sq_entries);
    CHECK(f.kernel_features & IORING_FEAT_NODROP);
    CHECK(f.buf_ring);
    CHECK(f.ops & (1u << LOOP_OP_RECV));
    CHECK(f.ops & (1u << LOOP_OP_CANCEL));
    CHECK(loop_features_describe(&f, line, sizeof(line)) > 0);
    printf("loop features: %s\n", line);
    /* Invalid pool sizes are refused. */
    struct loop_config bad = {.buf_count = 3, .buf_size = 64};
    struct loop *l2 = NULL;
    CHECK_INT(loop_create(&l2, &bad), -EINVAL);
    CHECK(l2 == NULL);
    loop_destroy(loop);
    loop_destroy(NULL);
}

/* ---- timers ---- */

struct torder {
    struct loop *loop;
    char seen[16];
    int n;
    uint64_t at[16];
};

struct tnode {
    struct loop_timer t;
    struct torder *o;
    char name;
};

static void tnode_fire(void *ctx)
{
    struct tnode *n = ctx;
    if (n->o->n < 15) {
        n->o->at[n->o->n] = loop_now_ms(n->o->loop);
        n->o->seen[n->o->n++] = n->name;
    }
}

static void test_timers_order(void)
{
    struct loop *loop = new_loop(0, 0, 0);
    struct torder o = {.loop = loop};
    struct tnode n[6];
    const char *names = "ABCDEF";
    uint64_t start = loop_now_ms(loop);

    for (int i = 0; i < 6; i++) {
        n[i].o = &o;
        n[i].name = names[i];
        loop_timer_init(&n[i].t, tnode_fire, &n[i]);
    }
    CHECK_INT(loop_timer_arm(loop, &n[0].t, 30), 0); /* A */
    CHECK_INT(loop_timer_arm(loop, &n[1].t, 10), 0); /* B */
    CHECK_INT(loop_timer_arm(loop, &n[2].t, 20), 0); /* C */
    CHECK_INT(loop_timer_arm(loop, &n[3].t, 10), 0); /* D: same deadline as B, armed later */
    CHECK_INT(loop_timer_arm(loop, &n[4].t, 5), 0);  /* E: disarmed below */
    CHECK_INT(loop_timer_arm(loop, &n[5].t, 40), 0); /* F: re-armed to 1 ms */
    CHECK_INT(loop_timer_count(loop), 6);
    CHECK(loop_timer_armed(&n[4].t));
    loop_timer_disarm(loop, &n[4].t);
    loop_timer_disarm(loop, &n[4].t); /* twice is harmless */
    CHECK(!loop_timer_armed(&n[4].t));
    CHECK_INT(loop_timer_arm(loop, &n[5].t, 1), 0);
    CHECK_INT(loop_timer_count(loop), 5);
    RUN_UNTIL(loop, o.n == 5);
    o.seen[o.n] = 0;
    CHECK_STR(o.seen, "FBDCA");
    /* Never early: each fired at or after its deadline. */
    static const int want_ms[] = {1, 10, 10, 20, 30};
    for (int i = 0; i < 5 && i < o.n; i++)
        CHECK(o.at[i] >= start + (uint64_t)want_ms[i]);
    CHECK_INT(loop_timer_count(loop), 0);
    /* Re-arming to a later deadline moves it back. */
    o.n = 0;
    CHECK_INT(loop_timer_arm(loop, &n[0].t, 2), 0);
    CHECK_INT(loop_timer_arm(loop, &n[1].t, 4), 0);
    CHECK_INT(loop_timer_arm(loop, &n[0].t, 8), 0);
    RUN_UNTIL(loop, o.n == 2);
    o.seen[o.n] = 0;
    CHECK_STR(o.seen, "BA");
    loop_destroy(loop);
}

struct self_rearm {
    struct loop *loop;
    struct loop_timer t;
    int fired;
};

static void self_rearm_fire(void *ctx)
{
    struct self_rearm *s = ctx;
    s->fired++;
    loop_timer_arm(s->loop, &s->t, 0);
}

/* A callback re-arming itself at 0 ms fires once per iteration, no spin. */
static void test_timer_self_rearm(void)
{
    struct loop *loop = new_loop(0, 0, 0);
    struct self_rearm s = {.loop = loop};

    loop_timer_init(&s.t, self_rearm_fire, &s);
    loop_timer_arm(loop, &s.t, 0);
    loop_run_once(loop, 0);
    CHECK_INT(s.fired, 1);
    loop_run_once(loop, 0);
    CHECK_INT(s.fired, 2);
    loop_timer_disarm(loop, &s.t);
    loop_run_once(loop, 0);
    CHECK_INT(s.fired, 2);
    loop_destroy(loop);
}

#define MANY_TIMERS 10000

struct mtimer {
    struct loop_timer t;
    uint64_t *last;
    int *fired;
    int *bad;
};

static void mtimer_fire(void *ctx)
{
    struct mtimer *m = ctx;
    if (m->t.deadline < *m->last)
        (*m->bad)++;
    *m->last = m->t.deadline;
    (*m->fired)++;
}

static void test_timers_many(void)
{
    struct loop *loop = new_loop(0, 0, 0);
    struct mtimer *m = calloc(MANY_TIMERS, sizeof(*m));
    uint64_t last = 0;
    int fired = 0, bad = 0, armed = 0;
    struct loop_stats st;

    for (int i = 0; i < MANY_TIMERS; i++) {
        m[i].last = &last;
        m[i].fired = &fired;
        m[i].bad = &bad;
        loop_timer_init(&m[i].t, mtimer_fire, &m[i]);
        CHECK_INT(loop_timer_arm(loop, &m[i].t, (uint64_t)((i * 7919) % 40)), 0);
    }
    /* Disarm every third, re-arm every fifth to a new deadline. */
    for (int i = 0; i < MANY_TIMERS; i++) {
        if (i % 3 == 0)
            loop_timer_disarm(loop, &m[i].t);
        else if (i % 5 == 0)
            loop_timer_arm(loop, &m[i].t, (uint64_t)((i * 31) % 25));
        armed += i % 3 != 0;
    }
    CHECK_INT(loop_timer_count(loop), armed);
    RUN_UNTIL(loop, fired == armed);
    CHECK_INT(bad, 0);
    CHECK_INT(loop_timer_count(loop), 0);
    loop_stats(loop, &st);
    CHECK_INT(st.timers_fired, armed);
    loop_destroy(loop);
    free(m);
}

/* ---- TCP: accept, connect, send, recv, recv-multi ---- */

static unsigned char big_in[1 << 19], big_out[1 << 19];

static void tcp_flow(struct loop *loop, unsigned buf_count)
{
    struct sockaddr_in addr, addr_copy;
    int lfd = tcp_listener(&addr);
    int cfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct rec *lr = calloc(1, sizeof(*lr)), *cr = calloc(1, sizeof(*cr)),
               *sr = calloc(1, sizeof(*sr));
    loop_slot ls, cs, ss;
    char buf[64] = {0};
    struct loop_stats st;

    rec_init(lr, loop, NULL, 0);
    rec_init(cr, loop, NULL, 0);
    rec_init(sr, loop, big_in, sizeof(big_in));
    ls = loop_slot_open(loop, on_cqe, lr);
    cs = loop_slot_open(loop, on_cqe, cr);
    CHECK(ls >= 0 && cs >= 0 && ls != cs);
    CHECK_INT(loop_accept(loop, ls, 1, lfd, SOCK_NONBLOCK | SOCK_CLOEXEC), 0);
    CHECK_INT(loop_connect(loop, cs, 2, cfd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    addr_copy = addr;
    memset(&addr, 0xee, sizeof(addr)); /* the loop kept its own copy */
    RUN_UNTIL(loop, cr->nev == 1 && lr->nfds == 1);
    CHECK_INT(cr->ev[0].op, LOOP_OP_CONNECT);
    CHECK_INT(cr->ev[0].res, 0);
    CHECK_INT(cr->ev[0].tag, 2);
    CHECK(!(cr->ev[0].flags & LOOP_CQE_F_MORE));
    CHECK_INT(lr->ev[0].op, LOOP_OP_ACCEPT);
    CHECK(lr->ev[0].flags & LOOP_CQE_F_MORE); /* the accept stream goes on */
    CHECK_INT(loop_slot_inflight(loop, ls), 1);
    CHECK_INT(loop_slot_inflight(loop, cs), 0);

    /* send + single-shot recv */
    ss = loop_slot_open(loop, on_cqe, sr);
    int afd = lr->fds[0];
    CHECK_INT(loop_send(loop, cs, 3, cfd, "hello", 5, MSG_NOSIGNAL), 0);
    CHECK_INT(loop_recv(loop, ss, 4, afd, buf, sizeof(buf), 0), 0);
    RUN_UNTIL(loop, cr->nev == 2 && sr->nev == 1);
    CHECK_INT(cr->ev[1].res, 5);
    CHECK_INT(cr->ev[1].tag, 3);
    CHECK_INT(sr->ev[0].op, LOOP_OP_RECV);
    CHECK_INT(sr->ev[0].res, 5);
    CHECK_MEM(buf, 5, "hello", 5);

    /* recv-multi through the pool: more chunks than buffers, so buffers are
     * released and reused. */
    size_t total = (size_t)buf_count * 64 * 3 + 17;
    fill_pattern(big_out, total, 1);
    CHECK_INT(loop_recv_multi(loop, ss, 5, afd), 0);
    CHECK_INT(loop_send(loop, cs, 6, cfd, big_out, total, MSG_NOSIGNAL), 0);
    RUN_UNTIL(loop, sr->len == total);
    CHECK_MEM(big_in, sr->len, big_out, total);
    CHECK(sr->nev - 1 > (int)buf_count); /* chunks seen > buffers in the pool */
    for (int i = 1; i < sr->nev && i < EV_MAX; i++) {
        CHECK_INT(sr->ev[i].op, LOOP_OP_RECV_MULTI);
        CHECK_INT(sr->ev[i].tag, 5);
        CHECK(sr->ev[i].flags & LOOP_CQE_F_MORE);
        CHECK(sr->ev[i].flags & LOOP_CQE_F_BUFFER);
        CHECK(sr->ev[i].res > 0 && sr->ev[i].res <= 64);
    }
    CHECK_INT(loop_buf_free(loop), buf_count);
    CHECK_INT(loop_buf_release(loop, 0), -EINVAL); /* not held */

    /* EOF ends the stream: res 0, no F_MORE. */
    int before = sr->finals;
    shutdown(cfd, SHUT_WR);
    RUN_UNTIL(loop, sr->finals == before + 1);
    CHECK_INT(last_ev(sr)->res, 0);
    CHECK_INT(loop_slot_inflight(loop, ss), 0);

    /* The accept stream takes a second connection. */
    int cfd2 = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK_INT(loop_connect(loop, cs, 7, cfd2, (struct sockaddr *)&addr_copy, sizeof(addr)), 0);
    RUN_UNTIL(loop, lr->nfds == 2);
    CHECK(last_ev(lr)->flags & LOOP_CQE_F_MORE);

    /* A refused connect reports the errno. */
    struct sockaddr_in dead;
    int dfd = tcp_listener(&dead);
    close(dfd);
    int cfd3 = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    before = cr->nev;
    CHECK_INT(loop_connect(loop, cs, 8, cfd3, (struct sockaddr *)&dead, sizeof(dead)), 0);
    RUN_UNTIL(loop, cr->nev > before && last_ev(cr)->tag == 8);
    CHECK_INT(last_ev(cr)->res, -ECONNREFUSED);

    /* Closing the listener's slot ends the accept stream silently. */
    CHECK_INT(loop_slot_close(loop, ls, on_released), 0);
    CHECK_INT(loop_slot_close(loop, cs, on_released), 0);
    CHECK_INT(loop_slot_close(loop, ss, on_released), 0);
    RUN_UNTIL(loop, lr->released == 1 && cr->released == 1 && sr->released == 1);
    loop_stats(loop, &st);
    CHECK(st.sqes_submitted > 0 && st.enter_calls > 0 && st.cqes >= st.dispatched);
    CHECK_INT(st.stale_cqes, 0);
    for (int i = 0; i < lr->nfds; i++)
        close(lr->fds[i]);
    close(lfd);
    close(cfd);
    close(cfd2);
    close(cfd3);
    free(lr);
    free(cr);
    free(sr);
}

static void test_tcp(void)
{
    struct loop *loop = new_loop(8, 64, 0);
    struct loop_features f;

    loop_features(loop, &f);
    CHECK(f.recv_multishot);
    CHECK(f.accept_multishot);
    tcp_flow(loop, 8);
    loop_destroy(loop);
}

/* The fallback path: no setup flags, multishot emulated by re-armed single
 * shots; owners see the same streams. */
static void test_plain_setup(void)
{
    struct loop *loop = new_loop(8, 64, LOOP_CFG_PLAIN_SETUP | LOOP_CFG_NO_MULTISHOT);
    struct loop_features f;
    struct loop_stats st;
    char line[512];

    loop_features(loop, &f);
    CHECK_INT(f.setup_flags, 0);
    CHECK_INT(f.setup_attempts, 1);
    CHECK(!f.recv_multishot);
    CHECK(!f.accept_multishot);
    loop_features_describe(&f, line, sizeof(line));
    printf("plain features: %s\n", line);
    tcp_flow(loop, 8);
    loop_stats(loop, &st);
    CHECK(st.rearms > 8); /* every chunk was a fresh single shot */
    loop_destroy(loop);
}

/* Every step of the setup fallback works on its own: a receive stream, a
 * timer, a cancel and a close, under each flag set this kernel accepts. */
struct tick {
    int fired;
};

static void tick_fire(void *ctx)
{
    ((struct tick *)ctx)->fired++;
}

static void test_setup_levels(void)
{
    unsigned prev = ~0u;

    for (unsigned skip = 0; skip < 6; skip++) {
        struct loop_config cfg = {
            .sq_entries = 64, .buf_count = 4, .buf_size = 32, .setup_skip = skip};
        struct loop *loop = NULL;
        struct loop_features f;
        struct rec *r = calloc(1, sizeof(*r));
        struct tick tk = {0};
        struct loop_timer t;
        int sv[2];
        char line[512];

        CHECK_INT(loop_create(&loop, &cfg), 0);
        if (!loop)
            break;
        loop_features(loop, &f);
        loop_features_describe(&f, line, sizeof(line));
        printf("setup_skip %u: %s\n", skip, line);
        CHECK(f.setup_flags != prev || skip == 5); /* each step drops something */
        CHECK_INT(f.setup_attempts, 1);
        prev = f.setup_flags;
        if (skip >= 4)
            CHECK_INT(f.setup_flags, 0);
        unix_pair(sv);
        rec_init(r, loop, big_in, sizeof(big_in));
        loop_slot s = loop_slot_open(loop, on_cqe, r);
        CHECK_INT(loop_recv_multi(loop, s, 1, sv[0]), 0);
        loop_timer_init(&t, tick_fire, &tk);
        loop_timer_arm(loop, &t, 2);
        CHECK_INT(write(sv[1], "level", 5), 5);
        RUN_UNTIL(loop, r->len == 5 && tk.fired == 1);
        CHECK_MEM(big_in, r->len, "level", 5);
        CHECK_INT(loop_cancel(loop, s, LOOP_OP_RECV_MULTI, 1), 1);
        RUN_UNTIL(loop, r->finals == 1);
        CHECK_INT(last_ev(r)->res, -ECANCELED);
        CHECK_INT(loop_recv_multi(loop, s, 2, sv[0]), 0);
        CHECK_INT(loop_slot_close(loop, s, on_released), 0);
        RUN_UNTIL(loop, r->released == 1);
        CHECK_INT(loop_buf_free(loop), 4);
        loop_destroy(loop);
        close(sv[0]);
        close(sv[1]);
        free(r);
    }
}

/* A pool of two 16-byte buffers the handler holds on to: the stream parks on
 * ENOBUFS and resumes once buffers come back. */
static void test_enobufs(void)
{
    struct loop *loop = new_loop(2, 16, 0);
    struct rec *r = calloc(1, sizeof(*r));
    int sv[2];
    unsigned char msg[100];
    struct loop_stats st;
    loop_slot s;

    unix_pair(sv);
    rec_init(r, loop, big_in, sizeof(big_in));
    r->keep = 1;
    s = loop_slot_open(loop, on_cqe, r);
    CHECK_INT(loop_recv_multi(loop, s, 9, sv[0]), 0);
    fill_pattern(msg, sizeof(msg), 2);
    CHECK_INT(write(sv[1], msg, sizeof(msg)), sizeof(msg));
    loop_stats(loop, &st);
    RUN_UNTIL(loop, r->nheld == 2 && (loop_stats(loop, &st), st.enobufs >= 1));
    CHECK_INT(r->len, 32);
    CHECK_INT(loop_buf_free(loop), 0);
    CHECK_INT(loop_slot_inflight(loop, s), 1); /* parked, still the owner's stream */
    for (int i = 0; i < 5; i++)
        loop_run_once(loop, 0);
    CHECK_INT(r->len, 32); /* nothing without buffers */
    r->keep = 0;
    for (int i = 0; i < r->nheld; i++)
        CHECK_INT(loop_buf_release(loop, r->held[i]), 0);
    CHECK_INT(loop_buf_release(loop, r->held[0]), -EINVAL); /* double release */
    r->nheld = 0;
    RUN_UNTIL(loop, r->len == sizeof(msg));
    CHECK_MEM(big_in, r->len, msg, sizeof(msg));
    CHECK_INT(r->finals, 0); /* the owner never saw the stream end */
    loop_stats(loop, &st);
    CHECK(st.rearms >= 1);

    /* Cancelling a parked stream completes it with -ECANCELED. */
    r->keep = 1;
    CHECK_INT(write(sv[1], msg, 40), 40);
    RUN_UNTIL(loop, r->nheld == 2 && (loop_stats(loop, &st), st.enobufs >= 2));
    CHECK_INT(loop_cancel(loop, s, LOOP_OP_RECV_MULTI, -1), 1);
    RUN_UNTIL(loop, r->finals == 1);
    CHECK_INT(last_ev(r)->res, -ECANCELED);
    CHECK_INT(loop_slot_inflight(loop, s), 0);
    for (int i = 0; i < r->nheld; i++)
        loop_buf_release(loop, r->held[i]);
    CHECK_INT(loop_buf_free(loop), 2);
    loop_slot_close(loop, s, NULL);
    loop_destroy(loop);
    close(sv[0]);
    close(sv[1]);
    free(r);
}

/* ---- sendmsg, SEND_ZC, poll, close, cancel ---- */

static void test_sendv(void)
{
    struct loop *loop = new_loop(0, 0, 0);
    struct rec *r = calloc(1, sizeof(*r));
    int sv[2];
    char got[32] = {0};
    loop_slot s;

    unix_pair(sv);
    rec_init(r, loop, NULL, 0);
    s = loop_slot_open(loop, on_cqe, r);
    {
        struct iovec iov[3] = {{"abc", 3}, {"defgh", 5}, {"ij", 2}};
        CHECK_INT(loop_sendv(loop, s, 11, sv[0], iov, 3, MSG_NOSIGNAL), 0);
        memset(iov, 0, sizeof(iov)); /* the loop copied the array */
    }
    CHECK_INT(loop_sendv(loop, s, 12, sv[0], NULL, 0, 0), -EINVAL);
    RUN_UNTIL(loop, r->nev == 1);
    CHECK_INT(r->ev[0].op, LOOP_OP_SENDV);
    CHECK_INT(r->ev[0].res, 10);
    CHECK_INT(read(sv[1], got, sizeof(got)), 10);
    CHECK_STR(got, "abcdefghij");
    loop_slot_close(loop, s, NULL);
    loop_destroy(loop);
    close(sv[0]);
    close(sv[1]);
    free(r);
}

static void test_send_zc(void)
{
    struct loop *loop = new_loop(0, 0, 0);
    struct loop_features f;
    struct rec *r = calloc(1, sizeof(*r));
    int tp[2], sv[2];
    loop_slot s;
    size_t n = 65536;

    loop_features(loop, &f);
    rec_init(r, loop, NULL, 0);
    s = loop_slot_open(loop, on_cqe, r);
    tcp_pair(tp);
    unix_pair(sv);
    fill_pattern(big_out, n, 3);
    int rc = loop_send_zc(loop, s, 13, tp[0], big_out, n, MSG_NOSIGNAL);
    if (!f.send_zc) {
        CHECK(rc == -EOPNOTSUPP || rc == -EINVAL);
        printf("send_zc: unsupported by this kernel (%d), skipped\n", rc);
        goto out;
    }
    CHECK_INT(rc, 0);
    RUN_UNTIL(loop, r->finals == 1);
    /* First the send result with F_MORE, then the notification. */
    CHECK(r->nev == 2);
    CHECK_INT(r->ev[0].op, LOOP_OP_SEND_ZC);
    CHECK(r->ev[0].res > 0);
    CHECK(r->ev[0].flags & LOOP_CQE_F_MORE);
    CHECK(r->ev[1].flags & LOOP_CQE_F_NOTIF);
    CHECK(!(r->ev[1].flags & LOOP_CQE_F_MORE));
    CHECK_INT(r->ev[1].tag, 13);
    CHECK_INT(loop_slot_inflight(loop, s), 0);
    {
        size_t got = 0;
        while (got < (size_t)r->ev[0].res) {
            ssize_t k = recv(tp[1], big_in + got, sizeof(big_in) - got, 0);
            if (k <= 0)
                break;
            got += (size_t)k;
        }
        CHECK_MEM(big_in, got, big_out, (size_t)r->ev[0].res);
    }
    /* While the notification is owed the operation is in flight. */
    r->nev = r->finals = 0;
    CHECK_INT(loop_send_zc(loop, s, 14, tp[0], big_out, 100, MSG_NOSIGNAL), 0);
    RUN_UNTIL(loop, r->nev >= 1);
    if (r->nev == 1)
        CHECK_INT(loop_slot_inflight(loop, s), 1);
    RUN_UNTIL(loop, r->finals == 1);
    CHECK_INT(loop_slot_inflight(loop, s), 0);
    /* A socket that refuses zero-copy (AF_UNIX, as kTLS does) reports an
     * error the caller can fall back on, and nothing stays in flight. */
    r->nev = r->finals = 0;
    CHECK_INT(loop_send_zc(loop, s, 15, sv[0], big_out, 100, MSG_NOSIGNAL), 0);
    RUN_UNTIL(loop, r->finals == 1);
    CHECK(r->ev[0].res == -EOPNOTSUPP || r->ev[0].res == 100);
    printf("send_zc on AF_UNIX: res %d\n", r->ev[0].res);
    CHECK_INT(loop_slot_inflight(loop, s), 0);
out:
    loop_slot_close(loop, s, NULL);
    loop_destroy(loop);
    /* Forced off: callers get -EOPNOTSUPP up front. */
    loop = new_loop(0, 0, LOOP_CFG_NO_SEND_ZC);
    s = loop_slot_open(loop, on_cqe, r);
    CHECK_INT(loop_send_zc(loop, s, 1, tp[0], big_out, 10, 0), -EOPNOTSUPP);
    loop_destroy(loop);
    close(tp[0]);
    close(tp[1]);
    close(sv[0]);
    close(sv[1]);
    free(r);
}

static void test_poll_close_fd(void)
{
    struct loop *loop = new_loop(0, 0, 0);
    struct rec *r = calloc(1, sizeof(*r));
    int sv[2], pp[2];
    loop_slot s;

    unix_pair(sv);
    rec_init(r, loop, NULL, 0);
    s = loop_slot_open(loop, on_cqe, r);
    CHECK_INT(loop_poll(loop, s, 21, sv[0], POLLIN), 0);
    for (int i = 0; i < 3; i++)
        loop_run_once(loop, 0);
    CHECK_INT(r->nev, 0);
    CHECK_INT(write(sv[1], "x", 1), 1);
    RUN_UNTIL(loop, r->nev == 1);
    CHECK_INT(r->ev[0].op, LOOP_OP_POLL);
    CHECK(r->ev[0].res & POLLIN);
    CHECK_INT(r->ev[0].tag, 21);

    /* close through the ring */
    CHECK_INT(pipe2(pp, O_CLOEXEC), 0);
    CHECK_INT(loop_close_fd(loop, s, 22, pp[0]), 0);
    RUN_UNTIL(loop, r->nev == 2);
    CHECK_INT(r->ev[1].op, LOOP_OP_CLOSE);
    CHECK_INT(r->ev[1].res, 0);
    CHECK(fcntl(pp[0], F_GETFD) == -1 && errno == EBADF);

    /* 16 operations in flight per slot, then -EBUSY; cancel stops them.
     * (An empty pipe with its writer open never becomes readable.) */
    close(pp[1]);
    CHECK_INT(pipe2(pp, O_CLOEXEC), 0);
    for (int i = 0; i < 16; i++)
        CHECK_INT(loop_poll(loop, s, 100 + (unsigned)i, pp[0], POLLIN), 0);
    CHECK_INT(loop_poll(loop, s, 99, pp[0], POLLIN), -EBUSY);
    CHECK_INT(loop_slot_inflight(loop, s), 16);
    loop_run_once(loop, 0);
    CHECK_INT(loop_cancel(loop, s, LOOP_OP_POLL, 105), 1);
    RUN_UNTIL(loop, r->nev == 3);
    CHECK_INT(r->ev[2].tag, 105);
    CHECK_INT(r->ev[2].res, -ECANCELED);
    CHECK_INT(loop_cancel(loop, s, LOOP_OP_NONE, -1), 15);
    RUN_UNTIL(loop, loop_slot_inflight(loop, s) == 0);
    CHECK_INT(r->nev, 18);
    loop_slot_close(loop, s, NULL);
    loop_destroy(loop);
    close(pp[0]);
    close(pp[1]);
    close(sv[0]);
    close(sv[1]);
    free(r);
}

/* ---- splice: memfd -> pipe -> socket ---- */

struct splicer {
    struct loop *loop;
    loop_slot slot;
    int memfd, pipe_r, pipe_w, sock;
    size_t total, off, in_pipe;
    int err;
};

static void splice_next(struct splicer *sp)
{
    int rc;
    if (sp->in_pipe)
        rc = loop_splice(sp->loop, sp->slot, 2, sp->pipe_r, -1, sp->sock, -1, (unsigned)sp->in_pipe,
                         SPLICE_F_MOVE);
    else if (sp->off < sp->total)
        rc = loop_splice(sp->loop, sp->slot, 1, sp->memfd, (int64_t)sp->off, sp->pipe_w, -1,
                         (unsigned)(sp->total - sp->off < 65536 ? sp->total - sp->off : 65536),
                         SPLICE_F_MOVE);
    else
        return;
    if (rc)
        sp->err = rc;
}

static void on_splice(void *ctx, const struct loop_cqe *c)
{
    struct splicer *sp = ctx;

    if (c->res <= 0) {
        sp->err = c->res ? c->res : -EPIPE;
        return;
    }
    if (c->tag == 1) {
        sp->off += (size_t)c->res;
        sp->in_pipe = (size_t)c->res;
    } else {
        sp->in_pipe -= (size_t)c->res;
    }
    splice_next(sp);
}

static void test_splice(void)
{
    struct loop *loop = new_loop(64, 4096, 0);
    struct splicer sp = {.loop = loop, .total = 300000 + 7};
    struct rec *r = calloc(1, sizeof(*r));
    int tp[2], pp[2];

    tcp_pair(tp);
    CHECK_INT(pipe2(pp, O_CLOEXEC), 0);
    sp.memfd = memfd_create("body", MFD_CLOEXEC);
    CHECK(sp.memfd >= 0);
    fill_pattern(big_out, sp.total, 4);
    CHECK_INT(write(sp.memfd, big_out, sp.total), sp.total);
    sp.pipe_r = pp[0];
    sp.pipe_w = pp[1];
    sp.sock = tp[0];
    sp.slot = loop_slot_open(loop, on_splice, &sp);
    rec_init(r, loop, big_in, sizeof(big_in));
    loop_slot rs = loop_slot_open(loop, on_cqe, r);
    CHECK_INT(loop_recv_multi(loop, rs, 3, tp[1]), 0);
    splice_next(&sp);
    RUN_UNTIL(loop, r->len == sp.total || sp.err);
    CHECK_INT(sp.err, 0);
    CHECK_INT(sp.off, sp.total);
    CHECK_MEM(big_in, r->len, big_out, sp.total);
    loop_slot_close(loop, sp.slot, NULL);
    loop_slot_close(loop, rs, NULL);
    loop_destroy(loop);
    close(sp.memfd);
    close(pp[0]);
    close(pp[1]);
    close(tp[0]);
    close(tp[1]);
    free(r);
}

/* ---- closing with operations in flight; stale generations ---- */

struct closer {
    struct rec r;
    struct loop *loop;
    uint64_t closing_at_release;
    uint64_t stale_at_release;
};

static void closer_released(void *ctx)
{
    struct closer *c = ctx;
    struct loop_stats st;

    loop_stats(c->loop, &st);
    c->r.released++;
    c->closing_at_release = st.closing_cqes;
    c->stale_at_release = st.stale_cqes;
}

static void test_close_inflight(void)
{
    struct loop *loop = new_loop(8, 64, 0);
    struct closer *a = calloc(1, sizeof(*a));
    struct rec *b = calloc(1, sizeof(*b));
    struct loop_stats st0, st;
    int sv[2];
    char buf[16];
    loop_slot sa, sb;

    unix_pair(sv);
    a->loop = loop;
    rec_init(&a->r, loop, NULL, 0);
    rec_init(b, loop, NULL, 0);
    sa = loop_slot_open(loop, on_cqe, a);
    CHECK_INT(loop_recv(loop, sa, 7, sv[0], buf, sizeof(buf), 0), 0);
    uint64_t ud_old = loop_debug_last_user_data(loop);
    CHECK_INT(loop_recv_multi(loop, sa, 8, sv[0]), 0);
    loop_run_once(loop, 0); /* both are in the kernel now */
    CHECK_INT(loop_slot_inflight(loop, sa), 2);
    loop_stats(loop, &st0);

    CHECK_INT(loop_slot_close(loop, sa, closer_released), 0);
    CHECK_INT(a->r.released, 0); /* never from inside close */
    CHECK_INT(loop_slot_inflight(loop, sa), 2);
    CHECK_INT(loop_slot_close(loop, sa, closer_released), -ESTALE);
    CHECK_INT(loop_recv(loop, sa, 7, sv[0], buf, sizeof(buf), 0), -ESTALE);
    RUN_UNTIL(loop, a->r.released == 1);
    CHECK_INT(a->r.nev, 0); /* the handler is never called after close */
    /* Both cancelled completions were consumed before on_released ran. */
    CHECK_INT(a->closing_at_release - st0.closing_cqes, 2);
    CHECK_INT(loop_slot_inflight(loop, sa), 0);

    /* The index comes back with a new generation. */
    sb = loop_slot_open(loop, on_cqe, b);
    CHECK_INT((uint32_t)sb, (uint32_t)sa);
    CHECK(sb != sa);
    CHECK_INT(loop_recv(loop, sb, 7, sv[0], buf, sizeof(buf), 0), 0);
    uint64_t ud_new = loop_debug_last_user_data(loop);
    CHECK(ud_new != ud_old);
    CHECK_INT(ud_new & 0xfff, ud_old & 0xfff); /* same record and op */
    CHECK_INT(ud_new >> 36, ud_old >> 36);     /* same index */
    /* Replay a completion of the old generation: dropped, counted, never
     * dispatched to the index's new owner. */
    CHECK_INT(loop_debug_nop(loop, ud_old), 0);
    for (int i = 0; i < 3; i++)
        loop_run_once(loop, 0);
    loop_stats(loop, &st);
    CHECK_INT(st.stale_cqes - a->stale_at_release, 1);
    CHECK_INT(b->nev, 0);
    /* No late completion of the old generation arrived on its own. */
    CHECK_INT(a->stale_at_release, st0.stale_cqes);
    /* The new owner's own recv works. */
    CHECK_INT(write(sv[1], "new", 3), 3);
    RUN_UNTIL(loop, b->nev == 1);
    CHECK_INT(b->ev[0].res, 3);
    /* Close with nothing in flight: released on the next iteration. */
    CHECK_INT(loop_slot_close(loop, sb, on_released), 0);
    CHECK_INT(b->released, 0);
    loop_run_once(loop, 0);
    CHECK_INT(b->released, 1);
    CHECK_INT(loop_buf_free(loop), 8);
    loop_destroy(loop);
    close(sv[0]);
    close(sv[1]);
    free(a);
    free(b);
}

/* A stream closed while data pours in: buffers in its late completions go
 * back to the pool; a SEND_ZC closed before its notification holds the slot. */
static void test_close_streams(void)
{
    struct loop *loop = new_loop(8, 64, 0);
    struct loop_features f;
    struct closer *a = calloc(1, sizeof(*a));
    struct loop_stats st;
    int sv[2], tp[2];
    loop_slot s;

    loop_features(loop, &f);
    unix_pair(sv);
    tcp_pair(tp);
    a->loop = loop;
    rec_init(&a->r, loop, NULL, 0);
    s = loop_slot_open(loop, on_cqe, a);
    CHECK_INT(loop_recv_multi(loop, s, 1, sv[0]), 0);
    fill_pattern(big_out, 4096, 5);
    CHECK_INT(write(sv[1], big_out, 4096), 4096);
    if (f.send_zc)
        CHECK_INT(loop_send_zc(loop, s, 2, tp[0], big_out, 4096, MSG_NOSIGNAL), 0);
    loop_run_once(loop, 0);
    CHECK_INT(loop_slot_close(loop, s, closer_released), 0);
    RUN_UNTIL(loop, a->r.released == 1);
    for (int i = 0; i < 5; i++)
        loop_run_once(loop, 0);
    loop_stats(loop, &st);
    CHECK_INT(st.stale_cqes, a->stale_at_release); /* nothing arrived after release */
    CHECK_INT(loop_buf_free(loop), 8);
    loop_destroy(loop);
    close(sv[0]);
    close(sv[1]);
    close(tp[0]);
    close(tp[1]);
    free(a);
}

/* A tiny CQ: completions overflow into the kernel's backlog (NODROP) while
 * the SQ fills and is submitted from inside the queueing calls; every
 * completion still arrives exactly once. */
struct counter {
    struct loop *loop;
    int n;
    int nested_rc;
};

static void count_cqe(void *ctx, const struct loop_cqe *c)
{
    struct counter *k = ctx;
    (void)c;
    k->n++;
    k->nested_rc = loop_run_once(k->loop, 0);
}

static void test_overflow(void)
{
    struct loop_config cfg = {.sq_entries = 4, .cq_entries = 8};
    struct loop *loop = NULL;
    struct counter k[8];
    struct loop_stats st;
    loop_slot s[8];

    CHECK_INT(loop_create(&loop, &cfg), 0);
    for (int i = 0; i < 8; i++) {
        k[i].loop = loop;
        k[i].n = 0;
        s[i] = loop_slot_open(loop, count_cqe, &k[i]);
        for (int j = 0; j < 8; j++)
            CHECK_INT(loop_nop(loop, s[i], (unsigned)j), 0);
    }
    loop_stats(loop, &st);
    CHECK(st.enter_calls >= 10); /* the 4-entry SQ was submitted when full */
    int total = 0;
    uint64_t end = mono_ms() + 3000;
    while (total < 64 && mono_ms() < end) {
        loop_run_once(loop, 5);
        total = 0;
        for (int i = 0; i < 8; i++)
            total += k[i].n;
    }
    CHECK_INT(total, 64);
    loop_stats(loop, &st);
    CHECK(st.overflow >= 1);
    CHECK_INT(st.cq_dropped, 0);
    CHECK_INT(st.dispatched, 64);
    CHECK_INT(k[0].nested_rc, -EBUSY); /* no loop_run_once() from a handler */
    for (int i = 0; i < 8; i++)
        CHECK_INT(loop_slot_inflight(loop, s[i]), 0);
    /* Slots left open are dropped by destroy without leaks. */
    loop_destroy(loop);
}

/* A connection accepted for a listener slot that is closing is closed by the
 * loop, not leaked. */
static void test_accept_on_close(void)
{
    struct loop *loop = new_loop(0, 0, 0);
    struct rec *r = calloc(1, sizeof(*r));
    struct sockaddr_in addr;
    struct loop_stats st;
    int lfd = tcp_listener(&addr);
    int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int next_fd;
    loop_slot s;

    CHECK_INT(connect(cfd, (struct sockaddr *)&addr, sizeof(addr)), 0); /* in the backlog */
    rec_init(r, loop, NULL, 0);
    s = loop_slot_open(loop, on_cqe, r);
    CHECK_INT(loop_accept(loop, s, 1, lfd, SOCK_CLOEXEC), 0);
    CHECK_INT(loop_slot_close(loop, s, on_released), 0); /* cancel queued behind the accept */
    next_fd = dup(0);                                    /* the number accept will take */
    close(next_fd);
    RUN_UNTIL(loop, r->released == 1);
    CHECK_INT(r->nev, 0);
    loop_stats(loop, &st);
    CHECK_INT(st.closing_cqes, 2); /* the accepted fd, then -ECANCELED */
    CHECK(fcntl(next_fd, F_GETFD) == -1 && errno == EBADF);
    loop_destroy(loop);
    close(cfd);
    close(lfd);
    free(r);
}

/* An accept on a socket that is not listening fails with EINVAL, as a
 * kernel without multishot accept does: the loop retries once as a single
 * shot, then reports the error and keeps believing in multishot. */
static void test_accept_einval(void)
{
    struct loop *loop = new_loop(0, 0, 0);
    struct rec *r = calloc(1, sizeof(*r));
    struct loop_features f;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    loop_slot s;

    rec_init(r, loop, NULL, 0);
    s = loop_slot_open(loop, on_cqe, r);
    CHECK_INT(loop_accept(loop, s, 4, fd, 0), 0);
    RUN_UNTIL(loop, r->finals == 1);
    CHECK_INT(r->nev, 1);
    CHECK_INT(last_ev(r)->res, -EINVAL);
    loop_features(loop, &f);
    CHECK(f.accept_multishot);
    CHECK_INT(loop_slot_inflight(loop, s), 0);
    loop_destroy(loop);
    close(fd);
    free(r);
}

/* ---- a thousand connections ---- */

#define NCONN 1000

struct conn {
    struct loop *loop;
    loop_slot slot;
    int fd[2];
    struct loop_timer t;
    char got[32];
    size_t len;
    int timer_fired;
    int released;
    int bad;
};

static int conns_received, conns_timers, conns_released;

static void conn_cqe(void *ctx, const struct loop_cqe *c)
{
    struct conn *k = ctx;

    if (c->op != LOOP_OP_RECV_MULTI || c->res <= 0 || !(c->flags & LOOP_CQE_F_BUFFER)) {
        k->bad++;
        return;
    }
    if (k->len + (size_t)c->res <= sizeof(k->got)) {
        memcpy(k->got + k->len, c->buf, (size_t)c->res);
        k->len += (size_t)c->res;
    }
    loop_buf_release(k->loop, c->bid);
    if (k->len == 16)
        conns_received++;
}

static void conn_timer(void *ctx)
{
    struct conn *k = ctx;
    k->timer_fired++;
    conns_timers++;
}

static void conn_released(void *ctx)
{
    struct conn *k = ctx;
    close(k->fd[0]);
    close(k->fd[1]);
    k->released++;
    conns_released++;
}

static void test_many(void)
{
    struct rlimit rl;
    struct loop_config cfg = {.buf_count = 256, .buf_size = 256};
    struct loop *loop = NULL;
    struct conn *k = calloc(NCONN, sizeof(*k));
    struct loop_stats st0, st;
    int n = NCONN;

    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 2 * NCONN + 64 && rl.rlim_max >= 2 * NCONN + 64) {
        rl.rlim_cur = 2 * NCONN + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 2 * NCONN + 64) {
        n = (int)(rl.rlim_cur - 64) / 2;
        printf("many: RLIMIT_NOFILE %llu, %d connections\n", (unsigned long long)rl.rlim_cur, n);
    }
    CHECK_INT(loop_create(&loop, &cfg), 0);
    for (int i = 0; i < n; i++) {
        k[i].loop = loop;
        unix_pair(k[i].fd);
        k[i].slot = loop_slot_open(loop, conn_cqe, &k[i]);
        CHECK(k[i].slot >= 0);
        CHECK_INT(loop_recv_multi(loop, k[i].slot, 0, k[i].fd[0]), 0);
        loop_timer_init(&k[i].t, conn_timer, &k[i]);
        CHECK_INT(loop_timer_arm(loop, &k[i].t, (uint64_t)(1 + i % 20)), 0);
    }
    loop_stats(loop, &st0);
    CHECK_INT(st0.enter_calls, 0); /* 1000 SQEs queued, none submitted yet */
    for (int i = 0; i < n; i++) {
        char msg[24];
        snprintf(msg, sizeof(msg), "message #%06d.", i % 1000000);
        CHECK_INT(write(k[i].fd[1], msg, 16), 16);
    }
    RUN_UNTIL(loop, conns_received == n && conns_timers == n);
    int bad = 0, wrong = 0;
    for (int i = 0; i < n; i++) {
        char msg[24];
        snprintf(msg, sizeof(msg), "message #%06d.", i % 1000000);
        bad += k[i].bad;
        wrong += k[i].len != 16 || memcmp(k[i].got, msg, 16) != 0 || k[i].timer_fired != 1;
    }
    CHECK_INT(bad, 0);
    CHECK_INT(wrong, 0);
    loop_stats(loop, &st);
    printf("many: %d conns: %llu iterations, %llu enter calls, %llu sqes, %llu cqes, "
           "%llu dispatched, %llu enobufs parked, %llu re-arms, %llu timers\n",
           n, (unsigned long long)st.iterations, (unsigned long long)st.enter_calls,
           (unsigned long long)st.sqes_submitted, (unsigned long long)st.cqes,
           (unsigned long long)st.dispatched, (unsigned long long)st.enobufs,
           (unsigned long long)st.rearms, (unsigned long long)st.timers_fired);
    /* Batching: far fewer syscalls than completions. */
    CHECK(st.enter_calls * 10 < st.cqes);
    CHECK(st.sqes_submitted >= (uint64_t)n);
    CHECK_INT(st.stale_cqes, 0);
    CHECK_INT(st.cq_dropped, 0);
    for (int i = 0; i < n; i++)
        CHECK_INT(loop_slot_close(loop, k[i].slot, conn_released), 0);
    RUN_UNTIL(loop, conns_released == n);
    CHECK_INT(loop_buf_free(loop), 256);
    loop_destroy(loop);
    free(k);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    test_names_features();
    test_timers_order();
    test_timer_self_rearm();
    test_timers_many();
    test_tcp();
    test_plain_setup();
    test_setup_levels();
    test_enobufs();
    test_sendv();
    test_send_zc();
    test_poll_close_fd();
    test_splice();
    test_close_inflight();
    test_close_streams();
    test_overflow();
    test_accept_on_close();
    test_accept_einval();
    test_many();
    return check_done();
}
