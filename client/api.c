#include "api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/names.h"
#include "common/problem.h"
#include "http.h"
#include "output.h"

/* Says why an HTTP error answer failed: the problem document when there is one (RFC 9457), else
 * the status and the first line of whatever body came with it. */
static void report_http_error(const struct http_response *r)
{
    char desc[1024];

    if (r->json && json_is_object(r->json)) {
        problem_describe(r->json, desc, sizeof(desc));
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

int api_call(struct certctl *ctx, const char *method, const char *path, const json_t *body,
             json_t **out)
{
    struct http_response r = {0};
    char err[1024];
    int ret;

    if (out)
        *out = NULL;
    int rc = http_request(ctx->http, method, path, body, &r, err, sizeof(err));
    if (rc < 0) {
        errmsg("%s", err);
        ret = rc == -ECONNREFUSED ? CERTCTL_EXIT_UNREACHABLE : CERTCTL_EXIT_FAILED;
        goto out;
    }
    if (r.status < 200 || r.status > 299) {
        report_http_error(&r);
        ret = CERTCTL_EXIT_FAILED;
        goto out;
    }
    if (out) {
        *out = r.json;
        r.json = NULL;
    }
    ret = CERTCTL_EXIT_OK;
out:
    http_response_clear(&r);
    return ret;
}

int api_call_object(struct certctl *ctx, const char *method, const char *path, const json_t *body,
                    json_t **out)
{
    json_t *doc = NULL;
    int ret = api_call(ctx, method, path, body, &doc);
    if (ret != CERTCTL_EXIT_OK)
        return ret;
    if (!json_is_object(doc)) {
        errmsg("certd sent no JSON object for %s %s", method, path);
        json_decref(doc);
        return CERTCTL_EXIT_FAILED;
    }
    *out = doc;
    return CERTCTL_EXIT_OK;
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
