// Authentication, admin API, capabilities, tenancy and request ids (API.md sections 1-4),
// black-box through HTTP against the built Worker in workerd (Miniflare) and the simulator.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { startJoingate, assertEnvelope, ADMIN_TOKEN, sleep } from "./helpers.mjs";

const OPEN_CODE = "OpenGroupDemo000000001";
const OPEN_GJID = "120363000000000001@g.us";
const ADMIN_GJID = "120363000000000004@g.us";
const JOIN_BODY = { invite: OPEN_CODE };
const TOKEN_RE = /^jg_[0-9A-Za-z]{39}$/;
const TOKEN_ID_RE = /^tok_[0-9a-f]{16}$/;
const RFC3339_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;
const DEFAULT_LIMITS = {
  join: { per_minute: 4, burst: 4 },
  manage: { per_minute: 30, burst: 10 },
  read: { per_minute: 60, burst: 20 },
};

/** An RFC 3339 UTC date-time, whole seconds, `ms` from now. */
const rfc3339In = (ms) => new Date(Date.now() + ms).toISOString().replace(/\.\d{3}Z$/, "Z");

/** Asserts a 400 validation_error naming `field` (a string or a RegExp). */
function assertInvalid(res, field) {
  const body = assertEnvelope(res, { status: 400, code: "validation_error" });
  const given = body.error.details?.field;
  if (field instanceof RegExp) assert.match(given ?? "", field, res.text);
  else assert.equal(given, field, res.text);
}

/** The error part of an envelope, without what legitimately differs per request. */
const errorShape = (res) => ({ status: res.status, success: res.body.success, error: res.body.error });

/** One character of a token body changed to another base62 character. */
function flipOne(token, index = 12) {
  const c = token[index];
  const replacement = c === "a" ? "b" : "a";
  return token.slice(0, index) + replacement + token.slice(index + 1);
}

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
      assert.deepEqual(data, { session_id: "put-defaults", org: "acme", limits: DEFAULT_LIMITS, backend: null });
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
      assert.deepEqual(data, { session_id: "put-partial", org: "acme", limits: expected, backend: null });
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

