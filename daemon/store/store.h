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
    int64_t next_attempt_at; /* when the scheduler next starts an order; 0: nothing planned */
    int failure_count;
    char *last_error;        /* may be NULL */
    int64_t created_at;
    int64_t updated_at;
    /* Renewal settings (schema 3), written by store_domain_add and store_domain_update. */
    bool reuse_key;          /* renewals keep the current key */
    char *profile;           /* ACME profile name, NULL = the CA's default */
    char *renew_before;      /* renewal policy text (sched/planner.h), NULL = the global one */
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
    int64_t order_id;        /* the order that produced it, 0 if none (or purged) */
    char *serial;            /* hex, lower case */
    int64_t not_before;
    int64_t not_after;
    char *issuer;            /* issuer DN */
    char *fingerprint_sha256;/* hex of the leaf's DER */
    char *chain_pem;         /* leaf first; NULL in lists (see store_cert_list) */
    char *status;            /* CERT_STATUS_* */
    int64_t created_at;
    int64_t revoked_at;
    int revocation_reason;   /* RFC 5280 §5.3.1 CRLReason; meaningful only when revoked */
    /* ACME Renewal Information (RFC 9773) and expiry warnings (schema 3). */
    char *ari_id;            /* RFC 9773 §4.1 CertID "base64url(AKI keyIdentifier).base64url(serial
                                DER)", NULL when ARI does not apply (no AKI) */
    int64_t ari_window_start;/* the CA's suggestedWindow (§4.2), 0 until fetched */
    int64_t ari_window_end;
    int64_t ari_next_check;  /* when to fetch renewalInfo next (§4.3), 0 = never */
    int64_t expiring_at;     /* when it counts as close to expiry (planner_expiring_at), 0 unset */
    bool expiring_notified;  /* the expiry warning was given (store_cert_mark_expiring) */
    int64_t replaced_by;     /* the certificate that superseded it, 0 if none; read only */
    char *domain;            /* its domain's primary name: set by store_cert_list_expiring only,
                                NULL elsewhere */
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
 * certificate (issued for an older key) superseded. Either way next_attempt_at becomes now: the
 * first issuance is queued. D's reuse_key, profile and renew_before are stored as given (a
 * revived domain takes them too). -EEXIST when a managed domain already has that name. On
 * success *OUT (optional) is the stored domain.
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
 * Replaces the settings of the domain named D->name: alt names, challenge, key type, CA,
 * reuse_key, profile and renew_before (a NULL profile or renew_before clears it).
 * -ENOENT when missing or removed.
 *
 * Both store_domain_add and this refuse (-EINVAL) an empty or over-long profile or
 * renew_before: NULL is how "the default" is written. Their syntax is the API's business.
 */
int store_domain_update(struct store *st, const struct store_domain *d,
                        const struct store_event_in *ev, struct store_domain **out);

/*
 * Stops managing NAME: status removed, history kept; its active certificate's ARI and expiry
 * timers are cleared (ari_next_check and expiring_at), so nothing is due for it. With PURGE the
 * domain row, its names, keys, certificates and orders are deleted (events stay: the audit log
 * is append-only).
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

/*
 * Called after every commit that appended events, with the highest event id now committed.
 * It runs on the committing thread with the store locked: it must not call the store, only
 * wake whoever reads the events (the change feed, the delivery index). One hook; NULL removes.
 */
typedef void (*store_event_hook)(void *ctx, int64_t last_event_id);
void store_set_event_hook(struct store *st, store_event_hook hook, void *ctx);

/* -EINVAL when EV lacks type or actor or its detail_json is not a JSON object of at most 64 KiB;
 * the same check applies to the event of every mutation, which then fails as a whole. */
int store_event_add(struct store *st, const struct store_event_in *ev, int64_t *id_out);
/* Events with id > AFTER_ID, oldest first, at most LIMIT. */
int store_event_list(struct store *st, int64_t after_id, size_t limit,
                     struct store_event ***out, size_t *count);
void store_event_list_free(struct store_event **list, size_t count);
/* Highest event id, 0 when the log is empty. */
int store_event_last_id(struct store *st, int64_t *id_out);
/*
 * Lowest event id still kept; when the log is empty, the id the next event will get (1 for a
 * log that never had one). Ids start at 1 and the log only ever loses a prefix, so a reader
 * that has seen up to id A missed events exactly when A + 1 < *ID_OUT.
 */
