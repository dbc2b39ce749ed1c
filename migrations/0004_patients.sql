-- Clinic records, part 1: patients, with a full-text index for instant search (FTS5 inside the
-- encrypted database; its pages are encrypted like every other page).
CREATE TABLE patients (
    id                TEXT PRIMARY KEY,
    title             TEXT,
    first_name        TEXT NOT NULL,
    last_name         TEXT NOT NULL,
    preferred_name    TEXT,
    date_of_birth     TEXT,             -- YYYY-MM-DD
    sex               TEXT,
    gender_identity   TEXT,
    phone             TEXT,
    phone_alt         TEXT,
    phone_digits      TEXT,             -- digits of both phones, for search
    email             TEXT,
    address           TEXT,
    emergency_contact TEXT,
    insurance_number  TEXT,
    referral_source   TEXT,
    occupation        TEXT,
    general_notes     TEXT,
    archived          INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
) STRICT;

CREATE VIRTUAL TABLE patients_fts USING fts5(
    first_name, last_name, preferred_name, email, date_of_birth, phone_digits,
    content = 'patients', content_rowid = 'rowid',
    prefix = '1 2 3', tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER patients_fts_insert AFTER INSERT ON patients BEGIN
    INSERT INTO patients_fts (rowid, first_name, last_name, preferred_name, email, date_of_birth, phone_digits)
    VALUES (new.rowid, new.first_name, new.last_name, new.preferred_name, new.email, new.date_of_birth, new.phone_digits);
END;
CREATE TRIGGER patients_fts_delete AFTER DELETE ON patients BEGIN
    INSERT INTO patients_fts (patients_fts, rowid, first_name, last_name, preferred_name, email, date_of_birth, phone_digits)
    VALUES ('delete', old.rowid, old.first_name, old.last_name, old.preferred_name, old.email, old.date_of_birth, old.phone_digits);
END;
CREATE TRIGGER patients_fts_update AFTER UPDATE ON patients BEGIN
    INSERT INTO patients_fts (patients_fts, rowid, first_name, last_name, preferred_name, email, date_of_birth, phone_digits)
    VALUES ('delete', old.rowid, old.first_name, old.last_name, old.preferred_name, old.email, old.date_of_birth, old.phone_digits);
    INSERT INTO patients_fts (rowid, first_name, last_name, preferred_name, email, date_of_birth, phone_digits)
    VALUES (new.rowid, new.first_name, new.last_name, new.preferred_name, new.email, new.date_of_birth, new.phone_digits);
END;
