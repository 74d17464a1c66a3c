//! Kind `evolution`: Evolution API v2 (Baileys underneath). Auth `apikey`; paths
//! `/{group|instance}/{action}/{instance}`. A pending membership request is a join answer
//! without `groupJid`; the group is then taken from a preview. Errors keep only WhatsApp's
//! text (`Error: not-authorized`), never the number.

use serde_json::{json, Value};

use super::shape::{
    credential_rejected, field, join_data, membership, pct, reset_data, session_unknown, text,
    unknown_shape, unusable, Preview,
};
use super::whatsapp::{
    classify_text, condition_failure, failure, is_already_member, is_not_member, Condition,
};
use super::{not_implemented, Answer, Kind, Op, Stage, Step, Target, Transport};
use crate::core::error::{ApiError, ErrorCode};

/// Evolution checks invite codes against `^[a-zA-Z0-9]{22}$`: other lengths never reach
/// WhatsApp there, so they are refused at the edge instead of as a backend error.
pub fn check_input(op: &Op) -> Result<(), ApiError> {
    match op {
        Op::Join { code } | Op::Preview { code } if code.len() != 22 => Err(ApiError::invalid(
            "invite",
            "this session's backend (evolution) takes only 22-character invite codes",
        )),
        _ => Ok(()),
    }
}

fn instance(target: &Target) -> String {
    pct(target.remote_session.as_deref().unwrap_or_default())
}

fn preview_request(target: &Target, code: &str, stage: Stage) -> Step {
    let path = format!(
        "/group/inviteInfo/{}?inviteCode={}",
        instance(target),
        pct(code)
    );
    target.send("GET", path, None, stage)
}

pub fn start(target: &Target, op: &Op) -> Step {
    let i = instance(target);
    match op {
        Op::Join { code } => target.send(
            "GET",
            format!("/group/acceptInviteCode/{i}?inviteCode={}", pct(code)),
            None,
            Stage::Main,
        ),
        Op::Preview { code } => preview_request(target, code, Stage::Main),
        Op::Leave { group_jid } => target.send(
            "DELETE",
            format!("/group/leaveGroup/{i}?groupJid={}", pct(group_jid)),
            None,
            Stage::Main,
        ),
        Op::ResetInvite { group_jid } => target.send(
            "POST",
            format!("/group/revokeInviteCode/{i}?groupJid={}", pct(group_jid)),
            None,
            Stage::Main,
        ),
        Op::SessionStatus => target.send(
            "GET",
            format!("/instance/connectionState/{i}"),
            None,
            Stage::Main,
        ),
        Op::MembershipCheck { group_jid } => target.send(
            "GET",
            format!("/group/findGroupInfos/{i}?groupJid={}", pct(group_jid)),
            None,
            Stage::Main,
        ),
        Op::JoinByMessage { .. }
        | Op::ListJoinRequests { .. }
        | Op::JoinRequestAction { .. }
        | Op::RestrictionStatus => Step::Done(Err(not_implemented(Kind::Evolution, op))),
    }
}

