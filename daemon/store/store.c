/* The store's connection: opening, pragmas, migrations, and the shared statement helpers. */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "store/schema.h"
#include "store/store_internal.h"

/* Long enough for the daemon's own short write bursts; a second process (sqlite3 CLI, backup)
 * holding the lock longer makes the call fail with -EIO instead of hanging a request. */
#define STORE_BUSY_TIMEOUT_MS 5000

/* ---- helpers shared by store_*.c ---- */

int store_db_error(struct store *st, int rc, const char *what)
{
    int ext = sqlite3_extended_errcode(st->db);

    if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY)
        return -EEXIST;
    if ((rc & 0xff) == SQLITE_NOMEM) {
        log_error("store: %s: out of memory", what);
        return -ENOMEM;
    }
    log_error("store: %s: %s (%d)", what, sqlite3_errmsg(st->db), ext);
    return -EIO;
}

/* A statement for this use only, never cached: the one-off PRAGMAs of opening (their callers
 * finalize them), and what store_prepare cannot cache (store_release finalizes those). */
static int prepare_uncached(struct store *st, const char *sql, sqlite3_stmt **out)
{
    int rc = sqlite3_prepare_v2(st->db, sql, -1, out, NULL);
    if (rc != SQLITE_OK) {
        *out = NULL;
        return store_db_error(st, rc, "prepare");
    }
    return 0;
}

/* FNV-1a: a cheap filter, so a lookup compares the text of one slot, not of every slot. */
static uint64_t sql_hash(const char *sql)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (const unsigned char *p = (const unsigned char *)sql; *p; p++)
        h = (h ^ *p) * 0x100000001b3u;
    return h;
}

static struct store_stmt_slot *stmt_slot_find(struct store *st, const char *sql, uint64_t hash)
{
    for (size_t i = 0; i < st->stmt_count; i++) {
        struct store_stmt_slot *slot = &st->stmts[i];
        if (slot->hash == hash && strcmp(slot->sql, sql) == 0)
            return slot;
    }
    return NULL;
}

/* An empty slot, or the least recently used idle one emptied; NULL when every slot is out. */
static struct store_stmt_slot *stmt_slot_take(struct store *st)
{
    if (st->stmt_count < STORE_STMT_CACHE_MAX)
        return &st->stmts[st->stmt_count++];
    struct store_stmt_slot *lru = NULL;
    for (size_t i = 0; i < st->stmt_count; i++) {
        struct store_stmt_slot *slot = &st->stmts[i];
        if (!slot->in_use && (!lru || slot->last_used < lru->last_used))
            lru = slot;
    }
    if (lru) {
        sqlite3_finalize(lru->stmt);
        free(lru->sql);
        *lru = (struct store_stmt_slot){0};
    }
    return lru;
}

/* Gives SLOT back as the last filled slot's place, keeping [0, stmt_count) filled. */
static void stmt_slot_drop(struct store *st, struct store_stmt_slot *slot)
{
    struct store_stmt_slot *last = &st->stmts[st->stmt_count - 1];
    sqlite3_finalize(slot->stmt);
    free(slot->sql);
    *slot = *last;
    *last = (struct store_stmt_slot){0};
    st->stmt_count--;
}

int store_prepare(struct store *st, const char *sql, sqlite3_stmt **out)
{
    uint64_t hash = sql_hash(sql);
    struct store_stmt_slot *slot = stmt_slot_find(st, sql, hash);

    *out = NULL;
    if (slot && slot->in_use)
        return prepare_uncached(st, sql, out);
    if (!slot) {
        slot = stmt_slot_take(st);
        if (!slot)
            return prepare_uncached(st, sql, out);
        slot->hash = hash;
        slot->sql = strdup(sql);
        if (!slot->sql) {
            stmt_slot_drop(st, slot);
            log_error("store: prepare: out of memory");
            return -ENOMEM;
        }
        /* PERSISTENT: SQLite allocates it for a long life (not from its lookaside memory). */
        int rc = sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &slot->stmt, NULL);
        if (rc != SQLITE_OK) {
            int ret = store_db_error(st, rc, "prepare");
            stmt_slot_drop(st, slot);
            return ret;
        }
    }
    slot->in_use = true;
    slot->last_used = ++st->stmt_clock;
    *out = slot->stmt;
    return 0;
}

