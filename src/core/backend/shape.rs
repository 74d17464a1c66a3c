//! The contract's answer shapes, and readers for what the servers write, shared by the
//! dialects: JIDs in the contract's forms (`…@c.us` becomes `…@s.whatsapp.net`), times as
//! unix seconds, previews from Baileys' and whatsmeow's objects, per-item results.

use serde_json::{json, Map, Value};

use super::whatsapp::item_error_code;
use crate::core::error::{ApiError, ErrorCode};
use crate::core::ids::{GroupJid, UserJid};
use crate::core::invite::parse_invite;
use crate::core::time::parse_rfc3339;

/// Percent-encodes a path segment or query value (everything but RFC 3986's unreserved).
pub fn pct(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A field by name, in any letter case (wuzapi matches Go field names that way).
pub fn field<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    let map = value.as_object()?;
    map.get(name).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

pub fn text<'a>(value: &'a Value, name: &str) -> Option<&'a str> {
    field(value, name).and_then(Value::as_str)
}

pub fn flag(value: &Value, name: &str) -> Option<bool> {
    field(value, name).and_then(Value::as_bool)
}

/// A status answer with the ids of the account the server names (`account`), which the
/// session object keeps: some kinds' events never name the account (section 14). Not part
/// of any answer (the status view picks its fields).
pub fn with_account(mut data: Value, ids: &[Option<&str>]) -> Value {
    let ids: Vec<&str> = ids
        .iter()
        .flatten()
        .copied()
        .filter(|id| !id.trim().is_empty())
        .collect();
    if !ids.is_empty() {
        data["account"] = Value::from(ids);
    }
    data
}

/// A group JID in the contract's form.
pub fn group_jid(text: &str) -> Option<String> {
    GroupJid::parse(text.trim()).ok().map(|j| j.to_string())
}

/// A user JID in the contract's form: `digits@c.us` (WAHA) is `digits@s.whatsapp.net`.
pub fn user_jid(text: &str) -> Option<String> {
    let text = text.trim();
    let text = match text.strip_suffix("@c.us") {
        Some(user) => format!("{user}@s.whatsapp.net"),
        None => text.to_string(),
    };
    UserJid::parse(&text).ok().map(|j| j.to_string())
}

/// A phone number as `+digits`, from a phone JID or from digits with or without `+`.
pub fn phone_number(text: &str) -> Option<String> {
    let user = text.trim().split('@').next()?.trim_start_matches('+');
    let digits = user.split(':').next()?;
    (!digits.is_empty() && digits.len() <= 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("+{digits}"))
}

/// Unix seconds from a number (milliseconds when it is too large for seconds) or an RFC 3339
/// string. Go's zero time and non-positive values mean "unknown".
pub fn unix_seconds(value: &Value) -> Option<i64> {
    let seconds = match value {
        Value::Number(n) => {
            let n = n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))?;
            if n > 100_000_000_000 {
                n / 1000
            } else {
                n
            }
        }
        Value::String(s) => match s.trim().parse::<i64>() {
            Ok(n) => return unix_seconds(&Value::from(n)),
            Err(_) => parse_rfc3339(s.trim())?,
        },
        _ => return None,
    };
    (seconds > 0).then_some(seconds)
}

pub fn unknown_shape() -> ApiError {
    ApiError::new(ErrorCode::BackendError)
        .with_message("The session backend answered with an unknown shape.")
}

pub fn backend_error(message: &str, status: u16) -> ApiError {
    ApiError::new(ErrorCode::BackendError)
        .with_message(message)
        .with_detail("backend_status", status)
}

/// A server's answer that says nothing usable.
pub fn unusable(status: u16) -> ApiError {
    backend_error("The session backend failed without a known error.", status)
}

pub fn credential_rejected(status: u16) -> ApiError {
    backend_error(
        "The session backend refused joingate's credential for this session.",
        status,
    )
    .with_detail("reason", "credential_rejected")
}

pub fn session_unknown() -> ApiError {
    ApiError::new(ErrorCode::SessionNotConnected)
        .with_message("The session backend does not know this session.")
}

/// `{ group_jid?, status }` of a join.
pub fn join_data(group_jid: Option<&str>, status: &str) -> Value {
    let mut data = json!({ "status": status });
    if let Some(jid) = group_jid {
        data["group_jid"] = Value::from(jid);
    }
    data
}

/// `{ member }` of a membership check.
pub fn membership(member: bool) -> Value {
    json!({ "member": member })
}

/// An invite preview in the contract's fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    pub group_jid: String,
    pub subject: String,
    pub description: Option<String>,
    pub size: Option<u64>,
    pub created_at: Option<i64>,
    /// `None` where the server does not say (gowa).
    pub requires_approval: Option<bool>,
}

fn non_empty(value: Option<&str>) -> Option<String> {
    value.filter(|s| !s.is_empty()).map(str::to_owned)
}

