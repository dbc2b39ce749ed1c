//! The command layer without a window: real vaults in temporary folders, a clock moved by hand.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clinvault_core::clock::{Clock, ManualClock};
use secrecy::SecretString;

use crate::api::*;
use crate::host::{Host, Location};
use crate::shell::Shell;

const ADMIN_PASS: &str = "correct horse battery staple orbit";
const RECEPTION_PASS: &str = "lantern meadow copper violin";
const START: i64 = 1_790_000_000;

struct TestHost {
    vault: PathBuf,
    clock: ManualClock,
}

impl Host for TestHost {
    fn vault_location(&self) -> Result<Location, ApiError> {
        Ok(Location {
            path: self.vault.clone(),
            fixed: true,
        })
    }
    fn remember_vault_location(&self, _: &Path) -> Result<(), ApiError> {
        Ok(())
    }
    fn clock(&self) -> Arc<dyn Clock> {
        Arc::new(self.clock.clone())
    }
    fn device(&self) -> String {
        "desktop@test".into()
    }
}

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

struct Fixture {
    _tmp: tempfile::TempDir,
    clock: ManualClock,
    shell: Shell<TestHost>,
}

fn fresh() -> Fixture {
    // SAFETY-free in edition 2021; every test sets the same value.
    std::env::set_var("CLINVAULT_TEST_FAST_KDF", "1");
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(START);
    let shell = Shell::new(TestHost {
        vault: tmp.path().join("vault"),
        clock: clock.clone(),
    });
    Fixture {
        _tmp: tmp,
        clock,
        shell,
    }
}

fn with_admin() -> Fixture {
    let mut f = fresh();
    f.shell
        .create_vault(CreateVault {
            location: None,
            username: "admin".into(),
            display_name: Some("Ada Admin".into()),
            passphrase: secret(ADMIN_PASS),
        })
        .unwrap();
    f
}

fn sign_in(f: &mut Fixture, user: &str, pass: &str) -> Result<AppStatus, ApiError> {
    f.shell.sign_in(SignInRequest {
        username: user.into(),
        passphrase: secret(pass),
    })
}

fn stage(f: &mut Fixture) -> Stage {
    f.shell.status().unwrap().stage
}

#[test]
fn typescript_bindings_match_the_rust_types() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("ui/src/lib/bindings.ts");
    let generated = crate::api::typescript_bindings();
    if std::env::var_os("UPDATE_BINDINGS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "ui/src/lib/bindings.ts is out of date: run UPDATE_BINDINGS=1 cargo test -p clinvault-desktop --lib bindings"
    );
}

