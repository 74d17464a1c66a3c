//! Kind `gowa`: go-whatsapp-web-multidevice (whatsmeow underneath). HTTP Basic auth
//! (`user:password`), the device in `X-Device-Id`; answers `{"code","message","results"}`.
//! Its preview has no approval field and its join answer is the same for a join and a
//! membership request, so a join is followed by a membership check (`/group/info` fails for
//! a non-participant): `pending_approval` unless the server shows the account is a member.
//! Join-request actions take phone numbers: a `@lid` participant fails as its own item.

use serde_json::{json, Value};

use super::shape::{
    action_data, credential_rejected, each, field, join_data, membership, pct, phone_number,
    request_entry, reset_data, session_unknown, text, unix_seconds, unknown_shape, unusable,
    user_jid, ItemOutcome, Preview,
};
use super::whatsapp::{
    classify_text, condition_failure, failure, is_already_member, is_not_member, Condition,
    ITEM_NOT_SUPPORTED,
};
use super::{not_implemented, Answer, Kind, Op, Stage, Step, Target, Transport};
use crate::core::error::{ApiError, ErrorCode};

fn link(code: &str) -> String {
    format!("https://chat.whatsapp.com/{code}")
}

fn preview_request(target: &Target, code: &str, stage: Stage) -> Step {
    let path = format!("/group/info-from-link?link={}", pct(&link(code)));
    target.send("GET", path, None, stage)
}

/// The phone digits of a `…@s.whatsapp.net` participant; `None` for a `@lid`.
fn phone_digits(jid: &str) -> Option<&str> {
    jid.strip_suffix("@s.whatsapp.net")
}

pub fn start(target: &Target, op: &Op) -> Step {
    let group = |jid: &str| pct(jid);
    match op {
        Op::Join { code } => target.send(
            "POST",
            "/group/join-with-link".into(),
            Some(json!({ "link": link(code) })),
            Stage::Main,
        ),
        Op::Preview { code } => preview_request(target, code, Stage::Main),
        Op::Leave { group_jid } => target.send(
            "POST",
            "/group/leave".into(),
            Some(json!({ "group_id": group_jid })),
            Stage::Main,
        ),
        Op::ResetInvite { group_jid } => target.send(
            "GET",
            format!(
                "/group/invite-link?group_id={}&reset=true",
                group(group_jid)
            ),
            None,
            Stage::Main,
        ),
        Op::ListJoinRequests { group_jid } => target.send(
            "GET",
            format!("/group/participant-requests?group_id={}", group(group_jid)),
            None,
            Stage::Main,
        ),
        Op::JoinRequestAction {
            group_jid,
            approve,
            participants,
        } => {
            let phones: Vec<&str> = participants
                .iter()
                .filter_map(|p| phone_digits(p))
                .collect();
            if phones.is_empty() {
                // Nothing this server can act on: every item fails on its own.
                return Step::Done(action_data(*approve, participants, lid_items(participants)));
            }
            let action = if *approve { "approve" } else { "reject" };
            target.send(
                "POST",
                format!("/group/participant-requests/{action}"),
                Some(json!({ "group_id": group_jid, "participants": phones })),
                Stage::Main,
            )
        }
        Op::SessionStatus => target.send("GET", "/app/status".into(), None, Stage::Main),
        Op::MembershipCheck { group_jid } => target.send(
            "GET",
            format!("/group/info?group_id={}", group(group_jid)),
            None,
            Stage::Main,
        ),
        Op::JoinByMessage { .. } | Op::RestrictionStatus => {
            Step::Done(Err(not_implemented(Kind::Gowa, op)))
        }
    }
}

fn lid_items(participants: &[String]) -> Vec<(String, ItemOutcome)> {
    participants
        .iter()
        .filter(|p| phone_digits(p).is_none())
        .map(|p| {
            (
                p.clone(),
                ItemOutcome::Other(ITEM_NOT_SUPPORTED.0, ITEM_NOT_SUPPORTED.1),
            )
        })
        .collect()
}

pub fn resume(target: &Target, op: &Op, stage: Stage, outcome: Transport) -> Step {
    match stage {
        Stage::MembershipAfterJoin { group_jid } => {
            // Only a group info answer shows the account is a member; anything else leaves
            // the join a pending request.
            let member = outcome
                .answer()
                .ok()
                .filter(Answer::is_success)
                .and_then(|a| results(&a).ok())
                .is_some();
            let status = if member { "joined" } else { "pending_approval" };
            Step::Done(Ok(join_data(Some(&group_jid), status)))
        }
        Stage::PreviewForGroup { status } => {
            let group = outcome
                .answer()
                .ok()
                .and_then(|a| results(&a).ok())
                .and_then(|v| text(&v, "group_id").and_then(super::shape::group_jid));
            Step::Done(Ok(join_data(group.as_deref(), status)))
        }
        _ => main(target, op, outcome),
    }
}

