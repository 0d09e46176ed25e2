/* Tests for crypto/csr.c: the CSR is parsed back with GnuTLS (and OpenSSL when installed) and
 * every field ACME cares about is checked: SANs, CN, signature, public key. */
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

#include "crypto/csr.h"
#include "crypto/keys.h"

static const char ed25519_pkcs8[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIPF1jgoep0AbmHdCszCQuRuEEzO0L9dmJomPwdy83KJm\n"
    "-----END PRIVATE KEY-----\n";

static const char *const names3[] = {"example.com", "www.example.com", "api.example.com"};

struct fixture {
    enum key_type type;
    gnutls_sign_algorithm_t sig;
    char *pem;
    char fp[KEY_FINGERPRINT_SIZE];
};
static struct fixture fx[] = {
    {.type = KEY_EC_P256, .sig = GNUTLS_SIGN_ECDSA_SHA256},
    {.type = KEY_EC_P384, .sig = GNUTLS_SIGN_ECDSA_SHA256},
    {.type = KEY_RSA_2048, .sig = GNUTLS_SIGN_RSA_SHA256},
};
#define FX_COUNT (sizeof(fx) / sizeof(fx[0]))

static int setup(void **state)
{
    for (size_t i = 0; i < FX_COUNT; i++) {
        if (keys_generate(fx[i].type, &fx[i].pem, fx[i].fp) != 0)
            return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    for (size_t i = 0; i < FX_COUNT; i++)
        keys_pem_free(fx[i].pem);
    return 0;
}

static gnutls_x509_crq_t parse(const uint8_t *der, size_t len)
{
    gnutls_x509_crq_t crq;
    gnutls_datum_t d = {(unsigned char *)der, (unsigned int)len};

    assert_int_equal(gnutls_x509_crq_init(&crq), 0);
    assert_int_equal(gnutls_x509_crq_import(crq, &d, GNUTLS_X509_FMT_DER), 0);
    return crq;
}

static void assert_sans(gnutls_x509_crq_t crq, const char *const *names, size_t count)
{
    unsigned int seq;

    for (seq = 0; seq < count; seq++) {
        char buf[300];
        size_t size = sizeof(buf);
        unsigned int type = 0, critical = 1;

        assert_int_equal(
            gnutls_x509_crq_get_subject_alt_name(crq, seq, buf, &size, &type, &critical),
            GNUTLS_SAN_DNSNAME);
        assert_int_equal(type, GNUTLS_SAN_DNSNAME);
        assert_int_equal(size, strlen(names[seq]));
        assert_memory_equal(buf, names[seq], size);
        /* RFC 5280 §4.2.1.6: non-critical when the subject is not empty (it may be, below). */
    }
    char buf[300];
    size_t size = sizeof(buf);
    unsigned int type, critical;
    assert_int_equal(gnutls_x509_crq_get_subject_alt_name(crq, seq, buf, &size, &type, &critical),
                     GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE);
}

static void assert_spki(gnutls_x509_crq_t crq, const char *want_hex)
{
    gnutls_pubkey_t pub;
    gnutls_datum_t der = {NULL, 0};
    uint8_t digest[32];
    char hex[65];
    size_t hex_size = sizeof(hex);

    assert_int_equal(gnutls_pubkey_init(&pub), 0);
    assert_int_equal(gnutls_pubkey_import_x509_crq(pub, crq, 0), 0);
    assert_int_equal(gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &der), 0);
    assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, der.data, der.size, digest), 0);
    gnutls_datum_t bin = {digest, sizeof(digest)};
    assert_int_equal(gnutls_hex_encode(&bin, hex, &hex_size), 0);
    assert_string_equal(hex, want_hex);
    gnutls_free(der.data);
    gnutls_pubkey_deinit(pub);
}

static void test_three_names(void **state)
{
    for (size_t i = 0; i < FX_COUNT; i++) {
        uint8_t *der = NULL;
        size_t len = 0;
        gnutls_x509_crq_t crq;
        char cn[128];
        size_t cn_size = sizeof(cn);

        assert_int_equal(csr_create(fx[i].pem, names3, 3, &der, &len), 0);
        assert_non_null(der);
        assert_true(len > 100);
        crq = parse(der, len);

        assert_int_equal(gnutls_x509_crq_verify(crq, 0), 0);
        assert_int_equal(gnutls_x509_crq_get_version(crq), 1);
        assert_int_equal(gnutls_x509_crq_get_signature_algorithm(crq), fx[i].sig);
        assert_int_equal(
            gnutls_x509_crq_get_dn_by_oid(crq, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &cn_size), 0);
        assert_string_equal(cn, "example.com");
        /* Only the CN: no other subject attributes. */
        cn_size = sizeof(cn);
        assert_int_equal(gnutls_x509_crq_get_dn(crq, cn, &cn_size), 0);
        assert_string_equal(cn, "CN=example.com");
        assert_sans(crq, names3, 3);
        assert_spki(crq, fx[i].fp);

        /* A flipped bit in the signature must make verification fail. */
        gnutls_x509_crq_deinit(crq);
        der[len - 3] ^= 0x10;
        crq = parse(der, len);
        assert_true(gnutls_x509_crq_verify(crq, 0) < 0);
        gnutls_x509_crq_deinit(crq);
        free(der);
    }
}

