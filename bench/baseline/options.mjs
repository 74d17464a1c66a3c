// Miniflare options of a floor (bench/baseline/worker.mjs) with joingate's bindings and
// compatibility date. Shared by the benchmark and the profiler.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { COMPATIBILITY_DATE } from "../../scripts/miniflare-options.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** `durable` makes each object write one SQLite row per call (the durable floor). */
export function floorOptions({ backendUrl, backendToken, durable = false }) {
  return {
    modules: true,
    modulesRoot: HERE,
    scriptPath: path.join(HERE, "worker.mjs"),
    compatibilityDate: COMPATIBILITY_DATE,
    kvNamespaces: ["JOINGATE_KV"],
    durableObjects: {
      SESSIONS: { className: "SessionObject", useSQLite: true },
      ORGS: { className: "OrgObject", useSQLite: true },
    },
    bindings: { SESSION_BACKEND_URL: backendUrl, SESSION_BACKEND_TOKEN: backendToken, DURABLE: durable ? "1" : "0" },
  };
}
