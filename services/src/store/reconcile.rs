//! What the reconciler reads from the store: a seller's invoices of a window, as the comparison
//! needs them, and which request ids are ours.

use std::collections::HashSet;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::any::AnyArguments;

use super::{INVOICE_COLUMNS, Store, StoredInvoice, decode_invoice, micros};

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
}
