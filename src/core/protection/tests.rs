//! Section 13's policy: tables for the caps, strikes and windows, and property tests with an
//! injected clock and random source for the invariants in the module's doc.

use super::settings::{Protection, ProtectionConfig, Window, WindowSetting};
use super::*;
use crate::core::time::civil_from_days as civil;
use proptest::prelude::*;

const HOUR: i64 = 3_600_000;
/// 2026-12-07T00:00:00Z.
const T0: i64 = 1_796_601_600_000;

fn declared(since: &str) -> Protection {
    Protection {
        number_since: Some(since.into()),
        ..Protection::default()
    }
}

fn config() -> ProtectionConfig {
    ProtectionConfig::default()
}

#[test]
fn dates_and_ages() {
    assert_eq!(parse_date("1970-01-01"), Some(0));
    assert_eq!(parse_date("2026-12-07"), Some(T0 / DAY_MS));
    assert_eq!(
        parse_date("2024-02-29"),
        parse_date("2024-03-01").map(|d| d - 1)
    );
    for bad in [
        "2023-02-29",
        "2026-13-01",
        "2026-00-10",
        "2026-1-01",
        "26-01-01",
        "2026-01-01T",
        "abcd-ef-gh",
        "",
    ] {
        assert_eq!(parse_date(bad), None, "{bad}");
    }
    assert_eq!(age_days(&declared("2026-11-27"), T0 + 5 * HOUR), (10, true));
    assert_eq!(age_days(&Protection::default(), T0), (0, false));
    // A date after today counts as age 0 (the admin route refuses it anyway).
    assert_eq!(age_days(&declared("2026-12-08"), T0), (0, true));
}

#[test]
fn caps_by_age_overrides_halving_and_warm_up() {
    let c = config();
    let none = Overrides::default();
    let ledger = Ledger::default();
    for (since, day, hour) in [
        ("2026-12-07", 5, 2),
        ("2026-12-04", 10, 3),
        ("2026-11-30", 20, 5),
        ("2026-11-23", 30, 8),
        ("2026-11-07", 40, 10),
        ("2020-01-01", 40, 10),
    ] {
        let caps = caps(&c, &declared(since), none, &ledger, T0);
        assert_eq!((caps.per_day, caps.per_hour), (day, hour), "{since}");
        assert!(!caps.from_session);
    }
    let old = declared("2020-01-01");
    let own = Overrides {
        per_day: Some(100),
        per_hour: None,
    };
    let caps_own = caps(&c, &old, own, &ledger, T0);
    assert_eq!(
        (caps_own.per_day, caps_own.per_hour, caps_own.from_session),
        (100, 10, true)
    );
    // A WhatsApp 429 halves the day cap for 7 days, once.
    let mut struck = Ledger::default();
    struck.strike(&c, T0);
    struck.strike(&c, T0 + HOUR);
    let halved = caps(&c, &old, none, &struck, T0 + 2 * HOUR);
    assert_eq!(halved.per_day, 20);
    assert_eq!(halved.halved_until, Some(T0 + HOUR + 7 * DAY_MS));
    assert_eq!(
        caps(&c, &old, none, &struck, T0 + HOUR + 7 * DAY_MS).per_day,
        40
    );
    // At least 1.
    let one = Overrides {
        per_day: Some(1),
        per_hour: None,
    };
    assert_eq!(caps(&c, &old, one, &struck, T0 + 2 * HOUR).per_day, 1);
    // After a restriction: the caps of age 0 for 7 days, or the session's where lower.
    let restricted = Ledger {
        restricted_until: Some(T0),
        ..Ledger::default()
    };
    let warm = caps(&c, &old, none, &restricted, T0 + DAY_MS);
    assert_eq!((warm.per_day, warm.per_hour), (5, 2));
    assert_eq!(warm.rewarm_until, Some(T0 + 7 * DAY_MS));
    assert_eq!(warm.age_days, 2533, "the declared age stays");
    let lower = Overrides {
        per_day: Some(3),
        per_hour: Some(5),
    };
    let warm_own = caps(&c, &old, lower, &restricted, T0 + DAY_MS);
    assert_eq!((warm_own.per_day, warm_own.per_hour), (3, 2));
    assert_eq!(
        caps(&c, &old, none, &restricted, T0 + 7 * DAY_MS).per_day,
        40
    );
}

