/*
 * acme_shim: a test-only reverse proxy in front of a real Pebble that adds what Debian's Pebble
 * 2.4 lacks: ACME Renewal Information (RFC 9773) and certificate profiles
 * (draft-ietf-acme-profiles). Everything else is forwarded to Pebble unchanged.
 *
 * Pebble builds every URL it returns, and the URL it expects in a JWS "url" header, from the
 * request's Host header. Forwarding each request with the client's own Host header therefore
 * makes all of Pebble's URLs point at the shim while JWS signatures stay valid: the shim never
 * re-signs anything.
 *
 *   GET/HEAD /dir             Pebble's directory plus "renewalInfo" and meta.profiles
 *   GET/HEAD /renewal-info/ID a suggested window from the control config (404 when none)
 *   POST <newOrder>           records "replaces"/"profile"; alreadyReplaced / invalidProfile
 *   anything else             forwarded as is
 *
 * A plain-HTTP control API on a second loopback port: POST /config, GET /config, GET /seen,
 * POST /reset (see tests/e2e/shim.sh). Both ports accept loopback peers only.
 *
 * Exit status: 0 after SIGTERM/SIGINT, 2 when a listen address is in use (the caller picks
 * other ports), 1 on any other error.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <nettle/base64.h>

#define MAX_ACME_BODY (256 * 1024) /* a JWS with a CSR for an RSA-4096 key is a few KiB */
#define MAX_CTL_BODY (64 * 1024)
#define MAX_UPSTREAM_BODY (1024 * 1024)
#define MAX_UPSTREAM_HEADERS 32
#define MAX_HEADER_VALUE 4096
#define MAX_SEEN 10000 /* entries per /seen list; later ones are only counted */
#define MAX_WINDOWS 1000
#define MAX_REPLACED 1000
#define MAX_PROFILES 64
#define MAX_CERT_ID 512
#define MAX_HOST 256
#define MAX_PATH_LEN 2048
#define MAX_PEM_FILE (64 * 1024)
#define MAX_RELATIVE_S (10LL * 366 * 86400) /* start_in, end_in, retry_after */
#define CONNECTION_LIMIT 64u
#define CONNECTION_TIMEOUT_S 30u
#define UPSTREAM_TIMEOUT_S 30L
#define UPSTREAM_CONNECT_TIMEOUT_S 10L

#define EXIT_ADDR_IN_USE 2

struct shim {
    char upstream[512]; /* base URL without a trailing slash */
    const char *upstream_ca;
    char listen_authority[128]; /* Host for clients that sent none (HTTP/1.0) */
    char new_order_path[MAX_PATH_LEN];
    char new_nonce_path[MAX_PATH_LEN];

    pthread_mutex_t lock; /* guards everything below */
    bool ari;
    json_t *profiles;         /* object name -> description, or NULL: none advertised */
    json_t *default_window;   /* window object or NULL */
    json_t *windows;          /* object certID -> window */
    long long retry_after;    /* seconds, -1: no Retry-After header */
    json_t *already_replaced; /* array of certID strings */
    json_t *explanation_url;  /* string, or NULL: https://<host>/ari-explanation */
    json_t *seen_renewal_info;
    json_t *seen_orders;
    unsigned long seen_dropped;
};

/* One request's upload, accumulated up to a cap. */
struct req {
    char *body;
    size_t len;
    bool too_big;
};

struct up_header {
    char *name;
    char *value;
};

struct upstream_resp {
    long status;
    char *body;
    size_t len;
    bool too_big;
    struct up_header headers[MAX_UPSTREAM_HEADERS];
    size_t nheaders;
};

/* Response headers relayed from Pebble; everything else (Date, Content-Length, ...) is MHD's. */
static const char *const relayed_headers[] = {
    "Replay-Nonce", "Location", "Link", "Retry-After", "Content-Type", "Cache-Control",
};

static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logmsg(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    fprintf(stderr, "acme_shim: %s\n", buf);
}

/* --- small helpers ---------------------------------------------------------------------------- */

static bool is_b64url_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/*
 * Unpadded base64url (RFC 7515 §2) to bytes, NUL-terminated for convenience. nettle only accepts
 * a final partial quantum together with its padding, so the padding is fed to it here.
 * Returns 0 or -EINVAL / -ENOMEM.
 */
static int b64url_decode(const char *s, size_t len, uint8_t **out, size_t *out_len)
{
    static const char padding[] = "==";
    struct base64_decode_ctx ctx;
    size_t pad, n = 0, m = 0, cap;
    uint8_t *buf;

    *out = NULL;
    *out_len = 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_b64url_char(s[i]))
            return -EINVAL;
    }
    if (len % 4 == 1)
        return -EINVAL;
    pad = (4 - len % 4) % 4;
    cap = BASE64_DECODE_LENGTH(len) + 2;
    buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    base64url_decode_init(&ctx);
    if (!base64_decode_update(&ctx, &n, buf, len, s) ||
        !base64_decode_update(&ctx, &m, buf + n, pad, padding) || !base64_decode_final(&ctx)) {
        free(buf);
        return -EINVAL;
    }
    buf[n + m] = '\0';
    *out = buf;
    *out_len = n + m;
    return 0;
}

/* RFC 9773 §4.1: certID is base64url(AKI keyIdentifier) "." base64url(serial), no padding. */
static bool cert_id_valid(const char *id)
{
    const char *dot = strchr(id, '.');
    uint8_t *bytes = NULL;
    size_t n;
    bool ok;

    if (!dot || dot == id || dot[1] == '\0' || strchr(dot + 1, '.') || strlen(id) > MAX_CERT_ID)
        return false;
    ok = b64url_decode(id, (size_t)(dot - id), &bytes, &n) == 0 && n > 0;
    free(bytes);
    bytes = NULL;
    ok = ok && b64url_decode(dot + 1, strlen(dot + 1), &bytes, &n) == 0 && n > 0;
    free(bytes);
    return ok;
}

