/*
 * metrics_exposition: prints the /metrics exposition the engine's own
 * renderer (metrics_render) writes, with every conditional family present,
 * so tests/deploy/test_dashboard.py can check the dashboard's and the alert
 * rules' metric names against what the code serves, not a hand-kept list.
 *
 * The families that appear only sometimes are made to appear: the queue
 * gauges (set once), a live TLS connection with kTLS on, and the kernel's
 * kTLS counters. Those come from /proc/net/tls_stat where the tls module is
 * loaded; elsewhere from a stand-in file with the counter names that
 * Linux's net/tls/tls_proc.c prints (the kernel's names, not ours: ours are
 * derived from them by the renderer).
 *   metrics_exposition > exposition.txt
 * Exit 0, or 70 (EX_SOFTWARE) when the renderer fails.
 */
#include "metrics.h"
#include "tls_facts.h"

#include <stdio.h>
#include <stdlib.h>
#include <sysexits.h>
#include <unistd.h>

static const char kernel_counters[] =
    "TlsCurrTxSw 1\nTlsCurrRxSw 1\nTlsCurrTxDevice 0\nTlsCurrRxDevice 0\nTlsTxSw 1\n"
    "TlsRxSw 1\nTlsTxDevice 0\nTlsRxDevice 0\nTlsDecryptError 0\nTlsRxDeviceResync 0\n"
    "TlsDecryptRetry 0\nTlsRxNoPadViolation 0\n";

int main(void)
{
    static const char *const relays[] = {"default"};
    char err[METRICS_ERR_MAX], path[] = "/tmp/metrics_exposition_XXXXXX";
    struct metrics *m = metrics_create(1, 1, relays, 4, err, sizeof(err));
    struct metrics_worker *mw;
    struct tls_facts f = {0};
    int fd = -1, slot, rc;

    if (!m) {
        fprintf(stderr, "metrics_exposition: metrics_create: %s\n", err);
        return EX_SOFTWARE;
    }
    if (access("/proc/net/tls_stat", R_OK) != 0) {
        fd = mkstemp(path);
        if (fd < 0 || write(fd, kernel_counters, sizeof(kernel_counters) - 1) !=
                          (ssize_t)(sizeof(kernel_counters) - 1)) {
            perror("metrics_exposition: the stand-in tls_stat file");
            return EX_SOFTWARE;
        }
        close(fd);
        metrics_set_tls_stat_path(m, path);
    }
    mw = metrics_worker(m, 0);
    metrics_set_queue(m, 1, 0, 0, 0);
    metrics_set_redis_up(mw, 1);
    metrics_message(mw, 0, METRICS_DELIVERED);
    metrics_handshake(mw, 0, SMTP_CLIENT_R_NONE);
    metrics_latency(mw, 0, 0.01);
    metrics_txn_duration(mw, 0, 0.01);
    slot = metrics_conn_open(mw, 0);
    snprintf(f.protocol, sizeof(f.protocol), "TLSv1.3");
    snprintf(f.cipher, sizeof(f.cipher), "TLS_AES_128_GCM_SHA256");
    snprintf(f.group, sizeof(f.group), "x25519");
    snprintf(f.verify, sizeof(f.verify), "ok");
    f.verify_enabled = 1;
    f.not_after = 4102444800; /* 2100-01-01 */
    f.ktls_tx = 1;
    if (slot >= 0) {
        metrics_conn_tls(mw, slot, &f);
        metrics_conn_message(mw, slot, 1000);
    }
    rc = metrics_render(m, 1, stdout);
    if (fd >= 0)
        unlink(path);
    metrics_free(m);
    if (rc != 0) {
        fprintf(stderr, "metrics_exposition: metrics_render failed\n");
        return EX_SOFTWARE;
    }
    return 0;
}
