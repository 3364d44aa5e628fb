//! Black-box end-to-end tests of fapiao.
//!
//! The tests in `tests/tests/` drive a real server over gRPC through [`spawn_app`]: the same
//! `server::run` that `fapiao serve` runs, on a fresh port, with its own configuration, stopped
//! when the test's [`TestApp`] is dropped. As the store, archive and sandbox platform land, the
//! harness gives each test a fresh database, a temporary archive directory and its own sandbox.
//!
//! Tests use only the wire contract and the service's public start-up surface, never private
//! modules. Logs stay quiet unless `TEST_LOG` is set.

pub mod busy_day;
pub mod db;
pub mod sample;

use fapiao_proto::v1::audit_service_client::AuditServiceClient;
use fapiao_proto::v1::issuance_service_client::IssuanceServiceClient;
use fapiao_proto::v1::ops_service_client::OpsServiceClient;
use fapiao_services::auth::{Role, TokenConfig};
use fapiao_services::config::Config;
use fapiao_services::server::{self, App};
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// The token every harness server accepts as an issuer for every seller.
pub const ISSUER_TOKEN: &str = "test-issuer-token-0001";
/// Token of the harness auditor (auditor role only, every seller).
pub const AUDITOR_TOKEN: &str = "test-auditor-token-0001";
/// Token of the harness operator (operator role only, every seller).
pub const OPERATOR_TOKEN: &str = "test-operator-token-0001";

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Debug, Clone)]
pub struct Bearer(pub String);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let value = MetadataValue::try_from(format!("Bearer {}", self.0))
            .map_err(|_| tonic::Status::invalid_argument("token is not a valid header value"))?;
        request.metadata_mut().insert("authorization", value);
        Ok(request)
    }
}

/// A client of `IssuanceService` that authenticates with a bearer token.
pub type IssuanceClient = IssuanceServiceClient<InterceptedService<Channel, Bearer>>;
/// An audit client with a bearer token.
pub type AuditClient = AuditServiceClient<InterceptedService<Channel, Bearer>>;
/// An operations client with a bearer token.
pub type OpsClient = OpsServiceClient<InterceptedService<Channel, Bearer>>;

