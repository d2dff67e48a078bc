/*
 * ringmail send: deliver one message file to a relay under the full TLS
 * policy, optionally N times over C persistent connections for a quick load,
 * and report the outcome and the TLS facts of every connection.
 *
 * Exit status (sysexits): 0 delivered to every recipient; 75 (EX_TEMPFAIL)
 * a temporary failure; 69 (EX_UNAVAILABLE) a permanent rejection; 76
 * (EX_PROTOCOL) a TLS or protocol policy refusal; 64 usage; 65 bad input.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "cli_util.h"
#include "commands.h"
#include "config.h"
#include "log.h"
#include "loop.h"
#include "message.h"
#include "pool.h"
#include "smtp_auth.h"
#include "smtp_syntax.h"
#include "tls.h"

#define MAX_RCPT 1000
#define MAX_PINS 8

struct send_opts {
    const char *relay, *ca, *servername, *min_tls, *user, *password_file, *from, *file, *ehlo;
    const char *client_cert, *client_key;
    const char *rcpts[MAX_RCPT];
    size_t nrcpt;
    const char *pins[MAX_PINS];
    size_t npins;
    int implicit, insecure, quiet, no_pipeline_body;
    unsigned long count, connections, timeout_s, stage_timeout_s, hold_s, per_conn, keepalive_s;
    unsigned long send_zc_min, depth;
};

struct send_job {
    struct pool_job pj;
    struct send_run *run;
    struct smtp_client_rcpt_result *results;
};

struct send_run {
    struct loop *loop;
    const struct send_opts *o;
    char *wire_data, *wire_bdat;
    size_t len_data, len_bdat;
    struct message_facts facts_data, facts_bdat;
    /* The BDAT body in a memfd too: with kTLS it is spliced, not copied. */
    struct smtp_client_body_file bdat_file;
    unsigned long done;
    unsigned long outcome[4];                   /* by enum smtp_client_outcome, per recipient */
    unsigned long reasons[SMTP_CLIENT_R_COUNT]; /* connection failures that decided a job */
    char first_failure[2 * SMTP_CLIENT_REPLY_TEXT_MAX];
};

static void usage(FILE *f)
{
    fprintf(
        f, "Usage: ringmail send --relay HOST:PORT --from ADDR --to ADDR [--to ADDR ...] [options] "
           "FILE\n"
           "\n"
           "Send the RFC 5322 message in FILE under the full TLS policy: STARTTLS required\n"
           "(or --implicit-tls), certificate and host name verified, TLS 1.2 minimum.\n"
           "\n"
           "Options:\n"
           "  --relay HOST:PORT        the relay (port 587 if omitted; [v6]:port for IPv6)\n"
           "  --implicit-tls           TLS from the first byte (port 465 style)\n"
           "  --ca FILE|DIR            trust this CA file (or hashed directory) instead of\n"
           "                           the system store\n"
           "  --client-cert FILE       present this client certificate (PEM chain) ...\n"
           "  --client-key FILE        ... with this key (PEM, unencrypted)\n"
           "  --servername NAME        name to verify and send as SNI (default: HOST)\n"
           "  --min-tls 1.2|1.3        lowest TLS version accepted (default 1.2)\n"
           "  --pin SHA256             SPKI SHA-256 pin (base64 or hex); repeatable\n"
           "  --user NAME              AUTH user (needs --password-file)\n"
           "  --password-file FILE     file holding the AUTH password (one line)\n"
           "  --from ADDR              envelope sender (\"\" for the null sender)\n"
           "  --to ADDR                envelope recipient; repeatable\n"
           "  --ehlo NAME              our EHLO name (default: this host's name, which must\n"
           "                           be fully qualified)\n"
           "  --count N                send the message N times (default 1)\n"
           "  --connections C          persistent connections (default 1)\n"
           "  --timeout SECONDS        give up after this long (default 600)\n"
           "  --stage-timeout SECONDS  limit every SMTP and TLS stage to this (default:\n"
           "                           RFC 5321 4.5.3.2 values, 60 s for the handshake)\n"
           "  --hold SECONDS           keep the connections open and idle this long after\n"
           "                           sending, then report the memory they hold\n"
           "  --max-messages-per-connection N\n"
           "                           replace a connection after N messages (default 1000)\n"
           "  --keepalive SECONDS      NOOP on connections idle this long (default 60)\n"
           "  --send-zc BYTES          zero-copy send (SEND_ZC) for ciphertext runs of at least\n"
           "                           this many bytes (default 65536; off for a relay on\n"
           "                           this host, where the kernel copies anyway)\n"
           "  --no-send-zc             always copy ciphertext into the kernel\n"
           "  --no-pipeline-body       with CHUNKING, wait for an accepted recipient before\n"
           "                           sending the body (default: BDAT goes with MAIL and RCPT)\n"
           "  --pipeline-depth N       up to N transactions back to back on a connection when\n"
           "                           the relay offers PIPELINING and CHUNKING (default 8)\n"
           "  --quiet                  print only the summary line\n"
           "  -h, --help               show this help\n"
           "\n"
           "Exit status: 0 delivered to every recipient, 75 temporary failure, 69 permanent\n"
           "rejection, 76 TLS or protocol policy refusal, 64 usage error, 65 bad input file.\n");
}

