//! Invoice drafts, the invoice PDF and attachment files through the shell, with the paths a
//! dialog would have returned.

use super::*;
use crate::documents::*;

fn item(description: &str, quantity: i64, price: &str, tax: Option<&str>) -> InvoiceItem {
    InvoiceItem {
        description: description.into(),
        quantity,
        unit_price: price.into(),
        tax_percent: tax.map(str::to_owned),
    }
}

#[path = "../test_pdf_text.rs"]
mod test_pdf_text;
use test_pdf_text::pdf_text;

#[test]
fn a_draft_invoice_is_edited_issued_and_saved_as_a_pdf_only_where_chosen() {
    let mut f = with_admin();
    add_staff(&mut f);
    let patient = f.shell.add_patient(form("Ann", "Jones")).unwrap().id;
    sign_in(&mut f, "rita", RECEPTION_PASS).unwrap();

    let draft = f
        .shell
        .create_draft_invoice(NewDraftInvoice {
            patient_id: patient.clone(),
            items: vec![item("Report", 1, "40", None)],
        })
        .unwrap();
    assert_eq!((draft.status.as_str(), draft.number), ("draft", None));
    // The core names the line that is wrong; nothing changes.
    let bad = f
        .shell
        .update_draft_invoice(DraftLines {
            id: draft.id.clone(),
            items: vec![
                item("Report", 1, "40", None),
                item("Splint", 1, "12,5x", None),
            ],
        })
        .err()
        .unwrap();
    assert_eq!(bad.kind, ErrorKind::InvalidInput);
    assert!(
        bad.message.contains("items[2].unit_price"),
        "{}",
        bad.message
    );
    let edited = f
        .shell
        .update_draft_invoice(DraftLines {
            id: draft.id.clone(),
            items: vec![
                item("Report", 1, "40", None),
                item("Theraband", 2, "12.50", Some("10")),
            ],
        })
        .unwrap();
    assert_eq!(edited.total_minor, 6_750);
    assert_eq!(edited.lines.len(), 2);
    let issued = f
        .shell
        .issue_invoice(InvoiceRef {
            id: draft.id.clone(),
        })
        .unwrap();
    assert_eq!((issued.status.as_str(), issued.number), ("issued", Some(1)));
    let again = f
        .shell
        .update_draft_invoice(DraftLines {
            id: draft.id.clone(),
            items: vec![item("Report", 1, "1", None)],
        })
        .err()
        .unwrap();
    assert_eq!(again.kind, ErrorKind::Conflict);

    let out = tempfile::tempdir().unwrap();
    let chosen = out.path().join(invoice_file_name(issued.number));
    assert!(chosen.ends_with("invoice-1.pdf"));
    let saved = f.shell.write_invoice_pdf(&draft.id, &chosen).unwrap();
    assert!(saved.saved);
    assert_eq!(saved.file_name.as_deref(), Some("invoice-1.pdf"));
    let bytes = std::fs::read(&chosen).unwrap();
    assert_eq!(saved.bytes, bytes.len() as u64);
    assert!(bytes.starts_with(b"%PDF-"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&chosen).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "readable by its owner only: {mode:o}");
    }
    let text = pdf_text(&chosen);
    for needle in ["Invoice 1", "Ann Jones", "Theraband", "EUR 67.50"] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
    // The dialog asked before replacing: a second save replaces the file.
    f.shell.write_invoice_pdf(&draft.id, &chosen).unwrap();
    assert_eq!(std::fs::read(&chosen).unwrap().len(), bytes.len());

    // A folder that cannot be written: a message without the path; an unknown invoice: the
    // core's refusal, and no file.
    let nowhere = out.path().join("missing").join("invoice.pdf");
    let e = f
        .shell
        .write_invoice_pdf(&draft.id, &nowhere)
        .err()
        .unwrap();
    assert_eq!(e.kind, ErrorKind::Io);
    assert!(!e.message.contains("missing"), "{}", e.message);
    let ghost = out.path().join("ghost.pdf");
    let e = f.shell.write_invoice_pdf("no-such", &ghost).err().unwrap();
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert!(!ghost.exists());
    let kept = out.path().join("kept.pdf");
    std::fs::write(&kept, b"an older copy").unwrap();
    let e = f.shell.write_invoice_pdf("no-such", &kept).err().unwrap();
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert_eq!(std::fs::read(&kept).unwrap(), b"an older copy");

    // Signed out, nothing is rendered or written.
    f.shell.sign_out().unwrap();
    let e = f.shell.write_invoice_pdf(&draft.id, &ghost).err().unwrap();
    assert_eq!(e.kind, ErrorKind::SessionLocked);
    assert!(!ghost.exists());
}

