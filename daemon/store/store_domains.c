/* Domains and their alternative names, plus the counters derived from them. */
#include "store/store.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/names.h"
#include "store/store_internal.h"

#define DOMAIN_COLUMNS                                                                             \
    "id, name, challenge, key_type, ca, status, next_renewal_at, failure_count, last_error,"       \
    " created_at, updated_at, next_attempt_at, reuse_key, profile, renew_before"

static bool text_ok(const char *s)
{
    return s && *s && strnlen(s, STORE_TEXT_MAX + 1) <= STORE_TEXT_MAX;
}

/* An optional setting: NULL ("the default"), or non-empty text within the store's limit. An
 * empty string would be a second spelling of the default. */
static bool opt_text_ok(const char *s)
{
    return !s || text_ok(s);
}

/*
 * The API validated and normalised the names; the store still refuses what would corrupt its
 * invariants: a missing field, the primary repeated among the alt names, or a duplicate (which
 * the primary key would report as -EEXIST, a misleading "name taken").
 */
static bool domain_settings_ok(const struct store_domain *d)
{
    if (!d || !text_ok(d->name) || !text_ok(d->challenge) || !text_ok(d->key_type) ||
        !text_ok(d->ca) || !opt_text_ok(d->profile) || !opt_text_ok(d->renew_before))
        return false;
    if (d->alt_count >= NAMES_MAX || (d->alt_count && !d->alt_names))
        return false;
    for (size_t i = 0; i < d->alt_count; i++) {
        if (!text_ok(d->alt_names[i]) || strcmp(d->alt_names[i], d->name) == 0)
            return false;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(d->alt_names[i], d->alt_names[j]) == 0)
                return false;
        }
    }
    return true;
}

static bool key_in_ok(const struct store_key *k)
{
    return k && k->pem && *k->pem && strnlen(k->pem, STORE_PEM_MAX + 1) <= STORE_PEM_MAX &&
           (!k->key_type || text_ok(k->key_type)) && text_ok(k->public_key_sha256);
}

void store_domain_free(struct store_domain *d)
{
    if (!d)
        return;
    free(d->name);
    for (size_t i = 0; i < d->alt_count; i++)
        free(d->alt_names[i]);
    free(d->alt_names);
    free(d->challenge);
    free(d->key_type);
    free(d->ca);
    free(d->status);
    free(d->last_error);
    free(d->profile);
    free(d->renew_before);
    free(d);
}

void store_domain_list_free(struct store_domain **list, size_t count)
{
    if (!list)
        return;
    for (size_t i = 0; i < count; i++)
        store_domain_free(list[i]);
    free(list);
}

/* Row converter for alt names, which are never NULL. */
static int alt_name_row(sqlite3_stmt *s, void *item, void *ctx)
{
    char **name = item;
    (void)ctx;
    return store_col_strdup(s, 0, name) < 0 || !*name ? -ENOMEM : 0;
}

static int load_alt_names(struct store *st, struct store_domain *d)
{
    struct store_rows rows = {0};
    sqlite3_stmt *s = NULL;
    int ret = store_prepare(
        st, "SELECT name FROM domain_names WHERE domain_id = ?1 ORDER BY position", &s);
    if (ret < 0)
        return ret;
    if ((ret = store_bind_int64(st, s, 1, d->id)) == 0)
        ret =
            store_rows_collect(st, s, &rows, sizeof(char *), alt_name_row, NULL, "load alt names");
    /* Kept on error too: the caller frees D with what was read. */
    d->alt_names = rows.items;
    d->alt_count = rows.n;
    store_release(st, s);
    return ret;
}

