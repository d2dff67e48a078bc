/*
 * Unit tests for tls, against an in-process OpenSSL server with a PKI made
 * at run time (tls_harness.h): verification outcomes and their reasons,
 * versions and ciphers, pins, resumption, the kTLS-off data path, KeyUpdate,
 * shutdown and EOF.
 *
 * It also prints two figures (not asserted beyond the memory target): the
 * heap cost of an idle post-handshake connection and the kTLS-off encrypt
 * speed against raw AES-128-GCM.
 */
#include "tls.h"

#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "check.h"
#include "tls_harness.h"

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_ASAN 1
#endif
#endif
#ifdef HAVE_ASAN
/* From <sanitizer/allocator_interface.h>, which not every compiler ships:
 * under ASan, malloc is ASan's and glibc's mallinfo2() sees none of it. */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

/* ---- tests ---- */

static void test_names(void)
{
    CHECK_STR(tls_status_name(TLS_ERROR), "error");
    CHECK_STR(tls_status_name(TLS_WANT_WRITE), "want-write");
    CHECK_STR(tls_status_name(TLS_CLOSED), "closed");
    CHECK_STR(tls_status_name((enum tls_status)42), "unknown");
    CHECK_STR(tls_err_name(TLS_ERR_CERT_VERIFY), "cert-verify");
    CHECK_STR(tls_err_name(TLS_ERR_PROTOCOL_VERSION), "protocol-version");
    CHECK_STR(tls_err_name(TLS_ERR_PIN_MISMATCH), "pin-mismatch");
    CHECK_STR(tls_err_name(TLS_ERR_LOCAL), "local");
    CHECK_STR(tls_err_name((enum tls_err)TLS_ERR_COUNT), "unknown");
    CHECK_INT(tls_err_class(TLS_ERR_PIN_MISMATCH), TLS_ERR_CERT_VERIFY);
    CHECK_INT(tls_err_class(TLS_ERR_CERT_VERIFY), TLS_ERR_CERT_VERIFY);
    CHECK_INT(tls_err_class(TLS_ERR_PROTOCOL_VERSION), TLS_ERR_PROTOCOL_VERSION);
    CHECK_INT(tls_err_class(TLS_ERR_PEER_CLOSED), TLS_ERR_HANDSHAKE);
    CHECK_INT(tls_err_class(TLS_ERR_IO), TLS_ERR_HANDSHAKE);
    CHECK_INT(tls_err_class(TLS_ERR_LOCAL), TLS_ERR_LOCAL);
}

static void expect_ctx_error(const struct tls_policy *p, const char *want)
{
    char err[TLS_ERRBUF_MAX] = "";
    struct tls_ctx *ctx = tls_ctx_new(p, err, sizeof(err));
    CHECK(ctx == NULL);
    tls_ctx_free(ctx);
    CHECK_STR(err, want);
}

static void test_ctx_errors(void)
{
    struct tls_policy p = policy();
    const char *bad_pins[] = {"zzz"};
    const char *prefixed_hex[] = {
        "sha256//00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"};
    char want[TLS_ERRBUF_MAX];

    p.ca_file = "/nonexistent/ca.pem";
    expect_ctx_error(&p, "cannot read CA file /nonexistent/ca.pem: No such file or directory");
    p.ca_file = pki.client_key; /* a key, no certificate */
    snprintf(want, sizeof(want), "cannot read CA file %s: no certificate or crl found",
             pki.client_key);
    expect_ctx_error(&p, want);
    p = policy();
    p.ca_dir = "/nonexistent";
    expect_ctx_error(&p, "cannot read CA directory /nonexistent: No such file or directory");
    p.ca_dir = pki.ca_file;
    snprintf(want, sizeof(want), "cannot read CA directory %s: Not a directory", pki.ca_file);
    expect_ctx_error(&p, want);

    p = policy();
    p.servername = NULL;
    expect_ctx_error(&p, "servername is required to verify the relay's certificate");
    p = policy();
    p.min_version = "1.1";
    expect_ctx_error(&p, "unsupported min_version '1.1' (use 1.2 or 1.3)");
    p = policy();
    p.tls13_ciphersuites = "NOPE";
    expect_ctx_error(&p, "bad tls13_ciphersuites 'NOPE': no cipher match");

    p = policy();
    p.cert_file = pki.client_cert;
    expect_ctx_error(&p, "a client certificate needs both cert_file and key_file");
    p.key_file = pki.other_key_file; /* the server's key, not the client's */
    expect_ctx_error(&p, "client key does not match certificate");
    p.key_file = "/nonexistent/client.key";
    expect_ctx_error(&p,
                     "cannot read client key /nonexistent/client.key: No such file or directory");
    p.cert_file = "/nonexistent/client.pem";
    expect_ctx_error(&p, "cannot read client certificate /nonexistent/client.pem: No such file or "
                         "directory");

    p = policy();
    p.pins = bad_pins;
    p.npins = 1;
    expect_ctx_error(&p, "bad pin 'zzz': want the SHA-256 of a SubjectPublicKeyInfo as base64 "
                         "(optionally sha256//...) or 64 hex digits");
    p.pins = prefixed_hex; /* the sha256// prefix means base64 */
    CHECK(tls_ctx_new(&p, NULL, 0) == NULL);

    /* The system store loads when no CA is named. */
    p = policy();
    p.ca_file = NULL;
    {
        struct tls_ctx *ctx = ctx_or_die(&p);
        CHECK_INT(tls_ctx_insecure(ctx), 0);
        tls_ctx_free(ctx);
    }
}

static int64_t cert_not_after(X509 *x)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm);
    return (int64_t)timegm(&tm);
}

