//! Idempotency keys (IETF draft "The Idempotency-Key HTTP Header Field", contract section 6):
//! key validation, request fingerprints and what to do with a repeated key.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::envelope::hex;
use super::error::{ApiError, ErrorCode};

pub const MAX_KEY_LEN: usize = 255;
pub const RETENTION_MS: i64 = 24 * 60 * 60 * 1000;
/// A session keeps at most this many records; the oldest go first.
pub const MAX_RECORDS: usize = 1000;

/// The header's value: absent is fine; present must be 1-255 printable ASCII characters.
pub fn validate_key(header: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(key) = header else {
        return Ok(None);
    };
    let printable = key.bytes().all(|b| (0x20..=0x7e).contains(&b));
    if key.is_empty() || key.len() > MAX_KEY_LEN || !printable {
        return Err(
            ApiError::new(ErrorCode::IdempotencyKeyInvalid).with_detail("field", "Idempotency-Key")
        );
    }
    Ok(Some(key.to_string()))
}

/// SHA-256 over method, path and body, each prefixed with its length so that no two
/// different requests share an input: the same key with another request is a reuse.
pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    for part in [method.as_bytes(), path.as_bytes(), body] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hex(&hasher.finalize())
}

/// An executed outcome, kept for replays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredOutcome {
    pub fingerprint: String,
    pub status: u16,
    pub body: String,
    pub retry_after_s: Option<u64>,
    pub created_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Execute,
    Replay(StoredOutcome),
    Reused,
    InProgress,
}

/// What to do with a request carrying a key, given what is stored and what is running.
pub fn decide(
    stored: Option<StoredOutcome>,
    running_fingerprint: Option<&str>,
    fingerprint: &str,
    now_ms: i64,
) -> Decision {
    if let Some(running) = running_fingerprint {
        return if running == fingerprint {
            Decision::InProgress
        } else {
            Decision::Reused
        };
    }
    match stored {
        Some(outcome) if now_ms - outcome.created_ms < RETENTION_MS => {
            if outcome.fingerprint == fingerprint {
                Decision::Replay(outcome)
            } else {
                Decision::Reused
            }
        }
        _ => Decision::Execute,
    }
}

/// Outcomes whose effect is unknown, or that never reached WhatsApp, are not kept, so a
/// retry runs again.
pub fn is_storable(error: Option<&ApiError>) -> bool {
    let Some(error) = error else { return true };
    // An answer cut off mid-body (or too large to read) may have had its effect, or not:
    // unknown, like a timeout.
    !error.answer_lost()
        && !matches!(
            error.code,
            ErrorCode::BackendTimeout
                | ErrorCode::BackendUnavailable
                | ErrorCode::SessionBusy
                | ErrorCode::InternalError
        )
}

/// Whether the outcome of a call is stored for replays: executed answers only. A call
/// stopped on its way to the backend (circuit open, queue full, cooldown, a backend that
/// cannot be addressed) never reached WhatsApp, so a retry must run again.
pub fn is_stored(error: Option<&ApiError>, reached_backend: bool) -> bool {
    (reached_backend || error.is_none()) && is_storable(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stored(fp: &str, created_ms: i64) -> StoredOutcome {
        StoredOutcome {
            fingerprint: fp.into(),
            status: 200,
            body: "{}".into(),
            retry_after_s: None,
            created_ms,
        }
    }

    #[test]
    fn keys_are_checked() {
        assert_eq!(validate_key(None), Ok(None));
        assert_eq!(validate_key(Some("abc-123")), Ok(Some("abc-123".into())));
        assert!(validate_key(Some(&"k".repeat(255))).is_ok());
        for bad in ["", "é", "tab\there", &"k".repeat(256)] {
            assert_eq!(
                validate_key(Some(bad)).err().map(|e| e.code),
                Some(ErrorCode::IdempotencyKeyInvalid),
                "{bad}"
            );
        }
    }

    #[test]
    fn fingerprints_separate_method_path_and_body() {
        let base = fingerprint("POST", "/a", b"{}");
        assert_eq!(base, fingerprint("POST", "/a", b"{}"));
        assert_ne!(base, fingerprint("PUT", "/a", b"{}"));
        assert_ne!(base, fingerprint("POST", "/b", b"{}"));
        assert_ne!(base, fingerprint("POST", "/a", b"{ }"));
        // Length prefixes keep path and body apart.
        assert_ne!(
            fingerprint("POST", "/a\n", b"x"),
            fingerprint("POST", "/a", b"\nx")
        );
    }

    #[test]
    fn decisions() {
        assert_eq!(decide(None, None, "f", 0), Decision::Execute);
        assert_eq!(decide(None, Some("f"), "f", 0), Decision::InProgress);
        assert_eq!(decide(None, Some("g"), "f", 0), Decision::Reused);
        assert_eq!(
            decide(Some(stored("f", 0)), None, "f", 10),
            Decision::Replay(stored("f", 0))
        );
        assert_eq!(
            decide(Some(stored("g", 0)), None, "f", 10),
            Decision::Reused
        );
        assert_eq!(
            decide(Some(stored("f", 0)), None, "f", RETENTION_MS),
            Decision::Execute
        );
    }

    #[test]
    fn unknown_effects_are_not_stored() {
        assert!(is_storable(None));
        assert!(is_storable(Some(&ApiError::new(ErrorCode::InviteRevoked))));
        assert!(is_storable(Some(&ApiError::new(ErrorCode::BackendError))));
        for code in [
            ErrorCode::BackendTimeout,
            ErrorCode::BackendUnavailable,
            ErrorCode::SessionBusy,
            ErrorCode::InternalError,
        ] {
            assert!(!is_storable(Some(&ApiError::new(code))));
        }
        for reason in ["answer_cut_off", "answer_too_large"] {
            let cut = ApiError::new(ErrorCode::BackendError).with_detail("reason", reason);
            assert!(!is_storable(Some(&cut)), "{reason}");
        }
        // Stopped before the backend: a cooldown's refusal, a restriction's answer that did
        // reach WhatsApp is kept.
        let cooling = ApiError::new(ErrorCode::SessionCoolingDown);
        assert!(!is_stored(Some(&cooling), false));
        assert!(is_stored(Some(&cooling), true));
        assert!(is_stored(None, false), "a route that calls no backend");
    }

    proptest! {
        #[test]
        fn any_printable_key_up_to_255_is_accepted(key in "[ -~]{1,255}") {
            prop_assert_eq!(validate_key(Some(&key)), Ok(Some(key.clone())));
        }
    }
}
