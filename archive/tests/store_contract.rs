//! The archive contract, run on every backend: in-memory, a local directory and a real
//! S3-compatible server.
//!
//! The S3 server is started by `scripts/test`, which exports `FAPIAO_TEST_S3_ENDPOINT` (and
//! creates the bucket named by `FAPIAO_TEST_S3_BUCKET`, default `fapiao-test`). Every test works
//! under its own random prefix, so tests never see each other's objects.

// The shared test bodies are plain functions called from generated #[tokio::test]s, so the
// test-only allowance of `unwrap` does not reach them.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use fapiao_archive::store::{Archive, ArchiveError, S3Settings, Written, open};
use std::sync::atomic::{AtomicU64, Ordering};

struct Backend {
    archive: Archive,
    _dir: Option<tempfile::TempDir>,
}

fn memory() -> Backend {
    Backend {
        archive: open("memory://", &S3Settings::default()).expect("memory archive"),
        _dir: None,
    }
}

fn local() -> Backend {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("file://{}", dir.path().join("archive").display());
    Backend {
        archive: open(&url, &S3Settings::default()).expect("local archive"),
        _dir: Some(dir),
    }
}

fn s3() -> Backend {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let endpoint = std::env::var("FAPIAO_TEST_S3_ENDPOINT").expect(
        "FAPIAO_TEST_S3_ENDPOINT is not set: run the tests through scripts/test, which starts an \
         S3-compatible server (moto_server, pip package moto[s3])",
    );
    let bucket = std::env::var("FAPIAO_TEST_S3_BUCKET").unwrap_or_else(|_| "fapiao-test".into());
    let prefix = format!(
        "contract-{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        chrono::Utc::now().timestamp_micros()
    );
    let settings = S3Settings {
        endpoint: Some(endpoint),
        region: Some("us-east-1".into()),
        access_key_id: Some("fapiao-test".into()),
        secret_access_key: Some("fapiao-test-secret".into()),
        allow_http: true,
        virtual_hosted_style: false,
    };
    Backend {
        archive: open(&format!("s3://{bucket}/{prefix}"), &settings).expect("s3 archive"),
        _dir: None,
    }
}

