//! The archive end to end, on SQLite and PostgreSQL: every issued invoice gets its XML, OFD and
//! PDF written once with their digests recorded; auditors search, download (in chunks, checked
//! against the digest), verify and read histories, and every call lands in the access trail;
//! tampering with any archived byte is detected; a failed write is retried until it succeeds.

// The shared test bodies are plain functions called from generated #[tokio::test]s, so the
// test-only allowance of `unwrap` does not reach them.
#![allow(clippy::unwrap_used)]

use fapiao_archive::check::sm3_hex;
use fapiao_proto::v1::{
    self, GetArchivedFileRequest, GetInvoiceHistoryRequest, GetInvoiceRequest,
    ListAccessRecordsRequest, SearchInvoicesRequest, TimeRange, VerifyInvoicesRequest,
    get_invoice_request, verify_invoices_request, verify_invoices_response,
};
use fapiao_services::store::{Store, StoreOptions};
use fapiao_tests::db::{self, TestDatabase};
use fapiao_tests::sample::{BUYER, DEMO_SELLER};
use fapiao_tests::{ISSUER_TOKEN, TestApp, quick_config, spawn_app_on};
use std::time::{Duration, Instant};
use tokio_stream::StreamExt;
use tonic::Code;

async fn issue(app: &TestApp, request_id: &str, amount: &str) -> String {
    app.issue_sample(request_id, amount).await
}

/// The invoice once all three files are recorded (the archive worker runs in the background).
async fn archived(app: &TestApp, number: &str) -> v1::Invoice {
    app.invoice_when(number, |invoice| invoice.files.len() == 3)
        .await
}

async fn verify_one(
    app: &TestApp,
    number: &str,
) -> (v1::InvoiceVerification, v1::VerificationSummary) {
    verify_with(app, number, false).await
}

