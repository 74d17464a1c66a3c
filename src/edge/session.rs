//! The session Durable Object: one per session id. It runs the per-session guarantees of
//! contract sections 6 and 10 through the pure pipeline (`core::pipeline`: admit, then the
//! queue and the backend exchange, then settle), for client calls and join-job items alike,
//! and keeps every durable piece of state in its SQLite storage (`store`), so that eviction
//! or a restart loses nothing but the queue itself. Job items are driven by the alarm.
//!
//! The pipeline's state is mirrored in memory (the object is the only writer of its
//! storage) and written back in one synchronous batch after each backend call, together
//! with the idempotency record: one storage commit per call, which the runtime's output gate
//! waits for before the answer leaves. Refused calls write nothing.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use serde_json::{json, Value};
use worker::{durable_object, Date, DurableObject, Env, Request, Response, State};

use super::config::{self, Settings};
use super::org;
use super::reply::Reply;
use super::store::Store;
use crate::core::backend::Op;
use crate::core::dispatch::{
    Assign, CallPayload, IdempotencyRef, JobCall, SessionCall, BACKEND_LATENCY_HEADER, CALL_HEADER,
};
use crate::core::error::{ApiError, ErrorCode};
use crate::core::idempotency::{decide, is_stored, Decision, StoredOutcome};
use crate::core::limits::Class;
use crate::core::pipeline::{met_restriction, Ask, Cooldown, SessionState};
use crate::core::queue::FifoGate;
use crate::core::ratelimit::header_values;
use crate::core::time::format_rfc3339;
use crate::core::url::path_of;

/// How long a half-open probe may be out before another call may probe instead (its
/// instance may have died): the backend deadline plus a margin.
const PROBE_MARGIN_MS: u64 = 5_000;
/// `Retry-After` for `session_busy`: the queue drains one backend call at a time.
const BUSY_RETRY_S: u64 = 1;

/// An error answer of the object, in the envelope.
fn fail(error: &ApiError, request_id: &str) -> Reply {
    Reply::error(error, request_id, now_ms())
}

fn now_ms() -> i64 {
    Date::now().as_millis() as i64
}

fn random_u32() -> u32 {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).map_or(0, |_| u32::from_le_bytes(bytes))
}

fn log_error(request_id: &str, msg: &str, error: &dyn std::fmt::Display) {
    let line = json!({ "level": "error", "request_id": request_id, "msg": msg, "error": error.to_string() });
    worker::console_error!("{line}");
}

mod exchange;
mod group_book;
mod guard;
mod jobs;
mod membership;
mod owner;

pub(in crate::edge) use guard::org_limited_error;
use guard::Guard;

#[durable_object]
pub struct SessionObject {
    state: State,
    env: Env,
    gate: Rc<FifoGate>,
    /// Idempotency scopes whose first request is running now, with its fingerprint (a list
    /// searched in order: at most the queue's calls; no hash table in the wasm).
    running: Rc<RefCell<Vec<(String, String)>>>,
    /// The pipeline's state as it stands; loaded on first use.
    live: Cell<Option<SessionState>>,
    /// The same as last written to storage, so that only changes are written.
    stored: Cell<SessionState>,
    /// Bumped when the session is deleted or changes hands: calls and items admitted before
    /// are refused at their turn, and one already at the backend keeps nothing of its
    /// outcome but what protects the account (the pipeline state).
    epoch: Cell<u64>,
    /// Section 13's ledger as it stands (loaded on first use), and as last written.
    ledger: RefCell<Option<crate::core::protection::Ledger>>,
    ledger_stored: RefCell<crate::core::protection::Ledger>,
    /// The org that owns the session (loaded on first use; `None` inside: no owner yet).
    owner: RefCell<Option<Option<String>>>,
    /// A job item was picked by the alarm and has not ended (it may wait for its turn).
    item_picked: Cell<bool>,
    /// The job item whose backend call is under way (job id, item index): a cancel lets it
    /// finish. An item still waiting for its turn is not here, so a cancel ends it.
    running_item: RefCell<Option<(String, u32)>>,
    schema_ready: Cell<bool>,
    /// Section 14: a membership check (or a status call for the account's ids) started by
    /// the alarm has not ended.
    check_running: Cell<bool>,
    /// Section 14: the account's ids are to be asked of the server (events were turned on
    /// and none are known).
    learn_ids: Cell<bool>,
    /// The server events of the current minute (`EVENTS_PER_MINUTE`): its start and count,
    /// in memory.
    events_window: Cell<(i64, u32)>,
    /// A join or leave is at the server: server events wait in `deferred` until its
    /// outcome is stored (section 14's "applied once").
    deferring: Cell<bool>,
    deferred: RefCell<Vec<crate::core::backend::events::MembershipEvent>>,
}

