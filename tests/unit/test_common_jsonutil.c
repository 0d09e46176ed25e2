/* Tests for common/jsonutil.c: RFC 3339 times, lossy strings and request-body field checks. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/jsonutil.h"

static const struct {
    int64_t t;
    const char *s;
} times[] = {
    {1795742797, "2026-11-27T01:26:37Z"},   {0, "1970-01-01T00:00:00Z"},
    {-1, "1969-12-31T23:59:59Z"},           {951782400, "2000-02-29T00:00:00Z"},
    {1709251199, "2024-02-29T23:59:59Z"},   {4107542400, "2100-03-01T00:00:00Z"},
    {-62135596800, "0001-01-01T00:00:00Z"}, {253402300799, "9999-12-31T23:59:59Z"},
    {-62167219200, "0000-01-01T00:00:00Z"},
};

static void test_time_format(void **state)
{
    char buf[JSON_TIME_SIZE];

    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        assert_int_equal(json_time_format(times[i].t, buf), 0);
        assert_string_equal(buf, times[i].s);
    }
    assert_int_equal(json_time_format(253402300800, buf), -EOVERFLOW);
    assert_string_equal(buf, "");
    assert_int_equal(json_time_format(-62167219201, buf), -EOVERFLOW);
    assert_int_equal(json_time_format(INT64_MAX, buf), -EOVERFLOW);
    assert_int_equal(json_time_format(INT64_MIN, buf), -EOVERFLOW);
}

static void test_time_or_null(void **state)
{
    json_t *j = json_time_or_null(0);

    assert_true(json_is_null(j));
    json_decref(j);
    j = json_time_or_null(1795742797);
    assert_string_equal(json_string_value(j), "2026-11-27T01:26:37Z");
    json_decref(j);
    j = json_time_or_null(INT64_MAX);
    assert_true(json_is_null(j));
    json_decref(j);
}

static void assert_parses(const char *s, int64_t want)
{
    int64_t t = 42;

    if (json_time_parse(s, &t) != 0)
        print_error("'%s' refused\n", s);
    assert_int_equal(json_time_parse(s, &t), 0);
    assert_int_equal(t, want);
}

static void assert_parse_refused(const char *s)
{
    int64_t t = 42;

    if (json_time_parse(s, &t) == 0)
        print_error("'%s' accepted as %lld\n", s, (long long)t);
    assert_int_equal(json_time_parse(s, &t), -EINVAL);
    assert_int_equal(t, 42);
}

static void test_time_parse(void **state)
{
    char buf[JSON_TIME_SIZE];

    /* round trips */
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        int64_t t;
        assert_int_equal(json_time_parse(times[i].s, &t), 0);
        assert_int_equal(t, times[i].t);
        assert_int_equal(json_time_format(t, buf), 0);
        assert_string_equal(buf, times[i].s);
    }
    /* offsets: local = UTC + offset */
    assert_parses("2026-11-27T01:26:37+05:30", 1795742797 - 19800);
    assert_parses("2026-11-26T20:26:37-05:00", 1795742797);
    assert_parses("2026-11-27T01:26:37+00:00", 1795742797);
    assert_parses("2026-11-27T01:26:37-00:00", 1795742797);
    assert_parses("1970-01-01T00:00:00+23:59", -86340);
    /* fractions are truncated */
    assert_parses("2026-11-27T01:26:37.999999999Z", 1795742797);
    assert_parses("2026-11-27T01:26:37.5+01:00", 1795742797 - 3600);
    /* lower-case T and Z (RFC 3339 §5.6 NOTE) */
    assert_parses("2026-11-27t01:26:37z", 1795742797);
    /* leap second */
    assert_parses("2016-12-31T23:59:60Z", 1483228800);
}

