//! Invoice drafts, the invoice PDF and attachment files in the real app.
//!
//! What is not driven end to end: the native save and open dialogs (GTK windows WebDriver
//! cannot reach). The app is started with `CLINVAULT_TEST_SAVE_DIR`/`CLINVAULT_TEST_PICK_FILE`,
//! which stand in for the dialog's answer in test-hooks builds only; everything after the
//! answer (the Rust command, the core, the file written or read) is the real path. A drop from
//! a file manager is also simulated: the test dispatches an HTML5 `drop` event carrying a
//! `File`, which is what WebKit delivers to the page for a real drop.

use base64::Engine;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::support::{self, App};

const PATIENT: &str = "Pdfington";
const DROP_MARKER: &str = "Dropped-Marker-9902";

#[path = "../../src-tauri/test_pdf_text.rs"]
mod test_pdf_text;
use test_pdf_text::pdf_text;

/// The id of the button in the attachment row showing `file`.
async fn row_button(app: &App, file: &str, prefix: &str) -> String {
    app.client
        .find(fantoccini::Locator::XPath(&format!(
            "//table[@id='record-attachments']//tr[td[1][normalize-space()='{file}']]//button[starts-with(@id,'{prefix}')]"
        )))
        .await
        .unwrap()
        .attr("id")
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_draft_invoice_is_edited_issued_saved_as_pdf_and_a_pdf_attachment_is_viewed_in_the_app() {
    let app = App::start("documents").await;
    let started = SystemTime::now();
    app.first_run().await;
    app.skip_to_home().await;
    app.watch_csp().await;

    app.click("#nav-patients").await;
    app.click("#patient-new").await;
    app.fill("#pf-first_name", "Olive").await;
    app.fill("#pf-last_name", PATIENT).await;
    app.click("#pf-save").await;
    app.wait_text("#record-title", &format!("{PATIENT}, Olive"), 10)
        .await;

    // A manual draft: two lines, saved, then edited and issued.
    app.click("#ptab-invoices").await;
    app.click("#inv-new").await;
    app.fill("#dl-desc-0", "Splint").await;
    app.fill("#dl-price-0", "30").await;
    app.click("#dl-add").await;
    app.fill("#dl-desc-1", "Report").await;
    app.fill("#dl-price-1", "40").await;
    app.fill("#dl-tax-1", "10").await;
    app.click("#draft-save").await;
    app.wait_text("#inv-msg", "Draft saved.", 10).await;
    app.wait_text("#inv-total", "74.00", 10).await;
    assert_eq!(app.text_of("#inv-status").await.trim(), "draft");
    // A bad price: the core's message names the line; the draft stays as it was.
    app.fill("#dl-price-0", "3O").await;
    app.click("#draft-save").await;
    app.wait_text("#inv-error", "items[1].unit_price", 10).await;
    app.fill("#dl-price-0", "35").await;
    // A quantity that is not a whole number is refused as typed, not cut down to 1.
    app.fill("#dl-qty-0", "1.5").await;
    app.click("#draft-save").await;
    app.wait_text("#inv-error", "Line 1 quantity: \"1.5\"", 10)
        .await;
    app.wait_text("#inv-total", "74.00", 10).await;
    app.fill("#dl-qty-0", "1").await;
    app.screenshot("draft-invoice").await;
    app.click("#draft-issue").await;
    app.wait_text("#inv-msg", "Invoice 1 issued.", 10).await;
    app.wait_text("#inv-total", "79.00", 10).await;
    assert_eq!(app.text_of("#inv-status").await.trim(), "issued");
    assert!(
        !app.exists("#draft-form").await,
        "an issued invoice is not editable"
    );
    app.screenshot("invoice-issued").await;

    // Save PDF…: the core renders it; the file lands only where the dialog said.
    app.click("#inv-save-pdf").await;
    app.wait_text("#inv-msg", "Saved invoice-1.pdf", 20).await;
    let saved_dir = app_saved_dir();
    let pdf = saved_dir.join("invoice-1.pdf");
    let text = pdf_text(&pdf);
    for needle in ["Invoice 1", "Olive Pdfington", "Splint", "EUR 79.00"] {
        assert!(text.contains(needle), "{needle:?} not in the PDF:\n{text}");
    }

    // Attachments: that PDF chosen in the open dialog, and a note dropped onto the tab.
    let picked = support::pick_file("documents");
    std::fs::copy(&pdf, &picked).unwrap();
    app.click("#inv-close").await;
    app.click("#ptab-attachments").await;
    app.wait_text("#record-attachments", "No attachments", 10)
        .await;
    app.click("#att-pick").await;
    app.wait_text("#att-msg", "Added referral-letter.pdf", 20)
        .await;
    app.client
        .execute(
            "const dt = new DataTransfer();\
             dt.items.add(new File([arguments[0]], 'dropped-note.txt', { type: 'text/plain' }));\
             const zone = document.getElementById('att-drop');\
             zone.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));\
             zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));",
            vec![serde_json::json!(format!("phoned in: {DROP_MARKER}"))],
        )
        .await
        .unwrap();
    app.wait_text("#att-msg", "Added dropped-note.txt", 20)
        .await;
    app.wait_text("#record-attachments", "dropped-note.txt", 10)
        .await;

    // The PDF inside the app: pdf.js draws its page onto a canvas from the core's bytes.
    // (Anything the viewer fetches, such as a character map, must stay within the CSP.)
    let view = row_button(&app, "referral-letter.pdf", "att-view-").await;
    app.click(&format!("#{view}")).await;
    app.wait_text("#pdf-info", "1 page", 30).await;
    app.wait_for("#pdf-pages[data-drawn='1']", 30).await;
    let drawn = app
        .client
        .execute(
            "const c = document.querySelectorAll('#pdf-pages canvas');\
             if (c.length === 0) return null;\
             const d = c[0].getContext('2d').getImageData(0, 0, c[0].width, c[0].height).data;\
             let dark = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 128 && d[i + 3] > 0) dark++;\
             return { pages: c.length, drawn: document.getElementById('pdf-pages').dataset.drawn, dark, width: c[0].width };",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(drawn["pages"], 1, "{drawn}");
    assert_eq!(drawn["drawn"], "1", "{drawn}");
    assert!(
        drawn["dark"].as_u64().unwrap() > 500,
        "the page has no text drawn on it: {drawn}"
    );
    app.client
        .execute(
            "document.getElementById('pdf-pages').scrollIntoView();",
            vec![],
        )
        .await
        .unwrap();
    app.screenshot("pdf-viewed").await;

    // Save a copy of the attachment: byte for byte what was added.
    let save = row_button(&app, "referral-letter.pdf", "att-save-").await;
    app.click(&format!("#{save}")).await;
    app.wait_text("#att-msg", "Saved a copy as referral-letter.pdf", 20)
        .await;
    assert_eq!(
        std::fs::read(saved_dir.join("referral-letter.pdf")).unwrap(),
        std::fs::read(&picked).unwrap()
    );

    // A scanned letter: a PDF whose page is one JPEG 2000 image, as scanners often write them.
    // pdf.js decodes it with the JPEG 2000 decoder the app ships (no WebAssembly under the CSP).
    drop_file(&app, "scanned-letter.pdf", &scanned_letter_pdf()).await;
    app.wait_text("#att-msg", "Added scanned-letter.pdf", 20)
        .await;
    app.click("#att-viewer-close").await;
    let view = row_button(&app, "scanned-letter.pdf", "att-view-").await;
    app.click(&format!("#{view}")).await;
    app.wait_text("#att-viewer", "scanned-letter.pdf", 20).await;
    app.wait_text("#pdf-info", "1 page", 30).await;
    app.wait_for("#pdf-pages[data-drawn='1']", 30).await;
    let centre = app
        .client
        .execute(
            "const c = document.querySelector('#pdf-pages canvas');\
             if (!c || document.getElementById('pdf-pages').dataset.drawn !== '1') return null;\
             return [...c.getContext('2d').getImageData(c.width >> 1, c.height >> 1, 1, 1).data];",
            vec![],
        )
        .await
        .unwrap();
    let rgb: Vec<u64> = centre
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_u64()).collect())
        .unwrap_or_default();
    assert!(
        rgb.len() == 4 && rgb[0] > 150 && rgb[1] < 90 && rgb[2] < 90,
        "the scanned image was not drawn (centre pixel {centre})"
    );
    assert!(!app.exists("#pdf-error").await);
    app.screenshot("scan-viewed").await;
    app.assert_no_csp_violations().await;

    // A long report: every page is there, drawn when it scrolls into view.
    app.click("#att-viewer-close").await;
    drop_file(&app, "long-report.pdf", &long_pdf(80)).await;
    app.wait_text("#att-msg", "Added long-report.pdf", 20).await;
    let view = row_button(&app, "long-report.pdf", "att-view-").await;
    app.click(&format!("#{view}")).await;
    app.wait_text("#att-viewer", "long-report.pdf", 20).await;
    app.wait_text("#pdf-info", "80 pages", 30).await;
    app.wait_for("#pdf-pages canvas[aria-label='Page 1']", 30)
        .await;
    let slots = "return [document.querySelectorAll('#pdf-pages .pdf-slot, #pdf-pages canvas').length, document.querySelectorAll('#pdf-pages canvas').length];";
    let before = app.client.execute(slots, vec![]).await.unwrap();
    assert_eq!(before[0], 80, "a place for every page: {before}");
    assert!(
        before[1].as_u64().unwrap() < 80,
        "all pages drawn up front: {before}"
    );
    app.client
        .execute(
            "const h = document.getElementById('pdf-pages'); h.scrollTop = h.scrollHeight;",
            vec![],
        )
        .await
        .unwrap();
    app.wait_for("#pdf-pages canvas[aria-label='Page 80']", 30)
        .await;
    app.screenshot("long-pdf-end").await;

    // Backup paths through "Choose…" (the save dialog's stand-in answers in the chosen folder):
    // the field is filled with the suggested name, and the export and the restore use it.
    app.click("#nav-backup").await;
    app.click("#bk-choose").await;
    let field_value = |css: &'static str| {
        let client = app.client.clone();
        async move {
            client
                .execute(
                    &format!("return document.querySelector('{css}').value;"),
                    vec![],
                )
                .await
                .unwrap()
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }
    };
    let mut chosen = String::new();
    for _ in 0..100 {
        chosen = field_value("#bk-path").await;
        if !chosen.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let chosen = PathBuf::from(chosen);
    assert_eq!(chosen.parent(), Some(saved_dir.as_path()), "{chosen:?}");
    let name = chosen.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("clinvault-") && name.ends_with(".cvbackup"),
        "{name}"
    );
    app.fill("#bk-pass", "a long backup passphrase for the documents")
        .await;
    app.click("#bk-export").await;
    app.wait_text("#bk-result", "Backup written", 60).await;
    assert!(chosen.exists());
    app.click("#bv-restore-choose").await;
    let restore_to = saved_dir.join("clinvault-restored");
    for _ in 0..100 {
        if field_value("#bv-restore").await == restore_to.display().to_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.fill("#bv-secret", "a long backup passphrase for the documents")
        .await;
    app.click("#bv-verify").await;
    app.wait_text("#bv-restored", "Restored into", 60).await;
    assert!(restore_to.join("vault.keys").exists());
    app.screenshot("backup-chosen").await;

    app.assert_no_csp_violations().await;

    let vault = app.vault.clone();
    let home_dir = app.stop_keeping_home().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The saved copies are in target/e2e/, the place the person chose: not scanned.
    support::assert_no_plaintext_outside_vault(
        "documents",
        home_dir.path(),
        &vault,
        started,
        &[PATIENT.as_bytes(), DROP_MARKER.as_bytes()],
    );
}

