//! The session object's join jobs: their routes (submit, list, get, pause, resume, cancel)
//! and the alarm that runs their items one at a time through the same pipeline and queue as
//! client calls (contract section 10). The decisions are `core::jobs`'; this is storage,
//! alarms and I/O.
//!
//! Every route and every item reads only what it is about (the store's queries are bounded
//! by the job, never by the history): a job with its items, the list's rows without items,
//! and the scheduler's book of unfinished jobs, each with its next pending item. GET routes
//! write nothing.

use serde_json::{json, Value};

use super::super::auth::{load_session, Kv};
use super::super::config::{self, Settings};
use super::super::org;
use super::super::reply::Reply;
use super::exchange::JoinPlan;
use super::group_book::call_fact;
use super::guard::Guard;
use super::membership::{join_event, Origin};
use super::{
    answer_error, cooldown_event, fail, now_ms, org_limited_error, random_u32, SessionObject,
};
use crate::core::backend::Op;
use crate::core::dispatch::{JobAction, JobCall, SessionRecord};
use crate::core::error::{ApiError, ErrorCode};
use crate::core::job_views::Holds;
use crate::core::jobs::{
    counts, interrupted, job_view, standings, Book, Job, Next, Outcome, Recorded, Standing, Submit,
    CANCEL_REQUESTED, LIST_LIMIT, MAX_UNFINISHED_JOBS,
};
use crate::core::limits::{Class, ClassLimit, Limits};
use crate::core::pipeline::{met_restriction, Admitted, Ask, Cooldown};
use crate::core::protection::{draw_break, Ledger};
use crate::core::queue::Turn;

/// Where every job of the book stands: holds (cooldown, caps, window) and estimates from
/// section 13's policy for this session.
fn standings_now(
    book: &Book,
    guard: &Guard,
    ledger: &Ledger,
    holds: &Holds,
    now: i64,
) -> Vec<Standing> {
    let estimate =
        |start: i64, interval_s: u32, items: u32| guard.estimate(ledger, start, interval_s, items);
    standings(book, now, holds, &estimate)
}

/// Where a job stands in the book of unfinished jobs (nothing for a finished one).
fn standing_of(book: &Book, standings: &[Standing], job_id: &str) -> Standing {
    book.jobs
        .iter()
        .zip(standings)
        .find(|(job, _)| job.id == job_id)
        .map_or(Standing::default(), |(_, standing)| *standing)
}

impl SessionObject {
    /// A counted call that never sent its join or leave stops counting.
    fn uncount(&self, counted_at: i64) -> worker::Result<()> {
        let mut ledger = self.ledger()?;
        ledger.uncount(counted_at);
        self.commit_ledger(ledger)
    }

    /// The scheduler's book: the owner's unfinished jobs, oldest first, each with its next
    /// pending item, and the pace.
    fn book(&self) -> worker::Result<Book> {
        let store = self.store();
        let owner = self.owner()?;
        let jobs = store
            .unfinished_jobs()?
            .into_iter()
            .filter(|job| owner.as_deref().is_none_or(|org| org == job.org))
            .collect();
        Ok(Book {
            jobs,
            next_item_ms: store.meta()?.map_or(0, |(_, at)| at),
        })
    }

