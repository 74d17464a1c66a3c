// Per-session guarantees of contract section 6: token buckets, the org-wide limit,
// idempotency keys, the circuit breaker, session status, all kept in Durable Object storage.
import { describe, test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startJoingate, assertEnvelope, rawRequest, sleep } from "./helpers.mjs";
import { startSimulator } from "../sim/simulator.mjs";
import { DEMO } from "../sim/catalogue.mjs";

const open = { invite: DEMO.open.code };

describe("rate limits", () => {
  let app;
  let token;
  before(async () => {
    app = await startJoingate({ vars: { QUEUE_MAX: "16" } });
    token = await app.token("acme", ["join", "read"]);
  });
  after(() => app.close());
  beforeEach(() => app.sim.reset());

  test("50 concurrent joins with burst 4: exactly 4 reach the backend, none lost or duplicated", async () => {
    await app.session("burst", "acme");
    app.sim.setConfig({ latency_ms: 50 });
    const ids = Array.from({ length: 50 }, (_, i) => `burst-${i}`);
    const answers = await Promise.all(ids.map((id) => app.join("burst", token, open, { "X-Request-Id": id })));
    assert.equal(answers.length, 50);
    assert.equal(answers.filter((r) => r.status === 200).length, 4, "burst of 4 admitted");
    for (const res of answers.filter((r) => r.status !== 200)) {
      const body = assertEnvelope(res);
      assert.ok(["rate_limited", "session_busy"].includes(body.error.code), body.error.code);
      if (body.error.code === "rate_limited") {
        assert.equal(body.error.details.scope, "session");
        assert.equal(body.error.details.class, "join");
        assert.equal(String(body.error.details.retry_after_s), res.headers.get("retry-after"));
      }
    }
    const calls = app.sim.calls("burst");
    assert.equal(calls.length, 4);
    assert.equal(new Set(calls.map((c) => c.request_id)).size, 4, "no call duplicated");
    assert.deepEqual(new Set(answers.map((r) => r.headers.get("x-request-id"))), new Set(ids), "every request answered");
  });

  test("RateLimit headers describe the class spent", async () => {
    await app.session("headers", "acme");
    const res = await app.join("headers", token, open);
    assertEnvelope(res, { status: 200 });
    // The join class lists its minute bucket, hour cap and day cap (section 13); RateLimit
    // names the one nearest to refusing.
    assert.equal(res.headers.get("ratelimit-policy"), '"join";q=4;w=60, "join-hour";q=200;w=3600, "join-day";q=1000;w=86400');
    assert.equal(res.headers.get("ratelimit"), '"join";r=3;t=15');
    const status = await app.request("GET", "/v1/sessions/headers", { token });
    assert.equal(status.headers.get("ratelimit-policy"), '"read";q=60;w=60');
  });

  test("Retry-After is exact: a retry at that moment succeeds", async () => {
    await app.session("exact", "acme", { join: { per_minute: 60, burst: 1 } });
    assertEnvelope(await app.join("exact", token, open), { status: 200 });
    const limited = await app.join("exact", token, open);
    const body = assertEnvelope(limited, { status: 429, code: "rate_limited" });
    const wait = Number(limited.headers.get("retry-after"));
    assert.equal(wait, 1);
    assert.equal(body.error.details.retry_after_s, 1);
    await sleep(wait * 1000);
    assertEnvelope(await app.join("exact", token, open), { status: 200 });
  });

  test("a WhatsApp answer, even an error, keeps the token spent", async () => {
    await app.session("spent", "acme", { join: { per_minute: 1, burst: 1 } });
    assertEnvelope(await app.join("spent", token, { invite: DEMO.revoked.code }), { status: 410, code: "invite_revoked" });
    assertEnvelope(await app.join("spent", token, open), { status: 429, code: "rate_limited" });
  });

  test("a call that never reached the backend is refunded", async () => {
    await app.session("refund", "acme", { join: { per_minute: 1, burst: 1 } });
    app.sim.setFault({ session: "refund", mode: "drop", count: 1 });
    assertEnvelope(await app.join("refund", token, open), { status: 503, code: "backend_unavailable" });
    assertEnvelope(await app.join("refund", token, open), { status: 200 });
  });

  test("a 429 carries the RateLimit fields of the exhausted class", async () => {
    await app.session("limited-headers", "acme", { join: { per_minute: 4, burst: 1 } });
    assertEnvelope(await app.join("limited-headers", token, open), { status: 200 });
    const res = await app.join("limited-headers", token, open);
    assertEnvelope(res, { status: 429, code: "rate_limited" });
    assert.equal(res.headers.get("ratelimit-policy"), '"join";q=4;w=60, "join-hour";q=200;w=3600, "join-day";q=1000;w=86400');
    assert.match(res.headers.get("ratelimit"), /^"join";r=0;t=1[45]$/);
  });

  test("leave spends the join class; preview and status spend read", async () => {
    await app.session("spend", "acme", { join: { per_minute: 1, burst: 1 } });
    const leave = await app.request("POST", `/v1/sessions/spend/groups/${DEMO.member.group_jid}/leave`, { token });
    assertEnvelope(leave, { status: 200 });
    assertEnvelope(await app.join("spend", token, open), { status: 429, code: "rate_limited" });
    const status = assertEnvelope(await app.request("GET", "/v1/sessions/spend", { token }), { status: 200 });
    assert.deepEqual(status.data.tokens, { join: 0, manage: 10, read: 19 });
  });

  test("classes are separate buckets", async () => {
    await app.session("classes", "acme", { join: { per_minute: 1, burst: 1 } });
    assertEnvelope(await app.join("classes", token, open), { status: 200 });
    assertEnvelope(await app.join("classes", token, open), { status: 429 });
    assertEnvelope(await app.request("GET", `/v1/sessions/classes/invites/${DEMO.open.code}`, { token }), { status: 200 });
  });
});

