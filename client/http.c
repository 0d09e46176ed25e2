#include "http.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Generous: adding an RSA-4096 domain makes the daemon generate a key before it answers. */
#define HTTP_CONNECT_TIMEOUT_S 10L
#define HTTP_TOTAL_TIMEOUT_S 120L

struct http_client {
    CURL *curl;
    char *socket_path;
    char *url;          /* HTTPS base URL without a trailing '/', or NULL for the socket */
    char *auth;         /* "Authorization: Bearer TOKEN" header, or NULL; wiped when freed */
    char *ca_file;      /* CA bundle for the HTTPS listener, or NULL for the system's */
    const char *target; /* where requests go, for messages */
    volatile int *cancel;
    long timeout_ms; /* whole-request limit; 0 means HTTP_TOTAL_TIMEOUT_S */
};

struct body_buf {
    char *data;
    size_t len;
    size_t cap;
    bool too_large;
};

int http_client_new(const struct http_config *cfg, struct http_client **out)
{
    struct http_client *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->socket_path = strdup(cfg->socket_path ? cfg->socket_path : "");
    c->curl = curl_easy_init();
    if (!c->socket_path || !c->curl)
        goto nomem;
    c->target = c->socket_path;
    if (cfg->url) {
        size_t len = strlen(cfg->url);
        while (len > 0 && cfg->url[len - 1] == '/')
            len--;
        c->url = strndup(cfg->url, len);
        if (!c->url)
            goto nomem;
        c->target = c->url;
    }
    if (cfg->ca_file && !(c->ca_file = strdup(cfg->ca_file)))
        goto nomem;
    if (cfg->token) {
        size_t sz = strlen("Authorization: Bearer ") + strlen(cfg->token) + 1;
        c->auth = malloc(sz);
        if (!c->auth)
            goto nomem;
        snprintf(c->auth, sz, "Authorization: Bearer %s", cfg->token);
    }
    *out = c;
    return 0;
nomem:
    http_client_free(c);
    return -ENOMEM;
}

void http_client_free(struct http_client *c)
{
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    free(c->socket_path);
    free(c->url);
    if (c->auth) {
        explicit_bzero(c->auth, strlen(c->auth));
        free(c->auth);
    }
    free(c->ca_file);
    free(c);
}

void http_client_set_timeout(struct http_client *c, long timeout_ms)
{
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
}

/* The request limit in effect, in milliseconds. */
static long effective_timeout_ms(const struct http_client *c)
{
    return c->timeout_ms > 0 ? c->timeout_ms : HTTP_TOTAL_TIMEOUT_S * 1000L;
}

/* Frees a body buffer that may hold a private key (GET /v1/domains/NAME/key). */
static void free_wiped(char *p, size_t len)
{
    if (!p)
        return;
    explicit_bzero(p, len);
    free(p);
}

void http_response_clear(struct http_response *r)
{
    if (!r)
        return;
    free(r->content_type);
    free_wiped(r->body, r->body_len);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct body_buf *b = userdata;
    size_t n = size * nmemb;

    if (n > HTTP_MAX_RESPONSE - b->len) {
        b->too_large = true;
        return 0; /* makes curl stop with CURLE_WRITE_ERROR */
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        /* Not realloc: the old buffer may hold part of a private key and must be wiped. */
        char *p = malloc(cap);
        if (!p)
            return 0;
        if (b->len)
            memcpy(p, b->data, b->len);
        free_wiped(b->data, b->cap);
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* True when the media type of CT (parameters after ';' ignored, case-insensitive per RFC 9110
 * §8.3.1) is application/json or application/problem+json. */
static bool is_json_type(const char *ct)
{
    if (!ct)
        return false;
    size_t len = strcspn(ct, "; \t");
    return (len == strlen("application/json") && strncasecmp(ct, "application/json", len) == 0) ||
           (len == strlen("application/problem+json") &&
            strncasecmp(ct, "application/problem+json", len) == 0);
}

void http_client_set_cancel_flag(struct http_client *c, volatile int *flag)
{
    c->cancel = flag;
}

/* curl calls this about once a second even while no byte moves; non-zero aborts the transfer. */
static int progress_cb(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    const struct http_client *c = userdata;
    return c->cancel && *c->cancel ? 1 : 0;
}

/* Where the request goes: the unix socket, or the HTTPS listener given with --url. */
static int set_target(struct http_client *c, const char *path, char *url, size_t urlsz)
{
    int n = snprintf(url, urlsz, "%s%s", c->url ? c->url : "http://localhost", path);
    if (n < 0 || (size_t)n >= urlsz)
        return -E2BIG;
    if (c->url) {
        /* A token must never travel in clear text, nor to a server we did not verify. */
        curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "https");
        curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYHOST, 2L);
        if (c->ca_file && curl_easy_setopt(c->curl, CURLOPT_CAINFO, c->ca_file) != CURLE_OK)
            return -ENOMEM;
        return 0;
    }
    if (curl_easy_setopt(c->curl, CURLOPT_UNIX_SOCKET_PATH, c->socket_path) != CURLE_OK)
        return -ENOMEM;
    return 0;
}

