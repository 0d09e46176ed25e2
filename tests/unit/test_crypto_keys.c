/* Tests for crypto/keys.c: generation, PEM form, type detection and the SPKI fingerprint. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "crypto/keys.h"

/* Test vectors made with OpenSSL 3.0; the fingerprint is
 * `openssl pkey -in k.pem -pubout -outform DER | sha256sum`, so it checks our definition against
 * an independent implementation without needing openssl at test time. */
static const char ec_p256_traditional[] =
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MHcCAQEEIO/C/kTnr6JhDL+Nt4dSdFtzgdhFE7aF4D7Y0bingGJxoAoGCCqGSM49\n"
    "AwEHoUQDQgAEJ8Vo5Y6wazosy1JWD65Mv2oGpMEzUgfCexPYt0bq+ybFsGsj5EFE\n"
    "72j0bl0NpJQ5QKLY6LDUGQFFNlhrA4tg5A==\n"
    "-----END EC PRIVATE KEY-----\n";
static const char ec_p256_traditional_sha256[] =
    "2518e8a4d60a60516407ec128f90263b1ba3a69739209cb9b2512cb224cfbc98";

static const char ed25519_pkcs8[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIPF1jgoep0AbmHdCszCQuRuEEzO0L9dmJomPwdy83KJm\n"
    "-----END PRIVATE KEY-----\n";

static const char rsa_1024_traditional[] =
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIICWwIBAAKBgQDIdMCWi/n8PaMg1iBcXc/ZD5aJNiEL+3XcRdw34u8kWeHzg5HL\n"
    "MHEuDcO43Xtq76tXwjwVCY7fGxCtBahnZHoSiA7ScUR76ehUBXlcIZJuhoL9r+dC\n"
    "ux0KNyahGLe0fevsx8pfKossDzFwTBOD3EubAGvo8BSEZmKVjJHYkpf6yQIDAQAB\n"
    "AoGADEljuJaR1w0sH4ogZ6j0YXicIILp2aMrITpC+kX1pIPB3rw0xoCMn2cGlSE2\n"
    "PGK+XN2x8xQn5rLw/bn4DYZSGQ7D0dnTU2/7ZIPSnKHoY8+E0bkgtQrSAD8aCU0+\n"
    "g9KWg90B3szEQ+Jm+k/rSaZIZcjft4Ler25wTVp/kYtA4oECQQD7fDDzqsvpoOp2\n"
    "T14EYPydnV+jGTFNXqYAon7KMbrAeXHGImd6liVs6moc/+ULfiIFquwpomkpy1lL\n"
    "zNpw8zJZAkEAzA4I8hYBnlaMV3Tou03CNtx9Gv03gU5JoaB3v+jAYJKB625/Aeie\n"
    "9788S+hgMn8U1/1QelcxiLNKGE50K02d8QJACjIZxfc5tyoX9132YNURyM4Vj4Y4\n"
    "8nsQ3du4qjfj62PBEhhY+6ZUtBq43J4fShz+Ah7Q3ktAWjptT15pyMSDWQJAZPxl\n"
    "LPn7HxOSLQ4sx9W50lDYkWzT9Wh7REQYP5++5YxcQ9nRfW5UjiPUgXSldxgxhptV\n"
    "ItbYKuEgQFtDXtLw4QJAJn9LDKoat25KmhVxnW9Q6R7cdkBPNQM4ugOW5fHGE/Di\n"
    "41SiCicPgKKSrhhnHrpb64gyr5re6uvUeOpnlq868A==\n"
    "-----END RSA PRIVATE KEY-----\n";

static const char ec_p521_pkcs8[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIHuAgEAMBAGByqGSM49AgEGBSuBBAAjBIHWMIHTAgEBBEIAvjsgyrS3DNqhfpnW\n"
    "mpMEGcGcfw1rHwLHQjKMtCe2BBwRzI6PLEi+K0VTEjME1aSrU1fajLHVdjWik5Vq\n"
    "z7pNwBShgYkDgYYABAAZajMG0g2REezG5GOFX6OvtL4NomtqYbjkH0fsJMAOFK9j\n"
    "QUJ+5kQV+aZDT5DQ5SwF4nzOSq9LYcyT3YoKaAXGxwERWTsg/waLOgWNyq21+HhB\n"
    "M++FBNBNLzBBqqQMCxFKRxzRjGV7yVL8Fish4xfAIHx4w4ED0nWjxCxxcSZFfF2J\n"
    "Yw==\n"
    "-----END PRIVATE KEY-----\n";

/* P-256 key encrypted with password "secret" (PBES2, AES-256-CBC). */
static const char ec_p256_encrypted[] =
    "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
    "MIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAjbnn+vuJWEogICCAAw\n"
    "DAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEEK0CKyS17wIHKqHjw+c6IkAEgZCT\n"
    "PvSkupbNvSTs8TsI84G0fI0n+Jfnm32rccUSBNnUIHNELifkXt9i7hmR5+xM/UYt\n"
    "GJmfc+KVmXu+MkQSebCqxHLE+xx7fE+KveD0g+cLxiNKE42cb/5hxpTdDoBz0+Rk\n"
    "Wjs9UMD77ejB7t4vjw5xeNa06aWPQTyMrFlmVA7rAHHpjRsnSKLCFARJOSlUJrE=\n"
    "-----END ENCRYPTED PRIVATE KEY-----\n";

static const char pkcs8_header[] = "-----BEGIN PRIVATE KEY-----\n";

/* One generated key per type, made once in the group setup: RSA-4096 takes seconds. */
struct generated {
    char *pem;
    char fp[KEY_FINGERPRINT_SIZE];
};
static struct generated gen[KEY_TYPE_COUNT];

static int setup_generate_all(void **state)
{
    for (int t = 0; t < KEY_TYPE_COUNT; t++) {
        memset(gen[t].fp, 'X', sizeof(gen[t].fp));
        if (keys_generate((enum key_type)t, &gen[t].pem, gen[t].fp) != 0)
            return -1;
    }
    return 0;
}

static int teardown_generate_all(void **state)
{
    for (int t = 0; t < KEY_TYPE_COUNT; t++) {
        keys_pem_free(gen[t].pem);
        gen[t].pem = NULL;
    }
    return 0;
}

static void assert_hex_fingerprint(const char *fp)
{
    assert_int_equal(strlen(fp), 64);
    for (size_t i = 0; i < 64; i++)
        assert_non_null(strchr("0123456789abcdef", fp[i]));
}

static gnutls_x509_privkey_t import_pem(const char *pem)
{
    gnutls_x509_privkey_t key;
    gnutls_datum_t d = {(unsigned char *)pem, (unsigned int)strlen(pem)};

    assert_int_equal(gnutls_x509_privkey_init(&key), 0);
    assert_int_equal(gnutls_x509_privkey_import(key, &d, GNUTLS_X509_FMT_PEM), 0);
    return key;
}

static void test_generated_pem_form(void **state)
{
    for (int t = 0; t < KEY_TYPE_COUNT; t++) {
        const char *pem = gen[t].pem;

        assert_non_null(pem);
        assert_memory_equal(pem, pkcs8_header, strlen(pkcs8_header));
        assert_non_null(strstr(pem, "-----END PRIVATE KEY-----\n"));
        assert_null(strstr(pem, "ENCRYPTED"));
        assert_hex_fingerprint(gen[t].fp);
    }
}

static void test_generated_inspect_roundtrip(void **state)
{
    for (int t = 0; t < KEY_TYPE_COUNT; t++) {
        enum key_type got = KEY_TYPE_COUNT;
        char fp[KEY_FINGERPRINT_SIZE] = "";

        assert_int_equal(keys_inspect(gen[t].pem, &got, fp), 0);
        assert_int_equal(got, t);
        assert_string_equal(fp, gen[t].fp);
    }
}

/* Algorithm, RSA modulus size and EC curve checked with GnuTLS directly, not through our code. */
static void test_generated_parameters(void **state)
{
    static const struct {
        gnutls_pk_algorithm_t algo;
        unsigned int bits;
        gnutls_ecc_curve_t curve;
    } want[KEY_TYPE_COUNT] = {
        [KEY_EC_P256] = {GNUTLS_PK_ECDSA, 256, GNUTLS_ECC_CURVE_SECP256R1},
        [KEY_EC_P384] = {GNUTLS_PK_ECDSA, 384, GNUTLS_ECC_CURVE_SECP384R1},
        [KEY_RSA_2048] = {GNUTLS_PK_RSA, 2048, GNUTLS_ECC_CURVE_INVALID},
        [KEY_RSA_3072] = {GNUTLS_PK_RSA, 3072, GNUTLS_ECC_CURVE_INVALID},
        [KEY_RSA_4096] = {GNUTLS_PK_RSA, 4096, GNUTLS_ECC_CURVE_INVALID},
    };

    for (int t = 0; t < KEY_TYPE_COUNT; t++) {
        gnutls_x509_privkey_t key = import_pem(gen[t].pem);
        unsigned int bits = 0;

        assert_int_equal(gnutls_x509_privkey_get_pk_algorithm2(key, &bits), want[t].algo);
        assert_int_equal(bits, want[t].bits);
        if (want[t].algo == GNUTLS_PK_ECDSA) {
            gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
            gnutls_datum_t x, y, k;

            assert_int_equal(gnutls_x509_privkey_export_ecc_raw(key, &curve, &x, &y, &k), 0);
            assert_int_equal(curve, want[t].curve);
            gnutls_free(x.data);
            gnutls_free(y.data);
            gnutls_memset(k.data, 0, k.size);
            gnutls_free(k.data);
        }
        assert_int_equal(gnutls_x509_privkey_verify_params(key), 0);
        gnutls_x509_privkey_deinit(key);
    }
}

/* Runs "PRE<file>POST" through the shell with PEM stored in <file> and returns the first 64
 * chars of its output in OUT, or NULL if the tool is missing or fails. */
static char *run_hash_tool(const char *pre, const char *post, const char *pem,
                           char out[KEY_FINGERPRINT_SIZE])
{
    const char *base = getenv("CERTD_TEST_TMPDIR");
    char dir[512], file[600], line[1200];
    FILE *f, *p;
    char *ret = NULL;

    if (!base || !*base)
        base = "/tmp";
    (void)mkdir(base, 0700); /* ctest names it but does not create it */
    snprintf(dir, sizeof(dir), "%s/keysXXXXXX", base);
    if (!mkdtemp(dir))
        return NULL;
    snprintf(file, sizeof(file), "%s/k.pem", dir);
    f = fopen(file, "w");
    if (!f)
        goto out_dir;
    fputs(pem, f);
    fclose(f);

    snprintf(line, sizeof(line), "%s'%s'%s", pre, file, post);
    p = popen(line, "r");
    if (!p)
        goto out_file;
    if (fgets(line, sizeof(line), p) && strlen(line) >= 64) {
        memcpy(out, line, 64);
        out[64] = '\0';
        ret = out;
    }
    if (pclose(p) != 0)
        ret = NULL;
out_file:
    unlink(file);
out_dir:
    rmdir(dir);
    return ret;
}

/* Our fingerprint must be what OpenSSL (and certtool) compute over the full SPKI DER. Skipped
 * per tool when the tool is not installed; the fixed vector test covers the offline case. */
static void test_fingerprint_matches_external_tools(void **state)
{
    int compared = 0;

    for (int t = 0; t < KEY_TYPE_COUNT; t++) {
        char ext[KEY_FINGERPRINT_SIZE];

        if (run_hash_tool("openssl pkey -in ", " -pubout -outform DER 2>/dev/null | sha256sum",
                          gen[t].pem, ext)) {
            assert_string_equal(gen[t].fp, ext);
            compared++;
        }
        if (run_hash_tool("certtool --load-privkey ",
                          " --pubkey-info --outder 2>/dev/null | sha256sum", gen[t].pem, ext)) {
            assert_string_equal(gen[t].fp, ext);
            compared++;
        }
    }
    if (compared == 0)
        skip();
}

static void test_fixed_vector_traditional_ec(void **state)
{
    enum key_type got = KEY_TYPE_COUNT;
    char fp[KEY_FINGERPRINT_SIZE] = "";

    assert_int_equal(keys_inspect(ec_p256_traditional, &got, fp), 0);
    assert_int_equal(got, KEY_EC_P256);
    assert_string_equal(fp, ec_p256_traditional_sha256);
}

/* The traditional RFC 5915 / PKCS#1 forms of a generated key give the same type and fingerprint
 * as its PKCS#8 form. */
static void test_traditional_forms_of_generated_keys(void **state)
{
    static const enum key_type types[] = {KEY_EC_P256, KEY_EC_P384, KEY_RSA_2048};

    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        enum key_type t = types[i];
        gnutls_x509_privkey_t key = import_pem(gen[t].pem);
        gnutls_datum_t trad = {NULL, 0};
        enum key_type got = KEY_TYPE_COUNT;
        char fp[KEY_FINGERPRINT_SIZE] = "";
        char *pem;

        assert_int_equal(gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &trad), 0);
        pem = calloc(1, trad.size + 1);
        assert_non_null(pem);
        memcpy(pem, trad.data, trad.size);
        assert_non_null(strstr(pem, t == KEY_RSA_2048 ? "-----BEGIN RSA PRIVATE KEY-----"
                                                      : "-----BEGIN EC PRIVATE KEY-----"));

        assert_int_equal(keys_inspect(pem, &got, fp), 0);
        assert_int_equal(got, t);
        assert_string_equal(fp, gen[t].fp);

        keys_pem_free(pem);
        gnutls_memset(trad.data, 0, trad.size);
        gnutls_free(trad.data);
        gnutls_x509_privkey_deinit(key);
    }
}

