//! The repository lock: an encrypted object under `locks/` per running operation. Pushes and
//! prunes hold it exclusively; restores and checks hold it shared. A lock is stale when it is
//! older than `STALE_SECS` without refresh, or when it was taken on this host by a process that
//! no longer runs (a push killed with -9 must not block the next one). A thread rewrites the
//! lock every `REFRESH_SECS` while it is held, so an upload, restore or check that runs longer
//! than `STALE_SECS` is not taken for stale (a prune could otherwise delete the packs it is
//! writing or reading).
//!
//! A lock that someone else removed (another device took it for abandoned while this computer
//! slept) is not written back: the holder learns it lost the lock, and a push or prune checks
//! that it still holds it before the step that commits its work.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use clinvault_core::{Error, Result};

use crate::backend::Backend;
use crate::keys::DerivedKeys;
use crate::model::LockFile;

pub const STALE_SECS: i64 = 30 * 60;
pub const REFRESH_SECS: i64 = 5 * 60;

pub struct RepoLock {
    backend: Backend,
    name: String,
    keep_alive: Option<KeepAlive>,
    /// Set when the lock was found removed from the target.
    lost: Arc<AtomicBool>,
}

/// The thread that rewrites a held lock; told to stop (and joined) when the lock is dropped.
struct KeepAlive {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: std::thread::JoinHandle<()>,
}

impl KeepAlive {
    fn start(
        backend: Backend,
        keys: Arc<DerivedKeys>,
        name: String,
        exclusive: bool,
        every: Duration,
        lost: Arc<AtomicBool>,
    ) -> Option<KeepAlive> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sync-lock".into())
            .spawn(move || {
                let host = hostname();
                let (lock, wake) = &*flag;
                let mut stopped = lock.lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    // Told to stop before it first waited (the lock was dropped at once): the
                    // notification is gone, so the flag is what tells.
                    if *stopped {
                        return;
                    }
                    let (guard, _) = wake
                        .wait_timeout(stopped, every)
                        .unwrap_or_else(|p| p.into_inner());
                    stopped = guard;
                    if *stopped {
                        return;
                    }
                    // A failed rewrite is tried again at the next beat; the operation itself
                    // reports what the target refuses.
                    match confirmed_there(&backend, &name) {
                        Ok(true) => {
                            let _ = write_lock(&backend, &keys, &name, exclusive, &host, now());
                        }
                        Ok(false) => {
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        Err(_) => {}
                    }
                }
            })
            .ok()?;
        Some(KeepAlive { stop, thread })
    }

    fn stop(self) {
        let (lock, wake) = &*self.stop;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        wake.notify_all();
        let _ = self.thread.join();
    }
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

