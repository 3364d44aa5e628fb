//! Verification of archived files (the integrity and usability parts of 四性检测), shared by
//! `AuditService.VerifyInvoices` and `fapiao archive verify`.
//!
//! For every invoice in scope it fetches the three expected objects (by their documented keys,
//! whether or not a file row exists, so a missing row is reported rather than hiding a file) and
//! runs `fapiao_archive::check::check_file` on each: presence, SM3 and size against what was
//! recorded at archiving time, parsing, rendering. Fetches run concurrently and checks run on the
//! blocking pool across all cores; reports stream out as they complete, in issue order per page.
//!
//! Every file is read and hashed in full on every run. Parsing and rendering are what cost, and
//! their verdict depends only on the bytes: when a file's digest matches and these exact bytes
//! already passed the current version of the checks (noted in the store after a run), the verdict
//! is reused and the report says so; `deep` runs every check again.
//!
//! This module never repairs, rewrites or deletes an archived file; the only thing it writes is
//! that note.

use crate::clock::china_time;
use crate::store::{ArchivedInvoice, Scope, Store};
use anyhow::Context;
use chrono::{DateTime, Utc};
use fapiao_archive::check::{CHECKS_VERSION, FileCheck, Outcome, Recorded, check_file_reusing};
use fapiao_archive::store::Archive;
use fapiao_archive::{Format, object_key};
use fapiao_invoice::number::InvoiceNumber;
use serde::Serialize;
use tokio::sync::mpsc;

/// What to verify.
#[derive(Debug, Clone)]
pub enum VerifyScope {
    One(InvoiceNumber),
    /// Invoices issued in `[from, to)`, optionally of one seller.
    Range {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        seller: Option<String>,
    },
}

/// The checks of one invoice.
#[derive(Debug, Clone, Serialize)]
pub struct InvoiceReport {
    pub invoice_number: String,
    pub seller_tax_id: String,
    pub ok: bool,
    #[serde(serialize_with = "files_json")]
    pub files: Vec<FileCheck>,
}

/// One file's checks as the JSON report spells them.
#[derive(Serialize)]
struct FileJson<'a> {
    format: &'static str,
    present: bool,
    digest_matches: &'static str,
    parses: &'static str,
    renders: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    detail: &'a str,
    /// Parsing and rendering were not run again (see the module documentation).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    usability_recorded: bool,
}

fn files_json<S: serde::Serializer>(files: &[FileCheck], out: S) -> Result<S::Ok, S::Error> {
    out.collect_seq(files.iter().map(|check| FileJson {
        format: check.format.extension(),
        present: check.present,
        digest_matches: outcome_text(check.digest),
        parses: outcome_text(check.parses),
        renders: outcome_text(check.renders),
        detail: &check.detail,
        usability_recorded: check.usability_recorded,
    }))
}

/// Totals over a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub invoices_checked: u64,
    pub invoices_ok: u64,
    pub invoices_failed: u64,
    pub files_missing: u64,
    pub digest_mismatches: u64,
    pub parse_failures: u64,
    pub render_failures: u64,
}

impl Summary {
    fn add(&mut self, report: &InvoiceReport) {
        self.invoices_checked += 1;
        if report.ok {
            self.invoices_ok += 1;
        } else {
            self.invoices_failed += 1;
        }
        for check in &report.files {
            self.files_missing += u64::from(!check.present);
            self.digest_mismatches += u64::from(check.digest == Outcome::Failed);
            self.parse_failures += u64::from(check.parses == Outcome::Failed);
            self.render_failures += u64::from(check.renders == Outcome::Failed);
        }
    }
}

fn outcome_text(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Passed => "passed",
        Outcome::Failed => "failed",
        Outcome::Skipped => "skipped",
    }
}

/// How many invoices are read from the store per page.
const PAGE: u32 = 512;
/// Object reads in flight at once.
const FETCHES: usize = 64;

