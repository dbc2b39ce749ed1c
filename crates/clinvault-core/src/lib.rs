//! ClinVault core: everything that decides anything — keys, the vault, access, audit, records.
//! The desktop shell and the CLI only translate calls into this crate and errors out of it.

pub mod clock;
pub mod crypto;
pub mod db;
pub mod encoding;
pub mod error;
pub mod fault;
pub mod key_hierarchy;
pub mod keyfile;
pub mod users;
pub mod vault;
pub mod vault_dir;

pub use error::{Error, ErrorKind, Result};
pub use key_hierarchy::RecoveryKey;
pub use vault::{InitOptions, Vault, VaultStatus};
pub use vault_dir::VaultDir;
