// Account protection (contract section 13), end to end with the waits shrunk through
// [vars]: the hour and day caps on client calls and job items, the strikes' escalating
// cooldowns and the halving, working hours, breaks, bad invite lists, and what
// GET /v1/sessions/{sid} shows.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startJoingate, assertEnvelope, sleep, eventually as waitFor } from "./helpers.mjs";
import { DEMO } from "../sim/catalogue.mjs";

const FAST = { join: { per_minute: 6000, burst: 1000 }, read: { per_minute: 6000, burst: 1000 } };
// An "hour" of 4 s and a "day" of 10 s; strikes rest 2, 4 and 6 s; a week of 30 s.
const VARS = {
  PROTECTION_TIERS: JSON.stringify([
    { from_days: 0, per_day: 3, per_hour: 2 },
    { from_days: 30, per_day: 6, per_hour: 4 },
  ]),
  CAP_WINDOWS_S: "4,10",
  COOLDOWN_S: "2,4,6",
  PENALTY_S: "30",
  RESTRICTED_COOLDOWN_S: "5",
  RESTRICTED_MARGIN_S: "1",
  JOB_WINDOW: "off",
  JOB_BREAK_S: "0-0",
  JOB_MIN_INTERVAL_S: "1",
};


describe("account protection", () => {
  let app;
  let token;
  before(async () => {
    app = await startJoingate({ orgLimit: 100_000, vars: VARS });
    token = await app.token("acme", ["join", "read"]);
  });
  after(() => app.close());

  const status = async (sid) => assertEnvelope(await app.request("GET", `/v1/sessions/${sid}`, { token }), { status: 200 }).data;
  const register = (sid, body) => app.admin("PUT", `/v1/admin/sessions/${sid}`, { org: "acme", limits: FAST, ...body });
  const join = (sid) => app.join(sid, token, { invite: DEMO.member.code });

  test("client calls: the hour cap, then the day cap, each with an exact Retry-After; a new number's caps by default", async () => {
    const sid = "cap-client";
    assertEnvelope(await register(sid, {}), { status: 200 });
    const before = await status(sid);
    assert.equal(before.protection.age_source, "unknown");
    assert.equal(before.protection.age_days, 0);
    assert.equal(before.protection.per_day, 3);
    assert.equal(before.protection.per_hour, 2);
    assert.equal(before.protection.caps_source, "tier");
    assert.equal(before.protection.next_join_at, null);
    const first = await join(sid);
    assertEnvelope(first, { status: 200 });
    assert.equal(first.headers.get("ratelimit-policy"), '"join";q=6000;w=60, "join-hour";q=2;w=4, "join-day";q=3;w=10');
    // The one nearest to refusing: the hour, with 1 of 2 left.
    assert.match(first.headers.get("ratelimit"), /^"join-hour";r=1;t=[34]$/);
    assertEnvelope(await join(sid), { status: 200 });
    const capped = await join(sid);
    const body = assertEnvelope(capped, { status: 429, code: "rate_limited" });
    assert.equal(body.error.details.scope, "session");
    assert.equal(body.error.details.window, "hour");
    const retryAfter = Number(capped.headers.get("retry-after"));
    assert.ok(retryAfter >= 3 && retryAfter <= 4, `Retry-After ${retryAfter}`);
    assert.equal(app.sim.calls(sid).filter((c) => c.route === "join").length, 2, "nothing was sent");
    const seen = await status(sid);
    assert.equal(seen.protection.used_last_hour, 2);
    assert.ok(seen.protection.next_join_at, "the next join's time is shown");
    await sleep(retryAfter * 1000);
    assertEnvelope(await join(sid), { status: 200 });
    const day = await join(sid);
    const dayBody = assertEnvelope(day, { status: 429, code: "rate_limited" });
    assert.equal(dayBody.error.details.window, "day");
    assert.equal(app.sim.calls(sid).filter((c) => c.route === "join").length, 3);
  });

  test("a declared age and the session's own caps", async () => {
    const sid = "cap-age";
    assertEnvelope(await register(sid, { protection: { number_since: "2020-01-01" } }), { status: 200 });
    const aged = (await status(sid)).protection;
    assert.equal(aged.age_source, "declared");
    assert.ok(aged.age_days > 2000);
    assert.equal(aged.per_day, 6);
    assert.equal(aged.per_hour, 4);
    const own = { join: { per_minute: 6000, burst: 1000, per_day: 1 }, read: FAST.read };
    assertEnvelope(await app.admin("PUT", `/v1/admin/sessions/${sid}`, { org: "acme", limits: own, protection: { number_since: "2020-01-01" } }), { status: 200 });
    const session = (await status(sid)).protection;
    assert.equal(session.per_day, 1);
    assert.equal(session.caps_source, "session");
    assertEnvelope(await join(sid), { status: 200 });
    const refused = assertEnvelope(await join(sid), { status: 429, code: "rate_limited" });
    assert.equal(refused.error.details.window, "day");
  });

  test("WhatsApp 429s are strikes: 2 s, then 4 s within a day, then 6 s within a week; the day cap is halved", async () => {
    // WAHA names no Retry-After with its 429 (the native simulator asks for 30 s, which wins).
    const sid = "strikes";
    assertEnvelope(await register(sid, { protection: { number_since: "2020-01-01" }, backend: app.backendFor("waha", sid) }), { status: 200 });
    const lengths = [];
    for (let strike = 1; strike <= 3; strike++) {
      app.sim.setFault({ session: sid, mode: "whatsapp", wa_code: 429, count: 1 });
      const res = await join(sid);
      assertEnvelope(res, { status: 429, code: "upstream_rate_limited" });
      // The answer that starts a cooldown says how long it lasts, exactly.
      const seconds = Number(res.headers.get("retry-after"));
      lengths.push(seconds);
      assertEnvelope(await join(sid), { status: 429, code: "session_cooling_down" });
      await sleep(seconds * 1000 + 100);
    }
    assert.deepEqual(lengths, [2, 4, 6]);
    const seen = (await status(sid)).protection;
    assert.equal(seen.strikes_7d, 3);
    assert.equal(seen.per_day, 3, "6 halved");
    assert.ok(seen.halved_until);
  });

  test("job items wait for the hour cap (status waiting, wait_reason hour_cap), then run", async () => {
    const sid = "cap-job";
    assertEnvelope(await register(sid, {}), { status: 200 });
    const codes = [DEMO.open.code, DEMO.member.code, DEMO.approval.code];
    const job = assertEnvelope(
      await app.request("POST", `/v1/sessions/${sid}/join-jobs`, { token, json: { invites: codes, interval_s: 1 } }),
      { status: 202 },
    ).data;
    const waiting = await waitFor(async () => {
      const current = assertEnvelope(await app.request("GET", `/v1/sessions/${sid}/join-jobs/${job.job_id}`, { token }), { status: 200 }).data;
      // The second item counts against the hour from its admission, so the job shows
      // waiting while that item is still under way (2 pending); then only the third is.
      return current.status === "waiting" && current.counts.pending === 1 && current;
    }, "the job to wait with its third item left");
    assert.equal(waiting.wait_reason, "hour_cap");
    assert.equal(waiting.counts.joined + waiting.counts.already_member, 2);
    // Whole seconds in the answer: the hold ends at most a second after what it shows.
    assert.ok(Date.parse(waiting.next_attempt_at) > Date.now() - 1000);
    const done = await waitFor(async () => {
      const current = assertEnvelope(await app.request("GET", `/v1/sessions/${sid}/join-jobs/${job.job_id}`, { token }), { status: 200 }).data;
      return current.status === "completed" && current;
    }, "the job to complete");
    // Each item starts with its preview (preview_first "jobs"), soon after its admission
    // (which is what the hour counts): never before the hold the job showed (whole seconds,
    // so never later than its true end), and about the hour's 4 s after the first.
    const starts = app.sim.calls(sid).filter((c) => c.route === "invite_preview").map((c) => c.started_at);
    assert.equal(starts.length, 3);
    assert.ok(starts[2] >= Date.parse(waiting.next_attempt_at), "not before the hold it showed");
    assert.ok(starts[2] - starts[0] >= 4000 - 500, `the third item waited for the first to leave the hour: ${starts[2] - starts[0]} ms`);
    assert.equal(done.counts.pending_approval, 1);
  });

  test("job items wait for the day cap (wait_reason day_cap) until the oldest join leaves the day", async () => {
    const sid = "day-job";
    // The hour cap out of the way: 3 a day is what holds.
    assertEnvelope(await register(sid, { limits: { join: { per_minute: 6000, burst: 1000, per_hour: 10 }, read: FAST.read } }), { status: 200 });
    const codes = [DEMO.open.code, DEMO.member.code, DEMO.approval.code, DEMO.admin.code];
    const job = assertEnvelope(
      await app.request("POST", `/v1/sessions/${sid}/join-jobs`, { token, json: { invites: codes, interval_s: 1 } }),
      { status: 202 },
    ).data;
    const get = async () => assertEnvelope(await app.request("GET", `/v1/sessions/${sid}/join-jobs/${job.job_id}`, { token }), { status: 200 }).data;
    const waiting = await waitFor(async () => {
      const current = await get();
      // The third item counts from its admission: the job shows waiting while it is still
      // under way (2 pending); then only the fourth is.
      return current.status === "waiting" && current.counts.pending === 1 && current;
    }, "the job to wait for the day cap with its fourth item left");
    assert.equal(waiting.wait_reason, "day_cap");
    assert.equal((await status(sid)).protection.used_last_24h, 3);
    const done = await waitFor(async () => {
      const current = await get();
      return current.status === "completed" && current;
    }, "the job to complete", 20_000);
    // Each item starts with its preview (preview_first "jobs"), right after its admission,
    // which is what the day counts: the join follows the preview by however long it took.
    const starts = app.sim.calls(sid).filter((c) => c.route === "invite_preview").map((c) => c.started_at);
    assert.equal(starts.length, 4);
    assert.ok(starts[3] >= Date.parse(waiting.next_attempt_at), "not before the hold it showed");
    assert.ok(starts[3] - starts[0] >= 10_000 - 500, `the fourth item waited for the first to leave the day: ${starts[3] - starts[0]} ms`);
    assert.equal(done.counts.pending, 0);
  });

  test("five bad invites in a row pause the job (bad_invites); resume goes on", async () => {
    const sid = "bad-list";
    assertEnvelope(await register(sid, { protection: { number_since: "2020-01-01" }, limits: { join: { per_minute: 6000, burst: 1000, per_day: 1000, per_hour: 200 } } }), { status: 200 });
    const bad = [DEMO.revoked.code, DEMO.invalid.code, DEMO.notFound.code, `${DEMO.revoked.code}A`, `${DEMO.invalid.code}B`, DEMO.open.code];
    const job = assertEnvelope(
      await app.request("POST", `/v1/sessions/${sid}/join-jobs`, { token, json: { invites: bad, interval_s: 1 } }),
      { status: 202 },
    ).data;
    const paused = await waitFor(async () => {
      const current = assertEnvelope(await app.request("GET", `/v1/sessions/${sid}/join-jobs/${job.job_id}`, { token }), { status: 200 }).data;
      return current.status === "paused" && current;
    }, "the job to pause", 30_000);
    assert.equal(paused.pause_reason, "bad_invites");
    assert.equal(paused.counts.failed, 5);
    assert.equal(paused.counts.pending, 1);
    await sleep(1500);
    // v1.2: each item previews first (preview_first "jobs"), and a bad invite ends there.
    const calls = app.sim.calls(sid);
    assert.equal(calls.filter((c) => c.route === "invite_preview").length, 5, "nothing more is tried");
    assert.equal(calls.filter((c) => c.route === "join").length, 0, "no join request for a bad invite");
    assertEnvelope(await app.request("POST", `/v1/sessions/${sid}/join-jobs/${job.job_id}/resume`, { token }), { status: 200 });
    const done = await waitFor(async () => {
      const current = assertEnvelope(await app.request("GET", `/v1/sessions/${sid}/join-jobs/${job.job_id}`, { token }), { status: 200 }).data;
      return current.status === "completed" && current;
    }, "the job to complete");
    assert.equal(done.counts.joined, 1);
  });

  for (const kind of ["waha", "joingate"]) {
    test(`${kind}: a restriction waits for the end the server states (plus the margin), then the number warms up again`, async () => {
      const sid = `restricted-${kind}`;
      const backend = app.backendFor(kind, sid);
      assertEnvelope(await register(sid, { protection: { number_since: "2020-01-01" }, backend }), { status: 200 });
      // Far enough ahead that the join surely meets the restriction on a loaded machine.
      const end = Math.floor(Date.now() / 1000) + 5;
      app.sim.setRestriction({ session: sid, until_s: end });
      const res = await join(sid);
      const body = assertEnvelope(res, { status: 429, code: "session_cooling_down" });
      assert.equal(body.error.details.reason, "restricted");
      // The stated end plus RESTRICTED_MARGIN_S (1 s here), not RESTRICTED_COOLDOWN_S (5 s).
      assert.equal(Date.parse(body.error.details.cooldown_until), (end + 1) * 1000);
      const during = await status(sid);
      assert.equal(Date.parse(during.cooldown_until), (end + 1) * 1000);
      assert.equal(Date.parse(during.protection.rewarm_until), (end + 1 + 30) * 1000, "shown from the start");
      assertEnvelope(await join(sid), { status: 429, code: "session_cooling_down" });
      await sleep((end + 1) * 1000 - Date.now() + 200);
      app.sim.setRestriction({ session: sid, active: false });
      // Warm-up: a new number's caps (3 a day, 2 an hour here) though the number is old.
      const warm = (await status(sid)).protection;
      assert.equal(warm.age_source, "declared", "the declared age stays");
      assert.equal(warm.per_day, 3);
      assert.equal(warm.per_hour, 2);
      assertEnvelope(await join(sid), { status: 200 });
    });
  }

  test("a restriction the server states nothing about rests RESTRICTED_COOLDOWN_S", async () => {
    const sid = "restricted-gowa";
    assertEnvelope(await register(sid, { backend: app.backendFor("gowa", sid) }), { status: 200 });
    app.sim.setRestriction({ session: sid, until_s: Math.floor(Date.now() / 1000) + 600 });
    const before = Date.now();
    const body = assertEnvelope(await join(sid), { status: 429, code: "session_cooling_down" });
    const after = Date.now();
    const until = Date.parse(body.error.details.cooldown_until);
    // 5 s from when the join ended (whole seconds in the answer).
    assert.ok(until >= before + 4000 && until <= after + 5000, `${until - before} ms after the call began, ${until - after} ms after it ended`);
  });

  test("a job waits while the window is closed (outside_window), and runs when it opens", async () => {
    const sid = "windowed";
    // A window that opens at the next whole minute at least 4 s away (time to see the job
    // wait even on a loaded machine), in UTC.
    const now = new Date();
    const open = new Date(Math.ceil((now.getTime() + 4000) / 60_000) * 60_000);
    const hhmm = (d) => `${String(d.getUTCHours()).padStart(2, "0")}:${String(d.getUTCMinutes()).padStart(2, "0")}`;
    const close = new Date(open.getTime() + 60 * 60_000);
    if (close.getUTCDate() !== open.getUTCDate() || open.getUTCDate() !== now.getUTCDate()) return; // not across midnight
    const window = { start: hhmm(open), end: hhmm(close) };
    assertEnvelope(await register(sid, { protection: { number_since: "2020-01-01", timezone: "UTC", window } }), { status: 200 });
    // A person's own join is never held by the window.
    assertEnvelope(await app.join(sid, token, { invite: DEMO.approval.code }), { status: 200 });
    const job = assertEnvelope(
      await app.request("POST", `/v1/sessions/${sid}/join-jobs`, { token, json: { invites: [DEMO.open.code], interval_s: 1 } }),
      { status: 202 },
    ).data;
    const waiting = await waitFor(async () => {
      const current = assertEnvelope(await app.request("GET", `/v1/sessions/${sid}/join-jobs/${job.job_id}`, { token }), { status: 200 }).data;
      return current.status === "waiting" && current;
    }, "the job to wait for the window");
    assert.equal(waiting.wait_reason, "outside_window");
    assert.equal(Date.parse(waiting.next_attempt_at), open.getTime(), "its next start, no jitter");
    assert.deepEqual((await status(sid)).protection.window, { ...window, timezone: "UTC" });
    const done = await waitFor(async () => {
      const current = assertEnvelope(await app.request("GET", `/v1/sessions/${sid}/join-jobs/${job.job_id}`, { token }), { status: 200 }).data;
      return current.status === "completed" && current;
    }, "the job to run once the window opens", 75_000);
    const ran = app.sim.calls(sid).filter((c) => c.route === "join" && c.body?.code === DEMO.open.code);
    assert.equal(ran.length, 1);
    assert.ok(ran[0].started_at >= open.getTime(), "not before the window opened");
    assert.equal(done.items[0].status, "joined");
  });
});