int store_event_first_id(struct store *st, int64_t *id_out);
/*
 * Retention: deletes the oldest events, in id order, up to (not including) the first one created
 * at or after BEFORE_TIME. Stopping there rather than deleting every old row keeps the log a
 * contiguous run of ids even if the clock once went backwards, which store_event_first_id
 * relies on. Works in batches, each its own transaction, so the store is never held for long.
 * *DELETED (optional) is the number of events deleted, also on failure (what went before).
 * No event is recorded and the event hook does not fire. The only statement that deletes events.
 */
int store_events_prune(struct store *st, int64_t before_time, size_t *deleted);

/* ---- CAs and ACME accounts ---- */

struct store_account {
    int64_t id;
    char *ca;                /* CA name */
    char *directory_url;     /* the directory it was registered against */
    char *key_type;
    char *key_pem;           /* account private key (secret: wiped by store_account_free) */
    char *account_url;       /* NULL until newAccount succeeded */
    char *status;            /* "pending" | "valid" | "deactivated" | "revoked" */
    char *contact_json;      /* JSON array text, may be NULL */
    int64_t created_at;
    int64_t updated_at;
};

/*
 * The account for CA NAME, with its key PEM. -ENOENT when there is none yet. An account made
 * for another directory URL than DIRECTORY_URL (the config changed) is -ENOENT as well: the
 * caller creates a fresh one, which replaces it (the old row's key is kept nowhere else, which is
 * fine: an account key is only an identity). -EINVAL when CA or DIRECTORY_URL is missing.
 */
int store_account_get(struct store *st, const char *ca, const char *directory_url,
                      struct store_account **out);

/*
 * Creates or replaces the account of A->ca (ensuring the cas row for A->directory_url, whose
 * directory_url is updated when the configuration changed it), with key, status "pending" or as
 * given, URL and contact. Used before newAccount so the key is written before it is used.
 * A->ca, A->directory_url, A->key_type and A->key_pem are required, A->contact_json must be a
 * JSON array when given (-EINVAL otherwise). A replaced account's row goes away with its key,
 * and the orders made with it keep no account (their account_id reads 0): the new account is a
 * different identity at the CA, which an order must not be resumed with. Read the new row (and
 * its id, which may equal the old one) back with store_account_get.
 */
int store_account_put(struct store *st, const struct store_account *a,
                      const struct store_event_in *ev);

/* Updates URL, status, contact (and the key, when KEY_PEM is not NULL: key rollover, KEY_TYPE
 * then required) of the account of CA. A NULL ACCOUNT_URL, STATUS or CONTACT_JSON leaves that
 * field as it is. -ENOENT when there is none, -EINVAL for an unknown status or a contact that is
 * not a JSON array. */
int store_account_update(struct store *st, const char *ca, const char *account_url,
                         const char *status, const char *contact_json, const char *key_type,
                         const char *key_pem, const struct store_event_in *ev);

/* Every account, without key PEM, ordered by CA name. */
int store_account_list(struct store *st, struct store_account ***out, size_t *count);
void store_account_list_free(struct store_account **list, size_t count);
void store_account_free(struct store_account *a);

/* ---- orders (RFC 8555 §7.4), persisted at every step so a restart resumes ---- */

struct store_order {
    int64_t id;
    int64_t domain_id;
    int64_t account_id;      /* 0 if not yet known */
    char *ca;
    char *url;               /* NULL until newOrder succeeded */
    char *status;            /* "new" | "pending" | "ready" | "processing" | "valid" | "invalid" */
    char *step;              /* certd's resume point (see acme/order.c), may be NULL */
    char *finalize_url;
    char *certificate_url;
    int64_t key_id;          /* the private key the CSR is (or will be) made with */
    char *names_json;        /* JSON array of the ordered names */
    char *error_json;        /* the CA's problem document, verbatim, or NULL */
    char *replaces;          /* ARI certificate id this order replaces, or NULL */
    int64_t created_at;
    int64_t updated_at;
    int64_t expires_at;
    bool finished;           /* true once the order reached a final outcome for certd: a
                                certificate stored, or given up on */
};

