/* The http-01 responder (RFC 8555 §8.3): a libmicrohttpd server that answers
 * GET /.well-known/acme-challenge/TOKEN with the key authorisation of a published TOKEN and 404
 * for everything else. It serves the whole Internet, so it does as little as possible: every
 * request is answered on its first callback, no body is ever read, and connections are bounded
 * in number, memory and idle time. */
#include "acme/resp_internal.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define HTTP01_PREFIX "/.well-known/acme-challenge/"
/* A CA validates from a handful of vantage points; a few hundred connections is plenty and
 * keeps a flood from exhausting file descriptors the rest of the daemon needs. */
#define HTTP01_CONNECTION_LIMIT 256
#define HTTP01_PER_IP_LIMIT 16
#define HTTP01_CONNECTION_TIMEOUT_S 10
#define HTTP01_CONNECTION_MEMORY (16 * 1024)

static const char body_not_found[] = "not found\n";
static const char body_not_allowed[] = "method not allowed\n";

/* Queues a response with BODY (copied), Content-Type text/plain. */
static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, const char *body,
                               size_t len, bool allow_header)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    enum MHD_Result rc = MHD_YES;
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain") != MHD_YES ||
        /* A challenge answer is only good for minutes: keep caches between us and the CA out. */
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES ||
        (allow_header &&
         MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD") != MHD_YES))
        rc = MHD_NO;
    if (rc == MHD_YES)
        rc = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct responders *r = cls;

    /* Answering on the first call means a request body is never read: MHD closes the connection
     * after the response instead. HEAD gets the headers of the GET response (MHD drops the body).
     */
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return respond(conn, MHD_HTTP_METHOD_NOT_ALLOWED, body_not_allowed,
                       sizeof(body_not_allowed) - 1, true);

    /* URL is percent-decoded and without its query. Anything but a well-formed token after the
     * prefix ("../x", "a/b", "") fails resp_token_valid, so no path is ever interpreted. */
    size_t plen = strlen(HTTP01_PREFIX);
    if (strncmp(url, HTTP01_PREFIX, plen) != 0 || !resp_token_valid(url + plen))
        return respond(conn, MHD_HTTP_NOT_FOUND, body_not_found, sizeof(body_not_found) - 1, false);

    enum MHD_Result rc;
    pthread_mutex_lock(&r->tokens_lock);
    const char *key_auth = resp_map_get(&r->tokens, url + plen);
    bool found = key_auth != NULL;
    /* respond() copies KEY_AUTH: nothing here uses it once the lock is released. */
    if (found)
        rc = respond(conn, MHD_HTTP_OK, key_auth, strlen(key_auth), false);
    else
        rc = respond(conn, MHD_HTTP_NOT_FOUND, body_not_found, sizeof(body_not_found) - 1, false);
    pthread_mutex_unlock(&r->tokens_lock);
    /* Not the URL: it holds the token, which stays out of the logs (core/log.h). */
    log_debug("http-01: %s for a %s token", method, found ? "published" : "unknown");
    return rc;
}

/* MHD's own messages are about misbehaving clients on a public port: debug level, so a scan
 * does not fill the journal. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    log_debug("http-01: %s", msg);
}

int resp_http01_start(struct responders *r, int listen_fd, char *err, size_t errsz)
{
    /* One internal thread with epoll serves every connection: the work per request is a map
     * lookup, so a pool would add nothing. */
    r->http = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL,
        on_request, r, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET,
        listen_fd, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP01_CONNECTION_TIMEOUT_S,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP01_CONNECTION_LIMIT,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)HTTP01_PER_IP_LIMIT,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP01_CONNECTION_MEMORY, MHD_OPTION_END);
    if (!r->http) {
        /* Not closing LISTEN_FD: depending on where it failed MHD may already have closed it,
         * and closing a number another thread has reused would be worse than a leaked fd on a
         * startup error. */
        snprintf(err, errsz, "http-01: cannot start the HTTP server");
        return -EIO;
    }
    return 0;
}

void resp_http01_stop(struct responders *r)
{
    if (!r->http)
        return;
    MHD_stop_daemon(r->http); /* closes the listening socket too */
    r->http = NULL;
}

int responders_http01_add(struct responders *r, const char *token, const char *key_auth)
{
    if (!r || !resp_token_valid(token) || !resp_key_auth_valid(key_auth))
        return -EINVAL;
    char *copy = strdup(key_auth);
    if (!copy)
        return -ENOMEM;
    void *old = NULL;
    pthread_mutex_lock(&r->tokens_lock);
    int rc = resp_map_put(&r->tokens, token, copy, &old);
    pthread_mutex_unlock(&r->tokens_lock);
    if (rc < 0)
        free(copy);
    free(old);
    return rc;
}

void responders_http01_remove(struct responders *r, const char *token)
{
    if (!r || !resp_token_valid(token))
        return;
    pthread_mutex_lock(&r->tokens_lock);
    char *old = resp_map_take(&r->tokens, token);
    pthread_mutex_unlock(&r->tokens_lock);
    free(old);
}

int responders_http01_lookup(struct responders *r, const char *token, char **key_auth)
{
    if (!key_auth)
        return -EINVAL;
    *key_auth = NULL;
    if (!r || !resp_token_valid(token))
        return -ENOENT;
    int rc = 0;
    pthread_mutex_lock(&r->tokens_lock);
    const char *found = resp_map_get(&r->tokens, token);
    if (!found)
        rc = -ENOENT;
    else if (!(*key_auth = strdup(found)))
        rc = -ENOMEM;
    pthread_mutex_unlock(&r->tokens_lock);
    return rc;
}
