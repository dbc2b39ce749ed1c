//! The sync commands without a window: a real folder target, real pushes and restore tests,
//! the core's schedule rule on the fixture's hand-moved clock, and a WebDAV address where
//! nothing listens for the connection test's "unreachable" answer.

use std::sync::Mutex;

use super::*;
use crate::shell::ProgressSink;
use crate::sync_api::*;

fn folder_target(f: &mut Fixture, dir: &Path) -> SyncTargetView {
    f.shell
        .set_sync_target(SetSyncTarget {
            url: format!("file://{}", dir.display()),
            password: None,
            s3_key_id: None,
            s3_secret: None,
            tls_min: None,
            ca_file: None,
            ssh_key: None,
        })
        .unwrap()
}

/// Moves the clock on; an administrator who was away long enough for the idle lock (or the
/// session's end) comes back by unlocking (or signing in again).
fn later(f: &mut Fixture, seconds: i64) {
    f.clock.advance(seconds);
    match stage(f) {
        Stage::Active { .. } => {}
        Stage::Locked { .. } => {
            f.shell
                .unlock(Unlock {
                    passphrase: secret(ADMIN_PASS),
                })
                .unwrap();
        }
        _ => {
            sign_in(f, "admin", ADMIN_PASS).unwrap();
        }
    }
}

#[test]
fn an_administrator_sets_a_folder_target_tests_pushes_lists_and_restore_tests() {
    let mut f = with_admin();
    let out = tempfile::tempdir().unwrap();
    let repo = out.path().join("nas").join("clinvault");

    // Nothing set yet: the overview says so, and pushing names what to do.
    let o = f.shell.sync_overview().unwrap();
    assert!(o.target.is_none());
    assert!(!o.status.target_set);
    assert!(o.status.stale, "no snapshot at all must be a warning");
    assert_eq!(o.status.every_hours, 0);
    let e = f.shell.test_sync_target().err().unwrap();
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert!(e.message.contains("no sync target"), "{}", e.message);

    // Bad input: a clear message, nothing saved.
    let bad = f
        .shell
        .set_sync_target(SetSyncTarget {
            url: "ftp://nas/x".into(),
            password: None,
            s3_key_id: None,
            s3_secret: None,
            tls_min: None,
            ca_file: None,
            ssh_key: None,
        })
        .err()
        .unwrap();
    assert_eq!(bad.kind, ErrorKind::InvalidInput);
    assert!(bad.message.contains("unsupported"), "{}", bad.message);
    let bad_tls = f
        .shell
        .set_sync_target(SetSyncTarget {
            url: "webdavs://nas.example/dav".into(),
            password: None,
            s3_key_id: None,
            s3_secret: None,
            tls_min: Some("1.0".into()),
            ca_file: None,
            ssh_key: None,
        })
        .err()
        .unwrap();
    assert!(
        bad_tls.message.contains("TLS minimum"),
        "{}",
        bad_tls.message
    );
    assert!(f.shell.sync_overview().unwrap().target.is_none());

    let view = folder_target(&mut f, &repo);
    assert_eq!(view.kind, "file");
    assert!(!view.has_secret);
    let t = f.shell.test_sync_target().unwrap();
    assert_eq!(t.repository, "empty");
    assert!(t.message.starts_with("Connection works"), "{}", t.message);

    // Push with progress: phases arrive, the snapshot is listed with its size.
    let events = Mutex::new(Vec::<SyncProgress>::new());
    let sink = ProgressSink::new(|p| events.lock().unwrap().push(p));
    let pushed = f.shell.sync_push(&sink).unwrap();
    drop(sink);
    assert_eq!(pushed.snapshot.len(), 12);
    assert!(pushed.files >= 2 && pushed.bytes > 0, "{pushed:?}");
    let events = events.into_inner().unwrap();
    assert!(!events.is_empty(), "no progress reported");
    assert!(events.iter().all(|e| e.total == 0 || e.done <= e.total));
    let snaps = f.shell.sync_snapshots().unwrap();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0].id, pushed.snapshot);
    assert_eq!(snaps[0].files, pushed.files);
    assert_eq!(snaps[0].bytes, pushed.bytes);
    assert!(f.shell.test_sync_target().unwrap().repository == "this_vault");

    // The last good snapshot's age follows the core's clock.
    let st = f.shell.sync_status().unwrap();
    assert_eq!(st.last_good_age_seconds, Some(0));
    assert!(!st.stale);
    later(&mut f, 3 * 3600);
    assert_eq!(
        f.shell.sync_status().unwrap().last_good_age_seconds,
        Some(3 * 3600)
    );
    later(&mut f, 46 * 3600);
    assert!(
        f.shell.sync_status().unwrap().stale,
        "49 hours without a schedule is too old"
    );

    // A second push lists newest first; the restore test restores and verifies the newest.
    let second = f.shell.sync_push(&clinvault_sync::NoProgress).unwrap();
    let snaps = f.shell.sync_snapshots().unwrap();
    assert_eq!(snaps.len(), 2);
    assert_eq!(snaps[0].id, second.snapshot);
    let rt = f
        .shell
        .sync_restore_test(&clinvault_sync::NoProgress)
        .unwrap();
    assert!(rt.ok, "{}", rt.message);
    assert_eq!(rt.snapshot.as_deref(), Some(second.snapshot.as_str()));
    assert!(rt.failed.is_empty());
    assert!(rt.message.contains("Restore test passed"), "{}", rt.message);

    // Each step is in the audit trail (kind and ids only).
    let actions: Vec<String> = entries(&mut f, "sync.")
        .into_iter()
        .map(|r| r.action)
        .collect();
    for a in [
        "sync.target.set",
        "sync.target.test",
        "sync.push",
        "sync.restore_test",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} missing: {actions:?}");
    }
}

