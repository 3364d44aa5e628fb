//! Settings of the sandbox platform, as read from the `[sandbox]` section, and the fault settings
//! that the admin API reads and replaces at run time.
//!
//! It owns parsing and checking values; it must not hold state or do I/O.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::platform::protocol::messages;

/// Settings of the sandbox platform. Every field has a default; see `deploy/fapiao.example.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// Listen address of `fapiao sandbox` (unused by the in-process sandbox of `fapiao serve`,
    /// which picks a free local port).
    pub listen: SocketAddr,
    /// The access units allowed to call, with their keys.
    pub units: Vec<UnitConfig>,
    /// The channel digit (5th digit) of the numbers handed out, 0–9.
    pub channel: u8,
    /// The region digits used when a seller's tax id carries no numeric region, 0–99.
    pub default_region: u8,
    /// How many numbers a seller may reserve in all, unless `sellers` says otherwise.
    pub numbers_per_seller: u64,
    /// Most numbers one reservation hands out.
    pub max_range: u32,
    /// Monthly quota (授信额度, tax-exclusive yuan) of a seller, unless `sellers` says otherwise.
    pub monthly_quota: Decimal,
    /// Per-seller overrides of the allotment and the monthly quota.
    pub sellers: Vec<SellerConfig>,
    /// Most invoices accepted in one upload.
    pub max_upload: usize,
    /// How long after an upload its result becomes available, on the sandbox's clock.
    #[serde(with = "humantime_serde")]
    pub result_delay: Duration,
    /// Journal of every state change (JSON lines), replayed at start. Memory only when absent.
    pub state_file: Option<PathBuf>,
    /// Faults injected from the start; the admin API can change them at run time.
    pub faults: FaultConfig,
    /// Seed of the fault randomness, for reproducible runs; random when absent.
    pub seed: Option<u64>,
    /// Most request nonces remembered at once (each for the ±300 s window of its timestamp);
    /// beyond it requests are refused `REPLAY_CACHE_FULL`, which clients treat as busy.
    pub max_tracked_nonces: usize,
}

/// Default listen address of `fapiao sandbox`.
pub const DEFAULT_LISTEN: ([u8; 4], u16) = ([127, 0, 0, 1], 8443);

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(DEFAULT_LISTEN),
            units: Vec::new(),
            channel: 2,
            default_region: 31,
            numbers_per_seller: 1_000_000_000_000,
            max_range: 10_000,
            monthly_quota: Decimal::new(10_000_000_000_000, 2),
            sellers: Vec::new(),
            max_upload: 100,
            result_delay: Duration::ZERO,
            state_file: None,
            faults: FaultConfig::default(),
            seed: None,
            max_tracked_nonces: 1_000_000,
        }
    }
}

impl SandboxConfig {
    /// Checks the values that serde cannot.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.channel <= 9, "sandbox.channel must be a digit (0-9)");
        anyhow::ensure!(
            self.default_region <= 99,
            "sandbox.default_region must be two digits (0-99)"
        );
        anyhow::ensure!(self.max_range >= 1, "sandbox.max_range must be at least 1");
        anyhow::ensure!(
            self.max_upload >= 1,
            "sandbox.max_upload must be at least 1"
        );
        anyhow::ensure!(
            !self.monthly_quota.is_sign_negative(),
            "sandbox.monthly_quota must not be negative"
        );
        for (index, seller) in self.sellers.iter().enumerate() {
            anyhow::ensure!(
                seller.monthly_quota.is_none_or(|q| !q.is_sign_negative()),
                "sandbox.sellers[{index}].monthly_quota must not be negative"
            );
        }
        self.faults.check()
    }
}

/// One access unit the sandbox accepts. The keys never appear in `Debug`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitConfig {
    /// 接入单位平台编号.
    pub unit_id: String,
    /// 使用单位平台编号.
    pub user_id: String,
    /// SM4 key: 32 hex digits.
    pub sm4_key: SecretString,
    /// HMAC-SM3 key: text of at least 16 bytes.
    pub hmac_key: SecretString,
}

/// Overrides for one seller.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SellerConfig {
    /// The seller's 纳税人识别号.
    pub tax_id: String,
    /// How many numbers the seller may reserve in all.
    #[serde(default)]
    pub numbers: Option<u64>,
    /// The seller's monthly quota.
    #[serde(default)]
    pub monthly_quota: Option<Decimal>,
}

