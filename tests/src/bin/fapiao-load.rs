//! `fapiao-load`: a load generator for `IssueInvoice`.
//!
//! It either targets a running server (`--target`, `--token`) or starts `fapiao serve` itself
//! (`--serve PATH` to the binary, `--database URL`, a fresh data folder, the in-process sandbox),
//! then issues invoices for `--duration`:
//! - closed loop (`--rate 0`): `--concurrency` callers, each sending its next request as soon as
//!   the last one is answered: the most the server sustains;
//! - open loop (`--rate N`): N requests a second on a fixed schedule whatever the latency, so
//!   queueing shows up in the latency percentiles.
//!
//! It reports throughput, latency percentiles (HDR histogram) and errors by status code, then
//! waits until the platform has recorded everything and reports how long that took and the
//! largest upload backlog it saw (sampled from the server's log when it started the server).
//! When it started the server it also waits until every invoice's XML, OFD and PDF are archived
//! (reading the archive backlog from the server's database) and reports the end-to-end rate:
//! invoices issued ÷ time from the first request until the last file was recorded.

// A command-line report: printing is its output, and rates and percentiles are statistics, not money.
#![allow(
    clippy::print_stdout,
    clippy::float_arithmetic,
    clippy::cast_precision_loss
)]

use anyhow::Context;
use clap::Parser;
use fapiao_proto::v1::issuance_service_client::IssuanceServiceClient;
use fapiao_proto::v1::{self, IssueInvoiceRequest, ListInvoicesRequest};
use fapiao_services::store::{Store, StoreOptions};
use fapiao_tests::Bearer;
use fapiao_tests::sample;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

#[derive(Debug, Parser)]
#[command(
    name = "fapiao-load",
    about = "Load generator for fapiao's IssueInvoice"
)]
struct Args {
    /// Server to load, when it is already running.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    target: String,
    /// Bearer token of an issuer for the demo seller (not needed with --serve).
    #[arg(long, env = "FAPIAO_TOKEN")]
    token: Option<String>,
    /// Start this `fapiao` binary with `serve` on a fresh data folder instead of using --target.
    #[arg(long)]
    serve: Option<std::path::PathBuf>,
    /// Database for --serve: `sqlite` (a file in the data folder) or a postgres:// URL.
    #[arg(long, default_value = "sqlite")]
    database: String,
    /// Requests per second; 0 means as fast as the server answers (closed loop).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Callers in the closed loop, or most requests in flight in the open loop.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// How long to issue, e.g. 60s.
    #[arg(long, default_value = "60s", value_parser = humantime_serde::re::humantime::parse_duration)]
    duration: Duration,
    /// Issue this many invoices, however long it takes (instead of --duration).
    #[arg(long)]
    count: Option<u64>,
    /// Longest wait for the platform to record everything after the run.
    #[arg(long, default_value = "300s", value_parser = humantime_serde::re::humantime::parse_duration)]
    drain_timeout: Duration,
}

#[derive(Debug, Default)]
struct Tally {
    latency: Option<Histogram<u64>>,
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn record(&mut self, started: Instant, result: Result<(), String>) {
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        match result {
            Ok(()) => {
                if let Some(h) = self.latency.as_mut() {
                    let _ = h.record(micros.max(1));
                }
            }
            Err(code) => *self.errors.entry(code).or_default() += 1,
        }
    }
}

