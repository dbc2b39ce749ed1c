//! Sync settings kept in the vault database: the one target's non-secret settings (an opaque
//! JSON document the sync crate defines) and the repository keys this vault created. The
//! credentials for a target are never here: they go to the OS keyring under the target id.
//! Reading and writing need `sync.manage`; writes are audited (kind and ids only, never the URL,
//! which may name a host or a user).

use rusqlite::{params, OptionalExtension};
use zeroize::Zeroizing;

use crate::audit::Event;
use crate::clock::rfc3339;
use crate::crypto::Sealed;
use crate::error::{Error, Result};
use crate::key_hierarchy::RecoveryKey;
use crate::permissions::Permission;
use crate::session::{Need, Session};

const KINDS: &[&str] = &["file", "sftp", "webdav", "s3"];

#[derive(Clone, Debug)]
pub struct SyncTarget {
    pub target_id: String,
    pub kind: String,
    /// The sync crate's settings document (no secrets).
    pub spec: String,
    pub updated_at: String,
}

const NEED: Need = Need::Permission(Permission::SyncManage);

/// Whether the vault syncs to a target, for operations that must tell the user that older
/// snapshots outlive a change (erasure). Callers already hold their own permission.
pub(crate) fn target_configured(conn: &rusqlite::Connection) -> Result<bool> {
    Ok(
        conn.query_row("SELECT EXISTS (SELECT 1 FROM sync_target)", [], |r| {
            r.get(0)
        })?,
    )
}

impl Session {
    /// Replaces the sync target. Returns the new target id (the keyring account suffix).
    pub fn sync_set_target(&mut self, kind: &str, spec_json: &str) -> Result<String> {
        if !KINDS.contains(&kind) {
            return Err(Error::InvalidInput(format!(
                "unknown sync target kind {kind:?}"
            )));
        }
        serde_json::from_str::<serde_json::Value>(spec_json).map_err(|_| {
            Error::InvalidInput("the sync target settings are not valid JSON".into())
        })?;
        let target_id = uuid::Uuid::new_v4().to_string();
        let now = rfc3339(self.clock().now());
        let user = self.user().id.to_string();
        let id = target_id.clone();
        self.gate(
            NEED,
            Event::new("sync.target.set")
                .target("sync_target", &target_id)
                .detail("kind", kind),
            |tx, _| {
                tx.execute(
                    "INSERT INTO sync_target (id, target_id, kind, spec, updated_at, updated_by)
                     VALUES (1, ?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(id) DO UPDATE SET target_id = ?1, kind = ?2, spec = ?3,
                        updated_at = ?4, updated_by = ?5",
                    params![id, kind, spec_json, now, user],
                )?;
                Ok(())
            },
        )?;
        Ok(target_id)
    }

    /// The configured target, if any. Checked (`sync.manage`) but not recorded on its own: the
    /// push, restore, check or prune that reads it is.
    pub fn sync_target(&mut self) -> Result<Option<SyncTarget>> {
        self.authorize(NEED, Event::new("sync.target.read"))?;
        let conn = self.vault()?.conn();
        Ok(conn
            .query_row(
                "SELECT target_id, kind, spec, updated_at FROM sync_target WHERE id = 1",
                [],
                |r| {
                    Ok(SyncTarget {
                        target_id: r.get(0)?,
                        kind: r.get(1)?,
                        spec: r.get(2)?,
                        updated_at: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    /// A repository key this vault created, by repository id.
    pub fn sync_repo_key(&mut self, repo_id: &str) -> Result<Option<Zeroizing<Vec<u8>>>> {
        self.authorize(NEED, Event::new("sync.key.read"))?;
        let conn = self.vault()?.conn();
        let key: Option<Vec<u8>> = conn
            .query_row(
                "SELECT repo_key FROM sync_repositories WHERE repo_id = ?1",
                [repo_id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(key.map(Zeroizing::new))
    }

    /// Records a new repository's key (audited as `sync.repository.create`).
    pub fn sync_store_repo_key(&mut self, repo_id: &str, key: &[u8]) -> Result<()> {
        if key.len() != 32 {
            return Err(Error::Internal("a repository key has 32 bytes".into()));
        }
        let now = rfc3339(self.clock().now());
        let key = Zeroizing::new(key.to_vec());
        self.gate(
            NEED,
            Event::new("sync.repository.create").target("sync_repository", repo_id),
            |tx, _| {
                tx.execute(
                    "INSERT INTO sync_repositories (repo_id, repo_key, created_at) VALUES (?1, ?2, ?3)",
                    params![repo_id, &key[..], now],
                )?;
                Ok(())
            },
        )
    }

    /// The vault's id (public: it is in the key file).
    pub fn vault_id(&self) -> Result<String> {
        Ok(self.vault()?.vault_id().to_string())
    }

    /// The recovery key's public half, from the key file: repository keys are sealed to it.
    pub fn recovery_public_key(&self) -> Result<[u8; 32]> {
        recovery_public_key(self.dir())
    }
}

/// The recovery key's public half of the vault in `dir` (no unlock needed).
pub fn recovery_public_key(dir: &crate::VaultDir) -> Result<[u8; 32]> {
    crate::keyfile::KeyFile::read(dir)?
        .body
        .recovery
        .public_key
        .as_32()
        .ok_or_else(|| Error::Integrity("the key file's recovery public key is malformed".into()))
}

/// Opens something sealed (HPKE, as `crypto::seal`) to the recovery key — a sync repository's
/// key on a machine that has only the recovery kit.
pub fn open_with_recovery(
    recovery: &RecoveryKey,
    sealed: &Sealed,
    info: &[u8],
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    crate::crypto::open(recovery.secret(), sealed, info, aad).ok_or_else(|| {
        Error::Authentication(
            "this recovery key does not open the sync repository (another vault's key, or the \
             repository's config was altered)"
                .into(),
        )
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn something_sealed_to_the_recovery_key_opens_only_with_it() {
        let rk = RecoveryKey::generate();
        let sealed =
            crate::crypto::seal(&rk.public().unwrap(), b"info", b"aad", b"repo key").unwrap();
        assert_eq!(
            &open_with_recovery(&rk, &sealed, b"info", b"aad").unwrap()[..],
            b"repo key"
        );
        let other = RecoveryKey::generate();
        let e = open_with_recovery(&other, &sealed, b"info", b"aad").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Authentication);
        assert!(open_with_recovery(&rk, &sealed, b"other info", b"aad").is_err());
    }
}
