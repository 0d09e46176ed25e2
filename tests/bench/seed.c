/*
 * certd_seed: fills a certd database with N managed domains, fast, for tests/bench/scheduler.
 *
 *   certd_seed --db PATH --domains N [--due-now K] [--quiet-for S] [--ca NAME] [--seed S]
 *              [--real-certs]
 *   certd_seed --db PATH --measure-pass R [--workers W]
 *
 * Seeding: store_open creates the database and applies the migrations, exactly as certd would;
 * then the rows go in through a second, plain SQLite connection, in one transaction with
 * synchronous=OFF. The store's API makes one durable transaction per call, which is right for
 * the daemon but takes minutes for 100,000 domains, and Pebble cannot issue that many quickly.
 * This is a test tool: the INSERTs below follow schema/NNNN_*.sql column for column, and the
 * daemon's own constraints (CHECKs, foreign keys, the one-current-key and one-active-cert
 * indexes) check them as they go in.
 *
 * Every domain d%07u.seed.bench.test gets what a domain has after its first issuance: status
 * active, one current key, one finished order (status valid) and one active certificate. The
 * times are realistic and spread: the renewal time (next_renewal_at = next_attempt_at) is drawn
 * uniformly over the next 30 days (or, with --quiet-for S, over the 30 days after the next S
 * seconds, so that nothing falls due while a benchmark runs) and falls at 60-67 % of a 90-day
 * lifetime, like the default
 * renewal policy (sched/planner.h); expiring_at is 7 days before not_after, as
 * planner_expiring_at gives for lifetimes of 30 days or more. ari_id stays NULL (no ARI). With
 * --due-now K, K of the domains (spread evenly over the ids) are due now instead.
 *
 * One EC P-256 key and one self-signed certificate for it are generated once (GnuTLS) and stored
 * in every row: the scheduler never reads them. The serial and fingerprint columns are distinct
 * per row (derived from the domain's number), so lookups by serial cost what they would with
 * real certificates; they do not describe the shared PEM.
 *
 * --real-certs (tests/bench/delivery): the delivery index serves a name only when the stored
 * certificate carries it, so instead every domain gets a leaf of its own, subject CN and one
 * dNSName SAN equal to its name, valid from its not_before to its not_after, with the row's
 * serial, signed by one throw-away EC P-256 CA made for the run; the shared EC key is every leaf's
 * key. chain_pem is the leaf then the CA, fingerprint_sha256 the leaf's real SHA-256, issuer the
 * CA's DN. One ECDSA signature per domain (~0.1 ms, ~10 s for 100,000).
 *
 * --measure-pass R: opens an existing database through the store, as certd does, and times R
 * times the store calls of one scheduler wake-up in daemon/sched/scheduler.c (due domains, due
 * ARI checks, the expiry-warning query of renewal_warn_expiring, then the three "next time"
 * queries), with the limit an idle scheduler of W workers passes (W). Prints one line:
 * "pass_us_cpu=X pass_us_wall=Y due=D" (averages per pass; D the due domains the last pass saw).
 */
#include <errno.h>
#include <getopt.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/types.h"
#include "crypto/keys.h"
#include "crypto/signer.h"
#include "store/store.h"

#define DAY 86400
#define LIFETIME (90 * DAY)
#define SPREAD (30 * DAY)
#define MAX_DOMAINS 10000000L
#define MAX_REPEAT 10000000L

struct opts {
    const char *db;
    long domains;
    long due_now;
    long quiet_for;
    const char *ca;
    uint64_t seed;
    long measure;
    long workers;
    bool real_certs;
};

static void usage(FILE *out)
{
    fprintf(out, "usage: certd_seed --db PATH --domains N [--due-now K] [--quiet-for S]\n"
                 "                  [--ca NAME] [--seed S] [--real-certs]\n"
                 "       certd_seed --db PATH --measure-pass R [--workers W]\n");
}

static bool parse_long(const char *s, long min, long max, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* splitmix64: reproducible spreads for a given --seed, no libc state. */
static uint64_t next_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, n). The modulo bias is below 2^-40 for the ranges used here. */
static int64_t rand_below(uint64_t *state, int64_t n)
{
    return (int64_t)(next_rand(state) % (uint64_t)n);
}

