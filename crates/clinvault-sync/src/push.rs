//! `sync push`: an incremental snapshot. Packs are uploaded by a second thread while this one
//! chunks, hashes and seals; an index file is written after every few packs and the snapshot
//! last, so a push killed at any point leaves a consistent repository (at worst packs nobody
//! references yet, which the next push reuses through their index or prune removes), and the
//! next push completes the work without re-uploading what is already indexed.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::mpsc;

use serde::Serialize;
use zeroize::Zeroizing;

use clinvault_core::{Error, Result};

use crate::chunking::{self, Chunking};
use crate::keys::BlobId;
use crate::lock::{hostname, RepoLock};
use crate::model::{FileEntry, PackEntry, SecretHex, SnapshotFile, FORMAT_VERSION};
use crate::pack::{seal_chunk, Packer, SealedPack};
use crate::progress::{phase, Progress, ProgressEvent};
use crate::repo::Repository;

/// Packs between index checkpoints: what a killed push has uploaded beyond the last
/// checkpoint is uploaded again by the next one.
const PACKS_PER_INDEX: usize = 4;

/// A file of the vault directory to back up.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub rel_path: String,
    pub path: PathBuf,
    pub size: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct PushReport {
    pub snapshot: String,
    pub files: usize,
    pub bytes: u64,
    /// Files taken over from the previous snapshot without reading them (unchanged attachments).
    pub unchanged_files: usize,
    pub new_blobs: u64,
    /// Bytes uploaded in packs (sealed, after compression).
    pub uploaded_bytes: u64,
    pub packs: u64,
    pub compressed_blobs: u64,
    /// The audit anchor of the latest snapshot before this one, which the live trail must
    /// still hold (checked by the core when the push is recorded).
    #[serde(skip)]
    pub earlier_anchor: Option<serde_json::Value>,
}

fn file_stamp(path: &std::path::Path) -> Result<(i128, u64)> {
    let md = std::fs::metadata(path).map_err(|e| Error::Io {
        context: "reading a staged vault file".into(),
        source: e,
    })?;
    let mtime = md
        .modified()
        .ok()
        .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&md);
    #[cfg(not(unix))]
    let ino = 0;
    Ok((mtime, ino))
}

