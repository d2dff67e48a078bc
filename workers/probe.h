/*
 * probe: `ringmail probe`, a diagnostic that grades an SMTP server's TLS.
 *
 * It is a CLI, not the engine's data path: plain blocking sockets with
 * timeouts are enough, and every enumeration step uses its own throwaway
 * connection and SSL context so that no policy of the engine is weakened.
 */
#ifndef RINGMAIL_PROBE_H
#define RINGMAIL_PROBE_H

#include <stddef.h>
#include <stdio.h>

#include <openssl/ssl.h>

#include "smtp_reply.h"

#define PROBE_TEXT        256
#define PROBE_CHAIN_MAX   8
#define PROBE_REASONS_MAX 24

struct probe_opts {
    char host[256];
    unsigned port;
    const char *ca, *servername;
    int implicit, json;
    char min_grade;
    unsigned timeout_ms;
};

/* One connection: the socket, the TLS session once there is one, and the
 * reply parser with the bytes it has not consumed yet. */
struct probe_conn {
    int fd;
    SSL *ssl;
    struct smtp_reply_parser *parser;
    char in[4096];
    size_t in_len;
    unsigned timeout_ms;
};

/* Whether the server accepted a protocol version or cipher class. */
enum probe_acc {
    PROBE_NOT_TESTED = 0,
    PROBE_REFUSED,
    PROBE_ACCEPTED,
    PROBE_UNAVAILABLE, /* this OpenSSL cannot offer it, so the server was not asked */
};

enum probe_variant {
    PV_TLS10,
    PV_TLS11,
    PV_TLS12,
    PV_TLS13,
    PV_CBC,
    PV_NONFS,
    PV_3DES,
    PV_RC4,
    PV_NULL_ANON,
    PV_EXPORT,
    PV_COUNT
};

struct probe_variant_result {
    enum probe_acc acc;
    char cipher[64];
    char detail[128];
};

struct probe_tls_facts {
    int done; /* the verifying handshake completed */
    char error[PROBE_TEXT];
    char protocol[32], cipher[64], group[64], sigalg[64];
    int aead, forward_secret;
    size_t nchain;
    char subject[PROBE_CHAIN_MAX][PROBE_TEXT], issuer[PROBE_CHAIN_MAX][PROBE_TEXT];
    long verify_code;
    char verify[PROBE_TEXT];
    int host_match;
    long days_left;
    char key_type[32];
    int key_bits;
    char cert_sigalg[64], sig_hash[32];
    int ocsp_stapled;
    double handshake_ms;
    int ktls_tx, ktls_rx;
};

struct probe_reason {
    char grade;
    char text[PROBE_TEXT];
};

struct probe_result {
    char target[300], servername[256];
    int implicit;
    int reached;
    char error[PROBE_TEXT];
    int banner_code;
    char banner[PROBE_TEXT];
    int ehlo_pre_code;
    struct smtp_ehlo ehlo_pre;
    int starttls_offered, starttls_code;
    char starttls_reply[PROBE_TEXT];
    size_t plaintext_after_220;
    char plaintext_sample[128];
    struct probe_tls_facts tls;
    int ehlo_post_code;
    struct smtp_ehlo ehlo_post;
    struct probe_variant_result v[PV_COUNT];
    int injectable; /* -1 not tested, 0 no, 1 yes */
    char injection_detail[PROBE_TEXT];
    char grade;
    size_t nreasons;
    struct probe_reason reasons[PROBE_REASONS_MAX];
};

/* probe.c: connections and the plain SMTP dialog. */
int probe_conn_open(struct probe_conn *c, const struct probe_opts *o, char *err, size_t errlen);
void probe_conn_close(struct probe_conn *c);
int probe_send(struct probe_conn *c, const char *s);
/* The next reply's code, its text copied to text; -1 on timeout, EOF or a
 * malformed reply. */
int probe_reply(struct probe_conn *c, char *text, size_t cap);
/* A throwaway connection taken to the point where the client starts TLS:
 * banner, EHLO, STARTTLS answered 220 (nothing for implicit TLS). */
int probe_to_tls(struct probe_conn *c, const struct probe_opts *o);
extern const char probe_ehlo_name[];

/* probe_tls.c */
int probe_tls_main(struct probe_conn *c, const struct probe_opts *o, struct probe_tls_facts *f);
void probe_enumerate(const struct probe_opts *o, struct probe_result *r);
void probe_injection(const struct probe_opts *o, struct probe_result *r);
const char *probe_variant_name(enum probe_variant v);
const char *probe_acc_name(enum probe_acc a);

/* probe_report.c */
void probe_grade(struct probe_result *r);
void probe_print_text(FILE *f, const struct probe_result *r);
void probe_print_json(FILE *f, const struct probe_result *r);

#endif
