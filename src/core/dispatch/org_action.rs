//! What the Worker and the session objects ask of an org's Durable Object (`OrgAction`),
//! and its flat wire form.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};

use super::{deserialize_saying, unexpected_shape};
use crate::core::json::Fields;
use crate::core::limits::{ClassLimit, ClassOverride};

impl<'de> Deserialize<'de> for OrgAction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_saying(d, OrgAction::read)
    }
}

/// What the Worker (admin routes, the queue consumer) and the session objects ask of an
/// org's Durable Object, which keeps the org's webhook endpoint and delivery log.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(into = "OrgActionWire")]
pub enum OrgAction {
    PutWebhook {
        url: String,
        events: Vec<String>,
        rotate_secret: bool,
    },
    GetWebhook,
    DeleteWebhook,
    Deliveries,
    Redeliver {
        delivery_id: String,
    },
    /// An event raised for the org (sent only where one happened), with what it tells the
    /// org's group book (section 15).
    Event {
        event_type: String,
        data: serde_json::Value,
        book: Option<crate::core::book::Update>,
    },
    /// Facts for the org's group book alone (an invite reset; a join whose event the org's
    /// webhook does not take).
    Book {
        updates: Vec<crate::core::book::Update>,
    },
    /// `GET /v1/groups[/{gjid}]` (section 15): `data` is `{ "query"?, "group_jid"?,
    /// "visible"? }`, the query string and the token's session allow-list.
    Groups {
        data: serde_json::Value,
    },
    /// A recovery job's items from the book (section 15): `data` is `{ "from", "to",
    /// "visible"? }`; the answer holds the codes, unsealed (they stay inside joingate).
    Recover {
        data: serde_json::Value,
    },
    /// The join policy's verdict on a group: `data` is `{ "group_jid", "subject"?, "size"?,
    /// "message": bool }` (an invite message is judged without a preview).
    Judge {
        data: serde_json::Value,
    },
    /// What the join policy asks of every join (`PolicyMode`).
    PolicyMode,
    /// One delivery attempt, from the queue consumer: the one after `attempts` made.
    Attempt {
        delivery_id: String,
        attempts: i64,
    },
    /// The task of that attempt ran out of the consumer's retries (from the dead-letter
    /// queue's consumer): it counts as one failed attempt if it was never recorded.
    DeadLettered {
        delivery_id: String,
        attempts: i64,
    },
    /// One call against the org-wide limit; `default` is the `[vars]` limit, which the org's
    /// own `limits` override.
    Take {
        default: crate::core::limits::ClassLimit,
    },
    /// The org record: its `limits` (an override of the default, or none; `keep_limits`:
    /// left as they are) and its join `policy` (the policy's view; `None`: left as it is).
    PutOrg {
        limits: Option<crate::core::limits::ClassOverride>,
        keep_limits: bool,
        policy: Option<serde_json::Value>,
        default: crate::core::limits::ClassLimit,
    },
    GetOrg {
        default: crate::core::limits::ClassLimit,
    },
}

/// An [`OrgAction`] on the wire: one flat record named by `type`, like [`JobActionWire`]
/// (read back by hand: `OrgActionWire::read`).
#[derive(Default, Serialize)]
struct OrgActionWire {
    #[serde(rename = "type")]
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rotate_secret: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_type: Option<String>,
    /// An event's data (`null` is left out).
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    data: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    default: Option<crate::core::limits::ClassLimit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limits: Option<crate::core::limits::ClassOverride>,
    /// The book's facts, each `Update::view` (`null` is left out).
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    book: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    keep_limits: Option<bool>,
}

impl OrgActionWire {
    /// Every field is read, whatever the `type`, as [`JobActionWire::read`] does.
    fn read(value: Value) -> Option<Self> {
        let mut fields = Fields::of(value)?;
        Some(Self {
            kind: fields.string("type")?,
            url: fields.opt_string("url")?,
            events: fields.opt_strings("events")?,
            rotate_secret: fields.opt_bool("rotate_secret")?,
            delivery_id: fields.opt_string("delivery_id")?,
            event_type: fields.opt_string("event_type")?,
            data: fields.take("data").unwrap_or_default(),
            attempts: fields.opt_i64("attempts")?,
            default: fields.opt("default", ClassLimit::read)?,
            limits: fields.opt("limits", ClassOverride::read)?,
            book: fields.take("book").unwrap_or_default(),
            keep_limits: fields.opt_bool("keep_limits")?,
        })
    }
}

impl OrgAction {
    fn read(value: Value) -> Result<Self, String> {
        OrgActionWire::read(value)
            .ok_or_else(|| unexpected_shape("org action"))?
            .try_into()
    }
}

