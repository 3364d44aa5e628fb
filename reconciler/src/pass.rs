//! One reconciliation pass: `reconcile(window) -> Report`.
//!
//! For every seller the [`Ledger`] names, and every China-time day the window touches, the pass
//! reads the local invoices issued in that part of the window and the platform's listing of that
//! day (keeping only rows issued inside the window), compares them with [`diff::compare`], and
//! hands each drift whose plan is a repair to [`Repairs`]. Drifts whose plan is an alert are
//! reported, never repaired.
//!
//! The platform's listing is read a page at a time ([`listing`]): a page that fails for a passing
//! reason is read again after a back-off, keeping the pages already read. A day whose listing
//! still cannot be read completely (a page's attempts spent, or a refusal) is not compared at
//! all: comparing against part of a listing would call every unlisted invoice "missing on
//! platform" and re-upload it. The day is reported as a gap and the pass as incomplete.
//!
//! Each compared seller-day is handed to [`Checkpoints`] before the next begins, and seller-days
//! it already holds for the run are skipped: an attempt of a run that stopped part way (its
//! process stopped, its lease lost, a day left as a gap) continues where the last one stopped
//! instead of starting the window over. When the checkpoints cannot keep a day, the pass stops.
//!
//! It owns the order of work and the report. It must not decide drift classes (that is `diff`),
//! read the clock or sleep (`now` is passed in, waits go through [`Pause`]), or talk to SQL or
//! HTTP (the traits are implemented by the service). Work is one day of one seller at a time, so
//! memory follows the busiest seller-day, not the window.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;

use chrono::{DateTime, Days, FixedOffset, NaiveDate, NaiveTime, Offset, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::diff::{self, Drift, DriftClass, LocalInvoice, Repair, Settings};

pub mod listing;

pub use listing::{ListedPage, Listing, PageError, Pause, Retry};

/// The invoices a pass covers: those issued in `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// China Standard Time, in which the platform lists invoices by day.
fn china() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| Utc.fix())
}

impl Window {
    /// Whether `at` falls in the window.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.from <= at && at < self.to
    }

    /// The China-time days the window touches, each with the part of the window inside it, in
    /// order. Empty when the window is empty.
    pub fn days(&self) -> Vec<(NaiveDate, Window)> {
        let mut days = Vec::new();
        if self.to <= self.from {
            return days;
        }
        let mut day = self.from.with_timezone(&china()).date_naive();
        loop {
            let start = day_start(day);
            let Some(next) = day.checked_add_days(Days::new(1)) else {
                break;
            };
            let end = day_start(next);
            let part = Window {
                from: self.from.max(start),
                to: self.to.min(end),
            };
            if part.from < part.to {
                days.push((day, part));
            }
            if end >= self.to {
                break;
            }
            day = next;
        }
        days
    }
}

/// The first instant of a China-time day, in UTC.
pub fn day_start(day: NaiveDate) -> DateTime<Utc> {
    let midnight = day.and_time(NaiveTime::MIN);
    china()
        .from_local_datetime(&midnight)
        .single()
        .map_or_else(|| midnight.and_utc(), |at| at.with_timezone(&Utc))
}

/// Why a source could not answer; the words go into the report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// The local side: the store's invoices.
pub trait Ledger: Sync {
    /// The sellers a pass covers.
    fn sellers(&self) -> impl Future<Output = Result<Vec<String>, SourceError>> + Send;

    /// The seller's invoices issued in `window`.
    fn local_invoices(
        &self,
        seller: &str,
        window: &Window,
    ) -> impl Future<Output = Result<Vec<LocalInvoice>, SourceError>> + Send;

    /// Which of `request_ids` the seller's requests can account for (a platform invoice made under
    /// one of them is ours and may be adopted).
    fn known_requests(
        &self,
        seller: &str,
        request_ids: &[&str],
    ) -> impl Future<Output = Result<HashSet<String>, SourceError>> + Send;
}

/// Carries out a planned repair and records it (with its event) in the store.
pub trait Repairs: Sync {
    fn repair(&self, drift: &Drift) -> impl Future<Output = RepairOutcome> + Send;
}

/// What became of one drift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "detail")]
pub enum RepairOutcome {
    /// The repair was made (a re-upload was accepted for sending, a state adopted, …).
    Done(String),
    /// The repair was tried and failed; the next pass finds the drift again.
    Failed(String),
    /// The plan is an alert: nothing is changed automatically.
    AlertOnly,
}

/// One drift and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handled {
    pub drift: Drift,
    pub outcome: RepairOutcome,
}

/// A seller-day that could not be compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    pub seller: String,
    /// `None` when the seller's list of days was not reached (e.g. the sellers failed).
    pub day: Option<NaiveDate>,
    pub error: String,
}

