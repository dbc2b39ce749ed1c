//! The Tauri commands for invoice drafts, invoice PDFs and attachment files (`documents.rs`).
//!
//! "Save a copy" and "add from a file" open the native dialog from Rust (tauri-plugin-dialog),
//! without holding the shell's lock, so the status poll carries on while the dialog is open.
//! The chosen path goes straight to the shell; the webview never sees or names it. In builds
//! with the core's `test-hooks` feature (`cargo test` only) two environment variables stand in
//! for the dialog, because WebDriver cannot drive a native dialog: `CLINVAULT_TEST_SAVE_DIR`
//! (a save dialog answers `<dir>/<suggested name>`) and `CLINVAULT_TEST_PICK_FILE` (an open
//! dialog answers that file). Release builds ignore both.

use std::path::PathBuf;

use tauri::State;
use tauri_plugin_dialog::DialogExt;

use crate::api::{AttachmentRef, AttachmentRow, InvoiceRef, InvoiceView, PatientRef};
use crate::commands::{contain, with, AppState, Reply};
use crate::documents::*;

/// The command names, in the order declared (also in `commands.txt`).
pub const NAMES: &[&str] = &[
    "create_draft_invoice",
    "update_draft_invoice",
    "issue_invoice",
    "save_invoice_pdf",
    "save_attachment_copy",
    "pick_attachment",
    "choose_backup_path",
    "read_attachment",
];

fn test_answer(var: &str) -> Option<PathBuf> {
    if !clinvault_core::fault::TEST_HOOKS {
        return None;
    }
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn choose_save(
    window: &tauri::WebviewWindow,
    suggested: &str,
    filter: Option<(&str, &[&str])>,
) -> Option<PathBuf> {
    choose_save_titled(window, "Save a copy", suggested, filter)
}

fn choose_save_titled(
    window: &tauri::WebviewWindow,
    title: &str,
    suggested: &str,
    filter: Option<(&str, &[&str])>,
) -> Option<PathBuf> {
    if let Some(dir) = test_answer("CLINVAULT_TEST_SAVE_DIR") {
        return Some(dir.join(suggested));
    }
    let mut dialog = window
        .dialog()
        .file()
        .set_parent(window)
        .set_title(title)
        .set_file_name(suggested);
    if let Some((name, extensions)) = filter {
        dialog = dialog.add_filter(name, extensions);
    }
    dialog.blocking_save_file().and_then(|p| p.into_path().ok())
}

fn choose_open(window: &tauri::WebviewWindow) -> Option<PathBuf> {
    choose_open_titled(window, "Add a file to the patient's record", None)
}

fn choose_open_titled(
    window: &tauri::WebviewWindow,
    title: &str,
    filter: Option<(&str, &[&str])>,
) -> Option<PathBuf> {
    if let Some(file) = test_answer("CLINVAULT_TEST_PICK_FILE") {
        return Some(file);
    }
    let mut dialog = window.dialog().file().set_parent(window).set_title(title);
    if let Some((name, extensions)) = filter {
        dialog = dialog.add_filter(name, extensions);
    }
    dialog.blocking_pick_file().and_then(|p| p.into_path().ok())
}

/// Refuses before the dialog opens when no session is active (locked, signed out).
fn ensure_active(state: &AppState) -> Reply<()> {
    with(state, |s| s.active().map(|_| ()))
}

#[tauri::command(async)]
pub fn create_draft_invoice(
    state: State<'_, AppState>,
    req: NewDraftInvoice,
) -> Reply<InvoiceView> {
    with(&state, |s| s.create_draft_invoice(req))
}

#[tauri::command(async)]
pub fn update_draft_invoice(state: State<'_, AppState>, req: DraftLines) -> Reply<InvoiceView> {
    with(&state, |s| s.update_draft_invoice(req))
}

#[tauri::command(async)]
pub fn issue_invoice(state: State<'_, AppState>, req: InvoiceRef) -> Reply<InvoiceView> {
    with(&state, |s| s.issue_invoice(req))
}

#[tauri::command(async)]
pub fn save_invoice_pdf(
    window: tauri::WebviewWindow,
    state: State<'_, AppState>,
    req: SaveInvoicePdf,
) -> Reply<SavedCopy> {
    ensure_active(&state)?;
    let name = invoice_file_name(req.number);
    let chosen = contain(|| Ok(choose_save(&window, &name, Some(("PDF", &["pdf"])))))?;
    match chosen {
        Some(path) => with(&state, |s| s.write_invoice_pdf(&req.id, &path)),
        None => Ok(SavedCopy::cancelled()),
    }
}

#[tauri::command(async)]
pub fn save_attachment_copy(
    window: tauri::WebviewWindow,
    state: State<'_, AppState>,
    req: SaveAttachment,
) -> Reply<SavedCopy> {
    ensure_active(&state)?;
    let name = plain_file_name(&req.file_name, "attachment");
    let chosen = contain(|| Ok(choose_save(&window, &name, None)))?;
    match chosen {
        Some(path) => with(&state, |s| s.write_attachment_copy(&req.id, &path)),
        None => Ok(SavedCopy::cancelled()),
    }
}

#[tauri::command(async)]
pub fn pick_attachment(
    window: tauri::WebviewWindow,
    state: State<'_, AppState>,
    req: PatientRef,
) -> Reply<PickedAttachment> {
    ensure_active(&state)?;
    let chosen = contain(|| Ok(choose_open(&window)))?;
    let attachment: Option<AttachmentRow> = match chosen {
        Some(path) => Some(with(&state, |s| s.add_attachment_file(&req.id, &path))?),
        None => None,
    };
    Ok(PickedAttachment { attachment })
}

/// "Choose…" on the backup screen. The path fills the field; what is then done with it (export,
/// check, restore) is the core's gated operation, as with a typed path.
#[tauri::command(async)]
pub fn choose_backup_path(
    window: tauri::WebviewWindow,
    state: State<'_, AppState>,
    req: ChooseBackupPath,
) -> Reply<ChosenPath> {
    ensure_active(&state)?;
    const BACKUP: Option<(&str, &[&str])> = Some(("ClinVault backup", &["cvbackup"]));
    let chosen = match req.purpose.as_str() {
        "save" => contain(|| {
            Ok(choose_save_titled(
                &window,
                "Export a backup",
                &backup_file_name(),
                BACKUP,
            ))
        })?,
        "open" => contain(|| Ok(choose_open_titled(&window, "Choose a backup file", BACKUP)))?,
        // A new folder: the save dialog names it, as the restore refuses an existing one.
        "folder" => contain(|| {
            Ok(choose_save_titled(
                &window,
                "Restore into a new folder",
                "clinvault-restored",
                None,
            ))
        })?,
        _ => {
            return Err(crate::api::ApiError::new(
                crate::api::ErrorKind::InvalidInput,
                "purpose: use save, open or folder",
            ))
        }
    };
    Ok(ChosenPath {
        path: chosen.map(|p| p.display().to_string()),
    })
}

/// An attachment's decrypted bytes for the in-app viewer as one binary IPC reply: the page gets
/// an `ArrayBuffer` (no base64, no JSON string a third larger), held in memory only. The
/// shell's zeroizing buffer is handed over rather than copied; Tauri frees it after sending
/// without wiping it, as it did the base64 text this replaced.
#[tauri::command(async)]
pub fn read_attachment(
    state: State<'_, AppState>,
    req: AttachmentRef,
) -> Reply<tauri::ipc::Response> {
    with(&state, |s| s.read_attachment(req))
        .map(|mut bytes| tauri::ipc::Response::new(std::mem::take(&mut *bytes)))
}
