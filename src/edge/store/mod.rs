//! All SQL of the Durable Objects. This file: the session object's pipeline state (buckets,
//! breaker, cooldown), idempotency records, the session's join jobs with their items and
//! pace; `org`: the org object's webhook endpoint, delivery log and org-wide limit.
//! Every statement is synchronous; the object calls these with no await in between when
//! they must share one storage commit.

use serde::Deserialize;
use worker::{SqlStorage, SqlStorageValue};

use crate::core::backend::Op;
use crate::core::breaker::Breaker;
use crate::core::idempotency::{StoredOutcome, RETENTION_MS};
use crate::core::jobs::{Item, ItemStatus, Job, JobStatus, RETENTION_MS as JOB_RETENTION_MS};
use crate::core::limits::Class;
use crate::core::pipeline::{slot, Cooldown, CooldownReason, SessionState};
use crate::core::ratelimit::Bucket;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS buckets (class TEXT PRIMARY KEY, level INTEGER NOT NULL, updated_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS breaker (id INTEGER PRIMARY KEY CHECK (id = 1), failures INTEGER NOT NULL,
  opened_at_ms INTEGER, probe_since_ms INTEGER);
CREATE TABLE IF NOT EXISTS cooldown (id INTEGER PRIMARY KEY CHECK (id = 1), until_ms INTEGER NOT NULL, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency (scope TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, status INTEGER NOT NULL,
  body TEXT NOT NULL, retry_after_s INTEGER, created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (id INTEGER PRIMARY KEY CHECK (id = 1), session TEXT NOT NULL, next_item_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (job_id TEXT PRIMARY KEY, org TEXT NOT NULL, label TEXT, interval_s INTEGER NOT NULL,
  status TEXT NOT NULL, pause_reason TEXT, checks INTEGER NOT NULL, created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL, finished_ms INTEGER);
CREATE TABLE IF NOT EXISTS job_items (job_id TEXT NOT NULL, idx INTEGER NOT NULL, op TEXT NOT NULL, status TEXT NOT NULL,
  group_jid TEXT, error TEXT, attempts INTEGER NOT NULL, not_before_ms INTEGER NOT NULL, finished_ms INTEGER,
  PRIMARY KEY (job_id, idx));
";

fn int(value: i64) -> SqlStorageValue {
    SqlStorageValue::Integer(value)
}

fn text(value: &str) -> SqlStorageValue {
    SqlStorageValue::String(value.to_string())
}

fn optional_int(value: Option<i64>) -> SqlStorageValue {
    value.map_or(SqlStorageValue::Null, int)
}

fn optional_text(value: Option<&str>) -> SqlStorageValue {
    value.map_or(SqlStorageValue::Null, text)
}

#[derive(Deserialize)]
struct BucketRow {
    class: String,
    level: i64,
    updated_ms: i64,
}

#[derive(Deserialize)]
struct BreakerRow {
    failures: i64,
    opened_at_ms: Option<i64>,
    probe_since_ms: Option<i64>,
}

#[derive(Deserialize)]
struct CooldownRow {
    until_ms: i64,
    reason: String,
}

#[derive(Deserialize)]
struct OutcomeRow {
    fingerprint: String,
    status: i64,
    body: String,
    retry_after_s: Option<i64>,
    created_ms: i64,
}

#[derive(Deserialize)]
struct MetaRow {
    session: String,
    next_item_ms: i64,
}

#[derive(Deserialize)]
struct JobRow {
    job_id: String,
    org: String,
    label: Option<String>,
    interval_s: i64,
    status: String,
    pause_reason: Option<String>,
    checks: i64,
    created_ms: i64,
    updated_ms: i64,
    finished_ms: Option<i64>,
}

#[derive(Deserialize)]
struct ItemRow {
    job_id: String,
    idx: i64,
    op: String,
    status: String,
    group_jid: Option<String>,
    error: Option<String>,
    attempts: i64,
    not_before_ms: i64,
    finished_ms: Option<i64>,
}

pub struct Store {
    sql: SqlStorage,
}

impl Store {
    pub fn new(sql: SqlStorage) -> Self {
        Self { sql }
    }

    pub fn ensure_schema(&self) -> worker::Result<()> {
        self.sql.exec(SCHEMA, None).map(|_| ())
    }

    /// Forgets everything of the session (it was deleted).
    pub fn reset(&self) -> worker::Result<()> {
        self.sql
            .exec(
                "DELETE FROM buckets; DELETE FROM breaker; DELETE FROM cooldown; DELETE FROM idempotency;
                 DELETE FROM meta; DELETE FROM jobs; DELETE FROM job_items;",
                None,
            )
            .map(|_| ())
    }

    pub fn load_state(&self) -> worker::Result<SessionState> {
        let mut state = SessionState::default();
        let rows: Vec<BucketRow> = self
            .sql
            .exec("SELECT class, level, updated_ms FROM buckets", None)?
            .to_array()?;
        for row in rows {
            if let Some(class) = Class::ALL.into_iter().find(|c| c.as_str() == row.class) {
                state.buckets[slot(class)] = Some(Bucket {
                    level: u64::try_from(row.level).unwrap_or(0),
                    updated_ms: row.updated_ms,
                });
            }
        }
        let rows: Vec<BreakerRow> = self
            .sql
            .exec(
                "SELECT failures, opened_at_ms, probe_since_ms FROM breaker WHERE id = 1",
                None,
            )?
            .to_array()?;
        if let Some(row) = rows.first() {
            state.breaker = Breaker {
                failures: u32::try_from(row.failures).unwrap_or(u32::MAX),
                opened_at_ms: row.opened_at_ms,
                probe_since_ms: row.probe_since_ms,
            };
        }
        let rows: Vec<CooldownRow> = self
            .sql
            .exec("SELECT until_ms, reason FROM cooldown WHERE id = 1", None)?
            .to_array()?;
        state.cooldown = rows.first().and_then(|row| {
            CooldownReason::parse(&row.reason).map(|reason| Cooldown {
                until_ms: row.until_ms,
                reason,
            })
        });
        Ok(state)
    }

    /// Writes what changed since `stored`.
    pub fn persist_state(&self, state: &SessionState, stored: &SessionState) -> worker::Result<()> {
        for class in Class::ALL {
            let bucket = state.buckets[slot(class)];
            if let Some(bucket) = bucket.filter(|_| bucket != stored.buckets[slot(class)]) {
                self.sql.exec(
                    "INSERT OR REPLACE INTO buckets (class, level, updated_ms) VALUES (?, ?, ?)",
                    vec![
                        text(class.as_str()),
                        int(i64::try_from(bucket.level).unwrap_or(i64::MAX)),
                        int(bucket.updated_ms),
                    ],
                )?;
            }
        }
        let breaker = state.breaker;
        if breaker != stored.breaker {
            self.sql.exec(
                "INSERT OR REPLACE INTO breaker (id, failures, opened_at_ms, probe_since_ms) VALUES (1, ?, ?, ?)",
                vec![
                    int(i64::from(breaker.failures)),
                    optional_int(breaker.opened_at_ms),
                    optional_int(breaker.probe_since_ms),
                ],
            )?;
        }
        if let Some(cooldown) = state.cooldown.filter(|_| state.cooldown != stored.cooldown) {
            self.sql.exec(
                "INSERT OR REPLACE INTO cooldown (id, until_ms, reason) VALUES (1, ?, ?)",
                vec![int(cooldown.until_ms), text(cooldown.reason.as_str())],
            )?;
        }
        Ok(())
    }

    pub fn load_outcome(&self, scope: &str) -> worker::Result<Option<StoredOutcome>> {
        let rows: Vec<OutcomeRow> = self
            .sql
            .exec(
                "SELECT fingerprint, status, body, retry_after_s, created_ms FROM idempotency WHERE scope = ?",
                vec![text(scope)],
            )?
            .to_array()?;
        Ok(rows.into_iter().next().map(|row| StoredOutcome {
            fingerprint: row.fingerprint,
            status: u16::try_from(row.status).unwrap_or(500),
            body: row.body,
            retry_after_s: row.retry_after_s.and_then(|s| u64::try_from(s).ok()),
            created_ms: row.created_ms,
        }))
    }

    /// Stores an executed outcome and drops the records past retention (lazy cleanup).
    pub fn store_outcome(&self, scope: &str, outcome: &StoredOutcome) -> worker::Result<()> {
        self.sql.exec(
            "DELETE FROM idempotency WHERE created_ms <= ?",
            vec![int(outcome.created_ms - RETENTION_MS)],
        )?;
        self.sql.exec(
            "INSERT OR REPLACE INTO idempotency (scope, fingerprint, status, body, retry_after_s, created_ms) VALUES (?, ?, ?, ?, ?, ?)",
            vec![
                text(scope),
                text(&outcome.fingerprint),
                int(i64::from(outcome.status)),
                text(&outcome.body),
                optional_int(outcome.retry_after_s.map(|s| i64::try_from(s).unwrap_or(i64::MAX))),
                int(outcome.created_ms),
            ],
        )?;
        Ok(())
    }

    /// The session id (the object learns it from its first job) and the pace.
    pub fn meta(&self) -> worker::Result<Option<(String, i64)>> {
        let rows: Vec<MetaRow> = self
            .sql
            .exec("SELECT session, next_item_ms FROM meta WHERE id = 1", None)?
            .to_array()?;
        Ok(rows.into_iter().next().map(|r| (r.session, r.next_item_ms)))
    }

    pub fn save_meta(&self, session: &str, next_item_ms: i64) -> worker::Result<()> {
        self.sql
            .exec(
                "INSERT OR REPLACE INTO meta (id, session, next_item_ms) VALUES (1, ?, ?)",
                vec![text(session), int(next_item_ms)],
            )
            .map(|_| ())
    }

    /// Jobs, oldest first; only the unfinished ones unless `finished` too.
    pub fn load_jobs(&self, finished: bool) -> worker::Result<Vec<Job>> {
        let filter = if finished {
            ""
        } else {
            "WHERE status NOT IN ('completed', 'cancelled')"
        };
        let rows: Vec<JobRow> = self
            .sql
            .exec(
                &format!("SELECT job_id, org, label, interval_s, status, pause_reason, checks, created_ms, updated_ms, finished_ms FROM jobs {filter} ORDER BY rowid"),
                None,
            )?
            .to_array()?;
        let mut jobs: Vec<Job> = rows
            .into_iter()
            .filter_map(|row| {
                Some(Job {
                    status: JobStatus::parse(&row.status)?,
                    id: row.job_id,
                    org: row.org,
                    label: row.label,
                    interval_s: u32::try_from(row.interval_s).unwrap_or(u32::MAX),
                    pause_reason: row.pause_reason,
                    checks: u32::try_from(row.checks).unwrap_or(0),
                    created_ms: row.created_ms,
                    updated_ms: row.updated_ms,
                    finished_ms: row.finished_ms,
                    items: Vec::new(),
                })
            })
            .collect();
        let item_filter = if finished {
            ""
        } else {
            "WHERE job_id IN (SELECT job_id FROM jobs WHERE status NOT IN ('completed', 'cancelled'))"
        };
        let rows: Vec<ItemRow> = self
            .sql
            .exec(
                &format!("SELECT job_id, idx, op, status, group_jid, error, attempts, not_before_ms, finished_ms FROM job_items {item_filter} ORDER BY job_id, idx"),
                None,
            )?
            .to_array()?;
        for row in rows {
            let (Some(job), Some(status), Ok(op)) = (
                jobs.iter_mut().find(|j| j.id == row.job_id),
                ItemStatus::parse(&row.status),
                serde_json::from_str::<Op>(&row.op),
            ) else {
                continue;
            };
            job.items.push(Item {
                index: u32::try_from(row.idx).unwrap_or(u32::MAX),
                op,
                status,
                group_jid: row.group_jid,
                error: row.error.and_then(|e| serde_json::from_str(&e).ok()),
                attempts: u32::try_from(row.attempts).unwrap_or(0),
                not_before_ms: row.not_before_ms,
                finished_ms: row.finished_ms,
            });
        }
        Ok(jobs)
    }

    pub fn save_job(&self, job: &Job) -> worker::Result<()> {
        self.sql.exec(
            // An upsert keeps a known job's row, and so its rowid: the submission order.
            "INSERT INTO jobs (job_id, org, label, interval_s, status, pause_reason, checks, created_ms, updated_ms, finished_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (job_id) DO UPDATE SET status = excluded.status, pause_reason = excluded.pause_reason,
             checks = excluded.checks, updated_ms = excluded.updated_ms, finished_ms = excluded.finished_ms",
            vec![
                text(&job.id),
                text(&job.org),
                optional_text(job.label.as_deref()),
                int(i64::from(job.interval_s)),
                text(job.status.as_str()),
                optional_text(job.pause_reason.as_deref()),
                int(i64::from(job.checks)),
                int(job.created_ms),
                int(job.updated_ms),
                optional_int(job.finished_ms),
            ],
        )?;
        Ok(())
    }

    pub fn save_item(&self, job_id: &str, item: &Item) -> worker::Result<()> {
        let op =
            serde_json::to_string(&item.op).map_err(|e| worker::Error::RustError(e.to_string()))?;
        self.sql.exec(
            "INSERT OR REPLACE INTO job_items (job_id, idx, op, status, group_jid, error, attempts, not_before_ms, finished_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            vec![
                text(job_id),
                int(i64::from(item.index)),
                text(&op),
                text(item.status.as_str()),
                optional_text(item.group_jid.as_deref()),
                optional_text(item.error.as_ref().map(|e| e.to_string()).as_deref()),
                int(i64::from(item.attempts)),
                int(item.not_before_ms),
                optional_int(item.finished_ms),
            ],
        )?;
        Ok(())
    }

    /// A job and all its items.
    pub fn save_job_with_items(&self, job: &Job) -> worker::Result<()> {
        self.save_job(job)?;
        for item in &job.items {
            self.save_item(&job.id, item)?;
        }
        Ok(())
    }

    /// Deletes jobs finished more than 7 days ago.
    pub fn drop_expired_jobs(&self, now_ms: i64) -> worker::Result<()> {
        let cutoff = int(now_ms - JOB_RETENTION_MS);
        self.sql.exec(
            "DELETE FROM job_items WHERE job_id IN (SELECT job_id FROM jobs WHERE finished_ms IS NOT NULL AND finished_ms <= ?)",
            vec![cutoff.clone()],
        )?;
        self.sql.exec(
            "DELETE FROM jobs WHERE finished_ms IS NOT NULL AND finished_ms <= ?",
            vec![cutoff],
        )?;
        Ok(())
    }

    /// When the oldest finished job expires, if any (for the alarm).
    pub fn next_expiry_ms(&self) -> worker::Result<Option<i64>> {
        #[derive(Deserialize)]
        struct Row {
            at: Option<i64>,
        }
        let rows: Vec<Row> = self
            .sql
            .exec(
                "SELECT MIN(finished_ms) AS at FROM jobs WHERE finished_ms IS NOT NULL",
                None,
            )?
            .to_array()?;
        Ok(rows
            .first()
            .and_then(|r| r.at)
            .map(|at| at + JOB_RETENTION_MS))
    }
}

mod org;
pub use org::{DeliveryRow, EndpointRow, OrgStore};
