//! A session's backend, addressed: its own (the credential unsealed only here, for the
//! call), or kind `joingate` at `SESSION_BACKEND_URL`; and the whole exchange of one call or
//! item inside its queue turn.

use super::super::backend_client::BackendClient;
use super::super::config::Settings;
use super::super::crypto;
use super::SessionObject;
use crate::core::backend::spec::{backend_url_invalid, StoredBackend, SEAL_SESSION_ONLY};
use crate::core::backend::{Exchanged, Kind, Op, Target};
use crate::core::error::ApiError;
use serde_json::Value;

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
