//! What the reconciler reads from the store: a seller's invoices of a window, as the comparison
//! needs them, and which request ids are ours.

use std::collections::HashSet;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::any::AnyArguments;

use super::read::{NewEvent, insert_events};
use super::upload::UploadPhase;
use super::{INVOICE_COLUMNS, InvoiceState, Store, StoredInvoice, decode_invoice, micros};
use fapiao_invoice::model::Colour;
use fapiao_invoice::number::InvoiceNumber;

/// A repair the reconciler makes to one invoice, applied only if the invoice is still in the
/// state the comparison saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairWrite {
    pub number: InvoiceNumber,
    pub seller_tax_id: String,
    pub request_id: String,
    pub colour: Colour,
    /// The state the comparison saw; the write is skipped if the invoice has moved on.
    pub expected: InvoiceState,
    /// A new state, written with an event.
    pub state: Option<InvoiceState>,
    /// Upload work to queue now (`Send` to re-upload, `Query` to ask first); `None` settles it.
    pub phase: Option<UploadPhase>,
    /// Count a re-upload against the reconciler's bound.
    pub counts_as_reupload: bool,
    /// Why, for the event.
    pub reason: String,
}

impl Store {
    /// The seller's invoices issued in `[from, to)`, with the re-uploads the reconciler has made
    /// for each, in issue order.
    pub async fn issued_between(
        &self,
        seller: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> anyhow::Result<Vec<(StoredInvoice, u32)>> {
        let sql = format!(
            "SELECT {INVOICE_COLUMNS}, reconcile_attempts FROM invoices \
             WHERE seller_tax_id = $1 AND issued_at >= $2 AND issued_at < $3 \
             ORDER BY issued_at, invoice_number"
        );
        let rows = sqlx::query(&sql)
            .bind(seller.to_owned())
            .bind(micros(from))
            .bind(micros(to))
            .fetch_all(&self.read)
            .await
            .context("reading a seller's invoices of a window")?;
        rows.iter()
            .map(|row| {
                let attempts: i64 = row.try_get("reconcile_attempts")?;
                Ok((
                    decode_invoice(row)?,
                    u32::try_from(attempts).unwrap_or(u32::MAX),
                ))
            })
            .collect()
    }

    /// Which of `request_ids` the seller has invoices under.
    pub async fn known_request_ids(
        &self,
        seller: &str,
        request_ids: &[&str],
    ) -> anyhow::Result<HashSet<String>> {
        let mut known = HashSet::new();
        for chunk in request_ids.chunks(500) {
            let sql = format!(
                "SELECT request_id FROM invoices WHERE seller_tax_id = $1 AND request_id IN ({})",
                super::placeholders(2, chunk.len())
            );
            let mut args = AnyArguments::default();
            sqlx::Arguments::add(&mut args, seller.to_owned())
                .map_err(|e| anyhow::anyhow!("binding the seller: {e}"))?;
            for id in chunk {
                sqlx::Arguments::add(&mut args, (*id).to_owned())
                    .map_err(|e| anyhow::anyhow!("binding a request id: {e}"))?;
            }
            let rows = sqlx::query_with(&sql, args)
                .fetch_all(&self.read)
                .await
                .context("looking up request ids")?;
            for row in rows {
                known.insert(row.try_get::<String, _>("request_id")?);
            }
        }
        Ok(known)
    }

    /// Apply one repair with its event, if the invoice is still as compared; `false` when it
    /// had moved on (nothing written).
    pub async fn apply_repair(
        &self,
        repair: &RepairWrite,
        now: DateTime<Utc>,
        actor: &str,
    ) -> anyhow::Result<bool> {
        let state = repair.state.unwrap_or(repair.expected);
        let mut tx = self.write.begin().await.context("starting a repair")?;
        let updated = sqlx::query(
            "UPDATE invoices SET state = $1, \
             state_changed_at = CASE WHEN state = $1 THEN state_changed_at ELSE $2 END, \
             upload_phase = $3, next_attempt_at = $4, \
             reconcile_attempts = reconcile_attempts + $5 \
             WHERE invoice_number = $6 AND state = $7",
        )
        .bind(state.as_str().to_owned())
        .bind(micros(now))
        .bind(repair.phase.map(|p| p.as_str().to_owned()))
        .bind(repair.phase.map(|_| micros(now)))
        .bind(i64::from(repair.counts_as_reupload))
        .bind(repair.number.to_string())
        .bind(repair.expected.as_str().to_owned())
        .execute(&mut *tx)
        .await
        .context("repairing an invoice")?;
        if updated.rows_affected() == 0 {
            return Ok(false);
        }
        if state != repair.expected {
            self.lock_event_order(&mut tx).await?;
            insert_events(
                &mut tx,
                &[NewEvent {
                    invoice_number: repair.number.to_string(),
                    seller_tax_id: repair.seller_tax_id.clone(),
                    request_id: repair.request_id.clone(),
                    colour: repair.colour,
                    state,
                    previous_state: Some(repair.expected),
                    at: now,
                    reason: repair.reason.clone(),
                    actor: actor.to_owned(),
                    platform_code: None,
                    platform_message: None,
                }],
            )
            .await?;
        }
        tx.commit().await.context("committing a repair")?;
        Ok(true)
    }
}

/// A reconciliation pass as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRun {
    pub id: i64,
    pub kind: String,
    pub holder: String,
    pub dry_run: bool,
    pub window_from: DateTime<Utc>,
    pub window_to: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    /// `None` while the pass runs (or if it died).
    pub finished_at: Option<DateTime<Utc>>,
    pub complete: Option<bool>,
    pub local: i64,
    pub remote: i64,
    pub in_agreement: i64,
    pub drifts: i64,
    /// JSON list of the seller-days not compared.
    pub gaps: String,
}

