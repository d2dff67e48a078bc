/*
 * fuzz_sink_smtp: the sink's server session (bench/sink_smtp.h) on any
 * client bytes. The first four octets pick the configuration (offered
 * extensions, TLS rules, AUTH, SIZE, one fault of each kind at a chosen
 * point); the rest is the client's side, with 0x01 standing for "the TLS
 * handshake completed here". The same input fed whole and fed in small
 * pieces must give the same reply bytes and the same events (a parser may
 * not depend on how TCP split its input), replies must be CRLF lines that
 * start with a code when no custom reply is configured, and an accepted
 * message's kept body must match its size. Violations abort().
 */
#include "sink_smtp.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ASSERT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

#define OUT_MAX (1u << 20)

struct trace {
    unsigned char *out;
    size_t out_len;
    unsigned char log[4096];
    size_t log_len;
    int closed, tls_pending;
};

static void log_byte(struct trace *t, unsigned v)
{
    if (t->log_len < sizeof(t->log))
        t->log[t->log_len++] = (unsigned char)v;
}

static bool check_auth(void *arg, enum sink_smtp_auth_mech mech, const char *a, const char *b,
                       char *user, size_t cap)
{
    (void)arg;
    (void)b;
    if (mech == SINK_SMTP_AUTH_PLAIN && strcmp(a, "AHVzZXIAcGFzcw==") == 0) {
        snprintf(user, cap, "user");
        return true;
    }
    return false;
}

static void configure(struct sink_smtp_config *c, const uint8_t *k)
{
    sink_smtp_config_init(c);
    c->hostname = "fuzz.test";
    c->pipelining = k[0] & 1;
    c->chunking = !(k[0] & 2);
    c->eightbitmime = !(k[0] & 4);
    c->smtputf8 = !(k[0] & 8);
    c->starttls = !(k[0] & 16);
    c->allow_plaintext = k[0] & 32;
    c->auth = k[0] & 64;
    c->auth_check = check_auth;
    c->keep_body = k[0] & 128;
    c->size_max = (k[1] & 3) == 0 ? 0 : (k[1] & 3) == 1 ? 16 : 1u << 20;
    if (k[1] & 4) {
        c->inject_after_220 = "250 x\r\n";
        c->inject_len = 7;
    }
    if (k[1] & 8) {
        c->starttls_reply = "220 go";
        c->starttls_reply_len = 6;
    }
    /* One fault of each kind, each at a point and a period of its own. */
    {
        enum sink_smtp_point p = (enum sink_smtp_point)(k[2] % SINK_SMTP_P_DATA_BODY);
        c->faults[p].reply.every = 1 + (k[2] >> 6);
        c->faults[p].reply.code = (k[1] & 16) ? 421 : (k[1] & 32) ? 250 : 554;
    }
    {
        enum sink_smtp_point p = (enum sink_smtp_point)(k[3] % SINK_SMTP_P_COUNT);
        unsigned every = 2 + (k[3] >> 6);
        if (k[1] & 64)
            c->faults[p].disconnect_every = every;
        else if (k[1] & 128)
            c->faults[p].stall_every = every;
        else if (sink_smtp_point_has_reply(p)) {
            c->faults[p].delay_every = every;
            c->faults[p].delay_ms = 7;
        }
    }
}

