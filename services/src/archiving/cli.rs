//! `fapiao archive get` and `fapiao archive verify`: the archive from a shell, for auditors and
//! operators with access to the configuration (database and archive), without a running server.
//!
//! Both commands write to the access trail like the gRPC service does (actor `cli:<user>`), check
//! digests before handing out bytes, and never modify the archive.

use super::read::{ReadError, read_checked};
use super::verify::{self, InvoiceReport, Summary, VerifyScope};
use crate::clock::china_offset;
use crate::store::{AccessRecord, Store};
use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, Utc};
use fapiao_archive::Format;
use fapiao_archive::store::Archive;
use fapiao_invoice::number::InvoiceNumber;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::io::Write;
use std::path::Path;
use tokio::sync::mpsc;

/// Who the trail names for a command-line access.
pub fn cli_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

async fn trail(
    store: &Store,
    method: &str,
    number: Option<String>,
    format: Option<Format>,
    purpose: &str,
    outcome: &str,
) -> anyhow::Result<()> {
    store
        .record_access(&AccessRecord {
            id: 0,
            at: Utc::now(),
            actor: cli_actor(),
            method: format!("cli archive {method}"),
            seller_tax_id: None,
            invoice_number: number,
            format,
            purpose: purpose.to_owned(),
            outcome: outcome.to_owned(),
            peer: "local".into(),
        })
        .await
        .context("recording the access in the audit trail")
}

/// Copy one archived file to `output` after checking it against its recorded digest.
pub async fn get(
    store: &Store,
    archive: &Archive,
    number: &str,
    format: Format,
    output: &Path,
    purpose: &str,
) -> anyhow::Result<()> {
    // `None`: the number does not parse, so nothing was read.
    let result = match number.trim().parse::<InvoiceNumber>() {
        Ok(parsed) => Some(read_checked(store, archive, &parsed, format).await),
        Err(_) => None,
    };
    let outcome = match &result {
        None => "INVALID_ARGUMENT",
        Some(Ok(_)) => "OK",
        Some(Err(ReadError::NotRecorded { .. })) => "NOT_FOUND",
        Some(Err(ReadError::Missing { .. } | ReadError::DigestMismatch { .. })) => "DATA_LOSS",
        Some(Err(ReadError::Failed(_))) => "INTERNAL",
    };
    trail(
        store,
        "get",
        Some(number.to_owned()),
        Some(format),
        purpose,
        outcome,
    )
    .await?;
    let Some(result) = result else {
        bail!("{number:?} is not a 20-digit invoice number");
    };
    let (_, bytes) = result.map_err(|e| match e {
        ReadError::Failed(error) => error,
        other => anyhow::anyhow!("{other}; nothing written"),
    })?;
    std::fs::write(output, &bytes).with_context(|| format!("writing {}", output.display()))?;
    Ok(())
}

/// The JSON report of a verification run.
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seller_tax_id: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub summary: Summary,
    /// Every invoice with a failed check (every invoice with `--all`).
    pub invoices: Vec<InvoiceReport>,
}

/// The instant a Beijing calendar day starts.
pub fn day_start(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(chrono::NaiveTime::MIN)
        .and_local_timezone(china_offset())
        .single()
        .map(|at| at.with_timezone(&Utc))
        .unwrap_or_default()
}

/// Options of `fapiao archive verify`.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// First Beijing day, inclusive; the beginning when absent.
    pub from: Option<NaiveDate>,
    /// Last Beijing day, inclusive; today when absent.
    pub to: Option<NaiveDate>,
    pub seller: Option<String>,
    /// Include passing invoices in the report.
    pub all: bool,
    /// Parse and render every file again, even where its bytes passed the current checks before.
    pub deep: bool,
    pub progress: bool,
}

/// Verify a range, showing progress on stderr, and write the JSON report to `out`.
pub async fn verify(
    store: &Store,
    archive: &Archive,
    options: &VerifyOptions,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<Summary> {
    let from = options.from.map_or(DateTime::UNIX_EPOCH, day_start);
    let last = options
        .to
        .unwrap_or_else(|| Utc::now().with_timezone(&china_offset()).date_naive());
    let to = day_start(last + chrono::Days::new(1));
    if to <= from {
        bail!("--to is before --from");
    }
    let scope = VerifyScope::Range {
        from,
        to,
        seller: options.seller.clone(),
    };
    let total = verify::count(store, &scope).await?;
    let bar = if options.progress {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} invoices ({per_sec}, eta {eta}) {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let started_at = Utc::now();
    let (tx, mut rx) = mpsc::channel::<InvoiceReport>(1024);
    let all = options.all;
    let collect = {
        let bar = bar.clone();
        async move {
            let mut kept = Vec::new();
            let mut failed = 0u64;
            while let Some(report) = rx.recv().await {
                bar.inc(1);
                if !report.ok {
                    failed += 1;
                    bar.set_message(format!("{failed} failed"));
                }
                if all || !report.ok {
                    kept.push(report);
                }
            }
            kept
        }
    };
    let (summary, invoices) = tokio::join!(
        verify::verify(store, archive, &scope, options.deep, tx),
        collect
    );
    let summary = summary?;
    bar.finish();
    let report = VerifyReport {
        from,
        to,
        seller_tax_id: options.seller.clone(),
        started_at,
        finished_at: Utc::now(),
        summary: summary.clone(),
        invoices,
    };
    let outcome = if summary.invoices_failed == 0 {
        "OK"
    } else {
        "FAILED_CHECKS"
    };
    trail(store, "verify", None, None, "", outcome).await?;
    serde_json::to_writer_pretty(&mut *out, &report).context("writing the report")?;
    writeln!(out).context("writing the report")?;
    Ok(summary)
}
