/*
 * The delivery index (api/index.c) and the events bus (api/events_bus.c): the hash map and its
 * deletions, the SNI matching rules (exact, then one wildcard label; case; trailing dot), the
 * choice among several domains serving one name, entries outliving their replacement, 100,000
 * domains, and following a real store through the bus.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
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
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <jansson.h>

#include "api/events_bus.h"
#include "api/index.h"
#include "crypto/keys.h"
#include "store/store.h"

#define DAY (24 * 60 * 60)

static const char fake_chain[] =
    "-----BEGIN CERTIFICATE-----\nTEVBRg==\n-----END CERTIFICATE-----\n"
    "-----BEGIN CERTIFICATE-----\nSU5URVI=\n-----END CERTIFICATE-----";
static const char fake_key[] = "-----BEGIN PRIVATE KEY-----\nS0VZ\n-----END PRIVATE KEY-----\n";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Puts a domain PRIMARY serving NAMES (all on its certificate). */
static int put(struct delivery_index *idx, int64_t id, const char *primary,
               const char *const *names, size_t n, int64_t not_after, const char *serial)
{
    struct index_source src = {
        .domain_id = id,
        .primary = primary,
        .names = names,
        .name_count = n,
        .cert_names = names,
        .cert_name_count = n,
        .chain_pem = fake_chain,
        .key_pem = fake_key,
        .key_id = id * 10,
        .serial = serial ? serial : "0a",
        .issuer = "CN=Test",
        .fingerprint_sha256 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        .not_before = 1000,
        .not_after = not_after,
    };
    return index_put(idx, &src);
}

/* The primary name of what HOST resolves to, or "-" (the reference is released). */
static const char *sni(struct delivery_index *idx, const char *host)
{
    static char buf[256];
    struct index_entry *e = index_lookup_sni(idx, host, NULL, NULL);
    snprintf(buf, sizeof(buf), "%s", e ? index_entry_primary(e) : "-");
    index_entry_put(e);
    return buf;
}

static void test_sni_rules(void **state)
{
    struct delivery_index *idx = NULL;
    assert_int_equal(index_new(&idx), 0);
    const char *a[] = {"example.com", "www.example.com"};
    const char *w[] = {"*.example.com"};
    const char *deep[] = {"*.b.example.com"};
    assert_int_equal(put(idx, 1, "example.com", a, 2, 5000, NULL), 0);
    assert_int_equal(put(idx, 2, "*.example.com", w, 1, 5000, NULL), 0);

    assert_string_equal(sni(idx, "example.com"), "example.com");
    assert_string_equal(sni(idx, "www.example.com"), "example.com"); /* exact beats wildcard */
    assert_string_equal(sni(idx, "shop.example.com"), "*.example.com");
    assert_string_equal(sni(idx, "*.example.com"), "*.example.com");
    /* A wildcard covers one label only (RFC 6125 §6.4.3). */
    assert_string_equal(sni(idx, "a.b.example.com"), "-");
    assert_string_equal(sni(idx, "x.www.example.com"), "-");
    /* Case folded, one trailing dot ignored, not two. */
    assert_string_equal(sni(idx, "WWW.Example.COM"), "example.com");
    assert_string_equal(sni(idx, "Shop.EXAMPLE.com."), "*.example.com");
    assert_string_equal(sni(idx, "www.example.com.."), "-");
    /* Neither the parent of a wildcard nor the TLD. */
    assert_string_equal(sni(idx, "com"), "-");
    assert_string_equal(sni(idx, "example.org"), "-");
    /* Garbage and over-long names are simply not found. */
    assert_string_equal(sni(idx, ""), "-");
    assert_string_equal(sni(idx, "."), "-");
    assert_string_equal(sni(idx, "www example.com"), "-");
    assert_string_equal(sni(idx, "www.example.com\n"), "-");
    assert_null(index_lookup_sni(idx, NULL, NULL, NULL));
    char longname[300];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_string_equal(sni(idx, longname), "-");
    /* A wildcard name only matches a wildcard entry exactly, never one label further up. */
    assert_int_equal(put(idx, 3, "*.b.example.com", deep, 1, 5000, NULL), 0);
    assert_string_equal(sni(idx, "a.b.example.com"), "*.b.example.com");
    assert_string_equal(sni(idx, "*.b.example.com"), "*.b.example.com");
    assert_string_equal(sni(idx, "*.c.example.com"), "-");

    char out[254];
    assert_int_equal(index_sni_normalize("A.Example.COM.", out), 0);
    assert_string_equal(out, "a.example.com");
    assert_int_equal(index_sni_normalize("a_b.example.com", out), -EINVAL);
    assert_int_equal(index_sni_normalize("bücher.example", out), -EINVAL);

    /* The domain map answers primary names only. */
    struct index_entry *e = index_lookup_domain(idx, "example.com");
    assert_non_null(e);
    index_entry_put(e);
    assert_null(index_lookup_domain(idx, "www.example.com"));
    assert_int_equal(index_domain_count(idx), 3);
    assert_int_equal(index_name_count(idx), 4);
    index_free(idx);
}

