//! What the reconciler reads from the store: a seller's invoices of a window, as the comparison
//! needs them, and which request ids are ours.

use std::collections::HashSet;

use anyhow::Context;
use chrono::{DateTime, Utc};
use futures::TryStreamExt as _;
use sqlx::Row;
use sqlx::any::AnyArguments;

use super::read::{NewEvent, insert_events};
use super::upload::UploadPhase;
use super::{InvoiceState, Store, micros};
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
    /// The upload work to queue instead when the upload worker had parked the invoice (its
    /// attempt budget spent): a query would find the budget spent and park it again unsent.
    pub phase_if_parked: Option<UploadPhase>,
    /// Count a re-upload against the reconciler's bound.
    pub counts_as_reupload: bool,
    /// Why, for the event.
    pub reason: String,
}

impl Store {
    /// The seller's invoices issued in `[from, to)` as a pass compares them, in issue order:
    /// only the columns the comparison needs, so a pass over a busy day neither reads nor decodes
    /// every invoice's content (only rows issued before `platform_sm3` existed carry theirs).
    pub async fn ledger_rows(
        &self,
        seller: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> anyhow::Result<Vec<LedgerRow>> {
        let mut rows = sqlx::query(
            "SELECT invoice_number, request_id, colour, state, issued_at, state_changed_at, \
             buyer_name, buyer_tax_id, amount, tax, platform_sm3, reconcile_attempts, \
             CASE WHEN platform_sm3 IS NULL THEN content END AS old_content FROM invoices \
             WHERE seller_tax_id = $1 AND issued_at >= $2 AND issued_at < $3 \
             ORDER BY issued_at, invoice_number",
        )
        .bind(seller.to_owned())
        .bind(micros(from))
        .bind(micros(to))
        .fetch(&self.read);
        // Decoded as they arrive: a busy day's raw rows are never all held at once.
        let mut decoded = Vec::new();
        while let Some(row) = rows
            .try_next()
            .await
            .context("reading a seller's invoices of a window")?
        {
            decoded.push(decode_ledger_row(&row)?);
        }
        Ok(decoded)
    }

    /// Which of `request_ids` are requests of the seller's that make the platform issue an
    /// invoice on its own ([`Store::remember_platform_request`]). A request id of an invoice we
    /// issued ourselves is not among them: the platform listing it under another number is
    /// alerted, never adopted.
    pub async fn known_request_ids(
        &self,
        seller: &str,
        request_ids: &[&str],
    ) -> anyhow::Result<HashSet<String>> {
        let mut known = HashSet::new();
        for chunk in request_ids.chunks(500) {
            let sql = format!(
                "SELECT request_id FROM platform_requests WHERE seller_tax_id = $1 \
                 AND request_id IN ({})",
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

    /// Remember a request that makes the platform issue an invoice on its own, so that
    /// reconciliation adopts that invoice. Remembering it twice is harmless.
    pub async fn remember_platform_request(
        &self,
        seller: &str,
        request_id: &str,
        kind: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO platform_requests (seller_tax_id, request_id, kind, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (seller_tax_id, request_id) DO NOTHING",
        )
        .bind(seller.to_owned())
        .bind(request_id.to_owned())
        .bind(kind.to_owned())
        .bind(micros(now))
        .execute(&self.write)
        .await
        .context("remembering a platform request")?;
        Ok(())
    }

    /// Store an invoice the platform issued for us, as the platform has it, with an event by
    /// `actor`; its layout files are due at once, and there is nothing to upload. `false` when
    /// its number or request id is already in the store (nothing written).
    pub async fn adopt_invoice(
        &self,
        adopted: &AdoptedInvoice,
        now: DateTime<Utc>,
        actor: &str,
    ) -> anyhow::Result<bool> {
        let c = &adopted.content;
        let json = serde_json::to_string(c)?;
        // The platform digest, from the JSON already made for the content column.
        let sent_digest = crate::platform::protocol::sm3_hex(json.as_bytes());
        let mut tx = self.write.begin().await.context("starting an adoption")?;
        let inserted = sqlx::query(
            "INSERT INTO invoices (invoice_number, seller_tax_id, request_id, content_sm3, kind, \
             colour, state, buyer_tax_id, buyer_name, amount, tax, total, issued_at, \
             state_changed_at, content, platform_sm3, blue_invoice_number, archive_due_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
             $18) ON CONFLICT DO NOTHING",
        )
        .bind(adopted.number.to_string())
        .bind(adopted.seller_tax_id.clone())
        .bind(c.request_id.clone())
        .bind(adopted.content_sm3.clone())
        .bind(super::kind_text(c.kind).to_owned())
        .bind(super::colour_text(c.colour()).to_owned())
        .bind(adopted.state.as_str().to_owned())
        .bind(c.buyer.party.tax_id.as_ref().map(|t| t.as_str().to_owned()))
        .bind(c.buyer.party.name.clone())
        .bind(c.totals.amount.to_string())
        .bind(c.totals.tax.to_string())
        .bind(c.totals.total.to_string())
        .bind(micros(adopted.issued_at))
        .bind(micros(now))
        .bind(json)
        .bind(sent_digest)
        .bind(c.red.as_ref().map(|r| r.blue_number.to_string()))
        .bind(micros(now))
        .execute(&mut *tx)
        .await
        .context("adopting an invoice")?;
        if inserted.rows_affected() == 0 {
            return Ok(false);
        }
        self.lock_event_order(&mut tx).await?;
        insert_events(
            &mut tx,
            &[NewEvent {
                invoice_number: adopted.number.to_string(),
                seller_tax_id: adopted.seller_tax_id.clone(),
                request_id: c.request_id.clone(),
                colour: c.colour(),
                state: adopted.state,
                previous_state: None,
                at: now,
                reason: adopted.reason.clone(),
                actor: actor.to_owned(),
                platform_code: None,
                platform_message: None,
            }],
        )
        .await?;
        if let Some(red) = &c.red
            && adopted.state == InvoiceState::Recorded
        {
            // A red invoice the platform issued after a confirmation: it reverses its blue
            // invoice and completes its form.
            let reversed = self
                .reverse_blues(&mut tx, &[adopted.number.to_string()], now, actor)
                .await?;
            insert_events(&mut tx, &reversed).await?;
            self.link_adopted_red(&mut tx, &red.form_number, &adopted.number, now, actor)
                .await?;
        }
        tx.commit().await.context("committing an adoption")?;
        Ok(true)
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
             upload_phase = CASE WHEN upload_phase = 'PARKED' THEN $8 ELSE $3 END, \
             next_attempt_at = $4, \
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
        .bind(repair.phase_if_parked.map(|p| p.as_str().to_owned()))
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

/// A pass someone asked for, to be run when the lease allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRequest {
    /// `manual`, `recent` or `daily`.
    pub kind: String,
    pub window: (DateTime<Utc>, DateTime<Utc>),
    /// `None` means every configured seller.
    pub sellers: Option<Vec<String>>,
    pub triggered_by: Option<String>,
    pub reason: Option<String>,
}

/// Which runs a listing returns, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    pub status: Option<String>,
    /// Started at or after / before.
    pub started_from: Option<DateTime<Utc>>,
    pub started_to: Option<DateTime<Utc>>,
}

/// Which drifts a listing returns, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriftFilter {
    pub status: String,
    /// Empty means every class.
    pub classes: Vec<String>,
    pub seller: Option<String>,
    /// Found (first or again) by this run.
    pub run: Option<i64>,
}

/// Why a drift could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveRefused {
    /// No drift has the id.
    NotFound,
    /// It is already repaired or resolved; the stored drift is returned.
    AlreadyClosed(Box<StoredDrift>),
}

/// An invoice the platform issued for us, to be stored as it is there.
#[derive(Debug, Clone, PartialEq)]
pub struct AdoptedInvoice {
    pub number: InvoiceNumber,
    pub seller_tax_id: String,
    pub issued_at: DateTime<Utc>,
    /// The platform's state, as ours.
    pub state: InvoiceState,
    pub content: fapiao_invoice::model::InvoiceContent,
    /// The idempotency digest of the content.
    pub content_sm3: String,
    /// Why, for the event.
    pub reason: String,
}

/// One invoice as a reconciliation pass compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    pub number: InvoiceNumber,
    pub request_id: String,
    pub colour: Colour,
    pub state: InvoiceState,
    pub issued_at: DateTime<Utc>,
    pub state_changed_at: DateTime<Utc>,
    pub buyer_name: String,
    pub buyer_tax_id: Option<String>,
    pub amount: rust_decimal::Decimal,
    pub tax: rust_decimal::Decimal,
    /// SM3 of the content as sent to the platform.
    pub platform_sm3: String,
    /// Re-uploads the reconciler has made.
    pub reconcile_attempts: u32,
}

