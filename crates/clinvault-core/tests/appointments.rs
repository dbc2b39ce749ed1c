//! Booking rules against a real vault: overlap, working hours and breaks, override permission,
//! weekly series across a daylight-saving change, times that do not exist, status rules, views.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup failures

mod support;

use support::{secret, sign_in, ADMIN_PASS, USER_PASS};

use clinvault_core::appointments::Booking;
use clinvault_core::patients::PatientFields;
use clinvault_core::{ErrorKind, VaultDir};

/// A Sydney clinic with one physio (Mon–Fri 09:00–12:30 and 13:30–17:00) and a receptionist.
fn clinic() -> (tempfile::TempDir, VaultDir, String) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = VaultDir::new(tmp.path().join("v"));
    support::new_vault(&dir);
    let mut a = sign_in(&dir, "admin", ADMIN_PASS);
    a.set_policy("clinic-timezone", "Australia/Sydney").unwrap();
    a.add_user(
        "sam",
        Some("Sam Physio"),
        "practitioner",
        &secret(USER_PASS),
    )
    .unwrap();
    a.add_user("rita", None, "receptionist", &secret(USER_PASS))
        .unwrap();
    a.add_practitioner("sam").unwrap();
    for day in ["Mon", "Tue", "Wed", "Thu", "Fri"] {
        a.set_working_hours("sam", day, "09:00-12:30,13:30-17:00")
            .unwrap();
    }
    a.add_appointment_type("Initial consult", 45, "95.00", Some("10"))
        .unwrap();
    a.add_appointment_type("Follow-up", 30, "75", None).unwrap();
    let p = a
        .add_patient(PatientFields {
            first_name: Some("Ann".into()),
            last_name: Some("Jones".into()),
            ..Default::default()
        })
        .unwrap();
    (tmp, dir, p.id)
}

fn booking<'a>(patient: &'a str, start: &'a str) -> Booking<'a> {
    Booking {
        patient_id: patient,
        practitioner: "sam",
        appointment_type: "Follow-up",
        start_local: start,
        weekly_occurrences: 1,
        allow_override: false,
    }
}

