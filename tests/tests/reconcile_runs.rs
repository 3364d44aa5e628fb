//! A reconciliation run's progress in the store, on SQLite and PostgreSQL: each compared
//! seller-day is kept once with its drifts, an incomplete run is queued again while attempts are
//! left and then fails, a finished run forgets its days, runs a stopped process left running are
//! taken up (or failed when their attempts are spent); and a running pass renews its lease and
//! notices when another process took it.

// The shared test bodies are plain functions called from generated #[tokio::test]s, so the
// test-only allowance of `unwrap` does not reach them.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use fapiao_services::clock::{Clock, ManualClock, china_day};
use fapiao_services::platform::TaxPlatform;
use fapiao_services::platform::client::{ClientConfig, HttpPlatform, credentials_from_parts};
use fapiao_services::reconciling::progress::LeaseKeeper;
use fapiao_services::reconciling::{LEASE, Passes, ReconcileConfig};
use fapiao_services::store::{
    AttemptEnd, DriftFilter, DriftWrite, InvoiceState, RunOutcome, SellerDayWrite,
};
use fapiao_tests::db::{self, TestDatabase};
use fapiao_tests::sample::DEMO_SELLER;

fapiao_tests::on_both_databases!(
    a_run_keeps_its_seller_days_until_it_is_finished_for_good,
    a_running_pass_renews_its_lease_and_notices_when_another_process_took_it,
);

const OTHER_SELLER: &str = "91440300MA5EXAMPLE";

fn drift(number: &str, seller: &str, at: chrono::DateTime<Utc>) -> DriftWrite {
    DriftWrite {
        invoice_number: number.to_owned(),
        seller_tax_id: seller.to_owned(),
        issued_at: at,
        class: "missing_on_platform".to_owned(),
        urgency: "none".to_owned(),
        detail: "issued locally but not recorded".to_owned(),
        repair: "\"reupload\"".to_owned(),
        outcome: "{\"outcome\":\"done\",\"detail\":\"queued\"}".to_owned(),
        repair_attempted: true,
        local_state: Some(InvoiceState::Recorded),
        platform_state: None,
    }
}

fn seller_day(
    seller: &str,
    day: chrono::NaiveDate,
    n: u64,
    drifts: Vec<DriftWrite>,
) -> SellerDayWrite {
    SellerDayWrite {
        seller_tax_id: seller.to_owned(),
        day,
        local: n,
        remote: n - 1,
        in_agreement: n - 1,
        repairs_attempted: 1,
        repairs_succeeded: 1,
        drifts,
    }
}

fn incomplete(attempts_allowed: u32) -> AttemptEnd {
    AttemptEnd {
        complete: false,
        error: Some("1 seller-day(s) could not be compared".to_owned()),
        gaps_json: "[]".to_owned(),
        attempts_allowed,
    }
}

async fn a_run_keeps_its_seller_days_until_it_is_finished_for_good(db: TestDatabase) {
    let store = db::open_store(&db.url).await;
    store.migrate().await.unwrap();
    let now = Utc::now();
    let day = china_day(now);
    let window = (now - TimeDelta::hours(1), now);
    let run = store
        .start_run("manual", "serve:a:1", false, window, now)
        .await
        .unwrap();
    let first = seller_day(
        DEMO_SELLER,
        day,
        10,
        vec![drift("26312000000000000001", DEMO_SELLER, now)],
    );
    store.keep_seller_day(run, &first, now).await.unwrap();
    // Kept again (another process compared it too): the day is counted once, its repairs twice.
    store.keep_seller_day(run, &first, now).await.unwrap();
    let second = seller_day(
        OTHER_SELLER,
        day,
        5,
        vec![drift("26442000000000000001", OTHER_SELLER, now)],
    );
    store.keep_seller_day(run, &second, now).await.unwrap();
    let mut done = store.done_seller_days(run).await.unwrap();
    done.sort_by(|a, b| a.seller_tax_id.cmp(&b.seller_tax_id));
    let compared: Vec<(String, u64)> = done
        .iter()
        .map(|d| (d.seller_tax_id.clone(), d.compared))
        .collect();
    assert_eq!(
        compared,
        [(DEMO_SELLER.to_owned(), 10), (OTHER_SELLER.to_owned(), 5)],
        "agreeing and drifting invoices"
    );
    assert!(done.iter().all(|d| d.day == day));
    // The drifts are recorded as soon as their day is kept, once per invoice and class.
    let open = DriftFilter {
        status: "open".to_owned(),
        ..DriftFilter::default()
    };
    let drifts = store
        .list_drifts(
            &fapiao_services::store::Scope::unrestricted(),
            &open,
            None,
            100,
        )
        .await
        .unwrap();
    assert_eq!(drifts.len(), 2);
    assert!(drifts.iter().all(|d| d.first_run_id == run));
    let attempts = |seller: &str| {
        drifts
            .iter()
            .find(|d| d.seller_tax_id == seller)
            .map(|d| d.repair_attempts)
    };
    assert_eq!(
        attempts(DEMO_SELLER),
        Some(2),
        "both comparisons repaired it"
    );
    assert_eq!(attempts(OTHER_SELLER), Some(1));

    // Incomplete with an attempt left: queued again, the totals so far on the run.
    let outcome = store
        .end_attempt(run, &incomplete(2), window, &[], now)
        .await
        .unwrap();
    assert_eq!(outcome, RunOutcome::Again);
    let queued = store
        .get_run(&fapiao_services::store::Scope::unrestricted(), run)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(queued.status, "queued");
    assert_eq!(queued.finished_at, None);
    assert_eq!(
        (queued.local, queued.in_agreement, queued.drifts),
        (15, 13, 2)
    );
    assert_eq!((queued.repairs_attempted, queued.repairs_succeeded), (2, 2));
    assert_eq!(
        queued.drifts_by_class.as_deref(),
        Some("{\"missing_on_platform\":2}")
    );
    let error = queued.error.unwrap();
    assert!(error.contains("attempt 1 of 2"), "{error}");
    assert_eq!(
        store.done_seller_days(run).await.unwrap().len(),
        2,
        "kept for the next attempt"
    );

    // The next attempt is the last one allowed: incomplete again, the run fails and forgets.
    assert!(store.begin_run(run, "serve:b:2", now).await.unwrap());
    assert!(
        !store.begin_run(run, "serve:c:3", now).await.unwrap(),
        "started once"
    );
    let outcome = store
        .end_attempt(run, &incomplete(2), window, &[], now)
        .await
        .unwrap();
    assert_eq!(outcome, RunOutcome::Failed);
    let failed = store
        .get_run(&fapiao_services::store::Scope::unrestricted(), run)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((failed.status.as_str(), failed.attempts), ("failed", 2));
    assert!(failed.finished_at.is_some());
    assert_eq!(failed.local, 15, "the totals stay on the run");
    assert!(store.done_seller_days(run).await.unwrap().is_empty());

    // Runs a stopped process left running: taken up while attempts are left, failed otherwise.
    let fresh = store
        .start_run("daily", "serve:gone:1", false, window, now)
        .await
        .unwrap();
    let spent = store
        .start_run("daily", "serve:gone:1", false, window, now)
        .await
        .unwrap();
    store
        .keep_seller_day(spent, &seller_day(DEMO_SELLER, day, 3, Vec::new()), now)
        .await
        .unwrap();
    for _ in 0..2 {
        let again = store
            .end_attempt(spent, &incomplete(3), window, &[], now)
            .await
            .unwrap();
        assert_eq!(again, RunOutcome::Again);
        assert!(store.begin_run(spent, "serve:gone:1", now).await.unwrap());
    }
    assert!(store.any_run_running().await.unwrap());
    let taken = store.take_up_abandoned_runs(3, now).await.unwrap();
    assert_eq!(taken, [fresh]);
    let fresh_run = store
        .get_run(&fapiao_services::store::Scope::unrestricted(), fresh)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fresh_run.status, "queued");
    assert!(fresh_run.error.unwrap().contains("interrupted"));
    let spent_run = store
        .get_run(&fapiao_services::store::Scope::unrestricted(), spent)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (spent_run.status.as_str(), spent_run.attempts),
        ("failed", 3)
    );
    assert!(store.done_seller_days(spent).await.unwrap().is_empty());
    assert!(!store.any_run_running().await.unwrap());
    store.close().await;
}

