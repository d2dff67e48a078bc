/*
 * sink_smtp_cmd: the command half of the sink's SMTP session: one complete
 * line in, its reply (through sink_smtp_reply_at, where faults apply) and
 * the session's state changes out. Sequence rules follow RFC 5321 4.1.4 and
 * 3.3, STARTTLS RFC 3207, AUTH RFC 4954, BDAT RFC 3030.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "message.h"
#include "sink_smtp_internal.h"

#define R_BAD_SEQ_HELO "503 5.5.1 Error: send HELO/EHLO first\r\n"
#define R_BAD_SEQ_MAIL "503 5.5.1 Error: need MAIL command\r\n"
#define R_NO_RCPT      "554 5.5.1 Error: no valid recipients\r\n"
#define R_NOT_IMPL     "502 5.5.1 Error: command not implemented\r\n"
#define R_UNKNOWN      "500 5.5.2 Error: command not recognized\r\n"
#define R_TOO_LONG     "500 5.5.2 Error: line too long\r\n"
#define R_NEED_TLS     "530 5.7.0 Must issue a STARTTLS command first\r\n"
#define R_NEED_AUTH    "530 5.7.0 Authentication required\r\n"
#define R_TOO_BIG      "552 5.3.4 Error: message exceeds fixed maximum message size\r\n"

/* A command's argument: the text after the verb and its spaces. */
struct arg {
    const char *p;
    size_t n;
};

static bool arg_empty(const struct arg *a)
{
    return a->n == 0;
}

static bool has_prefix(const struct arg *a, const char *prefix)
{
    size_t k = strlen(prefix);
    return a->n >= k && strncasecmp(a->p, prefix, k) == 0;
}

static void reply_unsupported(struct sink_smtp *s, const struct arg *key)
{
    char line[SINK_SMTP_LINE_MAX + 64];

    snprintf(line, sizeof(line), "555 5.5.4 Unsupported option: %.*s\r\n", (int)key->n, key->p);
    sink_smtp_out_str(s, line);
}

/* ---- EHLO, HELO, STARTTLS ---- */

static void cmd_ehlo(struct sink_smtp *s, const struct arg *a, bool ehlo)
{
    const struct sink_smtp_config *c = s->cfg;
    char r[1024];
    size_t k = 0;

    if (arg_empty(a)) {
        sink_smtp_out_str(s, ehlo ? "501 5.5.4 Syntax: EHLO hostname\r\n"
                                  : "501 5.5.4 Syntax: HELO hostname\r\n");
        return;
    }
    if (!ehlo) {
        snprintf(r, sizeof(r), "250 %s\r\n", sink_smtp_host(s));
    } else {
        k += (size_t)snprintf(r + k, sizeof(r) - k, "250-%s\r\n", sink_smtp_host(s));
        if (c->pipelining)
            k += (size_t)snprintf(r + k, sizeof(r) - k, "250-PIPELINING\r\n");
        if (c->size_max)
            k += (size_t)snprintf(r + k, sizeof(r) - k, "250-SIZE %llu\r\n",
                                  (unsigned long long)c->size_max);
        if (c->eightbitmime)
            k += (size_t)snprintf(r + k, sizeof(r) - k, "250-8BITMIME\r\n");
        if (c->smtputf8)
            k += (size_t)snprintf(r + k, sizeof(r) - k, "250-SMTPUTF8\r\n");
        if (c->chunking)
            k += (size_t)snprintf(r + k, sizeof(r) - k, "250-CHUNKING\r\n");
        if (c->starttls && c->tls_available && !s->tls)
            k += (size_t)snprintf(r + k, sizeof(r) - k, "250-STARTTLS\r\n");
        if (c->auth && s->tls)
            k += (size_t)snprintf(r + k, sizeof(r) - k, "250-AUTH PLAIN LOGIN\r\n");
        snprintf(r + k, sizeof(r) - k, "250 ENHANCEDSTATUSCODES\r\n");
    }
    /* RFC 5321 4.1.4: EHLO and HELO end any transaction. */
    sink_smtp_txn_reset(s);
    if (sink_smtp_reply_at(s, ehlo ? SINK_SMTP_P_EHLO : SINK_SMTP_P_HELO, r) / 100 == 2)
        s->helo = true;
}

