-- The audit trail: append-only, hash-chained, each entry signed with Ed25519 (see
-- docs/security-model.md, "Audit trail"). No clinical content and no patient names.
CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,          -- UTC, RFC 3339
    actor_id    TEXT,                   -- NULL for attempts by unknown usernames
    actor_name  TEXT NOT NULL,          -- as at the time
    device      TEXT NOT NULL,
    action      TEXT NOT NULL,
    target_type TEXT,
    target_id   TEXT,
    outcome     TEXT NOT NULL CHECK (outcome IN ('ok', 'denied', 'failed')),
    details     TEXT NOT NULL,          -- JSON, non-clinical
    signer_id   TEXT NOT NULL,
    signer_key  BLOB NOT NULL,          -- Ed25519 public key
    prev_hash   BLOB NOT NULL,
    hash        BLOB NOT NULL,
    signature   BLOB NOT NULL
) STRICT;
CREATE INDEX audit_target ON audit_log(target_type, target_id);
CREATE INDEX audit_actor ON audit_log(actor_id, seq);
CREATE INDEX audit_action ON audit_log(action, seq);

-- Pruning under the retention policy records how far it may delete; nothing else may.
CREATE TABLE audit_prune_marks (
    upto_seq   INTEGER NOT NULL,
    at         TEXT NOT NULL,
    checkpoint TEXT NOT NULL            -- signed checkpoint of the entry just before the cut
) STRICT;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
WHEN OLD.seq > (SELECT coalesce(max(upto_seq), 0) FROM audit_prune_marks)
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;

-- Each registered signing key carries an HMAC under a key derived from the master key, so that
-- someone who has only the database key cannot add a key and forge entries in another's name.
ALTER TABLE user_keys ADD COLUMN mac BLOB;

CREATE TABLE audit_alerts (
    id              INTEGER PRIMARY KEY,
    rule            TEXT NOT NULL,
    raised_at       TEXT NOT NULL,
    actor_name      TEXT,
    summary         TEXT NOT NULL,      -- non-clinical, no patient names
    details         TEXT NOT NULL,      -- JSON
    acknowledged_by TEXT,
    acknowledged_at TEXT
) STRICT;
CREATE INDEX audit_alerts_open ON audit_alerts(acknowledged_at, rule, actor_name);
