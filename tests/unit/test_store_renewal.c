/* Renewal state in the store (schema 3): per-domain renewal settings, ARI timers, expiry
 * warnings, order pacing counts, the 2 -> 3 migration, and the indexes the scheduler relies on. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store/schema.h"
#include "store/store.h"
#include "store/store_internal.h"
#include "store/store_renewal_internal.h"
#include "store_fixture.h"

#define PEM "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
#define CHAIN "-----BEGIN CERTIFICATE-----\nLEAF\n-----END CERTIFICATE-----\n"
#define DAY INT64_C(86400)

/* The fixture, plus the v2.db copy of the database some tests build beside it. */
static int teardown(void **state)
{
    struct store_fixture *f = *state;
    char p[PATH_MAX + 64];
    snprintf(p, sizeof(p), "%s/v2.db", f->dir);
    store_fixture_rm_db(p);
    return store_fixture_teardown(state);
}

static struct store_event_in ev_for(const char *type, const char *domain)
{
    return (struct store_event_in){.type = type, .domain = domain, .actor = "certd"};
}

static int64_t last_event(struct store *st)
{
    int64_t id = 0;
    assert_int_equal(store_event_last_id(st, &id), 0);
    return id;
}

static void raw_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fail_msg("%s: %s", sql, msg ? msg : "?");
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

static int64_t add_domain(struct store *st, const char *name)
{
    struct store_domain d = {
        .name = (char *)name, .challenge = "http-01", .key_type = "ec-p256", .ca = "le"};
    struct store_key k = {.pem = PEM, .public_key_sha256 = "f00d"};
    struct store_event_in ev = ev_for("domain.added", name);
    struct store_domain *out = NULL;
    assert_int_equal(store_domain_add(st, &d, &k, &ev, &out), 0);
    int64_t id = out->id;
    store_domain_free(out);
    return id;
}

static int64_t current_key(struct store *st, int64_t domain_id)
{
    struct store_key *k = NULL;
    assert_int_equal(store_key_current(st, domain_id, &k), 0);
    int64_t id = k->id;
    store_key_free(k);
    return id;
}

/* A certificate for DOMAIN_ID with SERIAL; the ARI and expiry fields as given. */
struct cert_spec {
    const char *serial;
    int64_t not_before, not_after;
    const char *ari_id;
    int64_t win_start, win_end, next_check, expiring_at;
    bool notified;
};

static int cert_add_ret(struct store *st, int64_t domain_id, const struct cert_spec *cs,
                        int64_t *id)
{
    struct store_cert c = {.domain_id = domain_id,
                           .key_id = current_key(st, domain_id),
                           .serial = (char *)cs->serial,
                           .not_before = cs->not_before ? cs->not_before : 1000,
                           .not_after = cs->not_after ? cs->not_after : 1000 + 90 * DAY,
                           .issuer = "CN=Test CA",
                           .fingerprint_sha256 = "abcd",
                           .chain_pem = CHAIN,
                           .ari_id = (char *)cs->ari_id,
                           .ari_window_start = cs->win_start,
                           .ari_window_end = cs->win_end,
                           .ari_next_check = cs->next_check,
                           .expiring_at = cs->expiring_at,
                           .expiring_notified = cs->notified};
    struct store_event_in ev = ev_for("certificate.issued", NULL);
    return store_cert_add(st, &c, 5000, &ev, id);
}

static int64_t cert_add(struct store *st, int64_t domain_id, const struct cert_spec *cs)
{
    int64_t id = 0;
    assert_int_equal(cert_add_ret(st, domain_id, cs, &id), 0);
    assert_true(id > 0);
    return id;
}

/* ---- domain settings ---- */

