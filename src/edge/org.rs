//! The org Durable Object: one per org. It keeps the org-wide limit's token bucket (and
//! the org's own limit), the org's webhook endpoint (its secret only here) and the
//! delivery log; records each event raised for the org; and makes each delivery attempt
//! the queue consumer asks for, with the endpoint in force at that moment: signed as
//! Standard Webhooks 1.0 says, 10 s at most, redirects not followed, the answer's body not
//! read. Each outstanding attempt carries a deadline (a lease), and the object's alarm
//! sweeps up every attempt whose outcome is not recorded `WEBHOOK_STALE_S` after it, so
//! nothing stays pending. What an attempt's result means is `core::webhooks`'. The Worker's
//! side of it (`ask`, `raise`, the limit's `verdict` on a call and an admin route's
//! `answer`) is in `org/calls.rs`.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use futures_util::future::{select, Either};
use futures_util::pin_mut;
use serde_json::{json, Value};
use worker::{
    durable_object, AbortController, Date, Delay, DurableObject, Env, Headers, MessageBuilder,
    Request, Response, State,
};

mod book;
mod calls;
mod deliveries;
pub use calls::{answer, ask, ask_data, book, judge, policy_mode, raise, raise_with, verdict};

use super::admin::random_bytes;
use super::config::{self, Settings};
use super::http::{self, Redirects};
use super::reply::Reply;
use super::store::{DeliveryRow, EndpointRow, OrgStore};
use crate::core::dispatch::{DeliveryTask, OrgAction};
use crate::core::envelope::hex;
use crate::core::error::ApiError;
use crate::core::limits::ClassOverride;
use crate::core::ratelimit::{retry_after_s, Bucket};
use crate::core::time::format_rfc3339;
use crate::core::url::path_of;
use crate::core::webhooks::{
    after_attempt, claim, dead_letter_applies, event_body, new_secret, queued, remake, secret_key,
    signature, sweep_at, AttemptResult, Next, Outstanding, ATTEMPT_TIMEOUT_MS, DEAD_LETTERED,
    DELIVERIES_LIMIT, NO_ENDPOINT,
};
use book::BookAsk;

/// The log keeps this many deliveries (the route shows the newest 100).
const LOG_KEEP: i64 = 1000;
/// One alarm remakes at most this many overdue attempts; it runs again at once for more.
const SWEEP_BATCH: usize = 50;

/// Fault injection for the tests, never set in a deployment: `fail_first` makes the queue
/// send of each new event's first attempt fail after its delivery was written (the sweep
/// must make that attempt).
const FAULT_WEBHOOK_SEND: &str = "FAULT_WEBHOOK_SEND";
/// Fault injection for the tests, never set in a deployment: `fail_first` makes the object
/// fail (500, before claiming) every delivery's first attempt, so the consumer retries it
/// until the message is dead-lettered.
const FAULT_WEBHOOK_ATTEMPT: &str = "FAULT_WEBHOOK_ATTEMPT";

fn now_ms() -> i64 {
    Date::now().as_millis() as i64
}

fn log_failure(msg: &str, error: &worker::Error) {
    let line = json!({ "level": "error", "msg": msg, "error": error.to_string() });
    worker::console_error!("{line}");
}

fn log_no_endpoint(delivery_id: &str) {
    let line = json!({ "level": "warn", "msg": "webhook delivery failed: the org has no endpoint", "delivery_id": delivery_id });
    worker::console_warn!("{line}");
}

#[durable_object]
pub struct OrgObject {
    state: State,
    env: Env,
    /// The schema was ensured, the org's name stored and the sweep armed by this instance
    /// (once, not on every call).
    ready: Cell<bool>,
    /// What every call's `Take` needs, mirrored in memory: this instance is the only
    /// writer of the org's storage, so the copy stays exact; it is read from storage once
    /// per instance and dropped whenever the webhook changes.
    live: RefCell<Option<LimitState>>,
    /// Rows in the delivery log: counted once per instance, then kept here (the only
    /// writer), so that an event needs no count to keep the log to `LOG_KEEP`.
    log_len: Cell<Option<i64>>,
    /// The org's join policy (section 15), read once per instance.
    policy: RefCell<Option<crate::core::policy::Policy>>,
}

/// The org limit's state as `Take` uses it.
#[derive(Clone)]
struct LimitState {
    /// The org's own limit (an override of the `[vars]` default), if any.
    over: Option<ClassOverride>,
    bucket: Option<Bucket>,
    /// The webhook's event filter (empty: no webhook), handed to each call.
    webhook_events: Value,
    /// What the join policy asks of every join, handed to each call (section 15).
    policy_mode: crate::core::policy::PolicyMode,
}

