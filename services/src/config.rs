//! Configuration of `fapiao serve`, in layers: built-in defaults, then an optional TOML file, then
//! `FAPIAO__SECTION__KEY` environment variables, then flags.
//!
//! An environment variable names a key path with `__` between parts, lower-cased
//! (`FAPIAO__LISTEN`, `FAPIAO__TAX_CODES`); its value is read as a TOML value when it is one
//! (`["a", "b"]`, `42`, an inline table array for `FAPIAO__TOKENS`) and as a string otherwise.
//!
//! The defaults run the service with no set-up at all (the "embedded defaults"): a local listener
//! and the sandbox seller. Every option is documented on its field; `deploy/fapiao.example.toml`
//! shows them all.

use crate::archiving::ArchiveConfig;
use crate::auth::TokenConfig;
use crate::issuance::supply::SupplyConfig;
use crate::issuance::upload::UploadConfig;
use crate::platform::client::ClientConfig;
use crate::platform::sandbox::SandboxConfig;
use crate::sellers::SellerProfile;
use anyhow::Context;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Everything the service reads at start-up.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the gRPC listener. Port 0 picks a free port (the address is printed).
    pub listen: SocketAddr,
    /// The name this replica holds its claims and leases under: stable across its restarts and
    /// distinct per replica, so a restart takes back its own claims at once. Unset: the host name
    /// and `listen` (see `instance`).
    pub instance_id: Option<String>,
    /// A replacement catalog of tax classification codes, in the format of the bundled
    /// `invoice/data/tax_codes.toml`. The bundled catalog is used when absent.
    pub tax_codes: Option<PathBuf>,
    /// The sellers this deployment issues for. Requests for any other seller are refused with
    /// `SELLER_NOT_CONFIGURED`.
    pub sellers: Vec<SellerProfile>,
    /// Bearer tokens of the callers. With none configured, a random development token with every
    /// role is generated at start and printed: fine on a laptop, never in production.
    pub tokens: Vec<TokenConfig>,
    /// Folder for the embedded defaults: the SQLite database and the in-process sandbox's state.
    pub data_dir: PathBuf,
    /// The database.
    pub database: DatabaseConfig,
    /// The issuing writer.
    pub issuance: IssuanceConfig,
    /// Keeping numbers and quota topped up from the platform.
    pub supply: SupplyConfig,
    /// Uploading issued invoices to the platform.
    pub upload: UploadConfig,
    /// The archive of layout files (XML, OFD, PDF) and its worker.
    pub archive: ArchiveConfig,
    /// The tax platform to talk to; with no URL, the built-in sandbox runs in-process.
    pub platform: ClientConfig,
    /// The built-in sandbox platform (in-process under `fapiao serve`, or `fapiao sandbox`).
    pub sandbox: SandboxConfig,
    /// Comparing the store with the platform (`fapiao reconcile`).
    pub reconcile: crate::reconciling::ReconcileConfig,
    /// Evaluating the success-rate objective and sending alerts.
    pub alerts: crate::alerting::AlertConfig,
    /// The Prometheus `/metrics` endpoint.
    pub metrics: crate::metrics::MetricsConfig,
    /// Following red-letter forms and issuing their red invoices.
    pub red_letter: crate::redletter::RedLetterConfig,
    /// The gRPC listener's limits per caller and in total, and its connection timeouts.
    pub server: crate::grpc::edge::ServerConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            instance_id: None,
            tax_codes: None,
            sellers: vec![SellerProfile::demo()],
            tokens: Vec::new(),
            data_dir: PathBuf::from("data"),
            database: DatabaseConfig::default(),
            issuance: IssuanceConfig::default(),
            supply: SupplyConfig::default(),
            upload: UploadConfig::default(),
            archive: ArchiveConfig::default(),
            platform: ClientConfig::default(),
            sandbox: SandboxConfig::default(),
            reconcile: crate::reconciling::ReconcileConfig::default(),
            alerts: crate::alerting::AlertConfig::default(),
            metrics: crate::metrics::MetricsConfig::default(),
            red_letter: crate::redletter::RedLetterConfig::default(),
            server: crate::grpc::edge::ServerConfig::default(),
        }
    }
}

/// Where invoices are stored.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://path?mode=rwc` or `postgres://user:password@host/db`. Unset: a SQLite file in
    /// `data_dir`. May carry a password: it is never logged.
    pub url: Option<secrecy::SecretString>,
    /// Connections in the pool (PostgreSQL) or reader connections (SQLite; it has one writer).
    pub max_connections: u32,
    /// Longest wait for a free connection before a call fails as unavailable.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: std::time::Duration,
    /// SQLite: the most memory (MiB) all connections' page caches take together, half for the
    /// writer and the rest shared by the readers. Ignored by PostgreSQL.
    pub sqlite_cache_mib: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 8,
            acquire_timeout: std::time::Duration::from_secs(10),
            sqlite_cache_mib: crate::store::StoreOptions::SQLITE_CACHE_MIB,
        }
    }
}

/// The issuing writer, which commits queued invoices in batches.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IssuanceConfig {
    /// Invoices waiting for the writer before callers wait to enqueue (back-pressure).
    pub queue: usize,
    /// Most invoices committed in one transaction.
    pub max_batch: usize,
}

