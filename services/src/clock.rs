//! Time, injected. Everything that schedules or expires (upload back-off, quota top-up, the
//! sandbox's asynchronous results and form expiry) asks a [`Clock`] instead of the system, so tests
//! move time forward instead of sleeping.

use chrono::{DateTime, Utc};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};

/// A source of the current time.
pub trait Clock: Send + Sync + Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// The shared handle every component holds.
pub type SharedClock = Arc<dyn Clock>;

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    /// Move forward (or, with a negative duration, back).
    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now += by;
    }

    pub fn set(&self, to: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The offset of China Standard Time (UTC+8), in which invoice dates and days are counted.
pub fn china_offset() -> chrono::FixedOffset {
    // 8 hours is always a valid offset; the fallback is unreachable but keeps this total.
    chrono::FixedOffset::east_opt(8 * 3600)
        .unwrap_or_else(|| chrono::FixedOffset::east_opt(0).expect("zero offset"))
}

/// The calendar day of `at` in China Standard Time.
pub fn china_day(at: DateTime<Utc>) -> chrono::NaiveDate {
    at.with_timezone(&china_offset()).date_naive()
}

/// The Beijing wall-clock time of an instant (what invoices print).
pub fn china_time(at: DateTime<Utc>) -> chrono::NaiveDateTime {
    at.with_timezone(&china_offset()).naive_local()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let start = Utc.with_ymd_and_hms(2026, 3, 1, 15, 59, 59).unwrap();
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(chrono::Duration::seconds(1));
        assert_eq!(clock.now(), start + chrono::Duration::seconds(1));
    }

    #[test]
    fn days_are_counted_in_china_time() {
        let before = Utc.with_ymd_and_hms(2026, 3, 1, 15, 59, 59).unwrap();
        assert_eq!(china_day(before).to_string(), "2026-03-01");
        assert_eq!(
            china_day(before + chrono::Duration::seconds(1)).to_string(),
            "2026-03-02"
        );
    }
}
