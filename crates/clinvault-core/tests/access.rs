//! Identity and access against real vaults: two-factor sign-in checked against an independent
//! TOTP implementation (oathtool), replay, throttling and lock-out, revocation with an old key
//! file, idle lock and absolute timeout on an injected clock, and separation of duties.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup failures

mod support;

use support::{secret, ADMIN_PASS, USER_PASS};

use std::fs;
use std::process::Command;
use std::sync::Arc;

use clinvault_core::clock::ManualClock;
use clinvault_core::{ErrorKind, Session, SessionConfig, SessionState, SignIn, VaultDir};
use tempfile::TempDir;

const T0: i64 = 1_800_000_000;

struct Clinic {
    _tmp: TempDir,
    dir: VaultDir,
    clock: ManualClock,
}

fn clinic() -> Clinic {
    let tmp = TempDir::new().unwrap();
    let dir = VaultDir::new(tmp.path().join("v"));
    support::new_vault(&dir);
    Clinic {
        _tmp: tmp,
        dir,
        clock: ManualClock::at(T0),
    }
}

impl Clinic {
    fn cfg(&self) -> SessionConfig {
        SessionConfig {
            device: "reception-pc".into(),
            clock: Arc::new(self.clock.clone()),
        }
    }

    fn sign_in(&self, user: &str, pass: &str) -> clinvault_core::Result<Session> {
        Session::sign_in_with(&self.dir, user, &secret(pass), None, self.cfg())
    }

    fn admin(&self) -> Session {
        self.sign_in("admin", ADMIN_PASS).unwrap()
    }

    fn now(&self) -> i64 {
        use clinvault_core::clock::Clock;
        self.clock.now().as_second()
    }
}

