/*
 * test_metrics: the shared-memory counters written by forked "workers",
 * the Prometheus text read back by the parent (exact lines), the slot
 * protocol under a concurrent writer, kernel TLS statistics from fixture
 * files, readiness, and the HTTP endpoint over a real loopback socket.
 * When promtool is installed, the rendering must also pass its linter.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "metrics.h"
#include "tls.h"
#include "version.h"

static const char *const relay_names[2] = {"mx-a", "we\"ird\\re\nlay"};
#define R1 "relay=\"we\\\"ird\\\\re\\nlay\""

static char *render(const struct metrics *m, int per_conn)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK(f != NULL);
    CHECK_INT(metrics_render(m, per_conn, f), 0);
    fclose(f);
    return buf;
}

/* The text holds this exact line. */
static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return 1;
    return 0;
}

#define CHECK_LINE(text, line)                                                                     \
    do {                                                                                           \
        if (has_line((text), (line))) {                                                            \
            check_passed++;                                                                        \
        } else {                                                                                   \
            check_failed++;                                                                        \
            fprintf(stderr, "%s:%d: missing line: %s\n", __FILE__, __LINE__, (line));              \
        }                                                                                          \
    } while (0)

static struct tls_facts facts(const char *proto, const char *cipher, const char *verify,
                              int verified, int ktls)
{
    struct tls_facts f;
    memset(&f, 0, sizeof(f));
    snprintf(f.protocol, sizeof(f.protocol), "%s", proto);
    snprintf(f.cipher, sizeof(f.cipher), "%s", cipher);
    snprintf(f.group, sizeof(f.group), "%s", "x25519");
    snprintf(f.verify, sizeof(f.verify), "%s", verify);
    f.verify_enabled = 1;
    f.verify_code = verified ? 0 : 10;
    f.ktls_tx = (uint8_t)ktls;
    f.not_after = 1800000000;
    f.handshake_us = 12345;
    f.resumed = 1;
    return f;
}

static void worker0(struct metrics *m)
{
    struct metrics_worker *mw = metrics_worker(m, 0);
    struct tls_facts f = facts("TLSv1.3", "TLS_AES_128_GCM_SHA256", "ok", 1, 1);
    int s, s2;

    for (int i = 0; i < 3; i++)
        metrics_message(mw, 0, METRICS_DELIVERED);
    metrics_message(mw, 0, METRICS_DEFERRED);
    metrics_handshake(mw, 0, SMTP_CLIENT_R_NONE);
    metrics_handshake(mw, 0, SMTP_CLIENT_R_NONE);
    metrics_handshake(mw, 0, SMTP_CLIENT_R_TIMEOUT);
    metrics_tls_failure(mw, 0, SMTP_CLIENT_R_CERT_VERIFY);
    metrics_latency(mw, 0, 0.0005);
    metrics_latency(mw, 0, 0.003);
    metrics_latency(mw, 0, 2.0);
    metrics_txn_duration(mw, 0, 0.02);
    metrics_redis_error(mw);
    metrics_outcome_failures(mw, 0, 3);
    metrics_outcome_failures(mw, 1, 2);
    metrics_set_outcome_stuck(mw, 5);
    metrics_set_redis_up(mw, 1);
    s = metrics_conn_open(mw, 0); /* conn 1: stays open */
    metrics_conn_tls(mw, s, &f);
    metrics_conn_message(mw, s, 1000);
    metrics_conn_message(mw, s, 24);
    metrics_conn_error(mw, s);
    s2 = metrics_conn_open(mw, 0); /* conn 2: closed again */
    metrics_conn_tls(mw, s2, &f);
    metrics_conn_message(mw, s2, 5);
    metrics_conn_close(mw, s2);
    /* Out of range: ignored, never a crash. */
    metrics_message(mw, 7, METRICS_DELIVERED);
    metrics_message(mw, 0, (enum metrics_status)9);
    metrics_conn_message(mw, -1, 1);
    metrics_conn_message(mw, s2, 1); /* closed: ignored */
    metrics_message(NULL, 0, METRICS_DELIVERED);
    _exit(s == 0 && s2 == 1 ? 0 : 3);
}

