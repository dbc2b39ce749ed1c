//! The sync operations as a signed-in session runs them (the CLI and the desktop app call these):
//! target settings in the vault database, credentials in the OS keyring, the staged capture
//! from the core, and one audit entry per push, restore, check or prune (ids and counts only).

use std::path::{Path, PathBuf};

use serde::Serialize;

use clinvault_core::audit::Event;
use clinvault_core::os_keyring::SecretStore;
use clinvault_core::permissions::Permission;
use clinvault_core::snapshot::{self, AuditedRun, VaultKeys, VerifyReport};
use clinvault_core::{Error, Need, Result, Session};

use crate::backend::Backend;
use crate::keys::RepoKey;
use crate::model::SnapshotInfo;
use crate::progress::Progress;
use crate::prune::{KeepPolicy, PruneReport};
use crate::push::{PushReport, SourceFile};
use crate::repo::{short, Repository};
use crate::target::{Credentials, TargetSpec, TlsMin};
use crate::verify::CheckReport;

/// The OS keyring service that holds sync credentials; the account is `<vault id>/<target id>`.
pub const KEYRING_SERVICE: &str = "clinvault-sync";

const NEED: Need = Need::Permission(Permission::SyncManage);

/// Settings given with `sync target set` besides the URL.
#[derive(Default, Clone, Debug)]
pub struct TargetOptions {
    pub tls_min: Option<TlsMin>,
    pub ca_file: Option<PathBuf>,
    pub ssh_key: Option<PathBuf>,
    pub pack_mib: Option<u32>,
}

fn add(ev: &mut Event, key: &str, value: impl Into<serde_json::Value>) {
    let e = std::mem::replace(ev, Event::new(""));
    *ev = e.detail(key, value);
}

fn absolute_file(p: &Path, what: &str) -> Result<PathBuf> {
    std::fs::canonicalize(p)
        .ok()
        .filter(|p| p.is_file())
        .ok_or_else(|| {
            Error::InvalidInput(format!("{what} {} is not a readable file", p.display()))
        })
}

fn account(vault_id: &str, target_id: &str) -> String {
    format!("{vault_id}/{target_id}")
}

/// Sets (replaces) the vault's sync target. Secrets go to the OS keyring only.
pub fn set_target(
    s: &mut Session,
    url: &str,
    opts: TargetOptions,
    creds: Credentials,
) -> Result<TargetSpec> {
    let mut spec = TargetSpec::parse(url)?;
    if let Some(t) = opts.tls_min {
        spec.tls_min = t;
    }
    if let Some(ca) = &opts.ca_file {
        spec.ca_file = Some(absolute_file(ca, "the CA file")?);
    }
    if let Some(k) = &opts.ssh_key {
        spec.ssh_key = Some(absolute_file(k, "the SSH key file")?);
    }
    if let Some(m) = opts.pack_mib {
        if !(1..=256).contains(&m) {
            return Err(Error::InvalidInput("--pack-mib: 1 to 256".into()));
        }
        spec.pack_mib = m;
    }
    if spec.needs_password() && creds.password.is_none() {
        return Err(Error::InvalidInput(
            "this WebDAV target needs a password".into(),
        ));
    }
    if spec.needs_s3_keys() && (creds.s3_key_id.is_none() || creds.s3_secret.is_none()) {
        return Err(Error::InvalidInput(
            "this S3 target needs an access key id and a secret access key".into(),
        ));
    }
    let json = serde_json::to_string(&spec)
        .map_err(|_| Error::Internal("cannot encode the target settings".into()))?;
    let target_id = s.sync_set_target(spec.kind(), &json)?;
    if !creds.is_empty() {
        SecretStore::new(KEYRING_SERVICE)
            .set(&account(&s.vault_id()?, &target_id), &creds.encode())
            .map_err(|e| Error::Io {
                context: "the target was saved but its credentials could not be stored in the \
                              OS keyring (they are never written anywhere else); start a keyring \
                              service and run `sync target set` again"
                    .into(),
                source: std::io::Error::other(e.to_string()),
            })?;
    }
    Ok(spec)
}

