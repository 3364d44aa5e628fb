//! A reconciliation run's progress across its attempts: the seller-days it has compared, each
//! kept with the drifts it found as soon as it is done, so that the run's next attempt continues
//! from the seller-days not done; the end of an attempt (the run's totals summed from its days,
//! and whether it is finished or queued for another attempt); and runs a stopped process left
//! `running`, taken up again.
//!
//! It must not decide what a drift is or when a run may try again: the pass and the worker do, and
//! hand their verdicts in.

use std::collections::BTreeMap;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Row;

use super::reconcile::DriftWrite;
use super::{Store, micros};

/// One compared seller-day of a run, as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SellerDayWrite {
    pub seller_tax_id: String,
    pub day: NaiveDate,
    pub local: u64,
    pub remote: u64,
    pub in_agreement: u64,
    /// Every drift it found, written (or updated) with the day.
    pub drifts: Vec<DriftWrite>,
    pub repairs_attempted: u64,
    pub repairs_succeeded: u64,
}

/// A seller-day an earlier attempt of the run compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoneSellerDay {
    pub seller_tax_id: String,
    pub day: NaiveDate,
    /// Invoice numbers it compared (in agreement or in drift).
    pub compared: u64,
}

/// How one attempt of a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptEnd {
    /// Every seller-day of the window is done, by this attempt or an earlier one.
    pub complete: bool,
    /// Why the attempt is incomplete (gaps, or why it stopped).
    pub error: Option<String>,
    /// JSON list of the seller-days this attempt could not compare.
    pub gaps_json: String,
    /// An incomplete run is queued for another attempt while it has made fewer than this many;
    /// 0 fails it at once.
    pub attempts_allowed: u32,
}

/// What a run became at the end of an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Succeeded,
    /// Queued for another attempt, which continues from the seller-days not done.
    Again,
    Failed,
}

