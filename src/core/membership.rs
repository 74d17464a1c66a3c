//! Section 14: what happened after `pending_approval`. The session object keeps each
//! `pending_approval` outcome as a [`Request`] and the account's known [`Membership`] of each
//! group; this module decides, with no I/O, what a fact about the own account (a server
//! event, a membership check, a join or leave joingate made) changes, and which org events
//! that raises.
//!
//! Invariants:
//! - An org event is raised only when a fact changes the stored membership or resolves a
//!   request: a repeated event, and the server's echo of a join or leave joingate made
//!   itself, raise nothing ("applied once").
//! - A request resolves once: `approved` (the account was seen in the group) or `expired`
//!   (`PENDING_TTL_S` after it was made, without membership); never both.
//! - Times stored are unix milliseconds; times shown are RFC 3339.

use serde_json::{json, Value};

use super::backend::events::LeaveReason;
use super::time::format_rfc3339;

/// `MEMBERSHIP_CHECKS_S`'s default: 2 min, 10 min, 1 h, 6 h, then every 12 h.
pub const DEFAULT_CHECKS: &str = "120,600,3600,21600,43200";
/// `PENDING_TTL_S`'s default: 7 days.
pub const DEFAULT_TTL_S: u64 = 7 * 86_400;
/// Resolved requests are kept this long (shown by the list), then dropped.
pub const RESOLVED_KEPT_MS: i64 = 7 * 86_400_000;
/// The list shows at most this many, newest first.
pub const LIST_MAX: usize = 100;
/// Requests kept per session at most (pending and resolved): past it, the oldest resolved
/// go first, then the oldest pending (which a 200-a-day join cap makes unreachable).
pub const KEPT_MAX: usize = 2_000;
/// Groups whose membership the session remembers at most; the least recently changed go.
pub const GROUPS_MAX: usize = 5_000;
/// Server events a session takes per minute by default (`EVENTS_PER_MINUTE`).
pub const DEFAULT_EVENTS_PER_MINUTE: u32 = 600;

/// What the session knows of the account in one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    Member,
    Pending,
    NotMember,
}

impl Membership {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Pending => "pending",
            Self::NotMember => "not_member",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Member, Self::Pending, Self::NotMember]
            .into_iter()
            .find(|m| m.as_str() == text)
    }
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestState {
    Pending,
    Approved,
    Expired,
}

impl RequestState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Expired => "expired",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Approved, Self::Expired]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// One `pending_approval` outcome, from a client call (`request_id`) or a job item (`job`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub id: i64,
    pub group_jid: String,
    pub requested_ms: i64,
    pub state: RequestState,
    pub resolved_ms: Option<i64>,
    /// The job and item index of a job item's request.
    pub job: Option<(String, u32)>,
    pub request_id: Option<String>,
    /// Checks made so far, and when the next is due.
    pub checks: u32,
    pub next_check_ms: i64,
}

impl Request {
    fn source(&self) -> &'static str {
        if self.job.is_some() {
            "job"
        } else {
            "client"
        }
    }

    /// Its entry in `GET …/pending-joins`.
    pub fn view(&self) -> Value {
        let mut entry = json!({
            "group_jid": self.group_jid,
            "requested_at": format_rfc3339(self.requested_ms),
            "state": self.state.as_str(),
        });
        if let Some(at) = self.resolved_ms {
            entry["resolved_at"] = Value::from(format_rfc3339(at));
        }
        if let Some((job_id, _)) = &self.job {
            entry["job_id"] = Value::from(job_id.as_str());
        }
        if let Some(id) = &self.request_id {
            entry["request_id"] = Value::from(id.as_str());
        }
        entry
    }

    /// `group.join` of its approval (section 11 v1.2).
    pub fn approved_event(&self, sid: &str) -> Value {
        let mut data = json!({
            "session_id": sid,
            "group_jid": self.group_jid,
            "status": "joined",
            "approved": true,
            "requested_at": format_rfc3339(self.requested_ms),
            "source": self.source(),
        });
        self.name_origin(&mut data);
        data
    }

    /// `group.join_request.expired`.
    pub fn expired_event(&self, sid: &str) -> Value {
        let mut data = json!({
            "session_id": sid,
            "group_jid": self.group_jid,
            "requested_at": format_rfc3339(self.requested_ms),
        });
        if let Some((job_id, _)) = &self.job {
            data["job_id"] = Value::from(job_id.as_str());
        }
        data
    }

    fn name_origin(&self, data: &mut Value) {
        match (&self.job, &self.request_id) {
            (Some((job_id, _)), _) => data["job_id"] = Value::from(job_id.as_str()),
            (None, Some(id)) => data["request_id"] = Value::from(id.as_str()),
            (None, None) => {}
        }
    }
}

