/*
 * GET /v1/events: the audit log as a change feed, with long-polling, and the retention pruner.
 *
 * A long-poll (wait=SECONDS) that finds nothing new suspends its connection
 * (MHD_suspend_connection) and is listed here as a waiter: no thread is held per waiter. One
 * feed thread resumes waiters when the events bus says the log grew past their cursor, when
 * their deadline passes (suspended connections have no MHD timeout) and at shutdown. MHD then
 * calls the access handler again for the same request, which looks at the log again and answers,
 * or suspends once more when the new events were all outside the caller's scope. The same thread
 * prunes events older than [daemon] events_retention at start and then hourly.
 *
 * Locking: feed->lock is taken last of all (the bus callback runs under the store's and the
 * bus's locks), so nothing holding it calls the store or an events_bus_* function.
 */
#include "api/internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/events_bus.h"
#include "common/jsonutil.h"
#include "core/clock.h"
#include "core/confhold.h"
#include "core/config.h"
#include "core/log.h"
#include "store/store.h"

#define EVENTS_DEFAULT_LIMIT 100
#define EVENTS_MAX_LIMIT 1000
/* How long a shutdown gives the requests it resumed to send their answers before MHD closes
 * their connections. */
#define FEED_DRAIN_MS 1000
/* Longest long-poll a client may ask for, in seconds. */
#define FEED_MAX_WAIT_S 300
/* Waiting requests at once. Each holds one of the server's connections (1024), so this stays
 * well below that: long-polls must never take every connection from ordinary calls. Past it a
 * long-poll answers at once with what there is. */
#define FEED_MAX_WAITERS 768
/* Events looked at for one answer. A scoped caller may have nothing visible in a long stretch of
 * the log; it then gets an empty page with last_id moved on, instead of holding a thread. */
#define FEED_SCAN_MAX 10000
#define FEED_PRUNE_INTERVAL_MS (3600 * 1000LL)

/* A long-poll in progress: listed while its connection is suspended, owned by the request. */
struct api_feed_wait {
    struct api_feed_wait *prev, *next;
    struct api_feed *feed;
    struct MHD_Connection *conn;
    int64_t after;       /* cursor: every event up to here was looked at */
    int64_t deadline_ms; /* clock_monotonic_ms */
    bool listed;
    bool draining; /* resumed by the shutdown: counted in feed->draining until freed */
};

struct api_feed {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    struct api_context *ctx;
    struct events_bus *bus;
    bool subscribed;
    int64_t bus_last; /* the highest id the bus has announced */
    struct api_feed_wait *waiters;
    size_t waiter_count;
    int64_t next_wake_ms; /* when the thread wakes up next on its own */
    size_t draining;      /* requests resumed by the shutdown and not yet completed */
    bool prune;           /* this feed's thread runs the retention pruner */
    bool stopping;
    bool thread_started;
    pthread_t thread;
};

/* ---- the feed: waiters, their thread and the pruner ---- */

static void waiter_unlink(struct api_feed *feed, struct api_feed_wait *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        feed->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->listed = false;
    feed->waiter_count--;
}

/* Unlists W and lets MHD process its connection again; the caller holds feed->lock. Taking the
 * waiter off the list under the same lock that listed it (while the connection was suspended)
 * is what guarantees every suspend is followed by exactly one resume. */
static void waiter_resume(struct api_feed *feed, struct api_feed_wait *w)
{
    waiter_unlink(feed, w);
    MHD_resume_connection(w->conn);
}

/* The bus callback: runs on a committing thread under the store's and the bus's locks, so it
 * only records the id and wakes the feed thread. */
static void feed_on_events(void *cls, int64_t last_id)
{
    struct api_feed *feed = cls;
    pthread_mutex_lock(&feed->lock);
    if (last_id > feed->bus_last) {
        feed->bus_last = last_id;
        pthread_cond_broadcast(&feed->cond);
    }
    pthread_mutex_unlock(&feed->lock);
}

static void prune(struct api_feed *feed)
{
    const struct config *cfg = config_holder_get(feed->ctx->config);
    int64_t retention = cfg->daemon.events_retention;
    config_holder_put(feed->ctx->config, cfg);
    size_t deleted = 0;
    int rc = store_events_prune(feed->ctx->store, clock_now() - retention, &deleted);
    if (rc < 0)
        log_warning("cannot prune events older than %llds: %s", (long long)retention,
                    strerror(-rc));
    if (deleted)
        log_info("pruned %zu events older than %llds ([daemon] events_retention)", deleted,
                 (long long)retention);
}

static void timespec_at_ms(struct timespec *ts, int64_t ms)
{
    ts->tv_sec = (time_t)(ms / 1000);
    ts->tv_nsec = (long)(ms % 1000) * 1000000L;
}

