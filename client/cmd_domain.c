/* certctl domain add|list|show|set|remove, and renew (which shares add's --wait). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "certctl.h"
#include "common/problem.h"
#include "common/types.h"
#include "http.h"
#include "output.h"
#include "wait.h"

/* The API's page size limit: list asks for full pages. */
#define LIST_PAGE_MAX 1000
/* The ALT NAMES column lists names while they fit in this many characters, else counts them. */
#define ALT_COLUMN_MAX 40

/* ---- shared --------------------------------------------------------------------------- */

/* What add and set were told. */
struct domain_opts {
    const char *name;
    json_t *alt_names; /* array, NULL when neither --alt nor --no-alt was given */
    bool no_alt;
    const char *challenge;
    const char *key_type;
    const char *ca;
    bool reuse_key;    /* --reuse-key */
    bool no_reuse_key; /* --no-reuse-key */
    const char *profile; /* --profile */
    bool no_profile;     /* --no-profile: back to the CA's default (null) */
    const char *renew_before;
    bool no_renew_before;
    bool wait;      /* add --wait */
    long timeout_s; /* add --timeout */
    bool timeout_given;
};

/* The two commands share the parser, which tells options apart by name: add has --wait and
 * --timeout, set has --no-alt. Both take the renewal settings and their --no- forms (on add
 * the --no- forms state the default explicitly). */
static const struct opt_spec add_opts[] = {
    {"--alt", true},
    {"--challenge", true},
    {"--key-type", true},
    {"--ca", true},
    {"--reuse-key", false},
    {"--no-reuse-key", false},
    {"--profile", true},
    {"--no-profile", false},
    {"--renew-before", true},
    {"--no-renew-before", false},
    {"--wait", false},
    {"--timeout", true},
    {NULL, false},
};
static const struct opt_spec set_opts[] = {
    {"--alt", true},
    {"--challenge", true},
    {"--key-type", true},
    {"--ca", true},
    {"--no-alt", false},
    {"--reuse-key", false},
    {"--no-reuse-key", false},
    {"--profile", true},
    {"--no-profile", false},
    {"--renew-before", true},
    {"--no-renew-before", false},
    {NULL, false},
};

/* Parses the arguments of add (SPECS add_opts) or set (set_opts) into *O, which the caller frees
 * with domain_opts_clear whatever this returns. Checks locally what is cheap to check: the
 * challenge and key type spellings. Names are left to the daemon, which is the authority. */
static int parse_domain_opts(struct certctl *ctx, struct cli_args *args,
                             const struct opt_spec *specs, struct domain_opts *o)
{
    int which;
    const char *val;
    enum args_result r;

    while ((r = args_next(args, ctx, specs, &which, &val)) != ARGS_END) {
        if (r == ARGS_ERROR)
            return CERTCTL_EXIT_USAGE;
        if (r == ARGS_WORD) {
            if (o->name)
                return usage_error(ctx, "unexpected argument '%s'", val);
            o->name = val;
            continue;
        }
        const char *opt = specs[which].name;
        if (strcmp(opt, "--alt") == 0) {
            if (!o->alt_names && !(o->alt_names = json_array()))
                goto oom;
            if (json_array_append_new(o->alt_names, json_string(val)) < 0)
                goto oom;
        } else if (strcmp(opt, "--no-alt") == 0) {
            o->no_alt = true;
        } else if (strcmp(opt, "--challenge") == 0) {
            enum challenge_type ct;
            if (!challenge_type_parse(val, &ct))
                return usage_error(
                    ctx, "unknown challenge type '%s' (http-01, dns-01 or tls-alpn-01)", val);
            o->challenge = val;
        } else if (strcmp(opt, "--key-type") == 0) {
            enum key_type kt;
            if (!key_type_parse(val, &kt))
                return usage_error(ctx,
                                   "unknown key type '%s' (ec-p256, ec-p384, rsa-2048, "
                                   "rsa-3072 or rsa-4096)",
                                   val);
            o->key_type = val;
        } else if (strcmp(opt, "--ca") == 0) {
            if (val[0] == '\0')
                return usage_error(ctx, "--ca needs a CA name");
            o->ca = val;
        } else if (strcmp(opt, "--reuse-key") == 0) {
            o->reuse_key = true;
        } else if (strcmp(opt, "--no-reuse-key") == 0) {
            o->no_reuse_key = true;
        } else if (strcmp(opt, "--profile") == 0) {
            if (val[0] == '\0')
                return usage_error(ctx, "--profile needs a profile name (--no-profile for the "
                                        "CA's default)");
            o->profile = val;
        } else if (strcmp(opt, "--no-profile") == 0) {
            o->no_profile = true;
        } else if (strcmp(opt, "--renew-before") == 0) {
            if (val[0] == '\0')
                return usage_error(ctx, "--renew-before needs a duration or fraction such as "
                                        "30d or 33%% (--no-renew-before for the global policy)");
            o->renew_before = val;
        } else if (strcmp(opt, "--no-renew-before") == 0) {
            o->no_renew_before = true;
        } else if (strcmp(opt, "--wait") == 0) {
            o->wait = true;
        } else if (strcmp(opt, "--timeout") == 0) {
            int rc = wait_parse_timeout(ctx, val, &o->timeout_s);
            if (rc != CERTCTL_EXIT_OK)
                return rc;
            o->timeout_given = true;
        }
    }
    if (!o->name)
        return usage_error(ctx, "missing domain name");
    if (o->no_alt && o->alt_names)
        return usage_error(ctx, "--alt and --no-alt exclude each other");
    if (o->reuse_key && o->no_reuse_key)
        return usage_error(ctx, "--reuse-key and --no-reuse-key exclude each other");
    if (o->profile && o->no_profile)
        return usage_error(ctx, "--profile and --no-profile exclude each other");
    if (o->renew_before && o->no_renew_before)
        return usage_error(ctx, "--renew-before and --no-renew-before exclude each other");
    if (o->timeout_given && !o->wait)
        return usage_error(ctx, "--timeout applies only with --wait");
    return CERTCTL_EXIT_OK;
oom:
    errmsg("out of memory");
    return CERTCTL_EXIT_FAILED;
}

