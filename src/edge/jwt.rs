//! Login tokens at the edge: the JWKS fetched from `JWT_JWKS_URL`, its keys imported into
//! WebCrypto once and kept per isolate, and the signature verified with `crypto.subtle`.
//! Every decision (shape, key choice, claims, when to fetch) is `core::jwt`'s.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures_util::future::{select, Either};
use futures_util::pin_mut;
use worker::js_sys::{self, Array, Object, Reflect, JSON};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys::{Crypto, CryptoKey, SubtleCrypto};
use worker::{Delay, Headers};

use super::http::{self, Redirects};
use crate::core::error::{ApiError, ErrorCode};
use crate::core::jwt::{
    check_claims, choose_key, log_name, max_age_s, parse, parse_jwks, Alg, CacheClock, Jwk, Jws,
    JwtConfig, KeyChoice, Need, UNAVAILABLE_RETRY_S,
};
use crate::core::token::TokenRecord;

/// How long one JWKS fetch may take.
const FETCH_TIMEOUT_MS: u64 = 5_000;

/// A fetched set: the usable JWKs and, at the same index, their imported keys.
#[derive(Default)]
struct KeySet {
    jwks: Vec<Jwk>,
    keys: Vec<CryptoKey>,
}

/// The set kept in this isolate and when it was fetched.
#[derive(Default)]
struct Cache {
    clock: CacheClock,
    set: Rc<KeySet>,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

fn subtle() -> Option<SubtleCrypto> {
    let crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto")).ok()?;
    Some(crypto.unchecked_into::<Crypto>().subtle())
}

fn object(json: &str) -> Option<Object> {
    JSON::parse(json).ok().map(JsCast::unchecked_into)
}

fn import_params(alg: Alg) -> &'static str {
    match alg {
        Alg::Rs256 => r#"{"name":"RSASSA-PKCS1-v1_5","hash":"SHA-256"}"#,
        Alg::Es256 => r#"{"name":"ECDSA","namedCurve":"P-256"}"#,
    }
}

fn verify_params(alg: Alg) -> &'static str {
    match alg {
        Alg::Rs256 => r#"{"name":"RSASSA-PKCS1-v1_5"}"#,
        Alg::Es256 => r#"{"name":"ECDSA","hash":"SHA-256"}"#,
    }
}

async fn import(jwk: &Jwk) -> Option<CryptoKey> {
    let data = object(&serde_json::Value::Object(jwk.public.clone()).to_string())?;
    let usages = Array::of1(&JsValue::from_str("verify"));
    let promise = subtle()?
        .import_key_with_object(
            "jwk",
            &data,
            &object(import_params(jwk.alg))?,
            false,
            &usages,
        )
        .ok()?;
    JsFuture::from(promise)
        .await
        .ok()
        .map(JsCast::unchecked_into)
}

/// Fetches and imports the set; `None` when the fetch or the document fails.
async fn fetch_keys(url: &str) -> Option<(KeySet, u64)> {
    let request = http::outgoing("GET", url, &Headers::new(), None, Redirects::Manual).ok()?;
    let exchange = async {
        let response = http::fetch(&request, None).await.ok()?;
        if response.status() != 200 {
            return None;
        }
        let cache_control = http::header(&response, "Cache-Control");
        let body = http::bytes(&response).await.ok()?;
        Some((body, cache_control))
    };
    let timer = Delay::from(Duration::from_millis(FETCH_TIMEOUT_MS));
    pin_mut!(exchange);
    pin_mut!(timer);
    let (body, cache_control) = match select(exchange, timer).await {
        Either::Left((answer, _)) => answer?,
        Either::Right(_) => return None,
    };
    let mut set = KeySet::default();
    for jwk in parse_jwks(&body)? {
        // A key WebCrypto refuses is left out, as one of an unknown type is.
        if let Some(key) = import(&jwk).await {
            set.jwks.push(jwk);
            set.keys.push(key);
        }
    }
    Some((set, max_age_s(cache_control.as_deref())))
}

/// The kept keys, fetched first when `need` says so. `None` means no set is kept and none
/// could be fetched.
async fn keys(config: &JwtConfig, need: Need, now_ms: i64) -> Option<Rc<KeySet>> {
    let clock = CACHE.with(|c| c.borrow().clock);
    if clock.should_fetch(need, now_ms) {
        CACHE.with(|c| c.borrow_mut().clock.attempted_ms = Some(now_ms));
        match fetch_keys(&config.jwks_url).await {
            Some((fresh, max_age)) => CACHE.with(|c| {
                let mut cache = c.borrow_mut();
                cache.set = Rc::new(fresh);
                cache.clock.fetched_ms = Some(now_ms);
                cache.clock.max_age_s = max_age;
            }),
            None => worker::console_error!(
                "{{\"level\":\"error\",\"msg\":\"JWKS fetch failed; keeping the kept set\"}}"
            ),
        }
    }
    CACHE.with(|c| {
        let cache = c.borrow();
        cache.clock.fetched_ms.map(|_| Rc::clone(&cache.set))
    })
}

async fn verify(jws: &Jws, key: &CryptoKey) -> bool {
    let Some((subtle, params)) = subtle().zip(object(verify_params(jws.alg))) else {
        return false;
    };
    let Ok(promise) = subtle.verify_with_object_and_u8_array_and_u8_array(
        &params,
        key,
        &jws.signature,
        &jws.signing_input,
    ) else {
        return false;
    };
    JsFuture::from(promise)
        .await
        .ok()
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

fn unavailable() -> ApiError {
    ApiError::new(ErrorCode::AuthUnavailable).with_retry_after(UNAVAILABLE_RETRY_S)
}

/// The person behind a login token, as a token record of their org with their role's
/// capabilities (no allow-list, so every session of the org). Every refusal is the same
/// `unauthorized`; `auth_unavailable` only when no key set is kept and none can be fetched.
pub async fn authenticate(
    config: Option<&JwtConfig>,
    value: &str,
    now_ms: i64,
) -> Result<TokenRecord, ApiError> {
    // Nothing is fetched for a value that is not well formed, or when JWTs are not set up.
    let (Some(config), Some(jws)) = (config, parse(value)) else {
        return Err(ApiError::unauthorized());
    };
    let mut set = keys(config, Need::Keys, now_ms)
        .await
        .ok_or_else(unavailable)?;
    let mut choice = choose_key(&set.jwks, &jws);
    if choice == KeyChoice::UnknownKid {
        // A rotated key: refetch, at most once per 30 s.
        set = keys(config, Need::UnknownKid, now_ms)
            .await
            .ok_or_else(unavailable)?;
        choice = choose_key(&set.jwks, &jws);
    }
    let KeyChoice::Key(index) = choice else {
        return Err(ApiError::unauthorized());
    };
    let Some(key) = set.keys.get(index) else {
        return Err(ApiError::unauthorized());
    };
    if !verify(&jws, key).await {
        return Err(ApiError::unauthorized());
    }
    let person =
        check_claims(&jws.claims, config, now_ms / 1000).ok_or_else(ApiError::unauthorized)?;
    Ok(TokenRecord {
        token_id: log_name(&person.subject),
        org: person.org,
        capabilities: person.capabilities,
        sessions: None,
        expires_at: None,
        revoked: false,
        label: None,
        created_at: 0,
    })
}
