//! All SQL of the Durable Objects. This file: the session object's pipeline state (buckets,
//! breaker, cooldown), idempotency records, the session's join jobs with their items and
//! pace; `org`: the org object's webhook endpoint, delivery log and org-wide limit.
//! Every statement is synchronous; the object calls these with no await in between when
//! they must share one storage commit.

use worker::{SqlStorage, SqlStorageValue};

use crate::core::breaker::Breaker;
use crate::core::idempotency::{StoredOutcome, MAX_RECORDS, RETENTION_MS};
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

/// When an item's request was approved (section 14), added to older storage once.
const JOBS_V4: &str = "ALTER TABLE job_items ADD COLUMN approved_ms INTEGER;";

/// An item's expected group and a recovery job's source (section 15), added to older
/// storage once.
const JOBS_V5: &str = "
ALTER TABLE job_items ADD COLUMN expected TEXT;
ALTER TABLE jobs ADD COLUMN source TEXT;
";

const JOBS_INDEXES: &str = "
CREATE INDEX IF NOT EXISTS jobs_by_org ON jobs (org);
CREATE INDEX IF NOT EXISTS jobs_by_finish ON jobs (finished_ms);
CREATE INDEX IF NOT EXISTS items_pending ON job_items (job_id, status, idx);
";

const JOB_COLUMNS: &str = "job_id, org, label, interval_s, status, pause_reason, cancel_reason, checks, bad_streak, created_ms, updated_ms, finished_ms, total, pending, joined, pending_approval, already_member, failed, cancelled, source";
const ITEM_COLUMNS: &str =
    "job_id, idx, op, status, group_jid, error, attempts, not_before_ms, finished_ms, approved_ms, expected";

/// One row of a query, its values in the order of the `SELECT` list. Rows are read raw
/// (`SqlCursor::raw`), not through serde: one reader for every query instead of a
/// deserializer per row type (the wasm is a size budget).
///
/// A value of the wrong type reads as NULL: `opt_*` gives `None`, `int` 0 and `text` an
/// empty string (serde failed the whole read instead; the schema's column types rule this
/// out for what the store wrote). An integer is an `Integer`, or a `Float` with no
/// fraction: a JS number past 2^53 arrives as a `Float`.
struct Row(Vec<SqlStorageValue>);

impl Row {
    fn opt_int(&self, at: usize) -> Option<i64> {
        match self.0.get(at) {
            Some(SqlStorageValue::Integer(n)) => Some(*n),
            // `as` saturates at the i64 bounds; a NaN or an infinity has no zero fraction.
            Some(SqlStorageValue::Float(f)) if f.fract() == 0.0 => Some(*f as i64),
            _ => None,
        }
    }

    fn int(&self, at: usize) -> i64 {
        self.opt_int(at).unwrap_or(0)
    }

    /// Takes the text out of the row (a second take of the same column is `None`).
    fn opt_text(&mut self, at: usize) -> Option<String> {
        match self.0.get_mut(at) {
            Some(SqlStorageValue::String(s)) => Some(std::mem::take(s)),
            _ => None,
        }
    }

    fn text(&mut self, at: usize) -> String {
        self.opt_text(at).unwrap_or_default()
    }
}

/// Every row of a query; a storage error (the query's, or one met while reading) is `Err`.
fn rows(sql: &SqlStorage, query: &str, bindings: Vec<SqlStorageValue>) -> worker::Result<Vec<Row>> {
    sql.exec(query, Some(bindings))?
        .raw()
        .map(|row| row.map(Row))
        .collect()
}

/// The integers of a query's first column, in row order; a NULL (or a value of another
/// type) is left out, so `SELECT MIN(…)` over no rows gives none.
fn ints(sql: &SqlStorage, query: &str, bindings: Vec<SqlStorageValue>) -> worker::Result<Vec<i64>> {
    Ok(rows(sql, query, bindings)?
        .iter()
        .filter_map(|row| row.opt_int(0))
        .collect())
}

