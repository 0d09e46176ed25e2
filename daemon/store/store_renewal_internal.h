/*
 * Private to the store module (and tests/unit/test_store_*.c), like store_internal.h: the
 * renewal queries (schema 3), kept here so a test can EXPLAIN exactly what the store runs, and
 * the checks store_keys.c and store_renewal.c share.
 *
 * Every due query walks a partial index on active certificates in time order. Removed domains
 * have no certificate timers (store_domain_remove clears them), so the domain test only filters
 * rows the index range already found: the cost is O(log n + due), whatever the history holds.
 */
#ifndef CERTD_STORE_STORE_RENEWAL_INTERNAL_H
#define CERTD_STORE_STORE_RENEWAL_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

/* Served by certificates_ari_next_check (status = 'active' AND ari_id IS NOT NULL). */
#define STORE_SQL_ARI_DUE                                                                          \
    "SELECT c.id FROM certificates c JOIN domains d ON d.id = c.domain_id"                         \
    " WHERE c.status = '" CERT_STATUS_ACTIVE "' AND c.ari_id IS NOT NULL"                          \
    " AND c.ari_next_check <= ?1 AND d.status <> '" DOMAIN_STATUS_REMOVED "'"                      \
    " ORDER BY c.ari_next_check, c.id LIMIT ?2"
#define STORE_SQL_NEXT_ARI_DUE                                                                     \
    "SELECT c.ari_next_check FROM certificates c JOIN domains d ON d.id = c.domain_id"             \
    " WHERE c.status = '" CERT_STATUS_ACTIVE "' AND c.ari_id IS NOT NULL"                          \
    " AND c.ari_next_check IS NOT NULL AND d.status <> '" DOMAIN_STATUS_REMOVED "'"                \
    " ORDER BY c.ari_next_check LIMIT 1"

/* Served by certificates_expiring (expiring_notified, expiring_at) WHERE status = 'active'. */
#define STORE_SQL_EXPIRING_DUE                                                                     \
    "SELECT c.id FROM certificates c JOIN domains d ON d.id = c.domain_id"                         \
    " WHERE c.status = '" CERT_STATUS_ACTIVE "' AND c.expiring_notified = 0"                       \
    " AND c.expiring_at <= ?1 AND d.status <> '" DOMAIN_STATUS_REMOVED "'"                         \
    " ORDER BY c.expiring_at, c.id LIMIT ?2"
#define STORE_SQL_NEXT_EXPIRING                                                                    \
    "SELECT c.expiring_at FROM certificates c JOIN domains d ON d.id = c.domain_id"                \
    " WHERE c.status = '" CERT_STATUS_ACTIVE "' AND c.expiring_notified = 0"                       \
    " AND c.expiring_at IS NOT NULL AND d.status <> '" DOMAIN_STATUS_REMOVED "'"                   \
    " ORDER BY c.expiring_at LIMIT 1"

/*
 * The FROM and WHERE of store_cert_list_expiring, after its column list (?1 = now). The flag is
 * 0 or 1 (CHECK), so "IN (0, 1)" selects every row while letting both ranges of the
 * certificates_expiring index serve the query; the result (only expiring certificates) is then
 * sorted by expiry.
 */
#define STORE_SQL_EXPIRING_LIST_FROM                                                               \
    " FROM certificates WHERE status = '" CERT_STATUS_ACTIVE "'"                                   \
    " AND expiring_notified IN (0, 1) AND expiring_at <= ?1"                                       \
    " AND EXISTS (SELECT 1 FROM domains d WHERE d.id = certificates.domain_id"                     \
    " AND d.status <> '" DOMAIN_STATUS_REMOVED "')"                                                \
    " ORDER BY not_after, id"

/* Served by orders_ca_created_at, covering. */
#define STORE_SQL_ORDERS_COUNT_SINCE                                                               \
    "SELECT COUNT(*), COALESCE(MIN(created_at), 0) FROM orders WHERE ca = ?1"                      \
    " AND created_at >= ?2"

/* Longest ari_id accepted: base64url of a key identifier (20 bytes in practice, at most a few
 * dozen) and of a serial (at most 20 octets, RFC 5280 §4.1.2.2), with generous room. */
#define STORE_ARI_ID_MAX 512

/* Whether S has the shape of an RFC 9773 §4.1 CertID: two non-empty base64url strings (no
 * padding) joined by one ".". */
bool store_ari_id_ok(const char *s);

/* Whether ARI times can be stored: none negative, and a window that, when both ends are set,
 * does not end before it starts (0 is "not set"). */
bool store_ari_times_ok(int64_t window_start, int64_t window_end, int64_t next_check);

#endif
