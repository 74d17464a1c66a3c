// Per-session serialisation: one backend call in flight per session, in arrival order, a
// bounded queue, and different sessions in parallel.
import { describe, test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { startJoingate, assertEnvelope, sleep } from "./helpers.mjs";
import { DEMO } from "../sim/catalogue.mjs";

const UNLIMITED = { join: { per_minute: 6000, burst: 1000 } };

describe("serialisation", () => {
  let app;
  let token;
  before(async () => {
    app = await startJoingate({ vars: { QUEUE_MAX: "32" } });
    token = await app.token("acme", ["join"]);
  });
  after(() => app.close());
  beforeEach(() => app.sim.reset());

  test("20 concurrent joins on one session reach the backend one at a time, in arrival order", async () => {
    await app.session("serial", "acme", UNLIMITED);
    app.sim.setConfig({ latency_ms: 250 });
    // Requests leave 200 ms apart, so they reach the session's object in this order even on
    // a loaded machine, while its queue still grows (20 calls of 250 ms).
    const ids = Array.from({ length: 20 }, (_, i) => `serial-${String(i).padStart(2, "0")}`);
    const answers = await Promise.all(
      ids.map(async (id, i) => {
        // The Worker's own reads (token, session, org limit) can reorder calls that arrive
        // closer together: the guarantee starts at the object.
        await sleep(i * 200);
        return app.join("serial", token, { invite: DEMO.open.code }, { "X-Request-Id": id });
      }),
    );
    for (const res of answers) assertEnvelope(res, { status: 200 });
    const calls = app.sim.calls("serial");
    assert.equal(calls.length, 20, "every call reached the backend once");
    assert.deepEqual(calls.map((c) => c.request_id), ids, "served in arrival order");
    assert.equal(app.sim.stats().max_concurrency.serial, 1, "never two at once");
    for (let i = 1; i < calls.length; i++) {
      assert.ok(calls[i].started_at >= calls[i - 1].finished_at, `call ${i} started after call ${i - 1} ended`);
    }
  });

  test("20 sessions run in parallel", async () => {
    const sids = Array.from({ length: 20 }, (_, i) => `par-${i}`);
    for (const sid of sids) await app.session(sid, "acme", UNLIMITED);
    // Long enough calls that they overlap even when the requests reach workerd spread out.
    app.sim.setConfig({ latency_ms: 1000 });
    const answers = await Promise.all(sids.map((sid) => app.join(sid, token, { invite: DEMO.open.code })));
    for (const res of answers) assertEnvelope(res, { status: 200 });
    const stats = app.sim.stats();
    assert.ok(stats.max_concurrency_overall >= 10, `sessions overlapped (max ${stats.max_concurrency_overall} at once)`);
    for (const sid of sids) assert.equal(stats.max_concurrency[sid], 1);
  });
});

describe("bounded queue", () => {
  let app;
  let token;
  before(async () => {
    app = await startJoingate({ vars: { QUEUE_MAX: "3" } });
    token = await app.token("acme", ["join", "read"]);
    await app.session("busy", "acme", UNLIMITED);
  });
  after(() => app.close());

  test("calls past the queue's capacity get session_busy, and none is lost", async () => {
    // The first call is still in flight when the eighth arrives, even on a loaded machine.
    app.sim.setConfig({ latency_ms: 1000 });
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, i) => sleep(i * 5).then(() => app.join("busy", token, { invite: DEMO.open.code }))),
    );
    const ok = answers.filter((r) => r.status === 200);
    const busy = answers.filter((r) => r.status === 503);
    for (const res of busy) assertEnvelope(res, { status: 503, code: "session_busy" });
    // One in flight plus three waiting are served; the rest are refused at once.
    assert.equal(ok.length, 4);
    assert.equal(busy.length, 4);
    assert.equal(app.sim.calls("busy").length, 4, "refused calls never reached the backend");
  });
});
