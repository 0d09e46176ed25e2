#include "sched/scheduler.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acme/client.h"
#include "acme/order.h"
#include "acme/responders.h"
#include "core/clock.h"
#include "core/confhold.h"
#include "core/config.h"
#include "core/log.h"
#include "sched/deploy.h"
#include "sched/renewal.h"
#include "store/store.h"

#define MAX_WORKERS 64
/* Names passed to deploy hooks (a certificate holds at most 100). */
#define NAMES_MAX_FOR_HOOKS 100
#define MAX_QUEUE 4096

enum job_kind { JOB_ORDER, JOB_ARI };

struct job {
    enum job_kind kind;
    int64_t domain_id; /* JOB_ORDER */
    int64_t order_id;  /* JOB_ORDER: an unfinished order to resume, or 0 */
    int64_t cert_id;   /* JOB_ARI */
};

/* The busy-set key of a job: ARI checks are keyed by certificate, apart from orders. */
static int64_t job_key(const struct job *j)
{
    return j->kind == JOB_ARI ? -j->cert_id : j->domain_id;
}

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
    /* Domains (and, negated, certificates for ARI checks) queued or running, so one domain
     * never has two orders at once. */
    int64_t busy[MAX_QUEUE + MAX_WORKERS];
    size_t busy_count;
    unsigned running;
    unsigned orders_running, orders_running_peak;

    pthread_t thread;
    pthread_t workers[MAX_WORKERS];
    unsigned worker_count;

    pthread_mutex_t ca_lock;
    struct ca_entry *cas;
    size_t ca_count;
};

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

/* Queues a job; the caller holds the lock. False when the queue is full or the key busy. */
static bool enqueue(struct scheduler *s, struct job job)
{
    int64_t key = job_key(&job);
    if (is_busy(s, key) || s->queued >= MAX_QUEUE ||
        s->busy_count >= sizeof(s->busy) / sizeof(s->busy[0]))
        return false;
    s->queue[s->queued++] = job;
    s->busy[s->busy_count++] = key;
    pthread_cond_signal(&s->work);
    return true;
}

