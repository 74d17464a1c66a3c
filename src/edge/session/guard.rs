//! Section 13 in the session's object: what the pure policy (`core::protection`) needs from
//! this session (its settings, its ledger, its time zone through the runtime's `Intl`) and
//! what comes back (a cap's refusal, a job item's hold and pace, the status view, the `join`
//! class's rate-limit fields). The ledger is mirrored in memory, like the pipeline's state,
//! and written with the call's other writes.

use serde_json::{json, Value};

use super::super::config::Settings;
use super::super::reply::Reply;
use super::super::tz;
use super::fail;
use super::SessionObject;
use crate::core::backend::spec::StoredBackend;
use crate::core::backend::Exchanged;
use crate::core::backend::{restricted_until, supports, Kind, Op};
use crate::core::dispatch::{CallPayload, SessionCall};
use crate::core::error::{ApiError, ErrorCode};
use crate::core::limits::{Class, ClassLimit};
use crate::core::pipeline::{cooling_down_error, Refusal};
use crate::core::pipeline::{Admitted, Cooldown, PushBack, SessionState};
use crate::core::protection::settings::{Protection, ProtectionConfig, Window};
use crate::core::protection::{
    caps, check, estimate_end, item_hold, next_item_after, spread_inputs, window, CapWindow, Caps,
    Ledger, Overrides, WaitReason, Zone,
};
use crate::core::ratelimit::retry_after_s;
use crate::core::ratelimit::{header_values, Bucket};
use crate::core::time::format_rfc3339;

/// What settling an exchange gave: the state and ledger as written, the call's final
/// result, and the cooldown it started, if any.
pub(super) struct Settled {
    pub state: SessionState,
    pub ledger: Ledger,
    pub result: Result<Value, ApiError>,
    pub cooldown: Option<Cooldown>,
}

/// A time zone by its IANA name, through `Intl` (an unknown one reads as UTC; the admin
/// route refuses unknown names).
pub(super) struct IntlZone(String);

impl Zone for IntlZone {
    fn offset_minutes(&self, at_ms: i64) -> i32 {
        tz::offset_minutes(&self.0, at_ms).unwrap_or(0)
    }
}

/// Section 13 for one session: its settings and the deployment's.
pub(super) struct Guard<'a> {
    pub config: &'a ProtectionConfig,
    protection: &'a Protection,
    overrides: Overrides,
    zone: IntlZone,
}

impl<'a> Guard<'a> {
    pub fn new(settings: &'a Settings, protection: &'a Protection, join: &ClassLimit) -> Self {
        let config = &settings.protection;
        let zone = protection
            .timezone
            .clone()
            .unwrap_or_else(|| config.default_timezone.clone());
        Self {
            config,
            protection,
            overrides: Overrides {
                per_day: join.per_day,
                per_hour: join.per_hour,
            },
            zone: IntlZone(zone),
        }
    }

    pub fn caps(&self, ledger: &Ledger, now: i64) -> Caps {
        caps(self.config, self.protection, self.overrides, ledger, now)
    }

    /// A `join`-class call over a cap: which one, and when it has room.
    pub fn cap_refusal(&self, ledger: &Ledger, now: i64) -> Option<(CapWindow, i64)> {
        check(self.config, &self.caps(ledger, now), ledger, now).err()
    }

    fn window(&self) -> Option<Window> {
        window(self.config, self.protection)
    }

    /// What holds a job item now besides its pace and a cooldown.
    pub fn hold(&self, ledger: &Ledger, now: i64) -> Option<(i64, WaitReason)> {
        let caps = self.caps(ledger, now);
        item_hold(self.config, &caps, ledger, self.window(), &self.zone, now)
    }

    /// When the session's next item may start after one that ended at `ended`.
    pub fn next_item(
        &self,
        ledger: &Ledger,
        interval_s: u32,
        break_ms: Option<i64>,
        ended: i64,
        random: u32,
    ) -> i64 {
        let caps = self.caps(ledger, ended);
        let spread = spread_inputs(self.config, &caps, ledger, self.window(), &self.zone, ended);
        next_item_after(interval_s, break_ms, spread, ended, random)
    }

    /// When `items` items from `start` end, at this session's caps, window and pace.
    pub fn estimate(&self, ledger: &Ledger, start: i64, interval_s: u32, items: u32) -> i64 {
        let caps = self.caps(ledger, start);
        estimate_end(
            self.config,
            &caps,
            ledger,
            self.window(),
            &self.zone,
            interval_s,
            items,
            start,
        )
    }