static void domain_opts_clear(struct domain_opts *o)
{
    json_decref(o->alt_names);
    o->alt_names = NULL;
}

/* The members add and set send for O (the name is the caller's business). */
static int domain_opts_body(const struct domain_opts *o, json_t *body)
{
    int rc = 0;
    if (o->alt_names)
        rc |= json_object_set(body, "alt_names", o->alt_names);
    else if (o->no_alt)
        rc |= json_object_set_new(body, "alt_names", json_array());
    if (o->challenge)
        rc |= json_object_set_new(body, "challenge", json_string(o->challenge));
    if (o->key_type)
        rc |= json_object_set_new(body, "key_type", json_string(o->key_type));
    if (o->ca)
        rc |= json_object_set_new(body, "ca", json_string(o->ca));
    if (o->reuse_key || o->no_reuse_key)
        rc |= json_object_set_new(body, "reuse_key", json_boolean(o->reuse_key));
    if (o->profile)
        rc |= json_object_set_new(body, "profile", json_string(o->profile));
    else if (o->no_profile)
        rc |= json_object_set_new(body, "profile", json_null());
    if (o->renew_before)
        rc |= json_object_set_new(body, "renew_before", json_string(o->renew_before));
    else if (o->no_renew_before)
        rc |= json_object_set_new(body, "renew_before", json_null());
    return rc ? -1 : 0;
}

/* Human description of last_error: a string as it is, a problem document described. */
static const char *describe_error(const json_t *v, char *buf, size_t bufsz)
{
    if (json_is_object(v)) {
        problem_describe(v, buf, bufsz);
        return buf;
    }
    return output_value(v, buf, bufsz);
}

/* Prints the domain object D as "key: value" lines (show, and the result of add and set). */
static int print_domain(const json_t *d)
{
    char a[1024], b[256], line[2048];
    int ret = CERTCTL_EXIT_FAILED;
    struct table *t = table_new(2, NULL);
    if (!t)
        goto oom;

#define KV(key, value)                                                                             \
    do {                                                                                           \
        if (table_kv(t, (key), (value)) < 0)                                                       \
            goto oom;                                                                              \
    } while (0)
#define FIELD(key, member) KV(key, output_value(json_object_get(d, member), a, sizeof(a)))
#define TIME(key, obj, member)                                                                     \
    KV(key, output_time(json_object_get(obj, member), TIME_LONG, a, sizeof(a)))

    FIELD("name", "name");
    FIELD("status", "status");
    json_t *alts = json_object_get(d, "alt_names");
    if (json_array_size(alts) == 0) {
        KV("alt names", "-");
    } else {
        size_t i;
        json_t *n;
        json_array_foreach(alts, i, n)
        {
            const char *row[2] = {i == 0 ? "alt names:" : "", output_value(n, a, sizeof(a))};
            if (table_add(t, row) < 0)
                goto oom;
        }
    }
    FIELD("challenge", "challenge");
    FIELD("key type", "key_type");
    FIELD("ca", "ca");
    KV("reuse key", json_is_true(json_object_get(d, "reuse_key")) ? "yes" : "no");
    json_t *v = json_object_get(d, "profile");
    KV("profile", json_is_string(v) ? output_value(v, a, sizeof(a)) : "- (the CA's default)");
    v = json_object_get(d, "renew_before");
    KV("renew before", json_is_string(v) ? output_value(v, a, sizeof(a)) : "- (global policy)");
    TIME("next renewal", d, "next_renewal_at");
    FIELD("failures", "failure_count");
    KV("last error", describe_error(json_object_get(d, "last_error"), a, sizeof(a)));
    TIME("created", d, "created_at");
    TIME("updated", d, "updated_at");

    json_t *key = json_object_get(d, "key");
    if (json_is_object(key)) {
        char id[64];
        snprintf(line, sizeof(line), "#%s %s, created %s",
                 output_value(json_object_get(key, "id"), id, sizeof(id)),
                 output_value(json_object_get(key, "type"), b, sizeof(b)),
                 output_time(json_object_get(key, "created_at"), TIME_LONG, a, sizeof(a)));
        KV("key", line);
        KV("key sha256", output_value(json_object_get(key, "public_key_sha256"), a, sizeof(a)));
    } else {
        KV("key", "-");
    }

    json_t *cert = json_object_get(d, "certificate");
    if (json_is_object(cert)) {
        char id[64];
        snprintf(line, sizeof(line), "#%s %s",
                 output_value(json_object_get(cert, "id"), id, sizeof(id)),
                 output_value(json_object_get(cert, "status"), b, sizeof(b)));
        KV("certificate", line);
        KV("serial", output_value(json_object_get(cert, "serial"), a, sizeof(a)));
        KV("issuer", output_value(json_object_get(cert, "issuer"), a, sizeof(a)));
        TIME("not before", cert, "not_before");
        TIME("not after", cert, "not_after");
        KV("cert sha256", output_value(json_object_get(cert, "fingerprint_sha256"), a, sizeof(a)));
        /* RFC 9773 suggested renewal window, as the CA last gave it. */
        json_t *ws = json_object_get(cert, "ari_window_start");
        json_t *we = json_object_get(cert, "ari_window_end");
        if (json_is_string(ws) && json_is_string(we)) {
            snprintf(line, sizeof(line), "%s", output_time(ws, TIME_LONG, a, sizeof(a)));
            size_t used = strlen(line);
            snprintf(line + used, sizeof(line) - used, " to %s",
                     output_time(we, TIME_LONG, b, sizeof(b)));
            KV("ari window", line);
        } else {
            KV("ari window", "-");
        }
        KV("expiring", json_is_true(json_object_get(cert, "expiring"))
                           ? "yes (close to expiry and not yet renewed)"
                           : "no");
    } else {
        KV("certificate", "-");
    }
#undef TIME
#undef FIELD
#undef KV

    table_print(t, stdout);
    ret = CERTCTL_EXIT_OK;
    goto out;
oom:
    errmsg("out of memory");
out:
    table_free(t);
    return ret;
}