/// Faults the sandbox injects into business calls (never into the admin API). Rates are
/// probabilities per call, written `"5%"` or `"0.05"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Added to every business call before it is answered.
    #[serde(with = "humantime_serde")]
    pub latency: Duration,
    /// Calls that hang for `timeout_hang` instead of answering in time.
    pub timeout_rate: FaultRate,
    /// How long a timed-out call hangs; longer than any client timeout.
    #[serde(with = "humantime_serde")]
    pub timeout_hang: Duration,
    /// Share of timed-out calls that are processed (take effect) before hanging; the others have
    /// no effect and finally answer busy.
    pub timeout_processed_rate: FaultRate,
    /// Calls answered `SYSTEM_BUSY` without being processed.
    pub busy_rate: FaultRate,
    /// Uploads acknowledged with a receipt, then forgotten: nothing recorded, receipt unknown.
    pub lost_upload_rate: FaultRate,
    /// Invoices of an upload answered as recorded, then dropped: the upload result says recorded,
    /// but queries and listings never show them. Per invoice. Only reconciliation finds these.
    pub dropped_record_rate: FaultRate,
    /// Forms that become 04 (the buyer confirms, or the seller agrees to the buyer's form) whose
    /// red invoice the platform then issues and records itself, on the seller's next number, as
    /// the 电子发票服务平台 does; the seller finds it only by listing or querying. Applies whatever
    /// `services` says.
    pub self_issued_red_rate: FaultRate,
    /// Upload-result queries whose answer lists every invoice twice.
    pub duplicate_result_rate: FaultRate,
    /// The service codes (`fwbm`) faults apply to; empty means every service.
    pub services: Vec<String>,
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            timeout_rate: FaultRate::NEVER,
            timeout_hang: Duration::from_secs(30),
            timeout_processed_rate: FaultRate::HALF,
            busy_rate: FaultRate::NEVER,
            lost_upload_rate: FaultRate::NEVER,
            dropped_record_rate: FaultRate::NEVER,
            self_issued_red_rate: FaultRate::NEVER,
            duplicate_result_rate: FaultRate::NEVER,
            services: Vec::new(),
        }
    }
}

impl FaultConfig {
    /// Refuses unknown service codes.
    pub fn check(&self) -> anyhow::Result<()> {
        for service in &self.services {
            anyhow::ensure!(
                messages::SERVICES.contains(&service.as_str()),
                "unknown service code {service:?} in the fault services (known: {})",
                messages::SERVICES.join(", ")
            );
        }
        Ok(())
    }

    /// Whether faults apply to `service`.
    pub fn applies_to(&self, service: &str) -> bool {
        self.services.is_empty() || self.services.iter().any(|s| s == service)
    }
}

/// A probability, held as integer parts per million so no float arithmetic is needed. Written as
/// a percentage (`"5%"`, `"0.5%"`) or a fraction (`"0.05"`), as text or as a number; serialised as a
/// percentage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct FaultRate(u32);

/// One in a million: the resolution of a [`FaultRate`].
pub const PER_MILLION: u32 = 1_000_000;

impl FaultRate {
    pub const NEVER: Self = Self(0);
    pub const HALF: Self = Self(PER_MILLION / 2);
    pub const ALWAYS: Self = Self(PER_MILLION);

    /// `ppm` parts per million; `None` above one million.
    pub fn per_million(ppm: u32) -> Option<Self> {
        (ppm <= PER_MILLION).then_some(Self(ppm))
    }

    /// `percent` out of 100; `None` above 100.
    pub fn percent(percent: u32) -> Option<Self> {
        Self::per_million(percent.checked_mul(PER_MILLION / 100)?)
    }

    pub fn parts_per_million(self) -> u32 {
        self.0
    }

    /// From a fraction between 0 and 1, rounded to the nearest part per million.
    pub fn from_fraction(fraction: Decimal) -> Option<Self> {
        if fraction.is_sign_negative() || fraction > Decimal::ONE {
            return None;
        }
        let ppm = fraction.checked_mul(Decimal::from(PER_MILLION))?.round();
        Self::per_million(ppm.to_u32()?)
    }
}

/// Why a rate's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a fault rate is a percentage (\"5%\") or a fraction (\"0.05\") between 0 and 1")]
pub struct FaultRateError;