/* Builds a domain from a row of DOMAIN_COLUMNS, with its alt names. */
static int domain_from_row(struct store *st, sqlite3_stmt *s, struct store_domain **out)
{
    struct store_domain *d = calloc(1, sizeof(*d));
    int ret = -ENOMEM;
    if (!d)
        return -ENOMEM;
    d->id = sqlite3_column_int64(s, 0);
    if (store_col_strdup(s, 1, &d->name) < 0 || store_col_strdup(s, 2, &d->challenge) < 0 ||
        store_col_strdup(s, 3, &d->key_type) < 0 || store_col_strdup(s, 4, &d->ca) < 0 ||
        store_col_strdup(s, 5, &d->status) < 0 || store_col_strdup(s, 8, &d->last_error) < 0 ||
        store_col_strdup(s, 13, &d->profile) < 0 || store_col_strdup(s, 14, &d->renew_before) < 0)
        goto fail;
    d->next_renewal_at = sqlite3_column_int64(s, 6); /* NULL reads as 0, "not set" */
    d->failure_count = sqlite3_column_int(s, 7);
    d->created_at = sqlite3_column_int64(s, 9);
    d->updated_at = sqlite3_column_int64(s, 10);
    d->next_attempt_at = sqlite3_column_int64(s, 11);
    d->reuse_key = sqlite3_column_int64(s, 12) != 0;
    ret = load_alt_names(st, d);
    if (ret < 0)
        goto fail;
    *out = d;
    return 0;
fail:
    store_domain_free(d);
    return ret;
}

/* domain_from_row as a store_rows_collect converter; CTX is the store. */
static int domain_row(sqlite3_stmt *s, void *item, void *ctx)
{
    return domain_from_row(ctx, s, item);
}

static int domain_get_locked(struct store *st, const char *name, struct store_domain **out)
{
    sqlite3_stmt *s = NULL;
    int ret = store_prepare(st, "SELECT " DOMAIN_COLUMNS " FROM domains WHERE name = ?1", &s);
    if (ret < 0)
        return ret;
    if ((ret = store_bind_text(st, s, 1, name)) == 0 &&
        (ret = store_step_row(st, s, "get domain")) == 0)
        ret = domain_from_row(st, s, out);
    store_release(st, s);
    return ret;
}

/* Finds NAME's id and whether it is removed. -ENOENT when there is no row. */
static int domain_lookup(struct store *st, const char *name, int64_t *id, bool *removed)
{
    sqlite3_stmt *s = NULL;
    int ret = store_prepare(st, "SELECT id, status FROM domains WHERE name = ?1", &s);
    if (ret < 0)
        return ret;
    if ((ret = store_bind_text(st, s, 1, name)) == 0 &&
        (ret = store_step_row(st, s, "look up domain")) == 0) {
        *id = sqlite3_column_int64(s, 0);
        const unsigned char *status = sqlite3_column_text(s, 1);
        *removed = status && strcmp((const char *)status, DOMAIN_STATUS_REMOVED) == 0;
    }
    store_release(st, s);
    return ret;
}

static int names_replace(struct store *st, int64_t domain_id, const struct store_domain *d)
{
    sqlite3_stmt *s = NULL;
    int ret = store_prepare(st, "DELETE FROM domain_names WHERE domain_id = ?1", &s);
    if (ret < 0)
        return ret;
    if ((ret = store_bind_int64(st, s, 1, domain_id)) < 0 ||
        (ret = store_step_done(st, s, "delete alt names")) < 0)
        goto out;
    store_release(st, s);
    s = NULL;

    ret = store_prepare(
        st, "INSERT INTO domain_names (domain_id, position, name) VALUES (?1, ?2, ?3)", &s);
    if (ret < 0)
        goto out;
    for (size_t i = 0; i < d->alt_count; i++) {
        sqlite3_reset(s);
        if ((ret = store_bind_int64(st, s, 1, domain_id)) < 0 ||
            (ret = store_bind_int64(st, s, 2, (int64_t)i)) < 0 ||
            (ret = store_bind_text(st, s, 3, d->alt_names[i])) < 0 ||
            (ret = store_step_done(st, s, "insert alt name")) < 0)
            goto out;
    }
out:
    store_release(st, s);
    return ret;
}

/* Any earlier current key becomes superseded first, so the one-current-key index holds at every
 * statement. */