#[test]
fn the_schedule_is_the_cores_rule_and_runs_only_for_an_unlocked_administrator() {
    let mut f = with_admin();
    let out = tempfile::tempdir().unwrap();
    folder_target(&mut f, &out.path().join("repo"));

    // Off by default: the timer never pushes.
    assert!(!f.shell.sync_status().unwrap().push_due);
    assert!(!f.shell.run_scheduled_push());
    assert!(f.shell.sync_snapshots().is_err(), "nothing was pushed");

    let bad = f
        .shell
        .set_sync_schedule(SetSyncSchedule { every_hours: 1000 })
        .err()
        .unwrap();
    assert_eq!(bad.kind, ErrorKind::InvalidInput);
    assert!(bad.message.contains("every_hours"), "{}", bad.message);

    let st = f
        .shell
        .set_sync_schedule(SetSyncSchedule { every_hours: 4 })
        .unwrap();
    assert_eq!(st.every_hours, 4);
    assert!(st.push_due, "never pushed: due at once");
    assert!(f.shell.run_scheduled_push());
    let st = f.shell.sync_status().unwrap();
    let auto = st.auto_push.clone().unwrap();
    assert!(auto.ok, "{}", auto.message);
    assert!(!st.push_due);
    assert_eq!(f.shell.sync_snapshots().unwrap().len(), 1);

    // Not due again until four hours have passed.
    later(&mut f, 4 * 3600 - 60);
    assert!(!f.shell.run_scheduled_push());
    later(&mut f, 60);
    assert!(f.shell.sync_status().unwrap().push_due);

    // Locked: the timer leaves it alone; unlocked, it pushes.
    f.shell.lock().unwrap();
    assert!(!f.shell.run_scheduled_push());
    f.shell
        .unlock(Unlock {
            passphrase: secret(ADMIN_PASS),
        })
        .unwrap();
    assert!(f.shell.run_scheduled_push());
    assert_eq!(f.shell.sync_snapshots().unwrap().len(), 2);

    // A failing target: the failure is shown and recorded, and the next try waits an hour.
    let blocked = out.path().join("blocked");
    std::fs::write(&blocked, b"a file where the folder should be").unwrap();
    folder_target_unchecked(&mut f, &blocked);
    later(&mut f, 4 * 3600);
    assert!(f.shell.run_scheduled_push());
    let st = f.shell.sync_status().unwrap();
    let auto = st.auto_push.clone().unwrap();
    assert!(!auto.ok);
    assert!(
        auto.message.starts_with("Automatic push failed"),
        "{}",
        auto.message
    );
    assert!(st.last_failed_at.is_some());
    assert!(!st.push_due, "retried at once after a failure");
    later(&mut f, 3600);
    assert!(f.shell.sync_status().unwrap().push_due);

    // Turned off again.
    assert_eq!(
        f.shell
            .set_sync_schedule(SetSyncSchedule { every_hours: 0 })
            .unwrap()
            .every_hours,
        0
    );
    assert!(!f.shell.run_scheduled_push());

    // A receptionist's session never pushes and is refused the sync screen by the core.
    f.shell
        .add_user(AddUser {
            username: "rita".into(),
            display_name: None,
            role: "receptionist".into(),
            passphrase: secret(RECEPTION_PASS),
        })
        .unwrap();
    f.shell
        .set_sync_schedule(SetSyncSchedule { every_hours: 1 })
        .unwrap();
    later(&mut f, 2 * 3600);
    f.shell.sign_out().unwrap();
    sign_in(&mut f, "rita", RECEPTION_PASS).unwrap();
    assert!(!f.shell.run_scheduled_push());
    assert_eq!(
        f.shell.sync_overview().err().unwrap().kind,
        ErrorKind::PermissionDenied
    );
}