    /// `protection` of `GET /v1/sessions/{sid}` (section 13 "Visible").
    pub fn view(&self, ledger: &Ledger, state: &SessionState, join: ClassLimit, now: i64) -> Value {
        let caps = self.caps(ledger, now);
        let hour_s = self.config.hour_window_s;
        let day_s = self.config.day_window_s;
        let ms = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
        let bucket = state.bucket(crate::core::limits::Class::Join, join, now);
        let token_at = now + wait_for_token(bucket, join, now);
        let cap_at = self.cap_refusal(ledger, now).map(|(_, at)| at);
        let cooldown_at = state.cooldown_at(now).map(|c| c.until_ms);
        let next = [Some(token_at), cap_at, cooldown_at]
            .into_iter()
            .flatten()
            .max()
            .filter(|at| *at > now);
        let window = self.window().map(|w| {
            json!({
                "start": hhmm(w.start_min),
                "end": hhmm(w.end_min),
                "timezone": self.zone.0,
            })
        });
        json!({
            "age_days": caps.age_days,
            "age_source": if caps.age_declared { "declared" } else { "unknown" },
            "rewarm_until": caps.rewarm_until.map(format_rfc3339),
            "per_day": caps.per_day,
            "per_hour": caps.per_hour,
            "caps_source": if caps.from_session { "session" } else { "tier" },
            "halved_until": caps.halved_until.map(format_rfc3339),
            "used_last_hour": ledger.used(ms(hour_s), now),
            "used_last_24h": ledger.used(ms(day_s), now),
            "next_join_at": next.map(format_rfc3339),
            "window": window,
            "strikes_7d": ledger.strikes_7d(self.config, now),
        })
    }

    /// The `join` class's `RateLimit-Policy` (minute, hour and day) and `RateLimit` (the
    /// one nearest to refusing: the fewest calls left, the minute's bucket on a tie).
    pub fn headers(
        &self,
        ledger: &Ledger,
        bucket: Bucket,
        join: ClassLimit,
        now: i64,
    ) -> (String, String) {
        let caps = self.caps(ledger, now);
        let ms = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
        let (hour_s, day_s) = (self.config.hour_window_s, self.config.day_window_s);
        let (minute_policy, minute) = header_values("join", join, bucket, now);
        let policy = format!(
            "{minute_policy}, \"join-hour\";q={};w={hour_s}, \"join-day\";q={};w={day_s}",
            caps.per_hour, caps.per_day
        );
        let window = |name: &str, cap: u32, window_ms: i64| {
            let left = cap.saturating_sub(ledger.used(window_ms, now));
            let reset = ledger
                .counted
                .iter()
                .find(|t| **t > now - window_ms)
                .map_or(0, |t| seconds(t + window_ms - now));
            (u64::from(left), format!("\"{name}\";r={left};t={reset}"))
        };
        let mut nearest = (bucket.remaining(join, now), minute);
        for candidate in [
            window("join-hour", caps.per_hour, ms(hour_s)),
            window("join-day", caps.per_day, ms(day_s)),
        ] {
            if candidate.0 < nearest.0 {
                nearest = candidate;
            }
        }
        (policy, nearest.1)
    }
}

/// Milliseconds until the bucket has a whole token (0 when it has one).
fn wait_for_token(bucket: Bucket, limit: ClassLimit, now: i64) -> i64 {
    match bucket.take(limit, now) {
        Ok(_) => 0,
        Err(wait_ms) => i64::try_from(wait_ms).unwrap_or(i64::MAX),
    }
}

fn seconds(ms: i64) -> i64 {
    (ms.max(0) + 999) / 1000
}

fn hhmm(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

impl SessionObject {
    /// Settles an exchange under section 13 and writes the pipeline's state and the ledger
    /// (with no await since, so they share the caller's storage commit): a counted call
    /// that reached nothing stops counting, WhatsApp's push-back is recorded, and a status
    /// answer that states a later restriction end lengthens a running one.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn settle_exchange(
        &self,
        guard: &Guard<'_>,
        admitted: Admitted,
        limit: ClassLimit,
        exchanged: Exchanged,
        counted_at: Option<i64>,
        stated_end_ms: Option<i64>,
        finished: i64,
    ) -> worker::Result<Settled> {
        let mut state = self.pipeline_state()?;
        let mut ledger = self.ledger()?;
        if let (Some(at), false) = (counted_at, exchanged.reached) {
            ledger.uncount(at);
        }
        let push = PushBack {
            config: guard.config,
            ledger: &mut ledger,
            stated_restriction_end_ms: stated_end_ms,
        };
        let (result, cooldown) = state.settle(admitted, limit, exchanged, finished, push);
        if let Some(end_s) = result.as_ref().ok().and_then(restricted_until) {
            let push = PushBack {
                config: guard.config,
                ledger: &mut ledger,
                stated_restriction_end_ms: None,
            };
            state.extend_restriction(end_s.saturating_mul(1000), push, finished);
        }
        self.commit_state(state)?;
        self.commit_ledger(ledger.clone())?;
        Ok(Settled {
            state,
            ledger,
            result,
            cooldown,
        })
    }

    /// The end of a WhatsApp restriction as the session's server states it, asked within
    /// the turn of the call that met it; `None` when the kind cannot say, or the server does
    /// not (absent, null, inactive: unknown) or does not answer in time.
    pub(super) async fn restriction_end(
        &self,
        sid: &str,
        backend: Option<&StoredBackend>,
        request_id: &str,
        settings: &Settings,
    ) -> Option<i64> {
        let kind = backend.map_or(Kind::Joingate, |b| b.kind);
        supports(kind, &Op::RestrictionStatus).ok()?;
        let asked = self
            .exchange(sid, backend, &Op::RestrictionStatus, request_id, settings)
            .await;
        asked
            .result
            .ok()
            .as_ref()
            .and_then(restricted_until)
            .map(|s| s.saturating_mul(1000))
    }

    /// The session's ledger, from memory, or from storage the first time.
    pub(super) fn ledger(&self) -> worker::Result<Ledger> {
        if let Some(ledger) = self.ledger.borrow().clone() {
            return Ok(ledger);
        }
        let ledger = self.store().ledger()?;
        *self.ledger.borrow_mut() = Some(ledger.clone());
        *self.ledger_stored.borrow_mut() = ledger.clone();
        Ok(ledger)
    }

    /// Keeps the ledger and writes what changed (called with no await since the change).
    pub(super) fn commit_ledger(&self, ledger: Ledger) -> worker::Result<()> {
        let stored = self.ledger_stored.borrow().clone();
        self.store().persist_ledger(&ledger, &stored)?;
        *self.ledger_stored.borrow_mut() = ledger.clone();
        *self.ledger.borrow_mut() = Some(ledger);
        Ok(())
    }
}

