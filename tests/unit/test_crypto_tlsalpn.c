/* Tests for crypto/tlsalpn.c: the RFC 8737 §3 certificate is parsed back with GnuTLS (and
 * OpenSSL when installed) and checked field by field. */
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "crypto/keys.h"
#include "crypto/tlsalpn.h"

#define ACME_IDENTIFIER_OID "1.3.6.1.5.5.7.1.31"

static void make_digest(const char *key_auth, uint8_t out[32])
{
    assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, key_auth, strlen(key_auth), out), 0);
}

static gnutls_x509_crt_t import_cert(const char *pem)
{
    gnutls_x509_crt_t crt;
    gnutls_datum_t d = {(unsigned char *)pem, (unsigned int)strlen(pem)};

    assert_int_equal(gnutls_x509_crt_init(&crt), 0);
    assert_int_equal(gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM), 0);
    return crt;
}

static void spki_hex(gnutls_x509_crt_t crt, char out[65])
{
    gnutls_pubkey_t pub;
    gnutls_datum_t der = {NULL, 0};
    uint8_t digest[32];
    size_t size = 65;

    assert_int_equal(gnutls_pubkey_init(&pub), 0);
    assert_int_equal(gnutls_pubkey_import_x509(pub, crt, 0), 0);
    assert_int_equal(gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &der), 0);
    assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, der.data, der.size, digest), 0);
    gnutls_datum_t bin = {digest, sizeof(digest)};
    assert_int_equal(gnutls_hex_encode(&bin, out, &size), 0);
    gnutls_free(der.data);
    gnutls_pubkey_deinit(pub);
}

static void test_certificate_fields(void **state)
{
    const char *name = "www.example.com";
    uint8_t digest[32];
    char *cert = NULL, *key = NULL;
    gnutls_x509_crt_t crt;
    gnutls_datum_t ext = {NULL, 0};
    unsigned int critical = 0, type;
    char san[300];
    size_t size;
    time_t now = time(NULL);

    make_digest("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9"
                "fm21mqTI",
                digest);
    assert_int_equal(tlsalpn_cert_create(name, digest, &cert, &key), 0);
    assert_non_null(cert);
    assert_non_null(key);
    assert_non_null(strstr(cert, "-----BEGIN CERTIFICATE-----"));
    assert_non_null(strstr(key, "-----BEGIN PRIVATE KEY-----"));
    crt = import_cert(cert);

    /* Exactly one SAN, the dNSName. */
    size = sizeof(san);
    assert_int_equal(gnutls_x509_crt_get_subject_alt_name2(crt, 0, san, &size, &type, &critical),
                     GNUTLS_SAN_DNSNAME);
    assert_int_equal(size, strlen(name));
    assert_memory_equal(san, name, size);
    size = sizeof(san);
    assert_int_equal(gnutls_x509_crt_get_subject_alt_name2(crt, 1, san, &size, &type, &critical),
                     GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE);

    /* The acmeIdentifier: critical, extnValue = DER OCTET STRING of the digest, and only one. */
    assert_int_equal(
        gnutls_x509_crt_get_extension_by_oid2(crt, ACME_IDENTIFIER_OID, 0, &ext, &critical), 0);
    assert_int_equal(critical, 1);
    assert_int_equal(ext.size, 34);
    assert_int_equal(ext.data[0], 0x04);
    assert_int_equal(ext.data[1], 0x20);
    assert_memory_equal(ext.data + 2, digest, 32);
    gnutls_free(ext.data);
    ext.data = NULL;
    assert_int_equal(
        gnutls_x509_crt_get_extension_by_oid2(crt, ACME_IDENTIFIER_OID, 1, &ext, &critical),
        GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE);

    /* Self-signed with its own key, valid now and only for days. */
    assert_true(gnutls_x509_crt_check_issuer(crt, crt));
    assert_true(gnutls_x509_crt_get_activation_time(crt) <= now);
    assert_true(gnutls_x509_crt_get_expiration_time(crt) > now + 24 * 60 * 60);
    assert_true(gnutls_x509_crt_get_expiration_time(crt) <= now + 8 * 24 * 60 * 60);
    assert_int_equal(gnutls_x509_crt_get_version(crt), 3);
    uint8_t serial[32];
    size = sizeof(serial);
    assert_int_equal(gnutls_x509_crt_get_serial(crt, serial, &size), 0);
    assert_true(size >= 8 && size <= 20);
    assert_true(serial[0] != 0 && serial[0] < 0x80); /* positive, minimal */

    /* The key is a P-256 key and is the certificate's key. */
    enum key_type kt = KEY_TYPE_COUNT;
    char fp[KEY_FINGERPRINT_SIZE], spki[65];
    assert_int_equal(keys_inspect(key, &kt, fp), 0);
    assert_int_equal(kt, KEY_EC_P256);
    spki_hex(crt, spki);
    assert_string_equal(spki, fp);

    /* The self-signature verifies (the certificate as its own trust anchor). */
    unsigned int status = 1;
    assert_int_equal(gnutls_x509_crt_verify(crt, &crt, 1, 0, &status), 0);
    assert_int_equal(status, 0);

    /* A TLS server can load the pair (GnuTLS checks that key and certificate match). */
    gnutls_certificate_credentials_t cred;
    gnutls_datum_t cd = {(unsigned char *)cert, (unsigned int)strlen(cert)};
    gnutls_datum_t kd = {(unsigned char *)key, (unsigned int)strlen(key)};
    assert_int_equal(gnutls_certificate_allocate_credentials(&cred), 0);
    assert_true(
        gnutls_certificate_set_x509_key_mem2(cred, &cd, &kd, GNUTLS_X509_FMT_PEM, NULL, 0) >= 0);
    gnutls_certificate_free_credentials(cred);

    gnutls_x509_crt_deinit(crt);
    free(cert);
    keys_pem_free(key);
}

