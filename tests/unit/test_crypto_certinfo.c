/*
 * Tests for crypto/certinfo.c. The test builds its own PKI with GnuTLS (root -> intermediate ->
 * leaves, plus impostors and an unrelated root) so every expected value is known exactly.
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
#include <time.h>

#include <cmocka.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "crypto/certinfo.h"
#include "crypto/keys.h"

#define DAY (24 * 60 * 60)

struct made {
    gnutls_x509_crt_t crt;
    gnutls_x509_privkey_t key;
    char *key_pem;
    char key_fp[KEY_FINGERPRINT_SIZE];
    char *pem;
    time_t not_before, not_after;
};

struct cert_spec {
    const char *cn;
    const struct made *issuer; /* NULL: self-signed */
    bool ca;
    const uint8_t *serial;
    size_t serial_len;
    const char *const *sans; /* dNSNames */
    size_t san_count;
    bool add_ip_san;
    time_t not_before, not_after;
    const struct made *reuse_key; /* same key as this one (for cross-signs) */
    const struct made *ski_of;    /* claim this one's subjectKeyIdentifier (impostors) */
};

static time_t now0;
static struct made root, inter, leaf, leaf_small, leaf_nibble, leaf_nosan, root2, impostor,
    leaf_by_impostor, leaf_by_leaf, cross, short_root, short_inter, short_leaf, old_root;

static const uint8_t serial_high[] = {0x00, 0x9f, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                      0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xf0};
static const uint8_t serial_one[] = {0x01};
static const uint8_t serial_nibble[] = {0x0a, 0xbc};
static const uint8_t serial_other[] = {0x42, 0x42};
static const char *const leaf_sans[] = {"www.Example.com", "example.com", "*.example.com"};

static void make_cert(struct made *m, const struct cert_spec *sp)
{
    gnutls_privkey_t signer;
    gnutls_datum_t kd, out = {NULL, 0};
    uint8_t kid[64];
    size_t kid_size;

    memset(m, 0, sizeof(*m));
    if (sp->reuse_key) {
        m->key_pem = strdup(sp->reuse_key->key_pem);
        assert_non_null(m->key_pem);
        memcpy(m->key_fp, sp->reuse_key->key_fp, sizeof(m->key_fp));
    } else {
        assert_int_equal(keys_generate(KEY_EC_P256, &m->key_pem, m->key_fp), 0);
    }
    kd = (gnutls_datum_t){(unsigned char *)m->key_pem, (unsigned int)strlen(m->key_pem)};
    assert_int_equal(gnutls_x509_privkey_init(&m->key), 0);
    assert_int_equal(gnutls_x509_privkey_import(m->key, &kd, GNUTLS_X509_FMT_PEM), 0);

    assert_int_equal(gnutls_x509_crt_init(&m->crt), 0);
    assert_int_equal(gnutls_x509_crt_set_version(m->crt, 3), 0);
    assert_int_equal(gnutls_x509_crt_set_serial(m->crt, sp->serial, sp->serial_len), 0);
    m->not_before = sp->not_before;
    m->not_after = sp->not_after;
    assert_int_equal(gnutls_x509_crt_set_activation_time(m->crt, sp->not_before), 0);
    assert_int_equal(gnutls_x509_crt_set_expiration_time(m->crt, sp->not_after), 0);
    assert_int_equal(gnutls_x509_crt_set_dn_by_oid(m->crt, GNUTLS_OID_X520_ORGANIZATION_NAME, 0,
                                                   "certd tests", 11),
                     0);
    assert_int_equal(gnutls_x509_crt_set_dn_by_oid(m->crt, GNUTLS_OID_X520_COMMON_NAME, 0, sp->cn,
                                                   (unsigned int)strlen(sp->cn)),
                     0);
    assert_int_equal(gnutls_x509_crt_set_key(m->crt, m->key), 0);
    assert_int_equal(gnutls_x509_crt_set_basic_constraints(m->crt, sp->ca, -1), 0);
    assert_int_equal(gnutls_x509_crt_set_key_usage(m->crt, sp->ca ? GNUTLS_KEY_KEY_CERT_SIGN |
                                                                        GNUTLS_KEY_CRL_SIGN
                                                                  : GNUTLS_KEY_DIGITAL_SIGNATURE),
                     0);
    kid_size = sizeof(kid);
    assert_int_equal(gnutls_x509_privkey_get_key_id(sp->ski_of ? sp->ski_of->key : m->key,
                                                    GNUTLS_KEYID_USE_SHA1, kid, &kid_size),
                     0);
    assert_int_equal(gnutls_x509_crt_set_subject_key_id(m->crt, kid, kid_size), 0);
    for (size_t i = 0; i < sp->san_count; i++)
        assert_int_equal(gnutls_x509_crt_set_subject_alt_name(
                             m->crt, GNUTLS_SAN_DNSNAME, sp->sans[i],
                             (unsigned int)strlen(sp->sans[i]), GNUTLS_FSAN_APPEND),
                         0);
    if (sp->add_ip_san)
        assert_int_equal(gnutls_x509_crt_set_subject_alt_name(m->crt, GNUTLS_SAN_IPADDRESS,
                                                              "\xc0\x00\x02\x01", 4,
                                                              GNUTLS_FSAN_APPEND),
                         0);

    const struct made *iss = sp->issuer ? sp->issuer : m;
    kid_size = sizeof(kid);
    assert_int_equal(
        gnutls_x509_privkey_get_key_id(iss->key, GNUTLS_KEYID_USE_SHA1, kid, &kid_size), 0);
    assert_int_equal(gnutls_x509_crt_set_authority_key_id(m->crt, kid, kid_size), 0);
    assert_int_equal(gnutls_privkey_init(&signer), 0);
    assert_int_equal(gnutls_privkey_import_x509(signer, iss->key, 0), 0);
    assert_int_equal(gnutls_x509_crt_privkey_sign(m->crt, iss->crt, signer, GNUTLS_DIG_SHA256, 0),
                     0);
    gnutls_privkey_deinit(signer);

    assert_int_equal(gnutls_x509_crt_export2(m->crt, GNUTLS_X509_FMT_PEM, &out), 0);
    m->pem = strndup((const char *)out.data, out.size);
    assert_non_null(m->pem);
    gnutls_free(out.data);
}

