//! All SQL of the Durable Objects. This file: the session object's pipeline state (buckets,
//! breaker, cooldown), idempotency records, the session's join jobs with their items and
//! pace; `org`: the org object's webhook endpoint, delivery log and org-wide limit.
//! Every statement is synchronous; the object calls these with no await in between when
//! they must share one storage commit.

use serde::Deserialize;
use worker::{SqlStorage, SqlStorageValue};

use crate::core::backend::Op;
use crate::core::breaker::Breaker;
use crate::core::idempotency::{StoredOutcome, MAX_RECORDS, RETENTION_MS};
use crate::core::jobs::{
    Counts, Item, ItemStatus, Job, JobStatus, MAX_FINISHED_JOBS, RETENTION_MS as JOB_RETENTION_MS,
};
use crate::core::limits::Class;
use crate::core::pipeline::{slot, Cooldown, CooldownReason, SessionState};
use crate::core::protection::Ledger;
use crate::core::ratelimit::Bucket;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS buckets (class TEXT PRIMARY KEY, level INTEGER NOT NULL, updated_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS breaker (id INTEGER PRIMARY KEY CHECK (id = 1), failures INTEGER NOT NULL,
  opened_at_ms INTEGER, probe_since_ms INTEGER);
CREATE TABLE IF NOT EXISTS cooldown (id INTEGER PRIMARY KEY CHECK (id = 1), until_ms INTEGER NOT NULL, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency (scope TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, status INTEGER NOT NULL,
  body TEXT NOT NULL, retry_after_s INTEGER, created_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS idempotency_age ON idempotency (created_ms);
CREATE TABLE IF NOT EXISTS meta (id INTEGER PRIMARY KEY CHECK (id = 1), session TEXT NOT NULL, next_item_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS owner (id INTEGER PRIMARY KEY CHECK (id = 1), org TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counted (at_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS counted_at ON counted (at_ms);
CREATE TABLE IF NOT EXISTS strikes (at_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS restriction (id INTEGER PRIMARY KEY CHECK (id = 1), until_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS pace (id INTEGER PRIMARY KEY CHECK (id = 1), until_break INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (job_id TEXT PRIMARY KEY, org TEXT NOT NULL, label TEXT, interval_s INTEGER NOT NULL,
  status TEXT NOT NULL, pause_reason TEXT, checks INTEGER NOT NULL, created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL, finished_ms INTEGER);
CREATE TABLE IF NOT EXISTS job_items (job_id TEXT NOT NULL, idx INTEGER NOT NULL, op TEXT NOT NULL, status TEXT NOT NULL,
  group_jid TEXT, error TEXT, attempts INTEGER NOT NULL, not_before_ms INTEGER NOT NULL, finished_ms INTEGER,
  PRIMARY KEY (job_id, idx));
";

/// Columns added to `jobs` after its first version (counts kept with the job, the cancel
/// reason), and the indexes of its queries; applied once to older storage.
const JOBS_V2: &str = "
ALTER TABLE jobs ADD COLUMN cancel_reason TEXT;
ALTER TABLE jobs ADD COLUMN total INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN joined INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN pending_approval INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN already_member INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN failed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN cancelled INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET
  total = (SELECT COUNT(*) FROM job_items i WHERE i.job_id = jobs.job_id),
  pending = (SELECT COUNT(*) FROM job_items i WHERE i.job_id = jobs.job_id AND i.status = 'pending'),
  joined = (SELECT COUNT(*) FROM job_items i WHERE i.job_id = jobs.job_id AND i.status = 'joined'),
  pending_approval = (SELECT COUNT(*) FROM job_items i WHERE i.job_id = jobs.job_id AND i.status = 'pending_approval'),
  already_member = (SELECT COUNT(*) FROM job_items i WHERE i.job_id = jobs.job_id AND i.status = 'already_member'),
  failed = (SELECT COUNT(*) FROM job_items i WHERE i.job_id = jobs.job_id AND i.status = 'failed'),
  cancelled = (SELECT COUNT(*) FROM job_items i WHERE i.job_id = jobs.job_id AND i.status = 'cancelled');
";

/// The bad-invite streak of a job (section 10 v1.2), added to older storage once.
const JOBS_V3: &str = "ALTER TABLE jobs ADD COLUMN bad_streak INTEGER NOT NULL DEFAULT 0;";

const JOBS_INDEXES: &str = "
CREATE INDEX IF NOT EXISTS jobs_by_org ON jobs (org);
CREATE INDEX IF NOT EXISTS jobs_by_finish ON jobs (finished_ms);
CREATE INDEX IF NOT EXISTS items_pending ON job_items (job_id, status, idx);
";

const JOB_COLUMNS: &str = "job_id, org, label, interval_s, status, pause_reason, cancel_reason, checks, bad_streak, created_ms, updated_ms, finished_ms, total, pending, joined, pending_approval, already_member, failed, cancelled";
const ITEM_COLUMNS: &str =
    "job_id, idx, op, status, group_jid, error, attempts, not_before_ms, finished_ms";

/// One column of one row, named `v` in the query (`SELECT x AS v …`): one deserializer
/// for every single-value read, instead of a struct each (the wasm is a size budget).
#[derive(Deserialize)]
struct One<T> {
    v: T,
}

fn column<T: serde::de::DeserializeOwned>(
    sql: &SqlStorage,
    query: &str,
    bindings: Vec<SqlStorageValue>,
) -> worker::Result<Vec<T>> {
    let rows: Vec<One<T>> = sql.exec(query, Some(bindings))?.to_array()?;
    Ok(rows.into_iter().map(|r| r.v).collect())
}

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
    cancel_reason: Option<String>,
    checks: i64,
    bad_streak: i64,
    created_ms: i64,
    updated_ms: i64,
    finished_ms: Option<i64>,
    total: i64,
    pending: i64,
    joined: i64,
    pending_approval: i64,
    already_member: i64,
    failed: i64,
    cancelled: i64,
}

fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

impl JobRow {
    fn into_job(self) -> Option<Job> {
        Some(Job {
            status: JobStatus::parse(&self.status)?,
            id: self.job_id,
            org: self.org,
            label: self.label,
            interval_s: u32::try_from(self.interval_s).unwrap_or(u32::MAX),
            pause_reason: self.pause_reason,
            cancel_reason: self.cancel_reason,
            checks: count(self.checks),
            bad_streak: count(self.bad_streak),
            created_ms: self.created_ms,
            updated_ms: self.updated_ms,
            finished_ms: self.finished_ms,
            counts: Counts {
                total: count(self.total),
                pending: count(self.pending),
                joined: count(self.joined),
                pending_approval: count(self.pending_approval),
                already_member: count(self.already_member),
                failed: count(self.failed),
                cancelled: count(self.cancelled),
            },
            items: Vec::new(),
        })
    }
}

#[derive(Deserialize)]
struct ItemRow {
    idx: i64,
    op: String,
    status: String,
    group_jid: Option<String>,
    error: Option<String>,
    attempts: i64,
    not_before_ms: i64,
    finished_ms: Option<i64>,
}

/// The values of `a` not matched one for one in `b` (both ascending).
fn multiset_minus(a: &[i64], b: &[i64]) -> Vec<i64> {
    let mut rest = b.to_vec();
    a.iter()
        .filter(|v| match rest.iter().position(|r| r == *v) {
            Some(at) => {
                rest.remove(at);
                false
            }
            None => true,
        })
        .copied()
        .collect()
}

impl ItemRow {
    fn into_item(self) -> Option<Item> {
        Some(Item {
            index: u32::try_from(self.idx).ok()?,
            op: serde_json::from_str::<Op>(&self.op).ok()?,
            status: ItemStatus::parse(&self.status)?,
            group_jid: self.group_jid,
            error: self.error.and_then(|e| serde_json::from_str(&e).ok()),
            attempts: count(self.attempts),
            not_before_ms: self.not_before_ms,
            finished_ms: self.finished_ms,
        })
    }
}

pub struct Store {
    sql: SqlStorage,
}

impl Store {
    pub fn new(sql: SqlStorage) -> Self {
        Self { sql }
    }

    pub fn ensure_schema(&self) -> worker::Result<()> {
        self.sql.exec(SCHEMA, None)?;
        // Storage written before the job counts were kept: add them once.
        if self
            .sql
            .exec("SELECT total FROM jobs LIMIT 0", None)
            .is_err()
        {
            self.sql.exec(JOBS_V2, None)?;
        }
        if self
            .sql
            .exec("SELECT bad_streak FROM jobs LIMIT 0", None)
            .is_err()
        {
            self.sql.exec(JOBS_V3, None)?;
        }
        self.sql.exec(JOBS_INDEXES, None).map(|_| ())
    }

    /// Forgets what the session's object kept for its org (it was deleted): jobs,
    /// idempotency records, the owner and the pace. What protects the WhatsApp account
    /// (buckets, breaker, cooldown) stays with the session id (contract section 9).
    pub fn reset(&self) -> worker::Result<()> {
        self.sql
            .exec(
                "DELETE FROM idempotency; DELETE FROM meta; DELETE FROM owner; DELETE FROM jobs; DELETE FROM job_items;",
                None,
            )
            .map(|_| ())
    }

    /// The org that owns the session, as the last admin PUT (or first call) said.
    pub fn owner(&self) -> worker::Result<Option<String>> {
        Ok(
            column(&self.sql, "SELECT org AS v FROM owner WHERE id = 1", vec![])?
                .into_iter()
                .next(),
        )
    }

    pub fn save_owner(&self, org: &str) -> worker::Result<()> {
        self.sql
            .exec(
                "INSERT OR REPLACE INTO owner (id, org) VALUES (1, ?)",
                vec![text(org)],
            )
            .map(|_| ())
    }

    /// Forgets every idempotency record (the session changed hands).
    pub fn forget_outcomes(&self) -> worker::Result<()> {
        self.sql.exec("DELETE FROM idempotency", None).map(|_| ())
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
                strike: None,
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
        // At most MAX_RECORDS: the oldest go first (one index walk of a bounded length).
        self.sql.exec(
            "DELETE FROM idempotency WHERE scope IN (SELECT scope FROM idempotency ORDER BY created_ms DESC LIMIT -1 OFFSET ?)",
            vec![int(i64::try_from(MAX_RECORDS).unwrap_or(1000))],
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

    /// Section 13's ledger: counted calls and strikes (ascending), the last restriction's end.
    pub fn ledger(&self) -> worker::Result<Ledger> {
        let times = |table: &str| {
            column::<i64>(
                &self.sql,
                &format!("SELECT at_ms AS v FROM {table} ORDER BY at_ms"),
                vec![],
            )
        };
        let until: Vec<i64> = column(
            &self.sql,
            "SELECT until_ms AS v FROM restriction WHERE id = 1",
            vec![],
        )?;
        Ok(Ledger {
            counted: times("counted")?,
            strikes: times("strikes")?,
            restricted_until: until.first().copied(),
        })
    }

    /// Writes what changed between `stored` and `ledger` (rows added, rows gone).
    pub fn persist_ledger(&self, ledger: &Ledger, stored: &Ledger) -> worker::Result<()> {
        for (table, now, before) in [
            ("counted", &ledger.counted, &stored.counted),
            ("strikes", &ledger.strikes, &stored.strikes),
        ] {
            if now == before {
                continue;
            }
            for gone in multiset_minus(before, now) {
                self.sql.exec(
                    &format!("DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE at_ms = ? LIMIT 1)"),
                    vec![int(gone)],
                )?;
            }
            for added in multiset_minus(now, before) {
                self.sql.exec(
                    &format!("INSERT INTO {table} (at_ms) VALUES (?)"),
                    vec![int(added)],
                )?;
            }
        }
        if ledger.restricted_until != stored.restricted_until {
            match ledger.restricted_until {
                Some(until) => self.sql.exec(
                    "INSERT OR REPLACE INTO restriction (id, until_ms) VALUES (1, ?)",
                    vec![int(until)],
                )?,
                None => self.sql.exec("DELETE FROM restriction", None)?,
            };
        }
        Ok(())
    }

    /// Items of the session's jobs left before the next break (none drawn yet: `None`).
    pub fn until_break(&self) -> worker::Result<Option<u32>> {
        let rows: Vec<i64> = column(
            &self.sql,
            "SELECT until_break AS v FROM pace WHERE id = 1",
            vec![],
        )?;
        Ok(rows.first().map(|n| count(*n)))
    }

    pub fn save_until_break(&self, items: u32) -> worker::Result<()> {
        self.sql
            .exec(
                "INSERT OR REPLACE INTO pace (id, until_break) VALUES (1, ?)",
                vec![int(i64::from(items))],
            )
            .map(|_| ())
    }

    /// The unfinished jobs, oldest first, each with its next pending item (the scheduler's
    /// book): bounded by the unfinished-job limit, whatever the history holds.
    pub fn unfinished_jobs(&self) -> worker::Result<Vec<Job>> {
        let rows: Vec<JobRow> = self
            .sql
            .exec(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE finished_ms IS NULL ORDER BY rowid"),
                None,
            )?
            .to_array()?;
        let mut jobs: Vec<Job> = rows.into_iter().filter_map(JobRow::into_job).collect();
        for job in &mut jobs {
            let rows: Vec<ItemRow> = self
                .sql
                .exec(
                    &format!("SELECT {ITEM_COLUMNS} FROM job_items WHERE job_id = ? AND status = 'pending' ORDER BY idx LIMIT 1"),
                    vec![text(&job.id)],
                )?
                .to_array()?;
            job.items = rows.into_iter().filter_map(ItemRow::into_item).collect();
        }
        Ok(jobs)
    }

    /// One job of the org, without its items; a finished one only while it is kept.
    pub fn job(&self, job_id: &str, org: &str, now_ms: i64) -> worker::Result<Option<Job>> {
        let rows: Vec<JobRow> = self
            .sql
            .exec(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = ? AND org = ? AND (finished_ms IS NULL OR finished_ms > ?)"),
                vec![text(job_id), text(org), int(now_ms - JOB_RETENTION_MS)],
            )?
            .to_array()?;
        Ok(rows.into_iter().next().and_then(JobRow::into_job))
    }

    /// Every item of a job, in order.
    pub fn items(&self, job_id: &str) -> worker::Result<Vec<Item>> {
        let rows: Vec<ItemRow> = self
            .sql
            .exec(
                &format!("SELECT {ITEM_COLUMNS} FROM job_items WHERE job_id = ? ORDER BY idx"),
                vec![text(job_id)],
            )?
            .to_array()?;
        Ok(rows.into_iter().filter_map(ItemRow::into_item).collect())
    }

    /// One item of a job.
    pub fn item(&self, job_id: &str, index: u32) -> worker::Result<Option<Item>> {
        let rows: Vec<ItemRow> = self
            .sql
            .exec(
                &format!("SELECT {ITEM_COLUMNS} FROM job_items WHERE job_id = ? AND idx = ?"),
                vec![text(job_id), int(i64::from(index))],
            )?
            .to_array()?;
        Ok(rows.into_iter().next().and_then(ItemRow::into_item))
    }

    /// The org's jobs, newest first, without items: at most `limit`, the expired left out.
    pub fn list_jobs(&self, org: &str, limit: usize, now_ms: i64) -> worker::Result<Vec<Job>> {
        let rows: Vec<JobRow> = self
            .sql
            .exec(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE org = ? AND (finished_ms IS NULL OR finished_ms > ?) ORDER BY rowid DESC LIMIT ?"),
                vec![
                    text(org),
                    int(now_ms - JOB_RETENTION_MS),
                    int(i64::try_from(limit).unwrap_or(50)),
                ],
            )?
            .to_array()?;
        Ok(rows.into_iter().filter_map(JobRow::into_job).collect())
    }

    /// How many unfinished jobs the org has on this session.
    pub fn unfinished_count(&self, org: &str) -> worker::Result<usize> {
        let rows: Vec<i64> = column(
            &self.sql,
            "SELECT COUNT(*) AS v FROM jobs WHERE finished_ms IS NULL AND org = ?",
            vec![text(org)],
        )?;
        Ok(rows.first().map_or(0, |n| usize::try_from(*n).unwrap_or(0)))
    }

    pub fn save_job(&self, job: &Job) -> worker::Result<()> {
        let c = job.counts;
        self.sql.exec(
            // An upsert keeps a known job's row, and so its rowid: the submission order.
            &format!("INSERT INTO jobs ({JOB_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (job_id) DO UPDATE SET status = excluded.status, pause_reason = excluded.pause_reason,
             cancel_reason = excluded.cancel_reason, checks = excluded.checks, bad_streak = excluded.bad_streak,
             updated_ms = excluded.updated_ms,
             finished_ms = excluded.finished_ms, total = excluded.total, pending = excluded.pending,
             joined = excluded.joined, pending_approval = excluded.pending_approval,
             already_member = excluded.already_member, failed = excluded.failed, cancelled = excluded.cancelled"),
            vec![
                text(&job.id),
                text(&job.org),
                optional_text(job.label.as_deref()),
                int(i64::from(job.interval_s)),
                text(job.status.as_str()),
                optional_text(job.pause_reason.as_deref()),
                optional_text(job.cancel_reason.as_deref()),
                int(i64::from(job.checks)),
                int(i64::from(job.bad_streak)),
                int(job.created_ms),
                int(job.updated_ms),
                optional_int(job.finished_ms),
                int(i64::from(c.total)),
                int(i64::from(c.pending)),
                int(i64::from(c.joined)),
                int(i64::from(c.pending_approval)),
                int(i64::from(c.already_member)),
                int(i64::from(c.failed)),
                int(i64::from(c.cancelled)),
            ],
        )?;
        Ok(())
    }

    pub fn save_item(&self, job_id: &str, item: &Item) -> worker::Result<()> {
        let op =
            serde_json::to_string(&item.op).map_err(|e| worker::Error::RustError(e.to_string()))?;
        self.sql.exec(
            &format!("INSERT OR REPLACE INTO job_items ({ITEM_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"),
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

    /// A job and the items it holds.
    pub fn save_job_with_items(&self, job: &Job) -> worker::Result<()> {
        self.save_job(job)?;
        for item in &job.items {
            self.save_item(&job.id, item)?;
        }
        Ok(())
    }

    /// Keeps at most `MAX_FINISHED_JOBS` finished jobs, none finished 7 days ago or more:
    /// the oldest go first, with their items. Called where a job finishes and by the alarm.
    pub fn drop_old_jobs(&self, now_ms: i64) -> worker::Result<()> {
        let ids: Vec<String> = column(
            &self.sql,
            "SELECT job_id AS v FROM jobs WHERE finished_ms IS NOT NULL AND finished_ms <= ?
             UNION SELECT job_id FROM (SELECT job_id FROM jobs WHERE finished_ms IS NOT NULL
               ORDER BY finished_ms DESC, rowid DESC LIMIT -1 OFFSET ?)",
            vec![
                int(now_ms - JOB_RETENTION_MS),
                int(i64::try_from(MAX_FINISHED_JOBS).unwrap_or(50)),
            ],
        )?;
        for id in ids {
            self.sql
                .exec("DELETE FROM job_items WHERE job_id = ?", vec![text(&id)])?;
            self.sql
                .exec("DELETE FROM jobs WHERE job_id = ?", vec![text(&id)])?;
        }
        Ok(())
    }

    /// Cancels every pending item of a job but `keep` (the one whose call is under way).
    pub fn cancel_items(&self, job_id: &str, keep: Option<u32>, now_ms: i64) -> worker::Result<()> {
        self.sql
            .exec(
                "UPDATE job_items SET status = 'cancelled', finished_ms = ? WHERE job_id = ? AND status = 'pending' AND idx IS NOT ?",
                vec![int(now_ms), text(job_id), optional_int(keep.map(i64::from))],
            )
            .map(|_| ())
    }

    /// Brings the pending items of a resumed job forward to now.
    pub fn resume_items(&self, job_id: &str, now_ms: i64) -> worker::Result<()> {
        self.sql
            .exec(
                "UPDATE job_items SET not_before_ms = MIN(not_before_ms, ?) WHERE job_id = ? AND status = 'pending'",
                vec![int(now_ms), text(job_id)],
            )
            .map(|_| ())
    }

    /// When the oldest finished job expires, if any (for the alarm).
    pub fn next_expiry_ms(&self) -> worker::Result<Option<i64>> {
        let rows: Vec<Option<i64>> = column(
            &self.sql,
            "SELECT MIN(finished_ms) AS v FROM jobs WHERE finished_ms IS NOT NULL",
            vec![],
        )?;
        Ok(rows
            .into_iter()
            .flatten()
            .next()
            .map(|at| at + JOB_RETENTION_MS))
    }
}

mod org;
pub use org::{DeliveryRow, EndpointRow, OrgStore};
