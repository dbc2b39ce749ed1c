//! A repository on a target: its config, key, index and snapshots.
//!
//! Layout (all names are lowercase hex BLAKE3 of the stored bytes unless said otherwise):
//! `config` (plaintext JSON), `data/<pack>`, `index/<name>`, `snapshots/<name>`,
//! `locks/<uuid>`, `tmp/<uuid>` (uploads in flight). See docs/formats/sync-repository.md.

use std::collections::{BTreeMap, HashMap};

use clinvault_core::{Error, Result};

use crate::backend::{Backend, META_OBJECT_MAX, PACK_OBJECT_MAX};
use crate::chunking::{BLOCK_SIZE, CDC_AVG, CDC_MAX, CDC_MIN};
use crate::keys::{storage_name, BlobId, DerivedKeys, RepoKey};
use crate::model::{
    ConfigFile, IndexFile, PackEntry, Params, SnapshotFile, SnapshotInfo, FORMAT, FORMAT_VERSION,
};

pub struct Repository {
    pub(crate) backend: Backend,
    /// Shared with the lock's keep-alive thread, which seals the lock it rewrites.
    pub(crate) keys: std::sync::Arc<DerivedKeys>,
    pub(crate) params: Params,
    pub(crate) config: ConfigFile,
    pub(crate) pack_bytes: usize,
}

/// Where a blob is stored.
#[derive(Clone, Copy, Debug)]
pub struct Loc {
    pub pack: u32,
    pub offset: u64,
    pub length: u64,
}

/// What `Repository::decrypt_all` found.
#[derive(Default)]
pub struct RepositoryContents {
    /// (pack file name, blob id, decrypted content) for every blob in every pack on the target.
    pub blobs: Vec<(String, BlobId, Vec<u8>)>,
    /// (snapshot name, decrypted snapshot file) for every snapshot. These hold the vault's keys:
    /// zeroed when dropped.
    pub snapshots: Vec<(String, zeroize::Zeroizing<Vec<u8>>)>,
    /// Every blob some snapshot refers to.
    pub referenced: std::collections::HashSet<BlobId>,
}

/// All index files merged.
#[derive(Default)]
pub struct Index {
    pub blobs: HashMap<BlobId, Loc>,
    pub pack_names: Vec<String>,
    pub packs: BTreeMap<String, PackEntry>,
    /// Index files read, by name.
    pub files: Vec<String>,
    /// Index files that could not be read (name, reason).
    pub bad_files: Vec<(String, String)>,
}

impl Index {
    pub fn add_pack(&mut self, p: &PackEntry) -> Result<()> {
        if self.packs.contains_key(&p.id) {
            return Ok(());
        }
        let n = self.pack_names.len() as u32;
        self.pack_names.push(p.id.clone());
        for b in &p.blobs {
            self.blobs.entry(BlobId::parse(&b.id)?).or_insert(Loc {
                pack: n,
                offset: b.offset,
                length: b.length,
            });
        }
        self.packs.insert(p.id.clone(), p.clone());
        Ok(())
    }

    pub fn pack_name(&self, loc: &Loc) -> &str {
        &self.pack_names[loc.pack as usize]
    }
}

pub fn repo_key_info(repo_id: uuid::Uuid) -> Vec<u8> {
    clinvault_core::encoding::tuple(&[b"clinvault/v1/sync-repository-key", repo_id.as_bytes()])
}

pub fn repo_key_aad() -> Vec<u8> {
    clinvault_core::encoding::tuple(&[b"sync-repository"])
}

fn corrupt(what: &str) -> Error {
    Error::Integrity(format!("the sync repository's {what} is damaged"))
}