/// Removes an idempotency scope from `running` however the request ends.
struct RunningGuard {
    running: Rc<RefCell<Vec<(String, String)>>>,
    scope: Option<String>,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        if let Some(scope) = &self.scope {
            let mut running = self.running.borrow_mut();
            if let Some(at) = running.iter().position(|(s, _)| s == scope) {
                running.swap_remove(at);
            }
        }
    }
}

impl DurableObject for SessionObject {
    fn new(state: State, env: Env) -> Self {
        let queue_max = config::queue_max(&env).unwrap_or(config::DEFAULT_QUEUE_MAX);
        Self {
            state,
            env,
            gate: FifoGate::new(queue_max),
            running: Rc::new(RefCell::new(Vec::new())),
            live: Cell::new(None),
            stored: Cell::new(SessionState::default()),
            epoch: Cell::new(0),
            ledger: RefCell::new(None),
            ledger_stored: RefCell::new(Default::default()),
            owner: RefCell::new(None),
            item_picked: Cell::new(false),
            running_item: RefCell::new(None),
            schema_ready: Cell::new(false),
            check_running: Cell::new(false),
            learn_ids: Cell::new(false),
            events_window: Cell::new((0, 0)),
            deferring: Cell::new(false),
            deferred: RefCell::new(Vec::new()),
        }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        self.ensure_schema()?;
        match path_of(&req.inner().url()) {
            "/call" => {
                // The call's head comes in a header, so that it takes its place in the queue
                // before anything awaits; its secret part follows in the body.
                let raw = req.headers().get(CALL_HEADER)?.unwrap_or_default();
                let call: SessionCall = serde_json::from_str(&raw)
                    .map_err(|e| worker::Error::RustError(e.to_string()))?;
                let request_id = call.request_id.clone();
                match self.run(call, &mut req).await {
                    Ok(answer) => answer.into_object_response(),
                    // A storage failure still answers in the envelope.
                    Err(error) => {
                        log_error(&request_id, "session object failure", &error);
                        fail(&ApiError::internal(), &request_id).into_object_response()
                    }
                }
            }
            "/jobs" => {
                let call: JobCall = super::json_body(&mut req).await?;
                let request_id = call.request_id.clone();
                match self.jobs(call).await {
                    Ok(answer) => answer.into_object_response(),
                    Err(error) => {
                        log_error(&request_id, "session object failure", &error);
                        fail(&ApiError::internal(), &request_id).into_object_response()
                    }
                }
            }
            "/events" => match self.server_events(&mut req).await {
                Ok(answer) => answer.into_object_response(),
                Err(error) => {
                    log_error("events", "session object failure", &error);
                    fail(&ApiError::internal(), "events").into_object_response()
                }
            },
            "/assign" => {
                let assign: Assign = super::json_body(&mut req).await?;
                let cancelled = self.assign(&assign).await?;
                let data = json!({ "org": assign.org, "cancelled_jobs": cancelled });
                Reply::success(200, data, "assign").into_object_response()
            }
            "/reset" => {
                // Before any await: a call or item finishing meanwhile must keep nothing.
                self.epoch.set(self.epoch.get() + 1);
                *self.owner.borrow_mut() = Some(None);
                self.store().reset()?;
                self.state.storage().delete_alarm().await?;
                Reply::success(200, json!({ "reset": true }), "reset").into_object_response()
            }
            _ => Response::error("unknown object route", 404),
        }
    }

