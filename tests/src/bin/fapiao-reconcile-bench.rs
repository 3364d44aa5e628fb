//! How long one reconciliation pass over a busy seller-day takes, and how much memory it needs.
//!
//! ```sh
//! cargo build --release -p fapiao-services -p fapiao-tests --bin fapiao --bin fapiao-reconcile-bench
//! target/release/fapiao-reconcile-bench --fapiao target/release/fapiao --invoices 1000000
//! target/release/fapiao-reconcile-bench --fapiao target/release/fapiao --invoices 1000000 \
//!     --database postgres://postgres@127.0.0.1:5432/postgres
//! ```
//!
//! It prepares `--invoices` invoices of one seller over the previous China day with the harness's
//! [`fapiao_tests::busy_day`] (issued through the store's own issuing path, recorded, and written
//! into a sandbox platform journal). A `fapiao sandbox` process replays that journal and serves the
//! platform's listing over the real encrypted, signed protocol, answering `--busy` of the listing
//! calls "busy" and leaving `--timeouts` of them unanswered past the client's `--timeout` (with a
//! fixed seed, so a run's faults fall on the same calls every time). Then one pass (with repairs
//! on, and failed listing pages read again up to `--page-attempts` times with the default
//! back-off) compares the day and the numbers are printed: the pass's wall time, the pages read
//! again, and this process's peak resident memory before and after it. Preparing is not timed.
//! PostgreSQL gets a fresh database, dropped at the end.
//!
//! ```sh
//! target/release/fapiao-reconcile-bench --fapiao target/release/fapiao --invoices 100000 \
//!     --busy 5% --timeouts 5% --timeout 2s
//! ```

#![allow(clippy::print_stdout)]

use anyhow::Context;
use chrono::{Days, Utc};
use clap::Parser;
use fapiao_services::clock::{SystemClock, china_offset};
use fapiao_services::platform::TaxPlatform;
use fapiao_services::platform::client::{HttpPlatform, credentials_from_parts};
use fapiao_services::reconciling::{IfIncomplete, Passes, ReconcileConfig};
use fapiao_services::store::{Store, StoreOptions};
use fapiao_tests::busy_day::{self, BusyDay};
use fapiao_tests::sample::DEMO_SELLER;
use sqlx::Connection as _;
use std::io::{BufRead, BufReader};
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
    /// Share of listing calls the sandbox answers "busy", e.g. `5%`.
    #[arg(long, default_value = "0%")]
    busy: String,
    /// Share of listing calls the sandbox leaves unanswered past the client's timeout, e.g. `5%`.
    #[arg(long, default_value = "0%")]
    timeouts: String,
    /// The client's timeout for one platform call; an unanswered call hangs twice as long.
    #[arg(long, default_value = "5s", value_parser = humantime_serde::re::humantime::parse_duration)]
    timeout: Duration,
    /// Reads of one listing page, the first included (`reconcile.page_attempts`); 1 reads no
    /// page again, as passes did before failed pages were retried.
    #[arg(long, default_value_t = ReconcileConfig::default().page_attempts)]
    page_attempts: u32,
}

const UNIT: &str = "BENCH-UNIT";
const USER: &str = "BENCH-USER";
const SM4: &str = "00112233445566778899aabbccddeeff";
const HMAC: &str = "a-signing-key-for-the-benchmark";
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
        sqlite_cache_mib: fapiao_services::store::StoreOptions::SQLITE_CACHE_MIB,
    })
    .await?;
    store.migrate().await?;
    let today = Utc::now().with_timezone(&china_offset()).date_naive();
    let busy = BusyDay {
        day: today
            .checked_sub_days(Days::new(1))
            .context("no previous day")?,
        invoices: args.invoices,
        first: "26312000000000000001".parse()?,
    };
    let window = busy.window()?;
    let prepared = Instant::now();
    let journal = dir.join("sandbox.jsonl");
    busy_day::prepare(&store, url, &busy, &journal).await?;
    println!(
        "prepared {} invoices of {} in {:.1?}",
        args.invoices,
        busy.day,
        prepared.elapsed()
    );

    let config = dir.join("sandbox.toml");
    std::fs::write(
        &config,
        format!(
            "[sandbox]\nlisten = \"127.0.0.1:0\"\nstate_file = {:?}\nseed = 7\n\n[[sandbox.units]]\n\
             unit_id = \"{UNIT}\"\nuser_id = \"{USER}\"\nsm4_key = \"{SM4}\"\nhmac_key = \"{HMAC}\"\n\n\
             [sandbox.faults]\nbusy_rate = {:?}\ntimeout_rate = {:?}\ntimeout_hang = \"{}ms\"\n\
             services = [\"CXQDFPLB\"]\n",
            journal.display().to_string(),
            args.busy,
            args.timeouts,
            args.timeout.as_millis().saturating_mul(2),
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
        args.timeout,
        &fapiao_services::platform::client::ClientConfig::default().capability,
    )?);
    let passes = Passes {
        store: store.clone(),
        platform,
        clock: Arc::new(SystemClock),
        config: ReconcileConfig {
            page_attempts: args.page_attempts,
            ..ReconcileConfig::default()
        },
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
         complete: {}, listing pages read again: {}",
        report.local,
        report.remote,
        report.in_agreement,
        report.drifts.len(),
        report.complete(),
        report.page_retries
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
        "the pass did not find the day in agreement: {:?}",
        report.gaps.first()
    );
    Ok(())
}
