/* /v1/domains and /v1/domains/{name}[/history]. */
#include "core/clock.h"
#include "api/internal.h"

#include <errno.h>
#include <nettle/base64.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/jsonutil.h"
#include "common/names.h"
#include "common/types.h"
#include "core/config.h"
#include "core/log.h"
#include "crypto/keys.h"
#include "sched/planner.h"
#include "sched/renewal.h"
#include "sched/scheduler.h"
#include "store/store.h"

#define LIST_DEFAULT_LIMIT 100
#define LIST_MAX_LIMIT 1000
/* ACME profile names (draft-ietf-acme-profiles) are short tokens; certd takes 1..64 of
 * [A-Za-z0-9._-], which every CA's profile names so far fit. */
#define PROFILE_MAX 64
/* A renew_before value is a short duration or fraction ("30d", "0.33", "33%"). */
#define RENEW_BEFORE_MAX 32

/* ---- JSON views of store rows ---- */

static json_t *key_json(const struct store_key *k, bool with_status)
{
    json_t *o = json_pack("{s:I, s:s, s:s?, s:o}", "id", (json_int_t)k->id, "type", k->key_type,
                          "public_key_sha256", k->public_key_sha256, "created_at",
                          json_time_or_null(k->created_at));
    if (o && with_status)
        json_object_set_new(o, "status", json_string(k->status));
    return o;
}

static json_t *cert_json(const struct store_cert *c)
{
    json_t *o = json_pack(
        "{s:I, s:s?, s:o, s:o, s:s?, s:s?, s:I, s:s, s:o, s:o}", "id", (json_int_t)c->id, "serial",
        c->serial, "not_before", json_time_or_null(c->not_before), "not_after",
        json_time_or_null(c->not_after), "issuer", c->issuer, "fingerprint_sha256",
        c->fingerprint_sha256, "key_id", (json_int_t)c->key_id, "status", c->status, "created_at",
        json_time_or_null(c->created_at), "revoked_at", json_time_or_null(c->revoked_at));
    if (!o)
        return NULL;
    /* RFC 9773 §4.2 suggestedWindow as last fetched, and whether the expiry warning was given. */
    json_object_set_new(o, "ari_window_start", json_time_or_null(c->ari_window_start));
    json_object_set_new(o, "ari_window_end", json_time_or_null(c->ari_window_end));
    json_object_set_new(o, "expiring", json_boolean(c->expiring_notified));
    return o;
}

static json_t *string_array(char *const *items, size_t count)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < count; i++)
        json_array_append_new(a, json_string(items[i]));
    return a;
}

/* The domain object of docs/api.md, with its current key and certificate. */
static json_t *domain_json(struct store *st, const struct store_domain *d)
{
    json_t *o = json_pack(
        "{s:s, s:o, s:s, s:s, s:s, s:s, s:o, s:i, s:o, s:o, s:o}", "name", d->name, "alt_names",
        string_array(d->alt_names, d->alt_count), "challenge", d->challenge, "key_type",
        d->key_type, "ca", d->ca, "status", d->status, "next_renewal_at",
        json_time_or_null(d->next_renewal_at), "failure_count", d->failure_count, "last_error",
        d->last_error ? json_string_lossy(d->last_error) : json_null(), "created_at",
        json_time_or_null(d->created_at), "updated_at", json_time_or_null(d->updated_at));
    if (!o)
        return NULL;
    json_object_set_new(o, "next_attempt_at", json_time_or_null(d->next_attempt_at));
    json_object_set_new(o, "reuse_key", json_boolean(d->reuse_key));
    json_object_set_new(o, "profile", d->profile ? json_string_lossy(d->profile) : json_null());
    json_object_set_new(o, "renew_before",
                        d->renew_before ? json_string_lossy(d->renew_before) : json_null());

    struct store_key *k = NULL;
    struct store_cert *c = NULL;
    json_object_set_new(o, "key",
                        store_key_current(st, d->id, &k) == 0 ? key_json(k, false) : json_null());
    json_object_set_new(o, "certificate",
                        store_cert_current(st, d->id, &c) == 0 ? cert_json(c) : json_null());
    store_key_free(k);
    store_cert_free(c);
    return o;
}