/* A full handshake, the facts, a round trip, then a resumed reconnect. */
static void test_good(int max_version)
{
    struct tls_policy p = policy();
    struct tls_ctx *ctx = ctx_or_die(&p);
    struct srv_opts o = {.cert = pki.good, .key = pki.key, .max = max_version};
    SSL_CTX *sctx = srv_ctx(&o);
    struct link l;
    const struct tls_facts *f;
    struct tls_facts copy;
    unsigned char buf[256];
    enum tls_status st;
    size_t n;
    int tls13 = max_version != TLS1_2_VERSION;

    link_open(&l, ctx, sctx);
    CHECK(tls_conn_facts(l.c) == NULL);
    CHECK_INT(run_handshake(&l), TLS_OK);
    CHECK(l.sdone);
    CHECK_INT(tls_conn_handshake(l.c), TLS_OK); /* idempotent */
    f = tls_conn_facts(l.c);
    CHECK(f != NULL);
    if (f) {
        copy = *f; /* plain data */
        CHECK_STR(copy.protocol, tls13 ? "TLSv1.3" : "TLSv1.2");
        /* The client prefers AES-128-GCM for TLS 1.3 (tls.c: cheapest per byte). */
        CHECK_STR(copy.cipher, tls13 ? "TLS_AES_128_GCM_SHA256" : "ECDHE-ECDSA-AES128-GCM-SHA256");
        CHECK_STR(copy.group, "x25519");
        CHECK_STR(copy.verify, "ok");
        CHECK_INT(copy.verify_code, 0);
        CHECK_INT(copy.verify_enabled, 1);
        CHECK_STR(copy.subject, "CN=mx.test,O=ringmail test");
        CHECK_STR(copy.issuer, "CN=ringmail test CA,O=ringmail test");
        CHECK_INT(copy.not_after, (int64_t)pki.base + 10 * DAY);
        CHECK_INT(copy.not_after, cert_not_after(pki.good));
        CHECK(copy.handshake_us > 0 && copy.handshake_us < 10 * 1000000);
        CHECK_INT(copy.resumed, 0);
        CHECK_INT(copy.ktls_tx, 0); /* no CONFIG_TLS here */
        CHECK_INT(copy.pinned, 0);
        CHECK_INT(copy.key_updates, 0);
    }
    CHECK_INT(tls_conn_ktls_tx(l.c), 0);
    CHECK_INT(tls_conn_key_stale(l.c), 0);
    CHECK_STR(SSL_get_servername(l.s, TLSEXT_NAMETYPE_host_name), "mx.test");

    /* Round trip; reading first also takes in the 1.3 session tickets. */
    server_send(&l, "220 hello\r\n");
    n = client_recv(&l, buf, 11, &st);
    CHECK_MEM(buf, n, "220 hello\r\n", 11);
    CHECK_INT(encrypt1(l.c, "EHLO me\r\n", 9), 0);
    CHECK(tls_conn_pending_len(l.c) > 9);
    n = server_recv(&l, buf, 9);
    CHECK_MEM(buf, n, "EHLO me\r\n", 9);
    CHECK_INT(tls_conn_pending_len(l.c), 0);
    n = client_recv(&l, buf, sizeof(buf), &st);
    CHECK_INT(n, 0);
    CHECK_INT(st, TLS_WANT_READ);
    link_close(&l);

    /* Reconnect with the same ctx: the kept session resumes. */
    link_open(&l, ctx, sctx);
    CHECK_INT(run_handshake(&l), TLS_OK);
    f = tls_conn_facts(l.c);
    CHECK(f && f->resumed == 1);
    CHECK(f && strcmp(f->subject, "CN=mx.test,O=ringmail test") == 0);
    CHECK(f && strcmp(f->verify, "ok") == 0);
    CHECK(f && f->not_after == (int64_t)pki.base + 10 * DAY);
    server_send(&l, "250 ok\r\n");
    n = client_recv(&l, buf, 8, &st);
    CHECK_MEM(buf, n, "250 ok\r\n", 8);
    link_close(&l);

    SSL_CTX_free(sctx);
    tls_ctx_free(ctx);
}

static void test_bad_certs(void)
{
    static const struct {
        X509 **cert;
        X509 **chain;
        const char *why;
    } cases[] = {
        {&pki.expired, NULL, "certificate has expired"},
        {&pki.notyet, NULL, "certificate is not yet valid"},
        {&pki.wronghost, NULL, "hostname mismatch"},
        {&pki.selfsigned, NULL, "self-signed certificate"},
        {&pki.rogue_leaf, NULL, "unable to get local issuer certificate"},
        {&pki.rogue_leaf, &pki.rogue_ca, "self-signed certificate in certificate chain"},
        {&pki.inter_leaf, NULL, "unable to get local issuer certificate"},
    };
    size_t i;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tls_policy p = policy();
        struct srv_opts o = {.cert = *cases[i].cert, .key = pki.key};
        enum tls_err err;
        char detail[TLS_DETAIL_MAX];
        int v;
        o.chain = cases[i].chain ? *cases[i].chain : NULL;
        for (v = 0; v < 2; v++) {
            o.max = v ? TLS1_2_VERSION : 0;
            CHECK_INT(try_handshake(&p, &o, &err, detail, sizeof(detail)), TLS_ERROR);
            CHECK_INT(err, TLS_ERR_CERT_VERIFY);
            CHECK_STR(detail, cases[i].why);
        }
    }
    /* The same leaf with its intermediate sent along verifies. */
    {
        struct tls_policy p = policy();
        struct srv_opts o = {.cert = pki.inter_leaf, .key = pki.key, .chain = pki.inter};
        enum tls_err err;
        char detail[TLS_DETAIL_MAX];
        CHECK_INT(try_handshake(&p, &o, &err, detail, sizeof(detail)), TLS_OK);
        CHECK_INT(err, TLS_ERR_NONE);
    }
}

