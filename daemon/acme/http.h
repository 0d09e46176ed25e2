/* Outbound HTTPS for ACME, on libcurl: one request per call, connections and TLS sessions shared
 * between calls and threads, every response capped. */
#ifndef CERTD_ACME_HTTP_H
#define CERTD_ACME_HTTP_H

#include <stddef.h>
#include <stdint.h>

/* Largest body accepted from a CA: a certificate chain or a directory is a few KiB. */
#define ACME_HTTP_MAX_BODY (1024 * 1024)
#define ACME_HTTP_MAX_LINKS 8

struct acme_http;

struct acme_http_response {
    long status;
    char *body;               /* NUL-terminated, NULL when empty */
    size_t body_len;
    char *content_type;       /* without parameters, lower case; NULL if absent */
    char *location;
    char *replay_nonce;
    int64_t retry_after;      /* seconds from now; -1 when absent */
    char *link_alternate[ACME_HTTP_MAX_LINKS]; /* Link: <...>;rel="alternate" (RFC 8555 §7.4.2) */
    size_t link_alternate_count;
    char *link_up;            /* Link: <...>;rel="up" */
};

/* CA_BUNDLE: PEM file to trust for the CA's HTTPS, NULL for the system store. */
int acme_http_new(const char *ca_bundle, struct acme_http **out);
void acme_http_free(struct acme_http *h);

/*
 * Sends METHOD ("GET", "HEAD" or "POST") to URL with BODY (POST only, as CONTENT_TYPE) and ACCEPT
 * (NULL for none). Fills *RESP (free with acme_http_response_free) whatever the status. Returns 0
 * when a response arrived, -EIO with a reason in ERR when none did (connection, TLS, timeout, a
 * body over ACME_HTTP_MAX_BODY).
 */
int acme_http_request(struct acme_http *h, const char *method, const char *url,
                      const char *content_type, const char *body, size_t body_len,
                      const char *accept, struct acme_http_response *resp, char *err,
                      size_t errsz);
void acme_http_response_free(struct acme_http_response *resp);

/*
 * Parses a Retry-After value (RFC 9110 §10.2.3): delta-seconds or an HTTP-date, relative to
 * NOW. Returns seconds from NOW (0 for a date in the past), or -1 when VALUE is neither.
 */
int64_t acme_parse_retry_after(const char *value, int64_t now);

/*
 * Parses one Link header value (RFC 8288), which may hold several links, and calls back for each
 * <URI> with its rel. Returns the number of links seen.
 */
typedef void (*acme_link_fn)(void *ctx, const char *uri, const char *rel);
int acme_parse_link(const char *value, acme_link_fn fn, void *ctx);

#endif
