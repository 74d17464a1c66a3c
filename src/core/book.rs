//! An org's group book (contract section 15): every group a session of the org joined or
//! asked to join, with each session's seat in it and the invite code that joined (kept
//! sealed by the org object, never shown). Pure: what an update does to an entry, the
//! entry's view, `GET /v1/groups`' query and cursor, and the plan of a recovery job.
//!
//! Invariants:
//! - An update older than its session's seat changes nothing (updates arrive out of order).
//! - Only a join (member or pending) brings a group into the book.
//! - The code is never part of a view.

use std::cmp::Ordering;

use serde_json::{json, Value};

use super::backend::events::hex_decode;
use super::envelope::hex;
use super::error::ApiError;
use super::ids::{GroupJid, SessionId};
use super::time::format_rfc3339;

/// At most this many entries per org (entries with no member session go first).
pub const MAX_ENTRIES: i64 = 10_000;
/// At most this many items in a recovery job.
pub const RECOVERY_MAX: usize = 500;
pub const LIST_DEFAULT: usize = 50;
pub const LIST_MAX: usize = 200;

/// A session's state in a group.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SeatState {
    Member,
    Pending,
    Left,
    Removed,
}

impl SeatState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Pending => "pending",
            Self::Left => "left",
            Self::Removed => "removed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Member, Self::Pending, Self::Left, Self::Removed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

#[derive(Clone, PartialEq, Debug)]
pub struct Seat {
    pub session: String,
    pub state: SeatState,
    pub since_ms: i64,
}

#[derive(Clone, PartialEq, Debug)]
pub struct Entry {
    pub group_jid: String,
    pub subject: Option<String>,
    pub seats: Vec<Seat>,
    /// The sealed invite code that last joined (or the code of the last reset).
    pub sealed_code: Option<String>,
    pub updated_ms: i64,
}

impl Entry {
    /// Seats in `member`.
    pub fn members(&self) -> i64 {
        let members = self
            .seats
            .iter()
            .filter(|s| s.state == SeatState::Member)
            .count();
        i64::try_from(members).unwrap_or(i64::MAX)
    }

    fn seat(&self, session: &str) -> Option<&Seat> {
        self.seats.iter().find(|s| s.session == session)
    }

    fn state_of(&self, session: &str) -> Option<SeatState> {
        self.seat(session).map(|s| s.state)
    }
}

/// The seats in one TEXT column: `sid state since_ms`, joined by `;`. Session ids are
/// `[A-Za-z0-9_-]{1,64}`, so neither separator can occur inside one; a seat whose session
/// id is not valid is left out rather than let it break the column.
pub fn encode_seats(seats: &[Seat]) -> String {
    seats
        .iter()
        .filter(|s| SessionId::parse(&s.session).is_ok())
        .map(|s| format!("{} {} {}", s.session, s.state.as_str(), s.since_ms))
        .collect::<Vec<_>>()
        .join(";")
}

/// The seats of `encode_seats`' text; what cannot be read is skipped.
pub fn decode_seats(text: &str) -> Vec<Seat> {
    text.split(';')
        .filter_map(|part| {
            let mut fields = part.split(' ');
            let session = SessionId::parse(fields.next()?).ok()?;
            let state = SeatState::parse(fields.next()?)?;
            let since_ms = fields.next()?.parse().ok()?;
            fields.next().is_none().then(|| Seat {
                session: session.to_string(),
                state,
                since_ms,
            })
        })
        .collect()
}

/// What happened to a session in a group.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Change {
    Member,
    Pending,
    Left,
    Removed,
    /// The session's request expired (section 14).
    Expired,
    /// The group's invite was reset through joingate.
    InviteReset,
}

/// One fact for the book. `code` is a plain invite code (the org object seals it before
/// anything is stored): the code that joined (member, pending), or the new code of a
/// reset.
#[derive(Clone, PartialEq, Debug)]
pub struct Update {
    pub group_jid: String,
    pub session: String,
    pub change: Change,
    pub at_ms: i64,
    pub subject: Option<String>,
    pub code: Option<String>,
}