static void test_entry_contents(void **state)
{
    struct delivery_index *idx = NULL;
    assert_int_equal(index_new(&idx), 0);
    const char *dom[] = {"shop.example.com", "www.shop.example.com", "new.shop.example.com"};
    const char *cert[] = {"WWW.shop.example.com", "shop.example.com", "other.example.com"};
    struct index_source src = {
        .domain_id = 7,
        .primary = "shop.example.com",
        .names = dom,
        .name_count = 3,
        .cert_names = cert,
        .cert_name_count = 3,
        .chain_pem = fake_chain,
        .key_pem = fake_key,
        .key_id = 42,
        .serial = "3f1c",
        .fingerprint_sha256 = "ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789",
        .not_before = 100,
        .not_after = 200,
    };
    assert_int_equal(index_put(idx, &src), 0);
    /* Served only under the domain's names that the certificate carries. */
    assert_string_equal(sni(idx, "www.shop.example.com"), "shop.example.com");
    assert_string_equal(sni(idx, "new.shop.example.com"), "-");
    assert_string_equal(sni(idx, "other.example.com"), "-");

    struct index_entry *e = index_lookup_domain(idx, "shop.example.com");
    assert_non_null(e);
    size_t n, len;
    const char *const *names = index_entry_names(e, &n);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "shop.example.com");
    assert_string_equal(names[1], "www.shop.example.com");
    assert_string_equal(index_entry_etag(e), "\"ABCDEF0123456789abcdef0123456789-42\"");
    char tag[INDEX_ETAG_SIZE];
    index_etag_format(tag, src.fingerprint_sha256, 42);
    assert_string_equal(tag, index_entry_etag(e));
    /* The chain gains the newline it lacked, so the key can follow it. */
    const char *chain = index_entry_chain_pem(e, &len);
    assert_int_equal(len, strlen(fake_chain) + 1);
    assert_memory_equal(chain, fake_chain, strlen(fake_chain));
    assert_int_equal(chain[len - 1], '\n');
    assert_int_equal(chain[len], '\0');
    assert_null(index_entry_issuer(e));
    assert_int_equal(index_entry_key_id(e), 42);
    assert_int_equal(index_entry_not_after(e), 200);

    const char *key = index_entry_secret(e, INDEX_SECRET_KEY_PEM, &len);
    assert_int_equal(len, strlen(fake_key));
    assert_string_equal(key, fake_key);
    index_entry_put(e);

    /* Refused: a missing field, an over-long name. */
    src.key_pem = NULL;
    assert_int_equal(index_put(idx, &src), -EINVAL);
    src.key_pem = fake_key;
    char longname[300];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    const char *bad[] = {longname};
    src.names = bad;
    src.name_count = 1;
    assert_int_equal(index_put(idx, &src), -EINVAL);
    /* The refused puts left the old entry alone. */
    assert_string_equal(sni(idx, "www.shop.example.com"), "shop.example.com");
    index_free(idx);
}

