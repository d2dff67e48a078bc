/*
 * sink_store: counters, the Message-ID set, --store files and the --ids
 * list of ringmail-sink (sink_store.h).
 */
#include "sink_store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define IDS_BUF (1 << 20)

struct sink_store {
    struct sink_stats stats;
    char *dir;
    FILE *ids;
    char *ids_buf;
    uint64_t *set; /* hashes of Message-IDs seen; 0 marks an empty cell */
    size_t set_cap, set_used;
};

/* FNV-1a, then a splitmix64 finaliser so nearby IDs spread over the table.
 * 64 bits keep accidental collisions below 1e-7 for a million IDs. */
static uint64_t id_hash(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h ? h : 1;
}

static void set_put(uint64_t *set, size_t cap, uint64_t h)
{
    size_t i = (size_t)h & (cap - 1);

    while (set[i])
        i = (i + 1) & (cap - 1);
    set[i] = h;
}

/* Returns 1 when h was already there, 0 when added, -1 without memory. */
static int set_add(struct sink_store *st, uint64_t h)
{
    size_t i;

    if ((st->set_used + 1) * 4 > st->set_cap * 3) {
        size_t cap = st->set_cap ? st->set_cap * 2 : 1 << 16;
        uint64_t *n = calloc(cap, sizeof(*n));
        if (!n)
            return -1;
        for (size_t k = 0; k < st->set_cap; k++)
            if (st->set[k])
                set_put(n, cap, st->set[k]);
        free(st->set);
        st->set = n;
        st->set_cap = cap;
    }
    for (i = (size_t)h & (st->set_cap - 1); st->set[i]; i = (i + 1) & (st->set_cap - 1))
        if (st->set[i] == h)
            return 1;
    st->set[i] = h;
    st->set_used++;
    return 0;
}

