//! The sync commands of the shell (a child module of `shell`, so they share its session): each
//! translates a request into a call of clinvault-sync's `ops` — the same functions the CLI runs —
//! or of the core's sync settings, and the result into `sync_api` replies. When a push is due is
//! the core's rule (`sync_config::push_due`, through `Session::sync_status`); the app's timer
//! only asks and runs it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use clinvault_core::sync_config::SyncStatus;
use clinvault_core::SessionState;
use clinvault_sync::ops::{self, TargetOptions};
use clinvault_sync::target::{Credentials, TlsMin};

use clinvault_sync::{NoProgress, Progress, ProgressEvent, PushReport, TargetSpec};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::{core, full_path, Result, Shell};
use crate::api::{ApiError, ErrorKind};
use crate::host::Host;
use crate::sync_api::*;

/// Forwards the sync crate's progress events to a sink (the window's channel), at most once per
/// whole percent of a phase with a known total.
pub struct ProgressSink<F: Fn(SyncProgress) + Send + Sync> {
    send: F,
    state: Mutex<(SyncProgress, u64)>,
}

impl<F: Fn(SyncProgress) + Send + Sync> ProgressSink<F> {
    pub fn new(send: F) -> Self {
        ProgressSink {
            send,
            state: Mutex::new((
                SyncProgress {
                    phase: String::new(),
                    unit: String::new(),
                    done: 0,
                    total: 0,
                },
                u64::MAX,
            )),
        }
    }
}

impl<F: Fn(SyncProgress) + Send + Sync> Progress for ProgressSink<F> {
    fn event(&self, event: ProgressEvent) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        let (p, last) = &mut *st;
        match event {
            ProgressEvent::Phase { name, total, unit } => {
                *p = SyncProgress {
                    phase: name.to_owned(),
                    unit: unit.to_owned(),
                    done: 0,
                    total,
                };
                *last = u64::MAX;
            }
            ProgressEvent::Advance { done } => p.done = p.done.saturating_add(done),
            ProgressEvent::PhaseDone => p.done = p.total.max(p.done),
        }
        let pct = p.done.saturating_mul(100).checked_div(p.total).unwrap_or(0);
        if pct != *last {
            *last = pct;
            (self.send)(p.clone());
        }
    }
}

fn secret(s: &Option<SecretString>) -> Option<Zeroizing<String>> {
    s.as_ref()
        .map(|v| v.expose_secret().trim().to_owned())
        .filter(|v| !v.is_empty())
        .map(Zeroizing::new)
}

fn optional_text(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|t| !t.is_empty())
}

fn target_view(spec: &TargetSpec) -> SyncTargetView {
    SyncTargetView {
        url: spec.url.clone(),
        kind: spec.kind().to_owned(),
        tls_min: match spec.tls_min {
            TlsMin::Tls13 => "1.3",
            TlsMin::Tls12 => "1.2",
        }
        .to_owned(),
        ca_file: spec.ca_file.as_ref().map(|p| p.display().to_string()),
        ssh_key: spec.ssh_key.as_ref().map(|p| p.display().to_string()),
        has_secret: spec.needs_password() || spec.needs_s3_keys(),
    }
}

fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

/// An RFC 3339 time to the second, as people read it ("2026-11-23 12:09:07 UTC").
fn when(t: &str) -> String {
    format!("{} UTC", t.get(..19).unwrap_or(t).replace('T', " "))
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / 1048576.0)
}

impl<H: Host> Shell<H> {
    fn status_view(&self, s: SyncStatus) -> SyncStatusView {
        SyncStatusView {
            target_set: s.target_set,
            every_hours: s.schedule.every_hours.unwrap_or(0),
            last_good_at: s.last_good_at,
            last_good_age_seconds: s.last_good_age_seconds,
            last_failed_at: s.last_failed_at,
            stale: s.stale,
            push_due: s.push_due,
            auto_push: self.auto_push.clone(),
        }
    }