static void test_replace_and_drop(void **state)
{
    struct delivery_index *idx = NULL;
    assert_int_equal(index_new(&idx), 0);
    const char *v1[] = {"a.example.net", "old.example.net"};
    const char *v2[] = {"a.example.net", "new.example.net"};
    assert_int_equal(put(idx, 1, "a.example.net", v1, 2, 5000, "01"), 0);
    struct index_entry *held = index_lookup_sni(idx, "old.example.net", NULL, NULL);
    assert_non_null(held);

    assert_int_equal(put(idx, 1, "a.example.net", v2, 2, 6000, "02"), 0);
    struct index_entry *e = index_lookup_sni(idx, "a.example.net", NULL, NULL);
    assert_string_equal(index_entry_serial(e), "02");
    index_entry_put(e);
    assert_string_equal(sni(idx, "old.example.net"), "-");
    assert_string_equal(sni(idx, "new.example.net"), "a.example.net");
    assert_int_equal(index_domain_count(idx), 1);
    assert_int_equal(index_name_count(idx), 2);
    /* The request holding the old entry still reads it whole. */
    assert_string_equal(index_entry_serial(held), "01");
    assert_string_equal(index_entry_secret(held, INDEX_SECRET_KEY_PEM, NULL), fake_key);
    index_entry_put(held);

    assert_int_equal(index_drop(idx, "a.example.net"), 0);
    assert_int_equal(index_drop(idx, "a.example.net"), -ENOENT);
    assert_string_equal(sni(idx, "a.example.net"), "-");
    assert_null(index_lookup_domain(idx, "a.example.net"));
    assert_int_equal(index_domain_count(idx), 0);
    assert_int_equal(index_name_count(idx), 0);
    index_free(idx);
}

static int renders;

static char *render_serial(const struct index_entry *e)
{
    renders++;
    return strdup(index_entry_serial(e));
}

static char *render_fail(const struct index_entry *e)
{
    (void)e;
    renders++;
    return NULL;
}

/* Bodies are rendered once per entry and kind, kept with the entry (a replaced entry renders
 * its own), and a failed rendering is retried on the next call. */
static void test_bodies(void **state)
{
    struct delivery_index *idx = NULL;
    assert_int_equal(index_new(&idx), 0);
    const char *names[] = {"b.example.net"};
    assert_int_equal(put(idx, 1, "b.example.net", names, 1, 5000, "0b01"), 0);
    struct index_entry *e = index_lookup_domain(idx, "b.example.net");
    renders = 0;
    size_t len = 0;
    const char *first = index_entry_body(e, INDEX_BODY_SNI, render_serial, &len);
    assert_string_equal(first, "0b01");
    assert_int_equal(len, 4);
    assert_ptr_equal(index_entry_body(e, INDEX_BODY_SNI, render_serial, NULL), first);
    assert_int_equal(renders, 1);
    /* another kind is its own rendering */
    assert_null(index_entry_body(e, INDEX_BODY_BUNDLE, render_fail, &len));
    assert_int_equal(renders, 2);
    assert_string_equal(index_entry_body(e, INDEX_BODY_BUNDLE, render_serial, NULL), "0b01");
    assert_int_equal(renders, 3);
    assert_null(index_entry_body(e, INDEX_BODY_KINDS, render_serial, NULL));
    assert_int_equal(renders, 3);

    assert_int_equal(put(idx, 1, "b.example.net", names, 1, 6000, "0b02"), 0);
    struct index_entry *e2 = index_lookup_domain(idx, "b.example.net");
    assert_string_equal(index_entry_body(e2, INDEX_BODY_SNI, render_serial, NULL), "0b02");
    assert_string_equal(index_entry_body(e, INDEX_BODY_SNI, render_serial, NULL), "0b01");
    assert_int_equal(renders, 4);
    index_entry_put(e);
    index_entry_put(e2);
    index_free(idx);
}

static bool not_primary_x(const struct index_entry *e, void *ctx)
{
    return strcmp(index_entry_primary(e), (const char *)ctx) != 0;
}

static bool none_visible(const struct index_entry *e, void *ctx)
{
    return strncmp(index_entry_primary(e), "*.", 2) == 0;
}

