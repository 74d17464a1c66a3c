// Section 13's admin side (API.md v1.2): a session's `protection` (number_since, timezone,
// window) and its join caps (limits.join.per_day / per_hour), validated, kept and shown as
// set; the deployment's v1.2 defaults (join 1 a minute, burst 2; job interval 60 s to 24 h,
// 180 s by default); a bad section 13 var is a configuration error. Black-box through HTTP
// against the built Worker in workerd (Miniflare).
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startJoingate, assertEnvelope, assertInvalid } from "./helpers.mjs";
import { DEMO } from "../sim/catalogue.mjs";

const DAY_MS = 86_400_000;
/** `YYYY-MM-DD` (UTC) `days` from today. */
const utcDate = (days) => new Date(Date.now() + days * DAY_MS).toISOString().slice(0, 10);

describe("a session's protection and join caps (admin)", () => {
  let app;
  before(async () => {
    app = await startJoingate();
  });
  after(() => app.close());

  const put = (sid, body) => app.admin("PUT", `/v1/admin/sessions/${sid}`, { org: "acme", ...body });

  test("protection and join caps are kept and shown as set: admin view and session status", async () => {
    const protection = { number_since: "2024-03-01", timezone: "Europe/Berlin", window: { start: "08:00", end: "21:00" } };
    const res = await put("prot-full", { protection, limits: { join: { per_day: 25, per_hour: 6 } } });
    const { data } = assertEnvelope(res, { status: 200 });
    assert.deepEqual(data.protection, protection);
    assert.deepEqual(data.limits.join, { per_minute: 4, burst: 4, per_day: 25, per_hour: 6 });
    assert.deepEqual(data.limits.read, { per_minute: 60, burst: 20 }, "caps belong to join only");
    const get = assertEnvelope(await app.admin("GET", "/v1/admin/sessions/prot-full"), { status: 200 }).data;
    assert.deepEqual(get, data);
    const token = await app.token("acme", ["read"]);
    const status = assertEnvelope(await app.request("GET", "/v1/sessions/prot-full", { token }), { status: 200 }).data;
    assert.deepEqual(status.limits.join, { per_minute: 4, burst: 4, per_day: 25, per_hour: 6 });
    assert.equal(status.protection?.number_since, undefined, "the admin record is not the client's view");
  });

  test("one cap alone is shown alone; none set, none shown", async () => {
    const day = assertEnvelope(await put("prot-day", { limits: { join: { per_day: 1000 } } }), { status: 200 }).data;
    assert.deepEqual(day.limits.join, { per_minute: 4, burst: 4, per_day: 1000 });
    const hour = assertEnvelope(await put("prot-hour", { limits: { join: { per_hour: 1, burst: 1 } } }), { status: 200 }).data;
    assert.deepEqual(hour.limits.join, { per_minute: 4, burst: 1, per_hour: 1 });
    const none = assertEnvelope(await put("prot-none", { limits: { join: { per_day: null } } }), { status: 200 }).data;
    assert.deepEqual(none.limits.join, { per_minute: 4, burst: 4 });
  });

  test("nothing set shows {}; window null shows null; a PUT replaces protection as sent", async () => {
    const empty = assertEnvelope(await put("prot-replace", {}), { status: 200 }).data;
    assert.deepEqual(empty.protection, {});
    const off = assertEnvelope(await put("prot-replace", { protection: { window: null } }), { status: 200 }).data;
    assert.deepEqual(off.protection, { window: null });
    assert.deepEqual(assertEnvelope(await app.admin("GET", "/v1/admin/sessions/prot-replace")).data.protection, { window: null });
    const zone = assertEnvelope(await put("prot-replace", { protection: { timezone: "Asia/Kathmandu" } }), { status: 200 }).data;
    assert.deepEqual(zone.protection, { timezone: "Asia/Kathmandu" }, "the window left out is cleared");
    const cleared = assertEnvelope(await put("prot-replace", { protection: null, limits: { join: { per_day: 3 } } }), { status: 200 }).data;
    assert.deepEqual(cleared.protection, {});
    const again = assertEnvelope(await put("prot-replace", {}), { status: 200 }).data;
    assert.deepEqual(again.limits.join, { per_minute: 4, burst: 4 }, "limits left out are cleared too");
    assert.deepEqual(assertEnvelope(await app.admin("GET", "/v1/admin/sessions/prot-replace")).data, again);
  });

  test("today (UTC) and zones Intl knows are accepted", async () => {
    for (const timezone of ["UTC", "America/Argentina/Buenos_Aires", "Etc/GMT+3", "Pacific/Chatham", "America/Port-au-Prince"]) {
      const res = await put("prot-zones", { protection: { number_since: utcDate(0), timezone } });
      assert.deepEqual(assertEnvelope(res, { status: 200 }).data.protection, { number_since: utcDate(0), timezone }, timezone);
    }
    const edges = { window: { start: "00:00", end: "23:59" }, number_since: "2000-02-29" };
    assert.deepEqual(assertEnvelope(await put("prot-zones", { protection: edges }), { status: 200 }).data.protection, edges);
  });

  const invalid = [
    ["protection not an object", "on", "protection"],
    ["a list", [], "protection"],
    ["an unknown field", { skip_warmup: true }, "protection.skip_warmup"],
    ["number_since tomorrow (UTC)", { number_since: utcDate(1) }, "protection.number_since"],
    ["number_since next year", { number_since: `${new Date().getUTCFullYear() + 1}-01-01` }, "protection.number_since"],
    ["number_since not a date", { number_since: "2023-02-29" }, "protection.number_since"],
    ["number_since another format", { number_since: "01.03.2024" }, "protection.number_since"],
    ["number_since a date-time", { number_since: "2024-03-01T00:00:00Z" }, "protection.number_since"],
    ["number_since a number", { number_since: 20240301 }, "protection.number_since"],
    ["an unknown time zone", { timezone: "Mars/Olympus_Mons" }, "protection.timezone"],
    ["an offset, not a zone", { timezone: "+02:00" }, "protection.timezone"],
    ["an empty time zone", { timezone: "" }, "protection.timezone"],
    ["a time zone that is not a string", { timezone: 1 }, "protection.timezone"],
    ["a window ending before it starts", { window: { start: "21:00", end: "08:00" } }, "protection.window"],
    ["a window of no time", { window: { start: "08:00", end: "08:00" } }, "protection.window"],
    ["a window time not HH:MM", { window: { start: "8:00", end: "21:00" } }, "protection.window"],
    ["a window until 24:00", { window: { start: "08:00", end: "24:00" } }, "protection.window"],
    ["a window without its end", { window: { start: "08:00" } }, "protection.window"],
    ["a window as text", { window: "08:00-21:00" }, "protection.window"],
    ["a window with days", { window: { start: "08:00", end: "21:00", days: [1, 2] } }, "protection.window.days"],
  ];
  for (const [what, protection, field] of invalid) {
    test(`bad protection (${what}) → 400 field ${field}`, async () => {
      assertInvalid(await put("prot-bad", { protection }), field);
    });
  }

  const badLimits = [
    ["per_day 0", { join: { per_day: 0 } }, "limits.join.per_day"],
    ["per_day 1001", { join: { per_day: 1001 } }, "limits.join.per_day"],
    ["per_day fractional", { join: { per_day: 2.5 } }, "limits.join.per_day"],
    ["per_hour 0", { join: { per_hour: 0 } }, "limits.join.per_hour"],
    ["per_hour 201", { join: { per_hour: 201 } }, "limits.join.per_hour"],
    ["per_hour a string", { join: { per_hour: "5" } }, "limits.join.per_hour"],
    ["per_day on read", { read: { per_day: 10 } }, "limits.read.per_day"],
    ["per_hour on manage", { manage: { per_hour: 10 } }, "limits.manage.per_hour"],
  ];
  for (const [what, limits, field] of badLimits) {
    test(`bad join caps (${what}) → 400 field ${field}`, async () => {
      assertInvalid(await put("prot-bad", { limits }), field);
    });
  }

  test("the refused PUTs registered nothing", async () => {
    assertEnvelope(await app.admin("GET", "/v1/admin/sessions/prot-bad"), { status: 404, code: "not_found" });
  });

  test("the org body takes no join caps", async () => {
    for (const key of ["per_day", "per_hour"]) {
      assertInvalid(await app.admin("PUT", "/v1/admin/orgs/prot-org", { limits: { [key]: 5 } }), `limits.${key}`);
    }
  });
});

