//! Every RPC of the contract, called with generated requests: extreme numbers, unknown enum
//! values, timestamps and durations out of range, long and odd strings, long lists, page tokens
//! and cursors that were never issued, and bytes that are not protobuf at all or nest deeply.
//! The requests are built from the contract's own descriptors, so an RPC added later is fuzzed
//! without a change here.
//!
//! Nothing may panic anywhere in the server (a panic hook counts them, and so does the server's
//! `fapiao_grpc_panics_total`), and a well-formed request never gets `INTERNAL` or `UNKNOWN`: bad
//! input is the caller's mistake and gets a clear answer.
//!
//! `FAPIAO_FUZZ_CASES` sets the requests per RPC (default 40, a few seconds); `FAPIAO_FUZZ_SEED`
//! replays a run.

// The shared test bodies are plain functions called from generated #[tokio::test]s, so the
// test-only allowance of `unwrap` does not reach them.
#![allow(clippy::unwrap_used)]

mod generate;

use fapiao_services::auth::Role;
use fapiao_tests::db::{self, TestDatabase};
use fapiao_tests::{ISSUER_TOKEN, quick_config, spawn_app_on, token};
use generate::{RawCodec, arbitrary_message};
use prost::Message as _;
use prost_reflect::{DescriptorPool, MethodDescriptor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tonic::Code;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::MetadataValue;

/// Panics anywhere in this process since the hook was installed.
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
}

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn methods() -> Vec<MethodDescriptor> {
    let pool = DescriptorPool::decode(fapiao_proto::FILE_DESCRIPTOR_SET).unwrap();
    pool.services()
        .filter(|s| s.package_name() == "fapiao.v1")
        .flat_map(|s| s.methods().collect::<Vec<_>>())
        .collect()
}

/// One call with `body` as the encoded request; the status it ended with (`Ok` for answers).
async fn call(
    channel: &tonic::transport::Channel,
    method: &MethodDescriptor,
    body: Vec<u8>,
) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    if let Err(e) = grpc.ready().await {
        return tonic::Status::unavailable(e.to_string());
    }
    let path = PathAndQuery::try_from(format!(
        "/{}/{}",
        method.parent_service().full_name(),
        method.name()
    ))
    .unwrap();
    let mut request = tonic::Request::new(body);
    request.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {ISSUER_TOKEN}")).unwrap(),
    );
    request.set_timeout(Duration::from_secs(20));
    if method.is_server_streaming() {
        match grpc.server_streaming(request, path, RawCodec).await {
            Err(status) => status,
            Ok(answer) => {
                let mut stream = answer.into_inner();
                // A few messages, then hang up: watches never end by themselves.
                for _ in 0..3 {
                    match tokio::time::timeout(Duration::from_millis(300), stream.message()).await {
                        Ok(Ok(Some(_))) => {}
                        Ok(Ok(None)) | Err(_) => break,
                        Ok(Err(status)) => return status,
                    }
                }
                tonic::Status::ok("")
            }
        }
    } else {
        match grpc.unary(request, path, RawCodec).await {
            Ok(_) => tonic::Status::ok(""),
            Err(status) => status,
        }
    }
}

/// Bytes that are not a valid message: random, truncated, or a field nested far deeper than any
/// decoder allows.
fn malformed(rng: &mut StdRng, valid: &[u8]) -> Vec<u8> {
    match rng.random_range(0..3) {
        0 => (0..rng.random_range(1..200))
            .map(|_| rng.random())
            .collect(),
        1 if valid.len() > 1 => valid[..rng.random_range(1..valid.len())].to_vec(),
        _ => {
            // Field 1, length-delimited, nested 5,000 deep.
            let mut nested: Vec<u8> = Vec::new();
            for _ in 0..5_000 {
                let mut outer = vec![0x0a];
                prost::encoding::encode_varint(nested.len() as u64, &mut outer);
                outer.extend_from_slice(&nested);
                nested = outer;
            }
            nested
        }
    }
}