struct Server {
    /// The server's database, to watch the archive backlog.
    database_url: String,
    child: Child,
    backlog_peak: Arc<AtomicU64>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Start `fapiao serve` and read its address and development token from the log.
fn start_server(
    binary: &std::path::Path,
    database: &str,
) -> anyhow::Result<(Server, String, String)> {
    let dir = tempfile::tempdir()?;
    let mut command = Command::new(binary);
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("FAPIAO__METRICS__LISTEN", "127.0.0.1:0")
        .env("FAPIAO_LOG", "info")
        .env("NO_COLOR", "1")
        .env("FAPIAO__DATA_DIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if database != "sqlite" {
        command.env("FAPIAO__DATABASE__URL", database);
    }
    let mut child = command.spawn().context("starting fapiao serve")?;
    let stdout = child.stdout.take().context("piped stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut token = None;
    let mut address = None;
    for line in lines.by_ref() {
        let line = line?;
        if let Some(rest) = line.split("every seller): ").nth(1) {
            token = rest.split_whitespace().next().map(str::to_owned);
        }
        if let Some(rest) = line.split("address=").nth(1)
            && line.contains("fapiao listening")
        {
            address = rest.split_whitespace().next().map(str::to_owned);
            break;
        }
    }
    let (Some(address), Some(token)) = (address, token) else {
        anyhow::bail!("fapiao serve exited before listening");
    };
    let backlog_peak = Arc::new(AtomicU64::new(0));
    let peak = backlog_peak.clone();
    // Keep reading the log: it reports the upload backlog every few seconds.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if let Some(rest) = line.split("backlog=").nth(1)
                && let Some(n) = rest
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
            {
                peak.fetch_max(n, Ordering::Relaxed);
            }
        }
    });
    let database_url = if database == "sqlite" {
        format!("sqlite://{}/fapiao.db", dir.path().display())
    } else {
        database.to_owned()
    };
    Ok((
        Server {
            database_url,
            child,
            backlog_peak,
            _dir: dir,
        },
        format!("http://{address}"),
        token,
    ))
}

type Client =
    IssuanceServiceClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;

async fn issue_one(mut client: Client, n: u64, run: &str) -> Result<(), String> {
    let request = IssueInvoiceRequest {
        invoice: Some(sample::input(&format!("{run}-{n}"), "100.00")),
        ..Default::default()
    };
    client
        .issue_invoice(request)
        .await
        .map(|_| ())
        .map_err(|s| format!("{:?}", s.code()))
}

