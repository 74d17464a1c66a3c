// A WhatsApp restriction (contract section 13) set in the simulator, end to end: joins of
// the session answer 463 in the kind's own format, which joingate turns into a restriction
// cooldown, and the simulator's front ends state the restriction's end where the server can
// say it (the native GET /sessions/{sid}, WAHA's me.reachoutTimelock and its timelock
// route). joingate exposes no route for the end yet, so those are asked directly.
import { describe, test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { startJoingate, assertEnvelope } from "./helpers.mjs";
import { DEMO } from "../sim/catalogue.mjs";
import { SIM_CREDENTIALS } from "../sim/simulator.mjs";

const FAST = {
  join: { per_minute: 6000, burst: 1000 },
  read: { per_minute: 6000, burst: 1000 },
};

describe("a restriction's end, as the simulated servers state it", () => {
  let app;
  let token;
  const until = () => Math.floor(Date.now() / 1000) + 3 * 86_400;
  const get = async (url, headers = {}) => {
    const res = await fetch(url, { headers });
    return { status: res.status, body: await res.json() };
  };
  const waha = (path) => get(`${app.sim.urls.waha}${path}`, { "X-Api-Key": SIM_CREDENTIALS.waha });
  const native = (sid) => get(`${app.sim.url}/sessions/${sid}`, { Authorization: "Bearer backend-secret" });

  before(async () => {
    app = await startJoingate({ orgLimit: 100000 });
    token = await app.token("acme", ["join", "read", "manage"]);
  });
  after(() => app.close());
  beforeEach(() => app.sim.reset());

  for (const kind of ["waha", "joingate"]) {
    test(`${kind}: a restricted session's join is a restriction cooldown`, async () => {
      const sid = await app.kindSession(kind, "restricted", { limits: FAST });
      const end = until();
      app.sim.setRestriction({ session: sid, until_s: end });
      const res = await app.join(sid, token, { invite: DEMO.open.code });
      const body = assertEnvelope(res, { status: 429, code: "session_cooling_down" });
      assert.equal(body.error.details.reason, "restricted");
      assert.equal(body.error.details.wa_code, 463);
      // The join reached the server and was refused there; nothing was joined.
      const joins = app.sim.calls(sid).filter((c) => c.route === "join");
      assert.equal(joins.length, 1);
      assert.equal(app.sim.sessionState(sid).groups.find((g) => g.group_jid === DEMO.open.group_jid).role, "none");
    });
  }

  test("the native front end's status answer carries restricted_until while it lasts", async () => {
    const sid = "native-restricted";
    assert.deepEqual(await native(sid), { status: 200, body: { connected: true } });
    const end = until();
    app.sim.setRestriction({ session: sid, until_s: end });
    assert.deepEqual(await native(sid), { status: 200, body: { connected: true, restricted_until: end } });
    // An end in the past is over.
    app.sim.setRestriction({ session: sid, until_s: Math.floor(Date.now() / 1000) - 1 });
    assert.deepEqual(await native(sid), { status: 200, body: { connected: true } });
  });

  test("WAHA shows it in me.reachoutTimelock and on its timelock route, through the control API", async () => {
    const sid = "waha-restricted";
    const clear = await waha(`/api/sessions/${sid}`);
    assert.equal(clear.status, 200);
    assert.equal(clear.body.me.reachoutTimelock, null);
    assert.deepEqual(await waha(`/api/sessions/${sid}/timelock`), { status: 200, body: { isActive: false } });

    const end = until();
    const set = await fetch(`${app.sim.url}/__sim/restrictions`, {
      method: "POST",
      body: JSON.stringify({ session: sid, until_s: end }),
    });
    assert.equal(set.status, 200);
    const lock = { isActive: true, timeEnforcementEnds: String(end), enforcementType: "RESTRICT_ALL_COMPANIONS" };
    const status = await waha(`/api/sessions/${sid}`);
    assert.equal(status.body.status, "WORKING");
    assert.deepEqual(status.body.me.reachoutTimelock, lock);
    assert.deepEqual(await waha(`/api/sessions/${sid}/timelock`), { status: 200, body: lock });
    assert.deepEqual(app.sim.restrictions(), [{ session: sid, until_s: end }]);
    // One world per session: the native front end states the same end.
    assert.deepEqual((await native(sid)).body, { connected: true, restricted_until: end });

    app.sim.setRestriction({ session: sid, active: false });
    assert.deepEqual(await waha(`/api/sessions/${sid}/timelock`), { status: 200, body: { isActive: false } });
    assert.equal((await waha(`/api/sessions/${sid}`)).body.me.reachoutTimelock, null);
    // A WAHA before 2026.8 has neither.
    const legacy = await waha(`/api/sessions/legacy-x/timelock`);
    assert.equal(legacy.status, 404);
    assert.equal("reachoutTimelock" in (await waha(`/api/sessions/legacy-x`)).body.me, false);
  });
});
