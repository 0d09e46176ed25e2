/* ACME state in the store: accounts, orders, challenges, issuance outcomes, and migration 0002. */
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
#include "store_fixture.h"

#define PEM_A "-----BEGIN PRIVATE KEY-----\nAAAA-first-key\n-----END PRIVATE KEY-----\n"
#define PEM_B "-----BEGIN PRIVATE KEY-----\nBBBB-second-key\n-----END PRIVATE KEY-----\n"
#define ACC_PEM_1 "-----BEGIN PRIVATE KEY-----\nacct-one\n-----END PRIVATE KEY-----\n"
#define ACC_PEM_2 "-----BEGIN PRIVATE KEY-----\nacct-two\n-----END PRIVATE KEY-----\n"
#define DIR_1 "https://acme.example/directory"
#define DIR_2 "https://acme-staging.example/directory"

/* The fixture, plus the v1.db copy of the database some tests build beside it. */
static int teardown(void **state)
{
    struct store_fixture *f = *state;
    char p[PATH_MAX + 64];
    snprintf(p, sizeof(p), "%s/v1.db", f->dir);
    store_fixture_rm_db(p);
    return store_fixture_teardown(state);
}

static struct store_event_in ev_for(const char *type, const char *domain)
{
    return (struct store_event_in){.type = type, .domain = domain, .actor = "certd"};
}

static int64_t raw_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

static void raw_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg ? msg : "?");
}

/* The query plan of SQL, its detail lines joined with '|'. */
static void query_plan(sqlite3 *db, const char *sql, char *out, size_t outsz)
{
    char q[2048];
    sqlite3_stmt *s = NULL;
    snprintf(q, sizeof(q), "EXPLAIN QUERY PLAN %s", sql);
    if (sqlite3_prepare_v2(db, q, -1, &s, NULL) != SQLITE_OK)
        fail_msg("%s: %s", q, sqlite3_errmsg(db));
    size_t used = 0;
    out[0] = '\0';
    while (sqlite3_step(s) == SQLITE_ROW) {
        int n = snprintf(out + used, outsz - used, "%s|", (const char *)sqlite3_column_text(s, 3));
        assert_true(n > 0 && (size_t)n < outsz - used);
        used += (size_t)n;
    }
    sqlite3_finalize(s);
}

static int64_t last_event(struct store *st)
{
    int64_t id = 0;
    assert_int_equal(store_event_last_id(st, &id), 0);
    return id;
}

