//! The Worker's side of the org objects: asking one, raising an event, the org-wide
//! limit's verdict on a call, and an admin route's answer.

use serde_json::{json, Value};
use worker::{Env, Headers};

use super::super::config::{self, Settings};
use super::super::http::{self, Redirects};
use super::super::reply::Reply;
use crate::core::book::{from_event, Update};
use crate::core::dispatch::OrgAction;
use crate::core::error::{ApiError, ErrorCode};
use crate::core::policy::{refused, PolicyMode, Rule};

/// Sends an action to an org's object and returns its answer.
pub async fn ask(env: &Env, org: &str, action: &OrgAction) -> Result<Reply, ApiError> {
    let failed = |error: worker::Error| {
        let line = json!({ "level": "error", "msg": "org object call failed", "error": error.to_string() });
        worker::console_error!("{line}");
        ApiError::internal()
    };
    let stub = env
        .durable_object(config::ORGS_BINDING)
        .and_then(|ns| ns.id_from_name(org)?.get_stub())
        .map_err(failed)?;
    let body = serde_json::to_string(action).map_err(|_| ApiError::internal())?;
    let headers = Headers::new();
    headers
        .set("Content-Type", "application/json")
        .map_err(failed)?;
    let url = format!("https://org/{org}");
    let request =
        http::outgoing("POST", &url, &headers, Some(&body), Redirects::Follow).map_err(failed)?;
    let response = http::fetch_object(stub, &request).await.map_err(failed)?;
    let text = http::text(&response).await.map_err(failed)?;
    Ok(Reply::json(response.status(), text))
}

/// Raises an event for an org, with what it tells the org's group book (section 15); a
/// failure is logged and never fails the call that raised it.
pub async fn raise(env: &Env, org: &str, event_type: &str, data: Value) {
    let book = from_event(event_type, &data, worker::Date::now().as_millis() as i64);
    raise_with(env, org, event_type, data, book).await;
}

/// Raises an event with the book's fact given (a join's, with its code and subject).
pub async fn raise_with(env: &Env, org: &str, event_type: &str, data: Value, book: Option<Update>) {
    let action = OrgAction::Event {
        event_type: event_type.to_string(),
        data,
        book,
    };
    let raised = ask(env, org, &action).await;
    if !raised.is_ok_and(|answer| answer.status < 300) {
        let line = json!({ "level": "error", "msg": "event not raised", "event_type": event_type });
        worker::console_error!("{line}");
    }
}

/// Hands facts to the org's group book; a failure is logged (the book misses them).
pub async fn book(env: &Env, org: &str, updates: Vec<Update>) {
    if updates.is_empty() {
        return;
    }
    let done = ask(env, org, &OrgAction::Book { updates }).await;
    if !done.is_ok_and(|answer| answer.status < 300) {
        let line = json!({ "level": "error", "msg": "group book not updated" });
        worker::console_error!("{line}");
    }
}

/// The data of an org object's success answer.
async fn data_of(env: &Env, org: &str, action: &OrgAction) -> Result<Value, ApiError> {
    let answer = ask(env, org, action).await?;
    let mut envelope: Value =
        serde_json::from_str(&answer.body).map_err(|_| ApiError::internal())?;
    match envelope.get_mut("data") {
        Some(data) if answer.status < 300 => Ok(data.take()),
        _ => Err(org_error(&envelope)),
    }
}

/// What the org's join policy asks of every join (section 15). Unknown is an error: a join
/// that needs the policy is never sent without it.
pub async fn policy_mode(env: &Env, org: &str) -> Result<PolicyMode, ApiError> {
    let data = data_of(env, org, &OrgAction::PolicyMode).await?;
    PolicyMode::read(&data).ok_or_else(ApiError::internal)
}