static void test_domain_settings(void **state)
{
    struct store_fixture *f = *state;
    struct store_domain d = {.name = "r.example",
                             .challenge = "http-01",
                             .key_type = "ec-p256",
                             .ca = "le",
                             .reuse_key = true,
                             .profile = "shortlived",
                             .renew_before = "30d"};
    struct store_key k = {.pem = PEM, .public_key_sha256 = "f00d"};
    struct store_event_in ev = ev_for("domain.added", "r.example");
    struct store_domain *out = NULL, *got = NULL;

    assert_int_equal(store_domain_add(f->st, &d, &k, &ev, &out), 0);
    assert_true(out->reuse_key);
    assert_string_equal(out->profile, "shortlived");
    assert_string_equal(out->renew_before, "30d");

    /* Read back by every reader. */
    assert_int_equal(store_domain_get(f->st, "r.example", &got), 0);
    assert_true(got->reuse_key);
    assert_string_equal(got->profile, "shortlived");
    assert_string_equal(got->renew_before, "30d");
    store_domain_free(got);
    assert_int_equal(store_domain_get_by_id(f->st, out->id, &got), 0);
    assert_true(got->reuse_key);
    assert_string_equal(got->renew_before, "30d");
    store_domain_free(got);
    struct store_domain **list = NULL;
    size_t n = 0;
    assert_int_equal(store_domain_list(f->st, NULL, 10, false, &list, &n), 0);
    assert_int_equal(n, 1);
    assert_true(list[0]->reuse_key);
    assert_string_equal(list[0]->profile, "shortlived");
    store_domain_list_free(list, n);

    /* A domain added without them has the defaults: no reuse, NULLs. */
    int64_t plain = add_domain(f->st, "plain.example");
    assert_int_equal(store_domain_get_by_id(f->st, plain, &got), 0);
    assert_false(got->reuse_key);
    assert_null(got->profile);
    assert_null(got->renew_before);
    store_domain_free(got);

    /* Update replaces all three, NULL clears. */
    struct store_domain u = d;
    u.reuse_key = false;
    u.profile = NULL;
    u.renew_before = "0.33";
    ev = ev_for("domain.updated", "r.example");
    assert_int_equal(store_domain_update(f->st, &u, &ev, &got), 0);
    assert_false(got->reuse_key);
    assert_null(got->profile);
    assert_string_equal(got->renew_before, "0.33");
    store_domain_free(got);
    u.reuse_key = true;
    u.profile = "classic";
    u.renew_before = NULL;
    assert_int_equal(store_domain_update(f->st, &u, &ev, NULL), 0);
    assert_int_equal(store_domain_get(f->st, "r.example", &got), 0);
    assert_true(got->reuse_key);
    assert_string_equal(got->profile, "classic");
    assert_null(got->renew_before);
    store_domain_free(got);

    /* An empty string is not a second spelling of "default"; nothing is written. */
    int64_t ev0 = last_event(f->st);
    u.profile = "";
    assert_int_equal(store_domain_update(f->st, &u, &ev, NULL), -EINVAL);
    u.profile = NULL;
    u.renew_before = "";
    assert_int_equal(store_domain_update(f->st, &u, &ev, NULL), -EINVAL);
    struct store_domain bad = d;
    bad.name = "bad.example";
    bad.profile = "";
    assert_int_equal(store_domain_add(f->st, &bad, &k, &ev, NULL), -EINVAL);
    assert_int_equal(last_event(f->st), ev0);

    /* The schema refuses a flag other than 0/1 written behind the store's back. */
    sqlite3 *db = store_sqlite_handle(f->st);
    assert_int_not_equal(sqlite3_exec(db, "UPDATE domains SET reuse_key = 2", NULL, NULL, NULL),
                         SQLITE_OK);
    assert_int_equal(sqlite3_extended_errcode(db), SQLITE_CONSTRAINT_CHECK);

    /* A revived domain takes the settings it is added with. */
    ev = ev_for("domain.removed", "r.example");
    assert_int_equal(store_domain_remove(f->st, "r.example", false, &ev), 0);
    struct store_domain again = {.name = "r.example",
                                 .challenge = "dns-01",
                                 .key_type = "ec-p256",
                                 .ca = "le",
                                 .reuse_key = false,
                                 .profile = "tlsserver",
                                 .renew_before = "12h"};
    ev = ev_for("domain.added", "r.example");
    assert_int_equal(store_domain_add(f->st, &again, &k, &ev, &got), 0);
    assert_int_equal(got->id, out->id);
    assert_false(got->reuse_key);
    assert_string_equal(got->profile, "tlsserver");
    assert_string_equal(got->renew_before, "12h");
    store_domain_free(got);
    store_domain_free(out);
}

/* ---- certificates: ARI fields, get, replaced_by ---- */

