//! The session object's join jobs in SQL: a job row keeps its counts, so every query is
//! bounded by the job it is about (or by the unfinished jobs), never by the history.

use serde::Deserialize;

use super::{
    column, count, int, optional_int, optional_text, text, Store, ITEM_COLUMNS, JOB_COLUMNS,
};
use crate::core::backend::Op;
use crate::core::jobs::{
    Counts, Item, ItemStatus, Job, JobStatus, MAX_FINISHED_JOBS, RETENTION_MS as JOB_RETENTION_MS,
};

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
    approved_ms: Option<i64>,
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
            approved_ms: self.approved_ms,
        })
    }
}

impl Store {
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
            &format!("INSERT OR REPLACE INTO job_items ({ITEM_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
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
