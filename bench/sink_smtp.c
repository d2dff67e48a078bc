/*
 * sink_smtp: the server-side SMTP session of ringmail-sink (sink_smtp.h).
 *
 * Three input modes: command lines, a DATA body (un-stuffed as it arrives,
 * by a five-state machine equivalent to message_unstuff() over the whole
 * body, with a memchr fast path inside lines), and BDAT chunk octets
 * (counted exactly, whatever the fate of the transaction, so a rejected
 * chunk never turns into commands). Every reply passes through one place
 * (reply_at) where the fault options of its point apply.
 */
#include "sink_smtp.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "message.h"

#include "sink_smtp_internal.h"

static const char *const point_names[SINK_SMTP_P_COUNT] = {
    [SINK_SMTP_P_GREETING] = "GREETING",   [SINK_SMTP_P_EHLO] = "EHLO",
    [SINK_SMTP_P_HELO] = "HELO",           [SINK_SMTP_P_STARTTLS] = "STARTTLS",
    [SINK_SMTP_P_AUTH] = "AUTH",           [SINK_SMTP_P_MAIL] = "MAIL",
    [SINK_SMTP_P_RCPT] = "RCPT",           [SINK_SMTP_P_DATA] = "DATA",
    [SINK_SMTP_P_DATA_CMD] = "DATA-CMD",   [SINK_SMTP_P_BDAT] = "BDAT",
    [SINK_SMTP_P_RSET] = "RSET",           [SINK_SMTP_P_NOOP] = "NOOP",
    [SINK_SMTP_P_VRFY] = "VRFY",           [SINK_SMTP_P_QUIT] = "QUIT",
    [SINK_SMTP_P_DATA_BODY] = "DATA-BODY", [SINK_SMTP_P_BDAT_BODY] = "BDAT-BODY",
    [SINK_SMTP_P_DATA_END] = "DATA-END",
};

const char *sink_smtp_point_name(enum sink_smtp_point p)
{
    if ((unsigned)p < SINK_SMTP_P_COUNT)
        return point_names[p];
    return "unknown";
}

int sink_smtp_point_parse(const char *s, size_t len)
{
    if (len == 1 && s[0] == '.')
        return SINK_SMTP_P_DATA;
    if (len == 7 && strncasecmp(s, "CONNECT", 7) == 0)
        return SINK_SMTP_P_GREETING;
    for (int i = 0; i < SINK_SMTP_P_COUNT; i++)
        if (strlen(point_names[i]) == len && strncasecmp(s, point_names[i], len) == 0)
            return i;
    return -1;
}

bool sink_smtp_point_has_reply(enum sink_smtp_point p)
{
    return p < SINK_SMTP_P_DATA_BODY;
}

const char *sink_smtp_event_name(enum sink_smtp_event_type t)
{
    static const char *const names[] = {
        [SINK_SMTP_EV_NONE] = "none",         [SINK_SMTP_EV_MESSAGE] = "message",
        [SINK_SMTP_EV_STARTTLS] = "starttls", [SINK_SMTP_EV_DELAY] = "delay",
        [SINK_SMTP_EV_STALL] = "stall",       [SINK_SMTP_EV_CLOSE] = "close",
        [SINK_SMTP_EV_AUTH] = "auth",
    };
    if ((unsigned)t < sizeof(names) / sizeof(names[0]))
        return names[t];
    return "unknown";
}

void sink_smtp_config_init(struct sink_smtp_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->pipelining = true;
    cfg->chunking = true;
    cfg->eightbitmime = true;
    cfg->smtputf8 = true;
    cfg->size_max = 35 * 1024 * 1024;
    cfg->tls_available = true;
    cfg->starttls = true;
}

/* ---- buffers ---- */

static int buf_reserve(struct buf *b, size_t extra)
{
    size_t cap;
    char *p;

    if (b->cap - b->len >= extra)
        return 0;
    cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra) {
        if (cap > SIZE_MAX / 2)
            return -1;
        cap *= 2;
    }
    p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