int store_key_insert_current(struct store *st, int64_t domain_id, const struct store_key *key,
                             const char *key_type, int64_t now, int64_t *id_out)
{
    sqlite3_stmt *s = NULL;
    int ret = store_prepare(st,
                            "UPDATE private_keys SET status = '" KEY_STATUS_SUPERSEDED "'"
                            " WHERE domain_id = ?1 AND status = '" KEY_STATUS_CURRENT "'",
                            &s);
    if (ret < 0)
        return ret;
    if ((ret = store_bind_int64(st, s, 1, domain_id)) < 0 ||
        (ret = store_step_done(st, s, "supersede keys")) < 0)
        goto out;
    store_release(st, s);
    s = NULL;

    ret = store_prepare(st,
                        "INSERT INTO private_keys (domain_id, key_type, key_pem,"
                        " public_key_sha256, status, created_at)"
                        " VALUES (?1, ?2, ?3, ?4, '" KEY_STATUS_CURRENT "', ?5)",
                        &s);
    if (ret < 0)
        goto out;
    if ((ret = store_bind_int64(st, s, 1, domain_id)) < 0 ||
        (ret = store_bind_text(st, s, 2, key_type)) < 0 ||
        (ret = store_bind_text(st, s, 3, key->pem)) < 0 ||
        (ret = store_bind_text(st, s, 4, key->public_key_sha256)) < 0 ||
        (ret = store_bind_int64(st, s, 5, now)) < 0)
        goto out;
    ret = store_step_done(st, s, "insert key");
    if (ret == 0 && id_out)
        *id_out = sqlite3_last_insert_rowid(st->db);
out:
    store_release(st, s);
    return ret;
}

/* Binds D's reuse_key, profile and renew_before to ?IDX, ?IDX+1 and ?IDX+2. */
static int bind_renewal_settings(struct store *st, sqlite3_stmt *s, int idx,
                                 const struct store_domain *d)
{
    int ret;
    if ((ret = store_bind_int64(st, s, idx, d->reuse_key ? 1 : 0)) < 0 ||
        (ret = store_bind_text(st, s, idx + 1, d->profile)) < 0)
        return ret;
    return store_bind_text(st, s, idx + 2, d->renew_before);
}

/* Brings a removed domain back with D's settings and a clean slate; its keys and certificates
 * stay as history. Its old certificate was issued for a key that is no longer current, so it
 * stops being the active one, and a first issuance is queued as for a new domain. */
static int domain_revive(struct store *st, int64_t id, const struct store_domain *d, int64_t now)
{
    sqlite3_stmt *s = NULL;
    int ret = store_prepare(st,
                            "UPDATE domains SET challenge = ?2, key_type = ?3, ca = ?4,"
                            " status = '" DOMAIN_STATUS_PENDING "', next_renewal_at = NULL,"
                            " failure_count = 0, last_error = NULL, next_attempt_at = ?5,"
                            " updated_at = ?5, reuse_key = ?6, profile = ?7, renew_before = ?8"
                            " WHERE id = ?1",
                            &s);
    if (ret < 0)
        return ret;
    if ((ret = store_bind_int64(st, s, 1, id)) < 0 ||
        (ret = store_bind_text(st, s, 2, d->challenge)) < 0 ||
        (ret = store_bind_text(st, s, 3, d->key_type)) < 0 ||
        (ret = store_bind_text(st, s, 4, d->ca)) < 0 ||
        (ret = store_bind_int64(st, s, 5, now)) < 0 ||
        (ret = bind_renewal_settings(st, s, 6, d)) < 0 ||
        (ret = store_step_done(st, s, "revive domain")) < 0)
        goto out;
    store_release(st, s);
    s = NULL;

    ret = store_prepare(st,
                        "UPDATE certificates SET status = '" CERT_STATUS_SUPERSEDED "'"
                        " WHERE domain_id = ?1 AND status = '" CERT_STATUS_ACTIVE "'",
                        &s);
    if (ret < 0)
        goto out;
    if ((ret = store_bind_int64(st, s, 1, id)) < 0)
        goto out;
    ret = store_step_done(st, s, "supersede certificates");
out:
    store_release(st, s);
    return ret;
}

