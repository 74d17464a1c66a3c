// The admin API (API.md section 4): without ADMIN_TOKEN, and tokens and sessions with it,
// black-box through HTTP against the built Worker in workerd (Miniflare) and the simulator.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { startJoingate, assertEnvelope, assertInvalid, errorShape, ADMIN_TOKEN, freshWindow } from "./helpers.mjs";
import { DEMO } from "../sim/catalogue.mjs";

const OPEN_CODE = DEMO.open.code;
const JOIN_BODY = { invite: OPEN_CODE };
const TOKEN_RE = /^jg_[0-9A-Za-z]{39}$/;
const TOKEN_ID_RE = /^tok_[0-9a-f]{16}$/;
const RFC3339_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;
// The suite's join pace (tests/helpers.mjs TEST_PACE); the deployment's is 1 and 2.
const DEFAULT_LIMITS = {
  join: { per_minute: 4, burst: 4 },
  manage: { per_minute: 30, burst: 10 },
  read: { per_minute: 60, burst: 20 },
};

/** An RFC 3339 UTC date-time, whole seconds, `ms` from now. */
const rfc3339In = (ms) => new Date(Date.now() + ms).toISOString().replace(/\.\d{3}Z$/, "Z");

// ---------------------------------------------------------------------------------------

describe("admin API without ADMIN_TOKEN configured", () => {
  let app;
  before(async () => {
    app = await startJoingate({ vars: { ADMIN_TOKEN: "" } });
  });
  after(() => app?.close());

  const routes = [
    ["POST", "/v1/admin/tokens", { org: "acme", capabilities: ["join"] }],
    ["DELETE", "/v1/admin/tokens/tok_0123456789abcdef"],
    ["PUT", "/v1/admin/sessions/s1", { org: "acme" }],
    ["GET", "/v1/admin/sessions/s1"],
    ["DELETE", "/v1/admin/sessions/s1"],
  ];

  it("every admin route answers 404 not_found, whatever the Authorization", async () => {
    const unknownRoute = await app.request("GET", "/v1/nothing-here");
    assertEnvelope(unknownRoute, { status: 404, code: "not_found" });
    for (const [method, path, json] of routes) {
      for (const token of [ADMIN_TOKEN, "", undefined, "anything"]) {
        const headers = token === "" ? { Authorization: "Bearer " } : {};
        const res = await app.request(method, path, { token: token || undefined, json, headers });
        assertEnvelope(res, { status: 404, code: "not_found" });
        // Indistinguishable from a route that does not exist.
        assert.deepEqual(errorShape(res), errorShape(unknownRoute), `${method} ${path}`);
      }
    }
  });

  it("wrong methods on admin paths are 404 too, never a 405 that reveals them", async () => {
    for (const [method, path] of [
      ["GET", "/v1/admin/tokens"],
      ["POST", "/v1/admin/sessions/s1"],
      ["POST", "/v1/admin/tokens/tok_0123456789abcdef"],
    ]) {
      const res = await app.request(method, path, { token: ADMIN_TOKEN });
      assertEnvelope(res, { status: 404, code: "not_found" });
      assert.equal(res.headers.get("allow"), null, `${method} ${path}`);
    }
  });

  it("a registered-looking session is not reachable either (nothing was registered)", async () => {
    const res = await app.request("GET", "/v1/sessions/s1", { token: "jg_x" });
    assertEnvelope(res, { status: 401, code: "unauthorized" });
    assert.equal(app.sim.calls().length, 0);
  });
});

// ---------------------------------------------------------------------------------------

