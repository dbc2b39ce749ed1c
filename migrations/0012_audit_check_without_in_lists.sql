-- Every audited operation inserts one row into audit_log, and SQLite evaluates an IN list of
-- more than two constants by building a temporary b-tree each time the statement runs: the
-- trail's CHECK on outcome and the audit_milestones partial index each cost ≈ 2 µs per entry
-- that way. Written as ORs of equalities, the same conditions are compared in place.
--
-- The partial index is made anew. Queries that use it name the same OR term
-- (`audit::milestones!`).
DROP INDEX audit_milestones;
CREATE INDEX audit_milestones ON audit_log(action, seq)
    WHERE action = 'sync.push' OR action = 'backup.export' OR action = 'session.end';
-- A CHECK constraint cannot be altered, and the trail cannot be copied into a new table without
-- lifting its triggers. SQLite documents editing the table's text in sqlite_schema for changes
-- that leave the stored rows as they are, such as a CHECK constraint (ALTER TABLE, "making other
-- kinds of table schema changes"); an equivalent condition is such a change. Connections read
-- the new text when they next open the database (the index above bumps the schema cookie).
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
   SET sql = replace(sql, 'CHECK (outcome IN (''ok'', ''denied'', ''failed''))',
                          'CHECK (outcome = ''ok'' OR outcome = ''denied'' OR outcome = ''failed'')')
 WHERE type = 'table' AND name = 'audit_log';
PRAGMA writable_schema = OFF;
