/*
 * probe_tls: the TLS side of `ringmail probe`. The verifying handshake that
 * records the facts, the enumeration of versions and weak cipher classes,
 * and the STARTTLS injection test. Each uses its own SSL_CTX: enumeration
 * needs security level 0 to even offer what it asks about, and that must
 * never leak into a context that anything else uses.
 */
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "probe.h"
#include "tls.h"

static const struct {
    const char *name;
    int version;         /* min = max = this */
    const char *ciphers; /* TLS <= 1.2 list; NULL: the default at level 0 */
} variants[PV_COUNT] = {
    [PV_TLS10] = {"TLSv1.0", TLS1_VERSION, NULL},
    [PV_TLS11] = {"TLSv1.1", TLS1_1_VERSION, NULL},
    [PV_TLS12] = {"TLSv1.2", TLS1_2_VERSION, NULL},
    [PV_TLS13] = {"TLSv1.3", TLS1_3_VERSION, NULL},
    [PV_CBC] = {"cbc", TLS1_2_VERSION,
                "ECDHE+AES:DHE+AES:RSA+AES:CAMELLIA:ARIA:!AESGCM:!AESCCM:!CHACHA20:!ARIAGCM:"
                "!aNULL:!eNULL:@SECLEVEL=0"},
    [PV_NONFS] = {"non-forward-secret", TLS1_2_VERSION, "kRSA:@SECLEVEL=0"},
    [PV_3DES] = {"3des", TLS1_2_VERSION, "3DES:@SECLEVEL=0"},
    [PV_RC4] = {"rc4", TLS1_2_VERSION, "RC4:@SECLEVEL=0"},
    [PV_NULL_ANON] = {"null-anonymous", TLS1_2_VERSION, "aNULL:eNULL:@SECLEVEL=0"},
    [PV_EXPORT] = {"export", TLS1_2_VERSION, "EXP:@SECLEVEL=0"},
};

const char *probe_variant_name(enum probe_variant v)
{
    return variants[v].name;
}

const char *probe_acc_name(enum probe_acc a)
{
    switch (a) {
    case PROBE_REFUSED:
        return "refused";
    case PROBE_ACCEPTED:
        return "accepted";
    case PROBE_UNAVAILABLE:
        return "not-testable";
    default:
        return "not-tested";
    }
}

static double ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static int is_ip(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static void name_text(const X509_NAME *n, char *out, size_t cap)
{
    BIO *b = BIO_new(BIO_s_mem());
    int len;

    out[0] = '\0';
    if (!b)
        return;
    X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253);
    len = BIO_read(b, out, (int)cap - 1);
    out[len > 0 ? len : 0] = '\0';
    BIO_free(b);
}

static const char *nid_name(int nid)
{
    const char *s = nid != NID_undef ? OBJ_nid2sn(nid) : NULL;
    return s ? s : "unknown";
}

/* The handshake signature scheme's family, as RFC 8446 names them. */
static const char *sig_type_name(int nid)
{
    switch (nid) {
    case EVP_PKEY_EC:
        return "ECDSA";
    case EVP_PKEY_RSA:
        return "RSA-PKCS1";
    case EVP_PKEY_RSA_PSS:
        return "RSA-PSS";
    case EVP_PKEY_ED25519:
        return "Ed25519";
    case EVP_PKEY_ED448:
        return "Ed448";
    default:
        return nid_name(nid);
    }
}

/* The negotiated cipher's class: AEAD, and forward secrecy (TLS 1.3
 * always; TLS 1.2 only with an ephemeral key exchange). */
static void cipher_class(const SSL *ssl, int *aead, int *fs)
{
    const SSL_CIPHER *ci = SSL_get_current_cipher(ssl);
    int kx = ci ? SSL_CIPHER_get_kx_nid(ci) : NID_undef;

    *aead = ci && SSL_CIPHER_is_aead(ci);
    *fs = kx == NID_kx_any || kx == NID_kx_ecdhe || kx == NID_kx_dhe || kx == NID_kx_ecdhe_psk ||
          kx == NID_kx_dhe_psk;
}

