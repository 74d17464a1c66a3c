// The envelope on every answer (404, 405, health, internal errors) and the log line.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { startJoingate, assertEnvelope, ROOT } from "./helpers.mjs";
import { internalErrorResponse } from "../js/internal-error.mjs";
import { withPanicGuard } from "../js/panic-guard.mjs";
import { DEMO } from "../sim/catalogue.mjs";

describe("basics", () => {
  let app;
  before(async () => {
    app = await startJoingate();
  });
  after(() => app.close());

  test("GET /healthz", async () => {
    const res = await app.request("GET", "/healthz");
    const version = readFileSync(path.join(ROOT, "Cargo.toml"), "utf8").match(/^version = "(.+)"$/m)[1];
    assert.deepEqual(assertEnvelope(res, { status: 200 }).data, { status: "ok", version });
  });

  test("unknown routes are 404 in the envelope", async () => {
    for (const pathname of ["/", "/nope", "/v1/sessions/", "/v1/tokens", "/healthz/", "/v1/sessions/s1/groups/join/x"]) {
      assertEnvelope(await app.request("GET", pathname), { status: 404, code: "not_found" });
    }
  });

  test("wrong methods are 405 with Allow", async () => {
    const cases = [
      ["POST", "/healthz", "GET"],
      ["GET", "/v1/sessions/s1/groups/join", "POST"],
      ["DELETE", "/v1/sessions/s1", "GET"],
      ["POST", "/v1/admin/sessions/s1", "GET, PUT, DELETE"],
      ["PATCH", "/v1/admin/tokens", "GET, POST"],
      ["POST", "/v1/sessions", "GET"],
      ["DELETE", "/v1/token", "GET"],
      // Methods the worker crate does not know (it reads them as GET) are still 405.
      ["QUERY", "/v1/sessions/s1", "GET"],
      ["PROPFIND", "/healthz", "GET"],
    ];
    for (const [method, pathname, allow] of cases) {
      const res = await app.request(method, pathname);
      assertEnvelope(res, { status: 405, code: "method_not_allowed" });
      assert.equal(res.headers.get("allow"), allow);
    }
  });

  test("the OpenAPI document is served as it is kept in the repository", async () => {
    const res = await app.request("GET", "/v1/openapi.json");
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/json; charset=utf-8");
    assert.deepEqual(res.body, JSON.parse(readFileSync(path.join(ROOT, "docs/openapi.json"), "utf8")));
  });

  test("one JSON log line per request, never holding a token or an invite code", async () => {
    const token = await app.token("acme", ["join"]);
    await app.session("logged", "acme");
    app.logs.length = 0;
    const res = await app.join("logged", token, { invite: `https://chat.whatsapp.com/${DEMO.open.code}` });
    assertEnvelope(res, { status: 200 });
    const lines = app.logs.map((line) => JSON.parse(line));
    const line = lines.find((l) => l.request_id === res.headers.get("x-request-id"));
    assert.ok(line, "a line for the request");
    assert.equal(line.route, "/v1/sessions/{sid}/groups/join");
    assert.equal(line.session, "logged");
    assert.equal(line.status, 200);
    assert.equal(typeof line.latency_ms, "number");
    assert.equal(typeof line.backend_ms, "number");
    assert.match(line.token_id, /^tok_[0-9a-f]{16}$/);
    const all = app.logs.join("\n");
    assert.ok(!all.includes(token), "no token in the logs");
    assert.ok(!all.includes(token.slice(3, 20)), "no large part of a token in the logs");
    assert.ok(!all.includes(DEMO.open.code), "no invite code in the logs");
  });
});

describe("internal errors", () => {
  test("an exception thrown past the Rust handler still answers in the envelope", async () => {
    const request = new Request("http://joingate.test/x", { headers: { "X-Request-Id": "keep-me" } });
    const res = internalErrorResponse(request, new WebAssembly.RuntimeError("unreachable"));
    assert.equal(res.status, 500);
    assert.equal(res.headers.get("content-type"), "application/json; charset=utf-8");
    assert.equal(res.headers.get("cache-control"), "no-store");
    assert.equal(res.headers.get("x-request-id"), "keep-me");
    const body = await res.json();
    assert.equal(body.success, false);
    assert.equal(body.error.code, "internal_error");
    assert.equal(body.request_id, "keep-me");
    assert.match(body.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  });

  // The guard around the generated entrypoint, with a stand-in base class: a real panic
  // needs a Worker built with one, which the product must never contain.
  test("a panic answers every request in flight with internal_error", async () => {
    const state = { criticalError: false, instanceId: 1 };
    class Hanging {
      fetch() {
        return new Promise(() => {}); // a panicked Rust future never settles
      }
    }
    const Guarded = withPanicGuard(Hanging, state);
    const worker = new Guarded();
    const pending = [1, 2].map((n) =>
      worker.fetch(new Request("http://joingate.test/", { headers: { "X-Request-Id": `req-${n}` } })),
    );
    state.criticalError = true; // what the worker crate's panic hook does
    const answers = await Promise.all(pending);
    for (const [i, res] of answers.entries()) {
      assert.equal(res.status, 500);
      const body = await res.json();
      assert.equal(body.error.code, "internal_error");
      assert.equal(body.request_id, `req-${i + 1}`);
    }
  });

  test("one panic reaches the guards of both the Worker and the object", async () => {
    const state = { criticalError: false };
    class Hanging {
      fetch() {
        return new Promise(() => {});
      }
    }
    const worker = new (withPanicGuard(Hanging, state))();
    const object = new (withPanicGuard(Hanging, state))();
    const pending = [worker, object].map((target) => target.fetch(new Request("http://joingate.test/")));
    state.criticalError = true;
    for (const res of await Promise.all(pending)) assert.equal(res.status, 500);
  });

  test("the guard passes answers through and turns exceptions into the envelope", async () => {
    const state = { criticalError: false };
    class Base {
      async fetch(request) {
        if (request.url.endsWith("/throw")) throw new TypeError("boom");
        return new Response("fine");
      }
    }
    const worker = new (withPanicGuard(Base, state))();
    assert.equal(await (await worker.fetch(new Request("http://joingate.test/ok"))).text(), "fine");
    const failed = await worker.fetch(new Request("http://joingate.test/throw"));
    assert.equal(failed.status, 500);
    assert.equal((await failed.json()).error.code, "internal_error");
  });

  test("an invalid request id is replaced", async () => {
    const request = new Request("http://joingate.test/x", { headers: { "X-Request-Id": "bad id" } });
    const res = internalErrorResponse(request, new Error("x"));
    assert.match(res.headers.get("x-request-id"), /^[0-9a-f]{32}$/);
  });
});