/* Prints a domain object answer: as JSON with --json, else as key/value lines. */
static int print_domain_doc(const struct certctl *ctx, const json_t *doc)
{
    if (ctx->json)
        return output_json(doc) == 0 ? CERTCTL_EXIT_OK : CERTCTL_EXIT_FAILED;
    return print_domain(doc);
}

/* ---- waiting for an order (add --wait, renew --wait) -------------------------------------- */

static bool status_is(const json_t *d, const char *status)
{
    const char *st = json_string_value(json_object_get(d, "status"));
    return st && strcmp(st, status) == 0;
}

/* The id of D's current certificate, 0 when it has none (ids start at 1). */
static json_int_t current_cert_id(const json_t *d)
{
    const json_t *id = json_object_get(json_object_get(d, "certificate"), "id");
    return json_is_integer(id) ? json_integer_value(id) : 0;
}

static json_int_t failure_count(const json_t *d)
{
    const json_t *n = json_object_get(d, "failure_count");
    return json_is_integer(n) ? json_integer_value(n) : 0;
}

/* add --wait: the first certificate arrived, or the first order failed. */
static enum wait_verdict first_cert_check(const json_t *d, void *arg)
{
    if (status_is(d, "active"))
        return WAIT_SUCCEEDED;
    if (status_is(d, "failed") || status_is(d, "removed"))
        return WAIT_FAILED;
    return WAIT_CONTINUE;
}

/* What renew --wait saw before it asked for the order. */
struct renew_before {
    json_int_t cert_id;
    json_int_t failures;
};

/* renew --wait: a new current certificate, or one more failure. A success resets the failure
 * count, so the certificate is looked at first. */
static enum wait_verdict renewed_check(const json_t *d, void *arg)
{
    const struct renew_before *before = arg;
    json_int_t id = current_cert_id(d);

    if (id != 0 && id != before->cert_id)
        return WAIT_SUCCEEDED;
    if (failure_count(d) > before->failures || status_is(d, "removed"))
        return WAIT_FAILED;
    return WAIT_CONTINUE;
}

/* Says why NAME's order failed: "NAME: <last_error>", then the CA's problem document from the
 * latest order when it adds something the last error does not already say. */
static void report_order_failure(struct certctl *ctx, const char *name, const json_t *d)
{
    char err[1024], prob[1024];
    json_t *order = NULL;

    if (status_is(d, "removed")) {
        errmsg("%s: the domain was removed while waiting", name);
        return;
    }
    const json_t *last = json_object_get(d, "last_error");
    if (!last || json_is_null(last))
        snprintf(err, sizeof(err), "the order failed");
    else
        describe_error(last, err, sizeof(err));
    output_sanitize(err);
    /* certd's errors usually name the domain already: do not say it twice. */
    size_t nlen = strlen(name);
    if (strncmp(err, name, nlen) == 0 && err[nlen] == ':')
        errmsg("%s", err);
    else
        errmsg("%s: %s", name, err);

    char *path = api_domain_path(ctx, name, "/order");
    if (path && api_get_quiet(ctx, path, &order) == CERTCTL_EXIT_OK) {
        const json_t *e = json_object_get(order, "error");
        if (json_is_object(e)) {
            problem_describe(e, prob, sizeof(prob));
            output_sanitize(prob);
            if (prob[0] && !strstr(err, prob))
                errmsg("%s: CA problem: %s", name, prob);
        }
    }
    json_decref(order);
    free(path);
}

