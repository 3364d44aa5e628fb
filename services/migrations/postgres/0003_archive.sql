-- Layout files. Every invoice is due for archiving from the moment it is issued (archive_due_at
-- set); the archive worker clears archive_due_at once its three files are written and recorded,
-- or when a different object already sits under one of its keys (archive_problem says why, and an
-- operator must look). Invoices issued before this migration are archived too.

ALTER TABLE invoices ADD COLUMN archive_due_at BIGINT;
ALTER TABLE invoices ADD COLUMN archive_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE invoices ADD COLUMN archive_problem TEXT;
UPDATE invoices SET archive_due_at = issued_at;
CREATE INDEX invoices_archive_due ON invoices (archive_due_at) WHERE archive_due_at IS NOT NULL;

-- One row per archived file: where it is and what it was when written (SM3 and size), so that a
-- later change to the object is detected.
CREATE TABLE archived_files (
    invoice_number TEXT    NOT NULL,
    format         TEXT    NOT NULL,
    object_key     TEXT    NOT NULL,
    size_bytes     BIGINT    NOT NULL,
    sm3            TEXT    NOT NULL,
    archived_at    BIGINT    NOT NULL,
    PRIMARY KEY (invoice_number, format)
);

-- The audit trail: one row per call of an auditor-facing method or archive command.
CREATE TABLE access_records (
    id             BIGSERIAL PRIMARY KEY,
    at             BIGINT    NOT NULL,
    actor          TEXT    NOT NULL,
    method         TEXT    NOT NULL,
    invoice_number TEXT,
    format         TEXT,
    purpose        TEXT    NOT NULL,
    outcome        TEXT    NOT NULL,
    peer           TEXT    NOT NULL
);
CREATE INDEX access_records_actor ON access_records (actor, id);
CREATE INDEX access_records_invoice ON access_records (invoice_number, id);
