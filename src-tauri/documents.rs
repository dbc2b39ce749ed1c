//! Invoice drafts, invoice PDFs and attachment files (issue 8, part 2). Kept in one module so
//! the request/reply types, the `Shell` methods and their bindings stay together.
//!
//! Files only ever go where the person chose: the Tauri commands (`document_commands.rs`) open
//! the native open/save dialog *from Rust* and hand the chosen path to the methods here, which
//! take the path as an argument so tests drive them without a window. The webview never names a
//! path and has no dialog or file-system permission of its own.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::api::{ApiError, AttachmentRow, ErrorKind, InvoiceRef, InvoiceView};
use crate::host::Host;
use crate::shell::{attachment_row, core, invoice_view, Shell};

type Result<T> = std::result::Result<T, ApiError>;

/// One invoice line as typed in the draft editor.
#[derive(Deserialize, TS)]
pub struct InvoiceItem {
    pub description: String,
    pub quantity: i64,
    /// Decimal text, e.g. "12.50".
    pub unit_price: String,
    /// Percent, e.g. "10"; None or empty for untaxed.
    pub tax_percent: Option<String>,
}

#[derive(Deserialize, TS)]
pub struct NewDraftInvoice {
    pub patient_id: String,
    pub items: Vec<InvoiceItem>,
}

#[derive(Deserialize, TS)]
pub struct DraftLines {
    pub id: String,
    pub items: Vec<InvoiceItem>,
}

/// Save the invoice as a PDF: the number only suggests the file name in the dialog.
#[derive(Deserialize, TS)]
pub struct SaveInvoicePdf {
    pub id: String,
    pub number: Option<i64>,
}

/// Save a copy of an attachment: the file name only suggests the name in the dialog.
#[derive(Deserialize, TS)]
pub struct SaveAttachment {
    pub id: String,
    pub file_name: String,
}

/// What "save a copy" did. `saved` is false when the person closed the dialog.
#[derive(Serialize, TS)]
pub struct SavedCopy {
    pub saved: bool,
    /// The chosen file's name (not its folder), for the confirmation message.
    pub file_name: Option<String>,
    pub bytes: u64,
}

impl SavedCopy {
    pub fn cancelled() -> Self {
        SavedCopy {
            saved: false,
            file_name: None,
            bytes: 0,
        }
    }
}

/// An attachment added from a file chosen in the open dialog; None when the dialog was closed.
#[derive(Serialize, TS)]
pub struct PickedAttachment {
    pub attachment: Option<AttachmentRow>,
}

/// "Choose…" beside a path field of the backup screen: `save` (a new backup file), `open` (a
/// backup file to check or restore) or `folder` (where to restore, a folder that must not exist
/// yet: the dialog picks its parent and the suggested name is added).
#[derive(Deserialize, TS)]
pub struct ChooseBackupPath {
    pub purpose: String,
}

/// The chosen path, for the field (the backup commands take a path, as typed paths did); None
/// when the dialog was closed.
#[derive(Serialize, TS)]
pub struct ChosenPath {
    pub path: Option<String>,
}

/// The types above for `ui/src/lib/bindings.ts` (appended by `api::typescript_bindings`).
pub fn typescript_decls() -> Vec<String> {
    vec![
        InvoiceItem::decl(),
        NewDraftInvoice::decl(),
        DraftLines::decl(),
        SaveInvoicePdf::decl(),
        SaveAttachment::decl(),
        SavedCopy::decl(),
        PickedAttachment::decl(),
        ChooseBackupPath::decl(),
        ChosenPath::decl(),
    ]
}

fn items(list: &[InvoiceItem]) -> Vec<clinvault_core::invoices::ManualItem<'_>> {
    list.iter()
        .map(|i| clinvault_core::invoices::ManualItem {
            description: &i.description,
            quantity: i.quantity,
            unit_price: &i.unit_price,
            tax_percent: i.tax_percent.as_deref().filter(|t| !t.trim().is_empty()),
        })
        .collect()
}

/// The suggested name with any folder part removed (a name stored with an attachment must not
/// steer where a test stand-in or a dialog starts).
pub fn plain_file_name(name: &str, fallback: &str) -> String {
    Path::new(name.trim())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty() && n != "." && n != "..")
        .unwrap_or_else(|| fallback.to_owned())
}

