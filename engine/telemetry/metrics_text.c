/*
 * metrics_text: the Prometheus text exposition (format 0.0.4) of the
 * shared counters, and the kernel's TLS statistics.
 *
 * Counters are summed over the workers at render time; histograms are
 * stored per bucket and made cumulative here, with +Inf and _count taken
 * from the same sum so that they always agree. Live connections are first
 * copied out of their slots (one consistent snapshot per slot, see the
 * sequence lock in metrics.c), because every family's lines must be
 * written together and a connection must not appear in one family and not
 * in the next.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics.h"
#include "metrics_internal.h"
#include "version.h"

struct live {
    unsigned worker;
    struct metrics_slot s;
};

struct snapshot {
    struct live *v;
    size_t n, cap;
};

static void family(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value, escaped as the format requires (\\, \", \n). */
static void label_value(FILE *out, const char *v)
{
    for (; *v; v++) {
        switch (*v) {
        case '\\':
            fputs("\\\\", out);
            break;
        case '"':
            fputs("\\\"", out);
            break;
        case '\n':
            fputs("\\n", out);
            break;
        default:
            fputc(*v, out);
        }
    }
}

static void relay_label(FILE *out, const struct metrics *m, unsigned r)
{
    fputs("relay=\"", out);
    label_value(out, metrics_relay_name(m, r));
    fputc('"', out);
}

/* Seconds from microseconds, exactly (no floating point on the way). */
static void seconds_us(FILE *out, uint64_t us)
{
    fprintf(out, "%" PRIu64 ".%06" PRIu64, us / 1000000, us % 1000000);
}

static void sum_hist(struct metrics_hist *dst, const struct metrics_hist *src)
{
    for (unsigned b = 0; b <= METRICS_NBUCKETS; b++)
        dst->counts[b] += metrics_load(&src->counts[b]);
    dst->sum_us += metrics_load(&src->sum_us);
}

static void sum_relay(struct metrics_relay_counters *dst, const struct metrics_relay_counters *src)
{
    for (unsigned k = 0; k < METRICS_STATUS_COUNT; k++)
        dst->messages[k] += metrics_load(&src->messages[k]);
    for (unsigned k = 0; k < SMTP_CLIENT_R_COUNT; k++)
        dst->handshakes[k] += metrics_load(&src->handshakes[k]);
    for (unsigned k = 0; k < SMTP_CLIENT_R_COUNT; k++)
        dst->failures[k] += metrics_load(&src->failures[k]);
    sum_hist(&dst->latency, &src->latency);
    sum_hist(&dst->txn, &src->txn);
}

static void histogram(FILE *out, const struct metrics *m, const char *name, const char *help,
                      const struct metrics_relay_counters *agg, int latency)
{
    family(out, name, "histogram", help);
    for (unsigned r = 0; r < m->hdr->nrelays; r++) {
        const struct metrics_hist *h = latency ? &agg[r].latency : &agg[r].txn;
        uint64_t cum = 0;
        for (unsigned b = 0; b < METRICS_NBUCKETS; b++) {
            cum += h->counts[b];
            fprintf(out, "%s_bucket{", name);
            relay_label(out, m, r);
            fprintf(out, ",le=\"%s\"} %" PRIu64 "\n", metrics_bucket_le_text[b], cum);
        }
        cum += h->counts[METRICS_NBUCKETS];
        fprintf(out, "%s_bucket{", name);
        relay_label(out, m, r);
        fprintf(out, ",le=\"+Inf\"} %" PRIu64 "\n%s_sum{", cum, name);
        relay_label(out, m, r);
        fputs("} ", out);
        seconds_us(out, h->sum_us);
        fprintf(out, "\n%s_count{", name);
        relay_label(out, m, r);
        fprintf(out, "} %" PRIu64 "\n", cum);
    }
}

