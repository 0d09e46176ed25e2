/* Issuance-related endpoints: forcing an order, reading the certificate, its key and the latest
 * order, and http-01 tokens for fleet proxies that answer challenges in certd's place. */
#include "core/clock.h"
#include "api/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "acme/responders.h"
#include "api/index.h"
#include "common/jsonutil.h"
#include "common/names.h"
#include "crypto/certinfo.h"
#include "sched/scheduler.h"
#include "store/store.h"

/* Looks up the managed domain named by the path; answers 400/404 itself. */
static struct store_domain *domain_from_path(struct api_request *req, const char *param,
                                             bool allow_removed, enum MHD_Result *rc)
{
    char name[NAME_BUF_SIZE], err[NAME_ERR_SIZE];
    if (name_normalize(param, true, name, err) < 0) {
        *rc = api_respond_problem_ext(req, PROBLEM_INVALID_NAME, "name", param, "name '%s': %s",
                                      param, err);
        return NULL;
    }
    struct store_domain *d = NULL;
    int e = store_domain_get(req->ctx->store, name, &d);
    /* Outside the caller's scope a domain does not exist: 404, never 403, so names do not leak. */
    if (e == 0 && ((!allow_removed && strcmp(d->status, DOMAIN_STATUS_REMOVED) == 0) ||
                   !api_caller_sees_domain(&req->caller, d))) {
        store_domain_free(d);
        d = NULL;
        e = -ENOENT;
    }
    if (e == -ENOENT)
        *rc = api_respond_problem_ext(req, PROBLEM_NOT_FOUND, "name", name,
                                      "no managed domain %s", name);
    else if (e < 0)
        *rc = api_respond_problem(req, PROBLEM_INTERNAL, "cannot read domain %s", name);
    return d;
}

static enum MHD_Result respond_text(struct api_request *req, unsigned status, const char *text,
                                    const char *ctype)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), (void *)text,
                                                                MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result rc = MHD_queue_response(req->conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* True when the client asked for JSON rather than PEM. */
static bool wants_json(struct api_request *req)
{
    const char *accept = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_ACCEPT);
    return accept && strcasestr(accept, "application/json") != NULL;
}

enum MHD_Result h_domain_renew(struct api_request *req, const char *param)
{
    enum MHD_Result rc = MHD_NO;
    if (!api_query_check(req, NULL, &rc))
        return rc;
    if (req->body_len) {
        json_t *body = api_body_object(req, &rc);
        if (!body)
            return rc;
        size_t n = json_object_size(body);
        json_decref(body);
        if (n)
            return api_respond_problem(req, PROBLEM_UNKNOWN_FIELD, "renew takes no parameters");
    }
    struct store_domain *d = domain_from_path(req, param, false, &rc);
    if (!d)
        return rc;
    struct store_event_in ev = {.type = "renewal.requested", .domain = d->name,
                                .actor = req->caller.actor};
    if (store_domain_schedule(req->ctx->store, d->id, clock_now(), 0, &ev) < 0) {
        rc = api_respond_problem(req, PROBLEM_INTERNAL, "cannot schedule %s", d->name);
    } else {
        scheduler_poke(req->ctx->scheduler);
        json_t *o = json_pack("{s:s, s:s}", "name", d->name, "status", "scheduled");
        rc = api_respond_json(req, MHD_HTTP_ACCEPTED, o);
    }
    store_domain_free(d);
    return rc;
}

enum MHD_Result h_domain_certificate(struct api_request *req, const char *param)
{
    enum MHD_Result rc = MHD_NO;
    if (!api_query_check(req, NULL, &rc))
        return rc;
    struct store_domain *d = domain_from_path(req, param, true, &rc);
    if (!d)
        return rc;
    struct store_cert *c = NULL;
    char *leaf = NULL, *rest = NULL;
    if (store_cert_current(req->ctx->store, d->id, &c) < 0) {
        rc = api_respond_problem_ext(req, PROBLEM_NOT_FOUND, "name", d->name,
                                     "%s has no certificate yet", d->name);
        goto out;
    }
    if (!wants_json(req)) {
        /* The same tag as the delivery index gives this certificate (api/index.h). */
        char etag[INDEX_ETAG_SIZE];
        index_etag_format(etag, c->fingerprint_sha256, c->key_id);
        rc = api_respond_tagged(req, c->chain_pem, "application/pem-certificate-chain", etag);
        goto out;
    }
    if (cert_chain_split(c->chain_pem, &leaf, &rest) < 0) {
        rc = api_respond_problem(req, PROBLEM_INTERNAL, "the stored chain of %s is unreadable",
                                 d->name);
        goto out;
    }
    rc = api_respond_json(
        req, MHD_HTTP_OK,
        json_pack("{s:s, s:I, s:s, s:o, s:o, s:s, s:s, s:I, s:s, s:s, s:s}", "name", d->name, "id",
                  (json_int_t)c->id, "serial", c->serial, "not_before",
                  json_time_or_null(c->not_before), "not_after", json_time_or_null(c->not_after),
                  "issuer", c->issuer, "fingerprint_sha256", c->fingerprint_sha256, "key_id",
                  (json_int_t)c->key_id, "certificate", leaf, "chain", rest, "fullchain",
                  c->chain_pem));
out:
    free(leaf);
    free(rest);
    store_cert_free(c);
    store_domain_free(d);
    return rc;
}

