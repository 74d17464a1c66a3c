// CPU profile of joingate's isolate under a join load, through workerd's own inspector
// (Chrome DevTools protocol, `Profiler.*`): where the Worker's, the org object's and the
// session object's CPU goes, function by function. See docs/bench.md, "Profiling".
//
//   bash scripts/build.sh --names           # a release build that keeps wasm function names
//   node bench/profile.mjs [--joins N] [--connections C] [--path join|preview|edge] [--top K]
//                          [--target joingate|floor|durable]
//
// `--target floor` or `durable` profiles a floor of bench/baseline/worker.mjs instead, under
// the same load and the same profiler, so that the two can be compared function by
// function (the profiler's own overhead inflates every figure alike).
//
// Writes bench/out/<target>-<path>.cpuprofile (open it in Chrome DevTools, Performance tab, or
// https://www.speedscope.app offline) and prints self time by function and by group, and
// inclusive time per entry point. Miniflare is started with `inspectorPort` and no worker
// marked for its inspector proxy, so workerd listens itself and answers `Profiler.*`.
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createRequire } from "node:module";
import { Miniflare } from "miniflare";
import { startSimulator } from "../sim/simulator.mjs";
import { joingateOptions } from "../scripts/miniflare-options.mjs";
import { floorOptions } from "./baseline/options.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..");
// `ws` comes with miniflare; Node's own WebSocket client would do too, but ws's error
// events say more when the inspector refuses.
const WebSocket = createRequire(path.join(ROOT, "node_modules/miniflare/package.json"))("ws");

const { values: opts } = parseArgs({
  options: {
    joins: { type: "string", default: "3000" },
    connections: { type: "string", default: "1" },
    path: { type: "string", default: "join" },
    top: { type: "string", default: "40" },
    interval: { type: "string", default: "50" },
    target: { type: "string", default: "joingate" },
  },
});
const JOINS = Number(opts.joins);
const CONNECTIONS = Number(opts.connections);
const TOP = Number(opts.top);

const ADMIN_TOKEN = "profile-admin-token-0123456789abcdef";
const SESSIONS = Array.from({ length: 50 }, (_, i) => `p${String(i).padStart(2, "0")}`);
const OPEN_CODE = "OpenGroupDemo000000001";
const RAISED = { per_minute: 6000, burst: 1000 };

function wasmHasNames() {
  const bytes = fs.readFileSync(path.join(ROOT, "build/index_bg.wasm"));
  return bytes.includes(Buffer.from("\x04name"));
}

async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** One DevTools session on a workerd isolate. */
async function inspect(port, id) {
  const list = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const target = list.find((t) => t.id === id);
  if (!target) throw new Error(`no inspector target ${id}: ${list.map((t) => t.id).join(", ")}`);
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  let next = 1;
  const pending = new Map();
  ws.on("message", (data) => {
    const msg = JSON.parse(data.toString());
    const waiter = msg.id !== undefined && pending.get(msg.id);
    if (!waiter) return;
    pending.delete(msg.id);
    if (msg.error) waiter.reject(new Error(`${waiter.method}: ${msg.error.message}`));
    else waiter.resolve(msg.result);
  });
  const send = (method, params = {}) =>
    new Promise((resolve, reject) => {
      const id = next++;
      pending.set(id, { resolve, reject, method });
      ws.send(JSON.stringify({ id, method, params }));
    });
  return { send, close: () => ws.close() };
}

async function pool(items, width, fn) {
  let i = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (i < items.length) await fn(items[i++]);
    }),
  );
}

/** Self time (ms) per node and the parent links of a CDP profile. */
function selfTimes(profile) {
  const self = new Map();
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + dt);
  }
  const parent = new Map();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  return { self, parent, byId: new Map(profile.nodes.map((n) => [n.id, n])) };
}

const label = (node) => {
  const { functionName, url, lineNumber } = node.callFrame;
  const file = url ? url.split("/").slice(-2).join("/") : "";
  return `${functionName || "(anonymous)"}${file && !file.endsWith(".wasm") ? ` ${file}:${lineNumber + 1}` : ""}`;
};

