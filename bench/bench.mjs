#!/usr/bin/env node
// Benchmark: joingate against the two floors of its topology (docs/bench.md).
//
// Builds the release Worker (unless --no-build), starts the session backend simulator, a
// JWKS server and three workerd runtimes through Miniflare, all on real HTTP on 127.0.0.1:
// joingate (exactly as tests/helpers.mjs starts it, limits raised), the *no-logic floor*
// (bench/baseline/: the same bindings and I/O hops, nothing else) and the *durable floor*
// (the same Worker, each object writing one SQLite row per call). Load comes from
// autocannon in a separate child process (this file, run with --load-child). Each scenario
// runs A/B/C/A/B/C (joingate, floor, durable, ...). Prints a table (throughput, latency,
// workerd CPU per request, ratios to both floors) and writes bench/results.json.
//
//   npm run bench                      # build, then benchmark
//   npm run bench -- --no-build        # use the existing build/
//   npm run bench -- --duration 8 --rounds 3 --connections 16
//
// Only 127.0.0.1 is ever a target; every load run is bounded in time.

import { spawn, spawnSync, execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import http from "node:http";
import { joingateOptions as sharedJoingateOptions } from "../scripts/miniflare-options.mjs";
import { floorOptions } from "./baseline/options.mjs";
import { SIM_CREDENTIALS, wuzapiToken } from "../sim/credentials.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..");
const require = createRequire(import.meta.url);

// ---------------------------------------------------------------------------------------
// The load child: `node bench/bench.mjs --load-child '<json>'` runs one autocannon load and
// prints one JSON line with its own latency figures (sub-millisecond, every status counted).

async function loadChild(cfg) {
  const autocannon = require("autocannon");
  const n = Math.max(cfg.paths.length, cfg.bodies?.length ?? 1);
  let next = 0;
  const requests = [
    {
      method: cfg.method,
      headers: cfg.headers,
      setupRequest(req) {
        const k = next++ % n;
        req.path = cfg.paths[k % cfg.paths.length];
        if (cfg.bodies) req.body = cfg.bodies[k % cfg.bodies.length];
        return req;
      },
    },
  ];
  let latencies = new Float64Array(1 << 16);
  let count = 0;
  const statuses = {};
  const started = performance.now();
  let finished = started;
  const result = await new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: cfg.url,
        connections: cfg.connections,
        duration: cfg.duration,
        timeout: 10,
        requests,
      },
      (error, res) => (error ? reject(error) : resolve(res)),
    );
    instance.on("response", (_client, statusCode, _bytes, responseTime) => {
      if (count === latencies.length) {
        const bigger = new Float64Array(latencies.length * 2);
        bigger.set(latencies);
        latencies = bigger;
      }
      latencies[count++] = responseTime;
      statuses[statusCode] = (statuses[statusCode] ?? 0) + 1;
      finished = performance.now();
    });
  });
  const sorted = latencies.subarray(0, count).sort();
  const pct = (p) => (count ? sorted[Math.min(count - 1, Math.ceil(p * count) - 1)] : null);
  let sum = 0;
  for (let i = 0; i < count; i++) sum += sorted[i];
  const seconds = (finished - started) / 1000;
  const unexpected = Object.entries(statuses)
    .filter(([status]) => Number(status) !== cfg.expect)
    .reduce((acc, [, c]) => acc + c, 0);
  process.stdout.write(
    JSON.stringify({
      requests: count,
      seconds,
      rps: count / seconds,
      p50_ms: pct(0.5),
      p99_ms: pct(0.99),
      mean_ms: count ? sum / count : null,
      max_ms: count ? sorted[count - 1] : null,
      statuses,
      errors: unexpected + result.errors + result.timeouts,
      socket_errors: result.errors,
      timeouts: result.timeouts,
    }) + "\n",
  );
}

// ---------------------------------------------------------------------------------------
// Options

function parseArgs(argv) {
  const opts = { build: true, duration: 5, rounds: 2, connections: 10, startupSamples: 2, only: null };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v <= 0) throw new Error(`${arg} needs a positive number`);
      return v;
    };
    if (arg === "--no-build") opts.build = false;
    else if (arg === "--duration") opts.duration = value();
    else if (arg === "--rounds") opts.rounds = Math.round(value());
    else if (arg === "--connections") opts.connections = Math.round(value());
    else if (arg === "--startup-samples") opts.startupSamples = Math.round(value());
    else if (arg === "--only") opts.only = new Set(String(argv[++i] ?? "").split(","));
    else if (arg === "--help" || arg === "-h") {
      console.log(
        "usage: node bench/bench.mjs [--no-build] [--duration S=5] [--rounds N=2] [--connections N=10] [--startup-samples N=2] [--only a,c1,...]",
      );
      process.exit(0);
    } else throw new Error(`unknown option ${arg}`);
  }
  return opts;
}

// ---------------------------------------------------------------------------------------
// Constants of the setup

const ADMIN_TOKEN = "bench-admin-token-0123456789abcdef";
const BACKEND_TOKEN = "backend-secret";
const ORG = "bench";
const SESSIONS = Array.from({ length: 200 }, (_, i) => `s${String(i).padStart(3, "0")}`);
const OPEN_CODE = "OpenGroupDemo000000001"; // sim catalogue `open`: 200 joined/already_member
const MALFORMED_INVITE = "https://chat.whatsapp.com.evil.example/NotAnInvite"; // API.md section 5
const HOT_DELAY_MS = 5;
const RAISED = { per_minute: 6000, burst: 1000 };
const LIMITS = { join: RAISED, manage: RAISED, read: RAISED };
const ORG_LIMIT = 1e9;
const QUEUE_MAX = "1000";
const CREDENTIALS_KEY = Buffer.alloc(32, 7).toString("base64");
const KINDS = ["waha", "evolution", "wuzapi", "gowa"];
const KIND_SESSIONS = Object.fromEntries(
  KINDS.map((kind) => [kind, Array.from({ length: 50 }, (_, i) => `k-${kind}-${String(i).padStart(2, "0")}`)]),
);
const JWT_ISSUER = "https://id.bench.test";
const JWT_AUDIENCE = "joingate-bench";
/** The three runtimes, in the order each round runs them. */
const TARGETS = ["joingate", "floor", "durable"];

// ---------------------------------------------------------------------------------------
// Processes: the simulator, workerd PIDs, /proc readings

function startSimulatorProcess() {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [path.join(ROOT, "sim/simulator.mjs"), "--port", "0", "--host", "127.0.0.1", "--token", BACKEND_TOKEN],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    let out = "";
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const match = out.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (match) resolve({ child, url: match[1] });
    });
    child.once("exit", (code) => reject(new Error(`simulator exited (${code}) before listening`)));
  });
}

async function simControl(sim, method, route, body) {
  const res = await fetch(`${sim.url}${route}`, {
    method,
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!res.ok) throw new Error(`simulator ${method} ${route}: ${res.status} ${await res.text()}`);
  return res.json();
}

async function simPrepare(sim, latencyMs) {
  await simControl(sim, "POST", "/__sim/reset");
  await simControl(sim, "POST", "/__sim/config", { latency_ms: latencyMs });
}

function readProcStat(pid) {
  // Fields after "(comm)": state ppid ... utime(14) stime(15) in clock ticks.
  const text = readFileSync(`/proc/${pid}/stat`, "utf8");
  const close = text.lastIndexOf(")");
  const comm = text.slice(text.indexOf("(") + 1, close);
  const rest = text.slice(close + 2).split(" ");
  return { comm, ppid: Number(rest[1]), utime: Number(rest[11]), stime: Number(rest[12]) };
}

/** workerd processes descended from this process. */
function workerdPids() {
  const parents = new Map();
  const comms = new Map();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readProcStat(name);
      parents.set(Number(name), stat.ppid);
      comms.set(Number(name), stat.comm);
    } catch {
      // gone meanwhile
    }
  }
  const descends = (pid) => {
    for (let p = parents.get(pid); p && p > 1; p = parents.get(p)) if (p === process.pid) return true;
    return false;
  };
  return [...comms].filter(([pid, comm]) => comm.startsWith("workerd") && descends(pid)).map(([pid]) => pid);
}