/* ---- input ---- */

/* Normalises the {name} path segment; answers 400 when it cannot be a domain name. */
static bool path_name(struct api_request *req, const char *param, char out[NAME_BUF_SIZE],
                      enum MHD_Result *rc)
{
    char err[NAME_ERR_SIZE];
    if (name_normalize(param, true, out, err) < 0) {
        *rc = api_respond_problem_ext(req, PROBLEM_INVALID_NAME, "name", param, "name '%s': %s", param,
                                      err);
        return false;
    }
    return true;
}

/* Looks up the domain named in the path; answers 404 when there is none. */
static struct store_domain *path_domain(struct api_request *req, const char *param,
                                        bool allow_removed, enum MHD_Result *rc)
{
    char name[NAME_BUF_SIZE];
    if (!path_name(req, param, name, rc))
        return NULL;
    struct store_domain *d = NULL;
    int err = store_domain_get(req->ctx->store, name, &d);
    /* Outside the caller's scope a domain does not exist (404, never 403: names must not
     * leak to a scoped token). */
    if (err == 0 && ((!allow_removed && strcmp(d->status, DOMAIN_STATUS_REMOVED) == 0) ||
                     !api_caller_sees_domain(&req->caller, d))) {
        store_domain_free(d);
        d = NULL;
        err = -ENOENT;
    }
    if (err == -ENOENT)
        *rc = api_respond_problem_ext(req, PROBLEM_NOT_FOUND, "name", name,
                                      "no managed domain %s", name);
    else if (err < 0)
        *rc = api_respond_problem(req, PROBLEM_INTERNAL, "cannot read domain %s", name);
    return d;
}

/* Answers the problem json_check_fields found. */
static enum MHD_Result field_problem(struct api_request *req, const char *err, const char *field,
                                     bool unknown)
{
    return api_respond_problem_ext(req, unknown ? PROBLEM_UNKNOWN_FIELD : PROBLEM_INVALID_FIELD,
                                   "field", field, "%s", err);
}

/*
 * Applies the settable members of BODY (alt_names, challenge, key_type, ca) to D, which holds
 * the current or default settings, then validates the resulting name set as a whole. Answers
 * the problem and returns false on any bad value.
 */
static bool apply_settings(struct api_request *req, const json_t *body, struct store_domain *d,
                           enum MHD_Result *rc)
{
    const json_t *v;
    char err[NAME_ERR_SIZE];
    enum challenge_type challenge;
    enum key_type kt;

    if ((v = json_object_get(body, "challenge"))) {
        if (!challenge_type_parse(json_string_value(v), &challenge)) {
            *rc = api_respond_problem_ext(req, PROBLEM_INVALID_FIELD, "field", "challenge",
                                          "challenge must be http-01, dns-01 or tls-alpn-01");
            return false;
        }
        free(d->challenge);
        d->challenge = strdup(challenge_type_name(challenge));
    }
    if ((v = json_object_get(body, "key_type"))) {
        if (!key_type_parse(json_string_value(v), &kt)) {
            *rc = api_respond_problem_ext(
                req, PROBLEM_INVALID_FIELD, "field", "key_type",
                "key_type must be ec-p256, ec-p384, rsa-2048, rsa-3072 or rsa-4096");
            return false;
        }
        free(d->key_type);
        d->key_type = strdup(key_type_name(kt));
    }
    if ((v = json_object_get(body, "ca"))) {
        if (!config_find_ca(req->config, json_string_value(v))) {
            *rc = api_respond_problem_ext(req, PROBLEM_INVALID_FIELD, "field", "ca",
                                          "no CA named '%s' in the configuration",
                                          json_string_value(v));
            return false;
        }
        free(d->ca);
        d->ca = strdup(json_string_value(v));
    }
    if ((v = json_object_get(body, "alt_names"))) {
        size_t n = json_array_size(v);
        if (n > NAMES_MAX - 1) {
            *rc = api_respond_problem_ext(req, PROBLEM_INVALID_FIELD, "field", "alt_names",
                                          "at most %d alt_names", NAMES_MAX - 1);
            return false;
        }
        char **alts = calloc(n ? n : 1, sizeof(*alts));
        if (!alts) {
            *rc = MHD_NO;
            return false;
        }
        for (size_t i = 0; i < n; i++) {
            const char *raw = json_string_value(json_array_get(v, i));
            char norm[NAME_BUF_SIZE];
            if (name_normalize(raw, true, norm, err) < 0) {
                *rc = api_respond_problem_ext(req, PROBLEM_INVALID_NAME, "name", raw,
                                              "name '%s': %s", raw, err);
                for (size_t j = 0; j < i; j++)
                    free(alts[j]);
                free(alts);
                return false;
            }
            alts[i] = strdup(norm);
        }
        for (size_t i = 0; i < d->alt_count; i++)
            free(d->alt_names[i]);
        free(d->alt_names);
        d->alt_names = alts;
        d->alt_count = n;
    }