static void free_made(struct made *m)
{
    gnutls_x509_crt_deinit(m->crt);
    gnutls_x509_privkey_deinit(m->key);
    keys_pem_free(m->key_pem);
    free(m->pem);
}

static int setup(void **state)
{
    now0 = time(NULL);
    time_t nb = now0 - DAY, na = now0 + 90 * DAY;

    make_cert(&root, &(struct cert_spec){.cn = "Test Root X1",
                                         .ca = true,
                                         .serial = serial_other,
                                         .serial_len = 2,
                                         .not_before = now0 - 10 * DAY,
                                         .not_after = now0 + 3650 * DAY});
    make_cert(&inter, &(struct cert_spec){.cn = "Test Intermediate R1",
                                          .issuer = &root,
                                          .ca = true,
                                          .serial = serial_other,
                                          .serial_len = 2,
                                          .not_before = now0 - 5 * DAY,
                                          .not_after = now0 + 365 * DAY});
    make_cert(&leaf, &(struct cert_spec){.cn = "www.example.com",
                                         .issuer = &inter,
                                         .serial = serial_high,
                                         .serial_len = sizeof(serial_high),
                                         .sans = leaf_sans,
                                         .san_count = 3,
                                         .add_ip_san = true,
                                         .not_before = nb,
                                         .not_after = na});
    make_cert(&leaf_small, &(struct cert_spec){.cn = "small",
                                               .issuer = &inter,
                                               .serial = serial_one,
                                               .serial_len = 1,
                                               .sans = leaf_sans + 1,
                                               .san_count = 1,
                                               .not_before = nb,
                                               .not_after = na});
    make_cert(&leaf_nibble, &(struct cert_spec){.cn = "nibble",
                                                .issuer = &inter,
                                                .serial = serial_nibble,
                                                .serial_len = 2,
                                                .sans = leaf_sans + 1,
                                                .san_count = 1,
                                                .not_before = nb,
                                                .not_after = na});
    make_cert(&leaf_nosan, &(struct cert_spec){.cn = "nosan.example.com",
                                               .issuer = &inter,
                                               .serial = serial_one,
                                               .serial_len = 1,
                                               .not_before = nb,
                                               .not_after = na});
    make_cert(&root2, &(struct cert_spec){.cn = "Other Root",
                                          .ca = true,
                                          .serial = serial_one,
                                          .serial_len = 1,
                                          .not_before = nb,
                                          .not_after = na});
    /* Same name and key identifier as the intermediate, different key: only the signature
     * check can tell them apart. */
    make_cert(&impostor, &(struct cert_spec){.cn = "Test Intermediate R1",
                                             .issuer = &root2,
                                             .ca = true,
                                             .serial = serial_one,
                                             .serial_len = 1,
                                             .not_before = nb,
                                             .not_after = na,
                                             .ski_of = &inter});
    make_cert(&leaf_by_impostor, &(struct cert_spec){.cn = "x",
                                                     .issuer = &impostor,
                                                     .serial = serial_one,
                                                     .serial_len = 1,
                                                     .sans = leaf_sans,
                                                     .san_count = 1,
                                                     .not_before = nb,
                                                     .not_after = na});
    /* Issued by an end-entity certificate, which may not sign certificates. */
    make_cert(&leaf_by_leaf, &(struct cert_spec){.cn = "y",
                                                 .issuer = &leaf,
                                                 .serial = serial_one,
                                                 .serial_len = 1,
                                                 .sans = leaf_sans,
                                                 .san_count = 1,
                                                 .not_before = nb,
                                                 .not_after = na});
    /* An expired cross-sign of the root (same name and key) by an old root. */
    make_cert(&old_root, &(struct cert_spec){.cn = "Old Root",
                                             .ca = true,
                                             .serial = serial_one,
                                             .serial_len = 1,
                                             .not_before = now0 - 3000 * DAY,
                                             .not_after = now0 + 3000 * DAY});
    make_cert(&cross, &(struct cert_spec){.cn = "Test Root X1",
                                          .issuer = &old_root,
                                          .ca = true,
                                          .serial = serial_one,
                                          .serial_len = 1,
                                          .not_before = now0 - 2000 * DAY,
                                          .not_after = now0 - 2 * DAY,
                                          .reuse_key = &root});
    /* A root that expires in a day, with a chain that outlives it. */
    make_cert(&short_root, &(struct cert_spec){.cn = "Short Root",
                                               .ca = true,
                                               .serial = serial_one,
                                               .serial_len = 1,
                                               .not_before = now0 - 10 * DAY,
                                               .not_after = now0 + DAY});
    make_cert(&short_inter, &(struct cert_spec){.cn = "Short Inter",
                                                .issuer = &short_root,
                                                .ca = true,
                                                .serial = serial_one,
                                                .serial_len = 1,
                                                .not_before = nb,
                                                .not_after = na});
    make_cert(&short_leaf, &(struct cert_spec){.cn = "s",
                                               .issuer = &short_inter,
                                               .serial = serial_one,
                                               .serial_len = 1,
                                               .sans = leaf_sans,
                                               .san_count = 1,
                                               .not_before = nb,
                                               .not_after = na});
    return 0;
}