/*
 * Polls domain NAME until CHECK decides or TIMEOUT_S pass, and turns the outcome into output and
 * an exit code: the domain (like show) on success; on failure or timeout a message on stderr
 * and, with --json, the last state seen on stdout. WHAT names the awaited thing for the timeout
 * message ("first certificate").
 */
static int wait_domain(struct certctl *ctx, const char *name, long timeout_s, wait_check_fn check,
                       void *arg, const char *what)
{
    char dname[512], st[64];
    json_t *last = NULL;
    int ret, rc;

    char *path = api_domain_path(ctx, name, "");
    if (!path)
        return CERTCTL_EXIT_FAILED;
    struct wait_spec spec = {.timeout_s = timeout_s, .check = check, .arg = arg};
    enum wait_outcome outcome = wait_poll(ctx, path, &spec, &last, &rc);
    free(path);

    /* Messages name the domain as certd spells it (normalised), sanitised like all its text. */
    const json_t *n = json_object_get(last, "name");
    snprintf(dname, sizeof(dname), "%s", json_is_string(n) ? json_string_value(n) : name);
    output_sanitize(dname);

    switch (outcome) {
    case WAIT_OUTCOME_SUCCEEDED:
        ret = print_domain_doc(ctx, last);
        goto out;
    case WAIT_OUTCOME_FAILED:
        report_order_failure(ctx, dname, last);
        ret = CERTCTL_EXIT_FAILED;
        break;
    case WAIT_OUTCOME_TIMEOUT:
        output_value(json_object_get(last, "status"), st, sizeof(st));
        output_sanitize(st);
        errmsg("%s: timed out after %ld s waiting for the %s (status %s; certd keeps trying, "
               "see 'certctl order show %s')",
               dname, timeout_s, what, st, dname);
        ret = CERTCTL_EXIT_TIMEOUT;
        break;
    case WAIT_OUTCOME_ERROR:
    default:
        ret = rc;
        goto out;
    }
    if (ctx->json && last)
        output_json(last);
out:
    json_decref(last);
    return ret;
}

/* ---- add -------------------------------------------------------------------------------- */

static int run_add(struct certctl *ctx, struct cli_args *args)
{
    struct domain_opts o = {0};
    json_t *body = NULL, *doc = NULL;
    int ret = parse_domain_opts(ctx, args, add_opts, &o);
    if (ret != CERTCTL_EXIT_OK)
        goto out;

    body = json_object();
    if (!body || json_object_set_new(body, "name", json_string(o.name)) < 0 ||
        domain_opts_body(&o, body) < 0) {
        errmsg("out of memory");
        ret = CERTCTL_EXIT_FAILED;
        goto out;
    }
    ret = api_call_object(ctx, "POST", "/v1/domains", body, &doc);
    if (ret != CERTCTL_EXIT_OK)
        goto out;
    if (!o.wait) {
        ret = print_domain_doc(ctx, doc);
        goto out;
    }
    /* Poll by the name certd answered with (normalised), which is what the path needs. */
    const char *name = json_string_value(json_object_get(doc, "name"));
    ret = wait_domain(ctx, name ? name : o.name,
                      o.timeout_given ? o.timeout_s : WAIT_DEFAULT_TIMEOUT_S, first_cert_check,
                      NULL, "first certificate");
out:
    json_decref(doc);
    json_decref(body);
    domain_opts_clear(&o);
    return ret;
}

static const struct command cmd_domain_add = {
    .name = "add",
    .summary = "Start managing a domain (generates its first key)",
    .usage =
        "Usage: certctl domain add NAME [--alt NAME]... [--challenge TYPE] [--key-type TYPE]\n"
        "                          [--ca CA] [--reuse-key] [--profile P] [--renew-before X]\n"
        "                          [--wait [--timeout S]]\n"
        "\n"
        "Starts managing domain NAME: certd records it, generates its first private key and\n"
        "will obtain a certificate for NAME and its alternative names. Adding a removed (not\n"
        "purged) domain brings it back with its history. Names may be given in Unicode or\n"
        "upper case; certd stores them lower-case, IDNs as A-labels.\n"
        "\n"
        "Options:\n"
        "  --alt NAME        A further name for the same certificate (repeatable, at most 99)\n"
        "  --challenge TYPE  http-01 (default), dns-01 or tls-alpn-01; wildcards need dns-01\n"
        "  --key-type TYPE   ec-p256 (default), ec-p384, rsa-2048, rsa-3072 or rsa-4096\n"
        "  --ca CA           A CA name from certd's configuration (default: its default_ca)\n"
        "  --reuse-key       Keep the same private key across renewals (default: a new key\n"
        "                    for every certificate; --no-reuse-key says so explicitly)\n"
        "  --profile P       Order certificates with the CA's ACME profile P (default: the\n"
        "                    CA's default profile; --no-profile says so explicitly)\n"
        "  --renew-before X  Renew X before expiry: a duration (30d, 12h) or a fraction of the\n"
        "                    lifetime (0.33 or 33%) (default: certd's [renewal] policy;\n"
        "                    --no-renew-before says so explicitly)\n"
        "  --wait            After adding, wait until the first certificate is issued (or its\n"
        "                    order fails) and print the domain then\n"
        "  --timeout S       Give up waiting after S seconds (default 300)\n"
        "\n"
        "Calls POST /v1/domains. Prints the new domain (with --json, the API's response).\n"
        "With --wait, polls GET /v1/domains/NAME every 250 ms and exits with:\n"
        "  0  the domain is active: it is printed (with --json, as JSON)\n"
        "  1  the order failed: certd's last error and the CA's problem go to stderr\n"
        "  4  no outcome within the timeout (certd keeps trying)\n"
        "On 1 and 4, --json prints the last state seen. Stopping the wait (Ctrl-C) or a timeout\n"
        "does not stop the order.\n",
    .run = run_add,
};

