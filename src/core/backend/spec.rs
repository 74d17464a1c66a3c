//! A session's `backend` (contract section 9): validated from the admin body, kept in KV
//! with its credential sealed, and shown in answers without it.
//!
//! Invariant: a credential in the clear exists only in a [`BackendInput`] (between parsing
//! the admin body and sealing it) and in a dialect's `Target` (for one exchange); what is
//! stored and what is answered hold only the sealed form and `has_credential`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::Kind;
use crate::core::error::{ApiError, ErrorCode};
use crate::core::json::{deserialize_with, present, reject_unknown, Fields};
use crate::core::url::Host;

pub const MAX_URL_CHARS: usize = 2048;
pub const MAX_REMOTE_SESSION_CHARS: usize = 100;
pub const MAX_CREDENTIAL_CHARS: usize = 512;

/// A `backend` as the admin sent it, checked; the credential still in the clear.
#[derive(Clone, PartialEq)]
pub struct BackendInput {
    pub kind: Kind,
    pub url: String,
    pub remote_session: Option<String>,
    pub credential: Option<String>,
}

impl std::fmt::Debug for BackendInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendInput")
            .field("kind", &self.kind)
            .field("url", &self.url)
            .field("remote_session", &self.remote_session)
            .field("has_credential", &self.credential.is_some())
            .finish()
    }
}

/// A credential sealed before v1.2: its additional data is the session id alone.
pub const SEAL_SESSION_ONLY: u8 = 1;
/// A credential sealed since v1.2: bound to the session id, kind, url and remote session.
pub const SEAL_BOUND_TO_BACKEND: u8 = 2;

/// An AES-256-GCM ciphertext (tag included) and its 96-bit IV, both base64, and what its
/// additional data binds (`v`; records written before it existed have none: version 1).
/// Read back by hand (`Sealed::read`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sealed {
    pub iv: String,
    pub ct: String,
    pub v: u8,
}

impl Sealed {
    pub fn read(value: Value) -> Option<Self> {
        let mut fields = Fields::of(value)?;
        Some(Self {
            iv: fields.string("iv")?,
            ct: fields.string("ct")?,
            v: fields.or("v", SEAL_SESSION_ONLY, |value| {
                u8::try_from(value.as_u64()?).ok()
            })?,
        })
    }
}

impl<'de> Deserialize<'de> for Sealed {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_with(d, Sealed::read)
    }
}

/// What KV keeps of a session's backend (read back by hand: `StoredBackend::read`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredBackend {
    pub kind: Kind,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_session: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<Sealed>,
}

impl<'de> Deserialize<'de> for StoredBackend {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_with(d, StoredBackend::read)
    }
}

impl StoredBackend {
    pub fn read(value: Value) -> Option<Self> {
        let mut fields = Fields::of(value)?;
        Some(Self {
            kind: fields.with("kind", Kind::read)?,
            url: fields.string("url")?,
            remote_session: fields.opt_string("remote_session")?,
            credential: fields.opt("credential", Sealed::read)?,
        })
    }

    /// The `backend` of admin answers: never the credential, only whether there is one.
    pub fn view(&self) -> Value {
        let mut view = json!({
            "kind": self.kind.as_str(),
            "url": self.url,
            "has_credential": self.credential.is_some(),
        });
        if let Some(remote) = &self.remote_session {
            view["remote_session"] = Value::from(remote.as_str());
        }
        view
    }

    /// The remote session name in force: the given one, else the session id where the kind
    /// defaults to it.
    pub fn remote_session_for(&self, sid: &str) -> Option<String> {
        self.remote_session.clone().or_else(|| {
            self.kind
                .remote_session_defaults_to_sid()
                .then(|| sid.to_string())
        })
    }

