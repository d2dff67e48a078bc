/*
 * ringmail enqueue: add mail jobs to the Redis stream, for scripts, demos
 * and load generation. Jobs are the same plain XADDs any producer would
 * send (README: "Jobs"); they go out pipelined, a thousand per round trip.
 *
 * Exit status: 0 every job acknowledged by Redis; 64 usage; 65 an unreadable
 * message file; 69 Redis unreachable or refusing; 78 a configuration error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "cli_util.h"
#include "commands.h"
#include "config.h"

#define MAX_RCPT 100
#define PIPELINE 1000

struct enq_opts {
    const char *config, *stream, *from, *relay, *subject;
    const char *rcpts[MAX_RCPT];
    size_t nrcpt;
    unsigned long count, size, rate;
    char **files;
    int nfiles;
    int quiet;
};

static void usage(FILE *f)
{
    fprintf(f, "Usage: ringmail enqueue -c FILE --from ADDR --to ADDR [--to ADDR ...]\n"
               "                        (MESSAGE_FILE... | --count N [--size BYTES])\n"
               "\n"
               "Add mail jobs to the Redis stream named in the configuration FILE: one job per\n"
               "MESSAGE_FILE (sent as its 'data' field), or N generated jobs ('subject' and a\n"
               "'text' body of about BYTES octets, default 2048) from which ringmail builds\n"
               "the message.\n"
               "\n"
               "  -c, --config FILE   the configuration (its redis section)\n"
               "  --stream KEY        another stream than the configured one\n"
               "  --from ADDR         envelope sender\n"
               "  --to ADDR           recipient; repeatable\n"
               "  --relay NAME        a configured relay (default: the first)\n"
               "  --subject TEXT      subject of generated jobs\n"
               "  --count N --size BYTES  generated jobs\n"
               "  --rate R            offer R jobs per second, evenly (an open-loop load for\n"
               "                      latency measurements; default: as fast as Redis takes them)\n"
               "  --quiet             no progress display\n"
               "\n"
               "Exit status: 0 all enqueued, 65 unreadable message file, 69 Redis unreachable,\n"
               "78 configuration error, 64 usage error.\n");
}

static int parse(int argc, char **argv, struct enq_opts *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"stream", required_argument, NULL, 's'},
        {"from", required_argument, NULL, 'f'},   {"to", required_argument, NULL, 't'},
        {"relay", required_argument, NULL, 'r'},  {"subject", required_argument, NULL, 'S'},
        {"count", required_argument, NULL, 'n'},  {"size", required_argument, NULL, 'z'},
        {"rate", required_argument, NULL, 'R'},   {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    int ch;
    memset(o, 0, sizeof(*o));
    o->size = 2048;
    o->subject = "ringmail test message";
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        char *end;
        switch (ch) {
        case 'c':
            o->config = optarg;
            break;
        case 's':
            o->stream = optarg;
            break;
        case 'f':
            o->from = optarg;
            break;
        case 't':
            if (o->nrcpt == MAX_RCPT) {
                fprintf(stderr, "ringmail enqueue: at most %d --to\n", MAX_RCPT);
                return -1;
            }
            o->rcpts[o->nrcpt++] = optarg;
            break;
        case 'r':
            o->relay = optarg;
            break;
        case 'S':
            o->subject = optarg;
            break;
        case 'n':
        case 'R':
        case 'z': {
            unsigned long v = strtoul(optarg, &end, 10);
            if (*end || !*optarg || v == 0 || v > 1000000000ul) {
                fprintf(stderr, "ringmail enqueue: bad number '%s'\n", optarg);
                return -1;
            }
            if (ch == 'n')
                o->count = v;
            else if (ch == 'R')
                o->rate = v;
            else
                o->size = v;
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
    o->files = argv + optind;
    o->nfiles = argc - optind;
    if (!o->config || !o->from || !o->nrcpt || (!o->count == !o->nfiles)) {
        fprintf(stderr, "ringmail enqueue: -c, --from, --to and either message files or "
                        "--count are required\n");
        return -1;
    }
    return 0;
}

/*
 * AUTH as `ringmail run` does: the password from the URL or from
 * redis.password_file (the shipped Kubernetes ConfigMap uses the file), as
 * the ACL user when the URL names one. The command goes out as one
 * formatted buffer of ours, wiped once hiredis has copied it.
 */
