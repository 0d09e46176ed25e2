#include <errno.h>
#include <fcntl.h>
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

#include "core/cmdline.h"
#include "core/config.h"

static char tmpdir[4096];
static char conf_path[4200];

static int setup(void **state)
{
    const char *base = getenv("CERTD_TEST_TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    mkdir(base, 0700);
    snprintf(tmpdir, sizeof(tmpdir), "%s/core-config-XXXXXX", base);
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(conf_path, sizeof(conf_path), "%s/certd.conf", tmpdir);
    return 0;
}

static int teardown(void **state)
{
    unlink(conf_path);
    rmdir(tmpdir);
    return 0;
}

static void write_bytes(const char *data, size_t len)
{
    FILE *f = fopen(conf_path, "we");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void write_conf(const char *text)
{
    write_bytes(text, strlen(text));
}

static struct config *load_ok(const char *text)
{
    struct config *cfg = NULL;
    char err[1024] = "";
    write_conf(text);
    int r = config_load(conf_path, &cfg, err, sizeof(err));
    if (r != 0)
        print_error("unexpected error: %s\n", err);
    assert_int_equal(r, 0);
    assert_non_null(cfg);
    assert_string_equal(cfg->path, conf_path);
    return cfg;
}

/* Loads TEXT, expects it refused with "PATH:LINE: " (or "PATH: " for LINE 0) followed by a
 * message containing NEEDLE; copies the message to MSG_OUT when given. */
static void expect_error_msg(const char *text, unsigned line, const char *needle, char *msg_out,
                             size_t msg_sz)
{
    struct config *cfg = (struct config *)0x1;
    char err[1024] = "";
    char prefix[4300];

    write_conf(text);
    int r = config_load(conf_path, &cfg, err, sizeof(err));
    if (line)
        snprintf(prefix, sizeof(prefix), "%s:%u: ", conf_path, line);
    else
        snprintf(prefix, sizeof(prefix), "%s: ", conf_path);
    if (r == 0 || strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, needle))
        print_error("for <%s>\n got r=%d <%s>\n want <%s...%s>\n", text, r, err, prefix, needle);
    assert_true(r < 0);
    assert_null(cfg);
    assert_int_equal(strncmp(err, prefix, strlen(prefix)), 0);
    assert_non_null(strstr(err, needle));
    if (msg_out)
        snprintf(msg_out, msg_sz, "%s", err);
}

#define expect_error(text, line, needle) expect_error_msg(text, line, needle, NULL, 0)

static void test_defaults(void **state)
{
    struct config *cfg = NULL;
    assert_int_equal(config_defaults(&cfg), 0);
    assert_null(cfg->path);
    assert_string_equal(cfg->daemon.state_dir, "/var/lib/certd");
    assert_string_equal(cfg->daemon.socket, "/run/certd/api.sock");
    assert_int_equal(cfg->daemon.socket_mode, 0660);
    assert_null(cfg->daemon.socket_group);
    assert_null(cfg->daemon.user);
    assert_int_equal(cfg->daemon.log_level, LOG_LVL_INFO);
    assert_int_equal(cfg->daemon.api_threads, 0);
    assert_string_equal(cfg->acme.default_ca, "letsencrypt");
    assert_int_equal(cfg->acme.contact.count, 0);
    assert_int_equal(cfg->acme.account_key_type, KEY_EC_P256);
    assert_int_equal(cfg->acme.max_concurrent_orders, 4);
    assert_int_equal(cfg->access.admin_users.count, 0);
    assert_int_equal(cfg->access.admin_groups.count, 0);
    assert_null(cfg->challenge.http01_listen);
    assert_null(cfg->challenge.dns01_hook);
    assert_int_equal(cfg->challenge.dns01_timeout, 60);
    assert_int_equal(cfg->challenge.dns01_propagation_wait, 0);
    assert_null(cfg->challenge.tlsalpn01_listen);
    assert_null(cfg->renewal.renew_before);
    assert_null(cfg->renewal.deploy_hook);
    assert_int_equal(cfg->renewal.deploy_timeout, 300);
    assert_int_equal(cfg->domain_count, 0);
    assert_null(cfg->domains);
    assert_null(config_find_domain(cfg, "example.com"));
    assert_null(config_find_domain(NULL, "example.com"));

    assert_int_equal(cfg->ca_count, 2);
    const struct config_ca *le = config_find_ca(cfg, "letsencrypt");
    assert_non_null(le);
    assert_string_equal(le->directory, "https://acme-v02.api.letsencrypt.org/directory");
    assert_false(le->terms_agreed);
    assert_null(le->eab_kid);
    assert_null(le->eab_hmac_key);
    assert_null(le->ca_bundle);
    assert_int_equal(le->max_new_orders, 250);
    const struct config_ca *st = config_find_ca(cfg, "letsencrypt-staging");
    assert_non_null(st);
    assert_string_equal(st->directory, "https://acme-staging-v02.api.letsencrypt.org/directory");
    assert_int_equal(st->max_new_orders, 250);
    assert_null(config_find_ca(cfg, "letsencrypt-"));
    assert_null(config_find_ca(cfg, NULL));
    assert_null(config_find_ca(NULL, "letsencrypt"));
    config_free(cfg);
    config_free(NULL);
}

static void test_empty_file_gives_defaults(void **state)
{
    struct config *cfg = load_ok("");
    assert_string_equal(cfg->daemon.state_dir, "/var/lib/certd");
    assert_int_equal(cfg->ca_count, 2);
    config_free(cfg);

    cfg = load_ok("# only a comment\n\n   ; another\n\t\n");
    assert_int_equal(cfg->acme.max_concurrent_orders, 4);
    config_free(cfg);
}

static const char full_conf[] =
    "# certd test configuration\n"
    "[daemon]\n"
    "state_dir = /srv/certd\n"
    "socket = /run/certd/other.sock\n"
    "socket_mode = 0600\n"
    "socket_group = certd-admins\n"
    "user = certd\n"
    "log_level = debug\n"
    "api_threads = 16\n"
    "\n"
    "[acme]\n"
    "default_ca = pebble\n"
    "contact = mailto:admin@example.com, mailto:ops@example.com\n"
    "account_key_type = ec-p384\n"
    "max_concurrent_orders = 64\n"
    "\n"
    "[access]\n"
    "admin_users = alice bob\n"
    "admin_groups = wheel,1001\n"
    "\n"
    "[ca.pebble]\n"
    "directory = https://localhost:14000/dir\n"
    "ca_bundle = /etc/certd/pebble.minica.pem\n"
    "eab_kid = kid-1\n"
    "eab_hmac_key = zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W\n"
    "contact = mailto:pebble@example.com\n"
    "terms_agreed = yes\n"
    "preferred_chain = ISRG Root X1\n"
    "max_new_orders = 100000\n"
    "\n"
    "[challenge.http-01]\n"
    "listen = 0.0.0.0:80\n"
    "[challenge.dns-01]\n"
    "hook = /usr/local/lib/certd/dns-hook --zone 'example.com'\n"
    "timeout = 2m\n"
    "propagation_wait = 30s\n"
    "[challenge.tls-alpn-01]\n"
    "listen = [::]:443\n"
    "[renewal]\n"
    "renew_before = 30d\n"
    "deploy_hook = /usr/local/lib/certd/deploy \"--reload nginx\"\n"
    "deploy_timeout = 10m\n"
    "[domain.www.example.com]\n"
    "deploy_hook = /usr/local/bin/push-www\n"
    "[domain.*.example.org]\n";

static void test_full_file(void **state)
{
    struct config *cfg = load_ok(full_conf);
    assert_string_equal(cfg->daemon.state_dir, "/srv/certd");
    assert_string_equal(cfg->daemon.socket, "/run/certd/other.sock");
    assert_int_equal(cfg->daemon.socket_mode, 0600);
    assert_string_equal(cfg->daemon.socket_group, "certd-admins");
    assert_string_equal(cfg->daemon.user, "certd");
    assert_int_equal(cfg->daemon.log_level, LOG_LVL_DEBUG);
    assert_int_equal(cfg->daemon.api_threads, 16);
    assert_string_equal(cfg->acme.default_ca, "pebble");
    assert_int_equal(cfg->acme.contact.count, 2);
    assert_string_equal(cfg->acme.contact.items[0], "mailto:admin@example.com");
    assert_string_equal(cfg->acme.contact.items[1], "mailto:ops@example.com");
    assert_int_equal(cfg->acme.account_key_type, KEY_EC_P384);
    assert_int_equal(cfg->acme.max_concurrent_orders, 64);
    assert_int_equal(cfg->access.admin_users.count, 2);
    assert_string_equal(cfg->access.admin_users.items[0], "alice");
    assert_string_equal(cfg->access.admin_users.items[1], "bob");
    assert_int_equal(cfg->access.admin_groups.count, 2);
    assert_string_equal(cfg->access.admin_groups.items[0], "wheel");
    assert_string_equal(cfg->access.admin_groups.items[1], "1001");

    assert_int_equal(cfg->ca_count, 3);
    const struct config_ca *ca = config_find_ca(cfg, "pebble");
    assert_non_null(ca);
    assert_string_equal(ca->name, "pebble");
    assert_string_equal(ca->directory, "https://localhost:14000/dir");
    assert_string_equal(ca->ca_bundle, "/etc/certd/pebble.minica.pem");
    assert_string_equal(ca->eab_kid, "kid-1");
    assert_string_equal(ca->eab_hmac_key,
                        "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W");
    assert_int_equal(ca->contact.count, 1);
    assert_string_equal(ca->contact.items[0], "mailto:pebble@example.com");
    assert_true(ca->terms_agreed);
    assert_string_equal(ca->preferred_chain, "ISRG Root X1");
    assert_int_equal(ca->max_new_orders, 100000);
    /* a CA defined in the file gets the default too */
    assert_int_equal(config_find_ca(cfg, "letsencrypt")->max_new_orders, 250);

    assert_string_equal(cfg->challenge.http01_listen, "0.0.0.0:80");
    assert_string_equal(cfg->challenge.dns01_hook,
                        "/usr/local/lib/certd/dns-hook --zone 'example.com'");
    assert_int_equal(cfg->challenge.dns01_timeout, 120);
    assert_int_equal(cfg->challenge.dns01_propagation_wait, 30);
    assert_string_equal(cfg->challenge.tlsalpn01_listen, "[::]:443");

    assert_string_equal(cfg->renewal.renew_before, "30d");
    /* like the dns-01 hook, the quotes are command-line syntax and stay */
    assert_string_equal(cfg->renewal.deploy_hook, "/usr/local/lib/certd/deploy \"--reload nginx\"");
    assert_int_equal(cfg->renewal.deploy_timeout, 600);
    assert_int_equal(cfg->domain_count, 2);
    const struct config_domain *d = config_find_domain(cfg, "www.example.com");
    assert_non_null(d);
    assert_ptr_equal(d, &cfg->domains[0]);
    assert_string_equal(d->name, "www.example.com");
    assert_string_equal(d->deploy_hook, "/usr/local/bin/push-www");
    d = config_find_domain(cfg, "*.example.org");
    assert_non_null(d);
    assert_string_equal(d->name, "*.example.org");
    assert_null(d->deploy_hook);
    assert_null(config_find_domain(cfg, "example.org"));
    assert_null(config_find_domain(cfg, "a.example.org"));
    assert_null(config_find_domain(cfg, NULL));
    config_free(cfg);
}

static void test_syntax_details(void **state)
{
    /* CRLF line endings, indented comments and keys, spaces around '=' and inside headers, no
     * newline at the end of the file */
    struct config *cfg = load_ok("\t; comment\r\n  [ daemon ]  \r\n  state_dir=/a/b  \r\n"
                                 "   # x = y\r\nlog_level    =    warning");
    assert_string_equal(cfg->daemon.state_dir, "/a/b");
    assert_int_equal(cfg->daemon.log_level, LOG_LVL_WARNING);
    config_free(cfg);

    /* a '#' after a value is part of the value */
    cfg = load_ok("[ca.letsencrypt]\npreferred_chain = Root # X\n");
    assert_string_equal(config_find_ca(cfg, "letsencrypt")->preferred_chain, "Root # X");
    config_free(cfg);

    /* modes may be written without the leading 0 */
    cfg = load_ok("[daemon]\nsocket_mode = 640\n");
    assert_int_equal(cfg->daemon.socket_mode, 0640);
    config_free(cfg);

    /* booleans */
    static const char *const yes[] = {"true", "yes", "1", "on", "TRUE", "Yes"};
    static const char *const no[] = {"false", "no", "0", "off", "Off"};
    char text[256];
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        snprintf(text, sizeof(text), "[ca.letsencrypt]\nterms_agreed = %s\n", yes[i]);
        cfg = load_ok(text);
        assert_true(config_find_ca(cfg, "letsencrypt")->terms_agreed);
        config_free(cfg);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        snprintf(text, sizeof(text), "[ca.letsencrypt]\nterms_agreed = %s\n", no[i]);
        cfg = load_ok(text);
        assert_false(config_find_ca(cfg, "letsencrypt")->terms_agreed);
        config_free(cfg);
    }

    /* listen forms */
    cfg = load_ok("[challenge.http-01]\nlisten = 127.0.0.1:5002\n"
                  "[challenge.tls-alpn-01]\nlisten = [2001:db8::1]:65535\n");
    assert_string_equal(cfg->challenge.http01_listen, "127.0.0.1:5002");
    assert_string_equal(cfg->challenge.tlsalpn01_listen, "[2001:db8::1]:65535");
    config_free(cfg);

    /* plain http to a server on this host is allowed */
    cfg = load_ok("[ca.a]\ndirectory = http://127.0.0.1:14000/dir\n"
                  "[ca.b]\ndirectory = http://localhost/dir\n"
                  "[ca.c]\ndirectory = http://[::1]:4001/directory\n"
                  "[ca.d.e_f-9]\ndirectory = https://acme.example.com\n");
    assert_int_equal(cfg->ca_count, 6);
    assert_string_equal(config_find_ca(cfg, "c")->directory, "http://[::1]:4001/directory");
    assert_non_null(config_find_ca(cfg, "d.e_f-9"));
    config_free(cfg);
}