/* ---- list ------------------------------------------------------------------------------- */

/* The ALT NAMES cell: "-", the names joined while short, else "first +N more". */
static const char *alt_cell(const json_t *alts, char *buf, size_t bufsz)
{
    size_t n = json_array_size(alts), used = 0;
    if (n == 0)
        return "-";
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(alts, i));
        if (!s)
            s = "?";
        size_t need = strlen(s) + (i ? 1 : 0);
        if (used + need > ALT_COLUMN_MAX || used + need >= bufsz) {
            const char *first = json_string_value(json_array_get(alts, 0));
            snprintf(buf, bufsz, "%s +%zu more", first ? first : "?", n - 1);
            return buf;
        }
        snprintf(buf + used, bufsz - used, "%s%s", i ? "," : "", s);
        used += need;
    }
    return buf;
}

static int list_table(const json_t *domains)
{
    static const char *const headers[] = {
        "NAME", "ALT NAMES", "CHALLENGE",       "KEY",
        "CA",   "STATUS",    "NOT AFTER (UTC)", "NEXT RENEWAL (UTC)"};
    struct table *t = table_new(8, headers);
    if (!t)
        goto oom;
    size_t i;
    json_t *d;
    json_array_foreach(domains, i, d)
    {
        char name[512], alts[256], ch[64], key[64], ca[256], st[64], na[64], nr[64];
        const char *row[8] = {
            output_value(json_object_get(d, "name"), name, sizeof(name)),
            alt_cell(json_object_get(d, "alt_names"), alts, sizeof(alts)),
            output_value(json_object_get(d, "challenge"), ch, sizeof(ch)),
            output_value(json_object_get(d, "key_type"), key, sizeof(key)),
            output_value(json_object_get(d, "ca"), ca, sizeof(ca)),
            output_value(json_object_get(d, "status"), st, sizeof(st)),
            output_time(json_object_get(json_object_get(d, "certificate"), "not_after"), TIME_SHORT,
                        na, sizeof(na)),
            output_time(json_object_get(d, "next_renewal_at"), TIME_SHORT, nr, sizeof(nr)),
        };
        if (table_add(t, row) < 0)
            goto oom;
    }
    if (table_rows(t) == 0)
        printf("(no domains)\n");
    else
        table_print(t, stdout);
    table_free(t);
    return CERTCTL_EXIT_OK;
oom:
    table_free(t);
    errmsg("out of memory");
    return CERTCTL_EXIT_FAILED;
}

enum { LOPT_ALL, LOPT_LIMIT };
static const struct opt_spec list_opts[] = {
    [LOPT_ALL] = {"--all", false},
    [LOPT_LIMIT] = {"--limit", true},
    {NULL, false},
};

/*
 * Fetches the list page after page, following next_cursor, and merges the pages into the first
 * one: {"domains": [all of them], "next_cursor": the last page's}. With LIMIT > 0 it stops after
 * LIMIT domains, asking for pages that end exactly there, so next_cursor still continues right
 * after the last domain shown.
 */
