#include "crypto/certinfo.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509-ext.h>
#include <gnutls/x509.h>

#include "core/log.h"
#include "crypto/signer.h"

/* A CA's chain is a few KB; 1 MiB leaves room for oddities and bounds what a hostile server can
 * make us base64-decode and parse. */
#define CHAIN_PEM_MAX (1024 * 1024)
#define CHAIN_CERTS_MAX 16
/* Trust anchors may be a whole system bundle (about 150 roots, 200 KB). */
#define ROOTS_PEM_MAX (4 * 1024 * 1024)
#define ROOTS_CERTS_MAX 1000
/* RFC 5280 §4.1.2.2 allows 20 octets; accept a generous superset of what CAs emit. */
#define SERIAL_MAX 64
#define AKI_MAX 128
#define CN_MAX 1024
#define SAN_MAX 1000
#define DNS_NAME_MAX 253

/* We only check signatures and names here; time is the caller's business (or our own check in
 * cert_chain_verify, which takes an explicit NOW). */
#define NO_TIME_FLAGS                                                                              \
    (GNUTLS_VERIFY_DISABLE_TIME_CHECKS | GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS)

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t errsz, const char *fmt,
                                                          ...)
{
    va_list ap;

    if (!err || errsz == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
}

static void free_certs(gnutls_x509_crt_t *certs, unsigned int n)
{
    if (!certs)
        return;
    for (unsigned int i = 0; i < n; i++)
        gnutls_x509_crt_deinit(certs[i]);
    gnutls_free(certs);
}

/* Imports every certificate in PEM (at most MAX_CERTS, PEM at most MAX_LEN bytes) in the order
 * given. -EINVAL with a reason in ERR, or -ENOMEM. */
static int import_certs(const char *pem, size_t max_len, unsigned int max_certs,
                        gnutls_x509_crt_t **certs_out, unsigned int *n_out, char *err, size_t errsz)
{
    gnutls_x509_crt_t *certs = NULL;
    unsigned int n = 0;
    size_t len;
    int r;

    *certs_out = NULL;
    *n_out = 0;
    if (!pem) {
        set_err(err, errsz, "no certificate given");
        return -EINVAL;
    }
    len = strnlen(pem, max_len + 1);
    if (len > max_len) {
        set_err(err, errsz, "certificate PEM larger than %zu bytes", max_len);
        return -EINVAL;
    }
    if (len == 0) {
        set_err(err, errsz, "empty certificate PEM");
        return -EINVAL;
    }
    gnutls_datum_t in = {(unsigned char *)pem, (unsigned int)len};
    /* No GNUTLS_X509_CRT_LIST_SORT / FAIL_IF_UNSORTED: the order is part of what we check, and
     * we report a wrong order ourselves. */
    r = gnutls_x509_crt_list_import2(&certs, &n, &in, GNUTLS_X509_FMT_PEM, 0);
    if (r == GNUTLS_E_MEMORY_ERROR)
        return -ENOMEM;
    if (r < 0 || n == 0) {
        free_certs(certs, n);
        set_err(err, errsz, "no parsable PEM certificate: %s",
                r < 0 ? gnutls_strerror(r) : "none found");
        return -EINVAL;
    }
    if (n > max_certs) {
        free_certs(certs, n);
        set_err(err, errsz, "more than %u certificates", max_certs);
        return -EINVAL;
    }
    *certs_out = certs;
    *n_out = n;
    return 0;
}

/* Lower-case hex of LEN octets into a new string. NULL on allocation failure. */
static char *hex_dup(const uint8_t *data, size_t len)
{
    size_t size = 2 * len + 1;
    char *out = malloc(size);

    if (!out)
        return NULL;
    gnutls_datum_t bin = {(unsigned char *)data, (unsigned int)len};
    if (gnutls_hex_encode(&bin, out, &size) < 0) {
        free(out);
        return NULL;
    }
    return out;
}

static int hex_into(const uint8_t *data, size_t len, char *out, size_t out_size)
{
    gnutls_datum_t bin = {(unsigned char *)data, (unsigned int)len};

    return gnutls_hex_encode(&bin, out, &out_size) < 0 ? -EIO : 0;
}

/* The first CN of CRT's issuer in *OUT (NULL if it has none). 0, -EINVAL (unreadable), -ENOMEM. */
static int issuer_cn_dup(gnutls_x509_crt_t crt, char **out)
{
    char buf[CN_MAX + 1];
    size_t size = sizeof(buf);
    int r;

    *out = NULL;
    r = gnutls_x509_crt_get_issuer_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, buf, &size);
    if (r == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
        return 0;
    if (r < 0)
        return -EINVAL;
    buf[sizeof(buf) - 1] = '\0';
    *out = strdup(buf);
    return *out ? 0 : -ENOMEM;
}

/* A dNSName as CAs issue it: printable ASCII without spaces (RFC 5280 §4.2.1.6 IA5String with
 * the preferred name syntax; "*." for wildcards), and no embedded NUL to fool C string code. */
static bool dns_name_ok(const gnutls_datum_t *d)
{
    if (d->size == 0 || d->size > DNS_NAME_MAX)
        return false;
    for (unsigned int i = 0; i < d->size; i++) {
        if (d->data[i] <= 0x20 || d->data[i] >= 0x7f)
            return false;
    }
    return true;
}

/* Collects the dNSName SANs of CRT in certificate order, lower-cased. -EINVAL with a reason in
 * ERR (no SAN extension, no dNSName, malformed), or -ENOMEM. */
static int collect_names(gnutls_x509_crt_t crt, struct cert_info *info, char *err, size_t errsz)
{
    gnutls_subject_alt_names_t sans = NULL;
    gnutls_datum_t ext = {NULL, 0};
    unsigned int critical = 0;
    int ret, r;

    r = gnutls_x509_crt_get_extension_by_oid2(crt, GNUTLS_X509EXT_OID_SAN, 0, &ext, &critical);
    if (r < 0) {
        set_err(err, errsz, "leaf certificate has no subjectAltName");
        return -EINVAL;
    }
    r = gnutls_subject_alt_names_init(&sans);
    if (r < 0) {
        ret = -ENOMEM;
        goto out;
    }
    r = gnutls_x509_ext_import_subject_alt_names(&ext, sans, 0);
    if (r < 0) {
        set_err(err, errsz, "malformed subjectAltName: %s", gnutls_strerror(r));
        ret = -EINVAL;
        goto out;
    }
    for (unsigned int seq = 0;; seq++) {
        unsigned int type;
        gnutls_datum_t san;
        char **grown, *name;

        r = gnutls_subject_alt_names_get(sans, seq, &type, &san, NULL);
        if (r == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
            break;
        if (r < 0) {
            set_err(err, errsz, "malformed subjectAltName: %s", gnutls_strerror(r));
            ret = -EINVAL;
            goto out;
        }
        if (seq >= SAN_MAX) {
            set_err(err, errsz, "more than %d subjectAltName entries", SAN_MAX);
            ret = -EINVAL;
            goto out;
        }
        if (type != GNUTLS_SAN_DNSNAME)
            continue;
        if (!dns_name_ok(&san)) {
            set_err(err, errsz, "malformed dNSName in subjectAltName");
            ret = -EINVAL;
            goto out;
        }
        grown = realloc(info->names, (info->name_count + 1) * sizeof(*grown));
        if (!grown) {
            ret = -ENOMEM;
            goto out;
        }
        info->names = grown;
        name = strndup((const char *)san.data, san.size);
        if (!name) {
            ret = -ENOMEM;
            goto out;
        }
        /* DNS names compare case-insensitively (RFC 4343); we store the canonical form. */
        for (char *p = name; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        info->names[info->name_count++] = name;
    }
    if (info->name_count == 0) {
        set_err(err, errsz, "leaf certificate has no dNSName in subjectAltName");
        ret = -EINVAL;
        goto out;
    }
    ret = 0;
out:
    gnutls_subject_alt_names_deinit(sans);
    gnutls_free(ext.data);
    return ret;
}

/* Serial number (RFC 5280 §4.1.2.2) in both forms: content octets and hex without leading
 * zeros. */
static int read_serial(gnutls_x509_crt_t crt, struct cert_info *info, char *err, size_t errsz)
{
    uint8_t buf[SERIAL_MAX];
    size_t size = sizeof(buf), skip = 0;
    char *hex;
    int r;

    r = gnutls_x509_crt_get_serial(crt, buf, &size);
    if (r < 0 || size == 0) {
        set_err(err, errsz, "unreadable serial number");
        return -EINVAL;
    }
    info->serial_der = malloc(size);
    if (!info->serial_der)
        return -ENOMEM;
    memcpy(info->serial_der, buf, size);
    info->serial_der_len = size;

    /* The DER form has a 0x00 octet in front when the high bit is set (and zero-valued octets
     * in non-minimal encodings); the hex form names the number, so both go. */
    while (skip + 1 < size && buf[skip] == 0)
        skip++;
    hex = hex_dup(buf + skip, size - skip);
    if (!hex)
        return -ENOMEM;
    if (hex[0] == '0' && hex[1] != '\0')
        memmove(hex, hex + 1, strlen(hex)); /* one nibble of leading zero, e.g. "0a" */
    info->serial = hex;
    return 0;
}

/* SHA-256 of the DER SubjectPublicKeyInfo, the same definition as keys.c's fingerprint. */
static int spki_sha256(gnutls_x509_crt_t crt, char out[65])
{
    gnutls_pubkey_t pub = NULL;
    gnutls_datum_t spki = {NULL, 0};
    uint8_t digest[32];
    int ret = -EIO;

    if (gnutls_pubkey_init(&pub) < 0)
        return -ENOMEM;
    if (gnutls_pubkey_import_x509(pub, crt, 0) < 0 ||
        gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &spki) < 0)
        goto out;
    crypto_sha256(spki.data, spki.size, digest);
    ret = hex_into(digest, sizeof(digest), out, 65);
out:
    gnutls_free(spki.data);
    gnutls_pubkey_deinit(pub);
    return ret;
}

static int read_leaf(gnutls_x509_crt_t crt, struct cert_info *info, char *err, size_t errsz)
{
    gnutls_datum_t dn = {NULL, 0};
    uint8_t buf[AKI_MAX];
    size_t size;
    unsigned int critical;
    time_t t;
    int ret, r;

    ret = read_serial(crt, info, err, errsz);
    if (ret < 0)
        return ret;

    t = gnutls_x509_crt_get_activation_time(crt);
    if (t == (time_t)-1) {
        set_err(err, errsz, "unreadable notBefore");
        return -EINVAL;
    }
    info->not_before = (int64_t)t;
    t = gnutls_x509_crt_get_expiration_time(crt);
    if (t == (time_t)-1) {
        set_err(err, errsz, "unreadable notAfter");
        return -EINVAL;
    }
    info->not_after = (int64_t)t;

    /* Flags 0: RFC 4514 order (most specific RDN first), not GnuTLS's old compat order. */
    r = gnutls_x509_crt_get_issuer_dn3(crt, &dn, 0);
    if (r < 0) {
        set_err(err, errsz, "unreadable issuer name: %s", gnutls_strerror(r));
        return -EINVAL;
    }
    info->issuer_dn = strndup((const char *)dn.data, dn.size);
    gnutls_free(dn.data);
    if (!info->issuer_dn)
        return -ENOMEM;
    ret = issuer_cn_dup(crt, &info->issuer_cn);
    if (ret == -EINVAL)
        set_err(err, errsz, "unreadable issuer common name");
    if (ret < 0)
        return ret;

    size = sizeof(buf);
    r = gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, buf, &size);
    if (r < 0 || size != 32 ||
        hex_into(buf, size, info->fingerprint_sha256, sizeof(info->fingerprint_sha256)) < 0) {
        set_err(err, errsz, "cannot hash the leaf certificate");
        return -EINVAL;
    }
    if (spki_sha256(crt, info->spki_sha256) < 0) {
        set_err(err, errsz, "unreadable leaf public key");
        return -EINVAL;
    }

    ret = collect_names(crt, info, err, errsz);
    if (ret < 0)
        return ret;

    /* AKI is optional in a leaf (RFC 5280 §4.2.1.1 only says SHOULD); absent means no ARI. */
    size = sizeof(buf);
    r = gnutls_x509_crt_get_authority_key_id(crt, buf, &size, &critical);
    if (r >= 0 && size > 0) {
        info->aki = malloc(size);
        if (!info->aki)
            return -ENOMEM;
        memcpy(info->aki, buf, size);
        info->aki_len = size;
    } else if (r < 0 && r != GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) {
        set_err(err, errsz, "malformed authorityKeyIdentifier: %s", gnutls_strerror(r));
        return -EINVAL;
    }
    return 0;
}

/* RFC 5280 §6.1.3 (a)(1)-(2) for consecutive pairs only: each certificate's issuer name is the
 * next one's subject and the next one's key verifies its signature (GnuTLS also requires the
 * signer to be a CA and refuses weak signature algorithms). No trust anchor is involved, so the
 * last certificate need not be self-signed. */
static int check_order(gnutls_x509_crt_t *certs, unsigned int n, char *err, size_t errsz)
{
    for (unsigned int i = 0; i + 1 < n; i++) {
        unsigned int status = 0;
        int r;

        if (!gnutls_x509_crt_check_issuer(certs[i], certs[i + 1])) {
            set_err(err, errsz,
                    "certificate %u is not issued by certificate %u (wrong order or "
                    "unrelated certificate)",
                    i + 1, i + 2);
            return -EINVAL;
        }
        r = gnutls_x509_crt_verify(certs[i], &certs[i + 1], 1, NO_TIME_FLAGS, &status);
        if (r < 0 || status != 0) {
            gnutls_datum_t text = {NULL, 0};

            if (r >= 0 && gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509,
                                                                       &text, 0) >= 0)
                set_err(err, errsz, "certificate %u is not validly signed by certificate %u: %s",
                        i + 1, i + 2, (const char *)text.data);
            else
                set_err(err, errsz, "certificate %u is not validly signed by certificate %u", i + 1,
                        i + 2);
            gnutls_free(text.data);
            return -EINVAL;
        }
    }
    return 0;
}