/// A token configuration: its name, secret value, roles and seller tax ids (`"*"` for all).
pub fn token(name: &str, value: &str, roles: Vec<Role>, sellers: &[&str]) -> TokenConfig {
    TokenConfig {
        name: name.into(),
        token: value.to_owned().into(),
        roles,
        sellers: sellers.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// A running server and a connected channel.
#[derive(Debug)]
pub struct TestApp {
    pub address: SocketAddr,
    pub channel: Channel,
    /// Base URL of the in-process sandbox platform (its admin API is under `/admin/`).
    pub sandbox_url: Option<String>,
    /// The server's `/metrics` URL.
    pub metrics_url: Option<String>,
    /// The database (and temporary folder) the server uses; dropped after the server.
    database: Option<db::TestDatabase>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// A client authenticated as the harness issuer.
    pub fn issuance(&self) -> IssuanceClient {
        self.issuance_as(ISSUER_TOKEN)
    }

    /// A client authenticated with `token`.
    pub fn issuance_as(&self, token: &str) -> IssuanceClient {
        IssuanceServiceClient::with_interceptor(self.channel.clone(), Bearer(token.to_owned()))
    }

    /// An audit client authenticated as the harness auditor.
    pub fn audit(&self) -> AuditClient {
        self.audit_as(AUDITOR_TOKEN)
    }

    /// An audit client authenticated with `token`.
    pub fn audit_as(&self, token: &str) -> AuditClient {
        AuditServiceClient::with_interceptor(self.channel.clone(), Bearer(token.to_owned()))
    }

    /// Call the in-process sandbox's admin API (`faults`, `stats`, …) and return its JSON answer;
    /// anything but success fails the test.
    pub async fn sandbox_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let mut request = reqwest::Client::new().request(method, self.sandbox_admin(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the sandbox answers");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.expect("the sandbox answers JSON")
    }

    /// An operations client authenticated as the harness operator.
    pub fn ops(&self) -> OpsClient {
        self.ops_as(OPERATOR_TOKEN)
    }

    /// An operations client authenticated with `token`.
    pub fn ops_as(&self, token: &str) -> OpsClient {
        OpsServiceClient::with_interceptor(self.channel.clone(), Bearer(token.to_owned()))
    }

    /// The server's data folder (the default archive is its `archive` subfolder).
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.database
            .as_ref()
            .map(|d| d.dir.path().to_path_buf())
            .unwrap_or_default()
    }

    /// The sandbox's admin URL for `path` (`faults`, `stats`, …).
    pub fn sandbox_admin(&self, path: &str) -> String {
        format!(
            "{}/admin/{path}",
            self.sandbox_url
                .as_deref()
                .expect("the server runs the in-process sandbox")
        )
    }

    /// Stop the server gracefully and hand back its database (and data folder) for a restart.
    pub async fn stop(mut self) -> anyhow::Result<db::TestDatabase> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await??;
        }
        self.database
            .take()
            .ok_or_else(|| anyhow::anyhow!("the database was already taken"))
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

impl TestApp {
    /// Issue the sample invoice under `request_id` for `amount`; returns its number.
    pub async fn issue_sample(&self, request_id: &str, amount: &str) -> String {
        self.issue(sample::input(request_id, amount)).await
    }

    /// Issue `invoice` (without waiting for the platform); returns its number.
    pub async fn issue(&self, invoice: fapiao_proto::v1::InvoiceInput) -> String {
        self.issuance()
            .issue_invoice(fapiao_proto::v1::IssueInvoiceRequest {
                invoice: Some(invoice),
                ..Default::default()
            })
            .await
            .expect("issued")
            .into_inner()
            .invoice
            .expect("an invoice in the answer")
            .invoice_number
    }

    /// Poll until invoice `number` satisfies `done` (at most 30 s); returns it.
    pub async fn invoice_when(
        &self,
        number: &str,
        done: impl Fn(&fapiao_proto::v1::Invoice) -> bool,
    ) -> fapiao_proto::v1::Invoice {
        use fapiao_proto::v1::{GetInvoiceRequest, get_invoice_request};
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let invoice = self
                .issuance()
                .get_invoice(GetInvoiceRequest {
                    key: Some(get_invoice_request::Key::InvoiceNumber(number.into())),
                    ..Default::default()
                })
                .await
                .expect("the invoice is readable")
                .into_inner()
                .invoice
                .expect("an invoice in the answer");
            if done(&invoice) {
                return invoice;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{number}: not there in time"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// Start a server on a free loopback port with `config` (its `listen` is ignored) and a SQLite
/// database in a temporary folder. When `config` has no tokens, the harness issuer token is added.
pub async fn spawn_app_with(config: Config) -> anyhow::Result<TestApp> {
    spawn_app_on(db::sqlite(), config).await
}

/// Like [`spawn_app_with`], on the given database. The server's `data_dir` (the sandbox's state)
/// is the database's temporary folder.
pub async fn spawn_app_on(
    database: db::TestDatabase,
    mut config: Config,
) -> anyhow::Result<TestApp> {
    config.data_dir = database.dir.path().to_path_buf();
    config.database.url = Some(database.url.clone().into());
    if config.tokens.is_empty() {
        config.tokens = vec![
            token("harness", ISSUER_TOKEN, vec![Role::Issuer], &["*"]),
            token("auditor", AUDITOR_TOKEN, vec![Role::Auditor], &["*"]),
            token("operator", OPERATOR_TOKEN, vec![Role::Operator], &["*"]),
        ];
    }
    // Servers of parallel tests must not share a metrics port.
    config.metrics.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    // The default schedule fires on the wall clock's five-minute marks, which would make a test's
    // runs depend on when it ran; a test that wants scheduled passes sets its own expressions.
    if config.reconcile.recent == fapiao_services::reconciling::ReconcileConfig::default().recent {
        config.reconcile.schedule = false;
    }
    if std::env::var_os("TEST_LOG").is_some() {
        // Several tests in one process: only the first installation succeeds, which is fine.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_test_writer()
            .try_init();
    }
    let app = App::start(&config).await?;
    let sandbox_url = app.sandbox_address.map(|a| format!("http://{a}"));
    let metrics_url = app.metrics_address.map(|a| format!("http://{a}/metrics"));
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
        sandbox_url,
        metrics_url,
        database: Some(database),
        stop: Some(stop),
        task: Some(task),
    })
}

/// Start a server on the embedded defaults, with the harness issuer token.
pub async fn spawn_app() -> anyhow::Result<TestApp> {
    spawn_app_with(Config::default()).await
}

/// Define each listed `async fn name(db: TestDatabase)` as two tests, `sqlite::name` and
/// `postgres::name`, so one test body proves a behaviour on both databases. The calling file
/// needs `use fapiao_tests::db;`.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::db::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::db::postgres().await).await;
                }
            )*
        }
    };
}

