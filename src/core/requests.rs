//! Request bodies and path parameters, parsed into checked values before anything leaves
//! the edge, and the backend call each session route makes (contract sections 4, 5 and 7).

use serde_json::{Map, Value};

use super::backend::spec::{parse_backend, BackendInput};
use super::backend::Op;
use super::error::{ApiError, ErrorCode};
use super::ids::{GroupJid, IdError, MessageCode, OrgId, SessionId, UserJid};
use super::invite::{parse_invite, InviteCode};
use super::json::{optional_bool, present, reject_unknown, required_str, whole_number};
use super::limits::{parse_overrides, LimitOverrides};
use super::protection::settings::{parse_protection, Protection};
use super::time::parse_rfc3339;
use super::token::Capability;

pub const MAX_PARTICIPANTS: usize = 50;
pub const MAX_TOKEN_SESSIONS: usize = 100;
pub const MAX_LABEL_CHARS: usize = 200;

/// Path parameters arrive percent-encoded (`%40` for `@` is common); each is decoded once
/// before its grammar is checked.
fn path_param<T>(
    raw: &str,
    field: &str,
    parse: fn(&str) -> Result<T, IdError>,
) -> Result<T, ApiError> {
    let decoded = percent_decode(raw)
        .ok_or_else(|| ApiError::invalid(field, "is not valid percent-encoded UTF-8"))?;
    parse(&decoded).map_err(|e| ApiError::invalid(field, e.0))
}

pub fn session_id(raw: &str) -> Result<SessionId, ApiError> {
    path_param(raw, "sid", SessionId::parse)
}

pub fn group_jid(raw: &str) -> Result<GroupJid, ApiError> {
    path_param(raw, "gjid", GroupJid::parse)
}

fn malformed(field: &str) -> ApiError {
    ApiError::new(ErrorCode::InviteMalformed).with_detail("field", field)
}

/// A path segment is percent-decoded before the invite grammar sees it, so that an encoded
/// link works; a decoding that is not UTF-8 cannot be an invite.
pub fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            // Exactly two hex digits (from_str_radix alone would also take "+9").
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let text = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(text, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The `{invite}` of the preview path: a bare code or a percent-encoded link.
pub fn invite_from_path(segment: &str) -> Result<InviteCode, ApiError> {
    let decoded = percent_decode(segment).ok_or_else(|| malformed("invite"))?;
    parse_invite(&decoded).map_err(|_| malformed("invite"))
}

/// The two forms of a join body.
#[derive(Debug, Clone, PartialEq)]
pub enum JoinRequest {
    ByCode(InviteCode),
    ByMessage {
        code: MessageCode,
        group_jid: GroupJid,
        inviter_jid: UserJid,
        expiration: Option<i64>,
    },
}

const MESSAGE_FIELDS: [&str; 4] = ["code", "group_jid", "inviter_jid", "expiration"];
const EXPECTED: &str = "expected_group_jid";

/// Parses a join body at `now_s` (an invite message whose `expiration` has passed is refused
/// here, without calling the backend).
pub fn parse_join(body: &Map<String, Value>, now_s: i64) -> Result<JoinRequest, ApiError> {
    parse_join_form(body, now_s, &[])
}

/// A join body of either form, with the link form's optional `expected_group_jid`
/// (section 15; `null` counts as left out). An invite message names its group already, so
/// it takes none.
pub fn parse_join_body(
    body: &Map<String, Value>,
    now_s: i64,
) -> Result<(JoinRequest, Option<GroupJid>), ApiError> {
    let Some(value) = present(body, EXPECTED) else {
        return parse_join_form(body, now_s, &[EXPECTED]).map(|request| (request, None));
    };
    if !body.contains_key("invite") && MESSAGE_FIELDS.iter().any(|f| body.contains_key(*f)) {
        return Err(ApiError::invalid(
            EXPECTED,
            "is only for { invite }: the invite message names its group already",
        ));
    }
    let request = parse_join_form(body, now_s, &[EXPECTED])?;
    let expected = value
        .as_str()
        .ok_or_else(|| ApiError::invalid(EXPECTED, "must be a group JID"))
        .and_then(|text| GroupJid::parse(text).map_err(|e| ApiError::invalid(EXPECTED, e.0)))?;
    Ok((request, Some(expected)))
}

/// Either form of a join body; `extra` names fields the caller reads itself.
fn parse_join_form(
    body: &Map<String, Value>,
    now_s: i64,
    extra: &[&str],
) -> Result<JoinRequest, ApiError> {
    let allowed = |fields: &[&'static str]| -> Vec<&str> {
        fields.iter().chain(extra).copied().collect::<Vec<&str>>()
    };
    if body.contains_key("invite") {
        if let Some(other) = MESSAGE_FIELDS.iter().find(|f| body.contains_key(**f)) {
            return Err(ApiError::invalid(
                other,
                "a join body is either { invite } or an invite message, not both",
            ));
        }
        reject_unknown(body, &allowed(&["invite"]), "")?;
        let invite = body
            .get("invite")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::invalid("invite", "must be a string"))?;
        return parse_invite(invite)
            .map(JoinRequest::ByCode)
            .map_err(|_| malformed("invite"));
    }
    if body.keys().all(|key| extra.contains(&key.as_str())) {
        return Err(ApiError::invalid(
            "invite",
            "is required (or send an invite message: code, group_jid, inviter_jid)",
        ));
    }
    reject_unknown(body, &allowed(&MESSAGE_FIELDS), "")?;
    let code = MessageCode::parse(required_str(body, "code")?)
        .map_err(|e| ApiError::invalid("code", e.0))?;
    let group_jid = GroupJid::parse(required_str(body, "group_jid")?)
        .map_err(|e| ApiError::invalid("group_jid", e.0))?;
    let inviter_jid = UserJid::parse(required_str(body, "inviter_jid")?)
        .map_err(|e| ApiError::invalid("inviter_jid", e.0))?;
    let expiration = match present(body, "expiration") {
        None => None,
        Some(value) => Some(whole_number(value).filter(|n| *n >= 0).ok_or_else(|| {
            ApiError::invalid("expiration", "must be unix seconds (a whole number)")
        })?),
    };
    if expiration.is_some_and(|at| at <= now_s) {
        return Err(ApiError::new(ErrorCode::InviteExpired).with_detail("field", "expiration"));
    }
    Ok(JoinRequest::ByMessage {
        code,
        group_jid,
        inviter_jid,
        expiration,
    })
}

