//! Every gated operation under every built-in role, against the permission table: allowed ones
//! succeed and leave their audit entries; refused ones fail with "permission denied", change
//! nothing but a single "denied" audit entry.

use sha2::{Digest, Sha256};

use super::{new_vault, secret, sign_in};
use crate::clock::ManualClock;
use crate::error::ErrorKind;
use crate::permissions::{BuiltinRole, Permission};
use crate::session::Session;
use crate::vault_dir::VaultDir;

const ADMIN_PASS: &str = "plum harbour velvet tractor";
const USER_PASS: &str = "quiet lantern orbit meadow";

type Op = fn(&mut Session, &str) -> crate::error::Result<()>;

/// (name, permission needed or None for any signed-in user, audit entries written on success,
/// the operation given a per-role suffix for fresh targets).
fn operations() -> Vec<(&'static str, Option<Permission>, i64, Op)> {
    vec![
        ("user.list", Some(Permission::UsersManage), 1, |s, _| {
            s.list_users().map(|_| ())
        }),
        ("user.add", Some(Permission::UsersManage), 1, |s, r| {
            s.add_user(
                &format!("new-{r}"),
                None,
                "receptionist",
                &secret(USER_PASS),
            )
            .map(|_| ())
        }),
        ("user.set_role", Some(Permission::UsersManage), 1, |s, r| {
            s.set_user_role(&format!("victim-{r}"), "biller")
        }),
        ("2fa.reset", Some(Permission::UsersManage), 1, |s, r| {
            s.reset_2fa(&format!("victim-{r}"))
        }),
        (
            "user.signin_history",
            Some(Permission::UsersManage),
            1,
            |s, _| s.signin_history(None, 10).map(|_| ()),
        ),
        ("role.create", Some(Permission::UsersManage), 1, |s, r| {
            s.create_role(&format!("scheduler-{r}"), &[Permission::AppointmentsManage])
                .map(|_| ())
        }),
        ("user.disable", Some(Permission::UsersManage), 2, |s, r| {
            s.disable_user(&format!("victim-{r}")).map(|_| ())
        }),
        ("user.enable", Some(Permission::UsersManage), 1, |s, r| {
            s.enable_user(&format!("victim-{r}"), &secret(USER_PASS))
        }),
        ("policy.set", Some(Permission::SettingsManage), 1, |s, _| {
            s.set_policy("idle-lock-minutes", "20").map(|_| ())
        }),
        ("key.rotate", Some(Permission::KeysManage), 1, |s, _| {
            s.rotate_keys().map(|_| ())
        }),
        (
            "key.export_db_key",
            Some(Permission::KeysManage),
            1,
            |s, _| {
                let pass = if s.user().username == "admin" {
                    ADMIN_PASS
                } else {
                    USER_PASS
                };
                s.export_db_key(&secret(pass), None).map(|_| ())
            },
        ),
        (
            "patient.create",
            Some(Permission::PatientWrite),
            1,
            |s, _| {
                s.add_patient(crate::patients::PatientFields {
                    first_name: Some("Ann".into()),
                    last_name: Some("Jones".into()),
                    ..Default::default()
                })
                .map(|_| ())
            },
        ),
        ("patient.view", Some(Permission::PatientRead), 1, |s, _| {
            s.show_patient(&seed_patient(s)).map(|_| ())
        }),
        (
            "patient.update",
            Some(Permission::PatientWrite),
            1,
            |s, _| {
                let id = seed_patient(s);
                s.update_patient(
                    &id,
                    crate::patients::PatientFields {
                        occupation: Some("Teacher".into()),
                        ..Default::default()
                    },
                )
                .map(|_| ())
            },
        ),
        (
            "patient.search",
            Some(Permission::PatientRead),
            1,
            |s, _| s.search_patients("seed", 5).map(|_| ()),
        ),
        ("patient.list", Some(Permission::PatientRead), 1, |s, _| {
            s.list_patients(false, 5).map(|_| ())
        }),
        (
            "appointment.book",
            Some(Permission::AppointmentsManage),
            1,
            |s, r| {
                let id = seed_patient(s);
                let day = 1 + BuiltinRole::ALL
                    .iter()
                    .position(|b| b.name() == r)
                    .unwrap_or(0);
                let start = format!("2030-01-0{day}T10:00");
                s.book_appointment(&crate::appointments::Booking {
                    patient_id: &id,
                    practitioner: "as-practitioner",
                    appointment_type: "Follow-up",
                    start_local: &start,
                    weekly_occurrences: 1,
                    allow_override: false,
                })
                .map(|_| ())
            },
        ),
        (
            "appointment.list",
            Some(Permission::AppointmentsRead),
            1,
            |s, _| s.day_appointments("2030-01-01", None).map(|_| ()),
        ),
        (
            "appointment.list",
            Some(Permission::AppointmentsRead),
            1,
            |s, _| s.patient_appointments(&seed_patient(s)).map(|_| ()),
        ),
        (
            "practitioner.time_off.list",
            Some(Permission::AppointmentsRead),
            1,
            |s, _| s.list_time_off("2030-01-01", 7, None).map(|_| ()),
        ),
        (
            "practitioner.time_off",
            Some(Permission::UsersManage),
            1,
            |s, _| {
                s.add_time_off(
                    "as-practitioner",
                    "2031-01-01T08:00",
                    "2031-01-01T09:00",
                    None,
                )
                .map(|_| ())
            },
        ),
        ("note.list", Some(Permission::NotesRead), 1, |s, _| {
            s.patient_notes(&seed_patient(s)).map(|_| ())
        }),
        ("invoice.list", Some(Permission::InvoicesRead), 1, |s, _| {
            s.patient_invoices(&seed_patient(s)).map(|_| ())
        }),
        (
            "practitioner.list",
            Some(Permission::AppointmentsRead),
            1,
            |s, _| s.list_practitioners().map(|_| ()),
        ),
        (
            "appointment_type.list",
            Some(Permission::AppointmentsRead),
            1,
            |s, _| s.list_appointment_types().map(|_| ()),
        ),
        (
            "note_template.list",
            Some(Permission::NotesWrite),
            1,
            |s, _| s.list_note_templates().map(|_| ()),
        ),
        ("note.create", Some(Permission::NotesWrite), 1, |s, _| {
            s.add_note(&seed_patient(s), None, "Seen today.")
                .map(|_| ())
        }),
        ("note.view", Some(Permission::NotesRead), 1, |s, _| {
            s.show_note(&seed_id(s, "notes")).map(|_| ())
        }),
        ("invoice.view", Some(Permission::InvoicesRead), 1, |s, _| {
            s.show_invoice(&seed_id(s, "invoices")).map(|_| ())
        }),
        (
            "invoice.export_pdf",
            Some(Permission::InvoicesRead),
            1,
            |s, _| s.invoice_pdf(&seed_id(s, "invoices")).map(|_| ()),
        ),
        (
            "invoice.outstanding",
            Some(Permission::InvoicesRead),
            1,
            |s, _| s.outstanding_invoices().map(|_| ()),
        ),
        (
            "report.revenue",
            Some(Permission::FinancialReports),
            1,
            |s, _| s.revenue_report("2000-01-01", "2100-01-01").map(|_| ()),
        ),
        (
            "attachment.add",
            Some(Permission::AttachmentsWrite),
            1,
            |s, _| {
                s.add_attachment(&seed_patient(s), "letter.txt", &mut &b"Dear colleague"[..])
                    .map(|_| ())
            },
        ),
        (
            "attachment.view",
            Some(Permission::AttachmentsRead),
            1,
            |s, _| {
                s.read_attachment(&seed_id(s, "attachments"), &mut std::io::sink())
                    .map(|_| ())
            },
        ),
        (
            "patient.history",
            Some(Permission::PatientRead),
            1,
            |s, _| s.patient_history(&seed_patient(s)).map(|_| ()),
        ),
        (
            "consent.record",
            Some(Permission::PatientWrite),
            1,
            |s, _| {
                s.record_consent(
                    &seed_patient(s),
                    &crate::consents::NewConsent {
                        kind: "email",
                        basis: None,
                        note: None,
                        given_on: None,
                    },
                )
                .map(|_| ())
            },
        ),
        ("consent.list", Some(Permission::PatientRead), 1, |s, _| {
            s.list_consents(&seed_patient(s)).map(|_| ())
        }),
        ("patient.hold", Some(Permission::RecordsErase), 1, |s, _| {
            s.place_legal_hold(&seed_patient(s), "matrix").map(|_| ())
        }),
        (
            "patient.export",
            Some(Permission::PatientExport),
            1,
            |s, r| {
                let out = s.dir().file(&format!("export-{r}"));
                s.export_patient(&seed_patient(s), &out).map(|_| ())
            },
        ),
        (
            "retention.plan",
            Some(Permission::RecordsErase),
            1,
            |s, _| s.retention_plan().map(|_| ()),
        ),
        (
            "privacy.set",
            Some(Permission::SettingsManage),
            1,
            |s, _| s.set_privacy_setting("calendar", "initials").map(|_| ()),
        ),
        (
            "calendar.export",
            Some(Permission::AppointmentsRead),
            1,
            |s, _| {
                s.calendar_ics("as-practitioner", "2030-01-01", "2030-01-31")
                    .map(|_| ())
            },
        ),
        ("role.list", None, 1, |s, _| s.list_roles().map(|_| ())),
        ("policy.show", None, 1, |s, _| s.show_policy().map(|_| ())),
        (
            "sync.target.set",
            Some(Permission::SyncManage),
            1,
            |s, _| {
                s.sync_set_target("file", r#"{"url":"file:///mnt/nas/cv"}"#)
                    .map(|_| ())
            },
        ),
        (
            "sync.target.read",
            Some(Permission::SyncManage),
            0,
            |s, _| s.sync_target().map(|_| ()),
        ),
        (
            "sync.repository.create",
            Some(Permission::SyncManage),
            1,
            |s, r| {
                let id = format!("repo-{r}");
                s.sync_store_repo_key(&id, &[7u8; 32])?;
                let key = s.sync_repo_key(&id)?.expect("stored key");
                assert_eq!(&key[..], &[7u8; 32]);
                Ok(())
            },
        ),
        (
            "sync.schedule.set",
            Some(Permission::SyncManage),
            1,
            |s, _| s.set_sync_schedule(Some(6)).map(|_| ()),
        ),
        (
            "sync.schedule.read",
            Some(Permission::SyncManage),
            0,
            |s, _| s.sync_schedule().map(|_| ()),
        ),
        (
            "sync.status.read",
            Some(Permission::SyncManage),
            0,
            |s, _| s.sync_status().map(|_| ()),
        ),
        ("audit.list", Some(Permission::AuditRead), 1, |s, _| {
            s.audit_list(&crate::audit_review::AuditFilter {
                limit: 5,
                ..Default::default()
            })
            .map(|_| ())
        }),
        ("audit.export", Some(Permission::AuditRead), 1, |s, _| {
            s.audit_export(
                &crate::audit_review::AuditFilter {
                    limit: 5,
                    ..Default::default()
                },
                crate::audit_review::ExportFormat::Csv,
            )
            .map(|_| ())
        }),
        ("audit.verify", Some(Permission::AuditRead), 1, |s, _| {
            s.verify_audit().map(|_| ())
        }),
        ("audit.alerts", Some(Permission::AuditRead), 1, |s, _| {
            s.audit_alerts(true).map(|_| ())
        }),
        (
            "backup.export",
            Some(Permission::BackupManage),
            1,
            |s, r| {
                let out = s
                    .dir()
                    .root()
                    .with_file_name(format!("matrix-{r}.cvbackup"));
                s.export_backup(&out, None, &mut |_, _| true).map(|_| ())
            },
        ),
        (
            "appointment.book",
            Some(Permission::AppointmentsOverride),
            1,
            |s, r| {
                let patient = seed_patient(s);
                // Sunday 20:00 is outside every working hour: only an override books it.
                let start = format!("2030-03-{:02}T20:00", 3 + 7 * (r.len() % 3));
                s.book_appointment(&crate::appointments::Booking {
                    patient_id: &patient,
                    practitioner: "as-practitioner",
                    appointment_type: "Follow-up",
                    start_local: &start,
                    weekly_occurrences: 1,
                    allow_override: true,
                })
                .map(|_| ())
            },
        ),
    ]
}

/// The id of the patient the administrator created for the matrix (read without the gate, so
/// looking it up adds no audit entry of its own).
fn seed_patient(s: &Session) -> String {
    s.vault()
        .unwrap()
        .conn()
        .query_row(
            "SELECT id FROM patients WHERE first_name = 'Seed'",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

/// The id of the first row the set-up created in `table` (read without the gate).
fn seed_id(s: &Session, table: &str) -> String {
    s.vault()
        .unwrap()
        .conn()
        .query_row(
            &format!("SELECT id FROM {table} ORDER BY rowid LIMIT 1"),
            [],
            |r| r.get(0),
        )
        .unwrap()
}

/// Every table but the audit trail (and its record lookup) and the sign-in history, plus the
/// key file and the names of the files in the vault folder.
fn snapshot(s: &Session) -> Vec<u8> {
    let conn = s.vault().unwrap().conn();
    let mut h = Sha256::new();
    let tables: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table'
               AND name NOT LIKE 'sqlite_%'
               AND name NOT IN ('audit_log', 'audit_targets', 'audit_targets_upto',
                                'signin_history')
             ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert!(tables.len() > 20, "{tables:?}");
    for table in &tables {
        h.update(format!("table {table}|").as_bytes());
        let mut st = conn
            .prepare(&format!("SELECT * FROM \"{table}\" ORDER BY 1"))
            .unwrap();
        let cols = st.column_count();
        let mut rows = st.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for i in 0..cols {
                let v: rusqlite::types::Value = row.get(i).unwrap();
                h.update(format!("{v:?}|").as_bytes());
            }
        }
    }
    h.update(std::fs::read(s.dir().key_file()).unwrap());
    let mut files: Vec<String> = std::fs::read_dir(s.dir().root())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    h.update(files.join("|").as_bytes());
    h.finalize().to_vec()
}

fn audit_rows(s: &Session) -> Vec<(String, String)> {
    let conn = s.vault().unwrap().conn();
    let mut st = conn
        .prepare("SELECT action, outcome FROM audit_log ORDER BY seq")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap()
}

#[test]
fn every_operation_under_every_builtin_role_matches_the_permission_table() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = VaultDir::new(tmp.path().join("v"));
    new_vault(&dir, ADMIN_PASS);
    let clock = ManualClock::at(1_800_000_000);
    {
        let mut admin = sign_in(&dir, &clock, "admin", ADMIN_PASS);
        admin
            .add_patient(crate::patients::PatientFields {
                first_name: Some("Seed".into()),
                last_name: Some("Patient".into()),
                ..Default::default()
            })
            .unwrap();
        for role in BuiltinRole::ALL {
            let r = role.name();
            if *role != BuiltinRole::Administrator {
                admin
                    .add_user(&format!("as-{r}"), None, r, &secret(USER_PASS))
                    .unwrap();
            }
            admin
                .add_user(
                    &format!("victim-{r}"),
                    None,
                    "receptionist",
                    &secret(USER_PASS),
                )
                .unwrap();
        }
        admin.add_practitioner("as-practitioner").unwrap();
        for day in ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"] {
            admin
                .set_working_hours("as-practitioner", day, "08:00-18:00")
                .unwrap();
        }
        admin
            .add_appointment_type("Follow-up", 30, "75.00", None)
            .unwrap();
        // Administrators write notes too in small clinics; make the seed records.
        admin.add_practitioner("admin").unwrap();
        for day in ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"] {
            admin
                .set_working_hours("admin", day, "08:00-18:00")
                .unwrap();
        }
        let patient = seed_patient(&admin);
        admin.add_note(&patient, None, "Seed note.").unwrap();
        let appt = admin
            .book_appointment(&crate::appointments::Booking {
                patient_id: &patient,
                practitioner: "admin",
                appointment_type: "Follow-up",
                start_local: "2030-02-04T09:00",
                weekly_occurrences: 1,
                allow_override: false,
            })
            .unwrap();
        admin.invoice_appointment(&appt[0].id).unwrap();
        admin
            .add_attachment(&patient, "seed.txt", &mut &b"seed"[..])
            .unwrap();
    }
    let mut checked = 0;
    for role in BuiltinRole::ALL {
        let r = role.name();
        let (user, pass) = if *role == BuiltinRole::Administrator {
            ("admin".to_owned(), ADMIN_PASS)
        } else {
            (format!("as-{r}"), USER_PASS)
        };
        let allowed_set = role.permissions();
        for (name, need, entries, op) in operations() {
            // One session at a time: rotation needs the vault to itself.
            let mut s = sign_in(&dir, &clock, &user, pass);
            let before = snapshot(&s);
            let audit_before = audit_rows(&s);
            let result = op(&mut s, r);
            let audit_after = audit_rows(&s);
            let new_entries = &audit_after[audit_before.len()..];
            let allowed = need.is_none_or(|p| allowed_set.contains(&p));
            if allowed {
                assert!(
                    result.is_ok(),
                    "{r} {name}: {:?}",
                    result.err().map(|e| e.to_string())
                );
                assert_eq!(
                    new_entries.len() as i64,
                    entries,
                    "{r} {name}: {new_entries:?}"
                );
                assert!(
                    new_entries.iter().all(|(_, o)| o == "ok"),
                    "{r} {name}: {new_entries:?}"
                );
                assert!(
                    entries == 0 || new_entries.iter().any(|(a, _)| a == name),
                    "{r} {name}: recorded as {new_entries:?}"
                );
            } else {
                let err = result
                    .err()
                    .unwrap_or_else(|| panic!("{r} {name} should be denied"));
                assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{r} {name}: {err}");
                assert_eq!(
                    snapshot(&s),
                    before,
                    "{r} {name}: a denied operation changed data"
                );
                assert_eq!(
                    new_entries,
                    [(name.to_owned(), "denied".to_owned())],
                    "{r} {name}"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, BuiltinRole::ALL.len() * operations().len());
}