impl TestApp {
    /// Every invoice of `seller` in one of `states` (all states when empty), following page tokens.
    pub async fn list_all(
        &self,
        seller: &str,
        states: &[fapiao_proto::v1::InvoiceState],
    ) -> Vec<fapiao_proto::v1::Invoice> {
        let mut all = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .issuance()
                .list_invoices(fapiao_proto::v1::ListInvoicesRequest {
                    seller_tax_id: seller.into(),
                    states: states.iter().map(|s| i32::from(*s)).collect(),
                    page_size: 500,
                    page_token: token,
                    ..Default::default()
                })
                .await
                .expect("listing invoices")
                .into_inner();
            all.extend(page.invoices);
            if page.next_page_token.is_empty() {
                return all;
            }
            token = page.next_page_token;
        }
    }
}

impl TestApp {
    /// Download an archived file through the audit API, checking its chunks arrive after the
    /// metadata: (metadata, bytes).
    pub async fn download(
        &self,
        number: &str,
        format: fapiao_proto::v1::FileFormat,
    ) -> Result<(fapiao_proto::v1::ArchivedFileMetadata, Vec<u8>), tonic::Status> {
        use fapiao_proto::v1::{GetArchivedFileRequest, get_archived_file_response::Part};
        let mut stream = self
            .audit()
            .get_archived_file(GetArchivedFileRequest {
                invoice_number: number.into(),
                format: format.into(),
                purpose: "2025 annual audit, sample 17".into(),
            })
            .await?
            .into_inner();
        let mut metadata = None;
        let mut bytes = Vec::new();
        while let Some(message) = stream.message().await? {
            match message.part {
                Some(Part::Metadata(m)) => {
                    assert!(metadata.is_none(), "metadata comes once, first");
                    metadata = Some(m);
                }
                Some(Part::Chunk(chunk)) => {
                    assert!(metadata.is_some(), "metadata comes before the bytes");
                    assert!(chunk.len() <= 64 * 1024);
                    bytes.extend_from_slice(&chunk);
                }
                None => panic!("a download message without a part"),
            }
        }
        Ok((metadata.expect("metadata in the download"), bytes))
    }

    /// Ask for a reconciliation pass over the last hour and wait (at most 60 s) until it is
    /// finished; returns the run.
    pub async fn reconcile_last_hour(&self, why: &str) -> fapiao_proto::v1::ReconciliationRun {
        use fapiao_proto::v1::{
            GetReconciliationRunRequest, RunStatus, TimeRange, TriggerReconciliationRequest,
        };
        let stamp = |at: chrono::DateTime<chrono::Utc>| prost_types::Timestamp {
            seconds: at.timestamp(),
            nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
        };
        let now = chrono::Utc::now();
        let started = self
            .ops()
            .trigger_reconciliation(TriggerReconciliationRequest {
                window: Some(TimeRange {
                    from: Some(stamp(now - chrono::TimeDelta::hours(1))),
                    to: Some(stamp(now)),
                }),
                seller_tax_ids: Vec::new(),
                reason: why.into(),
            })
            .await
            .expect("a pass is accepted")
            .into_inner()
            .run
            .expect("a run in the answer");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let run = self
                .ops()
                .get_reconciliation_run(GetReconciliationRunRequest {
                    run_id: started.run_id.clone(),
                })
                .await
                .expect("the run is readable")
                .into_inner()
                .run
                .expect("a run in the answer");
            if matches!(run.status(), RunStatus::Succeeded | RunStatus::Failed) {
                return run;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "run {} did not finish: {run:?}",
                started.run_id
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// The `(field, code)` of every field violation a refusal carries, in order.
pub fn violations(status: &tonic::Status) -> Vec<(String, String)> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|bad| {
            bad.field_violations
                .into_iter()
                .map(|v| (v.field, v.reason))
                .collect()
        })
        .unwrap_or_default()
}

/// The embedded defaults with the background workers (upload, archive, red-letter follow-up)
/// polling every few tens of milliseconds, so end-to-end tests wait for them briefly.
pub fn quick_config() -> Config {
    let mut config = Config::default();
    config.upload.poll_delay = std::time::Duration::from_millis(20);
    config.upload.poll_interval = std::time::Duration::from_millis(20);
    config.upload.idle_poll = std::time::Duration::from_millis(50);
    config.archive.backoff = vec![std::time::Duration::from_millis(50)];
    config.archive.idle_poll = std::time::Duration::from_millis(50);
    config.red_letter.poll_every = std::time::Duration::from_millis(100);
    config.red_letter.retry_after = std::time::Duration::from_millis(100);
    config
}
