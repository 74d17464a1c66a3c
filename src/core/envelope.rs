//! The response envelope of contract section 1, built as plain JSON values so the same code
//! serves the Worker, the Durable Object and the native tests.

use serde_json::{json, Value};

use super::error::ApiError;
use super::time::format_rfc3339;

/// `{ "success": true, "data": …, "request_id": … }`
pub fn success(data: Value, request_id: &str) -> Value {
    json!({ "success": true, "data": data, "request_id": request_id })
}

/// `{ "success": false, "error": { code, message, details? }, "request_id", "timestamp" }`
pub fn failure(error: &ApiError, request_id: &str, now_ms: i64) -> Value {
    let mut body = json!({ "code": error.code.as_str(), "message": error.message });
    if !error.details.is_empty() {
        body["details"] = Value::Object(error.details.clone());
    }
    json!({
        "success": false,
        "error": body,
        "request_id": request_id,
        "timestamp": format_rfc3339(now_ms),
    })
}

/// The client's `X-Request-Id` is kept when it is 1-128 chars of `[A-Za-z0-9._:-]`.
pub fn accept_request_id(candidate: Option<&str>) -> Option<&str> {
    let id = candidate?;
    let valid = (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    valid.then_some(id)
}

/// Hex of bytes, lower case (request ids, token ids, hashes).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::error::ErrorCode;

    #[test]
    fn success_has_data_and_request_id() {
        let body = success(json!({ "status": "ok" }), "r1");
        assert_eq!(
            body,
            json!({ "success": true, "data": { "status": "ok" }, "request_id": "r1" })
        );
    }

    #[test]
    fn failure_carries_code_details_and_timestamp() {
        let error = ApiError::new(ErrorCode::InviteRevoked).with_detail("wa_code", 410);
        let body = failure(&error, "r2", 1_781_524_800_000);
        assert_eq!(body["success"], false);
        assert_eq!(body["error"]["code"], "invite_revoked");
        assert_eq!(body["error"]["details"]["wa_code"], 410);
        assert_eq!(body["request_id"], "r2");
        assert_eq!(body["timestamp"], "2026-06-15T12:00:00Z");
    }

    #[test]
    fn failure_without_details_omits_them() {
        let body = failure(&ApiError::not_found(), "r3", 0);
        assert!(body["error"].get("details").is_none());
    }

    #[test]
    fn request_ids_follow_the_grammar() {
        assert_eq!(accept_request_id(Some("abc-1.2:3_4")), Some("abc-1.2:3_4"));
        assert_eq!(
            accept_request_id(Some(&"a".repeat(128))).map(str::len),
            Some(128)
        );
        for bad in ["", "has space", "é", "a/b", &"a".repeat(129)] {
            assert_eq!(accept_request_id(Some(bad)), None, "{bad}");
        }
        assert_eq!(accept_request_id(None), None);
    }

    #[test]
    fn hex_is_lower_case() {
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
    }
}
