/* Domain-name validation and normalisation, shared by the API (which decides) and certctl (which
 * can fail early with the same message). */
#ifndef CERTD_COMMON_NAMES_H
#define CERTD_COMMON_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#include "common/types.h"

/* 253 octets of presentation form (RFC 1035 §2.3.4 255 octets of wire form) plus NUL. */
#define NAME_BUF_SIZE 254
/* Room for a reason such as "label 'a_b' has invalid character '_'". */
#define NAME_ERR_SIZE 256

/*
 * Validates IN (ASCII or UTF-8) as a DNS name a certificate may carry and writes its normalised
 * form to OUT: IDN labels given in Unicode converted to A-labels (punycode, IDNA2008 via
 * gnutls_idna_map), everything lower-cased, one trailing dot removed. Rules: total length <= 253,
 * every label 1..63 octets of letters, digits and hyphens, not starting or ending with a hyphen,
 * at least two labels, the last not all-numeric (so IP addresses are refused), and a single
 * leading "*." wildcard label only (RFC 8555 §7.1.3) when ALLOW_WILDCARD.
 * Returns 0, or -EINVAL with a one-line reason in ERR (never NULL-terminated-less).
 */
int name_normalize(const char *in, bool allow_wildcard, char out[NAME_BUF_SIZE],
                   char err[NAME_ERR_SIZE]);

/* True when the normalised NAME starts with "*.". */
bool name_is_wildcard(const char *name);

/*
 * True when the normalised HOST is covered by the normalised PATTERN (for SNI lookups): equal
 * names match (ASCII case-insensitively), and "*.example.com" also matches exactly one further
 * leftmost label (RFC 6125 §6.4.3): "a.example.com" yes, "a.b.example.com" and "example.com" no.
 * NULL never matches.
 */
bool name_wildcard_matches(const char *pattern, const char *host);

/*
 * Checks the set of a domain's names, already normalised, primary first: no duplicates, and
 * wildcards only with dns-01 (RFC 8555 §8.4: http-01 and tls-alpn-01 cannot prove a wildcard).
 * At most NAMES_MAX names (Let's Encrypt's limit is 100). Returns 0 or -EINVAL with ERR set.
 */
#define NAMES_MAX 100
int names_check_set(const char *const *names, size_t count, enum challenge_type challenge,
                    char err[NAME_ERR_SIZE]);

#endif
