//! Login tokens (contract section 12): a bearer value that is a compact JWS is a person's
//! login token, minted by a front end and verified against its JWKS. Everything here is
//! pure: the shape check, the header, the claims with their leeway, the role map, the key
//! choice and the JWKS cache's timing; the edge only fetches the set and asks WebCrypto to
//! verify the signature.
//!
//! Invariants: a value that is not well formed (size, three base64url parts, a JSON header
//! naming RS256 or ES256) is refused before anything is fetched; every refusal is the same
//! `unauthorized` as an API key's; `alg` must fit the key's type, so `none`, `HS*` and an
//! HS256 token keyed with an RSA public key never reach a verification.

use serde_json::{Map, Value};

use super::ids::OrgId;
use super::json::parse_bytes;
use super::token::Capability;

/// Longest bearer value taken as a login token.
pub const MAX_JWT_BYTES: usize = 8 * 1024;
/// Leeway for `exp`, `nbf` and `iat`, each way.
pub const LEEWAY_S: i64 = 60;
/// The JWKS is kept for its `max-age`, within these bounds (v1.2: at most an hour);
/// default 10 minutes.
pub const MIN_MAX_AGE_S: u64 = 60;
pub const MAX_MAX_AGE_S: u64 = 3_600;
pub const DEFAULT_MAX_AGE_S: u64 = 600;
/// An unknown `kid` refetches the set at most this often (since the last fetch).
pub const REFETCH_INTERVAL_MS: i64 = 30_000;
/// While no set is kept, fetches are at least this far apart (`JWT_JWKS_RETRY_S`); calls in
/// between answer `auth_unavailable`.
pub const DEFAULT_FETCH_SPACING_S: u64 = 5;
/// A JWKS document larger than this, or with more keys, is a failed fetch.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
pub const MAX_JWKS_KEYS: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Es256,
}

impl Alg {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "RS256" => Some(Self::Rs256),
            "ES256" => Some(Self::Es256),
            _ => None,
        }
    }
}

/// A well-formed login token, not yet verified.
#[derive(Debug, Clone, PartialEq)]
pub struct Jws {
    pub alg: Alg,
    pub kid: Option<String>,
    pub claims: Map<String, Value>,
    /// `header.payload`, the bytes the signature covers.
    pub signing_input: Vec<u8>,
    pub signature: Vec<u8>,
}

/// base64url without padding (RFC 7515); `None` for anything else.
pub fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    if text.contains(['=', '+', '/']) || text.len() % 4 == 1 {
        return None;
    }
    let standard: String = text
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    let padding = (4 - standard.len() % 4) % 4;
    super::base64::decode(&format!("{standard}{}", "=".repeat(padding)))
}

fn is_base64url(part: &str) -> bool {
    !part.is_empty()
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether a bearer value is a compact JWS at all (three base64url parts); such a value is
/// a login token and never an API key.
pub fn is_compact_jws(value: &str) -> bool {
    let parts: Vec<&str> = value.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| is_base64url(p))
}

fn json_object(part: &str) -> Option<Map<String, Value>> {
    match parse_bytes(&base64url_decode(part)?)? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// A well-formed login token: at most 8 KiB, three base64url parts, a JSON header naming
/// RS256 or ES256 (and `kid`, if any, a string), a JSON object payload.
pub fn parse(value: &str) -> Option<Jws> {
    if value.len() > MAX_JWT_BYTES || !is_compact_jws(value) {
        return None;
    }
    let mut parts = value.split('.');
    let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    let header_json = json_object(header)?;
    let alg = Alg::parse(header_json.get("alg")?.as_str()?)?;
    let kid = match header_json.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return None,
    };
    // A token that says it carries something other than a JWT payload is not ours.
    if header_json.contains_key("crit") || header_json.get("b64").is_some() {
        return None;
    }
    Some(Jws {
        alg,
        kid,
        claims: json_object(payload)?,
        signing_input: format!("{header}.{payload}").into_bytes(),
        signature: base64url_decode(signature)?,
    })
}