impl JoinRequest {
    /// The operation the session's backend is asked for.
    pub fn op(&self) -> Op {
        match self {
            Self::ByCode(code) => Op::Join {
                code: code.as_str().to_string(),
            },
            Self::ByMessage {
                code,
                group_jid,
                inviter_jid,
                expiration,
            } => Op::JoinByMessage {
                code: code.as_str().to_string(),
                group_jid: group_jid.to_string(),
                inviter_jid: inviter_jid.to_string(),
                expiration: *expiration,
            },
        }
    }

    /// For logs: what was asked, with the code shortened (invite codes are secrets).
    pub fn redacted(&self) -> String {
        match self {
            Self::ByCode(code) => code.redacted(),
            Self::ByMessage { code, .. } => {
                let head: String = code.as_str().chars().take(4).collect();
                format!("{head}…")
            }
        }
    }
}

/// `{ "participants": [jid, …] }`: 1 to 50 user JIDs, duplicates sent once, never "all".
pub fn parse_participants(body: &Map<String, Value>) -> Result<Vec<UserJid>, ApiError> {
    reject_unknown(body, &["participants"], "")?;
    let list = match present(body, "participants") {
        None => {
            return Err(ApiError::invalid(
                "participants",
                "is required: list 1 to 50 participant JIDs",
            ))
        }
        Some(value) => value
            .as_array()
            .ok_or_else(|| ApiError::invalid("participants", "must be a list of JIDs"))?,
    };
    if list.is_empty() || list.len() > MAX_PARTICIPANTS {
        return Err(ApiError::invalid(
            "participants",
            "must list 1 to 50 participant JIDs",
        ));
    }
    let mut jids: Vec<UserJid> = Vec::with_capacity(list.len());
    for (index, item) in list.iter().enumerate() {
        let field = format!("participants[{index}]");
        let text = item
            .as_str()
            .ok_or_else(|| ApiError::invalid(&field, "must be a string"))?;
        let jid = UserJid::parse(text).map_err(|e| ApiError::invalid(&field, e.0))?;
        if !jids.contains(&jid) {
            jids.push(jid);
        }
    }
    Ok(jids)
}

/// An optional `label`: a string of `min_chars` to 200 characters without control
/// characters (tokens and join jobs).
pub fn parse_label(
    body: &Map<String, Value>,
    min_chars: usize,
) -> Result<Option<String>, ApiError> {
    let Some(value) = present(body, "label") else {
        return Ok(None);
    };
    let text = value
        .as_str()
        .ok_or_else(|| ApiError::invalid("label", "must be a string"))?;
    let chars = text.chars().count();
    if chars < min_chars || chars > MAX_LABEL_CHARS || text.chars().any(char::is_control) {
        let reason = if min_chars == 0 {
            "must be at most 200 printable characters".to_string()
        } else {
            format!("must be {min_chars}-200 printable characters")
        };
        return Err(ApiError::invalid("label", reason));
    }
    Ok(Some(text.to_string()))
}

