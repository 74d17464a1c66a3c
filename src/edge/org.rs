//! The org Durable Object: one per org. It keeps the org-wide limit's token bucket (and
//! the org's own limit), the org's webhook endpoint (its secret only here) and the
//! delivery log; records each event raised for the org under the endpoint in force at that
//! moment; and makes each delivery attempt the queue consumer asks for: signed as Standard
//! Webhooks 1.0 says, 10 s at most, redirects not followed. What an attempt's result means
//! is `core::webhooks`'. The end of the file is the Worker's side of it: `ask`, `raise`,
//! the limit's `verdict` on a call and an admin route's `answer`.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use futures_util::future::{select, Either};
use futures_util::pin_mut;
use serde_json::{json, Value};
use worker::{
    durable_object, AbortController, Date, Delay, DurableObject, Env, Headers, MessageBuilder,
    Request, Response, State,
};

use super::admin::random_bytes;
use super::config::{self, Settings};
use super::http::{self, Redirects};
use super::reply::Reply;
use super::store::{DeliveryRow, EndpointRow, OrgStore};
use crate::core::dispatch::{DeliveryTask, OrgAction};
use crate::core::envelope::hex;
use crate::core::error::{ApiError, ErrorCode};
use crate::core::limits::ClassOverride;
use crate::core::ratelimit::{retry_after_s, Bucket};
use crate::core::time::format_rfc3339;
use crate::core::webhooks::{
    after_attempt, event_body, new_secret, secret_key, signature, AttemptResult, Next,
    ATTEMPT_TIMEOUT_MS, DELIVERIES_LIMIT,
};

/// The log keeps this many deliveries (the route shows the newest 100).
const LOG_KEEP: usize = 1000;

fn now_ms() -> i64 {
    Date::now().as_millis() as i64
}

#[durable_object]
pub struct OrgObject {
    state: State,
    env: Env,
    /// The schema was ensured by this instance (once, not on every call).
    schema_ready: Cell<bool>,
    /// What every call's `Take` needs, mirrored in memory: this instance is the only
    /// writer of the org's storage, so the copy stays exact; it is read from storage once
    /// per instance and dropped whenever the webhook changes.
    live: RefCell<Option<LimitState>>,
}

/// The org limit's state as `Take` uses it.
#[derive(Clone)]
struct LimitState {
    /// The org's own limit (an override of the `[vars]` default), if any.
    over: Option<ClassOverride>,
    bucket: Option<Bucket>,
    /// The webhook's event filter (empty: no webhook), handed to each call.
    webhook_events: Value,
}

impl DurableObject for OrgObject {
    fn new(state: State, env: Env) -> Self {
        Self {
            state,
            env,
            schema_ready: Cell::new(false),
            live: RefCell::new(None),
        }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let store = OrgStore::new(self.state.storage().sql());
        if !self.schema_ready.get() {
            store.ensure_schema()?;
            self.schema_ready.set(true);
        }
        let org = req.path().trim_start_matches('/').to_string();
        let action: OrgAction = super::json_body(&mut req).await?;
        let reply = match self.act(&store, &org, action).await {
            Ok((status, data)) => Reply::success(status, data, "org"),
            Err(error) => Reply::error(&error, "org", now_ms()),
        };
        reply.into_object_response()
    }
}

/// The endpoint as answered: never the secret.
fn endpoint_view(org: &str, row: &EndpointRow) -> Value {
    let events: Value = serde_json::from_str(&row.events).unwrap_or(Value::Array(vec![]));
    json!({ "org": org, "url": row.url, "events": events })
}

fn delivery_view(row: &DeliveryRow) -> Value {
    let mut view = json!({
        "delivery_id": row.delivery_id,
        "event_type": row.event_type,
        "state": row.state,
        "attempts": row.attempts,
        "created_at": format_rfc3339(row.created_ms),
        "updated_at": format_rfc3339(row.updated_ms),
    });
    if let Some(status) = row.last_status {
        view["last_status"] = Value::from(status);
    }
    if let Some(error) = &row.last_error {
        view["last_error"] = Value::from(error.as_str());
    }
    view
}

