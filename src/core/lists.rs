//! Section 16's lists: `GET /v1/sessions`, `GET /v1/admin/sessions` and
//! `GET /v1/admin/tokens`, paged over KV's key listing, and `GET /v1/token`. Pure: the
//! query, joingate's cursor, what a KV key's metadata shows, and how a page is filled and
//! where the next one starts; the edge only lists and reads.
//!
//! A page walks the keys of one prefix (`session:`, `token_id:`) in KV's order (ids are
//! ASCII, so that is plain string order). Where a page stands is the last id it examined
//! and the KV cursor of the KV page that holds it: the next page lists that KV page again
//! and skips what is not after the id, so no id is shown twice, whatever was written in
//! between. The cursor joingate answers is that position, hex, with a checksum.

use serde_json::{json, Value};

use super::backend::events::hex_decode;
use super::backend::spec::StoredBackend;
use super::book::{LIST_DEFAULT, LIST_MAX};
use super::dispatch::SessionRecord;
use super::envelope::hex;
use super::error::ApiError;
use super::ids::{OrgId, SessionId};
use super::limits::Limits;
use super::time::format_rfc3339;
use super::token::{is_token_id, sha256_hex, TokenRecord};

/// Keys asked of each KV list (KV's most).
pub const KV_PAGE: u32 = 1000;
/// KV lists one page may make while filtering leaves it short (an org's or a token's share
/// of the keys); past them the page is answered short, with `next_cursor`.
pub const MAX_KV_LISTS: usize = 3;
/// Record reads one page may make (the records it shows, and records without metadata
/// that a filter must read to hide).
pub const MAX_READS: usize = 400;
/// KV keeps at most 1024 bytes of metadata per key.
pub const MAX_METADATA_BYTES: usize = 1000;
const MAX_CURSOR_CHARS: usize = 4096;

/// Which list, and so which KV prefix and which view.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum List {
    /// `GET /v1/sessions`: `{ session_id, backend_kind }` of the token's org.
    Sessions,
    /// `GET /v1/admin/sessions`: the admin session view.
    AdminSessions,
    /// `GET /v1/admin/tokens`: the token view.
    Tokens,
}

impl List {
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Tokens => "token_id:",
            _ => "session:",
        }
    }

    /// The answer's field: `sessions` or `tokens`.
    pub fn field(self) -> &'static str {
        match self {
            Self::Tokens => "tokens",
            _ => "sessions",
        }
    }

    fn is_id(self, id: &str) -> bool {
        match self {
            Self::Tokens => is_token_id(id),
            _ => SessionId::parse(id).is_ok(),
        }
    }
}

/// Where a list stands: after `last` (`""`: before the first id), in the KV page that
/// the KV cursor `kv` lists (`None`: the first).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Position {
    pub last: String,
    /// KV's cursor; empty for the first KV page.
    pub kv: String,
}

/// The cursor of a position: hex of `prefix last ":" kv` and 8 hex digits of its SHA-256,
/// so that a cursor changed, cut short or made up is refused before KV sees it.
pub fn encode_cursor(list: List, at: &Position) -> String {
    let body = format!("{}{}:{}", list.prefix(), at.last, at.kv);
    hex(body.as_bytes()) + &sha256_hex(&body)[..8]
}

/// The position of a cursor of this list, if it is one (the canonical hex only).
pub fn decode_cursor(list: List, text: &str) -> Option<Position> {
    let head = text.get(..text.len().checked_sub(8)?);
    let head = head.filter(|_| text.len() <= MAX_CURSOR_CHARS)?;
    let body = String::from_utf8(hex_decode(head)?).ok()?;
    let (last, kv) = body.strip_prefix(list.prefix())?.split_once(':')?;
    let at = Position {
        last: last.to_string(),
        kv: kv.to_string(),
    };
    // Made again, it is the same text: the canonical hex, and the checksum holds.
    ((last.is_empty() || list.is_id(last)) && encode_cursor(list, &at) == text).then_some(at)
}

/// A list query's `limit` (1–200, default 50; not a whole number in that range is a
/// `validation_error` naming it) and the values of two other parameters (`None`: absent).
/// The last of a name counts; unknown names are ignored.
pub fn list_params(
    query: &str,
    names: [&str; 2],
) -> Result<(usize, [Option<String>; 2]), ApiError> {
    let mut limit = LIST_DEFAULT;
    let mut values = [None, None];
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if key == "limit" {
            limit = value
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=LIST_MAX).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid("limit", "must be a whole number from 1 to 200")
                })?;
        }
        for (name, slot) in names.iter().zip(values.iter_mut()) {
            if key == *name {
                *slot = Some(value.to_string());
            }
        }
    }
    Ok((limit, values))
}

/// A validated list query.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ListQuery {
    /// The admin lists' `?org=` (a tenant list is always its token's org).
    pub org: Option<String>,
    pub limit: usize,
    pub from: Position,
}

