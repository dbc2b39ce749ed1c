//! Synthetic clinic data for trying the app and for benchmarks: deterministic for a seed, so two
//! runs with the same seed produce the same vault content (apart from ids of the day it runs):
//! patients, ten practitioners with working hours, appointment types, a year of appointments up
//! to today and a month ahead, invoices and payments for the completed ones, and short notes.
//! Demo practitioners are users without a key slot (they cannot sign in until an administrator
//! gives them a passphrase).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rusqlite::params;

use crate::audit::Event;
use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::permissions::Permission;
use crate::session::{Need, Session};

const FIRST: &[&str] = &[
    "Olivia",
    "Noah",
    "Charlotte",
    "Oliver",
    "Amelia",
    "Jack",
    "Isla",
    "William",
    "Mia",
    "Leo",
    "Ava",
    "Henry",
    "Grace",
    "Lucas",
    "Chloe",
    "Thomas",
    "Zoe",
    "James",
    "Ella",
    "Hudson",
    "Ruby",
    "Ethan",
    "Sophie",
    "Liam",
    "Matilda",
    "Aria",
    "Mason",
    "Harper",
    "Arlo",
    "Willow",
    "Mei",
    "Arjun",
    "Priya",
    "Hiroshi",
    "Fatima",
    "Mateo",
    "Sofia",
    "Kwame",
    "Anika",
    "Dmitri",
];
const LAST: &[&str] = &[
    "Smith",
    "Jones",
    "Williams",
    "Brown",
    "Wilson",
    "Taylor",
    "Johnson",
    "White",
    "Martin",
    "Anderson",
    "Thompson",
    "Nguyen",
    "Thomas",
    "Walker",
    "Harris",
    "Lee",
    "Ryan",
    "Robinson",
    "Kelly",
    "King",
    "Davis",
    "Wright",
    "Evans",
    "Roberts",
    "Green",
    "Hall",
    "Wood",
    "Jackson",
    "Clarke",
    "Patel",
    "Khan",
    "Singh",
    "Chen",
    "Wang",
    "Li",
    "Kim",
    "Murphy",
    "O'Brien",
    "Rossi",
    "Papadopoulos",
    "Schmidt",
    "Novak",
    "Silva",
    "Haddad",
    "Okafor",
    "Tanaka",
    "Costa",
    "Moreau",
    "Fischer",
    "Jensen",
];
const OCCUPATIONS: &[&str] = &[
    "Teacher",
    "Nurse",
    "Electrician",
    "Accountant",
    "Student",
    "Retired",
    "Chef",
    "Engineer",
    "Carpenter",
    "Designer",
    "Driver",
    "Pharmacist",
];

impl Session {
    /// Adds `n` synthetic patients, deterministic for `seed`. Recorded as one entry with the
    /// count. Refused on a vault that already holds patients, so real records never mix with
    /// made-up ones.
    pub fn generate_demo_patients(&mut self, n: u32, seed: u64) -> Result<u32> {
        let now = rfc3339(self.clock().now());
        let event = Event::new("demo.generate")
            .detail("patients", n)
            .detail("seed", seed);
        self.gate(
            Need::Permission(Permission::SettingsManage),
            event,
            |tx, _| {
                let existing: i64 =
                    tx.query_row("SELECT count(*) FROM patients", [], |r| r.get(0))?;
                if existing > 0 {
                    return Err(Error::InvalidInput(
                        "demo data goes only into a vault without patients".into(),
                    ));
                }
                let mut rng = StdRng::seed_from_u64(seed);
                let mut st = tx.prepare(
                    "INSERT INTO patients (id, first_name, last_name, date_of_birth, sex, phone,
                     phone_digits, email, occupation, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
                )?;
                for i in 0..n {
                    let first = FIRST[rng.gen_range(0..FIRST.len())];
                    let last = LAST[rng.gen_range(0..LAST.len())];
                    let dob = format!(
                        "{}-{:02}-{:02}",
                        rng.gen_range(1930..2022),
                        rng.gen_range(1..=12),
                        rng.gen_range(1..=28)
                    );
                    let mobile: u32 = rng.gen_range(10_000_000..99_999_999);
                    let phone = format!(
                        "04{:02} {:03} {:03}",
                        mobile / 1_000_000,
                        (mobile / 1000) % 1000,
                        mobile % 1000
                    );
                    let id = uuid::Builder::from_random_bytes(rng.gen()).into_uuid();
                    let email = format!(
                        "{}.{}{}@example.org",
                        first.to_lowercase(),
                        last.to_lowercase().replace('\'', ""),
                        i
                    );
                    st.execute(params![
                        id.to_string(),
                        first,
                        last,
                        dob,
                        if rng.gen_bool(0.5) { "female" } else { "male" },
                        phone,
                        crate::patients::phone_search_tokens(std::iter::once(phone.as_str())),
                        email,
                        OCCUPATIONS[rng.gen_range(0..OCCUPATIONS.len())],
                        now
                    ])?;
                }
                Ok(n)
            },
        )
    }
}

