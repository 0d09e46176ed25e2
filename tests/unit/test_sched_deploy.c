/* Deploy hooks run for real: shell scripts in a temporary directory, events in a real store. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"
#include "sched/deploy.h"
#include "store/store.h"

struct fixture {
    char dir[PATH_MAX];
    char db[PATH_MAX + 16];
    struct store *st;
    struct config *cfg;
};

static const char *const test_names[] = {"example.com", "www.example.com", "*.example.com"};

/* 2026-01-01T00:00:00Z and 2026-04-01T12:34:56Z */
static const struct deploy_cert test_cert = {
    .domain = "example.com",
    .names = test_names,
    .name_count = 3,
    .serial = "04a1b2c3d4e5f60718293a4b5c6d7e8f9012",
    .not_before = 1767225600,
    .not_after = 1775046896,
    .fingerprint_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    .renewed = true,
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    const char *base = getenv("CERTD_TEST_TMPDIR");
    char err[256];
    if (!f)
        return -1;
    if (!base || !*base)
        base = "/tmp";
    mkdir(base, 0700);
    snprintf(f->dir, sizeof(f->dir), "%s/sched-deploy-XXXXXX", base);
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->db, sizeof(f->db), "%s/certd.db", f->dir);
    if (store_open(f->db, &f->st, err, sizeof(err)) != 0) {
        fprintf(stderr, "store_open: %s\n", err);
        return -1;
    }
    if (config_defaults(&f->cfg) != 0)
        return -1;
    free(f->cfg->daemon.socket);
    f->cfg->daemon.socket = strdup("/run/certd-test/api.sock");
    if (!f->cfg->daemon.socket)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[PATH_MAX + 32];
    store_close(f->st);
    config_free(f->cfg);
    /* the hooks' scripts and their output files */
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", f->dir);
    free(f);
    return 0;
}

/* Writes an executable shell script NAME in the fixture directory; its path goes to PATH. Every
 * "@DIR@" in BODY is replaced by that directory. */
static void write_hook(struct fixture *f, const char *name, const char *body, char *path,
                       size_t pathsz)
{
    snprintf(path, pathsz, "%s/%s", f->dir, name);
    FILE *fp = fopen(path, "we");
    assert_non_null(fp);
    fputs("#!/bin/sh\n", fp);
    for (const char *p = body; *p;) {
        const char *at = strstr(p, "@DIR@");
        size_t n = at ? (size_t)(at - p) : strlen(p);
        fwrite(p, 1, n, fp);
        if (!at)
            break;
        fputs(f->dir, fp);
        p = at + 5;
    }
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(chmod(path, 0700), 0);
}

static void set_str(char **slot, const char *v)
{
    free(*slot);
    *slot = v ? strdup(v) : NULL;
    if (v)
        assert_non_null(*slot);
}

/* Adds a [domain.NAME] section with HOOK to the fixture's configuration. */
static void add_domain_hook(struct fixture *f, const char *name, const char *hook)
{
    struct config *cfg = f->cfg;
    struct config_domain *d = realloc(cfg->domains, (cfg->domain_count + 1) * sizeof(*d));
    assert_non_null(d);
    cfg->domains = d;
    d = &cfg->domains[cfg->domain_count++];
    d->name = strdup(name);
    d->deploy_hook = strdup(hook);
    assert_non_null(d->name);
    assert_non_null(d->deploy_hook);
}

/* Every event of the store, oldest first. */
static struct store_event **events(struct fixture *f, size_t *count)
{
    struct store_event **list = NULL;
    assert_int_equal(store_event_list(f->st, 0, 100, &list, count), 0);
    return list;
}

static json_t *detail_of(const struct store_event *ev)
{
    json_error_t jerr;
    json_t *d = json_loads(ev->detail_json, JSON_REJECT_DUPLICATES, &jerr);
    if (!d)
        print_error("bad detail <%s>: %s\n", ev->detail_json, jerr.text);
    assert_non_null(d);
    return d;
}

