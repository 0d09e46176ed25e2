/* certctl status, history and events. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "certctl.h"
#include "common/problem.h"
#include "http.h"
#include "output.h"

/* Prints DOC as JSON for --json and returns the exit code for it. */
static int print_json(const json_t *doc)
{
    return output_json(doc) == 0 ? CERTCTL_EXIT_OK : CERTCTL_EXIT_FAILED;
}

static int print_table(struct table *t)
{
    table_print(t, stdout);
    return CERTCTL_EXIT_OK;
}

/* ---- status ---------------------------------------------------------------------------- */

static int run_status(struct certctl *ctx, struct cli_args *args)
{
    json_t *doc = NULL;
    struct table *t = NULL;

    int ret = args_none(args, ctx);
    if (ret != CERTCTL_EXIT_OK)
        return ret;

    ret = api_call_object(ctx, "GET", "/v1/health", NULL, &doc);
    if (ret != CERTCTL_EXIT_OK)
        goto out;
    if (ctx->json) {
        ret = print_json(doc);
        goto out;
    }

    char a[256], b[256], c[256], line[1024];
    t = table_new(2, NULL);
    if (!t)
        goto oom;
    snprintf(line, sizeof(line), "certd %s (%s)",
             output_value(json_object_get(doc, "version"), a, sizeof(a)),
             output_value(json_object_get(doc, "status"), b, sizeof(b)));
    if (table_kv(t, "daemon", line) < 0)
        goto oom;
    if (table_kv(t, "socket", ctx->socket_path) < 0)
        goto oom;
    if (table_kv(t, "schema version",
                 output_value(json_object_get(doc, "schema_version"), a, sizeof(a))) < 0)
        goto oom;
    json_t *up = json_object_get(doc, "uptime_seconds");
    if (table_kv(t, "uptime",
                 json_is_integer(up) ? output_duration(json_integer_value(up), a, sizeof(a))
                                     : output_value(up, a, sizeof(a))) < 0)
        goto oom;
    snprintf(line, sizeof(line), "%s (%s pending, %s failed)",
             output_value(json_object_get(doc, "domains"), a, sizeof(a)),
             output_value(json_object_get(doc, "domains_pending"), b, sizeof(b)),
             output_value(json_object_get(doc, "domains_failed"), c, sizeof(c)));
    if (table_kv(t, "domains", line) < 0)
        goto oom;
    snprintf(line, sizeof(line), "%s active",
             output_value(json_object_get(doc, "certificates_active"), a, sizeof(a)));
    if (table_kv(t, "certificates", line) < 0)
        goto oom;
    if (table_kv(t, "next renewal",
                 output_time(json_object_get(doc, "next_renewal_at"), TIME_LONG, a, sizeof(a))) < 0)
        goto oom;
    json_t *expiring = json_object_get(doc, "expiring");
    snprintf(line, sizeof(line), "%zu", json_array_size(expiring));
    if (table_kv(t, "expiring", line) < 0)
        goto oom;
    ret = print_table(t);
    /* One line per certificate close to expiry. Only a warning: the daemon is fine, so the exit
     * status stays 0 (monitoring reads "expiring" from --json). The text comes from certd and is
     * sanitised like everything it sends. */
    size_t i;
    json_t *e;
    json_array_foreach(expiring, i, e)
    {
        snprintf(line, sizeof(line), "warning: the certificate of %s (serial %s) expires %s",
                 output_value(json_object_get(e, "name"), a, sizeof(a)),
                 output_value(json_object_get(e, "serial"), b, sizeof(b)),
                 output_time(json_object_get(e, "not_after"), TIME_LONG, c, sizeof(c)));
        output_sanitize(line);
        printf("%s\n", line);
    }
    goto out;
oom:
    errmsg("out of memory");
    ret = CERTCTL_EXIT_FAILED;
out:
    table_free(t);
    json_decref(doc);
    return ret;
}

