/* Tests for common/problem.c: the kind table, problem documents and their one-line description. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/problem.h"

static void test_table(void **state)
{
    static const struct {
        enum problem_kind kind;
        unsigned status;
        const char *slug;
    } want[] = {
        {PROBLEM_MALFORMED, 400, "malformed"},
        {PROBLEM_UNKNOWN_FIELD, 400, "unknown-field"},
        {PROBLEM_INVALID_FIELD, 400, "invalid-field"},
        {PROBLEM_INVALID_NAME, 400, "invalid-name"},
        {PROBLEM_UNAUTHORIZED, 401, "unauthorized"},
        {PROBLEM_FORBIDDEN, 403, "forbidden"},
        {PROBLEM_NOT_FOUND, 404, "not-found"},
        {PROBLEM_METHOD_NOT_ALLOWED, 405, "method-not-allowed"},
        {PROBLEM_NOT_ACCEPTABLE, 406, "not-acceptable"},
        {PROBLEM_CONFLICT, 409, "conflict"},
        {PROBLEM_GONE, 410, "gone"},
        {PROBLEM_PAYLOAD_TOO_LARGE, 413, "payload-too-large"},
        {PROBLEM_UNSUPPORTED_MEDIA, 415, "unsupported-media-type"},
        {PROBLEM_TOO_MANY_REQUESTS, 429, "too-many-requests"},
        {PROBLEM_INTERNAL, 500, "internal"},
        {PROBLEM_UNAVAILABLE, 503, "unavailable"},
        {PROBLEM_CA_ERROR, 502, "ca-error"},
    };

    assert_int_equal(sizeof(want) / sizeof(want[0]), PROBLEM_KIND_COUNT);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_int_equal(problem_status(want[i].kind), want[i].status);
        assert_string_equal(problem_slug(want[i].kind), want[i].slug);
        assert_non_null(problem_title(want[i].kind));
        assert_true(strlen(problem_title(want[i].kind)) > 0);
    }
    assert_string_equal(problem_title(PROBLEM_INVALID_NAME), "Invalid domain name");
    /* out of range falls back to internal */
    assert_int_equal(problem_status(PROBLEM_KIND_COUNT), 500);
    assert_string_equal(problem_slug((enum problem_kind)999), "internal");
}

static void test_new(void **state)
{
    json_t *doc =
        problem_new(PROBLEM_INVALID_NAME, "name '%s': %s", "a..example.com", "empty label");

    assert_non_null(doc);
    assert_int_equal(json_object_size(doc), 4);
    assert_string_equal(json_string_value(json_object_get(doc, "type")),
                        "urn:certd:problem:invalid-name");
    assert_string_equal(json_string_value(json_object_get(doc, "title")), "Invalid domain name");
    assert_true(json_is_integer(json_object_get(doc, "status")));
    assert_int_equal(json_integer_value(json_object_get(doc, "status")), 400);
    assert_string_equal(json_string_value(json_object_get(doc, "detail")),
                        "name 'a..example.com': empty label");
    json_decref(doc);

    doc = problem_new(PROBLEM_NOT_FOUND, NULL);
    assert_non_null(doc);
    assert_null(json_object_get(doc, "detail"));
    assert_int_equal(json_integer_value(json_object_get(doc, "status")), 404);
    assert_string_equal(json_string_value(json_object_get(doc, "type")),
                        "urn:certd:problem:not-found");
    json_decref(doc);
}

static void test_new_untrusted_detail(void **state)
{
    /* a name from a client that is not UTF-8 must not make the document vanish */
    json_t *doc = problem_new(PROBLEM_INVALID_NAME, "name 'x\xff.de': not valid UTF-8");
    char *dumped;

    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "detail")),
                        "name 'x\xef\xbf\xbd.de': not valid UTF-8");
    dumped = json_dumps(doc, 0);
    assert_non_null(dumped);
    free(dumped);
    json_decref(doc);

    /* long details are cut, not refused */
    char big[4000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    doc = problem_new(PROBLEM_MALFORMED, "%s", big);
    assert_non_null(doc);
    assert_int_equal(strlen(json_string_value(json_object_get(doc, "detail"))), 1023);
    json_decref(doc);
}

static void describe(const char *json, char *buf, size_t bufsz)
{
    json_error_t e;
    json_t *doc = json_loads(json, JSON_DECODE_ANY, &e);

    assert_non_null(doc);
    problem_describe(doc, buf, bufsz);
    json_decref(doc);
}