/// A TOTP code from oathtool, an implementation independent of ours.
fn oath(secret_base32: &str, unix: i64) -> String {
    let out = Command::new("oathtool")
        .args(["--totp", "-b", "-N", &format!("@{unix}"), secret_base32])
        .output()
        .unwrap_or_else(|_| panic!("oathtool is required: apt-get install oathtool"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn audit_actions(s: &mut Session) -> Vec<(String, String, String)> {
    // Through the gate, as an administrator reads it.
    s.audit_list(&clinvault_core::audit_review::AuditFilter {
        limit: 10_000,
        ..Default::default()
    })
    .unwrap()
    .into_iter()
    .map(|e| (e.action, e.outcome, e.actor_name))
    .collect()
}

#[test]
fn totp_enrolment_sign_in_replay_and_recovery_codes() {
    let c = clinic();
    let mut admin = c.admin();
    let enrolment = admin.enroll_2fa().unwrap();
    assert!(enrolment
        .otpauth_uri
        .starts_with("otpauth://totp/ClinVault:admin?"));
    assert!(enrolment
        .otpauth_uri
        .contains(&format!("secret={}", enrolment.secret_base32)));
    assert_eq!(&enrolment.qr_png[..8], b"\x89PNG\r\n\x1a\n");
    let b32 = enrolment.secret_base32.clone();

    // A wrong code does not turn 2FA on.
    let wrong = admin.confirm_2fa("000000").err().unwrap();
    assert_eq!(wrong.kind(), ErrorKind::Authentication);
    let codes = admin.confirm_2fa(&oath(&b32, c.now())).unwrap();
    assert_eq!(codes.len(), 10);
    drop(admin);

    // Passphrase alone is no longer enough.
    let err = c.sign_in("admin", ADMIN_PASS).err().unwrap();
    assert!(err.to_string().contains("authenticator code is required"));

    // A code from the step already used at confirmation is refused (replay)...
    let pending = match Session::sign_in(&c.dir, "admin", &secret(ADMIN_PASS), c.cfg()).unwrap() {
        SignIn::NeedsSecondFactor(p) => p,
        SignIn::Complete(_) => panic!("2FA must be asked"),
    };
    let replay = pending.complete(&oath(&b32, c.now()), false).err().unwrap();
    assert!(replay.to_string().contains("already used"), "{replay}");

    // ...the next step's code (±1 step accepted, typed with a space) signs in...
    c.clock.advance(30);
    let code = oath(&b32, c.now());
    let spaced = format!("{} {}", &code[..3], &code[3..]);
    let s = Session::sign_in_with(&c.dir, "admin", &secret(ADMIN_PASS), Some(&spaced), c.cfg())
        .unwrap();
    drop(s);
    // ...a code two steps away is refused.
    c.clock.advance(30);
    let far = oath(&b32, c.now() + 60);
    let err = Session::sign_in_with(&c.dir, "admin", &secret(ADMIN_PASS), Some(&far), c.cfg())
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::Authentication);

    // A recovery code works once, in any case and spacing.
    let rc = codes[0].to_uppercase().replace('-', " ");
    Session::sign_in_with(&c.dir, "admin", &secret(ADMIN_PASS), Some(&rc), c.cfg()).unwrap();
    let again = Session::sign_in_with(&c.dir, "admin", &secret(ADMIN_PASS), Some(&rc), c.cfg())
        .err()
        .unwrap();
    assert_eq!(again.kind(), ErrorKind::Authentication);

    // An administrator can reset another user's 2FA; the admin's own recovery codes regenerate.
    let mut admin = Session::sign_in_with(
        &c.dir,
        "admin",
        &secret(ADMIN_PASS),
        Some(&codes[1]),
        c.cfg(),
    )
    .unwrap();
    let fresh = admin.regenerate_recovery_codes().unwrap();
    assert_ne!(fresh[0].as_str(), codes[2].as_str());
    let actions = audit_actions(&mut admin);
    assert!(actions
        .iter()
        .any(|(a, o, _)| a == "2fa.confirm" && o == "ok"));
    assert!(actions
        .iter()
        .any(|(a, o, _)| a == "2fa.confirm" && o == "failed"));
    assert!(actions.iter().any(|(a, _, _)| a == "2fa.recovery_codes"));
}

#[test]
fn rfc_6238_reference_time_gives_the_reference_code() {
    // RFC 6238 Appendix B, SHA-1 seed "12345678901234567890", T = 59: 94287082 (8 digits);
    // the 6-digit code is its last six digits. oathtool agrees, so `oath` is trustworthy.
    assert_eq!(oath("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 59), "287082");
    assert_eq!(
        oath("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 1_111_111_109),
        "081804"
    );
    assert_eq!(
        clinvault_core::two_factor::code_at(b"12345678901234567890", 59).unwrap(),
        "287082"
    );
    assert_eq!(
        clinvault_core::two_factor::code_at(b"12345678901234567890", 20_000_000_000).unwrap(),
        "353130"
    );
}

#[test]
fn failed_sign_ins_are_throttled_locked_out_and_carried_into_the_audit_trail() {
    let c = clinic();
    for _ in 0..5 {
        let e = c.sign_in("admin", "wrong wrong wrong wrong").err().unwrap();
        assert_eq!(e.kind(), ErrorKind::Authentication);
    }
    // The sixth comes too soon: refused before the passphrase is even tried.
    let e = c.sign_in("admin", ADMIN_PASS).err().unwrap();
    assert!(e.to_string().contains("wait"), "{e}");
    for _ in 0..5 {
        c.clock.advance(200);
        let _ = c.sign_in("admin", "wrong wrong wrong wrong");
    }
    c.clock.advance(60);
    let e = c.sign_in("admin", ADMIN_PASS).err().unwrap();
    assert!(e.to_string().contains("locked for"), "{e}");
    c.clock.advance(15 * 60);
    let mut admin = c.admin();
    let actions = audit_actions(&mut admin);
    let failed = actions
        .iter()
        .filter(|(a, o, n)| a == "signin" && o == "failed" && n == "admin")
        .count();
    assert_eq!(failed, 10);
    assert!(actions.iter().any(|(a, _, _)| a == "signin.locked_out"));
    let history = admin.signin_history(Some("admin"), 50).unwrap();
    assert!(history.iter().filter(|h| h.outcome == "failed").count() >= 10);
}

#[test]
fn a_disabled_user_is_locked_out_even_with_a_copy_of_the_old_key_file() {
    let c = clinic();
    let mut admin = c.admin();
    admin
        .add_user(
            "jo",
            Some("Jo Receptionist"),
            "receptionist",
            &secret(USER_PASS),
        )
        .unwrap();
    drop(admin);
    c.sign_in("jo", USER_PASS).unwrap();
    let old_key_file = fs::read(c.dir.key_file()).unwrap();

    let mut admin = c.admin();
    admin.disable_user("jo").unwrap();
    drop(admin);
    let e = c.sign_in("jo", USER_PASS).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Authentication);

    // Jo kept a copy of the key file from before: her slot still unwraps, but the database has
    // been re-keyed under a new master key, so it does not open.
    let current = fs::read(c.dir.key_file()).unwrap();
    fs::write(c.dir.key_file(), &old_key_file).unwrap();
    let e = c.sign_in("jo", USER_PASS).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
    fs::write(c.dir.key_file(), &current).unwrap();

    // Enabled again, with a new passphrase.
    let mut admin = c.admin();
    admin
        .enable_user("jo", &secret("amber cellar window puzzle"))
        .unwrap();
    drop(admin);
    assert!(c.sign_in("jo", USER_PASS).is_err());
    c.sign_in("jo", "amber cellar window puzzle").unwrap();
}

#[test]
fn the_last_administrator_cannot_be_disabled_or_demoted() {
    let c = clinic();
    let mut admin = c.admin();
    let e = admin.set_user_role("admin", "practitioner").err().unwrap();
    assert!(e.to_string().contains("last active administrator"), "{e}");
    let e = admin.disable_user("admin").err().unwrap();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    admin
        .add_user("second", None, "administrator", &secret(USER_PASS))
        .unwrap();
    admin.set_user_role("admin", "practitioner").unwrap();
    drop(admin);
    let mut second = c.sign_in("second", USER_PASS).unwrap();
    let e = second.disable_user("second").err().unwrap();
    assert!(e.to_string().contains("your own account"), "{e}");
}

#[test]
fn idle_lock_and_absolute_timeout_follow_the_clock() {
    let c = clinic();
    let mut admin = c.admin();
    admin.set_policy("idle-lock-minutes", "5").unwrap();
    c.clock.advance(4 * 60);
    admin.list_users().unwrap();
    c.clock.advance(4 * 60);
    admin.record_activity().unwrap();
    c.clock.advance(5 * 60 + 1);
    let e = admin.list_users().err().unwrap();
    assert_eq!(e.kind(), ErrorKind::SessionLocked);
    assert_eq!(admin.state(), SessionState::Locked);
    // Wrong passphrase at the lock screen is refused and counted.
    assert!(admin.unlock(&secret("wrong wrong wrong wrong")).is_err());
    admin.unlock(&secret(ADMIN_PASS)).unwrap();
    assert_eq!(admin.state(), SessionState::Active);
    let actions = audit_actions(&mut admin);
    assert!(actions.iter().any(|(a, _, _)| a == "session.lock"));
    assert!(actions.iter().any(|(a, _, _)| a == "session.unlock"));

    // Twelve hours after sign-in, activity or not, a full sign-in is required.
    for _ in 0..(12 * 60 / 4) {
        c.clock.advance(4 * 60);
        if admin.record_activity().is_err() {
            break;
        }
    }
    assert_eq!(admin.state(), SessionState::Expired);
    assert!(admin.unlock(&secret(ADMIN_PASS)).is_err());
    c.admin();
}

#[test]
fn a_role_that_requires_2fa_must_enrol_before_anything_else() {
    let c = clinic();
    let mut admin = c.admin();
    admin
        .add_user("amy", None, "practitioner", &secret(USER_PASS))
        .unwrap();
    admin.set_policy("require-2fa.practitioner", "on").unwrap();
    drop(admin);
    let mut amy = c.sign_in("amy", USER_PASS).unwrap();
    assert!(amy.must_enrol_2fa());
    let e = amy.list_roles().err().unwrap();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    assert!(e.to_string().contains("two-factor"), "{e}");
    let enrolment = amy.enroll_2fa().unwrap();
    amy.confirm_2fa(&oath(&enrolment.secret_base32, c.now()))
        .unwrap();
    amy.list_roles().unwrap();
}

#[test]
fn passphrase_policy_applies_to_new_users_and_custom_roles_stay_non_administrative() {
    let c = clinic();
    let mut admin = c.admin();
    let e = admin
        .add_user("bob", None, "biller", &secret("password"))
        .err()
        .unwrap();
    assert!(e.to_string().starts_with("passphrase:"), "{e}");
    let e = admin
        .add_user("bob", None, "biller", &secret("bob bob bob bob bob"))
        .err()
        .unwrap();
    assert!(e.to_string().contains("too easy to guess"), "{e}");
    use clinvault_core::permissions::Permission;
    let e = admin
        .create_role("auditor", &[Permission::AuditRead])
        .err()
        .unwrap();
    assert!(e.to_string().contains("reserved for administrators"));
    admin
        .create_role(
            "power-reception",
            &[
                Permission::AppointmentsManage,
                Permission::AppointmentsOverride,
                Permission::PatientRead,
            ],
        )
        .unwrap();
    admin
        .add_user("pat", None, "power-reception", &secret(USER_PASS))
        .unwrap();
    drop(admin);
    let mut pat = c.sign_in("pat", USER_PASS).unwrap();
    assert_eq!(
        pat.list_users().err().unwrap().kind(),
        ErrorKind::PermissionDenied
    );
}

#[test]
fn keys_rotate_on_the_clinics_schedule_when_an_administrator_signs_in() {
    let c = clinic();
    // The schedule counts from the vault's creation, which init stamps with the real time.
    c.clock.advance(jiff::Timestamp::now().as_second() - T0);
    let mut admin = c.admin();
    admin.set_policy("key-rotation-days", "30").unwrap();
    admin
        .add_user("jo", None, "receptionist", &secret(USER_PASS))
        .unwrap();
    drop(admin);
    let epoch = |c: &Clinic| clinvault_core::vault::status(&c.dir).unwrap().key_epoch;
    assert_eq!(epoch(&c), 1);
    c.clock.advance(29 * 86_400);
    drop(c.admin());
    assert_eq!(epoch(&c), 1, "not yet due");
    c.clock.advance(2 * 86_400);
    drop(c.sign_in("jo", USER_PASS).unwrap());
    assert_eq!(epoch(&c), 1, "a receptionist's sign-in does not rotate");
    let mut admin = c.admin();
    assert_eq!(epoch(&c), 2, "due: rotated at the administrator's sign-in");
    let rotations = admin
        .audit_list(&clinvault_core::audit_review::AuditFilter {
            action: Some("key.rotate".into()),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(rotations.len(), 1);
    assert_eq!(rotations[0].details["reason"], "schedule");
    drop(admin);
    drop(c.admin());
    assert_eq!(epoch(&c), 2, "the clock restarts from the rotation");
    // Jo still signs in with her passphrase after the rotation.
    c.sign_in("jo", USER_PASS).unwrap();
}

#[test]
fn with_two_factor_a_shorter_strong_passphrase_is_allowed_and_without_it_is_not() {
    let c = clinic();
    let mut admin = c.admin();
    let e = admin
        .change_passphrase(&secret(ADMIN_PASS), &secret("Kx8#vQ2!zL9"))
        .unwrap_err();
    assert!(e.to_string().contains("at least 15"), "{e}");
    let enrolment = admin.enroll_2fa().unwrap();
    admin
        .confirm_2fa(&oath(&enrolment.secret_base32, c.now()))
        .unwrap();
    // 11 random characters: enough with a second factor (NIST: 8, and zxcvbn score 3).
    admin
        .change_passphrase(&secret(ADMIN_PASS), &secret("Kx8#vQ2!zL9"))
        .unwrap();
    // Eight characters never reach zxcvbn's score 3, so they are refused as too easy to guess.
    let e = admin
        .change_passphrase(&secret("Kx8#vQ2!zL9"), &secret("Kx8#vQ2!"))
        .unwrap_err();
    assert!(e.to_string().contains("too easy to guess"), "{e}");
}

/// The app's push timer asks the core whether this session should push: an administrator with
/// a target and a schedule, yes (nothing pushed yet); a receptionist, no — and the question
/// leaves no denied entry, since no person tried anything.
#[test]
fn a_scheduled_push_is_due_only_for_a_session_that_manages_sync() {
    let tmp = TempDir::new().unwrap();
    let dir = VaultDir::new(tmp.path().join("v"));
    support::new_vault(&dir);
    let mut admin = support::sign_in(&dir, "admin", ADMIN_PASS);
    admin
        .add_user("rita", None, "receptionist", &secret(USER_PASS))
        .unwrap();
    assert!(
        !admin.scheduled_push_due().unwrap(),
        "no target, no schedule"
    );
    admin.sync_set_target("file", "{}").unwrap();
    assert!(!admin.scheduled_push_due().unwrap(), "no schedule");
    admin.set_sync_schedule(Some(6)).unwrap();
    assert!(
        admin.scheduled_push_due().unwrap(),
        "never pushed: due at once"
    );

    let mut rita = support::sign_in(&dir, "rita", USER_PASS);
    assert!(!rita.scheduled_push_due().unwrap());
    let denied = admin
        .audit_list(&clinvault_core::audit_review::AuditFilter {
            user: Some("rita".into()),
            outcome: Some("denied".into()),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert!(denied.is_empty(), "{denied:?}");
    // Asked directly, the status itself is refused and recorded, as before.
    assert_eq!(
        rita.sync_status().unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
}

#[test]
fn a_role_change_reaches_a_session_that_is_already_open() {
    let c = clinic();
    let mut admin = c.admin();
    admin
        .add_user("jo", None, "receptionist", &secret(USER_PASS))
        .unwrap();
    let mut jo = c.sign_in("jo", USER_PASS).unwrap();
    let fields = || clinvault_core::patients::PatientFields {
        first_name: Some("Role".into()),
        last_name: Some("Change".into()),
        ..Default::default()
    };
    jo.add_patient(fields()).unwrap();
    admin.set_user_role("jo", "biller").unwrap();
    let e = jo.add_patient(fields()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(e.to_string().contains("biller"), "{e}");
    assert!(!jo
        .own_permissions()
        .unwrap()
        .contains(&clinvault_core::permissions::Permission::PatientWrite));
    admin.set_user_role("jo", "receptionist").unwrap();
    jo.add_patient(fields()).unwrap();
}

#[test]
fn wrong_passphrases_at_an_unlocked_session_lock_it() {
    let c = clinic();
    let mut admin = c.admin();
    let wrong = secret("not my passphrase at all, really");
    let new = secret("amber cellar window puzzle lantern");
    for _ in 0..2 {
        let e = admin.change_passphrase(&wrong, &new).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    }
    // The third, here through the database-key export, locks the session.
    let e = admin.export_db_key(&wrong, None).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::SessionLocked, "{e}");
    assert!(e.to_string().contains("3 times"), "{e}");
    assert_eq!(admin.state(), SessionState::Locked);
    admin.unlock(&secret(ADMIN_PASS)).unwrap();
    // A right passphrase starts the count again.
    admin.change_passphrase(&wrong, &new).unwrap_err();
    admin.change_passphrase(&wrong, &new).unwrap_err();
    admin.export_db_key(&secret(ADMIN_PASS), None).unwrap();
    let e = admin.change_passphrase(&wrong, &new).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    assert_eq!(admin.state(), SessionState::Active);
    let locks = audit_actions(&mut admin)
        .into_iter()
        .filter(|(action, ..)| action == "session.lock")
        .count();
    assert_eq!(locks, 1);
}

#[test]
fn only_those_who_review_alerts_see_the_alert_thresholds() {
    let c = clinic();
    let mut admin = c.admin();
    admin
        .add_user("jo", None, "practitioner", &secret(USER_PASS))
        .unwrap();
    admin.set_policy("alert.bulk-view-count", "37").unwrap();
    let mut jo = c.sign_in("jo", USER_PASS).unwrap();
    for (who, sees) in [(&mut admin, true), (&mut jo, false)] {
        let shown = who.show_policy().unwrap();
        assert_eq!(shown.shows_alert_rules(), sees);
        let entries = shown.entries();
        let alert_keys = entries
            .iter()
            .filter(|(k, _)| k.starts_with("alert."))
            .count();
        assert_eq!(alert_keys, if sees { 3 } else { 0 }, "{entries:?}");
        assert_eq!(
            entries.contains(&("alert.bulk-view-count".into(), "37".into())),
            sees
        );
        // The rest of the policy is there for everyone.
        assert!(entries.iter().any(|(k, _)| k == "idle-lock-minutes"));
        let json = serde_json::to_value(&shown).unwrap();
        assert_eq!(json.get("alert_bulk_view_count").is_some(), sees, "{json}");
        assert_eq!(json.get("alert_failed_signins").is_some(), sees, "{json}");
        assert!(json.get("clinic_hours").is_some(), "{json}");
    }
    // Audit review is the administrators' (no custom role may have it): made one, Jo sees them
    // from her next operation on.
    admin.set_user_role("jo", "administrator").unwrap();
    assert!(jo.show_policy().unwrap().shows_alert_rules());
}
