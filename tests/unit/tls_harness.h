/*
 * tls_harness: what the TLS tests share: a throwaway PKI made at run time
 * with the OpenSSL API (a CA, an intermediate, good and bad server
 * certificates, a client certificate, in a mkdtemp directory), an
 * in-process OpenSSL server on one end of a socketpair, and helpers that
 * drive a tls_conn the way the io_uring transport does: step, read what
 * arrived on the client's fd and feed it, send what is pending.
 *
 * Header-only (static inline) so that a test includes it and links nothing
 * more; include check.h first.
 */
#ifndef RINGMAIL_TEST_TLS_HARNESS_H
#define RINGMAIL_TEST_TLS_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls.h"

#define DAY 86400L

static inline void die(const char *what)
{
    fprintf(stderr, "test setup failed: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(2);
}

/* ---- the PKI ---- */

static struct {
    char dir[64];
    char ca_file[128], client_cert[128], client_key[128], other_key_file[128];
    time_t base; /* validity is relative to this, so notAfter is known exactly */
    long serial;
    EVP_PKEY *ca_key, *inter_key, *rogue_key, *key, *rsa_key, *other_key;
    X509 *ca, *inter, *rogue_ca;
    X509 *good, *expired, *notyet, *wronghost, *selfsigned, *rogue_leaf, *inter_leaf, *ip_leaf;
    X509 *client, *rsa_leaf;
} pki;

static inline void add_ext(X509 *x, X509V3_CTX *v, int nid, const char *value)
{
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, v, nid, value);
    if (!e || X509_add_ext(x, e, -1) != 1)
        die(value);
    X509_EXTENSION_free(e);
}

/* A certificate for key, signed by issuer (NULL: self-signed), valid from
 * base+from_days to base+to_days. */
static inline X509 *make_cert(const char *cn, const char *san, EVP_PKEY *key, X509 *issuer,
                              EVP_PKEY *issuer_key, long from_days, long to_days, int ca)
{
    X509 *x = X509_new();
    X509_NAME *n;
    X509V3_CTX v;

    if (!x)
        die("X509_new");
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), ++pki.serial);
    if (!X509_time_adj_ex(X509_getm_notBefore(x), (int)from_days, 0, &pki.base) ||
        !X509_time_adj_ex(X509_getm_notAfter(x), (int)to_days, 0, &pki.base))
        die("validity");
    X509_set_pubkey(x, key);
    n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"ringmail test", -1, -1,
                               0);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n);
    X509V3_set_ctx_nodb(&v);
    X509V3_set_ctx(&v, issuer ? issuer : x, x, NULL, NULL, 0);
    add_ext(x, &v, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    if (ca && issuer)
        add_ext(x, &v, NID_key_usage, "critical,keyCertSign,cRLSign");
    else if (!ca)
        add_ext(x, &v, NID_key_usage, "critical,digitalSignature,keyEncipherment");
    if (!ca)
        add_ext(x, &v, NID_ext_key_usage, "serverAuth,clientAuth");
    add_ext(x, &v, NID_subject_key_identifier, "hash");
    if (issuer)
        add_ext(x, &v, NID_authority_key_identifier, "keyid:always");
    if (san)
        add_ext(x, &v, NID_subject_alt_name, san);
    if (!X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()))
        die("X509_sign");
    return x;
}

static inline void write_pem(const char *path, X509 *x, EVP_PKEY *k)
{
    FILE *f = fopen(path, "w");
    if (!f)
        die(path);
    if (x && !PEM_write_X509(f, x))
        die("PEM_write_X509");
    if (k && !PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL))
        die("PEM_write_PrivateKey");
    fclose(f);
}

static inline EVP_PKEY *ec_key(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    if (!k)
        die("EVP_EC_gen");
    return k;
}

