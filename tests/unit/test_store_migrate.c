/* Opening the store: migrations, refusal of newer schemas, rollback of a failed migration, file
 * modes and connection settings. */
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

#include "store/schema.h"
#include "store/store.h"
#include "store/store_internal.h"
#include "store_fixture.h"

/* The fixture (each test opens the store itself), plus the link test_symlink_refused makes. */
static int teardown(void **state)
{
    struct store_fixture *f = *state;
    char p[PATH_MAX + 64];
    snprintf(p, sizeof(p), "%s/link.db", f->dir);
    unlink(p);
    return store_fixture_teardown(state);
}

/* Opens the database with plain SQLite, as an administrator's sqlite3 shell would. */
static sqlite3 *raw_open(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                     SQLITE_OK);
    return db;
}

static void raw_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fail_msg("%s: %s", sql, msg ? msg : "?");
}

static int64_t raw_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

static void raw_text(sqlite3 *db, const char *sql, char *out, size_t outsz)
{
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    const unsigned char *t = sqlite3_column_text(s, 0);
    snprintf(out, outsz, "%s", t ? (const char *)t : "");
    sqlite3_finalize(s);
}

static int64_t table_count(sqlite3 *db, const char *name)
{
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'"
                                        " AND name = ?1",
                                        -1, &s, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return n;
}

static mode_t file_mode(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) < 0)
        fail_msg("stat %s: %s", path, strerror(errno));
    return sb.st_mode & 07777;
}

/* Reads a whole (small) file into a malloc'd buffer. */
static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    char *buf = malloc(1 << 20);
    assert_non_null(buf);
    *len = fread(buf, 1, 1 << 20, fp);
    assert_true(feof(fp));
    fclose(fp);
    return buf;
}

static void test_embedded_migrations_numbered(void **state)
{
    (void)state;
    assert_true(schema_migration_count >= 1);
    assert_int_equal(store_schema_latest(), (int)schema_migration_count);
    for (unsigned i = 0; i < schema_migration_count; i++) {
        assert_int_equal(schema_migrations[i].version, i + 1);
        assert_non_null(strstr(schema_migrations[i].sql, "CREATE") ? schema_migrations[i].sql
                                                                   : NULL);
    }
    assert_string_equal(schema_migrations[0].file, "0001_initial.sql");
}

static void test_fresh_db_reaches_latest(void **state)
{
    struct store_fixture *f = *state;
    struct store *st = NULL;
    char err[256] = "";
    char path[PATH_MAX + 64];

    /* With umask 0 SQLite alone would create 0644 files: the store must not rely on the umask. */
    mode_t old = umask(0);
    int ret = store_open(f->db, &st, err, sizeof(err));
    umask(old);
    assert_int_equal(ret, 0);
    assert_non_null(st);
    assert_string_equal(err, "");

    assert_int_equal(store_schema_version(st), store_schema_latest());

    sqlite3 *raw = raw_open(f->db);
    assert_int_equal(raw_int(raw, "PRAGMA user_version"), store_schema_latest());
    static const char *const tables[] = {"cas",    "accounts", "domains",      "domain_names",
                                         "orders", "events",   "private_keys", "certificates"};
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
        assert_int_equal(table_count(raw, tables[i]), 1);

    /* journal_mode is stored in the file, so another connection sees it. */
    char mode[16];
    raw_text(raw, "PRAGMA journal_mode", mode, sizeof(mode));
    assert_string_equal(mode, "wal");

    /* Both connections are open, so -wal and -shm exist now. */
    assert_int_equal(file_mode(f->db), 0600);
    snprintf(path, sizeof(path), "%s-wal", f->db);
    assert_int_equal(file_mode(path), 0600);
    snprintf(path, sizeof(path), "%s-shm", f->db);
    assert_int_equal(file_mode(path), 0600);
    sqlite3_close(raw);

    /* foreign_keys, synchronous and secure_delete are per connection: ask the store's own. */
    sqlite3 *db = store_sqlite_handle(st);
    assert_int_equal(raw_int(db, "PRAGMA foreign_keys"), 1);
    assert_int_equal(raw_int(db, "PRAGMA synchronous"), 2); /* FULL */
    assert_int_equal(raw_int(db, "PRAGMA secure_delete"), 1);
    assert_true(raw_int(db, "PRAGMA busy_timeout") >= 1000);
    /* ...and enforced, not merely reported. */
    int rc = sqlite3_exec(db,
                          "INSERT INTO domain_names (domain_id, position, name)"
                          " VALUES (4242, 0, 'orphan.example')",
                          NULL, NULL, NULL);
    assert_int_equal(rc & 0xff, SQLITE_CONSTRAINT);
    assert_int_equal(sqlite3_extended_errcode(db), SQLITE_CONSTRAINT_FOREIGNKEY);

    store_close(st);
}

