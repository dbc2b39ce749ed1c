-- Clinic records, part 3: treatment notes (templates, drafts, finalised versions, amendments),
-- invoices and payments, attachments.
CREATE TABLE note_templates (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    sections   TEXT NOT NULL,            -- JSON: [{"title", "kind": "text"|"choice"|"checkbox", "options": [...]}]
    created_at TEXT NOT NULL
) STRICT;

CREATE TABLE notes (
    id              TEXT PRIMARY KEY,
    patient_id      TEXT NOT NULL REFERENCES patients(id),
    appointment_id  TEXT REFERENCES appointments(id),
    practitioner_id TEXT NOT NULL REFERENCES practitioners(id),
    template_id     TEXT REFERENCES note_templates(id),
    status          TEXT NOT NULL CHECK (status IN ('draft', 'final')),
    created_at      TEXT NOT NULL,
    finalised_at    TEXT
) STRICT;
CREATE INDEX notes_patient ON notes(patient_id, created_at);

-- Every version kept: the draft (edited in place until finalised), the final text, amendments.
CREATE TABLE note_versions (
    note_id    TEXT NOT NULL REFERENCES notes(id),
    version    INTEGER NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('draft', 'final', 'amendment')),
    body       TEXT NOT NULL,
    reason     TEXT,
    author_id  TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (note_id, version)
) STRICT;
CREATE TRIGGER note_versions_final_immutable BEFORE UPDATE ON note_versions
WHEN OLD.kind != 'draft'
BEGIN
    SELECT RAISE(ABORT, 'a finalised note cannot be changed; amend it');
END;
CREATE TRIGGER note_versions_no_delete BEFORE DELETE ON note_versions
WHEN OLD.kind != 'draft'
BEGIN
    SELECT RAISE(ABORT, 'a finalised note cannot be deleted');
END;

CREATE TABLE invoice_counter (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    next INTEGER NOT NULL
) STRICT;
INSERT INTO invoice_counter (id, next) VALUES (1, 1);

CREATE TABLE invoices (
    id              TEXT PRIMARY KEY,
    number          INTEGER UNIQUE,        -- assigned when issued, so drafts leave no gaps
    patient_id      TEXT NOT NULL REFERENCES patients(id),
    appointment_id  TEXT REFERENCES appointments(id),
    practitioner_id TEXT REFERENCES practitioners(id),
    status          TEXT NOT NULL CHECK (status IN ('draft', 'issued', 'void')),
    issued_on       TEXT,                  -- local clinic date, once issued
    void_reason     TEXT,
    created_at      TEXT NOT NULL
) STRICT;
CREATE INDEX invoices_patient ON invoices(patient_id);
CREATE INDEX invoices_issued ON invoices(issued_on);

CREATE TABLE invoice_items (
    invoice_id       TEXT NOT NULL REFERENCES invoices(id),
    line             INTEGER NOT NULL,
    description      TEXT NOT NULL,
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_minor INTEGER NOT NULL CHECK (unit_price_minor >= 0),
    tax_rate_bp      INTEGER NOT NULL CHECK (tax_rate_bp BETWEEN 0 AND 10000),
    type_id          TEXT REFERENCES appointment_types(id),
    PRIMARY KEY (invoice_id, line)
) STRICT;

CREATE TABLE payments (
    id           TEXT PRIMARY KEY,
    invoice_id   TEXT NOT NULL REFERENCES invoices(id),
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    method       TEXT NOT NULL,
    paid_on      TEXT NOT NULL,
    created_at   TEXT NOT NULL
) STRICT;
CREATE INDEX payments_invoice ON payments(invoice_id);

-- Content lives in attachments/<id>.bin next to the database, encrypted with a random per-file
-- key (kept here, inside the encrypted database) by XChaCha20-Poly1305 in the STREAM
-- construction: written and read a chunk at a time, never as plaintext on disk.
CREATE TABLE attachments (
    id         TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients(id),
    file_name  TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size       INTEGER NOT NULL,
    sha256     BLOB NOT NULL,
    file_key   BLOB NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
CREATE INDEX attachments_patient ON attachments(patient_id);
