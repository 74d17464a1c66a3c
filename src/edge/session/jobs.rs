//! The session object's join jobs: their routes (submit, list, get, pause, resume, cancel)
//! and the alarm that runs their items one at a time through the same pipeline and queue as
//! client calls (contract section 10). The decisions are `core::jobs`'; this is storage,
//! alarms and I/O.

use serde_json::{json, Value};

use super::super::auth::{load_session, Kv};
use super::super::config::{self, Settings};
use super::super::org;
use super::super::reply::Reply;
use super::{
    answer_error, cooldown_event, fail, now_ms, org_limited_error, random_u32, SessionObject,
    PROBE_MARGIN_MS,
};
use crate::core::backend::Op;
use crate::core::dispatch::{JobAction, JobCall, SessionRecord};
use crate::core::error::{ApiError, ErrorCode};
use crate::core::jobs::{
    counts, job_view, standings, Book, Job, Next, Outcome, Recorded, Submit, LIST_LIMIT,
    MAX_UNFINISHED_JOBS,
};
use crate::core::limits::{Class, ClassLimit, Limits};
use crate::core::pipeline::{Admitted, Ask, Cooldown};
use crate::core::queue::Turn;

impl SessionObject {
    /// The join-job routes: submit, list, get, pause, resume, cancel.
    pub(super) async fn jobs(&self, msg: JobCall) -> worker::Result<Reply> {
        let rid = msg.request_id.as_str();
        let now = now_ms();
        let scope = msg.idempotency.as_ref().map(|i| i.scope(&msg.org));
        if let Some(answer) =
            self.idempotent_answer(scope.as_deref(), msg.idempotency.as_ref(), now, rid)?
        {
            return Ok(answer);
        }
        if let Some(seconds) = msg.org_wait_s {
            return Ok(fail(&org_limited_error(seconds), rid));
        }
        let store = self.store();
        store.drop_expired_jobs(now)?;
        let (_, next_item_ms) = store.meta()?.unwrap_or((msg.session.clone(), 0));
        store.save_meta(&msg.session, next_item_ms)?;
        let mut book = Book {
            jobs: store.load_jobs(true)?,
            next_item_ms,
        };
        // Another org's job, or a job id that is not one of this session's, is unknown.
        let find = |book: &Book, id: &str| {
            book.jobs
                .iter()
                .position(|j| j.id == id && j.org == msg.org)
                .ok_or_else(ApiError::not_found)
        };
        let running = self.running_item.borrow().clone();
        let outcome: Result<(u16, Value), ApiError> = match &msg.action {
            JobAction::Submit {
                job_id,
                items,
                label,
                interval_s,
            } => {
                if book.unfinished() >= MAX_UNFINISHED_JOBS {
                    Err(ApiError::new(ErrorCode::TooManyJobs))
                } else {
                    let submit = Submit {
                        items: items.clone(),
                        label: label.clone(),
                        interval_s: *interval_s,
                    };
                    let job = Job::new(job_id.clone(), msg.org.clone(), submit, now);
                    store.save_job_with_items(&job)?;
                    book.jobs.push(job);
                    Ok((202, Value::Null))
                }
            }
            JobAction::List => Ok((200, Value::Null)),
            JobAction::Get { job_id } => find(&book, job_id).map(|_| (200, Value::Null)),
            JobAction::Pause { job_id }
            | JobAction::Resume { job_id }
            | JobAction::Cancel { job_id } => match find(&book, job_id) {
                Err(error) => Err(error),
                Ok(index) => {
                    let job = &mut book.jobs[index];
                    let running_here = running
                        .as_ref()
                        .filter(|(id, _)| *id == job.id)
                        .map(|(_, item)| *item);
                    let changed = match &msg.action {
                        JobAction::Pause { .. } => job.pause(now),
                        JobAction::Resume { .. } => job.resume(now),
                        _ => job.cancel(running_here, now),
                    };
                    match changed {
                        Ok(()) => {
                            store.save_job_with_items(job)?;
                            Ok((200, Value::Null))
                        }
                        Err(error) => Err(error),
                    }
                }
            },
        };
        let state = self.pipeline_state()?;
        let cooldown_until = state.cooldown_at(now).map(|c| c.until_ms);
        let views = standings(&book, now, cooldown_until, msg.join_per_minute);
        let view = |index: usize, items: bool| {
            job_view(&msg.session, &book.jobs[index], views[index], items)
        };
        let answer = match outcome {
            Err(error) => fail(&error, rid),
            Ok((status, _)) => {
                let data = match &msg.action {
                    JobAction::List => {
                        let jobs: Vec<Value> = (0..book.jobs.len())
                            .rev()
                            .filter(|i| book.jobs[*i].org == msg.org)
                            .take(LIST_LIMIT)
                            .map(|i| view(i, false))
                            .collect();
                        json!({ "jobs": jobs })
                    }
                    JobAction::Submit { job_id, .. }
                    | JobAction::Get { job_id }
                    | JobAction::Pause { job_id }
                    | JobAction::Resume { job_id }
                    | JobAction::Cancel { job_id } => match find(&book, job_id) {
                        Ok(index) => view(index, true),
                        Err(_) => Value::Null,
                    },
                };
                Reply::success(status, data, rid)
            }
        };
        if let (Some(scope), Some(idem)) = (&scope, &msg.idempotency) {
            let error = answer_error(&answer);
            self.remember(scope, &idem.fingerprint, &answer, error.as_ref(), now)?;
        }
        self.schedule(&book, cooldown_until, now).await?;
        Ok(answer)
    }

