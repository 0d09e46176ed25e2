/* The store's prepared-statement cache: a statement is prepared once and reused by later calls,
 * a nested use of the same SQL gets a statement of its own, a failed statement is reusable,
 * nothing stays active after a release, the cache is bounded, and store_close finalizes it. */
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
#define TWO_ROWS "SELECT 1 UNION ALL SELECT 2"

/* The statements open on DB whose text is SQL, and the last of them in *FOUND. */
static int stmts_with_sql(sqlite3 *db, const char *sql, sqlite3_stmt **found)
{
    int n = 0;
    for (sqlite3_stmt *s = sqlite3_next_stmt(db, NULL); s; s = sqlite3_next_stmt(db, s)) {
        if (strcmp(sqlite3_sql(s), sql) == 0) {
            n++;
            if (found)
                *found = s;
        }
    }
    return n;
}

static int stmts_open(sqlite3 *db)
{
    int n = 0;
    for (sqlite3_stmt *s = sqlite3_next_stmt(db, NULL); s; s = sqlite3_next_stmt(db, s))
        n++;
    return n;
}

/* Between store calls no statement may be mid-run (it would hold a read snapshot) and no
 * transaction may be open. */
static void assert_idle(sqlite3 *db)
{
    for (sqlite3_stmt *s = sqlite3_next_stmt(db, NULL); s; s = sqlite3_next_stmt(db, s))
        assert_int_equal(sqlite3_stmt_busy(s), 0);
    assert_true(sqlite3_get_autocommit(db));
}

static int64_t add_domain(struct store *st, const char *name)
{
    struct store_domain d = {
        .name = (char *)name, .challenge = "http-01", .key_type = "ec-p256", .ca = "le"};
    struct store_key k = {.pem = PEM, .public_key_sha256 = "f00d"};
    struct store_event_in ev = {.type = "domain.added", .domain = name, .actor = "certd"};
    struct store_domain *out = NULL;
    assert_int_equal(store_domain_add(st, &d, &k, &ev, &out), 0);
    int64_t id = out->id;
    store_domain_free(out);
    return id;
}