static void test_quoted_values(void **state)
{
    struct config *cfg = load_ok("[daemon]\n"
                                 "socket_group = \"certd\"\n"
                                 "state_dir = \"/var/lib/my certd \"\n"
                                 "[ca.letsencrypt]\n"
                                 "preferred_chain = \"  ISRG Root X1 \"\n"
                                 "eab_kid = \"\"quoted\"\"\n"
                                 "eab_hmac_key = \"abc_-def\"\n"
                                 "[access]\n"
                                 "admin_users = \"alice, bob\"\n"
                                 "[challenge.dns-01]\n"
                                 "hook = \"/opt/my hooks/dns\" \"arg one\" two\n");
    assert_string_equal(cfg->daemon.socket_group, "certd");
    assert_string_equal(cfg->daemon.state_dir, "/var/lib/my certd ");
    const struct config_ca *le = config_find_ca(cfg, "letsencrypt");
    assert_string_equal(le->preferred_chain, "  ISRG Root X1 ");
    /* only the outer pair is removed */
    assert_string_equal(le->eab_kid, "\"quoted\"");
    assert_string_equal(le->eab_hmac_key, "abc_-def");
    assert_int_equal(cfg->access.admin_users.count, 2);
    assert_string_equal(cfg->access.admin_users.items[1], "bob");
    /* the hook keeps its quotes: they are command-line syntax, split when the hook runs */
    assert_string_equal(cfg->challenge.dns01_hook, "\"/opt/my hooks/dns\" \"arg one\" two");
    char **argv = NULL;
    size_t argc = 0;
    char err[128];
    assert_int_equal(cmdline_split(cfg->challenge.dns01_hook, &argv, &argc, err, sizeof(err)), 0);
    assert_int_equal(argc, 3);
    assert_string_equal(argv[0], "/opt/my hooks/dns");
    assert_string_equal(argv[1], "arg one");
    assert_string_equal(argv[2], "two");
    cmdline_free(argv);
    config_free(cfg);
}

