//! Account protection (contract section 13): the `join` class budgeted by the hour, the day
//! and the number's age; WhatsApp's push-back as escalating strikes; working hours and a
//! careful person's pace for jobs. Pure: the session object hands it the session's
//! settings, what it keeps of the session's past (`Ledger`), the clock, and the time zone's
//! offset as a function (the runtime's `Intl` knows it; tests inject one).
//!
//! Invariants (property-tested below with an injected clock and random source):
//! - No 60-minute span ever holds more admitted `join`-class calls than the hour cap in
//!   force, and no 24-hour span more than the day cap in force (halving included).
//! - A refusal's wait is exact: at `now + wait` the call passes, a millisecond before it
//!   does not.
//! - No job item is let through outside the session's window.
//! - After an item, the next never comes sooner than the spread rule allows.

pub mod settings;

pub use settings::parse_date;
use settings::{Protection, ProtectionConfig, Tier, Window, WindowSetting};

pub const DAY_MS: i64 = 86_400_000;
const MINUTE_MS: i64 = 60_000;

/// What the session's object keeps for the policy, durably. Bounded: `counted` holds at
/// most the day cap's worth (1,000 at the most), `strikes` the 7 days' 429s.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    /// Admission times (ms) of counted `join`-class calls within the day window, ascending.
    pub counted: Vec<i64>,
    /// Times (ms) of WhatsApp 429s within the penalty window, ascending.
    pub strikes: Vec<i64>,
    /// The end of the last restriction's cooldown (ms), while its warm-up may still run.
    pub restricted_until: Option<i64>,
}

/// Which cap refused, or holds a job item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapWindow {
    Hour,
    Day,
}

impl CapWindow {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }
}

/// The caps in force at a moment, and where they come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub age_days: u32,
    pub age_declared: bool,
    pub per_day: u32,
    pub per_hour: u32,
    /// Either override of the session is set.
    pub from_session: bool,
    pub halved_until: Option<i64>,
    pub rewarm_until: Option<i64>,
}

/// The session's own `limits.join.per_day` and `per_hour`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overrides {
    pub per_day: Option<u32>,
    pub per_hour: Option<u32>,
}

/// The number's age in whole days at `now_ms` (UTC dates), and whether it was declared;
/// an unknown age counts as new.
pub fn age_days(protection: &Protection, now_ms: i64) -> (u32, bool) {
    match protection.number_since.as_deref().and_then(parse_date) {
        Some(since) => {
            let today = now_ms.div_euclid(DAY_MS);
            (
                u32::try_from((today - since).max(0)).unwrap_or(u32::MAX),
                true,
            )
        }
        None => (0, false),
    }
}

fn tier_for(tiers: &[Tier], age: u32) -> Tier {
    tiers
        .iter()
        .rev()
        .find(|t| t.from_days <= age)
        .or(tiers.first())
        .copied()
        .unwrap_or(settings::DEFAULT_TIERS[0])
}

impl Ledger {
    /// Forgets what no longer matters at `now` (older than the day window, the penalty).
    pub fn prune(&mut self, config: &ProtectionConfig, now_ms: i64) {
        let day = ms(config.day_window_s);
        let penalty = ms(config.penalty_s);
        self.counted.retain(|t| *t > now_ms - day);
        self.strikes.retain(|t| *t > now_ms - penalty);
        if self
            .restricted_until
            .is_some_and(|end| end + penalty <= now_ms)
        {
            self.restricted_until = None;
        }
    }

