/* Fan-out of the store's one event hook; see events_bus.h. */
#include "api/events_bus.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#define BUS_MAX_SUBSCRIBERS 64

struct bus_subscriber {
    events_bus_fn fn;
    void *ctx;
};

struct events_bus {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC, so a wall-clock step cannot stretch a wait */
    int64_t last_id;
    bool stopped;
    struct bus_subscriber subs[BUS_MAX_SUBSCRIBERS];
    size_t sub_count;
};

int events_bus_new(int64_t start_id, struct events_bus **out)
{
    struct events_bus *bus = calloc(1, sizeof(*bus));
    if (!bus)
        return -ENOMEM;
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0) {
        free(bus);
        return -ENOMEM;
    }
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&bus->cond, &attr);
    pthread_condattr_destroy(&attr);
    if (rc != 0) {
        free(bus);
        return -ENOMEM;
    }
    pthread_mutex_init(&bus->lock, NULL);
    bus->last_id = start_id > 0 ? start_id : 0;
    *out = bus;
    return 0;
}

void events_bus_free(struct events_bus *bus)
{
    if (!bus)
        return;
    pthread_cond_destroy(&bus->cond);
    pthread_mutex_destroy(&bus->lock);
    free(bus);
}

void events_bus_hook(void *ctx, int64_t last_event_id)
{
    struct events_bus *bus = ctx;
    if (!bus)
        return;
    pthread_mutex_lock(&bus->lock);
    if (last_event_id > bus->last_id)
        bus->last_id = last_event_id;
    int64_t id = bus->last_id;
    pthread_cond_broadcast(&bus->cond);
    /* Called under the lock so that unsubscribe can promise the callback is not running. */
    for (size_t i = 0; i < bus->sub_count; i++)
        bus->subs[i].fn(bus->subs[i].ctx, id);
    pthread_mutex_unlock(&bus->lock);
}

int64_t events_bus_last_id(struct events_bus *bus)
{
    pthread_mutex_lock(&bus->lock);
    int64_t id = bus->last_id;
    pthread_mutex_unlock(&bus->lock);
    return id;
}

int64_t events_bus_wait(struct events_bus *bus, int64_t after_id, int timeout_ms)
{
    struct timespec deadline;
    if (timeout_ms >= 0) {
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&bus->lock);
    while (!bus->stopped && bus->last_id <= after_id) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&bus->cond, &bus->lock);
        } else if (pthread_cond_timedwait(&bus->cond, &bus->lock, &deadline) == ETIMEDOUT) {
            break;
        }
    }
    int64_t rc = bus->stopped ? -ECANCELED : bus->last_id;
    pthread_mutex_unlock(&bus->lock);
    return rc;
}

void events_bus_stop(struct events_bus *bus)
{
    if (!bus)
        return;
    pthread_mutex_lock(&bus->lock);
    bus->stopped = true;
    pthread_cond_broadcast(&bus->cond);
    pthread_mutex_unlock(&bus->lock);
}

int events_bus_subscribe(struct events_bus *bus, events_bus_fn fn, void *ctx)
{
    if (!fn)
        return -EINVAL;
    int rc = 0;
    pthread_mutex_lock(&bus->lock);
    for (size_t i = 0; i < bus->sub_count; i++) {
        if (bus->subs[i].fn == fn && bus->subs[i].ctx == ctx) {
            rc = -EEXIST;
            goto out;
        }
    }
    if (bus->sub_count == BUS_MAX_SUBSCRIBERS) {
        rc = -ENOSPC;
        goto out;
    }
    bus->subs[bus->sub_count++] = (struct bus_subscriber){.fn = fn, .ctx = ctx};
out:
    pthread_mutex_unlock(&bus->lock);
    return rc;
}

int events_bus_unsubscribe(struct events_bus *bus, events_bus_fn fn, void *ctx)
{
    int rc = -ENOENT;
    pthread_mutex_lock(&bus->lock);
    for (size_t i = 0; i < bus->sub_count; i++) {
        if (bus->subs[i].fn == fn && bus->subs[i].ctx == ctx) {
            /* Keep the order: callbacks run in subscription order. */
            for (size_t j = i + 1; j < bus->sub_count; j++)
                bus->subs[j - 1] = bus->subs[j];
            bus->sub_count--;
            rc = 0;
            break;
        }
    }
    pthread_mutex_unlock(&bus->lock);
    return rc;
}
