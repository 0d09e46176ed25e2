/* Enumerations shared by the daemon and certctl, with their one spelling on the wire, in config
 * and in the store. */
#ifndef CERTD_COMMON_TYPES_H
#define CERTD_COMMON_TYPES_H

#include <stdbool.h>

enum key_type {
    KEY_EC_P256,    /* default */
    KEY_EC_P384,
    KEY_RSA_2048,
    KEY_RSA_3072,
    KEY_RSA_4096,
    KEY_TYPE_COUNT
};

enum challenge_type {
    CHALLENGE_HTTP_01,   /* default */
    CHALLENGE_DNS_01,
    CHALLENGE_TLS_ALPN_01,
    CHALLENGE_TYPE_COUNT
};

/* "ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096". */
const char *key_type_name(enum key_type t);
/* Returns false and leaves *out alone when S names no key type. Exact, case-sensitive match. */
bool key_type_parse(const char *s, enum key_type *out);

/* "http-01", "dns-01", "tls-alpn-01". */
const char *challenge_type_name(enum challenge_type t);
bool challenge_type_parse(const char *s, enum challenge_type *out);

#endif