/* A Host header we are willing to copy into a header and a URL: host[:port] or [v6]:port. */
static bool host_valid(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n >= MAX_HOST)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == ':' || c == '[' || c == ']'))
            return false;
    }
    return true;
}

static void format_rfc3339(long long t, char *out, size_t outsz)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, outsz, "1970-01-01T00:00:00Z");
}

static bool is_loopback(const struct sockaddr *sa)
{
    if (!sa)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    }
    return false;
}

static enum MHD_Result accept_loopback(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    return is_loopback(addr) ? MHD_YES : MHD_NO;
}

/*
 * A listening TCP socket on ADDR ("127.0.0.1:PORT" or "[::1]:PORT"), loopback only.
 * Returns the fd, -EADDRINUSE when taken, another negative errno otherwise.
 */
static int listen_on(const char *addr, int *family)
{
    char host[128];
    const char *colon = strrchr(addr, ':');
    struct addrinfo hints = {0}, *ai = NULL;
    int fd = -1, one = 1, rc;
    size_t hlen;

    if (!colon || colon == addr || colon[1] == '\0')
        return -EINVAL;
    hlen = (size_t)(colon - addr);
    if (addr[0] == '[') {
        if (hlen < 3 || addr[hlen - 1] != ']')
            return -EINVAL;
        addr++;
        hlen -= 2;
    }
    if (hlen >= sizeof(host))
        return -EINVAL;
    memcpy(host, addr, hlen);
    host[hlen] = '\0';
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || !ai)
        return -EINVAL;
    if (!is_loopback(ai->ai_addr)) {
        rc = -EPERM;
        goto out;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    /* Restarting on the same port must not wait for TIME_WAIT connections of the last run. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
        rc = -errno;
        close(fd);
        goto out;
    }
    *family = ai->ai_family;
    rc = fd;
out:
    freeaddrinfo(ai);
    return rc;
}

/* Reads a PEM file of at most MAX_PEM_FILE bytes, NUL-terminated. */
static char *read_pem(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "re");
    char *buf = NULL;
    size_t n;

    if (!f)
        return NULL;
    buf = malloc(MAX_PEM_FILE + 1);
    if (!buf)
        goto out;
    n = fread(buf, 1, MAX_PEM_FILE + 1, f);
    if (ferror(f) || n == 0 || n > MAX_PEM_FILE) {
        explicit_bzero(buf, MAX_PEM_FILE + 1);
        free(buf);
        buf = NULL;
        goto out;
    }
    buf[n] = '\0';
    *len_out = n;
out:
    fclose(f);
    return buf;
}

/* --- upstream (Pebble) ------------------------------------------------------------------------ */

static void upstream_headers_clear(struct upstream_resp *r)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    r->nheaders = 0;
}

static void upstream_resp_free(struct upstream_resp *r)
{
    if (!r)
        return;
    upstream_headers_clear(r);
    free(r->body);
    r->body = NULL;
    r->len = 0;
}

static const char *upstream_header(const struct upstream_resp *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    }
    return NULL;
}

static size_t on_upstream_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct upstream_resp *r = userdata;
    size_t n = size * nmemb;
    char *grown;

    if (n > MAX_UPSTREAM_BODY - r->len) {
        r->too_big = true;
        return 0; /* fails the transfer */
    }
    grown = realloc(r->body, r->len + n + 1);
    if (!grown)
        return 0;
    memcpy(grown + r->len, ptr, n);
    r->body = grown;
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

static size_t on_upstream_header(char *line, size_t size, size_t nmemb, void *userdata)
{
    struct upstream_resp *r = userdata;
    size_t len = size * nmemb, name_len;
    const char *colon, *v, *end;
    const char *relayed = NULL;

    /* A new status line (100 Continue, say) starts a new set of headers. */
    if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        upstream_headers_clear(r);
        return len;
    }
    colon = memchr(line, ':', len);
    if (!colon)
        return len;
    name_len = (size_t)(colon - line);
    for (size_t i = 0; i < sizeof(relayed_headers) / sizeof(relayed_headers[0]); i++) {
        if (strlen(relayed_headers[i]) == name_len &&
            strncasecmp(line, relayed_headers[i], name_len) == 0)
            relayed = relayed_headers[i];
    }
    if (!relayed || r->nheaders >= MAX_UPSTREAM_HEADERS)
        return len;
    v = colon + 1;
    end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if ((size_t)(end - v) > MAX_HEADER_VALUE)
        return len;
    r->headers[r->nheaders].name = strdup(relayed);
    r->headers[r->nheaders].value = strndup(v, (size_t)(end - v));
    if (!r->headers[r->nheaders].name || !r->headers[r->nheaders].value) {
        free(r->headers[r->nheaders].name);
        free(r->headers[r->nheaders].value);
        return 0;
    }
    r->nheaders++;
    return len;
}

/* Adds "Name: value" or, when VALUE is NULL, "Name:" (which makes curl drop its default). */
static int add_header(struct curl_slist **list, const char *name, const char *value)
{
    char line[MAX_HEADER_VALUE + 64];
    struct curl_slist *grown;

    if (value && (strchr(value, '\r') || strchr(value, '\n')))
        return -EINVAL;
    if (value)
        snprintf(line, sizeof(line), "%s: %s", name, value);
    else
        snprintf(line, sizeof(line), "%s:", name);
    grown = curl_slist_append(*list, line);
    if (!grown)
        return -ENOMEM;
    *list = grown;
    return 0;
}

/*
 * Sends METHOD URL to Pebble with HOST as the Host header, the client's Content-Type/Accept
 * (NULL: none at all, not curl's defaults) and BODY. Fills OUT (free with upstream_resp_free).
 * Returns 0 when Pebble answered (whatever the status), -EIO otherwise.
 */
