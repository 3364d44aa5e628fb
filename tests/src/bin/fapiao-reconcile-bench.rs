//! How long one reconciliation pass over a busy seller-day takes, and how much memory it needs.
//!
//! ```sh
//! cargo build --release -p fapiao-services -p fapiao-tests --bin fapiao --bin fapiao-reconcile-bench
//! target/release/fapiao-reconcile-bench --fapiao target/release/fapiao --invoices 1000000
//! target/release/fapiao-reconcile-bench --fapiao target/release/fapiao --invoices 1000000 \
//!     --database postgres://postgres@127.0.0.1:5432/postgres
//! ```
//!
//! It issues `--invoices` invoices of one seller through the store's own issuing path, spread over
//! the previous China day (with `ANALYZE` as it goes, as autovacuum would), marks them recorded,
//! and writes the same invoices into a sandbox
//! platform journal. A `fapiao sandbox` process replays that journal and serves the platform's
//! listing over the real encrypted, signed protocol. Then one pass (with repairs on) compares
//! the day and the numbers are printed: the pass's wall time, and this process's peak resident
//! memory before and after it. Preparing is not timed. PostgreSQL gets a fresh database, dropped
//! at the end.

#![allow(clippy::print_stdout)]

use anyhow::Context;
use chrono::{DateTime, Days, TimeDelta, Utc};
use clap::Parser;
use fapiao_invoice::taxpayer::TaxpayerId;
use fapiao_reconciler::pass::{Window, day_start};
use fapiao_services::clock::{SystemClock, china_offset};
use fapiao_services::issuance::{content_digest, quota_fen};
use fapiao_services::platform::client::{HttpPlatform, credentials_from_parts};
use fapiao_services::platform::{NumberRange, TaxPlatform};
use fapiao_services::reconciling::{IfIncomplete, Passes, ReconcileConfig, platform_digest};
use fapiao_services::store::{IssueItem, IssueOutcome, PendingDownload, Store, StoreOptions};
use fapiao_tests::sample::{self, DEMO_SELLER};
use sqlx::Connection as _;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(
    name = "fapiao-reconcile-bench",
    about = "Time one reconciliation pass over a busy seller-day"
)]
struct Args {
    /// The fapiao binary, to run the sandbox platform.
    #[arg(long)]
    fapiao: PathBuf,
    /// Invoices of the day.
    #[arg(long, default_value_t = 1_000_000)]
    invoices: u64,
    /// `sqlite`, or the URL of a PostgreSQL server whose role may create databases.
    #[arg(long, default_value = "sqlite")]
    database: String,
}

const UNIT: &str = "BENCH-UNIT";
const USER: &str = "BENCH-USER";
const SM4: &str = "00112233445566778899aabbccddeeff";
const HMAC: &str = "a-signing-key-for-the-benchmark";
/// Invoices issued per store transaction while preparing.
const BATCH: u64 = 500;

struct Sandbox(Child);

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// Peak resident memory of this process so far, in MiB (Linux `VmHWM`).
fn peak_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let (url, dropper) = if args.database == "sqlite" {
        (
            format!("sqlite://{}/bench.db?mode=rwc", dir.path().display()),
            None,
        )
    } else {
        let name = format!("fapiao_bench_{}", std::process::id());
        let mut admin = sqlx::postgres::PgConnection::connect(&args.database).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
        let base = args
            .database
            .rsplit_once('/')
            .map_or(args.database.as_str(), |(b, _)| b);
        (format!("{base}/{name}"), Some(name))
    };
    let result = run(&args, &url, dir.path()).await;
    if let Some(name) = dropper {
        let mut admin = sqlx::postgres::PgConnection::connect(&args.database).await?;
        sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await?;
    }
    result
}

