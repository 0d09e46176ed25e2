-- certd schema, version 4: events are kept for a configured time ([daemon] events_retention).
--
-- The audit log stays append-only for everything but age: rows are never updated, and the only
-- DELETE is the store's pruning of events older than the retention (store_events_prune). The
-- blanket no-delete trigger of version 1 goes; the no-update trigger stays.
DROP TRIGGER events_no_delete;
CREATE INDEX events_created_at ON events (created_at);
