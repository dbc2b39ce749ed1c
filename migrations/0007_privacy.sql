-- Privacy and compliance: rectification history, consents and lawful basis, legal holds,
-- erasure by anonymisation. Everything here lives inside the encrypted database.

-- Every change of a patient field: who, when, which field, old and new value. One change set
-- (one update) shares a change_id; a correction the patient asked for carries their request.
CREATE TABLE patient_history (
    seq             INTEGER PRIMARY KEY,
    patient_id      TEXT NOT NULL REFERENCES patients(id),
    change_id       TEXT NOT NULL,
    changed_at      TEXT NOT NULL,
    changed_by      TEXT NOT NULL,           -- user id
    changed_by_name TEXT NOT NULL,           -- username at the time
    field           TEXT NOT NULL,
    old_value       TEXT,
    new_value       TEXT,
    patient_request TEXT                     -- the patient's request, when they asked for it
) STRICT;
CREATE INDEX patient_history_patient ON patient_history(patient_id, seq);

-- Lawful basis for processing and consents (treatment, email, SMS ...), each with the dates it
-- was given and withdrawn. Rows are never deleted, only withdrawn (the record of consent is
-- itself evidence), except by anonymisation.
CREATE TABLE patient_consents (
    id           TEXT PRIMARY KEY,
    patient_id   TEXT NOT NULL REFERENCES patients(id),
    kind         TEXT NOT NULL,
    basis        TEXT,
    note         TEXT,
    given_on     TEXT NOT NULL,              -- YYYY-MM-DD
    recorded_by  TEXT NOT NULL,
    recorded_at  TEXT NOT NULL,
    withdrawn_on TEXT,
    withdrawn_by TEXT,
    withdrawn_at TEXT
) STRICT;
CREATE INDEX patient_consents_patient ON patient_consents(patient_id, kind);

-- A legal hold suspends every deletion and anonymisation for the patient while it is active.
CREATE TABLE legal_holds (
    id            TEXT PRIMARY KEY,
    patient_id    TEXT NOT NULL REFERENCES patients(id),
    reason        TEXT NOT NULL,
    placed_by     TEXT NOT NULL,
    placed_at     TEXT NOT NULL,
    released_by   TEXT,
    released_at   TEXT,
    release_note  TEXT
) STRICT;
CREATE INDEX legal_holds_patient ON legal_holds(patient_id);

-- Anonymised patients keep their row (invoices point at it) under a pseudonymous reference.
ALTER TABLE patients ADD COLUMN anonymised_at TEXT;
ALTER TABLE patients ADD COLUMN pseudonym TEXT;
ALTER TABLE patients ADD COLUMN birth_year INTEGER;

-- Finalised note versions stay immutable, except while the patient they belong to is being
-- erased: anonymisation lists the patient here inside its own transaction and removes the
-- row again before committing.
CREATE TABLE erasure_in_progress (
    patient_id TEXT PRIMARY KEY
) STRICT;

DROP TRIGGER note_versions_no_delete;
CREATE TRIGGER note_versions_no_delete BEFORE DELETE ON note_versions
WHEN OLD.kind != 'draft'
 AND NOT EXISTS (SELECT 1 FROM erasure_in_progress e JOIN notes n ON n.patient_id = e.patient_id
                 WHERE n.id = OLD.note_id)
BEGIN
    SELECT RAISE(ABORT, 'a finalised note cannot be deleted');
END;
