//! The shell around the core: everything that calls into the Workers runtime.

mod admin;
mod auth;
mod backend_client;
mod config;
mod crypto;
mod jwt;
pub mod org;
mod reply;
pub mod session;
mod store;
mod worker;

/// A JSON request body between our own parts, read as text and parsed with serde_json.
/// `Request::json` deserializes through serde-wasm-bindgen, which would compile every
/// message type's deserializer a second time into the wasm.
async fn json_body<T: serde::de::DeserializeOwned>(
    req: &mut ::worker::Request,
) -> ::worker::Result<T> {
    let text = req.text().await?;
    serde_json::from_str(&text).map_err(|e| ::worker::Error::RustError(e.to_string()))
}

/// How an outgoing request treats a 3xx answer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Redirects {
    /// Handed back as it is (nothing of ours is carried to another place).
    Manual,
    /// The runtime's default; only for calls to our own objects, which never redirect.
    Follow,
}

/// One outgoing request (to a backend, a JWKS, a webhook endpoint or one of our objects).
/// Built on web-sys directly: worker's `Request::new_with_init` also converts its
/// Cloudflare `cf` options into a JS object on every call, code joingate never uses that
/// cost about 12 KB of wasm.
fn outgoing(
    method: &str,
    url: &str,
    headers: &::worker::Headers,
    body: Option<&str>,
    redirects: Redirects,
) -> ::worker::Result<::worker::Request> {
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    init.set_headers(&headers.0);
    if redirects == Redirects::Manual {
        init.set_redirect(web_sys::RequestRedirect::Manual);
    }
    if let Some(body) = body {
        init.set_body(&wasm_bindgen::JsValue::from_str(body));
    }
    Ok(web_sys::Request::new_with_str_and_init(url, &init)?.into())
}