fn count(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Store {
    /// Keep a compared seller-day of `run` with its drifts (a drift already open for the invoice
    /// and class is updated, not duplicated), in one transaction. Keeping a day twice (two
    /// processes that both compared it) keeps the first count.
    pub async fn keep_seller_day(
        &self,
        run: i64,
        day: &SellerDayWrite,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let mut by_class: BTreeMap<&str, u64> = BTreeMap::new();
        for drift in &day.drifts {
            *by_class.entry(drift.class.as_str()).or_insert(0) += 1;
        }
        let mut tx = self
            .write
            .begin()
            .await
            .context("starting to keep a seller-day")?;
        for drift in &day.drifts {
            upsert_drift(&mut tx, run, drift, now).await?;
        }
        sqlx::query(
            "INSERT INTO reconcile_run_days (run_id, seller_tax_id, day, local_count, \
             remote_count, in_agreement, drift_count, drifts_by_class, repairs_attempted, \
             repairs_succeeded, done_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (run_id, seller_tax_id, day) DO NOTHING",
        )
        .bind(run)
        .bind(day.seller_tax_id.clone())
        .bind(day.day.to_string())
        .bind(count(day.local))
        .bind(count(day.remote))
        .bind(count(day.in_agreement))
        .bind(i64::try_from(day.drifts.len()).unwrap_or(i64::MAX))
        .bind(serde_json::to_string(&by_class)?)
        .bind(count(day.repairs_attempted))
        .bind(count(day.repairs_succeeded))
        .bind(micros(now))
        .execute(&mut *tx)
        .await
        .context("keeping a seller-day of a run")?;
        tx.commit().await.context("keeping a seller-day of a run")?;
        Ok(())
    }

    /// The seller-days of `run` kept so far.
    pub async fn done_seller_days(&self, run: i64) -> anyhow::Result<Vec<DoneSellerDay>> {
        let rows = sqlx::query(
            "SELECT seller_tax_id, day, in_agreement, drift_count FROM reconcile_run_days \
             WHERE run_id = $1",
        )
        .bind(run)
        .fetch_all(&self.write)
        .await
        .context("reading a run's progress")?;
        rows.iter()
            .map(|row| {
                let day: String = row.try_get("day")?;
                let agreeing: i64 = row.try_get("in_agreement")?;
                let drifts: i64 = row.try_get("drift_count")?;
                Ok(DoneSellerDay {
                    seller_tax_id: row.try_get("seller_tax_id")?,
                    day: day
                        .parse()
                        .with_context(|| format!("a run's day {day:?} in the store"))?,
                    compared: u64::try_from(agreeing.saturating_add(drifts)).unwrap_or(0),
                })
            })
            .collect()
    }

    /// End an attempt of `run`: its totals become the sums over every seller-day kept so far.
    /// Complete, it succeeds and the open drifts in its window of `sellers` it no longer found
    /// are closed as repaired; incomplete, it is queued again while attempts are left, else it
    /// fails. A run finished for good forgets its seller-days.
    pub async fn end_attempt(
        &self,
        run: i64,
        end: &AttemptEnd,
        window: (DateTime<Utc>, DateTime<Utc>),
        sellers: &[String],
        now: DateTime<Utc>,
    ) -> anyhow::Result<RunOutcome> {
        let mut tx = self
            .write
            .begin()
            .await
            .context("starting to end an attempt")?;
        let sums = sqlx::query(
            "SELECT CAST(COALESCE(SUM(local_count), 0) AS BIGINT) AS local_count, \
             CAST(COALESCE(SUM(remote_count), 0) AS BIGINT) AS remote_count, \
             CAST(COALESCE(SUM(in_agreement), 0) AS BIGINT) AS in_agreement, \
             CAST(COALESCE(SUM(drift_count), 0) AS BIGINT) AS drift_count, \
             CAST(COALESCE(SUM(repairs_attempted), 0) AS BIGINT) AS repairs_attempted, \
             CAST(COALESCE(SUM(repairs_succeeded), 0) AS BIGINT) AS repairs_succeeded \
             FROM reconcile_run_days WHERE run_id = $1",
        )
        .bind(run)
        .fetch_one(&mut *tx)
        .await
        .context("summing a run's seller-days")?;
        let classes: Vec<String> =
            sqlx::query_scalar("SELECT drifts_by_class FROM reconcile_run_days WHERE run_id = $1")
                .bind(run)
                .fetch_all(&mut *tx)
                .await
                .context("reading a run's drifts by class")?;
        let mut by_class: BTreeMap<String, u64> = BTreeMap::new();
        for json in classes {
            let day: BTreeMap<String, u64> =
                serde_json::from_str(&json).context("a seller-day's drifts by class")?;
            for (class, n) in day {
                *by_class.entry(class).or_insert(0) += n;
            }
        }
        let attempts: i64 = sqlx::query_scalar("SELECT attempts FROM reconcile_runs WHERE id = $1")
            .bind(run)
            .fetch_one(&mut *tx)
            .await
            .context("reading a run's attempts")?;
        let outcome = if end.complete && end.error.is_none() {
            RunOutcome::Succeeded
        } else if attempts < i64::from(end.attempts_allowed) {
            RunOutcome::Again
        } else {
            RunOutcome::Failed
        };
        let (status, finished_at) = match outcome {
            RunOutcome::Succeeded => ("succeeded", Some(micros(now))),
            RunOutcome::Again => ("queued", None),
            RunOutcome::Failed => ("failed", Some(micros(now))),
        };
        let error = end.error.as_ref().map(|error| match outcome {
            RunOutcome::Again => format!(
                "{error}; attempt {attempts} of {}: the next continues with the seller-days not done",
                end.attempts_allowed
            ),
            _ => error.clone(),
        });
        let total = |name: &str| -> anyhow::Result<i64> { Ok(sums.try_get(name)?) };
        sqlx::query(
            "UPDATE reconcile_runs SET finished_at = $1, complete = $2, local_count = $3, \
             remote_count = $4, in_agreement = $5, drift_count = $6, gaps = $7, status = $8, \
             error = $9, repairs_attempted = $10, repairs_succeeded = $11, \
             drifts_by_class = $12 WHERE id = $13",
        )
        .bind(finished_at)
        .bind(i64::from(end.complete))
        .bind(total("local_count")?)
        .bind(total("remote_count")?)
        .bind(total("in_agreement")?)
        .bind(total("drift_count")?)
        .bind(end.gaps_json.clone())
        .bind(status.to_owned())
        .bind(error)
        .bind(total("repairs_attempted")?)
        .bind(total("repairs_succeeded")?)
        .bind(serde_json::to_string(&by_class)?)
        .bind(run)
        .execute(&mut *tx)
        .await
        .context("ending an attempt")?;
        if outcome == RunOutcome::Succeeded && !sellers.is_empty() {
            close_gone_drifts(&mut tx, run, window, sellers, now).await?;
        }
        if outcome != RunOutcome::Again {
            forget_days(&mut tx, &[run]).await?;
        }
        tx.commit().await.context("ending an attempt")?;
        Ok(outcome)
    }

    /// Whether a run is marked `running`.
    pub async fn any_run_running(&self) -> anyhow::Result<bool> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM reconcile_runs WHERE status = 'running'")
                .fetch_one(&self.write)
                .await
                .context("looking for running runs")?;
        Ok(n > 0)
    }

    /// Runs marked `running` whose process stopped (or lost the lease) part way: queued again
    /// while they have made fewer than `attempts_allowed` attempts, failed otherwise. Only the
    /// holder of the reconciliation lease may call it: a pass runs only under the lease, so
    /// while it is held no other pass is running. Returns the runs queued again, oldest first.
    pub async fn take_up_abandoned_runs(
        &self,
        attempts_allowed: u32,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<i64>> {
        let mut tx = self
            .write
            .begin()
            .await
            .context("starting to take up runs")?;
        let spent: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM reconcile_runs WHERE status = 'running' AND attempts >= $1",
        )
        .bind(i64::from(attempts_allowed))
        .fetch_all(&mut *tx)
        .await
        .context("reading abandoned runs")?;
        sqlx::query(
            "UPDATE reconcile_runs SET status = 'failed', finished_at = $1, complete = 0, \
             error = 'interrupted before it finished, with no attempt left' \
             WHERE status = 'running' AND attempts >= $2",
        )
        .bind(micros(now))
        .bind(i64::from(attempts_allowed))
        .execute(&mut *tx)
        .await
        .context("failing abandoned runs")?;
        forget_days(&mut tx, &spent).await?;
        let again: Vec<i64> = sqlx::query_scalar(
            "UPDATE reconcile_runs SET status = 'queued', \
             error = 'interrupted before it finished; the next attempt continues with the \
             seller-days not done' WHERE status = 'running' RETURNING id",
        )
        .fetch_all(&mut *tx)
        .await
        .context("queueing abandoned runs again")?;
        tx.commit().await.context("taking up runs")?;
        let mut again = again;
        again.sort_unstable();
        Ok(again)
    }
}

