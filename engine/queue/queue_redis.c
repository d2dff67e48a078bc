/*
 * queue_redis: a self-healing Redis connection on the io_uring loop (see
 * queue_redis.h). Two layers:
 *
 * - The adapter (struct qr_conn): hiredis's ev hooks. hiredis calls
 *   addRead/addWrite whenever it wants to hear about readiness (the hooks
 *   must be idempotent); each maps to a one-shot poll on the socket, re-armed
 *   after hiredis handled it for as long as hiredis still wants it. The
 *   adapter owns the socket: its cleanup hook takes the fd from hiredis
 *   (redisFree then leaves it open) and closes the loop slot; the fd is
 *   closed in on_released, once the kernel has returned every poll, so a new
 *   socket can never inherit a stale poll (docs/architecture.md, convention 6).
 *
 * - The link (struct queue_redis): the deadlines hiredis 0.14 cannot keep
 *   (it has no timer hook), the handshake, and reconnects. Redis answers a
 *   connection's commands in order, so the commands waiting for replies are
 *   a FIFO and the reply callback always belongs to its head. Deadlines are
 *   made non-decreasing along the FIFO (a command behind a BLOCK waits for
 *   it), so one timer on the head's deadline covers all of them.
 */
#include "queue_redis.h"

#include "log.h"

#include <errno.h>
#include <hiredis/async.h>
#include <poll.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum qr_tag {
    QR_TAG_READ = 1,
    QR_TAG_WRITE = 2,
};

enum qr_phase {
    QR_IDLE = 0,      /* no connection; the timer is the backoff */
    QR_HANDSHAKE = 1, /* connecting, handshake replies outstanding */
    QR_READY = 2,     /* up */
    QR_FAILING = 3,   /* queue_redis_fail() called; the kill timer ends it */
    QR_CLOSED = 4,    /* queue_redis_free() running */
};

/* Adapter state of one hiredis context; lives until its slot is released. */
struct qr_conn {
    struct loop *loop;
    loop_slot slot;
    int fd;                /* ours once hiredis let go of it */
    redisAsyncContext *ac; /* NULL once hiredis freed the context */
    struct queue_redis *r; /* NULL once detached */
    bool want_read, want_write;
    bool poll_read, poll_write; /* a poll of that kind is in the kernel */
};

/* A command waiting for its reply. */
struct qr_cmd {
    struct qr_cmd *next;
    struct queue_redis *r;
    uint64_t deadline;
    queue_redis_reply_fn *fn;
    void *priv;
    unsigned flags;
};

struct queue_redis {
    struct loop *loop;
    struct queue_redis_config cfg;
    struct queue_redis_ops ops;
    void *owner;
    struct qr_conn *conn;
    enum qr_phase phase;
    bool greeted; /* hello() ran for this connection: down() is owed */
    struct qr_cmd *head, *tail;
    unsigned inflight, hs_pending;
    struct loop_timer timer; /* backoff (idle) or the head's deadline */
    struct loop_timer kill;  /* a deferred failure */
    char why[160];
    unsigned backoff_ms;
    uint64_t rng;
    struct queue_redis_stats st;
};

static void connect_now(struct queue_redis *r);
static void lost(struct queue_redis *r);
static void set_why(struct queue_redis *r, const char *why);

/* ---- the adapter ------------------------------------------------------- */

