//! Kind `wuzapi`: wuzapi (whatsmeow underneath). Auth header `token`, which also names the
//! user and so the WhatsApp session. Answers are `{"code","data","success"}` with Go field
//! names matched in any letter case. Its join answer names no group and cannot tell a
//! membership request from a join, so a join previews first. Its failures answer 500
//! `{"code":500,"success":true}` without a word (an upstream bug): the status route then
//! tells a disconnected session from a WhatsApp refusal that cannot be read.

use serde_json::{json, Value};

use super::shape::{
    credential_rejected, error_text, field, flag, join_data, membership, pct, reset_data, text,
    unknown_shape, unusable, Preview,
};
use super::whatsapp::{classify_text, condition_failure};
use super::{not_implemented, Answer, Kind, Op, Stage, Step, Target, Transport};
use crate::core::error::{ApiError, ErrorCode};

fn preview_request(target: &Target, code: &str, stage: Stage) -> Step {
    target.send(
        "POST",
        "/group/inviteinfo".into(),
        Some(json!({ "Code": code })),
        stage,
    )
}

fn status_request(target: &Target, stage: Stage) -> Step {
    target.send("GET", "/session/status".into(), None, stage)
}

pub fn start(target: &Target, op: &Op) -> Step {
    match op {
        Op::Join { code } => preview_request(target, code, Stage::PreviewBeforeJoin),
        Op::Preview { code } => preview_request(target, code, Stage::Main),
        Op::Leave { group_jid } => target.send(
            "POST",
            "/group/leave".into(),
            Some(json!({ "GroupJID": group_jid })),
            Stage::Main,
        ),
        Op::ResetInvite { group_jid } => target.send(
            "GET",
            format!("/group/invitelink?groupJID={}&reset=true", pct(group_jid)),
            None,
            Stage::Main,
        ),
        Op::SessionStatus => status_request(target, Stage::Main),
        // Its per-group route answers a non-member with the same text-less 500 as any failure.
        Op::MembershipCheck { .. } => target.send("GET", "/group/list".into(), None, Stage::Main),
        Op::JoinByMessage { .. }
        | Op::ListJoinRequests { .. }
        | Op::JoinRequestAction { .. }
        | Op::RestrictionStatus => Step::Done(Err(not_implemented(Kind::Wuzapi, op))),
    }
}

pub fn resume(target: &Target, op: &Op, stage: Stage, outcome: Transport) -> Step {
    let answer = match outcome.answer() {
        Ok(answer) => answer,
        Err(error) => return Step::Done(Err(error)),
    };
    if let Stage::StatusAfterSilentFailure { backend_status } = stage {
        return Step::Done(Err(match data(&answer) {
            Ok(status) if connected(&status) == Some(false) => {
                ApiError::new(ErrorCode::SessionNotConnected)
            }
            _ => unusable(backend_status)
                .with_message("wuzapi failed without saying why (its session is connected)."),
        }));
    }
    let value = match data(&answer) {
        Ok(value) => value,
        Err(Failure::Silent) if !matches!(op, Op::SessionStatus) => {
            return status_request(
                target,
                Stage::StatusAfterSilentFailure {
                    backend_status: answer.status,
                },
            )
        }
        // The status route of a user without a client says "no session": not connected.
        Err(Failure::Text(text))
            if matches!(op, Op::SessionStatus)
                && classify_text(&text) == Some(super::whatsapp::Condition::NotConnected) =>
        {
            return Step::Done(Ok(json!({ "connected": false })))
        }
        Err(failure) => return Step::Done(Err(failure.into_error(op, &answer))),
    };
    Step::Done(match (stage, op) {
        (Stage::PreviewBeforeJoin, Op::Join { code }) => {
            return match Preview::from_whatsmeow(&value) {
                Ok(preview) => target.send(
                    "POST",
                    "/group/join".into(),
                    Some(json!({ "Code": code })),
                    Stage::JoinAfterPreview {
                        group_jid: preview.group_jid,
                        requires_approval: preview.requires_approval.unwrap_or(false),
                    },
                ),
                Err(error) => Step::Done(Err(error)),
            }
        }
        (
            Stage::JoinAfterPreview {
                group_jid,
                requires_approval,
            },
            _,
        ) => Ok(join_data(
            Some(&group_jid),
            if requires_approval {
                "pending_approval"
            } else {
                "joined"
            },
        )),
        (_, Op::Preview { .. }) => Preview::from_whatsmeow(&value).map(|p| p.data()),
        (_, Op::Leave { group_jid }) => Ok(json!({ "group_jid": group_jid, "status": "left" })),
        (_, Op::ResetInvite { .. }) => text(&value, "InviteLink")
            .ok_or_else(unknown_shape)
            .and_then(reset_data),
        // `{"Groups": [whatsmeow GroupInfo…]}`; `null` when the account is in none.
        (_, Op::MembershipCheck { group_jid }) => match field(&value, "Groups") {
            Some(Value::Null) => Ok(membership(false)),
            Some(Value::Array(groups)) => Ok(membership(groups.iter().any(|g| {
                text(g, "JID").and_then(super::shape::group_jid).as_ref() == Some(group_jid)
            }))),
            _ => Err(unknown_shape()),
        },
        (_, Op::SessionStatus) => connected(&value)
            .map(|c| super::shape::with_account(json!({ "connected": c }), &[text(&value, "jid")]))
            .ok_or_else(unknown_shape),
        _ => Err(unknown_shape()),
    })
}

