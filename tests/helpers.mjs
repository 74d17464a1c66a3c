// Shared test harness: the built Worker in workerd through Miniflare (real KV, SQLite-backed
// Durable Objects and the rate limiting binding), in front of the session backend simulator.
import path from "node:path";
import assert from "node:assert/strict";
import { Miniflare } from "miniflare";
import { DEMO } from "../sim/catalogue.mjs";
import { startSimulator, SIM_CREDENTIALS, wuzapiToken } from "../sim/simulator.mjs";
import { joingateOptions, ROOT } from "../scripts/miniflare-options.mjs";

export { ROOT };
export const ADMIN_TOKEN = "test-admin-token-0123456789abcdef-v12";
export const BASE = "http://joingate.test";
/** A test CREDENTIALS_KEY: 32 bytes, base64. */
export const CREDENTIALS_KEY = Buffer.alloc(32, 7).toString("base64");
/**
 * The backend faults every route is tested with (a server down, slow, answering garbage or
 * 5xx): the simulator's fault mode, and joingate's status and code for it.
 */
export const BACKEND_FAULTS = [
  ["garbage", 502, "backend_error"],
  ["status500", 502, "backend_error"],
  ["status503", 502, "backend_error"],
  ["hang", 504, "backend_timeout"],
  ["drop", 503, "backend_unavailable"],
];

/** The server kinds of contract section 9. */
export const KINDS = ["joingate", "waha", "evolution", "wuzapi", "gowa"];

/**
 * The pace the suite was written at (contract v1.1): joins 4 a minute, burst 4; join jobs
 * 5 s to 24 h apart, 20 s by default, any time of day, no breaks. The deployment's defaults
 * (v1.2: 1 a minute, burst 2; 60 s minimum, 180 s default; 08:00-21:00; breaks) would
 * make most tests wait for minutes; the tests of those defaults set them back (an empty
 * string is an unset var).
 */
export const TEST_PACE = {
  JOIN_PER_MINUTE: "4",
  JOIN_BURST: "4",
  JOB_MIN_INTERVAL_S: "5",
  JOB_INTERVAL_S: "20",
  JOB_WINDOW: "off",
  JOB_BREAK_S: "0-0",
  // Section 13's caps and cooldowns out of the way (tests/protection.test.mjs sets its own):
  // the largest caps there are, and a strike's rest shorter than the simulator's
  // Retry-After, which then wins as it did before; a restriction without a stated end, 24 h.
  PROTECTION_TIERS: JSON.stringify([{ from_days: 0, per_day: 1000, per_hour: 200 }]),
  COOLDOWN_S: "1,1,1",
  RESTRICTED_COOLDOWN_S: "86400",
};

/**
 * Starts the simulator and joingate. `vars` override plain bindings (TEST_PACE first); `orgLimit` sets the
 * org-wide limiter; `persist` is a directory for KV and Durable Object state (restart tests);
 * `serve` listens on a port of 127.0.0.1 as well, at `app.url`; `assets` serves public/ as
 * static assets, as wrangler.toml does; `adminLimit` is `ADMIN_LIMITER`'s failed admin
 * authentications per address and minute (high by default, so that only the tests of the
 * throttle meet it). `queueRetryDelayS` shortens the webhook consumers' retry delays.
 */
export async function startJoingate({ vars = {}, orgLimit = 100, adminLimit = 10_000, persist, simulator, withoutOrgs = false, serve = false, assets = false, queueRetryDelayS } = {}) {
  const sim = simulator ?? (await startSimulator({ port: 0, token: "backend-secret" }));
  const logs = [];
  const mf = new Miniflare({
    // The Worker's log lines are kept for assertions (e.g. no secret is ever logged).
    handleRuntimeStdio(stdout, stderr) {
      for (const stream of [stdout, stderr]) {
        let rest = "";
        stream.on("data", (chunk) => {
          const lines = (rest + chunk.toString()).split("\n");
          rest = lines.pop();
          logs.push(...lines.filter(Boolean));
        });
      }
    },
    ...joingateOptions({
      orgLimit,
      adminLimit,
      withoutOrgs,
      assets,
      queueRetryDelayS,
      bindings: {
        SESSION_BACKEND_URL: sim.url,
        SESSION_BACKEND_TOKEN: "backend-secret",
        ADMIN_TOKEN,
        BACKEND_TIMEOUT_MS: "1500",
        CREDENTIALS_KEY,
        ...TEST_PACE,
        ...vars,
      },
    }),
    ...(persist ? { kvPersist: path.join(persist, "kv"), durableObjectsPersist: path.join(persist, "do") } : {}),
    // A real port (for a browser or a command line), not only dispatchFetch.
    ...(serve ? { host: "127.0.0.1", port: 0 } : {}),
  });
  const url = await mf.ready;
  const app = new App(mf, sim, logs);
  if (serve) app.url = url.origin;
  return app;
}