static int list_fetch(struct certctl *ctx, bool all, long limit, json_t **out)
{
    json_t *merged = NULL, *page = NULL;
    char *cursor = NULL, *esc = NULL;
    long remaining = limit;
    int ret;

    for (;;) {
        long want = LIST_PAGE_MAX;
        if (limit > 0 && remaining < want)
            want = remaining;
        char path[1024];
        int n = snprintf(path, sizeof(path), "/v1/domains?limit=%ld%s%s%s", want,
                         all ? "&include_removed=true" : "", esc ? "&cursor=" : "", esc ? esc : "");
        if (n < 0 || (size_t)n >= sizeof(path)) {
            errmsg("certd sent an over-long next_cursor");
            ret = CERTCTL_EXIT_FAILED;
            goto out;
        }
        ret = api_call_object(ctx, "GET", path, NULL, &page);
        if (ret != CERTCTL_EXIT_OK)
            goto out;
        json_t *domains = json_object_get(page, "domains");
        if (!json_is_array(domains)) {
            errmsg("certd's domain list has no \"domains\" array");
            ret = CERTCTL_EXIT_FAILED;
            goto out;
        }
        size_t got = json_array_size(domains);
        json_t *next = json_object_get(page, "next_cursor");

        if (!merged) {
            merged = json_incref(page);
        } else if (json_array_extend(json_object_get(merged, "domains"), domains) < 0 ||
                   json_object_set(merged, "next_cursor", next ? next : json_null()) < 0) {
            errmsg("out of memory");
            ret = CERTCTL_EXIT_FAILED;
            goto out;
        }
        if (limit > 0)
            remaining -= (long)got;
        if (!json_is_string(next) || (limit > 0 && remaining <= 0))
            break;
        /* A daemon that hands out a cursor with an empty page or the same cursor again would
         * keep us here forever. */
        if (got == 0 || (cursor && strcmp(cursor, json_string_value(next)) == 0)) {
            errmsg("certd's domain list does not advance (next_cursor repeats)");
            ret = CERTCTL_EXIT_FAILED;
            goto out;
        }
        free(cursor);
        free(esc);
        cursor = strdup(json_string_value(next));
        esc = cursor ? http_escape(ctx->http, cursor) : NULL;
        if (!esc) {
            errmsg("out of memory");
            ret = CERTCTL_EXIT_FAILED;
            goto out;
        }
        json_decref(page);
        page = NULL;
    }
    *out = merged;
    merged = NULL;
    ret = CERTCTL_EXIT_OK;
out:
    json_decref(page);
    json_decref(merged);
    free(cursor);
    free(esc);
    return ret;
}

static int run_list(struct certctl *ctx, struct cli_args *args)
{
    int which;
    const char *val;
    enum args_result r;
    bool all = false;
    long limit = 0;
    json_t *doc = NULL;

    while ((r = args_next(args, ctx, list_opts, &which, &val)) != ARGS_END) {
        if (r == ARGS_ERROR)
            return CERTCTL_EXIT_USAGE;
        if (r == ARGS_WORD)
            return usage_error(ctx, "unexpected argument '%s'", val);
        if (which == LOPT_ALL)
            all = true;
        else if (!args_parse_long(val, 1, 1000000000L, &limit))
            return usage_error(ctx, "--limit needs a positive number, not '%s'", val);
    }

    int ret = list_fetch(ctx, all, limit, &doc);
    if (ret == CERTCTL_EXIT_OK) {
        if (ctx->json)
            ret = output_json(doc) == 0 ? CERTCTL_EXIT_OK : CERTCTL_EXIT_FAILED;
        else
            ret = list_table(json_object_get(doc, "domains"));
    }
    json_decref(doc);
    return ret;
}

static const struct command cmd_domain_list = {
    .name = "list",
    .summary = "List managed domains",
    .usage = "Usage: certctl domain list [--all] [--limit N]\n"
             "\n"
             "Lists the managed domains ordered by name: alternative names, challenge, key\n"
             "type, CA, status, when the current certificate expires and when certd will renew\n"
             "it. Times are UTC.\n"
             "\n"
             "Options:\n"
             "  --all        Include removed (not purged) domains\n"
             "  --limit N    Show at most the first N domains (default: all of them)\n"
             "\n"
             "Calls GET /v1/domains, following next_cursor through every page. With --json,\n"
             "prints the pages merged into one {\"domains\": [...], \"next_cursor\": ...} object;\n"
             "next_cursor is null unless --limit stopped before the end.\n",
    .run = run_list,
};

/* ---- show ------------------------------------------------------------------------------- */

static int run_show(struct certctl *ctx, struct cli_args *args)
{
    const char *name;
    json_t *doc = NULL;
    char *path = NULL;
    int ret = args_one(args, ctx, "domain name", &name);
    if (ret != CERTCTL_EXIT_OK)
        return ret;

    path = api_domain_path(ctx, name, "");
    if (!path)
        return CERTCTL_EXIT_FAILED;
    ret = api_call_object(ctx, "GET", path, NULL, &doc);
    if (ret == CERTCTL_EXIT_OK)
        ret = print_domain_doc(ctx, doc);
    json_decref(doc);
    free(path);
    return ret;
}

static const struct command cmd_domain_show = {
    .name = "show",
    .summary = "Show one domain in detail",
    .usage = "Usage: certctl domain show NAME\n"
             "\n"
             "Shows domain NAME (removed domains too): its settings, status, next renewal,\n"
             "failures and last error, its current key's SHA-256 public key fingerprint and its\n"
             "current certificate. Private keys are never shown.\n"
             "\n"
             "Calls GET /v1/domains/NAME. With --json, prints its response.\n",
    .run = run_show,
};

/* ---- set -------------------------------------------------------------------------------- */

