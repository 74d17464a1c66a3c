//! What WhatsApp's answers mean, shared by every dialect: the contract's mapping of numeric
//! WhatsApp codes per operation (section 2), and the texts that stand for those codes where a
//! server passes on only a text: WhatsApp's own condition names (`gone`, `not-authorized`, …)
//! and the sentences of the libraries underneath (whatsmeow, Baileys).

use super::Op;
use crate::core::error::{ApiError, ErrorCode};

/// `Retry-After` used when WhatsApp rate limits a read or manage call and the backend names
/// no delay. (On a join or leave the cooldown it starts names it: section 13's strikes.)
pub const DEFAULT_UPSTREAM_RETRY_S: u64 = 60;

/// What a server's error text says, once read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// A WhatsApp answer with this numeric code.
    WhatsApp(i64),
    /// The server's WhatsApp connection is down or logged out.
    NotConnected,
    /// WhatsApp did not answer the server in time.
    TimedOut,
}

/// WhatsApp's XMPP condition names and the codes they stand for.
const CONDITIONS: [(&str, i64); 18] = [
    ("not-modified", 304),
    ("bad-request", 400),
    ("not-authorized", 401),
    ("forbidden", 403),
    ("item-not-found", 404),
    ("not-allowed", 405),
    ("not-acceptable", 406),
    ("request-timeout", 408),
    ("conflict", 409),
    ("gone", 410),
    ("precondition-failed", 412),
    ("resource-limit", 419),
    ("locked", 423),
    ("rate-overlimit", 429),
    ("account_reachout_restricted", 463),
    ("internal-server-error", 500),
    ("service-unavailable", 503),
    ("partial-server-error", 530),
];

/// Sentences of whatsmeow, Baileys and the servers around them (lower case) and what they
/// mean. A wrapped whatsmeow error carries only its sentence, never the number; older
/// whatsmeow versions worded some of them differently, so both wordings are here.
const SENTENCES: [(&str, Condition); 18] = [
    (
        "that group invite link has been revoked",
        Condition::WhatsApp(410),
    ),
    (
        "that group invite link is not valid",
        Condition::WhatsApp(406),
    ),
    (
        "you don't have the permission to get the group's invite link",
        Condition::WhatsApp(401),
    ),
    (
        "not authorized to get group invite link",
        Condition::WhatsApp(401),
    ),
    (
        "you're not participating in that group",
        Condition::WhatsApp(403),
    ),
    ("not participating in group", Condition::WhatsApp(403)),
    ("that group does not exist", Condition::WhatsApp(404)),
    ("group not found", Condition::WhatsApp(404)),
    ("websocket not connected", Condition::NotConnected),
    (
        "the store doesn't contain a device jid",
        Condition::NotConnected,
    ),
    ("not logged in", Condition::NotConnected),
    ("not connect to services server", Condition::NotConnected),
    ("connection closed", Condition::NotConnected),
    ("connection lost", Condition::NotConnected),
    ("no session", Condition::NotConnected),
    ("info query timed out", Condition::TimedOut),
    ("timed out waiting for whatsapp", Condition::TimedOut),
    // Baileys' query timeout (a Boom 408 "Timed Out").
    ("timed out", Condition::TimedOut),
];

/// Reads a server's error text: whatsmeow's `info query returned status 403: forbidden`, a
/// library sentence, or a bare condition name (Baileys' Boom message, Evolution's
/// `Error: gone`).
pub fn classify_text(text: &str) -> Option<Condition> {
    let lower = text.trim().to_ascii_lowercase();
    if let Some(rest) = lower.split("info query returned status ").nth(1) {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(code) = digits.parse() {
            return Some(Condition::WhatsApp(code));
        }
    }
    if let Some((_, condition)) = SENTENCES.iter().find(|(s, _)| lower.contains(s)) {
        return Some(*condition);
    }
    let bare = lower.strip_prefix("error:").unwrap_or(&lower).trim();
    CONDITIONS
        .iter()
        .find(|(name, _)| *name == bare)
        .map(|(_, code)| Condition::WhatsApp(*code))
}

/// Whether this WhatsApp code on a join means "already a member" (a success).
pub fn is_already_member(op: &Op, wa_code: i64) -> bool {
    matches!(op, Op::Join { .. } | Op::JoinByMessage { .. }) && matches!(wa_code, 304 | 409)
}

/// Whether this WhatsApp code on a membership check means "not a member" (a success):
/// whatsmeow's and Baileys' group info answer a non-participant 403 (`forbidden`, "you're
/// not participating in that group") and a group that is gone 404 (`item-not-found`).
pub fn is_not_member(op: &Op, wa_code: i64) -> bool {
    matches!(op, Op::MembershipCheck { .. }) && matches!(wa_code, 403 | 404)
}

/// The contract's error for a WhatsApp code on this operation (section 2).
pub fn error_code(op: &Op, wa_code: i64) -> ErrorCode {
    use ErrorCode::*;
    let join = matches!(op, Op::Join { .. } | Op::JoinByMessage { .. });
    let admin = matches!(
        op,
        Op::ListJoinRequests { .. } | Op::JoinRequestAction { .. } | Op::ResetInvite { .. }
    );
    match wa_code {
        429 => UpstreamRateLimited,
        _ if matches!(op, Op::SessionStatus | Op::RestrictionStatus) => BackendError,
        400 | 406 if join || matches!(op, Op::Preview { .. }) => InviteInvalid,
        401 | 403 | 405 if join => JoinNotAllowed,
        410 if join || matches!(op, Op::Preview { .. }) => InviteRevoked,
        412 | 419 if join => GroupFull,
        403 if matches!(op, Op::Leave { .. }) => NotInGroup,
        401 if admin => NotGroupAdmin,
        403 if admin => NotInGroup,
        404 => GroupNotFound,
        _ => BackendError,
    }
}