pub fn resume(target: &Target, op: &Op, stage: Stage, outcome: Transport) -> Step {
    if let Stage::StatusAfterSilentFailure { .. } = stage {
        // A preview failed without its cause: a closed connection, or WhatsApp's refusal.
        let answer = match outcome.answer() {
            Ok(answer) => answer,
            Err(error) => return Step::Done(Err(error)),
        };
        let state = answer
            .json()
            .filter(|_| answer.is_success())
            .and_then(|v| field(&v, "instance").map(|i| text(i, "state").map(str::to_owned)));
        return Step::Done(Err(match state {
            Some(Some(open)) if open == "open" => no_invite_info(),
            Some(_) => ApiError::new(ErrorCode::SessionNotConnected),
            None => unusable(answer.status),
        }));
    }
    if let Stage::PreviewForGroup { status } = stage {
        // The join is done; only its group is missing. Without a preview it stays missing.
        let group = outcome
            .answer()
            .ok()
            .filter(Answer::is_success)
            .and_then(|a| a.json())
            .and_then(|v| Preview::from_baileys(&v).ok())
            .map(|p| p.group_jid);
        return Step::Done(Ok(join_data(group.as_deref(), status)));
    }
    let answer = match outcome.answer() {
        Ok(answer) => answer,
        Err(error) => return Step::Done(Err(error)),
    };
    let code = match op {
        Op::Join { code } => code.as_str(),
        _ => "",
    };
    if !answer.is_success() {
        return match failure_of(&answer) {
            Failure::WhatsApp(wa) if is_already_member(op, wa) => preview_request(
                target,
                code,
                Stage::PreviewForGroup {
                    status: "already_member",
                },
            ),
            // `["Error fetching group","Error: forbidden"]`: not a participant.
            Failure::WhatsApp(wa) if is_not_member(op, wa) => Step::Done(Ok(membership(false))),
            // Without its cause, only the state route tells a closed connection apart.
            Failure::NoInviteInfo => target.send(
                "GET",
                format!("/instance/connectionState/{}", instance(target)),
                None,
                Stage::StatusAfterSilentFailure {
                    backend_status: answer.status,
                },
            ),
            other => Step::Done(Err(other.into_error(op, &answer))),
        };
    }
    let Some(value) = answer.json() else {
        return Step::Done(Err(unknown_shape()));
    };
    match op {
        Op::Join { .. } => {
            if field(&value, "accepted").and_then(Value::as_bool) != Some(true) {
                return Step::Done(Err(unknown_shape()));
            }
            match text(&value, "groupJid").and_then(super::shape::group_jid) {
                Some(jid) => Step::Done(Ok(join_data(Some(&jid), "joined"))),
                // Baileys returns no group for a membership request.
                None => preview_request(
                    target,
                    code,
                    Stage::PreviewForGroup {
                        status: "pending_approval",
                    },
                ),
            }
        }
        Op::Preview { .. } => Step::Done(Preview::from_baileys(&value).map(|p| p.data())),
        Op::MembershipCheck { .. } => Step::Done(
            Some(membership(true))
                .filter(|_| value.is_object())
                .ok_or_else(unknown_shape),
        ),
        Op::Leave { group_jid } => {
            Step::Done(Ok(json!({ "group_jid": group_jid, "status": "left" })))
        }
        Op::ResetInvite { .. } => Step::Done(
            text(&value, "inviteCode")
                .ok_or_else(unknown_shape)
                .and_then(reset_data),
        ),
        // An instance that is not loaded has no `state`: not connected either.
        Op::SessionStatus => Step::Done(
            field(&value, "instance")
                .filter(|i| i.is_object())
                .map(|i| json!({ "connected": text(i, "state") == Some("open") }))
                .ok_or_else(unknown_shape),
        ),
        _ => Step::Done(Err(unknown_shape())),
    }
}

/// Evolution drops the cause of a failed preview (unknown, revoked, deleted, rate limited):
/// an answer that says nothing usable.
fn no_invite_info() -> ApiError {
    unusable(404)
        .with_message(
            "WhatsApp gave no invite info for this code, and Evolution API does not say why.",
        )
        .with_detail("reason", "no_invite_info")
}

enum Failure {
    WhatsApp(i64),
    Condition(Condition),
    UnknownInstance,
    NoInviteInfo,
    CredentialRejected,
    Unusable,
}

impl Failure {
    fn into_error(self, op: &Op, answer: &Answer) -> ApiError {
        match self {
            Self::WhatsApp(code) => failure(op, code, answer.retry_after_s),
            Self::Condition(condition) => condition_failure(op, condition, answer.retry_after_s),
            Self::UnknownInstance => session_unknown(),
            Self::NoInviteInfo => no_invite_info(),
            Self::CredentialRejected => credential_rejected(answer.status),
            Self::Unusable => unusable(answer.status),
        }
    }
}

