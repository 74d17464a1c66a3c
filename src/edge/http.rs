//! HTTP on web-sys, for every outgoing request and every client answer.
//!
//! Why not worker's `Fetch`, `Stub::fetch_with_request` and `Response` here: they read an
//! answer's body as a stream, chunk by chunk through wasm-streams (a reader, a promise and
//! several boundary crossings per chunk, then `releaseLock`), and build an answer by
//! copying its body into a fresh `Uint8Array`. A CPU profile of the join path put the
//! stream reads alone at about a tenth of the isolate's time (docs/bench.md, "Profiling").
//! Here a body is read with one `arrayBuffer()` or `text()`, and a client answer is built
//! from its string. A body whose size must stay bounded and is not declared is read
//! through its own reader (`read_capped`), which stops at the bound.

use wasm_bindgen::{JsCast, JsValue};
use worker::js_sys::{Reflect, Uint8Array};
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

/// A POST whose body is a stream passed on unread (a server event to its session's object,
/// which reads at most its limit of it).
pub fn outgoing_stream(
    url: &str,
    headers: &Headers,
    body: Option<web_sys::ReadableStream>,
) -> worker::Result<web_sys::Request> {
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_headers(&headers.0);
    if let Some(body) = body {
        init.set_body(&body);
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

/// A body read up to a limit.
#[derive(Debug, PartialEq, Eq)]
pub enum Capped {
    /// The whole body: at most the limit.
    Whole(Vec<u8>),
    /// More than the limit came; reading stopped there and the rest was cancelled.
    TooLarge,
}

/// Whether a chunk may join the `held` bytes without passing `max`: so no more than `max`
/// bytes are ever held here (the chunk that would pass it stays in JS and is dropped).
fn fits(held: usize, chunk: usize, max: usize) -> bool {
    held.checked_add(chunk).is_some_and(|total| total <= max)
}

/// What an answer's headers say of its size.
#[derive(Debug, PartialEq, Eq)]
enum Declared {
    /// A length within the limit: one `arrayBuffer()` read (the framing holds it to that).
    Within,
    /// A length over the limit: nothing is read.
    Over,
    /// No length, or an encoding the runtime undoes (the length is then the encoded one):
    /// read chunk by chunk.
    Unknown,
}

fn declared(content_length: Option<&str>, content_encoding: Option<&str>, max: usize) -> Declared {
    let encoded = content_encoding
        .map(str::trim)
        .is_some_and(|e| !e.is_empty() && !e.eq_ignore_ascii_case("identity"));
    let length = content_length.and_then(|v| v.trim().parse::<u64>().ok());
    match length {
        Some(_) if encoded => Declared::Unknown,
        Some(length) if length > max as u64 => Declared::Over,
        Some(_) => Declared::Within,
        None => Declared::Unknown,
    }
}

/// Reads a body stream chunk by chunk through its reader, and stops (cancelling the
/// stream) as soon as more than `max` bytes would be held. No stream is an empty body.
pub async fn read_capped(
    stream: Option<web_sys::ReadableStream>,
    max: usize,
) -> worker::Result<Capped> {
    let Some(stream) = stream else {
        return Ok(Capped::Whole(Vec::new()));
    };
    let reader = web_sys::ReadableStreamDefaultReader::new(&stream)?;
    let (done_key, value_key) = (JsValue::from_str("done"), JsValue::from_str("value"));
    let mut bytes = Vec::new();
    loop {
        let result = JsFuture::from(reader.read()).await?;
        if Reflect::get(&result, &done_key)?.as_bool() != Some(false) {
            return Ok(Capped::Whole(bytes));
        }
        let chunk: Uint8Array = Reflect::get(&result, &value_key)?
            .dyn_into()
            .map_err(|_| worker::Error::RustError("a body chunk is not bytes".into()))?;
        let length = chunk.length() as usize;
        if !fits(bytes.len(), length, max) {
            // Nothing more of it is wanted: the sender is told to stop.
            let _ = JsFuture::from(reader.cancel()).await;
            return Ok(Capped::TooLarge);
        }
        let start = bytes.len();
        bytes.resize(start + length, 0);
        chunk.copy_to(&mut bytes[start..]);
    }
}

/// An answer's body up to `max` bytes: in one read when its declared length fits, not at
/// all when that length is over, else chunk by chunk.
pub async fn bytes_capped(response: &web_sys::Response, max: usize) -> worker::Result<Capped> {
    let length = header(response, "Content-Length");
    let encoding = header(response, "Content-Encoding");
    match declared(length.as_deref(), encoding.as_deref(), max) {
        Declared::Within => bytes(response).await.map(Capped::Whole),
        Declared::Over => {
            if let Some(body) = response.body() {
                let _ = JsFuture::from(body.cancel()).await;
            }
            Ok(Capped::TooLarge)
        }
        Declared::Unknown => read_capped(response.body(), max).await,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_fit_up_to_the_limit_and_no_further() {
        assert!(fits(0, 0, 0));
        assert!(fits(10, 6, 16));
        assert!(!fits(10, 7, 16));
        assert!(!fits(usize::MAX, 1, usize::MAX));
    }

    #[test]
    fn a_declared_length_decides_unless_the_body_is_encoded() {
        for (length, encoding, expected) in [
            (Some("16"), None, Declared::Within),
            (Some(" 0 "), None, Declared::Within),
            (Some("17"), None, Declared::Over),
            (Some("99999999999999999999999"), None, Declared::Unknown),
            (Some("12abc"), None, Declared::Unknown),
            (None, None, Declared::Unknown),
            (Some("10"), Some("gzip"), Declared::Unknown),
            (Some("17"), Some("br"), Declared::Unknown),
            (Some("17"), Some("identity"), Declared::Over),
            (Some("10"), Some(""), Declared::Within),
        ] {
            assert_eq!(
                declared(length, encoding, 16),
                expected,
                "{length:?} {encoding:?}"
            );
        }
    }
}