describe("org-wide limit", () => {
  let app;
  before(async () => {
    app = await startJoingate({ orgLimit: 5 });
  });
  after(() => app.close());

  test("the org's calls across sessions are limited; another org is not", async () => {
    const token = await app.token("big", ["join"]);
    const other = await app.token("small", ["join"]);
    for (let i = 0; i < 8; i++) await app.session(`org-${i}`, "big");
    await app.session("small-1", "small");
    const answers = [];
    for (let i = 0; i < 8; i++) answers.push(await app.join(`org-${i}`, token, open));
    assert.equal(answers.filter((r) => r.status === 200).length, 5);
    const limited = answers.filter((r) => r.status === 429);
    assert.equal(limited.length, 3);
    for (const res of limited) {
      const body = assertEnvelope(res, { status: 429, code: "rate_limited" });
      assert.equal(body.error.details.scope, "org");
    }
    assertEnvelope(await app.join("small-1", other, open), { status: 200 });
    assert.equal(app.sim.stats().total, 6, "limited calls never reached the backend");
  });
});

describe("idempotency keys", () => {
  let app;
  let token;
  const fresh = (limits = { join: { per_minute: 6000, burst: 1000 } }) => app.freshSession("idem", limits);
  before(async () => {
    app = await startJoingate();
    token = await app.token("acme", ["join", "manage"]);
  });
  after(() => app.close());
  beforeEach(() => app.sim.reset());

  test("10 concurrent retries with one key reach the backend once", async () => {
    const sid = await fresh();
    // The first is still in flight when the tenth arrives, even on a loaded machine.
    app.sim.setConfig({ latency_ms: 1000 });
    const answers = await Promise.all(
      Array.from({ length: 10 }, () => app.join(sid, token, open, { "Idempotency-Key": "retry-1" })),
    );
    assert.equal(app.sim.calls(sid).length, 1);
    const ok = answers.filter((r) => r.status === 200);
    assert.equal(ok.length, 1);
    for (const res of answers.filter((r) => r.status !== 200)) {
      assertEnvelope(res, { status: 409, code: "idempotency_in_progress" });
    }
    const replay = await app.join(sid, token, open, { "Idempotency-Key": "retry-1" });
    assert.equal(replay.status, 200);
    assert.equal(replay.headers.get("idempotent-replayed"), "true");
    assert.equal(replay.text, ok[0].text, "the stored body, unchanged");
    assert.notEqual(replay.headers.get("x-request-id"), ok[0].headers.get("x-request-id"));
    assert.equal(app.sim.calls(sid).length, 1);
  });

  test("an error outcome is stored and replayed", async () => {
    const sid = await fresh();
    const first = await app.join(sid, token, { invite: DEMO.revoked.code }, { "Idempotency-Key": "err" });
    assertEnvelope(first, { status: 410, code: "invite_revoked" });
    const again = await app.join(sid, token, { invite: DEMO.revoked.code }, { "Idempotency-Key": "err" });
    assert.equal(again.status, 410);
    assert.equal(again.text, first.text);
    assert.equal(again.headers.get("idempotent-replayed"), "true");
    assert.equal(app.sim.calls(sid).length, 1);
  });

  test("the same key with another request is idempotency_key_reused", async () => {
    const sid = await fresh();
    assertEnvelope(await app.join(sid, token, open, { "Idempotency-Key": "k" }), { status: 200 });
    const other = await app.join(sid, token, { invite: DEMO.member.code }, { "Idempotency-Key": "k" });
    assertEnvelope(other, { status: 422, code: "idempotency_key_reused" });
    const otherPath = await app.request("POST", `/v1/sessions/${sid}/groups/${DEMO.open.group_jid}/leave`, {
      token,
      headers: { "Idempotency-Key": "k" },
    });
    assertEnvelope(otherPath, { status: 422, code: "idempotency_key_reused" });
    assert.equal(app.sim.calls(sid).length, 1);
  });

  test("outcomes of unknown effect are not stored: a retry runs again", async () => {
    const sid = await fresh();
    app.sim.setFault({ session: sid, mode: "hang", count: 1 });
    assertEnvelope(await app.join(sid, token, open, { "Idempotency-Key": "t" }), { status: 504, code: "backend_timeout" });
    const retry = await app.join(sid, token, open, { "Idempotency-Key": "t" });
    assertEnvelope(retry, { status: 200 });
    assert.equal(retry.headers.get("idempotent-replayed"), null);
    assert.equal(app.sim.calls(sid).length, 2);
  });

  test("requests rejected before execution are not stored", async () => {
    const sid = await fresh({ join: { per_minute: 60, burst: 1 } });
    assertEnvelope(await app.join(sid, token, { invite: "nope" }, { "Idempotency-Key": "v" }), { status: 400 });
    assertEnvelope(await app.join(sid, token, open, { "Idempotency-Key": "v" }), { status: 200 });
    assertEnvelope(await app.join(sid, token, open, { "Idempotency-Key": "w" }), { status: 429 });
    assert.equal(app.sim.calls(sid).length, 1);
    // The replay of "v" spends nothing and is never rate limited, though the bucket is empty.
    const replay = await app.join(sid, token, open, { "Idempotency-Key": "v" });
    assert.equal(replay.status, 200);
    assert.equal(replay.headers.get("idempotent-replayed"), "true");
    assert.equal(app.sim.calls(sid).length, 1, "a replay calls nothing");
    // The rate-limited "w" was not stored: once a token is back, it runs for real.
    await sleep(1000);
    const retried = await app.join(sid, token, open, { "Idempotency-Key": "w" });
    assertEnvelope(retried, { status: 200 });
    assert.equal(retried.headers.get("idempotent-replayed"), null);
    assert.equal(app.sim.calls(sid).length, 2);
  });

  test("invalid keys are idempotency_key_invalid", async () => {
    const sid = await fresh();
    for (const key of ["", "k".repeat(256), "caf\u00e9", "tab\there"]) {
      const res = await rawRequest(app, "POST", `/v1/sessions/${sid}/groups/join`, {
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json", "Idempotency-Key": key },
        body: JSON.stringify(open),
      });
      const body = assertEnvelope(res, { status: 400, code: "idempotency_key_invalid" });
      assert.equal(body.error.details.field, "Idempotency-Key", JSON.stringify(key));
    }
    assert.equal(app.sim.calls(sid).length, 0);
  });

  test("%40 and @ in the path are one request; approve and reject with one key are two", async () => {
    const sid = await fresh({ manage: { per_minute: 6000, burst: 1000 } });
    const group = DEMO.admin.group_jid;
    const leave = (gjid) =>
      app.request("POST", `/v1/sessions/${sid}/groups/${gjid}/invite/reset`, { token, headers: { "Idempotency-Key": "enc" } });
    const first = await leave(group);
    const again = await leave(encodeURIComponent(group));
    assert.equal(again.headers.get("idempotent-replayed"), "true");
    assert.equal(again.text, first.text);
    const participants = { participants: ["15550000001@s.whatsapp.net"] };
    const path = `/v1/sessions/${sid}/groups/${group}/join-requests`;
    assertEnvelope(await app.request("POST", `${path}/approve`, { token, json: participants, headers: { "Idempotency-Key": "act" } }), { status: 200 });
    const reject = await app.request("POST", `${path}/reject`, { token, json: participants, headers: { "Idempotency-Key": "act" } });
    assertEnvelope(reject, { status: 422, code: "idempotency_key_reused" });
  });

  test("keys are scoped to the session", async () => {
    const [a, b] = [await fresh(), await fresh()];
    assertEnvelope(await app.join(a, token, open, { "Idempotency-Key": "shared" }), { status: 200 });
    const res = await app.join(b, token, open, { "Idempotency-Key": "shared" });
    assertEnvelope(res, { status: 200 });
    assert.equal(res.headers.get("idempotent-replayed"), null);
  });
});

