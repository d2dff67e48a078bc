/*
 * tls_verify: the trust decisions of the tls module that OpenSSL's chain
 * verification does not make by itself (SPKI pins), and the translation of
 * OpenSSL's failures into the reason classes of docs/architecture.md (handshake,
 * cert-verify with the X509 reason, protocol-version) with a detail string.
 */
#include "tls_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

/* ---- pins ---- */

/* base64 of 32 bytes is 44 characters ending in exactly one '='; the
 * round trip refuses non-canonical spellings. */
static int pin_from_base64(const char *s, unsigned char out[TLS_PIN_LEN])
{
    unsigned char buf[36];
    char back[48];
    if (strlen(s) != 44 || s[43] != '=' || s[42] == '=')
        return -1;
    if (EVP_DecodeBlock(buf, (const unsigned char *)s, 44) != 33)
        return -1;
    EVP_EncodeBlock((unsigned char *)back, buf, TLS_PIN_LEN);
    if (strcmp(back, s) != 0)
        return -1;
    memcpy(out, buf, TLS_PIN_LEN);
    return 0;
}

static int pin_from_hex(const char *s, unsigned char out[TLS_PIN_LEN])
{
    size_t n = 0;
    /* OpenSSL skips the ':' separators where present. */
    if (OPENSSL_hexstr2buf_ex(out, TLS_PIN_LEN, &n, s, ':') != 1 || n != TLS_PIN_LEN)
        return -1;
    return 0;
}

int tls_pin_parse(const char *s, unsigned char out[TLS_PIN_OCTETS])
{
    const char *b64 = strncmp(s, "sha256//", 8) == 0 ? s + 8 : s;
    /* Hex has no prefix: "sha256//" then hex is refused. */
    if (pin_from_base64(b64, out) == 0 || (b64 == s && pin_from_hex(s, out) == 0))
        return 0;
    ERR_clear_error();
    return -1;
}

int tls_pins_parse(struct tls_ctx *ctx, const char *const *pins, size_t npins, char *err,
                   size_t errlen)
{
    size_t i;
    if (!npins)
        return 0;
    ctx->pins = calloc(npins, TLS_PIN_LEN);
    if (!ctx->pins) {
        if (err && errlen)
            snprintf(err, errlen, "cannot set up TLS: out of memory");
        return -1;
    }
    for (i = 0; i < npins; i++) {
        const char *s = pins[i] ? pins[i] : "";
        if (tls_pin_parse(s, ctx->pins[i]) != 0) {
            if (err && errlen)
                snprintf(err, errlen,
                         "bad pin '%.64s': want the SHA-256 of a SubjectPublicKeyInfo as base64 "
                         "(optionally sha256//...) or 64 hex digits",
                         s);
            ERR_clear_error();
            return -1;
        }
    }
    ctx->npins = npins;
    return 0;
}

static int cert_pinned(const struct tls_ctx *ctx, X509 *x)
{
    unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    size_t i;
    int n, ok;

    /* The whole DER SubjectPublicKeyInfo (algorithm and key), as HPKP and
     * curl pin it; X509_pubkey_digest() would hash the key bits only. */
    n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
    if (n <= 0)
        return 0;
    ok = EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL) == 1 && mdlen == TLS_PIN_LEN;
    OPENSSL_free(der);
    for (i = 0; ok && i < ctx->npins; i++)
        if (memcmp(md, ctx->pins[i], TLS_PIN_LEN) == 0)
            return 1;
    return 0;
}

int tls_pins_match(const struct tls_ctx *ctx, SSL *ssl)
{
    STACK_OF(X509) *chain = ctx->verify ? SSL_get0_verified_chain(ssl) : NULL;
    X509 *leaf;
    int i;

    /* Verified: any certificate of the chain OpenSSL built and checked (a
     * pinned intermediate or root survives leaf renewals). Unverified: the
     * leaf only, whose key the handshake proved the peer holds; anything
     * else the peer sent could be copied from the real server. */
    for (i = 0; chain && i < sk_X509_num(chain); i++)
        if (cert_pinned(ctx, sk_X509_value(chain, i)))
            return 1;
    leaf = SSL_get0_peer_certificate(ssl);
    return leaf && cert_pinned(ctx, leaf);
}

