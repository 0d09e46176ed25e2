/*
 * Tests for crypto/signer.c. Every signature is checked by rebuilding the public key from the
 * JWK alone and verifying with GnuTLS (and a few with the openssl command line), so both the
 * fixed-width JWK coordinates and the fixed-width r||s are proven, including the ~1% of keys and
 * signatures whose integers have a leading zero octet.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <jansson.h>

#include "crypto/b64url.h"
#include "crypto/keys.h"
#include "crypto/signer.h"

/* Made with OpenSSL 3.0; X, Y and the thumbprint were computed with openssl + python from
 * `openssl pkey -pubout -outform DER`, independently of GnuTLS. */
static const char ec_p256_traditional[] =
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MHcCAQEEIO/C/kTnr6JhDL+Nt4dSdFtzgdhFE7aF4D7Y0bingGJxoAoGCCqGSM49\n"
    "AwEHoUQDQgAEJ8Vo5Y6wazosy1JWD65Mv2oGpMEzUgfCexPYt0bq+ybFsGsj5EFE\n"
    "72j0bl0NpJQ5QKLY6LDUGQFFNlhrA4tg5A==\n"
    "-----END EC PRIVATE KEY-----\n";
static const char ec_p256_x[] = "J8Vo5Y6wazosy1JWD65Mv2oGpMEzUgfCexPYt0bq-yY";
static const char ec_p256_y[] = "xbBrI-RBRO9o9G5dDaSUOUCi2Oiw1BkBRTZYawOLYOQ";
static const char ec_p256_thumbprint[] = "GoMkquqXwpuNoqwCjj7Ez4tI0s_AOlxTbDzK6E1jOLw";

static const char ed25519_pkcs8[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIPF1jgoep0AbmHdCszCQuRuEEzO0L9dmJomPwdy83KJm\n"
    "-----END PRIVATE KEY-----\n";

/* RFC 7638 §3.1. */
static const char rfc7638_n[] =
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJEC"
    "PebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2Qv"
    "zqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6W"
    "eZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
static const char rfc7638_thumbprint[] = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

/* One key per algorithm, generated once. */
struct fixture {
    enum key_type type;
    char *pem;
    char fp[KEY_FINGERPRINT_SIZE];
    struct signer *s;
};
static struct fixture fx[] = {
    {.type = KEY_EC_P256},
    {.type = KEY_EC_P384},
    {.type = KEY_RSA_2048},
};
#define FX_COUNT (sizeof(fx) / sizeof(fx[0]))

/* Totals reported at the end, so a run shows how often the padding paths were taken. */
static unsigned int lz_sigs_es256, lz_sigs_es384, lz_keys_tried, openssl_verified;

static int setup(void **state)
{
    for (size_t i = 0; i < FX_COUNT; i++) {
        if (keys_generate(fx[i].type, &fx[i].pem, fx[i].fp) != 0)
            return -1;
        if (signer_load(fx[i].pem, &fx[i].s) != 0)
            return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    for (size_t i = 0; i < FX_COUNT; i++) {
        signer_free(fx[i].s);
        keys_pem_free(fx[i].pem);
    }
    printf("[ INFO     ] ES256 signatures with a leading-zero r or s: %u of 3000\n", lz_sigs_es256);
    printf("[ INFO     ] ES384 signatures with a leading-zero r or s: %u of 2000\n", lz_sigs_es384);
    printf("[ INFO     ] P-256 keys generated until one had a leading-zero coordinate: %u\n",
           lz_keys_tried);
    printf("[ INFO     ] signatures verified with the openssl command line: %u\n",
           openssl_verified);
    return 0;
}

/* Decodes member NAME of JWK; asserts it is a base64url string. Caller frees. */
static uint8_t *jwk_member(const json_t *jwk, const char *name, size_t *len)
{
    const char *v = json_string_value(json_object_get(jwk, name));
    uint8_t *out = NULL;

    assert_non_null(v);
    assert_int_equal(b64url_decode(v, &out, len), 0);
    return out;
}

static size_t coord_size(enum key_type t)
{
    return t == KEY_EC_P256 ? 32 : t == KEY_EC_P384 ? 48 : 0;
}

/* A GnuTLS public key built from nothing but the JWK, checking the JWK's shape on the way:
 * exactly the RFC 7518 members, EC coordinates at full curve size, RSA integers minimal. */
static gnutls_pubkey_t pubkey_from_jwk(const json_t *jwk, enum key_type t)
{
    gnutls_pubkey_t pub;
    uint8_t *a, *b;
    size_t a_len, b_len;

    assert_int_equal(gnutls_pubkey_init(&pub), 0);
    if (coord_size(t)) {
        gnutls_ecc_curve_t curve =
            t == KEY_EC_P256 ? GNUTLS_ECC_CURVE_SECP256R1 : GNUTLS_ECC_CURVE_SECP384R1;

        assert_int_equal(json_object_size(jwk), 4);
        assert_string_equal(json_string_value(json_object_get(jwk, "kty")), "EC");
        assert_string_equal(json_string_value(json_object_get(jwk, "crv")),
                            t == KEY_EC_P256 ? "P-256" : "P-384");
        a = jwk_member(jwk, "x", &a_len);
        b = jwk_member(jwk, "y", &b_len);
        assert_int_equal(a_len, coord_size(t));
        assert_int_equal(b_len, coord_size(t));
        gnutls_datum_t x = {a, (unsigned int)a_len}, y = {b, (unsigned int)b_len};
        assert_int_equal(gnutls_pubkey_import_ecc_raw(pub, curve, &x, &y), 0);
    } else {
        assert_int_equal(json_object_size(jwk), 3);
        assert_string_equal(json_string_value(json_object_get(jwk, "kty")), "RSA");
        a = jwk_member(jwk, "n", &a_len);
        b = jwk_member(jwk, "e", &b_len);
        assert_int_equal(a_len, 256);
        assert_int_not_equal(a[0], 0);
        assert_int_not_equal(b[0], 0);
        assert_string_equal(json_string_value(json_object_get(jwk, "e")), "AQAB");
        gnutls_datum_t n = {a, (unsigned int)a_len}, e = {b, (unsigned int)b_len};
        assert_int_equal(gnutls_pubkey_import_rsa_raw(pub, &n, &e), 0);
    }
    free(a);
    free(b);
    return pub;
}

static void assert_spki_sha256(gnutls_pubkey_t pub, const char *want_hex)
{
    gnutls_datum_t der = {NULL, 0};
    uint8_t digest[32];
    char hex[65];
    size_t hex_size = sizeof(hex);

    assert_int_equal(gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &der), 0);
    assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, der.data, der.size, digest), 0);
    gnutls_datum_t bin = {digest, sizeof(digest)};
    assert_int_equal(gnutls_hex_encode(&bin, hex, &hex_size), 0);
    assert_string_equal(hex, want_hex);
    gnutls_free(der.data);
}

