// The Worker's entry: the Rust Worker and its session Durable Object built by worker-build,
// each guarded so that a panic or an escaped exception still answers in the contract's
// envelope (see panic-guard.mjs).
import Joingate, { SessionObject as GeneratedSessionObject } from "../build/index.js";
import { withPanicGuard } from "./panic-guard.mjs";

const state = globalThis.__worker_init_state;
export const SessionObject = withPanicGuard(GeneratedSessionObject, state);
export default withPanicGuard(Joingate, state);