const PRACTITIONERS: &[(&str, &str)] = &[
    ("demo.amara", "Amara Okafor"),
    ("demo.ben", "Ben Carter"),
    ("demo.chloe", "Chloe Nguyen"),
    ("demo.dev", "Dev Patel"),
    ("demo.elena", "Elena Rossi"),
    ("demo.finn", "Finn Murphy"),
    ("demo.grace", "Grace Kim"),
    ("demo.hugo", "Hugo Moreau"),
    ("demo.isla", "Isla Jensen"),
    ("demo.jack", "Jack Wilson"),
];
const TYPES: &[(&str, i64, i64, i64)] = &[
    ("Demo initial consult", 60, 11_000, 1_000),
    ("Demo follow-up", 30, 7_500, 1_000),
    ("Demo extended", 45, 9_500, 1_000),
];

impl Session {
    /// Patients plus a year of clinic activity (see the module comment). Refused on a vault that
    /// already holds patients.
    pub fn generate_demo_clinic(&mut self, patients: u32, seed: u64) -> Result<DemoSummary> {
        self.generate_demo_patients(patients, seed)?;
        let tz = jiff::tz::TimeZone::get(&self.policy().clinic_timezone)
            .unwrap_or(jiff::tz::TimeZone::UTC);
        let now_ts = self.clock().now();
        let now = rfc3339(now_ts);
        let today = now_ts.to_zoned(tz.clone()).date();
        let event = Event::new("demo.generate_clinic").detail("seed", seed);
        self.gate(Need::Permission(Permission::SettingsManage), event, |tx, ev| {
            let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_c11c);
            let patient_ids: Vec<String> = tx
                .prepare("SELECT id FROM patients ORDER BY rowid")?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            if patient_ids.is_empty() {
                return Err(Error::InvalidInput("demo: needs at least one patient".into()));
            }
            let mut practitioner_ids = Vec::new();
            for (username, display) in PRACTITIONERS {
                let user_id = uuid::Uuid::new_v4();
                crate::users::insert(tx, user_id, username, display, "practitioner", &now)?;
                let pid = uuid::Uuid::new_v4().to_string();
                tx.execute(
                    "INSERT INTO practitioners (id, user_id, display_name, created_at) VALUES (?1, ?2, ?3, ?4)",
                    params![pid, user_id.to_string(), display, now],
                )?;
                for weekday in 1..=5 {
                    for (a, b) in [("08:00", "12:00"), ("13:00", "17:00")] {
                        tx.execute(
                            "INSERT INTO working_hours (practitioner_id, weekday, starts, ends) VALUES (?1, ?2, ?3, ?4)",
                            params![pid, weekday, a, b],
                        )?;
                    }
                }
                practitioner_ids.push(pid);
            }
            let mut types = Vec::new();
            for (name, minutes, price, bp) in TYPES {
                let id = uuid::Uuid::new_v4().to_string();
                tx.execute(
                    "INSERT INTO appointment_types (id, name, minutes, price_minor, tax_rate_bp, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![id, name, minutes, price, bp, now],
                )?;
                types.push((id, *name, *minutes, *price, *bp));
            }
            let mut counter: i64 = tx.query_row("SELECT next FROM invoice_counter WHERE id = 1", [], |r| r.get(0))?;
            let (mut appointments, mut invoices) = (0u64, 0u64);
            let mut add_appt = tx.prepare(
                "INSERT INTO appointments (id, patient_id, practitioner_id, type_id, starts_at, ends_at, status, cancel_reason, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
            )?;
            let mut add_inv = tx.prepare(
                "INSERT INTO invoices (id, number, patient_id, appointment_id, practitioner_id, status, issued_on, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'issued', ?6, ?7)",
            )?;
            let mut add_item = tx.prepare(
                "INSERT INTO invoice_items (invoice_id, line, description, quantity, unit_price_minor, tax_rate_bp, type_id) VALUES (?1, 1, ?2, 1, ?3, ?4, ?5)",
            )?;
            let mut add_pay = tx.prepare(
                "INSERT INTO payments (id, invoice_id, amount_minor, method, paid_on, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let first = today.checked_sub(jiff::Span::new().days(365)).map_err(|_| Error::Internal("date range".into()))?;
            for offset in 0..(365 + 30) {
                let day = first.checked_add(jiff::Span::new().days(offset)).map_err(|_| Error::Internal("date range".into()))?;
                if day.weekday().to_monday_one_offset() > 5 {
                    continue;
                }
                for pid in &practitioner_ids {
                    // Back-to-back hour slots, 08:00–16:00 with lunch free; about 70% taken.
                    for hour in [8, 9, 10, 11, 13, 14, 15, 16] {
                        if !rng.gen_bool(0.7) {
                            continue;
                        }
                        let (tid, tname, minutes, price, bp) = &types[rng.gen_range(0..types.len())];
                        let local = day.at(hour, 0, 0, 0);
                        let Ok(start) = tz.to_ambiguous_zoned(local).compatible() else { continue };
                        let starts = start.timestamp().as_second();
                        let past = day < today;
                        let roll: f64 = rng.gen();
                        let (status, reason) = if !past {
                            ("booked", None)
                        } else if roll < 0.05 {
                            ("cancelled", Some("unwell"))
                        } else if roll < 0.09 {
                            ("no_show", None)
                        } else {
                            ("completed", None)
                        };
                        let aid = uuid::Builder::from_random_bytes(rng.gen()).into_uuid().to_string();
                        let patient = &patient_ids[rng.gen_range(0..patient_ids.len())];
                        add_appt.execute(params![aid, patient, pid, tid, starts, starts + minutes * 60, status, reason, now])?;
                        appointments += 1;
                        if status == "completed" {
                            let iid = uuid::Builder::from_random_bytes(rng.gen()).into_uuid().to_string();
                            add_inv.execute(params![iid, counter, patient, aid, pid, day.to_string(), now])?;
                            add_item.execute(params![iid, tname, price, bp, tid])?;
                            counter += 1;
                            invoices += 1;
                            if rng.gen_bool(0.9) {
                                let total = price + (price * bp + 5_000) / 10_000;
                                add_pay.execute(params![uuid::Uuid::new_v4().to_string(), iid, total, "card", day.to_string(), now])?;
                            }
                        }
                    }
                }
            }
            tx.execute("UPDATE invoice_counter SET next = ?1 WHERE id = 1", [counter])?;
            // Short final notes for a sample of completed appointments.
            let sample: Vec<(String, String, String, i64)> = tx
                .prepare(
                    "SELECT a.id, a.patient_id, a.practitioner_id, a.starts_at FROM appointments a
                     WHERE a.status = 'completed' ORDER BY a.starts_at",
                )?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let mut notes = 0u64;
            for (aid, patient, pid, starts) in sample.iter().step_by(5) {
                let author: String = tx.query_row("SELECT user_id FROM practitioners WHERE id = ?1", [pid], |r| r.get(0))?;
                let at = jiff::Timestamp::from_second(*starts).map(rfc3339).unwrap_or_else(|_| now.clone());
                let nid = uuid::Builder::from_random_bytes(rng.gen()).into_uuid().to_string();
                let body = NOTE_TEXTS[rng.gen_range(0..NOTE_TEXTS.len())];
                tx.execute(
                    "INSERT INTO notes (id, patient_id, appointment_id, practitioner_id, status, created_at, finalised_at)
                     VALUES (?1, ?2, ?3, ?4, 'final', ?5, ?5)",
                    params![nid, patient, aid, pid, at],
                )?;
                tx.execute(
                    "INSERT INTO note_versions (note_id, version, kind, body, author_id, created_at) VALUES (?1, 1, 'final', ?2, ?3, ?4)",
                    params![nid, body, author, at],
                )?;
                notes += 1;
            }
            *ev = ev.clone().detail("appointments", appointments).detail("invoices", invoices).detail("notes", notes);
            Ok(DemoSummary { patients, practitioners: PRACTITIONERS.len() as u32, appointments, invoices, notes, attachments: 0 })
        })
        .and_then(|mut summary| {
            // A few small referral letters, stored like any attachment (encrypted files).
            let ids: Vec<String> = self
                .vault()?
                .conn()
                .prepare("SELECT id FROM patients ORDER BY rowid LIMIT 20")?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            for (i, id) in ids.iter().enumerate() {
                let letter = format!(
                    "Referral letter (synthetic demo data) no. {i}\nPlease assess and treat. Thank you.\n{}",
                    "Lorem ipsum dolor sit amet. ".repeat(300)
                );
                self.add_attachment(id, &format!("referral-{i}.txt"), &mut letter.as_bytes())?;
                summary.attachments += 1;
            }
            Ok(summary)
        })
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct DemoSummary {
    pub patients: u32,
    pub practitioners: u32,
    pub appointments: u64,
    pub invoices: u64,
    pub notes: u64,
    pub attachments: u64,
}

const NOTE_TEXTS: &[&str] = &[
    "S: Lower back pain, better since last visit. O: Flexion improved. A: Progressing. P: Continue exercises.",
    "S: Neck stiffness after desk work. O: Reduced rotation left. A: Postural strain. P: Mobilisation, ergonomics advice.",
    "S: Knee pain on stairs. O: Mild swelling. A: Patellofemoral pain. P: Strengthening programme, review in 2 weeks.",
    "S: Shoulder pain overhead. O: Painful arc 80–120°. A: Rotator cuff tendinopathy. P: Load management, exercises.",
];