impl OrgObject {
    async fn enqueue(
        &self,
        org: &str,
        delivery_id: &str,
        attempts: i64,
        delay_s: u32,
    ) -> worker::Result<()> {
        let task = DeliveryTask {
            org: org.to_string(),
            delivery_id: delivery_id.to_string(),
            attempts,
        };
        // The task travels as JSON text, so that only serde_json's code for it is in the
        // wasm (a typed body goes through serde-wasm-bindgen both ways).
        let body = serde_json::to_string(&task)?;
        let queue = self.env.queue(config::WEBHOOKS_BINDING)?;
        queue
            .send(MessageBuilder::new(body).delay_seconds(delay_s).build())
            .await
    }

    async fn act(
        &self,
        store: &OrgStore,
        org: &str,
        action: OrgAction,
    ) -> Result<(u16, Value), ApiError> {
        let failed = |error: worker::Error| {
            let line = json!({ "level": "error", "msg": "org object failure", "error": error.to_string() });
            worker::console_error!("{line}");
            ApiError::internal()
        };
        let now = now_ms();
        // The org limit first: it is on every client call's path, so nothing else is read.
        match &action {
            OrgAction::Take { default } => {
                let cached = self.live.borrow().clone();
                let mut live = match cached {
                    Some(live) => live,
                    None => LimitState {
                        over: store.org_limit().map_err(failed)?,
                        bucket: store.org_bucket().map_err(failed)?,
                        // The webhook's filter rides along, so that a call of an org without
                        // a webhook need not ask again to raise its events.
                        webhook_events: store
                            .endpoint()
                            .map_err(failed)?
                            .and_then(|e| serde_json::from_str::<Value>(&e.events).ok())
                            .unwrap_or_else(|| json!([])),
                    },
                };
                let limit = default.with_override(live.over);
                let bucket = live.bucket.unwrap_or_else(|| Bucket::full(limit, now));
                return Ok(match bucket.take(limit, now) {
                    Ok(spent) => {
                        store.save_org_bucket(&spent).map_err(failed)?;
                        live.bucket = Some(spent);
                        let answer =
                            json!({ "allowed": true, "webhook_events": live.webhook_events });
                        *self.live.borrow_mut() = Some(live);
                        (200, answer)
                    }
                    Err(wait_ms) => {
                        *self.live.borrow_mut() = Some(live);
                        (
                            200,
                            json!({ "allowed": false, "retry_after_s": retry_after_s(wait_ms) }),
                        )
                    }
                });
            }
            OrgAction::PutOrg { limits, default } => {
                store.save_org_limit(*limits).map_err(failed)?;
                if let Some(live) = self.live.borrow_mut().as_mut() {
                    live.over = *limits;
                }
                let limit = default.with_override(*limits);
                return Ok((200, json!({ "org": org, "limits": limit })));
            }
            OrgAction::GetOrg { default } => {
                let limit = default.with_override(store.org_limit().map_err(failed)?);
                return Ok((200, json!({ "org": org, "limits": limit })));
            }
            _ => {}
        }
        let endpoint = store.endpoint().map_err(failed)?;
        match action {
            OrgAction::Take { .. } | OrgAction::PutOrg { .. } | OrgAction::GetOrg { .. } => {
                Err(ApiError::internal())
            }
            OrgAction::PutWebhook {
                url,
                events,
                rotate_secret,
            } => {
                // The first PUT and a rotation make a new secret, shown only in this answer.
                let fresh = endpoint.is_none() || rotate_secret;
                let secret = match (&endpoint, fresh) {
                    (Some(current), false) => current.secret.clone(),
                    _ => new_secret(&random_bytes::<32>()?),
                };
                let row = EndpointRow {
                    url,
                    events: serde_json::to_string(&events).map_err(|_| ApiError::internal())?,
                    secret,
                };
                store.save_endpoint(&row).map_err(failed)?;
                self.live.borrow_mut().take();
                let mut view = endpoint_view(org, &row);
                if fresh {
                    view["secret"] = Value::from(row.secret.as_str());
                }
                Ok((200, view))
            }
            OrgAction::GetWebhook => endpoint
                .map(|row| (200, endpoint_view(org, &row)))
                .ok_or_else(ApiError::not_found),
            OrgAction::DeleteWebhook => {
                endpoint.ok_or_else(ApiError::not_found)?;
                store.delete_endpoint().map_err(failed)?;
                self.live.borrow_mut().take();
                Ok((200, json!({ "org": org, "deleted": true })))
            }
            OrgAction::Deliveries => {
                endpoint.ok_or_else(ApiError::not_found)?;
                let rows = store.deliveries(DELIVERIES_LIMIT).map_err(failed)?;
                let list: Vec<Value> = rows.iter().map(delivery_view).collect();
                Ok((200, json!({ "deliveries": list })))
            }
            OrgAction::Redeliver { delivery_id } => {
                endpoint.ok_or_else(ApiError::not_found)?;
                let mut row = store
                    .delivery(&delivery_id)
                    .map_err(failed)?
                    .ok_or_else(ApiError::not_found)?;
                // A delivery still pending has its next attempt queued already.
                if row.state != "pending" {
                    row.state = "pending".into();
                    row.round_start = row.attempts;
                    row.updated_ms = now;
                    store.save_delivery(&row).map_err(failed)?;
                    self.enqueue(org, &delivery_id, row.attempts, 0)
                        .await
                        .map_err(failed)?;
                }
                Ok((
                    202,
                    json!({ "delivery_id": delivery_id, "state": "pending" }),
                ))
            }
            OrgAction::Event { event_type, data } => {
                // Only an endpoint in force now, whose filter takes this type, gets it.
                let Some(endpoint) = endpoint.filter(|e| {
                    serde_json::from_str::<Vec<String>>(&e.events)
                        .is_ok_and(|events| events.contains(&event_type))
                }) else {
                    return Ok((200, json!({ "raised": false })));
                };
                let delivery_id = format!("msg_{}", hex(&random_bytes::<12>()?));
                let row = DeliveryRow {
                    delivery_id: delivery_id.clone(),
                    body: event_body(&event_type, &format_rfc3339(now), &data),
                    event_type,
                    url: endpoint.url,
                    secret: endpoint.secret,
                    state: "pending".into(),
                    attempts: 0,
                    round_start: 0,
                    last_status: None,
                    last_error: None,
                    created_ms: now,
                    updated_ms: now,
                };
                store.save_delivery(&row).map_err(failed)?;
                store.trim(LOG_KEEP).map_err(failed)?;
                self.enqueue(org, &delivery_id, 0, 0)
                    .await
                    .map_err(failed)?;
                Ok((200, json!({ "raised": true })))
            }
            OrgAction::Attempt {
                delivery_id,
                attempts,
            } => {
                let Some(mut row) = store.delivery(&delivery_id).map_err(failed)? else {
                    return Ok((200, json!({ "done": true })));
                };
                // Claimed before the fetch: a duplicate or stale task finds nothing to do.
                if !store
                    .claim_attempt(&delivery_id, attempts, now)
                    .map_err(failed)?
                {
                    return Ok((200, json!({ "done": true })));
                }
                row.attempts = attempts + 1;
                let result = attempt(&row, now).await;
                row.updated_ms = now_ms();
                match result {
                    AttemptResult::Status(status) => {
                        row.last_status = Some(i64::from(status));
                        row.last_error = None;
                    }
                    AttemptResult::NoAnswer => {
                        row.last_error =
                            Some("no answer within 10 s (network error or timeout)".into());
                    }
                }
                let base = config::settings(&self.env)?.webhook_retry_base_s;
                let round = u32::try_from(row.attempts - row.round_start).unwrap_or(u32::MAX);
                let next = after_attempt(result, round, base);
                row.state = match next {
                    Next::Delivered => "delivered",
                    Next::Failed => "failed",
                    Next::RetryIn(_) => "pending",
                }
                .into();
                // Only onto the row it claimed: a delete meanwhile leaves nothing to write.
                store.record_attempt(&row).map_err(failed)?;
                if let Next::RetryIn(seconds) = next {
                    let delay = u32::try_from(seconds).unwrap_or(u32::MAX);
                    self.enqueue(org, &delivery_id, row.attempts, delay)
                        .await
                        .map_err(failed)?;
                }
                Ok((200, json!({ "state": row.state })))
            }
        }
    }
}

