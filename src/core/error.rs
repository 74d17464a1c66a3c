//! The one error type of joingate: every failure, wherever it is found, becomes an
//! `ApiError`, which knows its contract code, HTTP status and envelope details.

use serde_json::{Map, Value};

/// Every error code of the contract (API.md section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    ValidationError,
    InviteMalformed,
    InviteInvalid,
    IdempotencyKeyInvalid,
    Unauthorized,
    Forbidden,
    JoinNotAllowed,
    NotGroupAdmin,
    NotInGroup,
    NotFound,
    GroupNotFound,
    MethodNotAllowed,
    SessionNotConnected,
    GroupFull,
    IdempotencyInProgress,
    InviteRevoked,
    InviteExpired,
    PayloadTooLarge,
    UnsupportedMediaType,
    IdempotencyKeyReused,
    RateLimited,
    UpstreamRateLimited,
    InternalError,
    BackendError,
    BackendUnavailable,
    SessionBusy,
    BackendTimeout,
    NotImplemented,
    AuthUnavailable,
    SessionCoolingDown,
    TooManyJobs,
    JobFinished,
    JoinRefusedByPolicy,
    InviteMismatch,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 34] = [
        Self::ValidationError,
        Self::InviteMalformed,
        Self::InviteInvalid,
        Self::IdempotencyKeyInvalid,
        Self::Unauthorized,
        Self::Forbidden,
        Self::JoinNotAllowed,
        Self::NotGroupAdmin,
        Self::NotInGroup,
        Self::NotFound,
        Self::GroupNotFound,
        Self::MethodNotAllowed,
        Self::SessionNotConnected,
        Self::GroupFull,
        Self::IdempotencyInProgress,
        Self::InviteRevoked,
        Self::InviteExpired,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::IdempotencyKeyReused,
        Self::RateLimited,
        Self::UpstreamRateLimited,
        Self::InternalError,
        Self::BackendError,
        Self::BackendUnavailable,
        Self::SessionBusy,
        Self::BackendTimeout,
        Self::NotImplemented,
        Self::AuthUnavailable,
        Self::SessionCoolingDown,
        Self::TooManyJobs,
        Self::JobFinished,
        Self::JoinRefusedByPolicy,
        Self::InviteMismatch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ValidationError => "validation_error",
            Self::InviteMalformed => "invite_malformed",
            Self::InviteInvalid => "invite_invalid",
            Self::IdempotencyKeyInvalid => "idempotency_key_invalid",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::JoinNotAllowed => "join_not_allowed",
            Self::NotGroupAdmin => "not_group_admin",
            Self::NotInGroup => "not_in_group",
            Self::NotFound => "not_found",
            Self::GroupNotFound => "group_not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::SessionNotConnected => "session_not_connected",
            Self::GroupFull => "group_full",
            Self::IdempotencyInProgress => "idempotency_in_progress",
            Self::InviteRevoked => "invite_revoked",
            Self::InviteExpired => "invite_expired",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::RateLimited => "rate_limited",
            Self::UpstreamRateLimited => "upstream_rate_limited",
            Self::InternalError => "internal_error",
            Self::BackendError => "backend_error",
            Self::BackendUnavailable => "backend_unavailable",
            Self::SessionBusy => "session_busy",
            Self::BackendTimeout => "backend_timeout",
            Self::NotImplemented => "not_implemented",
            Self::AuthUnavailable => "auth_unavailable",
            Self::SessionCoolingDown => "session_cooling_down",
            Self::TooManyJobs => "too_many_jobs",
            Self::JobFinished => "job_finished",
            Self::JoinRefusedByPolicy => "join_refused_by_policy",
            Self::InviteMismatch => "invite_mismatch",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Self::ValidationError
            | Self::InviteMalformed
            | Self::InviteInvalid
            | Self::IdempotencyKeyInvalid => 400,
            Self::Unauthorized => 401,
            Self::Forbidden | Self::JoinNotAllowed | Self::NotGroupAdmin | Self::NotInGroup => 403,
            Self::NotFound | Self::GroupNotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::SessionNotConnected | Self::GroupFull | Self::IdempotencyInProgress => 409,
            Self::InviteRevoked | Self::InviteExpired => 410,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::IdempotencyKeyReused => 422,
            Self::RateLimited | Self::UpstreamRateLimited => 429,
            Self::InternalError => 500,
            Self::BackendError => 502,
            Self::BackendUnavailable | Self::SessionBusy => 503,
            Self::BackendTimeout => 504,
            Self::NotImplemented => 501,
            Self::AuthUnavailable => 503,
            Self::SessionCoolingDown => 429,
            Self::TooManyJobs | Self::JobFinished | Self::InviteMismatch => 409,
            Self::JoinRefusedByPolicy => 403,
        }
    }

    /// The sentence used when the place that raised the error has nothing more precise.
    pub fn default_message(self) -> &'static str {
        match self {
            Self::ValidationError => "The request is not valid.",
            Self::InviteMalformed => "This is not a WhatsApp group invite link or code.",
            Self::InviteInvalid => "WhatsApp says this invite code does not exist.",
            Self::IdempotencyKeyInvalid => {
                "Idempotency-Key must be 1-255 printable ASCII characters."
            }
            Self::Unauthorized => "Missing or invalid credentials.",
            Self::Forbidden => "This token may not use this route.",
            Self::JoinNotAllowed => "WhatsApp does not allow this session to join the group.",
            Self::NotGroupAdmin => "The session is not an admin of this group.",
            Self::NotInGroup => "The session is not a member of this group.",
            Self::NotFound => "Not found.",
            Self::GroupNotFound => "WhatsApp does not know this group.",
            Self::MethodNotAllowed => "This method is not allowed on this path.",
            Self::SessionNotConnected => "The WhatsApp session is not connected.",
            Self::GroupFull => "The group is full.",
            Self::IdempotencyInProgress => {
                "A request with this Idempotency-Key is still running; retry later."
            }
            Self::InviteRevoked => "The invite link was revoked or reset.",
            Self::InviteExpired => "The invite has expired.",
            Self::PayloadTooLarge => {
                "The request body is larger than this route takes (16 KiB; 256 KiB for a join-job submit, 512 KiB for an org's record)."
            }
            Self::UnsupportedMediaType => "The request body must be application/json.",
            Self::IdempotencyKeyReused => "This Idempotency-Key was used with a different request.",
            Self::RateLimited => "Too many requests; retry after the indicated time.",
            Self::UpstreamRateLimited => "WhatsApp is rate limiting this session; retry later.",
            Self::InternalError => "Internal error.",
            Self::BackendError => "The session backend gave an unexpected answer.",
            Self::BackendUnavailable => "The session backend is unavailable.",
            Self::SessionBusy => "The session has too many queued calls; retry later.",
            Self::BackendTimeout => "The session backend did not answer in time.",
            Self::NotImplemented => "The session's backend kind cannot do this operation.",
            Self::SessionCoolingDown => {
                "WhatsApp pushed back on this session: no join or leave until the cooldown ends."
            }
            Self::TooManyJobs => "The session already has 10 unfinished join jobs.",
            Self::JobFinished => "The job is already completed or cancelled.",
            Self::JoinRefusedByPolicy => {
                "The org's join policy refuses this group; no join request was sent."
            }
            Self::InviteMismatch => {
                "The invite leads to another group than the one expected; no join request was sent."
            }
            Self::AuthUnavailable => {
                "The login token could not be checked: its key set is unavailable; retry later."
            }
        }
    }
}

