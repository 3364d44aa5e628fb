//! Black-box end-to-end tests of fapiao.
//!
//! The tests in `tests/tests/` drive a real server over gRPC through [`spawn_app`]: the same
//! `server::run` that `fapiao serve` runs, on a fresh port, with its own configuration, stopped
//! when the test's [`TestApp`] is dropped. As the store, archive and sandbox platform land, the
//! harness gives each test a fresh database, a temporary archive directory and its own sandbox.
//!
//! Tests use only the wire contract and the service's public start-up surface, never private
//! modules. Logs stay quiet unless `TEST_LOG` is set.

use fapiao_proto::v1::issuance_service_client::IssuanceServiceClient;
use fapiao_services::config::Config;
use fapiao_services::server::{self, App};
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// A running server and a connected channel.
#[derive(Debug)]
pub struct TestApp {
    pub address: SocketAddr,
    pub channel: Channel,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub fn issuance(&self) -> IssuanceServiceClient<Channel> {
        IssuanceServiceClient::new(self.channel.clone())
    }

    /// Ask the server to stop and wait until it has: what `run` returned.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Start a server on a free loopback port with `config` (its `listen` is ignored).
pub async fn spawn_app_with(config: Config) -> anyhow::Result<TestApp> {
    if std::env::var_os("TEST_LOG").is_some() {
        // Several tests in one process: only the first installation succeeds, which is fine.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_test_writer()
            .try_init();
    }
    let app = App::from_config(&config)?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server::run(listener, app, async {
        let _ = stopped.await;
    }));
    let channel = Channel::from_shared(format!("http://{address}"))?
        .connect()
        .await?;
    Ok(TestApp {
        address,
        channel,
        stop: Some(stop),
        task: Some(task),
    })
}

/// Start a server on the embedded defaults.
pub async fn spawn_app() -> anyhow::Result<TestApp> {
    spawn_app_with(Config::default()).await
}
