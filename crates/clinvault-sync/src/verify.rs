//! `sync check`: the repository's structure (config, index, snapshots, every referenced blob
//! indexed, every indexed pack present with its size) and, with `--read-data`, every pack
//! downloaded and every blob decrypted and checked against its keyed hash.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use clinvault_core::Result;

use crate::keys::{storage_name, BlobId};
use crate::lock::RepoLock;
use crate::pack::{open_chunk, read_header};
use crate::progress::{phase, Progress, ProgressEvent};
use crate::repo::{short, Repository};

#[derive(Clone, Debug, Serialize, Default)]
pub struct CheckReport {
    pub snapshots: usize,
    pub packs: usize,
    pub blobs: usize,
    pub read_data: bool,
    pub bytes_read: u64,
    /// Packs on the target that no index lists (an interrupted push; prune removes them).
    pub unreferenced_packs: usize,
    /// Everything wrong, one line each; empty when the repository is sound.
    pub problems: Vec<String>,
}

impl Repository {
    pub fn check(&self, read_data: bool, progress: &dyn Progress) -> Result<CheckReport> {
        let _lock = RepoLock::acquire(&self.backend, &self.keys, false)?;
        let mut r = CheckReport {
            read_data,
            ..Default::default()
        };
        let index = self.load_index()?;
        for (name, why) in &index.bad_files {
            r.problems.push(format!("index {}: {why}", short(name)));
        }
        let mut referenced: HashSet<BlobId> = HashSet::new();
        for name in self.snapshot_names()? {
            match self.read_snapshot(&name) {
                Ok(s) => {
                    r.snapshots += 1;
                    for f in &s.files {
                        for b in &f.blobs {
                            match BlobId::parse(b) {
                                Ok(id) => {
                                    referenced.insert(id);
                                }
                                Err(e) => {
                                    r.problems.push(format!("snapshot {}: {e}", short(&name)))
                                }
                            }
                        }
                    }
                }
                Err(e) => r.problems.push(format!("snapshot {}: {e}", short(&name))),
            }
        }
        let missing_blobs = referenced
            .iter()
            .filter(|id| !index.blobs.contains_key(id))
            .count();
        if missing_blobs > 0 {
            r.problems.push(format!(
                "{missing_blobs} blobs used by snapshots are in no index (data lost or never uploaded)"
            ));
        }
        r.packs = index.packs.len();
        r.blobs = index.blobs.len();

        let on_target: HashMap<String, Option<u64>> = self
            .backend
            .list("data")?
            .into_iter()
            .map(|l| (l.name, l.size))
            .collect();
        r.unreferenced_packs = on_target
            .keys()
            .filter(|n| !index.packs.contains_key(*n))
            .count();
        let needed: HashSet<&str> = referenced
            .iter()
            .filter_map(|id| index.blobs.get(id).map(|l| index.pack_name(l)))
            .collect();
        let total: u64 = index.packs.values().map(|p| p.size).sum();
        phase(
            progress,
            if read_data { "read-data" } else { "check" },
            if read_data {
                total
            } else {
                index.packs.len() as u64
            },
            if read_data { "bytes" } else { "packs" },
        );
        for (name, p) in &index.packs {
            let used = needed.contains(name.as_str());
            let size = match on_target.get(name) {
                Some(Some(s)) => Some(*s),
                Some(None) => self.backend.size(&format!("data/{name}"))?,
                None => None,
            };
            match size {
                None => {
                    r.problems.push(format!(
                        "pack {} is missing{}",
                        short(name),
                        if used { " (snapshots need it)" } else { "" }
                    ));
                    progress.event(ProgressEvent::Advance {
                        done: if read_data { p.size } else { 1 },
                    });
                    continue;
                }
                Some(s) if s != p.size => {
                    r.problems.push(format!(
                        "pack {} has {s} bytes where the index says {}",
                        short(name),
                        p.size
                    ));
                    progress.event(ProgressEvent::Advance {
                        done: if read_data { p.size } else { 1 },
                    });
                    continue;
                }
                Some(_) => {}
            }
            if read_data {
                match self.check_pack_data(name, p) {
                    Ok(n) => r.bytes_read += n,
                    Err(e) => r.problems.push(format!("pack {}: {e}", short(name))),
                }
                progress.event(ProgressEvent::Advance { done: p.size });
            } else {
                progress.event(ProgressEvent::Advance { done: 1 });
            }
        }
        progress.event(ProgressEvent::PhaseDone);
        Ok(r)
    }

    fn check_pack_data(&self, name: &str, p: &crate::model::PackEntry) -> Result<u64> {
        let bytes = self
            .backend
            .read(&format!("data/{name}"), crate::backend::PACK_OBJECT_MAX)?;
        if storage_name(&bytes) != name {
            return Err(clinvault_core::Error::Integrity(
                "content does not match its name (damaged or tampered)".into(),
            ));
        }
        let header = read_header(&self.keys, &bytes)?;
        if header != p.blobs {
            return Err(clinvault_core::Error::Integrity(
                "its header and the index disagree".into(),
            ));
        }
        for b in &p.blobs {
            let id = BlobId::parse(&b.id)?;
            let end = b.offset.saturating_add(b.length) as usize;
            if end > bytes.len() {
                return Err(clinvault_core::Error::Integrity(
                    "a blob lies beyond its end".into(),
                ));
            }
            open_chunk(&self.keys, &id, &bytes[b.offset as usize..end])?;
        }
        Ok(bytes.len() as u64)
    }
}

/// How much of the repository the snapshots use (for prune reports and tests).
#[derive(Clone, Debug, Serialize)]
pub struct Usage {
    pub snapshots: usize,
    pub indexed_blobs: usize,
    pub referenced_blobs: usize,
    pub index_packs: usize,
    pub packs_on_target: usize,
    pub pack_bytes_on_target: u64,
}

impl Repository {
    pub fn usage(&self) -> Result<Usage> {
        let index = self.load_index()?;
        let mut referenced: HashSet<BlobId> = HashSet::new();
        let snaps = self.load_snapshots()?;
        for (_, s) in &snaps {
            for f in &s.files {
                for b in &f.blobs {
                    referenced.insert(BlobId::parse(b)?);
                }
            }
        }
        let listed = self.backend.list("data")?;
        let mut bytes = 0;
        for l in &listed {
            bytes += match l.size {
                Some(s) => s,
                None => self.backend.size(&format!("data/{}", l.name))?.unwrap_or(0),
            };
        }
        Ok(Usage {
            snapshots: snaps.len(),
            indexed_blobs: index.blobs.len(),
            referenced_blobs: referenced.len(),
            index_packs: index.packs.len(),
            packs_on_target: listed.len(),
            pack_bytes_on_target: bytes,
        })
    }
}