#[test]
fn overlaps_and_hours_are_refused_with_the_reason_and_override_is_an_administrators_choice() {
    let (_t, dir, p) = clinic();
    let mut r = sign_in(&dir, "rita", USER_PASS);
    // Monday 2026-03-02.
    let first = r
        .book_appointment(&booking(&p, "2026-03-02T09:00"))
        .unwrap();
    assert_eq!(first[0].starts_local, "2026-03-02T09:00");
    assert_eq!(
        first[0].starts_at, "2026-03-01T22:00:00Z",
        "stored in UTC (Sydney is UTC+11 in March)"
    );
    let e = r
        .book_appointment(&booking(&p, "2026-03-02T09:15"))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(
        e.to_string()
            .contains("overlaps the practitioner's appointment at 2026-03-02T09:00"),
        "{e}"
    );
    // Back to back is fine.
    r.book_appointment(&booking(&p, "2026-03-02T09:30"))
        .unwrap();
    let e = r
        .book_appointment(&booking(&p, "2026-03-02T12:15"))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("outside the practitioner's hours on Monday (09:00-12:30, 13:30-17:00)"),
        "{e}"
    );
    // Ending at midnight is not inside a day that ends at 17:00.
    let e = r
        .book_appointment(&booking(&p, "2026-03-02T23:30"))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("23:30–00:00 is outside the practitioner's hours on Monday"),
        "{e}"
    );
    let e = r
        .book_appointment(&booking(&p, "2026-03-07T10:00"))
        .unwrap_err();
    assert!(e.to_string().contains("does not work on Saturday"), "{e}");
    // The receptionist may not override; the administrator may, when asked.
    let e = r
        .book_appointment(&Booking {
            allow_override: true,
            ..booking(&p, "2026-03-02T09:15")
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    drop(r);
    let mut a = sign_in(&dir, "admin", ADMIN_PASS);
    a.book_appointment(&Booking {
        allow_override: true,
        ..booking(&p, "2026-03-02T09:15")
    })
    .unwrap();
    let day = a.day_appointments("2026-03-02", Some("sam")).unwrap();
    assert_eq!(
        day.iter()
            .map(|x| x.starts_local.as_str())
            .collect::<Vec<_>>(),
        ["2026-03-02T09:00", "2026-03-02T09:15", "2026-03-02T09:30"]
    );
    assert_eq!(day[0].patient_name, "Ann Jones");
}

#[test]
fn a_weekly_series_keeps_its_local_time_across_the_daylight_saving_change() {
    let (_t, dir, p) = clinic();
    let mut r = sign_in(&dir, "rita", USER_PASS);
    // Sydney leaves daylight saving on Sunday 2026-04-05: UTC+11 before, UTC+10 after.
    let series = r
        .book_appointment(&Booking {
            weekly_occurrences: 6,
            ..booking(&p, "2026-03-23T10:00")
        })
        .unwrap();
    assert_eq!(series.len(), 6);
    assert!(series.iter().all(|a| a.starts_local.ends_with("T10:00")));
    assert_eq!(series[1].starts_at, "2026-03-29T23:00:00Z");
    assert_eq!(series[2].starts_at, "2026-04-06T00:00:00Z");
    assert!(series
        .iter()
        .all(|a| a.series_id == series[0].series_id && a.series_id.is_some()));
    // All or nothing: a conflict in week 3 books none of the series.
    let e = r
        .book_appointment(&Booking {
            weekly_occurrences: 4,
            ..booking(&p, "2026-03-23T09:45")
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert_eq!(r.day_appointments("2026-03-23", None).unwrap().len(), 1);
    // A local time that happens twice (clocks go back) is refused rather than guessed.
    drop(r);
    let mut a = sign_in(&dir, "admin", ADMIN_PASS);
    let e = a
        .book_appointment(&Booking {
            allow_override: true,
            ..booking(&p, "2026-04-05T02:30")
        })
        .unwrap_err();
    assert!(e.to_string().contains("daylight-saving"), "{e}");
    // The day view of the change day covers 25 hours of local time correctly.
    assert!(a.day_appointments("2026-04-05", None).unwrap().is_empty());
}

#[test]
fn statuses_follow_the_rules_and_bad_input_is_named() {
    let (_t, dir, p) = clinic();
    let mut r = sign_in(&dir, "rita", USER_PASS);
    let id = r
        .book_appointment(&booking(&p, "2026-03-03T14:00"))
        .unwrap()[0]
        .id
        .clone();
    assert_eq!(
        r.set_appointment_status(&id, "cancelled", None)
            .unwrap_err()
            .to_string(),
        "reason: a cancellation needs a reason"
    );
    r.set_appointment_status(&id, "arrived", None).unwrap();
    r.set_appointment_status(&id, "completed", None).unwrap();
    let e = r.set_appointment_status(&id, "booked", None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(r
        .set_appointment_status(&id, "sleeping", None)
        .unwrap_err()
        .to_string()
        .starts_with("status:"));
    let other = r
        .book_appointment(&booking(&p, "2026-03-03T14:00"))
        .unwrap_err();
    assert_eq!(
        other.kind(),
        ErrorKind::Conflict,
        "a completed appointment still occupies its slot"
    );
    let id2 = r
        .book_appointment(&booking(&p, "2026-03-03T15:00"))
        .unwrap()[0]
        .id
        .clone();
    let c = r
        .set_appointment_status(&id2, "cancelled", Some("patient unwell"))
        .unwrap();
    assert_eq!(c.cancel_reason.as_deref(), Some("patient unwell"));
    r.book_appointment(&booking(&p, "2026-03-03T15:00"))
        .unwrap();

    assert!(r
        .book_appointment(&booking(&p, "2026-03-03 3pm"))
        .unwrap_err()
        .to_string()
        .starts_with("start:"));
    assert_eq!(
        r.book_appointment(&booking("nope", "2026-03-03T16:00"))
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        r.book_appointment(&Booking {
            appointment_type: "Massage",
            ..booking(&p, "2026-03-03T16:00")
        })
        .unwrap_err()
        .kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        r.book_appointment(&Booking {
            practitioner: "rita",
            ..booking(&p, "2026-03-03T16:00")
        })
        .unwrap_err()
        .kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        r.show_appointment("nope").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(r
        .day_appointments("2026-02-30", None)
        .unwrap_err()
        .to_string()
        .starts_with("day:"));
    // Receptionists book; billers only look.
    drop(r);
    let mut a = sign_in(&dir, "admin", ADMIN_PASS);
    assert!(a
        .add_appointment_type("Bad", 30, "-5", None)
        .unwrap_err()
        .to_string()
        .contains("negative"));
    assert!(a
        .add_appointment_type("Bad", 3, "5", None)
        .unwrap_err()
        .to_string()
        .starts_with("minutes:"));
    a.add_user("bill", None, "biller", &secret(USER_PASS))
        .unwrap();
    drop(a);
    let mut b = sign_in(&dir, "bill", USER_PASS);
    assert_eq!(b.day_appointments("2026-03-03", None).unwrap().len(), 3);
    assert_eq!(
        b.book_appointment(&booking(&p, "2026-03-04T10:00"))
            .unwrap_err()
            .kind(),
        ErrorKind::PermissionDenied
    );
}

#[test]
fn next_free_slots_skip_bookings_breaks_and_time_off() {
    let (_t, dir, p) = clinic();
    let mut r = sign_in(&dir, "rita", USER_PASS);
    r.book_appointment(&booking(&p, "2026-03-02T09:00"))
        .unwrap();
    r.book_appointment(&booking(&p, "2026-03-02T09:30"))
        .unwrap();
    let slots = r
        .next_free_slots("sam", "Follow-up", "2026-03-02T08:00", 3)
        .unwrap();
    assert_eq!(
        slots,
        ["2026-03-02T10:00", "2026-03-02T10:15", "2026-03-02T10:30"]
    );
    // The 45-minute type does not fit 12:00–12:30 before the lunch break.
    let late = r
        .next_free_slots("sam", "Initial consult", "2026-03-02T11:50", 2)
        .unwrap();
    assert_eq!(late, ["2026-03-02T13:30", "2026-03-02T13:45"]);
    drop(r);
    let mut a = sign_in(&dir, "admin", ADMIN_PASS);
    a.add_time_off(
        "sam",
        "2026-03-03T00:00",
        "2026-03-04T00:00",
        Some("course"),
    )
    .unwrap();
    assert!(a
        .add_time_off("sam", "2026-03-04T00:00", "2026-03-03T00:00", None)
        .unwrap_err()
        .to_string()
        .starts_with("to:"));
    drop(a);
    let mut r = sign_in(&dir, "rita", USER_PASS);
    let e = r
        .book_appointment(&booking(&p, "2026-03-03T10:00"))
        .unwrap_err();
    assert!(e.to_string().contains("away"), "{e}");
    let next = r
        .next_free_slots("sam", "Follow-up", "2026-03-02T16:45", 1)
        .unwrap();
    assert_eq!(next, ["2026-03-04T09:00"], "Tuesday is time off");
}

#[test]
fn moving_keeps_the_length_and_the_booking_rules_and_lists_feed_the_calendar() {
    let (_tmp, dir, p) = clinic();
    let mut r = sign_in(&dir, "rita", USER_PASS);
    let a = r
        .book_appointment(&booking(&p, "2026-03-02T09:00"))
        .unwrap();
    let b = r
        .book_appointment(&booking(&p, "2026-03-02T10:00"))
        .unwrap();
    let (a, b) = (&a[0].id, &b[0].id);

    let moved = r
        .move_appointment(a, "2026-03-03T11:00", None, false)
        .unwrap();
    assert_eq!(moved.starts_local, "2026-03-03T11:00");
    assert_eq!(moved.ends_local, "2026-03-03T11:30");
    assert_eq!(moved.practitioner, "sam");

    // Onto its own slot, shifted by a quarter: it does not overlap itself.
    let moved = r
        .move_appointment(a, "2026-03-03T11:15", None, false)
        .unwrap();
    assert_eq!(moved.starts_local, "2026-03-03T11:15");

    // Onto another booking, into the lunch break, onto a Saturday: refused with the reason.
    let e = r
        .move_appointment(a, "2026-03-02T10:15", None, false)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(
        e.to_string()
            .contains("overlaps the practitioner's appointment at 2026-03-02T10:00"),
        "{e}"
    );
    let e = r
        .move_appointment(a, "2026-03-03T12:15", None, false)
        .unwrap_err();
    assert!(
        e.to_string().contains("outside the practitioner's hours"),
        "{e}"
    );
    let e = r
        .move_appointment(a, "2026-03-07T10:00", None, false)
        .unwrap_err();
    assert!(e.to_string().contains("does not work on Saturday"), "{e}");
    // Override is not reception's.
    let e = r
        .move_appointment(a, "2026-03-02T10:15", None, true)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    let e = r.move_appointment(a, "tomorrow", None, false).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);

    // Only a booked appointment moves.
    r.set_appointment_status(b, "arrived", None).unwrap();
    let e = r
        .move_appointment(b, "2026-03-04T10:00", None, false)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.to_string().contains("arrived"), "{e}");

    let pr = r.list_practitioners().unwrap();
    assert_eq!(pr.len(), 1);
    assert_eq!(pr[0].username, "sam");
    assert_eq!(pr[0].hours.len(), 10);
    assert_eq!(
        (pr[0].hours[0].weekday, pr[0].hours[0].starts.as_str()),
        (1, "09:00")
    );
    let types: Vec<String> = r
        .list_appointment_types()
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(types, ["Follow-up", "Initial consult"]);
    drop(r);

    // The move is in the trail, without patient names.
    let mut admin = sign_in(&dir, "admin", ADMIN_PASS);
    let day = admin.day_appointments("2026-03-03", None).unwrap();
    assert_eq!(day.len(), 1);
    assert_eq!(day[0].starts_local, "2026-03-03T11:15");
}

#[test]
fn resizing_changes_the_end_under_the_booking_rules_and_is_audited() {
    let (_tmp, dir, p) = clinic();
    let mut r = sign_in(&dir, "rita", USER_PASS);
    // Monday 2026-03-02, Sam works 09:00–12:30 and 13:30–17:00.
    let a = r
        .book_appointment(&booking(&p, "2026-03-02T09:00"))
        .unwrap();
    let b = r
        .book_appointment(&booking(&p, "2026-03-02T10:30"))
        .unwrap();
    let (a, b) = (&a[0].id, &b[0].id);

    // Longer and shorter: the start stays, the end moves.
    let longer = r.resize_appointment(a, "2026-03-02T10:00", false).unwrap();
    assert_eq!(
        (longer.starts_local.as_str(), longer.ends_local.as_str()),
        ("2026-03-02T09:00", "2026-03-02T10:00")
    );
    let shorter = r.resize_appointment(a, "2026-03-02T09:15", false).unwrap();
    assert_eq!(shorter.ends_local, "2026-03-02T09:15");
    // Up to the next booking exactly is fine; into it is refused with the reason.
    r.resize_appointment(a, "2026-03-02T10:30", false).unwrap();
    let e = r
        .resize_appointment(a, "2026-03-02T10:45", false)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(
        e.to_string().contains(
            "cannot end at 2026-03-02T10:45: it overlaps the practitioner's appointment at 2026-03-02T10:30"
        ),
        "{e}"
    );
    // Past the start of the lunch break: outside the hours, with the span.
    let e = r
        .resize_appointment(b, "2026-03-02T12:45", false)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(
        e.to_string()
            .contains("10:30–12:45 is outside the practitioner's hours on Monday"),
        "{e}"
    );
    // Not after the start, nonsense, or longer than a working day: bad input, said so.
    let e = r
        .resize_appointment(b, "2026-03-02T10:30", false)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().starts_with("end: "), "{e}");
    assert!(e.to_string().contains("not after the start"), "{e}");
    let e = r.resize_appointment(b, "half past", false).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let e = r
        .resize_appointment(b, "2026-03-03T10:30", false)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("at most 12 hours"), "{e}");
    // Reception may not override; nothing changed by any refusal.
    let e = r
        .resize_appointment(b, "2026-03-02T12:45", true)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    let day = r.day_appointments("2026-03-02", None).unwrap();
    let ends: Vec<&str> = day.iter().map(|x| x.ends_local.as_str()).collect();
    assert_eq!(ends, ["2026-03-02T10:30", "2026-03-02T11:00"]);
    // Only a booked appointment changes length.
    r.set_appointment_status(b, "arrived", None).unwrap();
    let e = r
        .resize_appointment(b, "2026-03-02T11:15", false)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.to_string().contains("arrived"), "{e}");
    drop(r);

    let mut admin = sign_in(&dir, "admin", ADMIN_PASS);
    // Time off is a refusal too, and the administrator may override the hours.
    admin
        .add_time_off("sam", "2026-03-02T11:00", "2026-03-02T12:00", None)
        .unwrap();
    let e = admin
        .resize_appointment(a, "2026-03-02T11:30", false)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("the practitioner is away (time off)"),
        "{e}"
    );
    let c = admin
        .book_appointment(&booking(&p, "2026-03-02T16:00"))
        .unwrap();
    let over = admin
        .resize_appointment(&c[0].id, "2026-03-02T17:30", true)
        .unwrap();
    assert_eq!(over.ends_local, "2026-03-02T17:30");

    // Each resize is in the trail with its length and the patient, never a name.
    let entries = admin
        .audit_list(&clinvault_core::audit_review::AuditFilter {
            action: Some("appointment.resize".into()),
            limit: 50,
            ..Default::default()
        })
        .unwrap();
    let ok: Vec<_> = entries.iter().filter(|e| e.outcome == "ok").collect();
    assert_eq!(ok.len(), 4, "{entries:?}");
    assert_eq!(ok[0].details["minutes"], serde_json::json!(90));
    assert_eq!(ok[0].details["override"], serde_json::json!(true));
    assert_eq!(ok[0].details["patient"], serde_json::json!(p));
    assert_eq!(ok[0].target_id.as_deref(), Some(c[0].id.as_str()));
    assert!(entries.iter().any(|e| e.outcome == "denied"));
    assert!(entries.iter().any(|e| e.outcome == "failed"));
    assert!(!serde_json::to_string(&entries).unwrap().contains("Jones"));
}