void store_release(struct store *st, sqlite3_stmt *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < st->stmt_count; i++) {
        struct store_stmt_slot *slot = &st->stmts[i];
        if (slot->stmt == s) {
            /* reset repeats the last step's error, which the caller has had already. */
            (void)sqlite3_reset(s);
            sqlite3_clear_bindings(s);
            slot->in_use = false;
            return;
        }
    }
    sqlite3_finalize(s);
}

/* Finalizes every cached statement; none may be out. */
static void stmt_cache_clear(struct store *st)
{
    for (size_t i = 0; i < st->stmt_count; i++) {
        sqlite3_finalize(st->stmts[i].stmt);
        free(st->stmts[i].sql);
        st->stmts[i] = (struct store_stmt_slot){0};
    }
    st->stmt_count = 0;
}

int store_bind_text(struct store *st, sqlite3_stmt *s, int idx, const char *text)
{
    int rc = text ? sqlite3_bind_text(s, idx, text, -1, SQLITE_STATIC) : sqlite3_bind_null(s, idx);
    return rc == SQLITE_OK ? 0 : store_db_error(st, rc, "bind");
}

int store_bind_int64(struct store *st, sqlite3_stmt *s, int idx, int64_t v)
{
    int rc = sqlite3_bind_int64(s, idx, v);
    return rc == SQLITE_OK ? 0 : store_db_error(st, rc, "bind");
}

int store_bind_time(struct store *st, sqlite3_stmt *s, int idx, int64_t t)
{
    int rc = t ? sqlite3_bind_int64(s, idx, t) : sqlite3_bind_null(s, idx);
    return rc == SQLITE_OK ? 0 : store_db_error(st, rc, "bind");
}

int store_step_done(struct store *st, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE)
        return 0;
    return store_db_error(st, rc, what);
}

int store_step_row(struct store *st, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? -ENOENT : store_db_error(st, rc, what);
}

int store_step_changed(struct store *st, sqlite3_stmt *s, const char *what)
{
    int ret = store_step_done(st, s, what);
    if (ret == 0 && sqlite3_changes(st->db) == 0)
        ret = -ENOENT;
    return ret;
}

int store_col_strdup(sqlite3_stmt *s, int col, char **out)
{
    const unsigned char *txt = sqlite3_column_text(s, col);
    *out = NULL;
    if (!txt)
        return sqlite3_column_type(s, col) == SQLITE_NULL ? 0 : -ENOMEM;
    *out = strdup((const char *)txt);
    return *out ? 0 : -ENOMEM;
}

void *store_list_grow(void *list, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return list;
    size_t ncap = *cap ? *cap * 2 : 8;
    void *nl = reallocarray(list, ncap, elem);
    if (nl)
        *cap = ncap;
    return nl;
}

int store_rows_collect(struct store *st, sqlite3_stmt *s, struct store_rows *rows, size_t elem,
                       store_row_fn row, void *ctx, const char *what)
{
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        char *items = store_list_grow(rows->items, &rows->cap, rows->n, elem);
        if (!items)
            return -ENOMEM;
        rows->items = items;
        int ret = row(s, items + rows->n * elem, ctx);
        if (ret < 0)
            return ret;
        rows->n++;
    }
    return rc == SQLITE_DONE ? 0 : store_db_error(st, rc, what);
}

int store_row_id(sqlite3_stmt *s, void *item, void *ctx)
{
    (void)ctx;
    *(int64_t *)item = sqlite3_column_int64(s, 0);
    return 0;
}

int store_ids_due(struct store *st, const char *sql, int64_t now, size_t limit, const char *what,
                  int64_t **ids, size_t *count)
{
    struct store_rows rows = {0};
    sqlite3_stmt *s = NULL;

    *ids = NULL;
    *count = 0;
    if (limit == 0)
        return 0;
    pthread_mutex_lock(&st->lock);
    int ret = store_prepare(st, sql, &s);
    if (ret == 0 && (ret = store_bind_int64(st, s, 1, now)) == 0 &&
        (ret = store_bind_int64(st, s, 2, limit > INT64_MAX ? INT64_MAX : (int64_t)limit)) == 0)
        ret = store_rows_collect(st, s, &rows, sizeof(int64_t), store_row_id, NULL, what);
    store_release(st, s);
    pthread_mutex_unlock(&st->lock);
    if (ret < 0) {
        free(rows.items);
        return ret;
    }
    *ids = rows.items;
    *count = rows.n;
    return 0;
}

