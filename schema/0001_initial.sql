-- certd schema, version 1.
--
-- Migrations are forward-only: never edit a released file, add NNNN_what.sql instead. The store
-- runs each file inside its own BEGIN IMMEDIATE ... COMMIT together with PRAGMA user_version, so a
-- file must not contain BEGIN/COMMIT (or PRAGMAs that are no-ops inside a transaction, such as
-- foreign_keys or journal_mode).
--
-- Conventions, kept portable so a PostgreSQL schema can mirror this one table for table:
--   * times are INTEGER Unix seconds; NULL means "not set" (the C API reports it as 0);
--   * status columns are TEXT with a CHECK listing the values;
--   * key types, challenge types and CA names are TEXT without a CHECK: they are validated by the
--     daemon, and a new key type must not require rebuilding a table (SQLite cannot alter a CHECK);
--   * JSON values are stored as TEXT and never inspected by SQL.
-- Only the AUTOINCREMENT and the triggers on events are SQLite syntax.

-- ACME CAs the daemon has talked to. The configuration names them; this row gives an account a
-- stable parent and remembers which directory URL it was registered against.
CREATE TABLE cas (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    directory_url TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);

-- One ACME account per CA (RFC 8555 §7.3). key_pem is the account's private key: a secret.
CREATE TABLE accounts (
    id          INTEGER PRIMARY KEY,
    ca_id       INTEGER NOT NULL UNIQUE REFERENCES cas (id),
    key_type    TEXT    NOT NULL,
    key_pem     TEXT    NOT NULL,
    account_url TEXT,                                   -- NULL until the CA created it
    -- RFC 8555 §7.1.2 account status, or 'pending' before newAccount succeeded.
    status      TEXT    NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'valid', 'deactivated', 'revoked')),
    contact     TEXT,                                   -- JSON array of contact URLs, as sent
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- Managed domains: one row per certificate lineage, named by its primary name.
CREATE TABLE domains (
    id              INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL UNIQUE,            -- normalised primary name
    challenge       TEXT    NOT NULL,
    key_type        TEXT    NOT NULL,
    ca              TEXT    NOT NULL,                   -- CA name from the configuration
    status          TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'active', 'failed', 'removed')),
    next_renewal_at INTEGER,
    failure_count   INTEGER NOT NULL DEFAULT 0 CHECK (failure_count >= 0),
    last_error      TEXT,
    next_attempt_at INTEGER,                            -- retry after a failure
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
-- The scheduler sleeps until the earliest of these.
CREATE INDEX domains_next_renewal_at ON domains (next_renewal_at);
CREATE INDEX domains_next_attempt_at ON domains (next_attempt_at);

-- A domain's alternative names, in the order given; the primary name is not repeated.
CREATE TABLE domain_names (
    domain_id INTEGER NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    position  INTEGER NOT NULL CHECK (position >= 0),
    name      TEXT    NOT NULL,
    PRIMARY KEY (domain_id, name),
    UNIQUE (domain_id, position)
);

-- Certificate private keys. key_pem is PKCS#8 PEM: a secret, read only by store_key_get_pem.
CREATE TABLE private_keys (
    id                INTEGER PRIMARY KEY,
    domain_id         INTEGER NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    key_type          TEXT    NOT NULL,
    key_pem           TEXT    NOT NULL,
    public_key_sha256 TEXT    NOT NULL,
    status            TEXT    NOT NULL CHECK (status IN ('current', 'superseded')),
    created_at        INTEGER NOT NULL
);
CREATE INDEX private_keys_domain_id ON private_keys (domain_id);
CREATE UNIQUE INDEX private_keys_one_current ON private_keys (domain_id) WHERE status = 'current';

-- ACME orders in flight or done, so a restarted daemon resumes instead of ordering again.
CREATE TABLE orders (
    id              INTEGER PRIMARY KEY,
    domain_id       INTEGER NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    account_id      INTEGER REFERENCES accounts (id),
    ca              TEXT    NOT NULL,
    url             TEXT,                               -- NULL until newOrder succeeded
    -- RFC 8555 §7.1.6 order status, or 'new' before the CA knows the order.
    status          TEXT    NOT NULL DEFAULT 'new'
                    CHECK (status IN ('new', 'pending', 'ready', 'processing', 'valid',
                                      'invalid')),
    step            TEXT,                               -- certd's own resume point
    finalize_url    TEXT,
    certificate_url TEXT,
    key_id          INTEGER NOT NULL REFERENCES private_keys (id),
    names           TEXT    NOT NULL,                   -- JSON array of the ordered names
    error_json      TEXT,                               -- RFC 7807/9457 problem from the CA
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    expires_at      INTEGER
);
CREATE INDEX orders_domain_id ON orders (domain_id);
CREATE INDEX orders_key_id ON orders (key_id);

-- Issued certificates. chain_pem is the leaf first, then the intermediates, as the CA sent them.
CREATE TABLE certificates (
    id                 INTEGER PRIMARY KEY,
    domain_id          INTEGER NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    key_id             INTEGER NOT NULL REFERENCES private_keys (id),
    order_id           INTEGER REFERENCES orders (id) ON DELETE SET NULL,
    serial             TEXT    NOT NULL,                -- lower-case hex
    not_before         INTEGER NOT NULL,
    not_after          INTEGER NOT NULL,
    issuer             TEXT    NOT NULL,
    fingerprint_sha256 TEXT    NOT NULL,
    chain_pem          TEXT    NOT NULL,
    status             TEXT    NOT NULL CHECK (status IN ('active', 'superseded', 'revoked')),
    created_at         INTEGER NOT NULL,
    revoked_at         INTEGER,
    revocation_reason  INTEGER CHECK (revocation_reason BETWEEN 0 AND 10), -- RFC 5280 §5.3.1
    CHECK (status <> 'revoked' OR revoked_at IS NOT NULL)
);
CREATE INDEX certificates_domain_id ON certificates (domain_id);
CREATE INDEX certificates_key_id ON certificates (key_id);
CREATE INDEX certificates_order_id ON certificates (order_id);
CREATE UNIQUE INDEX certificates_one_active ON certificates (domain_id) WHERE status = 'active';

-- The audit log, also served as a feed (GET /v1/events?after=ID). AUTOINCREMENT so an id is never
-- handed out twice, even after the highest row is gone; domain is a name, not a foreign key, so
-- events outlive a purged domain.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at  INTEGER NOT NULL,
    type        TEXT    NOT NULL,
    domain      TEXT,
    actor       TEXT    NOT NULL,
    detail_json TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX events_domain ON events (domain);

-- Append-only, enforced by the database as well as by the absence of any other statement.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;