static void test_reused_across_calls(void **state)
{
    struct store_fixture *f = *state;
    sqlite3 *db = store_sqlite_handle(f->st);
    int64_t id = add_domain(f->st, "a.example");

    for (int round = 0; round < 3; round++) {
        int64_t *ids = NULL;
        size_t n = 0;
        assert_int_equal(store_domains_due(f->st, INT64_MAX, 10, &ids, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(ids[0], id);
        free(ids);
        assert_idle(db);
    }
    /* One statement served all three calls: it is still there, and it ran three times. */
    sqlite3_stmt *due = NULL;
    assert_int_equal(stmts_with_sql(db, STORE_SQL_DOMAINS_DUE, &due), 1);
    assert_int_equal(sqlite3_stmt_status(due, SQLITE_STMTSTATUS_RUN, 0), 3);

    /* Keyed by the text, not the pointer: a copy of the SQL gets the same statement, unbound. */
    char copy[] = STORE_SQL_DOMAINS_DUE;
    sqlite3_stmt *s = NULL;
    pthread_mutex_lock(&f->st->lock);
    assert_int_equal(store_prepare(f->st, copy, &s), 0);
    assert_ptr_equal(s, due);
    /* Its bindings were cleared: with ?1 (the time) NULL no row matches; INT64_MAX, bound by
     * the last call, would match the domain above. */
    assert_int_equal(sqlite3_bind_int64(s, 2, 10), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_DONE);
    store_release(f->st, s);
    pthread_mutex_unlock(&f->st->lock);
    assert_idle(db);
}

static void test_nested_use(void **state)
{
    struct store_fixture *f = *state;
    sqlite3 *db = store_sqlite_handle(f->st);
    sqlite3_stmt *outer = NULL, *inner = NULL, *again = NULL;

    pthread_mutex_lock(&f->st->lock);
    assert_int_equal(store_prepare(f->st, TWO_ROWS, &outer), 0);
    assert_int_equal(sqlite3_step(outer), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(outer, 0), 1);

    /* The cached statement is out and on a row: the same SQL gets another statement. */
    assert_int_equal(store_prepare(f->st, TWO_ROWS, &inner), 0);
    assert_ptr_not_equal(inner, outer);
    assert_int_equal(stmts_with_sql(db, TWO_ROWS, NULL), 2);
    assert_int_equal(sqlite3_step(inner), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(inner, 0), 1);
    assert_int_equal(sqlite3_step(inner), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(inner, 0), 2);
    /* The outer one's position is its own. */
    assert_int_equal(sqlite3_step(outer), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(outer, 0), 2);

    /* The nested one is finalized on release, the cached one kept, reset. */
    store_release(f->st, inner);
    assert_int_equal(stmts_with_sql(db, TWO_ROWS, NULL), 1);
    assert_int_equal(sqlite3_stmt_busy(outer), 1);
    store_release(f->st, outer);
    assert_int_equal(sqlite3_stmt_busy(outer), 0);

    assert_int_equal(store_prepare(f->st, TWO_ROWS, &again), 0);
    assert_ptr_equal(again, outer);
    assert_int_equal(sqlite3_step(again), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(again, 0), 1);
    store_release(f->st, again);
    pthread_mutex_unlock(&f->st->lock);
    assert_idle(db);
}

/* Statements nested through the store itself: listing domains loads each one's alt names while
 * the list's statement is on a row; both come back idle and serve the next listing. */
static void test_nested_through_store(void **state)
{
    struct store_fixture *f = *state;
    sqlite3 *db = store_sqlite_handle(f->st);
    add_domain(f->st, "a.example");
    add_domain(f->st, "b.example");

    for (int round = 0; round < 2; round++) {
        struct store_domain **list = NULL;
        size_t n = 0;
        assert_int_equal(store_domain_list(f->st, NULL, 10, false, &list, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(list[1]->name, "b.example");
        store_domain_list_free(list, n);
        assert_idle(db);
    }
}

static void test_failed_statement_reused(void **state)
{
    struct store_fixture *f = *state;
    sqlite3 *db = store_sqlite_handle(f->st);
    struct store_event_in ev = {.type = "token.created", .actor = "test"};
    struct store_token t = {.id = "AAAAAAAAAAAA",
                            .name = "web1",
                            .role = TOKEN_ROLE_READER,
                            .salt = "00112233445566778899aabbccddeeff",
                            .hash = "abcdef"};

    assert_int_equal(store_token_add(f->st, &t, &ev), 0);
    /* The same id again: the cached INSERT fails on the primary key... */
    t.name = "web2";
    assert_int_equal(store_token_add(f->st, &t, &ev), -EEXIST);
    assert_idle(db);
    /* ...and serves the next insert as if nothing happened. */
    t.id = "BBBBBBBBBBBB";
    assert_int_equal(store_token_add(f->st, &t, &ev), 0);
    assert_idle(db);

    struct store_token **list = NULL;
    size_t n = 0;
    assert_int_equal(store_token_list(f->st, &list, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[1]->name, "web2");
    store_token_list_free(list, n);

    /* A failed step inside a statement handed out directly: reset repeats the error, and the
     * release ignores it. */
    sqlite3_stmt *s = NULL;
    pthread_mutex_lock(&f->st->lock);
    assert_int_equal(store_prepare(f->st, "SELECT abs(-9223372036854775807 - ?1)", &s), 0);
    assert_int_equal(sqlite3_bind_int64(s, 1, 1), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ERROR); /* integer overflow */
    sqlite3_stmt *failed = s;
    store_release(f->st, s);
    assert_int_equal(store_prepare(f->st, "SELECT abs(-9223372036854775807 - ?1)", &s), 0);
    assert_ptr_equal(s, failed);
    assert_int_equal(sqlite3_bind_int64(s, 1, 0), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_true(sqlite3_column_int64(s, 0) == INT64_MAX);
    store_release(f->st, s);
    pthread_mutex_unlock(&f->st->lock);
    assert_idle(db);
}

static void test_bounded(void **state)
{
    struct store_fixture *f = *state;
    sqlite3 *db = store_sqlite_handle(f->st);
    enum { N = STORE_STMT_CACHE_MAX };
    static sqlite3_stmt *out[N];
    char sql[64];

    pthread_mutex_lock(&f->st->lock);
    /* More distinct texts than the cache holds, one at a time: the oldest make room. */
    for (int i = 0; i < N + 8; i++) {
        sqlite3_stmt *s = NULL;
        snprintf(sql, sizeof(sql), "SELECT %d", i);
        assert_int_equal(store_prepare(f->st, sql, &s), 0);
        store_release(f->st, s);
        assert_true(stmts_open(db) <= N);
    }
    assert_int_equal(f->st->stmt_count, N);
    assert_int_equal(stmts_with_sql(db, "SELECT 0", NULL), 0);
    assert_int_equal(stmts_with_sql(db, "SELECT 8", NULL), 1);

    /* Every slot out at once: one more statement is still handed out, outside the cache. */
    for (int i = 0; i < N; i++) {
        snprintf(sql, sizeof(sql), "SELECT %d", i + 8);
        assert_int_equal(store_prepare(f->st, sql, &out[i]), 0);
    }
    sqlite3_stmt *extra = NULL;
    assert_int_equal(store_prepare(f->st, "SELECT 'extra'", &extra), 0);
    assert_int_equal(stmts_open(db), N + 1);
    assert_int_equal(sqlite3_step(extra), SQLITE_ROW);
    store_release(f->st, extra);
    assert_int_equal(stmts_open(db), N);
    for (int i = 0; i < N; i++)
        store_release(f->st, out[i]);
    pthread_mutex_unlock(&f->st->lock);
    assert_idle(db);
}

/* SQLite re-prepares a cached statement by itself after the schema changed under it. */
static void test_schema_change(void **state)
{
    struct store_fixture *f = *state;
    sqlite3 *db = store_sqlite_handle(f->st);
    int64_t id = add_domain(f->st, "a.example");
    int64_t *ids = NULL;
    size_t n = 0;

    assert_int_equal(store_domains_due(f->st, INT64_MAX, 10, &ids, &n), 0);
    free(ids);
    assert_int_equal(
        sqlite3_exec(db, "CREATE INDEX t_extra ON domains (updated_at)", NULL, NULL, NULL),
        SQLITE_OK);
    assert_int_equal(store_domains_due(f->st, INT64_MAX, 10, &ids, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], id);
    free(ids);
    assert_int_equal(stmts_with_sql(db, STORE_SQL_DOMAINS_DUE, NULL), 1);
    assert_idle(db);
}

/* store_close finalizes the cache, so the connection really closes: the last connection in WAL
 * mode checkpoints and removes the -wal file (a connection kept open by a statement would not). */
static void test_close_finalizes(void **state)
{
    struct store_fixture *f = *state;
    char wal[PATH_MAX + 32];
    snprintf(wal, sizeof(wal), "%s-wal", f->db);

    add_domain(f->st, "a.example");
    int64_t when = 0;
    assert_int_equal(store_next_due(f->st, &when), 0);
    assert_true(when > 0);
    assert_true(f->st->stmt_count > 0);
    assert_int_equal(access(wal, F_OK), 0);
    store_close(f->st);
    f->st = NULL;
    assert_int_not_equal(access(wal, F_OK), 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, store_fixture_setup, store_fixture_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_reused_across_calls),     T(test_nested_use), T(test_nested_through_store),
        T(test_failed_statement_reused), T(test_bounded),    T(test_schema_change),
        T(test_close_finalizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
