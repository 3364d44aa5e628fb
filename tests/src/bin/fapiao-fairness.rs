//! `fapiao-fairness`: how much one greedy caller slows everyone else.
//!
//! It starts `fapiao serve` (`--serve PATH`) on a fresh data folder with three callers (a loader,
//! a greedy watcher and a probe), issues `--invoices` invoices and waits until the platform has
//! recorded them, so that watching from the start means catching up with a long history. Then it
//! measures the probe's `GetInvoice` latency at `--rate` for `--duration` twice: quiet, and while
//! the greedy caller opens `--watchers` `WatchInvoices` streams from the start (reading as fast as
//! it can), `--stalled` streams it never reads, `--idle` HTTP/2 connections that never call and
//! `--silent` TCP connections that never send a byte. It prints both latency distributions, their
//! p99 ratio, what the watchers got, and the server's resident memory along the way.
//!
//! The stalled streams belong to a caller of their own, so the reading watches are the greedy
//! caller's alone. `--limits off` runs the same with the server's limits out of the way, for
//! comparison.

// A command-line report: printing is its output, and percentiles are statistics, not money.
#![allow(
    clippy::print_stdout,
    clippy::float_arithmetic,
    clippy::cast_precision_loss
)]

use anyhow::Context;
use clap::Parser;
use fapiao_proto::v1;
use fapiao_proto::v1::issuance_service_client::IssuanceServiceClient;
use fapiao_tests::{Bearer, sample};
use hdrhistogram::Histogram;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tonic::transport::Channel;

const LOADER: &str = "fairness-loader-token-01";
const GREEDY: &str = "fairness-greedy-token-01";
const PROBE: &str = "fairness-probe-token-001";
const STALLED: &str = "fairness-stalled-token-1";

#[derive(Debug, Parser)]
#[command(
    name = "fapiao-fairness",
    about = "How one greedy caller affects the others"
)]
struct Args {
    /// The `fapiao` binary to start.
    #[arg(long)]
    serve: std::path::PathBuf,
    /// `default` (the shipped limits) or `off` (limits out of the way).
    #[arg(long, default_value = "default")]
    limits: String,
    /// Invoices issued first, whose events the watchers catch up with.
    #[arg(long, default_value_t = 20_000)]
    invoices: u64,
    /// Watches from the start that read as fast as they can.
    #[arg(long, default_value_t = 50)]
    watchers: usize,
    /// Watches from the start that are never read.
    #[arg(long, default_value_t = 10)]
    stalled: usize,
    /// HTTP/2 connections that never call.
    #[arg(long, default_value_t = 2_000)]
    idle: usize,
    /// TCP connections that never send a byte.
    #[arg(long, default_value_t = 500)]
    silent: usize,
    /// The probe's calls a second.
    #[arg(long, default_value_t = 100)]
    rate: u64,
    /// How long each measurement lasts.
    #[arg(long, default_value = "20s", value_parser = humantime_serde::re::humantime::parse_duration)]
    duration: Duration,
}

struct Server {
    child: Child,
    address: String,
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

impl Server {
    /// Resident memory of the server, in MiB.
    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    }
}

fn start(binary: &std::path::Path, limits_off: bool) -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    let mut config = String::new();
    for (name, token) in [
        ("loader", LOADER),
        ("greedy", GREEDY),
        ("probe", PROBE),
        ("stalled", STALLED),
    ] {
        config.push_str(&format!(
            "[[tokens]]\nname = \"{name}\"\ntoken = \"{token}\"\nroles = [\"issuer\"]\nsellers = [\"*\"]\n\n"
        ));
    }
    if limits_off {
        config.push_str(
            "[server]\ncalls_per_caller = 1000000\ncalls_total = 1000000\n\
             streams_per_caller = 1000000\nstreams_total = 1000000\n\
             catch_up_rate = 1000000000\nstream_buffer = 256\n\
             handshake_timeout = \"1h\"\nidle_timeout = \"1h\"\n",
        );
    }
    let path = dir.path().join("fapiao.toml");
    std::fs::write(&path, config)?;
    let mut child = Command::new(binary)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .env("FAPIAO__METRICS__LISTEN", "127.0.0.1:0")
        .env("FAPIAO__DATA_DIR", dir.path())
        .env("FAPIAO_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting fapiao serve")?;
    let stdout = child.stdout.take().context("piped stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut address = None;
    for line in lines.by_ref() {
        let line = line?;
        if let Some(rest) = line.split("address=").nth(1)
            && line.contains("fapiao listening")
        {
            address = rest.split_whitespace().next().map(str::to_owned);
            break;
        }
    }
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    let address = address.context("fapiao serve exited before listening")?;
    Ok(Server {
        child,
        address,
        _dir: dir,
    })
}

