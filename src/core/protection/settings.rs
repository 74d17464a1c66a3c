//! What section 13's protection is configured with: a session's `protection` record (as the
//! admin sets it and KV keeps it) and the deployment's `[vars]` (tiers, window, pacing,
//! cooldowns, look-backs). Pure: parsing and validation here, the policy in the parent
//! module. Defaults are the contract's.

use serde::{Deserialize, Serialize};

/// A daily window in local wall-clock minutes since midnight; `start < end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start_min: u16,
    pub end_min: u16,
}

/// A session's `protection` as the admin set it. `window`: absent (the `JOB_WINDOW`
/// default), `null` (no window for this session), or a window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protection {
    /// `YYYY-MM-DD`, not in the future.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_since: Option<String>,
    /// An IANA time zone name the runtime's `Intl` knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "WindowSetting::is_default")]
    pub window: WindowSetting,
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