describe("circuit breaker", () => {
  let app;
  let token;
  before(async () => {
    app = await startJoingate();
    token = await app.token("acme", ["join", "read"]);
    await app.session("breaker", "acme", { join: { per_minute: 6000, burst: 1000 }, read: { per_minute: 6000, burst: 1000 } });
  });
  after(() => app.close());

  test("5 failures open it, it fails fast, then one probe closes it", async () => {
    app.sim.setFault({ session: "breaker", mode: "drop" });
    for (let i = 0; i < 5; i++) {
      assertEnvelope(await app.join("breaker", token, open), { status: 503, code: "backend_unavailable" });
    }
    assert.equal(app.sim.calls("breaker").length, 5);
    const fast = await app.join("breaker", token, open);
    const body = assertEnvelope(fast, { status: 503, code: "backend_unavailable" });
    assert.equal(body.error.details.circuit, "open");
    const retryAfter = Number(fast.headers.get("retry-after"));
    assert.ok(retryAfter >= 9 && retryAfter <= 10, `Retry-After ${retryAfter}`);
    assert.equal(app.sim.calls("breaker").length, 5, "fail fast: the backend is not called");

    app.sim.setFault({ session: "breaker", mode: "none" });
    await sleep(retryAfter * 1000);
    assertEnvelope(await app.join("breaker", token, open), { status: 200 });
    const status = await app.request("GET", "/v1/sessions/breaker", { token });
    assert.equal(assertEnvelope(status, { status: 200 }).data.circuit, "closed");
  });
});

