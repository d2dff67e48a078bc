/*
 * tls_facts: what a completed handshake negotiated and whom it reached, as
 * the plain, fixed-size struct tls_facts that logs, job events and the
 * shared-memory metrics copy (docs/architecture.md: per-connection TLS metrics; the
 * engine itself reports whether the kernel encrypts).
 */
#include "tls_internal.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

/* Copy at most cap-1 bytes and terminate, never cutting a UTF-8 sequence
 * (RFC 2253 output escapes non-ASCII, but a truncated label must stay valid
 * whatever a future flag lets through). */
static void copy_trunc(char *dst, size_t cap, const char *src, size_t n)
{
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(dst, src, n);
    dst[n] = 0;
}

static void dn_string(const X509_NAME *name, char *dst, size_t cap)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *p = NULL;
    long n;
    dst[0] = 0;
    if (!b)
        return;
    if (X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253) >= 0) {
        n = BIO_get_mem_data(b, &p);
        if (n > 0 && p)
            copy_trunc(dst, cap, p, (size_t)n);
    }
    BIO_free(b);
}

static void group_name(SSL *ssl, char *dst, size_t cap)
{
    int nid = SSL_get_negotiated_group(ssl);
    const char *name = NULL;
    EVP_PKEY *tmp = NULL;

    dst[0] = 0;
    if (nid > 0) {
        name = SSL_group_to_name(ssl, nid); /* the TLS name: "x25519" */
        if (!name && !(nid & TLSEXT_nid_unknown))
            name = OBJ_nid2sn(nid);
    }
    if (name) {
        snprintf(dst, cap, "%s", name);
        return;
    }
    /* TLS 1.2 DHE records no group; the server's ephemeral key tells. */
    if (SSL_get_peer_tmp_key(ssl, &tmp) == 1 && tmp) {
        if (EVP_PKEY_is_a(tmp, "DH"))
            snprintf(dst, cap, "dh%d", EVP_PKEY_get_bits(tmp));
        else
            snprintf(dst, cap, "%s", EVP_PKEY_get0_type_name(tmp));
        EVP_PKEY_free(tmp);
    }
}

static int64_t asn1_unix(const ASN1_TIME *t)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return (int64_t)timegm(&tm);
}

void tls_facts_collect(struct tls_conn *c)
{
    struct tls_facts *f = &c->facts;
    SSL *ssl = c->ssl;
    const SSL_CIPHER *ci = SSL_get_current_cipher(ssl);
    X509 *peer = SSL_get0_peer_certificate(ssl);
    long vr = SSL_get_verify_result(ssl);
    uint32_t key_updates = f->key_updates;
    struct timespec t1;

    memset(f, 0, sizeof(*f));
    f->key_updates = key_updates;
    snprintf(f->protocol, sizeof(f->protocol), "%s", SSL_get_version(ssl));
    snprintf(f->cipher, sizeof(f->cipher), "%s", ci ? SSL_CIPHER_get_name(ci) : "");
    group_name(ssl, f->group, sizeof(f->group));
    f->verify_enabled = c->ctx->verify ? 1 : 0;
    f->verify_code = (int32_t)vr;
    snprintf(f->verify, sizeof(f->verify), "%s",
             !c->ctx->verify   ? "disabled"
             : vr == X509_V_OK ? "ok"
                               : X509_verify_cert_error_string(vr));
    if (peer) {
        dn_string(X509_get_subject_name(peer), f->subject, sizeof(f->subject));
        dn_string(X509_get_issuer_name(peer), f->issuer, sizeof(f->issuer));
        f->not_after = asn1_unix(X509_get0_notAfter(peer));
    }
    f->pinned = c->ctx->npins > 0;
    f->resumed = SSL_session_reused(ssl) ? 1 : 0;
    f->ktls_tx = c->ktls_tx ? 1 : 0;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    f->handshake_us =
        (int64_t)(t1.tv_sec - c->t0.tv_sec) * 1000000 + (t1.tv_nsec - c->t0.tv_nsec) / 1000;
}