static void test_shared_names(void **state)
{
    struct delivery_index *idx = NULL;
    assert_int_equal(index_new(&idx), 0);
    /* Three domains carry shared.example.org; the one whose primary it is wins, then the one
     * expiring last, then the lowest id. */
    const char *a[] = {"a.example.org", "shared.example.org"};
    const char *b[] = {"b.example.org", "shared.example.org"};
    const char *s[] = {"shared.example.org"};
    const char *w[] = {"*.example.org"};
    assert_int_equal(put(idx, 1, "a.example.org", a, 2, 5000, NULL), 0);
    assert_int_equal(put(idx, 2, "b.example.org", b, 2, 9000, NULL), 0);
    assert_string_equal(sni(idx, "shared.example.org"), "b.example.org");
    assert_int_equal(put(idx, 3, "shared.example.org", s, 1, 1000, NULL), 0);
    assert_int_equal(put(idx, 4, "*.example.org", w, 1, 1000, NULL), 0);
    assert_string_equal(sni(idx, "shared.example.org"), "shared.example.org");

    /* A caller that may not see the best one gets the next it may see, then the wildcard. */
    struct index_entry *e =
        index_lookup_sni(idx, "shared.example.org", not_primary_x, "shared.example.org");
    assert_string_equal(index_entry_primary(e), "b.example.org");
    index_entry_put(e);
    e = index_lookup_sni(idx, "shared.example.org", none_visible, NULL);
    assert_string_equal(index_entry_primary(e), "*.example.org");
    index_entry_put(e);
    e = index_lookup_sni(idx, "a.example.org", not_primary_x, "a.example.org");
    assert_string_equal(index_entry_primary(e), "*.example.org");
    index_entry_put(e);

    assert_int_equal(index_drop(idx, "shared.example.org"), 0);
    assert_string_equal(sni(idx, "shared.example.org"), "b.example.org");
    assert_int_equal(index_drop(idx, "b.example.org"), 0);
    assert_string_equal(sni(idx, "shared.example.org"), "a.example.org");
    assert_int_equal(index_drop(idx, "a.example.org"), 0);
    assert_string_equal(sni(idx, "shared.example.org"), "*.example.org");
    index_free(idx);
}

#define SCALE 100000

static void test_scale(void **state)
{
    struct delivery_index *idx = NULL;
    assert_int_equal(index_new(&idx), 0);
    char p[64], www[64], wild[64];
    double t0 = now_s();
    for (int i = 0; i < SCALE; i++) {
        snprintf(p, sizeof(p), "d%06d.example.net", i);
        snprintf(www, sizeof(www), "www.d%06d.example.net", i);
        snprintf(wild, sizeof(wild), "*.d%06d.example.net", i);
        const char *names[] = {p, www, wild};
        /* Every tenth domain has a wildcard too. */
        assert_int_equal(put(idx, i + 1, p, names, i % 10 == 0 ? 3 : 2, 5000, NULL), 0);
    }
    double t_insert = now_s() - t0;
    assert_int_equal(index_domain_count(idx), SCALE);
    assert_int_equal(index_name_count(idx), 2 * SCALE + SCALE / 10);

    const int lookups = 1000000;
    unsigned seed = 12345;
    t0 = now_s();
    for (int k = 0; k < lookups; k++) {
        int i = (int)(rand_r(&seed) % SCALE);
        char host[64];
        switch (k % 4) {
        case 0:
            snprintf(host, sizeof(host), "d%06d.example.net", i);
            break;
        case 1:
            snprintf(host, sizeof(host), "WWW.d%06d.example.net", i);
            break;
        case 2:
            snprintf(host, sizeof(host), "shop.d%06d.example.net", i);
            break;
        default:
            snprintf(host, sizeof(host), "x.www.d%06d.example.net", i); /* never */
            break;
        }
        struct index_entry *e = index_lookup_sni(idx, host, NULL, NULL);
        bool want = k % 4 < 2 || (k % 4 == 2 && i % 10 == 0);
        if (want != (e != NULL))
            fail_msg("%s: expected %s", host, want ? "a hit" : "a miss");
        if (e && index_entry_domain_id(e) != i + 1)
            fail_msg("%s: got domain %lld", host, (long long)index_entry_domain_id(e));
        index_entry_put(e);
    }
    double t_lookup = now_s() - t0;
    printf("# %d domains inserted in %.2f s; %d SNI lookups in %.2f s (%.0f/s)\n", SCALE, t_insert,
           lookups, t_lookup, lookups / t_lookup);
    /* Generous for ASan builds on a slow machine; a linear scan would take minutes. */
    assert_true(t_insert < 30.0);
    assert_true(t_lookup < 20.0);

    /* Drop every odd domain (many backward shifts), then every remaining one is still found
     * and every dropped one gone. */
    for (int i = 1; i < SCALE; i += 2) {
        snprintf(p, sizeof(p), "d%06d.example.net", i);
        assert_int_equal(index_drop(idx, p), 0);
    }
    for (int i = 0; i < SCALE; i++) {
        snprintf(www, sizeof(www), "www.d%06d.example.net", i);
        struct index_entry *e = index_lookup_sni(idx, www, NULL, NULL);
        if ((i % 2 == 0) != (e != NULL))
            fail_msg("%s after dropping the odd ones", www);
        index_entry_put(e);
    }
    assert_int_equal(index_domain_count(idx), SCALE / 2);
    index_free(idx);
}

