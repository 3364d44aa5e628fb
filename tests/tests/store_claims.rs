//! The store's contract for claims, on SQLite and PostgreSQL alike: upload and archive claims name
//! the instance that took them, an instance starting again takes back its own claims at once,
//! other instances' claims wait out their lease, and a written outcome (a back-off included) is
//! no claim to take back.

// The shared test bodies are plain functions called from generated #[tokio::test]s, so the
// test-only allowance of `unwrap` does not reach them.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use fapiao_invoice::number::InvoiceNumber;
use fapiao_invoice::taxpayer::TaxpayerId;
use fapiao_services::issuance::{content_digest, quota_fen};
use fapiao_services::platform::NumberRange;
use fapiao_services::store::{
    ArchiveSetback, InvoiceState, IssueItem, PendingDownload, Store, StoreOptions, TakenBack,
    UploadPhase, UploadUpdate,
};
use fapiao_tests::db::{self, TestDatabase};
use fapiao_tests::sample::{self, DEMO_SELLER};
use std::collections::BTreeSet;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 2, 0, 0)
        .single()
        .unwrap()
}

fn at(seconds: i64) -> DateTime<Utc> {
    t0() + Duration::seconds(seconds)
}

/// A migrated store holding `count` invoices issued at `t0`, all due for upload and archiving.
async fn store_with_invoices(db: &TestDatabase, count: u64) -> (Store, Vec<InvoiceNumber>) {
    let store = Store::connect(&StoreOptions {
        url: db.url.clone(),
        max_connections: 4,
        acquire_timeout: std::time::Duration::from_secs(10),
        sqlite_cache_mib: fapiao_services::store::StoreOptions::SQLITE_CACHE_MIB,
    })
    .await
    .unwrap();
    store.migrate().await.unwrap();
    let seller = TaxpayerId::parse(DEMO_SELLER).unwrap();
    let range = NumberRange {
        first: InvoiceNumber::new(26, 31, 2, 1).unwrap(),
        last: InvoiceNumber::new(26, 31, 2, count).unwrap(),
    };
    store.add_number_range(&seller, &range, t0()).await.unwrap();
    let download = PendingDownload {
        serial: "Q-1".into(),
        asked_fen: 1_000_000,
    };
    store
        .begin_quota_download(&seller, &download, t0())
        .await
        .unwrap();
    store
        .complete_quota_download(&seller, "Q-1", 1_000_000)
        .await
        .unwrap();
    let items: Vec<IssueItem> = (0..count)
        .map(|i| {
            let content = sample::content(DEMO_SELLER, &format!("c-{i}"), "1.00");
            IssueItem {
                seller_tax_id: DEMO_SELLER.into(),
                request_id: format!("c-{i}"),
                content_sm3: content_digest(&content),
                quota_fen: quota_fen(&content),
                content,
                actor: "test".into(),
            }
        })
        .collect();
    store.issue_batch(&items, t0()).await.unwrap();
    let numbers = (1..=count)
        .map(|seq| InvoiceNumber::new(26, 31, 2, seq).unwrap())
        .collect();
    (store, numbers)
}

fn numbers<'a>(found: impl IntoIterator<Item = &'a InvoiceNumber>) -> BTreeSet<String> {
    found.into_iter().map(ToString::to_string).collect()
}

/// The one invoice of `all` not among `claimed`.
fn unclaimed<'a>(
    all: &[InvoiceNumber],
    claimed: impl IntoIterator<Item = &'a InvoiceNumber>,
) -> InvoiceNumber {
    let claimed = numbers(claimed);
    let left: Vec<&InvoiceNumber> = all
        .iter()
        .filter(|n| !claimed.contains(&n.to_string()))
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    *left[0]
}

