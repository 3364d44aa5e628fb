-- Reconciliation passes, the drifts they found, and the lease that lets one replica run a pass at
-- a time.

CREATE TABLE reconcile_runs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    -- recent | daily | manual
    kind          TEXT    NOT NULL,
    holder        TEXT    NOT NULL,
    dry_run       INTEGER NOT NULL,
    window_from   INTEGER NOT NULL,
    window_to     INTEGER NOT NULL,
    started_at    INTEGER NOT NULL,
    finished_at   INTEGER,
    complete      INTEGER,
    local_count   INTEGER,
    remote_count  INTEGER,
    in_agreement  INTEGER,
    drift_count   INTEGER,
    -- JSON list of the seller-days that could not be compared
    gaps          TEXT
);
CREATE INDEX reconcile_runs_finished ON reconcile_runs (finished_at);

-- One row per drift of one invoice and class, from the pass that first found it until a pass over
-- its window no longer finds it (closed) or an operator resolves it by hand (resolved).
CREATE TABLE drifts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    invoice_number  TEXT    NOT NULL,
    seller_tax_id   TEXT    NOT NULL,
    issued_at       INTEGER NOT NULL,
    class           TEXT    NOT NULL,
    -- critical | warning | none (repaired automatically)
    urgency         TEXT    NOT NULL,
    detail          TEXT    NOT NULL,
    -- JSON: the planned repair and what became of it at the last pass
    repair          TEXT    NOT NULL,
    outcome         TEXT    NOT NULL,
    first_run_id    INTEGER NOT NULL,
    last_run_id     INTEGER NOT NULL,
    first_seen_at   INTEGER NOT NULL,
    last_seen_at    INTEGER NOT NULL,
    -- open | closed | resolved
    status          TEXT    NOT NULL,
    closed_at       INTEGER,
    resolved_by     TEXT,
    resolution      TEXT
);
CREATE UNIQUE INDEX drifts_open_once ON drifts (invoice_number, class) WHERE status = 'open';
CREATE INDEX drifts_status ON drifts (status, urgency);
CREATE INDEX drifts_window ON drifts (seller_tax_id, issued_at) WHERE status = 'open';

CREATE TABLE leases (
    name    TEXT    PRIMARY KEY,
    holder  TEXT    NOT NULL,
    until   INTEGER NOT NULL
);
