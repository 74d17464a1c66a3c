//! The session Durable Object: one per session id. It runs the per-session guarantees of
//! contract section 6 in the contract's order (idempotency, circuit breaker, rate limits,
//! queue, backend) and keeps every durable piece of state in its SQLite storage, so that
//! eviction or a restart loses nothing but the queue itself.
//!
//! Buckets and breaker are mirrored in memory (the object is the only writer of its storage)
//! and written back in one synchronous batch after each backend call, together with the
//! idempotency record: one storage commit per call, which the runtime's output gate waits
//! for before the answer leaves. Refused calls write nothing.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use serde::Deserialize;
use serde_json::{json, Value};
use worker::{
    durable_object, Date, DurableObject, Env, Request, Response, SqlStorage, SqlStorageValue, State,
};

use super::backend_client::BackendClient;
use super::config::{self, Settings};
use super::crypto;
use super::reply::Reply;
use crate::core::backend::{Exchanged, Kind, Op, Target};
use crate::core::breaker::{Admission, Breaker};
use crate::core::dispatch::{SessionCall, BACKEND_LATENCY_HEADER, CALL_HEADER};
use crate::core::error::{ApiError, ErrorCode};
use crate::core::idempotency::{decide, is_storable, Decision, StoredOutcome, RETENTION_MS};
use crate::core::limits::{Class, ClassLimit};
use crate::core::queue::FifoGate;
use crate::core::ratelimit::{header_values, retry_after_s, Bucket};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS buckets (class TEXT PRIMARY KEY, level INTEGER NOT NULL, updated_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS breaker (id INTEGER PRIMARY KEY CHECK (id = 1), failures INTEGER NOT NULL,
  opened_at_ms INTEGER, probe_since_ms INTEGER);
CREATE TABLE IF NOT EXISTS idempotency (scope TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, status INTEGER NOT NULL,
  body TEXT NOT NULL, retry_after_s INTEGER, created_ms INTEGER NOT NULL);
";

/// How long a half-open probe may be out before another call may probe instead (its
/// instance may have died): the backend deadline plus a margin.
const PROBE_MARGIN_MS: u64 = 5_000;
/// `Retry-After` for `session_busy`: the queue drains one backend call at a time.
const BUSY_RETRY_S: u64 = 1;
/// The org limiter's window (the binding's period).
const ORG_WINDOW_S: u64 = 60;

/// An error answer of the object, in the envelope.
fn fail(error: &ApiError, request_id: &str) -> Reply {
    Reply::error(error, request_id, now_ms())
}

fn now_ms() -> i64 {
    Date::now().as_millis() as i64
}

fn int(value: i64) -> SqlStorageValue {
    SqlStorageValue::Integer(value)
}

fn text(value: &str) -> SqlStorageValue {
    SqlStorageValue::String(value.to_string())
}

#[durable_object]
pub struct SessionObject {
    state: State,
    env: Env,
    gate: Rc<FifoGate>,
    /// Idempotency scopes whose first request is running now, with its fingerprint.
    running: Rc<RefCell<HashMap<String, String>>>,
    /// The buckets and the breaker as they stand; loaded on first use.
    counters: Cell<Option<Counters>>,
    /// The same as last written to storage, so that only changes are written.
    stored: Cell<Counters>,
    /// Bumped when the session is deleted, so that calls admitted before forget their writes.
    epoch: Cell<u64>,
    schema_ready: Cell<bool>,
}

/// Rate-limit buckets (by class) and the circuit breaker of one session.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Counters {
    buckets: [Option<Bucket>; 3],
    breaker: Breaker,
}

fn slot(class: Class) -> usize {
    match class {
        Class::Join => 0,
        Class::Manage => 1,
        Class::Read => 2,
    }
}

impl Counters {
    fn bucket(&self, class: Class, limit: ClassLimit, now: i64) -> Bucket {
        self.buckets[slot(class)].unwrap_or_else(|| Bucket::full(limit, now))
    }
}