    /// The target (without secrets) and the schedule and last good snapshot.
    pub fn sync_overview(&mut self) -> Result<SyncOverview> {
        let s = self.active()?;
        let target = core(ops::target_settings(s))?.as_ref().map(target_view);
        let status = core(s.sync_status())?;
        Ok(SyncOverview {
            target,
            status: self.status_view(status),
        })
    }

    /// Schedule and last good snapshot only (the administrator's Home).
    pub fn sync_status(&mut self) -> Result<SyncStatusView> {
        let status = core(self.active()?.sync_status())?;
        Ok(self.status_view(status))
    }

    pub fn set_sync_target(&mut self, req: SetSyncTarget) -> Result<SyncTargetView> {
        let url = req.url.trim();
        if url.is_empty() {
            return Err(ApiError::new(
                ErrorKind::InvalidInput,
                "url: give the target, e.g. file:///mnt/nas/clinvault",
            ));
        }
        let path = |field: &str, v: &Option<String>| -> Result<Option<PathBuf>> {
            optional_text(v).map(|t| full_path(field, t)).transpose()
        };
        let opts = TargetOptions {
            tls_min: optional_text(&req.tls_min)
                .map(TlsMin::parse)
                .transpose()
                .map_err(ApiError::from)?,
            ca_file: path("ca_file", &req.ca_file)?,
            ssh_key: path("ssh_key", &req.ssh_key)?,
            pack_mib: None,
        };
        let creds = Credentials {
            password: secret(&req.password),
            s3_key_id: secret(&req.s3_key_id),
            s3_secret: secret(&req.s3_secret),
        };
        let spec = core(ops::set_target(self.active()?, url, opts, creds))?;
        Ok(target_view(&spec))
    }

    pub fn test_sync_target(&mut self) -> Result<ConnectionResult> {
        let c = core(ops::test_connection(self.active()?))?;
        let message = match c.repository.as_str() {
            "empty" => {
                "Connection works: the target can be read and written. The first push \
                        creates the repository there."
            }
            "this_vault" => "Connection works: the target holds this vault's repository.",
            _ => {
                "The connection works, but the target holds a repository this vault did not \
                  create: choose an empty folder."
            }
        }
        .to_owned();
        Ok(ConnectionResult {
            kind: c.kind,
            repository: c.repository,
            message,
        })
    }

    pub fn set_sync_schedule(&mut self, req: SetSyncSchedule) -> Result<SyncStatusView> {
        let s = self.active()?;
        core(s.set_sync_schedule(Some(req.every_hours)))?;
        let status = core(s.sync_status())?;
        Ok(self.status_view(status))
    }

    pub fn sync_snapshots(&mut self) -> Result<Vec<SnapshotRow>> {
        let mut list = core(ops::snapshots(self.active()?))?;
        list.reverse();
        Ok(list
            .into_iter()
            .map(|i| SnapshotRow {
                id: short(&i.id),
                time: i.time,
                host: i.host,
                files: i.files as u64,
                bytes: i.bytes,
                audit_entries: i.audit_entries,
            })
            .collect())
    }

    /// A whole push under one borrow of the shell: for callers that hold it anyway (tests).
    /// The window's command runs the halves with the upload between them, without the lock.
    pub fn sync_push(&mut self, progress: &dyn Progress) -> Result<PushResult> {
        let mut push = self.sync_push_begin()?;
        let outcome = push.upload(progress);
        self.sync_push_end(push, outcome)
    }

    /// The first half of a push: target, staged copy and permission, under the shell's lock.
    /// One push or restore test at a time (another, by hand or by the timer, is refused until
    /// it ends).
    pub fn sync_push_begin(&mut self) -> Result<PushInFlight> {
        let slot = SyncSlot::take(&self.sync_running)?;
        let at = clinvault_core::clock::rfc3339(self.host.clock().now());
        let prepared = core(ops::prepare_push(self.active()?))?;
        Ok(PushInFlight {
            prepared,
            started_at: at,
            _slot: slot,
        })
    }

