//! What the command layer needs from its surroundings: where the vault is, the clock and the
//! device name. The desktop app uses the real ones; tests use a temporary folder and a clock
//! they move by hand, so the whole command layer runs without a window.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clinvault_core::clock::{Clock, SystemClock};
use clinvault_core::VaultDir;

use crate::api::{ApiError, ErrorKind};

pub struct Location {
    pub path: PathBuf,
    /// True when the environment chose it (CLINVAULT_VAULT).
    pub fixed: bool,
}

pub trait Host: Send + 'static {
    fn vault_location(&self) -> Result<Location, ApiError>;
    /// Remembers a vault folder chosen at first run, for the next start.
    fn remember_vault_location(&self, path: &Path) -> Result<(), ApiError>;
    fn clock(&self) -> Arc<dyn Clock>;
    fn device(&self) -> String;
}

/// The real surroundings: CLINVAULT_VAULT, else the folder chosen at first run (remembered in
/// the platform config directory as a plain path — not a secret), else the platform data dir.
pub struct DesktopHost;

const LOCATION_FILE: &str = "vault-location";

fn config_file() -> Option<PathBuf> {
    directories::ProjectDirs::from("org", "ClinVault", "clinvault")
        .map(|d| d.config_dir().join(LOCATION_FILE))
}

impl Host for DesktopHost {
    fn vault_location(&self) -> Result<Location, ApiError> {
        if let Some(p) = std::env::var_os("CLINVAULT_VAULT").filter(|p| !p.is_empty()) {
            return Ok(Location {
                path: PathBuf::from(p),
                fixed: true,
            });
        }
        if let Some(saved) = config_file()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
        {
            return Ok(Location {
                path: PathBuf::from(saved),
                fixed: false,
            });
        }
        Ok(Location {
            path: VaultDir::platform_default()?.root().to_path_buf(),
            fixed: false,
        })
    }

    fn remember_vault_location(&self, path: &Path) -> Result<(), ApiError> {
        let file = config_file().ok_or_else(|| {
            ApiError::new(
                ErrorKind::Io,
                "cannot find a configuration folder to remember the vault location",
            )
        })?;
        let io = |e: std::io::Error| {
            ApiError::new(
                ErrorKind::Io,
                format!(
                    "cannot remember the vault location in {}: {e}",
                    file.display()
                ),
            )
        };
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&file, path.to_string_lossy().as_bytes()).map_err(io)
    }

    fn clock(&self) -> Arc<dyn Clock> {
        Arc::new(SystemClock)
    }

    fn device(&self) -> String {
        clinvault_core::session::device_name("desktop")
    }
}
