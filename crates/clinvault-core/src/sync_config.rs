//! Sync settings kept in the vault database: the one target's non-secret settings (an opaque
//! JSON document the sync crate defines) and the repository keys this vault created. The
//! credentials for a target are never here: they go to the OS keyring under the target id.
//! Reading and writing need `sync.manage`; writes are audited (kind and ids only, never the URL,
//! which may name a host or a user).

use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::audit::Event;
use crate::clock::rfc3339;
use crate::crypto::Sealed;
use crate::error::{Error, Result};
use crate::key_hierarchy::RecoveryKey;
use crate::permissions::Permission;
use crate::session::{Need, Session};

/// When a push last ended with the given outcome (through the `audit_milestones` index).
pub(crate) const LAST_PUSH_SQL: &str = concat!(
    "SELECT at FROM audit_log WHERE ",
    crate::audit::milestones!(),
    " AND action = 'sync.push' AND outcome = ?1 ORDER BY seq DESC LIMIT 1"
);

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

/// How often the desktop app pushes on its own while a session is unlocked. Off by default; kept
/// in the `settings` table (inside the encrypted database) under [`SCHEDULE_KEY`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PushSchedule {
    /// Push every this many hours; `None` = no automatic push.
    pub every_hours: Option<u32>,
}

// Under `clinic.`: the security policy reads every other key of the table as its own.
pub const SCHEDULE_KEY: &str = "clinic.sync.push-every-hours";
/// The longest interval a schedule may have (one week).
pub const MAX_EVERY_HOURS: u32 = 24 * 7;
/// After a failed automatic push, the next try waits this long (or the interval, if shorter),
/// so an unreachable target is not hammered every minute.
pub const RETRY_AFTER_FAILURE_SECONDS: i64 = 3600;
/// Without a schedule, a last good snapshot older than this is shown as a warning.
pub const UNSCHEDULED_STALE_SECONDS: i64 = 48 * 3600;

impl PushSchedule {
    /// `0` or `None` turns the schedule off.
    pub fn new(every_hours: Option<u32>) -> Result<PushSchedule> {
        match every_hours {
            None | Some(0) => Ok(PushSchedule { every_hours: None }),
            Some(h) if h <= MAX_EVERY_HOURS => Ok(PushSchedule {
                every_hours: Some(h),
            }),
            Some(_) => Err(Error::InvalidInput(format!(
                "every_hours: push at least once a week (1 to {MAX_EVERY_HOURS} hours), or 0 for off"
            ))),
        }
    }

    fn interval_seconds(self) -> Option<i64> {
        self.every_hours.map(|h| i64::from(h) * 3600)
    }

    /// Age (seconds) above which the last good snapshot is too old: twice the interval with a
    /// schedule, two days without.
    pub fn stale_after_seconds(self) -> i64 {
        self.interval_seconds()
            .map(|i| 2 * i)
            .unwrap_or(UNSCHEDULED_STALE_SECONDS)
    }
}

/// When pushes last finished, as the vault's audit trail records them (`sync.push`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PushHistory {
    pub last_ok: Option<jiff::Timestamp>,
    pub last_failed: Option<jiff::Timestamp>,
}

/// Whether an automatic push is due at `now`: never without a schedule; at once when no push
/// ever succeeded; otherwise once the interval has passed since the last good push. After a
/// failure newer than the last good push, the next try waits `RETRY_AFTER_FAILURE_SECONDS` (or
/// the interval, if shorter). A last push "in the future" (the clock was moved back) counts as
/// due rather than silently stopping backups.
pub fn push_due(schedule: PushSchedule, history: PushHistory, now: jiff::Timestamp) -> bool {
    let Some(interval) = schedule.interval_seconds() else {
        return false;
    };
    let since = |t: jiff::Timestamp| now.as_second() - t.as_second();
    if let Some(failed) = history.last_failed {
        let newer_than_ok = history.last_ok.is_none_or(|ok| failed > ok);
        let wait = interval.min(RETRY_AFTER_FAILURE_SECONDS);
        if newer_than_ok && (0..wait).contains(&since(failed)) {
            return false;
        }
    }
    match history.last_ok {
        None => true,
        Some(ok) => !(0..interval).contains(&since(ok)),
    }
}

/// What the administrator's screens show about automatic pushes and the last good snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SyncStatus {
    pub schedule: PushSchedule,
    /// The last push that completed (its snapshot is on the target).
    pub last_good_at: Option<String>,
    pub last_good_age_seconds: Option<i64>,
    /// The last push that failed, if newer than the last good one.
    pub last_failed_at: Option<String>,
    /// No good snapshot, or the last one is older than the schedule allows.
    pub stale: bool,
    /// An automatic push is due now (only ever true with a schedule).
    pub push_due: bool,
    pub target_set: bool,
}

fn parse_at(text: Option<String>) -> Option<jiff::Timestamp> {
    text.and_then(|t| t.parse().ok())
}

impl Session {
    /// The automatic push schedule (`sync.manage`; checked, not recorded: it is a setting).
    pub fn sync_schedule(&mut self) -> Result<PushSchedule> {
        self.authorize(NEED, Event::new("sync.schedule.read"))?;
        load_schedule(self.vault()?.conn())
    }

    /// Sets or turns off (`None` or 0) the automatic push schedule; audited.
    pub fn set_sync_schedule(&mut self, every_hours: Option<u32>) -> Result<PushSchedule> {
        let schedule = PushSchedule::new(every_hours)?;
        let now = rfc3339(self.clock().now());
        let value = schedule.every_hours.unwrap_or(0);
        self.gate(
            NEED,
            Event::new("sync.schedule.set").detail("every_hours", value),
            |tx, _| {
                tx.execute(
                    "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                         updated_at = excluded.updated_at",
                    params![SCHEDULE_KEY, value.to_string(), now],
                )?;
                Ok(())
            },
        )?;
        Ok(schedule)
    }

