//! Treatment notes, invoices and attachments against a real vault.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup failures

mod support;

use support::{secret, ADMIN_PASS, USER_PASS};

use std::io::{Read, Write};

use clinvault_core::appointments::Booking;
use clinvault_core::notes::TemplateSection;
use clinvault_core::patients::PatientFields;
use clinvault_core::{ErrorKind, Session, VaultDir};

fn sign_in(dir: &VaultDir, user: &str) -> Session {
    let pass = if user == "admin" {
        ADMIN_PASS
    } else {
        USER_PASS
    };
    support::sign_in(dir, user, pass)
}

/// Books one "Initial consult" with `practitioner` at `start_local` and returns its id.
fn book(s: &mut Session, patient: &str, practitioner: &str, start_local: &str) -> String {
    s.book_appointment(&Booking {
        patient_id: patient,
        practitioner,
        appointment_type: "Initial consult",
        start_local,
        weekly_occurrences: 1,
        allow_override: false,
    })
    .unwrap()[0]
        .id
        .clone()
}

/// How many versions the note's own practitioner sees.
fn versions_of(c: &Clinic, note: &str) -> usize {
    sign_in(&c.dir, "sam")
        .show_note(note)
        .unwrap()
        .versions
        .len()
}

struct Clinic {
    _tmp: tempfile::TempDir,
    dir: VaultDir,
    patient: String,
    appointment: String,
}

fn clinic() -> Clinic {
    let tmp = tempfile::tempdir().unwrap();
    let dir = VaultDir::new(tmp.path().join("v"));
    support::new_vault(&dir);
    let mut a = sign_in(&dir, "admin");
    for (u, r) in [
        ("sam", "practitioner"),
        ("pat", "practitioner"),
        ("rita", "receptionist"),
        ("bill", "biller"),
    ] {
        a.add_user(u, None, r, &secret(USER_PASS)).unwrap();
    }
    for p in ["sam", "pat"] {
        a.add_practitioner(p).unwrap();
        a.set_working_hours(p, "Mon", "09:00-17:00").unwrap();
    }
    a.add_appointment_type("Initial consult", 45, "95.00", Some("10"))
        .unwrap();
    a.add_note_template(
        "SOAP",
        &[
            TemplateSection {
                title: "Subjective".into(),
                kind: "text".into(),
                options: vec![],
            },
            TemplateSection {
                title: "Pain".into(),
                kind: "choice".into(),
                options: vec!["mild".into(), "severe".into()],
            },
        ],
    )
    .unwrap();
    drop(a);
    let mut r = sign_in(&dir, "rita");
    let patient = r
        .add_patient(PatientFields {
            first_name: Some("Ann".into()),
            last_name: Some("Jones".into()),
            ..Default::default()
        })
        .unwrap()
        .id;
    let appointment = book(&mut r, &patient, "sam", "2026-03-02T10:00");
    Clinic {
        _tmp: tmp,
        dir,
        patient,
        appointment,
    }
}