static void cmd_starttls(struct sink_smtp *s, const struct arg *a)
{
    const struct sink_smtp_config *c = s->cfg;
    char r[SINK_SMTP_AUTH_LINE_MAX + 8];
    size_t before, len;
    bool start;

    if (!c->starttls || !c->tls_available) {
        sink_smtp_out_str(s, R_NOT_IMPL);
        return;
    }
    if (s->tls) {
        sink_smtp_out_str(s, "503 5.5.1 Error: TLS already active\r\n");
        return;
    }
    if (!arg_empty(a)) {
        sink_smtp_out_str(s, "501 5.5.4 Syntax: STARTTLS\r\n");
        return;
    }
    if (c->starttls_reply) {
        len = c->starttls_reply_len < sizeof(r) - 3 ? c->starttls_reply_len : sizeof(r) - 3;
        memcpy(r, c->starttls_reply, len);
        if (!len || r[len - 1] != '\n') {
            memcpy(r + len, "\r\n", 2);
            len += 2;
        }
        r[len] = '\0';
    } else {
        snprintf(r, sizeof(r), "220 2.0.0 Ready to start TLS\r\n");
    }
    before = s->out.len;
    if (sink_smtp_reply_at(s, SINK_SMTP_P_STARTTLS, r) < 0)
        return; /* disconnected or stalled */
    /* Only a "220 " line starts TLS, as only that one may start it at the
     * client; anything pipelined after STARTTLS is dropped (RFC 3207 4.2). */
    start = s->mode != M_CLOSED && s->out.len - before >= 4 &&
            memcmp(s->out.p + before, "220 ", 4) == 0;
    if (c->inject_len && s->mode != M_CLOSED &&
        sink_smtp_buf_put(&s->out, c->inject_after_220, c->inject_len) < 0)
        sink_smtp_ev_close(s, SINK_SMTP_P_STARTTLS, false, false);
    if (start && s->mode != M_CLOSED) {
        struct sink_smtp_event ev = {.type = SINK_SMTP_EV_STARTTLS, .point = SINK_SMTP_P_STARTTLS};
        sink_smtp_ev_push(s, &ev);
        s->mode = M_DISCARD;
    }
}

/* ---- AUTH (RFC 4954) ---- */

static void auth_finish(struct sink_smtp *s, enum sink_smtp_auth_mech mech, const char *a,
                        const char *b)
{
    char user[sizeof(s->user)];
    bool ok = false;
    int code;

    s->auth_step = A_NONE;
    user[0] = '\0';
    if (s->cfg->auth_check)
        ok = s->cfg->auth_check(s->cfg->auth_arg, mech, a, b, user, sizeof(user));
    code = sink_smtp_reply_at(s, SINK_SMTP_P_AUTH,
                              ok ? "235 2.7.0 Authentication successful\r\n"
                                 : "535 5.7.8 Error: authentication failed\r\n");
    if (ok && code / 100 == 2) {
        struct sink_smtp_event ev = {.type = SINK_SMTP_EV_AUTH, .point = SINK_SMTP_P_AUTH};
        s->authed = true;
        memcpy(s->user, user, sizeof(user));
        s->user[sizeof(s->user) - 1] = '\0';
        sink_smtp_ev_push(s, &ev);
    }
}

/* A line while a SASL exchange waits for the client's response. */
static void auth_response(struct sink_smtp *s, const char *line, size_t n)
{
    char resp[SINK_SMTP_AUTH_LINE_MAX + 1];

    if (n == 1 && line[0] == '*') {
        s->auth_step = A_NONE;
        sink_smtp_out_str(s, "501 5.7.0 Authentication aborted\r\n");
        return;
    }
    memcpy(resp, line, n);
    resp[n] = '\0';
    switch (s->auth_step) {
    case A_PLAIN:
        auth_finish(s, SINK_SMTP_AUTH_PLAIN, resp, NULL);
        break;
    case A_LOGIN_USER:
        memcpy(s->auth_a, resp, n + 1);
        s->auth_step = A_LOGIN_PASS;
        sink_smtp_out_str(s, "334 UGFzc3dvcmQ6\r\n"); /* "Password:" */
        break;
    case A_LOGIN_PASS:
        auth_finish(s, SINK_SMTP_AUTH_LOGIN, s->auth_a, resp);
        break;
    case A_NONE:
        break;
    }
}

