//! The store's contract, run against SQLite and PostgreSQL alike: numbers from ranges (never one
//! twice), quota debits, idempotency by seller and request id (also under concurrency), events in
//! order, the upload queue, listing, and quota downloads counted once.

// The shared test bodies are plain functions called from generated #[tokio::test]s, so the
// test-only allowance of `unwrap` does not reach them.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, TimeZone, Utc};
use fapiao_invoice::number::InvoiceNumber;
use fapiao_invoice::taxpayer::TaxpayerId;
use fapiao_services::issuance::{content_digest, quota_fen};
use fapiao_services::platform::NumberRange;
use fapiao_services::store::{
    AttemptNote, InvoiceFilter, InvoiceState, IssueItem, IssueOutcome, PendingDownload, Scope,
    Store, StoreOptions, UploadPhase, UploadUpdate,
};
use fapiao_tests::db::{self, TestDatabase};
use fapiao_tests::sample;
use std::collections::HashSet;
use std::time::Duration;

const SELLER: &str = sample::DEMO_SELLER;
const OTHER_SELLER: &str = "91350100M000100Y43";

fn seller(id: &str) -> TaxpayerId {
    TaxpayerId::parse(id).expect("a valid seller id")
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 2, 0, 0)
        .single()
        .expect("a time")
}

async fn open(db: &TestDatabase) -> Store {
    let store = Store::connect(&StoreOptions {
        url: db.url.clone(),
        max_connections: 8,
        acquire_timeout: Duration::from_secs(10),
        sqlite_cache_mib: fapiao_services::store::StoreOptions::SQLITE_CACHE_MIB,
    })
    .await
    .expect("connecting");
    store.migrate().await.expect("migrating");
    store
}

fn item(seller_id: &str, request_id: &str, amount: &str) -> IssueItem {
    let content = sample::content(seller_id, request_id, amount);
    IssueItem {
        seller_tax_id: seller_id.into(),
        request_id: request_id.into(),
        content_sm3: content_digest(&content),
        quota_fen: quota_fen(&content),
        content,
        actor: "test".into(),
    }
}

fn range(first_seq: u64, last_seq: u64) -> NumberRange {
    NumberRange {
        first: InvoiceNumber::new(26, 31, 2, first_seq).expect("number"),
        last: InvoiceNumber::new(26, 31, 2, last_seq).expect("number"),
    }
}

/// Give the seller `numbers` numbers from sequence `from`, and `yuan` of quota.
async fn supply(store: &Store, seller_id: &str, from: u64, numbers: u64, yuan: i64) {
    let s = seller(seller_id);
    store
        .add_number_range(&s, &range(from, from + numbers - 1), t0())
        .await
        .expect("adding a range");
    let serial = format!("Q-{seller_id}-{from}");
    store
        .begin_quota_download(
            &s,
            &PendingDownload {
                serial: serial.clone(),
                asked_fen: yuan * 100,
            },
            t0(),
        )
        .await
        .expect("noting a download");
    store
        .complete_quota_download(&s, &serial, yuan * 100)
        .await
        .expect("completing a download");
}

fn issued(outcome: &IssueOutcome) -> InvoiceNumber {
    match outcome {
        IssueOutcome::Issued(inv) => inv.number,
        other => panic!("expected Issued, got {other:?}"),
    }
}

async fn migrations_apply_twice_and_start_empty(db: TestDatabase) {
    let store = open(&db).await;
    store
        .migrate()
        .await
        .expect("a second migration run is a no-op");
    assert!(store.count_by_state().await.unwrap().is_empty());
    assert_eq!(store.last_event_id().await.unwrap(), 0);
}

async fn numbers_come_from_ranges_in_order_and_run_out(db: TestDatabase) {
    let store = open(&db).await;
    let s = seller(SELLER);
    store
        .add_number_range(&s, &range(100, 101), t0())
        .await
        .unwrap();
    store
        .add_number_range(&s, &range(500, 500), t0())
        .await
        .unwrap();
    supply(&store, SELLER, 900, 1, 1_000_000).await;
    let items: Vec<IssueItem> = (0..5)
        .map(|i| item(SELLER, &format!("o-{i}"), "10.00"))
        .collect();
    let out = store.issue_batch(&items, t0()).await.unwrap();
    let sequences: Vec<u64> = out[..4].iter().map(|o| issued(o).sequence()).collect();
    assert_eq!(sequences, vec![100, 101, 500, 900]);
    assert_eq!(out[4], IssueOutcome::NumbersExhausted);
    let status = store.supply_status(&s).await.unwrap();
    assert_eq!(status.numbers_left, 0);
    // The exhausted item used no quota: 4 × 10.00 yuan debited.
    assert_eq!(status.quota_left_fen, 100_000_000 - 4_000);
    assert!(
        store
            .get_invoice(&Scope::unrestricted(), &issued(&out[0]))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .find_by_request(&Scope::unrestricted(), SELLER, "o-4")
            .await
            .unwrap()
            .is_none()
    );
}

