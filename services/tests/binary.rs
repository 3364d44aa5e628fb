//! The `fapiao` binary as an operator runs it: `fapiao serve` on embedded defaults starts, says
//! where it listens, answers health checks, and exits cleanly on SIGTERM.

// Helpers shared by the tests below are plain functions, outside the test-only allowance of
// `unwrap`; a failure there is a failed test like any other.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Read the log until the listening line; return the address and the development token printed
/// before it.
fn address_and_token(child: &mut Child) -> (String, String) {
    let stdout = child.stdout.take().expect("piped stdout");
    let mut token = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("log line");
        if let Some(rest) = line.split("every seller): ").nth(1) {
            token = rest.split_whitespace().next().map(str::to_owned);
        }
        if let Some(rest) = line.split("address=").nth(1)
            && line.contains("fapiao listening")
        {
            let address = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
            return (
                address,
                token.expect("a development token before the listening line"),
            );
        }
    }
    panic!("the server exited without saying where it listens");
}

/// Start `fapiao serve` on its defaults in `dir`; returns it with its address and token.
fn serve_in(dir: &std::path::Path) -> (Running, String, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_fapiao"))
        .current_dir(dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        // Parallel tests' servers must not share a metrics port, and passes run only when a
        // test runs them.
        .env("FAPIAO__METRICS__LISTEN", "127.0.0.1:0")
        .env("FAPIAO__RECONCILE__SCHEDULE", "false")
        .env("FAPIAO_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("fapiao starts");
    let mut running = Running(child);
    let (address, token) = address_and_token(&mut running.0);
    (running, address, token)
}

#[tokio::test]
async fn serve_starts_on_defaults_and_stops_on_sigterm() {
    // The embedded defaults keep their data under ./data: run in a fresh folder.
    let dir = tempfile::tempdir().unwrap();
    let (mut running, address, token) = serve_in(dir.path());

    let channel = tonic::transport::Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel.clone());
    let status = health
        .check(HealthCheckRequest {
            service: "fapiao.v1.IssuanceService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status, 1, "SERVING");

    // The printed development token opens the issuance service.
    let mut request = tonic::Request::new(fapiao_proto::v1::ValidateInvoiceRequest::default());
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let answer = fapiao_proto::v1::issuance_service_client::IssuanceServiceClient::new(channel)
        .validate_invoice(request)
        .await
        .unwrap()
        .into_inner();
    assert!(!answer.valid, "an empty invoice is reported, not refused");

    assert!(terminate(&mut running).await, "a clean exit on SIGTERM");
    assert!(
        dir.path().join("data/fapiao.db").exists(),
        "the SQLite database is under ./data"
    );
}

#[test]
fn a_bad_config_file_stops_start_up_with_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("fapiao-bad-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("fapiao.toml");
    std::fs::write(
        &path,
        "[[sellers]]\ntax_id = \"91310000MA1FP00012\"\nname = \"x\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fapiao"))
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("seller profile 0 has an invalid tax id"),
        "{stderr}"
    );
}

/// Wait (bounded) for the process to exit after SIGTERM and return whether it exited cleanly.
async fn terminate(running: &mut Running) -> bool {
    let pid = running.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs")
            .success()
    );
    let give_up = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(exit) = running.0.try_wait().expect("the process can be polled") {
            return exit.success();
        }
        assert!(
            Instant::now() < give_up,
            "the process did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn migrate_prepares_the_configured_database_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/fapiao.db?mode=rwc", dir.path().display());
    let out = Command::new(env!("CARGO_BIN_EXE_fapiao"))
        .arg("migrate")
        .env("FAPIAO__DATABASE__URL", &url)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(applied >= 2, "{applied} migrations applied");
    let invoices: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM invoices")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(invoices, 0);
}