/// The texts of a query's first column, in row order; a NULL (or a value of another type)
/// is left out.
fn texts(
    sql: &SqlStorage,
    query: &str,
    bindings: Vec<SqlStorageValue>,
) -> worker::Result<Vec<String>> {
    Ok(rows(sql, query, bindings)?
        .iter_mut()
        .filter_map(|row| row.opt_text(0))
        .collect())
}

/// The position of column `name` in a comma-separated `SELECT` list such as
/// `JOB_COLUMNS`. Used through `col!`, it runs at compile time: a reader names its
/// columns, so it cannot drift from the list's order, and a name not in the list fails
/// the build.
const fn col(list: &str, name: &str) -> usize {
    let (list, name) = (list.as_bytes(), name.as_bytes());
    let (mut index, mut start) = (0, 0);
    while start < list.len() {
        while start < list.len() && list[start].is_ascii_whitespace() {
            start += 1;
        }
        let mut end = start;
        while end < list.len() && list[end] != b',' {
            end += 1;
        }
        let mut stop = end;
        while stop > start && list[stop - 1].is_ascii_whitespace() {
            stop -= 1;
        }
        if stop - start == name.len() {
            let mut i = 0;
            while i < name.len() && list[start + i] == name[i] {
                i += 1;
            }
            if i == name.len() {
                return index;
            }
        }
        index += 1;
        start = end + 1;
    }
    panic!("column not in the list");
}

/// `col!(LIST, "name")`: the position of a column in a `SELECT` list, a constant.
macro_rules! col {
    ($list:expr, $name:literal) => {
        const { $crate::edge::store::col($list, $name) }
    };
}

/// A stored count or number of items, as the core's width.
fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(0)
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

pub struct Store {
    sql: SqlStorage,
}

impl Store {
    pub fn new(sql: SqlStorage) -> Self {
        Self { sql }
    }

    pub fn ensure_schema(&self) -> worker::Result<()> {
        self.sql.exec(SCHEMA, None)?;
        self.sql.exec(membership::SCHEMA, None)?;
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
        if self
            .sql
            .exec("SELECT approved_ms FROM job_items LIMIT 0", None)
            .is_err()
        {
            self.sql.exec(JOBS_V4, None)?;
        }
        if self
            .sql
            .exec("SELECT expected FROM job_items LIMIT 0", None)
            .is_err()
        {
            self.sql.exec(JOBS_V5, None)?;
        }
        self.sql.exec(JOBS_INDEXES, None).map(|_| ())
    }

    /// Forgets what the session's object kept for its org (it was deleted): jobs,
    /// idempotency records, the owner, the pace, and section 14's requests, memberships and
    /// own ids. What protects the WhatsApp account (buckets, breaker, cooldown, section 13's
    /// ledger) stays with the session id (contract section 9).
    pub fn reset(&self) -> worker::Result<()> {
        self.sql
            .exec(
                "DELETE FROM idempotency; DELETE FROM meta; DELETE FROM owner; DELETE FROM jobs; DELETE FROM job_items;",
                None,
            )?;
        self.sql.exec(membership::RESET, None).map(|_| ())
    }