async fn count_waiting(client: &mut Client) -> anyhow::Result<usize> {
    let page = client
        .list_invoices(ListInvoicesRequest {
            seller_tax_id: sample::DEMO_SELLER.into(),
            states: vec![
                v1::InvoiceState::Issued.into(),
                v1::InvoiceState::Uploading.into(),
            ],
            page_size: 500,
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(page.invoices.len())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (server, target, token) = match &args.serve {
        Some(binary) => {
            let (server, target, token) = start_server(binary, &args.database)?;
            (Some(server), target, token)
        }
        None => (
            None,
            args.target.clone(),
            args.token
                .clone()
                .context("--token (or FAPIAO_TOKEN) is needed with --target")?,
        ),
    };
    let channel = Channel::from_shared(target.clone())?.connect().await?;
    let client: Client = IssuanceServiceClient::with_interceptor(channel, Bearer(token));
    let run = format!("load-{}", chrono::Utc::now().timestamp_millis());
    let tally = Arc::new(Mutex::new(Tally {
        latency: Some(Histogram::new_with_bounds(1, 60_000_000, 3)?),
        errors: BTreeMap::new(),
    }));
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let trail = server
        .as_ref()
        .map(|server| sample_memory(server.child.id(), next.clone()));
    // With --count the run ends at the count; a year stands for "no time limit".
    let end = started
        + args
            .count
            .map_or(args.duration, |_| Duration::from_secs(365 * 86_400));
    let limit = args.count.unwrap_or(u64::MAX);
    if args.rate == 0 {
        let mut callers = Vec::new();
        for _ in 0..args.concurrency.max(1) {
            let (client, tally, next, run) =
                (client.clone(), tally.clone(), next.clone(), run.clone());
            callers.push(tokio::spawn(async move {
                while Instant::now() < end {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= limit {
                        break;
                    }
                    let t = Instant::now();
                    let result = issue_one(client.clone(), n, &run).await;
                    tally
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .record(t, result);
                }
            }));
        }
        for caller in callers {
            caller.await?;
        }
    } else {
        let permits = Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1)));
        let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate as f64));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut in_flight = tokio::task::JoinSet::new();
        while Instant::now() < end && next.load(Ordering::Relaxed) < limit {
            let scheduled = ticks.tick().await;
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                tally
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .errors
                    .entry("CLIENT_OVERLOADED".into())
                    .and_modify(|n| *n += 1)
                    .or_insert(1);
                continue;
            };
            let (client, tally, run) = (client.clone(), tally.clone(), run.clone());
            let n = next.fetch_add(1, Ordering::Relaxed);
            in_flight.spawn(async move {
                // Latency from the scheduled send time, so a stalled client is not hidden.
                let t = scheduled.into_std();
                let result = issue_one(client, n, &run).await;
                tally
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .record(t, result);
                drop(permit);
            });
        }
        while in_flight.join_next().await.is_some() {}
    }
    let elapsed = started.elapsed();
    let tally = std::mem::take(&mut *tally.lock().unwrap_or_else(PoisonError::into_inner));
    let histogram = tally.latency.context("histogram")?;
    let ok = histogram.len();
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    println!("target      {target}  database {}", args.database);
    println!(
        "mode        {}",
        if args.rate == 0 {
            format!("closed loop, {} callers", args.concurrency)
        } else {
            format!("open loop, {}/s", args.rate)
        }
    );
    println!(
        "issued      {ok} in {:.1}s = {:.0}/s",
        elapsed.as_secs_f64(),
        ok as f64 / elapsed.as_secs_f64()
    );
    println!(
        "latency ms  p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        histogram.max() as f64 / 1000.0
    );
    println!("errors      {:?}", tally.errors);

    let mut lister = client.clone();
    let drain_start = Instant::now();
    let drain_limit = args.drain_timeout.max(elapsed);
    loop {
        let waiting = count_waiting(&mut lister).await?;
        if waiting == 0 {
            println!(
                "drained     every invoice RECORDED {:.1}s after the run",
                drain_start.elapsed().as_secs_f64()
            );
            break;
        }
        if drain_start.elapsed() > drain_limit {
            println!("drained     NO: {waiting}+ invoices still waiting after {drain_limit:?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if let Some(server) = &server {
        println!(
            "backlog     peak {} invoices waiting for the platform (server log)",
            server.backlog_peak.load(Ordering::Relaxed)
        );
        let store = Store::connect(&StoreOptions {
            url: server.database_url.clone(),
            max_connections: 1,
            acquire_timeout: Duration::from_secs(10),
            sqlite_cache_mib: fapiao_services::store::StoreOptions::SQLITE_CACHE_MIB,
        })
        .await?;
        loop {
            let backlog = store.archive_backlog().await?;
            if backlog.pending == 0 {
                let total = started.elapsed().as_secs_f64();
                println!(
                    "archived    every invoice's XML, OFD and PDF {:.1}s after the run ({} parked); \
                     end to end {ok} in {total:.1}s = {:.0}/s",
                    total - elapsed.as_secs_f64(),
                    backlog.parked,
                    ok as f64 / total
                );
                break;
            }
            if started.elapsed() > elapsed + drain_limit {
                println!(
                    "archived    NO: {} invoices still without files",
                    backlog.pending
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        store.close().await;
        println!("memory      {}", server_memory(server.child.id()));
        if let Some((sampler, samples)) = trail {
            sampler.abort();
            let samples = samples.lock().unwrap_or_else(PoisonError::into_inner);
            let shown: Vec<String> = samples
                .iter()
                .map(|(issued, kib)| format!("{issued}: {:.0}", *kib as f64 / 1024.0))
                .collect();
            println!(
                "rss trail   MiB by invoices issued, every 10 s: {}",
                shown.join(", ")
            );
        }
    }
    drop(server);
    Ok(())
}

/// The server's resident memory in KiB, from `/proc` (Linux).
fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// Every 10 s, the invoices issued so far and the server's resident memory.
type Samples = Arc<Mutex<Vec<(u64, u64)>>>;

fn sample_memory(pid: u32, issued: Arc<AtomicU64>) -> (tokio::task::JoinHandle<()>, Samples) {
    let samples = Samples::default();
    let kept = samples.clone();
    let sampler = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(10));
        loop {
            ticks.tick().await;
            if let Some(kib) = resident_kib(pid) {
                kept.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((issued.load(Ordering::Relaxed), kib));
            }
        }
    });
    (sampler, samples)
}

/// The server's resident memory now and at its peak, from `/proc` (Linux).
fn server_memory(pid: u32) -> String {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return "unknown (no /proc)".to_owned();
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
            .map_or_else(
                || "?".to_owned(),
                |kib| format!("{:.1} MiB", kib as f64 / 1024.0),
            )
    };
    format!(
        "server RSS {} (peak {}) after the run",
        field("VmRSS:"),
        field("VmHWM:")
    )
}
