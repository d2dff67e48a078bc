/*
 * message: wire preparation of an RFC 5322 message for SMTP transfer.
 *
 * A message as a producer gives it (LF, CRLF or even bare CR line ends) is
 * turned into what goes on the wire: CRLF line ends only, and for DATA
 * (RFC 5321 4.5.2) dot-stuffing and exactly one CRLF.CRLF terminator; for BDAT
 * (RFC 3030) the normalised bytes unchanged, so the body can later be spliced
 * from a file without touching it. Pure functions over caller memory.
 */
#ifndef RINGMAIL_MESSAGE_H
#define RINGMAIL_MESSAGE_H

#include <stddef.h>

/* RFC 5322 2.1.1 / RFC 5321 4.5.3.1.6: 998 octets per line, CRLF excluded. */
#define MESSAGE_LINE_MAX 998

enum message_encoding {
    MESSAGE_ENC_DATA = 1, /* dot-stuffed, ends with CRLF.CRLF */
    MESSAGE_ENC_BDAT = 2, /* normalised only; the chunk size is the length */
};

enum message_err {
    MESSAGE_OK = 0,
    MESSAGE_E_LINE_TOO_LONG = 1, /* a line exceeds 998 octets */
    MESSAGE_E_NUL = 2,           /* a NUL octet in the message */
    MESSAGE_E_EMPTY = 3,         /* no bytes at all */
    MESSAGE_E_SPACE = 4,         /* output buffer too small */
    MESSAGE_E_NOMEM = 5,
    MESSAGE_E_BAD_WIRE = 6, /* message_unstuff: input is not a valid DATA body */
};

/* Name of an error for logs ("line-too-long", ...); never NULL. */
const char *message_strerror(int err);

/* What the scan and the preparation learned about a message. */
struct message_facts {
    size_t size;     /* normalised length (CRLF line ends): the SIZE= value */
    size_t wire_len; /* bytes written to the output */
    size_t lines;    /* number of lines */
    size_t line_max; /* longest line, CRLF excluded */
    int eightbit;    /* any octet >= 0x80: needs BODY=8BITMIME */
    size_t bad_line; /* on MESSAGE_E_LINE_TOO_LONG / NUL: 1-based line number */
};

/* Upper bound of the output of message_prepare() for an input of len bytes. */
size_t message_wire_bound(size_t len, enum message_encoding enc);

/*
 * Check a message without writing anything: fills *facts (wire_len as if
 * prepared for enc). Returns 0 or -message_err.
 */
int message_scan(const void *in, size_t len, enum message_encoding enc,
                 struct message_facts *facts);

/*
 * Write the wire form of in[0..len) into out[0..cap). Returns 0 or
 * -message_err; on error nothing useful is in out. A missing final line end
 * is added before the DATA terminator; a message whose last line is a lone
 * "." gets it stuffed like any other.
 */
int message_prepare(const void *in, size_t len, enum message_encoding enc, void *out, size_t cap,
                    struct message_facts *facts);

/* Same, into a buffer from malloc (*out, *out_len); the caller frees it. */
int message_prepare_alloc(const void *in, size_t len, enum message_encoding enc, char **out,
                          size_t *out_len, struct message_facts *facts);

/*
 * Reverse DATA dot-stuffing: in must be a complete DATA body ending in
 * CRLF.CRLF (as a server receives it). Writes the message (with its final
 * CRLF, without the terminator) to out, which needs len bytes. Returns the
 * length written or -message_err. Used by the sink and by property tests.
 */
long message_unstuff(const void *in, size_t len, void *out, size_t cap);

/* Non-zero when s[0..len) has an octet >= 0x80 (an address needs SMTPUTF8). */
int message_has_8bit(const void *s, size_t len);

#endif