export class App {
  constructor(mf, sim, logs) {
    this.mf = mf;
    this.sim = sim;
    this.logs = logs;
  }

  /** A request to joingate; `json` is sent as a JSON body with its content type. */
  async request(method, pathname, { token, json, body, headers = {} } = {}) {
    const init = { method, headers: { ...headers } };
    if (token) init.headers.Authorization = `Bearer ${token}`;
    if (json !== undefined) {
      init.body = JSON.stringify(json);
      init.headers["Content-Type"] ??= "application/json";
    } else if (body !== undefined) {
      init.body = body;
    }
    const response = await this.mf.dispatchFetch(`${BASE}${pathname}`, init);
    const text = await response.text();
    let parsed;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return { status: response.status, headers: response.headers, text, body: parsed };
  }

  admin(method, pathname, json) {
    return this.request(method, pathname, { token: ADMIN_TOKEN, json });
  }

  /** Registers a session for an org, optionally with limit overrides. */
  async session(sid, org = "acme", limits) {
    const res = await this.admin("PUT", `/v1/admin/sessions/${sid}`, limits ? { org, limits } : { org });
    assert.equal(res.status, 200, res.text);
    return res.body.data;
  }

  /**
   * Registers a new session of org `acme` with a unique id (`prefix-N`), so that rate
   * limits, memberships and recorded calls never leak from one test into another.
   */
  async freshSession(prefix, limits) {
    this.sessionCount = (this.sessionCount ?? 0) + 1;
    const sid = `${prefix}-${this.sessionCount}`;
    await this.session(sid, "acme", limits);
    return sid;
  }

  /**
   * The `backend` an operator would register for session `sid` of `kind` on this simulator:
   * its front end's URL and credential (gowa: the device is the session id).
   */
  backendFor(kind, sid, overrides = {}) {
    const url = kind === "joingate" ? this.sim.url : this.sim.urls[kind];
    const defaults = {
      joingate: { credential: "backend-secret" },
      waha: { credential: SIM_CREDENTIALS.waha },
      evolution: { credential: SIM_CREDENTIALS.evolution },
      wuzapi: { credential: wuzapiToken(sid) },
      gowa: { credential: SIM_CREDENTIALS.gowa, remote_session: sid },
    }[kind];
    return { kind, url, ...defaults, ...overrides };
  }

  /**
   * Registers a new session of org `acme` with its own backend of `kind`, named
   * `prefix-kind-N` (the prefix can carry the simulator's naming conventions: `offline`,
   * `ghost`, `gows`, `legacy`).
   */
  async kindSession(kind, prefix, { limits, backend = {} } = {}) {
    this.sessionCount = (this.sessionCount ?? 0) + 1;
    const sid = `${prefix}-${kind}-${this.sessionCount}`;
    const body = { org: "acme", backend: this.backendFor(kind, sid, backend), ...(limits ? { limits } : {}) };
    const res = await this.admin("PUT", `/v1/admin/sessions/${sid}`, body);
    assert.equal(res.status, 200, res.text);
    return sid;
  }

  /** Mints a token and returns its secret. */
  async token(org = "acme", capabilities = ["join", "read", "manage"], extra = {}) {
    const res = await this.admin("POST", "/v1/admin/tokens", { org, capabilities, ...extra });
    assert.equal(res.status, 201, res.text);
    return res.body.data.token;
  }

  join(sid, token, json, headers) {
    return this.request("POST", `/v1/sessions/${sid}/groups/join`, { token, json, headers });
  }

  async close() {
    await this.mf.dispose();
    await this.sim.close();
  }
}

