//! The route table (contract section 4): the one place that says each route's method, path
//! template, who may call it and which rate-limit class it spends. Resolving a request is a
//! pure function of method and path over this table, so 404/405 answers, `Allow` headers and
//! log templates all come from it, and a new route is one new row.

use super::error::ApiError;
use super::json::MAX_BODY_BYTES;
use super::limits::Class;
use super::token::Capability;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
    Other,
}

impl Method {
    pub fn parse(name: &str) -> Self {
        match name {
            "GET" => Self::Get,
            "POST" => Self::Post,
            "PUT" => Self::Put,
            "DELETE" => Self::Delete,
            _ => Self::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Delete => "DELETE",
            Self::Other => "OTHER",
        }
    }
}

/// Which route a request matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteId {
    Healthz,
    OpenApi,
    Join,
    Preview,
    Leave,
    ListJoinRequests,
    ApproveJoinRequests,
    RejectJoinRequests,
    ResetInvite,
    SessionStatus,
    CreateToken,
    RevokeToken,
    PutSession,
    GetSession,
    DeleteSession,
    SubmitJob,
    ListJobs,
    GetJob,
    PauseJob,
    ResumeJob,
    CancelJob,
    PutOrg,
    GetOrg,
    PutWebhook,
    GetWebhook,
    DeleteWebhook,
    ListDeliveries,
    Redeliver,
    PendingJoins,
    GroupMembership,
    ServerEvents,
    ListGroups,
    GetGroup,
    DescribeToken,
    ListSessions,
    ListAdminSessions,
    ListTokens,
}

impl RouteId {
    /// The largest body the route takes (contract section 1): 16 KiB, but 256 KiB for a
    /// join-job submit (500 items of the longest form), 512 KiB for an org's record (a
    /// policy's group list) and 64 KiB for a server's event (section 14).
    pub fn max_body_bytes(self) -> usize {
        match self {
            Self::SubmitJob => 256 * 1024,
            Self::PutOrg => 512 * 1024,
            Self::ServerEvents => 64 * 1024,
            _ => MAX_BODY_BYTES,
        }
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    /// `Authorization: Bearer <ADMIN_TOKEN>`.
    Admin,
    /// A client token with this capability, on a session of its org.
    Session(Capability),
    /// A client token with this capability, on its org's own records (section 15's book,
    /// section 16's session list).
    Org(Capability),
    /// Any client token, API or login, whatever its capabilities (`GET /v1/token`).
    AnyToken,
}

/// One row of the route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    pub id: RouteId,
    pub method: Method,
    pub template: &'static str,
    pub access: Access,
    /// The rate-limit class a session route spends (every session route has one).
    pub class: Option<Class>,
}

const fn row(
    id: RouteId,
    method: Method,
    template: &'static str,
    access: Access,
    class: Option<Class>,
) -> RouteSpec {
    RouteSpec {
        id,
        method,
        template,
        access,
        class,
    }
}

const fn session(
    id: RouteId,
    method: Method,
    template: &'static str,
    capability: Capability,
    class: Class,
) -> RouteSpec {
    row(
        id,
        method,
        template,
        Access::Session(capability),
        Some(class),
    )
}

use Capability as Cap;
use Method::{Delete, Get, Post, Put};

/// A session route that spends no session bucket (the join-job routes: an item spends its
/// `join` token when it runs).
const fn job(
    id: RouteId,
    method: Method,
    template: &'static str,
    capability: Capability,
) -> RouteSpec {
    row(id, method, template, Access::Session(capability), None)
}

