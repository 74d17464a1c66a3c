//! Join jobs (contract section 10): many joins, paced and durable. Pure: the submit body,
//! the jobs of a session as a book, which item runs next and when, what an item's outcome
//! does to its job, and the job answers. The session object keeps the book in its storage,
//! runs the chosen item through the same pipeline and queue as a client join, and sets its
//! alarm to the time this module names.
//!
//! Invariants:
//! - One item at a time per session, jobs oldest first, items in submission order.
//! - Between two items of the session's jobs passes what the caller's pace names (section
//!   13: 1×–2× `interval_s`, breaks, the spread rule), and never less than the join bucket
//!   and caps allow (waiting for a token or a cap is no attempt).
//! - Every item ends in exactly one final state; a finished item is never run again.
//! - During a cooldown no item runs.
//! - An attempt is counted before its backend call (`begin_attempt`), so an item whose
//!   outcome was never recorded (the instance died mid-call) is run again at most until its
//!   attempts are used up, never for ever.
//! - A job's `counts` are kept with the job, so that nothing that runs an item or answers a
//!   route needs more than the job it is about and the items it touches: `items` holds the
//!   items loaded for the task at hand (all of them for a job's answer, the next pending one
//!   for the scheduler), and every change to an item's status moves the counts with it.

use serde_json::{json, Value};

use super::backend::Op;
use super::error::{ApiError, ErrorCode};
pub use super::job_views::{counts, job_view, shown_invite, standings, Standing};
pub use submit::{is_job_id, parse_submit, Submit, SubmitItem};

mod submit;

pub const MAX_ITEMS: usize = 500;
pub const MAX_UNFINISHED_JOBS: usize = 10;
/// A session keeps at most this many finished jobs (the oldest are dropped first).
pub const MAX_FINISHED_JOBS: usize = 50;
pub const MAX_ATTEMPTS: u32 = 5;
pub const RETENTION_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// `JOB_INTERVAL_S`'s default.
pub const DEFAULT_INTERVAL_S: u32 = 180;
/// `JOB_MIN_INTERVAL_S`'s default: the least `interval_s` a submit may ask.
pub const DEFAULT_MIN_INTERVAL_S: u32 = 60;
/// The most `interval_s` a submit may ask.
pub const MAX_INTERVAL_S: u32 = 86_400;
/// Backoff of a transient failure: 10 s, 20 s, 40 s, 80 s (then the item fails).
pub const BACKOFF_BASE_MS: i64 = 10_000;
/// The longest wait between two checks of a session that is not connected.
pub const MAX_CHECK_MS: i64 = 15 * 60 * 1000;
/// At most this many jobs in a list answer.
pub const LIST_LIMIT: usize = 50;

