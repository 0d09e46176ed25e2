/*
 * API tokens for remote fleet members, and the limit on failed authentications per client.
 *
 * A token is "certd_<id>_<secret>": ID is 12 base64url characters (9 random bytes), public, the
 * row's key in the store; SECRET is 43 base64url characters (32 random bytes). The store keeps
 * SHA-256 over salt || secret with a random 16-byte salt. A plain salted hash is enough because
 * the secret is random with 256 bits of entropy: there is no dictionary to slow down, and a
 * password-hashing function would only cost time on every request. The salt keeps equal secrets
 * (which never happen) and precomputed tables (which cannot exist) out of the question anyway.
 * Every character of a token is URL-safe, so it fits a "https://user:TOKEN@host/" URL as is.
 */
#ifndef CERTD_API_TOKEN_H
#define CERTD_API_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOKEN_PREFIX "certd_"
#define TOKEN_PREFIX_LEN 6
#define TOKEN_ID_LEN 12     /* base64url of 9 bytes */
#define TOKEN_SECRET_LEN 43 /* base64url of 32 bytes, no padding */
#define TOKEN_LEN (TOKEN_PREFIX_LEN + TOKEN_ID_LEN + 1 + TOKEN_SECRET_LEN)
#define TOKEN_SALT_HEX_LEN 32 /* 16 bytes */
#define TOKEN_HASH_HEX_LEN 64 /* SHA-256 */

/* A new token: TEXT is the secret shown once (wipe it with token_new_wipe); the rest is what
 * the store keeps. */
struct token_new {
    char text[TOKEN_LEN + 1];
    char id[TOKEN_ID_LEN + 1];
    char salt_hex[TOKEN_SALT_HEX_LEN + 1];
    char hash_hex[TOKEN_HASH_HEX_LEN + 1];
};

/* Makes a token from the key-grade random generator. 0, or -EIO when no randomness (or no
 * memory) was to be had; OUT is wiped then. */
int token_generate(struct token_new *out);
/* Wipes every byte of T. */
void token_new_wipe(struct token_new *t);

/*
 * Splits TEXT into its public ID and SECRET (NUL-terminated copies; wipe SECRET after use).
 * -EINVAL when TEXT is not exactly "certd_" + 12 + "_" + 43 base64url characters. Positions,
 * not the '_' separators, delimit the parts: '_' is a base64url character itself.
 */
int token_parse(const char *text, char id[TOKEN_ID_LEN + 1], char secret[TOKEN_SECRET_LEN + 1]);

/* Whether SECRET hashed with SALT_HEX gives HASH_HEX (as stored). The hashes are compared in
 * constant time; false for malformed hex. */
bool token_secret_matches(const char *secret, const char *salt_hex, const char *hash_hex);

/*
 * Failed authentications per client address: a token bucket of AUTH_FAIL_BURST attempts that
 * refills one attempt every AUTH_FAIL_REFILL_MS, so 10 quick failures lock the address out for
 * a while and a steady 10 a minute is the most it can try. A fixed table of AUTH_LIMITER_SLOTS
 * addresses bounds the memory whatever the number of clients; IPv6 clients count per /64 (one
 * host usually holds the whole prefix). Thread-safe.
 */
#define AUTH_FAIL_BURST 10
#define AUTH_FAIL_REFILL_MS 6000
#define AUTH_LIMITER_SLOTS 1024

struct auth_limiter;

/* NULL on allocation failure. */
struct auth_limiter *auth_limiter_new(void);
void auth_limiter_free(struct auth_limiter *l);

/* Whether ADDR (a numeric IPv4 or IPv6 address) may try to authenticate at NOW_MS (monotonic).
 * When not, *RETRY_AFTER_S (optional) is the number of seconds until it may try once more. */
bool auth_limiter_allowed(struct auth_limiter *l, const char *addr, int64_t now_ms,
                          unsigned *retry_after_s);

/* Records a failed authentication of ADDR at NOW_MS. Returns true when this failure used up the
 * address's last attempt (to log the lock-out once). */
bool auth_limiter_fail(struct auth_limiter *l, const char *addr, int64_t now_ms);

#endif