/* next_attempt_at = now: the new domain's first issuance is due at once. */
static int domain_insert(struct store *st, const struct store_domain *d, int64_t now,
                         int64_t *id_out)
{
    sqlite3_stmt *s = NULL;
    int ret = store_prepare(st,
                            "INSERT INTO domains (name, challenge, key_type, ca, status,"
                            " failure_count, next_attempt_at, created_at, updated_at, reuse_key,"
                            " profile, renew_before)"
                            " VALUES (?1, ?2, ?3, ?4, '" DOMAIN_STATUS_PENDING "', 0, ?5, ?5, ?5,"
                            " ?6, ?7, ?8)",
                            &s);
    if (ret < 0)
        return ret;
    if ((ret = store_bind_text(st, s, 1, d->name)) < 0 ||
        (ret = store_bind_text(st, s, 2, d->challenge)) < 0 ||
        (ret = store_bind_text(st, s, 3, d->key_type)) < 0 ||
        (ret = store_bind_text(st, s, 4, d->ca)) < 0 ||
        (ret = store_bind_int64(st, s, 5, now)) < 0 ||
        (ret = bind_renewal_settings(st, s, 6, d)) < 0)
        goto out;
    ret = store_step_done(st, s, "insert domain");
    if (ret == 0)
        *id_out = sqlite3_last_insert_rowid(st->db);
out:
    store_release(st, s);
    return ret;
}

int store_domain_add(struct store *st, const struct store_domain *d, const struct store_key *key,
                     const struct store_event_in *ev, struct store_domain **out)
{
    if (out)
        *out = NULL;
    if (!domain_settings_ok(d) || !key_in_ok(key) || !ev)
        return -EINVAL;

    pthread_mutex_lock(&st->lock);
    int64_t now = store_now(), id = 0;
    bool removed = false;
    int ret = store_tx_begin(st);
    if (ret < 0)
        goto unlock;

    ret = domain_lookup(st, d->name, &id, &removed);
    if (ret == 0 && !removed)
        ret = -EEXIST;
    else if (ret == 0)
        ret = domain_revive(st, id, d, now);
    else if (ret == -ENOENT)
        ret = domain_insert(st, d, now, &id);
    if (ret == 0 && (ret = names_replace(st, id, d)) == 0)
        ret = store_key_insert_current(st, id, key, key->key_type ? key->key_type : d->key_type,
                                       now, NULL);
    ret = store_tx_finish(st, NULL, ret, ev);
    if (ret == 0 && out)
        ret = domain_get_locked(st, d->name, out);
unlock:
    pthread_mutex_unlock(&st->lock);
    return ret;
}

int store_domain_get(struct store *st, const char *name, struct store_domain **out)
{
    *out = NULL;
    if (!name)
        return -EINVAL;
    pthread_mutex_lock(&st->lock);
    int ret = domain_get_locked(st, name, out);
    pthread_mutex_unlock(&st->lock);
    return ret;
}

int store_domain_list(struct store *st, const char *after_name, size_t limit, bool include_removed,
                      struct store_domain ***out, size_t *count)
{
    struct store_rows rows = {0};
    sqlite3_stmt *s = NULL;

    *out = NULL;
    *count = 0;
    pthread_mutex_lock(&st->lock);
    /* Byte order (SQLite's BINARY collation) keeps the cursor stable; a PostgreSQL backend must
     * compare with COLLATE "C" for the same order. Names are never empty, so '' is "the start". */
    int ret = store_prepare(st,
                            "SELECT " DOMAIN_COLUMNS " FROM domains WHERE name > ?1"
                            " AND (?2 <> 0 OR status <> '" DOMAIN_STATUS_REMOVED "')"
                            " ORDER BY name LIMIT ?3",
                            &s);
    if (ret == 0 && (ret = store_bind_text(st, s, 1, after_name ? after_name : "")) == 0 &&
        (ret = store_bind_int64(st, s, 2, include_removed ? 1 : 0)) == 0 &&
        (ret = store_bind_int64(st, s, 3, limit > INT64_MAX ? INT64_MAX : (int64_t)limit)) == 0)
        ret = store_rows_collect(st, s, &rows, sizeof(struct store_domain *), domain_row, st,
                                 "list domains");
    store_release(st, s);
    pthread_mutex_unlock(&st->lock);
    if (ret < 0) {
        store_domain_list_free(rows.items, rows.n);
        return ret;
    }
    *out = rows.items;
    *count = rows.n;
    return 0;
}