/** The filesystem type that holds `dir` (the longest mount point of /proc/mounts above it). */
function filesystemOf(dir) {
  try {
    let best = { mount: "", type: null };
    for (const line of readFileSync("/proc/mounts", "utf8").split("\n")) {
      const [, mount, type] = line.split(" ");
      if (!mount) continue;
      const inside = dir === mount || dir.startsWith(mount.endsWith("/") ? mount : `${mount}/`);
      if (inside && mount.length > best.mount.length) best = { mount, type };
    }
    return best.type && `${best.type} (${best.mount})`;
  } catch {
    return null;
  }
}

const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

function cpuMs(pid) {
  try {
    const { utime, stime } = readProcStat(pid);
    return ((utime + stime) * 1000) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/**
 * The process's CPU time in ms at nanosecond resolution: the sum over its threads of
 * /proc/PID/task/TID/schedstat's first field (time on a CPU). A thread that has exited is no
 * longer counted, so this is for short windows over long-lived threads (workerd's); the
 * caller compares it with cpuMs(), which counts every thread, in 10 ms ticks.
 */
function cpuMsFine(pid) {
  try {
    let ns = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
      } catch {
        // the thread ended meanwhile
      }
    }
    return ns / 1e6;
  } catch {
    return NaN;
  }
}

function memKb(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const field = (name) => Number(status.match(new RegExp(`^${name}:\\s+(\\d+) kB`, "m"))?.[1] ?? NaN);
    return { rss_kb: field("VmRSS"), hwm_kb: field("VmHWM") };
  } catch {
    return { rss_kb: NaN, hwm_kb: NaN };
  }
}

// ---------------------------------------------------------------------------------------
// The two Workers in Miniflare

function drainTo(sink) {
  return (stdout, stderr) => {
    for (const stream of [stdout, stderr]) {
      let rest = "";
      stream.on("data", (chunk) => {
        if (!sink) return;
        const lines = (rest + chunk.toString()).split("\n");
        rest = lines.pop();
        for (const line of lines) sink(line);
      });
    }
  };
}

/** joingate with tests/helpers.mjs's options, limits raised, served on 127.0.0.1. */
function joingateOptions(simUrl, sink, jwksUrl) {
  return {
    host: "127.0.0.1",
    port: 0,
    handleRuntimeStdio: drainTo(sink),
    ...sharedJoingateOptions({
      orgLimit: ORG_LIMIT,
      // No static assets (the default): Cloudflare routes them before the Worker and does
      // not bill that to it; in Miniflare the routing is two JS workers in the same process
      // (about 1 ms of CPU per request here). See docs/bench.md.
      bindings: {
        SESSION_BACKEND_URL: simUrl,
        SESSION_BACKEND_TOKEN: BACKEND_TOKEN,
        ADMIN_TOKEN,
        BACKEND_TIMEOUT_MS: "1500",
        QUEUE_MAX,
        CREDENTIALS_KEY,
        // The job measurement's pace (JOB_INTERVAL_S apart, any time of day, no breaks): the
        // v1.2 defaults (60 s minimum, 08:00-21:00, breaks) would refuse or stretch it.
        JOB_MIN_INTERVAL_S: String(JOB_INTERVAL_S),
        JOB_WINDOW: "off",
        JOB_BREAK_S: "0-0",
        // Section 13's largest caps (a new number's 2 an hour would hold the jobs' items for
        // an hour). The hot-session join scenarios still meet the hour cap of 200 per
        // session: their figures past it are of 429 answers (README, "Size and speed").
        PROTECTION_TIERS: JSON.stringify([{ from_days: 0, per_day: 1000, per_hour: 200 }]),
        ...(jwksUrl ? { JWT_ISSUER, JWT_AUDIENCE, JWT_JWKS_URL: jwksUrl } : {}),
      },
    }),
  };
}

/** A floor: the same bindings and runtime settings, bench/baseline/worker.mjs; `durable`
 * makes each object write one SQLite row per call. */
function baselineOptions(simUrl, durable = false) {
  return {
    host: "127.0.0.1",
    port: 0,
    handleRuntimeStdio: drainTo(null),
    ...floorOptions({ backendUrl: simUrl, backendToken: BACKEND_TOKEN, durable }),
  };
}

async function startTarget(Miniflare, name, options) {
  const before = new Set(workerdPids());
  const mf = new Miniflare(options);
  const url = String(await mf.ready).replace(/\/$/, "");
  const pids = workerdPids().filter((pid) => !before.has(pid));
  if (pids.length !== 1) console.warn(`[bench] ${name}: expected one new workerd process, found ${pids.length}`);
  return { name, mf, url, pid: pids[0] };
}

/** Time from `new Miniflare()` (a fresh workerd process) to the first answered /healthz. */
async function measureStartup(Miniflare, options) {
  const t0 = performance.now();
  const mf = new Miniflare(options);
  try {
    const url = String(await mf.ready).replace(/\/$/, "");
    const ready = performance.now() - t0;
    for (;;) {
      try {
        const res = await fetch(`${url}/healthz`);
        await res.arrayBuffer();
        if (res.status === 200) break;
      } catch {
        // not yet
      }
      if (performance.now() - t0 > 30_000) throw new Error("no /healthz answer within 30 s");
      await new Promise((r) => setTimeout(r, 2));
    }
    return { ready_ms: ready, first_answer_ms: performance.now() - t0 };
  } finally {
    await mf.dispose();
  }
}

