//! A first-come-first-served gate: one holder at a time, the others wait in arrival order.
//!
//! A Durable Object interleaves its requests at every outbound `fetch`, so serialising the
//! backend calls of a session needs an explicit queue held across the call. This one is
//! single-threaded (Rc/RefCell, as in a Wasm isolate), bounded, and hands the turn to the
//! oldest waiter when the holder drops its `Permit`, even if a waiter gave up meanwhile.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
struct Waiter {
    granted: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

struct State {
    busy: bool,
    waiting: VecDeque<Rc<Waiter>>,
}

/// Shared by all requests of one session (clone the `Rc`).
pub struct FifoGate {
    state: RefCell<State>,
    max_waiting: usize,
}

/// The queue already holds `max_waiting` callers.
#[derive(Debug, PartialEq, Eq)]
pub struct QueueFull;

impl FifoGate {
    pub fn new(max_waiting: usize) -> Rc<Self> {
        Rc::new(Self {
            state: RefCell::new(State {
                busy: false,
                waiting: VecDeque::new(),
            }),
            max_waiting,
        })
    }

    /// Callers waiting for their turn (the one holding the gate is not counted).
    pub fn waiting(&self) -> usize {
        self.state.borrow().waiting.len()
    }

    pub fn is_busy(&self) -> bool {
        self.state.borrow().busy
    }

    /// Joins the queue, or refuses at once when it is full. Await the `Turn` for the permit.
    pub fn enter(self: &Rc<Self>) -> Result<Turn, QueueFull> {
        let waiter = Rc::new(Waiter::default());
        let mut state = self.state.borrow_mut();
        if !state.busy {
            state.busy = true;
            waiter.granted.set(true);
        } else if state.waiting.len() >= self.max_waiting {
            return Err(QueueFull);
        } else {
            state.waiting.push_back(Rc::clone(&waiter));
        }
        Ok(Turn {
            gate: Rc::clone(self),
            waiter,
            claimed: false,
        })
    }

    /// Passes the turn to the oldest waiter, or frees the gate.
    fn release(&self) {
        let next = {
            let mut state = self.state.borrow_mut();
            let next = state.waiting.pop_front();
            if next.is_none() {
                state.busy = false;
            }
            next
        };
        if let Some(waiter) = next {
            waiter.granted.set(true);
            if let Some(waker) = waiter.waker.borrow_mut().take() {
                waker.wake();
            }
        }
    }
}

/// A place in the queue; resolves to a `Permit` when it is this caller's turn.
pub struct Turn {
    gate: Rc<FifoGate>,
    waiter: Rc<Waiter>,
    claimed: bool,
}

impl Future for Turn {
    type Output = Permit;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Permit> {
        if self.waiter.granted.get() {
            self.claimed = true;
            return Poll::Ready(Permit {
                gate: Rc::clone(&self.gate),
            });
        }
        *self.waiter.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if self.claimed {
            return;
        }
        if self.waiter.granted.get() {
            // Granted but abandoned before it was used: pass the turn on.
            self.gate.release();
        } else {
            let mut state = self.gate.state.borrow_mut();
            state.waiting.retain(|w| !Rc::ptr_eq(w, &self.waiter));
        }
    }
}

/// Holds the gate; dropping it lets the next caller in.
pub struct Permit {
    gate: Rc<FifoGate>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.gate.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::LocalPool;
    use futures::task::LocalSpawnExt;

    #[test]
    fn first_caller_enters_at_once() {
        let gate = FifoGate::new(2);
        let turn = gate.enter();
        assert!(turn.as_ref().is_ok_and(|t| t.waiter.granted.get()));
        assert!(gate.is_busy());
        drop(turn);
        assert!(!gate.is_busy());
    }

    #[test]
    fn callers_are_served_one_at_a_time_in_arrival_order() {
        let gate = FifoGate::new(16);
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut pool = LocalPool::new();
        let mut releases = Vec::new();
        for n in 0..10 {
            let turn = gate.enter();
            assert!(turn.is_ok());
            let (tx, rx) = futures::channel::oneshot::channel::<()>();
            releases.push(tx);
            let log = Rc::clone(&log);
            let task = async move {
                if let Ok(turn) = turn {
                    let _permit = turn.await;
                    log.borrow_mut().push(format!("start {n}"));
                    let _ = rx.await;
                    log.borrow_mut().push(format!("end {n}"));
                }
            };
            assert!(pool.spawner().spawn_local(task).is_ok());
        }
        pool.run_until_stalled();
        assert_eq!(*log.borrow(), vec!["start 0".to_string()]);
        assert_eq!(gate.waiting(), 9);
        // Release in reverse order: the order of service must not change.
        while let Some(tx) = releases.pop() {
            let _ = tx.send(());
        }
        pool.run_until_stalled();
        let expected: Vec<String> = (0..10)
            .flat_map(|n| [format!("start {n}"), format!("end {n}")])
            .collect();
        assert_eq!(*log.borrow(), expected);
        assert!(!gate.is_busy());
    }

    #[test]
    fn a_full_queue_refuses() {
        let gate = FifoGate::new(2);
        let holder = gate.enter();
        let waiting: Vec<_> = (0..2).map(|_| gate.enter()).collect();
        assert!(waiting.iter().all(Result::is_ok));
        assert_eq!(gate.enter().err(), Some(QueueFull));
        drop(holder);
        assert_eq!(gate.waiting(), 1);
    }

    #[test]
    fn a_waiter_that_gives_up_leaves_the_queue() {
        let gate = FifoGate::new(4);
        let holder = gate.enter();
        let quitter = gate.enter();
        let stayer = gate.enter();
        assert_eq!(gate.waiting(), 2);
        drop(quitter);
        assert_eq!(gate.waiting(), 1);
        drop(holder);
        assert!(stayer.as_ref().is_ok_and(|t| t.waiter.granted.get()));
    }

    #[test]
    fn an_abandoned_grant_is_passed_on() {
        let gate = FifoGate::new(4);
        let holder = gate.enter();
        let abandoned = gate.enter();
        let next = gate.enter();
        drop(holder); // grants `abandoned`, which is then dropped unused
        drop(abandoned);
        assert!(next.as_ref().is_ok_and(|t| t.waiter.granted.get()));
        drop(next);
        assert!(!gate.is_busy());
    }
}
