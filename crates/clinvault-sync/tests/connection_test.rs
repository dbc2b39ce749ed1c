//! "Test connection" (`Backend::probe`) against real servers on 127.0.0.1: it succeeds where a
//! push would, leaves nothing behind, and names the usual causes of failure plainly — wrong
//! credentials, nothing listening, an untrusted certificate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod servers;

use clinvault_core::ErrorKind;
use clinvault_sync::backend::Backend;
use clinvault_sync::target::{Credentials, TargetSpec};
use zeroize::Zeroizing;

fn entries(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_folder_target_passes_and_keeps_nothing_of_the_probe() {
    let server = servers::folder();
    Backend::open(&server.spec, &server.creds())
        .unwrap()
        .probe()
        .unwrap();
    assert!(
        entries(&server.storage).is_empty(),
        "the probe left {:?}",
        entries(&server.storage)
    );
}

#[test]
fn webdav_with_the_right_password_passes_and_a_wrong_one_is_named() {
    let server = servers::webdav();
    Backend::open(&server.spec, &server.creds())
        .unwrap()
        .probe()
        .unwrap();
    let wrong = Credentials {
        password: Some(Zeroizing::new("not-the-password".into())),
        ..Credentials::default()
    };
    let e = Backend::open(&server.spec, &wrong)
        .unwrap()
        .probe()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    assert!(e.to_string().contains("refused the credentials"), "{e}");
    assert!(!e.to_string().contains("not-the-password"), "{e}");
}

#[test]
fn nothing_listening_is_reported_as_unreachable() {
    let port = servers::free_port();
    let spec = TargetSpec::parse(&format!("webdav://127.0.0.1:{port}/cv")).unwrap();
    let e = Backend::open(&spec, &Credentials::default())
        .unwrap()
        .probe()
        .unwrap_err();
    assert!(e.to_string().contains("cannot reach the server"), "{e}");
}

#[test]
fn an_untrusted_certificate_is_refused_and_the_pinned_ca_passes() {
    let server = servers::webdav_tls();
    let mut unpinned = server.spec.clone();
    unpinned.ca_file = None;
    let e = Backend::open(&unpinned, &server.creds())
        .unwrap()
        .probe()
        .unwrap_err();
    assert!(e.to_string().contains("certificate is not trusted"), "{e}");
    Backend::open(&server.spec, &server.creds())
        .unwrap()
        .probe()
        .unwrap();
}