pub(crate) fn code_of(op: &Op) -> &str {
    match op {
        Op::Join { code } | Op::JoinByMessage { code, .. } => code,
        _ => "",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Queued,
    Running,
    Paused,
    Completed,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Queued,
            Self::Running,
            Self::Paused,
            Self::Completed,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    pub fn is_finished(self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemStatus {
    Pending,
    Joined,
    PendingApproval,
    AlreadyMember,
    Failed,
    Cancelled,
}

impl ItemStatus {
    pub const FINAL: [ItemStatus; 5] = [
        Self::Joined,
        Self::PendingApproval,
        Self::AlreadyMember,
        Self::Failed,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Joined => "joined",
            Self::PendingApproval => "pending_approval",
            Self::AlreadyMember => "already_member",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        std::iter::once(Self::Pending)
            .chain(Self::FINAL)
            .find(|s| s.as_str() == text)
    }
}

pub const PAUSE_REQUESTED: &str = "requested";
pub const PAUSE_NOT_CONNECTED: &str = "session_not_connected";
pub const PAUSE_BAD_INVITES: &str = "bad_invites";
/// Items in a row that end invalid, revoked or not found before a job pauses itself.
pub const BAD_INVITE_STREAK: u32 = 5;
pub const CANCEL_REQUESTED: &str = "requested";
pub const CANCEL_REASSIGNED: &str = "session_reassigned";

/// How many items of a job are in each state; kept with the job and moved with every
/// change of an item's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub total: u32,
    pub pending: u32,
    pub joined: u32,
    pub pending_approval: u32,
    pub already_member: u32,
    pub failed: u32,
    pub cancelled: u32,
}

impl Counts {
    pub fn of<'a>(statuses: impl IntoIterator<Item = &'a ItemStatus>) -> Self {
        let mut counts = Self::default();
        for status in statuses {
            counts.total += 1;
            *counts.slot(*status) += 1;
        }
        counts
    }

    fn slot(&mut self, status: ItemStatus) -> &mut u32 {
        match status {
            ItemStatus::Pending => &mut self.pending,
            ItemStatus::Joined => &mut self.joined,
            ItemStatus::PendingApproval => &mut self.pending_approval,
            ItemStatus::AlreadyMember => &mut self.already_member,
            ItemStatus::Failed => &mut self.failed,
            ItemStatus::Cancelled => &mut self.cancelled,
        }
    }

    /// One item moved from `from` to `to`.
    pub fn moved(&mut self, from: ItemStatus, to: ItemStatus) {
        let old = self.slot(from);
        *old = old.saturating_sub(1);
        *self.slot(to) += 1;
    }

    /// Every pending item but `keep` of them became cancelled.
    fn cancel_pending(&mut self, keep: u32) {
        let moved = self.pending.saturating_sub(keep);
        self.pending -= moved;
        self.cancelled += moved;
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub index: u32,
    pub op: Op,
    pub status: ItemStatus,
    pub group_jid: Option<String>,
    /// `{ code, message, wa_code? }` of a failed item.
    pub error: Option<Value>,
    pub attempts: u32,
    /// Not before this time (a retry's backoff, a wait for a token or a cooldown).
    pub not_before_ms: i64,
    pub finished_ms: Option<i64>,
    /// When a `pending_approval` item was seen approved and moved to `joined` (section 14).
    pub approved_ms: Option<i64>,
    /// The group the invite must lead to (section 15): previewed first, else `invite_mismatch`.
    pub expected_group_jid: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: String,
    pub org: String,
    pub label: Option<String>,
    pub interval_s: u32,
    pub status: JobStatus,
    pub pause_reason: Option<String>,
    /// `requested`, or `session_reassigned` when the session changed hands (section 9).
    pub cancel_reason: Option<String>,
    /// Consecutive checks that found the session not connected.
    pub checks: u32,
    /// Items in a row that ended `invite_invalid`, `invite_revoked` or `group_not_found`.
    pub bad_streak: u32,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub finished_ms: Option<i64>,
    pub counts: Counts,
    /// The items loaded for the task at hand (see the module's invariants).
    pub items: Vec<Item>,
    /// A recovery job's `source` (section 15's view), shown as it is.
    pub source: Option<Value>,
}

impl Job {
    pub fn new(id: String, org: String, submit: Submit, now_ms: i64) -> Self {
        let items = submit
            .items
            .into_iter()
            .enumerate()
            .map(|(index, item)| Item {
                index: u32::try_from(index).unwrap_or(u32::MAX),
                op: item.op,
                status: ItemStatus::Pending,
                group_jid: None,
                error: None,
                attempts: 0,
                not_before_ms: now_ms,
                finished_ms: None,
                approved_ms: None,
                expected_group_jid: item.expected_group_jid,
            })
            .collect::<Vec<Item>>();
        Self {
            id,
            org,
            label: submit.label,
            interval_s: submit.interval_s,
            status: JobStatus::Queued,
            pause_reason: None,
            cancel_reason: None,
            counts: Counts::of(items.iter().map(|i| &i.status)),
            checks: 0,
            bad_streak: 0,
            created_ms: now_ms,
            updated_ms: now_ms,
            finished_ms: None,
            items,
            source: None,
        }
    }

    /// A recovery job (section 15): its `source`, and each item shows its expected group
    /// from the start (its invite shows as `…` only: the codes never leave joingate).
    pub fn with_source(mut self, source: Value) -> Self {
        for item in &mut self.items {
            if item.group_jid.is_none() {
                item.group_jid.clone_from(&item.expected_group_jid);
            }
        }
        self.source = Some(source);
        self
    }

    pub(crate) fn pending(&self) -> impl Iterator<Item = &Item> {
        self.items
            .iter()
            .filter(|i| i.status == ItemStatus::Pending)
    }

    /// Whether the scheduler may pick it: unfinished and not paused on request.
    pub(crate) fn is_runnable(&self) -> bool {
        let paused_on_request = self.status == JobStatus::Paused
            && matches!(
                self.pause_reason.as_deref(),
                Some(PAUSE_REQUESTED | PAUSE_BAD_INVITES)
            );
        !(self.status.is_finished() || paused_on_request)
    }

    fn finish_if_done(&mut self, now_ms: i64) -> bool {
        if !self.status.is_finished() && self.counts.pending == 0 {
            self.status = JobStatus::Completed;
            self.pause_reason = None;
            self.finished_ms = Some(now_ms);
            return true;
        }
        false
    }

    pub fn pause(&mut self, now_ms: i64) -> Result<(), ApiError> {
        self.check_unfinished()?;
        self.status = JobStatus::Paused;
        self.pause_reason = Some(PAUSE_REQUESTED.into());
        self.updated_ms = now_ms;
        Ok(())
    }

    pub fn resume(&mut self, now_ms: i64) -> Result<(), ApiError> {
        self.check_unfinished()?;
        if self.status == JobStatus::Paused {
            let started = self.counts.pending < self.counts.total
                || self.items.iter().any(|i| i.attempts > 0);
            self.status = if started {
                JobStatus::Running
            } else {
                JobStatus::Queued
            };
            self.pause_reason = None;
            self.checks = 0;
            self.bad_streak = 0;
            for item in self
                .items
                .iter_mut()
                .filter(|i| i.status == ItemStatus::Pending)
            {
                item.not_before_ms = item.not_before_ms.min(now_ms);
            }
        }
        self.updated_ms = now_ms;
        Ok(())
    }

    /// Marks every pending item cancelled, but the one whose backend call is under way now
    /// (it finishes). The store applies the same change to the items it did not load.
    pub fn cancel(
        &mut self,
        running: Option<u32>,
        reason: &str,
        now_ms: i64,
    ) -> Result<(), ApiError> {
        self.check_unfinished()?;
        let mut running_pending = false;
        for item in self.items.iter_mut() {
            if item.status != ItemStatus::Pending {
                continue;
            }
            if Some(item.index) == running {
                running_pending = true;
            } else {
                item.status = ItemStatus::Cancelled;
                item.finished_ms = Some(now_ms);
            }
        }
        // Called with every item of the job loaded, so the running one is known.
        self.counts.cancel_pending(u32::from(running_pending));
        self.status = JobStatus::Cancelled;
        self.pause_reason = None;
        self.cancel_reason = Some(reason.to_string());
        self.finished_ms = Some(now_ms);
        self.updated_ms = now_ms;
        Ok(())
    }

    fn check_unfinished(&self) -> Result<(), ApiError> {
        if self.status.is_finished() {
            return Err(ApiError::new(ErrorCode::JobFinished));
        }
        Ok(())
    }
}

/// What the session's scheduler does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Run this item (job index in the book, item index in the job) now.
    Run { job: usize, item: usize },
    /// Nothing is due before this time.
    At(i64),
    /// No job has anything to run.
    Idle,
}

/// The unfinished jobs of a session, oldest first, and the pace between items.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Book {
    pub jobs: Vec<Job>,
    /// No item of the session's jobs starts before this time.
    pub next_item_ms: i64,
}

