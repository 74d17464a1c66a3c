//! The org object's SQL: its webhook endpoint, delivery log, and the org-wide limit.

use worker::SqlStorage;

mod book;

use super::{int, ints, optional_int, optional_text, rows, text, texts, Row};
use crate::core::limits::ClassOverride;
use crate::core::ratelimit::Bucket;
use crate::core::webhooks::Outstanding;

const ORG_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS endpoint (id INTEGER PRIMARY KEY CHECK (id = 1), url TEXT NOT NULL, events TEXT NOT NULL,
  secret TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS org_limit (id INTEGER PRIMARY KEY CHECK (id = 1), per_minute INTEGER, burst INTEGER);
CREATE TABLE IF NOT EXISTS org_bucket (id INTEGER PRIMARY KEY CHECK (id = 1), level INTEGER NOT NULL, updated_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS org_name (id INTEGER PRIMARY KEY CHECK (id = 1), org TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS delivery_log (delivery_id TEXT PRIMARY KEY, event_type TEXT NOT NULL, body TEXT NOT NULL,
  state TEXT NOT NULL, attempts INTEGER NOT NULL, round_start INTEGER NOT NULL, last_status INTEGER, last_error TEXT,
  created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, claimed INTEGER NOT NULL DEFAULT 0, deadline_ms INTEGER);
CREATE INDEX IF NOT EXISTS delivery_log_created ON delivery_log (created_ms);
CREATE INDEX IF NOT EXISTS delivery_log_deadline ON delivery_log (deadline_ms) WHERE state = 'pending';
";

/// The log before v1.2 (`deliveries`, which kept each delivery's URL and secret) moves into
/// `delivery_log` once, without them; a pending row gets a deadline 10 s after its last
/// change, so that the sweep makes its attempt should no queued one come.
const MIGRATE_DELIVERIES: &str = "
INSERT OR IGNORE INTO delivery_log (delivery_id, event_type, body, state, attempts, round_start, last_status, last_error,
  created_ms, updated_ms, claimed, deadline_ms)
  SELECT delivery_id, event_type, body, state, attempts, round_start, last_status, last_error, created_ms, updated_ms, 0,
    CASE WHEN state = 'pending' THEN updated_ms + 10000 END
  FROM deliveries ORDER BY created_ms, rowid;
DROP TABLE deliveries;
";

const DELIVERY_COLUMNS: &str = "delivery_id, event_type, body, state, attempts, round_start, last_status, last_error, created_ms, updated_ms, claimed, deadline_ms";

/// An org's webhook endpoint, the secret in the clear (it lives only in the org's object).
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointRow {
    pub url: String,
    /// JSON list of event types.
    pub events: String,
    pub secret: String,
}

/// One event's delivery. Each attempt goes to the endpoint in force when it is made, so
/// the row keeps neither URL nor secret.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRow {
    pub delivery_id: String,
    pub event_type: String,
    pub body: String,
    pub state: String,
    pub attempts: i64,
    pub round_start: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// 1 while a claimed attempt's outcome is not recorded.
    pub claimed: i64,
    /// The outstanding attempt's deadline (pending only).
    pub deadline_ms: Option<i64>,
}

impl DeliveryRow {
    /// A delivery read by `DELIVERY_COLUMNS`.
    fn from_row(mut row: Row) -> Self {
        macro_rules! at {
            ($name:literal) => {
                col!(DELIVERY_COLUMNS, $name)
            };
        }
        Self {
            delivery_id: row.text(at!("delivery_id")),
            event_type: row.text(at!("event_type")),
            body: row.text(at!("body")),
            state: row.text(at!("state")),
            attempts: row.int(at!("attempts")),
            round_start: row.int(at!("round_start")),
            last_status: row.opt_int(at!("last_status")),
            last_error: row.opt_text(at!("last_error")),
            created_ms: row.int(at!("created_ms")),
            updated_ms: row.int(at!("updated_ms")),
            claimed: row.int(at!("claimed")),
            deadline_ms: row.opt_int(at!("deadline_ms")),
        }
    }

    /// The outstanding attempt of a pending delivery (`None` when it is settled).
    pub fn outstanding(&self) -> Option<Outstanding> {
        (self.state == "pending").then(|| Outstanding {
            attempts: self.attempts,
            claimed: self.claimed != 0,
            // A pending row always has one; a missing one is overdue at once.
            deadline_ms: self.deadline_ms.unwrap_or(0),
        })
    }

    /// Takes `next` as the outstanding attempt, or none (`None`: the delivery is settled).
    pub fn set_outstanding(&mut self, next: Option<Outstanding>) {
        match next {
            Some(next) => {
                self.attempts = next.attempts;
                self.claimed = i64::from(next.claimed);
                self.deadline_ms = Some(next.deadline_ms);
            }
            None => {
                self.claimed = 0;
                self.deadline_ms = None;
            }
        }
    }
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
        self.sql.exec(ORG_SCHEMA, None)?;
        self.sql.exec(book::BOOK_SCHEMA, None)?;
        let old = ints(
            &self.sql,
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'deliveries'",
            vec![],
        )?;
        if old.first().is_some_and(|n| *n > 0) {
            self.sql.exec(MIGRATE_DELIVERIES, None)?;
        }
        Ok(())
    }

    pub fn endpoint(&self) -> worker::Result<Option<EndpointRow>> {
        let found = rows(
            &self.sql,
            "SELECT url, events, secret FROM endpoint WHERE id = 1",
            vec![],
        )?;
        Ok(found.into_iter().next().map(|mut row| EndpointRow {
            url: row.text(0),
            events: crate::core::webhooks::stored_events(&row.text(1)),
            secret: row.text(2),
        }))
    }

    pub fn save_endpoint(&self, row: &EndpointRow) -> worker::Result<()> {
        self.sql
            .exec(
                "INSERT OR REPLACE INTO endpoint (id, url, events, secret) VALUES (1, ?, ?, ?)",
                vec![text(&row.url), text(&row.events), text(&row.secret)],
            )
            .map(|_| ())
    }

    /// Removes the endpoint, its secret with it. The delivery log stays: a pending
    /// delivery's next attempt finds no endpoint and ends it `failed`.
    pub fn delete_endpoint(&self) -> worker::Result<()> {
        self.sql.exec("DELETE FROM endpoint", None).map(|_| ())
    }

    /// The org's name, kept for the alarm (which is not told whose object it runs in).
    pub fn org_name(&self) -> worker::Result<Option<String>> {
        Ok(
            texts(&self.sql, "SELECT org FROM org_name WHERE id = 1", vec![])?
                .into_iter()
                .next(),
        )
    }

    pub fn save_org_name(&self, org: &str) -> worker::Result<()> {
        self.sql
            .exec(
                "INSERT OR REPLACE INTO org_name (id, org) VALUES (1, ?)",
                vec![text(org)],
            )
            .map(|_| ())
    }

    pub fn delivery(&self, id: &str) -> worker::Result<Option<DeliveryRow>> {
        Ok(rows(
            &self.sql,
            &format!("SELECT {DELIVERY_COLUMNS} FROM delivery_log WHERE delivery_id = ?"),
            vec![text(id)],
        )?
        .into_iter()
        .next()
        .map(DeliveryRow::from_row))
    }

    /// The newest deliveries first.
    pub fn deliveries(&self, limit: usize) -> worker::Result<Vec<DeliveryRow>> {
        Ok(rows(
            &self.sql,
            &format!(
                "SELECT {DELIVERY_COLUMNS} FROM delivery_log ORDER BY created_ms DESC, rowid DESC LIMIT ?"
            ),
            vec![int(i64::try_from(limit).unwrap_or(100))],
        )?
        .into_iter()
        .map(DeliveryRow::from_row)
        .collect())
    }

    /// Writes a delivery as it is: a new one, or one read with no await since.
    pub fn save_delivery(&self, row: &DeliveryRow) -> worker::Result<()> {
        self.sql
            .exec(
                &format!(
                    "INSERT INTO delivery_log ({DELIVERY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                     ON CONFLICT (delivery_id) DO UPDATE SET state = excluded.state, attempts = excluded.attempts,
                     round_start = excluded.round_start, last_status = excluded.last_status,
                     last_error = excluded.last_error, updated_ms = excluded.updated_ms,
                     claimed = excluded.claimed, deadline_ms = excluded.deadline_ms"
                ),
                vec![
                    text(&row.delivery_id),
                    text(&row.event_type),
                    text(&row.body),
                    text(&row.state),
                    int(row.attempts),
                    int(row.round_start),
                    optional_int(row.last_status),
                    optional_text(row.last_error.as_deref()),
                    int(row.created_ms),
                    int(row.updated_ms),
                    int(row.claimed),
                    optional_int(row.deadline_ms),
                ],
            )
            .map(|_| ())
    }

    /// Writes `row`'s state, count, outcome and lease only if its outstanding attempt is
    /// still `expected` (pending, same count, claim and deadline): a compare-and-swap, so
    /// that a duplicate task, an attempt that outlived its lease, or one whose delivery was
    /// trimmed, redelivered or remade meanwhile writes nothing. True when it was written.
    pub fn swap(&self, row: &DeliveryRow, expected: Outstanding) -> worker::Result<bool> {
        let cursor = self.sql.exec(
            "UPDATE delivery_log SET state = ?, attempts = ?, last_status = ?, last_error = ?, updated_ms = ?,
               claimed = ?, deadline_ms = ?
             WHERE delivery_id = ? AND state = 'pending' AND attempts = ? AND claimed = ? AND deadline_ms = ?",
            vec![
                text(&row.state),
                int(row.attempts),
                optional_int(row.last_status),
                optional_text(row.last_error.as_deref()),
                int(row.updated_ms),
                int(row.claimed),
                optional_int(row.deadline_ms),
                text(&row.delivery_id),
                int(expected.attempts),
                int(i64::from(expected.claimed)),
                int(expected.deadline_ms),
            ],
        )?;
        Ok(cursor.rows_written() > 0)
    }

    /// Pending deliveries whose outstanding attempt's deadline is at or before `before_ms`,
    /// the most overdue first (from the partial index on pending deadlines).
    pub fn overdue(&self, before_ms: i64, limit: usize) -> worker::Result<Vec<DeliveryRow>> {
        Ok(rows(
            &self.sql,
            &format!(
                "SELECT {DELIVERY_COLUMNS} FROM delivery_log WHERE state = 'pending' AND deadline_ms <= ?
                 ORDER BY deadline_ms LIMIT ?"
            ),
            vec![int(before_ms), int(i64::try_from(limit).unwrap_or(50))],
        )?
        .into_iter()
        .map(DeliveryRow::from_row)
        .collect())
    }

    /// The earliest deadline of a pending delivery's outstanding attempt.
    pub fn next_deadline(&self) -> worker::Result<Option<i64>> {
        Ok(ints(
            &self.sql,
            "SELECT MIN(deadline_ms) FROM delivery_log WHERE state = 'pending'",
            vec![],
        )?
        .first()
        .copied())
    }

    /// How many deliveries the log holds (a scan of its smallest index: once per instance).
    pub fn log_len(&self) -> worker::Result<i64> {
        Ok(
            ints(&self.sql, "SELECT COUNT(*) FROM delivery_log", vec![])?
                .first()
                .map_or(0, |n| *n),
        )
    }

    /// Deletes the `count` oldest deliveries, read in order from the index on `created_ms`:
    /// only those rows, not the whole log.
    pub fn drop_oldest(&self, count: i64) -> worker::Result<()> {
        self.sql
            .exec(
                "DELETE FROM delivery_log WHERE rowid IN
                   (SELECT rowid FROM delivery_log ORDER BY created_ms, rowid LIMIT ?)",
                vec![int(count)],
            )
            .map(|_| ())
    }

    /// The org's own limit (an override of the default), if it has one.
    pub fn org_limit(&self) -> worker::Result<Option<ClassOverride>> {
        let found = rows(
            &self.sql,
            "SELECT per_minute, burst FROM org_limit WHERE id = 1",
            vec![],
        )?;
        Ok(found.first().map(|r| ClassOverride {
            per_minute: r.opt_int(0).and_then(|n| u32::try_from(n).ok()),
            burst: r.opt_int(1).and_then(|n| u32::try_from(n).ok()),
            ..ClassOverride::default()
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
        let found = rows(
            &self.sql,
            "SELECT level, updated_ms FROM org_bucket WHERE id = 1",
            vec![],
        )?;
        Ok(found.first().map(|r| Bucket {
            level: u64::try_from(r.int(0)).unwrap_or(0),
            updated_ms: r.int(1),
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
}