/* Strips leading zero octets (the JWS form is padded; DER integers must be minimal). */
static gnutls_datum_t minimal(uint8_t *p, size_t len)
{
    while (len > 1 && p[0] == 0) {
        p++;
        len--;
    }
    return (gnutls_datum_t){p, (unsigned int)len};
}

/* The DER signature GnuTLS/openssl verify, from the JWS form. Caller gnutls_free()s. */
static gnutls_datum_t jws_to_verifiable(enum key_type t, uint8_t *sig, size_t sig_len)
{
    gnutls_datum_t out = {NULL, 0};
    size_t cs = coord_size(t);

    if (!cs) {
        out.data = gnutls_malloc(sig_len);
        assert_non_null(out.data);
        memcpy(out.data, sig, sig_len);
        out.size = (unsigned int)sig_len;
        return out;
    }
    assert_int_equal(sig_len, 2 * cs);
    gnutls_datum_t r = minimal(sig, cs), s = minimal(sig + cs, cs);
    assert_int_equal(gnutls_encode_rs_value(&out, &r, &s), 0);
    return out;
}

static gnutls_sign_algorithm_t sign_algo(enum key_type t)
{
    return t == KEY_EC_P256   ? GNUTLS_SIGN_ECDSA_SHA256
           : t == KEY_EC_P384 ? GNUTLS_SIGN_ECDSA_SHA384
                              : GNUTLS_SIGN_RSA_SHA256;
}

static void assert_verifies(gnutls_pubkey_t pub, enum key_type t, const void *data, size_t len,
                            uint8_t *sig, size_t sig_len)
{
    gnutls_datum_t der = jws_to_verifiable(t, sig, sig_len);
    gnutls_datum_t msg = {(unsigned char *)data, (unsigned int)len};

    assert_int_equal(gnutls_pubkey_verify_data2(pub, sign_algo(t), 0, &msg, &der), 0);
    gnutls_free(der.data);
}

