//! Assembling and running the gRPC server: the fapiao services, `grpc.health.v1`, and server
//! reflection in both v1 and v1alpha (older grpcurl builds and Python's client speak only
//! v1alpha).
//!
//! [`run`] takes a bound listener and a shutdown future, so tests bind port 0 and stop the server
//! when they are done, and `main` binds the configured address and stops on a signal.

use crate::auth::Authenticator;
use crate::config::Config;
use crate::grpc::issuance::IssuanceApi;
use crate::sellers::SellerDirectory;
use anyhow::Context;
use fapiao_invoice::catalog::TaxCodeCatalog;
use fapiao_invoice::limits::Limits;
use fapiao_proto::v1::issuance_service_server::IssuanceServiceServer;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

/// Everything the services share, built once from the configuration.
#[derive(Debug, Clone)]
pub struct App {
    pub catalog: Arc<TaxCodeCatalog>,
    pub limits: Arc<Limits>,
    pub sellers: Arc<SellerDirectory>,
    pub auth: Arc<Authenticator>,
    /// The generated token when none was configured, for `main` to print once.
    pub development_token: Option<String>,
}

impl App {
    /// Load and check what the configuration points at. Fails before the listener opens, so a
    /// broken catalog or seller profile never serves a request.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
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
        Ok(Self {
            catalog: Arc::new(catalog),
            limits: Arc::new(Limits::default()),
            sellers: Arc::new(sellers),
            auth: Arc::new(auth),
            development_token,
        })
    }
}

/// Serve until `shutdown` resolves, then finish in-flight calls and return.
pub async fn run(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let auth = app.auth.clone();
    let authenticate = move |mut request: tonic::Request<()>| {
        let caller = auth.authenticate(request.metadata())?;
        request.extensions_mut().insert(caller);
        Ok(request)
    };
    let issuance = IssuanceServiceServer::with_interceptor(
        IssuanceApi::new(app.catalog.clone(), app.limits.clone(), app.sellers.clone()),
        authenticate,
    );
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<IssuanceServiceServer<IssuanceApi>>()
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

    tonic::transport::Server::builder()
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(issuance)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
        .context("serving gRPC")
}
