//! Section 14's inbound server events: the shared type the per-kind readers answer
//! (`read_events` in `waha.rs`, `evolution.rs`, `wuzapi.rs`, `gowa.rs`, `joingate.rs`), the
//! own-account match, and the constant-time signature checks they share.
//!
//! A reader is pure: a body (and, where a kind needs it, its content type) in, the own
//! account's membership events out. Events about other participants are dropped; an event
//! type joingate does not use reads as no events; a body that is not the kind's event is a
//! `validation_error`. The events' payloads were read from the servers' source, as
//! summarised in `shared/notes/server-events.md`.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::shape::{group_jid, text};
use crate::core::error::ApiError;
use crate::core::webhooks;

/// Why the own account is no longer in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// The account left by its own action.
    Left,
    /// Someone else (an admin) removed it.
    Removed,
    /// The server does not say which.
    Unknown,
}

/// A membership change of the own account, as read from one server event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipEvent {
    /// The own account joined, was added to, or created the group.
    Joined { group_jid: String },
    /// The own account is no longer in the group.
    Left {
        group_jid: String,
        reason: LeaveReason,
    },
}

/// The own account's identities: phone JIDs (`…@s.whatsapp.net`, `…@c.us`, with or without a
/// device part), LIDs (`…@lid`) or bare phone numbers. Two ids match when their user part
/// (without device) and their namespace (phone or LID) are equal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Own {
    keys: Vec<(bool, String)>,
}

impl Own {
    pub fn new(ids: &[&str]) -> Self {
        let mut own = Self::default();
        for id in ids {
            own.add(id);
        }
        own
    }

    /// Adds an identity; text that is no user JID or phone number is ignored.
    pub fn add(&mut self, id: &str) {
        if let Some(key) = user_key(id) {
            if !self.keys.contains(&key) {
                self.keys.push(key);
            }
        }
    }

    pub fn matches(&self, id: &str) -> bool {
        user_key(id).is_some_and(|key| self.keys.contains(&key))
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// These identities and the ones an event's envelope names (absent ones skipped).
    pub(crate) fn with<'a>(&self, ids: impl IntoIterator<Item = Option<&'a str>>) -> Self {
        let mut own = self.clone();
        for id in ids.into_iter().flatten() {
            own.add(id);
        }
        own
    }
}

/// `(is_lid, user digits)` of a user JID or phone number; `None` for groups and anything else.
fn user_key(id: &str) -> Option<(bool, String)> {
    let id = id.trim();
    let (user, server) = id.split_once('@').unwrap_or((id, "s.whatsapp.net"));
    let lid = match server {
        "s.whatsapp.net" | "c.us" => false,
        "lid" => true,
        _ => return None,
    };
    let user = user.trim_start_matches('+');
    let user = user.split(':').next().unwrap_or(user);
    (!user.is_empty() && user.bytes().all(|b| b.is_ascii_digit())).then(|| (lid, user.to_string()))
}

/// A `validation_error` for a body that is not the kind's event.
pub(crate) fn not_an_event(reason: &str) -> ApiError {
    ApiError::invalid("body", reason.to_string())
}

/// The body as a JSON object.
pub(crate) fn json_object(body: &[u8]) -> Result<Value, ApiError> {
    match crate::core::json::parse_bytes(body) {
        Some(value) if value.is_object() => Ok(value),
        _ => Err(not_an_event("not a JSON object")),
    }
}

/// A webhook body that names its event in `event` (WAHA, Evolution, GOWA): the body and
/// the event's name.
pub(crate) fn named_event(body: &[u8]) -> Result<(Value, String), ApiError> {
    let envelope = json_object(body)?;
    let event = super::shape::text(&envelope, "event")
        .ok_or_else(|| not_an_event("no `event`"))?
        .to_string();
    Ok((envelope, event))
}

/// `value[name]` when it is an object, else `validation_error`.
pub(crate) fn object_field<'a>(value: &'a Value, name: &str) -> Result<&'a Value, ApiError> {
    value
        .get(name)
        .filter(|v| v.is_object())
        .ok_or_else(|| not_an_event(&format!("no `{name}`")))
}

