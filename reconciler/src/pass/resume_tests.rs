//! Behaviour of `pass` through a flaky listing and across attempts of one run: failed pages are
//! read again after the back-off, a day whose retries are spent is a gap, and the seller-days an
//! earlier attempt kept are skipped.

use super::tests::{A, B, listed, local, noon};
use super::*;
use crate::diff::{LocalState, PlatformInvoice};
use chrono::TimeDelta;
use fapiao_invoice::number::InvoiceNumber;
use std::sync::Mutex;

/// A page of a seller's day.
type PageKey = (String, NaiveDate, u32);

/// A seller's (A and B) invoices and the platform's listing of them, in pages of `page_size`,
/// with pages that fail a given number of times.
struct Paged {
    local: Vec<LocalInvoice>,
    remote: Vec<PlatformInvoice>,
    page_size: usize,
    /// (seller, day, page) → how many more calls fail, and with what.
    failures: Mutex<HashMap<PageKey, (u32, PageError)>>,
    calls: Mutex<Vec<PageKey>>,
    local_reads: Mutex<Vec<String>>,
    repaired: Mutex<Vec<InvoiceNumber>>,
}

impl Paged {
    /// Five recorded invoices of each seller on each of `days`, all listed by the platform.
    fn new(days: &[DateTime<Utc>]) -> Self {
        let mut local_invoices = Vec::new();
        let mut sequence = 0;
        for at in days {
            for seller in [A, B] {
                for minute in 0..5 {
                    sequence += 1;
                    let issued = *at + TimeDelta::minutes(minute);
                    local_invoices.push(local(seller, sequence, LocalState::Recorded, issued));
                }
            }
        }
        Self {
            remote: local_invoices.iter().map(listed).collect(),
            local: local_invoices,
            page_size: 2,
            failures: Mutex::new(HashMap::new()),
            calls: Mutex::new(Vec::new()),
            local_reads: Mutex::new(Vec::new()),
            repaired: Mutex::new(Vec::new()),
        }
    }

    fn fail(&self, seller: &str, day: NaiveDate, page: u32, times: u32, error: PageError) {
        self.failures
            .lock()
            .unwrap()
            .insert((seller.to_owned(), day, page), (times, error));
    }

    fn calls_of(&self, seller: &str, day: NaiveDate) -> Vec<u32> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, d, _)| s == seller && *d == day)
            .map(|(_, _, page)| *page)
            .collect()
    }
}

impl Ledger for Paged {
    async fn sellers(&self) -> Result<Vec<String>, SourceError> {
        Ok(vec![A.to_owned(), B.to_owned()])
    }

    async fn local_invoices(
        &self,
        seller: &str,
        window: &Window,
    ) -> Result<Vec<LocalInvoice>, SourceError> {
        self.local_reads.lock().unwrap().push(seller.to_owned());
        Ok(self
            .local
            .iter()
            .filter(|l| l.seller == seller && window.contains(l.issued_at))
            .cloned()
            .collect())
    }

    async fn known_requests(&self, _: &str, _: &[&str]) -> Result<HashSet<String>, SourceError> {
        Ok(HashSet::new())
    }
}

impl Listing for Paged {
    async fn list_page(
        &self,
        seller: &str,
        day: NaiveDate,
        page: u32,
    ) -> Result<ListedPage, PageError> {
        self.calls
            .lock()
            .unwrap()
            .push((seller.to_owned(), day, page));
        if let Some((left, error)) =
            self.failures
                .lock()
                .unwrap()
                .get_mut(&(seller.to_owned(), day, page))
            && *left > 0
        {
            *left -= 1;
            return Err(error.clone());
        }
        let rows: Vec<PlatformInvoice> = self
            .remote
            .iter()
            .filter(|r| {
                r.seller == seller && r.issued_at.with_timezone(&china()).date_naive() == day
            })
            .cloned()
            .collect();
        let start = usize::try_from(page).unwrap() * self.page_size;
        let end = (start + self.page_size).min(rows.len());
        Ok(ListedPage {
            rows: rows.get(start..end).unwrap_or_default().to_vec(),
            next_page: (end < rows.len()).then_some(page + 1),
        })
    }
}

impl Repairs for Paged {
    async fn repair(&self, drift: &Drift) -> RepairOutcome {
        self.repaired.lock().unwrap().push(drift.number);
        RepairOutcome::Done("queued".into())
    }
}

/// Notes every wait instead of waiting.
#[derive(Default)]
struct Waits(Mutex<Vec<TimeDelta>>);

impl Pause for Waits {
    async fn pause(&self, wait: TimeDelta) {
        self.0.lock().unwrap().push(wait);
    }
}

/// Keeps seller-days in memory, as the store keeps them for a run; fails the `fail_at`-th day
/// (0-based) when set.
#[derive(Default)]
struct Kept {
    days: Mutex<Vec<SellerDay>>,
    fail_at: Option<usize>,
}