/// Write one drift a run found: a drift already open for the invoice and class is updated.
async fn upsert_drift(
    tx: &mut sqlx::AnyConnection,
    run: i64,
    drift: &DriftWrite,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO drifts (invoice_number, seller_tax_id, issued_at, class, urgency, \
         detail, repair, outcome, first_run_id, last_run_id, first_seen_at, last_seen_at, \
         status, repair_attempts, last_repair_at, local_state, platform_state) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $10, 'open', $11, $12, \
         $13, $14) \
         ON CONFLICT (invoice_number, class) WHERE status = 'open' DO UPDATE SET \
         urgency = excluded.urgency, detail = excluded.detail, repair = excluded.repair, \
         outcome = excluded.outcome, last_run_id = excluded.last_run_id, \
         last_seen_at = excluded.last_seen_at, \
         repair_attempts = drifts.repair_attempts + excluded.repair_attempts, \
         last_repair_at = COALESCE(excluded.last_repair_at, drifts.last_repair_at), \
         local_state = excluded.local_state, platform_state = excluded.platform_state",
    )
    .bind(drift.invoice_number.clone())
    .bind(drift.seller_tax_id.clone())
    .bind(micros(drift.issued_at))
    .bind(drift.class.clone())
    .bind(drift.urgency.clone())
    .bind(drift.detail.clone())
    .bind(drift.repair.clone())
    .bind(drift.outcome.clone())
    .bind(run)
    .bind(micros(now))
    .bind(i64::from(drift.repair_attempted))
    .bind(drift.repair_attempted.then(|| micros(now)))
    .bind(drift.local_state.map(|s| s.as_str().to_owned()))
    .bind(drift.platform_state.clone())
    .execute(&mut *tx)
    .await
    .context("recording a drift")?;
    Ok(())
}

/// Close the open drifts in the window of `sellers` that `run`, complete, no longer found.
async fn close_gone_drifts(
    tx: &mut sqlx::AnyConnection,
    run: i64,
    window: (DateTime<Utc>, DateTime<Utc>),
    sellers: &[String],
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let sql = format!(
        "UPDATE drifts SET status = 'repaired', closed_at = $1, \
         resolved_by = 'system:reconciler', \
         resolution = 'a later complete pass found the invoice in agreement' \
         WHERE status = 'open' \
         AND last_run_id <> $2 AND issued_at >= $3 AND issued_at < $4 \
         AND seller_tax_id IN ({})",
        super::placeholders(5, sellers.len())
    );
    let mut query = sqlx::query(&sql)
        .bind(micros(now))
        .bind(run)
        .bind(micros(window.0))
        .bind(micros(window.1));
    for seller in sellers {
        query = query.bind(seller.clone());
    }
    query
        .execute(&mut *tx)
        .await
        .context("closing drifts that are gone")?;
    Ok(())
}

/// Forget the seller-days of runs finished for good: their totals are on the run.
pub(super) async fn forget_days(tx: &mut sqlx::AnyConnection, runs: &[i64]) -> anyhow::Result<()> {
    for run in runs {
        sqlx::query("DELETE FROM reconcile_run_days WHERE run_id = $1")
            .bind(*run)
            .execute(&mut *tx)
            .await
            .context("forgetting a run's seller-days")?;
    }
    Ok(())
}