impl FromStr for FaultRate {
    type Err = FaultRateError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (number, scale) = match text.strip_suffix(['%', '％']) {
            Some(number) => (number.trim(), Decimal::ONE_HUNDRED),
            None => (text, Decimal::ONE),
        };
        let value = Decimal::from_str(number).map_err(|_| FaultRateError)?;
        value
            .checked_div(scale)
            .and_then(Self::from_fraction)
            .ok_or(FaultRateError)
    }
}

impl fmt::Display for FaultRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // ppm / 10_000 is the percentage.
        write!(f, "{}%", Decimal::new(i64::from(self.0), 4).normalize())
    }
}

impl Serialize for FaultRate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FaultRate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RateVisitor)
    }
}

struct RateVisitor;

impl serde::de::Visitor<'_> for RateVisitor {
    type Value = FaultRate;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a percentage such as \"5%\" or a fraction between 0 and 1")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<FaultRate, E> {
        text.parse().map_err(E::custom)
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<FaultRate, E> {
        FaultRate::from_fraction(Decimal::from(value)).ok_or_else(|| E::custom(FaultRateError))
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<FaultRate, E> {
        FaultRate::from_fraction(Decimal::from(value)).ok_or_else(|| E::custom(FaultRateError))
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<FaultRate, E> {
        // A conversion, not arithmetic: the nearest decimal to the float, then integer rounding.
        Decimal::try_from(value)
            .ok()
            .and_then(FaultRate::from_fraction)
            .ok_or_else(|| E::custom(FaultRateError))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_percentages_and_fractions() {
        assert_eq!("5%".parse(), Ok(FaultRate(50_000)));
        assert_eq!(" 0.05 ".parse(), Ok(FaultRate(50_000)));
        assert_eq!("100%".parse(), Ok(FaultRate::ALWAYS));
        assert_eq!("0.0001%".parse(), Ok(FaultRate(1)));
        assert!("101%".parse::<FaultRate>().is_err());
        assert!("-1%".parse::<FaultRate>().is_err());
        assert!("often".parse::<FaultRate>().is_err());
        assert_eq!(FaultRate(50_000).to_string(), "5%");
        assert_eq!(FaultRate(1).to_string(), "0.0001%");
        assert_eq!(FaultRate::percent(30), Some(FaultRate(300_000)));
    }

    #[test]
    fn rates_read_numbers_too() {
        let faults: FaultConfig =
            serde_json::from_str(r#"{"busy_rate": 0.25, "timeout_rate": 1}"#).unwrap();
        assert_eq!(faults.busy_rate, FaultRate::percent(25).unwrap());
        assert_eq!(faults.timeout_rate, FaultRate::ALWAYS);
        let text = serde_json::to_string(&faults).unwrap();
        assert!(text.contains(r#""busy_rate":"25%""#), "{text}");
        assert!(text.contains(r#""timeout_hang":"30s""#), "{text}");
    }

    #[test]
    fn a_full_sandbox_section_parses() {
        let config: SandboxConfig = toml::from_str(
            r#"
            listen = "127.0.0.1:9443"
            monthly_quota = "5000.00"
            result_delay = "2s"
            state_file = "/tmp/sandbox.jsonl"
            seed = 7
            [faults]
            latency = "10ms"
            busy_rate = "5%"
            services = ["QDFPSC"]
            [[units]]
            unit_id = "JR0001"
            user_id = "SY0001"
            sm4_key = "00112233445566778899aabbccddeeff"
            hmac_key = "replace-with-the-signing-key"
            [[sellers]]
            tax_id = "91310000MA1FP00011"
            numbers = 1000
            monthly_quota = "10.00"
            "#,
        )
        .unwrap();
        config.check().unwrap();
        assert_eq!(config.result_delay, Duration::from_secs(2));
        assert_eq!(config.faults.busy_rate, FaultRate::percent(5).unwrap());
        assert_eq!(config.sellers[0].numbers, Some(1000));
        assert_eq!(config.max_upload, 100, "defaults fill the rest");
        assert!(toml::from_str::<SandboxConfig>("chanel = 3").is_err());
        let bad = SandboxConfig {
            channel: 10,
            ..SandboxConfig::default()
        };
        assert!(bad.check().is_err());
    }

    #[test]
    fn unknown_fault_services_are_refused() {
        let faults = FaultConfig {
            services: vec!["QDFPSC".into(), "NOPE".into()],
            ..FaultConfig::default()
        };
        assert!(faults.check().is_err());
        assert!(!faults.applies_to("CXSXED"));
    }
}
