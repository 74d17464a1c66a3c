//! Rate-limit settings: the contract's defaults, `[vars]` overrides and per-session overrides.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::ApiError;
use super::json::{deserialize_with, object, reject_unknown, whole_number, Fields};
use super::protection::settings::{PER_DAY_RANGE, PER_HOUR_RANGE};

/// The three classes a session route spends from (contract section 6); read back by hand
/// (its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Join,
    Manage,
    Read,
}

impl Class {
    pub const ALL: [Class; 3] = [Class::Join, Class::Manage, Class::Read];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Join => "join",
            Self::Manage => "manage",
            Self::Read => "read",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|class| class.as_str() == name)
    }

    pub fn read(value: Value) -> Option<Self> {
        Self::parse(value.as_str()?)
    }
}

impl<'de> Deserialize<'de> for Class {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_with(d, Class::read)
    }
}

pub const PER_MINUTE_RANGE: std::ops::RangeInclusive<u32> = 1..=6000;
pub const BURST_RANGE: std::ops::RangeInclusive<u32> = 1..=1000;

/// On the wire as a [`ClassOverride`] with `per_minute` and `burst` set: the same JSON
/// (`{ per_minute, burst, per_day?, per_hour? }`), and only one type's serde code in the wasm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(into = "ClassOverride")]
pub struct ClassLimit {
    pub per_minute: u32,
    pub burst: u32,
    /// `join` only (section 13): the session's own per-day cap, replacing its tier's.
    pub per_day: Option<u32>,
    /// `join` only (section 13): the session's own per-hour cap, replacing its tier's.
    pub per_hour: Option<u32>,
}

impl From<ClassLimit> for ClassOverride {
    fn from(limit: ClassLimit) -> Self {
        Self {
            per_minute: Some(limit.per_minute),
            burst: Some(limit.burst),
            per_day: limit.per_day,
            per_hour: limit.per_hour,
        }
    }
}

impl TryFrom<ClassOverride> for ClassLimit {
    type Error = &'static str;

    fn try_from(over: ClassOverride) -> Result<Self, Self::Error> {
        match (over.per_minute, over.burst) {
            (Some(per_minute), Some(burst)) => Ok(Self {
                per_minute,
                burst,
                per_day: over.per_day,
                per_hour: over.per_hour,
            }),
            _ => Err("a class limit needs per_minute and burst"),
        }
    }
}

/// On the wire as [`LimitOverrides`] with every class set: the same JSON
/// (`{ join, manage, read }`), and only one type's serde code in the wasm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(into = "LimitOverrides")]
pub struct Limits {
    pub join: ClassLimit,
    pub manage: ClassLimit,
    pub read: ClassLimit,
}

impl From<Limits> for LimitOverrides {
    fn from(limits: Limits) -> Self {
        Self {
            join: Some(limits.join.into()),
            manage: Some(limits.manage.into()),
            read: Some(limits.read.into()),
        }
    }
}

impl TryFrom<LimitOverrides> for Limits {
    type Error = &'static str;

    fn try_from(over: LimitOverrides) -> Result<Self, Self::Error> {
        let class = |over: Option<ClassOverride>| {
            over.ok_or("limits need join, manage and read")
                .and_then(ClassLimit::try_from)
        };
        Ok(Self {
            join: class(over.join)?,
            manage: class(over.manage)?,
            read: class(over.read)?,
        })
    }
}

/// What a session record may override; absent fields keep the defaults. [`ClassOverride`],
/// [`LimitOverrides`] and the two types written as them are read back by hand (`read`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ClassOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_minute: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// `join` only: 1–1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_day: Option<u32>,
    /// `join` only: 1–200.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_hour: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LimitOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<ClassOverride>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manage: Option<ClassOverride>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<ClassOverride>,
}

impl ClassOverride {
    pub fn read(value: Value) -> Option<Self> {
        let mut fields = Fields::of(value)?;
        Some(Self {
            per_minute: fields.opt_u32("per_minute")?,
            burst: fields.opt_u32("burst")?,
            per_day: fields.opt_u32("per_day")?,
            per_hour: fields.opt_u32("per_hour")?,
        })
    }
}

impl LimitOverrides {
    pub fn read(value: Value) -> Option<Self> {
        let mut fields = Fields::of(value)?;
        Some(Self {
            join: fields.opt("join", ClassOverride::read)?,
            manage: fields.opt("manage", ClassOverride::read)?,
            read: fields.opt("read", ClassOverride::read)?,
        })
    }
}

