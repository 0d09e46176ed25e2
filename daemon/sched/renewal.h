/* The renewal decisions the scheduler applies: when a new certificate renews, what an ARI
 * answer changes, when to warn about expiry, and whether a CA's new-order budget allows an
 * order now. Internal to daemon/sched/, except renewal_plan, which the API also applies when a
 * PATCH of renew_before moves a domain's plan. */
#ifndef CERTD_SCHED_RENEWAL_H
#define CERTD_SCHED_RENEWAL_H

#include <stdbool.h>
#include <stdint.h>

struct acme_client;
struct config;
struct store;
struct store_cert;
struct store_domain;

/* A random 32-bit number for the planner's draws. */
uint32_t renewal_random(void);

/* acme_plan_fn for the order engine: renewal time from the domain's or the global
 * renew_before, and C->expiring_at. CTX is the live struct config. */
int64_t renewal_plan(void *ctx, const struct store_domain *d, struct store_cert *c);

/*
 * Fetches renewal information for certificate CERT_ID and applies it: the domain's next order
 * moves into the CA's suggested window (unless it already lies there or the domain is in a
 * failure backoff), and the next check is planned from the CA's Retry-After.
 */
void renewal_ari_check(struct store *st, struct acme_client *client, int64_t cert_id);

/* Warns about every certificate that became close to expiry: a log line at warning level and a
 * certificate.expiring event, once per certificate. */
void renewal_warn_expiring(struct store *st, int64_t now);

/*
 * Pacing of new orders per CA ([ca.NAME] max_new_orders per 3 hours): true when DOMAIN may
 * start a new order now; otherwise its next attempt is moved to when the window has room and
 * false is returned.
 */
bool renewal_pace(struct store *st, const struct config *cfg, const struct store_domain *d,
                  int64_t now);

/* The failure bookkeeping after a failed order: backoff from the planner (scaled to the
 * certificate's lifetime), an order.failed or renewal.failed event. */
void renewal_record_failure(struct store *st, int64_t domain_id, const char *error,
                            int64_t retry_after);

#endif