type Client =
    IssuanceServiceClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;

async fn client(address: &str, token: &str) -> anyhow::Result<Client> {
    let channel = Channel::from_shared(format!("http://{address}"))?
        .connect()
        .await?;
    Ok(IssuanceServiceClient::with_interceptor(
        channel,
        Bearer(token.to_owned()),
    ))
}

/// Issue `count` invoices with 32 callers; their numbers.
async fn preload(address: &str, count: u64) -> anyhow::Result<Vec<String>> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let mut client = client(address, LOADER).await?;
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut numbers = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    return numbers;
                }
                let answer = client
                    .issue_invoice(v1::IssueInvoiceRequest {
                        invoice: Some(sample::input(&format!("fair-{n}"), "100.00")),
                        ..Default::default()
                    })
                    .await;
                if let Ok(answer) = answer
                    && let Some(invoice) = answer.into_inner().invoice
                {
                    numbers.push(invoice.invoice_number);
                }
            }
        }));
    }
    let mut numbers = Vec::new();
    for task in tasks {
        numbers.extend(task.await?);
    }
    Ok(numbers)
}

/// Wait until nothing waits for the platform and the newest invoices' files are archived (the
/// archive worker goes oldest first), so the quiet measurement is quiet.
async fn settled(address: &str) -> anyhow::Result<()> {
    let mut client = client(address, LOADER).await?;
    loop {
        let newest = client
            .list_invoices(v1::ListInvoicesRequest {
                seller_tax_id: sample::DEMO_SELLER.into(),
                page_size: 50,
                ..Default::default()
            })
            .await?
            .into_inner()
            .invoices;
        if newest.iter().all(|i| i.files.len() == 3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    loop {
        let waiting = client
            .list_invoices(v1::ListInvoicesRequest {
                seller_tax_id: sample::DEMO_SELLER.into(),
                states: vec![
                    v1::InvoiceState::Issued.into(),
                    v1::InvoiceState::Uploading.into(),
                ],
                page_size: 1,
                ..Default::default()
            })
            .await?
            .into_inner()
            .invoices
            .len();
        if waiting == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The probe's `GetInvoice` latencies (µs) at `rate` for `duration`, open loop; and its errors.
async fn probe(
    address: &str,
    numbers: &[String],
    rate: u64,
    duration: Duration,
) -> anyhow::Result<(Histogram<u64>, u64)> {
    let client = client(address, PROBE).await?;
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / u32::try_from(rate)?);
    let end = Instant::now() + duration;
    let mut calls = Vec::new();
    let mut n = 0usize;
    while Instant::now() < end {
        ticks.tick().await;
        let mut client = client.clone();
        let number = numbers[n % numbers.len()].clone();
        n += 1;
        calls.push(tokio::spawn(async move {
            let started = Instant::now();
            let answer = client
                .get_invoice(v1::GetInvoiceRequest {
                    key: Some(v1::get_invoice_request::Key::InvoiceNumber(number)),
                    ..Default::default()
                })
                .await;
            (started.elapsed(), answer.is_ok())
        }));
    }
    let mut histogram = Histogram::<u64>::new(3)?;
    let mut errors = 0;
    for call in calls {
        let (took, ok) = call.await?;
        if ok {
            histogram.record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1))?;
        } else {
            errors += 1;
        }
    }
    Ok((histogram, errors))
}

fn line(name: &str, h: &Histogram<u64>, errors: u64) -> String {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    format!(
        "{name:<8} calls {:>6}  p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms  errors {errors}",
        h.len(),
        ms(0.5),
        ms(0.99),
        h.max() as f64 / 1000.0
    )
}

/// What the greedy callers got: streams admitted and refused, events read.
#[derive(Default)]
struct Greed {
    admitted: AtomicU64,
    refused: AtomicU64,
    events: AtomicU64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server = start(&args.serve, args.limits == "off")?;
    let address = server.address.clone();
    println!(
        "limits {}  server rss at start {:.0} MiB",
        args.limits,
        server.rss_mib()
    );
    let numbers = preload(&address, args.invoices).await?;
    settled(&address).await?;
    println!(
        "issued and recorded {} invoices; rss {:.0} MiB",
        numbers.len(),
        server.rss_mib()
    );
    let (quiet, quiet_errors) = probe(&address, &numbers, args.rate, args.duration).await?;

    // The greedy caller: stalled watches first (to weigh what one holds), then watches that
    // read, idle and silent connections.
    let greed = Arc::new(Greed::default());
    let mut holding = Vec::new();
    let rss_before_stalled = server.rss_mib();
    let order = (0..args.stalled)
        .map(|_| false)
        .chain((0..args.watchers).map(|_| true));
    for (n, reading) in order.enumerate() {
        if n == args.stalled && args.stalled > 0 {
            tokio::time::sleep(Duration::from_secs(3)).await;
            println!(
                "{} stalled watches from the start hold {:.1} MiB in all",
                greed.admitted.load(Ordering::Relaxed),
                server.rss_mib() - rss_before_stalled
            );
        }
        let mut client = client(&address, if reading { GREEDY } else { STALLED }).await?;
        let greed = greed.clone();
        holding.push(tokio::spawn(async move {
            let answer = client
                .watch_invoices(v1::WatchInvoicesRequest {
                    seller_tax_ids: Vec::new(),
                    after_cursor: "e0".into(),
                })
                .await;
            let Ok(answer) = answer else {
                greed.refused.fetch_add(1, Ordering::Relaxed);
                return;
            };
            greed.admitted.fetch_add(1, Ordering::Relaxed);
            let mut stream = answer.into_inner();
            if !reading {
                std::future::pending::<()>().await;
            }
            while let Ok(Some(_)) = stream.message().await {
                greed.events.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut sockets = Vec::new();
    for _ in 0..args.idle {
        let mut socket = tokio::net::TcpStream::connect(&address).await?;
        socket
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await?;
        socket.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await?;
        sockets.push(socket);
    }
    for _ in 0..args.silent {
        sockets.push(tokio::net::TcpStream::connect(&address).await?);
    }
    let (loaded, loaded_errors) = probe(&address, &numbers, args.rate, args.duration).await?;
    let rss_loaded = server.rss_mib();
    for task in &holding {
        task.abort();
    }
    drop(sockets);
    tokio::time::sleep(Duration::from_secs(5)).await;
    println!("{}", line("quiet", &quiet, quiet_errors));
    println!("{}", line("loaded", &loaded, loaded_errors));
    println!(
        "p99 loaded / quiet: {:.1}x",
        loaded.value_at_quantile(0.99) as f64 / quiet.value_at_quantile(0.99).max(1) as f64
    );
    println!(
        "greedy watches admitted {}  refused {}  events read {}",
        greed.admitted.load(Ordering::Relaxed),
        greed.refused.load(Ordering::Relaxed),
        greed.events.load(Ordering::Relaxed)
    );
    println!(
        "rss under load {rss_loaded:.0} MiB; 5 s after the greedy caller left {:.0} MiB",
        server.rss_mib()
    );
    Ok(())
}
