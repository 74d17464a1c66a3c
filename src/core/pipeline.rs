//! The per-session admission pipeline (contract sections 6 and 10), the same for a client
//! call and a job item: `admit` (circuit breaker, WhatsApp cooldown, org limit, the class's
//! token bucket) before the queue, and `settle` after the backend exchange (breaker, refund,
//! cooldown, the answer's final form). The session object only keeps this state in storage
//! and runs the queue and the exchange in between.
//!
//! Invariants:
//! - Nothing is spent by a refused call: a refusal leaves the state as it found it, but for
//!   a half-open probe slot given back.
//! - A token is spent on admission and refunded only when no request reached the backend.
//! - During a cooldown no call of the join class (join, leave) is admitted.
//! - A WhatsApp 429 on a join-class call starts a cooldown until the backend's `Retry-After`
//!   (else 15 minutes); an account restriction (463) starts one of 24 hours.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::backend::Exchanged;
use super::breaker::{Admission, Breaker};
use super::error::{ApiError, ErrorCode};
use super::limits::{Class, ClassLimit};
use super::ratelimit::Bucket;
use super::time::format_rfc3339;

/// A cooldown started by a WhatsApp 429 without `Retry-After`.
pub const DEFAULT_COOLDOWN_MS: i64 = 15 * 60 * 1000;
/// A cooldown started by an account restriction (WhatsApp 463).
pub const RESTRICTED_COOLDOWN_MS: i64 = 24 * 60 * 60 * 1000;
/// The WhatsApp code of an account restriction (`account_reachout_restricted`).
pub const RESTRICTED_WA_CODE: i64 = 463;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CooldownReason {
    RateOverlimit,
    Restricted,
}

impl CooldownReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateOverlimit => "rate_overlimit",
            Self::Restricted => "restricted",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "rate_overlimit" => Some(Self::RateOverlimit),
            "restricted" => Some(Self::Restricted),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cooldown {
    pub until_ms: i64,
    pub reason: CooldownReason,
}

/// Everything durable the pipeline decides on, for one session.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SessionState {
    pub buckets: [Option<Bucket>; 3],
    pub breaker: Breaker,
    pub cooldown: Option<Cooldown>,
}

/// The index of a class in `SessionState::buckets` (and so in the store's rows).
pub fn slot(class: Class) -> usize {
    match class {
        Class::Join => 0,
        Class::Manage => 1,
        Class::Read => 2,
    }
}

/// What a call asks to be admitted for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ask {
    pub class: Class,
    pub limit: ClassLimit,
    /// The org-wide limit refused it, with the seconds until it has room (client calls).
    pub org_wait_s: Option<u64>,
    pub now_ms: i64,
    /// How long a half-open probe may be out before another call may probe.
    pub probe_timeout_ms: i64,
}

/// A call let through to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    pub class: Class,
    pub probe: bool,
}

/// Why a call was not admitted, and when it could be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Refusal {
    CircuitOpen {
        retry_after_ms: u64,
    },
    CoolingDown(Cooldown),
    OrgLimited {
        retry_after_s: u64,
    },
    /// The class's bucket is empty; a token is there in this many milliseconds.
    Bucket {
        wait_ms: u64,
    },
}

impl Refusal {
    /// When a job item refused this way may try again (it just waits: no attempt).
    pub fn retry_at_ms(&self, now_ms: i64) -> i64 {
        let after = |ms: u64| now_ms.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX));
        match self {
            Self::CircuitOpen { retry_after_ms } => after(*retry_after_ms),
            Self::CoolingDown(cooldown) => cooldown.until_ms,
            Self::OrgLimited { retry_after_s } => after(retry_after_s.saturating_mul(1000)),
            Self::Bucket { wait_ms } => after(*wait_ms),
        }
    }
}

/// Whole seconds, rounded up, at least 1.
pub fn seconds_until(now_ms: i64, at_ms: i64) -> u64 {
    u64::try_from(at_ms.saturating_sub(now_ms).max(1))
        .unwrap_or(1)
        .div_ceil(1000)
}

