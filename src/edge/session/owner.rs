//! Which org owns the session (contract section 9, v1.2): the object knows it, refuses any
//! other org's calls, and ends everything the old org had running when a PUT gives the
//! session to another.

use super::{now_ms, SessionObject};
use crate::core::dispatch::Assign;
use crate::core::job_views::Holds;

impl SessionObject {
    /// The org that owns the session, from memory, or from storage the first time.
    pub(super) fn owner(&self) -> worker::Result<Option<String>> {
        if let Some(owner) = self.owner.borrow().clone() {
            return Ok(owner);
        }
        let owner = self.store().owner()?;
        *self.owner.borrow_mut() = Some(owner.clone());
        Ok(owner)
    }

    /// Whether a call of `org` may act here. A session registered before its object knew
    /// its owner takes the first caller's org (the edge checked it against the record).
    pub(super) fn owned_by(&self, org: &str) -> worker::Result<bool> {
        match self.owner()? {
            Some(owner) => Ok(owner == org),
            None => {
                self.store().save_owner(org)?;
                *self.owner.borrow_mut() = Some(Some(org.to_string()));
                Ok(true)
            }
        }
    }

    /// `PUT /v1/admin/sessions/{sid}`: the session's owner now. When that is another org,
    /// everything the old one had running here ends (contract section 9): its unfinished
    /// jobs are cancelled (`session_reassigned`), its idempotency records forgotten, calls
    /// waiting in the queue are refused at their turn, and the answer waits for the call
    /// under way, so that nothing of the old org runs after it. Returns the jobs cancelled.
    pub(super) async fn assign(&self, assign: &Assign) -> worker::Result<usize> {
        let store = self.store();
        let now = now_ms();
        if let Some((_, next_item_ms)) = store.meta()? {
            store.save_meta(&assign.session, next_item_ms)?;
        } else {
            store.save_meta(&assign.session, 0)?;
        }
        // Events on and the account's ids unknown: the alarm asks the server for them now.
        if assign.events && store.own_ids()?.is_empty() {
            self.learn_ids.set(true);
            self.state.storage().set_alarm(0i64).await?;
        }
        if self.owner()?.as_deref() == Some(assign.org.as_str()) {
            return Ok(0);
        }
        self.epoch.set(self.epoch.get() + 1);
        let mut cancelled = 0;
        for mut job in store.unfinished_jobs()? {
            if job.org == assign.org {
                continue;
            }
            job.items = store.items(&job.id)?;
            // Every pending item, the one under way included: its outcome is not kept.
            if job
                .cancel(None, crate::core::jobs::CANCEL_REASSIGNED, now)
                .is_ok()
            {
                store.cancel_items(&job.id, None, now)?;
                store.save_job(&job)?;
                cancelled += 1;
            }
        }
        store.forget_outcomes()?;
        // The old org's pending joins are dropped with its jobs (section 9 v1.2).
        store.forget_requests()?;
        store.save_owner(&assign.org)?;
        *self.owner.borrow_mut() = Some(Some(assign.org.clone()));
        store.drop_old_jobs(now)?;
        // The call under way, if any, ends before this answer (the queue's calls after it
        // are refused at their turn). A full queue is not waited for.
        if let Ok(turn) = self.gate.enter() {
            drop(turn.await);
        }
        self.reschedule(now_ms(), &Holds::default()).await?;
        Ok(cancelled)
    }
}