impl ClassLimit {
    pub fn read(value: Value) -> Option<Self> {
        ClassOverride::read(value)?.try_into().ok()
    }
}

impl Limits {
    pub fn read(value: Value) -> Option<Self> {
        LimitOverrides::read(value)?.try_into().ok()
    }
}

impl<'de> Deserialize<'de> for ClassOverride {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_with(d, ClassOverride::read)
    }
}

impl<'de> Deserialize<'de> for LimitOverrides {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_with(d, LimitOverrides::read)
    }
}

impl<'de> Deserialize<'de> for ClassLimit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_with(d, ClassLimit::read)
    }
}

impl<'de> Deserialize<'de> for Limits {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_with(d, Limits::read)
    }
}

impl Default for Limits {
    /// The contract's defaults (v1.2): join 1/min burst 2, manage 30/min burst 10, read
    /// 60/min burst 20; no session caps (the tiers of section 13 apply).
    fn default() -> Self {
        Self {
            join: ClassLimit::new(1, 2),
            manage: ClassLimit::new(30, 10),
            read: ClassLimit::new(60, 20),
        }
    }
}

impl Limits {
    pub fn class(&self, class: Class) -> ClassLimit {
        match class {
            Class::Join => self.join,
            Class::Manage => self.manage,
            Class::Read => self.read,
        }
    }

    fn class_mut(&mut self, class: Class) -> &mut ClassLimit {
        match class {
            Class::Join => &mut self.join,
            Class::Manage => &mut self.manage,
            Class::Read => &mut self.read,
        }
    }

    /// Defaults overridden by `[vars]` such as `JOIN_PER_MINUTE` or `READ_BURST`. A var that is
    /// set but out of range is a configuration error, named in the message.
    #[inline(never)]
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut limits = Self::default();
        for class in Class::ALL {
            let prefix = class.as_str().to_ascii_uppercase();
            let slot = limits.class_mut(class);
            for (suffix, range, target) in [
                ("PER_MINUTE", PER_MINUTE_RANGE, &mut slot.per_minute),
                ("BURST", BURST_RANGE, &mut slot.burst),
            ] {
                let name = format!("{prefix}_{suffix}");
                if let Some(text) = var(&name) {
                    *target = whole_number_in(&name, &text, range)?;
                }
            }
        }
        Ok(limits)
    }

    pub fn with_overrides(mut self, overrides: &LimitOverrides) -> Self {
        for (class, over) in [
            (Class::Join, overrides.join),
            (Class::Manage, overrides.manage),
            (Class::Read, overrides.read),
        ] {
            let slot = self.class_mut(class);
            *slot = slot.with_override(over);
        }
        self
    }
}

fn bounded(
    map: &Map<String, Value>,
    key: &str,
    field: &str,
    range: std::ops::RangeInclusive<u32>,
) -> Result<Option<u32>, ApiError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => whole_number(value)
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| range.contains(n))
            .map(Some)
            .ok_or_else(|| {
                ApiError::invalid(
                    field,
                    format!(
                        "must be a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                )
            }),
    }
}

/// One `{ "per_minute"?, "burst"? }` (and, where `caps` allows, the `join` class's
/// `"per_day"?` and `"per_hour"?`), named `prefix` in errors.
pub fn parse_class_override(
    value: &Value,
    prefix: &str,
    caps: bool,
) -> Result<ClassOverride, ApiError> {
    let inner = object(value, prefix)?;
    if !caps {
        if let Some(key) = ["per_day", "per_hour"]
            .into_iter()
            .find(|key| inner.contains_key(*key))
        {
            return Err(ApiError::invalid(
                &format!("{prefix}.{key}"),
                "is a join cap: accepted in a session's limits.join only",
            ));
        }
    }
    let known: &[&str] = if caps {
        &["per_minute", "burst", "per_day", "per_hour"]
    } else {
        &["per_minute", "burst"]
    };
    reject_unknown(inner, known, &format!("{prefix}."))?;
    let field = |key: &str| format!("{prefix}.{key}");
    Ok(ClassOverride {
        per_minute: bounded(inner, "per_minute", &field("per_minute"), PER_MINUTE_RANGE)?,
        burst: bounded(inner, "burst", &field("burst"), BURST_RANGE)?,
        per_day: bounded(inner, "per_day", &field("per_day"), PER_DAY_RANGE)?,
        per_hour: bounded(inner, "per_hour", &field("per_hour"), PER_HOUR_RANGE)?,
    })
}