static void test_versions_and_ciphers(void)
{
    struct tls_policy p = policy();
    enum tls_err err;
    char detail[TLS_DETAIL_MAX];

    /* A TLS 1.0/1.1-only server refuses our ClientHello. */
    {
        struct srv_opts o = {.cert = pki.good,
                             .key = pki.key,
                             .min = TLS1_VERSION,
                             .max = TLS1_1_VERSION,
                             .ciphers = "DEFAULT:@SECLEVEL=0"};
        CHECK_INT(try_handshake(&p, &o, &err, detail, sizeof(detail)), TLS_ERROR);
        CHECK_INT(err, TLS_ERR_PROTOCOL_VERSION);
        CHECK_STR(detail, "tlsv1 alert protocol version");
    }
    /* A TLS 1.2 server with only a non-forward-secret CBC suite. */
    {
        struct srv_opts o = {.cert = pki.rsa_leaf,
                             .key = pki.rsa_key,
                             .max = TLS1_2_VERSION,
                             .ciphers = "AES128-SHA"};
        CHECK_INT(try_handshake(&p, &o, &err, detail, sizeof(detail)), TLS_ERROR);
        CHECK_INT(err, TLS_ERR_HANDSHAKE);
        CHECK_STR(detail, "sslv3 alert handshake failure");
    }
    /* min_version 1.3 against a 1.2-only server. */
    {
        struct srv_opts o = {.cert = pki.good, .key = pki.key, .max = TLS1_2_VERSION};
        p.min_version = "1.3";
        CHECK_INT(try_handshake(&p, &o, &err, detail, sizeof(detail)), TLS_ERROR);
        CHECK_INT(err, TLS_ERR_PROTOCOL_VERSION);
        CHECK_STR(detail, "tlsv1 alert protocol version");
        p.min_version = NULL;
    }
    /* TLS 1.2 DHE: the group comes from the server's ephemeral key. */
    {
        struct tls_ctx *ctx = ctx_or_die(&p);
        struct srv_opts o = {.cert = pki.rsa_leaf,
                             .key = pki.rsa_key,
                             .max = TLS1_2_VERSION,
                             .ciphers = "DHE-RSA-AES128-GCM-SHA256"};
        SSL_CTX *sctx = srv_ctx(&o);
        struct link l;
        link_open(&l, ctx, sctx);
        CHECK_INT(run_handshake(&l), TLS_OK);
        if (tls_conn_facts(l.c)) {
            CHECK_STR(tls_conn_facts(l.c)->cipher, "DHE-RSA-AES128-GCM-SHA256");
            CHECK_STR(tls_conn_facts(l.c)->group, "dh2048");
        }
        link_close(&l);
        SSL_CTX_free(sctx);
        tls_ctx_free(ctx);
    }
    /* min_version 1.3 and a chosen suite against a modern server. */
    {
        struct srv_opts o = {.cert = pki.good, .key = pki.key};
        struct tls_ctx *ctx;
        SSL_CTX *sctx = srv_ctx(&o);
        struct link l;
        p.min_version = "1.3";
        p.tls13_ciphersuites = "TLS_CHACHA20_POLY1305_SHA256";
        ctx = ctx_or_die(&p);
        link_open(&l, ctx, sctx);
        CHECK_INT(run_handshake(&l), TLS_OK);
        if (tls_conn_facts(l.c))
            CHECK_STR(tls_conn_facts(l.c)->cipher, "TLS_CHACHA20_POLY1305_SHA256");
        link_close(&l);
        SSL_CTX_free(sctx);
        tls_ctx_free(ctx);
    }
}

