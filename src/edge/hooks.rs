//! `POST /v1/hooks/{sid}/{hook_token}` (contract section 14): where a session's server sends
//! its events. The Worker's part is the token; the session's object does the rest.

use worker::{Env, Request};

use super::auth::{load_session, Kv};
use super::config;
use super::http;
use super::reply::Reply;
use super::worker::{ask_object, object_failed};
use crate::core::backend::Kind;
use crate::core::dispatch::{EventsHead, EVENTS_HEADER};
use crate::core::error::ApiError;
use crate::core::requests::session_id;
use crate::core::route::Route;
use crate::core::token::{constant_time_eq, sha256_hex};

/// `POST /v1/hooks/{sid}/{hook_token}`: a session server's events (contract section 14).
/// The token in the path is the credential: an unknown or malformed sid or token is one
/// `not_found`. The object makes the other checks in the contract's order (the session's
/// event rate, the 64 KiB body, the signature, the kind's event), so the body is passed on
/// unread. No client token and no org limit is involved.
pub async fn hook_route(
    route: Route,
    req: &mut Request,
    env: &Env,
    rid: &str,
) -> Result<Reply, ApiError> {
    let sid =
        session_id(route.param("sid").unwrap_or_default()).map_err(|_| ApiError::not_found())?;
    let token = route.param("hook_token").unwrap_or_default();
    let kv = Kv::from_env(env)?;
    let record = match token.len() {
        16..=128 => load_session(&kv, sid.as_str()).await?,
        _ => None,
    };
    let (record, hook) = record
        .and_then(|record| {
            let hook = record.events.clone()?;
            constant_time_eq(&hook.token_hash, &sha256_hex(token)).then_some((record, hook))
        })
        .ok_or_else(ApiError::not_found)?;
    let key = config::settings(env)?
        .credentials_key
        .clone()
        .ok_or_else(ApiError::internal)?;
    let head = EventsHead {
        session: sid.to_string(),
        org: record.org,
        kind: record.backend.as_ref().map_or(Kind::Joingate, |b| b.kind),
        secret: super::crypto::open_events_secret(&key, sid.as_str(), &hook.secret).await?,
    };
    // The server's headers (its signature among them) go with the body; not its length,
    // which the object meets by reading at most the limit.
    let headers = worker::Headers::new();
    for (name, value) in req.headers().entries() {
        if name != "content-length" && name != "host" {
            headers.append(&name, &value).map_err(object_failed)?;
        }
    }
    let head = serde_json::to_string(&head).map_err(|_| ApiError::internal())?;
    headers.set(EVENTS_HEADER, &head).map_err(object_failed)?;
    headers.set("X-Request-Id", rid).map_err(object_failed)?;
    let request = http::outgoing_stream("https://session/events", &headers, req.inner().body())
        .map_err(object_failed)?;
    ask_object(env, sid.as_str(), &request).await
}
