// Tauri's isolation application: every IPC message from the main frame passes through this
// sandboxed frame before it is encrypted for the core. It lets through only the app's own
// commands (plus Tauri's internal plugin calls the API needs), so code injected into the main
// frame cannot reach anything else even if a capability were too broad.
const ALLOWED = /^(status|create_vault|sign_in|complete_sign_in|cancel_sign_in|sign_out|report_activity|lock|unlock|enroll_2fa|confirm_2fa|regenerate_recovery_codes|change_passphrase|list_users|add_user|disable_user|enable_user|set_user_role|reset_2fa|signin_history|roles|create_role|policy|set_policy|rotate_keys|passphrase_strength|search_patients|list_patients|patient_appointments|patient_notes|patient_invoices|patient_attachments|patient_balance|show_patient|add_patient|update_patient|screen_title|list_practitioners|list_appointment_types|day_appointments|week_appointments|book_appointment|move_appointment|set_appointment_status|add_practitioner|set_working_hours|add_appointment_type|note_templates|template_text|add_note_template|add_note|save_draft|finalise_note|amend_note|show_note|invoice_appointment|show_invoice|record_payment|add_attachment|read_attachment|audit_list|verify_audit|reanchor_audit|audit_alerts|acknowledge_alert|export_backup|verify_backup|cancel_backup|export_audit_csv|void_invoice|patient_consents|record_consent|withdraw_consent|consent_options|outstanding_invoices|revenue_report|create_draft_invoice|update_draft_invoice|issue_invoice|save_invoice_pdf|save_attachment_copy|pick_attachment|choose_backup_path|sync_overview|sync_status|set_sync_target|test_sync_target|set_sync_schedule|sync_snapshots|sync_push|sync_restore_test|resize_appointment|list_time_off|add_time_off|remove_time_off)$/;
window.__TAURI_ISOLATION_HOOK__ = (payload) => {
  if (payload && typeof payload.cmd === 'string' && !ALLOWED.test(payload.cmd)) {
    throw new Error('command not allowed: ' + payload.cmd);
  }
  return payload;
};