static void drain(struct sink_smtp *s, struct trace *t)
{
    struct sink_smtp_event ev;
    const char *o;
    size_t n;

    while (sink_smtp_next_event(s, &ev)) {
        log_byte(t, ev.type);
        log_byte(t, ev.point);
        switch (ev.type) {
        case SINK_SMTP_EV_MESSAGE: {
            struct sink_smtp_message m;
            const char *r;
            sink_smtp_message(s, &m);
            ASSERT(m.body_len <= m.size);
            ASSERT(m.nrcpt >= 1);
            r = m.rcpts;
            for (size_t i = 0; i < m.nrcpt; i++)
                r += strlen(r) + 1;
            log_byte(t, (unsigned)m.size);
            log_byte(t, (unsigned)m.nrcpt);
            if (m.message_id)
                ASSERT(strlen(m.message_id) == m.message_id_len);
            break;
        }
        case SINK_SMTP_EV_STARTTLS:
            t->tls_pending = 1;
            break;
        case SINK_SMTP_EV_DELAY:
            o = sink_smtp_output(s, &n);
            ASSERT(t->out_len + n <= OUT_MAX);
            memcpy(t->out + t->out_len, o, n);
            t->out_len += n;
            sink_smtp_sent(s, n);
            sink_smtp_resume(s);
            break;
        case SINK_SMTP_EV_CLOSE:
            t->closed = 1;
            break;
        case SINK_SMTP_EV_AUTH:
            ASSERT(sink_smtp_auth_user(s) != NULL);
            break;
        default:
            break;
        }
    }
    o = sink_smtp_output(s, &n);
    ASSERT(t->out_len + n <= OUT_MAX);
    if (n)
        memcpy(t->out + t->out_len, o, n);
    t->out_len += n;
    sink_smtp_sent(s, n);
}

static void run(const uint8_t *key, const uint8_t *in, size_t len, size_t piece, struct trace *t)
{
    static struct sink_smtp_config cfg;
    struct sink_smtp *s;
    size_t pos = 0;

    configure(&cfg, key);
    s = sink_smtp_create(&cfg);
    ASSERT(s);
    sink_smtp_start(s, key[1] & 1 && key[1] & 2);
    drain(s, t);
    while (pos < len && !t->closed) {
        const uint8_t *mark = memchr(in + pos, 1, len - pos);
        size_t seg = mark ? (size_t)(mark - (in + pos)) : len - pos, done = 0;
        while (done < seg && !t->closed) {
            size_t k = piece && piece < seg - done ? piece : seg - done, off = 0;
            while (off < k && !t->closed) {
                size_t n = sink_smtp_feed(s, in + pos + done + off, k - off);
                off += n;
                drain(s, t);
                /* Events were taken and the output sent: 0 only once closed. */
                ASSERT(n > 0 || t->closed);
            }
            done += k;
        }
        pos += seg + (mark != NULL);
        if (mark && t->tls_pending) {
            t->tls_pending = 0;
            sink_smtp_tls_started(s);
            ASSERT(sink_smtp_tls_active(s));
        }
    }
    if (!t->closed) {
        sink_smtp_shutdown(s);
        drain(s, t);
    }
    sink_smtp_destroy(s);
}

/* Without custom text, every line the sink writes is "ddd[ -]...\r\n"
 * (the STARTTLS extras are configured text and are skipped). */
static void check_lines(const unsigned char *o, size_t n)
{
    size_t i = 0;

    while (i < n) {
        const unsigned char *lf = memchr(o + i, '\n', n - i);
        ASSERT(lf);
        ASSERT(lf > o + i && lf[-1] == '\r');
        if (memcmp(o + i, "250 x\r\n", 7) != 0 && memcmp(o + i, "220 go\r\n", 8) != 0) {
            ASSERT((size_t)(lf - (o + i)) >= 4);
            ASSERT(o[i] >= '2' && o[i] <= '5');
            ASSERT(o[i + 1] >= '0' && o[i + 1] <= '9' && o[i + 2] >= '0' && o[i + 2] <= '9');
            ASSERT(o[i + 3] == ' ' || o[i + 3] == '-' || o[i + 3] == '\r');
        }
        i = (size_t)(lf - o) + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct trace a, b;
    size_t piece;

    if (size < 4)
        return 0;
    if (!a.out) {
        a.out = malloc(OUT_MAX);
        b.out = malloc(OUT_MAX);
        ASSERT(a.out && b.out);
    }
    a.out_len = b.out_len = a.log_len = b.log_len = 0;
    a.closed = b.closed = a.tls_pending = b.tls_pending = 0;
    piece = 1 + data[3] % 5;
    run(data, data + 4, size - 4, 0, &a);
    run(data, data + 4, size - 4, piece, &b);
    ASSERT(a.out_len == b.out_len && memcmp(a.out, b.out, a.out_len) == 0);
    ASSERT(a.log_len == b.log_len && memcmp(a.log, b.log, a.log_len) == 0);
    check_lines(a.out, a.out_len);
    return 0;
}