/// One compared seller-day: what it read and the drifts it handled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SellerDay {
    pub seller: String,
    pub day: NaiveDate,
    /// Local invoices read.
    pub local: u64,
    /// Platform rows read (inside the window).
    pub remote: u64,
    pub in_agreement: u64,
    pub drifts: Vec<Handled>,
}

impl SellerDay {
    /// Invoice numbers compared: those in agreement and those in drift, each once.
    pub fn compared(&self) -> u64 {
        self.in_agreement
            .saturating_add(u64::try_from(self.drifts.len()).unwrap_or(u64::MAX))
    }
}

/// A seller-day an earlier attempt of the same run compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoneDay {
    pub seller: String,
    pub day: NaiveDate,
    /// Invoice numbers it compared ([`SellerDay::compared`]).
    pub compared: u64,
}

/// Where a run keeps the seller-days it has compared, so that its next attempt skips them.
pub trait Checkpoints: Sync {
    /// The seller-days of this run compared by earlier attempts.
    fn done_days(&self) -> impl Future<Output = Result<Vec<DoneDay>, SourceError>> + Send;

    /// Keep `day`, compared and repaired, with its drifts, before the next one begins. An error
    /// stops the pass: its progress can no longer be kept, or the run is no longer its own.
    fn day_done(&self, day: &SellerDay) -> impl Future<Output = Result<(), SourceError>> + Send;
}

/// A pass that keeps no progress: every attempt compares the whole window.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCheckpoints;

impl Checkpoints for NoCheckpoints {
    async fn done_days(&self) -> Result<Vec<DoneDay>, SourceError> {
        Ok(Vec::new())
    }

    async fn day_done(&self, _: &SellerDay) -> Result<(), SourceError> {
        Ok(())
    }
}

/// The result of one pass (one attempt of a run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub window: Window,
    pub started_at: DateTime<Utc>,
    /// Local invoices read.
    pub local: u64,
    /// Platform rows read (inside the window).
    pub remote: u64,
    /// Invoice numbers on which both sides agree.
    pub in_agreement: u64,
    pub drifts: Vec<Handled>,
    /// Parts not compared; the pass is complete only without any.
    pub gaps: Vec<Gap>,
    /// Seller-days an earlier attempt of the run compared, skipped by this one; the counts above
    /// are this attempt's alone.
    #[serde(default)]
    pub resumed: u64,
    /// Listing pages read again after a passing failure.
    #[serde(default)]
    pub page_retries: u64,
    /// Why the pass stopped before its last seller-day; the days it did not reach are neither
    /// compared nor gaps, and the run's next attempt continues with them.
    #[serde(default)]
    pub stopped: Option<String>,
}

impl Report {
    /// Every seller-day of the window was compared, by this attempt or an earlier one.
    pub fn complete(&self) -> bool {
        self.gaps.is_empty() && self.stopped.is_none()
    }

    /// Drifts found, by class code.
    pub fn by_class(&self) -> BTreeMap<&'static str, u64> {
        by_class(&self.drifts)
    }

    /// Drifts of `class`.
    pub fn count(&self, class: DriftClass) -> usize {
        self.drifts
            .iter()
            .filter(|h| h.drift.class == class)
            .count()
    }
}

/// Drifts by class code.
pub fn by_class(drifts: &[Handled]) -> BTreeMap<&'static str, u64> {
    let mut counts = BTreeMap::new();
    for handled in drifts {
        *counts.entry(handled.drift.class.as_str()).or_insert(0) += 1;
    }
    counts
}

/// How far a pass has come, for progress bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Seller-days done (compared now, by an earlier attempt, or left as gaps), of `total`.
    pub done: u64,
    pub total: u64,
    /// Invoices compared so far (local and remote numbers, each once).
    pub compared: u64,
}

/// What a pass reads, repairs and keeps through.
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a, L, P, R, C, W> {
    pub ledger: &'a L,
    pub listing: &'a P,
    pub repairs: &'a R,
    pub checkpoints: &'a C,
    pub pause: &'a W,
}

/// The rules of a pass: how drift is judged and how failed listing pages are retried.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rules {
    pub diff: Settings,
    pub retry: Retry,
}

