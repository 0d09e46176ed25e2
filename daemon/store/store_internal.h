/*
 * Private to the store module (and its unit tests): the connection, and the helpers every
 * store_*.c file uses to prepare, bind, step and map errors. Nothing outside daemon/store/ and
 * tests/unit/test_store_*.c may include this header.
 *
 * Locking: every public store_* function takes st->lock for its whole duration; the helpers
 * below assume it is held.
 */
#ifndef CERTD_STORE_STORE_INTERNAL_H
#define CERTD_STORE_STORE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/clock.h"

#include "store/store.h"

/*
 * Statements kept prepared between calls, at most this many per store. The store has about 80
 * distinct SQL texts; past the bound the least recently used idle statement is finalized to make
 * room, so a rarely used one costs a prepare again, never unbounded memory.
 */
#define STORE_STMT_CACHE_MAX 128

/* One cached statement, keyed by its SQL text (a copy, with its hash). */
struct store_stmt_slot {
    char *sql;
    uint64_t hash;
    sqlite3_stmt *stmt;
    uint64_t last_used; /* st->stmt_clock at its last hand-out, for eviction */
    bool in_use;        /* handed out by store_prepare and not released yet */
};

struct store {
    pthread_mutex_t lock;
    sqlite3 *db;
    /* store_prepare's cache: slots [0, stmt_count) are filled. Under the lock, like db. */
    struct store_stmt_slot stmts[STORE_STMT_CACHE_MAX];
    size_t stmt_count;
    uint64_t stmt_clock;
    /* store_set_event_hook: called after a commit that added events. */
    store_event_hook event_hook;
    void *event_hook_ctx;
    int64_t pending_event_id; /* highest event id inserted in the open transaction, 0 if none */
    /* store_token_generation: bumped after every committed change to a token other than a touch. */
    _Atomic uint64_t token_generation;
};

/* Fires the event hook for what the last commit added; the caller holds the lock. */
void store_events_committed(struct store *st);

/* The store's clock. A later clock module replaces this; until then every timestamp the store
 * writes comes from here, so tests and that change have one place to look. */
static inline int64_t store_now(void)
{
    return clock_now();
}

/* Longest detail_json accepted for an event; the API caps bodies at 64 KiB, details are smaller. */
#define STORE_EVENT_DETAIL_MAX (64 * 1024)
/* Longest string field (names, errors, URLs) the store accepts, PEM excepted. */
#define STORE_TEXT_MAX (16 * 1024)
/* Longest JSON value kept for an order (its names: NAMES_MAX quoted names of up to 253 bytes;
 * the CA's problem document, subproblems included). */
#define STORE_JSON_MAX (64 * 1024)
/* Longest PEM (a certificate chain or an RSA-4096 key) the store accepts. */
#define STORE_PEM_MAX (256 * 1024)

/*
 * Maps the connection's last error for RC to a negative errno: UNIQUE/PRIMARY KEY conflicts
 * become -EEXIST (not logged: callers expect them), out-of-memory -ENOMEM, anything else -EIO,
 * logged once as "store: WHAT: <sqlite message>" (SQLite messages name columns, never values).
 */
int store_db_error(struct store *st, int rc, const char *what);

/*
 * Hands out a statement for SQL (a constant: never data) in *OUT, reset and with no bindings,
 * or a mapped error with *OUT NULL. The statement comes from the store's cache, prepared once
 * (SQLite re-prepares it by itself after a schema change); when the cached one for SQL is still
 * out (a nested use of the same SQL) or the cache cannot take it, a fresh statement is prepared
 * for this use only. Either way the caller gives it back with store_release, never
 * sqlite3_finalize.
 */
int store_prepare(struct store *st, const char *sql, sqlite3_stmt **out);

/*
 * Gives back S from store_prepare (NULL is a no-op): a cached statement is reset (ending any
 * read it had open, so it holds no snapshot) and its bindings cleared, ready for the next
 * store_prepare of its SQL; any other is finalized. An error S's last step returned is not
 * reported again: the caller has already seen it.
 */
void store_release(struct store *st, sqlite3_stmt *s);

/* Bind helpers; TEXT is bound without a copy (SQLITE_STATIC), so it must outlive the step.
 * A NULL string binds SQL NULL; a 0 time binds SQL NULL ("not set"). */
int store_bind_text(struct store *st, sqlite3_stmt *s, int idx, const char *text);
int store_bind_int64(struct store *st, sqlite3_stmt *s, int idx, int64_t v);
int store_bind_time(struct store *st, sqlite3_stmt *s, int idx, int64_t t);

/* A row id of 0 ("none") binds SQL NULL, like a 0 time. */
static inline int store_bind_id(struct store *st, sqlite3_stmt *s, int idx, int64_t id)
{
    return store_bind_time(st, s, idx, id);
}

/* Steps a statement that returns no row (INSERT/UPDATE/DELETE). 0 or a mapped error. */
int store_step_done(struct store *st, sqlite3_stmt *s, const char *what);

/* Steps S and expects a row: 0 when S is on one, -ENOENT when there is none, or a mapped error
 * (logged as WHAT). */
int store_step_row(struct store *st, sqlite3_stmt *s, const char *what);