impl From<OrgAction> for OrgActionWire {
    fn from(action: OrgAction) -> Self {
        let mut wire = OrgActionWire::default();
        let kind = match action {
            OrgAction::PutWebhook {
                url,
                events,
                rotate_secret,
            } => {
                wire.url = Some(url);
                wire.events = Some(events);
                wire.rotate_secret = Some(rotate_secret);
                "put_webhook"
            }
            OrgAction::GetWebhook => "get_webhook",
            OrgAction::DeleteWebhook => "delete_webhook",
            OrgAction::Deliveries => "deliveries",
            OrgAction::Redeliver { delivery_id } => {
                wire.delivery_id = Some(delivery_id);
                "redeliver"
            }
            OrgAction::Event {
                event_type,
                data,
                book,
            } => {
                wire.event_type = Some(event_type);
                wire.data = data;
                wire.book = book.map_or(serde_json::Value::Null, |u| json!([u.view()]));
                "event"
            }
            OrgAction::Book { updates } => {
                wire.book = updates.iter().map(|u| u.view()).collect();
                "book"
            }
            OrgAction::Groups { data } => {
                wire.data = data;
                "groups"
            }
            OrgAction::Recover { data } => {
                wire.data = data;
                "recover"
            }
            OrgAction::Judge { data } => {
                wire.data = data;
                "judge"
            }
            OrgAction::PolicyMode => "policy_mode",
            OrgAction::Attempt {
                delivery_id,
                attempts,
            } => {
                wire.delivery_id = Some(delivery_id);
                wire.attempts = Some(attempts);
                "attempt"
            }
            OrgAction::DeadLettered {
                delivery_id,
                attempts,
            } => {
                wire.delivery_id = Some(delivery_id);
                wire.attempts = Some(attempts);
                "dead_lettered"
            }
            OrgAction::Take { default } => {
                wire.default = Some(default);
                "take"
            }
            OrgAction::PutOrg {
                limits,
                keep_limits,
                policy,
                default,
            } => {
                wire.limits = limits;
                wire.keep_limits = Some(keep_limits);
                wire.data = policy.unwrap_or_default();
                wire.default = Some(default);
                "put_org"
            }
            OrgAction::GetOrg { default } => {
                wire.default = Some(default);
                "get_org"
            }
        };
        wire.kind = kind.into();
        wire
    }
}

impl TryFrom<OrgActionWire> for OrgAction {
    type Error = String;

    fn try_from(wire: OrgActionWire) -> Result<Self, String> {
        let OrgActionWire {
            kind,
            url,
            events,
            rotate_secret,
            delivery_id,
            event_type,
            data,
            attempts,
            default,
            limits,
            book,
            keep_limits,
        } = wire;
        let missing = |field: &str| format!("org action {kind}: missing {field}");
        let delivery_id = delivery_id.ok_or_else(|| missing("delivery_id"));
        let attempts = attempts.ok_or_else(|| missing("attempts"));
        let default = default.ok_or_else(|| missing("default"));
        Ok(match kind.as_str() {
            "put_webhook" => OrgAction::PutWebhook {
                url: url.ok_or_else(|| missing("url"))?,
                events: events.ok_or_else(|| missing("events"))?,
                rotate_secret: rotate_secret.ok_or_else(|| missing("rotate_secret"))?,
            },
            "get_webhook" => OrgAction::GetWebhook,
            "delete_webhook" => OrgAction::DeleteWebhook,
            "deliveries" => OrgAction::Deliveries,
            "redeliver" => OrgAction::Redeliver {
                delivery_id: delivery_id?,
            },
            "event" => OrgAction::Event {
                event_type: event_type.ok_or_else(|| missing("event_type"))?,
                data,
                book: book.get(0).and_then(crate::core::book::Update::read),
            },
            "book" => OrgAction::Book {
                updates: book
                    .as_array()
                    .map(|list| {
                        list.iter()
                            .filter_map(crate::core::book::Update::read)
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            "groups" => OrgAction::Groups { data },
            "recover" => OrgAction::Recover { data },
            "judge" => OrgAction::Judge { data },
            "policy_mode" => OrgAction::PolicyMode,
            "attempt" => OrgAction::Attempt {
                delivery_id: delivery_id?,
                attempts: attempts?,
            },
            "dead_lettered" => OrgAction::DeadLettered {
                delivery_id: delivery_id?,
                attempts: attempts?,
            },
            "take" => OrgAction::Take { default: default? },
            "put_org" => OrgAction::PutOrg {
                limits,
                keep_limits: keep_limits.unwrap_or(false),
                policy: (!data.is_null()).then_some(data),
                default: default?,
            },
            "get_org" => OrgAction::GetOrg { default: default? },
            _ => return Err(format!("unknown org action {kind}")),
        })
    }
}
