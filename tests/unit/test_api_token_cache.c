/* The token cache in front of the store: what it hands out equals the row, a revoke or a new
 * token is seen at the next lookup, entries age out, corrupt rows are refused, and a token's
 * last use is written at most once per interval. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "api/token.h"
#include "api/token_cache.h"
#include "store/store_internal.h"
#include "store_fixture.h"

static const struct store_event_in ev = {.type = "token.created", .actor = "test"};
static const struct store_event_in rev = {.type = "token.revoked", .actor = "test"};

static void add_token(struct store *st, struct token_new *tok, const char *name,
                      const char *scope_json)
{
    assert_int_equal(token_generate(tok), 0);
    struct store_token row = {.id = tok->id,
                              .name = (char *)name,
                              .role = TOKEN_ROLE_DEPLOYER,
                              .scope_json = (char *)scope_json,
                              .salt = tok->salt_hex,
                              .hash = tok->hash_hex,
                              .expires_at = 2000000000};
    assert_int_equal(store_token_add(st, &row, &ev), 0);
}

static void test_get_revoke_add(void **state)
{
    struct store_fixture *f = *state;
    struct token_cache *c = token_cache_new();
    struct token_new tok;
    struct token_view v;
    char id[TOKEN_ID_LEN + 1], secret[TOKEN_SECRET_LEN + 1];
    assert_non_null(c);

    assert_int_equal(token_cache_get(c, f->st, "AAAAAAAAAAAA", 1000, &v), -ENOENT);
    assert_int_equal(token_cache_get(c, f->st, "short", 1000, &v), -ENOENT);

    add_token(f->st, &tok, "a-rather-long-token-name-longer-than-thirty-two-bytes",
              "[\"a.example.com\",\"*.shop.example.com\"]");
    assert_int_equal(token_parse(tok.text, id, secret), 0);
    for (int round = 0; round < 2; round++) { /* a read from the store, then from the cache */
        assert_int_equal(token_cache_get(c, f->st, tok.id, 1000 + round, &v), 0);
        assert_string_equal(v.id, tok.id);
        assert_string_equal(v.name, "a-rather-long-token-name-longer-");
        assert_string_equal(v.role, TOKEN_ROLE_DEPLOYER);
        assert_int_equal(v.expires_at, 2000000000);
        assert_int_equal(v.revoked_at, 0);
        assert_int_equal(v.scope_count, 2);
        assert_string_equal(v.scope[0], "a.example.com");
        assert_string_equal(v.scope[1], "*.shop.example.com");
        assert_true(token_secret_matches(secret, v.salt, v.hash));
        token_view_clear(&v);
        assert_null(v.scope);
    }

    /* a revoke through the store is seen at once, not after the entry ages out */
    assert_int_equal(store_token_revoke(f->st, tok.id, 1700000000, &rev), 0);
    assert_int_equal(token_cache_get(c, f->st, tok.id, 1002, &v), 0);
    assert_int_equal(v.revoked_at, 1700000000);
    token_view_clear(&v);

    /* an unscoped token */
    struct token_new other;
    add_token(f->st, &other, "other", NULL);
    assert_int_equal(token_cache_get(c, f->st, other.id, 1003, &v), 0);
    assert_int_equal(v.scope_count, 0);
    assert_null(v.scope);
    token_view_clear(&v);

    token_new_wipe(&tok);
    token_new_wipe(&other);
    token_cache_free(c);
    token_cache_free(NULL);
}

/* Rows changed behind the store's generation (what another node sharing the database could
 * do) are read again once the entry is older than the TTL. */
static void test_ttl(void **state)
{
    struct store_fixture *f = *state;
    struct token_cache *c = token_cache_new();
    struct token_new tok;
    struct token_view v;
    add_token(f->st, &tok, "web", NULL);
    assert_int_equal(token_cache_get(c, f->st, tok.id, 5000, &v), 0);
    token_view_clear(&v);

    char sql[128];
    snprintf(sql, sizeof(sql), "UPDATE tokens SET role = 'reader' WHERE id = '%s'", tok.id);
    assert_int_equal(sqlite3_exec(f->st->db, sql, NULL, NULL, NULL), SQLITE_OK);

    assert_int_equal(token_cache_get(c, f->st, tok.id, 5000 + TOKEN_CACHE_TTL_MS - 1, &v), 0);
    assert_string_equal(v.role, TOKEN_ROLE_DEPLOYER); /* still the cached row */
    token_view_clear(&v);
    assert_int_equal(token_cache_get(c, f->st, tok.id, 5000 + TOKEN_CACHE_TTL_MS, &v), 0);
    assert_string_equal(v.role, TOKEN_ROLE_READER);
    token_view_clear(&v);
    /* a monotonic clock that went backwards (it does not, but) never extends an entry */
    assert_int_equal(token_cache_get(c, f->st, tok.id, 10, &v), 0);
    token_view_clear(&v);

    token_new_wipe(&tok);
    token_cache_free(c);
}