static int run_set(struct certctl *ctx, struct cli_args *args)
{
    struct domain_opts o = {0};
    json_t *body = NULL, *doc = NULL;
    char *path = NULL;
    int ret = parse_domain_opts(ctx, args, set_opts, &o);
    if (ret != CERTCTL_EXIT_OK)
        goto out;

    body = json_object();
    if (!body || domain_opts_body(&o, body) < 0) {
        errmsg("out of memory");
        ret = CERTCTL_EXIT_FAILED;
        goto out;
    }
    if (json_object_size(body) == 0) {
        ret = usage_error(ctx, "nothing to change: give --alt, --no-alt, --challenge, "
                               "--key-type, --ca, --[no-]reuse-key, --[no-]profile or "
                               "--[no-]renew-before");
        goto out;
    }
    path = api_domain_path(ctx, o.name, "");
    if (!path) {
        ret = CERTCTL_EXIT_FAILED;
        goto out;
    }
    ret = api_call_object(ctx, "PATCH", path, body, &doc);
    if (ret == CERTCTL_EXIT_OK)
        ret = print_domain_doc(ctx, doc);
out:
    free(path);
    json_decref(doc);
    json_decref(body);
    domain_opts_clear(&o);
    return ret;
}

static const struct command cmd_domain_set = {
    .name = "set",
    .summary = "Change a domain's names, challenge, key type, CA or renewal settings",
    .usage = "Usage: certctl domain set NAME [--alt NAME]... [--no-alt] [--challenge TYPE]\n"
             "                          [--key-type TYPE] [--ca CA] [--[no-]reuse-key]\n"
             "                          [--profile P | --no-profile]\n"
             "                          [--renew-before X | --no-renew-before]\n"
             "\n"
             "Changes domain NAME; settings not given keep their value. New names, challenge or\n"
             "CA start an order now; a new key type, key reuse, profile and renew-before apply\n"
             "from the next renewal.\n"
             "\n"
             "Options:\n"
             "  --alt NAME        Replace the alternative names with these (repeatable)\n"
             "  --no-alt          Remove all alternative names\n"
             "  --challenge TYPE  http-01, dns-01 or tls-alpn-01\n"
             "  --key-type TYPE   ec-p256, ec-p384, rsa-2048, rsa-3072 or rsa-4096\n"
             "  --ca CA           A CA name from certd's configuration\n"
             "  --reuse-key       Keep the private key across renewals\n"
             "  --no-reuse-key    Generate a new key for every certificate (the default)\n"
             "  --profile P       Order with the CA's ACME profile P\n"
             "  --no-profile      Order with the CA's default profile\n"
             "  --renew-before X  Renew X before expiry: a duration (30d, 12h) or a fraction of\n"
             "                    the lifetime (0.33 or 33%)\n"
             "  --no-renew-before Renew by certd's [renewal] policy (the default)\n"
             "\n"
             "Calls PATCH /v1/domains/NAME. Prints the changed domain (with --json, the API's\n"
             "response).\n",
    .run = run_set,
};

/* ---- remove ----------------------------------------------------------------------------- */

enum { ROPT_PURGE };
static const struct opt_spec remove_opts[] = {
    [ROPT_PURGE] = {"--purge", false},
    {NULL, false},
};

static int run_remove(struct certctl *ctx, struct cli_args *args)
{
    int which;
    const char *val, *name = NULL;
    enum args_result r;
    bool purge = false;

    while ((r = args_next(args, ctx, remove_opts, &which, &val)) != ARGS_END) {
        if (r == ARGS_ERROR)
            return CERTCTL_EXIT_USAGE;
        if (r == ARGS_OPTION) {
            purge = true;
            continue;
        }
        if (name)
            return usage_error(ctx, "unexpected argument '%s'", val);
        name = val;
    }
    if (!name)
        return usage_error(ctx, "missing domain name");

    char *path = api_domain_path(ctx, name, purge ? "?purge=true" : "");
    if (!path)
        return CERTCTL_EXIT_FAILED;
    int ret = api_call(ctx, "DELETE", path, NULL, NULL);
    free(path);
    /* 204 has no body, so --json prints nothing; the exit code says it worked. */
    if (ret == CERTCTL_EXIT_OK && !ctx->json) {
        if (purge)
            printf("purged %s (its keys and certificates are deleted)\n", name);
        else
            printf("removed %s (history kept; 'certctl domain add' brings it back)\n", name);
    }
    return ret;
}

static const struct command cmd_domain_remove = {
    .name = "remove",
    .summary = "Stop managing a domain",
    .usage = "Usage: certctl domain remove NAME [--purge]\n"
             "\n"
             "Stops managing domain NAME. Its keys, certificates and events stay in its history\n"
             "and 'certctl domain add NAME' brings it back.\n"
             "\n"
             "Options:\n"
             "  --purge    Delete the domain with its keys and certificates (the audit log keeps\n"
             "             its events)\n"
             "\n"
             "Calls DELETE /v1/domains/NAME[?purge=true]. The API answers with no body, so\n"
             "--json prints nothing.\n",
    .run = run_remove,
};

/* ---- renew ------------------------------------------------------------------------------ */

static const struct opt_spec renew_opts[] = {
    {"--wait", false},
    {"--timeout", true},
    {NULL, false},
};

