#include "crypto/keys.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "core/log.h"

/* A PEM RSA-4096 key is about 3.3 KB; anything far beyond that is not a key we made or accept,
 * and the cap keeps a hostile request from making GnuTLS base64-decode megabytes. */
#define KEYS_PEM_MAX (64 * 1024)

/* GnuTLS 3.7 initialises itself from a library constructor, so there is no
 * gnutls_global_init() here. */

static int rsa_bits_for(enum key_type type)
{
    switch (type) {
    case KEY_RSA_2048:
        return 2048;
    case KEY_RSA_3072:
        return 3072;
    case KEY_RSA_4096:
        return 4096;
    default:
        return 0;
    }
}

/*
 * Maps the public half of KEY to our key type and computes the fingerprint: SHA-256 over the DER
 * SubjectPublicKeyInfo (RFC 5280 section 4.1.2.7), i.e. what `openssl pkey -pubout -outform DER |
 * sha256sum` prints. We hash the exported SPKI ourselves rather than use
 * gnutls_x509_privkey_get_key_id() so the definition does not depend on GnuTLS's key-ID rules.
 * Returns 0, -EINVAL for an unsupported algorithm/size/curve, -ENOMEM or -EIO.
 */
static int describe_key(gnutls_x509_privkey_t key, enum key_type *type_out,
                        char fingerprint[KEY_FINGERPRINT_SIZE])
{
    gnutls_privkey_t abstract = NULL;
    gnutls_pubkey_t pub = NULL;
    gnutls_datum_t spki = {NULL, 0};
    gnutls_datum_t x = {NULL, 0}, y = {NULL, 0};
    unsigned char digest[32];
    unsigned int bits = 0;
    enum key_type type = KEY_TYPE_COUNT;
    int ret, r;

    r = gnutls_privkey_init(&abstract);
    if (r < 0) {
        ret = -ENOMEM;
        goto gnutls_fail;
    }
    /* No GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE: the caller still owns KEY. */
    r = gnutls_privkey_import_x509(abstract, key, 0);
    if (r < 0) {
        ret = -EIO;
        goto gnutls_fail;
    }
    r = gnutls_pubkey_init(&pub);
    if (r < 0) {
        ret = -ENOMEM;
        goto gnutls_fail;
    }
    r = gnutls_pubkey_import_privkey(pub, abstract, 0, 0);
    if (r < 0) {
        ret = -EIO;
        goto gnutls_fail;
    }

    r = gnutls_pubkey_get_pk_algorithm(pub, &bits);
    if (r == GNUTLS_PK_RSA) {
        /* RSA-PSS-only keys (GNUTLS_PK_RSA_PSS) are deliberately not accepted: not every CA
         * issues for them and we cannot sign PKCS#1 v1.5 CSRs with them. */
        if (bits == 2048)
            type = KEY_RSA_2048;
        else if (bits == 3072)
            type = KEY_RSA_3072;
        else if (bits == 4096)
            type = KEY_RSA_4096;
    } else if (r == GNUTLS_PK_ECDSA) {
        gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;

        r = gnutls_pubkey_export_ecc_raw2(pub, &curve, &x, &y, 0);
        if (r < 0) {
            ret = -EIO;
            goto gnutls_fail;
        }
        if (curve == GNUTLS_ECC_CURVE_SECP256R1)
            type = KEY_EC_P256;
        else if (curve == GNUTLS_ECC_CURVE_SECP384R1)
            type = KEY_EC_P384;
    }
    if (type == KEY_TYPE_COUNT) {
        ret = -EINVAL;
        goto out;
    }

    r = gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &spki);
    if (r < 0) {
        ret = -EIO;
        goto gnutls_fail;
    }
    r = gnutls_hash_fast(GNUTLS_DIG_SHA256, spki.data, spki.size, digest);
    if (r < 0) {
        ret = -EIO;
        goto gnutls_fail;
    }
    gnutls_datum_t bin = {digest, sizeof(digest)};
    size_t hex_size = KEY_FINGERPRINT_SIZE;
    /* gnutls_hex_encode writes lower-case hex and the terminating NUL. */
    r = gnutls_hex_encode(&bin, fingerprint, &hex_size);
    if (r < 0) {
        ret = -EIO;
        goto gnutls_fail;
    }
    *type_out = type;
    ret = 0;
    goto out;

gnutls_fail:
    log_error("crypto: describing key failed: %s", gnutls_strerror(r));
out:
    gnutls_free(spki.data);
    gnutls_free(x.data);
    gnutls_free(y.data);
    gnutls_pubkey_deinit(pub);
    gnutls_privkey_deinit(abstract);
    return ret;
}