static int64_t now_mono_us(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A self-signed certificate for KEY_PEM (PKCS#8), valid 90 days from NOW, as PEM in *OUT
 * (gnutls_free). Its content only has to be a well-formed certificate. */
static int make_cert(const char *key_pem, int64_t now, gnutls_datum_t *out)
{
    gnutls_x509_privkey_t xkey = NULL;
    gnutls_privkey_t key = NULL;
    gnutls_x509_crt_t crt = NULL;
    const gnutls_datum_t in = {.data = (unsigned char *)key_pem, .size = (unsigned)strlen(key_pem)};
    static const unsigned char serial[] = {0x5e, 0xed};
    static const char cn[] = "seed.bench.test";
    int rc;

    if ((rc = gnutls_x509_privkey_init(&xkey)) < 0 ||
        (rc = gnutls_x509_privkey_import2(xkey, &in, GNUTLS_X509_FMT_PEM, NULL,
                                          GNUTLS_PKCS_PLAIN)) < 0 ||
        (rc = gnutls_privkey_init(&key)) < 0 ||
        (rc = gnutls_privkey_import_x509(key, xkey, GNUTLS_PRIVKEY_IMPORT_COPY)) < 0 ||
        (rc = gnutls_x509_crt_init(&crt)) < 0 || (rc = gnutls_x509_crt_set_version(crt, 3)) < 0 ||
        (rc = gnutls_x509_crt_set_serial(crt, serial, sizeof(serial))) < 0 ||
        (rc = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
                                            sizeof(cn) - 1)) < 0 ||
        (rc = gnutls_x509_crt_set_issuer_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
                                                   sizeof(cn) - 1)) < 0 ||
        (rc = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, cn, sizeof(cn) - 1,
                                                   GNUTLS_FSAN_SET)) < 0 ||
        (rc = gnutls_x509_crt_set_key(crt, xkey)) < 0 ||
        (rc = gnutls_x509_crt_set_activation_time(crt, (time_t)now)) < 0 ||
        (rc = gnutls_x509_crt_set_expiration_time(crt, (time_t)(now + LIFETIME))) < 0 ||
        (rc = gnutls_x509_crt_privkey_sign(crt, crt, key, GNUTLS_DIG_SHA256, 0)) < 0 ||
        (rc = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, out)) < 0)
        fprintf(stderr, "certd_seed: cannot make the certificate: %s\n", gnutls_strerror(rc));
    gnutls_x509_crt_deinit(crt);
    gnutls_privkey_deinit(key);
    gnutls_x509_privkey_deinit(xkey); /* deinit wipes the key material */
    return rc < 0 ? -EIO : 0;
}