static int64_t add_domain(struct store *st, const char *name, const char *pem)
{
    struct store_domain d = {
        .name = (char *)name, .challenge = "http-01", .key_type = "ec-p256", .ca = "le"};
    struct store_key k = {.pem = (char *)pem, .public_key_sha256 = "f00d"};
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

static int64_t new_order(struct store *st, int64_t domain_id, int64_t key_id, int64_t account_id)
{
    struct store_order o = {.domain_id = domain_id,
                            .account_id = account_id,
                            .ca = "le",
                            .key_id = key_id,
                            .names_json = "[\"a.example\"]"};
    struct store_event_in ev = ev_for("order.created", NULL);
    int64_t id = 0;
    assert_int_equal(store_order_create(st, &o, &ev, &id), 0);
    assert_true(id > 0);
    return id;
}

static struct store_domain *get_domain(struct store *st, int64_t id)
{
    struct store_domain *d = NULL;
    assert_int_equal(store_domain_get_by_id(st, id, &d), 0);
    return d;
}

static struct store_cert cert_in(int64_t domain_id, int64_t key_id, int64_t order_id,
                                 const char *serial)
{
    return (struct store_cert){.domain_id = domain_id,
                               .key_id = key_id,
                               .order_id = order_id,
                               .serial = (char *)serial,
                               .not_before = 1000,
                               .not_after = 2000,
                               .issuer = "CN=Test CA",
                               .fingerprint_sha256 = "abcdef",
                               .chain_pem = "CHAIN-PEM"};
}

/* ---- accounts ---- */

static void test_accounts(void **state)
{
    struct store_fixture *f = *state;
    struct store_account *a = NULL;
    struct store_event_in ev = ev_for("account.created", NULL);

    assert_int_equal(store_account_get(f->st, "le", DIR_1, &a), -ENOENT);
    assert_null(a);

    struct store_account in = {.ca = "le",
                               .directory_url = DIR_1,
                               .key_type = "ec-p256",
                               .key_pem = ACC_PEM_1,
                               .contact_json = "[\"mailto:ops@example.com\"]"};
    int64_t ev0 = last_event(f->st);
    assert_int_equal(store_account_put(f->st, &in, &ev), 0);
    assert_int_equal(last_event(f->st), ev0 + 1);

    assert_int_equal(store_account_get(f->st, "le", DIR_1, &a), 0);
    assert_true(a->id > 0);
    assert_string_equal(a->ca, "le");
    assert_string_equal(a->directory_url, DIR_1);
    assert_string_equal(a->key_type, "ec-p256");
    assert_string_equal(a->key_pem, ACC_PEM_1);
    assert_null(a->account_url);
    assert_string_equal(a->status, "pending");
    assert_string_equal(a->contact_json, "[\"mailto:ops@example.com\"]");
    assert_true(a->created_at > 0 && a->updated_at == a->created_at);
    int64_t first_id = a->id;
    store_account_free(a);

    /* newAccount succeeded: URL and status; NULL contact leaves it. */
    struct store_event_in up = ev_for("account.registered", NULL);
    assert_int_equal(store_account_update(f->st, "le", "https://acme.example/acct/1", "valid", NULL,
                                          NULL, NULL, &up),
                     0);
    assert_int_equal(store_account_get(f->st, "le", DIR_1, &a), 0);
    assert_string_equal(a->account_url, "https://acme.example/acct/1");
    assert_string_equal(a->status, "valid");
    assert_string_equal(a->contact_json, "[\"mailto:ops@example.com\"]");
    assert_string_equal(a->key_pem, ACC_PEM_1);
    store_account_free(a);

    /* Key rollover: the new key needs its type; the URL stays. */
    assert_int_equal(store_account_update(f->st, "le", NULL, NULL, NULL, NULL, ACC_PEM_2, &up),
                     -EINVAL);
    assert_int_equal(store_account_update(f->st, "le", NULL, NULL, "[]", "ec-p384", ACC_PEM_2, &up),
                     0);
    assert_int_equal(store_account_get(f->st, "le", DIR_1, &a), 0);
    assert_string_equal(a->key_pem, ACC_PEM_2);
    assert_string_equal(a->key_type, "ec-p384");
    assert_string_equal(a->contact_json, "[]");
    assert_string_equal(a->account_url, "https://acme.example/acct/1");
    assert_int_equal(a->id, first_id);
    store_account_free(a);

    /* Refused input leaves no event. */
    int64_t ev1 = last_event(f->st);
    assert_int_equal(store_account_update(f->st, "le", NULL, "bogus", NULL, NULL, NULL, &up),
                     -EINVAL);
    assert_int_equal(store_account_update(f->st, "le", NULL, NULL, "{\"a\":1}", NULL, NULL, &up),
                     -EINVAL);
    assert_int_equal(store_account_update(f->st, "nope", NULL, "valid", NULL, NULL, NULL, &up),
                     -ENOENT);
    struct store_account bad = in;
    bad.contact_json = "mailto:x";
    assert_int_equal(store_account_put(f->st, &bad, &ev), -EINVAL);
    bad = in;
    bad.status = "active";
    assert_int_equal(store_account_put(f->st, &bad, &ev), -EINVAL);
    bad = in;
    bad.key_pem = NULL;
    assert_int_equal(store_account_put(f->st, &bad, &ev), -EINVAL);
    assert_int_equal(store_account_get(f->st, NULL, DIR_1, &a), -EINVAL);
    assert_int_equal(last_event(f->st), ev1);

    /* A second CA; the list is ordered by CA name and carries no key. */
    struct store_account other = {.ca = "buypass",
                                  .directory_url = DIR_2,
                                  .key_type = "rsa-2048",
                                  .key_pem = ACC_PEM_1,
                                  .status = "valid",
                                  .account_url = "https://bp.example/acct/9"};
    assert_int_equal(store_account_put(f->st, &other, &ev), 0);
    struct store_account **list = NULL;
    size_t n = 0;
    assert_int_equal(store_account_list(f->st, &list, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0]->ca, "buypass");
    assert_string_equal(list[0]->status, "valid");
    assert_null(list[0]->key_pem);
    assert_null(list[0]->contact_json);
    assert_string_equal(list[1]->ca, "le");
    assert_null(list[1]->key_pem);
    store_account_list_free(list, n);
    store_account_list_free(NULL, 0);
    store_account_free(NULL);
}

static void test_account_directory_changed(void **state)
{
    struct store_fixture *f = *state;
    struct store_account *a = NULL;
    struct store_event_in ev = ev_for("account.created", NULL);
    sqlite3 *db = store_sqlite_handle(f->st);

    struct store_account in = {
        .ca = "le", .directory_url = DIR_1, .key_type = "ec-p256", .key_pem = ACC_PEM_1};
    assert_int_equal(store_account_put(f->st, &in, &ev), 0);
    assert_int_equal(store_account_get(f->st, "le", DIR_1, &a), 0);
    int64_t old_id = a->id;
    store_account_free(a);

    /* An order made with the old account. */
    int64_t dom = add_domain(f->st, "acct.example", PEM_A);
    int64_t order = new_order(f->st, dom, current_key(f->st, dom), old_id);

    /* The configuration now points the CA elsewhere: the old account does not fit. */
    assert_int_equal(store_account_get(f->st, "le", DIR_2, &a), -ENOENT);
    assert_null(a);

    in.directory_url = DIR_2;
    in.key_pem = ACC_PEM_2;
    in.status = "pending";
    assert_int_equal(store_account_put(f->st, &in, &ev), 0);
    assert_int_equal(store_account_get(f->st, "le", DIR_2, &a), 0);
    assert_string_equal(a->key_pem, ACC_PEM_2);
    assert_string_equal(a->directory_url, DIR_2);
    assert_string_equal(a->status, "pending");
    assert_null(a->account_url);
    store_account_free(a);
    assert_int_equal(store_account_get(f->st, "le", DIR_1, &a), -ENOENT);

    /* One cas row, updated; one account; the old account's key is gone from the table. */
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM cas"), 1);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM accounts"), 1);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM cas WHERE directory_url = '" DIR_2 "'"), 1);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM accounts WHERE key_pem LIKE '%acct-one%'"),
                     0);

    /* The old order stays, detached from an account that no longer exists. */
    struct store_order *o = NULL;
    assert_int_equal(store_order_get(f->st, order, &o), 0);
    assert_int_equal(o->account_id, 0);
    store_order_free(o);

    /* Putting again for the same directory also replaces (a fresh registration). */
    in.key_pem = ACC_PEM_1;
    assert_int_equal(store_account_put(f->st, &in, &ev), 0);
    assert_int_equal(store_account_get(f->st, "le", DIR_2, &a), 0);
    assert_string_equal(a->key_pem, ACC_PEM_1);
    store_account_free(a);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM accounts"), 1);
}

/* ---- orders ---- */