pub fn invoice_file_name(number: Option<i64>) -> String {
    match number {
        Some(n) => format!("invoice-{n}.pdf"),
        None => "invoice-draft.pdf".into(),
    }
}

/// The backup file a save dialog suggests: the clinic's date, so successive backups sort.
pub fn backup_file_name() -> String {
    let today = jiff::Zoned::now().date();
    format!("clinvault-{today}.cvbackup")
}

fn name_of(path: &Path) -> Option<String> {
    path.file_name().map(|n| n.to_string_lossy().into_owned())
}

fn write_failed() -> ApiError {
    ApiError::new(
        ErrorKind::Io,
        "cannot write the file there; choose another folder",
    )
}

/// Writes the chosen file through a private (`0600`) file beside it that replaces it only once
/// everything was written and synced: a refusal by the core or a failed write leaves an existing
/// file the person chose to replace as it was, and removes the partial copy. The partial copy
/// lives in the folder the person chose, not in a temp directory.
fn write_chosen<T>(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<&mut std::fs::File>) -> Result<T>,
) -> Result<T> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut partial = tempfile::Builder::new()
        .prefix(".clinvault-saving-")
        .tempfile_in(dir)
        .map_err(|_| write_failed())?;
    let value = {
        let mut w = std::io::BufWriter::new(partial.as_file_mut());
        let value = fill(&mut w)?;
        w.flush().map_err(|_| write_failed())?;
        value
    };
    partial.as_file().sync_all().map_err(|_| write_failed())?;
    partial.persist(path).map_err(|_| write_failed())?;
    Ok(value)
}

impl<H: Host> Shell<H> {
    pub fn create_draft_invoice(&mut self, req: NewDraftInvoice) -> Result<InvoiceView> {
        core(
            self.active()?
                .create_draft_invoice(&req.patient_id, &items(&req.items)),
        )
        .map(invoice_view)
    }

    pub fn update_draft_invoice(&mut self, req: DraftLines) -> Result<InvoiceView> {
        core(
            self.active()?
                .update_draft_invoice(&req.id, &items(&req.items)),
        )
        .map(invoice_view)
    }

    pub fn issue_invoice(&mut self, req: InvoiceRef) -> Result<InvoiceView> {
        core(self.active()?.issue_invoice(&req.id)).map(invoice_view)
    }

    /// The core renders the invoice (gated, recorded as `invoice.export_pdf`); the bytes go
    /// straight to the file the person chose and nowhere else.
    pub fn write_invoice_pdf(&mut self, id: &str, path: &Path) -> Result<SavedCopy> {
        let pdf = zeroize::Zeroizing::new(core(self.active()?.invoice_pdf(id))?);
        write_chosen(path, |w| w.write_all(&pdf).map_err(|_| write_failed()))?;
        Ok(SavedCopy {
            saved: true,
            file_name: name_of(path),
            bytes: pdf.len() as u64,
        })
    }

    /// The core decrypts the attachment into the chosen place (gated, recorded as
    /// `attachment.view`). A refusal or failure leaves nothing behind and replaces nothing.
    pub fn write_attachment_copy(&mut self, id: &str, path: &Path) -> Result<SavedCopy> {
        let session = self.active()?;
        let meta = write_chosen(path, |w| core(session.read_attachment(id, w)))?;
        Ok(SavedCopy {
            saved: true,
            file_name: name_of(path),
            bytes: u64::try_from(meta.size).unwrap_or(0),
        })
    }

    /// Streams a file the person chose in the open dialog into the core, which encrypts as it
    /// stores; the file's name becomes the attachment's name.
    pub fn add_attachment_file(&mut self, patient_id: &str, path: &Path) -> Result<AttachmentRow> {
        let name = name_of(path)
            .ok_or_else(|| ApiError::new(ErrorKind::InvalidInput, "choose a file, not a folder"))?;
        let session = self.active()?;
        let file = std::fs::File::open(path).map_err(|_| {
            ApiError::new(
                ErrorKind::Io,
                "cannot read the chosen file; check that it still exists and may be read",
            )
        })?;
        if file.metadata().map(|m| m.is_dir()).unwrap_or(false) {
            return Err(ApiError::new(
                ErrorKind::InvalidInput,
                "choose a file, not a folder",
            ));
        }
        let mut reader = std::io::BufReader::new(file);
        core(session.add_attachment(patient_id, &name, &mut reader)).map(attachment_row)
    }
}
