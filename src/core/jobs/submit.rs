//! The join-job submit body (contract section 10): every item checked exactly like a join
//! body before anything is stored, duplicates collapsed, the label and the interval; or a
//! recovery from another session's groups (section 15), whose items the edge takes from
//! the org's book.

use serde_json::{Map, Value};

use super::{code_of, MAX_INTERVAL_S, MAX_ITEMS};
use crate::core::backend::Op;
use crate::core::error::{ApiError, ErrorCode};
use crate::core::ids::{GroupJid, SessionId};
use crate::core::json::{present, reject_unknown, whole_number};
use crate::core::requests::{parse_join, parse_join_body, parse_label};

/// One item of a job: the join, and the group its invite must lead to (section 15).
#[derive(Debug, Clone, PartialEq)]
pub struct SubmitItem {
    pub op: Op,
    pub expected_group_jid: Option<String>,
}

/// A validated submit body.
#[derive(Debug, Clone, PartialEq)]
pub struct Submit {
    /// The items after collapsing duplicate codes, in submission order; empty for a
    /// recovery (the edge fills them from the org's book).
    pub items: Vec<SubmitItem>,
    pub label: Option<String>,
    pub interval_s: u32,
    /// A recovery's source session (section 15), instead of `invites`.
    pub from_session: Option<String>,
}

fn item_field(index: usize, inner: Option<&str>) -> String {
    match inner {
        Some(field) => format!("invites[{index}].{field}"),
        None => format!("invites[{index}]"),
    }
}

/// One `invites[i]`, checked exactly like a join body (a string: the `invite` form; an
/// object: `{ invite, expected_group_jid }` or an invite message), errors naming
/// `invites[i]` or a field inside it.
fn parse_item(index: usize, value: &Value, now_s: i64) -> Result<(Op, Option<GroupJid>), ApiError> {
    let renamed = |mut error: ApiError, whole: bool| {
        let inner = error.field().map(str::to_owned);
        let field = item_field(index, if whole { None } else { inner.as_deref() });
        error
            .details
            .insert("field".into(), Value::from(field.as_str()));
        if error.code == ErrorCode::ValidationError {
            let reason = error
                .message
                .split_once(": ")
                .map_or("", |(_, r)| r)
                .to_string();
            error.message = format!("{field}: {reason}");
        }
        error
    };
    match value {
        Value::String(_) => {
            let mut body = Map::new();
            body.insert("invite".into(), value.clone());
            let request = parse_join(&body, now_s).map_err(|e| renamed(e, true))?;
            Ok((request.op(), None))
        }
        Value::Object(map) => {
            let (request, expected) = parse_join_body(map, now_s).map_err(|e| renamed(e, false))?;
            Ok((request.op(), expected))
        }
        _ => Err(ApiError::invalid(
            &item_field(index, None),
            "must be a link or code, { invite, expected_group_jid } or an invite message object",
        )),
    }
}

/// `POST /v1/sessions/{sid}/join-jobs`: every item checked before anything is stored; the
/// first bad item fails the whole request. `interval_s` is `min_interval_s`
/// (`JOB_MIN_INTERVAL_S`) to 86400, `default_interval_s` (`JOB_INTERVAL_S`) when left out.
pub fn parse_submit(
    body: &Map<String, Value>,
    now_s: i64,
    default_interval_s: u32,
    min_interval_s: u32,
) -> Result<Submit, ApiError> {
    reject_unknown(
        body,
        &["invites", "label", "interval_s", "from_session"],
        "",
    )?;
    let from_session = present(body, "from_session")
        .map(|value| {
            if present(body, "invites").is_some() {
                return Err(ApiError::invalid(
                    "from_session",
                    "is not taken together with invites: a job is built from one or the other",
                ));
            }
            value
                .as_str()
                .ok_or_else(|| ApiError::invalid("from_session", "must be a session id"))
                .and_then(|text| {
                    SessionId::parse(text).map_err(|e| ApiError::invalid("from_session", e.0))
                })
                .map(|sid| sid.to_string())
        })
        .transpose()?;
    let items = match from_session {
        Some(_) => Vec::new(),
        None => parse_items(body, now_s)?,
    };
    let label = parse_label(body, 1)?;
    let interval_s = match present(body, "interval_s") {
        None => default_interval_s,
        Some(value) => whole_number(value)
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| (min_interval_s..=MAX_INTERVAL_S).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(
                    "interval_s",
                    format!(
                        "must be a whole number of seconds from {min_interval_s} to {MAX_INTERVAL_S}"
                    ),
                )
            })?,
    };
    Ok(Submit {
        items,
        label,
        interval_s,
        from_session,
    })
}

/// `invites`: 1 to 500 items as sent, then items with the same invite code become one.
fn parse_items(body: &Map<String, Value>, now_s: i64) -> Result<Vec<SubmitItem>, ApiError> {
    let list = present(body, "invites")
        .ok_or_else(|| ApiError::invalid("invites", "is required: 1 to 500 invites"))?
        .as_array()
        .ok_or_else(|| ApiError::invalid("invites", "must be a list of invites"))?;
    if list.is_empty() || list.len() > MAX_ITEMS {
        return Err(ApiError::invalid("invites", "must list 1 to 500 invites"));
    }
    let mut items = Vec::with_capacity(list.len());
    // A set as serde_json's map: its tree is in the wasm already, a hash table would not be.
    let mut seen = Map::new();
    for (index, value) in list.iter().enumerate() {
        let (op, expected) = parse_item(index, value, now_s)?;
        if seen.insert(code_of(&op).to_string(), Value::Null).is_none() {
            items.push(SubmitItem {
                op,
                expected_group_jid: expected.map(|g| g.to_string()),
            });
        }
    }
    Ok(items)
}

/// `job_` and 16 lower-case hex digits.
pub fn is_job_id(text: &str) -> bool {
    text.len() == 20
        && text.starts_with("job_")
        && text[4..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests;