/// `429 session_cooling_down` for a call refused during a cooldown.
pub fn cooling_down_error(cooldown: Cooldown, now_ms: i64) -> ApiError {
    ApiError::new(ErrorCode::SessionCoolingDown)
        .with_detail("cooldown_until", format_rfc3339(cooldown.until_ms))
        .with_detail("reason", cooldown.reason.as_str())
        .with_retry_after(seconds_until(now_ms, cooldown.until_ms))
}

impl SessionState {
    pub fn bucket(&self, class: Class, limit: ClassLimit, now_ms: i64) -> Bucket {
        self.buckets[slot(class)].unwrap_or_else(|| Bucket::full(limit, now_ms))
    }

    fn set_bucket(&mut self, class: Class, bucket: Bucket) {
        self.buckets[slot(class)] = Some(bucket);
    }

    /// The cooldown in force at `now_ms`, if any.
    pub fn cooldown_at(&self, now_ms: i64) -> Option<Cooldown> {
        self.cooldown.filter(|c| c.until_ms > now_ms)
    }

    /// Admission in the contract's order: breaker, cooldown (join class), org limit, bucket.
    /// On success the token is spent; on refusal nothing changes but a probe slot freed.
    pub fn admit(&mut self, ask: &Ask) -> Result<Admitted, Refusal> {
        let probe = match self.breaker.admit(ask.now_ms, ask.probe_timeout_ms) {
            Admission::Rejected { retry_after_ms } => {
                return Err(Refusal::CircuitOpen { retry_after_ms })
            }
            Admission::Allowed { probe } => probe,
        };
        let refused = |state: &mut Self, refusal| {
            if probe {
                state.breaker.probe_since_ms = None;
            }
            Err(refusal)
        };
        if ask.class == Class::Join {
            if let Some(cooldown) = self.cooldown_at(ask.now_ms) {
                return refused(self, Refusal::CoolingDown(cooldown));
            }
        }
        if let Some(retry_after_s) = ask.org_wait_s {
            return refused(self, Refusal::OrgLimited { retry_after_s });
        }
        match self
            .bucket(ask.class, ask.limit, ask.now_ms)
            .take(ask.limit, ask.now_ms)
        {
            Ok(spent) => {
                self.set_bucket(ask.class, spent);
                Ok(Admitted {
                    class: ask.class,
                    probe,
                })
            }
            Err(wait_ms) => refused(self, Refusal::Bucket { wait_ms }),
        }
    }

    /// A call admitted but then turned away before the backend (the queue was full): its
    /// token comes back and its probe slot is freed.
    pub fn turned_away(&mut self, admitted: Admitted, limit: ClassLimit, now_ms: i64) {
        let bucket = self.bucket(admitted.class, limit, now_ms);
        self.set_bucket(admitted.class, bucket.refund(limit, now_ms));
        if admitted.probe {
            self.breaker.probe_since_ms = None;
        }
    }

    /// A call admitted earlier whose turn in the queue has come, checked again: a cooldown
    /// may have started, or the circuit opened, while it waited (no call reaches a backend
    /// whose circuit is open, section 6). A call admitted while the circuit was closed may
    /// find it half open and become its probe. On refusal its token comes back and a probe
    /// slot it held is freed, as for a call turned away.
    pub fn at_turn(
        &mut self,
        admitted: Admitted,
        limit: ClassLimit,
        now_ms: i64,
        probe_timeout_ms: i64,
    ) -> Result<Admitted, Refusal> {
        let refusal = match self.cooldown_at(now_ms) {
            Some(cooldown) if admitted.class == Class::Join => Some(Refusal::CoolingDown(cooldown)),
            _ if admitted.probe => None,
            _ => match self.breaker.admit(now_ms, probe_timeout_ms) {
                Admission::Allowed { probe } => {
                    return Ok(Admitted {
                        class: admitted.class,
                        probe,
                    })
                }
                Admission::Rejected { retry_after_ms } => {
                    Some(Refusal::CircuitOpen { retry_after_ms })
                }
            },
        };
        match refusal {
            None => Ok(admitted),
            Some(refusal) => {
                self.turned_away(admitted, limit, now_ms);
                Err(refusal)
            }
        }
    }