fn valid_rel_path(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && !p.contains('\\')
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

struct UploadStats {
    packs: u64,
    bytes: u64,
}

impl Repository {
    pub fn push(
        &self,
        files: &[SourceFile],
        anchor: serde_json::Value,
        vault_keys: &[u8],
        progress: &dyn Progress,
    ) -> Result<PushReport> {
        for f in files {
            if !valid_rel_path(&f.rel_path) {
                return Err(Error::Internal(format!(
                    "refusing to back up a file with an unsafe path {:?}",
                    f.rel_path
                )));
            }
        }
        let lock = RepoLock::acquire(&self.backend, &self.keys, true)?;
        self.sweep_tmp()?;
        let index = self.load_index()?;
        let snaps = self.load_snapshots()?;
        let parent = snaps.last();
        let prev: HashMap<&str, &FileEntry> = parent
            .map(|(_, s)| s.files.iter().map(|f| (f.path.as_str(), f)).collect())
            .unwrap_or_default();

        let total: u64 = files.iter().map(|f| f.size).sum();
        phase(progress, "upload", total, "bytes");

        let (tx, rx) = mpsc::sync_channel::<SealedPack>(1);
        let mut entries = Vec::with_capacity(files.len());
        let mut new_ids: HashSet<BlobId> = HashSet::new();
        let mut report = PushReport {
            snapshot: String::new(),
            files: files.len(),
            bytes: total,
            unchanged_files: 0,
            new_blobs: 0,
            uploaded_bytes: 0,
            packs: 0,
            compressed_blobs: 0,
            earlier_anchor: parent.map(|(_, p)| p.anchor.clone()),
        };

        let (main_result, upload_result) = std::thread::scope(|scope| {
            let uploader = scope.spawn(move || self.upload_packs(rx));
            let main = (|| -> Result<()> {
                let mut packer = Packer::new(self.pack_bytes);
                for f in files {
                    let (mtime_ns, inode) = file_stamp(&f.path)?;
                    if f.rel_path.starts_with("attachments/") {
                        if let Some(p) = prev.get(f.rel_path.as_str()) {
                            let known = p.blobs.iter().all(|b| {
                                BlobId::parse(b).is_ok_and(|id| index.blobs.contains_key(&id))
                            });
                            if known
                                && p.size == f.size
                                && p.mtime_ns == mtime_ns
                                && p.inode == inode
                            {
                                entries.push((*p).clone());
                                report.unchanged_files += 1;
                                progress.event(ProgressEvent::Advance { done: f.size });
                                continue;
                            }
                        }
                    }
                    let file = std::fs::File::open(&f.path).map_err(|e| Error::Io {
                        context: "opening a staged vault file".into(),
                        source: e,
                    })?;
                    let how = chunking::for_path(&f.rel_path);
                    // Encrypted files (database pages, attachment streams) do not compress:
                    // the first chunk decides for the rest of the file.
                    let mut try_compress: Option<bool> = None;
                    let mut blobs = Vec::new();
                    let mut size = 0u64;
                    chunking::chunk(std::io::BufReader::with_capacity(1 << 20, file), how, |c| {
                        size += c.len() as u64;
                        let id = self.keys.blob_id(c);
                        blobs.push(id.hex());
                        progress.event(ProgressEvent::Advance {
                            done: c.len() as u64,
                        });
                        if index.blobs.contains_key(&id) || new_ids.contains(&id) {
                            return Ok(());
                        }
                        let want = *try_compress.get_or_insert_with(|| {
                            !matches!(how, Chunking::Fixed(_))
                                && zstd::bulk::compress(&c[..c.len().min(64 << 10)], 1)
                                    .is_ok_and(|z| z.len() < c.len().min(64 << 10) * 31 / 32)
                        });
                        let (sealed, compressed) = seal_chunk(&self.keys, &id, c, want)?;
                        report.compressed_blobs += u64::from(compressed);
                        report.new_blobs += 1;
                        new_ids.insert(id);
                        packer.add_sealed(&id, &sealed);
                        if packer.len() >= self.pack_bytes {
                            let full = std::mem::replace(&mut packer, Packer::new(self.pack_bytes));
                            tx.send(full.finish(&self.keys)?)
                                .map_err(|_| Error::Internal("the upload stopped early".into()))?;
                        }
                        Ok(())
                    })?;
                    entries.push(FileEntry {
                        path: f.rel_path.clone(),
                        size,
                        mtime_ns,
                        inode,
                        blobs,
                    });
                }
                if !packer.is_empty() {
                    tx.send(packer.finish(&self.keys)?)
                        .map_err(|_| Error::Internal("the upload stopped early".into()))?;
                }
                drop(tx);
                Ok(())
            })();
            let up = uploader
                .join()
                .unwrap_or_else(|_| Err(Error::Internal("the upload thread failed".into())));
            (main, up)
        });
        // An upload failure explains an early stop of the main loop better than its own error.
        let stats = upload_result?;
        main_result?;
        progress.event(ProgressEvent::PhaseDone);
        report.packs = stats.packs;
        report.uploaded_bytes = stats.bytes;

        clinvault_core::fault::point("sync.before_snapshot");
        let snap = SnapshotFile {
            format_version: FORMAT_VERSION,
            time: jiff::Timestamp::now().to_string(),
            host: hostname(),
            vault_id: self.config.vault_id.clone(),
            anchor,
            vault_keys: SecretHex(Zeroizing::new(vault_keys.to_vec())),
            files: entries,
            parent: parent.map(|(n, _)| n.clone()),
        };
        let json = Zeroizing::new(
            serde_json::to_vec(&snap)
                .map_err(|_| Error::Internal("snapshot encoding failed".into()))?,
        );
        lock.ensure_held()?;
        report.snapshot = self.write_meta("snapshots", "snapshot", &json)?;
        drop(lock);
        Ok(report)
    }

    fn upload_packs(&self, rx: mpsc::Receiver<SealedPack>) -> Result<UploadStats> {
        let mut pending: Vec<PackEntry> = Vec::new();
        let mut stats = UploadStats { packs: 0, bytes: 0 };
        for pack in rx {
            stats.bytes += pack.bytes.len() as u64;
            self.backend
                .write_atomic(&format!("data/{}", pack.name), pack.bytes)?;
            stats.packs += 1;
            pending.push(pack.entry);
            if stats.packs == 2 {
                clinvault_core::fault::point("sync.after_second_pack");
            }
            if pending.len() >= PACKS_PER_INDEX {
                self.write_index(std::mem::take(&mut pending))?;
                clinvault_core::fault::point("sync.after_index_checkpoint");
            }
        }
        if !pending.is_empty() {
            self.write_index(pending)?;
        }
        Ok(stats)
    }
}
