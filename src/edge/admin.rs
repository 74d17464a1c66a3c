//! Admin routes: minting and revoking tokens, registering and removing sessions, the org
//! record and its webhook.

use std::cell::{Cell, RefCell};

use serde_json::{json, Map, Value};
use worker::{Env, Request};

use super::org;
use super::reply::Reply;
use super::worker::{dispatch, header, now_ms, read_body};
use crate::core::dispatch::{Assign, OrgAction};
use crate::core::ids::OrgId;
use crate::core::json::{expect_no_body, parse_object_body};
use crate::core::orgs::parse_org_put;
use crate::core::requests::{parse_new_token, percent_decode, session_id};
use crate::core::route::{Route, RouteId};
use crate::core::url::origin_of;
use crate::core::webhooks::{is_delivery_id, parse_endpoint};

use super::auth::{put, read, remove, session_key, token_id_key, token_key, write, Kv};
use super::config;
use super::crypto;
use crate::core::backend::spec::StoredBackend;
use crate::core::dispatch::{EventsHook, SessionRecord};
use crate::core::envelope::hex;
use crate::core::error::ApiError;
use crate::core::lists::{admin_session_view, session_metadata, token_metadata, token_view, List};
use crate::core::requests::{parse_session_config, NewToken};
use crate::core::throttle::{
    address_key, admin_throttled, admin_token_usable, Blocklist, MIN_ADMIN_TOKEN_CHARS,
};
use crate::core::token::{
    bearer, constant_time_eq, is_token_id, mint, sha256_hex, TokenRecord, RANDOM_BYTES,
};

thread_local! {
    /// Whether this isolate has said that `ADMIN_TOKEN` is too short (said once).
    static SHORT_TOKEN_LOGGED: Cell<bool> = const { Cell::new(false) };
    /// Client addresses `ADMIN_LIMITER` refused, for `BLOCK_S` seconds.
    static BLOCKED: RefCell<Blocklist> = RefCell::new(Blocklist::default());
}

/// The admin token; without one the admin API does not exist. One under 32 characters
/// counts as none, and the isolate logs once why (never the value).
pub fn admin_token(env: &Env) -> Option<String> {
    let token = config::var(env, "ADMIN_TOKEN")?;
    if admin_token_usable(&token) {
        return Some(token);
    }
    if !SHORT_TOKEN_LOGGED.with(|logged| logged.replace(true)) {
        worker::console_error!(
            "{{\"level\":\"error\",\"msg\":\"ADMIN_TOKEN is shorter than {MIN_ADMIN_TOKEN_CHARS} characters and counts as not configured: the admin routes answer not_found\"}}"
        );
    }
    None
}

/// Admin routes exist only when `ADMIN_TOKEN` is configured; otherwise they are unknown.
/// Failed comparisons are counted per client address by `ADMIN_LIMITER` (the right token
/// never is); an address it refuses gets 429 for the next minute, before any comparison.
pub async fn check_admin(
    env: &Env,
    header: Option<&str>,
    address: Option<&str>,
    now_ms: i64,
) -> Result<(), ApiError> {
    let expected = admin_token(env).ok_or_else(ApiError::not_found)?;
    let address = address_key(address);
    if BLOCKED.with(|b| b.borrow().is_blocked(&address, now_ms)) {
        return Err(admin_throttled());
    }
    if bearer(header).is_some_and(|given| constant_time_eq(given, &expected)) {
        return Ok(());
    }
    let refused = match env.rate_limiter(config::ADMIN_LIMITER_BINDING) {
        Ok(limiter) => limiter.limit(address.clone()).await.map(|o| !o.success),
        Err(error) => Err(error),
    };
    match refused {
        Ok(true) => {
            BLOCKED.with(|b| b.borrow_mut().block(&address, now_ms));
            Err(admin_throttled())
        }
        Ok(false) => Err(ApiError::unauthorized()),
        Err(_) => {
            // Without the binding the failure is still refused, only not counted.
            worker::console_error!(
                "{{\"level\":\"error\",\"msg\":\"ADMIN_LIMITER unavailable: failed admin authentications are not throttled\"}}"
            );
            Err(ApiError::unauthorized())
        }
    }
}

