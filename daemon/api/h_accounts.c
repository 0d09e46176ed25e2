/* /v1/accounts and /v1/certificates/{serial}/revoke: actions that talk to the CA from the API
 * thread (they are rare and short; orders run on the scheduler's workers). */
#include "core/clock.h"
#include "api/internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acme/client.h"
#include "acme/revoke.h"
#include "common/jsonutil.h"
#include "common/types.h"
#include "core/config.h"
#include "core/log.h"
#include "crypto/keys.h"
#include "sched/scheduler.h"
#include "store/store.h"

static enum MHD_Result ca_problem(struct api_request *req, const struct acme_error *err)
{
    json_t *p = problem_new(PROBLEM_CA_ERROR, "%s", err->message);
    if (p && err->problem)
        json_object_set(p, "ca_problem", err->problem);
    return api_respond_problem_doc(req, p);
}

static json_t *account_json(const struct store_account *a)
{
    json_t *contact = a->contact_json ? json_loads(a->contact_json, 0, NULL) : NULL;
    return json_pack("{s:s, s:s, s:s?, s:s, s:s, s:o, s:o, s:o}", "ca", a->ca, "directory_url",
                     a->directory_url, "account_url", a->account_url, "status", a->status,
                     "key_type", a->key_type, "contact", contact ? contact : json_array(),
                     "created_at", json_time_or_null(a->created_at), "updated_at",
                     json_time_or_null(a->updated_at));
}

/* The stored account of CA, as JSON, or NULL. */
static json_t *account_lookup(struct api_request *req, const char *ca)
{
    struct store_account **list = NULL;
    size_t n = 0;
    json_t *out = NULL;
    if (store_account_list(req->ctx->store, &list, &n) < 0)
        return NULL;
    for (size_t i = 0; i < n && !out; i++) {
        if (strcmp(list[i]->ca, ca) == 0)
            out = account_json(list[i]);
    }
    store_account_list_free(list, n);
    return out;
}

enum MHD_Result h_accounts_list(struct api_request *req, const char *param)
{
    enum MHD_Result rc = MHD_NO;
    if (!api_query_check(req, NULL, &rc))
        return rc;
    struct store_account **list = NULL;
    size_t n = 0;
    if (store_account_list(req->ctx->store, &list, &n) < 0)
        return api_respond_problem(req, PROBLEM_INTERNAL, "cannot read accounts");
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        json_array_append_new(arr, account_json(list[i]));
    store_account_list_free(list, n);
    return api_respond_json(req, MHD_HTTP_OK, json_pack("{s:o}", "accounts", arr));
}

enum MHD_Result h_account_get(struct api_request *req, const char *param)
{
    enum MHD_Result rc = MHD_NO;
    if (!api_query_check(req, NULL, &rc))
        return rc;
    json_t *a = account_lookup(req, param);
    if (!a)
        return api_respond_problem(req, PROBLEM_NOT_FOUND, "no account with CA %s", param);
    return api_respond_json(req, MHD_HTTP_OK, a);
}

/* The ACME client of a configured CA; answers 404 itself. */
static struct acme_client *client_for(struct api_request *req, const char *ca,
                                      enum MHD_Result *rc)
{
    struct acme_client *c = config_find_ca(req->config, ca)
                                ? scheduler_acme_client(req->ctx->scheduler, ca)
                                : NULL;
    if (!c)
        *rc = api_respond_problem(req, PROBLEM_NOT_FOUND, "no CA named %s in the configuration",
                                  ca);
    return c;
}

/* Shared by register, rollover and deactivate: ACTION runs against the CA, then the account
 * is answered. */
static enum MHD_Result account_action(struct api_request *req, const char *ca,
                                      int (*action)(struct acme_client *, struct acme_error *),
                                      unsigned status, const char *what)
{
    enum MHD_Result rc = MHD_NO;
    if (!api_query_check(req, NULL, &rc))
        return rc;
    struct acme_client *c = client_for(req, ca, &rc);
    if (!c)
        return rc;
    struct acme_error err = {.retry_after = -1};
    if (action(c, &err) < 0) {
        rc = ca_problem(req, &err);
        acme_error_clear(&err);
        return rc;
    }
    log_notice("account with CA %s: %s by %s", ca, what, req->caller.actor);
    json_t *a = account_lookup(req, ca);
    return a ? api_respond_json(req, status, a)
             : api_respond_problem(req, PROBLEM_INTERNAL, "cannot read the account");
}

enum MHD_Result h_account_register(struct api_request *req, const char *param)
{
    return account_action(req, param, acme_client_register_new, MHD_HTTP_CREATED, "registered");
}

enum MHD_Result h_account_rollover(struct api_request *req, const char *param)
{
    return account_action(req, param, acme_client_key_rollover, MHD_HTTP_OK, "key rolled over");
}

enum MHD_Result h_account_deactivate(struct api_request *req, const char *param)
{
    return account_action(req, param, acme_client_deactivate, MHD_HTTP_OK, "deactivated");
}

/* ---- revocation ---- */

static bool serial_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
            return false;
    }
    return true;
}

enum MHD_Result h_certificate_revoke(struct api_request *req, const char *serial)
{
    enum MHD_Result rc = MHD_NO;
    int reason = -1;
    json_t *body = NULL;
    struct store_cert *cert = NULL;
    struct store_domain *d = NULL;
    struct store_key *key = NULL;
    struct store_order *order = NULL;
    struct acme_error err = {.retry_after = -1};
    char detail[256];