static void cmd_auth(struct sink_smtp *s, const struct arg *a)
{
    const char *sp;
    size_t mlen;
    char init[SINK_SMTP_AUTH_LINE_MAX + 1];
    bool has_init;

    if (!s->cfg->auth) {
        sink_smtp_out_str(s, R_NOT_IMPL);
        return;
    }
    if (!s->tls) {
        sink_smtp_out_str(
            s, "538 5.7.11 Encryption required for requested authentication mechanism\r\n");
        return;
    }
    if (!s->helo) {
        sink_smtp_out_str(s, R_BAD_SEQ_HELO);
        return;
    }
    if (s->authed || s->txn) {
        sink_smtp_out_str(s, s->authed ? "503 5.5.1 Error: already authenticated\r\n"
                                       : "503 5.5.1 Error: MAIL transaction in progress\r\n");
        return;
    }
    if (arg_empty(a)) {
        sink_smtp_out_str(s, "501 5.5.4 Syntax: AUTH mechanism\r\n");
        return;
    }
    sp = memchr(a->p, ' ', a->n);
    mlen = sp ? (size_t)(sp - a->p) : a->n;
    has_init = sp != NULL;
    if (has_init) {
        size_t k = a->n - mlen - 1;
        memcpy(init, sp + 1, k);
        init[k] = '\0';
    }
    if (mlen == 5 && strncasecmp(a->p, "PLAIN", 5) == 0) {
        if (!has_init) {
            s->auth_step = A_PLAIN;
            sink_smtp_out_str(s, "334 \r\n");
        } else {
            /* RFC 4954 4: "=" is an empty initial response. */
            auth_finish(s, SINK_SMTP_AUTH_PLAIN, strcmp(init, "=") == 0 ? "" : init, NULL);
        }
    } else if (mlen == 5 && strncasecmp(a->p, "LOGIN", 5) == 0) {
        if (!has_init) {
            s->auth_step = A_LOGIN_USER;
            sink_smtp_out_str(s, "334 VXNlcm5hbWU6\r\n"); /* "Username:" */
        } else {
            memcpy(s->auth_a, init, strlen(init) + 1);
            s->auth_step = A_LOGIN_PASS;
            sink_smtp_out_str(s, "334 UGFzc3dvcmQ6\r\n");
        }
    } else {
        sink_smtp_out_str(s, "504 5.5.4 Error: unsupported authentication mechanism\r\n");
    }
}

/* ---- the envelope ---- */

/* "<addr>" at the start of a; the address without brackets and what
 * follows the closing bracket. 0, or -1 for a syntax error. */
static int parse_path(const struct arg *a, struct arg *addr, struct arg *rest)
{
    const char *p = a->p, *end = a->p + a->n, *close;

    while (p < end && *p == ' ')
        p++; /* "MAIL FROM: <a>": not RFC 5321, but common */
    if (p == end || *p != '<')
        return -1;
    close = memchr(p, '>', (size_t)(end - p));
    if (!close)
        return -1;
    addr->p = p + 1;
    addr->n = (size_t)(close - p - 1);
    rest->p = close + 1;
    rest->n = (size_t)(end - close - 1);
    if (rest->n && rest->p[0] != ' ')
        return -1;
    for (size_t i = 0; i < addr->n; i++)
        if (addr->p[i] == ' ' || addr->p[i] == '<')
            return -1;
    return 0;
}

/* The next " KEY[=VALUE]" of rest; false at the end. */
static bool next_param(struct arg *rest, struct arg *key, struct arg *val)
{
    const char *p = rest->p, *end = rest->p + rest->n, *tok, *eq;

    while (p < end && *p == ' ')
        p++;
    if (p == end)
        return false;
    tok = p;
    while (p < end && *p != ' ')
        p++;
    eq = memchr(tok, '=', (size_t)(p - tok));
    key->p = tok;
    key->n = eq ? (size_t)(eq - tok) : (size_t)(p - tok);
    val->p = eq ? eq + 1 : p;
    val->n = eq ? (size_t)(p - eq - 1) : 0;
    rest->p = p;
    rest->n = (size_t)(end - p);
    return true;
}

static bool key_is(const struct arg *k, const char *name)
{
    return k->n == strlen(name) && strncasecmp(k->p, name, k->n) == 0;
}