static char *read_text(const char *path)
{
    FILE *fp = fopen(path, "re");
    assert_non_null(fp);
    static char buf[64 * 1024];
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    return buf;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_no_hook(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(deploy_run(f->cfg, f->st, &test_cert), 0);
    /* a domain section without a hook is no hook either */
    struct config_domain *d = calloc(1, sizeof(*d));
    assert_non_null(d);
    d->name = strdup("example.com");
    f->cfg->domains = d;
    f->cfg->domain_count = 1;
    assert_int_equal(deploy_run(f->cfg, f->st, &test_cert), 0);
    /* and another domain's hook is not this one's */
    f->cfg->domains[0].deploy_hook = strdup("/bin/false");
    struct deploy_cert other = test_cert;
    other.domain = "other.example";
    assert_int_equal(deploy_run(f->cfg, f->st, &other), 0);

    int64_t last = -1;
    assert_int_equal(store_event_last_id(f->st, &last), 0);
    assert_int_equal(last, 0);

    assert_int_equal(deploy_run(NULL, f->st, &test_cert), -EINVAL);
    assert_int_equal(deploy_run(f->cfg, f->st, NULL), -EINVAL);
}

/* The hook's environment is exactly the documented one. /proc/$$/environ is what the shell was
 * started with, before it adds PWD and the like. */
static void test_environment_exact(void **state)
{
    struct fixture *f = *state;
    char hook[PATH_MAX + 32], envfile[PATH_MAX + 32];
    write_hook(f, "env-hook", "tr '\\000' '\\n' < /proc/$$/environ > @DIR@/env.out\n", hook,
               sizeof(hook));
    snprintf(envfile, sizeof(envfile), "%s/env.out", f->dir);
    set_str(&f->cfg->renewal.deploy_hook, hook);

    assert_int_equal(deploy_run(f->cfg, f->st, &test_cert), 0);

    static const char *const want[] = {
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        "CERTD_DOMAIN=example.com",
        "CERTD_NAMES=example.com www.example.com *.example.com",
        "CERTD_SERIAL=04a1b2c3d4e5f60718293a4b5c6d7e8f9012",
        "CERTD_NOT_BEFORE=2026-01-01T00:00:00Z",
        "CERTD_NOT_AFTER=2026-04-01T12:34:56Z",
        "CERTD_FINGERPRINT=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "CERTD_EVENT=renewed",
        "CERTD_SOCKET=/run/certd-test/api.sock",
    };
    const size_t nwant = sizeof(want) / sizeof(want[0]);
    char *text = read_text(envfile);
    size_t lines = 0;
    bool seen[sizeof(want) / sizeof(want[0])] = {false};
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lines++;
        size_t i = 0;
        while (i < nwant && strcmp(line, want[i]) != 0)
            i++;
        if (i == nwant)
            print_error("unexpected variable <%s>\n", line);
        assert_true(i < nwant);
        assert_false(seen[i]);
        seen[i] = true;
    }
    assert_int_equal(lines, nwant);

    /* first certificate: "issued"; names not starting with the primary get it put first */
    static const char *const alts[] = {"www.example.com"};
    struct deploy_cert first = test_cert;
    first.renewed = false;
    first.names = alts;
    first.name_count = 1;
    assert_int_equal(deploy_run(f->cfg, f->st, &first), 0);
    text = read_text(envfile);
    assert_non_null(strstr(text, "\nCERTD_EVENT=issued\n"));
    assert_non_null(strstr(text, "\nCERTD_NAMES=example.com www.example.com\n"));

    size_t count = 0;
    struct store_event **list = events(f, &count);
    assert_int_equal(count, 2);
    assert_string_equal(list[0]->type, "deploy.succeeded");
    assert_string_equal(list[0]->domain, "example.com");
    assert_string_equal(list[0]->actor, "certd");
    json_t *d = detail_of(list[0]);
    assert_string_equal(json_string_value(json_object_get(d, "hook")), "global");
    assert_true(json_is_integer(json_object_get(d, "exit_status")));
    assert_int_equal(json_integer_value(json_object_get(d, "exit_status")), 0);
    assert_true(json_is_null(json_object_get(d, "signal")));
    assert_true(json_is_false(json_object_get(d, "timed_out")));
    assert_string_equal(json_string_value(json_object_get(d, "stdout")), "");
    assert_string_equal(json_string_value(json_object_get(d, "stderr")), "");
    assert_null(json_object_get(d, "error"));
    json_decref(d);
    store_event_list_free(list, count);
}