static void cert_facts(SSL *ssl, const char *name, struct probe_tls_facts *f)
{
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
    X509 *leaf = SSL_get1_peer_certificate(ssl);
    int i, day = 0, sec = 0, mdnid = NID_undef, pknid = NID_undef;
    EVP_PKEY *pk;

    f->verify_code = SSL_get_verify_result(ssl);
    snprintf(f->verify, sizeof(f->verify), "%s",
             f->verify_code == X509_V_OK ? "ok" : X509_verify_cert_error_string(f->verify_code));
    for (i = 0; chain && i < sk_X509_num(chain) && f->nchain < PROBE_CHAIN_MAX; i++, f->nchain++) {
        X509 *x = sk_X509_value(chain, i);
        name_text(X509_get_subject_name(x), f->subject[f->nchain], PROBE_TEXT);
        name_text(X509_get_issuer_name(x), f->issuer[f->nchain], PROBE_TEXT);
    }
    if (!leaf) {
        snprintf(f->verify, sizeof(f->verify), "no certificate");
        return;
    }
    /* Checked apart from the verify result so that the report says which
     * of chain and name failed, even when both did. */
    f->host_match = (is_ip(name) ? X509_check_ip_asc(leaf, name, 0)
                                 : X509_check_host(leaf, name, 0, 0, NULL)) == 1;
    if (ASN1_TIME_diff(&day, &sec, NULL, X509_get0_notAfter(leaf)))
        f->days_left = day;
    pk = X509_get0_pubkey(leaf);
    if (pk) {
        int id = EVP_PKEY_get_base_id(pk);
        snprintf(f->key_type, sizeof(f->key_type), "%s",
                 id == EVP_PKEY_RSA       ? "RSA"
                 : id == EVP_PKEY_EC      ? "EC"
                 : id == EVP_PKEY_ED25519 ? "Ed25519"
                 : id == EVP_PKEY_ED448   ? "Ed448"
                                          : nid_name(id));
        f->key_bits = EVP_PKEY_get_bits(pk);
    }
    snprintf(f->cert_sigalg, sizeof(f->cert_sigalg), "%s", nid_name(X509_get_signature_nid(leaf)));
    if (X509_get_signature_info(leaf, &mdnid, &pknid, NULL, NULL))
        snprintf(f->sig_hash, sizeof(f->sig_hash), "%s", nid_name(mdnid));
    X509_free(leaf);
}

