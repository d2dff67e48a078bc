/*
 * smtp_client: the pure SMTP client state machine.
 *
 * Bytes in (smtp_client_feed), bytes out (smtp_client_output /
 * smtp_client_sent) and events out (smtp_client_next_event). It knows
 * nothing of sockets, TLS libraries or clocks, so the transport (io_uring,
 * a test harness, a fuzzer) drives it, and timeouts live with the caller.
 *
 * The TLS policy of docs/architecture.md is enforced here, where the protocol is:
 * STARTTLS is required (or implicit TLS), only a 220 proceeds, any byte
 * after that 220 is an injection attempt, the capabilities seen before TLS
 * are forgotten, and AUTH happens only over TLS and only if the post-TLS EHLO
 * offers it. Mail bytes and credentials are never queued for output before
 * the caller has reported a completed handshake.
 */
#ifndef RINGMAIL_SMTP_CLIENT_H
#define RINGMAIL_SMTP_CLIENT_H

#include <stddef.h>

#include "message.h"
#include "smtp_reply.h"

/* Why a connection (or a transaction on it) did not succeed. */
enum smtp_client_reason {
    SMTP_CLIENT_R_NONE = 0,
    SMTP_CLIENT_R_PROTOCOL = 1,          /* malformed or unexpected reply */
    SMTP_CLIENT_R_GREETING = 2,          /* greeting other than 220 */
    SMTP_CLIENT_R_EHLO = 3,              /* EHLO refused */
    SMTP_CLIENT_R_NO_STARTTLS = 4,       /* STARTTLS not advertised */
    SMTP_CLIENT_R_STARTTLS_REJECTED = 5, /* STARTTLS answered with other than 220 */
    SMTP_CLIENT_R_INJECTION = 6,         /* bytes after the STARTTLS 220 */
    SMTP_CLIENT_R_AUTH = 7,              /* AUTH failed, or not offered over TLS */
    SMTP_CLIENT_R_SERVER_CLOSED = 8,     /* 421 from the server */
    SMTP_CLIENT_R_CONNECTION = 9,        /* reported by the caller: EOF, reset, I/O error */
    SMTP_CLIENT_R_TIMEOUT = 10,          /* reported by the caller */
    SMTP_CLIENT_R_HANDSHAKE = 11,        /* reported by the caller: TLS handshake failed */
    SMTP_CLIENT_R_CERT_VERIFY = 12,      /* reported by the caller: certificate refused */
    SMTP_CLIENT_R_PROTOCOL_VERSION = 13, /* reported by the caller: no acceptable TLS version */
    SMTP_CLIENT_R_LOCAL = 14,            /* reported by the caller: local resource trouble */
};
#define SMTP_CLIENT_R_COUNT 15

/* Stable lower-case names for logs and metrics labels ("no-starttls", ...). */
const char *smtp_client_reason_name(enum smtp_client_reason r);

/* The fate of one recipient. */
enum smtp_client_outcome {
    SMTP_CLIENT_PENDING = 0,
    SMTP_CLIENT_DELIVERED = 1,
    SMTP_CLIENT_TEMPORARY = 2, /* 4yz or connection/TLS trouble: retry later */
    SMTP_CLIENT_PERMANENT = 3, /* 5yz: bounce, never retry */
};
const char *smtp_client_outcome_name(enum smtp_client_outcome o);

#define SMTP_CLIENT_REPLY_TEXT_MAX 256

struct smtp_client_rcpt_result {
    enum smtp_client_outcome outcome;
    enum smtp_client_reason reason; /* set when a connection-level failure decided it */
    int code;                       /* the SMTP reply code that decided it; 0 if none */
    char enhanced[SMTP_REPLY_ENHANCED_MAX];
    char reply[SMTP_CLIENT_REPLY_TEXT_MAX]; /* that reply's text, truncated */
};

/* Where a transaction's body also lives: fd at offset off, body_len bytes. */
struct smtp_client_body_file {
    int fd;
    long long off;
};

/*
 * One mail transaction, owned by the caller, which keeps it and every
 * pointer in it alive until the transaction ends (a TXN_DONE or FAILED event
 * naming it).
 */
