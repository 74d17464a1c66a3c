//! Configuration read from the Worker's environment (contract section 8).
//!
//! Vars and secrets are fixed for the life of an isolate, so they are read and checked once
//! per isolate (`settings`) instead of on every request.

use crate::core::membership::{Schedule, DEFAULT_EVENTS_PER_MINUTE, DEFAULT_TTL_S};
use std::cell::RefCell;
use std::rc::Rc;

use worker::Env;

use crate::core::backend::spec::validate_url;
use crate::core::error::ApiError;
use crate::core::jwt::{check_jwks_url, JwtConfig};
use crate::core::limits::{ClassLimit, Limits};
use crate::core::protection::settings::{JobIntervals, ProtectionConfig};

pub const DEFAULT_BACKEND_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_QUEUE_MAX: usize = 16;
pub const KV_BINDING: &str = "JOINGATE_KV";
pub const SESSIONS_BINDING: &str = "SESSIONS";
pub const ORG_LIMITER_BINDING: &str = "ORG_LIMITER";
pub const ADMIN_LIMITER_BINDING: &str = "ADMIN_LIMITER";
pub const ORGS_BINDING: &str = "ORGS";
pub const WEBHOOKS_BINDING: &str = "WEBHOOKS";

/// A string var or secret, if set and not blank. Both are plain strings on `env`: one
/// property read (worker's `Env::var` and `Env::secret` are the same typed lookup, which
/// checks the value's constructor and formats it back into a `String`).
pub fn var(env: &Env, name: &str) -> Option<String> {
    worker::js_sys::Reflect::get(env, &wasm_bindgen::JsValue::from_str(name))
        .ok()?
        .as_string()
        .filter(|v| !v.trim().is_empty())
}

/// A whole-number var from `min` to `max` (`default` when unset). One copy serves every
/// integer var: each caller's range fits its type, so the narrowing casts are exact.
#[inline(never)]
fn integer(env: &Env, name: &str, default: u64, min: u64, max: u64) -> Result<u64, ApiError> {
    match var(env, name) {
        None => Ok(default),
        Some(text) => text
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| misconfigured(name)),
    }
}

/// The one place a configuration log line is built: `{"level":"error","msg":…}` with the
/// var's name and the reason (a JSON string) when there are.
#[cold]
#[inline(never)]
fn log_invalid(msg: &str, name: Option<&str>, detail: Option<String>) {
    let line = invalid_line(msg, name, detail);
    worker::console_error!("{line}");
}

fn invalid_line(msg: &str, name: Option<&str>, detail: Option<String>) -> String {
    let mut line = format!("{{\"level\":\"error\",\"msg\":\"{msg}\"");
    if let Some(name) = name {
        line.push_str(",\"var\":\"");
        line.push_str(name);
        line.push('"');
    }
    if let Some(detail) = detail {
        line.push_str(",\"detail\":");
        line.push_str(&serde_json::Value::from(detail).to_string());
    }
    line.push('}');
    line
}

const INVALID: &str = "invalid configuration";

#[cold]
#[inline(never)]
fn misconfigured(name: &str) -> ApiError {
    log_invalid(INVALID, Some(name), None);
    ApiError::internal()
}

fn backend_timeout_ms(env: &Env) -> Result<u64, ApiError> {
    integer(
        env,
        "BACKEND_TIMEOUT_MS",
        DEFAULT_BACKEND_TIMEOUT_MS,
        1,
        600_000,
    )
}

pub fn queue_max(env: &Env) -> Result<usize, ApiError> {
    integer(env, "QUEUE_MAX", DEFAULT_QUEUE_MAX as u64, 1, 1000).map(|n| n as usize)
}

/// A configuration error whose message names the var and what it must be.
#[cold]
#[inline(never)]
fn misconfigured_because(message: String) -> ApiError {
    log_invalid(INVALID, None, Some(message));
    ApiError::internal()
}

#[inline(never)]
fn default_limits(env: &Env) -> Result<Limits, ApiError> {
    Limits::from_vars(|name| var(env, name)).map_err(misconfigured_because)
}

/// Section 13's `[vars]`; `DEFAULT_TIMEZONE` must be a zone the runtime's `Intl` knows.
#[inline(never)]
fn protection(env: &Env) -> Result<ProtectionConfig, ApiError> {
    let config =
        ProtectionConfig::from_vars(|name| var(env, name)).map_err(misconfigured_because)?;
    if !super::tz::is_known(&config.default_timezone) {
        return Err(misconfigured_because(
            "DEFAULT_TIMEZONE must be an IANA time zone name the runtime knows".into(),
        ));
    }
    Ok(config)
}

/// `SESSION_BACKEND_URL`, checked like a session's `backend.url`; `None` (and one log line
/// saying why, never the value: it may carry a password) when it is missing or fails. Only
/// the sessions of the default backend suffer (`backend_url_invalid`).
#[inline(never)]
fn backend_url(env: &Env) -> Option<String> {
    let checked = var(env, "SESSION_BACKEND_URL")
        .ok_or_else(|| "SESSION_BACKEND_URL: is not set".to_string())
        .and_then(|text| {
            validate_url(text.trim(), "SESSION_BACKEND_URL").map_err(|error| error.message)
        });
    checked
        .map_err(|why| {
            log_invalid(
                "invalid configuration; sessions of the default backend answer backend_url_invalid",
                Some("SESSION_BACKEND_URL"),
                Some(why),
            );
        })
        .ok()
}

