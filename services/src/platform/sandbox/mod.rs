//! The sandbox tax platform: a real HTTP server speaking the platform protocol
//! ([`super::protocol`], services in [`super::protocol::messages`]) and behaving like the platform,
//! so the issuance core runs and is tested anywhere.
//!
//! It owns the platform side: verifying every request (unit, signature, ±300 s time window on the
//! injected clock, replayed nonces), reserving numbers, the monthly quota, accepting uploads and
//! publishing their results after `result_delay`, the queries, fault injection, the admin API and
//! the optional journal. It must not be exposed to the internet: `/admin/` has no authentication.
//!
//! Behaviour worth knowing:
//! - Numbers are year (China time) + region (characters 3–4 of a unified social credit code,
//!   1–2 of other tax ids, else `default_region`) + `channel` + a 15-digit sequence shared per
//!   (year, region, channel), so two sellers never get the same number. A sequence starts where
//!   the time of year says (see `state`), and continues from the journal when there is one.
//! - A reservation hands out at most `max_range` numbers and never more than the seller's
//!   remaining allotment; with none left it is refused `FPHM_EXHAUSTED`.
//! - Quota: `monthly_quota` per seller and China-time month; a download grants
//!   min(asked, available), once per `ywlsh`; with nothing available it is refused
//!   `SXED_INSUFFICIENT`.
//! - Uploads (at most `max_upload` invoices of one seller) are judged at once, invoice by invoice
//!   ([`checks`] lists the rules and tolerances); the receipt's results become visible
//!   `result_delay` later on the clock. An already recorded number with the same content is
//!   recorded again without a duplicate; with other content it is rejected `FPHM_CONFLICT`.
//! - Red-letter confirmation forms (`HZQRXXLR`/`CX`/`QR`/`LB`, rules in `state::forms`): a form
//!   is 01 or 02 by how the buyer used the blue invoice, pending forms (02, 03) void themselves
//!   (07) 72 hours after filing, and a red invoice is recorded only against a form of its blue
//!   invoice in 01 or 04 that has none yet, reversing exactly the form's lines.
//! - Business time is the clock plus an offset the admin API advances; everything but the
//!   protocol's timestamp window runs on it (see `state`).
//! - Faults ([`FaultConfig`]) hit business calls after verification: latency, busy answers, hangs
//!   (some processed first, so the outcome is truly unknown), lost uploads, repeated results; and
//!   the platform issuing a confirmed form's red invoice itself (`self_issued_red_rate`).
//! - Admin API (plain JSON): `GET|PUT /admin/faults`, `GET /admin/stats`,
//!   `PUT /admin/sellers/{tax_id}` (`{"numbers_remaining":…, "monthly_quota":"…"}`),
//!   `PUT /admin/invoices/{number}/usage` (`{"used_for_deduction":…, "booked":…}`),
//!   `GET /admin/invoices?seller=…` (recorded numbers), `GET|POST /admin/clock`,
//!   `GET|POST /admin/forms`, `POST /admin/forms/{number}/confirm|deny` (the buyer's side).
//! - With `state_file`, every change is journaled and replayed at start ([`journal`]), the clock
//!   offset included; faults and statistics are not (form counts come from the state).

mod checks;
mod config;
mod faults;
mod http;
mod journal;
mod service;
mod shelf;
mod state;
mod stats;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use anyhow::Context;
use axum::http::HeaderMap;
use fapiao_invoice::taxpayer::TaxpayerId;
use tokio::net::TcpListener;

pub use config::{
    DEFAULT_LISTEN, FaultConfig, FaultRate, FaultRateError, PER_MILLION, SandboxConfig,
    SellerConfig, UnitConfig,
};
pub use service::MAX_PAGE_SIZE;
pub use state::SellerView;
pub use stats::Stats;

use super::client::credentials_from_parts;
use super::protocol::messages;
use super::protocol::{Credentials, Refusal, SignedHeaders, Verifier, VerifierConfig};
use crate::clock::{SharedClock, SystemClock};
use faults::{Faults, Plan};
use journal::Journal;
use state::{Event, Settings, State};

/// A running sandbox platform. Cheap to clone: clones share everything.
#[derive(Clone)]
pub struct Sandbox {
    shared: Arc<Shared>,
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox")
            .field("clock", &self.shared.clock)
            .field("max_upload", &self.shared.max_upload)
            .field("result_delay", &self.shared.result_delay)
            .finish_non_exhaustive()
    }
}

/// Everything the handlers share.
struct Shared {
    clock: SharedClock,
    verifier: Mutex<Verifier>,
    ledger: Mutex<Ledger>,
    faults: Mutex<Faults>,
    stats: Mutex<Stats>,
    receipts: Receipts,
    max_upload: usize,
    result_delay: chrono::Duration,
}