/*
 * Creates an order (status "new", not finished) for O->domain_id with O->ca, O->key_id,
 * O->names_json (a JSON array) and, when given, account_id, url, step, finalize_url,
 * certificate_url, replaces and expires_at; *ID_OUT its id. -ENOENT when the domain is missing
 * or removed, -EINVAL when the key or the account does not fit (the key must be the domain's).
 */
int store_order_create(struct store *st, const struct store_order *o,
                       const struct store_event_in *ev, int64_t *id_out);

/* Writes every mutable field of O (account_id, url, status, step, finalize_url,
 * certificate_url, key_id, error_json, expires_at, finished) by O->id; domain, CA, names and
 * replaces are fixed at creation. EV may be NULL (no event for routine steps). -ENOENT when
 * there is no such order, -EINVAL for an unknown status or a key of another domain. */
int store_order_update(struct store *st, const struct store_order *o,
                       const struct store_event_in *ev);

/* The newest order of DOMAIN_ID; -ENOENT when it never had one. */
int store_order_latest(struct store *st, int64_t domain_id, struct store_order **out);
int store_order_get(struct store *st, int64_t order_id, struct store_order **out);

/* Every order not finished, oldest first (to resume at start). */
int store_order_list_unfinished(struct store *st, struct store_order ***out, size_t *count);
void store_order_list_free(struct store_order **list, size_t count);
void store_order_free(struct store_order *o);

/* ---- challenge responses published for an order, so a crash can clean up after itself ---- */

struct store_challenge {
    int64_t id;
    int64_t order_id;
    char *type;              /* "http-01" | "dns-01" | "tls-alpn-01" */
    char *identifier;        /* the name being validated (for dns-01 the FQDN of the record) */
    char *token;             /* ACME token */
    char *key_authorization; /* token.thumbprint (http-01 body); dns-01 stores the TXT value */
    int64_t created_at;
};

/* Records a published response (before it is published: a crash then errs on cleaning up).
 * Every string field is required; -ENOENT when the order does not exist. No event: routine. */
int store_challenge_add(struct store *st, const struct store_challenge *c, int64_t *id_out);
/* Forgets a response once it has been withdrawn. -ENOENT when it is not recorded. */
int store_challenge_delete(struct store *st, int64_t id);
/* Every recorded response, oldest first: of ORDER_ID, or of all orders when ORDER_ID is 0. */
int store_challenge_list(struct store *st, int64_t order_id, struct store_challenge ***out,
                         size_t *count);
/* The http-01 key authorisation for TOKEN (malloc'd); -ENOENT when no unfinished order
 * published it (a finished order's leftovers are never served). */
int store_challenge_find_token(struct store *st, const char *token, char **key_auth_out);
void store_challenge_list_free(struct store_challenge **list, size_t count);

/* ---- issuance outcomes ----
 * These refuse a domain that is missing or removed with -ENOENT: a worker that finishes after
 * its domain was removed must not bring the domain back. */

/*
 * Stores a new certificate C (chain_pem required) for its domain in one transaction: the
 * previous active certificate becomes superseded (its replaced_by = C's id), C becomes active
 * with the ARI and expiry fields exactly as given (ari_id, ari_window_start, ari_window_end,
 * ari_next_check, expiring_at, expiring_notified; the store computes none of them; 0 and NULL
 * write "not set"), the domain becomes active
 * with failure_count 0, last_error NULL, next_renewal_at and next_attempt_at = NEXT_RENEWAL_AT
 * (required, > 0), and the order C->order_id (if not 0) finished with status valid. *ID_OUT
 * (optional) is C's id. -EINVAL when C->key_id or C->order_id is not one of the domain's, when
 * C->ari_id is set but not of the form above, or when a time is negative or the ARI window ends
 * before it starts.
 */
int store_cert_add(struct store *st, const struct store_cert *c, int64_t next_renewal_at,
                   const struct store_event_in *ev, int64_t *id_out);

/* The certificate with SERIAL (lower-case hex), with chain PEM; -ENOENT when none. Should two
 * CAs have used the same serial, the newest certificate. */
int store_cert_get_by_serial(struct store *st, const char *serial, struct store_cert **out);

/* Marks certificate ID revoked with REASON (RFC 5280 §5.3.1 code: 0-10 except 7) at REVOKED_AT
 * (> 0). When it was the domain's active certificate, an active domain falls back to pending
 * (it has no usable certificate; scheduling a new one is the caller's business). -ENOENT when
 * there is no such certificate. */
