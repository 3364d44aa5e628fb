//! A busy seller-day, prepared fast, for reconciliation tests and the reconciliation benchmark.
//!
//! [`prepare`] issues a day's invoices of the demo seller through the store's own issuing path
//! (numbers from a range, quota, an event each) in batches of 1,000 that share an issue time, the
//! batches spread evenly over the day (so a short window may hold a whole batch or none). It marks
//! them recorded with nothing left to upload or archive, and writes the same invoices as the
//! platform's records into a sandbox journal, which a sandbox (in-process or `fapiao sandbox`)
//! replays at start. Both sides then hold the same day, in agreement.
//!
//! It runs against a migrated store on a database no server is using yet. The numbers come from
//! the range the caller names, which must not overlap what the sandbox hands out (it numbers each
//! prefix from 1), so that a server started afterwards can issue more invoices beside the day.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use chrono::{NaiveDate, TimeDelta};
use fapiao_invoice::model::InvoiceContent;
use fapiao_invoice::number::InvoiceNumber;
use fapiao_invoice::taxpayer::TaxpayerId;
use fapiao_reconciler::pass::{Window, day_start};
use fapiao_services::issuance::{content_digest, quota_fen};
use fapiao_services::platform::NumberRange;
use fapiao_services::reconciling::platform_digest;
use fapiao_services::store::{IssueItem, IssueOutcome, PendingDownload, Store};

use crate::sample::{self, DEMO_SELLER};

/// Invoices issued per store transaction.
const BATCH: u64 = 1_000;

/// What to prepare.
#[derive(Debug, Clone, Copy)]
pub struct BusyDay {
    /// The China-time day the invoices are issued on.
    pub day: NaiveDate,
    pub invoices: u64,
    /// The first invoice number; the day uses exactly the `invoices` numbers from it.
    pub first: InvoiceNumber,
}

impl BusyDay {
    /// The window of the whole day.
    pub fn window(&self) -> anyhow::Result<Window> {
        let next = self.day.succ_opt().context("no next day")?;
        Ok(Window {
            from: day_start(self.day),
            to: day_start(next),
        })
    }
}

/// Issue the day's invoices of the demo seller in `store` (at `url`, for the bulk updates), mark
/// them recorded, and append them to the sandbox journal at `journal` as the platform's records.
pub async fn prepare(
    store: &Store,
    url: &str,
    busy: &BusyDay,
    journal: &Path,
) -> anyhow::Result<()> {
    let count = busy.invoices;
    let window = busy.window()?;
    let at = window.from;
    let seller = TaxpayerId::parse(DEMO_SELLER)?;
    if count == 0 {
        return Ok(());
    }
    let last = InvoiceNumber::new(
        busy.first.year(),
        busy.first.region(),
        busy.first.channel(),
        busy.first.sequence() + (count - 1),
    )
    .context("the day's numbers run past the prefix")?;
    store
        .add_number_range(
            &seller,
            &NumberRange {
                first: busy.first,
                last,
            },
            at,
        )
        .await?;
    let serial = format!("busy-day-{}", busy.day);
    let download = PendingDownload {
        serial: serial.clone(),
        asked_fen: i64::MAX / 4,
    };
    store.begin_quota_download(&seller, &download, at).await?;
    store
        .complete_quota_download(&seller, &serial, i64::MAX / 4)
        .await?;
    let pool = crate::db::raw_pool(url).await;
    let mut out = std::io::BufWriter::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(journal)
            .with_context(|| format!("opening {}", journal.display()))?,
    );
    let step = TimeDelta::microseconds(86_400_000_000 / i64::try_from(count)?);
    // Validating an invoice is the slow part of making one; amounts repeat, so each is validated
    // once and the request id set on a copy.
    let mut templates: HashMap<u64, InvoiceContent> = HashMap::new();
    let mut issued = 0u64;
    while issued < count {
        let n = BATCH.min(count - issued);
        let items: Vec<IssueItem> = (issued..issued + n)
            .map(|i| {
                let amount = 100 + i % 900;
                let mut content = templates
                    .entry(amount)
                    .or_insert_with(|| {
                        sample::content(DEMO_SELLER, "template", &amount.to_string())
                    })
                    .clone();
                content.request_id = format!("busy-{}-{i}", busy.day);
                IssueItem {
                    seller_tax_id: DEMO_SELLER.to_owned(),
                    request_id: content.request_id.clone(),
                    content_sm3: content_digest(&content),
                    quota_fen: quota_fen(&content),
                    content,
                    actor: "busy-day".to_owned(),
                }
            })
            .collect();
        let when = at + step * i32::try_from(issued)?;
        for outcome in store.issue_batch(&items, when).await? {
            let IssueOutcome::Issued(stored) = outcome else {
                anyhow::bail!("an invoice was not issued: {outcome:?}");
            };
            let line = serde_json::json!({
                "event": "recorded",
                "seller": DEMO_SELLER,
                "number": stored.number.to_string(),
                "issued_at": stored.issued_at,
                "recorded_at": stored.issued_at,
                "content_sm3": platform_digest(&stored.content),
                "content": stored.content,
            });
            serde_json::to_writer(&mut out, &line)?;
            out.write_all(b"\n")?;
        }
        issued += n;
        // Keep the planner's statistics current as a maintained database would (autovacuum may
        // be off on a test server, and is slow to notice a table that grows from nothing): after
        // 1, 2, 4, 8, … batches, then every 100,000 invoices. Without them PostgreSQL looks up
        // each batch's request ids by scanning the table, and the day takes quadratic time.
        let batches = issued.div_ceil(BATCH);
        if batches.is_power_of_two() || issued % 100_000 < BATCH {
            sqlx::query("ANALYZE invoices").execute(&pool).await?;
        }
    }
    out.flush()?;
    // The platform holds them all: locally they are recorded, with no work left.
    sqlx::query(
        "UPDATE invoices SET state = 'RECORDED', upload_phase = NULL, next_attempt_at = NULL, \
         archive_due_at = NULL WHERE seller_tax_id = $1 AND issued_at >= $2 AND issued_at < $3",
    )
    .bind(DEMO_SELLER)
    .bind(window.from.timestamp_micros())
    .bind(window.to.timestamp_micros())
    .execute(&pool)
    .await?;
    sqlx::query("ANALYZE").execute(&pool).await?;
    pool.close().await;
    Ok(())
}
