//! The org object's group book and join policy (contract section 15). The decisions are
//! `core::book`'s and `core::policy`'s; this file reads and writes the rows, seals and
//! opens the kept codes (WebCrypto, `CREDENTIALS_KEY`, the org and group as additional
//! data) and answers. A code is sealed before the entry is read, so that no await falls
//! between the read and the write of an entry: one writer, no lost update.

use serde_json::{json, Value};

use super::super::crypto;
use super::{log_failure, OrgObject};
use crate::core::book::{
    self, cursor_of, names_session, parse_list_query, plan_recovery, source_view, view, visible_to,
    Entry, Update, LIST_MAX,
};
use crate::core::error::ApiError;
use crate::core::policy::{Policy, PolicyMode};
use crate::edge::store::OrgStore;

/// Rows read per step while a page is filled (an allow-list or `?session=` may skip many).
const SCAN_BATCH: usize = 200;

/// Unicode lower case by the runtime (`String.prototype.toLowerCase`): the same mapping
/// as Rust's, without its case tables in the wasm.
fn js_lower(text: &str) -> String {
    worker::js_sys::JsString::from(text).to_lower_case().into()
}

/// The session allow-list of the asking token (`None`: all of the org's sessions).
fn visible_of(data: &Value) -> Option<Vec<String>> {
    data.get("visible").and_then(Value::as_array).map(|list| {
        list.iter()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    })
}

fn text_of<'a>(data: &'a Value, key: &str) -> &'a str {
    data.get(key).and_then(Value::as_str).unwrap_or_default()
}

