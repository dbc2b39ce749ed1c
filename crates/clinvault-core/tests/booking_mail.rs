//! Booking notification emails through a real SMTP server (Python's aiosmtpd) started on
//! 127.0.0.1 by the test, with the SMTP password in a real OS keyring (kernel keyutils, in a
//! private session keyring run as a child of this test binary).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup failures

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use clinvault_core::appointments::Booking;
use clinvault_core::booking_mail::{BookingChange, NotifyOutcome, SmtpSecurity, SmtpSettings};
use clinvault_core::patients::PatientFields;
use clinvault_core::{ErrorKind, Session, VaultDir};
use support::{plaintext, secret, ADMIN_PASS, USER_PASS};

const SERVER: &str = r#"
import sys, json
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
out, user, pw = sys.argv[1], sys.argv[2], sys.argv[3]
class Handler:
    async def handle_DATA(self, server, session, envelope):
        with open(out, "a") as f:
            f.write(json.dumps({"from": envelope.mail_from, "to": envelope.rcpt_tos,
                                "auth": bool(session.authenticated),
                                "data": envelope.content.decode("utf-8", "replace")}) + "\n")
        return "250 OK"
def check(server, session, envelope, mechanism, data):
    return AuthResult(success=(data.login == user.encode() and data.password == pw.encode()))
need = user != "-"
c = Controller(Handler(), hostname="127.0.0.1", port=0 if False else int(sys.argv[4]),
               authenticator=check if need else None, auth_required=need, auth_require_tls=False)
c.start()
print("ready", flush=True)
sys.stdin.read()
c.stop()
"#;