/// A group JID in the contract's form from `value[name]`, else `validation_error`.
pub(crate) fn group_field(value: &Value, name: &str) -> Result<String, ApiError> {
    text(value, name)
        .and_then(group_jid)
        .ok_or_else(|| not_an_event(&format!("no group JID in `{name}`")))
}

/// The ids of a participant, a JID string or an object (`id`, `pn`, `phoneNumber`, `lid`,
/// `jid`, `JID`, `PhoneNumber`, `LID`).
pub(crate) fn participant_ids(value: &Value) -> Vec<&str> {
    match value {
        Value::String(s) => vec![s.as_str()],
        Value::Object(_) => ["id", "pn", "phoneNumber", "lid", "jid"]
            .iter()
            .filter_map(|name| text(value, name))
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether any participant of a JSON array is the own account.
pub(crate) fn any_own(list: Option<&Value>, own: &Own) -> bool {
    list.and_then(Value::as_array).is_some_and(|items| {
        items
            .iter()
            .any(|item| participant_ids(item).iter().any(|id| own.matches(id)))
    })
}

/// The reason of a removal from its actor: the own account itself is a leave, someone else a
/// removal, no actor unknown.
pub(crate) fn reason_by_actor(actors: &[Option<&str>], own: &Own) -> LeaveReason {
    let actors: Vec<&str> = actors
        .iter()
        .flatten()
        .copied()
        .filter(|a| !a.trim().is_empty())
        .collect();
    if actors.is_empty() {
        LeaveReason::Unknown
    } else if actors.iter().any(|a| own.matches(a)) {
        LeaveReason::Left
    } else {
        LeaveReason::Removed
    }
}

pub(crate) fn hex_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// Constant time: hex HMAC-SHA256 of `body` keyed with `key`.
pub(crate) fn verify_hex_sha256(key: &[u8], body: &[u8], hex: &str) -> bool {
    let (Some(tag), Ok(mut mac)) = (hex_decode(hex), Hmac::<Sha256>::new_from_slice(key)) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}

/// Standard Webhooks tolerance (contract section 14): 5 minutes either way.
pub const TOLERANCE_S: i64 = 300;

/// Standard Webhooks (contract section 11): `webhook-signature` holds space-separated
/// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` entries, keyed with the base64-decoded
/// part of the `whsec_` secret ([`webhooks::secret_key`]); the same message
/// [`webhooks::signature`] signs. Any one `v1` entry verifying (constant time) is enough; a
/// timestamp more than [`TOLERANCE_S`] from `now_s` fails.
pub(crate) fn verify_standard(
    secret: &str,
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now_s: i64,
) -> bool {
    let Some(key) = webhooks::secret_key(secret) else {
        return false;
    };
    let Ok(timestamp_s) = timestamp.trim().parse::<i64>() else {
        return false;
    };
    if id.is_empty() || now_s.abs_diff(timestamp_s) > TOLERANCE_S.unsigned_abs() {
        return false;
    }
    let Ok(body) = std::str::from_utf8(body) else {
        return false;
    };
    let signed = format!("{id}.{timestamp_s}.{body}");
    signatures.split_whitespace().any(|entry| {
        let Some(tag) = entry
            .strip_prefix("v1,")
            .and_then(crate::core::base64::decode)
        else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key) else {
            return false;
        };
        mac.update(signed.as_bytes());
        mac.verify_slice(&tag).is_ok()
    })
}

/// A signature check's outcome: decided here, or an HMAC-SHA512 for the runtime to verify
/// (WAHA's; the contract allows WebCrypto as well as RustCrypto for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Checked(bool),
    HmacSha512 { key: Vec<u8>, tag: Vec<u8> },
}

