#include "crypto/csr.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "core/log.h"
#include "crypto/keys.h"

#define CSR_PEM_MAX (64 * 1024)
/* RFC 5280 ub-common-name. */
#define CSR_CN_MAX 64
/* RFC 1035 §2.3.4 limits a name to 255 octets on the wire, 253 characters in text. */
#define CSR_NAME_MAX 253
/* Far above any CA's per-order limit (Let's Encrypt: 100), low enough to bound the work. */
#define CSR_NAMES_MAX 1000

int csr_create(const char *key_pem, const char *const *names, size_t count, uint8_t **der,
               size_t *der_len)
{
    gnutls_x509_privkey_t xkey = NULL;
    gnutls_privkey_t key = NULL;
    gnutls_x509_crq_t crq = NULL;
    gnutls_datum_t out = {NULL, 0};
    char fp[KEY_FINGERPRINT_SIZE];
    enum key_type type;
    const char *step = NULL;
    size_t len;
    int ret, r;

    *der = NULL;
    *der_len = 0;
    if (!key_pem || !names || count == 0 || count > CSR_NAMES_MAX)
        return -EINVAL;
    for (size_t i = 0; i < count; i++) {
        if (!names[i] || names[i][0] == '\0' || strnlen(names[i], CSR_NAME_MAX + 1) > CSR_NAME_MAX)
            return -EINVAL;
    }
    len = strnlen(key_pem, CSR_PEM_MAX + 1);
    if (len == 0 || len > CSR_PEM_MAX)
        return -EINVAL;
    /* Only key types we support (and consistent keys) get a CSR; keys.c owns that rule. */
    if (keys_inspect(key_pem, &type, fp) < 0)
        return -EINVAL;

    r = gnutls_x509_privkey_init(&xkey);
    if (r < 0) {
        ret = -ENOMEM;
        goto out;
    }
    gnutls_datum_t in = {(unsigned char *)key_pem, (unsigned int)len};
    r = gnutls_x509_privkey_import2(xkey, &in, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (r < 0) {
        log_debug("crypto: CSR key import failed: %s", gnutls_strerror(r));
        ret = -EINVAL;
        goto out;
    }
    r = gnutls_privkey_init(&key);
    if (r < 0) {
        ret = -ENOMEM;
        goto out;
    }
    /* No AUTO_RELEASE: XKEY is also handed to crq_set_key, and we deinit it ourselves. */
    step = "key import";
    r = gnutls_privkey_import_x509(key, xkey, 0);
    if (r < 0)
        goto gnutls_fail;

    r = gnutls_x509_crq_init(&crq);
    if (r < 0) {
        ret = -ENOMEM;
        goto out;
    }
    /* RFC 2986 §4.1: version is 0, which GnuTLS spells 1. */
    step = "version";
    r = gnutls_x509_crq_set_version(crq, 1);
    if (r < 0)
        goto gnutls_fail;
    /* CAs take the names from the SAN (RFC 8555 §7.4 only requires the identifiers to appear
     * somewhere); the CN is a courtesy for old tooling and must fit RFC 5280's upper bound. */
    if (strlen(names[0]) <= CSR_CN_MAX) {
        step = "subject CN";
        r = gnutls_x509_crq_set_dn_by_oid(crq, GNUTLS_OID_X520_COMMON_NAME, 0, names[0],
                                          (unsigned int)strlen(names[0]));
        if (r < 0)
            goto gnutls_fail;
    }
    step = "subjectAltName";
    for (size_t i = 0; i < count; i++) {
        r = gnutls_x509_crq_set_subject_alt_name(
            crq, GNUTLS_SAN_DNSNAME, names[i], (unsigned int)strlen(names[i]), GNUTLS_FSAN_APPEND);
        if (r < 0)
            goto gnutls_fail;
    }
    step = "public key";
    r = gnutls_x509_crq_set_key(crq, xkey);
    if (r < 0)
        goto gnutls_fail;
    /* For RSA keys this is PKCS#1 v1.5 with SHA-256, for EC keys ECDSA with SHA-256: both are
     * what every ACME CA accepts. */
    step = "signing";
    r = gnutls_x509_crq_privkey_sign(crq, key, GNUTLS_DIG_SHA256, 0);
    if (r < 0)
        goto gnutls_fail;
    step = "export";
    r = gnutls_x509_crq_export2(crq, GNUTLS_X509_FMT_DER, &out);
    if (r < 0)
        goto gnutls_fail;

    *der = malloc(out.size);
    if (!*der) {
        ret = -ENOMEM;
        goto out;
    }
    memcpy(*der, out.data, out.size);
    *der_len = out.size;
    ret = 0;
    goto out;

gnutls_fail:
    log_error("crypto: CSR %s failed: %s", step, gnutls_strerror(r));
    ret = -EIO;
out:
    gnutls_free(out.data);
    gnutls_x509_crq_deinit(crq);
    gnutls_privkey_deinit(key);
    gnutls_x509_privkey_deinit(xkey);
    return ret;
}
