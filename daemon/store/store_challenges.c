/* Challenge responses (RFC 8555 §8) certd published for an order. Recorded before publishing,
 * forgotten after withdrawing, so whatever a crash left published can be found and withdrawn. */
#include "store/store.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

#define CHALLENGE_COLUMNS "id, order_id, type, identifier, token, key_authorization, created_at"

static bool text_ok(const char *s)
{
    return s && *s && strnlen(s, STORE_TEXT_MAX + 1) <= STORE_TEXT_MAX;
}

static void challenge_free(struct store_challenge *c)
{
    if (!c)
        return;
    free(c->type);
    free(c->identifier);
    free(c->token);
    free(c->key_authorization);
    free(c);
}

void store_challenge_list_free(struct store_challenge **list, size_t count)
{
    if (!list)
        return;
    for (size_t i = 0; i < count; i++)
        challenge_free(list[i]);
    free(list);
}

int store_challenge_add(struct store *st, const struct store_challenge *c, int64_t *id_out)
{
    if (!c || c->order_id <= 0 || !text_ok(c->type) || !text_ok(c->identifier) ||
        !text_ok(c->token) || !text_ok(c->key_authorization))
        return -EINVAL;

    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = NULL;
    /* One statement, so it is atomic on its own; a missing order inserts nothing (-ENOENT)
     * instead of tripping the foreign key. */
    int ret = store_prepare(st,
                            "INSERT INTO challenges (order_id, type, identifier, token,"
                            " key_authorization, created_at)"
                            " SELECT ?1, ?2, ?3, ?4, ?5, ?6"
                            " WHERE EXISTS (SELECT 1 FROM orders WHERE id = ?1)",
                            &s);
    if (ret == 0 && (ret = store_bind_int64(st, s, 1, c->order_id)) == 0 &&
        (ret = store_bind_text(st, s, 2, c->type)) == 0 &&
        (ret = store_bind_text(st, s, 3, c->identifier)) == 0 &&
        (ret = store_bind_text(st, s, 4, c->token)) == 0 &&
        (ret = store_bind_text(st, s, 5, c->key_authorization)) == 0 &&
        (ret = store_bind_int64(st, s, 6, store_now())) == 0 &&
        (ret = store_step_changed(st, s, "insert challenge")) == 0 && id_out)
        *id_out = sqlite3_last_insert_rowid(st->db);
    store_release(st, s);
    pthread_mutex_unlock(&st->lock);
    return ret;
}

int store_challenge_delete(struct store *st, int64_t id)
{
    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = NULL;
    int ret = store_prepare(st, "DELETE FROM challenges WHERE id = ?1", &s);
    if (ret == 0 && (ret = store_bind_int64(st, s, 1, id)) == 0)
        ret = store_step_changed(st, s, "delete challenge");
    store_release(st, s);
    pthread_mutex_unlock(&st->lock);
    return ret;
}

static int challenge_from_row(sqlite3_stmt *s, struct store_challenge **out)
{
    struct store_challenge *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->id = sqlite3_column_int64(s, 0);
    c->order_id = sqlite3_column_int64(s, 1);
    c->created_at = sqlite3_column_int64(s, 6);
    if (store_col_strdup(s, 2, &c->type) < 0 || store_col_strdup(s, 3, &c->identifier) < 0 ||
        store_col_strdup(s, 4, &c->token) < 0 ||
        store_col_strdup(s, 5, &c->key_authorization) < 0) {
        challenge_free(c);
        return -ENOMEM;
    }
    *out = c;
    return 0;
}

/* challenge_from_row as a store_rows_collect converter. */
static int challenge_row(sqlite3_stmt *s, void *item, void *ctx)
{
    (void)ctx;
    return challenge_from_row(s, item);
}

int store_challenge_list(struct store *st, int64_t order_id, struct store_challenge ***out,
                         size_t *count)
{
    struct store_rows rows = {0};
    sqlite3_stmt *s = NULL;

    *out = NULL;
    *count = 0;
    pthread_mutex_lock(&st->lock);
    /* Two statements rather than "?1 = 0 OR order_id = ?1", which would keep the planner from
     * using challenges_order_id. */
    int ret = store_prepare(st,
                            order_id ? "SELECT " CHALLENGE_COLUMNS " FROM challenges"
                                       " WHERE order_id = ?1 ORDER BY id"
                                     : "SELECT " CHALLENGE_COLUMNS " FROM challenges ORDER BY id",
                            &s);
    if (ret == 0 && (!order_id || (ret = store_bind_int64(st, s, 1, order_id)) == 0))
        ret = store_rows_collect(st, s, &rows, sizeof(struct store_challenge *), challenge_row,
                                 NULL, "list challenges");
    store_release(st, s);
    pthread_mutex_unlock(&st->lock);
    if (ret < 0) {
        store_challenge_list_free(rows.items, rows.n);
        return ret;
    }
    *out = rows.items;
    *count = rows.n;
    return 0;
}

int store_challenge_find_token(struct store *st, const char *token, char **key_auth_out)
{
    *key_auth_out = NULL;
    if (!token)
        return -EINVAL;
    if (!text_ok(token))
        return -ENOENT; /* nothing so long (or empty) was ever recorded */

    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = NULL;
    /* Only http-01 responses are served by token (a dns-01 row holds a TXT value), and only
     * while their order is live: a finished order's leftover must not validate anything. */
    int ret = store_prepare(st,
                            "SELECT c.key_authorization FROM challenges c"
                            " JOIN orders o ON o.id = c.order_id"
                            " WHERE c.token = ?1 AND c.type = 'http-01' AND o.finished = 0"
                            " ORDER BY c.id DESC LIMIT 1",
                            &s);
    if (ret == 0 && (ret = store_bind_text(st, s, 1, token)) == 0 &&
        (ret = store_step_row(st, s, "find challenge token")) == 0)
        ret = store_col_strdup(s, 0, key_auth_out) < 0 || !*key_auth_out ? -ENOMEM : 0;
    store_release(st, s);
    pthread_mutex_unlock(&st->lock);
    return ret;
}
