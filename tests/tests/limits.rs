//! The server's fair limits, end to end: streams and calls beyond a caller's share are refused
//! with `RESOURCE_EXHAUSTED` and `RetryInfo` while other callers go on; connections that never
//! send the HTTP/2 preface, or sit without a call, are closed, and one with a stream open is not.

// The shared test bodies are plain functions called from generated #[tokio::test]s, so the
// test-only allowance of `unwrap` does not reach them.
#![allow(clippy::unwrap_used)]

use fapiao_proto::v1;
use fapiao_services::auth::Role;
use fapiao_services::config::Config;
use fapiao_tests::db::{self, TestDatabase};
use fapiao_tests::sample;
use fapiao_tests::{ISSUER_TOKEN, TestApp, quick_config, spawn_app_on, token};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use tonic_types::StatusExt;

const OTHER_TOKEN: &str = "limits-other-caller-01";

fn config() -> Config {
    let mut config = quick_config();
    config.tokens = vec![
        token("orders", ISSUER_TOKEN, vec![Role::Issuer], &["*"]),
        token("billing", OTHER_TOKEN, vec![Role::Issuer], &["*"]),
    ];
    config.server.streams_per_caller = 2;
    config.server.calls_per_caller = 1;
    config.server.retry_after = Duration::from_secs(2);
    config
}

async fn watch(
    app: &TestApp,
    token: &str,
) -> Result<tonic::Streaming<v1::WatchInvoicesResponse>, tonic::Status> {
    app.issuance_as(token)
        .watch_invoices(v1::WatchInvoicesRequest::default())
        .await
        .map(tonic::Response::into_inner)
}

fn assert_refused(status: &tonic::Status, code: &str) {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().starts_with(code), "{status:?}");
    let retry = status.get_details_retry_info().expect("RetryInfo");
    assert_eq!(retry.retry_delay, Some(Duration::from_secs(2)));
}

async fn streams_beyond_a_callers_share_wait_until_one_closes(db: TestDatabase) {
    let app = spawn_app_on(db, config()).await.unwrap();
    let first = watch(&app, ISSUER_TOKEN).await.unwrap();
    let _second = watch(&app, ISSUER_TOKEN).await.unwrap();
    let third = watch(&app, ISSUER_TOKEN).await.unwrap_err();
    assert_refused(&third, "CALLER_STREAM_LIMIT: ");
    // Another caller's share is its own.
    let _theirs = watch(&app, OTHER_TOKEN).await.unwrap();
    // Closing a stream gives its place back (once the server sees the stream reset).
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match watch(&app, ISSUER_TOKEN).await {
            Ok(_again) => break,
            Err(status) => {
                assert_refused(&status, "CALLER_STREAM_LIMIT: ");
                assert!(
                    Instant::now() < deadline,
                    "the closed stream's place never came back"
                );
                tokio::task::yield_now().await;
            }
        }
    }
}

async fn calls_beyond_a_callers_share_are_refused_while_others_go_on(db: TestDatabase) {
    let app = spawn_app_on(db, config()).await.unwrap();
    // The platform answers nothing, so a call waiting for the invoice to be recorded stays open.
    app.sandbox_call(
        reqwest::Method::PUT,
        "faults",
        Some(serde_json::json!({"busy_rate": "100%"})),
    )
    .await;
    let number = app.issue_sample("limits-1", "100.00").await;
    let mut waiting = app.issuance();
    let held = tokio::spawn(async move {
        waiting
            .get_invoice(v1::GetInvoiceRequest {
                key: Some(v1::get_invoice_request::Key::InvoiceNumber(number)),
                wait_until_recorded: true,
                wait_timeout: Some(prost_types::Duration {
                    seconds: 5,
                    nanos: 0,
                }),
            })
            .await
    });
    let validate = || v1::ValidateInvoiceRequest {
        invoice: Some(sample::input("limits-2", "1.00")),
    };
    // Once the waiting call holds the caller's one place, the caller's next call is refused.
    let deadline = Instant::now() + Duration::from_secs(5);
    let refused = loop {
        match app.issuance().validate_invoice(validate()).await {
            Err(status) => break status,
            Ok(_) => {
                assert!(
                    Instant::now() < deadline,
                    "the second call was never refused"
                );
                tokio::task::yield_now().await;
            }
        }
    };
    assert_refused(&refused, "CALLER_CALL_LIMIT: ");
    assert!(
        !held.is_finished(),
        "refused while the first call was still open"
    );
    let theirs = app
        .issuance_as(OTHER_TOKEN)
        .validate_invoice(validate())
        .await;
    assert!(theirs.unwrap().into_inner().valid);
    // When the waiting call answers, the caller may call again.
    held.await.unwrap().unwrap();
    assert!(app.issuance().validate_invoice(validate()).await.is_ok());
}

/// Read from `socket` until the server closes it; how long that took.
async fn closed(socket: &mut tokio::net::TcpStream, within: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(within, socket.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("the server kept the connection open for {within:?}"),
        }
    }
}

#[tokio::test]
async fn silent_and_idle_connections_are_closed_but_not_one_with_a_stream_open() {
    let mut config = config();
    config.server.handshake_timeout = Duration::from_millis(300);
    config.server.idle_timeout = Duration::from_millis(700);
    config.server.streams_per_caller = 16;
    config.server.calls_per_caller = 16;
    let app = spawn_app_on(db::sqlite(), config).await.unwrap();
    // A stream open on its own connection, from before the others connect.
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", app.address))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut stream =
        fapiao_proto::v1::issuance_service_client::IssuanceServiceClient::with_interceptor(
            channel,
            fapiao_tests::Bearer(ISSUER_TOKEN.to_owned()),
        )
        .watch_invoices(v1::WatchInvoicesRequest::default())
        .await
        .unwrap()
        .into_inner();

    // A connection that never says anything is closed after the handshake timeout.
    let mut silent = tokio::net::TcpStream::connect(app.address).await.unwrap();
    let took = closed(&mut silent, Duration::from_secs(10)).await;
    assert!(took >= Duration::from_millis(250), "{took:?}");

    // One that completes the HTTP/2 preface and settings but never calls is closed once idle.
    let mut idle = tokio::net::TcpStream::connect(app.address).await.unwrap();
    idle.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    idle.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    let took = closed(&mut idle, Duration::from_secs(10)).await;
    assert!(took >= Duration::from_millis(600), "{took:?}");

    // The stream, open all along on a connection idle for far longer, still delivers.
    let number = app.issue_sample("limits-idle", "100.00").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("the stream answers")
            .expect("the stream is still open")
            .expect("a message");
        if message.event.is_some_and(|e| e.invoice_number == number) {
            break;
        }
        assert!(Instant::now() < deadline, "the invoice's event never came");
    }
    drop(stream);
}

fapiao_tests::on_both_databases!(
    streams_beyond_a_callers_share_wait_until_one_closes,
    calls_beyond_a_callers_share_are_refused_while_others_go_on,
);
