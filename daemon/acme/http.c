#include "core/clock.h"
#include "acme/http.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"

#define ACME_HTTP_TIMEOUT_S 30
#define ACME_HTTP_MAX_CONNECTIONS 64
#define ACME_HTTP_CONNECT_TIMEOUT_S 10
#define USER_AGENT "certd/" CERTD_VERSION " (ACME client; +libcurl)"

/* Connections, TLS sessions and DNS answers are shared between the worker threads through one
 * share handle, so an order's ten requests reuse one connection. */
struct acme_http {
    CURLSH *share;
    char *ca_bundle;
    pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
};

static void share_lock(CURL *handle, curl_lock_data data, curl_lock_access access, void *userp)
{
    struct acme_http *h = userp;
    if ((unsigned)data < CURL_LOCK_DATA_LAST)
        pthread_mutex_lock(&h->locks[data]);
}

static void share_unlock(CURL *handle, curl_lock_data data, void *userp)
{
    struct acme_http *h = userp;
    if ((unsigned)data < CURL_LOCK_DATA_LAST)
        pthread_mutex_unlock(&h->locks[data]);
}

int acme_http_new(const char *ca_bundle, struct acme_http **out)
{
    struct acme_http *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&h->locks[i], NULL);
    h->share = curl_share_init();
    if (!h->share || (ca_bundle && !(h->ca_bundle = strdup(ca_bundle)))) {
        acme_http_free(h);
        return -ENOMEM;
    }
    curl_share_setopt(h->share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(h->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(h->share, CURLSHOPT_USERDATA, h);
    curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    *out = h;
    return 0;
}

void acme_http_free(struct acme_http *h)
{
    if (!h)
        return;
    if (h->share)
        curl_share_cleanup(h->share);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&h->locks[i]);
    free(h->ca_bundle);
    free(h);
}

void acme_http_response_free(struct acme_http_response *r)
{
    if (!r)
        return;
    free(r->body);
    free(r->content_type);
    free(r->location);
    free(r->replay_nonce);
    for (size_t i = 0; i < r->link_alternate_count; i++)
        free(r->link_alternate[i]);
    free(r->link_up);
    memset(r, 0, sizeof(*r));
    r->retry_after = -1;
}

struct body_buf {
    char *data;
    size_t len;
    bool too_large;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct body_buf *b = userdata;
    size_t n = size * nmemb;
    if (b->len + n > ACME_HTTP_MAX_BODY) {
        b->too_large = true;
        return 0; /* makes curl fail the transfer */
    }
    char *grown = realloc(b->data, b->len + n + 1);
    if (!grown)
        return 0;
    memcpy(grown + b->len, ptr, n);
    b->data = grown;
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* A header's value with surrounding whitespace removed, malloc'd. */
static char *header_value(const char *line, size_t len, size_t name_len)
{
    const char *v = line + name_len;
    const char *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && isspace((unsigned char)end[-1]))
        end--;
    return strndup(v, (size_t)(end - v));
}

static bool header_is(const char *line, size_t len, const char *name)
{
    size_t n = strlen(name);
    return len > n && strncasecmp(line, name, n) == 0 && line[n] == ':';
}

static void on_link(void *ctx, const char *uri, const char *rel)
{
    struct acme_http_response *r = ctx;
    if (strcasecmp(rel, "alternate") == 0 && r->link_alternate_count < ACME_HTTP_MAX_LINKS) {
        char *u = strdup(uri);
        if (u)
            r->link_alternate[r->link_alternate_count++] = u;
    } else if (strcasecmp(rel, "up") == 0 && !r->link_up) {
        r->link_up = strdup(uri);
    }
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *userdata)
{
    struct acme_http_response *r = userdata;
    size_t len = size * nmemb;
    /* A new status line (redirect or 100-continue) starts a new set of headers. */
    if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        long keep = r->status;
        acme_http_response_free(r);
        r->status = keep;
        return len;
    }
    if (header_is(line, len, "Replay-Nonce")) {
        free(r->replay_nonce);
        r->replay_nonce = header_value(line, len, strlen("Replay-Nonce:"));
    } else if (header_is(line, len, "Location")) {
        free(r->location);
        r->location = header_value(line, len, strlen("Location:"));
    } else if (header_is(line, len, "Content-Type")) {
        free(r->content_type);
        r->content_type = header_value(line, len, strlen("Content-Type:"));
        if (r->content_type) {
            r->content_type[strcspn(r->content_type, "; ")] = '\0';
            for (char *p = r->content_type; *p; p++)
                *p = (char)tolower((unsigned char)*p);
        }
    } else if (header_is(line, len, "Retry-After")) {
        char *v = header_value(line, len, strlen("Retry-After:"));
        if (v)
            r->retry_after = acme_parse_retry_after(v, clock_now());
        free(v);
    } else if (header_is(line, len, "Link")) {
        char *v = header_value(line, len, strlen("Link:"));
        if (v)
            acme_parse_link(v, on_link, r);
        free(v);
    }
    return len;
}