/// One signed POST of the event, within 10 s; a redirect is an answer, not followed.
async fn attempt(row: &DeliveryRow, now_ms: i64) -> AttemptResult {
    let Some(key) = secret_key(&row.secret) else {
        return AttemptResult::NoAnswer;
    };
    let timestamp = now_ms / 1000;
    let build = || -> worker::Result<web_sys::Request> {
        let headers = Headers::new();
        headers.set("Content-Type", "application/json")?;
        headers.set("webhook-id", &row.delivery_id)?;
        headers.set("webhook-timestamp", &timestamp.to_string())?;
        headers.set(
            "webhook-signature",
            &signature(&key, &row.delivery_id, timestamp, &row.body),
        )?;
        http::outgoing(
            "POST",
            &row.url,
            &headers,
            Some(&row.body),
            Redirects::Manual,
        )
    };
    let Ok(request) = build() else {
        return AttemptResult::NoAnswer;
    };
    let controller = AbortController::default();
    let signal = controller.signal();
    let send = async {
        let response = http::fetch(&request, Some(&signal)).await?;
        // The body is read (and dropped) so the answer is complete within the deadline.
        let _ = http::bytes(&response).await;
        Ok::<_, worker::Error>(response.status())
    };
    let timer = Delay::from(Duration::from_millis(ATTEMPT_TIMEOUT_MS));
    pin_mut!(send);
    pin_mut!(timer);
    match select(send, timer).await {
        Either::Left((Ok(status), _)) => AttemptResult::Status(status),
        Either::Left((Err(_), _)) => AttemptResult::NoAnswer,
        Either::Right(_) => {
            controller.abort();
            AttemptResult::NoAnswer
        }
    }
}

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

