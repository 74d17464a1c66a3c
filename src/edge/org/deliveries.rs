//! The org object's webhook side (contract section 11): the endpoint, events raised, each
//! delivery attempt and the delivery log. What an attempt's result means is
//! `core::webhooks`'.

use serde_json::{json, Value};

use super::*;

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

/// The state a delivery is in after an attempt's verdict.
fn state_after(next: Next) -> &'static str {
    match next {
        Next::Delivered => "delivered",
        Next::Failed => "failed",
        Next::RetryIn(_) => "pending",
    }
}

impl OrgObject {
    /// The webhook's actions: the endpoint, events raised, attempts and the delivery log.
    pub(super) async fn deliveries_act(
        &self,
        store: &OrgStore,
        org: &str,
        action: OrgAction,
        now: i64,
    ) -> Result<(u16, Value), ApiError> {
        let failed = |error: worker::Error| {
            log_failure("org object failure", &error);
            ApiError::internal()
        };
        let endpoint = store.endpoint().map_err(failed)?;
        let done = || Ok((200, json!({ "done": true })));
        match action {
            OrgAction::Take { .. }
            | OrgAction::PutOrg { .. }
            | OrgAction::GetOrg { .. }
            | OrgAction::Book { .. }
            | OrgAction::Groups { .. }
            | OrgAction::Recover { .. }
            | OrgAction::Judge { .. }
            | OrgAction::PolicyMode => Err(ApiError::internal()),
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
                let stale_s = self.settings().map_err(failed)?.webhook_stale_s;
                let again = match row.outstanding() {
                    // Settled: a new round of attempts, the count going on.
                    None => {
                        row.state = "pending".into();
                        row.round_start = row.attempts;
                        Some(queued(row.attempts, 0, now))
                    }
                    // Pending: queued again only when its attempt is overdue; otherwise
                    // that attempt is on its way.
                    Some(current) => remake(current, stale_s, now),
                };
                if let Some(again) = again {
                    row.set_outstanding(Some(again));
                    row.updated_ms = now;
                    store.save_delivery(&row).map_err(failed)?;
                    self.dispatch(org, &delivery_id, again, 0).await;
                }
                Ok((
                    202,
                    json!({ "delivery_id": delivery_id, "state": "pending" }),
                ))
            }
            OrgAction::Event {
                event_type, data, ..
            } => {
                // Only an endpoint in force now, whose filter takes this type, gets it.
                if !endpoint.is_some_and(|e| {
                    serde_json::from_str::<Vec<String>>(&e.events)
                        .is_ok_and(|events| events.contains(&event_type))
                }) {
                    return Ok((200, json!({ "raised": false })));
                }
                let delivery_id = format!("msg_{}", hex(&random_bytes::<12>()?));
                let first = queued(0, 0, now);
                let mut row = DeliveryRow {
                    delivery_id: delivery_id.clone(),
                    body: event_body(&event_type, &format_rfc3339(now), &data),
                    event_type,
                    state: "pending".into(),
                    attempts: 0,
                    round_start: 0,
                    last_status: None,
                    last_error: None,
                    created_ms: now,
                    updated_ms: now,
                    claimed: 0,
                    deadline_ms: None,
                };
                row.set_outstanding(Some(first));
                store.save_delivery(&row).map_err(failed)?;
                // The delivery is written: what follows never un-raises it.
                if let Err(error) = self.trim(store) {
                    log_failure("delivery log not trimmed", &error);
                }
                if self.fault(FAULT_WEBHOOK_SEND) {
                    // As a send that failed after the write: only the sweep is left.
                    if let Err(error) = self.arm_for(first).await {
                        log_failure("webhook sweep not armed", &error);
                    }
                } else {
                    self.dispatch(org, &delivery_id, first, 0).await;
                }
                Ok((200, json!({ "raised": true })))
            }
            OrgAction::Attempt {
                delivery_id,
                attempts,
            } => {
                if attempts == 0 && self.fault(FAULT_WEBHOOK_ATTEMPT) {
                    return Err(ApiError::internal());
                }
                let Some(mut row) = store.delivery(&delivery_id).map_err(failed)? else {
                    return done();
                };
                // Claimed before the fetch, with no await since the read: a duplicate or
                // stale task finds nothing to do.
                let Some(current) = row.outstanding() else {
                    return done();
                };
                let Some(lease) = claim(current, attempts, now) else {
                    return done();
                };
                row.updated_ms = now;
                let Some(endpoint) = endpoint else {
                    // Due with no endpoint in force: the delivery ends (no attempt made).
                    row.state = "failed".into();
                    row.last_error = Some(NO_ENDPOINT.into());
                    row.set_outstanding(None);
                    if store.swap(&row, current).map_err(failed)? {
                        log_no_endpoint(&delivery_id);
                    }
                    return Ok((200, json!({ "state": row.state })));
                };
                row.set_outstanding(Some(lease));
                if !store.swap(&row, current).map_err(failed)? {
                    return done();
                }
                if let Err(error) = self.arm_for(lease).await {
                    log_failure("webhook sweep not armed", &error);
                }
                let result = attempt(&row, &endpoint, now).await;
                let now = now_ms();
                row.updated_ms = now;
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
                let base = self.settings().map_err(failed)?.webhook_retry_base_s;
                let round = u32::try_from(row.attempts - row.round_start).unwrap_or(u32::MAX);
                let next = after_attempt(result, round, base);
                row.state = state_after(next).into();
                let retry = match next {
                    Next::RetryIn(delay_s) => Some((queued(row.attempts, delay_s, now), delay_s)),
                    _ => None,
                };
                row.set_outstanding(retry.map(|(again, _)| again));
                // Only onto the claim it holds: a trim, redelivery or remake meanwhile
                // leaves nothing to write.
                if !store.swap(&row, lease).map_err(failed)? {
                    return done();
                }
                if let Some((again, delay_s)) = retry {
                    self.dispatch(org, &delivery_id, again, delay_s).await;
                }
                Ok((200, json!({ "state": row.state })))
            }
            OrgAction::DeadLettered {
                delivery_id,
                attempts,
            } => {
                // The consumer ran out of retries on this attempt: it counts as one that
                // failed, if its outcome was never recorded, and the schedule goes on.
                let Some(mut row) = store.delivery(&delivery_id).map_err(failed)? else {
                    return done();
                };
                let Some(current) = row.outstanding() else {
                    return done();
                };
                if !dead_letter_applies(current, attempts, now) {
                    return done();
                }
                row.attempts = attempts + 1;
                row.last_error = Some(DEAD_LETTERED.into());
                row.updated_ms = now;
                let base = self.settings().map_err(failed)?.webhook_retry_base_s;
                let round = u32::try_from(row.attempts - row.round_start).unwrap_or(u32::MAX);
                let next = after_attempt(AttemptResult::NoAnswer, round, base);
                row.state = state_after(next).into();
                let retry = match next {
                    Next::RetryIn(delay_s) => Some((queued(row.attempts, delay_s, now), delay_s)),
                    _ => None,
                };
                row.set_outstanding(retry.map(|(again, _)| again));
                if !store.swap(&row, current).map_err(failed)? {
                    return done();
                }
                if let Some((again, delay_s)) = retry {
                    self.dispatch(org, &delivery_id, again, delay_s).await;
                }
                Ok((200, json!({ "state": row.state })))
            }
        }
    }
}

/// One signed POST of the event to the endpoint in force, within 10 s; a redirect is an
/// answer, not followed. Only the status counts: the answer's body is never read.
async fn attempt(row: &DeliveryRow, endpoint: &EndpointRow, now_ms: i64) -> AttemptResult {
    let Some(key) = secret_key(&endpoint.secret) else {
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
            &endpoint.url,
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
        // The body is cancelled unread: a receiver's answer can be large or slow, and the
        // status is all that counts.
        if let Some(body) = response.body() {
            let _ = body.cancel();
        }
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
