//! What section 13's protection is configured with: a session's `protection` record (as the
//! admin sets it and KV keeps it) and the deployment's `[vars]` (tiers, window, pacing,
//! cooldowns, look-backs). Pure: parsing and validation here, the policy in the parent
//! module. Defaults are the contract's.

use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::core::error::ApiError;
use crate::core::json::{deserialize_with, object, present, reject_unknown, whole_number, Fields};
use crate::core::time::{civil_from_days, days_from_civil, days_in_month};

const DAY_MS: i64 = 86_400_000;

/// A daily window in local wall-clock minutes since midnight; `start < end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start_min: u16,
    pub end_min: u16,
}

impl Window {
    /// A window within one day: `start < end`, both before 24:00.
    pub fn new(start_min: u16, end_min: u16) -> Option<Self> {
        (start_min < end_min && end_min < 24 * 60).then_some(Self { start_min, end_min })
    }

    /// `"HH:MM-HH:MM"` (`JOB_WINDOW`), start before end.
    pub fn parse(text: &str) -> Option<Self> {
        let (start, end) = text.split_once('-')?;
        Self::new(parse_hhmm(start.trim())?, parse_hhmm(end.trim())?)
    }

    /// `"HH:MM"`.
    pub fn start(&self) -> String {
        format_hhmm(self.start_min)
    }

    /// `"HH:MM"`.
    pub fn end(&self) -> String {
        format_hhmm(self.end_min)
    }
}

/// Minutes since midnight of an `HH:MM` time, `00:00` to `23:59` (two digits each).
pub fn parse_hhmm(text: &str) -> Option<u16> {
    let b = text.as_bytes();
    if b.len() != 5 || b[2] != b':' {
        return None;
    }
    let two = |i: usize| -> Option<u16> {
        let (hi, lo) = (b[i], b[i + 1]);
        (hi.is_ascii_digit() && lo.is_ascii_digit())
            .then(|| u16::from(hi - b'0') * 10 + u16::from(lo - b'0'))
    };
    let (hour, minute) = (two(0)?, two(3)?);
    (hour < 24 && minute < 60).then_some(hour * 60 + minute)
}

/// `HH:MM` of minutes since midnight.
pub fn format_hhmm(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// A session's `protection` as the admin set it. `window`: absent (the `JOB_WINDOW`
/// default), `null` (no window for this session), or a window. Read back by hand
/// (`Protection::read`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Protection {
    /// `YYYY-MM-DD`, not in the future.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number_since: Option<String>,
    /// An IANA time zone name the runtime's `Intl` knows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Kept and shown as the contract writes it: absent, `null`, or
    /// `{ "start": "HH:MM", "end": "HH:MM" }`.
    #[serde(
        skip_serializing_if = "WindowSetting::is_default",
        serialize_with = "window_field::serialize"
    )]
    pub window: WindowSetting,
}

impl<'de> Deserialize<'de> for Protection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_with(d, Protection::read)
    }
}

impl Protection {
    /// The record as KV keeps it: `window` absent is the default, `null` is off, and an
    /// object must hold a valid `start` and `end` (other fields ignored).
    pub fn read(value: Value) -> Option<Self> {
        let mut fields = Fields::of(value)?;
        Some(Self {
            number_since: fields.opt_string("number_since")?,
            timezone: fields.opt_string("timezone")?,
            window: fields.or("window", WindowSetting::Default, |value| {
                if value.is_null() {
                    return Some(WindowSetting::Off);
                }
                let mut fields = Fields::of(value)?;
                let (start, end) = (fields.string("start")?, fields.string("end")?);
                let window = Window::new(parse_hhmm(&start)?, parse_hhmm(&end)?)?;
                Some(WindowSetting::Set(window))
            })?,
        })
    }

    /// Nothing set: the record leaves it out.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The declared `number_since` as days since 1970-01-01, if set (and readable).
    pub fn number_since_days(&self) -> Option<i64> {
        self.number_since.as_deref().and_then(parse_date)
    }

    /// Whole days from `number_since` (00:00 UTC) to `now_ms`; 0 when not declared (an
    /// unknown age counts as new) or, should the clock stand before it, 0.
    pub fn age_days(&self, now_ms: i64) -> u32 {
        self.number_since_days().map_or(0, |since| {
            let days = now_ms.div_euclid(DAY_MS) - since;
            u32::try_from(days.max(0)).unwrap_or(u32::MAX)
        })
    }
}

/// `window` in the record and the view: `null` is `Off`, an object is `Set`, absent is
/// `Default` (skipped; `Protection::read` reads it back).
mod window_field {
    use serde::{Serialize, Serializer};

    use super::WindowSetting;

    #[derive(Serialize)]
    struct Wire {
        start: String,
        end: String,
    }