static void test_pins(void)
{
    char leaf_b64[48], leaf_hex[72], ca_b64[48], ca_hex[72], inter_b64[48], inter_hex[72];
    char prefixed[64], colons[100];
    const char *pins[3];
    struct tls_policy p = policy();
    struct srv_opts o = {.cert = pki.good, .key = pki.key};
    enum tls_err err;
    char detail[TLS_DETAIL_MAX];
    int i;

    spki_pin(pki.good, leaf_b64, leaf_hex);
    spki_pin(pki.ca, ca_b64, ca_hex);
    spki_pin(pki.inter, inter_b64, inter_hex);
    snprintf(prefixed, sizeof(prefixed), "sha256//%s", leaf_b64);
    for (i = 0; i < 32; i++)
        snprintf(colons + 3 * i, 4, "%.2s%s", leaf_hex + 2 * i, i < 31 ? ":" : "");

    p.pins = pins;
    p.npins = 1;
    pins[0] = leaf_b64;
    CHECK_INT(try_handshake(&p, &o, &err, detail, sizeof(detail)), TLS_OK);
    pins[0] = prefixed;
    CHECK_INT(try_handshake(&p, &o, &err, detail, sizeof(detail)), TLS_OK);
    pins[0] = colons;
    CHECK_INT(try_handshake(&p, &o, &err, detail, sizeof(detail)), TLS_OK);
    /* A pin on the root of the verified chain (hex), after a wrong one. */
    pins[0] = inter_b64;
    pins[1] = ca_hex;
    p.npins = 2;
    CHECK_INT(try_handshake(&p, &o, &err, detail, sizeof(detail)), TLS_OK);
    /* No certificate matches: a verified chain is not enough. */
    p.npins = 1;
    CHECK_INT(try_handshake(&p, &o, &err, detail, sizeof(detail)), TLS_ERROR);
    CHECK_INT(err, TLS_ERR_PIN_MISMATCH);
    CHECK_INT(tls_err_class(err), TLS_ERR_CERT_VERIFY);
    CHECK_STR(detail, "no certificate matches the configured SPKI pins");
    /* The intermediate of a verified chain counts... */
    o.cert = pki.inter_leaf;
    o.chain = pki.inter;
    CHECK_INT(try_handshake(&p, &o, &err, detail, sizeof(detail)), TLS_OK);
    /* ...but with verification off only the leaf does: anyone can send a
     * copy of the intermediate. */
    p.insecure_no_verify = 1;
    CHECK_INT(try_handshake(&p, &o, &err, detail, sizeof(detail)), TLS_ERROR);
    CHECK_INT(err, TLS_ERR_PIN_MISMATCH);

    /* Verification off, the leaf pinned: a self-signed server is trusted by
     * its pin, and the ctx is not insecure. */
    {
        struct tls_ctx *ctx;
        SSL_CTX *sctx;
        struct link l;
        struct srv_opts so = {.cert = pki.selfsigned, .key = pki.key};
        pins[0] = leaf_b64;
        ctx = ctx_or_die(&p);
        CHECK_INT(tls_ctx_insecure(ctx), 0);
        sctx = srv_ctx(&so);
        link_open(&l, ctx, sctx);
        CHECK_INT(run_handshake(&l), TLS_OK);
        if (tls_conn_facts(l.c)) {
            CHECK_INT(tls_conn_facts(l.c)->pinned, 1);
            CHECK_STR(tls_conn_facts(l.c)->verify, "disabled");
        }
        link_close(&l);
        SSL_CTX_free(sctx);
        tls_ctx_free(ctx);
    }
    /* A pinned session resumes without a second pin check. */
    {
        struct tls_ctx *ctx;
        SSL_CTX *sctx;
        struct link l;
        unsigned char buf[16];
        enum tls_status st;
        struct srv_opts so = {.cert = pki.good, .key = pki.key};
        p = policy();
        p.pins = pins;
        p.npins = 1;
        pins[0] = ca_b64;
        ctx = ctx_or_die(&p);
        sctx = srv_ctx(&so);
        link_open(&l, ctx, sctx);
        CHECK_INT(run_handshake(&l), TLS_OK);
        client_recv(&l, buf, sizeof(buf), &st); /* the tickets */
        link_close(&l);
        link_open(&l, ctx, sctx);
        CHECK_INT(run_handshake(&l), TLS_OK);
        CHECK(tls_conn_facts(l.c) && tls_conn_facts(l.c)->resumed == 1);
        CHECK(tls_conn_facts(l.c) && tls_conn_facts(l.c)->pinned == 1);
        link_close(&l);
        SSL_CTX_free(sctx);
        tls_ctx_free(ctx);
    }
    /* A conn that fails its pins leaves no session behind (TLS 1.2 hands
     * the session over before the check). */
    {
        struct tls_ctx *ctx;
        SSL_CTX *sctx;
        struct link l;
        struct srv_opts so = {.cert = pki.good, .key = pki.key, .max = TLS1_2_VERSION};
        pins[0] = inter_b64;
        ctx = ctx_or_die(&p);
        sctx = srv_ctx(&so);
        for (i = 0; i < 2; i++) {
            link_open(&l, ctx, sctx);
            CHECK_INT(run_handshake(&l), TLS_ERROR);
            CHECK_INT(tls_conn_error(l.c, NULL), TLS_ERR_PIN_MISMATCH);
            link_close(&l);
        }
        SSL_CTX_free(sctx);
        tls_ctx_free(ctx);
    }
}

static void test_insecure(void)
{
    struct tls_policy p = policy();
    struct srv_opts o = {.cert = pki.selfsigned, .key = pki.key};
    SSL_CTX *sctx = srv_ctx(&o);
    struct tls_ctx *ctx;
    struct link l;
    const struct tls_facts *f;

    p.insecure_no_verify = 1;
    p.servername = NULL;
    p.ca_file = NULL;
    ctx = ctx_or_die(&p);
    CHECK_INT(tls_ctx_insecure(ctx), 1);
    link_open(&l, ctx, sctx);
    CHECK_INT(run_handshake(&l), TLS_OK);
    f = tls_conn_facts(l.c);
    CHECK(f != NULL);
    if (f) {
        CHECK_STR(f->verify, "disabled");
        CHECK_INT(f->verify_enabled, 0);
        CHECK_INT(f->verify_code, X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT);
        CHECK_STR(f->subject, "CN=mx.test,O=ringmail test");
    }
    CHECK(SSL_get_servername(l.s, TLSEXT_NAMETYPE_host_name) == NULL);
    link_close(&l);
    SSL_CTX_free(sctx);
    tls_ctx_free(ctx);
}

static void test_ip_servername(void)
{
    struct tls_policy p = policy();
    struct srv_opts o = {.cert = pki.ip_leaf, .key = pki.key};
    enum tls_err err;
    char detail[TLS_DETAIL_MAX];

    p.servername = "127.0.0.1";
    CHECK_INT(try_handshake(&p, &o, &err, detail, sizeof(detail)), TLS_OK);
    p.servername = "127.0.0.2";
    CHECK_INT(try_handshake(&p, &o, &err, detail, sizeof(detail)), TLS_ERROR);
    CHECK_INT(err, TLS_ERR_CERT_VERIFY);
    CHECK_STR(detail, "IP address mismatch");
    /* A name is never matched against an IP SAN. */
    p.servername = "mx.test";
    CHECK_INT(try_handshake(&p, &o, &err, detail, sizeof(detail)), TLS_ERROR);
    CHECK_STR(detail, "hostname mismatch");
}