/** A JWKS server with one RS256 key; resolves { url, sign, close }. */
async function startJwks() {
  const { SignJWT, exportJWK, generateKeyPair } = await import("jose");
  const { publicKey, privateKey } = await generateKeyPair("RS256", { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: "bench-1", alg: "RS256", use: "sig" };
  const server = http.createServer((req, res) => {
    res.writeHead(200, { "Content-Type": "application/json", "Cache-Control": "public, max-age=3600" });
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const now = Math.floor(Date.now() / 1000);
  const sign = () =>
    new SignJWT({ iss: JWT_ISSUER, aud: JWT_AUDIENCE, sub: "bench-person", org: ORG, role: "member", iat: now, exp: now + 7200 })
      .setProtectedHeader({ alg: "RS256", kid: "bench-1" })
      .sign(privateKey);
  return {
    url: `http://127.0.0.1:${server.address().port}/.well-known/jwks.json`,
    sign,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
}

// ---------------------------------------------------------------------------------------
// Seeding

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

function base62(bytes, width) {
  const number = [...bytes];
  const digits = [];
  for (let w = 0; w < width; w++) {
    let remainder = 0;
    for (let i = 0; i < number.length; i++) {
      const acc = remainder * 256 + number[i];
      number[i] = Math.floor(acc / 62);
      remainder = acc % 62;
    }
    digits.push(BASE62[remainder]);
  }
  return digits.reverse().join("");
}

const tokenChecksum = (head) => base62(createHash("sha256").update(head).digest().subarray(0, 4), 6);

/** A token of joingate's shape with a valid checksum that no KV holds (src/core/token.rs). */
function unknownWellFormedToken() {
  const head = `jg_${base62(randomBytes(24), 33)}`;
  return head + tokenChecksum(head);
}

async function call(url, method, pathname, { token, json } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (json !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(`${url}${pathname}`, {
    method,
    headers,
    body: json === undefined ? undefined : JSON.stringify(json),
  });
  const text = await res.text();
  return { status: res.status, text };
}

async function pool(items, width, fn) {
  let i = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (i < items.length) await fn(items[i++]);
    }),
  );
}

/** The backend a session of `kind` has on the simulator's front end for that kind. */
function backendFor(kind, simUrl, sid) {
  const url = `${simUrl}/${kind}`;
  return {
    waha: { kind, url, credential: SIM_CREDENTIALS.waha },
    evolution: { kind, url, credential: SIM_CREDENTIALS.evolution },
    wuzapi: { kind, url, credential: wuzapiToken(sid) },
    gowa: { kind, url, credential: SIM_CREDENTIALS.gowa, remote_session: sid },
  }[kind];
}

async function seed(joingate, floors, sessionIds, simUrl) {
  const minted = await call(joingate.url, "POST", "/v1/admin/tokens", {
    token: ADMIN_TOKEN,
    json: { org: ORG, capabilities: ["join", "read"], label: "bench" },
  });
  if (minted.status !== 201) throw new Error(`minting a token failed: ${minted.status} ${minted.text}`);
  const token = JSON.parse(minted.text).data.token;
  if (tokenChecksum(token.slice(0, -6)) !== token.slice(-6)) {
    throw new Error("the bench's token checksum differs from joingate's: the 401 scenario would not reach KV");
  }
  await pool(sessionIds, 8, async (sid) => {
    const res = await call(joingate.url, "PUT", `/v1/admin/sessions/${sid}`, {
      token: ADMIN_TOKEN,
      json: { org: ORG, limits: LIMITS },
    });
    if (res.status !== 200) throw new Error(`PUT session ${sid}: ${res.status} ${res.text}`);
  });
  // Sessions on each server kind's front end: only joingate has them (a floor speaks only
  // the native protocol), so a kind's join is compared with the floors' native join.
  await pool(Object.entries(KIND_SESSIONS).flatMap(([kind, sids]) => sids.map((sid) => [kind, sid])), 8, async ([kind, sid]) => {
    const res = await call(joingate.url, "PUT", `/v1/admin/sessions/${sid}`, {
      token: ADMIN_TOKEN,
      json: { org: ORG, limits: LIMITS, backend: backendFor(kind, simUrl, sid) },
    });
    if (res.status !== 200) throw new Error(`PUT session ${sid}: ${res.status} ${res.text}`);
  });
  // The floors' KV gets the very records joingate wrote (same keys, same bytes).
  const from = await joingate.mf.getKVNamespace("JOINGATE_KV");
  let copied = 0;
  for (const floor of floors) {
    const to = await floor.mf.getKVNamespace("JOINGATE_KV");
    let cursor;
    do {
      const page = await from.list({ cursor });
      for (const { name } of page.keys) {
        await to.put(name, await from.get(name));
        copied++;
      }
      cursor = page.list_complete ? undefined : page.cursor;
    } while (cursor);
  }
  return { token, copied };
}

// ---------------------------------------------------------------------------------------
// Scenarios

const joinPath = (sid) => `/v1/sessions/${sid}/groups/join`;
const previewPath = (sid) => `/v1/sessions/${sid}/invites/${OPEN_CODE}`;

function scenarios(token, unknownToken, connections, hotSessions, jwt) {
  const json = { "Content-Type": "application/json" };
  const auth = { Authorization: `Bearer ${token}` };
  const joinBody = JSON.stringify({ invite: OPEN_CODE });
  return [
    {
      id: "a",
      name: "rejected at the edge: malformed invite -> 400",
      method: "POST",
      paths: SESSIONS.map(joinPath),
      bodies: [JSON.stringify({ invite: MALFORMED_INVITE })],
      headers: { ...auth, ...json, "X-Baseline-Stop": "edge" },
      expect: 400,
      connections,
      latency: 0,
    },
    {
      // A GET: a POST body that the server never reads makes it close the connection.
      id: "b",
      name: "unknown token -> 401 (GET preview)",
      method: "GET",
      paths: SESSIONS.map(previewPath),
      bodies: null,
      headers: { Authorization: `Bearer ${unknownToken}` },
      expect: 401,
      connections,
      latency: 0,
    },
    {
      id: "c",
      name: "joins over 200 sessions",
      method: "POST",
      paths: SESSIONS.map(joinPath),
      bodies: [joinBody],
      headers: { ...auth, ...json },
      expect: 200,
      connections,
      latency: 0,
    },
    {
      id: "c1",
      name: "joins over 200 sessions, 1 connection",
      method: "POST",
      paths: SESSIONS.map(joinPath),
      bodies: [joinBody],
      headers: { ...auth, ...json },
      expect: 200,
      connections: 1,
      latency: 0,
    },
    // wuzapi answers a repeated join with an empty 500 (joingate: backend_error), so its
    // adapter is measured on previews, the first stage of its join.
    ...KINDS.map((kind) =>
      kind === "wuzapi"
        ? {
            id: `k-${kind}`,
            name: `previews on ${kind} (adapter; floors: native preview)`,
            method: "GET",
            paths: KIND_SESSIONS[kind].map(previewPath),
            floorPaths: SESSIONS.map(previewPath),
            bodies: null,
            headers: { ...auth },
            expect: 200,
            connections,
            latency: 0,
          }
        : {
            id: `k-${kind}`,
            name: `joins on ${kind} (adapter; floors: native join)`,
            method: "POST",
            paths: KIND_SESSIONS[kind].map(joinPath),
            floorPaths: SESSIONS.map(joinPath),
            bodies: [joinBody],
            headers: { ...auth, ...json },
            expect: 200,
            connections,
            latency: 0,
          },
    ),
    {
      id: "j",
      name: "joins with a login JWT, RS256, keys kept",
      method: "POST",
      paths: SESSIONS.map(joinPath),
      bodies: [joinBody],
      headers: { Authorization: `Bearer ${jwt}`, ...json },
      // The floors take the API token: the JWT's verification replaces the token's KV read.
      floorHeaders: { ...auth, ...json },
      expect: 200,
      connections,
      latency: 0,
    },
    {
      id: "d",
      name: "preview over 200 sessions",
      method: "GET",
      paths: SESSIONS.map(previewPath),
      bodies: null,
      headers: { ...auth },
      expect: 200,
      connections,
      latency: 0,
    },
    {
      id: "e1",
      name: `one hot session, backend ${HOT_DELAY_MS} ms, 1 connection`,
      method: "POST",
      hot: hotSessions.e1,
      bodies: [joinBody],
      headers: { ...auth, ...json },
      expect: 200,
      connections: 1,
      latency: HOT_DELAY_MS,
    },
    {
      id: "eN",
      name: `one hot session, backend ${HOT_DELAY_MS} ms, ${connections} connections`,
      method: "POST",
      hot: hotSessions.eN,
      bodies: [joinBody],
      headers: { ...auth, ...json },
      expect: 200,
      connections,
      latency: HOT_DELAY_MS,
    },
  ];
}

const JOB_CODES = ["OpenGroupDemo000000001", "ApprovalGroupDemo00002", "MemberGroupDemo0000003", "AdminGroupDemo00000004"];
const JOB_SESSIONS = Array.from({ length: 40 }, (_, i) => `job-${String(i).padStart(2, "0")}`);
// A brisk pace for the measurement: the runtimes set `JOB_MIN_INTERVAL_S` to it, with no
// window and no breaks (docs/bench.md, "Job history").
const JOB_INTERVAL_S = 5;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A CPU reading of `pid`: both clocks (see cpuMsFine). */
const cpuNow = (pid) => ({ ticks: cpuMs(pid), fine: cpuMsFine(pid) });

/** CPU per ms of each of `pids` over the same rest with no traffic (after what came before
 * has settled), both clocks. */
async function idleRates(pids) {
  await sleep(3000);
  const start = pids.map(cpuNow);
  const t = performance.now();
  await sleep(8000);
  const ms = performance.now() - t;
  return pids.map((pid, i) => {
    const end = cpuNow(pid);
    return { ticks: (end.ticks - start[i].ticks) / ms, fine: (end.fine - start[i].fine) / ms };
  });
}

/**
 * One join job of JOB_CODES (distinct codes: a job collapses duplicates; each answers 200:
 * joined, pending_approval, already a member, already an admin, sim/catalogue.mjs) on each
 * session of each side ({ target, token, sessions }), all at once, at the shortest pace,
 * until the simulator has seen every item's call. Progress is read from the simulator's
 * record, so no client call adds CPU of its own. Returns, per side, the raw CPU its workerd
 * spent (both clocks) from before the first submit to after the last item, the time that
 * took (the same for every side) and the backend calls seen.
 */
async function runJobsOn(sides, sim) {
  const items = (side) => JOB_CODES.length * side.sessions.length;
  const total = sides.reduce((n, side) => n + items(side), 0);
  const mine = new Set(sides.flatMap((side) => side.sessions));
  await simPrepare(sim, 0);
  const t0 = performance.now();
  const cpu0 = sides.map((side) => cpuNow(side.target.pid));
  const body = { invites: JOB_CODES, interval_s: JOB_INTERVAL_S };
  await Promise.all(
    sides.map((side) =>
      pool(side.sessions, 8, async (sid) => {
        const submitted = await call(side.target.url, "POST", `/v1/sessions/${sid}/join-jobs`, { token: side.token, json: body });
        if (submitted.status !== 202) throw new Error(`job submit ${sid}: ${submitted.status} ${submitted.text}`);
      }),
    ),
  );
  const deadline = performance.now() + (JOB_CODES.length * JOB_INTERVAL_S * 1.25 + 20) * 1000;
  let calls = [];
  const finished = () => calls.filter((c) => c.finished_at !== null).length;
  while (performance.now() < deadline) {
    ({ calls } = await simControl(sim, "GET", "/__sim/calls"));
    calls = calls.filter((c) => mine.has(c.session));
    if (finished() >= total) break;
    await sleep(250);
  }
  if (finished() < total) throw new Error(`jobs on ${[...mine][0]}...: ${finished()} of ${total} items reached the backend in time`);
  await sleep(500); // the last item's commit and events
  const cpu1 = sides.map((side) => cpuNow(side.target.pid));
  const elapsed = performance.now() - t0;
  return sides.map((side, i) => {
    const own = new Set(side.sessions);
    return {
      items: items(side),
      backend_calls: calls.filter((c) => own.has(c.session)).length,
      elapsed_ms: elapsed,
      cpu_ms: { ticks: cpu1[i].ticks - cpu0[i].ticks, fine: cpu1[i].fine - cpu0[i].fine },
    };
  });
}

/** CPU per item of a runJobsOn() result, less `idle` (CPU per ms, both clocks) over its time. */
function perItem(run, idle) {
  const clock = (c) => ((run.cpu_ms[c] - idle[c] * run.elapsed_ms) * 1000) / run.items;
  return { ticks: clock("ticks"), fine: clock("fine") };
}

/** The lower idle rate of two, per clock: a rest right after load may still be draining it. */
const lowerIdle = (a, b) => ({ ticks: Math.min(a.ticks, b.ticks), fine: Math.min(a.fine, b.fine) });

/**
 * What one join-job item costs: workerd CPU over one job per session of JOB_SESSIONS (each
 * of JOB_CODES, at the shortest pace), less the same process's idle CPU over as long, per
 * item (the submit calls included). Read in 10 ms ticks (/proc/PID/stat): many items make
 * that negligible.
 */
async function measureJobItems(target, sim, token) {
  const [idleBefore] = await idleRates([target.pid]);
  const [run] = await runJobsOn([{ target, token, sessions: JOB_SESSIONS }], sim);
  const idle = lowerIdle(idleBefore, (await idleRates([target.pid]))[0]);
  return {
    items: run.items,
    interval_s: JOB_INTERVAL_S,
    backend_calls: run.backend_calls,
    elapsed_s: run.elapsed_ms / 1000,
    idle_cpu_us_per_s: idle.ticks * 1e6,
    cpu_us_per_item: perItem(run, idle).ticks,
  };
}

// Job history (issue #19): an item must cost no more on a session that keeps the most
// finished jobs there can be (50 of 500 items) than on one that has none.
const HISTORY_JOBS = 50;
const HISTORY_ITEMS_PER_JOB = 500;
const HISTORY_SESSIONS = 20; // measured, per side
const HISTORY_WARM_SESSIONS = 4; // per side
/** One join token, spent before the fill: an item that finds no token just waits, so none
 * of the fill's items reaches the backend. */
const HISTORY_SLOW = { join: { per_minute: 1, burst: 1 }, manage: RAISED, read: RAISED };

/** Job `n`'s 500 distinct, well-formed codes (21 chars; never sent: the items are cancelled). */
const historyCodes = (n) =>
  Array.from({ length: HISTORY_ITEMS_PER_JOB }, (_, i) => `Hist${String(n).padStart(2, "0")}x${String(i).padStart(14, "0")}`);

/**
 * CPU per job item on sessions with no finished job and on sessions that keep 50 finished
 * jobs of 500 items each. The two sides run in two fresh joingate runtimes (workerd
 * processes) started for this, at the same time, so that whatever else the shared cores do
 * weighs on both alike; each is measured as measureJobItems() measures (its CPU over the
 * jobs less its own idle CPU, per item; the submits included).
 *
 * Both runtimes do the same work: each registers 2 x HISTORY_SESSIONS sessions with one
 * join token, spends it with a join, and fills half of them with 50 jobs of 500 codes,
 * each cancelled at once (no item reaches the backend). The "empty" runtime then runs the
 * jobs on its unfilled half, the "full" runtime on its filled half, limits raised again.
 * An unmeasured job on a few other sessions of each runs the item path during the fill.
 *
 * Each measured job, as it finishes on a full session, drops that session's oldest
 * finished job (500 items): that belongs to the full side's figure. Its price is also
 * measured apart (one more 500-item job submitted and cancelled on every measured session
 * of each side, three times: the full side's cancel drops the oldest job, the empty side's
 * drops nothing), to tell it from a per-item cost.
 *
 * The figures are on the threads' schedstat clock (ns); the 10 ms ticks' beside them.
 */
async function measureJobHistory(Miniflare, sim, log) {
  const t0 = performance.now();
  const sides = [];
  try {
    for (const name of ["empty", "full"]) {
      const target = await startTarget(Miniflare, `history-${name}`, joingateOptions(sim.url, null));
      sides.push({ name, target });
    }
    const admin = async (side, sid, limits) => {
      const res = await call(side.target.url, "PUT", `/v1/admin/sessions/${sid}`, { token: ADMIN_TOKEN, json: { org: ORG, limits } });
      if (res.status !== 200) throw new Error(`${side.name}: PUT session ${sid}: ${res.status} ${res.text}`);
    };
    /** Job `n` of 500 codes submitted on `sid` and cancelled at once, both answers checked. */
    const historyJob = async (side, sid, n) => {
      const { url } = side.target;
      const submitted = await call(url, "POST", `/v1/sessions/${sid}/join-jobs`, {
        token: side.token,
        json: { invites: historyCodes(n), interval_s: 86400 },
      });
      if (submitted.status !== 202) throw new Error(`${side.name}: history submit ${sid} #${n}: ${submitted.status} ${submitted.text}`);
      const job = JSON.parse(submitted.text).data;
      if (job.counts?.total !== HISTORY_ITEMS_PER_JOB) throw new Error(`${side.name}: history submit ${sid} #${n}: ${submitted.text.slice(0, 300)}`);
      const cancelled = await call(url, "POST", `/v1/sessions/${sid}/join-jobs/${job.job_id}/cancel`, { token: side.token });
      if (cancelled.status !== 200 || JSON.parse(cancelled.text).data?.status !== "cancelled") {
        throw new Error(`${side.name}: history cancel ${sid} ${job.job_id}: ${cancelled.status} ${cancelled.text.slice(0, 300)}`);
      }
    };
    /** The session's join token spent (or already gone: 429); the next comes in a minute. */
    const spend = async (side, sid) => {
      const join = await call(side.target.url, "POST", joinPath(sid), { token: side.token, json: { invite: OPEN_CODE } });
      if (join.status !== 200 && join.status !== 429) throw new Error(`${side.name}: join ${sid}: ${join.status} ${join.text}`);
    };
    /** Limits down to one join token a minute, and that token spent. */
    const slowDown = (side, sids) =>
      pool(sids, 4, async (sid) => {
        await admin(side, sid, HISTORY_SLOW);
        await spend(side, sid);
      });
    const both = (fn) => Promise.all(sides.map(fn));

    // Sessions (the simulator keys its record by session id: each side has its own ids).
    await both(async (side) => {
      const minted = await call(side.target.url, "POST", "/v1/admin/tokens", {
        token: ADMIN_TOKEN,
        json: { org: ORG, capabilities: ["join", "read"], label: "bench history" },
      });
      if (minted.status !== 201) throw new Error(`${side.name}: minting a token failed: ${minted.status} ${minted.text}`);
      side.token = JSON.parse(minted.text).data.token;
      const ids = (kind) => Array.from({ length: HISTORY_SESSIONS }, (_, i) => `jh-${side.name}-${kind}-${String(i).padStart(2, "0")}`);
      const [filled, unfilled] = [ids("filled"), ids("unfilled")];
      side.filled = filled;
      side.measured = side.name === "full" ? filled : unfilled;
      side.unfilled = unfilled;
      side.warm = Array.from({ length: HISTORY_WARM_SESSIONS }, (_, i) => `jh-${side.name}-warm-${i}`);
    });
    await simPrepare(sim, 0);
    // The filled sessions are registered right before their fill (below).
    await both((side) => slowDown(side, side.unfilled));
    // The warm-up jobs run during the fill (whose items never reach the backend).
    await both((side) =>
      pool(side.warm, 4, async (sid) => {
        await admin(side, sid, LIMITS);
        const submitted = await call(side.target.url, "POST", `/v1/sessions/${sid}/join-jobs`, {
          token: side.token,
          json: { invites: JOB_CODES, interval_s: JOB_INTERVAL_S },
        });
        if (submitted.status !== 202) throw new Error(`${side.name}: warm-up job ${sid}: ${submitted.status} ${submitted.text}`);
      }),
    );

    const fill0 = performance.now();
    await both((side) =>
      pool(side.filled, 2, async (sid) => {
        // Registered and its token spent right before its fill, which takes seconds: the
        // bucket refills by a sixtieth of a token a second, so an early registration would
        // let a token, and an item, through during a late fill.
        await slowDown(side, [sid]);
        for (let n = 0; n < HISTORY_JOBS; n++) await historyJob(side, sid, n);
        const listed = await call(side.target.url, "GET", `/v1/sessions/${sid}/join-jobs`, { token: side.token });
        const jobs = listed.status === 200 ? JSON.parse(listed.text).data.jobs : [];
        const odd = jobs.find((j) => j.status !== "cancelled" || j.counts.cancelled !== HISTORY_ITEMS_PER_JOB);
        if (jobs.length !== HISTORY_JOBS || odd) {
          throw new Error(
            `${side.name}: history of ${sid}: ${listed.status}, ${jobs.length} jobs, expected ${HISTORY_JOBS} cancelled of ${HISTORY_ITEMS_PER_JOB} items` +
              (odd ? `; ${odd.job_id}: ${odd.status}, counts ${JSON.stringify(odd.counts)}` : ""),
          );
        }
      }),
    );
    const fillS = (performance.now() - fill0) / 1000;
    log(`job history: ${HISTORY_SESSIONS} sessions on each side filled with ${HISTORY_JOBS} cancelled jobs of ${HISTORY_ITEMS_PER_JOB} items in ${f(fillS, 1)} s`);
    await both((side) => pool(side.measured, 4, (sid) => admin(side, sid, LIMITS)));
    const warm = new Set(sides.flatMap((side) => side.warm));
    const warmItems = warm.size * JOB_CODES.length;
    for (const deadline = performance.now() + (JOB_CODES.length * JOB_INTERVAL_S * 1.25 + 20) * 1000; ; ) {
      const { calls } = await simControl(sim, "GET", "/__sim/calls");
      const done = calls.filter((c) => warm.has(c.session) && c.finished_at !== null).length;
      if (done >= warmItems) break;
      if (performance.now() > deadline) throw new Error(`warm-up jobs: ${done} of ${warmItems} items reached the backend in time`);
      await sleep(250);
    }

    const idleBoth = () => idleRates(sides.map((side) => side.target.pid));
    const idleBefore = await idleBoth();
    const runs = await runJobsOn(sides.map((side) => ({ target: side.target, token: side.token, sessions: side.measured })), sim);
    const idleAfter = await idleBoth();
    const per = runs.map((run, i) => perItem(run, lowerIdle(idleBefore[i], idleAfter[i])));

    // The oldest job's drop, apart (see above); both sides at once, three rounds.
    await both((side) => slowDown(side, side.measured));
    await simPrepare(sim, 0);
    const pairs = sides.map(() => []);
    for (let round = 0; round < 3; round++) {
      await sleep(500);
      const c0 = sides.map((side) => cpuMsFine(side.target.pid));
      await both((side) => pool(side.measured, 2, (sid) => historyJob(side, sid, HISTORY_JOBS + round)));
      sides.forEach((side, i) => pairs[i].push(((cpuMsFine(side.target.pid) - c0[i]) * 1000) / side.measured.length));
    }
    const leaked = (await simControl(sim, "GET", "/__sim/calls")).calls.length;
    if (leaked) throw new Error(`${leaked} calls of the drop measurement reached the backend`);
    const [empty, full] = [0, 1];
    const dropUs = mean(pairs[full]) - mean(pairs[empty]);
    const fullLessDrop = per[full].fine - dropUs / JOB_CODES.length;
    return {
      empty_cpu_us_per_item: per[empty].fine,
      full_cpu_us_per_item: per[full].fine,
      ratio: per[full].fine / per[empty].fine,
      items: runs[empty].items,
      history_jobs: HISTORY_JOBS,
      history_items_per_job: HISTORY_ITEMS_PER_JOB,
      sessions: HISTORY_SESSIONS,
      interval_s: JOB_INTERVAL_S,
      backend_calls: { empty: runs[empty].backend_calls, full: runs[full].backend_calls },
      elapsed_s: runs[empty].elapsed_ms / 1000,
      idle_cpu_us_per_s: {
        empty: [idleBefore[empty].fine * 1e6, idleAfter[empty].fine * 1e6],
        full: [idleBefore[full].fine * 1e6, idleAfter[full].fine * 1e6],
      },
      cpu_clock: "schedstat (ns), summed over each workerd's threads",
      ticks: {
        empty_cpu_us_per_item: per[empty].ticks,
        full_cpu_us_per_item: per[full].ticks,
        ratio: per[full].ticks / per[empty].ticks,
      },
      drop: {
        submit_cancel_cpu_us: { empty: pairs[empty], full: pairs[full] },
        cpu_us_per_finished_job: dropUs,
        full_cpu_us_per_item_less_drop: fullLessDrop,
        ratio_less_drop: fullLessDrop / per[empty].fine,
      },
      fill_s: fillS,
      total_s: (performance.now() - t0) / 1000,
    };
  } finally {
    for (const side of sides) await side.target.mf.dispose().catch(() => {});
  }
}

function runLoad(cfg) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), "--load-child", JSON.stringify(cfg)], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (chunk) => (out += chunk));
    const guard = setTimeout(() => child.kill("SIGKILL"), (cfg.duration + 30) * 1000);
    child.once("exit", (code) => {
      clearTimeout(guard);
      if (code !== 0) return reject(new Error(`load child exited ${code}`));
      try {
        resolve(JSON.parse(out.trim().split("\n").pop()));
      } catch (error) {
        reject(new Error(`load child printed no result: ${out}`));
      }
    });
  });
}

