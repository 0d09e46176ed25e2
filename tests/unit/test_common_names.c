/* Tests for common/names.c: normalisation (case, trailing dot, IDNA2008), the validation rules
 * with their messages, names_check_set and wildcard matching. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/names.h"

/* Checks that IN normalises to WANT; reports the input on failure. */
#define assert_name(in, wildcard, want)                                                            \
    do {                                                                                           \
        char out_[NAME_BUF_SIZE], err_[NAME_ERR_SIZE];                                             \
        int rc_ = name_normalize((in), (wildcard), out_, err_);                                    \
        if (rc_ != 0)                                                                              \
            print_error("'%s' refused: %s\n", (in), err_);                                         \
        assert_int_equal(rc_, 0);                                                                  \
        assert_string_equal(out_, (want));                                                         \
        assert_string_equal(err_, "");                                                             \
    } while (0)

/* Checks that IN is refused with -EINVAL, a one-line message containing WANT_SUBSTR, and an
 * empty OUT. */
#define assert_refused(in, wildcard, want_substr)                                                  \
    do {                                                                                           \
        char out_[NAME_BUF_SIZE], err_[NAME_ERR_SIZE];                                             \
        memset(out_, 'x', sizeof(out_));                                                           \
        int rc_ = name_normalize((in), (wildcard), out_, err_);                                    \
        if (rc_ == 0)                                                                              \
            print_error("accepted as '%s'\n", out_);                                               \
        else if (!strstr(err_, (want_substr)))                                                     \
            print_error("message '%s' lacks '%s'\n", err_, (want_substr));                         \
        assert_int_equal(rc_, -EINVAL);                                                            \
        assert_true(strlen(err_) > 0);                                                             \
        assert_null(strchr(err_, '\n'));                                                           \
        assert_non_null(strstr(err_, (want_substr)));                                              \
        assert_string_equal(out_, "");                                                             \
    } while (0)

static void repeat(char *buf, char c, size_t n)
{
    memset(buf, c, n);
    buf[n] = '\0';
}

static void test_ascii(void **state)
{
    assert_name("www.example.com", false, "www.example.com");
    assert_name("WWW.Example.COM", false, "www.example.com");
    assert_name("example.com.", false, "example.com");
    assert_name("a-b.example.com", false, "a-b.example.com");
    assert_name("a--b.example.com", false, "a--b.example.com");
    assert_name("123.example.com", false, "123.example.com");
    assert_name("a.b.c.1a", false, "a.b.c.1a");
    assert_name("x.y", false, "x.y");
    /* the wildcard flag allows wildcards; it does not require them */
    assert_name("Example.COM", true, "example.com");
}

static void test_idn(void **state)
{
    assert_name("bücher.example", false, "xn--bcher-kva.example");
    assert_name("Bücher.Example", false, "xn--bcher-kva.example");
    assert_name("bücher.example.", false, "xn--bcher-kva.example");
    assert_name("ÄÖÜ.de", false, "xn--4ca0bs.de");
    assert_name("www.ÄÖÜ.DE", false, "www.xn--4ca0bs.de");
    /* IDNA2008 keeps sharp s (IDNA2003 turned it into "ss") */
    assert_name("straße.de", false, "xn--strae-oqa.de");
    /* already A-labels: unchanged, case folded */
    assert_name("xn--bcher-kva.example", false, "xn--bcher-kva.example");
    assert_name("XN--BCHER-KVA.Example", false, "xn--bcher-kva.example");
    assert_name("xn--4ca0bs.de.", false, "xn--4ca0bs.de");
    /* UTS #46 maps the ideographic full stop to a dot */
    assert_name("b\xe3\x80\x82ü.de", false, "b.xn--tda.de");
}

static void test_idn_refused(void **state)
{
    char in[512];
    size_t o = 0;

    /* emoji: only IDNA2003 allowed them */
    assert_refused("\xf0\x9f\x98\x80.de", false, "not a valid internationalised label");
    assert_refused("x\xff.de", false, "not valid UTF-8");
    assert_refused("\xc3.de", false, "not valid UTF-8");
    /* overlong encoding of '.' */
    assert_refused("a\300\256b.de", false, "not valid UTF-8");
    /* GnuTLS would silently drop these and certify a different name */
    assert_refused("a\302\240b.bü.de", false, "U+00A0");
    assert_refused("a\302\255b.example.com", false, "U+00AD");
    assert_refused("a\357\274\277b.bü.de", false, "U+FF3F");
    assert_refused("\xef\xbc\x8a.bü.de", true, "U+FF0A");
    assert_refused("a_b.bü.de", false, "label 'a_b' contains invalid character '_'");
    assert_refused("bü-.de", false, "label 'bü-' ends with a hyphen");
    assert_refused("-bü.de", false, "label '-bü' starts with a hyphen");
    /* bad punycode, and punycode of something IDNA2008 disallows */
    assert_refused("xn--abc.com", false, "label 'xn--abc' is not a valid A-label");
    assert_refused("xn--ls8h.la", false, "not a valid A-label");
    assert_refused("xn--bcher-kva-.example", false, "ends with a hyphen");
    /* 60 x U+00FC: a valid U-label whose A-label is over 63 octets */
    for (int i = 0; i < 60; i++)
        o += (size_t)snprintf(in + o, sizeof(in) - o, "ü");
    snprintf(in + o, sizeof(in) - o, ".de");
    assert_refused(in, false, "longer than 63 octets");
}