static void test_corrupt_rows_refused(void **state)
{
    struct store_fixture *f = *state;
    struct token_cache *c = token_cache_new();
    struct token_new tok;
    struct token_view v;
    char sql[160];
    add_token(f->st, &tok, "web", NULL);

    static const char *const bad[] = {
        "scope_json = '[]'",         /* would read as unscoped */
        "scope_json = '[\"a\", 1]'", /* not all strings */
        "scope_json = '{}'",
        "hash = 'abcdef'", /* not a SHA-256 in hex */
        "salt = '00'",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(sql, sizeof(sql), "UPDATE tokens SET %s WHERE id = '%s'", bad[i], tok.id);
        assert_int_equal(sqlite3_exec(f->st->db, sql, NULL, NULL, NULL), SQLITE_OK);
        /* each lookup is far apart: the TTL, not the generation, lets the cache see the edit */
        assert_int_equal(
            token_cache_get(c, f->st, tok.id, (int64_t)(i + 1) * 10 * TOKEN_CACHE_TTL_MS, &v),
            -EINVAL);
        assert_null(v.scope);
        char name[16];
        snprintf(name, sizeof(name), "web%zu", i);
        add_token(f->st, &tok, name, NULL); /* a fresh good row for the next case */
    }
    token_new_wipe(&tok);
    token_cache_free(c);
}

static void test_touch_due(void **state)
{
    struct store_fixture *f = *state;
    struct token_cache *c = token_cache_new();
    struct token_new tok;
    struct token_view v;
    add_token(f->st, &tok, "web", NULL);

    /* not cached: always due (the caller's write is cheap next to an unknown state) */
    assert_true(token_cache_touch_due(c, tok.id, 1000, 60));
    assert_int_equal(token_cache_get(c, f->st, tok.id, 1, &v), 0);
    token_view_clear(&v);
    /* never used: due once, then not again within the interval */
    assert_true(token_cache_touch_due(c, tok.id, 1000, 60));
    assert_false(token_cache_touch_due(c, tok.id, 1000, 60));
    assert_false(token_cache_touch_due(c, tok.id, 1059, 60));
    assert_true(token_cache_touch_due(c, tok.id, 1060, 60));

    /* the row's own last_used_at counts after a fresh read */
    assert_int_equal(store_token_touch(f->st, tok.id, 5000), 0);
    assert_int_equal(token_cache_get(c, f->st, tok.id, 1 + TOKEN_CACHE_TTL_MS, &v), 0);
    token_view_clear(&v);
    assert_false(token_cache_touch_due(c, tok.id, 5030, 60));
    assert_true(token_cache_touch_due(c, tok.id, 5060, 60));

    token_new_wipe(&tok);
    token_cache_free(c);
}

/* Many tokens: more than one set's ways, all served right (evictions included). */
static void test_many_tokens(void **state)
{
    struct store_fixture *f = *state;
    struct token_cache *c = token_cache_new();
    enum { N = 600 };
    static struct token_new toks[N];
    struct token_view v;
    char name[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "host%d", i);
        add_token(f->st, &toks[i], name, NULL);
    }
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < N; i++) {
            char id[TOKEN_ID_LEN + 1], secret[TOKEN_SECRET_LEN + 1];
            assert_int_equal(token_cache_get(c, f->st, toks[i].id, 100 + pass, &v), 0);
            snprintf(name, sizeof(name), "host%d", i);
            assert_string_equal(v.name, name);
            assert_int_equal(token_parse(toks[i].text, id, secret), 0);
            assert_true(token_secret_matches(secret, v.salt, v.hash));
            token_view_clear(&v);
        }
    }
    for (int i = 0; i < N; i++)
        token_new_wipe(&toks[i]);
    token_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_revoke_add, store_fixture_setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_ttl, store_fixture_setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_rows_refused, store_fixture_setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_touch_due, store_fixture_setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_many_tokens, store_fixture_setup,
                                        store_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
