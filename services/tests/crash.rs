//! `kill -9` of the real `fapiao` binary while uploads are in flight, on SQLite and PostgreSQL.
//!
//! The in-process sandbox keeps its state in the data folder, so it survives the kill with the
//! store. A restart under the same instance identity takes back what the killed process had
//! claimed and gets every invoice recorded within seconds, with `upload.lease` at its default
//! 60 s; a replica under another identity leaves those claims alone until their lease ends.

// Functions shared by the tests below are plain functions, outside the test-only allowance of
// `unwrap`; a failure there is a failed test like any other.
#![allow(clippy::unwrap_used)]

use fapiao_proto::v1;
use fapiao_proto::v1::issuance_service_client::IssuanceServiceClient;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "crash-test-token-0001";
const SELLER: &str = "91310000MA1FP00011";
/// Longer than the test: an upload or result query under it is in flight when the process dies.
const HANG: &str = "10m";
/// What "within seconds of the restart" means here: far below the 60 s lease.
const RESTART_BOUND: Duration = Duration::from_secs(15);

/// A running `fapiao serve`, killed with SIGKILL when dropped.
struct Server {
    child: Child,
    address: String,
    sandbox: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Start `fapiao serve` in `dir` with `env` on top of the test settings; wait until it listens.
    fn start(dir: &Path, database: &Database, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_fapiao"));
        command
            .current_dir(dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("FAPIAO__METRICS__LISTEN", "127.0.0.1:0")
            .env("FAPIAO__RECONCILE__SCHEDULE", "false")
            .env(
                "FAPIAO__TOKENS",
                format!(
                    r#"[{{name = "crash", token = "{TOKEN}", roles = ["issuer"], sellers = ["*"]}}]"#
                ),
            )
            .env("FAPIAO_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(url) = &database.postgres {
            command.env("FAPIAO__DATABASE__URL", url);
        }
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("fapiao starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let kept = log.clone();
        // Read the log to its end, so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                kept.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let mut server = Self {
            child,
            address: String::new(),
            sandbox: String::new(),
            log,
        };
        let give_up = Instant::now() + Duration::from_secs(60);
        while server.address.is_empty() {
            let wait = give_up.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(wait)
                .expect("the server says where it listens");
            if line.contains("sandbox tax platform running in-process") {
                server.sandbox = format!("http://{}", field(&line, "address"));
            }
            if line.contains("fapiao listening") {
                server.address = format!("http://{}", field(&line, "address"));
            }
        }
        server
    }

    /// `kill -9`: no graceful shutdown, nothing written on the way out.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// The first log line holding `text`.
    fn logged(&self, text: &str) -> Option<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .find(|line| line.contains(text))
            .cloned()
    }