static void conn_released(void *ctx)
{
    struct qr_conn *c = ctx;

    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

static void conn_arm(struct qr_conn *c)
{
    int rc;

    if (!c->ac)
        return;
    if (c->want_read && !c->poll_read) {
        rc = loop_poll(c->loop, c->slot, QR_TAG_READ, c->ac->c.fd, POLLIN);
        if (rc == 0)
            c->poll_read = true;
        else if (c->r)
            queue_redis_fail(c->r, "poll: cannot arm");
    }
    if (c->want_write && !c->poll_write) {
        rc = loop_poll(c->loop, c->slot, QR_TAG_WRITE, c->ac->c.fd, POLLOUT);
        if (rc == 0)
            c->poll_write = true;
        else if (c->r)
            queue_redis_fail(c->r, "poll: cannot arm");
    }
}

/*
 * The socket is readable. hiredis reads 16 KiB per call (redisBufferRead):
 * a 1 MB job was 64 reads and 64 rounds through io_uring. Once connected,
 * read what is waiting in large gulps and feed hiredis's reader
 * (redisReaderFeed); then redisAsyncHandleRead, whose own read finds
 * nothing more (EAGAIN) or the EOF or error, and which parses the replies
 * and runs their callbacks as always.
 */
static void read_ready(redisAsyncContext *ac)
{
    static char buf[256 << 10]; /* one loop per process: no concurrency */

    while (ac->c.flags & REDIS_CONNECTED) {
        ssize_t n = recv(ac->c.fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n <= 0)
            break; /* EAGAIN, or EOF and errors, which hiredis's read sees again */
        if (redisReaderFeed(ac->c.reader, buf, (size_t)n) != REDIS_OK || (size_t)n < sizeof(buf))
            break;
    }
    redisAsyncHandleRead(ac);
}

static void conn_handler(void *ctx, const struct loop_cqe *cqe)
{
    struct qr_conn *c = ctx;
    bool rd = cqe->tag == QR_TAG_READ;
    /* A poll error still means "look at the socket": hiredis's read or
     * connect check then finds the real error. */
    bool fired = cqe->res != 0;

    if (rd)
        c->poll_read = false;
    else
        c->poll_write = false;
    if (!c->ac)
        return;
    if (fired && rd && c->want_read)
        read_ready(c->ac);
    else if (fired && !rd && c->want_write)
        redisAsyncHandleWrite(c->ac);
    /* hiredis may have freed the context (cleanup cleared c->ac). */
    conn_arm(c);
}

static void ev_add_read(void *p)
{
    struct qr_conn *c = p;
    c->want_read = true;
    conn_arm(c);
}

/* A poll already in the kernel stays: its completion is ignored. */
static void ev_del_read(void *p)
{
    ((struct qr_conn *)p)->want_read = false;
}

static void ev_add_write(void *p)
{
    struct qr_conn *c = p;
    c->want_write = true;
    conn_arm(c);
}

static void ev_del_write(void *p)
{
    ((struct qr_conn *)p)->want_write = false;
}

/* hiredis is freeing the context, after the NULL callbacks: take the fd so
 * that it closes only once the polls are back, and tell the link. */
static void ev_cleanup(void *p)
{
    struct qr_conn *c = p;
    struct queue_redis *r = c->r;

    if (c->ac) {
        if (r && c->ac->err && c->ac->errstr[0])
            set_why(r, c->ac->errstr); /* "Connection refused", "Server closed the connection" */
        c->fd = c->ac->c.fd;
        c->ac->c.fd = -1;
        c->ac = NULL;
    }
    c->r = NULL;
    loop_slot_close(c->loop, c->slot, conn_released);
    if (r) {
        r->conn = NULL;
        lost(r);
    }
}

/* ---- the link ---------------------------------------------------------- */

static unsigned jittered(struct queue_redis *r, unsigned ms)
{
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    return ms / 2 + (unsigned)(r->rng % (ms / 2 + 1));
}

static void arm_deadline(struct queue_redis *r)
{
    uint64_t now = loop_now_ms(r->loop);

    if (r->phase == QR_IDLE || r->phase == QR_CLOSED)
        return;
    if (!r->head) {
        loop_timer_disarm(r->loop, &r->timer);
        return;
    }
    loop_timer_arm(r->loop, &r->timer, r->head->deadline > now ? r->head->deadline - now : 0);
}

/* Drops the hiredis context now; not from inside a hiredis callback. */
static void drop(struct queue_redis *r)
{
    if (r->conn && r->conn->ac)
        redisAsyncFree(r->conn->ac); /* -> NULL callbacks -> ev_cleanup -> lost() */
    else
        lost(r);
}

static void set_why(struct queue_redis *r, const char *why)
{
    if (!r->why[0])
        snprintf(r->why, sizeof(r->why), "%s", why);
}

static void on_timer(void *ctx)
{
    struct queue_redis *r = ctx;

    if (r->phase == QR_IDLE) {
        connect_now(r);
        return;
    }
    if (r->head && r->head->deadline <= loop_now_ms(r->loop)) {
        r->st.timeouts++;
        set_why(r, r->phase == QR_HANDSHAKE ? "connect or handshake timed out"
                                            : "no reply within the command timeout");
        drop(r);
        return;
    }
    arm_deadline(r);
}

static void on_kill(void *ctx)
{
    drop(ctx);
}

/* The connection is gone (every callback already ran): schedule the next. */
static void lost(struct queue_redis *r)
{
    bool greeted = r->greeted;
    unsigned delay;

    r->conn = NULL;
    r->greeted = false;
    loop_timer_disarm(r->loop, &r->kill);
    if (r->phase == QR_CLOSED)
        return;
    set_why(r, "connection closed");
    r->phase = QR_IDLE;
    delay = jittered(r, r->backoff_ms);
    r->backoff_ms =
        r->backoff_ms * 2 > r->cfg.backoff_max_ms ? r->cfg.backoff_max_ms : r->backoff_ms * 2;
    r->st.backoff_ms = delay;
    log_event(LOG_WARN, "redis_down", "detail", r->why, "link", r->cfg.name, NULL);
    loop_timer_arm(r->loop, &r->timer, delay);
    if (greeted && r->ops.down)
        r->ops.down(r->owner, r->why);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct qr_cmd *cmd = privdata;
    struct queue_redis *r = cmd->r;

    (void)ac;
    /* In order: the reply is the head's. Anything else is a broken invariant. */
    if (r->head != cmd)
        abort();
    r->head = cmd->next;
    if (!r->head)
        r->tail = NULL;
    r->inflight--;
    if (cmd->flags & QUEUE_REDIS_HANDSHAKE)
        r->hs_pending--;
    if (reply)
        arm_deadline(r);
    if (cmd->fn)
        cmd->fn(cmd->priv, reply);
    free(cmd);
    if (reply && r->phase == QR_HANDSHAKE && !r->hs_pending) {
        r->phase = QR_READY;
        r->backoff_ms = r->cfg.backoff_min_ms;
        r->why[0] = 0;
        r->st.ready++;
        log_event(LOG_INFO, "redis_up", "link", r->cfg.name, NULL);
        if (r->ops.up)
            r->ops.up(r->owner);
    }
}

static void hs_check(void *priv, redisReply *reply)
{
    struct queue_redis *r = priv;
    char why[128];

    if (reply && reply->type == REDIS_REPLY_ERROR) {
        snprintf(why, sizeof(why), "handshake refused: %.100s", reply->str);
        queue_redis_fail(r, why);
    }
}

static int send_cmd(struct queue_redis *r, unsigned flags, unsigned extra_ms, const char *fmt,
                    size_t len, int argc, const char **argv, const size_t *argvlen,
                    queue_redis_reply_fn *fn, void *priv)
{
    struct qr_cmd *cmd;
    uint64_t deadline;
    int rc;

    if (!r->conn || !r->conn->ac || r->phase == QR_FAILING || r->phase == QR_CLOSED)
        return -1;
    if (!(cmd = calloc(1, sizeof(*cmd))))
        return -1;
    cmd->r = r;
    cmd->fn = fn;
    cmd->priv = priv;
    cmd->flags = flags;
    deadline = loop_now_ms(r->loop) + r->cfg.timeout_ms + extra_ms;
    if (r->tail && r->tail->deadline > deadline)
        deadline = r->tail->deadline;
    cmd->deadline = deadline;
    if (fmt)
        rc = redisAsyncFormattedCommand(r->conn->ac, on_reply, cmd, fmt, len);
    else
        rc = redisAsyncCommandArgv(r->conn->ac, on_reply, cmd, argc, argv, argvlen);
    if (rc != REDIS_OK) {
        free(cmd);
        return -1;
    }
    if (r->tail)
        r->tail->next = cmd;
    else
        r->head = cmd;
    r->tail = cmd;
    r->inflight++;
    if (flags & QUEUE_REDIS_HANDSHAKE)
        r->hs_pending++;
    if (r->head == cmd)
        arm_deadline(r);
    return 0;
}

int queue_redis_command(struct queue_redis *r, unsigned flags, unsigned extra_ms, int argc,
                        const char **argv, const size_t *argvlen, queue_redis_reply_fn *fn,
                        void *priv)
{
    return send_cmd(r, flags, extra_ms, NULL, 0, argc, argv, argvlen, fn, priv);
}

int queue_redis_formatted(struct queue_redis *r, unsigned flags, unsigned extra_ms, const char *cmd,
                          size_t len, queue_redis_reply_fn *fn, void *priv)
{
    return send_cmd(r, flags, extra_ms, cmd, len, 0, NULL, NULL, fn, priv);
}

static void handshake(struct queue_redis *r)
{
    const char *argv[3];
    size_t lens[3];
    char db[16];
    int argc = 0;
    bool ok = true;

    if (r->cfg.password) {
        /* Formatted into a buffer of ours, so that the copy with the
         * password in it is wiped, not just freed, once hiredis has its own. */
        char *cmd = NULL;
        long long len;
        argv[argc++] = "AUTH";
        if (r->cfg.user)
            argv[argc++] = r->cfg.user;
        argv[argc++] = r->cfg.password;
        for (int i = 0; i < argc; i++)
            lens[i] = strlen(argv[i]);
        len = redisFormatCommandArgv(&cmd, argc, argv, lens);
        ok = len >= 0 &&
             queue_redis_formatted(r, QUEUE_REDIS_HANDSHAKE, 0, cmd, (size_t)len, hs_check, r) == 0;
        if (cmd) {
            explicit_bzero(cmd, len > 0 ? (size_t)len : 0);
            redisFreeCommand(cmd);
        }
    }
    if (ok && r->cfg.db) {
        snprintf(db, sizeof(db), "%u", r->cfg.db);
        argv[0] = "SELECT";
        argv[1] = db;
        lens[0] = 6;
        lens[1] = strlen(db);
        ok = queue_redis_command(r, QUEUE_REDIS_HANDSHAKE, 0, 2, argv, lens, hs_check, r) == 0;
    }
    r->greeted = true;
    if (ok && r->ops.hello)
        r->ops.hello(r->owner);
    argv[0] = "PING";
    lens[0] = 4;
    /* The PING also makes sure hiredis wants to write, which is how a
     * non-blocking connect is noticed. */
    if (!ok || queue_redis_command(r, QUEUE_REDIS_HANDSHAKE, 0, 1, argv, lens, hs_check, r))
        queue_redis_fail(r, "cannot queue the handshake");
}

static void connect_now(struct queue_redis *r)
{
    redisAsyncContext *ac;
    struct qr_conn *c;

    r->why[0] = 0;
    r->st.attempts++;
    if (r->cfg.unix_path)
        ac = redisAsyncConnectUnix(r->cfg.unix_path);
    else
        ac = redisAsyncConnect(r->cfg.host, (int)r->cfg.port);
    if (!ac || ac->err) {
        set_why(r, ac && ac->errstr[0] ? ac->errstr : "cannot start a connection");
        if (ac)
            redisAsyncFree(ac); /* no adapter yet: hiredis closes its own fd */
        lost(r);
        return;
    }
    if (!(c = calloc(1, sizeof(*c)))) {
        redisAsyncFree(ac);
        set_why(r, "out of memory");
        lost(r);
        return;
    }
    c->loop = r->loop;
    c->fd = -1;
    c->ac = ac;
    c->r = r;
    c->slot = loop_slot_open(r->loop, conn_handler, c);
    if (c->slot < 0) {
        free(c);
        redisAsyncFree(ac);
        set_why(r, "no loop slot");
        lost(r);
        return;
    }
    ac->ev.data = c;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    if (!r->cfg.unix_path)
        redisEnableKeepAlive(&ac->c); /* notice a peer that vanished while idle */
    r->conn = c;
    r->phase = QR_HANDSHAKE;
    handshake(r);
}

struct queue_redis *queue_redis_new(struct loop *loop, const struct queue_redis_config *cfg,
                                    const struct queue_redis_ops *ops, void *owner)
{
    struct queue_redis *r = calloc(1, sizeof(*r));

    if (!r)
        return NULL;
    r->loop = loop;
    r->cfg = *cfg;
    if (!r->cfg.backoff_min_ms)
        r->cfg.backoff_min_ms = 100;
    if (r->cfg.backoff_max_ms < r->cfg.backoff_min_ms)
        r->cfg.backoff_max_ms = r->cfg.backoff_min_ms;
    if (!r->cfg.timeout_ms)
        r->cfg.timeout_ms = 5000;
    r->ops = *ops;
    r->owner = owner;
    r->backoff_ms = r->cfg.backoff_min_ms;
    r->rng = cfg->seed | 1;
    loop_timer_init(&r->timer, on_timer, r);
    loop_timer_init(&r->kill, on_kill, r);
    r->phase = QR_IDLE;
    /* Connect from the loop: the owner's hello() may need this pointer. */
    if (loop_timer_arm(loop, &r->timer, 0)) {
        free(r);
        return NULL;
    }
    return r;
}

void queue_redis_free(struct queue_redis *r)
{
    if (!r)
        return;
    r->phase = QR_CLOSED;
    loop_timer_disarm(r->loop, &r->timer);
    loop_timer_disarm(r->loop, &r->kill);
    if (r->conn && r->conn->ac)
        redisAsyncFree(r->conn->ac);
    if (r->conn) /* cleanup never ran: cannot happen, but never leave it pointing here */
        r->conn->r = NULL;
    free(r);
}

bool queue_redis_ready(const struct queue_redis *r)
{
    return r->phase == QR_READY;
}

void queue_redis_fail(struct queue_redis *r, const char *why)
{
    if (r->phase != QR_HANDSHAKE && r->phase != QR_READY)
        return;
    set_why(r, why);
    r->phase = QR_FAILING;
    loop_timer_disarm(r->loop, &r->timer);
    loop_timer_arm(r->loop, &r->kill, 0);
}

void queue_redis_stats(const struct queue_redis *r, struct queue_redis_stats *out)
{
    *out = r->st;
    out->inflight = r->inflight;
}

bool queue_redis_transient(const redisReply *reply)
{
    static const char *const codes[] = {"LOADING",    "BUSY",       "NOSCRIPT", "READONLY",
                                        "MASTERDOWN", "OOM",        "TRYAGAIN", "CLUSTERDOWN",
                                        "MISCONF",    "NOREPLICAS", "NOGROUP",  "NOAUTH"};

    if (!reply || reply->type != REDIS_REPLY_ERROR)
        return false;
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        size_t n = strlen(codes[i]);
        if (reply->len >= n && memcmp(reply->str, codes[i], n) == 0 &&
            (reply->len == n || reply->str[n] == ' '))
            return true;
    }
    return false;
}