#[test]
fn every_command_is_declared_and_granted_to_the_main_window_only() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let declared: Vec<String> = std::fs::read_to_string(root.join("src-tauri/commands.txt"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let mut handled: Vec<String> = crate::command_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut sorted = declared.clone();
    sorted.sort();
    handled.sort();
    assert_eq!(sorted, handled, "commands.txt and the handler list differ");

    let cap: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("src-tauri/capabilities/main.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cap["windows"], serde_json::json!(["main"]));
    let mut granted: Vec<String> = cap["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect();
    granted.sort();
    let mut expected: Vec<String> = declared
        .iter()
        .map(|c| format!("allow-{}", c.replace('_', "-")))
        .collect();
    expected.sort();
    assert_eq!(
        granted, expected,
        "the capability grants something other than the app's commands"
    );
}

#[test]
fn no_plugin_that_reaches_the_system_is_a_dependency() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    for forbidden in [
        "tauri-plugin-shell",
        "tauri-plugin-fs",
        "tauri-plugin-http",
        "devtools",
    ] {
        assert!(
            !manifest.contains(forbidden),
            "{forbidden} must not be in Cargo.toml"
        );
    }
}

#[test]
fn first_run_creates_the_vault_signs_the_admin_in_and_shows_a_working_recovery_key() {
    let mut f = fresh();
    let st = f.shell.status().unwrap();
    assert!(matches!(st.stage, Stage::NoVault));
    assert!(!st.vault.exists);

    let weak = f.shell.create_vault(CreateVault {
        location: None,
        username: "admin".into(),
        display_name: None,
        passphrase: secret("short"),
    });
    let err = weak.err().unwrap();
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert!(err.message.contains("passphrase"), "{}", err.message);
    assert!(
        !f.shell.status().unwrap().vault.exists,
        "a refused first run leaves nothing behind"
    );

    let created = f
        .shell
        .create_vault(CreateVault {
            location: None,
            username: "admin".into(),
            display_name: Some("Ada Admin".into()),
            passphrase: secret(ADMIN_PASS),
        })
        .unwrap();
    clinvault_core::RecoveryKey::parse(created.recovery_key.0.as_str()).unwrap();
    let Stage::Active { session } = created.status.stage else {
        panic!("not signed in after first run");
    };
    assert_eq!(session.username, "admin");
    assert_eq!(session.role, "administrator");
    assert!(session.permissions.iter().any(|p| p == "users.manage"));

    let again = f.shell.create_vault(CreateVault {
        location: None,
        username: "other".into(),
        display_name: None,
        passphrase: secret(ADMIN_PASS),
    });
    assert_eq!(again.err().unwrap().kind, ErrorKind::AlreadyExists);
}

#[test]
fn the_strength_meter_gives_the_policy_reason() {
    let mut f = fresh();
    let weak = f.shell.passphrase_strength(StrengthRequest {
        passphrase: secret("admin12345"),
        username: Some("admin".into()),
        display_name: None,
    });
    assert!(!weak.acceptable);
    assert!(weak.reason.unwrap().contains("at least 15"));
    let strong = f.shell.passphrase_strength(StrengthRequest {
        passphrase: secret(ADMIN_PASS),
        username: Some("admin".into()),
        display_name: None,
    });
    assert!(strong.acceptable, "{strong:?}");
}

#[test]
fn a_wrong_passphrase_is_an_authentication_error_and_signs_nobody_in() {
    let mut f = with_admin();
    f.shell.sign_out().unwrap();
    let err = sign_in(&mut f, "admin", "wrong wrong wrong wrong")
        .err()
        .unwrap();
    assert_eq!(err.kind, ErrorKind::Authentication);
    assert_eq!(err.message, "wrong username or passphrase");
    assert!(matches!(stage(&mut f), Stage::SignedOut));
    let err = f.shell.list_users().err().unwrap();
    assert_eq!(err.kind, ErrorKind::SessionLocked);
}

#[test]
fn the_idle_lock_follows_the_core_clock_and_unlock_needs_the_passphrase() {
    let mut f = with_admin();
    f.shell
        .set_policy(SetPolicy {
            key: "idle-lock-minutes".into(),
            value: "1".into(),
        })
        .unwrap();
    // Activity within the limit keeps the session open.
    f.clock.advance(50);
    assert!(matches!(
        f.shell.report_activity().unwrap().stage,
        Stage::Active { .. }
    ));
    f.clock.advance(50);
    assert!(matches!(stage(&mut f), Stage::Active { .. }));
    // Past the limit, activity cannot revive it.
    f.clock.advance(15);
    let st = f.shell.report_activity().unwrap();
    let Stage::Locked { username, .. } = st.stage else {
        panic!("not locked after the idle limit: {:?}", st.stage);
    };
    assert_eq!(username, "admin");
    assert_eq!(
        f.shell.list_users().err().unwrap().kind,
        ErrorKind::SessionLocked
    );

    let err = f
        .shell
        .unlock(Unlock {
            passphrase: secret("not the passphrase at all"),
        })
        .err()
        .unwrap();
    assert_eq!(err.kind, ErrorKind::Authentication);
    f.shell
        .unlock(Unlock {
            passphrase: secret(ADMIN_PASS),
        })
        .unwrap();
    assert!(f.shell.list_users().is_ok());

    // Manual lock, then "switch user" is a sign-out.
    assert!(matches!(
        f.shell.lock().unwrap().stage,
        Stage::Locked { .. }
    ));
    assert!(matches!(
        f.shell.sign_out().unwrap().stage,
        Stage::SignedOut
    ));
}

fn totp_now(secret_b32: &str, clock: &ManualClock) -> String {
    let bytes = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, secret_b32).unwrap();
    clinvault_core::two_factor::code_at(&bytes, clock.now().as_second() as u64).unwrap()
}

#[test]
fn two_factor_enrolment_then_sign_in_with_a_code_and_a_wrong_code_refused() {
    let mut f = with_admin();
    let e = f.shell.enroll_2fa().unwrap();
    assert!(e.otpauth_uri.0.starts_with("otpauth://totp/"));
    assert!(!e.qr_png_base64.is_empty());
    let wrong = f.shell.confirm_2fa(Code {
        code: "000000".into(),
    });
    if let Err(err) = wrong {
        assert_eq!(err.kind, ErrorKind::Authentication);
    }
    let code = totp_now(&e.secret_base32.0, &f.clock);
    let codes = f.shell.confirm_2fa(Code { code }).unwrap();
    assert_eq!(codes.codes.len(), 10);
    f.shell.sign_out().unwrap();

    let st = sign_in(&mut f, "admin", ADMIN_PASS).unwrap();
    assert!(matches!(st.stage, Stage::SecondFactor { ref username } if username == "admin"));
    let err = f
        .shell
        .complete_sign_in(SecondFactor {
            code: "123456".into(),
            remember_device: false,
        })
        .err()
        .unwrap();
    assert_eq!(err.kind, ErrorKind::Authentication);
    assert!(
        matches!(stage(&mut f), Stage::SignedOut),
        "a wrong code ends the attempt"
    );

    f.clock.advance(30);
    sign_in(&mut f, "admin", ADMIN_PASS).unwrap();
    let code = totp_now(&e.secret_base32.0, &f.clock);
    let st = f
        .shell
        .complete_sign_in(SecondFactor {
            code,
            remember_device: false,
        })
        .unwrap();
    let Stage::Active { session } = st.stage else {
        panic!("not signed in with a right code");
    };
    assert!(session.two_factor);

    // A recovery code works once in place of a code.
    f.shell.sign_out().unwrap();
    sign_in(&mut f, "admin", ADMIN_PASS).unwrap();
    f.shell
        .complete_sign_in(SecondFactor {
            code: codes.codes[0].0.to_string(),
            remember_device: false,
        })
        .unwrap();
}

#[test]
fn a_receptionist_is_refused_administration_by_the_core() {
    let mut f = with_admin();
    f.shell
        .add_user(AddUser {
            username: "rita".into(),
            display_name: Some("Rita Reception".into()),
            role: "receptionist".into(),
            passphrase: secret(RECEPTION_PASS),
        })
        .unwrap();
    let users = f.shell.list_users().unwrap();
    assert!(users
        .iter()
        .any(|u| u.username == "rita" && u.role == "receptionist"));

    let st = sign_in(&mut f, "rita", RECEPTION_PASS).unwrap();
    let Stage::Active { session } = st.stage else {
        panic!("receptionist not signed in");
    };
    assert!(!session.permissions.iter().any(|p| p == "users.manage"));
    for err in [
        f.shell.list_users().err(),
        f.shell
            .set_policy(SetPolicy {
                key: "idle-lock-minutes".into(),
                value: "60".into(),
            })
            .err(),
        f.shell.rotate_keys().err(),
    ] {
        let err = err.unwrap();
        assert_eq!(err.kind, ErrorKind::PermissionDenied, "{}", err.message);
    }
}

#[test]
fn administration_round_trip_users_roles_history() {
    let mut f = with_admin();
    f.shell
        .add_user(AddUser {
            username: "pat".into(),
            display_name: None,
            role: "practitioner".into(),
            passphrase: secret(RECEPTION_PASS),
        })
        .unwrap();
    f.shell
        .disable_user(UserRef {
            username: "pat".into(),
        })
        .unwrap();
    let pat = |f: &mut Fixture| {
        f.shell
            .list_users()
            .unwrap()
            .into_iter()
            .find(|u| u.username == "pat")
            .unwrap()
    };
    assert_eq!(pat(&mut f).status, "disabled");
    f.shell
        .enable_user(EnableUser {
            username: "pat".into(),
            passphrase: secret("harbour quilt sparrow engine"),
        })
        .unwrap();
    assert_eq!(pat(&mut f).status, "active");

    f.shell
        .create_role(CreateRole {
            name: "front-desk".into(),
            permissions: vec!["patient.read".into(), "appointments.read".into()],
        })
        .unwrap();
    let refused = f.shell.create_role(CreateRole {
        name: "sneaky".into(),
        permissions: vec!["users.manage".into()],
    });
    assert_eq!(refused.err().unwrap().kind, ErrorKind::InvalidInput);
    let bogus = f.shell.create_role(CreateRole {
        name: "bogus".into(),
        permissions: vec!["no.such".into()],
    });
    assert_eq!(bogus.err().unwrap().kind, ErrorKind::InvalidInput);
    let matrix = f.shell.roles().unwrap();
    assert!(matrix
        .roles
        .iter()
        .any(|r| r.name == "front-desk" && !r.builtin));
    assert!(matrix
        .permissions
        .iter()
        .any(|p| p.name == "users.manage" && p.admin_only));
    f.shell
        .set_user_role(SetRole {
            username: "pat".into(),
            role: "front-desk".into(),
        })
        .unwrap();

    let history = f
        .shell
        .signin_history(HistoryRequest {
            username: Some("admin".into()),
            limit: None,
        })
        .unwrap();
    assert!(history.iter().any(|h| h.outcome == "ok"));

    let bad = f.shell.set_policy(SetPolicy {
        key: "idle-lock-minutes".into(),
        value: "0".into(),
    });
    assert_eq!(bad.err().unwrap().kind, ErrorKind::InvalidInput);
    let entries = f
        .shell
        .set_policy(SetPolicy {
            key: "clinic-timezone".into(),
            value: "Australia/Sydney".into(),
        })
        .unwrap();
    assert!(entries
        .iter()
        .any(|e| e.key == "clinic-timezone" && e.value == "Australia/Sydney"));
    let entries = f
        .shell
        .set_policy(SetPolicy {
            key: "clinic-currency".into(),
            value: "aud".into(),
        })
        .unwrap();
    assert!(entries
        .iter()
        .any(|e| e.key == "clinic-currency" && e.value == "AUD"));
    let bad = f.shell.set_policy(SetPolicy {
        key: "clinic-name".into(),
        value: String::new(),
    });
    assert_eq!(bad.err().unwrap().kind, ErrorKind::InvalidInput);
}

#[test]
fn closing_the_window_ends_the_session() {
    let mut f = with_admin();
    f.shell.window_closed();
    assert!(matches!(stage(&mut f), Stage::SignedOut));
    assert_eq!(
        f.shell.list_users().err().unwrap().kind,
        ErrorKind::SessionLocked
    );
}

#[test]
fn changing_the_own_passphrase_checks_the_current_one() {
    let mut f = with_admin();
    let err = f
        .shell
        .change_passphrase(ChangePassphrase {
            current: secret("wrong wrong wrong wrong"),
            new: secret("granite pelican midnight oboe"),
        })
        .err()
        .unwrap();
    assert_eq!(err.kind, ErrorKind::Authentication);
    f.shell
        .change_passphrase(ChangePassphrase {
            current: secret(ADMIN_PASS),
            new: secret("granite pelican midnight oboe"),
        })
        .unwrap();
    f.shell.sign_out().unwrap();
    sign_in(&mut f, "admin", "granite pelican midnight oboe").unwrap();
}

#[test]
fn a_panic_in_a_command_becomes_an_internal_error_with_a_fixed_message() {
    let r: Result<(), ApiError> = crate::commands::contain(|| panic!("patient Jane Marker-7f3"));
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Internal);
    assert!(!e.message.contains("Marker-7f3"), "{}", e.message);
    let ok: Result<u8, ApiError> = crate::commands::contain(|| Ok(7));
    assert_eq!(ok.unwrap(), 7);
}

