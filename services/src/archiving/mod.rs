//! The archive worker: renders the XML, OFD and PDF of every issued invoice and writes them once
//! into the archive store, recording each file's key, SM3 digest and size.
//!
//! Every invoice is due for archiving from the moment it is committed (the store sets
//! `archive_due_at` in the issuing transaction), so no invoice can be issued without its files
//! being owed: the worker claims due invoices with a lease under its instance's name, renders them
//! on blocking threads, writes the objects once (`Archive::put_all`, durable before it returns),
//! then records them. A failed write is retried with back-off and never drops the invoice; a crash
//! between writing and recording finds identical objects on the retry, at once when the same
//! instance starts again (it takes its own claims back), after the lease on another replica. A *different* object under an invoice's key is never overwritten: the
//! invoice is parked with the problem and an error is logged for the operators.
//!
//! This module must not decide how files look (`fapiao_archive` renders) nor how keys are formed.

pub mod cli;
pub mod read;
pub mod verify;

use crate::clock::{SharedClock, china_time};
use crate::instance::InstanceId;
use crate::store::{ArchiveSetback, DueArchive, FileRecord, Store};
use chrono::{DateTime, Utc};
use fapiao_archive::store::{Archive, ArchiveError, S3Settings};
use fapiao_archive::{Issued, object_key};
use serde::Deserialize;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Settings of the archive and its worker.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArchiveConfig {
    /// Where files go: a directory (`./data/archive` when unset, i.e. `{data_dir}/archive`),
    /// `file:///abs/dir`, `s3://bucket[/prefix]` or `memory://` (tests only: lost at exit).
    pub url: Option<String>,
    /// Endpoint, region and credentials for `s3://` urls.
    pub s3: S3Settings,
    /// Flush a local archive's files (and folders) to disk before they are recorded: one
    /// `syncfs` per batch on Linux. Off, a power cut can lose files the database says were
    /// written.
    pub fsync: bool,
    /// Invoices claimed and rendered together.
    pub batch_size: u32,
    /// Batches in flight at once (rendering one while writing another).
    pub workers: usize,
    /// Object writes in flight at once per batch (object stores; a local directory is written on
    /// two threads, which is faster than more on one folder).
    pub write_concurrency: usize,
    /// Waits before the 1st, 2nd, … retry of a failed write; the last repeats.
    #[serde(with = "crate::config::durations")]
    pub backoff: Vec<Duration>,
    /// How long a claim is held; a crashed replica's claims come back to others after it (the
    /// same replica takes its own back when it starts again).
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// Longest sleep when nothing is due (new invoices wake the worker earlier).
    #[serde(with = "humantime_serde")]
    pub idle_poll: Duration,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        Self {
            url: None,
            s3: S3Settings::default(),
            fsync: true,
            batch_size: 64,
            workers: 2,
            write_concurrency: 16,
            backoff: [1, 5, 30, 60, 300].map(Duration::from_secs).to_vec(),
            lease: Duration::from_secs(120),
            idle_poll: Duration::from_millis(500),
        }
    }
}

impl ArchiveConfig {
    /// The archive URL: the configured one, or `archive` under the data directory.
    pub fn url(&self, data_dir: &std::path::Path) -> String {
        match &self.url {
            Some(url) => url.clone(),
            None => data_dir.join("archive").display().to_string(),
        }
    }

    /// Open the configured archive.
    pub fn open(&self, data_dir: &std::path::Path) -> Result<Archive, ArchiveError> {
        fapiao_archive::store::open_with(&self.url(data_dir), &self.s3, self.fsync)
    }

    /// The wait before retry number `attempt` (1-based).
    pub fn backoff_for(&self, attempt: u32) -> Duration {
        crate::config::backoff_at(&self.backoff, attempt, Duration::from_secs(60))
    }
}

/// The rendered files of one invoice, with what the store records about them.
#[derive(Debug)]
pub struct RenderedInvoice {
    pub number: fapiao_invoice::number::InvoiceNumber,
    pub files: Vec<(FileRecord, bytes::Bytes)>,
}

/// Render the three files of an invoice and describe them (key, size, SM3).
pub fn render(item: &DueArchive, archived_at: DateTime<Utc>) -> RenderedInvoice {
    let issued = Issued {
        number: item.number,
        issued_at: china_time(item.issued_at),
        content: &item.content,
    };
    let files = fapiao_archive::render(&issued)
        .into_files()
        .into_iter()
        .map(|(format, bytes)| {
            let record = FileRecord {
                format,
                object_key: object_key(&item.seller_tax_id, issued.issued_at, &item.number, format),
                size_bytes: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
                sm3_hex: fapiao_archive::check::sm3_hex(&bytes),
                archived_at,
                checks_passed: None,
            };
            (record, bytes::Bytes::from(bytes))
        })
        .collect();
    RenderedInvoice {
        number: item.number,
        files,
    }
}