// Rust symbols as wasm names keep their path (`joingate::core::pipeline::...`); the groups
// say whose code it is.
const GROUPS = [
  ["(idle)", /^\(idle\)$/],
  ["(garbage collector)", /^\(garbage collector\)$/],
  ["(program): the runtime itself", /^\(program\)$/],
  ["joingate::core (pure logic)", /joingate::core::/],
  ["joingate::edge (I/O glue)", /joingate::edge::/],
  ["serde / serde_json", /serde_json|serde::|<serde/],
  ["worker crate", /worker::|worker_sys/],
  ["wasm-bindgen / js-sys / web-sys glue", /wasm_bindgen|js_sys|web_sys|__wbg|__wbindgen/],
  ["url crate", /url::|idna|percent_encoding/],
  ["Rust alloc / core / std", /alloc::|core::|std::|dlmalloc|memcpy|memmove|memset/],
  ["sha2 / base64 / crypto", /sha2|base64|Sha256|digest/],
];

function groupOf(name, url) {
  for (const [group, re] of GROUPS) if (re.test(name)) return group;
  if (url.endsWith(".wasm") || url.startsWith("wasm")) return "other wasm";
  if (url.includes("build/index.js")) return "wasm-bindgen / js-sys / web-sys glue";
  if (url.includes("js/")) return "js/ (entry, panic guard)";
  return "runtime JS and builtins";
}