int sink_store_open(struct sink_store **out, const char *dir, const char *ids_path, char *err,
                    size_t errlen)
{
    struct sink_store *st = calloc(1, sizeof(*st));
    struct stat sb;

    *out = NULL;
    if (!st)
        goto nomem;
    if (dir) {
        if (stat(dir, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
            snprintf(err, errlen, "--store %s: not a directory", dir);
            goto fail;
        }
        if (!(st->dir = strdup(dir)))
            goto nomem;
    }
    if (ids_path) {
        st->ids = fopen(ids_path, "ae");
        if (!st->ids) {
            snprintf(err, errlen, "--ids %s: %s", ids_path, strerror(errno));
            goto fail;
        }
        /* A big buffer: one write per many messages, flushed at exit. */
        st->ids_buf = malloc(IDS_BUF);
        if (st->ids_buf)
            setvbuf(st->ids, st->ids_buf, _IOFBF, IDS_BUF);
    }
    *out = st;
    return 0;
nomem:
    snprintf(err, errlen, "out of memory");
fail:
    sink_store_close(st);
    return -1;
}

void sink_store_close(struct sink_store *st)
{
    if (!st)
        return;
    if (st->ids)
        fclose(st->ids);
    free(st->ids_buf);
    free(st->dir);
    free(st->set);
    free(st);
}

struct sink_stats *sink_store_stats(struct sink_store *st)
{
    return &st->stats;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* NNNNNNNN.eml, then NNNNNNNN.env: a reader that sees the .env knows the
 * .eml is complete. */
static int store_files(struct sink_store *st, const struct sink_smtp_message *m,
                       const struct sink_store_tls *tls, const char *auth_user)
{
    char path[4096];
    const char *r = m->rcpts;
    FILE *f;
    int fd, rc;

    snprintf(path, sizeof(path), "%s/%08llu.eml", st->dir, m->queue_id);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    rc = write_all(fd, m->body, m->body_len);
    if (close(fd) < 0 || rc < 0)
        return -1;

    snprintf(path, sizeof(path), "%s/%08llu.env", st->dir, m->queue_id);
    f = fopen(path, "we");
    if (!f)
        return -1;
    fprintf(f, "from %s\n", m->from);
    for (size_t i = 0; i < m->nrcpt; i++) {
        fprintf(f, "rcpt %s\n", r);
        r += strlen(r) + 1;
    }
    if (tls && tls->version)
        fprintf(f, "tls %s %s\n", tls->version, tls->cipher ? tls->cipher : "-");
    else
        fprintf(f, "tls none\n");
    fprintf(f, "ktls_tx %d\nktls_rx %d\n", tls && tls->ktls_tx, tls && tls->ktls_rx);
    fprintf(f, "auth %s\n", auth_user ? auth_user : "-");
    fprintf(f, "body %s\n", m->eightbitmime ? "8bitmime" : "7bit");
    fprintf(f, "smtputf8 %d\nbdat %d\nsize %llu\n", m->smtputf8, m->bdat,
            (unsigned long long)m->size);
    fprintf(f, "message_id %.*s\n", m->message_id ? (int)m->message_id_len : 1,
            m->message_id ? m->message_id : "-");
    return fclose(f) == 0 ? 0 : -1;
}

void sink_store_message(struct sink_store *st, const struct sink_smtp_message *m,
                        const struct sink_store_tls *tls, const char *auth_user, uint64_t now_ms)
{
    struct sink_stats *s = &st->stats;

    s->messages++;
    s->recipients += m->nrcpt;
    s->bytes += m->size;
    s->last_ms = now_ms;
    if (m->message_id && m->message_id_len) {
        int dup = set_add(st, id_hash(m->message_id, m->message_id_len));
        if (dup > 0)
            s->duplicates_by_message_id++;
        else if (dup < 0)
            s->store_errors++;
    } else {
        s->messages_without_message_id++;
    }
    if (st->ids)
        fprintf(st->ids, "%.*s\n", m->message_id ? (int)m->message_id_len : 1,
                m->message_id ? m->message_id : "-");
    if (st->dir && store_files(st, m, tls, auth_user) < 0)
        s->store_errors++;
}

void sink_store_write_json(struct sink_store *st, FILE *f)
{
    const struct sink_stats *s = &st->stats;
    double secs = s->last_ms > s->first_ms ? (double)(s->last_ms - s->first_ms) / 1000.0 : 0.0;

    if (st->ids)
        fflush(st->ids);
    fprintf(f,
            "{\"messages\":%llu,\"recipients\":%llu,\"bytes\":%llu,\"connections\":%llu,"
            "\"tls_handshakes\":%llu,\"tls_handshake_failures\":%llu,"
            "\"ktls_tx_connections\":%llu,\"ktls_rx_connections\":%llu,"
            "\"duplicates_by_message_id\":%llu,\"messages_without_message_id\":%llu,"
            "\"auth_successes\":%llu,\"key_updates\":%llu,\"key_updates_skipped_ktls\":%llu,"
            "\"fault_disconnects\":%llu,\"quits\":%llu,\"stalls\":%llu,\"delays\":%llu,\"store_"
            "errors\":%llu,"
            "\"seconds\":%.3f,\"messages_per_second\":%.1f}\n",
            (unsigned long long)s->messages, (unsigned long long)s->recipients,
            (unsigned long long)s->bytes, (unsigned long long)s->connections,
            (unsigned long long)s->tls_handshakes, (unsigned long long)s->tls_handshake_failures,
            (unsigned long long)s->ktls_tx_connections, (unsigned long long)s->ktls_rx_connections,
            (unsigned long long)s->duplicates_by_message_id,
            (unsigned long long)s->messages_without_message_id,
            (unsigned long long)s->auth_successes, (unsigned long long)s->key_updates,
            (unsigned long long)s->key_updates_skipped_ktls,
            (unsigned long long)s->fault_disconnects, (unsigned long long)s->quits,
            (unsigned long long)s->stalls, (unsigned long long)s->delays,
            (unsigned long long)s->store_errors, secs, secs > 0 ? (double)s->messages / secs : 0.0);
}