/* ---- events bus ---- */

struct counter {
    atomic_int calls;
    _Atomic int64_t last;
};

static void count_cb(void *ctx, int64_t id)
{
    struct counter *c = ctx;
    atomic_fetch_add(&c->calls, 1);
    atomic_store(&c->last, id);
}

static void test_events_bus(void **state)
{
    struct events_bus *bus = NULL;
    assert_int_equal(events_bus_new(5, &bus), 0);
    assert_int_equal(events_bus_last_id(bus), 5);
    struct counter c = {0};
    assert_int_equal(events_bus_subscribe(bus, count_cb, &c), 0);
    assert_int_equal(events_bus_subscribe(bus, count_cb, &c), -EEXIST);
    assert_int_equal(events_bus_subscribe(bus, NULL, &c), -EINVAL);

    /* News already there: no wait. Otherwise a timeout gives the unchanged id. */
    assert_int_equal(events_bus_wait(bus, 4, 10000), 5);
    double t0 = now_s();
    assert_int_equal(events_bus_wait(bus, 5, 50), 5);
    assert_true(now_s() - t0 >= 0.04);

    events_bus_hook(bus, 9);
    assert_int_equal(atomic_load(&c.calls), 1);
    assert_int_equal(atomic_load(&c.last), 9);
    assert_int_equal(events_bus_wait(bus, 5, 0), 9);
    /* The id never goes back. */
    events_bus_hook(bus, 7);
    assert_int_equal(events_bus_last_id(bus), 9);
    assert_int_equal(atomic_load(&c.last), 9);

    assert_int_equal(events_bus_unsubscribe(bus, count_cb, &c), 0);
    assert_int_equal(events_bus_unsubscribe(bus, count_cb, &c), -ENOENT);
    events_bus_hook(bus, 10);
    assert_int_equal(atomic_load(&c.calls), 2);

    events_bus_stop(bus);
    assert_int_equal(events_bus_wait(bus, 10, -1), -ECANCELED);
    events_bus_free(bus);
    events_bus_free(NULL);
}

/* ---- following a real store ---- */

struct store_fixture {
    char dir[PATH_MAX];
    char db[PATH_MAX + 16];
    struct store *st;
    struct events_bus *bus;
};

