-- certd schema, version 6: the counts of GET /v1/health (store_stats) kept up to date by triggers.
--
-- The conventions at the top of 0001_initial.sql hold here too. The triggers below are SQLite
-- syntax; a PostgreSQL twin would write them as trigger functions doing the same updates.
--
-- Counting on demand scanned every domain and joined every active certificate under the store's
-- lock (tens of milliseconds at 100,000 domains, while the scheduler and every request waited).
-- The counters are written by triggers, not by the daemon, so every writer is covered (the
-- store's functions, a purge's ON DELETE CASCADE, tests/bench/seed.c's direct INSERTs) and a
-- counter can never miss a path added later. They change inside the writing statement, so they
-- commit or roll back with it.
--
-- Rows:
--   domains_<status>     domains whose status is <status> (one row per value of the CHECK on
--                        domains.status, so 'domains_' || status always names a row);
--   certificates_active  active certificates of domains not removed (a removed domain keeps its
--                        active certificate as history until revived or purged: not counted).
CREATE TABLE stats_counters (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO stats_counters (name, value)
SELECT 'domains_' || s.status, (SELECT COUNT(*) FROM domains d WHERE d.status = s.status)
  FROM (SELECT 'pending' AS status UNION ALL SELECT 'active' UNION ALL SELECT 'failed'
        UNION ALL SELECT 'removed') s;
INSERT INTO stats_counters (name, value)
SELECT 'certificates_active', COUNT(*)
  FROM certificates c JOIN domains d ON d.id = c.domain_id
 WHERE c.status = 'active' AND d.status <> 'removed';

-- Domains by status.
CREATE TRIGGER stats_domain_insert AFTER INSERT ON domains
BEGIN
    UPDATE stats_counters SET value = value + 1 WHERE name = 'domains_' || NEW.status;
END;
CREATE TRIGGER stats_domain_status AFTER UPDATE OF status ON domains
    WHEN OLD.status <> NEW.status
BEGIN
    UPDATE stats_counters SET value = value - 1 WHERE name = 'domains_' || OLD.status;
    UPDATE stats_counters SET value = value + 1 WHERE name = 'domains_' || NEW.status;
END;
-- BEFORE, not AFTER: ON DELETE CASCADE removes the certificates after the domain's row is gone
-- and before AFTER triggers run, so only here are the domain's active certificates still there to
-- be subtracted (stats_cert_delete, running during the cascade, no longer finds a managed domain
-- and leaves the counter alone).
CREATE TRIGGER stats_domain_delete BEFORE DELETE ON domains
BEGIN
    UPDATE stats_counters SET value = value - 1 WHERE name = 'domains_' || OLD.status;
    UPDATE stats_counters
       SET value = value - (SELECT COUNT(*) FROM certificates
                             WHERE domain_id = OLD.id AND status = 'active')
     WHERE name = 'certificates_active' AND OLD.status <> 'removed';
END;
-- A removal takes the domain's active certificate out of the count; a revival puts it back
-- (domain_revive then supersedes it, which stats_cert_update counts down again).
CREATE TRIGGER stats_domain_managed AFTER UPDATE OF status ON domains
    WHEN (OLD.status = 'removed') <> (NEW.status = 'removed')
BEGIN
    UPDATE stats_counters
       SET value = value + CASE WHEN NEW.status = 'removed' THEN -1 ELSE 1 END
                           * (SELECT COUNT(*) FROM certificates
                               WHERE domain_id = NEW.id AND status = 'active')
     WHERE name = 'certificates_active';
END;

-- Active certificates of managed domains.
CREATE TRIGGER stats_cert_insert AFTER INSERT ON certificates
    WHEN NEW.status = 'active'
BEGIN
    UPDATE stats_counters SET value = value + 1
     WHERE name = 'certificates_active'
       AND EXISTS (SELECT 1 FROM domains WHERE id = NEW.domain_id AND status <> 'removed');
END;
CREATE TRIGGER stats_cert_update AFTER UPDATE OF status, domain_id ON certificates
    WHEN OLD.status = 'active' OR NEW.status = 'active'
BEGIN
    UPDATE stats_counters SET value = value - 1
     WHERE name = 'certificates_active' AND OLD.status = 'active'
       AND EXISTS (SELECT 1 FROM domains WHERE id = OLD.domain_id AND status <> 'removed');
    UPDATE stats_counters SET value = value + 1
     WHERE name = 'certificates_active' AND NEW.status = 'active'
       AND EXISTS (SELECT 1 FROM domains WHERE id = NEW.domain_id AND status <> 'removed');
END;
CREATE TRIGGER stats_cert_delete AFTER DELETE ON certificates
    WHEN OLD.status = 'active'
BEGIN
    UPDATE stats_counters SET value = value - 1
     WHERE name = 'certificates_active'
       AND EXISTS (SELECT 1 FROM domains WHERE id = OLD.domain_id AND status <> 'removed');
END;

-- The earliest renewal among managed domains: MIN over this partial index reads one entry.
-- (A removal clears next_renewal_at, but the index does not rely on every path doing so.)
CREATE INDEX domains_managed_next_renewal_at ON domains (next_renewal_at)
    WHERE status <> 'removed';