struct SmtpServer {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl SmtpServer {
    fn start(dir: &Path, user: Option<(&str, &str)>) -> SmtpServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join(format!("smtp-{port}.jsonl"));
        let (u, p) = user.unwrap_or(("-", "-"));
        let mut child = Command::new("python3")
            .args(["-c", SERVER])
            .arg(&log)
            .args([u, p, &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 with aiosmtpd (scripts/test.sh installs it)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the SMTP server did not start");
        SmtpServer { child, port, log }
    }

    fn messages(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.flush();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sign_in(dir: &VaultDir, user: &str) -> Session {
    support::sign_in(
        dir,
        user,
        if user == "admin" {
            ADMIN_PASS
        } else {
            USER_PASS
        },
    )
}

/// A vault with Sam (practitioner), a patient and one booking; returns the appointment id.
fn clinic(dir: &VaultDir) -> String {
    support::new_vault(dir);
    let mut a = sign_in(dir, "admin");
    a.add_user("sam", None, "practitioner", &secret(USER_PASS))
        .unwrap();
    a.add_user("pat", None, "practitioner", &secret(USER_PASS))
        .unwrap();
    for p in ["sam", "pat"] {
        a.add_practitioner(p).unwrap();
        a.set_working_hours(p, "Mon", "09:00-17:00").unwrap();
    }
    a.add_appointment_type("Consult", 30, "80", None).unwrap();
    let patient = a
        .add_patient(PatientFields {
            first_name: Some("Ann".into()),
            last_name: Some("Jones".into()),
            ..Default::default()
        })
        .unwrap()
        .id;
    a.book_appointment(&Booking {
        patient_id: &patient,
        practitioner: "sam",
        appointment_type: "Consult",
        start_local: "2026-03-02T10:00",
        weekly_occurrences: 1,
        allow_override: false,
    })
    .unwrap()[0]
        .id
        .clone()
}

fn settings(port: u16, security: SmtpSecurity, username: Option<&str>) -> SmtpSettings {
    SmtpSettings {
        host: "127.0.0.1".into(),
        port,
        security,
        from: "clinic@example.org".into(),
        username: username.map(str::to_owned),
    }
}

#[test]
fn notifications_reach_a_real_smtp_server_without_patient_names_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = VaultDir::new(tmp.path().join("v"));
    let appt = clinic(&dir);
    let server = SmtpServer::start(tmp.path(), None);
    let mut admin = sign_in(&dir, "admin");

    // Nothing set up yet: nothing sent, no error.
    assert_eq!(
        admin.notify_booking(&appt, BookingChange::New).unwrap(),
        NotifyOutcome::NotConfigured
    );
    let mut remote = settings(server.port, SmtpSecurity::None, None);
    remote.host = "smtp.example.org".into();
    assert_eq!(
        admin.set_smtp(&remote).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    admin
        .set_smtp(&settings(server.port, SmtpSecurity::None, None))
        .unwrap();
    assert_eq!(
        admin.smtp_settings().unwrap().unwrap().from,
        "clinic@example.org"
    );
    // The clinic's mail account is for administrators to see.
    assert_eq!(
        sign_in(&dir, "sam").smtp_settings().unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        admin.notify_booking(&appt, BookingChange::New).unwrap(),
        NotifyOutcome::NotConfigured,
        "Sam has no notification address yet"
    );
    assert_eq!(
        admin
            .set_notification_address("sam", Some("not-an-address"))
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    admin
        .set_notification_address("sam", Some("sam@example.org"))
        .unwrap();
    assert_eq!(
        admin.notify_booking(&appt, BookingChange::New).unwrap(),
        NotifyOutcome::Sent {
            to: "sam@example.org".into()
        }
    );
    admin.set_privacy_setting("emails", "full").unwrap();
    admin
        .notify_booking(&appt, BookingChange::Cancelled)
        .unwrap();
    let m = server.messages();
    assert_eq!(m.len(), 2);
    assert_eq!(m[0]["to"][0], "sam@example.org");
    assert_eq!(m[0]["from"], "clinic@example.org");
    let first = m[0]["data"].as_str().unwrap();
    assert!(
        first.contains("Subject: New booking: Mon 2 Mar 2026 10:00"),
        "{first}"
    );
    assert!(first.contains("Patient: Patient"), "{first}");
    assert!(
        !first.contains("Ann") && !first.contains("Jones"),
        "{first}"
    );
    let second = m[1]["data"].as_str().unwrap();
    assert!(second.contains("Subject: Cancelled:") && second.contains("Patient: Ann Jones"));

    // STARTTLS is required, not opportunistic: a server that cannot do it gets nothing.
    admin
        .set_smtp(&SmtpSettings {
            host: "localhost".into(),
            ..settings(server.port, SmtpSecurity::StartTls, None)
        })
        .unwrap();
    let e = admin.notify_booking(&appt, BookingChange::New).unwrap_err();
    assert!(e.to_string().contains("not sent"), "{e}");
    assert_eq!(server.messages().len(), 2);

    // A server that is down: a clear error, recorded as failed.
    drop(server);
    admin
        .set_smtp(&settings(1, SmtpSecurity::None, None))
        .unwrap();
    assert!(admin.notify_booking(&appt, BookingChange::New).is_err());
    let failed = admin
        .audit_list(&clinvault_core::audit_review::AuditFilter {
            action: Some("booking.notify".into()),
            outcome: Some("failed".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(failed.len(), 2);
    // Practitioners may not change where mail goes.
    drop(admin);
    assert_eq!(
        sign_in(&dir, "sam")
            .set_notification_address("sam", Some("x@example.org"))
            .unwrap_err()
            .kind(),
        ErrorKind::PermissionDenied
    );
}

#[test]
fn the_smtp_password_comes_from_the_os_keyring_and_never_reaches_the_vault() {
    let out = Command::new("keyctl")
        .args(["session", "-"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_smtp_password_in_keyring",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CLINVAULT_KEYRING", "keyutils")
        .output()
        .expect("keyctl is required: apt-get install -y keyutils");
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
#[ignore = "run by the_smtp_password_comes_from_the_os_keyring_and_never_reaches_the_vault"]
fn child_smtp_password_in_keyring() {
    const PASSWORD: &str = "Smtp-Secret-Marker-771";
    let tmp = tempfile::tempdir().unwrap();
    let dir = VaultDir::new(tmp.path().join("v"));
    let appt = clinic(&dir);
    let server = SmtpServer::start(tmp.path(), Some(("clinic", PASSWORD)));
    let mut admin = sign_in(&dir, "admin");
    admin
        .set_smtp(&settings(server.port, SmtpSecurity::None, Some("clinic")))
        .unwrap();
    admin
        .set_notification_address("sam", Some("sam@example.org"))
        .unwrap();
    let e = admin.notify_booking(&appt, BookingChange::New).unwrap_err();
    assert!(e.to_string().contains("keyring"), "no password yet: {e}");
    admin.set_smtp_password(&secret("wrong password")).unwrap();
    assert!(
        admin.notify_booking(&appt, BookingChange::New).is_err(),
        "refused by the server"
    );
    admin.set_smtp_password(&secret(PASSWORD)).unwrap();
    admin.notify_booking(&appt, BookingChange::New).unwrap();
    let m = server.messages();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0]["auth"], true);

    let key = admin.export_db_key(&secret(ADMIN_PASS), None).unwrap();
    let db = std::fs::read(dir.db_file()).unwrap();
    let mut views = vec![plaintext::database(&db, key.as_str())];
    if let Ok(wal) = std::fs::read(dir.db_file().with_extension("db-wal")) {
        views.push(plaintext::wal(&wal, key.as_str()));
    }
    for entry in std::fs::read_dir(tmp.path().join("v")).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            views.push(std::fs::read(p).unwrap());
        }
    }
    for v in views {
        assert!(
            !plaintext::contains(&v, PASSWORD),
            "the SMTP password is in the vault"
        );
    }
}

/// The rule every shell follows: one email per booking request (a weekly series is one message
/// about its first appointment), none for arrivals, one for a cancellation.
#[test]
fn one_email_per_booking_request_and_per_cancellation_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = VaultDir::new(tmp.path().join("v"));
    let first_booking = clinic(&dir);
    let server = SmtpServer::start(tmp.path(), None);
    let mut admin = sign_in(&dir, "admin");
    admin
        .set_smtp(&settings(server.port, SmtpSecurity::None, None))
        .unwrap();
    admin
        .set_notification_address("sam", Some("sam@example.org"))
        .unwrap();
    let patient = admin.show_appointment(&first_booking).unwrap().patient_id;

    assert!(admin.notify_after_booking(&[]).is_none(), "nothing booked");
    let series = admin
        .book_appointment(&Booking {
            patient_id: &patient,
            practitioner: "sam",
            appointment_type: "Consult",
            start_local: "2026-03-09T11:00",
            weekly_occurrences: 3,
            allow_override: false,
        })
        .unwrap();
    assert_eq!(series.len(), 3);
    assert_eq!(
        admin.notify_after_booking(&series).unwrap().unwrap(),
        NotifyOutcome::Sent {
            to: "sam@example.org".into()
        }
    );
    let arrived = admin
        .set_appointment_status(&series[0].id, "arrived", None)
        .unwrap();
    assert!(admin.notify_after_status_change(&arrived).is_none());
    let cancelled = admin
        .set_appointment_status(&series[1].id, "cancelled", Some("Zanzibar flu"))
        .unwrap();
    assert!(admin.notify_after_status_change(&cancelled).is_some());

    let m = server.messages();
    assert_eq!(m.len(), 2, "one for the series, one for the cancellation");
    let new = m[0]["data"].as_str().unwrap();
    assert!(
        new.contains("Subject: New booking: Mon 9 Mar 2026 11:00"),
        "{new}"
    );
    let gone = m[1]["data"].as_str().unwrap();
    assert!(
        gone.contains("Subject: Cancelled: Mon 16 Mar 2026 11:00"),
        "{gone}"
    );
    assert!(!gone.contains("Zanzibar"), "no reasons in email: {gone}");
}