/// The configured target and its credentials.
pub fn target(s: &mut Session) -> Result<(TargetSpec, Credentials)> {
    let t = s.sync_target()?.ok_or_else(|| {
        Error::NotFound("no sync target is set: run `clinvault sync target set URL`".into())
    })?;
    let spec: TargetSpec = serde_json::from_str(&t.spec)
        .map_err(|_| Error::Integrity("the stored sync target settings are damaged".into()))?;
    let creds = if spec.needs_password() || spec.needs_s3_keys() {
        let stored = SecretStore::new(KEYRING_SERVICE)
            .get(&account(&s.vault_id()?, &t.target_id))
            .map_err(|e| Error::Io {
                context: "cannot read the sync credentials from the OS keyring".into(),
                source: std::io::Error::other(e.to_string()),
            })?
            .ok_or_else(|| {
                Error::NotFound(
                    "the sync target's credentials are not in this computer's keyring: run \
                     `sync target set` again"
                        .into(),
                )
            })?;
        Credentials::decode(&stored)?
    } else {
        Credentials::default()
    };
    Ok((spec, creds))
}

/// The configured target's settings without its credentials (no keyring access), for screens.
pub fn target_settings(s: &mut Session) -> Result<Option<TargetSpec>> {
    let Some(t) = s.sync_target()? else {
        return Ok(None);
    };
    serde_json::from_str(&t.spec)
        .map(Some)
        .map_err(|_| Error::Integrity("the stored sync target settings are damaged".into()))
}

/// What "test connection" found.
#[derive(Debug, Serialize)]
pub struct ConnectionCheck {
    pub kind: String,
    /// `empty` (the first push creates the repository), `this_vault`, or `other` (a repository
    /// this vault did not create: pushing there is refused).
    pub repository: String,
}

/// `sync target test` / the desktop's "Test connection": reaches the configured target with its
/// stored credentials, lists it, writes and deletes a probe object, and looks for a repository.
/// Audited (`sync.target.test`, kind and outcome only).
pub fn test_connection(s: &mut Session) -> Result<ConnectionCheck> {
    let (spec, creds) = target(s)?;
    s.run_audited(
        NEED,
        Event::new("sync.target.test").detail("kind", spec.kind()),
        |s, ev| {
            let backend = Backend::open(&spec, &creds)?;
            backend.probe()?;
            let repository = match Repository::read_config(&backend)? {
                None => "empty",
                Some(c) if s.sync_repo_key(&c.repo_id.to_string())?.is_some() => "this_vault",
                Some(_) => "other",
            };
            add(ev, "repository", repository);
            Ok(ConnectionCheck {
                kind: spec.kind().to_owned(),
                repository: repository.to_owned(),
            })
        },
    )
}

/// Opens the target's repository, creating it (and recording its key) on an empty target.
fn open_repo(s: &mut Session, create: bool) -> Result<Repository> {
    let (spec, creds) = target(s)?;
    let backend = Backend::open(&spec, &creds)?;
    match Repository::read_config(&backend)? {
        Some(c) => {
            let key = s.sync_repo_key(&c.repo_id.to_string())?.ok_or_else(|| {
                Error::Conflict(
                    "the sync target holds a repository this vault did not create; choose an \
                     empty folder, or restore from it with the recovery key"
                        .into(),
                )
            })?;
            Repository::open(backend, &RepoKey::from_bytes(&key)?, spec.pack_bytes())
        }
        None if create => {
            let key = RepoKey::generate();
            let repo_id = uuid::Uuid::new_v4();
            // The key goes into the vault first: a repository whose key was lost would be useless.
            s.sync_store_repo_key(&repo_id.to_string(), key.expose())?;
            Repository::init(
                backend,
                &key,
                repo_id,
                &s.recovery_public_key()?,
                &s.vault_id()?,
                spec.pack_bytes(),
            )
        }
        None => Err(Error::NotFound(
            "the sync target holds no repository yet: run `clinvault sync push`".into(),
        )),
    }
}

/// Records an operation that failed before it could start (target unreachable, no target set)
/// as failed in the audit trail, so the failure is on record and the push schedule can back off;
/// a refusal is already recorded by the gate.
fn failed<T>(s: &mut Session, event: Event, e: Error) -> Result<T> {
    if e.kind() == clinvault_core::ErrorKind::PermissionDenied {
        return Err(e);
    }
    s.run_audited(NEED, event, move |_, _| Err(e))
}

/// A push in three steps, so that a front end need not hold its session while uploading:
/// `prepare_push` (with the session: target, staged capture, permission), `upload` (no
/// session), then `finish_push` (with the session: the audit entry, once the outcome is known).
pub struct PreparedPush {
    repo: Repository,
    staged: snapshot::Staged,
    files: Vec<SourceFile>,
    anchor: serde_json::Value,
    keys: zeroize::Zeroizing<Vec<u8>>,
    run: AuditedRun,
}

