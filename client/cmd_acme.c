/* certctl order show and account list|show|register|rollover|deactivate: the ACME side. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "certctl.h"
#include "common/problem.h"
#include "http.h"
#include "output.h"

/* Problem documents a CA sends are small; ours cut descriptions at this size. */
#define DESC_MAX 2048

static int print_json(const json_t *doc)
{
    return output_json(doc) == 0 ? CERTCTL_EXIT_OK : CERTCTL_EXIT_FAILED;
}

#define KV(key, value)                                                                             \
    do {                                                                                           \
        if (table_kv(t, (key), (value)) < 0)                                                       \
            goto oom;                                                                              \
    } while (0)
#define FIELD(key, obj, member) KV(key, output_value(json_object_get(obj, member), a, sizeof(a)))
#define TIME(key, obj, member)                                                                     \
    KV(key, output_time(json_object_get(obj, member), TIME_LONG, a, sizeof(a)))

/* Adds the strings of array ARR as rows "KEY: first", ": second"...; "-" when empty. */
static int kv_list(struct table *t, const char *key, const json_t *arr)
{
    char a[1024], label[128];
    if (json_array_size(arr) == 0)
        return table_kv(t, key, "-");
    snprintf(label, sizeof(label), "%s:", key);
    size_t i;
    const json_t *v;
    json_array_foreach(arr, i, v)
    {
        const char *row[2] = {i == 0 ? label : "", output_value(v, a, sizeof(a))};
        if (table_add(t, row) < 0)
            return -1;
    }
    return 0;
}

/* ---- order show -------------------------------------------------------------------------- */

/* Adds the rows describing the ACME problem document ERR (RFC 8555 §6.7): its type, its text
 * and one row per subproblem ("identifier: text (type)"). */
static int kv_problem(struct table *t, const json_t *err)
{
    char a[DESC_MAX], line[DESC_MAX + 512], type[256];

    if (!json_is_object(err))
        return table_kv(t, "error", "-");
    /* The subproblems get rows of their own, so the main line leaves them out. */
    json_t *top = json_copy((json_t *)err);
    if (!top)
        return -1;
    json_object_del(top, "subproblems");
    problem_describe(top, a, sizeof(a));
    json_decref(top);
    if (table_kv(t, "error", a) < 0)
        return -1;
    if (table_kv(t, "error type", output_value(json_object_get(err, "type"), type, sizeof(type))) <
        0)
        return -1;

    const json_t *subs = json_object_get(err, "subproblems");
    size_t i;
    const json_t *sub;
    json_array_foreach(subs, i, sub)
    {
        char id[512];
        problem_describe(sub, a, sizeof(a));
        snprintf(line, sizeof(line), "%s: %s (%s)",
                 output_value(json_object_get(json_object_get(sub, "identifier"), "value"), id,
                              sizeof(id)),
                 a, output_value(json_object_get(sub, "type"), type, sizeof(type)));
        const char *row[2] = {i == 0 ? "subproblems:" : "", line};
        if (table_add(t, row) < 0)
            return -1;
    }
    return 0;
}

static int print_order(const json_t *o)
{
    char a[1024];
    struct table *t = table_new(2, NULL);
    if (!t)
        goto oom;
    FIELD("order", o, "id");
    FIELD("domain", o, "domain");
    FIELD("ca", o, "ca");
    FIELD("status", o, "status");
    FIELD("step", o, "step");
    FIELD("finished", o, "finished");
    if (kv_list(t, "names", json_object_get(o, "names")) < 0)
        goto oom;
    FIELD("key", o, "key_id");
    FIELD("url", o, "url");
    TIME("created", o, "created_at");
    TIME("updated", o, "updated_at");
    TIME("expires", o, "expires_at");
    if (kv_problem(t, json_object_get(o, "error")) < 0)
        goto oom;
    table_print(t, stdout);
    table_free(t);
    return CERTCTL_EXIT_OK;
oom:
    table_free(t);
    errmsg("out of memory");
    return CERTCTL_EXIT_FAILED;
}

static int run_order_show(struct certctl *ctx, struct cli_args *args)
{
    const char *name;
    json_t *doc = NULL;
    int ret = args_one(args, ctx, "domain name", &name);
    if (ret != CERTCTL_EXIT_OK)
        return ret;
    char *path = api_domain_path(ctx, name, "/order");
    if (!path)
        return CERTCTL_EXIT_FAILED;
    ret = api_call_object(ctx, "GET", path, NULL, &doc);
    if (ret == CERTCTL_EXIT_OK)
        ret = ctx->json ? print_json(doc) : print_order(doc);
    json_decref(doc);
    free(path);
    return ret;
}

