//! What the session object tells the org's group book (contract section 15): the facts of
//! its own calls (a join with the code that joined and the subject its preview showed, a
//! leave, an invite reset). Facts that ride on an event go with it; the others are handed
//! over after the answer (`wait_until`), never before it.

use serde_json::Value;

use super::SessionObject;
use crate::core::backend::Op;
use crate::core::book::{Change, Update};
use crate::edge::org;

/// The book's fact of a call that succeeded with `data`, if it has one.
pub(super) fn call_fact(
    sid: &str,
    op: &Op,
    data: &Value,
    subject: Option<String>,
    at_ms: i64,
) -> Option<Update> {
    let text = |key: &str| data.get(key).and_then(Value::as_str).map(str::to_owned);
    let (group_jid, change, code) = match op {
        Op::Join { code } => (text("group_jid")?, join_change(data)?, Some(code.clone())),
        // An invite message's code is not kept (section 15).
        Op::JoinByMessage { group_jid, .. } => (
            text("group_jid").unwrap_or_else(|| group_jid.clone()),
            join_change(data)?,
            None,
        ),
        Op::Leave { group_jid } => (group_jid.clone(), Change::Left, None),
        Op::ResetInvite { group_jid } => {
            (group_jid.clone(), Change::InviteReset, text("invite_code"))
        }
        _ => return None,
    };
    Some(Update {
        group_jid,
        session: sid.to_string(),
        change,
        at_ms,
        subject,
        code,
    })
}

fn join_change(data: &Value) -> Option<Change> {
    match data.get("status").and_then(Value::as_str)? {
        "joined" | "already_member" => Some(Change::Member),
        "pending_approval" => Some(Change::Pending),
        _ => None,
    }
}

impl SessionObject {
    /// Hands facts to the org's book once this request has answered.
    pub(super) fn book_later(&self, org: &str, updates: Vec<Update>) {
        if updates.is_empty() {
            return;
        }
        let (env, org) = (self.env.clone(), org.to_string());
        self.state.wait_until(async move {
            org::book(&env, &org, updates).await;
        });
    }
}