static int take_snapshot(const struct metrics *m, struct snapshot *snap)
{
    for (unsigned i = 0; i < m->hdr->nworkers; i++) {
        const struct metrics_worker *mw = metrics_block(m, i);
        const struct metrics_slot *slots = metrics_block_slots(mw);
        uint32_t hw = metrics_slots_hw(mw);
        for (uint32_t k = 0; k < hw; k++) {
            if (snap->n == snap->cap) {
                size_t cap = snap->cap ? snap->cap * 2 : 64;
                struct live *v = realloc(snap->v, cap * sizeof(*v));
                if (!v)
                    return -1;
                snap->v = v;
                snap->cap = cap;
            }
            struct live *l = &snap->v[snap->n];
            if (metrics_slot_read(&slots[k], &l->s) == 0 && l->s.relay < m->hdr->nrelays) {
                l->worker = i;
                snap->n++;
            }
        }
    }
    return 0;
}

/* The labels every per-connection series starts with. */
static void conn_labels(FILE *out, const struct metrics *m, const struct live *l)
{
    relay_label(out, m, l->s.relay);
    fprintf(out, ",worker=\"%u\",conn=\"%" PRIu64 "\"", l->worker, l->s.conn_id);
}

enum conn_series {
    CS_MESSAGES = 0,
    CS_BYTES = 1,
    CS_ERRORS = 2,
    CS_HANDSHAKE = 3,
    CS_RESUMED = 4,
    CS_NOT_AFTER = 5,
    CS_AGE = 6,
};

static void conn_family(FILE *out, const struct metrics *m, const struct snapshot *snap,
                        enum conn_series which, const char *name, const char *type,
                        const char *help, int64_t now_ns)
{
    family(out, name, type, help);
    for (size_t i = 0; i < snap->n; i++) {
        const struct live *l = &snap->v[i];
        if (l->s.state != METRICS_SLOT_TLS)
            continue;
        if (which == CS_NOT_AFTER && l->s.not_after == 0)
            continue;
        fprintf(out, "%s{", name);
        conn_labels(out, m, l);
        fputs("} ", out);
        switch (which) {
        case CS_MESSAGES:
            fprintf(out, "%" PRIu64, l->s.messages);
            break;
        case CS_BYTES:
            fprintf(out, "%" PRIu64, l->s.bytes);
            break;
        case CS_ERRORS:
            fprintf(out, "%" PRIu64, l->s.errors);
            break;
        case CS_HANDSHAKE:
            seconds_us(out, l->s.handshake_us > 0 ? (uint64_t)l->s.handshake_us : 0);
            break;
        case CS_RESUMED:
            fprintf(out, "%u", (unsigned)l->s.resumed);
            break;
        case CS_NOT_AFTER:
            fprintf(out, "%" PRId64, l->s.not_after);
            break;
        case CS_AGE: {
            int64_t age = now_ns - l->s.opened_ns;
            seconds_us(out, age > 0 ? (uint64_t)age / 1000 : 0);
            break;
        }
        }
        fputc('\n', out);
    }
}

static void per_connection(FILE *out, const struct metrics *m, const struct snapshot *snap)
{
    struct timespec ts;
    int64_t now_ns;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    now_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    family(out, "ringmail_connection_info", "gauge",
           "A live relay connection and its TLS parameters (value 1).");
    for (size_t i = 0; i < snap->n; i++) {
        const struct live *l = &snap->v[i];
        if (l->s.state != METRICS_SLOT_TLS)
            continue;
        fputs("ringmail_connection_info{", out);
        conn_labels(out, m, l);
        fputs(",tls_version=\"", out);
        label_value(out, l->s.protocol);
        fputs("\",cipher=\"", out);
        label_value(out, l->s.cipher);
        fputs("\",group=\"", out);
        label_value(out, l->s.group);
        fprintf(out, "\",ktls_tx=\"%u\",verify=\"", (unsigned)l->s.ktls_tx);
        label_value(out, l->s.verify);
        fputs("\"} 1\n", out);
    }
    conn_family(out, m, snap, CS_MESSAGES, "ringmail_connection_messages_total", "counter",
                "Messages sent on this connection.", now_ns);
    conn_family(out, m, snap, CS_BYTES, "ringmail_connection_sent_bytes_total", "counter",
                "Message bytes sent on this connection.", now_ns);
    conn_family(out, m, snap, CS_ERRORS, "ringmail_connection_errors_total", "counter",
                "Failed transactions or commands on this connection.", now_ns);
    conn_family(out, m, snap, CS_HANDSHAKE, "ringmail_connection_handshake_seconds", "gauge",
                "Duration of this connection's TLS handshake.", now_ns);
    conn_family(out, m, snap, CS_RESUMED, "ringmail_connection_session_resumed", "gauge",
                "1 when this connection resumed a TLS session.", now_ns);
    conn_family(out, m, snap, CS_NOT_AFTER, "ringmail_connection_peer_cert_not_after_seconds",
                "gauge", "Expiry of the peer certificate, Unix time.", now_ns);
    conn_family(out, m, snap, CS_AGE, "ringmail_connection_age_seconds", "gauge",
                "Time since this connection was opened.", now_ns);
}

