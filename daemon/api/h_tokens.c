/* /v1/tokens: bearer tokens for remote fleet members (admins only, see router.c). The token
 * text exists once, in the answer to POST; what is stored and listed is its public id and a
 * salted hash (api/token.h). */
#include "api/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/token.h"
#include "common/jsonutil.h"
#include "common/names.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "store/store.h"

#define TOKEN_NAME_MAX 64
/* Scope entries one token may carry: a fleet member serves a bounded set of sites. */
#define TOKEN_SCOPE_MAX 1000

static bool token_name_ok(const char *s)
{
    size_t n = strnlen(s, TOKEN_NAME_MAX + 1);
    if (n == 0 || n > TOKEN_NAME_MAX)
        return false;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

static const char *token_status(const struct store_token *t, int64_t now)
{
    if (t->revoked_at)
        return "revoked";
    if (t->expires_at && t->expires_at <= now)
        return "expired";
    return "active";
}

/* The token object of docs/api.md: never the hash, the salt or (unknowable) the secret. */
static json_t *token_json(const struct store_token *t, int64_t now)
{
    json_t *domains = t->scope_json ? json_loads(t->scope_json, 0, NULL) : NULL;
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:o, s:s, s:o, s:o, s:o, s:o}", "id", t->id, "name", t->name, "role",
        t->role, "domains", domains ? domains : json_null(), "status", token_status(t, now),
        "created_at", json_time_or_null(t->created_at), "expires_at",
        json_time_or_null(t->expires_at), "revoked_at", json_time_or_null(t->revoked_at),
        "last_used_at", json_time_or_null(t->last_used_at));
    return o;
}

/*
 * Normalises the "domains" array V into a new JSON array of scope entries (names or "*.suffix",
 * lower case, A-labels, duplicates dropped). Answers 400 and returns NULL on a bad entry.
 */
static json_t *scope_from_body(struct api_request *req, const json_t *v, enum MHD_Result *rc)
{
    size_t n = json_array_size(v);
    if (n == 0 || n > TOKEN_SCOPE_MAX) {
        *rc = api_respond_problem_ext(req, PROBLEM_INVALID_FIELD, "field", "domains",
                                      "domains must list 1 to %d names (or be null: every "
                                      "domain)",
                                      TOKEN_SCOPE_MAX);
        return NULL;
    }
    json_t *out = json_array();
    if (!out) {
        *rc = MHD_NO;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const char *raw = json_string_value(json_array_get(v, i));
        char norm[NAME_BUF_SIZE], err[NAME_ERR_SIZE];
        if (name_normalize(raw, true, norm, err) < 0) {
            *rc = api_respond_problem_ext(req, PROBLEM_INVALID_NAME, "name", raw,
                                          "domains: '%s': %s", raw, err);
            json_decref(out);
            return NULL;
        }
        bool dup = false;
        size_t j;
        json_t *e;
        json_array_foreach(out, j, e)
        {
            dup = dup || strcmp(json_string_value(e), norm) == 0;
        }
        if (!dup && json_array_append_new(out, json_string(norm)) < 0) {
            json_decref(out);
            *rc = MHD_NO;
            return NULL;
        }
    }
    return out;
}

static const struct json_field create_fields[] = {
    {"name", JSON_FIELD_STRING, true},
    {"role", JSON_FIELD_STRING, true},
    {"domains", JSON_FIELD_STRING_ARRAY, false}, /* or null */
    {"expires_in", JSON_FIELD_STRING, false},    /* or null */
};

enum MHD_Result h_tokens_create(struct api_request *req, const char *param)
{
    enum MHD_Result rc = MHD_NO;
    char err[256], location[64];
    const char *bad;
    bool unknown;
    json_t *scope = NULL, *body = NULL;
    char *scope_text = NULL, *detail = NULL;
    struct token_new tok;
    struct store_token *stored = NULL;
    int64_t expires_at = 0;