impl Change {
    const ALL: [Change; 6] = [
        Self::Member,
        Self::Pending,
        Self::Left,
        Self::Removed,
        Self::Expired,
        Self::InviteReset,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Pending => "pending",
            Self::Left => "left",
            Self::Removed => "removed",
            Self::Expired => "expired",
            Self::InviteReset => "invite_reset",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

// Updates travel between the objects as JSON written and read by hand: serde's derived
// visitors would cost the wasm more than these few lines.
impl Update {
    pub fn view(&self) -> Value {
        let mut view = json!({
            "group_jid": self.group_jid,
            "session": self.session,
            "change": self.change.as_str(),
            "at_ms": self.at_ms,
        });
        if let Some(subject) = &self.subject {
            view["subject"] = Value::from(subject.as_str());
        }
        if let Some(code) = &self.code {
            view["code"] = Value::from(code.as_str());
        }
        view
    }

    pub fn read(value: &Value) -> Option<Self> {
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        Some(Self {
            group_jid: text("group_jid")?,
            session: text("session")?,
            change: Change::parse(value.get("change")?.as_str()?)?,
            at_ms: value.get("at_ms")?.as_i64()?,
            subject: text("subject"),
            code: text("code"),
        })
    }
}

/// The entry after `update`, or `None` when nothing changes (nothing to write). `sealed`
/// is the sealed form of `update.code` (`None`: no code to keep).
pub fn apply(entry: Option<Entry>, update: &Update, sealed: Option<String>) -> Option<Entry> {
    // The seats' column relies on valid session ids.
    SessionId::parse(&update.session).ok()?;
    let joins = matches!(update.change, Change::Member | Change::Pending);
    let before = entry.clone();
    let mut entry = match entry {
        Some(entry) => entry,
        None if joins => Entry {
            group_jid: update.group_jid.clone(),
            subject: None,
            seats: Vec::new(),
            sealed_code: None,
            updated_ms: update.at_ms,
        },
        None => return None,
    };
    let at = entry.seats.iter().position(|s| s.session == update.session);
    if at.is_some_and(|i| update.at_ms < entry.seats[i].since_ms) {
        return None;
    }
    let state = match update.change {
        Change::Member => Some(SeatState::Member),
        Change::Pending => Some(SeatState::Pending),
        Change::Left => Some(SeatState::Left),
        Change::Removed => Some(SeatState::Removed),
        Change::Expired | Change::InviteReset => None,
    };
    if let Some(state) = state {
        let seat = Seat {
            session: update.session.clone(),
            state,
            since_ms: update.at_ms,
        };
        match at {
            Some(i) => entry.seats[i] = seat,
            None => entry.seats.push(seat),
        }
    }
    if update.change == Change::Expired {
        // Only a request still pending expires; a member stays one.
        if let Some(i) = at.filter(|i| entry.seats[*i].state == SeatState::Pending) {
            entry.seats.remove(i);
        }
    }
    if joins || update.change == Change::InviteReset {
        if let Some(sealed) = sealed {
            entry.sealed_code = Some(sealed);
        }
    }
    if let Some(subject) = &update.subject {
        entry.subject = Some(subject.clone());
    }
    if let Some(before) = &before {
        let unchanged = before.seats == entry.seats
            && before.subject == entry.subject
            && before.sealed_code == entry.sealed_code;
        if unchanged {
            return None;
        }
        entry.updated_ms = before.updated_ms.max(update.at_ms);
    }
    Some(entry)
}

/// Whether a token's allow-list sees this entry (`None`: the token sees every entry).
pub fn visible_to(entry: &Entry, visible: Option<&[String]>) -> bool {
    visible.is_none_or(|sessions| entry.seats.iter().any(|s| sessions.contains(&s.session)))
}

/// The entry as `GET /v1/groups` shows it; an allow-listed token sees only its sessions.
/// Never the code.
pub fn view(entry: &Entry, visible: Option<&[String]>) -> Value {
    let sessions: Vec<Value> = entry
        .seats
        .iter()
        .filter(|s| visible.is_none_or(|list| list.contains(&s.session)))
        .map(|s| {
            json!({
                "session_id": s.session,
                "state": s.state.as_str(),
                "since": format_rfc3339(s.since_ms),
            })
        })
        .collect();
    let mut view = json!({
        "group_jid": entry.group_jid,
        "sessions": sessions,
        "invite_known": entry.sealed_code.is_some(),
        "updated_at": format_rfc3339(entry.updated_ms),
    });
    if let Some(subject) = &entry.subject {
        view["subject"] = Value::from(subject.as_str());
    }
    view
}

/// The book's order: newest first by `updated_ms`, then by `group_jid`, both descending.
pub fn newest_first(a: &Entry, b: &Entry) -> Ordering {
    (b.updated_ms, b.group_jid.as_str()).cmp(&(a.updated_ms, a.group_jid.as_str()))
}

/// Whether `entry` comes after the cursor's entry in the book's order (the next page).
pub fn is_after(entry: &Entry, cursor: &(i64, String)) -> bool {
    (entry.updated_ms, entry.group_jid.as_str()) < (cursor.0, cursor.1.as_str())
}

/// A validated query of `GET /v1/groups`.
#[derive(Clone, PartialEq, Debug)]
pub struct ListQuery {
    pub session: Option<String>,
    pub limit: usize,
    /// The entry the page starts after: `(updated_ms, group_jid)`.
    pub cursor: Option<(i64, String)>,
}

/// An opaque cursor for "after this entry": the hex of `updated_ms:group_jid` (hex, so it
/// needs no escaping in a query string).
pub fn cursor_of(entry: &Entry) -> String {
    hex(format!("{}:{}", entry.updated_ms, entry.group_jid).as_bytes())
}

fn read_cursor(text: &str) -> Option<(i64, String)> {
    let bytes = hex_decode(text)?;
    let text = std::str::from_utf8(&bytes).ok()?;
    let (ms, group) = text.split_once(':')?;
    let group = GroupJid::parse(group).ok()?;
    Some((ms.parse().ok()?, group.to_string()))
}

/// The query string of `GET /v1/groups` (without `?`): `session`, `limit` 1–200 (default
/// 50), `cursor`; a bad value is a `validation_error` naming its parameter, an unknown
/// parameter is ignored.
pub fn parse_list_query(query: &str) -> Result<ListQuery, ApiError> {
    let (limit, [session, cursor]) = super::lists::list_params(query, ["session", "cursor"])?;
    let session = session
        .map(|s| SessionId::parse(&s).map_err(|e| ApiError::invalid("session", e.0)))
        .transpose()?;
    let cursor = cursor
        .map(|c| {
            read_cursor(&c)
                .ok_or_else(|| ApiError::invalid("cursor", "is not a cursor of this list"))
        })
        .transpose()?;
    Ok(ListQuery {
        session: session.map(|s| s.to_string()),
        limit,
        cursor,
    })
}

/// A recovery job's items and what was left out (section 15).
#[derive(Clone, PartialEq, Debug, Default)]
pub struct RecoveryPlan {
    /// `(group_jid, sealed code)`, newest first.
    pub items: Vec<(String, String)>,
    pub skipped_no_invite: u32,
    pub skipped_member: u32,
    pub skipped_over_limit: u32,
}

/// One item per group where `from` is a member, `to` is neither member nor pending, and a
/// code is kept: in the order of `entries` (the store's: newest first), at most
/// `RECOVERY_MAX`. Of the rest of `from`'s groups, `to` already in (checked first), no code,
/// and past the limit are counted.
pub fn plan_recovery(entries: &[Entry], from: &str, to: &str) -> RecoveryPlan {
    let ordered = entries
        .iter()
        .filter(|e| e.state_of(from) == Some(SeatState::Member));
    let mut plan = RecoveryPlan::default();
    for entry in ordered {
        if matches!(
            entry.state_of(to),
            Some(SeatState::Member | SeatState::Pending)
        ) {
            plan.skipped_member += 1;
        } else if entry.sealed_code.is_none() {
            plan.skipped_no_invite += 1;
        } else if plan.items.len() >= RECOVERY_MAX {
            plan.skipped_over_limit += 1;
        } else if let Some(code) = &entry.sealed_code {
            plan.items.push((entry.group_jid.clone(), code.clone()));
        }
    }
    plan
}

/// Whether the book names this session in any entry, in any state.
pub fn names_session(entries: &[Entry], session: &str) -> bool {
    entries.iter().any(|e| e.seat(session).is_some())
}

/// The `source` of a recovery job's answer.
pub fn source_view(from: &str, plan: &RecoveryPlan) -> Value {
    json!({
        "from_session": from,
        "skipped_no_invite": plan.skipped_no_invite,
        "skipped_member": plan.skipped_member,
        "skipped_over_limit": plan.skipped_over_limit,
    })
}

/// The book's fact in an event raised for the org (section 14's approvals, expiries and
/// server events, and joingate's own joins and leaves): the events carry every fact the
/// book keeps but the code and the subject, which a join's caller adds.
pub fn from_event(event_type: &str, data: &Value, at_ms: i64) -> Option<Update> {
    let text = |key: &str| data.get(key).and_then(Value::as_str).map(str::to_owned);
    let change = match event_type {
        "group.join" => match data.get("status").and_then(Value::as_str)? {
            "joined" | "already_member" => Change::Member,
            "pending_approval" => Change::Pending,
            _ => return None,
        },
        "group.leave" => match data.get("reason").and_then(Value::as_str) {
            Some("removed") => Change::Removed,
            _ => Change::Left,
        },
        "group.join_request.expired" => Change::Expired,
        _ => return None,
    };
    Some(Update {
        group_jid: text("group_jid")?,
        session: text("session_id")?,
        change,
        at_ms,
        subject: None,
        code: None,
    })
}

#[cfg(test)]
mod tests;