    pub fn serialize<S: Serializer>(value: &WindowSetting, s: S) -> Result<S::Ok, S::Error> {
        match value {
            WindowSetting::Set(window) => Wire {
                start: window.start(),
                end: window.end(),
            }
            .serialize(s),
            WindowSetting::Off | WindowSetting::Default => s.serialize_none(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowSetting {
    /// Not set: `JOB_WINDOW` applies.
    #[default]
    Default,
    /// `"window": null`: none for this session.
    Off,
    Set(Window),
}

impl WindowSetting {
    pub fn is_default(&self) -> bool {
        *self == Self::Default
    }
}

/// One row of `PROTECTION_TIERS`: from this age in days on, these caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    pub from_days: u32,
    pub per_day: u32,
    pub per_hour: u32,
}

/// The contract's tiers (section 13).
pub const DEFAULT_TIERS: [Tier; 5] = [
    Tier {
        from_days: 0,
        per_day: 5,
        per_hour: 2,
    },
    Tier {
        from_days: 3,
        per_day: 10,
        per_hour: 3,
    },
    Tier {
        from_days: 7,
        per_day: 20,
        per_hour: 5,
    },
    Tier {
        from_days: 14,
        per_day: 30,
        per_hour: 8,
    },
    Tier {
        from_days: 30,
        per_day: 40,
        per_hour: 10,
    },
];

/// The deployment's protection settings (`[vars]`), every wait a test may shrink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectionConfig {
    /// `PROTECTION_TIERS`, sorted by `from_days`, the first from 0.
    pub tiers: Vec<Tier>,
    /// `DEFAULT_TIMEZONE`.
    pub default_timezone: String,
    /// `JOB_WINDOW` (`None`: `"off"`).
    pub job_window: Option<Window>,
    /// `JOB_BREAK_EVERY`: a break after this many items, drawn uniformly (inclusive).
    pub break_every: (u32, u32),
    /// `JOB_BREAK_S`: a break's length in seconds, drawn uniformly (inclusive); `(0, 0)`: none.
    pub break_s: (u64, u64),
    /// `COOLDOWN_S`: the cooldown of strikes 1, 2 and 3, seconds.
    pub cooldown_s: [u64; 3],
    /// `RESTRICTED_COOLDOWN_S`: a restriction's cooldown when the server states no end.
    pub restricted_cooldown_s: u64,
    /// `RESTRICTED_MARGIN_S`: added to the end a server states.
    pub restricted_margin_s: u64,
    /// `CAP_WINDOWS_S`: the hour and day windows (the day one is also strike 2's look-back).
    pub hour_window_s: u64,
    pub day_window_s: u64,
    /// `PENALTY_S`: the halving after a WhatsApp 429, strike 3's look-back, the warm-up.
    pub penalty_s: u64,
}

impl Default for ProtectionConfig {
    fn default() -> Self {
        Self {
            tiers: DEFAULT_TIERS.to_vec(),
            default_timezone: "UTC".into(),
            job_window: Some(Window {
                start_min: 8 * 60,
                end_min: 21 * 60,
            }),
            break_every: (3, 6),
            break_s: (600, 1800),
            cooldown_s: [3600, 86_400, 259_200],
            restricted_cooldown_s: 259_200,
            restricted_margin_s: 3600,
            hour_window_s: 3600,
            day_window_s: 86_400,
            penalty_s: 604_800,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Dates and time zones

/// Days since 1970-01-01 of a `YYYY-MM-DD` calendar date (proleptic Gregorian).
pub fn parse_date(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = text.get(range)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let (year, month, day) = (i64::from(number(0..4)?), number(5..7)?, number(8..10)?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// `YYYY-MM-DD` of a day count since 1970-01-01.
pub fn format_date(days: i64) -> String {
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Whether `text` has the shape of an IANA time zone name (`UTC`, `Europe/Berlin`,
/// `America/Argentina/Buenos_Aires`, `Etc/GMT+3`): 1 to 64 characters of letters, digits,
/// `/`, `_`, `+` and `-`, starting with a letter. Offsets such as `+02:00` are not names.
/// Whether the runtime knows it is for `Intl` to say (`edge::tz`).
pub fn plausible_timezone(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text.starts_with(|c: char| c.is_ascii_alphabetic())
        && text
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'/' | b'_' | b'+' | b'-'))
}

/// The UTC offset in minutes of a zone whose wall clock reads `local` (year, month, day,
/// hour, minute, second) at the instant `at_ms`: what `Intl.DateTimeFormat`'s parts say,
/// turned into an offset. `None` for fields that are no time, or an offset beyond ±24 h.
pub fn offset_from_local(local: (i64, u32, u32, u32, u32, u32), at_ms: i64) -> Option<i32> {
    let (year, month, day, hour, minute, second) = local;
    // Some engines once wrote midnight as 24:00 of the day that begins.
    let hour = if hour == 24 { 0 } else { hour };
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let local_s = days_from_civil(year, month, day) * 86_400
        + i64::from(hour) * 3600
        + i64::from(minute) * 60
        + i64::from(second);
    let offset_s = local_s - at_ms.div_euclid(1000);
    if offset_s.abs() > 86_400 {
        return None;
    }
    // Historic local mean times carry seconds (+00:53:28); minutes are what a window needs.
    i32::try_from(offset_s.div_euclid(60)).ok()
}

// ---------------------------------------------------------------------------------------
// A session's `protection`, as `PUT /v1/admin/sessions/{sid}` sends it

/// `"protection": { "number_since"?, "timezone"?, "window"?: { "start", "end" } | null }`,
/// validated; `now_ms` gives today's UTC date (a `number_since` after it is in the future),
/// `known_timezone` is the runtime's `Intl` (asked only of a plausible name). Errors name
/// `protection`, `protection.<unknown field>`, `protection.number_since`,
/// `protection.timezone`, `protection.window` or `protection.window.<unknown field>`.
pub fn parse_protection(
    value: &Value,
    now_ms: i64,
    known_timezone: &dyn Fn(&str) -> bool,
) -> Result<Protection, ApiError> {
    let map = object(value, "protection")?;
    reject_unknown(map, &["number_since", "timezone", "window"], "protection.")?;
    let mut protection = Protection::default();
    if let Some(value) = present(map, "number_since") {
        let text = value.as_str();
        let days = text.and_then(parse_date).ok_or_else(|| {
            ApiError::invalid(
                "protection.number_since",
                "must be a date, YYYY-MM-DD (the day the number has been in use since)",
            )
        })?;
        let today = now_ms.div_euclid(DAY_MS);
        if days > today {
            return Err(ApiError::invalid(
                "protection.number_since",
                format!(
                    "must not be in the future (today is {}, UTC)",
                    format_date(today)
                ),
            ));
        }
        protection.number_since = text.map(str::to_owned);
    }
    if let Some(value) = present(map, "timezone") {
        let zone = value
            .as_str()
            .filter(|zone| plausible_timezone(zone) && known_timezone(zone))
            .ok_or_else(|| {
                ApiError::invalid(
                    "protection.timezone",
                    "must be an IANA time zone name the runtime knows, such as Europe/Berlin",
                )
            })?;
        protection.timezone = Some(zone.to_owned());
    }
    protection.window = match map.get("window") {
        None => WindowSetting::Default,
        Some(Value::Null) => WindowSetting::Off,
        Some(value) => WindowSetting::Set(parse_window(value)?),
    };
    Ok(protection)
}

fn parse_window(value: &Value) -> Result<Window, ApiError> {
    let shape = || {
        ApiError::invalid(
            "protection.window",
            "must be { \"start\": \"HH:MM\", \"end\": \"HH:MM\" } or null",
        )
    };
    let map = value.as_object().ok_or_else(shape)?;
    reject_unknown(map, &["start", "end"], "protection.window.")?;
    let time = |key: &str| map.get(key).and_then(Value::as_str).and_then(parse_hhmm);
    let (start, end) = time("start").zip(time("end")).ok_or_else(shape)?;
    Window::new(start, end).ok_or_else(|| {
        ApiError::invalid(
            "protection.window",
            "start must be before end (a window within one day)",
        )
    })
}

// ---------------------------------------------------------------------------------------
// The deployment's `[vars]`

/// A session's `limits.join.per_day` and a tier's `per_day`.
pub const PER_DAY_RANGE: RangeInclusive<u32> = 1..=1000;
/// A session's `limits.join.per_hour` and a tier's `per_hour`.
pub const PER_HOUR_RANGE: RangeInclusive<u32> = 1..=200;
/// `PROTECTION_TIERS` lists at most this many tiers.
pub const MAX_TIERS: usize = 32;
/// The longest cooldown, restriction cooldown, window or penalty a var may set: 30 days.
pub const MAX_WAIT_S: u64 = 30 * 86_400;

/// `PROTECTION_TIERS`: a JSON list of `{ "from_days", "per_day", "per_hour" }` (no other
/// field), 1 to 32 of them, `from_days` strictly increasing from 0, `per_day` 1–1000,
/// `per_hour` 1–200. The error says what is wrong.
pub fn parse_tiers(text: &str) -> Result<Vec<Tier>, String> {
    let value: Value = serde_json::from_str(text).map_err(|_| "is not JSON".to_string())?;
    let list = value
        .as_array()
        .filter(|list| (1..=MAX_TIERS).contains(&list.len()))
        .ok_or_else(|| format!("must be a list of 1 to {MAX_TIERS} tiers"))?;
    let mut tiers: Vec<Tier> = Vec::with_capacity(list.len());
    for (index, item) in list.iter().enumerate() {
        let map = item
            .as_object()
            .ok_or_else(|| format!("[{index}] must be an object"))?;
        if let Some(key) = map
            .keys()
            .find(|k| !["from_days", "per_day", "per_hour"].contains(&k.as_str()))
        {
            return Err(format!("[{index}].{key} is not a known field"));
        }
        let number = |key: &str, range: RangeInclusive<u32>| -> Result<u32, String> {
            map.get(key)
                .and_then(whole_number)
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| range.contains(n))
                .ok_or_else(|| {
                    format!(
                        "[{index}].{key} must be a whole number from {} to {}",
                        range.start(),
                        range.end()
                    )
                })
        };
        let tier = Tier {
            from_days: number("from_days", 0..=u32::MAX)?,
            per_day: number("per_day", PER_DAY_RANGE)?,
            per_hour: number("per_hour", PER_HOUR_RANGE)?,
        };
        match tiers.last() {
            None if tier.from_days != 0 => {
                return Err("[0].from_days must be 0 (every age needs a tier)".into())
            }
            Some(last) if tier.from_days <= last.from_days => {
                return Err(format!(
                "[{index}].from_days must be greater than the tier before's (sorted, no repeats)"
            ))
            }
            _ => tiers.push(tier),
        }
    }
    Ok(tiers)
}

/// `"a-b"` of whole numbers with `min <= a <= b <= max`.
fn parse_span(text: &str, min: u64, max: u64) -> Option<(u64, u64)> {
    let (a, b) = text.split_once('-')?;
    let a: u64 = digits(a)?;
    let b: u64 = digits(b)?;
    (min <= a && a <= b && b <= max).then_some((a, b))
}

/// `"a,b,…"` of exactly `N` whole numbers, each within `range` (one copy for every `N`:
/// `fill`).
fn parse_list<const N: usize>(text: &str, range: RangeInclusive<u64>) -> Option<[u64; N]> {
    let mut out = [0u64; N];
    fill(&mut out, text, range).then_some(out)
}

/// Whether `text` is exactly `out.len()` comma-separated whole numbers within `range`,
/// written into `out`.
#[inline(never)]
fn fill(out: &mut [u64], text: &str, range: RangeInclusive<u64>) -> bool {
    let mut parts = text.split(',');
    for slot in out.iter_mut() {
        match parts.next().and_then(digits).filter(|n| range.contains(n)) {
            Some(n) => *slot = n,
            None => return false,
        }
    }
    parts.next().is_none()
}

/// A whole number written in ASCII digits only (surrounding spaces allowed).
fn digits<T: std::str::FromStr>(text: &str) -> Option<T> {
    let text = text.trim();
    (!text.is_empty() && text.bytes().all(|c| c.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// Why a var is refused: one copy of the message's format for every var.
#[cold]
#[inline(never)]
fn wrong(name: &str, expected: &str) -> String {
    format!("{name} must be {expected}")
}

impl ProtectionConfig {
    /// The contract's defaults overridden by `[vars]`; a var that is set but wrong is a
    /// configuration error, named in the message. `DEFAULT_TIMEZONE` is checked for its
    /// shape here; whether the runtime knows it is the edge's to ask.
    #[inline(never)]
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut config = Self::default();
        let read = |name: &str| var(name).map(|text| text.trim().to_string());
        if let Some(text) = read("PROTECTION_TIERS") {
            config.tiers = parse_tiers(&text).map_err(|why| format!("PROTECTION_TIERS {why}"))?;
        }
        if let Some(text) = read("DEFAULT_TIMEZONE") {
            if !plausible_timezone(&text) {
                return Err(wrong("DEFAULT_TIMEZONE", "an IANA time zone name"));
            }
            config.default_timezone = text;
        }
        if let Some(text) = read("JOB_WINDOW") {
            config.job_window = if text == "off" {
                None
            } else {
                Some(Window::parse(&text).ok_or_else(|| {
                    wrong(
                        "JOB_WINDOW",
                        "\"HH:MM-HH:MM\" (start before end) or \"off\"",
                    )
                })?)
            };
        }
        if let Some(text) = read("JOB_BREAK_EVERY") {
            let (a, b) = parse_span(&text, 1, crate::core::jobs::MAX_ITEMS as u64)
                .ok_or_else(|| wrong("JOB_BREAK_EVERY", "\"a-b\" items, 1 <= a <= b <= 500"))?;
            config.break_every = (a as u32, b as u32);
        }
        if let Some(text) = read("JOB_BREAK_S") {
            config.break_s = parse_span(&text, 0, 86_400).ok_or_else(|| {
                wrong(
                    "JOB_BREAK_S",
                    "\"a-b\" seconds, a <= b <= 86400 (\"0-0\": no breaks)",
                )
            })?;
        }
        if let Some(text) = read("COOLDOWN_S") {
            config.cooldown_s = parse_list::<3>(&text, 1..=MAX_WAIT_S)
                .filter(|[a, b, c]| a <= b && b <= c)
                .ok_or_else(|| {
                    wrong(
                        "COOLDOWN_S",
                        "three seconds \"s1,s2,s3\", each 1 to 2592000, none shorter than the one before",
                    )
                })?;
        }
        if let Some(text) = read("RESTRICTED_COOLDOWN_S") {
            config.restricted_cooldown_s =
                digits(&text)
                    .filter(|n| (1..=MAX_WAIT_S).contains(n))
                    .ok_or_else(|| wrong("RESTRICTED_COOLDOWN_S", "seconds from 1 to 2592000"))?;
        }
        if let Some(text) = read("RESTRICTED_MARGIN_S") {
            config.restricted_margin_s = digits(&text)
                .filter(|n| *n <= 86_400)
                .ok_or_else(|| wrong("RESTRICTED_MARGIN_S", "seconds from 0 to 86400"))?;
        }
        if let Some(text) = read("CAP_WINDOWS_S") {
            let [hour, day] = parse_list::<2>(&text, 1..=MAX_WAIT_S)
                .filter(|[hour, day]| hour < day)
                .ok_or_else(|| {
                    wrong(
                        "CAP_WINDOWS_S",
                        "two seconds \"hour,day\", the first shorter, each 1 to 2592000",
                    )
                })?;
            (config.hour_window_s, config.day_window_s) = (hour, day);
        }
        if let Some(text) = read("PENALTY_S") {
            config.penalty_s = digits(&text)
                .filter(|n| (1..=MAX_WAIT_S).contains(n))
                .ok_or_else(|| wrong("PENALTY_S", "seconds from 1 to 2592000"))?;
        }
        Ok(config)
    }
}

/// Join jobs' pace settings: `JOB_INTERVAL_S`, the default `interval_s`, and
/// `JOB_MIN_INTERVAL_S`, the least a submit may ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobIntervals {
    pub default_s: u32,
    pub min_s: u32,
}

impl JobIntervals {
    /// `JOB_MIN_INTERVAL_S` 1–86400 (default 60); `JOB_INTERVAL_S` from that minimum to
    /// 86400 (default 180: a default below the minimum is a configuration error too).
    #[inline(never)]
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        use crate::core::jobs::{DEFAULT_INTERVAL_S, DEFAULT_MIN_INTERVAL_S, MAX_INTERVAL_S};
        let min_s = match var("JOB_MIN_INTERVAL_S") {
            None => DEFAULT_MIN_INTERVAL_S,
            Some(text) => digits(&text)
                .filter(|n| (1..=MAX_INTERVAL_S).contains(n))
                .ok_or_else(|| {
                    format!("JOB_MIN_INTERVAL_S must be seconds from 1 to {MAX_INTERVAL_S}")
                })?,
        };
        let default_s = match var("JOB_INTERVAL_S") {
            None => DEFAULT_INTERVAL_S,
            Some(text) => digits(&text).ok_or_else(|| {
                format!("JOB_INTERVAL_S must be seconds from JOB_MIN_INTERVAL_S ({min_s}) to {MAX_INTERVAL_S}")
            })?,
        };
        if !(min_s..=MAX_INTERVAL_S).contains(&default_s) {
            return Err(format!(
                "JOB_INTERVAL_S ({default_s}) must be seconds from JOB_MIN_INTERVAL_S ({min_s}) to {MAX_INTERVAL_S}"
            ));
        }
        Ok(Self { default_s, min_s })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// 2026-06-15T12:00:00Z.
    const NOON: i64 = 1_781_524_800_000;

    fn field(error: Option<ApiError>) -> Option<String> {
        error.and_then(|e| e.field().map(str::to_owned))
    }

    #[test]
    fn hhmm_times() {
        for (text, expected) in [
            ("00:00", Some(0)),
            ("08:00", Some(480)),
            ("23:59", Some(1439)),
            ("21:30", Some(1290)),
            ("24:00", None),
            ("12:60", None),
            ("8:00", None),
            ("08:0", None),
            ("0800", None),
            ("08-00", None),
            ("08:00 ", None),
            ("+8:00", None),
            ("٠٨:٠٠", None),
            ("", None),
        ] {
            assert_eq!(parse_hhmm(text), expected, "{text:?}");
        }
        assert_eq!(format_hhmm(0), "00:00");
        assert_eq!(format_hhmm(1439), "23:59");
        for minutes in 0..24 * 60 {
            assert_eq!(parse_hhmm(&format_hhmm(minutes)), Some(minutes));
        }
    }

    #[test]
    fn windows() {
        for (text, expected) in [
            ("08:00-21:00", Some((480, 1260))),
            ("00:00-23:59", Some((0, 1439))),
            (" 08:00 - 21:00 ", Some((480, 1260))),
            ("21:00-08:00", None),
            ("08:00-08:00", None),
            ("08:00", None),
            ("08:00-24:00", None),
            ("8-21", None),
            ("off", None),
            ("08:00-21:00-22:00", None),
        ] {
            assert_eq!(
                Window::parse(text).map(|w| (w.start_min, w.end_min)),
                expected,
                "{text:?}"
            );
        }
        assert_eq!(Window::new(10, 10), None);
        assert_eq!(Window::new(10, 1440), None);
        let window = Window::new(480, 1260);
        assert_eq!(
            window.map(|w| (w.start(), w.end())),
            Some(("08:00".into(), "21:00".into()))
        );
    }

    #[test]
    fn dates() {
        for (text, expected) in [
            ("1970-01-01", Some(0)),
            ("2026-06-15", Some(20_619)),
            ("2024-02-29", Some(19_782)),
            ("2000-02-29", Some(11_016)),
            ("1969-12-31", Some(-1)),
            ("2023-02-29", None),
            ("1900-02-29", None),
            ("2026-13-01", None),
            ("2026-00-10", None),
            ("2026-04-31", None),
            ("2026-06-00", None),
            ("2026-6-15", None),
            ("2026/06/15", None),
            ("2026-06-15T00:00:00Z", None),
            ("+026-06-15", None),
            ("", None),
        ] {
            assert_eq!(parse_date(text), expected, "{text:?}");
        }
        for days in [-1, 0, 19_782, 20_619, 2_932_896] {
            assert_eq!(parse_date(&format_date(days)), Some(days));
        }
    }

    #[test]
    fn timezone_names() {
        for name in [
            "UTC",
            "Europe/Berlin",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+3",
            "America/Port-au-Prince",
            "EST5EDT",
        ] {
            assert!(plausible_timezone(name), "{name}");
        }
        for name in [
            "",
            "+02:00",
            "-03",
            "Europe/Berlin ",
            "Europe Berlin",
            "Europe/Berlin\u{0}",
            "../../etc",
            "/UTC",
            &"A".repeat(65),
            "Europe/Zürich",
        ] {
            assert!(!plausible_timezone(name), "{name:?}");
        }
    }

    #[test]
    fn offsets_from_the_wall_clock() {
        for (local, at_ms, expected) in [
            // Berlin in summer (CEST) and winter (CET).
            ((2026, 6, 15, 14, 0, 0), NOON, Some(120)),
            ((2026, 1, 15, 13, 0, 0), 1_768_478_400_000, Some(60)),
            // New York in winter, the day before: -5 h.
            ((2026, 1, 15, 7, 0, 0), 1_768_478_400_000, Some(-300)),
            // Across midnight and the year: Kiritimati +14 h, Baker -12 h.
            ((2027, 1, 1, 13, 59, 59), 1_798_761_599_000, Some(840)),
            ((2026, 12, 31, 11, 59, 59), 1_798_761_599_999, Some(-720)),
            // Kolkata +5:30, Kathmandu +5:45.
            ((2026, 6, 15, 17, 30, 0), NOON, Some(330)),
            ((2026, 6, 15, 17, 45, 0), NOON, Some(345)),
            // Milliseconds of the instant do not shift the minute.
            ((2026, 6, 15, 12, 0, 0), NOON + 999, Some(0)),
            // Midnight written as 24:00 of the day.
            ((2026, 6, 16, 24, 0, 0), 1_781_568_000_000, Some(0)),
            ((2026, 2, 30, 12, 0, 0), NOON, None),
            ((2026, 6, 15, 12, 60, 0), NOON, None),
            ((2026, 6, 17, 12, 0, 0), NOON, None),
        ] {
            assert_eq!(offset_from_local(local, at_ms), expected, "{local:?}");
        }
    }

    #[test]
    fn protection_bodies() {
        let known = |zone: &str| ["UTC", "Europe/Berlin", "America/New_York"].contains(&zone);
        let parse = |value: Value| parse_protection(&value, NOON, &known);
        assert_eq!(parse(json!({})), Ok(Protection::default()));
        assert_eq!(
            parse(
                json!({ "number_since": "2024-03-01", "timezone": "Europe/Berlin", "window": { "start": "08:00", "end": "21:00" } })
            ),
            Ok(Protection {
                number_since: Some("2024-03-01".into()),
                timezone: Some("Europe/Berlin".into()),
                window: WindowSetting::Set(Window {
                    start_min: 480,
                    end_min: 1260
                }),
            })
        );
        assert_eq!(
            parse(json!({ "window": null })).map(|p| p.window),
            Ok(WindowSetting::Off)
        );
        // null number_since and timezone are left out.
        assert_eq!(
            parse(json!({ "number_since": null, "timezone": null })),
            Ok(Protection::default())
        );
        // Today (UTC) is not in the future; the window's edges are whole-day.
        assert_eq!(
            parse(json!({ "number_since": "2026-06-15", "window": { "start": "00:00", "end": "23:59" } }))
                .map(|p| (p.number_since, p.window)),
            Ok((
                Some("2026-06-15".into()),
                WindowSetting::Set(Window { start_min: 0, end_min: 1439 })
            ))
        );
        for (value, expected) in [
            (json!([]), "protection"),
            (json!("08:00-21:00"), "protection"),
            (json!({ "skip_warmup": true }), "protection.skip_warmup"),
            (
                json!({ "number_since": "2026-06-16" }),
                "protection.number_since",
            ),
            (
                json!({ "number_since": "2027-01-01" }),
                "protection.number_since",
            ),
            (
                json!({ "number_since": "2024-02-30" }),
                "protection.number_since",
            ),
            (
                json!({ "number_since": "01/03/2024" }),
                "protection.number_since",
            ),
            (
                json!({ "number_since": "2024-03-01T00:00:00Z" }),
                "protection.number_since",
            ),
            (
                json!({ "number_since": 20240301 }),
                "protection.number_since",
            ),
            (json!({ "number_since": "" }), "protection.number_since"),
            (
                json!({ "timezone": "Mars/Olympus_Mons" }),
                "protection.timezone",
            ),
            (json!({ "timezone": "+02:00" }), "protection.timezone"),
            (json!({ "timezone": "" }), "protection.timezone"),
            (json!({ "timezone": 2 }), "protection.timezone"),
            (
                json!({ "window": { "start": "21:00", "end": "08:00" } }),
                "protection.window",
            ),
            (
                json!({ "window": { "start": "08:00", "end": "08:00" } }),
                "protection.window",
            ),
            (
                json!({ "window": { "start": "8:00", "end": "21:00" } }),
                "protection.window",
            ),
            (
                json!({ "window": { "start": "08:00", "end": "24:00" } }),
                "protection.window",
            ),
            (
                json!({ "window": { "start": "08:00" } }),
                "protection.window",
            ),
            (
                json!({ "window": { "start": 8, "end": 21 } }),
                "protection.window",
            ),
            (json!({ "window": "08:00-21:00" }), "protection.window"),
            (json!({ "window": {} }), "protection.window"),
            (
                json!({ "window": { "start": "08:00", "end": "21:00", "days": [1] } }),
                "protection.window.days",
            ),
        ] {
            assert_eq!(
                field(parse(value.clone()).err()),
                Some(expected.to_string()),
                "{value}"
            );
        }
        // The future is measured from the UTC date of now: 23:59:59 UTC still says today.
        let late = NOON + 12 * 3_600_000 - 1_000;
        assert!(parse_protection(&json!({ "number_since": "2026-06-15" }), late, &known).is_ok());
        assert!(parse_protection(&json!({ "number_since": "2026-06-16" }), late, &known).is_err());
        assert!(parse_protection(
            &json!({ "number_since": "2026-06-16" }),
            late + 1_000,
            &known
        )
        .is_ok());
        // The runtime is asked only about plausible names.
        let asked = std::cell::RefCell::new(Vec::new());
        let spy = |zone: &str| {
            asked.borrow_mut().push(zone.to_string());
            false
        };
        let _ = parse_protection(&json!({ "timezone": "+02:00" }), NOON, &spy);
        let _ = parse_protection(&json!({ "timezone": "Nowhere/Land" }), NOON, &spy);
        assert_eq!(*asked.borrow(), vec!["Nowhere/Land".to_string()]);
    }

    #[test]
    fn protection_is_kept_and_shown_as_set() {
        let view = |p: &Protection| serde_json::to_value(p).ok();
        assert_eq!(view(&Protection::default()), Some(json!({})));
        let off = Protection {
            window: WindowSetting::Off,
            ..Protection::default()
        };
        assert_eq!(view(&off), Some(json!({ "window": null })));
        let full = Protection {
            number_since: Some("2024-03-01".into()),
            timezone: Some("Europe/Berlin".into()),
            window: WindowSetting::Set(Window {
                start_min: 450,
                end_min: 1290,
            }),
        };
        assert_eq!(
            view(&full),
            Some(
                json!({ "number_since": "2024-03-01", "timezone": "Europe/Berlin", "window": { "start": "07:30", "end": "21:30" } })
            )
        );
        for p in [Protection::default(), off, full] {
            let text = serde_json::to_string(&p).unwrap_or_default();
            let back: Option<Protection> = serde_json::from_str(&text).ok();
            assert_eq!(back, Some(p), "{text}");
        }
        assert!(serde_json::from_str::<Protection>(
            r#"{"window":{"start":"21:00","end":"08:00"}}"#
        )
        .is_err());
        let read = |text: &str| serde_json::from_str::<Protection>(text).ok();
        assert_eq!(
            read(r#"{"number_since":null,"timezone":null,"window":null}"#),
            Some(Protection {
                window: WindowSetting::Off,
                ..Protection::default()
            })
        );
        assert_eq!(
            read(r#"{"window":{"start":"08:00","end":"09:00","x":1},"y":2}"#),
            Window::new(480, 540).map(|w| Protection {
                window: WindowSetting::Set(w),
                ..Protection::default()
            })
        );
        for broken in [
            r#"{"window":{"start":"08:00"}}"#,
            r#"{"window":{"start":"08:00","end":null}}"#,
            r#"{"window":{"start":"8:00","end":"09:00"}}"#,
            r#"{"window":"08:00-09:00"}"#,
            r#"{"timezone":1}"#,
            // The derive also took a struct as an array; joingate never wrote one.
            r#"[]"#,
        ] {
            assert_eq!(read(broken), None, "{broken}");
        }
        assert!(Protection::default().is_empty());
    }

    #[test]
    fn age_in_whole_days() {
        let since = |date: &str| Protection {
            number_since: Some(date.into()),
            ..Protection::default()
        };
        assert_eq!(
            Protection::default().age_days(NOON),
            0,
            "unknown counts as new"
        );
        assert_eq!(since("2026-06-15").age_days(NOON), 0);
        assert_eq!(since("2026-06-12").age_days(NOON), 3);
        assert_eq!(since("2026-05-16").age_days(NOON), 30);
        assert_eq!(
            since("2026-06-16").age_days(NOON),
            0,
            "a clock before it: 0"
        );
        assert_eq!(since("2026-06-15").age_days(NOON + 12 * 3_600_000), 1);
    }

    #[test]
    fn tiers() {
        let contract = r#"[{"from_days":0,"per_day":5,"per_hour":2},{"from_days":3,"per_day":10,"per_hour":3},{"from_days":7,"per_day":20,"per_hour":5},{"from_days":14,"per_day":30,"per_hour":8},{"from_days":30,"per_day":40,"per_hour":10}]"#;
        assert_eq!(parse_tiers(contract), Ok(DEFAULT_TIERS.to_vec()));
        assert_eq!(
            parse_tiers(r#"[{"from_days":0,"per_day":1000,"per_hour":200}]"#),
            Ok(vec![Tier {
                from_days: 0,
                per_day: 1000,
                per_hour: 200
            }])
        );
        assert_eq!(
            parse_tiers(r#"[{"from_days":0.0,"per_day":1,"per_hour":1}]"#).map(|t| t.len()),
            Ok(1)
        );
        let many: Vec<Value> = (0..33)
            .map(|d| json!({ "from_days": d, "per_day": 1, "per_hour": 1 }))
            .collect();
        let many = Value::from(many).to_string();
        for (text, why) in [
            ("", "not JSON"),
            ("{}", "list"),
            ("[]", "list"),
            (many.as_str(), "list"),
            ("[5]", "[0] must be an object"),
            (
                r#"[{"from_days":1,"per_day":5,"per_hour":2}]"#,
                "[0].from_days must be 0",
            ),
            (
                r#"[{"from_days":0,"per_day":5,"per_hour":2},{"from_days":0,"per_day":9,"per_hour":2}]"#,
                "[1].from_days",
            ),
            (
                r#"[{"from_days":0,"per_day":5,"per_hour":2},{"from_days":7,"per_day":9,"per_hour":2},{"from_days":3,"per_day":9,"per_hour":2}]"#,
                "[2].from_days",
            ),
            (
                r#"[{"from_days":0,"per_day":0,"per_hour":2}]"#,
                "[0].per_day",
            ),
            (
                r#"[{"from_days":0,"per_day":1001,"per_hour":2}]"#,
                "[0].per_day",
            ),
            (
                r#"[{"from_days":0,"per_day":5,"per_hour":0}]"#,
                "[0].per_hour",
            ),
            (
                r#"[{"from_days":0,"per_day":5,"per_hour":201}]"#,
                "[0].per_hour",
            ),
            (r#"[{"from_days":0,"per_day":5}]"#, "[0].per_hour"),
            (
                r#"[{"from_days":0,"per_day":"5","per_hour":2}]"#,
                "[0].per_day",
            ),
            (
                r#"[{"from_days":-1,"per_day":5,"per_hour":2}]"#,
                "[0].from_days",
            ),
            (
                r#"[{"from_days":0,"per_day":5.5,"per_hour":2}]"#,
                "[0].per_day",
            ),
            (
                r#"[{"from_days":0,"per_day":5,"per_hour":2,"per_week":9}]"#,
                "[0].per_week is not a known field",
            ),
        ] {
            let error = parse_tiers(text).err().unwrap_or_default();
            assert!(error.contains(why), "{text}: {error}");
        }
    }

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn protection_vars() {
        assert_eq!(
            ProtectionConfig::from_vars(|_| None),
            Ok(ProtectionConfig::default())
        );
        let set = ProtectionConfig::from_vars(vars(&[
            (
                "PROTECTION_TIERS",
                r#" [{"from_days":0,"per_day":3,"per_hour":1}] "#,
            ),
            ("DEFAULT_TIMEZONE", "Europe/Berlin"),
            ("JOB_WINDOW", "off"),
            ("JOB_BREAK_EVERY", "2-2"),
            ("JOB_BREAK_S", "0-0"),
            ("COOLDOWN_S", "2, 4,4"),
            ("RESTRICTED_COOLDOWN_S", "5"),
            ("RESTRICTED_MARGIN_S", "0"),
            ("CAP_WINDOWS_S", "3,6"),
            ("PENALTY_S", "9"),
        ]));
        assert_eq!(
            set,
            Ok(ProtectionConfig {
                tiers: vec![Tier {
                    from_days: 0,
                    per_day: 3,
                    per_hour: 1
                }],
                default_timezone: "Europe/Berlin".into(),
                job_window: None,
                break_every: (2, 2),
                break_s: (0, 0),
                cooldown_s: [2, 4, 4],
                restricted_cooldown_s: 5,
                restricted_margin_s: 0,
                hour_window_s: 3,
                day_window_s: 6,
                penalty_s: 9,
            })
        );
        assert_eq!(
            ProtectionConfig::from_vars(vars(&[("JOB_WINDOW", "07:30-22:15")]))
                .map(|c| c.job_window),
            Ok(Window::new(450, 1335))
        );
        for (name, bad) in [
            ("PROTECTION_TIERS", "[]"),
            (
                "PROTECTION_TIERS",
                r#"[{"from_days":0,"per_day":5,"per_hour":300}]"#,
            ),
            ("DEFAULT_TIMEZONE", "+02:00"),
            ("DEFAULT_TIMEZONE", "Europe Berlin"),
            ("JOB_WINDOW", "21:00-08:00"),
            ("JOB_WINDOW", "OFF"),
            ("JOB_WINDOW", "none"),
            ("JOB_BREAK_EVERY", "0-3"),
            ("JOB_BREAK_EVERY", "6-3"),
            ("JOB_BREAK_EVERY", "3"),
            ("JOB_BREAK_EVERY", "3-501"),
            ("JOB_BREAK_S", "1800-600"),
            ("JOB_BREAK_S", "0-86401"),
            ("JOB_BREAK_S", "-1-5"),
            ("JOB_BREAK_S", "600"),
            ("COOLDOWN_S", "3600,86400"),
            ("COOLDOWN_S", "3600,86400,259200,1"),
            ("COOLDOWN_S", "0,86400,259200"),
            ("COOLDOWN_S", "86400,3600,259200"),
            ("COOLDOWN_S", "3600,86400,2592001"),
            ("COOLDOWN_S", "1h,1d,3d"),
            ("RESTRICTED_COOLDOWN_S", "0"),
            ("RESTRICTED_COOLDOWN_S", "2592001"),
            ("RESTRICTED_COOLDOWN_S", "72h"),
            ("RESTRICTED_MARGIN_S", "86401"),
            ("RESTRICTED_MARGIN_S", "-1"),
            ("CAP_WINDOWS_S", "86400,3600"),
            ("CAP_WINDOWS_S", "3600,3600"),
            ("CAP_WINDOWS_S", "0,3600"),
            ("CAP_WINDOWS_S", "3600"),
            ("PENALTY_S", "0"),
            ("PENALTY_S", "7d"),
            ("PENALTY_S", "2592001"),
        ] {
            let error = ProtectionConfig::from_vars(vars(&[(name, bad)])).err();
            assert!(
                error.as_deref().is_some_and(|e| e.starts_with(name)),
                "{name}={bad:?}: {error:?}"
            );
        }
    }

    #[test]
    fn job_interval_vars() {
        let intervals = |pairs: &[(&str, &str)]| JobIntervals::from_vars(vars(pairs));
        assert_eq!(
            intervals(&[]),
            Ok(JobIntervals {
                default_s: 180,
                min_s: 60
            })
        );
        assert_eq!(
            intervals(&[("JOB_MIN_INTERVAL_S", "5"), ("JOB_INTERVAL_S", "20")]),
            Ok(JobIntervals {
                default_s: 20,
                min_s: 5
            })
        );
        assert_eq!(
            intervals(&[("JOB_INTERVAL_S", "60")]),
            Ok(JobIntervals {
                default_s: 60,
                min_s: 60
            })
        );
        assert_eq!(
            intervals(&[("JOB_MIN_INTERVAL_S", "86400"), ("JOB_INTERVAL_S", "86400")]),
            Ok(JobIntervals {
                default_s: 86_400,
                min_s: 86_400
            })
        );
        for (pairs, name) in [
            (&[("JOB_INTERVAL_S", "20")][..], "JOB_INTERVAL_S"),
            (&[("JOB_INTERVAL_S", "86401")][..], "JOB_INTERVAL_S"),
            (&[("JOB_INTERVAL_S", "3m")][..], "JOB_INTERVAL_S"),
            (&[("JOB_MIN_INTERVAL_S", "0")][..], "JOB_MIN_INTERVAL_S"),
            (&[("JOB_MIN_INTERVAL_S", "86401")][..], "JOB_MIN_INTERVAL_S"),
            (&[("JOB_MIN_INTERVAL_S", "-5")][..], "JOB_MIN_INTERVAL_S"),
            // The default 180 is below a raised minimum.
            (&[("JOB_MIN_INTERVAL_S", "300")][..], "JOB_INTERVAL_S"),
        ] {
            let error = intervals(pairs).err();
            assert!(
                error.as_deref().is_some_and(|e| e.starts_with(name)),
                "{pairs:?}: {error:?}"
            );
        }
    }

    /// wrangler.toml writes every v1.2 default in, and what it writes is the contract's.
    #[test]
    fn wrangler_toml_writes_the_defaults_in() {
        let toml = include_str!("../../../wrangler.toml");
        let mut in_vars = false;
        let mut written: Vec<(String, String)> = Vec::new();
        for line in toml.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                in_vars = line == "[vars]";
                continue;
            }
            let Some((name, value)) = line.split_once(" = ").filter(|_| in_vars) else {
                continue;
            };
            let value = value.trim();
            let unquoted = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')));
            if let Some(text) = unquoted {
                written.push((name.trim().to_string(), text.to_string()));
            }
        }
        let var = |name: &str| {
            written
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        for name in [
            "JOIN_PER_MINUTE",
            "JOIN_BURST",
            "JOB_INTERVAL_S",
            "JOB_MIN_INTERVAL_S",
            "PROTECTION_TIERS",
            "DEFAULT_TIMEZONE",
            "JOB_WINDOW",
            "JOB_BREAK_EVERY",
            "JOB_BREAK_S",
            "COOLDOWN_S",
            "RESTRICTED_COOLDOWN_S",
            "RESTRICTED_MARGIN_S",
            "CAP_WINDOWS_S",
            "PENALTY_S",
        ] {
            assert!(
                var(name).is_some(),
                "{name} is written in wrangler.toml's [vars]"
            );
        }
        assert_eq!(
            ProtectionConfig::from_vars(var),
            Ok(ProtectionConfig::default())
        );
        assert_eq!(
            JobIntervals::from_vars(var),
            Ok(JobIntervals {
                default_s: 180,
                min_s: 60
            })
        );
        assert_eq!(
            crate::core::limits::Limits::from_vars(var),
            Ok(crate::core::limits::Limits::default())
        );
    }
}