struct smtp_client_txn {
    const char *from;         /* envelope sender; "" for the null sender <> */
    const char *const *rcpts; /* envelope recipients */
    size_t nrcpt;
    /* The body as message_prepare() produced it for the encoding that
     * smtp_client_body_encoding() names, and the facts it returned. */
    const void *body;
    size_t body_len;
    struct message_facts facts;
    struct smtp_client_rcpt_result *results; /* nrcpt entries, filled by the client */
    void *user;                              /* the caller's */
    /* Optional: the same body bytes in a file (a memfd), so that a transport
     * whose kernel encrypts (kTLS) can splice them onto the socket without
     * copying them through user space. The protocol core ignores it. */
    const struct smtp_client_body_file *body_file;

    /* Set by the client. */
    size_t accepted;  /* recipients the server accepted at RCPT */
    size_t delivered; /* recipients delivered */
    int body_started; /* the first body byte was handed to the caller for sending */
    int body_sent;    /* every body byte (and the terminator) was sent */
    /* The server refused it for the session, not for itself: a 421, or
     * "too many messages" (452 4.5.3) to its MAIL. Nothing of it was
     * accepted; its results are temporary with that reply, and it may go
     * on a fresh connection. The session then ends with QUIT. */
    int retry_elsewhere;
};

#define SMTP_CLIENT_DEPTH_MAX 32

enum smtp_client_tls_mode {
    SMTP_CLIENT_STARTTLS = 1,     /* plaintext greeting, then STARTTLS (required) */
    SMTP_CLIENT_IMPLICIT_TLS = 2, /* TLS from the first byte (port 465) */
};

struct smtp_client_config {
    const char *ehlo_name; /* our host name for EHLO */
    enum smtp_client_tls_mode tls_mode;
    /* Credentials, already base64-encoded by the caller (smtp_auth_encode()),
     * so the protocol core never holds a password in clear. NULL: no AUTH. */
    const char *auth_plain_b64; /* base64("\0user\0pass") */
    const char *auth_user_b64;  /* base64(user), for LOGIN */
    const char *auth_pass_b64;  /* base64(pass), for LOGIN */
    /* Send the BDAT chunk in the same pipelined burst as MAIL and RCPT
     * (RFC 3030 allows it; a server discards the chunk of a transaction
     * without recipients). Off: the body waits for an accepted recipient. */
    int pipeline_body;
    /* With pipeline_body, PIPELINING and CHUNKING: how many transactions may
     * be in flight at once, each sent whole behind the one before (replies
     * are still matched in order). 0 or 1: one at a time. At most
     * SMTP_CLIENT_DEPTH_MAX. */
    unsigned pipeline_depth;
    struct smtp_reply_limits limits;
};

enum smtp_client_event_type {
    SMTP_CLIENT_EV_NONE = 0,
    /* Send what is queued, then do the TLS handshake on the connection and
     * call smtp_client_tls_done(). No byte may be read in plaintext first. */
    SMTP_CLIENT_EV_NEED_TLS = 1,
    /* Idle and usable: start a transaction, NOOP or QUIT. */
    SMTP_CLIENT_EV_READY = 2,
    /* ev.txn finished; its results are filled. READY follows once no other
     * transaction is in flight. With several in flight they finish in the
     * order they were started, except local refusals, which finish at once. */
    SMTP_CLIENT_EV_TXN_DONE = 3,
    /* The connection is unusable: flush what is queued (a QUIT, at most),
     * then close. ev.txn, when set, is the oldest transaction that was in
     * flight; every one in flight has its pending results filled as
     * temporary failures. */
    SMTP_CLIENT_EV_FAILED = 4,
    /* QUIT was answered (or the server closed after it): close. */
    SMTP_CLIENT_EV_CLOSED = 5,
};
const char *smtp_client_event_name(enum smtp_client_event_type t);

struct smtp_client_event {
    enum smtp_client_event_type type;
    enum smtp_client_reason reason; /* FAILED */
    struct smtp_client_txn *txn;    /* TXN_DONE, FAILED */
    int code;                       /* the reply behind a FAILED, or 0 */
    char enhanced[SMTP_REPLY_ENHANCED_MAX];
    char text[SMTP_CLIENT_REPLY_TEXT_MAX]; /* its text, or a description */
};

/* A piece of output. Body pieces point into the caller's txn->body. */
struct smtp_client_out {
    const void *base;
    size_t len;
    int body;                          /* message body bytes (a candidate for splicing) */
    const struct smtp_client_txn *txn; /* body pieces: the transaction they belong to */
};

struct smtp_client;

