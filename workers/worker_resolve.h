/*
 * worker_resolve: a relay's host name resolved without stalling the
 * worker's loop, and again with backoff while it does not resolve (see
 * worker_resolve.c).
 */
#ifndef RINGMAIL_WORKER_RESOLVE_H
#define RINGMAIL_WORKER_RESOLVE_H

#include <sys/socket.h>

struct loop;
struct metrics_worker;
struct pool;
struct worker_resolve;

/* A numeric address (no lookup, no I/O): 0 with it in *ss, or -1. */
int worker_resolve_numeric(const char *host, unsigned port, struct sockaddr_storage *ss,
                           socklen_t *len);
/* Starts resolving host for relay index relay of this worker; the result
 * goes to pool (pool_set_addr, or pool_set_unresolved and a retry) and to
 * the readiness flag in mw (may be NULL). host must outlive it. NULL on no
 * memory. */
struct worker_resolve *worker_resolve_start(struct loop *loop, struct pool *pool,
                                            struct metrics_worker *mw, unsigned relay,
                                            const char *name, const char *host, unsigned port);
/* Before the pool goes. NULL is fine. */
void worker_resolve_free(struct worker_resolve *r);

#endif
