//! The Worker's fetch handler: route, token, body, then hand the call to the session's
//! Durable Object (contract section 1's check order), and one log line per request.

use serde_json::{json, Value};
use worker::{event, Context, Date, Env, Request};

use futures_util::future::join;

use super::admin;
use super::auth::{authenticate, load_session, may_authenticate, Kv};
use super::config;
use super::http::{self, Redirects};
use super::org;
use super::reply::Reply;
use crate::core::backend::{supports, Kind, Op};
use crate::core::dispatch::{DeliveryTask, OrgAction};
use crate::core::policy::PolicyMode;
use std::rc::Rc;
use worker::{MessageBatch, MessageExt};

use super::config::Settings;
use crate::core::dispatch::{
    CallPayload, IdempotencyRef, JobAction, JobCall, SessionCall, SessionRecord,
    BACKEND_LATENCY_HEADER, CALL_HEADER,
};
use crate::core::envelope::{accept_request_id, hex};
use crate::core::error::{ApiError, ErrorCode};
use crate::core::idempotency::{fingerprint, validate_key};
use crate::core::ids::{GroupJid, SessionId};
use crate::core::jobs::{is_job_id, parse_submit, SubmitItem};
use crate::core::json::{expect_no_body, parse_object_body};
use crate::core::requests::{
    group_jid, invite_from_path, parse_join_body, parse_participants, percent_decode, session_id,
};
use crate::core::route::{is_admin_path, resolve, Access, Method, Route, RouteId};
use crate::core::token::{Capability, TokenRecord};
use crate::core::url::path_of;

/// The OpenAPI document, served as it is at `GET /v1/openapi.json`. The entry module
/// (`js/entry.mjs`) bundles `docs/openapi.json` as text and hands it over in a global, so the
/// 70 KB document stays out of the wasm and its size budget.
fn openapi_document() -> Result<String, ApiError> {
    worker::js_sys::Reflect::get(
        &worker::js_sys::global(),
        &wasm_bindgen::JsValue::from_str("__joingate_openapi"),
    )
    .ok()
    .and_then(|v| v.as_string())
    .ok_or_else(ApiError::internal)
}

pub(super) fn now_ms() -> i64 {
    Date::now().as_millis() as i64
}

fn new_request_id() -> String {
    match admin::random_bytes::<16>() {
        Ok(bytes) => hex(&bytes),
        Err(_) => format!("t{}", now_ms()),
    }
}

/// What the log line tells about a request besides its outcome.
#[derive(Default)]
struct Trace {
    session: Option<String>,
    token_id: Option<String>,
}

#[event(fetch)]
pub async fn fetch(mut req: Request, env: Env, _ctx: Context) -> worker::Result<web_sys::Response> {
    let started = now_ms();
    let given_id = req.headers().get("X-Request-Id").ok().flatten();
    let request_id =
        accept_request_id(given_id.as_deref()).map_or_else(new_request_id, str::to_owned);
    // From the raw request: the worker crate reads methods it does not know as GET.
    let method = Method::parse(&req.inner().method());
    // From the raw URL: the worker crate's `path()` would parse it with the `url` crate.
    let href = req.inner().url();
    let path = path_of(&href);
    let mut trace = Trace::default();
    let resolved = resolve(method, path).map_err(|error| {
        // Without ADMIN_TOKEN the admin API does not exist: no 405 may reveal its paths.
        if is_admin_path(path) && admin::admin_token(&env).is_none() {
            ApiError::not_found()
        } else {
            error
        }
    });
    let template = resolved.as_ref().map_or("unmatched", Route::template);
    let outcome = match resolved {
        Ok(route) => handle(route, &mut req, &env, &request_id, &mut trace).await,
        Err(error) => Err(error),
    };
    let reply = outcome.unwrap_or_else(|error| Reply::error(&error, &request_id, now_ms()));
    log(
        &request_id,
        method,
        template,
        &trace,
        &reply,
        now_ms() - started,
    );
    reply.into_response(&request_id)
}

