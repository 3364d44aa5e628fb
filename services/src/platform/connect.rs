//! Which tax platform the service talks to: the configured remote one, or a sandbox started
//! in-process on a loopback port with fresh credentials.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::TaxPlatform;
use super::client::HttpPlatform;
use super::sandbox::{self, Sandbox};
use crate::clock::SharedClock;
use crate::config::Config;

/// The in-process sandbox's stop signal and task, when one was started.
pub(crate) type SandboxTask = Option<(oneshot::Sender<()>, JoinHandle<anyhow::Result<()>>)>;

/// The configured remote platform, or a sandbox started in-process with fresh credentials.
pub(crate) async fn connect(
    config: &Config,
    clock: &SharedClock,
) -> anyhow::Result<(Arc<dyn TaxPlatform>, Option<SocketAddr>, SandboxTask)> {
    if config.platform.remote_url().is_some() {
        let client = HttpPlatform::from_config(&config.platform)?.with_clock(clock.clone());
        return Ok((Arc::new(client), None, None));
    }
    let mut sandbox_config = config.sandbox.clone();
    if sandbox_config.state_file.is_none() {
        sandbox_config.state_file = Some(config.data_dir.join("sandbox.jsonl"));
    }
    let sandbox = Sandbox::new(&sandbox_config, clock.clone()).context("starting the sandbox")?;
    let credentials = sandbox::generate_credentials("SANDBOX-UNIT", "SANDBOX-USER")?;
    sandbox.register(credentials.clone());
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the sandbox")?;
    let address = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(sandbox::serve(listener, sandbox, async {
        let _ = stopped.await;
    }));
    let client =
        HttpPlatform::with_config(&config.platform, &format!("http://{address}"), credentials)?
            .with_clock(clock.clone());
    tracing::info!(%address, "sandbox tax platform running in-process");
    Ok((Arc::new(client), Some(address), Some((stop, task))))
}
