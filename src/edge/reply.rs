//! A response on its way out: status, JSON body and the headers every answer carries.

use serde_json::Value;
use worker::{Headers, Response};

use super::http;

use crate::core::envelope;
use crate::core::error::ApiError;

pub struct Reply {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
    /// The error code, for the log line.
    pub code: Option<&'static str>,
    /// Milliseconds spent waiting on the session backend, for the log line.
    pub backend_ms: Option<u64>,
}

impl Reply {
    pub fn success(status: u16, data: Value, request_id: &str) -> Self {
        Self::json(status, envelope::success(data, request_id).to_string())
    }

    pub fn error(error: &ApiError, request_id: &str, now_ms: i64) -> Self {
        let mut reply = Self::json(
            error.status(),
            envelope::failure(error, request_id, now_ms).to_string(),
        );
        reply.code = Some(error.code.as_str());
        if let Some(seconds) = error.retry_after_s {
            reply.headers.push(("Retry-After", seconds.to_string()));
        }
        if let Some(allow) = error.allow {
            reply.headers.push(("Allow", allow.to_string()));
        }
        reply
    }

    pub fn json(status: u16, body: String) -> Self {
        Self {
            status,
            body,
            headers: Vec::new(),
            code: None,
            backend_ms: None,
        }
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The client's answer, with the headers of contract section 1.
    pub fn into_response(self, request_id: &str) -> worker::Result<web_sys::Response> {
        let headers = Headers::new();
        headers.set("Content-Type", "application/json; charset=utf-8")?;
        headers.set("Cache-Control", "no-store")?;
        headers.set("X-Request-Id", request_id)?;
        for (name, value) in &self.headers {
            headers.set(name, value)?;
        }
        http::answer(self.status, &self.body, &headers)
    }

    /// An object's answer to the Worker: the envelope and the reply's own headers only. The
    /// Worker reads the body and those headers (`dispatch`, `org::ask`) and answers the
    /// client with its own, so the fixed ones would be set for nothing.
    pub fn into_object_response(self) -> worker::Result<Response> {
        let headers = Headers::new();
        for (name, value) in &self.headers {
            headers.set(name, value)?;
        }
        Ok(Response::ok(self.body)?
            .with_status(self.status)
            .with_headers(headers))
    }
}