async fn verify_with(
    app: &TestApp,
    number: &str,
    deep: bool,
) -> (v1::InvoiceVerification, v1::VerificationSummary) {
    let mut stream = app
        .audit()
        .verify_invoices(VerifyInvoicesRequest {
            scope: Some(verify_invoices_request::Scope::InvoiceNumber(number.into())),
            deep,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut report = None;
    let mut summary = None;
    while let Some(message) = stream.next().await {
        match message.unwrap().item.unwrap() {
            verify_invoices_response::Item::Report(r) => report = Some(r),
            verify_invoices_response::Item::Summary(s) => summary = Some(s),
        }
    }
    (report.unwrap(), summary.unwrap())
}

fn archive_path(app: &TestApp, key: &str) -> std::path::PathBuf {
    app.data_dir().join("archive").join(key)
}

fapiao_tests::on_both_databases!(
    issued_invoices_get_three_files_with_recorded_digests,
    auditors_download_files_and_every_access_is_recorded,
    auditors_search_across_sellers_with_filters,
    tampering_with_any_byte_is_detected,
    a_repeat_verification_reuses_verdicts_only_for_unchanged_bytes,
    the_history_lists_every_state_change,
    a_failed_write_is_retried_until_the_files_exist,
    a_different_object_under_the_key_is_never_overwritten,
);

async fn issued_invoices_get_three_files_with_recorded_digests(db: TestDatabase) {
    let app = spawn_app_on(db, quick_config()).await.unwrap();
    let number = issue(&app, "arch-1", "16000").await;
    let invoice = archived(&app, &number).await;
    let formats: Vec<v1::FileFormat> = invoice.files.iter().map(|f| f.format()).collect();
    assert_eq!(
        formats,
        vec![
            v1::FileFormat::Xml,
            v1::FileFormat::Ofd,
            v1::FileFormat::Pdf
        ]
    );
    for file in &invoice.files {
        let ext = match file.format() {
            v1::FileFormat::Xml => "xml",
            v1::FileFormat::Ofd => "ofd",
            _ => "pdf",
        };
        assert_eq!(file.object_key, key_of(&invoice, ext));
        assert!(file.object_key.starts_with(DEMO_SELLER));
        let on_disk = std::fs::read(archive_path(&app, &file.object_key)).unwrap();
        assert_eq!(on_disk.len() as u64, file.size_bytes);
        assert_eq!(sm3_hex(&on_disk), file.sm3_hex);
        assert!(file.rendered_locally);
    }
    let xml = std::fs::read(archive_path(&app, &invoice.files[0].object_key)).unwrap();
    let parsed = fapiao_archive::xml::parse(&xml).unwrap();
    assert_eq!(parsed.number().to_string(), number);
    let ofd = std::fs::read(archive_path(&app, &invoice.files[1].object_key)).unwrap();
    let read = fapiao_archive::ofd_read::read(&ofd).unwrap();
    assert_eq!(
        read.custom_datas.get("发票号码").map(String::as_str),
        Some(number.as_str())
    );
    assert_eq!(
        read.xml.as_deref(),
        Some(&xml[..]),
        "the OFD carries the XML"
    );
}

async fn auditors_download_files_and_every_access_is_recorded(db: TestDatabase) {
    let app = spawn_app_on(db, quick_config()).await.unwrap();
    let number = issue(&app, "arch-2", "2500").await;
    let invoice = archived(&app, &number).await;
    for (format, file) in [
        v1::FileFormat::Xml,
        v1::FileFormat::Ofd,
        v1::FileFormat::Pdf,
    ]
    .into_iter()
    .zip(&invoice.files)
    {
        let (metadata, bytes) = app.download(&number, format).await.unwrap();
        let recorded = metadata.file.unwrap();
        assert_eq!(&recorded, file);
        assert_eq!(sm3_hex(&bytes), recorded.sm3_hex);
        assert_eq!(bytes.len() as u64, recorded.size_bytes);
        assert!(metadata.content_type.starts_with("application/"));
    }
    // The issuer may not read the archive; the refusal is recorded too.
    let denied = app
        .audit_as(ISSUER_TOKEN)
        .get_archived_file(GetArchivedFileRequest {
            invoice_number: number.clone(),
            format: v1::FileFormat::Pdf.into(),
            purpose: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let missing = app
        .download("26312000000999999999", v1::FileFormat::Pdf)
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let records = app
        .audit()
        .list_access_records(ListAccessRecordsRequest {
            invoice_number: number.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .records;
    // Newest first: the refused call, then the three downloads (PDF, OFD, XML).
    let seen: Vec<(&str, &str, v1::FileFormat, &str)> = records
        .iter()
        .map(|r| {
            (
                r.actor.as_str(),
                r.outcome.as_str(),
                r.format(),
                r.purpose.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("harness", "PERMISSION_DENIED", v1::FileFormat::Pdf, ""),
            (
                "auditor",
                "OK",
                v1::FileFormat::Pdf,
                "2025 annual audit, sample 17"
            ),
            (
                "auditor",
                "OK",
                v1::FileFormat::Ofd,
                "2025 annual audit, sample 17"
            ),
            (
                "auditor",
                "OK",
                v1::FileFormat::Xml,
                "2025 annual audit, sample 17"
            ),
        ]
    );
    assert!(
        records
            .iter()
            .all(|r| r.method == "/fapiao.v1.AuditService/GetArchivedFile")
    );
    assert!(
        records
            .iter()
            .all(|r| r.at.is_some() && r.peer.starts_with("127.0.0.1:"))
    );
    // Listing the trail is itself an access; the unknown invoice was recorded as NOT_FOUND.
    let all = app
        .audit()
        .list_access_records(ListAccessRecordsRequest {
            actor: "auditor".into(),
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.records.len(), 2);
    assert_eq!(
        all.records[0].method,
        "/fapiao.v1.AuditService/ListAccessRecords"
    );
    assert_eq!(all.records[1].outcome, "NOT_FOUND");
    assert!(!all.next_page_token.is_empty());
}

async fn auditors_search_across_sellers_with_filters(db: TestDatabase) {
    let app = spawn_app_on(db, quick_config()).await.unwrap();
    let mut numbers = Vec::new();
    for i in 0..5 {
        numbers.push(issue(&app, &format!("search-{i}"), &format!("{}00", i + 1)).await);
    }
    let search = |request: SearchInvoicesRequest| {
        let mut client = app.audit();
        async move {
            client
                .search_invoices(request)
                .await
                .map(|r| r.into_inner())
        }
    };
    let everything = search(SearchInvoicesRequest::default()).await.unwrap();
    assert_eq!(everything.invoices.len(), 5);
    let by_number = search(SearchInvoicesRequest {
        invoice_number: numbers[2].clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(by_number.invoices.len(), 1);
    assert_eq!(by_number.invoices[0].request_id, "search-2");
    let by_buyer = search(SearchInvoicesRequest {
        seller_tax_id: DEMO_SELLER.into(),
        buyer_tax_id: BUYER.into(),
        buyer_name_contains: "某某信息".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(by_buyer.invoices.len(), 5);
    let nobody = search(SearchInvoicesRequest {
        buyer_name_contains: "100%_不存在".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(
        nobody.invoices.is_empty(),
        "wildcards in the text are literal"
    );
    let future = search(SearchInvoicesRequest {
        issued: Some(TimeRange {
            from: Some(prost_types::Timestamp {
                seconds: chrono::Utc::now().timestamp() + 3600,
                nanos: 0,
            }),
            to: None,
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(future.invoices.is_empty());
    // Pages follow each other without gaps or repeats, newest first.
    let first = search(SearchInvoicesRequest {
        page_size: 3,
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(first.invoices.len(), 3);
    let second = search(SearchInvoicesRequest {
        page_size: 3,
        page_token: first.next_page_token.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(second.invoices.len(), 2);
    assert!(second.next_page_token.is_empty());
    let mut paged: Vec<String> = first
        .invoices
        .iter()
        .chain(&second.invoices)
        .map(|i| i.invoice_number.clone())
        .collect();
    paged.reverse();
    assert_eq!(paged, numbers);
    // A token is bound to its filters.
    let mismatch = search(SearchInvoicesRequest {
        page_size: 3,
        page_token: first.next_page_token,
        seller_tax_id: DEMO_SELLER.into(),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert_eq!(mismatch.code(), Code::InvalidArgument);
    let bad = search(SearchInvoicesRequest {
        invoice_number: "12345".into(),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
}

async fn tampering_with_any_byte_is_detected(db: TestDatabase) {
    let app = spawn_app_on(db, quick_config()).await.unwrap();
    let number = issue(&app, "tamper-1", "880").await;
    let invoice = archived(&app, &number).await;
    let (report, summary) = verify_one(&app, &number).await;
    assert!(report.ok, "{report:?}");
    assert_eq!((summary.invoices_checked, summary.invoices_ok), (1, 1));
    for file in &report.files {
        assert!(file.present);
        assert_eq!(file.digest_matches(), v1::CheckOutcome::Passed);
        assert_eq!(file.parses(), v1::CheckOutcome::Passed);
    }

    for (index, file) in invoice.files.iter().enumerate() {
        let path = archive_path(&app, &file.object_key);
        let original = std::fs::read(&path).unwrap();
        let mut changed = original.clone();
        let at = changed.len() / 2;
        changed[at] ^= 0x01;
        std::fs::write(&path, &changed).unwrap();

        let (report, summary) = verify_one(&app, &number).await;
        assert!(!report.ok);
        assert_eq!(
            report.files[index].digest_matches(),
            v1::CheckOutcome::Failed
        );
        assert_eq!(summary.digest_mismatches, 1);
        let others_pass = report
            .files
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != index)
            .all(|(_, f)| f.digest_matches() == v1::CheckOutcome::Passed);
        assert!(others_pass);
        let refused = app.download(&number, file.format()).await.unwrap_err();
        assert_eq!(refused.code(), Code::DataLoss, "{refused:?}");

        std::fs::remove_file(&path).unwrap();
        let (report, summary) = verify_one(&app, &number).await;
        assert!(!report.files[index].present);
        assert_eq!(summary.files_missing, 1);

        std::fs::write(&path, &original).unwrap();
    }
    assert!(verify_one(&app, &number).await.0.ok);
}

async fn a_repeat_verification_reuses_verdicts_only_for_unchanged_bytes(db: TestDatabase) {
    let app = spawn_app_on(db, quick_config()).await.unwrap();
    let number = issue(&app, "repeat-1", "320").await;
    let invoice = archived(&app, &number).await;
    let reused = |report: &v1::InvoiceVerification| -> Vec<bool> {
        report.files.iter().map(|f| f.usability_recorded).collect()
    };

    let (first, _) = verify_one(&app, &number).await;
    assert!(first.ok, "{first:?}");
    assert_eq!(
        reused(&first),
        [false; 3],
        "the first run parses and renders"
    );
    let (second, _) = verify_one(&app, &number).await;
    assert!(second.ok, "{second:?}");
    assert_eq!(
        reused(&second),
        [true; 3],
        "unchanged bytes keep their verdict"
    );
    for file in &second.files {
        assert_eq!(file.digest_matches(), v1::CheckOutcome::Passed);
        assert_eq!(file.parses(), v1::CheckOutcome::Passed);
    }
    let (deep, _) = verify_with(&app, &number, true).await;
    assert!(deep.ok);
    assert_eq!(
        reused(&deep),
        [false; 3],
        "a deep run checks everything again"
    );

    // A file that changed is checked in full: its parse failure is its own.
    let pdf = invoice
        .files
        .iter()
        .position(|f| f.format() == v1::FileFormat::Pdf)
        .unwrap();
    let path = archive_path(&app, &invoice.files[pdf].object_key);
    let original = std::fs::read(&path).unwrap();
    std::fs::write(&path, &original[..original.len() / 3]).unwrap();
    let (broken, _) = verify_one(&app, &number).await;
    let file = &broken.files[pdf];
    assert!(!broken.ok && !file.usability_recorded);
    assert_eq!(file.digest_matches(), v1::CheckOutcome::Failed);
    assert_eq!(file.parses(), v1::CheckOutcome::Failed, "{}", file.detail);

    std::fs::write(&path, &original).unwrap();
    let (restored, _) = verify_one(&app, &number).await;
    assert!(restored.ok);
    assert_eq!(reused(&restored), [true; 3]);
}

async fn the_history_lists_every_state_change(db: TestDatabase) {
    let app = spawn_app_on(db, quick_config()).await.unwrap();
    let number = issue(&app, "history-1", "99").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let events = loop {
        let events = app
            .audit()
            .get_invoice_history(GetInvoiceHistoryRequest {
                invoice_number: number.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .events;
        if events.last().map(|e| e.state()) == Some(v1::InvoiceState::Recorded) {
            break events;
        }
        assert!(Instant::now() < deadline, "not recorded in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let states: Vec<v1::InvoiceState> = events.iter().map(|e| e.state()).collect();
    assert_eq!(states.first(), Some(&v1::InvoiceState::Issued));
    assert!(states.contains(&v1::InvoiceState::Uploading));
    let unknown = app
        .audit()
        .get_invoice_history(GetInvoiceHistoryRequest {
            invoice_number: "26312000000999999999".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

async fn a_failed_write_is_retried_until_the_files_exist(db: TestDatabase) {
    let (blocker, store) = block_archive_writes(&db).await;
    let app = spawn_app_on(db, quick_config()).await.unwrap();
    let number = issue(&app, "retry-1", "42").await;
    let parsed = number.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let progress = loop {
        let progress = store.archive_progress(&parsed).await.unwrap().unwrap();
        if progress.attempts >= 2 {
            break progress;
        }
        assert!(Instant::now() < deadline, "the worker did not try twice");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(progress.due_at.is_some(), "still scheduled: {progress:?}");
    assert!(!progress.problem.unwrap_or_default().is_empty());
    let (report, _) = verify_one(&app, &number).await;
    assert!(report.files.iter().all(|f| !f.present));

    std::fs::remove_file(&blocker).unwrap();
    let invoice = archived(&app, &number).await;
    assert_eq!(invoice.files.len(), 3);
    assert!(verify_one(&app, &number).await.0.ok);
    let settled = store.archive_progress(&parsed).await.unwrap().unwrap();
    assert_eq!((settled.due_at, settled.problem), (None, None));
    store.close().await;
}

async fn a_different_object_under_the_key_is_never_overwritten(db: TestDatabase) {
    let (blocker, store) = block_archive_writes(&db).await;
    let mut config = quick_config();
    // Long enough for the test to plant an object between two attempts.
    config.archive.backoff = vec![Duration::from_secs(2)];
    let app = spawn_app_on(db, config).await.unwrap();
    let number = issue(&app, "conflict-1", "42").await;
    let parsed = number.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while store
        .archive_progress(&parsed)
        .await
        .unwrap()
        .unwrap()
        .attempts
        < 1
    {
        assert!(Instant::now() < deadline, "no first attempt");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Someone else's PDF appears under the invoice's key.
    let invoice = app
        .issuance()
        .get_invoice(GetInvoiceRequest {
            key: Some(get_invoice_request::Key::InvoiceNumber(number.clone())),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .invoice
        .unwrap();
    std::fs::remove_file(&blocker).unwrap();
    let key = key_of(&invoice, "pdf");
    let planted = archive_path(&app, &key);
    std::fs::create_dir_all(planted.parent().unwrap()).unwrap();
    std::fs::write(&planted, b"%PDF-1.7 not this invoice").unwrap();

    let progress = loop {
        let progress = store.archive_progress(&parsed).await.unwrap().unwrap();
        if progress.due_at.is_none() {
            break progress;
        }
        assert!(Instant::now() < deadline, "the conflict was not found");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        progress
            .problem
            .as_deref()
            .unwrap_or_default()
            .contains("different object"),
        "{progress:?}"
    );
    assert_eq!(
        std::fs::read(&planted).unwrap(),
        b"%PDF-1.7 not this invoice"
    );
    let (report, _) = verify_one(&app, &number).await;
    assert!(
        !report.ok,
        "an invoice without recorded files does not verify"
    );
    store.close().await;
}

/// Make every archive write for the demo seller fail (a plain file where its folder must go fails
/// even for root) and open the store beside the server to watch the worker's progress. Removing
/// the returned path clears the way.
async fn block_archive_writes(db: &TestDatabase) -> (std::path::PathBuf, Store) {
    let blocker = db.dir.path().join("archive").join(DEMO_SELLER);
    std::fs::create_dir_all(blocker.parent().unwrap()).unwrap();
    std::fs::write(&blocker, b"not a folder").unwrap();
    let store = Store::connect(&StoreOptions {
        url: db.url.clone(),
        max_connections: 1,
        acquire_timeout: Duration::from_secs(5),
        sqlite_cache_mib: fapiao_services::store::StoreOptions::SQLITE_CACHE_MIB,
    })
    .await
    .unwrap();
    (blocker, store)
}

/// The documented key of one of an invoice's files.
fn key_of(invoice: &v1::Invoice, ext: &str) -> String {
    let issued_at = invoice.issued_at.as_ref().unwrap();
    let day = chrono::DateTime::from_timestamp(issued_at.seconds, 0)
        .unwrap()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .format("%Y/%m/%d")
        .to_string();
    let number = &invoice.invoice_number;
    format!("{}/{day}/{number}/{number}.{ext}", invoice.seller_tax_id)
}
