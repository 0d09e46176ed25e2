/*
 * A fan-out for the store's single event hook (store_set_event_hook): the change feed and the
 * delivery index both need to learn that events were committed, and the store has one slot.
 *
 * Wiring (main.c): bus = events_bus_new(last id in the store); store_set_event_hook(store,
 * events_bus_hook, bus). The bus carries no events, only "the log grew up to id N": readers then
 * fetch what they need with store_event_list(after = their own cursor), so a reader that missed a
 * wake-up loses nothing.
 *
 * Two ways to be told:
 *  - events_bus_wait: a thread blocks until the last id passes its cursor (the delivery index's
 *    thread; a blocking long-poll would do the same, but see below for MHD handlers).
 *  - events_bus_subscribe: a light callback run on the committing thread, for waking something
 *    that must not block a thread (e.g. MHD_resume_connection of suspended long-poll requests).
 *
 * Thread-safe. Lock order: the store's lock, then the bus's lock (the hook runs with the store
 * locked), so nothing may call the store while holding the bus, and callbacks run with both held.
 */
#ifndef CERTD_API_EVENTS_BUS_H
#define CERTD_API_EVENTS_BUS_H

#include <stdint.h>

struct events_bus;

/* Creates a bus whose last id starts at START_ID (store_event_last_id at start). 0 or -ENOMEM. */
int events_bus_new(int64_t start_id, struct events_bus **out);

/* Frees the bus. Detach it from the store first (store_set_event_hook(store, NULL, NULL)) or
 * close the store; no waiter may remain. NULL-safe. */
void events_bus_free(struct events_bus *bus);

/*
 * The store hook (a store_event_hook): CTX is the bus. Records LAST_EVENT_ID (the last id only
 * grows), wakes every events_bus_wait and runs every subscribed callback, in subscription order.
 * Runs on the committing thread with the store locked: it never calls the store.
 */
void events_bus_hook(void *ctx, int64_t last_event_id);

/* The highest event id committed that the bus knows of. */
int64_t events_bus_last_id(struct events_bus *bus);

/*
 * Blocks until the last id is greater than AFTER_ID, TIMEOUT_MS pass (negative: no timeout) or
 * the bus is stopped. Returns the last id (> AFTER_ID when there is news; <= AFTER_ID after a
 * timeout), or -ECANCELED once events_bus_stop was called (at once if it already was).
 */
int64_t events_bus_wait(struct events_bus *bus, int64_t after_id, int timeout_ms);

/* Makes every present and future events_bus_wait return -ECANCELED (shutdown). Subscribed
 * callbacks keep being called until unsubscribed. */
void events_bus_stop(struct events_bus *bus);

/*
 * A callback for every hook call, with the new last id. It runs on a committing thread with the
 * store and the bus locked, so it must be quick, must not block, and must call neither the store
 * nor any events_bus_* function (it may signal, write an eventfd, or MHD_resume_connection).
 */
typedef void (*events_bus_fn)(void *ctx, int64_t last_event_id);

/* Adds FN(CTX). 0, -EINVAL (FN NULL) or -ENOMEM. The same pair may be added only once
 * (-EEXIST). At most 64 callbacks (-ENOSPC): they are meant for a few components, not for one
 * per request. */
int events_bus_subscribe(struct events_bus *bus, events_bus_fn fn, void *ctx);

/* Removes FN(CTX). Once it returns, FN(CTX) is not running and will not run again, so CTX may be
 * freed. -ENOENT when it was not subscribed. */
int events_bus_unsubscribe(struct events_bus *bus, events_bus_fn fn, void *ctx);

#endif