/// One JSON line per request. Never a token or an invite code: only the token's public id.
fn log(
    request_id: &str,
    method: Method,
    route: &str,
    trace: &Trace,
    reply: &Reply,
    latency_ms: i64,
) {
    let line = json!({
        "level": if reply.status >= 500 { "error" } else { "info" },
        "request_id": request_id,
        "method": method.as_str(),
        "route": route,
        "session": trace.session,
        "token_id": trace.token_id,
        "status": reply.status,
        "code": reply.code,
        "latency_ms": latency_ms,
        "backend_ms": reply.backend_ms,
    });
    worker::console_log!("{line}");
}

async fn handle(
    route: Route,
    req: &mut Request,
    env: &Env,
    rid: &str,
    trace: &mut Trace,
) -> Result<Reply, ApiError> {
    match (route.id(), route.spec.access) {
        (RouteId::Healthz, _) => Ok(Reply::success(
            200,
            json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }),
            rid,
        )),
        (RouteId::OpenApi, _) => Ok(Reply::json(200, openapi_document()?)),
        (RouteId::ServerEvents, _) => {
            trace.session = route.param("sid").map(str::to_owned);
            super::hooks::hook_route(route, req, env, rid).await
        }
        (_, Access::Admin) => admin::admin_route(route, req, env, rid).await,
        (_, Access::Session(_)) => session_route(route, req, env, rid, trace).await,
        (_, Access::Org(_) | Access::AnyToken) => {
            super::groups::org_route(&route, req, env, rid, &mut trace.token_id).await
        }
        (_, Access::Public) => Err(ApiError::not_found()),
    }
}

pub(super) fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

/// The body, refused as 413 past the route's limit: by its declared length when it has
/// one (a large body is not even read), else once limit + 1 bytes have arrived (chunked
/// and HTTP/2 bodies): joingate never reads more of it.
pub(super) async fn read_body(req: &mut Request, route: &Route) -> Result<Vec<u8>, ApiError> {
    let limit = route.id().max_body_bytes();
    let declared = header(req, "Content-Length").and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::new(ErrorCode::PayloadTooLarge));
    }
    match http::read_capped(req.inner().body(), limit)
        .await
        .map_err(|_| ApiError::invalid("body", "could not be read"))?
    {
        http::Capped::Whole(body) => Ok(body),
        http::Capped::TooLarge => Err(ApiError::new(ErrorCode::PayloadTooLarge)),
    }
}

/// A group JID path parameter, if the route has one.
fn gjid_param(route: &Route) -> Result<Option<GroupJid>, ApiError> {
    route.param("gjid").map(group_jid).transpose()
}

/// The typed operation of a session route, from its validated path and body, with the
/// group a join expects (section 15).
fn operation(
    route: &Route,
    gjid: Option<&GroupJid>,
    content_type: Option<&str>,
    body: &[u8],
    now_s: i64,
) -> Result<(Op, Option<String>), ApiError> {
    let group = || gjid.map(|g| g.to_string()).unwrap_or_default();
    if route.id() == RouteId::Join {
        let (join, expected) = parse_join_body(&parse_object_body(content_type, body)?, now_s)?;
        return Ok((join.op(), expected.map(|g| g.to_string())));
    }
    let op = match route.id() {
        RouteId::Preview => Op::Preview {
            code: invite_from_path(route.param("invite").unwrap_or_default())?
                .as_str()
                .to_string(),
        },
        RouteId::Leave => {
            expect_no_body(content_type, body)?;
            Op::Leave { group_jid: group() }
        }
        RouteId::ListJoinRequests => Op::ListJoinRequests { group_jid: group() },
        RouteId::ApproveJoinRequests | RouteId::RejectJoinRequests => {
            let participants = parse_participants(&parse_object_body(content_type, body)?)?;
            Op::JoinRequestAction {
                group_jid: group(),
                approve: route.id() == RouteId::ApproveJoinRequests,
                participants: participants.iter().map(|p| p.to_string()).collect(),
            }
        }
        RouteId::ResetInvite => {
            expect_no_body(content_type, body)?;
            Op::ResetInvite { group_jid: group() }
        }
        RouteId::SessionStatus => Op::SessionStatus,
        RouteId::GroupMembership => Op::MembershipCheck { group_jid: group() },
        _ => return Err(ApiError::not_found()),
    };
    Ok((op, None))
}

