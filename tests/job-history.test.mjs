// Join jobs stay bounded (contract section 10, v1.2): at most 50 finished jobs per session,
// the oldest dropped; a job's item still runs behind a full history; an item picked but still
// waiting for its queue turn when a cancel lands ends cancelled.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startJoingate, assertEnvelope, sleep, eventually } from "./helpers.mjs";
import { DEMO } from "../sim/catalogue.mjs";

const FAST = { join: { per_minute: 6000, burst: 1000 }, read: { per_minute: 6000, burst: 1000 } };

/** `n` distinct, well-formed invite codes (never sent here: the items are cancelled). */
function codes(prefix, n = 500) {
  return Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(20 - prefix.length, "0")}`);
}


describe("join job history", () => {
  let app;
  let token;
  before(async () => {
    // A backend call may take a few seconds here (a preview held on purpose).
    app = await startJoingate({ orgLimit: 1_000_000, vars: { BACKEND_TIMEOUT_MS: "6000" } });
    token = await app.token("acme", ["join", "read"]);
  });
  after(() => app.close());

  const submit = (sid, json) => app.request("POST", `/v1/sessions/${sid}/join-jobs`, { token, json });
  const post = (sid, id, action) => app.request("POST", `/v1/sessions/${sid}/join-jobs/${id}/${action}`, { token });
  const get = (sid, id) => app.request("GET", `/v1/sessions/${sid}/join-jobs/${id}`, { token });

  test("60 jobs of 500 items submitted and cancelled: 50 are kept, the oldest dropped; a job's item still runs", async () => {
    // The session's one join of the hour is spent first, so that no item runs while the
    // history fills, however long that takes (an item held by the cap just waits: no
    // attempt, no pace).
    const sid = await app.freshSession("history", { join: { per_minute: 1, burst: 1, per_hour: 1 } });
    assertEnvelope(await app.join(sid, token, { invite: DEMO.approval.code }), { status: 200 });
    const ids = [];
    for (let n = 0; n < 60; n++) {
      const job = assertEnvelope(await submit(sid, { invites: codes(`Hist${n}x`), interval_s: 86400 }), { status: 202 }).data;
      assert.equal(job.counts.total, 500);
      const cancelled = assertEnvelope(await post(sid, job.job_id, "cancel"), { status: 200 }).data;
      assert.equal(cancelled.status, "cancelled");
      assert.equal(cancelled.cancel_reason, "requested");
      ids.push(job.job_id);
    }
    const list = assertEnvelope(await app.request("GET", `/v1/sessions/${sid}/join-jobs`, { token }), { status: 200 }).data;
    assert.equal(list.jobs.length, 50);
    assert.deepEqual(list.jobs.map((j) => j.job_id), ids.slice(10).reverse(), "newest first, the 10 oldest gone");
    assert.ok(list.jobs.every((j) => j.items === undefined && j.counts.cancelled === 500 && j.counts.pending === 0));
    for (const id of ids.slice(0, 10)) assertEnvelope(await get(sid, id), { status: 404, code: "not_found" });
    const kept = assertEnvelope(await get(sid, ids[59]), { status: 200 }).data;
    assert.equal(kept.items.length, 500);
    assert.ok(kept.items.every((i) => i.status === "cancelled"));
    // Behind the full history, a new job's item runs.
    await app.session(sid, "acme", FAST);
    const joinsBefore = app.sim.calls(sid).filter((c) => c.route === "join").length;
    const job = assertEnvelope(await submit(sid, { invites: [DEMO.open.code], interval_s: 60 }), { status: 202 }).data;
    const done = await eventually(async () => {
      const current = assertEnvelope(await get(sid, job.job_id), { status: 200 }).data;
      return current.status === "completed" && current;
    }, "the new job's item", 20_000);
    assert.equal(done.items[0].status, "joined");
    assert.equal(app.sim.calls(sid).filter((c) => c.route === "join").length, joinsBefore + 1, "only the new job's item reached the backend");
    const after = assertEnvelope(await app.request("GET", `/v1/sessions/${sid}/join-jobs`, { token }), { status: 200 }).data;
    assert.equal(after.jobs.length, 50, "the new finished job pushes out the oldest");
    assert.equal(after.jobs[0].job_id, job.job_id);
  });

  test("an item picked but still waiting for its queue turn when a cancel lands ends cancelled", async () => {
    const sid = await app.freshSession("turn-cancel", FAST);
    // A client preview holds the session's queue for 3 s.
    app.sim.setFault({ session: sid, mode: "latency", delay_ms: 3000, count: 1 });
    const held = app.request("GET", `/v1/sessions/${sid}/invites/${DEMO.open.code}`, { token });
    await sleep(300);
    const job = assertEnvelope(await submit(sid, { invites: [DEMO.member.code, DEMO.open.code], interval_s: 60 }), { status: 202 }).data;
    // The alarm picks item 0 at once; it waits behind the preview.
    await sleep(700);
    const cancelled = assertEnvelope(await post(sid, job.job_id, "cancel"), { status: 200 }).data;
    assert.equal(cancelled.status, "cancelled");
    assert.deepEqual(cancelled.items.map((i) => i.status), ["cancelled", "cancelled"]);
    assertEnvelope(await held, { status: 200 });
    await sleep(1000);
    const final = assertEnvelope(await get(sid, job.job_id), { status: 200 }).data;
    assert.deepEqual(final.items.map((i) => i.status), ["cancelled", "cancelled"], "never left pending");
    assert.deepEqual(final.counts, { total: 2, pending: 0, joined: 0, pending_approval: 0, already_member: 0, failed: 0, cancelled: 2 });
    assert.equal(app.sim.calls(sid).filter((c) => c.route === "join").length, 0, "the cancelled item never reached the backend");
  });
});
