/* Domains, their keys and certificates, events written with them, and the stats. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
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
#include <sqlite3.h>

#include "store/store.h"
#include "store/store_internal.h"
#include "store_fixture.h"

#define PEM_A "-----BEGIN PRIVATE KEY-----\nAAAA-first-key\n-----END PRIVATE KEY-----\n"
#define PEM_B "-----BEGIN PRIVATE KEY-----\nBBBB-second-key\n-----END PRIVATE KEY-----\n"

static const struct store_event_in ev_added = {
    .type = "domain.added", .domain = NULL, .actor = "uid:0(root)", .detail_json = "{\"x\":1}"};

static struct store_event_in ev_for(const char *type, const char *domain)
{
    return (struct store_event_in){.type = type, .domain = domain, .actor = "uid:0(root)"};
}

static struct store_key key_in(const char *pem, const char *fp)
{
    return (struct store_key){
        .key_type = "ec-p256", .pem = (char *)pem, .public_key_sha256 = (char *)fp};
}

static int add(struct store *st, const char *name, char **alts, size_t nalts, const char *pem,
               struct store_domain **out)
{
    struct store_domain d = {.name = (char *)name,
                             .alt_names = alts,
                             .alt_count = nalts,
                             .challenge = "http-01",
                             .key_type = "ec-p256",
                             .ca = "letsencrypt"};
    struct store_key k = key_in(pem, "f00d");
    struct store_event_in ev = ev_for("domain.added", name);
    return store_domain_add(st, &d, &k, &ev, out);
}

static int64_t raw_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

/* The store has no certificate writer yet (the issuance work adds one), so tests insert rows. */
static void raw_cert(struct store *st, int64_t domain_id, int64_t key_id, const char *status,
                     int64_t not_after)
{
    sqlite3 *db = store_sqlite_handle(st);
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO certificates (domain_id, key_id, serial,"
                                        " not_before, not_after, issuer, fingerprint_sha256,"
                                        " chain_pem, status, created_at)"
                                        " VALUES (?1, ?2, '0a1b', 100, ?4, 'CN=Test CA', 'abcd',"
                                        " 'CHAIN', ?3, 1000)",
                                        -1, &s, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(s, 1, domain_id);
    sqlite3_bind_int64(s, 2, key_id);
    sqlite3_bind_text(s, 3, status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, not_after);
    assert_int_equal(sqlite3_step(s), SQLITE_DONE);
    sqlite3_finalize(s);
}

static void test_add_get(void **state)
{
    struct store_fixture *f = *state;
    char *alts[] = {"example.com", "api.example.com"};
    struct store_domain *d = NULL, *g = NULL;
    int64_t before = time(NULL);

    assert_int_equal(add(f->st, "www.example.com", alts, 2, PEM_A, &d), 0);
    assert_non_null(d);
    assert_true(d->id > 0);
    assert_string_equal(d->name, "www.example.com");
    assert_int_equal(d->alt_count, 2);
    assert_string_equal(d->alt_names[0], "example.com");
    assert_string_equal(d->alt_names[1], "api.example.com");
    assert_string_equal(d->challenge, "http-01");
    assert_string_equal(d->key_type, "ec-p256");
    assert_string_equal(d->ca, "letsencrypt");
    assert_string_equal(d->status, DOMAIN_STATUS_PENDING);
    assert_int_equal(d->next_renewal_at, 0);
    assert_int_equal(d->failure_count, 0);
    assert_null(d->last_error);
    assert_true(d->created_at >= before && d->created_at <= time(NULL));
    assert_int_equal(d->updated_at, d->created_at);

    assert_int_equal(store_domain_get(f->st, "www.example.com", &g), 0);
    assert_int_equal(g->id, d->id);
    assert_int_equal(g->alt_count, 2);
    assert_string_equal(g->alt_names[1], "api.example.com");
    store_domain_free(g);

    assert_int_equal(store_domain_get(f->st, "nope.example.com", &g), -ENOENT);
    assert_null(g);

    /* The first key is current, and lists never carry PEM. */
    struct store_key *k = NULL;
    assert_int_equal(store_key_current(f->st, d->id, &k), 0);
    assert_string_equal(k->status, KEY_STATUS_CURRENT);
    assert_string_equal(k->public_key_sha256, "f00d");
    assert_string_equal(k->key_type, "ec-p256");
    assert_int_equal(k->domain_id, d->id);
    assert_null(k->pem);
    int64_t key_id = k->id;
    store_key_free(k);

    struct store_key **keys = NULL;
    size_t n = 0;
    assert_int_equal(store_key_list(f->st, d->id, &keys, &n), 0);
    assert_int_equal(n, 1);
    assert_null(keys[0]->pem);
    store_key_list_free(keys, n);

    assert_int_equal(store_key_get_pem(f->st, key_id, &k), 0);
    assert_string_equal(k->pem, PEM_A);
    assert_int_equal(k->id, key_id);
    store_key_free(k);
    assert_int_equal(store_key_get_pem(f->st, key_id + 100, &k), -ENOENT);
    assert_null(k);

    store_domain_free(d);
    store_domain_free(NULL); /* NULL-safe */
}

static void test_add_duplicate_and_invalid(void **state)
{
    struct store_fixture *f = *state;
    int64_t last1 = 0, last2 = 0;

    assert_int_equal(add(f->st, "a.example", NULL, 0, PEM_A, NULL), 0);
    assert_int_equal(store_event_last_id(f->st, &last1), 0);
    assert_int_equal(add(f->st, "a.example", NULL, 0, PEM_B, NULL), -EEXIST);

    /* Primary repeated, or an alt name twice: refused before touching the database. */
    char *dup1[] = {"b.example"};
    char *dup2[] = {"c.example", "c.example"};
    assert_int_equal(add(f->st, "b.example", dup1, 1, PEM_A, NULL), -EINVAL);
    assert_int_equal(add(f->st, "x.example", dup2, 2, PEM_A, NULL), -EINVAL);
    assert_int_equal(add(f->st, "y.example", NULL, 0, "", NULL), -EINVAL);

    /* A refused event (detail not an object) rolls back the domain it came with. */
    struct store_domain d = {
        .name = "z.example", .challenge = "http-01", .key_type = "ec-p256", .ca = "le"};
    struct store_key k = key_in(PEM_A, "aa");
    struct store_event_in bad = {.type = "domain.added", .actor = "t", .detail_json = "[1]"};
    assert_int_equal(store_domain_add(f->st, &d, &k, &bad, NULL), -EINVAL);
    struct store_domain *g = NULL;
    assert_int_equal(store_domain_get(f->st, "z.example", &g), -ENOENT);

    /* No failed attempt left an event or a row behind. */
    assert_int_equal(store_event_last_id(f->st, &last2), 0);
    assert_int_equal(last2, last1);
    sqlite3 *db = store_sqlite_handle(f->st);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM domains"), 1);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM private_keys"), 1);
}