    /// The additional data a credential of this backend is sealed with in seal format
    /// `version` (`None` for a format joingate does not know). Since v1.2 it binds the
    /// session id, the kind, the normalised url and the remote session in force, so that a
    /// ciphertext copied to another record, or left in a record pointed at another server,
    /// does not decrypt. Each value is a JSON string (or null), so no two bindings share
    /// their bytes.
    pub fn credential_aad(&self, sid: &str, version: u8) -> Option<Vec<u8>> {
        match version {
            SEAL_SESSION_ONLY => {
                Some(format!("joingate credential for session {sid}").into_bytes())
            }
            SEAL_BOUND_TO_BACKEND => serde_json::to_vec(&json!([
                "joingate credential v2",
                sid,
                self.kind.as_str(),
                self.url,
                self.remote_session_for(sid),
            ]))
            .ok(),
            _ => None,
        }
    }
}

/// `503 backend_unavailable` for a session of the default backend while
/// `SESSION_BACKEND_URL` is missing or fails the `backend.url` rules: nothing is sent.
pub fn backend_url_invalid() -> ApiError {
    ApiError::new(ErrorCode::BackendUnavailable)
        .with_message(
            "The default session backend is not configured correctly (SESSION_BACKEND_URL).",
        )
        .with_detail("reason", "backend_url_invalid")
        .with_retry_after(BACKEND_URL_INVALID_RETRY_S)
}

/// `Retry-After` of `backend_url_invalid`: a fix is a new deployment, not a moment's wait.
pub const BACKEND_URL_INVALID_RETRY_S: u64 = 60;

/// `CREDENTIALS_KEY`: 32 bytes, base64.
pub fn credentials_key(text: &str) -> Option<[u8; 32]> {
    crate::core::base64::decode(text.trim())?.try_into().ok()
}

fn printable(text: &str, allow_space: bool) -> bool {
    text.bytes()
        .all(|b| (0x21..=0x7e).contains(&b) || (allow_space && b == b' '))
}