/// Run one pass over `window`, skipping the seller-days `sources.checkpoints` holds. `progress`
/// is called after each seller-day.
pub async fn reconcile<L, P, R, C, W>(
    window: Window,
    sources: &Sources<'_, L, P, R, C, W>,
    rules: &Rules,
    now: DateTime<Utc>,
    progress: &(dyn Fn(Progress) + Sync),
) -> Report
where
    L: Ledger,
    P: Listing,
    R: Repairs,
    C: Checkpoints,
    W: Pause,
{
    let mut report = Report {
        window,
        started_at: now,
        local: 0,
        remote: 0,
        in_agreement: 0,
        drifts: Vec::new(),
        gaps: Vec::new(),
        resumed: 0,
        page_retries: 0,
        stopped: None,
    };
    let sellers = match sources.ledger.sellers().await {
        Ok(sellers) => sellers,
        Err(error) => {
            report.gaps.push(Gap {
                seller: String::new(),
                day: None,
                error: format!("cannot list the sellers: {error}"),
            });
            return report;
        }
    };
    let done: HashMap<(String, NaiveDate), u64> = match sources.checkpoints.done_days().await {
        Ok(days) => days
            .into_iter()
            .map(|d| ((d.seller, d.day), d.compared))
            .collect(),
        Err(error) => {
            report.stopped = Some(format!("cannot read the run's progress: {error}"));
            return report;
        }
    };
    let days = window.days();
    let mut state = Progress {
        done: 0,
        total: u64::try_from(sellers.len().saturating_mul(days.len())).unwrap_or(u64::MAX),
        compared: 0,
    };
    for seller in &sellers {
        for (day, part) in &days {
            if let Some(compared) = done.get(&(seller.clone(), *day)) {
                report.resumed += 1;
                state.compared = state.compared.saturating_add(*compared);
            } else {
                let compared = seller_day(seller, *day, part, sources, rules, now).await;
                report.page_retries += compared.page_retries;
                match compared.result {
                    Ok(day_report) => {
                        if let Err(error) = sources.checkpoints.day_done(&day_report).await {
                            report.stopped = Some(format!(
                                "cannot keep the progress after seller {seller} {day}: {error}"
                            ));
                            report.add(day_report);
                            return report;
                        }
                        state.compared = state.compared.saturating_add(day_report.compared());
                        report.add(day_report);
                    }
                    Err(error) => report.gaps.push(Gap {
                        seller: seller.clone(),
                        day: Some(*day),
                        error: error.0,
                    }),
                }
            }
            state.done += 1;
            progress(state);
        }
    }
    report
}

impl Report {
    /// Count a compared seller-day in.
    fn add(&mut self, day: SellerDay) {
        self.local += day.local;
        self.remote += day.remote;
        self.in_agreement += day.in_agreement;
        self.drifts.extend(day.drifts);
    }
}

/// What comparing one seller-day gave, with the listing's retries either way.
struct Compared {
    result: Result<SellerDay, SourceError>,
    page_retries: u64,
}

async fn seller_day<L, P, R, C, W>(
    seller: &str,
    day: NaiveDate,
    part: &Window,
    sources: &Sources<'_, L, P, R, C, W>,
    rules: &Rules,
    now: DateTime<Utc>,
) -> Compared
where
    L: Ledger,
    P: Listing,
    R: Repairs,
    C: Checkpoints,
    W: Pause,
{
    let failed = |error: String, page_retries| Compared {
        result: Err(SourceError(error)),
        page_retries,
    };
    let local = match sources.ledger.local_invoices(seller, part).await {
        Ok(local) => local,
        Err(e) => return failed(format!("local invoices: {e}"), 0),
    };
    let read = listing::read_day(sources.listing, sources.pause, &rules.retry, seller, day).await;
    let (mut remote, page_retries) = match read {
        Ok(read) => (read.rows, read.retries),
        Err(unread) => {
            return failed(
                format!("platform listing: {}", unread.error),
                unread.retries,
            );
        }
    };
    remote.retain(|r| part.contains(r.issued_at));

    let ours: HashSet<_> = local.iter().map(|l| l.number).collect();
    let strangers: Vec<&str> = remote
        .iter()
        .filter(|r| !ours.contains(&r.number))
        .map(|r| r.request_id.as_str())
        .collect();
    let known = if strangers.is_empty() {
        HashSet::new()
    } else {
        match sources.ledger.known_requests(seller, &strangers).await {
            Ok(known) => known,
            Err(e) => return failed(format!("known requests: {e}"), page_retries),
        }
    };
    let is_known = |_: &str, request_id: &str| known.contains(request_id);
    let comparison = diff::compare(&local, &remote, &is_known, &rules.diff, now);

    let mut drifts = Vec::with_capacity(comparison.drifts.len());
    for drift in comparison.drifts {
        let outcome = match drift.repair {
            Repair::Alert { .. } => RepairOutcome::AlertOnly,
            _ => sources.repairs.repair(&drift).await,
        };
        drifts.push(Handled { drift, outcome });
    }
    Compared {
        result: Ok(SellerDay {
            seller: seller.to_owned(),
            day,
            local: u64::try_from(local.len()).unwrap_or(u64::MAX),
            remote: u64::try_from(remote.len()).unwrap_or(u64::MAX),
            in_agreement: comparison.in_agreement,
            drifts,
        }),
        page_retries,
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod resume_tests;