static void hex(const uint8_t *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

/* --real-certs: the CA that signs one leaf per domain, and the leaves' shared key. */
struct leaf_signer {
    gnutls_x509_privkey_t ca_xkey;
    gnutls_privkey_t ca_key;
    gnutls_x509_crt_t ca_crt;
    gnutls_x509_privkey_t leaf_xkey; /* the shared key_pem, parsed once */
    gnutls_datum_t ca_pem;
    char *chain;     /* the current row's leaf + CA PEM; grown as needed */
    size_t chain_cap;
    char *issuer_dn; /* the CA's DN, RFC 4514, for the issuer column */
};

static void leaf_ca_free(struct leaf_signer *sg)
{
    if (!sg)
        return;
    gnutls_x509_crt_deinit(sg->ca_crt);
    gnutls_privkey_deinit(sg->ca_key);
    gnutls_x509_privkey_deinit(sg->ca_xkey); /* deinit wipes the key material */
    gnutls_x509_privkey_deinit(sg->leaf_xkey);
    gnutls_free(sg->ca_pem.data);
    free(sg->chain);
    free(sg->issuer_dn);
    free(sg);
}

static int import_key(const char *pem, gnutls_x509_privkey_t *out)
{
    const gnutls_datum_t in = {.data = (unsigned char *)pem, .size = (unsigned)strlen(pem)};
    int rc = gnutls_x509_privkey_init(out);
    if (rc >= 0)
        rc = gnutls_x509_privkey_import2(*out, &in, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN);
    return rc;
}

/* A fresh EC CA valid around NOW (-2 to +2 lifetimes, covering every seeded leaf) and the leaf
 * key LEAF_KEY_PEM parsed, in *OUT (leaf_ca_free). */
static int leaf_ca_new(const char *leaf_key_pem, int64_t now, struct leaf_signer **out)
{
    static const char cn[] = "certd seed bench CA";
    static const unsigned char serial[] = {0x5e, 0xed, 0xca};
    struct leaf_signer *sg = calloc(1, sizeof(*sg));
    char *ca_pem = NULL;
    char dn[256];
    size_t dn_len = sizeof(dn);
    int rc = GNUTLS_E_MEMORY_ERROR;
    *out = NULL;
    if (!sg)
        goto out;
    if (keys_generate(KEY_EC_P256, &ca_pem, (char[KEY_FINGERPRINT_SIZE]){0}) < 0) {
        rc = GNUTLS_E_INTERNAL_ERROR;
        goto out;
    }
    if ((rc = import_key(ca_pem, &sg->ca_xkey)) < 0 ||
        (rc = import_key(leaf_key_pem, &sg->leaf_xkey)) < 0 ||
        (rc = gnutls_privkey_init(&sg->ca_key)) < 0 ||
        (rc = gnutls_privkey_import_x509(sg->ca_key, sg->ca_xkey, 0)) < 0 ||
        (rc = gnutls_x509_crt_init(&sg->ca_crt)) < 0 ||
        (rc = gnutls_x509_crt_set_version(sg->ca_crt, 3)) < 0 ||
        (rc = gnutls_x509_crt_set_serial(sg->ca_crt, serial, sizeof(serial))) < 0 ||
        (rc = gnutls_x509_crt_set_dn_by_oid(sg->ca_crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
                                            sizeof(cn) - 1)) < 0 ||
        (rc = gnutls_x509_crt_set_basic_constraints(sg->ca_crt, 1, -1)) < 0 ||
        (rc = gnutls_x509_crt_set_key_usage(sg->ca_crt, GNUTLS_KEY_KEY_CERT_SIGN |
                                                            GNUTLS_KEY_CRL_SIGN)) < 0 ||
        (rc = gnutls_x509_crt_set_key(sg->ca_crt, sg->ca_xkey)) < 0 ||
        (rc = gnutls_x509_crt_set_activation_time(sg->ca_crt, (time_t)(now - 2 * LIFETIME))) <
            0 ||
        (rc = gnutls_x509_crt_set_expiration_time(sg->ca_crt, (time_t)(now + 2 * LIFETIME))) <
            0 ||
        (rc = gnutls_x509_crt_privkey_sign(sg->ca_crt, sg->ca_crt, sg->ca_key, GNUTLS_DIG_SHA256,
                                           0)) < 0 ||
        (rc = gnutls_x509_crt_export2(sg->ca_crt, GNUTLS_X509_FMT_PEM, &sg->ca_pem)) < 0 ||
        (rc = gnutls_x509_crt_get_dn(sg->ca_crt, dn, &dn_len)) < 0)
        goto out;
    rc = GNUTLS_E_MEMORY_ERROR;
    if (!(sg->issuer_dn = strdup(dn)))
        goto out;
    *out = sg;
    sg = NULL;
    rc = 0;
out:
    if (rc < 0)
        fprintf(stderr, "certd_seed: cannot make the CA: %s\n", gnutls_strerror(rc));
    keys_pem_free(ca_pem);
    leaf_ca_free(sg);
    return rc < 0 ? -EIO : 0;
}

/* Signs NAME's leaf (SERIAL, NOT_BEFORE..NOT_AFTER); its chain PEM (leaf, CA) in SG->chain, valid
 * until the next call, and its hex SHA-256 in FPR. */
static int leaf_ca_sign(struct leaf_signer *sg, const char *name, uint64_t serial,
                       int64_t not_before, int64_t not_after, char fpr[2 * 32 + 1])
{
    gnutls_x509_crt_t crt = NULL;
    gnutls_datum_t der = {NULL, 0}, pem = {NULL, 0};
    /* 5e ed + 8 bytes: positive, no leading zero, "5eed%016x" in hex like the other mode. */
    unsigned char sn[10] = {0x5e, 0xed};
    uint8_t digest[32];
    size_t digest_len = sizeof(digest);
    for (int i = 0; i < 8; i++)
        sn[2 + i] = (unsigned char)(serial >> (56 - 8 * i));
    int rc;
    if ((rc = gnutls_x509_crt_init(&crt)) < 0 || (rc = gnutls_x509_crt_set_version(crt, 3)) < 0 ||
        (rc = gnutls_x509_crt_set_serial(crt, sn, sizeof(sn))) < 0 ||
        (rc = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, name,
                                            (unsigned)strlen(name))) < 0 ||
        (rc = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, name,
                                                   (unsigned)strlen(name), GNUTLS_FSAN_SET)) < 0 ||
        (rc = gnutls_x509_crt_set_basic_constraints(crt, 0, -1)) < 0 ||
        (rc = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0 ||
        (rc = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0)) < 0 ||
        (rc = gnutls_x509_crt_set_key(crt, sg->leaf_xkey)) < 0 ||
        (rc = gnutls_x509_crt_set_activation_time(crt, (time_t)not_before)) < 0 ||
        (rc = gnutls_x509_crt_set_expiration_time(crt, (time_t)not_after)) < 0 ||
        (rc = gnutls_x509_crt_privkey_sign(crt, sg->ca_crt, sg->ca_key, GNUTLS_DIG_SHA256, 0)) <
            0 ||
        (rc = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der)) < 0 ||
        (rc = gnutls_fingerprint(GNUTLS_DIG_SHA256, &der, digest, &digest_len)) < 0 ||
        (rc = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &pem)) < 0)
        goto out;
    size_t need = (size_t)pem.size + sg->ca_pem.size + 1;
    if (need > sg->chain_cap) {
        char *grown = realloc(sg->chain, need);
        if (!grown) {
            rc = GNUTLS_E_MEMORY_ERROR;
            goto out;
        }
        sg->chain = grown;
        sg->chain_cap = need;
    }
    memcpy(sg->chain, pem.data, pem.size);
    memcpy(sg->chain + pem.size, sg->ca_pem.data, sg->ca_pem.size);
    sg->chain[pem.size + sg->ca_pem.size] = '\0';
    hex(digest, sizeof(digest), fpr);
