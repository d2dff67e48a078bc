/*
 * master: the supervisor of `ringmail run`. It forks the workers, restarts
 * a crashed one with a throttle, drains them all on SIGTERM/SIGINT and
 * replaces them one at a time on SIGHUP (a new configuration, validated
 * first; a bad one is logged and the old one kept).
 */
#ifndef RINGMAIL_MASTER_H
#define RINGMAIL_MASTER_H

struct config;

/* What a worker process runs; returns its exit status. */
typedef int master_worker_fn(const struct config *cfg, unsigned index);

/*
 * Run the master until SIGTERM/SIGINT; config_path is re-read on SIGHUP
 * (cfg is its first load, owned by the master from now on). Returns the
 * process exit status: 0 after a clean drain.
 */
int master_run(const char *config_path, struct config *cfg, master_worker_fn *worker);

#endif
