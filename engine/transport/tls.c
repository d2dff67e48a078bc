/*
 * tls: the SSL_CTX of a relay built from its policy, and per-connection TLS
 * on the hybrid BIOs of docs/architecture.md: a socket BIO writes the handshake so that
 * OpenSSL can hand the traffic keys to the kernel (kTLS TX), a memory BIO
 * reads what io_uring received. When the kernel does not take the keys, the
 * write side moves to a queue of ciphertext chunks that the caller sends.
 *
 * Verification details (pins, failure classes) live in tls_verify.c, the
 * facts for metrics in tls_facts.c, the kTLS-off send path in tls_out.c.
 */
#include "tls_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

/* TLS 1.2: forward-secret key exchange (ECDHE, DHE) with AEAD only. */
static const char tls12_ciphers[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
                                    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384";

/* TLS 1.3: every suite is AEAD and forward secret; the order is ours to
 * pick, and most servers follow the client's. OpenSSL's default puts
 * AES-256-GCM first; AES-128-GCM is as safe for mail and, with AES-NI, about
 * 30% cheaper per byte, which is what bounds a sender of large messages on
 * one core. ChaCha20 stays for servers without AES hardware. */
static const char tls13_default_suites[] =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

/* Read-BIO capacity an idle connection may keep; a larger buffer, left by a
 * burst of received records, is given back once drained. */
#define RBIO_KEEP 4096

static const char *const status_names[] = {"error", "ok", "want-read", "want-write", "closed"};

const char *tls_status_name(enum tls_status s)
{
    int i = (int)s + 1;
    if (i >= 0 && i < (int)(sizeof(status_names) / sizeof(status_names[0])))
        return status_names[i];
    return "unknown";
}

static const char *const err_names[TLS_ERR_COUNT] = {
    "none", "handshake", "cert-verify", "protocol-version", "pin-mismatch", "peer-closed",
    "io",   "protocol",  "local",
};

const char *tls_err_name(enum tls_err e)
{
    if ((unsigned)e < TLS_ERR_COUNT)
        return err_names[e];
    return "unknown";
}

enum tls_err tls_err_class(enum tls_err e)
{
    switch (e) {
    case TLS_ERR_NONE:
    case TLS_ERR_CERT_VERIFY:
    case TLS_ERR_PROTOCOL_VERSION:
    case TLS_ERR_LOCAL:
        return e;
    case TLS_ERR_PIN_MISMATCH:
        return TLS_ERR_CERT_VERIFY;
    default:
        return TLS_ERR_HANDSHAKE;
    }
}

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || !errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- context ---- */

static void keep_session(struct tls_ctx *ctx, SSL_SESSION *s)
{
    SSL_SESSION_free(ctx->session);
    ctx->session = s;
}

/* OpenSSL hands over every new session (TLS 1.2 at the end of the handshake,
 * TLS 1.3 per ticket). One from a conn whose pins are not checked yet waits
 * on the conn: resuming it later would skip the check. */
static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    struct tls_conn *c = SSL_get_app_data(ssl);
    if (!c)
        return 0;
    if (c->checked) {
        keep_session(c->ctx, sess);
    } else {
        SSL_SESSION_free(c->pending_session);
        c->pending_session = sess;
    }
    return 1; /* the reference is ours */
}

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    /* A daemon has no terminal to ask on (OpenSSL's default would try). */
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