    /// Counted calls in the window of `window_ms` ending at `now_ms`.
    pub fn used(&self, window_ms: i64, now_ms: i64) -> u32 {
        let n = self
            .counted
            .iter()
            .filter(|t| **t > now_ms - window_ms && **t <= now_ms)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// A call admitted at `now_ms` counts from now on.
    pub fn count(&mut self, now_ms: i64) {
        let at = self.counted.partition_point(|t| *t <= now_ms);
        self.counted.insert(at, now_ms);
    }

    /// A call that never sent its join or leave stops counting (one entry of that time).
    pub fn uncount(&mut self, admitted_ms: i64) {
        if let Some(at) = self.counted.iter().rposition(|t| *t == admitted_ms) {
            self.counted.remove(at);
        }
    }

    /// Records a WhatsApp 429 at `now_ms` and says which strike it is: 3 when two or more
    /// came in the penalty window before it, else 2 when one came in the day window before
    /// it, else 1.
    pub fn strike(&mut self, config: &ProtectionConfig, now_ms: i64) -> u8 {
        let week = self
            .strikes
            .iter()
            .filter(|t| **t > now_ms - ms(config.penalty_s))
            .count();
        let day = self
            .strikes
            .iter()
            .filter(|t| **t > now_ms - ms(config.day_window_s))
            .count();
        let strike = if week >= 2 {
            3
        } else if day >= 1 {
            2
        } else {
            1
        };
        let at = self.strikes.partition_point(|t| *t <= now_ms);
        self.strikes.insert(at, now_ms);
        strike
    }

    /// Strikes in the 7 days before `now_ms`.
    pub fn strikes_7d(&self, config: &ProtectionConfig, now_ms: i64) -> u32 {
        let n = self
            .strikes
            .iter()
            .filter(|t| **t > now_ms - ms(config.penalty_s))
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

fn ms(seconds: u64) -> i64 {
    i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// The caps in force at `now_ms`: the tier of the number's age (of age 0, or the session's
/// overrides where lower, while a restriction's warm-up runs), else the session's overrides,
/// the day cap halved (at least 1) for the penalty window after a WhatsApp 429.
pub fn caps(
    config: &ProtectionConfig,
    protection: &Protection,
    overrides: Overrides,
    ledger: &Ledger,
    now_ms: i64,
) -> Caps {
    let (age, declared) = age_days(protection, now_ms);
    let penalty = ms(config.penalty_s);
    let rewarm_until = ledger
        .restricted_until
        .map(|end| end + penalty)
        .filter(|until| *until > now_ms);
    let (per_day, per_hour) = if rewarm_until.is_some() {
        let fresh = tier_for(&config.tiers, 0);
        (
            overrides
                .per_day
                .map_or(fresh.per_day, |n| n.min(fresh.per_day)),
            overrides
                .per_hour
                .map_or(fresh.per_hour, |n| n.min(fresh.per_hour)),
        )
    } else {
        let tier = tier_for(&config.tiers, age);
        (
            overrides.per_day.unwrap_or(tier.per_day),
            overrides.per_hour.unwrap_or(tier.per_hour),
        )
    };
    let halved_until = ledger
        .strikes
        .last()
        .map(|t| t + penalty)
        .filter(|until| *until > now_ms);
    let per_day = if halved_until.is_some() {
        (per_day / 2).max(1)
    } else {
        per_day
    };
    Caps {
        age_days: age,
        age_declared: declared,
        per_day,
        per_hour,
        from_session: overrides.per_day.is_some() || overrides.per_hour.is_some(),
        halved_until,
        rewarm_until,
    }
}

/// When the `k`-th newest counted call (1-based) leaves a window of `window_ms`.
fn frees_at(counted: &[i64], window_ms: i64, now_ms: i64, cap: u32) -> Option<i64> {
    let within: Vec<i64> = counted
        .iter()
        .copied()
        .filter(|t| *t > now_ms - window_ms && *t <= now_ms)
        .collect();
    let used = within.len();
    let cap = usize::try_from(cap).unwrap_or(usize::MAX);
    if used < cap {
        return None;
    }
    // One more may go once used - cap + 1 of them have left: the oldest of those leaves last.
    within.get(used - cap).map(|t| t + window_ms)
}

/// Whether a `join`-class call may be counted at `now_ms`: `Ok`, or which cap refuses and
/// until when (the longest wait when both do).
pub fn check(
    config: &ProtectionConfig,
    caps: &Caps,
    ledger: &Ledger,
    now_ms: i64,
) -> Result<(), (CapWindow, i64)> {
    let hour = frees_at(
        &ledger.counted,
        ms(config.hour_window_s),
        now_ms,
        caps.per_hour,
    )
    .map(|at| (CapWindow::Hour, at));
    let day = frees_at(
        &ledger.counted,
        ms(config.day_window_s),
        now_ms,
        caps.per_day,
    )
    .map(|at| (CapWindow::Day, at));
    match (hour, day) {
        (None, None) => Ok(()),
        (Some(one), None) | (None, Some(one)) => Err(one),
        (Some(h), Some(d)) => Err(if d.1 >= h.1 { d } else { h }),
    }
}

/// The cooldown of a strike, or the backend's `Retry-After` when that is longer.
pub fn strike_cooldown_ms(
    config: &ProtectionConfig,
    strike: u8,
    backend_wait_ms: Option<i64>,
) -> i64 {
    let index = usize::from(strike.clamp(1, 3) - 1);
    ms(config.cooldown_s[index]).max(backend_wait_ms.unwrap_or(0))
}

/// A restriction's cooldown end: the server's stated end plus the margin, else the default.
pub fn restriction_end_ms(
    config: &ProtectionConfig,
    stated_end_ms: Option<i64>,
    now_ms: i64,
) -> i64 {
    match stated_end_ms.filter(|end| *end > now_ms) {
        Some(end) => end + ms(config.restricted_margin_s),
        None => now_ms + ms(config.restricted_cooldown_s),
    }
}

/// The session's window in force, if any.
pub fn window(config: &ProtectionConfig, protection: &Protection) -> Option<Window> {
    match protection.window {
        WindowSetting::Default => config.job_window,
        WindowSetting::Off => None,
        WindowSetting::Set(window) => Some(window),
    }
}

/// A time zone as the policy sees it: the UTC offset in minutes at an instant.
pub trait Zone {
    fn offset_minutes(&self, at_ms: i64) -> i32;
}

/// UTC, and any fixed offset.
pub struct FixedZone(pub i32);

impl Zone for FixedZone {
    fn offset_minutes(&self, _at_ms: i64) -> i32 {
        self.0
    }
}

/// The UTC instant of a local wall-clock time (`local_ms` in the zone's local epoch),
/// honouring an offset that changes (daylight saving) between `near_ms` and the answer.
fn to_utc(zone: &dyn Zone, local_ms: i64, near_ms: i64) -> i64 {
    let guess = local_ms - i64::from(zone.offset_minutes(near_ms)) * MINUTE_MS;
    local_ms - i64::from(zone.offset_minutes(guess)) * MINUTE_MS
}

/// Where `now_ms` stands against the window: inside (with today's window end), or outside
/// (with the next start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowState {
    Inside { ends_ms: i64 },
    Outside { opens_ms: i64 },
}

pub fn window_state(window: Window, zone: &dyn Zone, now_ms: i64) -> WindowState {
    let local = now_ms + i64::from(zone.offset_minutes(now_ms)) * MINUTE_MS;
    let midnight = local - local.rem_euclid(DAY_MS);
    let minute = (local - midnight) / MINUTE_MS;
    let (start, end) = (i64::from(window.start_min), i64::from(window.end_min));
    if (start..end).contains(&minute) {
        return WindowState::Inside {
            ends_ms: to_utc(zone, midnight + end * MINUTE_MS, now_ms),
        };
    }
    let day = if minute < start {
        midnight
    } else {
        midnight + DAY_MS
    };
    WindowState::Outside {
        opens_ms: to_utc(zone, day + start * MINUTE_MS, now_ms).max(now_ms + 1),
    }
}

/// Why a job item waits beyond its pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitReason {
    HourCap,
    DayCap,
    OutsideWindow,
}

impl WaitReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HourCap => "hour_cap",
            Self::DayCap => "day_cap",
            Self::OutsideWindow => "outside_window",
        }
    }
}

