//! The answers of join jobs (contract section 10): counts, the job with or without its
//! items (invite codes shortened: they are secrets), and where each job stands (next
//! attempt, estimated completion, cooling down). Pure.

use serde_json::{json, Value};

use super::backend::Op;
use super::jobs::{code_of, Book, Job, JobStatus};
use super::time::format_rfc3339;

/// Counts of a job's items.
pub fn counts(job: &Job) -> Value {
    let c = job.counts;
    json!({
        "total": c.total,
        "pending": c.pending,
        "joined": c.joined,
        "pending_approval": c.pending_approval,
        "already_member": c.already_member,
        "failed": c.failed,
        "cancelled": c.cancelled,
    })
}

/// An invite as shown in answers: its code's first 4 characters, then `…`.
pub fn shown_invite(op: &Op) -> String {
    let head: String = code_of(op).chars().take(4).collect();
    format!("{head}…")
}

/// Where a job stands right now, for its answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Standing {
    pub next_attempt_ms: Option<i64>,
    pub estimated_completion_ms: Option<i64>,
    pub cooling_down: bool,
}

/// A job's answer (contract section 10); `items` only when asked.
pub fn job_view(sid: &str, job: &Job, standing: Standing, with_items: bool) -> Value {
    let status =
        if standing.cooling_down && matches!(job.status, JobStatus::Queued | JobStatus::Running) {
            "cooling_down"
        } else {
            job.status.as_str()
        };
    let mut view = json!({
        "job_id": job.id,
        "session_id": sid,
        "status": status,
        "interval_s": job.interval_s,
        "created_at": format_rfc3339(job.created_ms),
        "updated_at": format_rfc3339(job.updated_ms),
        "counts": counts(job),
    });
    if let Some(label) = &job.label {
        view["label"] = Value::from(label.as_str());
    }
    if let Some(reason) = &job.pause_reason {
        view["pause_reason"] = Value::from(reason.as_str());
    }
    if let Some(reason) = &job.cancel_reason {
        view["cancel_reason"] = Value::from(reason.as_str());
    }
    if !job.status.is_finished() {
        if let Some(at) = standing.next_attempt_ms {
            view["next_attempt_at"] = Value::from(format_rfc3339(at));
        }
        if let Some(at) = standing.estimated_completion_ms {
            view["estimated_completion_at"] = Value::from(format_rfc3339(at));
        }
    }
    if with_items {
        let items: Vec<Value> = job
            .items
            .iter()
            .map(|item| {
                let mut entry = json!({
                    "index": item.index,
                    "invite": shown_invite(&item.op),
                    "status": item.status.as_str(),
                    "attempts": item.attempts,
                });
                if let Some(jid) = &item.group_jid {
                    entry["group_jid"] = Value::from(jid.as_str());
                }
                if let Some(error) = &item.error {
                    entry["error"] = error.clone();
                }
                if let Some(at) = item.finished_ms {
                    entry["finished_at"] = Value::from(format_rfc3339(at));
                }
                entry
            })
            .collect();
        view["items"] = Value::from(items);
    }
    view
}

/// The standing of every job of the book (for answers), given the session's cooldown.
pub fn standings(
    book: &Book,
    now_ms: i64,
    cooldown_until: Option<i64>,
    join_per_minute: u32,
) -> Vec<Standing> {
    let estimates = book.estimates(now_ms, cooldown_until, join_per_minute);
    let cooling = cooldown_until.is_some_and(|until| until > now_ms);
    book.jobs
        .iter()
        .zip(estimates)
        .map(|(job, estimate)| {
            let next = job
                .pending()
                .next()
                .filter(|_| job.is_runnable())
                .map(|item| {
                    item.not_before_ms
                        .max(book.next_item_ms)
                        .max(cooldown_until.unwrap_or(i64::MIN))
                        .max(now_ms)
                });
            Standing {
                next_attempt_ms: next,
                estimated_completion_ms: estimate,
                cooling_down: cooling,
            }
        })
        .collect()
}
