/*
 * smtp_reply: a pure, incremental parser for SMTP server replies (RFC 5321
 * section 4.2) and for the EHLO capability list that a 250 reply carries.
 *
 * The parser never sees a socket. It is fed whatever bytes arrived, split
 * anywhere (down to one byte at a time), and yields one complete reply at a
 * time. Memory is bounded by the configured limits whatever the input: a line
 * that grows past the line limit is an error as soon as the limit is crossed,
 * not when (or if) its end arrives.
 */
#ifndef RINGMAIL_SMTP_REPLY_H
#define RINGMAIL_SMTP_REPLY_H

#include <stddef.h>
#include <stdint.h>

/* RFC 5321 4.5.3.1.5: a reply line is at most 512 octets including CRLF. */
#define SMTP_REPLY_LINE_MAX_DEFAULT 512
/* Upper bound of a whole (multi-line) reply; EHLO lists stay far below it. */
#define SMTP_REPLY_SIZE_MAX_DEFAULT 65536
/* "x.yyy.zzz" (RFC 3463) plus NUL. */
#define SMTP_REPLY_ENHANCED_MAX 10

/* Errors returned (negated) by smtp_reply_parser_feed(). */
enum smtp_reply_err {
    SMTP_REPLY_OK = 0,
    SMTP_REPLY_E_SYNTAX = 1, /* line does not start with a 3-digit code and ' ', '-' or EOL */
    SMTP_REPLY_E_CODE = 2,   /* code outside [2-5][0-5][0-9] */
    SMTP_REPLY_E_CODE_MISMATCH = 3, /* a continuation line carries another code */
    SMTP_REPLY_E_LINE_TOO_LONG = 4, /* a line exceeds the line limit */
    SMTP_REPLY_E_TOO_LARGE = 5,     /* the whole reply exceeds the size limit */
    SMTP_REPLY_E_NUL = 6,           /* a NUL octet inside a reply */
    SMTP_REPLY_E_NOMEM = 7,
};

/* Name of an error for logs ("code-mismatch", ...); never NULL. */
const char *smtp_reply_strerror(int err);

struct smtp_reply_limits {
    size_t line_max; /* octets per line including CRLF; 0 = default */
    size_t size_max; /* octets per reply, all lines; 0 = default */
};

/* One complete reply. Pointers stay valid until the next feed, reset or trim. */
struct smtp_reply {
    int code;                               /* 200..559 */
    char enhanced[SMTP_REPLY_ENHANCED_MAX]; /* RFC 3463 "x.y.z" from the first line, or "" */
    size_t nlines;
    /* Text of every line after the code and separator, lines joined by '\n',
     * without CR/LF, NUL-terminated. An enhanced code stays in the text. */
    const char *text;
    size_t text_len;
};

struct smtp_reply_parser;

/* limits may be NULL for the defaults. Returns NULL when out of memory. */
struct smtp_reply_parser *smtp_reply_parser_new(const struct smtp_reply_limits *limits);
void smtp_reply_parser_free(struct smtp_reply_parser *p);

/*
 * Feed bytes. Returns:
 *   > 0  a reply is complete: that many bytes of buf were consumed, *out is
 *        filled; bytes after it are not consumed (feed them again);
 *   0    every byte was absorbed and the reply is not complete yet;
 *   < 0  -smtp_reply_err; the parser stays in error until reset.
 * Line ends are CRLF; a bare LF is accepted as a line end (the CR is
 * optional on input, as servers in the wild sometimes omit it).
 */
long smtp_reply_parser_feed(struct smtp_reply_parser *p, const void *buf, size_t len,
                            struct smtp_reply *out);

/* Non-zero when part of a reply is buffered (a partial line or lines), and
 * in error until reset. */
int smtp_reply_parser_pending(const struct smtp_reply_parser *p);

/* Forget any partial reply and error state; keeps the limits. */
void smtp_reply_parser_reset(struct smtp_reply_parser *p);

/* Give back buffer memory above a small floor (for idle connections).
 * Does nothing while a reply is pending; the text of the last reply handed
 * out is gone afterwards, as after a feed. */
void smtp_reply_parser_trim(struct smtp_reply_parser *p);

/* EHLO extensions (bit flags). */
enum smtp_ext {
    SMTP_EXT_PIPELINING = 1u << 0,
    SMTP_EXT_STARTTLS = 1u << 1,
    SMTP_EXT_CHUNKING = 1u << 2,
    SMTP_EXT_SIZE = 1u << 3,
    SMTP_EXT_8BITMIME = 1u << 4,
    SMTP_EXT_SMTPUTF8 = 1u << 5,
    SMTP_EXT_AUTH = 1u << 6,
    SMTP_EXT_ENHANCEDSTATUSCODES = 1u << 7,
    SMTP_EXT_REQUIRETLS = 1u << 8,
    SMTP_EXT_DSN = 1u << 9,
    SMTP_EXT_BINARYMIME = 1u << 10,
};

/* AUTH mechanisms (bit flags). */
enum smtp_auth_mech {
    SMTP_AUTH_PLAIN = 1u << 0,
    SMTP_AUTH_LOGIN = 1u << 1,
    SMTP_AUTH_CRAM_MD5 = 1u << 2,
    SMTP_AUTH_XOAUTH2 = 1u << 3,
    SMTP_AUTH_OTHER = 1u << 15, /* at least one mechanism we do not know */
};

#define SMTP_EHLO_UNKNOWN_MAX 512

struct smtp_ehlo {
    unsigned ext;      /* enum smtp_ext bits */
    unsigned auth;     /* enum smtp_auth_mech bits */
    uint64_t size_max; /* SIZE parameter; 0 when absent or no fixed limit */
    /* Unknown extension lines (keyword and parameters) joined by '\n',
     * NUL-terminated, truncated at a line boundary when full. */
    char unknown[SMTP_EHLO_UNKNOWN_MAX];
    size_t unknown_count;
    int unknown_truncated;
};

/*
 * Parse the capability lines of a 250 EHLO reply (every line after the
 * first, which names the server). Keywords are case-insensitive; both
 * "AUTH PLAIN LOGIN" and the obsolete "AUTH=PLAIN LOGIN" are understood.
 * Returns 0, or -1 when the reply is not a 250.
 */
int smtp_ehlo_parse(const struct smtp_reply *r, struct smtp_ehlo *out);

/* Parse the text of an EHLO reply directly (lines joined by '\n'). */
void smtp_ehlo_parse_text(const char *text, size_t len, struct smtp_ehlo *out);

#endif
