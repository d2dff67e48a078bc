/*
 * ringmail-sink: an io_uring SMTP server that accepts (and counts, and
 * optionally stores) whatever mail it is sent, for ringmail's integration
 * tests and benchmarks, with fault injection in the spirit of Postfix's
 * smtp-sink. This file is the command line, the listening socket, signals
 * and the final statistics; the protocol is sink_smtp, the connections
 * sink_conn, the TLS context sink_tls, the counters and files sink_store.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "loop.h"
#include "sink_bio.h"
#include "sink_conn.h"
#include "sink_smtp.h"
#include "sink_store.h"
#include "sink_tls.h"

#define EXIT_USAGE 64

static const char usage_text[] =
    "usage: ringmail-sink [options]\n"
    "An io_uring SMTP sink for tests and benchmarks: it accepts mail, counts it,\n"
    "optionally stores it, and injects faults on request.\n"
    "\n"
    "Listening and TLS:\n"
    "  --listen HOST:PORT       address (default 127.0.0.1:0; [::1]:PORT for IPv6). Once\n"
    "                           ready it prints 'listening HOST:PORT' on stdout.\n"
    "  --cert FILE --key FILE   server certificate (chain allowed) and key (PEM)\n"
    "  --implicit               implicit TLS (port 465 style): handshake, then 220\n"
    "  --plaintext              no TLS at all (STARTTLS not offered, mail accepted)\n"
    "  --tls-versions SPEC      1.0, 1.1, 1.2, 1.3 or a range A-B (default 1.2-1.3);\n"
    "                           below 1.2 OpenSSL security level 0 is used\n"
    "  --ciphers LIST           TLS <= 1.2 cipher list (e.g. AES128-SHA, @SECLEVEL=0)\n"
    "  --ciphersuites LIST      TLS 1.3 cipher suites\n"
    "  --no-read-ahead          no SSL read-ahead (it may keep kTLS RX off)\n"
    "  --no-ktls                never hand TLS records to the kernel (kTLS off both ways)\n"
    "  --key-update-after N     every N messages on a TLS 1.3 connection, send a\n"
    "                           KeyUpdate requesting the client's\n"
    "\n"
    "SMTP:\n"
    "  --hostname NAME          name in the greeting and EHLO (default ringmail-sink)\n"
    "  --no-pipelining --no-chunking --no-8bitmime --no-smtputf8 --no-starttls\n"
    "                           do not offer that extension\n"
    "  --size N                 SIZE limit in octets (default 36700160; 0: no SIZE)\n"
    "  --max-mails N            a session carries N messages; MAIL after that gets\n"
    "                           452 4.5.3 Too many messages sent (OpenSMTPD max-mails)\n"
    "  --allow-plaintext        accept MAIL before STARTTLS (default: 530 5.7.0)\n"
    "  --auth USER:PASS         offer AUTH PLAIN LOGIN after TLS and require it\n"
    "\n"
    "Output:\n"
    "  --store DIR              write DIR/NNNNNNNN.eml (the message) and .env (envelope,\n"
    "                           TLS facts); without it nothing is written per message\n"
    "  --ids FILE               append each accepted message's Message-ID ('-': none)\n"
    "  --stats FILE             at exit write the statistics JSON there (also stdout)\n"
    "  --max-messages N         stop after N accepted messages\n"
    "  --grace-ms MS            after a stop, time connections get to finish (2000)\n"
    "  -v, --verbose            one line per connection event on stderr\n"
    "\n"
    "Faults (repeatable; CMD is GREETING, EHLO, HELO, STARTTLS, AUTH, MAIL, RCPT,\n"
    "DATA (the reply after the message), DATA-CMD (the 354), BDAT, RSET, NOOP, VRFY,\n"
    "QUIT; @N applies it to every Nth occurrence only, counted over all connections):\n"
    "  --reply CMD=CODE[@N][:TEXT]  answer CODE (and TEXT) instead\n"
    "  --delay CMD=MS[@N]       send that reply MS milliseconds late\n"
    "  --stall CMD[@N]          never send that reply (input is then ignored)\n"
    "  --disconnect-after CMD[@N]  close instead of replying; also DATA-BODY and\n"
    "                           BDAT-BODY (at the first octet of the message), DATA-END\n"
    "                           (message accepted and counted, reply lost); DATA here\n"
    "                           means the DATA command, '.' the end of the message\n"
    "                           (closed before it is accepted)\n"
    "  --slow                   send every reply one byte per write\n"
    "  --inject-after-220 TEXT  bytes sent right after the STARTTLS reply, same write\n"
    "  --starttls-reply TEXT    the STARTTLS reply line instead of 220; TLS starts\n"
    "                           only if it begins with '220 '\n"
    "                           (TEXT takes \\r \\n \\t \\\\ \\xHH escapes)\n"
    "\n"
    "SIGTERM/SIGINT: stop accepting, let connections finish, print the statistics\n"
    "JSON, exit 0. Exit 64: usage error; 1: setup failure.\n";

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage_error(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "ringmail-sink: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(ringmail-sink --help lists the options)\n");
    exit(EXIT_USAGE);
}

static unsigned long long parse_num(const char *s, const char *opt, unsigned long long max)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-' || v > max)
        usage_error("%s: bad number '%s'", opt, s);
    return v;
}

/* \r \n \t \\ \xHH; the result is malloc'd, its length in *len. */
static char *unescape(const char *s, size_t *len, const char *opt)
{
    char *out = malloc(strlen(s) + 1);
    size_t n = 0;

    if (!out)
        usage_error("out of memory");
    for (; *s; s++) {
        if (*s != '\\') {
            out[n++] = *s;
            continue;
        }
        switch (*++s) {
        case 'r':
            out[n++] = '\r';
            break;
        case 'n':
            out[n++] = '\n';
            break;
        case 't':
            out[n++] = '\t';
            break;
        case '\\':
            out[n++] = '\\';
            break;
        case 'x': {
            char hex[3] = {0};
            char *end;
            if (!s[1] || !s[2])
                usage_error("%s: \\x needs two hex digits", opt);
            hex[0] = s[1];
            hex[1] = s[2];
            out[n++] = (char)strtoul(hex, &end, 16);
            if (*end)
                usage_error("%s: \\x needs two hex digits", opt);
            s += 2;
            break;
        }
        default:
            usage_error("%s: unknown escape in '%s'", opt, s - 1);
        }
    }
    *len = n;
    return out;
}

