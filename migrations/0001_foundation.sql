-- Foundation: vault metadata and the users whose key slots live in vault.keys.
CREATE TABLE vault_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE users (
    id           TEXT PRIMARY KEY,
    username     TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    role         TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
) STRICT;

-- Every public key a user has ever held, so signatures made before a passphrase reset or
-- recovery still verify after the user gets new key pairs.
CREATE TABLE user_keys (
    user_id        TEXT NOT NULL REFERENCES users(id),
    ed25519_public BLOB NOT NULL,
    x25519_public  BLOB NOT NULL,
    valid_from     TEXT NOT NULL,
    valid_until    TEXT,
    PRIMARY KEY (user_id, ed25519_public)
) STRICT;