/// What `[vars]` say about login tokens; `None` when JWTs are not configured (all three of
/// issuer, audience and JWKS URL are needed).
#[derive(Debug, Clone, PartialEq)]
pub struct JwtConfig {
    pub issuer: String,
    pub audience: String,
    pub jwks_url: String,
    pub org_claim: String,
    pub role_claim: String,
    /// Role → capabilities, each role once (a list: a map type of its own would be more
    /// wasm than its few lookups are worth).
    pub roles: Vec<(String, Vec<Capability>)>,
    /// While no set is kept, the least time between two fetches.
    pub fetch_spacing_ms: i64,
}

/// `JWT_JWKS_URL`: an absolute `https://` URL, `http://` only to a loopback host (a key set
/// fetched in the clear could be anyone's), without user name or password; a query is kept.
/// The error says why, never the value.
pub fn check_jwks_url(text: &str) -> Result<String, String> {
    let why = |reason: &str| format!("JWT_JWKS_URL {reason}; login tokens are off");
    let url = super::url::parse(text.trim()).ok_or_else(|| why("is not an absolute URL"))?;
    let host = url.host.as_ref().ok_or_else(|| why("names no host"))?;
    match url.scheme.as_str() {
        "https" => {}
        "http" if super::backend::spec::is_loopback(host) => {}
        _ => return Err(why("must be https:// (http:// only to a loopback host)")),
    }
    if !url.username.is_empty() || url.password.is_some() {
        return Err(why("must not carry a user name or password"));
    }
    if url.fragment.is_some() {
        return Err(why("must not have a fragment"));
    }
    Ok(url.href)
}

pub const DEFAULT_ROLES: &str = r#"{"owner":["join","read","manage"],"admin":["join","read","manage"],"member":["join","read"],"viewer":["read"]}"#;

/// `JWT_ROLES`: a JSON object of role → capabilities (each role once, as JSON object keys
/// are).
pub fn parse_roles(text: &str) -> Result<Vec<(String, Vec<Capability>)>, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|_| "JWT_ROLES must be a JSON object".to_string())?;
    let map = value
        .as_object()
        .ok_or_else(|| "JWT_ROLES must be a JSON object".to_string())?;
    let mut roles = Vec::with_capacity(map.len());
    for (role, list) in map {
        let names = list
            .as_array()
            .ok_or_else(|| format!("JWT_ROLES.{role} must be a list of capabilities"))?;
        let mut capabilities = Vec::new();
        for name in names {
            let capability = name
                .as_str()
                .and_then(Capability::parse)
                .ok_or_else(|| format!("JWT_ROLES.{role} may only hold join, read, manage"))?;
            if !capabilities.contains(&capability) {
                capabilities.push(capability);
            }
        }
        roles.push((role.clone(), capabilities));
    }
    Ok(roles)
}

impl JwtConfig {
    /// From the vars (`var(name)` is a set, non-blank var). A partial configuration (some of
    /// issuer, audience, JWKS URL) is no configuration: JWTs are then always unauthorized.
    #[inline(never)]
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        let (Some(issuer), Some(audience), Some(jwks_url)) =
            (var("JWT_ISSUER"), var("JWT_AUDIENCE"), var("JWT_JWKS_URL"))
        else {
            return Ok(None);
        };
        let roles = parse_roles(&var("JWT_ROLES").unwrap_or_else(|| DEFAULT_ROLES.to_string()))?;
        let spacing_s = match var("JWT_JWKS_RETRY_S") {
            None => DEFAULT_FETCH_SPACING_S,
            Some(text) => text
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|s| (1..=300).contains(s))
                .ok_or_else(|| "JWT_JWKS_RETRY_S must be 1-300 seconds".to_string())?,
        };
        Ok(Some(Self {
            issuer,
            audience,
            jwks_url,
            org_claim: var("JWT_ORG_CLAIM").unwrap_or_else(|| "org".into()),
            role_claim: var("JWT_ROLE_CLAIM").unwrap_or_else(|| "role".into()),
            roles,
            fetch_spacing_ms: i64::try_from(spacing_s * 1000).unwrap_or(i64::MAX),
        }))
    }
}