/** Backend service time and idle gaps between consecutive backend calls of one session. */
function backendTimings(calls) {
  const sorted = calls.filter((c) => c.finished_at !== null).sort((a, b) => a.seq - b.seq);
  const service = sorted.map((c) => c.finished_at - c.started_at);
  const gaps = [];
  for (let i = 1; i < sorted.length; i++) gaps.push(sorted[i].started_at - sorted[i - 1].finished_at);
  return { calls: sorted.length, backend_mean_ms: mean(service), gap_median_ms: median(gaps), gap_mean_ms: mean(gaps) };
}

const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
const median = (xs) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// ---------------------------------------------------------------------------------------
// Output

const f = (v, digits = 2) => (v === null || v === undefined || Number.isNaN(v) ? "-" : v.toFixed(digits));
const pad = (s, w) => String(s).padStart(w);
const padEnd = (s, w) => String(s).padEnd(w);

function printTable(rows, opts) {
  const head =
    `${padEnd("scenario", 52)} ${pad("conn", 4)} | ${padEnd("target", 8)} ${pad("req/s", 8)} ${pad("p50 ms", 7)} ${pad("p99 ms", 7)} ${pad("err", 5)} ${pad("cpu us/req", 10)}` +
    ` | ${pad("joingate/it", 11)} ${pad("p50 ovh ms", 10)} ${pad("cpu x", 6)}`;
  console.log("\n" + head);
  console.log("-".repeat(head.length));
  for (const row of rows) {
    for (const target of TARGETS) {
      const s = row[target];
      const first = target === "joingate";
      const vs = row[`vs_${target}`];
      console.log(
        `${padEnd(first ? `(${row.id}) ${row.name}` : "", 52)} ${pad(first ? row.connections : "", 4)} | ${padEnd(target, 8)} ${pad(f(s.rps, 0), 8)} ${pad(f(s.p50_ms), 7)} ${pad(f(s.p99_ms), 7)} ${pad(s.errors, 5)} ${pad(f(s.cpu_us_per_req, 0), 10)}` +
          ` | ${pad(vs ? f(vs.rps_ratio) + "x" : "", 11)} ${pad(vs ? f(vs.p50_overhead_ms) : "", 10)} ${pad(vs ? f(vs.cpu_ratio) : "", 6)}`,
      );
    }
  }
  console.log(
    `figures: mean over ${opts.rounds} rounds of ${opts.duration} s per target (joingate, floor, durable floor in turn); latency measured in the load process; ` +
      "cpu = workerd process CPU time / answered requests; on a floor's line: joingate's throughput ratio to it, p50 overhead over it, CPU ratio to it; " +
      "err = answers with another status than expected + socket errors + timeouts",
  );
}