    memset(&tok, 0, sizeof(tok));
    if (!api_query_check(req, NULL, &rc))
        return rc;
    if (!(body = api_body_object(req, &rc)))
        return rc;
    /* null means "not given" for the optional members */
    if (json_is_null(json_object_get(body, "domains")))
        json_object_del(body, "domains");
    if (json_is_null(json_object_get(body, "expires_in")))
        json_object_del(body, "expires_in");
    if (json_check_fields(body, create_fields, sizeof(create_fields) / sizeof(create_fields[0]),
                          err, sizeof(err), &bad, &unknown) < 0) {
        rc = api_respond_problem_ext(req, unknown ? PROBLEM_UNKNOWN_FIELD : PROBLEM_INVALID_FIELD,
                                     "field", bad, "%s", err);
        goto out;
    }
    const char *name = json_string_value(json_object_get(body, "name"));
    const char *role = json_string_value(json_object_get(body, "role"));
    const json_t *domains = json_object_get(body, "domains");
    const char *expires_in = json_string_value(json_object_get(body, "expires_in"));
    if (!token_name_ok(name)) {
        rc = api_respond_problem_ext(req, PROBLEM_INVALID_FIELD, "field", "name",
                                     "name must be 1 to %d characters of A-Z, a-z, 0-9, '.', '_' "
                                     "and '-'",
                                     TOKEN_NAME_MAX);
        goto out;
    }
    if (strcmp(role, TOKEN_ROLE_ADMIN) != 0 && strcmp(role, TOKEN_ROLE_DEPLOYER) != 0 &&
        strcmp(role, TOKEN_ROLE_READER) != 0) {
        rc = api_respond_problem_ext(req, PROBLEM_INVALID_FIELD, "field", "role",
                                     "role must be admin, deployer or reader");
        goto out;
    }
    /* An admin can make tokens and change any domain, so a scope could not hold it. */
    if (domains && strcmp(role, TOKEN_ROLE_ADMIN) == 0) {
        rc = api_respond_problem_ext(req, PROBLEM_INVALID_FIELD, "field", "domains",
                                     "admin tokens cannot be limited to domains; use deployer or "
                                     "reader");
        goto out;
    }
    if (domains) {
        if (!(scope = scope_from_body(req, domains, &rc)))
            goto out;
        if (!(scope_text = json_dumps(scope, JSON_COMPACT))) {
            rc = MHD_NO;
            goto out;
        }
    }
    if (expires_in) {
        uint64_t secs = 0;
        if (config_parse_duration(expires_in, &secs) < 0 || secs == 0) {
            rc = api_respond_problem_ext(req, PROBLEM_INVALID_FIELD, "field", "expires_in",
                                         "expires_in must be a duration above 0 such as \"90d\", "
                                         "\"12h\" or \"3600\" (or null: never)");
            goto out;
        }
        expires_at = clock_now() + (int64_t)secs;
    }

    if (token_generate(&tok) < 0) {
        rc = api_respond_problem(req, PROBLEM_INTERNAL, "cannot generate a token");
        goto out;
    }
    json_t *d = json_pack("{s:s, s:s, s:s, s:O?, s:o}", "id", tok.id, "name", name, "role", role,
                          "domains", scope, "expires_at", json_time_or_null(expires_at));
    detail = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    struct store_token row = {.id = tok.id,
                              .name = (char *)name,
                              .role = (char *)role,
                              .scope_json = scope_text,
                              .salt = tok.salt_hex,
                              .hash = tok.hash_hex,
                              .expires_at = expires_at};
    /* No domain: only unscoped callers see token events. */
    struct store_event_in ev = {
        .type = "token.created", .actor = req->caller.actor, .detail_json = detail};
    int e = detail ? store_token_add(req->ctx->store, &row, &ev) : -ENOMEM;
    if (e == -EEXIST) {
        rc = api_respond_problem_ext(req, PROBLEM_CONFLICT, "name", name,
                                     "a token named %s exists already (revoke it first)", name);
        goto out;
    }
    if (e < 0 || store_token_get(req->ctx->store, tok.id, &stored) < 0) {
        rc = api_respond_problem(req, PROBLEM_INTERNAL, "cannot store the token");
        goto out;
    }
    log_info("token %s (%s, %s%s) created by %s", tok.id, name, role, scope ? ", scoped" : "",
             req->caller.actor);
    json_t *o = token_json(stored, clock_now());
    /* The only time the token's text leaves certd. */
    if (o)
        json_object_set_new(o, "token", json_string(tok.text));
    snprintf(location, sizeof(location), "/v1/tokens/%s", tok.id);
    rc = api_respond_json_secret(req, MHD_HTTP_CREATED, o, "token", location);
out:
    token_new_wipe(&tok);
    store_token_free(stored);
    free(scope_text);
    free(detail);
    json_decref(scope);
    json_decref(body);
    return rc;
}

