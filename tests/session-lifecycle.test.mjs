// A session that changes hands, or is deleted (contract section 9, v1.2): the old org's jobs
// are cancelled (`session_reassigned`), its idempotency records forgotten, its queued calls
// refused, and nothing of it runs or reaches its webhook after the PUT's answer; a DELETE
// resets the object first, even when it finds no record; the alarm of a session with no
// record stops.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startJoingate, assertEnvelope, sleep, eventually as waitFor, startReceiver } from "./helpers.mjs";
import { DEMO } from "../sim/catalogue.mjs";

const FAST = { join: { per_minute: 6000, burst: 1000 }, read: { per_minute: 6000, burst: 1000 } };

describe("a session that changes hands, or is deleted", () => {
  let app;
  let acme;
  let beta;
  let receiver;
  before(async () => {
    app = await startJoingate({ orgLimit: 100_000, vars: { BACKEND_TIMEOUT_MS: "6000" } });
    acme = await app.token("acme", ["join", "read"]);
    beta = await app.token("beta", ["join", "read"]);
    receiver = await startReceiver();
    assertEnvelope(await app.admin("PUT", "/v1/admin/orgs/acme/webhook", { url: `${receiver.base}/hook` }), { status: 200 });
  });
  after(async () => {
    await app.close();
    await receiver.close();
  });

  const joins = (sid) => app.sim.calls(sid).filter((c) => c.route === "join");
  const events = () => receiver.received.map((r) => JSON.parse(r.body));
  const getJob = (sid, token, id) => app.request("GET", `/v1/sessions/${sid}/join-jobs/${id}`, { token });

  test("a job of org A on a session moved to org B is cancelled, A's queued call never runs, and A hears nothing after the PUT", async () => {
    const sid = await app.freshSession("moved", FAST);
    const submitted = await app.request("POST", `/v1/sessions/${sid}/join-jobs`, {
      token: acme,
      json: { invites: [DEMO.open.code, DEMO.member.code, DEMO.approval.code], interval_s: 60 },
    });
    const job = assertEnvelope(submitted, { status: 202 }).data;
    await waitFor(async () => assertEnvelope(await getJob(sid, acme, job.job_id), { status: 200 }).data.counts.joined === 1, "the first item");
    await waitFor(() => events().some((e) => e.data.job_id === job.job_id), "the first item's event");
    // A's join holds the queue for 2 s; A's leave waits behind it.
    app.sim.setFault({ session: sid, mode: "latency", delay_ms: 2000, count: 1 });
    const held = app.join(sid, acme, { invite: DEMO.approval.code });
    await sleep(300);
    const queued = app.request("POST", `/v1/sessions/${sid}/groups/${DEMO.open.group_jid}/leave`, { token: acme });
    await sleep(200);
    const put = assertEnvelope(await app.admin("PUT", `/v1/admin/sessions/${sid}`, { org: "beta", limits: FAST }), { status: 200 });
    assert.equal(put.data.org, "beta");
    const answered = Date.now();
    const eventsAtAnswer = events().length;
    // The call under way ended before the PUT answered; the queued one did not run.
    assertEnvelope(await held, { status: 200 });
    assertEnvelope(await queued, { status: 404, code: "not_found" });
    assert.equal(app.sim.calls(sid).filter((c) => c.route === "leave").length, 0, "A's queued leave never reached the backend");
    // B sees none of A's jobs; A cannot reach the session.
    const list = assertEnvelope(await app.request("GET", `/v1/sessions/${sid}/join-jobs`, { token: beta }), { status: 200 }).data;
    assert.deepEqual(list.jobs, []);
    assertEnvelope(await getJob(sid, beta, job.job_id), { status: 404, code: "not_found" });
    assertEnvelope(await getJob(sid, acme, job.job_id), { status: 404, code: "not_found" });
    await sleep(1500);
    assert.equal(events().length, eventsAtAnswer, "no event of A raised after the PUT's answer");
    assert.ok(events().every((e) => e.data.session_id !== sid || Date.parse(e.timestamp) <= answered));
    // Moved back to A: A's job shows how it ended; no item of it ran after the move.
    const joinsBefore = joins(sid).length;
    assertEnvelope(await app.admin("PUT", `/v1/admin/sessions/${sid}`, { org: "acme", limits: FAST }), { status: 200 });
    const ended = assertEnvelope(await getJob(sid, acme, job.job_id), { status: 200 }).data;
    assert.equal(ended.status, "cancelled");
    assert.equal(ended.cancel_reason, "session_reassigned");
    assert.deepEqual(ended.items.map((i) => i.status), ["joined", "cancelled", "cancelled"]);
    assert.equal(ended.counts.cancelled, 2);
    await sleep(500);
    assert.equal(joins(sid).length, joinsBefore);
  });

  test("a change of hands forgets the idempotency records; a PUT with the same org keeps them", async () => {
    const sid = await app.freshSession("keys", FAST);
    const key = { "Idempotency-Key": "move-1" };
    assertEnvelope(await app.join(sid, acme, { invite: DEMO.open.code }, key), { status: 200 });
    assertEnvelope(await app.admin("PUT", `/v1/admin/sessions/${sid}`, { org: "acme", limits: FAST }), { status: 200 });
    const replay = await app.join(sid, acme, { invite: DEMO.open.code }, key);
    assert.equal(replay.headers.get("idempotent-replayed"), "true", "same org: kept");
    assertEnvelope(await app.admin("PUT", `/v1/admin/sessions/${sid}`, { org: "beta", limits: FAST }), { status: 200 });
    assertEnvelope(await app.admin("PUT", `/v1/admin/sessions/${sid}`, { org: "acme", limits: FAST }), { status: 200 });
    const again = await app.join(sid, acme, { invite: DEMO.open.code }, key);
    assertEnvelope(again, { status: 200 });
    assert.equal(again.headers.get("idempotent-replayed"), null, "forgotten: the call runs again");
    assert.equal(joins(sid).length, 2);
  });

  test("a DELETE that finds no record still resets the object; registering again brings nothing back", async () => {
    const sid = await app.freshSession("orphan", FAST);
    const job = assertEnvelope(
      await app.request("POST", `/v1/sessions/${sid}/join-jobs`, { token: acme, json: { invites: [DEMO.member.code, DEMO.open.code], interval_s: 86400 } }),
      { status: 202 },
    ).data;
    // The record disappears without the object hearing of it (a DELETE that failed half way).
    const kv = await app.mf.getKVNamespace("JOINGATE_KV");
    await kv.delete(`session:${sid}`);
    assertEnvelope(await app.admin("DELETE", `/v1/admin/sessions/${sid}`), { status: 404, code: "not_found" });
    await app.session(sid, "acme", FAST);
    assertEnvelope(await getJob(sid, acme, job.job_id), { status: 404, code: "not_found" });
    const list = assertEnvelope(await app.request("GET", `/v1/sessions/${sid}/join-jobs`, { token: acme }), { status: 200 }).data;
    assert.deepEqual(list.jobs, []);
  });

  test("the alarm of a session with no record stops instead of re-arming", async () => {
    const sid = await app.freshSession("norecord", FAST);
    const job = assertEnvelope(
      await app.request("POST", `/v1/sessions/${sid}/join-jobs`, { token: acme, json: { invites: [DEMO.member.code, DEMO.open.code], interval_s: 5 } }),
      { status: 202 },
    ).data;
    await waitFor(async () => assertEnvelope(await getJob(sid, acme, job.job_id), { status: 200 }).data.counts.already_member === 1, "the first item");
    const kv = await app.mf.getKVNamespace("JOINGATE_KV");
    await kv.delete(`session:${sid}`);
    const stopped = () => app.logs.filter((l) => l.includes("join jobs stopped") && l.includes(sid));
    await waitFor(() => stopped().length === 1, "the alarm's stop", 15_000);
    await sleep(2000);
    assert.equal(stopped().length, 1, "it does not come back");
    assert.equal(joins(sid).length, 1, "the second item never ran");
  });
});
