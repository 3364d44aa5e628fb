//! What operators read and change by hand: reconciliation runs and drifts, each limited to the
//! caller's [`Scope`]. A drift belongs to its invoice's seller. A run belongs to the sellers it
//! compared: a caller limited to some sellers sees the runs over those sellers only, and a pass
//! over every seller (the scheduled ones) only callers of every seller see, because its counts
//! speak for all of them.

use super::conditions::Conditions;
use super::read::scope_clause;
use super::reconcile::{
    DRIFT_COLUMNS, DriftFilter, RUN_COLUMNS, ResolveRefused, RunFilter, StoredDrift, StoredRun,
    decode_drift, decode_run,
};
use super::{Scope, Store, micros};
use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::Row;

impl Store {
    /// One run, if `scope` covers its sellers.
    pub async fn get_run(&self, scope: &Scope, run: i64) -> anyhow::Result<Option<StoredRun>> {
        let mut query = Conditions::new(format!("SELECT {RUN_COLUMNS} FROM reconcile_runs"));
        query.and("id = {}", run)?;
        runs_within(&mut query, scope)?;
        let (sql, args) = query.newest_first(1)?;
        let row = sqlx::query_with(&sql, args)
            .fetch_optional(&self.read)
            .await
            .context("reading a run")?;
        row.as_ref().map(decode_run).transpose()
    }

    /// Runs inside `scope` matching `filter` with an id below `before` (the page cursor), newest
    /// first.
    pub async fn list_runs(
        &self,
        scope: &Scope,
        filter: &RunFilter,
        before: Option<i64>,
        limit: u32,
    ) -> anyhow::Result<Vec<StoredRun>> {
        let mut query = Conditions::new(format!("SELECT {RUN_COLUMNS} FROM reconcile_runs"));
        query.and("id < {}", before.unwrap_or(i64::MAX))?;
        runs_within(&mut query, scope)?;
        if let Some(status) = &filter.status {
            query.and("status = {}", status.clone())?;
        }
        if let Some(from) = filter.started_from {
            query.and("started_at >= {}", micros(from))?;
        }
        if let Some(to) = filter.started_to {
            query.and("started_at < {}", micros(to))?;
        }
        let (sql, args) = query.newest_first(limit)?;
        let rows = sqlx::query_with(&sql, args)
            .fetch_all(&self.read)
            .await
            .context("listing runs")?;
        rows.iter().map(decode_run).collect()
    }

    /// Drifts inside `scope` matching `filter` with an id below `before` (the page cursor),
    /// newest first.
    pub async fn list_drifts(
        &self,
        scope: &Scope,
        filter: &DriftFilter,
        before: Option<i64>,
        limit: u32,
    ) -> anyhow::Result<Vec<StoredDrift>> {
        let mut query = Conditions::new(format!("SELECT {DRIFT_COLUMNS} FROM drifts"));
        query.and("status = {}", filter.status.clone())?;
        query.and("id < {}", before.unwrap_or(i64::MAX))?;
        query.and_scope("seller_tax_id", scope)?;
        if !filter.classes.is_empty() {
            query.and_in("class", &filter.classes)?;
        }
        if let Some(seller) = &filter.seller {
            query.and("seller_tax_id = {}", seller.clone())?;
        }
        if let Some(run) = filter.run {
            query.and("(first_run_id = {} OR last_run_id = {})", run)?;
        }
        let (sql, args) = query.newest_first(limit)?;
        let rows = sqlx::query_with(&sql, args)
            .fetch_all(&self.read)
            .await
            .context("listing drifts")?;
        rows.iter().map(decode_drift).collect()
    }

    /// Close an open drift inside `scope` by hand; the drift keeps who closed it, when, and why.
    /// A drift outside the scope is not found.
    pub async fn resolve_drift(
        &self,
        scope: &Scope,
        drift: i64,
        by: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Result<StoredDrift, ResolveRefused>> {
        let (scope_sql, sellers) = scope_clause(scope, 5);
        let sql = format!(
            "UPDATE drifts SET status = 'resolved', closed_at = $1, resolved_by = $2, \
             resolution = $3 WHERE id = $4 AND status = 'open'{scope_sql}"
        );
        let mut query = sqlx::query(&sql)
            .bind(micros(now))
            .bind(by.to_owned())
            .bind(reason.to_owned())
            .bind(drift);
        for seller in sellers {
            query = query.bind(seller.clone());
        }
        let updated = query
            .execute(&self.write)
            .await
            .context("resolving a drift")?;
        // Read on the write pool, so it reflects the write just made.
        let (scope_sql, sellers) = scope_clause(scope, 2);
        let sql = format!("SELECT {DRIFT_COLUMNS} FROM drifts WHERE id = $1{scope_sql}");
        let mut query = sqlx::query(&sql).bind(drift);
        for seller in sellers {
            query = query.bind(seller.clone());
        }
        let row = query
            .fetch_optional(&self.write)
            .await
            .context("reading a drift")?;
        let Some(stored) = row.as_ref().map(decode_drift).transpose()? else {
            return Ok(Err(ResolveRefused::NotFound));
        };
        Ok(if updated.rows_affected() == 1 {
            Ok(stored)
        } else {
            Err(ResolveRefused::AlreadyClosed(Box::new(stored)))
        })
    }

    /// Open drifts counted by class and urgency.
    pub async fn open_drift_counts(&self) -> anyhow::Result<Vec<(String, String, u64)>> {
        let rows = sqlx::query(
            "SELECT class, urgency, COUNT(*) AS n FROM drifts WHERE status = 'open' \
             GROUP BY class, urgency ORDER BY class, urgency",
        )
        .fetch_all(&self.read)
        .await
        .context("counting open drifts")?;
        rows.iter()
            .map(|row| {
                let n: i64 = row.try_get("n")?;
                Ok((
                    row.try_get("class")?,
                    row.try_get("urgency")?,
                    u64::try_from(n).unwrap_or(0),
                ))
            })
            .collect()
    }
}

/// Keep the runs whose every compared seller `scope` admits; a run over every seller (no sellers
/// listed) only an unrestricted scope sees.
fn runs_within(query: &mut Conditions, scope: &Scope) -> anyhow::Result<()> {
    match scope.listed() {
        None => Ok(()),
        Some([]) => query.and_list("1 = 0", &[]),
        Some(sellers) => query.and_list(
            "(sellers IS NOT NULL AND NOT EXISTS (SELECT 1 FROM reconcile_run_sellers s \
         WHERE s.run_id = reconcile_runs.id AND s.seller_tax_id NOT IN ({})))",
            sellers,
        ),
    }
}