static bool parse_u64(const struct arg *v, uint64_t *out)
{
    uint64_t x = 0;

    if (v->n == 0 || v->n > 18)
        return false;
    for (size_t i = 0; i < v->n; i++) {
        if (v->p[i] < '0' || v->p[i] > '9')
            return false;
        x = x * 10 + (uint64_t)(v->p[i] - '0');
    }
    *out = x;
    return true;
}

static int put_addr(struct buf *b, const struct arg *addr)
{
    if (sink_smtp_buf_put(b, addr->p, addr->n) < 0 || sink_smtp_buf_put(b, "", 1) < 0)
        return -1;
    return 0;
}

static void cmd_mail(struct sink_smtp *s, const struct arg *a)
{
    const struct sink_smtp_config *c = s->cfg;
    struct arg in = *a, addr, rest, key, val;
    bool body8 = false, utf8 = false;

    if (!s->helo) {
        sink_smtp_out_str(s, R_BAD_SEQ_HELO);
        return;
    }
    if (c->tls_available && !c->allow_plaintext && !s->tls) {
        sink_smtp_out_str(s, R_NEED_TLS);
        return;
    }
    if (c->auth && !s->authed) {
        sink_smtp_out_str(s, R_NEED_AUTH);
        return;
    }
    if (s->txn) {
        sink_smtp_out_str(s, "503 5.5.1 Error: nested MAIL command\r\n");
        return;
    }
    if (c->max_mails && s->session_mails >= c->max_mails) {
        sink_smtp_out_str(s, "452 4.5.3 Too many messages sent\r\n");
        return;
    }
    if (!has_prefix(&in, "FROM:")) {
        sink_smtp_out_str(s, "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
        return;
    }
    in.p += 5;
    in.n -= 5;
    if (parse_path(&in, &addr, &rest) < 0) {
        sink_smtp_out_str(s, "501 5.1.7 Bad sender address syntax\r\n");
        return;
    }
    while (next_param(&rest, &key, &val)) {
        uint64_t size;
        if (key_is(&key, "SIZE")) {
            if (!parse_u64(&val, &size)) {
                sink_smtp_out_str(s, "501 5.5.4 Bad SIZE parameter\r\n");
                return;
            }
            if (c->size_max && size > c->size_max) {
                sink_smtp_out_str(s, R_TOO_BIG);
                return;
            }
        } else if (key_is(&key, "BODY") && val.n == 4 && strncasecmp(val.p, "7BIT", 4) == 0) {
            body8 = false;
        } else if (key_is(&key, "BODY") && c->eightbitmime && val.n == 8 &&
                   strncasecmp(val.p, "8BITMIME", 8) == 0) {
            body8 = true;
        } else if (key_is(&key, "SMTPUTF8") && c->smtputf8 && val.n == 0) {
            utf8 = true;
        } else if (key_is(&key, "AUTH") && c->auth) {
            /* RFC 4954 5: accepted and ignored */
        } else {
            reply_unsupported(s, &key);
            return;
        }
    }
    if (!utf8 && message_has_8bit(addr.p, addr.n)) {
        sink_smtp_out_str(s, "553 5.6.7 Must declare SMTPUTF8 to send UTF-8 address\r\n");
        return;
    }
    sink_smtp_txn_reset(s);
    if (sink_smtp_reply_at(s, SINK_SMTP_P_MAIL, "250 2.1.0 Ok\r\n") / 100 != 2)
        return;
    if (put_addr(&s->from, &addr) < 0) {
        sink_smtp_txn_reset(s);
        sink_smtp_out_str(s, "451 4.3.0 Error: out of memory\r\n");
        return;
    }
    s->txn = true;
    s->txn_8bit = body8;
    s->txn_utf8 = utf8;
}

static void cmd_rcpt(struct sink_smtp *s, const struct arg *a)
{
    struct arg in = *a, addr, rest, key, val;

    if (!s->txn || s->bdat_open) {
        sink_smtp_out_str(s, s->txn ? "503 5.5.1 Error: BDAT in progress\r\n" : R_BAD_SEQ_MAIL);
        return;
    }
    if (!has_prefix(&in, "TO:")) {
        sink_smtp_out_str(s, "501 5.5.4 Syntax: RCPT TO:<address>\r\n");
        return;
    }
    in.p += 3;
    in.n -= 3;
    if (parse_path(&in, &addr, &rest) < 0 || addr.n == 0) {
        sink_smtp_out_str(s, "501 5.1.3 Bad recipient address syntax\r\n");
        return;
    }
    if (next_param(&rest, &key, &val)) {
        reply_unsupported(s, &key);
        return;
    }
    if (!s->txn_utf8 && message_has_8bit(addr.p, addr.n)) {
        sink_smtp_out_str(s, "553 5.6.7 Must declare SMTPUTF8 to send UTF-8 address\r\n");
        return;
    }
    if (s->nrcpt >= SINK_SMTP_RCPT_MAX) {
        sink_smtp_out_str(s, "452 4.5.3 Error: too many recipients\r\n");
        return;
    }
    if (sink_smtp_reply_at(s, SINK_SMTP_P_RCPT, "250 2.1.5 Ok\r\n") / 100 != 2)
        return;
    if (put_addr(&s->rcpts, &addr) < 0) {
        sink_smtp_out_str(s, "451 4.3.0 Error: out of memory\r\n");
        return;
    }
    s->nrcpt++;
}

/* ---- DATA and BDAT ---- */

static void message_begin(struct sink_smtp *s)
{
    s->msg.len = 0;
    s->msg_size = 0;
    s->msg_over = s->msg_nomem = s->body_started = false;
}

static void cmd_data(struct sink_smtp *s, const struct arg *a)
{
    if (!arg_empty(a)) {
        sink_smtp_out_str(s, "501 5.5.4 Syntax: DATA\r\n");
        return;
    }
    if (!s->txn) {
        sink_smtp_out_str(s, R_BAD_SEQ_MAIL);
        return;
    }
    if (s->bdat_open) {
        sink_smtp_out_str(s, "503 5.5.1 Error: BDAT in progress\r\n");
        return;
    }
    if (s->nrcpt == 0) {
        sink_smtp_out_str(s, R_NO_RCPT);
        return;
    }
    if (sink_smtp_reply_at(s, SINK_SMTP_P_DATA_CMD, "354 End data with <CR><LF>.<CR><LF>\r\n") !=
        354)
        return;
    message_begin(s);
    s->mode = M_DATA;
    s->dstate = D_LINE_START; /* the CRLF of the DATA line opens the body */
}

static void cmd_bdat(struct sink_smtp *s, const struct arg *a)
{
    const char *sp = memchr(a->p, ' ', a->n);
    struct arg num = {a->p, sp ? (size_t)(sp - a->p) : a->n};
    uint64_t size;
    bool last = false;

    if (sp) {
        size_t k = a->n - num.n - 1;
        if (k != 4 || strncasecmp(sp + 1, "LAST", 4) != 0) {
            sink_smtp_out_str(s, "501 5.5.4 Syntax: BDAT size [LAST]\r\n");
            return;
        }
        last = true;
    }
    if (!parse_u64(&num, &size)) {
        /* The chunk's length is unknown: its octets will read as commands. */
        sink_smtp_out_str(s, "501 5.5.4 Syntax: BDAT size [LAST]\r\n");
        return;
    }
    /* The octets are consumed whatever the verdict (RFC 3030 2). */
    if (!s->cfg->chunking)
        s->bdat_reject = R_NOT_IMPL;
    else if (!s->txn)
        s->bdat_reject = R_BAD_SEQ_MAIL;
    else if (s->nrcpt == 0)
        s->bdat_reject = R_NO_RCPT;
    else
        s->bdat_reject = NULL;
    if (!s->bdat_reject && !s->bdat_open)
        message_begin(s);
    s->bdat_left = size;
    s->bdat_last = last;
    s->mode = M_BDAT;
    if (size == 0)
        sink_smtp_finish_bdat(s);
}

/* ---- the rest ---- */

static void cmd_simple(struct sink_smtp *s, const struct arg *a, enum sink_smtp_point p)
{
    switch (p) {
    case SINK_SMTP_P_RSET:
        if (!arg_empty(a)) {
            sink_smtp_out_str(s, "501 5.5.4 Syntax: RSET\r\n");
            return;
        }
        sink_smtp_txn_reset(s);
        sink_smtp_reply_at(s, p, "250 2.0.0 Ok\r\n");
        break;
    case SINK_SMTP_P_NOOP:
        sink_smtp_reply_at(s, p, "250 2.0.0 Ok\r\n");
        break;
    case SINK_SMTP_P_VRFY:
        if (arg_empty(a)) {
            sink_smtp_out_str(s, "501 5.5.4 Syntax: VRFY address\r\n");
            return;
        }
        sink_smtp_reply_at(s, p, "252 2.0.0 Cannot VRFY user, but will accept message\r\n");
        break;
    case SINK_SMTP_P_QUIT:
        if (sink_smtp_reply_at(s, p, "221 2.0.0 Bye\r\n") >= 0 && s->mode != M_CLOSED)
            sink_smtp_ev_close(s, p, false, true);
        break;
    default:
        abort(); /* only the four above come here */
    }
}

enum verb {
    V_UNKNOWN = 0,
    V_EHLO = 1,
    V_HELO = 2,
    V_STARTTLS = 3,
    V_AUTH = 4,
    V_MAIL = 5,
    V_RCPT = 6,
    V_DATA = 7,
    V_BDAT = 8,
    V_RSET = 9,
    V_NOOP = 10,
    V_VRFY = 11,
    V_QUIT = 12,
};

static const struct {
    const char *name;
    enum verb verb;
} verbs[] = {
    {"EHLO", V_EHLO}, {"HELO", V_HELO}, {"STARTTLS", V_STARTTLS}, {"AUTH", V_AUTH},
    {"MAIL", V_MAIL}, {"RCPT", V_RCPT}, {"DATA", V_DATA},         {"BDAT", V_BDAT},
    {"RSET", V_RSET}, {"NOOP", V_NOOP}, {"VRFY", V_VRFY},         {"QUIT", V_QUIT},
};

void sink_smtp_line(struct sink_smtp *s, const char *line, size_t n)
{
    size_t vlen = 0;
    enum verb v = V_UNKNOWN;
    struct arg a;

    if (s->auth_step != A_NONE) {
        if (memchr(line, '\0', n)) {
            s->auth_step = A_NONE;
            sink_smtp_out_str(s, "501 5.5.2 Error: NUL in response\r\n");
            return;
        }
        auth_response(s, line, n);
        return;
    }
    while (vlen < n && line[vlen] != ' ')
        vlen++;
    for (size_t i = 0; (vlen == 4 || vlen == 8) && i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (strlen(verbs[i].name) == vlen && strncasecmp(line, verbs[i].name, vlen) == 0)
            v = verbs[i].verb;
    /* AUTH lines may carry a long initial response (RFC 4954 4). */
    if (n + 2 > SINK_SMTP_LINE_MAX && v != V_AUTH) {
        sink_smtp_out_str(s, R_TOO_LONG);
        return;
    }
    if (memchr(line, '\0', n)) {
        sink_smtp_out_str(s, "500 5.5.2 Error: NUL in command\r\n");
        return;
    }
    a.p = line + vlen;
    a.n = n - vlen;
    while (a.n && a.p[0] == ' ') {
        a.p++;
        a.n--;
    }
    while (a.n && a.p[a.n - 1] == ' ')
        a.n--;
    if (s->rejected && v != V_QUIT) {
        sink_smtp_out_str(s, "503 5.5.1 Error: this session was refused; send QUIT\r\n");
        return;
    }
    switch (v) {
    case V_EHLO:
    case V_HELO:
        cmd_ehlo(s, &a, v == V_EHLO);
        break;
    case V_STARTTLS:
        cmd_starttls(s, &a);
        break;
    case V_AUTH:
        cmd_auth(s, &a);
        break;
    case V_MAIL:
        cmd_mail(s, &a);
        break;
    case V_RCPT:
        cmd_rcpt(s, &a);
        break;
    case V_DATA:
        cmd_data(s, &a);
        break;
    case V_BDAT:
        cmd_bdat(s, &a);
        break;
    case V_RSET:
        cmd_simple(s, &a, SINK_SMTP_P_RSET);
        break;
    case V_NOOP:
        cmd_simple(s, &a, SINK_SMTP_P_NOOP);
        break;
    case V_VRFY:
        cmd_simple(s, &a, SINK_SMTP_P_VRFY);
        break;
    case V_QUIT:
        cmd_simple(s, &a, SINK_SMTP_P_QUIT);
        break;
    case V_UNKNOWN:
        sink_smtp_out_str(s, R_UNKNOWN);
        break;
    }
}