/// What every session route establishes first, in the contract's check order: the token,
/// its capability, the sid and the session (another org's is unknown).
struct SessionContext {
    record: TokenRecord,
    sid: SessionId,
    session: SessionRecord,
    org_wait_s: Option<u64>,
    webhook_events: Option<Vec<String>>,
    policy: Option<PolicyMode>,
    settings: Rc<Settings>,
    now: i64,
}

async fn session_context(
    route: &Route,
    capability: Capability,
    req: &Request,
    env: &Env,
    trace: &mut Trace,
) -> Result<SessionContext, ApiError> {
    let now = now_ms();
    let kv = Kv::from_env(env)?;
    let settings = config::settings(env)?;
    let authorization = header(req, "Authorization");
    // The edge's three reads are independent but for the org, which the token names: the
    // session record is read beside the token's and the org's verdict, so a call waits
    // max(token + org, session) instead of their sum. The answers keep the contract's order
    // all the same: 401, 403, 400 (sid), 404, and the org's 429 at the rate-limit step, in
    // the session's object. Every authenticated call counts against the org, whatever its
    // fate. An invalid sid cannot name anyone's session, and a header that cannot
    // authenticate costs no session read.
    let sid = session_id(route.param("sid").unwrap_or_default());
    let lookup = async {
        match &sid {
            Ok(sid) if may_authenticate(authorization.as_deref()) => {
                load_session(&kv, sid.as_str()).await
            }
            _ => Ok(None),
        }
    };
    let counted = async {
        let record =
            authenticate(&kv, settings.jwt.as_ref(), authorization.as_deref(), now).await?;
        let verdict = org::verdict(env, &settings, &record.org).await;
        Ok::<_, ApiError>((record, verdict))
    };
    let (counted, session) = join(counted, lookup).await;
    let (record, verdict) = counted?;
    trace.token_id = Some(record.token_id.clone());
    record.check_capability(capability)?;
    let sid = sid?;
    trace.session = Some(sid.to_string());
    let session = session?
        .filter(|s| record.may_use_session(sid.as_str(), &s.org))
        .ok_or_else(ApiError::not_found)?;
    Ok(SessionContext {
        record,
        sid,
        session,
        org_wait_s: verdict.wait_s,
        webhook_events: verdict.webhook_events,
        policy: verdict.policy,
        settings,
        now,
    })
}

/// The fingerprint of a POST with an `Idempotency-Key`: the route, a canonical form of what
/// it asks (`%40` and `@` in the URL are the same request) and the body.
fn idempotency(
    req: &Request,
    route: &Route,
    canonical: &str,
    body: &[u8],
) -> Result<Option<IdempotencyRef>, ApiError> {
    Ok(
        validate_key(header(req, "Idempotency-Key").as_deref())?.map(|key| IdempotencyRef {
            key,
            fingerprint: fingerprint("POST", &format!("{} {canonical}", route.template()), body),
        }),
    )
}

async fn session_route(
    route: Route,
    req: &mut Request,
    env: &Env,
    rid: &str,
    trace: &mut Trace,
) -> Result<Reply, ApiError> {
    let (Access::Session(capability), Some(class)) = (route.spec.access, route.spec.class) else {
        return job_route(route, req, env, rid, trace).await;
    };
    let SessionContext {
        record,
        sid,
        session,
        org_wait_s,
        webhook_events,
        policy,
        settings,
        now,
    } = session_context(&route, capability, req, env, trace).await?;
    let gjid = gjid_param(&route)?;

    let is_post = route.spec.method == Method::Post;
    let body = if is_post {
        read_body(req, &route).await?
    } else {
        Vec::new()
    };
    let (op, expected_group_jid) = operation(
        &route,
        gjid.as_ref(),
        header(req, "Content-Type").as_deref(),
        &body,
        now / 1000,
    )?;
    // What the session's backend kind cannot do is answered right after the body checks.
    let kind = session.backend.as_ref().map_or(Kind::Joingate, |b| b.kind);
    supports(kind, &op)?;

    let idempotency = if is_post {
        // The typed operation is canonical; the route keeps approve and reject apart.
        idempotency(
            req,
            &route,
            &serde_json::to_string(&op).unwrap_or_default(),
            &body,
        )?
    } else {
        None
    };
    let limits = settings.limits.with_overrides(&session.limits);
    let message = SessionCall {
        request_id: rid.to_string(),
        session: sid.to_string(),
        org: record.org.clone(),
        class,
        limits,
        org_wait_s,
        webhook_events,
        idempotency,
        operation: op.name().to_string(),
        protection: session.protection.clone(),
        policy,
    };
    let payload = CallPayload {
        op,
        backend: session.backend,
        expected_group_jid,
    };
    let head = serde_json::to_string(&message).map_err(|_| ApiError::internal())?;
    let body = serde_json::to_string(&payload).map_err(|_| ApiError::internal())?;
    dispatch(env, sid.as_str(), "call", Some(&head), &body).await
}