/* Another key's certificate must not load with this key: the check above can fail. */
static void test_key_mismatch_detected(void **state)
{
    uint8_t digest[32] = {1};
    char *c1, *k1, *c2, *k2;
    gnutls_certificate_credentials_t cred;

    assert_int_equal(tlsalpn_cert_create("a.example", digest, &c1, &k1), 0);
    assert_int_equal(tlsalpn_cert_create("a.example", digest, &c2, &k2), 0);
    assert_string_not_equal(k1, k2);
    assert_string_not_equal(c1, c2);
    gnutls_datum_t cd = {(unsigned char *)c1, (unsigned int)strlen(c1)};
    gnutls_datum_t kd = {(unsigned char *)k2, (unsigned int)strlen(k2)};
    assert_int_equal(gnutls_certificate_allocate_credentials(&cred), 0);
    assert_true(gnutls_certificate_set_x509_key_mem2(cred, &cd, &kd, GNUTLS_X509_FMT_PEM, NULL, 0) <
                0);
    gnutls_certificate_free_credentials(cred);
    free(c1);
    free(c2);
    keys_pem_free(k1);
    keys_pem_free(k2);
}

static void test_refusals(void **state)
{
    uint8_t digest[32] = {0};
    char *cert = (char *)"sentinel", *key = (char *)"sentinel";
    char long_name[300];

    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    assert_int_equal(tlsalpn_cert_create(NULL, digest, &cert, &key), -EINVAL);
    assert_null(cert);
    assert_null(key);
    assert_int_equal(tlsalpn_cert_create("", digest, &cert, &key), -EINVAL);
    assert_int_equal(tlsalpn_cert_create("a b.example", digest, &cert, &key), -EINVAL);
    assert_int_equal(tlsalpn_cert_create("caf\xc3\xa9.example", digest, &cert, &key), -EINVAL);
    assert_int_equal(tlsalpn_cert_create(long_name, digest, &cert, &key), -EINVAL);
    assert_int_equal(tlsalpn_cert_create("a.example", NULL, &cert, &key), -EINVAL);
    assert_null(cert);
    assert_null(key);
}