static void test_client_cert(void)
{
    struct tls_policy p = policy();
    struct srv_opts o = {.cert = pki.good, .key = pki.key, .client_ca = pki.ca};
    SSL_CTX *sctx = srv_ctx(&o);
    struct tls_ctx *ctx;
    struct link l;
    unsigned char buf[16];
    enum tls_status st;

    p.cert_file = pki.client_cert;
    p.key_file = pki.client_key;
    ctx = ctx_or_die(&p);
    link_open(&l, ctx, sctx);
    CHECK_INT(run_handshake(&l), TLS_OK);
    CHECK(l.sdone);
    CHECK(SSL_get0_peer_certificate(l.s) != NULL);
    link_close(&l);
    tls_ctx_free(ctx);

    /* Without one, a TLS 1.3 server refuses after our Finished: the refusal
     * arrives as an alert on the first read. */
    ctx = ctx_or_die(&(struct tls_policy){.servername = "mx.test", .ca_file = pki.ca_file});
    link_open(&l, ctx, sctx);
    CHECK_INT(run_handshake(&l), TLS_OK);
    CHECK(l.serr);
    CHECK_INT(client_recv(&l, buf, sizeof(buf), &st), 0);
    CHECK_INT(st, TLS_ERROR);
    CHECK_INT(tls_conn_error(l.c, NULL), TLS_ERR_PROTOCOL);
    {
        const char *d;
        tls_conn_error(l.c, &d);
        CHECK_STR(d, "tlsv13 alert certificate required");
    }
    CHECK_INT(encrypt1(l.c, "x", 1), -1); /* a failed conn stays failed */
    link_close(&l);
    tls_ctx_free(ctx);
    SSL_CTX_free(sctx);
}

/* kTLS off: plaintext in, ciphertext queued, byte-exact at the server. */
static void test_data(void)
{
    struct tls_policy p = policy();
    struct srv_opts o = {.cert = pki.good, .key = pki.key};
    SSL_CTX *sctx;
    struct tls_ctx *ctx;
    struct link l;
    size_t big = 1 << 20, i, n, total;
    unsigned char *body = malloc(big), *got = malloc(big + 64), small[10000];
    struct iovec iov[1000], piece[4];
    static const char cmd[] = "BDAT 1048576 LAST\r\n";
    const void *ptr;
    size_t len;

    if (!body || !got)
        die("malloc");
    p.tls13_ciphersuites = "TLS_AES_128_GCM_SHA256";
    ctx = ctx_or_die(&p);
    sctx = srv_ctx(&o);
    link_open(&l, ctx, sctx);
    CHECK_INT(run_handshake(&l), TLS_OK);
    for (i = 0; i < big; i++)
        body[i] = (unsigned char)(i * 131 + (i >> 9));

    /* A command and a 1 MB body in one call: full records, one piece. */
    iov[0].iov_base = (void *)cmd;
    iov[0].iov_len = sizeof(cmd) - 1;
    iov[1].iov_base = body;
    iov[1].iov_len = big;
    total = sizeof(cmd) - 1 + big;
    CHECK_INT(tls_conn_encrypt(l.c, iov, 2), 0);
    /* TLS 1.3 AES-GCM adds 22 bytes per record (header 5, type 1, tag 16). */
    CHECK_INT(tls_conn_pending_len(l.c), total + ((total + 16383) / 16384) * 22);
    CHECK_INT(tls_conn_pending_iov(l.c, 0, piece, 4), 1);
    n = server_recv(&l, got, total);
    CHECK_INT(n, total);
    CHECK_MEM(got, sizeof(cmd) - 1, cmd, sizeof(cmd) - 1);
    CHECK(n == total && memcmp(got + sizeof(cmd) - 1, body, big) == 0);
    CHECK_INT(tls_conn_pending_len(l.c), 0);

    /* 1000 small pieces in one call: one record. */
    for (i = 0; i < sizeof(small); i++)
        small[i] = (unsigned char)('a' + i % 26);
    for (i = 0; i < 1000; i++) {
        iov[i].iov_base = small + 10 * i;
        iov[i].iov_len = 10;
    }
    CHECK_INT(tls_conn_encrypt(l.c, iov, 1000), 0);
    CHECK_INT(tls_conn_pending_len(l.c), sizeof(small) + 22);
    n = server_recv(&l, got, sizeof(small));
    CHECK_MEM(got, n, small, sizeof(small));

    /* Many small writes, one call each, sent in between at random. */
    for (i = 0, total = 0; i < 2000; i++) {
        size_t k = 1 + (i * 7919) % 97;
        CHECK_INT(encrypt1(l.c, body + total, k), 0);
        total += k;
        if (i % 13 == 0)
            pump_out(&l);
    }
    n = server_recv(&l, got, total);
    CHECK_INT(n, total);
    CHECK(n == total && memcmp(got, body, total) == 0);

    /* A pointer handed out stays put while more is encrypted behind it,
     * and skip walks past bytes in flight. */
    CHECK_INT(encrypt1(l.c, "first", 5), 0);
    CHECK_INT(tls_conn_pending_out(l.c, &ptr, &len), 1);
    {
        unsigned char before[64];
        size_t first = len;
        memcpy(before, ptr, first < sizeof(before) ? first : sizeof(before));
        CHECK_INT(encrypt1(l.c, body, big), 0);
        CHECK_MEM(ptr, first < sizeof(before) ? first : sizeof(before), before,
                  first < sizeof(before) ? first : sizeof(before));
        CHECK_INT(tls_conn_pending_iov(l.c, 0, piece, 4), 2);
        CHECK(piece[0].iov_base == ptr && piece[0].iov_len == first);
        CHECK_INT(tls_conn_pending_iov(l.c, first, piece, 4), 1);
        CHECK_INT(tls_conn_pending_iov(l.c, first + 10, piece, 4), 1);
        CHECK_INT(piece[0].iov_len, tls_conn_pending_len(l.c) - first - 10);
        CHECK_INT(tls_conn_pending_iov(l.c, tls_conn_pending_len(l.c), piece, 4), 0);
    }
    n = server_recv(&l, got, 5 + big);
    CHECK_INT(n, 5 + big);
    CHECK(n == 5 + big && memcmp(got, "first", 5) == 0 && memcmp(got + 5, body, big) == 0);
    CHECK_INT(tls_conn_pending_out(l.c, &ptr, &len), 0);

    /* The server's records split at every byte still read back whole. */
    {
        unsigned char wire[256], text[64];
        ssize_t w;
        size_t have = 0, k;
        enum tls_status st;
        server_send(&l, "250-first\r\n250 second\r\n");
        w = recv(l.cfd, wire, sizeof(wire), MSG_DONTWAIT);
        CHECK(w > 0);
        for (i = 0; w > 0 && i < (size_t)w; i++) {
            CHECK_INT(tls_conn_feed(l.c, wire + i, 1), 0);
            st = tls_conn_read(l.c, text + have, sizeof(text) - have, &k);
            if (st == TLS_OK)
                have += k;
            else
                CHECK_INT(st, TLS_WANT_READ);
        }
        CHECK_MEM(text, have, "250-first\r\n250 second\r\n", 23);
    }
    link_close(&l);
    SSL_CTX_free(sctx);
    tls_ctx_free(ctx);
    free(body);
    free(got);
}