/// The state and its journal, locked together so the journal's order is the state's.
#[derive(Debug)]
struct Ledger {
    state: State,
    journal: Option<Journal>,
    failed_write: Option<std::io::Error>,
}

impl Ledger {
    /// Journals (when journaling) and applies one event.
    fn commit(&mut self, event: Event) {
        if let Some(journal) = &mut self.journal
            && self.failed_write.is_none()
            && let Err(error) = journal.append(&event)
        {
            self.failed_write = Some(error);
        }
        self.state.apply(event);
    }

    /// Lets time act up to `now` (business time): pending forms past their deadline expire.
    fn catch_up(&mut self, now: chrono::DateTime<chrono::Utc>) {
        for event in self.state.expire_due(now) {
            self.commit(event);
        }
    }

    /// Flushes what this request journaled; an error if any of it could not be written.
    fn finish(&mut self) -> std::io::Result<()> {
        let failed = self.failed_write.take();
        let flushed = self.journal.as_mut().map_or(Ok(()), Journal::flush);
        match failed {
            Some(error) => Err(error),
            None => flushed,
        }
    }
}

/// Receipt numbers (`sllsh`): a random per-process prefix and a counter, so receipts of a restarted
/// sandbox never repeat earlier ones.
#[derive(Debug)]
struct Receipts {
    prefix: String,
    counter: AtomicU64,
}

impl Receipts {
    fn new() -> Self {
        Self {
            prefix: format!("SL{:08X}", rand::random::<u32>()),
            counter: AtomicU64::new(1),
        }
    }

    fn next(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{}{n:012}", self.prefix)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.ledger)
    }

    fn with_stats(&self, update: impl FnOnce(&mut Stats)) {
        update(&mut lock(&self.stats));
    }

    fn count_request(&self, service: &str) {
        let key = if messages::SERVICES.contains(&service) {
            service
        } else {
            "other"
        };
        self.with_stats(|s| Stats::bump(&mut s.requests, key, 1));
    }

    fn count_refusal(&self, code: &str) {
        self.with_stats(|s| Stats::bump(&mut s.refusals, code, 1));
    }

    /// Business time: the clock plus the offset the admin API advanced it by.
    fn business_now(&self) -> chrono::DateTime<chrono::Utc> {
        let clock = self.clock.now();
        self.ledger().state.business_time(clock)
    }

    fn next_receipt(&self) -> String {
        self.receipts.next()
    }

    /// Checks the routing headers and the signed request; the unit's credentials when it passes.
    fn verify(
        &self,
        capability: &str,
        service: &str,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Credentials, Refusal> {
        http::check_routing_header(headers, messages::HEADER_CAPABILITY, capability)?;
        http::check_routing_header(headers, messages::HEADER_SERVICE, service)?;
        let signed = SignedHeaders::from_lookup(|name| {
            headers.get(name).and_then(|value| value.to_str().ok())
        })?;
        let now = u64::try_from(self.clock.now().timestamp()).unwrap_or(0);
        lock(&self.verifier)
            .verify("POST", path, &signed, body, now)
            .cloned()
    }

    /// The faults for one call, counted.
    fn plan(&self, service: &str) -> Plan {
        let plan = lock(&self.faults).plan(service);
        let kind = match plan.action {
            faults::Action::Proceed => None,
            faults::Action::Busy => Some("busy"),
            faults::Action::Hang {
                processed: true, ..
            } => Some("timeout_processed"),
            faults::Action::Hang {
                processed: false, ..
            } => Some("timeout_unprocessed"),
        };
        if kind.is_some() || !plan.latency.is_zero() {
            self.with_stats(|s| {
                if !plan.latency.is_zero() {
                    Stats::bump(&mut s.faults, "latency", 1);
                }
                if let Some(kind) = kind {
                    Stats::bump(&mut s.faults, kind, 1);
                }
            });
        }
        plan
    }
}

impl Sandbox {
    /// A sandbox with the units, sellers, faults and journal of `config`, on `clock`. With a
    /// `state_file`, replays it first (blocking file I/O: call it at start).
    pub fn new(config: &SandboxConfig, clock: SharedClock) -> anyhow::Result<Self> {
        config.check()?;
        let mut verifier = Verifier::new(VerifierConfig {
            max_tracked_nonces: config.max_tracked_nonces,
            ..VerifierConfig::default()
        });
        for (index, unit) in config.units.iter().enumerate() {
            verifier.register(credentials_from_parts(
                &format!("sandbox.units[{index}]"),
                &unit.unit_id,
                &unit.user_id,
                Some(&unit.sm4_key),
                Some(&unit.hmac_key),
            )?);
        }
        let ledger = open_ledger(config)?;
        let result_delay = chrono::Duration::from_std(config.result_delay)
            .context("sandbox.result_delay is too long")?;
        let shared = Shared {
            clock,
            verifier: Mutex::new(verifier),
            ledger: Mutex::new(ledger),
            faults: Mutex::new(Faults::new(config.faults.clone(), config.seed)),
            stats: Mutex::new(Stats::default()),
            receipts: Receipts::new(),
            max_upload: config.max_upload,
            result_delay,
        };
        Ok(Self {
            shared: Arc::new(shared),
        })
    }

