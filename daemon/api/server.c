/* libmicrohttpd glue: per-request state made on the first callback and freed in the completion
 * callback, bounded body accumulation, then one call into the router. */
#include "api/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "api/acceptor.h"
#include "api/token.h"
#include "api/token_cache.h"
#include "core/confhold.h"
#include "core/log.h"

/* Most threads per listener ([daemon] api_threads). */
#define API_THREADS_MAX API_ACCEPTOR_SHARDS_MAX
#define API_CONNECTION_TIMEOUT_S 30
#define API_CONNECTION_LIMIT 1024
/* libmicrohttpd's memory per connection: the request's line and headers, and the response's
 * headers (bodies do not go through it). It zeroes the whole of it after every request, so its
 * 32 KiB default cost more than the rest of a delivery request; 16 KiB still takes header
 * lines of 8 KiB, the limit nginx sets by default. */
#define API_CONNECTION_MEMORY (16 * 1024)
/* Connections one address may hold on the HTTPS listener: a fleet member needs a few, and one
 * client must not take the whole connection limit. */
#define API_HTTPS_PER_IP_LIMIT 32
/* TLS 1.2 and 1.3 only (GnuTLS priority syntax): the floor the fleet issue sets. */
#define API_TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

struct api_server {
    /* One daemon (and thread) per shard, fed by one acceptor (acceptor.h). */
    struct api_acceptor *acceptor;
    struct MHD_Daemon *mhd[API_ACCEPTOR_SHARDS_MAX];
    size_t mhd_count;
    struct api_context *ctx;
    struct api_feed *feed; /* long-polls of GET /v1/events (h_events.c) */
    /* The HTTPS listener only: what its requests point at, and the PEM buffers handed to
     * libmicrohttpd (kept for the daemon's life; the key is wiped at stop). */
    bool is_remote;
    struct api_remote remote;
    struct api_tls_listener *tls;
};

/*
 * Threads per listener: [daemon] api_threads, or one less than the CPUs (at least one). The
 * socket's callers run on this host, and so do ACME orders and often the proxies: with a core
 * left to them the delivery endpoints kept a p99 under 2 ms, where one thread per CPU had it
 * at 4 ms, for the same or more requests per second (tests/bench/delivery on 2 CPUs).
 */
static size_t api_threads(struct api_context *ctx)
{
    const struct config *cfg = config_holder_get(ctx->config);
    long n = cfg->daemon.api_threads;
    config_holder_put(ctx->config, cfg);
    if (n == 0)
        n = sysconf(_SC_NPROCESSORS_ONLN) - 1;
    if (n < 1)
        return 1;
    return n > API_THREADS_MAX ? API_THREADS_MAX : (size_t)n;
}

static void request_free(struct api_request *req)
{
    if (!req)
        return;
    if (req->config)
        config_holder_put(req->ctx->config, req->config);
    api_feed_wait_free(req->feed_wait);
    api_caller_clear(&req->caller);
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

/* The client's numeric address ("?" when unknown), for logs and the failure limiter. */
static void peer_address(struct MHD_Connection *conn, char *out, size_t outsz)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(out, outsz, "?");
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)outsz);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)outsz);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
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
        req->feed = srv->feed;
        req->config = config_holder_get(srv->ctx->config);
        req->method = method;
        req->path = url;
        *con_cls = req;
        if (srv->is_remote) {
            req->remote = &srv->remote;
            peer_address(conn, req->peer, sizeof(req->peer));
        }
        int err = api_auth_identify(req, &req->caller);
        if (err == -EACCES || err == -EPERM || err == -EAGAIN)
            return api_auth_refuse(req, err);
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

/* A daemon serving through on_request; PLACEMENT says where its connections come from (a listen
 * socket and a thread pool, or an acceptor's shard SHARD), EXTRA adds TLS. */
static struct MHD_Daemon *start_daemon(struct api_server *srv, unsigned flags,
                                       const struct MHD_OptionItem *placement, void *shard,
                                       const struct MHD_OptionItem *extra)
{
    return MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                                MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | flags,
                            0, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
                            NULL, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)API_CONNECTION_MEMORY,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)API_CONNECTION_TIMEOUT_S,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
                            MHD_OPTION_NOTIFY_CONNECTION, shard ? api_acceptor_notify : NULL, shard,
                            MHD_OPTION_ARRAY, placement, MHD_OPTION_ARRAY, extra, MHD_OPTION_END);
}