impl ClassLimit {
    /// A per-minute rate and burst, no caps.
    pub const fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            per_minute,
            burst,
            per_day: None,
            per_hour: None,
        }
    }

    pub fn with_override(self, over: Option<ClassOverride>) -> Self {
        match over {
            None => self,
            Some(over) => Self {
                per_minute: over.per_minute.unwrap_or(self.per_minute),
                burst: over.burst.unwrap_or(self.burst),
                per_day: over.per_day.or(self.per_day),
                per_hour: over.per_hour.or(self.per_hour),
            },
        }
    }
}

/// The org limit's defaults (contract section 6): 100 per minute, burst 100, or `[vars]`
/// `ORG_PER_MINUTE` and `ORG_BURST`.
#[inline(never)]
pub fn org_limit_from_vars(var: impl Fn(&str) -> Option<String>) -> Result<ClassLimit, String> {
    let mut limit = ClassLimit::new(100, 100);
    // The operator's default may exceed what a per-org override may ask (load tests, one
    // org behind everything); an org's own `limits` are validated like a session's.
    for (name, range, target) in [
        ("ORG_PER_MINUTE", 1..=1_000_000, &mut limit.per_minute),
        ("ORG_BURST", 1..=1_000_000, &mut limit.burst),
    ] {
        if let Some(text) = var(name) {
            *target = whole_number_in(name, &text, range)?;
        }
    }
    Ok(limit)
}

/// A `[vars]` value that must be a whole number within `range`, or why it is not.
fn whole_number_in(
    name: &str,
    text: &str,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, String> {
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| format!("{name} must be a whole number in {range:?}"))
}

/// The body of `PUT /v1/admin/orgs/{org}`: `{ "limits"?: { "per_minute"?, "burst"? } }`.
pub fn parse_org_body(body: &Map<String, Value>) -> Result<Option<ClassOverride>, ApiError> {
    reject_unknown(body, &["limits"], "")?;
    match body.get("limits").filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(value) => parse_class_override(value, "limits", false).map(Some),
    }
}