static void worker1(struct metrics *m)
{
    struct metrics_worker *mw = metrics_worker(m, 1);
    struct tls_facts f =
        facts("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256", "bad \"cert\\chain\"", 0, 0);
    int s[4], extra;

    metrics_message(mw, 0, METRICS_DELIVERED);
    metrics_message(mw, 0, METRICS_DELIVERED);
    metrics_message(mw, 0, METRICS_BOUNCED);
    metrics_message(mw, 1, METRICS_DEAD);
    metrics_handshake(mw, 1, SMTP_CLIENT_R_CERT_VERIFY);
    metrics_handshake(mw, 1, SMTP_CLIENT_R_INJECTION);
    metrics_handshake(mw, 1, (enum smtp_client_reason)99); /* out of range: local */
    metrics_tls_failure(mw, 0, SMTP_CLIENT_R_CERT_VERIFY);
    metrics_tls_failure(mw, 1, SMTP_CLIENT_R_TIMEOUT);
    metrics_latency(mw, 0, 400);
    metrics_set_redis_up(mw, 1);
    for (int i = 0; i < 4; i++)
        s[i] = metrics_conn_open(mw, 1);
    extra = metrics_conn_open(mw, 1); /* every slot busy */
    metrics_conn_tls(mw, s[2], &f);
    metrics_conn_close(mw, s[0]);
    metrics_conn_close(mw, s[1]);
    metrics_conn_close(mw, s[3]);
    _exit(extra == -1 && s[3] >= 0 ? 0 : 3);
}