int store_next_time(struct store *st, const char *sql, const char *what, int64_t *when)
{
    sqlite3_stmt *s = NULL;

    *when = 0;
    pthread_mutex_lock(&st->lock);
    int ret = store_prepare(st, sql, &s);
    if (ret == 0) {
        ret = store_step_row(st, s, what);
        if (ret == 0)
            *when = sqlite3_column_int64(s, 0);
        else if (ret == -ENOENT)
            ret = 0;
    }
    store_release(st, s);
    pthread_mutex_unlock(&st->lock);
    return ret;
}

static int exec_simple(struct store *st, const char *sql, const char *what)
{
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : store_db_error(st, rc, what);
}

int store_tx_begin(struct store *st)
{
    return exec_simple(st, "BEGIN IMMEDIATE", "begin");
}

int store_tx_commit(struct store *st)
{
    int ret = exec_simple(st, "COMMIT", "commit");
    if (ret == 0)
        store_events_committed(st);
    else
        st->pending_event_id = 0;
    return ret;
}

void store_events_committed(struct store *st)
{
    int64_t id = st->pending_event_id;
    st->pending_event_id = 0;
    if (id && st->event_hook)
        st->event_hook(st->event_hook_ctx, id);
}

void store_set_event_hook(struct store *st, store_event_hook hook, void *ctx)
{
    pthread_mutex_lock(&st->lock);
    st->event_hook = hook;
    st->event_hook_ctx = ctx;
    pthread_mutex_unlock(&st->lock);
}

void store_tx_rollback(struct store *st)
{
    /* After SQLITE_FULL, IOERR, BUSY or NOMEM SQLite may already have rolled back, and a second
     * ROLLBACK would only log a spurious "no transaction is active". */
    if (!sqlite3_get_autocommit(st->db))
        (void)exec_simple(st, "ROLLBACK", "rollback");
    st->pending_event_id = 0;
}

int store_tx_finish(struct store *st, sqlite3_stmt *s, int ret, const struct store_event_in *ev)
{
    /* Released (reset) before the rollback, which an unfinished statement could otherwise
     * hold up. */
    store_release(st, s);
    if (ret == 0 && ev)
        ret = store_event_insert(st, ev, NULL);
    if (ret == 0)
        ret = store_tx_commit(st);
    if (ret < 0)
        store_tx_rollback(st);
    return ret;
}

sqlite3 *store_sqlite_handle(struct store *st)
{
    return st->db;
}

/* ---- opening ---- */

/*
 * The database holds private keys, so it must never be readable by anyone but certd. Create it
 * ourselves with 0600 before SQLite opens it (SQLite would use 0644 minus the umask), and tighten
 * a pre-existing file or a left-over -wal/-shm that is wider. SQLite creates -wal/-shm with the
 * main file's permission bits, so a 0600 database yields 0600 companions.
 */
