/* The tls-alpn-01 validation certificate (RFC 8737 §3). */
#ifndef CERTD_CRYPTO_TLSALPN_H
#define CERTD_CRYPTO_TLSALPN_H

#include <stdint.h>

/*
 * Makes a fresh P-256 key and a self-signed certificate for NAME (an ASCII DNS name) carrying
 * exactly one dNSName SAN (NAME) and the critical acmeIdentifier extension (OID
 * 1.3.6.1.5.5.7.1.31) whose value is the DER OCTET STRING of DIGEST, the SHA-256 of the key
 * authorisation. Both outputs are malloc'd PEM strings; wipe and free the key (keys_pem_free).
 */
int tlsalpn_cert_create(const char *name, const uint8_t digest[32], char **cert_pem,
                        char **key_pem);

#endif
