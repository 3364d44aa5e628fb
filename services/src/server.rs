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
use crate::grpc::edge::{Admission, EdgeLayer, ServerConfig, connection};
use crate::grpc::issuance::IssuanceApi;
use crate::grpc::ops::OpsApi;
use crate::instance::InstanceId;
use crate::issuance::{Issuance, Shared, supply, upload, writer};
use crate::metrics::Metrics;
use crate::reconciling::schedule::{self, Reconciler};
use crate::sellers::SellerDirectory;
use crate::store::TakenBack;
use anyhow::Context;
use fapiao_archive::store::Archive;
use fapiao_invoice::catalog::TaxCodeCatalog;
use fapiao_invoice::limits::Limits;
use fapiao_invoice::taxpayer::TaxpayerId;
use fapiao_proto::v1::audit_service_server::AuditServiceServer;
use fapiao_proto::v1::issuance_service_server::IssuanceServiceServer;
use fapiao_proto::v1::ops_service_server::OpsServiceServer;
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
    /// Files red-letter forms and issues their red invoices.
    pub red_letters: crate::redletter::RedLetters,
    /// Where the in-process sandbox platform listens, when it runs.
    pub sandbox_address: Option<SocketAddr>,
    /// Where layout files are archived.
    pub archive: Archive,
    /// Asks the reconciliation worker for passes.
    pub reconciler: Reconciler,
    /// What `/metrics` exports.
    pub metrics: Metrics,
    /// Where `/metrics` is served, when it is.
    pub metrics_address: Option<SocketAddr>,
    pub clock: SharedClock,
    /// The gRPC listener's limits and timeouts.
    pub server: Arc<ServerConfig>,
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
        config.server.check().map_err(anyhow::Error::msg)?;
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
        let instance = InstanceId::resolve(config.instance_id.as_deref(), config.listen)
            .context("checking instance_id")?;
        tracing::info!(instance = instance.as_str(), "instance identity");
        let store = config.open_store(config.database.max_connections).await?;
        // Before any worker runs: what this instance claimed before it stopped is due again now.
        let taken = store
            .take_back_claims(instance.as_str(), clock.now())
            .await?;
        if taken != TakenBack::default() {
            tracing::info!(
                uploads = taken.uploads,
                archives = taken.archives,
                "took back the claims this instance held when it stopped"
            );
        }
        let archive = config
            .archive
            .open(&config.data_dir)
            .context("opening the archive")?;
        tracing::info!(location = archive.location(), "archive ready");

        let (platform, sandbox_address, sandbox_task) =
            crate::platform::connect::connect(config, &clock).await?;
        let metrics = Metrics::new();
        for seller in &config.sellers {
            metrics.register_seller(&seller.tax_id);
        }
        let (changes, changes_rx) = watch::channel(0u64);
        let shared = Shared {
            store: store.clone(),
            clock: clock.clone(),
            platform,
            changes,
            metrics: metrics.clone(),
        };
        let seller_ids: Vec<TaxpayerId> = config
            .sellers
            .iter()
            .filter_map(|s| TaxpayerId::parse(&s.tax_id).ok())
            .collect();
        for seller in &seller_ids {
            if let Err(error) = supply::top_up(&shared, seller, &config.supply, 0, None).await {
                tracing::warn!(
                    seller = seller.as_str(),
                    error = format!("{error:#}"),
                    "no numbers or quota at start; issuing waits for the platform"
                );
            }
        }

        let (stop, stop_rx) = watch::channel(false);
        // Bound before anything runs, so a taken port stops the start with a clear error.
        let metrics_listener = match config.metrics.address() {
            Some(address) => Some(
                TcpListener::bind(address)
                    .await
                    .with_context(|| format!("binding the metrics endpoint {address}"))?,
            ),
            None => None,
        };
        let metrics_address = metrics_listener
            .as_ref()
            .map(TcpListener::local_addr)
            .transpose()?;
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
                seller_ids.clone(),
                config.supply.clone(),
                supply_handle.clone(),
                stop_rx.clone(),
            ),
            upload::spawn(
                shared.clone(),
                config.upload.clone(),
                instance.clone(),
                wake_uploads,
                stop_rx.clone(),
            ),
        ];
        // The same name across restarts: a restarted instance takes its own leases back at once.
        let holder = format!("serve:{instance}");
        let alerting = crate::alerting::Alerting::new(store.clone(), clock.clone(), &config.alerts)
            .context("checking the [alerts] settings")?
            .with_holder(holder.clone());
        let passes = crate::reconciling::Passes {
            store: store.clone(),
            platform: shared.platform.clone(),
            clock: clock.clone(),
            config: config.reconcile.clone(),
            sellers: config.sellers.iter().map(|s| s.tax_id.clone()).collect(),
            holder,
            metrics: Some(metrics.clone()),
        };
        let (reconciler, reconciling) = schedule::start(passes, stop_rx.clone())
            .await
            .context("starting reconciliation")?;
        tasks.extend(reconciling);
        if let Some(listener) = metrics_listener {
            tracing::info!(address = ?metrics_address, "metrics endpoint listening on /metrics");
            let mut stopped = stop_rx.clone();
            let serving = crate::metrics::serve(listener, metrics.clone(), async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            });
            tasks.push(tokio::spawn(async move {
                if let Err(error) = serving.await {
                    tracing::error!(error = format!("{error:#}"), "the metrics endpoint failed");
                }
            }));
        }
        tasks.push(tokio::spawn(export_success_ratios(
            alerting.evaluations(),
            metrics.clone(),
        )));
        tasks.push(alerting.spawn(stop_rx.clone()));
        tasks.push(tokio::spawn(watch_archive_backlog(
            store.clone(),
            metrics.clone(),
            stop_rx.clone(),
        )));
        tasks.extend(archiving::spawn(
            store.clone(),
            archive.clone(),
            clock.clone(),
            config.archive.clone(),
            instance,
            changes_rx.clone(),
            stop_rx.clone(),
        ));
        let issuance = Issuance::new(
            store.clone(),
            queue,
            changes_rx,
            supply_handle,
            stop_rx.clone(),
        );
        let red_letters = crate::redletter::RedLetters::new(
            store,
            issuance.clone(),
            shared.platform.clone(),
            clock.clone(),
            config.red_letter.clone(),
        );
        tasks.push(crate::redletter::spawn(
            red_letters.clone(),
            seller_ids.clone(),
            stop_rx,
        ));
        Ok(Self {
            catalog: Arc::new(catalog),
            limits: Arc::new(Limits::default()),
            sellers: Arc::new(sellers),
            auth: Arc::new(auth),
            development_token,
            issuance,
            red_letters,
            sandbox_address,
            archive,
            reconciler,
            metrics,
            metrics_address,
            clock,
            server: Arc::new(config.server.clone()),
            background: Background {
                stop,
                writer,
                tasks,
                sandbox: sandbox_task,
            },
        })
    }
}

