#include "sched/scheduler.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "acme/client.h"
#include "acme/order.h"
#include "acme/responders.h"
#include "core/confhold.h"
#include "core/config.h"
#include "core/log.h"
#include "store/store.h"

#define MAX_WORKERS 64
#define MAX_QUEUE 4096

struct job {
    int64_t domain_id;
    int64_t order_id; /* an unfinished order to resume, or 0 */
};

/* ACME clients by CA, created on first use. A reload that changes a CA's settings adds a new
 * client; old ones stay until stop since a worker may still hold one. */
struct ca_entry {
    struct acme_client *client;
    char *name, *directory_url, *ca_bundle;
};

struct scheduler {
    struct store *store;
    struct config_holder *config;
    struct responders *responders;

    pthread_mutex_t lock;
    pthread_cond_t wake;      /* the scheduler thread: poked, a worker finished, stop */
    pthread_cond_t work;      /* workers: a job queued, stop */
    pthread_cond_t nap;       /* orders sleeping between polls: stop */
    bool stopping;
    bool poked;

    struct job queue[MAX_QUEUE];
    size_t queued;
    /* Domains queued or running, so one domain never has two orders at once. */
    int64_t busy[MAX_QUEUE + MAX_WORKERS];
    size_t busy_count;
    unsigned running;

    pthread_t thread;
    pthread_t workers[MAX_WORKERS];
    unsigned worker_count;

    pthread_mutex_t ca_lock;
    struct ca_entry *cas;
    size_t ca_count;
};

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

static bool is_busy(struct scheduler *s, int64_t domain_id)
{
    for (size_t i = 0; i < s->busy_count; i++) {
        if (s->busy[i] == domain_id)
            return true;
    }
    return false;
}

static void busy_remove(struct scheduler *s, int64_t domain_id)
{
    for (size_t i = 0; i < s->busy_count; i++) {
        if (s->busy[i] == domain_id) {
            s->busy[i] = s->busy[--s->busy_count];
            return;
        }
    }
}

/* Queues a job; the caller holds the lock. False when the queue is full or the domain busy. */
static bool enqueue(struct scheduler *s, int64_t domain_id, int64_t order_id)
{
    if (is_busy(s, domain_id) || s->queued >= MAX_QUEUE ||
        s->busy_count >= sizeof(s->busy) / sizeof(s->busy[0]))
        return false;
    s->queue[s->queued++] = (struct job){domain_id, order_id};
    s->busy[s->busy_count++] = domain_id;
    pthread_cond_signal(&s->work);
    return true;
}

bool scheduler_sleep(void *ctx, unsigned ms)
{
    struct scheduler *s = ctx;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->lock);
    while (!s->stopping) {
        if (pthread_cond_timedwait(&s->nap, &s->lock, &until) == ETIMEDOUT)
            break;
    }
    bool ok = !s->stopping;
    pthread_mutex_unlock(&s->lock);
    return ok;
}

struct responders *scheduler_responders(struct scheduler *s)
{
    return s->responders;
}

static bool same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

struct acme_client *scheduler_acme_client(struct scheduler *s, const char *ca_name)
{
    const struct config *cfg = config_holder_get(s->config);
    const struct config_ca *ca = config_find_ca(cfg, ca_name);
    struct acme_client *client = NULL;
    if (!ca)
        goto out;
    pthread_mutex_lock(&s->ca_lock);
    for (size_t i = s->ca_count; i-- > 0;) {
        struct ca_entry *e = &s->cas[i];
        if (strcmp(e->name, ca->name) == 0 && same(e->directory_url, ca->directory) &&
            same(e->ca_bundle, ca->ca_bundle)) {
            client = e->client;
            break;
        }
    }
    if (!client) {
        const struct config_list *contact =
            ca->contact.count ? &ca->contact : &cfg->acme.contact;
        struct acme_client_opts o = {
            .name = ca->name, .directory_url = ca->directory, .ca_bundle = ca->ca_bundle,
            .eab_kid = ca->eab_kid, .eab_hmac_key = ca->eab_hmac_key,
            .contact = contact->items, .contact_count = contact->count,
            .terms_agreed = ca->terms_agreed,
            .account_key_type = key_type_name(cfg->acme.account_key_type)};
        struct ca_entry *grown = realloc(s->cas, (s->ca_count + 1) * sizeof(*grown));
        if (grown) {
            s->cas = grown;
            struct ca_entry *e = &s->cas[s->ca_count];
            memset(e, 0, sizeof(*e));
            if (acme_client_new(&o, s->store, &e->client) == 0) {
                e->name = strdup(ca->name);
                e->directory_url = strdup(ca->directory);
                e->ca_bundle = ca->ca_bundle ? strdup(ca->ca_bundle) : NULL;
                client = e->client;
                s->ca_count++;
            }
        }
    }
    pthread_mutex_unlock(&s->ca_lock);
out:
    config_holder_put(s->config, cfg);
    return client;
}

