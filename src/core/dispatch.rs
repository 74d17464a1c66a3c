//! The message the Worker sends to a session's Durable Object, and the session record kept
//! in KV. Both sides serialise these types, so they cannot drift apart.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::backend::spec::{Sealed, StoredBackend};
use super::backend::{Kind, Op};
use super::json::{deserialize_with, list, string, Fields};
use super::limits::{Class, LimitOverrides, Limits};
use super::policy::PolicyMode;
use super::protection::settings::Protection;

mod org_action;
pub use org_action::OrgAction;

/// The records below are read back by hand (`read`, with `json::Fields`): the same field
/// names, types, defaults and refusals as the derive they replace, unknown fields ignored.
macro_rules! read_by_hand {
    ($($record:ty),*) => {$(
        impl<'de> Deserialize<'de> for $record {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                deserialize_with(d, <$record>::read)
            }
        }
    )*};
}

read_by_hand!(
    SessionCall,
    CallPayload,
    Assign,
    EventsHead,
    EventsHook,
    IdempotencyRef,
    SessionRecord,
    DeliveryTask
);

/// `Deserialize` by a reader that says what is wrong (a job or org action missing a field
/// its `type` needs), as the derived `try_from` said it.
fn deserialize_saying<'de, D: Deserializer<'de>, T>(
    d: D,
    read: fn(Value) -> Result<T, String>,
) -> Result<T, D::Error> {
    read(Value::deserialize(d)?).map_err(serde::de::Error::custom)
}

fn unexpected_shape(record: &str) -> String {
    format!("{record}: a record of an unexpected shape")
}

impl<'de> Deserialize<'de> for JobCall {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_saying(d, JobCall::read)
    }
}

impl<'de> Deserialize<'de> for JobAction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_saying(d, JobAction::read)
    }
}

/// One client call for the session's Durable Object to run: what it needs to admit the call
/// and take its place in the queue, without an await. It travels in a request header
/// (reading a body awaits, and calls that await before joining the queue can overtake each
/// other), so it holds no secret: the invite code and the sealed credential are in the
/// `CallPayload`, in the body, read once the call holds its place.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionCall {
    pub request_id: String,
    pub session: String,
    pub org: String,
    /// The rate-limit class the call spends from.
    pub class: Class,
    /// The session's effective limits (defaults with its overrides).
    pub limits: Limits,
    /// The org-wide limit refused this call, with the seconds until it has room; the object
    /// answers 429 at the rate-limit step of the contract's check order (after idempotency
    /// replays and the circuit breaker).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_wait_s: Option<u64>,
    /// The event types the org's webhook takes, as the org's object said when it counted
    /// the call (empty: no webhook); `None` when that is unknown, and then every event is
    /// offered to the object. Saves the object a round trip per join for an org without
    /// a webhook.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_events: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency: Option<IdempotencyRef>,
    /// Which operation, by name only (`Op::name`): the events and the status answer.
    pub operation: String,
    /// The session's account protection (section 13), as its record holds it.
    #[serde(skip_serializing_if = "is_unset")]
    pub protection: Protection,
    /// What the org's join policy asks of joins (section 15), as the org's object said
    /// when it counted the call; `None` when that is unknown: the object asks itself.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "policy_view"
    )]
    pub policy: Option<PolicyMode>,
}

/// `SessionCall::policy` as `PolicyMode::view` (read back by `PolicyMode::read`).
fn policy_view<S: serde::Serializer>(mode: &Option<PolicyMode>, s: S) -> Result<S::Ok, S::Error> {
    mode.map(PolicyMode::view).serialize(s)
}

impl SessionCall {
    fn read(value: Value) -> Option<Self> {
        let mut fields = Fields::of(value)?;
        Some(Self {
            request_id: fields.string("request_id")?,
            session: fields.string("session")?,
            org: fields.string("org")?,
            class: fields.with("class", |value| Class::parse(value.as_str()?))?,
            limits: fields.with("limits", Limits::read)?,
            org_wait_s: fields.opt("org_wait_s", |value| value.as_u64())?,
            webhook_events: fields.opt_strings("webhook_events")?,
            idempotency: fields.opt("idempotency", IdempotencyRef::read)?,
            operation: fields.string("operation")?,
            protection: fields.or("protection", Protection::default(), Protection::read)?,
            // A policy this object cannot read is unknown, never a refusal.
            policy: fields.take("policy").as_ref().and_then(PolicyMode::read),
        })
    }
}

fn is_unset(protection: &Protection) -> bool {
    *protection == Protection::default()
}

/// The secret part of a client call, in the body of the object's request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallPayload {
    /// What to ask of WhatsApp, validated at the edge.
    pub op: Op,
    /// The session's backend; `None` is kind `joingate` at `SESSION_BACKEND_URL`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<StoredBackend>,
    /// The group a join by link expects (section 15): previewed first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_group_jid: Option<String>,
}