int cert_chain_inspect(const char *pem, struct cert_info *info, char *err, size_t errsz)
{
    struct cert_info tmp;
    gnutls_x509_crt_t *certs = NULL;
    unsigned int n = 0;
    int ret;

    memset(info, 0, sizeof(*info));
    memset(&tmp, 0, sizeof(tmp));
    set_err(err, errsz, "%s", "");
    ret = import_certs(pem, CHAIN_PEM_MAX, CHAIN_CERTS_MAX, &certs, &n, err, errsz);
    if (ret < 0)
        return ret;
    ret = check_order(certs, n, err, errsz);
    if (ret < 0)
        goto out;
    ret = read_leaf(certs[0], &tmp, err, errsz);
    if (ret < 0)
        goto out;
    ret = issuer_cn_dup(certs[n - 1], &tmp.root_issuer_cn);
    if (ret == -EINVAL)
        set_err(err, errsz, "unreadable issuer common name of the last certificate");
    if (ret < 0)
        goto out;
    tmp.chain_length = n;
    *info = tmp;
    memset(&tmp, 0, sizeof(tmp));
out:
    if (ret == -ENOMEM)
        set_err(err, errsz, "out of memory");
    cert_info_free(&tmp);
    free_certs(certs, n);
    return ret;
}

void cert_info_free(struct cert_info *info)
{
    if (!info)
        return;
    free(info->serial);
    free(info->issuer_dn);
    free(info->issuer_cn);
    free(info->root_issuer_cn);
    for (size_t i = 0; i < info->name_count; i++)
        free(info->names[i]);
    free(info->names);
    free(info->aki);
    free(info->serial_der);
    memset(info, 0, sizeof(*info));
}

