//! `sync prune`: forgets snapshots outside the keep policy and then truly deletes the data no
//! remaining snapshot uses — packs with only unused blobs are deleted, packs with some are
//! rewritten without them. Order (each step leaves a consistent repository if killed): delete
//! forgotten snapshots → upload rewritten packs → write one new index → delete the old index
//! files → delete the obsolete packs.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::Serialize;

use clinvault_core::{Error, Result};

use crate::keys::BlobId;
use crate::lock::RepoLock;
use crate::model::{PackEntry, SnapshotFile};
use crate::pack::Packer;
use crate::progress::{phase, Progress, ProgressEvent};
use crate::repo::{short, time_of, Repository};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeepPolicy {
    pub last: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
}

#[derive(Clone, Debug, Serialize, Default)]
pub struct PruneReport {
    pub kept_snapshots: usize,
    pub removed_snapshots: usize,
    pub deleted_packs: usize,
    pub rewritten_packs: usize,
    pub deleted_bytes: u64,
    pub repository_bytes: u64,
}

/// Which snapshots (indices into `times`, sorted oldest first) the policy keeps: the newest
/// `last`, and the newest in each of the latest `daily` days, `weekly` ISO weeks and `monthly`
/// months (UTC).
pub fn select(times: &[jiff::Timestamp], policy: KeepPolicy) -> BTreeSet<usize> {
    let mut keep = BTreeSet::new();
    let newest_first: Vec<usize> = (0..times.len()).rev().collect();
    for &i in newest_first.iter().take(policy.last as usize) {
        keep.insert(i);
    }
    let mut bucket = |n: u32, key: &dyn Fn(jiff::civil::DateTime) -> (i32, i32)| {
        let mut seen = HashSet::new();
        for &i in &newest_first {
            if seen.len() >= n as usize {
                break;
            }
            let dt = times[i].to_zoned(jiff::tz::TimeZone::UTC).datetime();
            if seen.insert(key(dt)) {
                keep.insert(i);
            }
        }
    };
    bucket(policy.daily, &|d| {
        (i32::from(d.year()), i32::from(d.day_of_year()))
    });
    bucket(policy.weekly, &|d| {
        let w = d.date().iso_week_date();
        (i32::from(w.year()), i32::from(w.week()))
    });
    bucket(policy.monthly, &|d| {
        (i32::from(d.year()), i32::from(d.month()))
    });
    keep
}

