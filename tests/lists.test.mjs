// Lists (contract section 16), end to end in workerd: GET /v1/token for an API token and a
// login token, GET /v1/sessions (the org's sessions, an allow-list's, paging), the admin
// lists of sessions and tokens (every org, one org, an unknown org, paging), records written
// before the lists' KV metadata existed, the checks (401, 403, validation_error naming
// limit, cursor or org, the org-wide limit), and never a token or its hash in an answer.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { createHash } from "node:crypto";
import { SignJWT, exportJWK, generateKeyPair } from "jose";
import { startJoingate, assertEnvelope, assertInvalid, ADMIN_TOKEN } from "./helpers.mjs";

const ISS = "https://id.lists.test";
const AUD = "joingate-lists";
const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;
const sha256 = (text) => createHash("sha256").update(text).digest("hex");
const rfc3339 = (unixS) => new Date(unixS * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");

/** A JWKS server with one ES256 key; `sign(claims)` mints a login token with it. */
async function startIdentity() {
  const { publicKey, privateKey } = await generateKeyPair("ES256", { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: "lists-1", alg: "ES256", use: "sig" };
  const server = http.createServer((req, res) => {
    res.writeHead(200, { "Content-Type": "application/json", "Cache-Control": "max-age=600" });
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/jwks.json`,
    sign: (claims) =>
      new SignJWT({ iss: ISS, aud: AUD, sub: "person-1", ...claims })
        .setProtectedHeader({ alg: "ES256", kid: "lists-1" })
        .sign(privateKey),
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
}

describe("lists", () => {
  let app;
  let identity;
  /** Every answer of this suite, and every token minted in it: no answer may hold one. */
  const answers = [];
  const secrets = [];

  const get = async (pathname, token) => {
    const res = await app.request("GET", pathname, { token });
    answers.push(res.text);
    return res;
  };
  const mint = async (org, capabilities, extra = {}) => {
    const res = await app.admin("POST", "/v1/admin/tokens", { org, capabilities, ...extra });
    assert.equal(res.status, 201, res.text);
    secrets.push(res.body.data.token);
    return res.body.data;
  };
  /** Every page of `pathname` (a query string may follow), `limit` a page: the items and the pages. */
  const allPages = async (pathname, token, field, limit) => {
    const items = [];
    const pages = [];
    let cursor;
    for (let i = 0; i < 100; i++) {
      const sep = pathname.includes("?") ? "&" : "?";
      const url = `${pathname}${sep}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
      const data = assertEnvelope(await get(url, token), { status: 200 }).data;
      assert.ok(Array.isArray(data[field]), JSON.stringify(data));
      assert.ok(data[field].length <= limit);
      assert.deepEqual(Object.keys(data).filter((k) => k !== field), data.next_cursor === undefined ? [] : ["next_cursor"]);
      items.push(...data[field]);
      pages.push(data[field]);
      if (data.next_cursor === undefined) return { items, pages };
      assert.match(data.next_cursor, /^[0-9a-f]+$/);
      cursor = data.next_cursor;
    }
    assert.fail("more than 100 pages");
  };
  const ids = (items, key) => items.map((item) => item[key]);
  const sorted = (list) => [...list].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

  const ACME = ["la-01", "la-02", "la-03", "la-04", "la-05", "la-06", "la-07"];
  const OTHER = ["lb-1", "lb-2", "lb-3"];

  before(async () => {
    identity = await startIdentity();
    app = await startJoingate({ orgLimit: 10_000, vars: { JWT_ISSUER: ISS, JWT_AUDIENCE: AUD, JWT_JWKS_URL: identity.url } });
    // Registered out of order, two with their own server.
    for (const sid of [...ACME].reverse()) {
      const backend = sid === "la-03" ? app.backendFor("waha", sid) : sid === "la-06" ? app.backendFor("gowa", sid) : undefined;
      const res = await app.admin("PUT", `/v1/admin/sessions/${sid}`, backend ? { org: "lista", backend } : { org: "lista" });
      assert.equal(res.status, 200, res.text);
    }
    for (const sid of OTHER) await app.session(sid, "listb");
  });
  after(async () => {
    await app?.close();
    await identity?.close();
  });

  test("GET /v1/token describes an API token, whatever its capabilities, never the token", async () => {
    const plain = await mint("lista", ["join"]);
    let data = assertEnvelope(await get("/v1/token", plain.token), { status: 200 }).data;
    assert.deepEqual(data, { kind: "api_token", org: "lista", capabilities: ["join"] });
    const expires = Math.floor(Date.now() / 1000) + 3600;
    const listed = await mint("lista", ["read", "manage"], { sessions: ["la-02"], expires_at: rfc3339(expires), label: "ci" });
    data = assertEnvelope(await get("/v1/token", listed.token), { status: 200 }).data;
    assert.deepEqual(data, {
      kind: "api_token",
      org: "lista",
      capabilities: ["read", "manage"],
      sessions: ["la-02"],
      expires_at: rfc3339(expires),
    });
  });

  test("GET /v1/token describes a login token: its org, its role's capabilities, its exp", async () => {
    const exp = Math.floor(Date.now() / 1000) + 600;
    const member = await identity.sign({ org: "lista", role: "member", exp });
    const data = assertEnvelope(await get("/v1/token", member), { status: 200 }).data;
    assert.deepEqual(data, { kind: "login", org: "lista", capabilities: ["join", "read"], expires_at: rfc3339(exp) });
    // A role without capabilities is still described (no capability is needed).
    const nobody = await identity.sign({ org: "lista", role: "intern", exp });
    assert.deepEqual(assertEnvelope(await get("/v1/token", nobody), { status: 200 }).data.capabilities, []);
    // And it lists the org's sessions with its role's read.
    const { items } = await allPages("/v1/sessions", member, "sessions", 50);
    assert.deepEqual(ids(items, "session_id"), ACME);
  });

  test("a bad or missing bearer is 401 on every list; a token without read is 403 on GET /v1/sessions", async () => {
    const joinOnly = await mint("lista", ["join"]);
    for (const path of ["/v1/token", "/v1/sessions"]) {
      for (const token of [undefined, "jg_not-a-token", `${joinOnly.token.slice(0, -1)}x`, "a.b.c", ADMIN_TOKEN]) {
        assertEnvelope(await get(path, token), { status: 401, code: "unauthorized" });
      }
    }
    assertEnvelope(await get("/v1/sessions", joinOnly.token), { status: 403, code: "forbidden" });
    // The capability is checked before the query.
    assertEnvelope(await get("/v1/sessions?limit=0", joinOnly.token), { status: 403, code: "forbidden" });
    for (const path of ["/v1/admin/sessions", "/v1/admin/tokens"]) {
      for (const token of [undefined, joinOnly.token, "wrong-admin-token-0123456789abcdef"]) {
        assertEnvelope(await get(path, token), { status: 401, code: "unauthorized" });
      }
    }
  });

  test("GET /v1/sessions: the org's sessions in id order, with their server kind; pages without duplicates", async () => {
    const { token } = await mint("lista", ["read"]);
    const whole = await allPages("/v1/sessions", token, "sessions", 200);
    assert.deepEqual(whole.pages.length, 1);
    assert.deepEqual(whole.items, ACME.map((sid) => ({
      session_id: sid,
      backend_kind: { "la-03": "waha", "la-06": "gowa" }[sid] ?? "joingate",
    })));
    for (const limit of [1, 2, 3, 7]) {
      const { items, pages } = await allPages("/v1/sessions", token, "sessions", limit);
      assert.deepEqual(items, whole.items, `limit ${limit}`);
      assert.ok(pages.slice(0, -1).every((page) => page.length === limit), `limit ${limit}: full pages`);
    }
    // The default page is 50.
    const first = assertEnvelope(await get("/v1/sessions", token), { status: 200 }).data;
    assert.deepEqual(first, { sessions: whole.items });
    // Another org's token sees only its own.
    const other = await mint("listb", ["read"]);
    assert.deepEqual(ids((await allPages("/v1/sessions", other.token, "sessions", 2)).items, "session_id"), OTHER);
    // An org with no session: an empty list, no cursor.
    const empty = await mint("nobody-here", ["read"]);
    assert.deepEqual(assertEnvelope(await get("/v1/sessions", empty.token), { status: 200 }).data, { sessions: [] });
  });

  test("an allow-listed token lists only its sessions of its org that exist", async () => {
    const { token } = await mint("lista", ["read"], { sessions: ["la-05", "lb-1", "la-01", "la-99", "la-03"] });
    const { items } = await allPages("/v1/sessions", token, "sessions", 1);
    assert.deepEqual(ids(items, "session_id"), ["la-01", "la-03", "la-05"]);
    assert.deepEqual(items[1], { session_id: "la-03", backend_kind: "waha" });
  });

  test("a session written before the lists (no KV metadata) is listed from its record; a deleted one is gone", async () => {
    const kv = await app.mf.getKVNamespace("JOINGATE_KV");
    await app.admin("PUT", "/v1/admin/sessions/la-00", { org: "lista", backend: app.backendFor("evolution", "la-00") });
    const record = await kv.get("session:la-00");
    await kv.put("session:la-00", record); // the same record, without metadata
    assert.equal((await kv.getWithMetadata("session:la-00")).metadata, null);
    await app.session("la-08", "listb");
    await kv.put("session:la-08", await kv.get("session:la-08")); // another org's, without metadata
    const { token } = await mint("lista", ["read"]);
    const { items } = await allPages("/v1/sessions", token, "sessions", 2);
    assert.deepEqual(ids(items, "session_id"), ["la-00", ...ACME]);
    assert.deepEqual(items[0], { session_id: "la-00", backend_kind: "evolution" });
    // New registrations carry the metadata.
    assert.deepEqual((await kv.getWithMetadata("session:la-01")).metadata, { org: "lista", backend_kind: "joingate" });
    assertEnvelope(await app.admin("DELETE", "/v1/admin/sessions/la-00"), { status: 200 });
    assertEnvelope(await app.admin("DELETE", "/v1/admin/sessions/la-08"), { status: 200 });
    assert.deepEqual(ids((await allPages("/v1/sessions", token, "sessions", 50)).items, "session_id"), ACME);
  });

  test("GET /v1/admin/sessions: admin views of every org or of one; an unknown org lists nothing", async () => {
    const every = await allPages("/v1/admin/sessions", ADMIN_TOKEN, "sessions", 200);
    const everyIds = ids(every.items, "session_id");
    assert.deepEqual(everyIds, sorted(everyIds), "in id order");
    for (const sid of [...ACME, ...OTHER]) assert.ok(everyIds.includes(sid), sid);
    // Each is exactly what GET /v1/admin/sessions/{sid} answers.
    for (const view of every.items.filter((v) => ACME.includes(v.session_id) || OTHER.includes(v.session_id))) {
      const one = assertEnvelope(await get(`/v1/admin/sessions/${view.session_id}`, ADMIN_TOKEN), { status: 200 }).data;
      assert.deepEqual(view, one, view.session_id);
    }
    for (const limit of [1, 3]) {
      assert.deepEqual((await allPages("/v1/admin/sessions", ADMIN_TOKEN, "sessions", limit)).items, every.items, `limit ${limit}`);
    }
    const lista = await allPages("/v1/admin/sessions?org=lista", ADMIN_TOKEN, "sessions", 3);
    assert.deepEqual(ids(lista.items, "session_id"), ACME);
    assert.ok(lista.items.every((view) => view.org === "lista"));
    const listb = await allPages("/v1/admin/sessions?org=listb", ADMIN_TOKEN, "sessions", 50);
    assert.deepEqual(ids(listb.items, "session_id"), OTHER);
    const none = assertEnvelope(await get("/v1/admin/sessions?org=no-such-org", ADMIN_TOKEN), { status: 200 }).data;
    assert.deepEqual(none, { sessions: [] });
  });

  test("GET /v1/admin/tokens: every token's view in token_id order, revoked ones too, never a token or hash", async () => {
    const expires = Math.floor(Date.now() / 1000) + 7200;
    const made = [
      await mint("listc", ["join"]),
      await mint("listc", ["read", "manage"], { sessions: ["la-01", "la-02"], expires_at: rfc3339(expires), label: "crm sync" }),
      await mint("listc", ["join", "read"], { label: "ops" }),
      await mint("listd", ["read"]),
    ];
    assertEnvelope(await app.admin("DELETE", `/v1/admin/tokens/${made[2].token_id}`), { status: 200 });
    // A token minted before the lists: its index key holds only the hash, without metadata.
    const kv = await app.mf.getKVNamespace("JOINGATE_KV");
    const index = `token_id:${made[0].token_id}`;
    await kv.put(index, await kv.get(index));
    assert.equal((await kv.getWithMetadata(index)).metadata, null);

    const { items } = await allPages("/v1/admin/tokens?org=listc", ADMIN_TOKEN, "tokens", 2);
    const expected = made.slice(0, 3).map((t) => t.token_id).sort();
    assert.deepEqual(ids(items, "token_id"), expected);
    const byId = Object.fromEntries(items.map((t) => [t.token_id, t]));
    const created = byId[made[0].token_id].created_at;
    assert.match(created, RFC3339);
    assert.ok(Math.abs(Date.parse(created) - Date.now()) < 120_000, created);
    assert.deepEqual(byId[made[0].token_id], { token_id: made[0].token_id, org: "listc", capabilities: ["join"], created_at: created, revoked: false });
    const full = byId[made[1].token_id];
    assert.deepEqual(full, {
      token_id: made[1].token_id,
      org: "listc",
      capabilities: ["read", "manage"],
      sessions: ["la-01", "la-02"],
      expires_at: rfc3339(expires),
      label: "crm sync",
      created_at: full.created_at,
      revoked: false,
    });
    assert.equal(byId[made[2].token_id].revoked, true);
    assert.equal(byId[made[2].token_id].label, "ops");
    // Without org: every org's tokens, in order, the same across page sizes.
    const every = await allPages("/v1/admin/tokens", ADMIN_TOKEN, "tokens", 200);
    const everyIds = ids(every.items, "token_id");
    assert.deepEqual(everyIds, sorted(everyIds));
    for (const t of made) assert.ok(everyIds.includes(t.token_id), t.token_id);
    assert.deepEqual((await allPages("/v1/admin/tokens", ADMIN_TOKEN, "tokens", 3)).items, every.items);
    assert.deepEqual(ids((await allPages("/v1/admin/tokens?org=listd", ADMIN_TOKEN, "tokens", 50)).items, "token_id"), [made[3].token_id]);
    assert.deepEqual(assertEnvelope(await get("/v1/admin/tokens?org=nobody", ADMIN_TOKEN), { status: 200 }).data, { tokens: [] });
  });

  test("a bad limit, cursor or org is validation_error naming it", async () => {
    const { token } = await mint("lista", ["read"]);
    const sessionsCursor = assertEnvelope(await get("/v1/sessions?limit=1", token), { status: 200 }).data.next_cursor;
    const tokensCursor = assertEnvelope(await get("/v1/admin/tokens?limit=1", ADMIN_TOKEN), { status: 200 }).data.next_cursor;
    assert.ok(sessionsCursor && tokensCursor);
    // A cursor changed by one digit.
    const changed = sessionsCursor.slice(0, -1) + (sessionsCursor.endsWith("0") ? "1" : "0");
    for (const [path, who] of [["/v1/sessions", token], ["/v1/admin/sessions", ADMIN_TOKEN], ["/v1/admin/tokens", ADMIN_TOKEN]]) {
      for (const limit of ["0", "201", "1.5", "-1", "ten", "", "1e2"]) {
        assertInvalid(await get(`${path}?limit=${limit}`, who), "limit");
      }
      for (const cursor of ["abc", "zz", "", changed, sessionsCursor.toUpperCase(), `${sessionsCursor}00`]) {
        assertInvalid(await get(`${path}?cursor=${encodeURIComponent(cursor)}`, who), "cursor");
      }
      assertEnvelope(await get(`${path}?limit=200&limit=1`, who), { status: 200 });
    }
    // A cursor of one list is not one of another's.
    assertInvalid(await get(`/v1/admin/tokens?cursor=${sessionsCursor}`, ADMIN_TOKEN), "cursor");
    assertInvalid(await get(`/v1/sessions?cursor=${tokensCursor}`, token), "cursor");
    // The session lists walk the same keys: a page of one continues the other.
    assertEnvelope(await get(`/v1/admin/sessions?cursor=${sessionsCursor}`, ADMIN_TOKEN), { status: 200 });
    for (const org of ["", "a%20b", "x".repeat(65)]) {
      assertInvalid(await get(`/v1/admin/sessions?org=${org}`, ADMIN_TOKEN), "org");
      assertInvalid(await get(`/v1/admin/tokens?org=${org}`, ADMIN_TOKEN), "org");
    }
    // A tenant list is its token's org: `org` is not its parameter.
    assertEnvelope(await get("/v1/sessions?org=listb", token), { status: 200 });
  });

  test("no answer ever holds a token or its hash", () => {
    assert.ok(secrets.length > 5 && answers.length > 50);
    for (const secret of secrets) {
      const hash = sha256(secret);
      for (const text of answers) {
        assert.ok(!text.includes(secret), "a token in an answer");
        assert.ok(!text.includes(hash), "a token's hash in an answer");
      }
    }
  });
});

describe("lists and the org-wide limit", () => {
  let app;
  before(async () => {
    app = await startJoingate();
  });
  after(() => app?.close());

  test("GET /v1/token and GET /v1/sessions count against the org's limit", async () => {
    assertEnvelope(await app.admin("PUT", "/v1/admin/orgs/tiny", { limits: { per_minute: 1, burst: 3 } }), { status: 200 });
    const token = await app.token("tiny", ["read"]);
    assertEnvelope(await app.request("GET", "/v1/token", { token }), { status: 200 });
    assertEnvelope(await app.request("GET", "/v1/sessions", { token }), { status: 200 });
    assertEnvelope(await app.request("GET", "/v1/token", { token }), { status: 200 });
    for (const path of ["/v1/token", "/v1/sessions"]) {
      const body = assertEnvelope(await app.request("GET", path, { token }), { status: 429, code: "rate_limited" });
      assert.equal(body.error.details.scope, "org");
    }
    // A query that is not valid is answered first (400 before 429).
    assertInvalid(await app.request("GET", "/v1/sessions?limit=0", { token }), "limit");
  });
});