    /// Sets the alarm to when the next item is due, or to the next job expiry.
    async fn schedule(
        &self,
        book: &Book,
        cooldown_until: Option<i64>,
        now: i64,
    ) -> worker::Result<()> {
        let unfinished = Book {
            jobs: book
                .jobs
                .iter()
                .filter(|j| !j.status.is_finished())
                .cloned()
                .collect(),
            next_item_ms: book.next_item_ms,
        };
        let at = match unfinished.next(now, cooldown_until) {
            Next::Run { .. } => Some(now),
            Next::At(at) => Some(at),
            Next::Idle => self.store().next_expiry_ms()?,
        };
        let storage = self.state.storage();
        match at {
            Some(at) => storage.set_alarm((at - now).max(0)).await,
            None => storage.delete_alarm().await,
        }
    }

    /// An item that cannot run yet (no token, an open circuit, a full queue, a cooldown)
    /// waits until `until_ms`: no attempt.
    async fn hold(
        &self,
        book: &mut Book,
        job: usize,
        item: usize,
        until_ms: i64,
        cooldown_until: Option<i64>,
        now: i64,
    ) -> worker::Result<()> {
        book.wait(job, item, until_ms);
        self.store()
            .save_item(&book.jobs[job].id, &book.jobs[job].items[item])?;
        self.schedule(book, cooldown_until, now).await
    }

