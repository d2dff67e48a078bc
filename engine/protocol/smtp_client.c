/*
 * smtp_client: the pure SMTP client state machine (RFC 5321, 2920, 3030,
 * 3207, 4954), with the STARTTLS policy of docs/architecture.md built in.
 *
 * The session runs greeting -> EHLO -> STARTTLS -> (caller's handshake) ->
 * EHLO -> [AUTH] -> READY, then transactions, NOOPs and QUIT. Replies are
 * matched to commands by counting, in order, so pipelined groups need no
 * per-command allocation: a transaction remembers how many MAIL, RCPT and
 * DATA/BDAT replies are still due.
 */
#include "smtp_client_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_syntax.h"

static const char *const reason_names[SMTP_CLIENT_R_COUNT] = {
    "none",          "protocol",          "greeting",  "ehlo",
    "no-starttls",   "starttls-rejected", "injection", "auth",
    "server-closed", "connection",        "timeout",   "handshake",
    "cert-verify",   "protocol-version",  "local",
};

const char *smtp_client_reason_name(enum smtp_client_reason r)
{
    if ((unsigned)r < SMTP_CLIENT_R_COUNT)
        return reason_names[r];
    return "unknown";
}

const char *smtp_client_outcome_name(enum smtp_client_outcome o)
{
    switch (o) {
    case SMTP_CLIENT_PENDING:
        return "pending";
    case SMTP_CLIENT_DELIVERED:
        return "delivered";
    case SMTP_CLIENT_TEMPORARY:
        return "temporary";
    case SMTP_CLIENT_PERMANENT:
        return "permanent";
    }
    return "unknown";
}

const char *smtp_client_event_name(enum smtp_client_event_type t)
{
    static const char *const names[] = {"none",     "need-tls", "ready",
                                        "txn-done", "failed",   "closed"};
    if ((unsigned)t < sizeof(names) / sizeof(names[0]))
        return names[t];
    return "unknown";
}

/* ---- small helpers ---------------------------------------------------- */

void smtp_client_copy_text(char *dst, size_t cap, const char *src, size_t len)
{
    if (len >= cap)
        len = cap - 1;
    memcpy(dst, src, len);
    dst[len] = 0;
}

struct smtp_client_event *smtp_client_push_event(struct smtp_client *c,
                                                 enum smtp_client_event_type t)
{
    struct smtp_client_event *ev;
    /* feed() keeps two slots free before each reply, and a reply queues at
     * most two events, so the queue cannot overflow. */
    if (c->evcount == EVQ_MAX)
        abort();
    ev = &c->evq[(c->evhead + c->evcount++) % EVQ_MAX];
    memset(ev, 0, sizeof(*ev));
    ev->type = t;
    return ev;
}

/* Forget the output text; credentials in it are wiped, not just dropped. */
static void out_clear(struct smtp_client *c)
{
    if (c->obuf_secret) {
        explicit_bzero(c->obuf, c->olen);
        c->obuf_secret = 0;
    }
    c->olen = 0;
}

static int out_reserve(struct smtp_client *c, size_t more)
{
    size_t need = c->olen + more, cap = c->ocap ? c->ocap : OBUF_FLOOR;
    char *p;
    if (need <= c->ocap)
        return 0;
    while (cap < need)
        cap *= 2;
    if (c->obuf_secret) {
        /* realloc() could leave the credentials behind in the old block. */
        p = malloc(cap);
        if (p) {
            memcpy(p, c->obuf, c->olen);
            explicit_bzero(c->obuf, c->ocap);
            free(c->obuf);
        }
    } else {
        p = realloc(c->obuf, cap);
    }
    if (!p)
        return -1;
    c->obuf = p;
    c->ocap = cap;
    return 0;
}