static void *feed_thread(void *cls)
{
    pthread_setname_np(pthread_self(), "certd-feed"); /* for top -H, ps -L and the benchmarks */
    struct api_feed *feed = cls;
    /* The first prune runs at once; a feed that does not prune never gets there. */
    int64_t next_prune = feed->prune ? 0 : INT64_MAX;

    pthread_mutex_lock(&feed->lock);
    while (!feed->stopping) {
        int64_t now = clock_monotonic_ms();
        if (now >= next_prune) {
            pthread_mutex_unlock(&feed->lock);
            prune(feed);
            pthread_mutex_lock(&feed->lock);
            next_prune = clock_monotonic_ms() + FEED_PRUNE_INTERVAL_MS;
            continue;
        }
        /* At least hourly even without a pruner, which keeps the deadline arithmetic far from
         * overflow; an early wake costs one pass over the waiters. */
        int64_t next =
            next_prune < now + FEED_PRUNE_INTERVAL_MS ? next_prune : now + FEED_PRUNE_INTERVAL_MS;
        struct api_feed_wait *w = feed->waiters;
        while (w) {
            struct api_feed_wait *following = w->next;
            if (w->after < feed->bus_last || w->deadline_ms <= now)
                waiter_resume(feed, w);
            else if (w->deadline_ms < next)
                next = w->deadline_ms;
            w = following;
        }
        feed->next_wake_ms = next;
        struct timespec ts;
        timespec_at_ms(&ts, next);
        pthread_cond_timedwait(&feed->cond, &feed->lock, &ts);
    }
    pthread_mutex_unlock(&feed->lock);
    return NULL;
}

int api_feed_start(struct api_context *ctx, bool prune, struct api_feed **out)
{
    struct api_feed *feed = calloc(1, sizeof(*feed));
    if (!feed)
        return -ENOMEM;
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0) {
        free(feed);
        return -ENOMEM;
    }
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&feed->cond, &attr);
    pthread_condattr_destroy(&attr);
    if (rc != 0) {
        free(feed);
        return -ENOMEM;
    }
    pthread_mutex_init(&feed->lock, NULL);
    feed->ctx = ctx;
    feed->prune = prune;
    feed->bus = ctx->events;
    if (feed->bus) {
        rc = events_bus_subscribe(feed->bus, feed_on_events, feed);
        if (rc < 0)
            goto fail;
        feed->subscribed = true;
        /* After subscribing, so no commit falls between reading and listening. */
        int64_t last = events_bus_last_id(feed->bus);
        pthread_mutex_lock(&feed->lock);
        if (last > feed->bus_last)
            feed->bus_last = last;
        pthread_mutex_unlock(&feed->lock);
    } else {
        log_warning("no events bus: GET /v1/events answers at once, without waiting");
    }
    rc = -pthread_create(&feed->thread, NULL, feed_thread, feed);
    if (rc < 0)
        goto fail;
    feed->thread_started = true;
    *out = feed;
    return 0;
fail:
    api_feed_free(feed);
    return rc;
}

