/* ACME orders (RFC 8555 §7.4): written at every step, so a restarted daemon resumes an order
 * where it stopped instead of asking the CA for another one. */
#include "store/store.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

#define ORDER_COLUMNS                                                                              \
    "id, domain_id, account_id, ca, url, status, step, finalize_url, certificate_url, key_id,"     \
    " names, error_json, replaces, created_at, updated_at, expires_at, finished"

/* Optional text: NULL, or non-empty and within the store's limit. */
static bool opt_text_ok(const char *s)
{
    return !s || (*s && strnlen(s, STORE_TEXT_MAX + 1) <= STORE_TEXT_MAX);
}

/* RFC 8555 §7.1.6 order statuses, plus "new" before the CA knows the order. */
static bool status_ok(const char *s)
{
    static const char *const known[] = {"new",        "pending", "ready",
                                        "processing", "valid",   "invalid"};
    for (size_t i = 0; s && i < sizeof(known) / sizeof(known[0]); i++) {
        if (strcmp(s, known[i]) == 0)
            return true;
    }
    return false;
}

/* The ordered names come back as the identifiers of a resumed order, so they must parse. */
static bool names_ok(const char *s)
{
    if (!s)
        return false;
    size_t len = strnlen(s, STORE_JSON_MAX + 1);
    if (len > STORE_JSON_MAX)
        return false;
    json_t *j = json_loadb(s, len, JSON_REJECT_DUPLICATES, NULL);
    bool ok = json_is_array(j) && json_array_size(j) > 0;
    json_decref(j);
    return ok;
}

/* The CA's problem document is kept verbatim (it is shown, not interpreted): only capped. */
static bool error_ok(const char *s)
{
    return !s || (*s && strnlen(s, STORE_JSON_MAX + 1) <= STORE_JSON_MAX);
}

/* What store_order_update writes; creation checks the fixed fields on top. */
static bool mutable_ok(const struct store_order *o)
{
    return o->account_id >= 0 && o->key_id > 0 && o->expires_at >= 0 && opt_text_ok(o->url) &&
           opt_text_ok(o->step) && opt_text_ok(o->finalize_url) &&
           opt_text_ok(o->certificate_url) && error_ok(o->error_json);
}

void store_order_free(struct store_order *o)
{
    if (!o)
        return;
    free(o->ca);
    free(o->url);
    free(o->status);
    free(o->step);
    free(o->finalize_url);
    free(o->certificate_url);
    free(o->names_json);
    free(o->error_json);
    free(o->replaces);
    free(o);
}

void store_order_list_free(struct store_order **list, size_t count)
{
    if (!list)
        return;
    for (size_t i = 0; i < count; i++)
        store_order_free(list[i]);
    free(list);
}

static int order_from_row(sqlite3_stmt *s, struct store_order **out)
{
    struct store_order *o = calloc(1, sizeof(*o));
    if (!o)
        return -ENOMEM;
    o->id = sqlite3_column_int64(s, 0);
    o->domain_id = sqlite3_column_int64(s, 1);
    o->account_id = sqlite3_column_int64(s, 2); /* NULL reads as 0, "not known" */
    o->key_id = sqlite3_column_int64(s, 9);
    o->created_at = sqlite3_column_int64(s, 13);
    o->updated_at = sqlite3_column_int64(s, 14);
    o->expires_at = sqlite3_column_int64(s, 15);
    o->finished = sqlite3_column_int64(s, 16) != 0;
    if (store_col_strdup(s, 3, &o->ca) < 0 || store_col_strdup(s, 4, &o->url) < 0 ||
        store_col_strdup(s, 5, &o->status) < 0 || store_col_strdup(s, 6, &o->step) < 0 ||
        store_col_strdup(s, 7, &o->finalize_url) < 0 ||
        store_col_strdup(s, 8, &o->certificate_url) < 0 ||
        store_col_strdup(s, 10, &o->names_json) < 0 ||
        store_col_strdup(s, 11, &o->error_json) < 0 || store_col_strdup(s, 12, &o->replaces) < 0) {
        store_order_free(o);
        return -ENOMEM;
    }
    *out = o;
    return 0;
}

/* order_from_row as a store_rows_collect converter. */
static int order_row(sqlite3_stmt *s, void *item, void *ctx)
{
    (void)ctx;
    return order_from_row(s, item);
}