static const struct command cmd_order_show = {
    .name = "show",
    .summary = "Show a domain's latest ACME order",
    .usage = "Usage: certctl order show NAME\n"
             "\n"
             "Shows the latest ACME order of domain NAME: its id, CA, ACME status (new, pending,\n"
             "ready, processing, valid, invalid), certd's step (ordered, responded, finalized),\n"
             "whether it is finished, the names it covers, the key it certifies, its URL at the\n"
             "CA, when it was created, updated and expires and, when it failed, the CA's\n"
             "problem: its description, type and one line per subproblem (RFC 8555 §6.7.1).\n"
             "\n"
             "Calls GET /v1/domains/NAME/order. With --json, prints its response.\n",
    .run = run_order_show,
};

static const struct command *const order_subs[] = {&cmd_order_show, NULL};

const struct command cmd_order = {
    .name = "order",
    .summary = "Show a domain's latest ACME order",
    .usage = "Usage: certctl order COMMAND [ARGS...]\n"
             "\n"
             "Commands:\n"
             "  show NAME       Show a domain's latest ACME order (status, CA problem)\n"
             "\n"
             "Run 'certctl order COMMAND --help' for a command's details.\n",
    .run = NULL,
    .subs = order_subs,
};

/* ---- account ----------------------------------------------------------------------------- */

/* "/v1/accounts/<CA><SUFFIX>", CA percent-encoded; NULL on allocation failure (reported). */
static char *account_path(struct certctl *ctx, const char *ca, const char *suffix)
{
    char *esc = http_escape(ctx->http, ca);
    char *path = NULL;
    if (esc) {
        size_t len = strlen("/v1/accounts/") + strlen(esc) + strlen(suffix) + 1;
        path = malloc(len);
        if (path)
            snprintf(path, len, "/v1/accounts/%s%s", esc, suffix);
    }
    if (!path)
        errmsg("out of memory");
    free(esc);
    return path;
}

static int print_account(const json_t *acc)
{
    char a[1024];
    struct table *t = table_new(2, NULL);
    if (!t)
        goto oom;
    FIELD("ca", acc, "ca");
    FIELD("status", acc, "status");
    FIELD("account url", acc, "account_url");
    FIELD("directory", acc, "directory_url");
    FIELD("key type", acc, "key_type");
    if (kv_list(t, "contact", json_object_get(acc, "contact")) < 0)
        goto oom;
    TIME("created", acc, "created_at");
    TIME("updated", acc, "updated_at");
    table_print(t, stdout);
    table_free(t);
    return CERTCTL_EXIT_OK;
oom:
    table_free(t);
    errmsg("out of memory");
    return CERTCTL_EXIT_FAILED;
}

#undef TIME
#undef FIELD
#undef KV

static int run_account_list(struct certctl *ctx, struct cli_args *args)
{
    json_t *doc = NULL;
    struct table *t = NULL;

    int ret = args_none(args, ctx);
    if (ret != CERTCTL_EXIT_OK)
        return ret;
    ret = api_call_object(ctx, "GET", "/v1/accounts", NULL, &doc);
    if (ret != CERTCTL_EXIT_OK)
        goto out;
    if (ctx->json) {
        ret = print_json(doc);
        goto out;
    }
    static const char *const headers[] = {"CA", "STATUS", "KEY", "ACCOUNT URL"};
    t = table_new(4, headers);
    if (!t)
        goto oom;
    size_t i;
    json_t *acc;
    json_array_foreach(json_object_get(doc, "accounts"), i, acc)
    {
        char ca[256], st[64], key[64], url[1024];
        const char *row[4] = {
            output_value(json_object_get(acc, "ca"), ca, sizeof(ca)),
            output_value(json_object_get(acc, "status"), st, sizeof(st)),
            output_value(json_object_get(acc, "key_type"), key, sizeof(key)),
            output_value(json_object_get(acc, "account_url"), url, sizeof(url)),
        };
        if (table_add(t, row) < 0)
            goto oom;
    }
    if (table_rows(t) == 0)
        printf("(no accounts: certd registers one with a CA on its first order)\n");
    else
        table_print(t, stdout);
    ret = CERTCTL_EXIT_OK;
    goto out;
oom:
    errmsg("out of memory");
    ret = CERTCTL_EXIT_FAILED;
out:
    table_free(t);
    json_decref(doc);
    return ret;
}

/* show, register, rollover and deactivate: METHOD on the account of the CA given, which
 * answers the account object. */