    /// The join-job routes: submit, list, get, pause, resume, cancel.
    pub(super) async fn jobs(&self, msg: JobCall) -> worker::Result<Reply> {
        let rid = msg.request_id.as_str();
        let now = now_ms();
        if !self.owned_by(&msg.org)? {
            return Ok(fail(&ApiError::not_found(), rid));
        }
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
        let settings = match config::settings(&self.env) {
            Ok(settings) => settings,
            Err(error) => return Ok(fail(&error, rid)),
        };
        let guard = Guard::new(&settings, &msg.protection, &msg.limits.join);
        let mut ledger = self.ledger()?;
        ledger.prune(guard.config, now);
        let holds = self.holds(&guard, &ledger, now)?;
        // Another org's job, or a job id that is not one of this session's, is unknown.
        let load = |job_id: &str| -> worker::Result<Result<Job, ApiError>> {
            Ok(match store.job(job_id, &msg.org, now)? {
                Some(mut job) => {
                    job.items = store.items(&job.id)?;
                    Ok(job)
                }
                None => Err(ApiError::not_found()),
            })
        };
        let outcome: Result<(u16, Job), ApiError> = match &msg.action {
            JobAction::PendingJoins => {
                let pending: Vec<Value> = store
                    .list_requests(now)?
                    .iter()
                    .map(crate::core::membership::Request::view)
                    .collect();
                return Ok(Reply::success(200, json!({ "pending": pending }), rid));
            }
            JobAction::List => {
                let book = self.book()?;
                let standings = standings_now(&book, &guard, &ledger, &holds, now);
                let jobs: Vec<Value> = store
                    .list_jobs(&msg.org, LIST_LIMIT, now)?
                    .iter()
                    .map(|job| {
                        let standing = standing_of(&book, &standings, &job.id);
                        job_view(&msg.session, job, standing, false)
                    })
                    .collect();
                return Ok(Reply::success(200, json!({ "jobs": jobs }), rid));
            }
            JobAction::Get { job_id } => load(job_id)?.map(|job| (200, job)),
            JobAction::Submit {
                job_id,
                items,
                label,
                interval_s,
                source,
            } => {
                if store.unfinished_count(&msg.org)? >= MAX_UNFINISHED_JOBS {
                    Err(ApiError::new(ErrorCode::TooManyJobs))
                } else {
                    let submit = Submit {
                        items: items.clone(),
                        label: label.clone(),
                        interval_s: *interval_s,
                        from_session: None,
                    };
                    let mut job = Job::new(job_id.clone(), msg.org.clone(), submit, now);
                    // A recovery job (section 15) shows each item's group from the start.
                    if let Some(source) = source {
                        job = job.with_source(source.clone());
                    }
                    store.save_job_with_items(&job)?;
                    let next_item_ms = store.meta()?.map_or(0, |(_, at)| at);
                    store.save_meta(&msg.session, next_item_ms)?;
                    Ok((202, job))
                }
            }
            JobAction::Pause { job_id }
            | JobAction::Resume { job_id }
            | JobAction::Cancel { job_id } => match load(job_id)? {
                Err(error) => Err(error),
                Ok(mut job) => {
                    // Only an item whose backend call is under way finishes after a cancel.
                    let running_here = self
                        .running_item
                        .borrow()
                        .as_ref()
                        .filter(|(id, _)| *id == job.id)
                        .map(|(_, item)| *item);
                    let changed = match &msg.action {
                        JobAction::Pause { .. } => job.pause(now),
                        JobAction::Resume { .. } => job.resume(now).and_then(|()| {
                            store
                                .resume_items(&job.id, now)
                                .map_err(|_| ApiError::internal())
                        }),
                        _ => job
                            .cancel(running_here, CANCEL_REQUESTED, now)
                            .and_then(|()| {
                                store
                                    .cancel_items(&job.id, running_here, now)
                                    .map_err(|_| ApiError::internal())
                            }),
                    };
                    match changed {
                        Ok(()) => {
                            store.save_job(&job)?;
                            store.drop_old_jobs(now)?;
                            Ok((200, job))
                        }
                        Err(error) => Err(error),
                    }
                }
            },
        };
        let is_get = matches!(msg.action, JobAction::Get { .. });
        let (answer, stored_body) = match &outcome {
            Err(error) => {
                let answer = fail(error, rid);
                let body = answer.body.clone();
                (answer, body)
            }
            Ok((status, job)) => {
                let book = self.book()?;
                let standings = standings_now(&book, &guard, &ledger, &holds, now);
                let standing = standing_of(&book, &standings, &job.id);
                let answer =
                    Reply::success(*status, job_view(&msg.session, job, standing, true), rid);
                // A replay answers the job without its items (GET the job for them): a record
                // stays small whatever the job's size.
                let stored =
                    Reply::success(*status, job_view(&msg.session, job, standing, false), rid);
                (answer, stored.body)
            }
        };
        if let (Some(scope), Some(idem)) = (&scope, &msg.idempotency) {
            let error = answer_error(&answer);
            self.remember(
                scope,
                &idem.fingerprint,
                answer.status,
                &stored_body,
                error.as_ref(),
                true,
                now,
            )?;
        }
        if !is_get {
            self.reschedule(now, &holds).await?;
        }
        Ok(answer)
    }