static void test_cert_fields_and_get(void **state)
{
    struct store_fixture *f = *state;
    int64_t dom = add_domain(f->st, "c.example");
    struct cert_spec a = {.serial = "0a01",
                          .ari_id = "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE",
                          .win_start = 3000,
                          .win_end = 4000,
                          .next_check = 2500,
                          .expiring_at = 7000};
    int64_t id1 = cert_add(f->st, dom, &a);

    struct store_cert *c = NULL;
    assert_int_equal(store_cert_get(f->st, id1, &c), 0);
    assert_int_equal(c->id, id1);
    assert_int_equal(c->domain_id, dom);
    assert_string_equal(c->serial, "0a01");
    assert_string_equal(c->chain_pem, CHAIN);
    assert_string_equal(c->status, CERT_STATUS_ACTIVE);
    assert_string_equal(c->ari_id, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
    assert_int_equal(c->ari_window_start, 3000);
    assert_int_equal(c->ari_window_end, 4000);
    assert_int_equal(c->ari_next_check, 2500);
    assert_int_equal(c->expiring_at, 7000);
    assert_false(c->expiring_notified);
    assert_int_equal(c->replaced_by, 0);
    assert_null(c->domain);
    store_cert_free(c);

    /* The other readers carry the fields too. */
    assert_int_equal(store_cert_current(f->st, dom, &c), 0);
    assert_string_equal(c->ari_id, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
    assert_int_equal(c->expiring_at, 7000);
    store_cert_free(c);

    /* A successor links the one it replaced; "not set" fields read 0 / NULL. */
    struct cert_spec b = {.serial = "0a02", .notified = true};
    int64_t id2 = cert_add(f->st, dom, &b);
    assert_int_equal(store_cert_get(f->st, id1, &c), 0);
    assert_string_equal(c->status, CERT_STATUS_SUPERSEDED);
    assert_int_equal(c->replaced_by, id2);
    store_cert_free(c);
    assert_int_equal(store_cert_get_by_serial(f->st, "0a02", &c), 0);
    assert_int_equal(c->id, id2);
    assert_null(c->ari_id);
    assert_int_equal(c->ari_window_start, 0);
    assert_int_equal(c->ari_next_check, 0);
    assert_int_equal(c->expiring_at, 0);
    assert_true(c->expiring_notified);
    assert_int_equal(c->replaced_by, 0);
    store_cert_free(c);
    sqlite3 *db = store_sqlite_handle(f->st);
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT ari_next_check IS NULL FROM certificates WHERE id = %lld",
             (long long)id2);
    assert_int_equal(raw_int(db, sql), 1); /* 0 was stored as NULL, "not set" */

    struct store_cert **list = NULL;
    size_t n = 0;
    assert_int_equal(store_cert_list(f->st, dom, &list, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(list[1]->replaced_by, id2);
    assert_string_equal(list[1]->ari_id, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
    assert_null(list[1]->chain_pem);
    store_cert_list_free(list, n);

    assert_int_equal(store_cert_get(f->st, id2 + 100, &c), -ENOENT);
    assert_null(c);

    /* Refused before anything is written. */
    int64_t ev0 = last_event(f->st);
    static const char *const bad_ids[] = {"",      "nodot", ".lead",  "trail.", "a.b.c",
                                          "a+b.c", "a/b.c", "ab=.cd", "a b.c"};
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
        struct cert_spec x = {.serial = "0b01", .ari_id = bad_ids[i]};
        assert_int_equal(cert_add_ret(f->st, dom, &x, NULL), -EINVAL);
    }
    struct cert_spec half = {.serial = "0b01", .win_start = 10};
    assert_int_equal(cert_add_ret(f->st, dom, &half, NULL), -EINVAL);
    struct cert_spec backwards = {.serial = "0b01", .win_start = 20, .win_end = 10};
    assert_int_equal(cert_add_ret(f->st, dom, &backwards, NULL), -EINVAL);
    struct cert_spec neg = {.serial = "0b01", .expiring_at = -1};
    assert_int_equal(cert_add_ret(f->st, dom, &neg, NULL), -EINVAL);
    struct cert_spec negc = {.serial = "0b01", .next_check = -1};
    assert_int_equal(cert_add_ret(f->st, dom, &negc, NULL), -EINVAL);
    assert_int_equal(last_event(f->st), ev0);
    assert_int_equal(store_cert_current(f->st, dom, &c), 0);
    assert_int_equal(c->id, id2);
    store_cert_free(c);
}

static void test_set_ari(void **state)
{
    struct store_fixture *f = *state;
    int64_t dom = add_domain(f->st, "ari.example");
    struct cert_spec a = {.serial = "01", .ari_id = "AA.BB", .next_check = 100};
    int64_t id = cert_add(f->st, dom, &a);
    int64_t ev0 = last_event(f->st);
    struct store_cert *c = NULL;

    assert_int_equal(store_cert_set_ari(f->st, id, 5000, 6000, 4000), 0);
    assert_int_equal(store_cert_get(f->st, id, &c), 0);
    assert_int_equal(c->ari_window_start, 5000);
    assert_int_equal(c->ari_window_end, 6000);
    assert_int_equal(c->ari_next_check, 4000);
    store_cert_free(c);
    assert_int_equal(last_event(f->st), ev0); /* routine: no event */

    /* A point window is a window; 0s clear. */
    assert_int_equal(store_cert_set_ari(f->st, id, 5500, 5500, 0), 0);
    assert_int_equal(store_cert_get(f->st, id, &c), 0);
    assert_int_equal(c->ari_window_start, 5500);
    assert_int_equal(c->ari_window_end, 5500);
    assert_int_equal(c->ari_next_check, 0);
    store_cert_free(c);
    assert_int_equal(store_cert_set_ari(f->st, id, 0, 0, 9), 0);
    assert_int_equal(store_cert_get(f->st, id, &c), 0);
    assert_int_equal(c->ari_window_start, 0);
    assert_int_equal(c->ari_window_end, 0);
    assert_int_equal(c->ari_next_check, 9);
    store_cert_free(c);

    assert_int_equal(store_cert_set_ari(f->st, id + 1, 1, 2, 3), -ENOENT);
    assert_int_equal(store_cert_set_ari(f->st, id, 7, 6, 3), -EINVAL);
    assert_int_equal(store_cert_set_ari(f->st, id, 7, 0, 3), -EINVAL);
    assert_int_equal(store_cert_set_ari(f->st, id, 0, 7, 3), -EINVAL);
    assert_int_equal(store_cert_set_ari(f->st, id, 1, 2, -3), -EINVAL);
    assert_int_equal(store_cert_get(f->st, id, &c), 0);
    assert_int_equal(c->ari_next_check, 9); /* untouched by the refusals */
    store_cert_free(c);
}

/* ---- ARI due ---- */

static void test_ari_due(void **state)
{
    struct store_fixture *f = *state;
    int64_t a = add_domain(f->st, "a.example");
    int64_t b = add_domain(f->st, "b.example");
    int64_t c = add_domain(f->st, "c.example");
    int64_t d = add_domain(f->st, "d.example");
    int64_t noari = add_domain(f->st, "noari.example");
    int64_t gone = add_domain(f->st, "gone.example");
    int64_t never = add_domain(f->st, "never.example");

    /* a's first certificate was due earliest, but it is superseded: history is never due. */
    struct cert_spec old = {.serial = "a0", .ari_id = "AA.a0", .next_check = 10};
    int64_t a_old = cert_add(f->st, a, &old);
    struct cert_spec ca = {.serial = "a1", .ari_id = "AA.a1", .next_check = 300};
    int64_t ia = cert_add(f->st, a, &ca);
    struct cert_spec cb = {.serial = "b1", .ari_id = "AA.b1", .next_check = 100};
    int64_t ib = cert_add(f->st, b, &cb);
    struct cert_spec cc = {.serial = "c1", .ari_id = "AA.c1", .next_check = 200};
    int64_t ic = cert_add(f->st, c, &cc);
    struct cert_spec cd = {.serial = "d1", .ari_id = "AA.d1", .next_check = 100};
    int64_t id = cert_add(f->st, d, &cd);
    /* A timer without an ARI id (not something the store is asked to write, but possible). */
    struct cert_spec cn = {.serial = "e1", .next_check = 50};
    cert_add(f->st, noari, &cn);
    struct cert_spec cg = {.serial = "f1", .ari_id = "AA.f1", .next_check = 60};
    int64_t ig = cert_add(f->st, gone, &cg);
    struct cert_spec cv = {.serial = "f2", .ari_id = "AA.f2"}; /* no check planned */
    cert_add(f->st, never, &cv);
    assert_true(a_old < ia);

    struct store_event_in rm = ev_for("domain.removed", "gone.example");
    assert_int_equal(store_domain_remove(f->st, "gone.example", false, &rm), 0);
    struct store_cert *cert = NULL;
    assert_int_equal(store_cert_get(f->st, ig, &cert), 0);
    assert_int_equal(cert->ari_next_check, 0); /* removal cleared the timer */
    store_cert_free(cert);
    /* Even with a stale timer written behind the store's back, a removed domain is not due. */
    char sql[128];
    snprintf(sql, sizeof(sql), "UPDATE certificates SET ari_next_check = 60 WHERE id = %lld",
             (long long)ig);
    raw_exec(store_sqlite_handle(f->st), sql);

    int64_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(store_ari_due(f->st, 250, 10, &ids, &n), 0);
    assert_int_equal(n, 3);
    assert_true(ib < id);
    assert_int_equal(ids[0], ib); /* ties by id */
    assert_int_equal(ids[1], id);
    assert_int_equal(ids[2], ic);
    free(ids);

    /* <= NOW counts, LIMIT holds. */
    assert_int_equal(store_ari_due(f->st, 300, 100, &ids, &n), 0);
    assert_int_equal(n, 4);
    assert_int_equal(ids[3], ia);
    free(ids);
    assert_int_equal(store_ari_due(f->st, 300, 2, &ids, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[1], id);
    free(ids);
    assert_int_equal(store_ari_due(f->st, 99, 10, &ids, &n), 0);
    assert_int_equal(n, 0);
    assert_null(ids);
    assert_int_equal(store_ari_due(f->st, 1000, 0, &ids, &n), 0);
    assert_int_equal(n, 0);
    assert_null(ids);

    int64_t when = -1;
    assert_int_equal(store_next_ari_due(f->st, &when), 0);
    assert_int_equal(when, 100);

    /* A fetch pushes the next check out: b is no longer first. */
    assert_int_equal(store_cert_set_ari(f->st, ib, 900, 950, 5000), 0);
    assert_int_equal(store_cert_set_ari(f->st, id, 0, 0, 0), 0);
    assert_int_equal(store_next_ari_due(f->st, &when), 0);
    assert_int_equal(when, 200);
    assert_int_equal(store_ari_due(f->st, 1000, 10, &ids, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], ic);
    assert_int_equal(ids[1], ia);
    free(ids);

    const int64_t all[] = {ia, ib, ic};
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(store_cert_set_ari(f->st, all[i], 0, 0, 0), 0);
    assert_int_equal(store_next_ari_due(f->st, &when), 0);
    assert_int_equal(when, 0);
    assert_int_equal(store_ari_due(f->st, INT64_MAX, 10, &ids, &n), 0);
    assert_int_equal(n, 0);
    free(ids);
}

/* ---- expiry warnings ---- */

static void test_expiring(void **state)
{
    struct store_fixture *f = *state;
    int64_t a = add_domain(f->st, "a.example");
    int64_t b = add_domain(f->st, "b.example");
    int64_t c = add_domain(f->st, "c.example");
    int64_t later = add_domain(f->st, "later.example");
    int64_t gone = add_domain(f->st, "gone.example");

    struct cert_spec old = {.serial = "a0", .not_after = 9000, .expiring_at = 10};
    cert_add(f->st, a, &old); /* superseded below: never warned about */
    struct cert_spec sa = {.serial = "a1", .not_after = 9500, .expiring_at = 300};
    int64_t ia = cert_add(f->st, a, &sa);
    struct cert_spec sb = {.serial = "b1", .not_after = 9100, .expiring_at = 100};
    int64_t ib = cert_add(f->st, b, &sb);
    struct cert_spec sc = {.serial = "c1", .not_after = 9200, .expiring_at = 100};
    int64_t ic = cert_add(f->st, c, &sc);
    struct cert_spec sl = {.serial = "d1", .not_after = 99000, .expiring_at = 90000};
    int64_t il = cert_add(f->st, later, &sl);
    struct cert_spec sg = {.serial = "e1", .not_after = 9050, .expiring_at = 50};
    int64_t ig = cert_add(f->st, gone, &sg);
    struct store_event_in rm = ev_for("domain.removed", "gone.example");
    assert_int_equal(store_domain_remove(f->st, "gone.example", false, &rm), 0);
    struct store_cert *cert = NULL;
    assert_int_equal(store_cert_get(f->st, ig, &cert), 0);
    assert_int_equal(cert->expiring_at, 0);
    store_cert_free(cert);

    int64_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(store_expiring_due(f->st, 300, 10, &ids, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], ib);
    assert_int_equal(ids[1], ic);
    assert_int_equal(ids[2], ia);
    free(ids);
    assert_int_equal(store_expiring_due(f->st, 299, 1, &ids, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], ib);
    free(ids);
    assert_int_equal(store_expiring_due(f->st, 300, 0, &ids, &n), 0);
    assert_int_equal(n, 0);
    assert_null(ids);
    int64_t when = -1;
    assert_int_equal(store_next_expiring(f->st, &when), 0);
    assert_int_equal(when, 100);

    /* Marking: flag and event together, once. */
    int64_t ev0 = last_event(f->st);
    struct store_event_in ev = ev_for("certificate.expiring", "b.example");
    assert_int_equal(store_cert_mark_expiring(f->st, ib, &ev), 0);
    assert_int_equal(last_event(f->st), ev0 + 1);
    struct store_event **evs = NULL;
    size_t nev = 0;
    assert_int_equal(store_event_list(f->st, ev0, 10, &evs, &nev), 0);
    assert_int_equal(nev, 1);
    assert_string_equal(evs[0]->type, "certificate.expiring");
    assert_string_equal(evs[0]->domain, "b.example");
    store_event_list_free(evs, nev);
    assert_int_equal(store_cert_get(f->st, ib, &cert), 0);
    assert_true(cert->expiring_notified);
    store_cert_free(cert);
    assert_int_equal(store_cert_mark_expiring(f->st, ib, &ev), -EALREADY);
    assert_int_equal(store_cert_mark_expiring(f->st, il + 100, &ev), -ENOENT);
    assert_int_equal(store_cert_mark_expiring(f->st, ic, NULL), -EINVAL);
    struct store_event_in bad = {.type = "x", .actor = "certd", .detail_json = "nope"};
    assert_int_equal(store_cert_mark_expiring(f->st, ic, &bad), -EINVAL);
    assert_int_equal(last_event(f->st), ev0 + 1);
    assert_int_equal(store_cert_get(f->st, ic, &cert), 0);
    assert_false(cert->expiring_notified); /* the refused event rolled the flag back */
    store_cert_free(cert);

    assert_int_equal(store_expiring_due(f->st, 300, 10, &ids, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], ic);
    assert_int_equal(ids[1], ia);
    free(ids);
    assert_int_equal(store_next_expiring(f->st, &when), 0);
    assert_int_equal(when, 100);
    assert_int_equal(store_cert_mark_expiring(f->st, ic, &ev), 0);
    assert_int_equal(store_cert_mark_expiring(f->st, ia, &ev), 0);
    assert_int_equal(store_next_expiring(f->st, &when), 0);
    assert_int_equal(when, 90000);

    /* The list for health: warned or not, managed domains only, soonest expiry first, with the
     * domain's name and without chain. */
    struct store_cert **list = NULL;
    assert_int_equal(store_cert_list_expiring(f->st, 300, &list, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(list[0]->id, ib);
    assert_string_equal(list[0]->domain, "b.example");
    assert_string_equal(list[0]->serial, "b1");
    assert_int_equal(list[0]->not_after, 9100);
    assert_null(list[0]->chain_pem);
    assert_int_equal(list[1]->id, ic);
    assert_string_equal(list[1]->domain, "c.example");
    assert_int_equal(list[2]->id, ia);
    assert_string_equal(list[2]->domain, "a.example");
    store_cert_list_free(list, n);
    assert_int_equal(store_cert_list_expiring(f->st, 99, &list, &n), 0);
    assert_int_equal(n, 0);
    assert_null(list);
    assert_int_equal(store_cert_list_expiring(f->st, INT64_MAX, &list, &n), 0);
    assert_int_equal(n, 4);
    assert_int_equal(list[3]->id, il);
    assert_false(list[3]->expiring_notified);
    assert_true(list[0]->expiring_notified);
    store_cert_list_free(list, n);

    /* A renewal replaces the warned certificate: the new one has a clean slate. */
    struct cert_spec nb = {.serial = "b2", .not_after = 20000, .expiring_at = 19000};
    cert_add(f->st, b, &nb);
    assert_int_equal(store_cert_list_expiring(f->st, 300, &list, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(list[0]->id, ic);
    store_cert_list_free(list, n);
}

/* ---- order pacing ---- */

static int64_t add_order(struct store *st, int64_t domain_id, const char *ca, int64_t created_at)
{
    struct store_order o = {.domain_id = domain_id,
                            .ca = (char *)ca,
                            .key_id = current_key(st, domain_id),
                            .names_json = "[\"x.example\"]"};
    struct store_event_in ev = ev_for("order.created", NULL);
    int64_t id = 0;
    assert_int_equal(store_order_create(st, &o, &ev, &id), 0);
    char sql[128];
    snprintf(sql, sizeof(sql), "UPDATE orders SET created_at = %lld WHERE id = %lld",
             (long long)created_at, (long long)id);
    raw_exec(store_sqlite_handle(st), sql);
    return id;
}

static void test_orders_count_since(void **state)
{
    struct store_fixture *f = *state;
    int64_t dom = add_domain(f->st, "o.example");
    int64_t other = add_domain(f->st, "p.example");
    int64_t count = -1, oldest = -1;

    assert_int_equal(store_orders_count_since(f->st, "le", 0, &count, &oldest), 0);
    assert_int_equal(count, 0);
    assert_int_equal(oldest, 0);

    add_order(f->st, dom, "le", 1000);
    add_order(f->st, dom, "le", 5000);
    add_order(f->st, other, "le", 3000);
    add_order(f->st, dom, "staging", 4000);
    add_order(f->st, other, "le", 2000);

    assert_int_equal(store_orders_count_since(f->st, "le", 2000, &count, &oldest), 0);
    assert_int_equal(count, 3); /* at or after SINCE */
    assert_int_equal(oldest, 2000);
    assert_int_equal(store_orders_count_since(f->st, "le", 0, &count, &oldest), 0);
    assert_int_equal(count, 4);
    assert_int_equal(oldest, 1000);
    assert_int_equal(store_orders_count_since(f->st, "staging", 0, &count, &oldest), 0);
    assert_int_equal(count, 1);
    assert_int_equal(oldest, 4000);
    assert_int_equal(store_orders_count_since(f->st, "le", 5001, &count, &oldest), 0);
    assert_int_equal(count, 0);
    assert_int_equal(oldest, 0);
    assert_int_equal(store_orders_count_since(f->st, "nope", 0, &count, &oldest), 0);
    assert_int_equal(count, 0);
    assert_int_equal(store_orders_count_since(f->st, NULL, 0, &count, &oldest), -EINVAL);

    /* Purging a domain takes its orders along. */
    struct store_event_in ev = ev_for("domain.purged", "p.example");
    assert_int_equal(store_domain_remove(f->st, "p.example", true, &ev), 0);
    assert_int_equal(store_orders_count_since(f->st, "le", 0, &count, &oldest), 0);
    assert_int_equal(count, 2);
    assert_int_equal(oldest, 1000);
}

/* ---- indexes ---- */

/* Asserts the plan of SQL uses INDEX on TABLE (alias ALIAS) with no full scan of it and no sort
 * (unless SORT_OK). */
static void assert_plan(sqlite3 *db, const char *sql, const char *alias, const char *index,
                        bool sort_ok)
{
    char q[2048], scan[64], use[128];
    sqlite3_stmt *s = NULL;
    snprintf(q, sizeof(q), "EXPLAIN QUERY PLAN %s", sql);
    snprintf(scan, sizeof(scan), "SCAN %s", alias);
    snprintf(use, sizeof(use), "INDEX %s", index);
    assert_int_equal(sqlite3_prepare_v2(db, q, -1, &s, NULL), SQLITE_OK);
    bool indexed = false;
    while (sqlite3_step(s) == SQLITE_ROW) {
        const char *detail = (const char *)sqlite3_column_text(s, 3);
        /* "SCAN c USING INDEX x" would walk the whole index: a scan in any form fails. */
        if (strncmp(detail, scan, strlen(scan)) == 0 &&
            (detail[strlen(scan)] == '\0' || detail[strlen(scan)] == ' '))
            fail_msg("%s: full scan: %s", sql, detail);
        if (!sort_ok && strstr(detail, "TEMP B-TREE"))
            fail_msg("%s: sorts: %s", sql, detail);
        indexed |= strstr(detail, use) != NULL;
    }
    sqlite3_finalize(s);
    if (!indexed)
        fail_msg("%s does not use %s", sql, index);
}

static void test_queries_use_indexes(void **state)
{
    struct store_fixture *f = *state;
    sqlite3 *db = store_sqlite_handle(f->st);

    assert_plan(db, STORE_SQL_ARI_DUE, "c", "certificates_ari_next_check", false);
    assert_plan(db, STORE_SQL_NEXT_ARI_DUE, "c", "certificates_ari_next_check", false);
    assert_plan(db, STORE_SQL_EXPIRING_DUE, "c", "certificates_expiring", false);
    assert_plan(db, STORE_SQL_NEXT_EXPIRING, "c", "certificates_expiring", false);
    assert_plan(db, "SELECT id" STORE_SQL_EXPIRING_LIST_FROM, "certificates",
                "certificates_expiring", true);
    assert_plan(db, STORE_SQL_ORDERS_COUNT_SINCE, "orders", "orders_ca_created_at", false);

    /* Measured, not only planned: VM steps of the due queries with little and with much history
     * (superseded certificates whose timers were due long ago, and active ones not due) are the
     * same. */
    int64_t due[3];
    for (int i = 0; i < 3; i++) {
        char name[32], serial[16], ari[32];
        snprintf(name, sizeof(name), "due%d.example", i);
        snprintf(serial, sizeof(serial), "d%d", i);
        snprintf(ari, sizeof(ari), "AA.d%d", i);
        due[i] = add_domain(f->st, name);
        struct cert_spec cs = {
            .serial = serial, .ari_id = ari, .next_check = 100 + i, .expiring_at = 100 + i};
        cert_add(f->st, due[i], &cs);
    }
    int steps[2][4];
    for (int round = 0; round < 2; round++) {
        int extra = round == 0 ? 10 : 2000;
        assert_int_equal(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
        char sql[512];
        snprintf(sql, sizeof(sql),
                 "INSERT INTO domains (name, challenge, key_type, ca, created_at, updated_at)"
                 " VALUES ('hist%d.example', 'http-01', 'ec-p256', 'le', 1, 1)",
                 round);
        raw_exec(db, sql);
        int64_t hd = sqlite3_last_insert_rowid(db);
        snprintf(sql, sizeof(sql),
                 "INSERT INTO private_keys (domain_id, key_type, key_pem, public_key_sha256,"
                 " status, created_at) VALUES (%lld, 'ec-p256', 'k', 'aa', 'current', 1)",
                 (long long)hd);
        raw_exec(db, sql);
        int64_t hk = sqlite3_last_insert_rowid(db);
        sqlite3_stmt *ins = NULL;
        assert_int_equal(
            sqlite3_prepare_v2(db,
                               "INSERT INTO certificates (domain_id, key_id, serial, not_before,"
                               " not_after, issuer, fingerprint_sha256, chain_pem, status,"
                               " created_at, ari_id, ari_next_check, expiring_at)"
                               " VALUES (?1, ?2, ?3, 1, 2, 'CN=x', 'ff', 'c', 'superseded', 1,"
                               " 'AA.h', ?4, ?4)",
                               -1, &ins, NULL),
            SQLITE_OK);
        for (int i = 0; i < extra; i++) {
            char serial[32];
            snprintf(serial, sizeof(serial), "%x%04x", round + 1, i);
            sqlite3_bind_int64(ins, 1, hd);
            sqlite3_bind_int64(ins, 2, hk);
            sqlite3_bind_text(ins, 3, serial, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(ins, 4, 10 + i % 50); /* long due, but history */
            assert_int_equal(sqlite3_step(ins), SQLITE_DONE);
            sqlite3_reset(ins);
        }
        sqlite3_finalize(ins);
        assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
        /* Active certificates that are not due. */
        for (int i = 0; i < extra / 100 + 1; i++) {
            char name[48], serial[32], ari[32];
            snprintf(name, sizeof(name), "later%d-%d.example", round, i);
            snprintf(serial, sizeof(serial), "e%x%04x", round, i);
            snprintf(ari, sizeof(ari), "AA.%s", serial);
            int64_t dom = add_domain(f->st, name);
            struct cert_spec cs = {
                .serial = serial, .ari_id = ari, .next_check = 50000 + i, .expiring_at = 50000 + i};
            cert_add(f->st, dom, &cs);
        }

        static const char *const qs[] = {STORE_SQL_ARI_DUE, STORE_SQL_EXPIRING_DUE,
                                         STORE_SQL_NEXT_ARI_DUE, STORE_SQL_NEXT_EXPIRING};
        for (int q = 0; q < 4; q++) {
            sqlite3_stmt *s = NULL;
            assert_int_equal(sqlite3_prepare_v2(db, qs[q], -1, &s, NULL), SQLITE_OK);
            if (q < 2) {
                sqlite3_bind_int64(s, 1, 1000);
                sqlite3_bind_int64(s, 2, 100);
            }
            int rows = 0;
            while (sqlite3_step(s) == SQLITE_ROW) {
                if (q < 2) /* the due certificates, in time order */
                    assert_true(rows < 3);
                else
                    assert_int_equal(sqlite3_column_int64(s, 0), 100);
                rows++;
            }
            assert_int_equal(rows, q < 2 ? 3 : 1);
            assert_int_equal(sqlite3_stmt_status(s, SQLITE_STMTSTATUS_FULLSCAN_STEP, 0), 0);
            assert_int_equal(sqlite3_stmt_status(s, SQLITE_STMTSTATUS_SORT, 0), 0);
            steps[round][q] = sqlite3_stmt_status(s, SQLITE_STMTSTATUS_VM_STEP, 0);
            sqlite3_finalize(s);
        }
    }
    for (int q = 0; q < 4; q++)
        assert_int_equal(steps[0][q], steps[1][q]);

    /* And through the API, in order. */
    int64_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(store_ari_due(f->st, 1000, 100, &ids, &n), 0);
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++) {
        struct store_cert *c = NULL;
        assert_int_equal(store_cert_get(f->st, ids[i], &c), 0);
        assert_int_equal(c->domain_id, due[i]);
        store_cert_free(c);
    }
    free(ids);
    assert_int_equal(store_expiring_due(f->st, 1000, 100, &ids, &n), 0);
    assert_int_equal(n, 3);
    free(ids);
}

/* ---- migration 0002 -> 0003 ---- */

static void test_migration_2_to_3(void **state)
{
    struct store_fixture *f = *state;
    char path[PATH_MAX + 64], err[256] = "";
    snprintf(path, sizeof(path), "%s/v2.db", f->dir);

    /* A version-2 database with data in every table 0003 touches. */
    sqlite3 *raw = NULL;
    assert_int_equal(sqlite3_open_v2(path, &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                     SQLITE_OK);
    assert_true(schema_migration_count >= 3);
    assert_string_equal(schema_migrations[1].file, "0002_acme.sql");
    assert_string_equal(schema_migrations[2].file, "0003_renewal.sql");
    raw_exec(raw, "PRAGMA foreign_keys = ON");
    raw_exec(raw, schema_migrations[0].sql);
    raw_exec(raw, schema_migrations[1].sql);
    raw_exec(
        raw,
        "PRAGMA user_version = 2;"
        "INSERT INTO domains (id, name, challenge, key_type, ca, status, next_renewal_at,"
        " next_attempt_at, created_at, updated_at) VALUES (1, 'long.example', 'http-01',"
        " 'ec-p256', 'le', 'active', 5000, 5000, 20, 21);"
        "INSERT INTO domains (id, name, challenge, key_type, ca, status, next_attempt_at,"
        " created_at, updated_at) VALUES (2, 'short.example', 'dns-01', 'ec-p384', 'le',"
        " 'active', 6000, 20, 20);"
        "INSERT INTO domains (id, name, challenge, key_type, ca, status, created_at, updated_at)"
        " VALUES (3, 'gone.example', 'http-01', 'ec-p256', 'le', 'removed', 20, 20);"
        "INSERT INTO domain_names VALUES (1, 0, 'www.long.example');"
        "INSERT INTO private_keys VALUES (1, 1, 'ec-p256', '" PEM "', 'aa', 'current', 30);"
        "INSERT INTO private_keys VALUES (2, 2, 'ec-p384', '" PEM "', 'bb', 'current', 30);"
        "INSERT INTO private_keys VALUES (3, 3, 'ec-p256', '" PEM "', 'cc', 'current', 30);"
        "INSERT INTO orders (id, domain_id, ca, url, status, key_id, names, created_at,"
        " updated_at, finished) VALUES (1, 1, 'le', 'https://acme.example/o/1', 'valid', 1,"
        " '[\"long.example\"]', 40, 41, 1);"
        /* 90-day certificate, superseded by another 90-day one */
        "INSERT INTO certificates (id, domain_id, key_id, order_id, serial, not_before,"
        " not_after, issuer, fingerprint_sha256, chain_pem, status, created_at) VALUES"
        " (1, 1, 1, 1, '01', 0, 7776000, 'CN=CA', 'ff', 'CHAIN1', 'superseded', 50);"
        "INSERT INTO certificates (id, domain_id, key_id, serial, not_before, not_after, issuer,"
        " fingerprint_sha256, chain_pem, status, created_at) VALUES"
        " (2, 1, 1, '02', 1000, 7777000, 'CN=CA', 'ff', 'CHAIN2', 'active', 60);"
        /* 6-day certificate: warned a sixth of its lifetime before expiry */
        "INSERT INTO certificates (id, domain_id, key_id, serial, not_before, not_after, issuer,"
        " fingerprint_sha256, chain_pem, status, created_at) VALUES"
        " (3, 2, 2, '03', 600000, 1118400, 'CN=CA', 'ff', 'CHAIN3', 'active', 70);"
        "INSERT INTO certificates (id, domain_id, key_id, serial, not_before, not_after, issuer,"
        " fingerprint_sha256, chain_pem, status, created_at) VALUES"
        " (4, 3, 3, '04', 0, 7776000, 'CN=CA', 'ff', 'CHAIN4', 'active', 80);"
        "INSERT INTO events (created_at, type, actor) VALUES (90, 'domain.added', 'x');");
    sqlite3_close(raw);

    struct store *st = NULL;
    assert_int_equal(store_open(path, &st, err, sizeof(err)), 0);
    assert_int_equal(store_schema_version(st), store_schema_latest());
    assert_true(store_schema_latest() >= 3);

    /* The data is all there, with the defaults for the new settings. */
    struct store_domain *d = NULL;
    assert_int_equal(store_domain_get(st, "long.example", &d), 0);
    assert_int_equal(d->id, 1);
    assert_int_equal(d->alt_count, 1);
    assert_string_equal(d->alt_names[0], "www.long.example");
    assert_string_equal(d->status, DOMAIN_STATUS_ACTIVE);
    assert_int_equal(d->next_renewal_at, 5000);
    assert_int_equal(d->next_attempt_at, 5000);
    assert_int_equal(d->updated_at, 21);
    assert_false(d->reuse_key);
    assert_null(d->profile);
    assert_null(d->renew_before);
    store_domain_free(d);
    assert_int_equal(store_domain_get(st, "short.example", &d), 0);
    assert_string_equal(d->key_type, "ec-p384");
    assert_string_equal(d->challenge, "dns-01");
    store_domain_free(d);

    struct store_cert *c = NULL;
    assert_int_equal(store_cert_get(st, 1, &c), 0);
    assert_string_equal(c->chain_pem, "CHAIN1");
    assert_string_equal(c->status, CERT_STATUS_SUPERSEDED);
    assert_int_equal(c->order_id, 1);
    assert_int_equal(c->expiring_at, 0); /* history gets no warning time */
    assert_int_equal(c->replaced_by, 0); /* not known for version-2 rows */
    store_cert_free(c);
    assert_int_equal(store_cert_get(st, 2, &c), 0);
    assert_string_equal(c->chain_pem, "CHAIN2");
    assert_null(c->ari_id);
    assert_int_equal(c->ari_window_start, 0);
    assert_int_equal(c->ari_next_check, 0);
    assert_int_equal(c->expiring_at, 7777000 - 7 * DAY);
    assert_false(c->expiring_notified);
    store_cert_free(c);
    assert_int_equal(store_cert_get(st, 3, &c), 0);
    assert_int_equal(c->expiring_at, 1118400 - (1118400 - 600000) / 6);
    store_cert_free(c);
    assert_int_equal(store_cert_get(st, 4, &c), 0);
    assert_int_equal(c->expiring_at, 0); /* removed domain: nothing to warn about */
    store_cert_free(c);

    /* The new queries work on the migrated rows. */
    int64_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(store_expiring_due(st, INT64_MAX, 10, &ids, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 3);
    assert_int_equal(ids[1], 2);
    free(ids);
    assert_int_equal(store_ari_due(st, INT64_MAX, 10, &ids, &n), 0);
    assert_int_equal(n, 0);
    free(ids);
    int64_t count = 0, oldest = 0;
    assert_int_equal(store_orders_count_since(st, "le", 0, &count, &oldest), 0);
    assert_int_equal(count, 1);
    assert_int_equal(oldest, 40);
    int64_t last = 0;
    assert_int_equal(store_event_last_id(st, &last), 0);
    assert_int_equal(last, 1);

    /* The schema itself refuses flags other than 0/1. */
    sqlite3 *db = store_sqlite_handle(st);
    assert_int_not_equal(
        sqlite3_exec(db, "UPDATE certificates SET expiring_notified = 2", NULL, NULL, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_extended_errcode(db), SQLITE_CONSTRAINT_CHECK);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND"
                                 " name IN ('certificates_ari_next_check',"
                                 " 'certificates_expiring', 'orders_ca_created_at')"),
                     3);
    store_close(st);

    /* Reopening applies nothing again. */
    assert_int_equal(store_open(path, &st, err, sizeof(err)), 0);
    assert_int_equal(store_schema_version(st), store_schema_latest());
    assert_int_equal(store_cert_get(st, 2, &c), 0);
    assert_int_equal(c->expiring_at, 7777000 - 7 * DAY);
    store_cert_free(c);
    store_close(st);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, store_fixture_setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_domain_settings),
        T(test_cert_fields_and_get),
        T(test_set_ari),
        T(test_ari_due),
        T(test_expiring),
        T(test_orders_count_since),
        T(test_queries_use_indexes),
        T(test_migration_2_to_3),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