/// The retry wait after `attempts` transient failures: 10 s doubled each time.
pub fn backoff_ms(attempts: u32) -> i64 {
    BACKOFF_BASE_MS.saturating_mul(1i64 << attempts.saturating_sub(1).min(20))
}

/// How an item's outcome is to be read.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The backend answered the join (`joined`, `pending_approval`, `already_member`).
    Done(Value),
    Failed(ApiError),
}

/// What recording an outcome did to the job, for the events the caller raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recorded {
    pub completed: bool,
    pub paused: bool,
}

fn item_error(error: &ApiError) -> Value {
    let mut value = json!({ "code": error.code.as_str(), "message": error.message });
    if let Some(wa_code) = error.details.get("wa_code") {
        value["wa_code"] = wa_code.clone();
    }
    value
}

/// A definite answer finishes an item; the rest are transient (retried), a pause
/// (`session_not_connected`) or WhatsApp's push-back (a cooldown), which are no attempt.
fn is_definite(code: ErrorCode) -> bool {
    !matches!(
        code,
        ErrorCode::BackendUnavailable
            | ErrorCode::BackendTimeout
            | ErrorCode::BackendError
            | ErrorCode::SessionBusy
            | ErrorCode::InternalError
            | ErrorCode::RateLimited
            | ErrorCode::SessionNotConnected
            | ErrorCode::UpstreamRateLimited
            | ErrorCode::SessionCoolingDown
    )
}