static void test_alg_and_type(void **state)
{
    assert_string_equal(signer_alg(fx[0].s), "ES256");
    assert_int_equal(signer_key_type(fx[0].s), KEY_EC_P256);
    assert_string_equal(signer_alg(fx[1].s), "ES384");
    assert_int_equal(signer_key_type(fx[1].s), KEY_EC_P384);
    assert_string_equal(signer_alg(fx[2].s), "RS256");
    assert_int_equal(signer_key_type(fx[2].s), KEY_RSA_2048);
}

/* The JWK describes the same key keys.c fingerprinted: the SPKI rebuilt from it hashes equal. */
static void test_jwk_matches_key(void **state)
{
    for (size_t i = 0; i < FX_COUNT; i++) {
        json_t *jwk = signer_jwk(fx[i].s);
        gnutls_pubkey_t pub;

        assert_non_null(jwk);
        pub = pubkey_from_jwk(jwk, fx[i].type);
        assert_spki_sha256(pub, fx[i].fp);
        gnutls_pubkey_deinit(pub);
        /* A caller's changes to its copy do not leak into the signer's. */
        assert_int_equal(json_object_set_new(jwk, "kid", json_string("x")), 0);
        json_decref(jwk);
        jwk = signer_jwk(fx[i].s);
        assert_null(json_object_get(jwk, "kid"));
        json_decref(jwk);
    }
}

/* Signs COUNT varied messages; every signature must have the fixed size and verify under the
 * JWK-derived key. Returns how many had r or s with a leading zero octet. */
static unsigned int sign_many(struct fixture *f, unsigned int count, size_t want_len)
{
    json_t *jwk = signer_jwk(f->s);
    gnutls_pubkey_t pub = pubkey_from_jwk(jwk, f->type);
    size_t cs = coord_size(f->type);
    unsigned int leading_zero = 0;
    char msg[128];

    for (unsigned int i = 0; i < count; i++) {
        uint8_t *sig = NULL;
        size_t sig_len = 0;
        /* Lengths 0..~60 so the empty message and odd sizes are covered too. */
        int len = snprintf(msg, sizeof(msg), "%.*s%u", (int)(i % 50),
                           "abcdefghijklmnopqrstuvwxy"
                           "zABCDEFGHIJKLMNOPQRSTUVWXY",
                           i);
        if (i == 0)
            len = 0;

        assert_int_equal(signer_sign(f->s, msg, (size_t)len, &sig, &sig_len), 0);
        assert_int_equal(sig_len, want_len);
        if (cs && (sig[0] == 0 || sig[cs] == 0))
            leading_zero++;
        assert_verifies(pub, f->type, msg, (size_t)len, sig, sig_len);
        free(sig);
    }
    gnutls_pubkey_deinit(pub);
    json_decref(jwk);
    return leading_zero;
}

static void test_es256_many(void **state)
{
    lz_sigs_es256 = sign_many(&fx[0], 3000, 64);
    /* About 23 expected (2/256 per signature); zero has probability ~1e-10. */
    assert_true(lz_sigs_es256 > 0);
}

static void test_es384_many(void **state)
{
    lz_sigs_es384 = sign_many(&fx[1], 2000, 96);
    /* About 16 expected; zero has probability ~2e-7. */
    assert_true(lz_sigs_es384 > 0);
}

static void test_rs256(void **state)
{
    assert_int_equal(sign_many(&fx[2], 40, 256), 0);
}

/* A signature over different data, or a flipped bit, must not verify: the checks above would
 * otherwise prove nothing. */
static void test_verification_can_fail(void **state)
{
    for (size_t i = 0; i < FX_COUNT; i++) {
        json_t *jwk = signer_jwk(fx[i].s);
        gnutls_pubkey_t pub = pubkey_from_jwk(jwk, fx[i].type);
        uint8_t *sig;
        size_t sig_len;
        gnutls_datum_t der, other = {(unsigned char *)"hellO", 5};

        assert_int_equal(signer_sign(fx[i].s, "hello", 5, &sig, &sig_len), 0);
        der = jws_to_verifiable(fx[i].type, sig, sig_len);
        assert_true(gnutls_pubkey_verify_data2(pub, sign_algo(fx[i].type), 0, &other, &der) < 0);
        gnutls_free(der.data);
        sig[sig_len / 2] ^= 0x01;
        der = jws_to_verifiable(fx[i].type, sig, sig_len);
        gnutls_datum_t msg = {(unsigned char *)"hello", 5};
        assert_true(gnutls_pubkey_verify_data2(pub, sign_algo(fx[i].type), 0, &msg, &der) < 0);
        gnutls_free(der.data);
        free(sig);
        gnutls_pubkey_deinit(pub);
        json_decref(jwk);
    }
}