out:
    if (rc < 0)
        fprintf(stderr, "certd_seed: cannot make the certificate of %s: %s\n", name,
                gnutls_strerror(rc));
    gnutls_free(der.data);
    gnutls_free(pem.data);
    gnutls_x509_crt_deinit(crt);
    return rc < 0 ? -EIO : 0;
}

static int exec_sql(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        fprintf(stderr, "certd_seed: %s: %s\n", sql, msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return -EIO;
    }
    return 0;
}

/* Steps an INSERT and resets it for the next row; the new row's id in *ID (optional). */
static int insert_row(sqlite3 *db, sqlite3_stmt *s, const char *what, int64_t *id)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        fprintf(stderr, "certd_seed: insert %s: %s\n", what, sqlite3_errmsg(db));
        return -EIO;
    }
    if (id)
        *id = sqlite3_last_insert_rowid(db);
    return 0;
}

enum { ST_DOMAIN, ST_KEY, ST_ORDER, ST_CERT, ST_COUNT };

/* Column for column as in schema/0001..0003; defaults written out where the daemon writes them. */
static const char *const insert_sql[ST_COUNT] = {
    [ST_DOMAIN] = "INSERT INTO domains (name, challenge, key_type, ca, status, next_renewal_at,"
                  " failure_count, last_error, next_attempt_at, created_at, updated_at,"
                  " reuse_key, profile, renew_before)"
                  " VALUES (?1, 'http-01', ?2, ?3, 'active', ?4, 0, NULL, ?5, ?6, ?6, 0, NULL,"
                  " NULL)",
    [ST_KEY] = "INSERT INTO private_keys (domain_id, key_type, key_pem, public_key_sha256, status,"
               " created_at) VALUES (?1, ?2, ?3, ?4, 'current', ?5)",
    [ST_ORDER] = "INSERT INTO orders (domain_id, account_id, ca, url, status, step, finalize_url,"
                 " certificate_url, key_id, names, error_json, created_at, updated_at,"
                 " expires_at, replaces, finished)"
                 " VALUES (?1, NULL, ?2, ?3, 'valid', NULL, ?4, ?5, ?6, ?7, NULL, ?8, ?9, ?10,"
                 " NULL, 1)",
    [ST_CERT] = "INSERT INTO certificates (domain_id, key_id, order_id, serial, not_before,"
                " not_after, issuer, fingerprint_sha256, chain_pem, status, created_at,"
                " revoked_at, revocation_reason, ari_id, ari_window_start, ari_window_end,"
                " ari_next_check, expiring_at, expiring_notified, replaced_by)"
                " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?11, ?7, ?8, 'active', ?9,"
                " NULL, NULL, NULL, NULL, NULL, NULL, ?10, 0, NULL)",
};