/* Queue command text, the pieces concatenated (NULL ends the list). */
int smtp_client_out_cmd(struct smtp_client *c, const char *a, const char *b, const char *d,
                        const char *e)
{
    const char *parts[4] = {a, b, d, e};
    size_t total = 2, i;
    struct smtp_client_seg *s;
    for (i = 0; i < 4 && parts[i]; i++) {
        total += strlen(parts[i]);
        if (parts[i] == c->plain_b64 || parts[i] == c->user_b64 || parts[i] == c->pass_b64)
            c->obuf_secret = 1;
    }
    if (out_reserve(c, total) < 0) {
        c->oom = 1;
        return -1;
    }
    if (c->nseg && !c->segs[c->nseg - 1].body) {
        s = &c->segs[c->nseg - 1];
    } else {
        if (c->nseg == c->seg_max) {
            c->oom = 1;
            return -1;
        }
        s = &c->segs[c->nseg++];
        s->body = 0;
        s->txn = NULL;
        s->ptr = NULL;
        s->off = c->olen;
        s->len = 0;
    }
    for (i = 0; i < 4 && parts[i]; i++) {
        size_t n = strlen(parts[i]);
        memcpy(c->obuf + c->olen, parts[i], n);
        c->olen += n;
        s->len += n;
    }
    memcpy(c->obuf + c->olen, "\r\n", 2);
    c->olen += 2;
    s->len += 2;
    return 0;
}

int smtp_client_out_body(struct smtp_client *c, struct smtp_client_txn *t)
{
    struct smtp_client_seg *s;
    if (c->nseg == c->seg_max) {
        c->oom = 1;
        return -1;
    }
    s = &c->segs[c->nseg++];
    s->body = 1;
    s->ptr = t->body;
    s->off = 0;
    s->len = t->body_len;
    s->txn = t;
    t->body_started = 1;
    return 0;
}

/* ---- failure and completion ------------------------------------------ */

enum smtp_client_outcome smtp_client_outcome_of(int code)
{
    if (code >= 200 && code < 300)
        return SMTP_CLIENT_DELIVERED;
    if (code >= 400 && code < 500)
        return SMTP_CLIENT_TEMPORARY;
    return SMTP_CLIENT_PERMANENT;
}

void smtp_client_set_result(struct smtp_client_rcpt_result *res, enum smtp_client_outcome o,
                            enum smtp_client_reason reason, int code, const char *enhanced,
                            const char *text, size_t text_len)
{
    res->outcome = o;
    res->reason = reason;
    res->code = code;
    smtp_client_copy_text(res->enhanced, sizeof(res->enhanced), enhanced ? enhanced : "",
                          enhanced ? strlen(enhanced) : 0);
    smtp_client_copy_text(res->reply, sizeof(res->reply), text ? text : "", text ? text_len : 0);
}

/* Decide every recipient still pending (accepted or not yet answered). */
void smtp_client_settle_pending(struct smtp_client_txn *t, enum smtp_client_outcome o,
                                enum smtp_client_reason reason, int code, const char *enhanced,
                                const char *text, size_t text_len)
{
    size_t i;
    for (i = 0; i < t->nrcpt; i++) {
        if (t->results[i].outcome != SMTP_CLIENT_PENDING)
            continue;
        smtp_client_set_result(&t->results[i], o, reason, code, enhanced, text, text_len);
        if (o == SMTP_CLIENT_DELIVERED)
            t->delivered++;
    }
}

/*
 * The connection is unusable. quit: the session is still in step, so a
 * QUIT is polite and safe (never after an injection or a garbled reply).
 */
