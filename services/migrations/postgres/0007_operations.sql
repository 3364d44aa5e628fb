-- What operators see of reconciliation: each run's trigger, status and repair counts, each drift's
-- repair attempts, and the alerts firing between evaluations.

-- queued (waiting for the lease) | running | succeeded | failed. A queued run's started_at is when
-- it was requested; it is set again when the pass starts.
ALTER TABLE reconcile_runs ADD COLUMN status TEXT NOT NULL DEFAULT 'succeeded';
-- The principal who started a manual run, and why.
ALTER TABLE reconcile_runs ADD COLUMN triggered_by TEXT;
ALTER TABLE reconcile_runs ADD COLUMN reason TEXT;
-- Why a failed run failed.
ALTER TABLE reconcile_runs ADD COLUMN error TEXT;
-- JSON list of the sellers compared; NULL means every configured seller.
ALTER TABLE reconcile_runs ADD COLUMN sellers TEXT;
ALTER TABLE reconcile_runs ADD COLUMN repairs_attempted BIGINT NOT NULL DEFAULT 0;
-- JSON object: drifts found per class.
ALTER TABLE reconcile_runs ADD COLUMN drifts_by_class TEXT;
ALTER TABLE reconcile_runs ADD COLUMN repairs_succeeded BIGINT NOT NULL DEFAULT 0;
UPDATE reconcile_runs SET status = 'failed', error = 'interrupted before it finished'
    WHERE finished_at IS NULL;
CREATE INDEX reconcile_runs_status ON reconcile_runs (status, id);

-- A drift a later pass no longer finds was repaired: say so.
UPDATE drifts SET status = 'repaired', resolved_by = 'system:reconciler' WHERE status = 'closed';
ALTER TABLE drifts ADD COLUMN repair_attempts BIGINT NOT NULL DEFAULT 0;
-- The invoice's local state when found (NULL for an invoice only the platform has), and the
-- platform's state (NULL when it has no record).
ALTER TABLE drifts ADD COLUMN local_state TEXT;
ALTER TABLE drifts ADD COLUMN platform_state TEXT;
ALTER TABLE drifts ADD COLUMN last_repair_at BIGINT;

-- The alerts firing as of the last evaluation (the reconciler's AlertBook as JSON), so that a
-- restart neither fires them again nor forgets to resolve them.
CREATE TABLE alert_books (
    name        TEXT    PRIMARY KEY,
    book        TEXT    NOT NULL,
    updated_at  BIGINT NOT NULL
);