/// The query string (without `?`): `limit`, `cursor`, and for the admin lists `org`.
pub fn parse_query(list: List, query: &str) -> Result<ListQuery, ApiError> {
    let (limit, [cursor, org]) = list_params(query, ["cursor", "org"])?;
    let from = match cursor {
        Some(cursor) => decode_cursor(list, &cursor)
            .ok_or_else(|| ApiError::invalid("cursor", "is not a cursor of this list"))?,
        None => Position::default(),
    };
    let org = match org.filter(|_| list != List::Sessions) {
        Some(org) => Some(
            OrgId::parse(&org)
                .map_err(|e| ApiError::invalid("org", e.0))?
                .to_string(),
        ),
        None => None,
    };
    Ok(ListQuery { org, limit, from })
}

/// What one key shows, as far as its metadata tells.
#[derive(Clone, PartialEq, Debug)]
pub enum Seen {
    /// Not on this page's list (another org).
    Hidden,
    /// Shown as it is.
    Shown(Value),
    /// Its record must be read: from the key itself, or (a token's) from `token:{hash}`.
    Read(Option<String>),
}

/// One key of a KV page, by its id.
#[derive(Clone, PartialEq, Debug)]
pub struct Entry {
    pub id: String,
    pub seen: Seen,
}

/// What a key shows from its metadata (`Null` when it has none: written before v1.2).
pub fn seen(list: List, org: Option<&str>, id: &str, meta: &Value) -> Seen {
    let of = meta["org"].as_str();
    if org.is_some_and(|org| of.is_some_and(|of| of != org)) {
        return Seen::Hidden;
    }
    match (list, of, &meta["backend_kind"], &meta["token_id"]) {
        (List::Sessions, Some(_), Value::String(kind), _) => Seen::Shown(summary(id, kind)),
        (List::Tokens, _, _, Value::String(token_id)) if token_id == id => {
            Seen::Shown(meta.clone())
        }
        _ => Seen::Read(None),
    }
}

/// How many of `entries` the next round of reads covers: until `wanted` of them may be
/// shown, with at most `budget` reads.
pub fn window(entries: &[Entry], wanted: usize, budget: usize) -> usize {
    let (mut shown, mut reads) = (0, 0);
    for (index, entry) in entries.iter().enumerate() {
        let read = matches!(entry.seen, Seen::Read(_));
        if shown == wanted || (read && reads == budget) {
            return index;
        }
        shown += usize::from(!matches!(entry.seen, Seen::Hidden));
        reads += usize::from(read);
    }
    entries.len()
}

/// What the edge does next for a page: list a KV page from a KV cursor, read these keys
/// (all at once; `None` for an absent one), or answer.
#[derive(Clone, PartialEq, Debug)]
pub enum Step {
    /// From this KV cursor (empty: the first KV page).
    List(String),
    Read(Vec<String>),
    Done(Value),
}

/// One page being walked: every decision of the edge's loop, which only lists and reads.
/// The page takes the entries in order; one found beyond it says there is more.
#[derive(Clone, PartialEq, Debug)]
pub struct Walk {
    list: List,
    org: Option<String>,
    /// The deployment's limits, for the admin session view.
    defaults: Limits,
    limit: usize,
    items: Vec<Value>,
    /// The last id examined, and the KV page it is in.
    at: Position,
    /// An entry beyond the page was found.
    more: bool,
    /// The last KV page was examined to its end.
    exhausted: bool,
    lists: usize,
    reads: usize,
    /// The entries of the KV page not yet examined, and the next KV page's cursor (empty:
    /// that was the last).
    entries: Vec<Entry>,
    next: String,
    /// The entries of the round being read: `entries[..window]`.
    window: usize,
    /// Whether this round reads tokens' hashes (their index keys), not records.
    hashes: bool,
    /// Whether the step asked is a KV list (else reads).
    listing: bool,
}

impl Walk {
    /// A page of `list`: `org`'s entries (any org: `None`). `allowed`: only these
    /// sessions, each read by id (picked smallest first: at most 100, and the standard
    /// library's sort is about 3 KB of wasm), no KV list.
    pub fn start(
        list: List,
        org: Option<&str>,
        query: ListQuery,
        allowed: Option<&[String]>,
        defaults: Limits,
    ) -> (Self, Step) {
        let mut walk = Self {
            list,
            org: org.map(str::to_owned),
            defaults,
            limit: query.limit,
            items: Vec::new(),
            at: query.from,
            more: false,
            exhausted: false,
            lists: 0,
            reads: 0,
            entries: Vec::new(),
            next: String::new(),
            window: 0,
            hashes: false,
            listing: true,
        };
        let Some(allowed) = allowed else {
            let step = Step::List(walk.at.kv.clone());
            return (walk, step);
        };
        walk.listing = false;
        let mut after = walk.at.last.as_str();
        while let Some(id) = allowed.iter().filter(|id| id.as_str() > after).min() {
            walk.entries.push(Entry {
                id: id.clone(),
                seen: Seen::Read(None),
            });
            after = id;
        }
        let step = walk.round();
        (walk, step)
    }

