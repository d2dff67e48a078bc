/*
 * tls: client-side TLS toward relays on OpenSSL 3.0, driven by the io_uring
 * transport. Nothing here blocks, owns an event loop or reads a socket.
 *
 * A tls_ctx per relay carries the policy of docs/architecture.md ("TLS: the rules"):
 * TLS 1.2 minimum (1.3 selectable), AEAD + forward-secret ciphers only,
 * chain and host name verified against the relay's configured name, SPKI
 * pins, no renegotiation, no compression, and the relay's latest resumable
 * session so that reconnects resume.
 *
 * A tls_conn per connection uses the hybrid BIOs of docs/architecture.md ("kTLS and
 * io_uring"): OpenSSL writes handshake records straight to the non-blocking
 * socket (a socket BIO, the only kind through which OpenSSL 3.0 installs
 * kTLS TX keys), and reads ciphertext that the caller received with io_uring
 * and fed in (a memory BIO). After the handshake one of two send modes holds:
 *
 *   kTLS TX on  (tls_conn_ktls_tx() == 1): the kernel encrypts; the caller
 *               SENDs plaintext straight on the fd and never calls
 *               tls_conn_encrypt().
 *   kTLS TX off: the write side moves to a ciphertext queue owned by the
 *               conn; tls_conn_encrypt() fills it and the caller SENDs what
 *               tls_conn_pending_iov() points at, then tls_conn_consume_out().
 *
 * The flow for the caller:
 *
 *   conn = tls_conn_new(ctx, fd, err, errlen);
 *   for (;;) switch (tls_conn_handshake(conn)) {
 *       TLS_WANT_READ:  RECV, tls_conn_feed() (or tls_conn_feed_eof()), again
 *       TLS_WANT_WRITE: POLLOUT on fd, again
 *       TLS_ERROR:      tls_conn_error(conn, &detail), tls_err_class(), close
 *       TLS_OK:         tls_conn_facts(conn) for the log line and metrics
 *   }
 *   receive: tls_conn_feed(), then tls_conn_read() until TLS_WANT_READ. Call
 *            tls_conn_read() once right after TLS_OK too: records that came
 *            with the server's last flight (session tickets, even a reply)
 *            may already be buffered.
 *   send:    see the two modes above. In kTLS-off mode, check
 *            tls_conn_pending_len() after every read as well: a read may
 *            queue an alert or the answer to the peer's KeyUpdate.
 *   rotate:  tls_conn_key_stale() == 1 retires the connection after its
 *            current transaction.
 *   close:   tls_conn_shutdown() (close_notify), send what is pending, then
 *            tls_conn_free() and close the fd (the conn never closes it).
 *
 * The process must ignore SIGPIPE: OpenSSL's socket BIO writes with write(2).
 * A ctx and its conns belong to one thread (a worker); nothing is locked.
 */
#ifndef RINGMAIL_TLS_H
#define RINGMAIL_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "tls_facts.h"

/* Outcome of a handshake, read or shutdown step. */
enum tls_status {
    TLS_ERROR = -1,     /* failed for good: tls_conn_error() says why */
    TLS_OK = 0,         /* done (handshake, shutdown) or bytes read */
    TLS_WANT_READ = 1,  /* feed more ciphertext, then call again */
    TLS_WANT_WRITE = 2, /* the socket is full: wait for POLLOUT, then call again */
    TLS_CLOSED = 3,     /* read: the peer sent close_notify; nothing more will come */
};
/* "error", "ok", "want-read", "want-write", "closed"; never NULL. */
const char *tls_status_name(enum tls_status s);

/*
 * Why a connection failed. The SMTP client knows three TLS reasons
 * (handshake, cert-verify, protocol-version); tls_err_class() folds every
 * value onto them (and LOCAL). Logs and metrics keep the finer name.
 */