/// Connected and logged in, both; `None` when the answer has neither field.
fn connected(status: &Value) -> Option<bool> {
    let connected = flag(status, "Connected")?;
    Some(connected && flag(status, "LoggedIn").unwrap_or(connected))
}

enum Failure {
    /// `{"code":500,"success":true}`: a failure that says nothing.
    Silent,
    Text(String),
    CredentialRejected,
    Unusable,
}

impl Failure {
    fn into_error(self, op: &Op, answer: &Answer) -> ApiError {
        match self {
            Self::Text(text) => match classify_text(&text) {
                Some(condition) => condition_failure(op, condition, answer.retry_after_s),
                None => unusable(answer.status),
            },
            Self::CredentialRejected => credential_rejected(answer.status),
            Self::Silent | Self::Unusable => unusable(answer.status),
        }
    }
}

/// The `data` of a successful answer, or what its failure says.
fn data(answer: &Answer) -> Result<Value, Failure> {
    if answer.status == 401 {
        return Err(Failure::CredentialRejected);
    }
    let body = answer
        .json()
        .filter(Value::is_object)
        .ok_or(Failure::Unusable)?;
    if answer.is_success() && flag(&body, "success") == Some(true) {
        return field(&body, "data").cloned().ok_or(Failure::Unusable);
    }
    match error_text(&body) {
        Some(text) => Err(Failure::Text(text)),
        None if answer.status == 500 => Err(Failure::Silent),
        None => Err(Failure::Unusable),
    }
}

// ---- Section 14: inbound events ----

/// Header of wuzapi's signature: hex HMAC-SHA256 of `json.Marshal(body)` in JSON mode, or of
/// the form's `url.Values.Encode()` in form mode, keyed with the configured HMAC key string's
/// bytes (`helpers.go` L296-333, L564-580; server-events.md §3.3). This checks the raw body
/// posted: that those signed bytes are exactly the posted bytes is read from the notes, not
/// from a capture (**unverified** byte for byte).
pub const EVENTS_SIGNATURE_HEADER: &str = "x-hmac-signature";

/// Whether `x-hmac-signature` is the hex HMAC-SHA256 of `body` keyed with the whole `secret`
/// string. Constant time; a missing header fails.
pub fn verify_signature(secret: &str, body: &[u8], header: Option<&str>) -> bool {
    header.is_some_and(|hex| super::events::verify_hex_sha256(secret.as_bytes(), body, hex))
}