/* Appends CRT as PEM to the string *BUF of length *LEN (NUL-terminated). 0 or -ENOMEM/-EIO. */
static int append_pem(gnutls_x509_crt_t crt, char **buf, size_t *len)
{
    gnutls_datum_t pem = {NULL, 0};
    char *grown;
    int r;

    r = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &pem);
    if (r < 0)
        return r == GNUTLS_E_MEMORY_ERROR ? -ENOMEM : -EIO;
    grown = realloc(*buf, *len + pem.size + 1);
    if (!grown) {
        gnutls_free(pem.data);
        return -ENOMEM;
    }
    memcpy(grown + *len, pem.data, pem.size);
    *len += pem.size;
    grown[*len] = '\0';
    *buf = grown;
    gnutls_free(pem.data);
    return 0;
}

int cert_chain_split(const char *pem, char **leaf_pem, char **rest_pem)
{
    gnutls_x509_crt_t *certs = NULL;
    unsigned int n = 0;
    char *leaf = NULL, *rest = NULL;
    size_t leaf_len = 0, rest_len = 0;
    int ret;

    *leaf_pem = NULL;
    *rest_pem = NULL;
    ret = import_certs(pem, CHAIN_PEM_MAX, CHAIN_CERTS_MAX, &certs, &n, NULL, 0);
    if (ret < 0)
        return ret;
    ret = append_pem(certs[0], &leaf, &leaf_len);
    if (ret < 0)
        goto out;
    rest = strdup("");
    if (!rest) {
        ret = -ENOMEM;
        goto out;
    }
    for (unsigned int i = 1; i < n; i++) {
        ret = append_pem(certs[i], &rest, &rest_len);
        if (ret < 0)
            goto out;
    }
    *leaf_pem = leaf;
    *rest_pem = rest;
    leaf = NULL;
    rest = NULL;
out:
    free(leaf);
    free(rest);
    free_certs(certs, n);
    return ret;
}

