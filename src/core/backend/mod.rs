//! Session backends (contract sections 7 and 9): the typed operation the edge asks for, and
//! for each server kind a pure *dialect* that turns it into HTTP requests and turns the
//! answers into the contract's outcome.
//!
//! Invariants:
//! - Only the dialects know backend paths, headers and bodies; the edge builds an [`Op`] of
//!   validated values and the backend client executes the [`HttpRequest`]s it is handed.
//! - A client call is one exchange: [`start`], then [`resume`] once per answer, until
//!   [`Step::Done`]. Multi-step operations (a preview before a join, a membership check after
//!   it) are stages of that one exchange: one queue turn, one rate-limit token, one deadline.
//! - Nothing a server says is passed through raw: every answer becomes the contract's data
//!   or an `ApiError` with a contract code; a credential is only ever put in a header.

pub mod events;
pub mod evolution;
pub mod gowa;
pub mod joingate;
pub mod shape;
pub mod spec;
pub mod waha;
pub mod whatsapp;
pub mod wuzapi;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{ApiError, ErrorCode};
use super::json::{deserialize_with, Fields};

/// The server kinds joingate can front (contract section 9); read back by hand (its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Joingate,
    Waha,
    Evolution,
    Wuzapi,
    Gowa,
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_with(d, Kind::read)
    }
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Joingate,
        Kind::Waha,
        Kind::Evolution,
        Kind::Wuzapi,
        Kind::Gowa,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Joingate => "joingate",
            Self::Waha => "waha",
            Self::Evolution => "evolution",
            Self::Wuzapi => "wuzapi",
            Self::Gowa => "gowa",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The kind a record names (a plain fn, not a closure in `deserialize`: one copy for
    /// every deserializer).
    pub fn read(value: Value) -> Option<Self> {
        Self::parse(value.as_str()?)
    }

    /// Whether `remote_session` defaults to the session id (gowa: no device header; wuzapi:
    /// the token names the user).
    pub fn remote_session_defaults_to_sid(self) -> bool {
        matches!(self, Self::Joingate | Self::Waha | Self::Evolution)
    }
}

/// What a client call asks of WhatsApp, with every value validated at the edge (codes are
/// invite codes of the contract's grammar, JIDs are the contract's JIDs).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(into = "OpWire")]
pub enum Op {
    Join {
        code: String,
    },
    JoinByMessage {
        code: String,
        group_jid: String,
        inviter_jid: String,
        expiration: Option<i64>,
    },
    Preview {
        code: String,
    },
    Leave {
        group_jid: String,
    },
    ListJoinRequests {
        group_jid: String,
    },
    JoinRequestAction {
        group_jid: String,
        approve: bool,
        participants: Vec<String>,
    },
    ResetInvite {
        group_jid: String,
    },
    SessionStatus,
    /// The end of a WhatsApp restriction, as the server states it (contract section 13):
    /// asked by the session object after a 463, never routed from a client call. Its data is
    /// `{ "restricted_until": <unix seconds> }`, or `{}` when the server states no active end.
    RestrictionStatus,
    /// Whether the account is a member of the group (contract sections 9 and 14): asked by
    /// the session object for a pending join, a `read` call. Its data is exactly
    /// `{ "member": true|false }`; an answer that cannot be told from a failure is an error.
    MembershipCheck {
        group_jid: String,
    },
}

impl Op {
    /// Join and leave: the calls a WhatsApp cooldown stops (and the `join` class).
    pub fn is_join_class(&self) -> bool {
        matches!(
            self,
            Self::Join { .. } | Self::JoinByMessage { .. } | Self::Leave { .. }
        )
    }

    /// The operation's name in `not_implemented` details (contract section 2).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Join { .. } => "join",
            Self::JoinByMessage { .. } => "join_by_message",
            Self::Preview { .. } => "preview",
            Self::Leave { .. } => "leave",
            Self::ListJoinRequests { .. } => "list_join_requests",
            Self::JoinRequestAction { approve: true, .. } => "approve_join_requests",
            Self::JoinRequestAction { approve: false, .. } => "reject_join_requests",
            Self::ResetInvite { .. } => "reset_invite",
            Self::SessionStatus => "session_status",
            Self::RestrictionStatus => "restriction_status",
            Self::MembershipCheck { .. } => "membership_check",
        }
    }
}