async fn a_running_pass_renews_its_lease_and_notices_when_another_process_took_it(
    db: TestDatabase,
) {
    let store = db::open_store(&db.url).await;
    store.migrate().await.unwrap();
    let clock = Arc::new(ManualClock::new(Utc::now()));
    // A platform nobody calls: the keeper only talks to the store.
    let credentials = credentials_from_parts(
        "test",
        "UNIT",
        "USER",
        Some(&"00112233445566778899aabbccddeeff".to_owned().into()),
        Some(&"a-signing-key-for-the-tests".to_owned().into()),
    )
    .unwrap();
    let platform: Arc<dyn TaxPlatform> = Arc::new(
        HttpPlatform::new(
            "http://127.0.0.1:9",
            credentials,
            Duration::from_secs(1),
            &ClientConfig::default().capability,
        )
        .unwrap(),
    );
    let config = ReconcileConfig {
        // Renewed every 100 ms of real time; expired by moving the manual clock.
        lease: Duration::from_millis(300),
        ..ReconcileConfig::default()
    };
    let passes = Passes {
        store: store.clone(),
        platform,
        clock: clock.clone(),
        config,
        sellers: vec![DEMO_SELLER.to_owned()],
        holder: "serve:a:1".to_owned(),
        metrics: None,
    };
    passes.take_lease().await.unwrap().unwrap();
    let keeper = LeaseKeeper::start(&passes);

    // Time passes on the clock: the keeper moves the lease's end with it.
    clock.advance(TimeDelta::seconds(10));
    let renewed_past = clock.now();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (holder, until) = lease_row(&db.url).await;
        if until > renewed_past {
            assert_eq!(holder, "serve:a:1");
            break;
        }
        assert!(Instant::now() < deadline, "the lease was not renewed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(keeper.lost_to(), None);

    // The process stalls past its lease and another takes it: the keeper notices.
    clock.advance(TimeDelta::seconds(10));
    let now = clock.now();
    store
        .take_lease(LEASE, "serve:b:2", now, now + TimeDelta::hours(1))
        .await
        .unwrap()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while keeper.lost_to().is_none() {
        assert!(Instant::now() < deadline, "the keeper did not notice");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(keeper.lost_to().as_deref(), Some("serve:b:2"));
    assert_eq!(
        lease_row(&db.url).await.0,
        "serve:b:2",
        "it never takes the lease back"
    );
    drop(keeper);
    store.close().await;
}

/// The reconciliation lease as stored: its holder and until when.
async fn lease_row(url: &str) -> (String, chrono::DateTime<Utc>) {
    let pool = db::raw_pool(url).await;
    let (holder, until): (String, i64) =
        sqlx::query_as("SELECT holder, until FROM leases WHERE name = $1")
            .bind(LEASE)
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    (
        holder,
        chrono::DateTime::from_timestamp_micros(until).unwrap(),
    )
}