static int account_call(struct certctl *ctx, struct cli_args *args, const char *method,
                        const char *suffix)
{
    const char *ca;
    json_t *doc = NULL;
    int ret = args_one(args, ctx, "CA name", &ca);
    if (ret != CERTCTL_EXIT_OK)
        return ret;
    char *path = account_path(ctx, ca, suffix);
    if (!path)
        return CERTCTL_EXIT_FAILED;
    ret = api_call_object(ctx, method, path, NULL, &doc);
    if (ret == CERTCTL_EXIT_OK)
        ret = ctx->json ? print_json(doc) : print_account(doc);
    json_decref(doc);
    free(path);
    return ret;
}

static int run_account_show(struct certctl *ctx, struct cli_args *args)
{
    return account_call(ctx, args, "GET", "");
}

static int run_account_register(struct certctl *ctx, struct cli_args *args)
{
    return account_call(ctx, args, "POST", "");
}

static int run_account_rollover(struct certctl *ctx, struct cli_args *args)
{
    return account_call(ctx, args, "POST", "/rollover");
}

static int run_account_deactivate(struct certctl *ctx, struct cli_args *args)
{
    return account_call(ctx, args, "POST", "/deactivate");
}

static const struct command cmd_account_list = {
    .name = "list",
    .summary = "List certd's ACME accounts",
    .usage = "Usage: certctl account list\n"
             "\n"
             "Lists certd's ACME accounts, one per CA: the CA's name, the account's status\n"
             "(valid, deactivated, revoked), its key type and its URL at the CA. Account keys\n"
             "are never shown.\n"
             "\n"
             "Calls GET /v1/accounts. With --json, prints its response.\n",
    .run = run_account_list,
};

static const struct command cmd_account_show = {
    .name = "show",
    .summary = "Show the ACME account with one CA",
    .usage = "Usage: certctl account show CA\n"
             "\n"
             "Shows certd's ACME account with CA (a CA name from certd's configuration): its\n"
             "status, URL, the CA's directory, key type, contacts and when it was created and\n"
             "last changed.\n"
             "\n"
             "Calls GET /v1/accounts/CA. With --json, prints its response.\n",
    .run = run_account_show,
};

static const struct command cmd_account_register = {
    .name = "register",
    .summary = "Register a new account (new key) with a CA now",
    .usage = "Usage: certctl account register CA\n"
             "\n"
             "Registers a new ACME account with a new key at CA now, replacing a deactivated or\n"
             "lost one (RFC 8555 §7.3). certd otherwise registers accounts on first use.\n"
             "\n"
             "Calls POST /v1/accounts/CA. Prints the new account (with --json, the API's\n"
             "response).\n",
    .run = run_account_register,
};

static const struct command cmd_account_rollover = {
    .name = "rollover",
    .summary = "Replace an account's key",
    .usage = "Usage: certctl account rollover CA\n"
             "\n"
             "Replaces the key of certd's account with CA by a new one (RFC 8555 §7.3.5). The\n"
             "account, its URL and its orders stay.\n"
             "\n"
             "Calls POST /v1/accounts/CA/rollover. Prints the account (with --json, the API's\n"
             "response).\n",
    .run = run_account_rollover,
};

static const struct command cmd_account_deactivate = {
    .name = "deactivate",
    .summary = "Deactivate an account at its CA (irreversible)",
    .usage = "Usage: certctl account deactivate CA\n"
             "\n"
             "Deactivates certd's account with CA at the CA (RFC 8555 §7.3.6). This cannot be\n"
             "undone: orders with that CA fail until 'certctl account register CA' registers a\n"
             "new account. Existing certificates stay valid.\n"
             "\n"
             "Calls POST /v1/accounts/CA/deactivate. Prints the account (with --json, the API's\n"
             "response).\n",
    .run = run_account_deactivate,
};

static const struct command *const account_subs[] = {
    &cmd_account_list,     &cmd_account_show,       &cmd_account_register,
    &cmd_account_rollover, &cmd_account_deactivate, NULL,
};

const struct command cmd_account = {
    .name = "account",
    .summary = "Manage ACME accounts: list, show, register, rollover, deactivate",
    .usage = "Usage: certctl account COMMAND [ARGS...]\n"
             "\n"
             "Commands:\n"
             "  list            List certd's ACME accounts\n"
             "  show CA         Show the account with one CA\n"
             "  register CA     Register a new account (new key) with a CA now\n"
             "  rollover CA     Replace an account's key\n"
             "  deactivate CA   Deactivate an account at its CA (irreversible)\n"
             "\n"
             "Run 'certctl account COMMAND --help' for a command's details.\n",
    .run = NULL,
    .subs = account_subs,
};