/// When a request made at `requested_ms` expires without membership (`PENDING_TTL_S`).
pub fn expires_at(requested_ms: i64, ttl_s: u64) -> i64 {
    requested_ms.saturating_add(seconds_ms(ttl_s))
}

fn seconds_ms(seconds: u64) -> i64 {
    i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// `MEMBERSHIP_CHECKS_S`: when the checks of a request come, in seconds after it; after the
/// last, every (last value) seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule(Vec<u64>);

impl Default for Schedule {
    fn default() -> Self {
        Self(vec![120, 600, 3_600, 21_600, 43_200])
    }
}

impl Schedule {
    /// A comma-separated, strictly increasing list of 1 to 20 whole seconds, each 1 to 30 days.
    #[inline(never)]
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!("MEMBERSHIP_CHECKS_S: {text:?} is not increasing seconds, like \"{DEFAULT_CHECKS}\"")
        };
        let mut offsets = Vec::new();
        for part in text.split(',') {
            let s: u64 = part.trim().parse().map_err(|_| bad())?;
            if !(1..=30 * 86_400).contains(&s) || offsets.last().is_some_and(|l| *l >= s) {
                return Err(bad());
            }
            offsets.push(s);
        }
        if offsets.len() > 20 {
            return Err(bad());
        }
        Ok(Self(offsets))
    }

    /// When check number `done` (0 is the first) of a request made at `requested_ms` is due.
    pub fn check_at(&self, requested_ms: i64, done: u32) -> i64 {
        let n = self.0.len();
        let done = done as usize;
        let last = self.0.last().copied().unwrap_or(43_200);
        let offset_s = match self.0.get(done) {
            Some(s) => *s,
            None => last.saturating_add(last.saturating_mul((done + 1 - n) as u64)),
        };
        requested_ms.saturating_add(seconds_ms(offset_s))
    }

    /// A check that could not run, or whose answer could not be told from a failure, runs
    /// again after the schedule's first step (never later than its next regular check).
    pub fn retry_at(&self, request: &Request, now_ms: i64) -> i64 {
        let first = self.0.first().copied().unwrap_or(120);
        let retry = now_ms.saturating_add(seconds_ms(first));
        let regular = self.check_at(request.requested_ms, request.checks + 1);
        let retry = if regular > now_ms {
            retry.min(regular)
        } else {
            retry
        };
        retry.max(now_ms + 1_000)
    }
}

/// What a fact about the own account in one group changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The membership to store, when it changes.
    pub store: Option<Membership>,
    /// The org event to raise, beside the approvals: `group.join` (`source: "server"`) for a
    /// join joingate did not make, or `group.leave`.
    pub raise: Option<(&'static str, Value)>,
}

/// The account joined `group_jid` (a server event or a membership check) while `pending`
/// requests of it are open: each is approved by the caller; without any, a join the session
/// did not know of is a server join.
pub fn joined(sid: &str, group_jid: &str, known: Option<Membership>, pending: usize) -> Change {
    if pending > 0 {
        return Change {
            store: (known != Some(Membership::Member)).then_some(Membership::Member),
            raise: None,
        };
    }
    if known == Some(Membership::Member) {
        return Change {
            store: None,
            raise: None,
        };
    }
    Change {
        store: Some(Membership::Member),
        raise: Some((
            "group.join",
            json!({ "session_id": sid, "group_jid": group_jid, "status": "joined", "source": "server" }),
        )),
    }
}

