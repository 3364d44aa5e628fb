//! The `fapiao` binary: parse the command line, set up logging, and run. Everything else lives in
//! the library so tests can drive it in-process.

use anyhow::Context;
use clap::{Parser, Subcommand};
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Migrate { config } => {
            init_tracing(false);
            let config = Config::load(config.as_deref(), std::env::vars())?;
            let store =
                fapiao_services::store::Store::connect(&fapiao_services::store::StoreOptions {
                    url: config.database_url(),
                    max_connections: 1,
                    acquire_timeout: config.database.acquire_timeout,
                })
                .await?;
            store.migrate().await?;
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