/// Every route joingate serves. The OpenAPI test reads the (method, template) pairs from here.
pub const ROUTES: [RouteSpec; 37] = [
    row(RouteId::Healthz, Get, "/healthz", Access::Public, None),
    row(
        RouteId::OpenApi,
        Get,
        "/v1/openapi.json",
        Access::Public,
        None,
    ),
    session(
        RouteId::Join,
        Post,
        "/v1/sessions/{sid}/groups/join",
        Cap::Join,
        Class::Join,
    ),
    session(
        RouteId::Preview,
        Get,
        "/v1/sessions/{sid}/invites/{invite}",
        Cap::Read,
        Class::Read,
    ),
    session(
        RouteId::Leave,
        Post,
        "/v1/sessions/{sid}/groups/{gjid}/leave",
        Cap::Join,
        Class::Join,
    ),
    session(
        RouteId::ListJoinRequests,
        Get,
        "/v1/sessions/{sid}/groups/{gjid}/join-requests",
        Cap::Manage,
        Class::Manage,
    ),
    session(
        RouteId::ApproveJoinRequests,
        Post,
        "/v1/sessions/{sid}/groups/{gjid}/join-requests/approve",
        Cap::Manage,
        Class::Manage,
    ),
    session(
        RouteId::RejectJoinRequests,
        Post,
        "/v1/sessions/{sid}/groups/{gjid}/join-requests/reject",
        Cap::Manage,
        Class::Manage,
    ),
    session(
        RouteId::ResetInvite,
        Post,
        "/v1/sessions/{sid}/groups/{gjid}/invite/reset",
        Cap::Manage,
        Class::Manage,
    ),
    session(
        RouteId::SessionStatus,
        Get,
        "/v1/sessions/{sid}",
        Cap::Read,
        Class::Read,
    ),
    session(
        RouteId::GroupMembership,
        Get,
        "/v1/sessions/{sid}/groups/{gjid}",
        Cap::Read,
        Class::Read,
    ),
    job(
        RouteId::PendingJoins,
        Get,
        "/v1/sessions/{sid}/pending-joins",
        Cap::Read,
    ),
    // The server's events: the token in the path is the credential (section 14).
    row(
        RouteId::ServerEvents,
        Post,
        "/v1/hooks/{sid}/{hook_token}",
        Access::Public,
        None,
    ),
    row(
        RouteId::ListGroups,
        Get,
        "/v1/groups",
        Access::Org(Cap::Read),
        None,
    ),
    row(
        RouteId::GetGroup,
        Get,
        "/v1/groups/{gjid}",
        Access::Org(Cap::Read),
        None,
    ),
    // Section 16's lists: org routes too (the token's org, the org-wide limit).
    row(
        RouteId::DescribeToken,
        Get,
        "/v1/token",
        Access::AnyToken,
        None,
    ),
    row(
        RouteId::ListSessions,
        Get,
        "/v1/sessions",
        Access::Org(Cap::Read),
        None,
    ),
    job(
        RouteId::SubmitJob,
        Post,
        "/v1/sessions/{sid}/join-jobs",
        Cap::Join,
    ),
    job(
        RouteId::ListJobs,
        Get,
        "/v1/sessions/{sid}/join-jobs",
        Cap::Read,
    ),
    job(
        RouteId::GetJob,
        Get,
        "/v1/sessions/{sid}/join-jobs/{job_id}",
        Cap::Read,
    ),
    job(
        RouteId::PauseJob,
        Post,
        "/v1/sessions/{sid}/join-jobs/{job_id}/pause",
        Cap::Join,
    ),
    job(
        RouteId::ResumeJob,
        Post,
        "/v1/sessions/{sid}/join-jobs/{job_id}/resume",
        Cap::Join,
    ),
    job(
        RouteId::CancelJob,
        Post,
        "/v1/sessions/{sid}/join-jobs/{job_id}/cancel",
        Cap::Join,
    ),
    row(
        RouteId::CreateToken,
        Post,
        "/v1/admin/tokens",
        Access::Admin,
        None,
    ),
    row(
        RouteId::ListTokens,
        Get,
        "/v1/admin/tokens",
        Access::Admin,
        None,
    ),
    row(
        RouteId::RevokeToken,
        Delete,
        "/v1/admin/tokens/{token_id}",
        Access::Admin,
        None,
    ),
    row(
        RouteId::ListAdminSessions,
        Get,
        "/v1/admin/sessions",
        Access::Admin,
        None,
    ),
    row(
        RouteId::PutSession,
        Put,
        "/v1/admin/sessions/{sid}",
        Access::Admin,
        None,
    ),
    row(
        RouteId::GetSession,
        Get,
        "/v1/admin/sessions/{sid}",
        Access::Admin,
        None,
    ),
    row(
        RouteId::DeleteSession,
        Delete,
        "/v1/admin/sessions/{sid}",
        Access::Admin,
        None,
    ),
    row(
        RouteId::PutOrg,
        Put,
        "/v1/admin/orgs/{org}",
        Access::Admin,
        None,
    ),
    row(
        RouteId::GetOrg,
        Get,
        "/v1/admin/orgs/{org}",
        Access::Admin,
        None,
    ),
    row(
        RouteId::PutWebhook,
        Put,
        "/v1/admin/orgs/{org}/webhook",
        Access::Admin,
        None,
    ),
    row(
        RouteId::GetWebhook,
        Get,
        "/v1/admin/orgs/{org}/webhook",
        Access::Admin,
        None,
    ),
    row(
        RouteId::DeleteWebhook,
        Delete,
        "/v1/admin/orgs/{org}/webhook",
        Access::Admin,
        None,
    ),
    row(
        RouteId::ListDeliveries,
        Get,
        "/v1/admin/orgs/{org}/webhook/deliveries",
        Access::Admin,
        None,
    ),
    row(
        RouteId::Redeliver,
        Post,
        "/v1/admin/orgs/{org}/webhook/deliveries/{delivery_id}/redeliver",
        Access::Admin,
        None,
    ),
];