static void test_lists(void **state)
{
    struct config *cfg =
        load_ok("[access]\nadmin_users = alice,bob  carol ,\t,dave,\nadmin_groups =\n"
                "[acme]\ncontact = mailto:a@example.com mailto:b+tag@sub.example.org\n");
    assert_int_equal(cfg->access.admin_users.count, 4);
    assert_string_equal(cfg->access.admin_users.items[0], "alice");
    assert_string_equal(cfg->access.admin_users.items[1], "bob");
    assert_string_equal(cfg->access.admin_users.items[2], "carol");
    assert_string_equal(cfg->access.admin_users.items[3], "dave");
    assert_int_equal(cfg->access.admin_groups.count, 0);
    assert_int_equal(cfg->acme.contact.count, 2);
    assert_string_equal(cfg->acme.contact.items[1], "mailto:b+tag@sub.example.org");
    config_free(cfg);

    /* 256 items are accepted, 257 are not */
    char text[4000];
    size_t len = (size_t)snprintf(text, sizeof(text), "[access]\nadmin_users =");
    for (int i = 0; i < 256; i++)
        len += (size_t)snprintf(text + len, sizeof(text) - len, " %d", i);
    cfg = load_ok(text);
    assert_int_equal(cfg->access.admin_users.count, 256);
    assert_string_equal(cfg->access.admin_users.items[255], "255");
    config_free(cfg);
    snprintf(text + len, sizeof(text) - len, " x");
    expect_error(text, 2, "at most 256 items");
}

static void test_predefined_ca_override(void **state)
{
    struct config *cfg = load_ok("[ca.letsencrypt]\n"
                                 "terms_agreed = yes\n"
                                 "contact = mailto:le@example.com\n"
                                 "[ca.letsencrypt-staging]\n"
                                 "directory = https://staging.example/dir\n");
    assert_int_equal(cfg->ca_count, 2);
    const struct config_ca *le = config_find_ca(cfg, "letsencrypt");
    /* keys not given keep the predefined values */
    assert_string_equal(le->directory, "https://acme-v02.api.letsencrypt.org/directory");
    assert_true(le->terms_agreed);
    assert_int_equal(le->contact.count, 1);
    assert_string_equal(le->contact.items[0], "mailto:le@example.com");
    const struct config_ca *st = config_find_ca(cfg, "letsencrypt-staging");
    assert_string_equal(st->directory, "https://staging.example/dir");
    assert_false(st->terms_agreed);
    config_free(cfg);
}

