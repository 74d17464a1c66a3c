//! AES-256-GCM of backend credentials through WebCrypto (`crypto.subtle`): a fresh 96-bit IV
//! per seal, the session and its backend bound as additional data (`StoredBackend::
//! credential_aad`). The imported key is kept per isolate.

use std::cell::RefCell;

use worker::js_sys::{self, Array, Object, Reflect, Uint8Array, JSON};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys::{AesGcmParams, Crypto, CryptoKey, SubtleCrypto};

use super::admin::random_bytes;
use crate::core::backend::spec::{credentials_key, Sealed, StoredBackend, SEAL_BOUND_TO_BACKEND};
use crate::core::base64;
use crate::core::error::ApiError;

thread_local! {
    static KEY: RefCell<Option<CryptoKey>> = const { RefCell::new(None) };
}

fn failed(what: &str) -> ApiError {
    // Never the key, the plaintext or the ciphertext: only what failed.
    worker::console_error!(
        "{{\"level\":\"error\",\"msg\":\"credential crypto failed\",\"step\":\"{what}\"}}"
    );
    ApiError::internal()
}

fn subtle() -> Result<SubtleCrypto, ApiError> {
    let crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"))
        .map_err(|_| failed("crypto"))?;
    Ok(crypto.unchecked_into::<Crypto>().subtle())
}

async fn key(key_text: &str) -> Result<CryptoKey, ApiError> {
    if let Some(key) = KEY.with(|k| k.borrow().clone()) {
        return Ok(key);
    }
    let raw = credentials_key(key_text)
        .ok_or_else(|| failed("CREDENTIALS_KEY is not 32 bytes of base64"))?;
    let usages = Array::of2(&JsValue::from_str("encrypt"), &JsValue::from_str("decrypt"));
    let promise = subtle()?
        .import_key_with_str(
            "raw",
            &Uint8Array::from(&raw[..]),
            "AES-GCM",
            false,
            &usages,
        )
        .map_err(|_| failed("import"))?;
    let key: CryptoKey = JsFuture::from(promise)
        .await
        .map_err(|_| failed("import"))?
        .unchecked_into();
    KEY.with(|k| *k.borrow_mut() = Some(key.clone()));
    Ok(key)
}

fn params(iv: &[u8], aad: &[u8]) -> AesGcmParams {
    let params = AesGcmParams::new("AES-GCM", &Uint8Array::from(iv));
    params.set_additional_data(&Uint8Array::from(aad));
    params
}

fn bytes(value: JsValue) -> Vec<u8> {
    Uint8Array::new(&value).to_vec()
}

/// Encrypts a credential for session `sid` and its `backend` (whose own credential is not
/// read).
pub async fn seal(
    key_text: &str,
    sid: &str,
    backend: &StoredBackend,
    plaintext: &str,
) -> Result<Sealed, ApiError> {
    let aad = backend
        .credential_aad(sid, SEAL_BOUND_TO_BACKEND)
        .ok_or_else(|| failed("additional data"))?;
    seal_with(key_text, &aad, plaintext).await
}

/// The additional data of a session's events secret (section 14): it opens for that
/// session only.
fn events_aad(sid: &str) -> Vec<u8> {
    format!("joingate events secret for session {sid}").into_bytes()
}

/// Encrypts the events secret of session `sid`.
pub async fn seal_events_secret(
    key_text: &str,
    sid: &str,
    secret: &str,
) -> Result<Sealed, ApiError> {
    seal_with(key_text, &events_aad(sid), secret).await
}

/// Decrypts the events secret of session `sid`.
pub async fn open_events_secret(
    key_text: &str,
    sid: &str,
    sealed: &Sealed,
) -> Result<String, ApiError> {
    open_with(key_text, &events_aad(sid), sealed).await
}

/// The additional data of a kept invite code (section 15): it opens for that org's entry
/// of that group only.
fn code_aad(org: &str, group_jid: &str) -> Vec<u8> {
    format!("joingate invite code for org {org} group {group_jid}").into_bytes()
}

/// Seals an invite code for the org's group book, as `iv.ciphertext` (base64 both).
pub async fn seal_code(
    key_text: &str,
    org: &str,
    group_jid: &str,
    code: &str,
) -> Result<String, ApiError> {
    let sealed = seal_with(key_text, &code_aad(org, group_jid), code).await?;
    Ok(format!("{}.{}", sealed.iv, sealed.ct))
}