/// An [`Op`] between joingate's own parts (the session object's messages, job items in
/// SQLite): one flat record named by `op`. The derived enum format compiled to a visitor
/// per variant, about 10 KB of wasm; this is one struct's, and it is read back by hand
/// (`Op::read`).
#[derive(Default, Serialize)]
struct OpWire {
    op: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group_jid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    inviter_jid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expiration: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    approve: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    participants: Option<Vec<String>>,
}

impl From<Op> for OpWire {
    fn from(op: Op) -> Self {
        let name = match &op {
            Op::JoinRequestAction { .. } => "join_request_action",
            other => other.name(),
        };
        let mut wire = OpWire {
            op: name.to_string(),
            ..OpWire::default()
        };
        match op {
            Op::Join { code } | Op::Preview { code } => wire.code = Some(code),
            Op::JoinByMessage {
                code,
                group_jid,
                inviter_jid,
                expiration,
            } => {
                wire.code = Some(code);
                wire.group_jid = Some(group_jid);
                wire.inviter_jid = Some(inviter_jid);
                wire.expiration = expiration;
            }
            Op::Leave { group_jid }
            | Op::ListJoinRequests { group_jid }
            | Op::ResetInvite { group_jid }
            | Op::MembershipCheck { group_jid } => wire.group_jid = Some(group_jid),
            Op::JoinRequestAction {
                group_jid,
                approve,
                participants,
            } => {
                wire.group_jid = Some(group_jid);
                wire.approve = Some(approve);
                wire.participants = Some(participants);
            }
            Op::SessionStatus | Op::RestrictionStatus => {}
        }
        wire
    }
}

impl Op {
    /// An [`OpWire`] record read back: `None` (the record refused) for a missing or mistyped
    /// field, or an unknown `op`. Every field is read, present or not, as the derive read
    /// them.
    pub fn read(value: Value) -> Option<Self> {
        let mut fields = Fields::of(value)?;
        let op = fields.string("op")?;
        let code = fields.opt_string("code")?;
        let group_jid = fields.opt_string("group_jid")?;
        let inviter_jid = fields.opt_string("inviter_jid")?;
        let expiration = fields.opt_i64("expiration")?;
        let approve = fields.opt_bool("approve")?;
        let participants = fields.opt_strings("participants")?;
        Some(match op.as_str() {
            "join" => Op::Join { code: code? },
            "preview" => Op::Preview { code: code? },
            "join_by_message" => Op::JoinByMessage {
                code: code?,
                group_jid: group_jid?,
                inviter_jid: inviter_jid?,
                expiration,
            },
            "leave" => Op::Leave {
                group_jid: group_jid?,
            },
            "list_join_requests" => Op::ListJoinRequests {
                group_jid: group_jid?,
            },
            "reset_invite" => Op::ResetInvite {
                group_jid: group_jid?,
            },
            "join_request_action" => Op::JoinRequestAction {
                group_jid: group_jid?,
                approve: approve?,
                participants: participants?,
            },
            "session_status" => Op::SessionStatus,
            "restriction_status" => Op::RestrictionStatus,
            "membership_check" => Op::MembershipCheck {
                group_jid: group_jid?,
            },
            _ => return None,
        })
    }
}

impl<'de> Deserialize<'de> for Op {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_with(d, Op::read)
    }
}

/// Who the dialect talks to: the kind, the remote session name (already defaulted) and the
/// credential in the clear. Lives only for one exchange; never serialised.
#[derive(Clone, PartialEq)]
pub struct Target {
    pub kind: Kind,
    pub remote_session: Option<String>,
    pub credential: Option<String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The credential never reaches a log line, not even through Debug.
        f.debug_struct("Target")
            .field("kind", &self.kind)
            .field("remote_session", &self.remote_session)
            .field("has_credential", &self.credential.is_some())
            .finish()
    }
}

impl Target {
    /// The credential as this kind sends it, and gowa's device.
    fn auth_headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = Vec::new();
        if let Some(c) = &self.credential {
            headers.push(match self.kind {
                Kind::Joingate => ("Authorization", format!("Bearer {c}")),
                Kind::Waha => ("X-Api-Key", c.clone()),
                Kind::Evolution => ("apikey", c.clone()),
                Kind::Wuzapi => ("token", c.clone()),
                Kind::Gowa => (
                    "Authorization",
                    format!("Basic {}", super::base64::encode(c.as_bytes())),
                ),
            });
        }
        if let (Kind::Gowa, Some(device)) = (self.kind, &self.remote_session) {
            headers.push(("X-Device-Id", device.clone()));
        }
        headers
    }

    /// The step that sends one request to this target (a JSON body, if any).
    pub fn send(
        &self,
        method: &'static str,
        path: String,
        body: Option<Value>,
        stage: Stage,
    ) -> Step {
        Step::Send(
            HttpRequest {
                method,
                path,
                headers: self.auth_headers(),
                body: body.map(|b| b.to_string()),
            },
            stage,
        )
    }
}