describe("admin API", () => {
  let app;
  before(async () => {
    app = await startJoingate({ orgLimit: 1000 });
  });
  after(() => app?.close());

  describe("admin authentication", () => {
    const routes = [
      ["POST", "/v1/admin/tokens", { org: "acme", capabilities: ["join"] }],
      ["DELETE", "/v1/admin/tokens/tok_0123456789abcdef"],
      ["PUT", "/v1/admin/sessions/adm-auth", { org: "acme" }],
      ["GET", "/v1/admin/sessions/adm-auth"],
      ["DELETE", "/v1/admin/sessions/adm-auth"],
    ];
    const badAuth = [
      ["missing", {}],
      ["wrong bearer", { Authorization: "Bearer wrong-admin-token" }],
      ["admin token with a suffix", { Authorization: `Bearer ${ADMIN_TOKEN}x` }],
      ["admin token prefix", { Authorization: `Bearer ${ADMIN_TOKEN.slice(0, -1)}` }],
      ["non-Bearer scheme", { Authorization: `Basic ${ADMIN_TOKEN}` }],
      ["bare token without scheme", { Authorization: ADMIN_TOKEN }],
      ["empty bearer", { Authorization: "Bearer " }],
    ];

    it("missing or wrong admin bearer → 401 unauthorized on every admin route", async () => {
      let reference;
      for (const [method, path, json] of routes) {
        for (const [what, headers] of badAuth) {
          const res = await app.request(method, path, { json, headers });
          assertEnvelope(res, { status: 401, code: "unauthorized" });
          reference ??= res.body.error;
          assert.deepEqual(res.body.error, reference, `one answer for every refusal: ${what} ${method} ${path}`);
        }
      }
      // Nothing was created by the refused PUT.
      const del = await app.admin("DELETE", "/v1/admin/sessions/adm-auth");
      assertEnvelope(del, { status: 404, code: "not_found" });
    });

    it("an API token (even with every capability) is not an admin token", async () => {
      const token = await app.token("acme");
      const res = await app.request("POST", "/v1/admin/tokens", {
        token,
        json: { org: "acme", capabilities: ["join"] },
      });
      assertEnvelope(res, { status: 401, code: "unauthorized" });
    });
  });

  describe("POST /v1/admin/tokens", () => {
    it("mints a token and echoes its record (201)", async () => {
      const expires = "2099-12-31T23:59:59Z";
      const res = await app.admin("POST", "/v1/admin/tokens", {
        org: "acme-1",
        capabilities: ["join", "read"],
        sessions: ["s-a", "s_b"],
        expires_at: expires,
        label: "ci pipeline",
      });
      const { data } = assertEnvelope(res, { status: 201 });
      assert.match(data.token, TOKEN_RE);
      assert.match(data.token_id, TOKEN_ID_RE);
      assert.equal(data.org, "acme-1");
      assert.deepEqual([...data.capabilities].sort(), ["join", "read"]);
      assert.deepEqual(data.sessions, ["s-a", "s_b"]);
      assert.match(data.expires_at, RFC3339_RE);
      assert.equal(Date.parse(data.expires_at), Date.parse(expires));
      assert.equal(data.label, "ci pipeline");
      assert.ok(!JSON.stringify(data).includes("hash"), "no hash in the answer");
    });

    it("a minimal body mints a token without sessions or expires_at; each token is new", async () => {
      const first = await app.admin("POST", "/v1/admin/tokens", { org: "acme", capabilities: ["manage"] });
      const second = await app.admin("POST", "/v1/admin/tokens", { org: "acme", capabilities: ["manage"] });
      const a = assertEnvelope(first, { status: 201 }).data;
      const b = assertEnvelope(second, { status: 201 }).data;
      assert.match(a.token, TOKEN_RE);
      assert.deepEqual(a.capabilities, ["manage"]);
      assert.equal(a.sessions, undefined);
      assert.equal(a.expires_at, undefined);
      assert.notEqual(a.token, b.token);
      assert.notEqual(a.token_id, b.token_id);
    });

    it("expires_at with an offset is accepted and echoed as the same instant", async () => {
      const res = await app.admin("POST", "/v1/admin/tokens", {
        org: "acme",
        capabilities: ["read"],
        expires_at: "2099-06-15T14:00:00+02:00",
      });
      const { data } = assertEnvelope(res, { status: 201 });
      assert.match(data.expires_at, RFC3339_RE);
      assert.equal(Date.parse(data.expires_at), Date.parse("2099-06-15T12:00:00Z"));
    });

    it("KV never holds the token itself, only its hash", async () => {
      const token = await app.token("kvcheck", ["read"]);
      const kv = await app.mf.getKVNamespace("JOINGATE_KV");
      let cursor;
      let seen = 0;
      do {
        const page = await kv.list({ cursor });
        for (const { name } of page.keys) {
          seen++;
          assert.ok(!name.includes(token), `KV key holds the token: ${name}`);
          const value = (await kv.get(name)) ?? "";
          assert.ok(!value.includes(token), `KV value under ${name} holds the token`);
        }
        cursor = page.list_complete ? undefined : page.cursor;
      } while (cursor);
      assert.ok(seen > 0, "KV holds the token records");
    });

    const base = { org: "acme", capabilities: ["join"] };
    const invalid = [
      ["missing org", { capabilities: ["join"] }, "org"],
      ["null org", { org: null, capabilities: ["join"] }, "org"],
      ["org with a space", { org: "a b", capabilities: ["join"] }, "org"],
      ["org with a dot", { org: "acme.com", capabilities: ["join"] }, "org"],
      ["org of 65 chars", { org: "a".repeat(65), capabilities: ["join"] }, "org"],
      ["empty org", { org: "", capabilities: ["join"] }, "org"],
      ["org not a string", { org: 7, capabilities: ["join"] }, "org"],
      ["missing capabilities", { org: "acme" }, "capabilities"],
      ["unknown capability", { ...base, capabilities: ["join", "admin"] }, "capabilities"],
      ["capability in another case", { ...base, capabilities: ["JOIN"] }, "capabilities"],
      ["empty capability list", { ...base, capabilities: [] }, "capabilities"],
      ["capabilities not a list", { ...base, capabilities: "join" }, "capabilities"],
      ["capabilities holding a number", { ...base, capabilities: [1] }, "capabilities"],
      ["expires_at in the past", { ...base, expires_at: "2001-01-01T00:00:00Z" }, "expires_at"],
      ["expires_at now-ish (past by a minute)", { ...base, expires_at: rfc3339In(-60_000) }, "expires_at"],
      ["expires_at a date only", { ...base, expires_at: "2099-01-01" }, "expires_at"],
      ["expires_at words", { ...base, expires_at: "tomorrow" }, "expires_at"],
      ["expires_at a number", { ...base, expires_at: 4102444800 }, "expires_at"],
      ["expires_at with an impossible date", { ...base, expires_at: "2099-02-30T00:00:00Z" }, "expires_at"],
      ["expires_at without offset", { ...base, expires_at: "2099-01-01T00:00:00" }, "expires_at"],
      ["sessions empty", { ...base, sessions: [] }, "sessions"],
      ["sessions with a bad id", { ...base, sessions: ["ok", "bad id"] }, /^sessions(\[1\])?$/],
      ["sessions with a too long id", { ...base, sessions: ["s".repeat(65)] }, /^sessions(\[0\])?$/],
      ["sessions with a number", { ...base, sessions: [5] }, /^sessions(\[0\])?$/],
      ["sessions not a list", { ...base, sessions: "s1" }, "sessions"],
      ["label not a string", { ...base, label: 5 }, "label"],
      ["unknown field", { ...base, scope: "all" }, "scope"],
    ];
    for (const [what, json, field] of invalid) {
      it(`400 validation_error: ${what}`, async () => {
        const res = await app.admin("POST", "/v1/admin/tokens", json);
        assertInvalid(res, field);
      });
    }

    const headers = { "Content-Type": "application/json", Authorization: `Bearer ${ADMIN_TOKEN}` };
    for (const [what, body] of [
      ["a JSON array", "[]"],
      ["a JSON string", '"acme"'],
      ["a JSON number", "42"],
      ["JSON null", "null"],
    ]) {
      it(`400 validation_error for a body that is ${what} (not an object)`, async () => {
        const res = await app.request("POST", "/v1/admin/tokens", { body, headers });
        assertInvalid(res, "body");
      });
    }

    for (const [what, body] of [
      ["truncated JSON", '{"org":"acme","capabilities":["join"]'],
      ["not JSON at all", "org=acme&capabilities=join"],
      ["an empty body", ""],
    ]) {
      it(`400 validation_error for ${what}`, async () => {
        const res = await app.request("POST", "/v1/admin/tokens", { body, headers });
        assertInvalid(res, "body");
      });
    }

    it("415 unsupported_media_type for a body that is not application/json", async () => {
      const body = JSON.stringify(base);
      for (const contentType of ["text/plain", "application/x-www-form-urlencoded", "application/jsonx"]) {
        const res = await app.request("POST", "/v1/admin/tokens", {
          body,
          headers: { "Content-Type": contentType, Authorization: `Bearer ${ADMIN_TOKEN}` },
        });
        assertEnvelope(res, { status: 415, code: "unsupported_media_type" });
      }
      const noType = await app.request("POST", "/v1/admin/tokens", {
        body: new TextEncoder().encode(body),
        headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      assertEnvelope(noType, { status: 415, code: "unsupported_media_type" });
      // Parameters and case of the media type do not matter.
      const withCharset = await app.request("POST", "/v1/admin/tokens", {
        body,
        headers: { "Content-Type": "Application/JSON; charset=utf-8", Authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      assertEnvelope(withCharset, { status: 201 });
    });

    it("413 payload_too_large over 16 KiB; exactly 16 KiB is read", async () => {
      const head = JSON.stringify(base).slice(0, -1);
      const padded = (size) => head + " ".repeat(size - head.length - 1) + "}";
      const exact = padded(16 * 1024);
      assert.equal(Buffer.byteLength(exact), 16384);
      const ok = await app.request("POST", "/v1/admin/tokens", { body: exact, headers });
      assertEnvelope(ok, { status: 201 });
      const over = await app.request("POST", "/v1/admin/tokens", { body: padded(16 * 1024 + 1), headers });
      assertEnvelope(over, { status: 413, code: "payload_too_large" });
      const big = await app.admin("POST", "/v1/admin/tokens", { ...base, label: "x".repeat(20_000) });
      assertEnvelope(big, { status: 413, code: "payload_too_large" });
    });
  });

  describe("DELETE /v1/admin/tokens/{token_id}", () => {
    it("revokes (200), and revoking again answers the same", async () => {
      const created = await app.admin("POST", "/v1/admin/tokens", { org: "acme", capabilities: ["read"] });
      const { token_id } = assertEnvelope(created, { status: 201 }).data;
      const first = await app.admin("DELETE", `/v1/admin/tokens/${token_id}`);
      assert.deepEqual(assertEnvelope(first, { status: 200 }).data, { token_id, revoked: true });
      const again = await app.admin("DELETE", `/v1/admin/tokens/${token_id}`);
      assert.deepEqual(assertEnvelope(again, { status: 200 }).data, { token_id, revoked: true });
    });

    it("an unknown well-formed id → 404 not_found", async () => {
      const res = await app.admin("DELETE", "/v1/admin/tokens/tok_0123456789abcdef");
      assertEnvelope(res, { status: 404, code: "not_found" });
    });

    for (const bad of ["tok_123", "tok_0123456789ABCDEF", "tok_0123456789abcdeg", "tik_0123456789abcdef", "0123456789abcdef", "tok_0123456789abcdef0"]) {
      it(`a malformed id (${bad}) → 400 validation_error field token_id`, async () => {
        const res = await app.admin("DELETE", `/v1/admin/tokens/${bad}`);
        assertInvalid(res, "token_id");
      });
    }

    it("a token (the secret itself) is not accepted as a token_id", async () => {
      const token = await app.token("acme", ["read"]);
      const res = await app.admin("DELETE", `/v1/admin/tokens/${token}`);
      assertInvalid(res, "token_id");
    });
  });

  describe("PUT /v1/admin/sessions/{sid}", () => {
    it("without limits the answer carries the complete defaults", async () => {
      const res = await app.admin("PUT", "/v1/admin/sessions/put-defaults", { org: "acme" });
      const { data } = assertEnvelope(res, { status: 200 });
      assert.deepEqual(data, { session_id: "put-defaults", org: "acme", limits: DEFAULT_LIMITS, backend: null, protection: {}, events: false });
    });

    it("partial overrides are merged with the defaults, in the answer and in session status", async () => {
      const res = await app.admin("PUT", "/v1/admin/sessions/put-partial", {
        org: "acme",
        limits: { join: { burst: 2 }, read: { per_minute: 120 } },
      });
      const expected = {
        join: { per_minute: 4, burst: 2 },
        manage: { per_minute: 30, burst: 10 },
        read: { per_minute: 120, burst: 20 },
      };
      const { data } = assertEnvelope(res, { status: 200 });
      assert.deepEqual(data, { session_id: "put-partial", org: "acme", limits: expected, backend: null, protection: {}, events: false });
      const token = await app.token("acme", ["read"]);
      const status = await app.request("GET", "/v1/sessions/put-partial", { token });
      assert.deepEqual(assertEnvelope(status, { status: 200 }).data.limits, expected);
    });

    it("range edges are accepted, and a later PUT replaces the earlier one", async () => {
      const edges = {
        join: { per_minute: 1, burst: 1 },
        manage: { per_minute: 6000, burst: 1000 },
        read: { per_minute: 6000, burst: 1 },
      };
      const res = await app.admin("PUT", "/v1/admin/sessions/put-edges", { org: "acme", limits: edges });
      assert.deepEqual(assertEnvelope(res, { status: 200 }).data.limits, edges);
      const again = await app.admin("PUT", "/v1/admin/sessions/put-edges", { org: "acme2" });
      assert.deepEqual(assertEnvelope(again, { status: 200 }).data, {
        session_id: "put-edges",
        org: "acme2",
        limits: DEFAULT_LIMITS,
        backend: null,
        protection: {},
        events: false,
      });
      // GET answers the record as the last PUT left it.
      const get = await app.admin("GET", "/v1/admin/sessions/put-edges");
      assert.deepEqual(assertEnvelope(get, { status: 200 }).data, assertEnvelope(again).data);
      assertEnvelope(await app.admin("GET", "/v1/admin/sessions/never-put"), { status: 404, code: "not_found" });
    });

    for (const bad of ["bad.sid", "s".repeat(65), "bad%20sid", "b%C3%A9"]) {
      it(`an invalid sid (${bad.length > 20 ? "65 chars" : bad}) → 400 field sid`, async () => {
        const res = await app.admin("PUT", `/v1/admin/sessions/${bad}`, { org: "acme" });
        assertInvalid(res, "sid");
        const del = await app.admin("DELETE", `/v1/admin/sessions/${bad}`);
        assertInvalid(del, "sid");
      });
    }

    const invalidBodies = [
      ["burst 0", { join: { burst: 0 } }, "limits.join.burst"],
      ["burst 1001", { manage: { burst: 1001 } }, "limits.manage.burst"],
      ["burst fractional", { read: { burst: 1.5 } }, "limits.read.burst"],
      ["burst negative", { read: { burst: -1 } }, "limits.read.burst"],
      ["burst a string", { join: { burst: "4" } }, "limits.join.burst"],
      ["per_minute 6001", { join: { per_minute: 6001 } }, "limits.join.per_minute"],
      ["per_minute 0", { manage: { per_minute: 0 } }, "limits.manage.per_minute"],
      ["unknown class", { admin: { burst: 1 } }, "limits.admin"],
      ["unknown field in a class", { join: { rate: 1 } }, "limits.join.rate"],
      ["a class that is not an object", { join: 5 }, "limits.join"],
      ["limits not an object", "fast", "limits"],
    ];
    for (const [what, limits, field] of invalidBodies) {
      it(`bad limits (${what}) → 400 field ${field}`, async () => {
        const res = await app.admin("PUT", "/v1/admin/sessions/put-bad", { org: "acme", limits });
        assertInvalid(res, field);
      });
    }

    for (const [what, json, field] of [
      ["missing org", { limits: {} }, "org"],
      ["bad org", { org: "a/b" }, "org"],
      ["unknown field", { org: "acme", owner: "x" }, "owner"],
    ]) {
      it(`bad session body (${what}) → 400 field ${field}`, async () => {
        const res = await app.admin("PUT", "/v1/admin/sessions/put-bad", json);
        assertInvalid(res, field);
      });
    }

    it("the refused PUTs registered nothing", async () => {
      const res = await app.admin("DELETE", "/v1/admin/sessions/put-bad");
      assertEnvelope(res, { status: 404, code: "not_found" });
    });

    it("a PUT body that is not application/json → 415, over 16 KiB → 413", async () => {
      const wrongType = await app.request("PUT", "/v1/admin/sessions/put-media", {
        body: JSON.stringify({ org: "acme" }),
        headers: { "Content-Type": "text/plain", Authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      assertEnvelope(wrongType, { status: 415, code: "unsupported_media_type" });
      const big = await app.request("PUT", "/v1/admin/sessions/put-media", {
        body: `{"org":"acme"${" ".repeat(17_000)}}`,
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      assertEnvelope(big, { status: 413, code: "payload_too_large" });
    });
  });

  describe("DELETE /v1/admin/sessions/{sid}", () => {
    it("deletes (200 deleted:true), then 404; the org's token then gets 404 on it", async () => {
      await app.session("del-me", "acme-del");
      const token = await app.token("acme-del", ["join", "read", "manage"]);
      const before = await app.request("GET", "/v1/sessions/del-me", { token });
      assertEnvelope(before, { status: 200 });
      const callsBefore = app.sim.calls("del-me").length;

      const del = await app.admin("DELETE", "/v1/admin/sessions/del-me");
      assert.deepEqual(assertEnvelope(del, { status: 200 }).data, { session_id: "del-me", deleted: true });
      const again = await app.admin("DELETE", "/v1/admin/sessions/del-me");
      assertEnvelope(again, { status: 404, code: "not_found" });

      const status = await app.request("GET", "/v1/sessions/del-me", { token });
      assertEnvelope(status, { status: 404, code: "not_found" });
      const join = await app.join("del-me", token, JOIN_BODY);
      assertEnvelope(join, { status: 404, code: "not_found" });
      assert.equal(app.sim.calls("del-me").length, callsBefore, "no backend call after delete");
    });

    it("an unregistered session → 404 not_found", async () => {
      const res = await app.admin("DELETE", "/v1/admin/sessions/never-registered");
      assertEnvelope(res, { status: 404, code: "not_found" });
    });
  });
});

// ---------------------------------------------------------------------------------------

describe("an ADMIN_TOKEN under 32 characters", () => {
  const short = "short-admin-token-of-31-chars-x";
  let app;
  before(async () => {
    assert.equal(short.length, 31);
    app = await startJoingate({ vars: { ADMIN_TOKEN: short }, adminLimit: 10 });
  });
  after(() => app?.close());

  it("counts as not configured: every admin route is 404, even with that token, and nothing is counted", async () => {
    const unknownRoute = await app.request("GET", "/v1/nothing-here");
    for (let i = 0; i < 12; i++) {
      for (const [method, path, json] of [
        ["POST", "/v1/admin/tokens", { org: "acme", capabilities: ["join"] }],
        ["GET", "/v1/admin/sessions/s1"],
        ["GET", "/v1/admin/tokens/tok_0123456789abcdef"],
      ]) {
        const res = await app.request(method, path, { token: i % 2 ? short : "wrong", json, headers: { "CF-Connecting-IP": "198.51.100.9" } });
        assert.deepEqual(errorShape(res), errorShape(unknownRoute), `${method} ${path}`);
      }
    }
  });

  it("one log line says why, without the value", async () => {
    const why = app.logs.filter((l) => l.includes("ADMIN_TOKEN is shorter than 32 characters"));
    assert.equal(why.length, 1, "said once");
    for (const line of app.logs) assert.ok(!line.includes(short), line);
  });
});

describe("failed admin authentications are throttled per client address", () => {
  let app;
  before(async () => {
    app = await startJoingate({ adminLimit: 10 });
  });
  after(() => app?.close());

  const from = (address, token) =>
    app.request("GET", "/v1/admin/sessions/throttle-s", { token, headers: { "CF-Connecting-IP": address } });

  /** The binding counts in fixed one-minute windows: start a series well inside one. */
  it("the 11th failure from one address is 429 scope admin, and so is the right token from it then", async () => {
    await app.session("throttle-s");
    await freshWindow();
    const address = "203.0.113.7";
    for (let i = 0; i < 10; i++) {
      const res = await from(address, i % 2 ? "wrong-admin-token" : undefined);
      assertEnvelope(res, { status: 401, code: "unauthorized" });
    }
    for (const token of ["wrong-admin-token", ADMIN_TOKEN, undefined]) {
      const res = await from(address, token);
      const body = assertEnvelope(res, { status: 429, code: "rate_limited" });
      assert.equal(body.error.details.scope, "admin");
      assert.equal(res.headers.get("retry-after"), "60");
    }
    // Every admin route, whatever it would have said.
    const put = await app.request("PUT", "/v1/admin/sessions/throttle-t", {
      token: ADMIN_TOKEN,
      json: { org: "acme" },
      headers: { "CF-Connecting-IP": address },
    });
    assertEnvelope(put, { status: 429, code: "rate_limited" });
    // Another address is not affected.
    assertEnvelope(await from("203.0.113.8", ADMIN_TOKEN), { status: 200 });
    assertEnvelope(await from("203.0.113.8", "wrong-admin-token"), { status: 401, code: "unauthorized" });
    // Tenant routes are not admin routes.
    assertEnvelope(await app.request("GET", "/v1/sessions/throttle-s", { token: "jg_x", headers: { "CF-Connecting-IP": address } }), {
      status: 401,
      code: "unauthorized",
    });
  });

  it("the right token is never counted", async () => {
    await freshWindow();
    const address = "2001:db8::44";
    for (let i = 0; i < 15; i++) assertEnvelope(await from(address, ADMIN_TOKEN), { status: 200 });
    for (let i = 0; i < 10; i++) assertEnvelope(await from(address, "wrong-admin-token"), { status: 401, code: "unauthorized" });
    assertEnvelope(await from(address, "wrong-admin-token"), { status: 429, code: "rate_limited" });
  });
});

describe("without ADMIN_TOKEN nothing is counted", () => {
  let app;
  before(async () => {
    app = await startJoingate({ vars: { ADMIN_TOKEN: "" }, adminLimit: 10 });
  });
  after(() => app?.close());

  it("any number of admin requests from one address stay 404", async () => {
    for (let i = 0; i < 15; i++) {
      const res = await app.request("GET", "/v1/admin/sessions/s1", { token: "anything", headers: { "CF-Connecting-IP": "192.0.2.1" } });
      assertEnvelope(res, { status: 404, code: "not_found" });
    }
  });
});
