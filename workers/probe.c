/*
 * ringmail probe: connect to an SMTP server, walk it through STARTTLS,
 * record every TLS fact, enumerate what it accepts and grade it.
 *
 * Exit status: 0 grade at least --min-grade, 1 below it, 2 the server could
 * not be reached (connect or timeout), 64 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "probe.h"

const char probe_ehlo_name[] = "ringmail-probe.localdomain";

static void usage(FILE *f)
{
    fprintf(f, "Usage: ringmail probe HOST[:PORT] [options]\n"
               "\n"
               "Grade an SMTP server's TLS: STARTTLS (or implicit TLS), the certificate,\n"
               "the protocol versions and cipher classes it accepts, STARTTLS command\n"
               "injection (CVE-2011-0411), and the capabilities before and after TLS.\n"
               "\n"
               "Options:\n"
               "  --implicit-tls       TLS from the first byte (port 465 style; default port 465)\n"
               "  --ca FILE            trust this CA file instead of the system store\n"
               "  --servername NAME    SNI and the name the certificate must match (default HOST)\n"
               "  --min-grade A|B|C    lowest passing grade (default B)\n"
               "  --json               every fact as JSON on stdout\n"
               "  --timeout S          per-step timeout in seconds (default 10)\n"
               "  -h, --help           show this help and exit\n"
               "\n"
               "Grades: A TLS 1.3, or TLS 1.2 with AEAD and forward secrecy only, and a valid\n"
               "certificate; B also CBC or non-forward-secret suites; C TLS 1.0/1.1 or RC4;\n"
               "F bad certificate, no STARTTLS or not 220, plaintext after the 220, STARTTLS\n"
               "injection, AUTH only before TLS, NULL/anonymous/export suites.\n"
               "\n"
               "Exit status: 0 grade >= --min-grade, 1 below it, 2 server not reachable,\n"
               "64 usage error.\n");
}

/* ---- connections ---- */

int probe_conn_open(struct probe_conn *c, const struct probe_opts *o, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL, *ai;
    char port[16];
    int rc;

    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->timeout_ms = o->timeout_ms;
    snprintf(port, sizeof(port), "%u", o->port);
    rc = getaddrinfo(o->host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "resolve %s: %s", o->host, gai_strerror(rc));
        return -1;
    }
    snprintf(err, errlen, "connect: no address");
    for (ai = res; ai; ai = ai->ai_next) {
        struct pollfd pfd;
        struct timeval tv = {.tv_sec = o->timeout_ms / 1000,
                             .tv_usec = (o->timeout_ms % 1000) * 1000};
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        int soerr = 0;
        socklen_t sl = sizeof(soerr);

        if (fd < 0)
            continue;
        /* Non-blocking connect so that a black-holed address times out. */
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
            snprintf(err, errlen, "connect: %s", strerror(errno));
            close(fd);
            continue;
        }
        pfd = (struct pollfd){.fd = fd, .events = POLLOUT};
        rc = poll(&pfd, 1, (int)o->timeout_ms);
        if (rc <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
            snprintf(err, errlen, "connect: %s", rc == 0 ? "timed out" : strerror(soerr));
            close(fd);
            continue;
        }
        /* Blocking from here on; the timeouts bound every TLS read and write. */
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        c->fd = fd;
        break;
    }
    freeaddrinfo(res);
    if (c->fd < 0)
        return -1;
    err[0] = '\0';
    c->parser = smtp_reply_parser_new(NULL);
    if (!c->parser) {
        snprintf(err, errlen, "out of memory");
        probe_conn_close(c);
        return -1;
    }
    return 0;
}

void probe_conn_close(struct probe_conn *c)
{
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    smtp_reply_parser_free(c->parser);
    c->parser = NULL;
}