#[tokio::test]
async fn the_sandbox_runs_alone_for_its_units_and_stops_on_sigterm() {
    use fapiao_services::platform::TaxPlatform;
    use fapiao_services::platform::client::{HttpPlatform, credentials_from_parts};

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sandbox.toml");
    std::fs::write(
        &config,
        r#"
[sandbox]
listen = "127.0.0.1:0"

[[sandbox.units]]
unit_id = "UNIT-1"
user_id = "USER-1"
sm4_key = "00112233445566778899aabbccddeeff"
hmac_key = "a-signing-key-for-tests"
"#,
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_fapiao"))
        .args(["sandbox", "--config"])
        .arg(&config)
        .env("FAPIAO_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let stdout = running.0.stdout.take().unwrap();
    let address = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains("sandbox tax platform listening"))
        .and_then(|l| {
            l.split("address=")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .map(str::to_owned)
        })
        .expect("the sandbox says where it listens");

    let credentials = credentials_from_parts(
        "test",
        "UNIT-1",
        "USER-1",
        Some(&"00112233445566778899aabbccddeeff".to_owned().into()),
        Some(&"a-signing-key-for-tests".to_owned().into()),
    )
    .unwrap();
    let client = HttpPlatform::new(
        &format!("http://{address}"),
        credentials,
        Duration::from_secs(5),
        "202007",
    )
    .unwrap();
    let seller = fapiao_invoice::taxpayer::TaxpayerId::parse("91310000MA1FP00011").unwrap();
    let range = client.reserve_numbers(&seller, 10).await.unwrap();
    assert_eq!(range.len(), 10);
    assert!(terminate(&mut running).await, "a clean exit");

    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "[sandbox]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fapiao"))
        .args(["sandbox", "--config"])
        .arg(&empty)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no units"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue one invoice through a running `fapiao serve` in `dir` and wait until its three files are
/// archived; returns the invoice as the server reports it.
async fn issue_and_archive(address: &str, token: &str) -> fapiao_proto::v1::Invoice {
    issue_and_wait(address, token, "cli-1", false).await
}