/// What to do after an invoice's writes failed with `error` on its `attempts`-th try.
pub fn setback(
    config: &ArchiveConfig,
    number: fapiao_invoice::number::InvoiceNumber,
    attempts: u32,
    error: &ArchiveError,
    now: DateTime<Utc>,
) -> ArchiveSetback {
    let retry_at = error.is_retryable().then(|| {
        now + chrono::Duration::from_std(config.backoff_for(attempts))
            .unwrap_or(chrono::Duration::MAX)
    });
    ArchiveSetback {
        number,
        retry_at,
        problem: error.to_string(),
    }
}

/// Start the worker tasks, claiming under `owner`. When `stop` turns true they stop claiming and
/// finish the batch in hand.
pub fn spawn(
    store: Store,
    archive: Archive,
    clock: SharedClock,
    config: ArchiveConfig,
    owner: InstanceId,
    changes: watch::Receiver<u64>,
    stop: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    (0..config.workers.max(1))
        .map(|_| {
            let worker = Worker {
                store: store.clone(),
                archive: archive.clone(),
                clock: clock.clone(),
                config: config.clone(),
                owner: owner.clone(),
            };
            let changes = changes.clone();
            let stop = stop.clone();
            tokio::spawn(async move { worker.run(changes, stop).await })
        })
        .collect()
}

struct Worker {
    store: Store,
    archive: Archive,
    clock: SharedClock,
    config: ArchiveConfig,
    owner: InstanceId,
}

impl Worker {
    async fn run(self, mut changes: watch::Receiver<u64>, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            match self.one_batch().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), "archive worker step failed");
                }
            }
            let pause = match self.store.next_archive_due().await {
                Ok(Some(due)) => (due - self.clock.now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .clamp(Duration::from_millis(20), self.config.idle_poll),
                _ => self.config.idle_poll,
            };
            tokio::select! {
                _ = changes.changed() => {}
                () = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
        tracing::debug!("archive worker stopped");
    }

    /// Archive one claimed batch; `Ok(false)` when nothing was due.
    async fn one_batch(&self) -> anyhow::Result<bool> {
        let now = self.clock.now();
        let lease_until =
            now + chrono::Duration::from_std(self.config.lease).unwrap_or(chrono::Duration::MAX);
        let due = self
            .store
            .claim_due_archives(
                self.owner.as_str(),
                now,
                lease_until,
                self.config.batch_size.max(1),
            )
            .await?;
        if due.is_empty() {
            return Ok(false);
        }
        let attempts: Vec<(fapiao_invoice::number::InvoiceNumber, u32)> =
            due.iter().map(|d| (d.number, d.attempts + 1)).collect();
        let archived_at = self.clock.now();
        let rendered = tokio::task::spawn_blocking(move || {
            due.iter()
                .map(|item| render(item, archived_at))
                .collect::<Vec<_>>()
        })
        .await?;
        let owners: Vec<usize> = rendered
            .iter()
            .enumerate()
            .flat_map(|(i, invoice)| invoice.files.iter().map(move |_| i))
            .collect();
        let writes: Vec<(String, bytes::Bytes)> = rendered
            .iter()
            .flat_map(|invoice| {
                invoice
                    .files
                    .iter()
                    .map(|(record, bytes)| (record.object_key.clone(), bytes.clone()))
            })
            .collect();
        let written = self
            .archive
            .put_all(writes, self.config.write_concurrency)
            .await;
        let outcomes = owners
            .into_iter()
            .zip(written)
            .map(|(i, outcome)| (i, outcome.map(|_| ())));
        let mut failed: Vec<Option<ArchiveError>> = rendered.iter().map(|_| None).collect();
        for (i, outcome) in outcomes {
            if let Err(error) = outcome {
                // A conflict outranks a transient failure: it will not go away by retrying.
                let keep = matches!(failed[i], Some(ArchiveError::Conflict { .. }));
                if !keep {
                    failed[i] = Some(error);
                }
            }
        }
        let now = self.clock.now();
        let mut done = Vec::new();
        let mut setbacks = Vec::new();
        for ((invoice, failure), (_, attempt)) in rendered.into_iter().zip(failed).zip(attempts) {
            match failure {
                None => done.push((
                    invoice.number,
                    invoice
                        .files
                        .into_iter()
                        .map(|(record, _)| record)
                        .collect(),
                )),
                Some(error) => {
                    if matches!(error, ArchiveError::Conflict { .. }) {
                        tracing::error!(
                            invoice_number = %invoice.number,
                            error = %error,
                            "ALARM: a different object is archived under this invoice's key; \
                             left untouched, invoice parked until an operator looks"
                        );
                    } else {
                        tracing::warn!(
                            invoice_number = %invoice.number,
                            attempt,
                            error = %error,
                            "archiving failed; will retry"
                        );
                    }
                    setbacks.push(setback(&self.config, invoice.number, attempt, &error, now));
                }
            }
        }
        self.store.record_archived(&done).await?;
        if !setbacks.is_empty() {
            self.store.record_archive_setbacks(&setbacks).await?;
        }
        Ok(true)
    }
}
