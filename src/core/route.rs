//! The route table (contract section 4) as a pure function of method and path, so that
//! 404/405 answers, `Allow` headers and log templates come from one place.

use super::error::ApiError;

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

/// A matched route with its raw (still percent-encoded) path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Healthz,
    OpenApi,
    Join { sid: String },
    Preview { sid: String, invite: String },
    Leave { sid: String, gjid: String },
    ListJoinRequests { sid: String, gjid: String },
    ApproveJoinRequests { sid: String, gjid: String },
    RejectJoinRequests { sid: String, gjid: String },
    ResetInvite { sid: String, gjid: String },
    SessionStatus { sid: String },
    CreateToken,
    RevokeToken { token_id: String },
    PutSession { sid: String },
    DeleteSession { sid: String },
}

impl Route {
    /// The path template, for logs and for checking the OpenAPI document.
    pub fn template(&self) -> &'static str {
        match self {
            Self::Healthz => "/healthz",
            Self::OpenApi => "/v1/openapi.json",
            Self::Join { .. } => "/v1/sessions/{sid}/groups/join",
            Self::Preview { .. } => "/v1/sessions/{sid}/invites/{invite}",
            Self::Leave { .. } => "/v1/sessions/{sid}/groups/{gjid}/leave",
            Self::ListJoinRequests { .. } => "/v1/sessions/{sid}/groups/{gjid}/join-requests",
            Self::ApproveJoinRequests { .. } => {
                "/v1/sessions/{sid}/groups/{gjid}/join-requests/approve"
            }
            Self::RejectJoinRequests { .. } => {
                "/v1/sessions/{sid}/groups/{gjid}/join-requests/reject"
            }
            Self::ResetInvite { .. } => "/v1/sessions/{sid}/groups/{gjid}/invite/reset",
            Self::SessionStatus { .. } => "/v1/sessions/{sid}",
            Self::CreateToken => "/v1/admin/tokens",
            Self::RevokeToken { .. } => "/v1/admin/tokens/{token_id}",
            Self::PutSession { .. } | Self::DeleteSession { .. } => "/v1/admin/sessions/{sid}",
        }
    }

    /// The session the route acts on, if any.
    pub fn session(&self) -> Option<&str> {
        match self {
            Self::Join { sid }
            | Self::Preview { sid, .. }
            | Self::Leave { sid, .. }
            | Self::ListJoinRequests { sid, .. }
            | Self::ApproveJoinRequests { sid, .. }
            | Self::RejectJoinRequests { sid, .. }
            | Self::ResetInvite { sid, .. }
            | Self::SessionStatus { sid } => Some(sid),
            _ => None,
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(
            self,
            Self::CreateToken
                | Self::RevokeToken { .. }
                | Self::PutSession { .. }
                | Self::DeleteSession { .. }
        )
    }
}

/// Every (method, template) pair joingate serves; the OpenAPI test compares against it.
pub const ROUTES: [(&str, &str); 14] = [
    ("GET", "/healthz"),
    ("GET", "/v1/openapi.json"),
    ("POST", "/v1/sessions/{sid}/groups/join"),
    ("GET", "/v1/sessions/{sid}/invites/{invite}"),
    ("POST", "/v1/sessions/{sid}/groups/{gjid}/leave"),
    ("GET", "/v1/sessions/{sid}/groups/{gjid}/join-requests"),
    (
        "POST",
        "/v1/sessions/{sid}/groups/{gjid}/join-requests/approve",
    ),
    (
        "POST",
        "/v1/sessions/{sid}/groups/{gjid}/join-requests/reject",
    ),
    ("POST", "/v1/sessions/{sid}/groups/{gjid}/invite/reset"),
    ("GET", "/v1/sessions/{sid}"),
    ("POST", "/v1/admin/tokens"),
    ("DELETE", "/v1/admin/tokens/{token_id}"),
    ("PUT", "/v1/admin/sessions/{sid}"),
    ("DELETE", "/v1/admin/sessions/{sid}"),
];

/// Whether a path lies under the admin API (matched or not), which must not exist at all
/// when no admin token is configured.
pub fn is_admin_path(path: &str) -> bool {
    path == "/v1/admin" || path.starts_with("/v1/admin/")
}

