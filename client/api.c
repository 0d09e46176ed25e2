#include "api.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/names.h"
#include "common/problem.h"
#include "http.h"
#include "output.h"

/* Says why an HTTP error answer failed: the problem document when there is one (RFC 9457), else
 * the status and the first line of whatever body came with it. A ca-error problem carries the
 * CA's own problem document in "ca_problem": its description is added unless the daemon's detail
 * already says it. */
static void report_http_error(const struct http_response *r)
{
    char desc[1024], ca[1024];

    if (r->json && json_is_object(r->json)) {
        problem_describe(r->json, desc, sizeof(desc));
        const json_t *cap = json_object_get(r->json, "ca_problem");
        if (json_is_object(cap)) {
            problem_describe(cap, ca, sizeof(ca));
            if (ca[0] && !strstr(desc, ca)) {
                size_t len = strlen(desc);
                snprintf(desc + len, sizeof(desc) - len, " (CA: %s)", ca);
            }
        }
        output_sanitize(desc);
        errmsg("%s", desc);
        return;
    }
    if (r->body && r->body_len > 0) {
        size_t line = strcspn(r->body, "\r\n");
        if (line > 200)
            line = 200;
        snprintf(desc, sizeof(desc), "%.*s", (int)line, r->body);
        output_sanitize(desc);
        errmsg("certd answered HTTP %ld: %s", r->status, desc);
        return;
    }
    errmsg("certd answered HTTP %ld", r->status);
}

enum call_flags {
    CALL_QUIET_TIMEOUT = 1, /* a request out of time is CERTCTL_EXIT_TIMEOUT, unreported */
    CALL_QUIET = 2,         /* report nothing at all */
};

/*
 * The one place requests are sent. On a 2xx answer returns CERTCTL_EXIT_OK with *R filled;
 * otherwise reports why (see FLAGS), clears *R and returns the exit code.
 */
static int call(struct certctl *ctx, const char *method, const char *path, const json_t *body,
                struct http_response *r, unsigned flags)
{
    char err[1024];
    int ret;

    int rc = http_request(ctx->http, method, path, body, r, err, sizeof(err));
    if (rc < 0) {
        if (rc == -ETIMEDOUT && (flags & CALL_QUIET_TIMEOUT)) {
            ret = CERTCTL_EXIT_TIMEOUT;
            goto fail;
        }
        if (!(flags & CALL_QUIET))
            errmsg("%s", err);
        ret = rc == -ECONNREFUSED ? CERTCTL_EXIT_UNREACHABLE : CERTCTL_EXIT_FAILED;
        goto fail;
    }
    if (r->status < 200 || r->status > 299) {
        if (!(flags & CALL_QUIET))
            report_http_error(r);
        ret = CERTCTL_EXIT_FAILED;
        goto fail;
    }
    return CERTCTL_EXIT_OK;
fail:
    http_response_clear(r);
    return ret;
}

int api_call(struct certctl *ctx, const char *method, const char *path, const json_t *body,
             json_t **out)
{
    struct http_response r = {0};

    if (out)
        *out = NULL;
    int ret = call(ctx, method, path, body, &r, 0);
    if (ret == CERTCTL_EXIT_OK && out) {
        *out = r.json;
        r.json = NULL;
    }
    http_response_clear(&r);
    return ret;
}

/* Hands DOC (owned) to *OUT when it is a JSON object, else reports and frees it. */
static int want_object(const char *method, const char *path, json_t *doc, json_t **out)
{
    if (!json_is_object(doc)) {
        errmsg("certd sent no JSON object for %s %s", method, path);
        json_decref(doc);
        return CERTCTL_EXIT_FAILED;
    }
    *out = doc;
    return CERTCTL_EXIT_OK;
}

int api_call_object(struct certctl *ctx, const char *method, const char *path, const json_t *body,
                    json_t **out)
{
    json_t *doc = NULL;
    int ret = api_call(ctx, method, path, body, &doc);
    if (ret != CERTCTL_EXIT_OK)
        return ret;
    return want_object(method, path, doc, out);
}

int api_call_raw(struct certctl *ctx, const char *method, const char *path,
                 struct http_response *resp)
{
    int ret = call(ctx, method, path, NULL, resp, 0);
    if (ret == CERTCTL_EXIT_OK && (!resp->body || resp->body_len == 0)) {
        errmsg("certd sent an empty answer to %s %s", method, path);
        http_response_clear(resp);
        ret = CERTCTL_EXIT_FAILED;
    }
    return ret;
}

int api_poll_object(struct certctl *ctx, const char *path, long timeout_ms, json_t **out)
{
    struct http_response r = {0};

    *out = NULL;
    http_client_set_timeout(ctx->http, timeout_ms);
    int ret = call(ctx, "GET", path, NULL, &r, CALL_QUIET_TIMEOUT);
    http_client_set_timeout(ctx->http, 0);
    if (ret == CERTCTL_EXIT_OK) {
        ret = want_object("GET", path, r.json, out);
        r.json = NULL;
    }
    http_response_clear(&r);
    return ret;
}

int api_get_quiet(struct certctl *ctx, const char *path, json_t **out)
{
    struct http_response r = {0};

    *out = NULL;
    int ret = call(ctx, "GET", path, NULL, &r, CALL_QUIET);
    if (ret == CERTCTL_EXIT_OK && json_is_object(r.json)) {
        *out = r.json;
        r.json = NULL;
    } else if (ret == CERTCTL_EXIT_OK) {
        ret = CERTCTL_EXIT_FAILED;
    }
    http_response_clear(&r);
    return ret;
}

char *api_domain_path(struct certctl *ctx, const char *name, const char *suffix)
{
    char norm[NAME_BUF_SIZE];
    char why[NAME_ERR_SIZE];
    const char *use = name;

    if (name_normalize(name, true, norm, why) == 0)
        use = norm;

    char *esc = http_escape(ctx->http, use);
    if (!esc) {
        errmsg("out of memory");
        return NULL;
    }
    size_t len = strlen("/v1/domains/") + strlen(esc) + strlen(suffix) + 1;
    char *path = malloc(len);
    if (path)
        snprintf(path, len, "/v1/domains/%s%s", esc, suffix);
    else
        errmsg("out of memory");
    free(esc);
    return path;
}