/// The join-job routes (contract section 10): checked here, kept and run by the object.
async fn job_route(
    route: Route,
    req: &mut Request,
    env: &Env,
    rid: &str,
    trace: &mut Trace,
) -> Result<Reply, ApiError> {
    let Access::Session(capability) = route.spec.access else {
        return Err(ApiError::not_found());
    };
    let SessionContext {
        record,
        sid,
        session,
        org_wait_s,
        webhook_events: _,
        policy: _,
        settings,
        now,
    } = session_context(&route, capability, req, env, trace).await?;
    // A job id that is not a job of this session, malformed included, is unknown.
    let job_id = match route.param("job_id") {
        Some(raw) => Some(
            percent_decode(raw)
                .filter(|id| is_job_id(id))
                .ok_or_else(ApiError::not_found)?,
        ),
        None => None,
    };
    let is_post = route.spec.method == Method::Post;
    let body = if is_post {
        read_body(req, &route).await?
    } else {
        Vec::new()
    };
    let content_type = header(req, "Content-Type");
    let id = || job_id.clone().unwrap_or_default();
    let action = match route.id() {
        RouteId::SubmitJob => {
            let submit = parse_submit(
                &parse_object_body(content_type.as_deref(), &body)?,
                now / 1000,
                settings.job_interval_s,
                settings.job_min_interval_s,
            )?;
            // A recovery (section 15): the items come from the org's group book.
            let (items, source) = match &submit.from_session {
                None => (submit.items, None),
                Some(from) => {
                    let plan = super::groups::recovery(env, &record, from, sid.as_str()).await?;
                    (recovery_items(&plan), Some(plan["source"].clone()))
                }
            };
            JobAction::Submit {
                job_id: format!("job_{}", hex(&admin::random_bytes::<8>()?)),
                items,
                label: submit.label,
                interval_s: submit.interval_s,
                source,
            }
        }
        RouteId::ListJobs => JobAction::List,
        RouteId::PendingJoins => JobAction::PendingJoins,
        RouteId::GetJob => JobAction::Get { job_id: id() },
        RouteId::PauseJob | RouteId::ResumeJob | RouteId::CancelJob => {
            expect_no_body(content_type.as_deref(), &body)?;
            match route.id() {
                RouteId::PauseJob => JobAction::Pause { job_id: id() },
                RouteId::ResumeJob => JobAction::Resume { job_id: id() },
                _ => JobAction::Cancel { job_id: id() },
            }
        }
        _ => return Err(ApiError::not_found()),
    };
    let idempotency = if is_post {
        idempotency(req, &route, &id(), &body)?
    } else {
        None
    };
    let limits = settings.limits.with_overrides(&session.limits);
    let message = JobCall {
        request_id: rid.to_string(),
        session: sid.to_string(),
        org: record.org.clone(),
        org_wait_s,
        limits,
        protection: session.protection.clone(),
        idempotency,
        action,
    };
    let body = serde_json::to_string(&message).map_err(|_| ApiError::internal())?;
    dispatch(env, sid.as_str(), "jobs", None, &body).await
}