/// The account is no longer in `group_jid`, by a server event.
pub fn left(sid: &str, group_jid: &str, known: Option<Membership>, reason: LeaveReason) -> Change {
    if known == Some(Membership::NotMember) {
        return Change {
            store: None,
            raise: None,
        };
    }
    let reason = match reason {
        LeaveReason::Left => "left",
        LeaveReason::Removed => "removed",
        LeaveReason::Unknown => "unknown",
    };
    Change {
        store: Some(Membership::NotMember),
        raise: Some((
            "group.leave",
            json!({ "session_id": sid, "group_jid": group_jid, "reason": reason, "source": "server" }),
        )),
    }
}

/// The membership a join outcome (`joined`, `already_member`, `pending_approval`) shows,
/// given what is known: a request does not undo membership.
pub fn after_join(status: &str, known: Option<Membership>) -> Option<Membership> {
    match status {
        "joined" | "already_member" => Some(Membership::Member),
        "pending_approval" if known != Some(Membership::Member) => Some(Membership::Pending),
        _ => None,
    }
}

/// `GET /v1/sessions/{sid}/groups/{gjid}` from a check's `member` and the newest pending
/// request of the group.
pub fn group_answer(group_jid: &str, member: bool, pending: Option<&Request>) -> Value {
    match (member, pending) {
        (true, _) => json!({ "group_jid": group_jid, "membership": "member" }),
        (false, Some(request)) => json!({
            "group_jid": group_jid,
            "membership": "pending",
            "requested_at": format_rfc3339(request.requested_ms),
        }),
        (false, None) => json!({ "group_jid": group_jid, "membership": "not_member" }),
    }
}

