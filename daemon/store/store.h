/*
 * The store: every piece of durable state (domains, keys, certificates, CAs, accounts, orders,
 * events). The only module that speaks SQL; SQLite today, so nothing in this header may name
 * SQLite. Thread-safe: calls are serialised inside the store.
 *
 * Errors: 0 on success, or a negative errno:
 *   -ENOENT  no such row,   -EEXIST  unique name taken,   -EINVAL  argument refused,
 *   -ENOMEM, -EIO           database error (logged once by the store, with its message).
 * Times are Unix seconds (int64_t); 0 means "not set".
 * Objects returned through an out-pointer are owned by the caller and freed with the matching
 * *_free function (NULL-safe). Private key PEM is wiped before its memory is released.
 *
 * Every mutation takes a `struct store_event_in` and appends that event to the audit log in the
 * same transaction, so the log can never disagree with the state.
 */
#ifndef CERTD_STORE_STORE_H
#define CERTD_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

/* What the daemon records in the audit log. All strings borrowed. */
struct store_event_in {
    const char *type;        /* e.g. "domain.added" */
    const char *domain;      /* primary name, or NULL */
    const char *actor;       /* "uid:0(root)", "certd", ... */
    const char *detail_json; /* a JSON object as text, or NULL for {} */
};

struct store_event {
    int64_t id;              /* strictly increasing, never reused */
    int64_t created_at;
    char *type;
    char *domain;            /* may be NULL */
    char *actor;
    char *detail_json;       /* JSON object text, never NULL */
};

/* Domain status values. */
#define DOMAIN_STATUS_PENDING "pending"   /* no certificate yet */
#define DOMAIN_STATUS_ACTIVE  "active"    /* has a current certificate */
#define DOMAIN_STATUS_FAILED  "failed"    /* last issuance failed, retries pending */
#define DOMAIN_STATUS_REMOVED "removed"   /* no longer managed; history kept */

struct store_domain {
    int64_t id;
    char *name;              /* primary name, normalised */
    char **alt_names;        /* normalised, in the order given, primary not repeated */
    size_t alt_count;
    char *challenge;         /* "http-01" | "dns-01" | "tls-alpn-01" */
    char *key_type;          /* "ec-p256" | ... */
    char *ca;                /* CA name from config */
    char *status;            /* DOMAIN_STATUS_* */
    int64_t next_renewal_at;
    int failure_count;
    char *last_error;        /* may be NULL */
    int64_t created_at;
    int64_t updated_at;
};

/* Key status values: one "current" key per domain at most. */
#define KEY_STATUS_CURRENT    "current"
#define KEY_STATUS_SUPERSEDED "superseded"

struct store_key {
    int64_t id;
    int64_t domain_id;
    char *key_type;
    char *pem;               /* PKCS#8 PEM; NULL unless fetched with store_key_get_pem */
    char *public_key_sha256; /* hex SHA-256 of the SubjectPublicKeyInfo, for matching */
    char *status;            /* KEY_STATUS_* */
    int64_t created_at;
};

#define CERT_STATUS_ACTIVE     "active"
#define CERT_STATUS_SUPERSEDED "superseded"
#define CERT_STATUS_REVOKED    "revoked"

struct store_cert {
    int64_t id;
    int64_t domain_id;
    int64_t key_id;
    char *serial;            /* hex, lower case */
    int64_t not_before;
    int64_t not_after;
    char *issuer;            /* issuer DN */
    char *fingerprint_sha256;/* hex of the leaf's DER */
    char *chain_pem;         /* leaf first; NULL in lists (see store_cert_list) */
    char *status;            /* CERT_STATUS_* */
    int64_t created_at;
    int64_t revoked_at;
};

/* ---- lifecycle ---- */

/*
 * Opens (creating with mode 0600 if missing) the database at PATH, sets WAL, foreign keys and a
 * busy timeout, and applies pending migrations, each in its own transaction. A database whose
 * schema is newer than this binary is refused (-ENOTSUP, the database left untouched). On failure
 * returns a negative errno and writes a one-line reason to ERR.
 */
int store_open(const char *path, struct store **out, char *err, size_t errsz);
void store_close(struct store *st);