int store_cert_set_revoked(struct store *st, int64_t id, int reason, int64_t revoked_at,
                           const struct store_event_in *ev);

/*
 * Adds a new private key for DOMAIN_ID and makes it current (the previous current one becomes
 * superseded), e.g. for key rotation or after a key compromise. K->pem and K->public_key_sha256
 * are required, K->key_type defaults to the domain's. *ID_OUT (optional) is its id.
 */
int store_key_add(struct store *st, int64_t domain_id, const struct store_key *k,
                  const struct store_event_in *ev, int64_t *id_out);

/*
 * Records a failed attempt: failure_count + 1, last_error ERROR (required; cut to the store's
 * text limit rather than refused, so a failure is always recorded), status "failed" when the
 * domain has no active certificate (it stays "active" otherwise: the current certificate still
 * serves), next_attempt_at NEXT_ATTEMPT_AT (0: no retry planned).
 */
int store_domain_record_failure(struct store *st, int64_t domain_id, const char *error,
                                int64_t next_attempt_at, const struct store_event_in *ev);

/* Sets next_attempt_at (0 clears it) and next_renewal_at when NEXT_RENEWAL_AT is not 0 of
 * DOMAIN_ID, e.g. "renew now" through the API. */
int store_domain_schedule(struct store *st, int64_t domain_id, int64_t next_attempt_at,
                          int64_t next_renewal_at, const struct store_event_in *ev);

/*
 * Moves DOMAIN_ID's renewal to NEXT_RENEWAL_AT (> 0), computed by the caller from CERT_ID, the
 * domain's active certificate, after a change of its renewal policy: next_renewal_at, and
 * next_attempt_at too unless a retry after a failure is planned (failure_count > 0), with event
 * EV, in one transaction. -ENOENT (nothing written) when the domain is not managed or CERT_ID is
 * no longer its active certificate (a renewal stored meanwhile planned from the new one).
 */
int store_domain_replan_renewal(struct store *st, int64_t domain_id, int64_t cert_id,
                                int64_t next_renewal_at, const struct store_event_in *ev);

/*
 * Managed domains whose next_attempt_at is set and <= NOW, earliest first (ties by id), at most
 * LIMIT, by id (*IDS malloc'd, NULL when COUNT is 0). Uses the next_attempt_at index: the cost
 * does not grow with the number of domains that are not due.
 */
int store_domains_due(struct store *st, int64_t now, size_t limit, int64_t **ids, size_t *count);
/* The earliest next_attempt_at among managed domains, 0 when none is set. */
int store_next_due(struct store *st, int64_t *when);

/* The domain with id ID (removed ones too); -ENOENT when there is none. */
int store_domain_get_by_id(struct store *st, int64_t id, struct store_domain **out);

/* ---- renewal: ARI, expiry warnings, pacing (schema 3) ---- */

/* Certificate CERT_ID with its chain PEM (any status); -ENOENT when there is none. */
int store_cert_get(struct store *st, int64_t cert_id, struct store_cert **out);

/*
 * Records the outcome of a renewalInfo fetch (RFC 9773 §4.2, §4.3) for CERT_ID: the suggested
 * window WINDOW_START..WINDOW_END (0 and 0: none known) and when to fetch again NEXT_CHECK
 * (0: never). No event: routine. -ENOENT when there is no such certificate, -EINVAL for a
 * negative time or a window that ends before it starts.
 */
int store_cert_set_ari(struct store *st, int64_t cert_id, int64_t window_start,
                       int64_t window_end, int64_t next_check);

/*
 * Active certificates of managed domains with an ari_id and ari_next_check <= NOW, earliest
 * first (ties by id), at most LIMIT, by id (*CERT_IDS malloc'd, NULL when COUNT is 0). Uses the
 * certificates_ari_next_check index: the cost does not grow with certificates not due nor with
 * superseded and revoked history.
 */
int store_ari_due(struct store *st, int64_t now, size_t limit, int64_t **cert_ids,
                  size_t *count);
/* The earliest ari_next_check among those certificates, 0 when none is set. */
int store_next_ari_due(struct store *st, int64_t *when);

/*
 * Active certificates of managed domains with expiring_at <= NOW whose warning was not given
 * yet, earliest first (ties by id), at most LIMIT, as for store_ari_due (certificates_expiring
 * index).
 */
