//! The org routes: the group book (contract section 15), `GET /v1/groups` and
//! `GET /v1/groups/{gjid}`, answered by the org's object as the token sees the book (an
//! allow-listed token: only the entries and sessions of its list); and section 16's
//! `GET /v1/token` and `GET /v1/sessions` (`super::lists`). They are org routes: the
//! token's org, no session, and the org-wide limit like every authenticated call.

use serde_json::{json, Value};
use worker::{Date, Env, Request};

use super::auth::{authenticate, load_session, Kv};
use super::config;
use super::org;
use super::reply::Reply;
use super::session::org_limited_error;
use crate::core::book::parse_list_query;
use crate::core::dispatch::OrgAction;
use crate::core::error::ApiError;
use crate::core::lists::{caller_view, parse_query, List};
use crate::core::requests::group_jid;
use crate::core::route::{Access, Route, RouteId};
use crate::core::token::TokenRecord;

/// The query string of a request URL (without `?` and fragment).
pub(super) fn query_of(href: &str) -> &str {
    href.split_once('?')
        .map_or("", |(_, rest)| rest.split('#').next().unwrap_or_default())
}

/// The token behind an org route and its capability (401, then 403; `GET /v1/token`
/// needs none).
async fn org_caller(route: &Route, req: &Request, env: &Env) -> Result<TokenRecord, ApiError> {
    let kv = Kv::from_env(env)?;
    let settings = config::settings(env)?;
    let authorization = req.headers().get("Authorization").ok().flatten();
    let now = Date::now().as_millis() as i64;
    let record = authenticate(&kv, settings.jwt.as_ref(), authorization.as_deref(), now).await?;
    if let Access::Org(capability) = route.spec.access {
        record.check_capability(capability)?;
    }
    Ok(record)
}

/// The org-wide limit, taken at the rate-limit step of the check order.
async fn take_org_limit(env: &Env, org: &str) -> Result<(), ApiError> {
    let settings = config::settings(env)?;
    match org::verdict(env, &settings, org).await.wait_s {
        Some(wait_s) => Err(org_limited_error(wait_s)),
        None => Ok(()),
    }
}

/// The org routes: `GET /v1/groups` and `GET /v1/groups/{gjid}`, and section 16's
/// `GET /v1/token` and `GET /v1/sessions` (`super::lists`). The token (401) and its
/// capability (403), the path and query (400), the org-wide limit (429).
pub async fn org_route(
    route: &Route,
    req: &Request,
    env: &Env,
    rid: &str,
    token_id: &mut Option<String>,
) -> Result<Reply, ApiError> {
    let record = org_caller(route, req, env).await?;
    *token_id = Some(record.token_id.clone());
    let href = req.inner().url();
    let sessions = match route.id() {
        RouteId::ListSessions => Some(parse_query(List::Sessions, query_of(&href))?),
        _ => None,
    };
    let gjid = route.param("gjid").map(group_jid).transpose()?;
    take_org_limit(env, &record.org).await?;
    match (route.id(), sessions) {
        (_, Some(query)) => {
            let data = super::lists::sessions(env, &record, query).await?;
            return Ok(Reply::success(200, data, rid));
        }
        (RouteId::DescribeToken, _) => return Ok(Reply::success(200, caller_view(&record), rid)),
        _ => {}
    }
    let mut data = json!({ "query": query_of(&href) });
    match gjid {
        Some(gjid) => data["group_jid"] = Value::from(gjid.to_string()),
        None => {
            // `?session=`: a session of the token's org is known even before the book
            // names it (the object answers 404 for one it neither knows nor names).
            let session = parse_list_query(query_of(&href))?.session;
            let known = match session {
                Some(sid) => load_session(&Kv::from_env(env)?, &sid)
                    .await?
                    .is_some_and(|s| s.org == record.org),
                None => true,
            };
            data["known"] = Value::from(known);
        }
    }
    if let Some(list) = &record.sessions {
        data["visible"] = json!(list);
    }
    let answer = org::ask_data(env, &record.org, &OrgAction::Groups { data }).await?;
    Ok(Reply::success(200, answer, rid))
}

/// The items and `source` of a recovery job for session `to` from session `from`, built by
/// the org's object from its book (the codes opened there, never shown).
pub async fn recovery(
    env: &Env,
    record: &TokenRecord,
    from: &str,
    to: &str,
) -> Result<Value, ApiError> {
    let mut data = json!({ "from": from, "to": to });
    if let Some(list) = &record.sessions {
        data["visible"] = json!(list);
    }
    org::ask_data(env, &record.org, &OrgAction::Recover { data }).await
}