/// Count the invoices a scope covers (for progress bars).
pub async fn count(store: &Store, scope: &VerifyScope) -> anyhow::Result<u64> {
    match scope {
        VerifyScope::One(_) => Ok(1),
        VerifyScope::Range { from, to, seller } => {
            store.count_issued(*from, *to, seller.as_deref()).await
        }
    }
}

/// Verify everything in `scope`, sending each invoice's report to `reports` as it completes.
/// Stops early (returning what was counted) when the receiver is dropped. `deep`: parse and render
/// every file again even where its bytes passed the current checks before.
pub async fn verify(
    store: &Store,
    archive: &Archive,
    scope: &VerifyScope,
    deep: bool,
    reports: mpsc::Sender<InvoiceReport>,
) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    match scope {
        VerifyScope::One(number) => {
            let found = store
                .get_invoice(&Scope::unrestricted(), number)
                .await?
                .with_context(|| format!("no invoice {number}"))?;
            let files = store
                .archived_files(&[*number])
                .await?
                .remove(number)
                .unwrap_or_default();
            let invoice = ArchivedInvoice {
                number: found.number,
                seller_tax_id: found.seller_tax_id,
                issued_at: found.issued_at,
                files,
            };
            let page = vec![invoice];
            let fetched = fetch_page(archive, &page).await;
            let checked = check_page(page, fetched, deep).await?;
            note_passed(store, &checked.passed).await;
            for report in checked.reports {
                summary.add(&report);
                let _ = reports.send(report).await;
            }
        }
        VerifyScope::Range { from, to, seller } => {
            let load = |after| async move {
                let page = store
                    .archived_invoices(*from, *to, seller.as_deref(), after, PAGE)
                    .await?;
                let fetched = fetch_page(archive, &page).await;
                anyhow::Ok((page, fetched))
            };
            let mut next = Some(load(None).await?);
            // Check one page on the blocking pool while the next one is read.
            while let Some((page, fetched)) = next.take() {
                let Some(last) = page.last() else { break };
                let cursor = (last.issued_at, last.number);
                let full = page.len() == PAGE as usize;
                let following = async {
                    if full {
                        Some(load(Some(cursor)).await)
                    } else {
                        None
                    }
                };
                let (checked, following) = tokio::join!(check_page(page, fetched, deep), following);
                let checked = checked?;
                note_passed(store, &checked.passed).await;
                for report in checked.reports {
                    summary.add(&report);
                    if reports.send(report).await.is_err() {
                        return Ok(summary);
                    }
                }
                next = following.transpose()?;
            }
        }
    }
    Ok(summary)
}

/// Read every expected object of a page of invoices.
async fn fetch_page(archive: &Archive, invoices: &[ArchivedInvoice]) -> Vec<[Fetched; 3]> {
    // Every expected object, keeping (invoice index, format) with the key.
    let wanted: Vec<(usize, Format, String)> = invoices
        .iter()
        .enumerate()
        .flat_map(|(i, invoice)| {
            let at = china_time(invoice.issued_at);
            Format::ALL.into_iter().map(move |format| {
                (
                    i,
                    format,
                    object_key(&invoice.seller_tax_id, at, &invoice.number, format),
                )
            })
        })
        .collect();
    let keys = wanted.iter().map(|(_, _, key)| key.clone()).collect();
    let fetched = archive.get_all(keys, FETCHES).await;
    let mut bytes_of: Vec<[Fetched; 3]> = invoices
        .iter()
        .map(|_| std::array::from_fn(|_| Ok(None)))
        .collect();
    // A read error is reported against its file, not allowed to end the run.
    for ((i, format, _), fetched) in wanted.into_iter().zip(fetched) {
        bytes_of[i][format_index(format)] = fetched.map_err(|e| e.to_string());
    }
    bytes_of
}

