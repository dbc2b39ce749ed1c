//! End-to-end tests against the real desktop app in a real (virtual) window, through
//! tauri-driver and WebKitWebDriver. Each test starts the app on a fresh vault and leaves a
//! screenshot in target/e2e/.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Tests hold a process-wide guard across awaits on purpose: each test has its own runtime, and
// the guard only keeps two app windows from running at once.
#![allow(clippy::await_holding_lock)]

mod documents;
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
    app.click("#pr-0").await;
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

/// Viewport coordinates of a point a third of the way into the 15-minute slot starting at
/// `hhmm`, in the calendar's `col`-th day column. `scroll` first brings that slot to the
/// middle of the grid; measure the other points of a drag without scrolling.
async fn slot_point(app: &App, hhmm: &str, col: usize, scroll: bool) -> (f64, f64) {
    let v = app
        .client
        .execute(
            "const [hh, col, scroll] = arguments;
             const t = [...document.querySelectorAll('.ec-body .ec-sidebar time')]
               .find((e) => (e.getAttribute('datetime') || '').includes('T' + hh) || (e.getAttribute('datetime') || '').startsWith(hh));
             if (!t) return null;
             const slot = t.parentElement;
             if (scroll) slot.scrollIntoView({ block: 'center' });
             const r = slot.getBoundingClientRect();
             const cols = document.querySelectorAll('.ec-body > .ec-grid > *');
             const d = cols[col].getBoundingClientRect();
             return [d.left + d.width / 2, r.top + r.height / 3];",
            vec![
                serde_json::json!(hhmm),
                serde_json::json!(col),
                serde_json::json!(scroll),
            ],
        )
        .await
        .unwrap();
    let a = v
        .as_array()
        .unwrap_or_else(|| panic!("no slot {hhmm}: {v}"));
    (a[0].as_f64().unwrap(), a[1].as_f64().unwrap())
}

async fn pointer(app: &App, steps: Vec<fantoccini::actions::PointerAction>) {
    use fantoccini::actions::{InputSource, MouseActions};
    let mut m = MouseActions::new("mouse".into());
    for s in steps {
        m = m.then(s);
    }
    app.client.perform_actions(m).await.unwrap();
    app.client.release_actions().await.unwrap();
}

fn move_to(x: f64, y: f64, ms: u64) -> fantoccini::actions::PointerAction {
    fantoccini::actions::PointerAction::MoveTo {
        duration: Some(Duration::from_millis(ms)),
        x,
        y,
    }
}