/// Whether a server event's signature verifies, as `kind` signs (contract section 14's
/// table); `header` gives a request header by name. Evolution signs nothing: its hook token
/// is the only credential.
pub fn verify(
    kind: super::Kind,
    secret: &str,
    body: &[u8],
    header: &dyn Fn(&str) -> Option<String>,
    now_s: i64,
) -> Verdict {
    use super::{evolution, gowa, joingate, waha, wuzapi, Kind};
    Verdict::Checked(match kind {
        Kind::Waha => return waha::verify_signature(secret, header("X-Webhook-Hmac").as_deref()),
        Kind::Evolution => evolution::verify_signature(secret, body),
        Kind::Wuzapi => {
            wuzapi::verify_signature(secret, body, header("x-hmac-signature").as_deref())
        }
        Kind::Gowa => {
            gowa::verify_signature(secret, body, header("X-Hub-Signature-256").as_deref())
        }
        Kind::Joingate => joingate::verify_signature(
            secret,
            body,
            header("webhook-id").as_deref(),
            header("webhook-timestamp").as_deref(),
            header("webhook-signature").as_deref(),
            now_s,
        ),
    })
}

/// The own account's membership events in one server event of `kind`, in that kind's
/// dialect.
pub fn read(
    kind: super::Kind,
    body: &[u8],
    content_type: Option<&str>,
    own: &Own,
) -> Result<Vec<MembershipEvent>, ApiError> {
    use super::{evolution, gowa, joingate, waha, wuzapi, Kind};
    match kind {
        Kind::Waha => waha::read_events(body, own),
        Kind::Evolution => evolution::read_events(body, own),
        Kind::Wuzapi => wuzapi::read_events(body, content_type, own),
        Kind::Gowa => gowa::read_events(body, own),
        Kind::Joingate => joingate::read_events(body),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{evolution, gowa, joingate, waha, wuzapi};
    use super::*;
    use crate::core::error::ErrorCode;
    use serde_json::json;
    use sha2::Sha512;

    const G: &str = "120363025246125486@g.us";
    const ME_PN: &str = "5511987654321@s.whatsapp.net";
    const ME_LID: &str = "98765432109876@lid";
    const OTHER_PN: &str = "4915112345678@s.whatsapp.net";
    const OTHER_LID: &str = "12345678901234@lid";

    fn joined() -> Vec<MembershipEvent> {
        vec![MembershipEvent::Joined {
            group_jid: G.to_string(),
        }]
    }

    fn left(reason: LeaveReason) -> Vec<MembershipEvent> {
        vec![MembershipEvent::Left {
            group_jid: G.to_string(),
            reason,
        }]
    }

    fn bytes(value: &Value) -> Vec<u8> {
        serde_json::to_vec(value).unwrap()
    }

    fn is_validation(result: Result<Vec<MembershipEvent>, ApiError>) -> bool {
        matches!(result, Err(e) if e.code == ErrorCode::ValidationError)
    }

    #[test]
    fn own_matches_by_user_and_namespace() {
        let own = Own::new(&[ME_PN, ME_LID, "not a jid"]);
        assert!(own.matches("5511987654321@c.us"));
        assert!(own.matches("5511987654321:12@s.whatsapp.net"));
        assert!(own.matches("+5511987654321"));
        assert!(own.matches(ME_LID));
        assert!(!own.matches("5511987654321@lid"));
        assert!(!own.matches(OTHER_PN));
        assert!(!own.matches(G));
        assert!(Own::new(&[]).is_empty());
    }

    // ---- WAHA (server-events.md §1.3) ----

    fn waha(event: &str, payload: Value) -> Vec<u8> {
        bytes(&json!({
            "id": "evt_01JABCDEF", "timestamp": 1760000000000u64, "session": "default",
            "engine": "NOWEB", "environment": {"version": "2026.2.1"},
            "me": {"id": "5511987654321@c.us", "lid": ME_LID, "pushName": "x"},
            "event": event, "payload": payload
        }))
    }

    #[test]
    fn waha_reads_its_group_events() {
        let none = Own::default();
        let participants = |kind: &str, ids: Value| {
            waha(
                "group.v2.participants",
                json!({"group": {"id": G}, "type": kind, "timestamp": 1760000000000u64,
                       "participants": ids, "_data": {}}),
            )
        };
        let cases: Vec<(Vec<u8>, Vec<MembershipEvent>)> = vec![
            (
                waha(
                    "group.v2.join",
                    json!({"timestamp": 1760000000000u64, "group": {"id": G, "subject": "s",
                       "participants": [{"id": OTHER_LID, "pn": "4915112345678@c.us", "role": "participant"}],
                       "newMembersApprovalRequired": true}, "_data": {"author": OTHER_LID}}),
                ),
                joined(),
            ),
            (
                waha(
                    "group.v2.leave",
                    json!({"timestamp": 1, "group": {"id": G}, "_data": {}}),
                ),
                left(LeaveReason::Unknown),
            ),
            // The own account by LID (GOWS/NOWEB may miss it in group.v2.leave).
            (
                participants("leave", json!([{"id": ME_LID, "role": "left"}])),
                left(LeaveReason::Unknown),
            ),
            // By phone, in `pn`.
            (
                participants(
                    "leave",
                    json!([{"id": OTHER_LID, "role": "left"}, {"id": "1@lid", "pn": "5511987654321@c.us", "role": "left"}]),
                ),
                left(LeaveReason::Unknown),
            ),
            // Someone else left; the own account was promoted: nothing.
            (
                participants("leave", json!([{"id": OTHER_LID, "role": "left"}])),
                vec![],
            ),
            (
                participants("promote", json!([{"id": ME_LID, "role": "admin"}])),
                vec![],
            ),
            // An event type joingate does not use.
            (waha("message", json!({"id": "x", "body": "hi"})), vec![]),
            (
                waha(
                    "group.v2.update",
                    json!({"group": {"id": G, "invite": "https://chat.whatsapp.com/x"}}),
                ),
                vec![],
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(waha::read_events(&body, &none).unwrap(), expected);
        }
        // Malformed bodies.
        for body in [
            b"not json".to_vec(),
            b"[1,2]".to_vec(),
            bytes(&json!({"payload": {}})),
            waha("group.v2.join", json!({"group": {"id": "not-a-group"}})),
            waha("group.v2.leave", json!({})),
        ] {
            assert!(is_validation(waha::read_events(&body, &none)));
        }
    }

    #[test]
    fn waha_signature_is_hex_hmac_sha512() {
        let body = waha("group.v2.join", json!({"group": {"id": G}}));
        let secret = "whsec_c2VjcmV0LWJ5dGVzLXNlY3JldC1ieXRlcy0zMi0=";
        let mut mac = Hmac::<Sha512>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(&body);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(waha::EVENTS_SIGNATURE_HEADER, "X-Webhook-Hmac");
        // The runtime verifies it (WebCrypto); what it is given is checked here, and that it
        // is WAHA's signature: the tag HMAC-SHA512 gives for this key and body.
        let expected = |key: &[u8], tag: &[u8], body: &[u8]| {
            let mut mac = Hmac::<Sha512>::new_from_slice(key).unwrap();
            mac.update(body);
            mac.verify_slice(tag).is_ok()
        };
        for given in [hex.clone(), hex.to_uppercase()] {
            let Verdict::HmacSha512 { key, tag } = waha::verify_signature(secret, Some(&given))
            else {
                panic!("WAHA's check is an HMAC-SHA512");
            };
            assert_eq!(key, secret.as_bytes());
            assert!(expected(&key, &tag, &body));
            assert!(!expected(b"other", &tag, &body));
            assert!(!expected(&key, &tag, b"{}"));
        }
        let Verdict::HmacSha512 { tag, .. } = waha::verify_signature(secret, Some(&hex[..64]))
        else {
            panic!("a short tag is still handed over");
        };
        assert!(!expected(secret.as_bytes(), &tag, &body));
        assert_eq!(
            waha::verify_signature(secret, Some("zz")),
            Verdict::Checked(false)
        );
        assert_eq!(
            waha::verify_signature(secret, None),
            Verdict::Checked(false)
        );
    }

    // ---- Evolution API (server-events.md §2.3) ----

    fn evolution(event: &str, data: Value) -> Vec<u8> {
        bytes(&json!({
            "event": event, "instance": "i1", "data": data, "destination": "https://joingate.example/v1/hooks/x/y",
            "date_time": "2026-12-07T06:00:00.000Z", "sender": ME_PN,
            "server_url": "http://evo:8080", "apikey": null
        }))
    }

    #[test]
    fn evolution_reads_its_group_events() {
        let own = Own::new(&[ME_LID]);
        let update = |action: &str, participants: Value, author: &str| {
            evolution(
                "group-participants.update",
                json!({"id": G, "author": author, "authorPn": "", "participants": participants, "action": action}),
            )
        };
        let cases: Vec<(Vec<u8>, Vec<MembershipEvent>)> = vec![
            (
                evolution(
                    "groups.upsert",
                    json!([{"id": G, "subject": "s", "owner": OTHER_LID, "participants": [{"id": OTHER_LID, "admin": "superadmin"}], "author": OTHER_LID}]),
                ),
                joined(),
            ),
            // The subscription's name is read too.
            (evolution("GROUPS_UPSERT", json!([{"id": G}])), joined()),
            // Raw Baileys v7 objects, the own account by LID, removed by an admin.
            (
                update(
                    "remove",
                    json!([{"id": ME_LID, "phoneNumber": ME_PN, "admin": null}]),
                    OTHER_LID,
                ),
                left(LeaveReason::Removed),
            ),
            // Strings, by phone (the envelope's `sender`), the own account acting: left.
            (
                update("remove", json!([ME_PN]), ME_LID),
                left(LeaveReason::Left),
            ),
            // Empty actors are no actor.
            (
                update("remove", json!([ME_PN]), ""),
                left(LeaveReason::Unknown),
            ),
            // No actor.
            (
                evolution(
                    "group-participants.update",
                    json!({"id": G, "participants": [ME_PN], "action": "remove"}),
                ),
                left(LeaveReason::Unknown),
            ),
            // Another member removed; the own account added (not a join: groups.upsert is).
            (
                update(
                    "remove",
                    json!([{"id": OTHER_LID, "phoneNumber": OTHER_PN}]),
                    ME_LID,
                ),
                vec![],
            ),
            (update("add", json!([ME_PN]), OTHER_LID), vec![]),
            (
                evolution("messages.upsert", json!({"key": {"id": "x"}})),
                vec![],
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(evolution::read_events(&body, &own).unwrap(), expected);
        }
        for body in [
            b"".to_vec(),
            bytes(&json!({"data": []})),
            evolution("groups.upsert", json!("x")),
            evolution("groups.upsert", json!([{"id": "5511@s.whatsapp.net"}])),
            evolution("group-participants.update", json!({"action": "remove"})),
            bytes(&json!({"event": "groups.upsert"})),
        ] {
            assert!(is_validation(evolution::read_events(&body, &own)));
        }
        assert!(evolution::verify_signature("whsec_x", b"anything"));
    }

    // ---- wuzapi (server-events.md §3.2) ----

    fn wuzapi_json(kind: &str, event: Value) -> Vec<u8> {
        bytes(&json!({"event": event, "type": kind, "userID": "1", "instanceName": "acct1"}))
    }

    fn wuzapi_form(kind: &str, event: Value) -> Vec<u8> {
        let json = serde_json::to_string(&json!({"event": event, "type": kind})).unwrap();
        form_urlencoded::Serializer::new(String::new())
            .append_pair("jsonData", &json)
            .append_pair("userID", "1")
            .append_pair("instanceName", "acct1")
            .finish()
            .into_bytes()
    }

    #[test]
    fn wuzapi_reads_json_and_form_events() {
        let own = Own::new(&[ME_PN, ME_LID]);
        let joined_event = json!({"Reason": "invite", "Type": "", "CreateKey": "", "Sender": null,
            "SenderPN": null, "Notify": "", "JID": G, "OwnerJID": OTHER_PN, "Name": "n",
            "IsJoinApprovalRequired": true,
            "Participants": [{"JID": OTHER_LID, "PhoneNumber": OTHER_PN, "LID": OTHER_LID, "IsAdmin": true}],
            "ParticipantCount": 12});
        let info = |leave: Value, sender: Value| {
            json!({"JID": G, "Notify": "", "Sender": sender, "SenderPN": null,
                   "Timestamp": "2026-12-07T06:00:00Z", "Name": null, "NewInviteLink": null,
                   "Join": null, "Leave": leave, "Promote": null, "Demote": null, "UnknownChanges": null})
        };
        let cases: Vec<(Value, &str, Vec<MembershipEvent>)> = vec![
            (joined_event.clone(), "JoinedGroup", joined()),
            (
                info(json!([ME_LID]), json!(OTHER_LID)),
                "GroupInfo",
                left(LeaveReason::Removed),
            ),
            (
                info(json!(["5511987654321:3@s.whatsapp.net"]), json!(ME_PN)),
                "GroupInfo",
                left(LeaveReason::Left),
            ),
            (
                info(json!([ME_PN]), json!(null)),
                "GroupInfo",
                left(LeaveReason::Unknown),
            ),
            (info(json!([OTHER_PN]), json!(ME_PN)), "GroupInfo", vec![]),
            (info(json!(null), json!(null)), "GroupInfo", vec![]),
            (json!({"Info": {}}), "Message", vec![]),
        ];
        for (event, kind, expected) in cases {
            let body = wuzapi_json(kind, event.clone());
            assert_eq!(
                wuzapi::read_events(&body, Some("application/json"), &own).unwrap(),
                expected
            );
            let body = wuzapi_form(kind, event);
            assert_eq!(
                wuzapi::read_events(
                    &body,
                    Some("application/x-www-form-urlencoded; charset=utf-8"),
                    &own
                )
                .unwrap(),
                expected
            );
            // A form body is recognised without its content type too.
            assert_eq!(wuzapi::read_events(&body, None, &own).unwrap(), expected);
        }
        for (body, content_type) in [
            (b"userID=1&instanceName=a".to_vec(), None),
            (b"jsonData=%7Bnot".to_vec(), None),
            (b"{\"event\":{}}".to_vec(), Some("application/json")),
            (wuzapi_json("JoinedGroup", json!({"JID": "x"})), None),
            (wuzapi_json("GroupInfo", json!(null)), None),
        ] {
            assert!(is_validation(wuzapi::read_events(
                &body,
                content_type,
                &own
            )));
        }
    }

    fn hex_sha256(key: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(body);
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn wuzapi_signature_is_hex_hmac_sha256_of_the_posted_bytes() {
        let secret = "whsec_c2VjcmV0LWJ5dGVzLXNlY3JldC1ieXRlcy0zMi0=";
        for body in [
            wuzapi_json("JoinedGroup", json!({"JID": G})),
            wuzapi_form("JoinedGroup", json!({"JID": G})),
        ] {
            let hex = hex_sha256(secret.as_bytes(), &body);
            assert_eq!(wuzapi::EVENTS_SIGNATURE_HEADER, "x-hmac-signature");
            assert!(wuzapi::verify_signature(secret, &body, Some(&hex)));
            assert!(!wuzapi::verify_signature("whsec_other", &body, Some(&hex)));
            assert!(!wuzapi::verify_signature(secret, &body[1..], Some(&hex)));
            assert!(!wuzapi::verify_signature(secret, &body, None));
        }
    }

    // ---- GOWA (server-events.md §4.3) ----

    fn gowa(event: &str, payload: Value) -> Vec<u8> {
        bytes(
            &json!({"event": event, "device_id": "5511987654321:7@s.whatsapp.net",
            "session_id": "dev1", "timestamp": "2026-12-07T06:00:00Z", "payload": payload}),
        )
    }

    #[test]
    fn gowa_reads_its_group_events() {
        let none = Own::default();
        let cases: Vec<(Vec<u8>, Vec<MembershipEvent>)> = vec![
            (
                gowa(
                    "group.joined",
                    json!({"chat_id": G, "type": "join", "jids": [ME_PN], "reason": "invite", "group_name": "n"}),
                ),
                joined(),
            ),
            (
                gowa(
                    "group.participants",
                    json!({"chat_id": G, "type": "leave", "jids": [OTHER_PN, ME_PN]}),
                ),
                left(LeaveReason::Unknown),
            ),
            (
                gowa(
                    "group.participants",
                    json!({"chat_id": G, "type": "leave", "jids": [OTHER_PN]}),
                ),
                vec![],
            ),
            (
                gowa(
                    "group.participants",
                    json!({"chat_id": G, "type": "join", "jids": [ME_PN]}),
                ),
                vec![],
            ),
            (gowa("message", json!({"id": "x", "body": "hi"})), vec![]),
        ];
        for (body, expected) in cases {
            assert_eq!(gowa::read_events(&body, &none).unwrap(), expected);
        }
        // The caller's LID matches where GOWA could not resolve it to a phone.
        let body = gowa(
            "group.participants",
            json!({"chat_id": G, "type": "leave", "jids": [ME_LID]}),
        );
        assert_eq!(gowa::read_events(&body, &none).unwrap(), vec![]);
        assert_eq!(
            gowa::read_events(&body, &Own::new(&[ME_LID])).unwrap(),
            left(LeaveReason::Unknown)
        );
        for body in [
            b"{".to_vec(),
            bytes(&json!({"payload": {}})),
            gowa("group.joined", json!({"type": "join"})),
            gowa("group.participants", json!(null)),
        ] {
            assert!(is_validation(gowa::read_events(&body, &none)));
        }
    }

    #[test]
    fn gowa_signature_is_prefixed_hex_hmac_sha256() {
        let body = gowa("group.joined", json!({"chat_id": G}));
        let hex = hex_sha256(b"secret", &body);
        assert_eq!(gowa::EVENTS_SIGNATURE_HEADER, "X-Hub-Signature-256");
        assert!(gowa::verify_signature(
            "secret",
            &body,
            Some(&format!("sha256={hex}"))
        ));
        assert!(!gowa::verify_signature("secret", &body, Some(&hex)));
        assert!(!gowa::verify_signature(
            "secret2",
            &body,
            Some(&format!("sha256={hex}"))
        ));
        assert!(!gowa::verify_signature("secret", &body, None));
    }

    // ---- native (contract section 7, v1.2) ----

    fn native(kind: &str) -> Vec<u8> {
        bytes(&json!({"type": kind, "timestamp": "2026-12-07T06:00:00Z", "data": {"group_jid": G}}))
    }

    #[test]
    fn native_reads_its_events() {
        assert_eq!(
            joingate::read_events(&native("group.joined")).unwrap(),
            joined()
        );
        assert_eq!(
            joingate::read_events(&native("group.left")).unwrap(),
            left(LeaveReason::Left)
        );
        assert_eq!(
            joingate::read_events(&native("group.removed")).unwrap(),
            left(LeaveReason::Removed)
        );
        assert_eq!(
            joingate::read_events(&native("group.renamed")).unwrap(),
            vec![]
        );
        for body in [
            b"null".to_vec(),
            bytes(&json!({"data": {"group_jid": G}})),
            bytes(&json!({"type": "group.joined", "data": {}})),
            bytes(&json!({"type": "group.left", "data": {"group_jid": ME_PN}})),
        ] {
            assert!(is_validation(joingate::read_events(&body)));
        }
    }

    #[test]
    fn native_signature_is_standard_webhooks() {
        let secret = webhooks::new_secret(&[7; 32]);
        let key = webhooks::secret_key(&secret).unwrap();
        let body = native("group.joined");
        let now = 1_796_000_000;
        let sig = webhooks::signature(&key, "msg_1", now, std::str::from_utf8(&body).unwrap());
        let ts = now.to_string();
        let check = |secret: &str, sigs: &str, ts: &str, now_s: i64| {
            joingate::verify_signature(secret, &body, Some("msg_1"), Some(ts), Some(sigs), now_s)
        };
        assert!(check(&secret, &sig, &ts, now));
        assert!(check(&secret, &format!("v1,AAAA {sig}"), &ts, now + 300));
        assert!(check(&secret, &sig, &ts, now - 300));
        assert!(!check(&secret, &sig, &ts, now + 301));
        assert!(!check(&secret, &sig, &(now + 1).to_string(), now));
        assert!(!check(&webhooks::new_secret(&[8; 32]), &sig, &ts, now));
        assert!(!check("not-whsec", &sig, &ts, now));
        assert!(!check(&secret, &sig.replacen("v1,", "v2,", 1), &ts, now));
        assert!(!joingate::verify_signature(
            &secret,
            &body,
            None,
            Some(&ts),
            Some(&sig),
            now
        ));
        assert!(!joingate::verify_signature(
            &secret,
            &body,
            Some("msg_2"),
            Some(&ts),
            Some(&sig),
            now
        ));
    }

    /// The route's dispatch: each kind's signature header, by name and in any letter case
    /// the runtime gives it, and each kind's reader.
    #[test]
    fn verify_and_read_dispatch_by_kind() {
        use super::super::Kind;
        use hmac::{Hmac, Mac};
        let secret = webhooks::new_secret(&[9; 32]);
        let body = bytes(&json!({"event": "group.joined", "device_id": ME_PN,
            "payload": {"chat_id": G, "type": "join", "jids": [ME_PN]}}));
        let hex = |tag: &[u8]| tag.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(&body);
        let sha256 = hex(&mac.finalize().into_bytes());
        let mut mac = Hmac::<Sha512>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(&body);
        let sha512 = hex(&mac.finalize().into_bytes());
        let cases: [(Kind, &str, String); 2] = [
            (Kind::Wuzapi, "x-hmac-signature", sha256.clone()),
            (
                Kind::Gowa,
                "X-Hub-Signature-256",
                format!("sha256={sha256}"),
            ),
        ];
        let yes = Verdict::Checked(true);
        let no = Verdict::Checked(false);
        for (kind, name, value) in &cases {
            let given = |n: &str| (n == *name).then(|| value.clone());
            assert_eq!(verify(*kind, &secret, &body, &given, 0), yes, "{kind:?}");
            assert_eq!(
                verify(*kind, &secret, b"{}", &given, 0),
                no,
                "{kind:?} other body"
            );
            let other = verify(*kind, "whsec_other", &body, &given, 0);
            assert_eq!(other, no, "{kind:?} other key");
            assert_eq!(
                verify(*kind, &secret, &body, &|_| None, 0),
                no,
                "{kind:?} no header"
            );
        }
        // WAHA's header, by its name, goes to the runtime with the whole secret as key.
        let waha_header = |n: &str| (n == "X-Webhook-Hmac").then(|| sha512.clone());
        let Verdict::HmacSha512 { key, tag } = verify(Kind::Waha, &secret, &body, &waha_header, 0)
        else {
            panic!("WAHA's check is an HMAC-SHA512");
        };
        let mut mac = Hmac::<Sha512>::new_from_slice(&key).unwrap();
        mac.update(&body);
        assert!(mac.verify_slice(&tag).is_ok());
        assert_eq!(verify(Kind::Waha, &secret, &body, &|_| None, 0), no);
        // Another kind's header does not do.
        assert_eq!(verify(Kind::Gowa, &secret, &body, &waha_header, 0), no);
        // Evolution signs nothing: its hook token is the only credential.
        assert_eq!(verify(Kind::Evolution, &secret, &body, &|_| None, 0), yes);
        assert_eq!(verify(Kind::Joingate, &secret, &body, &|_| None, 0), no);
        // Each kind's own reader: gowa's event reads as gowa, not as the native kind.
        assert_eq!(
            read(Kind::Gowa, &body, None, &Own::default()).unwrap(),
            joined()
        );
        assert!(is_validation(read(
            Kind::Joingate,
            &body,
            None,
            &Own::default()
        )));
    }
}
