/*
 * golden_runner: replays a golden transcript through smtp_client and checks
 * that the client's bytes and events are exactly the ones written down.
 *
 * A transcript is a text file of lines:
 *   # ...                 comment
 *   @ehlo NAME            client settings (before the first action line)
 *   @mode implicit        implicit TLS (default: starttls)
 *   @auth USER PASS       credentials
 *   @pipeline_body        send BDAT with the envelope
 *   @depth N              up to N transactions in flight (pipeline_depth)
 *   @line_max N           reply line tolerance
 *   @txn from=A to=B [to=C ...] body=TEXT   a transaction, started when READY
 *   @quit                 QUIT when READY and no transaction is left
 *   S: TEXT   server line (CRLF added);  S~ TEXT  server bytes, no CRLF
 *   T: ok | T: fail REASON               the caller's TLS handshake result
 *   X: eof | X: abort REASON             the transport's report
 *   C: TEXT   expected client line;      E: ...  expected event
 *             (TXN_DONE lists each recipient's outcome/code/enhanced code, then
 *             "(retry elsewhere)" when the server refused it for the session)
 * TEXT takes C escapes (\r \n \t \\ \xNN). Consecutive S lines are one read.
 *
 * Every transcript runs twice: each read fed whole, then one byte at a
 * time; both runs must produce the transcript. Independently of what the
 * file expects, no envelope, mail or AUTH byte may leave before TLS is up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "message.h"
#include "smtp_auth.h"
#include "smtp_client.h"

#define MAX_LINES 4096
#define MAX_TXN   16
#define MAX_RCPT  16

struct txn_spec {
    char *from;
    char *to[MAX_RCPT];
    size_t nto;
    char *body;
    size_t body_len;
};

struct script {
    char *lines[MAX_LINES]; /* S/C/E/T/X lines, in order */
    size_t nlines;
    char ehlo[256];
    int implicit, pipeline_body, quit;
    unsigned depth;
    char *user, *pass;
    size_t line_max;
    struct txn_spec txns[MAX_TXN];
    size_t ntxn;
};

/* The trace a run produces, compared with the script's lines. */
struct trace {
    char *lines[MAX_LINES * 4];
    size_t n;
};

struct run {
    struct smtp_client *c;
    struct trace *tr;
    struct script *sc;
    size_t next_txn;
    struct smtp_client_txn txn[MAX_TXN];
    struct smtp_client_rcpt_result results[MAX_TXN][MAX_RCPT];
    char *wire[MAX_TXN];
    int need_tls_seen;
    int quit_sent;
    int security_violation;
    char outline[65536];
    size_t outlen;
};

static void die(const char *what, const char *arg)
{
    fprintf(stderr, "golden_runner: %s%s%s\n", what, arg ? ": " : "", arg ? arg : "");
    exit(2);
}

static void trace_add(struct trace *t, const char *s)
{
    if (t->n == sizeof(t->lines) / sizeof(t->lines[0]))
        die("trace too long", NULL);
    t->lines[t->n++] = strdup(s);
}

/* Decode C escapes of s into out; returns the length. */
static size_t unescape(const char *s, char *out)
{
    size_t n = 0;
    while (*s) {
        if (*s != '\\' || !s[1]) {
            out[n++] = *s++;
            continue;
        }
        s++;
        switch (*s) {
        case 'r':
            out[n++] = '\r';
            break;
        case 'n':
            out[n++] = '\n';
            break;
        case 't':
            out[n++] = '\t';
            break;
        case 'x': {
            char hex[3] = {s[1], s[2], 0};
            out[n++] = (char)strtol(hex, NULL, 16);
            s += 2;
            break;
        }
        default:
            out[n++] = *s;
        }
        s++;
    }
    out[n] = 0;
    return n;
}

static void escape_into(char *out, size_t cap, const char *s, size_t len)
{
    size_t n = 0, i;
    for (i = 0; i < len && n + 5 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\\') {
            out[n++] = '\\';
            out[n++] = '\\';
        } else if (ch < 0x20 || ch >= 0x7f) {
            n += (size_t)snprintf(out + n, cap - n, "\\x%02x", ch);
        } else {
            out[n++] = (char)ch;
        }
    }
    out[n] = 0;
}

static char *field(char **p)
{
    char *s = *p, *e;
    while (*s == ' ')
        s++;
    if (!*s)
        return NULL;
    e = strchr(s, ' ');
    if (e) {
        *e = 0;
        *p = e + 1;
    } else {
        *p = s + strlen(s);
    }
    return s;
}

