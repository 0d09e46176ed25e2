/* The audit log on its own: validation, paging, append-only enforcement, ids never reused. */
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

static void test_add_list(void **state)
{
    struct store_fixture *f = *state;
    int64_t last = -1;

    assert_int_equal(store_event_last_id(f->st, &last), 0);
    assert_int_equal(last, 0);

    int64_t ids[5];
    for (int i = 0; i < 5; i++) {
        char detail[32];
        snprintf(detail, sizeof(detail), "{\"n\": %d}", i);
        struct store_event_in ev = {.type = "daemon.started",
                                    .actor = "certd",
                                    .detail_json = detail,
                                    .domain = i == 2 ? "x.example" : NULL};
        assert_int_equal(store_event_add(f->st, &ev, &ids[i]), 0);
        if (i > 0)
            assert_true(ids[i] > ids[i - 1]);
    }
    assert_int_equal(store_event_last_id(f->st, &last), 0);
    assert_int_equal(last, ids[4]);

    struct store_event **evs = NULL;
    size_t n = 0;
    assert_int_equal(store_event_list(f->st, ids[0], 3, &evs, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(evs[0]->id, ids[1]);
    assert_int_equal(evs[2]->id, ids[3]);
    assert_string_equal(evs[0]->detail_json, "{\"n\": 1}");
    assert_null(evs[0]->domain);
    assert_string_equal(evs[1]->domain, "x.example");
    assert_string_equal(evs[1]->type, "daemon.started");
    assert_string_equal(evs[1]->actor, "certd");
    assert_true(evs[1]->created_at > 1600000000);
    store_event_list_free(evs, n);
    store_event_list_free(NULL, 0);
}

static void test_invalid_refused(void **state)
{
    struct store_fixture *f = *state;
    int64_t id = 0;

    static const char *const bad_details[] = {"[]", "\"s\"", "{", "{\"a\":1,\"a\":2}", "1", ""};
    for (size_t i = 0; i < sizeof(bad_details) / sizeof(bad_details[0]); i++) {
        struct store_event_in ev = {.type = "t", .actor = "a", .detail_json = bad_details[i]};
        assert_int_equal(store_event_add(f->st, &ev, &id), -EINVAL);
    }
    struct store_event_in no_type = {.actor = "a"};
    assert_int_equal(store_event_add(f->st, &no_type, &id), -EINVAL);
    struct store_event_in no_actor = {.type = "t"};
    assert_int_equal(store_event_add(f->st, &no_actor, &id), -EINVAL);
    assert_int_equal(store_event_add(f->st, NULL, &id), -EINVAL);

    /* Over the size cap, even though it is a valid object. */
    size_t big = STORE_EVENT_DETAIL_MAX + 16;
    char *detail = malloc(big + 1);
    assert_non_null(detail);
    memset(detail, ' ', big);
    detail[0] = '{';
    detail[big - 1] = '}';
    detail[big] = '\0';
    struct store_event_in huge = {.type = "t", .actor = "a", .detail_json = detail};
    assert_int_equal(store_event_add(f->st, &huge, &id), -EINVAL);
    free(detail);

    int64_t last = -1;
    assert_int_equal(store_event_last_id(f->st, &last), 0);
    assert_int_equal(last, 0);
}

static void test_append_only(void **state)
{
    struct store_fixture *f = *state;
    int64_t id1 = 0, id2 = 0;
    struct store_event_in ev = {.type = "t", .actor = "a"};
    assert_int_equal(store_event_add(f->st, &ev, &id1), 0);

    sqlite3 *db = store_sqlite_handle(f->st);
    char *msg = NULL;
    assert_int_not_equal(sqlite3_exec(db, "UPDATE events SET type = 'x'", NULL, NULL, &msg),
                         SQLITE_OK);
    assert_non_null(msg);
    assert_non_null(strstr(msg, "append-only"));
    sqlite3_free(msg);

    /* Since schema 4 rows may go by age (retention pruning); even when the newest is gone,
     * AUTOINCREMENT never hands its id out again. */
    assert_int_equal(sqlite3_exec(db, "DELETE FROM events", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(store_event_add(f->st, &ev, &id2), 0);
    assert_true(id2 > id1);
}

struct hook_seen {
    int calls;
    int64_t last;
};

static void on_events(void *ctx, int64_t last)
{
    struct hook_seen *h = ctx;
    h->calls++;
    h->last = last;
}

/* The event hook fires once per commit that added events, with the newest id, and never for a
 * transaction that was rolled back. */
static void test_event_hook(void **state)
{
    struct store_fixture *f = *state;
    struct hook_seen seen = {0};
    store_set_event_hook(f->st, on_events, &seen);

    int64_t id = 0;
    struct store_event_in ev = {.type = "test.one", .actor = "t"};
    assert_int_equal(store_event_add(f->st, &ev, &id), 0);
    assert_int_equal(seen.calls, 1);
    assert_int_equal(seen.last, id);

    /* a mutation whose event commits with it */
    struct store_domain d = {.name = "hook.example.com", .challenge = "http-01",
                             .key_type = "ec-p256", .ca = "letsencrypt"};
    struct store_key k = {.key_type = "ec-p256",
                          .pem = "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n",
                          .public_key_sha256 =
                              "0000000000000000000000000000000000000000000000000000000000000000"};
    struct store_event_in add = {.type = "domain.added", .domain = "hook.example.com",
                                 .actor = "t"};
    assert_int_equal(store_domain_add(f->st, &d, &k, &add, NULL), 0);
    assert_int_equal(seen.calls, 2);
    int64_t last = 0;
    assert_int_equal(store_event_last_id(f->st, &last), 0);
    assert_int_equal(seen.last, last);

    /* a refused mutation (duplicate) rolls back: no call */
    assert_int_equal(store_domain_add(f->st, &d, &k, &add, NULL), -EEXIST);
    assert_int_equal(seen.calls, 2);

    store_set_event_hook(f->st, NULL, NULL);
    assert_int_equal(store_event_add(f->st, &ev, NULL), 0);
    assert_int_equal(seen.calls, 2);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, store_fixture_setup, store_fixture_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_add_list),
        T(test_invalid_refused),
        T(test_append_only),
        T(test_event_hook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
