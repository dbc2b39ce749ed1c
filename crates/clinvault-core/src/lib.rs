//! ClinVault core: everything that decides anything — keys, the vault, access, audit, records.
//! The desktop shell and the CLI only translate calls into this crate and errors out of it.

pub mod account_view;
pub mod alerts;
pub mod anonymise;
pub mod appointments;
pub mod attachments;
pub mod audit;
mod audit_lookup;
pub mod audit_review;
mod audit_signing;
pub mod audit_verify;
pub mod backup;
pub mod booking_mail;
pub mod calendar_export;
pub mod checkpoint;
pub mod clinic_hours;
pub mod clock;
pub mod consents;
pub mod crypto;
pub mod db;
pub mod demo;
mod device_trust;
pub mod encoding;
pub mod error;
pub mod fault;
pub mod invoice_pdf;
pub mod invoices;
pub mod key_hierarchy;
pub mod keyfile;
pub mod legal_holds;
pub mod money;
pub mod notes;
pub mod os_keyring;
pub mod passphrase_rules;
pub mod patient_history;
pub mod patient_record;
pub mod patients;
pub mod permissions;
pub mod policy;
pub mod privacy_settings;
pub mod retention;
pub mod schedule;
mod schema_guard;
pub mod session;
pub mod snapshot;
pub mod subject_access;
pub mod summary_pdf;
pub mod sync_config;
pub mod throttle;
pub mod two_factor;
pub mod user_admin;
pub mod users;
pub mod vault;
pub mod vault_dir;
pub mod writeback;

pub use error::{Error, ErrorKind, Result};
pub use key_hierarchy::RecoveryKey;
pub use session::{Need, Session, SessionConfig, SessionState, SignIn};
pub use vault::{InitOptions, Vault, VaultStatus};
pub use vault_dir::VaultDir;

#[cfg(test)]
mod tests;
