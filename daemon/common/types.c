#include "common/types.h"

#include <string.h>

static const char *const key_type_names[KEY_TYPE_COUNT] = {
    [KEY_EC_P256] = "ec-p256",   [KEY_EC_P384] = "ec-p384",   [KEY_RSA_2048] = "rsa-2048",
    [KEY_RSA_3072] = "rsa-3072", [KEY_RSA_4096] = "rsa-4096",
};

static const char *const challenge_type_names[CHALLENGE_TYPE_COUNT] = {
    [CHALLENGE_HTTP_01] = "http-01",
    [CHALLENGE_DNS_01] = "dns-01",
    [CHALLENGE_TLS_ALPN_01] = "tls-alpn-01",
};

const char *key_type_name(enum key_type t)
{
    return (unsigned)t < KEY_TYPE_COUNT ? key_type_names[t] : "unknown";
}

bool key_type_parse(const char *s, enum key_type *out)
{
    for (unsigned i = 0; s && i < KEY_TYPE_COUNT; i++) {
        if (strcmp(s, key_type_names[i]) == 0) {
            *out = (enum key_type)i;
            return true;
        }
    }
    return false;
}

const char *challenge_type_name(enum challenge_type t)
{
    return (unsigned)t < CHALLENGE_TYPE_COUNT ? challenge_type_names[t] : "unknown";
}

bool challenge_type_parse(const char *s, enum challenge_type *out)
{
    for (unsigned i = 0; s && i < CHALLENGE_TYPE_COUNT; i++) {
        if (strcmp(s, challenge_type_names[i]) == 0) {
            *out = (enum challenge_type)i;
            return true;
        }
    }
    return false;
}
