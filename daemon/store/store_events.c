/* The audit log: append-only (the schema refuses UPDATE; the only DELETE is store_events_prune,
 * by age), ids never reused. */
#include "store/store.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

static bool text_ok(const char *s, bool required)
{
    if (!s)
        return !required;
    return *s && strnlen(s, STORE_TEXT_MAX + 1) <= STORE_TEXT_MAX;
}

/* The feed hands detail_json to clients as a JSON value, so anything else must not get in. */
static bool detail_ok(const char *detail)
{
    if (!detail)
        return true;
    size_t len = strnlen(detail, STORE_EVENT_DETAIL_MAX + 1);
    if (len > STORE_EVENT_DETAIL_MAX)
        return false;
    json_t *j = json_loadb(detail, len, JSON_REJECT_DUPLICATES, NULL);
    bool ok = json_is_object(j);
    json_decref(j);
    return ok;
}

int store_event_insert(struct store *st, const struct store_event_in *ev, int64_t *id_out)
{
    if (!ev || !text_ok(ev->type, true) || !text_ok(ev->actor, true) ||
        !text_ok(ev->domain, false) || !detail_ok(ev->detail_json))
        return -EINVAL;

    sqlite3_stmt *s = NULL;
    int ret = store_prepare(st,
                            "INSERT INTO events (created_at, type, domain, actor, detail_json)"
                            " VALUES (?1, ?2, ?3, ?4, ?5)",
                            &s);
    if (ret < 0)
        return ret;
    if ((ret = store_bind_int64(st, s, 1, store_now())) < 0 ||
        (ret = store_bind_text(st, s, 2, ev->type)) < 0 ||
        (ret = store_bind_text(st, s, 3, ev->domain)) < 0 ||
        (ret = store_bind_text(st, s, 4, ev->actor)) < 0 ||
        (ret = store_bind_text(st, s, 5, ev->detail_json ? ev->detail_json : "{}")) < 0)
        goto out;
    ret = store_step_done(st, s, "insert event");
    if (ret == 0) {
        int64_t id = sqlite3_last_insert_rowid(st->db);
        if (id_out)
            *id_out = id;
        if (id > st->pending_event_id)
            st->pending_event_id = id;
        /* Outside a transaction the insert has committed already. */
        if (sqlite3_get_autocommit(st->db))
            store_events_committed(st);
    }
out:
    store_release(st, s);
    return ret;
}

int store_event_add(struct store *st, const struct store_event_in *ev, int64_t *id_out)
{
    pthread_mutex_lock(&st->lock);
    /* A single INSERT is its own transaction. */
    int ret = store_event_insert(st, ev, id_out);
    pthread_mutex_unlock(&st->lock);
    return ret;
}

static void event_free(struct store_event *e)
{
    if (!e)
        return;
    free(e->type);
    free(e->domain);
    free(e->actor);
    free(e->detail_json);
    free(e);
}

void store_event_list_free(struct store_event **list, size_t count)
{
    if (!list)
        return;
    for (size_t i = 0; i < count; i++)
        event_free(list[i]);
    free(list);
}

static int event_from_row(sqlite3_stmt *s, struct store_event **out)
{
    struct store_event *e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->id = sqlite3_column_int64(s, 0);
    e->created_at = sqlite3_column_int64(s, 1);
    if (store_col_strdup(s, 2, &e->type) < 0 || store_col_strdup(s, 3, &e->domain) < 0 ||
        store_col_strdup(s, 4, &e->actor) < 0 || store_col_strdup(s, 5, &e->detail_json) < 0 ||
        !e->type || !e->actor || !e->detail_json) {
        event_free(e);
        return -ENOMEM;
    }
    *out = e;
    return 0;
}

/* event_from_row as a store_rows_collect converter. */
static int event_row(sqlite3_stmt *s, void *item, void *ctx)
{
    (void)ctx;
    return event_from_row(s, item);
}

