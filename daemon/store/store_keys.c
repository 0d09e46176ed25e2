/* Private keys and certificates of a domain. Key PEM leaves the database only through
 * store_key_get_pem, and is wiped when the struct holding it is freed. */
#include "store/store.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"
#include "store/store_renewal_internal.h"

#define KEY_COLUMNS "id, domain_id, key_type, public_key_sha256, status, created_at"
#define CERT_COLUMNS                                                                               \
    "id, domain_id, key_id, serial, not_before, not_after, issuer, fingerprint_sha256, status,"    \
    " created_at, revoked_at, order_id, revocation_reason, ari_id, ari_window_start,"            \
    " ari_window_end, ari_next_check, expiring_at, expiring_notified, replaced_by"
/* The column after CERT_COLUMNS: chain_pem, or the domain's name in the expiring list. */
#define CERT_COL_EXTRA 20

void store_key_free(struct store_key *k)
{
    if (!k)
        return;
    if (k->pem) {
        explicit_bzero(k->pem, strlen(k->pem));
        free(k->pem);
    }
    free(k->key_type);
    free(k->public_key_sha256);
    free(k->status);
    free(k);
}

void store_key_list_free(struct store_key **list, size_t count)
{
    if (!list)
        return;
    for (size_t i = 0; i < count; i++)
        store_key_free(list[i]);
    free(list);
}

void store_cert_free(struct store_cert *c)
{
    if (!c)
        return;
    free(c->serial);
    free(c->issuer);
    free(c->fingerprint_sha256);
    free(c->chain_pem);
    free(c->status);
    free(c->ari_id);
    free(c->domain);
    free(c);
}

void store_cert_list_free(struct store_cert **list, size_t count)
{
    if (!list)
        return;
    for (size_t i = 0; i < count; i++)
        store_cert_free(list[i]);
    free(list);
}

/* A row of KEY_COLUMNS, plus key_pem as column 6 when WITH_PEM. */
static int key_from_row(sqlite3_stmt *s, bool with_pem, struct store_key **out)
{
    struct store_key *k = calloc(1, sizeof(*k));
    if (!k)
        return -ENOMEM;
    k->id = sqlite3_column_int64(s, 0);
    k->domain_id = sqlite3_column_int64(s, 1);
    k->created_at = sqlite3_column_int64(s, 5);
    if (store_col_strdup(s, 2, &k->key_type) < 0 ||
        store_col_strdup(s, 3, &k->public_key_sha256) < 0 ||
        store_col_strdup(s, 4, &k->status) < 0 ||
        (with_pem && store_col_strdup(s, 6, &k->pem) < 0)) {
        store_key_free(k);
        return -ENOMEM;
    }
    *out = k;
    return 0;
}

/* A row of CERT_COLUMNS, plus chain_pem as column CERT_COL_EXTRA when WITH_CHAIN. */
static int cert_from_row(sqlite3_stmt *s, bool with_chain, struct store_cert **out)
{
    struct store_cert *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->id = sqlite3_column_int64(s, 0);
    c->domain_id = sqlite3_column_int64(s, 1);
    c->key_id = sqlite3_column_int64(s, 2);
    c->not_before = sqlite3_column_int64(s, 4);
    c->not_after = sqlite3_column_int64(s, 5);
    c->created_at = sqlite3_column_int64(s, 9);
    c->revoked_at = sqlite3_column_int64(s, 10);
    c->order_id = sqlite3_column_int64(s, 11);
    c->revocation_reason = sqlite3_column_int(s, 12);
    c->ari_window_start = sqlite3_column_int64(s, 14);
    c->ari_window_end = sqlite3_column_int64(s, 15);
    c->ari_next_check = sqlite3_column_int64(s, 16);
    c->expiring_at = sqlite3_column_int64(s, 17);
    c->expiring_notified = sqlite3_column_int64(s, 18) != 0;
    c->replaced_by = sqlite3_column_int64(s, 19);
    if (store_col_strdup(s, 3, &c->serial) < 0 || store_col_strdup(s, 6, &c->issuer) < 0 ||
        store_col_strdup(s, 7, &c->fingerprint_sha256) < 0 ||
        store_col_strdup(s, 8, &c->status) < 0 || store_col_strdup(s, 13, &c->ari_id) < 0 ||
        (with_chain && store_col_strdup(s, CERT_COL_EXTRA, &c->chain_pem) < 0)) {
        store_cert_free(c);
        return -ENOMEM;
    }
    *out = c;
    return 0;
}