const struct command cmd_status = {
    .name = "status",
    .summary = "Show the daemon's version, uptime, counts, next renewal and expiring certificates",
    .usage = "Usage: certctl status\n"
             "\n"
             "Shows certd's version, database schema version, uptime, the number of domains\n"
             "(pending and failed among them), active certificates and the next renewal, then a\n"
             "warning line for every certificate close to expiry (less than 7 days left, or a\n"
             "sixth of a short lifetime) that has not been renewed. Warnings do not change the\n"
             "exit status (0).\n"
             "\n"
             "Calls GET /v1/health. With --json, prints its response (\"expiring\" lists the\n"
             "certificates).\n",
    .run = run_status,
};

/* ---- history --------------------------------------------------------------------------- */

static int history_keys(const json_t *keys, struct table **out)
{
    static const char *const headers[] = {"ID", "TYPE", "STATUS", "CREATED (UTC)",
                                          "PUBLIC KEY SHA-256"};
    struct table *t = table_new(5, headers);
    if (!t)
        return -1;
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k)
    {
        char id[64], type[64], status[64], created[64], sha[256];
        const char *row[5] = {
            output_value(json_object_get(k, "id"), id, sizeof(id)),
            output_value(json_object_get(k, "type"), type, sizeof(type)),
            output_value(json_object_get(k, "status"), status, sizeof(status)),
            output_time(json_object_get(k, "created_at"), TIME_SHORT, created, sizeof(created)),
            output_value(json_object_get(k, "public_key_sha256"), sha, sizeof(sha)),
        };
        if (table_add(t, row) < 0) {
            table_free(t);
            return -1;
        }
    }
    *out = t;
    return 0;
}

static int history_certs(const json_t *certs, struct table **out)
{
    static const char *const headers[] = {"ID",  "STATUS", "NOT BEFORE (UTC)", "NOT AFTER (UTC)",
                                          "KEY", "SERIAL", "ISSUER",           "REVOKED (UTC)"};
    struct table *t = table_new(8, headers);
    if (!t)
        return -1;
    size_t i;
    json_t *c;
    json_array_foreach(certs, i, c)
    {
        char id[64], status[64], nb[64], na[64], key[64], serial[256], issuer[512], rev[64];
        const char *row[8] = {
            output_value(json_object_get(c, "id"), id, sizeof(id)),
            output_value(json_object_get(c, "status"), status, sizeof(status)),
            output_time(json_object_get(c, "not_before"), TIME_SHORT, nb, sizeof(nb)),
            output_time(json_object_get(c, "not_after"), TIME_SHORT, na, sizeof(na)),
            output_value(json_object_get(c, "key_id"), key, sizeof(key)),
            output_value(json_object_get(c, "serial"), serial, sizeof(serial)),
            output_value(json_object_get(c, "issuer"), issuer, sizeof(issuer)),
            output_time(json_object_get(c, "revoked_at"), TIME_SHORT, rev, sizeof(rev)),
        };
        if (table_add(t, row) < 0) {
            table_free(t);
            return -1;
        }
    }
    *out = t;
    return 0;
}

static int run_history(struct certctl *ctx, struct cli_args *args)
{
    const char *name = NULL;
    json_t *doc = NULL;
    char *path = NULL;
    struct table *keys = NULL, *certs = NULL;

    int ret = args_one(args, ctx, "domain name", &name);
    if (ret != CERTCTL_EXIT_OK)
        return ret;

    path = api_domain_path(ctx, name, "/history");
    if (!path)
        return CERTCTL_EXIT_FAILED;
    ret = api_call_object(ctx, "GET", path, NULL, &doc);
    if (ret != CERTCTL_EXIT_OK)
        goto out;
    if (ctx->json) {
        ret = print_json(doc);
        goto out;
    }

    json_t *jk = json_object_get(doc, "keys"), *jc = json_object_get(doc, "certificates");
    if (history_keys(jk, &keys) < 0 || history_certs(jc, &certs) < 0) {
        errmsg("out of memory");
        ret = CERTCTL_EXIT_FAILED;
        goto out;
    }
    char dname[512];
    output_value(json_object_get(doc, "name"), dname, sizeof(dname));
    output_sanitize(dname);
    printf("History of %s\n\nKeys:\n", dname);
    if (table_rows(keys) > 0)
        table_print(keys, stdout);
    else
        printf("(none)\n");
    printf("\nCertificates:\n");
    if (table_rows(certs) > 0)
        table_print(certs, stdout);
    else
        printf("(none)\n");
    ret = CERTCTL_EXIT_OK;
out:
    table_free(keys);
    table_free(certs);
    json_decref(doc);
    free(path);
    return ret;
}

