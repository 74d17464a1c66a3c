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
//! - A `join`-class call is admitted only under the hour and day caps of section 13 (the
//!   caller asks `protection::check`); refused by both the bucket and a cap, the longest
//!   wait is named.
//! - A WhatsApp 429 on a join-class call is a strike and starts its cooldown (1 h, 24 h,
//!   72 h by default, or the backend's longer `Retry-After`); an account restriction (463)
//!   starts one until the end the server states (plus a margin), else 72 hours.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::backend::Exchanged;
use super::breaker::{Admission, Breaker};
use super::error::{ApiError, ErrorCode};
use super::limits::{Class, ClassLimit};
use super::protection::settings::ProtectionConfig;
use super::protection::{restriction_end_ms, strike_cooldown_ms, CapWindow, Ledger};
use super::ratelimit::Bucket;
use super::time::format_rfc3339;

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
    /// The strike a WhatsApp 429 was (1, 2 or 3); none for a restriction. For the event.
    pub strike: Option<u8>,
}

/// What settling a `join`-class call needs of section 13: the settings, the session's
/// ledger (a 429 is recorded as a strike, a restriction's end for the warm-up), and the
/// restriction's end as the server stated it in the same turn, if it did.
pub struct PushBack<'a> {
    pub config: &'a ProtectionConfig,
    pub ledger: &'a mut Ledger,
    pub stated_restriction_end_ms: Option<i64>,
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
    /// A `join`-class call over a cap of section 13: which one, and when it has room.
    pub cap: Option<(CapWindow, i64)>,
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
    /// A cap of section 13 (hour or day) has no room before `until_ms`.
    Cap {
        window: CapWindow,
        until_ms: i64,
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
            Self::Cap { until_ms, .. } => *until_ms,
        }
    }
}

