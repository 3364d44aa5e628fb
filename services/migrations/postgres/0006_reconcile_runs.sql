-- Reconciliation passes, the drifts they found, and the lease that lets one replica run a pass at
-- a time.

CREATE TABLE reconcile_runs (
    id            BIGSERIAL PRIMARY KEY,
    -- recent | daily | manual
    kind          TEXT    NOT NULL,
    holder        TEXT    NOT NULL,
    dry_run       BIGINT  NOT NULL,
    window_from   BIGINT  NOT NULL,
    window_to     BIGINT  NOT NULL,
    started_at    BIGINT  NOT NULL,
    finished_at   BIGINT,
    complete      BIGINT,
    local_count   BIGINT,
    remote_count  BIGINT,
    in_agreement  BIGINT,
    drift_count   BIGINT,
    -- JSON list of the seller-days that could not be compared
    gaps          TEXT
);
CREATE INDEX reconcile_runs_finished ON reconcile_runs (finished_at);

-- One row per drift of one invoice and class, from the pass that first found it until a pass over
-- its window no longer finds it (closed) or an operator resolves it by hand (resolved).
CREATE TABLE drifts (
    id              BIGSERIAL PRIMARY KEY,
    invoice_number  TEXT    NOT NULL,
    seller_tax_id   TEXT    NOT NULL,
    issued_at       BIGINT  NOT NULL,
    class           TEXT    NOT NULL,
    -- critical | warning | none (repaired automatically)
    urgency         TEXT    NOT NULL,
    detail          TEXT    NOT NULL,
    -- JSON: the planned repair and what became of it at the last pass
    repair          TEXT    NOT NULL,
    outcome         TEXT    NOT NULL,
    first_run_id    BIGINT  NOT NULL,
    last_run_id     BIGINT  NOT NULL,
    first_seen_at   BIGINT  NOT NULL,
    last_seen_at    BIGINT  NOT NULL,
    -- open | closed | resolved
    status          TEXT    NOT NULL,
    closed_at       BIGINT,
    resolved_by     TEXT,
    resolution      TEXT
);
CREATE UNIQUE INDEX drifts_open_once ON drifts (invoice_number, class) WHERE status = 'open';
CREATE INDEX drifts_status ON drifts (status, urgency);
CREATE INDEX drifts_window ON drifts (seller_tax_id, issued_at) WHERE status = 'open';

CREATE TABLE leases (
    name    TEXT    PRIMARY KEY,
    holder  TEXT    NOT NULL,
    until   BIGINT  NOT NULL
);