static int teardown(void **state)
{
    struct made *all[] = {&root,       &inter,      &leaf,        &leaf_small,       &leaf_nibble,
                          &leaf_nosan, &root2,      &impostor,    &leaf_by_impostor, &leaf_by_leaf,
                          &cross,      &short_root, &short_inter, &short_leaf,       &old_root};

    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        free_made(all[i]);
    return 0;
}

/* Concatenation of the PEMs given, NULL-terminated list. Caller frees. */
static char *cat(const char *first, ...)
{
    va_list ap;
    size_t len = 0;
    char *out;
    const char *p;

    va_start(ap, first);
    for (p = first; p; p = va_arg(ap, const char *))
        len += strlen(p);
    va_end(ap);
    out = malloc(len + 1);
    assert_non_null(out);
    len = 0;
    va_start(ap, first);
    for (p = first; p; p = va_arg(ap, const char *)) {
        memcpy(out + len, p, strlen(p));
        len += strlen(p);
    }
    va_end(ap);
    out[len] = '\0';
    return out;
}

static void hex_of_sha256(const void *data, size_t len, char out[65])
{
    uint8_t digest[32];
    size_t size = 65;

    assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, data, len, digest), 0);
    gnutls_datum_t bin = {digest, sizeof(digest)};
    assert_int_equal(gnutls_hex_encode(&bin, out, &size), 0);
}

