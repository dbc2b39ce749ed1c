-- Finding a record's entries ("who looked at or changed this patient") used the audit_target
-- index, which cost one more encrypted page written and synced on almost every operation, since
-- most of them name a record. Those lookups are rare (an administrator's review), so the lookup
-- is now built when it is needed instead: audit_targets holds (record, seq) for every entry
-- with a target up to audit_targets_upto.seq, and the query that needs it first brings it up
-- to the end of the trail in its own transaction. `audit verify` checks it against the trail,
-- so rows removed from it or added to it outside the app are reported.
DROP INDEX audit_target;
CREATE TABLE audit_targets (
    target_id   TEXT NOT NULL,
    target_type TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    PRIMARY KEY (target_id, target_type, seq)
) STRICT, WITHOUT ROWID;
CREATE TABLE audit_targets_upto (
    only INTEGER PRIMARY KEY CHECK (only = 1),
    seq  INTEGER NOT NULL
) STRICT;
-- Left empty here, so that opening a vault with a long trail after the update is not slowed
-- down: the first search by record builds it.
INSERT INTO audit_targets_upto (only, seq) VALUES (1, 0);