/// One HTTP request for the backend client to execute. `path` is below the backend's base
/// URL (which has no trailing `/`), starts with `/` and carries its query, percent-encoded.
#[derive(Clone, PartialEq)]
pub struct HttpRequest {
    pub method: &'static str,
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
    /// A JSON body (sent with `Content-Type: application/json`).
    pub body: Option<String>,
}

impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Headers hold the credential: only their names are shown.
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| *n).collect();
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("headers", &names)
            .field("body", &self.body)
            .finish()
    }
}

/// The most of a backend answer joingate reads (contract section 2): past it the answer is
/// `answer_too_large` and the rest is not read.
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// A backend `Retry-After` over a day counts as a day (contract section 6).
pub const MAX_RETRY_AFTER_S: u64 = 86_400;

/// A backend's `Retry-After` in seconds, at most a day; `None` when absent or not a number
/// of seconds (a date is not taken: joingate then picks its own wait).
pub fn retry_after_s(header: Option<&str>) -> Option<u64> {
    let value = header?.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // All digits: only an overflow fails to parse, and that is over a day too.
    Some(
        value
            .parse::<u64>()
            .map_or(MAX_RETRY_AFTER_S, |s| s.min(MAX_RETRY_AFTER_S)),
    )
}

/// An answer the backend gave in full.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    /// `Retry-After` seconds, if it sent one.
    pub retry_after_s: Option<u64>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn json(&self) -> Option<Value> {
        crate::core::json::parse_bytes(&self.body)
    }
}

/// How one request ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    Answered(Answer),
    /// The status line arrived, then the body was cut off: the backend was reached.
    Cut {
        status: u16,
    },
    /// The answer passed `MAX_ANSWER_BYTES` and was not read further: reached, and cut off
    /// as far as joingate is concerned.
    TooLarge {
        status: u16,
    },
    /// Connection refused, reset or DNS failure: the backend was never reached.
    Unreachable,
    TimedOut {
        timeout_ms: u64,
    },
}

impl Transport {
    /// Whether the request may have reached the backend: only a refused connection surely
    /// did not. A timeout's effect is unknown, and part of an answer means it arrived
    /// (contract section 6: the token stays spent).
    pub fn reached(&self) -> bool {
        !matches!(self, Self::Unreachable)
    }

    /// Whether the circuit breaker counts this as a failure.
    pub fn is_failure(&self) -> bool {
        matches!(self, Self::Unreachable | Self::TimedOut { .. })
    }

    /// The answer, or the error every dialect gives for a transport that did not answer.
    pub fn answer(self) -> Result<Answer, ApiError> {
        match self {
            Self::Answered(answer) => Ok(answer),
            Self::Unreachable => {
                Err(ApiError::new(ErrorCode::BackendUnavailable).with_retry_after(5))
            }
            Self::TimedOut { timeout_ms } => {
                Err(ApiError::new(ErrorCode::BackendTimeout).with_detail("timeout_ms", timeout_ms))
            }
            Self::Cut { status } => Err(ApiError::new(ErrorCode::BackendError)
                .with_message("The session backend's answer was cut off.")
                .with_detail("backend_status", status)
                .with_detail("reason", "answer_cut_off")),
            Self::TooLarge { status } => Err(ApiError::new(ErrorCode::BackendError)
                .with_message(
                    "The session backend's answer is over 1 MiB; joingate stopped reading it.",
                )
                .with_detail("backend_status", status)
                .with_detail("reason", "answer_too_large")),
        }
    }
}

