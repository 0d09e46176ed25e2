/* API tokens (schema 5): rows keyed by the token's public id. Only a salted hash of the secret
 * ever reaches this file. */
#include "store/store.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

#define TOKEN_COLUMNS                                                                              \
    "id, name, role, scope_json, salt, hash, created_at, expires_at, revoked_at, last_used_at"

static bool text_ok(const char *s)
{
    return s && *s && strnlen(s, STORE_TEXT_MAX + 1) <= STORE_TEXT_MAX;
}

static bool role_ok(const char *s)
{
    return s && (strcmp(s, TOKEN_ROLE_ADMIN) == 0 || strcmp(s, TOKEN_ROLE_DEPLOYER) == 0 ||
                 strcmp(s, TOKEN_ROLE_READER) == 0);
}

/* The API reads the scope back as an array of strings on every request: nothing else may get in. */
static bool scope_ok(const char *s)
{
    size_t len = strnlen(s, STORE_JSON_MAX + 1);
    if (len > STORE_JSON_MAX)
        return false;
    json_t *j = json_loadb(s, len, JSON_REJECT_DUPLICATES, NULL);
    bool ok = json_is_array(j);
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v)
    {
        if (!json_is_string(v))
            ok = false;
    }
    json_decref(j);
    return ok;
}

uint64_t store_token_generation(struct store *st)
{
    return st->token_generation;
}

void store_token_free(struct store_token *t)
{
    if (!t)
        return;
    free(t->id);
    free(t->name);
    free(t->role);
    free(t->scope_json);
    free(t->salt);
    free(t->hash);
    free(t);
}

void store_token_list_free(struct store_token **list, size_t count)
{
    if (!list)
        return;
    for (size_t i = 0; i < count; i++)
        store_token_free(list[i]);
    free(list);
}

static int token_from_row(sqlite3_stmt *s, struct store_token **out)
{
    struct store_token *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->created_at = sqlite3_column_int64(s, 6);
    t->expires_at = sqlite3_column_int64(s, 7);
    t->revoked_at = sqlite3_column_int64(s, 8);
    t->last_used_at = sqlite3_column_int64(s, 9);
    if (store_col_strdup(s, 0, &t->id) < 0 || store_col_strdup(s, 1, &t->name) < 0 ||
        store_col_strdup(s, 2, &t->role) < 0 || store_col_strdup(s, 3, &t->scope_json) < 0 ||
        store_col_strdup(s, 4, &t->salt) < 0 || store_col_strdup(s, 5, &t->hash) < 0 || !t->id ||
        !t->name || !t->role || !t->salt || !t->hash) {
        store_token_free(t);
        return -ENOMEM;
    }
    *out = t;
    return 0;
}

/* token_from_row as a store_rows_collect converter. */
static int token_row(sqlite3_stmt *s, void *item, void *ctx)
{
    (void)ctx;
    return token_from_row(s, item);
}

