/* certctl token create|list|revoke: bearer tokens for remote fleet members (the HTTPS
 * listener). Made over the socket by an admin; the token's text is printed once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "certctl.h"
#include "http.h"
#include "output.h"

/* More domains than a token takes (the daemon says so) still fit: the list is checked there. */
#define DOMAINS_ARG_MAX 1000

static int print_json(const json_t *doc)
{
    return output_json(doc) == 0 ? CERTCTL_EXIT_OK : CERTCTL_EXIT_FAILED;
}

/* "a.example.com, *.shop.example.com" as one table cell; "all" for an unscoped token. */
static const char *domains_text(const json_t *domains, char *buf, size_t bufsz)
{
    if (!json_is_array(domains))
        return "all";
    size_t used = 0, i;
    const json_t *v;
    buf[0] = '\0';
    json_array_foreach(domains, i, v)
    {
        const char *s = json_string_value(v);
        int n = snprintf(buf + used, bufsz - used, "%s%s", i ? ", " : "", s ? s : "?");
        if (n < 0 || (size_t)n >= bufsz - used)
            break;
        used += (size_t)n;
    }
    return buf;
}

/* Splits LIST on commas and whitespace into a JSON array of strings; NULL on an empty list. */
static json_t *split_domains(const char *list)
{
    json_t *arr = json_array();
    char *copy = strdup(list);
    if (!arr || !copy)
        goto fail;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
        if (json_array_size(arr) == DOMAINS_ARG_MAX || json_array_append_new(arr, json_string(tok)))
            goto fail;
    }
    free(copy);
    if (json_array_size(arr) == 0) {
        json_decref(arr);
        return NULL;
    }
    return arr;
fail:
    free(copy);
    json_decref(arr);
    return NULL;
}

/* ---- create ---- */

enum { CR_OPT_ROLE, CR_OPT_DOMAINS, CR_OPT_EXPIRES };
static const struct opt_spec create_opts[] = {
    [CR_OPT_ROLE] = {"--role", true},
    [CR_OPT_DOMAINS] = {"--domains", true},
    [CR_OPT_EXPIRES] = {"--expires", true},
    {NULL, false},
};

static int run_token_create(struct certctl *ctx, struct cli_args *args)
{
    int which;
    const char *val, *name = NULL, *role = NULL, *domains = NULL, *expires = NULL;
    enum args_result r;
    json_t *body = NULL, *doc = NULL, *scope = NULL;
    struct table *t = NULL;
    int ret;

    while ((r = args_next(args, ctx, create_opts, &which, &val)) != ARGS_END) {
        if (r == ARGS_ERROR)
            return CERTCTL_EXIT_USAGE;
        if (r == ARGS_WORD) {
            if (name)
                return usage_error(ctx, "unexpected argument '%s'", val);
            name = val;
        } else if (which == CR_OPT_ROLE) {
            role = val;
        } else if (which == CR_OPT_DOMAINS) {
            domains = val;
        } else {
            expires = val;
        }
    }
    if (!name)
        return usage_error(ctx, "missing token name");
    if (!role)
        return usage_error(ctx, "missing --role (admin, deployer or reader)");
    if (domains && !(scope = split_domains(domains)))
        return usage_error(ctx, "--domains needs at least one name (at most %d)", DOMAINS_ARG_MAX);

    body = json_pack("{s:s, s:s}", "name", name, "role", role);
    if (!body || (scope && json_object_set_new(body, "domains", scope) < 0) ||
        (expires && json_object_set_new(body, "expires_in", json_string(expires)) < 0)) {
        scope = NULL;
        goto oom;
    }
    scope = NULL;
    ret = api_call_object(ctx, "POST", "/v1/tokens", body, &doc);
    if (ret != CERTCTL_EXIT_OK)
        goto out;
    if (ctx->json) {
        ret = print_json(doc);
        goto out;
    }
    char a[1024], b[4096];
    t = table_new(2, NULL);
    if (!t)
        goto oom;
    if (table_kv(t, "token", output_value(json_object_get(doc, "token"), a, sizeof(a))) < 0 ||
        table_kv(t, "id", output_value(json_object_get(doc, "id"), a, sizeof(a))) < 0 ||
        table_kv(t, "name", output_value(json_object_get(doc, "name"), a, sizeof(a))) < 0 ||
        table_kv(t, "role", output_value(json_object_get(doc, "role"), a, sizeof(a))) < 0 ||
        table_kv(t, "domains", domains_text(json_object_get(doc, "domains"), b, sizeof(b))) < 0 ||
        table_kv(t, "expires",
                 json_is_null(json_object_get(doc, "expires_at"))
                     ? "never"
                     : output_time(json_object_get(doc, "expires_at"), TIME_LONG, a, sizeof(a))) <
            0)
        goto oom;
    table_print(t, stdout);
    fprintf(stderr, "certctl: store the token now: certd keeps only a hash of it and cannot show "
                    "it again\n");
    ret = CERTCTL_EXIT_OK;
    goto out;
oom:
    errmsg("out of memory");
    ret = CERTCTL_EXIT_FAILED;
out:
    json_decref(scope);
    table_free(t);
    json_decref(body);
    if (doc) {
        /* The answer holds the token's text: do not leave it in freed memory. */
        json_t *tok = json_object_get(doc, "token");
        const char *s = json_string_value(tok);
        if (s)
            explicit_bzero((char *)s, strlen(s));
    }
    json_decref(doc);
    return ret;
}

