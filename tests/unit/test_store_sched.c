/* The scheduler's view of the store: next_attempt_at, due domains, the next wake-up time. */
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

#define PEM "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"

static struct store_event_in ev_for(const char *type, const char *domain)
{
    return (struct store_event_in){.type = type, .domain = domain, .actor = "certd"};
}

static int64_t add_domain(struct store *st, const char *name)
{
    struct store_domain d = {
        .name = (char *)name, .challenge = "http-01", .key_type = "ec-p256", .ca = "le"};
    struct store_key k = {.pem = PEM, .public_key_sha256 = "f00d"};
    struct store_event_in ev = ev_for("domain.added", name);
    struct store_domain *out = NULL;
    assert_int_equal(store_domain_add(st, &d, &k, &ev, &out), 0);
    int64_t id = out->id;
    store_domain_free(out);
    return id;
}

static void schedule(struct store *st, int64_t id, int64_t attempt_at)
{
    struct store_event_in ev = ev_for("domain.scheduled", NULL);
    assert_int_equal(store_domain_schedule(st, id, attempt_at, 0, &ev), 0);
}

static int64_t last_event(struct store *st)
{
    int64_t id = 0;
    assert_int_equal(store_event_last_id(st, &id), 0);
    return id;
}

static void test_due_order_and_limit(void **state)
{
    struct store_fixture *f = *state;
    int64_t a = add_domain(f->st, "a.example");
    int64_t b = add_domain(f->st, "b.example");
    int64_t c = add_domain(f->st, "c.example");
    int64_t d = add_domain(f->st, "d.example");
    int64_t e = add_domain(f->st, "e.example");
    int64_t n0 = add_domain(f->st, "none.example");
    int64_t gone = add_domain(f->st, "gone.example");

    schedule(f->st, a, 300);
    schedule(f->st, b, 100);
    schedule(f->st, c, 200);
    schedule(f->st, d, 100); /* ties with b: by id */
    schedule(f->st, e, INT64_C(4000000000));
    schedule(f->st, n0, 0); /* nothing planned */
    struct store_event_in rm = ev_for("domain.removed", "gone.example");
    assert_int_equal(store_domain_remove(f->st, "gone.example", false, &rm), 0);
    /* Even with a stale timer (not something the store writes), a removed domain is not due. */
    char sql[128];
    snprintf(sql, sizeof(sql), "UPDATE domains SET next_attempt_at = 50 WHERE id = %lld",
             (long long)gone);
    assert_int_equal(sqlite3_exec(store_sqlite_handle(f->st), sql, NULL, NULL, NULL), SQLITE_OK);

    int64_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(store_domains_due(f->st, 250, 10, &ids, &n), 0);
    assert_int_equal(n, 3);
    assert_true(b < d);
    assert_int_equal(ids[0], b);
    assert_int_equal(ids[1], d);
    assert_int_equal(ids[2], c);
    free(ids);

    assert_int_equal(store_domains_due(f->st, 300, 2, &ids, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], b);
    assert_int_equal(ids[1], d);
    free(ids);

    /* <= NOW: exactly at the time counts. */
    assert_int_equal(store_domains_due(f->st, 300, 100, &ids, &n), 0);
    assert_int_equal(n, 4);
    assert_int_equal(ids[3], a);
    free(ids);

    assert_int_equal(store_domains_due(f->st, 99, 10, &ids, &n), 0);
    assert_int_equal(n, 0);
    assert_null(ids);
    assert_int_equal(store_domains_due(f->st, 1000, 0, &ids, &n), 0);
    assert_int_equal(n, 0);
    assert_null(ids);

    int64_t when = -1;
    assert_int_equal(store_next_due(f->st, &when), 0);
    assert_int_equal(when, 100);

    /* Clearing every timer: nothing due, nothing to wake up for. */
    const int64_t all[] = {a, b, c, d, e};
    for (size_t i = 0; i < 5; i++)
        schedule(f->st, all[i], 0);
    assert_int_equal(store_next_due(f->st, &when), 0);
    assert_int_equal(when, 0);
    assert_int_equal(store_domains_due(f->st, INT64_MAX, 10, &ids, &n), 0);
    assert_int_equal(n, 0);
    free(ids);
}

