/*
 * smtp_syntax: the one validator of each SMTP name the engine sends — a
 * mailbox (MAIL FROM / RCPT TO), a domain, an EHLO name — used alike by the
 * configuration, the job parser and the SMTP client, so that what one
 * accepts the others never refuse. Pure: no allocation, no I/O.
 *
 * Each check returns NULL when the text is valid, else a short reason
 * ("local part longer than 64 octets") that callers prefix with what was
 * checked ("to #2: ..."). Reasons come in a fixed order, injection first,
 * then lengths, then syntax, so a given input always gets the same one.
 */
#ifndef RINGMAIL_SMTP_SYNTAX_H
#define RINGMAIL_SMTP_SYNTAX_H

#include <stddef.h>

/* RFC 5321 4.5.3.1: local part, domain, label; a path is 256 octets with
 * its angle brackets, so an address is at most 254. */
#define SMTP_LOCAL_MAX   64
#define SMTP_DOMAIN_MAX  255
#define SMTP_LABEL_MAX   63
#define SMTP_ADDRESS_MAX 254

/* 1 when c is RFC 5322 atext (a Dot-string atom's octet), else 0. */
int smtp_syntax_is_atext(unsigned char c);
/* 1 when c is a letter, a digit or '-' (RFC 5321 Ldh-str), else 0. */
int smtp_syntax_is_ldh(unsigned char c);

/* 1 when s[0..n) is well-formed UTF-8 (no overlongs, surrogates or code
 * points past U+10FFFF), else 0. */
int smtp_syntax_utf8_valid(const unsigned char *s, size_t n);

/* RFC 5321 4.1.2 Domain: sub-domains of letters, digits and inner '-'
 * joined by single dots, labels of 1-63 octets, at most 255 in all. With
 * allow_utf8, octets >= 0x80 count as letters (RFC 6531 U-labels; the
 * caller checks the UTF-8). No trailing dot. */
const char *smtp_syntax_domain(const char *d, size_t n, int allow_utf8);

/* RFC 5321 4.1.3 address-literal, brackets included: "[192.0.2.1]" or
 * "[IPv6:2001:db8::1]". The General-address-literal form has no tag in use
 * and is refused. */
const char *smtp_syntax_address_literal(const char *d, size_t n);

/*
 * RFC 5321 4.1.2 Mailbox: Local-part "@" ( Domain / address-literal ), the
 * local part a Dot-string of atext or a Quoted-string (qtextSMTP and
 * quoted-pairs of printable ASCII), at most 64/255/254 octets; with RFC
 * 6531, UTF-8 in the local part and the domain, which sets *utf8 (the
 * message then needs SMTPUTF8). n octets of a, which may hold a NUL (the
 * reason says so). The null reverse path "" is the caller's business.
 */
const char *smtp_syntax_mailbox(const char *a, size_t n, int *utf8);

/* An EHLO name (RFC 5321 4.1.1.1): a Domain in ASCII (no '_', no UTF-8)
 * or an address literal. NUL-terminated. */
const char *smtp_syntax_ehlo_name(const char *s);

/* The EHLO name a host's own name gives when none is configured: a valid
 * EHLO name that is also fully qualified (a dot in it; RFC 5321 4.1.1.1
 * wants the FQDN, and "EHLO vm" is refused or scored by Exim, OpenSMTPD
 * and spam filters). */
const char *smtp_syntax_fqdn(const char *s);
#define SMTP_SYNTAX_NOT_FQDN "EHLO name is not fully qualified (no '.')"

#endif