impl Checkpoints for Kept {
    async fn done_days(&self) -> Result<Vec<DoneDay>, SourceError> {
        Ok(self
            .days
            .lock()
            .unwrap()
            .iter()
            .map(|d| DoneDay {
                seller: d.seller.clone(),
                day: d.day,
                compared: d.compared(),
            })
            .collect())
    }

    async fn day_done(&self, day: &SellerDay) -> Result<(), SourceError> {
        let mut days = self.days.lock().unwrap();
        if self.fail_at == Some(days.len()) {
            return Err(SourceError("the lease is held by serve:other:7".into()));
        }
        days.push(day.clone());
        Ok(())
    }
}

fn day_of(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&china()).date_naive()
}

/// Today and tomorrow around noon, China time.
fn two_days() -> (DateTime<Utc>, DateTime<Utc>, Window) {
    let first = noon();
    let second = noon() + TimeDelta::hours(24);
    let window = Window {
        from: first - TimeDelta::hours(1),
        to: second + TimeDelta::hours(1),
    };
    (first, second, window)
}

fn attempt(
    paged: &Paged,
    kept: &Kept,
    waits: &Waits,
    retry: Retry,
    window: Window,
) -> (Report, Vec<Progress>) {
    let seen = Mutex::new(Vec::new());
    let sources = Sources {
        ledger: paged,
        listing: paged,
        repairs: paged,
        checkpoints: kept,
        pause: waits,
    };
    let rules = Rules {
        diff: Settings::default(),
        retry,
    };
    let report = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(reconcile(
            window,
            &sources,
            &rules,
            noon() + TimeDelta::hours(60),
            &|p| seen.lock().unwrap().push(p),
        ));
    (report, seen.into_inner().unwrap())
}

#[test]
fn the_back_off_follows_its_schedule_and_repeats_its_last_wait() {
    let retry = Retry::default();
    assert_eq!(retry.attempts, 8);
    let waits: Vec<i64> = (1..=7)
        .map(|n| retry.wait_before(n).num_seconds())
        .collect();
    assert_eq!(waits, [1, 2, 5, 10, 30, 30, 30]);
    let none = Retry {
        attempts: 3,
        backoff: Vec::new(),
    };
    assert_eq!(none.wait_before(2), TimeDelta::zero());
}

#[test]
fn a_page_that_fails_for_a_passing_reason_is_read_again_and_the_pages_before_it_are_kept() {
    let (first, _, _) = two_days();
    let window = Window {
        from: first - TimeDelta::hours(1),
        to: first + TimeDelta::hours(1),
    };
    let paged = Paged::new(&[first]);
    let day = day_of(first);
    // Five invoices a seller, two a page: pages 0, 1 and 2; the middle one fails three times.
    paged.fail(A, day, 1, 3, PageError::Passing("busy".into()));
    let (kept, waits) = (Kept::default(), Waits::default());
    let (report, _) = attempt(&paged, &kept, &waits, Retry::default(), window);

    assert!(report.complete(), "{:?}", report.gaps);
    assert_eq!(
        (report.local, report.remote, report.in_agreement),
        (10, 10, 10)
    );
    assert!(report.drifts.is_empty(), "{:?}", report.drifts);
    assert_eq!(
        paged.calls_of(A, day),
        [0, 1, 1, 1, 1, 2],
        "only the failed page is asked for again"
    );
    assert_eq!(report.page_retries, 3);
    let waited: Vec<i64> = waits
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|w| w.num_seconds())
        .collect();
    assert_eq!(waited, [1, 2, 5], "the back-off schedule, in order");
}

#[test]
fn a_day_whose_retries_are_spent_is_a_gap_and_nothing_of_it_is_repaired() {
    let (first, second, window) = two_days();
    let paged = Paged::new(&[first, second]);
    let broken = day_of(first);
    paged.fail(
        A,
        broken,
        2,
        u32::MAX,
        PageError::Passing("no answer in time".into()),
    );
    let (kept, waits) = (Kept::default(), Waits::default());
    let retry = Retry {
        attempts: 4,
        backoff: vec![TimeDelta::milliseconds(10)],
    };
    let (report, progress) = attempt(&paged, &kept, &waits, retry, window);

    assert!(!report.complete());
    assert_eq!(report.gaps.len(), 1, "{:?}", report.gaps);
    assert_eq!(report.gaps[0].seller, A);
    assert_eq!(report.gaps[0].day, Some(broken));
    assert!(
        report.gaps[0]
            .error
            .contains("listing page 2: no answer in time; gave up after 4 attempt(s)"),
        "{}",
        report.gaps[0].error
    );
    assert_eq!(paged.calls_of(A, broken), [0, 1, 2, 2, 2, 2]);
    assert_eq!(waits.0.lock().unwrap().len(), 3, "a wait before each retry");
    assert!(
        paged.repaired.lock().unwrap().is_empty(),
        "an unread day's invoices are not 'missing on platform'"
    );
    // The other three seller-days are compared and kept; the gap is not.
    assert_eq!(report.in_agreement, 15);
    let kept_days: Vec<(String, NaiveDate)> = kept
        .days
        .lock()
        .unwrap()
        .iter()
        .map(|d| (d.seller.clone(), d.day))
        .collect();
    assert_eq!(kept_days.len(), 3);
    assert!(!kept_days.contains(&(A.to_owned(), broken)));
    assert_eq!(progress.last().map(|p| (p.done, p.total)), Some((4, 4)));
}