    /// Settles an exchange: the breaker counts it, a call that reached nothing gets its
    /// token back, and a WhatsApp 429 or restriction on a join-class call starts a cooldown.
    /// Returns the call's final result (a restriction becomes `session_cooling_down`) and the
    /// cooldown it started, if any.
    pub fn settle(
        &mut self,
        admitted: Admitted,
        limit: ClassLimit,
        exchanged: Exchanged,
        now_ms: i64,
    ) -> (Result<Value, ApiError>, Option<Cooldown>) {
        self.breaker.record(exchanged.transport_failed, now_ms);
        if !exchanged.reached {
            let bucket = self.bucket(admitted.class, limit, now_ms);
            self.set_bucket(admitted.class, bucket.refund(limit, now_ms));
        }
        let mut result = exchanged.result;
        if admitted.class != Class::Join {
            return (result, None);
        }
        let Err(error) = &result else {
            return (result, None);
        };
        let wa_code = error.details.get("wa_code").and_then(Value::as_i64);
        let cooldown = match (error.code, wa_code) {
            (ErrorCode::UpstreamRateLimited, _) => {
                let wait_ms = error
                    .retry_after_s
                    .map_or(DEFAULT_COOLDOWN_MS, |s| {
                        i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX)
                    })
                    // A backend that names more than a restriction's 24 hours is not believed.
                    .min(RESTRICTED_COOLDOWN_MS);
                Cooldown {
                    until_ms: now_ms.saturating_add(wait_ms),
                    reason: CooldownReason::RateOverlimit,
                }
            }
            (_, Some(RESTRICTED_WA_CODE)) => Cooldown {
                until_ms: now_ms.saturating_add(RESTRICTED_COOLDOWN_MS),
                reason: CooldownReason::Restricted,
            },
            _ => return (result, None),
        };
        // A cooldown never shortens one already in force; only a new or longer one is news.
        let (cooldown, news) = match self.cooldown_at(now_ms) {
            Some(current) if current.until_ms >= cooldown.until_ms => (current, false),
            _ => (cooldown, true),
        };
        self.cooldown = Some(cooldown);
        if cooldown.reason == CooldownReason::Restricted && wa_code == Some(RESTRICTED_WA_CODE) {
            result = Err(cooling_down_error(cooldown, now_ms)
                .with_message("WhatsApp restricted this account; no join or leave for 24 hours.")
                .with_detail("wa_code", RESTRICTED_WA_CODE));
        } else if let Err(error) = &mut result {
            // The answer that started it stays upstream_rate_limited, and says how long.
            error.retry_after_s = Some(seconds_until(now_ms, cooldown.until_ms));
        }
        (result, news.then_some(cooldown))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::backend::Exchanged;
    use crate::core::breaker::{FAILURE_THRESHOLD, OPEN_MS};
    use crate::core::limits::Limits;
    use proptest::prelude::*;
    use serde_json::json;

    fn ask(class: Class, now_ms: i64) -> Ask {
        Ask {
            class,
            limit: Limits::default().class(class),
            org_wait_s: None,
            now_ms,
            probe_timeout_ms: 15_000,
        }
    }

