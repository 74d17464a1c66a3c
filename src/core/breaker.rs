//! The per-session circuit breaker (contract section 6): after 5 consecutive unavailable or
//! timed-out backend calls it opens for 10 s, then lets one call probe.

use serde::{Deserialize, Serialize};

pub const FAILURE_THRESHOLD: u32 = 5;
pub const OPEN_MS: i64 = 10_000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breaker {
    pub failures: u32,
    pub opened_at_ms: Option<i64>,
    /// When the current probe was let through, while half open.
    pub probe_since_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

impl CircuitState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead; `probe` when this call decides whether the circuit closes.
    Allowed { probe: bool },
    /// Fail fast; retry after this many milliseconds.
    Rejected { retry_after_ms: u64 },
}

impl Breaker {
    pub fn state(&self, now_ms: i64) -> CircuitState {
        match self.opened_at_ms {
            None => CircuitState::Closed,
            Some(at) if now_ms < at + OPEN_MS => CircuitState::Open,
            Some(_) => CircuitState::HalfOpen,
        }
    }

    /// Whether a call may go to the backend. While half open, one probe at a time goes
    /// through; a probe that never reported back (its instance died) is replaced after
    /// `probe_timeout_ms`.
    pub fn admit(&mut self, now_ms: i64, probe_timeout_ms: i64) -> Admission {
        match (self.state(now_ms), self.opened_at_ms) {
            (CircuitState::Closed, _) => Admission::Allowed { probe: false },
            (CircuitState::Open, Some(at)) => Admission::Rejected {
                retry_after_ms: u64::try_from(at + OPEN_MS - now_ms).unwrap_or(1),
            },
            _ => match self.probe_since_ms {
                Some(since) if now_ms < since + probe_timeout_ms => Admission::Rejected {
                    retry_after_ms: u64::try_from(since + probe_timeout_ms - now_ms).unwrap_or(1),
                },
                _ => {
                    self.probe_since_ms = Some(now_ms);
                    Admission::Allowed { probe: true }
                }
            },
        }
    }

    /// Records a backend outcome: `failed` for unavailable or timed out, anything else
    /// (a WhatsApp error included) shows the backend is alive.
    pub fn record(&mut self, failed: bool, now_ms: i64) {
        if !failed {
            *self = Self::default();
            return;
        }
        self.failures = self.failures.saturating_add(1);
        let probe_failed = self.opened_at_ms.is_some();
        if probe_failed || self.failures >= FAILURE_THRESHOLD {
            self.opened_at_ms = Some(now_ms);
            self.probe_since_ms = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_five_consecutive_failures() {
        let mut breaker = Breaker::default();
        for n in 0..4 {
            breaker.record(true, n);
            assert_eq!(breaker.state(n), CircuitState::Closed);
        }
        breaker.record(true, 4);
        assert_eq!(breaker.state(4), CircuitState::Open);
        assert_eq!(
            breaker.admit(5, 1000),
            Admission::Rejected {
                retry_after_ms: 9_999
            }
        );
    }

    #[test]
    fn a_success_resets_the_count() {
        let mut breaker = Breaker::default();
        for n in 0..4 {
            breaker.record(true, n);
        }
        breaker.record(false, 4);
        breaker.record(true, 5);
        assert_eq!(breaker.state(5), CircuitState::Closed);
        assert_eq!(breaker.failures, 1);
    }

    #[test]
    fn half_open_lets_one_probe_through() {
        let mut breaker = Breaker {
            failures: 5,
            opened_at_ms: Some(0),
            probe_since_ms: None,
        };
        assert_eq!(breaker.state(OPEN_MS), CircuitState::HalfOpen);
        assert_eq!(
            breaker.admit(OPEN_MS, 1000),
            Admission::Allowed { probe: true }
        );
        assert_eq!(
            breaker.admit(OPEN_MS + 1, 1000),
            Admission::Rejected {
                retry_after_ms: 999
            }
        );
        // The probe's instance died: another probe may go after the probe timeout.
        assert_eq!(
            breaker.admit(OPEN_MS + 1000, 1000),
            Admission::Allowed { probe: true }
        );
    }

    #[test]
    fn a_good_probe_closes_and_a_bad_one_reopens() {
        let mut good = Breaker {
            failures: 5,
            opened_at_ms: Some(0),
            probe_since_ms: Some(OPEN_MS),
        };
        good.record(false, OPEN_MS + 5);
        assert_eq!(good.state(OPEN_MS + 5), CircuitState::Closed);
        let mut bad = Breaker {
            failures: 5,
            opened_at_ms: Some(0),
            probe_since_ms: Some(OPEN_MS),
        };
        bad.record(true, OPEN_MS + 5);
        assert_eq!(bad.state(OPEN_MS + 5), CircuitState::Open);
        assert_eq!(bad.state(2 * OPEN_MS + 5), CircuitState::HalfOpen);
    }
}