int store_expiring_due(struct store *st, int64_t now, size_t limit, int64_t **cert_ids,
                       size_t *count);
/* The earliest expiring_at among active certificates not yet warned about, 0 when none. */
int store_next_expiring(struct store *st, int64_t *when);

/*
 * Sets CERT_ID's expiring_notified and appends EV in one transaction, so the warning is given
 * once. -ENOENT when there is no such certificate, -EALREADY when it was already marked
 * (nothing written, no event).
 */
int store_cert_mark_expiring(struct store *st, int64_t cert_id, const struct store_event_in *ev);

/*
 * Active certificates of managed domains with expiring_at <= NOW (warned about or not), the
 * soonest to expire first, without chain PEM but with ->domain set; for GET /v1/health. Freed
 * with store_cert_list_free.
 */
int store_cert_list_expiring(struct store *st, int64_t now, struct store_cert ***out,
                             size_t *count);

/*
 * The number of orders created for CA at or after SINCE (purged domains' orders are gone and
 * not counted), and OLDEST, the earliest created_at among them (0 when COUNT is 0): for pacing
 * new orders per CA over a sliding window. Uses the orders (ca, created_at) index. -EINVAL when
 * CA is NULL.
 */
int store_orders_count_since(struct store *st, const char *ca, int64_t since, int64_t *count,
                             int64_t *oldest);

/* ---- counters for GET /v1/health and certctl status ---- */

struct store_stats {
    int64_t domains;          /* managed (not removed) */
    int64_t domains_pending;
    int64_t domains_failed;
    int64_t certificates_active;
    int64_t next_renewal_at;  /* earliest among managed domains, 0 if none */
};
/* Fills OUT (zeroed first) from counters the database keeps in step with every write (schema 6):
 * cheap whatever the number of domains. 0, or a negative errno from the database. */
int store_stats(struct store *st, struct store_stats *out);

/* ---- API tokens for remote fleet members (schema 5) ----
 * The store keeps what the API hands it: the public id, a salt and the hash of the secret (never
 * the secret), the role and the scope. Deciding what a token may do is the API's business. */

#define TOKEN_ROLE_ADMIN    "admin"
#define TOKEN_ROLE_DEPLOYER "deployer"
#define TOKEN_ROLE_READER   "reader"

struct store_token {
    char *id;                /* public id (the part of the token that is not secret) */
    char *name;              /* unique among tokens not revoked */
    char *role;              /* TOKEN_ROLE_* */
    char *scope_json;        /* JSON array of scope entries, NULL = every domain */
    char *salt;              /* hex */
    char *hash;              /* hex SHA-256 over salt || secret */
    int64_t created_at;
    int64_t expires_at;      /* 0: never */
    int64_t revoked_at;      /* 0: live */
    int64_t last_used_at;    /* 0: never used */
};

/*
 * Stores token T (id, name, role, salt and hash required; scope_json a JSON array when given;
 * expires_at 0 or > 0) with created_at now. -EEXIST when the id is taken or a token that is not
 * revoked has the name, -EINVAL for a missing field, an unknown role or a bad scope.
 */
int store_token_add(struct store *st, const struct store_token *t,
                    const struct store_event_in *ev);
/* The token with public id ID (revoked and expired ones too); -ENOENT when there is none. */
int store_token_get(struct store *st, const char *id, struct store_token **out);
/* Every token, oldest first (then by name; revoked ones too), salt and hash included: callers
 * never show them. */
int store_token_list(struct store *st, struct store_token ***out, size_t *count);
/* Marks token ID revoked at REVOKED_AT (> 0). -ENOENT when there is none, -EALREADY when it
 * was revoked already (nothing written, no event). */
int store_token_revoke(struct store *st, const char *id, int64_t revoked_at,
                       const struct store_event_in *ev);
/* Records that token ID authenticated a request at WHEN. No event: routine. -ENOENT when there
 * is no such token. */
int store_token_touch(struct store *st, const char *id, int64_t when);
/*
 * A number that changes whenever a token is added or revoked through this store (a touch does
 * not count). Whoever caches tokens reads it before reading a token and drops what it cached
 * under an older number. It covers only this process's writes: a cache must also bound the age
 * of its entries for backends shared between nodes.
 */
uint64_t store_token_generation(struct store *st);
void store_token_free(struct store_token *t);
void store_token_list_free(struct store_token **list, size_t count);

#endif
