//! Kind `waha`: WAHA (devlikeapro/waha), any engine. Auth `X-Api-Key`; paths
//! `/api/{session}/…`. Its join answer cannot tell a membership request from a join on the
//! GOWS engine (whatsmeow), so a join previews first and answers `pending_approval` for a
//! group that needs approval; on NOWEB (Baileys) a pending request answers `{}`.

use serde_json::{json, Value};

use super::shape::{
    action_data, credential_rejected, each, field, flag, join_data, membership, pct, phone_number,
    request_entry, reset_data, session_unknown, text, unix_seconds, unknown_shape, unusable,
    user_jid, ItemOutcome, Preview,
};
use super::whatsapp::{
    classify_text, condition_failure, failure, is_already_member, is_not_member, Condition,
};
use super::{
    not_implemented, with_restricted_until, Answer, Kind, Op, Stage, Step, Target, Transport,
};
use crate::core::error::{ApiError, ErrorCode};

fn session(target: &Target) -> String {
    pct(target.remote_session.as_deref().unwrap_or("default"))
}

fn preview_request(target: &Target, code: &str, stage: Stage) -> Step {
    let path = format!(
        "/api/{}/groups/join-info?code={}",
        session(target),
        pct(code)
    );
    target.send("GET", path, None, stage)
}

pub fn start(target: &Target, op: &Op) -> Step {
    let s = session(target);
    let group = |jid: &str| format!("/api/{s}/groups/{}", pct(jid));
    match op {
        Op::Join { code } => preview_request(target, code, Stage::PreviewBeforeJoin),
        Op::Preview { code } => preview_request(target, code, Stage::Main),
        Op::Leave { group_jid } => target.send(
            "POST",
            format!("{}/leave", group(group_jid)),
            None,
            Stage::Main,
        ),
        Op::ListJoinRequests { group_jid } => target.send(
            "GET",
            format!("{}/participants/join-requests", group(group_jid)),
            None,
            Stage::Main,
        ),
        Op::JoinRequestAction {
            group_jid,
            approve,
            participants,
        } => {
            let action = if *approve { "approve" } else { "reject" };
            let list: Vec<Value> = participants.iter().map(|p| json!({ "id": p })).collect();
            target.send(
                "POST",
                format!("{}/participants/join-requests/{action}", group(group_jid)),
                Some(json!({ "participants": list })),
                Stage::Main,
            )
        }
        Op::ResetInvite { group_jid } => target.send(
            "POST",
            format!("{}/invite-code/revoke", group(group_jid)),
            None,
            Stage::Main,
        ),
        Op::SessionStatus => target.send("GET", format!("/api/sessions/{s}"), None, Stage::Main),
        Op::MembershipCheck { group_jid } => {
            target.send("GET", group(group_jid), None, Stage::Main)
        }
        Op::RestrictionStatus => target.send(
            "GET",
            format!("/api/sessions/{s}/timelock"),
            None,
            Stage::Main,
        ),
        Op::JoinByMessage { .. } => Step::Done(Err(not_implemented(Kind::Waha, op))),
    }
}

pub fn resume(target: &Target, op: &Op, stage: Stage, outcome: Transport) -> Step {
    let answer = match outcome.answer() {
        Ok(answer) => answer,
        Err(error) => return Step::Done(Err(error)),
    };
    match (stage, op) {
        (Stage::PreviewBeforeJoin, Op::Join { code }) => match preview(&answer, op) {
            Ok(preview) => target.send(
                "POST",
                format!("/api/{}/groups/join", session(target)),
                Some(json!({ "code": code })),
                Stage::JoinAfterPreview {
                    group_jid: preview.group_jid,
                    requires_approval: preview.requires_approval.unwrap_or(false),
                },
            ),
            Err(error) => Step::Done(Err(error)),
        },
        (
            Stage::JoinAfterPreview {
                group_jid,
                requires_approval,
            },
            _,
        ) => Step::Done(joined(&answer, op, &group_jid, requires_approval)),
        (_, _) => Step::Done(main(&answer, op)),
    }
}