impl DurableObject for OrgObject {
    fn new(state: State, env: Env) -> Self {
        Self {
            state,
            env,
            ready: Cell::new(false),
            live: RefCell::new(None),
            log_len: Cell::new(None),
            policy: RefCell::new(None),
        }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let store = self.store();
        let org = path_of(&req.inner().url())
            .trim_start_matches('/')
            .to_string();
        if !self.ready.get() {
            store.ensure_schema()?;
            // Kept for the alarm, which is not told whose object it runs in.
            if store.org_name()?.as_deref() != Some(org.as_str()) {
                store.save_org_name(&org)?;
            }
            self.ready.set(true);
            // An instance that starts (after a restart, or on a log from before v1.2) arms
            // the sweep for what is pending; a failure costs this call nothing.
            if let Err(error) = self.arm_for_pending(&store).await {
                log_failure("webhook sweep not armed", &error);
            }
        }
        let action: OrgAction = super::json_body(&mut req).await?;
        let reply = match self.act(&store, &org, action).await {
            Ok((status, data)) => Reply::success(status, data, "org"),
            Err(error) => Reply::error(&error, "org", now_ms()),
        };
        reply.into_object_response()
    }

    /// The sweep: every pending delivery whose attempt's outcome is not recorded
    /// `WEBHOOK_STALE_S` after its deadline has that attempt made again.
    async fn alarm(&self) -> worker::Result<Response> {
        let store = self.store();
        store.ensure_schema()?;
        if let Err(error) = self.sweep(&store).await {
            log_failure("webhook sweep failed", &error);
            // Try again in a minute rather than never.
            self.state.storage().set_alarm(60_000i64).await?;
        }
        Response::ok("swept")
    }
}

/// The endpoint as answered: never the secret.
impl OrgObject {
    fn store(&self) -> OrgStore {
        OrgStore::new(self.state.storage().sql())
    }

    fn settings(&self) -> worker::Result<std::rc::Rc<Settings>> {
        config::settings(&self.env).map_err(|e| worker::Error::RustError(e.message))
    }

    /// Whether a fault injection knob is set to `fail_first` (tests only).
    fn fault(&self, knob: &str) -> bool {
        let set = config::var(&self.env, knob).is_some_and(|v| v == "fail_first");
        if set {
            let line = json!({ "level": "warn", "msg": "fault injected", "knob": knob });
            worker::console_warn!("{line}");
        }
        set
    }

    async fn enqueue(
        &self,
        org: &str,
        delivery_id: &str,
        attempts: i64,
        delay_s: u64,
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
        let delay = u32::try_from(delay_s).unwrap_or(u32::MAX);
        queue
            .send(MessageBuilder::new(body).delay_seconds(delay).build())
            .await
    }

    /// Queues the outstanding attempt `next` of a delivery, after making sure the sweep
    /// comes for it should it get lost. Neither failure fails the caller: the delivery is
    /// written, and the sweep (or the next instance, which arms it) makes the attempt.
    async fn dispatch(&self, org: &str, delivery_id: &str, next: Outstanding, delay_s: u64) {
        if let Err(error) = self.arm_for(next).await {
            log_failure("webhook sweep not armed", &error);
        }
        if let Err(error) = self.enqueue(org, delivery_id, next.attempts, delay_s).await {
            log_failure("webhook attempt not queued; the sweep makes it", &error);
        }
    }

    /// Makes sure the alarm comes no later than the sweep of an attempt with this lease.
    async fn arm_for(&self, lease: Outstanding) -> worker::Result<()> {
        let stale_s = self.settings()?.webhook_stale_s;
        self.arm(sweep_at(lease.deadline_ms, stale_s)).await
    }

    /// Sets the alarm to `at` unless it is set sooner already. The invariant: the alarm is
    /// no later than the sweep of any pending delivery (an alarm that finds nothing overdue
    /// sets itself to the next one).
    async fn arm(&self, at: i64) -> worker::Result<()> {
        let storage = self.state.storage();
        match storage.get_alarm().await? {
            Some(current) if current <= at => Ok(()),
            _ => storage.set_alarm((at - now_ms()).max(0)).await,
        }
    }

    async fn arm_for_pending(&self, store: &OrgStore) -> worker::Result<()> {
        match store.next_deadline()? {
            Some(deadline_ms) => {
                let stale_s = self.settings()?.webhook_stale_s;
                self.arm(sweep_at(deadline_ms, stale_s)).await
            }
            None => Ok(()),
        }
    }