int store_domain_update(struct store *st, const struct store_domain *d,
                        const struct store_event_in *ev, struct store_domain **out)
{
    if (out)
        *out = NULL;
    if (!domain_settings_ok(d) || !ev)
        return -EINVAL;

    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = NULL;
    int64_t id = 0;
    bool removed = false;
    int ret = store_tx_begin(st);
    if (ret < 0)
        goto unlock;

    ret = domain_lookup(st, d->name, &id, &removed);
    if (ret == 0 && removed)
        ret = -ENOENT;
    if (ret < 0)
        goto finish;
    ret = store_prepare(st,
                        "UPDATE domains SET challenge = ?2, key_type = ?3, ca = ?4,"
                        " updated_at = ?5, reuse_key = ?6, profile = ?7, renew_before = ?8"
                        " WHERE id = ?1",
                        &s);
    if (ret < 0 || (ret = store_bind_int64(st, s, 1, id)) < 0 ||
        (ret = store_bind_text(st, s, 2, d->challenge)) < 0 ||
        (ret = store_bind_text(st, s, 3, d->key_type)) < 0 ||
        (ret = store_bind_text(st, s, 4, d->ca)) < 0 ||
        (ret = store_bind_int64(st, s, 5, store_now())) < 0 ||
        (ret = bind_renewal_settings(st, s, 6, d)) < 0 ||
        (ret = store_step_done(st, s, "update domain")) < 0)
        goto finish;
    ret = names_replace(st, id, d);
finish:
    ret = store_tx_finish(st, s, ret, ev);
    if (ret == 0 && out)
        ret = domain_get_locked(st, d->name, out);
unlock:
    pthread_mutex_unlock(&st->lock);
    return ret;
}

int store_domain_remove(struct store *st, const char *name, bool purge,
                        const struct store_event_in *ev)
{
    if (!name || !ev)
        return -EINVAL;

    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = NULL;
    int64_t id = 0;
    bool removed = false;
    int ret = store_tx_begin(st);
    if (ret < 0)
        goto unlock;

    ret = domain_lookup(st, name, &id, &removed);
    if (ret == 0 && removed && !purge)
        ret = -ENOENT;
    if (ret < 0)
        goto finish;
    if (purge) {
        /* Names, keys, orders and certificates go with it through ON DELETE CASCADE; with
         * secure_delete their pages are zeroed, so no key PEM lingers in free space. */
        ret = store_prepare(st, "DELETE FROM domains WHERE id = ?1", &s);
    } else {
        /* Nothing is scheduled for a removed domain, so its timers are cleared. */
        ret = store_prepare(st,
                            "UPDATE domains SET status = '" DOMAIN_STATUS_REMOVED "',"
                            " next_renewal_at = NULL, next_attempt_at = NULL, updated_at = ?2"
                            " WHERE id = ?1",
                            &s);
    }
    if (ret < 0 || (ret = store_bind_int64(st, s, 1, id)) < 0 ||
        (!purge && (ret = store_bind_int64(st, s, 2, store_now())) < 0) ||
        (ret = store_step_done(st, s, purge ? "purge domain" : "remove domain")) < 0)
        goto finish;
    if (!purge) {
        /* Its certificate stays "active" as history (a revival supersedes it), but no ARI
         * fetch or expiry warning is due for a domain nobody manages: leaving the timers would
         * also keep the rows in the due ranges of the scheduler's indexes. */
        store_release(st, s);
        s = NULL;
        if ((ret = store_prepare(st,
                                 "UPDATE certificates SET ari_next_check = NULL,"
                                 " expiring_at = NULL WHERE domain_id = ?1"
                                 " AND status = '" CERT_STATUS_ACTIVE "'",
                                 &s)) < 0 ||
            (ret = store_bind_int64(st, s, 1, id)) < 0 ||
            (ret = store_step_done(st, s, "clear certificate timers")) < 0)
            goto finish;
    }
finish:
    ret = store_tx_finish(st, s, ret, ev);
unlock:
    pthread_mutex_unlock(&st->lock);
    return ret;
}

/* Reads the counters that schema/0006_stats_counters.sql's triggers keep and one entry of the
 * partial index on managed domains' renewal times: constant cost whatever the number of domains,
 * so the store's lock is held for microseconds. */
