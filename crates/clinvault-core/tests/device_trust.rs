//! "Remember this device" through a real OS keyring: the kernel keyutils store inside a private
//! session keyring (`keyctl session -`), in a child run of this test binary so no other test
//! shares the keyring or the environment. (The Secret Service store is exercised against a
//! private gnome-keyring in os_keyring's own tests.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup failures

mod support;

use std::process::Command;
use std::sync::Arc;

use clinvault_core::clock::{Clock, ManualClock};
use clinvault_core::{Session, SessionConfig, SignIn, VaultDir};
use secrecy::SecretString;

const PASS: &str = "plum harbour velvet tractor";

fn run_child(test: &str, keyring: &str) {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("keyctl")
        .args(["session", "-"])
        .arg(exe)
        .args([
            "--exact",
            test,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CLINVAULT_KEYRING", keyring)
        .output()
        .unwrap_or_else(|_| panic!("keyctl is required: apt-get install -y keyutils"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed; 0 failed"),
        "{text}"
    );
}

#[test]
fn a_remembered_device_skips_the_code_on_a_real_keyring() {
    run_child("child_remembered_device", "keyutils");
}

#[test]
fn without_a_keyring_the_code_is_asked_and_sign_in_still_succeeds() {
    run_child("child_no_keyring", "none");
}

fn setup() -> (tempfile::TempDir, VaultDir, ManualClock, String) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = VaultDir::new(tmp.path().join("v"));
    support::new_vault(&dir);
    let clock = ManualClock::at(1_800_000_000);
    let mut s = sign_in(&dir, &clock, None).unwrap();
    let e = s.enroll_2fa().unwrap();
    let secret = base32::decode(
        base32::Alphabet::Rfc4648 { padding: false },
        &e.secret_base32,
    )
    .unwrap();
    let code =
        clinvault_core::two_factor::code_at(&secret, clock.now().as_second() as u64).unwrap();
    s.confirm_2fa(&code).unwrap();
    s.set_policy("remember-device-days", "30").unwrap();
    drop(s);
    (tmp, dir, clock, e.secret_base32.clone())
}

fn cfg(clock: &ManualClock) -> SessionConfig {
    SessionConfig {
        device: "laptop".into(),
        clock: Arc::new(clock.clone()),
    }
}

fn sign_in(
    dir: &VaultDir,
    clock: &ManualClock,
    code: Option<&str>,
) -> clinvault_core::Result<Session> {
    Session::sign_in_with(
        dir,
        "admin",
        &SecretString::from(PASS.to_owned()),
        code,
        cfg(clock),
    )
}

fn code(secret_b32: &str, clock: &ManualClock) -> String {
    let secret = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, secret_b32).unwrap();
    clinvault_core::two_factor::code_at(&secret, clock.now().as_second() as u64).unwrap()
}

fn needs_code(dir: &VaultDir, clock: &ManualClock) -> bool {
    match Session::sign_in(
        dir,
        "admin",
        &SecretString::from(PASS.to_owned()),
        cfg(clock),
    )
    .unwrap()
    {
        SignIn::Complete(_) => false,
        SignIn::NeedsSecondFactor(_) => true,
    }
}

#[test]
#[ignore = "run by a_remembered_device_skips_the_code_on_a_real_keyring inside a keyctl session"]
fn child_remembered_device() {
    let (_t, dir, clock, secret) = setup();
    assert!(needs_code(&dir, &clock));
    clock.advance(30);
    let pending = match Session::sign_in(
        &dir,
        "admin",
        &SecretString::from(PASS.to_owned()),
        cfg(&clock),
    )
    .unwrap()
    {
        SignIn::NeedsSecondFactor(p) => p,
        SignIn::Complete(_) => panic!("code expected"),
    };
    let s = pending.complete(&code(&secret, &clock), true).unwrap();
    assert!(s.notices().is_empty(), "{:?}", s.notices());
    drop(s);
    // Remembered: the passphrase alone signs in on this device, and the trail says so...
    assert!(!needs_code(&dir, &clock));
    let mut s = sign_in(&dir, &clock, None).unwrap();
    let last = |s: &mut Session, action: &str| {
        s.audit_list(&clinvault_core::audit_review::AuditFilter {
            action: Some(action.into()),
            limit: 1,
            ..Default::default()
        })
        .unwrap()
        .remove(0)
    };
    assert_eq!(last(&mut s, "signin").details["method"], "trusted_device");
    assert_eq!(last(&mut s, "device.remember").details["days"], 30);
    drop(s);
    // ...until the token expires...
    clock.advance(31 * 86_400);
    assert!(needs_code(&dir, &clock));
    // ...and a clinic that turns remembering off asks every time.
    clock.advance(30);
    let mut s = sign_in(&dir, &clock, Some(&code(&secret, &clock))).unwrap();
    s.set_policy("remember-device-days", "0").unwrap();
    drop(s);
    assert!(needs_code(&dir, &clock));
}

#[test]
#[ignore = "run by without_a_keyring_the_code_is_asked_and_sign_in_still_succeeds"]
fn child_no_keyring() {
    let (_t, dir, clock, secret) = setup();
    clock.advance(30);
    let pending = match Session::sign_in(
        &dir,
        "admin",
        &SecretString::from(PASS.to_owned()),
        cfg(&clock),
    )
    .unwrap()
    {
        SignIn::NeedsSecondFactor(p) => p,
        SignIn::Complete(_) => panic!("code expected"),
    };
    let s = pending.complete(&code(&secret, &clock), true).unwrap();
    assert_eq!(s.notices().len(), 1);
    assert!(
        s.notices()[0].contains("not remembered"),
        "{:?}",
        s.notices()
    );
    drop(s);
    assert!(needs_code(&dir, &clock));
}