impl Preview {
    pub fn data(&self) -> Value {
        let mut data = json!({
            "group_jid": self.group_jid,
            "subject": self.subject,
            "requires_approval": self.requires_approval,
        });
        if let Some(d) = &self.description {
            data["description"] = Value::from(d.as_str());
        }
        if let Some(size) = self.size {
            data["size"] = Value::from(size);
        }
        if let Some(at) = self.created_at {
            data["created_at"] = Value::from(at);
        }
        data
    }

    /// Baileys' group metadata (`id`, `subject`, `desc`, `size`, `creation`,
    /// `joinApprovalMode`): WAHA's NOWEB engine and Evolution API.
    pub fn from_baileys(value: &Value) -> Result<Self, ApiError> {
        let group_jid = text(value, "id")
            .and_then(group_jid)
            .ok_or_else(unknown_shape)?;
        Ok(Self {
            group_jid,
            subject: text(value, "subject")
                .ok_or_else(unknown_shape)?
                .to_string(),
            description: non_empty(text(value, "desc")),
            size: field(value, "size").and_then(Value::as_u64),
            created_at: field(value, "creation").and_then(unix_seconds),
            requires_approval: Some(flag(value, "joinApprovalMode").unwrap_or(false)),
        })
    }

    /// whatsmeow's `GroupInfo` with Go field names (`JID`, `Name`, `Topic`, `GroupCreated`,
    /// `ParticipantCount`, `IsJoinApprovalRequired`): WAHA's GOWS engine and wuzapi.
    pub fn from_whatsmeow(value: &Value) -> Result<Self, ApiError> {
        let group_jid = text(value, "JID")
            .and_then(group_jid)
            .ok_or_else(unknown_shape)?;
        Ok(Self {
            group_jid,
            subject: text(value, "Name").unwrap_or_default().to_string(),
            description: non_empty(text(value, "Topic")),
            size: field(value, "ParticipantCount").and_then(Value::as_u64),
            created_at: field(value, "GroupCreated").and_then(unix_seconds),
            requires_approval: Some(flag(value, "IsJoinApprovalRequired").unwrap_or(false)),
        })
    }

    /// Either library's object, told apart by its keys.
    pub fn from_either(value: &Value) -> Result<Self, ApiError> {
        if field(value, "JID").is_some() {
            Self::from_whatsmeow(value)
        } else {
            Self::from_baileys(value)
        }
    }
}

/// `{ invite_code, invite_link }` from a code, a link or a bare string (JSON or not).
pub fn reset_data(raw: &str) -> Result<Value, ApiError> {
    let raw = raw.trim();
    let unquoted = serde_json::from_str::<String>(raw).unwrap_or_else(|_| raw.to_string());
    let code = parse_invite(&unquoted).map_err(|_| unknown_shape())?;
    Ok(json!({
        "invite_code": code.as_str(),
        "invite_link": format!("https://chat.whatsapp.com/{}", code.as_str()),
    }))
}

/// One pending join request.
/// Each item of a server's list read by `read`, in order; the first failure is the answer.
/// One copy of the loop per item type: a `collect` of a closure into a `Result` compiles
/// its adapters once per closure.
pub fn each<T>(
    items: &[Value],
    read: fn(&Value) -> Result<T, ApiError>,
) -> Result<Vec<T>, ApiError> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        out.push(read(item)?);
    }
    Ok(out)
}

pub fn request_entry(
    jid: &str,
    phone: Option<String>,
    requested_at: Option<i64>,
) -> Result<Value, ApiError> {
    let jid = user_jid(jid).ok_or_else(unknown_shape)?;
    let mut entry = json!({ "jid": jid });
    if let Some(phone) = phone {
        entry["phone_number"] = Value::from(phone);
    }
    if let Some(at) = requested_at {
        entry["requested_at"] = Value::from(at);
    }
    Ok(entry)
}

/// How one participant of an approve/reject fared.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemOutcome {
    Done,
    /// WhatsApp refused it with this code.
    WhatsApp(i64),
    /// A failure with a code of its own (`not_supported`).
    Other(&'static str, &'static str),
}

/// `{ approved|rejected, failed }`, trusting the answer only when every participant asked
/// about is answered exactly once: one left out would otherwise vanish from both lists.
pub fn action_data(
    approve: bool,
    asked: &[String],
    items: Vec<(String, ItemOutcome)>,
) -> Result<Value, ApiError> {
    let mut done: Vec<Value> = Vec::new();
    let mut failed: Vec<Value> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (jid, outcome) in &items {
        if !asked.contains(jid) || seen.contains(&jid.as_str()) {
            return Err(unknown_shape());
        }
        seen.push(jid);
        match outcome {
            ItemOutcome::Done => done.push(Value::from(jid.as_str())),
            ItemOutcome::WhatsApp(wa_code) => {
                let (code, message) = item_error_code(*wa_code);
                failed.push(json!({
                    "jid": jid,
                    "error": { "code": code, "message": message, "wa_code": wa_code },
                }));
            }
            ItemOutcome::Other(code, message) => failed.push(json!({
                "jid": jid,
                "error": { "code": code, "message": message },
            })),
        }
    }
    if seen.len() != asked.len() {
        return Err(unknown_shape());
    }
    let key = if approve { "approved" } else { "rejected" };
    Ok(json!({ key: done, "failed": failed }))
}