/// Where a multi-step exchange stands between two requests.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// The operation's own request.
    Main,
    /// waha, wuzapi: the preview before a join, to learn the group and whether it needs
    /// approval (their join answer cannot tell a membership request from a join).
    PreviewBeforeJoin,
    /// waha, wuzapi: the join, with what the preview said.
    JoinAfterPreview {
        group_jid: String,
        requires_approval: bool,
    },
    /// evolution, gowa: a preview after a join whose answer named no group (a pending
    /// request on Baileys, or "already a member" told as an error).
    PreviewForGroup { status: &'static str },
    /// gowa: whether the account is a member after the join (its preview has no approval
    /// field, and its join answer is the same for a join and a request).
    MembershipAfterJoin { group_jid: String },
    /// wuzapi (any failure) and evolution (a failed preview): a failure that says nothing
    /// of its cause; the status route tells whether the session is connected.
    StatusAfterSilentFailure { backend_status: u16 },
}

/// What the exchange does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Send(HttpRequest, Stage),
    Done(Result<Value, ApiError>),
}

/// `501 not_implemented` (and the few input limits of a server) before anything is sent;
/// the edge calls this right after the body checks (contract section 1).
pub fn supports(kind: Kind, op: &Op) -> Result<(), ApiError> {
    let implemented = match kind {
        Kind::Joingate => true,
        Kind::Waha => !matches!(op, Op::JoinByMessage { .. }),
        // Only WAHA and the native protocol can state a restriction's end (contract
        // section 13).
        Kind::Gowa => !matches!(op, Op::JoinByMessage { .. } | Op::RestrictionStatus),
        Kind::Evolution | Kind::Wuzapi => !matches!(
            op,
            Op::JoinByMessage { .. }
                | Op::ListJoinRequests { .. }
                | Op::JoinRequestAction { .. }
                | Op::RestrictionStatus
        ),
    };
    if !implemented {
        return Err(not_implemented(kind, op));
    }
    if kind == Kind::Evolution {
        evolution::check_input(op)?;
    }
    Ok(())
}

pub fn not_implemented(kind: Kind, op: &Op) -> ApiError {
    ApiError::new(ErrorCode::NotImplemented)
        .with_message(format!(
            "This session's backend ({}) cannot do {}.",
            kind.as_str(),
            op.name()
        ))
        .with_detail("backend_kind", kind.as_str())
        .with_detail("operation", op.name())
}

/// The end of a WhatsApp restriction in the data of a [`Op::SessionStatus`] or
/// [`Op::RestrictionStatus`] answer: unix seconds, when the server stated an active end.
/// `None` is "unknown", never "no restriction" (contract section 13).
pub fn restricted_until(data: &Value) -> Option<i64> {
    data.get(RESTRICTED_UNTIL)
        .and_then(Value::as_i64)
        .filter(|s| *s > 0)
}

/// The data key of a restriction's end (see [`restricted_until`]).
pub const RESTRICTED_UNTIL: &str = "restricted_until";

/// `data` with the restriction's end added, when there is one.
pub(crate) fn with_restricted_until(mut data: Value, until: Option<i64>) -> Value {
    if let (Some(until), Some(map)) = (until, data.as_object_mut()) {
        map.insert(RESTRICTED_UNTIL.into(), Value::from(until));
    }
    data
}

/// The first step of the exchange for `op`.
pub fn start(target: &Target, op: &Op) -> Step {
    if let Err(error) = supports(target.kind, op) {
        return Step::Done(Err(error));
    }
    match target.kind {
        Kind::Joingate => joingate::start(target, op),
        Kind::Waha => waha::start(target, op),
        Kind::Evolution => evolution::start(target, op),
        Kind::Wuzapi => wuzapi::start(target, op),
        Kind::Gowa => gowa::start(target, op),
    }
}

/// The step after the backend answered a request sent at `stage`.
pub fn resume(target: &Target, op: &Op, stage: Stage, outcome: Transport) -> Step {
    match target.kind {
        Kind::Joingate => joingate::resume(op, outcome),
        Kind::Waha => waha::resume(target, op, stage, outcome),
        Kind::Evolution => evolution::resume(target, op, stage, outcome),
        Kind::Wuzapi => wuzapi::resume(target, op, stage, outcome),
        Kind::Gowa => gowa::resume(target, op, stage, outcome),
    }
}

/// How a whole exchange ended, for the session object's bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchanged {
    pub result: Result<Value, ApiError>,
    /// Some request got (part of) an answer: the rate-limit token stays spent.
    pub reached: bool,
    /// The exchange failed on its transport (unreachable, timeout): a breaker failure.
    pub transport_failed: bool,
}

