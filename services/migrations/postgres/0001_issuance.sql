-- Issued invoices, their events, upload attempts, and the number ranges and quota reserved from
-- the tax platform. Times are unix microseconds (UTC); money is decimal text with 2 places, quota
-- is integer fen so it can be debited in SQL.

CREATE TABLE invoices (
    invoice_number   TEXT    NOT NULL PRIMARY KEY,
    seller_tax_id    TEXT    NOT NULL,
    request_id       TEXT    NOT NULL,
    content_sm3      TEXT    NOT NULL,
    kind             TEXT    NOT NULL,
    colour           TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    buyer_tax_id     TEXT,
    buyer_name       TEXT    NOT NULL,
    amount           TEXT    NOT NULL,
    tax              TEXT    NOT NULL,
    total            TEXT    NOT NULL,
    issued_at        BIGINT NOT NULL,
    state_changed_at BIGINT NOT NULL,
    content          TEXT    NOT NULL,
    blue_invoice_number TEXT,
    upload_phase     TEXT,
    next_attempt_at  BIGINT,
    upload_attempts  BIGINT NOT NULL DEFAULT 0,
    upload_receipt   TEXT,
    platform_code    TEXT,
    platform_message TEXT,
    platform_at      BIGINT,
    UNIQUE (seller_tax_id, request_id)
);

CREATE INDEX invoices_due ON invoices (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX invoices_seller_issued ON invoices (seller_tax_id, issued_at, invoice_number);
CREATE INDEX invoices_issued ON invoices (issued_at, invoice_number);

CREATE TABLE invoice_events (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    invoice_number   TEXT    NOT NULL,
    seller_tax_id    TEXT    NOT NULL,
    request_id       TEXT    NOT NULL,
    colour           TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    previous_state   TEXT,
    at               BIGINT NOT NULL,
    reason           TEXT    NOT NULL,
    actor            TEXT    NOT NULL,
    platform_code    TEXT,
    platform_message TEXT
);

CREATE INDEX invoice_events_invoice ON invoice_events (invoice_number, id);

CREATE TABLE upload_attempts (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    invoice_number TEXT    NOT NULL,
    seller_tax_id  TEXT    NOT NULL,
    attempt        BIGINT NOT NULL,
    at             BIGINT NOT NULL,
    outcome        TEXT    NOT NULL,
    code           TEXT,
    message        TEXT
);

CREATE INDEX upload_attempts_at ON upload_attempts (at);

CREATE TABLE number_ranges (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    seller_tax_id TEXT    NOT NULL,
    prefix        BIGINT NOT NULL,
    first_seq     BIGINT NOT NULL,
    last_seq      BIGINT NOT NULL,
    next_seq      BIGINT NOT NULL,
    reserved_at   BIGINT NOT NULL
);

CREATE INDEX number_ranges_open ON number_ranges (seller_tax_id, id) WHERE next_seq <= last_seq;

CREATE TABLE quota_balances (
    seller_tax_id      TEXT    NOT NULL PRIMARY KEY,
    downloaded_fen     BIGINT NOT NULL DEFAULT 0,
    used_fen           BIGINT NOT NULL DEFAULT 0,
    platform_available_fen BIGINT,
    checked_at         BIGINT
);

CREATE TABLE quota_downloads (
    serial        TEXT    NOT NULL PRIMARY KEY,
    seller_tax_id TEXT    NOT NULL,
    asked_fen     BIGINT NOT NULL,
    granted_fen   BIGINT,
    at            BIGINT NOT NULL
);
