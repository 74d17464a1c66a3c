//! The session object's join jobs in SQL: a job row keeps its counts, so every query is
//! bounded by the job it is about (or by the unfinished jobs), never by the history.

use super::{
    count, int, ints, optional_int, optional_text, rows, text, texts, Row, Store, ITEM_COLUMNS,
    JOB_COLUMNS,
};
use crate::core::backend::Op;
use crate::core::jobs::{
    Counts, Item, ItemStatus, Job, JobStatus, MAX_FINISHED_JOBS, RETENTION_MS as JOB_RETENTION_MS,
};

/// A job read by `JOB_COLUMNS`, without its items (`None`: a status this build does not know).
fn job_from(mut row: Row) -> Option<Job> {
    macro_rules! at {
        ($name:literal) => {
            col!(JOB_COLUMNS, $name)
        };
    }
    let n = |row: &Row, at| count(row.int(at));
    Some(Job {
        status: JobStatus::parse(&row.text(at!("status")))?,
        id: row.text(at!("job_id")),
        org: row.text(at!("org")),
        label: row.opt_text(at!("label")),
        interval_s: u32::try_from(row.int(at!("interval_s"))).unwrap_or(u32::MAX),
        pause_reason: row.opt_text(at!("pause_reason")),
        cancel_reason: row.opt_text(at!("cancel_reason")),
        checks: n(&row, at!("checks")),
        bad_streak: n(&row, at!("bad_streak")),
        created_ms: row.int(at!("created_ms")),
        updated_ms: row.int(at!("updated_ms")),
        finished_ms: row.opt_int(at!("finished_ms")),
        counts: Counts {
            total: n(&row, at!("total")),
            pending: n(&row, at!("pending")),
            joined: n(&row, at!("joined")),
            pending_approval: n(&row, at!("pending_approval")),
            already_member: n(&row, at!("already_member")),
            failed: n(&row, at!("failed")),
            cancelled: n(&row, at!("cancelled")),
        },
        items: Vec::new(),
        source: row
            .opt_text(at!("source"))
            .and_then(|s| serde_json::from_str(&s).ok()),
    })
}

/// An item read by `ITEM_COLUMNS` (`None`: an op, status or index this build cannot read).
fn item_from(mut row: Row) -> Option<Item> {
    macro_rules! at {
        ($name:literal) => {
            col!(ITEM_COLUMNS, $name)
        };
    }
    Some(Item {
        index: u32::try_from(row.int(at!("idx"))).ok()?,
        op: serde_json::from_str::<Op>(&row.text(at!("op"))).ok()?,
        status: ItemStatus::parse(&row.text(at!("status")))?,
        group_jid: row.opt_text(at!("group_jid")),
        error: row
            .opt_text(at!("error"))
            .and_then(|e| serde_json::from_str(&e).ok()),
        attempts: count(row.int(at!("attempts"))),
        not_before_ms: row.int(at!("not_before_ms")),
        finished_ms: row.opt_int(at!("finished_ms")),
        approved_ms: row.opt_int(at!("approved_ms")),
        expected_group_jid: row.opt_text(at!("expected")),
    })
}

impl Store {
    /// The unfinished jobs, oldest first, each with its next pending item (the scheduler's
    /// book): bounded by the unfinished-job limit, whatever the history holds.
    pub fn unfinished_jobs(&self) -> worker::Result<Vec<Job>> {
        let mut jobs: Vec<Job> = rows(
            &self.sql,
            &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE finished_ms IS NULL ORDER BY rowid"),
            vec![],
        )?
        .into_iter()
        .filter_map(job_from)
        .collect();
        for job in &mut jobs {
            job.items = rows(
                &self.sql,
                &format!("SELECT {ITEM_COLUMNS} FROM job_items WHERE job_id = ? AND status = 'pending' ORDER BY idx LIMIT 1"),
                vec![text(&job.id)],
            )?
            .into_iter()
            .filter_map(item_from)
            .collect();
        }
        Ok(jobs)
    }

    /// One job of the org, without its items; a finished one only while it is kept.
    pub fn job(&self, job_id: &str, org: &str, now_ms: i64) -> worker::Result<Option<Job>> {
        Ok(rows(
            &self.sql,
            &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = ? AND org = ? AND (finished_ms IS NULL OR finished_ms > ?)"),
            vec![text(job_id), text(org), int(now_ms - JOB_RETENTION_MS)],
        )?
        .into_iter()
        .next()
        .and_then(job_from))
    }

    /// Every item of a job, in order.
    pub fn items(&self, job_id: &str) -> worker::Result<Vec<Item>> {
        Ok(rows(
            &self.sql,
            &format!("SELECT {ITEM_COLUMNS} FROM job_items WHERE job_id = ? ORDER BY idx"),
            vec![text(job_id)],
        )?
        .into_iter()
        .filter_map(item_from)
        .collect())
    }

    /// One item of a job.
    pub fn item(&self, job_id: &str, index: u32) -> worker::Result<Option<Item>> {
        Ok(rows(
            &self.sql,
            &format!("SELECT {ITEM_COLUMNS} FROM job_items WHERE job_id = ? AND idx = ?"),
            vec![text(job_id), int(i64::from(index))],
        )?
        .into_iter()
        .next()
        .and_then(item_from))
    }

    /// The org's jobs, newest first, without items: at most `limit`, the expired left out.
    pub fn list_jobs(&self, org: &str, limit: usize, now_ms: i64) -> worker::Result<Vec<Job>> {
        Ok(rows(
            &self.sql,
            &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE org = ? AND (finished_ms IS NULL OR finished_ms > ?) ORDER BY rowid DESC LIMIT ?"),
            vec![
                text(org),
                int(now_ms - JOB_RETENTION_MS),
                int(i64::try_from(limit).unwrap_or(50)),
            ],
        )?
        .into_iter()
        .filter_map(job_from)
        .collect())
    }

    /// How many unfinished jobs the org has on this session.
    pub fn unfinished_count(&self, org: &str) -> worker::Result<usize> {
        let found = ints(
            &self.sql,
            "SELECT COUNT(*) FROM jobs WHERE finished_ms IS NULL AND org = ?",
            vec![text(org)],
        )?;
        Ok(found
            .first()
            .map_or(0, |n| usize::try_from(*n).unwrap_or(0)))
    }

    pub fn save_job(&self, job: &Job) -> worker::Result<()> {
        let c = job.counts;
        self.sql.exec(
            // An upsert keeps a known job's row, and so its rowid: the submission order.
            &format!("INSERT INTO jobs ({JOB_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
                optional_text(job.source.as_ref().map(|s| s.to_string()).as_deref()),
            ],
        )?;
        Ok(())
    }

    pub fn save_item(&self, job_id: &str, item: &Item) -> worker::Result<()> {
        let op =
            serde_json::to_string(&item.op).map_err(|e| worker::Error::RustError(e.to_string()))?;
        self.sql.exec(
            &format!("INSERT OR REPLACE INTO job_items ({ITEM_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
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
                optional_int(item.approved_ms),
                optional_text(item.expected_group_jid.as_deref()),
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
        let ids = texts(
            &self.sql,
            "SELECT job_id FROM jobs WHERE finished_ms IS NOT NULL AND finished_ms <= ?
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
        Ok(ints(
            &self.sql,
            "SELECT MIN(finished_ms) FROM jobs WHERE finished_ms IS NOT NULL",
            vec![],
        )?
        .first()
        .map(|at| at + JOB_RETENTION_MS))
    }
}