#[test]
fn strikes_escalate_and_cool_down_longer() {
    let c = config();
    let mut ledger = Ledger::default();
    assert_eq!(ledger.strike(&c, T0), 1);
    assert_eq!(
        ledger.strike(&c, T0 + 23 * HOUR),
        2,
        "one in the 24 hours before"
    );
    assert_eq!(
        ledger.strike(&c, T0 + 3 * DAY_MS),
        3,
        "two in the 7 days before"
    );
    let mut spaced = Ledger::default();
    spaced.strike(&c, T0);
    assert_eq!(
        spaced.strike(&c, T0 + 25 * HOUR),
        1,
        "none in the 24 hours before, one in 7 days"
    );
    assert_eq!(strike_cooldown_ms(&c, 1, None), HOUR);
    assert_eq!(strike_cooldown_ms(&c, 2, Some(60_000)), 24 * HOUR);
    assert_eq!(strike_cooldown_ms(&c, 3, None), 72 * HOUR);
    assert_eq!(
        strike_cooldown_ms(&c, 1, Some(2 * HOUR)),
        2 * HOUR,
        "a longer Retry-After wins"
    );
    assert_eq!(
        restriction_end_ms(&c, Some(T0 + 5 * HOUR), T0),
        T0 + 6 * HOUR
    );
    assert_eq!(restriction_end_ms(&c, None, T0), T0 + 72 * HOUR);
    assert_eq!(
        restriction_end_ms(&c, Some(T0 - 1), T0),
        T0 + 72 * HOUR,
        "a past end is no end"
    );
    ledger.prune(&c, T0 + 3 * DAY_MS + 7 * DAY_MS);
    assert!(ledger.strikes.is_empty());
}

#[test]
fn the_caps_refuse_with_the_exact_wait_and_the_longest_one() {
    let c = config();
    let caps = Caps {
        age_days: 40,
        age_declared: true,
        per_day: 3,
        per_hour: 2,
        from_session: false,
        halved_until: None,
        rewarm_until: None,
    };
    let mut ledger = Ledger::default();
    ledger.count(T0);
    ledger.count(T0 + 10 * 60_000);
    assert_eq!(
        check(&c, &caps, &ledger, T0 + 20 * 60_000),
        Err((CapWindow::Hour, T0 + HOUR))
    );
    assert_eq!(
        check(&c, &caps, &ledger, T0 + HOUR - 1),
        Err((CapWindow::Hour, T0 + HOUR))
    );
    assert_eq!(check(&c, &caps, &ledger, T0 + HOUR), Ok(()));
    ledger.count(T0 + HOUR);
    // Hour: T0+10min leaves at T0+70min; day: T0 leaves at T0+24h. The longest wins.
    assert_eq!(
        check(&c, &caps, &ledger, T0 + HOUR + 1),
        Err((CapWindow::Day, T0 + DAY_MS))
    );
    ledger.uncount(T0 + HOUR);
    assert_eq!(check(&c, &caps, &ledger, T0 + HOUR + 1), Ok(()));
}

/// A zone one hour ahead of UTC that moves to two hours ahead at `switch_ms` (daylight
/// saving starting), the way `Intl` reports Europe/Berlin around the last Sunday of March.
struct Switching {
    switch_ms: i64,
}

impl Zone for Switching {
    fn offset_minutes(&self, at_ms: i64) -> i32 {
        if at_ms < self.switch_ms {
            60
        } else {
            120
        }
    }
}

#[test]
fn windows_in_a_time_zone_with_daylight_saving() {
    let window = Window {
        start_min: 8 * 60,
        end_min: 21 * 60,
    };
    let utc = FixedZone(0);
    assert_eq!(
        window_state(window, &utc, T0 + 7 * HOUR),
        WindowState::Outside {
            opens_ms: T0 + 8 * HOUR
        }
    );
    assert_eq!(
        window_state(window, &utc, T0 + 8 * HOUR),
        WindowState::Inside {
            ends_ms: T0 + 21 * HOUR
        }
    );
    assert_eq!(
        window_state(window, &utc, T0 + 21 * HOUR),
        WindowState::Outside {
            opens_ms: T0 + DAY_MS + 8 * HOUR
        }
    );
    // UTC+1: 08:00 local is 07:00 UTC.
    assert_eq!(
        window_state(window, &FixedZone(60), T0),
        WindowState::Outside {
            opens_ms: T0 + 7 * HOUR
        }
    );
    // Daylight saving starts at 01:00 UTC overnight: tomorrow's 08:00 local is 06:00 UTC.
    let berlin = Switching {
        switch_ms: T0 + DAY_MS + HOUR,
    };
    assert_eq!(
        window_state(window, &berlin, T0 + 21 * HOUR),
        WindowState::Outside {
            opens_ms: T0 + DAY_MS + 6 * HOUR
        }
    );
    // The session's setting: the default, none, or its own.
    let c = config();
    assert_eq!(super::window(&c, &Protection::default()), c.job_window);
    let off = Protection {
        window: WindowSetting::Off,
        ..Protection::default()
    };
    assert_eq!(super::window(&c, &off), None);
}