int store_stats(struct store *st, struct store_stats *out)
{
    sqlite3_stmt *s = NULL;

    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&st->lock);
    int ret = store_prepare(
        st,
        "SELECT"
        " (SELECT COALESCE(SUM(value), 0) FROM stats_counters WHERE name IN"
        "   ('domains_" DOMAIN_STATUS_PENDING "', 'domains_" DOMAIN_STATUS_ACTIVE "',"
        "    'domains_" DOMAIN_STATUS_FAILED "')),"
        " (SELECT value FROM stats_counters WHERE name = 'domains_" DOMAIN_STATUS_PENDING "'),"
        " (SELECT value FROM stats_counters WHERE name = 'domains_" DOMAIN_STATUS_FAILED "'),"
        " (SELECT value FROM stats_counters WHERE name = 'certificates_active'),"
        " (SELECT COALESCE(MIN(next_renewal_at), 0) FROM domains"
        "   WHERE status <> '" DOMAIN_STATUS_REMOVED "')",
        &s);
    if (ret < 0)
        goto out;
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        ret = store_db_error(st, rc, "stats");
        goto out;
    }
    out->domains = sqlite3_column_int64(s, 0);
    out->domains_pending = sqlite3_column_int64(s, 1);
    out->domains_failed = sqlite3_column_int64(s, 2);
    out->certificates_active = sqlite3_column_int64(s, 3);
    out->next_renewal_at = sqlite3_column_int64(s, 4);
out:
    store_release(st, s);
    pthread_mutex_unlock(&st->lock);
    return ret;
}

/* ---- lookups by id and scheduling ---- */

int store_domain_check_managed(struct store *st, int64_t id, char **key_type)
{
    sqlite3_stmt *s = NULL;
    if (key_type)
        *key_type = NULL;
    int ret = store_prepare(st,
                            "SELECT key_type FROM domains WHERE id = ?1"
                            " AND status <> '" DOMAIN_STATUS_REMOVED "'",
                            &s);
    if (ret < 0)
        return ret;
    if ((ret = store_bind_int64(st, s, 1, id)) == 0 &&
        (ret = store_step_row(st, s, "check domain")) == 0 && key_type &&
        (store_col_strdup(s, 0, key_type) < 0 || !*key_type))
        ret = -ENOMEM;
    store_release(st, s);
    return ret;
}

int store_domain_get_by_id(struct store *st, int64_t id, struct store_domain **out)
{
    sqlite3_stmt *s = NULL;

    *out = NULL;
    pthread_mutex_lock(&st->lock);
    int ret = store_prepare(st, "SELECT " DOMAIN_COLUMNS " FROM domains WHERE id = ?1", &s);
    if (ret == 0 && (ret = store_bind_int64(st, s, 1, id)) == 0 &&
        (ret = store_step_row(st, s, "get domain by id")) == 0)
        ret = domain_from_row(st, s, out);
    store_release(st, s);
    pthread_mutex_unlock(&st->lock);
    return ret;
}

/*
 * A copy of ERR cut to STORE_TEXT_MAX bytes without splitting a UTF-8 sequence. A CA's problem
 * detail or a hook's stderr can be long, and refusing it would leave the failure unrecorded and
 * the domain due again at once.
 */
static char *error_capped(const char *err)
{
    size_t len = strnlen(err, STORE_TEXT_MAX + 1);
    if (len > STORE_TEXT_MAX) {
        len = STORE_TEXT_MAX;
        /* Back off continuation bytes (10xxxxxx), then the lead byte they belonged to. */
        while (len > 0 && ((unsigned char)err[len] & 0xc0) == 0x80)
            len--;
    }
    return strndup(err, len);
}

