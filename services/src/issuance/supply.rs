//! Keeping each seller supplied with invoice numbers and quota, ahead of need.
//!
//! A background task checks every seller on an interval and whenever the writer issued something
//! or ran short: below the low-water mark it reserves a new number range (QDFPPLFM) or downloads
//! quota (XZTHSXED). A quota download is noted in the store under its serial before the platform
//! is asked, so a lost answer is asked again under the same serial and never granted twice.

use super::Shared;
use crate::platform::CallError;
use crate::platform::protocol::hex;
use anyhow::Context;
use fapiao_invoice::taxpayer::TaxpayerId;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

/// How many numbers to keep at hand.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NumbersConfig {
    /// Numbers asked for in one reservation.
    pub reserve: u32,
    /// Reserve more when fewer than this many are left.
    pub low_watermark: u32,
}

impl Default for NumbersConfig {
    fn default() -> Self {
        Self {
            reserve: 10_000,
            low_watermark: 5_000,
        }
    }
}

/// How much quota (tax-exclusive yuan) to keep downloaded.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaConfig {
    /// Amount asked for in one download (more when one invoice needs more).
    pub download: Decimal,
    /// Download more when less than this is left.
    pub low_watermark: Decimal,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        Self {
            download: Decimal::new(1_000_000_000, 2),
            low_watermark: Decimal::new(500_000_000, 2),
        }
    }
}

/// Settings of the supply task.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupplyConfig {
    pub numbers: NumbersConfig,
    pub quota: QuotaConfig,
    /// How often every seller is checked even when nothing happens.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
}

impl Default for SupplyConfig {
    fn default() -> Self {
        Self {
            numbers: NumbersConfig::default(),
            quota: QuotaConfig::default(),
            interval: Duration::from_secs(1),
        }
    }
}

/// What the rest of the workflow uses to poke the supply task.
#[derive(Debug, Clone, Default)]
pub struct SupplyHandle {
    wake: Arc<Notify>,
    wanted_fen: Arc<Mutex<HashMap<String, i64>>>,
    /// Sellers whose top-up is under way.
    busy: Arc<Mutex<HashSet<String>>>,
}

impl SupplyHandle {
    /// Check now rather than at the next interval.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// An invoice needed `fen` of quota the seller did not have: download at least that much.
    pub fn want_quota(&self, seller: &TaxpayerId, fen: i64) {
        let mut wanted = self
            .wanted_fen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = wanted.entry(seller.as_str().to_owned()).or_default();
        *entry = (*entry).max(fen);
        drop(wanted);
        self.wake();
    }

    /// Whether a top-up of the seller's numbers or quota is under way.
    pub fn topping_up(&self, seller: &TaxpayerId) -> bool {
        self.busy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(seller.as_str())
    }

    fn mark_busy(&self, seller: &TaxpayerId, busy: bool) {
        let mut set = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        if busy {
            set.insert(seller.as_str().to_owned());
        } else {
            set.remove(seller.as_str());
        }
    }

    fn take_wanted(&self, seller: &TaxpayerId) -> i64 {
        self.wanted_fen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(seller.as_str())
            .unwrap_or(0)
    }
}

/// Start the supply task (after the start-up top-up); it stops when `stop` turns true.
pub fn spawn(
    shared: Shared,
    sellers: Vec<TaxpayerId>,
    config: SupplyConfig,
    handle: SupplyHandle,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        // `App::start` has just topped every seller up: wait for the first reason to look again.
        loop {
            tokio::select! {
                () = handle.wake.notified() => {}
                () = tokio::time::sleep(config.interval) => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                break;
            }
            // Coalesce bursts of wake-ups from the writer.
            tokio::time::sleep(Duration::from_millis(20)).await;
            for seller in &sellers {
                let wanted = handle.take_wanted(seller);
                if let Err(error) = top_up(&shared, seller, &config, wanted, Some(&handle)).await {
                    tracing::warn!(
                        seller = seller.as_str(),
                        error = format!("{error:#}"),
                        "topping up numbers or quota failed; will retry"
                    );
                }
            }
        }
    })
}