/// What holds a job item at `now_ms` besides its pace and a cooldown: a cap (until the
/// oldest counted call leaves its window) or the window (until it opens).
pub fn item_hold(
    config: &ProtectionConfig,
    caps: &Caps,
    ledger: &Ledger,
    window: Option<Window>,
    zone: &dyn Zone,
    now_ms: i64,
) -> Option<(i64, WaitReason)> {
    let cap = check(config, caps, ledger, now_ms).err().map(|(w, at)| {
        let reason = match w {
            CapWindow::Hour => WaitReason::HourCap,
            CapWindow::Day => WaitReason::DayCap,
        };
        (at, reason)
    });
    let closed = window.and_then(|w| match window_state(w, zone, now_ms) {
        WindowState::Inside { .. } => None,
        WindowState::Outside { opens_ms } => Some((opens_ms, WaitReason::OutsideWindow)),
    });
    match (cap, closed) {
        (Some(c), Some(w)) => Some(if w.0 >= c.0 { w } else { c }),
        (one, None) | (None, one) => one,
    }
}

/// The pacing after a job item ends at `ended_ms`: the next item of the session's jobs is
/// not before the returned time. Uniform 1×–2× `interval_s` from `random`; a break of
/// `break_ms` instead when it is due; never sooner than the spread rule (the time left in
/// today's window over the joins left in today's budget) when the session has a window.
pub fn next_item_after(
    interval_s: u32,
    break_ms: Option<i64>,
    spread: Option<(i64, u32)>,
    ended_ms: i64,
    random: u32,
) -> i64 {
    let base = i64::from(interval_s) * 1000;
    let paced = break_ms.unwrap_or(base + base * i64::from(random % 1001) / 1000);
    let spread_gap = match spread {
        Some((time_left_ms, joins_left)) if joins_left > 0 => {
            time_left_ms.max(0) / i64::from(joins_left)
        }
        _ => 0,
    };
    ended_ms + paced.max(spread_gap)
}