describe("tokens on session routes", () => {
  const SID = "auth-target"; // only ever called with bad credentials
  const PROBE = "auth-probe"; // where good tokens prove they work
  let app;
  let good;
  let revoked;
  let expiring;
  let expiresAtMs;
  let foreign;

  before(async () => {
    app = await startJoingate({ orgLimit: 1000 });
    await app.session(SID, "acme");
    await app.session(PROBE, "acme");
    good = await app.token("acme");

    // A well-formed token that this deployment never minted: minted by another one.
    const other = await startJoingate();
    try {
      foreign = await other.token("acme");
    } finally {
      await other.close();
    }

    const created = await app.admin("POST", "/v1/admin/tokens", { org: "acme", capabilities: ["join", "read"] });
    const { token, token_id } = assertEnvelope(created, { status: 201 }).data;
    revoked = token;
    assertEnvelope(await app.request("GET", `/v1/sessions/${PROBE}`, { token: revoked }), { status: 200 });
    assertEnvelope(await app.admin("DELETE", `/v1/admin/tokens/${token_id}`), { status: 200 });

    // Expires in about 2 s (whole seconds, rounded up past the current second).
    expiresAtMs = (Math.floor(Date.now() / 1000) + 3) * 1000;
    const exp = await app.admin("POST", "/v1/admin/tokens", {
      org: "acme",
      capabilities: ["join", "read"],
      expires_at: new Date(expiresAtMs).toISOString().replace(/\.\d{3}Z$/, "Z"),
    });
    expiring = assertEnvelope(exp, { status: 201 }).data.token;
    assertEnvelope(await app.request("GET", `/v1/sessions/${PROBE}`, { token: expiring }), { status: 200 });
  });
  after(() => app?.close());

  it("the good token works (control), also with a lower-case scheme", async () => {
    assertEnvelope(await app.request("GET", `/v1/sessions/${PROBE}`, { token: good }), { status: 200 });
    const lower = await app.request("GET", `/v1/sessions/${PROBE}`, {
      headers: { Authorization: `bearer ${good}` },
    });
    assertEnvelope(lower, { status: 200 });
  });

  it("missing, malformed, unknown, revoked and expired tokens → 401, one message, no backend call", async () => {
    const wait = expiresAtMs + 1100 - Date.now();
    if (wait > 0) await sleep(wait);

    const wrongChecksum = flipOne(good);
    assert.match(wrongChecksum, TOKEN_RE);
    assert.notEqual(wrongChecksum, good);
    assert.match(foreign, TOKEN_RE);

    const cases = [
      ["missing Authorization", {}],
      ["empty Authorization", { Authorization: "" }],
      ["Bearer without a token", { Authorization: "Bearer" }],
      ["Bearer and spaces", { Authorization: "Bearer    " }],
      ["Basic scheme with a real token", { Authorization: `Basic ${good}` }],
      ["Token scheme with a real token", { Authorization: `Token ${good}` }],
      ["real token without a scheme", { Authorization: good }],
      ["garbage", { Authorization: "Bearer garbage" }],
      ["the admin token", { Authorization: `Bearer ${ADMIN_TOKEN}` }],
      ["jg_ prefix only", { Authorization: "Bearer jg_" }],
      ["a truncated token", { Authorization: `Bearer ${good.slice(0, -1)}` }],
      ["a token with an extra char", { Authorization: `Bearer ${good}x` }],
      ["a token with another prefix", { Authorization: `Bearer jx_${good.slice(3)}` }],
      ["non-ASCII garbage", { Authorization: "Bearer jg_ÄÖÜ" }],
      ["wrong checksum (one char flipped)", { Authorization: `Bearer ${wrongChecksum}` }],
      ["well-formed but unknown (minted elsewhere)", { Authorization: `Bearer ${foreign}` }],
      ["revoked", { Authorization: `Bearer ${revoked}` }],
      ["expired", { Authorization: `Bearer ${expiring}` }],
    ];
    const errors = [];
    for (const [what, headers] of cases) {
      const join = await app.request("POST", `/v1/sessions/${SID}/groups/join`, { json: JOIN_BODY, headers });
      assertEnvelope(join, { status: 401, code: "unauthorized" });
      const status = await app.request("GET", `/v1/sessions/${SID}`, { headers });
      assertEnvelope(status, { status: 401, code: "unauthorized" });
      errors.push([what, join.body.error], [what, status.body.error]);
    }
    const [, reference] = errors[0];
    for (const [what, error] of errors) {
      assert.deepEqual(error, reference, `same error for every 401 (no oracle): ${what}`);
    }
    assert.deepEqual(app.sim.calls(SID), [], "no 401 reaches the backend");
  });

  it("401 comes before body checks: a bad token with a bad body is still 401", async () => {
    for (const [json, headers] of [
      [{ invite: 5 }, {}],
      [undefined, { "Content-Type": "text/plain" }],
    ]) {
      const res = await app.request("POST", `/v1/sessions/${SID}/groups/join`, {
        json,
        body: json === undefined ? "x".repeat(20_000) : undefined,
        headers: { Authorization: "Bearer garbage", ...headers },
      });
      assertEnvelope(res, { status: 401, code: "unauthorized" });
    }
    // An invalid sid with a bad token: the token is checked first.
    const badSid = await app.request("GET", "/v1/sessions/bad.sid", { token: "garbage" });
    assertEnvelope(badSid, { status: 401, code: "unauthorized" });
    assert.deepEqual(app.sim.calls(SID), []);
  });

  it("revoking a working token makes it 401 right away", async () => {
    const created = await app.admin("POST", "/v1/admin/tokens", { org: "acme", capabilities: ["read"] });
    const { token, token_id } = assertEnvelope(created, { status: 201 }).data;
    assertEnvelope(await app.request("GET", `/v1/sessions/${PROBE}`, { token }), { status: 200 });
    assertEnvelope(await app.admin("DELETE", `/v1/admin/tokens/${token_id}`), { status: 200 });
    const after = await app.request("GET", `/v1/sessions/${PROBE}`, { token });
    assertEnvelope(after, { status: 401, code: "unauthorized" });
    // Other tokens are unaffected.
    assertEnvelope(await app.request("GET", `/v1/sessions/${PROBE}`, { token: good }), { status: 200 });
  });
});