    /// What holds the session's items now: a cooldown, a cap or the window.
    pub(super) fn holds(&self, guard: &Guard, ledger: &Ledger, now: i64) -> worker::Result<Holds> {
        Ok(Holds {
            cooldown_until: self.pipeline_state()?.cooldown_at(now).map(|c| c.until_ms),
            wait: guard.hold(ledger, now),
        })
    }

    /// Sets the alarm to when the next item is due (after `holds`), or to the next job
    /// expiry; none when nothing is left.
    pub(super) async fn reschedule(&self, now: i64, holds: &Holds) -> worker::Result<()> {
        let book = self.book()?;
        let at = match book.next(now, holds.until()) {
            Next::Run { .. } => Some(now),
            Next::At(at) => Some(at),
            Next::Idle => self.store().next_expiry_ms()?,
        };
        // Section 14's next check or expiry of a pending request, or the account's ids to
        // learn now.
        let at = match (at, self.store().next_check_ms()?) {
            _ if self.learn_ids.get() => Some(now),
            (Some(at), Some(check)) => Some(at.min(check)),
            (at, check) => at.or(check),
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
        now: i64,
    ) -> worker::Result<()> {
        book.wait(job, item, until_ms);
        self.store()
            .save_item(&book.jobs[job].id, &book.jobs[job].items[item])?;
        self.reschedule(now, &Holds::default()).await
    }

    /// One step of the session's jobs: the next due item, run like a client join.
    pub(super) async fn run_next_item(&self) -> worker::Result<()> {
        // Alarms do not overlap, but an item still running here must not run twice.
        if self.item_picked.get() {
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
        let record = match record {
            Ok(Some(record)) => record,
            // KV failed: try again in a minute.
            Err(_) => return self.state.storage().set_alarm(60_000i64).await,
            // No record: the session was deleted (its DELETE resets this object too, unless
            // it failed). Nothing runs and the alarm stops; a PUT or a job route sets it again.
            Ok(None) => {
                let line = json!({ "level": "info", "msg": "join jobs stopped: the session has no record", "session": sid });
                worker::console_log!("{line}");
                return Ok(());
            }
        };
        // From here to joining the queue nothing awaits.
        let now = now_ms();
        // Finished jobs past their 7 days go when the first of them is due (the drop reads
        // the finished jobs; the check reads one index entry).
        if self.store().next_expiry_ms()?.is_some_and(|at| at <= now) {
            self.store().drop_old_jobs(now)?;
        }
        let limits: Limits = settings.limits.with_overrides(&record.limits);
        let limit = limits.join;
        let guard = Guard::new(&settings, &record.protection, &limits.join);
        let mut ledger = self.ledger()?;
        ledger.prune(guard.config, now);
        // The cooldown, the caps and the window hold every item (section 13).
        let holds = self.holds(&guard, &ledger, now)?;
        let mut book = self.book()?;
        let mut state = self.pipeline_state()?;
        let Next::Run { job, item } = book.next(now, holds.until()) else {
            return self.reschedule(now, &holds).await;
        };
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
                return self
                    .finish_step(
                        &sid,
                        &guard,
                        book,
                        (job, item),
                        Outcome::Failed(expired),
                        None,
                        now,
                    )
                    .await;
            }
        }
        let ask = Ask {
            class: Class::Join,
            limit,
            org_wait_s: None,
            now_ms: now,
            probe_timeout_ms: Self::probe_timeout_ms(&settings),
            cap: guard.cap_refusal(&ledger, now),
        };
        let admitted: Admitted = match state.admit(&ask) {
            Ok(admitted) => admitted,
            Err(refusal) => {
                self.live.set(Some(state));
                let until = refusal.retry_at_ms(now);
                return self.hold(&mut book, job, item, until, now).await;
            }
        };
        let Ok(turn) = self.gate.enter() else {
            state.turned_away(admitted, limit, now);
            self.live.set(Some(state));
            return self.hold(&mut book, job, item, now + 1000, now).await;
        };
        self.live.set(Some(state));
        // The item counts from its admission; it stops counting if it never goes.
        ledger.count(now);
        self.commit_ledger(ledger)?;
        self.item_picked.set(true);
        self.run_item(
            &sid,
            &record,
            &guard,
            now,
            (job_id, index),
            admitted,
            limit,
            turn,
            epoch,
            &settings,
        )
        .await
    }

