/*
 * sink_tls: ringmail-sink's SSL_CTX (sink_tls.h). Being a test peer, it
 * can be told to speak old protocol versions and weak ciphers so that the
 * engine's refusals can be tested; those need OpenSSL security level 0.
 */
#include "sink_tls.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

static int one_version(const char *s, size_t n)
{
    static const struct {
        const char *name;
        int v;
    } names[] = {{"1.0", TLS1_VERSION},
                 {"1.1", TLS1_1_VERSION},
                 {"1.2", TLS1_2_VERSION},
                 {"1.3", TLS1_3_VERSION}};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (n == 3 && memcmp(s, names[i].name, 3) == 0)
            return names[i].v;
    return -1;
}

int sink_tls_parse_versions(const char *spec, int *min, int *max)
{
    const char *dash = strchr(spec, '-');

    if (dash) {
        *min = one_version(spec, (size_t)(dash - spec));
        *max = one_version(dash + 1, strlen(dash + 1));
    } else {
        *min = *max = one_version(spec, strlen(spec));
    }
    if (*min < 0 || *max < 0 || *min > *max)
        return -1;
    return 0;
}

static SSL_CTX *fail(SSL_CTX *ctx, char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";

    if (e)
        ERR_error_string_n(e, buf, sizeof(buf));
    snprintf(err, errlen, "%s%s%s", what, e ? ": " : "", buf);
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

SSL_CTX *sink_tls_ctx_new(const struct sink_tls_opts *o, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    int min, max;

    if (!ctx)
        return fail(NULL, err, errlen, "SSL_CTX_new");
    if (sink_tls_parse_versions(o->versions ? o->versions : "1.2-1.3", &min, &max) < 0)
        return fail(ctx, err, errlen, "bad --tls-versions");
    /* The system configuration (Debian: MinProtocol TLSv1.2, SECLEVEL=2)
     * was applied by SSL_CTX_new; what the test asked for overrides it. */
    if (min < TLS1_2_VERSION)
        SSL_CTX_set_security_level(ctx, 0);
    if (!SSL_CTX_set_min_proto_version(ctx, min) || !SSL_CTX_set_max_proto_version(ctx, max))
        return fail(ctx, err, errlen, "setting the protocol versions");
    if (o->ciphers && !SSL_CTX_set_cipher_list(ctx, o->ciphers))
        return fail(ctx, err, errlen, "bad --ciphers");
    if (o->ciphersuites && !SSL_CTX_set_ciphersuites(ctx, o->ciphersuites))
        return fail(ctx, err, errlen, "bad --ciphersuites");
    if (SSL_CTX_use_certificate_chain_file(ctx, o->cert) != 1)
        return fail(ctx, err, errlen, "loading --cert");
    if (SSL_CTX_use_PrivateKey_file(ctx, o->key, SSL_FILETYPE_PEM) != 1)
        return fail(ctx, err, errlen, "loading --key");
    if (SSL_CTX_check_private_key(ctx) != 1)
        return fail(ctx, err, errlen, "--key does not match --cert");
    /* The client's cipher preference, as Postfix does by default
     * (tls_preempt_cipherlist = no): a benchmark then measures the cipher
     * the sender asked for, and --ciphers/--ciphersuites still decide
     * what is acceptable at all. */
    SSL_CTX_set_options(ctx, (o->no_ktls ? 0 : SSL_OP_ENABLE_KTLS) | SSL_OP_NO_RENEGOTIATION);
    /* The output buffer of a session stays put while a write waits, but a
     * partial write lets a slow reader not hold a whole batch hostage. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (o->read_ahead)
        SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    return ctx;
}