macro_rules! archive_contract {
    ($($case:ident),* $(,)?) => {
        mod in_memory { $( #[tokio::test] async fn $case() { super::$case(super::memory()).await } )* }
        mod local_directory { $( #[tokio::test] async fn $case() { super::$case(super::local()).await } )* }
        mod s3_compatible { $( #[tokio::test] async fn $case() { super::$case(super::s3()).await } )* }
    };
}

archive_contract!(
    written_objects_read_back,
    missing_objects_are_none,
    an_identical_retry_succeeds,
    a_different_object_is_refused_and_the_first_kept,
    concurrent_writers_create_once,
    large_objects_round_trip,
    a_batch_reports_each_object_in_order,
);

const KEY: &str = "91310000MA1FP00011/2025/03/07/25312000000000008848/25312000000000008848.pdf";

async fn written_objects_read_back(backend: Backend) {
    let archive = &backend.archive;
    let written = archive
        .put_once(KEY, Bytes::from_static(b"%PDF-1.7 one"))
        .await
        .unwrap();
    assert_eq!(written, Written::Created);
    let read = archive.get(KEY).await.unwrap();
    assert_eq!(read.as_deref(), Some(&b"%PDF-1.7 one"[..]));
}

async fn missing_objects_are_none(backend: Backend) {
    assert_eq!(backend.archive.get("nobody/here.xml").await.unwrap(), None);
}

async fn an_identical_retry_succeeds(backend: Backend) {
    let archive = &backend.archive;
    let bytes = Bytes::from_static(b"<EInvoice/>");
    assert_eq!(
        archive.put_once(KEY, bytes.clone()).await.unwrap(),
        Written::Created
    );
    assert_eq!(
        archive.put_once(KEY, bytes).await.unwrap(),
        Written::AlreadyThere
    );
}

async fn a_different_object_is_refused_and_the_first_kept(backend: Backend) {
    let archive = &backend.archive;
    archive
        .put_once(KEY, Bytes::from_static(b"original"))
        .await
        .unwrap();
    let err = archive
        .put_once(KEY, Bytes::from_static(b"tampered"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ArchiveError::Conflict { key } if key == KEY),
        "{err}"
    );
    assert!(!err.is_retryable());
    assert_eq!(
        archive.get(KEY).await.unwrap().as_deref(),
        Some(&b"original"[..])
    );
}

async fn concurrent_writers_create_once(backend: Backend) {
    let bytes = Bytes::from(vec![7u8; 4096]);
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let archive = backend.archive.clone();
            let bytes = bytes.clone();
            tokio::spawn(async move { archive.put_once(KEY, bytes).await })
        })
        .collect();
    let mut created = 0;
    for writer in writers {
        match writer.await.unwrap().unwrap() {
            Written::Created => created += 1,
            Written::AlreadyThere | Written::Completed => {}
        }
    }
    assert_eq!(created, 1, "exactly one writer creates the object");
    assert_eq!(backend.archive.get(KEY).await.unwrap(), Some(bytes));
}

async fn a_batch_reports_each_object_in_order(backend: Backend) {
    let archive = &backend.archive;
    let key = |n: u32| format!("91310000MA1FP00011/2025/03/07/{n}/{n}.xml");
    archive
        .put_once(&key(2), Bytes::from_static(b"two"))
        .await
        .unwrap();
    archive
        .put_once(&key(3), Bytes::from_static(b"three"))
        .await
        .unwrap();
    let mut items: Vec<(String, Bytes)> = (10..60)
        .map(|n| (key(n), Bytes::from(format!("file {n}"))))
        .collect();
    items.insert(0, (key(2), Bytes::from_static(b"two")));
    items.insert(1, (key(3), Bytes::from_static(b"not three")));
    let results = archive.put_all(items.clone(), 4).await;
    assert_eq!(results.len(), items.len());
    assert_eq!(*results[0].as_ref().unwrap(), Written::AlreadyThere);
    assert!(
        matches!(&results[1], Err(ArchiveError::Conflict { key: k }) if *k == key(3)),
        "{:?}",
        results[1]
    );
    for ((key, _), result) in items.iter().zip(&results).skip(2) {
        assert_eq!(*result.as_ref().unwrap(), Written::Created, "{key}");
    }
    let mut keys: Vec<String> = items.iter().map(|(key, _)| key.clone()).collect();
    keys.push(key(99));
    let read = archive.get_all(keys, 4).await;
    assert_eq!(read.len(), items.len() + 1);
    for ((key, bytes), read) in items.iter().zip(&read).skip(2) {
        assert_eq!(read.as_ref().unwrap().as_ref(), Some(bytes), "{key}");
    }
    assert!(read[items.len()].as_ref().unwrap().is_none(), "absent");
    assert_eq!(
        archive.get(&key(3)).await.unwrap().as_deref(),
        Some(&b"three"[..])
    );
}

async fn large_objects_round_trip(backend: Backend) {
    let bytes: Bytes = (0..3 * 1024 * 1024)
        .map(|i: u32| (i % 251) as u8)
        .collect::<Vec<_>>()
        .into();
    backend.archive.put_once(KEY, bytes.clone()).await.unwrap();
    assert_eq!(backend.archive.get(KEY).await.unwrap(), Some(bytes));
}

#[test]
fn unusable_urls_are_refused_with_a_reason() {
    let none = S3Settings::default();
    for (url, says) in [
        ("ftp://example.com/x", "unsupported scheme"),
        ("file://relative/dir", "absolute path"),
        ("s3://", "needs a bucket"),
        ("", "empty"),
    ] {
        let err = open(url, &none).unwrap_err().to_string();
        assert!(err.contains(says), "{url}: {err}");
    }
}

#[test]
fn credentials_never_show_in_debug_output() {
    let settings = S3Settings {
        endpoint: Some("http://127.0.0.1:1".into()),
        access_key_id: Some("AKIDEXAMPLE".into()),
        secret_access_key: Some("wJalrXUtnFEMI-very-secret".into()),
        allow_http: true,
        ..Default::default()
    };
    let archive = open("s3://bucket/prefix", &settings).unwrap();
    let shown = format!("{archive:?} {settings:?}");
    assert!(!shown.contains("very-secret"), "{shown}");
    assert_eq!(archive.location(), "s3://bucket/prefix");
}