/* RFC 5280 ub-common-name is 64: a longer primary name lives in the SAN only. */
static void test_long_primary_has_no_cn(void **state)
{
    const char *long_name =
        "a-rather-long-label-of-forty-characters.another-label-that-makes-it-long.example.com";
    const char *names[] = {long_name, "short.example.com"};
    uint8_t *der = NULL;
    size_t len = 0;
    gnutls_x509_crq_t crq;
    char cn[128];
    size_t cn_size = sizeof(cn);

    assert_true(strlen(long_name) > 64);
    assert_int_equal(csr_create(fx[0].pem, names, 2, &der, &len), 0);
    crq = parse(der, len);
    assert_int_equal(gnutls_x509_crq_verify(crq, 0), 0);
    assert_int_equal(
        gnutls_x509_crq_get_dn_by_oid(crq, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &cn_size),
        GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE);
    assert_sans(crq, names, 2);
    gnutls_x509_crq_deinit(crq);
    free(der);

    /* Exactly 64 characters still fits. */
    char name64[65];
    memset(name64, 'a', 52);
    memcpy(name64 + 52, ".example.com", 13);
    assert_int_equal(strlen(name64), 64);
    const char *one[] = {name64};
    assert_int_equal(csr_create(fx[0].pem, one, 1, &der, &len), 0);
    crq = parse(der, len);
    cn_size = sizeof(cn);
    assert_int_equal(
        gnutls_x509_crq_get_dn_by_oid(crq, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &cn_size), 0);
    assert_string_equal(cn, name64);
    assert_sans(crq, one, 1);
    gnutls_x509_crq_deinit(crq);
    free(der);
}

static void test_refusals(void **state)
{
    const char *empty[] = {""};
    const char *with_null[] = {"example.com", NULL};
    uint8_t *der = (uint8_t *)"sentinel";
    size_t len = 99;

    assert_int_equal(csr_create(fx[0].pem, names3, 0, &der, &len), -EINVAL);
    assert_null(der);
    assert_int_equal(len, 0);
    assert_int_equal(csr_create(fx[0].pem, NULL, 1, &der, &len), -EINVAL);
    assert_int_equal(csr_create(fx[0].pem, empty, 1, &der, &len), -EINVAL);
    assert_int_equal(csr_create(fx[0].pem, with_null, 2, &der, &len), -EINVAL);
    assert_int_equal(csr_create(NULL, names3, 3, &der, &len), -EINVAL);
    assert_int_equal(csr_create("garbage", names3, 3, &der, &len), -EINVAL);
    assert_int_equal(csr_create(ed25519_pkcs8, names3, 3, &der, &len), -EINVAL);
    assert_null(der);
}

/* Runs CMD, returning its exit status and up to OUTSZ-1 bytes of combined output. */
static int run(const char *cmd, char *out, size_t outsz)
{
    FILE *p = popen(cmd, "r");
    size_t n;

    assert_non_null(p);
    n = fread(out, 1, outsz - 1, p);
    out[n] = '\0';
    return pclose(p);
}

static void test_openssl_parses(void **state)
{
    const char *base = getenv("CERTD_TEST_TMPDIR");
    char dir[512], file[600], cmd[1400], out[16384];
    uint8_t *der = NULL;
    size_t len = 0;
    FILE *f;

    if (system("openssl version >/dev/null 2>&1") != 0)
        skip();
    if (!base || !*base)
        base = "/tmp";
    (void)mkdir(base, 0700);
    snprintf(dir, sizeof(dir), "%s/csrXXXXXX", base);
    assert_non_null(mkdtemp(dir));
    snprintf(file, sizeof(file), "%s/req.der", dir);

    for (size_t i = 0; i < FX_COUNT; i++) {
        assert_int_equal(csr_create(fx[i].pem, names3, 3, &der, &len), 0);
        f = fopen(file, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(der, 1, len, f), len);
        assert_int_equal(fclose(f), 0);

        snprintf(cmd, sizeof(cmd), "openssl req -inform DER -in '%s' -noout -text -verify 2>&1",
                 file);
        assert_int_equal(run(cmd, out, sizeof(out)), 0);
        assert_non_null(strstr(out, "verify OK"));
        assert_null(strstr(out, "verify failure"));
        assert_non_null(strstr(out, "Subject: CN = example.com"));
        assert_non_null(strstr(out, "DNS:example.com, DNS:www.example.com, DNS:api.example.com"));
        assert_non_null(strstr(out, fx[i].type == KEY_RSA_2048 ? "sha256WithRSAEncryption"
                                                               : "ecdsa-with-SHA256"));
        /* The same DER with its signature damaged fails OpenSSL's check too. */
        der[len - 3] ^= 0x10;
        f = fopen(file, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(der, 1, len, f), len);
        assert_int_equal(fclose(f), 0);
        /* OpenSSL 3.0 exits 0 even when the self-signature fails, so read what it says. */
        (void)run(cmd, out, sizeof(out));
        assert_null(strstr(out, "verify OK"));
        assert_non_null(strstr(out, "verify failure"));
        free(der);
    }
    unlink(file);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_three_names),
        cmocka_unit_test(test_long_primary_has_no_cn),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_openssl_parses),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