static int parse_opts(int argc, char **argv, struct send_opts *o)
{
    static const struct option longopts[] = {
        {"relay", required_argument, NULL, 'r'},
        {"implicit-tls", no_argument, NULL, 'I'},
        {"ca", required_argument, NULL, 'c'},
        {"client-cert", required_argument, NULL, 'x'},
        {"client-key", required_argument, NULL, 'y'},
        {"servername", required_argument, NULL, 's'},
        {"min-tls", required_argument, NULL, 'm'},
        {"pin", required_argument, NULL, 'P'},
        {"insecure-no-verify", no_argument, NULL, 'K'},
        {"user", required_argument, NULL, 'u'},
        {"password-file", required_argument, NULL, 'p'},
        {"from", required_argument, NULL, 'f'},
        {"to", required_argument, NULL, 't'},
        {"ehlo", required_argument, NULL, 'e'},
        {"count", required_argument, NULL, 'n'},
        {"connections", required_argument, NULL, 'C'},
        {"timeout", required_argument, NULL, 'T'},
        {"stage-timeout", required_argument, NULL, 'S'},
        {"hold", required_argument, NULL, 'H'},
        {"max-messages-per-connection", required_argument, NULL, 'M'},
        {"keepalive", required_argument, NULL, 'k'},
        {"send-zc", required_argument, NULL, 'z'},
        {"no-send-zc", no_argument, NULL, 'Z'},
        {"no-pipeline-body", no_argument, NULL, 'B'},
        {"pipeline-depth", required_argument, NULL, 'D'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    char *end;

    memset(o, 0, sizeof(*o));
    o->count = 1;
    o->connections = 1;
    o->timeout_s = 600;
    o->depth = 8;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'r':
            o->relay = optarg;
            break;
        case 'I':
            o->implicit = 1;
            break;
        case 'K':
            o->insecure = 1;
            break;
        case 'Z':
            o->send_zc_min = POOL_SEND_ZC_OFF;
            break;
        case 'B':
            o->no_pipeline_body = 1;
            break;
        case 'c':
            o->ca = optarg;
            break;
        case 'x':
            o->client_cert = optarg;
            break;
        case 'y':
            o->client_key = optarg;
            break;
        case 's':
            o->servername = optarg;
            break;
        case 'm':
            if (strcmp(optarg, "1.2") != 0 && strcmp(optarg, "1.3") != 0) {
                fprintf(stderr, "ringmail send: --min-tls must be 1.2 or 1.3, not '%s'\n", optarg);
                return -1;
            }
            o->min_tls = optarg;
            break;
        case 'P':
            if (o->npins == MAX_PINS) {
                fprintf(stderr, "ringmail send: at most %d --pin\n", MAX_PINS);
                return -1;
            }
            {
                /* tls_ctx_new()'s own parser: a bad pin is a usage error here. */
                unsigned char pin[TLS_PIN_OCTETS];
                if (tls_pin_parse(optarg, pin) != 0) {
                    fprintf(stderr,
                            "ringmail send: --pin '%.80s': not an SPKI SHA-256 pin (44 base64 "
                            "characters, optionally after sha256//, or 64 hex digits)\n",
                            optarg);
                    return -1;
                }
            }
            o->pins[o->npins++] = optarg;
            break;
        case 'u':
            o->user = optarg;
            break;
        case 'p':
            o->password_file = optarg;
            break;
        case 'f':
            o->from = optarg;
            break;
        case 't':
            if (o->nrcpt == MAX_RCPT) {
                fprintf(stderr, "ringmail send: at most %d --to\n", MAX_RCPT);
                return -1;
            }
            o->rcpts[o->nrcpt++] = optarg;
            break;
        case 'e':
            o->ehlo = optarg;
            break;
        case 'n':
        case 'C':
        case 'S':
        case 'H':
        case 'M':
        case 'k':
        case 'z':
        case 'D':
        case 'T': {
            unsigned long v;
            errno = 0;
            v = strtoul(optarg, &end, 10);
            if (errno || *end || v == 0 || v > 100000000ul) {
                fprintf(stderr, "ringmail send: bad number '%s'\n", optarg);
                return -1;
            }
            if (ch == 'n')
                o->count = v;
            else if (ch == 'C')
                o->connections = v;
            else if (ch == 'S')
                o->stage_timeout_s = v;
            else if (ch == 'H')
                o->hold_s = v;
            else if (ch == 'M')
                o->per_conn = v;
            else if (ch == 'k')
                o->keepalive_s = v;
            else if (ch == 'z')
                o->send_zc_min = v;
            else if (ch == 'D') {
                if (v > SMTP_CLIENT_DEPTH_MAX) {
                    fprintf(stderr, "ringmail send: --pipeline-depth is at most %d\n",
                            SMTP_CLIENT_DEPTH_MAX);
                    return -1;
                }
                o->depth = v;
            } else
                o->timeout_s = v;
            break;
        }
        case 'q':
            o->quiet = 1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            return -1;
        }
    }
    if (optind + 1 != argc) {
        fprintf(stderr, "ringmail send: exactly one message FILE is needed\n");
        return -1;
    }
    o->file = argv[optind];
    if (!o->relay || !o->from || !o->nrcpt) {
        fprintf(stderr, "ringmail send: --relay, --from and at least one --to are required\n");
        return -1;
    }
    if (!o->client_cert != !o->client_key) {
        fprintf(stderr, "ringmail send: --client-cert and --client-key go together\n");
        return -1;
    }
    if (!o->user != !o->password_file) {
        fprintf(stderr, "ringmail send: --user and --password-file go together\n");
        return -1;
    }
    if (o->connections > o->count)
        o->connections = o->count;
    if (o->connections > 30000) {
        fprintf(stderr, "ringmail send: at most 30000 --connections\n");
        return -1;
    }
    return 0;
}

