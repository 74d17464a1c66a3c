//! Executes the dialect's HTTP requests against the session backend, within one deadline for
//! the whole exchange: the fetch is aborted when the timer wins. It only moves bytes; what
//! to send and what an answer means is the dialect's (core::backend).

use std::time::Duration;

use futures_util::future::{select, Either};
use futures_util::pin_mut;
use worker::{AbortController, Date, Delay, Headers};

use super::http::{self, Redirects};
use crate::core::backend::{
    resume, retry_after_s, start, Answer, Exchanged, HttpRequest, Op, Progress, Step, Target,
    Transport, MAX_ANSWER_BYTES,
};

/// One backend exchange: base URL, request id to forward and the deadline.
pub struct BackendClient<'a> {
    pub base_url: &'a str,
    pub request_id: &'a str,
    pub timeout_ms: u64,
}

fn now_ms() -> u64 {
    Date::now().as_millis()
}

fn build(client: &BackendClient, request: &HttpRequest) -> worker::Result<web_sys::Request> {
    let headers = Headers::new();
    headers.set("Accept", "application/json")?;
    headers.set("X-Request-Id", client.request_id)?;
    for (name, value) in &request.headers {
        headers.set(name, value)?;
    }
    if request.body.is_some() {
        headers.set("Content-Type", "application/json")?;
    }
    // A redirect is not followed: it would carry the credential elsewhere, and a 3xx is not
    // an answer of any protocol (it becomes backend_error).
    http::outgoing(
        request.method,
        &format!("{}{}", client.base_url, request.path),
        &headers,
        request.body.as_deref(),
        Redirects::Manual,
    )
}

/// How far a request got before it failed.
enum Failure {
    /// No status line: refused, reset, DNS.
    BeforeAnswer,
    /// The status line arrived, the body did not.
    DuringBody(u16),
    /// The body passed `MAX_ANSWER_BYTES`; the rest was not read.
    TooLarge(u16),
}

impl BackendClient<'_> {
    /// Runs the dialect's exchange for `op` to its end.
    pub async fn exchange(&self, target: &Target, op: &Op) -> Exchanged {
        let deadline = now_ms() + self.timeout_ms;
        let mut progress = Progress::default();
        let mut step = start(target, op);
        loop {
            match step {
                Step::Done(result) => return progress.finish(result),
                Step::Send(request, stage) => {
                    let outcome = self.send(&request, deadline).await;
                    progress.record(&outcome);
                    step = resume(target, op, stage, outcome);
                }
            }
        }
    }

    async fn send(&self, request: &HttpRequest, deadline_ms: u64) -> Transport {
        let timed_out = Transport::TimedOut {
            timeout_ms: self.timeout_ms,
        };
        let remaining = deadline_ms.saturating_sub(now_ms());
        if remaining == 0 {
            return timed_out;
        }
        let Ok(request) = build(self, request) else {
            return Transport::Unreachable;
        };
        let controller = AbortController::default();
        let signal = controller.signal();
        let exchange = async {
            let response = http::fetch(&request, Some(&signal))
                .await
                .map_err(|_| Failure::BeforeAnswer)?;
            let status = response.status();
            let retry_after_s = retry_after_s(http::header(&response, "Retry-After").as_deref());
            // Reading the body is inside the deadline too: a backend can hang mid-answer.
            let body = match http::bytes_capped(&response, MAX_ANSWER_BYTES).await {
                Ok(http::Capped::Whole(body)) => body,
                Ok(http::Capped::TooLarge) => return Err(Failure::TooLarge(status)),
                Err(_) => return Err(Failure::DuringBody(status)),
            };
            Ok::<_, Failure>(Answer {
                status,
                retry_after_s,
                body,
            })
        };
        let timer = Delay::from(Duration::from_millis(remaining));
        pin_mut!(exchange);
        pin_mut!(timer);
        match select(exchange, timer).await {
            Either::Left((Ok(answer), _)) => Transport::Answered(answer),
            Either::Left((Err(Failure::BeforeAnswer), _)) => Transport::Unreachable,
            Either::Left((Err(Failure::DuringBody(status)), _)) => Transport::Cut { status },
            Either::Left((Err(Failure::TooLarge(status)), _)) => Transport::TooLarge { status },
            Either::Right(_) => {
                controller.abort();
                timed_out
            }
        }
    }
}