static void test_events_in_same_transaction(void **state)
{
    struct store_fixture *f = *state;
    struct store_domain *d = NULL;

    struct store_domain in = {
        .name = "ev.example", .challenge = "dns-01", .key_type = "ec-p384", .ca = "le"};
    struct store_key k = key_in(PEM_A, "aa");
    struct store_event_in ev = ev_added;
    ev.domain = "ev.example";
    assert_int_equal(store_domain_add(f->st, &in, &k, &ev, &d), 0);

    struct store_event_in up = ev_for("domain.updated", "ev.example");
    in.challenge = "http-01";
    assert_int_equal(store_domain_update(f->st, &in, &up, NULL), 0);
    struct store_event_in rm = ev_for("domain.removed", "ev.example");
    assert_int_equal(store_domain_remove(f->st, "ev.example", false, &rm), 0);

    struct store_event **evs = NULL;
    size_t n = 0;
    assert_int_equal(store_event_list(f->st, 0, 100, &evs, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(evs[0]->type, "domain.added");
    assert_string_equal(evs[0]->domain, "ev.example");
    assert_string_equal(evs[0]->actor, "uid:0(root)");
    assert_string_equal(evs[0]->detail_json, "{\"x\":1}");
    assert_string_equal(evs[1]->type, "domain.updated");
    assert_string_equal(evs[1]->detail_json, "{}");
    assert_string_equal(evs[2]->type, "domain.removed");
    assert_true(evs[0]->id < evs[1]->id && evs[1]->id < evs[2]->id);
    assert_true(evs[0]->created_at >= d->created_at);
    int64_t last = 0;
    assert_int_equal(store_event_last_id(f->st, &last), 0);
    assert_int_equal(last, evs[2]->id);

    /* Paging with after= and limit. */
    store_event_list_free(evs, n);
    assert_int_equal(store_event_list(f->st, last - 2, 1, &evs, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(evs[0]->id, last - 1);
    store_event_list_free(evs, n);
    assert_int_equal(store_event_list(f->st, last, 10, &evs, &n), 0);
    assert_int_equal(n, 0);
    store_event_list_free(evs, n);

    /* A failing mutation appends nothing. */
    assert_int_equal(store_domain_remove(f->st, "ev.example", false, &rm), -ENOENT);
    assert_int_equal(store_domain_update(f->st, &in, &up, NULL), -ENOENT);
    int64_t after = 0;
    assert_int_equal(store_event_last_id(f->st, &after), 0);
    assert_int_equal(after, last);
    store_domain_free(d);
}

static void test_list_pagination(void **state)
{
    struct store_fixture *f = *state;
    static const char *const names[] = {"d.example", "a.example", "e.example", "b.example",
                                        "c.example"};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(add(f->st, names[i], NULL, 0, PEM_A, NULL), 0);
    struct store_event_in rm = ev_for("domain.removed", "c.example");
    assert_int_equal(store_domain_remove(f->st, "c.example", false, &rm), 0);

    struct store_domain **list = NULL;
    size_t n = 0;
    assert_int_equal(store_domain_list(f->st, NULL, 2, false, &list, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0]->name, "a.example");
    assert_string_equal(list[1]->name, "b.example");
    char cursor[64];
    snprintf(cursor, sizeof(cursor), "%s", list[1]->name);
    store_domain_list_free(list, n);

    assert_int_equal(store_domain_list(f->st, cursor, 2, false, &list, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0]->name, "d.example"); /* c is removed */
    assert_string_equal(list[1]->name, "e.example");
    store_domain_list_free(list, n);

    assert_int_equal(store_domain_list(f->st, "e.example", 2, false, &list, &n), 0);
    assert_int_equal(n, 0);
    store_domain_list_free(list, n);

    assert_int_equal(store_domain_list(f->st, cursor, 10, true, &list, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(list[0]->name, "c.example");
    assert_string_equal(list[0]->status, DOMAIN_STATUS_REMOVED);
    store_domain_list_free(list, n);

    /* A removed domain is still readable by name. */
    struct store_domain *g = NULL;
    assert_int_equal(store_domain_get(f->st, "c.example", &g), 0);
    assert_string_equal(g->status, DOMAIN_STATUS_REMOVED);
    store_domain_free(g);
}

static void test_update(void **state)
{
    struct store_fixture *f = *state;
    char *alts[] = {"one.example", "two.example"};
    struct store_domain *d = NULL, *u = NULL;
    assert_int_equal(add(f->st, "up.example", alts, 2, PEM_A, &d), 0);

    char *alts2[] = {"three.example"};
    struct store_domain in = {.name = "up.example",
                              .alt_names = alts2,
                              .alt_count = 1,
                              .challenge = "dns-01",
                              .key_type = "rsa-3072",
                              .ca = "buypass"};
    struct store_event_in ev = ev_for("domain.updated", "up.example");
    assert_int_equal(store_domain_update(f->st, &in, &ev, &u), 0);
    assert_int_equal(u->id, d->id);
    assert_int_equal(u->alt_count, 1);
    assert_string_equal(u->alt_names[0], "three.example");
    assert_string_equal(u->challenge, "dns-01");
    assert_string_equal(u->key_type, "rsa-3072");
    assert_string_equal(u->ca, "buypass");
    assert_string_equal(u->status, DOMAIN_STATUS_PENDING);
    assert_int_equal(u->created_at, d->created_at);
    store_domain_free(u);

    /* Dropping every alt name works too. */
    in.alt_count = 0;
    assert_int_equal(store_domain_update(f->st, &in, &ev, &u), 0);
    assert_int_equal(u->alt_count, 0);
    store_domain_free(u);
    assert_int_equal(raw_int(store_sqlite_handle(f->st), "SELECT COUNT(*) FROM domain_names"), 0);

    in.name = "missing.example";
    assert_int_equal(store_domain_update(f->st, &in, &ev, &u), -ENOENT);
    assert_null(u);
    store_domain_free(d);
}

static void test_revive(void **state)
{
    struct store_fixture *f = *state;
    char *alts[] = {"old.example"};
    struct store_domain *d = NULL, *r = NULL;
    assert_int_equal(add(f->st, "rv.example", alts, 1, PEM_A, &d), 0);

    struct store_key *k1 = NULL;
    assert_int_equal(store_key_current(f->st, d->id, &k1), 0);
    raw_cert(f->st, d->id, k1->id, CERT_STATUS_ACTIVE, 5000);

    struct store_event_in rm = ev_for("domain.removed", "rv.example");
    assert_int_equal(store_domain_remove(f->st, "rv.example", false, &rm), 0);
    /* Removing twice: no such managed domain. */
    assert_int_equal(store_domain_remove(f->st, "rv.example", false, &rm), -ENOENT);

    /* Adding the name again revives the same row with the new settings and key. */
    char *alts2[] = {"new.example", "new2.example"};
    struct store_domain in = {.name = "rv.example",
                              .alt_names = alts2,
                              .alt_count = 2,
                              .challenge = "dns-01",
                              .key_type = "ec-p384",
                              .ca = "other"};
    struct store_key k = {.key_type = "ec-p384", .pem = PEM_B, .public_key_sha256 = "beef"};
    struct store_event_in ev = ev_for("domain.added", "rv.example");
    assert_int_equal(store_domain_add(f->st, &in, &k, &ev, &r), 0);
    assert_int_equal(r->id, d->id);
    assert_int_equal(r->created_at, d->created_at);
    assert_string_equal(r->status, DOMAIN_STATUS_PENDING);
    assert_string_equal(r->challenge, "dns-01");
    assert_string_equal(r->key_type, "ec-p384");
    assert_string_equal(r->ca, "other");
    assert_int_equal(r->alt_count, 2);
    assert_string_equal(r->alt_names[0], "new.example");
    assert_string_equal(r->alt_names[1], "new2.example");

    struct store_key **keys = NULL;
    size_t n = 0;
    assert_int_equal(store_key_list(f->st, d->id, &keys, &n), 0);
    assert_int_equal(n, 2);
    /* Newest first: the new key is current, the first one superseded. */
    assert_string_equal(keys[0]->status, KEY_STATUS_CURRENT);
    assert_string_equal(keys[0]->public_key_sha256, "beef");
    assert_string_equal(keys[0]->key_type, "ec-p384");
    assert_null(keys[0]->pem);
    assert_string_equal(keys[1]->status, KEY_STATUS_SUPERSEDED);
    assert_int_equal(keys[1]->id, k1->id);
    assert_null(keys[1]->pem);

    struct store_key *cur = NULL, *pem = NULL;
    assert_int_equal(store_key_current(f->st, d->id, &cur), 0);
    assert_int_equal(cur->id, keys[0]->id);
    assert_int_equal(store_key_get_pem(f->st, cur->id, &pem), 0);
    assert_string_equal(pem->pem, PEM_B);
    store_key_free(pem);
    assert_int_equal(store_key_get_pem(f->st, k1->id, &pem), 0);
    assert_string_equal(pem->pem, PEM_A); /* history kept */
    store_key_free(pem);
    store_key_free(cur);
    store_key_list_free(keys, n);

    /* The old certificate belongs to the old key: kept, no longer active. */
    struct store_cert **certs = NULL;
    assert_int_equal(store_cert_list(f->st, d->id, &certs, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(certs[0]->status, CERT_STATUS_SUPERSEDED);
    assert_null(certs[0]->chain_pem);
    store_cert_list_free(certs, n);
    struct store_cert *c = NULL;
    assert_int_equal(store_cert_current(f->st, d->id, &c), -ENOENT);
    assert_null(c);

    /* Reviving a managed domain is a conflict. */
    assert_int_equal(store_domain_add(f->st, &in, &k, &ev, NULL), -EEXIST);

    store_key_free(k1);
    store_domain_free(d);
    store_domain_free(r);
}

static void test_certs(void **state)
{
    struct store_fixture *f = *state;
    struct store_domain *d = NULL;
    assert_int_equal(add(f->st, "c.example", NULL, 0, PEM_A, &d), 0);
    struct store_key *k = NULL;
    assert_int_equal(store_key_current(f->st, d->id, &k), 0);

    raw_cert(f->st, d->id, k->id, CERT_STATUS_SUPERSEDED, 1000);
    raw_cert(f->st, d->id, k->id, CERT_STATUS_ACTIVE, 9000);

    struct store_cert *c = NULL;
    assert_int_equal(store_cert_current(f->st, d->id, &c), 0);
    assert_string_equal(c->status, CERT_STATUS_ACTIVE);
    assert_string_equal(c->chain_pem, "CHAIN");
    assert_string_equal(c->serial, "0a1b");
    assert_string_equal(c->issuer, "CN=Test CA");
    assert_string_equal(c->fingerprint_sha256, "abcd");
    assert_int_equal(c->not_before, 100);
    assert_int_equal(c->not_after, 9000);
    assert_int_equal(c->key_id, k->id);
    assert_int_equal(c->domain_id, d->id);
    assert_int_equal(c->revoked_at, 0);
    int64_t active_id = c->id;
    store_cert_free(c);

    struct store_cert **certs = NULL;
    size_t n = 0;
    assert_int_equal(store_cert_list(f->st, d->id, &certs, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(certs[0]->id, active_id); /* newest first */
    assert_int_equal(certs[1]->not_after, 1000);
    assert_null(certs[0]->chain_pem);
    store_cert_list_free(certs, n);

    /* The schema allows one active certificate per domain. */
    sqlite3 *db = store_sqlite_handle(f->st);
    int rc = sqlite3_exec(db,
                          "INSERT INTO certificates (domain_id, key_id, serial, not_before,"
                          " not_after, issuer, fingerprint_sha256, chain_pem, status, created_at)"
                          " SELECT domain_id, key_id, serial, 1, 2, issuer, 'x', 'y', 'active', 3"
                          " FROM certificates LIMIT 1",
                          NULL, NULL, NULL);
    assert_int_equal(sqlite3_extended_errcode(db), SQLITE_CONSTRAINT_UNIQUE);
    assert_int_not_equal(rc, SQLITE_OK);
    /* ...one current key, and only known statuses. */
    rc = sqlite3_exec(db, "UPDATE private_keys SET status = 'current'", NULL, NULL, NULL);
    assert_int_equal(rc, SQLITE_OK); /* one key only: still one current */
    rc = sqlite3_exec(db, "UPDATE domains SET status = 'bogus'", NULL, NULL, NULL);
    assert_int_equal(sqlite3_extended_errcode(db), SQLITE_CONSTRAINT_CHECK);

    store_key_free(k);
    store_domain_free(d);
}

static void test_purge(void **state)
{
    struct store_fixture *f = *state;
    char *alts[] = {"alt.example"};
    struct store_domain *d = NULL;
    assert_int_equal(add(f->st, "p.example", alts, 1, PEM_A, &d), 0);
    assert_int_equal(add(f->st, "keep.example", alts, 1, PEM_A, NULL), 0);
    struct store_key *k = NULL;
    assert_int_equal(store_key_current(f->st, d->id, &k), 0);
    raw_cert(f->st, d->id, k->id, CERT_STATUS_ACTIVE, 9000);

    sqlite3 *db = store_sqlite_handle(f->st);
    char sql[256];
    snprintf(sql, sizeof(sql),
             "INSERT INTO orders (domain_id, ca, status, key_id, names, created_at, updated_at)"
             " VALUES (%lld, 'le', 'pending', %lld, '[\"p.example\"]', 1, 1)",
             (long long)d->id, (long long)k->id);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "UPDATE certificates SET order_id = 1", NULL, NULL, NULL),
                     SQLITE_OK);

    int64_t before = 0;
    assert_int_equal(store_event_last_id(f->st, &before), 0);

    /* Purge works on a managed domain and on a removed one; here: removed first. */
    struct store_event_in rm = ev_for("domain.removed", "p.example");
    assert_int_equal(store_domain_remove(f->st, "p.example", false, &rm), 0);
    struct store_event_in pg = ev_for("domain.purged", "p.example");
    assert_int_equal(store_domain_remove(f->st, "p.example", true, &pg), 0);

    struct store_domain *g = NULL;
    assert_int_equal(store_domain_get(f->st, "p.example", &g), -ENOENT);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM domains"), 1);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM domain_names"), 1); /* keep.example's */
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM private_keys"), 1);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM certificates"), 0);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM orders"), 0);
    struct store_key *gone = NULL;
    assert_int_equal(store_key_get_pem(f->st, k->id, &gone), -ENOENT);

    /* Events about the domain outlive it, and the purge added one. */
    struct store_event **evs = NULL;
    size_t n = 0;
    assert_int_equal(store_event_list(f->st, 0, 100, &evs, &n), 0);
    size_t about = 0;
    for (size_t i = 0; i < n; i++)
        about += evs[i]->domain && strcmp(evs[i]->domain, "p.example") == 0;
    assert_int_equal(about, 3); /* added, removed, purged */
    assert_string_equal(evs[n - 1]->type, "domain.purged");
    assert_int_equal(evs[n - 1]->id, before + 2);
    store_event_list_free(evs, n);

    assert_int_equal(store_domain_remove(f->st, "p.example", true, &pg), -ENOENT);

    /* A purged name can be added from scratch: a new row. */
    struct store_domain *again = NULL;
    assert_int_equal(add(f->st, "p.example", NULL, 0, PEM_B, &again), 0);
    assert_true(again->id != d->id);
    struct store_key **keys = NULL;
    assert_int_equal(store_key_list(f->st, again->id, &keys, &n), 0);
    assert_int_equal(n, 1);
    store_key_list_free(keys, n);

    store_domain_free(again);
    store_key_free(k);
    store_domain_free(d);
}

static void test_stats(void **state)
{
    struct store_fixture *f = *state;
    struct store_stats s;

    assert_int_equal(store_stats(f->st, &s), 0);
    assert_int_equal(s.domains, 0);
    assert_int_equal(s.next_renewal_at, 0);
    assert_int_equal(s.certificates_active, 0);

    struct store_domain *a = NULL, *b = NULL;
    assert_int_equal(add(f->st, "s1.example", NULL, 0, PEM_A, &a), 0);
    assert_int_equal(add(f->st, "s2.example", NULL, 0, PEM_A, &b), 0);
    assert_int_equal(add(f->st, "s3.example", NULL, 0, PEM_A, NULL), 0);
    assert_int_equal(add(f->st, "s4.example", NULL, 0, PEM_A, NULL), 0);

    /* The state machine that sets these comes later; set them directly. */
    sqlite3 *db = store_sqlite_handle(f->st);
    assert_int_equal(sqlite3_exec(db,
                                  "UPDATE domains SET status = 'active', next_renewal_at = 5000"
                                  " WHERE name = 's1.example';"
                                  "UPDATE domains SET status = 'failed', next_renewal_at = 3000"
                                  " WHERE name = 's2.example';"
                                  "UPDATE domains SET next_renewal_at = 100"
                                  " WHERE name = 's4.example'",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    struct store_key *k = NULL;
    assert_int_equal(store_key_current(f->st, a->id, &k), 0);
    raw_cert(f->st, a->id, k->id, CERT_STATUS_ACTIVE, 9000);
    raw_cert(f->st, a->id, k->id, CERT_STATUS_SUPERSEDED, 8000);
    store_key_free(k);

    /* Removed domains count for nothing, their certificate and renewal time included. */
    struct store_event_in rm = ev_for("domain.removed", "s4.example");
    assert_int_equal(store_domain_remove(f->st, "s4.example", false, &rm), 0);

    assert_int_equal(store_stats(f->st, &s), 0);
    assert_int_equal(s.domains, 3);
    assert_int_equal(s.domains_pending, 1);
    assert_int_equal(s.domains_failed, 1);
    assert_int_equal(s.certificates_active, 1);
    assert_int_equal(s.next_renewal_at, 3000);

    struct store_domain *g = NULL;
    assert_int_equal(store_domain_get(f->st, "s1.example", &g), 0);
    assert_int_equal(g->next_renewal_at, 5000);
    assert_string_equal(g->status, DOMAIN_STATUS_ACTIVE);
    store_domain_free(g);

    store_domain_free(a);
    store_domain_free(b);
}

/* What store_stats answered before schema 6 kept counters: every row counted, the oracle the
 * counters must match after any sequence of writes. */
static void stats_by_scan(struct store *st, struct store_stats *out)
{
    sqlite3 *db = store_sqlite_handle(st);
    sqlite3_stmt *s = NULL;
    assert_int_equal(
        sqlite3_prepare_v2(
            db,
            "SELECT COALESCE(SUM(status <> 'removed'), 0),"
            " COALESCE(SUM(status = 'pending'), 0), COALESCE(SUM(status = 'failed'), 0),"
            " (SELECT COUNT(*) FROM certificates c JOIN domains cd ON cd.id = c.domain_id"
            "   WHERE c.status = 'active' AND cd.status <> 'removed'),"
            " COALESCE(MIN(CASE WHEN status <> 'removed' THEN next_renewal_at END), 0)"
            " FROM domains",
            -1, &s, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    *out = (struct store_stats){.domains = sqlite3_column_int64(s, 0),
                                .domains_pending = sqlite3_column_int64(s, 1),
                                .domains_failed = sqlite3_column_int64(s, 2),
                                .certificates_active = sqlite3_column_int64(s, 3),
                                .next_renewal_at = sqlite3_column_int64(s, 4)};
    sqlite3_finalize(s);
}

/* store_stats equals WANT, and so does counting every row. */
static void assert_stats(struct store *st, struct store_stats want)
{
    struct store_stats got, scan;
    assert_int_equal(store_stats(st, &got), 0);
    stats_by_scan(st, &scan);
    const struct store_stats *both[] = {&got, &scan};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(both[i]->domains, want.domains);
        assert_int_equal(both[i]->domains_pending, want.domains_pending);
        assert_int_equal(both[i]->domains_failed, want.domains_failed);
        assert_int_equal(both[i]->certificates_active, want.certificates_active);
        assert_int_equal(both[i]->next_renewal_at, want.next_renewal_at);
    }
}

/* Stores a certificate for DOMAIN_ID through the store, as an issuance does (SERIAL in hex). */
static int64_t issue(struct store *st, int64_t domain_id, const char *serial,
                     int64_t next_renewal_at)
{
    struct store_key *k = NULL;
    assert_int_equal(store_key_current(st, domain_id, &k), 0);
    struct store_cert c = {.domain_id = domain_id,
                           .key_id = k->id,
                           .serial = (char *)serial,
                           .not_before = 1000,
                           .not_after = 2000,
                           .issuer = "CN=Test CA",
                           .fingerprint_sha256 = "abcdef",
                           .chain_pem = "CHAIN-PEM"};
    struct store_event_in ev = ev_for("certificate.issued", NULL);
    int64_t id = 0;
    assert_int_equal(store_cert_add(st, &c, next_renewal_at, &ev, &id), 0);
    store_key_free(k);
    return id;
}

/* The counters of schema 6 follow every write that moves a domain or a certificate in or out of
 * a count: add, issue, renew, failure, revoke, remove, revive, purge, and a refused write. */
static void test_stats_follow_writes(void **state)
{
    struct store_fixture *f = *state;
    struct store_domain *a = NULL, *b = NULL, *c = NULL, *d = NULL;
    assert_stats(f->st, (struct store_stats){0});

    assert_int_equal(add(f->st, "a.example", NULL, 0, PEM_A, &a), 0);
    assert_int_equal(add(f->st, "b.example", NULL, 0, PEM_A, &b), 0);
    assert_int_equal(add(f->st, "c.example", NULL, 0, PEM_A, &c), 0);
    assert_int_equal(add(f->st, "d.example", NULL, 0, PEM_A, &d), 0);
    assert_stats(f->st, (struct store_stats){.domains = 4, .domains_pending = 4});

    issue(f->st, a->id, "a1", 5000);
    assert_stats(f->st, (struct store_stats){.domains = 4,
                                             .domains_pending = 3,
                                             .certificates_active = 1,
                                             .next_renewal_at = 5000});

    /* A failure without a certificate: failed; with one: still active. */
    struct store_event_in fail = ev_for("order.failed", NULL);
    assert_int_equal(store_domain_record_failure(f->st, b->id, "boom", 100, &fail), 0);
    assert_int_equal(store_domain_record_failure(f->st, a->id, "boom", 100, &fail), 0);
    assert_stats(f->st, (struct store_stats){.domains = 4,
                                             .domains_pending = 2,
                                             .domains_failed = 1,
                                             .certificates_active = 1,
                                             .next_renewal_at = 5000});

    /* A renewal supersedes the active certificate: still one. A failed domain issued at last. */
    issue(f->st, a->id, "a2", 6000);
    issue(f->st, b->id, "b1", 4000);
    int64_t c1 = issue(f->st, c->id, "c1", 3000);
    assert_stats(f->st, (struct store_stats){.domains = 4,
                                             .domains_pending = 1,
                                             .certificates_active = 3,
                                             .next_renewal_at = 3000});

    /* Revoking the active certificate: the domain is pending again, its renewal time stays. */
    struct store_event_in rv = ev_for("certificate.revoked", "c.example");
    assert_int_equal(store_cert_set_revoked(f->st, c1, 1, 1500, &rv), 0);
    assert_stats(f->st, (struct store_stats){.domains = 4,
                                             .domains_pending = 2,
                                             .certificates_active = 2,
                                             .next_renewal_at = 3000});

    /* Removed: its active certificate stays as history but counts no more. */
    struct store_event_in rm = ev_for("domain.removed", "a.example");
    assert_int_equal(store_domain_remove(f->st, "a.example", false, &rm), 0);
    assert_stats(f->st, (struct store_stats){.domains = 3,
                                             .domains_pending = 2,
                                             .certificates_active = 1,
                                             .next_renewal_at = 3000});

    /* Revived: pending, its old certificate superseded. */
    assert_int_equal(add(f->st, "a.example", NULL, 0, PEM_B, NULL), 0);
    assert_stats(f->st, (struct store_stats){.domains = 4,
                                             .domains_pending = 3,
                                             .certificates_active = 1,
                                             .next_renewal_at = 3000});

    /* Purging a managed domain takes it and its active certificate out of the counts. */
    struct store_event_in pg = ev_for("domain.purged", "b.example");
    assert_int_equal(store_domain_remove(f->st, "b.example", true, &pg), 0);
    assert_stats(f->st,
                 (struct store_stats){.domains = 3, .domains_pending = 3, .next_renewal_at = 3000});

    /* Purging a removed domain with an active certificate changes nothing counted. */
    issue(f->st, d->id, "d1", 8000);
    rm = ev_for("domain.removed", "d.example");
    assert_int_equal(store_domain_remove(f->st, "d.example", false, &rm), 0);
    struct store_stats before;
    assert_int_equal(store_stats(f->st, &before), 0);
    pg = ev_for("domain.purged", "d.example");
    assert_int_equal(store_domain_remove(f->st, "d.example", true, &pg), 0);
    assert_stats(f->st, before);
    assert_stats(f->st,
                 (struct store_stats){.domains = 2, .domains_pending = 2, .next_renewal_at = 3000});

    /* The counters change with the writing statements, so a rolled-back transaction takes its
     * counts back with it. */
    sqlite3 *db = store_sqlite_handle(f->st);
    assert_int_equal(sqlite3_exec(db,
                                  "BEGIN; DELETE FROM domains WHERE name = 'c.example';"
                                  " UPDATE domains SET status = 'failed'; ROLLBACK",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_stats(f->st,
                 (struct store_stats){.domains = 2, .domains_pending = 2, .next_renewal_at = 3000});

    store_domain_free(a);
    store_domain_free(b);
    store_domain_free(c);
    store_domain_free(d);
}

/* A renewal policy change moves the plan of the certificate it was computed from, only. */
static void test_replan_renewal(void **state)
{
    struct store_fixture *f = *state;
    struct store_domain *d = NULL, *g = NULL;
    assert_int_equal(add(f->st, "r.example", NULL, 0, PEM_A, &d), 0);
    int64_t c1 = issue(f->st, d->id, "e1", 5000);
    struct store_event_in ev = ev_for("renewal.rescheduled", "r.example");
    int64_t ev0 = 0, ev1 = 0;

    assert_int_equal(store_event_last_id(f->st, &ev0), 0);
    assert_int_equal(store_domain_replan_renewal(f->st, d->id, c1, 7000, &ev), 0);
    assert_int_equal(store_event_last_id(f->st, &ev1), 0);
    assert_int_equal(ev1, ev0 + 1);
    assert_int_equal(store_domain_get(f->st, "r.example", &g), 0);
    assert_int_equal(g->next_renewal_at, 7000);
    assert_int_equal(g->next_attempt_at, 7000);
    store_domain_free(g);

    /* Backing off after a failure: the retry stays, the renewal time moves. */
    struct store_event_in fail = ev_for("renewal.failed", "r.example");
    assert_int_equal(store_domain_record_failure(f->st, d->id, "boom", 100, &fail), 0);
    assert_int_equal(store_domain_replan_renewal(f->st, d->id, c1, 8000, &ev), 0);
    assert_int_equal(store_domain_get(f->st, "r.example", &g), 0);
    assert_int_equal(g->next_renewal_at, 8000);
    assert_int_equal(g->next_attempt_at, 100);
    store_domain_free(g);

    /* A renewal stored meanwhile: the time computed from the old certificate is dropped. */
    issue(f->st, d->id, "e2", 9000);
    assert_int_equal(store_event_last_id(f->st, &ev0), 0);
    assert_int_equal(store_domain_replan_renewal(f->st, d->id, c1, 1234, &ev), -ENOENT);
    assert_int_equal(store_event_last_id(f->st, &ev1), 0);
    assert_int_equal(ev1, ev0);
    assert_int_equal(store_domain_get(f->st, "r.example", &g), 0);
    assert_int_equal(g->next_renewal_at, 9000);
    assert_int_equal(g->next_attempt_at, 9000);
    store_domain_free(g);

    /* Nothing for a removed domain, and no time of 0. */
    struct store_cert *cur = NULL;
    assert_int_equal(store_cert_current(f->st, d->id, &cur), 0);
    assert_int_equal(store_domain_replan_renewal(f->st, d->id, cur->id, 0, &ev), -EINVAL);
    assert_int_equal(store_domain_replan_renewal(f->st, d->id, cur->id, 10, NULL), -EINVAL);
    struct store_event_in rm = ev_for("domain.removed", "r.example");
    assert_int_equal(store_domain_remove(f->st, "r.example", false, &rm), 0);
    assert_int_equal(store_domain_replan_renewal(f->st, d->id, cur->id, 1234, &ev), -ENOENT);
    store_cert_free(cur);
    store_domain_free(d);
}

struct thread_arg {
    struct store *st;
    int idx;
    int failures;
};

static void *adder(void *p)
{
    struct thread_arg *a = p;
    for (int i = 0; i < 25; i++) {
        char name[64];
        snprintf(name, sizeof(name), "t%d-%d.example", a->idx, i);
        if (add(a->st, name, NULL, 0, PEM_A, NULL) != 0)
            a->failures++;
    }
    return NULL;
}

/* The store serialises callers itself. */
static void test_threads(void **state)
{
    struct store_fixture *f = *state;
    pthread_t th[4];
    struct thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct thread_arg){.st = f->st, .idx = i};
        assert_int_equal(pthread_create(&th[i], NULL, adder, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
    struct store_stats s;
    assert_int_equal(store_stats(f->st, &s), 0);
    assert_int_equal(s.domains, 100);
    int64_t last = 0;
    assert_int_equal(store_event_last_id(f->st, &last), 0);
    assert_int_equal(last, 100);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, store_fixture_setup, store_fixture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_add_get),
        T(test_add_duplicate_and_invalid),
        T(test_events_in_same_transaction),
        T(test_list_pagination),
        T(test_update),
        T(test_revive),
        T(test_certs),
        T(test_purge),
        T(test_stats),
        T(test_stats_follow_writes),
        T(test_replan_renewal),
        T(test_threads),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