static int upstream_request(const struct shim *s, const char *method, const char *url,
                            const char *host, const char *ctype, const char *accept,
                            const char *user_agent, const char *body, size_t body_len,
                            struct upstream_resp *out)
{
    struct curl_slist *headers = NULL;
    char err[CURL_ERROR_SIZE] = "";
    CURLcode cc;
    CURL *c;
    int rc = -EIO;

    memset(out, 0, sizeof(*out));
    c = curl_easy_init();
    if (!c)
        return -ENOMEM;
    if (add_header(&headers, "Host", host) || add_header(&headers, "Content-Type", ctype) ||
        add_header(&headers, "Accept", accept) || add_header(&headers, "Expect", NULL) ||
        (user_agent && add_header(&headers, "User-Agent", user_agent)))
        goto out;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
#endif
    /* HTTP/1.1 so the Host header reaches Pebble as is (no :authority translation). */
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, UPSTREAM_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, UPSTREAM_CONNECT_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_CAINFO, s->upstream_ca);
    curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_upstream_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_upstream_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else {
        if (strcmp(method, "POST") == 0 || body_len > 0) {
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        }
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        logmsg("upstream %s %s failed: %s%s", method, url, err[0] ? err : curl_easy_strerror(cc),
               out->too_big ? " (response too large)" : "");
        upstream_resp_free(out);
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    rc = 0;
out:
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    return rc;
}

/* Upstream base + PATH (percent-encoded where needed) + the request's query arguments. */
struct query_ctx {
    CURLU *u;
    bool failed;
};

static enum MHD_Result add_query_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    struct query_ctx *q = cls;
    char *kv;
    size_t n = strlen(key) + (value ? strlen(value) + 1 : 0) + 1;

    if (n > MAX_PATH_LEN) {
        q->failed = true;
        return MHD_NO;
    }
    kv = malloc(n);
    if (!kv) {
        q->failed = true;
        return MHD_NO;
    }
    if (value)
        snprintf(kv, n, "%s=%s", key, value);
    else
        snprintf(kv, n, "%s", key);
    if (curl_url_set(q->u, CURLUPART_QUERY, kv, CURLU_APPENDQUERY | CURLU_URLENCODE) != CURLUE_OK)
        q->failed = true;
    free(kv);
    return q->failed ? MHD_NO : MHD_YES;
}

static char *upstream_url(const struct shim *s, struct MHD_Connection *conn, const char *path)
{
    struct query_ctx q = {0};
    char *url = NULL, *tmp = NULL;

    if (strlen(path) > MAX_PATH_LEN || path[0] != '/')
        return NULL;
    q.u = curl_url();
    if (!q.u)
        return NULL;
    if (curl_url_set(q.u, CURLUPART_URL, s->upstream, 0) != CURLUE_OK ||
        curl_url_set(q.u, CURLUPART_PATH, path, CURLU_URLENCODE) != CURLUE_OK)
        goto out;
    if (conn)
        MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, add_query_arg, &q);
    if (q.failed || curl_url_get(q.u, CURLUPART_URL, &tmp, 0) != CURLUE_OK)
        goto out;
    url = strdup(tmp);
out:
    curl_free(tmp);
    curl_url_cleanup(q.u);
    return url;
}

/* The path of an absolute URL, into OUT. Returns 0 or -EINVAL. */
static int url_path(const char *url, char *out, size_t outsz)
{
    CURLU *u = curl_url();
    char *path = NULL;
    int rc = -EINVAL;

    if (!u)
        return -ENOMEM;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK && strlen(path) < outsz) {
        snprintf(out, outsz, "%s", path);
        rc = 0;
    }
    curl_free(path);
    curl_url_cleanup(u);
    return rc;
}

/* Learns newOrder's and newNonce's paths from Pebble's directory (Pebble names them *-plz). */
static int learn_directory(struct shim *s)
{
    struct upstream_resp r;
    char *url = upstream_url(s, NULL, "/dir");
    json_t *dir = NULL;
    const char *no, *nn;
    int rc = -EIO;

    if (!url)
        return -ENOMEM;
    if (upstream_request(s, "GET", url, s->listen_authority, NULL, "application/json", NULL, NULL,
                         0, &r) != 0)
        goto out;
    if (r.status != 200 || !(dir = json_loadb(r.body ? r.body : "", r.len, 0, NULL))) {
        logmsg("upstream directory %s: status %ld, not a JSON directory", url, r.status);
        goto out;
    }
    no = json_string_value(json_object_get(dir, "newOrder"));
    nn = json_string_value(json_object_get(dir, "newNonce"));
    if (!no || !nn || url_path(no, s->new_order_path, sizeof(s->new_order_path)) != 0 ||
        url_path(nn, s->new_nonce_path, sizeof(s->new_nonce_path)) != 0) {
        logmsg("upstream directory has no usable newOrder/newNonce");
        goto out;
    }
    rc = 0;
out:
    json_decref(dir);
    upstream_resp_free(&r);
    free(url);
    return rc;
}

