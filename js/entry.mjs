// The Worker's entry: the Rust Worker built by worker-build, guarded so that a panic or an
// escaped exception still answers in the contract's envelope (see panic-guard.mjs).
import Joingate, { SessionObject } from "../build/index.js";
import { withPanicGuard } from "./panic-guard.mjs";

export { SessionObject };
export default withPanicGuard(Joingate, globalThis.__worker_init_state);