static void test_schedule(void **state)
{
    struct store_fixture *f = *state;
    int64_t id = add_domain(f->st, "s.example");
    struct store_event_in ev = ev_for("domain.renew_requested", "s.example");
    struct store_domain *d = NULL;

    int64_t ev0 = last_event(f->st);
    assert_int_equal(store_domain_schedule(f->st, id, 1111, 2222, &ev), 0);
    assert_int_equal(last_event(f->st), ev0 + 1);
    assert_int_equal(store_domain_get_by_id(f->st, id, &d), 0);
    assert_int_equal(d->next_attempt_at, 1111);
    assert_int_equal(d->next_renewal_at, 2222);
    store_domain_free(d);

    /* A 0 renewal time leaves it; a 0 attempt time clears the attempt. */
    assert_int_equal(store_domain_schedule(f->st, id, 0, 0, &ev), 0);
    assert_int_equal(store_domain_get_by_id(f->st, id, &d), 0);
    assert_int_equal(d->next_attempt_at, 0);
    assert_int_equal(d->next_renewal_at, 2222);
    store_domain_free(d);

    ev0 = last_event(f->st);
    assert_int_equal(store_domain_schedule(f->st, id + 100, 5, 0, &ev), -ENOENT);
    assert_int_equal(store_domain_schedule(f->st, id, -5, 0, &ev), -EINVAL);
    assert_int_equal(store_domain_schedule(f->st, id, 5, 0, NULL), -EINVAL);
    struct store_event_in bad = {.type = "x", .actor = "certd", .detail_json = "nope"};
    assert_int_equal(store_domain_schedule(f->st, id, 5, 0, &bad), -EINVAL);
    assert_int_equal(last_event(f->st), ev0);
    assert_int_equal(store_domain_get_by_id(f->st, id, &d), 0);
    assert_int_equal(d->next_attempt_at, 0); /* the refused event rolled the change back */
    store_domain_free(d);

    struct store_event_in rm = ev_for("domain.removed", "s.example");
    assert_int_equal(store_domain_remove(f->st, "s.example", false, &rm), 0);
    assert_int_equal(store_domain_schedule(f->st, id, 5, 0, &ev), -ENOENT);
}

/* Both queries walk the next_attempt_at index; the work done does not depend on how many
 * domains are not due. */
static void test_due_uses_index(void **state)
{
    struct store_fixture *f = *state;
    sqlite3 *db = store_sqlite_handle(f->st);
    static const char *const queries[] = {STORE_SQL_DOMAINS_DUE, STORE_SQL_NEXT_DUE};

    for (size_t i = 0; i < 2; i++) {
        char q[1024];
        sqlite3_stmt *s = NULL;
        snprintf(q, sizeof(q), "EXPLAIN QUERY PLAN %s", queries[i]);
        assert_int_equal(sqlite3_prepare_v2(db, q, -1, &s, NULL), SQLITE_OK);
        bool indexed = false;
        while (sqlite3_step(s) == SQLITE_ROW) {
            const char *detail = (const char *)sqlite3_column_text(s, 3);
            assert_null(strstr(detail, "SCAN domains")); /* no full scan ... */
            assert_null(strstr(detail, "TEMP B-TREE"));  /* ... and no sort */
            indexed |= strstr(detail, "USING INDEX domains_next_attempt_at") != NULL;
        }
        sqlite3_finalize(s);
        assert_true(indexed);
    }

    /* Measured, not only planned: VM steps of the due query with 10 and with 2010 domains
     * that are not due (in the future, or with no time) are the same. */
    int64_t due[3];
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof(name), "due%d.example", i);
        due[i] = add_domain(f->st, name);
        schedule(f->st, due[i], 100 + i);
    }
    int steps[2];
    for (int round = 0; round < 2; round++) {
        int extra = round == 0 ? 10 : 2000;
        sqlite3_stmt *ins = NULL;
        assert_int_equal(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db,
                                            "INSERT INTO domains (name, challenge, key_type, ca,"
                                            " next_attempt_at, created_at, updated_at)"
                                            " VALUES (?1, 'http-01', 'ec-p256', 'le', ?2, 1, 1)",
                                            -1, &ins, NULL),
                         SQLITE_OK);
        for (int i = 0; i < extra; i++) {
            char name[48];
            snprintf(name, sizeof(name), "r%d-%d.example", round, i);
            sqlite3_bind_text(ins, 1, name, -1, SQLITE_TRANSIENT);
            if (i % 2)
                sqlite3_bind_int64(ins, 2, 5000 + i);
            else
                sqlite3_bind_null(ins, 2);
            assert_int_equal(sqlite3_step(ins), SQLITE_DONE);
            sqlite3_reset(ins);
        }
        sqlite3_finalize(ins);
        assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);

        sqlite3_stmt *s = NULL;
        assert_int_equal(sqlite3_prepare_v2(db, STORE_SQL_DOMAINS_DUE, -1, &s, NULL), SQLITE_OK);
        sqlite3_bind_int64(s, 1, 1000);
        sqlite3_bind_int64(s, 2, 100);
        int rows = 0;
        while (sqlite3_step(s) == SQLITE_ROW)
            rows++;
        assert_int_equal(rows, 3);
        assert_int_equal(sqlite3_stmt_status(s, SQLITE_STMTSTATUS_FULLSCAN_STEP, 0), 0);
        assert_int_equal(sqlite3_stmt_status(s, SQLITE_STMTSTATUS_SORT, 0), 0);
        steps[round] = sqlite3_stmt_status(s, SQLITE_STMTSTATUS_VM_STEP, 0);
        sqlite3_finalize(s);
    }
    assert_int_equal(steps[0], steps[1]);

    int64_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(store_domains_due(f->st, 1000, 100, &ids, &n), 0);
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ids[i], due[i]);
    free(ids);
    int64_t when = 0;
    assert_int_equal(store_next_due(f->st, &when), 0);
    assert_int_equal(when, 100);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, store_fixture_setup, store_fixture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_due_order_and_limit),
        T(test_schedule),
        T(test_due_uses_index),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