/* --- responses -------------------------------------------------------------------------------- */

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, const char *ctype,
                               const char *body, size_t len, const struct upstream_resp *up,
                               bool skip_up_ctype)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    resp = MHD_create_response_from_buffer(len, (void *)(body ? body : ""), MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    if (up) {
        for (size_t i = 0; i < up->nheaders; i++) {
            if (skip_up_ctype && strcasecmp(up->headers[i].name, "Content-Type") == 0)
                continue;
            MHD_add_response_header(resp, up->headers[i].name, up->headers[i].value);
        }
    }
    if (ctype)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result respond_json(struct MHD_Connection *conn, unsigned status, json_t *doc,
                                    const char *ctype)
{
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
    enum MHD_Result ret;

    if (!text)
        return MHD_NO;
    ret =
        respond(conn, status, ctype ? ctype : "application/json", text, strlen(text), NULL, false);
    free(text);
    return ret;
}

/*
 * An ACME problem document (RFC 8555 §6.7) with a fresh Replay-Nonce from Pebble (§6.5: a
 * client retrying after an error needs one) and the index link (§7.1).
 */
static enum MHD_Result respond_acme_problem(const struct shim *s, struct MHD_Connection *conn,
                                            const char *host, unsigned status, const char *type,
                                            const char *detail)
{
    struct upstream_resp nonce = {0};
    struct MHD_Response *resp = NULL;
    json_t *doc =
        json_pack("{s:s, s:s, s:i}", "type", type, "detail", detail, "status", (int)status);
    char *text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
    char *url = upstream_url(s, NULL, s->new_nonce_path);
    char link[MAX_HOST + 64];
    const char *n = NULL;
    enum MHD_Result ret = MHD_NO;

    if (!text || !url)
        goto out;
    if (upstream_request(s, "HEAD", url, host, NULL, NULL, NULL, NULL, 0, &nonce) == 0)
        n = upstream_header(&nonce, "Replay-Nonce");
    resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        goto out;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/problem+json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (n)
        MHD_add_response_header(resp, "Replay-Nonce", n);
    else
        logmsg("no fresh nonce from Pebble for a %u problem", status);
    snprintf(link, sizeof(link), "<https://%s/dir>;rel=\"index\"", host);
    MHD_add_response_header(resp, "Link", link);
    ret = MHD_queue_response(conn, status, resp);
out:
    if (resp)
        MHD_destroy_response(resp);
    upstream_resp_free(&nonce);
    free(url);
    free(text);
    json_decref(doc);
    return ret;
}

/* A problem on the shim's own account (bad Host, oversized body, Pebble unreachable). */
static enum MHD_Result respond_plain_problem(struct MHD_Connection *conn, unsigned status,
                                             const char *type, const char *detail)
{
    json_t *doc =
        json_pack("{s:s, s:s, s:i}", "type", type, "detail", detail, "status", (int)status);
    enum MHD_Result ret;

    if (!doc)
        return MHD_NO;
    ret = respond_json(conn, status, doc, "application/problem+json");
    json_decref(doc);
    return ret;
}

static enum MHD_Result relay(struct MHD_Connection *conn, const struct upstream_resp *up)
{
    return respond(conn, (unsigned)up->status, NULL, up->body, up->len, up, false);
}

/* --- ACME side -------------------------------------------------------------------------------- */

/* The Host the client used: Pebble's URLs are built from it, so it is what we forward. */
static const char *client_host(const struct shim *s, struct MHD_Connection *conn)
{
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    return h ? h : s->listen_authority;
}

static enum MHD_Result forward(struct shim *s, struct MHD_Connection *conn, const char *method,
                               const char *path, const char *host, const struct req *r)
{
    struct upstream_resp up;
    char *url = upstream_url(s, conn, path);
    enum MHD_Result ret;

    if (!url)
        return respond_plain_problem(conn, 400, "urn:ietf:params:acme:error:malformed",
                                     "unusable request path");
    if (upstream_request(
            s, method, url, host,
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE),
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT),
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_USER_AGENT), r->body,
            r->len, &up) != 0) {
        free(url);
        return respond_plain_problem(conn, 502, "urn:ietf:params:acme:error:serverInternal",
                                     "acme_shim: Pebble did not answer");
    }
    ret = relay(conn, &up);
    upstream_resp_free(&up);
    free(url);
    return ret;
}

/* RFC 9773 §3 "renewalInfo" and draft-ietf-acme-profiles meta.profiles on Pebble's directory. */
static enum MHD_Result handle_directory(struct shim *s, struct MHD_Connection *conn,
                                        const char *host, const struct req *r)
{
    struct upstream_resp up;
    char *url = upstream_url(s, NULL, "/dir");
    char ri[MAX_HOST + 32];
    json_t *dir = NULL, *meta;
    char *text = NULL;
    enum MHD_Result ret;

    if (!url)
        return MHD_NO;
    /* Always a GET upstream: for HEAD, MHD sends our headers (Content-Length included) and
     * drops the body. */
    if (upstream_request(
            s, "GET", url, host, NULL,
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT),
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_USER_AGENT), NULL, 0,
            &up) != 0) {
        free(url);
        return respond_plain_problem(conn, 502, "urn:ietf:params:acme:error:serverInternal",
                                     "acme_shim: Pebble did not answer");
    }
    if (up.status != 200 || !(dir = json_loadb(up.body ? up.body : "", up.len, 0, NULL)) ||
        !json_is_object(dir)) {
        ret = relay(conn, &up);
        goto out;
    }
    pthread_mutex_lock(&s->lock);
    if (s->ari) {
        snprintf(ri, sizeof(ri), "https://%s/renewal-info", host);
        json_object_set_new(dir, "renewalInfo", json_string(ri));
    }
    if (s->profiles) {
        meta = json_object_get(dir, "meta");
        if (!json_is_object(meta)) {
            meta = json_object();
            json_object_set_new(dir, "meta", meta);
        }
        json_object_set_new(meta, "profiles", json_deep_copy(s->profiles));
    }
    pthread_mutex_unlock(&s->lock);
    text = json_dumps(dir, JSON_INDENT(3));
    if (!text) {
        ret = MHD_NO;
        goto out;
    }
    ret = respond(conn, 200, NULL, text, strlen(text), &up, false);
out:
    free(text);
    json_decref(dir);
    upstream_resp_free(&up);
    free(url);
    return ret;
}