/// A validated `POST /v1/admin/tokens` body.
#[derive(Debug, Clone, PartialEq)]
pub struct NewToken {
    pub org: OrgId,
    pub capabilities: Vec<Capability>,
    pub sessions: Option<Vec<SessionId>>,
    pub expires_at: Option<i64>,
    pub label: Option<String>,
}

pub fn parse_new_token(body: &Map<String, Value>, now_s: i64) -> Result<NewToken, ApiError> {
    reject_unknown(
        body,
        &["org", "capabilities", "sessions", "expires_at", "label"],
        "",
    )?;
    let org =
        OrgId::parse(required_str(body, "org")?).map_err(|e| ApiError::invalid("org", e.0))?;
    let names = present(body, "capabilities")
        .ok_or_else(|| ApiError::invalid("capabilities", "is required"))?
        .as_array()
        .ok_or_else(|| ApiError::invalid("capabilities", "must be a list"))?;
    if names.is_empty() {
        return Err(ApiError::invalid(
            "capabilities",
            "must name at least one of join, read, manage",
        ));
    }
    let mut capabilities = Vec::new();
    for name in names {
        let capability = name
            .as_str()
            .and_then(Capability::parse)
            .ok_or_else(|| ApiError::invalid("capabilities", "may only hold join, read, manage"))?;
        if !capabilities.contains(&capability) {
            capabilities.push(capability);
        }
    }
    let sessions = match present(body, "sessions") {
        None => None,
        Some(value) => {
            let list = value
                .as_array()
                .ok_or_else(|| ApiError::invalid("sessions", "must be a list of session ids"))?;
            if list.is_empty() || list.len() > MAX_TOKEN_SESSIONS {
                return Err(ApiError::invalid(
                    "sessions",
                    "must list 1 to 100 session ids, or be left out",
                ));
            }
            let mut ids: Vec<SessionId> = Vec::new();
            for item in list {
                let id = item
                    .as_str()
                    .ok_or_else(|| ApiError::invalid("sessions", "must be a list of session ids"))
                    .and_then(|s| {
                        SessionId::parse(s).map_err(|e| ApiError::invalid("sessions", e.0))
                    })?;
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            Some(ids)
        }
    };
    let expires_at = match present(body, "expires_at") {
        None => None,
        Some(value) => {
            let at = value
                .as_str()
                .and_then(parse_rfc3339)
                .ok_or_else(|| ApiError::invalid("expires_at", "must be an RFC 3339 date-time"))?;
            if at <= now_s {
                return Err(ApiError::invalid("expires_at", "is in the past"));
            }
            Some(at)
        }
    };
    // A token's label may be empty (as before); a job's may not.
    let label = parse_label(body, 0)?;
    Ok(NewToken {
        org,
        capabilities,
        sessions,
        expires_at,
        label,
    })
}

/// A validated `PUT /v1/admin/sessions/{sid}` body.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    pub org: OrgId,
    pub limits: LimitOverrides,
    pub backend: Option<BackendInput>,
    /// Section 13: as sent (left out or null: nothing set).
    pub protection: Protection,
    /// Section 14: `Some(true)` turns the server's events on, `Some(false)` off; `None` keeps
    /// them as they are.
    pub events: Option<bool>,
    /// A new hook token and secret (events on).
    pub rotate_events_secret: bool,
}

/// `PUT /v1/admin/sessions/{sid}`. `now_ms` dates `protection.number_since`;
/// `known_timezone` is the runtime's `Intl` (`protection.timezone`).
pub fn parse_session_config(
    body: &Map<String, Value>,
    now_ms: i64,
    known_timezone: &dyn Fn(&str) -> bool,
) -> Result<SessionConfig, ApiError> {
    reject_unknown(
        body,
        &[
            "org",
            "limits",
            "backend",
            "protection",
            "events",
            "rotate_events_secret",
        ],
        "",
    )?;
    let org =
        OrgId::parse(required_str(body, "org")?).map_err(|e| ApiError::invalid("org", e.0))?;
    let limits = match present(body, "limits") {
        None => LimitOverrides::default(),
        Some(value) => parse_overrides(value)?,
    };
    let backend = parse_backend(body.get("backend"))?;
    let protection = match present(body, "protection") {
        None => Protection::default(),
        Some(value) => parse_protection(value, now_ms, known_timezone)?,
    };
    Ok(SessionConfig {
        org,
        limits,
        backend,
        protection,
        events: optional_bool(body, "events")?,
        rotate_events_secret: optional_bool(body, "rotate_events_secret")?.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests;
