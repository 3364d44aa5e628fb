//! Behaviour of `pass`, over in-memory sources.

use super::*;
use crate::diff::{LocalState, PlatformInvoice, PlatformState};
use fapiao_invoice::model::Colour;
use fapiao_invoice::number::InvoiceNumber;
use rust_decimal::Decimal;
use std::sync::Mutex;

pub(super) const A: &str = "91440300MA5EXAMPLE";
pub(super) const B: &str = "91310000MA1FP00011";

/// 2025-06-15 12:00 China time.
pub(super) fn noon() -> DateTime<Utc> {
    day_start(NaiveDate::from_ymd_opt(2025, 6, 15).unwrap()) + chrono::Duration::hours(12)
}

pub(super) fn local(
    seller: &str,
    sequence: u64,
    state: LocalState,
    issued_at: DateTime<Utc>,
) -> LocalInvoice {
    LocalInvoice {
        number: InvoiceNumber::new(25, 44, 2, sequence).unwrap(),
        seller: seller.to_owned(),
        request_id: format!("req-{sequence}"),
        issued_at,
        colour: Colour::Blue,
        state,
        state_since: issued_at,
        buyer_name: "某某科技有限公司".to_owned(),
        buyer_tax_id: None,
        amount: Decimal::new(10000, 2),
        tax: Decimal::new(1300, 2),
        content_sm3: format!("{sequence:064x}"),
        reconcile_attempts: 0,
    }
}

pub(super) fn listed(invoice: &LocalInvoice) -> PlatformInvoice {
    PlatformInvoice {
        number: invoice.number,
        seller: invoice.seller.clone(),
        request_id: invoice.request_id.clone(),
        issued_at: invoice.issued_at,
        colour: invoice.colour,
        state: PlatformState::Normal,
        buyer_name: invoice.buyer_name.clone(),
        buyer_tax_id: invoice.buyer_tax_id.clone(),
        amount: invoice.amount,
        tax: invoice.tax,
        content_sm3: invoice.content_sm3.clone(),
    }
}

#[derive(Default)]
struct Fake {
    local: Vec<LocalInvoice>,
    remote: Vec<PlatformInvoice>,
    known: HashSet<String>,
    broken_days: HashSet<(String, NaiveDate)>,
    repaired: Mutex<Vec<(InvoiceNumber, Repair)>>,
    listed_days: Mutex<Vec<(String, NaiveDate)>>,
}

impl Ledger for Fake {
    async fn sellers(&self) -> Result<Vec<String>, SourceError> {
        Ok(vec![A.to_owned(), B.to_owned()])
    }

    async fn local_invoices(
        &self,
        seller: &str,
        window: &Window,
    ) -> Result<Vec<LocalInvoice>, SourceError> {
        Ok(self
            .local
            .iter()
            .filter(|l| l.seller == seller && window.contains(l.issued_at))
            .cloned()
            .collect())
    }

    async fn known_requests(
        &self,
        _seller: &str,
        request_ids: &[&str],
    ) -> Result<HashSet<String>, SourceError> {
        Ok(request_ids
            .iter()
            .filter(|id| self.known.contains(**id))
            .map(|id| (*id).to_owned())
            .collect())
    }
}

impl Listing for Fake {
    async fn list_page(
        &self,
        seller: &str,
        day: NaiveDate,
        page: u32,
    ) -> Result<ListedPage, PageError> {
        self.listed_days
            .lock()
            .unwrap()
            .push((seller.to_owned(), day));
        if self.broken_days.contains(&(seller.to_owned(), day)) {
            return Err(PageError::Refused("system busy".into()));
        }
        assert_eq!(page, 0, "the whole day fits on one page");
        Ok(ListedPage {
            rows: self
                .remote
                .iter()
                .filter(|r| {
                    r.seller == seller && r.issued_at.with_timezone(&china()).date_naive() == day
                })
                .cloned()
                .collect(),
            next_page: None,
        })
    }
}

/// Waits that take no time.
pub(super) struct NoWait;

