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