/// `{"status":n,"error":"…","response":{"message":["<what failed>","Error: <WhatsApp text>"]}}`.
fn failure_of(answer: &Answer) -> Failure {
    if answer.status == 401 {
        return Failure::CredentialRejected;
    }
    let body = answer.json().unwrap_or(Value::Null);
    let messages: Vec<String> = match field(&body, "response").and_then(|r| field(r, "message")) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    };
    for message in &messages {
        if message.contains("instance does not exist") {
            return Failure::UnknownInstance;
        }
        if let Some(rest) = message.strip_prefix("Error: ") {
            return match classify_text(rest) {
                Some(Condition::WhatsApp(code)) => Failure::WhatsApp(code),
                Some(condition) => Failure::Condition(condition),
                None => Failure::Unusable,
            };
        }
    }
    if messages.first().is_some_and(|m| m == "No invite info") {
        return Failure::NoInviteInfo;
    }
    Failure::Unusable
}

// ---- Section 14: inbound events ----

/// Evolution API signs nothing (server-events.md §2.4, `webhook.controller.ts` L77-85,
/// L285-303: optional static headers or a JWT not bound to the body); the hook token in the
/// URL is the check. Always true.
pub fn verify_signature(_secret: &str, _body: &[u8]) -> bool {
    true
}