static void test_reopen_is_noop(void **state)
{
    struct store_fixture *f = *state;
    struct store *st = NULL;
    char err[256];
    /* static: the schema text is past 10 KiB and grows with every migration. */
    static char schema1[65536], schema2[65536];
    const char *q = "SELECT group_concat(sql, ';') FROM (SELECT sql FROM sqlite_master"
                    " ORDER BY name)";

    assert_int_equal(store_open(f->db, &st, err, sizeof(err)), 0);
    struct store_event_in ev = {.type = "daemon.started", .actor = "certd"};
    int64_t id = 0;
    assert_int_equal(store_event_add(st, &ev, &id), 0);
    store_close(st);

    sqlite3 *raw = raw_open(f->db);
    raw_text(raw, q, schema1, sizeof(schema1));
    sqlite3_close(raw);

    assert_int_equal(store_open(f->db, &st, err, sizeof(err)), 0);
    assert_int_equal(store_schema_version(st), store_schema_latest());
    int64_t last = 0;
    assert_int_equal(store_event_last_id(st, &last), 0);
    assert_int_equal(last, id); /* the data survived, nothing re-created */
    store_close(st);

    raw = raw_open(f->db);
    raw_text(raw, q, schema2, sizeof(schema2));
    assert_int_equal(raw_int(raw, "PRAGMA user_version"), store_schema_latest());
    assert_int_equal(raw_int(raw, "SELECT COUNT(*) FROM events"), 1);
    sqlite3_close(raw);
    assert_string_equal(schema1, schema2);
    assert_true(strlen(schema1) > 100);
    assert_true(strlen(schema1) < sizeof(schema1) - 1); /* compared whole, not cut */
}

/* Schema 6 counts what a database already holds when it arrives, not only later writes. */
static void test_stats_counters_from_existing_rows(void **state)
{
    struct store_fixture *f = *state;
    char err[256] = "";
    assert_true(schema_migration_count >= 6);
    assert_string_equal(schema_migrations[5].file, "0006_stats_counters.sql");

    sqlite3 *raw = raw_open(f->db);
    raw_exec(raw, "PRAGMA foreign_keys = ON");
    for (unsigned i = 0; i < 5; i++)
        raw_exec(raw, schema_migrations[i].sql);
    raw_exec(
        raw,
        "PRAGMA user_version = 5;"
        "INSERT INTO domains (id, name, challenge, key_type, ca, status, next_renewal_at,"
        " created_at, updated_at) VALUES"
        " (1, 'a.example', 'http-01', 'ec-p256', 'le', 'active', 5000, 1, 1),"
        " (2, 'p.example', 'http-01', 'ec-p256', 'le', 'pending', NULL, 1, 1),"
        " (3, 'f.example', 'http-01', 'ec-p256', 'le', 'failed', 7000, 1, 1),"
        /* removed long ago, its renewal time and active certificate left behind */
        " (4, 'r.example', 'http-01', 'ec-p256', 'le', 'removed', 100, 1, 1),"
        " (5, 'b.example', 'http-01', 'ec-p256', 'le', 'active', 9000, 1, 1);"
        "INSERT INTO private_keys (id, domain_id, key_type, key_pem, public_key_sha256, status,"
        " created_at) VALUES (1, 1, 'ec-p256', 'K', 'aa', 'current', 1),"
        " (3, 3, 'ec-p256', 'K', 'cc', 'current', 1), (4, 4, 'ec-p256', 'K', 'dd', 'current', 1),"
        " (5, 5, 'ec-p256', 'K', 'ee', 'current', 1);"
        "INSERT INTO certificates (domain_id, key_id, serial, not_before, not_after, issuer,"
        " fingerprint_sha256, chain_pem, status, created_at) VALUES"
        " (1, 1, '01', 0, 10, 'CN=CA', 'ff', 'C', 'superseded', 1),"
        " (1, 1, '02', 0, 10, 'CN=CA', 'ff', 'C', 'active', 2),"
        " (3, 3, '03', 0, 10, 'CN=CA', 'ff', 'C', 'superseded', 1),"
        " (4, 4, '04', 0, 10, 'CN=CA', 'ff', 'C', 'active', 1),"
        " (5, 5, '05', 0, 10, 'CN=CA', 'ff', 'C', 'active', 1);");
    sqlite3_close(raw);

    struct store *st = NULL;
    assert_int_equal(store_open(f->db, &st, err, sizeof(err)), 0);
    struct store_stats s;
    assert_int_equal(store_stats(st, &s), 0);
    assert_int_equal(s.domains, 4);
    assert_int_equal(s.domains_pending, 1);
    assert_int_equal(s.domains_failed, 1);
    assert_int_equal(s.certificates_active, 2);
    assert_int_equal(s.next_renewal_at, 5000);

    /* ...and the counters go on from there. */
    struct store_event_in ev = {.type = "domain.removed", .domain = "a.example", .actor = "x"};
    assert_int_equal(store_domain_remove(st, "a.example", false, &ev), 0);
    assert_int_equal(store_stats(st, &s), 0);
    assert_int_equal(s.domains, 3);
    assert_int_equal(s.certificates_active, 1);
    assert_int_equal(s.next_renewal_at, 7000);
    store_close(st);
}