/// A recovery job's items from the org object's plan: each joins its group's kept code and
/// expects that group.
fn recovery_items(plan: &Value) -> Vec<SubmitItem> {
    plan["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| {
                    Some(SubmitItem {
                        op: Op::Join {
                            code: item["code"].as_str()?.to_string(),
                        },
                        expected_group_jid: Some(item["group_jid"].as_str()?.to_string()),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `WEBHOOKS`' dead-letter queue (wrangler.toml `dead_letter_queue`): what comes on it is
/// an attempt whose task ran out of the consumer's retries.
const WEBHOOKS_DEAD_LETTER_QUEUE: &str = "joingate-webhooks-dlq";

/// The consumer of `WEBHOOKS` and of its dead-letter queue (one function for every queue).
/// Each `WEBHOOKS` message is one delivery attempt, made by the org's object (which queues
/// the next attempt itself when one is due); each dead-lettered one records that attempt as
/// failed (`dead_lettered`), and the schedule goes on.
#[event(queue)]
pub async fn queue(batch: MessageBatch<String>, env: Env, _ctx: Context) -> worker::Result<()> {
    let dead_lettered = batch.queue() == WEBHOOKS_DEAD_LETTER_QUEUE;
    // A batch is one message (max_batch_size = 1): a slow endpoint holds back no other
    // delivery, since batches run side by side.
    for message in batch.messages()? {
        // Not a task (it cannot come from us): drop it rather than retry it for ever.
        let Ok(task) = serde_json::from_str::<DeliveryTask>(message.body()) else {
            message.ack();
            continue;
        };
        let action = if dead_lettered {
            OrgAction::DeadLettered {
                delivery_id: task.delivery_id.clone(),
                attempts: task.attempts,
            }
        } else {
            OrgAction::Attempt {
                delivery_id: task.delivery_id.clone(),
                attempts: task.attempts,
            }
        };
        // An object that failed (500) has not recorded the attempt: retry the task after
        // the consumer's retry_delay. Past max_retries a task goes to the dead-letter queue,
        // and one that fails there too is dropped; the object's sweep remakes its attempt.
        match org::ask(&env, &task.org, &action).await {
            Ok(answer) if answer.status < 500 => message.ack(),
            _ => message.retry(),
        }
    }
    Ok(())
}

/// Sends a message to the session's Durable Object and passes its answer on. `head` goes
/// in a header (a client call's place in the queue is decided before the object awaits
/// anything), `body` in the body; only the body may hold a secret (an invite code, a sealed
/// credential): request headers are what Tail Workers and Logpush record.
pub(super) async fn dispatch(
    env: &Env,
    sid: &str,
    action: &str,
    head: Option<&str>,
    body: &str,
) -> Result<Reply, ApiError> {
    let headers = worker::Headers::new();
    if let Some(head) = head {
        headers.set(CALL_HEADER, head).map_err(object_failed)?;
    }
    headers
        .set("Content-Type", "application/json")
        .map_err(object_failed)?;
    let url = format!("https://session/{action}");
    let request = http::outgoing("POST", &url, &headers, Some(body), Redirects::Follow)
        .map_err(object_failed)?;
    ask_object(env, sid, &request).await
}

pub(super) fn object_failed(_: worker::Error) -> ApiError {
    worker::console_error!("{{\"level\":\"error\",\"msg\":\"durable object call failed\"}}");
    ApiError::internal()
}

/// Sends a request to session `sid`'s object; its answer is an envelope, with the headers
/// the Worker passes on.
pub(super) async fn ask_object(
    env: &Env,
    sid: &str,
    request: &web_sys::Request,
) -> Result<Reply, ApiError> {
    let failed = object_failed;
    let stub = env
        .durable_object(config::SESSIONS_BINDING)
        .and_then(|ns| ns.id_from_name(sid)?.get_stub())
        .map_err(failed)?;
    let response = http::fetch_object(stub, request).await.map_err(failed)?;
    let body = http::text(&response).await.map_err(failed)?;
    // Anything but an envelope (the runtime's own error page, say) is an internal error.
    let envelope: Value = serde_json::from_str(&body)
        .ok()
        .filter(|v: &Value| v.get("success").is_some_and(Value::is_boolean))
        .ok_or_else(|| failed(worker::Error::RustError("not an envelope".into())))?;
    let mut reply = Reply::json(response.status(), body);
    for name in [
        "Retry-After",
        "RateLimit-Policy",
        "RateLimit",
        "Idempotent-Replayed",
    ] {
        if let Some(value) = http::header(&response, name) {
            reply.headers.push((name, value));
        }
    }
    reply.backend_ms = http::header(&response, BACKEND_LATENCY_HEADER).and_then(|v| v.parse().ok());
    reply.code = envelope
        .pointer("/error/code")
        .and_then(Value::as_str)
        .and_then(|code| ErrorCode::ALL.into_iter().find(|c| c.as_str() == code))
        .map(ErrorCode::as_str);
    Ok(reply)
}
