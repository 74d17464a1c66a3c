// Miniflare options that run the built joingate as wrangler.toml describes it: the Worker
// module graph (js/entry.mjs + build/), KV, the SQLite-backed session Durable Object and the
// org rate limiter. Shared by the end-to-end tests and the benchmark.
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const COMPATIBILITY_DATE = "2026-04-20";

/**
 * `bindings` are the vars and secrets; `orgLimit` the org-wide limit's calls per minute (and
 * burst), in `[vars]` and for the per-location guard; `adminLimit` the failed admin
 * authentications per address and minute (`ADMIN_LIMITER`); `withoutOrgs` leaves out the org
 * objects (to see that their failure does not take calls down); `assets` serves public/
 * as static assets.
 * `queueRetryDelayS` shortens the webhook consumers' retry delays (tests).
 */
export function joingateOptions({ bindings, orgLimit = 100, adminLimit = 10, withoutOrgs = false, assets = false, queueRetryDelayS }) {
  const orgVars = { ORG_PER_MINUTE: String(Math.min(orgLimit, 1_000_000)), ORG_BURST: String(Math.min(orgLimit, 1_000_000)) };
  return {
    modules: true,
    modulesRoot: ROOT,
    scriptPath: path.join(ROOT, "js/entry.mjs"),
    modulesRules: [
      { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
      { type: "CompiledWasm", include: ["**/*.wasm"], fallthrough: true },
      { type: "Text", include: ["**/openapi.json"] },
    ],
    compatibilityDate: COMPATIBILITY_DATE,
    // Static assets as wrangler.toml's [assets] (a file wins, any other path is the
    // Worker's), when asked for: Miniflare routes them through two JS workers in front of
    // the Worker, which cost about 1 ms of CPU per request and reset the connection of a
    // request whose body the Worker answered without reading (a 401 before a large
    // upload). Cloudflare does neither, so only the tests of the page itself have them.
    assets: !assets ? undefined : {
      directory: path.join(ROOT, "public"),
      routerConfig: { has_user_worker: true },
      assetConfig: { html_handling: "auto-trailing-slash", not_found_handling: "none" },
    },
    kvNamespaces: ["JOINGATE_KV"],
    durableObjects: {
      SESSIONS: { className: "SessionObject", useSQLite: true },
      ...(withoutOrgs ? {} : { ORGS: { className: "OrgObject", useSQLite: true } }),
    },
    // The webhook deliveries' queue: producer and consumer are this Worker, as is the
    // consumer of its dead-letter queue (retries and delays as in wrangler.toml).
    queueProducers: { WEBHOOKS: "joingate-webhooks" },
    queueConsumers: {
      "joingate-webhooks": {
        maxBatchSize: 1,
        maxBatchTimeout: 1,
        maxRetries: 5,
        retryDelay: queueRetryDelayS ?? 30,
        deadLetterQueue: "joingate-webhooks-dlq",
      },
      "joingate-webhooks-dlq": { maxBatchSize: 1, maxBatchTimeout: 1, maxRetries: 5, retryDelay: queueRetryDelayS ?? 60 },
    },
    ratelimits: { ORG_LIMITER: { simple: { limit: orgLimit, period: 60 } }, ADMIN_LIMITER: { simple: { limit: adminLimit, period: 60 } } },
    bindings: { ...orgVars, ...bindings },
  };
}