/// The join's answer, read with what the preview said.
fn joined(
    answer: &Answer,
    op: &Op,
    group_jid: &str,
    requires_approval: bool,
) -> Result<Value, ApiError> {
    if !answer.is_success() {
        return match failure_of(answer, op) {
            Failure::WhatsApp(code) if is_already_member(op, code) => {
                Ok(join_data(Some(group_jid), "already_member"))
            }
            other => Err(other.into_error(op, answer)),
        };
    }
    let value = answer
        .json()
        .filter(Value::is_object)
        .ok_or_else(unknown_shape)?;
    // NOWEB answers `{}` for a membership request; GOWS names the group either way.
    let named = text(&value, "id").is_some();
    let status = if requires_approval || !named {
        "pending_approval"
    } else {
        "joined"
    };
    Ok(join_data(Some(group_jid), status))
}

fn preview(answer: &Answer, op: &Op) -> Result<Preview, ApiError> {
    if !answer.is_success() {
        return Err(failure_of(answer, op).into_error(op, answer));
    }
    Preview::from_either(&answer.json().ok_or_else(unknown_shape)?)
}

fn main(answer: &Answer, op: &Op) -> Result<Value, ApiError> {
    if !answer.is_success() {
        return match failure_of(answer, op) {
            Failure::WhatsApp(code) if is_not_member(op, code) => Ok(membership(false)),
            other => Err(other.into_error(op, answer)),
        };
    }
    match op {
        // The engine's group object (NOWEB: Baileys metadata; GOWS: whatsmeow `GroupInfo`).
        Op::MembershipCheck { .. } => answer
            .json()
            .filter(Value::is_object)
            .map(|_| membership(true))
            .ok_or_else(unknown_shape),
        Op::Preview { .. } => preview(answer, op).map(|p| p.data()),
        Op::Leave { group_jid } => Ok(json!({ "group_jid": group_jid, "status": "left" })),
        Op::ResetInvite { .. } => {
            reset_data(std::str::from_utf8(&answer.body).map_err(|_| unknown_shape())?)
        }
        Op::SessionStatus => {
            let value = answer.json().ok_or_else(unknown_shape)?;
            let status = text(&value, "status").ok_or_else(unknown_shape)?;
            let until = field(&value, "me")
                .and_then(|me| field(me, "reachoutTimelock"))
                .and_then(timelock_end);
            let me = field(&value, "me");
            let id = |name| me.and_then(|me| text(me, name));
            let data = json!({ "connected": status == "WORKING" });
            let data = super::shape::with_account(data, &[id("id"), id("lid"), id("jid")]);
            Ok(with_restricted_until(data, until))
        }
        Op::RestrictionStatus => {
            let value = answer
                .json()
                .filter(Value::is_object)
                .ok_or_else(unknown_shape)?;
            Ok(with_restricted_until(json!({}), timelock_end(&value)))
        }
        Op::ListJoinRequests { .. } => {
            let value = answer.json().ok_or_else(unknown_shape)?;
            let items = value.as_array().ok_or_else(unknown_shape)?;
            let requests = each(items, |item| {
                let jid = text(item, "requesterId").ok_or_else(unknown_shape)?;
                // A request under a LID may come with the phone number WhatsApp added.
                let phone = text(item, "requesterPn")
                    .and_then(phone_number)
                    .or_else(|| phone_number(jid).filter(|_| !jid.ends_with("@lid")));
                request_entry(jid, phone, field(item, "timestamp").and_then(unix_seconds))
            })?;
            Ok(json!({ "requests": requests }))
        }
        Op::JoinRequestAction {
            approve,
            participants,
            ..
        } => {
            let value = answer.json().ok_or_else(unknown_shape)?;
            let items = each(value.as_array().ok_or_else(unknown_shape)?, |item| {
                let jid = text(item, "requesterId")
                    .and_then(user_jid)
                    .ok_or_else(unknown_shape)?;
                let outcome = match field(item, "success").and_then(Value::as_bool) {
                    Some(true) => ItemOutcome::Done,
                    Some(false) => ItemOutcome::WhatsApp(
                        field(item, "error").and_then(Value::as_i64).unwrap_or(0),
                    ),
                    None => return Err(unknown_shape()),
                };
                Ok((jid, outcome))
            })?;
            action_data(*approve, participants, items)
        }
        Op::Join { .. } | Op::JoinByMessage { .. } => Err(unknown_shape()),
    }
}