/// How often the archive backlog gauge is refreshed.
const BACKLOG_EVERY: std::time::Duration = std::time::Duration::from_secs(15);

/// Keep `fapiao_archive_backlog` current until the service stops.
async fn watch_archive_backlog(
    store: crate::store::Store,
    metrics: Metrics,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match store.archive_backlog().await {
            Ok(backlog) => {
                metrics.set_archive_backlog("pending", u64::try_from(backlog.pending).unwrap_or(0));
                metrics.set_archive_backlog("parked", u64::try_from(backlog.parked).unwrap_or(0));
            }
            Err(error) => {
                tracing::warn!(error = format!("{error:#}"), "counting the archive backlog")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(BACKLOG_EVERY) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

/// Export each evaluation's success rates until the evaluator stops.
async fn export_success_ratios(
    mut evaluations: watch::Receiver<Option<Arc<crate::alerting::Evaluation>>>,
    metrics: Metrics,
) {
    while evaluations.changed().await.is_ok() {
        let latest = evaluations.borrow_and_update().clone();
        if let Some(evaluation) = latest {
            metrics.set_success_ratios(&evaluation.success_ratios());
        }
    }
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
        red_letters,
        background,
        archive,
        clock,
        reconciler,
        metrics,
        server,
        ..
    } = app;
    let store = issuance.store().clone();
    // Authentication, the callers' limits and the last line against panics, for every call.
    let edge = EdgeLayer::new(
        auth,
        Admission::new(server.clone()),
        metrics.edge().clone(),
        server.retry_after,
    )?;
    let audit_service =
        AuditServiceServer::new(AuditApi::new(store.clone(), archive, clock.clone()));
    let ops_service = OpsServiceServer::new(OpsApi::new(
        store.clone(),
        reconciler,
        clock,
        sellers.tax_ids(),
        issuance.supply().clone(),
    ));
    let issuance_service = IssuanceServiceServer::new(IssuanceApi::new(
        catalog,
        limits,
        sellers,
        issuance,
        red_letters,
        server.clone(),
    ));
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<IssuanceServiceServer<IssuanceApi>>()
        .await;
    health_reporter
        .set_serving::<AuditServiceServer<AuditApi>>()
        .await;
    health_reporter
        .set_serving::<OpsServiceServer<OpsApi>>()
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
        .http2_keepalive_interval(Some(server.keepalive_interval))
        .http2_keepalive_timeout(Some(server.keepalive_timeout))
        .max_concurrent_streams(server.max_streams_per_connection)
        .layer(edge)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(issuance_service)
        .add_service(audit_service)
        .add_service(ops_service)
        .serve_with_incoming_shutdown(
            connection::incoming(listener, server.handshake_timeout, server.idle_timeout),
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