static int run_renew(struct certctl *ctx, struct cli_args *args)
{
    int which;
    const char *val, *name = NULL;
    enum args_result r;
    bool wait = false, timeout_given = false;
    long timeout_s = WAIT_DEFAULT_TIMEOUT_S;
    json_t *before_doc = NULL, *doc = NULL;
    char *path = NULL, *renew_path = NULL;
    int ret;

    while ((r = args_next(args, ctx, renew_opts, &which, &val)) != ARGS_END) {
        if (r == ARGS_ERROR)
            return CERTCTL_EXIT_USAGE;
        if (r == ARGS_WORD) {
            if (name)
                return usage_error(ctx, "unexpected argument '%s'", val);
            name = val;
        } else if (which == 0) {
            wait = true;
        } else {
            ret = wait_parse_timeout(ctx, val, &timeout_s);
            if (ret != CERTCTL_EXIT_OK)
                return ret;
            timeout_given = true;
        }
    }
    if (!name)
        return usage_error(ctx, "missing domain name");
    if (timeout_given && !wait)
        return usage_error(ctx, "--timeout applies only with --wait");

    path = api_domain_path(ctx, name, "");
    renew_path = api_domain_path(ctx, name, "/renew");
    if (!path || !renew_path) {
        ret = CERTCTL_EXIT_FAILED;
        goto out;
    }
    /* What "renewed" means is relative: remember the certificate and failure count now, so
     * that any later change of either is this request's outcome (or a concurrent order's, which
     * is as good an answer to "does this domain get certificates"). */
    struct renew_before before = {0};
    if (wait) {
        ret = api_call_object(ctx, "GET", path, NULL, &before_doc);
        if (ret != CERTCTL_EXIT_OK)
            goto out;
        before.cert_id = current_cert_id(before_doc);
        before.failures = failure_count(before_doc);
    }
    ret = api_call(ctx, "POST", renew_path, NULL, &doc);
    if (ret != CERTCTL_EXIT_OK)
        goto out;
    if (wait) {
        const char *norm = json_string_value(json_object_get(before_doc, "name"));
        ret = wait_domain(ctx, norm ? norm : name, timeout_s, renewed_check, &before,
                          "new certificate");
    } else if (ctx->json && doc) {
        ret = output_json(doc) == 0 ? CERTCTL_EXIT_OK : CERTCTL_EXIT_FAILED;
    } else if (!ctx->json) {
        char dname[512];
        const json_t *n = json_object_get(doc, "name");
        snprintf(dname, sizeof(dname), "%s", json_is_string(n) ? json_string_value(n) : name);
        output_sanitize(dname);
        printf("renewal of %s scheduled (follow it with 'certctl domain show %s' or "
               "'certctl order show %s')\n",
               dname, dname, dname);
    }
out:
    json_decref(doc);
    json_decref(before_doc);
    free(path);
    free(renew_path);
    return ret;
}

const struct command cmd_renew = {
    .name = "renew",
    .summary = "Order a new certificate for a domain now",
    .usage = "Usage: certctl renew NAME [--wait [--timeout S]]\n"
             "\n"
             "Makes certd start a new ACME order for domain NAME now, whatever its renewal date\n"
             "(also to retry a failed domain at once). The current certificate keeps being served\n"
             "until the new one is stored.\n"
             "\n"
             "Options:\n"
             "  --wait        Wait for the outcome and print the domain with its new certificate\n"
             "  --timeout S   Give up waiting after S seconds (default 300)\n"
             "\n"
             "Calls POST /v1/domains/NAME/renew. Without --wait, prints that the renewal is\n"
             "scheduled (with --json, the API's response). With --wait, first reads the domain\n"
             "(GET /v1/domains/NAME) and remembers its current certificate id and failure count,\n"
             "then polls it every 250 ms and exits with:\n"
             "  0  the current certificate changed: the domain is printed (--json: as JSON)\n"
             "  1  the failure count grew: certd's last error and the CA's problem go to stderr\n"
             "  4  neither happened within the timeout (the order goes on)\n"
             "An order that was already running when renew was called counts as the outcome too.\n"
             "On 1 and 4, --json prints the last state seen.\n",
    .run = run_renew,
};

/* ---- domain ----------------------------------------------------------------------------- */

static const struct command *const domain_subs[] = {
    &cmd_domain_add, &cmd_domain_list, &cmd_domain_show, &cmd_domain_set, &cmd_domain_remove, NULL,
};

const struct command cmd_domain = {
    .name = "domain",
    .summary = "Manage domains: add, list, show, set, remove",
    .usage = "Usage: certctl domain COMMAND [ARGS...]\n"
             "\n"
             "Commands:\n"
             "  add NAME [--alt NAME]... [--challenge TYPE] [--key-type TYPE] [--ca CA]\n"
             "      [--reuse-key] [--profile P] [--renew-before X] [--wait [--timeout S]]\n"
             "                  Start managing a domain (generates its first key)\n"
             "  list [--all] [--limit N]\n"
             "                  List managed domains\n"
             "  show NAME       Show one domain in detail\n"
             "  set NAME [--alt NAME]... [--no-alt] [--challenge TYPE] [--key-type TYPE]\n"
             "      [--ca CA] [--[no-]reuse-key] [--[no-]profile [P]]\n"
             "      [--[no-]renew-before [X]]\n"
             "                  Change a domain's settings\n"
             "  remove NAME [--purge]\n"
             "                  Stop managing a domain\n"
             "\n"
             "Run 'certctl domain COMMAND --help' for a command's details.\n",
    .run = NULL,
    .subs = domain_subs,
};