static void test_default_ca(void **state)
{
    /* default_ca may name a CA defined further down */
    struct config *cfg = load_ok("[acme]\ndefault_ca = mine\n"
                                 "[ca.mine]\ndirectory = https://acme.example/dir\n");
    assert_string_equal(cfg->acme.default_ca, "mine");
    assert_non_null(config_find_ca(cfg, "mine"));
    config_free(cfg);

    cfg = load_ok("[acme]\ndefault_ca = letsencrypt-staging\n");
    assert_string_equal(cfg->acme.default_ca, "letsencrypt-staging");
    config_free(cfg);

    /* the error points at the default_ca line, not at the end of the file */
    expect_error("[acme]\n# the CA\n\ndefault_ca = nope\n[ca.other]\n"
                 "directory = https://x.example/d\n",
                 4, "default_ca 'nope' names no CA");
    expect_error("[acme]\ndefault_ca = Bad!\n", 2, "expected a CA name");
}

static void test_parse_errors(void **state)
{
    expect_error("[daemon]\n\n[foo]\n", 3, "unknown section [foo]");
    expect_error("[daemon]\nstate_dir = /x\nbogus = 1\n", 3,
                 "unknown key 'bogus' in section [daemon]");
    /* a key of another section is unknown here */
    expect_error("[acme]\nstate_dir = /x\n", 2, "unknown key 'state_dir' in section [acme]");
    expect_error("[ca.x]\ndirectory = https://a.example/\nlisten = 1.2.3.4:80\n", 3,
                 "unknown key 'listen' in section [ca.x]");
    expect_error("[daemon]\nstate_dir = /x\n# c\nstate_dir = /y\n", 4,
                 "duplicate key 'state_dir' in section [daemon]");
    expect_error("[acme]\n[daemon]\n[acme]\n", 3, "duplicate section [acme] (first at line 1)");
    expect_error("[ca.x]\ndirectory = https://a.example/\n\n[ca.x]\n", 4,
                 "duplicate section [ca.x] (first at line 1)");
    expect_error("[ca.letsencrypt]\n[ca.letsencrypt]\n", 2, "duplicate section [ca.letsencrypt]");
    /* the same key in two CA sections is not a duplicate */
    struct config *cfg = load_ok("[ca.a]\ndirectory = https://a.example/\n"
                                 "[ca.b]\ndirectory = https://b.example/\n");
    config_free(cfg);

    expect_error("[daemon]\n# fine\nstate_dir /x\n", 3, "expected 'key = value'");
    expect_error("[daemon\nstate_dir = /x\n", 1, "missing ']'");
    expect_error("[daemon] # comment\n", 1, "missing ']'");
    expect_error("state_dir = /x\n[daemon]\n", 1, "key 'state_dir' outside of any section");
    expect_error("[daemon]\n = /x\n", 2, "missing key name");
    expect_error("[challenge.foo-01]\n", 1, "unknown challenge type 'foo-01'");
    expect_error("[challenge.]\n", 1, "unknown challenge type");
    expect_error("[ca.Upper]\n", 1, "invalid CA name 'Upper'");
    expect_error("[ca.]\n", 1, "invalid CA name");
    expect_error("[ca.-x]\n", 1, "invalid CA name");
    expect_error("[ca.a234567890123456789012345678901234567890123456789012345678901234]\n", 1,
                 "invalid CA name");
    expect_error("[daemon]\nstate_dir = \"/x\n", 2, "unterminated quoted value");
    expect_error("[daemon]\nstate_dir = \"\n", 2, "unterminated quoted value");
}

static void test_long_lines_and_big_files(void **state)
{
    size_t n = 4096;
    char *text = malloc(n + 64);
    assert_non_null(text);
    /* exactly 4096 characters is fine */
    int head = snprintf(text, n + 64, "[ca.letsencrypt]\npreferred_chain = ");
    size_t line_start = strlen("[ca.letsencrypt]\n");
    memset(text + head, 'x', line_start + n - (size_t)head);
    text[line_start + n] = '\n';
    text[line_start + n + 1] = '\0';
    struct config *cfg = load_ok(text);
    assert_int_equal(strlen(config_find_ca(cfg, "letsencrypt")->preferred_chain),
                     n - strlen("preferred_chain = "));
    config_free(cfg);
    /* one more is not */
    text[line_start + n] = 'x';
    text[line_start + n + 1] = '\n';
    text[line_start + n + 2] = '\0';
    expect_error(text, 2, "line longer than 4096");
    free(text);

    /* over 1 MiB of comments */
    size_t big = 1024 * 1024 + 1;
    text = malloc(big + 1);
    assert_non_null(text);
    memset(text, '\n', big);
    text[0] = '#';
    text[big] = '\0';
    expect_error(text, 0, "larger than 1048576 bytes");
    /* exactly 1 MiB is read */
    text[big - 1] = '\0';
    cfg = load_ok(text);
    config_free(cfg);
    free(text);

    write_bytes("[daemon]\nstate_dir = /a\0b\n", sizeof("[daemon]\nstate_dir = /a\0b\n") - 1);
    cfg = (struct config *)0x1;
    char err[512];
    assert_int_equal(config_load(conf_path, &cfg, err, sizeof(err)), -EINVAL);
    assert_null(cfg);
    assert_non_null(strstr(err, "NUL byte"));
}

static void test_missing_file(void **state)
{
    struct config *cfg = (struct config *)0x1;
    char err[512] = "";
    char path[4300];
    snprintf(path, sizeof(path), "%s/does-not-exist.conf", tmpdir);
    assert_int_equal(config_load(path, &cfg, err, sizeof(err)), -ENOENT);
    assert_null(cfg);
    char want[4400];
    snprintf(want, sizeof(want), "%s: cannot open: ", path);
    assert_int_equal(strncmp(err, want, strlen(want)), 0);

    assert_int_equal(config_load(tmpdir, &cfg, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "not a regular file"));
}