void api_feed_shutdown(struct api_feed *feed)
{
    if (!feed)
        return;
    pthread_mutex_lock(&feed->lock);
    feed->stopping = true;
    while (feed->waiters) {
        struct api_feed_wait *w = feed->waiters;
        w->draining = true;
        feed->draining++;
        waiter_resume(feed, w);
    }
    pthread_cond_broadcast(&feed->cond);
    /* Bounded: a client that does not read its answer must not hold up the shutdown. */
    struct timespec ts;
    timespec_at_ms(&ts, clock_monotonic_ms() + FEED_DRAIN_MS);
    while (feed->draining > 0) {
        if (pthread_cond_timedwait(&feed->cond, &feed->lock, &ts) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&feed->lock);
}

void api_feed_free(struct api_feed *feed)
{
    if (!feed)
        return;
    api_feed_shutdown(feed);
    if (feed->thread_started)
        pthread_join(feed->thread, NULL);
    /* Once this returns the callback cannot run any more, so FEED may go. */
    if (feed->subscribed)
        events_bus_unsubscribe(feed->bus, feed_on_events, feed);
    pthread_cond_destroy(&feed->cond);
    pthread_mutex_destroy(&feed->lock);
    free(feed);
}

void api_feed_wait_free(struct api_feed_wait *w)
{
    if (!w)
        return;
    /* A listed waiter's connection is suspended, and MHD never completes those; unlink anyway
     * rather than leave a dangling pointer if that ever changed. */
    pthread_mutex_lock(&w->feed->lock);
    if (w->listed)
        waiter_unlink(w->feed, w);
    if (w->draining && --w->feed->draining == 0)
        pthread_cond_broadcast(&w->feed->cond);
    pthread_mutex_unlock(&w->feed->lock);
    free(w);
}

enum suspend_result {
    SUSPENDED, /* the connection waits; return MHD_YES without a response */
    NEWER,     /* events past AFTER were committed meanwhile: look again */
    REFUSED,   /* shutting down, too many waiters or out of memory: answer now */
};

/* Lists REQ as waiting for events after AFTER until DEADLINE_MS and suspends its connection. */
static enum suspend_result feed_suspend(struct api_request *req, int64_t after, int64_t deadline_ms)
{
    struct api_feed *feed = req->feed;
    if (!feed || !feed->bus)
        return REFUSED;
    struct api_feed_wait *w = req->feed_wait;
    if (!w) {
        w = calloc(1, sizeof(*w));
        if (!w)
            return REFUSED;
        w->feed = feed;
        w->conn = req->conn;
        req->feed_wait = w;
    }
    w->after = after;
    w->deadline_ms = deadline_ms;

    enum suspend_result r;
    pthread_mutex_lock(&feed->lock);
    if (feed->stopping) {
        r = REFUSED;
    } else if (feed->bus_last > after) {
        /* Committed after our look at the log, announced before we listed: the thread would
         * never resume us for it. */
        r = NEWER;
    } else if (feed->waiter_count >= FEED_MAX_WAITERS) {
        r = REFUSED;
    } else {
        w->prev = NULL;
        w->next = feed->waiters;
        if (feed->waiters)
            feed->waiters->prev = w;
        feed->waiters = w;
        w->listed = true;
        feed->waiter_count++;
        MHD_suspend_connection(req->conn);
        if (deadline_ms < feed->next_wake_ms)
            pthread_cond_broadcast(&feed->cond);
        r = SUSPENDED;
    }
    pthread_mutex_unlock(&feed->lock);
    return r;
}

/* ---- the handler ---- */

static json_t *event_json(const struct store_event *e)
{
    json_t *detail = json_loads(e->detail_json, 0, NULL);
    return json_pack("{s:I, s:o, s:s, s:s?, s:s, s:o}", "id", (json_int_t)e->id, "time",
                     json_time_or_null(e->created_at), "type", e->type, "domain", e->domain,
                     "actor", e->actor, "detail", detail ? detail : json_object());
}

/* Decisions of one answer about domains, so a scoped caller's scan looks each domain up once
 * (events cluster on few domains); a full cache simply forgets the oldest. */
#define SEEN_CACHE 32
struct seen_cache {
    char *name[SEEN_CACHE];
    bool visible[SEEN_CACHE];
    size_t next;
};

static void seen_cache_clear(struct seen_cache *c)
{
    for (size_t i = 0; i < SEEN_CACHE; i++) {
        free(c->name[i]);
        c->name[i] = NULL;
    }
}

/*
 * Events of a domain are visible to callers whose scope covers the domain, all of its names as
 * everywhere else in the API (the event names only the primary one, so the others come from the
 * store; a purged domain is judged by its primary name alone). Events without a domain
 * (daemon, configuration, accounts) are visible to unscoped callers only.
 */
static bool event_visible(struct api_request *req, const struct store_event *e,
                          struct seen_cache *cache)
{
    const struct api_caller *caller = &req->caller;
    if (!e->domain)
        return caller->scope_count == 0;
    const char *name = e->domain;
    if (!caller->scope_count)
        return true;
    for (size_t i = 0; i < SEEN_CACHE; i++) {
        if (cache->name[i] && strcmp(cache->name[i], name) == 0)
            return cache->visible[i];
    }
    struct store_domain *d = NULL;
    bool visible = store_domain_get(req->ctx->store, name, &d) == 0
                       ? api_caller_sees_domain(caller, d)
                       : api_caller_sees(caller, &name, 1); /* purged: its primary name alone */
    store_domain_free(d);
    size_t slot = cache->next++ % SEEN_CACHE;
    free(cache->name[slot]);
    cache->name[slot] = strdup(name); /* NULL on failure: only a cache miss next time */
    cache->visible[slot] = visible;
    return visible;
}

/*
 * Appends to ARR the events after FROM that the caller may see, at most LIMIT, looking at no
 * more than FEED_SCAN_MAX. *CURSOR is the id of the last event looked at (FROM when none): the
 * next page starts there, so events outside the scope are not looked at twice. *CUT says the
 * scan stopped at FEED_SCAN_MAX with more of the log left.
 */
static int scan(struct api_request *req, int64_t from, size_t limit, json_t *arr, int64_t *cursor,
                bool *cut)
{
    struct seen_cache cache = {0};
    size_t looked = 0;
    int ret = 0;
    *cursor = from;
    *cut = false;
    for (;;) {
        if (json_array_size(arr) >= limit)
            break;
        if (looked >= FEED_SCAN_MAX) {
            *cut = true;
            break;
        }
        struct store_event **list = NULL;
        size_t count = 0;
        ret = store_event_list(req->ctx->store, *cursor, limit, &list, &count);
        if (ret < 0)
            break;
        size_t i;
        for (i = 0; i < count && json_array_size(arr) < limit; i++) {
            if (event_visible(req, list[i], &cache) &&
                json_array_append_new(arr, event_json(list[i])) < 0) {
                ret = -ENOMEM;
                break;
            }
            *cursor = list[i]->id;
        }
        looked += i;
        store_event_list_free(list, count);
        if (ret < 0 || count < limit)
            break; /* an error, or the end of the log */
    }
    seen_cache_clear(&cache);
    return ret;
}

/* 410 when events after AFTER were pruned, or AFTER is not from this log at all (ahead of it:
 * the database was replaced). The problem carries first_id and last_id so the client can
 * resynchronise and then follow on from last_id. Returns true when the answer was queued. */
static bool cursor_gone(struct api_request *req, int64_t after, enum MHD_Result *rc)
{
    int64_t first = 0, last = 0;
    if (after == 0)
        return false;
    if (store_event_first_id(req->ctx->store, &first) < 0 ||
        store_event_last_id(req->ctx->store, &last) < 0) {
        *rc = api_respond_problem(req, PROBLEM_INTERNAL, "cannot read events");
        return true;
    }
    if (last < first - 1)
        last = first - 1; /* an empty log: everything up to first - 1 existed */
    json_t *p = NULL;
    if (after + 1 < first)
        p = problem_new(PROBLEM_GONE,
                        "events after %lld are no longer kept (the oldest kept is %lld, see "
                        "[daemon] events_retention); resynchronise in full (GET /v1/domains), "
                        "then follow on from last_id %lld",
                        (long long)after, (long long)first, (long long)last);
    else if (after > last)
        p = problem_new(PROBLEM_GONE,
                        "event %lld is not in this log (its last event is %lld); resynchronise "
                        "in full (GET /v1/domains), then follow on from last_id %lld",
                        (long long)after, (long long)last, (long long)last);
    if (!p)
        return false;
    json_object_set_new(p, "first_id", json_integer(first));
    json_object_set_new(p, "last_id", json_integer(last));
    *rc = api_respond_problem_doc(req, p);
    return true;
}

enum MHD_Result h_events_list(struct api_request *req, const char *param)
{
    static const char *const allowed[] = {"after", "limit", "wait", NULL};
    enum MHD_Result rc = MHD_NO;
    long long after, limit, wait;
    if (!api_query_check(req, allowed, &rc) ||
        !api_query_int(req, "after", 0, INT64_MAX, 0, &after, &rc) ||
        !api_query_int(req, "limit", 1, EVENTS_MAX_LIMIT, EVENTS_DEFAULT_LIMIT, &limit, &rc) ||
        !api_query_int(req, "wait", 0, FEED_MAX_WAIT_S, 0, &wait, &rc))
        return rc;

    /* Called again after a resume: carry on from where the last look stopped. */
    struct api_feed_wait *w = req->feed_wait;
    int64_t from = w ? w->after : after;
    int64_t deadline = w ? w->deadline_ms : clock_monotonic_ms() + wait * 1000;
    if (!w && cursor_gone(req, after, &rc))
        return rc;

    json_t *arr = json_array();
    if (!arr)
        return MHD_NO;
    int64_t cursor;
    for (;;) {
        bool cut;
        int err = scan(req, from, (size_t)limit, arr, &cursor, &cut);
        if (err < 0) {
            json_decref(arr);
            return api_respond_problem(req, PROBLEM_INTERNAL, "cannot read events");
        }
        /* Something to say, no wait asked for or left, or a scan cut short: answer. Otherwise
         * the log ends at CURSOR as far as this caller can see: wait for it to grow. */
        if (json_array_size(arr) > 0 || wait == 0 || cut || clock_monotonic_ms() >= deadline)
            break;
        enum suspend_result sr = feed_suspend(req, cursor, deadline);
        if (sr == SUSPENDED) {
            json_decref(arr);
            return MHD_YES;
        }
        if (sr == REFUSED)
            break;
        from = cursor;
    }
    return api_respond_json(req, MHD_HTTP_OK,
                            json_pack("{s:o, s:I}", "events", arr, "last_id", (json_int_t)cursor));
}
