//! HTTP on web-sys, for every outgoing request and every client answer.
//!
//! Why not worker's `Fetch`, `Stub::fetch_with_request` and `Response` here: they read an
//! answer's body as a stream, chunk by chunk through wasm-streams (a reader, a promise and
//! several boundary crossings per chunk, then `releaseLock`), and build an answer by
//! copying its body into a fresh `Uint8Array`. A CPU profile of the join path put the
//! stream reads alone at about a tenth of the isolate's time (docs/bench.md, "Profiling").
//! Here a body is read with one `arrayBuffer()` or `text()`, and a client answer is built
//! from its string.

use wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{AbortSignal, Headers, Stub};

/// How an outgoing request treats a 3xx answer.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Redirects {
    /// Handed back as it is (nothing of ours is carried to another place).
    Manual,
    /// The runtime's default; only for calls to our own objects, which never redirect.
    Follow,
}

/// One outgoing request (to a backend, a JWKS, a webhook endpoint or one of our objects).
/// Built on web-sys directly: worker's `Request::new_with_init` also converts its
/// Cloudflare `cf` options into a JS object on every call, code joingate never uses that
/// cost about 12 KB of wasm.
pub fn outgoing(
    method: &str,
    url: &str,
    headers: &Headers,
    body: Option<&str>,
    redirects: Redirects,
) -> worker::Result<web_sys::Request> {
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    init.set_headers(&headers.0);
    if redirects == Redirects::Manual {
        init.set_redirect(web_sys::RequestRedirect::Manual);
    }
    if let Some(body) = body {
        init.set_body(&JsValue::from_str(body));
    }
    Ok(web_sys::Request::new_with_str_and_init(url, &init)?)
}

/// `fetch(request, { signal })` on the global scope.
pub async fn fetch(
    request: &web_sys::Request,
    signal: Option<&AbortSignal>,
) -> worker::Result<web_sys::Response> {
    let scope: web_sys::WorkerGlobalScope = worker::js_sys::global().unchecked_into();
    let promise = match signal {
        Some(signal) => {
            let init = web_sys::RequestInit::new();
            init.set_signal(Some(signal));
            scope.fetch_with_request_and_init(request, &init)
        }
        None => scope.fetch_with_request(request),
    };
    Ok(JsFuture::from(promise).await?.unchecked_into())
}

/// A request to one of our Durable Objects.
pub async fn fetch_object(
    stub: Stub,
    request: &web_sys::Request,
) -> worker::Result<web_sys::Response> {
    let stub: worker::worker_sys::DurableObject = stub.into_rpc();
    let promise = stub.fetch_with_request(request)?;
    Ok(JsFuture::from(promise).await?.unchecked_into())
}

/// The whole body, in one read.
pub async fn bytes(response: &web_sys::Response) -> worker::Result<Vec<u8>> {
    let buffer = JsFuture::from(response.array_buffer()?).await?;
    Ok(worker::js_sys::Uint8Array::new(&buffer).to_vec())
}

/// The whole body as text (invalid UTF-8 is replaced, as `Response.text()` does).
pub async fn text(response: &web_sys::Response) -> worker::Result<String> {
    let text = JsFuture::from(response.text()?).await?;
    text.as_string()
        .ok_or_else(|| worker::Error::RustError("body is not text".into()))
}

/// A header of an answer.
pub fn header(response: &web_sys::Response, name: &str) -> Option<String> {
    response.headers().get(name).ok().flatten()
}

/// An answer with a string body.
pub fn answer(status: u16, body: &str, headers: &Headers) -> worker::Result<web_sys::Response> {
    let init = web_sys::ResponseInit::new();
    init.set_status(status);
    init.set_headers(&headers.0);
    Ok(web_sys::Response::new_with_opt_str_and_init(
        Some(body),
        &init,
    )?)
}
