#include "crypto/signer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <nettle/sha2.h>

#include "core/log.h"
#include "crypto/b64url.h"
#include "crypto/keys.h"

/* Same cap as keys.c: an RSA-4096 PEM is about 3.3 KB. */
#define SIGNER_PEM_MAX (64 * 1024)
/* Largest integer we ever lay out: an RSA-4096 modulus. */
#define SIGNER_INT_MAX 512

struct signer {
    gnutls_privkey_t key;
    enum key_type type;
    gnutls_sign_algorithm_t sign_algo;
    const char *alg;
    size_t int_size; /* EC: bytes per coordinate/r/s (32, 48); RSA: modulus bytes */
    json_t *jwk;     /* public JWK, computed once at load */
};

/* Drops the leading zero octets of the big-endian integer at *P of *LEN octets. GnuTLS returns
 * integers in minimal form, or with a 0x00 "sign" octet (DER INTEGER style) before a high bit. */
static void strip_leading_zeros(const unsigned char **p, size_t *len)
{
    while (*len > 0 && (*p)[0] == 0) {
        (*p)++;
        (*len)--;
    }
}

/* Writes the unsigned big-endian integer IN as exactly WIDTH octets, left-padded with zeros
 * (RFC 7518 §3.4 and §6.2.1.2 fixed-size encodings). -EINVAL when it does not fit. */
static int put_fixed(const unsigned char *in, size_t len, uint8_t *out, size_t width)
{
    strip_leading_zeros(&in, &len);
    if (len > width)
        return -EINVAL;
    memset(out, 0, width - len);
    memcpy(out + (width - len), in, len);
    return 0;
}

/* New JSON string holding base64url of LEN octets at DATA, or NULL on allocation failure. */
static json_t *b64url_json(const void *data, size_t len)
{
    char *enc = b64url_encode(data, len);
    json_t *j;

    if (!enc)
        return NULL;
    j = json_string(enc);
    free(enc);
    return j;
}

/* Builds the public JWK of S->key (RFC 7518 §6.2.1 / §6.3.1). -ENOMEM or -EIO. */
static int build_jwk(struct signer *s)
{
    gnutls_pubkey_t pub = NULL;
    gnutls_datum_t a = {NULL, 0}, b = {NULL, 0};
    uint8_t x[SIGNER_INT_MAX], y[SIGNER_INT_MAX];
    json_t *jwk = NULL, *ja = NULL, *jb = NULL;
    int ret, r;

    r = gnutls_pubkey_init(&pub);
    if (r < 0)
        return -ENOMEM;
    r = gnutls_pubkey_import_privkey(pub, s->key, 0, 0);
    if (r < 0)
        goto gnutls_fail;

    if (s->type == KEY_EC_P256 || s->type == KEY_EC_P384) {
        gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;

        r = gnutls_pubkey_export_ecc_raw2(pub, &curve, &a, &b, GNUTLS_EXPORT_FLAG_NO_LZ);
        if (r < 0)
            goto gnutls_fail;
        /* Coordinates with leading zero octets come back shorter (about 1 key in 128 for
         * P-256); the JWK wants the full field size, or thumbprints and verifiers disagree. */
        if (put_fixed(a.data, a.size, x, s->int_size) < 0 ||
            put_fixed(b.data, b.size, y, s->int_size) < 0) {
            log_error("crypto: EC coordinate larger than the curve size");
            ret = -EIO;
            goto out;
        }
        ja = b64url_json(x, s->int_size);
        jb = b64url_json(y, s->int_size);
        if (!ja || !jb) {
            ret = -ENOMEM;
            goto out;
        }
        jwk = json_pack("{s:s, s:s, s:O, s:O}", "crv", s->type == KEY_EC_P256 ? "P-256" : "P-384",
                        "kty", "EC", "x", ja, "y", jb);
    } else {
        const unsigned char *n, *e;
        size_t n_len, e_len;

        r = gnutls_pubkey_export_rsa_raw2(pub, &a, &b, GNUTLS_EXPORT_FLAG_NO_LZ);
        if (r < 0)
            goto gnutls_fail;
        /* RFC 7518 §6.3.1.1: no leading zero octets (the flag should see to it; be sure). */
        n = a.data;
        n_len = a.size;
        e = b.data;
        e_len = b.size;
        strip_leading_zeros(&n, &n_len);
        strip_leading_zeros(&e, &e_len);
        if (n_len == 0 || e_len == 0 || n_len > SIGNER_INT_MAX) {
            ret = -EIO;
            goto out;
        }
        s->int_size = n_len;
        ja = b64url_json(e, e_len);
        jb = b64url_json(n, n_len);
        if (!ja || !jb) {
            ret = -ENOMEM;
            goto out;
        }
        jwk = json_pack("{s:O, s:s, s:O}", "e", ja, "kty", "RSA", "n", jb);
    }
    if (!jwk) {
        ret = -ENOMEM;
        goto out;
    }
    s->jwk = jwk;
    ret = 0;
    goto out;

gnutls_fail:
    log_error("crypto: exporting public key failed: %s", gnutls_strerror(r));
    ret = -EIO;
out:
    json_decref(ja);
    json_decref(jb);
    gnutls_free(a.data);
    gnutls_free(b.data);
    gnutls_pubkey_deinit(pub);
    return ret;
}

