/* ACME accounts (RFC 8555 §7.3), one per CA, and the cas rows they hang from. The account key
 * is a secret: it leaves the database only through store_account_get and is wiped on free. */
#include "store/store.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

#define ACCOUNT_COLUMNS                                                                            \
    "a.id, c.name, c.directory_url, a.key_type, a.account_url, a.status, a.contact,"               \
    " a.created_at, a.updated_at"
#define ACCOUNT_FROM " FROM accounts a JOIN cas c ON c.id = a.ca_id"

static bool text_ok(const char *s)
{
    return s && *s && strnlen(s, STORE_TEXT_MAX + 1) <= STORE_TEXT_MAX;
}

static bool pem_ok(const char *s)
{
    return s && *s && strnlen(s, STORE_PEM_MAX + 1) <= STORE_PEM_MAX;
}

/* RFC 8555 §7.1.2 account statuses, plus "pending" before newAccount succeeded; the schema's
 * CHECK would refuse anything else with a less useful -EIO. */
static bool status_ok(const char *s)
{
    static const char *const known[] = {"pending", "valid", "deactivated", "revoked"};
    for (size_t i = 0; s && i < sizeof(known) / sizeof(known[0]); i++) {
        if (strcmp(s, known[i]) == 0)
            return true;
    }
    return false;
}

/* The contact is sent back to the CA as is (RFC 8555 §7.3), so it must be a JSON array. */
static bool contact_ok(const char *s)
{
    size_t len = strnlen(s, STORE_TEXT_MAX + 1);
    if (len > STORE_TEXT_MAX)
        return false;
    json_t *j = json_loadb(s, len, JSON_REJECT_DUPLICATES, NULL);
    bool ok = json_is_array(j);
    json_decref(j);
    return ok;
}

void store_account_free(struct store_account *a)
{
    if (!a)
        return;
    if (a->key_pem) {
        explicit_bzero(a->key_pem, strlen(a->key_pem));
        free(a->key_pem);
    }
    free(a->ca);
    free(a->directory_url);
    free(a->key_type);
    free(a->account_url);
    free(a->status);
    free(a->contact_json);
    free(a);
}

void store_account_list_free(struct store_account **list, size_t count)
{
    if (!list)
        return;
    for (size_t i = 0; i < count; i++)
        store_account_free(list[i]);
    free(list);
}

/* A row of ACCOUNT_COLUMNS, plus key_pem as column 9 when WITH_KEY. */
static int account_from_row(sqlite3_stmt *s, bool with_key, struct store_account **out)
{
    struct store_account *a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    a->id = sqlite3_column_int64(s, 0);
    a->created_at = sqlite3_column_int64(s, 7);
    a->updated_at = sqlite3_column_int64(s, 8);
    if (store_col_strdup(s, 1, &a->ca) < 0 || store_col_strdup(s, 2, &a->directory_url) < 0 ||
        store_col_strdup(s, 3, &a->key_type) < 0 || store_col_strdup(s, 4, &a->account_url) < 0 ||
        store_col_strdup(s, 5, &a->status) < 0 || store_col_strdup(s, 6, &a->contact_json) < 0 ||
        (with_key && (store_col_strdup(s, 9, &a->key_pem) < 0 || !a->key_pem))) {
        store_account_free(a);
        return -ENOMEM;
    }
    *out = a;
    return 0;
}

/* A list row (no key) as a store_rows_collect converter. */
static int account_row(sqlite3_stmt *s, void *item, void *ctx)
{
    (void)ctx;
    return account_from_row(s, false, item);
}

int store_account_get(struct store *st, const char *ca, const char *directory_url,
                      struct store_account **out)
{
    sqlite3_stmt *s = NULL;