// ---------------------------------------------------------------------------------------

describe("capabilities", () => {
  const SID = "cap-target";
  let app;
  let tokens;

  before(async () => {
    app = await startJoingate({ orgLimit: 1000 });
    await app.session(SID, "acme");
    await app.session("cap-probe", "acme");
    tokens = {
      noJoin: await app.token("acme", ["read", "manage"]),
      noRead: await app.token("acme", ["join", "manage"]),
      noManage: await app.token("acme", ["join", "read"]),
      readOnly: await app.token("acme", ["read"]),
    };
  });
  after(() => app?.close());

  const routes = {
    join: ["POST", `/v1/sessions/${SID}/groups/join`, JOIN_BODY],
    leave: ["POST", `/v1/sessions/${SID}/groups/${OPEN_GJID}/leave`],
    status: ["GET", `/v1/sessions/${SID}`],
    preview: ["GET", `/v1/sessions/${SID}/invites/${OPEN_CODE}`],
    list: ["GET", `/v1/sessions/${SID}/groups/${ADMIN_GJID}/join-requests`],
    approve: [
      "POST",
      `/v1/sessions/${SID}/groups/${ADMIN_GJID}/join-requests/approve`,
      { participants: ["15550000001@s.whatsapp.net"] },
    ],
    reject: [
      "POST",
      `/v1/sessions/${SID}/groups/${ADMIN_GJID}/join-requests/reject`,
      { participants: ["15550000002@s.whatsapp.net"] },
    ],
    reset: ["POST", `/v1/sessions/${SID}/groups/${ADMIN_GJID}/invite/reset`],
  };
  const cases = [
    ["noJoin", ["join", "leave"]],
    ["readOnly", ["join", "leave", "list", "approve", "reject", "reset"]],
    ["noRead", ["status", "preview"]],
    ["noManage", ["list", "approve", "reject", "reset"]],
  ];

  for (const [who, names] of cases) {
    it(`a token without the capability (${who}) → 403 forbidden on ${names.join(", ")}`, async () => {
      for (const name of names) {
        const [method, path, json] = routes[name];
        const res = await app.request(method, path, { token: tokens[who], json });
        assertEnvelope(res, { status: 403, code: "forbidden" });
      }
      assert.deepEqual(app.sim.calls(SID), [], "no 403 reaches the backend");
    });
  }

  it("403 comes before body checks", async () => {
    const res = await app.request("POST", `/v1/sessions/${SID}/groups/join`, {
      token: tokens.noJoin,
      json: { invite: 5 },
    });
    assertEnvelope(res, { status: 403, code: "forbidden" });
    const wrongType = await app.request("POST", `/v1/sessions/${SID}/groups/${ADMIN_GJID}/join-requests/approve`, {
      token: tokens.noManage,
      body: "participants=all",
      headers: { "Content-Type": "text/plain" },
    });
    assertEnvelope(wrongType, { status: 403, code: "forbidden" });
    assert.deepEqual(app.sim.calls(SID), []);
  });

  it("the same tokens pass on the routes their capabilities cover (control)", async () => {
    const probe = (name) => {
      const [method, path, json] = routes[name];
      return [method, path.replace(SID, "cap-probe"), json];
    };
    const allowed = [
      ["noJoin", "status", 200],
      ["noJoin", "list", 200],
      ["noRead", "join", 200],
      ["noManage", "preview", 200],
      ["readOnly", "status", 200],
    ];
    for (const [who, name, status] of allowed) {
      const [method, path, json] = probe(name);
      const res = await app.request(method, path, { token: tokens[who], json });
      assertEnvelope(res, { status });
    }
    assert.deepEqual(app.sim.calls(SID), []);
    assert.equal(app.sim.calls("cap-probe").length, allowed.length);
  });
});

