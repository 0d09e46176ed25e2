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

/*
 * Starts the http-01 and tls-alpn-01 servers that CFG configures (a NULL listen leaves that one
 * off). Binding happens here, before privileges are dropped (ports 80/443). Returns 0, or a
 * negative errno with a reason in ERR.
 */
int responders_start(const struct config *cfg, struct responders **out, char *err, size_t errsz);
/* Stops the servers and forgets every published response. NULL-safe. */
void responders_stop(struct responders *r);

/* Whether the http-01 / tls-alpn-01 server is running (so an order can fail early). */
bool responders_have_http01(const struct responders *r);
bool responders_have_tlsalpn01(const struct responders *r);

/* http-01: serve KEY_AUTH at /.well-known/acme-challenge/TOKEN until withdrawn. */
int responders_http01_add(struct responders *r, const char *token, const char *key_auth);
void responders_http01_remove(struct responders *r, const char *token);
/* The key authorisation for TOKEN, malloc'd, or NULL (-ENOENT) when not published. For the
 * API's GET /v1/challenges/http-01/{token}. */
int responders_http01_lookup(struct responders *r, const char *token, char **key_auth);

/* tls-alpn-01: answer handshakes for NAME with ALPN acme-tls/1 using the certificate for
 * KEY_AUTH (digest = SHA-256(KEY_AUTH)) until withdrawn. */
int responders_tlsalpn01_add(struct responders *r, const char *name, const char *key_auth);
void responders_tlsalpn01_remove(struct responders *r, const char *name);

/*
 * dns-01: runs HOOK (a command line from [challenge.dns-01] hook, split with cmdline_split) as
 * `HOOK add|del FQDN VALUE`, FQDN being "_acme-challenge.NAME." with a trailing dot, VALUE the
 * base64url SHA-256 of the key authorisation. Waits at most TIMEOUT_S seconds. Returns 0 when
 * it exited 0; otherwise a negative errno and a one-line description in ERR (exit status or
 * timeout, plus the hook's stderr, truncated).
 */
int responders_dns01_run(const char *hook, unsigned timeout_s, const char *action,
                         const char *fqdn, const char *value, char *err, size_t errsz);

#endif