/* A self-signed leaf for KEY_PEM carrying SANS, as PEM (malloc'd); its SHA-256 in FP. */
static char *make_cert(const char *key_pem, const char *const *sans, size_t n, int serial,
                       char fp[65])
{
    gnutls_x509_privkey_t key;
    gnutls_x509_crt_t crt;
    gnutls_datum_t kd = {.data = (unsigned char *)key_pem, .size = (unsigned)strlen(key_pem)};
    assert_int_equal(gnutls_x509_privkey_init(&key), 0);
    assert_int_equal(gnutls_x509_privkey_import2(key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0), 0);
    assert_int_equal(gnutls_x509_crt_init(&crt), 0);
    unsigned char ser[2] = {0x10, (unsigned char)serial};
    time_t now = time(NULL);
    assert_int_equal(gnutls_x509_crt_set_version(crt, 3), 0);
    assert_int_equal(gnutls_x509_crt_set_serial(crt, ser, sizeof(ser)), 0);
    assert_int_equal(gnutls_x509_crt_set_activation_time(crt, now - 3600), 0);
    assert_int_equal(gnutls_x509_crt_set_expiration_time(crt, now + 90 * DAY), 0);
    assert_int_equal(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, sans[0],
                                                   (unsigned)strlen(sans[0])),
                     0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, sans[i],
                                                              (unsigned)strlen(sans[i]),
                                                              GNUTLS_FSAN_APPEND),
                         0);
    assert_int_equal(gnutls_x509_crt_set_key(crt, key), 0);
    assert_int_equal(gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0), 0);
    unsigned char digest[32];
    size_t dlen = sizeof(digest);
    assert_int_equal(gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, digest, &dlen), 0);
    for (size_t i = 0; i < 32; i++)
        snprintf(fp + 2 * i, 3, "%02x", digest[i]);
    gnutls_datum_t out;
    assert_int_equal(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &out), 0);
    char *pem = strndup((const char *)out.data, out.size);
    gnutls_free(out.data);
    gnutls_x509_crt_deinit(crt);
    gnutls_x509_privkey_deinit(key);
    return pem;
}

/* Adds domain NAME with ALTS and its key; *KEY_PEM (optional) the key, *ID the domain id. */
static void add_domain(struct store *st, const char *name, const char *const *alts, size_t nalts,
                       char **key_pem, int64_t *id, int64_t *key_id)
{
    char *pem = NULL, fp[KEY_FINGERPRINT_SIZE];
    assert_int_equal(keys_generate(KEY_EC_P256, &pem, fp), 0);
    struct store_domain d = {.name = (char *)name,
                             .alt_names = (char **)alts,
                             .alt_count = nalts,
                             .challenge = "dns-01",
                             .key_type = "ec-p256",
                             .ca = "test"};
    struct store_key k = {.key_type = "ec-p256", .pem = pem, .public_key_sha256 = fp};
    struct store_event_in ev = {.type = "domain.added", .domain = name, .actor = "test"};
    struct store_domain *out = NULL;
    assert_int_equal(store_domain_add(st, &d, &k, &ev, &out), 0);
    *id = out->id;
    store_domain_free(out);
    struct store_key *cur = NULL;
    assert_int_equal(store_key_current(st, *id, &cur), 0);
    *key_id = cur->id;
    store_key_free(cur);
    *key_pem = pem;
}

static void issue(struct store *st, const char *name, int64_t id, int64_t key_id,
                  const char *key_pem, const char *const *sans, size_t n, int serial)
{
    char fp[65], ser[8];
    char *pem = make_cert(key_pem, sans, n, serial, fp);
    snprintf(ser, sizeof(ser), "10%02x", serial);
    time_t now = time(NULL);
    struct store_cert c = {.domain_id = id,
                           .key_id = key_id,
                           .serial = ser,
                           .not_before = now - 3600,
                           .not_after = now + 90 * DAY,
                           .issuer = "CN=test",
                           .fingerprint_sha256 = fp,
                           .chain_pem = pem};
    struct store_event_in ev = {.type = "certificate.issued", .domain = name, .actor = "test"};
    assert_int_equal(store_cert_add(st, &c, now + 60 * DAY, &ev, NULL), 0);
    free(pem);
}