int sink_smtp_buf_put(struct buf *b, const void *p, size_t n)
{
    if (buf_reserve(b, n) < 0)
        return -1;
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

/* ---- events and output ---- */

void sink_smtp_ev_push(struct sink_smtp *s, const struct sink_smtp_event *ev)
{
    if (s->ev_count == EV_MAX)
        abort(); /* feed stops at the first event: two per step at most */
    s->ev[(s->ev_head + s->ev_count++) % EV_MAX] = *ev;
}

void sink_smtp_ev_close(struct sink_smtp *s, enum sink_smtp_point p, bool fault, bool flush)
{
    struct sink_smtp_event ev = {.type = SINK_SMTP_EV_CLOSE, .point = p};

    ev.fault = fault;
    ev.flush = flush;
    sink_smtp_ev_push(s, &ev);
    s->mode = M_CLOSED;
}

static void out_put(struct sink_smtp *s, const void *p, size_t n)
{
    if (s->mode == M_CLOSED)
        return;
    if (sink_smtp_buf_put(&s->out, p, n) < 0)
        sink_smtp_ev_close(s, SINK_SMTP_P_GREETING, false, false); /* cannot answer: give up */
}

void sink_smtp_out_str(struct sink_smtp *s, const char *line)
{
    out_put(s, line, strlen(line));
}

const char *sink_smtp_host(const struct sink_smtp *s)
{
    return s->cfg->hostname ? s->cfg->hostname : "ringmail-sink";
}

/* ---- faults ---- */

struct hits {
    bool disconnect, stall, reply, delay;
};

static bool every(unsigned n, unsigned long long seen)
{
    return n && seen % n == 0;
}

static struct hits hits_at(struct sink_smtp *s, enum sink_smtp_point p)
{
    struct sink_smtp_faults *f = &s->cfg->faults[p];
    struct hits h = {false, false, false, false};

    if (!f->reply.every && !f->delay_every && !f->stall_every && !f->disconnect_every)
        return h; /* nothing configured: leave the shared counter alone */
    f->seen++;
    h.disconnect = every(f->disconnect_every, f->seen);
    h.stall = every(f->stall_every, f->seen);
    h.reply = every(f->reply.every, f->seen);
    h.delay = every(f->delay_every, f->seen);
    return h;
}

/* Sends line (CRLF-terminated), or the fault's reply when it hits, held
 * back by a delay when that hits. Returns the code sent (0: the line has
 * none, as a --starttls-reply of garbage). */
static int send_reply(struct sink_smtp *s, enum sink_smtp_point p, const struct hits *h,
                      const char *line, size_t n)
{
    const struct sink_smtp_fault_reply *r = &s->cfg->faults[p].reply;
    int code = atoi(line);

    if (h->delay && !s->held) {
        struct sink_smtp_event ev = {.type = SINK_SMTP_EV_DELAY, .point = p};
        ev.ms = s->cfg->faults[p].delay_ms;
        s->held = true;
        s->out_hold = s->out.len;
        sink_smtp_ev_push(s, &ev);
    }
    if (h->reply) {
        char tmp[SINK_SMTP_TEXT_MAX + 64];
        int k;
        code = r->code;
        if (r->text[0])
            k = snprintf(tmp, sizeof(tmp), "%d %s\r\n", code, r->text);
        else if (code / 100 == 2 || code / 100 == 4 || code / 100 == 5)
            k = snprintf(tmp, sizeof(tmp), "%d %d.0.0 Fault injected at %s\r\n", code, code / 100,
                         point_names[p]);
        else
            k = snprintf(tmp, sizeof(tmp), "%d Fault injected at %s\r\n", code, point_names[p]);
        out_put(s, tmp, (size_t)k);
    } else {
        out_put(s, line, n);
    }
    if (code == 421 && s->mode != M_CLOSED)
        sink_smtp_ev_close(s, p, h->reply, true);
    return code;
}

/* The usual path: a disconnect or a stall replaces the reply (-1). */
int sink_smtp_reply_at(struct sink_smtp *s, enum sink_smtp_point p, const char *line)
{
    struct hits h = hits_at(s, p);

    if (h.disconnect) {
        sink_smtp_ev_close(s, p, true, true);
        return -1;
    }
    if (h.stall) {
        struct sink_smtp_event ev = {.type = SINK_SMTP_EV_STALL, .point = p};
        sink_smtp_ev_push(s, &ev);
        s->mode = M_DISCARD;
        return -1;
    }
    return send_reply(s, p, &h, line, strlen(line));
}

/* ---- sessions ---- */

struct sink_smtp *sink_smtp_create(struct sink_smtp_config *cfg)
{
    struct sink_smtp *s = calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    s->cfg = cfg;
    s->mode = M_CMD;
    return s;
}

void sink_smtp_destroy(struct sink_smtp *s)
{
    if (!s)
        return;
    free(s->from.p);
    free(s->rcpts.p);
    free(s->msg.p);
    free(s->out.p);
    free(s);
}

void sink_smtp_txn_reset(struct sink_smtp *s)
{
    s->txn = s->txn_8bit = s->txn_utf8 = false;
    s->from.len = s->rcpts.len = 0;
    s->nrcpt = 0;
    s->msg.len = 0;
    s->msg_size = 0;
    s->msg_over = s->msg_nomem = s->body_started = s->bdat_open = false;
}

void sink_smtp_start(struct sink_smtp *s, bool tls)
{
    char line[REPLY_MAX];
    int code;

    s->tls = tls;
    snprintf(line, sizeof(line), "220 %s ESMTP ringmail-sink\r\n", sink_smtp_host(s));
    code = sink_smtp_reply_at(s, SINK_SMTP_P_GREETING, line);
    if (code == 554)
        s->rejected = true;
}

void sink_smtp_tls_started(struct sink_smtp *s)
{
    sink_smtp_txn_reset(s);
    s->tls = true;
    s->helo = s->authed = false;
    s->user[0] = '\0';
    s->auth_step = A_NONE;
    s->line_len = 0;
    s->line_skip = false;
    if (s->mode != M_CLOSED)
        s->mode = M_CMD;
}

void sink_smtp_resume(struct sink_smtp *s)
{
    s->held = false;
}

void sink_smtp_shutdown(struct sink_smtp *s)
{
    char line[REPLY_MAX];

    if (s->mode == M_CLOSED)
        return;
    s->held = false;
    snprintf(line, sizeof(line), "421 4.3.2 %s Service shutting down\r\n", sink_smtp_host(s));
    sink_smtp_out_str(s, line);
    sink_smtp_ev_close(s, SINK_SMTP_P_GREETING, false, true);
}

int sink_smtp_next_event(struct sink_smtp *s, struct sink_smtp_event *ev)
{
    if (!s->ev_count)
        return 0;
    *ev = s->ev[s->ev_head];
    s->ev_head = (s->ev_head + 1) % EV_MAX;
    s->ev_count--;
    return 1;
}

const char *sink_smtp_output(const struct sink_smtp *s, size_t *len)
{
    size_t end = s->held ? s->out_hold : s->out.len;

    *len = end - s->out_sent;
    return s->out.p ? s->out.p + s->out_sent : "";
}

void sink_smtp_sent(struct sink_smtp *s, size_t n)
{
    s->out_sent += n;
    if (s->out_sent == s->out.len) {
        s->out.len = s->out_sent = 0;
        s->out_hold = 0;
    }
}

bool sink_smtp_idle(const struct sink_smtp *s)
{
    return s->mode == M_CMD && s->line_len == 0 && !s->line_skip && s->auth_step == A_NONE;
}

bool sink_smtp_tls_active(const struct sink_smtp *s)
{
    return s->tls;
}

const char *sink_smtp_auth_user(const struct sink_smtp *s)
{
    return s->authed ? s->user : NULL;
}

void sink_smtp_message(const struct sink_smtp *s, struct sink_smtp_message *m)
{
    memset(m, 0, sizeof(*m));
    m->queue_id = s->queue_id;
    m->from = s->from.p ? s->from.p : "";
    m->rcpts = s->rcpts.p ? s->rcpts.p : "";
    m->nrcpt = s->nrcpt;
    m->body = s->msg.p ? s->msg.p : "";
    m->body_len = s->msg.len;
    m->size = s->msg_size;
    m->eightbitmime = s->txn_8bit;
    m->smtputf8 = s->txn_utf8;
    m->bdat = s->msg_bdat;
    if (s->msgid_len >= 0) {
        m->message_id = s->msgid;
        m->message_id_len = (size_t)s->msgid_len;
    }
}

/* ---- Message-ID ---- */

static bool is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

long sink_smtp_find_message_id(const char *msg, size_t len, char *out, size_t cap)
{
    static const char name[] = "message-id";
    const size_t nlen = sizeof(name) - 1;
    size_t pos = 0, n = 0;
    bool found = false;

    if (!cap)
        return -1;
    while (pos < len) {
        const char *lf = memchr(msg + pos, '\n', len - pos);
        size_t end = lf ? (size_t)(lf - msg) : len, next = lf ? end + 1 : len;
        size_t vend = end > pos && msg[end - 1] == '\r' ? end - 1 : end;

        if (vend == pos)
            break; /* the empty line: the head is over */
        if (found) {
            if (!is_wsp(msg[pos]))
                break; /* the next header: the value is complete */
        } else if (vend - pos > nlen && strncasecmp(msg + pos, name, nlen) == 0) {
            size_t c = pos + nlen;
            while (c < vend && is_wsp(msg[c]))
                c++;
            if (c < vend && msg[c] == ':') {
                found = true;
                pos = c + 1;
            }
        }
        /* A folded line contributes its text, whitespace included: the
         * unfolding of RFC 5322 2.2.3 only removes the CRLF. A NUL or a
         * stray CR cannot be part of a key written one per line. */
        for (size_t i = pos; found && i < vend; i++)
            if (n + 1 < cap && (n || !is_wsp(msg[i])) && msg[i] != '\0' && msg[i] != '\r')
                out[n++] = msg[i];
        pos = next;
    }
    if (!found)
        return -1;
    while (n && is_wsp(out[n - 1]))
        n--;
    out[n] = '\0';
    return (long)n;
}

/* ---- messages ---- */

static void msg_put(struct sink_smtp *s, const void *p, size_t n)
{
    size_t keep = n;

    s->msg_size += n;
    if (s->cfg->size_max && s->msg_size > s->cfg->size_max)
        s->msg_over = true;
    if (s->msg_over || s->msg_nomem)
        return;
    if (!s->cfg->keep_body) {
        size_t room = s->msg.len < SINK_SMTP_HEAD_KEEP ? SINK_SMTP_HEAD_KEEP - s->msg.len : 0;
        if (keep > room)
            keep = room;
    }
    if (keep && sink_smtp_buf_put(&s->msg, p, keep) < 0)
        s->msg_nomem = true;
}

/* The message is complete and nothing in the session refuses it. */
static void accept_message(struct sink_smtp *s, enum sink_smtp_point p, bool bdat)
{
    struct hits h = hits_at(s, p), end;
    struct sink_smtp_event ev = {.type = SINK_SMTP_EV_MESSAGE, .point = p};
    char line[REPLY_MAX];
    int k;

    if (h.disconnect) {
        sink_smtp_ev_close(s, p, true, true);
        return;
    }
    if (h.stall) {
        struct sink_smtp_event st = {.type = SINK_SMTP_EV_STALL, .point = p};
        sink_smtp_ev_push(s, &st);
        s->mode = M_DISCARD;
        return;
    }
    if (h.reply && s->cfg->faults[p].reply.code >= 400) {
        send_reply(s, p, &h, "", 0);
        return;
    }
    s->queue_id = ++s->cfg->next_queue_id;
    s->session_mails++;
    s->msg_bdat = bdat;
    s->msgid_len =
        sink_smtp_find_message_id(s->msg.p ? s->msg.p : "", s->msg.len, s->msgid, sizeof(s->msgid));
    sink_smtp_ev_push(s, &ev);
    end = hits_at(s, SINK_SMTP_P_DATA_END);
    if (end.disconnect) {
        sink_smtp_ev_close(s, SINK_SMTP_P_DATA_END, true, true);
        return;
    }
    k = snprintf(line, sizeof(line), "250 2.0.0 Ok: queued as %llu\r\n", s->queue_id);
    send_reply(s, p, &h, line, (size_t)k);
}

/* The transaction is over. An accepted message stays readable through
 * sink_smtp_message() until the next MAIL resets it; a refused one goes now. */
static void message_done(struct sink_smtp *s, bool accepted)
{
    if (accepted) {
        s->txn = false;
        s->bdat_open = false;
    } else {
        sink_smtp_txn_reset(s);
    }
}

static void end_of_data(struct sink_smtp *s)
{
    unsigned long long before = s->cfg->next_queue_id;

    s->mode = M_CMD;
    if (s->msg_nomem)
        sink_smtp_out_str(s, "451 4.3.0 Error: out of memory\r\n");
    else if (s->msg_over)
        sink_smtp_out_str(s, "552 5.3.4 Error: message exceeds fixed maximum message size\r\n");
    else
        accept_message(s, SINK_SMTP_P_DATA, false);
    message_done(s, s->cfg->next_queue_id != before);
}

static size_t feed_data(struct sink_smtp *s, const unsigned char *p, size_t len)
{
    size_t i = 0;

    if (!s->body_started) {
        s->body_started = true;
        if (hits_at(s, SINK_SMTP_P_DATA_BODY).disconnect) {
            sink_smtp_ev_close(s, SINK_SMTP_P_DATA_BODY, true, true);
            return 0;
        }
    }
    while (i < len) {
        switch (s->dstate) {
        case D_IN_LINE: {
            const unsigned char *cr = memchr(p + i, '\r', len - i);
            size_t n = cr ? (size_t)(cr - (p + i)) + 1 : len - i;
            msg_put(s, p + i, n);
            i += n;
            if (cr)
                s->dstate = D_CR;
            break;
        }
        case D_CR: {
            unsigned char c = p[i++];
            msg_put(s, &c, 1);
            s->dstate = c == '\n' ? D_LINE_START : c == '\r' ? D_CR : D_IN_LINE;
            break;
        }
        case D_LINE_START:
            if (p[i] == '.') {
                i++;
                s->dstate = D_DOT;
            } else {
                s->dstate = D_IN_LINE;
            }
            break;
        case D_DOT:
            /* The dot is the stuffing of RFC 5321 4.5.2 unless CRLF follows. */
            if (p[i] == '\r') {
                i++;
                s->dstate = D_DOT_CR;
            } else {
                s->dstate = D_IN_LINE;
            }
            break;
        case D_DOT_CR:
            if (p[i] == '\n') {
                end_of_data(s);
                return i + 1;
            }
            msg_put(s, "\r", 1); /* ".\rX": not the end; the dot was stuffing */
            s->dstate = D_CR;
            break;
        }
    }
    return i;
}

void sink_smtp_finish_bdat(struct sink_smtp *s)
{
    char line[REPLY_MAX];
    unsigned long long before = s->cfg->next_queue_id;
    int code;

    s->mode = M_CMD;
    if (s->bdat_reject) {
        sink_smtp_out_str(s, s->bdat_reject);
        return;
    }
    if (s->msg_nomem || s->msg_over) {
        sink_smtp_out_str(
            s, s->msg_nomem ? "451 4.3.0 Error: out of memory\r\n"
                            : "552 5.3.4 Error: message exceeds fixed maximum message size\r\n");
        sink_smtp_txn_reset(s);
        return;
    }
    if (s->bdat_last) {
        accept_message(s, SINK_SMTP_P_BDAT, true);
        message_done(s, s->cfg->next_queue_id != before);
        return;
    }
    snprintf(line, sizeof(line), "250 2.0.0 %llu octets received\r\n",
             (unsigned long long)s->msg_size);
    code = sink_smtp_reply_at(s, SINK_SMTP_P_BDAT, line);
    if (code >= 400 || code < 0)
        sink_smtp_txn_reset(s); /* RFC 3030 3: a failed chunk fails the transaction */
    else
        s->bdat_open = true;
}

static size_t feed_bdat(struct sink_smtp *s, const unsigned char *p, size_t len)
{
    size_t n = len;

    if (!s->body_started && !s->bdat_reject) {
        s->body_started = true;
        if (hits_at(s, SINK_SMTP_P_BDAT_BODY).disconnect) {
            sink_smtp_ev_close(s, SINK_SMTP_P_BDAT_BODY, true, true);
            return 0;
        }
    }
    if (n > s->bdat_left)
        n = (size_t)s->bdat_left;
    if (!s->bdat_reject)
        msg_put(s, p, n);
    s->bdat_left -= n;
    if (s->bdat_left == 0)
        sink_smtp_finish_bdat(s);
    return n;
}

/* ---- command lines ---- */

/* A line ends at LF (a CR before it is dropped by sink_smtp_line's caller):
 * lenient like most servers for commands, strict CRLF.CRLF for DATA. */
static size_t feed_cmd(struct sink_smtp *s, const unsigned char *p, size_t len)
{
    const unsigned char *lf = memchr(p, '\n', len);
    size_t n = lf ? (size_t)(lf - p) + 1 : len;
    const char *line;
    size_t total;

    if (s->line_skip) {
        if (lf) {
            s->line_skip = false;
            sink_smtp_out_str(s, "500 5.5.2 Error: line too long\r\n");
        }
        return n;
    }
    if (!lf) {
        /* The line will be at least one octet (LF) longer than this. */
        if (s->line_len + len + 1 > SINK_SMTP_AUTH_LINE_MAX) {
            s->line_len = 0;
            s->line_skip = true;
            s->auth_step = A_NONE;
        } else {
            memcpy(s->line + s->line_len, p, len);
            s->line_len += len;
        }
        return len;
    }
    total = s->line_len + n;
    if (total > SINK_SMTP_AUTH_LINE_MAX) {
        s->line_len = 0;
        s->auth_step = A_NONE;
        sink_smtp_out_str(s, "500 5.5.2 Error: line too long\r\n");
        return n;
    }
    if (s->line_len) {
        memcpy(s->line + s->line_len, p, n);
        line = s->line;
    } else {
        line = (const char *)p; /* the whole line is here: no copy */
    }
    s->line_len = 0;
    total--; /* the LF */
    if (total && line[total - 1] == '\r')
        total--;
    sink_smtp_line(s, line, total);
    return n;
}

size_t sink_smtp_feed(struct sink_smtp *s, const void *data, size_t len)
{
    const unsigned char *p = data;
    size_t pos = 0;

    while (pos < len) {
        size_t n = 0;

        if (s->ev_count || s->held || s->mode == M_CLOSED || s->out.len - s->out_sent >= OUT_SOFT)
            break;
        switch (s->mode) {
        case M_CMD:
            n = feed_cmd(s, p + pos, len - pos);
            break;
        case M_DATA:
            n = feed_data(s, p + pos, len - pos);
            break;
        case M_BDAT:
            n = feed_bdat(s, p + pos, len - pos);
            break;
        case M_DISCARD:
            n = len - pos;
            break;
        case M_CLOSED:
            break;
        }
        pos += n;
    }
    return pos;
}
