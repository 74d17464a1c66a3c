//! Calls the session backend with a real deadline: the fetch is aborted when the timer wins.

use std::rc::Rc;
use std::time::Duration;

use futures_util::future::{select, Either};
use futures_util::pin_mut;
use wasm_bindgen::JsValue;
use worker::{
    AbortController, Delay, Fetch, Headers, Method, Request, RequestInit, RequestRedirect,
};

use super::config::Settings;
use crate::core::backend::{BackendCall, Transport};

pub struct BackendClient {
    pub settings: Rc<Settings>,
}

fn build_request(
    client: &BackendClient,
    call: &BackendCall,
    request_id: &str,
) -> worker::Result<Request> {
    let headers = Headers::new();
    headers.set("Accept", "application/json")?;
    headers.set("X-Request-Id", request_id)?;
    if let Some(token) = &client.settings.backend_token {
        headers.set("Authorization", &format!("Bearer {token}"))?;
    }
    let mut init = RequestInit::new();
    // A redirect is not followed: it would carry the backend token elsewhere, and a 3xx is
    // not an answer of the protocol (it becomes backend_error).
    init.with_redirect(RequestRedirect::Manual);
    init.with_method(Method::from(call.method.clone()))
        .with_headers(headers.clone());
    if let Some(body) = &call.body {
        headers.set("Content-Type", "application/json")?;
        init.with_headers(headers)
            .with_body(Some(JsValue::from_str(&body.to_string())));
    }
    Request::new_with_init(
        &format!("{}{}", client.settings.backend_url, call.path),
        &init,
    )
}

impl BackendClient {
    pub async fn send(&self, call: &BackendCall, request_id: &str) -> Transport {
        let Ok(request) = build_request(self, call, request_id) else {
            return Transport::Unreachable;
        };
        let controller = AbortController::default();
        let signal = controller.signal();
        let exchange = async {
            let mut response = Fetch::Request(request).send_with_signal(&signal).await?;
            let status = response.status_code();
            let retry_after_s = response
                .headers()
                .get("Retry-After")
                .ok()
                .flatten()
                .and_then(|v| v.trim().parse::<u64>().ok());
            // Reading the body is inside the deadline too: a backend can hang mid-answer.
            let body = response.bytes().await?;
            Ok::<_, worker::Error>((status, retry_after_s, body))
        };
        let deadline = Delay::from(Duration::from_millis(self.settings.backend_timeout_ms));
        pin_mut!(exchange);
        pin_mut!(deadline);
        match select(exchange, deadline).await {
            Either::Left((Ok((status, retry_after_s, body)), _)) => Transport::Answered {
                status,
                retry_after_s,
                body,
            },
            Either::Left((Err(_), _)) => Transport::Unreachable,
            Either::Right(_) => {
                controller.abort();
                Transport::TimedOut {
                    timeout_ms: self.settings.backend_timeout_ms,
                }
            }
        }
    }
}