    /// The second half: records the outcome and answers with it. If the session locked during
    /// the upload, the entry waits for the same person to unlock or sign in again.
    pub fn sync_push_end(
        &mut self,
        push: PushInFlight,
        outcome: clinvault_core::Result<PushReport>,
    ) -> Result<PushResult> {
        self.record_run(push.prepared.into_run(), &outcome);
        let r = core(outcome)?;
        Ok(PushResult {
            snapshot: short(&r.snapshot),
            files: r.files as u64,
            bytes: r.bytes,
            unchanged_files: r.unchanged_files as u64,
            new_blobs: r.new_blobs,
            uploaded_bytes: r.uploaded_bytes,
        })
    }

    /// Records a push or restore test; if the session locked while it ran, the entry waits
    /// for its person (`record_unrecorded`).
    fn record_run<T>(
        &mut self,
        run: clinvault_core::snapshot::AuditedRun,
        outcome: &clinvault_core::Result<T>,
    ) {
        let failure = outcome.as_ref().err().map(clinvault_core::Error::kind);
        // `check` first: a session past its idle limit during the upload locks now.
        let recorded = self.session.as_mut().is_some_and(|s| {
            s.check() == SessionState::Active && s.finish_audited(&run, failure).is_ok()
        });
        if !recorded {
            self.unrecorded.push((run, failure));
        }
    }

    /// Records the pushes and restore tests that ended while the session was locked, once
    /// their person is back.
    pub(crate) fn record_unrecorded(&mut self) {
        let Some(s) = self.session.as_mut() else {
            return;
        };
        self.unrecorded
            .retain(|(run, failure)| s.finish_audited(run, *failure).is_err());
    }

    pub fn sync_restore_test(&mut self, progress: &dyn Progress) -> Result<RestoreTestResult> {
        let mut test = self.sync_restore_test_begin()?;
        let result = test.run(progress);
        self.sync_restore_test_end(test, result)
    }

    /// The first half of a restore test: the repository and the permission, under the lock.
    /// It shares the one slot with pushes.
    pub fn sync_restore_test_begin(&mut self) -> Result<RestoreTestInFlight> {
        let slot = SyncSlot::take(&self.sync_running)?;
        let prepared = core(ops::prepare_restore_test(self.active()?))?;
        Ok(RestoreTestInFlight {
            prepared,
            outcome: None,
            _slot: slot,
        })
    }

    /// The second half: records the outcome and answers with it.
    pub fn sync_restore_test_end(
        &mut self,
        test: RestoreTestInFlight,
        result: clinvault_core::Result<()>,
    ) -> Result<RestoreTestResult> {
        let RestoreTestInFlight {
            prepared, outcome, ..
        } = test;
        self.record_run(prepared.into_run(), &result);
        let failed = |o: &ops::RestoreTest| {
            o.failed
                .iter()
                .map(|(id, why)| FailedSnapshot {
                    snapshot: short(id),
                    reason: why.clone(),
                })
                .collect::<Vec<_>>()
        };
        match (result, outcome) {
            (Ok(()), Some(o)) => Ok(RestoreTestResult {
                ok: true,
                message: format!(
                    "Restore test passed: snapshot {} of {} restores, opens and verifies \
                     ({} patients, audit trail of {} entries intact).",
                    short(&o.snapshot),
                    when(&o.time),
                    o.verify.patients,
                    o.verify.audit_entries
                ),
                snapshot: Some(short(&o.snapshot)),
                time: Some(o.time.clone()),
                age_seconds: Some(o.age_seconds),
                patients: Some(o.verify.patients),
                audit_entries: Some(o.verify.audit_entries),
                failed: failed(&o),
            }),
            // Newer snapshots failed but an older one is good: a result to show, not a crash.
            (Err(e), Some(o)) => Ok(RestoreTestResult {
                ok: false,
                message: e.to_string(),
                snapshot: Some(short(&o.snapshot)),
                time: Some(o.time.clone()),
                age_seconds: Some(o.age_seconds),
                patients: Some(o.verify.patients),
                audit_entries: Some(o.verify.audit_entries),
                failed: failed(&o),
            }),
            (Err(e), None) => Err(e.into()),
            (Ok(()), None) => Err(ApiError::new(
                ErrorKind::Internal,
                "the restore test finished without a result",
            )),
        }
    }