/// Who a verified login token speaks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    pub org: String,
    pub capabilities: Vec<Capability>,
    /// The `sub` claim ("" when absent), only ever logged hashed.
    pub subject: String,
    /// The `exp` claim (unix seconds), shown by `GET /v1/token`.
    pub expires_at: i64,
}

fn number(value: Option<&Value>) -> Option<i64> {
    let value = value?;
    value
        .as_i64()
        .or_else(|| value.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
}

/// The claims of a token whose signature was verified, checked at `now_s`.
pub fn check_claims(claims: &Map<String, Value>, config: &JwtConfig, now_s: i64) -> Option<Person> {
    if claims.get("iss")?.as_str()? != config.issuer {
        return None;
    }
    let audience_ok = match claims.get("aud")? {
        Value::String(aud) => *aud == config.audience,
        Value::Array(list) => list.iter().any(|a| a.as_str() == Some(&config.audience)),
        _ => false,
    };
    if !audience_ok {
        return None;
    }
    let exp = number(claims.get("exp"))?;
    if now_s >= exp.saturating_add(LEEWAY_S) {
        return None;
    }
    for name in ["nbf", "iat"] {
        match claims.get(name) {
            None => {}
            Some(value) => {
                let at = number(Some(value))?;
                if at > now_s.saturating_add(LEEWAY_S) {
                    return None;
                }
            }
        }
    }
    let org = claims.get(&config.org_claim)?.as_str()?;
    OrgId::parse(org).ok()?;
    // A role without a mapping (or no role at all) has no capabilities: forbidden later.
    let capabilities = claims
        .get(&config.role_claim)
        .and_then(Value::as_str)
        .and_then(|role| config.roles.iter().find(|(name, _)| name == role))
        .map(|(_, capabilities)| capabilities.clone())
        .unwrap_or_default();
    Some(Person {
        org: org.to_string(),
        capabilities,
        subject: claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        expires_at: exp,
    })
}

/// The name of a login token in log lines: `jwt:` and 16 hex digits of SHA-256 of `sub`.
pub fn log_name(subject: &str) -> String {
    format!("jwt:{}", &super::token::sha256_hex(subject)[..16])
}

/// A usable key of a JWKS: RSA, or EC on P-256; what WebCrypto imports.
#[derive(Debug, Clone, PartialEq)]
pub struct Jwk {
    pub kid: Option<String>,
    pub alg: Alg,
    /// The JWK members WebCrypto needs (`kty`, `n`, `e` or `kty`, `crv`, `x`, `y`).
    pub public: Map<String, Value>,
}

/// The keys of a JWKS document that a login token can use; others (private members,
/// `use` other than `sig`, other key types or curves, an `alg` that does not fit) are left
/// out.
///
/// A document over `MAX_JWKS_BYTES`, or with more than `MAX_JWKS_KEYS` entries (usable or
/// not), is no key set at all: a failed fetch.
pub fn parse_jwks(body: &[u8]) -> Option<Vec<Jwk>> {
    if body.len() > MAX_JWKS_BYTES {
        return None;
    }
    let value = parse_bytes(body)?;
    let keys = value.get("keys")?.as_array()?;
    if keys.len() > MAX_JWKS_KEYS {
        return None;
    }
    let mut usable = Vec::new();
    for key in keys {
        let Some(key) = key.as_object() else { continue };
        let text = |name: &str| key.get(name).and_then(Value::as_str);
        if text("use").is_some_and(|u| u != "sig") || key.contains_key("d") {
            continue;
        }
        let (alg, members): (Alg, &[&str]) = match (text("kty"), text("crv")) {
            (Some("RSA"), _) => (Alg::Rs256, &["kty", "n", "e"]),
            (Some("EC"), Some("P-256")) => (Alg::Es256, &["kty", "crv", "x", "y"]),
            _ => continue,
        };
        if text("alg").is_some_and(|a| Alg::parse(a) != Some(alg)) {
            continue;
        }
        let mut public = Map::new();
        for member in members {
            match text(member) {
                Some(v) => public.insert((*member).to_string(), Value::from(v)),
                None => break,
            };
        }
        if public.len() != members.len() {
            continue;
        }
        usable.push(Jwk {
            kid: text("kid").map(str::to_owned),
            alg,
            public,
        });
    }
    Some(usable)
}

/// Which key of the set verifies this token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChoice {
    Key(usize),
    /// The `kid` is not in the set: a refetch may find it.
    UnknownKid,
    /// No key can verify it (no `kid` and not exactly one key of its type; a `kid` whose key
    /// is of another type).
    NoKey,
}