/// Removes an idempotency scope from `running` however the request ends.
struct RunningGuard {
    running: Rc<RefCell<HashMap<String, String>>>,
    scope: Option<String>,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        if let Some(scope) = &self.scope {
            self.running.borrow_mut().remove(scope);
        }
    }
}

#[derive(Deserialize)]
struct BucketRow {
    class: String,
    level: i64,
    updated_ms: i64,
}

#[derive(Deserialize)]
struct BreakerRow {
    failures: i64,
    opened_at_ms: Option<i64>,
    probe_since_ms: Option<i64>,
}

#[derive(Deserialize)]
struct OutcomeRow {
    fingerprint: String,
    status: i64,
    body: String,
    retry_after_s: Option<i64>,
    created_ms: i64,
}

impl DurableObject for SessionObject {
    fn new(state: State, env: Env) -> Self {
        let queue_max = config::queue_max(&env).unwrap_or(config::DEFAULT_QUEUE_MAX);
        Self {
            state,
            env,
            gate: FifoGate::new(queue_max),
            running: Rc::new(RefCell::new(HashMap::new())),
            counters: Cell::new(None),
            stored: Cell::new(Counters::default()),
            epoch: Cell::new(0),
            schema_ready: Cell::new(false),
        }
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        self.ensure_schema()?;
        match req.path().as_str() {
            "/call" => {
                // The message comes in a header, not the body: reading a body awaits, and
                // requests that await before joining the queue can overtake each other.
                let raw = req.headers().get(CALL_HEADER)?.unwrap_or_default();
                let call: SessionCall = serde_json::from_str(&raw)
                    .map_err(|e| worker::Error::RustError(e.to_string()))?;
                let request_id = call.request_id.clone();
                match self.run(call).await {
                    Ok(answer) => answer.into_response(&request_id),
                    // A storage failure still answers in the envelope.
                    Err(error) => {
                        let line = json!({ "level": "error", "request_id": request_id,
                            "msg": "session object failure", "error": error.to_string() });
                        worker::console_error!("{line}");
                        fail(&ApiError::internal(), &request_id).into_response(&request_id)
                    }
                }
            }
            "/reset" => {
                self.sql().exec(
                    "DELETE FROM buckets; DELETE FROM breaker; DELETE FROM idempotency;",
                    None,
                )?;
                self.counters.set(None);
                self.stored.set(Counters::default());
                self.epoch.set(self.epoch.get() + 1);
                Reply::success(200, json!({ "reset": true }), "reset").into_response("reset")
            }
            _ => Response::error("unknown object route", 404),
        }
    }
}

impl SessionObject {
    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    fn ensure_schema(&self) -> worker::Result<()> {
        if !self.schema_ready.get() {
            self.sql().exec(SCHEMA, None)?;
            self.schema_ready.set(true);
        }
        Ok(())
    }

    /// The buckets and the breaker, from memory, or from storage the first time.
    fn counters(&self) -> worker::Result<Counters> {
        if let Some(counters) = self.counters.get() {
            return Ok(counters);
        }
        let sql = self.sql();
        let mut counters = Counters::default();
        let rows: Vec<BucketRow> = sql
            .exec("SELECT class, level, updated_ms FROM buckets", None)?
            .to_array()?;
        for row in rows {
            if let Some(class) = Class::ALL.into_iter().find(|c| c.as_str() == row.class) {
                counters.buckets[slot(class)] = Some(Bucket {
                    level: u64::try_from(row.level).unwrap_or(0),
                    updated_ms: row.updated_ms,
                });
            }
        }
        let rows: Vec<BreakerRow> = sql
            .exec(
                "SELECT failures, opened_at_ms, probe_since_ms FROM breaker WHERE id = 1",
                None,
            )?
            .to_array()?;
        if let Some(row) = rows.first() {
            counters.breaker = Breaker {
                failures: u32::try_from(row.failures).unwrap_or(u32::MAX),
                opened_at_ms: row.opened_at_ms,
                probe_since_ms: row.probe_since_ms,
            };
        }
        self.counters.set(Some(counters));
        self.stored.set(counters);
        Ok(counters)
    }

