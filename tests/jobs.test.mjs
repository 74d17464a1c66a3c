// Join jobs (contract section 10), end to end in workerd: pacing observed at the simulator,
// every catalogue outcome as an item, retries, pause/resume/cancel, validation and limits,
// tenancy, a job on another backend kind, session deletion, and a restart of workerd in the
// middle of a job (state persisted, as in the durability tests).
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startJoingate, assertEnvelope, sleep } from "./helpers.mjs";
import { startSimulator } from "../sim/simulator.mjs";
import { DEMO } from "../sim/catalogue.mjs";

const FAST = { join: { per_minute: 6000, burst: 1000 } };
const link = (name) => `https://chat.whatsapp.com/${DEMO[name].code}`;

/** Polls a job until `done(job)` or the deadline; returns the last answer's job. */
async function waitFor(app, token, sid, jobId, done, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await app.request("GET", `/v1/sessions/${sid}/join-jobs/${jobId}`, { token });
    const job = assertEnvelope(res, { status: 200 }).data;
    if (done(job)) return job;
    if (Date.now() > deadline) assert.fail(`job ${jobId} did not get there: ${JSON.stringify(job)}`);
    await sleep(250);
  }
}

const finished = (job) => job.status === "completed" || job.status === "cancelled";

describe("join jobs", () => {
  let app;
  let token;
  const submit = (sid, json, headers) => app.request("POST", `/v1/sessions/${sid}/join-jobs`, { token, json, headers });
  const post = (sid, jobId, action) => app.request("POST", `/v1/sessions/${sid}/join-jobs/${jobId}/${action}`, { token });

  before(async () => {
    // Tests poll their jobs: the org limit would get in the way.
    app = await startJoingate({ orgLimit: 100000 });
    token = await app.token("acme", ["join", "read"]);
  });
  after(() => app.close());

  test("a 3-item job completes in order, at the pace, observed at the simulator", async () => {
    const sid = await app.freshSession("job-pace", FAST);
    const started = Date.now();
    const res = await submit(sid, { invites: [link("open"), DEMO.approval.code, link("member")], interval_s: 5, label: "onboarding" });
    const job = assertEnvelope(res, { status: 202 }).data;
    assert.match(job.job_id, /^job_[0-9a-f]{16}$/);
    assert.equal(job.label, "onboarding");
    assert.equal(job.interval_s, 5);
    assert.deepEqual(job.counts, { total: 3, pending: 3, joined: 0, pending_approval: 0, already_member: 0, failed: 0, cancelled: 0 });
    assert.ok(job.estimated_completion_at, "an estimate");
    // Invite codes are secrets: only their first 4 characters are shown.
    assert.deepEqual(job.items.map((i) => i.invite), ["Open…", "Appr…", "Memb…"]);
    assert.ok(!res.text.includes(DEMO.open.code));
    const done = await waitFor(app, token, sid, job.job_id, finished);
    const elapsed = Date.now() - started;
    assert.equal(done.status, "completed");
    assert.deepEqual(done.items.map((i) => i.status), ["joined", "pending_approval", "already_member"]);
    assert.deepEqual(done.items.map((i) => i.group_jid), [DEMO.open.group_jid, DEMO.approval.group_jid, DEMO.member.group_jid]);
    assert.ok(done.items.every((i) => i.attempts === 1 && i.finished_at));
    const calls = app.sim.calls(sid).filter((c) => c.route === "join");
    assert.deepEqual(calls.map((c) => c.body.code), [DEMO.open.code, DEMO.approval.code, DEMO.member.code]);
    for (let i = 1; i < calls.length; i++) {
      const gap = calls[i].started_at - calls[i - 1].started_at;
      assert.ok(gap >= 5000 - 50, `gap ${gap} ms is at least the interval`);
      // 1x to 2x the interval (section 10 v1.2), and slack for the exchange, KV and alarm
      // latency on a loaded machine.
      assert.ok(gap <= 10_000 + 3000, `gap ${gap} ms is at most 2 x interval (and a little)`);
    }
    assert.equal(app.sim.stats().max_concurrency[sid], 1);
    console.log(`# a 3-item job at interval_s 5 took ${(elapsed / 1000).toFixed(1)} s`);
    // A finished job cannot be paused, resumed or cancelled.
    for (const action of ["pause", "resume", "cancel"]) {
      assertEnvelope(await post(sid, job.job_id, action), { status: 409, code: "job_finished" });
    }
  });

  test("every catalogue outcome as an item (one session each, so they run at once)", async () => {
    const expected = {
      open: ["joined"],
      approval: ["pending_approval"],
      member: ["already_member"],
      revoked: ["failed", "invite_revoked", 410],
      invalid: ["failed", "invite_invalid", 406],
      full: ["failed", "group_full", 419],
      communityFull: ["failed", "group_full", 412],
      removed: ["failed", "join_not_allowed", 403],
      notAllowed: ["failed", "join_not_allowed", 401],
      notFound: ["failed", "group_not_found", 404],
    };
    const jobs = [];
    for (const name of Object.keys(expected)) {
      const sid = await app.freshSession("job-outcome", FAST);
      const job = assertEnvelope(await submit(sid, { invites: [DEMO[name].code] }), { status: 202 }).data;
      jobs.push([name, sid, job.job_id]);
    }
    for (const [name, sid, jobId] of jobs) {
      const job = await waitFor(app, token, sid, jobId, finished);
      const [status, code, wa] = expected[name];
      const item = job.items[0];
      assert.equal(item.status, status, name);
      if (code) {
        assert.equal(item.error.code, code, name);
        assert.equal(item.error.wa_code, wa, name);
        assert.equal(job.counts.failed, 1);
      }
    }
    // An invite message on a kind that cannot join by message fails as not_implemented.
    const sid = await app.kindSession("waha", "job-msg", { limits: FAST });
    const message = { code: DEMO.open.code, group_jid: DEMO.open.group_jid, inviter_jid: "15551234567@s.whatsapp.net" };
    const job = assertEnvelope(await submit(sid, { invites: [message] }), { status: 202 }).data;
    const done = await waitFor(app, token, sid, job.job_id, finished);
    assert.equal(done.items[0].error.code, "not_implemented");
    assert.equal(done.items[0].invite, "Open…");
  });

  test("a transient failure is retried with backoff; the item then joins", async () => {
    const sid = await app.freshSession("job-retry", FAST);
    app.sim.setFault({ session: sid, mode: "status503", count: 1 });
    const job = assertEnvelope(await submit(sid, { invites: [DEMO.open.code], interval_s: 5 }), { status: 202 }).data;
    const retrying = await waitFor(app, token, sid, job.job_id, (j) => j.items[0].attempts === 1);
    assert.equal(retrying.items[0].status, "pending");
    assert.equal(retrying.status, "running");
    assert.ok(retrying.next_attempt_at, "the retry is scheduled");
    const done = await waitFor(app, token, sid, job.job_id, finished, 20_000);
    assert.equal(done.items[0].status, "joined");
    assert.equal(done.items[0].attempts, 2);
    // v1.2: a job item previews first (preview_first "jobs", section 15), so the fault met
    // the first attempt's preview and no join request went out then.
    const routes = app.sim.calls(sid).map((c) => c.route).filter((r) => r === "join" || r === "invite_preview");
    assert.deepEqual(routes, ["invite_preview", "invite_preview", "join"]);
  });

  test("pause stops items, resume continues, cancel cancels what is pending", async () => {
    const sid = await app.freshSession("job-pause", FAST);
    const job = assertEnvelope(await submit(sid, { invites: [DEMO.open.code, DEMO.member.code, DEMO.approval.code], interval_s: 5 }), { status: 202 }).data;
    const paused = assertEnvelope(await post(sid, job.job_id, "pause"), { status: 200 }).data;
    assert.equal(paused.status, "paused");
    assert.equal(paused.pause_reason, "requested");
    await sleep(6500);
    const still = await waitFor(app, token, sid, job.job_id, () => true);
    assert.ok(still.counts.pending >= 2, `paused: ${JSON.stringify(still.counts)}`);
    assert.equal(still.status, "paused");
    const resumed = assertEnvelope(await post(sid, job.job_id, "resume"), { status: 200 }).data;
    assert.ok(["queued", "running"].includes(resumed.status), resumed.status);
    assert.equal(resumed.pause_reason, undefined);
    const done = await waitFor(app, token, sid, job.job_id, finished, 30_000);
    assert.equal(done.counts.pending, 0);
    assert.equal(done.status, "completed");

    const other = assertEnvelope(await submit(sid, { invites: [DEMO.revoked.code, DEMO.full.code, DEMO.removed.code], interval_s: 60 }), { status: 202 }).data;
    const cancelled = assertEnvelope(await post(sid, other.job_id, "cancel"), { status: 200 }).data;
    assert.equal(cancelled.status, "cancelled");
    assert.ok(cancelled.counts.cancelled >= 2);
    assert.equal(cancelled.counts.pending + cancelled.counts.cancelled + cancelled.counts.failed, 3);
    const later = await waitFor(app, token, sid, other.job_id, (j) => j.counts.pending === 0);
    assert.equal(later.status, "cancelled");
    assertEnvelope(await post(sid, other.job_id, "cancel"), { status: 409, code: "job_finished" });
  });

  test("list: newest first, without items; get of another org's or a malformed job is not_found", async () => {
    const sid = await app.freshSession("job-list", FAST);
    const first = assertEnvelope(await submit(sid, { invites: [DEMO.open.code], interval_s: 60 }), { status: 202 }).data;
    const second = assertEnvelope(await submit(sid, { invites: [DEMO.member.code], interval_s: 60 }), { status: 202 }).data;
    const list = assertEnvelope(await app.request("GET", `/v1/sessions/${sid}/join-jobs`, { token }), { status: 200 }).data;
    assert.deepEqual(list.jobs.map((j) => j.job_id), [second.job_id, first.job_id]);
    assert.ok(list.jobs.every((j) => !("items" in j)));
    for (const bad of ["job_0000000000000000", "nope", "job_ABCDEF0123456789", "job_%zz"]) {
      assertEnvelope(await app.request("GET", `/v1/sessions/${sid}/join-jobs/${bad}`, { token }), { status: 404, code: "not_found" });
    }
    // Another org's token cannot see the session, nor its jobs.
    const other = await app.token("other-org", ["join", "read"]);
    assertEnvelope(await app.request("GET", `/v1/sessions/${sid}/join-jobs/${first.job_id}`, { token: other }), { status: 404, code: "not_found" });
    assertEnvelope(await app.request("POST", `/v1/sessions/${sid}/join-jobs/${first.job_id}/cancel`, { token: other }), { status: 404 });
    // A job of another session is not found on this one.
    const elsewhere = await app.freshSession("job-list", FAST);
    assertEnvelope(await app.request("GET", `/v1/sessions/${elsewhere}/join-jobs/${first.job_id}`, { token }), { status: 404, code: "not_found" });
    // A read token may list, not submit.
    const reader = await app.token("acme", ["read"]);
    assertEnvelope(await app.request("GET", `/v1/sessions/${sid}/join-jobs`, { token: reader }), { status: 200 });
    assertEnvelope(await app.request("POST", `/v1/sessions/${sid}/join-jobs`, { token: reader, json: { invites: [DEMO.open.code] } }), { status: 403, code: "forbidden" });
  });

  test("at most 10 unfinished jobs per session; Idempotency-Key replays the submit", async () => {
    const sid = await app.freshSession("job-limit", FAST);
    const body = { invites: [DEMO.rateLimited.code], interval_s: 86400 };
    const keyed = await submit(sid, body, { "Idempotency-Key": "submit-1" });
    const again = await submit(sid, body, { "Idempotency-Key": "submit-1" });
    assert.equal(again.headers.get("idempotent-replayed"), "true");
    assert.equal(again.body.data.job_id, keyed.body.data.job_id);
    assertEnvelope(await submit(sid, { ...body, label: "x" }, { "Idempotency-Key": "submit-1" }), { status: 422, code: "idempotency_key_reused" });
    for (let i = 1; i < 10; i++) assertEnvelope(await submit(sid, { invites: [DEMO.revoked.code], interval_s: 86400 }), { status: 202 });
    assertEnvelope(await submit(sid, body), { status: 409, code: "too_many_jobs" });
    const list = assertEnvelope(await app.request("GET", `/v1/sessions/${sid}/join-jobs`, { token }), { status: 200 }).data;
    assert.equal(list.jobs.length, 10);
  });

  test("every item is checked like a join body before anything is stored", async () => {
    const sid = await app.freshSession("job-bad", FAST);
    const cases = [
      [{ invites: [DEMO.open.code, "https://evil.example/x"] }, 400, "invite_malformed", "invites[1]"],
      [{ invites: [DEMO.open.code, 7] }, 400, "validation_error", "invites[1]"],
      [{ invites: [{ code: "x", group_jid: "nope", inviter_jid: "1@lid" }] }, 400, "validation_error", "invites[0].group_jid"],
      [{ invites: [{ code: "x", group_jid: "1@g.us", inviter_jid: "1@lid", expiration: 5 }] }, 410, "invite_expired", "invites[0].expiration"],
      [{ invites: [] }, 400, "validation_error", "invites"],
      [{ invites: Array(501).fill(DEMO.open.code) }, 400, "validation_error", "invites"],
      [{ invites: [DEMO.open.code], interval_s: 4 }, 400, "validation_error", "interval_s"],
      [{ invites: [DEMO.open.code], label: "" }, 400, "validation_error", "label"],
      [{ invites: [DEMO.open.code], speed: "fast" }, 400, "validation_error", "speed"],
    ];
    for (const [json, status, code, field] of cases) {
      const body = assertEnvelope(await submit(sid, json), { status, code });
      assert.equal(body.error.details.field, field, JSON.stringify(json).slice(0, 80));
    }
    assertEnvelope(await app.request("POST", `/v1/sessions/${sid}/join-jobs`, { token, body: "{not json", headers: { "Content-Type": "application/json" } }), { status: 400, code: "validation_error" });
    assertEnvelope(await app.request("POST", `/v1/sessions/${sid}/join-jobs`, { token, body: "x", headers: { "Content-Type": "text/plain" } }), { status: 415 });
    assertEnvelope(await app.request("POST", `/v1/sessions/${sid}/join-jobs`, { token, body: "x".repeat(257 * 1024), headers: { "Content-Type": "application/json" } }), { status: 413 });
    const list = assertEnvelope(await app.request("GET", `/v1/sessions/${sid}/join-jobs`, { token }), { status: 200 }).data;
    assert.deepEqual(list.jobs, [], "nothing was stored");
    // Duplicates collapse (500 as sent is fine).
    const dupes = assertEnvelope(await submit(sid, { invites: [...Array(499).fill(DEMO.open.code), link("open")], interval_s: 86400 }), { status: 202 }).data;
    assert.equal(dupes.counts.total, 1);
    // Pause/resume/cancel take no body but {}.
    assertEnvelope(await app.request("POST", `/v1/sessions/${sid}/join-jobs/${dupes.job_id}/pause`, { token, json: { now: true } }), { status: 400 });
  });

  test("a job on another backend kind (WAHA) paces and answers as on the native kind", async () => {
    const sid = await app.kindSession("waha", "job-waha", { limits: FAST });
    const job = assertEnvelope(await submit(sid, { invites: [DEMO.approval.code, DEMO.revoked.code], interval_s: 5 }), { status: 202 }).data;
    const done = await waitFor(app, token, sid, job.job_id, finished, 20_000);
    assert.deepEqual(done.items.map((i) => i.status), ["pending_approval", "failed"]);
    assert.equal(done.items[1].error.code, "invite_revoked");
    assert.ok(app.sim.calls(sid).every((c) => c.kind === "waha"));
  });

  test("deleting the session deletes its jobs; registering it again does not bring them back", async () => {
    const sid = await app.freshSession("job-delete", FAST);
    const job = assertEnvelope(await submit(sid, { invites: [DEMO.open.code, DEMO.member.code], interval_s: 3600 }), { status: 202 }).data;
    assertEnvelope(await app.admin("DELETE", `/v1/admin/sessions/${sid}`), { status: 200 });
    await app.session(sid, "acme", FAST);
    assertEnvelope(await app.request("GET", `/v1/sessions/${sid}/join-jobs/${job.job_id}`, { token }), { status: 404, code: "not_found" });
    const list = assertEnvelope(await app.request("GET", `/v1/sessions/${sid}/join-jobs`, { token }), { status: 200 }).data;
    assert.deepEqual(list.jobs, []);
  });
});

