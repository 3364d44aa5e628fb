//! Deciding, call by call, which fault the sandbox injects.
//!
//! It owns the fault settings in force and the random source (seeded for reproducible runs); it
//! must not sleep or touch platform state: the HTTP layer acts on the [`Plan`] it returns.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::config::{FaultConfig, FaultRate, PER_MILLION};
use crate::platform::protocol::messages;

/// What to do to one business call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Delay before anything else.
    pub latency: Duration,
    pub action: Action,
    /// An upload to acknowledge and then forget.
    pub lose_upload: bool,
    /// An upload result to answer with every invoice twice.
    pub duplicate_results: bool,
    /// For an upload: which of its invoices to answer as recorded and then drop. `None` drops
    /// none.
    pub drop_records: Option<DropDice>,
}

/// Per-invoice dice for dropped records, seeded from the sandbox's random source so a seeded run
/// drops the same invoices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DropDice {
    pub rate: FaultRate,
    pub seed: u64,
}

impl DropDice {
    /// One verdict per invoice of the upload, in order.
    pub fn roll(self, count: usize) -> Vec<bool> {
        let mut rng = StdRng::seed_from_u64(self.seed);
        let ppm = self.rate.parts_per_million();
        (0..count)
            .map(|_| rng.random_range(0..PER_MILLION) < ppm)
            .collect()
    }
}

/// The main fault of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Answer normally.
    Proceed,
    /// Answer `SYSTEM_BUSY` without processing.
    Busy,
    /// Hang for `hang`; when `processed`, the call takes effect first.
    Hang { processed: bool, hang: Duration },
}

/// The fault settings in force and the dice.
#[derive(Debug)]
pub(crate) struct Faults {
    config: FaultConfig,
    rng: StdRng,
}

impl Faults {
    pub fn new(config: FaultConfig, seed: Option<u64>) -> Self {
        let rng = match seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Self { config, rng }
    }

    pub fn config(&self) -> &FaultConfig {
        &self.config
    }

    pub fn set(&mut self, config: FaultConfig) {
        self.config = config;
    }

    /// Rolls the dice for one call to `service`.
    pub fn plan(&mut self, service: &str) -> Plan {
        let mut plan = Plan {
            latency: Duration::ZERO,
            action: Action::Proceed,
            lose_upload: false,
            duplicate_results: false,
            drop_records: None,
        };
        if !self.config.applies_to(service) {
            return plan;
        }
        plan.latency = self.config.latency;
        if self.hit(self.config.busy_rate) {
            plan.action = Action::Busy;
        } else if self.hit(self.config.timeout_rate) {
            plan.action = Action::Hang {
                processed: self.hit(self.config.timeout_processed_rate),
                hang: self.config.timeout_hang,
            };
        } else if service == messages::UPLOAD {
            plan.lose_upload = self.hit(self.config.lost_upload_rate);
            let rate = self.config.dropped_record_rate;
            if rate.parts_per_million() > 0 {
                plan.drop_records = Some(DropDice {
                    rate,
                    seed: self.rng.random(),
                });
            }
        } else if service == messages::UPLOAD_RESULT {
            plan.duplicate_results = self.hit(self.config.duplicate_result_rate);
        }
        plan
    }

    /// Rolls the dice of the self-issued red invoice, for a form that just became 04. Unlike the
    /// call faults it ignores `services`: it is the platform's behaviour, not a call's.
    pub fn self_issued_red(&mut self) -> bool {
        self.hit(self.config.self_issued_red_rate)
    }

    fn hit(&mut self, rate: FaultRate) -> bool {
        match rate.parts_per_million() {
            0 => false,
            PER_MILLION => true,
            ppm => self.rng.random_range(0..PER_MILLION) < ppm,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_dice_are_reproducible_and_near_the_rate() {
        let config = FaultConfig {
            busy_rate: FaultRate::percent(10).unwrap(),
            ..FaultConfig::default()
        };
        let count = |seed| {
            let mut faults = Faults::new(config.clone(), Some(seed));
            (0..10_000)
                .filter(|_| faults.plan("CXSXED").action == Action::Busy)
                .count()
        };
        assert_eq!(count(7), count(7));
        assert!((800..1200).contains(&count(7)), "{}", count(7));
    }

    #[test]
    fn faults_apply_only_to_the_listed_services() {
        let config = FaultConfig {
            busy_rate: FaultRate::ALWAYS,
            services: vec!["QDFPSC".into()],
            ..FaultConfig::default()
        };
        let mut faults = Faults::new(config, Some(1));
        assert_eq!(faults.plan("CXSXED").action, Action::Proceed);
        assert_eq!(faults.plan("QDFPSC").action, Action::Busy);
    }

    #[test]
    fn lost_uploads_and_duplicate_results_only_hit_their_service() {
        let config = FaultConfig {
            lost_upload_rate: FaultRate::ALWAYS,
            duplicate_result_rate: FaultRate::ALWAYS,
            ..FaultConfig::default()
        };
        let mut faults = Faults::new(config, Some(1));
        assert!(faults.plan("QDFPSC").lose_upload);
        assert!(!faults.plan("QDFPSC").duplicate_results);
        assert!(faults.plan("CXQDFPSCJG").duplicate_results);
        assert!(!faults.plan("CXSXED").lose_upload);
    }
}