const struct command cmd_history = {
    .name = "history",
    .summary = "Show a domain's keys and certificates, newest first",
    .usage = "Usage: certctl history NAME\n"
             "\n"
             "Shows every private key (its public fingerprint, never the key) and every\n"
             "certificate certd has had for domain NAME, newest first; removed domains too.\n"
             "Times are UTC.\n"
             "\n"
             "Calls GET /v1/domains/NAME/history. With --json, prints its response.\n",
    .run = run_history,
};

/* ---- events ---------------------------------------------------------------------------- */

enum { EV_OPT_AFTER, EV_OPT_LIMIT, EV_OPT_FOLLOW };
static const struct opt_spec events_opts[] = {
    [EV_OPT_AFTER] = {"--after", true},
    [EV_OPT_LIMIT] = {"--limit", true},
    [EV_OPT_FOLLOW] = {"--follow", false},
    {NULL, false},
};

/* --follow: how long each request waits at the daemon for news (GET /v1/events?wait=), and how
 * much longer certctl gives the answer before it counts the daemon as gone. */
#define FOLLOW_WAIT_S 60
#define FOLLOW_SLACK_S 30
/* An empty answer sooner than this means certd did not hold the request (it is at its limit of
 * waiting requests, or shutting down): pause this long before asking again rather than spin. */
#define FOLLOW_MIN_ROUND_MS 1000L
/* Reconnection backoff after the daemon went away: doubling from the first to the last. */
#define FOLLOW_BACKOFF_FIRST_MS 250L
#define FOLLOW_BACKOFF_MAX_MS 10000L

/* One event as a line for a human; the text comes from certd and is sanitised. */
static void print_event_line(const json_t *e)
{
    char id[64], tm[64], type[128], dom[512], actor[256], detail[4096], line[5200];
    snprintf(line, sizeof(line), "%s  %s  %s  %s  %s  %s",
             output_value(json_object_get(e, "id"), id, sizeof(id)),
             output_time(json_object_get(e, "time"), TIME_SECONDS, tm, sizeof(tm)),
             output_value(json_object_get(e, "type"), type, sizeof(type)),
             output_value(json_object_get(e, "domain"), dom, sizeof(dom)),
             output_value(json_object_get(e, "actor"), actor, sizeof(actor)),
             output_value(json_object_get(e, "detail"), detail, sizeof(detail)));
    output_sanitize(line);
    printf("%s\n", line);
}

/* Prints the events of one answer (JSON Lines with --json) and flushes. SIGINT and SIGTERM are
 * held meanwhile, so an interrupt never cuts a line in half. Returns false when stdout failed. */
static bool follow_print(const struct certctl *ctx, const json_t *events)
{
    sigset_t stop, old;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop, &old);
    size_t i;
    json_t *e;
    json_array_foreach(events, i, e)
    {
        if (!ctx->json) {
            print_event_line(e);
            continue;
        }
        char *text = json_dumps(e, JSON_COMPACT);
        if (text)
            printf("%s\n", text);
        free(text);
    }
    bool ok = fflush(stdout) == 0 && !ferror(stdout);
    sigprocmask(SIG_SETMASK, &old, NULL);
    return ok;
}