/// Issue one invoice under `request_id` and wait until it is archived and, when `recorded`, also
/// recorded by the platform.
async fn issue_and_wait(
    address: &str,
    token: &str,
    request_id: &str,
    recorded: bool,
) -> fapiao_proto::v1::Invoice {
    use fapiao_proto::v1;
    let mut client = issuance_client(address).await;
    let invoice = v1::InvoiceInput {
        seller_tax_id: "91310000MA1FP00011".into(),
        request_id: request_id.into(),
        kind: v1::InvoiceKind::Special.into(),
        pricing_mode: v1::PricingMode::TaxExclusive.into(),
        drawer: "张三".into(),
        buyer: Some(v1::BuyerInput {
            name: "北京某某信息技术有限公司".into(),
            tax_id: "91110302MA01NP925M".into(),
            ..Default::default()
        }),
        lines: vec![v1::LineInput {
            item_name: "软件开发".into(),
            tax_code: "3040201010000000000".into(),
            amount: "16000".into(),
            tax_rate: "6%".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let number = client
        .issue_invoice(authorised(
            token,
            v1::IssueInvoiceRequest {
                invoice: Some(invoice),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .invoice
        .unwrap()
        .invoice_number;
    invoice_when(address, token, &number, |found| {
        found.files.len() == 3 && (!recorded || found.state() == v1::InvoiceState::Recorded)
    })
    .await
}

/// A client of the running server's IssuanceService.
async fn issuance_client(
    address: &str,
) -> fapiao_proto::v1::issuance_service_client::IssuanceServiceClient<tonic::transport::Channel> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    fapiao_proto::v1::issuance_service_client::IssuanceServiceClient::new(channel)
}

/// `message` with the bearer `token`.
fn authorised<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// Poll the running server until invoice `number` satisfies `done` (at most 30 s).
async fn invoice_when(
    address: &str,
    token: &str,
    number: &str,
    done: impl Fn(&fapiao_proto::v1::Invoice) -> bool,
) -> fapiao_proto::v1::Invoice {
    use fapiao_proto::v1;
    let mut client = issuance_client(address).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let request = v1::GetInvoiceRequest {
            key: Some(v1::get_invoice_request::Key::InvoiceNumber(number.into())),
            ..Default::default()
        };
        let found = client
            .get_invoice(authorised(token, request))
            .await
            .unwrap()
            .into_inner()
            .invoice
            .unwrap();
        if done(&found) {
            return found;
        }
        assert!(Instant::now() < deadline, "{number}: not there in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn archive_cli(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fapiao"))
        .current_dir(dir)
        .arg("archive")
        .args(args)
        .env("NO_COLOR", "1")
        .env("USER", "auditor-alice")
        .output()
        .expect("fapiao archive runs")
}

#[tokio::test]
async fn the_archive_cli_gets_and_verifies_files_and_detects_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let (mut running, address, token) = serve_in(dir.path());
    let invoice = issue_and_archive(&address, &token).await;
    assert!(terminate(&mut running).await);
    let number = invoice.invoice_number.as_str();
    let pdf_key = &invoice.files[2].object_key;

    let out = archive_cli(
        dir.path(),
        &["get", number, "--format", "pdf", "-o", "copy.pdf"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let copy = std::fs::read(dir.path().join("copy.pdf")).unwrap();
    assert_eq!(
        copy,
        std::fs::read(dir.path().join("data/archive").join(pdf_key)).unwrap()
    );
    assert!(copy.starts_with(b"%PDF-"));

    let out = archive_cli(dir.path(), &["verify", "--no-progress"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["summary"]["invoices_checked"], 1);
    assert_eq!(report["summary"]["invoices_ok"], 1);
    assert_eq!(report["invoices"].as_array().unwrap().len(), 0);

    // One changed byte in the archived PDF.
    let path = dir.path().join("data/archive").join(pdf_key);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();

    let out = archive_cli(
        dir.path(),
        &["verify", "--no-progress", "--report", "report.json"],
    );
    assert_eq!(out.status.code(), Some(1), "a failed check exits with 1");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["summary"]["digest_mismatches"], 1);
    let files = &report["invoices"][0]["files"];
    assert_eq!(report["invoices"][0]["invoice_number"], number);
    assert_eq!(files[2]["format"], "pdf");
    assert_eq!(files[2]["digest_matches"], "failed");
    assert_eq!(files[0]["digest_matches"], "passed");

    let out = archive_cli(
        dir.path(),
        &["get", number, "--format", "pdf", "-o", "bad.pdf"],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not match its recorded SM3 digest"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.path().join("bad.pdf").exists(), "nothing written");

    // Every command-line access is in the trail.
    let db = dir.path().join("data/fapiao.db");
    let store = fapiao_services::store::Store::connect(&fapiao_services::store::StoreOptions {
        url: format!("sqlite://{}", db.display()),
        max_connections: 1,
        acquire_timeout: Duration::from_secs(5),
        sqlite_cache_mib: fapiao_services::store::StoreOptions::SQLITE_CACHE_MIB,
    })
    .await
    .unwrap();
    let trail = store
        .access_records(
            &fapiao_services::store::Scope::unrestricted(),
            &Default::default(),
            None,
            10,
        )
        .await
        .unwrap();
    let seen: Vec<(&str, &str, &str)> = trail
        .iter()
        .map(|r| (r.actor.as_str(), r.method.as_str(), r.outcome.as_str()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("cli:auditor-alice", "cli archive get", "DATA_LOSS"),
            ("cli:auditor-alice", "cli archive verify", "FAILED_CHECKS"),
            ("cli:auditor-alice", "cli archive verify", "OK"),
            ("cli:auditor-alice", "cli archive get", "OK"),
        ]
    );
    store.close().await;
}

#[tokio::test]
async fn reconcile_reports_each_planted_drift_and_repairs_what_it_may() {
    let dir = tempfile::tempdir().unwrap();
    let (mut running, address, token) = serve_in(dir.path());
    let mut numbers = Vec::new();
    for n in 1..=4 {
        let invoice = issue_and_wait(&address, &token, &format!("drift-{n}"), true).await;
        numbers.push(invoice.invoice_number);
    }
    assert!(terminate(&mut running).await);
    let data = dir.path().join("data");

    // The platform loses the first invoice: its record leaves the sandbox's journal.
    let journal = data.join("sandbox.jsonl");
    let kept: Vec<String> = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .filter(|line| {
            !(line.starts_with(r#"{"event":"recorded""#) && line.contains(numbers[0].as_str()))
        })
        .map(str::to_owned)
        .collect();
    std::fs::write(&journal, kept.join("\n") + "\n").unwrap();
    // Locally, the second never heard back from the platform and the third's buyer name changed.
    {
        use sqlx::Connection as _;
        let url = format!("sqlite://{}", data.join("fapiao.db").display());
        let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("UPDATE invoices SET state = 'ISSUED' WHERE invoice_number = ?")
            .bind(&numbers[1])
            .execute(&mut db)
            .await
            .unwrap();
        let changed = sqlx::query(
            "UPDATE invoices SET buyer_name = buyer_name || '（改）' WHERE invoice_number = ?",
        )
        .bind(&numbers[2])
        .execute(&mut db)
        .await
        .unwrap();
        assert_eq!(changed.rows_affected(), 1);
    }

    let (code, report) = reconcile_cli(dir.path(), true);
    assert_eq!(code, Some(1), "drift exits 1: {report:#}");
    assert_eq!(report["complete"], true, "{report:#}");
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["local"], 4);
    assert_eq!(report["remote"], 3);
    assert_eq!(
        report["in_agreement"], 1,
        "the fourth, untouched: {report:#}"
    );
    let expected = |outcomes: [&str; 3]| -> BTreeMap<String, (String, String)> {
        ["missing_on_platform", "status_mismatch", "content_mismatch"]
            .into_iter()
            .zip(outcomes)
            .zip(&numbers)
            .map(|((class, outcome), n)| (n.clone(), (class.to_owned(), outcome.to_owned())))
            .collect()
    };
    assert_eq!(
        drifts_of(&report),
        expected(["failed", "failed", "alert_only"]),
        "a dry run changes nothing: {report:#}"
    );
    assert_eq!(report["drifts_by_class"]["content_mismatch"], 1);
    let (_, again) = reconcile_cli(dir.path(), true);
    assert_eq!(
        drifts_of(&again),
        drifts_of(&report),
        "nothing was repaired"
    );

    // A real pass repairs what it may: the lost invoice is queued for upload, the state adopted;
    // the changed content is only reported.
    let (code, repaired) = reconcile_cli(dir.path(), false);
    assert_eq!(code, Some(1));
    assert_eq!(repaired["dry_run"], false);
    assert_eq!(
        drifts_of(&repaired),
        expected(["done", "done", "alert_only"]),
        "{repaired:#}"
    );
    // The next server start uploads the lost invoice again, and the platform records it.
    let (mut running, address, token) = serve_in(dir.path());
    wait_recorded(&address, &token, &numbers[0]).await;
    assert!(terminate(&mut running).await);
    let (code, after) = reconcile_cli(dir.path(), true);
    assert_eq!(
        code,
        Some(1),
        "the content drift stays until a person resolves it"
    );
    assert_eq!(after["remote"], 4);
    assert_eq!(after["in_agreement"], 3, "{after:#}");
    let left = drifts_of(&after);
    assert_eq!(left.len(), 1);
    assert_eq!(left[&numbers[2]].0, "content_mismatch");

    // Every pass is stored; each drift once, closed when a complete pass no longer finds it.
    let runs: Vec<i64> = [&report, &again, &repaired, &after]
        .iter()
        .map(|r| r["run_id"].as_i64().unwrap())
        .collect();
    assert!(runs.windows(2).all(|w| w[0] < w[1]), "{runs:?}");
    use sqlx::Connection as _;
    let url = format!("sqlite://{}", data.join("fapiao.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let stored: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
        "SELECT invoice_number, class, status, first_run_id, last_run_id FROM drifts ORDER BY id",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    let expected_rows = vec![
        (
            numbers[0].clone(),
            "missing_on_platform".to_owned(),
            "repaired".to_owned(),
            runs[0],
            runs[2],
        ),
        (
            numbers[1].clone(),
            "status_mismatch".to_owned(),
            "repaired".to_owned(),
            runs[0],
            runs[2],
        ),
        (
            numbers[2].clone(),
            "content_mismatch".to_owned(),
            "open".to_owned(),
            runs[0],
            runs[3],
        ),
    ];
    assert_eq!(stored, expected_rows);
    let finished: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM reconcile_runs WHERE finished_at IS NOT NULL AND complete = 1",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(finished, 4);
    let leases: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM leases")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(leases, 0, "every pass gave its lease back");
}

/// A fresh PostgreSQL database for one test, from `FAPIAO_TEST_POSTGRES_URL`.
async fn postgres_database() -> String {
    use sqlx::{Connection as _, Executor as _};
    let admin = std::env::var("FAPIAO_TEST_POSTGRES_URL")
        .expect("FAPIAO_TEST_POSTGRES_URL is set by scripts/test");
    let name = format!(
        "fapiao_lease_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    );
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    let (base, _) = admin.split_once('?').unwrap_or((&admin, ""));
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    format!("{server}/{name}")
}

#[tokio::test]
async fn one_pass_at_a_time_across_processes_on_one_postgres() {
    use fapiao_services::store::{Store, StoreOptions};
    let dir = tempfile::tempdir().unwrap();
    let url = postgres_database().await;
    let store = Store::connect(&StoreOptions {
        url: url.clone(),
        max_connections: 2,
        acquire_timeout: Duration::from_secs(5),
        sqlite_cache_mib: fapiao_services::store::StoreOptions::SQLITE_CACHE_MIB,
    })
    .await
    .unwrap();
    store.migrate().await.unwrap();
    let pass = || {
        Command::new(env!("CARGO_BIN_EXE_fapiao"))
            .current_dir(dir.path())
            .args(["reconcile", "--once", "--no-progress"])
            .env("FAPIAO__DATABASE__URL", &url)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let runs = || async {
        store
            .list_runs(
                &fapiao_services::store::Scope::unrestricted(),
                &fapiao_services::store::RunFilter::default(),
                None,
                10,
            )
            .await
            .unwrap()
            .len()
    };

    // This process holds the lease, as another replica's pass would.
    let now = chrono::Utc::now();
    let take = |holder: &'static str, at: chrono::DateTime<chrono::Utc>| {
        let store = store.clone();
        async move {
            store
                .take_lease("reconcile", holder, at, at + chrono::Duration::minutes(10))
                .await
                .unwrap()
                .map_err(|(holder, _)| holder)
        }
    };
    assert_eq!(take("replica-a", now).await, Ok(()));
    let refused = pass();
    assert_eq!(refused.status.code(), Some(3), "{refused:?}");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("replica-a"), "{said}");
    assert_eq!(runs().await, 0, "no pass ran");
    assert_eq!(take("replica-b", now).await, Err("replica-a".to_owned()));

    // Released, the other process runs its pass and gives the lease back.
    store.release_lease("reconcile", "replica-a").await.unwrap();
    let ran = pass();
    assert_eq!(
        ran.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert_eq!(runs().await, 1);

    // A lease left by a replica that died expires and is taken over.
    assert_eq!(
        take("replica-dead", now - chrono::Duration::minutes(20)).await,
        Ok(())
    );
    let taken_over = pass();
    assert_eq!(taken_over.status.code(), Some(0));
    assert_eq!(runs().await, 2);
    store.close().await;
}

/// The drifts of a reconcile report: number → (class, outcome).
fn drifts_of(report: &serde_json::Value) -> BTreeMap<String, (String, String)> {
    report["drifts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["drift"]["number"].as_str().unwrap().to_owned(),
                (
                    h["drift"]["class"].as_str().unwrap().to_owned(),
                    h["outcome"]["outcome"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect()
}

/// Run `fapiao reconcile --once` over yesterday to tomorrow (China time) with no grace; returns
/// the exit code and the JSON report.
fn reconcile_cli(dir: &std::path::Path, dry_run: bool) -> (Option<i32>, serde_json::Value) {
    let today = chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .date_naive();
    let (from, to) = (today.pred_opt().unwrap(), today.succ_opt().unwrap());
    let mut command = Command::new(env!("CARGO_BIN_EXE_fapiao"));
    command
        .current_dir(dir)
        .args(["reconcile", "--once", "--no-progress"])
        .args(["--from", &from.to_string(), "--to", &to.to_string()])
        .env("FAPIAO__RECONCILE__GRACE", "0s")
        .env("NO_COLOR", "1");
    if dry_run {
        command.arg("--dry-run");
    }
    let out = command.output().unwrap();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), report)
}

/// Wait until the running server says `number` is recorded by the platform.
async fn wait_recorded(address: &str, token: &str, number: &str) {
    use fapiao_proto::v1;
    invoice_when(address, token, number, |found| {
        found.state() == v1::InvoiceState::Recorded
    })
    .await;
}