static void test_newer_schema_refused(void **state)
{
    struct store_fixture *f = *state;
    struct store *st = (struct store *)0x1;
    char err[256] = "";
    char path[PATH_MAX + 64];
    int newer = store_schema_latest() + 1;

    sqlite3 *raw = raw_open(f->db);
    raw_exec(raw, "CREATE TABLE future (x INTEGER); INSERT INTO future VALUES (7)");
    char sql[64];
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", newer);
    raw_exec(raw, sql);
    sqlite3_close(raw);
    chmod(f->db, 0600);

    size_t len1, len2;
    char *before = slurp(f->db, &len1);

    assert_int_equal(store_open(f->db, &st, err, sizeof(err)), -ENOTSUP);
    assert_null(st);
    char want[256];
    snprintf(want, sizeof(want),
             "database schema version %d is newer than this certd supports (%d); upgrade certd",
             newer, store_schema_latest());
    assert_string_equal(err, want);

    /* Untouched: same bytes, still in rollback-journal mode, no WAL created. */
    char *after = slurp(f->db, &len2);
    assert_int_equal(len1, len2);
    assert_memory_equal(before, after, len1);
    free(before);
    free(after);
    snprintf(path, sizeof(path), "%s-wal", f->db);
    assert_int_equal(access(path, F_OK), -1);

    raw = raw_open(f->db);
    assert_int_equal(raw_int(raw, "PRAGMA user_version"), newer);
    assert_int_equal(table_count(raw, "domains"), 0);
    sqlite3_close(raw);
}

static void test_failed_migration_rolled_back(void **state)
{
    struct store_fixture *f = *state;
    struct store *st = NULL;
    char err[256] = "";

    /* A table in the way of the last CREATE of 0001: everything before it must vanish too. */
    sqlite3 *raw = raw_open(f->db);
    raw_exec(raw, "CREATE TABLE events (x INTEGER)");
    sqlite3_close(raw);

    assert_int_equal(store_open(f->db, &st, err, sizeof(err)), -EIO);
    assert_null(st);
    assert_non_null(strstr(err, "0001_initial.sql"));
    assert_non_null(strstr(err, "events"));

    raw = raw_open(f->db);
    assert_int_equal(raw_int(raw, "PRAGMA user_version"), 0);
    assert_int_equal(table_count(raw, "cas"), 0);
    assert_int_equal(table_count(raw, "domains"), 0);
    assert_int_equal(table_count(raw, "private_keys"), 0);
    assert_int_equal(table_count(raw, "events"), 1);
    assert_int_equal(raw_int(raw, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index'"), 0);
    sqlite3_close(raw);
}

static void test_existing_file_tightened(void **state)
{
    struct store_fixture *f = *state;
    struct store *st = NULL;
    char err[256];

    FILE *fp = fopen(f->db, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(chmod(f->db, 0644), 0);

    assert_int_equal(store_open(f->db, &st, err, sizeof(err)), 0);
    assert_int_equal(file_mode(f->db), 0600);
    assert_int_equal(store_schema_version(st), store_schema_latest());
    store_close(st);
}

static void test_symlink_refused(void **state)
{
    struct store_fixture *f = *state;
    struct store *st = NULL;
    char err[256] = "";
    char link[PATH_MAX + 64];

    snprintf(link, sizeof(link), "%s/link.db", f->dir);
    assert_int_equal(symlink(f->db, link), 0);
    assert_int_equal(store_open(link, &st, err, sizeof(err)), -ELOOP);
    assert_null(st);
    assert_non_null(strstr(err, "symbolic link"));
    assert_int_equal(access(f->db, F_OK), -1); /* the target was not created through the link */
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, store_fixture_setup_dir, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embedded_migrations_numbered),
        T(test_fresh_db_reaches_latest),
        T(test_reopen_is_noop),
        T(test_stats_counters_from_existing_rows),
        T(test_newer_schema_refused),
        T(test_failed_migration_rolled_back),
        T(test_existing_file_tightened),
        T(test_symlink_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