    /// The KV prefix this walk lists.
    pub fn prefix(&self) -> &'static str {
        self.list.prefix()
    }

    /// The answer to the step asked: KV's to a list, or the texts read (`null`: absent).
    pub fn answered(&mut self, answer: &Value) -> Step {
        if self.listing {
            self.listing = false;
            return self.listed(answer);
        }
        let texts = answer.as_array().map_or(&[][..], Vec::as_slice);
        self.read(
            texts
                .iter()
                .map(|t| t.as_str().map(str::to_owned))
                .collect(),
        )
    }

    /// KV's answer to a list (`{ keys: [{ name, metadata? }], list_complete, cursor? }`):
    /// its keys after the position that hold a valid id, each with what its metadata shows.
    fn listed(&mut self, answer: &Value) -> Step {
        self.lists += 1;
        for key in answer["keys"].as_array().into_iter().flatten() {
            let Some(id) = key["name"]
                .as_str()
                .and_then(|n| n.strip_prefix(self.list.prefix()))
            else {
                continue;
            };
            if id > self.at.last.as_str() && self.list.is_id(id) {
                let seen = seen(self.list, self.org.as_deref(), id, &key["metadata"]);
                let id = id.to_string();
                self.entries.push(Entry { id, seen });
            }
        }
        self.next = match (&answer["list_complete"], &answer["cursor"]) {
            (Value::Bool(false), Value::String(kv)) => kv.clone(),
            _ => String::new(),
        };
        self.round()
    }

    /// The texts of the keys of the last `Step::Read`, in order.
    fn read(&mut self, texts: Vec<Option<String>>) -> Step {
        self.reads += texts.len();
        let mut texts = texts.into_iter();
        for entry in &mut self.entries[..self.window] {
            let Seen::Read(hash) = &entry.seen else {
                continue;
            };
            if self.hashes && hash.is_some() {
                continue;
            }
            let text = texts.next().flatten().unwrap_or_default();
            entry.seen = if self.hashes {
                // A token's hash, from its index key (written before v1.2).
                match serde_json::from_str::<String>(&text) {
                    Ok(hash) => Seen::Read(Some(hash)),
                    Err(_) => Seen::Hidden,
                }
            } else {
                let org = self.org.as_deref();
                match record_view(self.list, org, self.defaults, &entry.id, &text) {
                    Some(view) => Seen::Shown(view),
                    None => Seen::Hidden,
                }
            };
        }
        if !self.hashes {
            self.take();
        }
        self.round()
    }

    /// The next round: the entries up to the next `wanted` that may be shown (within the
    /// reads left), their reads asked (a token's hash first when its metadata does not say
    /// it); at the end of a KV page, the next one while the page is short (within
    /// `MAX_KV_LISTS`); else the answer.
    fn round(&mut self) -> Step {
        loop {
            if self.entries.is_empty() && !self.more {
                let next = std::mem::take(&mut self.next);
                self.exhausted = next.is_empty();
                if !self.exhausted {
                    self.at.kv = next;
                    if self.items.len() < self.limit && self.lists < MAX_KV_LISTS {
                        self.listing = true;
                        return Step::List(self.at.kv.clone());
                    }
                }
            }
            let wanted = if self.more {
                0
            } else {
                self.limit + 1 - self.items.len()
            };
            self.window = window(&self.entries, wanted, MAX_READS.saturating_sub(self.reads));
            if self.window == 0 {
                return self.answer();
            }
            let round = &self.entries[..self.window];
            let unread = round.iter().any(|e| matches!(e.seen, Seen::Read(None)));
            self.hashes = self.list == List::Tokens && unread;
            let keys: Vec<String> = round
                .iter()
                .filter_map(|e| {
                    let (prefix, name) = match &e.seen {
                        Seen::Read(Some(hash)) if !self.hashes => ("token:", hash),
                        Seen::Read(None) => (self.list.prefix(), &e.id),
                        _ => return None,
                    };
                    Some(format!("{prefix}{name}"))
                })
                .collect();
            if !keys.is_empty() {
                return Step::Read(keys);
            }
            // Nothing to read: the metadata showed it all.
            self.take();
        }
    }

    /// Takes the round's entries into the page, in order (the records read are shown or
    /// hidden by now).
    fn take(&mut self) {
        for entry in self.entries.drain(..self.window) {
            let item = match entry.seen {
                Seen::Shown(view) => Some(view),
                _ => None,
            };
            match item {
                _ if self.more => {}
                Some(_) if self.items.len() == self.limit => self.more = true,
                item => {
                    self.items.extend(item);
                    self.at.last = entry.id;
                }
            }
        }
        self.window = 0;
    }

    /// `{ "sessions"|"tokens": [...], "next_cursor"? }`: a cursor unless the keys ran out.
    fn answer(&mut self) -> Step {
        let mut data = json!({});
        data[self.list.field()] = Value::Array(std::mem::take(&mut self.items));
        if !self.exhausted {
            data["next_cursor"] = Value::from(encode_cursor(self.list, &self.at));
        }
        Step::Done(data)
    }
}