int probe_send(struct probe_conn *c, const char *s)
{
    size_t len = strlen(s);

    if (c->ssl)
        return SSL_write(c->ssl, s, (int)len) == (int)len ? 0 : -1;
    while (len) {
        ssize_t n = send(c->fd, s, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        s += n;
        len -= (size_t)n;
    }
    return 0;
}

/* One SSL_read bounded by the connection's timeout. Records that carry no
 * application data (TLS 1.3 session tickets) make a blocking SSL_read wait
 * for the socket timeout, so the socket is non-blocking while this polls. */
static long ssl_read_some(struct probe_conn *c, char *buf, size_t cap)
{
    struct timespec t0, t1;
    int flags = fcntl(c->fd, F_GETFL), k = -1;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    fcntl(c->fd, F_SETFL, flags | O_NONBLOCK);
    for (;;) {
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        long waited;

        k = SSL_read(c->ssl, buf, (int)cap);
        if (k > 0 || SSL_get_error(c->ssl, k) != SSL_ERROR_WANT_READ)
            break;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        waited = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
        if (waited >= (long)c->timeout_ms ||
            poll(&pfd, 1, (int)((long)c->timeout_ms - waited)) <= 0) {
            k = -1;
            break;
        }
    }
    fcntl(c->fd, F_SETFL, flags);
    return k > 0 ? k : -1;
}

static long read_some(struct probe_conn *c, char *buf, size_t cap)
{
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    ssize_t n;

    if (c->ssl)
        return ssl_read_some(c, buf, cap);
    if (poll(&pfd, 1, (int)c->timeout_ms) <= 0)
        return -1;
    n = recv(c->fd, buf, cap, 0);
    return n > 0 ? n : -1;
}

int probe_reply(struct probe_conn *c, char *text, size_t cap)
{
    struct smtp_reply r;

    for (;;) {
        long k = 0;
        if (c->in_len) {
            k = smtp_reply_parser_feed(c->parser, c->in, c->in_len, &r);
            if (k < 0)
                return -1;
            if (k == 0) {
                c->in_len = 0;
            } else {
                memmove(c->in, c->in + k, c->in_len - (size_t)k);
                c->in_len -= (size_t)k;
                if (text && cap)
                    snprintf(text, cap, "%s", r.text);
                return r.code;
            }
        }
        k = read_some(c, c->in, sizeof(c->in));
        if (k <= 0)
            return -1;
        c->in_len = (size_t)k;
    }
}

/* EHLO; the capabilities parsed into e when it is not NULL. */
static int ehlo(struct probe_conn *c, struct smtp_ehlo *e)
{
    char text[8192];
    int code;
    char cmd[300];

    snprintf(cmd, sizeof(cmd), "EHLO %s\r\n", probe_ehlo_name);
    if (probe_send(c, cmd) < 0)
        return -1;
    code = probe_reply(c, text, sizeof(text));
    if (code == 250 && e)
        smtp_ehlo_parse_text(text, strlen(text), e); /* it skips the server-name line */
    return code;
}

int probe_to_tls(struct probe_conn *c, const struct probe_opts *o)
{
    if (o->implicit)
        return 0;
    if (probe_reply(c, NULL, 0) != 220 || ehlo(c, NULL) != 250 ||
        probe_send(c, "STARTTLS\r\n") < 0 || probe_reply(c, NULL, 0) != 220)
        return -1;
    c->in_len = 0; /* anything after the 220 is the plaintext-injection finding, not ours */
    return 0;
}

/* Everything that arrives within a short window after the 220: a server (or
 * a man in the middle) that sends plaintext there can have it taken for a
 * reply inside TLS by a careless client. */
static void drain_after_220(struct probe_conn *c, struct probe_result *r)
{
    struct timespec t0, t1;
    char buf[1024];
    const char *p = c->in;
    size_t n = c->in_len;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        size_t room = sizeof(r->plaintext_sample) - 1 - strlen(r->plaintext_sample);
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        long waited;
        ssize_t k;

        r->plaintext_after_220 += n;
        strncat(r->plaintext_sample, p, n < room ? n : room);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        waited = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
        if (waited >= 300 || poll(&pfd, 1, (int)(300 - waited)) <= 0)
            break;
        k = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (k <= 0)
            break;
        p = buf;
        n = (size_t)k;
    }
    c->in_len = 0;
}

/* The main connection: returns 0 when it got far enough to grade, -1 when
 * the server could not be reached at all. */
static int probe_main(const struct probe_opts *o, struct probe_result *r)
{
    struct probe_conn c;
    char text[PROBE_TEXT];

    if (probe_conn_open(&c, o, r->error, sizeof(r->error)) < 0)
        return -1;
    if (!o->implicit) {
        r->banner_code = probe_reply(&c, r->banner, sizeof(r->banner));
        if (r->banner_code < 0) {
            snprintf(r->error, sizeof(r->error), "no SMTP banner (timeout or closed)");
            probe_conn_close(&c);
            return -1;
        }
        r->reached = 1;
        r->ehlo_pre_code = ehlo(&c, &r->ehlo_pre);
        r->starttls_offered = (r->ehlo_pre.ext & SMTP_EXT_STARTTLS) != 0;
        if (probe_send(&c, "STARTTLS\r\n") == 0)
            r->starttls_code = probe_reply(&c, r->starttls_reply, sizeof(r->starttls_reply));
        if (r->starttls_code != 220) {
            probe_conn_close(&c);
            return 0;
        }
        drain_after_220(&c, r);
    }
    r->reached = 1;
    if (probe_tls_main(&c, o, &r->tls) == 0) {
        if (o->implicit) {
            r->banner_code = probe_reply(&c, r->banner, sizeof(r->banner));
        }
        r->ehlo_post_code = ehlo(&c, &r->ehlo_post);
        if (probe_send(&c, "QUIT\r\n") == 0)
            probe_reply(&c, text, sizeof(text));
    }
    probe_conn_close(&c);
    return 0;
}