static void run_child(struct metrics *m, void (*fn)(struct metrics *))
{
    int status = -1;
    pid_t p = fork();
    if (p == 0)
        fn(m);
    CHECK(p > 0);
    CHECK_INT(waitpid(p, &status, 0), p);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_counters(struct metrics *m)
{
    char *t;

    run_child(m, worker0);
    run_child(m, worker1);
    metrics_worker_restart(m);
    metrics_set_queue(m, 10, 2, 3, 4);
    t = render(m, 1);

    CHECK_LINE(t, "# HELP ringmail_up 1 while the master serves metrics.");
    CHECK_LINE(t, "# TYPE ringmail_up gauge");
    CHECK_LINE(t, "ringmail_up 1");
    CHECK_LINE(t, "ringmail_build_info{version=\"" RINGMAIL_VERSION "\"} 1");
    CHECK_LINE(t, "# TYPE ringmail_messages_total counter");
    CHECK_LINE(t, "ringmail_messages_total{relay=\"mx-a\",status=\"delivered\"} 5");
    CHECK_LINE(t, "ringmail_messages_total{relay=\"mx-a\",status=\"deferred\"} 1");
    CHECK_LINE(t, "ringmail_messages_total{relay=\"mx-a\",status=\"bounced\"} 1");
    CHECK_LINE(t, "ringmail_messages_total{relay=\"mx-a\",status=\"dead\"} 0");
    CHECK_LINE(t, "ringmail_messages_total{" R1 ",status=\"dead\"} 1");
    /* Every handshake outcome, ok or failed with the reason that ended it. */
    CHECK_LINE(t, "ringmail_tls_handshakes_total{relay=\"mx-a\",result=\"ok\",reason=\"none\"} 2");
    CHECK_LINE(
        t, "ringmail_tls_handshakes_total{relay=\"mx-a\",result=\"failed\",reason=\"timeout\"} 1");
    CHECK_LINE(t, "ringmail_tls_handshakes_total{" R1 ",result=\"ok\",reason=\"none\"} 0");
    CHECK_LINE(t,
               "ringmail_tls_handshakes_total{" R1 ",result=\"failed\",reason=\"cert-verify\"} 1");
    CHECK_LINE(t, "ringmail_tls_handshakes_total{" R1 ",result=\"failed\",reason=\"injection\"} 1");
    CHECK_LINE(t, "ringmail_tls_handshakes_total{" R1 ",result=\"failed\",reason=\"local\"} 1");
    CHECK(!strstr(t, "result=\"failed\",reason=\"none\""));
    CHECK_LINE(t, "ringmail_tls_failures_total{relay=\"mx-a\",reason=\"cert-verify\"} 2");
    CHECK_LINE(t, "ringmail_tls_failures_total{" R1 ",reason=\"timeout\"} 1");
    CHECK_LINE(t, "ringmail_tls_failures_total{" R1 ",reason=\"no-starttls\"} 0");
    CHECK(!strstr(t, "ringmail_tls_failures_total{relay=\"mx-a\",reason=\"none\""));

    /* 0.0005, 0.003, 2 and 400 seconds: cumulative buckets. */
    CHECK_LINE(t, "# TYPE ringmail_delivery_latency_seconds histogram");
    CHECK_LINE(t, "ringmail_delivery_latency_seconds_bucket{relay=\"mx-a\",le=\"0.001\"} 1");
    CHECK_LINE(t, "ringmail_delivery_latency_seconds_bucket{relay=\"mx-a\",le=\"0.0025\"} 1");
    CHECK_LINE(t, "ringmail_delivery_latency_seconds_bucket{relay=\"mx-a\",le=\"0.005\"} 2");
    CHECK_LINE(t, "ringmail_delivery_latency_seconds_bucket{relay=\"mx-a\",le=\"1\"} 2");
    CHECK_LINE(t, "ringmail_delivery_latency_seconds_bucket{relay=\"mx-a\",le=\"2.5\"} 3");
    CHECK_LINE(t, "ringmail_delivery_latency_seconds_bucket{relay=\"mx-a\",le=\"300\"} 3");
    CHECK_LINE(t, "ringmail_delivery_latency_seconds_bucket{relay=\"mx-a\",le=\"3600\"} 4");
    CHECK_LINE(t, "ringmail_delivery_latency_seconds_bucket{relay=\"mx-a\",le=\"+Inf\"} 4");
    CHECK_LINE(t, "ringmail_delivery_latency_seconds_sum{relay=\"mx-a\"} 402.003500");
    CHECK_LINE(t, "ringmail_delivery_latency_seconds_count{relay=\"mx-a\"} 4");
    CHECK_LINE(t, "ringmail_delivery_latency_seconds_bucket{" R1 ",le=\"+Inf\"} 0");
    CHECK_LINE(t,
               "ringmail_smtp_transaction_duration_seconds_bucket{relay=\"mx-a\",le=\"0.01\"} 0");
    CHECK_LINE(t,
               "ringmail_smtp_transaction_duration_seconds_bucket{relay=\"mx-a\",le=\"0.025\"} 1");
    CHECK_LINE(t, "ringmail_smtp_transaction_duration_seconds_sum{relay=\"mx-a\"} 0.020000");
    CHECK_LINE(t, "ringmail_smtp_transaction_duration_seconds_count{relay=\"mx-a\"} 1");

    CHECK_LINE(t, "ringmail_relay_connections{relay=\"mx-a\"} 1");
    CHECK_LINE(t, "ringmail_relay_connections{" R1 "} 1");
    CHECK_LINE(t, "ringmail_relay_verified_connections{relay=\"mx-a\"} 1");
    CHECK_LINE(t, "ringmail_relay_verified_connections{" R1 "} 0");
    CHECK_LINE(t, "ringmail_relay_ktls_connections{relay=\"mx-a\"} 1");
    CHECK_LINE(t, "ringmail_relay_ktls_connections{" R1 "} 0");
    CHECK_LINE(t, "ringmail_queue_length 10");
    CHECK_LINE(t, "ringmail_queue_pending 2");
    CHECK_LINE(t, "ringmail_retry_set_size 3");
    CHECK_LINE(t, "ringmail_dead_letter_length 4");
    CHECK_LINE(t, "ringmail_redis_errors_total 1");
    CHECK_LINE(t, "ringmail_outcome_write_failures_total{kind=\"transient\"} 3");
    CHECK_LINE(t, "ringmail_outcome_write_failures_total{kind=\"permanent\"} 2");
    CHECK_LINE(t, "ringmail_outcome_stuck_jobs 5");
    CHECK_LINE(t, "ringmail_worker_restarts_total 1");
    CHECK_LINE(t, "ringmail_worker_redis_up{worker=\"1\"} 1");
    CHECK_LINE(t, "ringmail_metrics_slots_full_total 1");

    /* Live connections with TLS facts: worker 0's conn 1 and worker 1's
     * conn 3; closed ones (worker 0 conn 2, worker 1 conns 1, 2, 4) gone. */
    CHECK_LINE(t, "# TYPE ringmail_connection_info gauge");
    CHECK_LINE(t, "ringmail_connection_info{relay=\"mx-a\",worker=\"0\",conn=\"1\","
                  "tls_version=\"TLSv1.3\",cipher=\"TLS_AES_128_GCM_SHA256\",group=\"x25519\","
                  "ktls_tx=\"1\",verify=\"ok\"} 1");
    CHECK_LINE(t, "ringmail_connection_info{" R1 ",worker=\"1\",conn=\"3\",tls_version=\"TLSv1.2\","
                  "cipher=\"ECDHE-RSA-AES128-GCM-SHA256\",group=\"x25519\",ktls_tx=\"0\","
                  "verify=\"bad \\\"cert\\\\chain\\\"\"} 1");
    CHECK_LINE(t, "ringmail_connection_messages_total{relay=\"mx-a\",worker=\"0\",conn=\"1\"} 2");
    CHECK_LINE(t,
               "ringmail_connection_sent_bytes_total{relay=\"mx-a\",worker=\"0\",conn=\"1\"} 1024");
    CHECK_LINE(t, "ringmail_connection_errors_total{relay=\"mx-a\",worker=\"0\",conn=\"1\"} 1");
    CHECK_LINE(t, "ringmail_connection_handshake_seconds{relay=\"mx-a\",worker=\"0\",conn=\"1\"} "
                  "0.012345");
    CHECK_LINE(t, "ringmail_connection_session_resumed{relay=\"mx-a\",worker=\"0\",conn=\"1\"} 1");
    CHECK_LINE(t, "ringmail_connection_peer_cert_not_after_seconds{relay=\"mx-a\",worker=\"0\","
                  "conn=\"1\"} 1800000000");
    CHECK(strstr(t, "ringmail_connection_age_seconds{relay=\"mx-a\",worker=\"0\",conn=\"1\"} ") !=
          NULL);
    CHECK(!strstr(t, "worker=\"0\",conn=\"2\""));
    CHECK(!strstr(t, "worker=\"1\",conn=\"1\""));
    CHECK(!strstr(t, "worker=\"1\",conn=\"4\""));
    free(t);

    t = render(m, 0);
    CHECK(!strstr(t, "ringmail_connection_"));
    CHECK_LINE(t, "ringmail_relay_connections{relay=\"mx-a\"} 1");
    free(t);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* Runs after test_counters: one live kTLS TX connection (worker 0). */
static void test_tls_stat(struct metrics *m)
{
    char path[] = "/tmp/test_metrics_tls_stat_XXXXXX";
    int fd = mkstemp(path);
    char *t;

    CHECK(fd >= 0);
    close(fd);
    write_file(path, "TlsCurrTxSw                     \t1\n"
                     "TlsCurrRxSw                     \t0\n"
                     "TlsCurrTxDevice                 \t0\n"
                     "TlsTxSw                         \t7\n"
                     "TlsDecryptError                 \t2\n"
                     "TlsRxNoPadViolation             \t0\n"
                     "Bad-Name 3\n"
                     "garbage\n");
    CHECK_INT(metrics_set_tls_stat_path(m, path), 0);
    t = render(m, 1);
    CHECK_LINE(t, "# TYPE ringmail_kernel_tls_curr_tx_sw gauge");
    CHECK_LINE(t, "ringmail_kernel_tls_curr_tx_sw 1");
    CHECK_LINE(t, "ringmail_kernel_tls_curr_rx_sw 0");
    CHECK_LINE(t, "# TYPE ringmail_kernel_tls_tx_sw_total counter");
    CHECK_LINE(t, "ringmail_kernel_tls_tx_sw_total 7");
    CHECK_LINE(t, "ringmail_kernel_tls_decrypt_error_total 2");
    CHECK_LINE(t, "ringmail_kernel_tls_rx_no_pad_violation_total 0");
    CHECK(!strstr(t, "Bad"));
    CHECK_LINE(t, "ringmail_ktls_count_mismatch 0");
    free(t);

    /* Another program's kTLS sockets: more in the kernel is no mismatch. */
    write_file(path, "TlsCurrTxSw 5\nTlsCurrTxDevice 0\n");
    t = render(m, 1);
    CHECK_LINE(t, "ringmail_ktls_count_mismatch 0");
    free(t);

    /* The kernel holds fewer than ringmail believes: a silent fallback. */
    write_file(path, "TlsCurrTxSw 0\nTlsCurrTxDevice 0\n");
    t = render(m, 1);
    CHECK_LINE(t, "ringmail_ktls_count_mismatch 1");
    free(t);

    unlink(path);
    t = render(m, 1);
    CHECK(!strstr(t, "ringmail_kernel_tls_"));
    CHECK(!strstr(t, "ringmail_ktls_count_mismatch"));
    free(t);
    CHECK_INT(metrics_set_tls_stat_path(m, NULL), 0);
}

static void test_promtool(const struct metrics *m)
{
    char path[] = "/tmp/test_metrics_prom_XXXXXX";
    int fd, rc;
    char *t, cmd[256];

    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        /* Under CI=true (setup.sh installs promtool) the check must run. */
        if (check_skip("promtool is not installed (tests/setup.sh installs it): the exposition "
                       "was not checked by promtool") != 77)
            check_failed++;
        return;
    }
    fd = mkstemp(path);
    CHECK(fd >= 0);
    t = render(m, 1);
    CHECK(write(fd, t, strlen(t)) == (ssize_t)strlen(t));
    close(fd);
    free(t);
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
    rc = system(cmd);
    CHECK_INT(rc, 0);
    unlink(path);
}

/* Runs after test_counters: both workers Redis up; relay 0 has a verified
 * connection, relay 1 only an unverified one. */
static void test_ready(struct metrics *m)
{
    const char *why = NULL;
    char buf[256];
    struct metrics_worker *mw1 = metrics_worker(m, 1);
    struct tls_facts f = facts("TLSv1.3", "TLS_AES_256_GCM_SHA384", "disabled", 0, 0);
    int s;
    char *t;

    CHECK_INT(metrics_ready(m, &why), 0);
    CHECK_STR(why, "a relay has no live verified connection");
    CHECK_INT(metrics_ready_explain(m, buf, sizeof(buf)), 0);
    CHECK(strstr(buf, "we\"ird") != NULL);

    /* Verification off but pinned: trusted. (The parent stands in for
     * worker 1 here, which has exited.) */
    f.verify_enabled = 0;
    f.pinned = 1;
    s = metrics_conn_open(mw1, 1);
    CHECK(s >= 0);
    metrics_conn_tls(mw1, s, &f);
    CHECK_INT(metrics_ready(m, &why), 1);
    CHECK_STR(why, "ready");
    CHECK_INT(metrics_ready_explain(m, buf, sizeof(buf)), 1);
    CHECK_STR(buf, "ready");

    metrics_set_redis_up(metrics_worker(m, 0), 0);
    CHECK_INT(metrics_ready(m, &why), 0);
    CHECK_STR(why, "a worker has no Redis connection");
    metrics_set_redis_up(metrics_worker(m, 0), 1);
    CHECK_INT(metrics_ready(m, NULL), 1);

    /* A dead worker: its connections go, its counters stay. */
    metrics_worker_reset(m, 0);
    CHECK_INT(metrics_ready(m, &why), 0);
    t = render(m, 1);
    CHECK(!strstr(t, "worker=\"0\",conn="));
    CHECK_LINE(t, "ringmail_relay_connections{relay=\"mx-a\"} 0");
    CHECK_LINE(t, "ringmail_messages_total{relay=\"mx-a\",status=\"delivered\"} 5");
    CHECK_LINE(t, "ringmail_worker_redis_up{worker=\"0\"} 0");
    free(t);
    metrics_set_redis_up(metrics_worker(m, 0), 1);
    CHECK_INT(metrics_ready(m, &why), 0); /* mx-a has no connection now */
    metrics_conn_close(mw1, s);
}

/* 10,000 slots per worker: they fit, fill up, and free again. */
static void test_capacity(void)
{
    char err[METRICS_ERR_MAX];
    const char *names[1] = {"r"};
    struct metrics *m = metrics_create(8, 1, names, 10000, err, sizeof(err));
    struct metrics_worker *mw;
    int last = -1, ok = 1;

    CHECK(m != NULL);
    if (!m)
        return;
    mw = metrics_worker(m, 7);
    CHECK(metrics_worker(m, 8) == NULL);
    for (int i = 0; i < 10000; i++) {
        int s = metrics_conn_open(mw, 0);
        if (s < 0)
            ok = 0;
        last = s;
    }
    CHECK(ok);
    CHECK_INT(metrics_conn_open(mw, 0), -1);
    metrics_conn_close(mw, last);
    CHECK_INT(metrics_conn_open(mw, 0), last);
    CHECK_INT(metrics_conn_open(mw, 1), -1); /* no such relay */
    metrics_free(m);

    CHECK(metrics_create(0, 1, names, 10, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "out of range") != NULL);
}

/*
 * A writer that keeps reopening one slot with two alternating sets of
 * facts while the parent renders: every rendered info line must be one
 * set or the other, never a mix.
 */
static void test_concurrent(void)
{
    char err[METRICS_ERR_MAX];
    const char *names[1] = {"r"};
    struct metrics *m = metrics_create(1, 1, names, 2, err, sizeof(err));
    struct tls_facts a = facts("TLSv1.3", "TLS_AES_128_GCM_SHA256", "ok", 1, 1);
    struct tls_facts b = facts("TLSv1.2", "ECDHE-ECDSA-CHACHA20-POLY1305", "self-signed", 0, 0);
    int status = -1, seen = 0, mixed = 0;
    struct timespec t0, t1;
    pid_t p;

    CHECK(m != NULL);
    if (!m)
        return;
    p = fork();
    if (p == 0) {
        struct metrics_worker *mw = metrics_worker(m, 0);
        for (unsigned long i = 0;; i++) {
            int s = metrics_conn_open(mw, 0);
            metrics_conn_tls(mw, s, (i & 1) ? &a : &b);
            metrics_conn_message(mw, s, 10);
            metrics_conn_close(mw, s);
        }
    }
    CHECK(p > 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        char *t = render(m, 1);
        const char *l = strstr(t, "ringmail_connection_info{");
        if (l) {
            seen++;
            int is_a = strstr(l, "tls_version=\"TLSv1.3\",cipher=\"TLS_AES_128_GCM_SHA256\","
                                 "group=\"x25519\",ktls_tx=\"1\",verify=\"ok\"} 1\n") != NULL;
            int is_b =
                strstr(l, "tls_version=\"TLSv1.2\",cipher=\"ECDHE-ECDSA-CHACHA20-POLY1305\","
                          "group=\"x25519\",ktls_tx=\"0\",verify=\"self-signed\"} 1\n") != NULL;
            if (is_a == is_b)
                mixed++;
        }
        free(t);
        clock_gettime(CLOCK_MONOTONIC, &t1);
    } while ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 300);
    kill(p, SIGKILL);
    waitpid(p, &status, 0);
    CHECK_INT(mixed, 0);
    printf("concurrent: %d renders saw a live connection, %d mixed\n", seen, mixed);
    /* The writer was killed anywhere, perhaps mid-write: reset repairs. */
    metrics_worker_reset(m, 0);
    char *t = render(m, 1);
    CHECK(!strstr(t, "ringmail_connection_info{"));
    free(t);
    metrics_free(m);
}

