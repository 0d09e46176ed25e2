/* Header parsing for ACME responses: Retry-After (RFC 9110 §10.2.3) and Link (RFC 8288). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "acme/http.h"

static void test_retry_after_seconds(void **state)
{
    assert_int_equal(acme_parse_retry_after("120", 1000), 120);
    assert_int_equal(acme_parse_retry_after("  0 ", 1000), 0);
    assert_int_equal(acme_parse_retry_after("86400", 1000), 86400);
}

static void test_retry_after_date(void **state)
{
    /* Sun, 06 Nov 1994 08:49:37 GMT = 784111777 (RFC 9110's example date) */
    assert_int_equal(acme_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 - 30), 30);
    /* the obsolete RFC 850 and asctime forms are accepted too */
    assert_int_equal(acme_parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", 784111777 - 5), 5);
    assert_int_equal(acme_parse_retry_after("Sun Nov  6 08:49:37 1994", 784111777 - 7), 7);
    /* a date in the past means "now" */
    assert_int_equal(acme_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 + 100), 0);
}

static void test_retry_after_garbage(void **state)
{
    assert_int_equal(acme_parse_retry_after("", 0), -1);
    assert_int_equal(acme_parse_retry_after("soon", 0), -1);
    assert_int_equal(acme_parse_retry_after("12abc", 0), -1);
    assert_int_equal(acme_parse_retry_after("-5", 0), -1);
    assert_int_equal(acme_parse_retry_after("99999999999999999999999", 0), -1);
}

struct links {
    char uri[4][128];
    char rel[4][32];
    int n;
};

static void collect(void *ctx, const char *uri, const char *rel)
{
    struct links *l = ctx;
    if (l->n < 4) {
        strncpy(l->uri[l->n], uri, sizeof(l->uri[0]) - 1);
        strncpy(l->rel[l->n], rel, sizeof(l->rel[0]) - 1);
        l->n++;
    }
}

static void test_link_header(void **state)
{
    struct links l = {0};
    int n = acme_parse_link("<https://ca.test/cert/1/1>;rel=\"alternate\", "
                            "<https://ca.test/dir>; rel=index, "
                            "<https://ca.test/cert/1/2>; title=\"a, b\"; rel=\"alternate\"",
                            collect, &l);
    assert_int_equal(n, 3);
    assert_string_equal(l.uri[0], "https://ca.test/cert/1/1");
    assert_string_equal(l.rel[0], "alternate");
    assert_string_equal(l.uri[1], "https://ca.test/dir");
    assert_string_equal(l.rel[1], "index");
    /* a comma inside a quoted parameter does not split the link */
    assert_string_equal(l.uri[2], "https://ca.test/cert/1/2");
    assert_string_equal(l.rel[2], "alternate");
}

static void test_link_garbage(void **state)
{
    struct links l = {0};
    assert_int_equal(acme_parse_link("", collect, &l), 0);
    assert_int_equal(acme_parse_link("no brackets here", collect, &l), 0);
    assert_int_equal(acme_parse_link("<unterminated", collect, &l), 0);
    assert_int_equal(l.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_after_seconds), cmocka_unit_test(test_retry_after_date),
        cmocka_unit_test(test_retry_after_garbage), cmocka_unit_test(test_link_header),
        cmocka_unit_test(test_link_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