async fn run(args: &Args, url: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let store = Store::connect(&StoreOptions {
        url: url.to_owned(),
        max_connections: 4,
        acquire_timeout: Duration::from_secs(30),
    })
    .await?;
    store.migrate().await?;
    let seller = TaxpayerId::parse(DEMO_SELLER)?;
    let today = Utc::now().with_timezone(&china_offset()).date_naive();
    let day = today
        .checked_sub_days(Days::new(1))
        .context("no previous day")?;
    let window = Window {
        from: day_start(day),
        to: day_start(today),
    };
    let prepared = Instant::now();
    let journal = dir.join("sandbox.jsonl");
    prepare(&store, &seller, args.invoices, window, &journal, url).await?;
    println!(
        "prepared {} invoices of {day} in {:.1?}",
        args.invoices,
        prepared.elapsed()
    );

    let config = dir.join("sandbox.toml");
    std::fs::write(
        &config,
        format!(
            "[sandbox]\nlisten = \"127.0.0.1:0\"\nstate_file = {:?}\n\n[[sandbox.units]]\n\
             unit_id = \"{UNIT}\"\nuser_id = \"{USER}\"\nsm4_key = \"{SM4}\"\nhmac_key = \"{HMAC}\"\n",
            journal.display().to_string()
        ),
    )?;
    let started = Instant::now();
    let mut child = Command::new(&args.fapiao)
        .args(["sandbox", "--config"])
        .arg(&config)
        .env("FAPIAO_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the sandbox")?;
    let stdout = child.stdout.take().context("the sandbox's output")?;
    let sandbox = Sandbox(child);
    let mut lines = BufReader::new(stdout).lines();
    let address = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("sandbox tax platform listening"))
        .and_then(|l| {
            l.split("address=")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .map(str::to_owned)
        })
        .context("the sandbox did not say where it listens")?;
    // Keep reading what the sandbox logs, so its writes never fail on a closed pipe.
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
    println!("sandbox replayed its journal in {:.1?}", started.elapsed());

    let credentials = credentials_from_parts(
        "bench",
        UNIT,
        USER,
        Some(&SM4.to_owned().into()),
        Some(&HMAC.to_owned().into()),
    )?;
    let platform: Arc<dyn TaxPlatform> = Arc::new(HttpPlatform::new(
        &format!("http://{address}"),
        credentials,
        Duration::from_secs(60),
        &fapiao_services::platform::client::ClientConfig::default().capability,
    )?);
    let passes = Passes {
        store: store.clone(),
        platform,
        clock: Arc::new(SystemClock),
        config: ReconcileConfig::default(),
        sellers: vec![DEMO_SELLER.to_owned()],
        holder: "bench".to_owned(),
        metrics: None,
    };
    let run = store
        .start_run(
            "manual",
            "bench",
            false,
            (window.from, window.to),
            Utc::now(),
        )
        .await?;
    let before = peak_mib();
    let timer = Instant::now();
    let report = passes
        .execute(
            run,
            window,
            &passes.sellers,
            false,
            IfIncomplete::Fail,
            &|_| {},
        )
        .await?;
    let took = timer.elapsed();
    let after = peak_mib();
    println!(
        "pass: {took:.2?} for {} local and {} platform invoices, {} in agreement, {} drifts, \
         complete: {}",
        report.local,
        report.remote,
        report.in_agreement,
        report.drifts.len(),
        report.complete()
    );
    println!(
        "peak resident memory of this process: {} MiB before the pass, {} MiB after",
        before.map_or("?".into(), |m| m.to_string()),
        after.map_or("?".into(), |m| m.to_string())
    );
    drop(sandbox);
    store.close().await;
    anyhow::ensure!(
        report.complete() && report.drifts.is_empty() && report.local == args.invoices,
        "the pass did not find the day in agreement"
    );
    Ok(())
}

/// Issue the day's invoices through the store, mark them recorded, and journal the same invoices
/// as the platform's records.
async fn prepare(
    store: &Store,
    seller: &TaxpayerId,
    count: u64,
    window: Window,
    journal: &std::path::Path,
    url: &str,
) -> anyhow::Result<()> {
    let at = window.from;
    let first: fapiao_invoice::number::InvoiceNumber = "26312000000000000001".parse()?;
    let last: fapiao_invoice::number::InvoiceNumber = format!("263120{:014}", count + 1).parse()?;
    store
        .add_number_range(seller, &NumberRange { first, last }, at)
        .await?;
    let download = PendingDownload {
        serial: "bench".into(),
        asked_fen: i64::MAX / 4,
    };
    store.begin_quota_download(seller, &download, at).await?;
    store
        .complete_quota_download(seller, "bench", i64::MAX / 4)
        .await?;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(journal)?);
    let step = TimeDelta::microseconds(86_400_000_000 / i64::try_from(count.max(1))?);
    let mut issued = 0u64;
    while issued < count {
        let n = BATCH.min(count - issued);
        let items: Vec<IssueItem> = (issued..issued + n)
            .map(|i| {
                let content = sample::content(
                    DEMO_SELLER,
                    &format!("bench-{i}"),
                    &format!("{}", 100 + i % 900),
                );
                IssueItem {
                    seller_tax_id: DEMO_SELLER.to_owned(),
                    request_id: content.request_id.clone(),
                    content_sm3: content_digest(&content),
                    quota_fen: quota_fen(&content),
                    content,
                    actor: "bench".to_owned(),
                }
            })
            .collect();
        let when: DateTime<Utc> = at + step * i32::try_from(issued)?;
        for outcome in store.issue_batch(&items, when).await? {
            let IssueOutcome::Issued(stored) = outcome else {
                anyhow::bail!("an invoice was not issued: {outcome:?}");
            };
            let line = serde_json::json!({
                "event": "recorded",
                "seller": DEMO_SELLER,
                "number": stored.number.to_string(),
                "issued_at": stored.issued_at,
                "recorded_at": stored.issued_at,
                "content_sm3": platform_digest(&stored.content),
                "content": stored.content,
            });
            serde_json::to_writer(&mut out, &line)?;
            out.write_all(b"\n")?;
        }
        issued += n;
        // Keep the planner's statistics current as a maintained database would (autovacuum may
        // be off on a test server).
        if issued % 100_000 < BATCH {
            sqlx::query("ANALYZE").execute(&pool).await?;
        }
    }
    out.flush()?;
    // The platform holds them all: locally they are recorded, with no work left.
    sqlx::query(
        "UPDATE invoices SET state = 'RECORDED', upload_phase = NULL, next_attempt_at = NULL, \
         archive_due_at = NULL",
    )
    .execute(&pool)
    .await?;
    sqlx::query("ANALYZE").execute(&pool).await?;
    pool.close().await;
    Ok(())
}
