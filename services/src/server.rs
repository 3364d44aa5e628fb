//! Assembling and running the service: the store, the tax platform (or the in-process sandbox),
//! the issuance workflow's background tasks, and the gRPC server with `grpc.health.v1` and server
//! reflection in both v1 and v1alpha (older grpcurl builds and Python's client speak only
//! v1alpha).
//!
//! [`App::start`] builds everything from the configuration and fails before anything listens when
//! a part is broken. [`run`] takes a bound listener and a shutdown future, so tests bind port 0 and
//! stop the server when they are done, and `main` binds the configured address and stops on a
//! signal. Shutdown is graceful: calls in flight finish, the writer commits what it accepted, the
//! upload worker writes the outcome of calls in flight, and everything else resumes from the store
//! at the next start.

use crate::archiving;
use crate::auth::Authenticator;
use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::grpc::audit::AuditApi;
use crate::grpc::issuance::IssuanceApi;
use crate::issuance::{Issuance, Shared, supply, upload, writer};
use crate::platform::TaxPlatform;
use crate::platform::client::HttpPlatform;
use crate::platform::sandbox::{self, Sandbox};
use crate::sellers::SellerDirectory;
use anyhow::Context;
use fapiao_archive::store::Archive;
use fapiao_invoice::catalog::TaxCodeCatalog;
use fapiao_invoice::limits::Limits;
use fapiao_invoice::taxpayer::TaxpayerId;
use fapiao_proto::v1::audit_service_server::AuditServiceServer;
use fapiao_proto::v1::issuance_service_server::IssuanceServiceServer;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// Everything the services share, built once from the configuration.
#[derive(Debug)]
pub struct App {
    pub catalog: Arc<TaxCodeCatalog>,
    pub limits: Arc<Limits>,
    pub sellers: Arc<SellerDirectory>,
    pub auth: Arc<Authenticator>,
    /// The generated token when none was configured, for `main` to print once.
    pub development_token: Option<String>,
    pub issuance: Issuance,
    /// Where the in-process sandbox platform listens, when it runs.
    pub sandbox_address: Option<SocketAddr>,
    /// Where layout files are archived.
    pub archive: Archive,
    pub clock: SharedClock,
    background: Background,
}

/// The tasks that run beside the gRPC server.
#[derive(Debug)]
struct Background {
    stop: watch::Sender<bool>,
    writer: JoinHandle<()>,
    tasks: Vec<JoinHandle<()>>,
    sandbox: Option<(oneshot::Sender<()>, JoinHandle<anyhow::Result<()>>)>,
}

