//! Test helper shared by the shell's tests and the end-to-end tests: a PDF's text as poppler's
//! `pdftotext` reads it, an implementation independent of the one that wrote the PDF.

use std::path::Path;

pub fn pdf_text(path: &Path) -> String {
    let out = std::process::Command::new("pdftotext")
        .arg("-layout")
        .arg(path)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils; scripts/test.sh installs it)");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}