/* HOST:PORT, [V6]:PORT, or HOST (port 587). */
static int resolve(const char *relay, char *host, size_t hostlen, struct sockaddr_storage *ss,
                   socklen_t *sslen)
{
    const char *port = "587", *colon;

    if (relay[0] == '[') {
        const char *rb = strchr(relay, ']');
        if (!rb || (rb[1] && rb[1] != ':'))
            return -1;
        snprintf(host, hostlen, "%.*s", (int)(rb - relay - 1), relay + 1);
        if (rb[1] == ':')
            port = rb + 2;
    } else if ((colon = strrchr(relay, ':')) && !strchr(colon + 1, ':')) {
        snprintf(host, hostlen, "%.*s", (int)(colon - relay), relay);
        port = colon + 1;
    } else {
        snprintf(host, hostlen, "%s", relay);
    }
    {
        char *end, err[256];
        unsigned long p = strtoul(port, &end, 10);
        if (*end || !*port || p == 0 || p > 65535) {
            fprintf(stderr, "ringmail send: bad port in %s\n", relay);
            return -1;
        }
        if (cli_resolve(host, (unsigned)p, ss, sslen, err, sizeof(err)) != 0) {
            fprintf(stderr, "ringmail send: %s\n", err);
            return -1;
        }
    }
    return 0;
}