/* One HTTP/1.1 request on a fresh socket; returns the raw response. */
/* One request, with the server driven from here as the master's loop
 * would drive it. */
static char *http(struct metrics_http *h, const char *method, const char *path)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)metrics_http_port(h))};
    char req[256], *resp = calloc(1, 1 << 20);
    size_t got = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0), rounds = 0;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(fd >= 0);
    CHECK_INT(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
             method, path);
    CHECK(write(fd, req, strlen(req)) == (ssize_t)strlen(req));
    while (got < (1 << 20) - 1 && rounds++ < 100000) {
        struct pollfd p[2] = {{fd, POLLIN, 0}, {metrics_http_fd(h), POLLIN, 0}};
        ssize_t n;
        poll(p, 2, 100);
        metrics_http_run(h);
        if (!(p[0].revents & (POLLIN | POLLHUP)))
            continue;
        n = read(fd, resp + got, (1 << 20) - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    return resp;
}

static int status_of(const char *resp)
{
    int code = 0;
    if (sscanf(resp, "HTTP/1.1 %d", &code) != 1)
        return -1;
    return code;
}

static const char *body_of(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");
    return b ? b + 4 : "";
}

static void test_http(struct metrics *m)
{
    char err[METRICS_ERR_MAX] = "";
    struct metrics_http *h = metrics_http_start(m, "127.0.0.1", 0, 1, err, sizeof(err));
    unsigned port;
    char *r;

    CHECK(h != NULL);
    if (!h) {
        fprintf(stderr, "metrics_http_start: %s\n", err);
        return;
    }
    port = metrics_http_port(h);
    CHECK(port > 0);

    r = http(h, "GET", "/metrics");
    CHECK_INT(status_of(r), 200);
    CHECK(strcasestr(r, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n") != NULL);
    CHECK(has_line(body_of(r), "ringmail_up 1"));
    CHECK(strstr(body_of(r), "ringmail_connection_info{") != NULL);
    free(r);

    r = http(h, "GET", "/healthz");
    CHECK_INT(status_of(r), 200);
    CHECK_STR(body_of(r), "ok\n");
    free(r);

    r = http(h, "GET", "/readyz");
    CHECK_INT(status_of(r), 503);
    CHECK(strstr(body_of(r), "no live connection with a verified certificate") != NULL);
    free(r);

    r = http(h, "GET", "/nope");
    CHECK_INT(status_of(r), 404);
    free(r);

    r = http(h, "POST", "/metrics");
    CHECK_INT(status_of(r), 405);
    CHECK(strcasestr(r, "\r\nAllow: GET, HEAD\r\n") != NULL);
    free(r);

    r = http(h, "HEAD", "/healthz");
    CHECK_INT(status_of(r), 200);
    CHECK_STR(body_of(r), "");
    free(r);
    metrics_http_stop(h);

    /* Ready once both relays have a verified connection. */
    struct tls_facts f = facts("TLSv1.3", "TLS_AES_128_GCM_SHA256", "ok", 1, 0);
    int s0 = metrics_conn_open(metrics_worker(m, 0), 0);
    int s1 = metrics_conn_open(metrics_worker(m, 1), 1);
    metrics_conn_tls(metrics_worker(m, 0), s0, &f);
    metrics_conn_tls(metrics_worker(m, 1), s1, &f);
    h = metrics_http_start(m, "::1", 0, 0, err, sizeof(err));
    if (h) { /* IPv6 loopback may be off in a container */
        metrics_http_stop(h);
    }
    h = metrics_http_start(m, "127.0.0.1", 0, 0, err, sizeof(err));
    CHECK(h != NULL);
    if (h) {
        r = http(h, "GET", "/readyz");
        CHECK_INT(status_of(r), 200);
        CHECK_STR(body_of(r), "ready\n");
        free(r);
        r = http(h, "GET", "/metrics");
        CHECK(!strstr(body_of(r), "ringmail_connection_"));
        free(r);
        metrics_http_stop(h);
    }

    err[0] = '\0';
    CHECK(metrics_http_start(m, "not-an-address", 0, 1, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "not-an-address") != NULL);
    metrics_http_stop(NULL);
}

int main(void)
{
    char err[METRICS_ERR_MAX];
    struct metrics *m = metrics_create(2, 2, relay_names, 4, err, sizeof(err));

    signal(SIGPIPE, SIG_IGN);
    CHECK(m != NULL);
    if (!m) {
        fprintf(stderr, "metrics_create: %s\n", err);
        return check_done();
    }
    CHECK_STR(metrics_status_name(METRICS_BOUNCED), "bounced");
    CHECK_STR(metrics_status_name((enum metrics_status)42), "unknown");
    test_counters(m);
    test_tls_stat(m);
    test_promtool(m);
    test_ready(m);
    test_http(m);
    metrics_free(m);
    test_capacity();
    test_concurrent();
    return check_done();
}
