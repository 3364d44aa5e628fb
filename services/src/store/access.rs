//! The access trail: one row per call to the audit surface (gRPC or `fapiao archive`), appended
//! before the answer leaves, and read back by auditors within their [`Scope`].
//!
//! Each row names the seller it concerns: the seller asked about, or else the seller of the invoice
//! asked about (looked up as the row is written, whether or not the caller could see it, so a
//! seller's auditors also see others' attempts at its invoices). A row about no seller is seen only
//! by callers of every seller.

use super::archive::parse_format;
use super::conditions::Conditions;
use super::{Scope, Store, from_micros, micros};
use anyhow::Context;
use chrono::{DateTime, Utc};
use fapiao_archive::Format;
use sqlx::Row;

/// One entry of the access trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRecord {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub method: String,
    /// The seller the call concerned, when it named one; otherwise the invoice's seller is
    /// recorded.
    pub seller_tax_id: Option<String>,
    pub invoice_number: Option<String>,
    pub format: Option<Format>,
    pub purpose: String,
    pub outcome: String,
    pub peer: String,
}

/// Which access records to list.
#[derive(Debug, Clone, Default)]
pub struct AccessFilter {
    pub actor: Option<String>,
    pub invoice_number: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// `text` as the trail keeps it: at most `most` characters, and no NUL (which PostgreSQL text
/// cannot hold). The trail records what a caller asked, however malformed.
fn kept(text: &str, most: usize) -> String {
    text.chars()
        .take(most)
        .map(|c| if c == '\0' { '\u{fffd}' } else { c })
        .collect()
}

impl Store {
    /// Append to the access trail.
    pub async fn record_access(&self, record: &AccessRecord) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO access_records (at, actor, method, invoice_number, format, purpose, \
             outcome, peer, seller_tax_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
             COALESCE($9, (SELECT seller_tax_id FROM invoices WHERE invoice_number = $4)))",
        )
        .bind(micros(record.at))
        .bind(kept(&record.actor, 200))
        .bind(kept(&record.method, 200))
        .bind(record.invoice_number.as_deref().map(|n| kept(n, 64)))
        .bind(record.format.map(|f| f.extension()))
        .bind(kept(&record.purpose, 200))
        .bind(kept(&record.outcome, 40))
        .bind(kept(&record.peer, 100))
        .bind(record.seller_tax_id.as_deref().map(|s| kept(s, 64)))
        .execute(&self.write)
        .await
        .context("recording an access")?;
        Ok(())
    }

    /// Access records about sellers inside `scope`, newest first, older than the record `before`
    /// (an id) when given.
    pub async fn access_records(
        &self,
        scope: &Scope,
        filter: &AccessFilter,
        before: Option<i64>,
        limit: u32,
    ) -> anyhow::Result<Vec<AccessRecord>> {
        let mut query = Conditions::new(
            "SELECT id, at, actor, method, seller_tax_id, invoice_number, format, purpose, \
             outcome, peer FROM access_records"
                .to_owned(),
        );
        query.and("id < {}", before.unwrap_or(i64::MAX))?;
        query.and_scope("seller_tax_id", scope)?;
        if let Some(actor) = &filter.actor {
            query.and("actor = {}", actor.clone())?;
        }
        if let Some(number) = &filter.invoice_number {
            query.and("invoice_number = {}", number.clone())?;
        }
        if let Some(from) = filter.from {
            query.and("at >= {}", micros(from))?;
        }
        if let Some(to) = filter.to {
            query.and("at < {}", micros(to))?;
        }
        let (sql, args) = query.newest_first(limit)?;
        let rows = sqlx::query_with(&sql, args)
            .fetch_all(&self.read)
            .await
            .context("listing access records")?;
        rows.iter()
            .map(|row| {
                let format: Option<String> = row.try_get("format")?;
                Ok(AccessRecord {
                    id: row.try_get("id")?,
                    at: from_micros(row.try_get("at")?),
                    actor: row.try_get("actor")?,
                    method: row.try_get("method")?,
                    seller_tax_id: row.try_get("seller_tax_id")?,
                    invoice_number: row.try_get("invoice_number")?,
                    format: format.as_deref().map(parse_format).transpose()?,
                    purpose: row.try_get("purpose")?,
                    outcome: row.try_get("outcome")?,
                    peer: row.try_get("peer")?,
                })
            })
            .collect()
    }
}
