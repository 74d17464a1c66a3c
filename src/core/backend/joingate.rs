//! Kind `joingate`: joingate's own backend protocol (contract section 7). One request per
//! operation; errors go by `error.kind` and `wa_code`, not by the HTTP status.

use serde_json::{json, Value};

use super::shape::{
    action_data, backend_error, credential_rejected, each, membership, pct, request_entry,
    reset_data, session_unknown, unknown_shape, unusable, ItemOutcome, Preview,
};
use super::whatsapp::{failure, is_already_member};
use super::{restricted_until, with_restricted_until, Op, Stage, Step, Target, Transport};
use crate::core::error::{ApiError, ErrorCode};
use crate::core::ids::GroupJid;

fn request(target: &Target, method: &'static str, path: String, body: Option<Value>) -> Step {
    target.send(method, path, body, Stage::Main)
}

pub fn start(target: &Target, op: &Op) -> Step {
    let base = format!(
        "/sessions/{}",
        pct(target.remote_session.as_deref().unwrap_or_default())
    );
    let group = |jid: &str| format!("{base}/groups/{jid}");
    match op {
        Op::Join { code } => request(
            target,
            "POST",
            format!("{base}/groups/join"),
            Some(json!({ "code": code })),
        ),
        Op::JoinByMessage {
            code,
            group_jid,
            inviter_jid,
            expiration,
        } => {
            let mut body =
                json!({ "code": code, "group_jid": group_jid, "inviter_jid": inviter_jid });
            if let Some(at) = expiration {
                body["expiration"] = Value::from(*at);
            }
            request(
                target,
                "POST",
                format!("{base}/groups/join-by-message"),
                Some(body),
            )
        }
        Op::Preview { code } => request(target, "GET", format!("{base}/invites/{code}"), None),
        Op::Leave { group_jid } => request(
            target,
            "POST",
            format!("{}/leave", group(group_jid)),
            Some(json!({})),
        ),
        Op::ListJoinRequests { group_jid } => request(
            target,
            "GET",
            format!("{}/join-requests", group(group_jid)),
            None,
        ),
        Op::JoinRequestAction {
            group_jid,
            approve,
            participants,
        } => request(
            target,
            "POST",
            format!("{}/join-requests", group(group_jid)),
            Some(json!({
                "action": if *approve { "approve" } else { "reject" },
                "participants": participants,
            })),
        ),
        Op::ResetInvite { group_jid } => request(
            target,
            "POST",
            format!("{}/invite/reset", group(group_jid)),
            Some(json!({})),
        ),
        // v1.2: `{ "member": bool }`.
        Op::MembershipCheck { group_jid } => request(target, "GET", group(group_jid), None),
        // v1.2: the status answer may carry `restricted_until`, the restriction's end.
        Op::SessionStatus | Op::RestrictionStatus => request(target, "GET", base, None),
    }
}

pub fn resume(op: &Op, outcome: Transport) -> Step {
    Step::Done(outcome.answer().and_then(|answer| {
        let parsed = answer.json();
        if answer.is_success() {
            let value = parsed.ok_or_else(|| {
                backend_error(
                    "The session backend answered with something that is not JSON.",
                    answer.status,
                )
            })?;
            return shape_success(op, &value);
        }
        // A 401 that is not a WhatsApp answer is the backend refusing joingate's credential
        // (the protocol goes by `error.kind`, so a WhatsApp 401 sent as HTTP 401 is not one).
        let refused = || {
            if answer.status == 401 {
                credential_rejected(answer.status)
            } else {
                unusable(answer.status)
            }
        };
        let error = parsed
            .as_ref()
            .and_then(|v| v.get("error"))
            .filter(|e| e.is_object())
            .ok_or_else(refused)?;
        match error.get("kind").and_then(Value::as_str) {
            Some("session_not_connected") => Err(ApiError::new(ErrorCode::SessionNotConnected)),
            Some("session_not_found") => Err(session_unknown()),
            Some("whatsapp") => match error.get("wa_code").and_then(Value::as_i64) {
                Some(wa_code) if is_already_member(op, wa_code) => {
                    let jid = match op {
                        Op::JoinByMessage { group_jid, .. } => Some(group_jid.as_str()),
                        _ => error.get("group_jid").and_then(Value::as_str),
                    };
                    let mut data = json!({ "status": "already_member" });
                    if let Some(jid) = jid {
                        data["group_jid"] = Value::from(jid);
                    }
                    Ok(data)
                }
                Some(wa_code) => Err(failure(op, wa_code, answer.retry_after_s)),
                None => Err(backend_error(
                    "WhatsApp error without a code.",
                    answer.status,
                )),
            },
            _ => Err(refused()),
        }
    }))
}

