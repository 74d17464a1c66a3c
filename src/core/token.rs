//! API tokens: format, checksum, hashing and the decisions made on a token record.
//!
//! A token is `jg_` + 33 base62 characters carrying 192 random bits + 6 base62 characters of
//! checksum (the first 4 bytes of SHA-256 over prefix and body). The checksum lets the Worker
//! reject a mistyped or made-up token without a KV read; KV only ever sees SHA-256 hashes.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::envelope::hex;
use super::error::{ApiError, ErrorCode};
use super::json::{deserialize_with, list, Fields};

pub const TOKEN_PREFIX: &str = "jg_";
pub const RANDOM_BYTES: usize = 24;
const BODY_LEN: usize = 33;
const CHECKSUM_LEN: usize = 6;
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + BODY_LEN + CHECKSUM_LEN;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Big-endian bytes as exactly `width` base62 digits (left-padded with '0').
fn base62(bytes: &[u8], width: usize) -> String {
    let mut number = bytes.to_vec();
    let mut digits = Vec::with_capacity(width);
    for _ in 0..width {
        // One long division of `number` by 62; the remainder is the next digit.
        let mut remainder = 0u32;
        for byte in number.iter_mut() {
            let acc = (remainder << 8) | u32::from(*byte);
            *byte = (acc / 62) as u8;
            remainder = acc % 62;
        }
        digits.push(BASE62[remainder as usize]);
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}

fn checksum(prefix_and_body: &str) -> String {
    let digest = Sha256::digest(prefix_and_body.as_bytes());
    base62(&digest[..4], CHECKSUM_LEN)
}

/// A new token from fresh random bytes (the caller draws them with getrandom).
pub fn mint(random: &[u8; RANDOM_BYTES]) -> String {
    let head = format!("{TOKEN_PREFIX}{}", base62(random, BODY_LEN));
    let sum = checksum(&head);
    head + &sum
}

/// Whether `candidate` has the token shape and a matching checksum. Costs no I/O.
pub fn is_well_formed(candidate: &str) -> bool {
    candidate.len() == TOKEN_LEN
        && candidate.starts_with(TOKEN_PREFIX)
        && candidate[TOKEN_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric())
        && checksum(&candidate[..TOKEN_LEN - CHECKSUM_LEN]) == candidate[TOKEN_LEN - CHECKSUM_LEN..]
}

/// SHA-256 of a secret, hex: the only form in which KV holds a token.
pub fn sha256_hex(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Equality that takes the same time whatever the inputs (for the admin token): both sides
/// are hashed first, so length differences leak nothing either.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (x, y) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

/// The bearer value of an `Authorization` header, if it is one.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let value = header?;
    let (scheme, rest) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// Token ids are `tok_` and 16 lower-case hex digits: public, safe to log, used to revoke.
pub fn is_token_id(id: &str) -> bool {
    id.len() == 20
        && id.starts_with("tok_")
        && id[4..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// For logs: never the whole token.
pub fn redact(token: &str) -> String {
    let visible: String = token.chars().take(6).collect();
    format!("{visible}…")
}

/// Read back by hand (its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    Join,
    Read,
    Manage,
}

impl<'de> Deserialize<'de> for Capability {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_with(d, capability)
    }
}

pub fn capability(value: Value) -> Option<Capability> {
    Capability::parse(value.as_str()?)
}

impl Capability {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "join" => Some(Self::Join),
            "read" => Some(Self::Read),
            "manage" => Some(Self::Manage),
            _ => None,
        }
    }
}

/// What KV holds for one token, under the SHA-256 of the token (read back by hand:
/// `TokenRecord::read`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenRecord {
    pub token_id: String,
    pub org: String,
    pub capabilities: Vec<Capability>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<Vec<String>>,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    #[serde(default)]
    pub revoked: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub created_at: i64,
}

impl<'de> Deserialize<'de> for TokenRecord {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_with(d, TokenRecord::read)
    }
}

impl TokenRecord {
    /// The record as KV holds it (the fields, types and defaults above).
    pub fn read(value: Value) -> Option<Self> {
        let mut fields = Fields::of(value)?;
        Some(Self {
            token_id: fields.string("token_id")?,
            org: fields.string("org")?,
            capabilities: fields.with("capabilities", |value| list(value, capability))?,
            sessions: fields.opt_strings("sessions")?,
            expires_at: fields.opt_i64("expires_at")?,
            revoked: fields.or("revoked", false, |value| value.as_bool())?,
            label: fields.opt_string("label")?,
            created_at: fields.i64("created_at")?,
        })
    }

