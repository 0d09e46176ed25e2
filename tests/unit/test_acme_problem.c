/* Problem documents from the CA (RFC 8555 §6.7) turned into what orders store and show. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "acme/client.h"

static void from_body(const char *body, long status, int64_t retry_after, struct acme_error *e)
{
    struct acme_http_response r = {.status = status, .body = (char *)body,
                                   .body_len = body ? strlen(body) : 0,
                                   .retry_after = retry_after};
    memset(e, 0, sizeof(*e));
    acme_error_from_response("pebble", "https://ca.test/x", &r, e);
}

static void test_problem_kept_verbatim(void **state)
{
    struct acme_error e;
    from_body("{\"type\":\"urn:ietf:params:acme:error:rateLimited\",\"detail\":\"too many\","
              "\"status\":429}",
              429, 3600, &e);
    assert_non_null(e.problem);
    assert_true(acme_error_is(&e, "rateLimited"));
    assert_false(acme_error_is(&e, "badNonce"));
    assert_int_equal(e.retry_after, 3600);
    assert_non_null(strstr(e.message, "too many"));
    assert_non_null(strstr(e.message, "urn:ietf:params:acme:error:rateLimited"));
    assert_int_equal(json_integer_value(json_object_get(e.problem, "status")), 429);
    acme_error_clear(&e);
    assert_null(e.problem);
}

static void test_subproblems(void **state)
{
    struct acme_error e;
    from_body("{\"type\":\"urn:ietf:params:acme:error:malformed\",\"detail\":\"bad names\","
              "\"subproblems\":[{\"type\":\"urn:ietf:params:acme:error:rejectedIdentifier\","
              "\"detail\":\"no IPs\",\"identifier\":{\"type\":\"dns\",\"value\":\"1.2.3.4\"}},"
              "{\"type\":\"urn:ietf:params:acme:error:caa\",\"detail\":\"CAA forbids\","
              "\"identifier\":{\"type\":\"dns\",\"value\":\"a.test\"}}]}",
              400, -1, &e);
    assert_true(acme_error_is(&e, "malformed"));
    assert_non_null(strstr(e.message, "1.2.3.4: no IPs"));
    assert_non_null(strstr(e.message, "a.test: CAA forbids"));
    assert_int_equal(json_array_size(json_object_get(e.problem, "subproblems")), 2);
    acme_error_clear(&e);
}

static void test_not_a_problem(void **state)
{
    struct acme_error e;
    from_body("<html>bad gateway</html>", 502, -1, &e);
    assert_null(e.problem);
    assert_non_null(strstr(e.message, "502"));
    assert_false(acme_error_is(&e, "badNonce"));
    from_body(NULL, 500, -1, &e);
    assert_null(e.problem);
    from_body("[1,2]", 400, -1, &e);
    assert_null(e.problem);
    /* a type outside the ACME namespace is not an ACME error type */
    from_body("{\"type\":\"about:blank\",\"detail\":\"x\"}", 400, -1, &e);
    assert_false(acme_error_is(&e, "blank"));
    acme_error_clear(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_problem_kept_verbatim),
        cmocka_unit_test(test_subproblems),
        cmocka_unit_test(test_not_a_problem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
