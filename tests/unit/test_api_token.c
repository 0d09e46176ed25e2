/* Token format and hashing, and the failed-authentication limiter. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "api/token.h"

static void test_generate_parse_match(void **state)
{
    struct token_new a, b;
    assert_int_equal(token_generate(&a), 0);
    assert_int_equal(token_generate(&b), 0);
    assert_int_equal(strlen(a.text), TOKEN_LEN);
    assert_int_equal(strncmp(a.text, "certd_", 6), 0);
    assert_int_equal(strncmp(a.text + 6, a.id, TOKEN_ID_LEN), 0);
    assert_int_equal(a.text[6 + TOKEN_ID_LEN], '_');
    assert_int_equal(strlen(a.salt_hex), 32);
    assert_int_equal(strlen(a.hash_hex), 64);
    /* random: two tokens share nothing */
    assert_string_not_equal(a.id, b.id);
    assert_string_not_equal(a.text, b.text);
    assert_string_not_equal(a.salt_hex, b.salt_hex);
    /* the stored parts never contain the secret */
    assert_null(strstr(a.hash_hex, a.text + 19));

    char id[TOKEN_ID_LEN + 1], secret[TOKEN_SECRET_LEN + 1];
    assert_int_equal(token_parse(a.text, id, secret), 0);
    assert_string_equal(id, a.id);
    assert_int_equal(strlen(secret), TOKEN_SECRET_LEN);
    assert_true(token_secret_matches(secret, a.salt_hex, a.hash_hex));
    /* the other token's hash, or another salt, does not match */
    assert_false(token_secret_matches(secret, b.salt_hex, b.hash_hex));
    assert_false(token_secret_matches(secret, b.salt_hex, a.hash_hex));
    /* one changed character of the secret does not match */
    secret[10] = secret[10] == 'A' ? 'B' : 'A';
    assert_false(token_secret_matches(secret, a.salt_hex, a.hash_hex));
    /* malformed stored values never match */
    assert_false(token_secret_matches(secret, "zz", a.hash_hex));
    assert_false(token_secret_matches(secret, a.salt_hex, "abcd"));
    assert_false(token_secret_matches(NULL, a.salt_hex, a.hash_hex));

    token_new_wipe(&a);
    static const struct token_new zero;
    assert_memory_equal(&a, &zero, sizeof(zero));
    token_new_wipe(&b);
}

/* The hash is SHA-256 over the 16 salt bytes followed by the secret's characters. */
static void test_hash_definition(void **state)
{
    const char *salt_hex = "000102030405060708090a0b0c0d0e0f";
    const char *secret = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ";
    uint8_t buf[16 + 43], digest[32];
    for (int i = 0; i < 16; i++)
        buf[i] = (uint8_t)i;
    memcpy(buf + 16, secret, 43);
    assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, buf, sizeof(buf), digest), 0);
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    assert_true(token_secret_matches(secret, salt_hex, hex));
}