/* Generates P-256 keys until one has a JWK coordinate starting with 0x00 (1 in 128), i.e. one
 * GnuTLS exports short, and checks the padded JWK still describes the very same key. */
static void test_leading_zero_coordinate(void **state)
{
    bool found = false;

    for (unsigned int tries = 1; tries <= 5000 && !found; tries++) {
        char *pem = NULL, fp[KEY_FINGERPRINT_SIZE];
        struct signer *s = NULL;
        json_t *jwk;
        uint8_t *x, *y;
        size_t x_len, y_len;

        assert_int_equal(keys_generate(KEY_EC_P256, &pem, fp), 0);
        assert_int_equal(signer_load(pem, &s), 0);
        jwk = signer_jwk(s);
        x = jwk_member(jwk, "x", &x_len);
        y = jwk_member(jwk, "y", &y_len);
        assert_int_equal(x_len, 32);
        assert_int_equal(y_len, 32);
        if (x[0] == 0 || y[0] == 0) {
            gnutls_pubkey_t pub = pubkey_from_jwk(jwk, KEY_EC_P256);
            gnutls_datum_t gx = {NULL, 0}, gy = {NULL, 0};
            gnutls_ecc_curve_t curve;
            uint8_t *sig;
            size_t sig_len;

            found = true;
            lz_keys_tried = tries;
            /* GnuTLS's own export is indeed short here, so our padding did the work. */
            assert_int_equal(
                gnutls_pubkey_export_ecc_raw2(pub, &curve, &gx, &gy, GNUTLS_EXPORT_FLAG_NO_LZ), 0);
            assert_true(x[0] == 0 ? gx.size < 32 : gy.size < 32);
            gnutls_free(gx.data);
            gnutls_free(gy.data);
            assert_spki_sha256(pub, fp);
            assert_int_equal(signer_sign(s, "padded", 6, &sig, &sig_len), 0);
            assert_verifies(pub, KEY_EC_P256, "padded", 6, sig, sig_len);
            free(sig);
            gnutls_pubkey_deinit(pub);
        }
        free(x);
        free(y);
        json_decref(jwk);
        signer_free(s);
        keys_pem_free(pem);
    }
    assert_true(found);
}

/* A fixed key whose JWK was computed by OpenSSL: the traditional PEM form loads, and the
 * coordinates and thumbprint are what an independent implementation says. */
static void test_fixed_key_vector(void **state)
{
    struct signer *s = NULL;
    char tp[SIGNER_THUMBPRINT_SIZE];
    json_t *jwk;

    assert_int_equal(signer_load(ec_p256_traditional, &s), 0);
    jwk = signer_jwk(s);
    assert_string_equal(json_string_value(json_object_get(jwk, "x")), ec_p256_x);
    assert_string_equal(json_string_value(json_object_get(jwk, "y")), ec_p256_y);
    assert_int_equal(signer_thumbprint(s, tp), 0);
    assert_string_equal(tp, ec_p256_thumbprint);
    json_decref(jwk);
    signer_free(s);
}

static void test_rfc7638_thumbprint(void **state)
{
    char tp[SIGNER_THUMBPRINT_SIZE];
    /* Extra members ("alg", "kid") are not part of the thumbprint (RFC 7638 §3.2). */
    json_t *jwk = json_pack("{s:s, s:s, s:s, s:s, s:s}", "kty", "RSA", "n", rfc7638_n, "e", "AQAB",
                            "alg", "RS256", "kid", "2011-04-29");

    assert_non_null(jwk);
    assert_int_equal(jwk_thumbprint(jwk, tp), 0);
    assert_string_equal(tp, rfc7638_thumbprint);
    json_decref(jwk);
}