enum MHD_Result h_tokens_list(struct api_request *req, const char *param)
{
    enum MHD_Result rc = MHD_NO;
    if (!api_query_check(req, NULL, &rc))
        return rc;
    struct store_token **list = NULL;
    size_t n = 0;
    if (store_token_list(req->ctx->store, &list, &n) < 0)
        return api_respond_problem(req, PROBLEM_INTERNAL, "cannot read tokens");
    int64_t now = clock_now();
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        json_array_append_new(arr, token_json(list[i], now));
    store_token_list_free(list, n);
    return api_respond_json(req, MHD_HTTP_OK,
                            json_pack("{s:o}", "tokens", arr ? arr : json_array()));
}

/* The token PARAM names: its id, else the name of a token that is not revoked. */
static int token_lookup(struct api_request *req, const char *param, struct store_token **out)
{
    *out = NULL;
    int e = store_token_get(req->ctx->store, param, out);
    if (e != -ENOENT)
        return e;
    struct store_token **list = NULL;
    size_t n = 0;
    if ((e = store_token_list(req->ctx->store, &list, &n)) < 0)
        return e;
    e = -ENOENT;
    for (size_t i = 0; i < n; i++) {
        if (!list[i]->revoked_at && strcmp(list[i]->name, param) == 0) {
            *out = list[i];
            list[i] = NULL;
            e = 0;
            break;
        }
    }
    store_token_list_free(list, n);
    return e;
}

enum MHD_Result h_token_revoke(struct api_request *req, const char *param)
{
    enum MHD_Result rc = MHD_NO;
    struct store_token *t = NULL, *after = NULL;
    char detail[256];
    if (!api_query_check(req, NULL, &rc))
        return rc;
    int e = token_lookup(req, param, &t);
    if (e == -ENOENT)
        return api_respond_problem(req, PROBLEM_NOT_FOUND, "no token with id or name %s", param);
    if (e < 0)
        return api_respond_problem(req, PROBLEM_INTERNAL, "cannot read tokens");
    json_t *d = json_pack("{s:s, s:s}", "id", t->id, "name", t->name);
    char *text = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    snprintf(detail, sizeof(detail), "%s", text ? text : "{}");
    free(text);
    struct store_event_in ev = {
        .type = "token.revoked", .actor = req->caller.actor, .detail_json = detail};
    e = store_token_revoke(req->ctx->store, t->id, clock_now(), &ev);
    if (e == -EALREADY) {
        rc = api_respond_problem(req, PROBLEM_CONFLICT, "token %s is already revoked", t->id);
        goto out;
    }
    if (e < 0 || store_token_get(req->ctx->store, t->id, &after) < 0) {
        rc = api_respond_problem(req, PROBLEM_INTERNAL, "cannot revoke token %s", t->id);
        goto out;
    }
    log_notice("token %s (%s) revoked by %s", t->id, t->name, req->caller.actor);
    rc = api_respond_json(req, MHD_HTTP_OK, token_json(after, clock_now()));
out:
    store_token_free(t);
    store_token_free(after);
    return rc;
}