impl Pause for NoWait {
    async fn pause(&self, _: chrono::TimeDelta) {}
}

impl Repairs for Fake {
    async fn repair(&self, drift: &Drift) -> RepairOutcome {
        self.repaired
            .lock()
            .unwrap()
            .push((drift.number, drift.repair));
        RepairOutcome::Done("queued".into())
    }
}

fn run(fake: &Fake, window: Window) -> (Report, Vec<Progress>) {
    let seen = Mutex::new(Vec::new());
    let sources = Sources {
        ledger: fake,
        listing: fake,
        repairs: fake,
        checkpoints: &NoCheckpoints,
        pause: &NoWait,
    };
    let report = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(reconcile(
            window,
            &sources,
            &Rules::default(),
            noon() + chrono::Duration::hours(30),
            &|p| seen.lock().unwrap().push(p),
        ));
    (report, seen.into_inner().unwrap())
}

#[test]
fn a_window_is_split_at_china_midnight() {
    let day = NaiveDate::from_ymd_opt(2025, 6, 15).unwrap();
    let next = day.succ_opt().unwrap();
    let window = Window {
        from: noon(),
        to: noon() + chrono::Duration::hours(24),
    };
    let days = window.days();
    assert_eq!(days.len(), 2);
    assert_eq!(days[0].0, day);
    assert_eq!(
        days[0].1,
        Window {
            from: noon(),
            to: day_start(next)
        }
    );
    assert_eq!(days[1].0, next);
    assert_eq!(
        days[1].1,
        Window {
            from: day_start(next),
            to: window.to
        }
    );
    assert_eq!(day_start(day).to_rfc3339(), "2025-06-14T16:00:00+00:00");

    let inside = Window {
        from: noon(),
        to: noon() + chrono::Duration::minutes(5),
    };
    assert_eq!(inside.days(), vec![(day, inside)]);
    let empty = Window {
        from: noon(),
        to: noon(),
    };
    assert!(empty.days().is_empty());
    let backwards = Window {
        from: window.to,
        to: window.from,
    };
    assert!(backwards.days().is_empty());
}

#[test]
fn drifts_are_repaired_or_only_reported_as_planned() {
    let at = noon();
    let recorded = local(A, 1, LocalState::Recorded, at);
    let lost = local(A, 2, LocalState::Recorded, at);
    let changed = local(A, 3, LocalState::Recorded, at);
    let agreeing_b = local(B, 4, LocalState::Recorded, at);
    let mut fake = Fake::default();
    fake.remote.push(listed(&recorded));
    let mut tampered = listed(&changed);
    tampered.amount = Decimal::new(9000, 2);
    fake.remote.push(tampered);
    fake.remote.push(listed(&agreeing_b));
    let mut adoptable = listed(&local(A, 5, LocalState::Recorded, at));
    adoptable.request_id = "red-confirmation-7".into();
    fake.known.insert("red-confirmation-7".into());
    let stranger = listed(&local(A, 6, LocalState::Recorded, at));
    fake.remote.extend([adoptable.clone(), stranger.clone()]);
    fake.local = vec![recorded, lost.clone(), changed.clone(), agreeing_b];

    let window = Window {
        from: at - chrono::Duration::hours(1),
        to: at + chrono::Duration::hours(1),
    };
    let (report, progress) = run(&fake, window);
    assert!(report.complete(), "{:?}", report.gaps);
    assert_eq!((report.local, report.remote), (4, 5));
    assert_eq!(report.in_agreement, 2, "A's first invoice and B's");
    assert_eq!(report.count(DriftClass::MissingOnPlatform), 1);
    assert_eq!(report.count(DriftClass::ContentMismatch), 1);
    assert_eq!(report.count(DriftClass::RemoteOnly), 2);

    let repaired = fake.repaired.lock().unwrap().clone();
    assert_eq!(
        repaired,
        vec![
            (lost.number, Repair::Reupload),
            (adoptable.number, Repair::AdoptRemote),
        ],
        "alerts are never handed to repairs"
    );
    let outcome_of = |number: InvoiceNumber| {
        report
            .drifts
            .iter()
            .find(|h| h.drift.number == number)
            .map(|h| h.outcome.clone())
            .unwrap()
    };
    assert_eq!(outcome_of(changed.number), RepairOutcome::AlertOnly);
    assert_eq!(outcome_of(stranger.number), RepairOutcome::AlertOnly);
    assert_eq!(
        outcome_of(lost.number),
        RepairOutcome::Done("queued".into())
    );
    assert_eq!(report.by_class().get("remote_only"), Some(&2));

    assert_eq!(progress.len(), 2, "one seller-day each");
    assert_eq!(progress.last().unwrap().done, 2);
    assert_eq!(progress.last().unwrap().total, 2);
    assert_eq!(progress.last().unwrap().compared, 6);
}