static void test_time_parse_refused(void **state)
{
    int64_t t = 0;

    assert_int_equal(json_time_parse(NULL, &t), -EINVAL);
    assert_parse_refused("");
    assert_parse_refused("2026-11-27");
    assert_parse_refused("2026-11-27T01:26:37");
    assert_parse_refused("2026-11-27 01:26:37Z");
    assert_parse_refused("2026-11-27T01:26:37Zjunk");
    assert_parse_refused("2026-11-27T01:26:37Z ");
    assert_parse_refused(" 2026-11-27T01:26:37Z");
    assert_parse_refused("2026-11-27T01:26:37.Z");
    assert_parse_refused("2026-11-27T1:26:37Z");
    assert_parse_refused("26-11-27T01:26:37Z");
    assert_parse_refused("+2026-11-27T01:26:37Z");
    assert_parse_refused("2026-11-27T01:26:37+0530");
    assert_parse_refused("2026-11-27T01:26:37+05");
    assert_parse_refused("2026-11-27T01:26:37+24:00");
    assert_parse_refused("2026-11-27T01:26:37+05:60");
    assert_parse_refused("2026-00-27T01:26:37Z");
    assert_parse_refused("2026-13-27T01:26:37Z");
    assert_parse_refused("2026-11-00T01:26:37Z");
    assert_parse_refused("2026-11-31T01:26:37Z");
    assert_parse_refused("2023-02-29T01:26:37Z");
    assert_parse_refused("2100-02-29T01:26:37Z");
    assert_parse_refused("2026-11-27T24:00:00Z");
    assert_parse_refused("2026-11-27T01:60:00Z");
    assert_parse_refused("2026-11-27T01:26:61Z");
    assert_parse_refused("2026-11-27T01:26:-1Z");
    assert_parse_refused("2026-11-27T01:26:37UTC");
}

static void test_string_lossy(void **state)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"plain", "plain"},
        {"b\303\274cher", "b\303\274cher"},
        {"a\377b", "a\357\277\275b"},
        /* overlong '/' */
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},
        /* truncated sequence at the end */
        {"x\xe2\x82", "x\xef\xbf\xbd\xef\xbf\xbd"},
        /* UTF-16 surrogate */
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        /* above U+10FFFF */
        {"\xf4\x90\x80\x80!", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd!"},
        /* a valid 4-octet sequence survives next to an invalid one */
        {"\xf0\x9f\x98\x80\x80", "\xf0\x9f\x98\x80\xef\xbf\xbd"},
        {"", ""},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *j = json_string_lossy(cases[i].in);
        assert_non_null(j);
        assert_string_equal(json_string_value(j), cases[i].want);
        json_decref(j);
    }
    json_t *j = json_string_lossy(NULL);
    assert_string_equal(json_string_value(j), "");
    json_decref(j);
}

static const struct json_field domain_spec[] = {
    {"name", JSON_FIELD_STRING, true},       {"alt_names", JSON_FIELD_STRING_ARRAY, false},
    {"challenge", JSON_FIELD_STRING, false}, {"count", JSON_FIELD_INTEGER, false},
    {"ratio", JSON_FIELD_NUMBER, false},     {"purge", JSON_FIELD_BOOLEAN, false},
    {"detail", JSON_FIELD_OBJECT, false},    {"list", JSON_FIELD_ARRAY, false},
};
#define SPEC_N (sizeof(domain_spec) / sizeof(domain_spec[0]))

/* Runs json_check_fields on BODY and checks rc, field, unknown and the message. */
static void check(const char *body, int want_rc, const char *want_field, bool want_unknown,
                  const char *want_err)
{
    json_error_t e;
    json_t *obj = json_loads(body, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &e);
    char err[128];
    const char *field = "sentinel";
    bool unknown = !want_unknown;
    int rc;

    assert_non_null(obj);
    rc = json_check_fields(obj, domain_spec, SPEC_N, err, sizeof(err), &field, &unknown);
    if (rc != want_rc || strcmp(err, want_err) != 0)
        print_error("body %s: rc %d, err '%s'\n", body, rc, err);
    assert_int_equal(rc, want_rc);
    if (want_field)
        assert_string_equal(field, want_field);
    else
        assert_null(field);
    assert_int_equal(unknown, want_unknown);
    assert_string_equal(err, want_err);
    json_decref(obj);
}