/// What a record read for a list shows (`None`: not the filter's, or not a record).
fn record_view(
    list: List,
    org: Option<&str>,
    defaults: Limits,
    id: &str,
    text: &str,
) -> Option<Value> {
    if list == List::Tokens {
        let record = serde_json::from_str::<TokenRecord>(text).ok()?;
        return token_shown(id, &record, org);
    }
    let record = serde_json::from_str::<SessionRecord>(text).ok()?;
    match (list, org) {
        (List::Sessions, org) => session_summary(id, &record, org?),
        (_, Some(org)) if org != record.org => None,
        _ => Some(admin_session_view(defaults, id, &record)),
    }
}

/// The admin answer for a session record (`PUT`, `GET` and the list): limits complete (the
/// join caps only where set), the backend without its credential, `protection` as set
/// (`{}`: nothing).
pub fn admin_session_view(defaults: Limits, sid: &str, record: &SessionRecord) -> Value {
    json!({
        "session_id": sid,
        "org": record.org,
        "limits": defaults.with_overrides(&record.limits),
        "backend": record.backend.as_ref().map(StoredBackend::view),
        "protection": record.protection,
        "events": record.events.is_some(),
    })
}

/// What a session key holds as metadata: enough for `GET /v1/sessions` and an org filter
/// without reading the record.
pub fn session_metadata(record: &SessionRecord) -> Value {
    json!({ "org": record.org, "backend_kind": backend_kind(record) })
}

fn backend_kind(record: &SessionRecord) -> &'static str {
    record
        .backend
        .as_ref()
        .map_or(super::backend::Kind::Joingate, |b| b.kind)
        .as_str()
}

/// A session of `GET /v1/sessions`, from its record, when it is `org`'s.
pub fn session_summary(id: &str, record: &SessionRecord, org: &str) -> Option<Value> {
    (record.org == org).then(|| summary(id, backend_kind(record)))
}

fn summary(id: &str, backend_kind: &str) -> Value {
    json!({ "session_id": id, "backend_kind": backend_kind })
}

/// What every description of a token shows: `{ org, capabilities, sessions?, expires_at? }`
/// (never the token, never its hash).
fn token_base(record: &TokenRecord) -> Value {
    let mut view = json!({ "org": record.org, "capabilities": record.capabilities });
    if let Some(sessions) = &record.sessions {
        view["sessions"] = json!(sessions);
    }
    if let Some(at) = record.expires_at {
        view["expires_at"] = Value::from(format_rfc3339(at * 1000));
    }
    view
}

/// A token as `POST /v1/admin/tokens` answers it (`token` shown once) or, without it, as
/// the admin list shows it (with `created_at` and `revoked`).
pub fn token_view(record: &TokenRecord, token: Option<&str>) -> Value {
    let mut view = token_base(record);
    view["token_id"] = Value::from(record.token_id.as_str());
    match token {
        Some(token) => view["token"] = Value::from(token),
        None => {
            view["created_at"] = Value::from(format_rfc3339(record.created_at * 1000));
            view["revoked"] = Value::from(record.revoked);
        }
    }
    if let Some(label) = &record.label {
        view["label"] = Value::from(label.as_str());
    }
    view
}

/// A token of the admin list, from its record, when it is `org`'s (any org: `None`).
pub fn token_shown(id: &str, record: &TokenRecord, org: Option<&str>) -> Option<Value> {
    (record.token_id == id && org.is_none_or(|org| org == record.org))
        .then(|| token_view(record, None))
}

/// What a `token_id:` key holds as metadata: the token's view when it fits, else its org
/// (the list then reads the record, as for a key written before v1.2).
pub fn token_metadata(record: &TokenRecord) -> Value {
    let view = token_view(record, None);
    if view.to_string().len() <= MAX_METADATA_BYTES {
        view
    } else {
        json!({ "org": record.org })
    }
}

/// `GET /v1/token`: the caller's token described (`login`: a person's login token).
pub fn caller_view(record: &TokenRecord) -> Value {
    let mut view = token_base(record);
    let login = record.token_id.starts_with("jwt:");
    view["kind"] = Value::from(if login { "login" } else { "api_token" });
    view
}

#[cfg(test)]
mod tests;