    async fn client(&self) -> IssuanceServiceClient<tonic::transport::Channel> {
        let channel = tonic::transport::Channel::from_shared(self.address.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        IssuanceServiceClient::new(channel)
    }

    /// Issue `count` invoices in one call; their numbers.
    async fn issue(&self, prefix: &str, count: usize) -> Vec<String> {
        let invoices = (0..count)
            .map(|i| v1::InvoiceInput {
                seller_tax_id: SELLER.into(),
                request_id: format!("{prefix}-{i}"),
                kind: v1::InvoiceKind::General.into(),
                pricing_mode: v1::PricingMode::TaxExclusive.into(),
                drawer: "张三".into(),
                buyer: Some(v1::BuyerInput {
                    name: "北京某某信息技术有限公司".into(),
                    tax_id: "91110302MA01NP925M".into(),
                    ..Default::default()
                }),
                lines: vec![v1::LineInput {
                    item_name: "软件维护服务费".into(),
                    tax_code: "3040201030000000000".into(),
                    amount: "100.05".into(),
                    tax_rate: "6%".into(),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect();
        let request = v1::IssueInvoicesRequest {
            invoices,
            ..Default::default()
        };
        self.client()
            .await
            .issue_invoices(authorised(request))
            .await
            .unwrap()
            .into_inner()
            .results
            .into_iter()
            .map(|r| match r.result {
                Some(v1::issue_invoices_item_result::Result::Invoice(i)) => i.invoice_number,
                other => panic!("not issued: {other:?}"),
            })
            .collect()
    }

    /// The state of each of `numbers`.
    async fn states(&self, numbers: &[String]) -> Vec<v1::InvoiceState> {
        let mut client = self.client().await;
        let mut states = Vec::new();
        for number in numbers {
            let request = v1::GetInvoiceRequest {
                key: Some(v1::get_invoice_request::Key::InvoiceNumber(number.clone())),
                ..Default::default()
            };
            let invoice = client
                .get_invoice(authorised(request))
                .await
                .unwrap()
                .into_inner()
                .invoice
                .unwrap();
            states.push(invoice.state());
        }
        states
    }

    /// Call the sandbox's admin API.
    async fn sandbox(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let mut request =
            reqwest::Client::new().request(method, format!("{}/admin/{path}", self.sandbox));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }
}

/// The value of `name=` in a log line.
fn field(line: &str, name: &str) -> String {
    line.split(&format!("{name}="))
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_default()
        .trim_matches('"')
        .to_owned()
}

fn authorised<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    request
}

/// The store the servers share: SQLite under the data folder, or a fresh PostgreSQL database.
struct Database {
    dir: tempfile::TempDir,
    postgres: Option<String>,
    /// The server's administrative URL and the database's name, to drop it afterwards.
    created: Option<(String, String)>,
}

impl Database {
    fn sqlite() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            postgres: None,
            created: None,
        }
    }

    async fn postgres() -> Self {
        use sqlx::{Connection as _, Executor as _};
        let admin = std::env::var("FAPIAO_TEST_POSTGRES_URL")
            .expect("FAPIAO_TEST_POSTGRES_URL is set by scripts/test");
        let mut bytes = [0u8; 6];
        getrandom::fill(&mut bytes).unwrap();
        let name = format!(
            "fapiao_crash_{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        let (base, _) = admin.split_once('?').unwrap_or((&admin, ""));
        let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
        Self {
            dir: tempfile::tempdir().unwrap(),
            postgres: Some(format!("{server}/{name}")),
            created: Some((admin, name)),
        }
    }

    /// Drop the PostgreSQL database, once the servers are gone.
    async fn finish(self, pool: sqlx::AnyPool) {
        use sqlx::{Connection as _, Executor as _};
        pool.close().await;
        if let Some((admin, name)) = &self.created {
            let mut conn = sqlx::PgConnection::connect(admin).await.unwrap();
            conn.execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str())
                .await
                .unwrap();
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// A direct connection, to see the claims the servers hold.
    async fn connect(&self) -> sqlx::AnyPool {
        sqlx::any::install_default_drivers();
        let url = match &self.postgres {
            Some(url) => url.clone(),
            None => format!("sqlite://{}/data/fapiao.db", self.dir.path().display()),
        };
        sqlx::AnyPool::connect(&url).await.unwrap()
    }
}

/// Phase and due time (unix µs) of the invoices `owner` holds a claim on.
async fn claims_of(pool: &sqlx::AnyPool, owner: &str) -> Vec<(String, String, i64)> {
    sqlx::query_as(
        "SELECT invoice_number, upload_phase, next_attempt_at FROM invoices \
         WHERE upload_claimed_by = $1 ORDER BY invoice_number",
    )
    .bind(owner.to_owned())
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Wait (at most 20 s) until `owner` holds claims on exactly `numbers`, in `phases`.
async fn wait_claimed(pool: &sqlx::AnyPool, owner: &str, numbers: &[String], phases: &[&str]) {
    let mut expected = numbers.to_vec();
    expected.sort();
    let give_up = Instant::now() + Duration::from_secs(20);
    loop {
        let claims = claims_of(pool, owner).await;
        let held: Vec<String> = claims
            .iter()
            .filter(|(_, phase, _)| phases.contains(&phase.as_str()))
            .map(|(number, _, _)| number.clone())
            .collect();
        if expected.iter().all(|n| held.contains(n)) {
            return;
        }
        assert!(Instant::now() < give_up, "not claimed in time: {claims:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn hang(services: &[&str]) -> serde_json::Value {
    serde_json::json!({"latency": HANG, "services": services})
}

/// Upload (QDFPSC) and upload-result (CXQDFPSCJG) service codes.
const UPLOAD: &str = "QDFPSC";
const UPLOAD_RESULT: &str = "CXQDFPSCJG";

async fn a_restart_records_what_the_killed_process_had_claimed(database: Database) {
    let dir = database.path();
    // Uploads go through, result queries hang: the first invoices are claimed in POLL.
    let first = Server::start(&dir, &database, &[]);
    let pool = database.connect().await;
    let instance = field(&first.logged("instance identity").unwrap(), "instance");
    first
        .sandbox(reqwest::Method::PUT, "faults", Some(hang(&[UPLOAD_RESULT])))
        .await;
    let polled = first.issue("poll", 10).await;
    wait_claimed(&pool, &instance, &polled, &["POLL"]).await;
    // Then uploads hang too: the next invoices are claimed in SEND.
    first
        .sandbox(
            reqwest::Method::PUT,
            "faults",
            Some(hang(&[UPLOAD, UPLOAD_RESULT])),
        )
        .await;
    let sent = first.issue("send", 10).await;
    wait_claimed(&pool, &instance, &sent, &["SEND"]).await;
    let lease_ends = claims_of(&pool, &instance)
        .await
        .iter()
        .map(|c| c.2)
        .min()
        .unwrap();
    assert!(
        lease_ends > now_micros() + 30_000_000,
        "the default 60 s lease holds them well beyond the restart"
    );
    first.kill();

    let restarted_at = Instant::now();
    let second = Server::start(&dir, &database, &[]);
    assert_eq!(
        field(&second.logged("instance identity").unwrap(), "instance"),
        instance,
        "the same installation restarts under the same identity"
    );
    let all: Vec<String> = polled.iter().chain(&sent).cloned().collect();
    loop {
        let states = second.states(&all).await;
        if states.iter().all(|s| *s == v1::InvoiceState::Recorded) {
            break;
        }
        assert!(
            restarted_at.elapsed() < RESTART_BOUND,
            "not all recorded {RESTART_BOUND:?} after the restart: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = restarted_at.elapsed();
    eprintln!("all {} recorded {took:?} after the restart", all.len());
    let taken = second
        .logged("took back the claims")
        .expect("the take-back is logged");
    assert_eq!(field(&taken, "uploads"), "20", "{taken}");
    assert!(
        now_micros() < lease_ends,
        "recorded before the lease would have let them go"
    );
    drop(second);
    database.finish(pool).await;
}

async fn another_instance_waits_for_the_lease_of_a_dead_ones_claims(database: Database) {
    let dir = database.path();
    let first = Server::start(
        &dir,
        &database,
        &[
            ("FAPIAO__INSTANCE_ID", "replica-a"),
            ("FAPIAO__UPLOAD__LEASE", "10s"),
        ],
    );
    let pool = database.connect().await;
    first
        .sandbox(reqwest::Method::PUT, "faults", Some(hang(&[UPLOAD])))
        .await;
    let numbers = first.issue("lease", 10).await;
    wait_claimed(&pool, "replica-a", &numbers, &["SEND"]).await;
    first.kill();
    let claims = claims_of(&pool, "replica-a").await;
    let lease_ends = claims.iter().map(|c| c.2).min().unwrap();

    let second = Server::start(&dir, &database, &[("FAPIAO__INSTANCE_ID", "replica-b")]);
    assert!(
        second.logged("took back the claims").is_none(),
        "nothing of its own to take back"
    );
    assert_eq!(
        claims_of(&pool, "replica-a").await,
        claims,
        "replica-a's claims are left as they were"
    );
    let mut settled = false;
    let mut looked_before_the_lease_ended = 0;
    while !settled {
        let before = now_micros();
        let received =
            second.sandbox(reqwest::Method::GET, "stats", None).await["uploads_received"]
                .as_u64()
                .unwrap();
        // The answer may come up to a second after it was asked for.
        if before + 1_000_000 < lease_ends {
            assert_eq!(received, 0, "nothing sent before the lease ended");
            looked_before_the_lease_ended += 1;
        }
        settled = second
            .states(&numbers)
            .await
            .iter()
            .all(|s| *s == v1::InvoiceState::Recorded);
        assert!(
            now_micros() < lease_ends + i64::try_from(RESTART_BOUND.as_micros()).unwrap(),
            "not recorded soon after the lease ended"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first_attempt: i64 = sqlx::query_scalar("SELECT MIN(at) FROM upload_attempts")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        first_attempt >= lease_ends,
        "the first upload attempt came after the lease"
    );
    assert!(
        looked_before_the_lease_ended > 10,
        "the other replica ran for seconds while the lease held"
    );
    drop(second);
    database.finish(pool).await;
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restart_records_what_the_killed_process_had_claimed() {
        super::a_restart_records_what_the_killed_process_had_claimed(super::Database::sqlite())
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn another_instance_waits_for_the_lease_of_a_dead_ones_claims() {
        super::another_instance_waits_for_the_lease_of_a_dead_ones_claims(
            super::Database::sqlite(),
        )
        .await;
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restart_records_what_the_killed_process_had_claimed() {
        super::a_restart_records_what_the_killed_process_had_claimed(
            super::Database::postgres().await,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn another_instance_waits_for_the_lease_of_a_dead_ones_claims() {
        super::another_instance_waits_for_the_lease_of_a_dead_ones_claims(
            super::Database::postgres().await,
        )
        .await;
    }
}