async fn every_rpc_survives_generated_requests(db: TestDatabase) {
    count_panics();
    let cases = setting("FAPIAO_FUZZ_CASES", 40);
    let seed = setting("FAPIAO_FUZZ_SEED", rand::random());
    let mut config = quick_config();
    config.tokens = vec![token(
        "fuzzer",
        ISSUER_TOKEN,
        vec![Role::Issuer, Role::Auditor, Role::Operator],
        &["*"],
    )];
    // The fuzzer is one caller making one call at a time; its share must not be the limit.
    let app = spawn_app_on(db, config).await.unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let methods = methods();
    assert_eq!(methods.len(), 25, "every RPC of the contract");
    let mut wrong = Vec::new();
    let mut calls = 0u64;
    for method in &methods {
        for case in 0..cases {
            let message = arbitrary_message(&mut rng, &method.input(), 0);
            let valid = message.encode_to_vec();
            let (body, well_formed) = if case % 8 == 7 {
                (malformed(&mut rng, &valid), false)
            } else {
                (valid, true)
            };
            let status = call(&app.channel, method, body).await;
            calls += 1;
            if well_formed && matches!(status.code(), Code::Internal | Code::Unknown) {
                wrong.push(format!(
                    "{}: {:?} {} for {message:?}",
                    method.name(),
                    status.code(),
                    status.message()
                ));
            }
        }
    }
    let metrics = reqwest::get(app.metrics_url.clone().unwrap())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("fapiao_grpc_panics_total{") && !l.ends_with(" 0")),
        "a handler panicked (seed {seed}):\n{metrics}"
    );
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        0,
        "something panicked (seed {seed})"
    );
    assert!(
        wrong.is_empty(),
        "seed {seed}: {} of {calls} well-formed requests answered INTERNAL or UNKNOWN:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// The overflow that once reset the stream: a wait of 8.2×10¹² seconds is refused as out of
/// range, the longest protobuf allows is accepted, and times beyond year 9999 are refused.
async fn durations_and_times_out_of_range_are_refused(db: TestDatabase) {
    let mut config = quick_config();
    config.tokens = vec![token(
        "operator",
        ISSUER_TOKEN,
        vec![Role::Operator],
        &["*"],
    )];
    let app = spawn_app_on(db, config).await.unwrap();
    let mut ops = app.ops_as(ISSUER_TOKEN);
    let pending = |seconds: i64| fapiao_proto::v1::ListPendingRedLetterFormsRequest {
        expiring_within: Some(prost_types::Duration { seconds, nanos: 0 }),
        ..Default::default()
    };
    for seconds in [8_200_000_000_000, i64::MAX, 315_576_000_001] {
        let refused = ops
            .list_pending_red_letter_forms(pending(seconds))
            .await
            .unwrap_err();
        assert_eq!(
            fapiao_tests::violations(&refused),
            [(
                "expiring_within".to_owned(),
                "DURATION_OUT_OF_RANGE".to_owned()
            )]
        );
    }
    ops.list_pending_red_letter_forms(pending(315_576_000_000))
        .await
        .unwrap();
    let far = prost_types::Timestamp {
        seconds: 253_402_300_800,
        nanos: 0,
    };
    let refused = ops
        .trigger_reconciliation(fapiao_proto::v1::TriggerReconciliationRequest {
            window: Some(fapiao_proto::v1::TimeRange {
                from: Some(far),
                to: Some(prost_types::Timestamp {
                    seconds: i64::MAX,
                    nanos: 2_000_000_000,
                }),
            }),
            reason: "far out".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        fapiao_tests::violations(&refused),
        [
            ("window.from".to_owned(), "TIME_INVALID".to_owned()),
            ("window.to".to_owned(), "TIME_INVALID".to_owned())
        ]
    );
}

fapiao_tests::on_both_databases!(
    every_rpc_survives_generated_requests,
    durations_and_times_out_of_range_are_refused,
);