    /// For an app's timer: whether this session should push now — it may manage sync and the
    /// schedule says a push is due. A session without `sync.manage` gets `false` and no denied
    /// entry in the trail: a timer asking every minute is not an attempt by the person.
    pub fn scheduled_push_due(&mut self) -> Result<bool> {
        if !self.own_permissions()?.contains(&Permission::SyncManage) {
            return Ok(false);
        }
        Ok(self.sync_status()?.push_due)
    }

    /// Schedule, last good and failed push (from the audit trail), and whether a push is due
    /// now by the session's clock (`sync.manage`; checked, not recorded).
    pub fn sync_status(&mut self) -> Result<SyncStatus> {
        self.authorize(NEED, Event::new("sync.status.read"))?;
        let now = self.clock().now();
        let conn = self.vault()?.conn();
        let schedule = load_schedule(conn)?;
        let last = |outcome: &str| -> Result<Option<String>> {
            Ok(conn
                .query_row(LAST_PUSH_SQL, [outcome], |r| r.get(0))
                .optional()?)
        };
        let ok_text = last("ok")?;
        let failed_text = last("failed")?;
        let target_set = conn.query_row("SELECT count(*) FROM sync_target", [], |r| {
            r.get::<_, i64>(0)
        })? > 0;
        let history = PushHistory {
            last_ok: parse_at(ok_text.clone()),
            last_failed: parse_at(failed_text.clone()),
        };
        let age = history
            .last_ok
            .map(|t| (now.as_second() - t.as_second()).max(0));
        let failed_newer = match (history.last_failed, history.last_ok) {
            (Some(f), Some(o)) => f > o,
            (Some(_), None) => true,
            _ => false,
        };
        Ok(SyncStatus {
            schedule,
            last_good_at: ok_text,
            last_good_age_seconds: age,
            last_failed_at: failed_text.filter(|_| failed_newer),
            stale: age.is_none_or(|a| a > schedule.stale_after_seconds()),
            push_due: target_set && push_due(schedule, history, now),
            target_set,
        })
    }
}

fn load_schedule(conn: &rusqlite::Connection) -> Result<PushSchedule> {
    let value: Option<String> = conn
        .query_row(
            "SELECT value FROM settings WHERE key = ?1",
            [SCHEDULE_KEY],
            |r| r.get(0),
        )
        .optional()?;
    match value {
        None => Ok(PushSchedule::default()),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .and_then(|h| PushSchedule::new(Some(h)).ok())
            .ok_or_else(|| Error::Integrity("the stored sync schedule is invalid".into())),
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
    fn at(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn no_schedule_never_pushes() {
        let off = PushSchedule::new(None).unwrap();
        assert_eq!(off, PushSchedule::new(Some(0)).unwrap());
        assert!(!push_due(off, PushHistory::default(), at(1_000_000)));
        let old = PushHistory {
            last_ok: Some(at(0)),
            last_failed: None,
        };
        assert!(!push_due(off, old, at(100_000_000)));
    }

    #[test]
    fn a_push_is_due_first_at_once_then_after_each_interval() {
        let every4 = PushSchedule::new(Some(4)).unwrap();
        let t0 = 1_790_000_000;
        assert!(push_due(every4, PushHistory::default(), at(t0)));
        let h = PushHistory {
            last_ok: Some(at(t0)),
            last_failed: None,
        };
        assert!(!push_due(every4, h, at(t0)));
        assert!(!push_due(every4, h, at(t0 + 4 * 3600 - 1)));
        assert!(push_due(every4, h, at(t0 + 4 * 3600)));
        assert!(push_due(every4, h, at(t0 + 40 * 3600)));
        // The clock was moved back before the last push: push rather than wait for days.
        assert!(push_due(every4, h, at(t0 - 3600)));
    }

    #[test]
    fn after_a_failure_the_next_try_waits_an_hour_or_the_interval() {
        let t0 = 1_790_000_000;
        let every4 = PushSchedule::new(Some(4)).unwrap();
        let failed = PushHistory {
            last_ok: Some(at(t0)),
            last_failed: Some(at(t0 + 5 * 3600)),
        };
        assert!(!push_due(every4, failed, at(t0 + 5 * 3600 + 60)));
        assert!(!push_due(every4, failed, at(t0 + 6 * 3600 - 1)));
        assert!(push_due(every4, failed, at(t0 + 6 * 3600)));
        // Never succeeded, failed just now: wait, then retry.
        let never = PushHistory {
            last_ok: None,
            last_failed: Some(at(t0)),
        };
        assert!(!push_due(every4, never, at(t0 + 10)));
        assert!(push_due(every4, never, at(t0 + 3600)));
        // An older failure than the last good push does not hold anything back.
        let healed = PushHistory {
            last_ok: Some(at(t0)),
            last_failed: Some(at(t0 - 10)),
        };
        assert!(push_due(every4, healed, at(t0 + 4 * 3600)));
        // A one-hour schedule retries after its own interval.
        let hourly = PushSchedule::new(Some(1)).unwrap();
        assert!(push_due(hourly, never, at(t0 + 3600)));
    }

    #[test]
    fn schedules_outside_a_week_are_refused_and_staleness_follows_the_schedule() {
        let e = PushSchedule::new(Some(MAX_EVERY_HOURS + 1)).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("every_hours"), "{e}");
        assert_eq!(
            PushSchedule::new(Some(6)).unwrap().stale_after_seconds(),
            12 * 3600
        );
        assert_eq!(
            PushSchedule::default().stale_after_seconds(),
            UNSCHEDULED_STALE_SECONDS
        );
    }
}
