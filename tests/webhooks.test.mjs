// Signed webhooks (contract section 11), end to end in workerd with a real queue: a local
// receiver checks every signature with the `standardwebhooks` package (and by hand), the
// admin routes, each event type from client calls and job items, retries with the same id,
// no retry on 400, a redirect not followed, redeliver, tenancy, rotation and the filter.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { startJoingate, assertEnvelope, sleep, eventually, startReceiver } from "./helpers.mjs";
import { DEMO } from "../sim/catalogue.mjs";

const FAST = { join: { per_minute: 6000, burst: 1000 } };

/** The signature by hand: HMAC-SHA256 over `id.timestamp.body`, keyed with the secret's bytes. */
function signedByHand(secret, request) {
  const key = Buffer.from(secret.slice("whsec_".length), "base64");
  const { "webhook-id": id, "webhook-timestamp": ts } = request.headers;
  const mac = createHmac("sha256", key).update(`${id}.${ts}.${request.body}`).digest("base64");
  return request.headers["webhook-signature"].split(" ").includes(`v1,${mac}`);
}

function verified(secret, request) {
  const event = new Webhook(secret).verify(request.body, request.headers);
  assert.ok(signedByHand(secret, request), "the signature checks by hand too");
  return event;
}

describe("webhooks", () => {
  let app;
  let receiver;
  let n = 0;
  const org = () => `hooks-${++n}`;
  const put = (o, json) => app.admin("PUT", `/v1/admin/orgs/${o}/webhook`, json);
  const deliveries = async (o) => assertEnvelope(await app.admin("GET", `/v1/admin/orgs/${o}/webhook/deliveries`), { status: 200 }).data.deliveries;
  /** An org with an endpoint at `path`, a session and a token of it. */
  async function orgWith(path, extra = {}) {
    const name = org();
    const res = await put(name, { url: `${receiver.base}${path}`, ...extra });
    const { secret } = assertEnvelope(res, { status: 200 }).data;
    await app.session(`${name}-s`, name, FAST);
    const orgToken = await app.token(name, ["join", "read", "manage"]);
    return { name, secret, sid: `${name}-s`, token: orgToken };
  }

  before(async () => {
    receiver = await startReceiver();
    app = await startJoingate({ vars: { WEBHOOK_RETRY_BASE_S: "1" }, orgLimit: 100000 });
  });
  after(async () => {
    await app?.close();
    await receiver?.close();
  });

  test("admin routes: the secret is shown only when created or rotated; URL rules", async () => {
    const name = org();
    assertEnvelope(await app.admin("GET", `/v1/admin/orgs/${name}/webhook`), { status: 404, code: "not_found" });
    assertEnvelope(await app.admin("GET", `/v1/admin/orgs/${name}/webhook/deliveries`), { status: 404, code: "not_found" });
    const first = assertEnvelope(await put(name, { url: `${receiver.base}/a` }), { status: 200 }).data;
    assert.match(first.secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
    assert.deepEqual(first.events, ["group.join", "group.leave", "join_job.completed", "join_job.paused", "session.cooldown", "group.join_request.expired"]);
    const again = assertEnvelope(await put(name, { url: `${receiver.base}/b`, events: ["group.join"] }), { status: 200 }).data;
    assert.equal(again.secret, undefined, "a later PUT keeps the secret and does not show it");
    assert.deepEqual(again, { org: name, url: `${receiver.base}/b`, events: ["group.join"] });
    const got = await app.admin("GET", `/v1/admin/orgs/${name}/webhook`);
    assert.deepEqual(assertEnvelope(got, { status: 200 }).data, again);
    assert.ok(!got.text.includes(first.secret.slice(6)));
    const rotated = assertEnvelope(await put(name, { url: `${receiver.base}/b`, rotate_secret: true }), { status: 200 }).data;
    assert.notEqual(rotated.secret, first.secret);
    for (const [body, field] of [
      [{ url: "http://hooks.example.com/in" }, "url"],
      [{ url: "https://user:pw@hooks.example.com/in" }, "url"],
      [{ url: "ftp://hooks.example.com" }, "url"],
      [{}, "url"],
      [{ url: "https://hooks.example.com", events: [] }, "events"],
      [{ url: "https://hooks.example.com", events: ["group.created"] }, "events"],
      [{ url: "https://hooks.example.com", secret: "mine" }, "secret"],
    ]) {
      assert.equal(assertEnvelope(await put(name, body), { status: 400, code: "validation_error" }).error.details.field, field);
    }
    assertEnvelope(await put("bad org", { url: "https://hooks.example.com" }), { status: 400 });
    assertEnvelope(await app.request("PUT", `/v1/admin/orgs/${name}/webhook`, { json: { url: "https://x.example" } }), { status: 401 });
    const bogus = "msg_0123456789abcdef01234567";
    assertEnvelope(await app.admin("POST", `/v1/admin/orgs/${name}/webhook/deliveries/${bogus}/redeliver`), { status: 404 });
    assertEnvelope(await app.admin("POST", `/v1/admin/orgs/${name}/webhook/deliveries/nope/redeliver`), { status: 404 });
    assert.deepEqual(assertEnvelope(await app.admin("DELETE", `/v1/admin/orgs/${name}/webhook`), { status: 200 }).data, { org: name, deleted: true });
    assertEnvelope(await app.admin("DELETE", `/v1/admin/orgs/${name}/webhook`), { status: 404 });
    // No secret in any log line.
    for (const line of app.logs) assert.ok(!line.includes(first.secret.slice(6)) && !line.includes(rotated.secret.slice(6)));
  });

  test("a webhook set, changed or deleted between an org's calls applies from the next call", async () => {
    // The org's object hands each call the webhook's filter with the org limit's verdict,
    // and keeps both in memory: every change must reach the very next call.
    const name = org();
    const sid = `${name}-s`;
    await app.session(sid, name, FAST);
    const token = await app.token(name, ["join"]);
    const path = `/late-${name}`;
    assertEnvelope(await app.join(sid, token, { invite: DEMO.open.code }), { status: 200 });
    assertEnvelope(await put(name, { url: `${receiver.base}${path}`, events: ["group.leave"] }), { status: 200 });
    assertEnvelope(await app.join(sid, token, { invite: DEMO.open.code }), { status: 200 });
    assertEnvelope(await app.request("POST", `/v1/sessions/${sid}/groups/${DEMO.open.group_jid}/leave`, { token }), { status: 200 });
    const leave = await eventually(() => receiver.at(path)[0], "the leave event");
    assert.equal(JSON.parse(leave.body).type, "group.leave", "the join was filtered out, the leave was not");
    assertEnvelope(await put(name, { url: `${receiver.base}${path}`, events: ["group.join"] }), { status: 200 });
    assertEnvelope(await app.join(sid, token, { invite: DEMO.open.code }), { status: 200 });
    await eventually(() => receiver.at(path).length === 2, "the join event after the filter changed");
    assert.equal(JSON.parse(receiver.at(path)[1].body).type, "group.join");
    assertEnvelope(await app.admin("DELETE", `/v1/admin/orgs/${name}/webhook`), { status: 200 });
    assertEnvelope(await app.join(sid, token, { invite: DEMO.open.code }), { status: 200 });
    await sleep(1500);
    assert.equal(receiver.at(path).length, 2, "nothing after the delete");
  });

  test("a join and a leave are signed events; the deliveries log shows them delivered", async () => {
    const o = await orgWith("/join-leave");
    const join = await app.join(o.sid, o.token, { invite: DEMO.open.code }, { "X-Request-Id": "hook-join-1" });
    assertEnvelope(join, { status: 200 });
    const first = await eventually(() => receiver.at("/join-leave")[0], "the join event");
    const event = verified(o.secret, first);
    assert.equal(event.type, "group.join");
    assert.match(event.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.deepEqual(event.data, { session_id: o.sid, group_jid: DEMO.open.group_jid, status: "joined", request_id: "hook-join-1", source: "client" });
    assert.match(first.headers["webhook-id"], /^msg_[0-9a-f]{24}$/);
    assert.equal(first.headers["content-type"], "application/json");
    assert.ok(!first.body.includes(DEMO.open.code), "no invite code in an event");
    assertEnvelope(await app.request("POST", `/v1/sessions/${o.sid}/groups/${DEMO.open.group_jid}/leave`, { token: o.token }), { status: 200 });
    const second = await eventually(() => receiver.at("/join-leave")[1], "the leave event");
    const leave = verified(o.secret, second);
    assert.equal(leave.type, "group.leave");
    assert.equal(leave.data.session_id, o.sid);
    assert.equal(leave.data.group_jid, DEMO.open.group_jid);
    assert.match(leave.data.request_id, /^[0-9a-f]{32}$/);
    assert.deepEqual([leave.data.reason, leave.data.source], ["left", "client"]);
    const resolved = await eventually(async () => {
      const list = await deliveries(o.name);
      return list.length === 2 && list.every((d) => d.state === "delivered") ? list : null;
    }, "two delivered");
    assert.deepEqual(resolved.map((d) => d.event_type), ["group.leave", "group.join"], "newest first");
    assert.equal(resolved[1].delivery_id, first.headers["webhook-id"]);
    assert.equal(resolved[1].attempts, 1);
    assert.equal(resolved[1].last_status, 204);
  });

  test("a job's items and its completion; a pause; a cooldown: each its event", async () => {
    const o = await orgWith("/jobs");
    const res = await app.request("POST", `/v1/sessions/${o.sid}/join-jobs`, {
      token: o.token,
      json: { invites: [DEMO.open.code, DEMO.approval.code], label: "hooks", interval_s: 5 },
    });
    const job = assertEnvelope(res, { status: 202 }).data;
    const events = await eventually(() => {
      const got = receiver.at("/jobs").map((r) => verified(o.secret, r));
      return got.some((e) => e.type === "join_job.completed") ? got : null;
    }, "join_job.completed", 25_000);
    const joins = events.filter((e) => e.type === "group.join");
    assert.deepEqual(joins.map((e) => e.data.status).sort(), ["joined", "pending_approval"]);
    assert.ok(joins.every((e) => e.data.job_id === job.job_id && e.data.session_id === o.sid && e.data.source === "job"));
    const completed = events.find((e) => e.type === "join_job.completed");
    assert.equal(completed.data.label, "hooks");
    assert.equal(completed.data.counts.total, 2);
    assert.equal(completed.data.counts.joined, 1);
    // A job on a session that is not connected pauses.
    await app.session(`offline-${o.name}`, o.name, FAST);
    const paused = await app.request("POST", `/v1/sessions/offline-${o.name}/join-jobs`, { token: o.token, json: { invites: [DEMO.open.code] } });
    const pausedJob = assertEnvelope(paused, { status: 202 }).data;
    const pauseEvent = await eventually(
      () => receiver.at("/jobs").map((r) => verified(o.secret, r)).find((e) => e.type === "join_job.paused"),
      "join_job.paused",
    );
    assert.deepEqual(pauseEvent.data, { session_id: `offline-${o.name}`, job_id: pausedJob.job_id, pause_reason: "session_not_connected" });
    // A WhatsApp 429 on a join: session.cooldown.
    assertEnvelope(await app.join(o.sid, o.token, { invite: DEMO.rateLimited.code }), { status: 429 });
    const cooldown = await eventually(
      () => receiver.at("/jobs").map((r) => verified(o.secret, r)).find((e) => e.type === "session.cooldown"),
      "session.cooldown",
    );
    assert.equal(cooldown.data.session_id, o.sid);
    assert.equal(cooldown.data.reason, "rate_overlimit");
    assert.equal(cooldown.data.strike, 1, "the first WhatsApp 429 is strike 1 (section 13)");
    assert.match(cooldown.data.cooldown_until, /Z$/);
  });

  test("retries keep the webhook-id; 400 is not retried; a redirect is not followed; redeliver", async () => {
    const flaky = await orgWith("/flaky");
    receiver.plan("/flaky", [500, 503, 204]);
    assertEnvelope(await app.join(flaky.sid, flaky.token, { invite: DEMO.open.code }), { status: 200 });
    const attempts = await eventually(() => (receiver.at("/flaky").length >= 3 ? receiver.at("/flaky") : null), "three attempts", 20_000);
    assert.equal(new Set(attempts.map((a) => a.headers["webhook-id"])).size, 1, "one id for every attempt");
    for (const a of attempts) verified(flaky.secret, a);
    // Base 1 s: the second attempt 1 s after the first, the third 5 s after the second.
    assert.ok(attempts[1].at - attempts[0].at >= 900, `${attempts[1].at - attempts[0].at} ms`);
    assert.ok(attempts[2].at - attempts[1].at >= 4500, `${attempts[2].at - attempts[1].at} ms`);
    const log = await eventually(async () => {
      const list = await deliveries(flaky.name);
      return list[0]?.state === "delivered" ? list[0] : null;
    }, "delivered");
    assert.equal(log.attempts, 3);
    assert.equal(log.last_status, 204);

    const bad = await orgWith("/bad");
    receiver.plan("/bad", [400]);
    assertEnvelope(await app.join(bad.sid, bad.token, { invite: DEMO.open.code }), { status: 200 });
    const settled = await eventually(async () => {
      const list = await deliveries(bad.name);
      return list[0]?.state === "failed" ? list[0] : null;
    }, "failed");
    assert.equal(settled.attempts, 1);
    assert.equal(settled.last_status, 400);
    await sleep(2500);
    assert.equal(receiver.at("/bad").length, 1, "no retry on 400");
    // Redeliver: the same event, the same id, attempts add up.
    receiver.plan("/bad", [204]);
    const again = await app.admin("POST", `/v1/admin/orgs/${bad.name}/webhook/deliveries/${settled.delivery_id}/redeliver`);
    assert.deepEqual(assertEnvelope(again, { status: 202 }).data, { delivery_id: settled.delivery_id, state: "pending" });
    await eventually(() => receiver.at("/bad").length === 2, "the redelivery");
    const [one, two] = receiver.at("/bad");
    assert.equal(two.headers["webhook-id"], one.headers["webhook-id"]);
    assert.equal(two.body, one.body);
    const redelivered = await eventually(async () => {
      const list = await deliveries(bad.name);
      return list[0]?.state === "delivered" ? list[0] : null;
    }, "redelivered");
    assert.equal(redelivered.attempts, 2);

    const moved = await orgWith("/moved");
    receiver.plan("/moved", [302]);
    assertEnvelope(await app.join(moved.sid, moved.token, { invite: DEMO.open.code }), { status: 200 });
    const redirect = await eventually(async () => {
      const list = await deliveries(moved.name);
      return list[0]?.state === "failed" ? list[0] : null;
    }, "redirect failed");
    assert.equal(redirect.last_status, 302);
    assert.equal(receiver.at("/elsewhere").length, 0, "the redirect was not followed");
  });

  test("a receiver that does not answer (connection refused) is retried, keeping the error", async () => {
    const name = org();
    // Port 9 (discard) on loopback: nothing listens there.
    const { secret } = assertEnvelope(await put(name, { url: "http://127.0.0.1:9/hooks" }), { status: 200 }).data;
    assert.ok(secret);
    await app.session(`${name}-s`, name, FAST);
    const orgToken = await app.token(name, ["join"]);
    assertEnvelope(await app.join(`${name}-s`, orgToken, { invite: DEMO.open.code }), { status: 200 });
    const retried = await eventually(async () => {
      const list = await deliveries(name);
      return list[0]?.attempts >= 2 ? list[0] : null;
    }, "a second attempt");
    assert.equal(retried.state, "pending", "retried, not failed");
    assert.equal(retried.last_status, undefined);
    assert.match(retried.last_error, /no answer/);
  });

  test("tenancy, rotation and the events filter", async () => {
    const a = await orgWith("/tenant-a");
    const b = await orgWith("/tenant-b");
    assertEnvelope(await app.join(b.sid, b.token, { invite: DEMO.open.code }), { status: 200 });
    await eventually(() => receiver.at("/tenant-b").length === 1, "org B's event");
    await sleep(1500);
    assert.equal(receiver.at("/tenant-a").length, 0, "org B's events never reach org A");
    // Rotation: events after it verify with the new secret only.
    const rotated = assertEnvelope(await put(a.name, { url: `${receiver.base}/tenant-a`, rotate_secret: true }), { status: 200 }).data.secret;
    assertEnvelope(await app.join(a.sid, a.token, { invite: DEMO.member.code }), { status: 200 });
    const event = await eventually(() => receiver.at("/tenant-a")[0], "org A's event");
    assert.throws(() => new Webhook(a.secret).verify(event.body, event.headers), "the old secret no longer verifies");
    assert.equal(verified(rotated, event).type, "group.join");
    // The filter: only leaves.
    await put(a.name, { url: `${receiver.base}/tenant-a`, events: ["group.leave"] });
    assertEnvelope(await app.join(a.sid, a.token, { invite: DEMO.approval.code }), { status: 200 });
    assertEnvelope(await app.request("POST", `/v1/sessions/${a.sid}/groups/${DEMO.member.group_jid}/leave`, { token: a.token }), { status: 200 });
    const leave = await eventually(() => receiver.at("/tenant-a")[1], "the leave");
    assert.equal(JSON.parse(leave.body).type, "group.leave");
    await sleep(1500);
    assert.equal(receiver.at("/tenant-a").length, 2, "the join was filtered out");
    // Deleting the endpoint: no more events.
    assertEnvelope(await app.admin("DELETE", `/v1/admin/orgs/${a.name}/webhook`), { status: 200 });
    assertEnvelope(await app.request("POST", `/v1/sessions/${a.sid}/groups/${DEMO.admin.group_jid}/leave`, { token: a.token }), { status: 200 });
    await sleep(1500);
    assert.equal(receiver.at("/tenant-a").length, 2);
  });
});
