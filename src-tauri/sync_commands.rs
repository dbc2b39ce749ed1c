//! The sync commands for the window (a child module of `commands`: same lock, same panic
//! containment), and the timer that runs scheduled pushes. Pushes and restore tests send their
//! progress on a channel and run off the main thread. Both hold the shell's lock only to
//! prepare and to record: the upload or download in between, which can take minutes with a
//! slow remote target, runs without it, so the window's other commands go on meanwhile. One of
//! them at a time. (A backup export, to a local file, holds the lock while it runs.)

use std::time::Duration;

use tauri::{Manager, State};

use super::{with, AppState, Reply};
use crate::api::{ApiError, ErrorKind};
use crate::shell::ProgressSink;
use crate::sync_api::*;

/// Runs a sync command on a thread of its own. Tauri runs async commands inside its tokio
/// runtime, and clinvault-sync drives OpenDAL with a runtime of its own (`block_on`), which tokio
/// refuses to start inside another; a plain scoped thread has no runtime around it.
fn off_runtime<T: Send>(f: impl FnOnce() -> Reply<T> + Send) -> Reply<T> {
    std::thread::scope(|scope| scope.spawn(f).join()).unwrap_or_else(|_| {
        Err(ApiError::new(
            ErrorKind::Internal,
            "ClinVault hit an internal error; nothing was changed by this step. Please report it.",
        ))
    })
}

macro_rules! sync_commands {
    ($( $name:ident ( $($arg:ident : $ty:ty)? ) -> $ret:ty; )*) => {
        $(
            #[tauri::command(async)]
            pub fn $name(state: State<'_, AppState> $(, $arg: $ty)?) -> Reply<$ret> {
                off_runtime(|| with(&state, |s| s.$name($($arg)?)))
            }
        )*
        /// The plain sync commands, in the order declared.
        const PLAIN: &[&str] = &[$(stringify!($name)),*];
    };
}

sync_commands! {
    sync_overview() -> SyncOverview;
    sync_status() -> SyncStatusView;
    set_sync_target(req: SetSyncTarget) -> SyncTargetView;
    test_sync_target() -> ConnectionResult;
    set_sync_schedule(req: SetSyncSchedule) -> SyncStatusView;
    sync_snapshots() -> Vec<SnapshotRow>;
}

/// Every sync command name.
pub fn names() -> Vec<&'static str> {
    let mut n = PLAIN.to_vec();
    n.extend_from_slice(&["sync_push", "sync_restore_test"]);
    n
}

#[tauri::command(async)]
pub fn sync_push(
    state: State<'_, AppState>,
    progress: tauri::ipc::Channel<SyncProgress>,
) -> Reply<PushResult> {
    let sink = ProgressSink::new(move |p| {
        let _ = progress.send(p);
    });
    off_runtime(|| {
        let mut push = with(&state, |s| s.sync_push_begin())?;
        let outcome = upload(&mut push, &sink);
        with(&state, |s| s.sync_push_end(push, outcome))
    })
}

/// The upload between a push's halves, without the shell's lock; a panic (a bug) in it is
/// contained like any command's and ends the push as failed.
fn upload(
    push: &mut crate::shell::PushInFlight,
    progress: &dyn clinvault_sync::Progress,
) -> clinvault_core::Result<clinvault_sync::PushReport> {
    super::contain(|| Ok(push.upload(progress)))
        .unwrap_or_else(|e| Err(clinvault_core::Error::Internal(e.message)))
}

#[tauri::command(async)]
pub fn sync_restore_test(
    state: State<'_, AppState>,
    progress: tauri::ipc::Channel<SyncProgress>,
) -> Reply<RestoreTestResult> {
    let sink = ProgressSink::new(move |p| {
        let _ = progress.send(p);
    });
    off_runtime(|| {
        let mut test = with(&state, |s| s.sync_restore_test_begin())?;
        let result = super::contain(|| Ok(test.run(&sink)))
            .unwrap_or_else(|e| Err(clinvault_core::Error::Internal(e.message)));
        with(&state, |s| s.sync_restore_test_end(test, result))
    })
}

/// How often the timer asks the core whether a scheduled push is due.
const TICK: Duration = Duration::from_secs(60);

/// Starts the scheduled-push timer on its own thread: every minute it asks the shell (which
/// asks the core) whether a push is due for an unlocked session, and runs it (the upload
/// without the shell's lock, as for a push by hand). A panic in a push
/// is contained like any command's; the thread ends with the app.
pub fn start_timer(app: &tauri::AppHandle) {
    let handle = app.clone();
    let spawned = std::thread::Builder::new()
        .name("sync-schedule".into())
        .spawn(move || loop {
            std::thread::sleep(TICK);
            let state = handle.state::<AppState>();
            let Ok(Some(Some(mut push))) = with(&state, |s| Ok(s.scheduled_push_begin())) else {
                continue;
            };
            let outcome = upload(&mut push, &clinvault_sync::NoProgress);
            let _ = with(&state, |s| {
                s.scheduled_push_end(push, outcome);
                Ok(())
            });
        });
    // Without the thread there are no automatic pushes; pushing by hand still works.
    drop(spawned);
}