static void parse_txn(struct script *sc, char *rest)
{
    struct txn_spec *t;
    char *f;
    if (sc->ntxn == MAX_TXN)
        die("too many transactions", NULL);
    t = &sc->txns[sc->ntxn++];
    while ((f = field(&rest))) {
        if (strncmp(f, "from=", 5) == 0) {
            t->from = malloc(strlen(f) + 1);
            unescape(f + 5, t->from);
        } else if (strncmp(f, "to=", 3) == 0 && t->nto < MAX_RCPT) {
            t->to[t->nto] = malloc(strlen(f) + 1);
            unescape(f + 3, t->to[t->nto++]);
        } else if (strncmp(f, "body=", 5) == 0) {
            /* The body runs to the end of the line, spaces included. */
            char *raw = f + 5;
            if (*rest) {
                raw[strlen(raw)] = ' ';
                rest += strlen(rest);
            }
            t->body = malloc(strlen(raw) + 1);
            t->body_len = unescape(raw, t->body);
        } else {
            die("bad @txn field", f);
        }
    }
    if (!t->from || !t->body)
        die("@txn needs from= and body=", NULL);
}

static void load(struct script *sc, const char *path)
{
    FILE *f = fopen(path, "r");
    char line[8192];
    if (!f)
        die("cannot open", path);
    snprintf(sc->ehlo, sizeof(sc->ehlo), "client.example");
    while (fgets(line, sizeof(line), f)) {
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        if (!n || line[0] == '#')
            continue;
        if (line[0] == '@') {
            char *rest = line + 1, *key = field(&rest);
            if (strcmp(key, "ehlo") == 0)
                snprintf(sc->ehlo, sizeof(sc->ehlo), "%s", rest);
            else if (strcmp(key, "mode") == 0)
                sc->implicit = strcmp(rest, "implicit") == 0;
            else if (strcmp(key, "auth") == 0) {
                sc->user = strdup(field(&rest));
                sc->pass = strdup(field(&rest));
            } else if (strcmp(key, "pipeline_body") == 0)
                sc->pipeline_body = 1;
            else if (strcmp(key, "depth") == 0)
                sc->depth = (unsigned)atoi(rest);
            else if (strcmp(key, "line_max") == 0)
                sc->line_max = (size_t)atol(rest);
            else if (strcmp(key, "txn") == 0)
                parse_txn(sc, rest);
            else if (strcmp(key, "quit") == 0)
                sc->quit = 1;
            else
                die("unknown directive", key);
            continue;
        }
        if (n < 2 || !strchr("SCETX", line[0]) || (line[1] != ':' && line[1] != '~'))
            die("bad line", line);
        if (sc->nlines == MAX_LINES)
            die("script too long", NULL);
        sc->lines[sc->nlines++] = strdup(line);
    }
    fclose(f);
}

static void trace_results(char *buf, size_t cap, const struct smtp_client_txn *t)
{
    size_t n = strlen(buf), i;
    char addr[1100];
    for (i = 0; i < t->nrcpt && n < cap; i++) {
        const struct smtp_client_rcpt_result *r = &t->results[i];
        escape_into(addr, sizeof(addr), t->rcpts[i], strlen(t->rcpts[i]));
        n += (size_t)snprintf(buf + n, cap - n, "%s%s=%s/%d/%s", i ? " " : "", addr,
                              smtp_client_outcome_name(r->outcome), r->code,
                              r->enhanced[0] ? r->enhanced : "-");
    }
    /* Refused for the session, not for itself: the caller may send it again. */
    if (t->retry_elsewhere && n < cap)
        snprintf(buf + n, cap - n, " (retry elsewhere)");
}

static void start_next(struct run *rn)
{
    struct script *sc = rn->sc;
    const char *err = NULL;
    struct txn_spec *ts;
    struct smtp_client_txn *t;
    struct message_facts facts;
    size_t len;
    int rc;

    if (rn->next_txn >= sc->ntxn) {
        if (sc->quit && !rn->quit_sent && smtp_client_quit(rn->c) != 0)
            die("QUIT refused while READY", NULL);
        rn->quit_sent = 1;
        return;
    }
    ts = &sc->txns[rn->next_txn];
    t = &rn->txn[rn->next_txn];
    rc = message_prepare_alloc(ts->body, ts->body_len, smtp_client_body_encoding(rn->c),
                               &rn->wire[rn->next_txn], &len, &facts);
    if (rc != 0)
        die("message_prepare failed", message_strerror(rc));
    memset(t, 0, sizeof(*t));
    t->from = ts->from;
    t->rcpts = (const char *const *)ts->to;
    t->nrcpt = ts->nto;
    t->body = rn->wire[rn->next_txn];
    t->body_len = len;
    t->facts = facts;
    t->results = rn->results[rn->next_txn];
    rn->next_txn++;
    if (smtp_client_start(rn->c, t, &err) != 0) {
        char line[512];
        snprintf(line, sizeof(line), "E: REFUSED %s", err);
        trace_add(rn->tr, line);
    }
}