int signer_load(const char *pem, struct signer **out)
{
    struct signer *s = NULL;
    char fp[KEY_FINGERPRINT_SIZE];
    enum key_type type;
    size_t len;
    int ret, r;

    *out = NULL;
    if (!pem)
        return -EINVAL;
    len = strnlen(pem, SIGNER_PEM_MAX + 1);
    if (len == 0 || len > SIGNER_PEM_MAX)
        return -EINVAL;
    /* keys_inspect owns the rules for which keys we accept (type, size, consistency). */
    ret = keys_inspect(pem, &type, fp);
    if (ret < 0)
        return ret;

    s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->type = type;
    switch (type) {
    case KEY_EC_P256:
        s->sign_algo = GNUTLS_SIGN_ECDSA_SHA256;
        s->alg = "ES256";
        s->int_size = 32;
        break;
    case KEY_EC_P384:
        s->sign_algo = GNUTLS_SIGN_ECDSA_SHA384;
        s->alg = "ES384";
        s->int_size = 48;
        break;
    default:
        s->sign_algo = GNUTLS_SIGN_RSA_SHA256;
        s->alg = "RS256";
        break;
    }

    r = gnutls_privkey_init(&s->key);
    if (r < 0) {
        ret = -ENOMEM;
        goto out;
    }
    /* GnuTLS copies what it needs out of the datum, so the caller may wipe PEM afterwards. */
    gnutls_datum_t in = {(unsigned char *)pem, (unsigned int)len};
    r = gnutls_privkey_import_x509_raw(s->key, &in, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (r < 0) {
        log_debug("crypto: signer key import failed: %s", gnutls_strerror(r));
        ret = -EINVAL;
        goto out;
    }
    ret = build_jwk(s);
    if (ret < 0)
        goto out;
    *out = s;
    s = NULL;
out:
    signer_free(s);
    return ret;
}

void signer_free(struct signer *s)
{
    if (!s)
        return;
    /* privkey_deinit zeroises the key parameters. */
    gnutls_privkey_deinit(s->key);
    json_decref(s->jwk);
    free(s);
}

enum key_type signer_key_type(const struct signer *s)
{
    return s->type;
}

const char *signer_alg(const struct signer *s)
{
    return s->alg;
}

json_t *signer_jwk(const struct signer *s)
{
    /* A copy, so a caller adding members (e.g. "kid" experiments) cannot alter our thumbprint. */
    return json_deep_copy(s->jwk);
}

int jwk_thumbprint(const json_t *jwk, char out[SIGNER_THUMBPRINT_SIZE])
{
    static const char *const ec_members[] = {"crv", "kty", "x", "y", NULL};
    static const char *const rsa_members[] = {"e", "kty", "n", NULL};
    const char *const *members;
    const char *kty;
    json_t *canon = NULL;
    char *text = NULL, *enc = NULL;
    uint8_t digest[32];
    int ret;

    kty = json_string_value(json_object_get(jwk, "kty"));
    if (!kty)
        return -EINVAL;
    if (strcmp(kty, "EC") == 0)
        members = ec_members;
    else if (strcmp(kty, "RSA") == 0)
        members = rsa_members;
    else
        return -EINVAL;

    canon = json_object();
    if (!canon)
        return -ENOMEM;
    for (size_t i = 0; members[i]; i++) {
        json_t *v = json_object_get(jwk, members[i]);

        if (!json_is_string(v)) {
            ret = -EINVAL;
            goto out;
        }
        if (json_object_set(canon, members[i], v) < 0) {
            ret = -ENOMEM;
            goto out;
        }
    }
    /* RFC 7638 §3.3: members in lexicographic order, no whitespace. JSON_SORT_KEYS sorts by
     * byte value, which for these ASCII member names is the code-point order §3.3 asks for. */
    text = json_dumps(canon, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text) {
        ret = -ENOMEM;
        goto out;
    }
    crypto_sha256(text, strlen(text), digest);
    enc = b64url_encode(digest, sizeof(digest));
    if (!enc) {
        ret = -ENOMEM;
        goto out;
    }
    if (strlen(enc) != SIGNER_THUMBPRINT_SIZE - 1) {
        ret = -EIO; /* cannot happen: 32 octets are always 43 characters */
        goto out;
    }
    memcpy(out, enc, SIGNER_THUMBPRINT_SIZE);
    ret = 0;
out:
    free(enc);
    free(text);
    json_decref(canon);
    return ret;
}

int signer_thumbprint(const struct signer *s, char out[SIGNER_THUMBPRINT_SIZE])
{
    return jwk_thumbprint(s->jwk, out);
}

int signer_sign(const struct signer *s, const void *data, size_t len, uint8_t **sig,
                size_t *sig_len)
{
    gnutls_datum_t in = {(unsigned char *)data, (unsigned int)len};
    gnutls_datum_t der = {NULL, 0}, r_val = {NULL, 0}, s_val = {NULL, 0};
    uint8_t *buf = NULL;
    size_t n;
    int ret, r;

    *sig = NULL;
    *sig_len = 0;
    if (len > UINT32_MAX)
        return -EINVAL;
    r = gnutls_privkey_sign_data2(s->key, s->sign_algo, 0, &in, &der);
    if (r < 0)
        goto gnutls_fail;

    if (s->type == KEY_EC_P256 || s->type == KEY_EC_P384) {
        /* GnuTLS gives the X9.62 DER SEQUENCE {r, s}; JWS wants r||s with each integer at the
         * full curve size (RFC 7518 §3.4). Minimal DER integers are shorter for ~1 in 128 values
         * and carry a 0x00 octet when the high bit is set. */
        r = gnutls_decode_rs_value(&der, &r_val, &s_val);
        if (r < 0)
            goto gnutls_fail;
        n = 2 * s->int_size;
        buf = malloc(n);
        if (!buf) {
            ret = -ENOMEM;
            goto out;
        }
        if (put_fixed(r_val.data, r_val.size, buf, s->int_size) < 0 ||
            put_fixed(s_val.data, s_val.size, buf + s->int_size, s->int_size) < 0) {
            log_error("crypto: ECDSA signature integer larger than the curve size");
            ret = -EIO;
            goto out;
        }
    } else {
        /* RFC 8017 §8.2.1: the signature is exactly k octets; pad in case GnuTLS trimmed it. */
        n = s->int_size;
        buf = malloc(n);
        if (!buf) {
            ret = -ENOMEM;
            goto out;
        }
        if (put_fixed(der.data, der.size, buf, n) < 0) {
            log_error("crypto: RSA signature larger than the modulus");
            ret = -EIO;
            goto out;
        }
    }
    *sig = buf;
    *sig_len = n;
    buf = NULL;
    ret = 0;
    goto out;

gnutls_fail:
    log_error("crypto: signing failed: %s", gnutls_strerror(r));
    ret = -EIO;
out:
    free(buf);
    gnutls_free(der.data);
    gnutls_free(r_val.data);
    gnutls_free(s_val.data);
    return ret;
}

int crypto_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                       uint8_t out[32])
{
    int r = gnutls_hmac_fast(GNUTLS_MAC_SHA256, key, key_len, data, len, out);

    if (r < 0) {
        log_error("crypto: HMAC-SHA256 failed: %s", gnutls_strerror(r));
        return -EIO;
    }
    return 0;
}

void crypto_sha256(const void *data, size_t len, uint8_t out[32])
{
    /* nettle rather than gnutls_hash_fast: it cannot fail, which suits a void contract. */
    struct sha256_ctx ctx;

    sha256_init(&ctx);
    sha256_update(&ctx, len, data);
    sha256_digest(&ctx, SHA256_DIGEST_SIZE, out);
}
