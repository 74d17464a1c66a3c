//! A session's backend, addressed: its own (the credential unsealed only here, for the
//! call), or kind `joingate` at `SESSION_BACKEND_URL`; and the whole exchange of one call or
//! item inside its queue turn.

use super::super::backend_client::BackendClient;
use super::super::config::Settings;
use super::super::crypto;
use super::SessionObject;
use crate::core::backend::spec::{backend_url_invalid, StoredBackend, SEAL_SESSION_ONLY};
use crate::core::backend::{Exchanged, Kind, Op, Target};
use crate::core::error::{ApiError, ErrorCode};
use crate::core::policy::{check_expected, facts_of, preview_needed, PolicyMode};
use crate::edge::org;
use serde_json::{json, Value};

/// What a join asks besides its operation (section 15).
pub(super) struct JoinPlan<'a> {
    pub org: &'a str,
    pub expected: Option<&'a str>,
    /// The org's policy mode as the edge learned it (`None`: ask the org's object).
    pub mode: Option<PolicyMode>,
    pub job_item: bool,
}

/// A call's exchange, and what it did besides its answer.
pub(super) struct Outcome {
    pub exchanged: Exchanged,
    /// The join (or leave) request itself was sent: a call that ended on its preview, its
    /// expected group or the org's policy was not, and does not count toward the caps.
    pub sent: bool,
    /// The group's subject, when a preview showed it (for the org's group book).
    pub subject: Option<String>,
}

impl Outcome {
    fn sent(exchanged: Exchanged, subject: Option<String>) -> Self {
        Self {
            exchanged,
            sent: true,
            subject,
        }
    }

    /// Ended before the join request; `reached`: a preview was answered by the backend.
    fn ended(error: ApiError, reached: bool, subject: Option<String>) -> Self {
        Self {
            exchanged: Exchanged {
                result: Err(error),
                reached,
                transport_failed: false,
            },
            sent: false,
            subject,
        }
    }
}

impl SessionObject {
    /// A watchdog for an alarm-driven backend call (a job item, a membership check): should
    /// this instance die mid-call, the alarm comes back and runs it again.
    pub(super) async fn set_watchdog(&self, settings: &Settings) -> worker::Result<()> {
        let watchdog = i64::try_from(settings.backend_timeout_ms * 2 + super::PROBE_MARGIN_MS)
            .unwrap_or(60_000);
        self.state.storage().set_alarm(watchdog).await
    }

    /// The backend of a session: its own, its credential decrypted, or kind `joingate` at
    /// `SESSION_BACKEND_URL`.
    async fn target(
        &self,
        sid: &str,
        backend: Option<&StoredBackend>,
        settings: &Settings,
    ) -> Result<(Target, String), ApiError> {
        let Some(backend) = backend else {
            // SESSION_BACKEND_URL failed its check (logged when the settings were read).
            let url = settings
                .backend_url
                .clone()
                .ok_or_else(backend_url_invalid)?;
            let target = Target {
                kind: Kind::Joingate,
                remote_session: Some(sid.to_string()),
                credential: settings.backend_token.clone(),
            };
            return Ok((target, url));
        };
        let credential = match &backend.credential {
            None => None,
            Some(sealed) => {
                let key = settings.credentials_key.as_deref().ok_or_else(|| {
                    worker::console_error!("{{\"level\":\"error\",\"msg\":\"a stored credential needs CREDENTIALS_KEY\"}}");
                    ApiError::internal()
                })?;
                if sealed.v == SEAL_SESSION_ONLY {
                    worker::console_warn!("{{\"level\":\"warn\",\"msg\":\"credential sealed before v1.2, bound to the session id only: PUT the session again with its credential\",\"session\":{}}}", Value::from(sid));
                }
                Some(crypto::open(key, sid, backend).await?)
            }
        };
        let target = Target {
            kind: backend.kind,
            remote_session: backend.remote_session_for(sid),
            credential,
        };
        Ok((target, backend.url.clone()))
    }