describe("account protection: breaks", () => {
  let app;
  let token;
  before(async () => {
    // A break of 5 s after every 2 items: longer than any usual gap (1-2 s) with room for a
    // loaded machine's overhead.
    app = await startJoingate({ orgLimit: 100_000, vars: { ...VARS, JOB_BREAK_EVERY: "2-2", JOB_BREAK_S: "5-5", PROTECTION_TIERS: JSON.stringify([{ from_days: 0, per_day: 1000, per_hour: 200 }]) } });
    token = await app.token("acme", ["join", "read"]);
  });
  after(() => app.close());

  test("after every 2 items comes a 5 s break instead of the usual gap", async () => {
    const sid = "breaks";
    assertEnvelope(await app.admin("PUT", `/v1/admin/sessions/${sid}`, { org: "acme", limits: FAST }), { status: 200 });
    const codes = [DEMO.open.code, DEMO.member.code, DEMO.approval.code, DEMO.admin.code, DEMO.revoked.code];
    const job = assertEnvelope(
      await app.request("POST", `/v1/sessions/${sid}/join-jobs`, { token, json: { invites: codes, interval_s: 1 } }),
      { status: 202 },
    ).data;
    await waitFor(async () => {
      const current = assertEnvelope(await app.request("GET", `/v1/sessions/${sid}/join-jobs/${job.job_id}`, { token }), { status: 200 }).data;
      return current.status === "completed";
    }, "the job", 30_000);
    // Each item starts with its preview (preview_first "jobs"; the revoked one ends there).
    const starts = app.sim.calls(sid).filter((c) => c.route === "invite_preview").map((c) => c.started_at);
    const gaps = starts.slice(1).map((t, i) => t - starts[i]);
    // The first break comes after a first draw of every-2: items 1-2, break, 3-4, break, 5.
    assert.equal(gaps.length, 4);
    assert.ok(gaps[0] >= 1000 && gaps[0] < 4500, `gap 1: ${gaps[0]} ms (1x-2x the interval)`);
    assert.ok(gaps[1] >= 5000 - 300 && gaps[1] < 8000, `gap 2: ${gaps[1]} ms (the break)`);
    assert.ok(gaps[2] >= 1000 && gaps[2] < 4500, `gap 3: ${gaps[2]} ms`);
    assert.ok(gaps[3] >= 5000 - 300 && gaps[3] < 8000, `gap 4: ${gaps[3]} ms (the break)`);
  });
});
