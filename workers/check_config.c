/*
 * ringmail check-config: validate a configuration file without running, so
 * that a deploy can refuse a broken file before a restart would.
 *
 * Beyond what loading checks (types, ranges, required keys, readable
 * files), each relay's TLS context is built as the engine would build it:
 * a CA file that is not PEM, a client key that does not match its
 * certificate or an unknown TLS 1.3 suite fails here, not at the first
 * connection.
 *
 * Exit status (sysexits): 0 valid; 78 (EX_CONFIG) invalid or unreadable;
 * 64 usage error.
 */
#include <getopt.h>
#include <stdio.h>
#include <sysexits.h>

#include "commands.h"
#include "config.h"
#include "tls.h"

static void usage(FILE *f)
{
    fprintf(f, "Usage: ringmail check-config [--dump] FILE\n"
               "\n"
               "Validate the configuration FILE without running: every key, type and range,\n"
               "the readability of the files it names, and each relay's TLS context (CA file,\n"
               "client certificate and key, pins, TLS 1.3 suites). Errors name the line and\n"
               "the key; warnings (certificate verification off, ...) go to stderr too.\n"
               "\n"
               "Options:\n"
               "  --dump       print the effective configuration, every default filled in\n"
               "               (secrets redacted: password files are never read)\n"
               "  -h, --help   show this help\n"
               "\n"
               "Exit status: 0 valid, 78 invalid or unreadable, 64 usage error.\n"
               "See deploy/ringmail.yaml for every key, its default and why.\n");
}

/* Build every relay's TLS context and drop it again. */
static int check_tls(const struct config *c)
{
    char err[TLS_ERRBUF_MAX];
    size_t i;

    for (i = 0; i < c->nrelays; i++) {
        const struct config_relay *r = &c->relays[i];
        struct tls_policy p;
        struct tls_ctx *ctx;

        config_relay_tls_policy(r, &p);
        ctx = tls_ctx_new(&p, err, sizeof(err));
        if (!ctx) {
            fprintf(stderr, "%s:%u: relays[%zu] (%s): %s\n", c->source, r->line, i, r->name, err);
            return -1;
        }
        tls_ctx_free(ctx);
    }
    return 0;
}

int cmd_check_config(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"dump", no_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char err[CONFIG_ERR_MAX];
    struct config *c;
    int ch, dump = 0, rc = EX_CONFIG;
    unsigned workers;
    size_t i;

    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'd':
            dump = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "Try 'ringmail check-config --help'.\n");
            return EX_USAGE;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return EX_USAGE;
    }
    c = config_load(argv[optind], err, sizeof(err));
    if (!c) {
        fprintf(stderr, "%s\n", err);
        return EX_CONFIG;
    }
    for (i = 0; i < c->nwarnings; i++)
        fprintf(stderr, "warning: %s\n", c->warnings[i]);
    if (check_tls(c) != 0)
        goto out;
    if (dump) {
        printf("# %s: the effective configuration (secrets redacted)\n", c->source);
        if (config_dump(c, stdout) != 0 || fflush(stdout) != 0) {
            fprintf(stderr, "ringmail check-config: cannot write the configuration\n");
            rc = EX_IOERR;
            goto out;
        }
    } else {
        workers = config_workers_effective(c);
        printf("%s: ok (%zu relay%s, %u worker%s)\n", c->source, c->nrelays,
               c->nrelays == 1 ? "" : "s", workers, workers == 1 ? "" : "s");
    }
    rc = 0;
out:
    config_free(c);
    return rc;
}