static int load_trust(SSL_CTX *sc, const struct tls_policy *p, char *err, size_t errlen)
{
    char rb[160];
    struct stat st;

    if (!p->ca_file && !p->ca_dir) {
        if (SSL_CTX_set_default_verify_paths(sc) != 1) {
            seterr(err, errlen, "cannot load the system CA store: %s",
                   tls_ossl_reason(rb, sizeof(rb)));
            return -1;
        }
        return 0;
    }
    if (p->ca_file && SSL_CTX_load_verify_file(sc, p->ca_file) != 1) {
        seterr(err, errlen, "cannot read CA file %s: %s", p->ca_file,
               tls_ossl_reason(rb, sizeof(rb)));
        return -1;
    }
    if (p->ca_dir) {
        /* OpenSSL reads a hashed directory lazily and says nothing now. */
        int e = stat(p->ca_dir, &st) != 0 ? errno : !S_ISDIR(st.st_mode) ? ENOTDIR : 0;
        if (e) {
            seterr(err, errlen, "cannot read CA directory %s: %s", p->ca_dir,
                   strerror_r(e, rb, sizeof(rb)));
            return -1;
        }
        if (SSL_CTX_load_verify_dir(sc, p->ca_dir) != 1) {
            seterr(err, errlen, "cannot read CA directory %s: %s", p->ca_dir,
                   tls_ossl_reason(rb, sizeof(rb)));
            return -1;
        }
    }
    return 0;
}

static int load_client_cert(SSL_CTX *sc, const struct tls_policy *p, char *err, size_t errlen)
{
    char rb[160];
    BIO *b;
    EVP_PKEY *key = NULL;
    int ret = -1;

    if (SSL_CTX_use_certificate_chain_file(sc, p->cert_file) != 1) {
        seterr(err, errlen, "cannot read client certificate %s: %s", p->cert_file,
               tls_ossl_reason(rb, sizeof(rb)));
        return -1;
    }
    /* The key is loaded apart so that a mismatch gets its own message rather
     * than OpenSSL's "key values mismatch" or a silent second slot. */
    b = BIO_new_file(p->key_file, "r");
    if (b)
        key = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL);
    if (!key) {
        seterr(err, errlen, "cannot read client key %s: %s", p->key_file,
               tls_ossl_reason(rb, sizeof(rb)));
        goto out;
    }
    if (X509_check_private_key(SSL_CTX_get0_certificate(sc), key) != 1) {
        seterr(err, errlen, "client key does not match certificate");
        goto out;
    }
    if (SSL_CTX_use_PrivateKey(sc, key) != 1) {
        seterr(err, errlen, "cannot use client key %s: %s", p->key_file,
               tls_ossl_reason(rb, sizeof(rb)));
        goto out;
    }
    ret = 0;
out:
    EVP_PKEY_free(key);
    BIO_free(b);
    return ret;
}

struct tls_ctx *tls_ctx_new(const struct tls_policy *p, char *err, size_t errlen)
{
    struct tls_ctx *ctx = NULL;
    SSL_CTX *sc;
    int minv;
    char rb[160];
    unsigned char ip[16];

    ERR_clear_error();
    if (!p->min_version || !*p->min_version || strcmp(p->min_version, "1.2") == 0) {
        minv = TLS1_2_VERSION;
    } else if (strcmp(p->min_version, "1.3") == 0) {
        minv = TLS1_3_VERSION;
    } else {
        seterr(err, errlen, "unsupported min_version '%.32s' (use 1.2 or 1.3)", p->min_version);
        return NULL;
    }
    if (!p->insecure_no_verify && (!p->servername || !*p->servername)) {
        seterr(err, errlen, "servername is required to verify the relay's certificate");
        return NULL;
    }
    if (p->servername && strlen(p->servername) > 253) {
        seterr(err, errlen, "servername is longer than 253 characters");
        return NULL;
    }
    if (!p->cert_file != !p->key_file) {
        seterr(err, errlen, "a client certificate needs both cert_file and key_file");
        return NULL;
    }