/*
 * Create a client for one connection. Returns NULL and sets *err (a static
 * description) when the configuration would corrupt a command (CR, LF, NUL
 * or spaces in the EHLO name, an over-long name, bad credentials) or memory
 * runs out. In STARTTLS mode it waits for the greeting; in implicit mode the
 * first event is NEED_TLS.
 */
struct smtp_client *smtp_client_new(const struct smtp_client_config *cfg, const char **err);
void smtp_client_free(struct smtp_client *c);

/*
 * Feed received bytes (plaintext before STARTTLS, decrypted after).
 * Returns the number of bytes consumed (all of them unless the event queue
 * filled up: drain events and feed the rest), or -1 once the connection has
 * failed (a FAILED event is queued).
 */
long smtp_client_feed(struct smtp_client *c, const void *buf, size_t len);

/* Next event, or 0 when there is none. */
int smtp_client_next_event(struct smtp_client *c, struct smtp_client_event *ev);

/*
 * Output queued for sending: fills up to max pieces in order and returns
 * their number (0: nothing to send). After sending n bytes (from the start of
 * the first piece onward) call smtp_client_sent(c, n).
 */
size_t smtp_client_output(const struct smtp_client *c, struct smtp_client_out *out, size_t max);
size_t smtp_client_output_len(const struct smtp_client *c);
void smtp_client_sent(struct smtp_client *c, size_t n);

/* The handshake completed (ok != 0) or failed with reason and a detail. */
void smtp_client_tls_done(struct smtp_client *c, int ok, enum smtp_client_reason reason,
                          const char *detail);

/* The transport failed (EOF, I/O error, timeout): ends the connection. */
void smtp_client_abort(struct smtp_client *c, enum smtp_client_reason reason, const char *detail);

/* Transport EOF: a clean close after QUIT, a failure otherwise. */
void smtp_client_eof(struct smtp_client *c);

/* Encoding the body of the next transaction must have (DATA or BDAT). */
enum message_encoding smtp_client_body_encoding(const struct smtp_client *c);

/*
 * How many transactions smtp_client_start() would take now: 0 when busy,
 * 1 when READY, up to pipeline_depth when transactions can be pipelined
 * back to back (fewer while some are in flight).
 */
unsigned smtp_client_can_start(const struct smtp_client *c);

/* The oldest transaction in flight, or NULL. */
const struct smtp_client_txn *smtp_client_current(const struct smtp_client *c);

/*
 * Start a transaction (when smtp_client_can_start() > 0). Returns 0; or -1 with *err set when
 * the transaction would corrupt a command (CR/LF/NUL or '<' '>' in an
 * address, an over-long address, no recipients, no results array): nothing
 * is sent then and the connection stays READY. Policy refusals that need no
 * server round trip (8-bit body without 8BITMIME: 5.6.3; non-ASCII address
 * without SMTPUTF8: 5.6.7; over the server's SIZE: 5.3.4) return 0 and
 * queue a TXN_DONE with every recipient permanent.
 */
int smtp_client_start(struct smtp_client *c, struct smtp_client_txn *txn, const char **err);

/* Keepalive (only when READY): READY follows a 250. */
int smtp_client_noop(struct smtp_client *c);
/*
 * Polite close: QUIT now when READY; otherwise as soon as the session is in
 * step and idle (after the commands and transactions in flight are
 * answered, or in place of the next command of a session being set up,
 * after the TLS handshake if one was asked for). No new transaction starts
 * meanwhile. CLOSED follows. -1 when the session is already over or
 * ending (QUIT sent, failed, closed).
 */
int smtp_client_quit(struct smtp_client *c);
/* QUIT is queued or sent, or a 421 answered MAIL: the session is ending, and
 * its last replies (or the close) are all that is awaited. */
int smtp_client_quitting(const struct smtp_client *c);
/* A reply to MAIL that says the session may carry no more transactions:
 * 421, 452 with 4.5.3, or a 4yz whose text says "too many messages" or
 * "too many mails" (OpenSMTPD's max-mails, Gmail, Microsoft). */
int smtp_client_is_session_limit(const struct smtp_reply *r);

int smtp_client_is_ready(const struct smtp_client *c);
int smtp_client_tls_active(const struct smtp_client *c);
/* Capabilities of the current session (post-TLS once TLS is up). */
const struct smtp_ehlo *smtp_client_caps(const struct smtp_client *c);

/* Release buffer memory above a small floor (idle connections). */
void smtp_client_trim(struct smtp_client *c);

#endif
