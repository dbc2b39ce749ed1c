//! "Test connection" (`Backend::probe`) against real servers on 127.0.0.1: it succeeds where a
//! push would, leaves nothing behind, and names the usual causes of failure plainly — wrong
//! credentials, nothing listening, an untrusted certificate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod servers;

use clinvault_core::ErrorKind;
use std::time::{Duration, Instant};

use clinvault_sync::backend::{Backend, Patience, SMALL_OBJECT_MAX};
use clinvault_sync::repo::Repository;
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

/// A server that accepts connections and reads what it is sent, but never answers.
fn silent_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            let mut reader = conn.try_clone().unwrap();
            std::thread::spawn(move || {
                let mut sink = [0u8; 4096];
                while matches!(std::io::Read::read(&mut reader, &mut sink), Ok(n) if n > 0) {}
            });
            held.push(conn);
        }
    });
    port
}

#[test]
fn a_server_that_never_answers_fails_the_operation_instead_of_holding_it() {
    let port = silent_server();
    let spec = TargetSpec::parse(&format!("webdav://127.0.0.1:{port}/cv")).unwrap();
    let patience = Patience {
        connect: Duration::from_secs(2),
        silence: Duration::from_secs(1),
        transfer: Duration::from_secs(2),
    };
    let backend = Backend::open_with(&spec, &Credentials::default(), patience).unwrap();
    let t = Instant::now();
    let e = Repository::read_config(&backend).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert!(e.to_string().contains("stopped answering"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let t = Instant::now();
    let e = backend.write_atomic("data/x", vec![1; 1000]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}

#[test]
fn an_oversized_config_planted_on_the_target_is_refused_unread() {
    let server = servers::folder();
    let backend = Backend::open(&server.spec, &server.creds()).unwrap();
    // Valid JSON, so only its size can be what refuses it.
    let mut planted = b"{\"format\":\"".to_vec();
    planted.resize(SMALL_OBJECT_MAX + 10, b'a');
    planted.extend_from_slice(b"\"}");
    std::fs::write(server.storage.join("config"), &planted).unwrap();
    let e = Repository::read_config(&backend).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
    assert!(
        e.to_string().contains("larger than any ClinVault config"),
        "{e}"
    );
    // Just under the bound it is read, and refused for what it is.
    planted.truncate(SMALL_OBJECT_MAX - 2);
    planted.extend_from_slice(b"\"}");
    std::fs::write(server.storage.join("config"), &planted).unwrap();
    let e = Repository::read_config(&backend).unwrap_err();
    assert!(!e.to_string().contains("larger than"), "{e}");
}

/// Snapshots, indexes and packs are authenticated only once read whole: one planted far larger
/// than ClinVault writes is refused at its bound, not read into memory to the end.
#[test]
fn an_oversized_snapshot_or_pack_planted_on_the_target_is_refused_at_its_bound() {
    use clinvault_sync::keys::RepoKey;
    let server = servers::folder();
    let backend = || Backend::open(&server.spec, &server.creds()).unwrap();
    let repo = Repository::init(
        backend(),
        &RepoKey::generate(),
        uuid::Uuid::new_v4(),
        &[9; 32],
        "v-test",
        1 << 20,
    )
    .unwrap();
    // Sparse files: gigabytes on the target's side cost nothing here.
    let plant = |rel: &str, len: u64| {
        let path = server.storage.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::File::create(&path).unwrap().set_len(len).unwrap();
    };
    plant("snapshots/00aa", 4 << 30);
    let e = repo.snapshots().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
    assert!(
        e.to_string().contains("larger than any ClinVault snapshot"),
        "{e}"
    );
    std::fs::remove_file(server.storage.join("snapshots/00aa")).unwrap();
    plant("data/00bb", 4 << 30);
    let Err(e) = repo.decrypt_all() else {
        panic!("an oversized pack was read")
    };
    assert!(
        e.to_string().contains("larger than any ClinVault pack"),
        "{e}"
    );
    // The bounds themselves: an object of exactly the bound is read whole.
    plant("data/00cc", 5);
    assert_eq!(backend().read("data/00cc", 5).unwrap(), vec![0; 5]);
    assert!(backend().read("data/00cc", 4).is_err());
}