#[test]
fn time_off_is_listed_for_the_calendar_and_its_reason_only_for_administrators() {
    let (_tmp, dir, p) = clinic();
    let mut a = sign_in(&dir, "admin", ADMIN_PASS);
    let t = a
        .add_time_off(
            "sam",
            "2026-03-03T13:30",
            "2026-03-05T00:00",
            Some("  course  "),
        )
        .unwrap();
    assert_eq!(
        (
            t.practitioner.as_str(),
            t.starts_local.as_str(),
            t.ends_local.as_str()
        ),
        ("sam", "2026-03-03T13:30", "2026-03-05T00:00")
    );
    assert_eq!(t.reason.as_deref(), Some("course"));
    let e = a
        .add_time_off(
            "sam",
            "2026-03-06T09:00",
            "2026-03-06T10:00",
            Some(&"x".repeat(201)),
        )
        .unwrap_err();
    assert!(e.to_string().starts_with("reason:"), "{e}");
    let e = a
        .add_time_off("nobody", "2026-03-06T09:00", "2026-03-06T10:00", None)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    // The week from Monday overlaps it; the day after it ends does not.
    let week = a.list_time_off("2026-03-02", 7, None).unwrap();
    assert_eq!(week.len(), 1);
    assert_eq!(week[0].id, t.id);
    assert_eq!(week[0].reason.as_deref(), Some("course"));
    assert!(a.list_time_off("2026-03-05", 1, None).unwrap().is_empty());
    assert_eq!(
        a.list_time_off("2026-03-04", 1, Some("sam")).unwrap().len(),
        1
    );
    assert_eq!(
        a.list_time_off("2026-03-02", 0, None).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        a.list_time_off("March", 7, None).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    drop(a);

    // Reception sees that Sam is away, not why; it may neither record time off nor book into it.
    let mut r = sign_in(&dir, "rita", USER_PASS);
    let seen = r.list_time_off("2026-03-02", 7, None).unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].reason, None);
    assert_eq!(seen[0].starts_local, "2026-03-03T13:30");
    assert_eq!(
        r.add_time_off("sam", "2026-03-06T09:00", "2026-03-06T10:00", None)
            .unwrap_err()
            .kind(),
        ErrorKind::PermissionDenied
    );
    let e = r
        .book_appointment(&booking(&p, "2026-03-03T14:00"))
        .unwrap_err();
    assert!(e.to_string().contains("away (time off)"), "{e}");
    let ok = r
        .book_appointment(&booking(&p, "2026-03-03T12:00"))
        .unwrap();
    assert_eq!(ok[0].ends_local, "2026-03-03T12:30");
}