/* GnuTLS's validity check (RFC 5280 §4.1.2.5: both bounds inclusive) against NOW instead of the
 * clock. Returns the verification status bits, 0 when valid. */
static unsigned int time_status(gnutls_x509_crt_t crt, int64_t now)
{
    time_t not_before = gnutls_x509_crt_get_activation_time(crt);
    time_t not_after = gnutls_x509_crt_get_expiration_time(crt);

    if (not_before == (time_t)-1 || not_after == (time_t)-1)
        return GNUTLS_CERT_INVALID;
    if (now < (int64_t)not_before)
        return GNUTLS_CERT_INVALID | GNUTLS_CERT_NOT_ACTIVATED;
    if (now > (int64_t)not_after)
        return GNUTLS_CERT_INVALID | GNUTLS_CERT_EXPIRED;
    return 0;
}

static void set_status_err(unsigned int status, char *err, size_t errsz)
{
    gnutls_datum_t text = {NULL, 0};

    if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0) >= 0)
        set_err(err, errsz, "%s", (const char *)text.data);
    else
        set_err(err, errsz, "verification failed (status 0x%x)", status);
    gnutls_free(text.data);
}

/*
 * GnuTLS (3.7) verifies against the system clock and has no parameter for another time, and
 * gnutls_global_set_time_function would change it for the whole process. So the trust list
 * verifies with time checks off, and this applies them at NOW along the path GnuTLS takes: the
 * chain up to the first certificate a trust anchor signed, plus that anchor (GnuTLS cuts the
 * chain there too, so an expired cross-sign beyond a trusted root does not count).
 */