/* A key row (no PEM) as a store_rows_collect converter. */
static int key_row(sqlite3_stmt *s, void *item, void *ctx)
{
    (void)ctx;
    return key_from_row(s, false, item);
}

/* A certificate row (no chain) as a store_rows_collect converter. */
static int cert_row(sqlite3_stmt *s, void *item, void *ctx)
{
    (void)ctx;
    return cert_from_row(s, false, item);
}

/* Fetches the single row SQL (one int64 parameter) selects; -ENOENT when there is none. */
static int fetch_one(struct store *st, const char *sql, int64_t param, const char *what,
                     sqlite3_stmt **out)
{
    int ret = store_prepare(st, sql, out);
    if (ret < 0)
        return ret;
    if ((ret = store_bind_int64(st, *out, 1, param)) == 0 &&
        (ret = store_step_row(st, *out, what)) == 0)
        return 0;
    store_release(st, *out);
    *out = NULL;
    return ret;
}

/* Takes the lock and collects every row SQL (one int64 parameter) selects into ROWS, elements of
 * ELEM bytes made by ROW. On error ROWS keeps what was converted, for the caller to free. */
static int fetch_all(struct store *st, const char *sql, int64_t param, size_t elem,
                     store_row_fn row, const char *what, struct store_rows *rows)
{
    sqlite3_stmt *s = NULL;
    pthread_mutex_lock(&st->lock);
    int ret = store_prepare(st, sql, &s);
    if (ret == 0 && (ret = store_bind_int64(st, s, 1, param)) == 0)
        ret = store_rows_collect(st, s, rows, elem, row, NULL, what);
    store_release(st, s);
    pthread_mutex_unlock(&st->lock);
    return ret;
}

/* Newest first: ids only grow, whereas created_at follows a clock that can step back. */
int store_key_list(struct store *st, int64_t domain_id, struct store_key ***out, size_t *count)
{
    struct store_rows rows = {0};

    *out = NULL;
    *count = 0;
    int ret = fetch_all(st,
                        "SELECT " KEY_COLUMNS " FROM private_keys WHERE domain_id = ?1"
                        " ORDER BY id DESC",
                        domain_id, sizeof(struct store_key *), key_row, "list keys", &rows);
    if (ret < 0) {
        store_key_list_free(rows.items, rows.n);
        return ret;
    }
    *out = rows.items;
    *count = rows.n;
    return 0;
}

int store_key_current(struct store *st, int64_t domain_id, struct store_key **out)
{
    sqlite3_stmt *s = NULL;
    *out = NULL;
    pthread_mutex_lock(&st->lock);
    int ret = fetch_one(st,
                        "SELECT " KEY_COLUMNS " FROM private_keys WHERE domain_id = ?1"
                        " AND status = '" KEY_STATUS_CURRENT "'",
                        domain_id, "current key", &s);
    if (ret == 0)
        ret = key_from_row(s, false, out);
    store_release(st, s);
    pthread_mutex_unlock(&st->lock);
    return ret;
}

int store_key_get_pem(struct store *st, int64_t key_id, struct store_key **out)
{
    sqlite3_stmt *s = NULL;
    *out = NULL;
    pthread_mutex_lock(&st->lock);
    int ret = fetch_one(st, "SELECT " KEY_COLUMNS ", key_pem FROM private_keys WHERE id = ?1",
                        key_id, "get key", &s);
    if (ret == 0)
        ret = key_from_row(s, true, out);
    if (ret == 0 && !(*out)->pem) {
        store_key_free(*out);
        *out = NULL;
        ret = -ENOMEM;
    }
    store_release(st, s);
    pthread_mutex_unlock(&st->lock);
    return ret;
}

