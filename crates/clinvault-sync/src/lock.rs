//! The repository lock: an encrypted object under `locks/` per running operation. Pushes and
//! prunes hold it exclusively; restores and checks hold it shared. A lock is stale when it is
//! older than `STALE_SECS` without refresh, or when it was taken on this host by a process that
//! no longer runs (a push killed with -9 must not block the next one).

use clinvault_core::{Error, Result};

use crate::backend::Backend;
use crate::keys::DerivedKeys;
use crate::model::LockFile;

pub const STALE_SECS: i64 = 30 * 60;
pub const REFRESH_SECS: i64 = 5 * 60;

pub struct RepoLock {
    backend: Backend,
    name: String,
    exclusive: bool,
    taken: i64,
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

fn is_stale(l: &LockFile, host: &str, t: i64) -> bool {
    t - l.time > STALE_SECS
        || (l.host == host && l.pid != std::process::id() && !process_alive(l.pid))
}

impl RepoLock {
    pub fn acquire(backend: &Backend, keys: &DerivedKeys, exclusive: bool) -> Result<RepoLock> {
        let host = hostname();
        Self::check_others(backend, keys, exclusive, &host, None)?;
        let name = uuid::Uuid::new_v4().to_string();
        let taken = now();
        write_lock(backend, keys, &name, exclusive, &host, taken)?;
        let lock = RepoLock {
            backend: backend.clone(),
            name,
            exclusive,
            taken,
        };
        // Two writers may have written their locks at the same moment: both see the other now
        // and the later one backs off (dropping `lock` removes ours).
        Self::check_others(backend, keys, exclusive, &host, Some(&lock.name))?;
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
            let Ok(bytes) = backend.read(&path) else {
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

    /// Re-writes the lock with the current time when it is due, for long operations.
    pub fn refresh(&mut self, keys: &DerivedKeys) -> Result<()> {
        let t = now();
        if t - self.taken < REFRESH_SECS {
            return Ok(());
        }
        write_lock(
            &self.backend,
            keys,
            &self.name,
            self.exclusive,
            &hostname(),
            t,
        )?;
        self.taken = t;
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
        let _ = self.backend.delete(&format!("locks/{}", self.name));
    }
}