/// Moves an item to `to`, and its job's counts with it.
fn set_status(entry: &mut Item, counts: &mut Counts, to: ItemStatus) {
    counts.moved(entry.status, to);
    entry.status = to;
}

/// Ends an item with a definite outcome: the join's status, or `failed` with its error.
fn apply_final(entry: &mut Item, counts: &mut Counts, outcome: Outcome, now_ms: i64) {
    entry.finished_ms = Some(now_ms);
    match outcome {
        Outcome::Done(data) => {
            let status = match data.get("status").and_then(Value::as_str) {
                Some("pending_approval") => ItemStatus::PendingApproval,
                Some("already_member") => ItemStatus::AlreadyMember,
                _ => ItemStatus::Joined,
            };
            set_status(entry, counts, status);
            entry.group_jid = data
                .get("group_jid")
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        Outcome::Failed(error) => {
            set_status(entry, counts, ItemStatus::Failed);
            entry.error = Some(item_error(&error));
        }
    }
}

/// The outcome of an item whose every attempt was cut off before its outcome was recorded:
/// unknown, like a timeout.
pub fn interrupted() -> ApiError {
    ApiError::new(ErrorCode::BackendTimeout)
        .with_message("Every attempt of this item was interrupted before its outcome was recorded.")
}

impl Book {
    pub fn unfinished(&self) -> usize {
        self.jobs.iter().filter(|j| !j.status.is_finished()).count()
    }

    /// The next item to run, in order, and when. `cooldown_until` holds every item back.
    pub fn next(&self, now_ms: i64, cooldown_until: Option<i64>) -> Next {
        for (j, job) in self.jobs.iter().enumerate() {
            if !job.is_runnable() {
                continue;
            }
            let Some(i) = job
                .items
                .iter()
                .position(|i| i.status == ItemStatus::Pending)
            else {
                continue;
            };
            let at = job.items[i]
                .not_before_ms
                .max(self.next_item_ms)
                .max(cooldown_until.unwrap_or(i64::MIN));
            return if at <= now_ms {
                Next::Run { job: j, item: i }
            } else {
                Next::At(at)
            };
        }
        Next::Idle
    }

    /// An item that could not be admitted (no token, open circuit, cooldown) waits until
    /// `until_ms`: no attempt.
    pub fn wait(&mut self, job: usize, item: usize, until_ms: i64) {
        if let Some(item) = self.jobs.get_mut(job).and_then(|j| j.items.get_mut(item)) {
            item.not_before_ms = item.not_before_ms.max(until_ms);
        }
    }

    /// Counts the attempt about to be made, before its backend call (the caller stores it
    /// first). False when the attempts are used up by calls whose outcome was never
    /// recorded: the item then ends with `interrupted()` instead of another call.
    pub fn begin_attempt(&mut self, job: usize, item: usize) -> bool {
        let Some(job) = self.jobs.get_mut(job) else {
            return false;
        };
        let Some(entry) = job.items.get_mut(item) else {
            return false;
        };
        if entry.attempts >= MAX_ATTEMPTS {
            return false;
        }
        entry.attempts += 1;
        // A job runs from its first attempt on.
        if job.status == JobStatus::Queued {
            job.status = JobStatus::Running;
        }
        true
    }

    /// Records what an item's attempt gave (counted by `begin_attempt`, but for an outcome
    /// decided without a call), and paces the session's next item.
    /// `next_item_ms` is the pace the caller drew for the session's next item (section 13).
    pub fn record(
        &mut self,
        job: usize,
        item: usize,
        outcome: Outcome,
        cooldown_until: Option<i64>,
        now_ms: i64,
        next_item_ms: i64,
    ) -> Recorded {
        let mut recorded = Recorded::default();
        let Some(job_ref) = self.jobs.get_mut(job) else {
            return recorded;
        };
        self.next_item_ms = next_item_ms;
        let definite = match &outcome {
            Outcome::Done(_) => true,
            Outcome::Failed(error) => is_definite(error.code),
        };
        let Some(entry) = job_ref.items.get_mut(item) else {
            return recorded;
        };
        let counts = &mut job_ref.counts;
        if entry.status != ItemStatus::Pending {
            // Already final (cancelled while it waited for its turn, say): kept as it is.
            return recorded;
        }
        // Not-connected and WhatsApp's push-back are no attempt: the one counted is undone.
        let spent = !matches!(&outcome, Outcome::Failed(e) if matches!(e.code,
            ErrorCode::SessionNotConnected | ErrorCode::UpstreamRateLimited | ErrorCode::SessionCoolingDown));
        if !spent {
            entry.attempts = entry.attempts.saturating_sub(1);
        }
        if job_ref.status.is_finished() {
            // Cancelled while this item ran: a final answer is kept; anything else (a retry,
            // a pause, a cooldown) ends the item cancelled. The job stays as it is.
            if definite {
                apply_final(entry, counts, outcome, now_ms);
            } else {
                set_status(entry, counts, ItemStatus::Cancelled);
                entry.finished_ms = Some(now_ms);
            }
            return recorded;
        }
        job_ref.updated_ms = now_ms;
        if job_ref.status == JobStatus::Queued {
            job_ref.status = JobStatus::Running;
        }
        match outcome {
            _ if definite => {
                // WhatsApp answered: the session is connected, so a check-paused job goes on.
                job_ref.checks = 0;
                if job_ref.pause_reason.as_deref() == Some(PAUSE_NOT_CONNECTED) {
                    job_ref.status = JobStatus::Running;
                    job_ref.pause_reason = None;
                }
                // WhatsApp counts failed attempts against the account: a list of bad
                // invites stops the job until someone resumes it.
                let bad = matches!(&outcome, Outcome::Failed(e) if matches!(e.code,
                    ErrorCode::InviteInvalid | ErrorCode::InviteRevoked | ErrorCode::GroupNotFound));
                job_ref.bad_streak = if bad { job_ref.bad_streak + 1 } else { 0 };
                apply_final(entry, counts, outcome, now_ms);
                if job_ref.bad_streak >= BAD_INVITE_STREAK && counts.pending > 0 {
                    job_ref.status = JobStatus::Paused;
                    job_ref.pause_reason = Some(PAUSE_BAD_INVITES.into());
                    recorded.paused = true;
                }
            }
            Outcome::Done(_) => {}
            Outcome::Failed(error) => match error.code {
                ErrorCode::SessionNotConnected => {
                    // Not an attempt: the job waits for the session, checking on a backoff.
                    job_ref.checks += 1;
                    entry.not_before_ms = now_ms + backoff_ms(job_ref.checks).min(MAX_CHECK_MS);
                    if job_ref.status != JobStatus::Paused {
                        job_ref.status = JobStatus::Paused;
                        job_ref.pause_reason = Some(PAUSE_NOT_CONNECTED.into());
                        recorded.paused = true;
                    }
                }
                ErrorCode::UpstreamRateLimited | ErrorCode::SessionCoolingDown => {
                    // WhatsApp pushed back: the cooldown holds the item, no attempt spent.
                    entry.not_before_ms = entry.not_before_ms.max(cooldown_until.unwrap_or(now_ms));
                }
                _ => {
                    // Transient: retried with backoff; the fifth failure is final.
                    if entry.attempts >= MAX_ATTEMPTS {
                        entry.error = Some(item_error(&error));
                        set_status(entry, counts, ItemStatus::Failed);
                        entry.finished_ms = Some(now_ms);
                    } else {
                        entry.not_before_ms = now_ms + backoff_ms(entry.attempts);
                    }
                }
            },
        }
        recorded.completed = job_ref.finish_if_done(now_ms);
        recorded
    }
}

#[cfg(test)]
mod tests;