    ctx = calloc(1, sizeof(*ctx));
    if (!ctx)
        goto oom;
    ctx->refs = 1;
    ctx->verify = !p->insecure_no_verify;
    if (p->servername && *p->servername) {
        ctx->servername = strdup(p->servername);
        if (!ctx->servername)
            goto oom;
        ctx->servername_is_ip = inet_pton(AF_INET, p->servername, ip) == 1 ||
                                inet_pton(AF_INET6, p->servername, ip) == 1;
    }
    sc = ctx->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (!sc)
        goto oom;
    /* Security level 2 at least (112-bit security: RSA, DSA and DH keys of
     * 2048 bits or more, ECC of 224, no SHA-1 signatures), whatever the
     * system's openssl.cnf says; a stricter system level stays. OpenSSL 3.0's
     * built-in default is 1 (RSA-1024 passes). */
    if (SSL_CTX_get_security_level(sc) < TLS_MIN_SECURITY_LEVEL)
        SSL_CTX_set_security_level(sc, TLS_MIN_SECURITY_LEVEL);
    if (SSL_CTX_set_min_proto_version(sc, minv) != 1 || SSL_CTX_set_max_proto_version(sc, 0) != 1) {
        seterr(err, errlen, "cannot set TLS versions: %s", tls_ossl_reason(rb, sizeof(rb)));
        goto fail;
    }
    if (SSL_CTX_set_cipher_list(sc, tls12_ciphers) != 1) {
        seterr(err, errlen, "cannot set TLS 1.2 ciphers: %s", tls_ossl_reason(rb, sizeof(rb)));
        goto fail;
    }
    if (SSL_CTX_set_ciphersuites(sc, p->tls13_ciphersuites ? p->tls13_ciphersuites
                                                           : tls13_default_suites) != 1) {
        seterr(err, errlen, "bad tls13_ciphersuites '%.64s': %s", p->tls13_ciphersuites,
               tls_ossl_reason(rb, sizeof(rb)));
        goto fail;
    }
    SSL_CTX_set_options(sc, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_ENABLE_KTLS);
    /* Release buffers: an idle connection keeps no 16 KiB record buffers.
     * max_send_fragment stays at its default: OpenSSL 3.0 refuses kTLS for
     * any other. */
    SSL_CTX_set_mode(sc, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                             SSL_MODE_RELEASE_BUFFERS);
    if (load_trust(sc, p, err, errlen) < 0)
        goto fail;
    SSL_CTX_set_verify(sc, ctx->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (p->cert_file && load_client_cert(sc, p, err, errlen) < 0)
        goto fail;
    if (tls_pins_parse(ctx, p->pins, p->npins, err, errlen) < 0)
        goto fail;
    /* Client-side cache without OpenSSL's internal store: the callback keeps
     * the latest session of the relay, which the next conn offers. */
    SSL_CTX_set_session_cache_mode(sc, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(sc, new_session_cb);
    ERR_clear_error();
    return ctx;
oom:
    seterr(err, errlen, "cannot set up TLS: out of memory");
fail:
    ERR_clear_error();
    tls_ctx_free(ctx);
    return NULL;
}

void tls_ctx_free(struct tls_ctx *ctx)
{
    if (!ctx || --ctx->refs > 0)
        return;
    SSL_SESSION_free(ctx->session);
    SSL_CTX_free(ctx->ssl_ctx);
    free(ctx->pins);
    free(ctx->servername);
    free(ctx);
}

int tls_ctx_insecure(const struct tls_ctx *ctx)
{
    return !ctx->verify && ctx->npins == 0;
}

/* ---- connection ---- */

static BIO *rbio_new(void)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (b)
        BIO_set_mem_eof_return(b, -1); /* empty means "more to come", not EOF */
    return b;
}

/* SSL_free_buffers() refuses while a partial record is buffered, except in
 * the releases before the fix of CVE-2024-4741 (3.0.14, 3.1.6, 3.2.2, 3.3.1),
 * where it freed the buffer in use. Version layout: 0xMNN00PPSL. */
static int free_buffers_safe(void)
{
    unsigned long v = OpenSSL_version_num();
    unsigned long major = v >> 28, minor = (v >> 20) & 0xff, patch = (v >> 4) & 0xff;
    static const unsigned char fixed[] = {14, 6, 2, 1}; /* per 3.minor */
    if (major != 3 || minor >= sizeof(fixed))
        return major >= 3;
    return patch >= fixed[minor];
}

/*
 * Give back read memory once everything fed is consumed: OpenSSL's record
 * buffer (about 16.7 KiB, which SSL_MODE_RELEASE_BUFFERS leaves allocated
 * after post-handshake messages such as session tickets: half the cost of
 * an idle connection) and the read BIO's buffer if a burst grew it.
 */
static void rbio_trim(struct tls_conn *c)
{
    BIO *rb = SSL_get_rbio(c->ssl), *nb;
    BUF_MEM *bm = NULL;
    if (c->eof_fed || BIO_ctrl_pending(rb) != 0)
        return;
    if (free_buffers_safe())
        SSL_free_buffers(c->ssl);
    if (BIO_get_mem_ptr(rb, &bm) != 1 || !bm || bm->max <= RBIO_KEEP)
        return;
    nb = rbio_new();
    if (nb)
        SSL_set0_rbio(c->ssl, nb); /* frees the old one */
}

static void msg_cb(int write_p, int version, int content_type, const void *buf, size_t len,
                   SSL *ssl, void *arg)
{
    struct tls_conn *c = arg;
    const unsigned char *m = buf;
    (void)version;
    (void)ssl;
    /* The KeyUpdate tripwire (docs/architecture.md): OpenSSL 3.0 changes only its
     * userspace keys, and answers a requested update only when it next
     * writes, which it never does while the kernel encrypts. Any KeyUpdate
     * counts, requested or not: a peer that rotates keys may well ask us
     * next, and retiring the conn costs one resumed handshake. */
    if (write_p || content_type != SSL3_RT_HANDSHAKE || len < 1 || m[0] != SSL3_MT_KEY_UPDATE)
        return;
    c->facts.key_updates++;
    if (c->ktls_tx)
        c->key_stale = 1;
}

static int session_usable(const SSL_SESSION *s)
{
    return SSL_SESSION_is_resumable(s) &&
           SSL_SESSION_get_time(s) + SSL_SESSION_get_timeout(s) > (long)time(NULL);
}

struct tls_conn *tls_conn_new(struct tls_ctx *ctx, int fd, char *err, size_t errlen)
{
    struct tls_conn *c;
    BIO *rbio = NULL, *wbio = NULL;
    char rb[160];