/// The org's policy on a group: `Err(join_refused_by_policy)` when it refuses it.
pub async fn judge(env: &Env, org: &str, facts: Value) -> Result<(), ApiError> {
    let data = data_of(env, org, &OrgAction::Judge { data: facts }).await?;
    match data["allowed"].as_bool() {
        Some(true) => Ok(()),
        Some(false) => Err(refused(
            Rule::parse(data["rule"].as_str().unwrap_or_default())
                .ok_or_else(ApiError::internal)?,
        )),
        None => Err(ApiError::internal()),
    }
}

/// An org object's data for a route (the book's routes, a recovery's items).
pub async fn ask_data(env: &Env, org: &str, action: &OrgAction) -> Result<Value, ApiError> {
    data_of(env, org, action).await
}

/// The org-wide limit's verdict on this call: `None` to let it through, or the seconds
/// until the org has room. The limit is the org's token bucket in its own Durable Object,
/// one place for the whole network. Should that object fail, the per-location rate limiting
/// binding decides instead (a flood guard, not the limit), and the failure is logged.
pub async fn verdict(env: &Env, settings: &Settings, org: &str) -> OrgVerdict {
    let take = OrgAction::Take {
        default: settings.org_limit,
    };
    let verdict = ask(env, org, &take).await.ok().and_then(|answer| {
        let envelope: Value = serde_json::from_str(&answer.body).ok()?;
        let data = envelope.get("data")?;
        let wait_s = match data.get("allowed")?.as_bool()? {
            true => None,
            false => Some(data.get("retry_after_s")?.as_u64()?),
        };
        // Read by hand: serde_json's reader of parsed values would be in the wasm for this alone.
        let webhook_events = data
            .get("webhook_events")
            .and_then(Value::as_array)
            .and_then(|list| list.iter().map(|e| e.as_str().map(str::to_owned)).collect());
        let policy = data.get("policy").and_then(PolicyMode::read);
        Some(OrgVerdict {
            wait_s,
            webhook_events,
            policy,
        })
    });
    if let Some(verdict) = verdict {
        return verdict;
    }
    worker::console_error!(
        "{{\"level\":\"error\",\"msg\":\"org limit unavailable; the per-location guard decides\"}}"
    );
    let outcome = match env.rate_limiter(config::ORG_LIMITER_BINDING) {
        Ok(limiter) => limiter.limit(org.to_string()).await,
        Err(error) => Err(error),
    };
    OrgVerdict {
        wait_s: match outcome {
            Ok(outcome) if !outcome.success => Some(60),
            _ => None,
        },
        webhook_events: None,
        policy: None,
    }
}

/// What the org's object said of a call: the wait when the org-wide limit refuses it, and
/// the event types of the org's webhook (`None`: not known, the object was not reached).
pub struct OrgVerdict {
    pub wait_s: Option<u64>,
    pub webhook_events: Option<Vec<String>>,
    /// What the org's join policy asks (`None`: not known; the session's object asks).
    pub policy: Option<PolicyMode>,
}

/// An org object's answer, in the envelope under this request's id.
pub async fn answer(
    env: &Env,
    org: &str,
    action: &OrgAction,
    rid: &str,
) -> Result<Reply, ApiError> {
    let answer = ask(env, org, action).await?;
    let envelope: Value = serde_json::from_str(&answer.body).map_err(|_| ApiError::internal())?;
    match envelope.get("data") {
        Some(data) if envelope["success"] == Value::Bool(true) => {
            Ok(Reply::success(answer.status, data.clone(), rid))
        }
        _ => Err(org_error(&envelope)),
    }
}

/// The error an org object answered, as ours (its code, message and details).
fn org_error(envelope: &Value) -> ApiError {
    let code = envelope
        .pointer("/error/code")
        .and_then(Value::as_str)
        .and_then(|code| ErrorCode::ALL.into_iter().find(|c| c.as_str() == code))
        .unwrap_or(ErrorCode::InternalError);
    let mut error = ApiError::new(code);
    if let Some(message) = envelope.pointer("/error/message").and_then(Value::as_str) {
        error.message = message.to_string();
    }
    if let Some(details) = envelope
        .pointer("/error/details")
        .and_then(Value::as_object)
    {
        error.details = details.clone();
    }
    error
}