async fn quota_is_debited_and_refuses_what_it_cannot_cover(db: TestDatabase) {
    let store = open(&db).await;
    supply(&store, SELLER, 1, 10, 100).await;
    let out = store
        .issue_batch(
            &[
                item(SELLER, "a", "60.00"),
                item(SELLER, "b", "50.00"),
                item(SELLER, "c", "40.00"),
            ],
            t0(),
        )
        .await
        .unwrap();
    issued(&out[0]);
    assert_eq!(out[1], IssueOutcome::QuotaExhausted);
    issued(&out[2]);
    let status = store.supply_status(&seller(SELLER)).await.unwrap();
    assert_eq!(status.quota_left_fen, 0);
    assert_eq!(status.numbers_left, 8, "a refused item takes no number");
}

async fn the_same_request_replays_and_different_content_conflicts(db: TestDatabase) {
    let store = open(&db).await;
    supply(&store, SELLER, 1, 10, 10_000).await;
    let first = store
        .issue_batch(&[item(SELLER, "r-1", "10.00")], t0())
        .await
        .unwrap();
    let number = issued(&first[0]);
    let again = store
        .issue_batch(
            &[
                item(SELLER, "r-1", "10.00"),
                item(SELLER, "r-1", "11.00"),
                item(OTHER_SELLER, "r-1", "10.00"),
            ],
            t0(),
        )
        .await
        .unwrap();
    assert!(matches!(&again[0], IssueOutcome::Replayed(inv) if inv.number == number));
    assert_eq!(again[1], IssueOutcome::Conflict { existing: number });
    // Another seller's request ids are its own; it has no quota (nor numbers) yet.
    assert_eq!(again[2], IssueOutcome::QuotaExhausted);
    // Within one batch the first of two identical items issues and the second replays it.
    let batch = store
        .issue_batch(
            &[
                item(SELLER, "r-2", "10.00"),
                item(SELLER, "r-2", "10.00"),
                item(SELLER, "r-2", "12.00"),
            ],
            t0(),
        )
        .await
        .unwrap();
    let second = issued(&batch[0]);
    assert!(matches!(&batch[1], IssueOutcome::Replayed(inv) if inv.number == second));
    assert_eq!(batch[2], IssueOutcome::Conflict { existing: second });
    assert_eq!(
        store
            .supply_status(&seller(SELLER))
            .await
            .unwrap()
            .numbers_left,
        8
    );
}

async fn concurrent_batches_issue_each_request_once_with_unique_numbers(db: TestDatabase) {
    let store = open(&db).await;
    supply(&store, SELLER, 1, 10_000, 1_000_000).await;
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut numbers = Vec::new();
            for round in 0..5 {
                // Every worker sends the same 40 request ids, in a different order.
                let items: Vec<IssueItem> = (0..40)
                    .map(|i| (i * 7 + worker * 3 + round) % 40)
                    .map(|i| item(SELLER, &format!("c-{i}"), "5.00"))
                    .collect();
                for o in store.issue_batch(&items, t0()).await.expect("a batch") {
                    match o {
                        IssueOutcome::Issued(inv) | IssueOutcome::Replayed(inv) => {
                            numbers.push((inv.request_id.clone(), inv.number));
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                }
            }
            numbers
        }));
    }
    let mut by_request = std::collections::HashMap::new();
    for task in tasks {
        for (request, number) in task.await.unwrap() {
            let seen = by_request.entry(request).or_insert(number);
            assert_eq!(*seen, number, "one request id, one number");
        }
    }
    assert_eq!(by_request.len(), 40);
    let distinct: HashSet<_> = by_request.values().collect();
    assert_eq!(distinct.len(), 40);
    let counts = store.count_by_state().await.unwrap();
    assert_eq!(counts, vec![(InvoiceState::Issued, 40)]);
    let status = store.supply_status(&seller(SELLER)).await.unwrap();
    assert_eq!(status.quota_left_fen, 100_000_000 - 40 * 500);
}