static inline void pki_make(void)
{
    snprintf(pki.dir, sizeof(pki.dir), "/tmp/test_tls.XXXXXX");
    if (!mkdtemp(pki.dir))
        die("mkdtemp");
    snprintf(pki.ca_file, sizeof(pki.ca_file), "%s/ca.pem", pki.dir);
    snprintf(pki.client_cert, sizeof(pki.client_cert), "%s/client.pem", pki.dir);
    snprintf(pki.client_key, sizeof(pki.client_key), "%s/client.key", pki.dir);
    snprintf(pki.other_key_file, sizeof(pki.other_key_file), "%s/other.key", pki.dir);
    pki.base = time(NULL);
    pki.serial = (long)pki.base;

    pki.ca_key = ec_key();
    pki.inter_key = ec_key();
    pki.rogue_key = ec_key();
    pki.key = ec_key();
    pki.other_key = ec_key();
    pki.rsa_key = EVP_RSA_gen(2048);
    if (!pki.rsa_key)
        die("EVP_RSA_gen");

    pki.ca = make_cert("ringmail test CA", NULL, pki.ca_key, NULL, NULL, -1, 30, 1);
    pki.inter =
        make_cert("ringmail test intermediate", NULL, pki.inter_key, pki.ca, pki.ca_key, -1, 30, 1);
    pki.rogue_ca = make_cert("rogue CA", NULL, pki.rogue_key, NULL, NULL, -1, 30, 1);
    pki.good = make_cert("mx.test", "DNS:mx.test", pki.key, pki.ca, pki.ca_key, -1, 10, 0);
    pki.expired = make_cert("mx.test", "DNS:mx.test", pki.key, pki.ca, pki.ca_key, -10, -1, 0);
    pki.notyet = make_cert("mx.test", "DNS:mx.test", pki.key, pki.ca, pki.ca_key, 1, 10, 0);
    pki.wronghost =
        make_cert("other.test", "DNS:other.test", pki.key, pki.ca, pki.ca_key, -1, 10, 0);
    pki.selfsigned = make_cert("mx.test", "DNS:mx.test", pki.key, NULL, NULL, -1, 10, 1);
    pki.rogue_leaf =
        make_cert("mx.test", "DNS:mx.test", pki.key, pki.rogue_ca, pki.rogue_key, -1, 10, 0);
    pki.inter_leaf =
        make_cert("mx.test", "DNS:mx.test", pki.key, pki.inter, pki.inter_key, -1, 10, 0);
    pki.ip_leaf = make_cert("127.0.0.1", "IP:127.0.0.1", pki.key, pki.ca, pki.ca_key, -1, 10, 0);
    pki.client =
        make_cert("client.test", "DNS:client.test", pki.other_key, pki.ca, pki.ca_key, -1, 10, 0);
    pki.rsa_leaf = make_cert("mx.test", "DNS:mx.test", pki.rsa_key, pki.ca, pki.ca_key, -1, 10, 0);

    write_pem(pki.ca_file, pki.ca, NULL);
    write_pem(pki.client_cert, pki.client, NULL);
    write_pem(pki.client_key, NULL, pki.other_key);
    write_pem(pki.other_key_file, NULL, pki.key);
}

static inline void pki_free(void)
{
    X509 *certs[] = {pki.ca,      pki.inter,     pki.rogue_ca,   pki.good,       pki.expired,
                     pki.notyet,  pki.wronghost, pki.selfsigned, pki.rogue_leaf, pki.inter_leaf,
                     pki.ip_leaf, pki.client,    pki.rsa_leaf};
    EVP_PKEY *keys[] = {pki.ca_key, pki.inter_key, pki.rogue_key,
                        pki.key,    pki.rsa_key,   pki.other_key};
    size_t i;
    for (i = 0; i < sizeof(certs) / sizeof(certs[0]); i++)
        X509_free(certs[i]);
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        EVP_PKEY_free(keys[i]);
    unlink(pki.ca_file);
    unlink(pki.client_cert);
    unlink(pki.client_key);
    unlink(pki.other_key_file);
    rmdir(pki.dir);
}

