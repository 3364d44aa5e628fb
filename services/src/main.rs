//! The `fapiao` binary: parse the command line, set up logging, and run. Everything else lives in
//! the library so tests can drive it in-process.

use anyhow::Context;
use clap::{Parser, Subcommand};
use fapiao_archive::Format;
use fapiao_services::{config::Config, server};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// An issuance core for China's fully digitalized electronic invoices (数电票).
#[derive(Debug, Parser)]
#[command(name = "fapiao", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply the database migrations this build knows, then exit. `serve` applies them too.
    Migrate {
        /// Configuration file (TOML); its `database` section names the database.
        #[arg(long, env = "FAPIAO_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Run the gRPC service. With no options it runs on embedded defaults.
    Serve {
        /// Configuration file (TOML); see deploy/fapiao.example.toml.
        #[arg(long, env = "FAPIAO_CONFIG")]
        config: Option<PathBuf>,
        /// Listen address, overriding the configuration.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Log as JSON lines (for production log pipelines).
        #[arg(long)]
        json_logs: bool,
    },
    /// Read and verify archived layout files, straight from the configured database and archive.
    /// Every access is recorded in the audit trail.
    Archive {
        #[command(subcommand)]
        command: ArchiveCommand,
        /// Configuration file (TOML); its `database` and `archive` sections are used.
        #[arg(long, env = "FAPIAO_CONFIG", global = true)]
        config: Option<PathBuf>,
    },
    /// Compare the store with the tax platform over whole China-time days and print a JSON report
    /// of every drift (missing on platform, stuck, status mismatch, remote only, content mismatch)
    /// with the repair it calls for, and make the repairs the plan allows (re-uploads are queued
    /// for the server's upload worker; content drift is never repaired). Every pass is stored with
    /// its drifts. Exits with status 1 when anything drifted or a day could not be compared, and
    /// 3 when another pass holds the lease.
    Reconcile {
        /// Run one pass now and exit.
        #[arg(long, required = true)]
        once: bool,
        /// Report repairs without making them.
        #[arg(long)]
        dry_run: bool,
        /// First day (Beijing, YYYY-MM-DD), inclusive. Default: today.
        #[arg(long)]
        from: Option<chrono::NaiveDate>,
        /// Last day (Beijing, YYYY-MM-DD), inclusive. Default: today.
        #[arg(long)]
        to: Option<chrono::NaiveDate>,
        /// No progress bar (it is drawn on standard error when that is a terminal).
        #[arg(long)]
        no_progress: bool,
        /// Configuration file (TOML); its `database`, `platform`, `sandbox`, `sellers` and
        /// `reconcile` sections are used.
        #[arg(long, env = "FAPIAO_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Run the sandbox tax platform on its own, from the [sandbox] section of the configuration.
    /// Its /admin/ API is unauthenticated: keep it on a private network.
    Sandbox {
        /// Configuration file (TOML); see deploy/fapiao.example.toml.
        #[arg(long, env = "FAPIAO_CONFIG")]
        config: Option<PathBuf>,
        /// Listen address, overriding sandbox.listen.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Log as JSON lines (for production log pipelines).
        #[arg(long)]
        json_logs: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ArchiveCommand {
    /// Write one archived file to FILE, after checking it against its recorded SM3 digest.
    Get {
        /// The 20-digit invoice number.
        number: String,
        /// Which file: xml, ofd or pdf.
        #[arg(long, value_parser = parse_format)]
        format: Format,
        /// Where to write it.
        #[arg(short, long)]
        output: PathBuf,
        /// Why the file is read, for the audit trail.
        #[arg(long, default_value = "")]
        purpose: String,
    },
    /// Check every invoice issued in a range: each file present, its SM3 digest as recorded, and
    /// that it parses and renders. Prints a JSON report (failed invoices, or all with --all); exits
    /// with status 1 when any check failed.
    Verify {
        /// First issue day (Beijing, YYYY-MM-DD), inclusive. Default: the beginning.
        #[arg(long)]
        from: Option<chrono::NaiveDate>,
        /// Last issue day (Beijing, YYYY-MM-DD), inclusive. Default: today.
        #[arg(long)]
        to: Option<chrono::NaiveDate>,
        /// Only this seller's invoices.
        #[arg(long)]
        seller: Option<String>,
        /// Report passing invoices too.
        #[arg(long)]
        all: bool,
        /// Parse and render every file again. By default a file whose digest matches and whose
        /// exact bytes passed the current checks in an earlier run is only read and hashed.
        #[arg(long)]
        deep: bool,
        /// Write the report to this file instead of standard output.
        #[arg(long)]
        report: Option<PathBuf>,
        /// No progress bar (it is drawn on standard error when that is a terminal).
        #[arg(long)]
        no_progress: bool,
    },
}

fn parse_format(text: &str) -> Result<Format, String> {
    Format::from_extension(text).ok_or_else(|| format!("{text:?} is not one of xml, ofd, pdf"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Migrate { config } => {
            init_tracing(false);
            let config = Config::load(config.as_deref(), std::env::vars())?;
            let store = config.open_store(1).await?;
            store.close().await;
            tracing::info!(database = ?store.backend(), "migrations applied");
            Ok(())
        }
        Command::Serve {
            config,
            listen,
            json_logs,
        } => {
            init_tracing(json_logs);
            let mut config = Config::load(config.as_deref(), std::env::vars())?;
            if let Some(listen) = listen {
                config.listen = listen;
            }
            let app = server::App::start(&config).await?;
            if let Some(token) = &app.development_token {
                tracing::warn!(
                    "no tokens configured: development token for this run (every role, every seller): {token}"
                );
            }
            let listener = TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("binding {}", config.listen))?;
            let address = listener.local_addr()?;
            tracing::info!(%address, sellers = app.sellers.len(), tax_codes = app.catalog.len(), database = ?app.issuance.store().backend(), "fapiao listening");
            server::run(listener, app, shutdown_signal()).await?;
            tracing::info!("fapiao stopped");
            Ok(())
        }
        Command::Reconcile {
            once: _,
            dry_run,
            from,
            to,
            no_progress,
            config,
        } => {
            log_to_stderr();
            let config = Config::load(config.as_deref(), std::env::vars())?;
            let today = chrono::Utc::now()
                .with_timezone(&fapiao_services::clock::china_offset())
                .date_naive();
            let report = match fapiao_services::reconciling::once(
                &config,
                from.unwrap_or(today),
                to.unwrap_or(today),
                dry_run,
                !no_progress && std::io::stderr().is_terminal(),
                &mut std::io::stdout(),
            )
            .await
            {
                Ok(report) => report,
                Err(error) if error.is::<fapiao_services::reconciling::LeaseHeld>() => {
                    tracing::error!("{error}");
                    std::process::exit(3);
                }
                Err(error) => return Err(error),
            };
            if !report.complete() || !report.drifts.is_empty() {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Archive { command, config } => {
            // Standard output carries the report.
            log_to_stderr();
            let config = Config::load(config.as_deref(), std::env::vars())?;
            archive_command(command, &config).await
        }
        Command::Sandbox {
            config,
            listen,
            json_logs,
        } => {
            init_tracing(json_logs);
            let mut config = Config::load(config.as_deref(), std::env::vars())?;
            if let Some(listen) = listen {
                config.sandbox.listen = listen;
            }
            fapiao_services::platform::sandbox::run_standalone(config.sandbox, shutdown_signal())
                .await
        }
    }
}

/// Warnings and errors on standard error, for commands whose standard output is a report.
fn log_to_stderr() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("FAPIAO_LOG").unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

async fn archive_command(command: ArchiveCommand, config: &Config) -> anyhow::Result<()> {
    use fapiao_services::archiving::cli;
    let store = config.open_store(4).await?;
    let archive = config
        .archive
        .open(&config.data_dir)
        .context("opening the archive")?;
    let result = match command {
        ArchiveCommand::Get {
            number,
            format,
            output,
            purpose,
        } => cli::get(&store, &archive, &number, format, &output, &purpose).await,
        ArchiveCommand::Verify {
            from,
            to,
            seller,
            all,
            deep,
            report,
            no_progress,
        } => {
            let options = cli::VerifyOptions {
                from,
                to,
                seller,
                all,
                deep,
                progress: !no_progress && std::io::stderr().is_terminal(),
            };
            let summary = match &report {
                Some(path) => {
                    let mut file = std::fs::File::create(path)
                        .with_context(|| format!("creating {}", path.display()))?;
                    cli::verify(&store, &archive, &options, &mut file).await?
                }
                None => cli::verify(&store, &archive, &options, &mut std::io::stdout()).await?,
            };
            store.close().await;
            if summary.invoices_failed > 0 {
                tracing::error!(
                    failed = summary.invoices_failed,
                    checked = summary.invoices_checked,
                    "archive verification found problems"
                );
                std::process::exit(1);
            }
            return Ok(());
        }
    };
    store.close().await;
    result
}

fn init_tracing(json: bool) {
    let filter = EnvFilter::try_from_env("FAPIAO_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only on a terminal: escape codes in a log file or pipe break grep and log shippers.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("interrupt received, shutting down"),
        () = terminate => tracing::info!("terminate received, shutting down"),
    }
}