    /// The org that owns the session, as the last admin PUT (or first call) said.
    pub fn owner(&self) -> worker::Result<Option<String>> {
        Ok(
            texts(&self.sql, "SELECT org FROM owner WHERE id = 1", vec![])?
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
        for mut row in rows(
            &self.sql,
            "SELECT class, level, updated_ms FROM buckets",
            vec![],
        )? {
            let name = row.text(0);
            if let Some(class) = Class::ALL.into_iter().find(|c| c.as_str() == name) {
                state.buckets[slot(class)] = Some(Bucket {
                    level: u64::try_from(row.int(1)).unwrap_or(0),
                    updated_ms: row.int(2),
                });
            }
        }
        if let Some(row) = rows(
            &self.sql,
            "SELECT failures, opened_at_ms, probe_since_ms FROM breaker WHERE id = 1",
            vec![],
        )?
        .first()
        {
            state.breaker = Breaker {
                failures: u32::try_from(row.int(0)).unwrap_or(u32::MAX),
                opened_at_ms: row.opt_int(1),
                probe_since_ms: row.opt_int(2),
            };
        }
        state.cooldown = rows(
            &self.sql,
            "SELECT until_ms, reason FROM cooldown WHERE id = 1",
            vec![],
        )?
        .first_mut()
        .and_then(|row| {
            CooldownReason::parse(&row.text(1)).map(|reason| Cooldown {
                until_ms: row.int(0),
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
        let found = rows(
            &self.sql,
            "SELECT fingerprint, status, body, retry_after_s, created_ms FROM idempotency WHERE scope = ?",
            vec![text(scope)],
        )?;
        Ok(found.into_iter().next().map(|mut row| StoredOutcome {
            fingerprint: row.text(0),
            status: u16::try_from(row.int(1)).unwrap_or(500),
            body: row.text(2),
            retry_after_s: row.opt_int(3).and_then(|s| u64::try_from(s).ok()),
            created_ms: row.int(4),
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
        let found = rows(
            &self.sql,
            "SELECT session, next_item_ms FROM meta WHERE id = 1",
            vec![],
        )?;
        Ok(found.into_iter().next().map(|mut r| (r.text(0), r.int(1))))
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
            ints(
                &self.sql,
                &format!("SELECT at_ms FROM {table} ORDER BY at_ms"),
                vec![],
            )
        };
        let until = ints(
            &self.sql,
            "SELECT until_ms FROM restriction WHERE id = 1",
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
        let found = ints(
            &self.sql,
            "SELECT until_break FROM pace WHERE id = 1",
            vec![],
        )?;
        Ok(found.first().map(|n| count(*n)))
    }

    pub fn save_until_break(&self, items: u32) -> worker::Result<()> {
        self.sql
            .exec(
                "INSERT OR REPLACE INTO pace (id, until_break) VALUES (1, ?)",
                vec![int(i64::from(items))],
            )
            .map(|_| ())
    }
}

mod jobs;
mod membership;
mod org;
pub use org::{DeliveryRow, EndpointRow, OrgStore};

#[cfg(test)]
mod tests {
    use super::*;
    use SqlStorageValue::{Float, Integer, Null, String as Text};

    #[test]
    fn columns_are_found_by_position() {
        assert_eq!(col!(JOB_COLUMNS, "job_id"), 0);
        assert_eq!(col!(JOB_COLUMNS, "org"), 1);
        assert_eq!(col!(JOB_COLUMNS, "cancelled"), 18);
        assert_eq!(col!(ITEM_COLUMNS, "approved_ms"), 9);
        assert_eq!(col!(ITEM_COLUMNS, "expected"), 10);
        assert_eq!(col!(JOB_COLUMNS, "source"), 19);
        assert_eq!(col("a,\n  b ,c", "b"), 1);
        assert_eq!(col("a,\n  b ,c", "c"), 2);
        // A name is matched whole, not by its prefix.
        assert_eq!(col("pending, pending_approval", "pending_approval"), 1);
    }

    #[test]
    #[should_panic]
    fn an_unknown_column_is_refused() {
        col("a, b", "c");
    }

    #[test]
    fn values_read_by_type() {
        let mut row = Row(vec![
            Integer(7),
            Float(9_007_199_254_740_994.0),
            Float(1.5),
            Null,
            Text("x".into()),
        ]);
        assert_eq!(row.int(0), 7);
        assert_eq!(row.opt_int(1), Some(9_007_199_254_740_994));
        // Another type reads as NULL.
        assert_eq!(row.opt_int(2), None);
        assert_eq!(row.int(2), 0);
        assert_eq!(row.opt_int(3), None);
        assert_eq!(row.opt_int(4), None);
        assert_eq!(row.opt_text(0), None);
        assert_eq!(row.opt_text(3), None);
        assert_eq!(row.text(3), "");
        // Past the row's end: NULL.
        assert_eq!(row.opt_int(9), None);
        assert_eq!(row.text(4), "x");
    }
}
