/*
 * Challenge responders (RFC 8555 §8): what certd publishes so the CA can validate a name.
 *
 *  - http-01 (§8.3): a built-in HTTP server on [challenge.http-01] listen answering
 *    GET /.well-known/acme-challenge/TOKEN with the key authorisation for pending tokens only
 *    (404 otherwise). The same tokens are readable through the API for fleet proxies.
 *  - tls-alpn-01 (RFC 8737): a built-in TLS server on [challenge.tls-alpn-01] listen answering
 *    ALPN "acme-tls/1" with a self-signed certificate for the SNI asked, carrying the
 *    acmeIdentifier extension; any other handshake is refused.
 *  - dns-01 (§8.4): the configured hook, run as `HOOK add FQDN VALUE` and `HOOK del FQDN VALUE`
 *    with a timeout, its stderr returned on failure.
 *
 * Thread-safe: order workers publish and withdraw concurrently.
 */
#ifndef CERTD_ACME_RESPONDERS_H
#define CERTD_ACME_RESPONDERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct responders;

/* Bounds on what can be published at once (order workers add and remove; these only stop a
 * runaway caller from growing the tables without limit). */
#define RESPONDERS_MAX_TOKENS 100000
#define RESPONDERS_MAX_TLSALPN_NAMES 10000
/* Longest token (base64url) and key authorisation ("TOKEN.THUMBPRINT") accepted. */
#define RESPONDERS_TOKEN_MAX 256
#define RESPONDERS_KEY_AUTH_MAX 1024

/*
 * Starts the http-01 and tls-alpn-01 servers that CFG configures (a NULL listen leaves that one
 * off). Binding happens here, before privileges are dropped (ports 80/443). Listen addresses are
 * "IPV4:PORT" or "[IPV6]:PORT"; port 0 picks a free port (tests; see responders_*_port). Returns
 * 0, or a negative errno with a reason in ERR (-EINVAL bad address, the bind/listen errno, -EIO
 * when a server cannot start).
 */
int responders_start(const struct config *cfg, struct responders **out, char *err, size_t errsz);
/* Stops the servers (connections in progress are cut off, promptly) and forgets every published
 * response. NULL-safe. */
void responders_stop(struct responders *r);

/* Whether the http-01 / tls-alpn-01 server is running (so an order can fail early). */
bool responders_have_http01(const struct responders *r);
bool responders_have_tlsalpn01(const struct responders *r);

/* The TCP port the http-01 / tls-alpn-01 server listens on (useful after port 0), or -ENOTCONN
 * when that server is off (or R is NULL). */
int responders_http01_port(const struct responders *r);
int responders_tlsalpn01_port(const struct responders *r);

/*
 * http-01: serve KEY_AUTH at /.well-known/acme-challenge/TOKEN until withdrawn. Adding a token
 * again replaces its key authorisation. Works with the built-in server off too (the API still
 * serves tokens to fleet proxies). Returns 0; -EINVAL when TOKEN is not 1..RESPONDERS_TOKEN_MAX
 * base64url characters or KEY_AUTH not 1..RESPONDERS_KEY_AUTH_MAX base64url characters and dots;
 * -ENOSPC when RESPONDERS_MAX_TOKENS are published; -ENOMEM.
 */
int responders_http01_add(struct responders *r, const char *token, const char *key_auth);
/* Withdraws TOKEN; unknown tokens and a NULL R are ignored. */
void responders_http01_remove(struct responders *r, const char *token);
/* The key authorisation for TOKEN, malloc'd, or NULL (-ENOENT) when not published (a malformed
 * token is simply not published). -ENOMEM. For the API's GET /v1/challenges/http-01/{token}. */
int responders_http01_lookup(struct responders *r, const char *token, char **key_auth);

/*
 * tls-alpn-01: answer handshakes for NAME with ALPN acme-tls/1 using the certificate for
 * KEY_AUTH (digest = SHA-256(KEY_AUTH)) until withdrawn. NAME is normalised with
 * name_normalize (no wildcards: RFC 8737 §3 does not allow them) and matched against the SNI
 * ASCII case-insensitively. Adding a name again replaces its certificate. The certificate and
 * key are made here, so this takes a few milliseconds. Returns 0; -ENOTCONN when the
 * tls-alpn-01 server is off; -EINVAL for a bad NAME or KEY_AUTH (as for http-01); -ENOSPC when
 * RESPONDERS_MAX_TLSALPN_NAMES are published; -ENOMEM; -EIO when the certificate cannot be made.
 */
int responders_tlsalpn01_add(struct responders *r, const char *name, const char *key_auth);
/* Withdraws NAME (handshakes already using its certificate finish with it); unknown names and
 * a NULL R are ignored. */
void responders_tlsalpn01_remove(struct responders *r, const char *name);

/*
 * dns-01: runs HOOK (a command line from [challenge.dns-01] hook, split with cmdline_split) as
 * `HOOK add|del FQDN VALUE`, FQDN being "_acme-challenge.NAME." with a trailing dot, VALUE the
 * base64url SHA-256 of the key authorisation. Waits at most TIMEOUT_S seconds. Returns 0 when
 * it exited 0; otherwise a negative errno and a one-line description in ERR (exit status or
 * timeout, plus the hook's stderr, truncated).
 *
 * The hook's environment is only PATH=/usr/sbin:/usr/bin:/sbin:/bin; stdin is /dev/null.
 * Errors: -EINVAL for a bad argument (ACTION not "add"/"del", TIMEOUT_S 0, FQDN or VALUE empty,
 * over 512 bytes or holding control characters) or a HOOK cmdline_split refuses; -ENOENT /
 * -EACCES ... when the hook cannot be executed; -EIO when it exited nonzero, was killed by a
 * signal or timed out. ERR holds the hook's path but never the rest of its command line (it may
 * carry credentials) nor VALUE.
 */
int responders_dns01_run(const char *hook, unsigned timeout_s, const char *action,
                         const char *fqdn, const char *value, char *err, size_t errsz);

#endif