    #[test]
    fn a_call_whose_turn_comes_while_the_circuit_is_open_is_refused_and_refunded() {
        let mut state = SessionState::default();
        let limit = Limits::default().class(Class::Read);
        let waiting = state
            .admit(&ask(Class::Read, 0))
            .expect("admitted while closed");
        let full = state.bucket(Class::Read, limit, 0).remaining(limit, 0);
        for n in 0..FAILURE_THRESHOLD {
            state.breaker.record(true, i64::from(n));
        }
        let refused = state.at_turn(waiting, limit, 100, 15_000);
        assert!(
            matches!(refused, Err(Refusal::CircuitOpen { retry_after_ms }) if retry_after_ms > 9_000),
            "{refused:?}"
        );
        assert_eq!(
            state.bucket(Class::Read, limit, 100).remaining(limit, 100),
            full + 1,
            "its token came back"
        );
        // Once half open, the first call whose turn comes is the probe, the next is refused.
        let later = state.admit(&ask(Class::Read, 1)).err();
        assert!(matches!(later, Some(Refusal::CircuitOpen { .. })));
        let open_until = state.breaker.opened_at_ms.unwrap_or(0) + OPEN_MS;
        let probe = state.at_turn(waiting, limit, open_until, 15_000);
        assert_eq!(probe.map(|a| a.probe), Ok(true));
        assert!(state
            .at_turn(waiting, limit, open_until + 1, 15_000)
            .is_err());
        // With the circuit closed, a waiting call goes as it was admitted.
        let mut closed = SessionState::default();
        let admitted = closed.admit(&ask(Class::Join, 0)).expect("admitted");
        assert_eq!(closed.at_turn(admitted, limit, 5, 15_000), Ok(admitted));
    }

    fn ok() -> Exchanged {
        Exchanged {
            result: Ok(json!({ "status": "joined" })),
            reached: true,
            transport_failed: false,
        }
    }

    fn whatsapp(code: ErrorCode, wa_code: i64, retry_after_s: Option<u64>) -> Exchanged {
        let mut error = ApiError::new(code).with_detail("wa_code", wa_code);
        error.retry_after_s = retry_after_s;
        Exchanged {
            result: Err(error),
            reached: true,
            transport_failed: false,
        }
    }

    #[test]
    fn a_rate_overlimit_join_starts_a_cooldown_that_stops_joins_only() {
        let mut state = SessionState::default();
        let limit = Limits::default().join;
        let admitted = state
            .admit(&ask(Class::Join, 0))
            .unwrap_or_else(|r| panic!("{r:?}"));
        let (result, cooldown) = state.settle(
            admitted,
            limit,
            whatsapp(ErrorCode::UpstreamRateLimited, 429, None),
            0,
        );
        assert_eq!(cooldown.map(|c| c.until_ms), Some(DEFAULT_COOLDOWN_MS));
        assert_eq!(result.err().and_then(|e| e.retry_after_s), Some(900));
        assert_eq!(
            state.admit(&ask(Class::Join, 1000)),
            Err(Refusal::CoolingDown(Cooldown {
                until_ms: DEFAULT_COOLDOWN_MS,
                reason: CooldownReason::RateOverlimit
            }))
        );
        assert!(state.admit(&ask(Class::Read, 1000)).is_ok());
        assert!(state.admit(&ask(Class::Join, DEFAULT_COOLDOWN_MS)).is_ok());
        // The backend's Retry-After sets the length.
        let mut state = SessionState::default();
        let admitted = state
            .admit(&ask(Class::Join, 0))
            .unwrap_or_else(|r| panic!("{r:?}"));
        let (_, cooldown) = state.settle(
            admitted,
            limit,
            whatsapp(ErrorCode::UpstreamRateLimited, 429, Some(30)),
            0,
        );
        assert_eq!(cooldown.map(|c| c.until_ms), Some(30_000));
    }

    #[test]
    fn a_restriction_is_24_hours_and_answers_session_cooling_down() {
        let mut state = SessionState::default();
        let limit = Limits::default().join;
        let admitted = state
            .admit(&ask(Class::Join, 0))
            .unwrap_or_else(|r| panic!("{r:?}"));
        let (result, cooldown) = state.settle(
            admitted,
            limit,
            whatsapp(ErrorCode::BackendError, 463, None),
            0,
        );
        assert_eq!(
            cooldown,
            Some(Cooldown {
                until_ms: RESTRICTED_COOLDOWN_MS,
                reason: CooldownReason::Restricted
            })
        );
        let error = result.err();
        assert_eq!(
            error.as_ref().map(|e| e.code),
            Some(ErrorCode::SessionCoolingDown)
        );
        assert_eq!(
            error.as_ref().map(|e| e.details["wa_code"].clone()),
            Some(json!(463))
        );
        assert_eq!(
            error.as_ref().map(|e| e.details["reason"].clone()),
            Some(json!("restricted"))
        );
        assert_eq!(error.and_then(|e| e.retry_after_s), Some(86_400));
        // A shorter cooldown never replaces it.
        let admitted = Admitted {
            class: Class::Join,
            probe: false,
        };
        let _ = state.settle(
            admitted,
            limit,
            whatsapp(ErrorCode::UpstreamRateLimited, 429, Some(5)),
            10,
        );
        assert_eq!(
            state.cooldown.map(|c| c.until_ms),
            Some(RESTRICTED_COOLDOWN_MS)
        );
    }