#[test]
fn the_isolation_script_lets_through_exactly_the_declared_commands() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = std::fs::read_to_string(root.join("ui/isolation/index.js")).unwrap();
    let start = script.find("/^(").unwrap() + 3;
    let end = script[start..].find(")$/").unwrap() + start;
    let mut allowed: Vec<&str> = script[start..end].split('|').collect();
    allowed.sort();
    let declared = std::fs::read_to_string(root.join("src-tauri/commands.txt")).unwrap();
    let mut declared: Vec<&str> = declared.lines().collect();
    declared.sort();
    assert_eq!(allowed, declared);
}

fn form(first: &str, last: &str) -> PatientForm {
    PatientForm {
        first_name: Some(first.into()),
        last_name: Some(last.into()),
        ..PatientForm::default()
    }
}

fn add_staff(f: &mut Fixture) {
    for (user, role, pass) in [
        ("rita", "receptionist", RECEPTION_PASS),
        ("sam", "practitioner", PRACTITIONER_PASS),
    ] {
        f.shell
            .add_user(AddUser {
                username: user.into(),
                display_name: None,
                role: role.into(),
                passphrase: secret(pass),
            })
            .unwrap();
    }
    f.shell
        .add_practitioner(UserRef {
            username: "sam".into(),
        })
        .unwrap();
    for day in ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"] {
        f.shell
            .set_working_hours(WorkingHours {
                username: "sam".into(),
                day: day.into(),
                hours: "08:00-18:00".into(),
            })
            .unwrap();
    }
    let bad = f
        .shell
        .set_working_hours(WorkingHours {
            username: "sam".into(),
            day: "Mon".into(),
            hours: "9 to 5".into(),
        })
        .err()
        .unwrap();
    assert_eq!(bad.kind, ErrorKind::InvalidInput);
    assert!(bad.message.starts_with("hours:"), "{}", bad.message);
    f.shell
        .add_appointment_type(NewAppointmentType {
            name: "Follow-up".into(),
            minutes: 30,
            price: "75".into(),
            tax_rate_percent: Some(String::new()),
        })
        .unwrap();
}

const PRACTITIONER_PASS: &str = "saffron glacier tandem umbrella";

#[test]
fn patients_create_with_field_errors_search_update_and_a_private_window_title() {
    let mut f = with_admin();
    let err = f.shell.add_patient(form("Zelda", "")).err().unwrap();
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert!(
        err.message.contains("last_name: required"),
        "{}",
        err.message
    );
    let err = f
        .shell
        .add_patient(PatientForm {
            date_of_birth: Some("31/02/1990".into()),
            ..form("Zelda", "Quinton")
        })
        .err()
        .unwrap();
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert!(err.message.contains("date_of_birth:"), "{}", err.message);
    assert!(f
        .shell
        .search_patients(PatientSearch {
            text: "zel".into(),
            limit: None
        })
        .unwrap()
        .is_empty());

    let rec = f
        .shell
        .add_patient(PatientForm {
            date_of_birth: Some("1984-05-06".into()),
            phone: Some("+44 20 7946 0001".into()),
            ..form("Zelda", "Quinton")
        })
        .unwrap();
    assert_eq!(rec.fields.first_name.as_deref(), Some("Zelda"));
    // The privacy default: no name in the window title.
    assert!(!rec.window_title.contains("Zelda") && !rec.window_title.contains("Quinton"));
    assert!(
        rec.window_title.contains("Patient record"),
        "{}",
        rec.window_title
    );
    f.shell.add_patient(form("Zachary", "Other")).unwrap();

    let hits = f
        .shell
        .search_patients(PatientSearch {
            text: "zel".into(),
            limit: None,
        })
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].id, rec.id);
    let hits = f
        .shell
        .search_patients(PatientSearch {
            text: "z".into(),
            limit: Some(10),
        })
        .unwrap();
    assert_eq!(hits.len(), 2);
    let all = f
        .shell
        .list_patients(PatientList {
            archived: false,
            limit: None,
        })
        .unwrap();
    assert_eq!(all.len(), 2);

    let err = f
        .shell
        .update_patient(UpdatePatient {
            id: rec.id.clone(),
            fields: PatientForm {
                email: Some("not an address".into()),
                ..PatientForm::default()
            },
            requested_by_patient: None,
        })
        .err()
        .unwrap();
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert!(
        err.message.starts_with("invalid input: email:") || err.message.contains("email:"),
        "{}",
        err.message
    );
    let updated = f
        .shell
        .update_patient(UpdatePatient {
            id: rec.id.clone(),
            fields: PatientForm {
                email: Some("zelda@example.org".into()),
                ..PatientForm::default()
            },
            requested_by_patient: Some("new email address".into()),
        })
        .unwrap();
    assert_eq!(updated.fields.email.as_deref(), Some("zelda@example.org"));
    assert_eq!(updated.fields.phone.as_deref(), Some("+44 20 7946 0001"));
    let shown = f
        .shell
        .show_patient(PatientRef { id: rec.id.clone() })
        .unwrap();
    assert_eq!(shown.fields.email.as_deref(), Some("zelda@example.org"));
    let missing = f
        .shell
        .show_patient(PatientRef { id: "nope".into() })
        .err()
        .unwrap();
    assert_eq!(missing.kind, ErrorKind::NotFound);

    let title = f
        .shell
        .screen_title(ScreenTitle {
            screen: "Patients".into(),
        })
        .unwrap();
    assert_eq!(title, "Patients — ClinVault");
}