/// Bookkeeping of an exchange in progress; the edge's loop and the native tests share it.
#[derive(Debug, Default)]
pub struct Progress {
    reached: bool,
    last_failed: bool,
}

impl Progress {
    pub fn record(&mut self, outcome: &Transport) {
        self.reached |= outcome.reached();
        self.last_failed = outcome.is_failure();
    }

    pub fn finish(self, result: Result<Value, ApiError>) -> Exchanged {
        let transport_failed = self.last_failed
            && matches!(
                result.as_ref().err().map(|e| e.code),
                Some(ErrorCode::BackendUnavailable | ErrorCode::BackendTimeout)
            );
        Exchanged {
            result,
            reached: self.reached,
            transport_failed,
        }
    }
}

/// Runs a whole exchange against `backend` synchronously (the native tests' backend).
pub fn run_with(
    target: &Target,
    op: &Op,
    mut backend: impl FnMut(&HttpRequest) -> Transport,
) -> (Exchanged, Vec<HttpRequest>) {
    let mut sent = Vec::new();
    let mut progress = Progress::default();
    let mut step = start(target, op);
    loop {
        match step {
            Step::Done(result) => return (progress.finish(result), sent),
            Step::Send(request, stage) => {
                let outcome = backend(&request);
                progress.record(&outcome);
                sent.push(request);
                step = resume(target, op, stage, outcome);
            }
        }
    }
}

#[cfg(test)]
pub mod testing {
    //! Helpers for the dialects' table tests: canned answers and a scripted backend.
    use super::*;

    pub const CODE: &str = "AbCdEfGhIjKlMnOpQrStUv";
    pub const GROUP: &str = "120363000000000001@g.us";

    pub fn answer(status: u16, body: &str) -> Transport {
        Transport::Answered(Answer {
            status,
            retry_after_s: None,
            body: body.as_bytes().to_vec(),
        })
    }

    pub fn target(kind: Kind, remote: Option<&str>, credential: Option<&str>) -> Target {
        Target {
            kind,
            remote_session: remote.map(str::to_owned),
            credential: credential.map(str::to_owned),
        }
    }

    /// Runs `op` against answers given in order; panics (a test failure) if more requests
    /// are sent than answers given.
    pub fn script(
        target: &Target,
        op: &Op,
        answers: Vec<Transport>,
    ) -> (Exchanged, Vec<HttpRequest>) {
        let mut answers = answers.into_iter();
        run_with(target, op, |request| {
            answers
                .next()
                .unwrap_or_else(|| panic!("unexpected request {request:?}"))
        })
    }

    /// The code (and wa_code) of an exchange that failed, or the data of one that worked.
    pub fn outcome(exchanged: &Exchanged) -> Result<Value, (ErrorCode, Option<i64>)> {
        exchanged
            .result
            .clone()
            .map_err(|e| (e.code, e.details.get("wa_code").and_then(Value::as_i64)))
    }