/// Opens a code sealed by [`seal_code`] for the same org and group.
pub async fn open_code(
    key_text: &str,
    org: &str,
    group_jid: &str,
    sealed: &str,
) -> Result<String, ApiError> {
    let (iv, ct) = sealed.split_once('.').ok_or_else(|| failed("kept code"))?;
    let sealed = Sealed {
        iv: iv.to_string(),
        ct: ct.to_string(),
        v: SEAL_BOUND_TO_BACKEND,
    };
    open_with(key_text, &code_aad(org, group_jid), &sealed).await
}

async fn seal_with(key_text: &str, aad: &[u8], plaintext: &str) -> Result<Sealed, ApiError> {
    let key = key(key_text).await?;
    let iv = random_bytes::<12>()?;
    let promise = subtle()?
        .encrypt_with_object_and_u8_array(params(&iv, aad).as_ref(), &key, plaintext.as_bytes())
        .map_err(|_| failed("encrypt"))?;
    let ciphertext = JsFuture::from(promise)
        .await
        .map_err(|_| failed("encrypt"))?;
    Ok(Sealed {
        iv: base64::encode(&iv),
        ct: base64::encode(&bytes(ciphertext)),
        v: SEAL_BOUND_TO_BACKEND,
    })
}

/// Decrypts the credential of session `sid`'s `backend`; any mismatch (a ciphertext of
/// another session or another backend, another key, a changed byte) fails.
pub async fn open(key_text: &str, sid: &str, backend: &StoredBackend) -> Result<String, ApiError> {
    let Some(sealed) = &backend.credential else {
        return Err(failed("no stored credential"));
    };
    let aad = backend
        .credential_aad(sid, sealed.v)
        .ok_or_else(|| failed("unknown seal version"))?;
    open_with(key_text, &aad, sealed).await
}

async fn open_with(key_text: &str, aad: &[u8], sealed: &Sealed) -> Result<String, ApiError> {
    let key = key(key_text).await?;
    let iv = base64::decode(&sealed.iv).filter(|iv| iv.len() == 12);
    let ciphertext = base64::decode(&sealed.ct);
    let (Some(iv), Some(ciphertext)) = (iv, ciphertext) else {
        return Err(failed("stored credential is not base64"));
    };
    let promise = subtle()?
        .decrypt_with_object_and_u8_array(params(&iv, aad).as_ref(), &key, &ciphertext)
        .map_err(|_| failed("decrypt"))?;
    let plaintext = JsFuture::from(promise)
        .await
        .map_err(|_| failed("decrypt"))?;
    String::from_utf8(bytes(plaintext)).map_err(|_| failed("decrypt"))
}

/// A JavaScript object from JSON text (WebCrypto's algorithm parameters, a JWK).
pub(super) fn js_object(json: &str) -> Option<Object> {
    JSON::parse(json).ok().map(JsCast::unchecked_into)
}

/// `crypto.subtle.verify(params, key, signature, data)` (constant time in the runtime);
/// any failure of WebCrypto is `false`.
pub(super) async fn subtle_verify(
    params: &Object,
    key: &CryptoKey,
    signature: &[u8],
    data: &[u8],
) -> bool {
    let Ok(subtle) = subtle() else {
        return false;
    };
    let Ok(promise) =
        subtle.verify_with_object_and_u8_array_and_u8_array(params, key, signature, data)
    else {
        return false;
    };
    JsFuture::from(promise)
        .await
        .ok()
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

/// Whether `tag` is the HMAC-SHA512 of `data` keyed with `key`, verified by the runtime;
/// any failure of WebCrypto is `false`.
pub async fn verify_hmac_sha512(key: &[u8], tag: &[u8], data: &[u8]) -> bool {
    let (Some(import), Some(verify), Ok(subtle)) = (
        js_object(r#"{"name":"HMAC","hash":"SHA-512"}"#),
        js_object(r#"{"name":"HMAC"}"#),
        subtle(),
    ) else {
        return false;
    };
    let usages = Array::of1(&JsValue::from_str("verify"));
    let raw: Object = Uint8Array::from(key).unchecked_into();
    let Ok(promise) = subtle.import_key_with_object("raw", &raw, &import, false, &usages) else {
        return false;
    };
    let Ok(key) = JsFuture::from(promise)
        .await
        .map(JsCast::unchecked_into::<CryptoKey>)
    else {
        return false;
    };
    subtle_verify(&verify, &key, tag, data).await
}