/// Finds the route for a method and a path (without query). Unknown paths are 404; known
/// paths with another method are 405 with the `Allow` value.
pub fn resolve(method: Method, path: &str) -> Result<Route, ApiError> {
    let segments: Vec<&str> = match path.strip_prefix('/') {
        Some(rest) => rest.split('/').collect(),
        None => return Err(ApiError::not_found()),
    };
    if segments.iter().any(|s| s.is_empty()) {
        return Err(ApiError::not_found());
    }
    let s = |value: &str| value.to_string();
    // Each arm yields the methods the path allows and, for the matching method, the route.
    let (allow, route): (&'static str, Option<Route>) = match (segments.as_slice(), method) {
        (["healthz"], Method::Get) => ("GET", Some(Route::Healthz)),
        (["healthz"], _) => ("GET", None),
        (["v1", "openapi.json"], Method::Get) => ("GET", Some(Route::OpenApi)),
        (["v1", "openapi.json"], _) => ("GET", None),
        (["v1", "sessions", sid], Method::Get) => {
            ("GET", Some(Route::SessionStatus { sid: s(sid) }))
        }
        (["v1", "sessions", _], _) => ("GET", None),
        (["v1", "sessions", sid, "groups", "join"], Method::Post) => {
            ("POST", Some(Route::Join { sid: s(sid) }))
        }
        (["v1", "sessions", _, "groups", "join"], _) => ("POST", None),
        (["v1", "sessions", sid, "invites", invite], Method::Get) => (
            "GET",
            Some(Route::Preview {
                sid: s(sid),
                invite: s(invite),
            }),
        ),
        (["v1", "sessions", _, "invites", _], _) => ("GET", None),
        (["v1", "sessions", sid, "groups", gjid, "leave"], Method::Post) => (
            "POST",
            Some(Route::Leave {
                sid: s(sid),
                gjid: s(gjid),
            }),
        ),
        (["v1", "sessions", _, "groups", _, "leave"], _) => ("POST", None),
        (["v1", "sessions", sid, "groups", gjid, "join-requests"], Method::Get) => (
            "GET",
            Some(Route::ListJoinRequests {
                sid: s(sid),
                gjid: s(gjid),
            }),
        ),
        (["v1", "sessions", _, "groups", _, "join-requests"], _) => ("GET", None),
        (["v1", "sessions", sid, "groups", gjid, "join-requests", "approve"], Method::Post) => (
            "POST",
            Some(Route::ApproveJoinRequests {
                sid: s(sid),
                gjid: s(gjid),
            }),
        ),
        (["v1", "sessions", sid, "groups", gjid, "join-requests", "reject"], Method::Post) => (
            "POST",
            Some(Route::RejectJoinRequests {
                sid: s(sid),
                gjid: s(gjid),
            }),
        ),
        (["v1", "sessions", _, "groups", _, "join-requests", "approve" | "reject"], _) => {
            ("POST", None)
        }
        (["v1", "sessions", sid, "groups", gjid, "invite", "reset"], Method::Post) => (
            "POST",
            Some(Route::ResetInvite {
                sid: s(sid),
                gjid: s(gjid),
            }),
        ),
        (["v1", "sessions", _, "groups", _, "invite", "reset"], _) => ("POST", None),
        (["v1", "admin", "tokens"], Method::Post) => ("POST", Some(Route::CreateToken)),
        (["v1", "admin", "tokens"], _) => ("POST", None),
        (["v1", "admin", "tokens", id], Method::Delete) => {
            ("DELETE", Some(Route::RevokeToken { token_id: s(id) }))
        }
        (["v1", "admin", "tokens", _], _) => ("DELETE", None),
        (["v1", "admin", "sessions", sid], Method::Put) => {
            ("PUT, DELETE", Some(Route::PutSession { sid: s(sid) }))
        }
        (["v1", "admin", "sessions", sid], Method::Delete) => {
            ("PUT, DELETE", Some(Route::DeleteSession { sid: s(sid) }))
        }
        (["v1", "admin", "sessions", _], _) => ("PUT, DELETE", None),
        _ => return Err(ApiError::not_found()),
    };
    route.ok_or_else(|| ApiError::method_not_allowed(allow))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::error::ErrorCode;

    fn fill(template: &str) -> String {
        template
            .replace("{sid}", "s1")
            .replace("{gjid}", "1203630@g.us")
            .replace("{invite}", "AbCdEfGhIjKlMnOpQr")
            .replace("{token_id}", "tok_1")
    }

    #[test]
    fn every_listed_route_resolves_to_its_template() {
        for (method, template) in ROUTES {
            let route = resolve(Method::parse(method), &fill(template));
            assert_eq!(
                route.map(|r| r.template()),
                Ok(template),
                "{method} {template}"
            );
        }
    }

    #[test]
    fn wrong_methods_are_405_with_allow() {
        for (method, template) in ROUTES {
            for other in [
                Method::Get,
                Method::Post,
                Method::Put,
                Method::Delete,
                Method::Other,
            ] {
                if ROUTES.contains(&(other.as_str(), template)) {
                    continue;
                }
                let error = resolve(other, &fill(template)).err();
                assert_eq!(
                    error.as_ref().map(|e| e.code),
                    Some(ErrorCode::MethodNotAllowed)
                );
                assert!(error
                    .and_then(|e| e.allow)
                    .is_some_and(|a| a.contains(method)));
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
            "/v1/sessions",
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
        for (method, template) in ROUTES {
            let route = resolve(Method::parse(method), &fill(template));
            assert_eq!(
                route.map(|r| r.is_admin()),
                Ok(is_admin_path(&fill(template))),
                "{template}"
            );
        }
        assert!(is_admin_path("/v1/admin"));
        assert!(!is_admin_path("/v1/administrator"));
    }

    #[test]
    fn session_routes_name_their_session() {
        let route = resolve(Method::Post, "/v1/sessions/abc/groups/join");
        assert_eq!(route.ok().as_ref().and_then(Route::session), Some("abc"));
        assert_eq!(
            resolve(Method::Get, "/healthz")
                .ok()
                .and_then(|r| r.session().map(str::to_owned)),
            None
        );
    }
}
