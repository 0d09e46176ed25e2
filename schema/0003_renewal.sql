-- certd schema, version 3: renewal on top of version 2 (ACME Renewal Information, profiles, key
-- reuse, per-domain renewal policy, expiry warnings, order pacing).
--
-- The conventions at the top of 0001_initial.sql hold here too (no BEGIN/COMMIT, portable types,
-- NULL for "not set", flags as INTEGER 0/1 with a CHECK, text settings validated by the daemon).

-- Per-domain renewal settings.
--   reuse_key:    1 = a renewal keeps the current private key instead of generating a new one.
--   profile:      the ACME profile to order (draft-ietf-acme-profiles), NULL = the CA's default.
--   renew_before: "30d", "0.33", "33%" (sched/planner.h), NULL = the global [renewal] policy.
ALTER TABLE domains ADD COLUMN reuse_key INTEGER NOT NULL DEFAULT 0 CHECK (reuse_key IN (0, 1));
ALTER TABLE domains ADD COLUMN profile TEXT;
ALTER TABLE domains ADD COLUMN renew_before TEXT;

-- ACME Renewal Information (RFC 9773) of a certificate.
--   ari_id:           the certificate identifier of RFC 9773 §4.1,
--                     base64url(AKI keyIdentifier) "." base64url(serial DER); NULL when the
--                     certificate has no AKI (then ARI does not apply to it).
--   ari_window_start,
--   ari_window_end:   the CA's last suggestedWindow (§4.2), NULL until fetched.
--   ari_next_check:   when to fetch renewalInfo again (§4.3), NULL = never.
ALTER TABLE certificates ADD COLUMN ari_id TEXT;
ALTER TABLE certificates ADD COLUMN ari_window_start INTEGER;
ALTER TABLE certificates ADD COLUMN ari_window_end INTEGER;
ALTER TABLE certificates ADD COLUMN ari_next_check INTEGER;
-- When the certificate counts as close to expiry (planner_expiring_at), and whether the warning
-- was given, so it is given once.
ALTER TABLE certificates ADD COLUMN expiring_at INTEGER;
ALTER TABLE certificates ADD COLUMN expiring_notified INTEGER NOT NULL DEFAULT 0
    CHECK (expiring_notified IN (0, 1));
-- The certificate that superseded this one, NULL while none did (or after a purge).
ALTER TABLE certificates ADD COLUMN replaced_by INTEGER
    REFERENCES certificates (id) ON DELETE SET NULL;

-- The scheduler's ARI and expiry timers. Partial on status: superseded and revoked certificates
-- pile up as history and must cost nothing to the queries that run at every wake-up.
CREATE INDEX certificates_ari_next_check ON certificates (ari_next_check)
    WHERE status = 'active' AND ari_id IS NOT NULL;
-- expiring_notified first: "due and not yet warned" is an equality then a range, in time order.
CREATE INDEX certificates_expiring ON certificates (expiring_notified, expiring_at)
    WHERE status = 'active';

-- Pacing new orders per CA over a sliding window (store_orders_count_since).
CREATE INDEX orders_ca_created_at ON orders (ca, created_at);

-- Version-2 active certificates of managed domains get their expiry-warning time, the same rule
-- as planner_expiring_at: 7 days before not_after for lifetimes of 30 days or more, a sixth of
-- the lifetime before it for shorter ones. Their ari_id stays NULL: it needs the certificate's
-- AKI, which SQL cannot parse.
UPDATE certificates
   SET expiring_at = CASE WHEN not_after - not_before >= 30 * 86400 THEN not_after - 7 * 86400
                          ELSE not_after - (not_after - not_before) / 6 END
 WHERE status = 'active'
   AND domain_id IN (SELECT id FROM domains WHERE status <> 'removed');
