/*
 * sink_smtp: the pure server side of SMTP for ringmail-sink.
 *
 * Bytes in (sink_smtp_feed), reply bytes out (sink_smtp_output /
 * sink_smtp_sent) and events out (sink_smtp_next_event), with no fd, no
 * clock and no TLS library, so the unit tests and a fuzzer drive it exactly
 * as the io_uring transport does. It speaks RFC 5321 with PIPELINING (2920),
 * CHUNKING (3030), STARTTLS (3207), AUTH PLAIN/LOGIN (4954), SIZE, 8BITMIME,
 * SMTPUTF8 and enhanced status codes, and it carries the fault injection of
 * the sink (replies, delays, stalls, disconnects at named points) because
 * those points are protocol facts.
 *
 * Replies of pipelined commands accumulate in one output buffer, so the
 * transport writes them with one send per read. A message is assembled
 * (un-stuffed, or chunks joined) in a buffer the session reuses: no
 * allocation per message once the buffers have grown.
 */
#ifndef RINGMAIL_SINK_SMTP_H
#define RINGMAIL_SINK_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A reply line may carry at most this much custom text (--reply ...:TEXT). */
#define SINK_SMTP_TEXT_MAX 256
/* Command lines (CRLF included): 1000 octets, the RFC 5321 text-line limit,
 * generous next to its 512 for commands as ESMTP parameters grow; AUTH
 * lines (the command and SASL responses) get 2048 for long base64. */
#define SINK_SMTP_LINE_MAX      1000
#define SINK_SMTP_AUTH_LINE_MAX 2048
/* Recipients per transaction before 452 4.5.3 (RFC 5321 4.5.3.1.8: >= 100). */
#define SINK_SMTP_RCPT_MAX 1000
/* A Message-ID longer than this is truncated (it is only a counting key). */
#define SINK_SMTP_MSGID_MAX 998
/* Without keep_body only the head of a message is kept, for its Message-ID. */
#define SINK_SMTP_HEAD_KEEP 65536

/*
 * Points where faults apply. The reply points name a reply the sink sends;
 * the *_BODY and DATA_END points exist only for --disconnect-after.
 */
enum sink_smtp_point {
    SINK_SMTP_P_GREETING = 0,
    SINK_SMTP_P_EHLO = 1,
    SINK_SMTP_P_HELO = 2,
    SINK_SMTP_P_STARTTLS = 3,
    SINK_SMTP_P_AUTH = 4,
    SINK_SMTP_P_MAIL = 5,
    SINK_SMTP_P_RCPT = 6,
    SINK_SMTP_P_DATA = 7,     /* the reply after the message (end of DATA) */
    SINK_SMTP_P_DATA_CMD = 8, /* the 354 reply to the DATA command itself */
    SINK_SMTP_P_BDAT = 9,     /* the reply to each BDAT chunk, LAST included */
    SINK_SMTP_P_RSET = 10,
    SINK_SMTP_P_NOOP = 11,
    SINK_SMTP_P_VRFY = 12,
    SINK_SMTP_P_QUIT = 13,
    SINK_SMTP_P_DATA_BODY = 14, /* disconnect at the first byte of a DATA body */
    SINK_SMTP_P_BDAT_BODY = 15, /* disconnect at the first byte of a BDAT chunk */
    SINK_SMTP_P_DATA_END = 16,  /* disconnect once a message is complete and
                                   accepted, before its reply: the lost-reply
                                   case that exactly-once delivery must survive */
};
#define SINK_SMTP_P_COUNT 17

/* "GREETING", "DATA-BODY", ... (the --reply/--delay spelling); never NULL. */
const char *sink_smtp_point_name(enum sink_smtp_point p);
/* The point named s (case-insensitive; "." is DATA), or -1. */
int sink_smtp_point_parse(const char *s, size_t len);
/* Only the reply points accept --reply, --delay and --stall. */
bool sink_smtp_point_has_reply(enum sink_smtp_point p);

