//! What joingate asks of the session backend (contract section 7) and how each answer maps
//! onto the envelope: the success shapes it accepts and every error code it knows. Pure, so
//! every mapping is tested natively; the Durable Object only moves bytes.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::error::{ApiError, ErrorCode};
use super::ids::{GroupJid, UserJid};
use super::invite::parse_invite;

/// `Retry-After` used when WhatsApp rate limits and the backend names no delay.
pub const DEFAULT_UPSTREAM_RETRY_S: u64 = 60;

/// One call to the backend, with everything needed to shape its answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendCall {
    pub op: Operation,
    pub method: String,
    /// Path below `SESSION_BACKEND_URL`, already percent-encoded where needed.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

/// The operations, as far as answer shaping and error mapping differ between them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Operation {
    /// Join by code or by invite message; `group_jid` is known for the latter.
    Join {
        group_jid: Option<String>,
    },
    Preview,
    Leave {
        group_jid: String,
    },
    ListJoinRequests,
    JoinRequestAction {
        approve: bool,
    },
    ResetInvite,
    SessionStatus,
}

impl Operation {
    /// Maps a WhatsApp error code for this operation (contract section 2).
    fn whatsapp_error(&self, wa_code: i64) -> ErrorCode {
        use ErrorCode::*;
        match (self, wa_code) {
            (_, 429) => UpstreamRateLimited,
            (Self::Join { .. }, 400 | 406) => InviteInvalid,
            (Self::Join { .. }, 401 | 403 | 405) => JoinNotAllowed,
            (Self::Join { .. } | Self::Preview, 410) => InviteRevoked,
            (Self::Join { .. }, 412 | 419) => GroupFull,
            (Self::Preview, 400 | 406) => InviteInvalid,
            (Self::Leave { .. }, 403) => NotInGroup,
            (Self::ListJoinRequests | Self::JoinRequestAction { .. } | Self::ResetInvite, 401) => {
                NotGroupAdmin
            }
            (Self::ListJoinRequests | Self::JoinRequestAction { .. } | Self::ResetInvite, 403) => {
                NotInGroup
            }
            (Self::SessionStatus, _) => BackendError,
            (_, 404) => GroupNotFound,
            _ => BackendError,
        }
    }
}

/// How the transport ended, before any body is looked at.
#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    /// The backend answered: status, `Retry-After` seconds if it sent one, body bytes.
    Answered {
        status: u16,
        retry_after_s: Option<u64>,
        body: Vec<u8>,
    },
    /// Connection refused, reset or DNS failure: the backend was never reached.
    Unreachable,
    TimedOut {
        timeout_ms: u64,
    },
}

/// Turns a transport outcome into the `data` of a success or into an `ApiError`.
pub fn interpret(call: &BackendCall, outcome: Transport) -> Result<Value, ApiError> {
    let (status, retry_after_s, body) = match outcome {
        Transport::Unreachable => {
            return Err(ApiError::new(ErrorCode::BackendUnavailable).with_retry_after(5))
        }
        Transport::TimedOut { timeout_ms } => {
            return Err(
                ApiError::new(ErrorCode::BackendTimeout).with_detail("timeout_ms", timeout_ms)
            )
        }
        Transport::Answered {
            status,
            retry_after_s,
            body,
        } => (status, retry_after_s, body),
    };
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    if (200..300).contains(&status) {
        return match parsed {
            Some(value) => shape_success(&call.op, &value, call.body.as_ref()),
            None => Err(backend_error(
                "The session backend answered with something that is not JSON.",
                status,
            )),
        };
    }
    let error = parsed
        .as_ref()
        .and_then(|v| v.get("error"))
        .and_then(Value::as_object);
    let Some(error) = error else {
        return Err(backend_error(
            "The session backend failed without a known error.",
            status,
        ));
    };
    match error.get("kind").and_then(Value::as_str) {
        Some("session_not_connected") => Err(ApiError::new(ErrorCode::SessionNotConnected)),
        Some("session_not_found") => Err(ApiError::new(ErrorCode::SessionNotConnected)
            .with_message("The session backend does not know this session.")),
        Some("whatsapp") => match error.get("wa_code").and_then(Value::as_i64) {
            Some(wa_code) => whatsapp_failure(&call.op, wa_code, error, retry_after_s),
            None => Err(backend_error("WhatsApp error without a code.", status)),
        },
        _ => Err(backend_error(
            "The session backend failed without a known error.",
            status,
        )),
    }
}

