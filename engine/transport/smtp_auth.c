/*
 * smtp_auth: encodes SMTP AUTH credentials with OpenSSL's base64 so that the
 * pure protocol core only ever sees the encoded form, and wipes them after.
 */
#include "smtp_auth.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

static char *b64(const unsigned char *in, size_t len)
{
    /* EVP_EncodeBlock writes 4 bytes per 3 input bytes plus a NUL. */
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (!out)
        return NULL;
    EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    return out;
}

static const char *check_field(const char *s, const char *what_empty, const char *what_long,
                               const char *what_ctl)
{
    size_t n;
    if (!s || !*s)
        return what_empty;
    n = strlen(s);
    if (n > SMTP_AUTH_FIELD_MAX)
        return what_long;
    if (strpbrk(s, "\r\n"))
        return what_ctl;
    return NULL;
}

static void wipe_free(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

int smtp_auth_encode(const char *user, const char *pass, struct smtp_auth_creds *out,
                     const char **err)
{
    unsigned char plain[2 * SMTP_AUTH_FIELD_MAX + 2];
    size_t ul, pl;
    const char *e;

    memset(out, 0, sizeof(*out));
    e = check_field(user, "AUTH user name is empty", "AUTH user name is longer than 255 octets",
                    "AUTH user name contains CR or LF");
    if (!e)
        e = check_field(pass, "AUTH password is empty", "AUTH password is longer than 255 octets",
                        "AUTH password contains CR or LF");
    if (e) {
        *err = e;
        return -1;
    }
    ul = strlen(user);
    pl = strlen(pass);
    /* RFC 4616: [authzid] NUL authcid NUL passwd; we send no authzid. */
    plain[0] = 0;
    memcpy(plain + 1, user, ul);
    plain[1 + ul] = 0;
    memcpy(plain + 2 + ul, pass, pl);
    out->plain_b64 = b64(plain, ul + pl + 2);
    OPENSSL_cleanse(plain, sizeof(plain));
    out->user_b64 = b64((const unsigned char *)user, ul);
    out->pass_b64 = b64((const unsigned char *)pass, pl);
    if (!out->plain_b64 || !out->user_b64 || !out->pass_b64) {
        smtp_auth_free(out);
        *err = "out of memory";
        return -1;
    }
    return 0;
}

void smtp_auth_free(struct smtp_auth_creds *c)
{
    wipe_free(c->plain_b64);
    wipe_free(c->user_b64);
    wipe_free(c->pass_b64);
    memset(c, 0, sizeof(*c));
}