/* Schema version of the open database, and the newest one this binary knows. */
int store_schema_version(struct store *st);
int store_schema_latest(void);

/* ---- domains ---- */

/*
 * Adds domain D (id, status, times and counters ignored; status becomes pending) with its first
 * private key KEY (KEY->pem and KEY->public_key_sha256 required; KEY->key_type defaults to
 * D->key_type), stored as the domain's current key. A removed domain of the same name is brought
 * back with D's settings: its history is kept, its older keys become superseded and its active
 * certificate (issued for an older key) superseded. -EEXIST when a managed domain already has
 * that name. On success *OUT (optional) is the stored domain.
 */
int store_domain_add(struct store *st, const struct store_domain *d, const struct store_key *key,
                     const struct store_event_in *ev, struct store_domain **out);

/* -ENOENT when no domain (removed ones included) has NAME. */
int store_domain_get(struct store *st, const char *name, struct store_domain **out);

/*
 * Lists domains ordered by name, starting after AFTER_NAME (NULL for the start), at most LIMIT.
 * Removed domains only when INCLUDE_REMOVED. *OUT is an array of COUNT pointers, freed with
 * store_domain_list_free.
 */
int store_domain_list(struct store *st, const char *after_name, size_t limit,
                      bool include_removed, struct store_domain ***out, size_t *count);
void store_domain_list_free(struct store_domain **list, size_t count);

/*
 * Replaces the settings of the domain named D->name: alt names, challenge, key type and CA.
 * -ENOENT when missing or removed.
 */
int store_domain_update(struct store *st, const struct store_domain *d,
                        const struct store_event_in *ev, struct store_domain **out);

/*
 * Stops managing NAME: status removed, history kept. With PURGE the domain row, its names, keys,
 * certificates and orders are deleted (events stay: the audit log is append-only).
 * -ENOENT when there is no such domain (or, without PURGE, it is already removed).
 */
int store_domain_remove(struct store *st, const char *name, bool purge,
                        const struct store_event_in *ev);

void store_domain_free(struct store_domain *d);

/* ---- keys and certificates ---- */

/* Every key of DOMAIN_ID, newest first, without PEM. */
int store_key_list(struct store *st, int64_t domain_id, struct store_key ***out, size_t *count);
void store_key_list_free(struct store_key **list, size_t count);
/* The domain's current key, without PEM; -ENOENT when it has none. */
int store_key_current(struct store *st, int64_t domain_id, struct store_key **out);
/* Loads KEY_ID with its PEM. The caller wipes nothing: store_key_free does. */
int store_key_get_pem(struct store *st, int64_t key_id, struct store_key **out);
void store_key_free(struct store_key *k);

/* Every certificate of DOMAIN_ID, newest first, without chain PEM. */
int store_cert_list(struct store *st, int64_t domain_id, struct store_cert ***out, size_t *count);
void store_cert_list_free(struct store_cert **list, size_t count);
/* The domain's active certificate with its chain PEM; -ENOENT when it has none. */
int store_cert_current(struct store *st, int64_t domain_id, struct store_cert **out);
void store_cert_free(struct store_cert *c);

/* ---- events ---- */

/* -EINVAL when EV lacks type or actor or its detail_json is not a JSON object of at most 64 KiB;
 * the same check applies to the event of every mutation, which then fails as a whole. */
int store_event_add(struct store *st, const struct store_event_in *ev, int64_t *id_out);
/* Events with id > AFTER_ID, oldest first, at most LIMIT. */
int store_event_list(struct store *st, int64_t after_id, size_t limit,
                     struct store_event ***out, size_t *count);
void store_event_list_free(struct store_event **list, size_t count);
/* Highest event id, 0 when the log is empty. */
int store_event_last_id(struct store *st, int64_t *id_out);

/* ---- counters for GET /v1/health and certctl status ---- */

struct store_stats {
    int64_t domains;          /* managed (not removed) */
    int64_t domains_pending;
    int64_t domains_failed;
    int64_t certificates_active;
    int64_t next_renewal_at;  /* earliest among managed domains, 0 if none */
};
int store_stats(struct store *st, struct store_stats *out);

#endif
