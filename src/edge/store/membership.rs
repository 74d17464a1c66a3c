//! Section 14 in SQL: the session's requests (`pending_approval` outcomes), the account's
//! known membership of each group, and the account's own ids (read from server events).
//! Each table is bounded: requests by `KEPT_MAX` and 7 days once resolved, groups by
//! `GROUPS_MAX`, ids by a handful.

use super::{count, int, ints, optional_int, optional_text, rows, text, texts, Row, Store};
use crate::core::membership::{
    Membership, Request, RequestState, GROUPS_MAX, KEPT_MAX, LIST_MAX, RESOLVED_KEPT_MS,
};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS requests (id INTEGER PRIMARY KEY AUTOINCREMENT, group_jid TEXT NOT NULL,
  requested_ms INTEGER NOT NULL, state TEXT NOT NULL, resolved_ms INTEGER, job_id TEXT, item INTEGER,
  request_id TEXT, checks INTEGER NOT NULL, next_check_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS requests_due ON requests (state, next_check_ms);
CREATE INDEX IF NOT EXISTS requests_group ON requests (group_jid, state);
CREATE TABLE IF NOT EXISTS groups (group_jid TEXT PRIMARY KEY, state TEXT NOT NULL, updated_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS groups_age ON groups (updated_ms);
CREATE TABLE IF NOT EXISTS own_ids (id TEXT PRIMARY KEY);
";

/// What a reset forgets (a reassignment forgets only the requests).
pub(super) const RESET: &str = "DELETE FROM requests; DELETE FROM groups; DELETE FROM own_ids;";

const REQUEST_COLUMNS: &str =
    "id, group_jid, requested_ms, state, resolved_ms, job_id, item, request_id, checks, next_check_ms";

/// The own account's ids kept at most (a phone JID, a LID, a device JID or two).
const OWN_IDS_MAX: usize = 8;

/// A request read by `REQUEST_COLUMNS` (`None`: a state this build does not know).
fn request_from(mut row: Row) -> Option<Request> {
    macro_rules! at {
        ($name:literal) => {
            col!(REQUEST_COLUMNS, $name)
        };
    }
    let item = row.opt_int(at!("item"));
    Some(Request {
        id: row.int(at!("id")),
        state: RequestState::parse(&row.text(at!("state")))?,
        group_jid: row.text(at!("group_jid")),
        requested_ms: row.int(at!("requested_ms")),
        resolved_ms: row.opt_int(at!("resolved_ms")),
        job: row
            .opt_text(at!("job_id"))
            .map(|id| (id, item.map_or(0, count))),
        request_id: row.opt_text(at!("request_id")),
        checks: count(row.int(at!("checks"))),
        next_check_ms: row.int(at!("next_check_ms")),
    })
}

impl Store {
    fn requests(
        &self,
        filter: &str,
        bindings: Vec<worker::SqlStorageValue>,
    ) -> worker::Result<Vec<Request>> {
        Ok(rows(
            &self.sql,
            &format!("SELECT {REQUEST_COLUMNS} FROM requests {filter}"),
            bindings,
        )?
        .into_iter()
        .filter_map(request_from)
        .collect())
    }

    /// Keeps a new pending request; drops what is past its bounds first.
    pub fn add_request(&self, request: &Request, now_ms: i64) -> worker::Result<()> {
        self.sql.exec(
            "DELETE FROM requests WHERE state != 'pending' AND resolved_ms < ?",
            vec![int(now_ms - RESOLVED_KEPT_MS)],
        )?;
        // Past the bound: the oldest resolved first, then the oldest of all.
        self.sql.exec(
            "DELETE FROM requests WHERE id IN (SELECT id FROM requests ORDER BY state = 'pending', id LIMIT max(0, (SELECT COUNT(*) FROM requests) - ?))",
            vec![int(KEPT_MAX as i64 - 1)],
        )?;
        let (job_id, item) = match &request.job {
            Some((id, index)) => (Some(id.as_str()), Some(i64::from(*index))),
            None => (None, None),
        };
        self.sql.exec(
            "INSERT INTO requests (group_jid, requested_ms, state, job_id, item, request_id, checks, next_check_ms) VALUES (?, ?, 'pending', ?, ?, ?, 0, ?)",
            vec![
                text(&request.group_jid),
                int(request.requested_ms),
                optional_text(job_id),
                optional_int(item),
                optional_text(request.request_id.as_deref()),
                int(request.next_check_ms),
            ],
        )?;
        Ok(())
    }

    /// The pending requests of one group, oldest first.
    pub fn pending_of(&self, group_jid: &str) -> worker::Result<Vec<Request>> {
        self.requests(
            "WHERE group_jid = ? AND state = 'pending' ORDER BY id",
            vec![text(group_jid)],
        )
    }

    /// Pending requests whose check or expiry is due (at most `limit`, the most overdue first).
    pub fn due_requests(&self, now_ms: i64, limit: usize) -> worker::Result<Vec<Request>> {
        self.requests(
            "WHERE state = 'pending' AND next_check_ms <= ? ORDER BY next_check_ms LIMIT ?",
            vec![int(now_ms), int(limit as i64)],
        )
    }

    /// When the next check (or expiry, which a check's time never passes) is due.
    pub fn next_check_ms(&self) -> worker::Result<Option<i64>> {
        Ok(ints(
            &self.sql,
            "SELECT MIN(next_check_ms) FROM requests WHERE state = 'pending'",
            vec![],
        )?
        .first()
        .copied())
    }

    /// The list of `GET …/pending-joins`: newest first, resolved ones of the last 7 days.
    pub fn list_requests(&self, now_ms: i64) -> worker::Result<Vec<Request>> {
        self.requests(
            "WHERE state = 'pending' OR resolved_ms >= ? ORDER BY id DESC LIMIT ?",
            vec![int(now_ms - RESOLVED_KEPT_MS), int(LIST_MAX as i64)],
        )
    }

    /// Resolves a pending request (no change to one already resolved); whether it did.
    pub fn resolve_request(
        &self,
        id: i64,
        state: RequestState,
        now_ms: i64,
    ) -> worker::Result<bool> {
        let changed = ints(
            &self.sql,
            "UPDATE requests SET state = ?, resolved_ms = ? WHERE id = ? AND state = 'pending' RETURNING id",
            vec![text(state.as_str()), int(now_ms), int(id)],
        )?;
        Ok(!changed.is_empty())
    }

    pub fn schedule_check(&self, id: i64, checks: u32, next_ms: i64) -> worker::Result<()> {
        self.sql.exec(
            "UPDATE requests SET checks = ?, next_check_ms = ? WHERE id = ?",
            vec![int(i64::from(checks)), int(next_ms), int(id)],
        )?;
        Ok(())
    }

    /// Drops the requests (the session changed hands).
    pub fn forget_requests(&self) -> worker::Result<()> {
        self.sql.exec("DELETE FROM requests", None).map(|_| ())
    }

    pub fn membership(&self, group_jid: &str) -> worker::Result<Option<Membership>> {
        Ok(texts(
            &self.sql,
            "SELECT state FROM groups WHERE group_jid = ?",
            vec![text(group_jid)],
        )?
        .first()
        .and_then(|s| Membership::parse(s)))
    }

    pub fn save_membership(
        &self,
        group_jid: &str,
        state: Membership,
        now_ms: i64,
    ) -> worker::Result<()> {
        // A known group is one statement; a new one is inserted, and only then can the table
        // be past its bound.
        let updated = ints(
            &self.sql,
            "UPDATE groups SET state = ?, updated_ms = ? WHERE group_jid = ? RETURNING 1",
            vec![text(state.as_str()), int(now_ms), text(group_jid)],
        )?;
        if !updated.is_empty() {
            return Ok(());
        }
        self.sql.exec(
            "INSERT INTO groups (group_jid, state, updated_ms) VALUES (?, ?, ?)",
            vec![text(group_jid), text(state.as_str()), int(now_ms)],
        )?;
        self.sql.exec(
            "DELETE FROM groups WHERE group_jid IN (SELECT group_jid FROM groups ORDER BY updated_ms DESC LIMIT -1 OFFSET ?)",
            vec![int(GROUPS_MAX as i64)],
        )?;
        Ok(())
    }

    /// A job item approved: `pending_approval` becomes `joined` with `approved_ms`, and its
    /// job's counts follow; nothing when the item is gone or no longer pending approval.
    pub fn approve_item(&self, job_id: &str, index: u32, now_ms: i64) -> worker::Result<bool> {
        let changed = ints(
            &self.sql,
            "UPDATE job_items SET status = 'joined', approved_ms = ? WHERE job_id = ? AND idx = ? AND status = 'pending_approval' RETURNING idx",
            vec![int(now_ms), text(job_id), int(i64::from(index))],
        )?;
        if !changed.is_empty() {
            self.sql.exec(
                "UPDATE jobs SET pending_approval = pending_approval - 1, joined = joined + 1, updated_ms = ? WHERE job_id = ?",
                vec![int(now_ms), text(job_id)],
            )?;
        }
        Ok(!changed.is_empty())
    }

    pub fn own_ids(&self) -> worker::Result<Vec<String>> {
        texts(&self.sql, "SELECT id FROM own_ids", vec![])
    }

    /// Remembers ids of the own account (the newest few).
    pub fn save_own_ids(&self, ids: &[String]) -> worker::Result<()> {
        for id in ids {
            self.sql.exec(
                "INSERT OR IGNORE INTO own_ids (id) VALUES (?)",
                vec![text(id)],
            )?;
        }
        self.sql.exec(
            "DELETE FROM own_ids WHERE rowid IN (SELECT rowid FROM own_ids ORDER BY rowid DESC LIMIT -1 OFFSET ?)",
            vec![int(OWN_IDS_MAX as i64)],
        )?;
        Ok(())
    }
}