pub fn choose_key(keys: &[Jwk], jws: &Jws) -> KeyChoice {
    match &jws.kid {
        Some(kid) => match keys.iter().position(|k| k.kid.as_deref() == Some(kid)) {
            Some(index) if keys[index].alg == jws.alg => KeyChoice::Key(index),
            Some(_) => KeyChoice::NoKey,
            None => KeyChoice::UnknownKid,
        },
        None => {
            let of_type: Vec<usize> = (0..keys.len())
                .filter(|i| keys[*i].alg == jws.alg)
                .collect();
            match of_type.as_slice() {
                [only] => KeyChoice::Key(*only),
                _ => KeyChoice::NoKey,
            }
        }
    }
}

/// `Cache-Control: max-age`, within 60 s – 1 h; 10 minutes when absent.
pub fn max_age_s(cache_control: Option<&str>) -> u64 {
    let given = cache_control.and_then(|value| {
        value.split(',').find_map(|directive| {
            let (name, seconds) = directive.trim().split_once('=')?;
            name.trim().eq_ignore_ascii_case("max-age").then(|| {
                let seconds = seconds.trim().trim_matches('"');
                // All digits but too long for a number: longer than any bound anyway.
                let digits = !seconds.is_empty() && seconds.bytes().all(|b| b.is_ascii_digit());
                digits.then(|| seconds.parse::<u64>().unwrap_or(u64::MAX))
            })?
        })
    });
    given
        .unwrap_or(DEFAULT_MAX_AGE_S)
        .clamp(MIN_MAX_AGE_S, MAX_MAX_AGE_S)
}

/// When the kept set was fetched, for how long it is fresh, and the last attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheClock {
    /// When the kept set was fetched; `None` when none is kept.
    pub fetched_ms: Option<i64>,
    pub max_age_s: u64,
    /// The last fetch attempt, successful or not.
    pub attempted_ms: Option<i64>,
}

/// Why the set would be fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Any call: the kept set may be missing or stale.
    Keys,
    /// The token's `kid` is not in the kept set.
    UnknownKid,
}

/// What a call does about the key set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Use the kept set as it is.
    UseKept,
    /// Fetch the set (the caller holds the isolate's one fetch).
    Fetch,
    /// A fetch is in flight: wait for it, then plan again.
    Wait,
    /// No set is kept and the last attempt was too recent: `auth_unavailable`.
    Unavailable { retry_after_s: u64 },
}

impl CacheClock {
    fn is_stale(&self, fetched_ms: i64, now_ms: i64) -> bool {
        now_ms - fetched_ms >= i64::try_from(self.max_age_s * 1000).unwrap_or(i64::MAX)
    }