impl App {
    /// Load and check what the configuration points at, connect and migrate the store, reach the
    /// platform (starting the sandbox when no platform URL is set), top up numbers and quota once,
    /// and start the background tasks.
    pub async fn start(config: &Config) -> anyhow::Result<Self> {
        let catalog = match &config.tax_codes {
            None => TaxCodeCatalog::bundled(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading tax code catalog {}", path.display()))?;
                TaxCodeCatalog::from_toml_str(&text)
                    .with_context(|| format!("loading tax code catalog {}", path.display()))?
            }
        };
        let sellers = SellerDirectory::new(&config.sellers).context("checking seller profiles")?;
        let (auth, development_token) = if config.tokens.is_empty() {
            let (auth, token) =
                Authenticator::development().context("making a development token")?;
            (auth, Some(token))
        } else {
            (
                Authenticator::new(&config.tokens).context("checking tokens")?,
                None,
            )
        };
        let clock: SharedClock = Arc::new(SystemClock);
        let store = config.open_store(config.database.max_connections).await?;
        let archive = config
            .archive
            .open(&config.data_dir)
            .context("opening the archive")?;
        tracing::info!(location = archive.location(), "archive ready");

        let (platform, sandbox_address, sandbox_task) = connect_platform(config, &clock).await?;
        let (changes, changes_rx) = watch::channel(0u64);
        let shared = Shared {
            store: store.clone(),
            clock: clock.clone(),
            platform,
            changes,
        };
        let seller_ids: Vec<TaxpayerId> = config
            .sellers
            .iter()
            .filter_map(|s| TaxpayerId::parse(&s.tax_id).ok())
            .collect();
        for seller in &seller_ids {
            if let Err(error) = supply::top_up(&shared, seller, &config.supply, 0).await {
                tracing::warn!(
                    seller = seller.as_str(),
                    error = format!("{error:#}"),
                    "no numbers or quota at start; issuing waits for the platform"
                );
            }
        }

        let (stop, stop_rx) = watch::channel(false);
        let supply_handle = supply::SupplyHandle::default();
        let wake_uploads = Arc::new(Notify::new());
        let (queue, queue_rx) = mpsc::channel(config.issuance.queue.max(1));
        let writer = writer::spawn(
            shared.clone(),
            queue_rx,
            config.issuance.max_batch.max(1),
            wake_uploads.clone(),
            supply_handle.clone(),
        );
        let mut tasks = vec![
            supply::spawn(
                shared.clone(),
                seller_ids,
                config.supply.clone(),
                supply_handle.clone(),
                stop_rx.clone(),
            ),
            upload::spawn(
                shared.clone(),
                config.upload.clone(),
                wake_uploads,
                stop_rx.clone(),
            ),
        ];
        tasks.extend(archiving::spawn(
            store.clone(),
            archive.clone(),
            clock.clone(),
            config.archive.clone(),
            changes_rx.clone(),
            stop_rx.clone(),
        ));
        let issuance = Issuance::new(store, queue, changes_rx, supply_handle, stop_rx);
        Ok(Self {
            catalog: Arc::new(catalog),
            limits: Arc::new(Limits::default()),
            sellers: Arc::new(sellers),
            auth: Arc::new(auth),
            development_token,
            issuance,
            sandbox_address,
            archive,
            clock,
            background: Background {
                stop,
                writer,
                tasks,
                sandbox: sandbox_task,
            },
        })
    }
}

pub(crate) type SandboxTask = Option<(oneshot::Sender<()>, JoinHandle<anyhow::Result<()>>)>;

/// The configured remote platform, or a sandbox started in-process with fresh credentials.
pub(crate) async fn connect_platform(
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

/// Serve until `shutdown` resolves, then finish in-flight calls, let the background tasks write
/// what they hold, and return.
pub async fn run(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let App {
        auth,
        catalog,
        limits,
        sellers,
        issuance,
        background,
        archive,
        clock,
        ..
    } = app;
    let store = issuance.store().clone();
    let authenticate = move |mut request: tonic::Request<()>| {
        let caller = auth.authenticate(request.metadata())?;
        request.extensions_mut().insert(caller);
        Ok(request)
    };
    let audit_service = AuditServiceServer::with_interceptor(
        AuditApi::new(store.clone(), archive, clock),
        authenticate.clone(),
    );
    let issuance_service = IssuanceServiceServer::with_interceptor(
        IssuanceApi::new(catalog, limits, sellers, issuance),
        authenticate,
    );
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<IssuanceServiceServer<IssuanceApi>>()
        .await;
    health_reporter
        .set_serving::<AuditServiceServer<AuditApi>>()
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(fapiao_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("building reflection v1")?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(fapiao_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .context("building reflection v1alpha")?;

    let stop = background.stop.clone();
    let stopping = async move {
        shutdown.await;
        // Waiting calls answer with the invoice's current state and background loops wind down
        // while the server finishes the calls in flight.
        let _ = stop.send(true);
    };
    let served = tonic::transport::Server::builder()
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(issuance_service)
        .add_service(audit_service)
        // Without TCP_NODELAY small responses wait for the peer's delayed ACK (~40 ms each).
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            stopping,
        )
        .await
        .context("serving gRPC");
    background.finish().await;
    store.close().await;
    served
}

impl Background {
    async fn finish(self) {
        let _ = self.stop.send(true);
        // The writer ends once every handle to its queue is gone, after committing what was
        // queued: no accepted invoice is dropped.
        if let Err(error) = self.writer.await {
            tracing::error!(%error, "the issuing writer ended abnormally");
        }
        for task in self.tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "a background task ended abnormally");
            }
        }
        if let Some((stop, task)) = self.sandbox {
            let _ = stop.send(());
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::error!(error = format!("{error:#}"), "the sandbox failed")
                }
                Err(error) => tracing::error!(%error, "the sandbox ended abnormally"),
            }
        }
    }
}