void smtp_client_fail(struct smtp_client *c, enum smtp_client_reason reason,
                      const struct smtp_reply *r, const char *detail, int quit)
{
    struct smtp_client_event *ev;
    char text[SMTP_CLIENT_REPLY_TEXT_MAX];
    size_t i;

    if (c->st == ST_FAILED || c->st == ST_CLOSED)
        return;
    /* After a 421 to MAIL nothing the server never answered with a 250 to
     * MAIL was accepted: those transactions may go on a fresh connection. */
    for (i = 0; c->after_421 && i < c->qcount; i++) {
        struct smtp_client_inflight *f = &c->q[(c->qhead + i) % c->depth];
        if (f->mail_due)
            f->txn->retry_elsewhere = 1;
    }
    if (r)
        snprintf(text, sizeof(text), "%d %s", r->code, r->text);
    else
        snprintf(text, sizeof(text), "%s", detail ? detail : smtp_client_reason_name(reason));
    /* A NEED_TLS not yet collected is void now: never start a handshake on a
     * connection that has just been found to be tampered with. */
    for (i = 0; i < c->evcount; i++) {
        struct smtp_client_event *q = &c->evq[(c->evhead + i) % EVQ_MAX];
        if (q->type == SMTP_CLIENT_EV_NEED_TLS && i == c->evcount - 1) {
            c->evcount--;
            break;
        }
    }
    ev = smtp_client_push_event(c, SMTP_CLIENT_EV_FAILED);
    ev->reason = reason;
    ev->code = r ? r->code : 0;
    if (r)
        smtp_client_copy_text(ev->enhanced, sizeof(ev->enhanced), r->enhanced, strlen(r->enhanced));
    smtp_client_copy_text(ev->text, sizeof(ev->text), text, strlen(text));
    if (c->qcount)
        ev->txn = smtp_client_head(c)->txn;
    for (; c->qcount; c->qcount--, c->qhead = (c->qhead + 1) % c->depth)
        smtp_client_settle_pending(smtp_client_head(c)->txn, SMTP_CLIENT_TEMPORARY, reason,
                                   ev->code, ev->enhanced, text, strlen(text));
    /* Unsent output may point into the caller's transaction, which the
     * caller is free to release once it has this event. */
    c->nseg = 0;
    c->seg_sent = 0;
    out_clear(c);
    if (quit)
        smtp_client_out_cmd(c, "QUIT", NULL, NULL, NULL);
    c->st = ST_FAILED;
}

/* Out of memory while queueing is the one local failure of the core. */
void smtp_client_check_oom(struct smtp_client *c)
{
    if (c->oom)
        smtp_client_fail(c, SMTP_CLIENT_R_LOCAL, NULL, "out of memory queueing a command", 0);
}

void smtp_client_send_quit(struct smtp_client *c)
{
    c->st = ST_QUIT;
    smtp_client_out_cmd(c, "QUIT", NULL, NULL, NULL);
}

/* Idle and in step: READY, or the QUIT that was asked for meanwhile. */
void smtp_client_ready(struct smtp_client *c)
{
    if (c->quit_due) {
        smtp_client_send_quit(c);
        return;
    }
    c->st = ST_READY;
    smtp_client_push_event(c, SMTP_CLIENT_EV_READY);
}

/* The oldest transaction is decided. clean: it ended with a 2xx to the
 * data, so the server has reset itself; otherwise RSET before the next one
 * (after those already in flight behind it). */
void smtp_client_txn_done(struct smtp_client *c, int clean)
{
    struct smtp_client_event *ev = smtp_client_push_event(c, SMTP_CLIENT_EV_TXN_DONE);
    ev->txn = smtp_client_head(c)->txn;
    c->qhead = (c->qhead + 1) % c->depth;
    c->qcount--;
    if (!clean)
        c->unclean = 1;
    if (c->qcount)
        return;
    if (!c->unclean || c->quit_due) {
        /* No RSET needed in front of a QUIT. */
        c->unclean = 0;
        smtp_client_ready(c);
    } else {
        c->unclean = 0;
        c->st = ST_RSET;
        smtp_client_out_cmd(c, "RSET", NULL, NULL, NULL);
    }
}

/* ---- input validation -------------------------------------------------- */