static int server_key_updates;

static void server_msg_cb(int write_p, int version, int content_type, const void *buf, size_t len,
                          SSL *ssl, void *arg)
{
    (void)version;
    (void)ssl;
    (void)arg;
    if (!write_p && content_type == SSL3_RT_HANDSHAKE && len > 0 &&
        ((const unsigned char *)buf)[0] == SSL3_MT_KEY_UPDATE)
        server_key_updates++;
}

/* A server-initiated KeyUpdate with kTLS off: OpenSSL handles it, the
 * tripwire counts it, no stale mark, data flows both ways. */
static void test_key_update(void)
{
    struct tls_policy p = policy();
    struct srv_opts o = {.cert = pki.good, .key = pki.key};
    SSL_CTX *sctx = srv_ctx(&o);
    struct tls_ctx *ctx = ctx_or_die(&p);
    struct link l;
    unsigned char buf[64];
    enum tls_status st;
    size_t n;

    link_open(&l, ctx, sctx);
    CHECK_INT(run_handshake(&l), TLS_OK);
    SSL_set_msg_callback(l.s, server_msg_cb);
    server_key_updates = 0;
    CHECK_INT(SSL_key_update(l.s, SSL_KEY_UPDATE_REQUESTED), 1);
    server_send(&l, "220 rekeyed\r\n");
    n = client_recv(&l, buf, 13, &st);
    CHECK_MEM(buf, n, "220 rekeyed\r\n", 13);
    CHECK(tls_conn_facts(l.c) && tls_conn_facts(l.c)->key_updates == 1);
    CHECK_INT(tls_conn_key_stale(l.c), 0);
    /* Our answer is queued by the read itself, before any data of ours. */
    CHECK(tls_conn_pending_len(l.c) > 0);
    CHECK_INT(server_recv(&l, buf, 1), 0);
    CHECK_INT(server_key_updates, 1);
    CHECK_INT(SSL_get_key_update_type(l.s), SSL_KEY_UPDATE_NONE);
    CHECK_INT(encrypt1(l.c, "NOOP\r\n", 6), 0);
    n = server_recv(&l, buf, 6);
    CHECK_MEM(buf, n, "NOOP\r\n", 6);
    CHECK_INT(server_key_updates, 1);
    server_send(&l, "250 ok\r\n");
    n = client_recv(&l, buf, 8, &st);
    CHECK_MEM(buf, n, "250 ok\r\n", 8);
    /* An unrequested one (the server rotates only its own key). */
    CHECK_INT(SSL_key_update(l.s, SSL_KEY_UPDATE_NOT_REQUESTED), 1);
    server_send(&l, "250 again\r\n");
    n = client_recv(&l, buf, 11, &st);
    CHECK_MEM(buf, n, "250 again\r\n", 11);
    CHECK(tls_conn_facts(l.c) && tls_conn_facts(l.c)->key_updates == 2);
    CHECK_INT(tls_conn_key_stale(l.c), 0);
    CHECK_INT(tls_conn_pending_len(l.c), 0); /* nothing to answer */
    CHECK_INT(encrypt1(l.c, "QUIT\r\n", 6), 0);
    n = server_recv(&l, buf, 6);
    CHECK_MEM(buf, n, "QUIT\r\n", 6);
    CHECK_INT(server_key_updates, 1);
    link_close(&l);
    SSL_CTX_free(sctx);
    tls_ctx_free(ctx);
}

/* A TLS 1.2 server asking to renegotiate is refused (a no_renegotiation
 * alert goes out), and the ctx outlives the caller's reference. */
static void test_renegotiation_and_ctx_lifetime(void)
{
    struct tls_policy p = policy();
    struct srv_opts o = {.cert = pki.good, .key = pki.key, .max = TLS1_2_VERSION};
    SSL_CTX *sctx = srv_ctx(&o);
    struct tls_ctx *ctx = ctx_or_die(&p);
    struct link l;
    unsigned char buf[16];
    enum tls_status st;
    int r;

    link_open(&l, ctx, sctx);
    tls_ctx_free(ctx); /* the conn holds its own reference */
    CHECK_INT(run_handshake(&l), TLS_OK);
    CHECK_INT(SSL_renegotiate(l.s), 1);
    CHECK_INT(SSL_do_handshake(l.s), 1); /* HelloRequest sent */
    CHECK_INT(client_recv(&l, buf, sizeof(buf), &st), 0);
    CHECK_INT(st, TLS_WANT_READ);
    CHECK(tls_conn_pending_len(l.c) > 0); /* the alert */
    pump_out(&l);
    r = SSL_read(l.s, buf, sizeof(buf));
    CHECK(r <= 0 && SSL_get_error(l.s, r) == SSL_ERROR_SSL);
    CHECK_INT(ERR_GET_REASON(ERR_peek_error()), SSL_R_NO_RENEGOTIATION);
    ERR_clear_error();
    CHECK_INT(encrypt1(l.c, "QUIT\r\n", 6), 0); /* still ours to use */
    link_close(&l);
    SSL_CTX_free(sctx);
}