static SSL_CTX *verifying_ctx(const struct probe_opts *o, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (!ctx)
        goto fail;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* The engine's floor (tls.c), so that the verdict is the engine's. */
    if (SSL_CTX_get_security_level(ctx) < TLS_MIN_SECURITY_LEVEL)
        SSL_CTX_set_security_level(ctx, TLS_MIN_SECURITY_LEVEL);
    /* Verification runs and records its result; the probe does not abort
     * on it, as the rest of the facts are worth having for a bad chain. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    if (o->ca ? SSL_CTX_load_verify_locations(ctx, o->ca, NULL) != 1
              : SSL_CTX_set_default_verify_paths(ctx) != 1)
        goto fail;
    SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS);
    return ctx;
fail:
    snprintf(err, errlen, "TLS context: %s", ERR_reason_error_string(ERR_get_error()));
    SSL_CTX_free(ctx);
    return NULL;
}

static void ssl_error(SSL *ssl, int ret, char *err, size_t errlen)
{
    unsigned long e = ERR_peek_last_error();
    long vr = SSL_get_verify_result(ssl);

    if (e)
        snprintf(err, errlen, "handshake: %s", ERR_reason_error_string(e));
    else if (SSL_get_error(ssl, ret) == SSL_ERROR_SYSCALL)
        snprintf(err, errlen, "handshake: connection closed or timed out");
    else
        snprintf(err, errlen, "handshake failed (verify: %s)", X509_verify_cert_error_string(vr));
    ERR_clear_error();
}

int probe_tls_main(struct probe_conn *c, const struct probe_opts *o, struct probe_tls_facts *f)
{
    const char *name = o->servername ? o->servername : o->host;
    SSL_CTX *ctx = verifying_ctx(o, f->error, sizeof(f->error));
    struct timespec t0;
    const unsigned char *ocsp = NULL;
    int ret, nid = NID_undef;

    if (!ctx)
        return -1;
    c->ssl = SSL_new(ctx);
    SSL_CTX_free(ctx); /* the SSL holds its own reference */
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1)
        return -1;
    if (!is_ip(name))
        SSL_set_tlsext_host_name(c->ssl, name);
    /* As the engine checks names: subjectAltName only, no CN fallback. */
    SSL_set_hostflags(c->ssl,
                      X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
    if (is_ip(name) ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), name) != 1
                    : SSL_set1_host(c->ssl, name) != 1)
        return -1;
    SSL_set_tlsext_status_type(c->ssl, TLSEXT_STATUSTYPE_ocsp);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ret = SSL_connect(c->ssl);
    f->handshake_ms = ms_since(&t0);
    if (ret != 1) {
        ssl_error(c->ssl, ret, f->error, sizeof(f->error));
        return -1;
    }
    f->done = 1;
    snprintf(f->protocol, sizeof(f->protocol), "%s", SSL_get_version(c->ssl));
    snprintf(f->cipher, sizeof(f->cipher), "%s", SSL_get_cipher_name(c->ssl));
    nid = SSL_get_negotiated_group(c->ssl);
    if (nid > 0) {
        const char *g = SSL_group_to_name(c->ssl, nid);
        snprintf(f->group, sizeof(f->group), "%s", g ? g : nid_name(nid));
    }
    if (SSL_get_peer_signature_type_nid(c->ssl, &nid)) {
        int md = NID_undef;
        SSL_get_peer_signature_nid(c->ssl, &md);
        snprintf(f->sigalg, sizeof(f->sigalg), "%s+%s", sig_type_name(nid), nid_name(md));
    }
    cipher_class(c->ssl, &f->aead, &f->forward_secret);
    cert_facts(c->ssl, name, f);
    f->ocsp_stapled = SSL_get_tlsext_status_ocsp_resp(c->ssl, &ocsp) > 0 && ocsp;
    f->ktls_tx = BIO_get_ktls_send(SSL_get_wbio(c->ssl)) == 1;
    f->ktls_rx = BIO_get_ktls_recv(SSL_get_rbio(c->ssl)) == 1;
    return 0;
}

/* Whether the class is what was really negotiated: a server-side cipher
 * list can still pick something else out of a broad client list. */
static int class_matches(enum probe_variant v, const SSL_CIPHER *ci)
{
    int cnid = SSL_CIPHER_get_cipher_nid(ci), kx = SSL_CIPHER_get_kx_nid(ci);
    const EVP_CIPHER *evp = cnid != NID_undef ? EVP_get_cipherbynid(cnid) : NULL;

    switch (v) {
    case PV_CBC:
        return evp && EVP_CIPHER_get_mode(evp) == EVP_CIPH_CBC_MODE;
    case PV_NONFS:
        return kx == NID_kx_rsa;
    case PV_3DES:
        return cnid == NID_des_ede3_cbc;
    case PV_RC4:
        return cnid == NID_rc4;
    case PV_NULL_ANON:
        return cnid == NID_undef || SSL_CIPHER_get_auth_nid(ci) == NID_auth_null;
    default:
        return 1;
    }
}