/* One kind of fault at one point; every == 0 means "never", 1 "always", N
 * "every Nth occurrence" (occurrences counted per point, see below). */
struct sink_smtp_fault_reply {
    unsigned every;
    int code;                      /* 200..599 */
    char text[SINK_SMTP_TEXT_MAX]; /* "" for a default "X.0.0 Fault injected" */
};

struct sink_smtp_faults {
    struct sink_smtp_fault_reply reply;
    unsigned delay_every;
    unsigned delay_ms;
    unsigned stall_every;
    unsigned disconnect_every;
    /* Occurrences seen so far, by every session sharing the config: "every
     * 2nd GREETING" spans connections. */
    unsigned long long seen;
};

enum sink_smtp_auth_mech {
    SINK_SMTP_AUTH_PLAIN = 1,
    SINK_SMTP_AUTH_LOGIN = 2,
};

/*
 * Credential check, supplied by the caller (which has base64 at hand):
 * PLAIN passes the response as a (b is NULL); LOGIN the user name response
 * as a and the password response as b, both still base64. Returns true and
 * writes the user name to user (NUL-terminated, cap bytes) when they match.
 */
typedef bool sink_smtp_auth_fn(void *arg, enum sink_smtp_auth_mech mech, const char *a,
                               const char *b, char *user, size_t cap);

/*
 * Settings, shared by the sessions of a process and owned by the caller,
 * which keeps it alive and does not change it while sessions exist (except
 * that sessions update the fault counters and next_queue_id).
 */
struct sink_smtp_config {
    const char *hostname; /* greeting and EHLO; NULL: "ringmail-sink" */
    bool pipelining;
    bool chunking;
    bool eightbitmime;
    bool smtputf8;
    uint64_t size_max; /* advertised SIZE and the limit; 0: none of either */
    /* Messages a session may carry; MAIL after that many gets OpenSMTPD's
     * max-mails reply, "452 4.5.3 Too many messages sent". 0: no limit. */
    unsigned long max_mails;
    bool tls_available;   /* the transport can do TLS at all (not --plaintext) */
    bool starttls;        /* advertise and accept STARTTLS (before TLS) */
    bool allow_plaintext; /* accept MAIL without TLS (default: 530) */
    bool auth;            /* AUTH PLAIN LOGIN over TLS, then required for MAIL */
    sink_smtp_auth_fn *auth_check;
    void *auth_arg;
    bool keep_body; /* keep every message byte (--store); else only the head */
    /* STARTTLS: a raw reply instead of "220 2.0.0 Ready to start TLS"
     * (CRLF added when missing); TLS starts only if it begins with "220 ". */
    const char *starttls_reply;
    size_t starttls_reply_len;
    /* Bytes sent right after the STARTTLS reply, in the same write. */
    const char *inject_after_220;
    size_t inject_len;
    struct sink_smtp_faults faults[SINK_SMTP_P_COUNT];
    unsigned long long next_queue_id; /* "queued as N"; the first is next_queue_id + 1 */
};

/* Defaults: everything offered, SIZE 35 MiB, TLS required, no faults. */
void sink_smtp_config_init(struct sink_smtp_config *cfg);

enum sink_smtp_event_type {
    SINK_SMTP_EV_NONE = 0,
    SINK_SMTP_EV_MESSAGE = 1,  /* a message was accepted: sink_smtp_message() */
    SINK_SMTP_EV_STARTTLS = 2, /* flush the output, then handshake; the rest of the
                                  plaintext input was discarded (RFC 3207 4.2) */
    SINK_SMTP_EV_DELAY = 3,    /* flush the output, wait ms, call sink_smtp_resume() */
    SINK_SMTP_EV_STALL = 4,    /* no reply will ever come; input is discarded */
    SINK_SMTP_EV_CLOSE = 5,    /* flush the output (if flush), then close */
    SINK_SMTP_EV_AUTH = 6,     /* a client authenticated (sink_smtp_auth_user()) */
};
const char *sink_smtp_event_name(enum sink_smtp_event_type t);