pub fn random_bytes<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|_| ApiError::internal())?;
    Ok(bytes)
}

pub async fn create_token(
    kv: &Kv,
    request: NewToken,
    now_ms: i64,
) -> Result<serde_json::Value, ApiError> {
    let token = mint(&random_bytes::<RANDOM_BYTES>()?);
    let token_id = format!("tok_{}", hex(&random_bytes::<8>()?));
    let hash = sha256_hex(&token);
    let record = TokenRecord {
        token_id: token_id.clone(),
        org: request.org.as_str().to_string(),
        capabilities: request.capabilities,
        sessions: request
            .sessions
            .map(|list| list.iter().map(|s| s.as_str().to_string()).collect()),
        expires_at: request.expires_at,
        revoked: false,
        label: request.label,
        created_at: now_ms / 1000,
    };
    write(kv, &token_key(&hash), &record).await?;
    write_token_index(kv, &record, &hash).await?;
    Ok(token_view(&record, Some(&token)))
}

/// `token_id:{id}`: the token's hash, and as metadata its view for `GET /v1/admin/tokens`.
async fn write_token_index(kv: &Kv, record: &TokenRecord, hash: &str) -> Result<(), ApiError> {
    let metadata = token_metadata(record);
    let text = Value::from(hash).to_string();
    put(kv, &token_id_key(&record.token_id), &text, Some(&metadata)).await
}

/// Marks the token revoked. The record stays (revoked) so that an audit can still find it;
/// revoking twice answers the same.
pub async fn revoke_token(kv: &Kv, token_id: &str) -> Result<serde_json::Value, ApiError> {
    if !is_token_id(token_id) {
        return Err(ApiError::invalid(
            "token_id",
            "must be tok_ and 16 hex digits",
        ));
    }
    let hash: String = read(kv, &token_id_key(token_id))
        .await?
        .ok_or_else(ApiError::not_found)?;
    let mut record: TokenRecord = read(kv, &token_key(&hash))
        .await?
        .ok_or_else(ApiError::not_found)?;
    if !record.revoked {
        record.revoked = true;
        write(kv, &token_key(&hash), &record).await?;
    }
    // The list's metadata follows (every time: a key written before v1.2 gains it).
    write_token_index(kv, &record, &hash).await?;
    Ok(json!({ "token_id": token_id, "revoked": true }))
}

/// The admin answer for a session record (PUT, GET and the list: `core::lists`).
pub(super) fn session_view(
    env: &Env,
    sid: &str,
    record: &SessionRecord,
) -> Result<Value, ApiError> {
    Ok(admin_session_view(
        config::settings(env)?.limits,
        sid,
        record,
    ))
}

/// A new events hook for session `sid` (section 14): the token in its URL (128 random bits,
/// kept only as its SHA-256) and the secret (kept sealed); the URL and secret in the clear
/// are answered once, by the PUT that makes them.
async fn new_events_hook(
    key: &str,
    sid: &str,
    origin: &str,
) -> Result<(EventsHook, Value), ApiError> {
    let token = hex(&random_bytes::<16>()?);
    let secret = crate::core::webhooks::new_secret(&random_bytes::<32>()?);
    let hook = EventsHook {
        token_hash: sha256_hex(&token),
        secret: crypto::seal_events_secret(key, sid, &secret).await?,
    };
    let shown = json!({ "url": format!("{origin}/v1/hooks/{sid}/{token}"), "secret": secret });
    Ok((hook, shown))
}