static void test_shutdown(void)
{
    struct tls_policy p = policy();
    struct srv_opts o = {.cert = pki.good, .key = pki.key};
    SSL_CTX *sctx = srv_ctx(&o);
    struct tls_ctx *ctx = ctx_or_die(&p);
    struct link l;
    unsigned char buf[16];
    enum tls_status st;
    size_t n = 0;
    int r;
    const char *d;

    /* Ours reaches the server as close_notify. */
    link_open(&l, ctx, sctx);
    CHECK_INT(run_handshake(&l), TLS_OK);
    CHECK_INT(tls_conn_shutdown(l.c), TLS_OK);
    CHECK(tls_conn_pending_len(l.c) > 0);
    CHECK_INT(tls_conn_shutdown(l.c), TLS_OK); /* once is enough */
    pump_out(&l);
    CHECK_INT(tls_conn_pending_len(l.c), 0);
    r = SSL_read_ex(l.s, buf, sizeof(buf), &n);
    CHECK_INT(r, 0);
    CHECK_INT(SSL_get_error(l.s, r), SSL_ERROR_ZERO_RETURN);
    ERR_clear_error();
    CHECK_INT(encrypt1(l.c, "x", 1), -1);
    CHECK_INT(tls_conn_error(l.c, &d), TLS_ERR_LOCAL);
    CHECK_STR(d, "encrypt after shutdown");
    link_close(&l);

    /* The server's close_notify is a clean close. */
    link_open(&l, ctx, sctx);
    CHECK_INT(run_handshake(&l), TLS_OK);
    SSL_shutdown(l.s);
    CHECK_INT(client_recv(&l, buf, sizeof(buf), &st), 0);
    CHECK_INT(st, TLS_CLOSED);
    CHECK_INT(tls_conn_read(l.c, buf, sizeof(buf), &n), TLS_CLOSED);
    link_close(&l);

    /* EOF without close_notify is not. */
    link_open(&l, ctx, sctx);
    CHECK_INT(run_handshake(&l), TLS_OK);
    server_send(&l, "221 bye\r\n");
    close(l.sfd);
    l.sfd = -1;
    CHECK_INT(client_recv(&l, buf, sizeof(buf), &st), 9);
    CHECK_INT(st, TLS_ERROR);
    CHECK_INT(tls_conn_error(l.c, &d), TLS_ERR_PEER_CLOSED);
    CHECK_STR(d, "peer closed the connection without close_notify");
    CHECK_INT(tls_conn_shutdown(l.c), TLS_ERROR);
    link_close(&l);

    /* EOF during the handshake (the server drains first: closing a unix
     * socket with unread bytes resets rather than ends the stream). */
    link_open(&l, ctx, sctx);
    CHECK_INT(tls_conn_handshake(l.c), TLS_WANT_READ);
    CHECK(recv(l.sfd, buf, sizeof(buf), 0) > 0);
    while (recv(l.sfd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
        ;
    close(l.sfd);
    l.sfd = -1;
    pump_in(&l);
    CHECK_INT(tls_conn_handshake(l.c), TLS_ERROR);
    CHECK_INT(tls_conn_error(l.c, &d), TLS_ERR_PEER_CLOSED);
    CHECK_STR(d, "peer closed the connection during the handshake");
    link_close(&l);

    /* Not TLS at all: a plaintext SMTP reply where a ServerHello belongs. */
    link_open(&l, ctx, sctx);
    CHECK_INT(tls_conn_handshake(l.c), TLS_WANT_READ);
    CHECK_INT(tls_conn_feed(l.c, "220 mx.test ESMTP\r\n", 19), 0);
    CHECK_INT(tls_conn_handshake(l.c), TLS_ERROR);
    CHECK_INT(tls_conn_error(l.c, &d), TLS_ERR_HANDSHAKE);
    CHECK_STR(d, "wrong version number");
    CHECK_INT(tls_conn_handshake(l.c), TLS_ERROR); /* stays failed */
    link_close(&l);

    /* The socket closed under a handshake write: an I/O error. */
    link_open(&l, ctx, sctx);
    close(l.sfd);
    l.sfd = -1;
    CHECK_INT(tls_conn_handshake(l.c), TLS_ERROR);
    CHECK_INT(tls_conn_error(l.c, &d), TLS_ERR_IO);
    CHECK_STR(d, "Broken pipe");
    link_close(&l);

    SSL_CTX_free(sctx);
    tls_ctx_free(ctx);
}

/* The socket is full when the ClientHello goes out: WANT_WRITE, then on. */
static void test_want_write(void)
{
    struct tls_policy p = policy();
    struct srv_opts o = {.cert = pki.good, .key = pki.key};
    SSL_CTX *sctx = srv_ctx(&o);
    struct tls_ctx *ctx = ctx_or_die(&p);
    struct link l;
    static unsigned char junk[4096];
    size_t filled = 0, drained = 0;
    ssize_t n;

    link_open(&l, ctx, sctx);
    while ((n = send(l.cfd, junk, sizeof(junk), MSG_DONTWAIT | MSG_NOSIGNAL)) > 0)
        filled += (size_t)n;
    CHECK(filled > 0);
    CHECK_INT(tls_conn_handshake(l.c), TLS_WANT_WRITE);
    CHECK_INT(tls_conn_handshake(l.c), TLS_WANT_WRITE);
    while (drained < filled) {
        unsigned char sink[4096];
        size_t want = filled - drained < sizeof(sink) ? filled - drained : sizeof(sink);
        n = recv(l.sfd, sink, want, MSG_DONTWAIT);
        if (n <= 0)
            break;
        drained += (size_t)n;
    }
    CHECK_INT(drained, filled);
    l.cst = TLS_WANT_WRITE;
    CHECK_INT(run_handshake(&l), TLS_OK);
    link_close(&l);
    SSL_CTX_free(sctx);
    tls_ctx_free(ctx);
}

static size_t heap_used(void)
{
#ifdef HAVE_ASAN
    return __sanitizer_get_current_allocated_bytes();
#else
    return mallinfo2().uordblks;
#endif
}

#define IDLE_N 100

/* Heap bytes held by one idle client connection after its handshake. */
static long idle_cost(int max_version, int resume)
{
    static struct link links[IDLE_N];
    struct tls_policy p = policy();
    struct srv_opts o = {
        .cert = pki.good, .key = pki.key, .max = max_version, .no_resume = !resume};
    SSL_CTX *sctx = srv_ctx(&o);
    struct tls_ctx *ctx = ctx_or_die(&p);
    unsigned char buf[64];
    enum tls_status st;
    size_t before, after;
    int i, ok = 1;

    /* Warm up: OpenSSL's lazily built tables and the ctx's session. */
    for (i = 0; i < 2; i++) {
        link_open(&links[0], ctx, sctx);
        ok &= run_handshake(&links[0]) == TLS_OK;
        client_recv(&links[0], buf, sizeof(buf), &st);
        link_close(&links[0]);
    }
    before = heap_used();
    for (i = 0; i < IDLE_N; i++) {
        link_open(&links[i], ctx, sctx);
        ok &= run_handshake(&links[i]) == TLS_OK;
        client_recv(&links[i], buf, sizeof(buf), &st);
        /* Only the client side stays: the server's part is not ours. */
        SSL_free(links[i].s);
        links[i].s = NULL;
        close(links[i].sfd);
        links[i].sfd = -1;
    }
    after = heap_used();
    CHECK(ok);
    for (i = 0; i < IDLE_N; i++)
        link_close(&links[i]);
    SSL_CTX_free(sctx);
    tls_ctx_free(ctx);
    return ((long)after - (long)before) / IDLE_N;
}

static void test_idle_memory(void)
{
    long full13 = idle_cost(0, 0), res13 = idle_cost(0, 1), full12 = idle_cost(TLS1_2_VERSION, 0);
    printf("idle client connection heap (N=%d%s): TLS 1.3 full %ld B, TLS 1.3 resumed %ld B, "
           "TLS 1.2 full %ld B\n",
           IDLE_N,
#ifdef HAVE_ASAN
           ", ASan allocator",
#else
           ", glibc mallinfo2",
#endif
           full13, res13, full12);
    CHECK(full13 > 0 && full13 <= 64 * 1024);
    CHECK(res13 > 0 && res13 <= 64 * 1024);
    CHECK(full12 > 0 && full12 <= 64 * 1024);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A figure, not a test: kTLS-off encryption of 1 MB bursts against raw
 * AES-128-GCM on 16 KiB blocks (what `openssl speed -evp aes-128-gcm`
 * reports at its largest size). */
static void bench_encrypt(void)
{
    struct tls_policy p = policy();
    struct srv_opts o = {.cert = pki.good, .key = pki.key};
    SSL_CTX *sctx = srv_ctx(&o);
    struct tls_ctx *ctx;
    struct link l;
    size_t big = 1 << 20, off;
    int rounds = 64, r, outl;
    unsigned char *body = calloc(1, big), *out = malloc(16384 + 64), key[16] = {1}, iv[12] = {2};
    struct iovec v;
    EVP_CIPHER_CTX *e = EVP_CIPHER_CTX_new();
    double t0, t_tls, t_raw;

    if (!body || !out || !e)
        die("bench");
    p.tls13_ciphersuites = "TLS_AES_128_GCM_SHA256";
    ctx = ctx_or_die(&p);
    link_open(&l, ctx, sctx);
    CHECK_INT(run_handshake(&l), TLS_OK);
    v.iov_base = body;
    v.iov_len = big;
    t0 = now_s();
    for (r = 0; r < rounds; r++) {
        CHECK_INT(tls_conn_encrypt(l.c, &v, 1), 0);
        tls_conn_consume_out(l.c, tls_conn_pending_len(l.c));
    }
    t_tls = now_s() - t0;
    EVP_EncryptInit_ex(e, EVP_aes_128_gcm(), NULL, key, iv);
    t0 = now_s();
    for (r = 0; r < rounds; r++)
        for (off = 0; off < big; off += 16384)
            EVP_EncryptUpdate(e, out, &outl, body + off, 16384);
    t_raw = now_s() - t0;
    printf("kTLS-off encrypt, 1 MB bursts: %.0f MB/s; raw AES-128-GCM: %.0f MB/s; %.0f%%%s\n",
           rounds / t_tls, rounds / t_raw, 100.0 * t_raw / t_tls,
#ifdef HAVE_ASAN
           " (sanitizer build: not representative)"
#else
           ""
#endif
    );
    EVP_CIPHER_CTX_free(e);
    link_close(&l);
    SSL_CTX_free(sctx);
    tls_ctx_free(ctx);
    free(body);
    free(out);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* the socket BIO writes with write(2) */
    pki_make();
    test_names();
    test_ctx_errors();
    test_good(0);
    test_good(TLS1_2_VERSION);
    test_bad_certs();
    test_versions_and_ciphers();
    test_pins();
    test_insecure();
    test_ip_servername();
    test_client_cert();
    test_data();
    test_key_update();
    test_renegotiation_and_ctx_lifetime();
    test_shutdown();
    test_want_write();
    test_idle_memory();
    bench_encrypt();
    pki_free();
    return check_done();
}