    /// The whole backend exchange of one call or item, inside its queue turn.
    pub(super) async fn exchange(
        &self,
        sid: &str,
        backend: Option<&StoredBackend>,
        op: &Op,
        request_id: &str,
        settings: &Settings,
    ) -> Exchanged {
        // Section 14: while a join or leave is at the server, the server's events wait, so
        // that its echo finds the outcome stored and raises nothing (`apply_deferred`).
        // One call is at the server at a time (the queue): the flag is that call's.
        self.deferring.set(op.is_join_class());
        let exchanged = match self.target(sid, backend, settings).await {
            Ok((target, base_url)) => {
                let client = BackendClient {
                    base_url: &base_url,
                    request_id,
                    timeout_ms: settings.backend_timeout_ms,
                };
                client.exchange(&target, op).await
            }
            // Never sent: no token is spent and the breaker does not count it.
            Err(error) => Exchanged {
                result: Err(error),
                reached: false,
                transport_failed: false,
            },
        };
        self.deferring.set(false);
        exchanged
    }
}

impl SessionObject {
    /// A call's whole exchange in its queue turn. A join by link previews first when its
    /// plan asks (an expected group, a policy rule, `preview_first`), and is refused
    /// without a join request when the preview fails, leads to another group or breaks the
    /// org's policy (section 15): preview and join are one call, one turn, one token. A join
    /// by invite message is judged by its group alone.
    pub(super) async fn exchange_call(
        &self,
        sid: &str,
        backend: Option<&StoredBackend>,
        op: &Op,
        plan: &JoinPlan<'_>,
        request_id: &str,
        settings: &Settings,
    ) -> Outcome {
        let mode = match (op, plan.mode) {
            (Op::Join { .. } | Op::JoinByMessage { .. }, None) => {
                match org::policy_mode(&self.env, plan.org).await {
                    Ok(mode) => Some(mode),
                    // A join that may need the policy is never sent without it.
                    Err(error) => return Outcome::ended(error, false, None),
                }
            }
            (_, mode) => mode,
        };
        let mode = mode.unwrap_or_default();
        match op {
            Op::Join { code } if preview_needed(mode, plan.job_item, plan.expected.is_some()) => {
                let preview = Op::Preview { code: code.clone() };
                let previewed = self
                    .exchange(sid, backend, &preview, request_id, settings)
                    .await;
                let facts = match &previewed.result {
                    Ok(data) => facts_of(data),
                    // A failed preview (a bad invite, WhatsApp's 429 or 463, a fault) is the
                    // call's answer: no join request follows.
                    Err(_) => {
                        return Outcome {
                            exchanged: previewed,
                            sent: false,
                            subject: None,
                        }
                    }
                };
                let Some(facts) = facts else {
                    return Outcome::ended(ApiError::new(ErrorCode::BackendError), true, None);
                };
                if let Err(error) = check_expected(&facts, plan.expected) {
                    return Outcome::ended(error, true, facts.subject);
                }
                if mode.rules {
                    let asked = json!({ "group_jid": facts.group_jid, "subject": facts.subject, "size": facts.size, "message": false });
                    if let Err(error) = org::judge(&self.env, plan.org, asked).await {
                        return Outcome::ended(error, true, facts.subject);
                    }
                }
                let exchanged = self.exchange(sid, backend, op, request_id, settings).await;
                Outcome::sent(exchanged, facts.subject)
            }
            Op::JoinByMessage { group_jid, .. } if mode.rules => {
                let asked = json!({ "group_jid": group_jid, "message": true });
                if let Err(error) = org::judge(&self.env, plan.org, asked).await {
                    // Stopped on its way to the backend: it reached nothing (its token comes
                    // back, its answer is not kept under its key, the breaker learns nothing).
                    return Outcome::ended(error, false, None);
                }
                Outcome::sent(
                    self.exchange(sid, backend, op, request_id, settings).await,
                    None,
                )
            }
            _ => Outcome::sent(
                self.exchange(sid, backend, op, request_id, settings).await,
                None,
            ),
        }
    }
}
