-- The progress of a reconciliation run, so that an attempt that stopped part way (its process
-- stopped, its lease lost, a seller-day whose listing could not be read) is continued by the run's
-- next attempt from the seller-days not done, instead of comparing the whole window again.

-- Attempts started of the run; a run is taken up again until reconcile.run_attempts is spent.
ALTER TABLE reconcile_runs ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;

-- One row per seller-day a run has compared (and repaired, and whose drifts are recorded), with
-- what it counted; summed into the run's totals. Removed when the run is finished for good.
CREATE TABLE reconcile_run_days (
    run_id            BIGINT  NOT NULL,
    seller_tax_id     TEXT    NOT NULL,
    -- The China-time day, YYYY-MM-DD
    day               TEXT    NOT NULL,
    local_count       BIGINT  NOT NULL,
    remote_count      BIGINT  NOT NULL,
    in_agreement      BIGINT  NOT NULL,
    drift_count       BIGINT  NOT NULL,
    -- JSON object: drifts found per class
    drifts_by_class   TEXT    NOT NULL,
    repairs_attempted BIGINT  NOT NULL,
    repairs_succeeded BIGINT  NOT NULL,
    done_at           BIGINT  NOT NULL,
    PRIMARY KEY (run_id, seller_tax_id, day)
);
