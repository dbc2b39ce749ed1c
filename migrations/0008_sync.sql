-- Sync to a remote target: the target's non-secret settings and the repository keys.
-- Credentials (WebDAV password, S3 keys) are never stored here: they live in the OS keyring
-- under the target id. The whole database is encrypted by SQLCipher, which protects the
-- repository key at rest exactly like every other key-bearing row.
CREATE TABLE sync_target (
    id          INTEGER PRIMARY KEY CHECK (id = 1),   -- one target per vault
    target_id   TEXT NOT NULL,                        -- uuid; names the keyring entry
    kind        TEXT NOT NULL CHECK (kind IN ('file', 'sftp', 'webdav', 's3')),
    spec        TEXT NOT NULL,                        -- JSON: URL, TLS minimum, CA file, ssh key path, user, pack size
    updated_at  TEXT NOT NULL,
    updated_by  TEXT NOT NULL
) STRICT;

-- One row per repository this vault has created (a new target gets a new repository).
CREATE TABLE sync_repositories (
    repo_id     TEXT PRIMARY KEY,
    repo_key    BLOB NOT NULL CHECK (length(repo_key) = 32),
    created_at  TEXT NOT NULL
) STRICT;