    /// The item's turn: checked again after the wait (a pause, a cancel, a cooldown, an open
    /// circuit or a delete may have come), its attempt stored, then the exchange, settled
    /// and recorded.
    #[allow(clippy::too_many_arguments)]
    async fn run_item(
        &self,
        sid: &str,
        record: &SessionRecord,
        guard: &Guard<'_>,
        counted_at: i64,
        (job_id, index): (String, u32),
        admitted: Admitted,
        limit: ClassLimit,
        turn: Turn,
        epoch: u64,
        settings: &Settings,
    ) -> worker::Result<()> {
        self.set_watchdog(settings).await?;
        let permit = turn.await;
        let now = now_ms();
        let mut state = self.pipeline_state()?;
        let mut book = self.book()?;
        let due = book.next(now, None);
        let position = book.jobs.iter().position(|j| j.id == job_id).and_then(|j| {
            let i = book.jobs[j].items.iter().position(|i| i.index == index)?;
            Some((j, i))
        });
        let (job, item) = match (position, due) {
            (Some((j, i)), Next::Run { job, item })
                if (j, i) == (job, item) && self.epoch.get() == epoch =>
            {
                (j, i)
            }
            // Cancelled, paused or no longer first while it waited: it does not go.
            _ => {
                state.turned_away(admitted, limit, now);
                self.live.set(Some(state));
                self.uncount(counted_at)?;
                drop(permit);
                let ledger = self.ledger()?;
                return self
                    .reschedule(now, &self.holds(guard, &ledger, now)?)
                    .await;
            }
        };
        let admitted = match state.at_turn(admitted, limit, now, Self::probe_timeout_ms(settings)) {
            Ok(admitted) => admitted,
            Err(refusal) => {
                self.live.set(Some(state));
                self.uncount(counted_at)?;
                drop(permit);
                let until = refusal.retry_at_ms(now);
                return self.hold(&mut book, job, item, until, now).await;
            }
        };
        if !book.begin_attempt(job, item) {
            // Every attempt was cut off before its outcome was kept: it ends, no more calls.
            state.turned_away(admitted, limit, now);
            self.live.set(Some(state));
            self.uncount(counted_at)?;
            drop(permit);
            let failed = Outcome::Failed(interrupted());
            return self
                .finish_step(sid, guard, book, (job, item), failed, None, now)
                .await;
        }
        // The spent token and the attempt are durable before the call (one commit), so a
        // crash after it can neither bypass the limit nor repeat it without end.
        self.commit_state(state)?;
        self.store().save_job(&book.jobs[job])?;
        self.store()
            .save_item(&job_id, &book.jobs[job].items[item])?;
        let op = book.jobs[job].items[item].op.clone();
        let expected = book.jobs[job].items[item].expected_group_jid.clone();
        let org = book.jobs[job].org.clone();
        *self.running_item.borrow_mut() = Some((job_id.clone(), index));
        let request_id = format!("{job_id}.{index}");
        let plan = JoinPlan {
            org: &org,
            expected: expected.as_deref(),
            mode: None,
            job_item: true,
        };
        let outcome = self
            .exchange_call(
                sid,
                record.backend.as_ref(),
                &op,
                &plan,
                &request_id,
                settings,
            )
            .await;
        *self.running_item.borrow_mut() = None;
        // An item that ended before its join request does not count (section 13).
        if !outcome.sent {
            self.uncount(counted_at)?;
        }
        let (exchanged, subject) = (outcome.exchanged, outcome.subject);
        let stated_end_ms = if met_restriction(&exchanged) {
            self.restriction_end(sid, record.backend.as_ref(), &request_id, settings)
                .await
        } else {
            None
        };
        let finished = now_ms();
        let settled = self.settle_exchange(
            guard,
            admitted,
            limit,
            exchanged,
            outcome.sent.then_some(counted_at),
            stated_end_ms,
            finished,
        )?;
        let (result, cooldown) = (settled.result, settled.cooldown);
        drop(permit);
        if self.epoch.get() != epoch {
            // The session was deleted or changed hands meanwhile: its jobs are gone or
            // cancelled, and nothing of this item is kept.
            return Ok(());
        }
        // The book's fact (with the code that joined) before the item's own event, which
        // says the same without the code: the book keeps the later of two facts.
        if let Some(fact) = result
            .as_ref()
            .ok()
            .and_then(|data| call_fact(sid, &op, data, subject, finished))
        {
            org::book(&self.env, &org, vec![fact]).await;
        }
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
        // A pause or cancel may have come while the item ran: the job and item as they are.
        let store = self.store();
        let (Some(mut current), Some(entry)) = (
            store.job(&job_id, &org, finished)?,
            store.item(&job_id, index)?,
        ) else {
            return Ok(());
        };
        current.items = vec![entry];
        let single = Book {
            jobs: vec![current],
            next_item_ms: book.next_item_ms,
        };
        self.finish_step(sid, guard, single, (0, 0), outcome, cooldown, finished)
            .await
    }