static unsigned int path_time_status(gnutls_x509_crt_t *chain, unsigned int n,
                                     gnutls_x509_crt_t *roots, unsigned int nroots, int64_t now)
{
    for (unsigned int i = 0; i < n; i++) {
        unsigned int st = time_status(chain[i], now);
        bool anchored = false;

        if (st != 0)
            return st;
        for (unsigned int j = 0; j < nroots; j++) {
            unsigned int vst = 0;

            if (!gnutls_x509_crt_check_issuer(chain[i], roots[j]))
                continue;
            if (gnutls_x509_crt_verify(chain[i], &roots[j], 1, NO_TIME_FLAGS, &vst) < 0 || vst != 0)
                continue;
            /* Several anchors may share a name (a renewed root): one valid at NOW suffices. */
            anchored = true;
            st = time_status(roots[j], now);
            if (st == 0)
                return 0;
        }
        if (anchored)
            return st;
    }
    /* GnuTLS accepted the chain but no anchor signed any certificate of it: the leaf itself is
     * trusted (a pinned self-signed certificate), and all times were checked above. */
    return 0;
}

int cert_chain_verify(const char *pem, const char *roots_pem, int64_t now, char *err, size_t errsz)
{
    gnutls_x509_crt_t *chain = NULL, *roots = NULL;
    unsigned int n = 0, nroots = 0, status = 0;
    gnutls_x509_trust_list_t tl = NULL;
    int ret, r;

    set_err(err, errsz, "%s", "");
    ret = import_certs(pem, CHAIN_PEM_MAX, CHAIN_CERTS_MAX, &chain, &n, err, errsz);
    if (ret < 0)
        return ret;
    /* GnuTLS 3.7's trust-list verification quietly drops certificates that do not continue the
     * chain (even with GNUTLS_VERIFY_DO_NOT_ALLOW_UNSORTED_CHAIN: "inter, leaf" verifies as if
     * the intermediate were the leaf), so the order is checked here first, as in inspect. */
    ret = check_order(chain, n, err, errsz);
    if (ret < 0)
        goto out;
    ret = import_certs(roots_pem, ROOTS_PEM_MAX, ROOTS_CERTS_MAX, &roots, &nroots, err, errsz);
    if (ret < 0)
        goto out;

    r = gnutls_x509_trust_list_init(&tl, 0);
    if (r < 0) {
        ret = -ENOMEM;
        goto out;
    }
    /* Without GNUTLS_TL_NO_DUPLICATES the list only borrows the certificates: we keep owning
     * ROOTS (deinit with all=0 below), and path_time_status reads them. */
    r = gnutls_x509_trust_list_add_cas(tl, roots, nroots, 0);
    if (r < 0 || (unsigned int)r != nroots) {
        ret = -ENOMEM;
        goto out;
    }
    /* The chain is in order (checked above; RFC 8555 §7.4.2 has CAs send it so), which
     * path_time_status relies on: tell GnuTLS not to reorder it either. */
    r = gnutls_x509_trust_list_verify_crt2(
        tl, chain, n, NULL, 0, NO_TIME_FLAGS | GNUTLS_VERIFY_DO_NOT_ALLOW_UNSORTED_CHAIN, &status,
        NULL);
    if (r < 0) {
        set_err(err, errsz, "verification error: %s", gnutls_strerror(r));
        ret = r == GNUTLS_E_MEMORY_ERROR ? -ENOMEM : -EINVAL;
        goto out;
    }
    if (status == 0)
        status = path_time_status(chain, n, roots, nroots, now);
    if (status != 0) {
        set_status_err(status, err, errsz);
        ret = -EINVAL;
        goto out;
    }
    ret = 0;
out:
    if (ret == -ENOMEM)
        set_err(err, errsz, "out of memory");
    gnutls_x509_trust_list_deinit(tl, 0);
    free_certs(roots, nroots);
    free_certs(chain, n);
    return ret;
}
