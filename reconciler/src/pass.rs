//! One reconciliation pass: `reconcile(window) -> Report`.
//!
//! For every seller the [`Ledger`] names, and every China-time day the window touches, the pass
//! reads the local invoices issued in that part of the window and the platform's listing of that
//! day (keeping only rows issued inside the window), compares them with [`diff::compare`], and
//! hands each drift whose plan is a repair to [`Repairs`]. Drifts whose plan is an alert are
//! reported, never repaired.
//!
//! A day whose listing cannot be read completely is not compared at all: comparing against part of
//! a listing would call every unlisted invoice "missing on platform" and re-upload it. The day is
//! reported as an error and the pass as incomplete, so the next pass covers it.
//!
//! It owns the order of work and the report. It must not decide drift classes (that is `diff`),
//! read the clock (`now` is passed in; the caller stamps when the pass finished), or talk to SQL
//! or HTTP (the traits are implemented by the service). Work is one day of one seller at a time,
//! so memory follows the busiest seller-day, not the window.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;

use chrono::{DateTime, Days, FixedOffset, NaiveDate, NaiveTime, Offset, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::diff::{self, Drift, DriftClass, LocalInvoice, PlatformInvoice, Repair, Settings};

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

/// The platform side: its listing of a seller's day, every page.
pub trait Listing: Sync {
    fn list_day(
        &self,
        seller: &str,
        day: NaiveDate,
    ) -> impl Future<Output = Result<Vec<PlatformInvoice>, SourceError>> + Send;
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

/// The result of one pass.
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
}

impl Report {
    /// Every seller-day of the window was compared.
    pub fn complete(&self) -> bool {
        self.gaps.is_empty()
    }

    /// Drifts found, by class code.
    pub fn by_class(&self) -> BTreeMap<&'static str, u64> {
        let mut counts = BTreeMap::new();
        for handled in &self.drifts {
            *counts.entry(handled.drift.class.as_str()).or_insert(0) += 1;
        }
        counts
    }

    /// Drifts of `class`.
    pub fn count(&self, class: DriftClass) -> usize {
        self.drifts
            .iter()
            .filter(|h| h.drift.class == class)
            .count()
    }
}

/// How far a pass has come, for progress bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Seller-days done, of `total`.
    pub done: u64,
    pub total: u64,
    /// Invoices compared so far (local and remote numbers, each once).
    pub compared: u64,
}

/// Run one pass over `window`. `progress` is called after each seller-day.
pub async fn reconcile<L: Ledger, P: Listing, R: Repairs>(
    window: Window,
    ledger: &L,
    platform: &P,
    repairs: &R,
    settings: &Settings,
    now: DateTime<Utc>,
    progress: &(dyn Fn(Progress) + Sync),
) -> Report {
    let mut report = Report {
        window,
        started_at: now,
        local: 0,
        remote: 0,
        in_agreement: 0,
        drifts: Vec::new(),
        gaps: Vec::new(),
    };
    let sellers = match ledger.sellers().await {
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
    let days = window.days();
    let mut state = Progress {
        done: 0,
        total: u64::try_from(sellers.len().saturating_mul(days.len())).unwrap_or(u64::MAX),
        compared: 0,
    };
    for seller in &sellers {
        for (day, part) in &days {
            let compared =
                seller_day(seller, *day, part, ledger, platform, repairs, settings, now).await;
            match compared {
                Ok(day_report) => {
                    report.local += day_report.local;
                    report.remote += day_report.remote;
                    report.in_agreement += day_report.in_agreement;
                    state.compared += day_report.in_agreement
                        + u64::try_from(day_report.drifts.len()).unwrap_or(u64::MAX);
                    report.drifts.extend(day_report.drifts);
                }
                Err(error) => report.gaps.push(Gap {
                    seller: seller.clone(),
                    day: Some(*day),
                    error: error.0,
                }),
            }
            state.done += 1;
            progress(state);
        }
    }
    report
}

/// What one seller-day gave.
struct DayReport {
    local: u64,
    remote: u64,
    in_agreement: u64,
    drifts: Vec<Handled>,
}

#[allow(clippy::too_many_arguments)]
async fn seller_day<L: Ledger, P: Listing, R: Repairs>(
    seller: &str,
    day: NaiveDate,
    part: &Window,
    ledger: &L,
    platform: &P,
    repairs: &R,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<DayReport, SourceError> {
    let local = ledger
        .local_invoices(seller, part)
        .await
        .map_err(|e| SourceError(format!("local invoices: {e}")))?;
    let mut remote = platform
        .list_day(seller, day)
        .await
        .map_err(|e| SourceError(format!("platform listing: {e}")))?;
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
        ledger
            .known_requests(seller, &strangers)
            .await
            .map_err(|e| SourceError(format!("known requests: {e}")))?
    };
    let is_known = |_: &str, request_id: &str| known.contains(request_id);
    let comparison = diff::compare(&local, &remote, &is_known, settings, now);

    let mut drifts = Vec::with_capacity(comparison.drifts.len());
    for drift in comparison.drifts {
        let outcome = match drift.repair {
            Repair::Alert { .. } => RepairOutcome::AlertOnly,
            _ => repairs.repair(&drift).await,
        };
        drifts.push(Handled { drift, outcome });
    }
    Ok(DayReport {
        local: u64::try_from(local.len()).unwrap_or(u64::MAX),
        remote: u64::try_from(remote.len()).unwrap_or(u64::MAX),
        in_agreement: comparison.in_agreement,
        drifts,
    })
}

#[cfg(test)]
mod tests;