    if (!api_query_check(req, NULL, &rc))
        return rc;
    if (req->body_len) {
        if (!(body = api_body_object(req, &rc)))
            return rc;
        const char *key_name;
        json_t *v;
        json_object_foreach(body, key_name, v)
        {
            if (strcmp(key_name, "reason") != 0) {
                rc = api_respond_problem_ext(req, PROBLEM_UNKNOWN_FIELD, "field", key_name,
                                             "unknown field '%s'", key_name);
                goto out;
            }
        }
        v = json_object_get(body, "reason");
        if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= 10 &&
            json_integer_value(v) != 7)
            reason = (int)json_integer_value(v);
        else if (json_is_string(v))
            reason = acme_revocation_reason(json_string_value(v));
        if (v && reason < 0) {
            rc = api_respond_problem_ext(req, PROBLEM_INVALID_FIELD, "field", "reason",
                                         "reason must be an RFC 5280 reason code or name");
            goto out;
        }
    }
    if (!serial_ok(serial)) {
        rc = api_respond_problem(req, PROBLEM_MALFORMED,
                                 "a serial is lower-case hex, as certctl history shows it");
        goto out;
    }
    if (store_cert_get_by_serial(req->ctx->store, serial, &cert) < 0) {
        rc = api_respond_problem(req, PROBLEM_NOT_FOUND, "no certificate with serial %s", serial);
        goto out;
    }
    if (strcmp(cert->status, CERT_STATUS_REVOKED) == 0) {
        rc = api_respond_problem(req, PROBLEM_CONFLICT, "certificate %s is already revoked",
                                 serial);
        goto out;
    }
    if (store_domain_get_by_id(req->ctx->store, cert->domain_id, &d) < 0 ||
        store_key_get_pem(req->ctx->store, cert->key_id, &key) < 0) {
        rc = api_respond_problem(req, PROBLEM_INTERNAL, "cannot read certificate %s", serial);
        goto out;
    }
    /* Revocation is for admins, whom nothing scopes; a scoped caller would see only its own. */
    if (!api_caller_sees_domain(&req->caller, d)) {
        rc = api_respond_problem(req, PROBLEM_NOT_FOUND, "no certificate with serial %s", serial);
        goto out;
    }
    /* The CA that issued it, which the domain may since have left. */
    const char *ca = d->ca;
    if (cert->order_id && store_order_get(req->ctx->store, cert->order_id, &order) == 0)
        ca = order->ca;
    struct acme_client *client = client_for(req, ca, &rc);
    if (!client)
        goto out;
    if (acme_revoke(client, cert->chain_pem, reason, key->pem, &err) < 0) {
        rc = ca_problem(req, &err);
        goto out;
    }
    bool was_active = strcmp(cert->status, CERT_STATUS_ACTIVE) == 0;
    snprintf(detail, sizeof(detail), "{\"serial\":\"%s\",\"reason\":%d}", serial,
             reason < 0 ? 0 : reason);
    struct store_event_in ev = {.type = "certificate.revoked", .domain = d->name,
                                .actor = req->caller.actor, .detail_json = detail};
    if (store_cert_set_revoked(req->ctx->store, cert->id, reason < 0 ? 0 : reason,
                               clock_now(), &ev) < 0) {
        rc = api_respond_problem(req, PROBLEM_INTERNAL,
                                 "the CA revoked %s but recording it failed", serial);
        goto out;
    }
    log_notice("%s: certificate %s revoked by %s (reason %d)", d->name, serial,
               req->caller.actor, reason);

    bool replace = was_active && strcmp(d->status, DOMAIN_STATUS_REMOVED) != 0;
    if (replace && reason == 1) {
        /* keyCompromise: the replacement must not reuse the key. */
        enum key_type kt;
        char *pem = NULL, sha[KEY_FINGERPRINT_SIZE];
        if (!key_type_parse(d->key_type, &kt))
            kt = KEY_EC_P256;
        if (keys_generate(kt, &pem, sha) == 0) {
            struct store_key k = {.key_type = d->key_type, .pem = pem, .public_key_sha256 = sha};
            snprintf(detail, sizeof(detail), "{\"reason\":\"keyCompromise\",\"key_sha256\":\"%s\"}",
                     sha);
            struct store_event_in kev = {.type = "key.generated", .domain = d->name,
                                         .actor = req->caller.actor, .detail_json = detail};
            if (store_key_add(req->ctx->store, d->id, &k, &kev, NULL) < 0)
                replace = false;
            keys_pem_free(pem);
        } else {
            replace = false;
        }
        if (!replace)
            log_error("%s: cannot make a new key after a key compromise; no replacement queued",
                      d->name);
    }
    if (replace) {
        struct store_event_in sev = {.type = "renewal.requested", .domain = d->name,
                                     .actor = req->caller.actor,
                                     .detail_json = "{\"why\":\"revoked\"}"};
        if (store_domain_schedule(req->ctx->store, d->id, clock_now(), 0, &sev) == 0)
            scheduler_poke(req->ctx->scheduler);
        else
            replace = false;
    }
    rc = api_respond_json(req, MHD_HTTP_OK,
                          json_pack("{s:s, s:s, s:s, s:i, s:s?}", "serial", serial, "domain",
                                    d->name, "status", "revoked", "reason",
                                    reason < 0 ? 0 : reason, "replacement",
                                    replace ? "scheduled" : NULL));
out:
    acme_error_clear(&err);
    json_decref(body);
    store_cert_free(cert);
    store_domain_free(d);
    store_key_free(key);
    store_order_free(order);
    return rc;
}