    /// One step of the session's jobs: the next due item, run like a client join.
    pub(super) async fn run_next_item(&self) -> worker::Result<()> {
        // Alarms do not overlap, but an item still running here must not run twice.
        if self.running_item.borrow().is_some() {
            return Ok(());
        }
        let epoch = self.epoch.get();
        let Some((sid, _)) = self.store().meta()? else {
            return Ok(());
        };
        let settings =
            config::settings(&self.env).map_err(|e| worker::Error::RustError(e.message))?;
        let kv = Kv::from_env(&self.env).map_err(|e| worker::Error::RustError(e.message))?;
        // The session's current record (backend, limits). Requests may run during this read,
        // so everything the step decides on is loaded after it.
        let record = load_session(&kv, &sid).await;
        if self.epoch.get() != epoch {
            return Ok(());
        }
        let Ok(Some(record)) = record else {
            // KV failed, or the session is gone: try again later (a delete resets the object).
            return self.state.storage().set_alarm(60_000i64).await;
        };
        // From here to joining the queue nothing awaits.
        let store = self.store();
        let now = now_ms();
        store.drop_expired_jobs(now)?;
        let next_item_ms = store.meta()?.map_or(0, |(_, at)| at);
        let mut book = Book {
            jobs: store.load_jobs(false)?,
            next_item_ms,
        };
        let mut state = self.pipeline_state()?;
        let cooldown_until = state.cooldown_at(now).map(|c| c.until_ms);
        let Next::Run { job, item } = book.next(now, cooldown_until) else {
            return self.schedule(&book, cooldown_until, now).await;
        };
        let limits: Limits = settings.limits.with_overrides(&record.limits);
        let limit = limits.join;
        let job_id = book.jobs[job].id.clone();
        let index = book.jobs[job].items[item].index;
        let op = book.jobs[job].items[item].op.clone();

        // An invite message whose expiration passed while it waited fails without a call.
        if let Op::JoinByMessage {
            expiration: Some(at),
            ..
        } = &op
        {
            if *at <= now / 1000 {
                let expired =
                    ApiError::new(ErrorCode::InviteExpired).with_detail("field", "expiration");
                let recorded = book.record(
                    job,
                    item,
                    Outcome::Failed(expired),
                    cooldown_until,
                    now,
                    random_u32(),
                );
                self.save_step(&book, job, item, &sid, cooldown_until, now)
                    .await?;
                self.raise_item_events(&sid, &book.jobs[job], None, recorded, None)
                    .await;
                return Ok(());
            }
        }
        let ask = Ask {
            class: Class::Join,
            limit,
            org_wait_s: None,
            now_ms: now,
            probe_timeout_ms: Self::probe_timeout_ms(&settings),
        };
        let admitted: Admitted = match state.admit(&ask) {
            Ok(admitted) => admitted,
            Err(refusal) => {
                self.live.set(Some(state));
                let until = refusal.retry_at_ms(now);
                return self
                    .hold(&mut book, job, item, until, cooldown_until, now)
                    .await;
            }
        };
        let Ok(turn) = self.gate.enter() else {
            state.turned_away(admitted, limit, now);
            self.live.set(Some(state));
            return self
                .hold(&mut book, job, item, now + 1000, cooldown_until, now)
                .await;
        };
        self.live.set(Some(state));
        *self.running_item.borrow_mut() = Some((job_id.clone(), index));
        let ran = self
            .run_item(
                &sid,
                &record,
                (job_id.clone(), index),
                &op,
                admitted,
                limit,
                turn,
                epoch,
                &settings,
            )
            .await;
        *self.running_item.borrow_mut() = None;
        ran
    }