static void drain_events(struct run *rn)
{
    struct smtp_client_event ev;
    char line[4096];
    while (smtp_client_next_event(rn->c, &ev)) {
        switch (ev.type) {
        case SMTP_CLIENT_EV_NEED_TLS:
            rn->need_tls_seen = 1;
            trace_add(rn->tr, "E: NEED_TLS");
            break;
        case SMTP_CLIENT_EV_READY:
            trace_add(rn->tr, "E: READY");
            /* As a pool does: as many as the connection takes now. */
            start_next(rn);
            while (rn->next_txn < rn->sc->ntxn && smtp_client_can_start(rn->c))
                start_next(rn);
            break;
        case SMTP_CLIENT_EV_TXN_DONE:
            snprintf(line, sizeof(line), "E: TXN_DONE ");
            trace_results(line, sizeof(line), ev.txn);
            trace_add(rn->tr, line);
            break;
        case SMTP_CLIENT_EV_FAILED:
            snprintf(line, sizeof(line), "E: FAILED %s %d", smtp_client_reason_name(ev.reason),
                     ev.code);
            if (ev.txn) {
                strcat(line, " | ");
                trace_results(line, sizeof(line), ev.txn);
            }
            trace_add(rn->tr, line);
            break;
        case SMTP_CLIENT_EV_CLOSED:
            trace_add(rn->tr, "E: CLOSED");
            break;
        default:
            die("unknown event", NULL);
        }
    }
}

/* Words that must never cross the wire in plaintext. */
static int forbidden_before_tls(const char *line)
{
    static const char *const words[] = {"MAIL ", "RCPT ", "DATA", "BDAT ", "AUTH "};
    size_t i;
    for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strncmp(line, words[i], strlen(words[i])) == 0)
            return 1;
    return 0;
}

static void collect_output(struct run *rn)
{
    struct smtp_client_out out[16];
    size_t n, i;
    int plaintext = !smtp_client_tls_active(rn->c);
    char esc[70000], line[70010];

    while ((n = smtp_client_output(rn->c, out, 16)) > 0) {
        size_t total = 0;
        for (i = 0; i < n; i++) {
            const char *p = out[i].base;
            size_t k;
            if (plaintext && out[i].body)
                rn->security_violation = 1;
            for (k = 0; k < out[i].len; k++) {
                if (rn->outlen + 1 >= sizeof(rn->outline))
                    die("client line too long", NULL);
                rn->outline[rn->outlen++] = p[k];
                if (p[k] == '\n' && rn->outlen >= 2 && rn->outline[rn->outlen - 2] == '\r') {
                    rn->outline[rn->outlen - 2] = 0;
                    if (plaintext && forbidden_before_tls(rn->outline))
                        rn->security_violation = 1;
                    escape_into(esc, sizeof(esc), rn->outline, rn->outlen - 2);
                    snprintf(line, sizeof(line), "C: %s", esc);
                    trace_add(rn->tr, line);
                    rn->outlen = 0;
                }
            }
            total += out[i].len;
        }
        smtp_client_sent(rn->c, total);
    }
}

static enum smtp_client_reason reason_by_name(const char *s)
{
    int r;
    for (r = 0; r < SMTP_CLIENT_R_COUNT; r++)
        if (strcmp(smtp_client_reason_name((enum smtp_client_reason)r), s) == 0)
            return (enum smtp_client_reason)r;
    die("unknown reason", s);
    return SMTP_CLIENT_R_NONE;
}

/*
 * One read from the transport. Bytewise hands it to the client one byte per
 * call; like a transport, the runner acts on events once the read has been
 * fed (or when the client's event queue is full).
 */
static void feed(struct run *rn, const char *buf, size_t len, int bytewise)
{
    size_t off = 0;
    while (off < len) {
        size_t want = bytewise ? 1 : len - off;
        long n = smtp_client_feed(rn->c, buf + off, want);
        if (n < 0)
            break; /* failed: the transport would close now */
        if ((size_t)n < want)
            drain_events(rn);
        off += (size_t)n;
    }
    drain_events(rn);
}