// ---------------------------------------------------------------------------------------

describe("tenancy", () => {
  let app;
  let acme;
  let scoped;

  before(async () => {
    app = await startJoingate({ orgLimit: 1000 });
    await app.session("acme-s1", "acme");
    await app.session("acme-s2", "acme");
    await app.session("globex-s1", "globex");
    acme = await app.token("acme");
    // Lists a session of another org too: the allow-list never widens the org.
    scoped = await app.token("acme", ["join", "read", "manage"], { sessions: ["acme-s1", "globex-s1"] });
  });
  after(() => app?.close());

  const unknownStatus = (token) => app.request("GET", "/v1/sessions/nobody-registered", { token });

  it("another org's session → 404 not_found, same shape as an unknown session", async () => {
    const unknown = await unknownStatus(acme);
    assertEnvelope(unknown, { status: 404, code: "not_found" });

    const status = await app.request("GET", "/v1/sessions/globex-s1", { token: acme });
    assertEnvelope(status, { status: 404, code: "not_found" });
    assert.deepEqual(errorShape(status), errorShape(unknown));
    assert.deepEqual(Object.keys(status.body).sort(), Object.keys(unknown.body).sort());

    const join = await app.join("globex-s1", acme, JOIN_BODY);
    assertEnvelope(join, { status: 404, code: "not_found" });
    const unknownJoin = await app.join("nobody-registered", acme, JOIN_BODY);
    assertEnvelope(unknownJoin, { status: 404, code: "not_found" });
    assert.deepEqual(errorShape(join), errorShape(unknownJoin));

    for (const [method, path, json] of [
      ["GET", `/v1/sessions/globex-s1/invites/${OPEN_CODE}`],
      ["POST", `/v1/sessions/globex-s1/groups/${OPEN_GJID}/leave`],
      ["GET", `/v1/sessions/globex-s1/groups/${ADMIN_GJID}/join-requests`],
      ["POST", `/v1/sessions/globex-s1/groups/${ADMIN_GJID}/join-requests/approve`, { participants: ["1@lid"] }],
      ["POST", `/v1/sessions/globex-s1/groups/${ADMIN_GJID}/invite/reset`],
    ]) {
      const res = await app.request(method, path, { token: acme, json });
      assertEnvelope(res, { status: 404, code: "not_found" });
      assert.deepEqual(errorShape(res), errorShape(unknown), `${method} ${path}`);
    }
    assert.deepEqual(app.sim.calls("globex-s1"), []);
    assert.deepEqual(app.sim.calls("nobody-registered"), []);
  });

  it("404 for a foreign session comes before body checks (no oracle through validation)", async () => {
    const res = await app.join("globex-s1", acme, { invite: 5 });
    assertEnvelope(res, { status: 404, code: "not_found" });
    const unknown = await app.join("nobody-registered", acme, { invite: 5 });
    assertEnvelope(unknown, { status: 404, code: "not_found" });
    assert.deepEqual(app.sim.calls("globex-s1"), []);
  });

  it("the owning org's token reaches the session (control)", async () => {
    const globex = await app.token("globex", ["read"]);
    const res = await app.request("GET", "/v1/sessions/globex-s1", { token: globex });
    assert.equal(assertEnvelope(res, { status: 200 }).data.session_id, "globex-s1");
    assert.equal(app.sim.calls("globex-s1").length, 1);
  });

  it("a sessions allow-list: success on the listed session, 404 outside it", async () => {
    const ok = await app.request("GET", "/v1/sessions/acme-s1", { token: scoped });
    assert.equal(assertEnvelope(ok, { status: 200 }).data.session_id, "acme-s1");
    const joined = await app.join("acme-s1", scoped, JOIN_BODY);
    assert.equal(assertEnvelope(joined, { status: 200 }).data.group_jid, OPEN_GJID);

    const before = app.sim.calls("globex-s1").length;
    const unknown = await unknownStatus(scoped);
    for (const sid of ["acme-s2", "globex-s1", "nobody-registered"]) {
      const status = await app.request("GET", `/v1/sessions/${sid}`, { token: scoped });
      assertEnvelope(status, { status: 404, code: "not_found" });
      assert.deepEqual(errorShape(status), errorShape(unknown), sid);
      const join = await app.join(sid, scoped, JOIN_BODY);
      assertEnvelope(join, { status: 404, code: "not_found" });
    }
    assert.deepEqual(app.sim.calls("acme-s2"), []);
    assert.equal(app.sim.calls("globex-s1").length, before);
    // The unscoped token of the same org still reaches acme-s2.
    const full = await app.request("GET", "/v1/sessions/acme-s2", { token: acme });
    assertEnvelope(full, { status: 200 });
  });

  it("an invalid sid → 400 validation_error field sid (after the token)", async () => {
    for (const sid of ["bad.sid", "s".repeat(65)]) {
      const res = await app.request("GET", `/v1/sessions/${sid}`, { token: acme });
      assertInvalid(res, "sid");
    }
    const join = await app.join("bad.sid", acme, JOIN_BODY);
    assertInvalid(join, "sid");
  });
});

