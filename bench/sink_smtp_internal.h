/*
 * sink_smtp_internal: what the two halves of the sink's SMTP session share.
 * sink_smtp.c has the session core (output, events, faults, DATA and BDAT
 * octets); sink_smtp_cmd.c parses and answers command lines. Nothing
 * outside bench/sink_smtp*.c includes this.
 */
#ifndef RINGMAIL_SINK_SMTP_INTERNAL_H
#define RINGMAIL_SINK_SMTP_INTERNAL_H

#include "sink_smtp.h"

/* Stop feeding once this much output waits: the transport sends it first,
 * so a client that pipelines without reading cannot grow it without end. */
#define OUT_SOFT  16384
#define EV_MAX    8
#define USER_MAX  256
#define REPLY_MAX 1200

enum mode {
    M_CMD = 1,
    M_DATA = 2,
    M_BDAT = 3,
    M_DISCARD = 4, /* stalled, or STARTTLS accepted: input is dropped */
    M_CLOSED = 5,
};

/* DATA body states: where the last octet left us within a line. */
enum dstate {
    D_LINE_START = 1,
    D_IN_LINE = 2,
    D_CR = 3,     /* after a CR inside a line */
    D_DOT = 4,    /* a dot opened the line: stuffing, or the terminator */
    D_DOT_CR = 5, /* ".\r" at line start: the terminator if LF follows */
};

enum auth_step {
    A_NONE = 0,
    A_PLAIN = 1,
    A_LOGIN_USER = 2,
    A_LOGIN_PASS = 3,
};

struct buf {
    char *p;
    size_t len, cap;
};

struct sink_smtp {
    struct sink_smtp_config *cfg;
    enum mode mode;
    /* command line assembly */
    char line[SINK_SMTP_AUTH_LINE_MAX + 1];
    size_t line_len;
    bool line_skip; /* past the limit: dropping octets until LF */
    /* session */
    bool rejected; /* the greeting was 554: only QUIT (RFC 5321 3.1) */
    bool helo;
    bool tls;
    bool authed;
    unsigned long session_mails; /* messages accepted in this session */
    char user[USER_MAX];
    enum auth_step auth_step;
    char auth_a[SINK_SMTP_AUTH_LINE_MAX + 1];
    /* transaction */
    bool txn;
    bool txn_8bit, txn_utf8;
    struct buf from, rcpts;
    size_t nrcpt;
    /* the message */
    struct buf msg;
    uint64_t msg_size;
    bool msg_over, msg_nomem, body_started, bdat_open, bdat_last, msg_bdat;
    const char *bdat_reject; /* the reply once the chunk is consumed */
    uint64_t bdat_left;
    enum dstate dstate;
    unsigned long long queue_id;
    char msgid[SINK_SMTP_MSGID_MAX + 1];
    long msgid_len;
    /* output; [sent, hold) may go out while a delay holds the rest */
    struct buf out;
    size_t out_sent, out_hold;
    bool held;
    struct sink_smtp_event ev[EV_MAX];
    unsigned ev_head, ev_count;
};

/* sink_smtp.c */
int sink_smtp_buf_put(struct buf *b, const void *p, size_t n);
void sink_smtp_out_str(struct sink_smtp *s, const char *line);
void sink_smtp_ev_push(struct sink_smtp *s, const struct sink_smtp_event *ev);
void sink_smtp_ev_close(struct sink_smtp *s, enum sink_smtp_point p, bool fault, bool flush);
const char *sink_smtp_host(const struct sink_smtp *s);
/* Sends line (CRLF-terminated) at point p, unless a fault replaces it.
 * Returns the code sent (0 for a line without one), -1 when a disconnect
 * or a stall sent nothing. */
int sink_smtp_reply_at(struct sink_smtp *s, enum sink_smtp_point p, const char *line);
void sink_smtp_txn_reset(struct sink_smtp *s);
/* Called at the end of the BDAT command once its chunk is set up. */
void sink_smtp_finish_bdat(struct sink_smtp *s);

/* sink_smtp_cmd.c: one complete line, CRLF (or LF) removed. */
void sink_smtp_line(struct sink_smtp *s, const char *line, size_t n);

#endif
