// The WhatsApp cooldown (contract section 10), end to end: a 429 on a join or leave, from a
// client or a job item, holds every join and leave of the session; an account restriction
// (WhatsApp 463) holds them for 24 hours; other classes go on; the cooldown is durable and
// shown in the session status and the jobs.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startJoingate, assertEnvelope, sleep, eventually } from "./helpers.mjs";
import { DEMO } from "../sim/catalogue.mjs";

const FAST = { join: { per_minute: 6000, burst: 1000 }, read: { per_minute: 6000, burst: 1000 } };
const SIM_RETRY_AFTER_S = 30;

describe("WhatsApp cooldown", () => {
  let app;
  let token;
  const status = async (sid) => assertEnvelope(await app.request("GET", `/v1/sessions/${sid}`, { token }), { status: 200 }).data;

  before(async () => {
    app = await startJoingate({ orgLimit: 100000 });
    token = await app.token("acme", ["join", "read", "manage"]);
  });
  after(() => app.close());

  test("a client's 429 starts it: joins and leaves answer session_cooling_down, previews go on", async () => {
    const sid = await app.freshSession("cool-client", FAST);
    assert.equal((await status(sid)).cooldown_until, null);
    const first = await app.join(sid, token, { invite: DEMO.rateLimited.code });
    assertEnvelope(first, { status: 429, code: "upstream_rate_limited" });
    assert.equal(first.headers.get("retry-after"), String(SIM_RETRY_AFTER_S));
    const before = app.sim.calls(sid).length;
    const join = await app.join(sid, token, { invite: DEMO.open.code });
    const body = assertEnvelope(join, { status: 429, code: "session_cooling_down" });
    assert.match(body.error.details.cooldown_until, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.equal(body.error.details.reason, "rate_overlimit");
    const wait = Number(join.headers.get("retry-after"));
    assert.ok(wait >= 1 && wait <= SIM_RETRY_AFTER_S, `Retry-After ${wait}`);
    const leave = await app.request("POST", `/v1/sessions/${sid}/groups/${DEMO.member.group_jid}/leave`, { token });
    assertEnvelope(leave, { status: 429, code: "session_cooling_down" });
    assert.equal(app.sim.calls(sid).length, before, "no join or leave reached the backend");
    // Other classes are not affected.
    assertEnvelope(await app.request("GET", `/v1/sessions/${sid}/invites/${DEMO.open.code}`, { token }), { status: 200 });
    const shown = await status(sid);
    assert.equal(shown.cooldown_until, body.error.details.cooldown_until);
    // A 429 on a preview does not start one.
    const other = await app.freshSession("cool-preview", FAST);
    assertEnvelope(await app.request("GET", `/v1/sessions/${other}/invites/${DEMO.rateLimited.code}`, { token }), { status: 429, code: "upstream_rate_limited" });
    assertEnvelope(await app.join(other, token, { invite: DEMO.open.code }), { status: 200 });
  });

  test("a join queued behind the one that starts it does not reach the backend", async () => {
    const sid = await app.freshSession("cool-queued", FAST);
    app.sim.setConfig({ latency_ms: 1000 });
    try {
      const [first, second] = await Promise.all([
        app.join(sid, token, { invite: DEMO.rateLimited.code }),
        // Sent once the first is at the backend (so it is surely second), while it still is.
        (async () => {
          await eventually(() => app.sim.calls(sid).length === 1, "the first call at the backend");
          return app.join(sid, token, { invite: DEMO.open.code });
        })(),
      ]);
      assertEnvelope(first, { status: 429, code: "upstream_rate_limited" });
      assertEnvelope(second, { status: 429, code: "session_cooling_down" });
      assert.deepEqual(app.sim.calls(sid).map((c) => c.body?.code), [DEMO.rateLimited.code]);
    } finally {
      app.sim.setConfig({ latency_ms: 0 });
    }
  });

  test("an account restriction (WhatsApp 463) is a 24-hour cooldown, answered as session_cooling_down", async () => {
    const sid = await app.freshSession("cool-463", FAST);
    app.sim.setFault({ session: sid, mode: "whatsapp", wa_code: 463, count: 1 });
    const res = await app.join(sid, token, { invite: DEMO.open.code });
    const body = assertEnvelope(res, { status: 429, code: "session_cooling_down" });
    assert.equal(body.error.details.reason, "restricted");
    assert.equal(body.error.details.wa_code, 463);
    const hours = (Date.parse(body.error.details.cooldown_until) - Date.now()) / 3_600_000;
    assert.ok(hours > 23.9 && hours <= 24, `${hours} h`);
    assert.ok(Number(res.headers.get("retry-after")) > 86_000);
    assertEnvelope(await app.join(sid, token, { invite: DEMO.open.code }), { status: 429, code: "session_cooling_down" });
  });

  test("a job item's 429 starts it: the job is cooling_down, a client join is held too", async () => {
    const sid = await app.freshSession("cool-job", FAST);
    const submit = await app.request("POST", `/v1/sessions/${sid}/join-jobs`, {
      token,
      json: { invites: [DEMO.rateLimited.code, DEMO.open.code], interval_s: 5 },
    });
    const job = assertEnvelope(submit, { status: 202 }).data;
    let current;
    for (let i = 0; i < 80; i++) {
      const res = await app.request("GET", `/v1/sessions/${sid}/join-jobs/${job.job_id}`, { token });
      current = assertEnvelope(res, { status: 200 }).data;
      if (current.status === "cooling_down") break;
      await sleep(100);
    }
    assert.equal(current.status, "cooling_down", JSON.stringify(current));
    assert.equal(current.items[0].status, "pending");
    assert.equal(current.items[0].attempts, 0, "WhatsApp's push-back is no attempt");
    const until = (await status(sid)).cooldown_until;
    assert.ok(until);
    assert.equal(current.next_attempt_at, until, "the next attempt is at the cooldown's end");
    assertEnvelope(await app.join(sid, token, { invite: DEMO.open.code }), { status: 429, code: "session_cooling_down" });
    // Nothing more reached the backend while it lasts.
    const joins = app.sim.calls(sid).filter((c) => c.route === "join").length;
    // Longer than the pace (at most 2 x 5 s): without the cooldown the next item would run.
    await sleep(11_000);
    assert.equal(app.sim.calls(sid).filter((c) => c.route === "join").length, joins);
  });

  test("it lasts the backend's Retry-After, then joins go through again", async () => {
    const sid = await app.freshSession("cool-ends", FAST);
    app.sim.setFault({ session: sid, mode: "whatsapp", wa_code: 429, count: 1 });
    assertEnvelope(await app.join(sid, token, { invite: DEMO.open.code }), { status: 429, code: "upstream_rate_limited" });
    const until = Date.parse((await status(sid)).cooldown_until);
    const seconds = (until - Date.now()) / 1000;
    assert.ok(seconds > SIM_RETRY_AFTER_S - 5 && seconds <= SIM_RETRY_AFTER_S, `${seconds} s`);
    await sleep(until - Date.now() + 1000);
    assertEnvelope(await app.join(sid, token, { invite: DEMO.open.code }), { status: 200 });
    assert.equal((await status(sid)).cooldown_until, null);
  });
});