#[test]
fn a_note_goes_from_draft_to_final_and_is_then_only_amended() {
    let c = clinic();
    let mut sam = sign_in(&c.dir, "sam");
    let start = sam.template_text("SOAP").unwrap();
    assert!(start.contains("## Subjective") && start.contains("( ) severe"));
    let n = sam
        .add_note(
            &c.patient,
            Some(&c.appointment),
            &format!("{start}\nLower back pain."),
        )
        .unwrap();
    assert_eq!(n.status, "draft");
    sam.save_draft(&n.id, "## Subjective\nLower back pain after lifting.")
        .unwrap();
    drop(sam);

    // Another practitioner may read but not finalise or edit Sam's draft.
    let mut pat = sign_in(&c.dir, "pat");
    assert_eq!(pat.show_note(&n.id).unwrap().versions.len(), 1);
    assert_eq!(
        pat.finalise_note(&n.id).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        pat.save_draft(&n.id, "x").unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    drop(pat);

    let mut sam = sign_in(&c.dir, "sam");
    let f = sam.finalise_note(&n.id).unwrap();
    assert_eq!(f.status, "final");
    assert_eq!(
        sam.save_draft(&n.id, "changed").unwrap_err().kind(),
        ErrorKind::Conflict
    );
    assert!(sam
        .amend_note(&n.id, "x", " ")
        .unwrap_err()
        .to_string()
        .starts_with("reason:"));
    let a = sam
        .amend_note(
            &n.id,
            "## Subjective\nLower back pain after lifting a box.",
            "detail added at review",
        )
        .unwrap();
    let kinds: Vec<&str> = a.versions.iter().map(|v| v.kind.as_str()).collect();
    assert_eq!(kinds, ["final", "amendment"]);
    assert_eq!(
        a.versions[0].body,
        "## Subjective\nLower back pain after lifting."
    );
    assert_eq!(
        a.versions[1].reason.as_deref(),
        Some("detail added at review")
    );
    drop(sam);

    // The final version cannot be changed even by someone with the database key.
    let mut admin = sign_in(&c.dir, "admin");
    let key = admin.export_db_key(&secret(ADMIN_PASS), None).unwrap();
    drop(admin);
    let conn = rusqlite::Connection::open(c.dir.db_file()).unwrap();
    conn.execute_batch(&format!("PRAGMA key = \"x'{}'\";", key.as_str()))
        .unwrap();
    let e = conn
        .execute(
            "UPDATE note_versions SET body = 'forged' WHERE kind = 'final'",
            [],
        )
        .unwrap_err();
    assert!(e.to_string().contains("cannot be changed"), "{e}");

    // The receptionist never reads treatment notes; with the clinic option, only Sam does.
    let mut rita = sign_in(&c.dir, "rita");
    assert_eq!(
        rita.show_note(&n.id).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    drop(rita);
    // A role that may write notes but not read them cannot read one through an amendment.
    let mut admin = sign_in(&c.dir, "admin");
    admin
        .create_role(
            "scribe",
            &[clinvault_core::permissions::Permission::NotesWrite],
        )
        .unwrap();
    admin
        .add_user("sid", None, "scribe", &secret(USER_PASS))
        .unwrap();
    drop(admin);
    let mut sid = sign_in(&c.dir, "sid");
    let e = sid
        .amend_note(&n.id, "Appended without reading.", "addendum")
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    drop(sid);
    assert_eq!(versions_of(&c, &n.id), 2, "no version was added");
    // Pat has the app open, and reads Sam's note, when the clinic turns the option on from
    // another program: it applies to the session that is already open.
    let mut open_pat = sign_in(&c.dir, "pat");
    open_pat.show_note(&n.id).unwrap();
    let mut admin = sign_in(&c.dir, "admin");
    admin
        .set_policy("notes-restricted-to-treating", "on")
        .unwrap();
    drop(admin);
    assert_eq!(
        open_pat.show_note(&n.id).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    assert!(open_pat.patient_notes(&n.patient_id).unwrap().is_empty());
    drop(open_pat);
    assert_eq!(
        sign_in(&c.dir, "pat").show_note(&n.id).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    // Nor can Pat amend it, which would answer with every version.
    let mut pat = sign_in(&c.dir, "pat");
    assert_eq!(
        pat.amend_note(&n.id, "Appended by someone else.", "addendum")
            .unwrap_err()
            .kind(),
        ErrorKind::PermissionDenied
    );
    drop(pat);
    assert_eq!(versions_of(&c, &n.id), 2);
}

#[test]
fn invoices_are_numbered_without_gaps_paid_in_part_voided_and_reported() {
    let c = clinic();
    let mut r = sign_in(&c.dir, "rita");
    let inv = r.invoice_appointment(&c.appointment).unwrap();
    assert_eq!(inv.number, Some(1));
    assert_eq!(
        (inv.net_minor, inv.tax_minor, inv.total_minor),
        (9_500, 950, 10_450)
    );
    assert_eq!(
        r.invoice_appointment(&c.appointment).unwrap_err().kind(),
        ErrorKind::Conflict
    );
    // A failed creation does not use up a number.
    assert_eq!(
        r.invoice_appointment("no-such").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(r
        .record_payment(&inv.id, "-5", "cash", None)
        .unwrap_err()
        .to_string()
        .contains("negative"));
    assert!(r
        .record_payment(&inv.id, "200", "cash", None)
        .unwrap_err()
        .to_string()
        .contains("more than the balance"));
    assert!(r
        .record_payment(&inv.id, "10", "barter", None)
        .unwrap_err()
        .to_string()
        .starts_with("method:"));
    let part = r
        .record_payment(&inv.id, "50.00", "card", Some("2026-03-02"))
        .unwrap();
    assert_eq!(part.balance_minor, 5_450);
    assert_eq!(r.patient_balance(&c.patient).unwrap(), 5_450);
    assert_eq!(r.outstanding_invoices().unwrap().len(), 1);
    let full = r
        .record_payment(&inv.id, "54.50", "cash", Some("2026-03-03"))
        .unwrap();
    assert_eq!(full.balance_minor, 0);
    assert!(r.outstanding_invoices().unwrap().is_empty());
    assert_eq!(
        r.void_invoice(&inv.id, "error").unwrap_err().kind(),
        ErrorKind::Conflict
    );

    let second = book(&mut r, &c.patient, "pat", "2026-03-02T11:00");
    let inv2 = r.invoice_appointment(&second).unwrap();
    assert_eq!(inv2.number, Some(2), "no gap after the failed attempt");
    let void = r.void_invoice(&inv2.id, "booked in error").unwrap();
    assert_eq!(
        (void.status.as_str(), void.number, void.balance_minor),
        ("void", Some(2), 0)
    );
    drop(r);

    let mut b = sign_in(&c.dir, "bill");
    let today = jiff::Zoned::now().date().to_string();
    let report = b.revenue_report("2000-01-01", &today).unwrap();
    let total = report.iter().find(|x| x.group == "total").unwrap();
    assert_eq!(
        (total.invoices, total.total_minor, total.paid_minor),
        (1, 10_450, 10_450)
    );
    let sam_row = report
        .iter()
        .find(|x| x.group == "practitioner" && x.key == "sam")
        .unwrap();
    assert_eq!(sam_row.net_minor, 9_500);
    assert!(
        report.iter().all(|x| x.key != "pat"),
        "void invoices are not revenue"
    );
    assert!(b
        .revenue_report("2026-02-30", &today)
        .unwrap_err()
        .to_string()
        .starts_with("from:"));
    drop(b);
    assert_eq!(
        sign_in(&c.dir, "sam")
            .revenue_report("2000-01-01", &today)
            .unwrap_err()
            .kind(),
        ErrorKind::PermissionDenied
    );
}

#[test]
fn concurrent_invoice_creation_keeps_numbers_gap_free() {
    let c = clinic();
    let mut r = sign_in(&c.dir, "rita");
    let mut appts = Vec::new();
    for h in 11..17 {
        appts.push(book(
            &mut r,
            &c.patient,
            "sam",
            &format!("2026-03-02T{h}:00"),
        ));
    }
    drop(r);
    let dir = c.dir.clone();
    let handles: Vec<_> = appts
        .chunks(2)
        .map(|pair| {
            let dir = dir.clone();
            let pair = pair.to_vec();
            std::thread::spawn(move || {
                let mut s = sign_in(&dir, "rita");
                pair.iter()
                    .map(|a| s.invoice_appointment(a).unwrap().number.unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut numbers: Vec<i64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    numbers.sort();
    assert_eq!(numbers, (1..=6).collect::<Vec<_>>());
}

#[test]
fn a_100_mb_attachment_round_trips_byte_identical_and_never_lands_on_disk_in_plaintext() {
    let c = clinic();
    // Deterministic pseudo-random content with a marker near the start, streamed (never in
    // memory whole).
    struct Gen {
        left: u64,
        state: u64,
    }
    impl Read for Gen {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.left as usize).min(65_536);
            for b in &mut buf[..n] {
                self.state = self
                    .state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                *b = (self.state >> 56) as u8;
            }
            self.left -= n as u64;
            Ok(n)
        }
    }
    const SIZE: u64 = 100 * 1024 * 1024 + 12_345;
    let marker = b"ZQ-ATTACHMENT-MARKER-CONTENT";
    let mut head = std::io::Cursor::new(marker.to_vec()).chain(Gen {
        left: SIZE - marker.len() as u64,
        state: 7,
    });
    let mut r = sign_in(&c.dir, "rita");
    let meta = r
        .add_attachment(&c.patient, "referral-letter.pdf", &mut head)
        .unwrap();
    assert_eq!(meta.size as u64, SIZE);
    assert_eq!(meta.media_type, "application/pdf");
    // Reception files letters but does not open them.
    let mut sink = Vec::new();
    assert_eq!(
        r.read_attachment(&meta.id, &mut sink).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    drop(r);

    // Reading streams into a writer that hashes as it goes: compare with the source's hash.
    struct HashWriter(sha2::Sha256, u64);
    impl Write for HashWriter {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            use sha2::Digest;
            self.0.update(b);
            self.1 += b.len() as u64;
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    use sha2::Digest;
    let mut expected = sha2::Sha256::new();
    std::io::copy(
        &mut std::io::Cursor::new(marker.to_vec()).chain(Gen {
            left: SIZE - marker.len() as u64,
            state: 7,
        }),
        &mut HashWriter(sha2::Sha256::new(), 0),
    )
    .unwrap();
    let mut src = std::io::Cursor::new(marker.to_vec()).chain(Gen {
        left: SIZE - marker.len() as u64,
        state: 7,
    });
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = src.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        expected.update(&buf[..n]);
    }
    let mut sam = sign_in(&c.dir, "sam");
    let mut out = HashWriter(sha2::Sha256::new(), 0);
    sam.read_attachment(&meta.id, &mut out).unwrap();
    assert_eq!(out.1, SIZE);
    assert_eq!(out.0.finalize().as_slice(), expected.finalize().as_slice());
    assert_eq!(sam.list_attachments(&c.patient).unwrap().len(), 1);
    assert_eq!(
        sam.read_attachment("nope", &mut Vec::new())
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    drop(sam);

    // No plaintext: scan every file under the vault directory for the marker.
    fn scan(dir: &std::path::Path, marker: &[u8], seen: &mut usize) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            if e.path().is_dir() {
                scan(&e.path(), marker, seen);
                continue;
            }
            let bytes = std::fs::read(e.path()).unwrap();
            *seen += bytes.len();
            assert!(
                !bytes.windows(marker.len()).any(|w| w == marker),
                "marker in {}",
                e.path().display()
            );
        }
    }
    let mut seen = 0;
    scan(c.dir.root(), marker, &mut seen);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(c.dir.root().join("attachments"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
    assert!(
        seen as u64 > SIZE,
        "the attachment's encrypted file was scanned too"
    );

    // A flipped bit in the stored file is caught, not returned; a missing file is named.
    let file = c
        .dir
        .root()
        .join("attachments")
        .join(format!("{}.bin", meta.id));
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[5_000_000] ^= 0x40;
    std::fs::write(&file, &bytes).unwrap();
    let mut sam = sign_in(&c.dir, "sam");
    let e = sam
        .read_attachment(&meta.id, &mut std::io::sink())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Integrity);
    std::fs::remove_file(&file).unwrap();
    let e = sam
        .read_attachment(&meta.id, &mut std::io::sink())
        .unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
}

#[test]
fn manual_invoices_colours_and_appointment_notes() {
    use clinvault_core::invoices::ManualItem;
    let c = clinic();
    let mut r = sign_in(&c.dir, "rita");
    let inv = r
        .create_invoice(
            &c.patient,
            &[
                ManualItem {
                    description: "Theraband",
                    quantity: 2,
                    unit_price: "12.50",
                    tax_percent: Some("10"),
                },
                ManualItem {
                    description: "Report",
                    quantity: 1,
                    unit_price: "40",
                    tax_percent: None,
                },
            ],
        )
        .unwrap();
    assert_eq!(
        (inv.net_minor, inv.tax_minor, inv.total_minor),
        (6_500, 250, 6_750)
    );
    let e = r
        .create_invoice(
            &c.patient,
            &[ManualItem {
                description: " ",
                quantity: 1,
                unit_price: "1",
                tax_percent: None,
            }],
        )
        .unwrap_err();
    assert_eq!(e.to_string(), "items[1].description: 1–200 characters");
    let e = r
        .create_invoice(
            &c.patient,
            &[ManualItem {
                description: "X",
                quantity: 0,
                unit_price: "1",
                tax_percent: None,
            }],
        )
        .unwrap_err();
    assert!(e.to_string().starts_with("items[1].quantity"), "{e}");
    assert_eq!(
        r.create_invoice(
            "nobody",
            &[ManualItem {
                description: "X",
                quantity: 1,
                unit_price: "1",
                tax_percent: None
            }]
        )
        .unwrap_err()
        .kind(),
        ErrorKind::NotFound
    );
    let noted = r
        .set_appointment_note(&c.appointment, "Bring previous scans")
        .unwrap();
    assert_eq!(noted.note.as_deref(), Some("Bring previous scans"));
    assert_eq!(
        r.set_appointment_type_colour("Initial consult", "#ff0000")
            .unwrap_err()
            .kind(),
        ErrorKind::PermissionDenied
    );
    drop(r);
    let mut a = sign_in(&c.dir, "admin");
    a.set_appointment_type_colour("Initial consult", "#3B82F6")
        .unwrap();
    assert!(a
        .set_appointment_type_colour("Initial consult", "blue")
        .unwrap_err()
        .to_string()
        .starts_with("colour:"));
    // The audit entry for the note names the field, not the text.
    let entries = a
        .audit_list(&clinvault_core::audit_review::AuditFilter {
            action: Some("appointment.update".into()),
            limit: 5,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(entries[0].details["fields"], serde_json::json!(["note"]));
    assert!(!serde_json::to_string(&entries).unwrap().contains("scans"));
}

#[test]
fn draft_invoices_take_a_number_only_when_issued() {
    use clinvault_core::invoices::ManualItem;
    let c = clinic();
    let mut r = sign_in(&c.dir, "rita");
    let item = |price| ManualItem {
        description: "Report",
        quantity: 1,
        unit_price: price,
        tax_percent: None,
    };
    let draft = r.create_draft_invoice(&c.patient, &[item("40")]).unwrap();
    assert_eq!(
        (draft.status.as_str(), draft.number, draft.balance_minor),
        ("draft", None, 0)
    );
    assert_eq!(
        r.record_payment(&draft.id, "10", "cash", None)
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );
    assert!(
        r.outstanding_invoices().unwrap().is_empty(),
        "drafts are not owed"
    );
    let edited = r
        .update_draft_invoice(&draft.id, &[item("45"), item("5")])
        .unwrap();
    assert_eq!(edited.total_minor, 5_000);
    // Another invoice issued in the meantime gets number 1; the draft gets 2 when issued.
    let other = r.invoice_appointment(&c.appointment).unwrap();
    assert_eq!(other.number, Some(1));
    let issued = r.issue_invoice(&draft.id).unwrap();
    assert_eq!(
        (issued.status.as_str(), issued.number, issued.balance_minor),
        ("issued", Some(2), 5_000)
    );
    assert_eq!(
        r.update_draft_invoice(&draft.id, &[item("1")])
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );
    assert_eq!(
        r.issue_invoice(&draft.id).unwrap_err().kind(),
        ErrorKind::Conflict
    );
}

/// The PDF read back by an independent reader (poppler's `pdftotext`, installed by the test
/// command).
fn pdf_text(pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("invoice.pdf");
    std::fs::write(&file, pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .arg("-layout")
        .arg(&file)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils; scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn an_invoice_pdf_carries_the_clinic_lines_totals_payments_and_void_status() {
    use clinvault_core::audit_review::AuditFilter;
    use clinvault_core::invoices::ManualItem;
    let c = clinic();
    let mut a = sign_in(&c.dir, "admin");
    a.set_policy("clinic-name", "Riverside Physio").unwrap();
    a.set_policy("clinic-currency", "GBP").unwrap();
    drop(a);
    let mut r = sign_in(&c.dir, "rita");
    let inv = r
        .create_invoice(
            &c.patient,
            &[
                ManualItem {
                    description: "Theraband (Zoë's colour)",
                    quantity: 2,
                    unit_price: "12.50",
                    tax_percent: Some("10"),
                },
                ManualItem {
                    description: "Report",
                    quantity: 1,
                    unit_price: "40",
                    tax_percent: None,
                },
            ],
        )
        .unwrap();
    r.record_payment(&inv.id, "20", "card", Some("2026-03-03"))
        .unwrap();
    let text = pdf_text(&r.invoice_pdf(&inv.id).unwrap());
    let number = inv.number.unwrap();
    for needle in [
        "Riverside Physio".to_owned(),
        format!("Invoice {number}"),
        "Ann Jones".into(),
        "Theraband (Zoë's colour)".into(),
        "GBP 12.50".into(),
        "10%".into(),
        "GBP 27.50".into(), // 2 × 12.50 + 10 % tax
        "GBP 40.00".into(),
        "GBP 65.00".into(), // subtotal
        "GBP 2.50".into(),  // tax
        "GBP 67.50".into(), // total
        "2026-03-03".into(),
        "card".into(),
        "GBP 20.00".into(),
        "GBP 47.50".into(), // balance
        "Issued, awaiting payment".into(),
    ] {
        assert!(text.contains(&needle), "{needle:?} not in the PDF:\n{text}");
    }
    assert!(!text.contains("VOID"), "{text}");

    // A draft has no number yet and says so; a void invoice says VOID (watermark and label)
    // with its reason, and no balance.
    let draft = r
        .create_draft_invoice(
            &c.patient,
            &[ManualItem {
                description: "Splint",
                quantity: 1,
                unit_price: "15",
                tax_percent: None,
            }],
        )
        .unwrap();
    let text = pdf_text(&r.invoice_pdf(&draft.id).unwrap());
    assert!(text.contains("Draft invoice (not issued)"), "{text}");
    assert!(text.contains("GBP 15.00"), "{text}");
    let issued = r.issue_invoice(&draft.id).unwrap();
    let void = r.void_invoice(&issued.id, "duplicate of another").unwrap();
    let void_pdf = r.invoice_pdf(&void.id).unwrap();
    let text = pdf_text(&void_pdf);
    assert!(
        text.contains(&format!("Invoice {} (VOID)", void.number.unwrap())),
        "{text}"
    );
    assert!(text.contains("Voided: duplicate of another"), "{text}");
    assert!(text.contains("Status                    VOID"), "{text}");
    // The watermark: 110 pt bold "VOID" drawn diagonally (pdftotext splits rotated text, so
    // it is found in the uncompressed content stream), and only on the void invoice.
    let has = |pdf: &[u8], needle: &[u8]| pdf.windows(needle.len()).any(|w| w == needle);
    assert!(has(&void_pdf, b"/F2 110 Tf") && has(&void_pdf, b"(VOID) Tj"));
    assert!(!has(&r.invoice_pdf(&inv.id).unwrap(), b"/F2 110 Tf"));

    assert_eq!(
        r.invoice_pdf("no-such").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // Every export is in the trail, by invoice id only: no names, lines or amounts.
    drop(r);
    let mut a = sign_in(&c.dir, "admin");
    let entries = a
        .audit_list(&AuditFilter {
            action: Some("invoice.export_pdf".into()),
            outcome: Some("ok".into()),
            limit: 50,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(entries.len(), 4);
    assert!(entries
        .iter()
        .any(|e| e.target_id.as_deref() == Some(&inv.id)));
    let json = serde_json::to_string(&entries).unwrap();
    for secret in ["Ann", "Jones", "Theraband", "67.50"] {
        assert!(!json.contains(secret), "{secret} in the trail: {json}");
    }
    // Amounts in cents are digits, which timestamps and ids are full of: look for them where an
    // amount could be written, the entries' details.
    let details =
        serde_json::to_string(&entries.iter().map(|e| &e.details).collect::<Vec<_>>()).unwrap();
    assert!(
        !details.contains("6750"),
        "an amount in the trail: {details}"
    );
}

/// The issue's scan: after a clinic's day of work on one patient (booking, consent, note,
/// attachment, invoice, PDF, void, a refusal, a failure, a subject-access export and
/// a legal hold), no name, free text or file name of theirs is in any audit entry.
#[test]
fn no_patient_name_or_clinical_text_reaches_the_audit_trail() {
    let c = clinic();
    let markers = [
        "Zqgiven",
        "Zqfamily",
        "Zqclinical",
        "Zqconsentnote",
        "Zqreferral",
        "Zqvoidreason",
        "Zqholdreason",
        "zq.mail@example.org",
    ];
    let mut r = sign_in(&c.dir, "rita");
    let p = r
        .add_patient(PatientFields {
            first_name: Some("Zqgiven".into()),
            last_name: Some("Zqfamily".into()),
            email: Some("zq.mail@example.org".into()),
            ..Default::default()
        })
        .unwrap()
        .id;
    r.search_patients("Zqfamily", 5).unwrap();
    let appt = book(&mut r, &p, "sam", "2026-03-02T11:00");
    r.record_consent(
        &p,
        &clinvault_core::consents::NewConsent {
            kind: "treatment",
            basis: None,
            note: Some("Zqconsentnote"),
            given_on: None,
        },
    )
    .unwrap();
    assert_eq!(
        r.patient_notes(&p).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    drop(r);
    let mut sam = sign_in(&c.dir, "sam");
    let note = sam
        .add_note(&p, Some(&appt), "Zqclinical findings")
        .unwrap();
    sam.save_draft(&note.id, "Zqclinical findings, revised")
        .unwrap();
    sam.finalise_note(&note.id).unwrap();
    sam.add_attachment(
        &p,
        "Zqreferral Zqfamily.pdf",
        &mut &b"%PDF-1.4 Zqclinical"[..],
    )
    .unwrap();
    // A failure about the patient's record is recorded too.
    assert!(sam.amend_note(&note.id, "x", "").is_err());
    drop(sam);
    let mut bill = sign_in(&c.dir, "bill");
    let inv = bill.invoice_appointment(&appt).unwrap();
    bill.invoice_pdf(&inv.id).unwrap();
    bill.void_invoice(&inv.id, "Zqvoidreason").unwrap();
    drop(bill);
    let mut admin = sign_in(&c.dir, "admin");
    let out = c._tmp.path().join("sar");
    admin.export_patient(&p, &out).unwrap();
    admin.place_legal_hold(&p, "Zqholdreason").unwrap();
    let entries = admin
        .audit_list(&clinvault_core::audit_review::AuditFilter {
            limit: 10_000,
            ..Default::default()
        })
        .unwrap();
    let text = serde_json::to_string(&entries).unwrap();
    for m in markers {
        assert!(!text.contains(m), "{m} is in the audit trail");
    }
    // And the entries are there to scan: about the patient, every kind of record.
    for action in [
        "appointment.book",
        "consent.record",
        "note.create",
        "attachment.add",
        "invoice.void",
        "patient.export",
        "patient.hold",
    ] {
        assert!(
            entries.iter().any(|e| e.action == action),
            "{action} missing"
        );
    }
}