async fn events_follow_commit_order_and_filter_by_seller(db: TestDatabase) {
    let store = open(&db).await;
    supply(&store, SELLER, 1, 10, 10_000).await;
    supply(&store, OTHER_SELLER, 50, 10, 10_000).await;
    store
        .issue_batch(
            &[
                item(SELLER, "e-1", "1.00"),
                item(OTHER_SELLER, "e-2", "1.00"),
                item(SELLER, "e-3", "1.00"),
            ],
            t0(),
        )
        .await
        .unwrap();
    let all = store
        .events_after(&Scope::unrestricted(), 0, 100)
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    assert!(
        all.iter()
            .all(|e| e.state == InvoiceState::Issued && e.previous_state.is_none())
    );
    let mine = store
        .events_after(&Scope::sellers([SELLER]), 0, 100)
        .await
        .unwrap();
    assert_eq!(
        mine.iter()
            .map(|e| e.request_id.as_str())
            .collect::<Vec<_>>(),
        vec!["e-1", "e-3"]
    );
    let after_first = store
        .events_after(&Scope::unrestricted(), all[0].id, 100)
        .await
        .unwrap();
    assert_eq!(after_first.len(), 2);
    assert_eq!(store.last_event_id().await.unwrap(), all[2].id);
}

async fn the_upload_queue_claims_leases_and_records_progress(db: TestDatabase) {
    let store = open(&db).await;
    supply(&store, SELLER, 1, 10, 10_000).await;
    let items: Vec<IssueItem> = (0..3)
        .map(|i| item(SELLER, &format!("u-{i}"), "1.00"))
        .collect();
    store.issue_batch(&items, t0()).await.unwrap();
    let lease = t0() + chrono::Duration::seconds(60);
    let claimed = store
        .claim_due_uploads("test", t0(), lease, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    assert!(
        claimed
            .iter()
            .all(|c| c.phase == UploadPhase::Send && c.attempts == 0)
    );
    assert!(
        store
            .claim_due_uploads("test", t0(), lease, 10)
            .await
            .unwrap()
            .is_empty(),
        "claimed work is leased"
    );
    let updates: Vec<UploadUpdate> = claimed
        .iter()
        .map(|c| UploadUpdate {
            item: c.clone(),
            state: Some(InvoiceState::Uploading),
            phase: Some(UploadPhase::Poll),
            next_attempt_at: Some(t0() + chrono::Duration::seconds(1)),
            receipt: Some("SL-1".into()),
            sent: true,
            attempt: Some(AttemptNote {
                outcome: "ACCEPTED",
                code: None,
                message: None,
            }),
            platform: None,
            reason: "uploaded".into(),
        })
        .collect();
    store
        .apply_upload_updates(&updates, t0(), "worker")
        .await
        .unwrap();
    assert_eq!(
        store.next_upload_due().await.unwrap(),
        Some(t0() + chrono::Duration::seconds(1))
    );
    let polled = store
        .claim_due_uploads("test", t0() + chrono::Duration::seconds(2), lease, 10)
        .await
        .unwrap();
    assert_eq!(polled.len(), 3);
    assert!(polled.iter().all(|p| p.phase == UploadPhase::Poll
        && p.attempts == 1
        && p.receipt.as_deref() == Some("SL-1")
        && p.state == InvoiceState::Uploading));
    let settle: Vec<UploadUpdate> = polled
        .iter()
        .enumerate()
        .map(|(i, p)| UploadUpdate {
            item: p.clone(),
            state: Some(if i == 0 {
                InvoiceState::Rejected
            } else {
                InvoiceState::Recorded
            }),
            phase: None,
            next_attempt_at: None,
            receipt: None,
            sent: false,
            attempt: None,
            platform: (i == 0).then(|| ("FP0203".to_owned(), "合计金额不等于明细之和".to_owned())),
            reason: "settled".into(),
        })
        .collect();
    store
        .apply_upload_updates(&settle, t0(), "worker")
        .await
        .unwrap();
    assert_eq!(store.next_upload_due().await.unwrap(), None);
    assert!(store.upload_backlog().await.unwrap().is_empty());
    let rejected = store
        .get_invoice(&Scope::unrestricted(), &polled[0].number)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rejected.state, InvoiceState::Rejected);
    assert_eq!(rejected.platform.as_ref().unwrap().code, "FP0203");
    assert_eq!(rejected.upload_attempts, 1);
    let history = store
        .invoice_events(&Scope::unrestricted(), &polled[0].number)
        .await
        .unwrap();
    let states: Vec<_> = history
        .iter()
        .map(|e| (e.previous_state, e.state))
        .collect();
    assert_eq!(
        states,
        vec![
            (None, InvoiceState::Issued),
            (Some(InvoiceState::Issued), InvoiceState::Uploading),
            (Some(InvoiceState::Uploading), InvoiceState::Rejected),
        ]
    );
    assert_eq!(history[2].platform_code.as_deref(), Some("FP0203"));
    assert_eq!(history[2].actor, "worker");
}