static int run_once(struct script *sc, int bytewise, struct trace *tr)
{
    struct smtp_client_config cfg;
    struct smtp_auth_creds creds;
    struct run *rn = calloc(1, sizeof(*rn));
    static char chunk[1 << 20];
    const char *err = NULL;
    size_t i, clen = 0;

    memset(&creds, 0, sizeof(creds));
    memset(&cfg, 0, sizeof(cfg));
    cfg.ehlo_name = sc->ehlo;
    cfg.tls_mode = sc->implicit ? SMTP_CLIENT_IMPLICIT_TLS : SMTP_CLIENT_STARTTLS;
    cfg.pipeline_body = sc->pipeline_body;
    cfg.pipeline_depth = sc->depth;
    cfg.limits.line_max = sc->line_max;
    if (sc->user) {
        if (smtp_auth_encode(sc->user, sc->pass, &creds, &err) != 0)
            die("bad @auth", err);
        cfg.auth_plain_b64 = creds.plain_b64;
        cfg.auth_user_b64 = creds.user_b64;
        cfg.auth_pass_b64 = creds.pass_b64;
    }
    rn->tr = tr;
    rn->sc = sc;
    rn->c = smtp_client_new(&cfg, &err);
    if (!rn->c)
        die("smtp_client_new", err);
    smtp_auth_free(&creds);
    drain_events(rn);
    collect_output(rn);

    for (i = 0; i < sc->nlines; i++) {
        const char *l = sc->lines[i];
        if (l[0] == 'S') {
            clen += unescape(l + 3, chunk + clen);
            if (l[1] == ':') {
                memcpy(chunk + clen, "\r\n", 2);
                clen += 2;
            }
            trace_add(tr, l);
            /* A read ends where the server lines end. */
            if (i + 1 < sc->nlines && sc->lines[i + 1][0] == 'S')
                continue;
            feed(rn, chunk, clen, bytewise);
            clen = 0;
        } else if (l[0] == 'T') {
            trace_add(tr, l);
            if (!rn->need_tls_seen)
                die("T: before the client asked for TLS", NULL);
            if (strcmp(l + 3, "ok") == 0)
                smtp_client_tls_done(rn->c, 1, SMTP_CLIENT_R_NONE, NULL);
            else if (strncmp(l + 3, "fail ", 5) == 0)
                smtp_client_tls_done(rn->c, 0, reason_by_name(l + 8), "handshake failed");
            else
                die("bad T: line", l);
            drain_events(rn);
        } else if (l[0] == 'X') {
            trace_add(tr, l);
            if (strcmp(l + 3, "eof") == 0)
                smtp_client_eof(rn->c);
            else if (strncmp(l + 3, "abort ", 6) == 0)
                smtp_client_abort(rn->c, reason_by_name(l + 9), "transport failure");
            else
                die("bad X: line", l);
            drain_events(rn);
        } else {
            continue; /* C and E lines are what the run must produce */
        }
        collect_output(rn);
    }
    smtp_client_free(rn->c);
    for (i = 0; i < MAX_TXN; i++)
        free(rn->wire[i]);
    i = (size_t)rn->security_violation;
    free(rn);
    return (int)i;
}

static int compare(const struct script *sc, const struct trace *tr, const char *mode)
{
    size_t i, n = sc->nlines > tr->n ? sc->nlines : tr->n;
    for (i = 0; i < n; i++) {
        const char *want = i < sc->nlines ? sc->lines[i] : "(end of transcript)";
        const char *got = i < tr->n ? tr->lines[i] : "(end of run)";
        if (strcmp(want, got) != 0) {
            fprintf(stderr, "%s: line %zu differs\n  want: %s\n  got:  %s\n", mode, i + 1, want,
                    got);
            fprintf(stderr, "%s: the whole run:\n", mode);
            for (i = 0; i < tr->n; i++)
                fprintf(stderr, "  %s\n", tr->lines[i]);
            return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct script sc;
    static struct trace whole, bytes;
    int failed = 0, passed = 0;

    if (argc != 2)
        die("usage: golden_runner TRANSCRIPT", NULL);
    load(&sc, argv[1]);
    if (run_once(&sc, 0, &whole)) {
        fprintf(stderr, "whole: mail, envelope or AUTH bytes were queued before TLS\n");
        failed++;
    }
    if (compare(&sc, &whole, "whole"))
        failed++;
    else
        passed++;
    if (run_once(&sc, 1, &bytes)) {
        fprintf(stderr, "bytewise: mail, envelope or AUTH bytes were queued before TLS\n");
        failed++;
    }
    if (compare(&sc, &bytes, "bytewise"))
        failed++;
    else
        passed++;
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
