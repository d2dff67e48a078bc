/*
 * ringmail run: the main job. Loads the configuration, then the master
 * forks the workers, each pulling jobs from Redis and delivering them over
 * the relays' persistent connections (see master.c and worker.c).
 *
 * Exit status: 0 after a clean shutdown (SIGTERM/SIGINT); 64 usage; 78 a
 * configuration error (the message names the file, line and key).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "commands.h"
#include "config.h"
#include "log.h"
#include "master.h"
#include "worker.h"

static void usage(FILE *f)
{
    fprintf(f, "Usage: ringmail run -c FILE [--workers N] [--instance NAME]\n"
               "\n"
               "Run the engine: a master process and N workers that consume mail jobs from\n"
               "the Redis stream of FILE and deliver them over the configured relays.\n"
               "\n"
               "  -c, --config FILE   the configuration (see deploy/ringmail.yaml)\n"
               "  --workers N         override 'workers' from the configuration\n"
               "  --instance NAME     consumer-name prefix (default: ehlo_name); give each\n"
               "                      engine on one host its own\n"
               "  -h, --help          show this help\n"
               "\n"
               "Signals: SIGTERM/SIGINT drain and exit 0; SIGHUP reloads FILE, replacing\n"
               "workers one at a time.\n");
}

int cmd_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"workers", required_argument, NULL, 'w'},
        {"instance", required_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL, *instance = NULL;
    long workers = -1;
    char err[CONFIG_ERR_MAX];
    struct config *cfg;
    size_t i;
    int ch;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            path = optarg;
            break;
        case 'w': {
            char *end;
            workers = strtol(optarg, &end, 10);
            if (*end || workers < 1 || workers > 256) {
                fprintf(stderr, "ringmail run: --workers must be 1..256, not '%s'\n", optarg);
                return EX_USAGE;
            }
            break;
        }
        case 'i':
            instance = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EX_USAGE;
        }
    }
    if (!path || optind != argc) {
        usage(stderr);
        return EX_USAGE;
    }
    cfg = config_load(path, err, sizeof(err));
    if (!cfg) {
        fprintf(stderr, "ringmail run: %s\n", err);
        return EX_CONFIG;
    }
    if (workers > 0)
        cfg->workers = (unsigned)workers;
    log_set_level(cfg->log_level);
    for (i = 0; i < cfg->nwarnings; i++)
        log_always(LOG_WARN, "config_warning", "detail", cfg->warnings[i], NULL);
    if (instance)
        worker_set_consumer_prefix(instance);
    return master_run(path, cfg, worker_main);
}
