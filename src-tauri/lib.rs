//! ClinVault desktop shell (Tauri 2). As thin as the CLI: `shell` translates commands into core
//! calls, `commands` exposes them to the window, `api` defines what crosses the boundary.

pub mod api;
mod commands;
mod document_commands;
pub mod documents;
mod errors;
pub mod host;
mod rendering;
pub mod shell;
pub mod sync_api;

use std::sync::Mutex;

use tauri::Manager;

use crate::host::DesktopHost;
use crate::shell::Shell;

/// The command names the window may call (also in `commands.txt`, read by build.rs).
pub fn command_names() -> Vec<&'static str> {
    let mut names = commands::STAGED.to_vec();
    names.extend_from_slice(commands::NAMES);
    names.push("passphrase_strength");
    names.extend_from_slice(commands::TITLED);
    names.push("screen_title");
    names.extend_from_slice(&["export_backup", "verify_backup", "cancel_backup"]);
    names.extend_from_slice(document_commands::NAMES);
    names.extend(commands::sync::names());
    names
}

/// Allows exactly the isolation frame in `frame-src`. Its scheme is random per build
/// (`isolation-<uuid>`) and known only to the generated context, so it is added here; the
/// configured value is `'none'`, which is what stays if the pattern were ever switched off.
fn allow_isolation_frame(ctx: &mut tauri::Context<tauri::Wry>) {
    let tauri::Pattern::Isolation { schema, .. } = ctx.pattern() else {
        return;
    };
    let origin = if cfg!(windows) {
        format!("http://{schema}.localhost")
    } else {
        format!("{schema}://localhost")
    };
    if let Some(tauri::utils::config::Csp::DirectiveMap(map)) =
        ctx.config_mut().app.security.csp.as_mut()
    {
        map.insert(
            "frame-src".into(),
            tauri::utils::config::CspDirectiveSources::Inline(origin),
        );
    }
}

/// Ends the session as the window goes, if the shell is free; false when a command holds it
/// (the event loop must not wait for a backup export).
fn end_session_now(window: &tauri::Window) -> bool {
    let state = window.state::<commands::AppState>();
    let mut shell = match state.try_lock() {
        Ok(shell) => shell,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return false,
    };
    shell.window_closed();
    true
}

pub fn run() {
    // A panic message could carry patient data; commands turn panics into a fixed error
    // (`commands::contain`) and the hook prints nothing.
    std::panic::set_hook(Box::new(|_| {}));
    rendering::choose();
    let mut context = tauri::generate_context!();
    allow_isolation_frame(&mut context);
    let app = tauri::Builder::default()
        // First, so a second start hands over to the running window before anything else runs.
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| {
            if let Some(w) = app.get_webview_window("main") {
                let _ = w.unminimize();
                let _ = w.set_focus();
            }
        }))
        // Native open/save dialogs, opened from Rust only: no capability grants the webview
        // any dialog permission, and the isolation hook lets no plugin command through.
        .plugin(tauri_plugin_dialog::init())
        .manage::<commands::AppState>(Mutex::new(Shell::new(DesktopHost)))
        .manage(commands::BackupCancel::default())
        .on_window_event(|window, event| match event {
            // Closing ends the session at once when the shell is free (the guard does it). When
            // a backup export holds the shell: stop it, wait off the event loop (which must keep
            // the window answering), then close.
            tauri::WindowEvent::CloseRequested { api, .. } if !end_session_now(window) => {
                api.prevent_close();
                window.state::<commands::BackupCancel>().cancel();
                let window = window.clone();
                let _ = std::thread::Builder::new()
                    .name("close".into())
                    .spawn(move || {
                        let state = window.state::<commands::AppState>();
                        state
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .window_closed();
                        let _ = window.destroy();
                    });
            }
            tauri::WindowEvent::Destroyed => {
                end_session_now(window);
            }
            _ => {}
        })
        .invoke_handler(tauri::generate_handler![
            commands::status,
            commands::create_vault,
            commands::sign_in,
            commands::complete_sign_in,
            commands::cancel_sign_in,
            commands::sign_out,
            commands::report_activity,
            commands::lock,
            commands::unlock,
            commands::enroll_2fa,
            commands::confirm_2fa,
            commands::regenerate_recovery_codes,
            commands::change_passphrase,
            commands::list_users,
            commands::add_user,
            commands::disable_user,
            commands::enable_user,
            commands::set_user_role,
            commands::reset_2fa,
            commands::signin_history,
            commands::roles,
            commands::create_role,
            commands::policy,
            commands::set_policy,
            commands::rotate_keys,
            commands::passphrase_strength,
            commands::search_patients,
            commands::list_patients,
            commands::patient_appointments,
            commands::patient_notes,
            commands::patient_invoices,
            commands::patient_attachments,
            commands::patient_balance,
            commands::show_patient,
            commands::add_patient,
            commands::update_patient,
            commands::screen_title,
            commands::list_practitioners,
            commands::list_appointment_types,
            commands::day_appointments,
            commands::week_appointments,
            commands::book_appointment,
            commands::move_appointment,
            commands::set_appointment_status,
            commands::resize_appointment,
            commands::list_time_off,
            commands::add_time_off,
            commands::remove_time_off,
            commands::add_practitioner,
            commands::set_working_hours,
            commands::add_appointment_type,
            commands::note_templates,
            commands::template_text,
            commands::add_note_template,
            commands::add_note,
            commands::save_draft,
            commands::finalise_note,
            commands::amend_note,
            commands::show_note,
            commands::invoice_appointment,
            commands::show_invoice,
            commands::record_payment,
            commands::add_attachment,
            document_commands::read_attachment,
            commands::audit_list,
            commands::verify_audit,
            commands::reanchor_audit,
            commands::audit_alerts,
            commands::acknowledge_alert,
            commands::export_audit_csv,
            commands::void_invoice,
            commands::patient_consents,
            commands::record_consent,
            commands::withdraw_consent,
            commands::consent_options,
            commands::outstanding_invoices,
            commands::revenue_report,
            commands::export_backup,
            commands::verify_backup,
            commands::cancel_backup,
            document_commands::create_draft_invoice,
            document_commands::update_draft_invoice,
            document_commands::issue_invoice,
            document_commands::save_invoice_pdf,
            document_commands::save_attachment_copy,
            document_commands::pick_attachment,
            document_commands::choose_backup_path,
            // Sync (administrators).
            commands::sync::sync_overview,
            commands::sync::sync_status,
            commands::sync::set_sync_target,
            commands::sync::test_sync_target,
            commands::sync::set_sync_schedule,
            commands::sync::sync_snapshots,
            commands::sync::sync_push,
            commands::sync::sync_restore_test,
        ])
        .setup(|app| {
            commands::sync::start_timer(app.handle());
            Ok(())
        })
        .build(context);
    match app {
        Ok(app) => app.run(|handle, event| {
            if let tauri::RunEvent::Exit = event {
                let state = handle.state::<commands::AppState>();
                let mut shell = state.lock().unwrap_or_else(|p| p.into_inner());
                shell.window_closed();
            }
        }),
        Err(e) => {
            eprintln!("error: cannot start the ClinVault window: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests;
