-- Identity and access: custom roles, security policy, two-factor sign-in, sign-in history.
CREATE TABLE custom_roles (
    name        TEXT PRIMARY KEY,
    permissions TEXT NOT NULL,          -- space-separated permission names
    created_at  TEXT NOT NULL
) STRICT;

CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;

ALTER TABLE users ADD COLUMN practitioner_id TEXT;

CREATE TABLE user_totp (
    user_id        TEXT PRIMARY KEY REFERENCES users(id),
    secret         BLOB NOT NULL,       -- inside the encrypted database only
    enabled        INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    last_used_step INTEGER,             -- refuses replay of a code already used
    created_at     TEXT NOT NULL,
    confirmed_at   TEXT
) STRICT;

CREATE TABLE user_recovery_codes (
    user_id TEXT NOT NULL REFERENCES users(id),
    idx     INTEGER NOT NULL,
    salt    BLOB NOT NULL,
    hash    BLOB NOT NULL,
    used_at TEXT,
    PRIMARY KEY (user_id, idx)
) STRICT;

CREATE TABLE trusted_devices (
    user_id    TEXT NOT NULL REFERENCES users(id),
    token_hash BLOB NOT NULL,
    expires_at INTEGER NOT NULL,        -- unix seconds
    created_at TEXT NOT NULL,
    PRIMARY KEY (user_id, token_hash)
) STRICT;

CREATE TABLE signin_history (
    id       INTEGER PRIMARY KEY,
    user_id  TEXT,
    username TEXT NOT NULL,
    at       TEXT NOT NULL,
    device   TEXT NOT NULL,
    outcome  TEXT NOT NULL,
    detail   TEXT NOT NULL
) STRICT;
CREATE INDEX signin_history_user ON signin_history(username, at);
