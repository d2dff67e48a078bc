/*
 * metrics_http: the master's HTTP endpoint, served by libmicrohttpd from
 * one internal thread. It only reads the shared region.
 *
 *   GET /metrics  200, the text exposition (text/plain; version=0.0.4)
 *   GET /healthz  200 "ok": the master is alive and serving
 *   GET /readyz   200 "ready", or 503 with the reason (metrics_ready())
 *   other paths   404; other methods 405 (HEAD is answered as GET, without
 *                 the body, as HTTP requires)
 *
 * It binds to the configured address only: metrics show relay names and
 * TLS details that need not leave the host or the cluster network.
 */
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "metrics.h"

/* Scrapers are few; a bound and a timeout keep idle or slow clients from
 * piling up in the master. */
#define HTTP_CONN_LIMIT   32
#define HTTP_TIMEOUT_SECS 10

struct metrics_http {
    struct MHD_Daemon *d;
    struct metrics *m;
    int per_connection;
    unsigned port;
    char log[METRICS_ERR_MAX]; /* MHD's first complaint, for the start error */
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
                             char *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    enum MHD_Result ret;

    if (!r) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result text(struct MHD_Connection *c, unsigned status, const char *msg)
{
    return reply(c, status, "text/plain; charset=utf-8", (char *)msg, strlen(msg),
                 MHD_RESPMEM_PERSISTENT);
}

static enum MHD_Result serve_metrics(struct metrics_http *h, struct MHD_Connection *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    int rc;

    if (!f)
        return text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    rc = metrics_render(h->m, h->per_connection, f);
    if (fclose(f) != 0)
        rc = -1;
    if (rc < 0) {
        free(buf);
        return text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "rendering failed\n");
    }
    return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", buf, len,
                 MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result serve_ready(struct metrics_http *h, struct MHD_Connection *c)
{
    char why[256];
    size_t n;
    int ok = metrics_ready_explain(h->m, why, sizeof(why) - 1);

    n = strlen(why);
    why[n++] = '\n';
    why[n] = '\0';
    return reply(c, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain; charset=utf-8",
                 why, n, MHD_RESPMEM_MUST_COPY);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **req)
{
    struct metrics_http *h = cls;
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)req;

    /* Answering on the first call is fine for bodiless requests, and for
     * the rest MHD discards the body it never handed over. */
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
    if (strcmp(url, "/metrics") == 0)
        return serve_metrics(h, c);
    if (strcmp(url, "/healthz") == 0)
        return text(c, MHD_HTTP_OK, "ok\n");
    if (strcmp(url, "/readyz") == 0)
        return serve_ready(h, c);
    return text(c, MHD_HTTP_NOT_FOUND, "not found\n");
}

/* MHD reports bind and thread errors here: keep the first for
 * metrics_http_start()'s error; later ones (a client's bad request) are
 * dropped rather than written to the master's stderr. */
__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct metrics_http *h = cls;
    size_t n;

    if (h->log[0])
        return;
    vsnprintf(h->log, sizeof(h->log), fmt, ap);
    n = strlen(h->log);
    while (n > 0 && (h->log[n - 1] == '\n' || h->log[n - 1] == '\r'))
        h->log[--n] = '\0';
}

struct metrics_http *metrics_http_start(struct metrics *m, const char *host, unsigned port,
                                        int per_connection, char *err, size_t errlen)
{
    struct metrics_http *h = NULL;
    struct addrinfo hints = {0}, *ai = NULL;
    char portbuf[16];
    /* No thread of its own: the master forks workers, and a fork while
     * another thread holds a lock (the allocator's) can deadlock the
     * child. The master polls metrics_http_fd() in its own loop. */
    unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    const union MHD_DaemonInfo *info;
    int gai;

    if (!m || !host || port > 65535) {
        if (err && errlen)
            snprintf(err, errlen, "metrics: bad listen address");
        return NULL;
    }
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(portbuf, sizeof(portbuf), "%u", port);
    gai = getaddrinfo(host, portbuf, &hints, &ai);
    if (gai != 0) {
        if (err && errlen)
            snprintf(err, errlen, "metrics: listen address %s: %s", host, gai_strerror(gai));
        return NULL;
    }
    h = calloc(1, sizeof(*h));
    if (!h) {
        if (err && errlen)
            snprintf(err, errlen, "metrics: out of memory");
        goto out;
    }
    h->m = m;
    h->per_connection = per_connection;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    h->d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, handle, h, MHD_OPTION_SOCK_ADDR,
                            ai->ai_addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONN_LIMIT,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_TIMEOUT_SECS,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h, MHD_OPTION_END);
    if (!h->d) {
        if (err && errlen)
            snprintf(err, errlen, "metrics: cannot listen on %s port %u%s%s", host, port,
                     h->log[0] ? ": " : "", h->log);
        free(h);
        h = NULL;
        goto out;
    }
    info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : port;
out:
    freeaddrinfo(ai);
    return h;
}

int metrics_http_fd(const struct metrics_http *h)
{
    const union MHD_DaemonInfo *info;
    if (!h)
        return -1;
    info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
    return info ? info->epoll_fd : -1;
}

void metrics_http_run(struct metrics_http *h)
{
    if (h)
        MHD_run(h->d);
}

int metrics_http_timeout_ms(const struct metrics_http *h)
{
    MHD_UNSIGNED_LONG_LONG ms;
    if (!h || MHD_get_timeout(h->d, &ms) != MHD_YES)
        return -1;
    return ms > 60000 ? 60000 : (int)ms;
}

unsigned metrics_http_port(const struct metrics_http *h)
{
    return h ? h->port : 0;
}

void metrics_http_stop(struct metrics_http *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d);
    free(h);
}
