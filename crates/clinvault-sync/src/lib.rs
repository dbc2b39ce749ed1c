//! ClinVault sync: incremental, deduplicated, encrypted snapshots of a vault directory to a
//! folder, SFTP, WebDAV or S3 target through Apache OpenDAL. The repository format is specified
//! byte by byte in `docs/formats/sync-repository.md`; this crate only ever sees files that are
//! already encrypted by the core (SQLCipher pages, attachment streams, the key file) and adds
//! its own layer on top, so the target learns neither content, names nor keys.
//!
//! Heavy dependencies (OpenDAL, reqwest/rustls, tokio, zstd) stay here, out of the core.

pub mod backend;
pub mod chunking;
pub mod keys;
mod lock;
pub mod model;
pub mod ops;
mod pack;
pub mod progress;
pub mod prune;
pub mod repo;
pub mod target;
pub mod verify;

mod push;
pub mod restore;

pub use keys::RepoKey;
pub use progress::{NoProgress, Progress, ProgressEvent};
pub use prune::{KeepPolicy, PruneReport};
pub use push::{PushReport, SourceFile};
pub use repo::Repository;
pub use restore::RestoreReport;
pub use restore::Restored;
pub use target::{Credentials, TargetSpec, TlsMin};
pub use verify::{CheckReport, Usage};