/// Registers (or replaces) a session. A credential is sealed with `CREDENTIALS_KEY` before
/// anything is stored; without the key it is refused.
pub async fn put_session(
    env: &Env,
    kv: &Kv,
    sid: &str,
    body: &Map<String, Value>,
    origin: &str,
    now_ms: i64,
) -> Result<Value, ApiError> {
    let config = parse_session_config(body, now_ms, &super::tz::is_known)?;
    // Section 14: `events` left out keeps the hook; a new one needs CREDENTIALS_KEY.
    let current: Option<SessionRecord> = read(kv, &session_key(sid)).await?;
    let current_hook = current.and_then(|record| record.events);
    let wants_events = config.events.unwrap_or(current_hook.is_some());
    if config.rotate_events_secret && !wants_events {
        return Err(ApiError::invalid(
            "rotate_events_secret",
            "needs the server's events on (\"events\": true)",
        ));
    }
    let events_key = config::settings(env)?.credentials_key.clone();
    let new_hook = wants_events && (current_hook.is_none() || config.rotate_events_secret);
    if new_hook && events_key.is_none() {
        return Err(ApiError::invalid(
            "events",
            "cannot be turned on: CREDENTIALS_KEY is not configured",
        ));
    }
    let backend = match config.backend {
        None => None,
        Some(input) => {
            let mut backend = StoredBackend {
                kind: input.kind,
                url: input.url.clone(),
                remote_session: input.remote_session.clone(),
                credential: None,
            };
            if let Some(secret) = &input.credential {
                let key = config::settings(env)?
                    .credentials_key
                    .clone()
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "backend.credential",
                            "cannot be stored: CREDENTIALS_KEY is not configured",
                        )
                    })?;
                // Sealed for this session and this backend (kind, url, remote session).
                backend.credential = Some(crypto::seal(&key, sid, &backend, secret).await?);
            }
            Some(backend)
        }
    };
    let (events, shown) = match (new_hook, events_key) {
        (true, Some(key)) => {
            let (hook, shown) = new_events_hook(&key, sid, origin).await?;
            (Some(hook), Some(shown))
        }
        _ => (current_hook.filter(|_| wants_events), None),
    };
    let record = SessionRecord {
        org: config.org.as_str().to_string(),
        limits: config.limits,
        backend,
        protection: config.protection,
        events,
    };
    let text = serde_json::to_string(&record).map_err(|_| ApiError::internal())?;
    put(
        kv,
        &session_key(sid),
        &text,
        Some(&session_metadata(&record)),
    )
    .await?;
    let mut view = session_view(env, sid, &record)?;
    if let Some(shown) = shown {
        view["events_hook"] = shown;
    }
    Ok(view)
}

pub async fn get_session(env: &Env, kv: &Kv, sid: &str) -> Result<Value, ApiError> {
    let record: SessionRecord = read(kv, &session_key(sid))
        .await?
        .ok_or_else(ApiError::not_found)?;
    session_view(env, sid, &record)
}

/// Removes the session from KV; the caller then wipes its Durable Object's state.
pub async fn delete_session(kv: &Kv, sid: &str) -> Result<serde_json::Value, ApiError> {
    let existing: Option<SessionRecord> = read(kv, &session_key(sid)).await?;
    existing.ok_or_else(ApiError::not_found)?;
    remove(kv, &session_key(sid)).await?;
    Ok(json!({ "session_id": sid, "deleted": true }))
}