#[test]
fn attachments_come_from_a_chosen_file_and_copies_go_only_to_those_who_may_read_them() {
    let mut f = with_admin();
    add_staff(&mut f);
    let patient = f.shell.add_patient(form("Ann", "Jones")).unwrap().id;
    let dir = tempfile::tempdir().unwrap();
    let letter = dir.path().join("referral letter.pdf");
    let content = b"%PDF-1.4 referral DOC-MARKER-5521".to_vec();
    std::fs::write(&letter, &content).unwrap();

    sign_in(&mut f, "rita", RECEPTION_PASS).unwrap();
    let added = f.shell.add_attachment_file(&patient, &letter).unwrap();
    assert_eq!(added.file_name, "referral letter.pdf");
    assert_eq!(added.media_type, "application/pdf");
    assert_eq!(added.size, content.len() as i64);
    let e = f
        .shell
        .add_attachment_file(&patient, &dir.path().join("gone.pdf"))
        .err()
        .unwrap();
    assert_eq!(e.kind, ErrorKind::Io);
    assert!(!e.message.contains("gone"), "{}", e.message);
    let e = f
        .shell
        .add_attachment_file(&patient, dir.path())
        .err()
        .unwrap();
    assert_eq!(e.kind, ErrorKind::InvalidInput, "{}", e.message);
    assert_eq!(
        f.shell
            .add_attachment_file("no-such-patient", &letter)
            .err()
            .unwrap()
            .kind,
        ErrorKind::NotFound
    );

    // Reception may file letters but not read them: no copy, and nothing left behind.
    let copy = dir.path().join("copy.pdf");
    let denied = f
        .shell
        .write_attachment_copy(&added.id, &copy)
        .err()
        .unwrap();
    assert_eq!(denied.kind, ErrorKind::PermissionDenied);
    assert!(!copy.exists(), "a refused copy leaves no file");
    // A file the person chose to replace stays as it was when the core refuses, and no partial
    // copy is left in the folder.
    let existing = dir.path().join("keep.txt");
    std::fs::write(&existing, b"the clinic's own file").unwrap();
    let before: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    let denied = f
        .shell
        .write_attachment_copy(&added.id, &existing)
        .err()
        .unwrap();
    assert_eq!(denied.kind, ErrorKind::PermissionDenied);
    assert_eq!(std::fs::read(&existing).unwrap(), b"the clinic's own file");
    let after: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        before, after,
        "nothing added or removed in the chosen folder"
    );

    sign_in(&mut f, "sam", PRACTITIONER_PASS).unwrap();
    let saved = f.shell.write_attachment_copy(&added.id, &copy).unwrap();
    assert!(saved.saved);
    assert_eq!(saved.file_name.as_deref(), Some("copy.pdf"));
    assert_eq!(saved.bytes, content.len() as u64);
    assert_eq!(std::fs::read(&copy).unwrap(), content);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "a saved copy is readable by its owner only"
        );
    }
    // Replacing a file the person chose: done only once the copy is complete.
    let replaced = f.shell.write_attachment_copy(&added.id, &existing).unwrap();
    assert!(replaced.saved);
    assert_eq!(std::fs::read(&existing).unwrap(), content);
}

#[test]
fn suggested_file_names_lose_any_folder() {
    assert_eq!(plain_file_name("../../etc/passwd", "x"), "passwd");
    assert_eq!(plain_file_name("/tmp/letter.pdf", "x"), "letter.pdf");
    assert_eq!(plain_file_name("..", "attachment"), "attachment");
    assert_eq!(plain_file_name("  ", "attachment"), "attachment");
    assert_eq!(invoice_file_name(Some(12)), "invoice-12.pdf");
    assert_eq!(invoice_file_name(None), "invoice-draft.pdf");
}