    pub fn join(code: &str) -> Op {
        Op::Join { code: code.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn every_op_survives_its_wire_form_and_a_broken_one_is_refused() {
        let ops = [
            Op::Join { code: "c".into() },
            Op::Preview { code: "c".into() },
            Op::JoinByMessage {
                code: "c".into(),
                group_jid: GROUP.into(),
                inviter_jid: "1@s.whatsapp.net".into(),
                expiration: Some(7),
            },
            Op::JoinByMessage {
                code: "c".into(),
                group_jid: GROUP.into(),
                inviter_jid: "1@s.whatsapp.net".into(),
                expiration: None,
            },
            Op::Leave {
                group_jid: GROUP.into(),
            },
            Op::ListJoinRequests {
                group_jid: GROUP.into(),
            },
            Op::ResetInvite {
                group_jid: GROUP.into(),
            },
            Op::JoinRequestAction {
                group_jid: GROUP.into(),
                approve: false,
                participants: vec!["1@s.whatsapp.net".into()],
            },
            Op::SessionStatus,
            Op::RestrictionStatus,
            Op::MembershipCheck {
                group_jid: GROUP.into(),
            },
        ];
        for op in ops {
            let text = serde_json::to_string(&op).unwrap();
            assert_eq!(serde_json::from_str::<Op>(&text).unwrap(), op, "{text}");
        }
        for broken in [
            r#"{"op":"join"}"#,
            r#"{"op":"leave","code":"c"}"#,
            r#"{"op":"join_request_action","group_jid":"g","approve":true}"#,
            r#"{"op":"dance"}"#,
            r#"{"op":"membership_check","code":"c"}"#,
            r#"{"code":"c"}"#,
        ] {
            assert!(serde_json::from_str::<Op>(broken).is_err(), "{broken}");
        }
    }

    #[test]
    fn unsupported_operations_are_501_before_any_request() {
        let by_message = Op::JoinByMessage {
            code: "x".into(),
            group_jid: GROUP.into(),
            inviter_jid: "1@s.whatsapp.net".into(),
            expiration: None,
        };
        let list = Op::ListJoinRequests {
            group_jid: GROUP.into(),
        };
        for (kind, op, implemented) in [
            (Kind::Joingate, &by_message, true),
            (Kind::Waha, &by_message, false),
            (Kind::Evolution, &by_message, false),
            (Kind::Wuzapi, &by_message, false),
            (Kind::Gowa, &by_message, false),
            (Kind::Waha, &list, true),
            (Kind::Gowa, &list, true),
            (Kind::Evolution, &list, false),
            (Kind::Wuzapi, &list, false),
        ] {
            assert_eq!(supports(kind, op).is_ok(), implemented, "{kind:?} {op:?}");
            if implemented {
                continue;
            }
            let (done, sent) = script(&target(kind, Some("s"), None), op, vec![]);
            assert!(sent.is_empty());
            let error = done.result.err();
            assert_eq!(
                error.as_ref().map(|e| e.code),
                Some(ErrorCode::NotImplemented)
            );
            assert_eq!(
                error.as_ref().map(|e| e.details["backend_kind"].clone()),
                Some(Value::from(kind.as_str()))
            );
            assert!(!done.reached);
        }
    }

    #[test]
    fn only_waha_and_the_native_protocol_are_asked_for_a_restriction_end() {
        let op = Op::RestrictionStatus;
        assert_eq!(op.name(), "restriction_status");
        assert!(!op.is_join_class());
        assert_eq!(
            serde_json::to_value(&op).ok(),
            Some(json!({ "op": "restriction_status" }))
        );
        for kind in Kind::ALL {
            let asked = matches!(kind, Kind::Joingate | Kind::Waha);
            assert_eq!(supports(kind, &op).is_ok(), asked, "{kind:?}");
            let (done, sent) = run_with(&target(kind, Some("s"), None), &op, |_| {
                answer(200, r#"{"restricted_until":1790000000}"#)
            });
            assert_eq!(sent.len(), usize::from(asked), "{kind:?}");
            if asked {
                continue;
            }
            let error = done.result.err();
            assert_eq!(
                error.as_ref().map(|e| e.code),
                Some(ErrorCode::NotImplemented)
            );
            assert_eq!(
                error.map(|e| e.details["operation"].clone()),
                Some(json!("restriction_status"))
            );
            assert!(!done.reached);
        }
    }

    #[test]
    fn a_membership_check_is_a_read_every_kind_can_do() {
        let op = Op::MembershipCheck {
            group_jid: GROUP.into(),
        };
        assert_eq!(op.name(), "membership_check");
        assert!(!op.is_join_class());
        assert_eq!(
            serde_json::to_value(&op).ok(),
            Some(json!({ "op": "membership_check", "group_jid": GROUP }))
        );
        for kind in Kind::ALL {
            assert!(supports(kind, &op).is_ok(), "{kind:?}");
            let (_, sent) = run_with(&target(kind, Some("s"), None), &op, |_| {
                answer(200, r#"{"member":true}"#)
            });
            assert_eq!(sent.first().map(|r| r.method), Some("GET"), "{kind:?}");
        }
    }

    #[test]
    fn evolution_wuzapi_and_gowa_status_answers_never_state_a_restriction() {
        // Each kind's connected status answer, with every spelling of a restriction end a
        // server could slip in: none of these servers states one (contract section 13).
        let extra = r#""restricted_until":1790000000,"reachoutTimelock":{"isActive":true,"timeEnforcementEnds":"1790000000"},"me":{"reachoutTimelock":{"isActive":true,"timeEnforcementEnds":1790000000}}"#;
        for (kind, body) in [
            (
                Kind::Evolution,
                format!(r#"{{"instance":{{"instanceName":"s","state":"open",{extra}}},{extra}}}"#),
            ),
            (
                Kind::Wuzapi,
                format!(
                    r#"{{"code":200,"data":{{"Connected":true,"LoggedIn":true,{extra}}},"success":true,{extra}}}"#
                ),
            ),
            (
                Kind::Gowa,
                format!(
                    r#"{{"code":"SUCCESS","message":"ok","results":{{"is_connected":true,"is_logged_in":true,{extra}}},{extra}}}"#
                ),
            ),
        ] {
            let (done, sent) = script(
                &target(kind, Some("s"), Some("c")),
                &Op::SessionStatus,
                vec![answer(200, &body)],
            );
            assert_eq!(sent.len(), 1);
            let data = testing::outcome(&done);
            assert_eq!(data, Ok(json!({ "connected": true })), "{kind:?}");
            assert_eq!(
                data.ok().as_ref().and_then(restricted_until),
                None,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn a_restriction_end_is_read_from_either_answer() {
        for (data, until) in [
            (
                json!({ "connected": true, "restricted_until": 1_790_000_000 }),
                Some(1_790_000_000),
            ),
            (
                json!({ "restricted_until": 1_790_000_000 }),
                Some(1_790_000_000),
            ),
            (json!({}), None),
            (json!({ "connected": true }), None),
            (json!({ "restricted_until": null }), None),
            (json!({ "restricted_until": "1790000000" }), None),
            (json!({ "restricted_until": 0 }), None),
            (json!({ "restricted_until": -1 }), None),
            (json!([1_790_000_000]), None),
            (Value::Null, None),
        ] {
            assert_eq!(restricted_until(&data), until, "{data}");
        }
        assert_eq!(
            with_restricted_until(json!({ "connected": false }), Some(7)),
            json!({ "connected": false, "restricted_until": 7 })
        );
        assert_eq!(with_restricted_until(json!({}), None), json!({}));
    }

    #[test]
    fn transport_failures_are_the_same_on_every_kind() {
        for kind in Kind::ALL {
            let t = target(kind, Some("s"), Some("c"));
            for (outcome, code, reached, failed) in [
                (
                    Transport::Unreachable,
                    ErrorCode::BackendUnavailable,
                    false,
                    true,
                ),
                (
                    Transport::TimedOut { timeout_ms: 9 },
                    ErrorCode::BackendTimeout,
                    true,
                    true,
                ),
                (
                    Transport::Cut { status: 200 },
                    ErrorCode::BackendError,
                    true,
                    false,
                ),
                (
                    Transport::TooLarge { status: 200 },
                    ErrorCode::BackendError,
                    true,
                    false,
                ),
            ] {
                let op = Op::Leave {
                    group_jid: GROUP.into(),
                };
                let lost = matches!(outcome, Transport::Cut { .. } | Transport::TooLarge { .. });
                let (done, _) = script(&t, &op, vec![outcome]);
                // An answer lost on the way (cut or too large) is never kept for a replay.
                if let Err(error) = &done.result {
                    assert_eq!(error.answer_lost(), lost, "{kind:?} {error:?}");
                }
                assert_eq!(done.result.err().map(|e| e.code), Some(code), "{kind:?}");
                assert_eq!(done.reached, reached);
                assert_eq!(done.transport_failed, failed);
            }
        }
    }

    #[test]
    fn a_backend_retry_after_counts_at_most_a_day() {
        for (header, seconds) in [
            (None, None),
            (Some(""), None),
            (Some("30"), Some(30)),
            (Some(" 0 "), Some(0)),
            (Some("86400"), Some(86_400)),
            (Some("86401"), Some(86_400)),
            (Some("31536000"), Some(86_400)),
            (Some("99999999999999999999999999"), Some(86_400)),
            (Some("-5"), None),
            (Some("1.5"), None),
            (Some("Wed, 21 Oct 2015 07:28:00 GMT"), None),
        ] {
            assert_eq!(retry_after_s(header), seconds, "{header:?}");
        }
    }

    #[test]
    fn debug_output_never_shows_the_credential() {
        let t = target(Kind::Waha, Some("s"), Some("super-secret"));
        assert!(!format!("{t:?}").contains("super-secret"));
        if let Step::Send(request, _) = start(&t, &Op::SessionStatus) {
            assert!(!format!("{request:?}").contains("super-secret"));
            assert!(request.headers.iter().any(|(_, v)| v == "super-secret"));
        } else {
            panic!("status sends a request");
        }
    }
}