    /// Accepts calls from one more unit (or replaces the unit with the same access unit id).
    pub fn register(&self, credentials: Credentials) {
        lock(&self.shared.verifier).register(credentials);
    }

    /// The platform endpoint and the admin API, ready to serve.
    pub fn router(&self) -> axum::Router {
        http::router(self.clone())
    }

    /// The faults in force.
    pub fn faults(&self) -> FaultConfig {
        lock(&self.shared.faults).config().clone()
    }

    /// Replaces the faults in force (refuses unknown service codes).
    pub fn set_faults(&self, faults: FaultConfig) -> anyhow::Result<()> {
        faults.check()?;
        lock(&self.shared.faults).set(faults);
        Ok(())
    }

    /// What the sandbox has seen so far, with the forms by status (after expiring what is due).
    pub fn stats(&self) -> Stats {
        let forms = {
            let now = self.shared.business_now();
            let mut ledger = self.shared.ledger();
            ledger.catch_up(now);
            if let Err(error) = ledger.finish() {
                tracing::error!(%error, "cannot write the sandbox state file");
            }
            ledger.state.form_counts()
        };
        let mut stats = lock(&self.shared.stats).clone();
        stats.forms = forms;
        stats
    }

    /// Business time: the sandbox's clock plus the offset advanced through the admin API.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.shared.business_now()
    }
}

fn open_ledger(config: &SandboxConfig) -> anyhow::Result<Ledger> {
    let mut state = State::new(settings(config)?);
    let journal = match &config.state_file {
        None => None,
        Some(path) => {
            let (journal, replayed) = Journal::open(path, |event| state.apply(event))?;
            tracing::info!(path = %journal.path().display(), events = replayed, "sandbox state replayed");
            Some(journal)
        }
    };
    Ok(Ledger {
        state,
        journal,
        failed_write: None,
    })
}

fn settings(config: &SandboxConfig) -> anyhow::Result<Settings> {
    let mut overrides = HashMap::new();
    for (index, seller) in config.sellers.iter().enumerate() {
        let tax_id = TaxpayerId::parse(&seller.tax_id).map_err(|e| {
            anyhow::anyhow!("sandbox.sellers[{index}].tax_id is not a valid taxpayer id: {e}")
        })?;
        overrides.insert(tax_id, (seller.numbers, seller.monthly_quota));
    }
    Ok(Settings {
        channel: config.channel,
        default_region: config.default_region,
        numbers_per_seller: config.numbers_per_seller,
        max_range: config.max_range,
        monthly_quota: config.monthly_quota,
        overrides,
        scratch_dir: config
            .state_file
            .as_deref()
            .and_then(std::path::Path::parent)
            .filter(|dir| !dir.as_os_str().is_empty())
            .map(std::path::Path::to_owned),
    })
}

/// Serves `sandbox` on `listener` until `shutdown` resolves, then lets calls in flight finish
/// (a hanging call holds the shutdown for up to its hang).
pub async fn serve(
    listener: TcpListener,
    sandbox: Sandbox,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use axum::serve::ListenerExt;
    // Without TCP_NODELAY small replies wait for the client's delayed ACK (~40 ms each).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, sandbox.router())
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving the sandbox platform")
}

/// `fapiao sandbox`: the sandbox alone, on the system clock, for the units of `config`, listening
/// on `config.listen` until `shutdown`.
pub async fn run_standalone(
    config: SandboxConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        !config.units.is_empty(),
        "the sandbox has no units to accept: add at least one [[sandbox.units]] with unit_id, \
         user_id, sm4_key and hmac_key"
    );
    let sandbox = Sandbox::new(&config, Arc::new(SystemClock))?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(
        %address,
        units = config.units.len(),
        journal = config.state_file.is_some(),
        "sandbox tax platform listening; /admin/ is unauthenticated, keep it private"
    );
    serve(listener, sandbox, shutdown).await?;
    tracing::info!("sandbox tax platform stopped");
    Ok(())
}

/// Fresh random credentials for a unit, e.g. for the in-process sandbox of `fapiao serve`, which
/// registers them with [`Sandbox::register`] and gives them to its client.
pub fn generate_credentials(unit_id: &str, user_id: &str) -> anyhow::Result<Credentials> {
    let mut sm4 = [0u8; super::protocol::SM4_KEY_LEN];
    let mut hmac = vec![0u8; 32];
    getrandom::fill(&mut sm4)
        .and_then(|()| getrandom::fill(&mut hmac))
        .map_err(|_| anyhow::anyhow!("operating system randomness is unavailable"))?;
    Ok(Credentials::new(unit_id, user_id, sm4, hmac)?)
}