/* ---- failures ---- */

void tls_fail(struct tls_conn *c, enum tls_err err, const char *fmt, ...)
{
    va_list ap;
    ERR_clear_error();
    if (c->state == TLS_ST_FAILED)
        return; /* the first failure is the one to report */
    c->state = TLS_ST_FAILED;
    c->err = err;
    va_start(ap, fmt);
    vsnprintf(c->detail, sizeof(c->detail), fmt, ap);
    va_end(ap);
}

const char *tls_ossl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_error();
    const char *r;
    if (!e) {
        snprintf(buf, len, "unknown error");
    } else if (ERR_SYSTEM_ERROR(e)) {
        char eb[128];
        snprintf(buf, len, "%s", strerror_r(ERR_GET_REASON(e), eb, sizeof(eb)));
    } else if ((r = ERR_reason_error_string(e)) != NULL) {
        snprintf(buf, len, "%s", r);
    } else {
        snprintf(buf, len, "OpenSSL error %d in library %d", ERR_GET_REASON(e), ERR_GET_LIB(e));
    }
    return buf;
}

/*
 * Reasons that mean "no TLS version both sides accept". What an old server
 * produces: OpenSSL and most stacks refuse our ClientHello with a
 * protocol_version alert (TLSV1_ALERT_PROTOCOL_VERSION); others answer with
 * a TLS 1.0/1.1 ServerHello, which we refuse (UNSUPPORTED_PROTOCOL).
 * WRONG_VERSION_NUMBER is not here: OpenSSL says it when the first bytes are
 * not a TLS record at all (plaintext on a TLS port), a handshake failure.
 */
static int version_reason(unsigned long e)
{
    if (ERR_GET_LIB(e) != ERR_LIB_SSL)
        return 0;
    switch (ERR_GET_REASON(e)) {
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_WRONG_SSL_VERSION:
    case SSL_R_UNSUPPORTED_SSL_VERSION:
        return 1;
    default:
        return 0;
    }
}

void tls_fail_classify(struct tls_conn *c, int ssl_error, int sys_errno)
{
    unsigned long e = ERR_peek_error();
    int in_handshake = c->state == TLS_ST_HANDSHAKE;
    long vr = SSL_get_verify_result(c->ssl);
    char rb[160];

    if (in_handshake && c->ctx->verify && vr != X509_V_OK) {
        /* With SSL_VERIFY_PEER a refused chain or name ends the handshake
         * (CERTIFICATE_VERIFY_FAILED); the useful part is why. */
        tls_fail(c, TLS_ERR_CERT_VERIFY, "%s", X509_verify_cert_error_string(vr));
    } else if (e && version_reason(e)) {
        tls_fail(c, TLS_ERR_PROTOCOL_VERSION, "%s", tls_ossl_reason(rb, sizeof(rb)));
    } else if (ssl_error == SSL_ERROR_SYSCALL && sys_errno && !e) {
        /* Only the socket BIO does system I/O: a write failed. */
        tls_fail(c, TLS_ERR_IO, "%s", strerror_r(sys_errno, rb, sizeof(rb)));
    } else if ((ssl_error == SSL_ERROR_SYSCALL && !e) ||
               (ERR_GET_LIB(e) == ERR_LIB_SSL &&
                ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
        tls_fail(c, TLS_ERR_PEER_CLOSED, "peer closed the connection%s",
                 in_handshake ? " during the handshake" : " without close_notify");
    } else if (e) {
        tls_fail(c, in_handshake ? TLS_ERR_HANDSHAKE : TLS_ERR_PROTOCOL, "%s",
                 tls_ossl_reason(rb, sizeof(rb)));
    } else {
        tls_fail(c, in_handshake ? TLS_ERR_HANDSHAKE : TLS_ERR_PROTOCOL,
                 "OpenSSL failed without a reason (SSL_get_error %d)", ssl_error);
    }
    ERR_clear_error();
}
