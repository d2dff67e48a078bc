/*
 * queue_harness: what test_queue.c needs around the queue: a redis-server
 * of its own on a free loopback port (AOF on, fsync always, so a SIGKILL
 * loses nothing and a restart brings the data back), a plain hiredis client
 * for setup and checks, the queue's callbacks recorded, and loop helpers.
 */
#ifndef RINGMAIL_TEST_QUEUE_HARNESS_H
#define RINGMAIL_TEST_QUEUE_HARNESS_H

#include "check.h"
#include "loop.h"
#include "queue.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- redis-server ------------------------------------------------------ */

struct server {
    pid_t pid;
    int port;
    char dir[64];
    char sock[96];
    redisContext *sc; /* a plain client for setup and checks */
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static int server_start(struct server *s)
{
    char port[16], log[128];
    uint64_t deadline;

    snprintf(port, sizeof(port), "%d", s->port);
    snprintf(log, sizeof(log), "%s/redis.log", s->dir);
    s->pid = fork();
    if (s->pid < 0)
        return -1;
    if (s->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "yes", "--appendfsync", "always", "--dir", s->dir, "--daemonize",
               "no", "--logfile", log, "--stream-node-max-entries", "16", "--unixsocket", s->sock,
               (char *)NULL);
        _exit(127);
    }
    deadline = now_ms() + 10000;
    while (now_ms() < deadline) {
        struct timeval tv = {1, 0};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", s->port, tv);
        if (c && !c->err) {
            redisReply *r = redisCommand(c, "PING");
            bool ok = r && r->type == REDIS_REPLY_STATUS;
            freeReplyObject(r);
            if (ok) {
                redisFree(s->sc);
                s->sc = c;
                return 0;
            }
        }
        redisFree(c);
        usleep(20000);
    }
    return -1;
}

static void server_kill(struct server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
    redisFree(s->sc);
    s->sc = NULL;
}

/* A command on the plain client; the reply is the caller's to free. */
static redisReply *rc(struct server *s, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;

    va_start(ap, fmt);
    r = redisvCommand(s->sc, fmt, ap);
    va_end(ap);
    return r;
}

static long long rc_int(struct server *s, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;
    long long v = -999;

    va_start(ap, fmt);
    r = redisvCommand(s->sc, fmt, ap);
    va_end(ap);
    if (r && r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    freeReplyObject(r);
    return v;
}

static long long pending_count(struct server *s, const char *stream)
{
    redisReply *r = rc(s, "XPENDING %s g", stream);
    long long v = -1;

    if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        r->element[0]->type == REDIS_REPLY_INTEGER)
        v = r->element[0]->integer;
    freeReplyObject(r);
    return v;
}

/* The value of field name in a stream entry's field array, or NULL. */
static const redisReply *field(const redisReply *fv, const char *name)
{
    for (size_t i = 0; fv && i + 1 < fv->elements; i += 2)
        if (!strcmp(fv->element[i]->str, name))
            return fv->element[i + 1];
    return NULL;
}

/* Events-stream entries for entry id with this outcome. */
static int events_for(struct server *s, const char *events, const char *id, const char *outcome)
{
    redisReply *r = rc(s, "XRANGE %s - +", events);
    int n = 0;

    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *fv = r->element[i]->element[1];
        const redisReply *e = field(fv, "entry"), *o = field(fv, "outcome");
        if (e && o && !strcmp(e->str, id) && !strcmp(o->str, outcome))
            n++;
    }
    freeReplyObject(r);
    return n;
}

static void xadd(struct server *s, const char *stream, int n, char ids[][48])
{
    for (int i = 0; i < n; i++) {
        char rcpt[32];
        snprintf(rcpt, sizeof(rcpt), "u%d@example.net", i);
        redisReply *r = rc(s, "XADD %s * from a@example.com to %s data hello", stream, rcpt);
        CHECK(r && r->type == REDIS_REPLY_STRING);
        if (r && ids && r->type == REDIS_REPLY_STRING)
            snprintf(ids[i], 48, "%s", r->str);
        freeReplyObject(r);
    }
}

/* ---- the queue's callbacks, recorded ------------------------------------ */

#define MAXGOT 1024

struct got {
    char id[MAXGOT][48];
    int from_pending[MAXGOT];
    char attempt[MAXGOT][8];
    char data[MAXGOT][32];
    size_t data_len[MAXGOT];
    size_t n, batches;
    enum queue_state state;
    int downs, ups;
    int done[MAXGOT], ndone, status_sum;
    char state_val[32];
    int state_status;
    long long promoted;
    int promote_calls;
    struct queue_lengths len;
    int stats_ok, stats_calls;
    struct queue *free_me; /* queue_free() it from the next callback */
};