/* Everything printed has been flushed (follow_print holds the signals while it prints), so an
 * interrupt simply ends the program, successfully: following ends only this way. */
static void follow_on_signal(int sig)
{
    (void)sig;
    _exit(CERTCTL_EXIT_OK);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/*
 * certctl events --follow: long-polls GET /v1/events?after=LAST&wait=60 and prints events as they
 * come, until SIGINT or SIGTERM (exit 0). When the daemon goes away (a restart) it reconnects
 * with backoff; only a daemon never reached at all is exit 3. On 410 (events after LAST were
 * pruned, or the log is not the one LAST came from) it warns and goes on from the log's current
 * last id, given in the problem document.
 */
static int run_follow(struct certctl *ctx, long long after, long limit)
{
    struct sigaction sa = {.sa_handler = follow_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    http_client_set_timeout(ctx->http, (FOLLOW_WAIT_S + FOLLOW_SLACK_S) * 1000L);

    bool answered = false;
    long backoff_ms = 0;
    for (;;) {
        char path[160], err[1024];
        int n = snprintf(path, sizeof(path), "/v1/events?after=%lld&wait=%d", after, FOLLOW_WAIT_S);
        if (limit > 0)
            snprintf(path + n, sizeof(path) - (size_t)n, "&limit=%ld", limit);

        struct http_response r = {0};
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int rc = http_request(ctx->http, "GET", path, NULL, &r, err, sizeof(err));
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (rc < 0) {
            http_response_clear(&r);
            if (!answered) {
                errmsg("%s", err);
                return rc == -ECONNREFUSED ? CERTCTL_EXIT_UNREACHABLE : CERTCTL_EXIT_FAILED;
            }
            if (rc != -ECONNREFUSED && rc != -EIO && rc != -ETIMEDOUT) {
                errmsg("%s", err);
                return CERTCTL_EXIT_FAILED;
            }
            if (backoff_ms == 0)
                errmsg("warning: %s; reconnecting", err);
            backoff_ms = backoff_ms ? backoff_ms * 2 : FOLLOW_BACKOFF_FIRST_MS;
            if (backoff_ms > FOLLOW_BACKOFF_MAX_MS)
                backoff_ms = FOLLOW_BACKOFF_MAX_MS;
            sleep_ms(backoff_ms);
            continue;
        }
        answered = true;
        if (backoff_ms) {
            errmsg("reconnected; following on after event %lld", after);
            backoff_ms = 0;
        }

        char desc[1024];
        const json_t *last = json_object_get(r.json, "last_id");
        if (r.status == 410 && json_is_integer(last)) {
            problem_describe(r.json, desc, sizeof(desc));
            output_sanitize(desc);
            errmsg("warning: events were missed: %s", desc);
            after = json_integer_value(last);
            http_response_clear(&r);
            continue;
        }
        if (r.status < 200 || r.status > 299 || !json_is_integer(last)) {
            if (json_is_object(r.json)) {
                problem_describe(r.json, desc, sizeof(desc));
                output_sanitize(desc);
                errmsg("%s", desc);
            } else {
                errmsg("certd answered HTTP %ld without an event list", r.status);
            }
            http_response_clear(&r);
            return CERTCTL_EXIT_FAILED;
        }
        after = json_integer_value(last);
        const json_t *events = json_object_get(r.json, "events");
        bool empty = json_array_size(events) == 0;
        bool ok = follow_print(ctx, events);
        http_response_clear(&r);
        if (!ok) {
            errmsg("cannot write to standard output");
            return CERTCTL_EXIT_FAILED;
        }
        long took_ms = (long)(t1.tv_sec - t0.tv_sec) * 1000L + (t1.tv_nsec - t0.tv_nsec) / 1000000L;
        if (empty && took_ms < FOLLOW_MIN_ROUND_MS)
            sleep_ms(FOLLOW_MIN_ROUND_MS - took_ms);
    }
}

static int run_events(struct certctl *ctx, struct cli_args *args)
{
    int which;
    const char *val;
    enum args_result r;
    long after = 0, limit = 0;
    bool follow = false;
    json_t *doc = NULL;
    struct table *t = NULL;
    int ret;

    while ((r = args_next(args, ctx, events_opts, &which, &val)) != ARGS_END) {
        if (r == ARGS_ERROR)
            return CERTCTL_EXIT_USAGE;
        if (r == ARGS_WORD)
            return usage_error(ctx, "unexpected argument '%s'", val);
        if (which == EV_OPT_AFTER && !args_parse_long(val, 0, LONG_MAX, &after))
            return usage_error(ctx, "--after needs an event id (0 or more), not '%s'", val);
        if (which == EV_OPT_LIMIT && !args_parse_long(val, 1, 1000, &limit))
            return usage_error(ctx, "--limit needs a number from 1 to 1000, not '%s'", val);
        if (which == EV_OPT_FOLLOW)
            follow = true;
    }
    if (follow)
        return run_follow(ctx, after, limit);

    char path[128];
    if (limit > 0)
        snprintf(path, sizeof(path), "/v1/events?after=%ld&limit=%ld", after, limit);
    else
        snprintf(path, sizeof(path), "/v1/events?after=%ld", after);
    ret = api_call_object(ctx, "GET", path, NULL, &doc);
    if (ret != CERTCTL_EXIT_OK)
        goto out;
    if (ctx->json) {
        ret = print_json(doc);
        goto out;
    }

    static const char *const headers[] = {"ID", "TIME (UTC)", "TYPE", "DOMAIN", "ACTOR", "DETAIL"};
    t = table_new(6, headers);
    if (!t)
        goto oom;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(doc, "events"), i, e)
    {
        char id[64], tm[64], type[128], dom[512], actor[256], detail[4096];
        const char *row[6] = {
            output_value(json_object_get(e, "id"), id, sizeof(id)),
            output_time(json_object_get(e, "time"), TIME_SECONDS, tm, sizeof(tm)),
            output_value(json_object_get(e, "type"), type, sizeof(type)),
            output_value(json_object_get(e, "domain"), dom, sizeof(dom)),
            output_value(json_object_get(e, "actor"), actor, sizeof(actor)),
            output_value(json_object_get(e, "detail"), detail, sizeof(detail)),
        };
        if (table_add(t, row) < 0)
            goto oom;
    }
    if (table_rows(t) == 0) {
        printf("(no events after %ld)\n", after);
        ret = CERTCTL_EXIT_OK;
        goto out;
    }
    ret = print_table(t);
    goto out;
oom:
    errmsg("out of memory");
    ret = CERTCTL_EXIT_FAILED;
out:
    table_free(t);
    json_decref(doc);
    return ret;
}

const struct command cmd_events = {
    .name = "events",
    .summary = "Show the audit log, oldest first",
    .usage = "Usage: certctl events [--after ID] [--limit N] [--follow]\n"
             "\n"
             "Shows the audit log oldest first: who added, changed or removed what, keys\n"
             "generated, daemon starts and stops. Times are UTC; DETAIL is compact JSON.\n"
             "\n"
             "Options:\n"
             "  --after ID   Only events with an id greater than ID (default 0). To page\n"
             "               through the log, pass the last id shown (\"last_id\" in --json\n"
             "               output).\n"
             "  --limit N    At most N events per request, 1..1000 (default: the daemon's, 100)\n"
             "  --follow     Keep printing events as they happen, one line each (with --json,\n"
             "               one JSON object per line), until interrupted (exit 0). Reconnects\n"
             "               when the daemon restarts; exit 3 only if it was never reached.\n"
             "               If events after the last one shown were pruned meanwhile\n"
             "               ([daemon] events_retention), warns and goes on from the newest.\n"
             "\n"
             "Calls GET /v1/events (with --follow, GET /v1/events?after=ID&wait=60 in a loop).\n"
             "With --json, prints its response.\n",
    .run = run_events,
};