// ---------------------------------------------------------------------------------------
// Main

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const startedAt = new Date();
  const t0 = performance.now();
  const log = (msg) => console.log(`[bench ${((performance.now() - t0) / 1000).toFixed(1)}s] ${msg}`);

  if (opts.build) {
    log("building the release Worker (scripts/setup.sh && scripts/build.sh; --no-build skips)");
    const built = spawnSync("bash", ["-c", "bash scripts/setup.sh && bash scripts/build.sh"], {
      cwd: ROOT,
      stdio: "inherit",
    });
    if (built.status !== 0) throw new Error(`build failed (exit ${built.status})`);
  }

  const { wasmSize } = await import(path.join(ROOT, "scripts/wasm-size.mjs"));
  const wasm = wasmSize();
  const { Miniflare } = await import("miniflare");

  const sim = await startSimulatorProcess();
  const cleanup = [];
  cleanup.push(async () => {
    sim.child.kill("SIGTERM");
  });
  const stop = async () => {
    for (const fn of cleanup.reverse()) await fn().catch(() => {});
  };
  process.once("SIGINT", async () => {
    await stop();
    process.exit(130);
  });

  try {
    log(`simulator at ${sim.url}; Miniflare storage under ${os.tmpdir()} (${filesystemOf(os.tmpdir())})`);

    // Start-up: fresh runtimes, before any load, alternating.
    const startup = { joingate: [], baseline: [] };
    for (let i = 0; i < opts.startupSamples; i++) {
      startup.joingate.push(await measureStartup(Miniflare, joingateOptions(sim.url, null)));
      startup.baseline.push(await measureStartup(Miniflare, baselineOptions(sim.url)));
    }
    const startupSummary = Object.fromEntries(
      Object.entries(startup).map(([k, v]) => [
        k,
        {
          samples: v,
          ready_ms_median: median(v.map((s) => s.ready_ms)),
          first_answer_ms_median: median(v.map((s) => s.first_answer_ms)),
        },
      ]),
    );
    log(
      `start-up to first /healthz answer: joingate ${f(startupSummary.joingate.first_answer_ms_median, 0)} ms, baseline ${f(startupSummary.baseline.first_answer_ms_median, 0)} ms`,
    );

    const jwks = await startJwks();
    cleanup.push(() => jwks.close());
    const jwt = await jwks.sign();

    // The three runtimes under test.
    const logStats = { lines: 0, latency_ms: 0, backend_ms: 0, backend_n: 0 };
    const joingate = await startTarget(Miniflare, "joingate", joingateOptions(sim.url, (line) => {
      if (!line.startsWith("{")) return;
      try {
        const entry = JSON.parse(line);
        if (typeof entry.latency_ms !== "number") return;
        logStats.lines++;
        logStats.latency_ms += entry.latency_ms;
        if (typeof entry.backend_ms === "number") {
          logStats.backend_ms += entry.backend_ms;
          logStats.backend_n++;
        }
      } catch {
        // not a request log line
      }
    }, jwks.url));
    cleanup.push(() => joingate.mf.dispose());
    const floor = await startTarget(Miniflare, "floor", baselineOptions(sim.url, false));
    cleanup.push(() => floor.mf.dispose());
    const durable = await startTarget(Miniflare, "durable", baselineOptions(sim.url, true));
    cleanup.push(() => durable.mf.dispose());
    const runtimes = { joingate, floor, durable };
    log(
      `joingate at ${joingate.url} (workerd pid ${joingate.pid}), floor at ${floor.url} (pid ${floor.pid}), durable floor at ${durable.url} (pid ${durable.pid})`,
    );

    const hotSessions = {};
    const hotIds = [];
    for (const id of ["e1", "eN"]) {
      hotSessions[id] = Array.from({ length: opts.rounds }, (_, r) => `hot-${id}-r${r + 1}`);
      hotIds.push(...hotSessions[id]);
    }
    const { token, copied } = await seed(joingate, [floor, durable], [...SESSIONS, ...hotIds, ...JOB_SESSIONS], sim.url);
    log(`seeded ${SESSIONS.length + hotIds.length} native and ${KINDS.length * 50} other-kind sessions and a token; ${copied} KV records copied to the floors`);

    const unknownToken = unknownWellFormedToken();
    const list = scenarios(token, unknownToken, opts.connections, hotSessions, jwt).filter(
      (s) => !opts.only || opts.only.has(s.id),
    );

    // Warm-up: every Durable Object exists and every path has run once on both sides.
    await simPrepare(sim, 0);
    for (const target of [joingate, floor, durable]) {
      const auth = { token };
      await pool([...SESSIONS, ...hotIds], 8, async (sid) => {
        const join = await call(target.url, "POST", joinPath(sid), { ...auth, json: { invite: OPEN_CODE } });
        if (join.status !== 200) throw new Error(`${target.name} warm-up join ${sid}: ${join.status} ${join.text}`);
        if (!sid.startsWith("hot-")) {
          const preview = await call(target.url, "GET", previewPath(sid), auth);
          if (preview.status !== 200) throw new Error(`${target.name} warm-up preview ${sid}: ${preview.status} ${preview.text}`);
        }
      });
      if (target === joingate) {
        await pool(Object.values(KIND_SESSIONS).flat(), 8, async (sid) => {
          const join = await call(target.url, "POST", joinPath(sid), { ...auth, json: { invite: OPEN_CODE } });
          if (join.status !== 200) throw new Error(`warm-up join ${sid}: ${join.status} ${join.text}`);
        });
        const viaJwt = await call(target.url, "GET", previewPath(SESSIONS[0]), { token: jwt });
        if (viaJwt.status !== 200) throw new Error(`warm-up JWT preview: ${viaJwt.status} ${viaJwt.text}`);
      }
      for (const s of list.filter((s) => s.expect !== 200)) {
        const res = await fetch(`${target.url}${s.paths[0]}`, { method: s.method, headers: s.headers, body: s.bodies?.[0] });
        await res.arrayBuffer();
        if (res.status !== s.expect) throw new Error(`${target.name} warm-up (${s.id}): ${res.status}, expected ${s.expect}`);
      }
    }
    log("warm-up done");

    const idleMem = Object.fromEntries(TARGETS.map((t) => [t, memKb(runtimes[t].pid)]));
    const rows = [];
    for (const s of list) {
      const runs = Object.fromEntries(TARGETS.map((t) => [t, []]));
      for (let round = 0; round < opts.rounds; round++) {
        for (const target of TARGETS.map((t) => runtimes[t])) {
          await simPrepare(sim, s.latency);
          const isFloor = target !== joingate;
          const paths = s.hot ? [joinPath(s.hot[round])] : isFloor && s.floorPaths ? s.floorPaths : s.paths;
          const cfg = {
            url: target.url,
            method: s.method,
            headers: isFloor && s.floorHeaders ? s.floorHeaders : s.headers,
            paths,
            bodies: s.bodies,
            duration: opts.duration,
            connections: s.connections,
            expect: s.expect,
          };
          Object.assign(logStats, { lines: 0, latency_ms: 0, backend_ms: 0, backend_n: 0 });
          const cpuBefore = cpuMs(target.pid);
          const result = await runLoad(cfg);
          const cpuAfter = cpuMs(target.pid);
          result.round = round + 1;
          result.cpu_ms = cpuAfter - cpuBefore;
          result.cpu_us_per_req = result.requests ? (result.cpu_ms * 1000) / result.requests : null;
          if (target === joingate && logStats.lines) {
            result.worker_log = {
              lines: logStats.lines,
              latency_ms_mean: logStats.latency_ms / logStats.lines,
              backend_ms_mean: logStats.backend_n ? logStats.backend_ms / logStats.backend_n : null,
            };
          }
          if (s.hot) {
            const sid = s.hot[round];
            const { calls } = await simControl(sim, "GET", `/__sim/calls?session=${sid}`);
            const stats = await simControl(sim, "GET", "/__sim/stats");
            result.backend = { ...backendTimings(calls), max_concurrency: stats.max_concurrency[sid] ?? 0 };
          }
          runs[target.name].push(result);
          log(
            `(${s.id}) round ${round + 1} ${padEnd(target.name, 8)} ${pad(f(result.rps, 0), 6)} req/s  p50 ${f(result.p50_ms)} ms  p99 ${f(result.p99_ms)} ms  cpu ${f(result.cpu_us_per_req, 0)} us/req  errors ${result.errors}  statuses ${JSON.stringify(result.statuses)}`,
          );
          await new Promise((r) => setTimeout(r, 250)); // let queued work drain
        }
      }
      const summary = (list) => ({
        rounds: list,
        rps: mean(list.map((r) => r.rps)),
        p50_ms: mean(list.map((r) => r.p50_ms)),
        p99_ms: mean(list.map((r) => r.p99_ms)),
        mean_ms: mean(list.map((r) => r.mean_ms)),
        errors: list.reduce((a, r) => a + r.errors, 0),
        cpu_us_per_req: mean(list.map((r) => r.cpu_us_per_req)),
      });
      const row = {
        id: s.id,
        name: s.name,
        connections: s.connections,
        expected_status: s.expect,
        backend_delay_ms: s.latency,
        joingate: summary(runs.joingate),
        floor: summary(runs.floor),
        durable: summary(runs.durable),
      };
      // Ratios to each floor: throughput (higher is better), p50 overhead, CPU per request.
      for (const floorName of ["floor", "durable"]) {
        row[`vs_${floorName}`] = {
          rps_ratio: row.joingate.rps / row[floorName].rps,
          p50_overhead_ms: row.joingate.p50_ms - row[floorName].p50_ms,
          cpu_ratio: row.joingate.cpu_us_per_req / row[floorName].cpu_us_per_req,
        };
      }
      rows.push(row);
    }

    // One join job on joingate alone (the floors have no jobs): CPU per item.
    let jobItem = null;
    if (!opts.only || opts.only.has("job")) {
      log(
        `join jobs: ${JOB_SESSIONS.length} sessions x ${JOB_CODES.length} items at ${JOB_INTERVAL_S} s (about ${JOB_CODES.length * JOB_INTERVAL_S + 22} s with the idle CPU before and after)`,
      );
      jobItem = await measureJobItems(joingate, sim, token);
      const c1 = rows.find((r) => r.id === "c1");
      if (c1) jobItem.interactive_join_cpu_us = c1.joingate.cpu_us_per_req;
    }

    // The same on sessions with no finished job and with 50 finished jobs of 500 items.
    let jobHistory = null;
    if (!opts.only || opts.only.has("job_history")) {
      log(
        `job history: two fresh joingate runtimes at once, ${HISTORY_SESSIONS} sessions each with no finished job / ${HISTORY_JOBS} finished jobs of ${HISTORY_ITEMS_PER_JOB} items, ${JOB_CODES.length} items per session at ${JOB_INTERVAL_S} s`,
      );
      jobHistory = await measureJobHistory(Miniflare, sim, log);
    }

    // Hot session: per-call time and the queue's overhead per call (docs/bench.md).
    const perCall = (row) => {
      if (!row) return null; // scenario left out with --only
      const out = {};
      for (const target of TARGETS) {
        const r = row[target];
        const perCallMs = r.mean_ms / row.connections;
        out[target] = {
          throughput_rps: r.rps,
          mean_latency_ms: r.mean_ms,
          per_call_ms: perCallMs,
          overhead_per_call_ms: perCallMs - HOT_DELAY_MS,
          backend_mean_ms: mean(r.rounds.map((x) => x.backend.backend_mean_ms)),
          backend_idle_gap_median_ms: mean(r.rounds.map((x) => x.backend.gap_median_ms)),
          backend_max_concurrency: Math.max(...r.rounds.map((x) => x.backend.max_concurrency)),
        };
      }
      out.queue_overhead_vs_floor_ms = out.joingate.overhead_per_call_ms - out.floor.overhead_per_call_ms;
      out.queue_overhead_vs_durable_ms = out.joingate.overhead_per_call_ms - out.durable.overhead_per_call_ms;
      return out;
    };
    const hot = {
      backend_delay_ms: HOT_DELAY_MS,
      concurrency_1: perCall(rows.find((r) => r.id === "e1")),
      [`concurrency_${opts.connections}`]: perCall(rows.find((r) => r.id === "eN")),
    };

    const peak = Object.fromEntries(
      TARGETS.map((t) => [t, { ...memKb(runtimes[t].pid), idle_rss_kb: idleMem[t].rss_kb }]),
    );

    // Targets: reported, never asserted.
    const rowC = rows.find((r) => r.id === "c");
    const rowC1 = rows.find((r) => r.id === "c1");
    const edge = rows.filter((r) => r.id === "a" || r.id === "b");
    const atLeast = (target, value, limit, unit) => ({ target, value, limit, pass: value >= limit, unit });
    const atMost = (target, value, limit, unit) => ({ target, value, limit, pass: value <= limit, unit });
    // A target whose scenario was left out with --only is not reported.
    const targets = [
      rowC && atLeast("join >= 0.85x the durable floor (c)", rowC.vs_durable.rps_ratio, 0.85, "x"),
      rowC && atLeast("join >= 0.7x the no-logic floor (c)", rowC.vs_floor.rps_ratio, 0.7, "x"),
      ...edge.map((r) => atLeast(`edge rejection >= 0.9x the no-logic floor (${r.id})`, r.vs_floor.rps_ratio, 0.9, "x")),
      rowC && atMost("CPU per join <= 1.25x the durable floor's (c)", rowC.vs_durable.cpu_ratio, 1.25, "x"),
      rowC1 && atMost("p50 overhead over the durable floor <= 0.5 ms (c1)", rowC1.vs_durable.p50_overhead_ms, 0.5, "ms"),
      jobHistory && atMost("job item CPU, 50 finished jobs vs none <= 1.1x", jobHistory.ratio, 1.1, "x"),
      atMost("gzip wasm <= 250 KB", wasm.gzip / 1000, 250, "KB"),
    ].filter(Boolean);

    if (rows.length) printTable(rows, opts);

    if (hot.concurrency_1 || hot[`concurrency_${opts.connections}`]) {
      console.log(`\nhot session (backend fixed at ${HOT_DELAY_MS} ms; per-call = mean latency / connections; overhead = per-call - ${HOT_DELAY_MS} ms)`);
      console.log(
        `${padEnd("", 16)} ${padEnd("target", 8)} ${pad("req/s", 7)} ${pad("per-call ms", 11)} ${pad("overhead ms", 11)} ${pad("backend ms", 10)} ${pad("idle gap ms", 11)} ${pad("max conc", 8)}`,
      );
      for (const [label, block] of Object.entries(hot)) {
        if (!block || typeof block !== "object") continue;
        for (const target of TARGETS) {
          const b = block[target];
          console.log(
            `${padEnd(target === "joingate" ? label : "", 16)} ${padEnd(target, 8)} ${pad(f(b.throughput_rps, 0), 7)} ${pad(f(b.per_call_ms), 11)} ${pad(f(b.overhead_per_call_ms), 11)} ${pad(f(b.backend_mean_ms), 10)} ${pad(f(b.backend_idle_gap_median_ms), 11)} ${pad(b.backend_max_concurrency, 8)}`,
          );
        }
        console.log(
          `${padEnd("", 16)} queue overhead per call, joingate - floor: ${f(block.queue_overhead_vs_floor_ms)} ms, joingate - durable floor: ${f(block.queue_overhead_vs_durable_ms)} ms`,
        );
      }
    }

    if (jobItem) {
      console.log(
        `\njoin job item: ${f(jobItem.cpu_us_per_item, 0)} us of workerd CPU per item (${jobItem.items} items, ${jobItem.backend_calls} backend calls, ${f(jobItem.elapsed_s, 1)} s, the submit call included, idle CPU taken off)` +
          (jobItem.interactive_join_cpu_us ? `; an interactive join (c1): ${f(jobItem.interactive_join_cpu_us, 0)} us` : ""),
      );
    }
    if (jobHistory) {
      console.log(
        `${jobItem ? "" : "\n"}job item history: ${f(jobHistory.empty_cpu_us_per_item, 0)} us per item with no finished job, ${f(jobHistory.full_cpu_us_per_item, 0)} us with ${HISTORY_JOBS} finished jobs of ${HISTORY_ITEMS_PER_JOB} items, ratio ${f(jobHistory.ratio)}x (${jobHistory.items} items each; in 10 ms ticks: ${f(jobHistory.ticks.empty_cpu_us_per_item, 0)} / ${f(jobHistory.ticks.full_cpu_us_per_item, 0)} us, ${f(jobHistory.ticks.ratio)}x)`,
      );
      console.log(
        `  of which the oldest job's drop as each job finishes: ${f(jobHistory.drop.cpu_us_per_finished_job, 0)} us per job, ${f(jobHistory.drop.cpu_us_per_finished_job / JOB_CODES.length, 0)} us per item; without it ${f(jobHistory.drop.full_cpu_us_per_item_less_drop, 0)} us, ${f(jobHistory.drop.ratio_less_drop)}x`,
      );
    }
    console.log(`\nwasm: ${(wasm.raw / 1000).toFixed(1)} KB raw, ${(wasm.gzip / 1000).toFixed(1)} KB gzip`);
    console.log(
      `start-up (new Miniflare -> first /healthz answer, median of ${opts.startupSamples}): joingate ${f(startupSummary.joingate.first_answer_ms_median, 0)} ms (ready ${f(startupSummary.joingate.ready_ms_median, 0)} ms), baseline ${f(startupSummary.baseline.first_answer_ms_median, 0)} ms (ready ${f(startupSummary.baseline.ready_ms_median, 0)} ms)`,
    );
    console.log(
      `workerd peak RSS (VmHWM): ${TARGETS.map((t) => `${t} ${f(peak[t].hwm_kb / 1024, 1)} MiB (idle after warm-up ${f(peak[t].idle_rss_kb / 1024, 1)} MiB)`).join(", ")}`,
    );
    console.log("\ntargets (reported, not asserted):");
    for (const t of targets) {
      console.log(`  ${t.pass ? "PASS" : "MISS"}  ${padEnd(t.target, 42)} ${f(t.value)} ${t.unit} (limit ${t.limit} ${t.unit})`);
    }

    const read = (p) => JSON.parse(readFileSync(path.join(ROOT, p), "utf8")).version;
    let workerdVersion = null;
    try {
      workerdVersion = execFileSync(path.join(ROOT, "node_modules/.bin/workerd"), ["--version"]).toString().trim();
    } catch {
      // the package version below still says which
    }
    const cpus = os.cpus();
    const results = {
      date: startedAt.toISOString(),
      duration_total_s: (performance.now() - t0) / 1000,
      machine: {
        cpu_model: cpus[0]?.model ?? null,
        cores: cpus.length,
        available_parallelism: os.availableParallelism?.() ?? cpus.length,
        memory_total_mib: Math.round(os.totalmem() / 2 ** 20),
        platform: os.platform(),
        release: os.release(),
        arch: os.arch(),
        loadavg_at_start: null,
        loadavg_at_end: os.loadavg(),
        // Miniflare keeps KV and Durable Object storage under os.tmpdir() (TMPDIR).
        storage_dir: os.tmpdir(),
        storage_fs: filesystemOf(os.tmpdir()),
      },
      versions: {
        node: process.version,
        workerd: workerdVersion,
        workerd_package: read("node_modules/workerd/package.json"),
        wrangler: read("node_modules/wrangler/package.json"),
        miniflare: read("node_modules/miniflare/package.json"),
        autocannon: read("node_modules/autocannon/package.json"),
        joingate: read("build/package.json") ?? null,
        rustc: (() => {
          try {
            return execFileSync("rustc", ["--version"]).toString().trim();
          } catch {
            return null;
          }
        })(),
      },
      config: {
        duration_s: opts.duration,
        rounds: opts.rounds,
        connections: opts.connections,
        sessions: SESSIONS.length,
        hot_backend_delay_ms: HOT_DELAY_MS,
        session_limits: LIMITS,
        org_limit: ORG_LIMIT,
        queue_max: Number(QUEUE_MAX),
        order: "per scenario and round: joingate, floor, durable floor",
        kind_sessions: KIND_SESSIONS.waha.length,
      },
      scenarios: rows,
      hot_session: hot,
      job_item: jobItem,
      job_item_history: jobHistory,
      wasm: { raw_bytes: wasm.raw, gzip_bytes: wasm.gzip },
      startup: startupSummary,
      workerd_memory_kb: peak,
      targets,
    };
    results.machine.loadavg_at_start = loadAtStart;
    writeFileSync(path.join(HERE, "results.json"), JSON.stringify(results, null, 2) + "\n");
    log(`wrote bench/results.json (total ${f(results.duration_total_s, 0)} s)`);
  } finally {
    await stop();
  }
}

const loadAtStart = os.loadavg();

if (process.argv[2] === "--load-child") {
  loadChild(JSON.parse(process.argv[3])).catch((error) => {
    console.error(error);
    process.exit(1);
  });
} else {
  main().catch((error) => {
    console.error(`[bench] ${error.stack ?? error}`);
    process.exit(1);
  });
}
