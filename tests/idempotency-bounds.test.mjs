// Idempotency records stay bounded (contract section 6, v1.2): at most 1,000 per session,
// the oldest going first; an internal_error is never stored, so a retry runs again.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startJoingate, assertEnvelope, eventually } from "./helpers.mjs";
import { DEMO } from "../sim/catalogue.mjs";

const FAST = { join: { per_minute: 6000, burst: 1000 }, read: { per_minute: 6000, burst: 1000 } };

describe("idempotency bounds", () => {
  let app;
  let token;
  before(async () => {
    app = await startJoingate({ orgLimit: 1_000_000 });
    token = await app.token("acme", ["join", "read"]);
  });
  after(() => app.close());

  test("a session keeps at most 1,000 records: the oldest goes first", async () => {
    const sid = await app.freshSession("records", FAST);
    const job = assertEnvelope(
      await app.request("POST", `/v1/sessions/${sid}/join-jobs`, { token, json: { invites: [DEMO.open.code] } }),
      { status: 202 },
    ).data;
    // A finished job: every pause of it is an executed 409 job_finished, stored like any
    // answer of a route that calls no backend. (Its one item joins quickly; cancelling it
    // instead would race that item and could itself find the job finished.)
    await eventually(async () => {
      const current = assertEnvelope(await app.request("GET", `/v1/sessions/${sid}/join-jobs/${job.job_id}`, { token }), { status: 200 }).data;
      return current.status === "completed";
    }, "the job to finish");
    const pause = (key) =>
      app.request("POST", `/v1/sessions/${sid}/join-jobs/${job.job_id}/pause`, { token, headers: { "Idempotency-Key": key } });
    for (let n = 0; n <= 1000; n++) {
      assertEnvelope(await pause(`k${n}`), { status: 409, code: "job_finished" });
    }
    const newest = await pause("k1000");
    assert.equal(newest.headers.get("idempotent-replayed"), "true", "the newest is kept");
    const second = await pause("k1");
    assert.equal(second.headers.get("idempotent-replayed"), "true", "1,000 are kept");
    const oldest = await pause("k0");
    assertEnvelope(oldest, { status: 409, code: "job_finished" });
    assert.equal(oldest.headers.get("idempotent-replayed"), null, "the 1,001st oldest was dropped: it runs again");
  });

  test("an internal_error is not stored: the same key runs again once the fault is mended", async () => {
    const sid = await app.kindSession("waha", "sealed", { limits: FAST });
    const kv = await app.mf.getKVNamespace("JOINGATE_KV");
    const good = await kv.get(`session:${sid}`);
    const record = JSON.parse(good);
    // A sealed credential that no longer opens (tampered with): the call cannot be sent.
    record.backend.credential.ct = Buffer.from("not the sealed credential").toString("base64");
    await kv.put(`session:${sid}`, JSON.stringify(record));
    const key = { "Idempotency-Key": "sealed-1" };
    const failed = await app.join(sid, token, { invite: DEMO.open.code }, key);
    assert.ok(failed.status >= 500, failed.text);
    assert.equal(app.sim.calls(sid).length, 0, "nothing was sent");
    await kv.put(`session:${sid}`, good);
    const retried = await app.join(sid, token, { invite: DEMO.open.code }, key);
    assertEnvelope(retried, { status: 200 });
    assert.equal(retried.headers.get("idempotent-replayed"), null);
    assert.equal(app.sim.calls(sid).filter((c) => c.route === "join").length, 1);
  });
});