    /// What to do now, given whether a fetch is `in_flight` (one per isolate: calls that
    /// need it wait for it). With none kept, fetches are `spacing_ms` apart; a stale set is
    /// refreshed; an unknown `kid` refetches at most once per 30 s since the last attempt.
    pub fn plan(&self, need: Need, now_ms: i64, in_flight: bool, spacing_ms: i64) -> Plan {
        let Some(fetched_ms) = self.fetched_ms else {
            if in_flight {
                return Plan::Wait;
            }
            return match self.attempted_ms {
                Some(at) if now_ms - at < spacing_ms => {
                    let wait_ms = u64::try_from(at + spacing_ms - now_ms).unwrap_or(0);
                    Plan::Unavailable {
                        retry_after_s: wait_ms.div_ceil(1000).max(1),
                    }
                }
                _ => Plan::Fetch,
            };
        };
        let stale = self.is_stale(fetched_ms, now_ms);
        if in_flight {
            // A fresh set serves at once; a stale one or an unknown kid waits for the fetch.
            return if need == Need::Keys && !stale {
                Plan::UseKept
            } else {
                Plan::Wait
            };
        }
        let since_attempt_ok = self
            .attempted_ms
            .is_none_or(|at| now_ms - at >= REFETCH_INTERVAL_MS);
        // A stale set whose refresh just failed is used as it is for a while.
        let fetch = match need {
            Need::Keys => stale && since_attempt_ok,
            Need::UnknownKid => since_attempt_ok,
        };
        if fetch {
            Plan::Fetch
        } else {
            Plan::UseKept
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64url(bytes: &[u8]) -> String {
        crate::core::base64::encode(bytes)
            .trim_end_matches('=')
            .replace('+', "-")
            .replace('/', "_")
    }

    fn token(header: Value, payload: Value) -> String {
        format!(
            "{}.{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(payload.to_string().as_bytes()),
            b64url(b"signature")
        )
    }

    fn config() -> JwtConfig {
        JwtConfig::from_vars(|name| match name {
            "JWT_ISSUER" => Some("https://id.example".into()),
            "JWT_AUDIENCE" => Some("joingate".into()),
            "JWT_JWKS_URL" => Some("https://id.example/jwks".into()),
            _ => None,
        })
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("configured"))
    }

    const NOW: i64 = 1_800_000_000;

    fn claims(extra: Value) -> Map<String, Value> {
        let mut base = json!({ "iss": "https://id.example", "aud": "joingate", "exp": NOW + 600, "org": "acme", "role": "member", "sub": "u1" });
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                if v.is_null() {
                    b.remove(k);
                } else {
                    b.insert(k.clone(), v.clone());
                }
            }
        }
        base.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn only_rs256_and_es256_are_well_formed() {
        for (alg, ok) in [
            ("RS256", true),
            ("ES256", true),
            ("HS256", false),
            ("none", false),
            ("PS256", false),
            ("RS512", false),
            ("ES384", false),
        ] {
            let value = token(json!({ "alg": alg, "kid": "k1" }), json!({}));
            assert_eq!(parse(&value).is_some(), ok, "{alg}");
        }
        let ok = parse(&token(json!({ "alg": "ES256" }), json!({ "a": 1 })));
        assert_eq!(
            ok.as_ref().map(|j| (j.alg, j.kid.clone())),
            Some((Alg::Es256, None))
        );
        assert_eq!(ok.map(|j| j.signature), Some(b"signature".to_vec()));
        for bad in [
            "jg_abc".to_string(),
            "a.b".to_string(),
            "a.b.c.d".to_string(),
            "a..c".to_string(),
            format!("{}.e30.c2ln", b64url(b"not json")),
            token(json!({ "alg": "RS256", "kid": 5 }), json!({})),
            token(json!({ "alg": "RS256", "crit": ["b64"] }), json!({})),
            token(json!({ "alg": "RS256" }), json!([1])),
            format!("{}=", token(json!({ "alg": "RS256" }), json!({}))),
            token(
                json!({ "alg": "RS256", "pad": "x".repeat(MAX_JWT_BYTES) }),
                json!({}),
            ),
        ] {
            assert_eq!(parse(&bad), None, "{bad:.60}");
        }
        assert!(!is_compact_jws("jg_abc"));
        assert!(is_compact_jws("a.b.c"));
    }