impl CallPayload {
    fn read(value: Value) -> Option<Self> {
        let mut fields = Fields::of(value)?;
        Some(Self {
            op: fields.with("op", Op::read)?,
            backend: fields.opt("backend", StoredBackend::read)?,
            expected_group_jid: fields.opt_string("expected_group_jid")?,
        })
    }
}

/// `PUT /v1/admin/sessions/{sid}` tells the session's object which org owns it now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assign {
    pub session: String,
    pub org: String,
    /// Section 14's events are on: the object learns the account's ids soon if it does not
    /// know them (wuzapi's events never name the account).
    pub events: bool,
}

impl Assign {
    fn read(value: Value) -> Option<Self> {
        let mut fields = Fields::of(value)?;
        Some(Self {
            session: fields.string("session")?,
            org: fields.string("org")?,
            events: fields.or("events", false, |value| value.as_bool())?,
        })
    }
}

/// A server event for the session's object (contract section 14), in a request header; the
/// event itself is the body. The secret is the session's events secret in the clear: this
/// header only ever goes from the Worker to the object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventsHead {
    pub session: String,
    pub org: String,
    pub kind: Kind,
    pub secret: String,
}

impl EventsHead {
    fn read(value: Value) -> Option<Self> {
        let mut fields = Fields::of(value)?;
        Some(Self {
            session: fields.string("session")?,
            org: fields.string("org")?,
            kind: fields.with("kind", |value| Kind::parse(value.as_str()?))?,
            secret: fields.string("secret")?,
        })
    }
}

/// The internal header carrying an [`EventsHead`].
pub const EVENTS_HEADER: &str = "X-Joingate-Events";

/// Section 14's hook of a session: the SHA-256 (hex) of the token in its URL, and its
/// secret sealed (AES-256-GCM, bound to the session).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventsHook {
    pub token_hash: String,
    pub secret: super::backend::spec::Sealed,
}