    /// Writes the counters back. Called with no await since the last change, so that the
    /// statements of one call share one storage commit.
    fn persist(&self, counters: &Counters) -> worker::Result<()> {
        let sql = self.sql();
        let stored = self.stored.get();
        for class in Class::ALL {
            let bucket = counters.buckets[slot(class)];
            if let Some(bucket) = bucket.filter(|_| bucket != stored.buckets[slot(class)]) {
                sql.exec(
                    "INSERT OR REPLACE INTO buckets (class, level, updated_ms) VALUES (?, ?, ?)",
                    vec![
                        text(class.as_str()),
                        int(i64::try_from(bucket.level).unwrap_or(i64::MAX)),
                        int(bucket.updated_ms),
                    ],
                )?;
            }
        }
        let breaker = counters.breaker;
        if breaker != stored.breaker {
            let optional = |v: Option<i64>| v.map_or(SqlStorageValue::Null, int);
            sql.exec(
                "INSERT OR REPLACE INTO breaker (id, failures, opened_at_ms, probe_since_ms) VALUES (1, ?, ?, ?)",
                vec![
                    int(i64::from(breaker.failures)),
                    optional(breaker.opened_at_ms),
                    optional(breaker.probe_since_ms),
                ],
            )?;
        }
        self.stored.set(*counters);
        Ok(())
    }

    fn load_outcome(&self, scope: &str) -> worker::Result<Option<StoredOutcome>> {
        let rows: Vec<OutcomeRow> = self
            .sql()
            .exec(
                "SELECT fingerprint, status, body, retry_after_s, created_ms FROM idempotency WHERE scope = ?",
                vec![text(scope)],
            )?
            .to_array()?;
        Ok(rows.into_iter().next().map(|row| StoredOutcome {
            fingerprint: row.fingerprint,
            status: u16::try_from(row.status).unwrap_or(500),
            body: row.body,
            retry_after_s: row.retry_after_s.and_then(|s| u64::try_from(s).ok()),
            created_ms: row.created_ms,
        }))
    }

    /// Stores an executed outcome and drops the records past retention (lazy cleanup).
    fn store_outcome(&self, scope: &str, outcome: &StoredOutcome) -> worker::Result<()> {
        let sql = self.sql();
        sql.exec(
            "DELETE FROM idempotency WHERE created_ms <= ?",
            vec![int(outcome.created_ms - RETENTION_MS)],
        )?;
        sql.exec(
            "INSERT OR REPLACE INTO idempotency (scope, fingerprint, status, body, retry_after_s, created_ms) VALUES (?, ?, ?, ?, ?, ?)",
            vec![
                text(scope),
                text(&outcome.fingerprint),
                int(i64::from(outcome.status)),
                text(&outcome.body),
                outcome.retry_after_s.map_or(SqlStorageValue::Null, |s| int(i64::try_from(s).unwrap_or(i64::MAX))),
                int(outcome.created_ms),
            ],
        )?;
        Ok(())
    }

    /// The backend to talk to for this call: the session's own, its credential decrypted,
    /// or kind `joingate` at `SESSION_BACKEND_URL`.
    async fn target(
        &self,
        msg: &SessionCall,
        settings: &Settings,
    ) -> Result<(Target, String), ApiError> {
        let Some(backend) = &msg.backend else {
            let target = Target {
                kind: Kind::Joingate,
                remote_session: Some(msg.session.clone()),
                credential: settings.backend_token.clone(),
            };
            return Ok((target, settings.backend_url.clone()));
        };
        let credential = match &backend.credential {
            None => None,
            Some(sealed) => {
                let key = settings.credentials_key.as_deref().ok_or_else(|| {
                    worker::console_error!("{{\"level\":\"error\",\"msg\":\"a stored credential needs CREDENTIALS_KEY\"}}");
                    ApiError::internal()
                })?;
                Some(crypto::open(key, &msg.session, sealed).await?)
            }
        };
        let target = Target {
            kind: backend.kind,
            remote_session: backend.remote_session_for(&msg.session),
            credential,
        };
        Ok((target, backend.url.clone()))
    }