static int job_prepare(struct pool_job *pj, enum message_encoding enc)
{
    struct send_job *j = (struct send_job *)pj;
    struct send_run *r = j->run;
    if (enc == MESSAGE_ENC_BDAT) {
        pj->txn.body = r->wire_bdat;
        pj->txn.body_len = r->len_bdat;
        pj->txn.facts = r->facts_bdat;
        pj->txn.body_file = r->bdat_file.fd >= 0 ? &r->bdat_file : NULL;
    } else {
        pj->txn.body = r->wire_data;
        pj->txn.body_len = r->len_data;
        pj->txn.facts = r->facts_data;
    }
    return 0;
}

static void job_done(struct pool_job *pj, enum smtp_client_reason reason, const char *detail,
                     const struct tls_facts *facts)
{
    struct send_job *j = (struct send_job *)pj;
    struct send_run *r = j->run;
    size_t i;
    (void)facts;
    r->done++;
    if (reason != SMTP_CLIENT_R_NONE)
        r->reasons[reason]++;
    for (i = 0; i < pj->txn.nrcpt; i++) {
        const struct smtp_client_rcpt_result *res = &pj->txn.results[i];
        r->outcome[res->outcome & 3]++;
        if (res->outcome != SMTP_CLIENT_DELIVERED && !r->first_failure[0])
            snprintf(r->first_failure, sizeof(r->first_failure), "%s: %s %s%s%s", pj->txn.rcpts[i],
                     smtp_client_outcome_name(res->outcome),
                     reason != SMTP_CLIENT_R_NONE ? smtp_client_reason_name(reason) : "",
                     reason != SMTP_CLIENT_R_NONE ? ": " : "",
                     detail && reason != SMTP_CLIENT_R_NONE ? detail : res->reply);
    }
}

static void print_conn(void *arg, unsigned index, const struct tls_facts *f,
                       const struct conn_stats *st)
{
    (void)arg;
    printf("conn %u: %s %s group=%s verify=%s ktls_tx=%d resumed=%d handshake_ms=%.1f "
           "messages=%llu spliced_bytes=%llu cert_not_after=%lld subject=\"%s\" issuer=\"%s\"\n",
           index, f->protocol, f->cipher, f->group[0] ? f->group : "-", f->verify, f->ktls_tx,
           f->resumed, (double)f->handshake_us / 1000.0, (unsigned long long)st->messages,
           (unsigned long long)st->spliced_bytes, (long long)f->not_after, f->subject, f->issuer);
}

static int policy_refusal(enum smtp_client_reason r)
{
    return r == SMTP_CLIENT_R_PROTOCOL || r == SMTP_CLIENT_R_GREETING || r == SMTP_CLIENT_R_EHLO ||
           r == SMTP_CLIENT_R_NO_STARTTLS || r == SMTP_CLIENT_R_STARTTLS_REJECTED ||
           r == SMTP_CLIENT_R_INJECTION || r == SMTP_CLIENT_R_AUTH ||
           r == SMTP_CLIENT_R_HANDSHAKE || r == SMTP_CLIENT_R_CERT_VERIFY ||
           r == SMTP_CLIENT_R_PROTOCOL_VERSION;
}