static void test_lengths(void **state)
{
    char label63[64], label64[65], name[300], want[300];

    repeat(label63, 'a', 63);
    repeat(label64, 'a', 64);

    snprintf(name, sizeof(name), "%s.example.com", label63);
    assert_name(name, false, name);
    snprintf(name, sizeof(name), "%s.example.com", label64);
    assert_refused(name, false, "is longer than 63 octets");

    /* 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 */
    snprintf(name, sizeof(name), "%s.%s.%s.%.61s", label63, label63, label63, label63);
    assert_int_equal(strlen(name), 253);
    assert_name(name, false, name);
    /* a trailing dot does not count */
    memcpy(want, name, 254);
    name[253] = '.';
    name[254] = '\0';
    assert_name(name, false, want);
    snprintf(name, sizeof(name), "%s.%s.%s.%.62s", label63, label63, label63, label63);
    assert_int_equal(strlen(name), 254);
    assert_refused(name, false, "longer than 253 octets");
    /* "*." counts too */
    snprintf(name, sizeof(name), "*.%s.%s.%s.%.59s", label63, label63, label63, label63);
    assert_int_equal(strlen(name), 253);
    assert_name(name, true, name);
    snprintf(name, sizeof(name), "*.%s.%s.%s.%.60s", label63, label63, label63, label63);
    assert_refused(name, true, "longer than 253 octets");
}

static void test_huge_input(void **state)
{
    static char big[5000];

    for (size_t i = 0; i + 1 < sizeof(big); i++)
        big[i] = (i % 10 == 9) ? '.' : 'a';
    big[sizeof(big) - 1] = '\0';
    assert_refused(big, false, "longer than 253 octets");
}

static void test_ldh_rules(void **state)
{
    assert_refused("a_b.example.com", false, "label 'a_b' contains invalid character '_'");
    assert_refused("www.exa!mple.com", false, "label 'exa!mple' contains invalid character '!'");
    assert_refused("-ab.example.com", false, "label '-ab' starts with a hyphen");
    assert_refused("ab-.example.com", false, "label 'ab-' ends with a hyphen");
    assert_refused("ab--cd.example.com", false, "third and fourth positions");
    assert_refused("a/b.com", false, "invalid character '/'");
    assert_refused("a:b.com", false, "invalid character ':'");
    assert_refused("[::1]", false, "invalid character '['");
}

static void test_structure(void **state)
{
    assert_refused(NULL, false, "empty name");
    assert_refused("", false, "empty name");
    assert_refused(".", false, "empty name");
    assert_refused("a..example.com", false, "empty label");
    assert_refused(".example.com", false, "starts with a dot");
    assert_refused("example.com..", false, "empty label");
    assert_refused("localhost", false, "at least two labels");
    assert_refused("com.", false, "at least two labels");
    assert_refused("192.168.1.1", false, "all-numeric");
    assert_refused("192.168.1.1.", false, "all-numeric");
    assert_refused("example.123", false, "top-level label '123' is all-numeric");
}

static void test_whitespace_control(void **state)
{
    assert_refused(" ", false, "whitespace");
    assert_refused(" example.com", false, "whitespace");
    assert_refused("example.com ", false, "whitespace");
    assert_refused("exa mple.com", false, "whitespace");
    assert_refused("a\tb.com", false, "whitespace");
    assert_refused("example.com\n", false, "whitespace");
    assert_refused("a\x01.com", false, "control character 0x01");
    assert_refused("a\x7f.com", false, "control character 0x7f");
    assert_refused("a\x1b[31m.com", false, "control character 0x1b");
}

static void test_wildcards(void **state)
{
    assert_name("*.example.com", true, "*.example.com");
    assert_name("*.Example.COM.", true, "*.example.com");
    assert_name("*.bücher.example", true, "*.xn--bcher-kva.example");
    assert_refused("*.example.com", false, "wildcard names are not allowed");
    assert_refused("*", true, "'*' alone");
    assert_refused("*.", true, "'*' alone");
    assert_refused("*", false, "");
    assert_refused("a*.b.com", true, "label 'a*' contains '*'");
    assert_refused("*a.b.com", true, "label '*a' contains '*'");
    assert_refused("**.b.com", true, "contains '*'");
    assert_refused("a.*.b.com", true, "only allowed as the whole first label");
    assert_refused("*.*.b.com", true, "only allowed as the whole first label");
    assert_refused("*.com", true, "at least two labels after '*.'");
    assert_refused("*..com", true, "empty label");
    assert_refused("*.192.168.1.1", true, "all-numeric");
}