enum tls_err {
    TLS_ERR_NONE = 0,
    TLS_ERR_HANDSHAKE = 1,        /* the handshake failed: an alert ("sslv3 alert handshake
                                     failure"), no shared cipher, a malformed message */
    TLS_ERR_CERT_VERIFY = 2,      /* the chain or host name was refused; detail: the X509
                                     reason ("certificate has expired", "hostname mismatch") */
    TLS_ERR_PROTOCOL_VERSION = 3, /* no TLS version both sides accept (an old server) */
    TLS_ERR_PIN_MISMATCH = 4,     /* no certificate matches the SPKI pins (class cert-verify) */
    TLS_ERR_PEER_CLOSED = 5,      /* EOF without close_notify (class handshake) */
    TLS_ERR_IO = 6,               /* writing to the socket failed; detail: strerror (class
                                     handshake) */
    TLS_ERR_PROTOCOL = 7,         /* after the handshake: a bad record, a fatal alert, an
                                     unexpected message (class handshake) */
    TLS_ERR_LOCAL = 8,            /* out of memory, or the API used out of order */
};
#define TLS_ERR_COUNT 9
/* "none", "handshake", "cert-verify", "protocol-version", "pin-mismatch",
 * "peer-closed", "io", "protocol", "local"; never NULL. */
const char *tls_err_name(enum tls_err e);
/* One of TLS_ERR_NONE, HANDSHAKE, CERT_VERIFY, PROTOCOL_VERSION or LOCAL. */
enum tls_err tls_err_class(enum tls_err e);

/* Longest error text tls_ctx_new() and tls_conn_new() write, NUL included. */
#define TLS_ERRBUF_MAX 256
/* Longest failure detail of a connection, NUL included. */
#define TLS_DETAIL_MAX 256

/* The one parser of an SPKI pin (see tls_policy.pins for the spellings),
 * used by the configuration, `ringmail send --pin` and tls_ctx_new():
 * 0 with the 32 octets in out, or -1 when s is not a pin. */
#define TLS_PIN_OCTETS 32

/* The OpenSSL security level every tls_ctx has at least (see tls.c). */
#define TLS_MIN_SECURITY_LEVEL 2
int tls_pin_parse(const char *s, unsigned char out[TLS_PIN_OCTETS]);

/*
 * The policy of one relay, usually straight from the configuration. A zeroed
 * struct plus servername is the safe default: TLS 1.2+, verification on
 * against the system store, resumption on.
 */
struct tls_policy {
    /* The relay's configured name: SNI and the certificate host-name check.
     * An IP literal is checked against the certificate's IP SANs and sent
     * without SNI (RFC 6066 forbids literals there). Required unless
     * verification is off. */
    const char *servername;
    /* "1.2" (NULL or "" too) or "1.3". */
    const char *min_version;
    /* OpenSSL's TLS 1.3 suite list ("TLS_AES_128_GCM_SHA256:..."); NULL:
     * AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305 in that order. Every TLS 1.3 suite is AEAD and
     * forward secret. The TLS 1.2 list is fixed (ECDHE/DHE with AES-GCM or ChaCha20-Poly1305). */
    const char *tls13_ciphersuites;
    /* A private trust store (PEM file and/or hashed directory). Both NULL:
     * the system's default store. */
    const char *ca_file;
    const char *ca_dir;
    /* Non-zero turns certificate verification off. Explicit by design: a
     * zeroed policy verifies. Without pins such a ctx is insecure (see
     * tls_ctx_insecure()); with pins, the pin on the leaf is the trust. */
    int insecure_no_verify;
    /* A client certificate (PEM chain: leaf first) and its key (PEM,
     * unencrypted). Both or neither. */
    const char *cert_file;
    const char *key_file;
    /*
     * SPKI pins: the SHA-256 of a certificate's DER SubjectPublicKeyInfo,
     * each as base64 with or without curl's "sha256//" prefix (44
     * characters), or as 64 hex digits (colons allowed). Make one with
     *   openssl x509 -in cert.pem -pubkey -noout | openssl pkey -pubin
     *     -outform der | openssl dgst -sha256 -binary | base64
     * With verification on, a pin may name the leaf or any certificate of
     * the verified chain (an intermediate, the root); with verification off,
     * only the leaf counts, since an unverified chain proves nothing.
     */
    const char *const *pins;
    size_t npins;
};

struct tls_ctx;
struct tls_conn;

/*
 * Build the context for one relay. Returns NULL and writes a specific reason
 * into err ("cannot read CA file /x: No such file or directory", "client key
 * does not match certificate", "bad pin 'x': ...") when the policy cannot be
 * honoured. err may be NULL; errlen TLS_ERRBUF_MAX is always enough. Logs
 * nothing: the caller logs, and warns on tls_ctx_insecure().
 */
struct tls_ctx *tls_ctx_new(const struct tls_policy *p, char *err, size_t errlen);
/* Drops the caller's reference; the ctx lives on until its last conn is freed. */
void tls_ctx_free(struct tls_ctx *ctx);
/* 1 when verification is off and no pin replaces it: warn at start and on
 * every connection, and say so in metrics. */
