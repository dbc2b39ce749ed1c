//! docs/permissions.md is generated from the code; this fails when they drift.
//! Regenerate with `CLINVAULT_UPDATE_DOCS=1 cargo test -p clinvault-core --test permissions_doc`.

use std::path::PathBuf;

#[test]
fn permissions_doc_matches_the_code() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/permissions.md");
    let expected = clinvault_core::permissions::render_markdown();
    if std::env::var("CLINVAULT_UPDATE_DOCS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &expected).expect("write docs/permissions.md");
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/permissions.md is out of date; regenerate it with \
         CLINVAULT_UPDATE_DOCS=1 cargo test -p clinvault-core --test permissions_doc"
    );
}