    /// Runs the session's next due job item, then sets the alarm for the one after. An alarm
    /// runs at least once and may repeat: an item whose run was cut off is run again, a
    /// finished one never.
    async fn alarm(&self) -> worker::Result<Response> {
        self.ensure_schema()?;
        // Section 14's expiries and checks first: the job step after it sets the alarm.
        if let Err(error) = self.follow_requests().await {
            log_error("alarm", "membership check failure", &error);
        }
        let ran = self.run_next_item().await;
        self.item_picked.set(false);
        if let Err(error) = ran {
            log_error("alarm", "join job failure", &error);
            // Try again in a minute rather than never.
            self.state.storage().set_alarm(60_000i64).await?;
        }
        Response::ok("done")
    }
}

impl SessionObject {
    fn store(&self) -> Store {
        Store::new(self.state.storage().sql())
    }

    fn ensure_schema(&self) -> worker::Result<()> {
        if !self.schema_ready.get() {
            self.store().ensure_schema()?;
            self.schema_ready.set(true);
        }
        Ok(())
    }

    /// The pipeline's state, from memory, or from storage the first time.
    fn pipeline_state(&self) -> worker::Result<SessionState> {
        if let Some(state) = self.live.get() {
            return Ok(state);
        }
        let state = self.store().load_state()?;
        self.live.set(Some(state));
        self.stored.set(state);
        Ok(state)
    }

    /// Keeps the state in memory and writes what changed. Called with no await since the
    /// last change, so that the statements of one call share one storage commit.
    fn commit_state(&self, state: SessionState) -> worker::Result<()> {
        self.live.set(Some(state));
        self.store().persist_state(&state, &self.stored.get())?;
        self.stored.set(state);
        Ok(())
    }

    fn probe_timeout_ms(settings: &Settings) -> i64 {
        i64::try_from(settings.backend_timeout_ms + PROBE_MARGIN_MS).unwrap_or(i64::MAX)
    }

    /// The idempotency step of a POST: `None` to execute, or the answer (a replay, 409, 422).
    fn idempotent_answer(
        &self,
        scope: Option<&str>,
        idempotency: Option<&IdempotencyRef>,
        now: i64,
        rid: &str,
    ) -> worker::Result<Option<Reply>> {
        let (Some(scope), Some(IdempotencyRef { fingerprint, .. })) = (scope, idempotency) else {
            return Ok(None);
        };
        let running = (self.running.borrow().iter())
            .find(|(s, _)| s == scope)
            .map(|(_, fingerprint)| fingerprint.clone());
        Ok(
            match decide(
                self.store().load_outcome(scope)?,
                running.as_deref(),
                fingerprint,
                now,
            ) {
                Decision::Execute => None,
                Decision::Replay(stored) => {
                    let mut answer = Reply::json(stored.status, stored.body)
                        .with_header("Idempotent-Replayed", "true".into());
                    if let Some(seconds) = stored.retry_after_s {
                        answer = answer.with_header("Retry-After", seconds.to_string());
                    }
                    Some(answer)
                }
                Decision::Reused => {
                    Some(fail(&ApiError::new(ErrorCode::IdempotencyKeyReused), rid))
                }
                Decision::InProgress => {
                    Some(fail(&ApiError::new(ErrorCode::IdempotencyInProgress), rid))
                }
            },
        )
    }