    ERR_clear_error();
    c = calloc(1, sizeof(*c));
    if (!c)
        goto fail;
    c->fd = fd;
    c->state = TLS_ST_HANDSHAKE;
    c->ssl = SSL_new(ctx->ssl_ctx);
    rbio = rbio_new();
    /* The socket BIO writes: only through it can OpenSSL 3.0 install kTLS. */
    wbio = BIO_new_socket(fd, BIO_NOCLOSE);
    if (!c->ssl || !rbio || !wbio)
        goto fail;
    SSL_set_bio(c->ssl, rbio, wbio);
    rbio = wbio = NULL;
    SSL_set_connect_state(c->ssl);
    SSL_set_app_data(c->ssl, c);
    SSL_set_msg_callback(c->ssl, msg_cb);
    SSL_set_msg_callback_arg(c->ssl, c);
    if (ctx->servername) {
        /* Names come from the subjectAltName only, never the subject's CN:
         * RFC 6125 6.4.4 and the CA/Browser Forum's rules. Without the
         * flag OpenSSL falls back to the CN when there is no DNS SAN. */
        SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS |
                                      X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
        if (ctx->servername_is_ip) {
            if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), ctx->servername) != 1)
                goto fail;
        } else if (SSL_set_tlsext_host_name(c->ssl, ctx->servername) != 1 ||
                   SSL_set1_host(c->ssl, ctx->servername) != 1) {
            goto fail;
        }
    }
    if (ctx->session) {
        if (session_usable(ctx->session))
            SSL_set_session(c->ssl, ctx->session);
        else
            keep_session(ctx, NULL);
    }
    c->ctx = ctx;
    ctx->refs++;
    ERR_clear_error();
    return c;