int store_token_add(struct store *st, const struct store_token *t, const struct store_event_in *ev)
{
    if (!t || !text_ok(t->id) || !text_ok(t->name) || !role_ok(t->role) || !text_ok(t->salt) ||
        !text_ok(t->hash) || (t->scope_json && !scope_ok(t->scope_json)) || t->expires_at < 0)
        return -EINVAL;

    sqlite3_stmt *s = NULL;
    pthread_mutex_lock(&st->lock);
    int ret = store_tx_begin(st);
    if (ret < 0)
        goto out;
    ret = store_prepare(st,
                        "INSERT INTO tokens (id, name, role, scope_json, salt, hash, created_at,"
                        " expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        &s);
    if (ret < 0)
        goto out;
    if ((ret = store_bind_text(st, s, 1, t->id)) < 0 ||
        (ret = store_bind_text(st, s, 2, t->name)) < 0 ||
        (ret = store_bind_text(st, s, 3, t->role)) < 0 ||
        (ret = store_bind_text(st, s, 4, t->scope_json)) < 0 ||
        (ret = store_bind_text(st, s, 5, t->salt)) < 0 ||
        (ret = store_bind_text(st, s, 6, t->hash)) < 0 ||
        (ret = store_bind_int64(st, s, 7, store_now())) < 0 ||
        (ret = store_bind_time(st, s, 8, t->expires_at)) < 0 ||
        (ret = store_step_done(st, s, "add token")) < 0)
        goto out;
    if ((ret = store_event_insert(st, ev, NULL)) < 0)
        goto out;
    if ((ret = store_tx_commit(st)) == 0)
        st->token_generation++;
out:
    store_release(st, s);
    if (ret < 0)
        store_tx_rollback(st);
    pthread_mutex_unlock(&st->lock);
    return ret;
}

int store_token_get(struct store *st, const char *id, struct store_token **out)
{
    sqlite3_stmt *s = NULL;
    *out = NULL;
    if (!text_ok(id))
        return -EINVAL;
    pthread_mutex_lock(&st->lock);
    int ret = store_prepare(st, "SELECT " TOKEN_COLUMNS " FROM tokens WHERE id = ?1", &s);
    if (ret == 0 && (ret = store_bind_text(st, s, 1, id)) == 0 &&
        (ret = store_step_row(st, s, "get token")) == 0)
        ret = token_from_row(s, out);
    store_release(st, s);
    pthread_mutex_unlock(&st->lock);
    return ret;
}

int store_token_list(struct store *st, struct store_token ***out, size_t *count)
{
    struct store_rows rows = {0};
    sqlite3_stmt *s = NULL;

    *out = NULL;
    *count = 0;
    pthread_mutex_lock(&st->lock);
    int ret =
        store_prepare(st, "SELECT " TOKEN_COLUMNS " FROM tokens ORDER BY created_at, name, id", &s);
    if (ret == 0)
        ret = store_rows_collect(st, s, &rows, sizeof(struct store_token *), token_row, NULL,
                                 "list tokens");
    store_release(st, s);
    pthread_mutex_unlock(&st->lock);
    if (ret < 0) {
        store_token_list_free(rows.items, rows.n);
        return ret;
    }
    *out = rows.items;
    *count = rows.n;
    return 0;
}

int store_token_revoke(struct store *st, const char *id, int64_t revoked_at,
                       const struct store_event_in *ev)
{
    if (!text_ok(id) || revoked_at <= 0)
        return -EINVAL;
    sqlite3_stmt *s = NULL;
    pthread_mutex_lock(&st->lock);
    int ret = store_tx_begin(st);
    if (ret < 0)
        goto out;
    ret = store_prepare(
        st, "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL", &s);
    if (ret < 0 || (ret = store_bind_text(st, s, 1, id)) < 0 ||
        (ret = store_bind_int64(st, s, 2, revoked_at)) < 0 ||
        (ret = store_step_done(st, s, "revoke token")) < 0)
        goto out;
    if (sqlite3_changes(st->db) == 0) {
        bool exists = false;
        store_release(st, s);
        s = NULL;
        ret = store_prepare(st, "SELECT 1 FROM tokens WHERE id = ?1", &s);
        if (ret < 0 || (ret = store_bind_text(st, s, 1, id)) < 0)
            goto out;
        int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW)
            exists = true;
        else if (rc != SQLITE_DONE) {
            ret = store_db_error(st, rc, "find token");
            goto out;
        }
        ret = exists ? -EALREADY : -ENOENT;
        goto out;
    }
    if ((ret = store_event_insert(st, ev, NULL)) < 0)
        goto out;
    if ((ret = store_tx_commit(st)) == 0)
        st->token_generation++;
out:
    store_release(st, s);
    if (ret < 0)
        store_tx_rollback(st);
    pthread_mutex_unlock(&st->lock);
    return ret;
}

int store_token_touch(struct store *st, const char *id, int64_t when)
{
    if (!text_ok(id) || when <= 0)
        return -EINVAL;
    sqlite3_stmt *s = NULL;
    pthread_mutex_lock(&st->lock);
    int ret = store_prepare(st, "UPDATE tokens SET last_used_at = ?2 WHERE id = ?1", &s);
    if (ret == 0 && (ret = store_bind_text(st, s, 1, id)) == 0 &&
        (ret = store_bind_int64(st, s, 2, when)) == 0)
        ret = store_step_changed(st, s, "touch token");
    store_release(st, s);
    pthread_mutex_unlock(&st->lock);
    return ret;
}