int64_t scheduler_backoff(int failures, int64_t retry_after, uint32_t random)
{
    /* Let's Encrypt's integration guide: about 1 min, 10 min, 100 min, then daily. */
    static const int64_t steps[] = {60, 600, 6000, 86400};
    size_t i = failures < 1 ? 0 : (size_t)failures - 1;
    int64_t base = steps[i < 4 ? i : 3];
    int64_t delay = base + (int64_t)(random % (uint32_t)(base / 10 + 1));
    return retry_after > delay ? retry_after : delay;
}

static void record_failure(struct scheduler *s, int64_t domain_id,
                           const struct acme_order_result *res)
{
    struct store_domain *d = NULL;
    if (store_domain_get_by_id(s->store, domain_id, &d) < 0)
        return;
    uint32_t rnd = 0;
    if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
        rnd = (uint32_t)now_s();
    int64_t delay = scheduler_backoff(d->failure_count + 1, res->retry_after, rnd);
    json_t *detail = json_pack("{s:s, s:i, s:I}", "error", res->error, "failure_count",
                               d->failure_count + 1, "retry_in_seconds", (json_int_t)delay);
    char *text = detail ? json_dumps(detail, JSON_COMPACT) : NULL;
    json_decref(detail);
    struct store_event_in ev = {.type = "order.failed", .domain = d->name, .actor = "certd",
                                .detail_json = text};
    if (store_domain_record_failure(s->store, domain_id, res->error, now_s() + delay, &ev) < 0)
        log_error("%s: cannot record the failure", d->name);
    else
        log_notice("%s: next attempt in %lld s", d->name, (long long)delay);
    free(text);
    store_domain_free(d);
}

static void run_job(struct scheduler *s, const struct job *job)
{
    struct store_domain *d = NULL;
    struct acme_order_result res = {.outcome = ORDER_FAILED};
    if (store_domain_get_by_id(s->store, job->domain_id, &d) < 0)
        return;
    const struct config *cfg = config_holder_get(s->config);
    struct acme_client *client = scheduler_acme_client(s, d->ca);
    if (!client) {
        snprintf(res.error, sizeof(res.error), "CA '%s' is not in the configuration", d->ca);
        res.retry_after = -1;
        record_failure(s, job->domain_id, &res);
        goto out;
    }
    struct acme_order_env env = {.store = s->store, .responders = s->responders, .config = cfg,
                                 .client = client, .sleep = scheduler_sleep, .sleep_ctx = s,
                                 .actor = "certd"};
    log_info("%s: %s order with CA %s", d->name, job->order_id ? "resuming the" : "starting an",
             d->ca);
    acme_order_run(&env, job->domain_id, job->order_id, &res);
    if (res.outcome == ORDER_FAILED)
        record_failure(s, job->domain_id, &res);
out:
    config_holder_put(s->config, cfg);
    store_domain_free(d);
}