fn main(target: &Target, op: &Op, outcome: Transport) -> Step {
    let answer = match outcome.answer() {
        Ok(answer) => answer,
        Err(error) => return Step::Done(Err(error)),
    };
    let value = match results(&answer) {
        Ok(value) => value,
        Err(failure) => {
            // whatsmeow's "you're not participating in that group" (403) or "that group does
            // not exist" (404), as a 500 with the text.
            if let Failure::WhatsApp(code) = failure {
                if is_not_member(op, code) {
                    return Step::Done(Ok(membership(false)));
                }
            }
            if let (Failure::WhatsApp(code), Op::Join { code: invite }) = (&failure, op) {
                if is_already_member(op, *code) {
                    return preview_request(
                        target,
                        invite,
                        Stage::PreviewForGroup {
                            status: "already_member",
                        },
                    );
                }
            }
            return Step::Done(Err(failure.into_error(op, &answer)));
        }
    };
    Step::Done(match op {
        Op::Join { .. } => {
            return match text(&value, "group_id").and_then(super::shape::group_jid) {
                Some(jid) => target.send(
                    "GET",
                    format!("/group/info?group_id={}", pct(&jid)),
                    None,
                    Stage::MembershipAfterJoin { group_jid: jid },
                ),
                None => Step::Done(Err(unknown_shape())),
            }
        }
        Op::Preview { .. } => preview(&value).map(|p| p.data()),
        Op::MembershipCheck { .. } => Some(membership(true))
            .filter(|_| value.is_object())
            .ok_or_else(unknown_shape),
        Op::Leave { group_jid } => Ok(json!({ "group_jid": group_jid, "status": "left" })),
        Op::ResetInvite { .. } => text(&value, "invite_link")
            .ok_or_else(unknown_shape)
            .and_then(reset_data),
        // An empty list is `null` (a nil Go slice).
        Op::ListJoinRequests { .. } => Some(&value)
            .filter(|v| !v.is_null())
            .map_or(Some(&Vec::new()), Value::as_array)
            .ok_or_else(unknown_shape)
            .and_then(|items| {
                each(items, |item| {
                    let jid = text(item, "jid").ok_or_else(unknown_shape)?;
                    request_entry(
                        jid,
                        text(item, "phone_number").and_then(phone_number),
                        field(item, "requested_at").and_then(unix_seconds),
                    )
                })
            })
            .map(|requests| json!({ "requests": requests })),
        Op::JoinRequestAction {
            approve,
            participants,
            ..
        } => action_results(&value, participants)
            .and_then(|items| action_data(*approve, participants, items)),
        Op::SessionStatus => {
            let connected = field(&value, "is_connected").and_then(Value::as_bool);
            let logged_in = field(&value, "is_logged_in").and_then(Value::as_bool);
            let account = [text(&value, "jid"), text(&value, "device_id")];
            connected
                .map(|c| json!({ "connected": c && logged_in.unwrap_or(c) }))
                .map(|data| super::shape::with_account(data, &account))
                .ok_or_else(unknown_shape)
        }
        Op::JoinByMessage { .. } | Op::RestrictionStatus => Err(unknown_shape()),
    })
}

fn preview(value: &Value) -> Result<Preview, ApiError> {
    let group_jid = text(value, "group_id")
        .and_then(super::shape::group_jid)
        .ok_or_else(unknown_shape)?;
    let description = text(value, "description")
        .or_else(|| text(value, "topic"))
        .filter(|d| !d.is_empty())
        .map(str::to_owned);
    Ok(Preview {
        group_jid,
        subject: text(value, "name").unwrap_or_default().to_string(),
        description,
        // The server counts the participants it was shown, often none on a preview.
        size: field(value, "participant_count")
            .and_then(Value::as_u64)
            .filter(|n| *n > 0),
        created_at: field(value, "created_at").and_then(unix_seconds),
        requires_approval: None,
    })
}