/* "CMD[=VALUE][@N]...": the point, the value text (up to '@' or ':'), the
 * period, and what follows a ':' (TEXT of --reply). */
struct spec {
    enum sink_smtp_point point;
    char value[32];
    unsigned every;
    const char *text;
};

static void parse_spec(const char *arg, const char *opt, bool want_value, bool disconnect,
                       struct spec *sp)
{
    const char *eq = strchr(arg, '='), *p;
    size_t nlen;
    int point;

    memset(sp, 0, sizeof(*sp));
    sp->every = 1;
    if (want_value && !eq)
        usage_error("%s %s: expected CMD=VALUE", opt, arg);
    if (!want_value)
        eq = NULL;
    nlen = eq ? (size_t)(eq - arg) : strcspn(arg, "@");
    point = sink_smtp_point_parse(arg, nlen);
    if (disconnect && nlen == 4 && strncasecmp(arg, "DATA", 4) == 0)
        point = SINK_SMTP_P_DATA_CMD; /* "after receiving DATA" is the command */
    if (point < 0)
        usage_error("%s: unknown command '%.*s'", opt, (int)nlen, arg);
    if (!disconnect && !sink_smtp_point_has_reply((enum sink_smtp_point)point))
        usage_error("%s: %.*s has no reply of its own", opt, (int)nlen, arg);
    sp->point = (enum sink_smtp_point)point;
    p = arg + nlen;
    if (eq) {
        size_t vlen = strcspn(++p, "@:");
        if (vlen == 0 || vlen >= sizeof(sp->value))
            usage_error("%s %s: missing value", opt, arg);
        memcpy(sp->value, p, vlen);
        p += vlen;
    }
    if (*p == '@') {
        char num[24];
        size_t k = strcspn(++p, ":");
        if (k == 0 || k >= sizeof(num))
            usage_error("%s %s: bad @N", opt, arg);
        memcpy(num, p, k);
        num[k] = '\0';
        sp->every = (unsigned)parse_num(num, opt, 1000000000);
        if (!sp->every)
            usage_error("%s %s: @N must be at least 1", opt, arg);
        p += k;
    }
    if (*p == ':' && want_value)
        sp->text = p + 1;
    else if (*p)
        usage_error("%s %s: unexpected '%s'", opt, arg, p);
}