static void test_thumbprint_refusals(void **state)
{
    char tp[SIGNER_THUMBPRINT_SIZE] = "untouched";
    json_t *j;

    j = json_pack("{s:s, s:s}", "kty", "RSA", "n", rfc7638_n); /* no "e" */
    assert_int_equal(jwk_thumbprint(j, tp), -EINVAL);
    json_decref(j);
    j = json_pack("{s:s, s:s, s:i}", "kty", "RSA", "n", rfc7638_n, "e", 65537);
    assert_int_equal(jwk_thumbprint(j, tp), -EINVAL);
    json_decref(j);
    j = json_pack("{s:s, s:s}", "kty", "oct", "k", "AAAA");
    assert_int_equal(jwk_thumbprint(j, tp), -EINVAL);
    json_decref(j);
    j = json_pack("{s:s, s:s, s:s}", "kty", "EC", "crv", "P-256", "x", ec_p256_x);
    assert_int_equal(jwk_thumbprint(j, tp), -EINVAL);
    json_decref(j);
    assert_int_equal(jwk_thumbprint(NULL, tp), -EINVAL);
    assert_string_equal(tp, "untouched");
}

/* signer_thumbprint agrees with a hand-built RFC 7638 input for each of our key types. */
static void test_thumbprint_of_generated_keys(void **state)
{
    for (size_t i = 0; i < FX_COUNT; i++) {
        json_t *jwk = signer_jwk(fx[i].s);
        char tp[SIGNER_THUMBPRINT_SIZE], text[1024], *want;
        uint8_t digest[32];
        int n;

        if (coord_size(fx[i].type))
            n = snprintf(text, sizeof(text),
                         "{\"crv\":\"%s\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
                         json_string_value(json_object_get(jwk, "crv")),
                         json_string_value(json_object_get(jwk, "x")),
                         json_string_value(json_object_get(jwk, "y")));
        else
            n = snprintf(text, sizeof(text), "{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}",
                         json_string_value(json_object_get(jwk, "e")),
                         json_string_value(json_object_get(jwk, "n")));
        assert_true(n > 0 && (size_t)n < sizeof(text));
        assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, text, (size_t)n, digest), 0);
        want = b64url_encode(digest, sizeof(digest));
        assert_int_equal(signer_thumbprint(fx[i].s, tp), 0);
        assert_int_equal(strlen(tp), 43);
        assert_string_equal(tp, want);
        free(want);
        json_decref(jwk);
    }
}

static void test_hmac_rfc4231(void **state)
{
    /* RFC 4231 §4.2 (test case 1), §4.3 (2) and §4.7 (6: key longer than the block). */
    static const uint8_t want1[32] = {0xb0, 0x34, 0x4c, 0x61, 0xd8, 0xdb, 0x38, 0x53,
                                      0x5c, 0xa8, 0xaf, 0xce, 0xaf, 0x0b, 0xf1, 0x2b,
                                      0x88, 0x1d, 0xc2, 0x00, 0xc9, 0x83, 0x3d, 0xa7,
                                      0x26, 0xe9, 0x37, 0x6c, 0x2e, 0x32, 0xcf, 0xf7};
    static const uint8_t want2[32] = {0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e,
                                      0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7,
                                      0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83,
                                      0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43};
    static const uint8_t want6[32] = {0x60, 0xe4, 0x31, 0x59, 0x1e, 0xe0, 0xb6, 0x7f,
                                      0x0d, 0x8a, 0x26, 0xaa, 0xcb, 0xf5, 0xb7, 0x7f,
                                      0x8e, 0x0b, 0xc6, 0x21, 0x37, 0x28, 0xc5, 0x14,
                                      0x05, 0x46, 0x04, 0x0f, 0x0e, 0xe3, 0x7f, 0x54};
    static const char data6[] = "Test Using Larger Than Block-Size Key - Hash Key First";
    uint8_t key[131], out[32];

    memset(key, 0x0b, 20);
    assert_int_equal(crypto_hmac_sha256(key, 20, "Hi There", 8, out), 0);
    assert_memory_equal(out, want1, 32);
    assert_int_equal(crypto_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, out), 0);
    assert_memory_equal(out, want2, 32);
    memset(key, 0xaa, sizeof(key));
    assert_int_equal(crypto_hmac_sha256(key, sizeof(key), data6, strlen(data6), out), 0);
    assert_memory_equal(out, want6, 32);
}