int store_domain_record_failure(struct store *st, int64_t domain_id, const char *error,
                                int64_t next_attempt_at, const struct store_event_in *ev)
{
    if (!error || !*error || !ev || next_attempt_at < 0)
        return -EINVAL;
    char *msg = error_capped(error);
    if (!msg)
        return -ENOMEM;

    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = NULL;
    int ret = store_tx_begin(st);
    if (ret < 0)
        goto unlock;
    /* The status follows the certificate, not the previous status: a revoked or superseded
     * certificate no longer serves, an active one does. */
    ret = store_prepare(st,
                        "UPDATE domains SET failure_count = failure_count + 1, last_error = ?2,"
                        " next_attempt_at = ?3, updated_at = ?4, status = CASE WHEN EXISTS"
                        " (SELECT 1 FROM certificates WHERE domain_id = ?1"
                        "  AND status = '" CERT_STATUS_ACTIVE "')"
                        " THEN '" DOMAIN_STATUS_ACTIVE "' ELSE '" DOMAIN_STATUS_FAILED "' END"
                        " WHERE id = ?1 AND status <> '" DOMAIN_STATUS_REMOVED "'",
                        &s);
    if (ret == 0 && (ret = store_bind_int64(st, s, 1, domain_id)) == 0 &&
        (ret = store_bind_text(st, s, 2, msg)) == 0 &&
        (ret = store_bind_time(st, s, 3, next_attempt_at)) == 0 &&
        (ret = store_bind_int64(st, s, 4, store_now())) == 0)
        ret = store_step_changed(st, s, "record failure");
    ret = store_tx_finish(st, s, ret, ev);
unlock:
    pthread_mutex_unlock(&st->lock);
    free(msg);
    return ret;
}

int store_domain_schedule(struct store *st, int64_t domain_id, int64_t next_attempt_at,
                          int64_t next_renewal_at, const struct store_event_in *ev)
{
    if (!ev || next_attempt_at < 0 || next_renewal_at < 0)
        return -EINVAL;

    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = NULL;
    int ret = store_tx_begin(st);
    if (ret < 0)
        goto unlock;
    ret = store_prepare(st,
                        "UPDATE domains SET next_attempt_at = ?2,"
                        " next_renewal_at = COALESCE(?3, next_renewal_at), updated_at = ?4"
                        " WHERE id = ?1 AND status <> '" DOMAIN_STATUS_REMOVED "'",
                        &s);
    if (ret == 0 && (ret = store_bind_int64(st, s, 1, domain_id)) == 0 &&
        (ret = store_bind_time(st, s, 2, next_attempt_at)) == 0 &&
        (ret = store_bind_time(st, s, 3, next_renewal_at)) == 0 &&
        (ret = store_bind_int64(st, s, 4, store_now())) == 0)
        ret = store_step_changed(st, s, "schedule domain");
    ret = store_tx_finish(st, s, ret, ev);
unlock:
    pthread_mutex_unlock(&st->lock);
    return ret;
}

int store_domain_replan_renewal(struct store *st, int64_t domain_id, int64_t cert_id,
                                int64_t next_renewal_at, const struct store_event_in *ev)
{
    if (!ev || next_renewal_at <= 0)
        return -EINVAL;

    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = NULL;
    int ret = store_tx_begin(st);
    if (ret < 0)
        goto unlock;
    /* The certificate check sits in the same statement: a renewal stored since the caller read
     * CERT_ID planned from the new certificate, and a time computed from the old one must not
     * overwrite that plan. A retry after a failure keeps its backoff, as under ARI. */
    ret = store_prepare(st,
                        "UPDATE domains SET next_renewal_at = ?3,"
                        " next_attempt_at = CASE WHEN failure_count = 0 THEN ?3"
                        "  ELSE next_attempt_at END, updated_at = ?4"
                        " WHERE id = ?1 AND status <> '" DOMAIN_STATUS_REMOVED "'"
                        " AND EXISTS (SELECT 1 FROM certificates WHERE id = ?2 AND domain_id = ?1"
                        "  AND status = '" CERT_STATUS_ACTIVE "')",
                        &s);
    if (ret == 0 && (ret = store_bind_int64(st, s, 1, domain_id)) == 0 &&
        (ret = store_bind_int64(st, s, 2, cert_id)) == 0 &&
        (ret = store_bind_int64(st, s, 3, next_renewal_at)) == 0 &&
        (ret = store_bind_int64(st, s, 4, store_now())) == 0)
        ret = store_step_changed(st, s, "replan renewal");
    ret = store_tx_finish(st, s, ret, ev);
unlock:
    pthread_mutex_unlock(&st->lock);
    return ret;
}

int store_domains_due(struct store *st, int64_t now, size_t limit, int64_t **ids, size_t *count)
{
    return store_ids_due(st, STORE_SQL_DOMAINS_DUE, now, limit, "due domains", ids, count);
}

int store_next_due(struct store *st, int64_t *when)
{
    return store_next_time(st, STORE_SQL_NEXT_DUE, "next due", when);
}
