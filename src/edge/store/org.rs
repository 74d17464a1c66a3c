//! The org object's SQL: its webhook endpoint, delivery log, and the org-wide limit.

use serde::Deserialize;
use worker::SqlStorage;

use super::{int, optional_int, optional_text, text};
use crate::core::limits::ClassOverride;
use crate::core::ratelimit::Bucket;

const ORG_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS endpoint (id INTEGER PRIMARY KEY CHECK (id = 1), url TEXT NOT NULL, events TEXT NOT NULL,
  secret TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS org_limit (id INTEGER PRIMARY KEY CHECK (id = 1), per_minute INTEGER, burst INTEGER);
CREATE TABLE IF NOT EXISTS org_bucket (id INTEGER PRIMARY KEY CHECK (id = 1), level INTEGER NOT NULL, updated_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (delivery_id TEXT PRIMARY KEY, event_type TEXT NOT NULL, body TEXT NOT NULL,
  url TEXT NOT NULL, secret TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL, round_start INTEGER NOT NULL,
  last_status INTEGER, last_error TEXT, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);
";

/// An org's webhook endpoint, the secret in the clear (it lives only in the org's object).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EndpointRow {
    pub url: String,
    /// JSON list of event types.
    pub events: String,
    pub secret: String,
}

/// One event's delivery, with the endpoint and secret it was raised under.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DeliveryRow {
    pub delivery_id: String,
    pub event_type: String,
    pub body: String,
    pub url: String,
    pub secret: String,
    pub state: String,
    pub attempts: i64,
    pub round_start: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// All SQL of an org's Durable Object: its webhook endpoint and delivery log.
pub struct OrgStore {
    sql: SqlStorage,
}

impl OrgStore {
    pub fn new(sql: SqlStorage) -> Self {
        Self { sql }
    }

    pub fn ensure_schema(&self) -> worker::Result<()> {
        self.sql.exec(ORG_SCHEMA, None).map(|_| ())
    }

    pub fn endpoint(&self) -> worker::Result<Option<EndpointRow>> {
        let rows: Vec<EndpointRow> = self
            .sql
            .exec(
                "SELECT url, events, secret FROM endpoint WHERE id = 1",
                None,
            )?
            .to_array()?;
        Ok(rows.into_iter().next())
    }

    pub fn save_endpoint(&self, row: &EndpointRow) -> worker::Result<()> {
        self.sql
            .exec(
                "INSERT OR REPLACE INTO endpoint (id, url, events, secret) VALUES (1, ?, ?, ?)",
                vec![text(&row.url), text(&row.events), text(&row.secret)],
            )
            .map(|_| ())
    }

    /// Removes the endpoint and its delivery log.
    pub fn delete_endpoint(&self) -> worker::Result<()> {
        self.sql
            .exec("DELETE FROM endpoint; DELETE FROM deliveries;", None)
            .map(|_| ())
    }

    pub fn delivery(&self, id: &str) -> worker::Result<Option<DeliveryRow>> {
        let rows: Vec<DeliveryRow> = self
            .sql
            .exec(
                "SELECT delivery_id, event_type, body, url, secret, state, attempts, round_start, last_status, last_error, created_ms, updated_ms FROM deliveries WHERE delivery_id = ?",
                vec![text(id)],
            )?
            .to_array()?;
        Ok(rows.into_iter().next())
    }

    /// The newest deliveries first.
    pub fn deliveries(&self, limit: usize) -> worker::Result<Vec<DeliveryRow>> {
        self.sql
            .exec(
                "SELECT delivery_id, event_type, body, url, secret, state, attempts, round_start, last_status, last_error, created_ms, updated_ms FROM deliveries ORDER BY created_ms DESC, rowid DESC LIMIT ?",
                vec![int(i64::try_from(limit).unwrap_or(100))],
            )?
            .to_array()
    }

    pub fn save_delivery(&self, row: &DeliveryRow) -> worker::Result<()> {
        self.sql
            .exec(
                "INSERT INTO deliveries (delivery_id, event_type, body, url, secret, state, attempts, round_start, last_status, last_error, created_ms, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (delivery_id) DO UPDATE SET state = excluded.state, attempts = excluded.attempts,
                 round_start = excluded.round_start, last_status = excluded.last_status, last_error = excluded.last_error,
                 updated_ms = excluded.updated_ms",
                vec![
                    text(&row.delivery_id),
                    text(&row.event_type),
                    text(&row.body),
                    text(&row.url),
                    text(&row.secret),
                    text(&row.state),
                    int(row.attempts),
                    int(row.round_start),
                    optional_int(row.last_status),
                    optional_text(row.last_error.as_deref()),
                    int(row.created_ms),
                    int(row.updated_ms),
                ],
            )
            .map(|_| ())
    }

    /// Claims the attempt after `attempts` of a pending delivery (no await between the read
    /// and this write, so two tasks cannot both claim it). False when it was not there to
    /// claim: delivered, failed, deleted, or already claimed.
    pub fn claim_attempt(&self, id: &str, attempts: i64, now_ms: i64) -> worker::Result<bool> {
        let cursor = self.sql.exec(
            "UPDATE deliveries SET attempts = attempts + 1, updated_ms = ? WHERE delivery_id = ? AND attempts = ? AND state = 'pending'",
            vec![int(now_ms), text(id), int(attempts)],
        )?;
        Ok(cursor.rows_written() > 0)
    }

    /// Records the result of a claimed attempt; nothing when the delivery was deleted or
    /// redelivered meanwhile.
    pub fn record_attempt(&self, row: &DeliveryRow) -> worker::Result<()> {
        self.sql
            .exec(
                "UPDATE deliveries SET state = ?, last_status = ?, last_error = ?, updated_ms = ? WHERE delivery_id = ? AND attempts = ?",
                vec![
                    text(&row.state),
                    optional_int(row.last_status),
                    optional_text(row.last_error.as_deref()),
                    int(row.updated_ms),
                    text(&row.delivery_id),
                    int(row.attempts),
                ],
            )
            .map(|_| ())
    }

    /// The org's own limit (an override of the default), if it has one.
    pub fn org_limit(&self) -> worker::Result<Option<ClassOverride>> {
        #[derive(Deserialize)]
        struct Row {
            per_minute: Option<i64>,
            burst: Option<i64>,
        }
        let rows: Vec<Row> = self
            .sql
            .exec("SELECT per_minute, burst FROM org_limit WHERE id = 1", None)?
            .to_array()?;
        Ok(rows.into_iter().next().map(|r| ClassOverride {
            per_minute: r.per_minute.and_then(|n| u32::try_from(n).ok()),
            burst: r.burst.and_then(|n| u32::try_from(n).ok()),
        }))
    }

    pub fn save_org_limit(&self, over: Option<ClassOverride>) -> worker::Result<()> {
        match over {
            None => self.sql.exec("DELETE FROM org_limit", None).map(|_| ()),
            Some(over) => self
                .sql
                .exec(
                    "INSERT OR REPLACE INTO org_limit (id, per_minute, burst) VALUES (1, ?, ?)",
                    vec![
                        optional_int(over.per_minute.map(i64::from)),
                        optional_int(over.burst.map(i64::from)),
                    ],
                )
                .map(|_| ()),
        }
    }

    pub fn org_bucket(&self) -> worker::Result<Option<Bucket>> {
        #[derive(Deserialize)]
        struct Row {
            level: i64,
            updated_ms: i64,
        }
        let rows: Vec<Row> = self
            .sql
            .exec(
                "SELECT level, updated_ms FROM org_bucket WHERE id = 1",
                None,
            )?
            .to_array()?;
        Ok(rows.into_iter().next().map(|r| Bucket {
            level: u64::try_from(r.level).unwrap_or(0),
            updated_ms: r.updated_ms,
        }))
    }

    pub fn save_org_bucket(&self, bucket: &Bucket) -> worker::Result<()> {
        self.sql
            .exec(
                "INSERT OR REPLACE INTO org_bucket (id, level, updated_ms) VALUES (1, ?, ?)",
                vec![
                    int(i64::try_from(bucket.level).unwrap_or(i64::MAX)),
                    int(bucket.updated_ms),
                ],
            )
            .map(|_| ())
    }

    /// Keeps the log to the newest `keep` deliveries.
    pub fn trim(&self, keep: usize) -> worker::Result<()> {
        self.sql
            .exec(
                "DELETE FROM deliveries WHERE delivery_id NOT IN (SELECT delivery_id FROM deliveries ORDER BY created_ms DESC, rowid DESC LIMIT ?)",
                vec![int(i64::try_from(keep).unwrap_or(1000))],
            )
            .map(|_| ())
    }
}
