//! One error type for the whole core. Every variant carries a message a person can act on; none
//! ever carries a key, a passphrase or patient data, because messages travel to terminals and UIs.

use serde::Serialize;

/// Stable classification of an error. The CLI maps it to exit codes and the desktop shell to
/// `{kind, message}`; both rely on these names staying put.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    InvalidInput,
    Authentication,
    PermissionDenied,
    /// The session is locked (idle or by hand) or has expired: sign in or unlock again.
    SessionLocked,
    Integrity,
    NotFound,
    AlreadyExists,
    /// A business rule refuses the change as asked (an overlapping booking, a finalised record).
    Conflict,
    Busy,
    Incompatible,
    Io,
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    Authentication(String),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("{0}")]
    SessionLocked(String),
    #[error("{0}")]
    Integrity(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    Incompatible(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidInput(_) => ErrorKind::InvalidInput,
            Error::Authentication(_) => ErrorKind::Authentication,
            Error::PermissionDenied(_) => ErrorKind::PermissionDenied,
            Error::SessionLocked(_) => ErrorKind::SessionLocked,
            Error::Integrity(_) => ErrorKind::Integrity,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::AlreadyExists(_) => ErrorKind::AlreadyExists,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::Busy(_) => ErrorKind::Busy,
            Error::Incompatible(_) => ErrorKind::Incompatible,
            Error::Io { .. } => ErrorKind::Io,
            Error::Internal(_) => ErrorKind::Internal,
        }
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }

    /// The one message for every failed sign-in, so that it does not tell whether the user exists.
    pub(crate) fn bad_credentials() -> Error {
        Error::Authentication("wrong username or passphrase".into())
    }
}

/// SQLite messages name tables and constraints, never bound values, so they are safe to show;
/// they are still wrapped so callers see a stable kind.
impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase)
            | Some(rusqlite::ErrorCode::DatabaseCorrupt) => Error::Integrity(
                "the vault database is damaged or does not match its key file".into(),
            ),
            Some(rusqlite::ErrorCode::DatabaseBusy) | Some(rusqlite::ErrorCode::DatabaseLocked) => {
                Error::Busy("the vault database is busy; try again in a moment".into())
            }
            _ => Error::Internal(format!("database error: {e}")),
        }
    }
}