/// Waits until some element matching `css` has `needle` in its textContent (the calendar's
/// event layer is not always in WebDriver's rendered text).
async fn wait_content(app: &App, css: &str, needle: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let t = app
            .client
            .execute(
                "return [...document.querySelectorAll(arguments[0])].map((e) => e.textContent).join(' | ');",
                vec![serde_json::json!(css), ],
            )
            .await
            .unwrap();
        let t = t.as_str().unwrap_or_default().to_owned();
        if t.contains(needle) {
            return;
        }
        if std::time::Instant::now() > deadline {
            app.screenshot("failure").await;
            panic!("{css} never showed {needle:?}: {t}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_gone(app: &App, css: &str, needle: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let t = app.text_of(css).await;
        if !t.contains(needle) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{css} still shows {needle:?}: {t}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
/// "A day at the clinic", as far as the screens go: the administrator sets up a practitioner
/// and a receptionist; reception creates a patient, books by clicking a slot, moves it by
/// drag (and sees the core refuse a move), marks arrival; the practitioner writes a note from
/// a template (autosaved draft), finalises and amends it; reception invoices the appointment
/// and takes payment, and cannot open the note; finally no file outside the vault holds the
/// patient's name or the note's text.
async fn a_day_at_the_clinic() {
    use fantoccini::actions::{PointerAction, MOUSE_BUTTON_LEFT};
    const PRACTITIONER_PASS: &str = "saffron glacier tandem umbrella";

    let app = App::start("clinic-day").await;
    let started = std::time::SystemTime::now();
    app.first_run().await;
    app.skip_to_home().await;
    add_user_via_ui(&app, "sam", "Sam Physio", "practitioner", PRACTITIONER_PASS).await;
    add_user_via_ui(
        &app,
        "rita",
        "Rita Reception",
        "receptionist",
        RECEPTION_PASS,
    )
    .await;

    // The administrator sets up the practitioner: column, hours, an appointment type.
    app.click("#tab-practitioners").await;
    app.wait_text("#practitioners-table", "No practitioners", 10)
        .await;
    app.el("#pr-user option[value='sam']")
        .await
        .click()
        .await
        .unwrap();
    app.click("#pr-add").await;
    app.wait_text("#practitioners-table", "Sam Physio", 10)
        .await;
    app.el("#wh-user option[value='sam']")
        .await
        .click()
        .await
        .unwrap();
    app.client
        .find(fantoccini::Locator::XPath(
            "//select[@id='wh-days']/option[.='Every day']",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    app.fill("#wh-hours", "08:00-18:00").await;
    app.click("#wh-save").await;
    app.wait_text("#practitioners-table", "Sun 08:00-18:00", 10)
        .await;
    app.fill("#at-name", "Follow-up").await;
    app.fill("#at-minutes", "30").await;
    app.fill("#at-price", "75.00").await;
    app.click("#at-add").await;
    app.wait_text("#types-list", "Follow-up (30 min)", 10).await;
    app.fill("#tpl-name", "SOAP").await;
    app.click("#tpl-add").await;
    app.wait_text("#admin-msg", "Added the template SOAP", 10)
        .await;
    app.screenshot("admin-practitioners").await;
    app.click("#nav-signout").await;

    // Reception: a patient, then the calendar.
    app.sign_in("rita", RECEPTION_PASS).await;
    app.wait_text("#whoami", "receptionist", 20).await;
    app.click("#nav-patients").await;
    app.click("#patient-new").await;
    app.fill("#pf-first_name", "Ann").await;
    app.fill("#pf-last_name", "Calendarson").await;
    app.click("#pf-save").await;
    app.wait_text("#record-title", "Calendarson, Ann", 10).await;

    // Any style the strict CSP refused would be reported here.
    app.watch_csp().await;
    app.click("#nav-calendar").await;
    app.wait_text("#calendar", "Sam Physio", 20).await;

    // Click the empty 10:00 slot in Sam's column.
    let (x, y) = slot_point(&app, "10:00", 0, true).await;
    pointer(
        &app,
        vec![
            move_to(x, y, 50),
            PointerAction::Down {
                button: MOUSE_BUTTON_LEFT,
            },
            PointerAction::Up {
                button: MOUSE_BUTTON_LEFT,
            },
        ],
    )
    .await;
    let start = app
        .el("#book-start")
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    assert!(start.ends_with("T10:00"), "{start}");
    app.fill("#book-patient", "calend").await;
    app.click("#book-hit-0").await;
    app.wait_text("#book-chosen", "Calendarson", 10).await;
    app.screenshot("book").await;
    app.click("#book-save").await;
    app.wait_text("#cal-notice", "Booked", 10).await;
    wait_content(&app, ".ec-event.appt", "Ann Calendarson").await;
    // The library's layout (custom properties set from script) works under the CSP.
    let h = app
        .client
        .execute(
            "const e = document.querySelector('.ec-event.appt'); return e ? e.getBoundingClientRect().height : 0;",
            vec![],
        )
        .await
        .unwrap();
    assert!(h.as_f64().unwrap() > 20.0, "event height {h}");

    // Drag it one hour later.
    let event_top = || async {
        let ev = app
            .client
            .execute(
                "const r = document.querySelector('.ec-event.appt').getBoundingClientRect(); return [r.left + r.width / 2, r.top + 5];",
                vec![],
            )
            .await
            .unwrap();
        (ev[0].as_f64().unwrap(), ev[1].as_f64().unwrap())
    };
    let drag = |ex: f64, ey: f64, ty: f64| {
        vec![
            move_to(ex, ey, 50),
            PointerAction::Down {
                button: MOUSE_BUTTON_LEFT,
            },
            move_to(ex, ey + (ty - ey).signum() * 8.0, 100),
            move_to(ex, (ey + ty) / 2.0, 200),
            move_to(ex, ty, 200),
            PointerAction::Up {
                button: MOUSE_BUTTON_LEFT,
            },
        ]
    };
    slot_point(&app, "10:30", 0, true).await;
    let (_, y10) = slot_point(&app, "10:00", 0, false).await;
    let (_, y11) = slot_point(&app, "11:00", 0, false).await;
    let (ex, ey) = event_top().await;
    pointer(&app, drag(ex, ey, ey + (y11 - y10))).await;
    app.wait_text("#cal-notice", "Moved to", 10).await;
    let moved = app.text_of("#cal-notice").await;
    assert!(moved.contains("11:00"), "{moved}");
    app.screenshot("moved").await;

    // Dragging it before Sam starts work: the core refuses, says why, and it goes back.
    slot_point(&app, "09:30", 0, true).await;
    let (_, y0730) = slot_point(&app, "07:30", 0, false).await;
    let (_, y11) = slot_point(&app, "11:00", 0, false).await;
    let (ex, ey) = event_top().await;
    pointer(&app, drag(ex, ey, ey - (y11 - y0730))).await;
    let err = app
        .wait_text("#cal-error", "outside the practitioner's hours", 10)
        .await;
    assert!(!err.contains("Calendarson"), "{err}");
    app.screenshot("refused").await;
    assert!(
        app.exists("#cal-error").await,
        "the refusal did not stay on screen"
    );

    // Arrival from the appointment.
    app.client
        .execute(
            "document.querySelector('.ec-event.appt').scrollIntoView({ block: 'center' });",
            vec![],
        )
        .await
        .unwrap();
    app.el(".ec-event.appt").await.click().await.unwrap();
    let when = app.text_of("#appt-when").await;
    assert!(
        when.contains("11:00"),
        "the refused move changed the time: {when}"
    );
    app.click("#appt-arrived").await;
    app.wait_text("#appt-status", "arrived", 10).await;
    app.screenshot("arrived").await;
    app.click("#appt-close").await;
    wait_gone(&app, "body", "Cancellation reason").await;
    app.click(".ec-button.ec-resourceTimeGridWeek, button[title*='eek']")
        .await;
    wait_content(&app, ".ec-event.appt", "Ann Calendarson").await;
    app.screenshot("week").await;
    // The dark theme reaches the calendar too.
    app.el("select[aria-label='Theme'] option[value='dark']")
        .await
        .click()
        .await
        .unwrap();
    app.screenshot("week-dark").await;
    app.el("select[aria-label='Theme'] option[value='system']")
        .await
        .click()
        .await
        .unwrap();

    app.assert_no_csp_violations().await;
    app.click("#nav-signout").await;

    // The practitioner writes the note from a template; the draft saves itself.
    const NOTE_MARKER: &str = "Zygomaticus-Marker-7731 flexion improved";
    app.sign_in("sam", PRACTITIONER_PASS).await;
    app.wait_text("#whoami", "practitioner", 20).await;
    // Home: the practitioner's own appointments today.
    app.wait_text("#home-appointments", "Ann Calendarson", 10)
        .await;
    assert!(app.el("#home-mine").await.is_selected().await.unwrap());
    app.screenshot("home-practitioner").await;
    open_patient(&app, "calendarson", "Calendarson, Ann").await;
    app.click("#ptab-notes").await;
    app.click("#note-new").await;
    app.el("#note-template option[value='SOAP']")
        .await
        .click()
        .await
        .unwrap();
    app.click("#note-use-template").await;
    let body = app.el("#note-body").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !body
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default()
        .contains("## Plan")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the template text was not inserted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.el("#note-appointment option:nth-child(2)")
        .await
        .click()
        .await
        .unwrap();
    body.send_keys(NOTE_MARKER).await.unwrap();
    app.wait_text("#note-saved", "Draft saved", 15).await;
    app.screenshot("note-draft").await;
    app.click("#note-finalise").await;
    app.wait_text("#note-current", NOTE_MARKER, 10).await;
    app.fill("#amend-body", &format!("{NOTE_MARKER}; amended"))
        .await;
    app.click("#amend-save").await;
    app.wait_text("#note-error", "reason", 10).await;
    app.fill("#amend-reason", "added the range").await;
    app.click("#amend-save").await;
    app.wait_text("#note-saved", "Amendment saved", 10).await;
    let history = app.text_of("#note-history").await;
    assert!(
        history.contains("Version 3")
            && history.contains("amendment")
            && history.contains("added the range"),
        "{history}"
    );
    app.screenshot("note-final").await;
    app.click("#note-close").await;
    app.wait_text("#record-notes", "final", 10).await;
    let note_id = app
        .invoke_raw(
            "patient_notes",
            serde_json::json!({ "req": { "id": patient_id(&app, "calendarson").await } }),
        )
        .await["ok"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.click("#nav-signout").await;

    // Reception invoices the appointment and takes payment; the note stays closed to them.
    app.sign_in("rita", RECEPTION_PASS).await;
    app.wait_text("#whoami", "receptionist", 20).await;
    open_patient(&app, "calendarson", "Calendarson, Ann").await;
    app.click("#ptab-appointments").await;
    app.click("#appt-invoice-0").await;
    app.wait_text("#inv-total", "75.00", 10).await;
    app.wait_text("#inv-balance", "75.00", 10).await;
    app.fill("#pay-amount", "75.00").await;
    app.el("#pay-method option[value='cash']")
        .await
        .click()
        .await
        .unwrap();
    app.click("#pay-save").await;
    app.wait_text("#inv-msg", "Balance 0.00", 10).await;
    assert_eq!(app.text_of("#inv-paid").await.trim(), "75.00");
    app.screenshot("invoice-paid").await;
    app.click("#inv-close").await;
    app.wait_text("#record-balance", "0.00", 10).await;
    app.click("#ptab-consents").await;
    app.wait_text("#record-consents", "No consents", 10).await;
    app.el("#nc-kind option[value='treatment']")
        .await
        .click()
        .await
        .unwrap();
    app.click("#nc-save").await;
    app.wait_text("#record-consents", "treatment", 10).await;
    app.click("#ptab-notes").await;
    app.wait_text("#tab-error", "permission denied", 10).await;
    let denied = app
        .invoke_raw("show_note", serde_json::json!({ "req": { "id": note_id } }))
        .await;
    assert_eq!(denied["err"]["kind"], "permission_denied", "{denied}");
    assert!(!denied.to_string().contains("Zygomaticus"), "{denied}");
    app.screenshot("reception-note-refused").await;

    // Reception files a scanned letter (picked with the file chooser; the bytes go over IPC
    // to the core, which encrypts them as it stores them). The source file sits outside the
    // scanned folders; the marker after the PNG's end must not turn up anywhere else.
    let letter = support::artefact_dir().join("scanned-letter.png");
    let mut png = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/icons/32x32.png")).unwrap();
    png.extend_from_slice(b"Attachment-Marker-4471");
    std::fs::write(&letter, &png).unwrap();
    app.click("#ptab-attachments").await;
    app.el("#att-file")
        .await
        .send_keys(letter.to_str().unwrap())
        .await
        .unwrap();
    app.wait_text("#att-msg", "Added scanned-letter.png", 20)
        .await;
    assert!(
        !app.exists("#att-view-0").await,
        "reception is offered to open attachments"
    );
    app.screenshot("attachment-added").await;
    app.click("#nav-signout").await;

    // The administrator views it inside the app, then reviews the trail.
    app.sign_in("admin", ADMIN_PASS).await;
    app.wait_text("#whoami", "administrator", 20).await;
    app.wait_text("#home-alerts", "open audit alert", 10).await;
    open_patient(&app, "calendarson", "Calendarson, Ann").await;
    app.click("#ptab-attachments").await;
    app.wait_text("#record-attachments", "scanned-letter.png", 10)
        .await;
    app.click("#att-view-0").await;
    app.el("#att-image").await;
    let width = app
        .client
        .execute(
            "const i = document.getElementById('att-image'); return i.complete ? i.naturalWidth : new Promise((r) => { i.onload = () => r(i.naturalWidth); i.onerror = () => r(-1); });",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(width, serde_json::json!(32), "the image did not decode");
    app.screenshot("attachment-viewed").await;

    // Billing: the paid invoice is not outstanding; the revenue report and its chart show it.
    app.click("#nav-billing").await;
    app.wait_text("#outstanding", "Nothing outstanding", 10)
        .await;
    app.wait_text("#rev-total", "Total 75.00 on 1 invoice", 10)
        .await;
    let bar = app
        .client
        .execute(
            "const b = document.querySelector('#rev-chart .bar'); return b ? b.getBoundingClientRect().width : 0;",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        bar.as_f64().unwrap() > 50.0,
        "the revenue bar has no width: {bar}"
    );
    app.screenshot("billing").await;

    // From the patient's record to everything recorded about it, including the entries about
    // the patient's note, appointment and invoice.
    let pid = patient_id(&app, "calendarson").await;
    open_patient(&app, "calendarson", "Calendarson, Ann").await;
    app.click("#record-access-log").await;
    let trail = app.wait_text("#audit-table", "patient.create", 10).await;
    assert_eq!(
        app.el("#af-patient").await.prop("value").await.unwrap(),
        Some(pid)
    );
    for action in [
        "patient.view",
        "attachment.add",
        "attachment.view",
        "invoice.balance",
        "invoice.payment",
        "appointment.status",
        "note.finalise",
        "note.amend",
    ] {
        assert!(trail.contains(action), "{action} missing from {trail}");
    }
    assert!(
        !trail.contains("Calendarson"),
        "a name in the trail: {trail}"
    );
    app.click("#af-clear").await;
    app.fill("#af-user", "rita").await;
    app.click("#af-search").await;
    let trail = app.wait_text("#audit-table", "appointment.move", 10).await;
    for action in [
        "appointment.book",
        "appointment.status",
        "invoice.create",
        "invoice.payment",
    ] {
        assert!(trail.contains(action), "{action} missing from {trail}");
    }
    app.el("#af-outcome option[value='denied']")
        .await
        .click()
        .await
        .unwrap();
    app.click("#af-search").await;
    app.wait_text("#audit-table", "note.view", 10).await;
    app.screenshot("audit").await;
    let csv = app.vault.parent().unwrap().join("trail.csv");
    app.fill("#af-csv", csv.to_str().unwrap()).await;
    app.click("#af-export").await;
    app.wait_text("#af-csv-msg", "Exported", 10).await;
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(
        text.contains("note.view") && text.contains("denied"),
        "{text}"
    );
    app.click("#audit-verify").await;
    let verdict = app.wait_text("#verify-result", "entries checked", 20).await;
    assert!(verdict.starts_with("Intact"), "{verdict}");
    let open_alerts = app
        .client
        .find_all(fantoccini::Locator::Css("[id^='alert-ack-']"))
        .await
        .unwrap()
        .len();
    assert!(open_alerts > 0, "adding staff raises role-change alerts");
    app.click("#alert-ack-0").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app
        .client
        .find_all(fantoccini::Locator::Css("[id^='alert-ack-']"))
        .await
        .unwrap()
        .len()
        != open_alerts - 1
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the alert was not acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.screenshot("audit-verified").await;

    // Backup: exported where the administrator says, with progress over the channel, then
    // verified. It lands in the scanned home folder: encrypted, it must hold no marker.
    let backup = app
        .vault
        .parent()
        .unwrap()
        .join("backups")
        .join("clinic.cvbackup");
    std::fs::create_dir_all(backup.parent().unwrap()).unwrap();
    app.click("#nav-backup").await;
    app.fill("#bk-path", backup.to_str().unwrap()).await;
    app.fill("#bk-pass", "a long backup passphrase for the day")
        .await;
    app.click("#bk-export").await;
    app.wait_text("#bk-result", "Backup written", 60).await;
    assert!(backup.exists());
    app.wait_text("#backup-pct", "100%", 10).await;
    app.fill("#bv-secret", "a long backup passphrase for the day")
        .await;
    app.click("#bv-verify").await;
    let verdict = app.wait_text("#bv-result", "audit trail", 60).await;
    assert!(verdict.contains("audit trail intact"), "{verdict}");
    assert!(verdict.contains("1 patients"), "{verdict}");
    // And restored into a new folder (also scanned below: it must be encrypted too).
    let restored = app.vault.parent().unwrap().join("restored-vault");
    app.fill("#bv-restore", restored.to_str().unwrap()).await;
    app.click("#bv-verify").await;
    app.wait_text("#bv-restored", "Restored into", 60).await;
    assert!(restored.join("vault.keys").exists());
    app.screenshot("backup").await;
    // Still no CSP violation in this window, since the calendar (same document throughout).
    app.assert_no_csp_violations().await;

    let vault = app.vault.clone();
    let home_dir = app.stop_keeping_home().await;
    let home = home_dir.path().to_path_buf();
    // Give the app a moment to exit and flush what it writes on the way out.
    tokio::time::sleep(Duration::from_secs(1)).await;

    support::assert_no_plaintext_outside_vault(
        "clinic-day",
        &home,
        &vault,
        started,
        &[
            b"Calendarson",
            b"Zygomaticus-Marker-7731",
            b"added the range",
        ],
    );
    // The vault itself was written (and holds no plaintext either: SQLCipher encrypts it).
    assert!(vault.join("vault.keys").exists());
    drop(home_dir);
}

/// As `slot_point`, for any quarter hour: the sidebar labels every half hour, so a quarter
/// past is found half way down its half hour's label.
async fn quarter_point(app: &App, hhmm: &str, col: usize, scroll: bool) -> (f64, f64) {
    let (h, m) = hhmm.split_once(':').unwrap();
    let m: u32 = m.parse().unwrap();
    let (x, y) = slot_point(app, &format!("{h}:{:02}", m / 30 * 30), col, scroll).await;
    if m.is_multiple_of(30) {
        return (x, y);
    }
    let (_, next) = slot_point(app, &format!("{h}:{:02}", m / 30 * 30), col, false).await;
    let half = app
        .client
        .execute(
            "const t = [...document.querySelectorAll('.ec-body .ec-sidebar time')]; return t[1].parentElement.getBoundingClientRect().height;",
            vec![],
        )
        .await
        .unwrap()
        .as_f64()
        .unwrap();
    (x, next + half / 2.0)
}

/// The calendar's resize and time off, on a vault prepared through the core (a practitioner
/// working 08:00–18:00 every day and one 30-minute booking today at 12:00): the administrator
/// records time off by selecting 14:00–16:00 in Sam's column and sees it shaded with its reason;
/// reception sees it without the reason, lengthens the appointment by dragging its lower edge
/// (12:30 → 13:00), sees a drag into the time off refused with the core's reason and the event
/// snap back, and is refused a booking clicked inside the time off.
#[tokio::test(flavor = "multi_thread")]
async fn calendar_resize_by_drag_and_time_off_shaded_and_refusing() {
    use clinvault_core::appointments::Booking;
    use clinvault_core::patients::PatientFields;
    use fantoccini::actions::{PointerAction, MOUSE_BUTTON_LEFT};
    use secrecy::SecretString;

    // The webview's today (the calendar opens on it); the clinic's time zone is UTC, and the
    // calendar shows the core's local times as they are.
    let today = jiff::Zoned::now().date().to_string();
    let app = App::start_with("calendar-resize", |path| {
        let mut s = support::seeded_admin(path);
        s.add_user(
            "sam",
            Some("Sam Physio"),
            "practitioner",
            &SecretString::from("saffron glacier tandem umbrella".to_owned()),
        )
        .unwrap();
        s.add_user(
            "rita",
            Some("Rita Reception"),
            "receptionist",
            &SecretString::from(RECEPTION_PASS.to_owned()),
        )
        .unwrap();
        s.add_practitioner("sam").unwrap();
        for d in ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"] {
            s.set_working_hours("sam", d, "08:00-18:00").unwrap();
        }
        s.add_appointment_type("Follow-up", 30, "75.00", None)
            .unwrap();
        let p = s
            .add_patient(PatientFields {
                first_name: Some("Ann".into()),
                last_name: Some("Lengthy".into()),
                ..Default::default()
            })
            .unwrap();
        s.book_appointment(&Booking {
            patient_id: &p.id,
            practitioner: "sam",
            appointment_type: "Follow-up",
            start_local: &format!("{today}T12:00"),
            weekly_occurrences: 1,
            allow_override: false,
        })
        .unwrap();
    })
    .await;
    let press = |x: f64, y0: f64, y1: f64| {
        vec![
            move_to(x, y0, 50),
            PointerAction::Down {
                button: MOUSE_BUTTON_LEFT,
            },
            move_to(x, y0 + (y1 - y0).signum() * 8.0, 100),
            move_to(x, (y0 + y1) / 2.0, 200),
            move_to(x, y1, 200),
            PointerAction::Up {
                button: MOUSE_BUTTON_LEFT,
            },
        ]
    };

    // The administrator selects 14:00–16:00 in Sam's column: the time-off form opens with it.
    app.el("#si-username").await;
    app.sign_in("admin", ADMIN_PASS).await;
    app.wait_for("#home-title", 60).await;
    app.watch_csp().await;
    app.click("#nav-calendar").await;
    app.wait_text("#calendar", "Sam Physio", 20).await;
    wait_content(&app, ".ec-event.appt", "Ann Lengthy").await;
    // The grid body's definite height (set for speed) is exactly its time slots' height.
    let fit = app
        .client
        .execute(
            "const s = [...document.querySelectorAll('.ec-body .ec-sidebar > *')];
             const slots = s.at(-1).getBoundingClientRect().bottom - s[0].getBoundingClientRect().top;
             const day = document.querySelector('.ec-body .ec-day').getBoundingClientRect().height;
             return [slots, day];",
            vec![],
        )
        .await
        .unwrap();
    let (slots, day) = (fit[0].as_f64().unwrap(), fit[1].as_f64().unwrap());
    assert!(slots > 1000.0 && (slots - day).abs() < 2.0, "{fit}");
    let (x, y14) = slot_point(&app, "14:00", 0, true).await;
    let (_, y1545) = quarter_point(&app, "15:45", 0, false).await;
    pointer(&app, press(x, y14, y1545)).await;
    app.el("#off-form").await;
    let from = app
        .el("#off-from")
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    let to = app
        .el("#off-to")
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (from.as_str(), to.as_str()),
        (
            format!("{today}T14:00").as_str(),
            format!("{today}T16:00").as_str()
        )
    );
    app.fill("#off-reason", "course").await;
    app.screenshot("time-off-form").await;
    app.click("#off-save").await;
    app.wait_text("#cal-notice", "Time off recorded for Sam Physio", 10)
        .await;
    wait_content(&app, ".ec-bg-event.time-off", "Away: course").await;
    app.wait_text("#cal-time-off-list", "(course)", 10).await;
    app.screenshot("time-off-admin").await;
    assert!(app.exists("#cal-time-off-list button.danger").await);
    // Time off over Ann's booking is refused with the count, and offered "anyway"; cancelled.
    app.click("#cal-time-off").await;
    app.fill("#off-from", &format!("{today}T08:00")).await;
    app.fill("#off-to", &format!("{today}T13:30")).await;
    app.click("#off-save").await;
    app.wait_text("#off-error", "1 appointment is still booked with sam", 10)
        .await;
    assert!(app.exists("#off-save-anyway").await);
    app.screenshot("time-off-over-booking").await;
    app.click("#off-form button[type=button]:last-child").await;
    assert!(!app.exists("#off-form").await);
    app.assert_no_csp_violations().await;
    app.click("#nav-signout").await;

    // Reception sees the absence but not its reason, and cannot select a range.
    app.sign_in("rita", RECEPTION_PASS).await;
    app.wait_text("#whoami", "receptionist", 20).await;
    app.watch_csp().await;
    app.click("#nav-calendar").await;
    app.wait_text("#calendar", "Sam Physio", 20).await;
    wait_content(&app, ".ec-bg-event.time-off", "Away").await;
    let shown = app
        .client
        .execute(
            "return [...document.querySelectorAll('.ec-bg-event.time-off')].map((e) => e.textContent).join('|');",
            vec![],
        )
        .await
        .unwrap();
    assert!(!shown.as_str().unwrap().contains("course"), "{shown}");
    let listed = app.text_of("#cal-time-off-list").await;
    assert!(listed.contains("Sam Physio: away"), "{listed}");
    assert!(!listed.contains("course"), "{listed}");
    assert!(!app.exists("#cal-time-off").await);
    assert!(
        !app.exists("#cal-time-off-list button").await,
        "reception is offered to remove time off"
    );
    app.screenshot("time-off-reception").await;

    // Drag the appointment's lower edge from 12:30 to 13:00.
    let appt_rect = || async {
        let v = app
            .client
            .execute(
                "const e = document.querySelector('.ec-event.appt'); const r = e.getBoundingClientRect();
                 const h = e.querySelector('.ec-resizer'); const q = h ? h.getBoundingClientRect() : null;
                 return [r.top, r.height, q ? q.left + q.width / 2 : -1, q ? q.top + q.height / 2 : -1];",
                vec![],
            )
            .await
            .unwrap();
        let a: Vec<f64> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_f64().unwrap())
            .collect();
        a
    };
    slot_point(&app, "13:00", 0, true).await;
    let (_, y1230) = slot_point(&app, "12:30", 0, false).await;
    let (_, y13) = slot_point(&app, "13:00", 0, false).await;
    let before = appt_rect().await;
    assert!(before[2] > 0.0, "no resize handle on a booked appointment");
    pointer(&app, press(before[2], before[3], before[3] + (y13 - y1230))).await;
    app.wait_text("#cal-notice", "Now ends at 13:00", 10).await;
    let stored = app
        .invoke_raw(
            "day_appointments",
            serde_json::json!({ "req": { "date": today, "practitioner": null } }),
        )
        .await;
    assert_eq!(
        stored["ok"][0]["ends_local"],
        serde_json::json!(format!("{today}T13:00")),
        "{stored}"
    );
    wait_content(&app, ".ec-event.appt", "Ann Lengthy").await;
    let longer = appt_rect().await;
    assert!(
        (longer[1] - 2.0 * before[1]).abs() < 6.0,
        "an hour should be twice half an hour: {before:?} → {longer:?}"
    );
    app.screenshot("resized").await;

    // Into the time off (13:00 → 14:30): the core refuses, the message says why, the event
    // goes back to 13:00.
    quarter_point(&app, "13:45", 0, true).await;
    let (_, y13) = slot_point(&app, "13:00", 0, false).await;
    let (_, y1430) = slot_point(&app, "14:30", 0, false).await;
    let now = appt_rect().await;
    pointer(&app, press(now[2], now[3], now[3] + (y1430 - y13))).await;
    let err = app
        .wait_text("#cal-error", "the practitioner is away (time off)", 10)
        .await;
    assert!(err.contains("cannot end at"), "{err}");
    assert!(!err.contains("Lengthy"), "{err}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let back = appt_rect().await;
    assert!(
        (back[1] - now[1]).abs() < 2.0,
        "the refused resize did not snap back: {now:?} → {back:?}"
    );
    app.client
        .execute(
            "document.querySelector('#cal-error').scrollIntoView({ block: 'start' });",
            vec![],
        )
        .await
        .unwrap();
    app.screenshot("resize-refused").await;
    let stored = app
        .invoke_raw(
            "day_appointments",
            serde_json::json!({ "req": { "date": today, "practitioner": null } }),
        )
        .await;
    assert_eq!(
        stored["ok"][0]["ends_local"],
        serde_json::json!(format!("{today}T13:00"))
    );

    // A booking clicked inside the time off is refused with the reason.
    let (x, y) = slot_point(&app, "15:00", 0, true).await;
    pointer(
        &app,
        vec![
            move_to(x, y, 50),
            PointerAction::Down {
                button: MOUSE_BUTTON_LEFT,
            },
            PointerAction::Up {
                button: MOUSE_BUTTON_LEFT,
            },
        ],
    )
    .await;
    let start = app
        .el("#book-start")
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(start, format!("{today}T15:00"));
    app.fill("#book-patient", "lengthy").await;
    app.click("#book-hit-0").await;
    app.wait_text("#book-chosen", "Lengthy", 10).await;
    app.click("#book-save").await;
    app.wait_text("#book-error", "the practitioner is away (time off)", 10)
        .await;
    app.screenshot("booking-refused").await;
    // Escape leaves the dialog, wherever the focus is in it.
    app.el("#book-patient")
        .await
        .send_keys(&fantoccini::key::Key::Escape.to_string())
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.exists("#book-start").await {
        assert!(
            std::time::Instant::now() < deadline,
            "Escape left the booking dialog open"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.assert_no_csp_violations().await;
    app.stop().await;
}

/// A practitioner types a note and leaves for another tab at once, inside the autosave pause:
/// the text is kept. A colleague who opens that draft sees it read-only (only its own
/// practitioner may change it), with no Finalise.
#[tokio::test(flavor = "multi_thread")]
async fn a_note_typed_just_before_leaving_is_kept_and_a_colleagues_draft_is_read_only() {
    use clinvault_core::patients::PatientFields;
    use secrecy::SecretString;
    const PASS: &str = "saffron glacier tandem umbrella";
    const MARKER: &str = "Quick-Marker-5521 left at once";

    let app = App::start_with("note-leave", |path| {
        let mut s = support::seeded_admin(path);
        for (user, name) in [("sam", "Sam Physio"), ("zoe", "Zoe Osteo")] {
            s.add_user(
                user,
                Some(name),
                "practitioner",
                &SecretString::from(PASS.to_owned()),
            )
            .unwrap();
            s.add_practitioner(user).unwrap();
        }
        s.add_patient(PatientFields {
            first_name: Some("Nora".into()),
            last_name: Some("Notetaker".into()),
            ..Default::default()
        })
        .unwrap();
    })
    .await;
    app.el("#si-username").await;
    app.sign_in("sam", PASS).await;
    app.wait_text("#whoami", "practitioner", 60).await;
    open_patient(&app, "notetaker", "Notetaker, Nora").await;
    app.click("#ptab-notes").await;
    app.click("#note-new").await;
    app.el("#note-body").await.send_keys(MARKER).await.unwrap();
    app.click("#ptab-details").await;
    app.click("#ptab-notes").await;
    app.wait_text("#record-notes", "draft", 10).await;
    app.click("#note-open-0").await;
    let body = app.el("#note-body").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while body.prop("value").await.unwrap().unwrap_or_default() != MARKER {
        assert!(
            std::time::Instant::now() < deadline,
            "the text typed before leaving was lost"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.click("#nav-signout").await;

    app.sign_in("zoe", PASS).await;
    app.wait_text("#whoami", "practitioner", 20).await;
    open_patient(&app, "notetaker", "Notetaker, Nora").await;
    app.click("#ptab-notes").await;
    app.wait_text("#record-notes", "draft", 10).await;
    app.click("#note-open-0").await;
    app.wait_text("#note-readonly", "Only sam can edit", 10)
        .await;
    app.wait_text("#note-current", MARKER, 10).await;
    assert!(
        !app.exists("#note-body").await,
        "a colleague's draft is offered for editing"
    );
    assert!(!app.exists("#note-finalise").await);
    app.screenshot("colleague-draft").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
/// A clinic with several practitioners narrows the calendar to one: only that column and that
/// practitioner's appointments are shown, in the day and the week view, until "All" again.
async fn the_calendar_shows_one_practitioner_when_asked() {
    use clinvault_core::appointments::Booking;
    use clinvault_core::patients::PatientFields;
    use secrecy::SecretString;

    let today = jiff::Zoned::now().date().to_string();
    let app = App::start_with("calendar-show", |path| {
        let mut s = support::seeded_admin(path);
        s.add_appointment_type("Follow-up", 30, "75.00", None)
            .unwrap();
        for (user, name, patient, at) in [
            ("sam", "Sam Physio", "Ann", "10:00"),
            ("zoe", "Zoe Osteo", "Bea", "11:00"),
        ] {
            s.add_user(
                user,
                Some(name),
                "practitioner",
                &SecretString::from("saffron glacier tandem umbrella".to_owned()),
            )
            .unwrap();
            s.add_practitioner(user).unwrap();
            for d in ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"] {
                s.set_working_hours(user, d, "08:00-18:00").unwrap();
            }
            let p = s
                .add_patient(PatientFields {
                    first_name: Some(patient.into()),
                    last_name: Some("Columns".into()),
                    ..Default::default()
                })
                .unwrap();
            s.book_appointment(&Booking {
                patient_id: &p.id,
                practitioner: user,
                appointment_type: "Follow-up",
                start_local: &format!("{today}T{at}"),
                weekly_occurrences: 1,
                allow_override: false,
            })
            .unwrap();
        }
    })
    .await;
    // The practitioners' column headings: one per column in the day view, one per group of
    // seven days in the week view.
    let columns = |css: &'static str| {
        let app = &app;
        async move {
            let v = app
                .client
                .execute(
                    "return [...document.querySelectorAll(arguments[0])].map((e) => e.textContent.trim()).join('|');",
                    vec![serde_json::json!(css)],
                )
                .await
                .unwrap();
            v.as_str().unwrap_or_default().to_owned()
        }
    };

    app.el("#si-username").await;
    app.sign_in("admin", ADMIN_PASS).await;
    app.wait_for("#home-title", 60).await;
    app.watch_csp().await;
    app.click("#nav-calendar").await;
    wait_content(&app, ".ec-event.appt", "Bea Columns").await;
    wait_content(&app, ".ec-event.appt", "Ann Columns").await;
    assert_eq!(columns(".ec-col-head").await, "Sam Physio|Zoe Osteo");

    app.el("#cal-show option[value='zoe']")
        .await
        .click()
        .await
        .unwrap();
    wait_gone(&app, "#calendar", "Ann Columns").await;
    wait_content(&app, ".ec-event.appt", "Bea Columns").await;
    assert_eq!(columns(".ec-col-head").await, "Zoe Osteo");
    app.screenshot("one-practitioner").await;

    // The week view keeps the choice: Zoe's seven days only.
    app.click(".ec-button.ec-resourceTimeGridWeek").await;
    wait_content(&app, ".ec-event.appt", "Bea Columns").await;
    assert_eq!(columns(".ec-col-group").await, "Zoe Osteo");
    assert!(!app.text_of("#calendar").await.contains("Ann Columns"));

    app.el("#cal-show option[value='']")
        .await
        .click()
        .await
        .unwrap();
    wait_content(&app, ".ec-event.appt", "Ann Columns").await;
    assert_eq!(columns(".ec-col-group").await, "Sam Physio|Zoe Osteo");
    app.assert_no_csp_violations().await;
    app.stop().await;
}

/// Opens a patient's record from the Patients screen by searching.
async fn open_patient(app: &App, search: &str, title: &str) {
    app.click("#nav-patients").await;
    app.fill("#patient-search", search).await;
    app.wait_text("#patient-results", title.split(',').next().unwrap(), 10)
        .await;
    app.click("#pr-0").await;
    app.wait_text("#record-title", title, 10).await;
}

async fn patient_id(app: &App, search: &str) -> String {
    app.invoke_raw(
        "search_patients",
        serde_json::json!({ "req": { "text": search, "limit": 5 } }),
    )
    .await["ok"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Backup and sync, the sync part: the administrator sets a folder target, tests the
/// connection, turns on a schedule, pushes with progress, sees the snapshot listed, runs a
/// restore test, and sees the last good snapshot's age on Home. The repository lands in the
/// test's own folder, encrypted.
#[tokio::test(flavor = "multi_thread")]
async fn an_administrator_sets_up_sync_pushes_and_restore_tests() {
    let app = App::start("sync").await;
    app.first_run().await;
    app.skip_to_home().await;
    // No snapshot yet: Home warns.
    app.wait_text("#home-last-snapshot", "No snapshot", 10)
        .await;

    let repo = app.vault.parent().unwrap().join("nas").join("clinic vault");
    app.click("#nav-backup").await;
    app.wait_text("#sync-current", "No sync target", 10).await;
    // A relative folder is refused with the sync crate's reason.
    app.fill("#sync-folder", "relative/folder").await;
    app.click("#sync-save").await;
    app.wait_text("#sync-error", "full path", 10).await;
    app.fill("#sync-folder", repo.to_str().unwrap()).await;
    let shown = app.text_of("#sync-url").await;
    assert!(shown.starts_with("file:///"), "{shown}");
    assert!(shown.contains("clinic%20vault"), "{shown}");
    app.click("#sync-save").await;
    app.wait_text("#sync-saved", "Sync target saved", 10).await;
    app.wait_text("#sync-current", "clinic%20vault", 10).await;

    app.click("#sync-test").await;
    let verdict = app
        .wait_text("#sync-test-result", "Connection works", 30)
        .await;
    assert!(verdict.contains("first push"), "{verdict}");

    app.client
        .find(fantoccini::Locator::Css("#sync-every"))
        .await
        .unwrap()
        .select_by_value("4")
        .await
        .unwrap();
    app.click("#sync-schedule-save").await;
    app.wait_text("#sync-schedule-result", "every 4 hour", 10)
        .await;

    app.click("#sync-push").await;
    let pushed = app.wait_text("#sync-push-result", "pushed", 120).await;
    let id = pushed
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches(':')
        .to_owned();
    assert_eq!(id.len(), 12, "{pushed}");
    assert!(repo.join("config").exists(), "no repository in {repo:?}");
    let listed = app.wait_text("#sync-snapshots", &id, 20).await;
    assert!(listed.contains("MB"), "{listed}");
    app.wait_text("#sync-last-good", "Last good snapshot: just now", 20)
        .await;

    app.click("#sync-restore-test").await;
    let rt = app
        .wait_text("#sync-restore-result", "Restore test passed", 120)
        .await;
    assert!(rt.contains(&id), "{rt}");
    assert!(rt.contains("intact"), "{rt}");
    app.screenshot("sync").await;

    app.click("#nav-home").await;
    let age = app
        .wait_text("#home-last-snapshot", "Last good snapshot", 10)
        .await;
    assert!(
        age.contains("just now") || age.contains("minute ago"),
        "{age}"
    );
    app.screenshot("home-sync").await;
    app.stop().await;
}

/// An older copy of the database put back on this machine (a deliberate restore): the trail is
/// shorter than the checkpoint kept from before, verification says so, and the administrator,
/// after confirming, anchors the trail anew from the Audit screen; it then verifies.
#[tokio::test(flavor = "multi_thread")]
async fn an_administrator_anchors_the_trail_anew_after_a_restore() {
    let app = App::start_with("reanchor", |path| {
        drop(support::seeded_admin(path));
        let db = path.join("vault.db");
        let saved = path.with_file_name("older-copy.db");
        std::fs::copy(&db, &saved).unwrap();
        let mut s = support::seeded_session(path);
        for minutes in ["20", "25"] {
            s.set_policy("idle-lock-minutes", minutes).unwrap();
        }
        drop(s);
        std::fs::copy(&saved, &db).unwrap();
    })
    .await;
    app.el("#si-username").await;
    app.sign_in("admin", ADMIN_PASS).await;
    app.wait_for("#home-title", 60).await;
    app.watch_csp().await;
    app.click("#nav-audit").await;
    app.click("#audit-verify").await;
    app.wait_text("#verify-result", "NOT intact", 20).await;
    // Nothing happens until the restore is confirmed.
    assert!(!app.el("#audit-reanchor").await.is_enabled().await.unwrap());
    app.click("#reanchor-confirm").await;
    app.click("#audit-reanchor").await;
    app.wait_text("#reanchor-result", "anchored anew", 20).await;
    app.wait_text("#verify-result", "Intact", 20).await;
    app.screenshot("reanchored").await;
    app.assert_no_csp_violations().await;
    app.stop().await;
}

/// The Audit screen shows the newest 200 entries and pages back through the rest ("Older
/// entries", with the filter the shown rows were found by) down to the first entry.
#[tokio::test(flavor = "multi_thread")]
async fn the_audit_screen_pages_back_to_the_first_entry() {
    let app = App::start_with("audit-pages", |path| {
        let mut s = support::seeded_admin(path);
        for _ in 0..250 {
            s.list_roles().unwrap();
        }
    })
    .await;
    app.el("#si-username").await;
    app.sign_in("admin", ADMIN_PASS).await;
    app.wait_for("#home-title", 60).await;
    app.click("#nav-audit").await;
    app.wait_for("#af-older", 20).await;
    let rows = |app: &App| {
        let client = app.client.clone();
        async move {
            client
                .execute(
                    "return [...document.querySelectorAll('#audit-table tbody tr')]
                       .map(r => r.cells[0].textContent)",
                    vec![],
                )
                .await
                .unwrap()
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(rows(&app).await.len(), 200, "one page");
    app.click("#af-older").await;
    let mut shown = Vec::new();
    for _ in 0..100 {
        shown = rows(&app).await;
        if shown.len() > 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        shown.last().map(String::as_str),
        Some("1"),
        "down to the first entry"
    );
    let seqs: Vec<i64> = shown.iter().map(|s| s.parse().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] == w[1] + 1),
        "no entry skipped or repeated"
    );
    assert!(!app.exists("#af-older").await, "nothing older to offer");
    app.stop().await;
}
