// The floors of joingate's topology: a minimal JavaScript Worker with joingate's bindings
// (KV JOINGATE_KV, SQLite-backed Durable Object classes SESSIONS and ORGS) that does
// joingate's I/O hops in joingate's order and nothing else (see docs/bench.md):
//
//   1. at once: the KV read of the session record `session:<sid>`, and the KV read of the
//      token record `token:<sha256 hex of the bearer token>` followed by the org's object
//      (ORGS, keyed by the token record's org; its answer is not acted on)
//   2. Durable Object stub fetch, the call in the X-Joingate-Call header
//   3. the object calls the backend; its status and body are passed back as they are
//
// Two floors, one code: with DURABLE = "1" each object writes one SQLite row per call (the
// org's object before it answers, the session's object before the backend call): the
// least a durable limiter can do, so the least any correct joingate can do. Without it, the
// *no-logic floor*: no SQLite at all.
//
// No validation, no envelope, no logging, no backend deadline.
// Only the minimum to make the hops possible: the bearer value is hashed (it names the KV
// key), a missing record answers 401/404 (there is nothing to pass on), the backend path is
// the client path without its "/v1" prefix, and a join body's `invite` is sent on as the
// backend's `code` (the backend protocol's field name).
//
// Two deliberate additions, both free of I/O:
// - The object serialises its backend calls with a promise chain, because joingate's
//   contract does (one backend call in flight per session, in arrival order). Without it
//   the hot-session scenario would compare a serialised service with a parallel one.
// - A request with `X-Baseline-Stop: edge` stops after step 1 plus reading the body and
//   answers a fixed 400: the floor of joingate's edge rejection (an invalid invite), which
//   does exactly those hops before answering 400. joingate ignores that header.

const encoder = new TextEncoder();
const JSON_HEADERS = { "Content-Type": "application/json; charset=utf-8" };

async function sha256Hex(text) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
  let out = "";
  for (const byte of digest) out += byte.toString(16).padStart(2, "0");
  return out;
}

const answer = (status, body) => new Response(body, { status, headers: JSON_HEADERS });

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/healthz") return answer(200, '{"status":"ok"}');

    // 1. the session record (/v1/sessions/{sid}/...) beside the token's record and then
    // the org's object, as joingate reads them
    const auth = request.headers.get("Authorization") ?? "";
    const token = auth.slice(auth.indexOf(" ") + 1);
    const sid = url.pathname.split("/")[3] ?? "";
    const counted = (async () => {
      const record = await env.JOINGATE_KV.get(`token:${await sha256Hex(token)}`, "json");
      if (record === null) return null;
      const org = env.ORGS.get(env.ORGS.idFromName(record.org));
      return (await org.fetch("https://org/take", { method: "POST" })).text();
    })();
    const [verdict, session] = await Promise.all([counted, env.JOINGATE_KV.get(`session:${sid}`, "json")]);
    if (verdict === null) return answer(401, '{"error":"unauthorized"}');
    if (session === null) return answer(404, '{"error":"not_found"}');

    const body = request.method === "POST" ? await request.text() : null;
    if (request.headers.get("X-Baseline-Stop") === "edge") {
      return answer(400, '{"error":"rejected_at_edge"}');
    }

    // 2. Durable Object of the session
    const call = {
      method: request.method,
      path: url.pathname.slice(3),
      body: body === null ? null : JSON.stringify({ code: JSON.parse(body).invite }),
    };
    const stub = env.SESSIONS.get(env.SESSIONS.idFromName(sid));
    const response = await stub.fetch("https://session/call", {
      method: "POST",
      headers: { "X-Joingate-Call": JSON.stringify(call) },
    });
    return new Response(response.body, { status: response.status, headers: JSON_HEADERS });
  },
};

/** One row written per call when DURABLE is set: an UPSERT of a counter, in one commit. */
function durableWrite(state, env) {
  if (env.DURABLE !== "1") return;
  state.storage.sql.exec(
    "INSERT INTO hits (id, n, at) VALUES (1, 1, ?) ON CONFLICT (id) DO UPDATE SET n = n + 1, at = excluded.at",
    Date.now(),
  );
}

function ensureTable(state, env) {
  if (env.DURABLE === "1") {
    state.storage.sql.exec("CREATE TABLE IF NOT EXISTS hits (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, at INTEGER NOT NULL)");
  }
}

export class OrgObject {
  constructor(state, env) {
    this.state = state;
    this.env = env;
    ensureTable(state, env);
  }

  async fetch() {
    durableWrite(this.state, this.env);
    return new Response('{"allowed":true}');
  }
}

export class SessionObject {
  constructor(state, env) {
    this.state = state;
    this.env = env;
    this.tail = Promise.resolve();
    ensureTable(state, env);
  }

  async fetch(request) {
    const call = JSON.parse(request.headers.get("X-Joingate-Call"));
    const headers = { Accept: "application/json" };
    if (this.env.SESSION_BACKEND_TOKEN) headers.Authorization = `Bearer ${this.env.SESSION_BACKEND_TOKEN}`;
    if (call.body !== null) headers["Content-Type"] = "application/json";
    // 3. the backend, one call at a time in arrival order (the row first, as a limiter
    // spends its token before the call)
    const send = async () => {
      durableWrite(this.state, this.env);
      const res = await fetch(`${this.env.SESSION_BACKEND_URL}${call.path}`, {
        method: call.method,
        headers,
        body: call.body,
      });
      return { status: res.status, text: await res.text() };
    };
    const result = this.tail.then(send, send);
    this.tail = result.catch(() => {});
    const { status, text } = await result;
    return new Response(text, { status });
  }
}