/// The per-participant results, matched back to the JIDs asked about.
fn action_results(value: &Value, asked: &[String]) -> Result<Vec<(String, ItemOutcome)>, ApiError> {
    let mut items = lid_items(asked);
    for item in value.as_array().ok_or_else(unknown_shape)? {
        let participant = text(item, "participant").ok_or_else(unknown_shape)?;
        // The server names a participant by its JID (older versions: by its digits).
        let jid = if participant.contains('@') {
            user_jid(participant)
        } else {
            user_jid(&format!("{participant}@s.whatsapp.net"))
        }
        .ok_or_else(unknown_shape)?;
        let outcome = match text(item, "status") {
            Some("success") => ItemOutcome::Done,
            Some("error") => ItemOutcome::WhatsApp(item_code(text(item, "message").unwrap_or(""))),
            _ => return Err(unknown_shape()),
        };
        items.push((jid, outcome));
    }
    // Answer order follows the request, with the @lid items where they were asked.
    Ok(in_asked_order(items, asked))
}

/// `items` stably sorted by their JID's position in `asked`, items not asked about first
/// (`sort_by_key` with that position), written out: the standard library's stable sort is
/// about 3 KB of wasm.
fn in_asked_order<T>(items: Vec<(String, T)>, asked: &[String]) -> Vec<(String, T)> {
    let keys: Vec<Option<usize>> = items
        .iter()
        .map(|(jid, _)| asked.iter().position(|a| a == jid))
        .collect();
    let mut slots: Vec<Option<(String, T)>> = items.into_iter().map(Some).collect();
    let mut sorted = Vec::with_capacity(slots.len());
    for wanted in std::iter::once(None).chain((0..asked.len()).map(Some)) {
        for (slot, key) in slots.iter_mut().zip(&keys) {
            if *key == wanted {
                sorted.extend(slot.take());
            }
        }
    }
    sorted
}

