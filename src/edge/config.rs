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

/// A string var or secret, if set and not blank.
pub fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .map(|v| v.to_string())
        .or_else(|_| env.secret(name).map(|s| s.to_string()))
        .ok()
        .filter(|v| !v.trim().is_empty())
}

fn number<T: std::str::FromStr>(
    env: &Env,
    name: &str,
    default: T,
    valid: impl Fn(&T) -> bool,
) -> Result<T, ApiError> {
    match var(env, name) {
        None => Ok(default),
        Some(text) => text
            .trim()
            .parse::<T>()
            .ok()
            .filter(valid)
            .ok_or_else(|| misconfigured(name)),
    }
}

fn misconfigured(name: &str) -> ApiError {
    worker::console_error!(
        "{{\"level\":\"error\",\"msg\":\"invalid configuration\",\"var\":\"{name}\"}}"
    );
    ApiError::internal()
}

fn backend_timeout_ms(env: &Env) -> Result<u64, ApiError> {
    number(
        env,
        "BACKEND_TIMEOUT_MS",
        DEFAULT_BACKEND_TIMEOUT_MS,
        |ms| (1..=600_000).contains(ms),
    )
}

pub fn queue_max(env: &Env) -> Result<usize, ApiError> {
    number(env, "QUEUE_MAX", DEFAULT_QUEUE_MAX, |n| {
        (1..=1000).contains(n)
    })
}

/// A configuration error whose message names the var and what it must be.
fn misconfigured_because(message: String) -> ApiError {
    worker::console_error!(
        "{{\"level\":\"error\",\"msg\":\"invalid configuration\",\"detail\":{}}}",
        serde_json::Value::from(message)
    );
    ApiError::internal()
}

fn default_limits(env: &Env) -> Result<Limits, ApiError> {
    Limits::from_vars(|name| var(env, name)).map_err(misconfigured_because)
}

/// Section 13's `[vars]`; `DEFAULT_TIMEZONE` must be a zone the runtime's `Intl` knows.
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
fn backend_url(env: &Env) -> Option<String> {
    let checked = var(env, "SESSION_BACKEND_URL")
        .ok_or_else(|| "SESSION_BACKEND_URL: is not set".to_string())
        .and_then(|text| {
            validate_url(text.trim(), "SESSION_BACKEND_URL").map_err(|error| error.message)
        });
    checked
        .map_err(|why| {
            worker::console_error!(
                "{{\"level\":\"error\",\"msg\":\"invalid configuration; sessions of the default backend answer backend_url_invalid\",\"var\":\"SESSION_BACKEND_URL\",\"detail\":{}}}",
                serde_json::Value::from(why)
            );
        })
        .ok()
}

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
fn jwt_config(env: &Env) -> Result<Option<JwtConfig>, ApiError> {
    let config = JwtConfig::from_vars(|name| var(env, name)).map_err(|message| {
        worker::console_error!(
            "{{\"level\":\"error\",\"msg\":\"invalid configuration\",\"detail\":{}}}",
            serde_json::Value::from(message)
        );
        ApiError::internal()
    })?;
    let Some(config) = config else {
        return Ok(None);
    };
    match check_jwks_url(&config.jwks_url) {
        Ok(jwks_url) => Ok(Some(JwtConfig { jwks_url, ..config })),
        Err(why) => {
            worker::console_error!(
                "{{\"level\":\"error\",\"msg\":\"invalid configuration\",\"var\":\"JWT_JWKS_URL\",\"detail\":{}}}",
                serde_json::Value::from(why)
            );
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
        org_limit: crate::core::limits::org_limit_from_vars(|name| var(env, name)).map_err(
            |message| {
                worker::console_error!(
                    "{{\"level\":\"error\",\"msg\":\"invalid configuration\",\"detail\":{}}}",
                    serde_json::Value::from(message)
                );
                ApiError::internal()
            },
        )?,
        webhook_retry_base_s: number(
            env,
            "WEBHOOK_RETRY_BASE_S",
            crate::core::webhooks::DEFAULT_RETRY_BASE_S,
            // The 7th attempt waits 3125 x base: a queue delay may be at most 12 hours.
            |s| (1..=13).contains(s),
        )?,
        webhook_stale_s: number(
            env,
            "WEBHOOK_STALE_S",
            crate::core::webhooks::DEFAULT_STALE_S,
            |s| (1..=86_400).contains(s),
        )?,
        job_interval_s: intervals.default_s,
        job_min_interval_s: intervals.min_s,
        protection: protection(env)?,
        jwt: jwt_config(env)?,
        membership_checks: match var(env, "MEMBERSHIP_CHECKS_S") {
            None => Schedule::default(),
            Some(text) => Schedule::parse(&text).map_err(misconfigured_because)?,
        },
        pending_ttl_s: number(env, "PENDING_TTL_S", DEFAULT_TTL_S, |s| {
            (1..=365 * 86_400).contains(s)
        })?,
        events_per_minute: number(env, "EVENTS_PER_MINUTE", DEFAULT_EVENTS_PER_MINUTE, |n| {
            (1..=60_000).contains(n)
        })?,
    });
    SETTINGS.with(|cell| *cell.borrow_mut() = Some(Rc::clone(&settings)));
    Ok(settings)
}