/* Base64 credentials against --auth USER:PASS (RFC 4616 for PLAIN). */
struct creds {
    char *user, *pass;
};

static int b64(const char *in, unsigned char *out, size_t cap)
{
    size_t n = strlen(in);
    int k;

    if (n == 0 || n % 4 || n / 4 * 3 >= cap)
        return n == 0 ? 0 : -1;
    k = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
    if (k < 0)
        return -1;
    k -= (in[n - 1] == '=') + (in[n - 2] == '=');
    out[k] = '\0';
    return k;
}

static bool auth_check(void *arg, enum sink_smtp_auth_mech mech, const char *a, const char *b,
                       char *user, size_t cap)
{
    const struct creds *cr = arg;
    unsigned char x[SINK_SMTP_AUTH_LINE_MAX], y[SINK_SMTP_AUTH_LINE_MAX];
    int n = b64(a, x, sizeof(x));
    const char *authz, *authc, *pass;

    if (n < 0)
        return false;
    if (mech == SINK_SMTP_AUTH_PLAIN) {
        const unsigned char *z1 = memchr(x, 0, (size_t)n), *z2;
        if (!z1 || !(z2 = memchr(z1 + 1, 0, (size_t)(x + n - z1 - 1))))
            return false;
        authz = (const char *)x;
        authc = (const char *)z1 + 1;
        pass = (const char *)z2 + 1;
        if (*authz && strcmp(authz, authc) != 0)
            return false; /* no proxy authorisation here */
    } else {
        int m = b64(b, y, sizeof(y));
        if (m < 0 || memchr(x, 0, (size_t)n) || memchr(y, 0, (size_t)m))
            return false;
        authc = (const char *)x;
        pass = (const char *)y;
    }
    if (strcmp(authc, cr->user) != 0 || strcmp(pass, cr->pass) != 0)
        return false;
    snprintf(user, cap, "%s", authc);
    return true;
}

static int listen_on(const char *spec, char *shown, size_t shown_len)
{
    char host[256], serv[16];
    const char *colon = strrchr(spec, ':');
    struct addrinfo hints, *ai = NULL;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    size_t hlen;
    int fd, one = 1, rc;

    if (!colon || colon == spec)
        usage_error("--listen %s: expected HOST:PORT", spec);
    hlen = (size_t)(colon - spec);
    if (spec[0] == '[' && hlen >= 2 && spec[hlen - 1] == ']') {
        spec++;
        hlen -= 2;
    }
    if (hlen >= sizeof(host))
        usage_error("--listen: host too long");
    memcpy(host, spec, hlen);
    host[hlen] = '\0';
    parse_num(colon + 1, "--listen", 65535);
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if ((rc = getaddrinfo(host, colon + 1, &hints, &ai)) != 0)
        usage_error("--listen %s: %s", spec, gai_strerror(rc));
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4096) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
        fprintf(stderr, "ringmail-sink: listen on %s: %s\n", spec, strerror(errno));
        freeaddrinfo(ai);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    freeaddrinfo(ai);
    if (getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), serv, sizeof(serv),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        snprintf(host, sizeof(host), "?");
    snprintf(shown, shown_len, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv);
    return fd;
}

/* Signals arrive through a signalfd polled on the ring: no handler at all. */
struct sigwatch {
    struct loop *loop;
    struct sink_server *srv;
    loop_slot slot;
    int fd;
};