/* Resident set size of this process, KiB (0 if /proc is not there). */
static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* Thousands of connections need thousands of descriptors. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int prepare_message(const struct send_opts *o, struct send_run *r)
{
    size_t len = 0;
    char *raw = cli_read_file(o->file, &len, (size_t)1 << 30);
    int rc;
    if (!raw) {
        fprintf(stderr, "ringmail send: cannot read %s: %s\n", o->file, strerror(errno));
        return -1;
    }
    rc = message_prepare_alloc(raw, len, MESSAGE_ENC_DATA, &r->wire_data, &r->len_data,
                               &r->facts_data);
    if (rc == 0)
        rc = message_prepare_alloc(raw, len, MESSAGE_ENC_BDAT, &r->wire_bdat, &r->len_bdat,
                                   &r->facts_bdat);
    if (rc != 0) {
        if (rc == -MESSAGE_E_LINE_TOO_LONG || rc == -MESSAGE_E_NUL)
            fprintf(stderr, "ringmail send: %s: line %zu: %s\n", o->file, r->facts_data.bad_line,
                    rc == -MESSAGE_E_NUL ? "NUL octet in the message"
                                         : "line longer than 998 octets");
        else
            fprintf(stderr, "ringmail send: %s: %s\n", o->file, message_strerror(rc));
    }
    free(raw);
    if (rc != 0)
        return -1;
    r->bdat_file.fd = memfd_create("ringmail-body", MFD_CLOEXEC);
    if (r->bdat_file.fd >= 0 &&
        write(r->bdat_file.fd, r->wire_bdat, r->len_bdat) != (ssize_t)r->len_bdat) {
        close(r->bdat_file.fd); /* no splicing then; the copy path still works */
        r->bdat_file.fd = -1;
    }
    return 0;
}

static struct tls_ctx *make_tls(const struct send_opts *o, const char *host)
{
    struct tls_policy pol;
    char err[TLS_ERRBUF_MAX];
    struct tls_ctx *ctx;
    memset(&pol, 0, sizeof(pol));
    pol.servername = o->servername ? o->servername : host;
    pol.min_version = o->min_tls;
    if (o->ca) {
        struct stat sb;
        if (stat(o->ca, &sb) == 0 && S_ISDIR(sb.st_mode))
            pol.ca_dir = o->ca;
        else
            pol.ca_file = o->ca;
    }
    pol.cert_file = o->client_cert;
    pol.key_file = o->client_key;
    pol.pins = o->pins;
    pol.npins = o->npins;
    pol.insecure_no_verify = o->insecure;
    ctx = tls_ctx_new(&pol, err, sizeof(err));
    if (!ctx)
        fprintf(stderr, "ringmail send: TLS setup: %s\n", err);
    else if (tls_ctx_insecure(ctx))
        log_always(LOG_WARN, "tls_verify_disabled", "relay", pol.servername, "detail",
                   "--insecure-no-verify: certificates will not be verified and no pin is set; "
                   "connections are encrypted but not authenticated",
                   NULL);
    return ctx;
}

static int make_creds(const struct send_opts *o, struct smtp_auth_creds *creds)
{
    char pw[SMTP_AUTH_FIELD_MAX + 1], rerr[512];
    const char *err;
    if (!o->user)
        return 0;
    if (config_secret_load(o->password_file, SMTP_AUTH_FIELD_MAX, pw, rerr, sizeof(rerr)) != 0) {
        fprintf(stderr, "ringmail send: %s\n", rerr);
        return -1;
    }
    if (smtp_auth_encode(o->user, pw, creds, &err) != 0) {
        fprintf(stderr, "ringmail send: %s\n", err);
        explicit_bzero(pw, sizeof(pw));
        return -1;
    }
    explicit_bzero(pw, sizeof(pw));
    return 0;
}