fail:
    seterr(err, errlen, "cannot set up TLS connection: %s", tls_ossl_reason(rb, sizeof(rb)));
    ERR_clear_error();
    BIO_free(rbio);
    BIO_free(wbio);
    if (c) {
        SSL_free(c->ssl);
        free(c);
    }
    return NULL;
}

void tls_conn_free(struct tls_conn *c)
{
    if (!c)
        return;
    /* SSL_free() of a conn that never sent close_notify marks its session
     * not resumable (RFC 2246's rule, dropped since TLS 1.1), and that
     * session object may be the one the ctx keeps. A healthy conn closed by
     * the pool keeps it resumable; a failed one (fatal alert) does not. */
    if (c->state != TLS_ST_FAILED && c->state != TLS_ST_HANDSHAKE)
        SSL_set_shutdown(c->ssl, SSL_get_shutdown(c->ssl) | SSL_SENT_SHUTDOWN);
    SSL_free(c->ssl); /* and both BIOs; the fd stays open (BIO_NOCLOSE) */
    tls_outq_clear(&c->out);
    SSL_SESSION_free(c->pending_session);
    tls_ctx_free(c->ctx);
    free(c);
}

int tls_conn_feed(struct tls_conn *c, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    BIO *rb = SSL_get_rbio(c->ssl);
    if (c->state == TLS_ST_FAILED)
        return 0; /* nothing will read it */
    while (len) {
        int n = BIO_write(rb, p, len > INT_MAX ? INT_MAX : (int)len);
        if (n <= 0) {
            tls_fail(c, TLS_ERR_LOCAL, "out of memory for received ciphertext");
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void tls_conn_feed_eof(struct tls_conn *c)
{
    c->eof_fed = 1;
    BIO_set_mem_eof_return(SSL_get_rbio(c->ssl), 0);
}

static enum tls_status handshake_done(struct tls_conn *c)
{
    BIO *out;

    /* OpenSSL falls back to userspace silently: ask the socket BIO. */
    c->ktls_tx = BIO_get_ktls_send(SSL_get_wbio(c->ssl)) ? 1 : 0;
    /* A resumed session was pinned when it was new (only checked conns
     * keep sessions), and its chain is not verified again. */
    if (c->ctx->npins && !SSL_session_reused(c->ssl) && !tls_pins_match(c->ctx, c->ssl)) {
        tls_fail(c, TLS_ERR_PIN_MISMATCH, "no certificate matches the configured SPKI pins");
        return TLS_ERROR;
    }
    if (!c->ktls_tx) {
        /* All handshake bytes are flushed (SSL_do_handshake returned 1), so
         * the socket BIO can go: SSL_set0_wbio frees it, the rbio stays. */
        out = tls_outq_bio_new(&c->out);
        if (!out) {
            tls_fail(c, TLS_ERR_LOCAL, "out of memory for the ciphertext queue");
            return TLS_ERROR;
        }
        SSL_set0_wbio(c->ssl, out);
    }
    tls_facts_collect(c);
    c->checked = 1;
    c->state = TLS_ST_READY;
    if (c->pending_session) {
        keep_session(c->ctx, c->pending_session);
        c->pending_session = NULL;
    }
    rbio_trim(c);
    return TLS_OK;
}

enum tls_status tls_conn_handshake(struct tls_conn *c)
{
    int r, e, saved;

    if (c->state == TLS_ST_FAILED)
        return TLS_ERROR;
    if (c->state != TLS_ST_HANDSHAKE)
        return TLS_OK;
    if (!c->t0_set) {
        clock_gettime(CLOCK_MONOTONIC, &c->t0);
        c->t0_set = 1;
    }
    ERR_clear_error();
    errno = 0;
    r = SSL_do_handshake(c->ssl);
    saved = errno;
    if (r == 1)
        return handshake_done(c);
    e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return TLS_WANT_READ;
    if (e == SSL_ERROR_WANT_WRITE)
        return TLS_WANT_WRITE;
    tls_fail_classify(c, e, saved);
    return TLS_ERROR;
}

/*
 * kTLS off: answer a KeyUpdate the peer requested now, into the queue the
 * caller drains after reads, rather than with our next SSL_write (which RFC
 * 8446 4.6.3 would allow, but an idle pooled connection may not write for
 * long). With kTLS TX on OpenSSL cannot answer at all: the tripwire.
 */
static void answer_key_update(struct tls_conn *c)
{
    int r, saved;
    if (c->ktls_tx || c->state != TLS_ST_READY ||
        SSL_get_key_update_type(c->ssl) == SSL_KEY_UPDATE_NONE)
        return;
    ERR_clear_error();
    errno = 0;
    /* Same type as pending: only puts the state machine to work. */
    if (SSL_key_update(c->ssl, SSL_KEY_UPDATE_NOT_REQUESTED) == 1 &&
        (r = SSL_do_handshake(c->ssl)) != 1) {
        saved = errno;
        tls_fail_classify(c, SSL_get_error(c->ssl, r), saved);
    }
    ERR_clear_error();
}

enum tls_status tls_conn_read(struct tls_conn *c, void *out, size_t cap, size_t *got)
{
    size_t n = 0;
    int r, e, saved;

    *got = 0;
    if (c->state == TLS_ST_FAILED)
        return TLS_ERROR;
    if (c->state == TLS_ST_HANDSHAKE) {
        tls_fail(c, TLS_ERR_LOCAL, "read before the handshake completed");
        return TLS_ERROR;
    }
    ERR_clear_error();
    errno = 0;
    r = SSL_read_ex(c->ssl, out, cap, &n);
    saved = errno;
    if (r == 1) {
        *got = n;
        answer_key_update(c);
        return TLS_OK;
    }
    e = SSL_get_error(c->ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        answer_key_update(c);
        rbio_trim(c);
        return TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        return TLS_CLOSED;
    default:
        tls_fail_classify(c, e, saved);
        return TLS_ERROR;
    }
}

int tls_conn_ktls_tx(const struct tls_conn *c)
{
    return c->ktls_tx;
}

int tls_conn_key_stale(const struct tls_conn *c)
{
    return c->key_stale;
}

enum tls_status tls_conn_shutdown(struct tls_conn *c)
{
    int r, e, saved;

    if (c->state == TLS_ST_FAILED)
        return TLS_ERROR;
    if (c->state == TLS_ST_HANDSHAKE) {
        /* Mid-handshake there is no session to close politely: just close. */
        tls_fail(c, TLS_ERR_LOCAL, "shutdown before the handshake completed");
        return TLS_ERROR;
    }
    if (c->state == TLS_ST_SHUTDOWN && !(SSL_want_write(c->ssl)))
        return TLS_OK;
    ERR_clear_error();
    errno = 0;
    r = SSL_shutdown(c->ssl);
    saved = errno;
    c->state = TLS_ST_SHUTDOWN;
    /* 0: close_notify sent, the peer's not seen; 1: both. Either is done
     * for us: we never wait for the peer's close_notify. */
    if (r >= 0)
        return TLS_OK;
    e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_WRITE)
        return TLS_WANT_WRITE;
    tls_fail_classify(c, e, saved);
    return TLS_ERROR;
}

enum tls_err tls_conn_error(const struct tls_conn *c, const char **detail)
{
    if (detail)
        *detail = c->detail;
    return c->err;
}

const struct tls_facts *tls_conn_facts(const struct tls_conn *c)
{
    return c->checked ? &c->facts : NULL;
}