/* SHA-256 of the DER SubjectPublicKeyInfo, as base64 and as hex. */
static inline void spki_pin(X509 *x, char *b64, char *hex)
{
    unsigned char *der = NULL, md[32];
    unsigned int mdlen = 0;
    int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der), i;
    if (n <= 0 || !EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL))
        die("spki digest");
    OPENSSL_free(der);
    EVP_EncodeBlock((unsigned char *)b64, md, 32);
    for (i = 0; i < 32; i++)
        sprintf(hex + 2 * i, "%02x", md[i]);
}

/* ---- the server ---- */

struct srv_opts {
    X509 *cert;
    EVP_PKEY *key;
    X509 *chain; /* sent after the leaf */
    int min, max;
    const char *ciphers;
    int no_resume;
    X509 *client_ca; /* require a client certificate from this CA */
    int weak_ok;     /* security level 0: the server may use a weak key */
};

static inline SSL_CTX *srv_ctx(const struct srv_opts *o)
{
    SSL_CTX *s = SSL_CTX_new(TLS_server_method());
    if (s && o->weak_ok)
        SSL_CTX_set_security_level(s, 0);
    if (!s || SSL_CTX_use_certificate(s, o->cert) != 1 || SSL_CTX_use_PrivateKey(s, o->key) != 1)
        die("server ctx");
    if (o->chain && SSL_CTX_add1_chain_cert(s, o->chain) != 1)
        die("server chain");
    if (o->min)
        SSL_CTX_set_min_proto_version(s, o->min);
    if (o->max)
        SSL_CTX_set_max_proto_version(s, o->max);
    if (o->ciphers && SSL_CTX_set_cipher_list(s, o->ciphers) != 1)
        die(o->ciphers);
    SSL_CTX_set_dh_auto(s, 1);
    SSL_CTX_set_session_id_context(s, (const unsigned char *)"t", 1);
    if (o->no_resume) {
        SSL_CTX_set_options(s, SSL_OP_NO_TICKET);
        SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_num_tickets(s, 0);
    }
    if (o->client_ca) {
        SSL_CTX_set_verify(s, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        X509_STORE_add_cert(SSL_CTX_get_cert_store(s), o->client_ca);
    }
    return s;
}

/* ---- a client/server pair on a socketpair ---- */

struct link {
    int cfd, sfd;
    struct tls_conn *c;
    SSL *s;
    enum tls_status cst;
    int sdone, serr, eof;
};

static inline int link_open(struct link *l, struct tls_ctx *ctx, SSL_CTX *sctx)
{
    int sv[2];
    char err[TLS_ERRBUF_MAX];
    memset(l, 0, sizeof(*l));
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
        die("socketpair");
    l->cfd = sv[0];
    l->sfd = sv[1];
    l->cst = TLS_WANT_READ;
    l->c = tls_conn_new(ctx, l->cfd, err, sizeof(err));
    l->s = SSL_new(sctx);
    if (!l->c || !l->s)
        die("link");
    SSL_set_fd(l->s, l->sfd);
    SSL_set_accept_state(l->s);
    return 0;
}

static inline void link_close(struct link *l)
{
    tls_conn_free(l->c);
    SSL_free(l->s);
    if (l->cfd >= 0)
        close(l->cfd);
    if (l->sfd >= 0)
        close(l->sfd);
}

/* What arrived on the client's fd goes into its read BIO (io_uring RECV). */
static inline size_t pump_in(struct link *l)
{
    unsigned char buf[65536];
    size_t total = 0;
    ssize_t n;
    while ((n = recv(l->cfd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
        CHECK_INT(tls_conn_feed(l->c, buf, (size_t)n), 0);
        total += (size_t)n;
    }
    if (n == 0 && !l->eof) {
        l->eof = 1;
        tls_conn_feed_eof(l->c);
    }
    return total;
}

/* The client's pending ciphertext goes out on its fd (io_uring SEND). */
static inline size_t pump_out(struct link *l)
{
    const void *p;
    size_t len, total = 0;
    while (tls_conn_pending_out(l->c, &p, &len)) {
        ssize_t n = send(l->cfd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n <= 0)
            break;
        tls_conn_consume_out(l->c, (size_t)n);
        total += (size_t)n;
    }
    return total;
}

static inline enum tls_status run_handshake(struct link *l)
{
    int i;
    for (i = 0; i < 100; i++) {
        if (l->cst == TLS_WANT_READ || l->cst == TLS_WANT_WRITE)
            l->cst = tls_conn_handshake(l->c);
        if (!l->sdone && !l->serr) {
            int r = SSL_do_handshake(l->s);
            if (r == 1) {
                l->sdone = 1;
            } else {
                int e = SSL_get_error(l->s, r);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                    l->serr = 1;
            }
            ERR_clear_error();
        }
        pump_in(l);
        if (l->cst == TLS_ERROR || (l->cst == TLS_OK && (l->sdone || l->serr)))
            break;
    }
    return l->cst;
}

/* Plaintext from the server, up to want bytes; *st is the last status. */
static inline size_t client_recv(struct link *l, unsigned char *buf, size_t want,
                                 enum tls_status *st)
{
    size_t got = 0;
    int idle = 0;
    *st = TLS_WANT_READ;
    while (got < want && idle < 3) {
        size_t n = 0;
        size_t moved = pump_in(l);
        *st = tls_conn_read(l->c, buf + got, want - got, &n);
        if (*st == TLS_OK) {
            got += n;
            idle = 0;
        } else if (*st != TLS_WANT_READ) {
            break;
        } else if (!moved) {
            idle++;
        }
    }
    return got;
}

/* Plaintext at the server, up to want bytes, sending the client's pending
 * ciphertext as the socket takes it. */
static inline size_t server_recv(struct link *l, unsigned char *buf, size_t want)
{
    size_t got = 0;
    int idle = 0;
    while (got < want && idle < 3) {
        size_t n = 0;
        int progress = pump_out(l) > 0;
        while (got < want && SSL_read_ex(l->s, buf + got, want - got, &n) == 1) {
            got += n;
            progress = 1;
        }
        ERR_clear_error();
        idle = progress ? 0 : idle + 1;
    }
    return got;
}

static inline void server_send(struct link *l, const char *s)
{
    size_t w = 0;
    CHECK(SSL_write_ex(l->s, s, strlen(s), &w) == 1 && w == strlen(s));
    ERR_clear_error();
}

static inline int encrypt1(struct tls_conn *c, const void *p, size_t n)
{
    struct iovec v = {(void *)p, n};
    return tls_conn_encrypt(c, &v, 1);
}

static inline struct tls_policy policy(void)
{
    struct tls_policy p;
    memset(&p, 0, sizeof(p));
    p.servername = "mx.test";
    p.ca_file = pki.ca_file;
    return p;
}

static inline struct tls_ctx *ctx_or_die(const struct tls_policy *p)
{
    char err[TLS_ERRBUF_MAX] = "";
    struct tls_ctx *ctx = tls_ctx_new(p, err, sizeof(err));
    if (!ctx) {
        fprintf(stderr, "tls_ctx_new: %s\n", err);
        die("tls_ctx_new");
    }
    return ctx;
}

/* One handshake of a client with policy p against a server with opts;
 * returns the status, with the error and detail copied out. */
static inline enum tls_status try_handshake(const struct tls_policy *p, const struct srv_opts *o,
                                            enum tls_err *err, char *detail, size_t dlen)
{
    struct tls_ctx *ctx = ctx_or_die(p);
    SSL_CTX *sctx = srv_ctx(o);
    struct link l;
    const char *d = "";
    enum tls_status st;

    link_open(&l, ctx, sctx);
    st = run_handshake(&l);
    *err = tls_conn_error(l.c, &d);
    snprintf(detail, dlen, "%s", d);
    link_close(&l);
    SSL_CTX_free(sctx);
    tls_ctx_free(ctx);
    return st;
}

#endif