#[test]
fn a_refusal_is_not_asked_again() {
    let (first, _, _) = two_days();
    let window = Window {
        from: first - TimeDelta::hours(1),
        to: first + TimeDelta::hours(1),
    };
    let paged = Paged::new(&[first]);
    let day = day_of(first);
    paged.fail(B, day, 0, 1, PageError::Refused("unknown seller".into()));
    let (kept, waits) = (Kept::default(), Waits::default());
    let (report, _) = attempt(&paged, &kept, &waits, Retry::default(), window);
    assert_eq!(report.gaps.len(), 1);
    assert_eq!(
        report.gaps[0].error,
        "platform listing: listing page 0: unknown seller"
    );
    assert_eq!(paged.calls_of(B, day), [0]);
    assert!(waits.0.lock().unwrap().is_empty());
    assert_eq!(report.page_retries, 0);
}

#[test]
fn the_next_attempt_of_a_run_compares_only_the_seller_days_not_done() {
    let (first, second, window) = two_days();
    let paged = Paged::new(&[first, second]);
    let broken = day_of(first);
    paged.fail(B, broken, 0, 8, PageError::Passing("busy".into()));
    let (kept, waits) = (Kept::default(), Waits::default());
    let (report, _) = attempt(&paged, &kept, &waits, Retry::default(), window);
    assert_eq!(
        report.gaps.len(),
        1,
        "B's first day: eight attempts, all busy"
    );
    assert_eq!(kept.days.lock().unwrap().len(), 3);

    // The platform recovers; the run's next attempt reads B's first day and nothing else.
    paged.calls.lock().unwrap().clear();
    paged.local_reads.lock().unwrap().clear();
    let (again, progress) = attempt(&paged, &kept, &waits, Retry::default(), window);
    assert!(again.complete(), "{:?}", again.gaps);
    assert_eq!(again.resumed, 3);
    assert_eq!((again.local, again.in_agreement), (5, 5), "one seller-day");
    let listed: HashSet<(String, NaiveDate)> = paged
        .calls
        .lock()
        .unwrap()
        .iter()
        .map(|(s, d, _)| (s.clone(), *d))
        .collect();
    assert_eq!(listed, HashSet::from([(B.to_owned(), broken)]));
    assert_eq!(*paged.local_reads.lock().unwrap(), [B]);
    // Progress counts the skipped days as done, with what they compared.
    let seen: Vec<(u64, u64)> = progress.iter().map(|p| (p.done, p.compared)).collect();
    assert_eq!(seen, [(1, 5), (2, 10), (3, 15), (4, 20)]);
    assert_eq!(kept.days.lock().unwrap().len(), 4);
}

#[test]
fn a_pass_that_cannot_keep_a_seller_day_stops_there() {
    let (first, second, window) = two_days();
    let paged = Paged::new(&[first, second]);
    let kept = Kept {
        fail_at: Some(1),
        ..Kept::default()
    };
    let (report, progress) = attempt(&paged, &kept, &Waits::default(), Retry::default(), window);
    assert!(!report.complete());
    assert!(report.gaps.is_empty(), "the days not reached are no gaps");
    let stopped = report.stopped.clone().unwrap();
    assert!(stopped.contains("serve:other:7"), "{stopped}");
    assert!(stopped.contains(A), "{stopped}");
    assert_eq!(
        *paged.local_reads.lock().unwrap(),
        [A, A],
        "two days read, none after"
    );
    assert_eq!(
        report.in_agreement, 10,
        "what it compared is still reported"
    );
    assert_eq!(progress.len(), 1);
}

#[test]
fn a_run_whose_progress_cannot_be_read_compares_nothing() {
    struct Unreadable;
    impl Checkpoints for Unreadable {
        async fn done_days(&self) -> Result<Vec<DoneDay>, SourceError> {
            Err(SourceError("database is locked".into()))
        }
        async fn day_done(&self, _: &SellerDay) -> Result<(), SourceError> {
            Ok(())
        }
    }
    let (first, _, window) = two_days();
    let paged = Paged::new(&[first]);
    let sources = Sources {
        ledger: &paged,
        listing: &paged,
        repairs: &paged,
        checkpoints: &Unreadable,
        pause: &Waits::default(),
    };
    let report = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(reconcile(
            window,
            &sources,
            &Rules::default(),
            noon(),
            &|_| {},
        ));
    assert!(!report.complete());
    assert!(report.stopped.unwrap().contains("database is locked"));
    assert!(paged.calls.lock().unwrap().is_empty());
}
