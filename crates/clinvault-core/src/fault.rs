//! Named crash points. With the `test-hooks` feature, setting CLINVAULT_FAULT_POINT to a name
//! makes the process abort there — no destructors, no cleanup, like kill -9 — so tests can prove
//! that every step of a key operation leaves a vault that opens. Without the feature (every
//! release build) `point` compiles to nothing.

/// Every crash point, for tests that iterate over them all.
pub const POINTS: &[&str] = &[
    "init.after_marker",
    "init.after_db",
    "init.after_recovery_file",
    "init.after_keyfile",
    "keyfile.before_rename",
    "rotate.after_pending",
    "rotate.after_copy",
    "rotate.after_swap",
    "rotate.after_promote",
    "slot.after_write",
];

#[cfg(feature = "test-hooks")]
pub fn point(name: &str) {
    if std::env::var("CLINVAULT_FAULT_POINT").is_ok_and(|v| v == name) {
        std::process::abort();
    }
}

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub fn point(_name: &str) {}

/// Whether this build honours test hooks (the `test-hooks` feature: `cargo test` builds only).
/// Shells use it to gate their own test-only stand-ins (e.g. for native dialogs) on the same
/// switch, so a release build cannot be steered by them.
pub const TEST_HOOKS: bool = cfg!(feature = "test-hooks");