/// A one-page PDF whose page is a 64×64 red JPEG 2000 image (written by Pillow with OpenJPEG,
/// scripts/test.sh installs it), scaled over the page, with a line of Japanese in a font the
/// PDF does not embed (pdf.js needs its character map for that, fetched from the app).
fn scanned_letter_pdf() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let jp2 = dir.path().join("scan.jp2");
    let made = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys; from PIL import Image; Image.new('RGB', (64, 64), (200, 30, 30)).save(sys.argv[1], 'JPEG2000')",
        ])
        .arg(&jp2)
        .status()
        .expect("python3 with Pillow (scripts/test.sh installs it)");
    assert!(made.success(), "Pillow could not write JPEG 2000");
    let image = std::fs::read(&jp2).unwrap();
    let content = b"q 200 0 0 200 0 0 cm /Im0 Do Q BT /F1 12 Tf 10 10 Td <65E5672C> Tj ET\n";
    let mut im = format!(
        "<< /Type /XObject /Subtype /Image /Width 64 /Height 64 /Filter /JPXDecode /Length {} >>\nstream\n",
        image.len()
    )
    .into_bytes();
    im.extend_from_slice(&image);
    im.extend_from_slice(b"\nendstream");
    pdf_file(&[
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Resources << /XObject << /Im0 4 0 R >> /Font << /F1 6 0 R >> >> /Contents 5 0 R >>".to_vec(),
        im,
        stream(content),
        b"<< /Type /Font /Subtype /Type0 /BaseFont /HeiseiMin-W3 /Encoding /UniJIS-UCS2-H /DescendantFonts [7 0 R] >>".to_vec(),
        b"<< /Type /Font /Subtype /CIDFontType0 /BaseFont /HeiseiMin-W3 /CIDSystemInfo << /Registry (Adobe) /Ordering (Japan1) /Supplement 2 >> /FontDescriptor 8 0 R >>".to_vec(),
        b"<< /Type /FontDescriptor /FontName /HeiseiMin-W3 /Flags 6 /FontBBox [0 -141 1000 859] /ItalicAngle 0 /Ascent 859 /Descent -141 /CapHeight 709 /StemV 69 >>".to_vec(),
    ])
}

