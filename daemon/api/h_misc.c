/* /v1/health. (/v1/events is in h_events.c.) */
#include "api/internal.h"

#include <string.h>
#include <time.h>

#include "common/jsonutil.h"
#include "core/clock.h"
#include "sched/scheduler.h"
#include "store/store.h"

/* The active certificates of managed domains that are close to expiry (sched/planner.h's
 * rule, applied when each was stored), soonest first: what an operator must look at. */
static json_t *expiring_json(struct store *st)
{
    struct store_cert **list = NULL;
    size_t count = 0;
    if (store_cert_list_expiring(st, clock_now(), &list, &count) < 0)
        return NULL;
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < count; i++) {
        json_t *e = json_pack("{s:o, s:o, s:s?}", "name", json_string_lossy(list[i]->domain),
                              "not_after", json_time_or_null(list[i]->not_after), "serial",
                              list[i]->serial);
        if (!e || json_array_append_new(arr, e) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    store_cert_list_free(list, count);
    return arr;
}

enum MHD_Result h_health(struct api_request *req, const char *param)
{
    enum MHD_Result rc = MHD_NO;
    if (!api_query_check(req, NULL, &rc))
        return rc;
    int64_t uptime = clock_now() - req->ctx->started_at;
    /* Daemon-wide counts and the expiring list name or size other domains: a scoped token
     * learns only that the daemon is up. */
    if (req->caller.scope_count)
        return api_respond_json(req, MHD_HTTP_OK,
                                json_pack("{s:s, s:s, s:I}", "status", "ok", "version",
                                          CERTD_VERSION, "uptime_seconds",
                                          (json_int_t)(uptime > 0 ? uptime : 0)));
    struct store_stats stats;
    json_t *expiring = NULL;
    if (store_stats(req->ctx->store, &stats) < 0 || !(expiring = expiring_json(req->ctx->store)))
        return api_respond_problem(req, PROBLEM_INTERNAL, "cannot read the database");
    struct scheduler_stats ss = {0};
    if (req->ctx->scheduler)
        scheduler_stats(req->ctx->scheduler, &ss);
    json_t *orders = json_pack("{s:i, s:i, s:i, s:i}", "running", (int)ss.orders_running,
                               "running_peak", (int)ss.orders_running_peak, "max_concurrent",
                               (int)ss.workers, "queued", (int)ss.queued);
    return api_respond_json(
        req, MHD_HTTP_OK,
        json_pack("{s:s, s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o}", "status", "ok",
                  "version",
                  CERTD_VERSION, "schema_version", store_schema_version(req->ctx->store),
                  "uptime_seconds", (json_int_t)(uptime > 0 ? uptime : 0), "domains",
                  (json_int_t)stats.domains, "domains_pending", (json_int_t)stats.domains_pending,
                  "domains_failed", (json_int_t)stats.domains_failed, "certificates_active",
                  (json_int_t)stats.certificates_active, "next_renewal_at",
                  json_time_or_null(stats.next_renewal_at), "expiring", expiring, "orders",
                  orders));
}