/// The end of WAHA's reach-out timelock (the session's `me.reachoutTimelock`, or the answer
/// of `GET /api/sessions/{session}/timelock`): only while `isActive` is true and
/// `timeEnforcementEnds` reads as a time, unix seconds as a number or a string (whatsmeow's
/// `UnixString`) or RFC 3339. Anything else (null, inactive, no end, `"0"`) is unknown: WAHA
/// showed `null` while WhatsApp answered 463 (waha #2219).
fn timelock_end(timelock: &Value) -> Option<i64> {
    if flag(timelock, "isActive") != Some(true) {
        return None;
    }
    field(timelock, "timeEnforcementEnds").and_then(unix_seconds)
}

/// What a WAHA error answer says.
enum Failure {
    WhatsApp(i64),
    Condition(Condition),
    NotConnected,
    UnknownSession,
    CredentialRejected,
    /// A route this WAHA does not have (Nest's own 404), or a method the engine lacks (501).
    Missing,
    Unusable,
}

impl Failure {
    fn into_error(self, op: &Op, answer: &Answer) -> ApiError {
        match self {
            Self::WhatsApp(code) => failure(op, code, answer.retry_after_s),
            Self::Condition(condition) => condition_failure(op, condition, answer.retry_after_s),
            Self::NotConnected => ApiError::new(ErrorCode::SessionNotConnected),
            Self::UnknownSession => session_unknown(),
            Self::CredentialRejected => credential_rejected(answer.status),
            Self::Missing => not_implemented(Kind::Waha, op),
            Self::Unusable => unusable(answer.status),
        }
    }
}

fn failure_of(answer: &Answer, op: &Op) -> Failure {
    let body = answer.json().unwrap_or(Value::Null);
    if let Some(exception) = field(&body, "exception").filter(|e| e.is_object()) {
        if text(exception, "name") == Some("NotImplementedByEngineError") {
            return Failure::Missing;
        }
        // NOWEB: WhatsApp's code in `data`, its text in `message`; GOWS: whatsmeow's text.
        if let Some(code) = field(exception, "data").and_then(Value::as_i64) {
            return Failure::WhatsApp(code);
        }
        let said = text(exception, "details").or_else(|| text(exception, "message"));
        // NOWEB looks a group up among the account's own: `Group with id '…' not found`.
        if said.is_some_and(|s| s.starts_with("Group with id '") && s.ends_with("' not found")) {
            return Failure::WhatsApp(404);
        }
        return match said.and_then(classify_text) {
            Some(Condition::WhatsApp(code)) => Failure::WhatsApp(code),
            Some(condition) => Failure::Condition(condition),
            None => Failure::Unusable,
        };
    }
    let said = |key| text(&body, key).unwrap_or_default();
    let message = format!("{} {}", said("error"), said("message"));
    match answer.status {
        401 => Failure::CredentialRejected,
        422 if message.contains("does not exist") => Failure::UnknownSession,
        // A session that is not WORKING: the body names the status it expected.
        422 if field(&body, "expected").is_some() || message.contains("not as expected") => {
            Failure::NotConnected
        }
        // NotImplementedByEngineError was a 422 in some versions; older ones answered 501.
        422 if message.to_ascii_lowercase().contains("not implemented") => Failure::Missing,
        // A WAHA older than the timelock route (2026.8) has Nest's own 404 for it.
        404 if said("message").starts_with("Cannot ") && matches!(op, Op::RestrictionStatus) => {
            Failure::Missing
        }
        404 if matches!(op, Op::SessionStatus | Op::RestrictionStatus) => Failure::UnknownSession,
        404 if said("message").starts_with("Cannot ") && is_join_request_op(op) => Failure::Missing,
        501 => Failure::Missing,
        _ => Failure::Unusable,
    }
}

fn is_join_request_op(op: &Op) -> bool {
    matches!(
        op,
        Op::ListJoinRequests { .. } | Op::JoinRequestAction { .. }
    )
}

// ---- Section 14: inbound events ----