static void test_bad_values(void **state)
{
    expect_error("[daemon]\nsocket_mode = 0999\n", 2,
                 "invalid value '0999' for socket_mode in section [daemon]: expected an octal "
                 "mode");
    expect_error("[daemon]\nsocket_mode = 01777\n", 2, "at most 777");
    expect_error("[daemon]\nsocket_mode = 1000\n", 2, "at most 777");
    expect_error("[daemon]\nsocket_mode = 0x1ff\n", 2, "octal mode");
    expect_error("[daemon]\nsocket_mode = -1\n", 2, "octal mode");
    expect_error("[daemon]\nsocket_mode =\n", 2, "octal mode");
    expect_error("[daemon]\nstate_dir = var/lib/certd\n", 2, "expected an absolute path");
    expect_error("[daemon]\nstate_dir =\n", 2, "expected an absolute path");
    expect_error(
        "[daemon]\nsocket = /run/certd/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\n",
        2, "at most 107 bytes");
    expect_error("[ca.x]\ndirectory = https://a.example/\nca_bundle = ca.pem\n", 3,
                 "absolute path");
    expect_error("[daemon]\nsocket_group =\n", 2, "expected a user or group name");
    expect_error("[daemon]\nuser = -root\n", 2, "expected a user or group name");
    expect_error("[daemon]\nuser = a b\n", 2, "expected a user or group name");
    expect_error("[daemon]\nlog_level = loud\n", 2,
                 "expected error, warning, notice, info or debug");
    expect_error("[acme]\naccount_key_type = dsa\n", 2, "expected ec-p256, ec-p384");
    expect_error("[daemon]\napi_threads = 17\n", 2, "expected a whole number from 0 to 16");
    expect_error("[daemon]\napi_threads = -1\n", 2, "from 0 to 16");
    expect_error("[acme]\nmax_concurrent_orders = 0\n", 2, "expected a whole number from 1 to 64");
    expect_error("[acme]\nmax_concurrent_orders = 65\n", 2, "from 1 to 64");
    expect_error("[acme]\nmax_concurrent_orders = 4x\n", 2, "from 1 to 64");
    expect_error("[acme]\nmax_concurrent_orders = +4\n", 2, "from 1 to 64");
    expect_error("[acme]\nmax_concurrent_orders = 99999999999999999999\n", 2, "from 1 to 64");
    expect_error("[acme]\ncontact = mailto:a@example.com, admin@example.com\n", 2,
                 "item 2: expected a mailto: URI");
    expect_error("[acme]\ncontact = mailto:nobody\n", 2, "mailto:");
    expect_error("[acme]\ncontact = mailto:@example.com\n", 2, "mailto:");
    expect_error("[access]\nadmin_users = alice, b@d!\n", 2, "item 2: expected a user");
    expect_error("[ca.x]\ndirectory = http://example.com/dir\n", 2,
                 "expected an https:// URL (http:// only for 127.0.0.1, localhost or [::1])");
    expect_error("[ca.x]\ndirectory = http://127.0.0.1.evil.example/dir\n", 2, "https://");
    expect_error("[ca.x]\ndirectory = http://localhost@evil.example/dir\n", 2, "https://");
    expect_error("[ca.x]\ndirectory = ftp://example.com/dir\n", 2, "https://");
    expect_error("[ca.x]\ndirectory = https://\n", 2, "https://");
    expect_error("[ca.x]\ndirectory = https://a.example:99999/\n", 2, "https://");
    expect_error("[ca.x]\ndirectory = https://a.example/a b\n", 2, "https://");
    expect_error("[ca.x]\ndirectory = https://a.example/\nterms_agreed = maybe\n", 3,
                 "expected a boolean");
    for (unsigned i = 0; i < 2; i++) {
        static const char *const bad[] = {
            "1.2.3.4",         "1.2.3.4:0", "1.2.3.4:65536", "::1:80",      "[::1]80", "[::1]:",
            "host.example:80", "1.2.3:80",  "[1.2.3.4]:80",  "1.2.3.4: 80", ":80",     "[]:80",
        };
        const char *sec = i == 0 ? "challenge.http-01" : "challenge.tls-alpn-01";
        for (size_t j = 0; j < sizeof(bad) / sizeof(bad[0]); j++) {
            char text[256];
            snprintf(text, sizeof(text), "[%s]\nlisten = %s\n", sec, bad[j]);
            expect_error(text, 2, "expected IPV4:PORT or [IPV6]:PORT");
        }
    }
    expect_error("[challenge.dns-01]\ntimeout = 5x\n", 2, "expected a duration from 1s to 3600s");
    expect_error("[challenge.dns-01]\ntimeout = 0\n", 2, "from 1s");
    expect_error("[challenge.dns-01]\ntimeout = 2h\n", 2, "to 3600s");
    expect_error("[challenge.dns-01]\npropagation_wait = -1\n", 2, "duration");
}

static void test_max_new_orders(void **state)
{
    struct config *cfg = load_ok("[ca.letsencrypt]\nmax_new_orders = 1\n"
                                 "[ca.mine]\ndirectory = https://a.example/\n");
    assert_int_equal(config_find_ca(cfg, "letsencrypt")->max_new_orders, 1);
    assert_int_equal(config_find_ca(cfg, "letsencrypt-staging")->max_new_orders, 250);
    assert_int_equal(config_find_ca(cfg, "mine")->max_new_orders, 250);
    config_free(cfg);

    expect_error("[ca.letsencrypt]\n\nmax_new_orders = 0\n", 3,
                 "invalid value '0' for max_new_orders in section [ca.letsencrypt]: expected a "
                 "whole number from 1 to 100000");
    expect_error("[ca.letsencrypt]\nmax_new_orders = 100001\n", 2, "from 1 to 100000");
    expect_error("[ca.letsencrypt]\nmax_new_orders = 25O\n", 2, "from 1 to 100000");
    expect_error("[ca.letsencrypt]\nmax_new_orders = 5\nmax_new_orders = 6\n", 3,
                 "duplicate key 'max_new_orders' in section [ca.letsencrypt]");
    expect_error("[acme]\nmax_new_orders = 5\n", 2,
                 "unknown key 'max_new_orders' in section [acme]");
}