/* Polls (bounded) until PRIMARY's entry has SERIAL (NULL: until it is gone). */
static bool wait_serial(struct delivery_index *idx, const char *primary, const char *serial)
{
    for (int i = 0; i < 500; i++) {
        struct index_entry *e = index_lookup_domain(idx, primary);
        bool ok = serial ? e && strcmp(index_entry_serial(e), serial) == 0 : e == NULL;
        index_entry_put(e);
        if (ok)
            return true;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return false;
}

static void test_follow_store(void **state)
{
    struct store_fixture f = {0};
    const char *base = getenv("CERTD_TEST_TMPDIR");
    char err[256];
    if (!base)
        base = "/tmp";
    mkdir(base, 0700);
    snprintf(f.dir, sizeof(f.dir), "%s/api-index-XXXXXX", base);
    assert_non_null(mkdtemp(f.dir));
    snprintf(f.db, sizeof(f.db), "%s/certd.db", f.dir);
    assert_int_equal(store_open(f.db, &f.st, err, sizeof(err)), 0);
    int64_t last = 0;
    assert_int_equal(store_event_last_id(f.st, &last), 0);
    assert_int_equal(events_bus_new(last, &f.bus), 0);
    store_set_event_hook(f.st, events_bus_hook, f.bus);

    /* Before the start: one domain with a certificate that misses one of its names, one with
     * none yet. */
    const char *shop_alts[] = {"www.shop.example.org", "extra.example.org"};
    const char *shop_sans[] = {"shop.example.org", "www.shop.example.org"};
    char *shop_key = NULL, *later_key = NULL;
    int64_t shop_id, shop_kid, later_id, later_kid;
    add_domain(f.st, "shop.example.org", shop_alts, 2, &shop_key, &shop_id, &shop_kid);
    issue(f.st, "shop.example.org", shop_id, shop_kid, shop_key, shop_sans, 2, 1);
    const char *later_sans[] = {"*.later.example.org"};
    add_domain(f.st, "*.later.example.org", NULL, 0, &later_key, &later_id, &later_kid);

    struct delivery_index *idx = NULL;
    assert_int_equal(index_new(&idx), 0);
    assert_int_equal(index_start(idx, f.st, f.bus), 0);
    assert_int_equal(index_start(idx, f.st, f.bus), -EALREADY);
    assert_true(index_cursor(idx) > 0);
    assert_int_equal(index_domain_count(idx), 1);

    struct index_entry *e = index_lookup_sni(idx, "WWW.shop.example.org", NULL, NULL);
    assert_non_null(e);
    assert_string_equal(index_entry_primary(e), "shop.example.org");
    assert_string_equal(index_entry_serial(e), "1001");
    /* The key handed out is the stored key of the certificate. */
    size_t klen;
    const char *k = index_entry_secret(e, INDEX_SECRET_KEY_PEM, &klen);
    assert_true(klen >= strlen(shop_key));
    assert_memory_equal(k, shop_key, strlen(shop_key));
    assert_null(index_lookup_sni(idx, "extra.example.org", NULL, NULL));
    assert_null(index_lookup_domain(idx, "*.later.example.org"));

    /* Issued after the start: followed through the bus. */
    issue(f.st, "*.later.example.org", later_id, later_kid, later_key, later_sans, 1, 2);
    assert_true(wait_serial(idx, "*.later.example.org", "1002"));
    struct index_entry *w = index_lookup_sni(idx, "a.later.example.org", NULL, NULL);
    assert_non_null(w);
    index_entry_put(w);
    assert_null(index_lookup_sni(idx, "a.b.later.example.org", NULL, NULL));

    /* Renewed: the new certificate replaces the old one; a holder keeps the old. */
    issue(f.st, "shop.example.org", shop_id, shop_kid, shop_key, shop_sans, 2, 3);
    assert_true(wait_serial(idx, "shop.example.org", "1003"));
    assert_string_equal(index_entry_serial(e), "1001");
    index_entry_put(e);

    /* Removed: dropped. */
    struct store_event_in ev = {
        .type = "domain.removed", .domain = "shop.example.org", .actor = "test"};
    assert_int_equal(store_domain_remove(f.st, "shop.example.org", false, &ev), 0);
    assert_true(wait_serial(idx, "shop.example.org", NULL));
    assert_null(index_lookup_sni(idx, "www.shop.example.org", NULL, NULL));
    int64_t last_id = 0;
    assert_int_equal(store_event_last_id(f.st, &last_id), 0);
    for (int i = 0; i < 500 && index_cursor(idx) < last_id; i++)
        usleep(10000);
    assert_int_equal(index_cursor(idx), last_id);

    events_bus_stop(f.bus);
    index_free(idx);
    store_set_event_hook(f.st, NULL, NULL);
    store_close(f.st);
    events_bus_free(f.bus);
    keys_pem_free(shop_key);
    keys_pem_free(later_key);
    char p[PATH_MAX + 64];
    static const char *const sfx[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s%s", f.db, sfx[i]);
        unlink(p);
    }
    rmdir(f.dir);
}

/* Events pruned before the index read them: it notices the gap and reloads everything, so a
 * domain purged meanwhile goes and one issued meanwhile comes. */
static void test_resync_after_prune(void **state)
{
    struct store_fixture f = {0};
    const char *base = getenv("CERTD_TEST_TMPDIR");
    char err[256];
    if (!base)
        base = "/tmp";
    mkdir(base, 0700);
    snprintf(f.dir, sizeof(f.dir), "%s/api-index-XXXXXX", base);
    assert_non_null(mkdtemp(f.dir));
    snprintf(f.db, sizeof(f.db), "%s/certd.db", f.dir);
    assert_int_equal(store_open(f.db, &f.st, err, sizeof(err)), 0);
    /* The bus is not the store's hook: the index hears of nothing until poked below. */
    assert_int_equal(events_bus_new(0, &f.bus), 0);

    const char *a_sans[] = {"gone.example.org"};
    const char *b_sans[] = {"new.example.org"};
    char *a_key = NULL, *b_key = NULL;
    int64_t a_id, a_kid, b_id, b_kid;
    add_domain(f.st, "gone.example.org", NULL, 0, &a_key, &a_id, &a_kid);
    issue(f.st, "gone.example.org", a_id, a_kid, a_key, a_sans, 1, 1);
    struct delivery_index *idx = NULL;
    assert_int_equal(index_new(&idx), 0);
    assert_int_equal(index_start(idx, f.st, f.bus), 0);
    assert_string_equal(sni(idx, "gone.example.org"), "gone.example.org");

    struct store_event_in ev = {
        .type = "domain.purged", .domain = "gone.example.org", .actor = "test"};
    assert_int_equal(store_domain_remove(f.st, "gone.example.org", true, &ev), 0);
    add_domain(f.st, "new.example.org", NULL, 0, &b_key, &b_id, &b_kid);
    issue(f.st, "new.example.org", b_id, b_kid, b_key, b_sans, 1, 2);
    int64_t last = 0, first = 0;
    assert_int_equal(store_event_last_id(f.st, &last), 0);
    size_t deleted = 0;
    assert_int_equal(store_events_prune(f.st, time(NULL) + 100, &deleted), 0);
    assert_int_equal(deleted, (size_t)last);
    assert_int_equal(store_event_first_id(f.st, &first), 0);
    assert_int_equal(first, last + 1);
    events_bus_hook(f.bus, last);

    assert_true(wait_serial(idx, "new.example.org", "1002"));
    assert_true(wait_serial(idx, "gone.example.org", NULL));
    assert_int_equal(index_domain_count(idx), 1);
    for (int i = 0; i < 500 && index_cursor(idx) < last; i++)
        usleep(10000);
    assert_int_equal(index_cursor(idx), last);

    events_bus_stop(f.bus);
    index_free(idx);
    store_close(f.st);
    events_bus_free(f.bus);
    keys_pem_free(a_key);
    keys_pem_free(b_key);
    char p[PATH_MAX + 64];
    static const char *const sfx[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s%s", f.db, sfx[i]);
        unlink(p);
    }
    rmdir(f.dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sni_rules),
        cmocka_unit_test(test_entry_contents),
        cmocka_unit_test(test_replace_and_drop),
        cmocka_unit_test(test_bodies),
        cmocka_unit_test(test_shared_names),
        cmocka_unit_test(test_scale),
        cmocka_unit_test(test_events_bus),
        cmocka_unit_test(test_follow_store),
        cmocka_unit_test(test_resync_after_prune),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
