/*
 * sink_store: what ringmail-sink keeps of the mail it accepts. Counters
 * always (messages, recipients, bytes, connections, TLS facts, duplicate
 * Message-IDs); with --store the message and its envelope as files; with
 * --ids one Message-ID per line. The hot path (no --store) touches no file
 * and allocates nothing per message: the Message-ID set is an open-address
 * table of 64-bit hashes that grows by doubling.
 */
#ifndef RINGMAIL_SINK_STORE_H
#define RINGMAIL_SINK_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "sink_smtp.h"

struct sink_stats {
    uint64_t messages;
    uint64_t recipients;
    uint64_t bytes;
    uint64_t connections;
    uint64_t tls_handshakes;
    uint64_t tls_handshake_failures;
    uint64_t ktls_tx_connections;
    uint64_t ktls_rx_connections;
    uint64_t duplicates_by_message_id;
    uint64_t messages_without_message_id;
    uint64_t auth_successes;
    uint64_t key_updates;
    uint64_t key_updates_skipped_ktls; /* OpenSSL 3.0 cannot rekey a kTLS socket */
    uint64_t fault_disconnects;
    uint64_t quits; /* sessions the client ended with QUIT */
    uint64_t stalls;
    uint64_t delays;
    uint64_t store_errors;
    uint64_t first_ms, last_ms; /* first connection, last message (monotonic) */
};

/* How the connection that carried a message was protected. */
struct sink_store_tls {
    const char *version; /* "TLSv1.3"; NULL: plaintext */
    const char *cipher;
    bool ktls_tx, ktls_rx;
};

struct sink_store;

/* dir, ids_path may be NULL. Returns 0, or -1 with a reason in err. */
int sink_store_open(struct sink_store **out, const char *dir, const char *ids_path, char *err,
                    size_t errlen);
/* Flushes the --ids file and frees everything. NULL is a no-op. */
void sink_store_close(struct sink_store *st);

struct sink_stats *sink_store_stats(struct sink_store *st);

/* Counts an accepted message and, as configured, writes its files and its
 * Message-ID line. now_ms: the loop's clock. */
void sink_store_message(struct sink_store *st, const struct sink_smtp_message *m,
                        const struct sink_store_tls *tls, const char *auth_user, uint64_t now_ms);

/* The statistics as one JSON object and a newline. */
void sink_store_write_json(struct sink_store *st, FILE *f);

#endif