/// Whether lock `name` is still on the target (read, not stat: some WebDAV servers answer a
/// read but never a size query).
fn still_there(backend: &Backend, name: &str) -> Result<bool> {
    match backend.read_small(&format!("locks/{name}")) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == clinvault_core::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// As `still_there`, but "gone" only when a second look a moment later agrees: some WebDAV
/// servers replace an object by deleting it first, so a read during the keep-alive's own
/// rewrite can miss it.
fn confirmed_there(backend: &Backend, name: &str) -> Result<bool> {
    if still_there(backend, name)? {
        return Ok(true);
    }
    std::thread::sleep(Duration::from_secs(2));
    still_there(backend, name)
}

fn is_stale(l: &LockFile, host: &str, t: i64) -> bool {
    t - l.time > STALE_SECS
        || (l.host == host && l.pid != std::process::id() && !process_alive(l.pid))
}

impl RepoLock {
    pub fn acquire(
        backend: &Backend,
        keys: &Arc<DerivedKeys>,
        exclusive: bool,
    ) -> Result<RepoLock> {
        Self::acquire_refreshed(
            backend,
            keys,
            exclusive,
            Duration::from_secs(REFRESH_SECS.unsigned_abs()),
        )
    }

    /// As `acquire`, rewriting the lock every `every` while it is held.
    pub(crate) fn acquire_refreshed(
        backend: &Backend,
        keys: &Arc<DerivedKeys>,
        exclusive: bool,
        every: Duration,
    ) -> Result<RepoLock> {
        let backend = &backend.for_small_objects();
        let host = hostname();
        Self::check_others(backend, keys, exclusive, &host, None)?;
        let name = uuid::Uuid::new_v4().to_string();
        write_lock(backend, keys, &name, exclusive, &host, now())?;
        let mut lock = RepoLock {
            backend: backend.clone(),
            name,
            keep_alive: None,
            lost: Arc::new(AtomicBool::new(false)),
        };
        // Two writers may have written their locks at the same moment: both see the other now
        // and the later one backs off (dropping `lock` removes ours).
        Self::check_others(backend, keys, exclusive, &host, Some(&lock.name))?;
        // The keep-alive is the lock's only writer from here on.
        lock.keep_alive = Some(
            KeepAlive::start(
                backend.clone(),
                keys.clone(),
                lock.name.clone(),
                exclusive,
                every,
                lock.lost.clone(),
            )
            .ok_or_else(|| Error::Internal("cannot start the sync lock's keep-alive".into()))?,
        );
        Ok(lock)
    }

    fn check_others(
        backend: &Backend,
        keys: &DerivedKeys,
        exclusive: bool,
        host: &str,
        ours: Option<&str>,
    ) -> Result<()> {
        let t = now();
        for entry in backend.list("locks")? {
            if Some(entry.name.as_str()) == ours {
                continue;
            }
            let path = format!("locks/{}", entry.name);
            let Ok(bytes) = backend.read_small(&path) else {
                continue;
            };
            let Ok(plain) = keys.open_meta("lock", &bytes) else {
                continue; // not ours to judge: a lock we cannot read does not block
            };
            let Ok(l) = serde_json::from_slice::<LockFile>(&plain) else {
                continue;
            };
            if is_stale(&l, host, t) {
                let _ = backend.delete(&path);
                continue;
            }
            if exclusive || l.exclusive {
                return Err(Error::Busy(format!(
                    "another ClinVault ({} on {}, since {}) is using this sync target; try \
                     again when it has finished",
                    if l.exclusive { "writing" } else { "reading" },
                    l.host,
                    jiff::Timestamp::from_second(l.time)
                        .map(|t| t.to_string())
                        .unwrap_or_default()
                )));
            }
        }
        Ok(())
    }
}

impl RepoLock {
    /// Fails when the lock is no longer on the target: another device took it for abandoned
    /// (this computer slept or was cut off for longer than `STALE_SECS`) and may have changed
    /// the repository meanwhile, so work done under it must not be committed.
    pub fn ensure_held(&self) -> Result<()> {
        if self.lost.load(Ordering::SeqCst) || !confirmed_there(&self.backend, &self.name)? {
            self.lost.store(true, Ordering::SeqCst);
            return Err(Error::Busy(
                "this computer lost its hold on the sync target while it worked (it slept or \
                 was offline for more than 30 minutes, and another device took the hold for \
                 abandoned); nothing was recorded: run it again"
                    .into(),
            ));
        }
        Ok(())
    }
}

fn write_lock(
    backend: &Backend,
    keys: &DerivedKeys,
    name: &str,
    exclusive: bool,
    host: &str,
    time: i64,
) -> Result<()> {
    let body = LockFile {
        host: host.to_owned(),
        pid: std::process::id(),
        time,
        exclusive,
    };
    let json =
        serde_json::to_vec(&body).map_err(|_| Error::Internal("lock encoding failed".into()))?;
    backend.write_atomic(&format!("locks/{name}"), keys.seal_meta("lock", &json)?)
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        // Stopped first, so it cannot write the lock again after it is deleted.
        if let Some(k) = self.keep_alive.take() {
            k.stop();
        }
        let _ = self.backend.delete(&format!("locks/{}", self.name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::RepoKey;
    use crate::target::{Credentials, TargetSpec};

    fn lock_times(backend: &Backend, keys: &DerivedKeys) -> Vec<i64> {
        backend
            .list("locks")
            .unwrap()
            .iter()
            .map(|e| {
                let sealed = backend.read_small(&format!("locks/{}", e.name)).unwrap();
                let plain = keys.open_meta("lock", &sealed).unwrap();
                serde_json::from_slice::<LockFile>(&plain).unwrap().time
            })
            .collect()
    }

    /// A folder target in a fresh temporary folder, and a repository key.
    fn folder_target() -> (tempfile::TempDir, Backend, Arc<DerivedKeys>) {
        let dir = tempfile::tempdir().unwrap();
        let spec = TargetSpec::parse(&format!("file://{}", dir.path().display())).unwrap();
        let backend = Backend::open(&spec, &Credentials::default()).unwrap();
        (dir, backend, Arc::new(RepoKey::generate().derive()))
    }

    #[test]
    fn a_held_lock_is_rewritten_while_held_and_removed_when_dropped() {
        let (_dir, backend, keys) = folder_target();
        let lock =
            RepoLock::acquire_refreshed(&backend, &keys, true, Duration::from_millis(200)).unwrap();
        let first = lock_times(&backend, &keys);
        assert_eq!(first.len(), 1);
        std::thread::sleep(Duration::from_millis(2_300));
        let later = lock_times(&backend, &keys);
        assert!(later[0] >= first[0] + 2, "{first:?} then {later:?}");
        drop(lock);
        assert!(lock_times(&backend, &keys).is_empty());
    }

    #[test]
    fn a_lock_removed_by_someone_else_is_not_written_back_and_its_holder_knows() {
        let (_dir, backend, keys) = folder_target();
        let lock =
            RepoLock::acquire_refreshed(&backend, &keys, true, Duration::from_millis(100)).unwrap();
        lock.ensure_held().unwrap();
        // What a device that took it for stale does.
        let name = backend.list("locks").unwrap().remove(0).name;
        backend.delete(&format!("locks/{name}")).unwrap();
        // Past the keep-alive's second look (2 s) and another beat.
        std::thread::sleep(Duration::from_millis(2_600));
        assert!(lock_times(&backend, &keys).is_empty(), "written back");
        let e = lock.ensure_held().unwrap_err();
        assert_eq!(e.kind(), clinvault_core::ErrorKind::Busy);
        assert!(e.to_string().contains("lost its hold"), "{e}");
        // Another device may take it now.
        drop(RepoLock::acquire(&backend, &keys, true).unwrap());
    }
}