impl EventsHook {
    fn read(value: Value) -> Option<Self> {
        let mut fields = Fields::of(value)?;
        Some(Self {
            token_hash: fields.string("token_hash")?,
            secret: fields.with("secret", Sealed::read)?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdempotencyRef {
    pub key: String,
    pub fingerprint: String,
}

impl IdempotencyRef {
    fn read(value: Value) -> Option<Self> {
        let mut fields = Fields::of(value)?;
        Some(Self {
            key: fields.string("key")?,
            fingerprint: fields.string("fingerprint")?,
        })
    }

    /// Records are kept per session object, org and key.
    pub fn scope(&self, org: &str) -> String {
        format!("{org}\n{}", self.key)
    }
}

/// What KV holds for a registered session.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionRecord {
    pub org: String,
    pub limits: LimitOverrides,
    /// Its credential sealed (AES-256-GCM); absent for the default backend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<StoredBackend>,
    /// Section 13: what the admin set (number_since, timezone, window); left out when
    /// nothing is, so records written before v1.2 read the same.
    #[serde(skip_serializing_if = "Protection::is_empty")]
    pub protection: Protection,
    /// Section 14: the hook that takes the server's events; `None`: events are off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<EventsHook>,
}

impl SessionRecord {
    fn read(value: Value) -> Option<Self> {
        let mut fields = Fields::of(value)?;
        Some(Self {
            org: fields.string("org")?,
            limits: fields.or("limits", LimitOverrides::default(), LimitOverrides::read)?,
            backend: fields.opt("backend", StoredBackend::read)?,
            protection: fields.or("protection", Protection::default(), Protection::read)?,
            events: fields.opt("events", EventsHook::read)?,
        })
    }
}

/// Internal header with the backend's latency, read by the Worker for its log line and
/// removed before the answer leaves.
pub const BACKEND_LATENCY_HEADER: &str = "X-Joingate-Backend-Ms";

/// Internal header carrying the `SessionCall` (JSON, ASCII only: every field is validated
/// or generated as ASCII, and none is a secret) from the Worker to the Durable Object.
pub const CALL_HEADER: &str = "X-Joingate-Call";

/// What a join-job route asks of the session's Durable Object (sent in the body: a submit
/// can be large, and job routes need no arrival order before the queue).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobCall {
    pub request_id: String,
    pub session: String,
    pub org: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_wait_s: Option<u64>,
    /// The session's effective limits and protection, for the holds and estimates.
    pub limits: Limits,
    #[serde(skip_serializing_if = "is_unset")]
    pub protection: Protection,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency: Option<IdempotencyRef>,
    pub action: JobAction,
}

impl JobCall {
    /// The action first, so that its error (the field its `type` misses) is the call's, as
    /// the derive passed it on.
    fn read(value: Value) -> Result<Self, String> {
        let mut fields = Fields::of(value).ok_or_else(|| unexpected_shape("job call"))?;
        let action = JobAction::read(fields.take("action").unwrap_or_default())?;
        Self::read_head(fields, action).ok_or_else(|| unexpected_shape("job call"))
    }

    fn read_head(mut fields: Fields, action: JobAction) -> Option<Self> {
        Some(Self {
            request_id: fields.string("request_id")?,
            session: fields.string("session")?,
            org: fields.string("org")?,
            org_wait_s: fields.opt("org_wait_s", |value| value.as_u64())?,
            limits: fields.with("limits", Limits::read)?,
            protection: fields.or("protection", Protection::default(), Protection::read)?,
            idempotency: fields.opt("idempotency", IdempotencyRef::read)?,
            action,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(into = "JobActionWire")]
pub enum JobAction {
    Submit {
        job_id: String,
        items: Vec<super::jobs::SubmitItem>,
        label: Option<String>,
        interval_s: u32,
        /// A recovery job's `source` (section 15).
        source: Option<serde_json::Value>,
    },
    List,
    Get {
        job_id: String,
    },
    Pause {
        job_id: String,
    },
    Resume {
        job_id: String,
    },
    Cancel {
        job_id: String,
    },
    /// `GET …/pending-joins` (section 14): the session's requests, not a job route, but the
    /// same kind of read of the object's own state.
    PendingJoins,
}

/// A [`JobAction`] on the wire: one flat record named by `type`. The derived enum format
/// compiled to a visitor per variant (about 8 KB of wasm); this is one struct's, like
/// `OpWire`. Read back by hand (`JobActionWire::read`), then checked by its `TryFrom`.
#[derive(Default, Serialize)]
struct JobActionWire {
    #[serde(rename = "type")]
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    job_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    items: Option<Vec<super::backend::Op>>,
    /// Each item's expected group (section 15), beside `items` so that their wire stays
    /// the ops'; left out when no item has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    expected: Option<Vec<Option<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interval_s: Option<u32>,
    /// A recovery job's `source` (section 15).
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<serde_json::Value>,
}

impl JobActionWire {
    /// Every field is read, whatever the `type` (a mistyped one refuses the record, as the
    /// derive did); `TryFrom` then asks for the ones the `type` needs.
    fn read(value: Value) -> Option<Self> {
        let mut fields = Fields::of(value)?;
        Some(Self {
            kind: fields.string("type")?,
            job_id: fields.opt_string("job_id")?,
            items: fields.opt("items", |items| list(items, Op::read))?,
            expected: fields.opt("expected", |jids| {
                list(jids, |jid| match jid {
                    Value::Null => Some(None),
                    jid => string(jid).map(Some),
                })
            })?,
            label: fields.opt_string("label")?,
            interval_s: fields.opt_u32("interval_s")?,
            source: fields.take("source"),
        })
    }
}

impl JobAction {
    fn read(value: Value) -> Result<Self, String> {
        JobActionWire::read(value)
            .ok_or_else(|| unexpected_shape("job action"))?
            .try_into()
    }
}

impl From<JobAction> for JobActionWire {
    fn from(action: JobAction) -> Self {
        let (kind, job_id) = match action {
            JobAction::Submit {
                job_id,
                items,
                label,
                interval_s,
                source,
            } => {
                let expected: Vec<Option<String>> =
                    items.iter().map(|i| i.expected_group_jid.clone()).collect();
                return JobActionWire {
                    kind: "submit".into(),
                    job_id: Some(job_id),
                    expected: expected.iter().any(Option::is_some).then_some(expected),
                    items: Some(items.into_iter().map(|i| i.op).collect()),
                    label,
                    interval_s: Some(interval_s),
                    source,
                };
            }
            JobAction::List => ("list", None),
            JobAction::PendingJoins => ("pending_joins", None),
            JobAction::Get { job_id } => ("get", Some(job_id)),
            JobAction::Pause { job_id } => ("pause", Some(job_id)),
            JobAction::Resume { job_id } => ("resume", Some(job_id)),
            JobAction::Cancel { job_id } => ("cancel", Some(job_id)),
        };
        JobActionWire {
            kind: kind.into(),
            job_id,
            ..JobActionWire::default()
        }
    }
}

impl TryFrom<JobActionWire> for JobAction {
    type Error = String;

    fn try_from(wire: JobActionWire) -> Result<Self, String> {
        let JobActionWire {
            kind,
            job_id,
            items,
            label,
            interval_s,
            expected,
            source,
        } = wire;
        let missing = |field: &str| format!("job action {kind}: missing {field}");
        let job_id = job_id.ok_or_else(|| missing("job_id"));
        Ok(match kind.as_str() {
            "list" => JobAction::List,
            "pending_joins" => JobAction::PendingJoins,
            "get" => JobAction::Get { job_id: job_id? },
            "pause" => JobAction::Pause { job_id: job_id? },
            "resume" => JobAction::Resume { job_id: job_id? },
            "cancel" => JobAction::Cancel { job_id: job_id? },
            "submit" => {
                let mut expected = expected.unwrap_or_default().into_iter();
                let items = items
                    .ok_or_else(|| missing("items"))?
                    .into_iter()
                    .map(|op| super::jobs::SubmitItem {
                        op,
                        expected_group_jid: expected.next().flatten(),
                    })
                    .collect();
                JobAction::Submit {
                    job_id: job_id?,
                    items,
                    label,
                    interval_s: interval_s.ok_or_else(|| missing("interval_s"))?,
                    source,
                }
            }
            _ => return Err(format!("unknown job action {kind}")),
        })
    }
}

/// The message on the `WEBHOOKS` queue: which delivery of which org to attempt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryTask {
    pub org: String,
    pub delivery_id: String,
    /// Attempts made when this one was queued: a task that does not match (a duplicate
    /// message, a stale retry) is dropped, so one delivery never has two attempts at once.
    pub attempts: i64,
}

impl DeliveryTask {
    fn read(value: Value) -> Option<Self> {
        let mut fields = Fields::of(value)?;
        Some(Self {
            org: fields.string("org")?,
            delivery_id: fields.string("delivery_id")?,
            attempts: fields.i64("attempts")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::jobs::SubmitItem;
    use serde_json::{json, Value};

    fn round_trip<T>(value: &T) -> Value
    where
        T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug,
    {
        let json = serde_json::to_value(value).unwrap();
        assert!(json.is_object(), "one flat object: {json}");
        let back: T = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(&back, value, "{json}");
        json
    }

    #[test]
    fn every_job_action_round_trips_as_one_flat_object() {
        let id = || "job_0123456789abcdef".to_string();
        let actions = [
            JobAction::Submit {
                job_id: id(),
                items: vec![
                    crate::core::jobs::SubmitItem {
                        op: Op::Join {
                            code: "AbCdEfGhIjKlMnOpQrStUv".into(),
                        },
                        expected_group_jid: Some("120363000000000001@g.us".into()),
                    },
                    crate::core::jobs::SubmitItem {
                        op: Op::Leave {
                            group_jid: "120363000000000000@g.us".into(),
                        },
                        expected_group_jid: None,
                    },
                ],
                label: Some("batch".into()),
                interval_s: 180,
                source: Some(json!({ "from_session": "a" })),
            },
            JobAction::Submit {
                job_id: id(),
                items: vec![SubmitItem {
                    op: Op::Leave {
                        group_jid: "120363000000000000@g.us".into(),
                    },
                    expected_group_jid: None,
                }],
                label: None,
                interval_s: 180,
                source: None,
            },
            JobAction::Submit {
                job_id: id(),
                items: Vec::new(),
                label: None,
                interval_s: 60,
                source: None,
            },
            JobAction::List,
            JobAction::Get { job_id: id() },
            JobAction::Pause { job_id: id() },
            JobAction::Resume { job_id: id() },
            JobAction::Cancel { job_id: id() },
            JobAction::PendingJoins,
        ];
        for action in &actions {
            let json = round_trip(action);
            // Flat: no nested record but a recovery's `source`, which is the answer's.
            let object = json.as_object().unwrap();
            assert!(object
                .iter()
                .all(|(key, v)| key == "source" || !v.is_object()));
        }
        // Items with no expected group travel as before: the ops alone.
        assert_eq!(
            serde_json::to_value(&actions[1]).unwrap()["expected"],
            Value::Null
        );
        assert_eq!(
            serde_json::to_value(&actions[0]).unwrap()["expected"],
            json!(["120363000000000001@g.us", null])
        );
        assert_eq!(
            serde_json::to_value(JobAction::Get { job_id: id() }).unwrap(),
            json!({ "type": "get", "job_id": id() })
        );
        assert_eq!(
            serde_json::to_value(JobAction::List).unwrap(),
            json!({ "type": "list" })
        );
        let call = JobCall {
            request_id: "req_1".into(),
            session: "s1".into(),
            org: "o1".into(),
            org_wait_s: Some(3),
            limits: Limits::default(),
            protection: Protection::default(),
            idempotency: None,
            action: actions[0].clone(),
        };
        round_trip(&call);
    }

    #[test]
    fn every_org_action_round_trips_as_one_flat_object() {
        use crate::core::limits::{ClassLimit, ClassOverride};
        let id = || "dlv_0123".to_string();
        let default = ClassLimit::new(100, 50);
        let actions = [
            OrgAction::PutWebhook {
                url: "https://example.com/hook?k=1".into(),
                events: vec!["group.joined".into(), "job.finished".into()],
                rotate_secret: true,
            },
            OrgAction::PutWebhook {
                url: "https://example.com/hook".into(),
                events: Vec::new(),
                rotate_secret: false,
            },
            OrgAction::GetWebhook,
            OrgAction::DeleteWebhook,
            OrgAction::Deliveries,
            OrgAction::Redeliver { delivery_id: id() },
            OrgAction::Event {
                event_type: "group.joined".into(),
                data: json!({ "session": "s1", "nested": { "n": [1, 2] } }),
                book: None,
            },
            OrgAction::Event {
                event_type: "group.join".into(),
                data: json!({ "session_id": "s1" }),
                book: Some(crate::core::book::Update {
                    group_jid: "1@g.us".into(),
                    session: "s1".into(),
                    change: crate::core::book::Change::Member,
                    at_ms: 5,
                    subject: Some("S".into()),
                    code: Some("C".into()),
                }),
            },
            OrgAction::Event {
                event_type: "session.status".into(),
                data: Value::Null,
                book: None,
            },
            OrgAction::Book { updates: vec![] },
            OrgAction::Groups {
                data: json!({ "query": "limit=2" }),
            },
            OrgAction::Recover {
                data: json!({ "from": "a", "to": "b" }),
            },
            OrgAction::Judge {
                data: json!({ "group_jid": "1@g.us", "message": false }),
            },
            OrgAction::PolicyMode,
            OrgAction::Attempt {
                delivery_id: id(),
                attempts: 0,
            },
            OrgAction::DeadLettered {
                delivery_id: id(),
                attempts: 6,
            },
            OrgAction::Take { default },
            OrgAction::PutOrg {
                limits: Some(ClassOverride {
                    per_minute: Some(10),
                    ..ClassOverride::default()
                }),
                keep_limits: false,
                policy: Some(json!({ "max_size": 5 })),
                default,
            },
            OrgAction::PutOrg {
                limits: None,
                keep_limits: true,
                policy: None,
                default,
            },
            OrgAction::GetOrg { default },
        ];
        for action in &actions {
            round_trip(action);
        }
        assert_eq!(
            serde_json::to_value(OrgAction::Redeliver { delivery_id: id() }).unwrap(),
            json!({ "type": "redeliver", "delivery_id": id() })
        );
    }

    fn limits_json() -> Value {
        serde_json::to_value(Limits::default()).unwrap()
    }

    fn session_call() -> SessionCall {
        SessionCall {
            request_id: "req_1".into(),
            session: "s1".into(),
            org: "o1".into(),
            class: Class::Manage,
            limits: Limits::default(),
            org_wait_s: None,
            webhook_events: None,
            idempotency: None,
            operation: "leave".into(),
            protection: Protection::default(),
            policy: None,
        }
    }

    #[test]
    fn session_calls_read_back_as_the_derive_read_them() {
        use crate::core::policy::PreviewFirst;
        let read = |json: Value| serde_json::from_value::<SessionCall>(json).ok();
        let full = SessionCall {
            org_wait_s: Some(7),
            webhook_events: Some(vec!["group.joined".into()]),
            idempotency: Some(IdempotencyRef {
                key: "k".into(),
                fingerprint: "f".into(),
            }),
            protection: Protection {
                timezone: Some("Europe/Berlin".into()),
                ..Protection::default()
            },
            policy: Some(PolicyMode {
                rules: true,
                preview_first: PreviewFirst::Always,
            }),
            ..session_call()
        };
        let text = serde_json::to_string(&full).unwrap();
        assert_eq!(serde_json::from_str::<SessionCall>(&text).ok(), Some(full));
        let base = json!({
            "request_id": "req_1", "session": "s1", "org": "o1", "class": "manage",
            "limits": limits_json(), "operation": "leave",
        });
        assert_eq!(read(base.clone()), Some(session_call()));
        // `null` for an `Option` is none; a policy this object cannot read is unknown;
        // unknown fields are ignored.
        let mut nulls = base.clone();
        for key in ["org_wait_s", "webhook_events", "idempotency", "policy"] {
            nulls[key] = Value::Null;
        }
        nulls["extra"] = json!([1]);
        assert_eq!(read(nulls), Some(session_call()));
        let mut odd_policy = base.clone();
        odd_policy["policy"] = json!({ "rules": "yes" });
        assert_eq!(read(odd_policy), Some(session_call()));
        for (key, value) in [
            ("request_id", Value::Null),
            ("class", json!("Manage")),
            ("limits", json!({ "join": { "per_minute": 1, "burst": 1 } })),
            ("limits", Value::Null),
            ("org_wait_s", json!(-1)),
            ("org_wait_s", json!(1.5)),
            ("webhook_events", json!("group.joined")),
            ("idempotency", json!({ "key": "k" })),
            ("operation", json!(1)),
            // `protection` has a default when absent, but `null` is not a protection.
            ("protection", Value::Null),
            ("protection", json!({ "timezone": 1 })),
        ] {
            let mut broken = base.clone();
            broken[key] = value;
            assert_eq!(read(broken.clone()), None, "{broken}");
        }
        let mut missing = base;
        missing.as_object_mut().unwrap().remove("operation");
        assert_eq!(read(missing), None);
        // The derive also took a struct as an array; joingate never wrote one.
        assert_eq!(read(json!(["req_1", "s1", "o1"])), None);
    }

    #[test]
    fn payloads_and_small_records_read_back() {
        let payload = CallPayload {
            op: Op::Leave {
                group_jid: "1@g.us".into(),
            },
            backend: None,
            expected_group_jid: None,
        };
        round_trip(&payload);
        let full = CallPayload {
            backend: Some(StoredBackend {
                kind: Kind::Waha,
                url: "https://waha.example".into(),
                remote_session: None,
                credential: None,
            }),
            expected_group_jid: Some("2@g.us".into()),
            ..payload.clone()
        };
        round_trip(&full);
        let read = |json: Value| serde_json::from_value::<CallPayload>(json).ok();
        let op = json!({ "op": "leave", "group_jid": "1@g.us" });
        assert_eq!(
            read(json!({ "op": op, "backend": null, "expected_group_jid": null })),
            Some(payload)
        );
        for broken in [
            json!({}),
            json!({ "op": null }),
            json!({ "op": { "op": "leave" } }),
            json!({ "op": op, "backend": { "kind": "waha" } }),
            json!({ "op": op, "expected_group_jid": 1 }),
        ] {
            assert_eq!(read(broken.clone()), None, "{broken}");
        }

        let assign = |json: Value| serde_json::from_value::<Assign>(json).ok();
        let unset = Assign {
            session: "s1".into(),
            org: "o1".into(),
            events: false,
        };
        round_trip(&unset);
        assert_eq!(assign(json!({ "session": "s1", "org": "o1" })), Some(unset));
        for broken in [
            json!({ "session": "s1", "org": "o1", "events": null }),
            json!({ "session": "s1", "org": "o1", "events": 1 }),
            json!({ "session": "s1" }),
        ] {
            assert_eq!(assign(broken.clone()), None, "{broken}");
        }

        let head = EventsHead {
            session: "s1".into(),
            org: "o1".into(),
            kind: Kind::Wuzapi,
            secret: "x".into(),
        };
        round_trip(&head);
        for broken in [
            json!({ "session": "s1", "org": "o1", "kind": "Wuzapi", "secret": "x" }),
            json!({ "session": "s1", "org": "o1", "kind": "wuzapi" }),
        ] {
            assert!(
                serde_json::from_value::<EventsHead>(broken.clone()).is_err(),
                "{broken}"
            );
        }

        let task = DeliveryTask {
            org: "o1".into(),
            delivery_id: "dlv_1".into(),
            attempts: 2,
        };
        round_trip(&task);
        assert_eq!(
            serde_json::from_str::<DeliveryTask>(
                r#"{"org":"o1","delivery_id":"dlv_1","attempts":2}"#
            )
            .ok(),
            Some(task)
        );
        for broken in [
            r#"{"org":"o1","delivery_id":"dlv_1","attempts":2.5}"#,
            r#"{"org":"o1","delivery_id":"dlv_1","attempts":null}"#,
            r#"{"org":"o1","delivery_id":"dlv_1"}"#,
        ] {
            assert!(
                serde_json::from_str::<DeliveryTask>(broken).is_err(),
                "{broken}"
            );
        }
    }

    #[test]
    fn session_records_read_back_as_the_derive_read_them() {
        use crate::core::backend::spec::Sealed;
        use crate::core::limits::ClassOverride;
        let read = |text: &str| serde_json::from_str::<SessionRecord>(text).ok();
        let bare = SessionRecord {
            org: "o1".into(),
            limits: LimitOverrides::default(),
            backend: None,
            protection: Protection::default(),
            events: None,
        };
        // A record written before limits, backends, protection and events.
        assert_eq!(read(r#"{"org":"o1"}"#), Some(bare.clone()));
        assert_eq!(
            read(r#"{"org":"o1","backend":null,"events":null,"x":1}"#),
            Some(bare.clone())
        );
        assert_eq!(
            serde_json::to_value(&bare).unwrap(),
            json!({ "org": "o1", "limits": {} })
        );
        let full = SessionRecord {
            limits: LimitOverrides {
                join: Some(ClassOverride {
                    per_day: Some(3),
                    ..ClassOverride::default()
                }),
                ..LimitOverrides::default()
            },
            backend: Some(StoredBackend {
                kind: Kind::Gowa,
                url: "https://gowa.example".into(),
                remote_session: Some("dev".into()),
                credential: None,
            }),
            protection: Protection {
                number_since: Some("2024-01-01".into()),
                ..Protection::default()
            },
            events: Some(EventsHook {
                token_hash: "ab".into(),
                secret: Sealed {
                    iv: "aXY=".into(),
                    ct: "Y3Q=".into(),
                    v: 2,
                },
            }),
            ..bare
        };
        round_trip(&full);
        for broken in [
            r#"{}"#,
            r#"{"org":"o1","limits":null}"#,
            r#"{"org":"o1","limits":{"join":{"per_minute":-1}}}"#,
            r#"{"org":"o1","protection":null}"#,
            r#"{"org":"o1","backend":{"kind":"gowa"}}"#,
            r#"{"org":"o1","events":{"token_hash":"ab"}}"#,
            r#"{"org":"o1","events":{"token_hash":"ab","secret":{"iv":"aXY="}}}"#,
        ] {
            assert_eq!(read(broken), None, "{broken}");
        }
    }

    #[test]
    fn job_calls_read_back_as_the_derive_read_them() {
        let read = |json: Value| serde_json::from_value::<JobCall>(json).ok();
        let base = json!({
            "request_id": "req_1", "session": "s1", "org": "o1",
            "limits": limits_json(), "action": { "type": "list" },
        });
        let call = JobCall {
            request_id: "req_1".into(),
            session: "s1".into(),
            org: "o1".into(),
            org_wait_s: None,
            limits: Limits::default(),
            protection: Protection::default(),
            idempotency: None,
            action: JobAction::List,
        };
        assert_eq!(read(base.clone()), Some(call.clone()));
        let mut nulls = base.clone();
        nulls["org_wait_s"] = Value::Null;
        nulls["idempotency"] = Value::Null;
        assert_eq!(read(nulls), Some(call));
        for (key, value) in [
            ("action", Value::Null),
            ("action", json!({ "type": "get" })),
            ("protection", Value::Null),
            ("org_wait_s", json!("3")),
            ("limits", json!({})),
        ] {
            let mut broken = base.clone();
            broken[key] = value;
            assert_eq!(read(broken.clone()), None, "{broken}");
        }
    }

    #[test]
    fn job_actions_read_back_as_the_derive_read_them() {
        let read = |json: Value| serde_json::from_value::<JobAction>(json).ok();
        let job_id = || "job_1".to_string();
        // `null` for an optional field is none; unknown fields are ignored.
        assert_eq!(
            read(json!({
                "type": "get", "job_id": "job_1", "items": null, "expected": null,
                "label": null, "interval_s": null, "source": null, "extra": { "a": 1 },
            })),
            Some(JobAction::Get { job_id: job_id() })
        );
        // Fewer expected groups than items: the rest expect none.
        let leave = json!({ "op": "leave", "group_jid": "1@g.us" });
        assert_eq!(
            read(json!({
                "type": "submit", "job_id": "job_1", "interval_s": 60,
                "items": [leave, leave, leave], "expected": [null, "2@g.us"],
            })),
            Some(JobAction::Submit {
                job_id: job_id(),
                items: [None, Some("2@g.us".to_string()), None]
                    .into_iter()
                    .map(|expected_group_jid| SubmitItem {
                        op: Op::Leave {
                            group_jid: "1@g.us".into(),
                        },
                        expected_group_jid,
                    })
                    .collect(),
                label: None,
                interval_s: 60,
                source: None,
            })
        );
        let submit = json!({ "type": "submit", "job_id": "job_1", "interval_s": 60, "items": [] });
        assert!(read(submit.clone()).is_some());
        for (key, value) in [
            ("type", Value::Null),
            ("job_id", json!(1)),
            ("interval_s", json!(-1)),
            ("interval_s", json!(4_294_967_296_u64)),
            ("interval_s", json!(1.5)),
            ("items", json!({})),
            ("items", json!([{ "op": "leave" }])),
            ("expected", json!([1])),
            ("label", json!(false)),
        ] {
            let mut broken = submit.clone();
            broken[key] = value;
            assert_eq!(read(broken.clone()), None, "{broken}");
        }
        // A field the type does not use still refuses the record when it is mistyped.
        assert_eq!(read(json!({ "type": "list", "interval_s": "60" })), None);
        assert_eq!(read(json!([])), None);
        // The errors name what is missing, as the derived `try_from` did, through the call.
        let error = |json: Value| {
            serde_json::from_value::<JobAction>(json)
                .err()
                .map(|e| e.to_string())
        };
        assert_eq!(
            error(json!({ "type": "get" })).as_deref(),
            Some("job action get: missing job_id")
        );
        assert_eq!(
            error(json!({ "type": "submit", "job_id": "j", "items": [] })).as_deref(),
            Some("job action submit: missing interval_s")
        );
        assert_eq!(
            error(json!({ "type": "frobnicate" })).as_deref(),
            Some("unknown job action frobnicate")
        );
        let call = json!({
            "request_id": "req_1", "session": "s1", "org": "o1",
            "limits": limits_json(), "action": { "type": "pause" },
        });
        assert_eq!(
            serde_json::from_value::<JobCall>(call)
                .err()
                .map(|e| e.to_string())
                .as_deref(),
            Some("job action pause: missing job_id")
        );
    }

    #[test]
    fn org_actions_read_back_as_the_derive_read_them() {
        use crate::core::limits::{ClassLimit, ClassOverride};
        let read = |json: Value| serde_json::from_value::<OrgAction>(json).ok();
        let default = ClassLimit::new(100, 50);
        let default_json = serde_json::to_value(default).unwrap();
        // `null` for an optional field is none, for `data` and `book` it is `null`.
        assert_eq!(
            read(json!({
                "type": "put_org", "default": default_json, "limits": null,
                "keep_limits": null, "data": null, "book": null, "url": null,
                "events": null, "rotate_secret": null, "delivery_id": null,
                "event_type": null, "attempts": null, "extra": [1],
            })),
            Some(OrgAction::PutOrg {
                limits: None,
                keep_limits: false,
                policy: None,
                default,
            })
        );
        assert_eq!(
            read(json!({
                "type": "put_org", "default": default_json,
                "limits": { "per_minute": 10, "burst": null }, "data": { "max_size": 5 },
            })),
            Some(OrgAction::PutOrg {
                limits: Some(ClassOverride {
                    per_minute: Some(10),
                    ..ClassOverride::default()
                }),
                keep_limits: false,
                policy: Some(json!({ "max_size": 5 })),
                default,
            })
        );
        assert_eq!(
            read(json!({ "type": "event", "event_type": "session.status" })),
            Some(OrgAction::Event {
                event_type: "session.status".into(),
                data: Value::Null,
                book: None,
            })
        );
        assert_eq!(
            read(json!({ "type": "book" })),
            Some(OrgAction::Book { updates: vec![] })
        );
        for broken in [
            json!({ "type": "take", "default": { "per_minute": 1 } }),
            json!({ "type": "take", "default": null }),
            json!({ "type": "put_org", "default": default_json, "limits": { "burst": -1 } }),
            json!({ "type": "put_org", "default": default_json, "keep_limits": "yes" }),
            json!({ "type": "put_webhook", "url": "u", "events": "a", "rotate_secret": true }),
            json!({ "type": "put_webhook", "url": "u", "events": [1], "rotate_secret": true }),
            json!({ "type": "attempt", "delivery_id": "d", "attempts": 1.5 }),
            // A field the type does not use still refuses the record when it is mistyped.
            json!({ "type": "get_webhook", "url": 1 }),
            json!({ "type": 1 }),
            json!({ "url": "u" }),
            json!("get_webhook"),
        ] {
            assert_eq!(read(broken.clone()), None, "{broken}");
        }
        let error = |json: Value| {
            serde_json::from_value::<OrgAction>(json)
                .err()
                .map(|e| e.to_string())
        };
        assert_eq!(
            error(json!({ "type": "redeliver" })).as_deref(),
            Some("org action redeliver: missing delivery_id")
        );
        assert_eq!(
            error(json!({ "type": "put_webhook", "url": "u", "events": [] })).as_deref(),
            Some("org action put_webhook: missing rotate_secret")
        );
        assert_eq!(
            error(json!({ "type": "frobnicate" })).as_deref(),
            Some("unknown org action frobnicate")
        );
    }

    #[test]
    fn an_org_action_without_its_fields_is_refused() {
        for json in [
            json!({ "type": "redeliver" }),
            json!({ "type": "attempt", "delivery_id": "d" }),
            json!({ "type": "take" }),
            json!({ "type": "put_webhook", "url": "https://e.com", "events": [] }),
            json!({ "type": "event" }),
            json!({ "type": "frobnicate" }),
        ] {
            assert!(
                serde_json::from_value::<OrgAction>(json.clone()).is_err(),
                "{json}"
            );
        }
    }

    #[test]
    fn a_job_action_without_its_fields_is_refused() {
        for json in [
            json!({ "type": "get" }),
            json!({ "type": "submit", "job_id": "j", "interval_s": 1 }),
            json!({ "type": "submit", "job_id": "j", "items": [] }),
            json!({ "type": "frobnicate" }),
            json!({ "job_id": "j" }),
        ] {
            assert!(
                serde_json::from_value::<JobAction>(json.clone()).is_err(),
                "{json}"
            );
        }
    }
}
