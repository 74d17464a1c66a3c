// The floor of joingate's topology: a minimal JavaScript Worker with joingate's bindings
// (KV JOINGATE_KV, SQLite-backed Durable Object class SESSIONS, ratelimit ORG_LIMITER) that
// does joingate's I/O hops in joingate's order and nothing else (see docs/bench.md):
//
//   1. KV read of the token record `token:<sha256 hex of the bearer token>`
//   2. KV read of the session record `session:<sid>`
//   3. the org rate limiter, keyed by the token record's org (its outcome is not acted on)
//   4. Durable Object stub fetch, the call in the X-Joingate-Call header
//   5. the object calls the backend; its status and body are passed back as they are
//
// No validation, no envelope, no logging, no backend deadline, no SQLite statements.
// Only the minimum to make the hops possible: the bearer value is hashed (it names the KV
// key), a missing record answers 401/404 (there is nothing to pass on), the backend path is
// the client path without its "/v1" prefix, and a join body's `invite` is sent on as the
// backend's `code` (the backend protocol's field name).
//
// Two deliberate additions, both free of I/O:
// - The object serialises its backend calls with a promise chain, because joingate's
//   contract does (one backend call in flight per session, in arrival order). Without it
//   the hot-session scenario would compare a serialised service with a parallel one.
// - A request with `X-Baseline-Stop: edge` stops after step 3 plus reading the body and
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

    // 1. token record
    const auth = request.headers.get("Authorization") ?? "";
    const token = auth.slice(auth.indexOf(" ") + 1);
    const record = await env.JOINGATE_KV.get(`token:${await sha256Hex(token)}`, "json");
    if (record === null) return answer(401, '{"error":"unauthorized"}');

    // 2. session record (/v1/sessions/{sid}/...)
    const sid = url.pathname.split("/")[3] ?? "";
    const session = await env.JOINGATE_KV.get(`session:${sid}`, "json");
    if (session === null) return answer(404, '{"error":"not_found"}');

    // 3. org limiter
    await env.ORG_LIMITER.limit({ key: record.org });

    const body = request.method === "POST" ? await request.text() : null;
    if (request.headers.get("X-Baseline-Stop") === "edge") {
      return answer(400, '{"error":"rejected_at_edge"}');
    }

    // 4. Durable Object of the session
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

export class SessionObject {
  constructor(state, env) {
    this.env = env;
    this.tail = Promise.resolve();
  }

  async fetch(request) {
    const call = JSON.parse(request.headers.get("X-Joingate-Call"));
    const headers = { Accept: "application/json" };
    if (this.env.SESSION_BACKEND_TOKEN) headers.Authorization = `Bearer ${this.env.SESSION_BACKEND_TOKEN}`;
    if (call.body !== null) headers["Content-Type"] = "application/json";
    // 5. the backend, one call at a time in arrival order
    const send = async () => {
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
