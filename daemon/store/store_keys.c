/* Private keys and certificates of a domain. Key PEM leaves the database only through
 * store_key_get_pem, and is wiped when the struct holding it is freed. */
#include "store/store.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

#define KEY_COLUMNS "id, domain_id, key_type, public_key_sha256, status, created_at"
#define CERT_COLUMNS                                                                               \
    "id, domain_id, key_id, serial, not_before, not_after, issuer, fingerprint_sha256, status,"    \
    " created_at, revoked_at"

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

/* A row of CERT_COLUMNS, plus chain_pem as column 11 when WITH_CHAIN. */
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
    if (store_col_strdup(s, 3, &c->serial) < 0 || store_col_strdup(s, 6, &c->issuer) < 0 ||
        store_col_strdup(s, 7, &c->fingerprint_sha256) < 0 ||
        store_col_strdup(s, 8, &c->status) < 0 ||
        (with_chain && store_col_strdup(s, 11, &c->chain_pem) < 0)) {
        store_cert_free(c);
        return -ENOMEM;
    }
    *out = c;
    return 0;
}

/* Fetches the single row SQL (one int64 parameter) selects; -ENOENT when there is none. */
static int fetch_one(struct store *st, const char *sql, int64_t param, const char *what,
                     sqlite3_stmt **out)
{
    int ret = store_prepare(st, sql, out);
    if (ret < 0)
        return ret;
    if ((ret = store_bind_int64(st, *out, 1, param)) < 0)
        goto fail;
    int rc = sqlite3_step(*out);
    if (rc == SQLITE_ROW)
        return 0;
    ret = rc == SQLITE_DONE ? -ENOENT : store_db_error(st, rc, what);
fail:
    sqlite3_finalize(*out);
    *out = NULL;
    return ret;
}

/* Newest first: ids only grow, whereas created_at follows a clock that can step back. */
int store_key_list(struct store *st, int64_t domain_id, struct store_key ***out, size_t *count)
{
    struct store_key **list = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *s = NULL;

    *out = NULL;
    *count = 0;
    pthread_mutex_lock(&st->lock);
    int ret = store_prepare(st,
                            "SELECT " KEY_COLUMNS " FROM private_keys WHERE domain_id = ?1"
                            " ORDER BY id DESC",
                            &s);
    if (ret < 0 || (ret = store_bind_int64(st, s, 1, domain_id)) < 0)
        goto out;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_key **nl = store_list_grow(list, &cap, n, sizeof(*list));
        if (!nl) {
            ret = -ENOMEM;
            goto out;
        }
        list = nl;
        if ((ret = key_from_row(s, false, &list[n])) < 0)
            goto out;
        n++;
    }
    if (rc != SQLITE_DONE) {
        ret = store_db_error(st, rc, "list keys");
        goto out;
    }
    *out = list;
    *count = n;
    list = NULL;
    n = 0;
out:
    sqlite3_finalize(s);
    pthread_mutex_unlock(&st->lock);
    store_key_list_free(list, n);
    return ret;
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
    sqlite3_finalize(s);
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
    sqlite3_finalize(s);
    pthread_mutex_unlock(&st->lock);
    return ret;
}

int store_cert_list(struct store *st, int64_t domain_id, struct store_cert ***out, size_t *count)
{
    struct store_cert **list = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *s = NULL;

    *out = NULL;
    *count = 0;
    pthread_mutex_lock(&st->lock);
    int ret = store_prepare(st,
                            "SELECT " CERT_COLUMNS " FROM certificates WHERE domain_id = ?1"
                            " ORDER BY id DESC",
                            &s);
    if (ret < 0 || (ret = store_bind_int64(st, s, 1, domain_id)) < 0)
        goto out;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_cert **nl = store_list_grow(list, &cap, n, sizeof(*list));
        if (!nl) {
            ret = -ENOMEM;
            goto out;
        }
        list = nl;
        if ((ret = cert_from_row(s, false, &list[n])) < 0)
            goto out;
        n++;
    }
    if (rc != SQLITE_DONE) {
        ret = store_db_error(st, rc, "list certificates");
        goto out;
    }
    *out = list;
    *count = n;
    list = NULL;
    n = 0;
out:
    sqlite3_finalize(s);
    pthread_mutex_unlock(&st->lock);
    store_cert_list_free(list, n);
    return ret;
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
    sqlite3_finalize(s);
    pthread_mutex_unlock(&st->lock);
    return ret;
}