    /// Keeps an executed outcome for replays (`body`: what a replay answers), unless it is
    /// one that must run again (section 6).
    #[allow(clippy::too_many_arguments)]
    fn remember(
        &self,
        scope: &str,
        fingerprint: &str,
        status: u16,
        body: &str,
        error: Option<&ApiError>,
        executed: bool,
        now: i64,
    ) -> worker::Result<()> {
        if !is_stored(error, executed) {
            return Ok(());
        }
        let stored = StoredOutcome {
            fingerprint: fingerprint.to_string(),
            status,
            body: body.to_string(),
            retry_after_s: error.and_then(|e| e.retry_after_s),
            created_ms: now,
        };
        self.store().store_outcome(scope, &stored)
    }

    /// A client call, in the contract's check order. Between the idempotency decision and
    /// joining the queue nothing awaits, so no other request of this session can interleave.
    async fn run(&self, msg: SessionCall, req: &mut Request) -> worker::Result<Reply> {
        let rid = msg.request_id.as_str();
        let settings = match config::settings(&self.env) {
            Ok(settings) => settings,
            Err(error) => return Ok(fail(&error, rid)),
        };
        // A call of an org that no longer owns the session (an edge that has not seen the
        // change yet) finds nothing here.
        if !self.owned_by(&msg.org)? {
            return Ok(fail(&ApiError::not_found(), rid));
        }
        let now = now_ms();
        let limit = msg.limits.class(msg.class);
        let scope = msg.idempotency.as_ref().map(|i| i.scope(&msg.org));
        if let Some(answer) =
            self.idempotent_answer(scope.as_deref(), msg.idempotency.as_ref(), now, rid)?
        {
            return Ok(answer);
        }

        // Everything from here to the queue is synchronous and changes only memory; a
        // refused call writes nothing.
        let mut state = self.pipeline_state()?;
        let probe_timeout_ms = Self::probe_timeout_ms(&settings);
        let guard = Guard::new(&settings, &msg.protection, &msg.limits.join);
        let joins = msg.class == Class::Join;
        let mut ledger = self.ledger()?;
        ledger.prune(guard.config, now);
        let ask = Ask {
            class: msg.class,
            limit,
            org_wait_s: msg.org_wait_s,
            now_ms: now,
            probe_timeout_ms,
            cap: joins.then(|| guard.cap_refusal(&ledger, now)).flatten(),
        };
        let admitted = match state.admit(&ask) {
            Ok(admitted) => admitted,
            Err(refusal) => {
                self.live.set(Some(state));
                let reply = Self::refusal_reply(refusal, &state, msg.class, limit, now, rid);
                return Ok(if joins {
                    let bucket = state.bucket(Class::Join, limit, now).refilled(limit, now);
                    let (policy, header) = guard.headers(&ledger, bucket, limit, now);
                    reply
                        .with_header("RateLimit-Policy", policy)
                        .with_header("RateLimit", header)
                } else {
                    reply
                });
            }
        };
        // A join or leave counts from its admission (section 13), durably before its call.
        if joins {
            ledger.count(now);
            self.commit_ledger(ledger)?;
        }
        let uncount = |this: &Self| -> worker::Result<()> {
            if joins {
                let mut ledger = this.ledger()?;
                ledger.uncount(now);
                this.commit_ledger(ledger)?;
            }
            Ok(())
        };
        let queue_depth = self.gate.waiting();
        let Ok(turn) = self.gate.enter() else {
            state.turned_away(admitted, limit, now);
            self.live.set(Some(state));
            uncount(self)?;
            let error = ApiError::new(ErrorCode::SessionBusy).with_retry_after(BUSY_RETRY_S);
            return Ok(fail(&error, rid));
        };
        self.live.set(Some(state));
        let _running = RunningGuard {
            running: Rc::clone(&self.running),
            scope: scope.clone().inspect(|scope| {
                let fingerprint = msg
                    .idempotency
                    .as_ref()
                    .map(|i| i.fingerprint.clone())
                    .unwrap_or_default();
                // Not there yet: `idempotent_answer` found none, and nothing awaited since.
                self.running.borrow_mut().push((scope.clone(), fingerprint));
            }),
        };
        let epoch = self.epoch.get();
        // The call holds its place: now its secret part may be read.
        let payload: Option<CallPayload> = match req.text().await {
            Ok(text) => serde_json::from_str(&text).ok(),
            Err(_) => None,
        };
        let permit = turn.await;
        let now = now_ms();
        let mut state = self.pipeline_state()?;
        // Checked again at its turn: the session may have been deleted or changed hands, a
        // cooldown started or the circuit opened while it waited.
        let Some(payload) = payload.filter(|_| self.epoch.get() == epoch) else {
            state.turned_away(admitted, limit, now);
            self.live.set(Some(state));
            uncount(self)?;
            return Ok(fail(&ApiError::not_found(), rid));
        };
        let admitted = match state.at_turn(admitted, limit, now, probe_timeout_ms) {
            Ok(admitted) => admitted,
            Err(refusal) => {
                self.live.set(Some(state));
                uncount(self)?;
                drop(permit);
                return Ok(Self::refusal_reply(
                    refusal, &state, msg.class, limit, now, rid,
                ));
            }
        };
        self.live.set(Some(state));

        let started = now_ms();
        let plan = exchange::JoinPlan {
            org: &msg.org,
            expected: payload.expected_group_jid.as_deref(),
            mode: msg.policy,
            job_item: false,
        };
        let outcome = self
            .exchange_call(
                &msg.session,
                payload.backend.as_ref(),
                &payload.op,
                &plan,
                rid,
                &settings,
            )
            .await;
        let (exchanged, subject) = (outcome.exchanged, outcome.subject);
        // A restriction: in the same turn, ask the server when it ends (section 13).
        let stated_end_ms = if joins && met_restriction(&exchanged) {
            self.restriction_end(&msg.session, payload.backend.as_ref(), rid, &settings)
                .await
        } else {
            None
        };
        let finished = now_ms();
        let backend_ms = u64::try_from(finished - started).unwrap_or(0);
        let reached = exchanged.reached;

        // From here to the answer nothing awaits: all writes share one storage commit. What
        // protects the account is always kept; a session deleted or handed over while this
        // call ran keeps nothing else of it.
        let current_epoch = self.epoch.get() == epoch;
        // A join that ended before its request was sent does not count (section 13).
        if joins && !outcome.sent {
            uncount(self)?;
        }
        let counted_at = (joins && outcome.sent).then_some(now);
        let settled = self.settle_exchange(
            &guard,
            admitted,
            limit,
            exchanged,
            counted_at,
            stated_end_ms,
            finished,
        )?;
        let (state, ledger, result, cooldown) = (
            settled.state,
            settled.ledger,
            settled.result,
            settled.cooldown,
        );
        drop(permit);

        // Section 14: what the call shows of the account's membership, kept with the rest of
        // its writes.
        let noted = match (&result, current_epoch) {
            (Ok(data), true) => {
                self.note_call(&msg.session, rid, &payload.op, data, &settings, finished)?
            }
            _ => membership::Noted::default(),
        };
        let newest_request = match &payload.op {
            Op::MembershipCheck { group_jid } => self.store().pending_of(group_jid)?.pop(),
            _ => None,
        };
        let result = result.map(|data| match &payload.op {
            Op::MembershipCheck { group_jid } => {
                let member = data["member"] == true;
                crate::core::membership::group_answer(group_jid, member, newest_request.as_ref())
            }
            Op::SessionStatus => {
                let protection = guard.view(&ledger, &state, msg.limits.join, finished);
                guard::status_data(
                    &msg,
                    &payload,
                    &state,
                    data,
                    queue_depth,
                    protection,
                    finished,
                )
            }
            _ => data,
        });
        let current = state.bucket(msg.class, limit, finished);
        let (policy, header) = if joins {
            guard.headers(&ledger, current, limit, finished)
        } else {
            header_values(msg.class.as_str(), limit, current, finished)
        };
        let answer = match &result {
            Ok(data) => Reply::success(200, data.clone(), rid),
            Err(error) => fail(error, rid),
        };
        if let (Some(scope), Some(idem), true) = (&scope, &msg.idempotency, current_epoch) {
            self.remember(
                scope,
                &idem.fingerprint,
                answer.status,
                &answer.body,
                result.as_ref().err(),
                reached,
                finished,
            )?;
        }
        // A new request's first check comes by the alarm.
        if noted.requested {
            // The alarm's steps need the session id (an object that never had a PUT or a
            // job since this was kept has none).
            if self.store().meta()?.is_none() {
                self.store().save_meta(&msg.session, 0)?;
            }
            self.reschedule(finished, &self.holds(&guard, &ledger, finished)?)
                .await?;
        }
        // Events last: every write of the call is done, and a session deleted or handed
        // over meanwhile raises nothing.
        if self.epoch.get() == epoch {
            let data = result.as_ref().ok();
            let fact = data.and_then(|d| {
                group_book::call_fact(&msg.session, &payload.op, d, subject, finished)
            });
            self.raise_call_events(&msg, &payload.op, data, noted.resolved, cooldown, fact)
                .await;
            self.raise_all(&msg.org, noted.raised).await;
            // Server events that came while the call was at the server: its outcome is
            // stored, so its echo changes nothing now.
            self.apply_deferred(&msg.session, &msg.org).await?;
        }
        Ok(answer
            .with_header("RateLimit-Policy", policy)
            .with_header("RateLimit", header)
            .with_header(BACKEND_LATENCY_HEADER, backend_ms.to_string()))
    }