static void free_from_callback(struct got *g)
{
    if (g->free_me) {
        queue_free(g->free_me);
        g->free_me = NULL;
    }
}

static void on_entries(void *user, const struct queue_entry *e, size_t n, int from_pending)
{
    struct got *g = user;

    g->batches++;
    free_from_callback(g);
    for (size_t i = 0; i < n && g->n < MAXGOT; i++, g->n++) {
        snprintf(g->id[g->n], 48, "%s", e[i].id);
        g->from_pending[g->n] = from_pending;
        g->attempt[g->n][0] = 0;
        g->data_len[g->n] = 0;
        for (size_t j = 0; j < e[i].nfields; j++) {
            const struct queue_field *f = &e[i].fields[j];
            if (f->name_len == 7 && !memcmp(f->name, "attempt", 7))
                snprintf(g->attempt[g->n], 8, "%.*s", (int)f->value_len, f->value);
            if (f->name_len == 4 && !memcmp(f->name, "data", 4) && f->value_len <= 32) {
                memcpy(g->data[g->n], f->value, f->value_len);
                g->data_len[g->n] = f->value_len;
            }
        }
    }
}

static void on_state(void *user, enum queue_state st, const char *detail)
{
    struct got *g = user;

    (void)detail;
    g->state = st;
    if (st == QUEUE_UP)
        g->ups++;
    else
        g->downs++;
}

static void on_done(void *arg, int status)
{
    struct got *g = arg;

    if (g->ndone < MAXGOT)
        g->done[g->ndone] = status;
    g->ndone++;
    g->status_sum += status;
    free_from_callback(g);
}

static void on_state_get(void *arg, int status, const char *state)
{
    struct got *g = arg;

    g->state_status = status;
    snprintf(g->state_val, sizeof(g->state_val), "%s", state ? state : "(nil)");
}

static void on_promoted(void *arg, long long moved)
{
    struct got *g = arg;
    g->promoted = moved;
    g->promote_calls++;
}

static void on_stats(void *arg, int ok, const struct queue_lengths *len)
{
    struct got *g = arg;
    g->stats_ok = ok;
    g->len = *len;
    g->stats_calls++;
}

static const struct queue_callbacks callbacks = {on_entries, on_state};

/* ---- helpers ------------------------------------------------------------ */

static struct loop *loop;
static struct server srv;

/* Runs the loop until *flag >= want or ms pass; true when reached. */
static bool run_until(const int *iflag, const size_t *zflag, long want, int ms)
{
    uint64_t end = now_ms() + (uint64_t)ms;

    for (;;) {
        if (iflag && *iflag >= want)
            return true;
        if (zflag && *zflag >= (size_t)want)
            return true;
        if (now_ms() >= end)
            return false;
        loop_run_once(loop, 20);
    }
}

static void run_for(int ms)
{
    uint64_t end = now_ms() + (uint64_t)ms;
    while (now_ms() < end)
        loop_run_once(loop, 20);
}

static struct queue_config config(const char *p, const char *consumer)
{
    static char keys[6][64];
    struct queue_config c = {0};

    snprintf(keys[0], 64, "%s:jobs", p);
    snprintf(keys[1], 64, "%s:events", p);
    snprintf(keys[2], 64, "%s:dead", p);
    snprintf(keys[3], 64, "%s:retry", p);
    snprintf(keys[4], 64, "%s:state:", p);
    c.host = "127.0.0.1";
    c.port = (unsigned)srv.port;
    c.stream = keys[0];
    c.group = "g";
    c.events = keys[1];
    c.dead = keys[2];
    c.retry = keys[3];
    c.state_prefix = keys[4];
    c.consumer = consumer;
    c.block_ms = 200;
    c.command_timeout_ms = 2000;
    c.promote_interval_ms = UINT32_MAX;
    c.backoff_min_ms = 50;
    c.backoff_max_ms = 400;
    return c;
}

static struct queue *start(const struct queue_config *c, struct got *g)
{
    char err[128] = "";
    struct queue *q;

    memset(g, 0, sizeof(*g));
    q = queue_new(loop, c, &callbacks, g, err, sizeof(err));
    CHECK(q != NULL);
    if (!q) {
        fprintf(stderr, "queue_new: %s\n", err);
        exit(1);
    }
    CHECK(run_until(&g->ups, NULL, 1, 5000));
    return q;
}

static int ack(struct queue *q, struct got *g, const char *id)
{
    struct queue_field ev[] = {queue_str("status", "sent"), queue_str("code", "250"),
                               queue_str("rcpt", "u@example.net")};
    struct queue_outcome o = {.id = id, .events = ev, .nevents = 3};
    return queue_ack(q, &o, on_done, g);
}

#endif
