/*
 * One ACME CA as certd talks to it (RFC 8555): its directory, a pool of nonces, the account and
 * JWS-signed requests. All retry policy for single requests lives here (badNonce, a CA that lost
 * our account); waiting between polls is the order's business. Thread-safe: order workers share
 * one client per CA.
 */
#ifndef CERTD_ACME_CLIENT_H
#define CERTD_ACME_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acme/http.h"

struct config_ca;
struct store;
struct acme_client;

/* RFC 8555 §6.7 error types certd reacts to. */
#define ACME_ERR_PREFIX "urn:ietf:params:acme:error:"

/* What a failed ACME exchange leaves behind for the order and the user. */
struct acme_error {
    char message[1024];   /* one line: what failed, with the CA's detail */
    json_t *problem;      /* the CA's problem document verbatim, or NULL */
    int64_t retry_after;  /* seconds the CA asked us to wait, -1 if it did not say */
};
void acme_error_clear(struct acme_error *e);
/* True when E holds a problem of TYPE (the part after ACME_ERR_PREFIX, e.g. "rateLimited"). */
bool acme_error_is(const struct acme_error *e, const char *type);

/*
 * Fills ERR from an error answer of CA to URL: the problem document (RFC 8555 §6.7, RFC 9457)
 * kept verbatim, a one-line message with its detail, type and subproblems, and the
 * Retry-After. A body that is not a JSON object gives a message with the HTTP status.
 */
void acme_error_from_response(const char *ca, const char *url,
                              const struct acme_http_response *resp, struct acme_error *err);

struct acme_client_opts {
    const char *name;            /* CA name from the config */
    const char *directory_url;
    const char *ca_bundle;       /* NULL: system trust store */
    const char *eab_kid;         /* NULL: no External Account Binding */
    const char *eab_hmac_key;    /* base64url */
    char *const *contact;        /* mailto: URLs */
    size_t contact_count;
    bool terms_agreed;
    const char *account_key_type; /* for a new account key */
};

/* Creates a client; nothing is fetched yet. */
int acme_client_new(const struct acme_client_opts *opts, struct store *store,
                    struct acme_client **out);
void acme_client_free(struct acme_client *c);
const char *acme_client_name(const struct acme_client *c);
const char *acme_client_directory_url(const struct acme_client *c);

/*
 * Fetches the directory if not yet done (or when REFRESH). Returns 0 or -EIO with ERR set.
 * *DIR (optional) is a borrowed reference valid while the client lives.
 */
int acme_client_directory(struct acme_client *c, bool refresh, const json_t **dir,
                          struct acme_error *err);

/*
 * Makes sure an account exists: loads it from the store, or creates a key (stored before use)
 * and registers it with newAccount (with EAB when configured). Idempotent and cheap once done.
 */
int acme_client_ensure_account(struct acme_client *c, struct acme_error *err);

/*
 * A JWS-signed POST (RFC 8555 §6.2) to URL. PAYLOAD NULL means POST-as-GET (§6.3, empty
 * payload). Signed with the account key and its kid. badNonce answers are retried with the fresh
 * nonce (§6.5), several times; "accountDoesNotExist" re-registers once and retries. On a response
 * with status < 400 returns 0 and fills *RESP (and *JSON_OUT, when not NULL and the body is
 * JSON). Otherwise returns -EIO (no answer) or -EPROTO (an error answer) with ERR filled, the CA's
 * problem document included, and *RESP empty (nothing to free).
 */
int acme_client_post(struct acme_client *c, const char *url, const json_t *payload,
                     const char *accept, struct acme_http_response *resp, json_t **json_out,
                     struct acme_error *err);

/* The URL of directory entry NAME ("newOrder", "revokeCert", ...), or NULL. Fetches the
 * directory when needed. */
const char *acme_client_dir_url(struct acme_client *c, const char *name, struct acme_error *err);

/* The account key's JWK thumbprint (for key authorisations, §8.1). */
int acme_client_thumbprint(struct acme_client *c, char out[44], struct acme_error *err);

/*
 * Signs a request with another key than the account's (revocation by the certificate key,
 * §7.6): KEY_PEM, "jwk" in the protected header. Same retries as acme_client_post.
 */
int acme_client_post_with_key(struct acme_client *c, const char *key_pem, const char *url,
                              const json_t *payload, struct acme_http_response *resp,
                              struct acme_error *err);

/* Replaces this CA's account with a new key and registers it now (after a deactivation, or to
 * start afresh). */
int acme_client_register_new(struct acme_client *c, struct acme_error *err);

/* Account management (§7.3.5 key rollover, §7.3.6 deactivation). */
int acme_client_key_rollover(struct acme_client *c, struct acme_error *err);
int acme_client_deactivate(struct acme_client *c, struct acme_error *err);

/*
 * ACME Renewal Information (RFC 9773 §4.1): fetches the suggested window for the certificate
 * whose CertID is ARI_ID (base64url(AKI keyIdentifier) "." base64url(serial)). -ENOTSUP when
 * the CA's directory has no renewalInfo; -EIO/-EPROTO with ERR on failure. *RETRY_AFTER is the
 * CA's Retry-After in seconds, -1 when absent.
 */
int acme_client_renewal_info(struct acme_client *c, const char *ari_id, int64_t *start,
                             int64_t *end, int64_t *retry_after, struct acme_error *err);

/* Whether the CA's directory offers renewalInfo (fetching the directory if needed). */
bool acme_client_has_ari(struct acme_client *c);

/*
 * Whether the CA advertises certificate profile NAME in its directory's meta.profiles
 * (draft-ietf-acme-profiles). 1 yes, 0 no (or no profiles at all), -EIO when the directory
 * cannot be fetched (ERR set).
 */
int acme_client_has_profile(struct acme_client *c, const char *name, struct acme_error *err);

/* Counters for tests and the benchmark: requests sent, badNonce retries. */
void acme_client_stats(struct acme_client *c, uint64_t *requests, uint64_t *bad_nonces);

#endif