/// The admin API's routes (contract sections 4, 6, 9, 11 and 15).
pub(super) async fn admin_route(
    route: Route,
    req: &mut Request,
    env: &Env,
    rid: &str,
) -> Result<Reply, ApiError> {
    let now = now_ms();
    check_admin(
        env,
        header(req, "Authorization").as_deref(),
        header(req, "CF-Connecting-IP").as_deref(),
        now,
    )
    .await?;
    let kv = Kv::from_env(env)?;
    let sid = || session_id(route.param("sid").unwrap_or_default());
    match route.id() {
        RouteId::CreateToken => {
            let body = read_body(req, &route).await?;
            let request = parse_new_token(
                &parse_object_body(header(req, "Content-Type").as_deref(), &body)?,
                now / 1000,
            )?;
            Ok(Reply::success(
                201,
                create_token(&kv, request, now).await?,
                rid,
            ))
        }
        RouteId::RevokeToken => Ok(Reply::success(
            200,
            revoke_token(&kv, route.param("token_id").unwrap_or_default()).await?,
            rid,
        )),
        RouteId::PutSession => {
            let sid = sid()?;
            let body = read_body(req, &route).await?;
            let map = parse_object_body(header(req, "Content-Type").as_deref(), &body)?;
            let origin = origin_of(&req.inner().url());
            let data = put_session(env, &kv, sid.as_str(), &map, &origin, now).await?;
            // The object learns its owner: another org's jobs and records end before this
            // answer (contract section 9).
            let assign = Assign {
                session: sid.to_string(),
                org: data["org"].as_str().unwrap_or_default().to_string(),
                events: data["events"] == true,
            };
            let assign = serde_json::to_string(&assign).map_err(|_| ApiError::internal())?;
            dispatch(env, sid.as_str(), "assign", None, &assign).await?;
            Ok(Reply::success(200, data, rid))
        }
        RouteId::ListAdminSessions | RouteId::ListTokens => {
            let list = match route.id() {
                RouteId::ListTokens => List::Tokens,
                _ => List::AdminSessions,
            };
            let data = super::lists::admin_list(env, list, req).await?;
            Ok(Reply::success(200, data, rid))
        }
        RouteId::GetSession => Ok(Reply::success(
            200,
            get_session(env, &kv, sid()?.as_str()).await?,
            rid,
        )),
        RouteId::PutOrg | RouteId::GetOrg => {
            let org = OrgId::parse(
                &percent_decode(route.param("org").unwrap_or_default()).unwrap_or_default(),
            )
            .map_err(|e| ApiError::invalid("org", e.0))?;
            let default = config::settings(env)?.org_limit;
            let action = if route.id() == RouteId::PutOrg {
                let body = read_body(req, &route).await?;
                let map = parse_object_body(header(req, "Content-Type").as_deref(), &body)?;
                let put = parse_org_put(&map)?;
                OrgAction::PutOrg {
                    limits: put.limits.flatten(),
                    keep_limits: put.limits.is_none(),
                    policy: put.policy.map(|p| p.view()),
                    default,
                }
            } else {
                OrgAction::GetOrg { default }
            };
            org::answer(env, org.as_str(), &action, rid).await
        }
        RouteId::PutWebhook
        | RouteId::GetWebhook
        | RouteId::DeleteWebhook
        | RouteId::ListDeliveries
        | RouteId::Redeliver => {
            let org = OrgId::parse(
                &percent_decode(route.param("org").unwrap_or_default()).unwrap_or_default(),
            )
            .map_err(|e| ApiError::invalid("org", e.0))?;
            let action = match route.id() {
                RouteId::PutWebhook => {
                    let body = read_body(req, &route).await?;
                    let map = parse_object_body(header(req, "Content-Type").as_deref(), &body)?;
                    let input = parse_endpoint(&map)?;
                    OrgAction::PutWebhook {
                        url: input.url,
                        events: input.events,
                        rotate_secret: input.rotate_secret,
                    }
                }
                RouteId::GetWebhook => OrgAction::GetWebhook,
                RouteId::DeleteWebhook => OrgAction::DeleteWebhook,
                RouteId::ListDeliveries => OrgAction::Deliveries,
                _ => {
                    // An unknown delivery id, malformed included, is not found.
                    let id = percent_decode(route.param("delivery_id").unwrap_or_default())
                        .filter(|id| is_delivery_id(id))
                        .ok_or_else(ApiError::not_found)?;
                    expect_no_body(
                        header(req, "Content-Type").as_deref(),
                        &read_body(req, &route).await?,
                    )?;
                    OrgAction::Redeliver { delivery_id: id }
                }
            };
            org::answer(env, org.as_str(), &action, rid).await
        }
        RouteId::DeleteSession => {
            let sid = sid()?;
            // The object first (its jobs, idempotency records and queue go; what protects
            // the account stays), the record after: a retry after a failure still cleans up,
            // and a DELETE that finds no record resets the object all the same.
            dispatch(env, sid.as_str(), "reset", None, "{}").await?;
            let data = delete_session(&kv, sid.as_str()).await?;
            Ok(Reply::success(200, data, rid))
        }
        _ => Err(ApiError::not_found()),
    }
}
