//! Section 14 in the session object: the server's events (`/events`), the requests a
//! `pending_approval` leaves, their checks and expiry (run by the alarm), and the org
//! events they raise. What each fact changes is decided by `core::membership`; this file
//! reads and writes the store and raises events.

use serde_json::{json, Value};
use worker::Request;

use super::guard::Guard;
use super::{fail, now_ms, SessionObject};
use crate::core::backend::events::{self, LeaveReason, MembershipEvent, Own};
use crate::core::backend::Op;
use crate::core::dispatch::{EventsHead, SessionRecord, EVENTS_HEADER};
use crate::core::error::{ApiError, ErrorCode};
use crate::core::limits::Class;
use crate::core::membership::{
    self, after_join, expires_at, member_of, Membership, Request as JoinRequest, RequestState,
};
use crate::core::pipeline::Ask;
use crate::core::ratelimit::retry_after_s;
use crate::edge::auth::{load_session, Kv};
use crate::edge::config::{self, Settings};
use crate::edge::http;
use crate::edge::org;
use crate::edge::reply::Reply;

/// Events to raise: (type, data).
type Raised = Vec<(&'static str, Value)>;

/// Where a join came from: a client call or a job item.
pub(super) enum Origin<'a> {
    Call(&'a str),
    Item(&'a str, u32),
}

/// What a client call's answer showed of the account's membership (section 14).
#[derive(Default)]
pub(super) struct Noted {
    /// The time of the request a join resolved (its event says `approved`).
    pub resolved: Option<i64>,
    /// A `pending_approval`: a request to follow, whose first check the alarm runs.
    pub requested: bool,
    /// Approvals a membership check found.
    pub raised: Raised,
}

impl SessionObject {
    /// A join's outcome: the membership it shows, a request kept for `pending_approval`, and
    /// the open requests of the group that a `joined` or `already_member` resolves (their job
    /// items move to `joined`). Answers the time of the request it resolved, for the join's
    /// own event (`approved: true`, `requested_at`). No await: part of the caller's commit.
    pub(super) fn note_join(
        &self,
        group_jid: &str,
        status: &str,
        origin: Origin,
        settings: &Settings,
        now: i64,
    ) -> worker::Result<Option<i64>> {
        let store = self.store();
        let known = store.membership(group_jid)?;
        if let Some(state) = after_join(status, known) {
            store.save_membership(group_jid, state, now)?;
        }
        if status == "pending_approval" {
            let (job, request_id) = match origin {
                Origin::Call(id) => (None, Some(id.to_string())),
                Origin::Item(job_id, index) => (Some((job_id.to_string(), index)), None),
            };
            let first_check = settings.membership_checks.check_at(now, 0);
            let request = JoinRequest {
                id: 0,
                group_jid: group_jid.to_string(),
                requested_ms: now,
                state: RequestState::Pending,
                resolved_ms: None,
                job,
                request_id,
                checks: 0,
                next_check_ms: first_check.min(expires_at(now, settings.pending_ttl_s)),
            };
            store.add_request(&request, now)?;
            return Ok(None);
        }
        let mut resolved = None;
        for request in store.pending_of(group_jid)? {
            if self.approve(&request, now)? {
                resolved = Some(request.requested_ms);
            }
        }
        Ok(resolved)
    }

    /// Keeps what a client call's successful answer shows: a join's outcome, a leave, a
    /// membership check that finds the account in the group, the account's ids in a status.
    pub(super) fn note_call(
        &self,
        sid: &str,
        rid: &str,
        op: &Op,
        data: &Value,
        settings: &Settings,
        now: i64,
    ) -> worker::Result<Noted> {
        let mut noted = Noted::default();
        match op {
            Op::Join { .. } | Op::JoinByMessage { .. } => {
                if let (Some(group), Some(status)) =
                    (data["group_jid"].as_str(), data["status"].as_str())
                {
                    noted.resolved =
                        self.note_join(group, status, Origin::Call(rid), settings, now)?;
                    noted.requested = status == "pending_approval";
                }
            }
            Op::Leave { group_jid } => self.note_leave(group_jid, now)?,
            Op::MembershipCheck { group_jid } if data["member"] == true => {
                noted.raised = self.seen_joined(sid, group_jid, false, now)?;
            }
            Op::SessionStatus => self.keep_own_ids(data)?,
            _ => {}
        }
        Ok(noted)
    }

    /// A leave joingate made: the account is no longer in the group (the server's echo of
    /// it then raises nothing).
    pub(super) fn note_leave(&self, group_jid: &str, now: i64) -> worker::Result<()> {
        self.store()
            .save_membership(group_jid, Membership::NotMember, now)
    }

    /// Resolves one request as approved (its job item moves to `joined`); whether it was
    /// still pending.
    fn approve(&self, request: &JoinRequest, now: i64) -> worker::Result<bool> {
        let store = self.store();
        if !store.resolve_request(request.id, RequestState::Approved, now)? {
            return Ok(false);
        }
        if let Some((job_id, index)) = &request.job {
            store.approve_item(job_id, *index, now)?;
        }
        Ok(true)
    }

    /// The account is in the group (a server event or a check): open requests are
    /// approved; a join the session did not know of is a server join.
    /// `by_server`: a server event says so (a membership check finds an old membership
    /// silently).
    pub(super) fn seen_joined(
        &self,
        sid: &str,
        group_jid: &str,
        by_server: bool,
        now: i64,
    ) -> worker::Result<Raised> {
        let store = self.store();
        let pending = store.pending_of(group_jid)?;
        let known = store.membership(group_jid)?;
        let mut change = membership::joined(sid, group_jid, known, pending.len());
        if !by_server {
            change.raise = None;
        }
        let mut raised = Raised::new();
        for request in &pending {
            if self.approve(request, now)? {
                raised.push(("group.join", request.approved_event(sid)));
            }
        }
        if let Some(state) = change.store {
            store.save_membership(group_jid, state, now)?;
        }
        raised.extend(change.raise);
        Ok(raised)
    }

    fn seen_left(
        &self,
        sid: &str,
        group_jid: &str,
        reason: LeaveReason,
        now: i64,
    ) -> worker::Result<Raised> {
        let store = self.store();
        let change = membership::left(sid, group_jid, store.membership(group_jid)?, reason);
        if let Some(state) = change.store {
            store.save_membership(group_jid, state, now)?;
        }
        Ok(change.raise.into_iter().collect())
    }

    pub(super) async fn raise_all(&self, org: &str, raised: Raised) {
        for (event_type, data) in raised {
            org::raise(&self.env, org, event_type, data).await;
        }
    }

    /// Applies the server's facts that waited for a join or leave at the server (or came just
    /// now), once its outcome is stored, and raises what they change.
    pub(super) async fn apply_deferred(&self, sid: &str, org: &str) -> worker::Result<()> {
        let facts: Vec<MembershipEvent> = self.deferred.borrow_mut().drain(..).collect();
        if facts.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut raised = Raised::new();
        for fact in &facts {
            raised.extend(match fact {
                MembershipEvent::Joined { group_jid } => {
                    self.seen_joined(sid, group_jid, true, now)?
                }
                MembershipEvent::Left { group_jid, reason } => {
                    self.seen_left(sid, group_jid, *reason, now)?
                }
            });
        }
        self.raise_all(org, raised).await;
        Ok(())
    }

    /// `/events`: one server event, checked in the contract's order after the Worker's
    /// token check (rate, size, signature, the kind's event), applied once, answered at once.
    pub(super) async fn server_events(&self, req: &mut Request) -> worker::Result<Reply> {
        let rid = req.headers().get("X-Request-Id")?.unwrap_or_default();
        let raw = req.headers().get(EVENTS_HEADER)?.unwrap_or_default();
        let head: EventsHead =
            serde_json::from_str(&raw).map_err(|e| worker::Error::RustError(e.to_string()))?;
        let settings = match config::settings(&self.env) {
            Ok(settings) => settings,
            Err(error) => return Ok(fail(&error, &rid)),
        };
        if !self.owned_by(&head.org)? {
            return Ok(fail(&ApiError::not_found(), &rid));
        }
        // At most `EVENTS_PER_MINUTE` (600) in a minute, counted in memory: an evicted
        // object starts a new minute.
        let now = now_ms();
        let (start, count) = match self.events_window.get() {
            (start, count) if now - start < 60_000 => (start, count),
            _ => (now, 0),
        };
        if count >= settings.events_per_minute {
            let wait_ms = u64::try_from(start + 60_000 - now).unwrap_or(1_000);
            let error = ApiError::new(ErrorCode::RateLimited)
                .with_detail("scope", "events")
                .with_retry_after(retry_after_s(wait_ms));
            return Ok(fail(&error, &rid));
        }
        self.events_window.set((start, count + 1));
        let epoch = self.epoch.get();
        let max = crate::core::route::RouteId::ServerEvents.max_body_bytes();
        let body = match http::read_capped(req.inner().body(), max).await {
            Ok(http::Capped::Whole(body)) => body,
            Ok(http::Capped::TooLarge) => {
                return Ok(fail(&ApiError::new(ErrorCode::PayloadTooLarge), &rid))
            }
            Err(_) => return Ok(fail(&ApiError::invalid("body", "could not be read"), &rid)),
        };
        let header = |name: &str| req.headers().get(name).ok().flatten();
        let verified = match events::verify(head.kind, &head.secret, &body, &header, now / 1000) {
            events::Verdict::Checked(ok) => ok,
            events::Verdict::HmacSha512 { key, tag } => {
                crate::edge::crypto::verify_hmac_sha512(&key, &tag, &body).await
            }
        };
        if !verified {
            let error = ApiError::new(ErrorCode::Unauthorized).with_message(
                "The event's signature does not verify with the session's events secret.",
            );
            return Ok(fail(&error, &rid));
        }
        let ids = self.store().own_ids()?;
        let own = Own::new(&ids.iter().map(String::as_str).collect::<Vec<_>>());
        let read = events::read(head.kind, &body, header("Content-Type").as_deref(), &own);
        let facts = match read {
            Ok(facts) => facts,
            Err(error) => return Ok(fail(&error, &rid)),
        };
        // The session changed hands while the body was read: its events are the new org's,
        // and the server sends again (to the record it then finds).
        if self.epoch.get() != epoch || !self.owned_by(&head.org)? {
            return Ok(fail(&ApiError::not_found(), &rid));
        }
        let accepted = facts.len();
        self.deferred.borrow_mut().extend(facts);
        // A join or leave at the server now: its own outcome comes first (`apply_deferred`
        // runs when it is stored); else now.
        if !self.deferring.get() {
            self.apply_deferred(&head.session, &head.org).await?;
        }
        Ok(Reply::success(200, json!({ "accepted": accepted }), &rid))
    }

    /// The alarm's part of section 14: the most overdue check runs (one per alarm: a `read`
    /// call through the queue); a request at its `PENDING_TTL_S` has a last check, and
    /// expires unless it finds the account in the group. The alarm is set again by the job
    /// step that follows it.
    pub(super) async fn follow_requests(&self) -> worker::Result<()> {
        if self.check_running.get() {
            return Ok(());
        }
        let (Some((sid, _)), Some(_)) = (self.store().meta()?, self.owner()?) else {
            return Ok(());
        };
        let settings =
            config::settings(&self.env).map_err(|e| worker::Error::RustError(e.message))?;
        let store = self.store();
        let due = store.due_requests(now_ms(), 1)?;
        let needs_ids = self.learn_ids.get();
        match due.into_iter().next() {
            Some(request) => {
                self.check_running.set(true);
                let checked = self.check(&sid, request, &settings).await;
                self.check_running.set(false);
                checked
            }
            None if needs_ids => {
                // Asked once: a failure does not come back at every alarm (a later status
                // answer teaches the ids as well).
                self.learn_ids.set(false);
                self.check_running.set(true);
                let learned = self.learn_own_ids(&sid, &settings).await;
                self.check_running.set(false);
                learned
            }
            None => Ok(()),
        }
    }

    /// The session's record, for a check's backend and limits; `None` when it is gone or
    /// cannot be read now.
    async fn record(&self, sid: &str) -> Option<SessionRecord> {
        let kv = Kv::from_env(&self.env).ok()?;
        load_session(&kv, sid).await.ok().flatten()
    }

    /// One `read` call of the session's backend through the pipeline and the queue, as a
    /// client call would make it; `Err(retry_at)` when it cannot run now.
    async fn read_call(
        &self,
        sid: &str,
        record: &SessionRecord,
        op: &Op,
        request_id: &str,
        settings: &Settings,
    ) -> worker::Result<Result<Result<Value, ApiError>, i64>> {
        let epoch = self.epoch.get();
        let limits = settings.limits.with_overrides(&record.limits);
        let limit = limits.read;
        let guard = Guard::new(settings, &record.protection, &limits.join);
        let now = now_ms();
        let probe_timeout_ms = Self::probe_timeout_ms(settings);
        let mut state = self.pipeline_state()?;
        let ask = Ask {
            class: Class::Read,
            limit,
            org_wait_s: None,
            now_ms: now,
            probe_timeout_ms,
            cap: None,
        };
        let admitted = match state.admit(&ask) {
            Ok(admitted) => admitted,
            Err(refusal) => {
                self.live.set(Some(state));
                return Ok(Err(refusal.retry_at_ms(now)));
            }
        };
        let Ok(turn) = self.gate.enter() else {
            state.turned_away(admitted, limit, now);
            self.live.set(Some(state));
            return Ok(Err(now + 1_000));
        };
        self.live.set(Some(state));
        self.set_watchdog(settings).await?;
        let permit = turn.await;
        let now = now_ms();
        let mut state = self.pipeline_state()?;
        let admitted = match state.at_turn(admitted, limit, now, probe_timeout_ms) {
            Ok(admitted) if self.epoch.get() == epoch => admitted,
            Ok(admitted) => {
                state.turned_away(admitted, limit, now);
                self.live.set(Some(state));
                return Ok(Err(now + 1_000));
            }
            Err(refusal) => {
                self.live.set(Some(state));
                return Ok(Err(refusal.retry_at_ms(now)));
            }
        };
        self.live.set(Some(state));
        let exchanged = self
            .exchange(sid, record.backend.as_ref(), op, request_id, settings)
            .await;
        let settled =
            self.settle_exchange(&guard, admitted, limit, exchanged, None, None, now_ms())?;
        drop(permit);
        Ok(Ok(settled.result))
    }

    /// Section 9's membership check of one request's group: in it, the request is
    /// approved; not in it, the next check is scheduled, or at its expiry the request
    /// expires; no answer (or no check possible), it runs again soon, or at its expiry the
    /// request expires.
    async fn check(
        &self,
        sid: &str,
        request: JoinRequest,
        settings: &Settings,
    ) -> worker::Result<()> {
        let epoch = self.epoch.get();
        let schedule = &settings.membership_checks;
        let expiry = expires_at(request.requested_ms, settings.pending_ttl_s);
        let retry = |at: i64| at.min(expiry);
        let answered = match self.record(sid).await {
            Some(record) => {
                let op = Op::MembershipCheck {
                    group_jid: request.group_jid.clone(),
                };
                let request_id = format!("check.{}.{}", request.id, request.checks + 1);
                self.read_call(sid, &record, &op, &request_id, settings)
                    .await?
            }
            None => Err(now_ms()),
        };
        // The org that owns the session now: a change of hands drops the requests.
        let (true, Some(org)) = (self.epoch.get() == epoch, self.owner()?) else {
            return Ok(());
        };
        let store = self.store();
        let now = now_ms();
        let member = match &answered {
            Ok(result) => result.as_ref().ok().and_then(member_of),
            Err(_) => None,
        };
        if member == Some(true) {
            let raised = self.seen_joined(sid, &request.group_jid, false, now)?;
            self.raise_all(&org, raised).await;
            return Ok(());
        }
        if now >= expiry {
            return self.expire(sid, &org, &request, now).await;
        }
        let (checks, at) = match (member, answered) {
            (Some(false), _) => {
                let checks = request.checks + 1;
                (checks, schedule.check_at(request.requested_ms, checks))
            }
            (_, Err(at)) => (request.checks, at.max(now + 1_000)),
            _ => (request.checks, schedule.retry_at(&request, now)),
        };
        store.schedule_check(request.id, checks, retry(at))
    }

    /// A request at its `PENDING_TTL_S` without membership: `expired`, and the org told.
    async fn expire(
        &self,
        sid: &str,
        org: &str,
        request: &JoinRequest,
        now: i64,
    ) -> worker::Result<()> {
        let store = self.store();
        if !store.resolve_request(request.id, RequestState::Expired, now)? {
            return Ok(());
        }
        let group = &request.group_jid;
        if store.pending_of(group)?.is_empty()
            && store.membership(group)? == Some(Membership::Pending)
        {
            store.save_membership(group, Membership::NotMember, now)?;
        }
        let event = request.expired_event(sid);
        self.raise_all(org, vec![("group.join_request.expired", event)])
            .await;
        Ok(())
    }

    /// Asks the server's status once for the account's ids, which some kinds' events never
    /// name (wuzapi); kept for reading later events.
    async fn learn_own_ids(&self, sid: &str, settings: &Settings) -> worker::Result<()> {
        let Some(record) = self.record(sid).await else {
            return Ok(());
        };
        let answered = self
            .read_call(sid, &record, &Op::SessionStatus, "account", settings)
            .await?;
        if let Ok(Ok(data)) = answered {
            self.keep_own_ids(&data)?;
        }
        Ok(())
    }

    /// Keeps the account's ids a status answer names (`account`: a list of JIDs).
    pub(super) fn keep_own_ids(&self, status: &Value) -> worker::Result<()> {
        let ids: Vec<String> = status
            .get("account")
            .and_then(Value::as_array)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| id.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if ids.is_empty() {
            return Ok(());
        }
        self.store().save_own_ids(&ids)
    }
}

/// The `group.join` of a join joingate made (section 11 v1.2): its source, and when it
/// resolved a request, `approved` and the request's time.
pub(super) fn join_event(mut event: Value, source: &str, resolved: Option<i64>) -> Value {
    event["source"] = Value::from(source);
    if let Some(at) = resolved {
        event["approved"] = Value::Bool(true);
        event["requested_at"] = Value::from(crate::core::time::format_rfc3339(at));
    }
    event
}

/// The `group.leave` of a leave joingate made.
pub(super) fn leave_event(sid: &str, group_jid: &str, request_id: &str) -> Value {
    json!({ "session_id": sid, "group_jid": group_jid, "request_id": request_id,
        "reason": "left", "source": "client" })
}