async fn listing_pages_newest_first_with_filters(db: TestDatabase) {
    let store = open(&db).await;
    supply(&store, SELLER, 1, 20, 10_000).await;
    for i in 0..5 {
        let at = t0() + chrono::Duration::minutes(i);
        store
            .issue_batch(&[item(SELLER, &format!("l-{i}"), "1.00")], at)
            .await
            .unwrap();
    }
    let filter = InvoiceFilter::default();
    let mine = Scope::sellers([SELLER]);
    let page1 = store.list_invoices(&mine, &filter, None, 2).await.unwrap();
    assert_eq!(
        page1
            .iter()
            .map(|i| i.request_id.as_str())
            .collect::<Vec<_>>(),
        vec!["l-4", "l-3"]
    );
    let cursor = (page1[1].issued_at, page1[1].number.to_string());
    let page2 = store
        .list_invoices(&mine, &filter, Some(&cursor), 10)
        .await
        .unwrap();
    assert_eq!(
        page2
            .iter()
            .map(|i| i.request_id.as_str())
            .collect::<Vec<_>>(),
        vec!["l-2", "l-1", "l-0"]
    );
    let window = InvoiceFilter {
        issued_from: Some(t0() + chrono::Duration::minutes(1)),
        issued_to: Some(t0() + chrono::Duration::minutes(3)),
        states: vec![InvoiceState::Issued],
        buyer_tax_id: Some(sample::BUYER.into()),
        ..filter.clone()
    };
    assert_eq!(
        store
            .list_invoices(&mine, &window, None, 10)
            .await
            .unwrap()
            .len(),
        2
    );
    let none = InvoiceFilter {
        states: vec![InvoiceState::Recorded],
        ..filter
    };
    assert!(
        store
            .list_invoices(&mine, &none, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_quota_download_counts_once(db: TestDatabase) {
    let store = open(&db).await;
    let s = seller(SELLER);
    let pending = PendingDownload {
        serial: "Q-1".into(),
        asked_fen: 5_000,
    };
    store
        .begin_quota_download(&s, &pending, t0())
        .await
        .unwrap();
    assert_eq!(
        store.pending_quota_download(&s).await.unwrap(),
        Some(pending)
    );
    store
        .complete_quota_download(&s, "Q-1", 4_000)
        .await
        .unwrap();
    store
        .complete_quota_download(&s, "Q-1", 4_000)
        .await
        .unwrap();
    assert_eq!(store.pending_quota_download(&s).await.unwrap(), None);
    store.set_platform_available(&s, 123, t0()).await.unwrap();
    let status = store.supply_status(&s).await.unwrap();
    assert_eq!(status.quota_left_fen, 4_000);
    assert_eq!(status.platform_available_fen, Some(123));
}

fapiao_tests::on_both_databases!(
    migrations_apply_twice_and_start_empty,
    numbers_come_from_ranges_in_order_and_run_out,
    quota_is_debited_and_refuses_what_it_cannot_cover,
    the_same_request_replays_and_different_content_conflicts,
    concurrent_batches_issue_each_request_once_with_unique_numbers,
    events_follow_commit_order_and_filter_by_seller,
    the_upload_queue_claims_leases_and_records_progress,
    listing_pages_newest_first_with_filters,
    a_quota_download_counts_once,
);