describe("join jobs across a restart of workerd", () => {
  test("no item is lost and none that finished is repeated", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "joingate-jobs-"));
    const sim = await startSimulator({ port: 0, token: "backend-secret" });
    try {
      let app = await startJoingate({ persist: dir, simulator: sim, orgLimit: 100000 });
      const token = await app.token("acme", ["join", "read"]);
      await app.session("restart-job", "acme", FAST);
      const res = await app.request("POST", "/v1/sessions/restart-job/join-jobs", {
        token,
        json: { invites: [DEMO.open.code, DEMO.approval.code, DEMO.member.code], interval_s: 5 },
      });
      const job = assertEnvelope(res, { status: 202 }).data;
      await waitFor(app, token, "restart-job", job.job_id, (j) => j.counts.pending <= 2);
      await app.mf.dispose();
      // The same state on disk, a new runtime: the alarm picks the job up again.
      app = await startJoingate({ persist: dir, simulator: sim, orgLimit: 100000 });
      const done = await waitFor(app, token, "restart-job", job.job_id, finished, 40_000);
      assert.deepEqual(done.items.map((i) => i.status), ["joined", "pending_approval", "already_member"]);
      const joins = sim.calls("restart-job").filter((c) => c.route === "join").map((c) => c.body.code);
      assert.deepEqual(joins, [DEMO.open.code, DEMO.approval.code, DEMO.member.code], "each item ran once");
      await app.mf.dispose();
    } finally {
      await sim.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