fn decode_ledger_row(row: &sqlx::any::AnyRow) -> anyhow::Result<LedgerRow> {
    let number: String = row.try_get("invoice_number")?;
    let decimal = |name: &str| -> anyhow::Result<rust_decimal::Decimal> {
        let text: String = row.try_get(name)?;
        text.parse()
            .with_context(|| format!("{name} of invoice {number} in the store"))
    };
    let platform_sm3 = match row.try_get::<Option<String>, _>("platform_sm3")? {
        Some(digest) => digest,
        None => {
            let content: String = row
                .try_get::<Option<String>, _>("old_content")?
                .unwrap_or_default();
            let parsed: fapiao_invoice::model::InvoiceContent = serde_json::from_str(&content)
                .with_context(|| format!("content of invoice {number} in the store"))?;
            crate::platform::protocol::platform_digest(&parsed)
        }
    };
    let state: String = row.try_get("state")?;
    let colour: String = row.try_get("colour")?;
    let attempts: i64 = row.try_get("reconcile_attempts")?;
    Ok(LedgerRow {
        number: number
            .parse()
            .with_context(|| format!("invoice number {number:?} in the store"))?,
        request_id: row.try_get("request_id")?,
        colour: super::parse_colour(&colour)?,
        state: state.parse()?,
        issued_at: super::from_micros(row.try_get("issued_at")?),
        state_changed_at: super::from_micros(row.try_get("state_changed_at")?),
        buyer_name: row.try_get("buyer_name")?,
        buyer_tax_id: row.try_get("buyer_tax_id")?,
        amount: decimal("amount")?,
        tax: decimal("tax")?,
        platform_sm3,
        reconcile_attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
    })
}

