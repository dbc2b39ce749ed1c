//! Core errors to the `{kind, message}` the webview sees. The match is exhaustive so a new core
//! kind cannot reach the UI unmapped.

use crate::api::{ApiError, ErrorKind};
use clinvault_core::ErrorKind as Core;

impl From<clinvault_core::Error> for ApiError {
    fn from(e: clinvault_core::Error) -> Self {
        let kind = match e.kind() {
            Core::InvalidInput => ErrorKind::InvalidInput,
            Core::Authentication => ErrorKind::Authentication,
            Core::PermissionDenied => ErrorKind::PermissionDenied,
            Core::SessionLocked => ErrorKind::SessionLocked,
            Core::Integrity => ErrorKind::Integrity,
            Core::NotFound => ErrorKind::NotFound,
            Core::AlreadyExists => ErrorKind::AlreadyExists,
            Core::Conflict => ErrorKind::Conflict,
            Core::Busy => ErrorKind::Busy,
            Core::Incompatible => ErrorKind::Incompatible,
            Core::Io => ErrorKind::Io,
            Core::Internal => ErrorKind::Internal,
        };
        ApiError {
            kind,
            message: e.to_string(),
        }
    }
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
        }
    }

    pub fn signed_out() -> Self {
        ApiError::new(
            ErrorKind::SessionLocked,
            "nobody is signed in; sign in first",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_errors_keep_their_kind_and_message() {
        let e: ApiError =
            clinvault_core::Error::PermissionDenied("your role may not x".into()).into();
        assert_eq!(e.kind, ErrorKind::PermissionDenied);
        assert_eq!(e.message, "permission denied: your role may not x");
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["kind"], "permission_denied");
    }
}