describe("circuit breaker after the queue", () => {
  let app;
  let token;
  before(async () => {
    // A 1 s deadline: five stalled calls open the circuit in about 5 s.
    app = await startJoingate({ vars: { BACKEND_TIMEOUT_MS: "1000", QUEUE_MAX: "32" } });
    token = await app.token("acme", ["join", "read"]);
  });
  after(() => app.close());

  test("calls waiting in the queue when the circuit opens are refused at their turn, and the backend sees nothing more", async () => {
    const sid = await app.freshSession("breaker-queue", { read: { per_minute: 6000, burst: 1000 } });
    app.sim.setFault({ session: sid, mode: "stall" });
    const started = Date.now();
    const calls = Array.from({ length: 17 }, () =>
      app.request("GET", `/v1/sessions/${sid}/invites/${DEMO.open.code}`, { token }).then((res) => ({ res, at: Date.now() })),
    );
    const answers = await Promise.all(calls);
    const timeouts = answers.filter(({ res }) => res.body?.error?.code === "backend_timeout");
    assert.equal(timeouts.length, 5, answers.map(({ res }) => res.status).join(","));
    const fifth = Math.max(...timeouts.map(({ at }) => at));
    const refused = answers.filter(({ res }) => res.body?.error?.code === "backend_unavailable");
    assert.equal(refused.length, 12);
    for (const { res, at } of refused) {
      const body = assertEnvelope(res, { status: 503, code: "backend_unavailable" });
      assert.equal(body.error.details.circuit, "open");
      assert.ok(at - fifth < 1000, `answered ${at - fifth} ms after the fifth timeout`);
      const retryAfter = Number(res.headers.get("retry-after"));
      assert.ok(retryAfter >= 1 && retryAfter <= 10, `Retry-After ${retryAfter}`);
    }
    assert.equal(app.sim.calls(sid).length, 5, "no call reached the backend while the circuit was open");
    console.log(`# 17 calls against a stalled backend answered in ${Date.now() - started} ms`);
  });
});

