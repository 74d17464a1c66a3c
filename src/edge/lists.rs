//! Section 16's lists: the KV lists and reads that `core::lists::Walk` asks for, one after
//! the other, until it answers (`GET /v1/token` and the checks of `GET /v1/sessions` are
//! `super::groups::org_route`'s, the org routes').
//!
//! A page costs one KV list (`session:` or `token_id:` keys, up to 1,000, with the
//! metadata written beside each record) and the reads of the records it shows that the
//! metadata does not hold (an admin session view; a key written before v1.2). While an
//! org filter leaves the page short it lists again, at most `MAX_KV_LISTS` times, and
//! reads at most `MAX_READS` records; then it answers the page short, with `next_cursor`.
//! An allow-listed token's sessions are read by id (at most 100), with no list.

use serde_json::Value;
use worker::{Env, Request};

use super::auth::{settle_json, Kv};
use super::config;
use super::groups::query_of;
use crate::core::error::ApiError;
use crate::core::lists::{parse_query, List, ListQuery, Step, Walk};
use crate::core::token::TokenRecord;

/// `GET /v1/sessions` (`super::groups::org_route` checked the token, the query and the
/// org-wide limit): the token's org's sessions, or its allow-list's.
pub async fn sessions(
    env: &Env,
    record: &TokenRecord,
    query: ListQuery,
) -> Result<Value, ApiError> {
    let (org, allowed) = (Some(record.org.as_str()), record.sessions.as_deref());
    let defaults = config::settings(env)?.limits;
    walk(
        env,
        Walk::start(List::Sessions, org, query, allowed, defaults),
    )
    .await
}

/// `GET /v1/admin/sessions` and `GET /v1/admin/tokens` (the admin token already checked).
pub async fn admin_list(env: &Env, list: List, req: &Request) -> Result<Value, ApiError> {
    let query = parse_query(list, query_of(&req.inner().url()))?;
    let org = query.org.clone();
    let defaults = config::settings(env)?.limits;
    walk(
        env,
        Walk::start(list, org.as_deref(), query, None, defaults),
    )
    .await
}

/// Lists and reads what the walk asks, until it answers.
async fn walk(env: &Env, (mut walk, mut step): (Walk, Step)) -> Result<Value, ApiError> {
    let kv = Kv::from_env(env)?;
    loop {
        let asked = match step {
            Step::List(cursor) => kv.list(walk.prefix(), &cursor),
            Step::Read(keys) => kv.get_all(&keys),
            Step::Done(data) => return Ok(data),
        };
        step = walk.answered(&settle_json(asked).await?);
    }
}
