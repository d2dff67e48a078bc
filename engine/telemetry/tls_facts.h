/*
 * tls_facts: what one TLS connection reports about itself. The transport
 * fills it in (transport/tls_facts.c); logs, job events and metrics read it.
 * It lives in telemetry so that the metrics library depends on this plain
 * struct, not on the transport that produces it.
 */
#ifndef RINGMAIL_TLS_FACTS_H
#define RINGMAIL_TLS_FACTS_H

#include <stdint.h>

/*
 * Per-connection TLS facts for logs, the job's events and metrics. Plain
 * data with fixed-size, NUL-terminated strings (truncated when longer):
 * safe to copy anywhere, shared memory included.
 */
#define TLS_FACT_NAME_MAX 48
#define TLS_FACT_TEXT_MAX 96
#define TLS_FACT_DN_MAX   256
struct tls_facts {
    char protocol[16];              /* "TLSv1.3" */
    char cipher[TLS_FACT_NAME_MAX]; /* OpenSSL's name: "TLS_AES_128_GCM_SHA256",
                                       "ECDHE-RSA-AES128-GCM-SHA256" */
    char group[TLS_FACT_NAME_MAX];  /* key exchange: "x25519", "secp256r1"; 1.2 DHE: "dh2048" */
    char verify[TLS_FACT_TEXT_MAX]; /* "ok", "disabled", or the X509 reason */
    char subject[TLS_FACT_DN_MAX];  /* peer certificate, RFC 2253 one-line */
    char issuer[TLS_FACT_DN_MAX];   /* its issuer, RFC 2253 one-line */
    int64_t not_after;              /* peer certificate notAfter, Unix seconds; 0: none */
    int64_t handshake_us;           /* first tls_conn_handshake() call to TLS_OK */
    int32_t verify_code;            /* X509_V_OK (0) or the X509_V_ERR_* OpenSSL reported */
    uint8_t verify_enabled;         /* 0: the policy turned verification off */
    uint8_t pinned;                 /* pins configured and one matched (or resumed) */
    uint8_t resumed;                /* the session was resumed */
    uint8_t ktls_tx;                /* the kernel encrypts what we send */
    uint32_t key_updates;           /* TLS 1.3 KeyUpdate messages received (live) */
};

#endif