static void test_renewal_section(void **state)
{
    static const char *const good[] = {"30d",   "12h",         "3600",        "1",    "90m",
                                       "0.33",  "0.5",         "33%",         "1%",   "99%",
                                       "12.5%", "0.999999999", "0.000000001", "00.5", "99.9%"};
    char text[256];
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        snprintf(text, sizeof(text), "[renewal]\nrenew_before = %s\n", good[i]);
        struct config *cfg = load_ok(text);
        assert_string_equal(cfg->renewal.renew_before, good[i]);
        config_free(cfg);
    }
    static const char *const bad[] = {
        "0",          "0s",           "0d",   "0.0", "0%",   "1.0",   "1.5",  "100%",  "150%",
        ".5",         "5.",           "33.%", "%",   "-0.5", "+0.5",  "0,5",  "1e-1",  "inf",
        "nan",        "30d%",         "0.5d", "x",   "5 d",  "1h30m", "0x10", "1000%", "0.5%%",
        "4294967296", "0.1234567891",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), "[renewal]\n# policy\nrenew_before = %s\n", bad[i]);
        expect_error(text, 3, "for renew_before in section [renewal]: expected a duration above 0");
    }
    /* empty: NULL already means the default policy, so an empty value is a mistake */
    expect_error("[renewal]\nrenew_before =\n", 2, "fraction of the lifetime");
    /* the bad value is quoted (it is no secret) */
    expect_error("[renewal]\nrenew_before = 2 weeks\n", 2, "invalid value '2 weeks'");

    struct config *cfg = load_ok("[renewal]\ndeploy_timeout = 1\n");
    assert_int_equal(cfg->renewal.deploy_timeout, 1);
    assert_null(cfg->renewal.renew_before);
    config_free(cfg);
    cfg = load_ok("[renewal]\ndeploy_timeout = 1h\n");
    assert_int_equal(cfg->renewal.deploy_timeout, 3600);
    config_free(cfg);
    expect_error("[renewal]\ndeploy_timeout = 0\n", 2,
                 "invalid value '0' for deploy_timeout in section [renewal]: expected a duration "
                 "from 1s to 3600s");
    expect_error("[renewal]\ndeploy_timeout = 3601\n", 2, "to 3600s");
    expect_error("[renewal]\ndeploy_timeout = 5x\n", 2, "duration");

    expect_error("[renewal]\n[acme]\n\n[renewal]\n", 4,
                 "duplicate section [renewal] (first at line 1)");
    expect_error("[renewal]\nhook = /bin/true\n", 2, "unknown key 'hook' in section [renewal]");
    expect_error("[renewal]\nrenew_before = 30d\nrenew_before = 20d\n", 3,
                 "duplicate key 'renew_before' in section [renewal]");
}

static void test_deploy_hooks_checked_at_load(void **state)
{
    char msg[1024];
    expect_error_msg("[renewal]\n\ndeploy_hook = /usr/bin/deploy --token=SECRET42 'x\n", 3,
                     "invalid value for deploy_hook in section [renewal]: expected a command "
                     "line: unterminated quote",
                     msg, sizeof(msg));
    assert_null(strstr(msg, "SECRET42"));
    expect_error_msg("[domain.example.com]\ndeploy_hook = deploy --token=SECRET42\n", 2,
                     "invalid value for deploy_hook in section [domain.example.com]: expected a "
                     "command line: ",
                     msg, sizeof(msg));
    assert_non_null(strstr(msg, "absolute path"));
    assert_null(strstr(msg, "SECRET42"));
    expect_error("[renewal]\ndeploy_hook =\n", 2, "empty command");
    expect_error("[domain.example.com]\ndeploy_hook = /x \\q\n", 2, "unknown escape");
    expect_error_msg("[domain.example.com]\ndeploy_hook = /x SECRET42\ndeploy_hook = /y\n", 3,
                     "duplicate key 'deploy_hook' in section [domain.example.com]", msg,
                     sizeof(msg));
    assert_null(strstr(msg, "SECRET42"));

    struct config *cfg = load_ok("[renewal]\ndeploy_hook = \"/opt/my hooks/deploy\" 'a b'\n");
    assert_string_equal(cfg->renewal.deploy_hook, "\"/opt/my hooks/deploy\" 'a b'");
    char **argv = NULL;
    size_t argc = 0;
    char err[128];
    assert_int_equal(cmdline_split(cfg->renewal.deploy_hook, &argv, &argc, err, sizeof(err)), 0);
    assert_int_equal(argc, 2);
    assert_string_equal(argv[0], "/opt/my hooks/deploy");
    assert_string_equal(argv[1], "a b");
    cmdline_free(argv);
    config_free(cfg);
}

static void test_domain_sections(void **state)
{
    /* names are normalised like the API's: Unicode to A-labels, lower case, no trailing dot */
    struct config *cfg = load_ok("[domain.Bücher.example]\ndeploy_hook = /bin/books\n"
                                 "[ domain.WWW.Example.COM. ]\n"
                                 "[domain.*.Example.net]\ndeploy_hook = /bin/wild\n");
    assert_int_equal(cfg->domain_count, 3);
    const struct config_domain *d = config_find_domain(cfg, "xn--bcher-kva.example");
    assert_non_null(d);
    assert_string_equal(d->name, "xn--bcher-kva.example");
    assert_string_equal(d->deploy_hook, "/bin/books");
    /* lookups take the normalised name only */
    assert_null(config_find_domain(cfg, "Bücher.example"));
    d = config_find_domain(cfg, "www.example.com");
    assert_non_null(d);
    assert_null(d->deploy_hook);
    d = config_find_domain(cfg, "*.example.net");
    assert_non_null(d);
    assert_string_equal(d->deploy_hook, "/bin/wild");
    config_free(cfg);

    /* duplicates are found after normalisation, at the second header */
    expect_error("[domain.example.com]\n[renewal]\n[domain.EXAMPLE.com.]\n", 3,
                 "duplicate section [domain.example.com] (first at line 1)");
    expect_error("[domain.xn--bcher-kva.example]\ndeploy_hook = /bin/a\n\n"
                 "[domain.bücher.example]\n",
                 4, "duplicate section [domain.xn--bcher-kva.example] (first at line 1)");
    expect_error("[domain.*.example.com]\n[domain.*.EXAMPLE.COM]\n", 2,
                 "duplicate section [domain.*.example.com]");

    /* invalid names point at the header and say why */
    expect_error("[renewal]\n[domain.]\n", 2, "invalid domain name '' in section header");
    expect_error("[domain.a_b.example]\n", 1,
                 "invalid domain name 'a_b.example' in section header");
    expect_error("[domain.localhost]\n", 1, "invalid domain name 'localhost'");
    expect_error("[domain.192.0.2.1]\n", 1, "invalid domain name");
    expect_error("[domain.*.*.example.com]\n", 1, "invalid domain name");
    expect_error("[domain.a.*.example.com]\n", 1, "invalid domain name");
    expect_error("[domain.-a.example.com]\n", 1, "invalid domain name");

    /* only deploy_hook belongs in a domain section */
    expect_error("[domain.example.com]\nrenew_before = 30d\n", 2,
                 "unknown key 'renew_before' in section [domain.example.com]");
    expect_error("[domain.example.com]\ndirectory = https://a.example/\n", 2,
                 "unknown key 'directory'");
    expect_error("[domains.example.com]\n", 1, "unknown section [domains.example.com]");

    /* many sections (the array grows) with the same key in each */
    static char text[64 * 1024];
    size_t len = 0;
    for (int i = 0; i < 300; i++)
        len +=
            (size_t)snprintf(text + len, sizeof(text) - len,
                             "[domain.host%d.example.com]\ndeploy_hook = /bin/deploy %d\n", i, i);
    cfg = load_ok(text);
    assert_int_equal(cfg->domain_count, 300);
    for (int i = 0; i < 300; i += 37) {
        char name[64], hook[64];
        snprintf(name, sizeof(name), "host%d.example.com", i);
        snprintf(hook, sizeof(hook), "/bin/deploy %d", i);
        d = config_find_domain(cfg, name);
        assert_non_null(d);
        assert_string_equal(d->deploy_hook, hook);
    }
    assert_string_equal(cfg->domains[299].name, "host299.example.com");
    config_free(cfg);
    /* and a duplicate far down still names the first line */
    snprintf(text + len, sizeof(text) - len, "[domain.HOST17.example.com]\n");
    expect_error(text, 601, "duplicate section [domain.host17.example.com] (first at line 35)");
}

