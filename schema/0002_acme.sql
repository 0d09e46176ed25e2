-- certd schema, version 2: what ACME issuance needs on top of version 1.
--
-- The conventions at the top of 0001_initial.sql hold here too (no BEGIN/COMMIT, portable types,
-- NULL for "not set", status values checked, JSON as TEXT never inspected by SQL).
--
-- Scheduling, from this version on: domains.next_attempt_at is the one time at which the
-- scheduler next starts an order for the domain (NULL: nothing planned), whether that is the
-- first issuance, a renewal or a retry after a failure. next_renewal_at only records when the
-- current certificate is due for renewal (a retry may come earlier).

-- Challenge responses published for an order (RFC 8555 §8), recorded before they are published so
-- a restarted daemon can withdraw what a crash left behind, and so the http-01 responder and the
-- API can find a key authorisation by token.
CREATE TABLE challenges (
    id                INTEGER PRIMARY KEY,
    order_id          INTEGER NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    type              TEXT    NOT NULL,                 -- "http-01", "dns-01", "tls-alpn-01"
    identifier        TEXT    NOT NULL,                 -- name validated (dns-01: record FQDN)
    token             TEXT    NOT NULL,
    key_authorization TEXT    NOT NULL,                 -- dns-01: the TXT value
    created_at        INTEGER NOT NULL
);
CREATE INDEX challenges_token ON challenges (token);
CREATE INDEX challenges_order_id ON challenges (order_id);

-- ARI (RFC 9773 §5) certificate identifier of the certificate an order replaces.
ALTER TABLE orders ADD COLUMN replaces TEXT;
-- 1 once certd is done with the order (a certificate stored, or given up on). An integer rather
-- than a BOOLEAN so both databases read it the same way.
ALTER TABLE orders ADD COLUMN finished INTEGER NOT NULL DEFAULT 0 CHECK (finished IN (0, 1));
-- Orders from version 1 that the CA already decided are over.
UPDATE orders SET finished = 1 WHERE status IN ('valid', 'invalid');
-- Resuming at start reads the unfinished orders only; they are few among many finished ones.
CREATE INDEX orders_unfinished ON orders (id) WHERE finished = 0;

-- Revocation by serial (RFC 8555 §7.6 and certctl revoke).
CREATE INDEX certificates_serial ON certificates (serial);

-- Give every managed domain of a version-1 database a time under the new meaning: a retry
-- already planned stays, otherwise the renewal time, otherwise now (never issued: queue it).
-- strftime is SQLite's spelling of "now"; a PostgreSQL twin would write extract(epoch ...).
UPDATE domains
   SET next_attempt_at = COALESCE(next_attempt_at, next_renewal_at,
                                  CAST(strftime('%s', 'now') AS INTEGER))
 WHERE status <> 'removed';
