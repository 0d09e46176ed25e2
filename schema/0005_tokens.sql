-- certd schema, version 5: bearer tokens for remote fleet members on the HTTPS listener.
--
-- A token is "certd_<id>_<secret>": the public id is the primary key, so a request finds its row
-- without a scan; the secret is never stored, only SHA-256 over salt || secret (a 256-bit random
-- secret needs no slow hash: there is nothing to guess). Revoked tokens are kept (revoked_at set)
-- so the audit trail can name them; a name is unique among tokens not revoked.
CREATE TABLE tokens (
    id           TEXT    PRIMARY KEY,                   -- public id, 12 base64url characters
    name         TEXT    NOT NULL,
    role         TEXT    NOT NULL CHECK (role IN ('admin', 'deployer', 'reader')),
    scope_json   TEXT,                                  -- JSON array of names and "*.suffix"
                                                        -- entries; NULL = every domain
    salt         TEXT    NOT NULL,                      -- hex
    hash         TEXT    NOT NULL,                      -- hex SHA-256 (salt || secret)
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,                               -- NULL: never
    revoked_at   INTEGER,
    last_used_at INTEGER
);
CREATE UNIQUE INDEX tokens_live_name ON tokens (name) WHERE revoked_at IS NULL;