    #[test]
    fn claims_are_checked_with_leeway() {
        let config = config();
        let person = check_claims(&claims(json!({})), &config, NOW);
        assert_eq!(
            person,
            Some(Person {
                org: "acme".into(),
                capabilities: vec![Capability::Join, Capability::Read],
                subject: "u1".into(),
                expires_at: NOW + 600,
            })
        );
        for (extra, ok) in [
            (json!({ "aud": ["other", "joingate"] }), true),
            (json!({ "aud": ["other"] }), false),
            (json!({ "aud": "other" }), false),
            (json!({ "aud": null }), false),
            (json!({ "aud": 5 }), false),
            (json!({ "iss": "https://evil.example" }), false),
            (json!({ "iss": null }), false),
            (json!({ "exp": null }), false),
            (json!({ "exp": "soon" }), false),
            (json!({ "exp": NOW - 59 }), true),
            (json!({ "exp": NOW - 60 }), false),
            (json!({ "nbf": NOW + 60 }), true),
            (json!({ "nbf": NOW + 61 }), false),
            (json!({ "iat": NOW + 60 }), true),
            (json!({ "iat": NOW + 61 }), false),
            (json!({ "iat": "now" }), false),
            (json!({ "org": "a/b" }), false),
            (json!({ "org": null }), false),
            (json!({ "org": 5 }), false),
            (json!({ "sub": null }), true),
        ] {
            assert_eq!(
                check_claims(&claims(extra.clone()), &config, NOW).is_some(),
                ok,
                "{extra}"
            );
        }
        // A role without a mapping has no capabilities.
        for role in [
            json!({ "role": "intern" }),
            json!({ "role": null }),
            json!({ "role": 1 }),
        ] {
            assert_eq!(
                check_claims(&claims(role), &config, NOW).map(|p| p.capabilities),
                Some(vec![])
            );
        }
    }