static void test_orders(void **state)
{
    struct store_fixture *f = *state;
    int64_t dom = add_domain(f->st, "o.example", PEM_A);
    int64_t other = add_domain(f->st, "other.example", PEM_B);
    int64_t key = current_key(f->st, dom);
    struct store_event_in ev = ev_for("order.created", "o.example");
    struct store_order *o = NULL;

    assert_int_equal(store_order_latest(f->st, dom, &o), -ENOENT);
    assert_null(o);

    struct store_order in = {.domain_id = dom,
                             .ca = "le",
                             .key_id = key,
                             .names_json = "[\"o.example\",\"www.o.example\"]",
                             .replaces = "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE",
                             .step = "new-order"};
    int64_t ev0 = last_event(f->st);
    int64_t id1 = 0;
    assert_int_equal(store_order_create(f->st, &in, &ev, &id1), 0);
    assert_int_equal(last_event(f->st), ev0 + 1);

    assert_int_equal(store_order_get(f->st, id1, &o), 0);
    assert_int_equal(o->id, id1);
    assert_int_equal(o->domain_id, dom);
    assert_int_equal(o->account_id, 0);
    assert_string_equal(o->ca, "le");
    assert_null(o->url);
    assert_string_equal(o->status, "new");
    assert_string_equal(o->step, "new-order");
    assert_null(o->finalize_url);
    assert_null(o->certificate_url);
    assert_int_equal(o->key_id, key);
    assert_string_equal(o->names_json, "[\"o.example\",\"www.o.example\"]");
    assert_null(o->error_json);
    assert_string_equal(o->replaces, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
    assert_true(o->created_at > 0 && o->updated_at == o->created_at);
    assert_int_equal(o->expires_at, 0);
    assert_false(o->finished);

    /* Every mutable field is written; a routine step has no event. */
    free(o->url);
    o->url = strdup("https://acme.example/order/1");
    free(o->status);
    o->status = strdup("processing");
    free(o->step);
    o->step = strdup("finalize");
    o->finalize_url = strdup("https://acme.example/order/1/finalize");
    o->certificate_url = strdup("https://acme.example/cert/1");
    o->error_json = strdup("{\"type\":\"urn:ietf:params:acme:error:badCSR\"}");
    o->expires_at = 99999;
    ev0 = last_event(f->st);
    assert_int_equal(store_order_update(f->st, o, NULL), 0);
    assert_int_equal(last_event(f->st), ev0);
    struct store_order *g = NULL;
    assert_int_equal(store_order_get(f->st, id1, &g), 0);
    assert_string_equal(g->url, "https://acme.example/order/1");
    assert_string_equal(g->status, "processing");
    assert_string_equal(g->step, "finalize");
    assert_string_equal(g->finalize_url, "https://acme.example/order/1/finalize");
    assert_string_equal(g->certificate_url, "https://acme.example/cert/1");
    assert_string_equal(g->error_json, "{\"type\":\"urn:ietf:params:acme:error:badCSR\"}");
    assert_int_equal(g->expires_at, 99999);
    assert_false(g->finished);
    assert_string_equal(g->replaces, o->replaces);
    store_order_free(g);

    /* With an event: appended. Unknown status, foreign key, missing order: refused. */
    struct store_event_in upd = ev_for("order.invalid", "o.example");
    free(o->status);
    o->status = strdup("invalid");
    o->finished = true;
    assert_int_equal(store_order_update(f->st, o, &upd), 0);
    assert_int_equal(last_event(f->st), ev0 + 1);
    free(o->status);
    o->status = strdup("done");
    assert_int_equal(store_order_update(f->st, o, &upd), -EINVAL);
    free(o->status);
    o->status = strdup("valid");
    o->key_id = current_key(f->st, other);
    assert_int_equal(store_order_update(f->st, o, &upd), -EINVAL);
    o->key_id = key;
    o->account_id = 4242;
    assert_int_equal(store_order_update(f->st, o, &upd), -EINVAL);
    o->account_id = 0;
    o->id = id1 + 100;
    assert_int_equal(store_order_update(f->st, o, &upd), -ENOENT);
    assert_int_equal(last_event(f->st), ev0 + 1);
    store_order_free(o);
    assert_int_equal(store_order_get(f->st, id1, &o), 0);
    assert_string_equal(o->status, "invalid");
    assert_true(o->finished);
    store_order_free(o);

    /* The newest order is the latest. */
    int64_t id2 = new_order(f->st, dom, key, 0);
    assert_int_equal(store_order_latest(f->st, dom, &o), 0);
    assert_int_equal(o->id, id2);
    store_order_free(o);

    /* Creation refuses a key of another domain, bad names, and a removed domain. */
    ev0 = last_event(f->st);
    in.key_id = current_key(f->st, other);
    assert_int_equal(store_order_create(f->st, &in, &ev, &id1), -EINVAL);
    in.key_id = key;
    in.names_json = "\"o.example\"";
    assert_int_equal(store_order_create(f->st, &in, &ev, &id1), -EINVAL);
    in.names_json = "[]";
    assert_int_equal(store_order_create(f->st, &in, &ev, &id1), -EINVAL);
    in.names_json = "[\"o.example\"]";
    in.account_id = 77;
    assert_int_equal(store_order_create(f->st, &in, &ev, &id1), -EINVAL);
    in.account_id = 0;
    struct store_event_in rm = ev_for("domain.removed", "o.example");
    assert_int_equal(store_domain_remove(f->st, "o.example", false, &rm), 0);
    assert_int_equal(store_order_create(f->st, &in, &ev, &id1), -ENOENT);
    assert_int_equal(last_event(f->st), ev0 + 1); /* the removal only */
    store_order_free(NULL);
}

static void test_orders_unfinished(void **state)
{
    struct store_fixture *f = *state;
    int64_t d1 = add_domain(f->st, "u1.example", PEM_A);
    int64_t d2 = add_domain(f->st, "u2.example", PEM_B);
    int64_t k1 = current_key(f->st, d1), k2 = current_key(f->st, d2);

    int64_t a = new_order(f->st, d1, k1, 0);
    int64_t b = new_order(f->st, d2, k2, 0);
    int64_t c = new_order(f->st, d1, k1, 0);
    int64_t d = new_order(f->st, d2, k2, 0);

    /* b given up on, d finished by its certificate. */
    struct store_order *o = NULL;
    assert_int_equal(store_order_get(f->st, b, &o), 0);
    o->finished = true;
    free(o->status);
    o->status = strdup("invalid");
    assert_int_equal(store_order_update(f->st, o, NULL), 0);
    store_order_free(o);
    struct store_cert cert = cert_in(d2, k2, d, "0d");
    struct store_event_in ev = ev_for("certificate.issued", "u2.example");
    assert_int_equal(store_cert_add(f->st, &cert, 5000, &ev, NULL), 0);

    struct store_order **list = NULL;
    size_t n = 0;
    assert_int_equal(store_order_list_unfinished(f->st, &list, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(list[0]->id, a); /* oldest first */
    assert_int_equal(list[1]->id, c);
    assert_false(list[0]->finished);
    assert_string_equal(list[1]->names_json, "[\"a.example\"]");
    store_order_list_free(list, n);
    store_order_list_free(NULL, 0);

    /* The resume query reads the partial index, not every order ever made. */
    char plan[1024];
    query_plan(store_sqlite_handle(f->st), "SELECT id FROM orders WHERE finished = 0 ORDER BY id",
               plan, sizeof(plan));
    assert_non_null(strstr(plan, "USING INDEX orders_unfinished"));
}

/* ---- challenges ---- */

static void test_challenges(void **state)
{
    struct store_fixture *f = *state;
    int64_t dom = add_domain(f->st, "ch.example", PEM_A);
    int64_t key = current_key(f->st, dom);
    int64_t o1 = new_order(f->st, dom, key, 0);
    int64_t o2 = new_order(f->st, dom, key, 0);
    int64_t ev0 = last_event(f->st);

    struct store_challenge c = {.order_id = o1,
                                .type = "http-01",
                                .identifier = "ch.example",
                                .token = "tok-1",
                                .key_authorization = "tok-1.thumb"};
    int64_t c1 = 0, c2 = 0, c3 = 0;
    assert_int_equal(store_challenge_add(f->st, &c, &c1), 0);
    c.identifier = "_acme-challenge.ch.example.";
    c.type = "dns-01";
    c.token = "tok-dns";
    c.key_authorization = "txt-value";
    assert_int_equal(store_challenge_add(f->st, &c, &c2), 0);
    c.order_id = o2;
    c.type = "http-01";
    c.identifier = "ch.example";
    c.token = "tok-2";
    c.key_authorization = "tok-2.thumb";
    assert_int_equal(store_challenge_add(f->st, &c, &c3), 0);
    assert_true(c1 > 0 && c1 < c2 && c2 < c3);
    assert_int_equal(last_event(f->st), ev0); /* routine: no events */

    c.order_id = o2 + 100;
    assert_int_equal(store_challenge_add(f->st, &c, NULL), -ENOENT);
    c.order_id = o2;
    c.token = "";
    assert_int_equal(store_challenge_add(f->st, &c, NULL), -EINVAL);

    struct store_challenge **list = NULL;
    size_t n = 0;
    assert_int_equal(store_challenge_list(f->st, o1, &list, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(list[0]->id, c1);
    assert_int_equal(list[0]->order_id, o1);
    assert_string_equal(list[0]->type, "http-01");
    assert_string_equal(list[0]->identifier, "ch.example");
    assert_string_equal(list[0]->token, "tok-1");
    assert_string_equal(list[0]->key_authorization, "tok-1.thumb");
    assert_true(list[0]->created_at > 0);
    assert_string_equal(list[1]->type, "dns-01");
    assert_string_equal(list[1]->identifier, "_acme-challenge.ch.example.");
    store_challenge_list_free(list, n);
    assert_int_equal(store_challenge_list(f->st, 0, &list, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(list[2]->id, c3);
    store_challenge_list_free(list, n);

    char *ka = NULL;
    assert_int_equal(store_challenge_find_token(f->st, "tok-1", &ka), 0);
    assert_string_equal(ka, "tok-1.thumb");
    free(ka);
    assert_int_equal(store_challenge_find_token(f->st, "tok-2", &ka), 0);
    assert_string_equal(ka, "tok-2.thumb");
    free(ka);
    /* Not an http-01 response, and unknown tokens. */
    assert_int_equal(store_challenge_find_token(f->st, "tok-dns", &ka), -ENOENT);
    assert_null(ka);
    assert_int_equal(store_challenge_find_token(f->st, "nope", &ka), -ENOENT);
    assert_int_equal(store_challenge_find_token(f->st, "", &ka), -ENOENT);
    assert_int_equal(store_challenge_find_token(f->st, NULL, &ka), -EINVAL);

    /* Once its order is finished a left-over response is never served, though still listed
     * for cleanup. */
    struct store_order *o = NULL;
    assert_int_equal(store_order_get(f->st, o1, &o), 0);
    o->finished = true;
    assert_int_equal(store_order_update(f->st, o, NULL), 0);
    store_order_free(o);
    assert_int_equal(store_challenge_find_token(f->st, "tok-1", &ka), -ENOENT);
    assert_null(ka);
    assert_int_equal(store_challenge_list(f->st, o1, &list, &n), 0);
    assert_int_equal(n, 2);
    store_challenge_list_free(list, n);

    assert_int_equal(store_challenge_delete(f->st, c1), 0);
    assert_int_equal(store_challenge_delete(f->st, c1), -ENOENT);
    assert_int_equal(store_challenge_list(f->st, o1, &list, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(list[0]->id, c2);
    store_challenge_list_free(list, n);
    store_challenge_list_free(NULL, 0);

    /* Purging the domain takes its orders' challenges along. */
    struct store_event_in pg = ev_for("domain.purged", "ch.example");
    assert_int_equal(store_domain_remove(f->st, "ch.example", true, &pg), 0);
    assert_int_equal(store_challenge_list(f->st, 0, &list, &n), 0);
    assert_int_equal(n, 0);
    store_challenge_list_free(list, n);
}

/* ---- issuance outcomes ---- */

static void test_cert_add(void **state)
{
    struct store_fixture *f = *state;
    int64_t dom = add_domain(f->st, "cert.example", PEM_A);
    int64_t other = add_domain(f->st, "other.example", PEM_B);
    int64_t key = current_key(f->st, dom);
    int64_t order1 = new_order(f->st, dom, key, 0);
    struct store_event_in ev = ev_for("certificate.issued", "cert.example");

    /* A failure first, so the success visibly resets it. */
    struct store_event_in fail = ev_for("order.failed", "cert.example");
    assert_int_equal(store_domain_record_failure(f->st, dom, "rateLimited", 777, &fail), 0);

    int64_t ev0 = last_event(f->st);
    struct store_cert in = cert_in(dom, key, order1, "0a1b");
    int64_t c1 = 0;
    assert_int_equal(store_cert_add(f->st, &in, 5000, &ev, &c1), 0);
    assert_true(c1 > 0);
    assert_int_equal(last_event(f->st), ev0 + 1);

    struct store_domain *d = get_domain(f->st, dom);
    assert_string_equal(d->status, DOMAIN_STATUS_ACTIVE);
    assert_int_equal(d->failure_count, 0);
    assert_null(d->last_error);
    assert_int_equal(d->next_renewal_at, 5000);
    assert_int_equal(d->next_attempt_at, 5000);
    store_domain_free(d);

    struct store_order *o = NULL;
    assert_int_equal(store_order_get(f->st, order1, &o), 0);
    assert_true(o->finished);
    assert_string_equal(o->status, "valid");
    store_order_free(o);

    struct store_cert *c = NULL;
    assert_int_equal(store_cert_current(f->st, dom, &c), 0);
    assert_int_equal(c->id, c1);
    assert_int_equal(c->order_id, order1);
    assert_int_equal(c->key_id, key);
    assert_string_equal(c->serial, "0a1b");
    assert_string_equal(c->chain_pem, "CHAIN-PEM");
    assert_string_equal(c->status, CERT_STATUS_ACTIVE);
    assert_int_equal(c->not_before, 1000);
    assert_int_equal(c->not_after, 2000);
    store_cert_free(c);

    /* The renewal supersedes it; a certificate without an order is fine too. */
    struct store_cert in2 = cert_in(dom, key, 0, "0c0d");
    int64_t c2 = 0;
    assert_int_equal(store_cert_add(f->st, &in2, 9000, &ev, &c2), 0);
    struct store_cert **certs = NULL;
    size_t n = 0;
    assert_int_equal(store_cert_list(f->st, dom, &certs, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(certs[0]->id, c2);
    assert_string_equal(certs[0]->status, CERT_STATUS_ACTIVE);
    assert_int_equal(certs[0]->order_id, 0);
    assert_int_equal(certs[1]->id, c1);
    assert_string_equal(certs[1]->status, CERT_STATUS_SUPERSEDED);
    store_cert_list_free(certs, n);
    d = get_domain(f->st, dom);
    assert_int_equal(d->next_renewal_at, 9000);
    assert_int_equal(d->next_attempt_at, 9000);
    store_domain_free(d);

    /* Another domain's key or order: refused, and nothing of it stays. */
    ev0 = last_event(f->st);
    struct store_cert bad = cert_in(dom, current_key(f->st, other), 0, "0e");
    assert_int_equal(store_cert_add(f->st, &bad, 9999, &ev, NULL), -EINVAL);
    int64_t other_order = new_order(f->st, other, current_key(f->st, other), 0);
    ev0 = last_event(f->st);
    bad = cert_in(dom, key, other_order, "0e");
    assert_int_equal(store_cert_add(f->st, &bad, 9999, &ev, NULL), -EINVAL);
    bad = cert_in(dom, key, 0, "0E"); /* not lower-case hex */
    assert_int_equal(store_cert_add(f->st, &bad, 9999, &ev, NULL), -EINVAL);
    bad = cert_in(dom, key, 0, "0e");
    bad.chain_pem = NULL;
    assert_int_equal(store_cert_add(f->st, &bad, 9999, &ev, NULL), -EINVAL);
    bad.chain_pem = "X";
    assert_int_equal(store_cert_add(f->st, &bad, 0, &ev, NULL), -EINVAL);
    assert_int_equal(last_event(f->st), ev0);
    assert_int_equal(store_cert_current(f->st, dom, &c), 0);
    assert_int_equal(c->id, c2);
    store_cert_free(c);
    assert_int_equal(store_order_get(f->st, other_order, &o), 0);
    assert_false(o->finished);
    store_order_free(o);
    d = get_domain(f->st, dom);
    assert_int_equal(d->next_renewal_at, 9000);
    store_domain_free(d);

    /* A worker finishing after its domain was removed must not bring it back. */
    struct store_event_in rm = ev_for("domain.removed", "other.example");
    assert_int_equal(store_domain_remove(f->st, "other.example", false, &rm), 0);
    bad = cert_in(other, current_key(f->st, other), other_order, "0f");
    assert_int_equal(store_cert_add(f->st, &bad, 9999, &ev, NULL), -ENOENT);
    d = get_domain(f->st, other);
    assert_string_equal(d->status, DOMAIN_STATUS_REMOVED);
    store_domain_free(d);
}

static void test_cert_serial_and_revoke(void **state)
{
    struct store_fixture *f = *state;
    int64_t dom = add_domain(f->st, "rv.example", PEM_A);
    int64_t key = current_key(f->st, dom);
    struct store_event_in ev = ev_for("certificate.issued", "rv.example");
    struct store_cert in = cert_in(dom, key, 0, "00ff01");
    int64_t c1 = 0, c2 = 0;
    assert_int_equal(store_cert_add(f->st, &in, 5000, &ev, &c1), 0);
    in.serial = "00ff02";
    assert_int_equal(store_cert_add(f->st, &in, 6000, &ev, &c2), 0);

    struct store_cert *c = NULL;
    assert_int_equal(store_cert_get_by_serial(f->st, "00ff01", &c), 0);
    assert_int_equal(c->id, c1);
    assert_string_equal(c->chain_pem, "CHAIN-PEM");
    assert_string_equal(c->status, CERT_STATUS_SUPERSEDED);
    store_cert_free(c);
    assert_int_equal(store_cert_get_by_serial(f->st, "00ff03", &c), -ENOENT);
    assert_null(c);
    assert_int_equal(store_cert_get_by_serial(f->st, "00FF01", &c), -EINVAL);

    struct store_event_in rv = ev_for("certificate.revoked", "rv.example");
    int64_t ev0 = last_event(f->st);
    assert_int_equal(store_cert_set_revoked(f->st, c1, 7, 3000, &rv), -EINVAL); /* unused */
    assert_int_equal(store_cert_set_revoked(f->st, c1, 11, 3000, &rv), -EINVAL);
    assert_int_equal(store_cert_set_revoked(f->st, c1, -1, 3000, &rv), -EINVAL);
    assert_int_equal(store_cert_set_revoked(f->st, c1, 1, 0, &rv), -EINVAL);
    assert_int_equal(store_cert_set_revoked(f->st, c2 + 100, 1, 3000, &rv), -ENOENT);
    assert_int_equal(last_event(f->st), ev0);

    /* Revoking a superseded certificate leaves the domain as it is. */
    assert_int_equal(store_cert_set_revoked(f->st, c1, 4, 3000, &rv), 0);
    assert_int_equal(last_event(f->st), ev0 + 1);
    assert_int_equal(store_cert_get_by_serial(f->st, "00ff01", &c), 0);
    assert_string_equal(c->status, CERT_STATUS_REVOKED);
    assert_int_equal(c->revoked_at, 3000);
    assert_int_equal(c->revocation_reason, 4);
    store_cert_free(c);
    struct store_domain *d = get_domain(f->st, dom);
    assert_string_equal(d->status, DOMAIN_STATUS_ACTIVE);
    store_domain_free(d);

    /* Revoking the active one (keyCompromise): no current certificate, domain pending. */
    assert_int_equal(store_cert_set_revoked(f->st, c2, 1, 3500, &rv), 0);
    assert_int_equal(store_cert_current(f->st, dom, &c), -ENOENT);
    d = get_domain(f->st, dom);
    assert_string_equal(d->status, DOMAIN_STATUS_PENDING);
    store_domain_free(d);
    struct store_cert **certs = NULL;
    size_t n = 0;
    assert_int_equal(store_cert_list(f->st, dom, &certs, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(certs[0]->status, CERT_STATUS_REVOKED);
    assert_int_equal(certs[0]->revocation_reason, 1);
    assert_int_equal(certs[0]->revoked_at, 3500);
    store_cert_list_free(certs, n);

    /* With no active certificate, a failure now marks the domain failed. */
    struct store_event_in fl = ev_for("order.failed", "rv.example");
    assert_int_equal(store_domain_record_failure(f->st, dom, "boom", 100, &fl), 0);
    d = get_domain(f->st, dom);
    assert_string_equal(d->status, DOMAIN_STATUS_FAILED);
    store_domain_free(d);
}

static void test_record_failure(void **state)
{
    struct store_fixture *f = *state;
    int64_t dom = add_domain(f->st, "fail.example", PEM_A);
    struct store_event_in ev = ev_for("order.failed", "fail.example");

    int64_t ev0 = last_event(f->st);
    assert_int_equal(store_domain_record_failure(f->st, dom, "connection refused", 1234, &ev), 0);
    assert_int_equal(last_event(f->st), ev0 + 1);
    struct store_domain *d = get_domain(f->st, dom);
    assert_string_equal(d->status, DOMAIN_STATUS_FAILED);
    assert_int_equal(d->failure_count, 1);
    assert_string_equal(d->last_error, "connection refused");
    assert_int_equal(d->next_attempt_at, 1234);
    store_domain_free(d);

    /* With an active certificate the domain stays active: that certificate still serves. */
    struct store_cert in = cert_in(dom, current_key(f->st, dom), 0, "01");
    struct store_event_in iss = ev_for("certificate.issued", "fail.example");
    assert_int_equal(store_cert_add(f->st, &in, 8000, &iss, NULL), 0);
    assert_int_equal(store_domain_record_failure(f->st, dom, "timeout", 2000, &ev), 0);
    assert_int_equal(store_domain_record_failure(f->st, dom, "timeout again", 0, &ev), 0);
    d = get_domain(f->st, dom);
    assert_string_equal(d->status, DOMAIN_STATUS_ACTIVE);
    assert_int_equal(d->failure_count, 2);
    assert_string_equal(d->last_error, "timeout again");
    assert_int_equal(d->next_attempt_at, 0); /* 0: no retry planned */
    assert_int_equal(d->next_renewal_at, 8000);
    store_domain_free(d);

    /* An over-long error is cut, at a character boundary, not refused. */
    size_t len = STORE_TEXT_MAX + 100;
    char *big = malloc(len + 1);
    assert_non_null(big);
    memset(big, 'x', len);
    /* A 2-byte "é" straddling the limit: the cut must drop it whole. */
    big[STORE_TEXT_MAX - 1] = (char)0xc3;
    big[STORE_TEXT_MAX] = (char)0xa9;
    big[len] = '\0';
    assert_int_equal(store_domain_record_failure(f->st, dom, big, 10, &ev), 0);
    free(big);
    d = get_domain(f->st, dom);
    assert_int_equal(strlen(d->last_error), STORE_TEXT_MAX - 1);
    assert_int_equal((unsigned char)d->last_error[STORE_TEXT_MAX - 2], 'x');
    assert_int_equal(d->failure_count, 3);
    store_domain_free(d);

    ev0 = last_event(f->st);
    assert_int_equal(store_domain_record_failure(f->st, dom, "", 10, &ev), -EINVAL);
    assert_int_equal(store_domain_record_failure(f->st, dom, NULL, 10, &ev), -EINVAL);
    assert_int_equal(store_domain_record_failure(f->st, dom + 100, "x", 10, &ev), -ENOENT);
    struct store_event_in rm = ev_for("domain.removed", "fail.example");
    assert_int_equal(store_domain_remove(f->st, "fail.example", false, &rm), 0);
    assert_int_equal(store_domain_record_failure(f->st, dom, "x", 10, &ev), -ENOENT);
    assert_int_equal(last_event(f->st), ev0 + 1); /* the removal only */
    d = get_domain(f->st, dom);
    assert_int_equal(d->next_attempt_at, 0);
    assert_int_equal(d->failure_count, 3);
    store_domain_free(d);
}

static void test_key_add(void **state)
{
    struct store_fixture *f = *state;
    int64_t dom = add_domain(f->st, "key.example", PEM_A);
    int64_t old = current_key(f->st, dom);
    struct store_event_in ev = ev_for("key.rotated", "key.example");

    struct store_key k = {.pem = PEM_B, .public_key_sha256 = "beef"};
    int64_t id = 0, ev0 = last_event(f->st);
    assert_int_equal(store_key_add(f->st, dom, &k, &ev, &id), 0);
    assert_int_equal(last_event(f->st), ev0 + 1);
    assert_true(id > old);
    assert_int_equal(current_key(f->st, dom), id);

    struct store_key **keys = NULL;
    size_t n = 0;
    assert_int_equal(store_key_list(f->st, dom, &keys, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(keys[0]->id, id);
    assert_string_equal(keys[0]->status, KEY_STATUS_CURRENT);
    assert_string_equal(keys[0]->key_type, "ec-p256"); /* the domain's */
    assert_string_equal(keys[0]->public_key_sha256, "beef");
    assert_int_equal(keys[1]->id, old);
    assert_string_equal(keys[1]->status, KEY_STATUS_SUPERSEDED);
    store_key_list_free(keys, n);

    /* Both PEMs readable, and wiped on free (ASan checks the wiping touches only owned bytes). */
    struct store_key *p = NULL;
    assert_int_equal(store_key_get_pem(f->st, id, &p), 0);
    assert_string_equal(p->pem, PEM_B);
    store_key_free(p);
    assert_int_equal(store_key_get_pem(f->st, old, &p), 0);
    assert_string_equal(p->pem, PEM_A);
    store_key_free(p);

    k.key_type = "rsa-3072";
    assert_int_equal(store_key_add(f->st, dom, &k, &ev, NULL), 0);
    assert_int_equal(store_key_current(f->st, dom, &p), 0);
    assert_string_equal(p->key_type, "rsa-3072");
    store_key_free(p);

    ev0 = last_event(f->st);
    assert_int_equal(store_key_add(f->st, dom + 100, &k, &ev, NULL), -ENOENT);
    k.pem = "";
    assert_int_equal(store_key_add(f->st, dom, &k, &ev, NULL), -EINVAL);
    k.pem = PEM_A;
    k.public_key_sha256 = NULL;
    assert_int_equal(store_key_add(f->st, dom, &k, &ev, NULL), -EINVAL);
    assert_int_equal(last_event(f->st), ev0);
    assert_int_equal(raw_int(store_sqlite_handle(f->st),
                             "SELECT COUNT(*) FROM private_keys WHERE status = 'current'"),
                     1);
}

/* Secrets in returned structs are wiped and freed on every path: full structs, partly filled
 * ones, and NULL. Run under ASan this catches overruns and double frees in the wiping. */
static void test_secret_free_paths(void **state)
{
    struct store_fixture *f = *state;
    struct store_account *a = calloc(1, sizeof(*a));
    assert_non_null(a);
    a->key_pem = strdup(ACC_PEM_1);
    store_account_free(a); /* every other field NULL */

    struct store_key *k = calloc(1, sizeof(*k));
    assert_non_null(k);
    k->pem = strdup("");
    store_key_free(k);

    struct store_account in = {
        .ca = "le", .directory_url = DIR_1, .key_type = "ec-p256", .key_pem = ACC_PEM_2};
    struct store_event_in ev = ev_for("account.created", NULL);
    assert_int_equal(store_account_put(f->st, &in, &ev), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(store_account_get(f->st, "le", DIR_1, &a), 0);
        assert_int_equal(strlen(a->key_pem), strlen(ACC_PEM_2));
        store_account_free(a);
    }
}

/* ---- domains: get by id, and the first issuance queued on add ---- */

static void test_domain_add_queues_issuance(void **state)
{
    struct store_fixture *f = *state;
    int64_t before = time(NULL);
    int64_t dom = add_domain(f->st, "q.example", PEM_A);
    int64_t after = time(NULL);

    struct store_domain *d = get_domain(f->st, dom);
    assert_string_equal(d->name, "q.example");
    assert_string_equal(d->status, DOMAIN_STATUS_PENDING);
    assert_true(d->next_attempt_at >= before && d->next_attempt_at <= after);
    assert_int_equal(d->next_renewal_at, 0);
    store_domain_free(d);
    assert_int_equal(store_domain_get_by_id(f->st, dom + 100, &d), -ENOENT);
    assert_null(d);

    /* Removal clears the timer; the removed domain is still readable by id. */
    struct store_event_in rm = ev_for("domain.removed", "q.example");
    assert_int_equal(store_domain_remove(f->st, "q.example", false, &rm), 0);
    d = get_domain(f->st, dom);
    assert_string_equal(d->status, DOMAIN_STATUS_REMOVED);
    assert_int_equal(d->next_attempt_at, 0);
    store_domain_free(d);

    /* Reviving it queues a first issuance again. */
    before = time(NULL);
    assert_int_equal(add_domain(f->st, "q.example", PEM_B), dom);
    d = get_domain(f->st, dom);
    assert_string_equal(d->status, DOMAIN_STATUS_PENDING);
    assert_true(d->next_attempt_at >= before && d->next_attempt_at <= time(NULL));
    store_domain_free(d);
}

/* ---- migration 0001 -> 0002 ---- */

static void test_migration_1_to_2(void **state)
{
    struct store_fixture *f = *state;
    char path[PATH_MAX + 64], err[256] = "";
    snprintf(path, sizeof(path), "%s/v1.db", f->dir);

    /* A version-1 database with data in every table 0002 touches. */
    sqlite3 *raw = NULL;
    assert_int_equal(sqlite3_open_v2(path, &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                     SQLITE_OK);
    assert_string_equal(schema_migrations[0].file, "0001_initial.sql");
    raw_exec(raw, "PRAGMA foreign_keys = ON");
    raw_exec(raw, schema_migrations[0].sql);
    raw_exec(raw,
             "PRAGMA user_version = 1;"
             "INSERT INTO cas VALUES (1, 'le', '" DIR_1 "', 10);"
             "INSERT INTO accounts (id, ca_id, key_type, key_pem, account_url, status, contact,"
             " created_at, updated_at) VALUES (1, 1, 'ec-p256', '" ACC_PEM_1 "',"
             " 'https://acme.example/acct/1', 'valid', '[]', 10, 11);"
             "INSERT INTO domains (id, name, challenge, key_type, ca, status, created_at,"
             " updated_at) VALUES (1, 'new.example', 'http-01', 'ec-p256', 'le', 'pending',"
             " 20, 20);"
             "INSERT INTO domains (id, name, challenge, key_type, ca, status, next_renewal_at,"
             " created_at, updated_at) VALUES (2, 'act.example', 'dns-01', 'ec-p256', 'le',"
             " 'active', 5000, 20, 20);"
             "INSERT INTO domains (id, name, challenge, key_type, ca, status, next_renewal_at,"
             " failure_count, last_error, next_attempt_at, created_at, updated_at) VALUES (3,"
             " 'retry.example', 'http-01', 'ec-p256', 'le', 'failed', NULL, 2, 'boom', 700,"
             " 20, 20);"
             "INSERT INTO domains (id, name, challenge, key_type, ca, status, created_at,"
             " updated_at) VALUES (4, 'gone.example', 'http-01', 'ec-p256', 'le', 'removed',"
             " 20, 20);"
             "INSERT INTO domain_names VALUES (2, 0, 'www.act.example');"
             "INSERT INTO private_keys VALUES (1, 2, 'ec-p256', '" PEM_A "', 'aa', 'current', 30);"
             "INSERT INTO orders (id, domain_id, account_id, ca, url, status, key_id, names,"
             " created_at, updated_at) VALUES (1, 2, 1, 'le', 'https://acme.example/o/1',"
             " 'valid', 1, '[\"act.example\"]', 40, 41);"
             "INSERT INTO orders (id, domain_id, account_id, ca, url, status, step, key_id,"
             " names, created_at, updated_at) VALUES (2, 2, 1, 'le',"
             " 'https://acme.example/o/2', 'pending', 'authorize', 1, '[\"act.example\"]', 50,"
             " 51);"
             "INSERT INTO certificates (domain_id, key_id, order_id, serial, not_before,"
             " not_after, issuer, fingerprint_sha256, chain_pem, status, created_at) VALUES"
             " (2, 1, 1, '0abc', 100, 9000, 'CN=CA', 'ff', 'CHAIN', 'active', 60);"
             "INSERT INTO events (created_at, type, actor) VALUES (70, 'domain.added', 'x');");
    sqlite3_close(raw);

    struct store *st = NULL;
    int64_t before = time(NULL);
    assert_int_equal(store_open(path, &st, err, sizeof(err)), 0);
    assert_int_equal(store_schema_version(st), store_schema_latest());
    assert_string_equal(schema_migrations[1].file, "0002_acme.sql");

    /* The data is all there. */
    struct store_account *a = NULL;
    assert_int_equal(store_account_get(st, "le", DIR_1, &a), 0);
    assert_int_equal(a->id, 1);
    assert_string_equal(a->key_pem, ACC_PEM_1);
    assert_string_equal(a->account_url, "https://acme.example/acct/1");
    store_account_free(a);

    struct store_domain *d = NULL;
    assert_int_equal(store_domain_get(st, "act.example", &d), 0);
    assert_int_equal(d->id, 2);
    assert_int_equal(d->alt_count, 1);
    assert_string_equal(d->alt_names[0], "www.act.example");
    assert_string_equal(d->status, DOMAIN_STATUS_ACTIVE);
    assert_int_equal(d->next_renewal_at, 5000);
    /* ...with the new meaning of next_attempt_at: the renewal time, */
    assert_int_equal(d->next_attempt_at, 5000);
    store_domain_free(d);
    /* a planned retry kept, */
    assert_int_equal(store_domain_get(st, "retry.example", &d), 0);
    assert_int_equal(d->next_attempt_at, 700);
    assert_int_equal(d->failure_count, 2);
    assert_string_equal(d->last_error, "boom");
    store_domain_free(d);
    /* a never-issued domain queued now, a removed one left alone. */
    assert_int_equal(store_domain_get(st, "new.example", &d), 0);
    assert_true(d->next_attempt_at >= before && d->next_attempt_at <= time(NULL));
    store_domain_free(d);
    assert_int_equal(store_domain_get(st, "gone.example", &d), 0);
    assert_int_equal(d->next_attempt_at, 0);
    store_domain_free(d);

    struct store_order *o = NULL;
    assert_int_equal(store_order_get(st, 1, &o), 0);
    assert_true(o->finished); /* the CA had decided */
    assert_null(o->replaces);
    assert_int_equal(o->account_id, 1);
    store_order_free(o);
    assert_int_equal(store_order_get(st, 2, &o), 0);
    assert_false(o->finished);
    assert_string_equal(o->step, "authorize");
    assert_string_equal(o->url, "https://acme.example/o/2");
    store_order_free(o);
    struct store_order **list = NULL;
    size_t n = 0;
    assert_int_equal(store_order_list_unfinished(st, &list, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(list[0]->id, 2);
    store_order_list_free(list, n);

    struct store_cert *c = NULL;
    assert_int_equal(store_cert_get_by_serial(st, "0abc", &c), 0);
    assert_int_equal(c->order_id, 1);
    assert_string_equal(c->chain_pem, "CHAIN");
    store_cert_free(c);
    struct store_key *k = NULL;
    assert_int_equal(store_key_get_pem(st, 1, &k), 0);
    assert_string_equal(k->pem, PEM_A);
    store_key_free(k);

    int64_t last = 0;
    assert_int_equal(store_event_last_id(st, &last), 0);
    assert_int_equal(last, 1);

    /* The new table works against the migrated orders. */
    struct store_challenge ch = {.order_id = 2,
                                 .type = "http-01",
                                 .identifier = "act.example",
                                 .token = "t",
                                 .key_authorization = "t.k"};
    assert_int_equal(store_challenge_add(st, &ch, NULL), 0);
    char *ka = NULL;
    assert_int_equal(store_challenge_find_token(st, "t", &ka), 0);
    assert_string_equal(ka, "t.k");
    free(ka);

    /* A finished flag outside 0/1 is refused by the schema itself. */
    sqlite3 *db = store_sqlite_handle(st);
    assert_int_not_equal(sqlite3_exec(db, "UPDATE orders SET finished = 2", NULL, NULL, NULL),
                         SQLITE_OK);
    assert_int_equal(sqlite3_extended_errcode(db), SQLITE_CONSTRAINT_CHECK);
    store_close(st);

    /* Reopening applies nothing again. */
    assert_int_equal(store_open(path, &st, err, sizeof(err)), 0);
    assert_int_equal(store_schema_version(st), store_schema_latest());
    assert_int_equal(raw_int(store_sqlite_handle(st), "SELECT COUNT(*) FROM challenges"), 1);
    store_close(st);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, store_fixture_setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_accounts),
        T(test_account_directory_changed),
        T(test_orders),
        T(test_orders_unfinished),
        T(test_challenges),
        T(test_cert_add),
        T(test_cert_serial_and_revoke),
        T(test_record_failure),
        T(test_key_add),
        T(test_secret_free_paths),
        T(test_domain_add_queues_issuance),
        T(test_migration_1_to_2),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