    /// The app's timer: when a session is unlocked, may manage sync, and the core says a push
    /// is due, runs it and remembers the outcome for the screens (the audit trail records it
    /// too, which is what the core's rule reads next time). Returns whether a push ran. Under
    /// one borrow of the shell, for tests; the timer runs the halves as the window's command does.
    pub fn run_scheduled_push(&mut self) -> bool {
        match self.scheduled_push_begin() {
            None => false,
            Some(None) => true,
            Some(Some(mut push)) => {
                let outcome = push.upload(&NoProgress);
                self.scheduled_push_end(push, outcome);
                true
            }
        }
    }

    /// The first half of a scheduled push (see `run_scheduled_push`): None when none is due
    /// (or one by hand is running), Some(None) when it failed before its upload (the outcome
    /// is kept for the screens and the core recorded it), else the push to upload.
    pub fn scheduled_push_begin(&mut self) -> Option<Option<PushInFlight>> {
        let s = self.session.as_mut()?;
        if s.check() != SessionState::Active || !s.scheduled_push_due().unwrap_or(false) {
            return None;
        }
        match self.sync_push_begin() {
            Ok(push) => Some(Some(push)),
            // A push by hand is running: the timer asks again next time.
            Err(e) if e.kind == ErrorKind::Conflict => None,
            Err(e) => {
                self.auto_push = Some(AutoPushView {
                    at: clinvault_core::clock::rfc3339(self.host.clock().now()),
                    ok: false,
                    message: format!("Automatic push failed: {}", e.message),
                });
                Some(None)
            }
        }
    }

    /// The second half of a scheduled push: records it and keeps the outcome for the screens.
    pub fn scheduled_push_end(
        &mut self,
        push: PushInFlight,
        outcome: clinvault_core::Result<PushReport>,
    ) {
        let at = push.started_at.clone();
        self.record_run(push.prepared.into_run(), &outcome);
        self.auto_push = Some(match outcome {
            Ok(r) => AutoPushView {
                at,
                ok: true,
                message: format!(
                    "Automatic push: snapshot {} ({} files, {}).",
                    short(&r.snapshot),
                    r.files,
                    mib(r.bytes)
                ),
            },
            Err(e) => AutoPushView {
                at,
                ok: false,
                message: format!("Automatic push failed: {e}"),
            },
        });
    }
}

/// A push between its halves. It holds the staged copy of the vault (removed when it is
/// dropped) and the shell's one sync slot (freed when it is dropped, also by a panic).
pub struct PushInFlight {
    prepared: ops::PreparedPush,
    started_at: String,
    _slot: SyncSlot,
}

impl PushInFlight {
    /// The upload: no session and no shell lock needed.
    pub fn upload(&mut self, progress: &dyn Progress) -> clinvault_core::Result<PushReport> {
        self.prepared.upload(progress)
    }
}

/// A restore test between its halves (the shell's one sync slot, freed when it is dropped).
pub struct RestoreTestInFlight {
    prepared: ops::PreparedRestoreTest,
    outcome: Option<ops::RestoreTest>,
    _slot: SyncSlot,
}

impl RestoreTestInFlight {
    /// The download and verification: no session and no shell lock needed.
    pub fn run(&mut self, progress: &dyn Progress) -> clinvault_core::Result<()> {
        self.prepared.run(progress, &mut self.outcome)
    }
}

struct SyncSlot(Arc<AtomicBool>);

impl SyncSlot {
    fn take(running: &Arc<AtomicBool>) -> Result<SyncSlot> {
        if running.swap(true, Ordering::SeqCst) {
            return Err(ApiError::new(
                ErrorKind::Conflict,
                "A push or restore test is already running; this one was not started. Wait for it \
                 to finish.",
            ));
        }
        Ok(SyncSlot(running.clone()))
    }
}

impl Drop for SyncSlot {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}