/// The own account's membership events in one wuzapi webhook (server-events.md §3.2,
/// `wmiau.go` L654-660, L1763-1770; `helpers.go` L243-330): `{"type", "event", "userID",
/// "instanceName"}` as JSON (`WEBHOOK_FORMAT=json`), or by default
/// `application/x-www-form-urlencoded` with the `{"event","type"}` JSON in the `jsonData`
/// field. A body is read as a form when `content_type` says so, or when it is no JSON object.
/// `event` is whatsmeow's struct (Go field names):
/// - `JoinedGroup` (always the own account): joined `event.JID`;
/// - `GroupInfo` with the own account in `event.Leave`: left `event.JID`; reason `left` when
///   `event.Sender`/`SenderPN` is the own account, `removed` when someone else, else unknown
///   (whatsmeow fills `Leave` from `<remove>`; a self-leave's sender is **unverified**).
///
/// The payload does not name the own account: `own` (its phone JID and LID) comes from the
/// caller.
pub fn read_events(
    body: &[u8],
    content_type: Option<&str>,
    own: &super::events::Own,
) -> Result<Vec<super::events::MembershipEvent>, ApiError> {
    use super::events::MembershipEvent::{Joined, Left};
    use super::events::{
        any_own, group_field, json_object, not_an_event, object_field, reason_by_actor,
    };
    let form = content_type.is_some_and(|t| {
        t.trim()
            .to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    });
    let message = if form || json_object(body).is_err() {
        let json = form_urlencoded::parse(body)
            .find(|(name, _)| name == "jsonData")
            .map(|(_, value)| value.into_owned())
            .ok_or_else(|| not_an_event("no `jsonData` form field"))?;
        json_object(json.as_bytes())?
    } else {
        json_object(body)?
    };
    let kind = text(&message, "type").ok_or_else(|| not_an_event("no `type`"))?;
    let event = || object_field(&message, "event");
    Ok(match kind {
        "JoinedGroup" => vec![Joined {
            group_jid: group_field(event()?, "JID")?,
        }],
        "GroupInfo" => {
            let event = event()?;
            let group_jid = group_field(event, "JID")?;
            if any_own(field(event, "Leave"), own) {
                let reason =
                    reason_by_actor(&[text(event, "Sender"), text(event, "SenderPN")], own);
                vec![Left { group_jid, reason }]
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

    fn wuzapi() -> Target {
        target(Kind::Wuzapi, None, Some("wuzapi-s1"))
    }

    fn ok(data: &str) -> Transport {
        answer(
            200,
            &format!(r#"{{"code":200,"data":{data},"success":true}}"#),
        )
    }

    const SILENT: &str = r#"{"code":500,"success":true}"#;

    fn preview(approval: bool) -> Transport {
        ok(&format!(
            r#"{{"JID":"{GROUP}","Name":"G","Topic":"T","ParticipantCount":5,"GroupCreated":"2023-11-14T22:13:21Z","IsJoinApprovalRequired":{approval}}}"#
        ))
    }

    #[test]
    fn a_join_previews_then_joins() {
        let joined = ok(r#"{"Details":"Group joined successfully"}"#);
        let (done, sent) = script(&wuzapi(), &join(CODE), vec![preview(false), joined.clone()]);
        assert_eq!(
            outcome(&done),
            Ok(json!({ "group_jid": GROUP, "status": "joined" }))
        );
        assert_eq!(sent[0].path, "/group/inviteinfo");
        assert_eq!(sent[1].path, "/group/join");
        assert_eq!(
            sent[1].body.as_deref(),
            Some(format!(r#"{{"Code":"{CODE}"}}"#).as_str())
        );
        assert_eq!(sent[1].headers, vec![("token", "wuzapi-s1".to_string())]);
        let (done, _) = script(&wuzapi(), &join(CODE), vec![preview(true), joined]);
        assert_eq!(
            outcome(&done).map(|d| d["status"].clone()),
            Ok(json!("pending_approval"))
        );
    }

    #[test]
    fn a_silent_failure_asks_the_status_route() {
        use ErrorCode::*;
        let down = ok(r#"{"Connected":false,"LoggedIn":false}"#);
        let up = ok(r#"{"Connected":true,"LoggedIn":true}"#);
        let (done, sent) = script(&wuzapi(), &join(CODE), vec![answer(500, SILENT), down]);
        assert_eq!(outcome(&done), Err((SessionNotConnected, None)));
        assert_eq!(sent[1].path, "/session/status");
        let (done, _) = script(
            &wuzapi(),
            &join(CODE),
            vec![preview(false), answer(500, SILENT), up],
        );
        let error = done.result.err();
        assert_eq!(error.as_ref().map(|e| e.code), Some(BackendError));
        assert_eq!(
            error.map(|e| e.details["backend_status"].clone()),
            Some(json!(500))
        );
    }

    #[test]
    fn other_failures() {
        use ErrorCode::*;
        let leave = Op::Leave {
            group_jid: GROUP.into(),
        };
        for (reply, expected) in [
            (
                answer(500, r#"{"code":500,"error":"no session","success":false}"#),
                SessionNotConnected,
            ),
            (
                answer(
                    401,
                    r#"{"code":401,"error":"unauthorized","success":false}"#,
                ),
                BackendError,
            ),
            (answer(200, "garbage"), BackendError),
            (answer(200, r#"{"code":200,"success":true}"#), BackendError),
        ] {
            let (done, _) = script(&wuzapi(), &leave, vec![reply]);
            assert_eq!(done.result.err().map(|e| e.code), Some(expected));
        }
    }

    #[test]
    fn leave_reset_status_and_keys_in_any_case() {
        let leave = Op::Leave {
            group_jid: GROUP.into(),
        };
        let (done, sent) = script(
            &wuzapi(),
            &leave,
            vec![ok(r#"{"Details":"Group left successfully"}"#)],
        );
        assert_eq!(
            sent[0].body.as_deref(),
            Some(format!(r#"{{"GroupJID":"{GROUP}"}}"#).as_str())
        );
        assert_eq!(
            outcome(&done).map(|d| d["status"].clone()),
            Ok(json!("left"))
        );
        let reset = Op::ResetInvite {
            group_jid: GROUP.into(),
        };
        let (done, sent) = script(
            &wuzapi(),
            &reset,
            vec![ok(&format!(
                r#"{{"InviteLink":"https://chat.whatsapp.com/{CODE}"}}"#
            ))],
        );
        assert_eq!(
            sent[0].path,
            format!("/group/invitelink?groupJID={}&reset=true", pct(GROUP))
        );
        assert_eq!(
            outcome(&done).map(|d| d["invite_code"].clone()),
            Ok(json!(CODE))
        );
        let no_session = answer(500, r#"{"code":500,"error":"no session","success":false}"#);
        let (done, _) = script(&wuzapi(), &Op::SessionStatus, vec![no_session]);
        assert_eq!(outcome(&done), Ok(json!({ "connected": false })));
        let (done, _) = script(
            &wuzapi(),
            &Op::SessionStatus,
            vec![ok(r#"{"connected":true,"loggedIn":false}"#)],
        );
        assert_eq!(outcome(&done), Ok(json!({ "connected": false })));
        // The account's JID is kept for reading its events (they never name it).
        let (done, _) = script(
            &wuzapi(),
            &Op::SessionStatus,
            vec![ok(
                r#"{"connected":true,"loggedIn":true,"jid":"15550001111:3@s.whatsapp.net"}"#,
            )],
        );
        let account = json!({ "connected": true, "account": ["15550001111:3@s.whatsapp.net"] });
        assert_eq!(outcome(&done), Ok(account));
    }

    #[test]
    fn a_membership_check_looks_for_the_group_in_the_list() {
        use ErrorCode::*;
        let op = Op::MembershipCheck {
            group_jid: GROUP.into(),
        };
        let other = r#"{"JID":"120363000000000009@g.us","Name":"Other"}"#;
        for (reply, expected) in [
            (
                ok(&format!(
                    r#"{{"Groups":[{other},{{"JID":"{GROUP}","Name":"G"}}]}}"#
                )),
                Ok(json!({ "member": true })),
            ),
            (
                ok(&format!(r#"{{"groups":[{{"jid":"{GROUP}"}}]}}"#)),
                Ok(json!({ "member": true })),
            ),
            (
                ok(&format!(r#"{{"Groups":[{other}]}}"#)),
                Ok(json!({ "member": false })),
            ),
            // A nil Go slice: the account is in no group.
            (ok(r#"{"Groups":null}"#), Ok(json!({ "member": false }))),
            (ok(r#"{"Groups":[]}"#), Ok(json!({ "member": false }))),
            (ok("{}"), Err((BackendError, None))),
            (
                answer(500, r#"{"code":500,"error":"no session","success":false}"#),
                Err((SessionNotConnected, None)),
            ),
        ] {
            let label = format!("{reply:?}");
            let (done, sent) = script(&wuzapi(), &op, vec![reply]);
            assert_eq!(outcome(&done), expected, "{label}");
            assert_eq!(sent.len(), 1);
            assert_eq!(sent[0].method, "GET");
            assert_eq!(sent[0].path, "/group/list");
            assert_eq!(sent[0].body, None);
            assert_eq!(sent[0].headers, vec![("token", "wuzapi-s1".to_string())]);
        }
        // A text-less failure is never "not a member": the status route decides.
        let down = ok(r#"{"connected":false,"loggedIn":false}"#);
        let up = ok(r#"{"connected":true,"loggedIn":true}"#);
        for (status, expected) in [(down, SessionNotConnected), (up, BackendError)] {
            let (done, sent) = script(&wuzapi(), &op, vec![answer(500, SILENT), status]);
            assert_eq!(outcome(&done), Err((expected, None)));
            assert_eq!(sent[1].path, "/session/status");
        }
    }
}