static void test_parse_refuses(void **state)
{
    char id[TOKEN_ID_LEN + 1], secret[TOKEN_SECRET_LEN + 1];
    const char *good = "certd_AbCdEfGh_-12_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ";
    assert_int_equal(strlen(good), TOKEN_LEN);
    assert_int_equal(token_parse(good, id, secret), 0);
    assert_string_equal(id, "AbCdEfGh_-12"); /* '_' inside the id: split by position */
    assert_string_equal(secret, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ");

    static const char *const bad[] = {
        "",
        "certd_",
        "certd_AbCdEfGh_-12_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP",   /* short */
        "certd_AbCdEfGh_-12_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQR", /* long */
        "certx_AbCdEfGh_-12_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ",  /* prefix */
        "certd_AbCdEfGh_-12.abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ",  /* separator */
        "certd_AbCdEfGh+-12_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ",  /* not base64url */
        "certd_AbCdEfGh_-12_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP=",  /* padding */
        "certd_AbCdEfGh_-12_abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOP",  /* space */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(token_parse(bad[i], id, secret), -EINVAL);
        assert_string_equal(id, "");
    }
    assert_int_equal(token_parse(NULL, id, secret), -EINVAL);
}

static void test_limiter(void **state)
{
    struct auth_limiter *l = auth_limiter_new();
    assert_non_null(l);
    unsigned retry = 0;
    int64_t t = 1000000;
    for (int i = 0; i < AUTH_FAIL_BURST; i++) {
        assert_true(auth_limiter_allowed(l, "192.0.2.1", t, &retry));
        /* only the failure that uses up the last attempt reports the lock-out */
        assert_int_equal(auth_limiter_fail(l, "192.0.2.1", t), i == AUTH_FAIL_BURST - 1);
    }
    assert_false(auth_limiter_allowed(l, "192.0.2.1", t, &retry));
    assert_int_equal(retry, AUTH_FAIL_REFILL_MS / 1000);
    /* another address is not affected */
    assert_true(auth_limiter_allowed(l, "192.0.2.2", t, NULL));
    /* more failures while locked out do not report again */
    assert_false(auth_limiter_fail(l, "192.0.2.1", t));
    /* one attempt comes back after a refill period */
    assert_false(auth_limiter_allowed(l, "192.0.2.1", t + AUTH_FAIL_REFILL_MS - 1, &retry));
    assert_int_equal(retry, 1);
    assert_true(auth_limiter_allowed(l, "192.0.2.1", t + AUTH_FAIL_REFILL_MS, NULL));
    assert_true(auth_limiter_fail(l, "192.0.2.1", t + AUTH_FAIL_REFILL_MS));
    assert_false(auth_limiter_allowed(l, "192.0.2.1", t + AUTH_FAIL_REFILL_MS, NULL));
    /* and all of them after a long pause */
    int64_t later = t + 10LL * 60 * 1000;
    for (int i = 0; i < AUTH_FAIL_BURST - 1; i++)
        assert_false(auth_limiter_fail(l, "192.0.2.1", later));
    assert_true(auth_limiter_allowed(l, "192.0.2.1", later, NULL));

    /* IPv6 counts per /64 */
    for (int i = 0; i < AUTH_FAIL_BURST; i++) {
        char a[64];
        snprintf(a, sizeof(a), "2001:db8:1:2::%x", i + 1);
        auth_limiter_fail(l, a, t);
    }
    assert_false(auth_limiter_allowed(l, "2001:db8:1:2:ffff::9", t, NULL));
    assert_true(auth_limiter_allowed(l, "2001:db8:1:3::1", t, NULL));
    /* an IPv4-mapped address is the IPv4 address */
    for (int i = 0; i < AUTH_FAIL_BURST; i++)
        auth_limiter_fail(l, "198.51.100.7", t);
    assert_false(auth_limiter_allowed(l, "::ffff:198.51.100.7", t, NULL));
    assert_true(auth_limiter_allowed(l, "::ffff:198.51.100.8", t, NULL));

    /* a locked-out address stays locked out while a few hundred others fail now and then */
    for (int i = 0; i < AUTH_FAIL_BURST; i++)
        auth_limiter_fail(l, "203.0.113.5", t);
    for (int i = 0; i < 300; i++) {
        char a[64];
        snprintf(a, sizeof(a), "172.16.%d.%d", i / 200, i % 200 + 1);
        auth_limiter_fail(l, a, t);
    }
    assert_false(auth_limiter_allowed(l, "203.0.113.5", t, NULL));
    assert_true(auth_limiter_allowed(l, "172.16.0.1", t, NULL)); /* one failure is not a lock */

    /* the table is bounded: many addresses evict the least recent, never grow */
    for (int i = 0; i < AUTH_LIMITER_SLOTS * 2; i++) {
        char a[64];
        snprintf(a, sizeof(a), "10.%d.%d.1", (i >> 8) & 0xff, i & 0xff);
        auth_limiter_fail(l, a, t + 1 + i);
    }
    auth_limiter_free(l);
    auth_limiter_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_parse_match),
        cmocka_unit_test(test_hash_definition),
        cmocka_unit_test(test_parse_refuses),
        cmocka_unit_test(test_limiter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