int store_cert_list(struct store *st, int64_t domain_id, struct store_cert ***out, size_t *count)
{
    struct store_rows rows = {0};

    *out = NULL;
    *count = 0;
    int ret =
        fetch_all(st,
                  "SELECT " CERT_COLUMNS " FROM certificates WHERE domain_id = ?1"
                  " ORDER BY id DESC",
                  domain_id, sizeof(struct store_cert *), cert_row, "list certificates", &rows);
    if (ret < 0) {
        store_cert_list_free(rows.items, rows.n);
        return ret;
    }
    *out = rows.items;
    *count = rows.n;
    return 0;
}

int store_cert_current(struct store *st, int64_t domain_id, struct store_cert **out)
{
    sqlite3_stmt *s = NULL;
    *out = NULL;
    pthread_mutex_lock(&st->lock);
    int ret = fetch_one(st,
                        "SELECT " CERT_COLUMNS ", chain_pem FROM certificates WHERE domain_id = ?1"
                        " AND status = '" CERT_STATUS_ACTIVE "'",
                        domain_id, "current certificate", &s);
    if (ret == 0)
        ret = cert_from_row(s, true, out);
    store_release(st, s);
    pthread_mutex_unlock(&st->lock);
    return ret;
}

/* ---- issuance outcomes ---- */

static bool text_ok(const char *s)
{
    return s && *s && strnlen(s, STORE_TEXT_MAX + 1) <= STORE_TEXT_MAX;
}

static bool pem_ok(const char *s)
{
    return s && *s && strnlen(s, STORE_PEM_MAX + 1) <= STORE_PEM_MAX;
}

/* Serials are stored as lower-case hex, so lookups compare text exactly. */
static bool serial_ok(const char *s)
{
    if (!text_ok(s))
        return false;
    for (; *s; s++) {
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    }
    return true;
}

int store_row_exists(struct store *st, const char *sql, int64_t a, int64_t b, const char *what,
                     bool *exists)
{
    sqlite3_stmt *s = NULL;
    int ret = store_prepare(st, sql, &s);
    if (ret < 0)
        return ret;
    if ((ret = store_bind_int64(st, s, 1, a)) < 0 ||
        (sqlite3_bind_parameter_count(s) >= 2 && (ret = store_bind_int64(st, s, 2, b)) < 0))
        goto out;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        *exists = rc == SQLITE_ROW;
    else
        ret = store_db_error(st, rc, what);
out:
    store_release(st, s);
    return ret;
}

/* Runs SQL that returns no row, with ?1 = ID and, when SQL has a ?2, ?2 = T. */
static int exec_id_time(struct store *st, const char *sql, int64_t id, int64_t t, const char *what)
{
    sqlite3_stmt *s = NULL;
    int ret = store_prepare(st, sql, &s);
    if (ret < 0)
        return ret;
    if ((ret = store_bind_int64(st, s, 1, id)) == 0 &&
        (sqlite3_bind_parameter_count(s) < 2 || (ret = store_bind_int64(st, s, 2, t)) == 0))
        ret = store_step_done(st, s, what);
    store_release(st, s);
    return ret;
}

int store_key_add(struct store *st, int64_t domain_id, const struct store_key *k,
                  const struct store_event_in *ev, int64_t *id_out)
{
    if (!k || !pem_ok(k->pem) || !text_ok(k->public_key_sha256) ||
        (k->key_type && !text_ok(k->key_type)) || !ev)
        return -EINVAL;

    pthread_mutex_lock(&st->lock);
    char *domain_key_type = NULL;
    int64_t id = 0;
    int ret = store_tx_begin(st);
    if (ret < 0)
        goto unlock;
    if ((ret = store_domain_check_managed(st, domain_id, &domain_key_type)) == 0)
        ret = store_key_insert_current(
            st, domain_id, k, k->key_type ? k->key_type : domain_key_type, store_now(), &id);
    ret = store_tx_finish(st, NULL, ret, ev);
    if (ret == 0 && id_out)
        *id_out = id;
unlock:
    pthread_mutex_unlock(&st->lock);
    free(domain_key_type);
    return ret;
}