int keys_generate(enum key_type type, char **pem_out, char pubkey_sha256[KEY_FINGERPRINT_SIZE])
{
    gnutls_x509_privkey_t key = NULL;
    gnutls_datum_t der_pem = {NULL, 0};
    gnutls_pk_algorithm_t algo;
    unsigned int bits;
    enum key_type got;
    char *pem = NULL;
    int ret, r;

    *pem_out = NULL;
    switch (type) {
    case KEY_EC_P256:
        algo = GNUTLS_PK_ECDSA;
        bits = GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1);
        break;
    case KEY_EC_P384:
        algo = GNUTLS_PK_ECDSA;
        bits = GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP384R1);
        break;
    case KEY_RSA_2048:
    case KEY_RSA_3072:
    case KEY_RSA_4096:
        algo = GNUTLS_PK_RSA;
        bits = (unsigned int)rsa_bits_for(type);
        break;
    default:
        return -EINVAL;
    }

    r = gnutls_x509_privkey_init(&key);
    if (r < 0) {
        log_error("crypto: key init failed: %s", gnutls_strerror(r));
        return -ENOMEM;
    }
    r = gnutls_x509_privkey_generate2(key, algo, bits, 0, NULL, 0);
    if (r < 0) {
        log_error("crypto: generating %s key failed: %s", key_type_name(type), gnutls_strerror(r));
        ret = -EIO;
        goto out;
    }
    /* RFC 5958 OneAsymmetricKey ("BEGIN PRIVATE KEY"), unencrypted: the store's file
     * permissions protect it, and every consumer (nginx, haproxy, openssl) reads PKCS#8. */
    r = gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN,
                                          &der_pem);
    if (r < 0) {
        log_error("crypto: exporting %s key failed: %s", key_type_name(type), gnutls_strerror(r));
        ret = -EIO;
        goto out;
    }

    ret = describe_key(key, &got, pubkey_sha256);
    if (ret < 0)
        goto out;
    if (got != type) {
        /* Cannot happen unless GnuTLS generated something other than asked for. */
        log_error("crypto: generated key is %s, wanted %s", key_type_name(got),
                  key_type_name(type));
        ret = -EIO;
        goto out;
    }

    pem = malloc((size_t)der_pem.size + 1);
    if (!pem) {
        ret = -ENOMEM;
        goto out;
    }
    memcpy(pem, der_pem.data, der_pem.size);
    pem[der_pem.size] = '\0';
    *pem_out = pem;
    ret = 0;

out:
    if (der_pem.data) {
        gnutls_memset(der_pem.data, 0, der_pem.size);
        gnutls_free(der_pem.data);
    }
    /* privkey_deinit zeroises the key parameters itself. */
    gnutls_x509_privkey_deinit(key);
    return ret;
}

int keys_inspect(const char *pem, enum key_type *type_out, char pubkey_sha256[KEY_FINGERPRINT_SIZE])
{
    gnutls_x509_privkey_t key = NULL;
    size_t len;
    int ret, r;

    if (!pem)
        return -EINVAL;
    len = strnlen(pem, KEYS_PEM_MAX + 1);
    if (len == 0 || len > KEYS_PEM_MAX)
        return -EINVAL;

    r = gnutls_x509_privkey_init(&key);
    if (r < 0) {
        log_error("crypto: key init failed: %s", gnutls_strerror(r));
        return -ENOMEM;
    }
    /* import2 tries PKCS#8 (RFC 5958) and then the traditional RSA (RFC 8017 appendix A.1.2)
     * and EC (RFC 5915) forms. With no password an encrypted PKCS#8 key fails, as it should:
     * we only handle plain keys. */
    gnutls_datum_t in = {(unsigned char *)pem, (unsigned int)len};
    r = gnutls_x509_privkey_import2(key, &in, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (r < 0) {
        /* Callers pass user input here, so this is not our error; debug level only. */
        log_debug("crypto: not a usable private key: %s", gnutls_strerror(r));
        ret = -EINVAL;
        goto out;
    }
    /* Rejects keys whose public half does not belong to the private half, which would give a
     * fingerprint that matches no certificate we could get for it. */
    r = gnutls_x509_privkey_verify_params(key);
    if (r < 0) {
        log_debug("crypto: inconsistent private key: %s", gnutls_strerror(r));
        ret = -EINVAL;
        goto out;
    }
    ret = describe_key(key, type_out, pubkey_sha256);

out:
    gnutls_x509_privkey_deinit(key);
    return ret;
}

void keys_pem_free(char *pem)
{
    if (!pem)
        return;
    explicit_bzero(pem, strlen(pem));
    free(pem);
}
