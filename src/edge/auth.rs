//! Bearer tokens against KV. Only SHA-256 hashes are ever looked up or stored.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::js_sys::Promise;
use worker::wasm_bindgen_futures::JsFuture;
use worker::Env;

use super::config;
use super::jwt;
use crate::core::dispatch::SessionRecord;
use crate::core::error::ApiError;
use crate::core::jwt::{is_compact_jws, JwtConfig};
use crate::core::lists::KV_PAGE;
use crate::core::token::{bearer, is_well_formed, sha256_hex, TokenRecord};

#[wasm_bindgen]
extern "C" {
    /// The KV namespace binding, with the four calls joingate makes. worker's `KvStore`
    /// looks up five methods each time it is made and builds every read's options object
    /// through serde-wasm-bindgen; a read here is one call, `get(key)` (text by default).
    type KvNamespace;

    #[wasm_bindgen(method, catch)]
    fn get(this: &KvNamespace, key: &str) -> Result<Promise, JsValue>;

    /// `options`: `undefined`, or `{ metadata }`.
    #[wasm_bindgen(method, catch)]
    fn put(
        this: &KvNamespace,
        key: &str,
        value: &str,
        options: &JsValue,
    ) -> Result<Promise, JsValue>;

    /// `options`: `{ prefix, limit, cursor? }`; answers `{ keys: [{ name, metadata? }],
    /// list_complete, cursor? }`.
    #[wasm_bindgen(method, catch)]
    fn list(this: &KvNamespace, options: &JsValue) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch, js_name = delete)]
    fn remove(this: &KvNamespace, key: &str) -> Result<Promise, JsValue>;
}

/// joingate's KV namespace (`JOINGATE_KV`): token records by hash, session records.
pub struct Kv(KvNamespace);

impl Kv {
    pub fn from_env(env: &Env) -> Result<Self, ApiError> {
        worker::js_sys::Reflect::get(env, &JsValue::from_str(config::KV_BINDING))
            .ok()
            .filter(|binding| binding.is_object())
            .map(|binding| Self(binding.unchecked_into()))
            .ok_or_else(|| storage_failed("binding"))
    }
}

async fn settle(promise: Result<Promise, JsValue>) -> Result<JsValue, JsValue> {
    JsFuture::from(promise?).await
}

pub fn token_key(hash: &str) -> String {
    format!("token:{hash}")
}

pub fn token_id_key(token_id: &str) -> String {
    format!("token_id:{token_id}")
}

pub fn session_key(sid: &str) -> String {
    format!("session:{sid}")
}

fn storage_failed(what: &str) -> ApiError {
    worker::console_error!("{{\"level\":\"error\",\"msg\":\"kv failure\",\"op\":\"{what}\"}}");
    ApiError::internal()
}

/// A record, as text parsed with serde_json (`null` when the key is absent).
pub async fn read<T: DeserializeOwned>(kv: &Kv, key: &str) -> Result<Option<T>, ApiError> {
    let value = settle(kv.0.get(key))
        .await
        .map_err(|_| storage_failed("read"))?;
    value
        .as_string()
        .map(|text| serde_json::from_str(&text).map_err(|_| storage_failed("read")))
        .transpose()
}

pub async fn write<T: Serialize>(kv: &Kv, key: &str, value: &T) -> Result<(), ApiError> {
    let text = serde_json::to_string(value).map_err(|_| ApiError::internal())?;
    put(kv, key, &text, None).await
}

/// Text under `key`, with KV metadata when given (what the lists of section 16 read
/// without reading the record).
pub async fn put(kv: &Kv, key: &str, text: &str, metadata: Option<&Value>) -> Result<(), ApiError> {
    let options = match metadata {
        Some(metadata) => js_value(&format!("{{\"metadata\":{metadata}}}"))?,
        None => JsValue::UNDEFINED,
    };
    settle(kv.0.put(key, text, &options))
        .await
        .map(|_| ())
        .map_err(|_| storage_failed("write"))
}

fn js_value(json: &str) -> Result<JsValue, ApiError> {
    worker::js_sys::JSON::parse(json).map_err(|_| ApiError::internal())
}

impl Kv {
    /// A KV list of the keys under `prefix` from the KV cursor `cursor` (empty: the
    /// first KV page), up to `KV_PAGE` keys.
    pub fn list(&self, prefix: &str, cursor: &str) -> Result<Promise, ApiError> {
        // The prefix is one of joingate's; the cursor, KV's, is quoted as JSON.
        let cursor = match cursor {
            "" => String::new(),
            cursor => format!(",\"cursor\":{}", Value::from(cursor)),
        };
        let options = format!("{{\"prefix\":\"{prefix}\",\"limit\":{KV_PAGE}{cursor}}}");
        self.0
            .list(&js_value(&options)?)
            .map_err(|_| storage_failed("list"))
    }

    /// Several keys' text at once (`null` for an absent key): one `Promise.all`.
    pub fn get_all(&self, keys: &[String]) -> Result<Promise, ApiError> {
        let promises = worker::js_sys::Array::new();
        for key in keys {
            promises.push(&self.0.get(key).map_err(|_| storage_failed("read"))?.into());
        }
        Ok(Promise::all(&promises))
    }
}

pub async fn remove(kv: &Kv, key: &str) -> Result<(), ApiError> {
    settle(kv.0.remove(key))
        .await
        .map(|_| ())
        .map_err(|_| storage_failed("delete"))
}

/// What a KV promise settles to, as JSON.
pub async fn settle_json(promise: Result<Promise, ApiError>) -> Result<Value, ApiError> {
    let answer = JsFuture::from(promise?)
        .await
        .map_err(|_| storage_failed("list"))?;
    worker::js_sys::JSON::stringify(&answer)
        .ok()
        .and_then(|text| serde_json::from_str(&String::from(text)).ok())
        .ok_or_else(|| storage_failed("list"))
}

/// The live token record behind an `Authorization` header: an API key from KV, or a
/// person's login token (a compact JWS, verified against the JWKS). Every failure is the
/// same 401; a value without the token shape or checksum never reaches KV.
pub async fn authenticate(
    kv: &Kv,
    jwt_config: Option<&JwtConfig>,
    header: Option<&str>,
    now_ms: i64,
) -> Result<TokenRecord, ApiError> {
    let value = bearer(header).ok_or_else(ApiError::unauthorized)?;
    if is_compact_jws(value) {
        return jwt::authenticate(jwt_config, value, now_ms).await;
    }
    let now_s = now_ms / 1000;
    let token = Some(value)
        .filter(|t| is_well_formed(t))
        .ok_or_else(ApiError::unauthorized)?;
    let record: TokenRecord = read(kv, &token_key(&sha256_hex(token)))
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    record.check_live(now_s)?;
    Ok(record)
}

/// Whether the header could authenticate at all (an API key's shape and checksum, or a
/// compact JWS): only then is the session record read ahead, beside the token's.
pub fn may_authenticate(header: Option<&str>) -> bool {
    bearer(header).is_some_and(|value| is_compact_jws(value) || is_well_formed(value))
}

/// The session record, if the session is registered.
pub async fn load_session(kv: &Kv, sid: &str) -> Result<Option<SessionRecord>, ApiError> {
    read(kv, &session_key(sid)).await
}