static void *worker_main(void *arg)
{
    struct scheduler *s = arg;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->stopping && s->queued == 0)
            pthread_cond_wait(&s->work, &s->lock);
        if (s->stopping)
            break;
        struct job job = s->queue[0];
        memmove(s->queue, s->queue + 1, (s->queued - 1) * sizeof(s->queue[0]));
        s->queued--;
        s->running++;
        pthread_mutex_unlock(&s->lock);
        run_job(s, &job);
        pthread_mutex_lock(&s->lock);
        s->running--;
        busy_remove(s, job.domain_id);
        pthread_cond_signal(&s->wake);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static void *scheduler_main(void *arg)
{
    struct scheduler *s = arg;
    pthread_mutex_lock(&s->lock);
    while (!s->stopping) {
        s->poked = false;
        size_t free_slots = s->worker_count > s->running + s->queued
                                ? s->worker_count - s->running - s->queued
                                : 0;
        int64_t now = now_s();
        bool starved = false; /* due domains exist but are all busy or over capacity */
        if (free_slots) {
            int64_t *ids = NULL;
            size_t n = 0;
            size_t want = free_slots + s->busy_count;
            pthread_mutex_unlock(&s->lock);
            int rc = store_domains_due(s->store, now, want, &ids, &n);
            pthread_mutex_lock(&s->lock);
            for (size_t i = 0; rc == 0 && i < n && free_slots; i++) {
                if (enqueue(s, ids[i], 0))
                    free_slots--;
            }
            starved = rc == 0 && n > 0 && free_slots == 0;
            free(ids);
        } else {
            starved = true;
        }
        if (s->stopping || s->poked)
            continue;

        int64_t next = 0;
        pthread_mutex_unlock(&s->lock);
        store_next_due(s->store, &next);
        pthread_mutex_lock(&s->lock);
        if (s->stopping || s->poked)
            continue;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        if (next == 0 && !starved) {
            pthread_cond_wait(&s->wake, &s->lock);
            continue;
        }
        /* Due work that could not start waits for a worker (which signals); a due time that
         * only busy domains have is looked at again within a second. */
        if (starved || next <= now)
            until.tv_sec += 1;
        else
            until.tv_sec = (time_t)next;
        pthread_cond_timedwait(&s->wake, &s->lock, &until);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

void scheduler_poke(struct scheduler *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->poked = true;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
}

/*
 * After a crash: withdraws the challenge responses of orders that ended, and queues unfinished
 * orders to be resumed. Responses of unfinished orders stay published (dns-01 records the CA may
 * be validating right now); the resumed order republishes what lived in memory (http-01,
 * tls-alpn-01) and withdraws everything once it is final.
 */
static void recover(struct scheduler *s)
{
    struct store_order **orders = NULL;
    struct store_challenge **left = NULL;
    size_t n = 0, nleft = 0;
    if (store_order_list_unfinished(s->store, &orders, &n) < 0)
        return;

    if (store_challenge_list(s->store, 0, &left, &nleft) == 0) {
        const struct config *cfg = config_holder_get(s->config);
        struct acme_order_env env = {.store = s->store, .responders = s->responders,
                                     .config = cfg};
        for (size_t i = 0; i < nleft; i++) {
            bool live = false, done_before = false;
            for (size_t j = 0; j < n && !live; j++)
                live = orders[j]->id == left[i]->order_id;
            for (size_t j = 0; j < i && !done_before; j++)
                done_before = left[j]->order_id == left[i]->order_id;
            if (!live && !done_before)
                acme_order_cleanup_challenges(&env, left[i]->order_id);
        }
        config_holder_put(s->config, cfg);
        store_challenge_list_free(left, nleft);
    }

    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < n; i++) {
        if (enqueue(s, orders[i]->domain_id, orders[i]->id))
            log_info("resuming order %lld of domain %lld", (long long)orders[i]->id,
                     (long long)orders[i]->domain_id);
    }
    pthread_mutex_unlock(&s->lock);
    store_order_list_free(orders, n);
}

int scheduler_start(struct store *store, struct config_holder *config,
                    struct responders *responders, struct scheduler **out)
{
    struct scheduler *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->store = store;
    s->config = config;
    s->responders = responders;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->ca_lock, NULL);
    pthread_cond_init(&s->wake, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_cond_init(&s->nap, NULL);

    const struct config *cfg = config_holder_get(config);
    unsigned workers = cfg->acme.max_concurrent_orders;
    config_holder_put(config, cfg);
    if (workers < 1)
        workers = 1;
    if (workers > MAX_WORKERS)
        workers = MAX_WORKERS;

    recover(s);
    for (unsigned i = 0; i < workers; i++) {
        if (pthread_create(&s->workers[i], NULL, worker_main, s) != 0)
            break;
        s->worker_count++;
    }
    if (s->worker_count == 0 || pthread_create(&s->thread, NULL, scheduler_main, s) != 0) {
        log_error("cannot start the scheduler threads");
        s->stopping = true;
        pthread_cond_broadcast(&s->work);
        for (unsigned i = 0; i < s->worker_count; i++)
            pthread_join(s->workers[i], NULL);
        free(s);
        return -EAGAIN;
    }
    *out = s;
    return 0;
}

void scheduler_stop(struct scheduler *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_broadcast(&s->wake);
    pthread_cond_broadcast(&s->work);
    pthread_cond_broadcast(&s->nap);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    for (unsigned i = 0; i < s->worker_count; i++)
        pthread_join(s->workers[i], NULL);
    for (size_t i = 0; i < s->ca_count; i++) {
        acme_client_free(s->cas[i].client);
        free(s->cas[i].name);
        free(s->cas[i].directory_url);
        free(s->cas[i].ca_bundle);
    }
    free(s->cas);
    pthread_cond_destroy(&s->wake);
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->nap);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->ca_lock);
    free(s);
}