static const char *check_b64(const char *s)
{
    if (!s)
        return NULL;
    if (!*s ||
        strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") != strlen(s))
        return "AUTH credentials are not base64";
    return NULL;
}

/* An address must not be able to change the command it goes into, and
 * must be one the job parser accepts too: both ask smtp_syntax. "" is the
 * null reverse path, for MAIL FROM only. */
const char *smtp_client_check_addr(const char *a, int null_ok)
{
    int utf8 = 0;
    if (!a)
        return "address is missing";
    if (!*a)
        return null_ok ? NULL : "recipient address is empty";
    return smtp_syntax_mailbox(a, strlen(a), &utf8);
}

/* ---- life cycle ------------------------------------------------------- */

static char *dup_or_null(const char *s, int *oom)
{
    char *d;
    if (!s)
        return NULL;
    d = strdup(s);
    if (!d)
        *oom = 1;
    return d;
}

struct smtp_client *smtp_client_new(const struct smtp_client_config *cfg, const char **err)
{
    struct smtp_client *c;
    const char *e;
    int oom = 0;
    unsigned depth;

    e = smtp_syntax_ehlo_name(cfg->ehlo_name);
    if (!e && cfg->tls_mode != SMTP_CLIENT_STARTTLS && cfg->tls_mode != SMTP_CLIENT_IMPLICIT_TLS)
        e = "TLS mode must be starttls or implicit";
    if (!e &&
        (!cfg->auth_plain_b64 != !cfg->auth_user_b64 || !cfg->auth_user_b64 != !cfg->auth_pass_b64))
        e = "AUTH credentials are incomplete";
    if (!e)
        e = check_b64(cfg->auth_plain_b64);
    if (!e)
        e = check_b64(cfg->auth_user_b64);
    if (!e)
        e = check_b64(cfg->auth_pass_b64);
    if (e) {
        *err = e;
        return NULL;
    }
    depth = cfg->pipeline_depth < 1                       ? 1
            : cfg->pipeline_depth > SMTP_CLIENT_DEPTH_MAX ? SMTP_CLIENT_DEPTH_MAX
                                                          : cfg->pipeline_depth;
    /* The queue of transactions and the output pieces sized for this
     * depth, in the same allocation: an idle connection of depth 1 keeps a
     * few hundred bytes of them, not the 4 KiB depth 32 would take. */
    c = calloc(1, sizeof(*c) + depth * sizeof(*c->q) + SEG_MAX(depth) * sizeof(*c->segs));
    if (!c)
        goto nomem;
    c->depth = depth;
    c->q = (struct smtp_client_inflight *)(void *)(c + 1);
    c->segs = (struct smtp_client_seg *)(void *)(c->q + depth);
    c->seg_max = SEG_MAX(depth);
    c->tls_mode = cfg->tls_mode;
    c->pipelining_allowed = 1;
    c->pipeline_body = cfg->pipeline_body;
    c->ehlo_name = dup_or_null(cfg->ehlo_name, &oom);
    c->plain_b64 = dup_or_null(cfg->auth_plain_b64, &oom);
    c->user_b64 = dup_or_null(cfg->auth_user_b64, &oom);
    c->pass_b64 = dup_or_null(cfg->auth_pass_b64, &oom);
    c->parser = smtp_reply_parser_new(&cfg->limits);
    if (oom || !c->parser)
        goto nomem;
    if (c->tls_mode == SMTP_CLIENT_IMPLICIT_TLS) {
        c->st = ST_TLS_WAIT;
        smtp_client_push_event(c, SMTP_CLIENT_EV_NEED_TLS);
    } else {
        c->st = ST_GREETING;
    }
    return c;
nomem:
    smtp_client_free(c);
    *err = "out of memory";
    return NULL;
}

static void wipe_free(char *s)
{
    if (s) {
        /* explicit_bzero: a plain memset before free may be optimised away. */
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

void smtp_client_free(struct smtp_client *c)
{
    if (!c)
        return;
    smtp_reply_parser_free(c->parser);
    free(c->ehlo_name);
    wipe_free(c->plain_b64);
    wipe_free(c->user_b64);
    wipe_free(c->pass_b64);
    out_clear(c);
    free(c->obuf);
    free(c);
}

/* ---- the session before READY ---------------------------------------- */

int smtp_client_is_421(const struct smtp_reply *r)
{
    return r->code == 421;
}

static void send_ehlo(struct smtp_client *c)
{
    if (c->quit_due) { /* asked to close while the session was being set up */
        smtp_client_send_quit(c);
        return;
    }
    c->st = ST_EHLO;
    smtp_client_out_cmd(c, "EHLO ", c->ehlo_name, NULL, NULL);
}

static void on_greeting(struct smtp_client *c, const struct smtp_reply *r)
{
    if (r->code == 220)
        send_ehlo(c);
    else if (smtp_client_is_421(r))
        smtp_client_fail(c, SMTP_CLIENT_R_SERVER_CLOSED, r, NULL, 0);
    else /* RFC 5321 3.1: after a 554 greeting the client should QUIT. */
        smtp_client_fail(c, SMTP_CLIENT_R_GREETING, r, NULL, 1);
}

static void start_auth(struct smtp_client *c)
{
    if (!(c->caps.ext & SMTP_EXT_AUTH) || !(c->caps.auth & (SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN))) {
        smtp_client_fail(c, SMTP_CLIENT_R_AUTH, NULL,
                         c->auth_before_tls && !(c->caps.ext & SMTP_EXT_AUTH)
                             ? "AUTH offered only before TLS; credentials withheld"
                             : "no supported AUTH mechanism (PLAIN, LOGIN) offered over TLS",
                         1);
        return;
    }
    if (c->caps.auth & SMTP_AUTH_PLAIN) {
        c->st = ST_AUTH_PLAIN;
        smtp_client_out_cmd(c, "AUTH PLAIN ", c->plain_b64, NULL, NULL);
    } else {
        c->st = ST_AUTH_LOGIN;
        smtp_client_out_cmd(c, "AUTH LOGIN", NULL, NULL, NULL);
    }
}

static void on_ehlo(struct smtp_client *c, const struct smtp_reply *r)
{
    if (r->code != 250) {
        if (smtp_client_is_421(r))
            smtp_client_fail(c, SMTP_CLIENT_R_SERVER_CLOSED, r, NULL, 0);
        else /* No HELO fallback: STARTTLS needs ESMTP. */
            smtp_client_fail(c, SMTP_CLIENT_R_EHLO, r, NULL, 1);
        return;
    }
    smtp_ehlo_parse(r, &c->caps);
    if (!c->tls) {
        c->auth_before_tls = (c->caps.ext & SMTP_EXT_AUTH) != 0;
        if (!(c->caps.ext & SMTP_EXT_STARTTLS)) {
            smtp_client_fail(c, SMTP_CLIENT_R_NO_STARTTLS, NULL, "server does not offer STARTTLS",
                             1);
            return;
        }
        if (c->quit_due) {
            smtp_client_send_quit(c);
            return;
        }
        /* STARTTLS goes alone: nothing may follow it in its group. */
        c->st = ST_STARTTLS;
        smtp_client_out_cmd(c, "STARTTLS", NULL, NULL, NULL);
        return;
    }
    if (c->plain_b64 && !c->quit_due)
        start_auth(c);
    else
        smtp_client_ready(c);
}

static void on_starttls(struct smtp_client *c, const struct smtp_reply *r)
{
    if (r->code == 220 && smtp_client_output_len(c)) {
        /* Our STARTTLS has not (wholly) left yet, so this 220 answers
         * nothing we said: a reply injected ahead of it (in the read that
         * carried the EHLO reply). Never start TLS on it. */
        smtp_client_fail(c, SMTP_CLIENT_R_INJECTION, NULL,
                         "a 220 arrived before our STARTTLS was sent (response injection)", 0);
    } else if (r->code == 220) {
        c->st = ST_TLS_WAIT;
        smtp_client_push_event(c, SMTP_CLIENT_EV_NEED_TLS);
    } else if (smtp_client_is_421(r)) {
        smtp_client_fail(c, SMTP_CLIENT_R_SERVER_CLOSED, r, NULL, 0);
    } else if (r->code >= 400) {
        smtp_client_fail(c, SMTP_CLIENT_R_STARTTLS_REJECTED, r, NULL, 1);
    } else {
        /* A 2xx/3xx other than 220 would let a server (or an attacker) keep
         * the session in plaintext: never continue, never QUIT politely. */
        smtp_client_fail(c, SMTP_CLIENT_R_STARTTLS_REJECTED, r, NULL, 0);
    }
}

static void on_auth(struct smtp_client *c, const struct smtp_reply *r)
{
    if (r->code == 235 && (c->st == ST_AUTH_PLAIN || c->st == ST_AUTH_LOGIN_PASS)) {
        smtp_client_ready(c);
    } else if (r->code == 334 && c->st == ST_AUTH_LOGIN) {
        c->st = ST_AUTH_LOGIN_USER;
        smtp_client_out_cmd(c, c->user_b64, NULL, NULL, NULL);
    } else if (r->code == 334 && c->st == ST_AUTH_LOGIN_USER) {
        c->st = ST_AUTH_LOGIN_PASS;
        smtp_client_out_cmd(c, c->pass_b64, NULL, NULL, NULL);
    } else if (smtp_client_is_421(r)) {
        smtp_client_fail(c, SMTP_CLIENT_R_SERVER_CLOSED, r, NULL, 0);
    } else if (r->code == 334) {
        /* A challenge we did not expect: cancel the exchange (RFC 4954 4). */
        smtp_client_out_cmd(c, "*", NULL, NULL, NULL);
        smtp_client_fail(c, SMTP_CLIENT_R_AUTH, r, NULL, 0);
    } else {
        smtp_client_fail(c, SMTP_CLIENT_R_AUTH, r, NULL, 1);
    }
}

/* ---- feeding ---------------------------------------------------------- */

static void on_reply(struct smtp_client *c, const struct smtp_reply *r)
{
    switch (c->st) {
    case ST_GREETING:
        on_greeting(c, r);
        break;
    case ST_EHLO:
        on_ehlo(c, r);
        break;
    case ST_STARTTLS:
        on_starttls(c, r);
        break;
    case ST_AUTH_PLAIN:
    case ST_AUTH_LOGIN:
    case ST_AUTH_LOGIN_USER:
    case ST_AUTH_LOGIN_PASS:
        on_auth(c, r);
        break;
    case ST_TXN:
        smtp_client_on_txn_reply(c, r);
        break;
    case ST_NOOP:
    case ST_RSET:
        if (r->code >= 200 && r->code < 300)
            smtp_client_ready(c);
        else if (smtp_client_is_421(r))
            smtp_client_fail(c, SMTP_CLIENT_R_SERVER_CLOSED, r, NULL, 0);
        else
            smtp_client_fail(c, SMTP_CLIENT_R_PROTOCOL, r, NULL, 1);
        break;
    case ST_QUIT:
        c->st = ST_CLOSED;
        smtp_client_push_event(c, SMTP_CLIENT_EV_CLOSED);
        break;
    case ST_READY:
        /* Servers announce an idle timeout with an unsolicited 421. */
        smtp_client_fail(
            c, smtp_client_is_421(r) ? SMTP_CLIENT_R_SERVER_CLOSED : SMTP_CLIENT_R_PROTOCOL, r,
            NULL, 0);
        break;
    case ST_TLS_WAIT:
    case ST_CLOSED:
    case ST_FAILED:
        break;
    }
}

long smtp_client_feed(struct smtp_client *c, const void *buf, size_t len)
{
    const char *p = buf;
    size_t off = 0;

    while (off < len) {
        struct smtp_reply r;
        long n;
        if (c->st == ST_FAILED)
            return -1;
        if (c->st == ST_CLOSED)
            return (long)len; /* after QUIT's reply nothing matters */
        if (c->st == ST_TLS_WAIT) {
            /* Plaintext after the STARTTLS 220 (or before an implicit
             * handshake) would be read as if it came over TLS. */
            smtp_client_fail(
                c,
                c->tls_mode == SMTP_CLIENT_STARTTLS ? SMTP_CLIENT_R_INJECTION
                                                    : SMTP_CLIENT_R_PROTOCOL,
                NULL,
                c->tls_mode == SMTP_CLIENT_STARTTLS
                    ? "bytes received after the STARTTLS 220 reply (response injection)"
                    : "plaintext received before the TLS handshake",
                0);
            return -1;
        }
        if (c->evcount > EVQ_MAX - 2)
            break;
        n = smtp_reply_parser_feed(c->parser, p + off, len - off, &r);
        if (n < 0) {
            char d[96];
            snprintf(d, sizeof(d), "malformed reply: %s", smtp_reply_strerror((int)n));
            smtp_client_fail(c, SMTP_CLIENT_R_PROTOCOL, NULL, d, 0);
            return -1;
        }
        if (n == 0) {
            off = len;
            break;
        }
        off += (size_t)n;
        on_reply(c, &r);
        smtp_client_check_oom(c);
    }
    if (c->st == ST_FAILED)
        return -1;
    return (long)off;
}

int smtp_client_next_event(struct smtp_client *c, struct smtp_client_event *ev)
{
    if (!c->evcount)
        return 0;
    *ev = c->evq[c->evhead];
    c->evhead = (c->evhead + 1) % EVQ_MAX;
    c->evcount--;
    return 1;
}

/* ---- output ----------------------------------------------------------- */

size_t smtp_client_output(const struct smtp_client *c, struct smtp_client_out *out, size_t max)
{
    size_t i, n = 0;
    for (i = 0; i < c->nseg && n < max; i++) {
        const struct smtp_client_seg *s = &c->segs[i];
        size_t skip = i == 0 ? c->seg_sent : 0;
        out[n].base = (s->body ? s->ptr : c->obuf + s->off) + skip;
        out[n].len = s->len - skip;
        out[n].body = s->body;
        out[n].txn = s->txn;
        n++;
    }
    return n;
}

size_t smtp_client_output_len(const struct smtp_client *c)
{
    size_t i, n = 0;
    for (i = 0; i < c->nseg; i++)
        n += c->segs[i].len;
    return n - c->seg_sent;
}

void smtp_client_sent(struct smtp_client *c, size_t n)
{
    while (n && c->nseg) {
        struct smtp_client_seg *s = &c->segs[0];
        size_t left = s->len - c->seg_sent;
        if (n < left) {
            c->seg_sent += n;
            return;
        }
        n -= left;
        if (s->body)
            s->txn->body_sent = 1;
        memmove(&c->segs[0], &c->segs[1], (c->nseg - 1) * sizeof(c->segs[0]));
        c->nseg--;
        c->seg_sent = 0;
    }
    if (!c->nseg)
        out_clear(c);
}

/* ---- caller-reported events ----------------------------------------- */

void smtp_client_tls_done(struct smtp_client *c, int ok, enum smtp_client_reason reason,
                          const char *detail)
{
    if (c->st != ST_TLS_WAIT)
        return;
    if (!ok) {
        smtp_client_fail(c, reason ? reason : SMTP_CLIENT_R_HANDSHAKE, NULL, detail, 0);
        return;
    }
    c->tls = 1;
    /* RFC 3207 4.2: forget everything learnt before TLS. */
    memset(&c->caps, 0, sizeof(c->caps));
    smtp_reply_parser_reset(c->parser);
    if (c->tls_mode == SMTP_CLIENT_IMPLICIT_TLS)
        c->st = ST_GREETING;
    else
        send_ehlo(c);
    smtp_client_check_oom(c);
}

void smtp_client_abort(struct smtp_client *c, enum smtp_client_reason reason, const char *detail)
{
    smtp_client_fail(c, reason, NULL, detail, 0);
}

void smtp_client_eof(struct smtp_client *c)
{
    if (c->st == ST_QUIT) {
        c->st = ST_CLOSED;
        smtp_client_push_event(c, SMTP_CLIENT_EV_CLOSED);
        return;
    }
    if (c->after_421)
        smtp_client_fail(c, SMTP_CLIENT_R_SERVER_CLOSED, NULL, "closed by the server after 421", 0);
    else
        smtp_client_fail(c, SMTP_CLIENT_R_CONNECTION, NULL, "connection closed by the server", 0);
}

/* ---- idle-time commands and queries ----------------------------------- */

int smtp_client_noop(struct smtp_client *c)
{
    if (c->st != ST_READY)
        return -1;
    c->st = ST_NOOP;
    return smtp_client_out_cmd(c, "NOOP", NULL, NULL, NULL);
}

int smtp_client_quit(struct smtp_client *c)
{
    switch (c->st) {
    case ST_READY:
        c->quit_due = 1;
        smtp_client_send_quit(c);
        return c->oom ? -1 : 0;
    case ST_QUIT:
    case ST_CLOSED:
    case ST_FAILED:
        return -1;
    default:
        /* A command or transaction is in flight (or the handshake): its
         * reply comes first; smtp_client_ready() and the set-up steps say
         * QUIT in place of what would follow. */
        c->quit_due = 1;
        return 0;
    }
}

int smtp_client_quitting(const struct smtp_client *c)
{
    /* After a 421 to MAIL the session is ending: what is still awaited is
     * bounded as QUIT's reply is, not by the stage timers. */
    return c->st == ST_QUIT || (c->after_421 && c->st != ST_FAILED && c->st != ST_CLOSED);
}

static int has_text(const struct smtp_reply *r, const char *needle)
{
    size_t n = strlen(needle), i, k;
    for (i = 0; i + n <= r->text_len; i++) {
        for (k = 0; k < n; k++) {
            char ch = r->text[i + k];
            if (ch >= 'A' && ch <= 'Z')
                ch = (char)(ch - 'A' + 'a');
            if (ch != needle[k])
                break;
        }
        if (k == n)
            return 1;
    }
    return 0;
}

int smtp_client_is_session_limit(const struct smtp_reply *r)
{
    if (r->code == 421)
        return 1;
    if (r->code < 400 || r->code >= 500)
        return 0;
    /* To MAIL, X.5.3 can only be about messages: recipients are not named
     * yet (RFC 3463 defines it as "too many recipients"). */
    if (r->code == 452 && strcmp(r->enhanced, "4.5.3") == 0)
        return 1;
    return has_text(r, "too many messages") || has_text(r, "too many mails");
}

enum message_encoding smtp_client_body_encoding(const struct smtp_client *c)
{
    return (c->caps.ext & SMTP_EXT_CHUNKING) ? MESSAGE_ENC_BDAT : MESSAGE_ENC_DATA;
}

int smtp_client_is_ready(const struct smtp_client *c)
{
    return c->st == ST_READY;
}

/* Back to back only when each transaction goes whole in one burst: with
 * DATA the body waits for a 354, and without pipeline_body for the RCPT
 * replies, so the next MAIL could not follow it anyway. */
static int can_pipeline_txns(const struct smtp_client *c)
{
    return c->depth > 1 && c->pipeline_body && c->pipelining_allowed &&
           (c->caps.ext & SMTP_EXT_PIPELINING) && (c->caps.ext & SMTP_EXT_CHUNKING);
}

unsigned smtp_client_can_start(const struct smtp_client *c)
{
    if (c->quit_due)
        return 0;
    if (c->st == ST_READY)
        return can_pipeline_txns(c) ? c->depth : 1;
    /* Not behind one that already failed: it still owes us an RSET. */
    if (c->st == ST_TXN && can_pipeline_txns(c) && !c->unclean && c->qcount < c->depth)
        return c->depth - (unsigned)c->qcount;
    return 0;
}

const struct smtp_client_txn *smtp_client_current(const struct smtp_client *c)
{
    return c->qcount ? c->q[c->qhead].txn : NULL;
}

int smtp_client_tls_active(const struct smtp_client *c)
{
    return c->tls;
}

const struct smtp_ehlo *smtp_client_caps(const struct smtp_client *c)
{
    return &c->caps;
}

void smtp_client_trim(struct smtp_client *c)
{
    smtp_reply_parser_trim(c->parser);
    if (!c->nseg && c->ocap > OBUF_FLOOR) {
        char *p = realloc(c->obuf, OBUF_FLOOR);
        if (p) {
            c->obuf = p;
            c->ocap = OBUF_FLOOR;
        }
    }
}
