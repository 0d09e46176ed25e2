#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/cmdline.h"

/* Splits LINE and asserts the words equal the NULL-terminated EXPECTED list. */
static void expect_words(const char *line, const char *const *expected)
{
    char **argv = NULL;
    size_t argc = 99;
    char err[256] = "unset";
    size_t n = 0;

    while (expected[n])
        n++;
    int r = cmdline_split(line, &argv, &argc, err, sizeof(err));
    if (r != 0)
        print_error("line <%s>: unexpected error: %s\n", line, err);
    assert_int_equal(r, 0);
    assert_non_null(argv);
    assert_int_equal(argc, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(argv[i], expected[i]);
    assert_null(argv[n]);
    cmdline_free(argv);
}

#define WORDS(line, ...) expect_words(line, (const char *const[]){__VA_ARGS__, NULL})

/* Asserts LINE is refused and the reason contains NEEDLE. */
static void expect_error(const char *line, const char *needle)
{
    char **argv = (char **)0x1;
    size_t argc = 99;
    char err[256] = "";

    int r = cmdline_split(line, &argv, &argc, err, sizeof(err));
    if (r != -EINVAL || !strstr(err, needle))
        print_error("line <%s>: r=%d err=<%s>, wanted <%s>\n", line ? line : "(null)", r, err,
                    needle);
    assert_int_equal(r, -EINVAL);
    assert_null(argv);
    assert_int_equal(argc, 0);
    assert_non_null(strstr(err, needle));
}

static void test_plain_words(void **state)
{
    WORDS("/bin/echo hello world", "/bin/echo", "hello", "world");
    WORDS("   /bin/echo \t a    b\t", "/bin/echo", "a", "b");
    WORDS("/usr/bin/true", "/usr/bin/true");
}

static void test_quotes(void **state)
{
    WORDS("/bin/x 'single quoted' \"double quoted\"", "/bin/x", "single quoted", "double quoted");
    /* quotes may begin and end inside a word */
    WORDS("/bin/x a\"b c\"d", "/bin/x", "ab cd");
    WORDS("/bin/x --name='a b' x\"\"y", "/bin/x", "--name=a b", "xy");
    /* the other quote character is literal inside quotes */
    WORDS("/bin/x \"it's\" 'say \"hi\"'", "/bin/x", "it's", "say \"hi\"");
    /* whitespace inside quotes is kept, including runs and tabs */
    WORDS("/bin/x \"  a\t b  \"", "/bin/x", "  a\t b  ");
    /* the command itself may be quoted */
    WORDS("\"/opt/my hooks/dns\" add", "/opt/my hooks/dns", "add");
}

static void test_empty_quoted_words(void **state)
{
    WORDS("/bin/x \"\"", "/bin/x", "");
    WORDS("/bin/x '' \"\" z", "/bin/x", "", "", "z");
}

static void test_escapes(void **state)
{
    WORDS("/bin/x \\a\\b\\f\\n\\r\\t\\v", "/bin/x", "\a\b\f\n\r\t\v");
    WORDS("/bin/x \\\\ \\\" \\'", "/bin/x", "\\", "\"", "'");
    WORDS("/bin/x a\\sb", "/bin/x", "a b");
    WORDS("/bin/x \\x41\\x7a \\101\\172", "/bin/x", "Az", "Az");
    WORDS("/bin/x \\xff", "/bin/x", "\xff");
    WORDS("/bin/x caf\\u00e9 \\U0001F600", "/bin/x", "caf\xc3\xa9", "\xf0\x9f\x98\x80");
    /* escapes are decoded inside both kinds of quotes (systemd does the same) */
    WORDS("/bin/x \"a\\tb\" 'c\\nd' \"q\\\"q\"", "/bin/x", "a\tb", "c\nd", "q\"q");
    /* an escaped quote does not open a quoted section */
    WORDS("/bin/x \\\"a b\\\"", "/bin/x", "\"a", "b\"");
}

static void test_no_expansion(void **state)
{
    WORDS("/bin/x $HOME ${USER} *.txt ~ a;b ; | > `id` $(id)", "/bin/x", "$HOME", "${USER}",
          "*.txt", "~", "a;b", ";", "|", ">", "`id`", "$(id)");
}

static void test_errors(void **state)
{
    expect_error("/bin/x \"abc", "unterminated quote");
    expect_error("/bin/x 'abc", "unterminated quote");
    expect_error("/bin/x a\"b", "unterminated quote");
    expect_error("/bin/x \"ab\\", "unterminated quote");
    expect_error("/bin/x abc\\", "trailing backslash");
    expect_error("", "empty command");
    expect_error("   \t ", "empty command");
    expect_error(NULL, "empty command");
    expect_error("bin/x a", "absolute path");
    expect_error("x", "absolute path");
    expect_error("'' /bin/x", "absolute path");
    /* escapes outside the table, and escapes that would produce NUL */
    expect_error("/bin/x \\q", "unknown escape");
    expect_error("/bin/x a\\ b", "unknown escape");
    expect_error("/bin/x \\x4", "\\x needs two hex digits");
    expect_error("/bin/x \\xzz", "\\x needs two hex digits");
    expect_error("/bin/x \\x00", "NUL");
    expect_error("/bin/x \\000", "NUL");
    expect_error("/bin/x \\12", "three digits");
    expect_error("/bin/x \\400", "above");
    expect_error("/bin/x \\u12", "four hex digits");
    expect_error("/bin/x \\ud800", "not a valid Unicode");
    expect_error("/bin/x \\U00110000", "not a valid Unicode");
    expect_error("/bin/x \\u0000", "not a valid Unicode");
}

static void test_bounds(void **state)
{
    /* 256 words are fine, 257 are not */
    size_t cap = 3 * 257 + 16, len = 0;
    char *line = malloc(cap);
    assert_non_null(line);
    len += (size_t)snprintf(line, cap, "/x");
    for (int i = 1; i < 256; i++)
        len += (size_t)snprintf(line + len, cap - len, " a");
    char **argv = NULL;
    size_t argc = 0;
    char err[128];
    assert_int_equal(cmdline_split(line, &argv, &argc, err, sizeof(err)), 0);
    assert_int_equal(argc, 256);
    assert_string_equal(argv[255], "a");
    assert_null(argv[256]);
    cmdline_free(argv);
    snprintf(line + len, cap - len, " b");
    expect_error(line, "more than 256 words");
    free(line);

    /* 64 KiB of line is fine, one byte more is not */
    line = malloc(65536 + 2);
    assert_non_null(line);
    memset(line, 'a', 65536);
    line[0] = '/';
    line[65536] = '\0';
    assert_int_equal(cmdline_split(line, &argv, &argc, err, sizeof(err)), 0);
    assert_int_equal(argc, 1);
    assert_int_equal(strlen(argv[0]), 65536);
    cmdline_free(argv);
    line[65536] = 'a';
    line[65537] = '\0';
    expect_error(line, "longer than 65536");
    free(line);
}

static void test_free_null(void **state)
{
    cmdline_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_words),
        cmocka_unit_test(test_quotes),
        cmocka_unit_test(test_empty_quoted_words),
        cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_no_expansion),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_free_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