struct seed_row {
    int64_t id; /* 1..N */
    int64_t now;
    int64_t quiet_for; /* no renewal time before now + quiet_for */
    bool due;
    const char *ca, *key_type, *key_pem, *key_sha, *chain_pem, *issuer;
    struct leaf_signer *signer; /* --real-certs: a leaf per row instead of chain_pem */
};

static int seed_one(sqlite3 *db, sqlite3_stmt **st, const struct seed_row *r, uint64_t *rnd)
{
    char name[64], names_json[80], url[128], fin[128], cert_url[128], serial[40];
    char fpr[2 * 32 + 1];
    int64_t renew_at, not_before, domain_id, key_id, order_id;
    snprintf(name, sizeof(name), "d%07" PRId64 ".seed.bench.test", r->id);
    snprintf(names_json, sizeof(names_json), "[\"%s\"]", name);

    if (r->due) {
        /* Due now, and its certificate one that reached the renewal point just now. */
        renew_at = r->now;
        not_before = r->now - LIFETIME * 2 / 3;
    } else {
        renew_at = r->now + r->quiet_for + 1 + rand_below(rnd, SPREAD);
        /* 60..67 % of the lifetime, in per-mille steps, like the default policy's draw. */
        not_before = renew_at - LIFETIME / 1000 * (600 + rand_below(rnd, 71));
    }
    int64_t not_after = not_before + LIFETIME;
    int64_t expiring_at = not_after - 7 * DAY;
    int64_t issued = not_before; /* certificates start when they are issued */

    snprintf(url, sizeof(url), "https://127.0.0.1:9/order/%" PRId64, r->id);
    snprintf(fin, sizeof(fin), "https://127.0.0.1:9/finalize/%" PRId64, r->id);
    snprintf(cert_url, sizeof(cert_url), "https://127.0.0.1:9/cert/%" PRId64, r->id);
    /* Distinct, lower-case hex without leading zeros, like cert_info.serial. */
    uint64_t sn = next_rand(rnd);
    snprintf(serial, sizeof(serial), "5eed%016" PRIx64, sn);
    const char *chain_pem = r->chain_pem;
    if (r->signer) {
        if (leaf_ca_sign(r->signer, name, sn, not_before, not_after, fpr) < 0)
            return -EIO;
        chain_pem = r->signer->chain;
    } else {
        uint8_t digest[32];
        crypto_sha256(name, strlen(name), digest);
        hex(digest, sizeof(digest), fpr);
    }

    sqlite3_stmt *s = st[ST_DOMAIN];
    sqlite3_bind_text(s, 1, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, r->key_type, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, r->ca, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, renew_at);
    sqlite3_bind_int64(s, 5, renew_at);
    sqlite3_bind_int64(s, 6, issued);
    if (insert_row(db, s, "domain", &domain_id) < 0)
        return -EIO;

    s = st[ST_KEY];
    sqlite3_bind_int64(s, 1, domain_id);
    sqlite3_bind_text(s, 2, r->key_type, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, r->key_pem, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, r->key_sha, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, issued);
    if (insert_row(db, s, "key", &key_id) < 0)
        return -EIO;

    s = st[ST_ORDER];
    sqlite3_bind_int64(s, 1, domain_id);
    sqlite3_bind_text(s, 2, r->ca, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, url, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 4, fin, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 5, cert_url, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 6, key_id);
    sqlite3_bind_text(s, 7, names_json, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 8, issued - 5);
    sqlite3_bind_int64(s, 9, issued);
    sqlite3_bind_int64(s, 10, issued + 7 * DAY);
    if (insert_row(db, s, "order", &order_id) < 0)
        return -EIO;

    s = st[ST_CERT];
    sqlite3_bind_int64(s, 1, domain_id);
    sqlite3_bind_int64(s, 2, key_id);
    sqlite3_bind_int64(s, 3, order_id);
    sqlite3_bind_text(s, 4, serial, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 5, not_before);
    sqlite3_bind_int64(s, 6, not_after);
    sqlite3_bind_text(s, 7, fpr, -1, SQLITE_TRANSIENT);
    /* TRANSIENT: with --real-certs the buffer is rewritten for the next row. */
    sqlite3_bind_text(s, 8, chain_pem, -1, r->signer ? SQLITE_TRANSIENT : SQLITE_STATIC);
    sqlite3_bind_int64(s, 9, issued);
    sqlite3_bind_int64(s, 10, expiring_at);
    sqlite3_bind_text(s, 11, r->issuer, -1, SQLITE_STATIC);
    return insert_row(db, s, "certificate", NULL);
}