describe("the v1.2 defaults (the suite's pace unset)", () => {
  let app;
  before(async () => {
    app = await startJoingate({ vars: { JOIN_PER_MINUTE: "", JOIN_BURST: "", JOB_MIN_INTERVAL_S: "", JOB_INTERVAL_S: "" } });
  });
  after(() => app.close());

  test("joins: 1 a minute, burst 2", async () => {
    const sid = await app.freshSession("v12-join");
    const view = assertEnvelope(await app.admin("GET", `/v1/admin/sessions/${sid}`)).data;
    assert.deepEqual(view.limits.join, { per_minute: 1, burst: 2 });
    const token = await app.token("acme", ["join"]);
    assertEnvelope(await app.join(sid, token, { invite: DEMO.open.code }), { status: 200 });
    assertEnvelope(await app.join(sid, token, { invite: DEMO.member.code }), { status: 200 });
    const third = await app.join(sid, token, { invite: DEMO.approval.code });
    assertEnvelope(third, { status: 429, code: "rate_limited" });
    const retry = Number(third.headers.get("retry-after"));
    assert.ok(retry > 50 && retry <= 60, `Retry-After ${retry}`);
  });

  test("join jobs: interval_s 60 to 86400, 180 by default", async () => {
    const sid = await app.freshSession("v12-job");
    const token = await app.token("acme", ["join", "read"]);
    const submit = (json) => app.request("POST", `/v1/sessions/${sid}/join-jobs`, { token, json });
    for (const interval_s of [59, 5, 86401]) {
      const res = await submit({ invites: [DEMO.open.code], interval_s });
      assertInvalid(res, "interval_s");
      assert.match(res.body.error.message, /from 60 to 86400/);
    }
    const job = assertEnvelope(await submit({ invites: [DEMO.open.code, DEMO.member.code] }), { status: 202 }).data;
    assert.equal(job.interval_s, 180);
    // Two items each, so that neither job can finish before its cancel (the second item
    // waits its interval).
    const slowest = assertEnvelope(await submit({ invites: [DEMO.approval.code, DEMO.open.code], interval_s: 60 }), { status: 202 }).data;
    assert.equal(slowest.interval_s, 60);
    for (const id of [job.job_id, slowest.job_id]) {
      assertEnvelope(await app.request("POST", `/v1/sessions/${sid}/join-jobs/${id}/cancel`, { token }), { status: 200 });
    }
  });
});

describe("a bad section 13 var is a configuration error", () => {
  for (const [name, value] of [
    ["PROTECTION_TIERS", '[{"from_days":1,"per_day":5,"per_hour":2}]'],
    ["PROTECTION_TIERS", "forty"],
    ["DEFAULT_TIMEZONE", "Mars/Olympus_Mons"],
    ["JOB_WINDOW", "21:00-08:00"],
    ["COOLDOWN_S", "3600,86400"],
    ["JOB_MIN_INTERVAL_S", "0"],
  ]) {
    test(`${name}=${value}: calls answer internal_error and the log names the var`, async () => {
      const app = await startJoingate({ vars: { [name]: value } });
      try {
        const token = await app.token("acme", ["read"]);
        const res = await app.request("GET", "/v1/sessions/cfg-any", { token });
        assertEnvelope(res, { status: 500, code: "internal_error" });
        const line = app.logs.find((l) => l.includes("invalid configuration"));
        assert.ok(line?.includes(name), `a log line names ${name}: ${line}`);
      } finally {
        await app.close();
      }
    });
  }
});