    /// 401 for a revoked or expired token: the same error as an unknown one (no oracle).
    pub fn check_live(&self, now_s: i64) -> Result<(), ApiError> {
        let expired = self.expires_at.is_some_and(|at| now_s >= at);
        if self.revoked || expired {
            return Err(ApiError::unauthorized());
        }
        Ok(())
    }

    /// 403 when the token lacks the route's capability.
    pub fn check_capability(&self, needed: Capability) -> Result<(), ApiError> {
        if self.capabilities.contains(&needed) {
            Ok(())
        } else {
            Err(ApiError::new(ErrorCode::Forbidden))
        }
    }

    /// Whether the token may act on a session owned by `session_org`. A session of another
    /// org or outside the allow-list is answered as unknown (404), never as forbidden.
    pub fn may_use_session(&self, sid: &str, session_org: &str) -> bool {
        session_org == self.org
            && self
                .sessions
                .as_ref()
                .is_none_or(|allowed| allowed.iter().any(|s| s == sid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record() -> TokenRecord {
        TokenRecord {
            token_id: "tok_1".into(),
            org: "acme".into(),
            capabilities: vec![Capability::Join],
            sessions: None,
            expires_at: None,
            revoked: false,
            label: None,
            created_at: 0,
        }
    }

    #[test]
    fn records_read_back_as_the_derive_read_them() {
        let read = |text: &str| serde_json::from_str::<TokenRecord>(text).ok();
        let minimal = r#"{"token_id":"tok_1","org":"acme","capabilities":["join"],"created_at":0}"#;
        assert_eq!(read(minimal), Some(record()));
        let full = TokenRecord {
            capabilities: vec![Capability::Read, Capability::Manage, Capability::Join],
            sessions: Some(vec!["s1".into()]),
            expires_at: Some(-5),
            revoked: true,
            label: Some("ci".into()),
            created_at: 1_700_000_000,
            ..record()
        };
        let text = serde_json::to_string(&full).unwrap_or_default();
        assert_eq!(read(&text), Some(full), "{text}");
        // `null` for an `Option` is none; unknown fields are ignored.
        let nulls = r#"{"token_id":"tok_1","org":"acme","capabilities":["join"],"sessions":null,
            "expires_at":null,"label":null,"created_at":0,"extra":[1]}"#;
        assert_eq!(read(nulls), Some(record()));
        for broken in [
            r#"{"token_id":"tok_1","org":"acme","capabilities":["join"]}"#,
            r#"{"token_id":"tok_1","org":"acme","capabilities":["fly"],"created_at":0}"#,
            r#"{"token_id":"tok_1","org":"acme","capabilities":"join","created_at":0}"#,
            r#"{"token_id":"tok_1","org":"acme","capabilities":["join"],"created_at":0,"revoked":null}"#,
            r#"{"token_id":"tok_1","org":"acme","capabilities":["join"],"created_at":0.5}"#,
            r#"{"token_id":"tok_1","org":"acme","capabilities":["join"],"created_at":0,"expires_at":"1"}"#,
            r#"{"token_id":null,"org":"acme","capabilities":["join"],"created_at":0}"#,
            // The derive also took a struct as an array; joingate never wrote one.
            r#"["tok_1","acme",["join"],null,null,false,null,0]"#,
        ] {
            assert_eq!(read(broken), None, "{broken}");
        }
    }

    #[test]
    fn token_ids() {
        assert!(is_token_id("tok_0123456789abcdef"));
        for bad in [
            "",
            "tok_",
            "tok_0123456789ABCDEF",
            "tok_0123456789abcde",
            "tik_0123456789abcdef",
            "tok_0123456789abcdeg",
            "tok_0123456789abcdef0",
        ] {
            assert!(!is_token_id(bad), "{bad}");
        }
    }

    #[test]
    fn minted_tokens_have_the_documented_shape() {
        let token = mint(&[7u8; RANDOM_BYTES]);
        assert_eq!(token.len(), TOKEN_LEN);
        assert!(token.starts_with("jg_"));
        assert!(is_well_formed(&token));
    }

    #[test]
    fn base62_of_known_values() {
        assert_eq!(base62(&[0, 0], 3), "000");
        assert_eq!(base62(&[0, 61], 2), "0z");
        assert_eq!(base62(&[0, 62], 2), "10");
        assert_eq!(base62(&[0xff; 4], 6), "4gfFC3");
    }

    #[test]
    fn body_carries_all_random_bits() {
        // 33 base62 digits hold 196 bits, so no two of these differ only in dropped bits.
        let low = mint(&[0u8; RANDOM_BYTES]);
        let mut high_bytes = [0u8; RANDOM_BYTES];
        high_bytes[0] = 0x80;
        assert_ne!(low, mint(&high_bytes));
        assert_ne!(mint(&[0xff; RANDOM_BYTES])[3..36], "0".repeat(33));
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        let good = mint(&[42u8; RANDOM_BYTES]);
        let mut flipped = good.clone().into_bytes();
        flipped[10] = if flipped[10] == b'a' { b'b' } else { b'a' };
        for bad in [
            String::new(),
            "jg_".into(),
            good[..TOKEN_LEN - 1].to_string(),
            format!("{good}x"),
            good.replacen("jg_", "jx_", 1),
            String::from_utf8(flipped).unwrap_or_default(),
            format!("jg_{}", "!".repeat(TOKEN_LEN - 3)),
        ] {
            assert!(!is_well_formed(&bad), "{bad}");
        }
    }

    #[test]
    fn bearer_takes_the_scheme_case_insensitively() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer")), None);
        assert_eq!(bearer(None), None);
    }

    #[test]
    fn constant_time_eq_compares_values() {
        assert!(constant_time_eq("secret", "secret"));
        assert!(!constant_time_eq("secret", "secreT"));
        assert!(!constant_time_eq("secret", "secret2"));
    }

    #[test]
    fn sha256_matches_a_known_vector() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn revoked_and_expired_tokens_are_unauthorized() {
        let mut r = record();
        assert!(r.check_live(100).is_ok());
        r.expires_at = Some(100);
        assert_eq!(
            r.check_live(100).map_err(|e| e.code),
            Err(ErrorCode::Unauthorized)
        );
        assert!(r.check_live(99).is_ok());
        r.expires_at = None;
        r.revoked = true;
        assert_eq!(
            r.check_live(0).map_err(|e| e.code),
            Err(ErrorCode::Unauthorized)
        );
    }

    #[test]
    fn capabilities_and_sessions_are_enforced() {
        let mut r = record();
        assert!(r.check_capability(Capability::Join).is_ok());
        assert_eq!(
            r.check_capability(Capability::Manage).map_err(|e| e.code),
            Err(ErrorCode::Forbidden)
        );
        assert!(r.may_use_session("s1", "acme"));
        assert!(!r.may_use_session("s1", "other"));
        r.sessions = Some(vec!["s2".into()]);
        assert!(!r.may_use_session("s1", "acme"));
        assert!(r.may_use_session("s2", "acme"));
    }

    #[test]
    fn redaction_keeps_only_the_prefix() {
        let token = mint(&[1u8; RANDOM_BYTES]);
        let shown = redact(&token);
        assert!(shown.len() < 12);
        assert!(!shown.contains(&token[6..]));
    }

    proptest! {
        #[test]
        fn every_minted_token_is_well_formed(bytes in proptest::array::uniform24(any::<u8>())) {
            prop_assert!(is_well_formed(&mint(&bytes)));
        }

        #[test]
        fn any_single_character_change_is_caught(
            bytes in proptest::array::uniform24(any::<u8>()),
            position in 3usize..TOKEN_LEN,
            replacement in proptest::sample::select(BASE62.to_vec()),
        ) {
            let token = mint(&bytes);
            let mut changed = token.clone().into_bytes();
            prop_assume!(changed[position] != replacement);
            changed[position] = replacement;
            let changed = String::from_utf8(changed).unwrap_or_default();
            // A 32-bit checksum lets about one change in 4 billion through; proptest's
            // few hundred cases would need to be astronomically unlucky.
            prop_assert!(!is_well_formed(&changed));
        }

        #[test]
        fn arbitrary_strings_never_panic(text in "\\PC{0,60}") {
            let _ = is_well_formed(&text);
        }
    }
}
