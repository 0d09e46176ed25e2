/* libmicrohttpd glue: per-request state made on the first callback and freed in the completion
 * callback, bounded body accumulation, then one call into the router. */
#include "api/internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/confhold.h"
#include "core/log.h"

/* Threads serving requests. Small: requests are short, and the long-running work (ACME orders)
 * runs on the daemon's own workers. */
#define API_THREADS 4
#define API_CONNECTION_TIMEOUT_S 30
#define API_CONNECTION_LIMIT 1024

struct api_server {
    struct MHD_Daemon *mhd;
    struct api_context *ctx;
};

static void request_free(struct api_request *req)
{
    if (!req)
        return;
    if (req->config)
        config_holder_put(req->ctx->config, req->config);
    free(req->body);
    free(req);
}

/* Checks what can be decided from the headers alone, before any body byte is read. Returns
 * true with *RC set when a response was queued. */
static bool early_reject(struct api_request *req, enum MHD_Result *rc)
{
    if (req->caller.role == ROLE_NONE) {
        *rc = api_respond_problem(req, PROBLEM_FORBIDDEN,
                                  "%s has no role on this daemon (see [access] in the config)",
                                  req->caller.actor);
        return true;
    }
    const char *clen =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (clen) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(clen, &end, 10);
        if (errno || *end || n > API_MAX_BODY) {
            *rc = api_respond_problem(req, PROBLEM_PAYLOAD_TOO_LARGE,
                                      "request body over the limit of %d bytes", API_MAX_BODY);
            return true;
        }
    }
    return false;
}

static bool body_append(struct api_request *req, const char *data, size_t len)
{
    if (req->body_too_large)
        return true;
    if (req->body_len + len > API_MAX_BODY) {
        req->body_too_large = true;
        free(req->body);
        req->body = NULL;
        req->body_len = 0;
        return true;
    }
    char *grown = realloc(req->body, req->body_len + len + 1);
    if (!grown)
        return false;
    memcpy(grown + req->body_len, data, len);
    req->body = grown;
    req->body_len += len;
    req->body[req->body_len] = '\0';
    return true;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct api_server *srv = cls;
    struct api_request *req = *con_cls;
    enum MHD_Result rc;

    if (!req) {
        req = calloc(1, sizeof(*req));
        if (!req)
            return MHD_NO;
        req->conn = conn;
        req->ctx = srv->ctx;
        req->config = config_holder_get(srv->ctx->config);
        req->method = method;
        req->path = url;
        *con_cls = req;
        int err = api_auth_identify(req, &req->caller);
        if (err < 0) {
            log_warning("cannot identify API peer: %s", strerror(-err));
            return MHD_NO;
        }
        if (early_reject(req, &rc))
            return rc;
        return MHD_YES;
    }

    if (*upload_data_size) {
        if (!body_append(req, upload_data, *upload_data_size))
            return MHD_NO;
        *upload_data_size = 0;
        return MHD_YES;
    }

    if (req->body_too_large)
        return api_respond_problem(req, PROBLEM_PAYLOAD_TOO_LARGE,
                                   "request body over the limit of %d bytes", API_MAX_BODY);
    log_debug("%s %s by %s", method, url, req->caller.actor);
    return api_route(req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    request_free(*con_cls);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    log_notice("http: %s", msg);
}

int api_server_start(int listen_fd, struct api_context *ctx, struct api_server **out)
{
    struct api_server *srv = calloc(1, sizeof(*srv));
    if (!srv) {
        close(listen_fd);
        return -ENOMEM;
    }
    srv->ctx = ctx;
    srv->mhd = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
            MHD_USE_ERROR_LOG,
        0, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_LISTEN_SOCKET, listen_fd,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)API_THREADS, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)API_CONNECTION_TIMEOUT_S, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)API_CONNECTION_LIMIT, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_END);
    if (!srv->mhd) {
        log_error("cannot start the HTTP server on the API socket");
        close(listen_fd);
        free(srv);
        return -EIO;
    }
    *out = srv;
    return 0;
}

void api_server_stop(struct api_server *srv)
{
    if (!srv)
        return;
    /* Stop accepting first, so clients fail fast while requests in progress finish. */
    int fd = MHD_quiesce_daemon(srv->mhd);
    if (fd >= 0)
        close(fd);
    MHD_stop_daemon(srv->mhd);
    free(srv);
}

/* ---- request helpers ---- */

json_t *api_body_object(struct api_request *req, enum MHD_Result *rc)
{
    const char *ctype =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!req->body || req->body_len == 0) {
        *rc = api_respond_problem(req, PROBLEM_MALFORMED, "a JSON object is required as the body");
        return NULL;
    }
    size_t jlen = strlen("application/json");
    if (!ctype || strncasecmp(ctype, "application/json", jlen) != 0 ||
        (ctype[jlen] != '\0' && ctype[jlen] != ';' && ctype[jlen] != ' ')) {
        *rc = api_respond_problem(req, PROBLEM_UNSUPPORTED_MEDIA,
                                  "the body must be sent as application/json, not %s",
                                  ctype ? ctype : "(no Content-Type)");
        return NULL;
    }
    json_error_t jerr;
    json_t *obj = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj) {
        *rc = api_respond_problem(req, PROBLEM_MALFORMED, "body is not valid JSON: %s at line %d",
                                  jerr.text, jerr.line);
        return NULL;
    }
    if (!json_is_object(obj)) {
        json_decref(obj);
        *rc = api_respond_problem(req, PROBLEM_MALFORMED, "the body must be a JSON object");
        return NULL;
    }
    return obj;
}

struct query_scan {
    const char *const *allowed;
    const char *bad;
};

static enum MHD_Result query_scan_one(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    struct query_scan *s = cls;
    for (const char *const *a = s->allowed; *a; a++) {
        if (strcmp(*a, key) == 0)
            return MHD_YES;
    }
    s->bad = key;
    return MHD_NO;
}

bool api_query_check(struct api_request *req, const char *const *allowed, enum MHD_Result *rc)
{
    static const char *const none[] = {NULL};
    struct query_scan s = {.allowed = allowed ? allowed : none};
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, query_scan_one, &s);
    if (s.bad) {
        *rc = api_respond_problem_ext(req, PROBLEM_MALFORMED, "parameter", s.bad,
                                      "unknown query parameter '%s'", s.bad);
        return false;
    }
    return true;
}

const char *api_query(struct api_request *req, const char *key)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

bool api_query_int(struct api_request *req, const char *key, long long min, long long max,
                   long long def, long long *out, enum MHD_Result *rc)
{
    const char *v = api_query(req, key);
    if (!v) {
        *out = def;
        return true;
    }
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (!*v || *end || errno || n < min || n > max) {
        *rc = api_respond_problem_ext(req, PROBLEM_MALFORMED, "parameter", key,
                                      "query parameter '%s' must be an integer from %lld to %lld",
                                      key, min, max);
        return false;
    }
    *out = n;
    return true;
}

bool api_query_bool(struct api_request *req, const char *key, bool *out, enum MHD_Result *rc)
{
    const char *v = api_query(req, key);
    if (!v || strcmp(v, "false") == 0 || strcmp(v, "0") == 0) {
        *out = false;
        return true;
    }
    if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0) {
        *out = true;
        return true;
    }
    *rc = api_respond_problem_ext(req, PROBLEM_MALFORMED, "parameter", key,
                                  "query parameter '%s' must be true or false", key);
    return false;
}