/// `GET /v1/sessions/{sid}`: the backend's `connected` plus what the object knows.
pub(super) fn status_data(
    msg: &SessionCall,
    payload: &CallPayload,
    state: &SessionState,
    backend: Value,
    queue_depth: usize,
    protection: Value,
    now: i64,
) -> Value {
    let mut tokens = serde_json::Map::new();
    for class in Class::ALL {
        let limit = msg.limits.class(class);
        let remaining = state.bucket(class, limit, now).remaining(limit, now);
        tokens.insert(class.as_str().into(), json!(remaining));
    }
    json!({
        "session_id": msg.session,
        "connected": backend.get("connected").cloned().unwrap_or(Value::Bool(false)),
        "queue_depth": queue_depth,
        "limits": msg.limits,
        "tokens": tokens,
        "circuit": state.breaker.state(now).as_str(),
        "cooldown_until": state.cooldown_at(now).map(|c| format_rfc3339(c.until_ms)),
        "backend_kind": payload.backend.as_ref().map_or(Kind::Joingate, |b| b.kind).as_str(),
        "protection": protection,
    })
}

impl SessionObject {
    /// A client call refused before the queue, as its answer.
    pub(super) fn refusal_reply(
        refusal: Refusal,
        state: &SessionState,
        class: Class,
        limit: ClassLimit,
        now: i64,
        rid: &str,
    ) -> Reply {
        match refusal {
            Refusal::CircuitOpen { retry_after_ms } => {
                let error = ApiError::new(ErrorCode::BackendUnavailable)
                    .with_message("The session backend is failing; the circuit is open.")
                    .with_detail("circuit", state.breaker.state(now).as_str())
                    .with_retry_after(retry_after_s(retry_after_ms));
                fail(&error, rid)
            }
            Refusal::CoolingDown(cooldown) => fail(&cooling_down_error(cooldown, now), rid),
            Refusal::Cap { window, until_ms } => {
                let seconds = crate::core::pipeline::seconds_until(now, until_ms);
                let error = ApiError::new(ErrorCode::RateLimited)
                    .with_message(match window {
                        CapWindow::Hour => "The session's joins and leaves for this hour are used up; retry after the indicated time.",
                        CapWindow::Day => "The session's joins and leaves for these 24 hours are used up; retry after the indicated time.",
                    })
                    .with_detail("scope", "session")
                    .with_detail("class", class.as_str())
                    .with_detail("window", window.as_str())
                    .with_detail("retry_after_s", seconds)
                    .with_retry_after(seconds);
                fail(&error, rid)
            }
            Refusal::OrgLimited { retry_after_s } => fail(&org_limited_error(retry_after_s), rid),
            Refusal::Bucket { wait_ms } => {
                let seconds = retry_after_s(wait_ms);
                let error = ApiError::new(ErrorCode::RateLimited)
                    .with_detail("scope", "session")
                    .with_detail("class", class.as_str())
                    .with_detail("window", "minute")
                    .with_detail("retry_after_s", seconds)
                    .with_retry_after(seconds);
                let bucket = state.bucket(class, limit, now).refilled(limit, now);
                let (policy, header) = header_values(class.as_str(), limit, bucket, now);
                fail(&error, rid)
                    .with_header("RateLimit-Policy", policy)
                    .with_header("RateLimit", header)
            }
        }
    }
}

pub(in crate::edge) fn org_limited_error(seconds: u64) -> ApiError {
    let seconds = seconds.max(1);
    ApiError::new(ErrorCode::RateLimited)
        .with_message("The organisation's call limit is reached; retry after the indicated time.")
        .with_detail("scope", "org")
        .with_detail("retry_after_s", seconds)
        .with_retry_after(seconds)
}
