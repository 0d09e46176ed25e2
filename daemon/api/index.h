/*
 * The delivery index: every current certificate of every managed domain, held in memory ready to
 * be served, so GET /v1/sni and GET /v1/domains/{name}/bundle answer without touching the store
 * (fast at 100,000 domains).
 *
 * Two hash maps (open addressing, linear probing): every name a domain's current certificate is
 * served for -> the entries serving it, and every primary name -> its entry. An entry is
 * immutable once built and reference-counted: a lookup takes a reference under the read lock and
 * the caller keeps using the entry while an update swaps in a new one; the last reference frees
 * it. Private key material in entries is wiped before it is freed and never logged.
 *
 * Kept in step with the store: index_start loads every domain, then a thread follows the audit
 * log (woken through the events bus) and reloads each domain named by a certificate.*, domain.*
 * or key.* event.
 *
 * Names: an entry is reachable under each of its domain's names (primary and alt names) that its
 * certificate's leaf actually carries as a dNSName, so a name added to a domain is served only
 * once a certificate covers it, and a name taken off the domain is not served any more.
 */
#ifndef CERTD_API_INDEX_H
#define CERTD_API_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct delivery_index;
struct index_entry;
struct store;
struct events_bus;

/* ---- life cycle ---- */

/* An empty index, not following anything. 0 or -ENOMEM. */
int index_new(struct delivery_index **out);

/*
 * Loads every managed domain that has an active certificate from ST (the cursor starts at the
 * last event id read before the load, so changes made during the load are applied again), then
 * starts a thread that waits on BUS and applies the events after the cursor. The load runs on the
 * caller's thread: when index_start returns, lookups see the whole store. ST and BUS must outlive
 * the index (stop it first). 0 or a negative errno (-EIO when the store cannot be read, -EALREADY
 * when started already, -ENOMEM).
 */
int index_start(struct delivery_index *idx, struct store *st, struct events_bus *bus);

/* Stops the thread (if started) and frees the index. Entries still referenced by callers live
 * until their last index_entry_put. NULL-safe. */
void index_free(struct delivery_index *idx);

/* ---- keeping it in step (index_start does this; exposed for tests) ---- */

/* What an entry is built from. Strings are borrowed and copied. */
struct index_source {
    int64_t domain_id;
    const char *primary;      /* normalised primary name */
    const char *const *names; /* the domain's names, primary first (normalised,
                                 wildcards as "*.example.com") */
    size_t name_count;
    const char *const *cert_names; /* the leaf's dNSNames: of NAMES only those also here are
                                      served (compared ASCII case-insensitively) */
    size_t cert_name_count;
    const char *chain_pem; /* leaf first */
    const char *key_pem;   /* the private key of the leaf: secret */
    int64_t key_id;
    const char *serial;
    const char *issuer;             /* may be NULL */
    const char *fingerprint_sha256; /* hex of the leaf's DER */
    int64_t not_before;
    int64_t not_after;
};

/*
 * Builds an entry from SRC and makes it the one of SRC->primary, replacing any previous entry of
 * that primary name in one step (a lookup sees the old or the new one, never neither). -EINVAL
 * for a missing field or a name over 253 octets, -ENOMEM.
 */
int index_put(struct delivery_index *idx, const struct index_source *src);

/* Forgets the entry of PRIMARY. 0, or -ENOENT when there was none. */
int index_drop(struct delivery_index *idx, const char *primary);

/*
 * Reloads PRIMARY from ST: index_put when it is a managed domain with an active certificate and
 * its key, index_drop otherwise (removed, purged, revoked, no certificate yet). A store failure
 * other than "no such row" leaves the entry as it was and returns -EIO.
 */
int index_refresh_domain(struct delivery_index *idx, struct store *st, const char *primary);

/* Number of entries (domains) and of names in the SNI map. */
size_t index_domain_count(struct delivery_index *idx);
size_t index_name_count(struct delivery_index *idx);

/* The id of the last event the index has applied (0 before index_start). */
int64_t index_cursor(struct delivery_index *idx);

/* The strong entity tag (RFC 9110 §8.8.3) certd gives a certificate: "\"<first 32 hex digits of
 * FINGERPRINT_HEX>-<ID>\"", quotes included, in OUT. Entries use their leaf's fingerprint and key
 * id, so the tag changes with the certificate or the key. */