static int parse_target(const char *arg, struct probe_opts *o)
{
    const char *colon;
    size_t hl;
    char *end;

    if (arg[0] == '[') {
        const char *rb = strchr(arg, ']');
        if (!rb)
            return -1;
        hl = (size_t)(rb - arg - 1);
        if (hl == 0 || hl >= sizeof(o->host))
            return -1;
        memcpy(o->host, arg + 1, hl);
        o->host[hl] = '\0';
        colon = rb[1] == ':' ? rb + 1 : NULL;
        if (rb[1] && !colon)
            return -1;
    } else {
        colon = strchr(arg, ':');
        if (colon && strchr(colon + 1, ':'))
            colon = NULL; /* a bare IPv6 address without a port */
        hl = colon ? (size_t)(colon - arg) : strlen(arg);
        if (hl == 0 || hl >= sizeof(o->host))
            return -1;
        memcpy(o->host, arg, hl);
        o->host[hl] = '\0';
    }
    if (colon) {
        unsigned long p;
        errno = 0;
        p = strtoul(colon + 1, &end, 10);
        if (errno || *end || end == colon + 1 || p == 0 || p > 65535)
            return -1;
        o->port = (unsigned)p;
    }
    return 0;
}

int cmd_probe(int argc, char **argv)
{
    enum { O_IMPLICIT = 256, O_CA, O_SNI, O_MIN, O_JSON, O_TIMEOUT };
    static const struct option longopts[] = {
        {"implicit-tls", no_argument, NULL, O_IMPLICIT},
        {"ca", required_argument, NULL, O_CA},
        {"servername", required_argument, NULL, O_SNI},
        {"min-grade", required_argument, NULL, O_MIN},
        {"json", no_argument, NULL, O_JSON},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct probe_opts o = {.min_grade = 'B', .timeout_ms = 10000};
    struct probe_result *r;
    int ch, rc;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case O_IMPLICIT:
            o.implicit = 1;
            break;
        case O_CA:
            o.ca = optarg;
            break;
        case O_SNI:
            o.servername = optarg;
            break;
        case O_MIN:
            if (strlen(optarg) != 1 || !strchr("ABCF", optarg[0])) {
                fprintf(stderr, "ringmail probe: --min-grade wants A, B, C or F\n");
                return EX_USAGE;
            }
            o.min_grade = optarg[0];
            break;
        case O_JSON:
            o.json = 1;
            break;
        case O_TIMEOUT: {
            char *end;
            unsigned long s = strtoul(optarg, &end, 10);
            if (*end || end == optarg || s == 0 || s > 3600) {
                fprintf(stderr, "ringmail probe: --timeout wants 1..3600 seconds\n");
                return EX_USAGE;
            }
            o.timeout_ms = (unsigned)s * 1000;
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EX_USAGE;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return EX_USAGE;
    }
    o.port = 0;
    if (parse_target(argv[optind], &o) < 0) {
        fprintf(stderr, "ringmail probe: bad target '%s' (HOST[:PORT] or [V6]:PORT)\n",
                argv[optind]);
        return EX_USAGE;
    }
    if (!o.port)
        o.port = o.implicit ? 465 : 25;
    signal(SIGPIPE, SIG_IGN);

    r = calloc(1, sizeof(*r));
    if (!r)
        return EX_OSERR;
    r->injectable = -1;
    r->implicit = o.implicit;
    snprintf(r->target, sizeof(r->target), "%s:%u", o.host, o.port);
    snprintf(r->servername, sizeof(r->servername), "%s", o.servername ? o.servername : o.host);
    if (probe_main(&o, r) < 0) {
        r->grade = '-';
        if (o.json)
            probe_print_json(stdout, r);
        else
            fprintf(stderr, "ringmail probe: %s: %s\n", r->target, r->error);
        free(r);
        return 2;
    }
    /* Enumeration only means something once TLS is on offer at all. */
    if (o.implicit || r->starttls_code == 220) {
        probe_enumerate(&o, r);
        if (!o.implicit)
            probe_injection(&o, r);
    }
    probe_grade(r);
    if (o.json)
        probe_print_json(stdout, r);
    else
        probe_print_text(stdout, r);
    /* Grades sort as letters: A < B < C < F. */
    rc = r->grade <= o.min_grade ? 0 : 1;
    free(r);
    return rc;
}