async fn an_instance_takes_back_its_own_upload_claims_and_no_others(db: TestDatabase) {
    let (store, all) = store_with_invoices(&db, 4).await;
    let lease = at(60);
    let a = store.claim_due_uploads("a", t0(), lease, 2).await.unwrap();
    let b = store.claim_due_uploads("b", t0(), lease, 1).await.unwrap();
    assert_eq!((a.len(), b.len()), (2, 1));
    let unclaimed = unclaimed(&all, a.iter().chain(&b).map(|d| &d.number));

    // "a" wrote a back-off for one of its claims before it died: a written outcome ends the
    // claim, and a back-off is not brought forward.
    let backed_off = UploadUpdate {
        item: a[1].clone(),
        state: None,
        phase: Some(UploadPhase::Send),
        next_attempt_at: Some(at(30)),
        receipt: None,
        sent: false,
        attempt: None,
        platform: None,
        reason: "busy".into(),
    };
    store
        .apply_upload_updates(&[backed_off], t0(), "test")
        .await
        .unwrap();

    // "a" starts again a second later: its one open claim is due at once, nobody else's.
    let taken = store.take_back_claims("a", at(1)).await.unwrap();
    assert_eq!(
        taken,
        TakenBack {
            uploads: 1,
            archives: 0
        }
    );
    let again = store
        .claim_due_uploads("a", at(1), at(61), 10)
        .await
        .unwrap();
    assert_eq!(
        numbers(again.iter().map(|d| &d.number)),
        numbers([&a[0].number, &unclaimed]),
        "its own claim and the invoice nobody had claimed"
    );
    assert!(
        again
            .iter()
            .all(|d| d.phase == UploadPhase::Send && d.state == InvoiceState::Issued)
    );
    assert_eq!(
        store.take_back_claims("a", at(2)).await.unwrap(),
        TakenBack {
            uploads: 2,
            archives: 0
        },
        "claims taken after the start are the new run's again"
    );

    // "b"'s claim waits out its lease; the back-off its own wait.
    let early = store
        .claim_due_uploads("c", at(29), at(89), 10)
        .await
        .unwrap();
    assert_eq!(
        numbers(early.iter().map(|d| &d.number)),
        numbers([&a[0].number, &unclaimed]),
        "nothing of b's before its lease ends, nor the back-off before its time"
    );
    let late = store
        .claim_due_uploads("c", at(60), at(120), 10)
        .await
        .unwrap();
    assert_eq!(
        numbers(late.iter().map(|d| &d.number)),
        numbers([&a[1].number, &b[0].number])
    );
    assert_eq!(
        store.take_back_claims("b", at(61)).await.unwrap(),
        TakenBack::default(),
        "a claim another instance took over after the lease is no longer b's"
    );
}

async fn an_instance_takes_back_its_own_archive_claims_and_no_others(db: TestDatabase) {
    let (store, all) = store_with_invoices(&db, 4).await;
    let lease = at(120);
    let a = store.claim_due_archives("a", t0(), lease, 2).await.unwrap();
    let b = store.claim_due_archives("b", t0(), lease, 1).await.unwrap();
    assert_eq!((a.len(), b.len()), (2, 1));
    let unclaimed = unclaimed(&all, a.iter().chain(&b).map(|d| &d.number));
    store
        .record_archive_setbacks(&[ArchiveSetback {
            number: a[1].number,
            retry_at: Some(at(30)),
            problem: "the object store did not answer".into(),
        }])
        .await
        .unwrap();

    let taken = store.take_back_claims("a", at(1)).await.unwrap();
    assert_eq!(
        taken,
        TakenBack {
            uploads: 0,
            archives: 1
        }
    );
    let again = store
        .claim_due_archives("a", at(1), at(121), 10)
        .await
        .unwrap();
    assert_eq!(
        numbers(again.iter().map(|d| &d.number)),
        numbers([&a[0].number, &unclaimed])
    );
    store
        .record_archived(&[(a[0].number, Vec::new())])
        .await
        .unwrap();
    assert_eq!(
        store.take_back_claims("a", at(2)).await.unwrap(),
        TakenBack {
            uploads: 0,
            archives: 1
        },
        "only the claim still open: archived work is no claim"
    );

    let early = store
        .claim_due_archives("c", at(119), at(240), 10)
        .await
        .unwrap();
    assert_eq!(
        numbers(early.iter().map(|d| &d.number)),
        numbers([&a[1].number, &unclaimed]),
        "the back-off is due, b's claim is not"
    );
    let late = store
        .claim_due_archives("c", at(120), at(240), 10)
        .await
        .unwrap();
    assert_eq!(
        numbers(late.iter().map(|d| &d.number)),
        numbers([&b[0].number])
    );
}

fapiao_tests::on_both_databases!(
    an_instance_takes_back_its_own_upload_claims_and_no_others,
    an_instance_takes_back_its_own_archive_claims_and_no_others,
);