/// A content stream object around `content`.
fn stream(content: &[u8]) -> Vec<u8> {
    let mut s = format!("<< /Length {} >>\nstream\n", content.len()).into_bytes();
    s.extend_from_slice(content);
    s.extend_from_slice(b"endstream");
    s
}

/// A PDF file of these objects (numbered from 1; the first is the catalog), with its
/// cross-reference table.
fn pdf_file(objects: &[Vec<u8>]) -> Vec<u8> {
    let mut pdf: Vec<u8> = b"%PDF-1.5\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        pdf.extend_from_slice(body);
        pdf.extend_from_slice(b"\nendobj\n");
    }
    let xref = pdf.len();
    pdf.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", offsets.len() + 1).as_bytes(),
    );
    for o in &offsets {
        pdf.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            offsets.len() + 1
        )
        .as_bytes(),
    );
    pdf
}

/// Drops a file onto the attachments tab as the person's file manager would (an HTML5 drop).
async fn drop_file(app: &App, name: &str, bytes: &[u8]) {
    app.client
        .execute(
            "const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));\
             const dt = new DataTransfer();\
             dt.items.add(new File([bytes], arguments[1], { type: 'application/pdf' }));\
             const zone = document.getElementById('att-drop');\
             zone.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));\
             zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));",
            vec![
                serde_json::json!(base64::engine::general_purpose::STANDARD.encode(bytes)),
                serde_json::json!(name),
            ],
        )
        .await
        .unwrap();
}

/// A PDF of `pages` pages, each showing the same black band.
fn long_pdf(pages: usize) -> Vec<u8> {
    let mut objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        format!(
            "<< /Type /Pages /Kids [{}] /Count {pages} >>",
            (0..pages)
                .map(|i| format!("{} 0 R", 4 + i))
                .collect::<Vec<_>>()
                .join(" ")
        )
        .into_bytes(),
    ];
    objects.push(stream(b"0 0 0 rg 20 300 555 200 re f\n"));
    for _ in 0..pages {
        objects.push(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 3 0 R >>".to_vec(),
        );
    }
    pdf_file(&objects)
}

fn app_saved_dir() -> PathBuf {
    support::artefact_dir().join("documents-saved")
}