static void test_ca_whole_section_checks(void **state)
{
    /* errors found after the section is read point at its header */
    expect_error(
        "[acme]\ncontact = mailto:a@b.example\n\n[ca.mine]\ncontact = mailto:x@y.example\n", 4,
        "section [ca.mine] needs a directory URL");
    expect_error("[ca.mine]\ndirectory = https://a.example/\neab_kid = k1\n", 1,
                 "eab_kid and eab_hmac_key go together");
    expect_error("\n[ca.letsencrypt]\neab_hmac_key = c2VjcmV0\n", 2,
                 "eab_kid and eab_hmac_key go together");
}

static void test_dns_hook_checked_at_load(void **state)
{
    expect_error("[challenge.dns-01]\n\nhook = /usr/bin/hook \"unterminated\n", 3,
                 "invalid value for hook in section [challenge.dns-01]: expected a command line: "
                 "unterminated quote");
    expect_error("[challenge.dns-01]\nhook = dns-hook --add\n", 2, "absolute path");
    expect_error("[challenge.dns-01]\nhook = /usr/bin/hook \\q\n", 2, "unknown escape");
    expect_error("[challenge.dns-01]\nhook = /usr/bin/hook trailing\\\n", 2, "trailing backslash");
    expect_error("[challenge.dns-01]\nhook =\n", 2, "empty command");
    /* the hook value is not echoed (it may carry an API token) */
    char msg[1024];
    expect_error_msg("[challenge.dns-01]\nhook = /usr/bin/hook --token=TOKEN123 'x\n", 2,
                     "unterminated quote", msg, sizeof(msg));
    assert_null(strstr(msg, "TOKEN123"));
}

static void test_eab_secret_never_echoed(void **state)
{
    static const char secret[] = "SuperSecretHmacKey_0123456789";
    char text[512], msg[1024];

    /* invalid secret value */
    snprintf(text, sizeof(text),
             "[ca.x]\ndirectory = https://a.example/\neab_kid = k\n"
             "eab_hmac_key = %s!!\n",
             secret);
    expect_error_msg(text, 4,
                     "invalid value for eab_hmac_key in section [ca.x]: expected a "
                     "base64url-encoded key",
                     msg, sizeof(msg));
    assert_null(strstr(msg, "SuperSecret"));

    /* valid secret, error elsewhere in the section */
    snprintf(text, sizeof(text),
             "[ca.x]\ndirectory = https://a.example/\n"
             "eab_hmac_key = %s\n",
             secret);
    expect_error_msg(text, 1, "go together", msg, sizeof(msg));
    assert_null(strstr(msg, "SuperSecret"));

    /* duplicate key */
    snprintf(text, sizeof(text), "[ca.x]\neab_hmac_key = %s\neab_hmac_key = %s\n", secret, secret);
    expect_error_msg(text, 3, "duplicate key 'eab_hmac_key'", msg, sizeof(msg));
    assert_null(strstr(msg, "SuperSecret"));

    /* typo in the key name, or no '=' at all */
    snprintf(text, sizeof(text), "[ca.x]\neab_hmac_kye = %s\n", secret);
    expect_error_msg(text, 2, "unknown key 'eab_hmac_kye'", msg, sizeof(msg));
    assert_null(strstr(msg, "SuperSecret"));
    snprintf(text, sizeof(text), "[ca.x]\neab_hmac_key %s\n", secret);
    expect_error_msg(text, 2, "expected 'key = value'", msg, sizeof(msg));
    assert_null(strstr(msg, "SuperSecret"));

    /* misquoted */
    snprintf(text, sizeof(text), "[ca.x]\neab_hmac_key = \"%s\n", secret);
    expect_error_msg(text, 2, "unterminated quoted value", msg, sizeof(msg));
    assert_null(strstr(msg, "SuperSecret"));
}

static void test_parse_duration(void **state)
{
    static const struct {
        const char *in;
        uint64_t want;
    } ok[] = {
        {"0", 0},
        {"90", 90},
        {"30s", 30},
        {"5m", 300},
        {"2h", 7200},
        {"7d", 604800},
        {"4294967295", 4294967295ULL},
        {"49710d", 49710ULL * 86400},
        {"007", 7},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t v = 12345;
        assert_int_equal(config_parse_duration(ok[i].in, &v), 0);
        assert_int_equal(v, ok[i].want);
    }
    static const char *const bad[] = {"",    "s",     "5x", "5mm", "-5",   " 5",  "5 ",
                                      "5 m", "1h30m", "+5", "5S",  "0x10", "1.5h"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t v = 12345;
        assert_int_equal(config_parse_duration(bad[i], &v), -EINVAL);
        assert_int_equal(v, 12345);
    }
    uint64_t v = 1;
    assert_int_equal(config_parse_duration(NULL, &v), -EINVAL);
    assert_int_equal(config_parse_duration("4294967296", &v), -ERANGE);
    assert_int_equal(config_parse_duration("49711d", &v), -ERANGE);
    assert_int_equal(config_parse_duration("99999999999999999999999h", &v), -ERANGE);
    assert_int_equal(v, 1);
}