static int secure_file(const char *path, bool create, char *err, size_t errsz)
{
    int flags = O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY;
    int fd = open(path, flags | (create ? O_CREAT | O_EXCL : 0), 0600);
    bool created = fd >= 0 && create;

    if (fd < 0 && create && errno == EEXIST)
        fd = open(path, flags);
    if (fd < 0) {
        if (!create && errno == ENOENT)
            return 0;
        int e = errno;
        snprintf(err, errsz, "cannot open database %s: %s", path,
                 e == ELOOP ? "it is a symbolic link" : strerror(e));
        return -e;
    }

    int ret = 0;
    struct stat sb;
    if (fstat(fd, &sb) < 0) {
        ret = -errno;
        snprintf(err, errsz, "cannot stat %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        ret = -EINVAL;
        snprintf(err, errsz, "database %s is not a regular file", path);
        goto out;
    }
    /* A fresh file gets exactly 0600 whatever the umask; an old one only loses bits. */
    mode_t want = created ? 0600 : (sb.st_mode & 0600);
    if ((sb.st_mode & 07777) != want) {
        if (!created)
            log_warning("store: %s had mode %04o, restricting it to %04o", path,
                        (unsigned)(sb.st_mode & 07777), (unsigned)want);
        if (fchmod(fd, want) < 0) {
            ret = -errno;
            snprintf(err, errsz, "cannot chmod %s: %s", path, strerror(errno));
            goto out;
        }
    }
out:
    close(fd);
    return ret;
}

static int secure_files(const char *path, char *err, size_t errsz)
{
    int ret = secure_file(path, true, err, errsz);
    static const char *const suffixes[] = {"-wal", "-shm"};

    for (size_t i = 0; ret == 0 && i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        char side[4096];
        int n = snprintf(side, sizeof(side), "%s%s", path, suffixes[i]);
        if (n < 0 || (size_t)n >= sizeof(side)) {
            snprintf(err, errsz, "database path too long");
            return -ENAMETOOLONG;
        }
        ret = secure_file(side, false, err, errsz);
    }
    return ret;
}

static int pragma_int(struct store *st, const char *sql, int64_t *out)
{
    sqlite3_stmt *s = NULL;
    int ret = prepare_uncached(st, sql, &s);
    if (ret < 0)
        return ret;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(s, 0);
    else
        ret = store_db_error(st, rc, sql);
    sqlite3_finalize(s);
    return ret;
}

static int read_user_version(struct store *st, int64_t *out)
{
    return pragma_int(st, "PRAGMA user_version", out);
}

/*
 * Connection settings. synchronous=FULL: in WAL mode NORMAL may lose the last commits on power
 * loss, and our commits are few (a handful per issuance) but each matters: losing a key row after
 * its CSR went to the CA would leave a certificate we cannot use. secure_delete overwrites the
 * freed pages of purged keys instead of leaving the PEM in free space.
 */
static int configure(struct store *st, char *err, size_t errsz)
{
    sqlite3_stmt *s = NULL;
    int ret = prepare_uncached(st, "PRAGMA journal_mode = WAL", &s);
    if (ret < 0)
        goto fail;
    if (sqlite3_step(s) != SQLITE_ROW) {
        ret = store_db_error(st, sqlite3_errcode(st->db), "journal_mode");
        goto fail;
    }
    const unsigned char *mode = sqlite3_column_text(s, 0);
    if (!mode || strcmp((const char *)mode, "wal") != 0) {
        snprintf(err, errsz, "cannot switch the database to WAL mode (journal_mode is %s)",
                 mode ? (const char *)mode : "unknown");
        sqlite3_finalize(s);
        return -EIO;
    }
    sqlite3_finalize(s);
    s = NULL;

    ret = exec_simple(st,
                      "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
                      " PRAGMA secure_delete = ON",
                      "pragma");
    if (ret < 0)
        goto fail;

    /* foreign_keys silently stays off on a build without it; refuse rather than run without
     * the cascades that purge relies on. */
    int64_t fk = 0;
    ret = pragma_int(st, "PRAGMA foreign_keys", &fk);
    if (ret < 0)
        goto fail;
    if (fk != 1) {
        snprintf(err, errsz, "this SQLite does not enforce foreign keys");
        return -EIO;
    }
    return 0;
fail:
    sqlite3_finalize(s);
    snprintf(err, errsz, "cannot configure the database: %s", sqlite3_errmsg(st->db));
    return ret;
}

static int check_embedded_migrations(char *err, size_t errsz)
{
    for (unsigned i = 0; i < schema_migration_count; i++) {
        if (schema_migrations[i].version != i + 1) {
            snprintf(err, errsz, "migration %s is numbered %u but is number %u in sequence",
                     schema_migrations[i].file, schema_migrations[i].version, i + 1);
            return -EINVAL;
        }
    }
    return 0;
}

/* One migration, its SQL and the version bump in one transaction: either both land or neither. */
static int apply_migration(struct store *st, const struct schema_migration *m, char *err,
                           size_t errsz)
{
    int ret = store_tx_begin(st);
    if (ret < 0) {
        snprintf(err, errsz, "cannot start migration %s: %s", m->file, sqlite3_errmsg(st->db));
        return ret;
    }

    /* Re-read under the write lock: another certd on the same file may have migrated since. */
    int64_t v = 0;
    ret = read_user_version(st, &v);
    if (ret < 0) {
        snprintf(err, errsz, "cannot read the schema version: %s", sqlite3_errmsg(st->db));
        goto fail;
    }
    if (v >= (int64_t)m->version) {
        store_tx_rollback(st);
        return 0;
    }
    if (v != (int64_t)m->version - 1) {
        ret = -EIO;
        snprintf(err, errsz, "database schema version %" PRId64 " cannot take migration %s", v,
                 m->file);
        goto fail;
    }

    char *msg = NULL;
    int rc = sqlite3_exec(st->db, m->sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        /* Reported through ERR, which the caller logs: not logged here too. */
        snprintf(err, errsz, "migration %s failed: %s", m->file, msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        ret = rc == SQLITE_NOMEM ? -ENOMEM : -EIO;
        goto fail;
    }

    /* PRAGMA takes no parameters; the value is our own constant, not data. */
    char sql[64];
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %u", m->version);
    ret = exec_simple(st, sql, "set user_version");
    if (ret == 0)
        ret = store_tx_commit(st);
    if (ret < 0) {
        snprintf(err, errsz, "migration %s failed: %s", m->file, sqlite3_errmsg(st->db));
        goto fail;
    }
    log_info("store: applied migration %s", m->file);
    return 0;
fail:
    store_tx_rollback(st);
    return ret;
}

static int migrate(struct store *st, char *err, size_t errsz)
{
    for (unsigned i = 0; i < schema_migration_count; i++) {
        int ret = apply_migration(st, &schema_migrations[i], err, errsz);
        if (ret < 0)
            return ret;
    }
    return 0;
}

int store_open(const char *path, struct store **out, char *err, size_t errsz)
{
    struct store *st = NULL;
    int ret;

    *out = NULL;
    if (errsz)
        err[0] = '\0';
    if (!path || !*path) {
        snprintf(err, errsz, "no database path");
        return -EINVAL;
    }
    ret = check_embedded_migrations(err, errsz);
    if (ret < 0)
        return ret;
    ret = secure_files(path, err, errsz);
    if (ret < 0)
        return ret;

    st = calloc(1, sizeof(*st));
    if (!st) {
        snprintf(err, errsz, "out of memory");
        return -ENOMEM;
    }
    pthread_mutex_init(&st->lock, NULL);

    /* NOMUTEX: st->lock already serialises every use of the connection, sqlite3_errmsg
     * included. NOFOLLOW: secure_file refused a symlink; make SQLite agree. */
    int rc = sqlite3_open_v2(
        path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errsz, "cannot open database %s: %s", path,
                 st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
        ret = rc == SQLITE_NOMEM ? -ENOMEM : -EIO;
        goto fail;
    }
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);

    /* Refuse a newer schema before writing anything (even the switch to WAL), so an older
     * binary started by mistake leaves the database exactly as it found it. */
    int64_t version = 0;
    ret = read_user_version(st, &version);
    if (ret < 0) {
        snprintf(err, errsz, "cannot read database %s: %s", path, sqlite3_errmsg(st->db));
        goto fail;
    }
    if (version < 0) {
        snprintf(err, errsz, "database %s has an invalid schema version %" PRId64, path, version);
        ret = -EINVAL;
        goto fail;
    }
    if (version > (int64_t)schema_migration_count) {
        snprintf(err, errsz,
                 "database schema version %" PRId64
                 " is newer than this certd supports (%u); upgrade certd",
                 version, schema_migration_count);
        ret = -ENOTSUP;
        goto fail;
    }

    ret = configure(st, err, errsz);
    if (ret < 0)
        goto fail;
    ret = migrate(st, err, errsz);
    if (ret < 0)
        goto fail;

    *out = st;
    return 0;
fail:
    store_close(st);
    return ret;
}

void store_close(struct store *st)
{
    if (!st)
        return;
    /* Statements outside the cache are finalised by their users, so once the cache is cleared
     * close_v2 closes at once; with WAL the last connection checkpoints and removes -wal/-shm. */
    stmt_cache_clear(st);
    sqlite3_close_v2(st->db);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

int store_schema_version(struct store *st)
{
    int64_t v = 0;
    pthread_mutex_lock(&st->lock);
    int ret = read_user_version(st, &v);
    pthread_mutex_unlock(&st->lock);
    if (ret < 0)
        return ret;
    return v > INT32_MAX ? -EIO : (int)v;
}

int store_schema_latest(void)
{
    return (int)schema_migration_count;
}
