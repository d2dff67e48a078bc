/*
 * master: forks and supervises the worker processes of `ringmail run`.
 *
 * Signals reach the master only through a signalfd (they stay blocked), so
 * nothing runs in signal context. Each worker slot has a stable index, which
 * is part of the worker's Redis consumer name: a restarted worker takes back
 * the entries its predecessor left pending. For the same reason a reload
 * replaces workers one slot at a time and starts the new worker of a slot
 * only after the old one has drained and exited.
 */
#include "master.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "worker.h"

#define MAX_WORKERS 256
/* A worker that dies within this long of starting is crash-looping. */
#define CRASH_LOOP_MS  1000
#define RESTART_MIN_MS 100
#define RESTART_MAX_MS 30000
/* Time beyond shutdown_timeout before stragglers are killed. */
#define KILL_GRACE_MS 5000

struct slot {
    pid_t pid;
    uint64_t started_ms;
    uint64_t start_at_ms; /* when to (re)start; 0: not scheduled */
    unsigned backoff_ms;
    int replacing; /* stopped for a reload: restart with the new config */
};

struct master {
    const char *path;
    struct config *cfg, *next_cfg; /* next_cfg: a reload in progress */
    unsigned nworkers;
    struct slot slots[MAX_WORKERS];
    master_worker_fn *worker;
    int sfd;
    int stopping;
    uint64_t kill_at_ms;
    unsigned long restarts;
    struct metrics *metrics;
    struct metrics_http *http;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static unsigned workers_of(const struct config *cfg)
{
    unsigned n = config_workers_effective(cfg);
    if (n == 0)
        n = 1;
    return n > MAX_WORKERS ? MAX_WORKERS : n;
}

static void start_worker(struct master *m, unsigned i)
{
    struct slot *s = &m->slots[i];
    char idx[16], pid[16];
    pid_t p;

    s->start_at_ms = 0;
    p = fork();
    if (p < 0) {
        log_event(LOG_ERROR, "worker_fork_failed", "error", strerror(errno), NULL);
        s->start_at_ms = now_ms() + 1000;
        return;
    }
    if (p == 0) {
        sigset_t none;
        /* The worker must not outlive the master, nor inherit its signal
         * plumbing. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        /* Nothing of the master's: not its signalfd, not the metrics
         * listener or a scrape in progress (a worker holding those would
         * keep a port or a client hanging). */
        close_range(3, ~0U, 0);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        _exit(m->worker(m->cfg, i));
    }
    s->pid = p;
    s->started_ms = now_ms();
    snprintf(idx, sizeof(idx), "%u", i);
    snprintf(pid, sizeof(pid), "%d", (int)p);
    log_event(LOG_INFO, "worker_started", "worker", idx, "pid", pid, NULL);
}

static void describe_status(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exit %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(buf, len, "status %d", status);
}

/* The next slot still running with the old configuration during a reload. */
static void reload_next(struct master *m)
{
    unsigned i;
    for (i = 0; i < m->nworkers; i++) {
        if (m->slots[i].pid > 0 && !m->slots[i].replacing) {
            m->slots[i].replacing = 1;
            kill(m->slots[i].pid, SIGTERM);
            return;
        }
    }
    /* Every old worker is gone: the new configuration is the one now. */
    for (i = 0; i < m->nworkers; i++)
        m->slots[i].replacing = 0;
    config_free(m->cfg);
    m->cfg = m->next_cfg;
    m->next_cfg = NULL;
    for (i = workers_of(m->cfg); i < m->nworkers; i++)
        m->slots[i].start_at_ms = 0;
    m->nworkers = workers_of(m->cfg);
    for (i = 0; i < m->nworkers; i++)
        if (m->slots[i].pid <= 0 && !m->slots[i].start_at_ms)
            start_worker(m, i);
    log_event(LOG_INFO, "config_reloaded", "path", m->path, NULL);
}

static void on_exit_of(struct master *m, unsigned i, int status)
{
    struct slot *s = &m->slots[i];
    char idx[16], st[96];
    uint64_t lived = now_ms() - s->started_ms;
    int clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;

    s->pid = 0;
    /* Its connections are gone: their series go with them. */
    metrics_worker_reset(m->metrics, i);
    snprintf(idx, sizeof(idx), "%u", i);
    describe_status(status, st, sizeof(st));
    if (m->stopping) {
        log_event(clean ? LOG_INFO : LOG_WARN, "worker_stopped", "worker", idx, "status", st, NULL);
        return;
    }
    if (s->replacing && m->next_cfg) {
        /* Drained for a reload: its successor runs the new configuration. */
        log_event(LOG_INFO, "worker_replaced", "worker", idx, "status", st, NULL);
        if (i < workers_of(m->next_cfg)) {
            struct config *old = m->cfg;
            m->cfg = m->next_cfg;
            start_worker(m, i);
            m->cfg = old;
        }
        reload_next(m);
        return;
    }
    /* A crash (or a kill from outside): restart, quickly unless it is
     * crash-looping. */
    if (lived < CRASH_LOOP_MS)
        s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : RESTART_MIN_MS;
    else
        s->backoff_ms = RESTART_MIN_MS;
    if (s->backoff_ms > RESTART_MAX_MS)
        s->backoff_ms = RESTART_MAX_MS;
    s->start_at_ms = now_ms() + s->backoff_ms;
    m->restarts++;
    metrics_worker_restart(m->metrics);
    log_event(LOG_WARN, "worker_died", "worker", idx, "status", st, NULL);
}

static void reap(struct master *m)
{
    int status;
    pid_t p;
    while ((p = waitpid(-1, &status, WNOHANG)) > 0) {
        unsigned i;
        for (i = 0; i < MAX_WORKERS; i++) {
            if (m->slots[i].pid == p) {
                on_exit_of(m, i, status);
                break;
            }
        }
    }
}

static void begin_stop(struct master *m)
{
    unsigned i;
    if (m->stopping)
        return;
    m->stopping = 1;
    m->kill_at_ms = now_ms() + (uint64_t)m->cfg->shutdown_timeout * 1000 + KILL_GRACE_MS;
    log_event(LOG_INFO, "shutdown", "detail", "draining workers", NULL);
    for (i = 0; i < MAX_WORKERS; i++)
        if (m->slots[i].pid > 0)
            kill(m->slots[i].pid, SIGTERM);
}

static void begin_reload(struct master *m)
{
    char err[512];
    struct config *n;
    if (m->stopping || m->next_cfg) {
        log_event(LOG_WARN, "config_reload_skipped", "detail",
                  m->stopping ? "shutting down" : "a reload is in progress", NULL);
        return;
    }
    n = config_load(m->path, err, sizeof(err));
    if (!n) {
        log_event(LOG_ERROR, "config_reload_failed", "path", m->path, "error", err, NULL);
        return;
    }
    m->next_cfg = n;
    log_event(LOG_INFO, "config_reload", "path", m->path, NULL);
    reload_next(m);
}

/*
 * Counters in shared memory mapped before any fork, and the endpoint that
 * renders them. The endpoint has no thread of its own: the master forks
 * (restarts, reloads), and a fork while another thread holds a lock (the
 * allocator's, ASan's) leaves the child deadlocked on its first malloc. Relays and the worker count
 * are fixed here: a reload that adds relays or workers gets their counters after a restart.
 */
static void start_metrics(struct master *m)
{
    const char *names[256];
    unsigned conns = 16, i;
    char err[256];

    for (i = 0; i < m->cfg->nrelays && i < 256; i++) {
        names[i] = m->cfg->relays[i].name;
        conns += m->cfg->relays[i].connections * 2; /* rotation overlaps old and new */
    }
    m->metrics = metrics_create(m->nworkers, i, names, conns, err, sizeof(err));
    if (!m->metrics) {
        log_event(LOG_ERROR, "metrics_failed", "error", err, NULL);
        return;
    }
    worker_set_metrics(m->metrics);
    m->http = metrics_http_start(m->metrics, m->cfg->metrics.host, m->cfg->metrics.port,
                                 m->cfg->metrics.per_connection, err, sizeof(err));
    if (!m->http)
        log_event(LOG_ERROR, "metrics_listen_failed", "listen", m->cfg->metrics.listen, "error",
                  err, NULL);
    else
        log_event(LOG_INFO, "metrics_listening", "listen", m->cfg->metrics.listen, NULL);
}

static int live(const struct master *m)
{
    unsigned i;
    for (i = 0; i < MAX_WORKERS; i++)
        if (m->slots[i].pid > 0)
            return 1;
    return 0;
}

int master_run(const char *config_path, struct config *cfg, master_worker_fn *worker)
{
    static struct master m;
    sigset_t set;
    unsigned i;

    memset(&m, 0, sizeof(m));
    m.path = config_path;
    m.cfg = cfg;
    m.worker = worker;
    m.nworkers = workers_of(cfg);
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    m.sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (m.sfd < 0) {
        log_event(LOG_ERROR, "signalfd_failed", "error", strerror(errno), NULL);
        return 71; /* EX_OSERR */
    }
    {
        char n[16];
        snprintf(n, sizeof(n), "%u", m.nworkers);
        log_event(LOG_INFO, "master_started", "workers", n, "config", config_path, NULL);
    }
    start_metrics(&m);
    for (i = 0; i < m.nworkers; i++)
        start_worker(&m, i);

    for (;;) {
        /* Signals and the metrics endpoint, in one thread: see start_metrics. */
        struct pollfd pfd[2] = {{m.sfd, POLLIN, 0}, {metrics_http_fd(m.http), POLLIN, 0}};
        uint64_t now = now_ms(), next = 0;
        int timeout = -1, http_ms = metrics_http_timeout_ms(m.http);

        for (i = 0; i < m.nworkers; i++)
            if (m.slots[i].start_at_ms && (!next || m.slots[i].start_at_ms < next))
                next = m.slots[i].start_at_ms;
        if (m.stopping)
            next = m.kill_at_ms;
        if (next)
            timeout = next > now ? (int)(next - now) : 0;
        if (http_ms >= 0 && (timeout < 0 || http_ms < timeout))
            timeout = http_ms;
        if (poll(pfd, m.http ? 2 : 1, timeout) > 0 && (pfd[0].revents & POLLIN)) {
            struct signalfd_siginfo si;
            while (read(m.sfd, &si, sizeof(si)) == sizeof(si)) {
                if (si.ssi_signo == SIGCHLD)
                    reap(&m);
                else if (si.ssi_signo == SIGHUP)
                    begin_reload(&m);
                else
                    begin_stop(&m);
            }
        }
        metrics_http_run(m.http);
        reap(&m); /* SIGCHLDs coalesce: reap whatever is there */
        now = now_ms();
        if (m.stopping) {
            if (!live(&m))
                break;
            if (now >= m.kill_at_ms) {
                log_event(LOG_WARN, "shutdown_deadline", "detail", "killing workers", NULL);
                for (i = 0; i < MAX_WORKERS; i++)
                    if (m.slots[i].pid > 0)
                        kill(m.slots[i].pid, SIGKILL);
                m.kill_at_ms = now + 60000;
            }
            continue;
        }
        for (i = 0; i < m.nworkers; i++)
            if (m.slots[i].start_at_ms && m.slots[i].start_at_ms <= now && m.slots[i].pid <= 0)
                start_worker(&m, i);
    }
    log_event(LOG_INFO, "master_stopped", NULL);
    metrics_http_stop(m.http);
    metrics_free(m.metrics);
    close(m.sfd);
    config_free(m.cfg);
    config_free(m.next_cfg);
    return 0;
}
