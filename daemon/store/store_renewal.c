/* Renewal state (schema 3): ACME Renewal Information timers (RFC 9773), expiry warnings and the
 * per-CA order count used to pace new orders. */
#include "store/store.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"
#include "store/store_renewal_internal.h"

/* RFC 4648 §5 alphabet; RFC 9773 §4.1 encodes both parts without padding. */
static bool b64url_char(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '_';
}

bool store_ari_id_ok(const char *s)
{
    if (!s)
        return false;
    size_t len = strnlen(s, STORE_ARI_ID_MAX + 1), dots = 0, dot = 0;
    if (len == 0 || len > STORE_ARI_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.') {
            dots++;
            dot = i;
        } else if (!b64url_char(s[i])) {
            return false;
        }
    }
    return dots == 1 && dot > 0 && dot + 1 < len;
}

bool store_ari_times_ok(int64_t window_start, int64_t window_end, int64_t next_check)
{
    if (window_start < 0 || window_end < 0 || next_check < 0)
        return false;
    /* A window is both ends or neither: half a window cannot be planned with. */
    if ((window_start == 0) != (window_end == 0))
        return false;
    return window_start <= window_end;
}

int store_cert_set_ari(struct store *st, int64_t cert_id, int64_t window_start, int64_t window_end,
                       int64_t next_check)
{
    if (!store_ari_times_ok(window_start, window_end, next_check))
        return -EINVAL;

    sqlite3_stmt *s = NULL;
    pthread_mutex_lock(&st->lock);
    int ret = store_prepare(st,
                            "UPDATE certificates SET ari_window_start = ?2, ari_window_end = ?3,"
                            " ari_next_check = ?4 WHERE id = ?1",
                            &s);
    if (ret == 0 && (ret = store_bind_int64(st, s, 1, cert_id)) == 0 &&
        (ret = store_bind_time(st, s, 2, window_start)) == 0 &&
        (ret = store_bind_time(st, s, 3, window_end)) == 0 &&
        (ret = store_bind_time(st, s, 4, next_check)) == 0)
        ret = store_step_changed(st, s, "set certificate ARI");
    store_release(st, s);
    pthread_mutex_unlock(&st->lock);
    return ret;
}

int store_ari_due(struct store *st, int64_t now, size_t limit, int64_t **cert_ids, size_t *count)
{
    return store_ids_due(st, STORE_SQL_ARI_DUE, now, limit, "ARI due", cert_ids, count);
}

int store_next_ari_due(struct store *st, int64_t *when)
{
    return store_next_time(st, STORE_SQL_NEXT_ARI_DUE, "next ARI check", when);
}

int store_expiring_due(struct store *st, int64_t now, size_t limit, int64_t **cert_ids,
                       size_t *count)
{
    return store_ids_due(st, STORE_SQL_EXPIRING_DUE, now, limit, "expiring due", cert_ids, count);
}

int store_next_expiring(struct store *st, int64_t *when)
{
    return store_next_time(st, STORE_SQL_NEXT_EXPIRING, "next expiring", when);
}

int store_cert_mark_expiring(struct store *st, int64_t cert_id, const struct store_event_in *ev)
{
    if (!ev)
        return -EINVAL;

    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = NULL;
    bool exists = false;
    int ret = store_tx_begin(st);
    if (ret < 0)
        goto unlock;
    /* Only an unmarked certificate changes, so two racing callers give one warning. */
    ret = store_prepare(st,
                        "UPDATE certificates SET expiring_notified = 1"
                        " WHERE id = ?1 AND expiring_notified = 0",
                        &s);
    if (ret == 0 && (ret = store_bind_int64(st, s, 1, cert_id)) == 0)
        ret = store_step_changed(st, s, "mark certificate expiring");
    if (ret == -ENOENT) {
        /* Nothing changed: a certificate already marked, or none at all. */
        ret = store_row_exists(st, "SELECT 1 FROM certificates WHERE id = ?1", cert_id, 0,
                               "check certificate", &exists);
        if (ret == 0)
            ret = exists ? -EALREADY : -ENOENT;
    }
    ret = store_tx_finish(st, s, ret, ev);
unlock:
    pthread_mutex_unlock(&st->lock);
    return ret;
}

int store_orders_count_since(struct store *st, const char *ca, int64_t since, int64_t *count,
                             int64_t *oldest)
{
    sqlite3_stmt *s = NULL;

    *count = 0;
    *oldest = 0;
    if (!ca)
        return -EINVAL;
    pthread_mutex_lock(&st->lock);
    int ret = store_prepare(st, STORE_SQL_ORDERS_COUNT_SINCE, &s);
    if (ret < 0)
        goto out;
    if ((ret = store_bind_text(st, s, 1, ca)) < 0 || (ret = store_bind_int64(st, s, 2, since)) < 0)
        goto out;
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        ret = store_db_error(st, rc, "count orders");
        goto out;
    }
    *count = sqlite3_column_int64(s, 0);
    *oldest = sqlite3_column_int64(s, 1);
out:
    store_release(st, s);
    pthread_mutex_unlock(&st->lock);
    return ret;
}