describe("session status", () => {
  let app;
  let token;
  before(async () => {
    app = await startJoingate();
    token = await app.token("acme", ["join", "read"]);
  });
  after(() => app.close());

  test("shows connection, queue, effective limits, tokens and circuit", async () => {
    await app.session("stat", "acme", { join: { burst: 2 } });
    assertEnvelope(await app.join("stat", token, open), { status: 200 });
    const res = await app.request("GET", "/v1/sessions/stat", { token });
    assert.deepEqual(assertEnvelope(res, { status: 200 }).data, {
      session_id: "stat",
      connected: true,
      queue_depth: 0,
      limits: {
        join: { per_minute: 4, burst: 2 },
        manage: { per_minute: 30, burst: 10 },
        read: { per_minute: 60, burst: 20 },
      },
      tokens: { join: 1, manage: 10, read: 19 },
      circuit: "closed",
      cooldown_until: null,
      backend_kind: "joingate",
      protection: {
        age_days: 0,
        age_source: "unknown",
        rewarm_until: null,
        per_day: 1000,
        per_hour: 200,
        caps_source: "tier",
        halved_until: null,
        used_last_hour: 1,
        used_last_24h: 1,
        next_join_at: null,
        window: null,
        strikes_7d: 0,
      },
    });
  });

  test("a disconnected session says so", async () => {
    await app.session("offline-status", "acme");
    const res = await app.request("GET", "/v1/sessions/offline-status", { token });
    assert.equal(assertEnvelope(res, { status: 200 }).data.connected, false);
  });
});

describe("durability across a restart", () => {
  test("buckets, idempotency records and the breaker survive", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "joingate-persist-"));
    const sim = await startSimulator({ port: 0, token: "backend-secret" });
    try {
      let app = await startJoingate({ persist: dir, simulator: sim });
      const token = await app.token("acme", ["join", "read"]);
      await app.session("durable", "acme", { join: { per_minute: 1, burst: 2 } });
      await app.session("durable-breaker", "acme", { join: { per_minute: 6000, burst: 1000 } });
      const first = await app.join("durable", token, open, { "Idempotency-Key": "keep" });
      assertEnvelope(first, { status: 200 });
      assertEnvelope(await app.join("durable", token, { invite: DEMO.member.code }), { status: 200 });
      sim.setFault({ session: "durable-breaker", mode: "drop" });
      for (let i = 0; i < 5; i++) await app.join("durable-breaker", token, open);
      await app.mf.dispose();

      app = await startJoingate({ persist: dir, simulator: sim });
      const calls = sim.stats().total;
      assertEnvelope(await app.join("durable", token, { invite: DEMO.approval.code }), { status: 429, code: "rate_limited" });
      const replay = await app.join("durable", token, open, { "Idempotency-Key": "keep" });
      assert.equal(replay.text, first.text);
      assert.equal(replay.headers.get("idempotent-replayed"), "true");
      const breaker = await app.join("durable-breaker", token, open);
      assert.equal(assertEnvelope(breaker, { status: 503 }).error.details.circuit, "open");
      assert.equal(sim.stats().total, calls, "nothing reached the backend after the restart");
      await app.mf.dispose();
    } finally {
      await sim.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