impl Repository {
    pub fn prune(&self, policy: KeepPolicy, progress: &dyn Progress) -> Result<PruneReport> {
        if policy == KeepPolicy::default() {
            return Err(Error::InvalidInput(
                "say what to keep (--keep-last, --keep-daily, --keep-weekly, --keep-monthly): \
                 prune never deletes every snapshot"
                    .into(),
            ));
        }
        let lock = RepoLock::acquire(&self.backend, &self.keys, true)?;
        let mut report = PruneReport::default();
        let snaps: Vec<(String, SnapshotFile)> = self.load_snapshots()?;
        let times: Vec<jiff::Timestamp> = snaps
            .iter()
            .map(|(_, s)| jiff::Timestamp::from_nanosecond(time_of(s)).unwrap_or_default())
            .collect();
        let keep = select(&times, policy);
        let index = self.load_index()?;
        if !index.bad_files.is_empty() {
            return Err(Error::Integrity(
                "an index file is damaged: run `sync check` before pruning".into(),
            ));
        }
        let mut used: HashSet<BlobId> = HashSet::new();
        for (i, (_, s)) in snaps.iter().enumerate() {
            if keep.contains(&i) {
                for f in &s.files {
                    for b in &f.blobs {
                        used.insert(BlobId::parse(b)?);
                    }
                }
            }
        }
        if let Some(missing) = used.iter().find(|id| !index.blobs.contains_key(id)) {
            return Err(Error::Integrity(format!(
                "blob {} of a kept snapshot is in no index: run `sync check`; nothing was deleted",
                &missing.hex()[..16]
            )));
        }
        phase(progress, "prune", index.packs.len() as u64, "packs");
        lock.ensure_held()?;
        for (i, (name, _)) in snaps.iter().enumerate() {
            if !keep.contains(&i) {
                self.backend.delete(&format!("snapshots/{name}"))?;
                report.removed_snapshots += 1;
            }
        }
        report.kept_snapshots = keep.len();

        // A blob counts as used in the one pack the index points to; other copies (left by an
        // interrupted push) are garbage like unused blobs.
        let mut kept_packs: Vec<PackEntry> = Vec::new();
        let mut obsolete: Vec<(String, u64)> = Vec::new();
        let mut packer = Packer::new(self.pack_bytes);
        let mut new_packs: Vec<PackEntry> = Vec::new();
        for (name, p) in &index.packs {
            let live: Vec<_> = p
                .blobs
                .iter()
                .filter(|b| {
                    BlobId::parse(&b.id).is_ok_and(|id| {
                        used.contains(&id)
                            && index
                                .blobs
                                .get(&id)
                                .is_some_and(|l| index.pack_name(l) == name)
                    })
                })
                .collect();
            if live.len() == p.blobs.len() {
                kept_packs.push(p.clone());
            } else {
                if !live.is_empty() {
                    let bytes = self
                        .backend
                        .read(&format!("data/{name}"), crate::backend::PACK_OBJECT_MAX)
                        .map_err(|e| {
                            Error::Integrity(format!(
                                "pack {} cannot be read for pruning: {e}",
                                short(name)
                            ))
                        })?;
                    for b in live {
                        let id = BlobId::parse(&b.id)?;
                        let end = b.offset.saturating_add(b.length) as usize;
                        let sealed = bytes.get(b.offset as usize..end).ok_or_else(|| {
                            Error::Integrity(format!(
                                "pack {} is shorter than its index says",
                                short(name)
                            ))
                        })?;
                        // Check before copying: prune must not spread damage.
                        crate::pack::open_chunk(&self.keys, &id, sealed)?;
                        packer.add_sealed(&id, sealed);
                        if packer.len() >= self.pack_bytes {
                            let full = std::mem::replace(&mut packer, Packer::new(self.pack_bytes));
                            new_packs.push(self.upload_pack(full)?);
                        }
                    }
                    report.rewritten_packs += 1;
                }
                obsolete.push((name.clone(), p.size));
            }
            progress.event(ProgressEvent::Advance { done: 1 });
        }
        if !packer.is_empty() {
            new_packs.push(self.upload_pack(packer)?);
        }
        // Packs no index lists (interrupted pushes) go too.
        let listed: HashMap<String, Option<u64>> = self
            .backend
            .list("data")?
            .into_iter()
            .map(|l| (l.name, l.size))
            .collect();
        let new_names: HashSet<&str> = new_packs.iter().map(|p| p.id.as_str()).collect();
        for (name, size) in &listed {
            if !index.packs.contains_key(name) && !new_names.contains(name.as_str()) {
                obsolete.push((name.clone(), size.unwrap_or(0)));
            }
        }
        kept_packs.extend(new_packs);
        report.repository_bytes = kept_packs.iter().map(|p| p.size).sum();
        if report.removed_snapshots > 0 || !obsolete.is_empty() || index.files.len() > 1 {
            lock.ensure_held()?;
            self.write_index(kept_packs)
                .map(|name| (name, ()))
                .and_then(|(name, ())| {
                    clinvault_core::fault::point("sync.prune_after_index");
                    for old in &index.files {
                        if *old != name {
                            self.backend.delete(&format!("index/{old}"))?;
                        }
                    }
                    Ok(())
                })?;
        }
        for (name, size) in &obsolete {
            self.backend.delete(&format!("data/{name}"))?;
            report.deleted_packs += 1;
            report.deleted_bytes += size;
        }
        self.sweep_tmp()?;
        progress.event(ProgressEvent::PhaseDone);
        Ok(report)
    }

    fn upload_pack(&self, packer: Packer) -> Result<PackEntry> {
        let sealed = packer.finish(&self.keys)?;
        self.backend
            .write_atomic(&format!("data/{}", sealed.name), sealed.bytes)?;
        Ok(sealed.entry)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn keep_policy_buckets() {
        let times = vec![
            ts("2026-01-05T10:00:00Z"),
            ts("2026-01-31T10:00:00Z"),
            ts("2026-02-10T09:00:00Z"),
            ts("2026-02-10T18:00:00Z"),
            ts("2026-02-11T08:00:00Z"),
        ];
        let only_last = select(
            &times,
            KeepPolicy {
                last: 2,
                ..Default::default()
            },
        );
        assert_eq!(only_last.into_iter().collect::<Vec<_>>(), vec![3, 4]);
        let daily = select(
            &times,
            KeepPolicy {
                daily: 2,
                ..Default::default()
            },
        );
        assert_eq!(daily.into_iter().collect::<Vec<_>>(), vec![3, 4]);
        let monthly = select(
            &times,
            KeepPolicy {
                monthly: 3,
                ..Default::default()
            },
        );
        assert_eq!(monthly.into_iter().collect::<Vec<_>>(), vec![1, 4]);
        let weekly = select(
            &times,
            KeepPolicy {
                weekly: 1,
                last: 1,
                ..Default::default()
            },
        );
        assert_eq!(weekly.into_iter().collect::<Vec<_>>(), vec![4]);
    }
}