static void test_sha256_vector(void **state)
{
    /* FIPS 180-2 appendix B.1. */
    static const uint8_t abc[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea,
                                    0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
                                    0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
                                    0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    uint8_t out[32];

    crypto_sha256("abc", 3, out);
    assert_memory_equal(out, abc, 32);
}

static void test_load_refusals(void **state)
{
    struct signer *s = (struct signer *)0x1;

    assert_int_equal(signer_load(NULL, &s), -EINVAL);
    assert_null(s);
    assert_int_equal(signer_load("", &s), -EINVAL);
    assert_int_equal(signer_load("not a key", &s), -EINVAL);
    assert_int_equal(signer_load(ed25519_pkcs8, &s), -EINVAL);
    assert_int_equal(
        signer_load("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n", &s), -EINVAL);
    assert_null(s);
    signer_free(NULL);
}

/* Writes LEN bytes to DIR/NAME. */
static void write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char path[600];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static bool have_openssl(void)
{
    return system("openssl version >/dev/null 2>&1") == 0;
}

/* `openssl dgst -verify` on the JWS signature turned into DER, with the public key rebuilt from
 * the JWK: OpenSSL agrees with both encodings. Includes leading-zero signatures when seen. */
static void test_openssl_verifies(void **state)
{
    const char *base = getenv("CERTD_TEST_TMPDIR");
    char dir[512], cmd[2048];

    if (!have_openssl())
        skip();
    if (!base || !*base)
        base = "/tmp";
    (void)mkdir(base, 0700);
    snprintf(dir, sizeof(dir), "%s/signerXXXXXX", base);
    assert_non_null(mkdtemp(dir));

    for (size_t i = 0; i < FX_COUNT; i++) {
        json_t *jwk = signer_jwk(fx[i].s);
        gnutls_pubkey_t pub = pubkey_from_jwk(jwk, fx[i].type);
        gnutls_datum_t pem = {NULL, 0};
        size_t cs = coord_size(fx[i].type);
        unsigned int plain = 0, padded = 0;

        assert_int_equal(gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_PEM, &pem), 0);
        write_file(dir, "pub.pem", pem.data, pem.size);
        gnutls_free(pem.data);

        /* Up to 2 ordinary signatures and 2 with a leading zero (EC: search up to 2000). */
        for (unsigned int n = 0; n < 2000 && (plain < 2 || (cs && padded < 2)); n++) {
            char msg[64];
            int len = snprintf(msg, sizeof(msg), "openssl check %u", n);
            uint8_t *sig;
            size_t sig_len;
            bool lz;

            assert_int_equal(signer_sign(fx[i].s, msg, (size_t)len, &sig, &sig_len), 0);
            lz = cs && (sig[0] == 0 || sig[cs] == 0);
            if ((lz && padded < 2) || (!lz && plain < 2)) {
                gnutls_datum_t der = jws_to_verifiable(fx[i].type, sig, sig_len);

                write_file(dir, "data", msg, (size_t)len);
                write_file(dir, "sig.der", der.data, der.size);
                gnutls_free(der.data);
                snprintf(cmd, sizeof(cmd),
                         "openssl dgst -%s -verify '%s/pub.pem' -signature '%s/sig.der' "
                         "'%s/data' >/dev/null 2>&1",
                         fx[i].type == KEY_EC_P384 ? "sha384" : "sha256", dir, dir, dir);
                assert_int_equal(system(cmd), 0);
                openssl_verified++;
                if (lz)
                    padded++;
                else
                    plain++;
                /* And it does fail for other data, so the 0 above means something. */
                write_file(dir, "data", "tampered", 8);
                assert_int_not_equal(system(cmd), 0);
            }
            free(sig);
        }
        gnutls_pubkey_deinit(pub);
        json_decref(jwk);
    }
    snprintf(cmd, sizeof(cmd), "%s/pub.pem", dir);
    unlink(cmd);
    snprintf(cmd, sizeof(cmd), "%s/data", dir);
    unlink(cmd);
    snprintf(cmd, sizeof(cmd), "%s/sig.der", dir);
    unlink(cmd);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alg_and_type),
        cmocka_unit_test(test_jwk_matches_key),
        cmocka_unit_test(test_es256_many),
        cmocka_unit_test(test_es384_many),
        cmocka_unit_test(test_rs256),
        cmocka_unit_test(test_verification_can_fail),
        cmocka_unit_test(test_leading_zero_coordinate),
        cmocka_unit_test(test_fixed_key_vector),
        cmocka_unit_test(test_rfc7638_thumbprint),
        cmocka_unit_test(test_thumbprint_refusals),
        cmocka_unit_test(test_thumbprint_of_generated_keys),
        cmocka_unit_test(test_hmac_rfc4231),
        cmocka_unit_test(test_sha256_vector),
        cmocka_unit_test(test_load_refusals),
        cmocka_unit_test(test_openssl_verifies),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
