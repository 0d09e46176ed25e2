/* certctl's transport: one HTTP request at a time to the certd API with libcurl. Today that is
 * plain HTTP over the daemon's unix socket; an HTTPS listener (--url, --token-file, --ca-file)
 * will be chosen here too, so no command knows how its requests travel. */
#ifndef CERTCTL_HTTP_H
#define CERTCTL_HTTP_H

#include <jansson.h>
#include <stddef.h>

/* Responses larger than this are refused: no list page or document legitimately comes close. */
#define HTTP_MAX_RESPONSE (16u * 1024 * 1024)

struct http_config {
    const char *socket_path; /* the API's unix socket; must outlive the client */
    /* When URL is set ("https://certd.example.net:8443", no path), requests go there instead of
     * the socket, with "Authorization: Bearer TOKEN" when TOKEN is set and the server verified
     * against CA_FILE (else the system's roots). The client copies all three. */
    const char *url;
    const char *token;
    const char *ca_file;
};

struct http_client;

/* Returns 0 with *OUT set, or -ENOMEM. curl_global_init must have been called. */
int http_client_new(const struct http_config *cfg, struct http_client **out);
void http_client_free(struct http_client *c);

/* Limits each following request to TIMEOUT_MS in all (connecting included); 0 restores the
 * default, HTTP_TOTAL_TIMEOUT_S. --wait uses it so a hung daemon cannot outlast --timeout. */
void http_client_set_timeout(struct http_client *c, long timeout_ms);

struct http_response {
    long status;        /* HTTP status code */
    char *content_type; /* Content-Type as sent, or NULL */
    char *body;         /* raw body, NUL-terminated (NULL when empty) */
    size_t body_len;
    json_t *json; /* the parsed body when it was JSON (incl. problem+json), else NULL */
};

/* Frees what R holds and zeroes it; safe on a zeroed or already cleared response. The body is
 * wiped before it is freed, as it may be a private key; so are the buffers it grew through. */
void http_response_clear(struct http_response *r);

/*
 * Sends METHOD to PATH ("/v1/domains?limit=10", already percent-encoded) with BODY (a JSON object
 * sent as application/json, or NULL) and fills *RESP (which the caller clears) whatever the HTTP
 * status. Returns 0 when a response arrived, else with a one-line reason in ERR:
 *   -ECONNREFUSED  the daemon cannot be reached (no socket, refused, permission denied)
 *   -EMSGSIZE      the response is larger than HTTP_MAX_RESPONSE
 *   -EBADMSG       the response claims to be JSON but does not parse
 *   -ETIMEDOUT     no complete answer in time
 *   -ECANCELED     the cancel flag (http_client_set_cancel_flag) was raised
 *   -EIO           any other transport failure (e.g. the daemon closed the connection)
 *   -ENOMEM
 */
int http_request(struct http_client *c, const char *method, const char *path, const json_t *body,
                 struct http_response *resp, char *err, size_t errsz);

/*
 * From now on, requests in progress check *FLAG about once a second and stop with -ECANCELED
 * when it is non-zero (a signal handler sets it: a long-poll must not outlive SIGTERM). NULL
 * turns the check off.
 */
void http_client_set_cancel_flag(struct http_client *c, volatile int *flag);

/* Percent-encodes S for use as one URL path segment or query value (RFC 3986 §2.1: everything
 * but unreserved characters). Returns a malloc'd string, or NULL on allocation failure. */
char *http_escape(struct http_client *c, const char *s);

#endif
