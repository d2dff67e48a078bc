/*
 * smtp_syntax: RFC 5321 (and RFC 6531) syntax of mailboxes, domains and
 * EHLO names; see smtp_syntax.h. The job parser, the SMTP client and the
 * configuration all call these, so none of them can accept what another
 * refuses (tests/fuzz/fuzz_address.c holds the parser and the client to it).
 */
#include "smtp_syntax.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

int smtp_syntax_utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned char c = s[i];
        size_t k;
        uint32_t cp;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            cp = c & 0x07;
        } else {
            return 0; /* continuation octet, C0/C1 overlong lead, or > U+10FFFF */
        }
        if (n - i - 1 < k)
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += k + 1;
    }
    return 1;
}

/* Character classes, one table lookup per octet: the client checks every
 * address of every transaction and the job parser every address of every
 * job, so this is on the hot path (a strchr per octet cost more than the
 * rest of the check). Built from the definitions at compile time;
 * tests/unit/test_smtp_syntax.c checks every octet against them. */
#define CLS_LDH   1 /* letters, digits, '-' (RFC 5321 Ldh-str) */
#define CLS_ATEXT 2 /* RFC 5322 atext, which RFC 5321's Dot-string uses */
#define CLS_PLAIN 4 /* printable ASCII other than '<' and '>': nothing to say */
#define CLS_HIGH  8 /* 0x80 and above: UTF-8, where RFC 6531 allows it */
#define IS_ALNUM(c)                                                                                \
    (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z') || ((c) >= '0' && (c) <= '9'))
#define IS_ATEXT_SPECIAL(c)                                                                        \
    ((c) == '!' || (c) == '#' || (c) == '$' || (c) == '%' || (c) == '&' || (c) == '\'' ||          \
     (c) == '*' || (c) == '+' || (c) == '-' || (c) == '/' || (c) == '=' || (c) == '?' ||           \
     (c) == '^' || (c) == '_' || (c) == '`' || (c) == '{' || (c) == '|' || (c) == '}' ||           \
     (c) == '~')
#define CLS(c)                                                                                     \
    ((IS_ALNUM(c) || (c) == '-' ? CLS_LDH : 0) |                                                   \
     (IS_ALNUM(c) || IS_ATEXT_SPECIAL(c) ? CLS_ATEXT : 0) |                                        \
     ((c) >= 0x20 && (c) < 0x7f && (c) != '<' && (c) != '>' ? CLS_PLAIN : 0) |                     \
     ((c) >= 0x80 ? CLS_HIGH : 0))
#define CLS4(c)  CLS(c), CLS((c) + 1), CLS((c) + 2), CLS((c) + 3)
#define CLS16(c) CLS4(c), CLS4((c) + 4), CLS4((c) + 8), CLS4((c) + 12)
#define CLS64(c) CLS16(c), CLS16((c) + 16), CLS16((c) + 32), CLS16((c) + 48)
static const unsigned char cls[256] = {CLS64(0), CLS64(64), CLS64(128), CLS64(192)};

int smtp_syntax_is_atext(unsigned char c)
{
    return (cls[c] & CLS_ATEXT) != 0;
}

int smtp_syntax_is_ldh(unsigned char c)
{
    return (cls[c] & CLS_LDH) != 0;
}

static const char R_EMPTY_LABEL[] = "empty domain label";
static const char R_LONG_LABEL[] = "domain label longer than 63 octets";
static const char R_HYPHEN[] = "domain label starts or ends with '-'";
static const char R_BAD_LITERAL[] = "invalid address literal";

const char *smtp_syntax_domain(const char *d, size_t n, int allow_utf8)
{
    size_t label = 0;
    const unsigned char ok = (unsigned char)(CLS_LDH | (allow_utf8 ? CLS_HIGH : 0));

    if (n == 0)
        return "empty domain";
    if (n > SMTP_DOMAIN_MAX)
        return "domain longer than 255 octets";
    for (size_t i = 0; i <= n; i++) {
        unsigned char c = i < n ? (unsigned char)d[i] : '.';

        if (c == '.') {
            if (label == 0)
                return R_EMPTY_LABEL;
            if (label > SMTP_LABEL_MAX)
                return R_LONG_LABEL;
            /* RFC 5321 sub-domain: Let-dig [Ldh-str], so no '-' at either end. */
            if (d[i - label] == '-' || d[i - 1] == '-')
                return R_HYPHEN;
            label = 0;
            continue;
        }
        if (!(cls[c] & ok))
            return c == ' ' || c == '\t' ? "space outside a quoted local part"
                                         : "invalid character in domain";
        label++;
    }
    return NULL;
}

const char *smtp_syntax_address_literal(const char *d, size_t n)
{
    char buf[SMTP_ADDRESS_MAX + 1];
    unsigned char addr[16];

    if (n < 3 || d[0] != '[' || d[n - 1] != ']' || n - 2 > SMTP_ADDRESS_MAX || memchr(d, '\0', n))
        return R_BAD_LITERAL;
    memcpy(buf, d + 1, n - 2);
    buf[n - 2] = '\0';
    if (strncasecmp(buf, "IPv6:", 5) == 0)
        return inet_pton(AF_INET6, buf + 5, addr) == 1 ? NULL : R_BAD_LITERAL;
    /* inet_pton's AF_INET is exactly four decimal octets, as Snum wants. */
    return inet_pton(AF_INET, buf, addr) == 1 ? NULL : R_BAD_LITERAL;
}

/* Quoted-string: qtextSMTP or a quoted-pair of a printable. The index just
 * past the closing quote, or 0 with *why. */
static size_t quoted_local(const char *a, size_t n, const char **why)
{
    size_t i;

    for (i = 1; i < n && a[i] != '"'; i++) {
        unsigned char c = (unsigned char)a[i];
        if (c == '\\') {
            if (++i == n)
                break;
            c = (unsigned char)a[i];
            if (c < 0x20 || c > 0x7e)
                break;
            continue;
        }
        if (c < 0x20)
            break;
    }
    if (i < n && a[i] != '"') {
        *why = "invalid character in quoted local part";
        return 0;
    }
    if (i >= n) {
        *why = "unterminated quoted local part";
        return 0;
    }
    i++;
    if (i == n || a[i] != '@') {
        *why = "invalid character in local part";
        return 0;
    }
    return i;
}

const char *smtp_syntax_mailbox(const char *a, size_t n, int *utf8)
{
    const char *why = NULL;
    size_t i = 0, local_len;
    int eight = 0;

    if (n == 0)
        return "empty address";
    /* One pass for what any octet may break; CR, LF and NUL are named
     * before any other fault, wherever they stand. */
    const char *first = NULL;
    for (size_t k = 0; k < n; k++) {
        unsigned char c = (unsigned char)a[k];
        if (cls[c] & CLS_PLAIN)
            continue;
        if (c == '<' || c == '>') {
            if (!first)
                first = "'<' or '>' in address (give the bare address)";
            continue;
        }
        if (c == '\r' || c == '\n' || c == '\0')
            return "CR, LF or NUL in address";
        if (c == 0x7f || (c < 0x20 && c != '\t')) {
            if (!first)
                first = "control character in address";
        }
        eight |= c >= 0x80;
    }
    if (first)
        return first;
    if (eight && !smtp_syntax_utf8_valid((const unsigned char *)a, n))
        return "address is not valid UTF-8";
    if (n > SMTP_ADDRESS_MAX)
        return "address longer than 254 octets";
    if (!memchr(a, '@', n))
        return "no '@' in address";

    if (a[0] == '"') {
        if (!(local_len = quoted_local(a, n, &why)))
            return why;
    } else {
        /* Dot-string: atoms of atext (or UTF-8) joined by single dots. */
        for (i = 0; a[i] != '@'; i++) {
            unsigned char c = (unsigned char)a[i];
            if (c == ' ' || c == '\t')
                return "space outside a quoted local part";
            if (c == '.') {
                if (i == 0 || a[i - 1] == '.' || a[i + 1] == '@')
                    return "misplaced '.' in local part";
                continue;
            }
            if (!(cls[c] & (CLS_ATEXT | CLS_HIGH)))
                return "invalid character in local part";
        }
        local_len = i;
        if (local_len == 0)
            return "empty local part";
    }
    if (local_len > SMTP_LOCAL_MAX)
        return "local part longer than 64 octets";
    i = local_len + 1;
    if (i < n && a[i] == '[')
        why = smtp_syntax_address_literal(a + i, n - i);
    else
        why = smtp_syntax_domain(a + i, n - i, 1);
    if (!why && utf8)
        *utf8 |= eight;
    return why;
}

const char *smtp_syntax_ehlo_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    const char *why;

    if (n == 0)
        return "EHLO name is empty";
    if (n > SMTP_DOMAIN_MAX)
        return "EHLO name is longer than 255 octets";
    if (s[0] == '[')
        return smtp_syntax_address_literal(s, n)
                   ? "EHLO name is not a valid address literal ([192.0.2.1] or [IPv6:2001:db8::1])"
                   : NULL;
    /* ASCII only: EHLO comes before any extension, SMTPUTF8 included. */
    why = smtp_syntax_domain(s, n, 0);
    if (!why)
        return NULL;
    if (why == R_EMPTY_LABEL)
        return "EHLO name has an empty label (a leading, trailing or doubled '.')";
    if (why == R_LONG_LABEL)
        return "EHLO name has a label longer than 63 octets";
    if (why == R_HYPHEN)
        return "EHLO name has a label that starts or ends with '-'";
    return "EHLO name contains a character that is not allowed in a domain (letters, digits, "
           "'-' and '.'; no '_')";
}

const char *smtp_syntax_fqdn(const char *s)
{
    const char *why = smtp_syntax_ehlo_name(s);

    if (why)
        return why;
    if (s[0] != '[' && !strchr(s, '.'))
        return SMTP_SYNTAX_NOT_FQDN;
    return NULL;
}
