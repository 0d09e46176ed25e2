#include "sched/renewal.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "acme/client.h"
#include "common/jsonutil.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "sched/planner.h"
#include "store/store.h"

/* The window of [ca.NAME] max_new_orders (Let's Encrypt counts new orders over 3 hours). */
#define PACE_WINDOW_S (3 * 3600)
/* After a failed renewalInfo fetch, try again in an hour. */
#define ARI_ERROR_RECHECK_S 3600

uint32_t renewal_random(void)
{
    uint32_t r = 0;
    if (getrandom(&r, sizeof(r), 0) != sizeof(r))
        r = (uint32_t)clock_monotonic_ms() * 2654435761u;
    return r;
}

int64_t renewal_plan(void *ctx, const struct store_domain *d, struct store_cert *c)
{
    const struct config *cfg = ctx;
    struct renewal_policy policy;
    if (planner_policy_for(d->renew_before, cfg->renewal.renew_before, &policy) < 0)
        log_warning("%s: renew_before is unusable; using the default policy", d->name);
    c->expiring_at = planner_expiring_at(c->not_before, c->not_after);
    return planner_renewal_time(c->not_before, c->not_after, &policy, renewal_random());
}

static char *detail_text(json_t *o)
{
    char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return t;
}

void renewal_ari_check(struct store *st, struct acme_client *client, int64_t cert_id)
{
    struct store_cert *c = NULL;
    struct store_domain *d = NULL;
    struct acme_error err = {.retry_after = -1};
    int64_t start = 0, end = 0, retry_after = -1, now = clock_now();
    if (store_cert_get(st, cert_id, &c) < 0 || !c->ari_id ||
        store_domain_get_by_id(st, c->domain_id, &d) < 0)
        goto out;
    int rc = acme_client_renewal_info(client, c->ari_id, &start, &end, &retry_after, &err);
    if (rc == -ENOTSUP) {
        /* The CA no longer offers ARI: stop asking; the lifetime rule stands. */
        store_cert_set_ari(st, cert_id, 0, 0, 0);
        goto out;
    }
    if (rc < 0) {
        log_notice("%s: renewal information unavailable: %s", d->name, err.message);
        store_cert_set_ari(st, cert_id, c->ari_window_start, c->ari_window_end,
                           now + (retry_after > 0 ? retry_after : ARI_ERROR_RECHECK_S));
        goto out;
    }
    int64_t next_check = planner_ari_recheck(retry_after, now, renewal_random());
    store_cert_set_ari(st, cert_id, start, end, next_check);

    /* RFC 9773 §4.2: renew at a point in the window. A plan already inside it stays, so
     * repeated checks do not keep moving it; a domain backing off after failures keeps its
     * backoff. */
    bool inside = d->next_attempt_at >= start && d->next_attempt_at <= end;
    if (d->failure_count == 0 && !inside && strcmp(d->status, DOMAIN_STATUS_ACTIVE) == 0) {
        int64_t at = planner_ari_time(start, end, now, renewal_random());
        char s1[JSON_TIME_SIZE], s2[JSON_TIME_SIZE], s3[JSON_TIME_SIZE];
        json_time_format(start, s1);
        json_time_format(end, s2);
        json_time_format(at, s3);
        char *detail = detail_text(json_pack("{s:s, s:s, s:s, s:s}", "window_start", s1,
                                             "window_end", s2, "renew_at", s3, "source", "ari"));
        struct store_event_in ev = {.type = "renewal.rescheduled", .domain = d->name,
                                    .actor = "certd", .detail_json = detail};
        if (store_domain_schedule(st, d->id, at, at, &ev) == 0)
            log_info("%s: CA suggests renewing between %s and %s; renewing at %s", d->name, s1,
                     s2, s3);
        free(detail);
    }
out:
    acme_error_clear(&err);
    store_cert_free(c);
    store_domain_free(d);
}

void renewal_warn_expiring(struct store *st, int64_t now)
{
    int64_t *ids = NULL;
    size_t n = 0;
    if (store_expiring_due(st, now, 100, &ids, &n) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        struct store_cert *c = NULL;
        struct store_domain *d = NULL;
        if (store_cert_get(st, ids[i], &c) == 0 &&
            store_domain_get_by_id(st, c->domain_id, &d) == 0) {
            char na[JSON_TIME_SIZE];
            json_time_format(c->not_after, na);
            char *detail = detail_text(json_pack("{s:s, s:s, s:I}", "serial", c->serial,
                                                 "not_after", na, "seconds_left",
                                                 (json_int_t)(c->not_after - now)));
            struct store_event_in ev = {.type = "certificate.expiring", .domain = d->name,
                                        .actor = "certd", .detail_json = detail};
            if (store_cert_mark_expiring(st, c->id, &ev) == 0)
                log_warning("%s: certificate %s expires at %s and has not been renewed", d->name,
                            c->serial, na);
            free(detail);
        }
        store_cert_free(c);
        store_domain_free(d);
    }
    free(ids);
}

bool renewal_pace(struct store *st, const struct config *cfg, const struct store_domain *d,
                  int64_t now)
{
    const struct config_ca *ca = config_find_ca(cfg, d->ca);
    int64_t count = 0, oldest = 0;
    if (!ca || store_orders_count_since(st, d->ca, now - PACE_WINDOW_S, &count, &oldest) < 0 ||
        count < (int64_t)ca->max_new_orders)
        return true;
    int64_t at = oldest + PACE_WINDOW_S + 1;
    char when[JSON_TIME_SIZE];
    json_time_format(at, when);
    char *detail = detail_text(json_pack("{s:I, s:i, s:s}", "orders_in_window", (json_int_t)count,
                                         "max_new_orders", (int)ca->max_new_orders, "until",
                                         when));
    struct store_event_in ev = {.type = "order.deferred", .domain = d->name, .actor = "certd",
                                .detail_json = detail};
    if (store_domain_schedule(st, d->id, at, 0, &ev) == 0)
        log_notice("%s: CA %s had %lld new orders in 3 h (max_new_orders %u); waiting until %s",
                   d->name, d->ca, (long long)count, ca->max_new_orders, when);
    free(detail);
    return false;
}

void renewal_record_failure(struct store *st, int64_t domain_id, const char *error,
                            int64_t retry_after)
{
    struct store_domain *d = NULL;
    struct store_cert *c = NULL;
    if (store_domain_get_by_id(st, domain_id, &d) < 0)
        return;
    int64_t now = clock_now(), lifetime = 0, not_after = 0;
    bool renewing = store_cert_current(st, domain_id, &c) == 0;
    if (renewing) {
        lifetime = c->not_after - c->not_before;
        not_after = c->not_after;
    }
    int64_t delay = planner_backoff(d->failure_count + 1, retry_after, lifetime, not_after, now,
                                    renewal_random());
    char *detail = detail_text(json_pack("{s:s, s:i, s:I}", "error", error, "failure_count",
                                         d->failure_count + 1, "retry_in_seconds",
                                         (json_int_t)delay));
    struct store_event_in ev = {.type = renewing ? "renewal.failed" : "order.failed",
                                .domain = d->name, .actor = "certd", .detail_json = detail};
    if (store_domain_record_failure(st, domain_id, error, now + delay, &ev) < 0)
        log_error("%s: cannot record the failure", d->name);
    else
        log_notice("%s: next attempt in %lld s", d->name, (long long)delay);
    free(detail);
    store_cert_free(c);
    store_domain_free(d);
}