#[test]
fn the_record_tabs_follow_the_core_permissions_and_a_receptionist_is_refused_the_notes() {
    let mut f = with_admin();
    add_staff(&mut f);
    let patient = f.shell.add_patient(form("Ann", "Jones")).unwrap().id;

    sign_in(&mut f, "sam", PRACTITIONER_PASS).unwrap();
    let s = f.shell.session_for_test().unwrap();
    let booked = s
        .book_appointment(&clinvault_core::appointments::Booking {
            patient_id: &patient,
            practitioner: "sam",
            appointment_type: "Follow-up",
            start_local: "2026-09-22T10:00",
            weekly_occurrences: 1,
            allow_override: false,
        })
        .unwrap();
    let note = s
        .add_note(&patient, Some(&booked[0].id), "S: better. O: full range.")
        .unwrap();
    s.finalise_note(&note.id).unwrap();

    let appts = f
        .shell
        .patient_appointments(PatientRef {
            id: patient.clone(),
        })
        .unwrap();
    assert_eq!(appts.len(), 1);
    assert_eq!(appts[0].starts_local, "2026-09-22T10:00");
    assert_eq!(appts[0].practitioner, "sam");
    let notes = f
        .shell
        .patient_notes(PatientRef {
            id: patient.clone(),
        })
        .unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].status, "final");
    assert_eq!(notes[0].versions, 1);
    assert!(f
        .shell
        .patient_attachments(PatientRef {
            id: patient.clone()
        })
        .unwrap()
        .is_empty());

    sign_in(&mut f, "rita", RECEPTION_PASS).unwrap();
    let s = f.shell.session_for_test().unwrap();
    // Invoicing an appointment issues the invoice.
    let invoice = s.invoice_appointment(&booked[0].id).unwrap();
    assert_eq!(invoice.status, "issued");
    let invoices = f
        .shell
        .patient_invoices(PatientRef {
            id: patient.clone(),
        })
        .unwrap();
    assert_eq!(invoices.len(), 1);
    assert_eq!(invoices[0].status, "issued");
    assert_eq!(invoices[0].total_minor, 7500);
    let balance = f
        .shell
        .patient_balance(PatientRef {
            id: patient.clone(),
        })
        .unwrap();
    assert_eq!(balance.balance_minor, 7500);
    assert_eq!(
        f.shell
            .patient_appointments(PatientRef {
                id: patient.clone()
            })
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        f.shell
            .search_patients(PatientSearch {
                text: "ann".into(),
                limit: None
            })
            .unwrap()
            .len(),
        1
    );
    // The core refuses clinical content to reception, whatever the UI shows.
    for err in [
        f.shell
            .patient_notes(PatientRef {
                id: patient.clone(),
            })
            .err(),
        f.shell
            .patient_attachments(PatientRef {
                id: patient.clone(),
            })
            .err(),
    ] {
        let err = err.unwrap();
        assert_eq!(err.kind, ErrorKind::PermissionDenied, "{}", err.message);
        assert!(!err.message.contains("Ann"), "{}", err.message);
    }
    let unknown = f
        .shell
        .patient_notes(PatientRef { id: "nope".into() })
        .err()
        .unwrap();
    assert_eq!(unknown.kind, ErrorKind::PermissionDenied);

    f.shell.sign_out().unwrap();
    let err = f
        .shell
        .search_patients(PatientSearch {
            text: "ann".into(),
            limit: None,
        })
        .err()
        .unwrap();
    assert_eq!(err.kind, ErrorKind::SessionLocked);
}

#[test]
fn calendar_books_moves_with_the_cores_reason_and_marks_arrival() {
    let mut f = with_admin();
    add_staff(&mut f);
    let patient = f.shell.add_patient(form("Ann", "Jones")).unwrap().id;
    sign_in(&mut f, "rita", RECEPTION_PASS).unwrap();

    let refused = f
        .shell
        .add_practitioner(UserRef {
            username: "rita".into(),
        })
        .err()
        .unwrap();
    assert_eq!(refused.kind, ErrorKind::PermissionDenied);
    let cols = f.shell.list_practitioners().unwrap();
    assert_eq!(cols.len(), 1);
    assert_eq!(cols[0].username, "sam");
    assert_eq!(cols[0].hours.len(), 7);
    assert_eq!(cols[0].hours[0].starts, "08:00");
    let types = f.shell.list_appointment_types().unwrap();
    assert_eq!(types[0].name, "Follow-up");
    assert_eq!(types[0].minutes, 30);

    let book = |start: &str| BookRequest {
        patient_id: patient.clone(),
        practitioner: "sam".into(),
        appointment_type: "Follow-up".into(),
        start_local: start.into(),
        weekly_occurrences: None,
        allow_override: false,
    };
    let a = f.shell.book_appointment(book("2026-09-22T09:00")).unwrap();
    let b = f.shell.book_appointment(book("2026-09-22T10:00")).unwrap();
    assert_eq!(a[0].patient_name, "Ann Jones");
    let err = f
        .shell
        .book_appointment(book("2026-09-22T10:15"))
        .err()
        .unwrap();
    assert_eq!(err.kind, ErrorKind::Conflict);
    assert!(err.message.contains("overlaps"), "{}", err.message);

    let mv = |start: &str| MoveRequest {
        id: a[0].id.clone(),
        start_local: start.into(),
        practitioner: None,
        allow_override: false,
    };
    let moved = f.shell.move_appointment(mv("2026-09-22T11:00")).unwrap();
    assert_eq!(moved.starts_local, "2026-09-22T11:00");
    assert_eq!(moved.ends_local, "2026-09-22T11:30");
    let err = f
        .shell
        .move_appointment(mv("2026-09-22T10:15"))
        .err()
        .unwrap();
    assert_eq!(err.kind, ErrorKind::Conflict);
    assert!(
        err.message
            .contains("overlaps the practitioner's appointment at 2026-09-22T10:00"),
        "{}",
        err.message
    );
    let err = f
        .shell
        .move_appointment(mv("2026-09-22T19:00"))
        .err()
        .unwrap();
    assert!(
        err.message.contains("outside the practitioner's hours"),
        "{}",
        err.message
    );
    let err = f
        .shell
        .move_appointment(MoveRequest {
            allow_override: true,
            ..mv("2026-09-22T10:15")
        })
        .err()
        .unwrap();
    assert_eq!(err.kind, ErrorKind::PermissionDenied);

    // A weekly series, all or nothing (the core's rule).
    let series = f
        .shell
        .book_appointment(BookRequest {
            weekly_occurrences: Some(3),
            ..book("2026-09-22T15:00")
        })
        .unwrap();
    let starts: Vec<&str> = series.iter().map(|a| a.starts_local.as_str()).collect();
    assert_eq!(
        starts,
        ["2026-09-22T15:00", "2026-09-29T15:00", "2026-10-06T15:00"]
    );
    let clash = f
        .shell
        .book_appointment(BookRequest {
            weekly_occurrences: Some(3),
            ..book("2026-09-15T15:00")
        })
        .err()
        .unwrap();
    assert_eq!(clash.kind, ErrorKind::Conflict);

    let day = f
        .shell
        .day_appointments(CalendarRange {
            date: "2026-09-22".into(),
            practitioner: None,
        })
        .unwrap();
    let starts: Vec<&str> = day.iter().map(|d| d.starts_local.as_str()).collect();
    assert_eq!(
        starts,
        ["2026-09-22T10:00", "2026-09-22T11:00", "2026-09-22T15:00"]
    );
    let week = f
        .shell
        .week_appointments(CalendarRange {
            date: "2026-09-21".into(),
            practitioner: Some("sam".into()),
        })
        .unwrap();
    assert_eq!(week.len(), 3);
    let bad = f
        .shell
        .day_appointments(CalendarRange {
            date: "22/09/2026".into(),
            practitioner: None,
        })
        .err()
        .unwrap();
    assert_eq!(bad.kind, ErrorKind::InvalidInput);

    let arrived = f
        .shell
        .set_appointment_status(StatusRequest {
            id: b[0].id.clone(),
            status: "arrived".into(),
            reason: None,
        })
        .unwrap();
    assert_eq!(arrived.status, "arrived");
    let err = f
        .shell
        .set_appointment_status(StatusRequest {
            id: b[0].id.clone(),
            status: "cancelled".into(),
            reason: None,
        })
        .err()
        .unwrap();
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert!(err.message.starts_with("reason:"), "{}", err.message);
    let err = f
        .shell
        .move_appointment(MoveRequest {
            id: b[0].id.clone(),
            ..mv("2026-09-22T14:00")
        })
        .err()
        .unwrap();
    assert_eq!(err.kind, ErrorKind::Conflict);
}