    /// The whole backend exchange of one call, inside its queue turn.
    async fn exchange(&self, msg: &SessionCall, settings: &Settings) -> Exchanged {
        match self.target(msg, settings).await {
            Ok((target, base_url)) => {
                let client = BackendClient {
                    base_url: &base_url,
                    request_id: &msg.request_id,
                    timeout_ms: settings.backend_timeout_ms,
                };
                client.exchange(&target, &msg.op).await
            }
            // Never sent: no token is spent and the breaker does not count it.
            Err(error) => Exchanged {
                result: Err(error),
                reached: false,
                transport_failed: false,
            },
        }
    }

    /// Everything up to and including the answer, in the contract's check order. Between
    /// the idempotency decision and joining the queue nothing awaits, so no other request
    /// of this session can interleave there.
    async fn run(&self, msg: SessionCall) -> worker::Result<Reply> {
        let rid = msg.request_id.as_str();
        let settings = match config::settings(&self.env) {
            Ok(settings) => settings,
            Err(error) => return Ok(fail(&error, rid)),
        };
        let now = now_ms();
        let limit = msg.limits.class(msg.class);
        let scope = msg
            .idempotency
            .as_ref()
            .map(|i| format!("{}\n{}", msg.org, i.key));

        if let (Some(scope), Some(idem)) = (&scope, &msg.idempotency) {
            let running = self.running.borrow().get(scope).cloned();
            match decide(
                self.load_outcome(scope)?,
                running.as_deref(),
                &idem.fingerprint,
                now,
            ) {
                Decision::Execute => {}
                Decision::Replay(stored) => {
                    let mut answer = Reply::json(stored.status, stored.body)
                        .with_header("Idempotent-Replayed", "true".into());
                    if let Some(seconds) = stored.retry_after_s {
                        answer = answer.with_header("Retry-After", seconds.to_string());
                    }
                    return Ok(answer);
                }
                Decision::Reused => {
                    return Ok(fail(&ApiError::new(ErrorCode::IdempotencyKeyReused), rid))
                }
                Decision::InProgress => {
                    return Ok(fail(&ApiError::new(ErrorCode::IdempotencyInProgress), rid))
                }
            }
        }

        // Everything from here to the queue is synchronous and changes only the in-memory
        // counters; a refused call writes nothing.
        let mut counters = self.counters()?;
        let probe_timeout_ms = (settings.backend_timeout_ms + PROBE_MARGIN_MS) as i64;
        let probe = match counters.breaker.admit(now, probe_timeout_ms) {
            Admission::Rejected { retry_after_ms } => {
                let error = ApiError::new(ErrorCode::BackendUnavailable)
                    .with_message("The session backend is failing; the circuit is open.")
                    .with_detail("circuit", counters.breaker.state(now).as_str())
                    .with_retry_after(retry_after_s(retry_after_ms));
                return Ok(fail(&error, rid));
            }
            Admission::Allowed { probe } => probe,
        };
        // A probe turned away before the backend frees the probe slot again.
        let turned_away = |mut counters: Counters| {
            if probe {
                counters.breaker.probe_since_ms = None;
            }
            self.counters.set(Some(counters));
        };

        if msg.org_limited {
            turned_away(counters);
            let error = ApiError::new(ErrorCode::RateLimited)
                .with_message(
                    "The organisation's call limit is reached; retry after the indicated time.",
                )
                .with_detail("scope", "org")
                .with_detail("retry_after_s", ORG_WINDOW_S)
                .with_retry_after(ORG_WINDOW_S);
            return Ok(fail(&error, rid));
        }

        let class = msg.class;
        let bucket = counters.bucket(class, limit, now);
        let spent = match bucket.take(limit, now) {
            Ok(spent) => spent,
            Err(wait_ms) => {
                turned_away(counters);
                let seconds = retry_after_s(wait_ms);
                let error = ApiError::new(ErrorCode::RateLimited)
                    .with_detail("scope", "session")
                    .with_detail("class", class.as_str())
                    .with_detail("retry_after_s", seconds)
                    .with_retry_after(seconds);
                let (policy, state) =
                    header_values(class.as_str(), limit, bucket.refilled(limit, now), now);
                return Ok(fail(&error, rid)
                    .with_header("RateLimit-Policy", policy)
                    .with_header("RateLimit", state));
            }
        };

        let queue_depth = self.gate.waiting();
        let Ok(turn) = self.gate.enter() else {
            turned_away(counters);
            let error = ApiError::new(ErrorCode::SessionBusy).with_retry_after(BUSY_RETRY_S);
            return Ok(fail(&error, rid));
        };
        counters.buckets[slot(class)] = Some(spent);
        self.counters.set(Some(counters));
        let _running = RunningGuard {
            running: Rc::clone(&self.running),
            scope: scope.clone().inspect(|scope| {
                let fingerprint = msg
                    .idempotency
                    .as_ref()
                    .map(|i| i.fingerprint.clone())
                    .unwrap_or_default();
                self.running.borrow_mut().insert(scope.clone(), fingerprint);
            }),
        };
        let epoch = self.epoch.get();
        let permit = turn.await;

        let started = now_ms();
        let exchanged = self.exchange(&msg, &settings).await;
        let finished = now_ms();
        let backend_ms = u64::try_from(finished - started).unwrap_or(0);

        // From here to the answer nothing awaits: all writes share one storage commit. A
        // session deleted while this call ran keeps nothing of it.
        let current_epoch = self.epoch.get() == epoch;
        let mut counters = self.counters()?;
        if current_epoch {
            counters
                .breaker
                .record(exchanged.transport_failed, finished);
            if !exchanged.reached {
                // Never reached the backend: the call had no effect, so it costs no token.
                let current = counters.bucket(class, limit, finished);
                counters.buckets[slot(class)] = Some(current.refund(limit, finished));
            }
            self.counters.set(Some(counters));
            self.persist(&counters)?;
        }
        drop(permit);

        let result = exchanged.result.map(|data| match msg.op {
            Op::SessionStatus => status_data(&msg, &counters, data, queue_depth, finished),
            _ => data,
        });
        let current = counters.bucket(class, limit, finished);
        let (policy, state) = header_values(class.as_str(), limit, current, finished);
        let answer = match &result {
            Ok(data) => Reply::success(200, data.clone(), rid),
            Err(error) => fail(error, rid),
        };
        if let (Some(scope), Some(idem)) = (&scope, &msg.idempotency) {
            if current_epoch && is_storable(result.as_ref().err()) {
                let retry_after_s = result.as_ref().err().and_then(|e| e.retry_after_s);
                let stored = StoredOutcome {
                    fingerprint: idem.fingerprint.clone(),
                    status: answer.status,
                    body: answer.body.clone(),
                    retry_after_s,
                    created_ms: finished,
                };
                self.store_outcome(scope, &stored)?;
            }
        }
        Ok(answer
            .with_header("RateLimit-Policy", policy)
            .with_header("RateLimit", state)
            .with_header(BACKEND_LATENCY_HEADER, backend_ms.to_string()))
    }
}

/// `GET /v1/sessions/{sid}`: the backend's `connected` plus what the object knows.
fn status_data(
    msg: &SessionCall,
    counters: &Counters,
    backend: Value,
    queue_depth: usize,
    now: i64,
) -> Value {
    let mut tokens = serde_json::Map::new();
    for class in Class::ALL {
        let limit = msg.limits.class(class);
        let remaining = counters.bucket(class, limit, now).remaining(limit, now);
        tokens.insert(class.as_str().into(), json!(remaining));
    }
    json!({
        "session_id": msg.session,
        "connected": backend.get("connected").cloned().unwrap_or(Value::Bool(false)),
        "queue_depth": queue_depth,
        "limits": msg.limits,
        "tokens": tokens,
        "circuit": counters.breaker.state(now).as_str(),
        "backend_kind": msg.backend.as_ref().map_or(Kind::Joingate, |b| b.kind).as_str(),
    })
}
