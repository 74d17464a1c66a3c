// The Worker's entry: the Rust Worker and its Durable Objects built by worker-build,
// each guarded so that a panic or an escaped exception still answers in the contract's
// envelope (see panic-guard.mjs).
import Joingate, { SessionObject as GeneratedSessionObject, OrgObject as GeneratedOrgObject } from "../build/index.js";
import { withPanicGuard } from "./panic-guard.mjs";
import OPENAPI from "../docs/openapi.json";

// GET /v1/openapi.json serves this text (see openapi_document in src/edge/worker.rs): bundled
// here as a Text module, it costs the wasm nothing.
globalThis.__joingate_openapi = OPENAPI;

const state = globalThis.__worker_init_state;
export const SessionObject = withPanicGuard(GeneratedSessionObject, state);
export const OrgObject = withPanicGuard(GeneratedOrgObject, state);
export default withPanicGuard(Joingate, state);