impl OrgObject {
    /// The org's policy, from memory or storage (this object is its only writer).
    pub(super) fn policy(&self, store: &OrgStore) -> worker::Result<Policy> {
        if let Some(policy) = self.policy.borrow().as_ref() {
            return Ok(policy.clone());
        }
        let policy = match store.policy()? {
            None => Policy::default(),
            Some(body) => serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| Policy::parse(&v).ok())
                .unwrap_or_default(),
        };
        *self.policy.borrow_mut() = Some(policy.clone());
        Ok(policy)
    }

    /// Stores a new policy (an empty one removes it).
    pub(super) fn save_policy(&self, store: &OrgStore, policy: Policy) -> worker::Result<()> {
        let body = policy.view();
        let empty = body.as_object().is_none_or(|o| o.is_empty());
        store.save_policy((!empty).then(|| body.to_string()).as_deref())?;
        if let Some(live) = self.live.borrow_mut().as_mut() {
            live.policy_mode = policy.mode();
        }
        *self.policy.borrow_mut() = Some(policy);
        Ok(())
    }

    /// Writes what one fact changes in the book.
    pub(super) async fn apply_update(
        &self,
        store: &OrgStore,
        org: &str,
        update: &Update,
    ) -> worker::Result<()> {
        let key = self.settings()?.credentials_key.clone();
        let sealed = match (&update.code, key) {
            (Some(code), Some(key)) => {
                match crypto::seal_code(&key, org, &update.group_jid, code).await {
                    Ok(sealed) => Some(sealed),
                    Err(_) => {
                        log_failure(
                            "invite code not kept",
                            &worker::Error::RustError("seal failed".into()),
                        );
                        None
                    }
                }
            }
            _ => None,
        };
        let entry = store.book_entry(&update.group_jid)?;
        if let Some(entry) = book::apply(entry, update, sealed) {
            store.save_entry(&entry)?;
        }
        Ok(())
    }

    /// The book's actions: facts, the two read routes, recovery, and the policy's verdicts.
    pub(super) async fn book_act(
        &self,
        store: &OrgStore,
        org: &str,
        kind: BookAsk,
    ) -> Result<(u16, Value), ApiError> {
        let failed = |error: worker::Error| {
            log_failure("org object failure", &error);
            ApiError::internal()
        };
        match kind {
            BookAsk::Facts(updates) => {
                for update in &updates {
                    self.apply_update(store, org, update)
                        .await
                        .map_err(failed)?;
                }
                Ok((200, json!({ "done": true })))
            }
            BookAsk::Groups(data) => self.groups(store, &data).map_err(|e| match e {
                Failure::Api(error) => error,
                Failure::Store(error) => failed(error),
            }),
            BookAsk::Recover(data) => self.recover(store, org, &data).await.map_err(|e| match e {
                Failure::Api(error) => error,
                Failure::Store(error) => failed(error),
            }),
            BookAsk::Judge(data) => {
                let policy = self.policy(store).map_err(failed)?;
                let group_jid = text_of(&data, "group_jid");
                let verdict = if data["message"] == true {
                    policy.judge_message(group_jid)
                } else {
                    policy.judge(
                        &crate::core::policy::GroupFacts {
                            group_jid: group_jid.to_string(),
                            subject: data
                                .get("subject")
                                .and_then(Value::as_str)
                                .map(str::to_owned),
                            size: data.get("size").and_then(Value::as_u64),
                        },
                        js_lower,
                    )
                };
                Ok((
                    200,
                    match verdict {
                        Ok(()) => json!({ "allowed": true }),
                        Err(rule) => json!({ "allowed": false, "rule": rule.as_str() }),
                    },
                ))
            }
            BookAsk::Mode => {
                let mode: PolicyMode = self.policy(store).map_err(failed)?.mode();
                Ok((200, mode.view()))
            }
        }
    }

    /// `GET /v1/groups` and `GET /v1/groups/{gjid}`, as the token sees the book.
    fn groups(&self, store: &OrgStore, data: &Value) -> Result<(u16, Value), Failure> {
        let visible = visible_of(data);
        let visible = visible.as_deref();
        if let Some(group_jid) = data.get("group_jid").and_then(Value::as_str) {
            let entry = store
                .book_entry(group_jid)?
                .filter(|e| visible_to(e, visible))
                .ok_or_else(ApiError::not_found)?;
            return Ok((200, view(&entry, visible)));
        }
        let query = parse_list_query(text_of(data, "query"))?;
        if let (Some(session), Some(list)) = (&query.session, visible) {
            if !list.contains(session) {
                return Err(ApiError::not_found().into());
            }
        }
        let wanted = |entry: &Entry| {
            visible_to(entry, visible)
                && query
                    .session
                    .as_ref()
                    .is_none_or(|s| entry.seats.iter().any(|seat| &seat.session == s))
        };
        let mut after = query.cursor.clone();
        let mut page: Vec<Entry> = Vec::new();
        // One more than the page shows: whether a next page exists.
        while page.len() <= query.limit {
            let batch = store.book_page(after.as_ref(), SCAN_BATCH.max(query.limit + 1))?;
            let Some(last) = batch.last() else { break };
            after = Some((last.updated_ms, last.group_jid.clone()));
            let full = batch.len() < SCAN_BATCH.max(query.limit + 1);
            page.extend(batch.into_iter().filter(|e| wanted(e)));
            if full {
                break;
            }
        }
        // A `?session=` neither of the org (the Worker's `known`) nor in the book is unknown.
        if let (Some(session), true, false) =
            (&query.session, page.is_empty(), data["known"] == true)
        {
            let all =
                store.book_page(None, usize::try_from(book::MAX_ENTRIES).unwrap_or(10_000))?;
            if !names_session(&all, session) {
                return Err(ApiError::not_found().into());
            }
        }
        let more = page.len() > query.limit;
        page.truncate(query.limit.min(LIST_MAX));
        let mut answer = json!({
            "groups": page.iter().map(|e| view(e, visible)).collect::<Vec<_>>(),
        });
        if let (true, Some(last)) = (more, page.last()) {
            answer["next_cursor"] = Value::from(cursor_of(last));
        }
        Ok((200, answer))
    }

    /// A recovery job's items: the plan from the book, its codes opened here.
    async fn recover(
        &self,
        store: &OrgStore,
        org: &str,
        data: &Value,
    ) -> Result<(u16, Value), Failure> {
        let (from, to) = (text_of(data, "from"), text_of(data, "to"));
        let visible = visible_of(data);
        if visible
            .as_ref()
            .is_some_and(|list| !list.iter().any(|s| s == from))
        {
            return Err(ApiError::not_found().into());
        }
        let entries =
            store.book_page(None, usize::try_from(book::MAX_ENTRIES).unwrap_or(10_000))?;
        if !names_session(&entries, from) {
            return Err(ApiError::not_found().into());
        }
        let mut plan = plan_recovery(&entries, from, to);
        let key = self.settings()?.credentials_key.clone();
        let mut items = Vec::with_capacity(plan.items.len());
        for (group_jid, sealed) in std::mem::take(&mut plan.items) {
            let opened = match &key {
                Some(key) => crypto::open_code(key, org, &group_jid, &sealed).await.ok(),
                None => None,
            };
            match opened {
                Some(code) => items.push(json!({ "group_jid": group_jid, "code": code })),
                // A code that no longer opens (another key) is no code.
                None => plan.skipped_no_invite += 1,
            }
        }
        if items.is_empty() {
            return Err(ApiError::invalid(
                "from_session",
                "the group book has no group to join for this session from that one",
            )
            .into());
        }
        Ok((
            200,
            json!({ "items": items, "source": source_view(from, &plan) }),
        ))
    }
}

/// A book action, as `act` hands it over.
pub(super) enum BookAsk {
    Facts(Vec<Update>),
    Groups(Value),
    Recover(Value),
    Judge(Value),
    Mode,
}

enum Failure {
    Api(ApiError),
    Store(worker::Error),
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Self {
        Self::Api(error)
    }
}

impl From<worker::Error> for Failure {
    fn from(error: worker::Error) -> Self {
        Self::Store(error)
    }
}