// ---------------------------------------------------------------------------------------

describe("request ids", () => {
  let app;
  let token;

  before(async () => {
    app = await startJoingate({ orgLimit: 1000 });
    await app.session("rid-s1", "acme");
    token = await app.token("acme");
  });
  after(() => app?.close());

  const withId = (method, path, id, extra = {}) =>
    app.request(method, path, { ...extra, headers: { "X-Request-Id": id, ...(extra.headers ?? {}) } });

  it("a valid X-Request-Id is echoed in the header and in request_id (success and errors)", async () => {
    const ids = ["abc-123", "A.b_c:d-e", "x", "7".repeat(128)];
    for (const id of ids) {
      const answers = [
        await withId("GET", "/healthz", id),
        await withId("GET", "/v1/sessions/rid-s1", id, { token }),
        await withId("GET", "/v1/sessions/rid-s1", id, { token: "garbage" }),
        await withId("GET", "/v1/nowhere", id),
        await withId("DELETE", "/v1/admin/tokens/nope", id, { token: ADMIN_TOKEN }),
      ];
      for (const res of answers) {
        const body = assertEnvelope(res);
        assert.equal(res.headers.get("x-request-id"), id);
        assert.equal(body.request_id, id);
      }
    }
  });

  it("the request id is forwarded to the backend", async () => {
    const id = "forward-me-42";
    const res = await withId("GET", "/v1/sessions/rid-s1", id, { token });
    assertEnvelope(res, { status: 200 });
    const last = app.sim.calls("rid-s1").at(-1);
    assert.equal(last.request_id, id);
  });

  it("an invalid X-Request-Id is replaced by a new id", async () => {
    const bad = ["8".repeat(129), "has space", "slash/ed", "semi;colon", "quote\"d", "ünï", "{json}", "a,b", "*"];
    const seen = new Set();
    for (const id of bad) {
      for (const res of [
        await withId("GET", "/v1/sessions/rid-s1", id, { token }),
        await withId("GET", "/v1/sessions/rid-s1", id, { token: "garbage" }),
      ]) {
        const body = assertEnvelope(res);
        const given = res.headers.get("x-request-id");
        assert.notEqual(given, id);
        assert.equal(body.request_id, given);
        assert.ok(!seen.has(given), "a fresh id per request");
        seen.add(given);
      }
    }
  });

  it("an empty X-Request-Id or none gets a fresh id each time", async () => {
    const a = await withId("GET", "/healthz", "");
    const b = await app.request("GET", "/healthz");
    const c = await app.request("GET", "/healthz");
    for (const res of [a, b, c]) assertEnvelope(res, { status: 200 });
    const ids = [a, b, c].map((r) => r.headers.get("x-request-id"));
    assert.equal(new Set(ids).size, 3, ids.join(" "));
  });
});