static void try_variant(const struct probe_opts *o, enum probe_variant v,
                        struct probe_variant_result *out)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    struct probe_conn c;
    char err[PROBE_TEXT];
    const char *name = o->servername ? o->servername : o->host;
    int ok;

    out->acc = PROBE_UNAVAILABLE;
    if (!ctx)
        return;
    SSL_CTX_set_min_proto_version(ctx, variants[v].version);
    SSL_CTX_set_max_proto_version(ctx, variants[v].version);
    /* Level 0: the old versions and weak suites are refused by this client
     * otherwise, and the question is what the server would accept. */
    ok = SSL_CTX_set_cipher_list(ctx, variants[v].ciphers ? variants[v].ciphers
                                                          : "DEFAULT:@SECLEVEL=0") == 1;
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    if (!ok) {
        snprintf(out->detail, sizeof(out->detail), "this OpenSSL has no such suites");
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return;
    }
    out->acc = PROBE_REFUSED;
    if (probe_conn_open(&c, o, err, sizeof(err)) < 0) {
        snprintf(out->detail, sizeof(out->detail), "%.120s", err);
        out->acc = PROBE_NOT_TESTED;
        SSL_CTX_free(ctx);
        return;
    }
    if (probe_to_tls(&c, o) < 0) {
        snprintf(out->detail, sizeof(out->detail), "STARTTLS failed on this connection");
        out->acc = PROBE_NOT_TESTED;
    } else if ((c.ssl = SSL_new(ctx)) && SSL_set_fd(c.ssl, c.fd) == 1) {
        if (!is_ip(name))
            SSL_set_tlsext_host_name(c.ssl, name);
        if (SSL_connect(c.ssl) == 1) {
            const SSL_CIPHER *ci = SSL_get_current_cipher(c.ssl);
            snprintf(out->cipher, sizeof(out->cipher), "%s", SSL_CIPHER_get_name(ci));
            if (SSL_version(c.ssl) == variants[v].version && class_matches(v, ci))
                out->acc = PROBE_ACCEPTED;
            else
                snprintf(out->detail, sizeof(out->detail), "negotiated %s %s instead",
                         SSL_get_version(c.ssl), out->cipher);
        } else {
            unsigned long e = ERR_peek_last_error();
            snprintf(out->detail, sizeof(out->detail), "%s",
                     e ? ERR_reason_error_string(e) : "handshake failed");
        }
        ERR_clear_error();
    }
    probe_conn_close(&c);
    SSL_CTX_free(ctx);
}

void probe_enumerate(const struct probe_opts *o, struct probe_result *r)
{
    int v;
    for (v = 0; v < PV_COUNT; v++)
        try_variant(o, (enum probe_variant)v, &r->v[v]);
}

/* CVE-2011-0411: STARTTLS and NOOP in one write. A server that buffers the
 * NOOP across the switch answers it inside TLS, where the client never sent
 * it; a man in the middle can use that to inject commands. */
void probe_injection(const struct probe_opts *o, struct probe_result *r)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    struct probe_conn c;
    char err[PROBE_TEXT], text[PROBE_TEXT], ehlo[300];
    int code;

    if (!ctx || probe_conn_open(&c, o, err, sizeof(err)) < 0) {
        snprintf(r->injection_detail, sizeof(r->injection_detail), "could not connect");
        SSL_CTX_free(ctx);
        return;
    }
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    snprintf(ehlo, sizeof(ehlo), "EHLO %s\r\n", probe_ehlo_name);
    if (probe_reply(&c, NULL, 0) != 220 || probe_send(&c, ehlo) < 0 ||
        probe_reply(&c, NULL, 0) != 250 || probe_send(&c, "STARTTLS\r\nNOOP\r\n") < 0 ||
        probe_reply(&c, NULL, 0) != 220) {
        snprintf(r->injection_detail, sizeof(r->injection_detail),
                 "STARTTLS did not answer 220 with NOOP pipelined");
        goto out;
    }
    c.in_len = 0; /* plaintext after the 220 is the other finding */
    c.ssl = SSL_new(ctx);
    if (!c.ssl || SSL_set_fd(c.ssl, c.fd) != 1 || SSL_connect(c.ssl) != 1) {
        snprintf(r->injection_detail, sizeof(r->injection_detail), "handshake failed");
        ERR_clear_error();
        goto out;
    }
    /* Nothing sent inside TLS yet: any reply now answers the NOOP. */
    c.timeout_ms = 1500;
    code = probe_reply(&c, text, sizeof(text));
    r->injectable = code > 0;
    if (code > 0)
        snprintf(r->injection_detail, sizeof(r->injection_detail),
                 "reply %d inside TLS to a NOOP sent before it: %.160s", code, text);
    else
        snprintf(r->injection_detail, sizeof(r->injection_detail),
                 "no reply inside TLS to the pipelined NOOP");
out:
    probe_conn_close(&c);
    SSL_CTX_free(ctx);
}
