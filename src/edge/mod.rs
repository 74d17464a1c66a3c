//! The shell around the core: everything that calls into the Workers runtime.

mod admin;
mod auth;
mod backend_client;
mod config;
mod crypto;
mod groups;
mod hooks;
mod http;
mod jwt;
mod lists;
pub mod org;
mod reply;
pub mod session;
mod store;
pub(crate) mod tz;
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