/// A reconciliation pass as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRun {
    pub id: i64,
    /// `recent` or `daily` (scheduled), or `manual`.
    pub kind: String,
    pub holder: String,
    pub dry_run: bool,
    pub window_from: DateTime<Utc>,
    pub window_to: DateTime<Utc>,
    /// When the pass started; while `queued`, when it was requested.
    pub started_at: DateTime<Utc>,
    /// `None` while the pass is queued or runs.
    pub finished_at: Option<DateTime<Utc>>,
    pub complete: Option<bool>,
    pub local: i64,
    pub remote: i64,
    pub in_agreement: i64,
    pub drifts: i64,
    /// JSON list of the seller-days not compared.
    pub gaps: String,
    /// `queued`, `running`, `succeeded` or `failed`.
    pub status: String,
    /// Who started a manual run, and why.
    pub triggered_by: Option<String>,
    pub reason: Option<String>,
    /// Why a failed run failed.
    pub error: Option<String>,
    /// The sellers compared; `None` means every configured seller.
    pub sellers: Option<Vec<String>>,
    pub repairs_attempted: i64,
    pub repairs_succeeded: i64,
    /// JSON object of the drifts found per class.
    pub drifts_by_class: Option<String>,
    /// Attempts started; an incomplete run is taken up again, from the seller-days not done,
    /// while attempts are left.
    pub attempts: i64,
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
    /// `open`, `repaired` (a later complete pass no longer found it) or `resolved` (by hand).
    pub status: String,
    pub closed_at: Option<DateTime<Utc>>,
    /// The operator who resolved it, or `system:reconciler` when it was repaired.
    pub resolved_by: Option<String>,
    pub resolution: Option<String>,
    /// Automatic repairs tried so far, and when the last one was.
    pub repair_attempts: i64,
    pub last_repair_at: Option<DateTime<Utc>>,
    /// The local state when found; `None` for an invoice only the platform has.
    pub local_state: Option<InvoiceState>,
    /// The platform's state; `None` when it has no record.
    pub platform_state: Option<String>,
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
    /// A repair was tried for it in this pass.
    pub repair_attempted: bool,
    /// The local state when found (`None`: only the platform has it).
    pub local_state: Option<InvoiceState>,
    /// The platform's state (`None`: it has no record).
    pub platform_state: Option<String>,
}

pub(super) const DRIFT_COLUMNS: &str = "id, invoice_number, seller_tax_id, issued_at, class, urgency, detail, \
     repair, outcome, first_run_id, last_run_id, first_seen_at, last_seen_at, status, closed_at, \
     resolved_by, resolution, repair_attempts, last_repair_at, local_state, platform_state";

pub(super) fn decode_drift(row: &sqlx::any::AnyRow) -> anyhow::Result<StoredDrift> {
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
        repair_attempts: row.try_get("repair_attempts")?,
        last_repair_at: row
            .try_get::<Option<i64>, _>("last_repair_at")?
            .map(super::from_micros),
        local_state: row
            .try_get::<Option<String>, _>("local_state")?
            .map(|state| state.parse())
            .transpose()
            .map_err(|e| anyhow::anyhow!("a drift's local state: {e}"))?,
        platform_state: row.try_get("platform_state")?,
    })
}

pub(super) const RUN_COLUMNS: &str = "id, kind, holder, dry_run, window_from, window_to, started_at, \
     finished_at, complete, local_count, remote_count, in_agreement, drift_count, gaps, status, \
     triggered_by, reason, error, sellers, repairs_attempted, repairs_succeeded, drifts_by_class, \
     attempts";

