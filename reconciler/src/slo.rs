//! The issuance success-rate objective and its multi-window burn-rate rules.
//!
//! It owns the arithmetic: counting outcomes ([`Outcomes`]), the objective and its error budget
//! ([`Objective`]), the SRE workbook's multi-window burn-rate rules ([`default_rules`]), the plain
//! "below objective over the window" check, and the verdict of one evaluation ([`SloBreach`]).
//!
//! It must not count anything itself, read the clock or talk to a store: the caller asks
//! [`windows_needed`] which window lengths to count, counts them once per scope, and hands the
//! counts to [`evaluate`]. Turning breaches into alerts and sending them is `alert`'s and the
//! service's business. Every rate is exact `Decimal` arithmetic (no floats), and no input panics:
//! counts are summed in `u128` and every product that could overflow is checked.

use std::ops::{Add, AddAssign};

use chrono::Duration;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::alert::Severity;

/// Decimal places kept in a breach's success rates, enough to tell 99.95% from 99.9%.
const SUCCESS_RATE_DP: u32 = 6;
/// Decimal places kept in a breach's burn rates.
const BURN_RATE_DP: u32 = 4;

/// How issuance attempts ended within one window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcomes {
    /// Invoices the tax platform recorded.
    pub recorded: u64,
    /// Invoices the tax platform rejected.
    pub rejected: u64,
    /// Attempts that failed before the platform gave a verdict (timeouts, transport errors).
    pub failed_attempts: u64,
}

impl Outcomes {
    /// Every outcome in the window. `u128` so that no three counts can overflow.
    pub fn total(&self) -> u128 {
        u128::from(self.recorded) + u128::from(self.rejected) + u128::from(self.failed_attempts)
    }

    /// The outcomes that spend error budget: rejections and failed attempts.
    pub fn bad(&self) -> u128 {
        u128::from(self.rejected) + u128::from(self.failed_attempts)
    }

    /// `recorded ÷ total`, exact to Decimal's 28 digits; `None` when there were no outcomes.
    pub fn success_rate(&self) -> Option<Decimal> {
        Decimal::from(self.recorded).checked_div(count(self.total())?)
    }

    /// `bad ÷ total`; `None` when there were no outcomes.
    pub fn error_rate(&self) -> Option<Decimal> {
        count(self.bad())?.checked_div(count(self.total())?)
    }
}

impl Add for Outcomes {
    type Output = Outcomes;

    /// Field-wise, saturating: adding windows never panics.
    fn add(self, rhs: Outcomes) -> Outcomes {
        Outcomes {
            recorded: self.recorded.saturating_add(rhs.recorded),
            rejected: self.rejected.saturating_add(rhs.rejected),
            failed_attempts: self.failed_attempts.saturating_add(rhs.failed_attempts),
        }
    }
}

impl AddAssign for Outcomes {
    fn add_assign(&mut self, rhs: Outcomes) {
        *self = *self + rhs;
    }
}

/// A count as a Decimal. Three `u64`s sum to under 2^66, far inside Decimal's 96-bit range.
fn count(n: u128) -> Option<Decimal> {
    Decimal::try_from_i128_with_scale(i128::try_from(n).ok()?, 0).ok()
}

/// The success-rate objective. The target is kept strictly between 0 and 1 so the error budget
/// is never zero or negative; that is why the field is private and [`Objective::new`] checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Decimal", into = "Decimal")]
pub struct Objective {
    target: Decimal,
}

/// Why an objective was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectiveError {
    /// The target was 0 or less, or 1 or more.
    #[error("slo target must lie strictly between 0 and 1")]
    OutOfRange {
        /// The refused target.
        target: Decimal,
    },
}

impl Objective {
    /// An objective of `target` (for example `0.999`).
    ///
    /// # Errors
    ///
    /// [`ObjectiveError::OutOfRange`] unless `target` lies strictly between 0 and 1.
    pub fn new(target: Decimal) -> Result<Objective, ObjectiveError> {
        if target > Decimal::ZERO && target < Decimal::ONE {
            Ok(Objective { target })
        } else {
            Err(ObjectiveError::OutOfRange { target })
        }
    }

    /// The share of outcomes that must succeed.
    pub fn target(&self) -> Decimal {
        self.target
    }

    /// The share of outcomes allowed to fail: `1 − target`, always positive.
    pub fn error_budget(&self) -> Decimal {
        Decimal::ONE - self.target
    }

