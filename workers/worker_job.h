/* worker_job: from a stream entry to its outcome (see worker.c). */
#ifndef RINGMAIL_WORKER_JOB_H
#define RINGMAIL_WORKER_JOB_H

#include <stddef.h>

#include "queue.h"

void worker_on_entries(void *user, const struct queue_entry *e, size_t n, int from_pending);
void worker_on_queue_state(void *user, enum queue_state st, const char *detail);
/* From the worker's loop, every iteration: the outcome-failure metrics,
 * and no new work while redis.outcome_stuck_max jobs are stuck in hand
 * (w->stuck_paused; worker_refill() honours it). */
struct worker;
void worker_job_tick(struct worker *w);

#endif
