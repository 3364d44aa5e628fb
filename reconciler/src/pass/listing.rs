//! Reading the platform's listing of one seller-day, page by page, through a platform that
//! sometimes does not answer.
//!
//! A page that fails for a passing reason (no answer in time, "busy", a broken connection) is
//! asked for again after a back-off, up to a bounded number of attempts; the pages already read
//! are kept, so only the failed page is read again. A definitive refusal is not retried. When a
//! page's attempts are spent the day cannot be read completely and the caller makes it a gap.
//!
//! It owns the retry schedule and the page loop. It must not sleep by itself: every wait goes
//! through [`Pause`], which the service implements with its timer and tests with a recorder, so
//! the schedule is tested without waiting.

use std::future::Future;

use chrono::{NaiveDate, TimeDelta};

use crate::diff::PlatformInvoice;

/// One page of the platform's listing of a seller's day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedPage {
    pub rows: Vec<PlatformInvoice>,
    /// The page to ask for next; `None` on the last page.
    pub next_page: Option<u32>,
}

/// Why a page of the listing could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// No answer in time, "busy", or the connection failed: the same page may be read later.
    #[error("{0}")]
    Passing(String),
    /// The platform refused the request: asking again will not help.
    #[error("{0}")]
    Refused(String),
}

/// The platform side: its listing of a seller's day, one page at a time.
pub trait Listing: Sync {
    /// Page `page` (from 0) of the seller's invoices issued on `day` (China time).
    fn list_page(
        &self,
        seller: &str,
        day: NaiveDate,
        page: u32,
    ) -> impl Future<Output = Result<ListedPage, PageError>> + Send;
}

/// Waits between attempts; the service waits on its timer, tests only note the wait.
pub trait Pause: Sync {
    fn pause(&self, wait: TimeDelta) -> impl Future<Output = ()> + Send;
}

/// How a page that failed for a passing reason is asked for again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// Attempts per page, the first included; at least one is always made.
    pub attempts: u32,
    /// The waits before the 1st, 2nd, … retry of a page; the last repeats. Empty: no wait.
    pub backoff: Vec<TimeDelta>,
}

impl Default for Retry {
    /// Eight attempts, waiting 1 s, 2 s, 5 s, 10 s, then 30 s: a page fails for good only when
    /// the platform has failed it for about two minutes.
    fn default() -> Self {
        Self {
            attempts: 8,
            backoff: [1, 2, 5, 10, 30]
                .into_iter()
                .map(TimeDelta::seconds)
                .collect(),
        }
    }
}

impl Retry {
    /// The wait before retry number `retry` (1-based).
    pub fn wait_before(&self, retry: u32) -> TimeDelta {
        let index = usize::try_from(retry.saturating_sub(1)).unwrap_or(usize::MAX);
        self.backoff
            .get(index)
            .or(self.backoff.last())
            .copied()
            .unwrap_or(TimeDelta::zero())
    }
}

/// A seller-day's whole listing, and how many page reads were retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReadDay {
    pub rows: Vec<PlatformInvoice>,
    pub retries: u64,
}

/// Why a seller-day's listing could not be read completely, and the retries made on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unread {
    pub error: String,
    pub retries: u64,
}

/// Every page of the seller's day, each failed page asked for again as `retry` says.
pub(crate) async fn read_day<P: Listing, W: Pause>(
    listing: &P,
    pause: &W,
    retry: &Retry,
    seller: &str,
    day: NaiveDate,
) -> Result<ReadDay, Unread> {
    let mut rows = Vec::new();
    let mut retries = 0u64;
    let mut page = Some(0u32);
    while let Some(index) = page {
        let mut attempt = 1u32;
        let listed = loop {
            match listing.list_page(seller, day, index).await {
                Ok(listed) => break listed,
                Err(PageError::Refused(why)) => {
                    return Err(Unread {
                        error: format!("listing page {index}: {why}"),
                        retries,
                    });
                }
                Err(PageError::Passing(why)) if attempt >= retry.attempts => {
                    return Err(Unread {
                        error: format!(
                            "listing page {index}: {why}; gave up after {attempt} attempt(s)"
                        ),
                        retries,
                    });
                }
                Err(PageError::Passing(_)) => {
                    pause.pause(retry.wait_before(attempt)).await;
                    attempt += 1;
                    retries += 1;
                }
            }
        };
        rows.extend(listed.rows);
        // A next page that does not move forward would loop for ever: the listing ends there.
        page = listed.next_page.filter(|next| *next > index);
    }
    Ok(ReadDay { rows, retries })
}
