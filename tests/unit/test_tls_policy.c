/*
 * Unit tests of the TLS trust rules that are policy rather than OpenSSL
 * defaults, against an in-process server with certificates made at run
 * time (tls_harness.h):
 *  - the relay's name is matched against the subjectAltName only, never the
 *    subject's Common Name (RFC 6125 6.4.4, CA/Browser Forum): a certificate
 *    with CN=the host and no DNS SAN is refused;
 *  - OpenSSL security level 2 at least: an RSA-1024 server key is refused
 *    even where the system's openssl.cnf lowers the level to 1;
 *  - one SPKI pin parser, tls_pin_parse(), with the spellings tls_ctx_new()
 *    takes.
 */
#include "tls.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "check.h"
#include "tls_harness.h"

static void expect_refused(X509 *cert, EVP_PKEY *key, const char *why)
{
    struct tls_policy p = policy();
    struct srv_opts o = {.cert = cert, .key = key, .weak_ok = 1};
    enum tls_err err;
    char detail[TLS_DETAIL_MAX];
    int v;

    for (v = 0; v < 2; v++) {
        o.max = v ? TLS1_2_VERSION : 0;
        CHECK_INT(try_handshake(&p, &o, &err, detail, sizeof(detail)), TLS_ERROR);
        CHECK_INT(err, TLS_ERR_CERT_VERIFY);
        CHECK_STR(detail, why);
    }
}

static void test_no_cn_fallback(void)
{
    /* CN=mx.test throughout; the relay is mx.test. */
    X509 *no_san = make_cert("mx.test", NULL, pki.key, pki.ca, pki.ca_key, -1, 10, 0);
    X509 *other_san =
        make_cert("mx.test", "DNS:other.test", pki.key, pki.ca, pki.ca_key, -1, 10, 0);
    X509 *ip_san = make_cert("mx.test", "IP:192.0.2.1", pki.key, pki.ca, pki.ca_key, -1, 10, 0);
    X509 *mail_san =
        make_cert("mx.test", "email:postmaster@mx.test", pki.key, pki.ca, pki.ca_key, -1, 10, 0);

    expect_refused(no_san, pki.key, "hostname mismatch");
    expect_refused(other_san, pki.key, "hostname mismatch");
    /* SANs, but none of type DNS: OpenSSL alone would fall back to the CN. */
    expect_refused(ip_san, pki.key, "hostname mismatch");
    expect_refused(mail_san, pki.key, "hostname mismatch");
    X509_free(no_san);
    X509_free(other_san);
    X509_free(ip_san);
    X509_free(mail_san);
}

static void test_security_level(void)
{
    EVP_PKEY *weak = EVP_RSA_gen(1024);
    X509 *leaf;
    struct tls_policy p = policy();
    struct srv_opts o = {.cert = pki.rsa_leaf, .key = pki.rsa_key};
    enum tls_err err;
    char detail[TLS_DETAIL_MAX];

    if (!weak)
        die("EVP_RSA_gen(1024)");
    leaf = make_cert("mx.test", "DNS:mx.test", weak, pki.ca, pki.ca_key, -1, 10, 0);
    expect_refused(leaf, weak, "EE certificate key too weak");
    /* RSA-2048 is fine. */
    CHECK_INT(try_handshake(&p, &o, &err, detail, sizeof(detail)), TLS_OK);
    X509_free(leaf);
    EVP_PKEY_free(weak);
}

static void test_pin_parse(void)
{
    char b64[48], hex[72], prefixed[96], colons[100], upper[72];
    unsigned char a[TLS_PIN_OCTETS], b[TLS_PIN_OCTETS];
    int i;

    spki_pin(pki.good, b64, hex);
    snprintf(prefixed, sizeof(prefixed), "sha256//%s", b64);
    for (i = 0; i < 32; i++)
        snprintf(colons + 3 * i, 4, "%.2s%s", hex + 2 * i, i < 31 ? ":" : "");
    for (i = 0; hex[i]; i++)
        upper[i] = (char)(hex[i] >= 'a' ? hex[i] - 32 : hex[i]);
    upper[i] = 0;
    CHECK_INT(tls_pin_parse(b64, a), 0);
    CHECK_INT(tls_pin_parse(prefixed, b), 0);
    CHECK(memcmp(a, b, sizeof(a)) == 0);
    CHECK_INT(tls_pin_parse(hex, b), 0);
    CHECK(memcmp(a, b, sizeof(a)) == 0);
    CHECK_INT(tls_pin_parse(colons, b), 0);
    CHECK(memcmp(a, b, sizeof(a)) == 0);
    CHECK_INT(tls_pin_parse(upper, b), 0);
    CHECK(memcmp(a, b, sizeof(a)) == 0);
    /* Hex takes no prefix; base64 must be canonical and 32 octets. */
    snprintf(prefixed, sizeof(prefixed), "sha256//%s", hex);
    CHECK_INT(tls_pin_parse(prefixed, b), -1);
    CHECK_INT(tls_pin_parse("", b), -1);
    CHECK_INT(tls_pin_parse("AAAA", b), -1);
    CHECK_INT(tls_pin_parse("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=", b), -1);
    hex[62] = 0;
    CHECK_INT(tls_pin_parse(hex, b), -1);
    CHECK(ERR_peek_error() == 0);
}

/* An openssl.cnf that lowers the default to level 1, as RHEL's LEGACY
 * crypto policy does (Debian builds OpenSSL with 2 as the default, others
 * with 1): the engine must hold level 2 whatever the system says. Set
 * before OpenSSL's first use, which loads the configuration. */
static char conf_path[64];
static void lower_system_level(void)
{
    static const char conf[] = "openssl_conf = openssl_init\n"
                               "[openssl_init]\nssl_conf = ssl_sect\n"
                               "[ssl_sect]\nsystem_default = system_default_sect\n"
                               "[system_default_sect]\nCipherString = DEFAULT:@SECLEVEL=1\n";
    int fd;

    snprintf(conf_path, sizeof(conf_path), "/tmp/test_tls_policy.XXXXXX");
    fd = mkstemp(conf_path);
    if (fd < 0 || write(fd, conf, sizeof(conf) - 1) != (ssize_t)(sizeof(conf) - 1))
        die("openssl.cnf");
    close(fd);
    setenv("OPENSSL_CONF", conf_path, 1);
}

/* The configuration above took: a plain SSL_CTX is at level 1. */
static void check_system_level(void)
{
    SSL_CTX *s = SSL_CTX_new(TLS_client_method());
    CHECK(s != NULL);
    if (s)
        CHECK_INT(SSL_CTX_get_security_level(s), 1);
    SSL_CTX_free(s);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    lower_system_level();
    pki_make();
    check_system_level();
    test_no_cn_fallback();
    test_security_level();
    test_pin_parse();
    pki_free();
    unlink(conf_path);
    return check_done();
}
