-- Clinic records, part 2: practitioners, their working hours, appointment types, appointments.
-- Times are stored in UTC (unix seconds); working hours are local clinic time.
CREATE TABLE practitioners (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL UNIQUE REFERENCES users(id),
    display_name TEXT NOT NULL,
    created_at   TEXT NOT NULL
) STRICT;

CREATE TABLE working_hours (
    practitioner_id TEXT NOT NULL REFERENCES practitioners(id),
    weekday         INTEGER NOT NULL CHECK (weekday BETWEEN 1 AND 7),   -- ISO: Monday = 1
    starts          TEXT NOT NULL,                                      -- HH:MM
    ends            TEXT NOT NULL,
    PRIMARY KEY (practitioner_id, weekday, starts)
) STRICT;

CREATE TABLE appointment_types (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    minutes     INTEGER NOT NULL CHECK (minutes BETWEEN 5 AND 480),
    colour      TEXT,
    price_minor INTEGER NOT NULL CHECK (price_minor >= 0),   -- money in minor units, never floats
    tax_rate_bp INTEGER NOT NULL DEFAULT 0 CHECK (tax_rate_bp BETWEEN 0 AND 10000),
    created_at  TEXT NOT NULL
) STRICT;

CREATE TABLE appointments (
    id              TEXT PRIMARY KEY,
    patient_id      TEXT NOT NULL REFERENCES patients(id),
    practitioner_id TEXT NOT NULL REFERENCES practitioners(id),
    type_id         TEXT NOT NULL REFERENCES appointment_types(id),
    starts_at       INTEGER NOT NULL,
    ends_at         INTEGER NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('booked', 'arrived', 'completed', 'cancelled', 'no_show')),
    cancel_reason   TEXT,
    note            TEXT,
    series_id       TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    CHECK (ends_at > starts_at)
) STRICT;
CREATE INDEX appointments_practitioner_time ON appointments(practitioner_id, starts_at);
CREATE INDEX appointments_patient_time ON appointments(patient_id, starts_at);

CREATE TABLE time_off (
    id              TEXT PRIMARY KEY,
    practitioner_id TEXT NOT NULL REFERENCES practitioners(id),
    starts_at       INTEGER NOT NULL,
    ends_at         INTEGER NOT NULL,
    reason          TEXT,
    CHECK (ends_at > starts_at)
) STRICT;
CREATE INDEX time_off_practitioner ON time_off(practitioner_id, starts_at);
