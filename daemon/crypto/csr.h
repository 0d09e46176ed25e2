/* PKCS#10 certificate signing requests for ACME finalize (RFC 8555 §7.4). */
#ifndef CERTD_CRYPTO_CSR_H
#define CERTD_CRYPTO_CSR_H

#include <stddef.h>
#include <stdint.h>

/*
 * Builds a CSR signed with KEY_PEM for NAMES (normalised, primary first): every name in the
 * subjectAltName extension as dNSName, the primary also as the subject CN when it fits in 64
 * characters (RFC 5280 ub-common-name). SHA-256 signature. *DER is malloc'd (caller frees).
 * -EINVAL for a bad key or no names, -EIO on a GnuTLS failure (logged).
 */
int csr_create(const char *key_pem, const char *const *names, size_t count, uint8_t **der,
               size_t *der_len);

#endif