    *out = NULL;
    if (!ca || !directory_url)
        return -EINVAL;
    pthread_mutex_lock(&st->lock);
    /* The cas row follows the configuration, so an account registered against another
     * directory matches no row here. */
    int ret = store_prepare(st,
                            "SELECT " ACCOUNT_COLUMNS ", a.key_pem" ACCOUNT_FROM
                            " WHERE c.name = ?1 AND c.directory_url = ?2",
                            &s);
    if (ret == 0 && (ret = store_bind_text(st, s, 1, ca)) == 0 &&
        (ret = store_bind_text(st, s, 2, directory_url)) == 0 &&
        (ret = store_step_row(st, s, "get account")) == 0)
        ret = account_from_row(s, true, out);
    store_release(st, s);
    pthread_mutex_unlock(&st->lock);
    return ret;
}

/* Ensures the cas row NAME with DIRECTORY_URL (updating a changed URL); *ID_OUT its id. */
static int ca_ensure(struct store *st, const char *name, const char *directory_url, int64_t now,
                     int64_t *id_out)
{
    sqlite3_stmt *s = NULL;
    /* ON CONFLICT ... DO UPDATE is spelled the same in PostgreSQL. */
    int ret =
        store_prepare(st,
                      "INSERT INTO cas (name, directory_url, created_at) VALUES (?1, ?2, ?3)"
                      " ON CONFLICT (name) DO UPDATE SET directory_url = excluded.directory_url",
                      &s);
    if (ret < 0)
        return ret;
    if ((ret = store_bind_text(st, s, 1, name)) < 0 ||
        (ret = store_bind_text(st, s, 2, directory_url)) < 0 ||
        (ret = store_bind_int64(st, s, 3, now)) < 0 ||
        (ret = store_step_done(st, s, "ensure CA")) < 0)
        goto out;
    store_release(st, s);
    s = NULL;

    ret = store_prepare(st, "SELECT id FROM cas WHERE name = ?1", &s);
    if (ret < 0 || (ret = store_bind_text(st, s, 1, name)) < 0)
        goto out;
    ret = store_step_row(st, s, "get CA");
    if (ret == 0)
        *id_out = sqlite3_column_int64(s, 0);
    else if (ret == -ENOENT)
        ret = -EIO; /* the row was just ensured */
out:
    store_release(st, s);
    return ret;
}

/* Drops the account of CA_ID, if any. Its orders stay as history without an account: the
 * account is gone for certd, and a new one must never be mistaken for it. */
static int account_drop(struct store *st, int64_t ca_id)
{
    static const char *const sql[] = {
        "UPDATE orders SET account_id = NULL"
        " WHERE account_id IN (SELECT id FROM accounts WHERE ca_id = ?1)",
        /* secure_delete zeroes the freed pages, so the old key does not linger. */
        "DELETE FROM accounts WHERE ca_id = ?1",
    };
    int ret = 0;
    for (size_t i = 0; ret == 0 && i < sizeof(sql) / sizeof(sql[0]); i++) {
        sqlite3_stmt *s = NULL;
        ret = store_prepare(st, sql[i], &s);
        if (ret == 0 && (ret = store_bind_int64(st, s, 1, ca_id)) == 0)
            ret = store_step_done(st, s, "drop account");
        store_release(st, s);
    }
    return ret;
}

static int account_insert(struct store *st, int64_t ca_id, const struct store_account *a,
                          int64_t now)
{
    sqlite3_stmt *s = NULL;
    int ret = store_prepare(st,
                            "INSERT INTO accounts (ca_id, key_type, key_pem, account_url, status,"
                            " contact, created_at, updated_at)"
                            " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
                            &s);
    if (ret < 0)
        return ret;
    if ((ret = store_bind_int64(st, s, 1, ca_id)) < 0 ||
        (ret = store_bind_text(st, s, 2, a->key_type)) < 0 ||
        (ret = store_bind_text(st, s, 3, a->key_pem)) < 0 ||
        (ret = store_bind_text(st, s, 4, a->account_url)) < 0 ||
        (ret = store_bind_text(st, s, 5, a->status ? a->status : "pending")) < 0 ||
        (ret = store_bind_text(st, s, 6, a->contact_json)) < 0 ||
        (ret = store_bind_int64(st, s, 7, now)) < 0)
        goto out;
    ret = store_step_done(st, s, "insert account");
out:
    store_release(st, s);
    return ret;
}

