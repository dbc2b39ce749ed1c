//! What crosses the IPC boundary for the administrator's sync screen (kept apart from `api` so
//! the sync commands stay one block). Secrets for a target (WebDAV password, S3 keys) travel
//! only inwards, once, when the target is set; no reply carries them — they live in the OS
//! keyring. The declarations are appended to `ui/src/lib/bindings.ts` with the others.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// Sets (replaces) the sync target. `url` is one of `file:///folder`, `sftp://user@host:port/path`,
/// `webdavs://user@host/path`, `s3://bucket/prefix?endpoint=…&region=…`.
#[derive(Deserialize, TS)]
pub struct SetSyncTarget {
    pub url: String,
    /// WebDAV password (when the URL names a user).
    #[ts(type = "string | null")]
    pub password: Option<SecretString>,
    /// S3 access key id and secret access key.
    #[ts(type = "string | null")]
    pub s3_key_id: Option<SecretString>,
    #[ts(type = "string | null")]
    pub s3_secret: Option<SecretString>,
    /// "1.3" (default) or "1.2" for an old NAS.
    pub tls_min: Option<String>,
    /// A CA certificate file (PEM) that alone is trusted for this target.
    pub ca_file: Option<String>,
    /// SFTP: the private key file.
    pub ssh_key: Option<String>,
}

/// The target's settings as stored (never its secrets).
#[derive(Clone, Debug, Serialize, TS)]
pub struct SyncTargetView {
    pub url: String,
    /// file, sftp, webdav or s3.
    pub kind: String,
    pub tls_min: String,
    pub ca_file: Option<String>,
    pub ssh_key: Option<String>,
    /// True when the target needs a password or keys (kept in the OS keyring, not shown).
    pub has_secret: bool,
}

/// What the last automatic (scheduled) push in this window did.
#[derive(Clone, Debug, Serialize, TS)]
pub struct AutoPushView {
    /// RFC 3339, by the session's clock.
    pub at: String,
    pub ok: bool,
    /// "Snapshot … pushed" or the failure, as a person can act on it.
    pub message: String,
}

/// Schedule and last good snapshot, for the sync screen and the administrator's Home.
#[derive(Clone, Debug, Serialize, TS)]
pub struct SyncStatusView {
    pub target_set: bool,
    /// Automatic push every this many hours while the app is unlocked; 0 = off.
    pub every_hours: u32,
    /// When the last push completed (RFC 3339) and how long ago, in seconds.
    pub last_good_at: Option<String>,
    #[ts(type = "number | null")]
    pub last_good_age_seconds: Option<i64>,
    /// The last push that failed, when newer than the last good one.
    pub last_failed_at: Option<String>,
    /// No good snapshot, or the last one is older than the schedule allows.
    pub stale: bool,
    pub push_due: bool,
    pub auto_push: Option<AutoPushView>,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct SyncOverview {
    pub target: Option<SyncTargetView>,
    pub status: SyncStatusView,
}

#[derive(Deserialize, TS)]
pub struct SetSyncSchedule {
    /// 0 turns automatic pushes off; at most 168 (a week).
    pub every_hours: u32,
}

/// A passed connection test (a failure is the command's error, with the reason).
#[derive(Clone, Debug, Serialize, TS)]
pub struct ConnectionResult {
    pub kind: String,
    /// empty, this_vault or other.
    pub repository: String,
    pub message: String,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct SnapshotRow {
    /// The first 12 hex digits of the snapshot's name.
    pub id: String,
    pub time: String,
    pub host: String,
    #[ts(type = "number")]
    pub files: u64,
    #[ts(type = "number")]
    pub bytes: u64,
    #[ts(type = "number | null")]
    pub audit_entries: Option<u64>,
}

/// How far a push or restore test has got (sent on a channel while it runs).
#[derive(Clone, Debug, Serialize, TS)]
pub struct SyncProgress {
    pub phase: String,
    /// bytes or an item name (files, packs, …).
    pub unit: String,
    #[ts(type = "number")]
    pub done: u64,
    /// 0 when unknown.
    #[ts(type = "number")]
    pub total: u64,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct PushResult {
    pub snapshot: String,
    #[ts(type = "number")]
    pub files: u64,
    #[ts(type = "number")]
    pub bytes: u64,
    #[ts(type = "number")]
    pub unchanged_files: u64,
    #[ts(type = "number")]
    pub new_blobs: u64,
    #[ts(type = "number")]
    pub uploaded_bytes: u64,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct FailedSnapshot {
    pub snapshot: String,
    pub reason: String,
}

/// The restore test's verdict: the newest snapshot that restored and verified (if any), and
/// newer ones that did not.
#[derive(Clone, Debug, Serialize, TS)]
pub struct RestoreTestResult {
    pub ok: bool,
    pub snapshot: Option<String>,
    pub time: Option<String>,
    #[ts(type = "number | null")]
    pub age_seconds: Option<i64>,
    #[ts(type = "number | null")]
    pub patients: Option<i64>,
    #[ts(type = "number | null")]
    pub audit_entries: Option<u64>,
    pub failed: Vec<FailedSnapshot>,
    pub message: String,
}

/// The TypeScript declarations of the types above (appended by `api::typescript_bindings`).
pub fn decls() -> Vec<String> {
    vec![
        SetSyncTarget::decl(),
        SyncTargetView::decl(),
        AutoPushView::decl(),
        SyncStatusView::decl(),
        SyncOverview::decl(),
        SetSyncSchedule::decl(),
        ConnectionResult::decl(),
        SnapshotRow::decl(),
        SyncProgress::decl(),
        PushResult::decl(),
        FailedSnapshot::decl(),
        RestoreTestResult::decl(),
    ]
}
