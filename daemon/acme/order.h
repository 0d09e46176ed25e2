/*
 * One ACME order from newOrder to a stored certificate (RFC 8555 §7.4), persisted at every step
 * so that a daemon killed at any point resumes the same order after a restart.
 *
 * Steps, as stored in orders.step:
 *   (NULL)      row created, the CA knows nothing yet
 *   "ordered"   newOrder answered; authorizations to satisfy
 *   "responded" every pending challenge published and answered; waiting for the order to be ready
 *   "finalized" CSR sent; waiting for the certificate
 *   then the certificate is verified and stored and the order finished.
 * Whatever the step, resuming starts by asking the CA for the order's state, so a step the
 * daemon did not get to record is simply done again or skipped.
 */
#ifndef CERTD_ACME_ORDER_H
#define CERTD_ACME_ORDER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct acme_client;
struct config;
struct responders;
struct store;
struct store_cert;
struct store_domain;

/*
 * Plans a new certificate C of domain D (C's not_before/not_after set): returns its renewal
 * time and sets C->expiring_at. The scheduler's planner, passed in so this module does not
 * depend on it.
 */
typedef int64_t (*acme_plan_fn)(void *ctx, const struct store_domain *d, struct store_cert *c);

/* Sleeps MS milliseconds unless the daemon is stopping; returns false when it is. */
typedef bool (*acme_sleep_fn)(void *ctx, unsigned ms);

struct acme_order_env {
    struct store *store;
    struct responders *responders;
    const struct config *config;
    struct acme_client *client;
    acme_sleep_fn sleep;
    void *sleep_ctx;
    const char *actor;             /* for events: "certd" or the API caller who asked */
    acme_plan_fn plan;
    void *plan_ctx;
};

enum acme_order_outcome {
    ORDER_ISSUED,       /* a certificate is stored */
    ORDER_FAILED,       /* gave up on this order; the domain needs another attempt later */
    ORDER_INTERRUPTED,  /* the daemon is stopping; the order resumes at the next start */
    ORDER_CANCELLED,    /* the domain was removed: nothing to record */
};

struct acme_order_result {
    enum acme_order_outcome outcome;
    char error[1024];         /* one line for the domain's last_error (ORDER_FAILED) */
    int64_t retry_after;      /* the CA asked us to wait this long (seconds), -1 if not */
    int64_t cert_id;          /* ORDER_ISSUED */
    bool renewed;             /* ORDER_ISSUED: the domain had a certificate before */
    bool permanent;           /* the failure will repeat until the configuration changes */
};

/*
 * Runs an order for DOMAIN_ID to its end: resumes ORDER_ID when not 0 (an unfinished order found
 * at start), or starts a new one with the domain's current key and names.
 */
void acme_order_run(const struct acme_order_env *env, int64_t domain_id, int64_t order_id,
                    struct acme_order_result *res);

/*
 * Withdraws every challenge response recorded in the store (dns-01 records through the hook's
 * `del`, http-01 and tls-alpn-01 entries) for ORDER_ID, or for all orders when 0 (at start,
 * after a crash). Errors are logged; the records are forgotten either way except for dns-01
 * records whose `del` failed, which are retried at the next call.
 */
void acme_order_cleanup_challenges(const struct acme_order_env *env, int64_t order_id);

#endif