#[test]
fn calendar_resizes_by_the_cores_rules_and_shows_time_off() {
    let mut f = with_admin();
    add_staff(&mut f);
    let patient = f.shell.add_patient(form("Ann", "Jones")).unwrap().id;
    // The administrator records Wednesday afternoon off, with a reason.
    let off = f
        .shell
        .add_time_off(NewTimeOff {
            practitioner: "sam".into(),
            from_local: "2026-09-23T12:00".into(),
            to_local: "2026-09-23T18:00".into(),
            reason: Some("course".into()),
            allow_booked: false,
        })
        .unwrap();
    assert_eq!(off.starts_local, "2026-09-23T12:00");
    let bad = f
        .shell
        .add_time_off(NewTimeOff {
            practitioner: "sam".into(),
            from_local: "2026-09-23T18:00".into(),
            to_local: "2026-09-23T12:00".into(),
            reason: None,
            allow_booked: false,
        })
        .err()
        .unwrap();
    assert_eq!(bad.kind, ErrorKind::InvalidInput);
    assert!(bad.message.starts_with("to:"), "{}", bad.message);
    let week = TimeOffRange {
        date: "2026-09-21".into(),
        days: 7,
        practitioner: None,
    };
    let listed = f.shell.list_time_off(week).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].reason.as_deref(), Some("course"));

    sign_in(&mut f, "rita", RECEPTION_PASS).unwrap();
    let seen = f
        .shell
        .list_time_off(TimeOffRange {
            date: "2026-09-23".into(),
            days: 1,
            practitioner: Some("sam".into()),
        })
        .unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].reason, None, "reception sees the absence, not why");
    let denied = f
        .shell
        .add_time_off(NewTimeOff {
            practitioner: "sam".into(),
            from_local: "2026-09-24T08:00".into(),
            to_local: "2026-09-24T09:00".into(),
            reason: None,
            allow_booked: false,
        })
        .err()
        .unwrap();
    assert_eq!(denied.kind, ErrorKind::PermissionDenied);
    let denied = f
        .shell
        .remove_time_off(TimeOffRef { id: off.id.clone() })
        .err()
        .unwrap();
    assert_eq!(denied.kind, ErrorKind::PermissionDenied);

    let a = f
        .shell
        .book_appointment(BookRequest {
            patient_id: patient.clone(),
            practitioner: "sam".into(),
            appointment_type: "Follow-up".into(),
            start_local: "2026-09-23T10:00".into(),
            weekly_occurrences: None,
            allow_override: false,
        })
        .unwrap();
    let resize = |end: &str| ResizeRequest {
        id: a[0].id.clone(),
        end_local: end.into(),
        allow_override: false,
    };
    let longer = f
        .shell
        .resize_appointment(resize("2026-09-23T11:15"))
        .unwrap();
    assert_eq!(
        (longer.starts_local.as_str(), longer.ends_local.as_str()),
        ("2026-09-23T10:00", "2026-09-23T11:15")
    );
    let away = f
        .shell
        .resize_appointment(resize("2026-09-23T12:30"))
        .err()
        .unwrap();
    assert_eq!(away.kind, ErrorKind::Conflict);
    assert!(
        away.message.contains("cannot end at 2026-09-23T12:30")
            && away.message.contains("away (time off)"),
        "{}",
        away.message
    );
    let before = f
        .shell
        .resize_appointment(resize("2026-09-23T09:00"))
        .err()
        .unwrap();
    assert_eq!(before.kind, ErrorKind::InvalidInput);
    assert!(before.message.contains("end:"), "{}", before.message);
    let err = f
        .shell
        .resize_appointment(ResizeRequest {
            allow_override: true,
            ..resize("2026-09-23T12:30")
        })
        .err()
        .unwrap();
    assert_eq!(err.kind, ErrorKind::PermissionDenied);
    let day = f
        .shell
        .day_appointments(CalendarRange {
            date: "2026-09-23".into(),
            practitioner: None,
        })
        .unwrap();
    assert_eq!(
        day[0].ends_local, "2026-09-23T11:15",
        "refusals changed nothing"
    );

    // The administrator removes the time off recorded by mistake; it is gone from the calendar.
    sign_in(&mut f, "admin", ADMIN_PASS).unwrap();
    f.shell
        .remove_time_off(TimeOffRef { id: off.id.clone() })
        .unwrap();
    let week = TimeOffRange {
        date: "2026-09-21".into(),
        days: 7,
        practitioner: None,
    };
    assert!(f.shell.list_time_off(week).unwrap().is_empty());
    let gone = f
        .shell
        .remove_time_off(TimeOffRef { id: off.id })
        .err()
        .unwrap();
    assert_eq!(gone.kind, ErrorKind::NotFound);
}