/* ---- /proc/net/tls_stat ---- */

int metrics_tls_stat_read(const char *path, metrics_tls_stat_fn *fn, void *user)
{
    char line[256];
    FILE *f = fopen(path, "re");

    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        char name[64];
        uint64_t v;
        size_t k;
        /* "TlsCurrTxSw                     	0": a name and a decimal. */
        if (sscanf(line, "%63s %" SCNu64, name, &v) != 2)
            continue;
        for (k = 0; name[k]; k++)
            if (!((name[k] >= 'a' && name[k] <= 'z') || (name[k] >= 'A' && name[k] <= 'Z') ||
                  (name[k] >= '0' && name[k] <= '9')))
                break;
        if (name[k] || k == 0)
            continue;
        fn(name, v, user);
    }
    fclose(f);
    return 0;
}

struct kstat {
    FILE *out;
    int have_tx_sw;
    uint64_t tx_sw, tx_device;
};

/* "TlsCurrTxSw" -> "curr_tx_sw"; 0, or -1 when the result would not fit. */
static int snake(const char *camel, char *out, size_t cap)
{
    size_t o = 0;
    if (strncmp(camel, "Tls", 3) == 0 && camel[3])
        camel += 3;
    for (size_t i = 0; camel[i]; i++) {
        char c = camel[i];
        int upper = c >= 'A' && c <= 'Z';
        if (upper && i > 0 && o + 1 < cap && out[o - 1] != '_')
            out[o++] = '_';
        if (o + 1 >= cap)
            return -1;
        out[o++] = upper ? (char)(c - 'A' + 'a') : c;
    }
    out[o] = '\0';
    return 0;
}

static void kstat_line(const char *name, uint64_t value, void *user)
{
    struct kstat *k = user;
    char metric[128], suffix[80], help[160];
    int gauge = strncmp(name, "TlsCurr", 7) == 0;

    if (strcmp(name, "TlsCurrTxSw") == 0) {
        k->have_tx_sw = 1;
        k->tx_sw = value;
    } else if (strcmp(name, "TlsCurrTxDevice") == 0) {
        k->tx_device = value;
    }
    if (snake(name, suffix, sizeof(suffix)) < 0)
        return;
    snprintf(metric, sizeof(metric), "ringmail_kernel_tls_%s%s", suffix, gauge ? "" : "_total");
    snprintf(help, sizeof(help),
             "The kernel's %s from /proc/net/tls_stat (whole network namespace).", name);
    family(k->out, metric, gauge ? "gauge" : "counter", help);
    fprintf(k->out, "%s %" PRIu64 "\n", metric, value);
}

