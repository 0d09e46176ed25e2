/*
 * The scheduler: decides when each domain's next order starts and runs orders on a bounded pool
 * of worker threads ([acme] max_concurrent_orders, fixed at start). The plan lives in the store
 * (domains.next_attempt_at, indexed); the scheduler sleeps until the earliest planned time, or
 * until poked, so a wake-up costs the same whatever the number of domains.
 */
#ifndef CERTD_SCHED_SCHEDULER_H
#define CERTD_SCHED_SCHEDULER_H

#include <stdbool.h>
#include <stdint.h>

struct config_holder;
struct responders;
struct store;
struct scheduler;
struct acme_client;

/*
 * Starts the scheduler thread and the workers. First withdraws challenge responses a crash left
 * behind and queues every unfinished order to be resumed.
 */
int scheduler_start(struct store *store, struct config_holder *config,
                    struct responders *responders, struct scheduler **out);

/* Something changed the plan (a domain added, a renewal forced): look again now. */
void scheduler_poke(struct scheduler *s);

/*
 * Stops dispatching and interrupts waiting orders; in-flight HTTP exchanges finish (bounded by
 * their timeouts). Orders not finished resume at the next start. NULL-safe.
 */
void scheduler_stop(struct scheduler *s);

/*
 * The ACME client for the CA named CA in the current configuration, shared with the workers
 * (for account management and revocation through the API). Borrowed: valid until
 * scheduler_stop. NULL when the CA is not configured.
 */
struct acme_client *scheduler_acme_client(struct scheduler *s, const char *ca);

/* Sleeps MS milliseconds unless the scheduler is stopping (false then). */
bool scheduler_sleep(void *s, unsigned ms);

/* Orders running now, the most ever running at once since start, and the worker count (the
 * bound: [acme] max_concurrent_orders as it was at start). */
struct scheduler_stats {
    unsigned orders_running;
    unsigned orders_running_peak;
    unsigned workers;
    unsigned queued;
};
void scheduler_stats(struct scheduler *s, struct scheduler_stats *out);

/* The responders the scheduler publishes challenges with. */
struct responders *scheduler_responders(struct scheduler *s);

#endif
