//! Early writeback for large files written sequentially (backups, restores). Without it the
//! kernel keeps gigabytes dirty in the page cache and writes them only at the final `fsync`, so
//! the disk idles while data is encrypted and the CPU idles while the disk writes.

use std::fs::File;

/// How much is written before the disk is asked to start writing it out.
pub const STEP: u64 = 8 << 20;

/// Asks the kernel to start writing `len` bytes at `offset` to disk now. Only a hint (errors
/// are ignored on purpose): durability still comes from the caller's `fsync`.
#[cfg(target_os = "linux")]
pub fn start(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (
        libc::off64_t::try_from(offset),
        libc::off64_t::try_from(len),
    ) else {
        return;
    };
    if len == 0 {
        return;
    }
    // SAFETY: the descriptor belongs to `file`, which is borrowed for the whole call; the call
    // reads no memory of ours.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
pub fn start(_file: &File, _offset: u64, _len: u64) {}

/// Tracks one file written from the start and starts writeback every [`STEP`] bytes.
#[derive(Default)]
pub struct Tracker {
    written: u64,
    started: u64,
}

impl Tracker {
    pub fn wrote(&mut self, file: &File, bytes: u64) {
        self.written += bytes;
        if self.written - self.started >= STEP {
            self.flush(file);
        }
    }

    /// Starts writeback of whatever is not yet started (call before the final `fsync`).
    pub fn flush(&mut self, file: &File) {
        start(file, self.started, self.written - self.started);
        self.started = self.written;
    }
}

/// Makes every file written under `dir` durable. On Linux one `syncfs` (a single journal commit
/// for the whole restore instead of one per file, which dominated the time of restoring a
/// thousand attachments); elsewhere every file and folder is `fsync`ed.
pub fn sync_tree(dir: &std::path::Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let d = File::open(dir)?;
        // SAFETY: the descriptor belongs to `d`, open for the whole call.
        if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                sync_tree(&entry.path())?;
            } else {
                File::open(entry.path())?.sync_all()?;
            }
        }
        File::open(dir)?.sync_all()
    }
}