/* The shipped example must load as it is (all defaults), and with every key uncommented. */
/* [access] roles beyond admin, and [api.https] with its whole-section check. */
static void test_roles_and_https(void **state)
{
    struct config *cfg = load_ok("[access]\ndeployer_users = web1, 1001\ndeployer_groups = fleet\n"
                                 "reader_users = mon\nreader_groups = 2000 staff\n");
    assert_int_equal(cfg->access.deployer_users.count, 2);
    assert_string_equal(cfg->access.deployer_users.items[1], "1001");
    assert_string_equal(cfg->access.deployer_groups.items[0], "fleet");
    assert_string_equal(cfg->access.reader_users.items[0], "mon");
    assert_int_equal(cfg->access.reader_groups.count, 2);
    assert_null(cfg->https.listen);
    config_free(cfg);
    expect_error("[access]\nreader_users = -bad\n", 2, "for reader_users in section [access]");

    cfg = load_ok("[api.https]\nlisten = 127.0.0.1:8443\ncert = /etc/certd/c.pem\n"
                  "key = /etc/certd/k.pem\nclient_ca = /etc/certd/ca.pem\n");
    assert_string_equal(cfg->https.listen, "127.0.0.1:8443");
    assert_string_equal(cfg->https.cert, "/etc/certd/c.pem");
    assert_string_equal(cfg->https.key, "/etc/certd/k.pem");
    assert_string_equal(cfg->https.client_ca, "/etc/certd/ca.pem");
    config_free(cfg);
    cfg = load_ok("[api.https]\nlisten = [::1]:443\ncert = /c\nkey = /k\n");
    assert_null(cfg->https.client_ca);
    config_free(cfg);
    expect_error("[acme]\n[api.https]\nlisten = 127.0.0.1:8443\ncert = /c\n", 2,
                 "section [api.https] needs listen, cert and key");
    expect_error("[api.https]\n", 1, "needs listen, cert and key");
    expect_error("[api.https]\nlisten = localhost:8443\n", 2,
                 "for listen in section [api.https]: expected IPV4:PORT");
    expect_error("[api.https]\nlisten = 127.0.0.1:8443\ncert = c.pem\n", 3, "absolute path");
    expect_error("[api.http]\n", 1, "unknown section [api.http]");
}

static void test_example_file(void **state)
{
    const char *src = getenv("CERTD_SOURCE_DIR");
    char path[4096];
    if (src && *src) {
        snprintf(path, sizeof(path), "%s/packaging/certd.conf.example", src);
    } else {
        /* run outside ctest: find the tree from this file's own (absolute) path */
        const char *tail = strstr(__FILE__, "tests/unit/");
        int len = tail ? (int)(tail - __FILE__) : 0;
        snprintf(path, sizeof(path), "%.*spackaging/certd.conf.example", len, __FILE__);
    }
    FILE *f = fopen(path, "re");
    assert_non_null(f);
    static char text[64 * 1024], uncommented[64 * 1024];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';

    struct config *cfg = load_ok(text), *def = NULL;
    assert_int_equal(config_defaults(&def), 0);
    assert_string_equal(cfg->daemon.state_dir, def->daemon.state_dir);
    assert_string_equal(cfg->daemon.socket, def->daemon.socket);
    assert_int_equal(cfg->daemon.socket_mode, def->daemon.socket_mode);
    assert_string_equal(cfg->acme.default_ca, def->acme.default_ca);
    assert_int_equal(cfg->ca_count, def->ca_count);
    assert_int_equal(cfg->challenge.dns01_timeout, def->challenge.dns01_timeout);
    assert_int_equal(cfg->renewal.deploy_timeout, def->renewal.deploy_timeout);
    assert_null(cfg->renewal.renew_before);
    assert_null(cfg->renewal.deploy_hook);
    assert_int_equal(cfg->domain_count, 0);
    assert_int_equal(config_find_ca(cfg, "letsencrypt")->max_new_orders, 250);
    config_free(def);
    config_free(cfg);

    /* "#key = value" and "#[section]" lines are settings; "# text" lines stay comments */
    size_t o = 0, keys = 0;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) + 1 : strlen(p);
        if (p[0] == '#' && len > 1 && p[1] != ' ' && p[1] != '\n') {
            p++;
            len--;
            keys++;
        }
        memcpy(uncommented + o, p, len);
        o += len;
        p += len;
    }
    uncommented[o] = '\0';
    assert_true(keys >= 33);
    cfg = load_ok(uncommented);
    assert_string_equal(cfg->daemon.socket_group, "certd");
    assert_string_equal(cfg->challenge.dns01_hook,
                        "/usr/local/lib/certd/dns-hook --zone example.com");
    const struct config_ca *ex = config_find_ca(cfg, "example");
    assert_non_null(ex);
    assert_non_null(ex->eab_hmac_key);
    assert_true(config_find_ca(cfg, "letsencrypt")->terms_agreed);
    assert_int_equal(ex->max_new_orders, 250);
    assert_string_equal(cfg->renewal.renew_before, "30d");
    assert_string_equal(cfg->renewal.deploy_hook, "/usr/local/lib/certd/deploy-hook");
    assert_int_equal(cfg->renewal.deploy_timeout, 300);
    const struct config_domain *d = config_find_domain(cfg, "www.example.com");
    assert_non_null(d);
    assert_string_equal(d->deploy_hook, "/usr/local/lib/certd/reload-nginx --graceful");
    config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_empty_file_gives_defaults),
        cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_syntax_details),
        cmocka_unit_test(test_quoted_values),
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_predefined_ca_override),
        cmocka_unit_test(test_default_ca),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_long_lines_and_big_files),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_max_new_orders),
        cmocka_unit_test(test_renewal_section),
        cmocka_unit_test(test_deploy_hooks_checked_at_load),
        cmocka_unit_test(test_domain_sections),
        cmocka_unit_test(test_ca_whole_section_checks),
        cmocka_unit_test(test_dns_hook_checked_at_load),
        cmocka_unit_test(test_eab_secret_never_echoed),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_roles_and_https),
        cmocka_unit_test(test_example_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
