//! Bearer tokens against KV. Only SHA-256 hashes are ever looked up or stored.

use serde::de::DeserializeOwned;
use serde::Serialize;
use worker::kv::KvStore;

use super::jwt;
use crate::core::dispatch::SessionRecord;
use crate::core::error::ApiError;
use crate::core::jwt::{is_compact_jws, JwtConfig};
use crate::core::token::{bearer, is_well_formed, sha256_hex, TokenRecord};

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

pub async fn read<T: DeserializeOwned>(kv: &KvStore, key: &str) -> Result<Option<T>, ApiError> {
    // Text and serde_json rather than the binding's `json()`, which deserializes through
    // serde-wasm-bindgen: one deserializer per type instead of two in the wasm.
    let text = kv
        .get(key)
        .text()
        .await
        .map_err(|_| storage_failed("read"))?;
    text.map(|text| serde_json::from_str(&text).map_err(|_| storage_failed("read")))
        .transpose()
}

pub async fn write<T: Serialize>(kv: &KvStore, key: &str, value: &T) -> Result<(), ApiError> {
    let text = serde_json::to_string(value).map_err(|_| ApiError::internal())?;
    // Bytes: the binding's `put` of a string passes through serde-wasm-bindgen and pulls
    // in float formatting (~11 KB of wasm) for values that are never numbers here.
    kv.put_bytes(key, text.as_bytes())
        .map_err(|_| storage_failed("write"))?
        .execute()
        .await
        .map_err(|_| storage_failed("write"))
}

pub async fn remove(kv: &KvStore, key: &str) -> Result<(), ApiError> {
    kv.delete(key).await.map_err(|_| storage_failed("delete"))
}

/// The live token record behind an `Authorization` header: an API key from KV, or a
/// person's login token (a compact JWS, verified against the JWKS). Every failure is the
/// same 401; a value without the token shape or checksum never reaches KV.
pub async fn authenticate(
    kv: &KvStore,
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
pub async fn load_session(kv: &KvStore, sid: &str) -> Result<Option<SessionRecord>, ApiError> {
    read(kv, &session_key(sid)).await
}