#define INDEX_ETAG_SIZE 80
void index_etag_format(char out[INDEX_ETAG_SIZE], const char *fingerprint_hex, int64_t id);

/* ---- lookups: each returns a new reference (release with index_entry_put) or NULL ---- */

/* Whether the caller may be handed entry E; evaluated under the index's read lock: quick, and
 * calling no index function. */
typedef bool (*index_visible_fn)(const struct index_entry *e, void *ctx);

/*
 * Normalises a TLS server name (RFC 6066 §3: ASCII, A-labels for IDNs) for lookup into OUT: one
 * trailing dot removed, ASCII letters lower-cased. -EINVAL when it is empty, longer than 253
 * octets or holds anything but letters, digits, '-', '.' and '*'.
 */
int index_sni_normalize(const char *host, char out[254]);

/*
 * The best entry for the server name HOST that VISIBLE (NULL: all) accepts: first an entry
 * serving HOST itself, then one serving "*." + HOST without its first label (a wildcard covers
 * exactly one label, RFC 6125 §6.4.3: "a.b.example.com" never matches "*.example.com"; a HOST
 * whose first label is "*" only matches exactly). Among several entries for the same name the
 * best is the domain whose primary name it is, then the one expiring last, then the lowest id.
 * HOST is normalised with index_sni_normalize; NULL when invalid or not found.
 */
struct index_entry *index_lookup_sni(struct delivery_index *idx, const char *host,
                                     index_visible_fn visible, void *ctx);

/* The entry of the managed domain whose normalised primary name is PRIMARY. */
struct index_entry *index_lookup_domain(struct delivery_index *idx, const char *primary);

/* Takes another reference / releases one (the last frees the entry, wiping its key). NULL-safe. */
struct index_entry *index_entry_get(struct index_entry *e);
void index_entry_put(struct index_entry *e);

/* ---- what an entry holds (public: no key material) ---- */

int64_t index_entry_domain_id(const struct index_entry *e);
const char *index_entry_primary(const struct index_entry *e);
/* The names it is served under, primary first when it is served under it. */
const char *const *index_entry_names(const struct index_entry *e, size_t *count);
/* The entity tag of the entry's certificate and key (index_etag_format), quotes included. */
const char *index_entry_etag(const struct index_entry *e);

/* The chain, leaf first, NUL-terminated and ending with a newline; *LEN (optional) its length. */
const char *index_entry_chain_pem(const struct index_entry *e, size_t *len);
const char *index_entry_serial(const struct index_entry *e);
const char *index_entry_issuer(const struct index_entry *e); /* may be NULL */
const char *index_entry_fingerprint(const struct index_entry *e);
int64_t index_entry_key_id(const struct index_entry *e);
int64_t index_entry_not_before(const struct index_entry *e);
int64_t index_entry_not_after(const struct index_entry *e);

/* ---- THE one accessor of key material ---- */

enum index_secret {
    INDEX_SECRET_KEY_PEM,  /* the private key as PKCS#8 PEM, ending with a newline */
};

/*
 * The private key of E in form WHAT, NUL-terminated, *LEN (optional) its length; valid while the
 * caller holds its reference. The only way key material leaves the index: call it only for a
 * caller the router and the scope check let through (h_deliver.c), hand it straight to the
 * response, never copy, log or keep it.
 */
const char *index_entry_secret(const struct index_entry *e, enum index_secret what, size_t *len);

/*
 * Answers built from E once and kept with it, so that serving an entry costs no rendering, and
 * sent as one buffer (libmicrohttpd sends every piece of a scattered body as its own TLS record).
 * They hold the private key: the rules of index_entry_secret apply, and they are wiped when the
 * entry is freed.
 */
enum index_body {
    INDEX_BODY_SNI,    /* GET /v1/sni */
    INDEX_BODY_BUNDLE, /* GET /v1/domains/{name}/bundle */
    INDEX_BODY_KINDS
};

/*
 * The body WHAT of E: made by RENDER (malloc'd, NUL-terminated; it may call index_entry_secret)
 * on the first call, the same bytes afterwards; *LEN (optional) its length. NULL when RENDER
 * fails. Valid while the caller holds E.
 */
const char *index_entry_body(struct index_entry *e, enum index_body what,
                             char *(*render)(const struct index_entry *), size_t *len);

#endif