impl Repository {
    /// Reads `config` without any key (to unseal the key with the recovery key on a new
    /// machine, or to tell an empty target from an existing repository).
    pub fn read_config(backend: &Backend) -> Result<Option<ConfigFile>> {
        let bytes = match backend.read_small("config") {
            Ok(b) => b,
            Err(e) if e.kind() == clinvault_core::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let c: ConfigFile = serde_json::from_slice(&bytes).map_err(|_| corrupt("config file"))?;
        if c.format != FORMAT {
            return Err(Error::InvalidInput(
                "the sync target holds something that is not a ClinVault repository".into(),
            ));
        }
        if c.format_version > FORMAT_VERSION {
            return Err(Error::Incompatible(
                "the sync repository was written by a newer ClinVault: update ClinVault".into(),
            ));
        }
        Ok(Some(c))
    }

    /// Creates a repository on an empty target. The key is sealed to `recovery_public` so the
    /// recovery key alone can open it on a new machine.
    pub fn init(
        backend: Backend,
        key: &RepoKey,
        repo_id: uuid::Uuid,
        recovery_public: &[u8; 32],
        vault_id: &str,
        pack_bytes: usize,
    ) -> Result<Repository> {
        if Self::read_config(&backend)?.is_some() {
            return Err(Error::AlreadyExists(
                "the sync target already holds a ClinVault repository".into(),
            ));
        }
        let keys = key.derive();
        let params = Params {
            repo_id,
            block_size: BLOCK_SIZE,
            cdc_min: CDC_MIN,
            cdc_avg: CDC_AVG,
            cdc_max: CDC_MAX,
        };
        let pjson = serde_json::to_vec(&params)
            .map_err(|_| Error::Internal("config encoding failed".into()))?;
        let config = ConfigFile {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            repo_id,
            vault_id: vault_id.to_owned(),
            sealed_key: clinvault_core::crypto::seal(
                recovery_public,
                &repo_key_info(repo_id),
                &repo_key_aad(),
                key.expose(),
            )?,
            params: keys.seal_meta("config", &pjson)?,
        };
        let json = serde_json::to_vec_pretty(&config)
            .map_err(|_| Error::Internal("config encoding failed".into()))?;
        backend.write_atomic("config", json)?;
        Ok(Repository {
            backend,
            keys: std::sync::Arc::new(keys),
            params,
            config,
            pack_bytes,
        })
    }

    /// Opens an existing repository with its key.
    pub fn open(backend: Backend, key: &RepoKey, pack_bytes: usize) -> Result<Repository> {
        let config = Self::read_config(&backend)?.ok_or_else(|| {
            Error::NotFound("the sync target holds no repository yet: run `sync push`".into())
        })?;
        let keys = key.derive();
        let plain = keys.open_meta("config", &config.params).map_err(|_| {
            Error::Integrity(
                "the sync target holds a repository this vault's key does not open (another \
                 vault's, or its config was tampered with)"
                    .into(),
            )
        })?;
        let params: Params = serde_json::from_slice(&plain).map_err(|_| corrupt("config"))?;
        if params.repo_id != config.repo_id {
            return Err(corrupt("config (repository id mismatch)"));
        }
        Ok(Repository {
            backend,
            keys: std::sync::Arc::new(keys),
            params,
            config,
            pack_bytes,
        })
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    pub fn repo_id(&self) -> uuid::Uuid {
        self.config.repo_id
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Writes a sealed metadata file named by its hash; returns the name.
    pub(crate) fn write_meta(&self, dir: &str, kind: &str, json: &[u8]) -> Result<String> {
        let sealed = self.keys.seal_meta(kind, json)?;
        let name = storage_name(&sealed);
        self.backend
            .write_atomic(&format!("{dir}/{name}"), sealed)?;
        Ok(name)
    }

    /// Reads a metadata file, checking that it is complete (name = hash) and authentic.
    pub(crate) fn read_meta(
        &self,
        dir: &str,
        name: &str,
        kind: &str,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        let bytes = self
            .backend
            .read(&format!("{dir}/{name}"), META_OBJECT_MAX)?;
        if storage_name(&bytes) != name {
            return Err(Error::Integrity(format!(
                "{kind} file {} in the sync repository is incomplete or damaged",
                short(name)
            )));
        }
        self.keys.open_meta(kind, &bytes)
    }

    pub fn load_index(&self) -> Result<Index> {
        let mut idx = Index::default();
        let mut names: Vec<String> = self
            .backend
            .list("index")?
            .into_iter()
            .map(|l| l.name)
            .collect();
        names.sort();
        for name in names {
            match self.read_index_file(&name) {
                Ok(f) => {
                    for p in &f.packs {
                        idx.add_pack(p)?;
                    }
                    idx.files.push(name);
                }
                Err(e) => idx.bad_files.push((name, e.to_string())),
            }
        }
        Ok(idx)
    }

    fn read_index_file(&self, name: &str) -> Result<IndexFile> {
        let plain = self.read_meta("index", name, "index")?;
        serde_json::from_slice(&plain).map_err(|_| corrupt("index"))
    }

    pub(crate) fn write_index(&self, packs: Vec<PackEntry>) -> Result<String> {
        let json = serde_json::to_vec(&IndexFile { packs })
            .map_err(|_| Error::Internal("index encoding failed".into()))?;
        self.write_meta("index", "index", &json)
    }

    pub(crate) fn snapshot_names(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .backend
            .list("snapshots")?
            .into_iter()
            .map(|l| l.name)
            .collect();
        names.sort();
        Ok(names)
    }

    pub(crate) fn read_snapshot(&self, name: &str) -> Result<SnapshotFile> {
        let plain = self.read_meta("snapshots", name, "snapshot")?;
        serde_json::from_slice(&plain).map_err(|_| corrupt("snapshot"))
    }

    /// Every readable snapshot, oldest first.
    pub(crate) fn load_snapshots(&self) -> Result<Vec<(String, SnapshotFile)>> {
        let mut out = Vec::new();
        for name in self.snapshot_names()? {
            out.push((name.clone(), self.read_snapshot(&name)?));
        }
        out.sort_by(|a, b| time_of(&a.1).cmp(&time_of(&b.1)).then(a.0.cmp(&b.0)));
        Ok(out)
    }

    /// Everything the repository holds, decrypted: every blob of every pack file on the target
    /// (whether an index lists the pack or not) and every snapshot's metadata. For audits and for
    /// tests that must see what an attacker holding the repository key would find, not only what
    /// the snapshots reference. Fails on any pack or blob that does not open.
    pub fn decrypt_all(&self) -> Result<RepositoryContents> {
        let mut out = RepositoryContents::default();
        for listed in self.backend.list("data")? {
            let bytes = self
                .backend
                .read(&format!("data/{}", listed.name), PACK_OBJECT_MAX)?;
            for b in crate::pack::read_header(&self.keys, &bytes)? {
                let id = BlobId::parse(&b.id)?;
                let end = usize::try_from(b.offset.saturating_add(b.length))
                    .map_err(|_| corrupt("pack"))?;
                let start = usize::try_from(b.offset).map_err(|_| corrupt("pack"))?;
                let sealed = bytes.get(start..end).ok_or_else(|| corrupt("pack"))?;
                let plain = crate::pack::open_chunk(&self.keys, &id, sealed)?;
                out.blobs.push((listed.name.clone(), id, plain));
            }
        }
        for (name, snap) in self.load_snapshots()? {
            for f in &snap.files {
                for b in &f.blobs {
                    out.referenced.insert(BlobId::parse(b)?);
                }
            }
            let plain = self.read_meta("snapshots", &name, "snapshot")?;
            out.snapshots.push((name, plain));
        }
        Ok(out)
    }

    pub fn snapshots(&self) -> Result<Vec<SnapshotInfo>> {
        Ok(self
            .load_snapshots()?
            .iter()
            .map(|(name, s)| info(name, s))
            .collect())
    }

    /// Resolves `latest`, a full id or a unique prefix of at least 6 characters.
    pub fn resolve(&self, selector: &str) -> Result<String> {
        let sel = selector.trim().to_ascii_lowercase();
        if sel == "latest" {
            return self
                .load_snapshots()?
                .pop()
                .map(|(n, _)| n)
                .ok_or_else(|| Error::NotFound("the sync target holds no snapshot yet".into()));
        }
        if sel.len() < 6 || !sel.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::InvalidInput(
                "name a snapshot by `latest` or by at least 6 characters of its id".into(),
            ));
        }
        let found: Vec<String> = self
            .snapshot_names()?
            .into_iter()
            .filter(|n| n.starts_with(&sel))
            .collect();
        match found.len() {
            0 => Err(Error::NotFound(format!(
                "no snapshot {sel} on the sync target"
            ))),
            1 => Ok(found.into_iter().next().unwrap_or_default()),
            _ => Err(Error::InvalidInput(format!(
                "{sel} matches several snapshots: give more characters"
            ))),
        }
    }

    /// Removes uploads a killed writer left in `tmp/`. Only under the exclusive lock.
    pub(crate) fn sweep_tmp(&self) -> Result<u64> {
        let mut n = 0;
        for l in self.backend.list("tmp")? {
            if self.backend.delete(&format!("tmp/{}", l.name)).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }
}

/// The first 12 characters of an object's name, for messages. Names come from the target's
/// listing, so anything may be there: cut on a character boundary.
pub(crate) fn short(name: &str) -> &str {
    name.char_indices()
        .nth(12)
        .map_or(name, |(i, _)| &name[..i])
}

pub(crate) fn info(name: &str, s: &SnapshotFile) -> SnapshotInfo {
    SnapshotInfo {
        id: name.to_owned(),
        time: s.time.clone(),
        host: s.host.clone(),
        files: s.files.len(),
        bytes: s.files.iter().map(|f| f.size).sum(),
        audit_entries: s.anchor.get("entries").and_then(|v| v.as_u64()),
        key_epoch: s.anchor.get("epoch").and_then(|v| v.as_u64()),
    }
}

/// The snapshot's time in nanoseconds since the epoch (0 when unreadable: sorts first).
pub(crate) fn time_of(s: &SnapshotFile) -> i128 {
    s.time
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_nanosecond())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::short;

    #[test]
    fn a_name_from_the_target_is_shortened_on_a_character_boundary() {
        assert_eq!(short("0123456789abcdef"), "0123456789ab");
        assert_eq!(short("abc"), "abc");
        // Byte 12 falls inside 'é': slicing by bytes would panic.
        assert_eq!(short("aaaaaaaaaaaé-and-more"), "aaaaaaaaaaaé");
    }
}