/* A name longer than 64 characters has no CN but still its SAN. */
static void test_long_name(void **state)
{
    const char *name = "a-label-that-is-quite-long-indeed.and-another-long-label.example.com";
    uint8_t digest[32] = {7};
    char *cert, *key, san[300];
    size_t size = sizeof(san);
    unsigned int type, critical;
    gnutls_x509_crt_t crt;

    assert_true(strlen(name) > 64);
    assert_int_equal(tlsalpn_cert_create(name, digest, &cert, &key), 0);
    crt = import_cert(cert);
    assert_int_equal(gnutls_x509_crt_get_subject_alt_name2(crt, 0, san, &size, &type, &critical),
                     GNUTLS_SAN_DNSNAME);
    assert_string_equal(san, name);
    gnutls_x509_crt_deinit(crt);
    free(cert);
    keys_pem_free(key);
}

static void test_openssl_reads(void **state)
{
    const char *base = getenv("CERTD_TEST_TMPDIR");
    char dir[512], file[600], cmd[1400], out[16384];
    uint8_t digest[32];
    char *cert, *key;
    FILE *f, *p;
    size_t n;

    if (system("openssl version >/dev/null 2>&1") != 0)
        skip();
    if (!base || !*base)
        base = "/tmp";
    (void)mkdir(base, 0700);
    snprintf(dir, sizeof(dir), "%s/alpnXXXXXX", base);
    assert_non_null(mkdtemp(dir));
    snprintf(file, sizeof(file), "%s/c.pem", dir);
    for (int i = 0; i < 32; i++)
        digest[i] = (uint8_t)(0xa0 + i);
    assert_int_equal(tlsalpn_cert_create("alpn.example.org", digest, &cert, &key), 0);
    f = fopen(file, "w");
    assert_non_null(f);
    fputs(cert, f);
    assert_int_equal(fclose(f), 0);

    snprintf(cmd, sizeof(cmd), "openssl x509 -in '%s' -noout -text 2>&1", file);
    p = popen(cmd, "r");
    assert_non_null(p);
    n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    assert_int_equal(pclose(p), 0);
    assert_non_null(strstr(out, "1.3.6.1.5.5.7.1.31: critical"));
    assert_non_null(strstr(out, "DNS:alpn.example.org"));
    /* The extension's raw bytes, as OpenSSL's DER parser sees them. */
    snprintf(cmd, sizeof(cmd), "openssl asn1parse -in '%s' 2>&1", file);
    p = popen(cmd, "r");
    assert_non_null(p);
    n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    assert_int_equal(pclose(p), 0);
    char *oid = strstr(out, ":1.3.6.1.5.5.7.1.31");
    assert_non_null(oid);
    assert_non_null(strstr(oid, "BOOLEAN"));
    assert_non_null(strstr(oid,
                           "[HEX DUMP]:0420A0A1A2A3A4A5A6A7A8A9AAABACADAEAFB0B1B2B3B4B5B6B7B8B9"
                           "BABBBCBDBEBF"));

    /* The self-signature checks out for OpenSSL too. */
    snprintf(cmd, sizeof(cmd),
             "openssl verify -ignore_critical -CAfile '%s' -check_ss_sig -partial_chain '%s' "
             ">/dev/null 2>&1",
             file, file);
    assert_int_equal(system(cmd), 0);

    unlink(file);
    rmdir(dir);
    free(cert);
    keys_pem_free(key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_certificate_fields), cmocka_unit_test(test_key_mismatch_detected),
        cmocka_unit_test(test_refusals),           cmocka_unit_test(test_long_name),
        cmocka_unit_test(test_openssl_reads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