/* The id of DOMAIN_ID's active certificate in *ID, 0 when it has none. */
static int active_cert_id(struct store *st, int64_t domain_id, int64_t *id)
{
    sqlite3_stmt *s = NULL;
    *id = 0;
    int ret = fetch_one(st,
                        "SELECT id FROM certificates WHERE domain_id = ?1"
                        " AND status = '" CERT_STATUS_ACTIVE "'",
                        domain_id, "active certificate", &s);
    if (ret == 0)
        *id = sqlite3_column_int64(s, 0);
    store_release(st, s);
    return ret == -ENOENT ? 0 : ret;
}

static bool cert_in_ok(const struct store_cert *c)
{
    return c && c->domain_id > 0 && c->key_id > 0 && c->order_id >= 0 && serial_ok(c->serial) &&
           text_ok(c->issuer) && text_ok(c->fingerprint_sha256) && pem_ok(c->chain_pem) &&
           c->not_after > 0 && c->not_before <= c->not_after &&
           (!c->ari_id || store_ari_id_ok(c->ari_id)) &&
           store_ari_times_ok(c->ari_window_start, c->ari_window_end, c->ari_next_check) &&
           c->expiring_at >= 0;
}

/* Inserts C as the domain's active certificate; the caller superseded the previous one. */
static int cert_insert_active(struct store *st, const struct store_cert *c, int64_t now,
                              int64_t *id_out)
{
    sqlite3_stmt *s = NULL;
    int ret = store_prepare(st,
                            "INSERT INTO certificates (domain_id, key_id, order_id, serial,"
                            " not_before, not_after, issuer, fingerprint_sha256, chain_pem,"
                            " status, created_at, ari_id, ari_window_start, ari_window_end,"
                            " ari_next_check, expiring_at, expiring_notified)"
                            " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
                            " '" CERT_STATUS_ACTIVE "', ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                            &s);
    if (ret < 0)
        return ret;
    if ((ret = store_bind_int64(st, s, 1, c->domain_id)) < 0 ||
        (ret = store_bind_int64(st, s, 2, c->key_id)) < 0 ||
        (ret = store_bind_id(st, s, 3, c->order_id)) < 0 ||
        (ret = store_bind_text(st, s, 4, c->serial)) < 0 ||
        (ret = store_bind_int64(st, s, 5, c->not_before)) < 0 ||
        (ret = store_bind_int64(st, s, 6, c->not_after)) < 0 ||
        (ret = store_bind_text(st, s, 7, c->issuer)) < 0 ||
        (ret = store_bind_text(st, s, 8, c->fingerprint_sha256)) < 0 ||
        (ret = store_bind_text(st, s, 9, c->chain_pem)) < 0 ||
        (ret = store_bind_int64(st, s, 10, now)) < 0 ||
        (ret = store_bind_text(st, s, 11, c->ari_id)) < 0 ||
        (ret = store_bind_time(st, s, 12, c->ari_window_start)) < 0 ||
        (ret = store_bind_time(st, s, 13, c->ari_window_end)) < 0 ||
        (ret = store_bind_time(st, s, 14, c->ari_next_check)) < 0 ||
        (ret = store_bind_time(st, s, 15, c->expiring_at)) < 0 ||
        (ret = store_bind_int64(st, s, 16, c->expiring_notified ? 1 : 0)) < 0)
        goto out;
    ret = store_step_done(st, s, "insert certificate");
    if (ret == 0)
        *id_out = sqlite3_last_insert_rowid(st->db);
out:
    store_release(st, s);
    return ret;
}

static int domain_activate(struct store *st, int64_t domain_id, int64_t next_renewal_at,
                           int64_t now)
{
    sqlite3_stmt *s = NULL;
    int ret = store_prepare(st,
                            "UPDATE domains SET status = '" DOMAIN_STATUS_ACTIVE "',"
                            " failure_count = 0, last_error = NULL, next_renewal_at = ?2,"
                            " next_attempt_at = ?2, updated_at = ?3 WHERE id = ?1",
                            &s);
    if (ret < 0)
        return ret;
    if ((ret = store_bind_int64(st, s, 1, domain_id)) == 0 &&
        (ret = store_bind_int64(st, s, 2, next_renewal_at)) == 0 &&
        (ret = store_bind_int64(st, s, 3, now)) == 0)
        ret = store_step_done(st, s, "activate domain");
    store_release(st, s);
    return ret;
}

int store_cert_add(struct store *st, const struct store_cert *c, int64_t next_renewal_at,
                   const struct store_event_in *ev, int64_t *id_out)
{
    if (!cert_in_ok(c) || next_renewal_at <= 0 || !ev)
        return -EINVAL;

    pthread_mutex_lock(&st->lock);
    int64_t now = store_now(), id = 0, previous = 0;
    bool fits = false;
    int ret = store_tx_begin(st);
    if (ret < 0)
        goto unlock;
    if ((ret = store_domain_check_managed(st, c->domain_id, NULL)) < 0)
        goto finish;
    /* A certificate served with another domain's key would be a key mix-up, not a lineage. */
    ret = store_row_exists(st, "SELECT 1 FROM private_keys WHERE id = ?1 AND domain_id = ?2",
                           c->key_id, c->domain_id, "check certificate key", &fits);
    if (ret == 0 && !fits)
        ret = -EINVAL;
    if (ret == 0 && c->order_id) {
        ret = store_row_exists(st, "SELECT 1 FROM orders WHERE id = ?1 AND domain_id = ?2",
                               c->order_id, c->domain_id, "check certificate order", &fits);
        if (ret == 0 && !fits)
            ret = -EINVAL;
    }
    if (ret < 0)
        goto finish;

    /* Remember the certificate being replaced, to link it to its successor. */
    if ((ret = active_cert_id(st, c->domain_id, &previous)) < 0)
        goto finish;
    /* Supersede first so the one-active-certificate index holds at every statement. */
    ret = exec_id_time(st,
                       "UPDATE certificates SET status = '" CERT_STATUS_SUPERSEDED "'"
                       " WHERE domain_id = ?1 AND status = '" CERT_STATUS_ACTIVE "'",
                       c->domain_id, now, "supersede certificate");
    if (ret == 0)
        ret = cert_insert_active(st, c, now, &id);
    if (ret == 0 && previous)
        ret = exec_id_time(st, "UPDATE certificates SET replaced_by = ?2 WHERE id = ?1", previous,
                           id, "link replaced certificate");
    if (ret == 0)
        ret = domain_activate(st, c->domain_id, next_renewal_at, now);
    if (ret == 0 && c->order_id)
        ret = exec_id_time(st,
                           "UPDATE orders SET finished = 1, status = 'valid', updated_at = ?2"
                           " WHERE id = ?1",
                           c->order_id, now, "finish order");
finish:
    ret = store_tx_finish(st, NULL, ret, ev);
    if (ret == 0 && id_out)
        *id_out = id;
unlock:
    pthread_mutex_unlock(&st->lock);
    return ret;
}

int store_cert_get_by_serial(struct store *st, const char *serial, struct store_cert **out)
{
    sqlite3_stmt *s = NULL;

    *out = NULL;
    if (!serial_ok(serial))
        return -EINVAL;
    pthread_mutex_lock(&st->lock);
    int ret = store_prepare(st,
                            "SELECT " CERT_COLUMNS ", chain_pem FROM certificates"
                            " WHERE serial = ?1 ORDER BY id DESC LIMIT 1",
                            &s);
    if (ret == 0 && (ret = store_bind_text(st, s, 1, serial)) == 0 &&
        (ret = store_step_row(st, s, "certificate by serial")) == 0)
        ret = cert_from_row(s, true, out);
    store_release(st, s);
    pthread_mutex_unlock(&st->lock);
    return ret;
}

/* RFC 5280 §5.3.1: CRLReason 0-10, 7 unused. */
static bool revocation_reason_ok(int reason)
{
    return reason >= 0 && reason <= 10 && reason != 7;
}

int store_cert_set_revoked(struct store *st, int64_t id, int reason, int64_t revoked_at,
                           const struct store_event_in *ev)
{
    if (!revocation_reason_ok(reason) || revoked_at <= 0 || !ev)
        return -EINVAL;

    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = NULL;
    int64_t domain_id = 0;
    bool was_active = false;
    int ret = store_tx_begin(st);
    if (ret < 0)
        goto unlock;
    ret = fetch_one(st, "SELECT domain_id, status FROM certificates WHERE id = ?1", id,
                    "get certificate", &s);
    if (ret < 0)
        goto finish;
    domain_id = sqlite3_column_int64(s, 0);
    const unsigned char *status = sqlite3_column_text(s, 1);
    was_active = status && strcmp((const char *)status, CERT_STATUS_ACTIVE) == 0;
    store_release(st, s);
    s = NULL;

    ret = store_prepare(st,
                        "UPDATE certificates SET status = '" CERT_STATUS_REVOKED "',"
                        " revoked_at = ?2, revocation_reason = ?3 WHERE id = ?1",
                        &s);
    if (ret < 0 || (ret = store_bind_int64(st, s, 1, id)) < 0 ||
        (ret = store_bind_int64(st, s, 2, revoked_at)) < 0 ||
        (ret = store_bind_int64(st, s, 3, reason)) < 0 ||
        (ret = store_step_done(st, s, "revoke certificate")) < 0)
        goto finish;
    /* "active" means "has a current certificate": without one the domain is back to pending
     * (a removed domain stays removed). */
    if (was_active)
        ret = exec_id_time(st,
                           "UPDATE domains SET status = '" DOMAIN_STATUS_PENDING "',"
                           " updated_at = ?2 WHERE id = ?1"
                           " AND status = '" DOMAIN_STATUS_ACTIVE "'",
                           domain_id, store_now(), "domain after revocation");
finish:
    ret = store_tx_finish(st, s, ret, ev);
unlock:
    pthread_mutex_unlock(&st->lock);
    return ret;
}

/* ---- renewal: reads that need the certificate row (the rest is in store_renewal.c) ---- */

int store_cert_get(struct store *st, int64_t cert_id, struct store_cert **out)
{
    sqlite3_stmt *s = NULL;
    *out = NULL;
    pthread_mutex_lock(&st->lock);
    int ret = fetch_one(st, "SELECT " CERT_COLUMNS ", chain_pem FROM certificates WHERE id = ?1",
                        cert_id, "get certificate", &s);
    if (ret == 0)
        ret = cert_from_row(s, true, out);
    store_release(st, s);
    pthread_mutex_unlock(&st->lock);
    return ret;
}

/* A certificate row (no chain) with its domain's name in CERT_COL_EXTRA. */
static int expiring_cert_row(sqlite3_stmt *s, void *item, void *ctx)
{
    struct store_cert **c = item;
    int ret = cert_row(s, item, ctx);
    if (ret == 0 && store_col_strdup(s, CERT_COL_EXTRA, &(*c)->domain) < 0) {
        store_cert_free(*c);
        ret = -ENOMEM;
    }
    return ret;
}

int store_cert_list_expiring(struct store *st, int64_t now, struct store_cert ***out,
                             size_t *count)
{
    struct store_rows rows = {0};

    *out = NULL;
    *count = 0;
    int ret = fetch_all(st,
                        "SELECT " CERT_COLUMNS ", (SELECT d.name FROM domains d"
                        " WHERE d.id = certificates.domain_id)" STORE_SQL_EXPIRING_LIST_FROM,
                        now, sizeof(struct store_cert *), expiring_cert_row,
                        "list expiring certificates", &rows);
    if (ret < 0) {
        store_cert_list_free(rows.items, rows.n);
        return ret;
    }
    *out = rows.items;
    *count = rows.n;
    return 0;
}