static int seed(const struct opts *o)
{
    char err[512];
    struct store *store = NULL;
    char *key_pem = NULL;
    char key_sha[KEY_FINGERPRINT_SIZE];
    gnutls_datum_t chain = {NULL, 0};
    char *chain_pem = NULL;
    sqlite3 *db = NULL;
    sqlite3_stmt *st[ST_COUNT] = {NULL};
    struct leaf_signer *signer = NULL;
    bool in_tx = false;
    int64_t t0 = now_mono_us(CLOCK_MONOTONIC), now = (int64_t)time(NULL);
    uint64_t rnd = o->seed;
    int ret;

    /* The daemon's own code creates the file (mode 0600) and the schema. */
    if ((ret = store_open(o->db, &store, err, sizeof(err))) < 0) {
        fprintf(stderr, "certd_seed: %s\n", err);
        goto out;
    }
    store_close(store);
    store = NULL;

    if ((ret = keys_generate(KEY_EC_P256, &key_pem, key_sha)) < 0 ||
        (ret = make_cert(key_pem, now - LIFETIME / 2, &chain)) < 0)
        goto out;
    /* export2 gives a datum that is not NUL-terminated in general; copy into a C string. */
    chain_pem = malloc(chain.size + 1);
    if (!chain_pem) {
        ret = -ENOMEM;
        goto out;
    }
    memcpy(chain_pem, chain.data, chain.size);
    chain_pem[chain.size] = '\0';
    if (o->real_certs && (ret = leaf_ca_new(key_pem, now, &signer)) < 0)
        goto out;

    if (sqlite3_open_v2(o->db, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        fprintf(stderr, "certd_seed: cannot open %s: %s\n", o->db,
                db ? sqlite3_errmsg(db) : "out of memory");
        ret = -EIO;
        goto out;
    }
    /* Seeding a scratch database: losing it to a power cut costs a re-run. */
    if ((ret = exec_sql(db, "PRAGMA synchronous = OFF; PRAGMA foreign_keys = ON;"
                            " PRAGMA cache_size = -65536")) < 0 ||
        (ret = exec_sql(db, "BEGIN IMMEDIATE")) < 0)
        goto out;
    in_tx = true;
    for (int i = 0; i < ST_COUNT; i++) {
        if (sqlite3_prepare_v2(db, insert_sql[i], -1, &st[i], NULL) != SQLITE_OK) {
            fprintf(stderr, "certd_seed: prepare: %s\n", sqlite3_errmsg(db));
            ret = -EIO;
            goto out;
        }
    }
    /* Due domains every N/K ids, so they are not all at one end of the id range. */
    long stride = o->due_now ? o->domains / o->due_now : 0;
    long due_left = o->due_now;
    struct seed_row row = {.now = now,
                           .quiet_for = o->quiet_for,
                           .ca = o->ca,
                           .key_type = key_type_name(KEY_EC_P256),
                           .key_pem = key_pem,
                           .key_sha = key_sha,
                           .chain_pem = chain_pem,
                           .issuer = signer ? signer->issuer_dn : "CN=seed.bench.test",
                           .signer = signer};
    for (long i = 0; i < o->domains; i++) {
        row.id = i + 1;
        row.due = due_left > 0 && i % stride == 0;
        if (row.due)
            due_left--;
        if ((ret = seed_one(db, st, &row, &rnd)) < 0)
            goto out;
    }
    if ((ret = exec_sql(db, "COMMIT")) < 0)
        goto out;
    in_tx = false;
    printf("seeded %ld domains (%ld due now%s) in %.3f s\n", o->domains, o->due_now,
           signer ? ", a certificate each" : "", (double)(now_mono_us(CLOCK_MONOTONIC) - t0) / 1e6);
out:
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(st[i]);
    if (in_tx)
        exec_sql(db, "ROLLBACK");
    /* The last connection to close checkpoints the WAL into the database file, so certd starts
     * on a plain file like a long-running installation's. */
    sqlite3_close_v2(db);
    free(chain_pem);
    gnutls_free(chain.data);
    leaf_ca_free(signer);
    keys_pem_free(key_pem);
    return ret;
}

/* One scheduler wake-up's store calls, in scheduler_main's order. */
static int one_pass(struct store *store, size_t limit, size_t *due)
{
    int64_t now = (int64_t)time(NULL), *ids = NULL, next = 0;
    size_t n = 0;
    int ret = store_domains_due(store, now, limit, &ids, &n);
    free(ids);
    *due = n;
    ids = NULL;
    if (ret == 0)
        ret = store_ari_due(store, now, limit, &ids, &n);
    free(ids);
    ids = NULL;
    if (ret == 0)
        ret = store_expiring_due(store, now, 100, &ids, &n); /* renewal_warn_expiring's limit */
    free(ids);
    if (ret == 0)
        ret = store_next_due(store, &next);
    if (ret == 0)
        ret = store_next_ari_due(store, &next);
    if (ret == 0)
        ret = store_next_expiring(store, &next);
    return ret;
}

static int measure(const struct opts *o)
{
    char err[512];
    struct store *store = NULL;
    size_t due = 0;
    int ret = store_open(o->db, &store, err, sizeof(err));
    if (ret < 0) {
        fprintf(stderr, "certd_seed: %s\n", err);
        return ret;
    }
    /* One untimed pass: statement preparation and the page cache warm, as in a running daemon. */
    if ((ret = one_pass(store, (size_t)o->workers, &due)) < 0)
        goto out;
    int64_t c0 = now_mono_us(CLOCK_THREAD_CPUTIME_ID), w0 = now_mono_us(CLOCK_MONOTONIC);
    for (long i = 0; i < o->measure && ret == 0; i++)
        ret = one_pass(store, (size_t)o->workers, &due);
    int64_t c1 = now_mono_us(CLOCK_THREAD_CPUTIME_ID), w1 = now_mono_us(CLOCK_MONOTONIC);
    if (ret < 0) {
        fprintf(stderr, "certd_seed: a pass failed (%s)\n", strerror(-ret));
        goto out;
    }
    printf("pass_us_cpu=%.2f pass_us_wall=%.2f due=%zu\n", (double)(c1 - c0) / (double)o->measure,
           (double)(w1 - w0) / (double)o->measure, due);
out:
    store_close(store);
    return ret;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"db", required_argument, NULL, 'd'},
        {"domains", required_argument, NULL, 'n'},
        {"due-now", required_argument, NULL, 'k'},
        {"quiet-for", required_argument, NULL, 'q'},
        {"ca", required_argument, NULL, 'c'},
        {"seed", required_argument, NULL, 's'},
        {"measure-pass", required_argument, NULL, 'm'},
        {"workers", required_argument, NULL, 'w'},
        {"real-certs", no_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct opts o = {.domains = -1, .ca = "bench", .seed = 1, .workers = 4};
    long v;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'd':
            o.db = optarg;
            break;
        case 'n':
            if (!parse_long(optarg, 0, MAX_DOMAINS, &o.domains))
                goto bad;
            break;
        case 'k':
            if (!parse_long(optarg, 0, MAX_DOMAINS, &o.due_now))
                goto bad;
            break;
        case 'q':
            if (!parse_long(optarg, 0, 365L * DAY, &o.quiet_for))
                goto bad;
            break;
        case 'c':
            o.ca = optarg;
            break;
        case 's':
            if (!parse_long(optarg, 0, INT32_MAX, &v))
                goto bad;
            o.seed = (uint64_t)v;
            break;
        case 'm':
            if (!parse_long(optarg, 1, MAX_REPEAT, &o.measure))
                goto bad;
            break;
        case 'w':
            if (!parse_long(optarg, 1, 64, &o.workers))
                goto bad;
            break;
        case 'r':
            o.real_certs = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            goto bad;
        }
    }
    if (optind != argc || !o.db || (o.domains < 0) == (o.measure == 0) ||
        o.due_now > (o.domains < 0 ? 0 : o.domains) || !*o.ca)
        goto bad;
    int ret = o.measure ? measure(&o) : seed(&o);
    return ret < 0 ? 1 : 0;
bad:
    usage(stderr);
    return 2;
}
