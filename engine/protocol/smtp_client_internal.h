/*
 * smtp_client_internal: the state shared by smtp_client.c (the session, its
 * input and output) and smtp_client_txn.c (mail transactions). Not for other
 * modules: they use smtp_client.h.
 */
#ifndef RINGMAIL_SMTP_CLIENT_INTERNAL_H
#define RINGMAIL_SMTP_CLIENT_INTERNAL_H

#include "smtp_client.h"

#define EVQ_MAX 8
/* A pipelined transaction queues one text piece (MAIL, RCPT, BDAT) and one
 * body piece; a few more for RSET, NOOP or QUIT. */
#define SEG_MAX(depth) (2 * (size_t)(depth) + 4)
#define OBUF_FLOOR     256

enum smtp_client_state {
    ST_GREETING = 1,
    ST_EHLO,
    ST_STARTTLS,
    ST_TLS_WAIT,
    ST_AUTH_PLAIN,
    ST_AUTH_LOGIN,
    ST_AUTH_LOGIN_USER,
    ST_AUTH_LOGIN_PASS,
    ST_READY,
    ST_TXN,
    ST_NOOP,
    ST_RSET,
    ST_QUIT,
    ST_CLOSED,
    ST_FAILED,
};

/* Where a transaction stands once the envelope replies are in. */
enum smtp_client_phase {
    PH_ENVELOPE = 1, /* MAIL/RCPT (and a pipelined DATA/BDAT) replies due */
    PH_DATA,         /* DATA sent, its 354 due */
    PH_BODY,         /* body sent after 354, final reply due */
    PH_DOT_ABORT,    /* lone "." sent after an unwanted 354 */
    PH_BDAT,         /* BDAT chunk sent, its reply due */
};

struct smtp_client_seg {
    const char *ptr; /* body pieces: caller memory */
    size_t off;      /* text pieces: offset in obuf (which may move) */
    size_t len;
    struct smtp_client_txn *txn; /* body pieces: whose body */
    int body;
};

/* A transaction in flight: how many of its replies are still due. */
struct smtp_client_inflight {
    struct smtp_client_txn *txn;
    enum smtp_client_phase phase;
    int mail_due, mail_ok;
    size_t rcpt_sent, rcpt_replied;
    int datacmd_due; /* a pipelined DATA or BDAT reply is due in PH_ENVELOPE */
    int rset_due;    /* sent behind another: its RSET's reply comes first */
};

struct smtp_client {
    enum smtp_client_state st;
    enum smtp_client_tls_mode tls_mode;
    int tls;
    int pipelining_allowed;
    int pipeline_body;
    char *ehlo_name;
    char *plain_b64, *user_b64, *pass_b64;
    struct smtp_reply_parser *parser;
    struct smtp_ehlo caps;
    int auth_before_tls; /* AUTH was offered in the plaintext EHLO */

    char *obuf;
    size_t ocap, olen;
    int obuf_secret;              /* obuf holds AUTH credentials: wiped when sent, moved or freed */
    struct smtp_client_seg *segs; /* seg_max of them, after the struct */
    size_t seg_max;
    size_t nseg, seg_sent; /* bytes of segs[0] already sent */

    struct smtp_client_event evq[EVQ_MAX];
    size_t evhead, evcount;

    /* Transactions in flight, oldest first: replies belong to the oldest.
     * More than one only when each goes whole in one burst (PIPELINING,
     * CHUNKING and pipeline_body), RFC 2920 and RFC 3030 4.2. */
    struct smtp_client_inflight *q; /* depth of them, after the struct */
    size_t qhead, qcount;
    unsigned depth; /* the most in flight (config pipeline_depth) */
    int unclean;    /* one of them ended without a 2xx: RSET when all are done */
    int lockstep;   /* no PIPELINING: one command per round trip */
    int bdat;       /* CHUNKING: the body goes as one BDAT LAST chunk */
    int oom;        /* queueing output failed: the session cannot go on */
    int quit_due;   /* QUIT at the next point where the session is in step and idle */
    int after_421;  /* a 421 answered MAIL: read what the server still says, then QUIT;
                       a transaction whose MAIL it never answered may go elsewhere */
};

/* The oldest transaction in flight (valid while qcount > 0). */
static inline struct smtp_client_inflight *smtp_client_head(struct smtp_client *c)
{
    return &c->q[c->qhead];
}

void smtp_client_copy_text(char *dst, size_t cap, const char *src, size_t len);
struct smtp_client_event *smtp_client_push_event(struct smtp_client *c,
                                                 enum smtp_client_event_type t);
int smtp_client_out_cmd(struct smtp_client *c, const char *a, const char *b, const char *d,
                        const char *e);
int smtp_client_out_body(struct smtp_client *c, struct smtp_client_txn *t);
enum smtp_client_outcome smtp_client_outcome_of(int code);
void smtp_client_set_result(struct smtp_client_rcpt_result *res, enum smtp_client_outcome o,
                            enum smtp_client_reason reason, int code, const char *enhanced,
                            const char *text, size_t text_len);
void smtp_client_settle_pending(struct smtp_client_txn *t, enum smtp_client_outcome o,
                                enum smtp_client_reason reason, int code, const char *enhanced,
                                const char *text, size_t text_len);
void smtp_client_fail(struct smtp_client *c, enum smtp_client_reason reason,
                      const struct smtp_reply *r, const char *detail, int quit);
void smtp_client_check_oom(struct smtp_client *c);
void smtp_client_ready(struct smtp_client *c);
void smtp_client_send_quit(struct smtp_client *c);
void smtp_client_txn_done(struct smtp_client *c, int clean);
int smtp_client_is_421(const struct smtp_reply *r);
const char *smtp_client_check_addr(const char *a, int null_ok);
void smtp_client_on_txn_reply(struct smtp_client *c, const struct smtp_reply *r);

#endif