/* The window for CERT_ID as an RFC 9773 §4.2 response body, or NULL when none is configured. */
static json_t *renewal_info_locked(const struct shim *s, const char *cert_id, const char *host)
{
    json_t *w = json_object_get(s->windows, cert_id);
    char start[32], end[32], expl[MAX_HOST + 64];
    const char *explanation;
    long long now = (long long)time(NULL);
    json_t *v;

    if (!w)
        w = s->default_window;
    if (!w)
        return NULL;
    if ((v = json_object_get(w, "start_in")))
        format_rfc3339(now + json_integer_value(v), start, sizeof(start));
    else
        snprintf(start, sizeof(start), "%s", json_string_value(json_object_get(w, "start")));
    if ((v = json_object_get(w, "end_in")))
        format_rfc3339(now + json_integer_value(v), end, sizeof(end));
    else
        snprintf(end, sizeof(end), "%s", json_string_value(json_object_get(w, "end")));
    explanation = json_string_value(json_object_get(w, "explanationURL"));
    if (!explanation)
        explanation = json_string_value(s->explanation_url);
    if (!explanation) {
        snprintf(expl, sizeof(expl), "https://%s/ari-explanation", host);
        explanation = expl;
    }
    return json_pack("{s:{s:s, s:s}, s:s}", "suggestedWindow", "start", start, "end", end,
                     "explanationURL", explanation);
}

static void record_locked(struct shim *s, json_t *list, json_t *entry)
{
    if (json_array_size(list) < MAX_SEEN)
        json_array_append(list, entry);
    else
        s->seen_dropped++;
}

