#include "api/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonutil.h"
#include "core/log.h"

/* Adds the headers every answer carries and queues RESP (which this function releases). */
static enum MHD_Result queue_response(struct api_request *req, unsigned status,
                                      struct MHD_Response *resp, const char *content_type,
                                      const char *location)
{
    if (content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (location)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, location);
    /* State changes under the caller's feet; nothing here may be cached by a proxy. */
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result rc = MHD_queue_response(req->conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result queue(struct api_request *req, unsigned status, char *text,
                             const char *content_type, const char *location)
{
    size_t len = text ? strlen(text) : 0;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, text ? text : (char *)"",
                                        text ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    return queue_response(req, status, resp, content_type, location);
}

/* A body copy that is wiped when libmicrohttpd lets go of it. */
struct wiped_body {
    size_t len;
    char data[];
};

static void wiped_body_free(void *cls)
{
    struct wiped_body *b = cls;
    explicit_bzero(b->data, b->len);
    free(b);
}

struct MHD_Response *api_response_wiped(const char *data, size_t len)
{
    struct wiped_body *b = malloc(sizeof(*b) + len);
    if (!b)
        return NULL;
    b->len = len;
    memcpy(b->data, data, len);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer_with_free_callback_cls(len, b->data, wiped_body_free, b);
    if (!resp)
        wiped_body_free(b);
    return resp;
}

enum MHD_Result api_respond_json_secret(struct api_request *req, unsigned status, json_t *body,
                                        const char *secret_member, const char *location)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    /* jansson's own copy of the secret, then the text it was dumped into. */
    json_t *secret = body ? json_object_get(body, secret_member) : NULL;
    if (json_is_string(secret))
        explicit_bzero((char *)json_string_value(secret), json_string_length(secret));
    json_decref(body);
    if (!text)
        return MHD_NO;
    struct MHD_Response *resp = api_response_wiped(text, strlen(text));
    explicit_bzero(text, strlen(text));
    free(text);
    if (!resp)
        return MHD_NO;
    return queue_response(req, status, resp, "application/json", location);
}

enum MHD_Result api_respond_json_steal(struct api_request *req, unsigned status, json_t *body,
                                       const char *location)
{
    if (!body)
        return queue(req, status, NULL, NULL, location);
    char *text = json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII);
    const char *ctype = "application/json";
    if (json_is_object(body) && json_object_get(body, "type") && json_object_get(body, "status") &&
        status >= 400)
        ctype = "application/problem+json";
    json_decref(body);
    if (!text)
        return MHD_NO;
    /* A trailing newline keeps curl output readable in a terminal. */
    size_t len = strlen(text);
    char *nl = realloc(text, len + 2);
    if (nl) {
        text = nl;
        text[len] = '\n';
        text[len + 1] = '\0';
    }
    return queue(req, status, text, ctype, location);
}

enum MHD_Result api_respond_json(struct api_request *req, unsigned status, json_t *body)
{
    return api_respond_json_steal(req, status, body, NULL);
}

enum MHD_Result api_respond_empty(struct api_request *req, unsigned status)
{
    return queue(req, status, NULL, NULL, NULL);
}

enum MHD_Result api_respond_problem_doc(struct api_request *req, json_t *problem)
{
    if (!problem)
        return MHD_NO;
    json_int_t status = json_integer_value(json_object_get(problem, "status"));
    if (status >= 500)
        log_warning("%s %s: %s", req->method, req->path,
                    json_string_value(json_object_get(problem, "detail")));
    else
        log_debug("%s %s by %s: %s", req->method, req->path, req->caller.actor,
                  json_string_value(json_object_get(problem, "detail")));
    return api_respond_json_steal(req, (unsigned)status, problem, NULL);
}

static json_t *vproblem(enum problem_kind kind, const char *fmt, va_list ap)
{
    char detail[1024];
    vsnprintf(detail, sizeof(detail), fmt, ap);
    return problem_new(kind, "%s", detail);
}

enum MHD_Result api_respond_problem(struct api_request *req, enum problem_kind kind,
                                    const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    json_t *p = vproblem(kind, fmt, ap);
    va_end(ap);
    return api_respond_problem_doc(req, p);
}

enum MHD_Result api_respond_problem_ext(struct api_request *req, enum problem_kind kind,
                                        const char *ext_key, const char *ext_value,
                                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    json_t *p = vproblem(kind, fmt, ap);
    va_end(ap);
    if (p && ext_key && ext_value)
        json_object_set_new(p, ext_key, json_string_lossy(ext_value));
    return api_respond_problem_doc(req, p);
}