/// The error text of a JSON error body under one of the usual keys.
pub fn error_text(body: &Value) -> Option<String> {
    ["error", "message"]
        .iter()
        .find_map(|k| text(body, k))
        .map(str::to_owned)
}

/// A JSON object, or the unknown-shape error.
pub fn object(value: &Value) -> Result<&Map<String, Value>, ApiError> {
    value.as_object().ok_or_else(unknown_shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jids_take_the_contract_forms() {
        assert_eq!(
            user_jid("15551234567@c.us").as_deref(),
            Some("15551234567@s.whatsapp.net")
        );
        assert_eq!(user_jid("123@lid").as_deref(), Some("123@lid"));
        assert_eq!(user_jid("123@g.us"), None);
        assert_eq!(group_jid(" 1-2@g.us ").as_deref(), Some("1-2@g.us"));
        assert_eq!(
            phone_number("15550000001@c.us").as_deref(),
            Some("+15550000001")
        );
        assert_eq!(phone_number("+1555").as_deref(), Some("+1555"));
        assert_eq!(phone_number("abc"), None);
    }

    #[test]
    fn times_become_unix_seconds() {
        for (value, expected) in [
            (json!(1700000001), Some(1700000001)),
            (json!(1700000001000_i64), Some(1700000001)),
            (json!("2023-11-14T22:13:21Z"), Some(1700000001)),
            (json!("2023-11-14T22:13:21.5+00:00"), Some(1700000001)),
            (json!("1700000001"), Some(1700000001)),
            (json!("0001-01-01T00:00:00Z"), None),
            (json!(0), None),
            (json!(true), None),
        ] {
            assert_eq!(unix_seconds(&value), expected, "{value}");
        }
    }

    #[test]
    fn previews_of_both_libraries() {
        let baileys = json!({"id":"1@g.us","subject":"S","desc":"D","size":3,"creation":1700000001,"joinApprovalMode":true});
        let whatsmeow = json!({"JID":"1@g.us","Name":"S","Topic":"D","ParticipantCount":3,"GroupCreated":"2023-11-14T22:13:21Z","IsJoinApprovalRequired":true});
        let expected = json!({"group_jid":"1@g.us","subject":"S","description":"D","size":3,"created_at":1700000001,"requires_approval":true});
        assert_eq!(
            Preview::from_either(&baileys).map(|p| p.data()),
            Ok(expected.clone())
        );
        assert_eq!(
            Preview::from_either(&whatsmeow).map(|p| p.data()),
            Ok(expected)
        );
        // wuzapi matches keys in any case.
        let lower = json!({"jid":"1@g.us","name":"S","isjoinapprovalrequired":false});
        assert_eq!(
            Preview::from_whatsmeow(&lower).map(|p| p.requires_approval),
            Ok(Some(false))
        );
        assert!(Preview::from_baileys(&json!({"subject":"S"})).is_err());
    }

    #[test]
    fn resets_take_a_code_a_link_or_a_json_string() {
        let code = "AbCdEfGhIjKlMnOpQrStUv";
        for raw in [
            code.to_string(),
            format!("https://chat.whatsapp.com/{code}"),
            format!("\"{code}\""),
            format!("{code}\n"),
        ] {
            assert_eq!(
                reset_data(&raw).map(|d| d["invite_code"].clone()),
                Ok(json!(code)),
                "{raw}"
            );
        }
        assert!(reset_data("").is_err());
        assert!(reset_data("{\"ok\":true}").is_err());
    }

    #[test]
    fn action_results_must_cover_every_participant_once() {
        let asked = vec!["1@s.whatsapp.net".to_string(), "2@lid".to_string()];
        let ok = action_data(
            true,
            &asked,
            vec![
                (asked[0].clone(), ItemOutcome::Done),
                (asked[1].clone(), ItemOutcome::WhatsApp(404)),
            ],
        );
        assert_eq!(
            ok.map(|d| (
                d["approved"].clone(),
                d["failed"][0]["error"]["code"].clone()
            )),
            Ok((json!(["1@s.whatsapp.net"]), json!("request_not_found")))
        );
        for items in [
            vec![(asked[0].clone(), ItemOutcome::Done)],
            vec![
                (asked[0].clone(), ItemOutcome::Done),
                (asked[0].clone(), ItemOutcome::Done),
            ],
            vec![
                (asked[0].clone(), ItemOutcome::Done),
                ("9@lid".to_string(), ItemOutcome::Done),
            ],
        ] {
            assert!(action_data(false, &asked, items).is_err());
        }
    }

    #[test]
    fn percent_encoding_keeps_only_unreserved() {
        assert_eq!(pct("a b/c@d?e#f~g"), "a%20b%2Fc%40d%3Fe%23f~g");
    }
}
