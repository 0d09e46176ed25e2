/* Shared between the API's server, router and handlers. Not for other modules. */
#ifndef CERTD_API_INTERNAL_H
#define CERTD_API_INTERNAL_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <sys/types.h>

#include "api/api.h"
#include "common/problem.h"

/* Request bodies larger than this are refused with 413 before they are read in full. */
#define API_MAX_BODY (64 * 1024)

enum api_role {
    ROLE_NONE = 0,
    ROLE_READER,    /* later: certificates and state, never keys */
    ROLE_DEPLOYER,  /* later: certificates and keys within a scope */
    ROLE_ADMIN,
};

/* Who is calling, decided once per connection-request by api_auth_identify. */
struct api_caller {
    pid_t pid;
    uid_t uid;
    gid_t gid;
    enum api_role role;
    char actor[64];      /* "uid:1000(alice)", recorded as the actor of events */
    /* Names the caller may see: exact names or "*.suffix" (one label). NULL (count 0) means
     * unscoped: every domain. Socket callers are unscoped; tokens may be scoped. Owned by the
     * request. */
    char **scope;
    size_t scope_count;
};

struct store_domain;

/*
 * Whether CALLER may see a domain with NAMES (primary first): always when unscoped; otherwise
 * when one of the names equals a scope entry or is covered by a "*.suffix" entry (one label,
 * name_wildcard_matches). A domain outside the scope must answer 404, never 403, so names do
 * not leak. (auth.c)
 */
bool api_caller_sees(const struct api_caller *caller, const char *const *names, size_t count);
bool api_caller_sees_domain(const struct api_caller *caller, const struct store_domain *d);

struct api_request {
    struct MHD_Connection *conn;
    struct api_context *ctx;
    const struct config *config;   /* reference held for the request's life */
    struct api_caller caller;
    const char *method;
    const char *path;
    char *body;                    /* NUL-terminated, NULL when none */
    size_t body_len;
    bool body_too_large;
};

/* ---- auth.c ---- */

/* Fills CALLER from the connection's SO_PEERCRED and decides its role. -errno when the peer
 * cannot be identified (the request is then refused). */
int api_auth_identify(struct api_request *req, struct api_caller *caller);

/* ---- respond.c: each queues a response and returns what the access handler must return ---- */

enum MHD_Result api_respond_json(struct api_request *req, unsigned status, json_t *body);
/* Steals BODY, which may be NULL for an empty response. */
enum MHD_Result api_respond_json_steal(struct api_request *req, unsigned status, json_t *body,
                                       const char *location);
enum MHD_Result api_respond_empty(struct api_request *req, unsigned status);
enum MHD_Result api_respond_problem(struct api_request *req, enum problem_kind kind,
                                    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Problem with one extension member EXT_KEY = EXT_VALUE (string). */
enum MHD_Result api_respond_problem_ext(struct api_request *req, enum problem_kind kind,
                                        const char *ext_key, const char *ext_value,
                                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));
enum MHD_Result api_respond_problem_doc(struct api_request *req, json_t *problem);

/* ---- request helpers (server.c) ---- */

/* Parses the body as a JSON object. On failure responds (415/400) and returns NULL with *RC set. */
json_t *api_body_object(struct api_request *req, enum MHD_Result *rc);

/* Query parameters: answers 400 when the request carries one not in ALLOWED (NULL-terminated). */
bool api_query_check(struct api_request *req, const char *const *allowed, enum MHD_Result *rc);
const char *api_query(struct api_request *req, const char *key);
/* Parses an integer query parameter in [MIN, MAX]; absent gives DEF. false (response queued) on a
 * bad value. */
bool api_query_int(struct api_request *req, const char *key, long long min, long long max,
                   long long def, long long *out, enum MHD_Result *rc);
bool api_query_bool(struct api_request *req, const char *key, bool *out, enum MHD_Result *rc);

/* ---- handlers: one per route; PARAM is the decoded {name} path segment or NULL ---- */

typedef enum MHD_Result (*api_handler)(struct api_request *req, const char *param);

enum MHD_Result h_health(struct api_request *req, const char *param);
enum MHD_Result h_domains_list(struct api_request *req, const char *param);
enum MHD_Result h_domains_create(struct api_request *req, const char *param);
enum MHD_Result h_domain_get(struct api_request *req, const char *param);
enum MHD_Result h_domain_patch(struct api_request *req, const char *param);
enum MHD_Result h_domain_delete(struct api_request *req, const char *param);
enum MHD_Result h_domain_history(struct api_request *req, const char *param);
enum MHD_Result h_events_list(struct api_request *req, const char *param);
enum MHD_Result h_domain_renew(struct api_request *req, const char *param);
enum MHD_Result h_domain_certificate(struct api_request *req, const char *param);
enum MHD_Result h_domain_key(struct api_request *req, const char *param);
enum MHD_Result h_domain_order(struct api_request *req, const char *param);
enum MHD_Result h_challenge_http01(struct api_request *req, const char *param);
enum MHD_Result h_accounts_list(struct api_request *req, const char *param);
enum MHD_Result h_account_get(struct api_request *req, const char *param);
enum MHD_Result h_account_register(struct api_request *req, const char *param);
enum MHD_Result h_account_rollover(struct api_request *req, const char *param);
enum MHD_Result h_account_deactivate(struct api_request *req, const char *param);
enum MHD_Result h_certificate_revoke(struct api_request *req, const char *param);

/* ---- router.c ---- */

/* Finds the handler for METHOD and PATH; on no match responds 404 or 405 (with Allow). */
enum MHD_Result api_route(struct api_request *req);

#endif
