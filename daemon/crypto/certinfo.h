/* Reading and checking the certificate chains a CA returns, before anything is stored. */
#ifndef CERTD_CRYPTO_CERTINFO_H
#define CERTD_CRYPTO_CERTINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cert_info {
    char *serial;              /* lower-case hex, no leading zeros ("1" for serial 1) */
    int64_t not_before;        /* Unix seconds */
    int64_t not_after;
    char *issuer_dn;           /* RFC 4514 string of the leaf's issuer */
    char *issuer_cn;           /* CN of the leaf's issuer, NULL if none */
    char *root_issuer_cn;      /* CN of the issuer of the LAST certificate in the chain (what
                                  preferred_chain matches, like certbot), NULL if none */
    char fingerprint_sha256[65];  /* hex SHA-256 of the leaf's DER */
    char spki_sha256[65];         /* hex SHA-256 of the leaf's SubjectPublicKeyInfo: equals
                                     keys.h's public_key_sha256 for the matching key */
    char **names;              /* the leaf's dNSName SANs, lower-case, in certificate order */
    size_t name_count;
    uint8_t *aki;              /* authorityKeyIdentifier keyIdentifier (for ARI, RFC 9773) */
    size_t aki_len;
    uint8_t *serial_der;       /* the serial's content octets as encoded (for ARI CertID) */
    size_t serial_der_len;
    size_t chain_length;       /* number of certificates in the PEM */
};

/*
 * Parses PEM, a chain leaf first, and checks that it is one: every certificate is signed by the
 * next one (signature verified, issuer/subject names matching). It does not check trust anchors
 * or time validity. On success fills *INFO (freed with cert_info_free). -EINVAL with a one-line
 * reason in ERR for anything else (not PEM, empty, a broken chain, no SAN ...), -ENOMEM. On
 * failure *INFO is left zeroed, so cert_info_free on it is harmless. Limits: PEM up to 1 MiB, at
 * most 16 certificates.
 */
int cert_chain_inspect(const char *pem, struct cert_info *info, char *err, size_t errsz);
void cert_info_free(struct cert_info *info);

/*
 * Splits a PEM chain into the leaf's PEM and the rest (intermediates, possibly empty string),
 * both malloc'd, re-encoded by GnuTLS. -EINVAL when PEM holds no certificate.
 */
int cert_chain_split(const char *pem, char **leaf_pem, char **rest_pem);

/*
 * Verifies PEM (a chain, leaf first, in order: each certificate signed by the next, as
 * cert_chain_inspect checks) against the trust anchors in ROOTS_PEM (one or more certificates)
 * at time NOW. 0 when it verifies; -EINVAL with the GnuTLS verification status text (or the
 * chain-order reason) in ERR otherwise, -ENOMEM. GnuTLS 3.7 cannot verify at a given time, so signatures and
 * constraints are GnuTLS's and the validity periods are checked by us at NOW along the path
 * GnuTLS uses: each chain certificate up to the first one a trust anchor signed, and that
 * anchor (an expired cross-sign beyond a trusted root does not matter, as in GnuTLS).
 */
int cert_chain_verify(const char *pem, const char *roots_pem, int64_t now, char *err,
                      size_t errsz);

/* The DER of the first certificate in PEM (for revocation, RFC 8555 §7.6). *DER malloc'd.
 * -EINVAL when PEM holds no certificate. (crypto/certder.c) */
int cert_leaf_der(const char *pem, uint8_t **der, size_t *der_len);

#endif