#[test]
fn notes_from_a_template_draft_finalise_amend_and_invoices_with_payments() {
    let mut f = with_admin();
    add_staff(&mut f);
    f.shell
        .add_note_template(NewTemplate {
            name: "SOAP".into(),
            sections: vec!["Subjective".into(), " ".into(), "Plan".into()],
        })
        .unwrap();
    let patient = f.shell.add_patient(form("Ann", "Jones")).unwrap().id;

    sign_in(&mut f, "sam", PRACTITIONER_PASS).unwrap();
    assert_eq!(f.shell.note_templates().unwrap(), ["SOAP"]);
    let text = f
        .shell
        .template_text(NameRef {
            name: "SOAP".into(),
        })
        .unwrap();
    assert!(
        text.contains("## Subjective") && text.contains("## Plan"),
        "{text}"
    );
    let appt = f
        .shell
        .book_appointment(BookRequest {
            patient_id: patient.clone(),
            practitioner: "sam".into(),
            appointment_type: "Follow-up".into(),
            start_local: "2026-09-22T09:00".into(),
            weekly_occurrences: None,
            allow_override: false,
        })
        .unwrap()
        .remove(0);
    let note = f
        .shell
        .add_note(NewNote {
            patient_id: patient.clone(),
            appointment_id: Some(appt.id.clone()),
            body: text.clone(),
        })
        .unwrap();
    assert_eq!(note.status, "draft");
    let saved = f
        .shell
        .save_draft(NoteText {
            id: note.id.clone(),
            body: format!("{text}knee better"),
        })
        .unwrap();
    assert!(saved.versions.last().unwrap().body.ends_with("knee better"));
    let empty = f
        .shell
        .save_draft(NoteText {
            id: note.id.clone(),
            body: "  ".into(),
        })
        .err()
        .unwrap();
    assert_eq!(empty.kind, ErrorKind::InvalidInput);
    let fin = f
        .shell
        .finalise_note(NoteRef {
            id: note.id.clone(),
        })
        .unwrap();
    assert_eq!(fin.status, "final");
    let late = f
        .shell
        .save_draft(NoteText {
            id: note.id.clone(),
            body: "changed".into(),
        })
        .err()
        .unwrap();
    assert_eq!(late.kind, ErrorKind::Conflict);
    let no_reason = f
        .shell
        .amend_note(Amendment {
            id: note.id.clone(),
            body: "knee much better".into(),
            reason: " ".into(),
        })
        .err()
        .unwrap();
    assert_eq!(no_reason.kind, ErrorKind::InvalidInput);
    let amended = f
        .shell
        .amend_note(Amendment {
            id: note.id.clone(),
            body: "knee much better".into(),
            reason: "typo".into(),
        })
        .unwrap();
    let kinds: Vec<&str> = amended.versions.iter().map(|v| v.kind.as_str()).collect();
    assert_eq!(kinds.last(), Some(&"amendment"));
    assert_eq!(
        amended.versions.last().unwrap().reason.as_deref(),
        Some("typo")
    );
    let shown = f
        .shell
        .show_note(NoteRef {
            id: note.id.clone(),
        })
        .unwrap();
    assert_eq!(shown.versions.len(), amended.versions.len());

    sign_in(&mut f, "rita", RECEPTION_PASS).unwrap();
    let denied = f
        .shell
        .show_note(NoteRef {
            id: note.id.clone(),
        })
        .err()
        .unwrap();
    assert_eq!(denied.kind, ErrorKind::PermissionDenied);
    assert!(!denied.message.contains("knee"), "{}", denied.message);
    let denied = f.shell.note_templates().err().unwrap();
    assert_eq!(denied.kind, ErrorKind::PermissionDenied);

    let inv = f
        .shell
        .invoice_appointment(AppointmentRef {
            appointment_id: appt.id.clone(),
        })
        .unwrap();
    assert_eq!(inv.status, "issued");
    assert_eq!(inv.lines[0].description, "Follow-up");
    assert_eq!(inv.total_minor, 7500);
    let twice = f
        .shell
        .invoice_appointment(AppointmentRef {
            appointment_id: appt.id.clone(),
        })
        .err()
        .unwrap();
    assert_eq!(twice.kind, ErrorKind::Conflict);
    let pay = |amount: &str, method: &str| Payment {
        invoice_id: inv.id.clone(),
        amount: amount.into(),
        method: method.into(),
        paid_on: None,
    };
    let part = f.shell.record_payment(pay("25.00", "card")).unwrap();
    assert_eq!(part.balance_minor, 5000);
    let bad = f.shell.record_payment(pay("10", "bitcoin")).err().unwrap();
    assert!(bad.message.starts_with("method:"), "{}", bad.message);
    let over = f.shell.record_payment(pay("60.00", "cash")).err().unwrap();
    assert_ne!(over.kind, ErrorKind::Internal);
    let paid_void = f
        .shell
        .void_invoice(VoidInvoice {
            id: inv.id.clone(),
            reason: "entered twice".into(),
        })
        .err()
        .unwrap();
    assert_eq!(paid_void.kind, ErrorKind::Conflict);
    f.shell.record_payment(pay("50", "cash")).unwrap();
    let shown = f
        .shell
        .show_invoice(InvoiceRef { id: inv.id.clone() })
        .unwrap();
    assert_eq!((shown.paid_minor, shown.balance_minor), (7500, 0));
    assert_eq!(
        f.shell
            .patient_balance(PatientRef { id: patient })
            .unwrap()
            .balance_minor,
        0
    );
    // A second appointment, invoiced then voided (a reason is required; no payments yet).
    let second = f
        .shell
        .book_appointment(BookRequest {
            patient_id: shown.patient_id.clone(),
            practitioner: "sam".into(),
            appointment_type: "Follow-up".into(),
            start_local: "2026-09-23T09:00".into(),
            weekly_occurrences: None,
            allow_override: false,
        })
        .unwrap()
        .remove(0);
    let inv2 = f
        .shell
        .invoice_appointment(AppointmentRef {
            appointment_id: second.id,
        })
        .unwrap();
    let no_reason = f
        .shell
        .void_invoice(VoidInvoice {
            id: inv2.id.clone(),
            reason: " ".into(),
        })
        .err()
        .unwrap();
    assert_eq!(no_reason.kind, ErrorKind::InvalidInput);
    let voided = f
        .shell
        .void_invoice(VoidInvoice {
            id: inv2.id.clone(),
            reason: "booked by mistake".into(),
        })
        .unwrap();
    assert_eq!(voided.status, "void");
    assert_eq!(voided.void_reason.as_deref(), Some("booked by mistake"));
}

#[test]
fn attachments_go_in_as_bytes_and_come_back_only_to_those_who_may_read_them() {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut f = with_admin();
    add_staff(&mut f);
    let patient = f.shell.add_patient(form("Ann", "Jones")).unwrap().id;
    sign_in(&mut f, "rita", RECEPTION_PASS).unwrap();
    let content = b"%PDF-1.4 scanned letter ATTACH-MARKER".to_vec();
    let added = f
        .shell
        .add_attachment(NewAttachment {
            patient_id: patient.clone(),
            file_name: "letter.pdf".into(),
            content_base64: b64.encode(&content),
        })
        .unwrap();
    assert_eq!(added.media_type, "application/pdf");
    assert_eq!(added.size, content.len() as i64);
    let garbled = f
        .shell
        .add_attachment(NewAttachment {
            patient_id: patient.clone(),
            file_name: "x.png".into(),
            content_base64: "not base64!".into(),
        })
        .err()
        .unwrap();
    assert_eq!(garbled.kind, ErrorKind::InvalidInput);
    // Reception files letters but does not read them.
    let denied = f
        .shell
        .read_attachment(AttachmentRef {
            id: added.id.clone(),
        })
        .err()
        .unwrap();
    assert_eq!(denied.kind, ErrorKind::PermissionDenied);

    sign_in(&mut f, "sam", PRACTITIONER_PASS).unwrap();
    let list = f
        .shell
        .patient_attachments(PatientRef { id: patient })
        .unwrap();
    assert_eq!(list.len(), 1);
    let shown = f
        .shell
        .read_attachment(AttachmentRef {
            id: added.id.clone(),
        })
        .unwrap();
    assert_eq!(shown.as_slice(), content.as_slice());
}