pub fn prepare_push(s: &mut Session) -> Result<PreparedPush> {
    let repo = match open_repo(s, true) {
        Ok(r) => r,
        Err(e) => return failed(s, Event::new("sync.push"), e),
    };
    let event = Event::new("sync.push").target("sync_repository", repo.repo_id());
    let staged = match snapshot::capture(s, snapshot::Purpose::Sync) {
        Ok(st) => st,
        Err(e) => return failed(s, event, e),
    };
    let files: Vec<SourceFile> = staged
        .files()
        .iter()
        .map(|f| SourceFile {
            rel_path: f.rel_path.clone(),
            path: f.path.clone(),
            size: f.size,
        })
        .collect();
    let anchor = serde_json::to_value(staged.anchor())
        .map_err(|_| Error::Internal("cannot encode the audit anchor".into()))?;
    let keys = staged.keys().to_bytes();
    let run = s.begin_audited(NEED, event)?;
    Ok(PreparedPush {
        repo,
        staged,
        files,
        anchor,
        keys,
        run,
    })
}

impl PreparedPush {
    /// Uploads the staged copy; what it did goes into the entry `finish_push` writes.
    pub fn upload(&mut self, progress: &dyn Progress) -> Result<PushReport> {
        let r = self
            .repo
            .push(&self.files, self.anchor.clone(), &self.keys, progress)?;
        if let Some(earlier) = r.earlier_anchor.clone() {
            // An anchor this version cannot read is not evidence of anything: no comparison.
            if let Ok(anchor) = serde_json::from_value::<snapshot::AuditAnchor>(earlier) {
                self.run.compare_with_earlier_copy(anchor);
            }
        }
        let ev = self.run.event_mut();
        add(ev, "snapshot", short(&r.snapshot));
        add(ev, "files", r.files as u64);
        add(ev, "new_blobs", r.new_blobs);
        add(ev, "uploaded_bytes", r.uploaded_bytes);
        Ok(r)
    }

    /// What is left to record once the upload is over; the staged copy is removed.
    pub fn into_run(self) -> AuditedRun {
        drop(self.staged);
        self.run
    }
}

/// Records the outcome of a push or restore test run in steps (see `Session::finish_audited`
/// for when it must wait).
pub fn finish_run<T>(s: &mut Session, run: &AuditedRun, outcome: &Result<T>) -> Result<()> {
    s.finish_audited(run, outcome.as_ref().err().map(Error::kind))
}

/// Runs the last step and answers with the operation's outcome: a failure to record a failure
/// must not hide it.
fn finished<T>(s: &mut Session, run: AuditedRun, outcome: Result<T>) -> Result<T> {
    match finish_run(s, &run, &outcome) {
        Err(e) if outcome.is_ok() => Err(e),
        _ => outcome,
    }
}

/// `sync push`.
pub fn push(s: &mut Session, progress: &dyn Progress) -> Result<PushReport> {
    let mut prepared = prepare_push(s)?;
    let outcome = prepared.upload(progress);
    finished(s, prepared.into_run(), outcome)
}

/// `sync snapshots`: recorded with how many were listed (the list says which copies of the
/// vault exist, and when they were made).
pub fn snapshots(s: &mut Session) -> Result<Vec<SnapshotInfo>> {
    let repo = open_repo(s, false)?;
    s.run_audited(
        NEED,
        Event::new("sync.snapshots").target("sync_repository", repo.repo_id()),
        |_s, ev| {
            let list = repo.snapshots()?;
            *ev = ev.clone().detail("count", list.len());
            Ok(list)
        },
    )
}

/// `sync check [--read-data]`: problems make it fail with an integrity error (exit 5) after the
/// report has been handed to `report`.
pub fn check(
    s: &mut Session,
    read_data: bool,
    progress: &dyn Progress,
    report: &mut Option<CheckReport>,
) -> Result<()> {
    let repo = open_repo(s, false)?;
    s.run_audited(
        NEED,
        Event::new("sync.check").target("sync_repository", repo.repo_id()),
        |_s, ev| {
            let r = repo.check(read_data, progress)?;
            add(ev, "read_data", read_data);
            add(ev, "snapshots", r.snapshots as u64);
            add(ev, "packs", r.packs as u64);
            add(ev, "problems", r.problems.len() as u64);
            let n = r.problems.len();
            *report = Some(r);
            if n > 0 {
                return Err(Error::Integrity(format!(
                    "the sync repository has {n} problem(s): see above"
                )));
            }
            Ok(())
        },
    )
}