/// A matched route with its raw (still percent-encoded) path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub spec: &'static RouteSpec,
    params: Vec<(&'static str, String)>,
}

impl Route {
    pub fn id(&self) -> RouteId {
        self.spec.id
    }

    /// The path template, for logs and for checking the OpenAPI document.
    pub fn template(&self) -> &'static str {
        self.spec.template
    }

    /// A path parameter by its name in the template (`sid`, `gjid`, …).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn is_admin(&self) -> bool {
        self.spec.access == Access::Admin
    }
}

/// Whether a path lies under the admin API (matched or not), which must not exist at all
/// when no admin token is configured.
pub fn is_admin_path(path: &str) -> bool {
    path == "/v1/admin" || path.starts_with("/v1/admin/")
}

/// The parameters of `segments` under `template`, or `None` if it does not match. A `{name}`
/// segment takes any non-empty segment.
fn match_template(
    template: &'static str,
    segments: &[&str],
) -> Option<Vec<(&'static str, String)>> {
    let parts: Vec<&'static str> = template[1..].split('/').collect();
    if parts.len() != segments.len() {
        return None;
    }
    let mut params = Vec::new();
    for (part, segment) in parts.into_iter().zip(segments) {
        match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) => params.push((name, (*segment).to_string())),
            None if part == *segment => {}
            None => return None,
        }
    }
    Some(params)
}

fn literal_segments(template: &str) -> usize {
    template.split('/').filter(|p| !p.starts_with('{')).count()
}

/// Finds the route for a method and a path (without query). Unknown paths are 404; known
/// paths with another method are 405 with the `Allow` value. Where templates overlap, the
/// one with more literal segments is the path's.
pub fn resolve(method: Method, path: &str) -> Result<Route, ApiError> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(ApiError::not_found());
    };
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(ApiError::not_found());
    }
    let matches: Vec<(&'static RouteSpec, Vec<(&'static str, String)>)> = ROUTES
        .iter()
        .filter_map(|spec| match_template(spec.template, &segments).map(|p| (spec, p)))
        .collect();
    let Some(best) = matches
        .iter()
        .map(|(spec, _)| literal_segments(spec.template))
        .max()
    else {
        return Err(ApiError::not_found());
    };
    let mut allowed: Vec<&'static str> = Vec::new();
    for (spec, params) in matches {
        if literal_segments(spec.template) != best {
            continue;
        }
        if spec.method == method {
            return Ok(Route { spec, params });
        }
        allowed.push(spec.method.as_str());
    }
    Err(ApiError::method_not_allowed(allow_value(&allowed)))
}