/// A membership check's answer (`{ "member": bool }`), `None` when it is not one.
pub fn member_of(data: &Value) -> Option<bool> {
    data.get("member").and_then(Value::as_bool)
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: &str = "120363025246125486@g.us";
    const MIN: i64 = 60_000;

    fn request(job: bool) -> Request {
        Request {
            id: 1,
            group_jid: G.into(),
            requested_ms: 1_700_000_000_000,
            state: RequestState::Pending,
            resolved_ms: None,
            job: job.then(|| ("job_1".to_string(), 3)),
            request_id: (!job).then(|| "req_1".to_string()),
            checks: 0,
            next_check_ms: 0,
        }
    }

    #[test]
    fn the_schedule_follows_its_list_then_repeats_the_last_step() {
        let s = Schedule::parse(DEFAULT_CHECKS).unwrap();
        assert_eq!(s, Schedule::default());
        let at = |done| (s.check_at(0, done)) / 1000;
        assert_eq!(
            (0..8).map(at).collect::<Vec<_>>(),
            vec![120, 600, 3_600, 21_600, 43_200, 86_400, 129_600, 172_800]
        );
        let short = Schedule::parse(" 1, 2 ,5").unwrap();
        assert_eq!(short.check_at(10_000, 4), 10_000 + 15_000);
        for bad in ["", "0", "5,5", "10,2", "x", "1,,2", "2592001"] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?}");
        }
        let many: Vec<String> = (1..=21).map(|n| n.to_string()).collect();
        assert!(Schedule::parse(&many.join(",")).is_err());
    }

    #[test]
    fn a_failed_check_runs_again_soon_but_not_after_the_next_regular_one() {
        let s = Schedule::default();
        let mut r = request(false);
        let now = r.requested_ms + 2 * MIN;
        assert_eq!(s.retry_at(&r, now), now + 2 * MIN);
        // Late in the schedule the retry is the first step, never a 12-hour wait.
        r.checks = 6;
        let now = r.requested_ms + 3 * 86_400_000;
        assert_eq!(s.retry_at(&r, now), now + 2 * MIN);
        // Close before the next regular check, that check is the retry.
        let short = Schedule::parse("1,600").unwrap();
        let r = request(false);
        assert_eq!(short.retry_at(&r, r.requested_ms), r.requested_ms + 1_000);
    }

    #[test]
    fn a_request_expires_after_its_ttl() {
        assert_eq!(expires_at(1_000, DEFAULT_TTL_S), 1_000 + 7 * 86_400_000);
        assert_eq!(expires_at(i64::MAX - 5, 10), i64::MAX);
        assert_eq!(expires_at(0, u64::MAX), i64::MAX);
    }

    #[test]
    fn a_join_is_raised_once_and_approvals_replace_the_server_join() {
        use Membership::*;
        // Nothing known: a join joingate did not make.
        let c = joined("s1", G, None, 0);
        assert_eq!(c.store, Some(Member));
        let (kind, data) = c.raise.unwrap();
        assert_eq!(kind, "group.join");
        assert_eq!(data["source"], "server");
        assert_eq!(data["status"], "joined");
        // A repeat, or the echo of a join joingate made: nothing.
        assert_eq!(
            joined("s1", G, Some(Member), 0),
            Change {
                store: None,
                raise: None
            }
        );
        // Open requests: they are approved (by the caller), no server join.
        for known in [None, Some(Pending), Some(NotMember)] {
            let c = joined("s1", G, known, 2);
            assert_eq!(c.store, Some(Member));
            assert!(c.raise.is_none());
        }
        assert_eq!(joined("s1", G, Some(Member), 1).store, None);
    }

    #[test]
    fn a_leave_is_raised_once_with_its_reason() {
        use Membership::*;
        for (reason, text) in [
            (LeaveReason::Left, "left"),
            (LeaveReason::Removed, "removed"),
            (LeaveReason::Unknown, "unknown"),
        ] {
            for known in [None, Some(Member), Some(Pending)] {
                let c = left("s1", G, known, reason);
                assert_eq!(c.store, Some(NotMember));
                let (kind, data) = c.raise.unwrap();
                assert_eq!(kind, "group.leave");
                assert_eq!(data["reason"], text);
                assert_eq!(data["source"], "server");
                assert!(data.get("request_id").is_none());
            }
            assert_eq!(
                left("s1", G, Some(NotMember), reason),
                Change {
                    store: None,
                    raise: None
                }
            );
        }
    }

    #[test]
    fn join_outcomes_set_membership() {
        use Membership::*;
        assert_eq!(after_join("joined", None), Some(Member));
        assert_eq!(after_join("already_member", Some(NotMember)), Some(Member));
        assert_eq!(after_join("pending_approval", None), Some(Pending));
        assert_eq!(after_join("pending_approval", Some(Member)), None);
        assert_eq!(after_join("left", None), None);
        assert_eq!(Membership::parse("not_member"), Some(NotMember));
        assert_eq!(RequestState::parse("expired"), Some(RequestState::Expired));
        assert_eq!(Membership::parse("x"), None);
    }

    #[test]
    fn views_and_events_name_their_origin_and_rfc3339_times() {
        let client = request(false);
        let e = client.approved_event("s1");
        assert_eq!(e["approved"], true);
        assert_eq!(e["source"], "client");
        assert_eq!(e["request_id"], "req_1");
        assert_eq!(e["requested_at"], "2023-11-14T22:13:20Z");
        assert!(e.get("job_id").is_none());
        let job = request(true);
        let e = job.approved_event("s1");
        assert_eq!(
            (e["source"].as_str(), e["job_id"].as_str()),
            (Some("job"), Some("job_1"))
        );
        assert!(e.get("request_id").is_none());
        let x = job.expired_event("s1");
        assert_eq!(x["job_id"], "job_1");
        assert_eq!(x.as_object().unwrap().len(), 4);
        let mut resolved = client.clone();
        resolved.state = RequestState::Approved;
        resolved.resolved_ms = Some(resolved.requested_ms + MIN);
        let v = resolved.view();
        assert_eq!(v["state"], "approved");
        assert_eq!(v["resolved_at"], "2023-11-14T22:14:20Z");
        assert!(client.view().get("resolved_at").is_none());
    }

    #[test]
    fn the_group_answer() {
        let r = request(false);
        assert_eq!(group_answer(G, true, Some(&r))["membership"], "member");
        let p = group_answer(G, false, Some(&r));
        assert_eq!(p["membership"], "pending");
        assert_eq!(p["requested_at"], "2023-11-14T22:13:20Z");
        assert_eq!(group_answer(G, false, None)["membership"], "not_member");
        assert_eq!(member_of(&json!({"member": false})), Some(false));
        assert_eq!(member_of(&json!({"status": "joined"})), None);
    }
}