fn group_jid_field(value: &Value) -> Result<String, ApiError> {
    value
        .get("group_jid")
        .and_then(Value::as_str)
        .and_then(|jid| GroupJid::parse(jid).ok())
        .map(|jid| jid.to_string())
        .ok_or_else(unknown_shape)
}

/// An optional field of an expected type; present with another type is an unknown shape.
fn optional<T>(
    value: &Value,
    name: &str,
    read: fn(&Value) -> Option<T>,
) -> Result<Option<T>, ApiError> {
    match value.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => read(v).map(Some).ok_or_else(unknown_shape),
    }
}

fn shape_success(op: &Op, value: &Value) -> Result<Value, ApiError> {
    if !value.is_object() {
        return Err(unknown_shape());
    }
    match op {
        Op::Join { .. } | Op::JoinByMessage { .. } => {
            let status = value
                .get("status")
                .and_then(Value::as_str)
                .filter(|s| matches!(*s, "joined" | "pending_approval" | "already_member"))
                .ok_or_else(unknown_shape)?;
            Ok(json!({ "group_jid": group_jid_field(value)?, "status": status }))
        }
        Op::Preview { .. } => {
            let preview = Preview {
                group_jid: group_jid_field(value)?,
                subject: value
                    .get("subject")
                    .and_then(Value::as_str)
                    .ok_or_else(unknown_shape)?
                    .to_string(),
                description: optional(value, "description", |v| v.as_str().map(str::to_owned))?,
                size: optional(value, "size", Value::as_u64)?,
                created_at: optional(value, "created_at", Value::as_i64)?,
                requires_approval: Some(
                    value
                        .get("requires_approval")
                        .and_then(Value::as_bool)
                        .ok_or_else(unknown_shape)?,
                ),
            };
            Ok(preview.data())
        }
        Op::Leave { group_jid } => Ok(json!({ "group_jid": group_jid, "status": "left" })),
        Op::ListJoinRequests { .. } => {
            let requests = value
                .get("requests")
                .and_then(Value::as_array)
                .ok_or_else(unknown_shape)?;
            let shaped = each(requests, |item| {
                let jid = item
                    .get("jid")
                    .and_then(Value::as_str)
                    .ok_or_else(unknown_shape)?;
                request_entry(
                    jid,
                    optional(item, "phone_number", |v| v.as_str().map(str::to_owned))?,
                    optional(item, "requested_at", Value::as_i64)?,
                )
            })?;
            Ok(json!({ "requests": shaped }))
        }
        Op::JoinRequestAction {
            approve,
            participants,
            ..
        } => {
            let results = value
                .get("results")
                .and_then(Value::as_array)
                .ok_or_else(unknown_shape)?;
            let items = each(results, |item| {
                let jid = item
                    .get("jid")
                    .and_then(Value::as_str)
                    .ok_or_else(unknown_shape)?;
                let outcome = match item.get("ok").and_then(Value::as_bool) {
                    Some(true) => ItemOutcome::Done,
                    Some(false) => ItemOutcome::WhatsApp(
                        item.get("wa_code")
                            .and_then(Value::as_i64)
                            .ok_or_else(unknown_shape)?,
                    ),
                    None => return Err(unknown_shape()),
                };
                Ok((jid.to_string(), outcome))
            })?;
            action_data(*approve, participants, items)
        }
        Op::ResetInvite { .. } => {
            let code = value
                .get("invite_code")
                .and_then(Value::as_str)
                .ok_or_else(unknown_shape)?;
            // Only a bare code is this protocol's answer, not a link.
            if code.contains('/') || code.contains('.') {
                return Err(unknown_shape());
            }
            reset_data(code)
        }
        Op::SessionStatus => {
            let connected = value
                .get("connected")
                .and_then(Value::as_bool)
                .ok_or_else(unknown_shape)?;
            // v1.2 `restricted_until`: unix seconds as a JSON integer; absent, null or anything
            // else is unknown. A hint about protection never fails the read that carries it.
            Ok(with_restricted_until(
                json!({ "connected": connected }),
                restricted_until(value),
            ))
        }
        Op::RestrictionStatus => Ok(with_restricted_until(json!({}), restricted_until(value))),
        Op::MembershipCheck { .. } => value
            .get("member")
            .and_then(Value::as_bool)
            .map(membership)
            .ok_or_else(unknown_shape),
    }
}