/// `Action approve failed (code 404)` → 404; a message without a code is 0 (unmapped).
fn item_code(message: &str) -> i64 {
    message
        .split("(code ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|digits| digits.trim().parse().ok())
        .unwrap_or(0)
}

enum Failure {
    WhatsApp(i64),
    Condition(Condition),
    NotConnected,
    UnknownDevice,
    CredentialRejected,
    ServerTimeout,
    Unusable,
}

impl Failure {
    fn into_error(self, op: &Op, answer: &Answer) -> ApiError {
        match self {
            Self::WhatsApp(code) => failure(op, code, answer.retry_after_s),
            Self::Condition(condition) => condition_failure(op, condition, answer.retry_after_s),
            Self::NotConnected => ApiError::new(ErrorCode::SessionNotConnected),
            Self::UnknownDevice => session_unknown(),
            Self::CredentialRejected => credential_rejected(answer.status),
            Self::ServerTimeout => ApiError::new(ErrorCode::BackendTimeout)
                .with_message("WhatsApp did not answer the session backend in time."),
            Self::Unusable => unusable(answer.status),
        }
    }
}

/// The `results` of a successful answer (`null` when it has none), or what its failure says.
fn results(answer: &Answer) -> Result<Value, Failure> {
    let body = answer.json().filter(Value::is_object);
    let code = body
        .as_ref()
        .and_then(|b| text(b, "code"))
        .unwrap_or_default();
    if answer.is_success() {
        return match (&body, code) {
            (Some(b), "SUCCESS") => Ok(field(b, "results").cloned().unwrap_or(Value::Null)),
            _ => Err(Failure::Unusable),
        };
    }
    // A refused Basic auth is a 401 without the JSON envelope.
    match (answer.status, code) {
        (401, "AUTHENTICATION_ERROR") => Err(Failure::NotConnected),
        (401, _) => Err(Failure::CredentialRejected),
        (404, "DEVICE_NOT_FOUND") => Err(Failure::UnknownDevice),
        (504, _) => Err(Failure::ServerTimeout),
        _ => {
            let message = body
                .as_ref()
                .and_then(|b| text(b, "message"))
                .unwrap_or_default();
            match classify_text(message) {
                Some(Condition::WhatsApp(code)) => Err(Failure::WhatsApp(code)),
                Some(condition) => Err(Failure::Condition(condition)),
                None => Err(Failure::Unusable),
            }
        }
    }
}

// ---- Section 14: inbound events ----

/// Header of GOWA's signature: `sha256=<hex HMAC-SHA256 of the body>`, keyed with the
/// webhook secret string's bytes, always sent (default secret `secret`)
/// (`src/infrastructure/whatsapp/webhook.go` L19-97; server-events.md §4.4).
pub const EVENTS_SIGNATURE_HEADER: &str = "X-Hub-Signature-256";

/// Whether `X-Hub-Signature-256` is `sha256=` + the hex HMAC-SHA256 of `body` keyed with the
/// whole `secret` string. Constant time; a missing header or prefix fails.
pub fn verify_signature(secret: &str, body: &[u8], header: Option<&str>) -> bool {
    header
        .and_then(|h| h.trim().strip_prefix("sha256="))
        .is_some_and(|hex| super::events::verify_hex_sha256(secret.as_bytes(), body, hex))
}

/// The own account's membership events in one GOWA webhook (`{event, device_id, session_id,
/// timestamp, payload: {chat_id, type, jids}}`, `event_group.go` L15-39, L104-125;
/// server-events.md §4.2-4.3):
/// - `group.joined` (always the own account): joined `payload.chat_id`;
/// - `group.participants` with `payload.type: "leave"` and the own account in
///   `payload.jids`: left `payload.chat_id`, reason unknown (GOWA does not say who acted).
///
/// The own account is `device_id` (the own JID) plus `own` from the caller.
pub fn read_events(
    body: &[u8],
    own: &super::events::Own,
) -> Result<Vec<super::events::MembershipEvent>, ApiError> {
    use super::events::MembershipEvent::{Joined, Left};
    use super::events::{any_own, group_field, named_event, object_field, LeaveReason};
    let (envelope, event) = named_event(body)?;
    let own = own.with([text(&envelope, "device_id")]);
    let payload = || object_field(&envelope, "payload");
    Ok(match event.as_str() {
        "group.joined" => vec![Joined {
            group_jid: group_field(payload()?, "chat_id")?,
        }],
        "group.participants" => {
            let payload = payload()?;
            let group_jid = group_field(payload, "chat_id")?;
            if text(payload, "type") == Some("leave") && any_own(payload.get("jids"), &own) {
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
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn answers_keep_the_asked_order_as_a_stable_sort_would(
            asked in proptest::collection::vec(0u8..6, 0..6),
            answered in proptest::collection::vec(0u8..9, 0..12),
        ) {
            let asked: Vec<String> = asked.iter().map(|n| format!("j{n}")).collect();
            let items: Vec<(String, usize)> =
                answered.iter().enumerate().map(|(i, n)| (format!("j{n}"), i)).collect();
            let mut expected = items.clone();
            expected.sort_by_key(|(jid, _)| asked.iter().position(|a| a == jid));
            prop_assert_eq!(in_asked_order(items, &asked), expected);
        }
    }

    fn gowa() -> Target {
        target(Kind::Gowa, Some("dev1"), Some("gowa:gowa-pass"))
    }

    fn ok(results: &str) -> Transport {
        answer(
            200,
            &format!(r#"{{"code":"SUCCESS","message":"ok","results":{results}}}"#),
        )
    }

    fn internal(message: &str) -> Transport {
        answer(
            500,
            &format!(r#"{{"code":"INTERNAL_SERVER_ERROR","message":"{message}"}}"#),
        )
    }

    #[test]
    fn a_join_is_checked_for_membership() {
        let joined = ok(&format!(r#"{{"group_id":"{GROUP}"}}"#));
        let info = ok(&format!(r#"{{"JID":"{GROUP}","Name":"G"}}"#));
        let (done, sent) = script(&gowa(), &join(CODE), vec![joined.clone(), info]);
        assert_eq!(
            outcome(&done),
            Ok(json!({ "group_jid": GROUP, "status": "joined" }))
        );
        assert_eq!(sent[0].path, "/group/join-with-link");
        assert_eq!(
            sent[0].body.as_deref(),
            Some(format!(r#"{{"link":"https://chat.whatsapp.com/{CODE}"}}"#).as_str())
        );
        assert_eq!(
            sent[0].headers,
            vec![
                ("Authorization", "Basic Z293YTpnb3dhLXBhc3M=".to_string()),
                ("X-Device-Id", "dev1".to_string())
            ]
        );
        assert_eq!(sent[1].path, format!("/group/info?group_id={}", pct(GROUP)));
        // Not a participant after the join: a membership request.
        for check in [
            internal("you're not participating in that group"),
            Transport::TimedOut { timeout_ms: 5 },
        ] {
            let (done, _) = script(&gowa(), &join(CODE), vec![joined.clone(), check]);
            assert_eq!(
                outcome(&done),
                Ok(json!({ "group_jid": GROUP, "status": "pending_approval" }))
            );
            assert!(done.reached);
        }
    }

    #[test]
    fn errors_by_text_and_by_envelope_code() {
        use ErrorCode::*;
        for (reply, expected) in [
            (
                internal("that group invite link has been revoked"),
                Err((InviteRevoked, Some(410))),
            ),
            (
                internal("that group invite link is not valid"),
                Err((InviteInvalid, Some(406))),
            ),
            (
                internal("info query returned status 419: resource-limit"),
                Err((GroupFull, Some(419))),
            ),
            (
                internal("info query returned status 429: rate-overlimit"),
                Err((UpstreamRateLimited, Some(429))),
            ),
            (
                answer(
                    401,
                    r#"{"code":"AUTHENTICATION_ERROR","message":"you are not connect to services server, please reconnect"}"#,
                ),
                Err((SessionNotConnected, None)),
            ),
            (
                answer(
                    404,
                    r#"{"code":"DEVICE_NOT_FOUND","message":"device not found"}"#,
                ),
                Err((SessionNotConnected, None)),
            ),
            (answer(401, "Unauthorized"), Err((BackendError, None))),
            (
                answer(
                    504,
                    r#"{"code":"GATEWAY_TIMEOUT","message":"Request timed out waiting for WhatsApp server response"}"#,
                ),
                Err((BackendTimeout, None)),
            ),
            (
                answer(500, r#"{"code":"INTERNAL_SERVER_ERROR","message":"boom"}"#),
                Err((BackendError, None)),
            ),
        ] {
            let (done, _) = script(&gowa(), &join(CODE), vec![reply]);
            assert_eq!(outcome(&done), expected);
        }
        let preview = ok(&format!(r#"{{"group_id":"{GROUP}","name":"G"}}"#));
        let (done, _) = script(
            &gowa(),
            &join(CODE),
            vec![
                internal("info query returned status 409: conflict"),
                preview,
            ],
        );
        assert_eq!(
            outcome(&done),
            Ok(json!({ "group_jid": GROUP, "status": "already_member" }))
        );
    }

    #[test]
    fn previews_have_no_approval_field() {
        let op = Op::Preview { code: CODE.into() };
        let body = format!(
            r#"{{"group_id":"{GROUP}","name":"G","topic":"T","description":"T","created_at":"2023-11-14T22:13:21Z","participant_count":0}}"#
        );
        let (done, sent) = script(&gowa(), &op, vec![ok(&body)]);
        assert_eq!(
            sent[0].path,
            format!("/group/info-from-link?link={}", pct(&link(CODE)))
        );
        assert_eq!(
            outcome(&done),
            Ok(
                json!({ "group_jid": GROUP, "subject": "G", "description": "T", "created_at": 1700000001, "requires_approval": null })
            )
        );
    }

    #[test]
    fn join_requests_take_phone_numbers() {
        let op = Op::JoinRequestAction {
            group_jid: GROUP.into(),
            approve: true,
            participants: vec![
                "15550000001@s.whatsapp.net".into(),
                "987@lid".into(),
                "15550000002@s.whatsapp.net".into(),
            ],
        };
        let body = r#"[{"participant":"15550000001@s.whatsapp.net","status":"success","message":"Action approve success"},{"participant":"15550000002","status":"error","message":"Action approve failed (code 404)"}]"#;
        let (done, sent) = script(&gowa(), &op, vec![ok(body)]);
        assert_eq!(
            sent[0].body.as_deref(),
            Some(
                format!(r#"{{"group_id":"{GROUP}","participants":["15550000001","15550000002"]}}"#)
                    .as_str()
            )
        );
        let data = outcome(&done).unwrap_or_default();
        assert_eq!(data["approved"], json!(["15550000001@s.whatsapp.net"]));
        assert_eq!(data["failed"][0]["jid"], json!("987@lid"));
        assert_eq!(data["failed"][0]["error"]["code"], json!("not_supported"));
        assert_eq!(
            data["failed"][1]["error"]["code"],
            json!("request_not_found")
        );
        // Only @lid participants: nothing is sent at all.
        let only_lid = Op::JoinRequestAction {
            group_jid: GROUP.into(),
            approve: false,
            participants: vec!["987@lid".into()],
        };
        let (done, sent) = script(&gowa(), &only_lid, vec![]);
        assert!(sent.is_empty());
        assert_eq!(outcome(&done).map(|d| d["rejected"].clone()), Ok(json!([])));
        let list = Op::ListJoinRequests {
            group_jid: GROUP.into(),
        };
        // An empty list comes as `results: null`.
        let (done, _) = script(&gowa(), &list, vec![ok("null")]);
        assert_eq!(outcome(&done), Ok(json!({ "requests": [] })));
        let body = r#"[{"jid":"15550000001@s.whatsapp.net","phone_number":"15550000001","requested_at":"2025-10-09T08:53:21Z"},{"jid":"987@lid","phone_number":""}]"#;
        let (done, _) = script(&gowa(), &list, vec![ok(body)]);
        assert_eq!(
            outcome(&done),
            Ok(json!({ "requests": [
                { "jid": "15550000001@s.whatsapp.net", "phone_number": "+15550000001", "requested_at": 1760000001 },
                { "jid": "987@lid" },
            ]}))
        );
    }

    #[test]
    fn status_leave_and_reset() {
        let (done, _) = script(
            &gowa(),
            &Op::SessionStatus,
            vec![ok(r#"{"is_connected":true,"is_logged_in":false}"#)],
        );
        assert_eq!(outcome(&done), Ok(json!({ "connected": false })));
        let (done, _) = script(
            &gowa(),
            &Op::SessionStatus,
            vec![ok(
                r#"{"is_connected":true,"is_logged_in":true,"device_id":"d1","jid":"15550001111@s.whatsapp.net"}"#,
            )],
        );
        let account = json!({ "connected": true, "account": ["15550001111@s.whatsapp.net", "d1"] });
        assert_eq!(outcome(&done), Ok(account));
        let leave = Op::Leave {
            group_jid: GROUP.into(),
        };
        let (done, _) = script(
            &gowa(),
            &leave,
            vec![answer(
                200,
                r#"{"code":"SUCCESS","message":"Success leave group"}"#,
            )],
        );
        assert_eq!(
            outcome(&done).map(|d| d["status"].clone()),
            Ok(json!("left"))
        );
        let reset = Op::ResetInvite {
            group_jid: GROUP.into(),
        };
        let body =
            format!(r#"{{"invite_link":"https://chat.whatsapp.com/{CODE}","group_id":"{GROUP}"}}"#);
        let (done, sent) = script(&gowa(), &reset, vec![ok(&body)]);
        assert_eq!(
            sent[0].path,
            format!("/group/invite-link?group_id={}&reset=true", pct(GROUP))
        );
        assert_eq!(
            outcome(&done).map(|d| d["invite_code"].clone()),
            Ok(json!(CODE))
        );
    }

    #[test]
    fn a_membership_check_asks_for_the_group_info() {
        use ErrorCode::*;
        let op = Op::MembershipCheck {
            group_jid: GROUP.into(),
        };
        for (reply, expected) in [
            (
                ok(&format!(
                    r#"{{"JID":"{GROUP}","Name":"G","Participants":[]}}"#
                )),
                Ok(json!({ "member": true })),
            ),
            (
                internal("you're not participating in that group"),
                Ok(json!({ "member": false })),
            ),
            (
                internal("that group does not exist"),
                Ok(json!({ "member": false })),
            ),
            (
                internal("info query returned status 403: forbidden"),
                Ok(json!({ "member": false })),
            ),
            (
                answer(
                    401,
                    r#"{"code":"AUTHENTICATION_ERROR","message":"you are not logged in"}"#,
                ),
                Err((SessionNotConnected, None)),
            ),
            (
                internal("websocket not connected"),
                Err((SessionNotConnected, None)),
            ),
            (
                answer(
                    404,
                    r#"{"code":"DEVICE_NOT_FOUND","message":"device not found"}"#,
                ),
                Err((SessionNotConnected, None)),
            ),
            (
                answer(
                    504,
                    r#"{"code":"GATEWAY_TIMEOUT","message":"Request timed out waiting for WhatsApp server response"}"#,
                ),
                Err((BackendTimeout, None)),
            ),
            (
                internal("info query returned status 429: rate-overlimit"),
                Err((UpstreamRateLimited, Some(429))),
            ),
            (internal("something odd"), Err((BackendError, None))),
            (ok("null"), Err((BackendError, None))),
            (answer(401, "Unauthorized"), Err((BackendError, None))),
        ] {
            let label = format!("{reply:?}");
            let (done, sent) = script(&gowa(), &op, vec![reply]);
            assert_eq!(outcome(&done), expected, "{label}");
            assert_eq!(sent.len(), 1);
            assert_eq!(sent[0].method, "GET");
            assert_eq!(sent[0].path, format!("/group/info?group_id={}", pct(GROUP)));
            assert_eq!(sent[0].headers.len(), 2);
        }
    }
}