static void test_fresh_keys_differ(void **state)
{
    static const enum key_type types[] = {KEY_EC_P256, KEY_EC_P384, KEY_RSA_2048};

    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        char *pem = NULL;
        char fp[KEY_FINGERPRINT_SIZE];

        assert_int_equal(keys_generate(types[i], &pem, fp), 0);
        assert_string_not_equal(pem, gen[types[i]].pem);
        assert_string_not_equal(fp, gen[types[i]].fp);
        keys_pem_free(pem);
    }
}

static void assert_refused(const char *pem)
{
    enum key_type got = KEY_RSA_4096;
    char fp[KEY_FINGERPRINT_SIZE] = "untouched";

    assert_int_equal(keys_inspect(pem, &got, fp), -EINVAL);
    /* Outputs are only written on success. */
    assert_int_equal(got, KEY_RSA_4096);
    assert_string_equal(fp, "untouched");
}

static void test_garbage_refused(void **state)
{
    assert_refused(NULL);
    assert_refused("");
    assert_refused("hello, world\n");
    assert_refused("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    assert_refused("-----BEGIN PRIVATE KEY-----\n!!!not base64!!!\n-----END PRIVATE KEY-----\n");

    /* A generated key cut in half. */
    size_t half = strlen(gen[KEY_EC_P256].pem) / 2;
    char *cut = strndup(gen[KEY_EC_P256].pem, half);
    assert_non_null(cut);
    assert_refused(cut);
    keys_pem_free(cut);

    /* A certificate-shaped PEM is not a key. */
    assert_refused("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n");
}

static void test_unsupported_types_refused(void **state)
{
    assert_refused(ed25519_pkcs8);
    assert_refused(rsa_1024_traditional);
    assert_refused(ec_p521_pkcs8);
    /* We never hold a password, so encrypted keys are not usable. */
    assert_refused(ec_p256_encrypted);
}

static void test_oversized_input_refused(void **state)
{
    /* A valid key followed by a megabyte of padding: refused by size before parsing. */
    size_t n = 1024 * 1024;
    char *big = malloc(n + 1);

    assert_non_null(big);
    memset(big, '\n', n);
    big[n] = '\0';
    memcpy(big, ec_p256_traditional, strlen(ec_p256_traditional));
    assert_refused(big);
    free(big);
}

/* The public point of one key paired with the scalar of another must not pass as a key: its
 * fingerprint would describe a key nobody holds. */
static void test_mismatched_public_half_refused(void **state)
{
    gnutls_x509_privkey_t a = import_pem(gen[KEY_EC_P256].pem);
    gnutls_x509_privkey_t b = import_pem(ec_p256_traditional);
    gnutls_x509_privkey_t mixed;
    gnutls_ecc_curve_t curve;
    gnutls_datum_t ax, ay, ak, bx, by, bk, out = {NULL, 0};

    assert_int_equal(gnutls_x509_privkey_export_ecc_raw(a, &curve, &ax, &ay, &ak), 0);
    assert_int_equal(gnutls_x509_privkey_export_ecc_raw(b, &curve, &bx, &by, &bk), 0);
    assert_int_equal(gnutls_x509_privkey_init(&mixed), 0);
    int r = gnutls_x509_privkey_import_ecc_raw(mixed, curve, &bx, &by, &ak);
    if (r == 0 && gnutls_x509_privkey_export2_pkcs8(mixed, GNUTLS_X509_FMT_PEM, NULL,
                                                    GNUTLS_PKCS_PLAIN, &out) == 0) {
        char *pem = strndup((const char *)out.data, out.size);
        assert_non_null(pem);
        assert_refused(pem);
        keys_pem_free(pem);
    }
    gnutls_free(out.data);
    gnutls_free(ax.data);
    gnutls_free(ay.data);
    gnutls_free(ak.data);
    gnutls_free(bx.data);
    gnutls_free(by.data);
    gnutls_free(bk.data);
    gnutls_x509_privkey_deinit(mixed);
    gnutls_x509_privkey_deinit(a);
    gnutls_x509_privkey_deinit(b);
    if (r != 0)
        skip(); /* GnuTLS itself refused to build the inconsistent key */
}

static void test_generate_invalid_type(void **state)
{
    char *pem = (char *)"sentinel";
    char fp[KEY_FINGERPRINT_SIZE];

    assert_int_equal(keys_generate(KEY_TYPE_COUNT, &pem, fp), -EINVAL);
    assert_null(pem);
    assert_int_equal(keys_generate((enum key_type)(KEY_TYPE_COUNT + 1), &pem, fp), -EINVAL);
    assert_null(pem);
}

static void test_pem_free_null(void **state)
{
    keys_pem_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generated_pem_form),
        cmocka_unit_test(test_generated_inspect_roundtrip),
        cmocka_unit_test(test_generated_parameters),
        cmocka_unit_test(test_fingerprint_matches_external_tools),
        cmocka_unit_test(test_fixed_vector_traditional_ec),
        cmocka_unit_test(test_traditional_forms_of_generated_keys),
        cmocka_unit_test(test_fresh_keys_differ),
        cmocka_unit_test(test_garbage_refused),
        cmocka_unit_test(test_unsupported_types_refused),
        cmocka_unit_test(test_oversized_input_refused),
        cmocka_unit_test(test_mismatched_public_half_refused),
        cmocka_unit_test(test_generate_invalid_type),
        cmocka_unit_test(test_pem_free_null),
    };

    return cmocka_run_group_tests(tests, setup_generate_all, teardown_generate_all);
}