/* -EINVAL unless KEY_ID is a key of DOMAIN_ID and ACCOUNT_ID (when not 0) an account: a CSR
 * made with another domain's key would hand that key to this lineage. */
static int refs_check(struct store *st, int64_t domain_id, int64_t key_id, int64_t account_id)
{
    bool ok = false;
    int ret = store_row_exists(st, "SELECT 1 FROM private_keys WHERE id = ?1 AND domain_id = ?2",
                               key_id, domain_id, "check order key", &ok);
    if (ret == 0 && !ok)
        ret = -EINVAL;
    if (ret == 0 && account_id) {
        ret = store_row_exists(st, "SELECT 1 FROM accounts WHERE id = ?1", account_id, 0,
                               "check order account", &ok);
        if (ret == 0 && !ok)
            ret = -EINVAL;
    }
    return ret;
}

static int order_insert(struct store *st, const struct store_order *o, int64_t now, int64_t *id_out)
{
    sqlite3_stmt *s = NULL;
    int ret = store_prepare(st,
                            "INSERT INTO orders (domain_id, account_id, ca, url, status, step,"
                            " finalize_url, certificate_url, key_id, names, replaces, created_at,"
                            " updated_at, expires_at, finished)"
                            " VALUES (?1, ?2, ?3, ?4, 'new', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11,"
                            " ?12, 0)",
                            &s);
    if (ret < 0)
        return ret;
    if ((ret = store_bind_int64(st, s, 1, o->domain_id)) < 0 ||
        (ret = store_bind_id(st, s, 2, o->account_id)) < 0 ||
        (ret = store_bind_text(st, s, 3, o->ca)) < 0 ||
        (ret = store_bind_text(st, s, 4, o->url)) < 0 ||
        (ret = store_bind_text(st, s, 5, o->step)) < 0 ||
        (ret = store_bind_text(st, s, 6, o->finalize_url)) < 0 ||
        (ret = store_bind_text(st, s, 7, o->certificate_url)) < 0 ||
        (ret = store_bind_int64(st, s, 8, o->key_id)) < 0 ||
        (ret = store_bind_text(st, s, 9, o->names_json)) < 0 ||
        (ret = store_bind_text(st, s, 10, o->replaces)) < 0 ||
        (ret = store_bind_int64(st, s, 11, now)) < 0 ||
        (ret = store_bind_time(st, s, 12, o->expires_at)) < 0)
        goto out;
    ret = store_step_done(st, s, "insert order");
    if (ret == 0)
        *id_out = sqlite3_last_insert_rowid(st->db);
out:
    store_release(st, s);
    return ret;
}

int store_order_create(struct store *st, const struct store_order *o,
                       const struct store_event_in *ev, int64_t *id_out)
{
    if (!o || o->domain_id <= 0 || !o->ca || !opt_text_ok(o->ca) || !names_ok(o->names_json) ||
        !opt_text_ok(o->replaces) || !mutable_ok(o) || !ev)
        return -EINVAL;

    pthread_mutex_lock(&st->lock);
    int64_t id = 0;
    int ret = store_tx_begin(st);
    if (ret < 0)
        goto unlock;
    if ((ret = store_domain_check_managed(st, o->domain_id, NULL)) == 0 &&
        (ret = refs_check(st, o->domain_id, o->key_id, o->account_id)) == 0)
        ret = order_insert(st, o, store_now(), &id);
    ret = store_tx_finish(st, NULL, ret, ev);
    if (ret == 0 && id_out)
        *id_out = id;
unlock:
    pthread_mutex_unlock(&st->lock);
    return ret;
}

/* The domain of ORDER_ID; -ENOENT when there is no such order. */
static int order_domain(struct store *st, int64_t order_id, int64_t *domain_id)
{
    sqlite3_stmt *s = NULL;
    int ret = store_prepare(st, "SELECT domain_id FROM orders WHERE id = ?1", &s);
    if (ret < 0)
        return ret;
    if ((ret = store_bind_int64(st, s, 1, order_id)) == 0 &&
        (ret = store_step_row(st, s, "get order domain")) == 0)
        *domain_id = sqlite3_column_int64(s, 0);
    store_release(st, s);
    return ret;
}

