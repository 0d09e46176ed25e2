/* Event retention: store_events_prune deletes a prefix of the log by age, in batches, and
 * store_event_first_id tells a feed reader whether it missed pruned events. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store/store.h"
#include "store/store_internal.h"
#include "store_fixture.h"

#define DAY (24 * 3600)

/* Appends an event created at AT. The store stamps events with the clock, so old ones go in
 * with SQL (INSERT is allowed; only UPDATE is refused); ids are handed out the same way. */
static int64_t add_at(struct store_fixture *f, int64_t at)
{
    sqlite3 *db = store_sqlite_handle(f->st);
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO events (created_at, type, actor)"
                                        " VALUES (?1, 'test.old', 't')",
                                        -1, &s, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_bind_int64(s, 1, at), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_DONE);
    sqlite3_finalize(s);
    return sqlite3_last_insert_rowid(db);
}

static int64_t count_events(struct store_fixture *f)
{
    sqlite3 *db = store_sqlite_handle(f->st);
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM events", -1, &s, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return n;
}

static void test_first_id_empty_log(void **state)
{
    struct store_fixture *f = *state;
    int64_t first = -1;
    size_t deleted = 99;

    assert_int_equal(store_event_first_id(f->st, &first), 0);
    assert_int_equal(first, 1);
    assert_int_equal(store_events_prune(f->st, store_now(), &deleted), 0);
    assert_int_equal(deleted, 0);
    assert_int_equal(store_event_first_id(f->st, &first), 0);
    assert_int_equal(first, 1);
}

static void test_prune_by_age(void **state)
{
    struct store_fixture *f = *state;
    int64_t now = store_now();
    int64_t ids[6];

    /* three older than 90 days, three recent */
    ids[0] = add_at(f, now - 200 * DAY);
    ids[1] = add_at(f, now - 150 * DAY);
    ids[2] = add_at(f, now - 91 * DAY);
    ids[3] = add_at(f, now - 89 * DAY);
    ids[4] = add_at(f, now - 1 * DAY);
    struct store_event_in ev = {.type = "test.new", .actor = "t"};
    assert_int_equal(store_event_add(f->st, &ev, &ids[5]), 0);
    for (int i = 1; i < 6; i++)
        assert_int_equal(ids[i], ids[i - 1] + 1);

    int64_t first = 0, last = 0;
    assert_int_equal(store_event_first_id(f->st, &first), 0);
    assert_int_equal(first, ids[0]);

    size_t deleted = 0;
    assert_int_equal(store_events_prune(f->st, now - 90 * DAY, &deleted), 0);
    assert_int_equal(deleted, 3);
    assert_int_equal(count_events(f), 3);
    assert_int_equal(store_event_first_id(f->st, &first), 0);
    assert_int_equal(first, ids[3]);
    assert_int_equal(store_event_last_id(f->st, &last), 0);
    assert_int_equal(last, ids[5]);

    /* What is left is exactly the recent ones, in order. */
    struct store_event **list = NULL;
    size_t n = 0;
    assert_int_equal(store_event_list(f->st, 0, 100, &list, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(list[0]->id, ids[3]);
    assert_int_equal(list[2]->id, ids[5]);
    assert_string_equal(list[2]->type, "test.new");
    store_event_list_free(list, n);

    /* Nothing more to do: a second run deletes nothing. */
    assert_int_equal(store_events_prune(f->st, now - 90 * DAY, &deleted), 0);
    assert_int_equal(deleted, 0);
    assert_int_equal(count_events(f), 3);
}

/* The clock went backwards once: an old-looking event sits after a recent one. Pruning stops at
 * the first recent event, so the log stays contiguous and first_id stays exact. */
static void test_prune_keeps_prefix_only(void **state)
{
    struct store_fixture *f = *state;
    int64_t now = store_now();
    int64_t a = add_at(f, now - 100 * DAY);
    int64_t b = add_at(f, now - 10 * DAY);
    int64_t c = add_at(f, now - 300 * DAY); /* written while the clock was wrong */
    int64_t d = add_at(f, now);
    (void)a;

    size_t deleted = 0;
    assert_int_equal(store_events_prune(f->st, now - 90 * DAY, &deleted), 0);
    assert_int_equal(deleted, 1);
    int64_t first = 0;
    assert_int_equal(store_event_first_id(f->st, &first), 0);
    assert_int_equal(first, b);

    struct store_event **list = NULL;
    size_t n = 0;
    assert_int_equal(store_event_list(f->st, 0, 100, &list, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(list[0]->id, b);
    assert_int_equal(list[1]->id, c);
    assert_int_equal(list[2]->id, d);
    store_event_list_free(list, n);
}

/* More than one batch (2000 rows) goes; pruning everything leaves first_id just past the last
 * id ever given, and the next event gets exactly that id. */
static void test_prune_all_many_batches(void **state)
{
    struct store_fixture *f = *state;
    int64_t now = store_now();
    const int total = 4500;
    sqlite3 *db = store_sqlite_handle(f->st);
    assert_int_equal(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    int64_t last_old = 0;
    for (int i = 0; i < total; i++)
        last_old = add_at(f, now - 400 * DAY + i);
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(count_events(f), total);

    size_t deleted = 0;
    assert_int_equal(store_events_prune(f->st, now - 90 * DAY, &deleted), 0);
    assert_int_equal(deleted, (size_t)total);
    assert_int_equal(count_events(f), 0);

    int64_t first = 0, last = -1;
    assert_int_equal(store_event_first_id(f->st, &first), 0);
    assert_int_equal(first, last_old + 1);
    assert_int_equal(store_event_last_id(f->st, &last), 0);
    assert_int_equal(last, 0);

    int64_t id = 0;
    struct store_event_in ev = {.type = "test.new", .actor = "t"};
    assert_int_equal(store_event_add(f->st, &ev, &id), 0);
    assert_int_equal(id, first);
    assert_int_equal(store_event_first_id(f->st, &first), 0);
    assert_int_equal(first, id);
}

/* Pruning adds no event, so the event hook (the feed's wake-up) stays quiet. */
static int hook_calls;
static void on_events(void *ctx, int64_t last)
{
    hook_calls++;
}

static void test_prune_no_hook(void **state)
{
    struct store_fixture *f = *state;
    int64_t now = store_now();
    add_at(f, now - 100 * DAY);
    add_at(f, now - 100 * DAY);
    hook_calls = 0;
    store_set_event_hook(f->st, on_events, NULL);
    size_t deleted = 0;
    assert_int_equal(store_events_prune(f->st, now, &deleted), 0);
    assert_int_equal(deleted, 2);
    assert_int_equal(hook_calls, 0);
    assert_int_equal(store_events_prune(f->st, now, NULL), 0);
    store_set_event_hook(f->st, NULL, NULL);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, store_fixture_setup, store_fixture_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_first_id_empty_log),     T(test_prune_by_age),  T(test_prune_keeps_prefix_only),
        T(test_prune_all_many_batches), T(test_prune_no_hook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