async function main() {
  if (!wasmHasNames()) {
    console.warn("[profile] build/index_bg.wasm has no name section: run `bash scripts/build.sh --names` first for function names");
  }
  if (!["joingate", "floor", "durable"].includes(opts.target)) throw new Error("--target must be joingate, floor or durable");
  const sim = await startSimulator({ port: 0, token: "backend-secret" });
  const inspectorPort = await freePort();
  const onFloor = opts.target !== "joingate";
  const mf = new Miniflare({
    ...joingateOptions({
      orgLimit: 1_000_000,
      bindings: {
        SESSION_BACKEND_URL: sim.url,
        SESSION_BACKEND_TOKEN: "backend-secret",
        ADMIN_TOKEN,
        BACKEND_TIMEOUT_MS: "1500",
        QUEUE_MAX: "1000",
        CREDENTIALS_KEY: Buffer.alloc(32, 7).toString("base64"),
      },
    }),
    handleRuntimeStdio: (out, err) => {
      out.resume();
      err.resume();
    },
    host: "127.0.0.1",
    port: 0,
    // joingate seeds the records a floor reads, so a floor's run starts it without inspector.
    ...(onFloor ? {} : { inspectorPort }),
  });
  const seedUrl = String(await mf.ready).replace(/\/$/, "");
  const floor = onFloor
    ? new Miniflare({
        ...floorOptions({ backendUrl: sim.url, backendToken: "backend-secret", durable: opts.target === "durable" }),
        handleRuntimeStdio: (out, err) => {
          out.resume();
          err.resume();
        },
        host: "127.0.0.1",
        port: 0,
        inspectorPort,
      })
    : null;
  const url = floor ? String(await floor.ready).replace(/\/$/, "") : seedUrl;
  const request = async (method, pathname, token, json, base = url, stopAtEdge = false) => {
    const res = await fetch(base + pathname, {
      method,
      headers: {
        Authorization: `Bearer ${token}`,
        ...(json ? { "Content-Type": "application/json" } : {}),
        // The floors' edge rejection (joingate ignores the header): see docs/bench.md.
        ...(stopAtEdge ? { "X-Baseline-Stop": "edge" } : {}),
      },
      body: json ? JSON.stringify(json) : undefined,
    });
    return { status: res.status, text: await res.text() };
  };
  try {
    const minted = await request("POST", "/v1/admin/tokens", ADMIN_TOKEN, { org: "profile", capabilities: ["join", "read"] }, seedUrl);
    if (minted.status !== 201) throw new Error(`token: ${minted.status} ${minted.text}`);
    const token = JSON.parse(minted.text).data.token;
    await pool(SESSIONS, 8, async (sid) => {
      const res = await request("PUT", `/v1/admin/sessions/${sid}`, ADMIN_TOKEN, {
        org: "profile",
        limits: { join: RAISED, manage: RAISED, read: RAISED },
      }, seedUrl);
      if (res.status !== 200) throw new Error(`session ${sid}: ${res.status} ${res.text}`);
    });
    if (floor) {
      // The floor reads the very records joingate wrote (as in bench/bench.mjs).
      const from = await mf.getKVNamespace("JOINGATE_KV");
      const to = await floor.getKVNamespace("JOINGATE_KV");
      for (const { name } of (await from.list()).keys) await to.put(name, await from.get(name));
    }
    const expected = { join: 200, preview: 200, edge: 400 }[opts.path];
    if (!expected) throw new Error(`--path must be join, preview or edge`);
    const one = (sid) =>
      opts.path === "preview"
        ? request("GET", `/v1/sessions/${sid}/invites/${OPEN_CODE}`, token)
        : request("POST", `/v1/sessions/${sid}/groups/join`, token, {
            invite: opts.path === "edge" ? "https://chat.whatsapp.com.evil.example/NotAnInvite" : OPEN_CODE,
          }, url, opts.path === "edge");
    // Warm-up: every object exists and every code path has run (and been compiled).
    for (let round = 0; round < 4; round++) await pool(SESSIONS, CONNECTIONS, one);

    const inspector = await inspect(inspectorPort, "core:user:");
    await inspector.send("Profiler.enable");
    await inspector.send("Profiler.setSamplingInterval", { interval: Number(opts.interval) });
    await inspector.send("Profiler.start");
    const t0 = performance.now();
    let bad = 0;
    await pool(
      Array.from({ length: JOINS }, (_, i) => SESSIONS[i % SESSIONS.length]),
      CONNECTIONS,
      async (sid) => {
        if ((await one(sid)).status !== expected) bad++;
      },
    );
    const elapsedMs = performance.now() - t0;
    const { profile } = await inspector.send("Profiler.stop");
    inspector.close();

    fs.mkdirSync(path.join(HERE, "out"), { recursive: true });
    const out = path.join(HERE, `out/${opts.target}-${opts.path}.cpuprofile`);
    fs.writeFileSync(out, JSON.stringify(profile));

    const { self, parent, byId } = selfTimes(profile);
    let total = 0;
    let busy = 0;
    const byName = new Map();
    const byGroup = new Map();
    for (const [id, ms] of self) {
      const node = byId.get(id);
      total += ms;
      const name = label(node);
      if (name !== "(idle)") busy += ms;
      byName.set(name, (byName.get(name) ?? 0) + ms);
      const group = groupOf(node.callFrame.functionName, node.callFrame.url);
      byGroup.set(group, (byGroup.get(group) ?? 0) + ms);
    }
    // Inclusive time per entry point: the first frame below the root that is one of the
    // guard's methods (js/panic-guard.mjs) names the class through its Rust callee.
    const entryOf = (id) => {
      const chain = [];
      for (let at = id; at !== undefined; at = parent.get(at)) chain.push(byId.get(at));
      chain.reverse();
      for (const node of chain) {
        const name = node.callFrame.functionName;
        if (/SessionObject|session_object|edge::session::/.test(name)) return "session object";
        if (/OrgObject|org_object|edge::org::/.test(name)) return "org object";
        if (/queue|webhook_consumer/.test(name)) return "queue consumer";
      }
      for (const node of chain) if (/joingate::|__wbg|wasm/.test(node.callFrame.functionName + node.callFrame.url)) return "Worker (edge) and shared";
      return "outside the wasm (runtime, I/O completions)";
    };
    const byEntry = new Map();
    for (const [id, ms] of self) {
      if (byId.get(id).callFrame.functionName === "(idle)") continue;
      const entry = entryOf(id);
      byEntry.set(entry, (byEntry.get(entry) ?? 0) + ms);
    }

    const perCall = (ms) => ((ms / JOINS) * 1000).toFixed(0).padStart(6);
    const pct = (ms) => ((100 * ms) / busy).toFixed(1).padStart(5);
    console.log(`\n${JOINS} ${opts.path} calls, ${CONNECTIONS} connection(s), ${(elapsedMs / 1000).toFixed(1)} s, ${bad} unexpected statuses`);
    console.log(`isolate busy ${busy.toFixed(0)} ms of ${total.toFixed(0)} ms profiled: ${((busy / JOINS) * 1000).toFixed(0)} us per call (sampling every ${opts.interval} us)`);
    console.log(`profile: ${path.relative(ROOT, out)}\n`);
    console.log("us/call     %  by group (self time)");
    for (const [g, ms] of [...byGroup].filter(([g]) => g !== "(idle)").sort((a, b) => b[1] - a[1])) console.log(`${perCall(ms)} ${pct(ms)}  ${g}`);
    console.log("\nus/call     %  by entry point (self time of everything below it)");
    for (const [g, ms] of [...byEntry].sort((a, b) => b[1] - a[1])) console.log(`${perCall(ms)} ${pct(ms)}  ${g}`);
    console.log(`\nus/call     %  top ${TOP} functions (self time)`);
    for (const [name, ms] of [...byName].filter(([n]) => n !== "(idle)").sort((a, b) => b[1] - a[1]).slice(0, TOP)) {
      console.log(`${perCall(ms)} ${pct(ms)}  ${name.length > 150 ? name.slice(0, 147) + "..." : name}`);
    }
  } finally {
    await floor?.dispose();
    await mf.dispose();
    await sim.close?.();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