int acme_http_request(struct acme_http *h, const char *method, const char *url,
                      const char *content_type, const char *body, size_t body_len,
                      const char *accept, struct acme_http_response *resp, char *err,
                      size_t errsz)
{
    struct body_buf buf = {0};
    struct curl_slist *headers = NULL;
    char hdr[256];
    int rc = -EIO;
    char curl_err[CURL_ERROR_SIZE] = "";

    memset(resp, 0, sizeof(*resp));
    resp->retry_after = -1;
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(err, errsz, "cannot create an HTTP handle");
        return -ENOMEM;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_SHARE, h->share);
    /* The shared cache keeps this many connections (libcurl's default is 5): one per worker,
     * or every order opens a new TLS connection. */
    curl_easy_setopt(c, CURLOPT_MAXCONNECTS, (long)ACME_HTTP_MAX_CONNECTIONS);
    curl_easy_setopt(c, CURLOPT_USERAGENT, USER_AGENT);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)ACME_HTTP_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)ACME_HTTP_CONNECT_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)ACME_HTTP_MAX_BODY);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &buf);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, resp);
    if (h->ca_bundle) {
        curl_easy_setopt(c, CURLOPT_CAINFO, h->ca_bundle);
        /* Only the bundle: libcurl's GnuTLS backend would otherwise also read the whole system
         * certificate directory on every request. */
        curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
    }

    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
        snprintf(hdr, sizeof(hdr), "Content-Type: %s", content_type);
        headers = curl_slist_append(headers, hdr);
    }
    if (accept) {
        snprintf(hdr, sizeof(hdr), "Accept: %s", accept);
        headers = curl_slist_append(headers, hdr);
    }
    /* No "Expect: 100-continue" round trip for our small bodies. */
    headers = curl_slist_append(headers, "Expect:");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);

    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        snprintf(err, errsz, "%s %s: %s", method, url,
                 buf.too_large ? "response body too large" : curl_err[0] ? curl_err
                                                                          : curl_easy_strerror(cc));
        acme_http_response_free(resp);
        free(buf.data);
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
    resp->body = buf.data;
    resp->body_len = buf.len;
    rc = 0;
out:
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    return rc;
}

int64_t acme_parse_retry_after(const char *value, int64_t now)
{
    while (*value == ' ' || *value == '\t')
        value++;
    if (!*value)
        return -1;
    if (isdigit((unsigned char)*value)) {
        char *end;
        errno = 0;
        long long n = strtoll(value, &end, 10);
        while (*end == ' ' || *end == '\t')
            end++;
        if (errno || *end || n < 0)
            return -1;
        return (int64_t)n;
    }
    /* HTTP-date: curl_getdate understands IMF-fixdate and the two obsolete forms (RFC 9110
     * §5.6.7). */
    time_t t = curl_getdate(value, NULL);
    if (t == -1)
        return -1;
    return (int64_t)t > now ? (int64_t)t - now : 0;
}

int acme_parse_link(const char *value, acme_link_fn fn, void *ctx)
{
    int count = 0;
    const char *p = value;
    while (*p) {
        const char *lt = strchr(p, '<');
        if (!lt)
            break;
        const char *gt = strchr(lt + 1, '>');
        if (!gt)
            break;
        char *uri = strndup(lt + 1, (size_t)(gt - lt - 1));
        /* Parameters run until the next comma outside quotes. */
        const char *q = gt + 1;
        char rel[64] = "";
        bool quoted = false;
        const char *param_start = q;
        for (; *q && (quoted || *q != ','); q++) {
            if (*q == '"')
                quoted = !quoted;
        }
        size_t plen = (size_t)(q - param_start);
        char *params = strndup(param_start, plen);
        if (params) {
            char *r = strcasestr(params, "rel=");
            if (r) {
                r += 4;
                bool rq = *r == '"';
                if (rq)
                    r++;
                size_t n = strcspn(r, rq ? "\"" : " ;,");
                if (n >= sizeof(rel))
                    n = sizeof(rel) - 1;
                memcpy(rel, r, n);
                rel[n] = '\0';
            }
        }
        if (uri) {
            fn(ctx, uri, rel);
            count++;
        }
        free(uri);
        free(params);
        p = *q ? q + 1 : q;
    }
    return count;
}