/// Remember which files passed the parse and render checks (a failure to write costs only the
/// reuse next time, not this run's verdicts).
async fn note_passed(store: &Store, passed: &[(InvoiceNumber, Format, String)]) {
    if passed.is_empty() {
        return;
    }
    if let Err(error) = store.record_checks_passed(passed, CHECKS_VERSION).await {
        tracing::warn!(
            error = format!("{error:#}"),
            "could not note the files that passed; the next run checks them in full again"
        );
    }
}

/// The reports of a page, and the files that newly passed the parse and render checks.
struct CheckedPage {
    reports: Vec<InvoiceReport>,
    passed: Vec<(InvoiceNumber, Format, String)>,
}

/// Check a page of invoices against what was read, one chunk per core on the blocking pool.
async fn check_page(
    invoices: Vec<ArchivedInvoice>,
    bytes_of: Vec<[Fetched; 3]>,
    deep: bool,
) -> anyhow::Result<CheckedPage> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = invoices.len().div_ceil(cores).max(1);
    let mut work = Vec::new();
    let mut invoices = invoices.into_iter();
    let mut bytes_of = bytes_of.into_iter();
    loop {
        let part: Vec<(ArchivedInvoice, [Fetched; 3])> = invoices
            .by_ref()
            .zip(bytes_of.by_ref())
            .take(chunk)
            .collect();
        if part.is_empty() {
            break;
        }
        work.push(tokio::task::spawn_blocking(move || {
            let mut reports = Vec::with_capacity(part.len());
            let mut passed = Vec::new();
            for (invoice, bytes) in part {
                let report = check_invoice(&invoice, &bytes, deep);
                for check in report.files.iter().filter(|c| c.newly_usable()) {
                    if let Some(record) = invoice.files.iter().find(|f| f.format == check.format) {
                        passed.push((invoice.number, check.format, record.sm3_hex.clone()));
                    }
                }
                reports.push(report);
            }
            (reports, passed)
        }));
    }
    let mut page = CheckedPage {
        reports: Vec::new(),
        passed: Vec::new(),
    };
    for task in work {
        let (reports, passed) = task.await.context("a verification task failed")?;
        page.reports.extend(reports);
        page.passed.extend(passed);
    }
    Ok(page)
}

fn format_index(format: Format) -> usize {
    match format {
        Format::Xml => 0,
        Format::Ofd => 1,
        Format::Pdf => 2,
    }
}

/// What reading one object gave: its bytes, nothing (absent), or why it could not be read.
pub type Fetched = Result<Option<bytes::Bytes>, String>;

/// Check one invoice's three files against its records; `deep`: never reuse a verdict.
pub fn check_invoice(invoice: &ArchivedInvoice, bytes: &[Fetched; 3], deep: bool) -> InvoiceReport {
    let files: Vec<FileCheck> = Format::ALL
        .into_iter()
        .map(|format| {
            let record = invoice.files.iter().find(|f| f.format == format);
            let recorded = record.map(|r| Recorded {
                sm3_hex: &r.sm3_hex,
                size: r.size_bytes,
            });
            let fetched = &bytes[format_index(format)];
            let found = fetched.as_ref().ok().and_then(|b| b.as_deref());
            let passed_before = record
                .and_then(|r| r.checks_passed.as_deref())
                .filter(|_| !deep);
            let mut check = check_file_reusing(
                format,
                &invoice.number,
                recorded.as_ref(),
                found,
                passed_before,
            );
            if let Err(error) = fetched {
                check.detail = format!("cannot read the object: {error}");
            }
            if record.is_none() {
                check.digest = Outcome::Failed;
                if check.detail.is_empty() {
                    check.detail = "no digest recorded: the invoice is not archived yet".into();
                }
            }
            check
        })
        .collect();
    InvoiceReport {
        invoice_number: invoice.number.to_string(),
        seller_tax_id: invoice.seller_tax_id.clone(),
        ok: files.iter().all(FileCheck::ok),
        files,
    }
}