struct sink_smtp_event {
    enum sink_smtp_event_type type;
    enum sink_smtp_point point; /* DELAY, STALL, CLOSE by a fault: where */
    unsigned ms;                /* DELAY */
    bool fault;                 /* CLOSE: injected (else QUIT, or a 421) */
    bool flush;                 /* CLOSE: send the pending output first */
};

/* An accepted message; pointers valid until the next feed. */
struct sink_smtp_message {
    unsigned long long queue_id;
    const char *from;  /* without brackets; "" for <> */
    const char *rcpts; /* nrcpt NUL-terminated addresses, one after the other */
    size_t nrcpt;
    const char *body;       /* the message as received: un-stuffed or chunks joined */
    size_t body_len;        /* bytes kept: == size with keep_body, else <= SINK_SMTP_HEAD_KEEP */
    uint64_t size;          /* the message's full length */
    bool eightbitmime;      /* MAIL ... BODY=8BITMIME */
    bool smtputf8;          /* MAIL ... SMTPUTF8 */
    bool bdat;              /* carried by BDAT */
    const char *message_id; /* unfolded, trimmed; NULL when the header lacks one */
    size_t message_id_len;
};

struct sink_smtp;

/* NULL on allocation failure. cfg must outlive the session. */
struct sink_smtp *sink_smtp_create(struct sink_smtp_config *cfg);
void sink_smtp_destroy(struct sink_smtp *s);

/* Queue the greeting (the GREETING faults apply). tls: the connection is
 * already TLS (implicit TLS: call it after the handshake). */
void sink_smtp_start(struct sink_smtp *s, bool tls);

/*
 * Consume received bytes. Returns how many were consumed; fewer than len
 * when an event is waiting (take it with sink_smtp_next_event and feed the
 * rest), when the output passed its soft limit (send it, then feed the
 * rest), while a delay holds the session, or after CLOSE (then 0). Input
 * split anywhere gives the same replies and events.
 */
size_t sink_smtp_feed(struct sink_smtp *s, const void *data, size_t len);

/* 1 and *ev filled when an event is waiting, else 0. */
int sink_smtp_next_event(struct sink_smtp *s, struct sink_smtp_event *ev);

/* Reply bytes ready to send (the part a delay holds back is not included). */
const char *sink_smtp_output(const struct sink_smtp *s, size_t *len);
/* n bytes of the output were sent. */
void sink_smtp_sent(struct sink_smtp *s, size_t n);

/* The handshake after STARTTLS succeeded: a fresh session (RFC 3207 4.2:
 * forget EHLO, AUTH and any transaction); no greeting follows. */
void sink_smtp_tls_started(struct sink_smtp *s);
/* The DELAY elapsed: release the held reply and carry on. */
void sink_smtp_resume(struct sink_smtp *s);
/* Queue "421 4.3.2 <host> Service shutting down" and a CLOSE event. */
void sink_smtp_shutdown(struct sink_smtp *s);

/* Valid after a MESSAGE event, until the next feed. */
void sink_smtp_message(const struct sink_smtp *s, struct sink_smtp_message *m);

/* Between commands: no partial line, no message or chunk in progress. */
bool sink_smtp_idle(const struct sink_smtp *s);
bool sink_smtp_tls_active(const struct sink_smtp *s);
/* The authenticated user, or NULL. */
const char *sink_smtp_auth_user(const struct sink_smtp *s);

/*
 * The Message-ID header of an RFC 5322 head (the first header named
 * Message-ID, folding undone, whitespace trimmed), copied into out (cap
 * bytes, NUL-terminated, truncated). Returns its length, or -1 when the
 * head has none. Pure; used by the session and by tests.
 */
long sink_smtp_find_message_id(const char *msg, size_t len, char *out, size_t cap);

#endif