static int map_curl_error(struct http_client *c, CURLcode rc, const struct body_buf *b,
                          const char *curl_err, char *err, size_t errsz)
{
    long os_errno = 0;
    const char *why = curl_err[0] ? curl_err : curl_easy_strerror(rc);

    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST: /* curl's verdict on an over-long socket path */
        curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &os_errno);
        if (os_errno > 0)
            why = strerror((int)os_errno);
        snprintf(err, errsz, "cannot reach certd at %s: %s", c->target, why);
        return -ECONNREFUSED;
    case CURLE_OPERATION_TIMEDOUT:
        snprintf(err, errsz, "no answer from certd at %s within %.1f s (the outcome is unknown)",
                 c->target, (double)effective_timeout_ms(c) / 1000.0);
        return -ETIMEDOUT;
    case CURLE_FILESIZE_EXCEEDED:
        snprintf(err, errsz, "response from certd larger than %u bytes", HTTP_MAX_RESPONSE);
        return -EMSGSIZE;
    case CURLE_WRITE_ERROR:
        if (b->too_large) {
            snprintf(err, errsz, "response from certd larger than %u bytes", HTTP_MAX_RESPONSE);
            return -EMSGSIZE;
        }
        snprintf(err, errsz, "out of memory reading the response");
        return -ENOMEM;
    case CURLE_ABORTED_BY_CALLBACK:
        snprintf(err, errsz, "interrupted");
        return -ECANCELED;
    case CURLE_OUT_OF_MEMORY:
        snprintf(err, errsz, "out of memory");
        return -ENOMEM;
    default:
        snprintf(err, errsz, "request to certd at %s failed (the outcome is unknown): %s",
                 c->target, why);
        return -EIO;
    }
}

int http_request(struct http_client *c, const char *method, const char *path, const json_t *body,
                 struct http_response *resp, char *err, size_t errsz)
{
    char url[4096];
    char curl_err[CURL_ERROR_SIZE] = "";
    struct body_buf b = {0};
    struct curl_slist *headers = NULL;
    char *payload = NULL;
    int ret = -ENOMEM;
    CURL *h = c->curl;

    memset(resp, 0, sizeof(*resp));
    if (errsz > 0)
        err[0] = '\0';
    curl_easy_reset(h);

    ret = set_target(c, path, url, sizeof(url));
    if (ret < 0) {
        snprintf(err, errsz, "request path too long");
        goto out;
    }
    ret = -ENOMEM;

    struct curl_slist *tmp = curl_slist_append(headers, "Accept: application/json");
    if (!tmp)
        goto out;
    headers = tmp;
    if (c->url && c->auth) {
        tmp = curl_slist_append(headers, c->auth);
        if (!tmp)
            goto out;
        headers = tmp;
    }
    if (body) {
        payload = json_dumps(body, JSON_COMPACT);
        if (!payload)
            goto out;
        tmp = curl_slist_append(headers, "Content-Type: application/json");
        if (!tmp)
            goto out;
        headers = tmp;
        /* The body is small; waiting for "100 Continue" would only add a round trip. */
        tmp = curl_slist_append(headers, "Expect:");
        if (!tmp)
            goto out;
        headers = tmp;
    }

    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, HTTP_CONNECT_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, effective_timeout_ms(c));
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE, (long)HTTP_MAX_RESPONSE);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "certctl/" CERTD_VERSION);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    if (c->cancel) {
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, progress_cb);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
    }
    if (payload) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
    }
    if (strcmp(method, "GET") == 0)
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    else if (!(strcmp(method, "POST") == 0 && payload))
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);

    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        ret = map_curl_error(c, rc, &b, curl_err, err, errsz);
        goto out;
    }

    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    char *ct = NULL;
    curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
    if (ct) {
        resp->content_type = strdup(ct);
        if (!resp->content_type) {
            snprintf(err, errsz, "out of memory");
            goto out;
        }
    }
    resp->body = b.data;
    resp->body_len = b.len;
    b.data = NULL;

    if (resp->body_len > 0 && is_json_type(resp->content_type)) {
        json_error_t jerr;
        resp->json = json_loadb(resp->body, resp->body_len, 0, &jerr);
        if (!resp->json) {
            snprintf(err, errsz, "certd sent invalid JSON (HTTP %ld): %s at line %d", resp->status,
                     jerr.text, jerr.line);
            ret = -EBADMSG;
            goto out;
        }
    }
    ret = 0;
out:
    /* The handle keeps pointers to these until the next reset; drop them now. */
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, NULL);
    curl_slist_free_all(headers);
    free(payload);
    free_wiped(b.data, b.cap);
    if (ret < 0 && ret != -EBADMSG)
        http_response_clear(resp);
    if (ret == -ENOMEM && err[0] == '\0')
        snprintf(err, errsz, "out of memory");
    return ret;
}

char *http_escape(struct http_client *c, const char *s)
{
    char *e = curl_easy_escape(c->curl, s, 0);
    if (!e)
        return NULL;
    char *copy = strdup(e);
    curl_free(e);
    return copy;
}