/* THREADS single-threaded daemons fed by an acceptor on LISTEN_FD (owned from here). */
static int start_sharded(struct api_server *srv, int listen_fd, size_t threads,
                         const struct MHD_OptionItem *extra)
{
    const struct MHD_OptionItem placement[] = {
        {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)((API_CONNECTION_LIMIT + threads - 1) / threads),
         NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    int rc = api_acceptor_new(listen_fd, threads, API_HTTPS_PER_IP_LIMIT, &srv->acceptor);
    for (size_t i = 0; rc == 0 && i < threads; i++) {
        srv->mhd[i] = start_daemon(srv, MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC | MHD_USE_TLS,
                                   placement, api_acceptor_shard(srv->acceptor, i), extra);
        if (!srv->mhd[i])
            rc = -EIO;
        else
            srv->mhd_count = i + 1;
    }
    if (rc == 0 && (rc = api_acceptor_run(srv->acceptor, srv->mhd)) < 0)
        log_error("cannot start accepting API connections: %s", strerror(-rc));
    return rc;
}

/* One daemon with a thread pool accepting on LISTEN_FD (owned from here). The unix socket's
 * connections cannot go through an acceptor: libmicrohttpd takes a connection handed to it for
 * TCP and tries (and logs failing) TCP options on it at every response. */
static int start_pooled(struct api_server *srv, int listen_fd, size_t threads)
{
    const struct MHD_OptionItem placement[] = {
        {MHD_OPTION_LISTEN_SOCKET, listen_fd, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, API_CONNECTION_LIMIT, NULL},
        /* One thread is the daemon's own: MHD warns about a pool of one. */
        {threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, (intptr_t)threads, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    static const struct MHD_OptionItem none[] = {{MHD_OPTION_END, 0, NULL}};
    srv->mhd[0] = start_daemon(srv, 0, placement, NULL, none);
    if (!srv->mhd[0]) {
        close(listen_fd);
        return -EIO;
    }
    srv->mhd_count = 1;
    return 0;
}

/* Serves LISTEN_FD (owned from here); over TLS with TLS's material when TLS is not NULL, its
 * requests then pointing at REMOTE (copied; its limiter is the server's on success). */
static int server_start(int listen_fd, struct api_context *ctx, const struct api_tls_listener *tls,
                        const struct api_remote *remote, struct api_server **out)
{
    /* With a trust list libmicrohttpd asks every client for a certificate (without requiring
     * one in the handshake); api_auth_identify then insists on a verified one. The limit of
     * connections per client address is the acceptor's (MHD's own skips added connections). */
    const struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, tls ? tls->cert_pem : NULL},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, tls ? tls->key_pem : NULL},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)API_TLS_PRIORITIES},
        {tls && tls->trust_pem ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END, 0,
         tls ? tls->trust_pem : NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    struct api_server *srv = calloc(1, sizeof(*srv));
    if (!srv) {
        close(listen_fd);
        return -ENOMEM;
    }
    srv->ctx = ctx;
    if (tls) {
        srv->is_remote = true;
        srv->remote = *remote;
    }
    /* One pruner is enough: the unix socket's server (always there) runs it. */
    int rc = api_feed_start(ctx, !tls, &srv->feed);
    if (rc < 0) {
        log_error("cannot start the events feed: %s", strerror(-rc));
        close(listen_fd);
    } else {
        size_t threads = api_threads(ctx);
        rc = tls ? start_sharded(srv, listen_fd, threads, tls_opts)
                 : start_pooled(srv, listen_fd, threads);
        if (rc == -EIO)
            log_error("cannot start the HTTP%s server on %s", tls ? "S" : "",
                      tls ? tls->listen : "the API socket");
    }
    if (rc < 0) {
        api_acceptor_stop(srv->acceptor);
        for (size_t i = 0; i < srv->mhd_count; i++)
            MHD_stop_daemon(srv->mhd[i]);
        api_acceptor_free(srv->acceptor);
        api_feed_free(srv->feed);
        free(srv);
        return rc;
    }
    *out = srv;
    return 0;
}

int api_server_start(int listen_fd, struct api_context *ctx, struct api_server **out)
{
    return server_start(listen_fd, ctx, NULL, NULL, out);
}

int api_server_start_https(struct api_tls_listener *l, struct api_context *ctx,
                           struct api_server **out)
{
    struct api_remote remote = {.limiter = auth_limiter_new(),
                                .tokens = token_cache_new(),
                                .verify_client_cert = l->trust_pem != NULL};
    struct api_server *srv = NULL;
    int fd = l->fd;
    l->fd = -1; /* server_start owns it from here */
    bool made = remote.limiter && remote.tokens;
    int rc = made ? server_start(fd, ctx, l, &remote, &srv) : -ENOMEM;
    if (rc < 0) {
        if (!made)
            close(fd);
        auth_limiter_free(remote.limiter);
        token_cache_free(remote.tokens);
        api_tls_listener_free(l);
        return rc;
    }
    srv->tls = l;
    log_notice("HTTPS API on %s (TLS 1.2 and up%s)", l->listen,
               l->trust_pem ? ", client certificates required" : "");
    *out = srv;
    return 0;
}

void api_server_stop(struct api_server *srv)
{
    if (!srv)
        return;
    /* Stop accepting first, so clients fail fast while requests in progress finish. */
    if (srv->acceptor) {
        api_acceptor_stop(srv->acceptor);
    } else {
        int fd = MHD_quiesce_daemon(srv->mhd[0]);
        if (fd >= 0)
            close(fd);
    }
    /* Long-polls are suspended connections, which MHD_stop_daemon must not find: they answer
     * now with what there is. */
    api_feed_shutdown(srv->feed);
    for (size_t i = 0; i < srv->mhd_count; i++)
        MHD_stop_daemon(srv->mhd[i]);
    api_acceptor_free(srv->acceptor);
    api_feed_free(srv->feed);
    api_tls_listener_free(srv->tls);
    auth_limiter_free(srv->remote.limiter);
    token_cache_free(srv->remote.tokens);
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