/// Time off recorded by mistake is removed by whoever may record it; then bookings go ahead.
/// Reception may not remove it; an unknown id is not found; the entry carries no reason.
#[test]
fn time_off_recorded_by_mistake_is_removed_by_an_administrator_only() {
    let (_tmp, dir, p) = clinic();
    let mut a = sign_in(&dir, "admin", ADMIN_PASS);
    let t = a
        .add_time_off(
            "sam",
            "2026-03-03T13:30",
            "2026-03-03T17:00",
            Some("Zanzibar course"),
        )
        .unwrap();
    drop(a);

    let mut r = sign_in(&dir, "rita", USER_PASS);
    assert_eq!(
        r.remove_time_off(&t.id).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    assert!(r
        .book_appointment(&booking(&p, "2026-03-03T14:00"))
        .is_err());
    drop(r);

    let mut a = sign_in(&dir, "admin", ADMIN_PASS);
    a.remove_time_off(&t.id).unwrap();
    assert!(a.list_time_off("2026-03-02", 7, None).unwrap().is_empty());
    assert_eq!(
        a.remove_time_off(&t.id).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let removed = a
        .audit_list(&clinvault_core::audit_review::AuditFilter {
            action: Some("practitioner.time_off.remove".into()),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    let done: Vec<_> = removed.iter().filter(|e| e.outcome == "ok").collect();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].details["from"], "2026-03-03T13:30");
    assert!(!serde_json::to_string(&removed)
        .unwrap()
        .contains("Zanzibar"));
    drop(a);

    let mut r = sign_in(&dir, "rita", USER_PASS);
    r.book_appointment(&booking(&p, "2026-03-03T14:00"))
        .unwrap();
}

#[test]
fn time_off_over_booked_appointments_is_refused_until_someone_decides_and_then_counted() {
    let (_tmp, dir, p) = clinic();
    let mut r = sign_in(&dir, "rita", USER_PASS);
    // Monday 2026-03-02: two bookings in the morning, one cancelled.
    let a = r
        .book_appointment(&booking(&p, "2026-03-02T09:00"))
        .unwrap();
    r.book_appointment(&booking(&p, "2026-03-02T10:30"))
        .unwrap();
    let c = r
        .book_appointment(&booking(&p, "2026-03-02T11:30"))
        .unwrap();
    r.set_appointment_status(&c[0].id, "cancelled", Some("patient ill"))
        .unwrap();
    drop(r);

    let mut admin = sign_in(&dir, "admin", ADMIN_PASS);
    let e = admin
        .add_time_off_unless_booked("sam", "2026-03-02T08:00", "2026-03-02T12:30", None)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(
        e.to_string().contains(
            "2 appointments are still booked with sam in that time (the first at 2026-03-02 09:00)"
        ),
        "{e}"
    );
    assert!(admin
        .list_time_off("2026-03-02", 1, None)
        .unwrap()
        .is_empty());
    // Outside the bookings (the cancelled one does not count): recorded, none inside.
    let free = admin
        .add_time_off_unless_booked("sam", "2026-03-02T11:30", "2026-03-02T12:30", None)
        .unwrap();
    assert_eq!(free.booked_inside, 0);
    // Recorded anyway: the count comes back and stays on the list until the bookings move.
    let t = admin
        .add_time_off("sam", "2026-03-02T08:00", "2026-03-02T11:00", None)
        .unwrap();
    assert_eq!(t.booked_inside, 2);
    let listed = admin.list_time_off("2026-03-02", 1, None).unwrap();
    let counts: Vec<u32> = listed.iter().map(|t| t.booked_inside).collect();
    assert_eq!(counts, [2, 0]);
    let mut r = sign_in(&dir, "rita", USER_PASS);
    r.set_appointment_status(&a[0].id, "cancelled", Some("practitioner away"))
        .unwrap();
    let listed = r.list_time_off("2026-03-02", 1, None).unwrap();
    assert_eq!(listed[0].booked_inside, 1);
}