/* ---- list ---- */

static int run_token_list(struct certctl *ctx, struct cli_args *args)
{
    json_t *doc = NULL;
    struct table *t = NULL;

    int ret = args_none(args, ctx);
    if (ret != CERTCTL_EXIT_OK)
        return ret;
    ret = api_call_object(ctx, "GET", "/v1/tokens", NULL, &doc);
    if (ret != CERTCTL_EXIT_OK)
        goto out;
    if (ctx->json) {
        ret = print_json(doc);
        goto out;
    }
    static const char *const headers[] = {
        "ID", "NAME", "ROLE", "STATUS", "EXPIRES (UTC)", "LAST USED (UTC)", "DOMAINS"};
    t = table_new(7, headers);
    if (!t)
        goto oom;
    size_t i;
    json_t *tok;
    json_array_foreach(json_object_get(doc, "tokens"), i, tok)
    {
        char id[64], name[128], role[32], status[32], exp[64], used[64], dom[4096];
        const json_t *e = json_object_get(tok, "expires_at");
        const char *row[7] = {
            output_value(json_object_get(tok, "id"), id, sizeof(id)),
            output_value(json_object_get(tok, "name"), name, sizeof(name)),
            output_value(json_object_get(tok, "role"), role, sizeof(role)),
            output_value(json_object_get(tok, "status"), status, sizeof(status)),
            json_is_null(e) ? "never" : output_time(e, TIME_SHORT, exp, sizeof(exp)),
            output_time(json_object_get(tok, "last_used_at"), TIME_SHORT, used, sizeof(used)),
            domains_text(json_object_get(tok, "domains"), dom, sizeof(dom)),
        };
        if (table_add(t, row) < 0)
            goto oom;
    }
    if (table_rows(t) == 0)
        printf("(no tokens)\n");
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

/* ---- revoke ---- */

static int run_token_revoke(struct certctl *ctx, struct cli_args *args)
{
    const char *which_token = NULL;
    json_t *doc = NULL;
    char *esc = NULL, *path = NULL;

    int ret = args_one(args, ctx, "token id or name", &which_token);
    if (ret != CERTCTL_EXIT_OK)
        return ret;
    esc = http_escape(ctx->http, which_token);
    size_t len = esc ? strlen("/v1/tokens/") + strlen(esc) + 1 : 0;
    path = esc ? malloc(len) : NULL;
    if (!path) {
        errmsg("out of memory");
        ret = CERTCTL_EXIT_FAILED;
        goto out;
    }
    snprintf(path, len, "/v1/tokens/%s", esc);
    ret = api_call_object(ctx, "DELETE", path, NULL, &doc);
    if (ret != CERTCTL_EXIT_OK)
        goto out;
    if (ctx->json) {
        ret = print_json(doc);
        goto out;
    }
    char id[64], name[128];
    char line[256];
    snprintf(line, sizeof(line), "token %s (%s) revoked",
             output_value(json_object_get(doc, "id"), id, sizeof(id)),
             output_value(json_object_get(doc, "name"), name, sizeof(name)));
    output_sanitize(line);
    printf("%s\n", line);
out:
    free(esc);
    free(path);
    json_decref(doc);
    return ret;
}

static const struct command cmd_token_create = {
    .name = "create",
    .summary = "Create a token for a remote fleet member (printed once)",
    .usage =
        "Usage: certctl token create NAME --role ROLE [--domains LIST] [--expires DURATION]\n"
        "\n"
        "Creates a bearer token for certd's HTTPS listener ([api.https]) and prints it. The\n"
        "token is shown this once: certd keeps only a salted hash of it.\n"
        "\n"
        "Options:\n"
        "  --role ROLE        admin (everything), deployer (certificates and private keys)\n"
        "                     or reader (certificates and state, never keys)\n"
        "  --domains LIST     Limit the token to these domains: names or *.suffix entries\n"
        "                     (one label), comma or space separated. A domain is visible when\n"
        "                     one of its names matches. Default: every domain. Not for admin.\n"
        "  --expires DURATION Expire after DURATION (90d, 12h, 3600; s, m, h or d).\n"
        "                     Default: never.\n"
        "\n"
        "Send it as 'Authorization: Bearer TOKEN', or as the password of HTTP Basic\n"
        "authentication (https://fleet:TOKEN@host:port/...).\n"
        "\n"
        "Calls POST /v1/tokens. With --json, prints its response (the token in \"token\").\n",
    .run = run_token_create,
};

static const struct command cmd_token_list = {
    .name = "list",
    .summary = "List tokens (never their secrets)",
    .usage = "Usage: certctl token list\n"
             "\n"
             "Lists every token, revoked and expired ones included: id, name, role, status\n"
             "(active, expired, revoked), expiry, when it was last used (to the minute) and\n"
             "the domains it is limited to (\"all\" when none).\n"
             "\n"
             "Calls GET /v1/tokens. With --json, prints its response.\n",
    .run = run_token_list,
};

static const struct command cmd_token_revoke = {
    .name = "revoke",
    .summary = "Revoke a token at once",
    .usage = "Usage: certctl token revoke ID|NAME\n"
             "\n"
             "Revokes the token with public id ID (as 'token list' shows it), or the token named\n"
             "NAME that is not revoked yet. Its next request is refused. The token stays in\n"
             "'token list' as revoked; its name may be used again.\n"
             "\n"
             "Calls DELETE /v1/tokens/ID. With --json, prints its response.\n",
    .run = run_token_revoke,
};

static const struct command *const token_subs[] = {
    &cmd_token_create,
    &cmd_token_list,
    &cmd_token_revoke,
    NULL,
};

const struct command cmd_token = {
    .name = "token",
    .summary = "Manage tokens for remote fleet members: create, list, revoke",
    .usage = "Usage: certctl token COMMAND [ARGS...]\n"
             "\n"
             "Commands:\n"
             "  create NAME --role ROLE [--domains LIST] [--expires DURATION]\n"
             "                  Create a token (printed once)\n"
             "  list            List tokens\n"
             "  revoke ID|NAME  Revoke a token\n"
             "\n"
             "Run 'certctl token COMMAND --help' for a command's details.\n",
    .run = NULL,
    .subs = token_subs,
};