pub(super) fn decode_run(row: &sqlx::any::AnyRow) -> anyhow::Result<StoredRun> {
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
        status: row.try_get("status")?,
        triggered_by: row.try_get("triggered_by")?,
        reason: row.try_get("reason")?,
        error: row.try_get("error")?,
        sellers: row
            .try_get::<Option<String>, _>("sellers")?
            .map(|json| serde_json::from_str(&json))
            .transpose()
            .context("reading a run's sellers")?,
        repairs_attempted: row.try_get("repairs_attempted")?,
        repairs_succeeded: row.try_get("repairs_succeeded")?,
        drifts_by_class: row.try_get("drifts_by_class")?,
        attempts: row.try_get("attempts")?,
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

    /// Record that a pass started (status `running`); returns its id.
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
             started_at, status, attempts) VALUES ($1, $2, $3, $4, $5, $6, 'running', 1) \
             RETURNING id",
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

    /// Record a pass asked for by `triggered_by` (status `queued`, until a replica holding the
    /// lease starts it with [`Store::begin_run`]); returns its id.
    pub async fn queue_run(
        &self,
        request: &RunRequest,
        requested_at: DateTime<Utc>,
    ) -> anyhow::Result<i64> {
        let sellers = request
            .sellers
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .context("writing a run's sellers")?;
        let mut tx = self
            .write
            .begin()
            .await
            .context("queueing a reconciliation run")?;
        let row = sqlx::query(
            "INSERT INTO reconcile_runs (kind, holder, dry_run, window_from, window_to, \
             started_at, status, triggered_by, reason, sellers) \
             VALUES ($1, '', 0, $2, $3, $4, 'queued', $5, $6, $7) RETURNING id",
        )
        .bind(request.kind.clone())
        .bind(micros(request.window.0))
        .bind(micros(request.window.1))
        .bind(micros(requested_at))
        .bind(request.triggered_by.clone())
        .bind(request.reason.clone())
        .bind(sellers)
        .fetch_one(&mut *tx)
        .await
        .context("queueing a reconciliation run")?;
        let id: i64 = row.try_get("id")?;
        // One row per compared seller, so listings can limit runs to a caller's sellers.
        for seller in request.sellers.iter().flatten() {
            sqlx::query(
                "INSERT INTO reconcile_run_sellers (run_id, seller_tax_id) VALUES ($1, $2)",
            )
            .bind(id)
            .bind(seller.clone())
            .execute(&mut *tx)
            .await
            .context("recording a run's sellers")?;
        }
        tx.commit().await.context("queueing a reconciliation run")?;
        Ok(id)
    }

    /// Mark a queued run as started by `holder` (one more attempt of it); `false` if it was not
    /// queued any more.
    pub async fn begin_run(
        &self,
        run: i64,
        holder: &str,
        started_at: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        let updated = sqlx::query(
            "UPDATE reconcile_runs SET status = 'running', holder = $1, started_at = $2, \
             attempts = attempts + 1 WHERE id = $3 AND status = 'queued'",
        )
        .bind(holder.to_owned())
        .bind(micros(started_at))
        .bind(run)
        .execute(&self.write)
        .await
        .context("starting a queued run")?;
        Ok(updated.rows_affected() == 1)
    }

    /// Record that a run stopped without a report: it failed with `error`.
    pub async fn fail_run(&self, run: i64, error: &str, now: DateTime<Utc>) -> anyhow::Result<()> {
        let mut tx = self.write.begin().await.context("starting to fail a run")?;
        sqlx::query(
            "UPDATE reconcile_runs SET status = 'failed', error = $1, finished_at = $2 \
             WHERE id = $3 AND status IN ('queued', 'running')",
        )
        .bind(error.to_owned())
        .bind(micros(now))
        .bind(run)
        .execute(&mut *tx)
        .await
        .context("recording a failed run")?;
        super::reconcile_progress::forget_days(&mut tx, &[run]).await?;
        tx.commit().await.context("recording a failed run")?;
        Ok(())
    }

    /// Whether a pass of `kind` finished successfully at or after `since`: a scheduled pass
    /// asked for while another replica ran the same one need not run again.
    pub async fn pass_succeeded_since(
        &self,
        kind: &str,
        since: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM reconcile_runs WHERE kind = $1 AND status = 'succeeded' \
             AND dry_run = 0 AND finished_at >= $2",
        )
        .bind(kind.to_owned())
        .bind(micros(since))
        .fetch_one(&self.read)
        .await
        .context("looking for a finished pass")?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// Runs still queued, oldest first: asked for and not started (e.g. before a restart).
    pub async fn queued_runs(&self) -> anyhow::Result<Vec<StoredRun>> {
        let sql =
            format!("SELECT {RUN_COLUMNS} FROM reconcile_runs WHERE status = 'queued' ORDER BY id");
        let rows = sqlx::query(&sql)
            .fetch_all(&self.read)
            .await
            .context("reading queued runs")?;
        rows.iter().map(decode_run).collect()
    }
}
