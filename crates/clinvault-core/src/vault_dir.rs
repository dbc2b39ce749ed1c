//! The files a vault directory holds, and the file-system disciplines around them: atomic
//! replacement (temp + fsync + rename + directory fsync) and advisory locks between processes.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub const KEY_FILE: &str = "vault.keys";
pub const DB_FILE: &str = "vault.db";
/// Present only while `init` runs; lets a later `init` clear what a crashed one left behind.
pub const INIT_MARKER: &str = "vault.init";
/// The re-keyed copy of the database during key rotation, before it replaces vault.db.
pub const DB_NEXT_FILE: &str = "vault.db.next";
/// Sign-in throttling state and failed attempts waiting to be carried into the audit trail:
/// written before anyone has unlocked, so it cannot live in the database.
pub const SIGNIN_STATE: &str = "signin.state";
const SIGNIN_LOCK: &str = "signin.lock";
const KEYFILE_LOCK: &str = "vault.keys.lock";
const DB_LOCK: &str = "vault.db.lock";
const CHECKPOINT_LOCK: &str = "audit.checkpoint.lock";

#[derive(Clone, Debug)]
pub struct VaultDir {
    root: PathBuf,
}

impl VaultDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        VaultDir { root: root.into() }
    }

    /// The platform data directory (e.g. ~/.local/share/clinvault/vault on Linux).
    pub fn platform_default() -> Result<Self> {
        let dirs =
            directories::ProjectDirs::from("org", "ClinVault", "clinvault").ok_or_else(|| {
                Error::InvalidInput(
                    "cannot find a home directory for the default vault; pass --vault DIR".into(),
                )
            })?;
        Ok(VaultDir::new(dirs.data_dir().join("vault")))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub fn key_file(&self) -> PathBuf {
        self.file(KEY_FILE)
    }

    pub fn db_file(&self) -> PathBuf {
        self.file(DB_FILE)
    }

    pub fn exists(&self) -> bool {
        self.key_file().exists()
    }

    /// Serialises every change of the key file between processes (the app and the CLI).
    pub fn lock_key_file(&self) -> Result<FileLock> {
        FileLock::exclusive(&self.file(KEYFILE_LOCK))
    }

    pub fn lock_signin_state(&self) -> Result<FileLock> {
        FileLock::exclusive(&self.file(SIGNIN_LOCK))
    }

    /// Held while a checkpoint is compared with the trail and replaced, so that two processes
    /// anchoring at once neither take each other's newer checkpoint for tampering nor replace
    /// it with an older one.
    pub(crate) fn lock_checkpoint(&self) -> Result<FileLock> {
        FileLock::exclusive(&self.file(CHECKPOINT_LOCK))
    }

    /// As `lock_checkpoint`, or None at once when another program holds it.
    pub(crate) fn try_lock_checkpoint(&self) -> Result<Option<FileLock>> {
        FileLock::try_exclusive(&self.file(CHECKPOINT_LOCK))
    }

    /// Held (shared) by every process while it has the database open, so that rotation, which
    /// replaces the database file, can tell that nobody else is using it.
    pub fn lock_db_shared(&self) -> Result<FileLock> {
        FileLock::shared(&self.file(DB_LOCK))
    }

    pub fn try_lock_db_exclusive(&self) -> Result<Option<FileLock>> {
        FileLock::try_exclusive(&self.file(DB_LOCK))
    }

    /// Replaces `name` atomically: a reader (or a crash) sees the old or the new content, never a mix.
    pub fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<()> {
        self.write_atomic_at(name, bytes, None)
    }

    /// As `write_atomic`, with a named crash point just before the rename (for tests).
    pub fn write_atomic_at(
        &self,
        name: &str,
        bytes: &[u8],
        crash_point: Option<&str>,
    ) -> Result<()> {
        let target = self.file(name);
        let tmp = self.file(&format!(
            "{name}.tmp-{}",
            hex::encode(crate::crypto::random_bytes::<6>())
        ));
        let result = (|| {
            let mut f = create_private(&tmp)?;
            f.write_all(bytes)
                .map_err(Error::io(format!("cannot write {}", tmp.display())))?;
            f.sync_all()
                .map_err(Error::io(format!("cannot flush {}", tmp.display())))?;
            drop(f);
            if let Some(p) = crash_point {
                crate::fault::point(p);
            }
            fs::rename(&tmp, &target)
                .map_err(Error::io(format!("cannot replace {}", target.display())))?;
            self.sync_dir()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    pub fn sync_dir(&self) -> Result<()> {
        // Directory fsync makes the rename itself durable; not available on Windows.
        #[cfg(unix)]
        File::open(&self.root)
            .and_then(|d| d.sync_all())
            .map_err(Error::io(format!("cannot flush {}", self.root.display())))?;
        Ok(())
    }

    pub fn create_root(&self) -> Result<()> {
        fs::create_dir_all(&self.root)
            .map_err(Error::io(format!("cannot create {}", self.root.display())))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Only the owner may list or read the vault directory.
            fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700))
                .map_err(Error::io(format!("cannot protect {}", self.root.display())))?;
        }
        Ok(())
    }

    /// Removes leftover temporary files from an interrupted atomic write.
    pub fn remove_stale_temps(&self) {
        if let Ok(entries) = fs::read_dir(&self.root) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                if name.to_string_lossy().contains(".tmp-") {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
    }
}

/// Creates a new file only its owner can read (0600 on Unix), failing if it already exists.
pub fn create_private(path: &Path) -> Result<File> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
        .map_err(Error::io(format!("cannot create {}", path.display())))
}

/// An advisory lock on a file, released when dropped.
pub struct FileLock {
    file: File,
}

impl FileLock {
    fn open(path: &Path) -> Result<File> {
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        opts.open(path)
            .map_err(Error::io(format!("cannot open lock {}", path.display())))
    }

    pub fn exclusive(path: &Path) -> Result<Self> {
        let file = Self::open(path)?;
        file.lock()
            .map_err(Error::io(format!("cannot lock {}", path.display())))?;
        Ok(FileLock { file })
    }

    pub fn shared(path: &Path) -> Result<Self> {
        let file = Self::open(path)?;
        file.lock_shared()
            .map_err(Error::io(format!("cannot lock {}", path.display())))?;
        Ok(FileLock { file })
    }

    pub fn try_exclusive(path: &Path) -> Result<Option<Self>> {
        let file = Self::open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(FileLock { file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::Io {
                context: format!("cannot lock {}", path.display()),
                source: e,
            }),
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}