/// `localhost`, `127.0.0.0/8` or `[::1]`: the only hosts `http://` may name.
pub fn is_loopback(host: &Host) -> bool {
    match host {
        Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// An absolute `https://` URL (`http://` only for a loopback host) without userinfo, query
/// or fragment, normalised with no trailing `/`. `field` names it in errors.
pub fn validate_url(text: &str, field: &str) -> Result<String, ApiError> {
    check_url(text, field, false)
}

/// A webhook endpoint (contract section 11): the same rules, but a query is kept (receivers
/// often take a key there); the URL is kept as the WHATWG serializer normalises it.
pub fn validate_webhook_url(text: &str, field: &str) -> Result<String, ApiError> {
    check_url(text, field, true)
}

fn check_url(text: &str, field: &str, query_allowed: bool) -> Result<String, ApiError> {
    let invalid = |why: &str| ApiError::invalid(field, why);
    if text.is_empty() || text.len() > MAX_URL_CHARS || !printable(text, false) {
        return Err(invalid(
            "must be an absolute https:// URL of at most 2048 characters",
        ));
    }
    let url =
        crate::core::url::parse(text).ok_or_else(|| invalid("must be an absolute https:// URL"))?;
    let host = url
        .host
        .as_ref()
        .ok_or_else(|| invalid("must name a host"))?;
    match url.scheme.as_str() {
        "https" => {}
        "http" if is_loopback(host) => {}
        "http" => {
            return Err(invalid(
                "may use http:// only for a loopback host; use https://",
            ))
        }
        _ => return Err(invalid("must be an https:// URL")),
    }
    if !url.username.is_empty() || url.password.is_some() {
        return Err(invalid("must not carry a user name or password"));
    }
    if !query_allowed && (url.query.is_some() || text.contains('?')) {
        return Err(invalid("must not have a query"));
    }
    if url.fragment.is_some() || text.contains('#') {
        return Err(invalid("must not have a fragment"));
    }
    if query_allowed {
        return Ok(url.href);
    }
    Ok(url.href.trim_end_matches('/').to_string())
}

fn optional_text<'a>(
    body: &'a Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<Option<&'a str>, ApiError> {
    match present(body, key) {
        None => Ok(None),
        Some(value) => value
            .as_str()
            .map(Some)
            .ok_or_else(|| ApiError::invalid(field, "must be a string")),
    }
}

/// The `backend` of a `PUT /v1/admin/sessions/{sid}` body; `None` for absent or `null`.
pub fn parse_backend(value: Option<&Value>) -> Result<Option<BackendInput>, ApiError> {
    let body = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(ApiError::invalid("backend", "must be an object")),
    };
    reject_unknown(
        body,
        &["kind", "url", "remote_session", "credential"],
        "backend.",
    )?;
    let kind = optional_text(body, "kind", "backend.kind")?
        .ok_or_else(|| ApiError::invalid("backend.kind", "is required"))?;
    let kind = Kind::parse(kind).ok_or_else(|| {
        ApiError::invalid(
            "backend.kind",
            "must be one of joingate, waha, evolution, wuzapi, gowa",
        )
    })?;
    let url = optional_text(body, "url", "backend.url")?
        .ok_or_else(|| ApiError::invalid("backend.url", "is required"))?;
    let url = validate_url(url, "backend.url")?;
    let remote_session = optional_text(body, "remote_session", "backend.remote_session")?;
    if let Some(remote) = remote_session {
        let fits = !remote.is_empty()
            && remote.len() <= MAX_REMOTE_SESSION_CHARS
            && printable(remote, false)
            && !remote.contains(['/', '?', '#']);
        if !fits {
            return Err(ApiError::invalid(
                "backend.remote_session",
                "must be 1-100 printable ASCII characters without whitespace, /, ? or #",
            ));
        }
    }
    let credential = optional_text(body, "credential", "backend.credential")?;
    if let Some(secret) = credential {
        if secret.is_empty() || secret.len() > MAX_CREDENTIAL_CHARS || !printable(secret, true) {
            return Err(ApiError::invalid(
                "backend.credential",
                "must be 1-512 printable ASCII characters",
            ));
        }
    }
    Ok(Some(BackendInput {
        kind,
        url,
        remote_session: remote_session.map(str::to_owned),
        credential: credential.map(str::to_owned),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(value: Value) -> Option<String> {
        parse_backend(Some(&value)).err().and_then(|e| {
            assert_eq!(e.code, ErrorCode::ValidationError);
            e.field().map(str::to_owned)
        })
    }

    #[test]
    fn urls_follow_the_contract() {
        for (given, normalised) in [
            ("https://waha.example.com", "https://waha.example.com"),
            ("https://waha.example.com/", "https://waha.example.com"),
            (
                "https://WAHA.example.com:8443/prefix/",
                "https://waha.example.com:8443/prefix",
            ),
            ("http://127.0.0.1:3000", "http://127.0.0.1:3000"),
            ("http://127.9.9.9/x", "http://127.9.9.9/x"),
            ("http://localhost:8080/", "http://localhost:8080"),
            ("http://[::1]:8080", "http://[::1]:8080"),
        ] {
            assert_eq!(
                validate_url(given, "u").as_deref(),
                Ok(normalised),
                "{given}"
            );
        }
        for bad in [
            "",
            "waha.example.com",
            "/relative",
            "ftp://waha.example.com",
            "http://waha.example.com",
            "http://10.0.0.1",
            "http://localhost.evil.example",
            "https://user:pass@waha.example.com",
            "https://user@waha.example.com",
            "https://waha.example.com/?",
            "https://waha.example.com/?a=1",
            "https://waha.example.com/#x",
            "https://waha.example.com/ x",
            "https://wähä.example.com",
        ] {
            assert!(validate_url(bad, "u").is_err(), "{bad}");
        }
    }

    #[test]
    fn every_bad_field_is_named() {
        let ok = json!({ "kind": "waha", "url": "https://w.example" });
        assert_eq!(field_of(ok.clone()), None);
        for (body, field) in [
            (json!("waha"), "backend"),
            (json!({ "url": "https://w.example" }), "backend.kind"),
            (
                json!({ "kind": "wappi", "url": "https://w.example" }),
                "backend.kind",
            ),
            (
                json!({ "kind": 5, "url": "https://w.example" }),
                "backend.kind",
            ),
            (json!({ "kind": "waha" }), "backend.url"),
            (
                json!({ "kind": "waha", "url": "http://w.example" }),
                "backend.url",
            ),
            (
                json!({ "kind": "waha", "url": "https://w.example", "remote_session": "" }),
                "backend.remote_session",
            ),
            (
                json!({ "kind": "waha", "url": "https://w.example", "remote_session": "a/b" }),
                "backend.remote_session",
            ),
            (
                json!({ "kind": "waha", "url": "https://w.example", "remote_session": "a b" }),
                "backend.remote_session",
            ),
            (
                json!({ "kind": "waha", "url": "https://w.example", "remote_session": "x".repeat(101) }),
                "backend.remote_session",
            ),
            (
                json!({ "kind": "waha", "url": "https://w.example", "credential": "" }),
                "backend.credential",
            ),
            (
                json!({ "kind": "waha", "url": "https://w.example", "credential": "é" }),
                "backend.credential",
            ),
            (
                json!({ "kind": "waha", "url": "https://w.example", "credential": "x".repeat(513) }),
                "backend.credential",
            ),
            (
                json!({ "kind": "waha", "url": "https://w.example", "credential": 5 }),
                "backend.credential",
            ),
            (
                json!({ "kind": "waha", "url": "https://w.example", "token": "x" }),
                "backend.token",
            ),
        ] {
            assert_eq!(field_of(body.clone()).as_deref(), Some(field), "{body}");
        }
        assert_eq!(parse_backend(Some(&Value::Null)), Ok(None));
        assert_eq!(parse_backend(None), Ok(None));
    }

    #[test]
    fn keys_are_32_bytes_of_base64() {
        let key = crate::core::base64::encode(&[7u8; 32]);
        assert_eq!(credentials_key(&key), Some([7u8; 32]));
        assert_eq!(
            credentials_key(&crate::core::base64::encode(&[7u8; 16])),
            None
        );
        assert_eq!(credentials_key("not base64"), None);
    }

    #[test]
    fn a_credential_is_bound_to_its_session_and_backend() {
        let waha = StoredBackend {
            kind: Kind::Waha,
            url: "https://w.example".into(),
            remote_session: None,
            credential: None,
        };
        let aad = |b: &StoredBackend, sid: &str| b.credential_aad(sid, SEAL_BOUND_TO_BACKEND);
        let base = aad(&waha, "s1");
        assert!(base.is_some());
        let others = [
            aad(&waha, "s2"),
            aad(
                &StoredBackend {
                    kind: Kind::Evolution,
                    ..waha.clone()
                },
                "s1",
            ),
            aad(
                &StoredBackend {
                    url: "https://w.example/x".into(),
                    ..waha.clone()
                },
                "s1",
            ),
            aad(
                &StoredBackend {
                    url: "https://evil.example".into(),
                    ..waha.clone()
                },
                "s1",
            ),
            aad(
                &StoredBackend {
                    remote_session: Some("other".into()),
                    ..waha.clone()
                },
                "s1",
            ),
        ];
        for other in others {
            assert_ne!(other, base);
        }
        // The remote session in force is bound: waha's default is the session id.
        assert_eq!(
            aad(
                &StoredBackend {
                    remote_session: Some("s1".into()),
                    ..waha.clone()
                },
                "s1"
            ),
            base
        );
        // Values cannot run into each other.
        let split = StoredBackend {
            remote_session: Some("b".into()),
            ..waha.clone()
        };
        let joined = StoredBackend {
            remote_session: Some("\",\"b".into()),
            ..waha.clone()
        };
        assert_ne!(aad(&split, "a"), aad(&joined, "a"));
        // Before v1.2: the session id alone, as it was; an unknown format opens nothing.
        assert_eq!(
            waha.credential_aad("s1", SEAL_SESSION_ONLY),
            Some(b"joingate credential for session s1".to_vec())
        );
        assert_eq!(waha.credential_aad("s1", 3), None);
    }

    #[test]
    fn a_sealed_value_without_a_version_is_of_before_v1_2() {
        let old: Sealed = serde_json::from_str(r#"{"iv":"aXY=","ct":"Y3Q="}"#).unwrap();
        assert_eq!(old.v, SEAL_SESSION_ONLY);
        let new = Sealed {
            v: SEAL_BOUND_TO_BACKEND,
            ..old
        };
        let text = serde_json::to_string(&new).unwrap();
        assert_eq!(serde_json::from_str::<Sealed>(&text).unwrap(), new);
        for broken in [
            r#"{"iv":"aXY=","ct":"Y3Q=","v":null}"#,
            r#"{"iv":"aXY=","ct":"Y3Q=","v":256}"#,
            r#"{"iv":"aXY=","ct":"Y3Q=","v":-1}"#,
            r#"{"iv":"aXY="}"#,
        ] {
            assert!(serde_json::from_str::<Sealed>(broken).is_err(), "{broken}");
        }
    }

    #[test]
    fn stored_backends_read_back() {
        let read = |text: &str| serde_json::from_str::<StoredBackend>(text).ok();
        let stored = StoredBackend {
            kind: Kind::Gowa,
            url: "https://gowa.example".into(),
            remote_session: Some("dev".into()),
            credential: Some(Sealed {
                iv: "aXY=".into(),
                ct: "Y3Q=".into(),
                v: SEAL_BOUND_TO_BACKEND,
            }),
        };
        let text = serde_json::to_string(&stored).unwrap_or_default();
        assert_eq!(read(&text), Some(stored), "{text}");
        let bare = StoredBackend {
            kind: Kind::Waha,
            url: "https://waha.example".into(),
            remote_session: None,
            credential: None,
        };
        for text in [
            r#"{"kind":"waha","url":"https://waha.example"}"#,
            r#"{"kind":"waha","url":"https://waha.example","remote_session":null,"credential":null}"#,
        ] {
            assert_eq!(read(text), Some(bare.clone()), "{text}");
        }
        for broken in [
            r#"{"kind":"Waha","url":"https://waha.example"}"#,
            r#"{"url":"https://waha.example"}"#,
            r#"{"kind":"waha","url":"https://waha.example","credential":{"iv":"aXY="}}"#,
            r#"{"kind":"waha","url":"https://waha.example","remote_session":7}"#,
        ] {
            assert_eq!(read(broken), None, "{broken}");
        }
    }

    #[test]
    fn an_invalid_default_backend_url_is_503_backend_url_invalid() {
        let error = backend_url_invalid();
        assert_eq!(error.code, ErrorCode::BackendUnavailable);
        assert_eq!(error.details["reason"], "backend_url_invalid");
        assert!(error.backend_never_reached());
        assert_eq!(error.retry_after_s, Some(BACKEND_URL_INVALID_RETRY_S));
    }

    #[test]
    fn views_never_hold_the_credential() {
        let stored = StoredBackend {
            kind: Kind::Gowa,
            url: "https://g.example".into(),
            remote_session: None,
            credential: Some(Sealed {
                iv: "aXY=".into(),
                ct: "Y3Q=".into(),
                v: SEAL_BOUND_TO_BACKEND,
            }),
        };
        assert_eq!(
            stored.view(),
            json!({ "kind": "gowa", "url": "https://g.example", "has_credential": true })
        );
        assert_eq!(stored.remote_session_for("s1"), None);
        let waha = StoredBackend {
            kind: Kind::Waha,
            ..stored
        };
        assert_eq!(waha.remote_session_for("s1").as_deref(), Some("s1"));
        let input = parse_backend(Some(
            &json!({ "kind": "waha", "url": "https://w.example", "credential": "top-secret" }),
        ));
        assert!(!format!("{input:?}").contains("top-secret"));
    }
}