/// The envelope error for a WhatsApp failure, with `details.wa_code`.
pub fn failure(op: &Op, wa_code: i64, retry_after_s: Option<u64>) -> ApiError {
    let code = error_code(op, wa_code);
    let mut error = ApiError::new(code).with_detail("wa_code", wa_code);
    if code == ErrorCode::BackendError {
        error = error.with_message(format!("Unmapped WhatsApp error {wa_code}."));
    }
    if code == ErrorCode::UpstreamRateLimited {
        // On a join or leave the answer starts a cooldown, whose length (the strike's, or
        // the backend's when longer) the pipeline settles and states: only the backend's
        // own delay is kept here.
        let wait = if op.is_join_class() {
            retry_after_s
        } else {
            Some(retry_after_s.unwrap_or(DEFAULT_UPSTREAM_RETRY_S))
        };
        if let Some(seconds) = wait {
            error = error.with_retry_after(seconds);
        }
    }
    error
}

/// The error for a condition read from a server's text (not a WhatsApp success case).
pub fn condition_failure(op: &Op, condition: Condition, retry_after_s: Option<u64>) -> ApiError {
    match condition {
        Condition::WhatsApp(code) => failure(op, code, retry_after_s),
        Condition::NotConnected => ApiError::new(ErrorCode::SessionNotConnected),
        Condition::TimedOut => ApiError::new(ErrorCode::BackendTimeout)
            .with_message("WhatsApp did not answer the session backend in time."),
    }
}

/// Per-item code of an approve/reject failure (contract section 2).
pub fn item_error_code(wa_code: i64) -> (&'static str, &'static str) {
    match wa_code {
        400 | 404 => (
            "request_not_found",
            "There is no pending join request from this participant.",
        ),
        401 => (
            "not_group_admin",
            "The session is not an admin of this group.",
        ),
        403 => (
            "not_allowed",
            "WhatsApp does not allow this action for this participant.",
        ),
        408 => (
            "temporarily_blocked",
            "WhatsApp temporarily blocks this action; retry later.",
        ),
        409 => ("conflict", "The participant's state changed meanwhile."),
        412 | 500 => ("limit_reached", "The group reached a WhatsApp limit."),
        _ => ("whatsapp_error", "WhatsApp refused this participant."),
    }
}

/// The per-item code of a participant the server cannot act on (gowa and `@lid`).
pub const ITEM_NOT_SUPPORTED: (&str, &str) = (
    "not_supported",
    "This session's backend takes phone-number participants only, not @lid.",
);

#[cfg(test)]
mod tests {
    use super::*;

    fn join() -> Op {
        Op::Join {
            code: "AbCdEfGhIjKlMnOpQrStUv".into(),
        }
    }

    #[test]
    fn texts_of_every_form_are_read() {
        use Condition::*;
        for (text, expected) in [
            (
                "info query returned status 403: forbidden",
                Some(WhatsApp(403)),
            ),
            (
                "Info query returned status 419: resource-limit",
                Some(WhatsApp(419)),
            ),
            (
                "that group invite link has been revoked",
                Some(WhatsApp(410)),
            ),
            (
                "failed to join: that group invite link is not valid",
                Some(WhatsApp(406)),
            ),
            ("not-authorized", Some(WhatsApp(401))),
            ("Error: gone", Some(WhatsApp(410))),
            ("Error: rate-overlimit", Some(WhatsApp(429))),
            ("item-not-found", Some(WhatsApp(404))),
            ("account_reachout_restricted", Some(WhatsApp(463))),
            ("Error: Connection Closed", Some(NotConnected)),
            ("websocket not connected", Some(NotConnected)),
            (
                "you're not participating in that group",
                Some(WhatsApp(403)),
            ),
            ("that group does not exist", Some(WhatsApp(404))),
            ("info query timed out", Some(TimedOut)),
            ("Error: Timed Out", Some(TimedOut)),
            ("Error: something else", None),
            ("", None),
            ("gone fishing", None),
        ] {
            assert_eq!(classify_text(text), expected, "{text}");
        }
    }

    #[test]
    fn join_codes_map_to_the_contract() {
        use ErrorCode::*;
        for (wa_code, expected) in [
            (400, InviteInvalid),
            (406, InviteInvalid),
            (401, JoinNotAllowed),
            (403, JoinNotAllowed),
            (405, JoinNotAllowed),
            (404, GroupNotFound),
            (410, InviteRevoked),
            (412, GroupFull),
            (419, GroupFull),
            (429, UpstreamRateLimited),
            (500, BackendError),
        ] {
            assert_eq!(error_code(&join(), wa_code), expected, "{wa_code}");
        }
        assert!(is_already_member(&join(), 409));
        assert!(!is_already_member(&Op::SessionStatus, 409));
    }

    #[test]
    fn rate_overlimit_keeps_or_picks_retry_after() {
        assert_eq!(failure(&join(), 429, Some(30)).retry_after_s, Some(30));
        assert_eq!(
            failure(&join(), 429, None).retry_after_s,
            None,
            "the strike's cooldown names it"
        );
        let preview = Op::Preview { code: "x".into() };
        assert_eq!(
            failure(&preview, 429, None).retry_after_s,
            Some(DEFAULT_UPSTREAM_RETRY_S)
        );
    }
}