fn backend_error(message: &str, status: u16) -> ApiError {
    ApiError::new(ErrorCode::BackendError)
        .with_message(message)
        .with_detail("backend_status", status)
}

fn whatsapp_failure(
    op: &Operation,
    wa_code: i64,
    error: &Map<String, Value>,
    retry_after_s: Option<u64>,
) -> Result<Value, ApiError> {
    // WhatsApp 304, and 409 on join, mean the session is already a member: a success.
    if let Operation::Join { group_jid } = op {
        if wa_code == 304 || wa_code == 409 {
            let jid = group_jid.clone().or_else(|| {
                error
                    .get("group_jid")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
            let mut data = json!({ "status": "already_member" });
            if let Some(jid) = jid {
                data["group_jid"] = Value::from(jid);
            }
            return Ok(data);
        }
    }
    let code = op.whatsapp_error(wa_code);
    let mut api_error = ApiError::new(code).with_detail("wa_code", wa_code);
    if code == ErrorCode::BackendError {
        api_error = api_error.with_message(format!("Unmapped WhatsApp error {wa_code}."));
    }
    if code == ErrorCode::UpstreamRateLimited {
        api_error = api_error.with_retry_after(retry_after_s.unwrap_or(DEFAULT_UPSTREAM_RETRY_S));
    }
    Err(api_error)
}

fn unknown_shape() -> ApiError {
    ApiError::new(ErrorCode::BackendError)
        .with_message("The session backend answered with an unknown shape.")
}

fn group_jid_field(value: &Value) -> Result<String, ApiError> {
    value
        .get("group_jid")
        .and_then(Value::as_str)
        .and_then(|jid| GroupJid::parse(jid).ok())
        .map(|jid| jid.as_str().to_string())
        .ok_or_else(unknown_shape)
}

/// Copies optional fields of an expected type; a present field of another type is an error.
fn copy_optional(
    from: &Value,
    to: &mut Value,
    field: &str,
    is_type: fn(&Value) -> bool,
) -> Result<(), ApiError> {
    match from.get(field) {
        None | Some(Value::Null) => Ok(()),
        Some(value) if is_type(value) => {
            to[field] = value.clone();
            Ok(())
        }
        Some(_) => Err(unknown_shape()),
    }
}

fn shape_success(
    op: &Operation,
    value: &Value,
    request: Option<&Value>,
) -> Result<Value, ApiError> {
    if !value.is_object() {
        return Err(unknown_shape());
    }
    match op {
        Operation::Join { .. } => {
            let status = value.get("status").and_then(Value::as_str);
            let status = status
                .filter(|s| matches!(*s, "joined" | "pending_approval" | "already_member"))
                .ok_or_else(unknown_shape)?;
            Ok(json!({ "group_jid": group_jid_field(value)?, "status": status }))
        }
        Operation::Preview => {
            let subject = value
                .get("subject")
                .and_then(Value::as_str)
                .ok_or_else(unknown_shape)?;
            let requires_approval = value
                .get("requires_approval")
                .and_then(Value::as_bool)
                .ok_or_else(unknown_shape)?;
            let mut data = json!({
                "group_jid": group_jid_field(value)?,
                "subject": subject,
                "requires_approval": requires_approval,
            });
            copy_optional(value, &mut data, "description", Value::is_string)?;
            copy_optional(value, &mut data, "size", Value::is_u64)?;
            copy_optional(value, &mut data, "created_at", Value::is_i64)?;
            Ok(data)
        }
        Operation::Leave { group_jid } => Ok(json!({ "group_jid": group_jid, "status": "left" })),
        Operation::ListJoinRequests => {
            let requests = value
                .get("requests")
                .and_then(Value::as_array)
                .ok_or_else(unknown_shape)?;
            let mut shaped = Vec::with_capacity(requests.len());
            for item in requests {
                let jid = item
                    .get("jid")
                    .and_then(Value::as_str)
                    .ok_or_else(unknown_shape)?;
                let mut entry = json!({ "jid": jid });
                copy_optional(item, &mut entry, "phone_number", Value::is_string)?;
                copy_optional(item, &mut entry, "requested_at", Value::is_i64)?;
                shaped.push(entry);
            }
            Ok(json!({ "requests": shaped }))
        }
        Operation::JoinRequestAction { approve } => shape_action(*approve, value, request),
        Operation::ResetInvite => {
            let code = value
                .get("invite_code")
                .and_then(Value::as_str)
                .and_then(|c| parse_invite(c).ok())
                .ok_or_else(unknown_shape)?;
            Ok(json!({
                "invite_code": code.as_str(),
                "invite_link": format!("https://chat.whatsapp.com/{}", code.as_str()),
            }))
        }
        Operation::SessionStatus => {
            let connected = value
                .get("connected")
                .and_then(Value::as_bool)
                .ok_or_else(unknown_shape)?;
            Ok(json!({ "connected": connected }))
        }
    }
}

/// Per-item code of an approve/reject failure (contract section 2).
pub fn item_error_code(wa_code: i64) -> (&'static str, &'static str) {
    match wa_code {
        400 | 404 => (
            "request_not_found",
            "There is no pending join request from this participant.",
        ),
        401 => (
            "not_group_admin",
            "The session is not an admin of this group.",
        ),
        403 => (
            "not_allowed",
            "WhatsApp does not allow this action for this participant.",
        ),
        408 => (
            "temporarily_blocked",
            "WhatsApp temporarily blocks this action; retry later.",
        ),
        409 => ("conflict", "The participant's state changed meanwhile."),
        412 | 500 => ("limit_reached", "The group reached a WhatsApp limit."),
        _ => ("whatsapp_error", "WhatsApp refused this participant."),
    }
}

fn shape_action(approve: bool, value: &Value, request: Option<&Value>) -> Result<Value, ApiError> {
    let results = value
        .get("results")
        .and_then(Value::as_array)
        .ok_or_else(unknown_shape)?;
    let asked: Vec<&str> = request
        .and_then(|r| r.get("participants"))
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut done: Vec<Value> = Vec::new();
    let mut failed: Vec<Value> = Vec::new();
    for item in results {
        let jid = item
            .get("jid")
            .and_then(Value::as_str)
            .ok_or_else(unknown_shape)?;
        let answered_before =
            done.iter().any(|j| j == jid) || failed.iter().any(|f| f["jid"] == jid);
        if UserJid::parse(jid).is_err() || !asked.contains(&jid) || answered_before {
            return Err(unknown_shape());
        }
        match item.get("ok").and_then(Value::as_bool) {
            Some(true) => done.push(Value::from(jid)),
            Some(false) => {
                let wa_code = item
                    .get("wa_code")
                    .and_then(Value::as_i64)
                    .ok_or_else(unknown_shape)?;
                let (code, message) = item_error_code(wa_code);
                failed.push(json!({
                    "jid": jid,
                    "error": { "code": code, "message": message, "wa_code": wa_code },
                }));
            }
            None => return Err(unknown_shape()),
        }
    }
    // Every participant asked about is answered exactly once, or the answer is not trusted:
    // a dropped participant would otherwise vanish from both lists.
    if done.len() + failed.len() != asked.len() {
        return Err(unknown_shape());
    }
    let key = if approve { "approved" } else { "rejected" };
    Ok(json!({ key: done, "failed": failed }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(op: Operation) -> BackendCall {
        BackendCall {
            op,
            method: "POST".into(),
            path: "/x".into(),
            body: None,
        }
    }

    fn join() -> BackendCall {
        call(Operation::Join { group_jid: None })
    }

    fn answered(status: u16, body: &str) -> Transport {
        Transport::Answered {
            status,
            retry_after_s: None,
            body: body.as_bytes().to_vec(),
        }
    }

    fn wa(code: i64) -> Transport {
        answered(
            400,
            &format!(r#"{{"error":{{"kind":"whatsapp","wa_code":{code},"text":"x"}}}}"#),
        )
    }

    fn code_of(result: Result<Value, ApiError>) -> Option<(ErrorCode, Option<i64>)> {
        result
            .err()
            .map(|e| (e.code, e.details.get("wa_code").and_then(Value::as_i64)))
    }

    #[test]
    fn join_outcomes_pass_through() {
        for status in ["joined", "pending_approval", "already_member"] {
            let body = format!(r#"{{"group_jid":"120363000000000001@g.us","status":"{status}"}}"#);
            let data = interpret(&join(), answered(200, &body));
            assert_eq!(
                data.ok(),
                Some(json!({ "group_jid": "120363000000000001@g.us", "status": status }))
            );
        }
    }

    #[test]
    fn join_whatsapp_codes_map_to_the_contract() {
        use ErrorCode::*;
        for (wa_code, expected) in [
            (400, InviteInvalid),
            (406, InviteInvalid),
            (401, JoinNotAllowed),
            (403, JoinNotAllowed),
            (405, JoinNotAllowed),
            (404, GroupNotFound),
            (410, InviteRevoked),
            (412, GroupFull),
            (419, GroupFull),
            (429, UpstreamRateLimited),
            (500, BackendError),
            (999, BackendError),
        ] {
            assert_eq!(
                code_of(interpret(&join(), wa(wa_code))),
                Some((expected, Some(wa_code))),
                "{wa_code}"
            );
        }
    }

    #[test]
    fn already_member_codes_are_a_success() {
        let by_message = call(Operation::Join {
            group_jid: Some("1-2@g.us".into()),
        });
        for wa_code in [304, 409] {
            let data = interpret(&by_message, wa(wa_code));
            assert_eq!(
                data.ok(),
                Some(json!({ "group_jid": "1-2@g.us", "status": "already_member" }))
            );
        }
    }

    #[test]
    fn admin_operations_map_401_and_403() {
        use ErrorCode::*;
        for op in [
            Operation::ListJoinRequests,
            Operation::JoinRequestAction { approve: true },
            Operation::ResetInvite,
        ] {
            assert_eq!(
                code_of(interpret(&call(op.clone()), wa(401))),
                Some((NotGroupAdmin, Some(401)))
            );
            assert_eq!(
                code_of(interpret(&call(op.clone()), wa(403))),
                Some((NotInGroup, Some(403)))
            );
            assert_eq!(
                code_of(interpret(&call(op), wa(404))),
                Some((GroupNotFound, Some(404)))
            );
        }
        let leave = call(Operation::Leave {
            group_jid: "1@g.us".into(),
        });
        assert_eq!(
            code_of(interpret(&leave, wa(403))),
            Some((NotInGroup, Some(403)))
        );
    }

    #[test]
    fn upstream_rate_limit_keeps_or_picks_retry_after() {
        let with = Transport::Answered {
            status: 429,
            retry_after_s: Some(30),
            body: br#"{"error":{"kind":"whatsapp","wa_code":429}}"#.to_vec(),
        };
        assert_eq!(
            interpret(&join(), with).err().and_then(|e| e.retry_after_s),
            Some(30)
        );
        let without = interpret(&join(), wa(429))
            .err()
            .and_then(|e| e.retry_after_s);
        assert_eq!(without, Some(DEFAULT_UPSTREAM_RETRY_S));
    }

    #[test]
    fn session_errors_and_transport_failures() {
        use ErrorCode::*;
        let kinds = [
            (
                answered(409, r#"{"error":{"kind":"session_not_connected"}}"#),
                SessionNotConnected,
            ),
            (
                answered(404, r#"{"error":{"kind":"session_not_found"}}"#),
                SessionNotConnected,
            ),
            (answered(500, "<html>oops</html>"), BackendError),
            (answered(503, r#"{"message":"down"}"#), BackendError),
            (
                answered(400, r#"{"error":{"kind":"whatsapp"}}"#),
                BackendError,
            ),
            (
                answered(418, r#"{"error":{"kind":"teapot"}}"#),
                BackendError,
            ),
            (answered(200, "not json"), BackendError),
            (answered(200, r#"{"foo":1}"#), BackendError),
            (answered(200, r#"[1,2]"#), BackendError),
            (
                answered(200, r#"{"group_jid":"x","status":"joined"}"#),
                BackendError,
            ),
            (
                answered(200, r#"{"group_jid":"1@g.us","status":"maybe"}"#),
                BackendError,
            ),
            (Transport::Unreachable, BackendUnavailable),
            (Transport::TimedOut { timeout_ms: 10 }, BackendTimeout),
        ];
        for (outcome, expected) in kinds {
            let label = format!("{outcome:?}");
            assert_eq!(
                interpret(&join(), outcome).err().map(|e| e.code),
                Some(expected),
                "{label}"
            );
        }
    }

    #[test]
    fn preview_is_shaped_and_checked() {
        let op = call(Operation::Preview);
        let body = r#"{"group_jid":"1@g.us","subject":"S","size":3,"created_at":1700000000,"requires_approval":true,"extra":1}"#;
        let data = interpret(&op, answered(200, body)).ok();
        assert_eq!(
            data,
            Some(
                json!({"group_jid":"1@g.us","subject":"S","size":3,"created_at":1700000000,"requires_approval":true})
            )
        );
        let wrong_type =
            r#"{"group_jid":"1@g.us","subject":"S","size":"3","requires_approval":true}"#;
        assert!(interpret(&op, answered(200, wrong_type)).is_err());
        assert_eq!(
            code_of(interpret(&op, wa(410))),
            Some((ErrorCode::InviteRevoked, Some(410)))
        );
    }

    #[test]
    fn approve_results_split_into_done_and_failed() {
        let mut op = call(Operation::JoinRequestAction { approve: true });
        op.body = Some(
            json!({ "action": "approve", "participants": ["1@s.whatsapp.net", "2@lid", "3@s.whatsapp.net"] }),
        );
        let body = r#"{"results":[{"jid":"1@s.whatsapp.net","ok":true},{"jid":"2@lid","ok":false,"wa_code":404},{"jid":"3@s.whatsapp.net","ok":false,"wa_code":412}]}"#;
        let data = interpret(&op, answered(200, body)).ok();
        assert_eq!(
            data.as_ref().map(|d| d["approved"].clone()),
            Some(json!(["1@s.whatsapp.net"]))
        );
        assert_eq!(
            data.as_ref()
                .map(|d| d["failed"][0]["error"]["code"].clone()),
            Some(json!("request_not_found"))
        );
        assert_eq!(
            data.as_ref()
                .map(|d| d["failed"][1]["error"]["wa_code"].clone()),
            Some(json!(412))
        );
        // A result for a participant that was not asked about is not trusted.
        let stray = r#"{"results":[{"jid":"9@s.whatsapp.net","ok":true}]}"#;
        assert!(interpret(&op, answered(200, stray)).is_err());
        // A participant left out, or answered twice, is not trusted either.
        let missing =
            r#"{"results":[{"jid":"1@s.whatsapp.net","ok":true},{"jid":"2@lid","ok":true}]}"#;
        assert!(interpret(&op, answered(200, missing)).is_err());
        let twice = r#"{"results":[{"jid":"1@s.whatsapp.net","ok":true},{"jid":"1@s.whatsapp.net","ok":true},{"jid":"2@lid","ok":true}]}"#;
        assert!(interpret(&op, answered(200, twice)).is_err());
    }

    #[test]
    fn item_codes_follow_the_contract() {
        let table = [
            (400, "request_not_found"),
            (404, "request_not_found"),
            (401, "not_group_admin"),
            (403, "not_allowed"),
            (408, "temporarily_blocked"),
            (409, "conflict"),
            (412, "limit_reached"),
            (500, "limit_reached"),
            (777, "whatsapp_error"),
        ];
        for (wa_code, code) in table {
            assert_eq!(item_error_code(wa_code).0, code);
        }
    }

    #[test]
    fn reset_builds_the_link() {
        let data = interpret(
            &call(Operation::ResetInvite),
            answered(200, r#"{"invite_code":"AbCdEfGhIjKlMnOpQrStUv"}"#),
        )
        .ok();
        assert_eq!(
            data,
            Some(
                json!({"invite_code":"AbCdEfGhIjKlMnOpQrStUv","invite_link":"https://chat.whatsapp.com/AbCdEfGhIjKlMnOpQrStUv"})
            )
        );
        assert!(interpret(
            &call(Operation::ResetInvite),
            answered(200, r#"{"invite_code":"bad code"}"#)
        )
        .is_err());
    }
}