/// Header of WAHA's signature: hex HMAC-SHA512 of the raw body, keyed with the configured
/// `hmac.key` string's bytes (`X-Webhook-Hmac`, with `X-Webhook-Hmac-Algorithm: sha512`;
/// WAHA `src/core/integrations/webhooks/WebhookSender.ts` L148-179, read in
/// `shared/notes/server-events.md` §1.4).
pub const EVENTS_SIGNATURE_HEADER: &str = "X-Webhook-Hmac";

/// What checks `X-Webhook-Hmac`, the hex HMAC-SHA512 of the body keyed with the whole
/// `secret` string: the runtime's WebCrypto, given this key and tag (constant time there; a
/// SHA-512 in the wasm would cost ~3 KB gzip of its size budget). A missing or non-hex
/// header fails here.
pub fn verify_signature(secret: &str, header: Option<&str>) -> super::events::Verdict {
    use super::events::Verdict;
    match header.and_then(super::events::hex_decode) {
        Some(tag) => Verdict::HmacSha512 {
            key: secret.as_bytes().to_vec(),
            tag,
        },
        None => Verdict::Checked(false),
    }
}

/// The own account's membership events in one WAHA webhook (`WAHAWebhook` envelope:
/// `event`, `me`, `payload`; server-events.md §1.2-1.3):
/// - `group.v2.join` ("you joined or were added"): joined `payload.group.id`;
/// - `group.v2.leave` ("you left or were removed"): left `payload.group.id`, reason unknown;
/// - `group.v2.participants` with `type: "leave"` naming the own account in
///   `payload.participants[].id|pn`: left, reason unknown (WAHA's own leave filter can miss
///   `@lid` ids, so both are read; the caller applies a repeat once).
///
/// The own account is `me.id`, `me.lid` and `me.jid` of the envelope plus `own` from the
/// caller. Other events read as none.
pub fn read_events(
    body: &[u8],
    own: &super::events::Own,
) -> Result<Vec<super::events::MembershipEvent>, ApiError> {
    use super::events::MembershipEvent::{Joined, Left};
    use super::events::{
        any_own, group_field, named_event, not_an_event, object_field, LeaveReason,
    };
    let (envelope, event) = named_event(body)?;
    let me = envelope.get("me");
    let own = own.with(["id", "lid", "jid"].map(|name| me.and_then(|me| text(me, name))));
    let payload = || object_field(&envelope, "payload");
    let group = |payload: &Value| -> Result<String, ApiError> {
        let group = payload
            .get("group")
            .ok_or_else(|| not_an_event("no `payload.group`"))?;
        group_field(group, "id")
    };
    Ok(match event.as_str() {
        "group.v2.join" => vec![Joined {
            group_jid: group(payload()?)?,
        }],
        "group.v2.leave" => vec![Left {
            group_jid: group(payload()?)?,
            reason: LeaveReason::Unknown,
        }],
        "group.v2.participants" => {
            let payload = payload()?;
            let group_jid = group(payload)?;
            if text(payload, "type") == Some("leave") && any_own(payload.get("participants"), &own)
            {
                vec![Left {
                    group_jid,
                    reason: LeaveReason::Unknown,
                }]
            } else {
                Vec::new()
            }
        }
        _ => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    fn waha(session: &str) -> Target {
        target(Kind::Waha, Some(session), Some("waha-key"))
    }

    fn noweb_error(code: i64, message: &str) -> Transport {
        answer(
            500,
            &format!(
                r#"{{"statusCode":500,"timestamp":"2026-01-01T00:00:00Z","exception":{{"message":"{message}","data":{code},"name":"Error"}},"request":{{"path":"/x","method":"POST"}},"version":{{"engine":"NOWEB"}}}}"#
            ),
        )
    }

    fn gows_error(message: &str) -> Transport {
        answer(
            500,
            &format!(
                r#"{{"statusCode":500,"exception":{{"message":"{message}"}},"version":{{"engine":"GOWS"}}}}"#
            ),
        )
    }

    const NOWEB_PREVIEW: &str = r#"{"id":"120363000000000001@g.us","subject":"Open","desc":"D","size":12,"creation":1700000001,"joinApprovalMode":false,"owner":"1@c.us"}"#;
    const GOWS_APPROVAL_PREVIEW: &str = r#"{"JID":"120363000000000001@g.us","Name":"Approval","Topic":"","ParticipantCount":48,"GroupCreated":"2023-11-14T22:13:21Z","IsJoinApprovalRequired":true}"#;

    #[test]
    fn a_join_previews_then_joins_with_the_api_key() {
        let (done, sent) = script(
            &waha("default"),
            &join(CODE),
            vec![
                answer(200, NOWEB_PREVIEW),
                answer(201, &format!(r#"{{"id":"{GROUP}"}}"#)),
            ],
        );
        assert_eq!(
            outcome(&done),
            Ok(json!({ "group_jid": GROUP, "status": "joined" }))
        );
        assert_eq!(
            sent[0].path,
            format!("/api/default/groups/join-info?code={CODE}")
        );
        assert_eq!(sent[1].path, "/api/default/groups/join");
        assert_eq!(
            sent[1].body.as_deref(),
            Some(format!(r#"{{"code":"{CODE}"}}"#).as_str())
        );
        assert_eq!(sent[1].headers, vec![("X-Api-Key", "waha-key".to_string())]);
    }

    #[test]
    fn pending_approval_is_told_apart_on_both_engines() {
        // NOWEB: `{}` without a group.
        let (done, _) = script(
            &waha("s"),
            &join(CODE),
            vec![answer(200, NOWEB_PREVIEW), answer(201, "{}")],
        );
        assert_eq!(
            outcome(&done).map(|d| d["status"].clone()),
            Ok(json!("pending_approval"))
        );
        // GOWS: the group either way; the preview said approval is required.
        let (done, _) = script(
            &waha("gows"),
            &join(CODE),
            vec![
                answer(200, GOWS_APPROVAL_PREVIEW),
                answer(201, &format!(r#"{{"id":"{GROUP}"}}"#)),
            ],
        );
        assert_eq!(
            outcome(&done),
            Ok(json!({ "group_jid": GROUP, "status": "pending_approval" }))
        );
    }

    #[test]
    fn whatsapp_errors_map_by_code_or_text() {
        use ErrorCode::*;
        // A preview failure answers for the join; nothing is joined.
        for (first, expected) in [
            (noweb_error(410, "gone"), (InviteRevoked, Some(410))),
            (
                noweb_error(406, "not-acceptable"),
                (InviteInvalid, Some(406)),
            ),
            (
                gows_error("that group invite link has been revoked"),
                (InviteRevoked, Some(410)),
            ),
            (
                gows_error("info query returned status 404: item-not-found"),
                (GroupNotFound, Some(404)),
            ),
            (
                gows_error("websocket not connected"),
                (SessionNotConnected, None),
            ),
            (gows_error("something odd"), (BackendError, None)),
        ] {
            let (done, sent) = script(&waha("s"), &join(CODE), vec![first]);
            assert_eq!(outcome(&done), Err(expected));
            assert_eq!(sent.len(), 1);
        }
        for (second, expected) in [
            (
                noweb_error(419, "resource-limit"),
                Err((GroupFull, Some(419))),
            ),
            (
                noweb_error(403, "forbidden"),
                Err((JoinNotAllowed, Some(403))),
            ),
            (
                noweb_error(429, "rate-overlimit"),
                Err((UpstreamRateLimited, Some(429))),
            ),
            (
                gows_error("info query returned status 409: conflict"),
                Ok(json!({ "group_jid": "120363000000000001@g.us", "status": "already_member" })),
            ),
        ] {
            let (done, _) = script(
                &waha("s"),
                &join(CODE),
                vec![answer(200, NOWEB_PREVIEW), second],
            );
            assert_eq!(outcome(&done), expected);
        }
    }

    #[test]
    fn session_states_and_credentials() {
        use ErrorCode::*;
        let not_working = r#"{"error":"Session status is not as expected. Try again later or restart the session","session":"s","status":"SCAN_QR_CODE","expected":["WORKING"]}"#;
        let unknown = r#"{"error":"Session \"x\" does not exist","session":"x"}"#;
        let leave = Op::Leave {
            group_jid: GROUP.into(),
        };
        for (reply, expected) in [
            (answer(422, not_working), SessionNotConnected),
            (answer(422, unknown), SessionNotConnected),
            (
                answer(401, r#"{"message":"Unauthorized","statusCode":401}"#),
                BackendError,
            ),
            (answer(502, "<html>bad gateway</html>"), BackendError),
            // WAHA Core refuses sessions other than `default`: not a connection state.
            (
                answer(
                    422,
                    r#"{"message":"WAHA Core support only 'default' session.","error":"Unprocessable Entity","statusCode":422}"#,
                ),
                BackendError,
            ),
            (
                answer(
                    500,
                    r#"{"statusCode":500,"exception":{"name":"NotImplementedByEngineError","message":"Leave is not implemented by NOWEB"}}"#,
                ),
                NotImplemented,
            ),
        ] {
            let (done, _) = script(&waha("s"), &leave, vec![reply]);
            assert_eq!(done.result.as_ref().err().map(|e| e.code), Some(expected));
        }
        let (done, _) = script(
            &waha("s"),
            &leave,
            vec![answer(401, r#"{"message":"Unauthorized"}"#)],
        );
        assert_eq!(
            done.result.err().map(|e| e.details["reason"].clone()),
            Some(json!("credential_rejected"))
        );
        for (body, connected) in [
            (r#"{"name":"s","status":"WORKING"}"#, true),
            (r#"{"name":"s","status":"SCAN_QR_CODE"}"#, false),
        ] {
            let (done, sent) = script(&waha("s"), &Op::SessionStatus, vec![answer(200, body)]);
            assert_eq!(sent[0].path, "/api/sessions/s");
            assert_eq!(outcome(&done), Ok(json!({ "connected": connected })));
        }
    }

    #[test]
    fn the_reachout_timelock_states_a_restriction_end() {
        // (timelock object, the end read from it)
        let cases = [
            (
                r#"{"isActive":true,"timeEnforcementEnds":1790000000}"#,
                Some(1_790_000_000),
            ),
            (
                r#"{"isActive":true,"timeEnforcementEnds":"1790000000","enforcementType":"RESTRICT_ALL_COMPANIONS"}"#,
                Some(1_790_000_000),
            ),
            (
                r#"{"isActive":true,"timeEnforcementEnds":"2026-09-21T14:13:20Z"}"#,
                Some(1_790_000_000),
            ),
            (
                r#"{"isActive":true,"timeEnforcementEnds":"2026-09-21T16:13:20+02:00"}"#,
                Some(1_790_000_000),
            ),
            (
                r#"{"isActive":false,"timeEnforcementEnds":"1790000000"}"#,
                None,
            ),
            (r#"{"timeEnforcementEnds":"1790000000"}"#, None),
            (
                r#"{"isActive":"true","timeEnforcementEnds":"1790000000"}"#,
                None,
            ),
            (r#"{"isActive":true}"#, None),
            (r#"{"isActive":true,"timeEnforcementEnds":null}"#, None),
            (r#"{"isActive":true,"timeEnforcementEnds":"0"}"#, None),
            (r#"{"isActive":true,"timeEnforcementEnds":"soon"}"#, None),
            (
                r#"{"isActive":true,"timeEnforcementEnds":"0001-01-01T00:00:00Z"}"#,
                None,
            ),
            ("null", None),
        ];
        for (timelock, until) in cases {
            // On the session: `me.reachoutTimelock`, beside the connection state.
            let body = format!(
                r#"{{"name":"s","status":"WORKING","me":{{"id":"1@c.us","pushName":"x","reachoutTimelock":{timelock}}}}}"#
            );
            let (done, _) = script(&waha("s"), &Op::SessionStatus, vec![answer(200, &body)]);
            // The account named in `me` is kept for reading its events (section 14).
            let mut expected = json!({ "connected": true, "account": ["1@c.us"] });
            if let Some(until) = until {
                expected["restricted_until"] = json!(until);
            }
            assert_eq!(outcome(&done), Ok(expected), "{timelock}");
            // Its own route.
            if timelock == "null" {
                continue;
            }
            let (done, sent) = script(
                &waha("s 1"),
                &Op::RestrictionStatus,
                vec![answer(200, timelock)],
            );
            assert_eq!(sent[0].method, "GET");
            assert_eq!(sent[0].path, "/api/sessions/s%201/timelock");
            assert_eq!(sent[0].headers, vec![("X-Api-Key", "waha-key".to_string())]);
            let data = outcome(&done).unwrap_or_default();
            assert_eq!(super::super::restricted_until(&data), until, "{timelock}");
            assert_eq!(
                data.as_object().map(|m| m.len()),
                Some(usize::from(until.is_some()))
            );
        }
        // No `me` (a session that is not WORKING), or no timelock in it: unknown.
        for body in [
            r#"{"name":"s","status":"SCAN_QR_CODE","me":null}"#,
            r#"{"name":"s","status":"WORKING","me":{"id":"1@c.us","pushName":"x"}}"#,
        ] {
            let (done, _) = script(&waha("s"), &Op::SessionStatus, vec![answer(200, body)]);
            let data = outcome(&done).unwrap_or_default();
            assert_eq!(data.get("restricted_until"), None, "{body}");
        }
    }

    #[test]
    fn the_timelock_route_fails_like_waha() {
        use ErrorCode::*;
        let not_working = r#"{"error":"Session status is not as expected. Try again later or restart the session","session":"s","status":"SCAN_QR_CODE","expected":["WORKING"]}"#;
        for (reply, expected) in [
            // A WAHA before the route: Nest's own 404.
            (
                answer(
                    404,
                    r#"{"message":"Cannot GET /api/sessions/s/timelock","error":"Not Found","statusCode":404}"#,
                ),
                NotImplemented,
            ),
            (
                answer(
                    404,
                    r#"{"message":"Session not found","error":"Not Found","statusCode":404}"#,
                ),
                SessionNotConnected,
            ),
            (answer(422, not_working), SessionNotConnected),
            (
                answer(
                    500,
                    r#"{"statusCode":500,"exception":{"name":"NotImplementedByEngineError","message":"not implemented by WEBJS"}}"#,
                ),
                NotImplemented,
            ),
            (answer(200, "[]"), BackendError),
            (answer(200, "not json"), BackendError),
        ] {
            let label = format!("{reply:?}");
            let (done, _) = script(&waha("s"), &Op::RestrictionStatus, vec![reply]);
            assert_eq!(done.result.err().map(|e| e.code), Some(expected), "{label}");
        }
    }

    #[test]
    fn join_requests_and_an_older_waha() {
        let list = Op::ListJoinRequests {
            group_jid: GROUP.into(),
        };
        let body = r#"[{"requesterId":"15550000001@c.us","requesterPn":"15550000001@c.us","timestamp":1760000001},{"requesterId":"98765@lid","requesterPn":"15550000003@c.us","timestamp":1760001203},{"requesterId":"15550000004@c.us"}]"#;
        let (done, sent) = script(&waha("s"), &list, vec![answer(200, body)]);
        assert_eq!(
            sent[0].path,
            format!("/api/s/groups/{}/participants/join-requests", pct(GROUP))
        );
        assert_eq!(
            outcome(&done),
            Ok(json!({ "requests": [
                { "jid": "15550000001@s.whatsapp.net", "phone_number": "+15550000001", "requested_at": 1760000001 },
                { "jid": "98765@lid", "phone_number": "+15550000003", "requested_at": 1760001203 },
                { "jid": "15550000004@s.whatsapp.net", "phone_number": "+15550000004" },
            ]}))
        );
        let nest_404 = r#"{"statusCode":404,"message":"Cannot GET /api/s/groups/x/participants/join-requests","error":"Not Found"}"#;
        let (done, _) = script(&waha("s"), &list, vec![answer(404, nest_404)]);
        assert_eq!(
            done.result.err().map(|e| e.code),
            Some(ErrorCode::NotImplemented)
        );
        let approve = Op::JoinRequestAction {
            group_jid: GROUP.into(),
            approve: true,
            participants: vec!["1@s.whatsapp.net".into(), "2@lid".into()],
        };
        let body = r#"[{"requesterId":"1@c.us","success":true},{"requesterId":"2@lid","success":false,"error":404}]"#;
        let (done, sent) = script(&waha("s"), &approve, vec![answer(200, body)]);
        assert_eq!(
            sent[0].body.as_deref(),
            Some(r#"{"participants":[{"id":"1@s.whatsapp.net"},{"id":"2@lid"}]}"#)
        );
        let data = outcome(&done).unwrap_or_default();
        assert_eq!(data["approved"], json!(["1@s.whatsapp.net"]));
        assert_eq!(
            data["failed"][0]["error"]["code"],
            json!("request_not_found")
        );
    }

    #[test]
    fn reset_answers_a_plain_string() {
        let op = Op::ResetInvite {
            group_jid: GROUP.into(),
        };
        for body in [
            CODE.to_string(),
            format!("https://chat.whatsapp.com/{CODE}"),
        ] {
            let (done, _) = script(&waha("s"), &op, vec![answer(201, &body)]);
            assert_eq!(
                outcome(&done).map(|d| d["invite_code"].clone()),
                Ok(json!(CODE))
            );
        }
    }

    #[test]
    fn a_membership_check_reads_the_group_or_the_engine_s_not_found() {
        use ErrorCode::*;
        let op = Op::MembershipCheck {
            group_jid: GROUP.into(),
        };
        let member = Ok(json!({ "member": true }));
        let not_member = Ok(json!({ "member": false }));
        // NOWEB looks the id up among the account's groups (a plain Error, so a 500).
        let noweb_missing = answer(
            500,
            &format!(
                r#"{{"statusCode":500,"timestamp":"2026-01-01T00:00:00Z","exception":{{"message":"Group with id '{GROUP}' not found","name":"Error","stack":"Error: Group with id '{GROUP}' not found\n    at x"}},"request":{{"path":"/api/s/groups/x","method":"GET"}},"version":{{"engine":"NOWEB"}}}}"#
            ),
        );
        // GOWS: a gRPC error, whatsmeow's text in `details`.
        let gows_grpc = |text: &str| {
            answer(
                500,
                &format!(
                    r#"{{"statusCode":500,"exception":{{"message":"2 UNKNOWN: {text}","code":2,"details":"{text}","metadata":{{}},"name":"Error"}},"version":{{"engine":"GOWS"}}}}"#
                ),
            )
        };
        let not_working = r#"{"error":"Session status is not as expected. Try again later or restart the session","session":"s","status":"STARTING","expected":["WORKING"]}"#;
        let closed = r#"{"statusCode":500,"exception":{"message":"Connection Closed","data":null,"isBoom":true,"output":{"statusCode":428},"name":"Error"}}"#;
        for (reply, expected) in [
            (answer(200, NOWEB_PREVIEW), member.clone()),
            (answer(200, GOWS_APPROVAL_PREVIEW), member),
            (noweb_missing, not_member.clone()),
            (
                gows_grpc("you're not participating in that group"),
                not_member.clone(),
            ),
            (gows_grpc("that group does not exist"), not_member.clone()),
            (
                gows_error("info query returned status 403: forbidden"),
                not_member,
            ),
            (answer(422, not_working), Err((SessionNotConnected, None))),
            (answer(500, closed), Err((SessionNotConnected, None))),
            (
                gows_grpc("websocket not connected"),
                Err((SessionNotConnected, None)),
            ),
            (
                gows_grpc("info query returned status 429: rate-overlimit"),
                Err((UpstreamRateLimited, Some(429))),
            ),
            (
                gows_error("Message with id 'x' not found"),
                Err((BackendError, None)),
            ),
            (answer(200, "null"), Err((BackendError, None))),
            (answer(200, "[]"), Err((BackendError, None))),
            (
                answer(502, "<html>bad gateway</html>"),
                Err((BackendError, None)),
            ),
        ] {
            let label = format!("{reply:?}");
            let (done, sent) = script(&waha("s"), &op, vec![reply]);
            assert_eq!(outcome(&done), expected, "{label}");
            assert_eq!(sent[0].method, "GET");
            assert_eq!(sent[0].path, format!("/api/s/groups/{}", pct(GROUP)));
            assert_eq!(sent[0].body, None);
        }
    }
}
