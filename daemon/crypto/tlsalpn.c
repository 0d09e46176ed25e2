#include "core/clock.h"
#include "crypto/tlsalpn.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "core/log.h"
#include "crypto/keys.h"

/* RFC 8737 §6.1: id-pe-acmeIdentifier. */
#define ACME_IDENTIFIER_OID "1.3.6.1.5.5.7.1.31"
#define DNS_NAME_MAX 253
#define CN_MAX 64

/* The validation server connects within minutes; the slack before "now" covers its clock being
 * behind ours. */
#define VALID_BEFORE_NOW (60 * 60)
#define VALID_AFTER_NOW (7 * 24 * 60 * 60)

static bool name_ok(const char *name)
{
    size_t len;

    if (!name)
        return false;
    len = strnlen(name, DNS_NAME_MAX + 1);
    if (len == 0 || len > DNS_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];

        if (c <= 0x20 || c >= 0x7f)
            return false;
    }
    return true;
}

/* Copies a GnuTLS PEM datum into a NUL-terminated malloc'd string. NULL on failure. */
static char *datum_str(const gnutls_datum_t *d)
{
    char *s = malloc((size_t)d->size + 1);

    if (!s)
        return NULL;
    memcpy(s, d->data, d->size);
    s[d->size] = '\0';
    return s;
}

int tlsalpn_cert_create(const char *name, const uint8_t digest[32], char **cert_pem, char **key_pem)
{
    char fp[KEY_FINGERPRINT_SIZE];
    char *kpem = NULL, *cpem = NULL;
    gnutls_x509_privkey_t xkey = NULL;
    gnutls_privkey_t key = NULL;
    gnutls_x509_crt_t crt = NULL;
    gnutls_datum_t out = {NULL, 0};
    uint8_t serial[16];
    uint8_t ext[2 + 32];
    const char *step = NULL;
    time_t now;
    int ret, r;

    *cert_pem = NULL;
    *key_pem = NULL;
    if (!name_ok(name) || !digest)
        return -EINVAL;

    /* A fresh key per challenge: it signs nothing but this certificate. */
    ret = keys_generate(KEY_EC_P256, &kpem, fp);
    if (ret < 0)
        return ret;

    r = gnutls_x509_privkey_init(&xkey);
    if (r < 0) {
        ret = -ENOMEM;
        goto out;
    }
    gnutls_datum_t in = {(unsigned char *)kpem, (unsigned int)strlen(kpem)};
    step = "key import";
    r = gnutls_x509_privkey_import(xkey, &in, GNUTLS_X509_FMT_PEM);
    if (r < 0)
        goto gnutls_fail;
    r = gnutls_privkey_init(&key);
    if (r < 0) {
        ret = -ENOMEM;
        goto out;
    }
    r = gnutls_privkey_import_x509(key, xkey, 0);
    if (r < 0)
        goto gnutls_fail;

    r = gnutls_x509_crt_init(&crt);
    if (r < 0) {
        ret = -ENOMEM;
        goto out;
    }
    step = "certificate fields";
    r = gnutls_x509_crt_set_version(crt, 3);
    if (r < 0)
        goto gnutls_fail;
    /* RFC 5280 §4.1.2.2: positive, at most 20 octets; clearing the top bit keeps it positive
     * without a sign octet, setting the next one keeps it 16 octets long. */
    r = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial));
    if (r < 0)
        goto gnutls_fail;
    serial[0] = (uint8_t)((serial[0] & 0x7f) | 0x40);
    r = gnutls_x509_crt_set_serial(crt, serial, sizeof(serial));
    if (r < 0)
        goto gnutls_fail;
    now = (time_t)clock_now();
    r = gnutls_x509_crt_set_activation_time(crt, now - VALID_BEFORE_NOW);
    if (r < 0)
        goto gnutls_fail;
    r = gnutls_x509_crt_set_expiration_time(crt, now + VALID_AFTER_NOW);
    if (r < 0)
        goto gnutls_fail;
    /* RFC 8737 does not look at the subject; a CN helps someone reading the certificate. */
    if (strlen(name) <= CN_MAX) {
        r = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, name,
                                          (unsigned int)strlen(name));
        if (r < 0)
            goto gnutls_fail;
    }
    /* RFC 8737 §3: exactly one dNSName, the identifier being validated. */
    step = "subjectAltName";
    r = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, name,
                                             (unsigned int)strlen(name), GNUTLS_FSAN_SET);
    if (r < 0)
        goto gnutls_fail;
    /* RFC 8737 §3: critical acmeIdentifier whose extnValue holds the DER of
     * Authorization ::= OCTET STRING (SIZE (32)), i.e. 04 20 followed by the digest. */
    step = "acmeIdentifier";
    ext[0] = 0x04;
    ext[1] = 0x20;
    memcpy(ext + 2, digest, 32);
    r = gnutls_x509_crt_set_extension_by_oid(crt, ACME_IDENTIFIER_OID, ext, sizeof(ext), 1);
    if (r < 0)
        goto gnutls_fail;
    step = "public key";
    r = gnutls_x509_crt_set_key(crt, xkey);
    if (r < 0)
        goto gnutls_fail;
    step = "self-signing";
    r = gnutls_x509_crt_privkey_sign(crt, crt, key, GNUTLS_DIG_SHA256, 0);
    if (r < 0)
        goto gnutls_fail;
    step = "export";
    r = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &out);
    if (r < 0)
        goto gnutls_fail;
    cpem = datum_str(&out);
    if (!cpem) {
        ret = -ENOMEM;
        goto out;
    }
    *cert_pem = cpem;
    *key_pem = kpem;
    kpem = NULL;
    ret = 0;
    goto out;

gnutls_fail:
    log_error("crypto: tls-alpn-01 certificate %s failed: %s", step ? step : "setup",
              gnutls_strerror(r));
    ret = r == GNUTLS_E_MEMORY_ERROR ? -ENOMEM : -EIO;
out:
    gnutls_free(out.data);
    gnutls_x509_crt_deinit(crt);
    gnutls_privkey_deinit(key);
    gnutls_x509_privkey_deinit(xkey);
    keys_pem_free(kpem);
    return ret;
}