/// Raises an event for an org; a failure is logged and never fails the call that raised it.
pub async fn raise(env: &Env, org: &str, event_type: &str, data: Value) {
    let action = OrgAction::Event {
        event_type: event_type.to_string(),
        data,
    };
    let raised = ask(env, org, &action).await;
    if !raised.is_ok_and(|answer| answer.status < 300) {
        let line = json!({ "level": "error", "msg": "event not raised", "event_type": event_type });
        worker::console_error!("{line}");
    }
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
        let webhook_events = data
            .get("webhook_events")
            .and_then(|v| serde_json::from_value(v.clone()).ok());
        Some(OrgVerdict {
            wait_s,
            webhook_events,
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
    }
}

/// What the org's object said of a call: the wait when the org-wide limit refuses it, and
/// the event types of the org's webhook (`None`: not known, the object was not reached).
pub struct OrgVerdict {
    pub wait_s: Option<u64>,
    pub webhook_events: Option<Vec<String>>,
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

/// The error an org object answered, as ours (its code and message).
fn org_error(envelope: &Value) -> ApiError {
    let code = envelope
        .pointer("/error/code")
        .and_then(Value::as_str)
        .and_then(|code| ErrorCode::ALL.into_iter().find(|c| c.as_str() == code))
        .unwrap_or(ErrorCode::InternalError);
    ApiError::new(code)
}