/// The spread rule's inputs when an item ends: time left in today's window (0 outside
/// it) and the joins left in today's budget.
pub fn spread_inputs(
    config: &ProtectionConfig,
    caps: &Caps,
    ledger: &Ledger,
    window: Option<Window>,
    zone: &dyn Zone,
    ended_ms: i64,
) -> Option<(i64, u32)> {
    let window = window?;
    let time_left = match window_state(window, zone, ended_ms) {
        WindowState::Inside { ends_ms } => ends_ms - ended_ms,
        WindowState::Outside { .. } => 0,
    };
    let used = ledger.used(ms(config.day_window_s), ended_ms);
    Some((time_left, caps.per_day.saturating_sub(used)))
}

/// A break's length, and the items until the next one, drawn from `random`.
pub fn draw_break(config: &ProtectionConfig, random: u32) -> (i64, u32) {
    let (lo, hi) = config.break_s;
    let span = hi.saturating_sub(lo);
    let length = lo + u64::from(random) % (span + 1);
    let (every_lo, every_hi) = config.break_every;
    let every = every_lo + (random >> 16) % (every_hi.saturating_sub(every_lo) + 1);
    (ms(length), every.max(1))
}

/// A good estimate (not a promise) of when `items` more items of the session's jobs end,
/// from `start_ms`, at an average pace of 1.5× `interval_s`, with a break every 4 to 5 items,
/// inside the window and under both caps (the counted calls so far included). The first two
/// days' worth of items are simulated one by one; past them the day cap sets the pace, so the
/// cost stays bounded whatever the job's size.
#[allow(clippy::too_many_arguments)]
pub fn estimate_end(
    config: &ProtectionConfig,
    caps: &Caps,
    ledger: &Ledger,
    window: Option<Window>,
    zone: &dyn Zone,
    interval_s: u32,
    items: u32,
    start_ms: i64,
) -> i64 {
    let mut simulated = ledger.clone();
    let gap = i64::from(interval_s) * 1500;
    let every = (config.break_every.0 + config.break_every.1).max(2) / 2;
    let break_avg = ms((config.break_s.0 + config.break_s.1) / 2);
    let mut at = start_ms;
    let exact = items.min(caps.per_day.saturating_mul(2).saturating_add(caps.per_hour));
    for n in 0..exact {
        for _ in 0..4 {
            match item_hold(config, caps, &simulated, window, zone, at) {
                Some((until, _)) => at = until,
                None => break,
            }
        }
        simulated.count(at);
        simulated
            .counted
            .retain(|t| *t > at - ms(config.day_window_s));
        if n + 1 < items {
            let pause = if (n + 1) % every == 0 && break_avg > 0 {
                break_avg
            } else {
                gap
            };
            at += pause;
        }
    }
    let rest = i64::from(items.saturating_sub(exact));
    at + rest * ms(config.day_window_s) / i64::from(caps.per_day.max(1))
}

#[cfg(test)]
mod tests;