/// Sets a folder target whose folder cannot be created (a file is in the way).
fn folder_target_unchecked(f: &mut Fixture, path: &Path) {
    f.shell
        .set_sync_target(SetSyncTarget {
            url: format!("file://{}", path.display()),
            password: None,
            s3_key_id: None,
            s3_secret: None,
            tls_min: None,
            ca_file: None,
            ssh_key: None,
        })
        .unwrap();
}

#[test]
fn the_connection_test_names_an_unreachable_server() {
    let mut f = with_admin();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Nothing listens there any more once the listener is dropped; no user, so no keyring.
    f.shell
        .set_sync_target(SetSyncTarget {
            url: format!("webdav://127.0.0.1:{port}/dav"),
            password: None,
            s3_key_id: None,
            s3_secret: None,
            tls_min: None,
            ca_file: None,
            ssh_key: None,
        })
        .unwrap();
    let e = f.shell.test_sync_target().err().unwrap();
    assert_eq!(e.kind, ErrorKind::Io);
    assert!(
        e.message.contains("cannot reach the server"),
        "{}",
        e.message
    );
}

/// The trail's entries for an action (or a prefix ending in '.'), newest first.
fn entries(f: &mut Fixture, action: &str) -> Vec<AuditRow> {
    f.shell
        .audit_list(AuditQuery {
            user: None,
            action: Some(action.into()),
            patient_id: None,
            outcome: None,
            since: None,
            until: None,
            before_seq: None,
            limit: None,
        })
        .unwrap()
}

/// The window's push command uploads between two short turns of the shell's lock. Meanwhile
/// the shell answers other commands and refuses a second push, by hand or by the timer; a push
/// that ends while the screen is locked is recorded once its person unlocks.
#[test]
fn a_push_or_restore_test_runs_between_its_halves_and_one_ending_while_locked_waits_for_unlock() {
    let mut f = with_admin();
    let out = tempfile::tempdir().unwrap();
    folder_target(&mut f, &out.path().join("repo"));
    f.shell
        .set_sync_schedule(SetSyncSchedule { every_hours: 4 })
        .unwrap();
    let before = entries(&mut f, "sync.push").len();

    let mut push = f.shell.sync_push_begin().unwrap();
    assert!(f.shell.sync_status().unwrap().push_due);
    let second = f.shell.sync_push_begin().err().unwrap();
    assert_eq!(second.kind, ErrorKind::Conflict);
    assert!(
        second.message.contains("already running"),
        "{}",
        second.message
    );
    assert!(
        !f.shell.run_scheduled_push(),
        "the timer started a second push"
    );
    let test = f.shell.sync_restore_test_begin().err().unwrap();
    assert_eq!(test.kind, ErrorKind::Conflict);

    f.shell.lock().unwrap();
    let outcome = push.upload(&clinvault_sync::NoProgress);
    let done = f.shell.sync_push_end(push, outcome).unwrap();
    assert_eq!(done.snapshot.len(), 12);
    f.shell
        .unlock(Unlock {
            passphrase: secret(ADMIN_PASS),
        })
        .unwrap();
    let pushes = entries(&mut f, "sync.push");
    assert_eq!(pushes.len(), before + 1, "{pushes:?}");
    assert_eq!(pushes[0].outcome, "ok");
    assert!(
        pushes[0].details.contains(&done.snapshot),
        "{}",
        pushes[0].details
    );
    // The push slot is free again, and the schedule saw the push.
    assert!(!f.shell.sync_status().unwrap().push_due);

    // The idle limit passing during an upload locks the session when the push ends.
    let mut push = f.shell.sync_push_begin().unwrap();
    f.clock.advance(16 * 60);
    let outcome = push.upload(&clinvault_sync::NoProgress);
    f.shell.sync_push_end(push, outcome).unwrap();
    assert!(matches!(stage(&mut f), Stage::Locked { .. }));
    f.shell
        .unlock(Unlock {
            passphrase: secret(ADMIN_PASS),
        })
        .unwrap();
    assert_eq!(f.shell.sync_snapshots().unwrap().len(), 2);
    let pushes = entries(&mut f, "sync.push");
    assert_eq!(pushes.len(), before + 2);
    let locked = entries(&mut f, "session.lock");
    assert!(
        pushes[0].seq > locked[0].seq,
        "recorded by a session past its idle limit: {pushes:?} {locked:?}"
    );

    // A restore test runs the same way, and also waits to be recorded.
    let mut test = f.shell.sync_restore_test_begin().unwrap();
    f.shell.lock().unwrap();
    let result = test.run(&clinvault_sync::NoProgress);
    assert!(f.shell.sync_restore_test_end(test, result).unwrap().ok);
    f.shell
        .unlock(Unlock {
            passphrase: secret(ADMIN_PASS),
        })
        .unwrap();
    let tests = entries(&mut f, "sync.restore_test");
    assert_eq!(tests.len(), 1, "{tests:?}");
    assert_eq!(tests[0].outcome, "ok");
}