    #[test]
    fn other_classes_never_start_a_cooldown() {
        let mut state = SessionState::default();
        let admitted = state
            .admit(&ask(Class::Read, 0))
            .unwrap_or_else(|r| panic!("{r:?}"));
        let (_, cooldown) = state.settle(
            admitted,
            Limits::default().read,
            whatsapp(ErrorCode::UpstreamRateLimited, 429, None),
            0,
        );
        assert_eq!(cooldown, None);
        assert_eq!(state.cooldown, None);
    }

    #[test]
    fn refusals_spend_nothing_and_unreached_calls_are_refunded() {
        let limit = ClassLimit::new(1, 1);
        let mut state = SessionState::default();
        let mut one = ask(Class::Join, 0);
        one.limit = limit;
        let admitted = state.admit(&one).unwrap_or_else(|r| panic!("{r:?}"));
        assert!(matches!(
            state.admit(&one),
            Err(Refusal::Bucket { wait_ms: 60_000 })
        ));
        let unreached = Exchanged {
            result: Err(ApiError::new(ErrorCode::BackendUnavailable)),
            reached: false,
            transport_failed: true,
        };
        let _ = state.settle(admitted, limit, unreached, 0);
        assert_eq!(state.breaker.failures, 1);
        assert!(state.admit(&one).is_ok(), "the token came back");
        let mut org = ask(Class::Read, 0);
        org.org_wait_s = Some(7);
        let before = state;
        assert_eq!(
            state.admit(&org),
            Err(Refusal::OrgLimited { retry_after_s: 7 })
        );
        assert_eq!(state, before);
    }

    proptest! {
        /// For any sequence of calls and outcomes: the bucket is never exceeded, and no
        /// join-class call is admitted during a cooldown.
        #[test]
        fn buckets_and_cooldowns_hold(steps in proptest::collection::vec((0u8..6, 0i64..20_000, any::<bool>()), 1..200)) {
            let limit = ClassLimit::new(4, 4);
            let mut state = SessionState::default();
            let mut now = 0i64;
            let mut admitted_at: Vec<i64> = Vec::new();
            for (outcome, advance, reached) in steps {
                now += advance;
                let cooling = state.cooldown_at(now).is_some();
                let mut one = ask(Class::Join, now);
                one.limit = limit;
                match state.admit(&one) {
                    Ok(admitted) => {
                        prop_assert!(!cooling, "admitted during a cooldown");
                        let exchanged = match outcome {
                            0 => whatsapp(ErrorCode::UpstreamRateLimited, 429, None),
                            1 => whatsapp(ErrorCode::BackendError, 463, None),
                            2 => Exchanged { result: Err(ApiError::new(ErrorCode::BackendTimeout)), reached: true, transport_failed: true },
                            3 => Exchanged { result: Err(ApiError::new(ErrorCode::BackendUnavailable)), reached, transport_failed: !reached },
                            _ => ok(),
                        };
                        let refunded = !exchanged.reached;
                        let _ = state.settle(admitted, limit, exchanged, now);
                        if !refunded {
                            admitted_at.push(now);
                        }
                    }
                    Err(Refusal::CoolingDown(c)) => prop_assert!(c.until_ms > now),
                    Err(_) => {}
                }
                // Spent tokens in any window never exceed burst + refill over the window.
                let window = 60_000;
                let recent = admitted_at.iter().filter(|t| now - **t < window).count() as u64;
                prop_assert!(recent <= u64::from(limit.burst + limit.per_minute), "{recent} in a minute");
            }
        }
    }
}