int store_account_put(struct store *st, const struct store_account *a,
                      const struct store_event_in *ev)
{
    if (!a || !text_ok(a->ca) || !text_ok(a->directory_url) || !text_ok(a->key_type) ||
        !pem_ok(a->key_pem) || (a->status && !status_ok(a->status)) ||
        (a->account_url && !text_ok(a->account_url)) ||
        (a->contact_json && !contact_ok(a->contact_json)) || !ev)
        return -EINVAL;

    pthread_mutex_lock(&st->lock);
    int64_t now = store_now(), ca_id = 0;
    int ret = store_tx_begin(st);
    if (ret < 0)
        goto unlock;
    if ((ret = ca_ensure(st, a->ca, a->directory_url, now, &ca_id)) == 0 &&
        (ret = account_drop(st, ca_id)) == 0)
        ret = account_insert(st, ca_id, a, now);
    ret = store_tx_finish(st, NULL, ret, ev);
unlock:
    pthread_mutex_unlock(&st->lock);
    return ret;
}

int store_account_update(struct store *st, const char *ca, const char *account_url,
                         const char *status, const char *contact_json, const char *key_type,
                         const char *key_pem, const struct store_event_in *ev)
{
    if (!text_ok(ca) || (account_url && !text_ok(account_url)) || (status && !status_ok(status)) ||
        (contact_json && !contact_ok(contact_json)) ||
        (key_pem && (!pem_ok(key_pem) || !text_ok(key_type))) || (!key_pem && key_type) || !ev)
        return -EINVAL;

    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = NULL;
    int ret = store_tx_begin(st);
    if (ret < 0)
        goto unlock;
    ret = store_prepare(st,
                        "UPDATE accounts SET account_url = COALESCE(?2, account_url),"
                        " status = COALESCE(?3, status), contact = COALESCE(?4, contact),"
                        " key_type = COALESCE(?5, key_type), key_pem = COALESCE(?6, key_pem),"
                        " updated_at = ?7 WHERE ca_id = (SELECT id FROM cas WHERE name = ?1)",
                        &s);
    if (ret == 0 && (ret = store_bind_text(st, s, 1, ca)) == 0 &&
        (ret = store_bind_text(st, s, 2, account_url)) == 0 &&
        (ret = store_bind_text(st, s, 3, status)) == 0 &&
        (ret = store_bind_text(st, s, 4, contact_json)) == 0 &&
        (ret = store_bind_text(st, s, 5, key_type)) == 0 &&
        (ret = store_bind_text(st, s, 6, key_pem)) == 0 &&
        (ret = store_bind_int64(st, s, 7, store_now())) == 0)
        ret = store_step_changed(st, s, "update account");
    ret = store_tx_finish(st, s, ret, ev);
unlock:
    pthread_mutex_unlock(&st->lock);
    return ret;
}

int store_account_list(struct store *st, struct store_account ***out, size_t *count)
{
    struct store_rows rows = {0};
    sqlite3_stmt *s = NULL;

    *out = NULL;
    *count = 0;
    pthread_mutex_lock(&st->lock);
    int ret = store_prepare(st, "SELECT " ACCOUNT_COLUMNS ACCOUNT_FROM " ORDER BY c.name", &s);
    if (ret == 0)
        ret = store_rows_collect(st, s, &rows, sizeof(struct store_account *), account_row, NULL,
                                 "list accounts");
    store_release(st, s);
    pthread_mutex_unlock(&st->lock);
    if (ret < 0) {
        store_account_list_free(rows.items, rows.n);
        return ret;
    }
    *out = rows.items;
    *count = rows.n;
    return 0;
}