/// The own account's membership events in one Evolution API webhook
/// (`{event, instance, data, sender, …}`, `webhook.controller.ts` L92-101; server-events.md
/// §2.2-2.3). `event` is Baileys' name (`groups.upsert`) or the subscription's
/// (`GROUPS_UPSERT`); both are read.
/// - `groups.upsert`: joined every `data[].id` (Baileys emits it only for the own account's
///   `<create>`: own join, add or create);
/// - `group-participants.update` with `action: "remove"` naming the own account in
///   `data.participants` (strings, or Baileys v7 objects `{id, phoneNumber, lid}`): left
///   `data.id`; reason `left` when the actor (`author`/`authorPn`) is the own account,
///   `removed` when it is someone else, else unknown.
///
/// The own account is `sender` (its phone JID) plus `own` from the caller (its LID is not in
/// the webhook).
pub fn read_events(
    body: &[u8],
    own: &super::events::Own,
) -> Result<Vec<super::events::MembershipEvent>, ApiError> {
    use super::events::MembershipEvent::{Joined, Left};
    use super::events::{any_own, group_field, named_event, not_an_event, reason_by_actor};
    let (envelope, event) = named_event(body)?;
    let event = event.replace(['.', '-'], "_").to_ascii_uppercase();
    let own = own.with([text(&envelope, "sender")]);
    let data = envelope
        .get("data")
        .ok_or_else(|| not_an_event("no `data`"));
    Ok(match event.as_str() {
        "GROUPS_UPSERT" => {
            let data = data?;
            let groups: Vec<&Value> = match data {
                Value::Array(items) => items.iter().collect(),
                Value::Object(_) => vec![data],
                _ => return Err(not_an_event("`data` is no list of groups")),
            };
            groups
                .into_iter()
                .map(|group| group_field(group, "id").map(|group_jid| Joined { group_jid }))
                .collect::<Result<_, _>>()?
        }
        "GROUP_PARTICIPANTS_UPDATE" => {
            let data = data?;
            let group_jid = group_field(data, "id")?;
            if text(data, "action") == Some("remove") && any_own(data.get("participants"), &own) {
                let reason = reason_by_actor(&[text(data, "author"), text(data, "authorPn")], &own);
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

    fn evolution() -> Target {
        target(Kind::Evolution, Some("inst"), Some("evolution-key"))
    }

    fn evo_error(status: u16, what: &str, text: &str) -> Transport {
        answer(
            status,
            &format!(
                r#"{{"status":{status},"error":"Not Found","response":{{"message":["{what}","{text}"]}}}}"#
            ),
        )
    }

    const PREVIEW: &str = r#"{"id":"120363000000000002@g.us","subject":"Approval","desc":"D","size":48,"creation":1700000002,"joinApprovalMode":true}"#;

    #[test]
    fn joins_and_pending_requests() {
        let (done, sent) = script(
            &evolution(),
            &join(CODE),
            vec![answer(
                200,
                &format!(r#"{{"accepted":true,"groupJid":"{GROUP}"}}"#),
            )],
        );
        assert_eq!(
            outcome(&done),
            Ok(json!({ "group_jid": GROUP, "status": "joined" }))
        );
        assert_eq!(sent[0].method, "GET");
        assert_eq!(
            sent[0].path,
            format!("/group/acceptInviteCode/inst?inviteCode={CODE}")
        );
        assert_eq!(
            sent[0].headers,
            vec![("apikey", "evolution-key".to_string())]
        );
        // No groupJid: a membership request; the group comes from a preview.
        let (done, sent) = script(
            &evolution(),
            &join(CODE),
            vec![answer(200, r#"{"accepted":true}"#), answer(200, PREVIEW)],
        );
        assert_eq!(
            outcome(&done),
            Ok(json!({ "group_jid": "120363000000000002@g.us", "status": "pending_approval" }))
        );
        assert_eq!(
            sent[1].path,
            format!("/group/inviteInfo/inst?inviteCode={CODE}")
        );
        // Conflict: already a member.
        let (done, _) = script(
            &evolution(),
            &join(CODE),
            vec![
                evo_error(404, "Accept invite error", "Error: conflict"),
                answer(200, PREVIEW),
            ],
        );
        assert_eq!(
            outcome(&done).map(|d| d["status"].clone()),
            Ok(json!("already_member"))
        );
    }

    #[test]
    fn errors_keep_only_the_text() {
        use ErrorCode::*;
        for (reply, expected) in [
            (
                evo_error(404, "Accept invite error", "Error: not-authorized"),
                Err((JoinNotAllowed, Some(401))),
            ),
            (
                evo_error(404, "Accept invite error", "Error: gone"),
                Err((InviteRevoked, Some(410))),
            ),
            (
                evo_error(404, "Accept invite error", "Error: resource-limit"),
                Err((GroupFull, Some(419))),
            ),
            (
                evo_error(404, "Accept invite error", "Error: rate-overlimit"),
                Err((UpstreamRateLimited, Some(429))),
            ),
            (
                evo_error(404, "Accept invite error", "Error: Connection Closed"),
                Err((SessionNotConnected, None)),
            ),
            (
                answer(
                    404,
                    r#"{"status":404,"error":"Not Found","response":{"message":["The \"inst\" instance does not exist"]}}"#,
                ),
                Err((SessionNotConnected, None)),
            ),
            (
                answer(
                    401,
                    r#"{"status":401,"error":"Unauthorized","response":{"message":"Unauthorized"}}"#,
                ),
                Err((BackendError, None)),
            ),
            (
                answer(
                    500,
                    r#"{"status":500,"error":"Internal Server Error","response":{"message":["TypeError: Cannot read properties of undefined"]}}"#,
                ),
                Err((BackendError, None)),
            ),
        ] {
            let (done, _) = script(&evolution(), &join(CODE), vec![reply]);
            assert_eq!(outcome(&done), expected);
        }
        let preview = Op::Preview { code: CODE.into() };
        let state = |s: &str| {
            answer(
                200,
                &format!(r#"{{"instance":{{"instanceName":"inst","state":"{s}"}}}}"#),
            )
        };
        let failed = || evo_error(404, "No invite info", CODE);
        let (done, sent) = script(&evolution(), &preview, vec![failed(), state("open")]);
        assert_eq!(sent[1].path, "/instance/connectionState/inst");
        let error = done.result.err();
        assert_eq!(error.as_ref().map(|e| e.code), Some(BackendError));
        // The code the server echoes never reaches the answer.
        assert!(!format!("{error:?}").contains(CODE));
        // Without its cause, a closed connection is told by the state route.
        let (done, _) = script(&evolution(), &preview, vec![failed(), state("close")]);
        assert_eq!(outcome(&done), Err((SessionNotConnected, None)));
        // The state request failing on its transport ends the call with that failure.
        let (done, _) = script(
            &evolution(),
            &preview,
            vec![failed(), Transport::TimedOut { timeout_ms: 5 }],
        );
        assert_eq!(outcome(&done), Err((BackendTimeout, None)));
        assert!(done.transport_failed && done.reached);
    }

    #[test]
    fn only_22_character_codes_are_sent() {
        let short = join("AbCdEfGhIjKlMnOp");
        assert_eq!(
            check_input(&short).err().map(|e| e.code),
            Some(ErrorCode::ValidationError)
        );
        let (done, sent) = script(&evolution(), &short, vec![]);
        assert!(sent.is_empty());
        assert!(done.result.is_err());
    }

    #[test]
    fn leave_reset_and_status() {
        let leave = Op::Leave {
            group_jid: GROUP.into(),
        };
        let (done, sent) = script(
            &evolution(),
            &leave,
            vec![answer(
                200,
                &format!(r#"{{"groupJid":"{GROUP}","leave":true}}"#),
            )],
        );
        assert_eq!(sent[0].method, "DELETE");
        assert_eq!(
            sent[0].path,
            format!("/group/leaveGroup/inst?groupJid={}", pct(GROUP))
        );
        assert_eq!(
            outcome(&done),
            Ok(json!({ "group_jid": GROUP, "status": "left" }))
        );
        let (done, _) = script(
            &evolution(),
            &leave,
            vec![evo_error(
                400,
                "Unable to leave the group",
                "Error: forbidden",
            )],
        );
        assert_eq!(outcome(&done), Err((ErrorCode::NotInGroup, Some(403))));
        let reset = Op::ResetInvite {
            group_jid: GROUP.into(),
        };
        let (done, _) = script(
            &evolution(),
            &reset,
            vec![answer(
                201,
                &format!(r#"{{"revoked":true,"inviteCode":"{CODE}"}}"#),
            )],
        );
        assert_eq!(
            outcome(&done).map(|d| d["invite_code"].clone()),
            Ok(json!(CODE))
        );
        // An instance that is not loaded answers without a state.
        let (done, _) = script(
            &evolution(),
            &Op::SessionStatus,
            vec![answer(200, r#"{"instance":{"instanceName":"inst"}}"#)],
        );
        assert_eq!(outcome(&done), Ok(json!({ "connected": false })));
        for (state, connected) in [("open", true), ("connecting", false), ("close", false)] {
            let body = format!(r#"{{"instance":{{"instanceName":"inst","state":"{state}"}}}}"#);
            let (done, _) = script(&evolution(), &Op::SessionStatus, vec![answer(200, &body)]);
            assert_eq!(outcome(&done), Ok(json!({ "connected": connected })));
        }
    }

    #[test]
    fn a_membership_check_reads_find_group_infos() {
        use ErrorCode::*;
        let op = Op::MembershipCheck {
            group_jid: GROUP.into(),
        };
        let group = format!(
            r#"{{"id":"{GROUP}","subject":"G","size":3,"participants":[{{"id":"1@s.whatsapp.net","admin":null}}]}}"#
        );
        let fetching = |text: &str| evo_error(404, "Error fetching group", text);
        for (reply, expected) in [
            (answer(200, &group), Ok(json!({ "member": true }))),
            (fetching("Error: forbidden"), Ok(json!({ "member": false }))),
            (
                fetching("Error: item-not-found"),
                Ok(json!({ "member": false })),
            ),
            (
                fetching("Error: Connection Closed"),
                Err((SessionNotConnected, None)),
            ),
            (
                answer(
                    404,
                    r#"{"status":404,"error":"Not Found","response":{"message":["The \"inst\" instance does not exist"]}}"#,
                ),
                Err((SessionNotConnected, None)),
            ),
            (fetching("Error: Timed Out"), Err((BackendTimeout, None))),
            (
                fetching("Error: rate-overlimit"),
                Err((UpstreamRateLimited, Some(429))),
            ),
            (
                fetching("Error: not-authorized"),
                Err((BackendError, Some(401))),
            ),
            (
                fetching("TypeError: Cannot read properties of undefined"),
                Err((BackendError, None)),
            ),
            (answer(200, "null"), Err((BackendError, None))),
            (
                answer(
                    401,
                    r#"{"status":401,"error":"Unauthorized","response":{"message":"Unauthorized"}}"#,
                ),
                Err((BackendError, None)),
            ),
        ] {
            let label = format!("{reply:?}");
            let (done, sent) = script(&evolution(), &op, vec![reply]);
            assert_eq!(outcome(&done), expected, "{label}");
            assert_eq!(sent.len(), 1);
            assert_eq!(sent[0].method, "GET");
            assert_eq!(
                sent[0].path,
                format!("/group/findGroupInfos/inst?groupJid={}", pct(GROUP))
            );
        }
    }
}