    /// How fast `outcomes` spend the budget: `(bad ÷ total) ÷ (1 − target)`. 1 spends exactly the
    /// budget over the objective's period; `None` when there were no outcomes.
    pub fn burn_rate(&self, outcomes: &Outcomes) -> Option<Decimal> {
        outcomes.error_rate()?.checked_div(self.error_budget())
    }

    /// Whether `outcomes` burn at `factor` or faster. Decided exactly, without dividing:
    /// `bad ≥ factor × budget × total`. A window with no failures never burns, whatever the factor.
    fn burns_at(&self, outcomes: &Outcomes, factor: Decimal) -> bool {
        let (Some(bad), Some(total)) = (count(outcomes.bad()), count(outcomes.total())) else {
            return false;
        };
        if bad.is_zero() {
            return false;
        }
        // An overflowing threshold lies beyond any count, so it is not reached.
        factor
            .checked_mul(self.error_budget())
            .and_then(|per_outcome| per_outcome.checked_mul(total))
            .is_some_and(|threshold| bad >= threshold)
    }

    /// Whether `outcomes` succeeded less often than the target: `recorded < target × total`.
    fn missed_by(&self, outcomes: &Outcomes) -> bool {
        let Some(total) = count(outcomes.total()) else {
            return false;
        };
        !total.is_zero()
            && self
                .target
                .checked_mul(total)
                .is_some_and(|needed| Decimal::from(outcomes.recorded) < needed)
    }
}

impl Default for Objective {
    /// 99.9%.
    fn default() -> Objective {
        Objective {
            target: Decimal::new(999, 3),
        }
    }
}

impl TryFrom<Decimal> for Objective {
    type Error = ObjectiveError;

    fn try_from(target: Decimal) -> Result<Objective, ObjectiveError> {
        Objective::new(target)
    }
}

impl From<Objective> for Decimal {
    fn from(objective: Objective) -> Decimal {
        objective.target
    }
}

/// One multi-window burn-rate rule: it fires when both windows burn at `factor` or faster. The
/// long window makes it significant, the short one makes it stop soon after the burning stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BurnRule {
    /// A stable name, used as the `rule` label of the alert (`page-1h`).
    pub name: String,
    /// How loudly the breach is announced.
    pub severity: Severity,
    /// The long window.
    pub long: Duration,
    /// The short window, usually a twelfth of the long one.
    pub short: Duration,
    /// The burn rate both windows must reach.
    pub factor: Decimal,
}

/// The SRE workbook's rules for a 30-day budget: page when 2% of it burns in an hour (14.4×) or 5%
/// in six hours (6×); open a ticket when 10% burns in a day (3×) or 10% in three days (1×).
pub fn default_rules() -> Vec<BurnRule> {
    let rule = |name: &str, severity, long, short, factor| BurnRule {
        name: name.to_owned(),
        severity,
        long,
        short,
        factor,
    };
    vec![
        rule(
            "page-1h",
            Severity::Page,
            Duration::hours(1),
            Duration::minutes(5),
            Decimal::new(144, 1),
        ),
        rule(
            "page-6h",
            Severity::Page,
            Duration::hours(6),
            Duration::minutes(30),
            Decimal::from(6),
        ),
        rule(
            "ticket-1d",
            Severity::Ticket,
            Duration::days(1),
            Duration::hours(2),
            Decimal::from(3),
        ),
        rule(
            "ticket-3d",
            Severity::Ticket,
            Duration::days(3),
            Duration::hours(6),
            Decimal::ONE,
        ),
    ]
}

/// Knobs of an evaluation besides the objective and the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SloSettings {
    /// Neither a burn rule (on its long window) nor the plain check fires with fewer outcomes than
    /// this: one failure among twenty attempts is noise, not an outage.
    pub min_volume: u64,
    /// The window of the plain "below objective" check.
    pub objective_window: Duration,
    /// The severity of the plain check's breach.
    pub below_objective_severity: Severity,
}

impl Default for SloSettings {
    /// 100 outcomes, one hour, a warning.
    fn default() -> SloSettings {
        SloSettings {
            min_volume: 100,
            objective_window: Duration::hours(1),
            below_objective_severity: Severity::Warning,
        }
    }
}

/// Whose outcomes were counted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every seller together.
    Overall,
    /// One seller, by taxpayer id.
    Seller(String),
}

impl Scope {
    /// Words for an alert text: "all sellers" or "seller 91310000…".
    pub fn describe(&self) -> String {
        match self {
            Scope::Overall => "all sellers".to_owned(),
            Scope::Seller(taxpayer_id) => format!("seller {taxpayer_id}"),
        }
    }
}