#[test]
fn a_day_whose_listing_fails_is_a_gap_and_nothing_of_it_is_repaired() {
    let day_one = noon();
    let day_two = noon() + chrono::Duration::hours(24);
    // Both recorded locally, neither listed: each would be "missing on platform".
    let mut fake = Fake {
        local: vec![
            local(A, 1, LocalState::Recorded, day_one),
            local(A, 2, LocalState::Recorded, day_two),
        ],
        ..Fake::default()
    };
    let broken = day_one.with_timezone(&china()).date_naive();
    fake.broken_days.insert((A.to_owned(), broken));
    let window = Window {
        from: day_one - chrono::Duration::hours(1),
        to: day_two + chrono::Duration::hours(1),
    };
    let (report, _) = run(&fake, window);
    assert!(!report.complete());
    assert_eq!(report.gaps.len(), 1);
    assert_eq!(report.gaps[0].day, Some(broken));
    assert!(
        report.gaps[0].error.contains("listing page 0: system busy"),
        "{:?}",
        report.gaps
    );
    let repaired = fake.repaired.lock().unwrap().clone();
    assert_eq!(repaired.len(), 1, "only the day that was listed");
    assert_eq!(repaired[0].0, fake.local[1].number);
    let listed = fake.listed_days.lock().unwrap().len();
    assert_eq!(listed, 4, "two sellers × two days, the broken one included");
}

#[test]
fn platform_rows_outside_the_window_are_not_remote_only() {
    let at = noon();
    let mut fake = Fake::default();
    let early = local(A, 1, LocalState::Recorded, at - chrono::Duration::hours(3));
    fake.remote.push(listed(&early));
    let window = Window {
        from: at - chrono::Duration::hours(1),
        to: at + chrono::Duration::hours(1),
    };
    let (report, _) = run(&fake, window);
    assert_eq!(report.remote, 0);
    assert!(report.drifts.is_empty(), "{:?}", report.drifts);
}

#[test]
fn a_pass_without_sellers_reports_why() {
    struct NoSellers;
    impl Ledger for NoSellers {
        async fn sellers(&self) -> Result<Vec<String>, SourceError> {
            Err(SourceError("database is locked".into()))
        }
        async fn local_invoices(
            &self,
            _: &str,
            _: &Window,
        ) -> Result<Vec<LocalInvoice>, SourceError> {
            Ok(Vec::new())
        }
        async fn known_requests(
            &self,
            _: &str,
            _: &[&str],
        ) -> Result<HashSet<String>, SourceError> {
            Ok(HashSet::new())
        }
    }
    let fake = Fake::default();
    let window = Window {
        from: noon(),
        to: noon() + chrono::Duration::hours(1),
    };
    let report = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(reconcile(
            window,
            &Sources {
                ledger: &NoSellers,
                listing: &fake,
                repairs: &fake,
                checkpoints: &NoCheckpoints,
                pause: &NoWait,
            },
            &Rules::default(),
            noon(),
            &|_| {},
        ));
    assert!(!report.complete());
    assert!(report.gaps[0].error.contains("database is locked"));
    assert!(fake.listed_days.lock().unwrap().is_empty());
}