#[test]
fn pacing_breaks_and_the_spread_rule() {
    // 1x to 2x the interval.
    assert_eq!(next_item_after(180, None, None, T0, 0), T0 + 180_000);
    assert_eq!(next_item_after(180, None, None, T0, 1000), T0 + 360_000);
    // A break replaces the gap.
    assert_eq!(
        next_item_after(180, Some(900_000), None, T0, 500),
        T0 + 900_000
    );
    // 10 hours left in the window and 4 joins left: not sooner than 2.5 hours.
    assert_eq!(
        next_item_after(180, None, Some((10 * HOUR, 4)), T0, 0),
        T0 + 10 * HOUR / 4
    );
    // With no join left the spread rule adds nothing: the day cap holds the item.
    assert_eq!(
        next_item_after(180, None, Some((10 * HOUR, 0)), T0, 0),
        T0 + 180_000
    );
    let c = config();
    let (length, every) = draw_break(&c, 0);
    assert_eq!((length, every), (600_000, 3));
    let (length, every) = draw_break(&c, u32::MAX);
    assert!((600_000..=1_800_000).contains(&length) && (3..=6).contains(&every));
}

#[test]
fn a_500_item_job_on_a_40_day_old_number_takes_about_two_weeks() {
    let c = config();
    let old = declared("2026-10-28");
    let caps = caps(&c, &old, Overrides::default(), &Ledger::default(), T0);
    assert_eq!(caps.per_day, 40);
    let window = super::window(&c, &old);
    let end = estimate_end(
        &c,
        &caps,
        &Ledger::default(),
        window,
        &FixedZone(0),
        180,
        500,
        T0 + 8 * HOUR,
    );
    let days = (end - T0) as f64 / DAY_MS as f64;
    assert!((11.0..=15.0).contains(&days), "{days} days");
}

proptest! {
    /// Calls admitted only when `check` passes never put more than the caps in force into
    /// any window ending at an admission, and a refusal's wait is exact.
    #[test]
    fn no_span_exceeds_a_cap(
        steps in proptest::collection::vec((1i64..3_000_000, 0u8..10), 1..400),
        age in 0u32..60,
        own_day in proptest::option::of(1u32..60),
        own_hour in proptest::option::of(1u32..15),
    ) {
        let c = config();
        let since = T0 / DAY_MS - i64::from(age);
        let (y, m, d) = civil(since);
        let protection = declared(&format!("{y:04}-{m:02}-{d:02}"));
        let overrides = Overrides { per_day: own_day, per_hour: own_hour };
        let mut ledger = Ledger::default();
        let mut now = T0;
        let mut admitted: Vec<(i64, Caps)> = Vec::new();
        for (advance, action) in steps {
            now += advance;
            ledger.prune(&c, now);
            if action == 9 {
                ledger.strike(&c, now);
                continue;
            }
            let caps_now = caps(&c, &protection, overrides, &ledger, now);
            match check(&c, &caps_now, &ledger, now) {
                Ok(()) => {
                    ledger.count(now);
                    admitted.push((now, caps_now));
                }
                Err((_, until)) => {
                    prop_assert!(until > now);
                    prop_assert!(check(&c, &caps_now, &ledger, until).is_ok(), "passes at the wait's end");
                    prop_assert!(check(&c, &caps_now, &ledger, until - 1).is_err(), "not a millisecond before");
                }
            }
        }
        for (at, caps_then) in &admitted {
            let hour = admitted.iter().filter(|(t, _)| *t > at - HOUR && t <= at).count();
            let day = admitted.iter().filter(|(t, _)| *t > at - DAY_MS && t <= at).count();
            prop_assert!(hour <= caps_then.per_hour as usize, "{hour} in an hour, cap {}", caps_then.per_hour);
            prop_assert!(day <= caps_then.per_day as usize, "{day} in a day, cap {}", caps_then.per_day);
        }
    }

    /// Job items let through by `item_hold` are inside the window, and each next item keeps
    /// the spread rule.
    #[test]
    fn items_run_inside_the_window_and_spread(
        start_min in 0u16..1380,
        length in 30u16..600,
        offset in -720i32..840,
        randoms in proptest::collection::vec(any::<u32>(), 1..120),
    ) {
        let c = config();
        let window = Window { start_min, end_min: (start_min + length).min(1439) };
        prop_assume!(window.start_min < window.end_min);
        let zone = FixedZone(offset);
        let caps = caps(&c, &declared("2020-01-01"), Overrides::default(), &Ledger::default(), T0);
        let mut ledger = Ledger::default();
        let mut next = T0;
        for random in randoms {
            let mut now = next;
            for _ in 0..4 {
                match item_hold(&c, &caps, &ledger, Some(window), &zone, now) {
                    Some((until, _)) => { prop_assert!(until > now); now = until; }
                    None => break,
                }
            }
            if item_hold(&c, &caps, &ledger, Some(window), &zone, now).is_some() { continue; }
            let local = (now + i64::from(offset) * 60_000).rem_euclid(DAY_MS) / 60_000;
            prop_assert!((i64::from(window.start_min)..i64::from(window.end_min)).contains(&local), "ran at local minute {local}");
            ledger.count(now);
            ledger.prune(&c, now);
            let spread = spread_inputs(&c, &caps, &ledger, Some(window), &zone, now + 1000);
            next = next_item_after(60, None, spread, now + 1000, random);
            if let Some((left, joins)) = spread {
                if joins > 0 {
                    prop_assert!(next - (now + 1000) >= left.max(0) / i64::from(joins));
                }
            }
        }
    }
}
