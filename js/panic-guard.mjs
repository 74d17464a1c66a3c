// Makes Worker and Durable Object classes answer `internal_error` in the envelope when their
// fetch throws or when the Rust code panics.
//
// A Rust panic inside an async handler never settles the handler's promise: the runtime
// would cancel the request as hung (or, for a Durable Object, leave its caller waiting).
// The worker crate's panic hook sets `criticalError` on the init state object (the shim
// then re-initialises the Wasm instance for the next request), so the guard watches that
// flag and answers every request in flight at once.
import { internalErrorResponse } from "./internal-error.mjs";

const watchers = new WeakMap();

/** One set of waiters per state object, notified when `criticalError` becomes true. */
function panicWaiters(state) {
  if (!state) return new Set();
  let waiters = watchers.get(state);
  if (!waiters) {
    waiters = new Set();
    watchers.set(state, waiters);
    let critical = state.criticalError;
    Object.defineProperty(state, "criticalError", {
      configurable: true,
      get: () => critical,
      set(value) {
        critical = value;
        if (value) for (const notify of waiters) notify();
      },
    });
  }
  return waiters;
}

export function withPanicGuard(Base, state) {
  const waiters = panicWaiters(state);
  return class extends Base {
    async fetch(request) {
      let notify;
      const panicked = new Promise((_, reject) => {
        notify = () => reject(new Error("Rust panic"));
        waiters.add(notify);
      });
      try {
        return await Promise.race([super.fetch(request), panicked]);
      } catch (error) {
        return internalErrorResponse(request, error);
      } finally {
        waiters.delete(notify);
      }
    }

    // A Durable Object's alarm: a panic rejects it (the runtime then retries the alarm)
    // instead of leaving it hanging. Only classes that have an alarm get this.
    async alarm(...args) {
      let notify;
      const panicked = new Promise((_, reject) => {
        notify = () => reject(new Error("Rust panic"));
        waiters.add(notify);
      });
      try {
        return await Promise.race([super.alarm(...args), panicked]);
      } finally {
        waiters.delete(notify);
      }
    }
  };
}