static void test_fields(void **state)
{
    check("{\"name\":\"a.example\"}", 0, NULL, false, "");
    check("{\"name\":\"a.example\",\"alt_names\":[],\"challenge\":\"dns-01\",\"count\":3,"
          "\"ratio\":0.5,\"purge\":false,\"detail\":{},\"list\":[1,\"x\",null]}",
          0, NULL, false, "");
    check("{\"name\":\"a\",\"alt_names\":[\"b\",\"c\"],\"ratio\":3}", 0, NULL, false, "");

    /* unknown members win, the first in document order */
    check("{\"name\":\"a\",\"chalenge\":\"dns-01\",\"zz\":1}", -EINVAL, "chalenge", true,
          "unknown field 'chalenge'");
    check("{\"zz\":1,\"name\":5}", -EINVAL, "zz", true, "unknown field 'zz'");
    check("{\"Name\":\"a\"}", -EINVAL, "Name", true, "unknown field 'Name'");

    /* missing and wrong types, in spec order */
    check("{}", -EINVAL, "name", false, "field 'name' is required");
    check("{\"challenge\":\"x\"}", -EINVAL, "name", false, "field 'name' is required");
    check("{\"name\":5}", -EINVAL, "name", false, "field 'name' must be a string");
    check("{\"name\":null}", -EINVAL, "name", false, "field 'name' must be a string");
    check("{\"name\":\"a\",\"alt_names\":\"b\"}", -EINVAL, "alt_names", false,
          "field 'alt_names' must be an array of strings");
    check("{\"name\":\"a\",\"alt_names\":[\"b\",2]}", -EINVAL, "alt_names", false,
          "field 'alt_names' must be an array of strings (element 1 is not a string)");
    check("{\"name\":\"a\",\"count\":1.5}", -EINVAL, "count", false,
          "field 'count' must be an integer");
    check("{\"name\":\"a\",\"ratio\":\"1\"}", -EINVAL, "ratio", false,
          "field 'ratio' must be a number");
    check("{\"name\":\"a\",\"purge\":\"true\"}", -EINVAL, "purge", false,
          "field 'purge' must be true or false");
    check("{\"name\":\"a\",\"detail\":[]}", -EINVAL, "detail", false,
          "field 'detail' must be an object");
    check("{\"name\":\"a\",\"list\":{}}", -EINVAL, "list", false, "field 'list' must be an array");
    check("{\"purge\":1,\"name\":\"a\",\"count\":\"x\"}", -EINVAL, "count", false,
          "field 'count' must be an integer");

    /* not an object at all */
    check("[]", -EINVAL, NULL, false, "request body must be a JSON object");
    check("\"name\"", -EINVAL, NULL, false, "request body must be a JSON object");
    check("null", -EINVAL, NULL, false, "request body must be a JSON object");
}

static void test_fields_edges(void **state)
{
    char key[200], body[256], err[256];
    json_t *obj;
    const char *field;
    bool unknown;

    /* NULL object and optional outputs */
    assert_int_equal(json_check_fields(NULL, domain_spec, SPEC_N, NULL, 0, NULL, NULL), -EINVAL);
    obj = json_pack("{s:s}", "name", "a");
    assert_int_equal(json_check_fields(obj, domain_spec, SPEC_N, NULL, 0, NULL, NULL), 0);
    json_decref(obj);

    /* a long unknown key is cut in the message but returned whole */
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    snprintf(body, sizeof(body), "{\"%s\":1}", key);
    obj = json_loads(body, 0, NULL);
    assert_non_null(obj);
    assert_int_equal(
        json_check_fields(obj, domain_spec, SPEC_N, err, sizeof(err), &field, &unknown), -EINVAL);
    assert_true(unknown);
    assert_string_equal(field, key);
    assert_true(strlen(err) < 100);
    assert_non_null(strstr(err, "...'"));

    /* a tiny error buffer is still terminated */
    assert_int_equal(json_check_fields(obj, domain_spec, SPEC_N, err, 5, &field, &unknown),
                     -EINVAL);
    assert_string_equal(err, "unkn");
    json_decref(obj);

    /* an empty spec refuses every member */
    obj = json_pack("{s:i}", "a", 1);
    assert_int_equal(json_check_fields(obj, NULL, 0, err, sizeof(err), &field, &unknown), -EINVAL);
    assert_string_equal(field, "a");
    json_decref(obj);
    obj = json_object();
    assert_int_equal(json_check_fields(obj, NULL, 0, err, sizeof(err), &field, &unknown), 0);
    json_decref(obj);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_format),  cmocka_unit_test(test_time_or_null),
        cmocka_unit_test(test_time_parse),   cmocka_unit_test(test_time_parse_refused),
        cmocka_unit_test(test_string_lossy), cmocka_unit_test(test_fields),
        cmocka_unit_test(test_fields_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