int store_event_list(struct store *st, int64_t after_id, size_t limit, struct store_event ***out,
                     size_t *count)
{
    struct store_rows rows = {0};
    sqlite3_stmt *s = NULL;

    *out = NULL;
    *count = 0;
    pthread_mutex_lock(&st->lock);
    int ret = store_prepare(st,
                            "SELECT id, created_at, type, domain, actor, detail_json FROM events"
                            " WHERE id > ?1 ORDER BY id LIMIT ?2",
                            &s);
    if (ret == 0 && (ret = store_bind_int64(st, s, 1, after_id)) == 0 &&
        (ret = store_bind_int64(st, s, 2, limit > INT64_MAX ? INT64_MAX : (int64_t)limit)) == 0)
        ret = store_rows_collect(st, s, &rows, sizeof(struct store_event *), event_row, NULL,
                                 "list events");
    store_release(st, s);
    pthread_mutex_unlock(&st->lock);
    if (ret < 0) {
        store_event_list_free(rows.items, rows.n);
        return ret;
    }
    *out = rows.items;
    *count = rows.n;
    return 0;
}

int store_event_last_id(struct store *st, int64_t *id_out)
{
    sqlite3_stmt *s = NULL;

    pthread_mutex_lock(&st->lock);
    int ret = store_prepare(st, "SELECT COALESCE(MAX(id), 0) FROM events", &s);
    if (ret < 0)
        goto out;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *id_out = sqlite3_column_int64(s, 0);
    else
        ret = store_db_error(st, rc, "last event id");
out:
    store_release(st, s);
    pthread_mutex_unlock(&st->lock);
    return ret;
}

int store_event_first_id(struct store *st, int64_t *id_out)
{
    sqlite3_stmt *s = NULL;

    pthread_mutex_lock(&st->lock);
    /* Empty log: the id AUTOINCREMENT hands out next (sqlite_sequence keeps the highest id ever
     * given, even after every row is gone), so "everything before it is gone" still holds. */
    int ret = store_prepare(st,
                            "SELECT COALESCE((SELECT MIN(id) FROM events),"
                            " (SELECT seq FROM sqlite_sequence WHERE name = 'events') + 1, 1)",
                            &s);
    if (ret < 0)
        goto out;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *id_out = sqlite3_column_int64(s, 0);
    else
        ret = store_db_error(st, rc, "first event id");
out:
    store_release(st, s);
    pthread_mutex_unlock(&st->lock);
    return ret;
}

/* Rows deleted per transaction, so a first prune of a long log never holds the store (and every
 * API request and order behind it) for long. */
#define PRUNE_BATCH 2000

/* One batch: deletes the leading run of events older than BEFORE among the oldest PRUNE_BATCH.
 * *MORE says whether the whole batch went (another may follow). The caller holds the lock. */
static int prune_batch(struct store *st, int64_t before, size_t *deleted, bool *more)
{
    sqlite3_stmt *s = NULL;
    int64_t stop = 0, max_seen = 0;
    int rc;

    *more = false;
    /* The first id (in the batch) still inside the retention, and the batch's last id. */
    int ret = store_prepare(st,
                            "SELECT MIN(CASE WHEN created_at >= ?1 THEN id END), MAX(id)"
                            " FROM (SELECT id, created_at FROM events ORDER BY id LIMIT ?2)",
                            &s);
    if (ret < 0)
        return ret;
    if ((ret = store_bind_int64(st, s, 1, before)) < 0 ||
        (ret = store_bind_int64(st, s, 2, PRUNE_BATCH)) < 0)
        goto out;
    rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        ret = store_db_error(st, rc, "find events to prune");
        goto out;
    }
    if (sqlite3_column_type(s, 1) == SQLITE_NULL)
        goto out; /* empty log */
    max_seen = sqlite3_column_int64(s, 1);
    if (sqlite3_column_type(s, 0) != SQLITE_NULL)
        stop = sqlite3_column_int64(s, 0);
    else
        stop = max_seen + 1;
    store_release(st, s);
    s = NULL;

    ret = store_prepare(st, "DELETE FROM events WHERE id < ?1", &s);
    if (ret < 0)
        return ret;
    if ((ret = store_bind_int64(st, s, 1, stop)) < 0)
        goto out;
    ret = store_step_done(st, s, "prune events");
    if (ret == 0) {
        *deleted += (size_t)sqlite3_changes(st->db);
        *more = stop > max_seen;
    }
out:
    store_release(st, s);
    return ret;
}

int store_events_prune(struct store *st, int64_t before_time, size_t *deleted)
{
    size_t n = 0;
    bool more = true;
    int ret = 0;

    while (more) {
        pthread_mutex_lock(&st->lock);
        /* A single DELETE is its own transaction: a batch goes entirely or not at all. */
        ret = prune_batch(st, before_time, &n, &more);
        pthread_mutex_unlock(&st->lock);
        if (ret < 0)
            break;
    }
    if (deleted)
        *deleted = n;
    return ret;
}