int cmd_send(int argc, char **argv)
{
    struct send_opts o;
    struct send_run r;
    struct pool_config pc;
    struct pool *pool = NULL;
    struct send_job *jobs = NULL;
    struct smtp_client_rcpt_result *results = NULL;
    struct smtp_auth_creds creds;
    struct loop_config lc;
    struct tls_ctx *tls = NULL;
    char host[256], ehlo[256], err[512];
    double t0, elapsed;
    long rss_before;
    unsigned long i;
    int rc = EX_SOFTWARE;

    memset(&r, 0, sizeof(r));
    r.bdat_file.fd = -1;
    memset(&creds, 0, sizeof(creds));
    if (parse_opts(argc, argv, &o) != 0) {
        fprintf(stderr, "Try 'ringmail send --help'.\n");
        return EX_USAGE;
    }
    /* The name checked as the SMTP client and check-config check it, before
     * anything is read or resolved. */
    if (o.ehlo) {
        const char *why = smtp_syntax_ehlo_name(o.ehlo);
        if (why) {
            fprintf(stderr, "ringmail send: --ehlo: %s\n", why);
            return EX_USAGE;
        }
        snprintf(ehlo, sizeof(ehlo), "%s", o.ehlo);
    } else if (config_host_ehlo_name(ehlo, sizeof(ehlo), err, sizeof(err)) != 0) {
        fprintf(stderr, "ringmail send: %s: give --ehlo NAME\n", err);
        return EX_CONFIG;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    if (prepare_message(&o, &r) != 0)
        return EX_DATAERR;
    memset(&pc, 0, sizeof(pc));
    if (resolve(o.relay, host, sizeof(host), &pc.addr, &pc.addrlen) != 0) {
        rc = EX_NOHOST;
        goto out;
    }
    if (make_creds(&o, &creds) != 0) {
        rc = EX_USAGE;
        goto out;
    }
    tls = make_tls(&o, host);
    if (!tls) {
        rc = EX_CONFIG;
        goto out;
    }

    memset(&lc, 0, sizeof(lc));
    /* Receive buffers are shared: replies are small and released at once, so
     * a pool far smaller than the connection count keeps memory flat. */
    lc.buf_count = 64;
    while (lc.buf_count < o.connections && lc.buf_count < 1024)
        lc.buf_count *= 2;
    lc.buf_size = 16384;
    rc = loop_create(&r.loop, &lc);
    if (rc < 0) {
        fprintf(stderr, "ringmail send: io_uring setup: %s\n", strerror(-rc));
        rc = EX_OSERR;
        goto out;
    }
    r.o = &o;
    pc.name = host;
    pc.smtp.ehlo_name = ehlo;
    pc.smtp.pipeline_body = !o.no_pipeline_body;
    pc.smtp.pipeline_depth = (unsigned)o.depth;
    pc.smtp.tls_mode = o.implicit ? SMTP_CLIENT_IMPLICIT_TLS : SMTP_CLIENT_STARTTLS;
    pc.smtp.auth_plain_b64 = creds.plain_b64;
    pc.smtp.auth_user_b64 = creds.user_b64;
    pc.smtp.auth_pass_b64 = creds.pass_b64;
    pc.tls = tls;
    pc.connections = (unsigned)o.connections;
    /* One run: rotation only adds handshakes, unless asked for. */
    pc.max_messages_per_conn = (unsigned)o.per_conn;
    pc.keepalive_ms = (unsigned)o.keepalive_s * 1000;
    pc.send_zc_min = (unsigned)o.send_zc_min;
    if (o.stage_timeout_s) {
        unsigned ms = (unsigned)o.stage_timeout_s * 1000;
        pc.timeouts = (struct conn_timeouts){ms, ms, ms, ms, ms, ms, ms};
    }
    pc.backoff_min_ms = 100;
    pc.backoff_max_ms = 2000;
    pool = pool_new(r.loop, &pc, err, sizeof(err));
    jobs = calloc(o.count, sizeof(*jobs));
    results = calloc(o.count * o.nrcpt, sizeof(*results));
    if (!pool || !jobs || !results) {
        fprintf(stderr, "ringmail send: out of memory\n");
        rc = EX_OSERR;
        goto out;
    }
    /* Memory before any connection exists (the loop's buffer pool and the
     * message are already allocated), for the idle-connection figure. */
    rss_before = rss_kib();
    t0 = cli_now_s();
    for (i = 0; i < o.count; i++) {
        struct send_job *j = &jobs[i];
        j->run = &r;
        j->pj.txn.from = o.from;
        j->pj.txn.rcpts = o.rcpts;
        j->pj.txn.nrcpt = o.nrcpt;
        j->pj.txn.results = results + i * o.nrcpt;
        j->pj.prepare = job_prepare;
        j->pj.done = job_done;
        pool_submit(pool, &j->pj);
    }
    while (r.done < o.count && cli_now_s() - t0 < (double)o.timeout_s)
        if (loop_run_once(r.loop, 1000) < 0)
            break;
    elapsed = cli_now_s() - t0;
    if (!o.quiet)
        pool_foreach_conn(pool, print_conn, NULL);
    printf("sent %lu of %lu messages (%lu recipients delivered, %lu temporary, %lu permanent) "
           "in %.3f s: %.0f msg/s\n",
           r.outcome[SMTP_CLIENT_DELIVERED] / o.nrcpt, o.count, r.outcome[SMTP_CLIENT_DELIVERED],
           r.outcome[SMTP_CLIENT_TEMPORARY], r.outcome[SMTP_CLIENT_PERMANENT], elapsed,
           elapsed > 0 ? (double)r.outcome[SMTP_CLIENT_DELIVERED] / (double)o.nrcpt / elapsed
                       : 0.0);
    for (i = 0; i < SMTP_CLIENT_R_COUNT; i++)
        if (r.reasons[i])
            printf("failed: %lu messages by %s\n", r.reasons[i],
                   smtp_client_reason_name((enum smtp_client_reason)i));
    if (r.first_failure[0])
        printf("first failure: %s\n", r.first_failure);
    if (o.hold_s) {
        struct pool_stats ps;
        double th = cli_now_s();
        while (cli_now_s() - th < (double)o.hold_s)
            loop_run_once(r.loop, 200);
        pool_get_stats(pool, &ps);
        printf("held %u idle connections for %lu s: rss %ld KiB -> %ld KiB, %.1f KiB per "
               "connection\n",
               ps.idle, o.hold_s, rss_before, rss_kib(),
               ps.idle ? (double)(rss_kib() - rss_before) / ps.idle : 0.0);
    }
    if (r.done < o.count) {
        fprintf(stderr, "ringmail send: timed out after %lu s with %lu messages unfinished\n",
                o.timeout_s, o.count - r.done);
        rc = EX_TEMPFAIL;
    } else {
        rc = 0;
        for (i = 0; i < SMTP_CLIENT_R_COUNT; i++)
            if (r.reasons[i] && policy_refusal((enum smtp_client_reason)i))
                rc = EX_PROTOCOL;
        if (!rc && r.outcome[SMTP_CLIENT_TEMPORARY])
            rc = EX_TEMPFAIL;
        if (!rc && r.outcome[SMTP_CLIENT_PERMANENT])
            rc = EX_UNAVAILABLE;
    }
    /* QUIT every connection politely before leaving. */
    pool_drain(pool);
    {
        struct pool_stats ps;
        double t1 = cli_now_s();
        /* Until every connection said QUIT and close_notify and its memory
         * came back from the loop. */
        do {
            loop_run_once(r.loop, 100);
            pool_get_stats(pool, &ps);
        } while ((ps.live || loop_slots_busy(r.loop)) && cli_now_s() - t1 < 5);
    }
out:
    if (pool)
        pool_free(pool);
    if (r.loop)
        loop_destroy(r.loop);
    if (tls)
        tls_ctx_free(tls);
    smtp_auth_free(&creds);
    free(jobs);
    free(results);
    free(r.wire_data);
    free(r.wire_bdat);
    if (r.bdat_file.fd >= 0)
        close(r.bdat_file.fd);
    return rc;
}