    if (!d->challenge || !d->key_type || !d->ca) {
        *rc = MHD_NO;
        return false;
    }
    for (size_t i = 0; i < d->alt_count; i++) {
        if (!d->alt_names[i]) {
            *rc = MHD_NO;
            return false;
        }
    }

    const char *names[NAMES_MAX];
    names[0] = d->name;
    for (size_t i = 0; i < d->alt_count; i++)
        names[i + 1] = d->alt_names[i];
    challenge_type_parse(d->challenge, &challenge);
    if (names_check_set(names, d->alt_count + 1, challenge, err) < 0) {
        *rc = api_respond_problem_ext(req, PROBLEM_INVALID_NAME, "name", d->name, "%s", err);
        return false;
    }
    return true;
}

/* The members that take null ("back to the default") beside their string value. */
struct nullable_members {
    bool profile;      /* "profile": null was given */
    bool renew_before; /* "renew_before": null was given */
};

/*
 * json_check_fields refuses null for a typed member, so a null "profile" or "renew_before" is
 * taken out of BODY (recorded in *NULLS) before the check; the check then sees only what it
 * types. Removing a member never changes which unknown member comes first.
 */
static void take_nulls(json_t *body, struct nullable_members *nulls)
{
    if (json_is_null(json_object_get(body, "profile"))) {
        nulls->profile = true;
        json_object_del(body, "profile");
    }
    if (json_is_null(json_object_get(body, "renew_before"))) {
        nulls->renew_before = true;
        json_object_del(body, "renew_before");
    }
}