/// `sync prune`.
pub fn prune(s: &mut Session, policy: KeepPolicy, progress: &dyn Progress) -> Result<PruneReport> {
    let repo = open_repo(s, false)?;
    s.run_audited(
        NEED,
        Event::new("sync.prune").target("sync_repository", repo.repo_id()),
        |_s, ev| {
            let r = repo.prune(policy, progress)?;
            add(ev, "kept_snapshots", r.kept_snapshots as u64);
            add(ev, "removed_snapshots", r.removed_snapshots as u64);
            add(ev, "deleted_packs", r.deleted_packs as u64);
            Ok(r)
        },
    )
}

#[derive(Debug, Serialize)]
pub struct RestoreOutcome {
    pub snapshot: String,
    pub time: String,
    pub files: usize,
    pub bytes: u64,
    pub to: PathBuf,
    pub verify: VerifyReport,
}

/// `sync restore SNAPSHOT --to DIR`: downloads into a hidden folder next to DIR, verifies it
/// (database, integrity check, audit trail, attachments), and only then renames it to DIR.
pub fn restore(
    s: &mut Session,
    selector: &str,
    to: &Path,
    progress: &dyn Progress,
) -> Result<RestoreOutcome> {
    if to.exists() {
        return Err(Error::AlreadyExists(format!(
            "{} already exists; restore into a new folder (an existing vault is never overwritten)",
            to.display()
        )));
    }
    let repo = open_repo(s, false)?;
    let name = repo.resolve(selector)?;
    let staging = snapshot::restore_workspace(to)?;
    let result = s.run_audited(
        NEED,
        Event::new("sync.restore").target("sync_snapshot", short(&name)),
        |_s, ev| {
            let restored = repo.restore_files(&name, &staging, progress)?;
            let keys = VaultKeys::from_bytes(&restored.vault_keys)?;
            let verify =
                snapshot::finish_restore(&staging, to, &keys, &format!("sync:{}", short(&name)))?;
            add(ev, "files", restored.report.files as u64);
            Ok(RestoreOutcome {
                snapshot: name.clone(),
                time: restored.report.time,
                files: restored.report.files,
                bytes: restored.report.bytes,
                to: to.to_path_buf(),
                verify,
            })
        },
    );
    if result.is_err() && staging.exists() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

#[derive(Debug, Serialize)]
pub struct RestoreTest {
    /// The newest snapshot that restored and verified.
    pub snapshot: String,
    pub time: String,
    pub age_seconds: i64,
    /// Newer snapshots that failed, with the reason.
    pub failed: Vec<(String, String)>,
    pub verify: VerifyReport,
}

/// `sync restore-test`: restores the newest snapshot into a temporary folder, verifies it and
/// deletes it; if it fails, tries older ones to report the age of the newest good snapshot.
pub fn restore_test(
    s: &mut Session,
    progress: &dyn Progress,
    outcome: &mut Option<RestoreTest>,
) -> Result<()> {
    let mut prepared = prepare_restore_test(s)?;
    let result = prepared.run(progress, outcome);
    finished(s, prepared.into_run(), result)
}

/// A restore test in three steps, like a push: `prepare_restore_test` (with the session),
/// `run` (no session), then `finish_run`.
pub struct PreparedRestoreTest {
    repo: Repository,
    run: AuditedRun,
}

pub fn prepare_restore_test(s: &mut Session) -> Result<PreparedRestoreTest> {
    let repo = open_repo(s, false)?;
    let run = s.begin_audited(
        NEED,
        Event::new("sync.restore_test").target("sync_repository", repo.repo_id()),
    )?;
    Ok(PreparedRestoreTest { repo, run })
}

impl PreparedRestoreTest {
    pub fn run(
        &mut self,
        progress: &dyn Progress,
        outcome: &mut Option<RestoreTest>,
    ) -> Result<()> {
        let (repo, ev) = (&self.repo, self.run.event_mut());
        let mut failed = Vec::new();
        let mut list = repo.snapshots()?;
        list.reverse();
        if list.is_empty() {
            return Err(Error::NotFound(
                "the sync target holds no snapshot yet".into(),
            ));
        }
        for snap in list {
            let tmp = tempfile::tempdir().map_err(|e| Error::Io {
                context: "cannot create a temporary folder for the restore test".into(),
                source: e,
            })?;
            let dir = tmp.path().join("vault");
            let attempt = repo.restore_files(&snap.id, &dir, progress).and_then(|r| {
                let keys = VaultKeys::from_bytes(&r.vault_keys)?;
                snapshot::verify_dir(&dir, &keys)
            });
            match attempt {
                Ok(verify) if verify.audit_entries < snap.audit_entries.unwrap_or(0) => {
                    failed.push((
                        snap.id.clone(),
                        "the restored audit trail is shorter than the snapshot's anchor".into(),
                    ));
                }
                Ok(verify) => {
                    let t: jiff::Timestamp = snap.time.parse().unwrap_or_default();
                    let age = jiff::Timestamp::now().as_second() - t.as_second();
                    add(ev, "snapshot", short(&snap.id));
                    add(ev, "age_seconds", age);
                    add(ev, "failed_newer", failed.len() as u64);
                    let n = failed.len();
                    *outcome = Some(RestoreTest {
                        snapshot: snap.id.clone(),
                        time: snap.time.clone(),
                        age_seconds: age,
                        failed,
                        verify,
                    });
                    if n > 0 {
                        return Err(Error::Integrity(format!(
                            "the newest {n} snapshot(s) failed the restore test; the newest good one is {}",
                            short(&snap.id)
                        )));
                    }
                    return Ok(());
                }
                Err(e) => failed.push((snap.id.clone(), e.to_string())),
            }
        }
        let n = failed.len();
        *outcome = None;
        Err(Error::Integrity(format!(
            "none of the {n} snapshot(s) on the sync target restores and verifies"
        )))
    }

    /// What is left to record once the test is over.
    pub fn into_run(self) -> AuditedRun {
        self.run
    }
}

/// `sync restore SNAPSHOT --to DIR --from URL --recovery-key-file F`: a new machine with only the
/// recovery kit. The repository key is unsealed from the target's `config` with the recovery
/// key; no vault or session is needed. The restore is recorded in the restored vault's audit
/// trail at its first sign-in (core `finish_restore`).
pub fn restore_with_recovery(
    url: &str,
    opts: TargetOptions,
    creds: Credentials,
    recovery: &clinvault_core::RecoveryKey,
    selector: &str,
    to: &Path,
    progress: &dyn Progress,
) -> Result<RestoreOutcome> {
    if to.exists() {
        return Err(Error::AlreadyExists(format!(
            "{} already exists; restore into a new folder (an existing vault is never overwritten)",
            to.display()
        )));
    }
    let mut spec = TargetSpec::parse(url)?;
    if let Some(t) = opts.tls_min {
        spec.tls_min = t;
    }
    if let Some(ca) = &opts.ca_file {
        spec.ca_file = Some(absolute_file(ca, "the CA file")?);
    }
    if let Some(k) = &opts.ssh_key {
        spec.ssh_key = Some(absolute_file(k, "the SSH key file")?);
    }
    let backend = Backend::open(&spec, &creds)?;
    let config = Repository::read_config(&backend)?
        .ok_or_else(|| Error::NotFound("the sync target holds no ClinVault repository".into()))?;
    let key = clinvault_core::sync_config::open_with_recovery(
        recovery,
        &config.sealed_key,
        &crate::repo::repo_key_info(config.repo_id),
        &crate::repo::repo_key_aad(),
    )?;
    let repo = Repository::open(backend, &RepoKey::from_bytes(&key)?, spec.pack_bytes())?;
    let name = repo.resolve(selector)?;
    let staging = snapshot::restore_workspace(to)?;
    let result = repo
        .restore_files(&name, &staging, progress)
        .and_then(|restored| {
            let keys = VaultKeys::from_bytes(&restored.vault_keys)?;
            let verify = snapshot::finish_restore(
                &staging,
                to,
                &keys,
                &format!("sync:{} (recovery key)", short(&name)),
            )?;
            Ok(RestoreOutcome {
                snapshot: name.clone(),
                time: restored.report.time,
                files: restored.report.files,
                bytes: restored.report.bytes,
                to: to.to_path_buf(),
                verify,
            })
        });
    if result.is_err() && staging.exists() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}