// ---- Section 14: inbound events ----

/// The native kind signs as Standard Webhooks (contract sections 7 and 11): `webhook-id`,
/// `webhook-timestamp` (unix seconds) and `webhook-signature` (space-separated `v1,<base64>`
/// entries), keyed with the base64-decoded part of the session's `whsec_` events secret;
/// 5 minutes tolerance against `now_s`. Missing headers fail. Constant time.
pub fn verify_signature(
    secret: &str,
    body: &[u8],
    webhook_id: Option<&str>,
    webhook_timestamp: Option<&str>,
    webhook_signature: Option<&str>,
    now_s: i64,
) -> bool {
    match (webhook_id, webhook_timestamp, webhook_signature) {
        (Some(id), Some(timestamp), Some(signatures)) => {
            super::events::verify_standard(secret, id, timestamp, signatures, body, now_s)
        }
        _ => false,
    }
}

/// The membership events of one native event (contract section 7, v1.2):
/// `{ "type": "group.joined"|"group.left"|"group.removed", "timestamp", "data": { "group_jid" } }`.
/// A native backend sends only the own account's events: joined, left (`left`), removed
/// (`removed`). Other types read as none.
pub fn read_events(body: &[u8]) -> Result<Vec<super::events::MembershipEvent>, ApiError> {
    use super::events::MembershipEvent::{Joined, Left};
    use super::events::{group_field, json_object, not_an_event, LeaveReason};
    let event = json_object(body)?;
    let kind = super::shape::text(&event, "type").ok_or_else(|| not_an_event("no `type`"))?;
    let group = || {
        event
            .get("data")
            .ok_or_else(|| not_an_event("no `data`"))
            .and_then(|data| group_field(data, "group_jid"))
    };
    Ok(match kind {
        "group.joined" => vec![Joined {
            group_jid: group()?,
        }],
        "group.left" => vec![Left {
            group_jid: group()?,
            reason: LeaveReason::Left,
        }],
        "group.removed" => vec![Left {
            group_jid: group()?,
            reason: LeaveReason::Removed,
        }],
        _ => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{Kind, Transport};
    use super::*;

    fn native() -> Target {
        target(Kind::Joingate, Some("s1"), Some("backend-secret"))
    }

    fn wa(code: i64) -> Transport {
        answer(
            400,
            &format!(r#"{{"error":{{"kind":"whatsapp","wa_code":{code},"text":"x"}}}}"#),
        )
    }

    #[test]
    fn requests_are_the_protocol_of_section_7() {
        let (_, sent) = script(&native(), &join(CODE), vec![answer(500, "")]);
        assert_eq!(sent[0].method, "POST");
        assert_eq!(sent[0].path, "/sessions/s1/groups/join");
        assert_eq!(
            sent[0].body.as_deref(),
            Some(r#"{"code":"AbCdEfGhIjKlMnOpQrStUv"}"#)
        );
        assert_eq!(
            sent[0].headers,
            vec![("Authorization", "Bearer backend-secret".to_string())]
        );
        let leave = Op::Leave {
            group_jid: GROUP.into(),
        };
        let (_, sent) = script(&native(), &leave, vec![answer(200, "{}")]);
        assert_eq!(sent[0].path, format!("/sessions/s1/groups/{GROUP}/leave"));
        assert_eq!(sent[0].body.as_deref(), Some("{}"));
    }

    #[test]
    fn join_outcomes_and_codes() {
        use ErrorCode::*;
        for status in ["joined", "pending_approval", "already_member"] {
            let body = format!(r#"{{"group_jid":"{GROUP}","status":"{status}"}}"#);
            let (done, _) = script(&native(), &join(CODE), vec![answer(200, &body)]);
            assert_eq!(
                outcome(&done),
                Ok(json!({ "group_jid": GROUP, "status": status }))
            );
        }
        for (wa_code, expected) in [
            (406, InviteInvalid),
            (403, JoinNotAllowed),
            (404, GroupNotFound),
            (410, InviteRevoked),
            (419, GroupFull),
            (429, UpstreamRateLimited),
            (999, BackendError),
        ] {
            let (done, _) = script(&native(), &join(CODE), vec![wa(wa_code)]);
            assert_eq!(outcome(&done), Err((expected, Some(wa_code))), "{wa_code}");
        }
    }

    #[test]
    fn already_member_codes_are_a_success() {
        let by_message = Op::JoinByMessage {
            code: "x".into(),
            group_jid: "1-2@g.us".into(),
            inviter_jid: "1@s.whatsapp.net".into(),
            expiration: None,
        };
        for wa_code in [304, 409] {
            let (done, _) = script(&native(), &by_message, vec![wa(wa_code)]);
            assert_eq!(
                outcome(&done),
                Ok(json!({ "group_jid": "1-2@g.us", "status": "already_member" }))
            );
        }
    }

    #[test]
    fn unusable_answers_are_backend_errors() {
        use ErrorCode::*;
        for (outcome_, expected) in [
            (
                answer(409, r#"{"error":{"kind":"session_not_connected"}}"#),
                SessionNotConnected,
            ),
            (
                answer(404, r#"{"error":{"kind":"session_not_found"}}"#),
                SessionNotConnected,
            ),
            (answer(500, "<html>oops</html>"), BackendError),
            (answer(503, r#"{"message":"down"}"#), BackendError),
            (
                answer(400, r#"{"error":{"kind":"whatsapp"}}"#),
                BackendError,
            ),
            (answer(418, r#"{"error":{"kind":"teapot"}}"#), BackendError),
            (
                answer(401, r#"{"error":{"kind":"unauthorized"}}"#),
                BackendError,
            ),
            (answer(200, "not json"), BackendError),
            (answer(200, r#"{"foo":1}"#), BackendError),
            (answer(200, r#"[1,2]"#), BackendError),
            (
                answer(200, r#"{"group_jid":"x","status":"joined"}"#),
                BackendError,
            ),
            (
                answer(
                    200,
                    &format!(r#"{{"group_jid":"{GROUP}","status":"maybe"}}"#),
                ),
                BackendError,
            ),
        ] {
            let label = format!("{outcome_:?}");
            let (done, _) = script(&native(), &join(CODE), vec![outcome_]);
            assert_eq!(done.result.err().map(|e| e.code), Some(expected), "{label}");
        }
    }

    #[test]
    fn preview_is_shaped_and_checked() {
        let op = Op::Preview { code: CODE.into() };
        let body = r#"{"group_jid":"1@g.us","subject":"S","size":3,"created_at":1700000000,"requires_approval":true,"extra":1}"#;
        let (done, _) = script(&native(), &op, vec![answer(200, body)]);
        assert_eq!(
            outcome(&done),
            Ok(
                json!({"group_jid":"1@g.us","subject":"S","size":3,"created_at":1700000000,"requires_approval":true})
            )
        );
        let wrong = r#"{"group_jid":"1@g.us","subject":"S","size":"3","requires_approval":true}"#;
        let (done, _) = script(&native(), &op, vec![answer(200, wrong)]);
        assert!(done.result.is_err());
    }

    #[test]
    fn approve_results_split_into_done_and_failed() {
        let op = Op::JoinRequestAction {
            group_jid: GROUP.into(),
            approve: true,
            participants: vec!["1@s.whatsapp.net".into(), "2@lid".into()],
        };
        let body = r#"{"results":[{"jid":"1@s.whatsapp.net","ok":true},{"jid":"2@lid","ok":false,"wa_code":412}]}"#;
        let (done, sent) = script(&native(), &op, vec![answer(200, body)]);
        assert_eq!(
            sent[0].body.as_deref(),
            Some(r#"{"action":"approve","participants":["1@s.whatsapp.net","2@lid"]}"#)
        );
        let data = outcome(&done).unwrap_or_default();
        assert_eq!(data["approved"], json!(["1@s.whatsapp.net"]));
        assert_eq!(data["failed"][0]["error"]["code"], json!("limit_reached"));
        let stray = r#"{"results":[{"jid":"9@s.whatsapp.net","ok":true}]}"#;
        let (done, _) = script(&native(), &op, vec![answer(200, stray)]);
        assert!(done.result.is_err());
    }

    #[test]
    fn the_status_answer_may_state_a_restriction_end() {
        // (answer, what the status read says of it): only a unix-seconds integer is an end.
        for (body, until) in [
            (
                r#"{"connected":true,"restricted_until":1790000000}"#,
                Some(1_790_000_000),
            ),
            (
                r#"{"connected":true,"restricted_until":"1790000000"}"#,
                None,
            ),
            (
                r#"{"connected":true,"restricted_until":"2026-09-21T14:13:20Z"}"#,
                None,
            ),
            (r#"{"connected":true,"restricted_until":null}"#, None),
            (r#"{"connected":true}"#, None),
            (r#"{"connected":true,"restricted_until":0}"#, None),
            (r#"{"connected":true,"restricted_until":-5}"#, None),
            (r#"{"connected":true,"restricted_until":1.5}"#, None),
            (
                r#"{"connected":true,"restricted_until":{"isActive":true}}"#,
                None,
            ),
        ] {
            let (done, sent) = script(&native(), &Op::SessionStatus, vec![answer(200, body)]);
            assert_eq!(sent[0].path, "/sessions/s1");
            let mut expected = json!({ "connected": true });
            if let Some(until) = until {
                expected["restricted_until"] = json!(until);
            }
            assert_eq!(outcome(&done), Ok(expected), "{body}");
            let (done, sent) = script(&native(), &Op::RestrictionStatus, vec![answer(200, body)]);
            assert_eq!(
                (sent[0].method, sent[0].path.as_str()),
                ("GET", "/sessions/s1")
            );
            let data = outcome(&done).unwrap_or_default();
            assert_eq!(restricted_until(&data), until, "{body}");
            assert_eq!(
                data.as_object().map(|m| m.len()),
                Some(usize::from(until.is_some()))
            );
        }
        // The restriction query needs no `connected`; its failures are the protocol's.
        let (done, _) = script(
            &native(),
            &Op::RestrictionStatus,
            vec![answer(200, r#"{"restricted_until":1790000000}"#)],
        );
        assert_eq!(
            outcome(&done),
            Ok(json!({ "restricted_until": 1_790_000_000 }))
        );
        for (reply, expected) in [
            (
                answer(404, r#"{"error":{"kind":"session_not_found"}}"#),
                ErrorCode::SessionNotConnected,
            ),
            (answer(200, "[]"), ErrorCode::BackendError),
            (answer(500, "oops"), ErrorCode::BackendError),
        ] {
            let (done, _) = script(&native(), &Op::RestrictionStatus, vec![reply]);
            assert_eq!(done.result.err().map(|e| e.code), Some(expected));
        }
    }

    #[test]
    fn reset_builds_the_link() {
        let op = Op::ResetInvite {
            group_jid: GROUP.into(),
        };
        let (done, _) = script(
            &native(),
            &op,
            vec![answer(200, &format!(r#"{{"invite_code":"{CODE}"}}"#))],
        );
        assert_eq!(
            outcome(&done),
            Ok(
                json!({"invite_code": CODE, "invite_link": format!("https://chat.whatsapp.com/{CODE}")})
            )
        );
        let (done, _) = script(
            &native(),
            &op,
            vec![answer(200, r#"{"invite_code":"bad code"}"#)],
        );
        assert!(done.result.is_err());
    }

    #[test]
    fn a_membership_check_answers_member_or_fails() {
        use ErrorCode::*;
        let op = Op::MembershipCheck {
            group_jid: GROUP.into(),
        };
        for (reply, expected) in [
            (
                answer(200, r#"{"member":true}"#),
                Ok(json!({ "member": true })),
            ),
            (
                answer(200, r#"{"member":false,"extra":1}"#),
                Ok(json!({ "member": false })),
            ),
            (answer(200, r#"{"member":"no"}"#), Err((BackendError, None))),
            (answer(200, "{}"), Err((BackendError, None))),
            (answer(200, "[true]"), Err((BackendError, None))),
            (
                answer(409, r#"{"error":{"kind":"session_not_connected"}}"#),
                Err((SessionNotConnected, None)),
            ),
            (wa(429), Err((UpstreamRateLimited, Some(429)))),
            (wa(500), Err((BackendError, Some(500)))),
            (answer(500, "<html>oops</html>"), Err((BackendError, None))),
        ] {
            let label = format!("{reply:?}");
            let (done, sent) = script(&native(), &op, vec![reply]);
            assert_eq!(outcome(&done), expected, "{label}");
            assert_eq!(sent[0].method, "GET");
            assert_eq!(sent[0].path, format!("/sessions/s1/groups/{GROUP}"));
            assert_eq!(sent[0].body, None);
        }
    }
}