/* RFC 9773 §4.2: GET {renewalInfo}/{certID}. */
static enum MHD_Result handle_renewal_info(struct shim *s, struct MHD_Connection *conn,
                                           const char *cert_id, const char *host)
{
    struct MHD_Response *resp;
    json_t *body = NULL, *id;
    char *text = NULL, ra[32] = "";
    bool ari;
    enum MHD_Result ret;

    if (strlen(cert_id) > MAX_CERT_ID)
        return respond_plain_problem(conn, 400, "urn:ietf:params:acme:error:malformed",
                                     "certID too long");
    id = json_string(cert_id);
    pthread_mutex_lock(&s->lock);
    if (id) /* recorded before validation, so a test sees exactly what the client sent */
        record_locked(s, s->seen_renewal_info, id);
    ari = s->ari;
    if (ari && cert_id_valid(cert_id)) {
        body = renewal_info_locked(s, cert_id, host);
        if (s->retry_after >= 0)
            snprintf(ra, sizeof(ra), "%lld", s->retry_after);
    }
    pthread_mutex_unlock(&s->lock);
    json_decref(id);

    if (!ari)
        return respond_plain_problem(conn, 404, "urn:ietf:params:acme:error:malformed",
                                     "this CA has no renewal information");
    if (!cert_id_valid(cert_id))
        return respond_plain_problem(conn, 400, "urn:ietf:params:acme:error:malformed",
                                     "certID is not base64url(AKI).base64url(serial)");
    if (!body)
        return respond_plain_problem(conn, 404, "urn:ietf:params:acme:error:malformed",
                                     "no renewal information for this certificate");
    text = json_dumps(body, JSON_INDENT(2));
    json_decref(body);
    if (!text)
        return MHD_NO;
    resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (ra[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    ret = MHD_queue_response(conn, 200, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* The newOrder payload of a flattened JWS (RFC 7515 §7.2.2), or NULL when it is not one. */
static json_t *jws_payload(const struct req *r)
{
    json_t *jws = json_loadb(r->body ? r->body : "", r->len, 0, NULL);
    const char *p = json_string_value(json_object_get(jws, "payload"));
    uint8_t *bytes = NULL;
    size_t n;
    json_t *payload = NULL;

    if (p && b64url_decode(p, strlen(p), &bytes, &n) == 0)
        payload = json_loadb((const char *)bytes, n, 0, NULL);
    if (!json_is_object(payload)) {
        json_decref(payload);
        payload = NULL;
    }
    free(bytes);
    json_decref(jws);
    return payload;
}

/* RFC 9773 §5 "replaces" and draft-ietf-acme-profiles "profile" in newOrder (RFC 8555 §7.4). */
static enum MHD_Result handle_new_order(struct shim *s, struct MHD_Connection *conn,
                                        const char *host, const struct req *r)
{
    json_t *payload = jws_payload(r);
    json_t *replaces = json_object_get(payload, "replaces");
    json_t *profile = json_object_get(payload, "profile");
    json_t *entry;
    size_t i;
    json_t *v;
    bool already = false, bad_profile = false;
    char detail[MAX_CERT_ID + 128];

    /* Copies, so /seen never shares (non-atomically refcounted) values with this request. */
    entry = json_pack("{s:o?, s:o?, s:o?}", "replaces", json_deep_copy(replaces), "profile",
                      json_deep_copy(profile), "identifiers",
                      json_deep_copy(json_object_get(payload, "identifiers")));
    pthread_mutex_lock(&s->lock);
    if (entry)
        record_locked(s, s->seen_orders, entry);
    if (json_is_string(replaces)) {
        json_array_foreach(s->already_replaced, i, v)
        {
            if (json_equal(v, replaces))
                already = true;
        }
    }
    /* A CA advertising no profiles ignores the field, as Pebble itself does. */
    if (profile && s->profiles)
        bad_profile =
            !json_is_string(profile) || !json_object_get(s->profiles, json_string_value(profile));
    pthread_mutex_unlock(&s->lock);
    json_decref(entry);

    if (already) {
        snprintf(detail, sizeof(detail), "certificate %s has already been replaced",
                 json_string_value(replaces));
        json_decref(payload);
        return respond_acme_problem(s, conn, host, 409,
                                    "urn:ietf:params:acme:error:alreadyReplaced", detail);
    }
    if (bad_profile) {
        snprintf(detail, sizeof(detail), "profile %.200s is not offered by this CA",
                 json_is_string(profile) ? json_string_value(profile) : "(not a string)");
        json_decref(payload);
        return respond_acme_problem(s, conn, host, 400, "urn:ietf:params:acme:error:invalidProfile",
                                    detail);
    }
    json_decref(payload);
    return forward(s, conn, "POST", s->new_order_path, host, r);
}

static enum MHD_Result acme_route(struct shim *s, struct MHD_Connection *conn, const char *url,
                                  const char *method, const struct req *r)
{
    static const char ri_prefix[] = "/renewal-info/";
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    const char *host = client_host(s, conn);

    if (!host_valid(host))
        return respond_plain_problem(conn, 400, "urn:ietf:params:acme:error:malformed",
                                     "unusable Host header");
    if (get && strcmp(url, "/dir") == 0)
        return handle_directory(s, conn, host, r);
    if (get && strncmp(url, ri_prefix, sizeof(ri_prefix) - 1) == 0)
        return handle_renewal_info(s, conn, url + sizeof(ri_prefix) - 1, host);
    if (strcmp(method, "POST") == 0 && strcmp(url, s->new_order_path) == 0)
        return handle_new_order(s, conn, host, r);
    return forward(s, conn, method, url, host, r);
}

/* --- control side ----------------------------------------------------------------------------- */

static bool relative_ok(json_t *v)
{
    return json_is_integer(v) && json_integer_value(v) >= -MAX_RELATIVE_S &&
           json_integer_value(v) <= MAX_RELATIVE_S;
}

/* A window: start xor start_in, end xor end_in, optional explanationURL. */
static bool window_valid(json_t *w, char *err, size_t errsz)
{
    const char *key;
    json_t *v;

    if (!json_is_object(w)) {
        snprintf(err, errsz, "a window must be an object");
        return false;
    }
    json_object_foreach(w, key, v)
    {
        bool ok;
        if (strcmp(key, "start") == 0 || strcmp(key, "end") == 0)
            ok = json_is_string(v) && json_string_length(v) < 31;
        else if (strcmp(key, "start_in") == 0 || strcmp(key, "end_in") == 0)
            ok = relative_ok(v);
        else if (strcmp(key, "explanationURL") == 0)
            ok = json_is_string(v) && json_string_length(v) < MAX_HEADER_VALUE;
        else
            ok = false;
        if (!ok) {
            snprintf(err, errsz, "window key %.64s: unknown or bad value", key);
            return false;
        }
    }
    if (!json_object_get(w, "start") == !json_object_get(w, "start_in") ||
        !json_object_get(w, "end") == !json_object_get(w, "end_in")) {
        snprintf(err, errsz, "a window needs exactly one of start/start_in and of end/end_in");
        return false;
    }
    return true;
}

/* Every key of a POST /config body checked before anything is applied. */
static bool config_valid(const struct shim *s, json_t *cfg, char *err, size_t errsz)
{
    const char *key, *id;
    json_t *v, *w;
    size_t i, new_windows = 0;

    if (!json_is_object(cfg)) {
        snprintf(err, errsz, "the config must be a JSON object");
        return false;
    }
    json_object_foreach(cfg, key, v)
    {
        if (strcmp(key, "ari") == 0) {
            if (!json_is_boolean(v))
                goto bad;
        } else if (strcmp(key, "profiles") == 0) {
            if (json_is_null(v))
                continue;
            if (!json_is_object(v) || json_object_size(v) > MAX_PROFILES)
                goto bad;
            json_object_foreach(v, id, w)
            {
                if (!json_is_string(w) || id[0] == '\0')
                    goto bad;
            }
        } else if (strcmp(key, "default_window") == 0) {
            if (!json_is_null(v) && !window_valid(v, err, errsz))
                return false;
        } else if (strcmp(key, "windows") == 0) {
            if (!json_is_object(v))
                goto bad;
            json_object_foreach(v, id, w)
            {
                if (strlen(id) > MAX_CERT_ID || (!json_is_null(w) && !window_valid(w, err, errsz)))
                    goto bad;
                if (!json_is_null(w) && !json_object_get(s->windows, id))
                    new_windows++;
            }
            if (json_object_size(s->windows) + new_windows > MAX_WINDOWS)
                goto bad;
        } else if (strcmp(key, "retry_after") == 0) {
            if (!json_is_null(v) && !(relative_ok(v) && json_integer_value(v) >= 0))
                goto bad;
        } else if (strcmp(key, "already_replaced") == 0) {
            if (!json_is_array(v) || json_array_size(v) > MAX_REPLACED)
                goto bad;
            json_array_foreach(v, i, w)
            {
                if (!json_is_string(w) || json_string_length(w) > MAX_CERT_ID)
                    goto bad;
            }
        } else if (strcmp(key, "explanation_url") == 0) {
            if (!json_is_null(v) && !(json_is_string(v) && json_string_length(v) < 1024))
                goto bad;
        } else {
            snprintf(err, errsz, "unknown config key %.64s", key);
            return false;
        }
    }
    return true;
bad:
    if (!err[0])
        snprintf(err, errsz, "bad value for config key %.64s", key);
    return false;
}

static void set_or_clear(json_t **slot, json_t *v)
{
    json_decref(*slot);
    *slot = json_is_null(v) ? NULL : json_deep_copy(v);
}

static void config_apply_locked(struct shim *s, json_t *cfg)
{
    const char *key, *id;
    json_t *v, *w;

    json_object_foreach(cfg, key, v)
    {
        if (strcmp(key, "ari") == 0) {
            s->ari = json_is_true(v);
        } else if (strcmp(key, "profiles") == 0) {
            set_or_clear(&s->profiles, v);
        } else if (strcmp(key, "default_window") == 0) {
            set_or_clear(&s->default_window, v);
        } else if (strcmp(key, "windows") == 0) {
            /* Merged per certID; null removes one. */
            json_object_foreach(v, id, w)
            {
                if (json_is_null(w))
                    json_object_del(s->windows, id);
                else
                    json_object_set_new(s->windows, id, json_deep_copy(w));
            }
        } else if (strcmp(key, "retry_after") == 0) {
            s->retry_after = json_is_null(v) ? -1 : json_integer_value(v);
        } else if (strcmp(key, "already_replaced") == 0) {
            json_decref(s->already_replaced);
            s->already_replaced = json_deep_copy(v);
        } else if (strcmp(key, "explanation_url") == 0) {
            set_or_clear(&s->explanation_url, v);
        }
    }
}

/* Deep copies: the document is serialised after the lock is released. */
static json_t *config_dump_locked(const struct shim *s)
{
    return json_pack("{s:b, s:o?, s:o?, s:o, s:o?, s:o, s:o?}", "ari", s->ari, "profiles",
                     json_deep_copy(s->profiles), "default_window",
                     json_deep_copy(s->default_window), "windows", json_deep_copy(s->windows),
                     "retry_after", s->retry_after >= 0 ? json_integer(s->retry_after) : NULL,
                     "already_replaced", json_deep_copy(s->already_replaced), "explanation_url",
                     json_deep_copy(s->explanation_url));
}

static enum MHD_Result ctl_route(struct shim *s, struct MHD_Connection *conn, const char *url,
                                 const char *method, const struct req *r)
{
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    char err[256] = "";
    json_t *doc = NULL, *cfg;
    json_error_t jerr;
    enum MHD_Result ret;

    if (strcmp(url, "/config") == 0 && post) {
        cfg = json_loadb(r->body ? r->body : "", r->len, JSON_REJECT_DUPLICATES, &jerr);
        if (!cfg)
            snprintf(err, sizeof(err), "not JSON: %s", jerr.text);
        pthread_mutex_lock(&s->lock);
        if (cfg && config_valid(s, cfg, err, sizeof(err))) {
            config_apply_locked(s, cfg);
            doc = config_dump_locked(s);
        }
        pthread_mutex_unlock(&s->lock);
        json_decref(cfg);
        if (!doc)
            return respond_plain_problem(conn, 400, "about:blank", err);
    } else if (strcmp(url, "/config") == 0 && get) {
        pthread_mutex_lock(&s->lock);
        doc = config_dump_locked(s);
        pthread_mutex_unlock(&s->lock);
    } else if (strcmp(url, "/seen") == 0 && get) {
        pthread_mutex_lock(&s->lock);
        doc = json_pack("{s:o, s:o, s:I}", "renewal_info", json_deep_copy(s->seen_renewal_info),
                        "orders", json_deep_copy(s->seen_orders), "dropped",
                        (json_int_t)s->seen_dropped);
        pthread_mutex_unlock(&s->lock);
    } else if (strcmp(url, "/reset") == 0 && post) {
        pthread_mutex_lock(&s->lock);
        json_array_clear(s->seen_renewal_info);
        json_array_clear(s->seen_orders);
        s->seen_dropped = 0;
        pthread_mutex_unlock(&s->lock);
        doc = json_object();
    } else if (strcmp(url, "/config") == 0 || strcmp(url, "/seen") == 0 ||
               strcmp(url, "/reset") == 0) {
        return respond_plain_problem(conn, 405, "about:blank", "method not allowed");
    } else {
        return respond_plain_problem(conn, 404, "about:blank", "no such control endpoint");
    }
    if (!doc)
        return MHD_NO;
    ret = respond_json(conn, 200, doc, NULL);
    json_decref(doc);
    return ret;
}

/* --- MHD plumbing ----------------------------------------------------------------------------- */

struct server {
    struct shim *shim;
    bool control;
};

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct server *srv = cls;
    size_t cap = srv->control ? MAX_CTL_BODY : MAX_ACME_BODY;
    struct req *r = *con_cls;
    enum MHD_Result ret;

    if (!r) {
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        char *end;
        unsigned long long n;

        r = calloc(1, sizeof(*r));
        if (!r)
            return MHD_NO;
        *con_cls = r;
        if (cl) {
            errno = 0;
            n = strtoull(cl, &end, 10);
            if (errno || end == cl || *end || n > cap) {
                r->too_big = true;
                return respond_plain_problem(conn, 413, "about:blank", "request body too large");
            }
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        /* Chunked bodies have no Content-Length: cap while reading, answer once at the end. */
        if (!r->too_big && *upload_data_size <= cap - r->len) {
            char *grown = realloc(r->body, r->len + *upload_data_size + 1);
            if (!grown)
                return MHD_NO;
            memcpy(grown + r->len, upload_data, *upload_data_size);
            r->body = grown;
            r->len += *upload_data_size;
            r->body[r->len] = '\0';
        } else {
            r->too_big = true;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->too_big)
        return respond_plain_problem(conn, 413, "about:blank", "request body too large");
    if (srv->control)
        ret = ctl_route(srv->shim, conn, url, method, r);
    else
        ret = acme_route(srv->shim, conn, url, method, r);
    logmsg("%s %s %s", srv->control ? "control" : "acme", method, url);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct req *r = *con_cls;
    if (!r)
        return;
    free(r->body);
    free(r);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[512];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    buf[strcspn(buf, "\n")] = '\0';
    logmsg("mhd: %s", buf);
}

static void shim_free(struct shim *s)
{
    json_decref(s->profiles);
    json_decref(s->default_window);
    json_decref(s->windows);
    json_decref(s->already_replaced);
    json_decref(s->explanation_url);
    json_decref(s->seen_renewal_info);
    json_decref(s->seen_orders);
    pthread_mutex_destroy(&s->lock);
}

static int shim_init(struct shim *s)
{
    memset(s, 0, sizeof(*s));
    /* The static initialiser cannot fail, so shim_free may always destroy the mutex. */
    s->lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
    s->ari = true;
    s->retry_after = -1;
    s->profiles = json_pack("{s:s, s:s}", "classic", "the default profile", "shortlived",
                            "6-day certificates");
    s->windows = json_object();
    s->already_replaced = json_array();
    s->seen_renewal_info = json_array();
    s->seen_orders = json_array();
    if (!s->profiles || !s->windows || !s->already_replaced || !s->seen_renewal_info ||
        !s->seen_orders)
        return -ENOMEM;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: acme_shim --listen 127.0.0.1:PORT --control 127.0.0.1:PORT\n"
               "                 --upstream https://127.0.0.1:PORT --upstream-ca FILE\n"
               "                 --cert FILE --key FILE\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},   {"control", required_argument, NULL, 'c'},
        {"upstream", required_argument, NULL, 'u'}, {"upstream-ca", required_argument, NULL, 'a'},
        {"cert", required_argument, NULL, 'C'},     {"key", required_argument, NULL, 'K'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    const char *listen_addr = NULL, *control_addr = NULL, *upstream = NULL, *upstream_ca = NULL,
               *cert_file = NULL, *key_file = NULL;
    struct shim shim;
    struct server acme_srv = {&shim, false}, ctl_srv = {&shim, true};
    struct MHD_Daemon *acme_d = NULL, *ctl_d = NULL;
    char *cert = NULL, *key = NULL;
    size_t cert_len = 0, key_len = 0, n;
    int acme_fd = -1, ctl_fd = -1, fam_acme = AF_INET, fam_ctl = AF_INET, opt, sig, rc = 1;
    bool shim_ok = false, curl_ok = false;
    sigset_t sigs;

    memset(&shim, 0, sizeof(shim));
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 'l':
            listen_addr = optarg;
            break;
        case 'c':
            control_addr = optarg;
            break;
        case 'u':
            upstream = optarg;
            break;
        case 'a':
            upstream_ca = optarg;
            break;
        case 'C':
            cert_file = optarg;
            break;
        case 'K':
            key_file = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 1;
        }
    }
    if (optind != argc || !listen_addr || !control_addr || !upstream || !upstream_ca ||
        !cert_file || !key_file) {
        usage(stderr);
        return 1;
    }
    shim_ok = true; /* shim_free copes with a half-initialised shim */
    if (shim_init(&shim) != 0) {
        logmsg("out of memory");
        goto out;
    }
    shim.upstream_ca = upstream_ca;
    n = strlen(upstream);
    while (n > 0 && upstream[n - 1] == '/')
        n--;
    if (n == 0 || n >= sizeof(shim.upstream) ||
        strlen(listen_addr) >= sizeof(shim.listen_authority)) {
        logmsg("upstream URL or listen address too long");
        goto out;
    }
    memcpy(shim.upstream, upstream, n);
    shim.upstream[n] = '\0';
    snprintf(shim.listen_authority, sizeof(shim.listen_authority), "%s", listen_addr);

    cert = read_pem(cert_file, &cert_len);
    key = read_pem(key_file, &key_len);
    if (!cert || !key) {
        logmsg("cannot read %s or %s", cert_file, key_file);
        goto out;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        logmsg("curl_global_init failed");
        goto out;
    }
    curl_ok = true;
    if (learn_directory(&shim) != 0)
        goto out;

    /* Threads MHD starts inherit this mask, so only sigwait() below sees the signals. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    acme_fd = listen_on(listen_addr, &fam_acme);
    ctl_fd = listen_on(control_addr, &fam_ctl);
    if (acme_fd < 0 || ctl_fd < 0) {
        int e = acme_fd < 0 ? acme_fd : ctl_fd;
        logmsg("cannot listen on %s: %s", acme_fd < 0 ? listen_addr : control_addr,
               e == -EPERM ? "not a loopback address" : strerror(-e));
        if (e == -EADDRINUSE)
            rc = EXIT_ADDR_IN_USE;
        goto out;
    }
    acme_d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_TLS |
            MHD_USE_ERROR_LOG | (fam_acme == AF_INET6 ? MHD_USE_IPv6 : 0),
        0, accept_loopback, NULL, on_request, &acme_srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_LISTEN_SOCKET, acme_fd, MHD_OPTION_HTTPS_MEM_CERT, cert,
        MHD_OPTION_HTTPS_MEM_KEY, key, MHD_OPTION_CONNECTION_LIMIT, CONNECTION_LIMIT,
        MHD_OPTION_CONNECTION_TIMEOUT, CONNECTION_TIMEOUT_S, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, NULL, MHD_OPTION_END);
    if (!acme_d) {
        logmsg("cannot start the HTTPS server");
        goto out;
    }
    acme_fd = -1; /* MHD closes it */
    ctl_d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                                 MHD_USE_ERROR_LOG | (fam_ctl == AF_INET6 ? MHD_USE_IPv6 : 0),
                             0, accept_loopback, NULL, on_request, &ctl_srv,
                             MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET,
                             ctl_fd, MHD_OPTION_CONNECTION_LIMIT, CONNECTION_LIMIT,
                             MHD_OPTION_CONNECTION_TIMEOUT, CONNECTION_TIMEOUT_S,
                             MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    if (!ctl_d) {
        logmsg("cannot start the control server");
        goto out;
    }
    ctl_fd = -1;
    logmsg("ready: https://%s -> %s (newOrder %s), control http://%s", listen_addr, shim.upstream,
           shim.new_order_path, control_addr);

    for (;;) {
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig != SIGHUP)
            break;
    }
    logmsg("signal %d, stopping", sig);
    rc = 0;
out:
    if (acme_d)
        MHD_stop_daemon(acme_d);
    if (ctl_d)
        MHD_stop_daemon(ctl_d);
    if (acme_fd >= 0)
        close(acme_fd);
    if (ctl_fd >= 0)
        close(ctl_fd);
    if (key) {
        explicit_bzero(key, key_len);
        free(key);
    }
    free(cert);
    if (curl_ok)
        curl_global_cleanup();
    if (shim_ok)
        shim_free(&shim);
    return rc;
}