static int auth(redisContext *c, const struct config_redis *r, int *ex)
{
    char pw[CONFIG_REDIS_PASSWORD_MAX + 1], err[CONFIG_ERR_MAX];
    const char *argv[3];
    char *cmd = NULL;
    long long len;
    redisReply *rep = NULL;
    int argc = 0, rc = -1;

    if (!r->password && !r->password_file)
        return 0;
    if (r->password_file) {
        if (config_secret_load(r->password_file, CONFIG_REDIS_PASSWORD_MAX, pw, err, sizeof(err)) !=
            0) {
            fprintf(stderr, "ringmail enqueue: redis.password_file: %s\n", err);
            *ex = EX_CONFIG;
            return -1;
        }
    } else {
        snprintf(pw, sizeof(pw), "%s", r->password);
    }
    argv[argc++] = "AUTH";
    if (r->user)
        argv[argc++] = r->user;
    argv[argc++] = pw;
    len = redisFormatCommandArgv(&cmd, argc, argv, NULL);
    explicit_bzero(pw, sizeof(pw));
    if (len < 0 || redisAppendFormattedCommand(c, cmd, (size_t)len) != REDIS_OK) {
        fprintf(stderr, "ringmail enqueue: Redis AUTH: out of memory\n");
    } else if (redisGetReply(c, (void **)&rep) != REDIS_OK || !rep) {
        fprintf(stderr, "ringmail enqueue: Redis AUTH failed: %s\n", c->errstr);
    } else if (rep->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "ringmail enqueue: Redis AUTH failed: %s\n", rep->str);
    } else {
        rc = 0;
    }
    if (cmd) {
        explicit_bzero(cmd, len > 0 ? (size_t)len : 0);
        redisFreeCommand(cmd);
    }
    if (rep)
        freeReplyObject(rep);
    return rc;
}

static redisContext *connect_redis(const struct config_redis *r, int *ex)
{
    struct timeval tv = {5, 0};
    redisContext *c = r->unix_path ? redisConnectUnixWithTimeout(r->unix_path, tv)
                                   : redisConnectWithTimeout(r->host, (int)r->port, tv);
    redisReply *rep = NULL;
    *ex = EX_UNAVAILABLE;
    if (!c || c->err) {
        fprintf(stderr, "ringmail enqueue: cannot connect to Redis: %s\n",
                c ? c->errstr : "out of memory");
        goto fail;
    }
    redisSetTimeout(c, tv);
    if (auth(c, r, ex) != 0)
        goto fail;
    if (r->db) {
        rep = redisCommand(c, "SELECT %u", r->db);
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "ringmail enqueue: Redis SELECT %u failed\n", r->db);
            goto fail;
        }
        freeReplyObject(rep);
    }
    *ex = 0;
    return c;
fail:
    if (rep)
        freeReplyObject(rep);
    if (c)
        redisFree(c);
    return NULL;
}

static void progress(unsigned long done, unsigned long total, double t0)
{
    int width = 40, fill = total ? (int)((double)done / (double)total * width) : width;
    double dt = cli_now_s() - t0;
    fprintf(stderr, "\r[%.*s%*s] %3d%% %lu/%lu %8.0f jobs/s", fill,
            "########################################", width - fill, "",
            total ? (int)(done * 100 / total) : 100, done, total, dt > 0 ? (double)done / dt : 0);
}