int tls_ctx_insecure(const struct tls_ctx *ctx);

/* struct tls_facts: telemetry/tls_facts.h (metrics exports it without
 * depending on the transport). */

/*
 * A connection on fd (connected, non-blocking; still owned by the caller).
 * Holds a reference on ctx. Returns NULL with err written when out of memory.
 */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx, int fd, char *err, size_t errlen);
/* Frees the conn (never closes the fd) and drops its ctx reference. */
void tls_conn_free(struct tls_conn *c);

/* Ciphertext received on the fd. Returns 0, or -1 when out of memory (the
 * conn has failed with TLS_ERR_LOCAL). */
int tls_conn_feed(struct tls_conn *c, const void *buf, size_t len);
/* The fd reached EOF: once the fed bytes are used up, the next handshake or
 * read step fails (TLS_ERR_PEER_CLOSED) instead of wanting more. */
void tls_conn_feed_eof(struct tls_conn *c);

/* One handshake step. TLS_OK once (and every call after) the handshake is
 * done and the pins, if any, matched. */
enum tls_status tls_conn_handshake(struct tls_conn *c);

/*
 * Decrypt fed ciphertext into out (cap > 0). TLS_OK with *got > 0 bytes;
 * TLS_WANT_READ: feed more; TLS_WANT_WRITE (kTLS TX on only): an alert is
 * stuck behind a full socket, call again on POLLOUT; TLS_CLOSED: the peer
 * sent close_notify; TLS_ERROR: see tls_conn_error().
 */
enum tls_status tls_conn_read(struct tls_conn *c, void *out, size_t cap, size_t *got);

/* The kernel encrypts what is written on the fd (known after TLS_OK). */
int tls_conn_ktls_tx(const struct tls_conn *c);

/*
 * kTLS TX off only: encrypt n plaintext pieces, in order, into the pending
 * ciphertext. Pieces are coalesced into full 16 KiB records, so a pipelined
 * burst of small commands costs one record. Every byte is taken (the queue
 * grows; bound it by sending before encrypting more). Returns 0, or -1 when
 * the conn has failed or kTLS TX is on (tls_conn_error() says which).
 */
int tls_conn_encrypt(struct tls_conn *c, const struct iovec *iov, size_t n);

/*
 * The pending ciphertext, for io_uring SEND / SENDMSG / SEND_ZC without a
 * copy. The bytes a pointer covers stay where they are, whatever is encrypted
 * meanwhile, until tls_conn_consume_out() consumes them (so a SEND_ZC buffer
 * is consumed on its notification) or the conn is freed.
 */
size_t tls_conn_pending_len(const struct tls_conn *c);
/* First contiguous piece; 0 when nothing is pending. */
int tls_conn_pending_out(const struct tls_conn *c, const void **ptr, size_t *len);
/* Up to max pieces after the first skip pending bytes (those already in
 * flight); returns the number of pieces filled. */
size_t tls_conn_pending_iov(const struct tls_conn *c, size_t skip, struct iovec *iov, size_t max);
/* n bytes were sent, from the start of the pending ciphertext. */
void tls_conn_consume_out(struct tls_conn *c, size_t n);

/*
 * 1 once the peer sent a TLS 1.3 KeyUpdate while the kernel encrypts: OpenSSL
 * 3.0 would change only its userspace key and never answers a requested
 * update on the kTLS path, so the connection must not outlive its current
 * transaction. (With kTLS TX off, OpenSSL handles KeyUpdate and this stays 0;
 * facts.key_updates counts them either way.)
 */
int tls_conn_key_stale(const struct tls_conn *c);

/*
 * Queue close_notify: into the pending ciphertext with kTLS TX off, on the
 * socket with kTLS TX on (TLS_WANT_WRITE: call again on POLLOUT; send no
 * plaintext meanwhile). TLS_OK once queued; TLS_ERROR on a failed conn.
 */
enum tls_status tls_conn_shutdown(struct tls_conn *c);

/* Why the conn failed (TLS_ERR_NONE if it has not); *detail, when detail is
 * non-NULL, points at text the conn owns until freed. */
enum tls_err tls_conn_error(const struct tls_conn *c, const char **detail);

/* The facts, once the handshake returned TLS_OK; NULL before. They belong to
 * the conn (key_updates keeps counting): copy them to keep them. */
const struct tls_facts *tls_conn_facts(const struct tls_conn *c);

#endif
