//! Synthetic clinic data for trying the app and for benchmarks: deterministic for a seed, so two
//! runs with the same seed produce the same vault content. So far: patients (the rest of the
//! clinic — practitioners, appointments, notes, invoices — comes with those records).

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
