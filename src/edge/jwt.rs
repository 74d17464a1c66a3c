//! Login tokens at the edge: the JWKS fetched from `JWT_JWKS_URL`, its keys imported into
//! WebCrypto once and kept per isolate, and the signature verified with `crypto.subtle`.
//! Every decision (shape, key choice, claims, when to fetch) is `core::jwt`'s.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use futures_util::future::{select, Either};
use futures_util::pin_mut;
use worker::js_sys::{self, Array, Reflect};

use super::crypto::js_object;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys::{Crypto, CryptoKey, SubtleCrypto};
use worker::{Delay, Headers};

use super::http::{self, Redirects};
use crate::core::error::{ApiError, ErrorCode};
use crate::core::jwt::{
    check_claims, choose_key, log_name, max_age_s, parse, parse_jwks, Alg, CacheClock, Jwk, Jws,
    JwtConfig, KeyChoice, Need, Plan, MAX_JWKS_BYTES,
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

/// How often a call that waits for the fetch in flight looks whether it is done.
const WAIT_POLL_MS: u64 = 20;

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
    /// Whether a call of this isolate is fetching the set: at most one fetch in flight.
    static FETCHING: Cell<bool> = const { Cell::new(false) };
}

/// The isolate's one fetch, held by the call making it; let go however that call ends (a
/// cancelled request drops it mid-fetch).
struct FetchSlot;

impl FetchSlot {
    fn take() -> Self {
        FETCHING.with(|f| f.set(true));
        Self
    }
}

impl Drop for FetchSlot {
    fn drop(&mut self) {
        FETCHING.with(|f| f.set(false));
    }
}

fn now_ms() -> i64 {
    worker::Date::now().as_millis() as i64
}

fn subtle() -> Option<SubtleCrypto> {
    let crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto")).ok()?;
    Some(crypto.unchecked_into::<Crypto>().subtle())
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
    let data = js_object(&serde_json::Value::Object(jwk.public.clone()).to_string())?;
    let usages = Array::of1(&JsValue::from_str("verify"));
    let promise = subtle()?
        .import_key_with_object(
            "jwk",
            &data,
            &js_object(import_params(jwk.alg))?,
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
        // Past 256 KiB the set is refused unread.
        match http::bytes_capped(&response, MAX_JWKS_BYTES).await.ok()? {
            http::Capped::Whole(body) => Some((body, cache_control)),
            http::Capped::TooLarge => None,
        }
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

/// The kept set, or `auth_unavailable` when none is kept.
fn kept(retry_after_s: u64) -> Result<Rc<KeySet>, ApiError> {
    CACHE
        .with(|c| {
            let cache = c.borrow();
            cache.clock.fetched_ms.map(|_| Rc::clone(&cache.set))
        })
        .ok_or_else(|| unavailable(retry_after_s))
}

/// The kept keys, fetched first when `need` says so (core::jwt's `Plan`): one fetch in
/// flight per isolate, and the calls that need it meanwhile wait for it.
///
/// A waiting call looks again every few milliseconds on its own timer rather than being
/// woken by the fetching call: each request of a Worker runs in its own context, and a
/// request woken from another one's would run its I/O there (or be cancelled as hung).
async fn keys(config: &JwtConfig, need: Need) -> Result<Rc<KeySet>, ApiError> {
    let spacing_s = u64::try_from(config.fetch_spacing_ms / 1000).unwrap_or(1);
    let started = now_ms();
    loop {
        let now = now_ms();
        let in_flight = FETCHING.with(Cell::get);
        let clock = CACHE.with(|c| c.borrow().clock);
        match clock.plan(need, now, in_flight, config.fetch_spacing_ms) {
            Plan::UseKept => return kept(spacing_s),
            Plan::Unavailable { retry_after_s } => return Err(unavailable(retry_after_s)),
            Plan::Wait => {
                // The fetch in flight has its own deadline; this is only a backstop.
                if now - started > FETCH_TIMEOUT_MS as i64 + 1_000 {
                    return kept(spacing_s);
                }
                Delay::from(Duration::from_millis(WAIT_POLL_MS)).await;
            }
            Plan::Fetch => {
                // No await since `in_flight` was read: this call is the only one fetching.
                let _slot = FetchSlot::take();
                CACHE.with(|c| c.borrow_mut().clock.attempted_ms = Some(now));
                match fetch_keys(&config.jwks_url).await {
                    Some((fresh, max_age)) => CACHE.with(|c| {
                        let mut cache = c.borrow_mut();
                        cache.set = Rc::new(fresh);
                        cache.clock.fetched_ms = Some(now);
                        cache.clock.max_age_s = max_age;
                    }),
                    None => worker::console_error!(
                        "{{\"level\":\"error\",\"msg\":\"JWKS fetch failed; keeping the kept set\"}}"
                    ),
                }
                return kept(spacing_s);
            }
        }
    }
}

async fn verify(jws: &Jws, key: &CryptoKey) -> bool {
    match js_object(verify_params(jws.alg)) {
        Some(params) => {
            super::crypto::subtle_verify(&params, key, &jws.signature, &jws.signing_input).await
        }
        None => false,
    }
}

fn unavailable(retry_after_s: u64) -> ApiError {
    ApiError::new(ErrorCode::AuthUnavailable).with_retry_after(retry_after_s)
}

/// The person behind a login token, as a token record of their org with their role's
/// capabilities (no allow-list, so every session of the org) and the token's `exp`. Every refusal is the same
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
    let mut set = keys(config, Need::Keys).await?;
    let mut choice = choose_key(&set.jwks, &jws);
    if choice == KeyChoice::UnknownKid {
        // A rotated key: refetch, at most once per 30 s.
        set = keys(config, Need::UnknownKid).await?;
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
        // Shown by `GET /v1/token`; the claims above decided the token's life (with leeway).
        expires_at: Some(person.expires_at),
        revoked: false,
        label: None,
        created_at: 0,
    })
}
