// The org-wide limit (contract section 6): one token bucket per org in the org's Durable
// Object, exact across the whole network, with an exact Retry-After; configurable per org;
// durable; and a failing org counter does not take the org's calls down.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startJoingate, assertEnvelope, sleep, freshWindow } from "./helpers.mjs";
import { startSimulator } from "../sim/simulator.mjs";

const FAST = { read: { per_minute: 6000, burst: 1000 } };
const status = (app, sid, token) => app.request("GET", `/v1/sessions/${sid}`, { token });

// Burst 100 and 6 per minute by default ([vars]): the bucket holds 100 and refills one every
// 10 s, far slower than the calls of a test land, so counts like "exactly 100" do not
// depend on the machine's speed.
const DEFAULT = { per_minute: 6, burst: 100 };

describe("org-wide limit", () => {
  let app;
  before(async () => {
    app = await startJoingate({ vars: { ORG_PER_MINUTE: "6", ORG_BURST: "100" } });
  });
  after(() => app.close());

  test("130 calls at once over 13 sessions: exactly 100 pass, the rest wait an exact Retry-After", async () => {
    const token = await app.token("crowd", ["read"]);
    const sessions = [];
    for (let i = 0; i < 13; i++) {
      await app.session(`crowd-${i}`, "crowd", FAST);
      sessions.push(`crowd-${i}`);
    }
    const started = Date.now();
    const answers = await Promise.all(Array.from({ length: 130 }, (_, i) => status(app, sessions[i % 13], token)));
    const elapsed = (Date.now() - started) / 1000;
    assert.equal(answers.filter((r) => r.status === 200).length, 100);
    const limited = answers.filter((r) => r.status === 429);
    assert.equal(limited.length, 30);
    let longest = 0;
    for (const res of limited) {
      const body = assertEnvelope(res, { status: 429, code: "rate_limited" });
      assert.equal(body.error.details.scope, "org");
      const wait = Number(res.headers.get("retry-after"));
      assert.equal(body.error.details.retry_after_s, wait);
      // The next token is due 10 s after the bucket was first drawn on: the wait is what
      // is left of those 10 s, not a fixed minute.
      assert.ok(wait <= 10 && wait >= 10 - Math.ceil(elapsed) - 1, `Retry-After ${wait} after ${elapsed} s`);
      longest = Math.max(longest, wait);
    }
    await sleep(longest * 1000);
    assertEnvelope(await status(app, sessions[0], token), { status: 200 });
  });

  test("two orgs never share a budget", async () => {
    const a = await app.token("org-a", ["read"]);
    const b = await app.token("org-b", ["read"]);
    await app.session("a-1", "org-a", FAST);
    await app.session("b-1", "org-b", FAST);
    const spent = await Promise.all(Array.from({ length: 105 }, () => status(app, "a-1", a)));
    assert.equal(spent.filter((r) => r.status === 429).length, 5);
    assertEnvelope(await status(app, "b-1", b), { status: 200 });
  });

  test("each org can have its own limit through the admin API, validated like a session's", async () => {
    const res = await app.admin("PUT", "/v1/admin/orgs/slow-org", { limits: { per_minute: 6, burst: 3 } });
    assert.deepEqual(assertEnvelope(res, { status: 200 }).data, { org: "slow-org", limits: { per_minute: 6, burst: 3 }, policy: {} });
    assert.deepEqual(assertEnvelope(await app.admin("GET", "/v1/admin/orgs/slow-org"), { status: 200 }).data.limits, { per_minute: 6, burst: 3 });
    assert.deepEqual(assertEnvelope(await app.admin("GET", "/v1/admin/orgs/other-org"), { status: 200 }).data.limits, DEFAULT, "an org without its own limit has the [vars] default");
    const token = await app.token("slow-org", ["read"]);
    await app.session("slow-1", "slow-org", FAST);
    for (let i = 0; i < 3; i++) assertEnvelope(await status(app, "slow-1", token), { status: 200 });
    const limited = await status(app, "slow-1", token);
    assertEnvelope(limited, { status: 429, code: "rate_limited" });
    // 6 per minute: a token every 10 s.
    const wait = Number(limited.headers.get("retry-after"));
    assert.ok(wait >= 9 && wait <= 10, `Retry-After ${wait}`);
    for (const [body, field] of [
      [{ limits: { per_minute: 0 } }, "limits.per_minute"],
      [{ limits: { burst: 1001 } }, "limits.burst"],
      [{ limits: { rate: 1 } }, "limits.rate"],
      [{ limits: 5 }, "limits"],
      [{ owner: "x" }, "owner"],
    ]) {
      const bad = await app.admin("PUT", "/v1/admin/orgs/slow-org", body);
      assert.equal(assertEnvelope(bad, { status: 400, code: "validation_error" }).error.details.field, field);
    }
    // v1.2: a PUT that leaves limits out keeps them; "limits": {} is back to the default.
    const kept = await app.admin("PUT", "/v1/admin/orgs/slow-org", {});
    assert.deepEqual(assertEnvelope(kept, { status: 200 }).data.limits, { per_minute: 6, burst: 3 });
    const reset = await app.admin("PUT", "/v1/admin/orgs/slow-org", { limits: {} });
    assert.deepEqual(assertEnvelope(reset, { status: 200 }).data.limits, DEFAULT);
  });
});

// 10 at once, then one a minute: the count after the restart does not depend on how long
// the restart took.
const SLOW_REFILL = { ORG_PER_MINUTE: "1", ORG_BURST: "10" };

describe("org-wide limit across a restart", () => {
  test("the count survives", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "joingate-org-"));
    const sim = await startSimulator({ port: 0, token: "backend-secret" });
    try {
      let app = await startJoingate({ persist: dir, simulator: sim, orgLimit: 10, vars: SLOW_REFILL });
      const token = await app.token("durable-org", ["read"]);
      await app.session("durable-org-1", "durable-org", FAST);
      for (let i = 0; i < 8; i++) assertEnvelope(await status(app, "durable-org-1", token), { status: 200 });
      await app.mf.dispose();
      app = await startJoingate({ persist: dir, simulator: sim, orgLimit: 10, vars: SLOW_REFILL });
      const answers = [];
      for (let i = 0; i < 4; i++) answers.push((await status(app, "durable-org-1", token)).status);
      // 2 tokens left (one a minute refills).
      assert.ok(answers.filter((s) => s === 429).length >= 1, `after the restart: ${answers}`);
      assert.deepEqual(answers.slice(0, 2), [200, 200]);
      await app.mf.dispose();
    } finally {
      await sim.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("org-wide limit when the org counter fails", () => {
  test("calls go on; the per-location guard (the rate limiting binding) decides instead", async () => {
    const app = await startJoingate({ orgLimit: 3, withoutOrgs: true });
    try {
      const token = await app.token("no-counter", ["read"]);
      await app.session("no-counter-1", "no-counter", FAST);
      // The binding counts by the wall clock's minute: five calls inside one.
      await freshWindow(10_000);
      const answers = [];
      for (let i = 0; i < 5; i++) answers.push(await status(app, "no-counter-1", token));
      assert.deepEqual(answers.map((r) => r.status), [200, 200, 200, 429, 429]);
      assert.equal(assertEnvelope(answers[3], { status: 429 }).error.details.scope, "org");
      assert.ok(app.logs.some((l) => l.includes("org limit unavailable")), "the failure is logged");
    } finally {
      await app.close();
    }
  });
});
