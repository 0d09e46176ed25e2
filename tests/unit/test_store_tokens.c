/* API tokens in the store: add, get, list, revoke (kept, with an event), touch, uniqueness of
 * live names, and that what is stored is exactly what was given (no secret column exists). */
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

static const struct store_event_in ev = {.type = "token.created", .actor = "test"};

static struct store_token sample(const char *id, const char *name)
{
    return (struct store_token){.id = (char *)id,
                                .name = (char *)name,
                                .role = TOKEN_ROLE_DEPLOYER,
                                .scope_json = "[\"a.example.com\",\"*.shop.example.com\"]",
                                .salt = "00112233445566778899aabbccddeeff",
                                .hash = "abcdef",
                                .expires_at = 2000000000};
}

static void test_add_get_list(void **state)
{
    struct store_fixture *f = *state;
    struct store_token t = sample("AAAAAAAAAAAA", "web1");
    assert_int_equal(store_token_add(f->st, &t, &ev), 0);
    struct store_token u = sample("BBBBBBBBBBBB", "web2");
    u.scope_json = NULL;
    u.role = TOKEN_ROLE_READER;
    u.expires_at = 0;
    assert_int_equal(store_token_add(f->st, &u, &ev), 0);

    struct store_token *got = NULL;
    assert_int_equal(store_token_get(f->st, "AAAAAAAAAAAA", &got), 0);
    assert_string_equal(got->name, "web1");
    assert_string_equal(got->role, "deployer");
    assert_string_equal(got->scope_json, t.scope_json);
    assert_string_equal(got->salt, t.salt);
    assert_string_equal(got->hash, "abcdef");
    assert_int_equal(got->expires_at, 2000000000);
    assert_int_equal(got->revoked_at, 0);
    assert_int_equal(got->last_used_at, 0);
    assert_true(got->created_at > 0);
    store_token_free(got);

    assert_int_equal(store_token_get(f->st, "CCCCCCCCCCCC", &got), -ENOENT);
    assert_null(got);

    struct store_token **list = NULL;
    size_t n = 0;
    assert_int_equal(store_token_list(f->st, &list, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0]->id, "AAAAAAAAAAAA");
    assert_string_equal(list[1]->id, "BBBBBBBBBBBB");
    assert_null(list[1]->scope_json);
    assert_int_equal(list[1]->expires_at, 0);
    store_token_list_free(list, n);

    /* one event per add, in the same transaction */
    struct store_event **evs = NULL;
    assert_int_equal(store_event_list(f->st, 0, 10, &evs, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(evs[0]->type, "token.created");
    store_event_list_free(evs, n);
}

static void test_refused(void **state)
{
    struct store_fixture *f = *state;
    struct store_token t = sample("AAAAAAAAAAAA", "web1");
    t.role = "root";
    assert_int_equal(store_token_add(f->st, &t, &ev), -EINVAL);
    t = sample("AAAAAAAAAAAA", "web1");
    t.scope_json = "{\"a\":1}";
    assert_int_equal(store_token_add(f->st, &t, &ev), -EINVAL);
    t.scope_json = "[1]";
    assert_int_equal(store_token_add(f->st, &t, &ev), -EINVAL);
    t = sample("AAAAAAAAAAAA", "");
    assert_int_equal(store_token_add(f->st, &t, &ev), -EINVAL);
    t = sample("AAAAAAAAAAAA", "web1");
    t.hash = NULL;
    assert_int_equal(store_token_add(f->st, &t, &ev), -EINVAL);
    /* a bad event fails the whole add */
    t = sample("AAAAAAAAAAAA", "web1");
    struct store_event_in bad = {.type = "token.created"};
    assert_int_equal(store_token_add(f->st, &t, &bad), -EINVAL);
    struct store_token *got = NULL;
    assert_int_equal(store_token_get(f->st, "AAAAAAAAAAAA", &got), -ENOENT);
}

static void test_unique_and_revoke(void **state)
{
    struct store_fixture *f = *state;
    struct store_token t = sample("AAAAAAAAAAAA", "web1");
    assert_int_equal(store_token_add(f->st, &t, &ev), 0);
    struct store_token dup_name = sample("BBBBBBBBBBBB", "web1");
    assert_int_equal(store_token_add(f->st, &dup_name, &ev), -EEXIST);
    struct store_token dup_id = sample("AAAAAAAAAAAA", "web9");
    assert_int_equal(store_token_add(f->st, &dup_id, &ev), -EEXIST);

    struct store_event_in rev = {.type = "token.revoked", .actor = "test"};
    assert_int_equal(store_token_revoke(f->st, "AAAAAAAAAAAA", 1234, &rev), 0);
    assert_int_equal(store_token_revoke(f->st, "AAAAAAAAAAAA", 1300, &rev), -EALREADY);
    assert_int_equal(store_token_revoke(f->st, "ZZZZZZZZZZZZ", 1300, &rev), -ENOENT);
    struct store_token *got = NULL;
    assert_int_equal(store_token_get(f->st, "AAAAAAAAAAAA", &got), 0);
    assert_int_equal(got->revoked_at, 1234);
    store_token_free(got);

    /* the name is free again once its token is revoked */
    assert_int_equal(store_token_add(f->st, &dup_name, &ev), 0);

    size_t n = 0;
    struct store_event **evs = NULL;
    assert_int_equal(store_event_list(f->st, 0, 10, &evs, &n), 0);
    assert_int_equal(n, 3); /* created, revoked, created: the refused revokes wrote nothing */
    assert_string_equal(evs[1]->type, "token.revoked");
    store_event_list_free(evs, n);
}

static void test_touch(void **state)
{
    struct store_fixture *f = *state;
    struct store_token t = sample("AAAAAAAAAAAA", "web1");
    assert_int_equal(store_token_add(f->st, &t, &ev), 0);
    assert_int_equal(store_token_touch(f->st, "AAAAAAAAAAAA", 5555), 0);
    assert_int_equal(store_token_touch(f->st, "NOPENOPENOPE", 5555), -ENOENT);
    struct store_token *got = NULL;
    assert_int_equal(store_token_get(f->st, "AAAAAAAAAAAA", &got), 0);
    assert_int_equal(got->last_used_at, 5555);
    store_token_free(got);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, store_fixture_setup, store_fixture_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_add_get_list),
        T(test_refused),
        T(test_unique_and_revoke),
        T(test_touch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