static void signal_handler(void *ctx, const struct loop_cqe *cqe)
{
    struct sigwatch *w = ctx;
    struct signalfd_siginfo si;

    (void)cqe;
    while (read(w->fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        sink_server_stop(w->srv);
    if (!w->srv->done)
        loop_poll(w->loop, w->slot, 0, w->fd, POLLIN);
}

enum opt {
    O_LISTEN = 256,
    O_CERT,
    O_KEY,
    O_IMPLICIT,
    O_PLAINTEXT,
    O_TLS_VERSIONS,
    O_CIPHERS,
    O_CIPHERSUITES,
    O_NO_READ_AHEAD,
    O_NO_KTLS,
    O_KEY_UPDATE,
    O_HOSTNAME,
    O_NO_PIPELINING,
    O_NO_CHUNKING,
    O_NO_8BITMIME,
    O_NO_SMTPUTF8,
    O_NO_STARTTLS,
    O_SIZE,
    O_MAX_MAILS,
    O_ALLOW_PLAINTEXT,
    O_AUTH,
    O_STORE,
    O_IDS,
    O_STATS,
    O_MAX_MESSAGES,
    O_GRACE,
    O_REPLY,
    O_DELAY,
    O_STALL,
    O_DISCONNECT,
    O_SLOW,
    O_INJECT,
    O_STARTTLS_REPLY,
};

static const struct option options[] = {
    {"listen", required_argument, NULL, O_LISTEN},
    {"cert", required_argument, NULL, O_CERT},
    {"key", required_argument, NULL, O_KEY},
    {"implicit", no_argument, NULL, O_IMPLICIT},
    {"plaintext", no_argument, NULL, O_PLAINTEXT},
    {"tls-versions", required_argument, NULL, O_TLS_VERSIONS},
    {"ciphers", required_argument, NULL, O_CIPHERS},
    {"ciphersuites", required_argument, NULL, O_CIPHERSUITES},
    {"no-read-ahead", no_argument, NULL, O_NO_READ_AHEAD},
    {"no-ktls", no_argument, NULL, O_NO_KTLS},
    {"key-update-after", required_argument, NULL, O_KEY_UPDATE},
    {"hostname", required_argument, NULL, O_HOSTNAME},
    {"no-pipelining", no_argument, NULL, O_NO_PIPELINING},
    {"no-chunking", no_argument, NULL, O_NO_CHUNKING},
    {"no-8bitmime", no_argument, NULL, O_NO_8BITMIME},
    {"no-smtputf8", no_argument, NULL, O_NO_SMTPUTF8},
    {"no-starttls", no_argument, NULL, O_NO_STARTTLS},
    {"size", required_argument, NULL, O_SIZE},
    {"max-mails", required_argument, NULL, O_MAX_MAILS},
    {"allow-plaintext", no_argument, NULL, O_ALLOW_PLAINTEXT},
    {"auth", required_argument, NULL, O_AUTH},
    {"store", required_argument, NULL, O_STORE},
    {"ids", required_argument, NULL, O_IDS},
    {"stats", required_argument, NULL, O_STATS},
    {"max-messages", required_argument, NULL, O_MAX_MESSAGES},
    {"grace-ms", required_argument, NULL, O_GRACE},
    {"reply", required_argument, NULL, O_REPLY},
    {"delay", required_argument, NULL, O_DELAY},
    {"stall", required_argument, NULL, O_STALL},
    {"disconnect-after", required_argument, NULL, O_DISCONNECT},
    {"slow", no_argument, NULL, O_SLOW},
    {"inject-after-220", required_argument, NULL, O_INJECT},
    {"starttls-reply", required_argument, NULL, O_STARTTLS_REPLY},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

struct settings {
    const char *listen, *store, *ids, *stats;
    struct sink_tls_opts tls;
    bool plaintext;
    struct creds creds;
};

static void parse_args(int argc, char **argv, struct settings *st, struct sink_smtp_config *cfg,
                       struct sink_server *srv)
{
    struct spec sp;
    int o;

    while ((o = getopt_long(argc, argv, "vh", options, NULL)) != -1) {
        switch (o) {
        case O_LISTEN:
            st->listen = optarg;
            break;
        case O_CERT:
            st->tls.cert = optarg;
            break;
        case O_KEY:
            st->tls.key = optarg;
            break;
        case O_IMPLICIT:
            srv->implicit = true;
            break;
        case O_PLAINTEXT:
            st->plaintext = true;
            break;
        case O_TLS_VERSIONS: {
            int a, b;
            if (sink_tls_parse_versions(optarg, &a, &b) < 0)
                usage_error("--tls-versions %s: expected 1.0..1.3 or A-B", optarg);
            st->tls.versions = optarg;
            break;
        }
        case O_CIPHERS:
            st->tls.ciphers = optarg;
            break;
        case O_CIPHERSUITES:
            st->tls.ciphersuites = optarg;
            break;
        case O_NO_READ_AHEAD:
            st->tls.read_ahead = false;
            break;
        case O_NO_KTLS:
            st->tls.no_ktls = true;
            break;
        case O_KEY_UPDATE:
            srv->key_update_after = (unsigned)parse_num(optarg, "--key-update-after", 1u << 30);
            break;
        case O_HOSTNAME:
            cfg->hostname = optarg;
            break;
        case O_NO_PIPELINING:
            cfg->pipelining = false;
            break;
        case O_NO_CHUNKING:
            cfg->chunking = false;
            break;
        case O_NO_8BITMIME:
            cfg->eightbitmime = false;
            break;
        case O_NO_SMTPUTF8:
            cfg->smtputf8 = false;
            break;
        case O_NO_STARTTLS:
            cfg->starttls = false;
            break;
        case O_SIZE:
            cfg->size_max = parse_num(optarg, "--size", 1ull << 40);
            break;
        case O_MAX_MAILS:
            cfg->max_mails = (unsigned long)parse_num(optarg, "--max-mails", 1ull << 32);
            break;
        case O_ALLOW_PLAINTEXT:
            cfg->allow_plaintext = true;
            break;
        case O_AUTH: {
            const char *c = strchr(optarg, ':');
            if (!c || c == optarg || !c[1])
                usage_error("--auth: expected USER:PASS");
            st->creds.user = strndup(optarg, (size_t)(c - optarg));
            st->creds.pass = strdup(c + 1);
            if (!st->creds.user || !st->creds.pass)
                usage_error("out of memory");
            cfg->auth = true;
            break;
        }
        case O_STORE:
            st->store = optarg;
            break;
        case O_IDS:
            st->ids = optarg;
            break;
        case O_STATS:
            st->stats = optarg;
            break;
        case O_MAX_MESSAGES:
            srv->max_messages = parse_num(optarg, "--max-messages", ~0ull);
            break;
        case O_GRACE:
            srv->grace_ms = (unsigned)parse_num(optarg, "--grace-ms", 3600000);
            break;
        case O_REPLY: {
            struct sink_smtp_fault_reply *r;
            parse_spec(optarg, "--reply", true, false, &sp);
            r = &cfg->faults[sp.point].reply;
            r->code = (int)parse_num(sp.value, "--reply", 999);
            if (r->code < 200 || r->code > 599)
                usage_error("--reply %s: CODE must be 200..599", optarg);
            r->every = sp.every;
            if (sp.text && strlen(sp.text) >= sizeof(r->text))
                usage_error("--reply %s: TEXT too long", optarg);
            snprintf(r->text, sizeof(r->text), "%s", sp.text ? sp.text : "");
            break;
        }
        case O_DELAY:
            parse_spec(optarg, "--delay", true, false, &sp);
            cfg->faults[sp.point].delay_ms = (unsigned)parse_num(sp.value, "--delay", 3600000);
            cfg->faults[sp.point].delay_every = sp.every;
            break;
        case O_STALL:
            parse_spec(optarg, "--stall", false, false, &sp);
            cfg->faults[sp.point].stall_every = sp.every;
            break;
        case O_DISCONNECT:
            parse_spec(optarg, "--disconnect-after", false, true, &sp);
            cfg->faults[sp.point].disconnect_every = sp.every;
            break;
        case O_SLOW:
            srv->slow = true;
            break;
        case O_INJECT:
            cfg->inject_after_220 = unescape(optarg, &cfg->inject_len, "--inject-after-220");
            break;
        case O_STARTTLS_REPLY:
            cfg->starttls_reply = unescape(optarg, &cfg->starttls_reply_len, "--starttls-reply");
            break;
        case 'v':
            srv->verbose = true;
            break;
        case 'h':
            fputs(usage_text, stdout);
            exit(0);
        default:
            usage_error("unknown option");
        }
    }
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);
    if (st->plaintext && (srv->implicit || cfg->auth || srv->key_update_after || st->tls.cert))
        usage_error("--plaintext excludes --implicit, --auth, --key-update-after and --cert");
    if (!st->plaintext && (!st->tls.cert || !st->tls.key))
        usage_error("TLS needs --cert and --key (or give --plaintext)");
}

int main(int argc, char **argv)
{
    static struct sink_smtp_config cfg;
    struct settings st = {.listen = "127.0.0.1:0", .tls = {.read_ahead = true}};
    struct sink_server srv = {.grace_ms = 2000, .listen_fd = -1};
    struct sigwatch sw = {.fd = -1};
    char err[512], shown[300];
    sigset_t mask;
    FILE *f;
    int rc;

    sink_smtp_config_init(&cfg);
    parse_args(argc, argv, &st, &cfg, &srv);
    cfg.tls_available = !st.plaintext;
    cfg.keep_body = st.store != NULL;
    cfg.auth_check = auth_check;
    cfg.auth_arg = &st.creds;
    srv.smtp = &cfg;

    signal(SIGPIPE, SIG_IGN); /* OpenSSL writes the socket without MSG_NOSIGNAL */
    if (!st.plaintext && !(srv.ssl_ctx = sink_tls_ctx_new(&st.tls, err, sizeof(err)))) {
        fprintf(stderr, "ringmail-sink: %s\n", err);
        return 1;
    }
    if (sink_store_open(&srv.store, st.store, st.ids, err, sizeof(err)) < 0) {
        fprintf(stderr, "ringmail-sink: %s\n", err);
        return 1;
    }
    if ((rc = loop_create(&srv.loop, NULL)) < 0) {
        fprintf(stderr, "ringmail-sink: io_uring: %s\n", strerror(-rc));
        return 1;
    }
    if ((srv.listen_fd = listen_on(st.listen, shown, sizeof(shown))) < 0)
        return 1;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    sw.loop = srv.loop;
    sw.srv = &srv;
    sw.fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    sw.slot = loop_slot_open(srv.loop, signal_handler, &sw);
    if (sw.fd < 0 || sw.slot < 0 || loop_poll(srv.loop, sw.slot, 0, sw.fd, POLLIN) < 0 ||
        (rc = sink_server_start(&srv)) < 0) {
        fprintf(stderr, "ringmail-sink: setup failed\n");
        return 1;
    }
    printf("listening %s\n", shown);
    fflush(stdout);

    while (!srv.done) {
        rc = loop_run_once(srv.loop, -1);
        if (rc < 0) {
            fprintf(stderr, "ringmail-sink: io_uring: %s\n", strerror(-rc));
            break;
        }
    }
    loop_slot_close(srv.loop, sw.slot, NULL);
    for (int i = 0; i < 10 && loop_slot_inflight(srv.loop, sw.slot); i++)
        loop_run_once(srv.loop, 10);

    sink_store_write_json(srv.store, stdout);
    fflush(stdout);
    if (st.stats) {
        f = fopen(st.stats, "we");
        if (!f) {
            fprintf(stderr, "ringmail-sink: --stats %s: %s\n", st.stats, strerror(errno));
        } else {
            sink_store_write_json(srv.store, f);
            if (fclose(f) != 0)
                fprintf(stderr, "ringmail-sink: --stats %s: write failed\n", st.stats);
        }
    }
    loop_destroy(srv.loop);
    close(sw.fd);
    sink_store_close(srv.store);
    SSL_CTX_free(srv.ssl_ctx);
    sink_bio_cleanup();
    free(st.creds.user);
    free(st.creds.pass);
    free((char *)cfg.inject_after_220);
    free((char *)cfg.starttls_reply);
    return rc < 0 ? 1 : 0;
}
