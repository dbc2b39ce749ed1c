-- Every operation in the app, reads included, appends one audit entry in its own write
-- transaction, so each index on the trail is one more encrypted page written and synced per
-- click. Keep only what review and the app look up:
-- * audit_target, "who looked at or changed this record", now only for entries that have a
--   target (sign-ins, locks and session events no longer write an index page);
-- * audit_milestones, the few actions the app looks up by name (last sync push, last backup,
--   whether any session ever ended), written only for those rare entries. Queries must repeat
--   the index's IN (...) term verbatim for SQLite to use it.
-- audit_actor and audit_action go: review filters by user name and action read the trail
-- newest first and stop at the page size, and the bulk-access alert reads only its window.
DROP INDEX audit_actor;
DROP INDEX audit_action;
DROP INDEX audit_target;
CREATE INDEX audit_target ON audit_log(target_type, target_id) WHERE target_type IS NOT NULL;
CREATE INDEX audit_milestones ON audit_log(action, seq)
    WHERE action IN ('sync.push', 'backup.export', 'session.end');