static void test_is_wildcard(void **state)
{
    assert_true(name_is_wildcard("*.example.com"));
    assert_false(name_is_wildcard("example.com"));
    assert_false(name_is_wildcard("*"));
    assert_false(name_is_wildcard(""));
    assert_false(name_is_wildcard(NULL));
}

static void test_wildcard_matches(void **state)
{
    assert_true(name_wildcard_matches("*.example.com", "a.example.com"));
    assert_true(name_wildcard_matches("*.example.com", "xn--bcher-kva.example.com"));
    assert_false(name_wildcard_matches("*.example.com", "a.b.example.com"));
    assert_false(name_wildcard_matches("*.example.com", "example.com"));
    assert_false(name_wildcard_matches("*.example.com", ".example.com"));
    assert_false(name_wildcard_matches("*.example.com", "aexample.com"));
    assert_false(name_wildcard_matches("*.example.com", "a.example.org"));
    assert_false(name_wildcard_matches("*.example.com", "a.notexample.com"));
    assert_true(name_wildcard_matches("www.example.com", "www.example.com"));
    assert_true(name_wildcard_matches("www.example.com", "WWW.example.com"));
    assert_false(name_wildcard_matches("www.example.com", "a.www.example.com"));
    assert_false(name_wildcard_matches("example.com", "a.example.com"));
    assert_false(name_wildcard_matches(NULL, "a.example.com"));
    assert_false(name_wildcard_matches("*.example.com", NULL));
}

static void assert_set(const char *const *names, size_t n, enum challenge_type c,
                       const char *want_substr)
{
    char err[NAME_ERR_SIZE];
    int rc = names_check_set(names, n, c, err);

    if (!want_substr) {
        if (rc != 0)
            print_error("set refused: %s\n", err);
        assert_int_equal(rc, 0);
        assert_string_equal(err, "");
        return;
    }
    if (rc == 0 || !strstr(err, want_substr))
        print_error("rc %d, message '%s', wanted '%s'\n", rc, err, want_substr);
    assert_int_equal(rc, -EINVAL);
    assert_non_null(strstr(err, want_substr));
}

static void test_check_set(void **state)
{
    const char *ok[] = {"www.example.com", "example.com", "a.example.com"};
    const char *dup[] = {"www.example.com", "example.com", "www.example.com"};
    const char *wild[] = {"example.com", "*.example.com"};
    char a[NAME_BUF_SIZE], b[NAME_BUF_SIZE], err[NAME_ERR_SIZE];

    assert_set(ok, 3, CHALLENGE_HTTP_01, NULL);
    assert_set(ok, 1, CHALLENGE_TLS_ALPN_01, NULL);
    assert_set(dup, 3, CHALLENGE_HTTP_01, "name 'www.example.com' is listed more than once");
    assert_set(wild, 2, CHALLENGE_DNS_01, NULL);
    assert_set(wild, 2, CHALLENGE_HTTP_01, "wildcard name '*.example.com' needs the dns-01");
    assert_set(wild, 2, CHALLENGE_TLS_ALPN_01, "tls-alpn-01");
    assert_set(ok, 0, CHALLENGE_HTTP_01, "no names");
    assert_set(NULL, 1, CHALLENGE_HTTP_01, "no names");

    /* duplicates are found after normalisation: Unicode and A-label spellings of one name */
    assert_int_equal(name_normalize("Bücher.example", false, a, err), 0);
    assert_int_equal(name_normalize("xn--bcher-kva.EXAMPLE.", false, b, err), 0);
    const char *idn[] = {a, b};
    assert_set(idn, 2, CHALLENGE_HTTP_01, "listed more than once");
}

static void test_check_set_limit(void **state)
{
    static char buf[NAMES_MAX + 1][32];
    const char *names[NAMES_MAX + 1];

    for (size_t i = 0; i <= NAMES_MAX; i++) {
        snprintf(buf[i], sizeof(buf[i]), "n%zu.example.com", i);
        names[i] = buf[i];
    }
    assert_set(names, NAMES_MAX, CHALLENGE_HTTP_01, NULL);
    assert_set(names, NAMES_MAX + 1, CHALLENGE_HTTP_01, "too many names: 101");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ascii),
        cmocka_unit_test(test_idn),
        cmocka_unit_test(test_idn_refused),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_huge_input),
        cmocka_unit_test(test_ldh_rules),
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_whitespace_control),
        cmocka_unit_test(test_wildcards),
        cmocka_unit_test(test_is_wildcard),
        cmocka_unit_test(test_wildcard_matches),
        cmocka_unit_test(test_check_set),
        cmocka_unit_test(test_check_set_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
