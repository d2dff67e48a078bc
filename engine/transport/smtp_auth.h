/*
 * smtp_auth: credentials for SMTP AUTH (RFC 4954), encoded once per relay.
 *
 * The protocol core never holds a password in clear: the caller encodes the
 * credentials here (OpenSSL's base64) when a relay is configured, hands the
 * encoded forms to smtp_client, and wipes them when the relay goes away.
 */
#ifndef RINGMAIL_SMTP_AUTH_H
#define RINGMAIL_SMTP_AUTH_H

#include <stddef.h>

struct smtp_auth_creds {
    char *plain_b64; /* base64("" NUL user NUL pass): AUTH PLAIN, RFC 4616 */
    char *user_b64;  /* base64(user): AUTH LOGIN, first 334 */
    char *pass_b64;  /* base64(pass): AUTH LOGIN, second 334 */
};

/* Longest user name or password accepted (RFC 4616 allows 255 octets). */
#define SMTP_AUTH_FIELD_MAX 255

/*
 * Encode user and pass. Returns 0, or -1 with *err set (a static string) when
 * a field is empty, too long, or contains NUL/CR/LF, or memory runs out.
 */
int smtp_auth_encode(const char *user, const char *pass, struct smtp_auth_creds *out,
                     const char **err);

/* Wipe and free the encoded credentials; safe on a zeroed struct. */
void smtp_auth_free(struct smtp_auth_creds *c);

#endif