impl Default for IssuanceConfig {
    fn default() -> Self {
        Self {
            queue: 4096,
            max_batch: 256,
        }
    }
}

impl Config {
    /// The database URL: the configured one, or the SQLite file under `data_dir`.
    pub fn database_url(&self) -> String {
        use secrecy::ExposeSecret;
        match &self.database.url {
            Some(url) => url.expose_secret().to_owned(),
            None => format!("sqlite://{}/fapiao.db?mode=rwc", self.data_dir.display()),
        }
    }

    /// Connect to the configured database with up to `max_connections` and apply the migrations
    /// this build knows.
    pub async fn open_store(&self, max_connections: u32) -> anyhow::Result<crate::store::Store> {
        let store = crate::store::Store::connect(&crate::store::StoreOptions {
            url: self.database_url(),
            max_connections,
            acquire_timeout: self.database.acquire_timeout,
            sqlite_cache_mib: self.database.sqlite_cache_mib,
        })
        .await?;
        store.migrate().await?;
        Ok(store)
    }

    /// The defaults, overlaid with the file at `path` when given, then with the `FAPIAO__…`
    /// variables among `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Self> {
        let mut table = match path {
            None => toml::Table::new(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                text.parse::<toml::Table>()
                    .with_context(|| format!("parsing config file {}", path.display()))?
            }
        };
        overlay_env(&mut table, env);
        Self::from_table(table).context("applying the configuration")
    }

    pub fn from_toml_str(text: &str) -> anyhow::Result<Self> {
        Ok(toml::from_str(text)?)
    }

    fn from_table(table: toml::Table) -> anyhow::Result<Self> {
        Ok(toml::Value::Table(table).try_into()?)
    }
}

/// Prefix of configuration variables; parts of a key path are joined by `__`.
pub const ENV_PREFIX: &str = "FAPIAO__";

fn overlay_env(table: &mut toml::Table, env: impl IntoIterator<Item = (String, String)>) {
    for (name, raw) in env {
        let Some(path) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let keys: Vec<String> = path.split("__").map(str::to_lowercase).collect();
        set_path(table, &keys, env_value(&raw));
    }
}

fn set_path(table: &mut toml::Table, keys: &[String], value: toml::Value) {
    match keys {
        [] => {}
        [last] => {
            table.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            if let Some(inner) = entry.as_table_mut() {
                set_path(inner, rest, value);
            }
        }
    }
}

/// A TOML value when the text is one, else the text itself.
fn env_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

/// The wait before retry number `attempt` (1-based) on a back-off `schedule` whose last step
/// repeats; `fallback` when the schedule is empty.
pub(crate) fn backoff_at(
    schedule: &[std::time::Duration],
    attempt: u32,
    fallback: std::time::Duration,
) -> std::time::Duration {
    let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
    schedule
        .get(index)
        .or(schedule.last())
        .copied()
        .unwrap_or(fallback)
}

/// `["10s", "30s"]` in config files.
pub(crate) mod durations {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        texts
            .iter()
            .map(|t| {
                humantime_serde::re::humantime::parse_duration(t).map_err(serde::de::Error::custom)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_overrides_only_what_it_names() {
        let c = Config::from_toml_str("listen = \"0.0.0.0:6000\"").unwrap();
        assert_eq!(c.listen, "0.0.0.0:6000".parse().unwrap());
        assert_eq!(c.sellers, vec![SellerProfile::demo()]);
        assert!(Config::from_toml_str("lisen = \"0.0.0.0:6000\"").is_err());
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn environment_overrides_the_file_and_the_defaults() {
        let dir = std::env::temp_dir().join(format!("fapiao-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("fapiao.toml");
        std::fs::write(
            &file,
            "listen = \"0.0.0.0:6000\"\ntax_codes = \"/etc/a.toml\"\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&file),
            env(&[
                ("FAPIAO__LISTEN", "127.0.0.1:7000"),
                ("FAPIAO_LOG", "debug"),
                ("OTHER__LISTEN", "1.2.3.4:1"),
                (
                    "FAPIAO__TOKENS",
                    r#"[{name = "ci", token = "a-long-enough-token", roles = ["issuer"], sellers = ["*"]}]"#,
                ),
            ]),
        )
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(c.listen, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(c.tax_codes, Some(PathBuf::from("/etc/a.toml")));
        assert_eq!(c.tokens.len(), 1);
        assert_eq!(c.tokens[0].name, "ci");
        assert_eq!(c.sellers, vec![SellerProfile::demo()]);
    }

    #[test]
    fn no_file_and_no_variables_give_the_embedded_defaults() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.listen, Config::default().listen);
        assert!(c.tokens.is_empty());
        assert!(Config::load(None, env(&[("FAPIAO__LISTEN", "not an address")])).is_err());
    }

    #[test]
    fn the_example_config_is_valid() {
        let text = include_str!("../../deploy/fapiao.example.toml");
        let c = Config::from_toml_str(text).unwrap();
        assert!(!c.sellers.is_empty());
        assert_eq!(c.reconcile.grace, std::time::Duration::from_secs(120));
        assert_eq!(c.reconcile.settings().max_reuploads, 3);
    }
}