static void assert_leaf_fingerprint(const struct made *m, const char *got)
{
    gnutls_datum_t der = {NULL, 0};
    char want[65];

    assert_int_equal(gnutls_x509_crt_export2(m->crt, GNUTLS_X509_FMT_DER, &der), 0);
    hex_of_sha256(der.data, der.size, want);
    assert_string_equal(got, want);
    gnutls_free(der.data);
}

static void test_inspect_full_chain(void **state)
{
    char *pem = cat(leaf.pem, inter.pem, root.pem, NULL);
    struct cert_info info;
    char err[256] = "x";
    uint8_t ski[64];
    size_t ski_size = sizeof(ski);
    unsigned int critical;
    enum key_type kt;
    char fp[KEY_FINGERPRINT_SIZE];

    assert_int_equal(cert_chain_inspect(pem, &info, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    /* High bit set: encoded with a 0x00 octet, named without it. */
    assert_string_equal(info.serial, "9f112233445566778899aabbccddeef0");
    assert_int_equal(info.serial_der_len, sizeof(serial_high));
    assert_memory_equal(info.serial_der, serial_high, sizeof(serial_high));
    assert_int_equal(info.not_before, leaf.not_before);
    assert_int_equal(info.not_after, leaf.not_after);
    assert_string_equal(info.issuer_dn, "CN=Test Intermediate R1,O=certd tests");
    assert_string_equal(info.issuer_cn, "Test Intermediate R1");
    assert_string_equal(info.root_issuer_cn, "Test Root X1");
    assert_int_equal(info.chain_length, 3);
    assert_leaf_fingerprint(&leaf, info.fingerprint_sha256);
    /* The SPKI hash is keys.c's fingerprint of the leaf's private key, both from generation and
     * from keys_inspect. */
    assert_string_equal(info.spki_sha256, leaf.key_fp);
    assert_int_equal(keys_inspect(leaf.key_pem, &kt, fp), 0);
    assert_string_equal(info.spki_sha256, fp);
    assert_string_not_equal(info.spki_sha256, inter.key_fp);
    /* dNSNames only (the IP SAN is skipped), lower-cased, in certificate order. */
    assert_int_equal(info.name_count, 3);
    assert_string_equal(info.names[0], "www.example.com");
    assert_string_equal(info.names[1], "example.com");
    assert_string_equal(info.names[2], "*.example.com");
    /* AKI = the intermediate's subject key identifier. */
    assert_int_equal(gnutls_x509_crt_get_subject_key_id(inter.crt, ski, &ski_size, &critical), 0);
    assert_int_equal(info.aki_len, ski_size);
    assert_memory_equal(info.aki, ski, ski_size);
    cert_info_free(&info);
    assert_null(info.serial);
    assert_int_equal(info.name_count, 0);
    cert_info_free(&info); /* twice is harmless */
    cert_info_free(NULL);
    free(pem);
}

static void test_inspect_short_chains(void **state)
{
    struct cert_info info;
    char err[256];
    char *pem = cat(leaf.pem, inter.pem, NULL);

    /* Without the root: the last certificate need not be self-signed. */
    assert_int_equal(cert_chain_inspect(pem, &info, err, sizeof(err)), 0);
    assert_int_equal(info.chain_length, 2);
    assert_string_equal(info.root_issuer_cn, "Test Root X1");
    cert_info_free(&info);
    free(pem);

    assert_int_equal(cert_chain_inspect(leaf.pem, &info, err, sizeof(err)), 0);
    assert_int_equal(info.chain_length, 1);
    assert_string_equal(info.issuer_cn, "Test Intermediate R1");
    assert_string_equal(info.root_issuer_cn, "Test Intermediate R1");
    cert_info_free(&info);
}

static void test_inspect_small_serials(void **state)
{
    struct cert_info info;
    char err[256];
    char *pem = cat(leaf_small.pem, inter.pem, NULL);

    assert_int_equal(cert_chain_inspect(pem, &info, err, sizeof(err)), 0);
    assert_string_equal(info.serial, "1");
    assert_int_equal(info.serial_der_len, 1);
    assert_int_equal(info.serial_der[0], 0x01);
    assert_int_equal(info.name_count, 1);
    assert_string_equal(info.names[0], "example.com");
    assert_string_equal(info.spki_sha256, leaf_small.key_fp);
    cert_info_free(&info);
    free(pem);

    pem = cat(leaf_nibble.pem, inter.pem, NULL);
    assert_int_equal(cert_chain_inspect(pem, &info, err, sizeof(err)), 0);
    assert_string_equal(info.serial, "abc");
    assert_int_equal(info.serial_der_len, 2);
    assert_memory_equal(info.serial_der, serial_nibble, 2);
    cert_info_free(&info);
    free(pem);
}

static void assert_inspect_refused(const char *pem, const char *err_part)
{
    struct cert_info info;
    char err[256] = "";

    memset(&info, 0xa5, sizeof(info));
    assert_int_equal(cert_chain_inspect(pem, &info, err, sizeof(err)), -EINVAL);
    assert_true(strlen(err) > 0);
    if (err_part && !strstr(err, err_part))
        fail_msg("error \"%s\" does not mention \"%s\"", err, err_part);
    /* Left zeroed: freeing it is harmless. */
    assert_null(info.serial);
    assert_null(info.names);
    assert_int_equal(info.chain_length, 0);
    cert_info_free(&info);
}

static void test_inspect_refusals(void **state)
{
    char *p;

    p = cat(leaf.pem, root2.pem, NULL); /* leaf + unrelated certificate */
    assert_inspect_refused(p, "not issued by");
    free(p);
    p = cat(inter.pem, leaf.pem, NULL); /* wrong order */
    assert_inspect_refused(p, "not issued by");
    free(p);
    p = cat(leaf.pem, root.pem, inter.pem, NULL); /* intermediate missing in its place */
    assert_inspect_refused(p, "certificate 1");
    free(p);
    p = cat(leaf.pem, impostor.pem, NULL); /* right name, wrong key: signature fails */
    assert_inspect_refused(p, "not validly signed");
    free(p);
    p = cat(leaf_by_leaf.pem, leaf.pem, inter.pem, NULL); /* signer is no CA */
    assert_inspect_refused(p, "not validly signed");
    free(p);
    p = cat(leaf_nosan.pem, inter.pem, NULL);
    assert_inspect_refused(p, "subjectAltName");
    free(p);

    assert_inspect_refused(NULL, NULL);
    assert_inspect_refused("", NULL);
    assert_inspect_refused("hello, world\n", NULL);
    assert_inspect_refused("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n", NULL);
    assert_inspect_refused(leaf.key_pem, NULL);
    /* A certificate cut short. */
    static const char end[] = "\n-----END CERTIFICATE-----\n";
    size_t half = strlen(leaf.pem) / 2;
    p = malloc(half + sizeof(end));
    assert_non_null(p);
    memcpy(p, leaf.pem, half);
    memcpy(p + half, end, sizeof(end));
    assert_inspect_refused(p, NULL);
    free(p);

    /* A NULL error buffer is allowed. */
    struct cert_info info;
    assert_int_equal(cert_chain_inspect("junk", &info, NULL, 0), -EINVAL);
}

static gnutls_x509_crt_t *import_all(const char *pem, unsigned int *n)
{
    gnutls_x509_crt_t *certs = NULL;
    gnutls_datum_t d = {(unsigned char *)pem, (unsigned int)strlen(pem)};

    assert_int_equal(gnutls_x509_crt_list_import2(&certs, n, &d, GNUTLS_X509_FMT_PEM, 0), 0);
    return certs;
}

static void free_all(gnutls_x509_crt_t *certs, unsigned int n)
{
    for (unsigned int i = 0; i < n; i++)
        gnutls_x509_crt_deinit(certs[i]);
    gnutls_free(certs);
}

static void test_split(void **state)
{
    char *pem = cat(leaf.pem, inter.pem, root.pem, NULL);
    char *lp = NULL, *rp = NULL;
    gnutls_x509_crt_t *certs;
    unsigned int n = 0;

    assert_int_equal(cert_chain_split(pem, &lp, &rp), 0);
    certs = import_all(lp, &n);
    assert_int_equal(n, 1);
    assert_true(gnutls_x509_crt_equals(certs[0], leaf.crt));
    free_all(certs, n);
    certs = import_all(rp, &n);
    assert_int_equal(n, 2);
    assert_true(gnutls_x509_crt_equals(certs[0], inter.crt));
    assert_true(gnutls_x509_crt_equals(certs[1], root.crt));
    free_all(certs, n);
    assert_null(strstr(lp, "\r"));
    free(lp);
    free(rp);
    free(pem);

    assert_int_equal(cert_chain_split(leaf.pem, &lp, &rp), 0);
    assert_string_equal(lp, leaf.pem);
    assert_string_equal(rp, "");
    free(lp);
    free(rp);

    lp = rp = (char *)"sentinel";
    assert_int_equal(cert_chain_split("no certificate here", &lp, &rp), -EINVAL);
    assert_null(lp);
    assert_null(rp);
    assert_int_equal(cert_chain_split(NULL, &lp, &rp), -EINVAL);
}

#define assert_verify(...) assert_verify_at(__LINE__, __VA_ARGS__)
static void assert_verify_at(int line, const char *chain, const char *roots, time_t at, int want,
                             const char *err_part)
{
    char err[512] = "x";
    int r = cert_chain_verify(chain, roots, (int64_t)at, err, sizeof(err));

    if (r != want)
        fail_msg("line %d: cert_chain_verify = %d, want %d (err: %s)", line, r, want, err);
    if (want == 0)
        assert_string_equal(err, "");
    else
        assert_true(strlen(err) > 0);
    if (err_part && !strstr(err, err_part))
        fail_msg("line %d: error \"%s\" does not mention \"%s\"", line, err, err_part);
}

static void test_verify(void **state)
{
    char *chain = cat(leaf.pem, inter.pem, NULL);
    char *chain_root = cat(leaf.pem, inter.pem, root.pem, NULL);
    char *roots = cat(root2.pem, root.pem, NULL);

    assert_verify(chain, root.pem, now0, 0, NULL);
    assert_verify(chain_root, root.pem, now0, 0, NULL);
    assert_verify(chain, roots, now0, 0, NULL); /* anchor among several */
    assert_verify(chain, root2.pem, now0, -EINVAL, "NOT trusted");
    assert_verify(leaf.pem, root.pem, now0, -EINVAL, NULL); /* intermediate missing */
    /* The intermediate alone as anchor is enough. */
    assert_verify(leaf.pem, inter.pem, now0, 0, NULL);
    char *bad = cat(leaf.pem, impostor.pem, NULL);
    assert_verify(bad, root2.pem, now0, -EINVAL, NULL);
    free(bad);
    bad = cat(inter.pem, leaf.pem, NULL);
    assert_verify(bad, root.pem, now0, -EINVAL, NULL);
    free(bad);

    /* NOW is honoured: before the leaf's notBefore, after its notAfter, at both edges. */
    assert_verify(chain, root.pem, leaf.not_before - 1, -EINVAL, "not yet valid");
    assert_verify(chain, root.pem, leaf.not_before, 0, NULL);
    assert_verify(chain, root.pem, leaf.not_after, 0, NULL);
    assert_verify(chain, root.pem, leaf.not_after + 1, -EINVAL, "expired");
    assert_verify(chain, root.pem, now0 + 400 * DAY, -EINVAL, "expired");

    assert_verify(NULL, root.pem, now0, -EINVAL, NULL);
    assert_verify(chain, "garbage", now0, -EINVAL, NULL);
    free(roots);
    free(chain_root);
    free(chain);
}

/* The trust anchor's own validity counts (as in GnuTLS), but an expired cross-sign sent beyond a
 * trusted root does not. */
static void test_verify_anchor_times(void **state)
{
    char *chain = cat(short_leaf.pem, short_inter.pem, NULL);
    char *with_cross = cat(leaf.pem, inter.pem, cross.pem, NULL);

    assert_verify(chain, short_root.pem, now0, 0, NULL);
    assert_verify(chain, short_root.pem, now0 + 2 * DAY, -EINVAL, "expired");

    /* The cross-sign expired two days ago; the path ends at the trusted root anyway. */
    assert_verify(with_cross, root.pem, now0, 0, NULL);
    /* Trusting only the old root, the path goes through the expired cross-sign. */
    assert_verify(with_cross, old_root.pem, now0, -EINVAL, "expired");
    free(with_cross);
    free(chain);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inspect_full_chain),
        cmocka_unit_test(test_inspect_short_chains),
        cmocka_unit_test(test_inspect_small_serials),
        cmocka_unit_test(test_inspect_refusals),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_verify),
        cmocka_unit_test(test_verify_anchor_times),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