/// A drift as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDrift {
    pub id: i64,
    pub invoice_number: String,
    pub seller_tax_id: String,
    pub issued_at: DateTime<Utc>,
    pub class: String,
    /// `critical`, `warning`, or `none` when it is repaired automatically.
    pub urgency: String,
    pub detail: String,
    /// JSON of the planned repair, and of what became of it at the last pass.
    pub repair: String,
    pub outcome: String,
    pub first_run_id: i64,
    pub last_run_id: i64,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// `open`, `closed` (a later pass no longer found it) or `resolved` (by hand).
    pub status: String,
    pub closed_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
    pub resolution: Option<String>,
}

/// One drift found by a pass, as the store writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftWrite {
    pub invoice_number: String,
    pub seller_tax_id: String,
    pub issued_at: DateTime<Utc>,
    pub class: String,
    pub urgency: String,
    pub detail: String,
    pub repair: String,
    pub outcome: String,
}

/// The totals a finished pass writes on its run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunTotals {
    pub complete: bool,
    pub local: u64,
    pub remote: u64,
    pub in_agreement: u64,
    pub gaps_json: String,
}

fn count(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

const DRIFT_COLUMNS: &str = "id, invoice_number, seller_tax_id, issued_at, class, urgency, detail, \
     repair, outcome, first_run_id, last_run_id, first_seen_at, last_seen_at, status, closed_at, \
     resolved_by, resolution";

fn decode_drift(row: &sqlx::any::AnyRow) -> anyhow::Result<StoredDrift> {
    let closed: Option<i64> = row.try_get("closed_at")?;
    Ok(StoredDrift {
        id: row.try_get("id")?,
        invoice_number: row.try_get("invoice_number")?,
        seller_tax_id: row.try_get("seller_tax_id")?,
        issued_at: super::from_micros(row.try_get("issued_at")?),
        class: row.try_get("class")?,
        urgency: row.try_get("urgency")?,
        detail: row.try_get("detail")?,
        repair: row.try_get("repair")?,
        outcome: row.try_get("outcome")?,
        first_run_id: row.try_get("first_run_id")?,
        last_run_id: row.try_get("last_run_id")?,
        first_seen_at: super::from_micros(row.try_get("first_seen_at")?),
        last_seen_at: super::from_micros(row.try_get("last_seen_at")?),
        status: row.try_get("status")?,
        closed_at: closed.map(super::from_micros),
        resolved_by: row.try_get("resolved_by")?,
        resolution: row.try_get("resolution")?,
    })
}

const RUN_COLUMNS: &str = "id, kind, holder, dry_run, window_from, window_to, started_at, \
     finished_at, complete, local_count, remote_count, in_agreement, drift_count, gaps";

fn decode_run(row: &sqlx::any::AnyRow) -> anyhow::Result<StoredRun> {
    let finished: Option<i64> = row.try_get("finished_at")?;
    let complete: Option<i64> = row.try_get("complete")?;
    let number = |name: &str| -> anyhow::Result<i64> {
        Ok(row.try_get::<Option<i64>, _>(name)?.unwrap_or(0))
    };
    Ok(StoredRun {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        holder: row.try_get("holder")?,
        dry_run: row.try_get::<i64, _>("dry_run")? != 0,
        window_from: super::from_micros(row.try_get("window_from")?),
        window_to: super::from_micros(row.try_get("window_to")?),
        started_at: super::from_micros(row.try_get("started_at")?),
        finished_at: finished.map(super::from_micros),
        complete: complete.map(|c| c != 0),
        local: number("local_count")?,
        remote: number("remote_count")?,
        in_agreement: number("in_agreement")?,
        drifts: number("drift_count")?,
        gaps: row
            .try_get::<Option<String>, _>("gaps")?
            .unwrap_or_default(),
    })
}

impl Store {
    /// Take the lease `name` for `holder` until `until`, if it is free, expired or already
    /// `holder`'s. `Err((holder, until))` names who has it.
    pub async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> anyhow::Result<Result<(), (String, DateTime<Utc>)>> {
        sqlx::query(
            "INSERT INTO leases (name, holder, until) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
             WHERE leases.until <= $4 OR leases.holder = excluded.holder",
        )
        .bind(name.to_owned())
        .bind(holder.to_owned())
        .bind(micros(until))
        .bind(micros(now))
        .execute(&self.write)
        .await
        .context("taking a lease")?;
        let row = sqlx::query("SELECT holder, until FROM leases WHERE name = $1")
            .bind(name.to_owned())
            .fetch_one(&self.write)
            .await
            .context("reading a lease")?;
        let current: String = row.try_get("holder")?;
        let current_until = super::from_micros(row.try_get("until")?);
        Ok(if current == holder {
            Ok(())
        } else {
            Err((current, current_until))
        })
    }

    /// Give the lease back, if `holder` still has it.
    pub async fn release_lease(&self, name: &str, holder: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name.to_owned())
            .bind(holder.to_owned())
            .execute(&self.write)
            .await
            .context("releasing a lease")?;
        Ok(())
    }

    /// Record that a pass started; returns its id.
    pub async fn start_run(
        &self,
        kind: &str,
        holder: &str,
        dry_run: bool,
        window: (DateTime<Utc>, DateTime<Utc>),
        started_at: DateTime<Utc>,
    ) -> anyhow::Result<i64> {
        let row = sqlx::query(
            "INSERT INTO reconcile_runs (kind, holder, dry_run, window_from, window_to, \
             started_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(kind.to_owned())
        .bind(holder.to_owned())
        .bind(i64::from(dry_run))
        .bind(micros(window.0))
        .bind(micros(window.1))
        .bind(micros(started_at))
        .fetch_one(&self.write)
        .await
        .context("recording a reconciliation run")?;
        Ok(row.try_get("id")?)
    }

    /// Record a finished pass: its totals, every drift it found (a drift already open for the
    /// invoice and class is updated, not duplicated), and, when it compared every seller-day, the
    /// closing of open drifts in its window of `sellers` that it no longer found.
    pub async fn finish_run(
        &self,
        run: i64,
        totals: &RunTotals,
        found: &[DriftWrite],
        window: (DateTime<Utc>, DateTime<Utc>),
        sellers: &[String],
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let mut tx = self
            .write
            .begin()
            .await
            .context("starting to record a run")?;
        sqlx::query(
            "UPDATE reconcile_runs SET finished_at = $1, complete = $2, local_count = $3, \
             remote_count = $4, in_agreement = $5, drift_count = $6, gaps = $7 WHERE id = $8",
        )
        .bind(micros(now))
        .bind(i64::from(totals.complete))
        .bind(count(totals.local))
        .bind(count(totals.remote))
        .bind(count(totals.in_agreement))
        .bind(i64::try_from(found.len()).unwrap_or(i64::MAX))
        .bind(totals.gaps_json.clone())
        .bind(run)
        .execute(&mut *tx)
        .await
        .context("finishing a run")?;
        for drift in found {
            sqlx::query(
                "INSERT INTO drifts (invoice_number, seller_tax_id, issued_at, class, urgency, \
                 detail, repair, outcome, first_run_id, last_run_id, first_seen_at, last_seen_at, \
                 status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $10, 'open') \
                 ON CONFLICT (invoice_number, class) WHERE status = 'open' DO UPDATE SET \
                 urgency = excluded.urgency, detail = excluded.detail, repair = excluded.repair, \
                 outcome = excluded.outcome, last_run_id = excluded.last_run_id, \
                 last_seen_at = excluded.last_seen_at",
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
            .execute(&mut *tx)
            .await
            .context("recording a drift")?;
        }
        if totals.complete && !sellers.is_empty() {
            let sql = format!(
                "UPDATE drifts SET status = 'closed', closed_at = $1 WHERE status = 'open' \
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
        }
        tx.commit().await.context("recording a run")?;
        Ok(())
    }

    /// The newest runs first.
    pub async fn recent_runs(&self, limit: u32) -> anyhow::Result<Vec<StoredRun>> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM reconcile_runs ORDER BY id DESC LIMIT $1");
        let rows = sqlx::query(&sql)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await
            .context("reading runs")?;
        rows.iter().map(decode_run).collect()
    }

    /// Drifts with `status`, oldest first.
    pub async fn drifts_with_status(
        &self,
        status: &str,
        limit: u32,
    ) -> anyhow::Result<Vec<StoredDrift>> {
        let sql =
            format!("SELECT {DRIFT_COLUMNS} FROM drifts WHERE status = $1 ORDER BY id LIMIT $2");
        let rows = sqlx::query(&sql)
            .bind(status.to_owned())
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await
            .context("reading drifts")?;
        rows.iter().map(decode_drift).collect()
    }
}