int cmd_enqueue(int argc, char **argv)
{
    struct enq_opts o;
    struct config *cfg;
    redisContext *c;
    char err[CONFIG_ERR_MAX];
    /* XADD key * + from, relay, data or subject and text: 11; two per rcpt. */
    const char *argvv[16 + 2 * MAX_RCPT];
    size_t argl[16 + 2 * MAX_RCPT];
    char *text = NULL, **bodies = NULL;
    size_t *blen = NULL;
    unsigned long total, sent = 0, acked = 0, i;
    int tty = isatty(2), rc = 0;
    double t0;

    if (parse(argc, argv, &o) != 0)
        return EX_USAGE;
    cfg = config_load(o.config, err, sizeof(err));
    if (!cfg) {
        fprintf(stderr, "ringmail enqueue: %s\n", err);
        return EX_CONFIG;
    }
    if (o.relay && !config_relay_find(cfg, o.relay)) {
        fprintf(stderr, "ringmail enqueue: no relay named '%s' in %s\n", o.relay, o.config);
        config_free(cfg);
        return EX_USAGE;
    }
    total = o.count ? o.count : (unsigned long)o.nfiles;
    if (o.nfiles) {
        bodies = calloc((size_t)o.nfiles, sizeof(*bodies));
        blen = calloc((size_t)o.nfiles, sizeof(*blen));
        for (i = 0; bodies && blen && i < (unsigned long)o.nfiles; i++) {
            bodies[i] = cli_read_file(o.files[i], &blen[i], (size_t)1 << 30);
            if (!bodies[i]) {
                fprintf(stderr, "ringmail enqueue: cannot read %s: %s\n", o.files[i],
                        strerror(errno));
                rc = EX_DATAERR;
                goto out;
            }
        }
    } else {
        /* Lines of 64 octets: a plain, valid text body of about size octets. */
        size_t k;
        text = malloc(o.size + 1);
        for (k = 0; text && k < o.size; k++)
            text[k] = (k % 64 == 63) ? '\n' : "abcdefghijklmnopqrstuvwxyz0123456789 "[k % 37];
        if (text)
            text[o.size] = 0;
    }
    c = connect_redis(&cfg->redis, &rc);
    if (!c)
        goto out;
    t0 = cli_now_s();
    while (acked < total) {
        unsigned long batch_end = sent + PIPELINE < total ? sent + PIPELINE : total;
        if (o.rate) {
            /* Open loop: what is due by now, in one write, a millisecond's
             * worth at a time (a write and its replies per job would cost
             * more than the jobs); sleep until that much is due. */
            unsigned long tick = o.rate / 1000 ? o.rate / 1000 : 1;
            double el = cli_now_s() - t0;
            unsigned long due = (unsigned long)(el * (double)o.rate) + 1;
            if (due > total)
                due = total;
            if (due < sent + tick && due < total) {
                double wait = (double)(sent + tick) / (double)o.rate - el;
                struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
                if (wait > 0)
                    nanosleep(&ts, NULL);
                continue;
            }
            if (due < batch_end)
                batch_end = due;
        }
        for (; sent < batch_end; sent++) {
            int n = 0;
            size_t r;
            argvv[n] = "XADD";
            argl[n++] = 4;
            argvv[n] = o.stream ? o.stream : cfg->redis.stream;
            argl[n] = strlen(argvv[n]);
            n++;
            argvv[n] = "*";
            argl[n++] = 1;
            argvv[n] = "from";
            argl[n++] = 4;
            argvv[n] = o.from;
            argl[n] = strlen(o.from);
            n++;
            for (r = 0; r < o.nrcpt; r++) {
                argvv[n] = "to";
                argl[n++] = 2;
                argvv[n] = o.rcpts[r];
                argl[n] = strlen(o.rcpts[r]);
                n++;
            }
            if (o.relay) {
                argvv[n] = "relay";
                argl[n++] = 5;
                argvv[n] = o.relay;
                argl[n] = strlen(o.relay);
                n++;
            }
            if (bodies) {
                argvv[n] = "data";
                argl[n++] = 4;
                argvv[n] = bodies[sent];
                argl[n++] = blen[sent];
            } else {
                argvv[n] = "subject";
                argl[n++] = 7;
                argvv[n] = o.subject;
                argl[n] = strlen(o.subject);
                n++;
                argvv[n] = "text";
                argl[n++] = 4;
                argvv[n] = text;
                argl[n++] = o.size;
            }
            redisAppendCommandArgv(c, n, argvv, argl);
        }
        for (; acked < sent; acked++) {
            redisReply *rep = NULL;
            if (redisGetReply(c, (void **)&rep) != REDIS_OK || !rep ||
                rep->type == REDIS_REPLY_ERROR) {
                fprintf(stderr, "\nringmail enqueue: XADD failed after %lu jobs: %s\n", acked,
                        rep ? rep->str : c->errstr);
                if (rep)
                    freeReplyObject(rep);
                redisFree(c);
                rc = EX_UNAVAILABLE;
                goto out;
            }
            freeReplyObject(rep);
        }
        if (tty && !o.quiet)
            progress(acked, total, t0);
    }
    if (tty && !o.quiet)
        fputc('\n', stderr);
    printf("enqueued %lu jobs to %s in %.2f s (%.0f jobs/s)\n", acked,
           o.stream ? o.stream : cfg->redis.stream, cli_now_s() - t0,
           (double)acked / (cli_now_s() - t0 > 0 ? cli_now_s() - t0 : 1));
    redisFree(c);
out:
    for (i = 0; bodies && i < (unsigned long)o.nfiles; i++)
        free(bodies[i]);
    free(bodies);
    free(blen);
    free(text);
    config_free(cfg);
    return rc;
}