    /// Records an item's outcome in its job, stores the job, the item and the pace, sets
    /// the alarm, and raises the events.
    #[allow(clippy::too_many_arguments)]
    async fn finish_step(
        &self,
        sid: &str,
        guard: &Guard<'_>,
        mut book: Book,
        (job, item): (usize, usize),
        outcome: Outcome,
        cooldown: Option<Cooldown>,
        now: i64,
    ) -> worker::Result<()> {
        let cooldown_until = self.pipeline_state()?.cooldown_at(now).map(|c| c.until_ms);
        let joined = match &outcome {
            Outcome::Done(data) => Some(data.clone()),
            Outcome::Failed(_) => None,
        };
        // The pace after this item: a break after every few items, else 1x to 2x the
        // interval, never sooner than the spread rule (section 10 v1.2, section 13).
        let store = self.store();
        let ledger = self.ledger()?;
        let random = random_u32();
        // Items before the next break, this one included (drawn at the first item).
        let left = match store.until_break()? {
            Some(left) => left,
            None => draw_break(guard.config, random).1,
        };
        let (break_ms, until_break) = if left <= 1 {
            let (length, every) = draw_break(guard.config, random);
            ((length > 0).then_some(length), every)
        } else {
            (None, left - 1)
        };
        let interval_s = book.jobs.get(job).map_or(0, |j| j.interval_s);
        let next_item_ms = guard.next_item(&ledger, interval_s, break_ms, now, random_u32());
        let recorded = book.record(job, item, outcome, cooldown_until, now, next_item_ms);
        store.save_until_break(until_break)?;
        store.save_job(&book.jobs[job])?;
        store.save_item(&book.jobs[job].id, &book.jobs[job].items[item])?;
        // Section 14: the item's join as the session's membership, or a request to follow;
        // after the job is stored, since an approval it resolves may be another item of it
        // (whose counts the store then moves: read back).
        let mut resolved = None;
        if let Some(data) = &joined {
            let settings =
                config::settings(&self.env).map_err(|e| worker::Error::RustError(e.message))?;
            if let (Some(group), Some(status)) =
                (data["group_jid"].as_str(), data["status"].as_str())
            {
                let index = book.jobs[job].items[item].index;
                let origin = Origin::Item(&book.jobs[job].id, index);
                resolved = self.note_join(group, status, origin, &settings, now)?;
            }
        }
        if resolved.is_some() {
            let (id, org) = (&book.jobs[job].id, &book.jobs[job].org);
            if let Some(stored) = store.job(id, org, now)? {
                book.jobs[job].counts = stored.counts;
            }
        }
        store.save_meta(sid, book.next_item_ms)?;
        if recorded.completed {
            store.drop_old_jobs(now)?;
        }
        self.reschedule(now, &self.holds(guard, &ledger, now)?)
            .await?;
        self.raise_item_events(sid, &book.jobs[job], joined, resolved, recorded, cooldown)
            .await;
        // Server events that came while the item was at the server (its echo among them).
        let org = book.jobs[job].org.clone();
        self.apply_deferred(sid, &org).await?;
        Ok(())
    }

    /// The events of a job item: its join, the job completed or paused, a cooldown.
    async fn raise_item_events(
        &self,
        sid: &str,
        job: &Job,
        joined: Option<Value>,
        resolved: Option<i64>,
        recorded: Recorded,
        cooldown: Option<Cooldown>,
    ) {
        if let Some(data) = joined {
            let mut event =
                json!({ "session_id": sid, "status": data["status"], "job_id": job.id });
            if let Some(jid) = data.get("group_jid") {
                event["group_jid"] = jid.clone();
            }
            let event = join_event(event, "job", resolved);
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
}