int metrics_render(const struct metrics *m, int per_conn, FILE *out)
{
    const struct metrics_header *h = m->hdr;
    unsigned nr = h->nrelays;
    struct metrics_relay_counters *agg = calloc(nr, sizeof(*agg));
    uint64_t *conns = calloc(nr * 3u, sizeof(uint64_t)); /* live, verified, ktls per relay */
    struct snapshot snap = {0};
    uint64_t redis_errors = 0, slots_full = 0, ktls_live = 0;
    uint64_t outcome_failures[2] = {0, 0}, outcome_stuck = 0;
    int rc = -1;

    if (!agg || !conns || take_snapshot(m, &snap) < 0)
        goto done;
    for (unsigned i = 0; i < h->nworkers; i++) {
        const struct metrics_worker *mw = metrics_block(m, i);
        const struct metrics_relay_counters *rcs = metrics_block_relays(mw);
        for (unsigned r = 0; r < nr; r++)
            sum_relay(&agg[r], &rcs[r]);
        redis_errors += metrics_load(&mw->redis_errors);
        slots_full += metrics_load(&mw->slots_full);
        outcome_failures[0] += metrics_load(&mw->outcome_failures[0]);
        outcome_failures[1] += metrics_load(&mw->outcome_failures[1]);
        outcome_stuck += metrics_load(&mw->outcome_stuck);
    }
    for (size_t i = 0; i < snap.n; i++) {
        const struct metrics_slot *s = &snap.v[i].s;
        conns[s->relay * 3]++;
        if (s->state == METRICS_SLOT_TLS && s->verified)
            conns[s->relay * 3 + 1]++;
        if (s->state == METRICS_SLOT_TLS && s->ktls_tx) {
            conns[s->relay * 3 + 2]++;
            ktls_live++;
        }
    }

    family(out, "ringmail_build_info", "gauge", "The running ringmail version (value 1).");
    fputs("ringmail_build_info{version=\"", out);
    label_value(out, RINGMAIL_VERSION);
    fputs("\"} 1\n", out);
    family(out, "ringmail_up", "gauge", "1 while the master serves metrics.");
    fputs("ringmail_up 1\n", out);

    family(out, "ringmail_messages_total", "counter", "Recipients by final status.");
    for (unsigned r = 0; r < nr; r++)
        for (unsigned s = 0; s < METRICS_STATUS_COUNT; s++) {
            fputs("ringmail_messages_total{", out);
            relay_label(out, m, r);
            fprintf(out, ",status=\"%s\"} %" PRIu64 "\n",
                    metrics_status_name((enum metrics_status)s), agg[r].messages[s]);
        }
    /* Counted once per connection at the end of its handshake; result ok
     * has reason "none", failed ones the reason class that ended them (a
     * bounded set: smtp_client_reason_name()). */
    family(out, "ringmail_tls_handshakes_total", "counter",
           "TLS handshakes toward relays by result and reason class.");
    for (unsigned r = 0; r < nr; r++)
        for (unsigned k = 0; k < SMTP_CLIENT_R_COUNT; k++) {
            fputs("ringmail_tls_handshakes_total{", out);
            relay_label(out, m, r);
            fprintf(out, ",result=\"%s\",reason=\"%s\"} %" PRIu64 "\n",
                    k == SMTP_CLIENT_R_NONE ? "ok" : "failed",
                    smtp_client_reason_name((enum smtp_client_reason)k), agg[r].handshakes[k]);
        }
    family(out, "ringmail_tls_failures_total", "counter",
           "Failed relay connections by reason class.");
    for (unsigned r = 0; r < nr; r++)
        for (unsigned k = 0; k < SMTP_CLIENT_R_COUNT; k++) {
            /* "none" is not a failure: shown only if a caller counted it. */
            if (k == SMTP_CLIENT_R_NONE && agg[r].failures[k] == 0)
                continue;
            fputs("ringmail_tls_failures_total{", out);
            relay_label(out, m, r);
            fprintf(out, ",reason=\"%s\"} %" PRIu64 "\n",
                    smtp_client_reason_name((enum smtp_client_reason)k), agg[r].failures[k]);
        }
    histogram(out, m, "ringmail_delivery_latency_seconds",
              "Enqueue-to-outcome latency of messages.", agg, 1);
    histogram(out, m, "ringmail_smtp_transaction_duration_seconds",
              "Duration of SMTP transactions (MAIL to the final reply).", agg, 0);

    static const char *const relay_gauges[3][2] = {
        {"ringmail_relay_connections", "Live connections to the relay."},
        {"ringmail_relay_verified_connections",
         "Live connections whose peer certificate was verified or pinned."},
        {"ringmail_relay_ktls_connections", "Live connections on which the kernel encrypts."},
    };
    for (unsigned g = 0; g < 3; g++) {
        family(out, relay_gauges[g][0], "gauge", relay_gauges[g][1]);
        for (unsigned r = 0; r < nr; r++) {
            fprintf(out, "%s{", relay_gauges[g][0]);
            relay_label(out, m, r);
            fprintf(out, "} %" PRIu64 "\n", conns[r * 3 + g]);
        }
    }

    if (__atomic_load_n(&h->queue_set, __ATOMIC_ACQUIRE)) {
        static const char *const q[4][2] = {
            {"ringmail_queue_length", "Entries in the job stream."},
            {"ringmail_queue_pending", "Entries delivered to the group and not yet acknowledged."},
            {"ringmail_retry_set_size", "Jobs waiting in the delayed-retry set."},
            {"ringmail_dead_letter_length", "Entries in the dead-letter stream."},
        };
        const uint64_t *qv[4] = {&h->queue_stream, &h->queue_pending, &h->queue_retry,
                                 &h->queue_dead};
        for (unsigned k = 0; k < 4; k++) {
            family(out, q[k][0], "gauge", q[k][1]);
            fprintf(out, "%s %" PRIu64 "\n", q[k][0], metrics_load(qv[k]));
        }
    }
    family(out, "ringmail_redis_errors_total", "counter", "Failed Redis commands.");
    fprintf(out, "ringmail_redis_errors_total %" PRIu64 "\n", redis_errors);
    family(out, "ringmail_outcome_write_failures_total", "counter",
           "Outcome writes that failed: transient (re-sent after a reconnect), permanent "
           "(refused by Redis; the job is dead-lettered instead).");
    fprintf(out, "ringmail_outcome_write_failures_total{kind=\"transient\"} %" PRIu64 "\n",
            outcome_failures[0]);
    fprintf(out, "ringmail_outcome_write_failures_total{kind=\"permanent\"} %" PRIu64 "\n",
            outcome_failures[1]);
    family(out, "ringmail_outcome_stuck_jobs", "gauge",
           "Jobs held in hand because Redis refused their outcome and their dead letter.");
    fprintf(out, "ringmail_outcome_stuck_jobs %" PRIu64 "\n", outcome_stuck);
    family(out, "ringmail_worker_restarts_total", "counter", "Worker processes restarted.");
    fprintf(out, "ringmail_worker_restarts_total %" PRIu64 "\n", metrics_load(&h->restarts));
    family(out, "ringmail_worker_redis_up", "gauge", "1 while the worker's Redis link is up.");
    for (unsigned i = 0; i < h->nworkers; i++)
        fprintf(out, "ringmail_worker_redis_up{worker=\"%u\"} %u\n", i,
                __atomic_load_n(&metrics_block(m, i)->redis_up, __ATOMIC_RELAXED));
    family(out, "ringmail_metrics_slots_full_total", "counter",
           "Connections left out of per-connection metrics: every slot was busy.");
    fprintf(out, "ringmail_metrics_slots_full_total %" PRIu64 "\n", slots_full);

    if (m->tls_stat_path[0]) {
        struct kstat k = {.out = out};
        int have = metrics_tls_stat_read(m->tls_stat_path, kstat_line, &k) == 0;
        /* kTLS is expected wherever the kernel's tls module is loaded (the
         * file exists): an operator loads it for the offload. Alerts compare
         * this with ringmail_relay_ktls_connections. */
        family(out, "ringmail_relay_ktls_expected", "gauge",
               "1 when kernel TLS is available to this relay's connections (the tls module is "
               "loaded).");
        for (unsigned r = 0; r < nr; r++) {
            fputs("ringmail_relay_ktls_expected{", out);
            relay_label(out, m, r);
            fprintf(out, "} %d\n", have ? 1 : 0);
        }
        if (have && k.have_tx_sw) {
            /* The kernel counts every kTLS socket of the network namespace,
             * other programs' too, so only a deficit is certain: the kernel
             * holds fewer TX sockets than ringmail believes it has. */
            family(out, "ringmail_ktls_count_mismatch", "gauge",
                   "1 when the kernel reports fewer kTLS TX sockets than ringmail's live kTLS "
                   "connections.");
            fprintf(out, "ringmail_ktls_count_mismatch %d\n",
                    k.tx_sw + k.tx_device < ktls_live ? 1 : 0);
        }
    }

    if (per_conn)
        per_connection(out, m, &snap);
    rc = 0;
done:
    free(snap.v);
    free(conns);
    free(agg);
    if (fflush(out) != 0 || ferror(out))
        rc = -1;
    return rc;
}