    #[test]
    fn claim_names_and_roles_come_from_the_vars() {
        let config = JwtConfig::from_vars(|name| match name {
            "JWT_ISSUER" => Some("i".into()),
            "JWT_AUDIENCE" => Some("a".into()),
            "JWT_JWKS_URL" => Some("u".into()),
            "JWT_JWKS_RETRY_S" => Some("2".into()),
            "JWT_ORG_CLAIM" => Some("https://joingate/org".into()),
            "JWT_ROLE_CLAIM" => Some("roles_main".into()),
            "JWT_ROLES" => Some(r#"{"ops":["manage","manage"]}"#.into()),
            _ => None,
        });
        let config = config
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("configured"));
        assert_eq!(config.fetch_spacing_ms, 2_000);
        let claims = json!({ "iss": "i", "aud": "a", "exp": NOW + 5, "https://joingate/org": "acme", "roles_main": "ops" });
        let person = check_claims(claims.as_object().unwrap_or(&Map::new()), &config, NOW);
        assert_eq!(
            person.map(|p| p.capabilities),
            Some(vec![Capability::Manage])
        );
        assert_eq!(
            JwtConfig::from_vars(|n| (n == "JWT_ISSUER").then(|| "i".into())),
            Ok(None)
        );
        for spacing in ["0", "301", "soon"] {
            let vars = |name: &str| match name {
                "JWT_ISSUER" | "JWT_AUDIENCE" | "JWT_JWKS_URL" => Some("x".to_string()),
                "JWT_JWKS_RETRY_S" => Some(spacing.to_string()),
                _ => None,
            };
            assert!(JwtConfig::from_vars(vars).is_err(), "{spacing}");
        }
        for bad in ["[]", "{\"a\":\"join\"}", "{\"a\":[\"admin\"]}", "nope"] {
            assert!(parse_roles(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_roles(DEFAULT_ROLES).map(|r| r.len()), Ok(4));
    }

    #[test]
    fn keys_are_chosen_by_kid_and_must_fit_the_alg() {
        let jwks = json!({ "keys": [
            { "kty": "RSA", "kid": "r1", "n": "AQAB", "e": "AQAB", "alg": "RS256", "use": "sig" },
            { "kty": "EC", "kid": "e1", "crv": "P-256", "x": "eA", "y": "eQ" },
            { "kty": "EC", "kid": "e384", "crv": "P-384", "x": "eA", "y": "eQ" },
            { "kty": "oct", "kid": "h1", "k": "c2VjcmV0" },
            { "kty": "RSA", "kid": "enc", "n": "AQAB", "e": "AQAB", "use": "enc" },
            { "kty": "RSA", "kid": "priv", "n": "AQAB", "e": "AQAB", "d": "AQAB" },
            { "kty": "RSA", "kid": "ps", "n": "AQAB", "e": "AQAB", "alg": "PS256" },
            { "kty": "RSA", "kid": "short" },
        ]});
        let keys = parse_jwks(jwks.to_string().as_bytes()).unwrap_or_default();
        assert_eq!(
            keys.iter()
                .map(|k| k.kid.clone().unwrap_or_default())
                .collect::<Vec<_>>(),
            ["r1", "e1"]
        );
        assert_eq!(keys[0].public.len(), 3, "only the public members are kept");
        let jws = |alg, kid: Option<&str>| Jws {
            alg,
            kid: kid.map(str::to_owned),
            claims: Map::new(),
            signing_input: vec![],
            signature: vec![],
        };
        assert_eq!(
            choose_key(&keys, &jws(Alg::Rs256, Some("r1"))),
            KeyChoice::Key(0)
        );
        assert_eq!(
            choose_key(&keys, &jws(Alg::Es256, Some("e1"))),
            KeyChoice::Key(1)
        );
        // alg must fit the key: an ES256 header naming the RSA key is refused.
        assert_eq!(
            choose_key(&keys, &jws(Alg::Es256, Some("r1"))),
            KeyChoice::NoKey
        );
        assert_eq!(
            choose_key(&keys, &jws(Alg::Rs256, Some("h1"))),
            KeyChoice::UnknownKid
        );
        assert_eq!(
            choose_key(&keys, &jws(Alg::Rs256, Some("new"))),
            KeyChoice::UnknownKid
        );
        // Without kid: only when the set has exactly one key of the type.
        assert_eq!(choose_key(&keys, &jws(Alg::Rs256, None)), KeyChoice::Key(0));
        let two = [keys[0].clone(), keys[0].clone()];
        assert_eq!(choose_key(&two, &jws(Alg::Rs256, None)), KeyChoice::NoKey);
        assert_eq!(parse_jwks(b"[]"), None);
    }

    #[test]
    fn the_cache_keeps_and_refreshes_on_time() {
        for (value, seconds) in [
            (None, 600),
            (Some("max-age=300"), 300),
            (Some("public, max-age=5"), 60),
            (Some("max-age=3600"), 3_600),
            (Some("max-age=3601"), 3_600),
            (Some("max-age=999999"), 3_600),
            (Some("max-age=99999999999999999999999"), 3_600),
            (Some("max-age=-5"), 600),
            (Some("no-cache"), 600),
            (Some("MAX-AGE=\"120\""), 120),
        ] {
            assert_eq!(max_age_s(value), seconds, "{value:?}");
        }
        const SPACING: i64 = 5_000;
        let plan = |clock: &CacheClock, need, now| clock.plan(need, now, false, SPACING);
        let empty = CacheClock::default();
        assert_eq!(plan(&empty, Need::Keys, 0), Plan::Fetch);
        let kept = CacheClock {
            fetched_ms: Some(0),
            max_age_s: 60,
            attempted_ms: Some(0),
        };
        assert_eq!(plan(&kept, Need::Keys, 59_999), Plan::UseKept);
        assert_eq!(plan(&kept, Need::Keys, 60_000), Plan::Fetch);
        assert_eq!(plan(&kept, Need::UnknownKid, 29_999), Plan::UseKept);
        assert_eq!(plan(&kept, Need::UnknownKid, 30_000), Plan::Fetch);
        // A failed refresh of a stale set: the kept set is used, retried after 30 s.
        let stale = CacheClock {
            fetched_ms: Some(0),
            max_age_s: 60,
            attempted_ms: Some(70_000),
        };
        assert_eq!(plan(&stale, Need::Keys, 80_000), Plan::UseKept);
        assert_eq!(plan(&stale, Need::Keys, 100_000), Plan::Fetch);
    }

    #[test]
    fn with_no_set_kept_fetches_are_spaced_and_say_when_to_retry() {
        let failed = CacheClock {
            fetched_ms: None,
            max_age_s: 0,
            attempted_ms: Some(1_000),
        };
        for (now, expected) in [
            (1_000, Plan::Unavailable { retry_after_s: 5 }),
            (1_001, Plan::Unavailable { retry_after_s: 5 }),
            (4_999, Plan::Unavailable { retry_after_s: 2 }),
            (5_999, Plan::Unavailable { retry_after_s: 1 }),
            (6_000, Plan::Fetch),
        ] {
            for need in [Need::Keys, Need::UnknownKid] {
                assert_eq!(failed.plan(need, now, false, 5_000), expected, "{now}");
            }
        }
        // A shorter spacing (JWT_JWKS_RETRY_S) is honoured.
        assert_eq!(failed.plan(Need::Keys, 2_000, false, 1_000), Plan::Fetch);
    }

    #[test]
    fn calls_that_need_a_fetch_in_flight_wait_for_it() {
        let none = CacheClock::default();
        assert_eq!(none.plan(Need::Keys, 0, true, 5_000), Plan::Wait);
        let kept = CacheClock {
            fetched_ms: Some(0),
            max_age_s: 60,
            attempted_ms: Some(0),
        };
        // A fresh set needs no fetch; a stale one or an unknown kid waits for it.
        assert_eq!(kept.plan(Need::Keys, 1_000, true, 5_000), Plan::UseKept);
        assert_eq!(kept.plan(Need::UnknownKid, 1_000, true, 5_000), Plan::Wait);
        assert_eq!(kept.plan(Need::Keys, 60_000, true, 5_000), Plan::Wait);
    }

    #[test]
    fn a_jwks_over_256_kib_or_20_keys_is_no_set() {
        let key = json!({ "kty": "EC", "crv": "P-256", "x": "eA", "y": "eQ" });
        let set = |n: usize| {
            json!({ "keys": vec![key.clone(); n] })
                .to_string()
                .into_bytes()
        };
        assert_eq!(parse_jwks(&set(20)).map(|k| k.len()), Some(20));
        assert_eq!(parse_jwks(&set(21)), None);
        // Unusable entries count too: the bound is on the document.
        let mut mixed = vec![json!({ "kty": "oct", "k": "c2VjcmV0" }); 20];
        mixed.push(key.clone());
        assert_eq!(
            parse_jwks(json!({ "keys": mixed }).to_string().as_bytes()),
            None
        );
        let padded = |n: usize| {
            let mut body = set(1);
            body.extend(std::iter::repeat_n(b' ', n));
            body
        };
        let room = MAX_JWKS_BYTES - set(1).len();
        assert_eq!(parse_jwks(&padded(room)).map(|k| k.len()), Some(1));
        assert_eq!(parse_jwks(&padded(room + 1)), None);
    }

    #[test]
    fn the_jwks_url_must_be_https_or_loopback_http() {
        for ok in [
            "https://id.example/.well-known/jwks.json",
            "https://id.example/jwks?tenant=a",
            "http://127.0.0.1:8080/jwks",
            "http://localhost/jwks",
            "http://[::1]:9/jwks",
        ] {
            assert!(check_jwks_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://id.example/jwks",
            "http://10.0.0.1/jwks",
            "ftp://id.example/jwks",
            "https://user:pw@id.example/jwks",
            "https://id.example/jwks#x",
            "/jwks",
            "id.example/jwks",
        ] {
            let why = check_jwks_url(bad).err().unwrap_or_default();
            assert!(why.contains("login tokens are off"), "{bad}");
            assert!(
                !why.contains("id.example") && !why.contains("pw"),
                "{bad}: {why}"
            );
        }
    }

    #[test]
    fn log_names_hash_the_subject() {
        let name = log_name("user-1");
        assert!(name.starts_with("jwt:") && name.len() == 20);
        assert!(!name.contains("user-1"));
        assert_ne!(log_name("user-2"), name);
        assert_eq!(base64url_decode("AQAB"), Some(vec![1, 0, 1]));
        assert_eq!(base64url_decode("A"), None);
    }
}
