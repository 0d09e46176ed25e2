/* One API call as the commands see it: send, and turn every failure into a message on stderr
 * plus the exit code certctl returns for it. */
#ifndef CERTCTL_API_H
#define CERTCTL_API_H

#include <jansson.h>

#include "certctl.h"
#include "http.h"

/*
 * Sends METHOD PATH with BODY (or NULL). On a 2xx answer returns CERTCTL_EXIT_OK with *OUT the
 * response's JSON (a new reference, NULL when the answer had no body) when OUT is not NULL.
 * Otherwise prints "certctl: <why>" (the problem document's description for an HTTP error) and
 * returns CERTCTL_EXIT_UNREACHABLE when the daemon could not be reached, else
 * CERTCTL_EXIT_FAILED.
 */
int api_call(struct certctl *ctx, const char *method, const char *path, const json_t *body,
             json_t **out);

/* Like api_call, but a 2xx answer without a JSON object is a failure too. */
int api_call_object(struct certctl *ctx, const char *method, const char *path, const json_t *body,
                    json_t **out);

/*
 * Like api_call for answers that are not JSON (PEM): on a 2xx answer with a body returns
 * CERTCTL_EXIT_OK with *RESP filled (the caller clears it; the body is wiped then, so it may
 * hold a private key). Otherwise reports, leaves *RESP cleared and returns the exit code; an
 * empty 2xx body is a failure.
 */
int api_call_raw(struct certctl *ctx, const char *method, const char *path,
                 struct http_response *resp);

/*
 * One poll of a --wait loop: GET PATH, the whole request limited to TIMEOUT_MS (> 0). Like
 * api_call_object, except that running out of time returns CERTCTL_EXIT_TIMEOUT without a
 * message, so the caller can report the wait's timeout in its own words.
 */
int api_poll_object(struct certctl *ctx, const char *path, long timeout_ms, json_t **out);

/* GET PATH for something optional (extra detail for a message): like api_call_object but
 * reports nothing; any failure is just an exit code other than CERTCTL_EXIT_OK. */
int api_get_quiet(struct certctl *ctx, const char *path, json_t **out);

/*
 * Returns the malloc'd path "/v1/domains/<NAME><SUFFIX>" with NAME normalised as the daemon would
 * (lower case, IDNs as A-labels) when it is a valid name, as given otherwise (the daemon is the
 * authority and says what is wrong), and percent-encoded (so "*.example.com" works). SUFFIX
 * ("/history", "?purge=true") is appended verbatim. NULL on allocation failure (reported).
 */
char *api_domain_path(struct certctl *ctx, const char *name, const char *suffix);

#endif