/// An error on its way to the client: code, sentence and optional details.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Map<String, Value>,
    /// Seconds for `Retry-After` (429 and 503 only).
    pub retry_after_s: Option<u64>,
    /// Methods for `Allow` (405 only).
    pub allow: Option<&'static str>,
}

impl ApiError {
    pub fn new(code: ErrorCode) -> Self {
        Self {
            code,
            message: code.default_message().to_string(),
            details: Map::new(),
            retry_after_s: None,
            allow: None,
        }
    }

    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    pub fn with_detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_string(), value.into());
        self
    }

    /// The field a validation error names (`details.field`), if it names one.
    pub fn field(&self) -> Option<&str> {
        self.details.get("field").and_then(Value::as_str)
    }

    /// `Retry-After` is whole seconds, at least 1 (contract section 1).
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_s = Some(seconds.max(1));
        self
    }

    /// A validation error naming the offending field.
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self::new(ErrorCode::ValidationError)
            .with_message(format!("{field}: {reason}"))
            .with_detail("field", field)
    }

    pub fn not_found() -> Self {
        Self::new(ErrorCode::NotFound)
    }

    pub fn unauthorized() -> Self {
        Self::new(ErrorCode::Unauthorized)
    }

    pub fn internal() -> Self {
        Self::new(ErrorCode::InternalError)
    }

    pub fn method_not_allowed(allow: &'static str) -> Self {
        let mut error = Self::new(ErrorCode::MethodNotAllowed);
        error.allow = Some(allow);
        error
    }

    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// Whether the backend's answer was lost on the way (cut off, or too large to read):
    /// its effect is unknown, so it is never kept for a replay (contract section 6).
    pub fn answer_lost(&self) -> bool {
        self.code == ErrorCode::BackendError
            && matches!(
                self.details.get("reason").and_then(Value::as_str),
                Some("answer_cut_off" | "answer_too_large")
            )
    }

    /// Whether the error says the backend was never reached, so the call had no effect.
    pub fn backend_never_reached(&self) -> bool {
        matches!(
            self.code,
            ErrorCode::BackendUnavailable | ErrorCode::SessionBusy
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_snake_case() {
        let names: HashSet<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), ErrorCode::ALL.len());
        for name in names {
            assert!(name.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        }
    }

    #[test]
    fn statuses_follow_the_contract_table() {
        let expected = [
            ("validation_error", 400),
            ("invite_malformed", 400),
            ("invite_invalid", 400),
            ("idempotency_key_invalid", 400),
            ("unauthorized", 401),
            ("forbidden", 403),
            ("join_not_allowed", 403),
            ("not_group_admin", 403),
            ("not_in_group", 403),
            ("not_found", 404),
            ("group_not_found", 404),
            ("method_not_allowed", 405),
            ("session_not_connected", 409),
            ("group_full", 409),
            ("idempotency_in_progress", 409),
            ("invite_revoked", 410),
            ("invite_expired", 410),
            ("payload_too_large", 413),
            ("unsupported_media_type", 415),
            ("idempotency_key_reused", 422),
            ("rate_limited", 429),
            ("upstream_rate_limited", 429),
            ("internal_error", 500),
            ("backend_error", 502),
            ("backend_unavailable", 503),
            ("session_busy", 503),
            ("backend_timeout", 504),
            ("not_implemented", 501),
            ("auth_unavailable", 503),
            ("session_cooling_down", 429),
            ("too_many_jobs", 409),
            ("job_finished", 409),
            ("join_refused_by_policy", 403),
            ("invite_mismatch", 409),
        ];
        assert_eq!(expected.len(), ErrorCode::ALL.len());
        for (code, (name, status)) in ErrorCode::ALL.iter().zip(expected) {
            assert_eq!(code.as_str(), name);
            assert_eq!(code.status(), status, "{name}");
        }
    }

    #[test]
    fn retry_after_is_at_least_one_second() {
        let error = ApiError::new(ErrorCode::RateLimited).with_retry_after(0);
        assert_eq!(error.retry_after_s, Some(1));
    }

    #[test]
    fn invalid_names_the_field() {
        let error = ApiError::invalid("invite", "must be a string");
        assert_eq!(error.details.get("field"), Some(&Value::from("invite")));
        assert_eq!(error.status(), 400);
    }
}