/// The `Allow` value for a set of methods, in a fixed order (the error type keeps a
/// `&'static str`, so every combination is spelled out once, indexed by a bit mask).
fn allow_value(methods: &[&str]) -> &'static str {
    const ORDER: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
    const VALUES: [&str; 16] = [
        "",
        "GET",
        "POST",
        "GET, POST",
        "PUT",
        "GET, PUT",
        "POST, PUT",
        "GET, POST, PUT",
        "DELETE",
        "GET, DELETE",
        "POST, DELETE",
        "GET, POST, DELETE",
        "PUT, DELETE",
        "GET, PUT, DELETE",
        "POST, PUT, DELETE",
        "GET, POST, PUT, DELETE",
    ];
    let mask = ORDER
        .iter()
        .enumerate()
        .filter(|(_, m)| methods.contains(m))
        .fold(0, |mask, (bit, _)| mask | (1 << bit));
    VALUES[mask]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::error::ErrorCode;

    #[test]
    fn body_limits_by_route() {
        assert_eq!(RouteId::Join.max_body_bytes(), 16_384);
        assert_eq!(RouteId::PutSession.max_body_bytes(), 16_384);
        assert_eq!(RouteId::SubmitJob.max_body_bytes(), 262_144);
        assert_eq!(RouteId::PutOrg.max_body_bytes(), 524_288);
    }

    fn fill(template: &str) -> String {
        template
            .replace("{sid}", "s1")
            .replace("{gjid}", "1203630@g.us")
            .replace("{invite}", "AbCdEfGhIjKlMnOpQr")
            .replace("{token_id}", "tok_1")
            .replace("{job_id}", "job_0123456789abcdef")
            .replace("{org}", "acme")
            .replace("{delivery_id}", "msg_0123456789abcdef01234567")
    }

    const ALL_METHODS: [Method; 5] = [
        Method::Get,
        Method::Post,
        Method::Put,
        Method::Delete,
        Method::Other,
    ];

    #[test]
    fn every_listed_route_resolves_to_its_row() {
        for spec in &ROUTES {
            let route = resolve(spec.method, &fill(spec.template));
            assert_eq!(route.map(|r| r.spec), Ok(spec), "{}", spec.template);
        }
    }

    #[test]
    fn session_routes_have_a_capability_and_job_routes_no_class() {
        for spec in &ROUTES {
            let is_session = matches!(spec.access, Access::Session(_));
            // Routes that read only the session object's own state spend no bucket.
            let is_job =
                spec.template.contains("/join-jobs") || spec.template.ends_with("/pending-joins");
            assert_eq!(
                is_session && !is_job,
                spec.class.is_some(),
                "{}",
                spec.template
            );
            assert_eq!(
                is_session,
                spec.template.starts_with("/v1/sessions/{sid}"),
                "{}",
                spec.template
            );
        }
    }

    #[test]
    fn wrong_methods_are_405_with_allow() {
        for spec in &ROUTES {
            let same_path: Vec<&str> = ROUTES
                .iter()
                .filter(|other| other.template == spec.template)
                .map(|other| other.method.as_str())
                .collect();
            for other in ALL_METHODS {
                if same_path.contains(&other.as_str()) {
                    continue;
                }
                let error = resolve(other, &fill(spec.template)).err();
                assert_eq!(
                    error.as_ref().map(|e| e.code),
                    Some(ErrorCode::MethodNotAllowed)
                );
                let allow = error.and_then(|e| e.allow).unwrap_or_default();
                for method in &same_path {
                    assert!(allow.contains(method), "{} allows {allow}", spec.template);
                }
            }
        }
    }

    #[test]
    fn unknown_paths_are_404() {
        for path in [
            "",
            "/",
            "/healthz/",
            "//healthz",
            "/v1",
            "/v1/token/x",
            "/v1/sessions/s1/groups",
            "/v1/sessions/s1/groups/join/extra",
            "/v2/sessions/s1",
            "/v1/admin",
        ] {
            let error = resolve(Method::Get, path).err().map(|e| e.code);
            assert_eq!(error, Some(ErrorCode::NotFound), "{path}");
        }
    }

    #[test]
    fn admin_paths() {
        for spec in &ROUTES {
            let route = resolve(spec.method, &fill(spec.template));
            assert_eq!(
                route.map(|r| r.is_admin()),
                Ok(is_admin_path(&fill(spec.template))),
                "{}",
                spec.template
            );
        }
        assert!(is_admin_path("/v1/admin"));
        assert!(!is_admin_path("/v1/administrator"));
    }

    #[test]
    fn the_lists_of_section_16() {
        for (method, path, access) in [
            (Method::Get, "/v1/token", Access::AnyToken),
            (Method::Get, "/v1/sessions", Access::Org(Cap::Read)),
            (Method::Get, "/v1/admin/sessions", Access::Admin),
            (Method::Get, "/v1/admin/tokens", Access::Admin),
        ] {
            let route = resolve(method, path).map(|r| r.spec.access);
            assert_eq!(route, Ok(access), "{path}");
        }
        let allow = |path| resolve(Method::Post, path).err().and_then(|e| e.allow);
        assert_eq!(allow("/v1/sessions"), Some("GET"));
        assert_eq!(allow("/v1/token"), Some("GET"));
        assert_eq!(
            resolve(Method::Put, "/v1/admin/tokens")
                .err()
                .and_then(|e| e.allow),
            Some("GET, POST")
        );
    }

    #[test]
    fn parameters_are_named_by_the_template() {
        let route = resolve(Method::Post, "/v1/sessions/abc/groups/1%40g.us/leave");
        assert_eq!(
            route.as_ref().ok().and_then(|r| r.param("sid")),
            Some("abc")
        );
        assert_eq!(
            route.as_ref().ok().and_then(|r| r.param("gjid")),
            Some("1%40g.us")
        );
        assert_eq!(route.as_ref().ok().and_then(|r| r.param("invite")), None);
    }
}