/** Checks the envelope and headers of contract section 1 on any answer. */
export function assertEnvelope(res, { status, code } = {}) {
  if (status !== undefined) assert.equal(res.status, status, res.text);
  assert.equal(res.headers.get("content-type"), "application/json; charset=utf-8");
  assert.equal(res.headers.get("cache-control"), "no-store");
  const requestId = res.headers.get("x-request-id");
  assert.match(requestId ?? "", /^[A-Za-z0-9._:-]{1,128}$/);
  assert.ok(res.body, `body is JSON: ${res.text}`);
  if (res.body.success) {
    assert.equal(code, undefined, `expected error ${code}, got success`);
    assert.ok("data" in res.body);
    assert.equal(res.body.request_id, requestId);
  } else {
    assert.equal(res.body.success, false);
    assert.equal(typeof res.body.error.message, "string");
    assert.match(res.body.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    if (code !== undefined) assert.equal(res.body.error.code, code, res.text);
    if (res.status === 429 || res.status === 503) {
      assert.match(res.headers.get("retry-after") ?? "", /^[1-9]\d*$/, "Retry-After on 429/503");
    }
    if (!res.headers.get("idempotent-replayed")) assert.equal(res.body.request_id, requestId);
  }
  return res.body;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A request over a real socket with exactly the given headers (Miniflare's dispatchFetch
 * drops empty header values, and some tests need them on the wire).
 */
export async function rawRequest(app, method, pathname, { headers = {}, body } = {}) {
  const { request } = await import("node:http");
  const base = await app.mf.ready;
  return new Promise((resolve, reject) => {
    const req = request(new URL(pathname, base), { method, headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => (text += chunk));
      res.on("end", () => {
        let parsed;
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = undefined;
        }
        resolve({ status: res.statusCode, headers: new Headers(res.headers), text, body: parsed });
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** Asserts a 400 validation_error naming `field` (a string or a RegExp). */
export function assertInvalid(res, field) {
  const body = assertEnvelope(res, { status: 400, code: "validation_error" });
  const given = body.error.details?.field;
  if (field instanceof RegExp) assert.match(given ?? "", field, res.text);
  else assert.equal(given, field, res.text);
}

/** The error part of an envelope, without what legitimately differs per request. */
export const errorShape = (res) => ({ status: res.status, success: res.body?.success, error: res.body?.error });

/** One character of a token body changed to another base62 character. */
export function flipOne(token, index = 12) {
  const c = token[index];
  const replacement = c === "a" ? "b" : "a";
  return token.slice(0, index) + replacement + token.slice(index + 1);
}

/**
 * Waits for the next wall-clock minute unless `needMs` are left in this one: the rate
 * limiting binding (Miniflare's) counts in windows aligned to the minute.
 */
export async function freshWindow(needMs = 15_000) {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < needMs) await sleep(left + 50);
}

/** Waits until `check()` is truthy and returns its value; fails naming `what` after the deadline. */
export async function eventually(check, what = "the condition", timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(150);
  }
}

/**
 * A webhook receiver on loopback: each path answers as its plan says (a status, 302 with a
 * Location, "hold": never answer, or "stream": 200 and a body that never ends; 204 when no
 * plan names it); every request is recorded with its path, headers, body and time.
 */
export async function startReceiver() {
  const { createServer } = await import("node:http");
  const received = [];
  const plans = new Map(); // path -> list of answers, the last one repeating
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const path = new URL(req.url, "http://x").pathname;
      received.push({ path, headers: req.headers, body, at: Date.now() });
      const plan = plans.get(path) ?? [204];
      const answer = plan.length > 1 ? plan.shift() : plan[0];
      if (answer === "hold") return;
      if (answer === "stream") {
        res.writeHead(200, { "Content-Type": "text/plain" });
        res.write("the first part of a body that never ends\n");
        return;
      }
      if (answer === 302) {
        res.writeHead(302, { Location: "/elsewhere" });
        return res.end();
      }
      res.writeHead(answer);
      res.end();
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    base: `http://127.0.0.1:${server.address().port}`,
    received,
    plan: (path, answers) => plans.set(path, [...answers]),
    at: (path) => received.filter((r) => r.path === path),
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
}

// The simulator's calls log as operations: `op` is "preview" (an invite preview) or "join"
// (by code or by invite message), or the route's name for any other call; `code` is the
// invite code the call carried (the simulator records it on every kind).
const ROUTE_OPS = { invite_preview: "preview", join: "join", join_by_message: "join" };
export async function backendOps(app, sid) {
  const res = await fetch(`${app.sim.url}/__sim/calls?session=${encodeURIComponent(sid)}`);
  if (res.status !== 200) throw new Error(`the simulator's calls log answered ${res.status}`);
  const { calls } = await res.json();
  return calls.map((c) => ({ op: ROUTE_OPS[c.route] ?? c.route, code: c.code }));
}

/** Limits no test of a feature other than the limits runs into. */
export const FAST_LIMITS = {
  join: { per_minute: 6000, burst: 1000 },
  manage: { per_minute: 6000, burst: 1000 },
  read: { per_minute: 6000, burst: 1000 },
};

/** A catalogue group of the simulator by its DEMO name (failing clearly on a name it lacks). */
export function fixture(name) {
  const entry = DEMO[name];
  if (!entry) throw new Error(`sim/catalogue.mjs has no DEMO.${name}`);
  return entry;
}