/// Parses the `limits` object of `PUT /v1/admin/sessions/{sid}`.
pub fn parse_overrides(value: &Value) -> Result<LimitOverrides, ApiError> {
    let map = object(value, "limits")?;
    reject_unknown(map, &["join", "manage", "read"], "limits.")?;
    let mut overrides = LimitOverrides::default();
    for class in Class::ALL {
        let key = class.as_str();
        let Some(inner) = map.get(key).filter(|v| !v.is_null()) else {
            continue;
        };
        let over = parse_class_override(inner, &format!("limits.{key}"), class == Class::Join)?;
        match class {
            Class::Join => overrides.join = Some(over),
            Class::Manage => overrides.manage = Some(over),
            Class::Read => overrides.read = Some(over),
        }
    }
    Ok(overrides)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_are_the_contracts() {
        let limits = Limits::default();
        assert_eq!(
            limits.join,
            ClassLimit::new(1, 2),
            "v1.2: 1 per minute, burst 2"
        );
        assert_eq!(limits.manage, ClassLimit::new(30, 10));
        assert_eq!(limits.read, ClassLimit::new(60, 20));
        assert_eq!((limits.join.per_day, limits.join.per_hour), (None, None));
    }

    #[test]
    fn vars_override_defaults_and_are_checked() {
        let vars = |name: &str| match name {
            "JOIN_BURST" => Some("8".to_string()),
            "READ_PER_MINUTE" => Some(" 120 ".to_string()),
            _ => None,
        };
        let limits = Limits::from_vars(vars);
        assert_eq!(
            limits.map(|l| (l.join.burst, l.join.per_minute, l.read.per_minute)),
            Ok((8, 1, 120))
        );
        let bad = Limits::from_vars(|name| (name == "MANAGE_BURST").then(|| "0".to_string()));
        assert!(bad.err().is_some_and(|e| e.contains("MANAGE_BURST")));
    }

    #[test]
    fn the_org_default_comes_from_vars_and_may_exceed_a_sessions_range() {
        assert_eq!(org_limit_from_vars(|_| None), Ok(ClassLimit::new(100, 100)));
        let big = org_limit_from_vars(|name| match name {
            "ORG_PER_MINUTE" => Some("1000000".to_string()),
            "ORG_BURST" => Some(" 7 ".to_string()),
            _ => None,
        });
        assert_eq!(big, Ok(ClassLimit::new(1_000_000, 7)));
        for bad in ["0", "1000001", "ten", "-1", ""] {
            let refused = org_limit_from_vars(|name| (name == "ORG_BURST").then(|| bad.into()));
            assert!(
                refused.err().is_some_and(|e| e.contains("ORG_BURST")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn partial_overrides_keep_the_rest() {
        let overrides = parse_overrides(&json!({ "join": { "burst": 2.0 }, "read": null }));
        let limits = overrides.map(|o| Limits::default().with_overrides(&o));
        assert_eq!(limits.map(|l| l.join), Ok(ClassLimit::new(1, 2)));
        let overrides = parse_overrides(&json!({ "join": { "per_minute": 3 } }));
        let limits = overrides.map(|o| Limits::default().with_overrides(&o));
        assert_eq!(limits.map(|l| l.join), Ok(ClassLimit::new(3, 2)));
    }

    #[test]
    fn join_caps_are_kept_and_shown_only_when_set() {
        let overrides = parse_overrides(&json!({ "join": { "per_day": 12, "per_hour": 3.0 } }));
        let limits = overrides.map(|o| Limits::default().with_overrides(&o));
        let join = limits.map(|l| l.join);
        assert_eq!(
            join,
            Ok(ClassLimit {
                per_day: Some(12),
                per_hour: Some(3),
                ..ClassLimit::new(1, 2)
            })
        );
        assert_eq!(
            join.map(|j| serde_json::to_value(j).ok()),
            Ok(Some(
                json!({ "per_minute": 1, "burst": 2, "per_day": 12, "per_hour": 3 })
            ))
        );
        // One of the two set: only it is shown.
        let day_only = parse_overrides(&json!({ "join": { "per_day": 1000 } }))
            .map(|o| Limits::default().with_overrides(&o));
        assert_eq!(
            day_only.map(|l| serde_json::to_value(l).ok()),
            Ok(Some(json!({
                "join": { "per_minute": 1, "burst": 2, "per_day": 1000 },
                "manage": { "per_minute": 30, "burst": 10 },
                "read": { "per_minute": 60, "burst": 20 },
            })))
        );
        // Kept in the record without the unset ones, and read back the same.
        let stored = parse_overrides(&json!({ "join": { "per_hour": 200 } }));
        let text = stored
            .as_ref()
            .ok()
            .and_then(|o| serde_json::to_string(o).ok());
        assert_eq!(text.as_deref(), Some(r#"{"join":{"per_hour":200}}"#));
        let back: Option<LimitOverrides> = text.and_then(|t| serde_json::from_str(&t).ok());
        assert_eq!(back, stored.ok());
        // A session call of an older Worker (no caps in its limits) still reads.
        let old: Result<ClassLimit, _> = serde_json::from_str(r#"{"per_minute":4,"burst":4}"#);
        assert_eq!(old.ok(), Some(ClassLimit::new(4, 4)));
        let limits = Limits::default();
        let text = serde_json::to_string(&limits).unwrap_or_default();
        assert_eq!(serde_json::from_str::<Limits>(&text).ok(), Some(limits));
        let nulls = r#"{"join":null,"manage":{"burst":null,"per_day":3}}"#;
        let over = LimitOverrides {
            manage: Some(ClassOverride {
                per_day: Some(3),
                ..ClassOverride::default()
            }),
            ..LimitOverrides::default()
        };
        assert_eq!(
            serde_json::from_str::<LimitOverrides>(nulls).ok(),
            Some(over)
        );
        for broken in [r#"{"per_minute":4}"#, r#"{"per_minute":-4,"burst":4}"#] {
            assert!(
                serde_json::from_str::<ClassLimit>(broken).is_err(),
                "{broken}"
            );
        }
        for broken in [
            r#"{"join":{"per_minute":4.5}}"#,
            // The derive also took a struct as an array; joingate never wrote one.
            r#"{"read":[]}"#,
            r#"{"manage":{"per_hour":4294967296}}"#,
        ] {
            assert!(
                serde_json::from_str::<LimitOverrides>(broken).is_err(),
                "{broken}"
            );
        }
        let partial = r#"{"join":{"per_minute":1,"burst":2},"manage":{"per_minute":1,"burst":2}}"#;
        assert!(serde_json::from_str::<Limits>(partial).is_err());
        assert_eq!(
            serde_json::from_str::<Vec<Class>>(r#"["join","manage","read"]"#).ok(),
            Some(Class::ALL.to_vec())
        );
        assert!(serde_json::from_str::<Class>(r#""Join""#).is_err());
    }

    #[test]
    fn bad_overrides_name_the_field() {
        for (body, field) in [
            (json!([]), "limits"),
            (json!({ "joins": {} }), "limits.joins"),
            (json!({ "join": 3 }), "limits.join"),
            (json!({ "join": { "burst": 0 } }), "limits.join.burst"),
            (
                json!({ "manage": { "per_minute": 6001 } }),
                "limits.manage.per_minute",
            ),
            (
                json!({ "read": { "per_minute": 1.5 } }),
                "limits.read.per_minute",
            ),
            (
                json!({ "read": { "per_minute": "5" } }),
                "limits.read.per_minute",
            ),
            (json!({ "read": { "rate": 5 } }), "limits.read.rate"),
            (json!({ "join": { "per_day": 0 } }), "limits.join.per_day"),
            (
                json!({ "join": { "per_day": 1001 } }),
                "limits.join.per_day",
            ),
            (json!({ "join": { "per_day": 2.5 } }), "limits.join.per_day"),
            (json!({ "join": { "per_day": "5" } }), "limits.join.per_day"),
            (json!({ "join": { "per_hour": 0 } }), "limits.join.per_hour"),
            (
                json!({ "join": { "per_hour": 201 } }),
                "limits.join.per_hour",
            ),
            (
                json!({ "join": { "per_hour": -1 } }),
                "limits.join.per_hour",
            ),
            (json!({ "read": { "per_day": 5 } }), "limits.read.per_day"),
            (
                json!({ "manage": { "per_hour": 5 } }),
                "limits.manage.per_hour",
            ),
            (
                json!({ "manage": { "per_hour": null } }),
                "limits.manage.per_hour",
            ),
        ] {
            let error = parse_overrides(&body).err();
            assert_eq!(
                error.and_then(|e| e.details.get("field").cloned()),
                Some(json!(field)),
                "{body}"
            );
        }
        for (body, ok) in [
            (json!({ "join": { "per_day": 1, "per_hour": 1 } }), true),
            (
                json!({ "join": { "per_day": 1000, "per_hour": 200 } }),
                true,
            ),
            (json!({ "join": { "per_day": null } }), true),
        ] {
            assert_eq!(parse_overrides(&body).is_ok(), ok, "{body}");
        }
    }

    #[test]
    fn the_org_body_takes_no_join_caps() {
        for (body, field) in [
            (json!({ "limits": { "per_day": 5 } }), "limits.per_day"),
            (json!({ "limits": { "per_hour": 5 } }), "limits.per_hour"),
            (json!({ "limits": { "rate": 5 } }), "limits.rate"),
        ] {
            let map = body.as_object().cloned().unwrap_or_default();
            assert_eq!(
                parse_org_body(&map)
                    .err()
                    .and_then(|e| e.details.get("field").cloned()),
                Some(json!(field)),
                "{body}"
            );
        }
        let map = json!({ "limits": { "per_minute": 5 } })
            .as_object()
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            parse_org_body(&map),
            Ok(Some(ClassOverride {
                per_minute: Some(5),
                ..ClassOverride::default()
            }))
        );
    }

    #[test]
    fn limits_travel_as_before() {
        let mut limits = Limits::default();
        limits.join.per_day = Some(7);
        let wire = serde_json::to_value(limits).ok();
        assert_eq!(
            wire,
            Some(json!({
                "join": { "per_minute": 1, "burst": 2, "per_day": 7 },
                "manage": { "per_minute": 30, "burst": 10 },
                "read": { "per_minute": 60, "burst": 20 },
            }))
        );
        let back = wire.and_then(|w| serde_json::from_value::<Limits>(w).ok());
        assert_eq!(back, Some(limits));
        let with_nulls = json!({ "per_minute": 3, "burst": 4, "per_day": null });
        assert_eq!(
            serde_json::from_value::<ClassLimit>(with_nulls).ok(),
            Some(ClassLimit::new(3, 4))
        );
        for partial in [
            json!({ "per_minute": 3 }),
            json!({ "burst": 3 }),
            json!({ "join": { "per_minute": 1, "burst": 2 } }),
        ] {
            assert!(serde_json::from_value::<ClassLimit>(partial.clone()).is_err());
            assert!(serde_json::from_value::<Limits>(partial).is_err());
        }
    }
}