static bool profile_ok(const char *s)
{
    size_t len = strnlen(s, PROFILE_MAX + 1);
    if (len == 0 || len > PROFILE_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

/* Replaces *FIELD with a copy of VALUE; false on allocation failure (*FIELD then kept). */
static bool replace_string(char **field, const char *value)
{
    char *copy = strdup(value);
    if (!copy)
        return false;
    free(*field);
    *field = copy;
    return true;
}

/*
 * Applies reuse_key, profile and renew_before from BODY (and the nulls taken out of it) to D.
 * Whether the CA offers the profile is not checked here: a CA's directory can change, and an
 * order names the problem if it does not. Answers the problem and returns false on a bad value.
 */
static bool apply_renewal_settings(struct api_request *req, const json_t *body,
                                   const struct nullable_members *nulls, struct store_domain *d,
                                   enum MHD_Result *rc)
{
    const json_t *v;
    if ((v = json_object_get(body, "reuse_key")))
        d->reuse_key = json_is_true(v);
    if ((v = json_object_get(body, "profile"))) {
        const char *p = json_string_value(v);
        if (!profile_ok(p)) {
            *rc = api_respond_problem_ext(req, PROBLEM_INVALID_FIELD, "field", "profile",
                                          "profile must be 1 to %d characters of A-Z, a-z, 0-9, "
                                          "'.', '_' and '-' (or null for the CA's default)",
                                          PROFILE_MAX);
            return false;
        }
        if (!replace_string(&d->profile, p)) {
            *rc = MHD_NO;
            return false;
        }
    } else if (nulls->profile) {
        free(d->profile);
        d->profile = NULL;
    }
    if ((v = json_object_get(body, "renew_before"))) {
        const char *r = json_string_value(v);
        struct renewal_policy policy;
        /* The planner reads "" as "the default": here null says that, so "" is refused. */
        if (!*r || strnlen(r, RENEW_BEFORE_MAX + 1) > RENEW_BEFORE_MAX ||
            planner_parse_renew_before(r, &policy) < 0) {
            *rc = api_respond_problem_ext(
                req, PROBLEM_INVALID_FIELD, "field", "renew_before",
                "renew_before must be a duration such as \"30d\" or \"12h\", or a fraction of "
                "the lifetime between 0 and 1 such as \"0.33\" or \"33%%\" (or null for the "
                "global policy)");
            return false;
        }
        if (!replace_string(&d->renew_before, r)) {
            *rc = MHD_NO;
            return false;
        }
    } else if (nulls->renew_before) {
        free(d->renew_before);
        d->renew_before = NULL;
    }
    return true;
}

/* The settings a certificate is ordered with, as JSON text (caller frees): compared before and
 * after a PATCH to tell whether it needs a new order now. */
static char *settings_detail(const struct store_domain *d)
{
    json_t *o = json_pack("{s:o, s:s, s:s, s:s}", "alt_names",
                          string_array(d->alt_names, d->alt_count), "challenge", d->challenge,
                          "key_type", d->key_type, "ca", d->ca);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

/* settings_detail plus the renewal settings: what domain.added and domain.updated record. The
 * renewal settings are left out of settings_detail, which decides whether a change needs a new
 * order now: they take effect at the next renewal. */
static char *event_detail(const struct store_domain *d, const char *key_sha256)
{
    json_t *o = json_pack("{s:o, s:s, s:s, s:s, s:b, s:s?, s:s?}", "alt_names",
                          string_array(d->alt_names, d->alt_count), "challenge", d->challenge,
                          "key_type", d->key_type, "ca", d->ca, "reuse_key", d->reuse_key,
                          "profile", d->profile, "renew_before", d->renew_before);
    if (o && !d->profile)
        json_object_set_new(o, "profile", json_null());
    if (o && !d->renew_before)
        json_object_set_new(o, "renew_before", json_null());
    if (o && key_sha256)
        json_object_set_new(o, "key_sha256", json_string(key_sha256));
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

/* ---- handlers ---- */

static const struct json_field create_fields[] = {
    {"name", JSON_FIELD_STRING, true},
    {"alt_names", JSON_FIELD_STRING_ARRAY, false},
    {"challenge", JSON_FIELD_STRING, false},
    {"key_type", JSON_FIELD_STRING, false},
    {"ca", JSON_FIELD_STRING, false},
    {"reuse_key", JSON_FIELD_BOOLEAN, false},
    {"profile", JSON_FIELD_STRING, false},      /* or null: see take_nulls */
    {"renew_before", JSON_FIELD_STRING, false}, /* or null */
};

enum MHD_Result h_domains_create(struct api_request *req, const char *param)
{
    enum MHD_Result rc = MHD_NO;
    char err[NAME_ERR_SIZE], name[NAME_BUF_SIZE], location[NAME_BUF_SIZE + 16];
    char key_sha[KEY_FINGERPRINT_SIZE];
    const char *bad;
    bool unknown;
    char *pem = NULL, *detail = NULL;
    struct store_domain d = {0}, *existing = NULL, *stored = NULL;
    struct nullable_members nulls = {0};

    if (!api_query_check(req, NULL, &rc))
        return rc;
    /* Adding is for admins, whom nothing scopes; should a scoped role ever get here, it may
     * not create names outside what it can see. */
    if (req->caller.scope_count)
        return api_respond_problem(req, PROBLEM_FORBIDDEN, "%s may not add domains",
                                   req->caller.actor);
    json_t *body = api_body_object(req, &rc);
    if (!body)
        return rc;
    take_nulls(body, &nulls);
    if (json_check_fields(body, create_fields, sizeof(create_fields) / sizeof(create_fields[0]),
                          err, sizeof(err), &bad, &unknown) < 0) {
        rc = field_problem(req, err, bad, unknown);
        goto out;
    }
    const char *raw = json_string_value(json_object_get(body, "name"));
    if (name_normalize(raw, true, name, err) < 0) {
        rc = api_respond_problem_ext(req, PROBLEM_INVALID_NAME, "name", raw, "name '%s': %s", raw,
                                     err);
        goto out;
    }

    d.name = name;
    d.challenge = strdup(challenge_type_name(CHALLENGE_HTTP_01));
    d.key_type = strdup(key_type_name(KEY_EC_P256));
    d.ca = strdup(req->config->acme.default_ca);
    if (!apply_settings(req, body, &d, &rc) || !apply_renewal_settings(req, body, &nulls, &d, &rc))
        goto out;

    /* Answer a duplicate before spending time on a key (RSA-4096 takes seconds); the store
     * still decides under its lock. */
    if (store_domain_get(req->ctx->store, name, &existing) == 0 &&
        strcmp(existing->status, DOMAIN_STATUS_REMOVED) != 0) {
        rc = api_respond_problem_ext(req, PROBLEM_CONFLICT, "name", name,
                                     "domain %s is already managed", name);
        goto out;
    }

    enum key_type kt;
    key_type_parse(d.key_type, &kt);
    if (keys_generate(kt, &pem, key_sha) < 0) {
        rc = api_respond_problem(req, PROBLEM_INTERNAL, "cannot generate a %s key", d.key_type);
        goto out;
    }
    struct store_key key = {.key_type = d.key_type, .pem = pem, .public_key_sha256 = key_sha};
    detail = event_detail(&d, key_sha);
    struct store_event_in ev = {.type = "domain.added", .domain = name,
                                .actor = req->caller.actor, .detail_json = detail};
    int err_add = store_domain_add(req->ctx->store, &d, &key, &ev, &stored);
    if (err_add == -EEXIST) {
        rc = api_respond_problem_ext(req, PROBLEM_CONFLICT, "name", name,
                                     "domain %s is already managed", name);
        goto out;
    }
    if (err_add < 0) {
        rc = api_respond_problem(req, PROBLEM_INTERNAL, "cannot store domain %s", name);
        goto out;
    }
    log_info("domain %s added by %s (%s, %s, ca %s)", name, req->caller.actor, d.challenge,
             d.key_type, d.ca);
    scheduler_poke(req->ctx->scheduler); /* its first order is due now */
    snprintf(location, sizeof(location), "/v1/domains/%s", name);
    rc = api_respond_json_steal(req, MHD_HTTP_CREATED, domain_json(req->ctx->store, stored),
                                location);
out:
    keys_pem_free(pem);
    free(detail);
    d.name = NULL; /* points at the stack buffer */
    free(d.challenge);
    free(d.key_type);
    free(d.ca);
    free(d.profile);
    free(d.renew_before);
    for (size_t i = 0; i < d.alt_count; i++)
        free(d.alt_names[i]);
    free(d.alt_names);
    store_domain_free(existing);
    store_domain_free(stored);
    json_decref(body);
    return rc;
}

/* Cursors are base64url of the last name of the previous page: opaque to clients, and a name
 * can never need escaping in a query string. */
static char *cursor_encode(const char *name)
{
    size_t len = strlen(name);
    char *out = malloc(BASE64_ENCODE_LENGTH(len) + BASE64_ENCODE_FINAL_LENGTH + 1);
    if (!out)
        return NULL;
    struct base64_encode_ctx ctx;
    base64url_encode_init(&ctx);
    size_t n = base64_encode_update(&ctx, out, len, (const uint8_t *)name);
    n += base64_encode_final(&ctx, out + n);
    out[n] = '\0';
    return out;
}

static bool cursor_decode(const char *cursor, char out[NAME_BUF_SIZE])
{
    size_t len = strlen(cursor);
    if (len == 0 || BASE64_DECODE_LENGTH(len) >= NAME_BUF_SIZE)
        return false;
    struct base64_decode_ctx ctx;
    size_t n = NAME_BUF_SIZE - 1;
    base64url_decode_init(&ctx);
    if (!base64_decode_update(&ctx, &n, (uint8_t *)out, len, cursor) ||
        !base64_decode_final(&ctx))
        return false;
    out[n] = '\0';
    return strlen(out) == n; /* no embedded NUL */
}

/*
 * Up to WANT domains after AFTER (NULL: from the start) that the caller may see, in name order,
 * like store_domain_list. A scoped caller's page is filled from as many store pages as it takes,
 * so a page is short only at the end and the cursor stays the last name shown.
 */
static int visible_domains(struct api_request *req, const char *after, size_t want,
                           bool include_removed, struct store_domain ***out, size_t *count)
{
    if (!req->caller.scope_count)
        return store_domain_list(req->ctx->store, after, want, include_removed, out, count);
    struct store_domain **keep = calloc(want, sizeof(*keep));
    size_t kept = 0;
    char from[NAME_BUF_SIZE];
    int ret = keep ? 0 : -ENOMEM;
    bool more = true, started = after != NULL;
    if (after)
        snprintf(from, sizeof(from), "%s", after);
    while (ret == 0 && more && kept < want) {
        struct store_domain **page = NULL;
        size_t n = 0;
        if ((ret = store_domain_list(req->ctx->store, started ? from : NULL, want,
                                     include_removed, &page, &n)) < 0)
            break;
        more = n == want;
        if (n) {
            snprintf(from, sizeof(from), "%s", page[n - 1]->name); /* the next page's start */
            started = true;
        }
        for (size_t i = 0; i < n && kept < want; i++) {
            if (api_caller_sees_domain(&req->caller, page[i])) {
                keep[kept++] = page[i];
                page[i] = NULL;
            }
        }
        store_domain_list_free(page, n);
    }
    if (ret < 0) {
        store_domain_list_free(keep, kept);
        return ret;
    }
    *out = keep;
    *count = kept;
    return 0;
}

enum MHD_Result h_domains_list(struct api_request *req, const char *param)
{
    static const char *const allowed[] = {"limit", "cursor", "include_removed", NULL};
    enum MHD_Result rc = MHD_NO;
    long long limit;
    bool include_removed;
    char after[NAME_BUF_SIZE];
    const char *cursor;

    if (!api_query_check(req, allowed, &rc) ||
        !api_query_int(req, "limit", 1, LIST_MAX_LIMIT, LIST_DEFAULT_LIMIT, &limit, &rc) ||
        !api_query_bool(req, "include_removed", &include_removed, &rc))
        return rc;
    if ((cursor = api_query(req, "cursor")) && !cursor_decode(cursor, after))
        return api_respond_problem_ext(req, PROBLEM_MALFORMED, "parameter", "cursor",
                                       "cursor is not one this API handed out");

    struct store_domain **list = NULL;
    size_t count = 0;
    if (visible_domains(req, cursor ? after : NULL, (size_t)limit + 1, include_removed, &list,
                        &count) < 0)
        return api_respond_problem(req, PROBLEM_INTERNAL, "cannot list domains");

    json_t *arr = json_array();
    size_t shown = count > (size_t)limit ? (size_t)limit : count;
    for (size_t i = 0; arr && i < shown; i++)
        json_array_append_new(arr, domain_json(req->ctx->store, list[i]));
    char *next = count > shown ? cursor_encode(list[shown - 1]->name) : NULL;
    json_t *o = json_pack("{s:o, s:o}", "domains", arr ? arr : json_array(), "next_cursor",
                          next ? json_string(next) : json_null());
    free(next);
    store_domain_list_free(list, count);
    return api_respond_json(req, MHD_HTTP_OK, o);
}

enum MHD_Result h_domain_get(struct api_request *req, const char *param)
{
    enum MHD_Result rc = MHD_NO;
    if (!api_query_check(req, NULL, &rc))
        return rc;
    struct store_domain *d = path_domain(req, param, true, &rc);
    if (!d)
        return rc;
    rc = api_respond_json(req, MHD_HTTP_OK, domain_json(req->ctx->store, d));
    store_domain_free(d);
    return rc;
}

/* Whether two renew_before settings (NULL: the global policy) differ. */
static bool renew_before_changed(const char *before, const char *after)
{
    if (!before || !after)
        return before != after;
    return strcmp(before, after) != 0;
}

/*
 * A new renew_before applies to the current certificate at once, not from the next one: its
 * renewal time is computed again by the rule an issuance applies (sched/planner.h, the domain's
 * setting else [renewal] renew_before) and the scheduler looks again. A domain without a
 * certificate has nothing to move: its issuance plans with the new setting. Best effort: the
 * setting itself is stored already, and a failure here is logged, not answered. True when
 * the plan moved.
 */
static bool replan_renewal(struct api_request *req, const struct store_domain *d)
{
    struct store_cert *c = NULL;
    char *detail = NULL;
    int err = -ENOENT;
    if (store_cert_current(req->ctx->store, d->id, &c) < 0)
        goto out;
    int64_t at = renewal_plan((void *)req->config, d, c);
    char when[JSON_TIME_SIZE];
    json_time_format(at, when);
    json_t *o = json_pack("{s:s, s:s}", "renew_at", when, "source", "renew_before");
    detail = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    struct store_event_in ev = {.type = "renewal.rescheduled", .domain = d->name,
                                .actor = req->caller.actor, .detail_json = detail};
    err = store_domain_replan_renewal(req->ctx->store, d->id, c->id, at, &ev);
    if (err == 0) {
        log_info("%s: renew_before changed; renewing at %s", d->name, when);
        scheduler_poke(req->ctx->scheduler);
    } else if (err != -ENOENT) {
        log_warning("%s: cannot move the renewal after a renew_before change", d->name);
    }
out:
    free(detail);
    store_cert_free(c);
    return err == 0;
}

static const struct json_field patch_fields[] = {
    {"alt_names", JSON_FIELD_STRING_ARRAY, false},
    {"challenge", JSON_FIELD_STRING, false},
    {"key_type", JSON_FIELD_STRING, false},
    {"ca", JSON_FIELD_STRING, false},
    {"reuse_key", JSON_FIELD_BOOLEAN, false},
    {"profile", JSON_FIELD_STRING, false},      /* or null: see take_nulls */
    {"renew_before", JSON_FIELD_STRING, false}, /* or null */
};

enum MHD_Result h_domain_patch(struct api_request *req, const char *param)
{
    enum MHD_Result rc = MHD_NO;
    char err[NAME_ERR_SIZE];
    const char *bad;
    bool unknown;
    char *detail = NULL, *before = NULL, *old_renew_before = NULL;
    struct store_domain *d = NULL, *stored = NULL;
    struct nullable_members nulls = {0};
    json_t *body = NULL;

    if (!api_query_check(req, NULL, &rc))
        return rc;
    if (!(body = api_body_object(req, &rc)))
        return rc;
    take_nulls(body, &nulls);
    if (json_check_fields(body, patch_fields, sizeof(patch_fields) / sizeof(patch_fields[0]), err,
                          sizeof(err), &bad, &unknown) < 0) {
        rc = field_problem(req, err, bad, unknown);
        goto out;
    }
    if (!(d = path_domain(req, param, false, &rc)))
        goto out;
    /* What the certificate depends on, to tell whether the change needs a new order. */
    before = settings_detail(d);
    char *old_key_type = strdup(d->key_type);
    if (d->renew_before && !(old_renew_before = strdup(d->renew_before))) {
        free(old_key_type);
        rc = api_respond_problem(req, PROBLEM_INTERNAL, "out of memory");
        goto out;
    }
    if (!apply_settings(req, body, d, &rc) || !apply_renewal_settings(req, body, &nulls, d, &rc)) {
        free(old_key_type);
        goto out;
    }
    detail = event_detail(d, NULL);
    struct store_event_in ev = {.type = "domain.updated", .domain = d->name,
                                .actor = req->caller.actor, .detail_json = detail};
    int err_upd = store_domain_update(req->ctx->store, d, &ev, &stored);
    if (err_upd == -ENOENT) {
        rc = api_respond_problem_ext(req, PROBLEM_NOT_FOUND, "name", d->name,
                                     "no managed domain %s", d->name);
        goto out;
    }
    if (err_upd < 0) {
        rc = api_respond_problem(req, PROBLEM_INTERNAL, "cannot update domain %s", d->name);
        goto out;
    }
    log_info("domain %s updated by %s", d->name, req->caller.actor);
    /* New names, CA or challenge: order now rather than at the next renewal (a failing domain
     * gets its retry with the fixed settings at once). A new key type waits for the renewal. */
    char *after = settings_detail(d);
    bool replan = before && after && strcmp(before, after) != 0;
    if (replan && old_key_type && strcmp(old_key_type, d->key_type) != 0) {
        struct store_domain probe = *d;
        probe.key_type = old_key_type;
        char *without_kt = settings_detail(&probe);
        replan = without_kt && strcmp(before, without_kt) != 0;
        free(without_kt);
    }
    free(after);
    free(old_key_type);
    /* First, so that a new order planned below for other settings wins over the new time. */
    bool moved =
        renew_before_changed(old_renew_before, stored->renew_before) && replan_renewal(req, stored);
    if (replan) {
        struct store_event_in sev = {.type = "renewal.requested", .domain = d->name,
                                     .actor = req->caller.actor,
                                     .detail_json = "{\"why\":\"settings changed\"}"};
        if (store_domain_schedule(req->ctx->store, stored->id, clock_now(), 0, &sev) == 0) {
            scheduler_poke(req->ctx->scheduler);
            moved = true;
        }
    }
    /* The answer shows the plan as it now is. */
    struct store_domain *fresh = NULL;
    if (moved && store_domain_get(req->ctx->store, stored->name, &fresh) == 0) {
        store_domain_free(stored);
        stored = fresh;
    }
    rc = api_respond_json(req, MHD_HTTP_OK, domain_json(req->ctx->store, stored));
out:
    free(before);
    free(detail);
    free(old_renew_before);
    store_domain_free(d);
    store_domain_free(stored);
    json_decref(body);
    return rc;
}

enum MHD_Result h_domain_delete(struct api_request *req, const char *param)
{
    static const char *const allowed[] = {"purge", NULL};
    enum MHD_Result rc = MHD_NO;
    bool purge;
    if (!api_query_check(req, allowed, &rc) || !api_query_bool(req, "purge", &purge, &rc))
        return rc;
    /* Purging a domain that was already removed is allowed: that is how history is dropped. */
    struct store_domain *d = path_domain(req, param, purge, &rc);
    if (!d)
        return rc;
    struct store_event_in ev = {.type = purge ? "domain.purged" : "domain.removed",
                                .domain = d->name, .actor = req->caller.actor};
    int err = store_domain_remove(req->ctx->store, d->name, purge, &ev);
    if (err == -ENOENT)
        rc = api_respond_problem_ext(req, PROBLEM_NOT_FOUND, "name", d->name,
                                     "no managed domain %s", d->name);
    else if (err < 0)
        rc = api_respond_problem(req, PROBLEM_INTERNAL, "cannot remove domain %s", d->name);
    else {
        log_info("domain %s %s by %s", d->name, purge ? "purged" : "removed", req->caller.actor);
        rc = api_respond_empty(req, MHD_HTTP_NO_CONTENT);
    }
    store_domain_free(d);
    return rc;
}

enum MHD_Result h_domain_history(struct api_request *req, const char *param)
{
    enum MHD_Result rc = MHD_NO;
    if (!api_query_check(req, NULL, &rc))
        return rc;
    struct store_domain *d = path_domain(req, param, true, &rc);
    if (!d)
        return rc;

    struct store_key **keys = NULL;
    struct store_cert **certs = NULL;
    size_t nkeys = 0, ncerts = 0;
    if (store_key_list(req->ctx->store, d->id, &keys, &nkeys) < 0 ||
        store_cert_list(req->ctx->store, d->id, &certs, &ncerts) < 0) {
        rc = api_respond_problem(req, PROBLEM_INTERNAL, "cannot read the history of %s", d->name);
        goto out;
    }
    json_t *jkeys = json_array(), *jcerts = json_array();
    for (size_t i = 0; jkeys && i < nkeys; i++)
        json_array_append_new(jkeys, key_json(keys[i], true));
    for (size_t i = 0; jcerts && i < ncerts; i++)
        json_array_append_new(jcerts, cert_json(certs[i]));
    rc = api_respond_json(req, MHD_HTTP_OK,
                          json_pack("{s:s, s:s, s:o, s:o}", "name", d->name, "status", d->status,
                                    "keys", jkeys, "certificates", jcerts));
out:
    store_key_list_free(keys, nkeys);
    store_cert_list_free(certs, ncerts);
    store_domain_free(d);
    return rc;
}