    /// The events of a client call: a join or leave that succeeded, a cooldown it started.
    async fn raise_call_events(
        &self,
        msg: &SessionCall,
        op: &Op,
        data: Option<&Value>,
        resolved: Option<i64>,
        cooldown: Option<Cooldown>,
        fact: Option<crate::core::book::Update>,
    ) {
        // The org's webhook filter as its object gave it at the edge: an event it does not
        // take is not sent to the object at all.
        let wanted = |event_type: &str| {
            msg.webhook_events
                .as_ref()
                .is_none_or(|events| events.iter().any(|e| e == event_type))
        };
        let event = match (op, data) {
            (Op::Join { .. } | Op::JoinByMessage { .. }, Some(data)) => {
                let mut event = json!({ "session_id": msg.session, "status": data["status"], "request_id": msg.request_id });
                if let Some(jid) = data.get("group_jid") {
                    event["group_jid"] = jid.clone();
                }
                Some((
                    "group.join",
                    membership::join_event(event, "client", resolved),
                ))
            }
            (Op::Leave { group_jid }, Some(_)) => Some((
                "group.leave",
                membership::leave_event(&msg.session, group_jid, &msg.request_id),
            )),
            _ => None,
        };
        // The book's fact rides on the event when one goes to the org's object; otherwise
        // it follows the answer (section 15: no round trip before it).
        match event.filter(|(event_type, _)| wanted(event_type)) {
            Some((event_type, data)) => {
                org::raise_with(&self.env, &msg.org, event_type, data, fact).await;
            }
            None => self.book_later(&msg.org, fact.into_iter().collect()),
        }
        if let Some(cooldown) = cooldown.filter(|_| wanted("session.cooldown")) {
            org::raise(
                &self.env,
                &msg.org,
                "session.cooldown",
                cooldown_event(&msg.session, cooldown),
            )
            .await;
        }
    }
}

fn cooldown_event(sid: &str, cooldown: Cooldown) -> Value {
    let mut event = json!({
        "session_id": sid,
        "cooldown_until": format_rfc3339(cooldown.until_ms),
        "reason": cooldown.reason.as_str(),
    });
    if let Some(strike) = cooldown.strike {
        event["strike"] = Value::from(strike);
    }
    event
}

/// The error of an answer, for the idempotency store's decision.
fn answer_error(answer: &Reply) -> Option<ApiError> {
    let code = answer.code?;
    ErrorCode::ALL
        .into_iter()
        .find(|c| c.as_str() == code)
        .map(ApiError::new)
}