static int order_write(struct store *st, const struct store_order *o, int64_t now)
{
    sqlite3_stmt *s = NULL;
    int ret = store_prepare(st,
                            "UPDATE orders SET account_id = ?2, url = ?3, status = ?4, step = ?5,"
                            " finalize_url = ?6, certificate_url = ?7, key_id = ?8,"
                            " error_json = ?9, expires_at = ?10, finished = ?11, updated_at = ?12"
                            " WHERE id = ?1",
                            &s);
    if (ret < 0)
        return ret;
    if ((ret = store_bind_int64(st, s, 1, o->id)) < 0 ||
        (ret = store_bind_id(st, s, 2, o->account_id)) < 0 ||
        (ret = store_bind_text(st, s, 3, o->url)) < 0 ||
        (ret = store_bind_text(st, s, 4, o->status)) < 0 ||
        (ret = store_bind_text(st, s, 5, o->step)) < 0 ||
        (ret = store_bind_text(st, s, 6, o->finalize_url)) < 0 ||
        (ret = store_bind_text(st, s, 7, o->certificate_url)) < 0 ||
        (ret = store_bind_int64(st, s, 8, o->key_id)) < 0 ||
        (ret = store_bind_text(st, s, 9, o->error_json)) < 0 ||
        (ret = store_bind_time(st, s, 10, o->expires_at)) < 0 ||
        (ret = store_bind_int64(st, s, 11, o->finished ? 1 : 0)) < 0 ||
        (ret = store_bind_int64(st, s, 12, now)) < 0)
        goto out;
    ret = store_step_done(st, s, "update order");
out:
    store_release(st, s);
    return ret;
}

int store_order_update(struct store *st, const struct store_order *o,
                       const struct store_event_in *ev)
{
    if (!o || o->id <= 0 || !status_ok(o->status) || !mutable_ok(o))
        return -EINVAL;

    pthread_mutex_lock(&st->lock);
    int64_t domain_id = 0;
    int ret = store_tx_begin(st);
    if (ret < 0)
        goto unlock;
    if ((ret = order_domain(st, o->id, &domain_id)) == 0 &&
        (ret = refs_check(st, domain_id, o->key_id, o->account_id)) == 0)
        ret = order_write(st, o, store_now());
    ret = store_tx_finish(st, NULL, ret, ev);
unlock:
    pthread_mutex_unlock(&st->lock);
    return ret;
}

/* Fetches the single order SQL (one int64 parameter) selects; -ENOENT when there is none. */
static int order_fetch(struct store *st, const char *sql, int64_t param, const char *what,
                       struct store_order **out)
{
    sqlite3_stmt *s = NULL;

    *out = NULL;
    pthread_mutex_lock(&st->lock);
    int ret = store_prepare(st, sql, &s);
    if (ret == 0 && (ret = store_bind_int64(st, s, 1, param)) == 0 &&
        (ret = store_step_row(st, s, what)) == 0)
        ret = order_from_row(s, out);
    store_release(st, s);
    pthread_mutex_unlock(&st->lock);
    return ret;
}

/* Newest by id: ids only grow, whereas created_at follows a clock that can step back. */
int store_order_latest(struct store *st, int64_t domain_id, struct store_order **out)
{
    return order_fetch(st,
                       "SELECT " ORDER_COLUMNS " FROM orders WHERE domain_id = ?1"
                       " ORDER BY id DESC LIMIT 1",
                       domain_id, "latest order", out);
}

int store_order_get(struct store *st, int64_t order_id, struct store_order **out)
{
    return order_fetch(st, "SELECT " ORDER_COLUMNS " FROM orders WHERE id = ?1", order_id,
                       "get order", out);
}

int store_order_list_unfinished(struct store *st, struct store_order ***out, size_t *count)
{
    struct store_rows rows = {0};
    sqlite3_stmt *s = NULL;

    *out = NULL;
    *count = 0;
    pthread_mutex_lock(&st->lock);
    /* Served by the partial index orders_unfinished. */
    int ret = store_prepare(
        st, "SELECT " ORDER_COLUMNS " FROM orders WHERE finished = 0 ORDER BY id", &s);
    if (ret == 0)
        ret = store_rows_collect(st, s, &rows, sizeof(struct store_order *), order_row, NULL,
                                 "list unfinished orders");
    store_release(st, s);
    pthread_mutex_unlock(&st->lock);
    if (ret < 0) {
        store_order_list_free(rows.items, rows.n);
        return ret;
    }
    *out = rows.items;
    *count = rows.n;
    return 0;
}