/// Check one seller and top up what is below its mark. `wanted_fen` is quota an invoice needed.
pub async fn top_up(
    shared: &Shared,
    seller: &TaxpayerId,
    config: &SupplyConfig,
    wanted_fen: i64,
    handle: Option<&SupplyHandle>,
) -> anyhow::Result<()> {
    let status = shared.store.supply_status(seller).await?;
    let low = fen(config.quota.low_watermark);
    let short_of_numbers = status.numbers_left < i64::from(config.numbers.low_watermark);
    let short_of_quota = status.quota_left_fen < low || status.quota_left_fen < wanted_fen;
    if !short_of_numbers && !short_of_quota {
        return Ok(());
    }
    // Operators see the seller as topping up while the platform is asked.
    if let Some(handle) = handle {
        handle.mark_busy(seller, true);
    }
    let topped = async {
        if short_of_numbers {
            reserve_numbers(shared, seller, config).await?;
        }
        if short_of_quota {
            download_quota(shared, seller, config, wanted_fen - status.quota_left_fen).await?;
        }
        anyhow::Ok(())
    }
    .await;
    if let Some(handle) = handle {
        handle.mark_busy(seller, false);
    }
    topped
}

async fn reserve_numbers(
    shared: &Shared,
    seller: &TaxpayerId,
    config: &SupplyConfig,
) -> anyhow::Result<()> {
    match shared
        .platform
        .reserve_numbers(seller, config.numbers.reserve)
        .await
    {
        Ok(range) => {
            shared
                .store
                .add_number_range(seller, &range, shared.clock.now())
                .await?;
            tracing::info!(seller = seller.as_str(), first = %range.first, last = %range.last, "reserved invoice numbers");
        }
        Err(CallError::Refused { code, message }) => {
            tracing::warn!(
                seller = seller.as_str(),
                code,
                message,
                "the platform reserves no more numbers"
            );
        }
        Err(error) => return Err(error).context("reserving numbers"),
    }
    Ok(())
}

async fn download_quota(
    shared: &Shared,
    seller: &TaxpayerId,
    config: &SupplyConfig,
    shortfall_fen: i64,
) -> anyhow::Result<()> {
    let now = shared.clock.now();
    let download = match shared.store.pending_quota_download(seller).await? {
        Some(pending) => pending,
        None => {
            let platform = shared
                .platform
                .quota(seller)
                .await
                .context("querying quota")?;
            let available = fen(platform.available);
            shared
                .store
                .set_platform_available(seller, available, now)
                .await?;
            if available <= 0 {
                tracing::warn!(
                    seller = seller.as_str(),
                    "the monthly quota is used up on the platform"
                );
                return Ok(());
            }
            let asked = fen(config.quota.download).max(shortfall_fen).min(available);
            let pending = crate::store::PendingDownload {
                serial: new_serial()?,
                asked_fen: asked,
            };
            shared
                .store
                .begin_quota_download(seller, &pending, now)
                .await?;
            pending
        }
    };
    let asked = Decimal::new(download.asked_fen, 2);
    let granted = match shared
        .platform
        .download_quota(seller, asked, &download.serial)
        .await
    {
        Ok(grant) => fen(grant.granted),
        Err(CallError::Refused { code, message }) => {
            tracing::warn!(
                seller = seller.as_str(),
                code,
                message,
                "the platform refused a quota download"
            );
            0
        }
        Err(error) => return Err(error).context("downloading quota"),
    };
    shared
        .store
        .complete_quota_download(seller, &download.serial, granted)
        .await?;
    if let Ok(platform) = shared.platform.quota(seller).await {
        shared
            .store
            .set_platform_available(seller, fen(platform.available), shared.clock.now())
            .await?;
    }
    tracing::info!(seller = seller.as_str(), granted = %Decimal::new(granted, 2), "downloaded quota");
    Ok(())
}

fn fen(yuan: Decimal) -> i64 {
    (yuan * Decimal::ONE_HUNDRED)
        .round()
        .to_i64()
        .unwrap_or(i64::MAX)
}

fn new_serial() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for a serial: {e}"))?;
    Ok(format!("Q{}", hex(&bytes)))
}