#[test]
fn audit_filters_verification_and_alerts_for_administrators_only() {
    let mut f = with_admin();
    add_staff(&mut f);
    let patient = f.shell.add_patient(form("Ann", "Jones")).unwrap().id;
    f.shell
        .show_patient(PatientRef {
            id: patient.clone(),
        })
        .unwrap();
    let q = |patient_id: Option<String>, action: Option<&str>| AuditQuery {
        user: None,
        action: action.map(str::to_owned),
        patient_id,
        outcome: None,
        since: None,
        until: None,
        before_seq: None,
        limit: None,
    };
    let rows = f.shell.audit_list(q(Some(patient.clone()), None)).unwrap();
    let actions: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
    assert!(
        actions.contains(&"patient.create") && actions.contains(&"patient.view"),
        "{actions:?}"
    );
    assert!(rows
        .iter()
        .all(|r| !r.details.contains("Ann") && !r.details.contains("Jones")));
    let views = f.shell.audit_list(q(None, Some("patient."))).unwrap();
    assert!(views.iter().all(|r| r.action.starts_with("patient.")));
    let bad = f
        .shell
        .audit_list(AuditQuery {
            since: Some("last week".into()),
            ..q(None, None)
        })
        .err()
        .unwrap();
    assert_eq!(bad.kind, ErrorKind::InvalidInput);
    assert!(bad.message.starts_with("since:"), "{}", bad.message);

    let out = tempfile::tempdir().unwrap();
    let csv_path = out.path().join("trail.csv").display().to_string();
    let written = f
        .shell
        .export_audit_csv(AuditCsv {
            query: q(Some(patient.clone()), None),
            path: csv_path.clone(),
        })
        .unwrap();
    let csv = std::fs::read_to_string(&written).unwrap();
    assert!(
        csv.contains("patient.create") && csv.contains("patient.view"),
        "{csv}"
    );
    assert!(!csv.contains("Jones"), "{csv}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&written).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let again = f
        .shell
        .export_audit_csv(AuditCsv {
            query: q(None, None),
            path: csv_path,
        })
        .err()
        .unwrap();
    assert_eq!(again.kind, ErrorKind::AlreadyExists);
    let relative = f
        .shell
        .export_audit_csv(AuditCsv {
            query: q(None, None),
            path: "trail.csv".into(),
        })
        .err()
        .unwrap();
    assert_eq!(relative.kind, ErrorKind::InvalidInput);

    let report = f.shell.verify_audit().unwrap();
    assert!(report.intact, "{:?}", report.problem);
    assert!(report.entries_checked > 5);
    // An intact trail has nothing to anchor anew (a rolled-back one is tested in the core).
    let nothing = f.shell.reanchor_audit().err().unwrap();
    assert_eq!(nothing.kind, ErrorKind::InvalidInput);
    assert!(
        nothing.message.contains("nothing to anchor anew"),
        "{}",
        nothing.message
    );

    // Adding staff is a role change: an alert the administrator acknowledges.
    let alerts = f
        .shell
        .audit_alerts(AlertsQuery {
            include_acknowledged: false,
        })
        .unwrap();
    assert!(!alerts.is_empty());
    f.shell
        .acknowledge_alert(AlertRef { id: alerts[0].id })
        .unwrap();
    let open = f
        .shell
        .audit_alerts(AlertsQuery {
            include_acknowledged: false,
        })
        .unwrap();
    assert_eq!(open.len(), alerts.len() - 1);
    let all = f
        .shell
        .audit_alerts(AlertsQuery {
            include_acknowledged: true,
        })
        .unwrap();
    assert!(all
        .iter()
        .any(|a| a.acknowledged_by.as_deref() == Some("admin")));

    sign_in(&mut f, "rita", RECEPTION_PASS).unwrap();
    for err in [
        f.shell.audit_list(q(None, None)).err(),
        f.shell.verify_audit().err(),
        f.shell.reanchor_audit().err(),
        f.shell
            .audit_alerts(AlertsQuery {
                include_acknowledged: true,
            })
            .err(),
        f.shell
            .export_audit_csv(AuditCsv {
                query: q(None, None),
                path: out.path().join("rita.csv").display().to_string(),
            })
            .err(),
    ] {
        assert_eq!(err.unwrap().kind, ErrorKind::PermissionDenied);
    }
    assert!(!out.path().join("rita.csv").exists());
}

#[test]
fn backup_export_reports_progress_can_be_cancelled_and_verifies() {
    let mut f = with_admin();
    add_staff(&mut f);
    f.shell.add_patient(form("Ann", "Jones")).unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let path = |name: &str| out_dir.path().join(name).display().to_string();
    let req = |p: String| ExportBackup {
        path: p,
        passphrase: Some(secret("a long backup passphrase for tests")),
    };

    let relative = f
        .shell
        .export_backup(
            ExportBackup {
                path: "backup.cvb".into(),
                passphrase: None,
            },
            &mut |_, _| true,
        )
        .err()
        .unwrap();
    assert_eq!(relative.kind, ErrorKind::InvalidInput);

    // Cancelled on the first progress report: refused, and nothing is left behind.
    let mut calls = 0;
    let cancelled = f
        .shell
        .export_backup(req(path("cancelled.cvb")), &mut |_, _| {
            calls += 1;
            false
        })
        .err()
        .unwrap();
    assert!(calls >= 1);
    assert!(
        cancelled.message.contains("cancelled"),
        "{}",
        cancelled.message
    );
    assert!(!out_dir.path().join("cancelled.cvb").exists());

    let mut seen = Vec::new();
    let report = f
        .shell
        .export_backup(req(path("good.cvb")), &mut |d, t| {
            seen.push((d, t));
            true
        })
        .unwrap();
    assert!(report.with_passphrase);
    assert_eq!(report.patients, 1);
    assert!(!seen.is_empty());
    assert!(
        seen.windows(2).all(|w| w[0].0 <= w[1].0),
        "progress went backwards"
    );
    let again = f
        .shell
        .export_backup(req(path("good.cvb")), &mut |_, _| true)
        .err()
        .unwrap();
    assert_ne!(again.kind, ErrorKind::Internal);

    let check = f
        .shell
        .verify_backup(
            VerifyBackup {
                path: path("good.cvb"),
                restore_to: None,
                passphrase: Some(secret("a long backup passphrase for tests")),
                recovery_key: None,
            },
            &mut |_, _| true,
        )
        .unwrap();
    assert_eq!(check.backup_id, report.backup_id);
    let restored_to = out_dir.path().join("restored");
    let restored = f
        .shell
        .verify_backup(
            VerifyBackup {
                path: path("good.cvb"),
                restore_to: Some(restored_to.display().to_string()),
                passphrase: Some(secret("a long backup passphrase for tests")),
                recovery_key: None,
            },
            &mut |_, _| true,
        )
        .unwrap();
    assert_eq!(restored.patients, 1);
    assert!(restored_to.join("vault.keys").exists());
    let again = f
        .shell
        .verify_backup(
            VerifyBackup {
                path: path("good.cvb"),
                restore_to: Some(restored_to.display().to_string()),
                passphrase: Some(secret("a long backup passphrase for tests")),
                recovery_key: None,
            },
            &mut |_, _| true,
        )
        .err()
        .unwrap();
    assert_ne!(again.kind, ErrorKind::Internal);
    assert!(check.audit_intact);
    assert_eq!(check.trail_holds_backup, Some(true));
    assert_eq!(restored.trail_holds_backup, None);
    assert_eq!(check.patients, 1);
    let wrong = f
        .shell
        .verify_backup(
            VerifyBackup {
                path: path("good.cvb"),
                restore_to: None,
                passphrase: Some(secret("not the backup passphrase at all")),
                recovery_key: None,
            },
            &mut |_, _| true,
        )
        .err()
        .unwrap();
    assert_ne!(wrong.kind, ErrorKind::Internal);

    sign_in(&mut f, "rita", RECEPTION_PASS).unwrap();
    let denied = f
        .shell
        .export_backup(req(path("rita.cvb")), &mut |_, _| true)
        .err()
        .unwrap();
    assert_eq!(denied.kind, ErrorKind::PermissionDenied);
    assert!(!out_dir.path().join("rita.cvb").exists());
}

#[test]
fn consents_are_recorded_listed_and_withdrawn_with_the_cores_rules() {
    let mut f = with_admin();
    add_staff(&mut f);
    let patient = f.shell.add_patient(form("Ann", "Jones")).unwrap().id;
    sign_in(&mut f, "rita", RECEPTION_PASS).unwrap();
    let options = f.shell.consent_options().unwrap();
    assert!(options.kinds.iter().any(|k| k.name == "processing"));
    assert!(options.bases.iter().any(|b| b.name == "gdpr-9.2.h"));
    let req = |kind: &str, basis: Option<&str>| NewConsentRequest {
        patient_id: patient.clone(),
        kind: kind.into(),
        basis: basis.map(str::to_owned),
        note: None,
        given_on: Some(String::new()),
    };
    let no_basis = f
        .shell
        .record_consent(req("processing", None))
        .err()
        .unwrap();
    assert_eq!(no_basis.kind, ErrorKind::InvalidInput);
    let given = f
        .shell
        .record_consent(req("processing", Some("gdpr-9.2.h")))
        .unwrap();
    f.shell.record_consent(req("email", None)).unwrap();
    let listed = f
        .shell
        .patient_consents(PatientRef {
            id: patient.clone(),
        })
        .unwrap();
    assert_eq!(listed.len(), 2);
    let withdrawn = f
        .shell
        .withdraw_consent(WithdrawConsent {
            id: given.id.clone(),
            on: None,
        })
        .unwrap();
    assert!(withdrawn.withdrawn_on.is_some());
    let twice = f
        .shell
        .withdraw_consent(WithdrawConsent {
            id: given.id,
            on: None,
        })
        .err()
        .unwrap();
    assert_ne!(twice.kind, ErrorKind::Internal);
}

#[test]
fn outstanding_list_and_revenue_report_follow_the_core_permissions() {
    let mut f = with_admin();
    add_staff(&mut f);
    let patient = f.shell.add_patient(form("Ann", "Jones")).unwrap().id;
    sign_in(&mut f, "rita", RECEPTION_PASS).unwrap();
    let appt = f
        .shell
        .book_appointment(BookRequest {
            patient_id: patient,
            practitioner: "sam".into(),
            appointment_type: "Follow-up".into(),
            start_local: "2026-09-21T10:00".into(),
            weekly_occurrences: None,
            allow_override: false,
        })
        .unwrap()
        .remove(0);
    let inv = f
        .shell
        .invoice_appointment(AppointmentRef {
            appointment_id: appt.id,
        })
        .unwrap();
    let out = f.shell.outstanding_invoices().unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].id, inv.id);
    // Reception bills but does not run financial reports.
    let denied = f
        .shell
        .revenue_report(RevenueRequest {
            from: "2026-09-01".into(),
            to: "2026-09-30".into(),
        })
        .err()
        .unwrap();
    assert_eq!(denied.kind, ErrorKind::PermissionDenied);

    sign_in(&mut f, "admin", ADMIN_PASS).unwrap();
    let rows = f
        .shell
        .revenue_report(RevenueRequest {
            from: "2026-09-01".into(),
            to: "2026-09-30".into(),
        })
        .unwrap();
    let total = rows.iter().find(|r| r.group == "total").unwrap();
    assert_eq!((total.invoices, total.total_minor), (1, 7500));
    assert!(rows
        .iter()
        .any(|r| r.group == "practitioner" && r.key.contains("sam")));
    let backwards = f
        .shell
        .revenue_report(RevenueRequest {
            from: "2026-09-30".into(),
            to: "2026-09-01".into(),
        })
        .err()
        .unwrap();
    assert_eq!(backwards.kind, ErrorKind::InvalidInput);
}