/* Private keys leave the daemon here (and through the delivery endpoints): only for callers the
 * router let through as deployer or admin, and only within a scoped deployer's domains
 * (domain_from_path answers 404 outside them). */
enum MHD_Result h_domain_key(struct api_request *req, const char *param)
{
    enum MHD_Result rc = MHD_NO;
    if (!api_query_check(req, NULL, &rc))
        return rc;
    struct store_domain *d = domain_from_path(req, param, true, &rc);
    if (!d)
        return rc;
    struct store_cert *c = NULL;
    struct store_key *k = NULL;
    int64_t key_id = 0;
    if (store_cert_current(req->ctx->store, d->id, &c) == 0) {
        key_id = c->key_id;
    } else if (store_key_current(req->ctx->store, d->id, &k) == 0) {
        key_id = k->id;
        store_key_free(k);
        k = NULL;
    }
    if (!key_id || store_key_get_pem(req->ctx->store, key_id, &k) < 0) {
        rc = api_respond_problem_ext(req, PROBLEM_NOT_FOUND, "name", d->name,
                                     "%s has no private key", d->name);
        goto out;
    }
    char etag[INDEX_ETAG_SIZE];
    index_etag_format(etag, k->public_key_sha256, k->id);
    rc = api_respond_tagged(req, k->pem, "application/x-pem-file", etag);
out:
    store_key_free(k);
    store_cert_free(c);
    store_domain_free(d);
    return rc;
}

enum MHD_Result h_domain_order(struct api_request *req, const char *param)
{
    enum MHD_Result rc = MHD_NO;
    if (!api_query_check(req, NULL, &rc))
        return rc;
    struct store_domain *d = domain_from_path(req, param, true, &rc);
    if (!d)
        return rc;
    struct store_order *o = NULL;
    if (store_order_latest(req->ctx->store, d->id, &o) < 0) {
        rc = api_respond_problem_ext(req, PROBLEM_NOT_FOUND, "name", d->name,
                                     "%s has no order yet", d->name);
        goto out;
    }
    json_t *names = json_loads(o->names_json, 0, NULL);
    json_t *error = o->error_json ? json_loads(o->error_json, 0, NULL) : NULL;
    rc = api_respond_json(
        req, MHD_HTTP_OK,
        json_pack("{s:I, s:s, s:s, s:s?, s:s, s:s?, s:b, s:o, s:o, s:o, s:o, s:o, s:I}", "id",
                  (json_int_t)o->id, "domain", d->name, "ca", o->ca, "url", o->url, "status",
                  o->status, "step", o->step, "finished", o->finished, "names",
                  names ? names : json_array(), "error", error ? error : json_null(),
                  "created_at", json_time_or_null(o->created_at), "updated_at",
                  json_time_or_null(o->updated_at), "expires_at",
                  json_time_or_null(o->expires_at), "key_id", (json_int_t)o->key_id));
out:
    store_order_free(o);
    store_domain_free(d);
    return rc;
}

/* GET /v1/challenges/http-01/{token}: what a fleet proxy answers for
 * /.well-known/acme-challenge/{token} when it forwards nothing to certd's own responder. */
enum MHD_Result h_challenge_http01(struct api_request *req, const char *param)
{
    enum MHD_Result rc = MHD_NO;
    if (!api_query_check(req, NULL, &rc))
        return rc;
    char *ka = NULL;
    if (responders_http01_lookup(req->ctx->responders, param, &ka) < 0 || !ka)
        return api_respond_problem(req, PROBLEM_NOT_FOUND, "no pending http-01 token %s", param);
    rc = respond_text(req, MHD_HTTP_OK, ka, "application/octet-stream");
    free(ka);
    return rc;
}