    async fn sweep(&self, store: &OrgStore) -> worker::Result<()> {
        let stale_s = self.settings()?.webhook_stale_s;
        let now = now_ms();
        let stale_ms = i64::try_from(stale_s.saturating_mul(1000)).unwrap_or(i64::MAX);
        // Nothing awaits from this read to the last write: every swap sees what was read.
        let overdue = store.overdue(now.saturating_sub(stale_ms), SWEEP_BATCH)?;
        let endpoint = store.endpoint()?;
        let org = store.org_name()?;
        let mut remade = Vec::new();
        for mut row in overdue {
            let Some(current) = row.outstanding() else {
                continue;
            };
            let Some(again) = remake(current, stale_s, now) else {
                continue;
            };
            row.updated_ms = now;
            if endpoint.is_none() {
                // The remade attempt would come due with no endpoint: it ends here.
                row.state = "failed".into();
                row.last_error = Some(NO_ENDPOINT.into());
                row.attempts = again.attempts;
                row.set_outstanding(None);
                if store.swap(&row, current)? {
                    log_no_endpoint(&row.delivery_id);
                }
                continue;
            }
            row.set_outstanding(Some(again));
            if store.swap(&row, current)? {
                remade.push((row.delivery_id, again));
            }
        }
        // The alarm for what is left before any send: a send that fails leaves its
        // attempt to a later sweep.
        let storage = self.state.storage();
        match store.next_deadline()? {
            Some(deadline_ms) => {
                let at = sweep_at(deadline_ms, stale_s);
                storage.set_alarm((at - now_ms()).max(0)).await?;
            }
            None => storage.delete_alarm().await?,
        }
        let Some(org) = org else {
            worker::console_error!(
                "{{\"level\":\"error\",\"msg\":\"webhook sweep: the org's name is not known\"}}"
            );
            return Ok(());
        };
        for (delivery_id, again) in remade {
            let line = json!({ "level": "warn", "msg": "webhook attempt overdue; made again", "delivery_id": delivery_id, "attempts": again.attempts });
            worker::console_warn!("{line}");
            if let Err(error) = self.enqueue(&org, &delivery_id, again.attempts, 0).await {
                log_failure("webhook attempt not queued; the sweep makes it", &error);
            }
        }
        Ok(())
    }

    /// Keeps the log to the newest `LOG_KEEP` after a delivery was added: the count is
    /// read once per instance, and only the excess is deleted, oldest first, by index.
    fn trim(&self, store: &OrgStore) -> worker::Result<()> {
        let len = match self.log_len.get() {
            Some(len) => len + 1,
            None => store.log_len()?,
        };
        if len > LOG_KEEP {
            store.drop_oldest(len - LOG_KEEP)?;
            self.log_len.set(Some(LOG_KEEP));
        } else {
            self.log_len.set(Some(len));
        }
        Ok(())
    }

    async fn act(
        &self,
        store: &OrgStore,
        org: &str,
        action: OrgAction,
    ) -> Result<(u16, Value), ApiError> {
        let failed = |error: worker::Error| {
            log_failure("org object failure", &error);
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
                        policy_mode: self.policy(store).map_err(failed)?.mode(),
                    },
                };
                let limit = default.with_override(live.over);
                let bucket = live.bucket.unwrap_or_else(|| Bucket::full(limit, now));
                return Ok(match bucket.take(limit, now) {
                    Ok(spent) => {
                        store.save_org_bucket(&spent).map_err(failed)?;
                        live.bucket = Some(spent);
                        let answer = json!({ "allowed": true, "webhook_events": live.webhook_events, "policy": live.policy_mode.view() });
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
            OrgAction::PutOrg {
                limits,
                keep_limits,
                policy,
                default,
            } => {
                if !keep_limits {
                    store.save_org_limit(*limits).map_err(failed)?;
                    if let Some(live) = self.live.borrow_mut().as_mut() {
                        live.over = *limits;
                    }
                }
                if let Some(policy) = policy {
                    let policy = crate::core::policy::Policy::parse(policy)?;
                    self.save_policy(store, policy).map_err(failed)?;
                }
                let limit = default.with_override(store.org_limit().map_err(failed)?);
                let policy = self.policy(store).map_err(failed)?.view();
                return Ok((
                    200,
                    json!({ "org": org, "limits": limit, "policy": policy }),
                ));
            }
            OrgAction::GetOrg { default } => {
                let limit = default.with_override(store.org_limit().map_err(failed)?);
                let policy = self.policy(store).map_err(failed)?.view();
                return Ok((
                    200,
                    json!({ "org": org, "limits": limit, "policy": policy }),
                ));
            }
            _ => {}
        }
        let ask = match action {
            OrgAction::Book { updates } => Some(BookAsk::Facts(updates)),
            OrgAction::Groups { data } => Some(BookAsk::Groups(data)),
            OrgAction::Recover { data } => Some(BookAsk::Recover(data)),
            OrgAction::Judge { data } => Some(BookAsk::Judge(data)),
            OrgAction::PolicyMode => Some(BookAsk::Mode),
            OrgAction::Event {
                event_type,
                data,
                book: Some(update),
            } => {
                // The book first: the event's delivery may not be wanted at all.
                self.apply_update(store, org, &update)
                    .await
                    .map_err(failed)?;
                let event = OrgAction::Event {
                    event_type,
                    data,
                    book: None,
                };
                return self.deliveries_act(store, org, event, now).await;
            }
            action => {
                return self.deliveries_act(store, org, action, now).await;
            }
        };
        match ask {
            Some(ask) => self.book_act(store, org, ask).await,
            None => Err(ApiError::internal()),
        }
    }
}