/// Opens a second core session on the fixture's vault (as the CLI would beside the app).
fn core_session(f: &Fixture, user: &str, pass: &str) -> clinvault_core::Session {
    clinvault_core::Session::sign_in_with(
        &clinvault_core::VaultDir::new(f._tmp.path().join("vault")),
        user,
        &secret(pass),
        None,
        clinvault_core::SessionConfig {
            device: "test".into(),
            clock: Arc::new(f.clock.clone()),
        },
    )
    .unwrap()
}

#[test]
fn bookings_and_cancellations_in_the_app_notify_the_practitioner_as_the_cli_does() {
    use clinvault_core::booking_mail::{SmtpSecurity, SmtpSettings};
    let mut f = with_admin();
    add_staff(&mut f);
    // A mail server on this computer where nothing listens: each notification fails at once,
    // and the core records the attempt with its outcome.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    {
        let mut admin = core_session(&f, "admin", ADMIN_PASS);
        admin
            .set_smtp(&SmtpSettings {
                host: "127.0.0.1".into(),
                port,
                security: SmtpSecurity::None,
                from: "clinic@example.org".into(),
                username: None,
            })
            .unwrap();
        admin
            .set_notification_address("sam", Some("sam@example.org"))
            .unwrap();
    }
    let patient = f.shell.add_patient(form("Ann", "Jones")).unwrap().id;
    let appt = f
        .shell
        .book_appointment(BookRequest {
            patient_id: patient,
            practitioner: "sam".into(),
            appointment_type: "Follow-up".into(),
            start_local: "2026-09-22T09:00".into(),
            weekly_occurrences: None,
            allow_override: false,
        })
        .expect("the booking stands when the email fails")
        .remove(0);
    f.shell
        .set_appointment_status(StatusRequest {
            id: appt.id.clone(),
            status: "cancelled".into(),
            reason: Some("patient unwell".into()),
        })
        .expect("the cancellation stands when the email fails");

    let mut admin = core_session(&f, "admin", ADMIN_PASS);
    let entries = admin
        .audit_list(&clinvault_core::audit_review::AuditFilter {
            action: Some("booking.notify".into()),
            ..Default::default()
        })
        .unwrap();
    let mut changes: Vec<String> = entries
        .iter()
        .filter(|e| e.outcome == "failed")
        .map(|e| e.details["change"].as_str().unwrap_or_default().to_owned())
        .collect();
    changes.sort();
    assert_eq!(changes, ["cancelled", "new"], "{entries:?}");
}

/// Invoice drafts, invoice PDFs and attachment files (`documents.rs`).
mod documents;
// The sync commands (administrator's Backup and sync screen).
#[path = "sync_tests.rs"]
mod sync;

#[test]
fn time_off_over_bookings_is_refused_with_the_count_until_recorded_anyway() {
    let mut f = with_admin();
    add_staff(&mut f);
    let patient = f.shell.add_patient(form("Ann", "Jones")).unwrap().id;
    f.shell
        .book_appointment(BookRequest {
            patient_id: patient,
            practitioner: "sam".into(),
            appointment_type: "Follow-up".into(),
            start_local: "2026-09-23T10:00".into(),
            weekly_occurrences: None,
            allow_override: false,
        })
        .unwrap();
    let off = |allow_booked| NewTimeOff {
        practitioner: "sam".into(),
        from_local: "2026-09-23T08:00".into(),
        to_local: "2026-09-23T18:00".into(),
        reason: None,
        allow_booked,
    };
    let refused = f.shell.add_time_off(off(false)).err().unwrap();
    assert_eq!(refused.kind, ErrorKind::Conflict);
    assert!(
        refused
            .message
            .contains("1 appointment is still booked with sam in that time"),
        "{}",
        refused.message
    );
    let recorded = f.shell.add_time_off(off(true)).unwrap();
    assert_eq!(recorded.booked_inside, 1);
}

/// The property the backup's Cancel relies on: commands waiting for the shell (held by a long
/// export) do not take the async runtime's workers, so a command that needs no lock is still
/// answered. Tauri's runtime is tokio's multi-threaded one with a worker per core; two here.
#[test]
fn commands_waiting_for_the_shell_leave_the_runtime_free() {
    use crate::commands::{with, AppState};
    let state: &'static AppState = Box::leak(Box::new(std::sync::Mutex::new(Shell::new(
        crate::host::DesktopHost,
    ))));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let held = state.lock().unwrap();
    let waiting: Vec<_> = (0..4)
        .map(|_| rt.spawn(async move { with(state, |_| Ok(())) }))
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(200));
    // Waited for on a plain channel: a stalled runtime would not drive its own timers.
    let (tx, rx) = std::sync::mpsc::channel();
    rt.spawn(async move { tx.send("answered") });
    assert_eq!(
        rx.recv_timeout(std::time::Duration::from_secs(5)),
        Ok("answered"),
        "a command that needs no lock waited behind the shell's lock"
    );
    drop(held);
    for w in waiting {
        rt.block_on(w).unwrap().unwrap();
    }
}
