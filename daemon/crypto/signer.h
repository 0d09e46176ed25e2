/*
 * Signing with a private key for JOSE (RFC 7515/7518) without handing the key to the caller:
 * the ACME module holds a `struct signer` and asks it to sign bytes, never touching key material
 * (so a later split into a key-holding process is a move, not a rewrite).
 */
#ifndef CERTD_CRYPTO_SIGNER_H
#define CERTD_CRYPTO_SIGNER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/types.h"

struct signer;

/* Loads a private key (PKCS#8 or traditional PEM) of a supported type. The PEM may be wiped by
 * the caller right after. -EINVAL for anything else. */
int signer_load(const char *pem, struct signer **out);
void signer_free(struct signer *s);

enum key_type signer_key_type(const struct signer *s);

/* JWS "alg": "ES256" (P-256), "ES384" (P-384), "RS256" (RSA). */
const char *signer_alg(const struct signer *s);

/*
 * New reference to the public JWK (RFC 7517/7518 §6): {"crv","kty","x","y"} for EC with each
 * coordinate left-padded to the curve's full size (32 or 48 bytes: RFC 7518 §6.2.1.2), or
 * {"e","kty","n"} for RSA with no leading zero octets (RFC 7518 §6.3.1.1).
 */
json_t *signer_jwk(const struct signer *s);

/* RFC 7638 thumbprint: base64url(SHA-256(JWK with required members, lexicographic order, no
 * whitespace)); 43 characters plus NUL. */
#define SIGNER_THUMBPRINT_SIZE 44
int signer_thumbprint(const struct signer *s, char out[SIGNER_THUMBPRINT_SIZE]);

/*
 * RFC 7638 thumbprint of any public JWK (not only ours): "EC" keys hash {crv,kty,x,y}, "RSA" keys
 * {e,kty,n}, every required member a string; other members are ignored (§3.2). -EINVAL for a
 * missing or non-string required member or another kty, -ENOMEM. OUT is written on success only.
 */
int jwk_thumbprint(const json_t *jwk, char out[SIGNER_THUMBPRINT_SIZE]);

/*
 * Signs DATA with the algorithm of signer_alg. For ECDSA the result is the JWS form r||s, each
 * integer left-padded to the curve size (RFC 7518 §3.4: 64 bytes for ES256, 96 for ES384), not
 * DER. For RSA it is the PKCS#1 v1.5 SHA-256 signature. *SIG is malloc'd (caller frees).
 */
int signer_sign(const struct signer *s, const void *data, size_t len, uint8_t **sig,
                size_t *sig_len);

/* HMAC-SHA256 (RFC 2104), for External Account Binding (RFC 8555 §7.3.4, alg HS256). */
int crypto_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                       uint8_t out[32]);

/* SHA-256 of DATA. */
void crypto_sha256(const void *data, size_t len, uint8_t out[32]);

#endif
