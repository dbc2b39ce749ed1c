//! `clinvault sync …`: the command-line contract for sync to a remote target.

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum SyncAction {
    /// Where snapshots go: set or show the target
    Target {
        #[command(subcommand)]
        action: SyncTargetAction,
    },
    /// Upload an incremental, encrypted snapshot of the vault
    Push {
        #[arg(long)]
        json: bool,
    },
    /// List the snapshots on the target
    Snapshots {
        #[arg(long)]
        json: bool,
    },
    /// Restore a snapshot (`latest` or an id prefix) into a new folder, verified before it appears
    Restore {
        snapshot: String,
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
        /// On a machine without the vault: the target URL (used with --recovery-key-file)
        #[arg(long, value_name = "URL", requires = "recovery_key_file")]
        from: Option<String>,
        /// The recovery key file: opens the repository without signing in to a vault
        #[arg(long, value_name = "PATH", requires = "from")]
        recovery_key_file: Option<PathBuf>,
        /// With --from: trust only this CA certificate (PEM)
        #[arg(long, value_name = "PATH", requires = "from")]
        ca_file: Option<PathBuf>,
        /// With --from: lowest TLS version (1.3 default, or 1.2)
        #[arg(long, value_name = "VERSION", requires = "from")]
        tls_min: Option<String>,
        /// With --from: SFTP private key file
        #[arg(long, value_name = "PATH", requires = "from")]
        ssh_key: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Check the repository; --read-data also downloads and verifies every pack
    Check {
        #[arg(long)]
        read_data: bool,
        #[arg(long)]
        json: bool,
    },
    /// Forget snapshots outside the policy and delete the data no remaining snapshot uses
    Prune {
        #[arg(long, value_name = "N", default_value_t = 0)]
        keep_last: u32,
        #[arg(long, value_name = "N", default_value_t = 0)]
        keep_daily: u32,
        #[arg(long, value_name = "N", default_value_t = 0)]
        keep_weekly: u32,
        #[arg(long, value_name = "N", default_value_t = 0)]
        keep_monthly: u32,
        #[arg(long)]
        json: bool,
    },
    /// Restore the newest snapshot to a temporary folder, verify it, report its age
    RestoreTest {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum SyncTargetAction {
    /// file:///path, sftp://user@host:port/path, webdav(s)://[user@]host/path,
    /// s3://bucket/prefix?endpoint=...&region=... — secrets come from env
    /// (CLINVAULT_SYNC_PASSWORD; CLINVAULT_SYNC_S3_KEY_ID, CLINVAULT_SYNC_S3_SECRET) or a prompt
    /// and are kept in the OS keyring
    Set {
        url: String,
        /// Lowest TLS version: 1.3 (default) or 1.2 for an old NAS
        #[arg(long, value_name = "VERSION")]
        tls_min: Option<String>,
        /// Trust only this CA certificate (PEM) for the target
        #[arg(long, value_name = "PATH")]
        ca_file: Option<PathBuf>,
        /// SFTP private key file (the host must be in the system ssh known_hosts)
        #[arg(long, value_name = "PATH")]
        ssh_key: Option<PathBuf>,
        /// Pack size in MiB (default 16)
        #[arg(long, value_name = "N")]
        pack_mib: Option<u32>,
    },
    /// Show the target (no secrets)
    Show {
        #[arg(long)]
        json: bool,
    },
}
