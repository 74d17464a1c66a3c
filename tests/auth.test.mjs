// Tokens on session routes, capabilities, tenancy and request ids (API.md sections 1-3),
// black-box through HTTP against the built Worker in workerd (Miniflare) and the simulator.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { startJoingate, assertEnvelope, assertInvalid, errorShape, flipOne, ADMIN_TOKEN, sleep } from "./helpers.mjs";
import { DEMO } from "../sim/catalogue.mjs";

const OPEN_CODE = DEMO.open.code;
const OPEN_GJID = DEMO.open.group_jid;
const ADMIN_GJID = DEMO.admin.group_jid;
const JOIN_BODY = { invite: OPEN_CODE };
const TOKEN_RE = /^jg_[0-9A-Za-z]{39}$/;

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

    // Expires in about 4 s (whole seconds, rounded up past the current second): time for the
    // control call below even on a loaded machine.
    expiresAtMs = (Math.floor(Date.now() / 1000) + 5) * 1000;
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