/// What one window showed, rates rounded half-up for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowReading {
    /// The window's length.
    pub length: Duration,
    /// The counts the caller handed in.
    pub outcomes: Outcomes,
    /// Success rate to 6 places; `None` without outcomes.
    pub success_rate: Option<Decimal>,
    /// Burn rate to 4 places; `None` without outcomes.
    pub burn_rate: Option<Decimal>,
}

impl WindowReading {
    fn new(objective: &Objective, length: Duration, outcomes: Outcomes) -> WindowReading {
        let half_up = |dp| {
            move |d: Decimal| d.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero)
        };
        WindowReading {
            length,
            outcomes,
            success_rate: outcomes.success_rate().map(half_up(SUCCESS_RATE_DP)),
            burn_rate: objective.burn_rate(&outcomes).map(half_up(BURN_RATE_DP)),
        }
    }
}

/// Which check a breach came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreachKind {
    /// Both windows of a burn rule burned at `factor` or faster.
    Burn {
        /// The rule's factor.
        factor: Decimal,
        /// The rule's short window.
        short: WindowReading,
    },
    /// The success rate over the objective window was below target.
    BelowObjective,
}

/// One rule that fired for one scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SloBreach {
    /// The rule's name; `below-objective` for the plain check.
    pub rule: String,
    /// How loudly to announce it.
    pub severity: Severity,
    /// Whose outcomes breached.
    pub scope: Scope,
    /// The objective's target.
    pub target: Decimal,
    /// The rule's long window, or the plain check's window.
    pub window: WindowReading,
    /// Which check fired, with what only burn rules have.
    pub kind: BreachKind,
}

/// The rule name of the plain "below objective" breach.
pub const BELOW_OBJECTIVE: &str = "below-objective";

/// Every window length [`evaluate`] will ask for, distinct and shortest first, so the caller can
/// count each one once.
pub fn windows_needed(rules: &[BurnRule], settings: &SloSettings) -> Vec<Duration> {
    let mut windows: Vec<Duration> = rules
        .iter()
        .flat_map(|rule| [rule.long, rule.short])
        .chain([settings.objective_window])
        .collect();
    windows.sort();
    windows.dedup();
    windows
}

/// Evaluates every rule and the plain check for one scope. `counts` gives the outcomes of the
/// window of a given length ending now; it is called once for each of [`windows_needed`].
pub fn evaluate(
    objective: &Objective,
    rules: &[BurnRule],
    settings: &SloSettings,
    scope: &Scope,
    mut counts: impl FnMut(Duration) -> Outcomes,
) -> Vec<SloBreach> {
    let counted: Vec<(Duration, Outcomes)> = windows_needed(rules, settings)
        .into_iter()
        .map(|length| (length, counts(length)))
        .collect();
    let over = |length: Duration| {
        counted
            .iter()
            .find(|(counted_length, _)| *counted_length == length)
            .map(|(_, outcomes)| *outcomes)
            .unwrap_or_default()
    };
    let enough = |outcomes: &Outcomes| outcomes.total() >= u128::from(settings.min_volume);

    let mut breaches = Vec::new();
    for rule in rules {
        let (long, short) = (over(rule.long), over(rule.short));
        if enough(&long)
            && objective.burns_at(&long, rule.factor)
            && objective.burns_at(&short, rule.factor)
        {
            breaches.push(SloBreach {
                rule: rule.name.clone(),
                severity: rule.severity,
                scope: scope.clone(),
                target: objective.target(),
                window: WindowReading::new(objective, rule.long, long),
                kind: BreachKind::Burn {
                    factor: rule.factor,
                    short: WindowReading::new(objective, rule.short, short),
                },
            });
        }
    }
    let plain = over(settings.objective_window);
    if enough(&plain) && objective.missed_by(&plain) {
        breaches.push(SloBreach {
            rule: BELOW_OBJECTIVE.to_owned(),
            severity: settings.below_objective_severity,
            scope: scope.clone(),
            target: objective.target(),
            window: WindowReading::new(objective, settings.objective_window, plain),
            kind: BreachKind::BelowObjective,
        });
    }
    breaches
}

/// A window length the way people say it: `5m`, `6h`, `3d`, `90s`.
pub(crate) fn human_duration(length: Duration) -> String {
    let seconds = length.num_seconds();
    match seconds {
        s if s != 0 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s != 0 && s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s != 0 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests;