static void test_exit_status_and_output(void **state)
{
    struct fixture *f = *state;
    char hook[PATH_MAX + 32];
    write_hook(f, "fail-hook",
               "echo 'reloading nginx'\n"
               "echo 'nginx: [emerg] cannot load certificate' >&2\n"
               "exit 3\n",
               hook, sizeof(hook));
    set_str(&f->cfg->renewal.deploy_hook, hook);

    assert_int_equal(deploy_run(f->cfg, f->st, &test_cert), 1);

    size_t count = 0;
    struct store_event **list = events(f, &count);
    assert_int_equal(count, 1);
    assert_string_equal(list[0]->type, "deploy.failed");
    assert_string_equal(list[0]->domain, "example.com");
    assert_string_equal(list[0]->actor, "certd");
    json_t *d = detail_of(list[0]);
    assert_string_equal(json_string_value(json_object_get(d, "hook")), "global");
    assert_int_equal(json_integer_value(json_object_get(d, "exit_status")), 3);
    assert_true(json_is_null(json_object_get(d, "signal")));
    assert_true(json_is_false(json_object_get(d, "timed_out")));
    assert_string_equal(json_string_value(json_object_get(d, "stdout")), "reloading nginx\n");
    assert_string_equal(json_string_value(json_object_get(d, "stderr")),
                        "nginx: [emerg] cannot load certificate\n");
    json_decref(d);
    store_event_list_free(list, count);
}

/* Big output is cut to 2 KiB in the event; bytes that are not UTF-8 (and NULs) become U+FFFD. */
static void test_output_capped_and_made_safe(void **state)
{
    struct fixture *f = *state;
    char hook[PATH_MAX + 32];
    write_hook(f, "noisy-hook",
               "i=0\n"
               "while [ $i -lt 2000 ]; do echo 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'; "
               "i=$((i+1)); done\n"
               "printf 'bad \\377\\000 end\\n' >&2\n"
               "kill -9 $$\n",
               hook, sizeof(hook));
    set_str(&f->cfg->renewal.deploy_hook, hook);

    assert_int_equal(deploy_run(f->cfg, f->st, &test_cert), 1);
    size_t count = 0;
    struct store_event **list = events(f, &count);
    assert_int_equal(count, 1);
    assert_string_equal(list[0]->type, "deploy.failed");
    json_t *d = detail_of(list[0]);
    const char *out = json_string_value(json_object_get(d, "stdout"));
    assert_non_null(out);
    assert_int_equal(strlen(out), 2048);
    assert_int_equal(strspn(out, "x\n"), 2048);
    assert_string_equal(json_string_value(json_object_get(d, "stderr")),
                        "bad \xef\xbf\xbd\xef\xbf\xbd end\n");
    /* killed by a signal: no exit status */
    assert_true(json_is_null(json_object_get(d, "exit_status")));
    assert_int_equal(json_integer_value(json_object_get(d, "signal")), SIGKILL);
    assert_true(json_is_false(json_object_get(d, "timed_out")));
    json_decref(d);
    store_event_list_free(list, count);
}

static void test_timeout(void **state)
{
    struct fixture *f = *state;
    char hook[PATH_MAX + 32];
    write_hook(f, "slow-hook", "echo started\nsleep 30\necho never\n", hook, sizeof(hook));
    set_str(&f->cfg->renewal.deploy_hook, hook);
    f->cfg->renewal.deploy_timeout = 1;

    double t0 = now_s();
    assert_int_equal(deploy_run(f->cfg, f->st, &test_cert), 1);
    double took = now_s() - t0;
    assert_true(took >= 0.9);
    assert_true(took < 5);

    size_t count = 0;
    struct store_event **list = events(f, &count);
    assert_int_equal(count, 1);
    assert_string_equal(list[0]->type, "deploy.failed");
    json_t *d = detail_of(list[0]);
    assert_true(json_is_true(json_object_get(d, "timed_out")));
    assert_true(json_is_null(json_object_get(d, "exit_status")));
    assert_string_equal(json_string_value(json_object_get(d, "stdout")), "started\n");
    json_decref(d);
    store_event_list_free(list, count);
}

