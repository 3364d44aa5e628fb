-- Red-letter confirmation forms (红字发票信息确认单) and their status changes.
--
-- A form the seller files is stored first as FILING, before the platform is asked: the row
-- reserves what it reverses of the blue invoice, so concurrent requests for one blue invoice are
-- checked against each other, and an unanswered filing is filed again under the same request id.
-- Afterwards status holds the platform's code, 01 to 13. Lines are JSON: what each blue line
-- loses, as positive magnitudes. Times are unix microseconds (UTC).
CREATE TABLE red_letter_forms (
    id                  BIGSERIAL PRIMARY KEY,
    seller_tax_id       TEXT    NOT NULL,
    -- The seller's request id; NULL for a form the buyer filed.
    request_id          TEXT,
    -- SM3 of the request, so the same request again is a replay and another is a conflict.
    request_sm3         TEXT,
    -- 20 characters assigned by the platform; NULL while filing.
    form_number         TEXT,
    uuid                TEXT,
    blue_invoice_number TEXT    NOT NULL,
    blue_kind           TEXT    NOT NULL,
    -- 01 to 04
    reason              TEXT    NOT NULL,
    -- FILING, or the platform's 01 to 13
    status              TEXT    NOT NULL,
    -- SELLER | BUYER
    initiator           TEXT    NOT NULL,
    lines               TEXT    NOT NULL,
    amount              TEXT    NOT NULL,
    tax                 TEXT    NOT NULL,
    remark              TEXT    NOT NULL,
    drawer              TEXT    NOT NULL,
    actor               TEXT    NOT NULL,
    created_at          BIGINT NOT NULL,
    expires_at          BIGINT,
    status_changed_at   BIGINT NOT NULL,
    red_invoice_number  TEXT,
    -- When the follow-up worker looks at the form next; NULL when nothing is left to do.
    next_check_at       BIGINT,
    check_attempts      BIGINT NOT NULL DEFAULT 0,
    last_error          TEXT,
    UNIQUE (seller_tax_id, request_id),
    UNIQUE (form_number)
);

CREATE INDEX red_letter_forms_blue ON red_letter_forms (blue_invoice_number);
CREATE INDEX red_letter_forms_seller ON red_letter_forms (seller_tax_id, created_at, id);
CREATE INDEX red_letter_forms_due ON red_letter_forms (next_check_at) WHERE next_check_at IS NOT NULL;
CREATE INDEX red_letter_forms_pending ON red_letter_forms (status, expires_at) WHERE status IN ('02', '03');

CREATE TABLE red_letter_events (
    id                  BIGSERIAL PRIMARY KEY,
    form_number         TEXT    NOT NULL,
    seller_tax_id       TEXT    NOT NULL,
    request_id          TEXT    NOT NULL,
    blue_invoice_number TEXT    NOT NULL,
    status              TEXT    NOT NULL,
    previous_status     TEXT,
    at                  BIGINT NOT NULL,
    reason              TEXT    NOT NULL,
    actor               TEXT    NOT NULL,
    red_invoice_number  TEXT
);

CREATE INDEX red_letter_events_form ON red_letter_events (form_number, id);
