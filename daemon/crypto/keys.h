/* Private keys: generation and inspection. The crypto module is the only place key material is
 * used; other modules pass PEM through opaquely. */
#ifndef CERTD_CRYPTO_KEYS_H
#define CERTD_CRYPTO_KEYS_H

#include <stddef.h>

#include "common/types.h"

/* Hex SHA-256 (64 chars) plus NUL. */
#define KEY_FINGERPRINT_SIZE 65

/*
 * Generates a new private key of TYPE with GnuTLS and returns it as unencrypted PKCS#8 PEM in
 * *PEM_OUT (NUL-terminated, caller frees with keys_pem_free, which wipes it), and the hex SHA-256
 * of its SubjectPublicKeyInfo in PUBKEY_SHA256. Returns 0 or a negative errno (-EIO on a GnuTLS
 * failure, logged).
 */
int keys_generate(enum key_type type, char **pem_out, char pubkey_sha256[KEY_FINGERPRINT_SIZE]);

/*
 * Parses PEM (PKCS#8 or the traditional EC/RSA forms) and reports its type and public-key
 * fingerprint. -EINVAL when it is not a key of a supported type.
 */
int keys_inspect(const char *pem, enum key_type *type_out,
                 char pubkey_sha256[KEY_FINGERPRINT_SIZE]);

/* Wipes and frees a PEM string returned by this module. NULL-safe. */
void keys_pem_free(char *pem);

#endif