#[inline(never)]
fn credentials_key(env: &Env) -> Result<Option<String>, ApiError> {
    match var(env, "CREDENTIALS_KEY") {
        None => Ok(None),
        Some(text) if crate::core::backend::spec::credentials_key(&text).is_some() => {
            Ok(Some(text))
        }
        Some(_) => Err(misconfigured("CREDENTIALS_KEY")),
    }
}

/// Login tokens: `None` when not set up, or when `JWT_JWKS_URL` is not `https://` (nor
/// `http://` to a loopback host); that is logged, and API keys work on.
#[inline(never)]
fn jwt_config(env: &Env) -> Result<Option<JwtConfig>, ApiError> {
    let config = JwtConfig::from_vars(|name| var(env, name)).map_err(misconfigured_because)?;
    let Some(config) = config else {
        return Ok(None);
    };
    match check_jwks_url(&config.jwks_url) {
        Ok(jwks_url) => Ok(Some(JwtConfig { jwks_url, ..config })),
        Err(why) => {
            log_invalid(INVALID, Some("JWT_JWKS_URL"), Some(why));
            Ok(None)
        }
    }
}

/// Everything a request needs from the environment, checked.
pub struct Settings {
    pub limits: Limits,
    /// `SESSION_BACKEND_URL`, checked; `None` when it is missing or invalid.
    pub backend_url: Option<String>,
    pub backend_token: Option<String>,
    pub backend_timeout_ms: u64,
    /// `CREDENTIALS_KEY` (32 bytes, base64), checked; without it no credential can be stored.
    pub credentials_key: Option<String>,
    /// Login tokens (issuer, audience, JWKS URL, claim names, roles); `None`: not set up.
    pub jwt: Option<JwtConfig>,
    /// The default pace of join jobs, seconds between items (`JOB_INTERVAL_S`).
    pub job_interval_s: u32,
    /// The least `interval_s` a join job may ask (`JOB_MIN_INTERVAL_S`).
    pub job_min_interval_s: u32,
    /// Section 13's settings: tiers, window, pacing, cooldowns, look-backs.
    pub protection: ProtectionConfig,
    /// The base of the webhook retry schedule, seconds.
    pub webhook_retry_base_s: u64,
    /// How long after its deadline an unrecorded webhook attempt is made again, seconds.
    pub webhook_stale_s: u64,
    /// The org-wide limit's default (`ORG_PER_MINUTE`, `ORG_BURST`).
    pub org_limit: ClassLimit,
    /// Section 14: when a pending request is checked (`MEMBERSHIP_CHECKS_S`), when it
    /// expires (`PENDING_TTL_S`), and the server events a session takes a minute
    /// (`EVENTS_PER_MINUTE`).
    pub membership_checks: Schedule,
    pub pending_ttl_s: u64,
    pub events_per_minute: u32,
}

thread_local! {
    static SETTINGS: RefCell<Option<Rc<Settings>>> = const { RefCell::new(None) };
}

/// The settings of this isolate; a configuration error is not cached, so a fixed deployment
/// recovers without a restart.
pub fn settings(env: &Env) -> Result<Rc<Settings>, ApiError> {
    if let Some(settings) = SETTINGS.with(|cell| cell.borrow().clone()) {
        return Ok(settings);
    }
    let intervals =
        JobIntervals::from_vars(|name| var(env, name)).map_err(misconfigured_because)?;
    let settings = Rc::new(Settings {
        limits: default_limits(env)?,
        backend_url: backend_url(env),
        backend_token: var(env, "SESSION_BACKEND_TOKEN"),
        backend_timeout_ms: backend_timeout_ms(env)?,
        credentials_key: credentials_key(env)?,
        org_limit: crate::core::limits::org_limit_from_vars(|name| var(env, name))
            .map_err(misconfigured_because)?,
        webhook_retry_base_s: integer(
            env,
            "WEBHOOK_RETRY_BASE_S",
            crate::core::webhooks::DEFAULT_RETRY_BASE_S,
            // The 7th attempt waits 3125 x base: a queue delay may be at most 12 hours.
            1,
            13,
        )?,
        webhook_stale_s: integer(
            env,
            "WEBHOOK_STALE_S",
            crate::core::webhooks::DEFAULT_STALE_S,
            1,
            86_400,
        )?,
        job_interval_s: intervals.default_s,
        job_min_interval_s: intervals.min_s,
        protection: protection(env)?,
        jwt: jwt_config(env)?,
        membership_checks: match var(env, "MEMBERSHIP_CHECKS_S") {
            None => Schedule::default(),
            Some(text) => Schedule::parse(&text).map_err(misconfigured_because)?,
        },
        pending_ttl_s: integer(env, "PENDING_TTL_S", DEFAULT_TTL_S, 1, 365 * 86_400)?,
        events_per_minute: integer(
            env,
            "EVENTS_PER_MINUTE",
            u64::from(DEFAULT_EVENTS_PER_MINUTE),
            1,
            60_000,
        )? as u32,
    });
    SETTINGS.with(|cell| *cell.borrow_mut() = Some(Rc::clone(&settings)));
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_keep_their_shape() {
        assert_eq!(
            invalid_line(INVALID, Some("QUEUE_MAX"), None),
            r#"{"level":"error","msg":"invalid configuration","var":"QUEUE_MAX"}"#
        );
        assert_eq!(
            invalid_line(INVALID, None, Some("ORG_BURST must be \"x\"".into())),
            r#"{"level":"error","msg":"invalid configuration","detail":"ORG_BURST must be \"x\""}"#
        );
        assert_eq!(
            invalid_line(INVALID, Some("JWT_JWKS_URL"), Some("not https".into())),
            r#"{"level":"error","msg":"invalid configuration","var":"JWT_JWKS_URL","detail":"not https"}"#
        );
    }
}