/// Whether an exchange met an account restriction (WhatsApp 463), so that the same turn
/// may ask the server when it ends.
pub fn met_restriction(exchanged: &Exchanged) -> bool {
    matches!(&exchanged.result, Err(error)
        if error.details.get("wa_code").and_then(Value::as_i64) == Some(RESTRICTED_WA_CODE))
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
        let taken = self
            .bucket(ask.class, ask.limit, ask.now_ms)
            .take(ask.limit, ask.now_ms);
        let cap = ask
            .cap
            .map(|(window, until_ms)| Refusal::Cap { window, until_ms });
        match (taken, cap) {
            (Ok(spent), None) => {
                self.set_bucket(ask.class, spent);
                Ok(Admitted {
                    class: ask.class,
                    probe,
                })
            }
            (Ok(_), Some(cap)) => refused(self, cap),
            (Err(wait_ms), None) => refused(self, Refusal::Bucket { wait_ms }),
            // Both refuse: the one with the longest wait.
            (Err(wait_ms), Some(cap)) => {
                let bucket_at = Refusal::Bucket { wait_ms }.retry_at_ms(ask.now_ms);
                if cap.retry_at_ms(ask.now_ms) >= bucket_at {
                    refused(self, cap)
                } else {
                    refused(self, Refusal::Bucket { wait_ms })
                }
            }
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

    /// Settles an exchange: the breaker counts it (a call never sent tells nothing of the
    /// backend: it leaves the count alone and, as a probe, gives the probe's turn back), a
    /// call that reached nothing gets its token back, and a WhatsApp 429 or restriction on
    /// a join-class call starts a cooldown (section 13's lengths). Returns the call's final result (a restriction becomes
    /// `session_cooling_down`) and the cooldown it started or lengthened, if any.
    pub fn settle(
        &mut self,
        admitted: Admitted,
        limit: ClassLimit,
        exchanged: Exchanged,
        now_ms: i64,
        push: PushBack<'_>,
    ) -> (Result<Value, ApiError>, Option<Cooldown>) {
        if exchanged.reached || exchanged.transport_failed {
            self.breaker.record(exchanged.transport_failed, now_ms);
        } else if admitted.probe {
            self.breaker.probe_since_ms = None;
        }
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
                let strike = push.ledger.strike(push.config, now_ms);
                let backend_ms = error
                    .retry_after_s
                    .map(|s| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX));
                Cooldown {
                    until_ms: now_ms.saturating_add(strike_cooldown_ms(
                        push.config,
                        strike,
                        backend_ms,
                    )),
                    reason: CooldownReason::RateOverlimit,
                    strike: Some(strike),
                }
            }
            (_, Some(RESTRICTED_WA_CODE)) => {
                let until_ms =
                    restriction_end_ms(push.config, push.stated_restriction_end_ms, now_ms);
                // The warm-up follows the latest restriction's end.
                push.ledger.restricted_until = push.ledger.restricted_until.max(Some(until_ms));
                Cooldown {
                    until_ms,
                    reason: CooldownReason::Restricted,
                    strike: None,
                }
            }
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
                .with_message("WhatsApp restricted this account; no join or leave until the restriction ends.")
                .with_detail("wa_code", RESTRICTED_WA_CODE));
        } else if let Err(error) = &mut result {
            // The answer that started it stays upstream_rate_limited, and says how long.
            error.retry_after_s = Some(seconds_until(now_ms, cooldown.until_ms));
        }
        (result, news.then_some(cooldown))
    }

    /// A status read that shows a later restriction end lengthens a running restriction
    /// cooldown; it never starts or shortens one. True when it changed.
    pub fn extend_restriction(
        &mut self,
        stated_end_ms: i64,
        push: PushBack<'_>,
        now_ms: i64,
    ) -> bool {
        let Some(current) = self
            .cooldown_at(now_ms)
            .filter(|c| c.reason == CooldownReason::Restricted)
        else {
            return false;
        };
        let until_ms = restriction_end_ms(push.config, Some(stated_end_ms), now_ms);
        if until_ms <= current.until_ms {
            return false;
        }
        self.cooldown = Some(Cooldown {
            until_ms,
            ..current
        });
        push.ledger.restricted_until = push.ledger.restricted_until.max(Some(until_ms));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::backend::Exchanged;
    use crate::core::breaker::{CircuitState, FAILURE_THRESHOLD, OPEN_MS};
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
            cap: None,
        }
    }

    const STRIKE_1_MS: i64 = 3_600_000;
    const RESTRICTED_MS: i64 = 72 * 3_600_000;

    /// Settles with section 13's defaults and a ledger of its own.
    fn settle(
        state: &mut SessionState,
        admitted: Admitted,
        limit: ClassLimit,
        exchanged: Exchanged,
        now_ms: i64,
    ) -> (Result<Value, ApiError>, Option<Cooldown>) {
        let config = ProtectionConfig::default();
        let mut ledger = Ledger::default();
        let push = PushBack {
            config: &config,
            ledger: &mut ledger,
            stated_restriction_end_ms: None,
        };
        state.settle(admitted, limit, exchanged, now_ms, push)
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
        let (result, cooldown) = settle(
            &mut state,
            admitted,
            limit,
            whatsapp(ErrorCode::UpstreamRateLimited, 429, None),
            0,
        );
        assert_eq!(cooldown.map(|c| c.until_ms), Some(STRIKE_1_MS));
        assert_eq!(cooldown.and_then(|c| c.strike), Some(1));
        assert_eq!(result.err().and_then(|e| e.retry_after_s), Some(3600));
        assert_eq!(
            state.admit(&ask(Class::Join, 1000)),
            Err(Refusal::CoolingDown(Cooldown {
                until_ms: STRIKE_1_MS,
                reason: CooldownReason::RateOverlimit,
                strike: Some(1),
            }))
        );
        assert!(state.admit(&ask(Class::Read, 1000)).is_ok());
        assert!(state.admit(&ask(Class::Join, STRIKE_1_MS)).is_ok());
        // A backend Retry-After longer than the strike's cooldown wins; a shorter one not.
        let mut state = SessionState::default();
        let admitted = state
            .admit(&ask(Class::Join, 0))
            .unwrap_or_else(|r| panic!("{r:?}"));
        let (_, cooldown) = settle(
            &mut state,
            admitted,
            limit,
            whatsapp(ErrorCode::UpstreamRateLimited, 429, Some(7200)),
            0,
        );
        assert_eq!(cooldown.map(|c| c.until_ms), Some(7_200_000));
    }

    #[test]
    fn a_restriction_without_a_stated_end_is_72_hours_and_answers_session_cooling_down() {
        let mut state = SessionState::default();
        let limit = Limits::default().join;
        let admitted = state
            .admit(&ask(Class::Join, 0))
            .unwrap_or_else(|r| panic!("{r:?}"));
        let (result, cooldown) = settle(
            &mut state,
            admitted,
            limit,
            whatsapp(ErrorCode::BackendError, 463, None),
            0,
        );
        assert_eq!(
            cooldown,
            Some(Cooldown {
                until_ms: RESTRICTED_MS,
                reason: CooldownReason::Restricted,
                strike: None,
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
        assert_eq!(error.and_then(|e| e.retry_after_s), Some(259_200));
        // A shorter cooldown never replaces it.
        let admitted = Admitted {
            class: Class::Join,
            probe: false,
        };
        let _ = settle(
            &mut state,
            admitted,
            limit,
            whatsapp(ErrorCode::UpstreamRateLimited, 429, Some(5)),
            10,
        );
        assert_eq!(state.cooldown.map(|c| c.until_ms), Some(RESTRICTED_MS));
    }

    #[test]
    fn a_restriction_waits_for_the_stated_end_and_a_later_read_only_lengthens_it() {
        let config = ProtectionConfig::default();
        let mut ledger = Ledger::default();
        let mut state = SessionState::default();
        let limit = Limits::default().join;
        let admitted = state
            .admit(&ask(Class::Join, 0))
            .unwrap_or_else(|r| panic!("{r:?}"));
        let push = PushBack {
            config: &config,
            ledger: &mut ledger,
            stated_restriction_end_ms: Some(5 * 3_600_000),
        };
        let (_, cooldown) = state.settle(
            admitted,
            limit,
            whatsapp(ErrorCode::BackendError, 463, None),
            0,
            push,
        );
        // The stated end plus the 1-hour margin.
        assert_eq!(cooldown.map(|c| c.until_ms), Some(6 * 3_600_000));
        assert_eq!(ledger.restricted_until, Some(6 * 3_600_000));
        let later = PushBack {
            config: &config,
            ledger: &mut ledger,
            stated_restriction_end_ms: None,
        };
        assert!(state.extend_restriction(9 * 3_600_000, later, 1000));
        assert_eq!(state.cooldown.map(|c| c.until_ms), Some(10 * 3_600_000));
        let earlier = PushBack {
            config: &config,
            ledger: &mut ledger,
            stated_restriction_end_ms: None,
        };
        assert!(
            !state.extend_restriction(3_600_000, earlier, 2000),
            "never shortened"
        );
        let mut calm = SessionState::default();
        let none = PushBack {
            config: &config,
            ledger: &mut ledger,
            stated_restriction_end_ms: None,
        };
        assert!(
            !calm.extend_restriction(9 * 3_600_000, none, 0),
            "never started by a read"
        );
    }

    #[test]
    fn a_cap_refuses_without_spending_and_the_longest_wait_is_named() {
        let mut state = SessionState::default();
        let limit = ClassLimit::new(1, 1);
        let mut capped = ask(Class::Join, 0);
        capped.limit = limit;
        capped.cap = Some((CapWindow::Hour, 1_800_000));
        let before = state;
        assert_eq!(
            state.admit(&capped),
            Err(Refusal::Cap {
                window: CapWindow::Hour,
                until_ms: 1_800_000
            })
        );
        assert_eq!(state, before, "nothing spent");
        let mut free = capped;
        free.cap = None;
        assert!(state.admit(&free).is_ok());
        // Bucket empty for 60 s, cap for 30 min: the cap is named; for 10 s: the bucket.
        assert!(matches!(state.admit(&capped), Err(Refusal::Cap { .. })));
        capped.cap = Some((CapWindow::Day, 10_000));
        assert!(matches!(
            state.admit(&capped),
            Err(Refusal::Bucket { wait_ms: 60_000 })
        ));
    }

    #[test]
    fn other_classes_never_start_a_cooldown() {
        let mut state = SessionState::default();
        let admitted = state
            .admit(&ask(Class::Read, 0))
            .unwrap_or_else(|r| panic!("{r:?}"));
        let (_, cooldown) = settle(
            &mut state,
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
        let _ = settle(&mut state, admitted, limit, unreached, 0);
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

    #[test]
    fn a_call_never_sent_leaves_the_breaker_alone_and_gives_a_probe_back() {
        let limit = Limits::default().read;
        let unsent = || Exchanged {
            result: Err(ApiError::new(ErrorCode::JoinRefusedByPolicy)),
            reached: false,
            transport_failed: false,
        };
        let failed = || Exchanged {
            result: Err(ApiError::new(ErrorCode::BackendUnavailable)),
            reached: false,
            transport_failed: true,
        };
        // Four failures, then a call never sent: the streak goes on; one more failure opens.
        let mut state = SessionState::default();
        for now in 0..4 {
            let admitted = state
                .admit(&ask(Class::Read, now))
                .unwrap_or_else(|r| panic!("{r:?}"));
            let _ = settle(&mut state, admitted, limit, failed(), now);
        }
        let admitted = state
            .admit(&ask(Class::Read, 4))
            .unwrap_or_else(|r| panic!("{r:?}"));
        let _ = settle(&mut state, admitted, limit, unsent(), 4);
        assert_eq!(state.breaker.failures, 4, "the streak is not broken");
        let admitted = state
            .admit(&ask(Class::Read, 5))
            .unwrap_or_else(|r| panic!("{r:?}"));
        let _ = settle(&mut state, admitted, limit, failed(), 5);
        assert_eq!(state.breaker.state(5), CircuitState::Open);
        // Half open: a probe never sent does not close the circuit, and gives its turn back.
        let half_open = 5 + OPEN_MS;
        let probe = state
            .admit(&ask(Class::Read, half_open))
            .unwrap_or_else(|r| panic!("{r:?}"));
        assert!(probe.probe);
        let _ = settle(&mut state, probe, limit, unsent(), half_open);
        assert_eq!(state.breaker.state(half_open), CircuitState::HalfOpen);
        let next = state
            .admit(&ask(Class::Read, half_open + 1))
            .unwrap_or_else(|r| panic!("{r:?}"));
        assert!(next.probe, "the next call probes at once");
        let _ = settle(&mut state, next, limit, ok(), half_open + 1);
        assert_eq!(state.breaker.state(half_open + 1), CircuitState::Closed);
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
                        let _ = settle(&mut state, admitted, limit, exchanged, now);
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
