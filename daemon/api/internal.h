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
    ROLE_READER,    /* certificates and state, never keys */
    ROLE_DEPLOYER,  /* certificates and keys within a scope */
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
 * when every one of the names equals a scope entry or is covered by a "*.suffix" entry (one
 * label, name_wildcard_matches): a certificate answers for all its names, so a caller scoped to
 * some of them must not get it. A domain outside the scope must answer 404, never 403, so names
 * do not leak. (auth.c)
 */
bool api_caller_sees(const struct api_caller *caller, const char *const *names, size_t count);
bool api_caller_sees_domain(const struct api_caller *caller, const struct store_domain *d);

struct auth_limiter;

/* What the HTTPS listener adds to its requests (server.c); NULL on the unix socket. */
struct api_remote {
    struct auth_limiter *limiter;   /* failed authentications per client address */
    struct token_cache *tokens;     /* token rows read by earlier requests */
    bool verify_client_cert;        /* [api.https] client_ca: a verified certificate required */
};

/* A bound HTTPS socket and the PEM material read for it (https.c); api_server_start_https takes
 * the buffers over and wipes the key when the server stops. */
struct api_tls_listener {
    int fd;
    char listen[64];   /* as configured, for messages */
    char *cert_pem;
    char *key_pem;     /* secret */
    char *trust_pem;   /* client_ca, NULL when none */
};

struct api_request {
    struct MHD_Connection *conn;
    const struct api_remote *remote;  /* NULL on the unix socket */
    char peer[64];                    /* client address on the HTTPS listener, for logs */
    struct api_context *ctx;
    const struct config *config;   /* reference held for the request's life */
    struct api_caller caller;
    const char *method;
    const char *path;
    char *body;                    /* NUL-terminated, NULL when none */
    size_t body_len;
    bool body_too_large;
    struct api_feed *feed;           /* the server's change feed (h_events.c) */
    struct api_feed_wait *feed_wait; /* a long-poll's state across suspend/resume, or NULL */
};

/* ---- auth.c ---- */

/*
 * The one decision of who is calling and with which role and scope. On the unix socket: the
 * peer's uid/gid (SO_PEERCRED) mapped through [access] (root and the daemon's uid are admins),
 * unscoped; an Authorization header is ignored there. On the HTTPS listener: a token, as
 * "Authorization: Bearer TOKEN" or as the password of Basic authentication (what a client that
 * can only put credentials in its URL sends), whose row gives role and scope; with
 * [api.https] client_ca a verified client certificate as well.
 * Returns 0 with CALLER filled (role ROLE_NONE: a socket peer without a role, answered 403),
 * -EACCES when the HTTPS request carries no valid credentials (answer 401), -EPERM when the
 * required client certificate is missing or not trusted (403), -EAGAIN when the client address
 * failed too often lately (429), or another -errno when the peer cannot be identified at all
 * (drop the connection). Failures are logged with the client address and at most the token's
 * public id, never the token.
 */
int api_auth_identify(struct api_request *req, struct api_caller *caller);
/* Queues the answer to a refusal ERR of api_auth_identify (-EACCES, -EPERM or -EAGAIN). */
enum MHD_Result api_auth_refuse(struct api_request *req, int err);
/* Frees what api_auth_identify allocated in CALLER (its scope). */
void api_caller_clear(struct api_caller *caller);
/* "admin", "deployer", "reader" (as tokens name them), "none". */
const char *api_role_name(enum api_role role);

/* ---- respond.c: each queues a response and returns what the access handler must return ---- */

enum MHD_Result api_respond_json(struct api_request *req, unsigned status, json_t *body);
/* Steals BODY, which may be NULL for an empty response. */
/*
 * For answers carrying a secret (a new token, a private key): the body is sent from a copy that
 * is wiped once libmicrohttpd is done with it. api_response_wiped makes such a response of DATA;
 * api_respond_json_secret steals BODY, wipes jansson's copy of its SECRET_MEMBER string and the
 * dumped text, and queues the answer.
 */
struct MHD_Response *api_response_wiped(const char *data, size_t len);
enum MHD_Result api_respond_json_secret(struct api_request *req, unsigned status, json_t *body,
                                        const char *secret_member, const char *location);
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
enum MHD_Result h_tokens_list(struct api_request *req, const char *param);
enum MHD_Result h_tokens_create(struct api_request *req, const char *param);
enum MHD_Result h_token_revoke(struct api_request *req, const char *param);

/* ---- h_deliver.c: fleet delivery from the index (api/index.h) ---- */

enum MHD_Result h_domain_bundle(struct api_request *req, const char *param);
enum MHD_Result h_sni(struct api_request *req, const char *param);
/* True when an If-None-Match field of the request names ETAG (weak comparison) or is "*". */
bool api_if_none_match(struct api_request *req, const char *etag);
/* 304 with ETAG when api_if_none_match, else 200 with a copy of TEXT (wiped once sent, so it
 * may be a private key), CTYPE and ETAG. */
enum MHD_Result api_respond_tagged(struct api_request *req, const char *text, const char *ctype,
                                   const char *etag);

/* ---- h_events.c: the change feed behind GET /v1/events?wait= (long-polling) ---- */

struct api_feed;
struct api_feed_wait;

/* Starts the feed of a server: subscribes to CTX->events (without a bus, long-polls answer at
 * once) and starts the one thread that ends waits and, when PRUNE, deletes old events ([daemon]
 * events_retention) at start and hourly (one server per daemon should). 0 or a negative errno. */
int api_feed_start(struct api_context *ctx, bool prune, struct api_feed **out);
/* Resumes every waiting request (each then answers with what there is) and refuses new waits.
 * Call before MHD_stop_daemon, which must not find suspended connections. NULL-safe. */
void api_feed_shutdown(struct api_feed *feed);
/* Shuts down if not done yet, joins the thread, unsubscribes and frees. After MHD_stop_daemon.
 * NULL-safe. */
void api_feed_free(struct api_feed *feed);
/* Frees a request's long-poll state (request_free). NULL-safe. */
void api_feed_wait_free(struct api_feed_wait *w);

/* ---- router.c ---- */

/* Finds the handler for METHOD and PATH; on no match responds 404 or 405 (with Allow). */
enum MHD_Result api_route(struct api_request *req);

#endif