    /// The item's turn: checked again after the wait (a pause, a cancel, a cooldown or a
    /// delete may have come), then the exchange, settled and recorded.
    #[allow(clippy::too_many_arguments)]
    async fn run_item(
        &self,
        sid: &str,
        record: &SessionRecord,
        (job_id, index): (String, u32),
        op: &Op,
        admitted: Admitted,
        limit: ClassLimit,
        turn: Turn,
        epoch: u64,
        settings: &Settings,
    ) -> worker::Result<()> {
        // A watchdog: should this instance die mid-call, the alarm runs the item again.
        let watchdog =
            i64::try_from(settings.backend_timeout_ms * 2 + PROBE_MARGIN_MS).unwrap_or(60_000);
        self.state.storage().set_alarm(watchdog).await?;
        let permit = turn.await;
        if self.epoch.get() != epoch {
            return Ok(());
        }
        let now = now_ms();
        let mut book = Book {
            jobs: self.store().load_jobs(false)?,
            next_item_ms: self.store().meta()?.map_or(0, |(_, at)| at),
        };
        let mut state = self.pipeline_state()?;
        let cooldown_until = state.cooldown_at(now).map(|c| c.until_ms);
        let still_due = book.next(now, None).eq(&{
            let job = book.jobs.iter().position(|j| j.id == job_id);
            let item = job.and_then(|j| book.jobs[j].items.iter().position(|i| i.index == index));
            match (job, item) {
                (Some(job), Some(item)) => Next::Run { job, item },
                _ => Next::Idle,
            }
        });
        if !still_due || cooldown_until.is_some() {
            state.turned_away(admitted, limit, now);
            self.live.set(Some(state));
            drop(permit);
            return self.schedule(&book, cooldown_until, now).await;
        }
        let request_id = format!("{job_id}.{index}");
        let exchanged = self
            .exchange(sid, record.backend.as_ref(), op, &request_id, settings)
            .await;
        let finished = now_ms();
        if self.epoch.get() != epoch {
            // The session was deleted meanwhile: nothing of this item is kept.
            return Ok(());
        }
        let mut state = self.pipeline_state()?;
        let (result, cooldown) = state.settle(admitted, limit, exchanged, finished);
        self.commit_state(state)?;
        drop(permit);
        let outcome = match result {
            Ok(data) => Outcome::Done(data),
            Err(error) => Outcome::Failed(error),
        };
        let code = match &outcome {
            Outcome::Done(data) => data["status"].as_str().unwrap_or("joined").to_string(),
            Outcome::Failed(error) => error.code.as_str().to_string(),
        };
        let line = json!({ "level": "info", "msg": "join job item", "session": sid, "job_id": job_id,
            "index": index, "outcome": code });
        worker::console_log!("{line}");
        // A pause or cancel may have come while the item ran: the job as it is now.
        book.jobs = self.store().load_jobs(true)?;
        let Some(job) = book.jobs.iter().position(|j| j.id == job_id) else {
            return Ok(());
        };
        let Some(item) = book.jobs[job].items.iter().position(|i| i.index == index) else {
            return Ok(());
        };
        let cooldown_until = state.cooldown_at(finished).map(|c| c.until_ms);
        let joined = match &outcome {
            Outcome::Done(data) => Some(data.clone()),
            Outcome::Failed(_) => None,
        };
        let recorded = book.record(job, item, outcome, cooldown_until, finished, random_u32());
        self.save_step(&book, job, item, sid, cooldown_until, finished)
            .await?;
        self.raise_item_events(sid, &book.jobs[job], joined, recorded, cooldown)
            .await;
        Ok(())
    }

    /// The events of a job item: its join, the job completed or paused, a cooldown.
    async fn raise_item_events(
        &self,
        sid: &str,
        job: &Job,
        joined: Option<Value>,
        recorded: Recorded,
        cooldown: Option<Cooldown>,
    ) {
        if let Some(data) = joined {
            let mut event =
                json!({ "session_id": sid, "status": data["status"], "job_id": job.id });
            if let Some(jid) = data.get("group_jid") {
                event["group_jid"] = jid.clone();
            }
            org::raise(&self.env, &job.org, "group.join", event).await;
        }
        if recorded.completed {
            let mut event = json!({ "session_id": sid, "job_id": job.id, "counts": counts(job) });
            if let Some(label) = &job.label {
                event["label"] = Value::from(label.as_str());
            }
            org::raise(&self.env, &job.org, "join_job.completed", event).await;
        }
        if recorded.paused {
            let event =
                json!({ "session_id": sid, "job_id": job.id, "pause_reason": job.pause_reason });
            org::raise(&self.env, &job.org, "join_job.paused", event).await;
        }
        if let Some(cooldown) = cooldown {
            org::raise(
                &self.env,
                &job.org,
                "session.cooldown",
                cooldown_event(sid, cooldown),
            )
            .await;
        }
    }

    async fn save_step(
        &self,
        book: &Book,
        job: usize,
        item: usize,
        sid: &str,
        cooldown_until: Option<i64>,
        now: i64,
    ) -> worker::Result<()> {
        let store = self.store();
        store.save_job(&book.jobs[job])?;
        store.save_item(&book.jobs[job].id, &book.jobs[job].items[item])?;
        store.save_meta(sid, book.next_item_ms)?;
        self.schedule(book, cooldown_until, now).await
    }
}