static bool enqueue_order(struct scheduler *s, int64_t domain_id, int64_t order_id)
{
    return enqueue(s, (struct job){.kind = JOB_ORDER, .domain_id = domain_id,
                                   .order_id = order_id});
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

void scheduler_stats(struct scheduler *s, struct scheduler_stats *out)
{
    pthread_mutex_lock(&s->lock);
    out->orders_running = s->orders_running;
    out->orders_running_peak = s->orders_running_peak;
    out->workers = s->worker_count;
    out->queued = (unsigned)s->queued;
    pthread_mutex_unlock(&s->lock);
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

/* After a certificate is stored: the configured deploy hooks, with what they need to know. */
static void run_deploy_hooks(struct scheduler *s, const struct config *cfg,
                             const struct store_domain *d, int64_t cert_id, bool renewed)
{
    struct store_cert *c = NULL;
    if (store_cert_get(s->store, cert_id, &c) < 0)
        return;
    const char *names[NAMES_MAX_FOR_HOOKS];
    size_t n = 0;
    names[n++] = d->name;
    for (size_t i = 0; i < d->alt_count && n < NAMES_MAX_FOR_HOOKS; i++)
        names[n++] = d->alt_names[i];
    struct deploy_cert dc = {.domain = d->name, .names = names, .name_count = n,
                             .serial = c->serial, .not_before = c->not_before,
                             .not_after = c->not_after,
                             .fingerprint_sha256 = c->fingerprint_sha256, .renewed = renewed};
    deploy_run(cfg, s->store, &dc);
    store_cert_free(c);
}

static void run_order(struct scheduler *s, const struct job *job)
{
    struct store_domain *d = NULL;
    struct acme_order_result res = {.outcome = ORDER_FAILED};
    if (store_domain_get_by_id(s->store, job->domain_id, &d) < 0)
        return;
    const struct config *cfg = config_holder_get(s->config);
    struct acme_client *client = scheduler_acme_client(s, d->ca);
    if (!client) {
        char err[256];
        snprintf(err, sizeof(err), "CA '%s' is not in the configuration", d->ca);
        renewal_record_failure(s->store, job->domain_id, err, -1);
        goto out;
    }
    /* A new order waits when the CA's new-order budget is spent; a resumed one never does. */
    if (!job->order_id && !renewal_pace(s->store, cfg, d, clock_now()))
        goto out;
    struct acme_order_env env = {.store = s->store, .responders = s->responders, .config = cfg,
                                 .client = client, .sleep = scheduler_sleep, .sleep_ctx = s,
                                 .actor = "certd", .plan = renewal_plan,
                                 .plan_ctx = (void *)cfg};
    log_info("%s: %s order with CA %s", d->name, job->order_id ? "resuming the" : "starting an",
             d->ca);
    acme_order_run(&env, job->domain_id, job->order_id, &res);
    if (res.outcome == ORDER_FAILED)
        renewal_record_failure(s->store, job->domain_id, res.error, res.retry_after);
    else if (res.outcome == ORDER_ISSUED)
        run_deploy_hooks(s, cfg, d, res.cert_id, res.renewed);
out:
    config_holder_put(s->config, cfg);
    store_domain_free(d);
}

static void run_ari(struct scheduler *s, const struct job *job)
{
    struct store_cert *c = NULL;
    struct store_domain *d = NULL;
    if (store_cert_get(s->store, job->cert_id, &c) == 0 &&
        store_domain_get_by_id(s->store, c->domain_id, &d) == 0) {
        struct acme_client *client = scheduler_acme_client(s, d->ca);
        if (client)
            renewal_ari_check(s->store, client, job->cert_id);
        else
            store_cert_set_ari(s->store, job->cert_id, 0, 0, 0); /* CA gone from the config */
    }
    store_cert_free(c);
    store_domain_free(d);
}

static void run_job(struct scheduler *s, const struct job *job)
{
    if (job->kind == JOB_ARI)
        run_ari(s, job);
    else
        run_order(s, job);
}

static void *worker_main(void *arg)
{
    pthread_setname_np(pthread_self(), "certd-order"); /* for top -H, ps -L and the benchmarks */
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
        if (job.kind == JOB_ORDER && ++s->orders_running > s->orders_running_peak)
            s->orders_running_peak = s->orders_running;
        pthread_mutex_unlock(&s->lock);
        run_job(s, &job);
        pthread_mutex_lock(&s->lock);
        s->running--;
        if (job.kind == JOB_ORDER)
            s->orders_running--;
        busy_remove(s, job_key(&job));
        pthread_cond_signal(&s->wake);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static void *scheduler_main(void *arg)
{
    pthread_setname_np(pthread_self(), "certd-sched"); /* for top -H, ps -L and the benchmarks */
    struct scheduler *s = arg;
    pthread_mutex_lock(&s->lock);
    while (!s->stopping) {
        s->poked = false;
        size_t free_slots = s->worker_count > s->running + s->queued
                                ? s->worker_count - s->running - s->queued
                                : 0;
        int64_t now = clock_now();
        bool starved = false; /* due domains exist but are all busy or over capacity */
        if (free_slots) {
            int64_t *ids = NULL;
            size_t n = 0;
            size_t want = free_slots + s->busy_count;
            pthread_mutex_unlock(&s->lock);
            int rc = store_domains_due(s->store, now, want, &ids, &n);
            pthread_mutex_lock(&s->lock);
            for (size_t i = 0; rc == 0 && i < n && free_slots; i++) {
                if (enqueue_order(s, ids[i], 0))
                    free_slots--;
            }
            starved = rc == 0 && n > 0 && free_slots == 0;
            free(ids);
            /* Renewal-information checks share the workers, after the orders. */
            if (free_slots) {
                ids = NULL;
                n = 0;
                pthread_mutex_unlock(&s->lock);
                rc = store_ari_due(s->store, now, free_slots + s->busy_count, &ids, &n);
                pthread_mutex_lock(&s->lock);
                for (size_t i = 0; rc == 0 && i < n && free_slots; i++) {
                    if (enqueue(s, (struct job){.kind = JOB_ARI, .cert_id = ids[i]}))
                        free_slots--;
                }
                starved |= rc == 0 && n > 0 && free_slots == 0;
                free(ids);
            }
        } else {
            starved = true;
        }
        if (s->stopping || s->poked)
            continue;

        int64_t next = 0, next_ari = 0, next_expiring = 0;
        pthread_mutex_unlock(&s->lock);
        renewal_warn_expiring(s->store, now);
        store_next_due(s->store, &next);
        store_next_ari_due(s->store, &next_ari);
        store_next_expiring(s->store, &next_expiring);
        /* The earliest of the three plans, each read from its index. */
        if (next_ari && (!next || next_ari < next))
            next = next_ari;
        if (next_expiring && (!next || next_expiring < next))
            next = next_expiring;
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
        if (enqueue_order(s, orders[i]->domain_id, orders[i]->id))
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
