//! End-to-end tests against the real desktop app in a real (virtual) window, through
//! tauri-driver and WebKitWebDriver. Each test starts the app on a fresh vault and leaves a
//! screenshot in target/e2e/.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Tests hold a process-wide guard across awaits on purpose: each test has its own runtime, and
// the guard only keeps two app windows from running at once.
#![allow(clippy::await_holding_lock)]

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::{App, ADMIN_PASS, RECEPTION_PASS};

/// The code an authenticator app would show for this otpauth:// URI (an independent TOTP
/// implementation reading the same URI a phone would scan).
fn totp(otpauth_uri: &str, unix: u64) -> String {
    totp_rs::Totp::from_url(otpauth_uri)
        .unwrap()
        .generate(unix)
        .to_string()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread")]
async fn first_run_creates_the_admin_and_shows_the_recovery_key_once() {
    let app = App::start("first_run").await;
    assert!(!app.vault.exists());
    let key = app.first_run().await;
    // 55 characters in dash-separated groups of five.
    let groups: Vec<&str> = key.split('-').collect();
    assert!(
        groups.len() >= 10 && groups.iter().all(|g| g.len() == 5),
        "{key}"
    );
    assert!(app.vault.join("vault.keys").exists());
    // Continue is refused until the person says they saved it.
    let disabled = app.el("#rk-continue").await.attr("disabled").await.unwrap();
    assert!(
        disabled.is_some(),
        "Continue is enabled before \"I have saved it\""
    );
    app.screenshot("recovery-key").await;
    app.click("#rk-saved").await;
    app.click("#rk-continue").await;
    app.el("#enrol-code").await;
    let source = app.client.source().await.unwrap();
    assert!(
        !source.contains(&key),
        "the recovery key is still on the page"
    );
    app.client
        .find(fantoccini::Locator::XPath(
            "//button[normalize-space()='Not now']",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    app.wait_text("#home-title", "Ada Admin", 10).await;
    assert!(!app.client.source().await.unwrap().contains(&key));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn totp_enrolment_then_sign_in_with_a_code_and_a_wrong_code_is_refused() {
    let app = App::start("totp").await;
    app.first_run().await;
    app.click("#rk-saved").await;
    app.click("#rk-continue").await;
    let secret = app.text_of("#totp-secret").await;
    let uri = app
        .el("#totp-secret")
        .await
        .attr("data-otpauth")
        .await
        .unwrap()
        .unwrap();
    assert!(uri.starts_with("otpauth://totp/") && uri.contains(secret.trim()));
    let enrolled_at = now();
    app.fill("#enrol-code", &totp(&uri, enrolled_at)).await;
    app.click("#enrol-confirm").await;
    app.el("#recovery-codes").await;
    let codes = app
        .client
        .find_all(fantoccini::Locator::Css("#recovery-codes li"))
        .await
        .unwrap();
    assert_eq!(codes.len(), 10);
    let first = codes[0].text().await.unwrap();
    assert!(first.len() == 11 && first.as_bytes()[5] == b'-', "{first}");
    app.click("#codes-saved").await;
    app.click("#codes-done").await;
    app.el("#home-title").await;
    app.click("#nav-signout").await;

    // A wrong code: a clear error, and back to the passphrase.
    app.sign_in("admin", ADMIN_PASS).await;
    app.fill("#si-code", "000000").await;
    app.click("#si-code-submit").await;
    let err = app.wait_text("#si-error", "code is not correct", 20).await;
    assert!(
        err.starts_with("that authenticator or recovery code"),
        "{err}"
    );
    app.screenshot("wrong-code").await;
    app.el("#si-username").await;

    // The code used at enrolment cannot be replayed: wait for the next 30-second step.
    let next_step = (enrolled_at / 30 + 1) * 30;
    while now() < next_step {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    app.sign_in("admin", ADMIN_PASS).await;
    app.el("#si-code").await;
    app.fill("#si-code", &totp(&uri, now())).await;
    app.click("#si-code-submit").await;
    app.wait_text("#home-title", "Ada Admin", 20).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_idle_lock_fires_and_the_lock_screen_shows_no_clinic_data() {
    let app = App::start("idle_lock").await;
    app.first_run().await;
    app.skip_to_home().await;
    app.click("#nav-admin").await;
    app.click("#tab-policy").await;
    app.fill("#pol-idle-lock-minutes", "1").await;
    app.click("#save-idle-lock-minutes").await;
    app.wait_text("#admin-msg", "Saved idle-lock-minutes", 10)
        .await;
    app.click("#nav-home").await;
    app.wait_text("#home-panel", "1 minute", 10).await;

    // No keyboard or mouse activity from here: the core's clock locks the session.
    app.wait_for("#lock-screen", 90).await;
    let text = app.text().await;
    assert!(text.contains("ClinVault is locked"), "{text}");
    for hidden in [
        "Welcome",
        "Administration",
        "Users",
        "idle-lock-minutes",
        "Ada Admin (administrator)",
    ] {
        assert!(
            !text.contains(hidden),
            "the lock screen shows {hidden:?}: {text}"
        );
    }
    assert!(!app.exists("#home-panel").await && !app.exists("nav.top").await);
    // A locked session refuses commands in the core, not just in the UI.
    let denied = app.invoke_raw("list_users", serde_json::json!({})).await;
    assert_eq!(denied["err"]["kind"], "session_locked", "{denied}");
    app.screenshot("locked").await;

    app.fill("#lock-pass", "not my passphrase at all").await;
    app.click("#lock-unlock").await;
    app.wait_text("#lock-error", "wrong", 20).await;
    app.fill("#lock-pass", ADMIN_PASS).await;
    app.click("#lock-unlock").await;
    app.el("#home-title").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receptionist_cannot_reach_administration_and_the_core_denies_a_direct_call() {
    let app = App::start("receptionist").await;
    app.first_run().await;
    app.skip_to_home().await;
    app.click("#nav-admin").await;
    app.fill("#nu-username", "rita").await;
    app.fill("#nu-display", "Rita Reception").await;
    app.el("#nu-role option[value='receptionist']")
        .await
        .click()
        .await
        .unwrap();
    app.fill("#nu-pass", RECEPTION_PASS).await;
    app.click("#nu-add").await;
    app.wait_text("#admin-msg", "Added rita", 20).await;
    app.wait_text("#users-table", "rita", 10).await;
    app.click("#nav-signout").await;

    // A wrong passphrase: a clear error.
    app.sign_in("rita", "not the right passphrase").await;
    let err = app
        .wait_text("#si-error", "wrong username or passphrase", 20)
        .await;
    assert_eq!(err.trim(), "wrong username or passphrase");
    app.screenshot("wrong-passphrase").await;

    app.sign_in("rita", RECEPTION_PASS).await;
    app.wait_text("#whoami", "receptionist", 20).await;
    assert!(
        !app.exists("#nav-admin").await,
        "administration is offered to a receptionist"
    );

    let denied = app.invoke_raw("list_users", serde_json::json!({})).await;
    assert_eq!(denied["err"]["kind"], "permission_denied", "{denied}");
    assert!(
        denied["err"]["message"]
            .as_str()
            .unwrap()
            .contains("receptionist"),
        "{denied}"
    );
    let denied = app
        .invoke_raw(
            "set_policy",
            serde_json::json!({ "req": { "key": "idle-lock-minutes", "value": "240" } }),
        )
        .await;
    assert_eq!(denied["err"]["kind"], "permission_denied", "{denied}");
    app.stop().await;
}

/// Adds a user through the administration screen (the admin is signed in).
async fn add_user_via_ui(app: &App, user: &str, display: &str, role: &str, pass: &str) {
    app.click("#nav-admin").await;
    app.fill("#nu-username", user).await;
    app.fill("#nu-display", display).await;
    app.el(&format!("#nu-role option[value='{role}']"))
        .await
        .click()
        .await
        .unwrap();
    app.fill("#nu-pass", pass).await;
    app.click("#nu-add").await;
    app.wait_text("#admin-msg", &format!("Added {user}"), 20)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn patients_search_create_with_field_errors_record_tabs_and_reception_refused_notes() {
    use fantoccini::key::Key;

    let app = App::start("patients").await;
    app.first_run().await;
    app.skip_to_home().await;
    add_user_via_ui(
        &app,
        "rita",
        "Rita Reception",
        "receptionist",
        RECEPTION_PASS,
    )
    .await;

    app.click("#nav-patients").await;
    app.el("#patient-search").await;
    app.wait_text("#patient-results", "No patients yet", 10)
        .await;

    // Create: the core's validation lands beside the field it names.
    app.click("#patient-new").await;
    app.fill("#pf-first_name", "Zelda").await;
    app.click("#pf-save").await;
    let err = app.wait_text("#pf-error-last_name", "required", 10).await;
    assert_eq!(err.trim(), "required");
    app.fill("#pf-last_name", "Quinton").await;
    app.fill("#pf-date_of_birth", "1984-13-40").await;
    app.click("#pf-save").await;
    app.wait_text("#pf-error-date_of_birth", "not a valid date", 10)
        .await;
    let invalid = app
        .el("#pf-date_of_birth")
        .await
        .attr("aria-invalid")
        .await
        .unwrap();
    assert_eq!(invalid.as_deref(), Some("true"));
    app.screenshot("form-errors").await;
    app.fill("#pf-date_of_birth", "1984-05-06").await;
    app.fill("#pf-phone", "020 7946 0001").await;
    app.click("#pf-save").await;
    app.wait_text("#record-title", "Quinton, Zelda", 10).await;
    app.wait_text("#rd-date_of_birth", "1984-05-06", 10).await;

    // Edit from the record.
    app.click("#record-edit").await;
    app.fill("#pf-email", "zelda@example.org").await;
    app.click("#pf-save").await;
    app.wait_text("#rd-email", "zelda@example.org", 10).await;
    app.screenshot("record").await;

    // Tabs, by keyboard: arrow keys move between them.
    app.el("#ptab-details")
        .await
        .send_keys(&Key::Right.to_string())
        .await
        .unwrap();
    app.wait_text("#record-appointments", "No appointments", 10)
        .await;
    app.click("#ptab-notes").await;
    app.wait_text("#record-notes", "No treatment notes", 10)
        .await;
    app.click("#ptab-invoices").await;
    app.wait_text("#record-balance", "0.00", 10).await;
    app.click("#ptab-attachments").await;
    app.wait_text("#record-attachments", "No attachments", 10)
        .await;

    // A second patient, then instant search and keyboard selection.
    app.click("#record-back").await;
    app.click("#patient-new").await;
    app.fill("#pf-first_name", "Zachary").await;
    app.fill("#pf-last_name", "Abbott").await;
    app.click("#pf-save").await;
    app.wait_text("#record-title", "Abbott, Zachary", 10).await;
    app.click("#record-back").await;
    app.fill("#patient-search", "z").await;
    app.wait_text("#patient-results", "Abbott", 10).await;
    app.wait_text("#patient-results", "Quinton", 10).await;
    app.fill("#patient-search", "quin").await;
    // Results follow the typing: the other patient drops out.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let results = app.text_of("#patient-results").await;
        if results.contains("Quinton") && !results.contains("Abbott") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{results}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.screenshot("search").await;
    app.el("#patient-search")
        .await
        .send_keys(&Key::Enter.to_string())
        .await
        .unwrap();
    app.wait_text("#record-title", "Quinton, Zelda", 10).await;
    // Nothing of the patient is kept where the page could leave it behind.
    let stored = app
        .client
        .execute(
            "return JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.title;",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        !stored.as_str().unwrap().contains("Zelda")
            && !stored.as_str().unwrap().contains("Quinton"),
        "{stored}"
    );

    // Reception: demographics yes, treatment notes no (the core refuses).
    app.click("#nav-signout").await;
    app.sign_in("rita", RECEPTION_PASS).await;
    app.wait_text("#whoami", "receptionist", 20).await;
    app.click("#nav-patients").await;
    app.fill("#patient-search", "zel").await;
    app.wait_text("#patient-results", "Quinton", 10).await;
    app.el("#pr-0").await.click().await.unwrap();
    app.wait_text("#record-title", "Quinton, Zelda", 10).await;
    app.click("#ptab-notes").await;
    let refused = app.wait_text("#tab-error", "permission denied", 10).await;
    assert!(!refused.contains("Zelda"), "{refused}");
    app.screenshot("reception-notes-refused").await;
    let id = app
        .invoke_raw(
            "search_patients",
            serde_json::json!({ "req": { "text": "zel", "limit": 5 } }),
        )
        .await["ok"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let denied = app
        .invoke_raw("patient_notes", serde_json::json!({ "req": { "id": id } }))
        .await;
    assert_eq!(denied["err"]["kind"], "permission_denied", "{denied}");
    app.stop().await;
}
