//! The answers of join jobs (contract section 10): counts, the job with or without its
//! items (invite codes shortened: they are secrets), and where each job stands (next
//! attempt, estimated completion, cooling down). Pure.

use serde_json::{json, Value};

use super::backend::Op;
use super::jobs::{code_of, Book, Job, JobStatus};
use super::protection::WaitReason;
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
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Standing {
    pub next_attempt_ms: Option<i64>,
    pub estimated_completion_ms: Option<i64>,
    pub cooling_down: bool,
    /// A cap or the window holds the session's items (section 13).
    pub waiting: Option<WaitReason>,
}

/// What holds the session's items besides their pace: a WhatsApp cooldown, and a cap or
/// the window (with when it lets the next item go).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Holds {
    pub cooldown_until: Option<i64>,
    pub wait: Option<(i64, WaitReason)>,
}

impl Holds {
    /// Nothing of the session's jobs runs before this.
    pub fn until(&self) -> Option<i64> {
        self.cooldown_until.max(self.wait.map(|(at, _)| at))
    }
}

/// A job's answer (contract section 10); `items` only when asked.
pub fn job_view(sid: &str, job: &Job, standing: Standing, with_items: bool) -> Value {
    let active = matches!(job.status, JobStatus::Queued | JobStatus::Running);
    let status = match (active, standing.cooling_down, standing.waiting) {
        (true, true, _) => "cooling_down",
        (true, false, Some(_)) => "waiting",
        _ => job.status.as_str(),
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
    if let (true, false, Some(reason)) = (active, standing.cooling_down, standing.waiting) {
        view["wait_reason"] = Value::from(reason.as_str());
    }
    if !job.status.is_finished() {
        if let Some(at) = standing.next_attempt_ms {
            view["next_attempt_at"] = Value::from(format_rfc3339(at));
        }
        if let Some(at) = standing.estimated_completion_ms {
            view["estimated_completion_at"] = Value::from(format_rfc3339(at));
        }
    }
    if let Some(source) = &job.source {
        view["source"] = source.clone();
    }
    if with_items {
        let items: Vec<Value> = job
            .items
            .iter()
            .map(|item| {
                // A recovery's codes come from the book: not even their head is shown.
                let invite = match job.source {
                    Some(_) => "…".to_string(),
                    None => shown_invite(&item.op),
                };
                let mut entry = json!({
                    "index": item.index,
                    "invite": invite,
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
                if let Some(at) = item.approved_ms {
                    entry["approved_at"] = Value::from(format_rfc3339(at));
                }
                entry
            })
            .collect();
        view["items"] = Value::from(items);
    }
    view
}

/// The standing of every job of the book (for answers): the next attempt of each, and its
/// estimated completion, chained after the jobs before it. `estimate(start, interval_s,
/// items)` is when that many items, starting then, end under the session's caps, window
/// and pace (section 13's `estimate_end`).
pub fn standings(
    book: &Book,
    now_ms: i64,
    holds: &Holds,
    estimate: &dyn Fn(i64, u32, u32) -> i64,
) -> Vec<Standing> {
    let cooling = holds.cooldown_until.is_some_and(|until| until > now_ms);
    let held = holds.until().unwrap_or(i64::MIN);
    let mut at = now_ms.max(book.next_item_ms).max(held);
    book.jobs
        .iter()
        .map(|job| {
            let head = job.pending().next().filter(|_| job.is_runnable());
            let next = head.map(|item| item.not_before_ms.max(at));
            let estimated = next.filter(|_| job.counts.pending > 0).map(|start| {
                let end = estimate(start, job.interval_s, job.counts.pending);
                at = end + i64::from(job.interval_s) * 1000;
                end
            });
            Standing {
                next_attempt_ms: next,
                estimated_completion_ms: estimated,
                cooling_down: cooling,
                waiting: holds
                    .wait
                    .filter(|_| head.is_some())
                    .map(|(_, reason)| reason),
            }
        })
        .collect()
}