static void test_describe(void **state)
{
    char buf[512];

    describe("{\"type\":\"urn:certd:problem:conflict\",\"title\":\"Conflict\",\"status\":409,"
             "\"detail\":\"domain 'a.example' exists\"}",
             buf, sizeof(buf));
    assert_string_equal(buf, "domain 'a.example' exists");
    describe("{\"type\":\"urn:certd:problem:conflict\",\"title\":\"Conflict\",\"detail\":\"\"}",
             buf, sizeof(buf));
    assert_string_equal(buf, "Conflict");
    describe("{\"type\":\"urn:certd:problem:conflict\",\"detail\":17}", buf, sizeof(buf));
    assert_string_equal(buf, "urn:certd:problem:conflict");
    describe("{\"status\":502}", buf, sizeof(buf));
    assert_string_equal(buf, "error with status 502");
    describe("{}", buf, sizeof(buf));
    assert_string_equal(buf, "unrecognised error response");
    /* newlines from a server never break the line */
    describe("{\"detail\":\"line one\\nline two\\r\\t!\"}", buf, sizeof(buf));
    assert_string_equal(buf, "line one line two  !");
}

static void test_describe_garbage(void **state)
{
    char buf[64];

    problem_describe(NULL, buf, sizeof(buf));
    assert_string_equal(buf, "unrecognised error response");
    describe("\"just a string\"", buf, sizeof(buf));
    assert_string_equal(buf, "unrecognised error response");
    describe("[1, 2, {\"detail\": \"x\"}]", buf, sizeof(buf));
    assert_string_equal(buf, "unrecognised error response");
    describe("42", buf, sizeof(buf));
    assert_string_equal(buf, "unrecognised error response");
    describe("{\"detail\":\"top\",\"subproblems\":\"nope\"}", buf, sizeof(buf));
    assert_string_equal(buf, "top");
    describe("{\"detail\":\"top\",\"subproblems\":[1, \"x\", null, {\"identifier\": 5}]}", buf,
             sizeof(buf));
    assert_string_equal(buf, "top");
    /* no room: nothing written, nothing crashes */
    problem_describe(NULL, NULL, 0);
    buf[0] = 'z';
    problem_describe(NULL, buf, 0);
    assert_int_equal(buf[0], 'z');
    problem_describe(NULL, buf, 1);
    assert_string_equal(buf, "");
}

static void test_describe_subproblems(void **state)
{
    char buf[512];

    /* RFC 8555 §6.7.1 example shape */
    describe("{\"type\":\"urn:ietf:params:acme:error:malformed\","
             "\"detail\":\"Some of the identifiers requested were rejected\","
             "\"subproblems\":["
             "{\"type\":\"urn:ietf:params:acme:error:malformed\","
             "\"detail\":\"Invalid underscore in DNS name \\\"_example.org\\\"\","
             "\"identifier\":{\"type\":\"dns\",\"value\":\"_example.org\"}},"
             "{\"type\":\"urn:ietf:params:acme:error:rejectedIdentifier\","
             "\"detail\":\"This CA will not issue for \\\"example.net\\\"\","
             "\"identifier\":{\"type\":\"dns\",\"value\":\"example.net\"}},"
             "{\"type\":\"urn:ietf:params:acme:error:caa\"}]}",
             buf, sizeof(buf));
    assert_string_equal(buf, "Some of the identifiers requested were rejected; _example.org: "
                             "Invalid underscore in DNS name \"_example.org\"; example.net: "
                             "This CA will not issue for \"example.net\"; "
                             "urn:ietf:params:acme:error:caa");
}

static void test_describe_bounded(void **state)
{
    char buf[4096], small[24];
    json_t *doc = json_pack("{s:s}", "detail", "many"), *subs = json_array();

    for (int i = 0; i < 50; i++) {
        char name[32];
        snprintf(name, sizeof(name), "n%d.example", i);
        json_array_append_new(subs, json_pack("{s:s, s:{s:s, s:s}}", "detail", "bad", "identifier",
                                              "type", "dns", "value", name));
    }
    json_object_set_new(doc, "subproblems", subs);

    problem_describe(doc, buf, sizeof(buf));
    assert_non_null(strstr(buf, "; n9.example: bad"));
    assert_null(strstr(buf, "n10.example"));
    assert_non_null(strstr(buf, "; and 40 more"));

    problem_describe(doc, small, sizeof(small));
    assert_int_equal(strlen(small), sizeof(small) - 1);
    assert_string_equal(small, "many; n0.example: bad; ");

    json_decref(doc);

    /* a cut never leaves half a UTF-8 sequence: "ab" + two octets of U+00FC fit in 5 only
     * partly */
    describe("{\"detail\":\"ab\xc3\xbc\"}", small, 4);
    assert_string_equal(small, "ab");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_new),
        cmocka_unit_test(test_new_untrusted_detail),
        cmocka_unit_test(test_describe),
        cmocka_unit_test(test_describe_garbage),
        cmocka_unit_test(test_describe_subproblems),
        cmocka_unit_test(test_describe_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