static void test_both_hooks_in_order(void **state)
{
    struct fixture *f = *state;
    char global[PATH_MAX + 32], domain[PATH_MAX + 32], order[PATH_MAX + 32];
    /* each hook sees the other's traces only if they run one after the other */
    write_hook(f, "global-hook", "echo \"global $CERTD_DOMAIN\" >> @DIR@/order.out\nsleep 0.2\n",
               global, sizeof(global));
    write_hook(f, "domain-hook", "echo \"domain $CERTD_DOMAIN\" >> @DIR@/order.out\nexit $1\n",
               domain, sizeof(domain));
    snprintf(order, sizeof(order), "%s/order.out", f->dir);
    set_str(&f->cfg->renewal.deploy_hook, global);
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof(cmd), "'%s' 0", domain);
    add_domain_hook(f, "other.example", "/bin/false");
    add_domain_hook(f, "example.com", cmd);

    assert_int_equal(deploy_run(f->cfg, f->st, &test_cert), 0);
    assert_string_equal(read_text(order), "global example.com\ndomain example.com\n");

    size_t count = 0;
    struct store_event **list = events(f, &count);
    assert_int_equal(count, 2);
    static const char *const kinds[] = {"global", "domain"};
    for (size_t i = 0; i < 2; i++) {
        assert_string_equal(list[i]->type, "deploy.succeeded");
        assert_string_equal(list[i]->domain, "example.com");
        json_t *d = detail_of(list[i]);
        assert_string_equal(json_string_value(json_object_get(d, "hook")), kinds[i]);
        json_decref(d);
    }
    assert_true(list[0]->id < list[1]->id);
    store_event_list_free(list, count);

    /* the count: domain hook fails (exit 1 via its argument), then both */
    snprintf(cmd, sizeof(cmd), "'%s' 1", domain);
    set_str(&f->cfg->domains[1].deploy_hook, cmd);
    assert_int_equal(deploy_run(f->cfg, f->st, &test_cert), 1);
    set_str(&f->cfg->renewal.deploy_hook, "/bin/false");
    assert_int_equal(deploy_run(f->cfg, f->st, &test_cert), 2);
    /* a failing global hook does not stop the domain hook */
    assert_string_equal(read_text(order), "global example.com\ndomain example.com\n"
                                          "global example.com\ndomain example.com\n"
                                          "domain example.com\n");
    list = events(f, &count);
    assert_int_equal(count, 6);
    assert_string_equal(list[2]->type, "deploy.succeeded");
    assert_string_equal(list[3]->type, "deploy.failed");
    assert_string_equal(list[4]->type, "deploy.failed");
    assert_string_equal(list[5]->type, "deploy.failed");
    json_t *d = detail_of(list[4]);
    assert_string_equal(json_string_value(json_object_get(d, "hook")), "global");
    assert_int_equal(json_integer_value(json_object_get(d, "exit_status")), 1);
    json_decref(d);
    store_event_list_free(list, count);
}

/* A hook that cannot be started still leaves a deploy.failed event, saying why. */
static void test_cannot_start(void **state)
{
    struct fixture *f = *state;
    char missing[PATH_MAX + 32];
    snprintf(missing, sizeof(missing), "%s/no-such-hook --token=SECRET", f->dir);
    set_str(&f->cfg->renewal.deploy_hook, missing);

    assert_int_equal(deploy_run(f->cfg, f->st, &test_cert), 1);
    size_t count = 0;
    struct store_event **list = events(f, &count);
    assert_int_equal(count, 1);
    assert_string_equal(list[0]->type, "deploy.failed");
    json_t *d = detail_of(list[0]);
    assert_true(json_is_null(json_object_get(d, "exit_status")));
    assert_true(json_is_null(json_object_get(d, "signal")));
    assert_true(json_is_false(json_object_get(d, "timed_out")));
    const char *err = json_string_value(json_object_get(d, "error"));
    assert_non_null(err);
    assert_non_null(strstr(err, "No such file or directory"));
    assert_null(strstr(err, "SECRET"));
    json_decref(d);
    store_event_list_free(list, count);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_hook, setup, teardown),
        cmocka_unit_test_setup_teardown(test_environment_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exit_status_and_output, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_capped_and_made_safe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_both_hooks_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cannot_start, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
