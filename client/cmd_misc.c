/* certctl status, history and events. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "certctl.h"
#include "output.h"

/* Commands that take no options still go through args_next, so "--bogus" is a usage error. */
static const struct opt_spec no_opts[] = {{NULL, false}};

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
    int which;
    const char *val;
    enum args_result r;
    json_t *doc = NULL;
    struct table *t = NULL;
    int ret;

    while ((r = args_next(args, ctx, no_opts, &which, &val)) != ARGS_END) {
        if (r == ARGS_ERROR)
            return CERTCTL_EXIT_USAGE;
        return usage_error(ctx, "unexpected argument '%s'", val);
    }

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
    int which;
    const char *val, *name = NULL;
    enum args_result r;
    json_t *doc = NULL;
    char *path = NULL;
    struct table *keys = NULL, *certs = NULL;
    int ret;

    while ((r = args_next(args, ctx, no_opts, &which, &val)) != ARGS_END) {
        if (r == ARGS_ERROR)
            return CERTCTL_EXIT_USAGE;
        if (name)
            return usage_error(ctx, "unexpected argument '%s'", val);
        name = val;
    }
    if (!name)
        return usage_error(ctx, "missing domain name");

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

enum { EV_OPT_AFTER, EV_OPT_LIMIT };
static const struct opt_spec events_opts[] = {
    [EV_OPT_AFTER] = {"--after", true},
    [EV_OPT_LIMIT] = {"--limit", true},
    {NULL, false},
};

static int run_events(struct certctl *ctx, struct cli_args *args)
{
    int which;
    const char *val;
    enum args_result r;
    long after = 0, limit = 0;
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
    }

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
    .usage = "Usage: certctl events [--after ID] [--limit N]\n"
             "\n"
             "Shows the audit log oldest first: who added, changed or removed what, keys\n"
             "generated, daemon starts and stops. Times are UTC; DETAIL is compact JSON.\n"
             "\n"
             "Options:\n"
             "  --after ID   Only events with an id greater than ID (default 0). To follow the\n"
             "               log, pass the last id shown (\"last_id\" in --json output).\n"
             "  --limit N    At most N events, 1..1000 (default: the daemon's, 100)\n"
             "\n"
             "Calls GET /v1/events. With --json, prints its response.\n",
    .run = run_events,
};