/* Steps a statement that must change a row (UPDATE/DELETE of one row): 0, -ENOENT when it
 * changed none, or a mapped error (logged as WHAT). */
int store_step_changed(struct store *st, sqlite3_stmt *s, const char *what);

/* Copies text column COL into *OUT (NULL for SQL NULL). 0 or -ENOMEM. */
int store_col_strdup(sqlite3_stmt *s, int col, char **out);

/* Returns LIST (N elements of ELEM bytes, room for *CAP) with room for at least one more,
 * updating *CAP: LIST itself when there is room, a reallocation otherwise, or NULL on
 * allocation failure with LIST untouched. */
void *store_list_grow(void *list, size_t *cap, size_t n, size_t elem);

/* A list being collected from rows: ITEMS (malloc'd) holds N elements, with room for CAP. */
struct store_rows {
    void *items;
    size_t n, cap;
};

/* Converts the row S is on into the list element at ITEM (CTX is store_rows_collect's). 0 or a
 * negative errno; on error nothing is left at ITEM to free. */
typedef int (*store_row_fn)(sqlite3_stmt *s, void *item, void *ctx);

/*
 * Steps S (prepared and bound) to its last row, appending one element of ELEM bytes per row to
 * ROWS through ROW. 0 once every row is read; -ENOMEM, ROW's error, or a step error mapped and
 * logged as WHAT. On error ROWS keeps the elements converted so far, for the caller to free
 * with the list.
 */
int store_rows_collect(struct store *st, sqlite3_stmt *s, struct store_rows *rows, size_t elem,
                       store_row_fn row, void *ctx, const char *what);

/* Row converter for a list of int64_t: column 0. */
int store_row_id(sqlite3_stmt *s, void *item, void *ctx);

/*
 * Takes the lock and runs SQL, a due query (?1 = NOW, ?2 = LIMIT, one id column), into *IDS
 * (malloc'd, *COUNT of them; NULL and 0 when none or LIMIT is 0). Errors are logged as WHAT.
 */
int store_ids_due(struct store *st, const char *sql, int64_t now, size_t limit, const char *what,
                  int64_t **ids, size_t *count);

/* Takes the lock and runs SQL, a "next time" query (no parameter, one time column, at most one
 * row): *WHEN is that time, 0 when there is no row. Errors are logged as WHAT. */
int store_next_time(struct store *st, const char *sql, const char *what, int64_t *when);

/* BEGIN IMMEDIATE: take the write lock up front so a transaction never fails half-way with
 * SQLITE_BUSY on its first write. */
int store_tx_begin(struct store *st);
int store_tx_commit(struct store *st);
/* Rolls back if a transaction is still open (SQLite ends some on its own after an error). */
void store_tx_rollback(struct store *st);
/*
 * Ends the transaction the caller began with store_tx_begin, RET being its outcome so far:
 * releases S (NULL for none) first, then when RET is 0 inserts EV (unless NULL) and commits;
 * when RET or either of those is an error, rolls back. Returns 0 or the first error.
 */
int store_tx_finish(struct store *st, sqlite3_stmt *s, int ret, const struct store_event_in *ev);

/* Checks an event and inserts it; the caller holds the lock and, for mutations, a transaction.
 * -EINVAL when type or actor is missing or detail_json is not a JSON object. */
int store_event_insert(struct store *st, const struct store_event_in *ev, int64_t *id_out);

/*
 * 0 when domain ID exists and is managed (not removed), -ENOENT otherwise. When KEY_TYPE is not
 * NULL, *KEY_TYPE is the domain's key type (malloc'd). Lives in store_domains.c.
 */
int store_domain_check_managed(struct store *st, int64_t id, char **key_type);

/* Makes KEY (pem and public_key_sha256 set) DOMAIN_ID's current key with type KEY_TYPE; an
 * earlier current key becomes superseded. *ID_OUT (optional) is the new key's id. The caller
 * holds a transaction. Lives in store_domains.c. */
int store_key_insert_current(struct store *st, int64_t domain_id, const struct store_key *key,
                             const char *key_type, int64_t now, int64_t *id_out);

/*
 * The scheduler's queries, here so a test can EXPLAIN exactly what the store runs. Removed
 * domains have no timers (store_domain_remove clears them), so the status test only filters
 * rows the index range already found: due domains cost O(log n + due), whatever n is.
 */
#define STORE_SQL_DOMAINS_DUE                                                                      \
    "SELECT id FROM domains WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= ?1"           \
    " AND status <> '" DOMAIN_STATUS_REMOVED "' ORDER BY next_attempt_at, id LIMIT ?2"
#define STORE_SQL_NEXT_DUE                                                                         \
    "SELECT next_attempt_at FROM domains WHERE next_attempt_at IS NOT NULL"                        \
    " AND status <> '" DOMAIN_STATUS_REMOVED "' ORDER BY next_attempt_at LIMIT 1"

/* Whether SQL (binding A to ?1, and B to ?2 when SQL has one) yields a row. Lives in
 * store_keys.c. */
int store_row_exists(struct store *st, const char *sql, int64_t a, int64_t b, const char *what,
                     bool *exists);

/* For tests only: the connection, to check per-connection settings such as foreign_keys. */
sqlite3 *store_sqlite_handle(struct store *st);

#endif
