// Webhook deliveries never stranded (contract section 11, v1.2 "Nothing stays pending"), end
// to end in workerd with real queues: the three ways a delivery got stuck (a queue send that
// failed after the delivery was written, the org object restarted mid-attempt, a task that
// ran out of the consumer's retries), each attempt with the endpoint in force when it is
// made (a new URL and secret, no endpoint), and an answer whose body never ends.
// WEBHOOK_STALE_S and WEBHOOK_RETRY_BASE_S are shrunk; the faults are injected with the
// test-only knobs FAULT_WEBHOOK_SEND and FAULT_WEBHOOK_ATTEMPT.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Webhook } from "standardwebhooks";
import { startJoingate, assertEnvelope, sleep, eventually, startReceiver } from "./helpers.mjs";
import { DEMO } from "../sim/catalogue.mjs";

const FAST = { join: { per_minute: 6000, burst: 1000 } };

/** The sweep comes this long after an event at the earliest: the attempt's 10 s + 1 s stale. */
const SWEEP_MS = 11_000;

/** The admin side of one joingate: an org with an endpoint, a session and a token. */
function orgs(app, receiver, prefix) {
  let n = 0;
  const put = (org, json) => app.admin("PUT", `/v1/admin/orgs/${org}/webhook`, json);
  return {
    put,
    async deliveries(org) {
      return assertEnvelope(await app.admin("GET", `/v1/admin/orgs/${org}/webhook/deliveries`), { status: 200 }).data.deliveries;
    },
    async create(pathname) {
      const name = `${prefix}-${++n}`;
      const { secret } = assertEnvelope(await put(name, { url: `${receiver.base}${pathname}` }), { status: 200 }).data;
      await app.session(`${name}-s`, name, FAST);
      const token = await app.token(name, ["join"]);
      return { name, secret, sid: `${name}-s`, token };
    },
  };
}

/** One `group.join` event for the org; returns when it was raised. */
async function raise(app, org) {
  const at = Date.now();
  assertEnvelope(await app.join(org.sid, org.token, { invite: DEMO.open.code }), { status: 200 });
  return at;
}

describe("webhook deliveries never stranded", () => {
  let receiver;
  before(async () => {
    receiver = await startReceiver();
  });
  after(async () => {
    await receiver?.close();
  });

  test("a queue send that failed after the delivery was written: the sweep makes the attempt", async () => {
    const app = await startJoingate({ vars: { WEBHOOK_STALE_S: "1", FAULT_WEBHOOK_SEND: "fail_first" } });
    try {
      const admin = orgs(app, receiver, "lost-send");
      const org = await admin.create("/lost-send");
      const raisedAt = await raise(app, org);
      const [pending] = await admin.deliveries(org.name);
      assert.deepEqual([pending.state, pending.attempts], ["pending", 0]);
      const [first] = await eventually(() => receiver.at("/lost-send").length > 0 && receiver.at("/lost-send"), "the swept attempt", 30_000);
      // Not queued when raised: made by the sweep, after the attempt's deadline and the stale time.
      assert.ok(first.at - raisedAt >= SWEEP_MS - 500, `made ${first.at - raisedAt} ms after the event`);
      assert.equal(new Webhook(org.secret).verify(first.body, first.headers).type, "group.join");
      assert.equal(first.headers["webhook-id"], pending.delivery_id);
      const [delivered] = await eventually(async () => {
        const list = await admin.deliveries(org.name);
        return list[0]?.state === "delivered" && list;
      }, "delivered");
      assert.equal(delivered.attempts, 1);
      assert.equal(delivered.last_status, 204);
      assert.ok(app.logs.some((line) => line.includes("webhook attempt overdue; made again")), "the sweep says what it did");
    } finally {
      await app.close();
    }
  });

  test("the org object restarted during an attempt: after a restart on the same state, the sweep makes it again", async () => {
    const persist = mkdtempSync(path.join(tmpdir(), "joingate-webhook-restart-"));
    const vars = { WEBHOOK_STALE_S: "1" };
    let app = await startJoingate({ vars, persist });
    try {
      const admin = orgs(app, receiver, "restart");
      const org = await admin.create("/held");
      receiver.plan("/held", ["hold"]);
      await raise(app, org);
      // The attempt is under way (claimed, counted) when the runtime goes away.
      const [held] = await eventually(() => receiver.at("/held").length > 0 && receiver.at("/held"), "the held attempt");
      const [claimed] = await admin.deliveries(org.name);
      assert.deepEqual([claimed.state, claimed.attempts], ["pending", 1]);
      receiver.plan("/held", [204]);
      await app.mf.dispose();
      app = await startJoingate({ vars, persist, simulator: app.sim });
      const again = await eventually(() => receiver.at("/held")[1], "the attempt made again", 30_000);
      assert.equal(again.headers["webhook-id"], held.headers["webhook-id"]);
      assert.equal(again.body, held.body);
      assert.equal(new Webhook(org.secret).verify(again.body, again.headers).type, "group.join");
      const [delivered] = await eventually(async () => {
        const list = assertEnvelope(await app.admin("GET", `/v1/admin/orgs/${org.name}/webhook/deliveries`), { status: 200 }).data.deliveries;
        return list[0]?.state === "delivered" && list;
      }, "delivered");
      // The attempt whose outcome was never recorded was made again, not counted twice.
      assert.equal(delivered.attempts, 1);
      assert.equal(delivered.last_status, 204);
    } finally {
      await app.close();
      rmSync(persist, { recursive: true, force: true });
    }
  });

  test("a task that ran out of the consumer's retries: dead-lettered, one failed attempt, and the schedule goes on", async () => {
    // The object fails every delivery's first attempt; the consumer retries it 5 times
    // (no delay here), then the dead-letter queue's consumer records it.
    const app = await startJoingate({
      vars: { WEBHOOK_RETRY_BASE_S: "2", FAULT_WEBHOOK_ATTEMPT: "fail_first" },
      queueRetryDelayS: 0,
    });
    try {
      const admin = orgs(app, receiver, "dead-letter");
      const org = await admin.create("/dead-letter");
      await raise(app, org);
      const recorded = await eventually(async () => {
        const [delivery] = await admin.deliveries(org.name);
        return delivery?.last_error === "dead_lettered" && delivery;
      }, "the dead-lettered attempt recorded");
      assert.deepEqual([recorded.state, recorded.attempts, recorded.last_status], ["pending", 1, undefined]);
      assert.equal(receiver.at("/dead-letter").length, 0, "the dead-lettered attempt was never made");
      // The second attempt follows the schedule (base 2 s after the first) and is made.
      const [delivered] = await eventually(async () => {
        const list = await admin.deliveries(org.name);
        return list[0]?.state === "delivered" && list;
      }, "delivered by the second attempt");
      assert.equal(delivered.attempts, 2);
      assert.equal(delivered.last_status, 204);
      assert.equal(receiver.at("/dead-letter").length, 1);
      assert.equal(receiver.at("/dead-letter")[0].headers["webhook-id"], recorded.delivery_id);
    } finally {
      await app.close();
    }
  });

  describe("every attempt uses the endpoint in force when it is made", () => {
    let app;
    let admin;
    before(async () => {
      // The retry 6 s after the first attempt: time to change the endpoint in between even
      // on a loaded machine.
      app = await startJoingate({ vars: { WEBHOOK_RETRY_BASE_S: "6" } });
      admin = orgs(app, receiver, "in-force");
    });
    after(async () => {
      await app?.close();
    });

    test("a new URL and a rotated secret apply to the retry of an earlier event", async () => {
      const org = await admin.create("/before-move");
      receiver.plan("/before-move", [500]);
      await raise(app, org);
      const [first] = await eventually(() => receiver.at("/before-move").length > 0 && receiver.at("/before-move"), "the first attempt");
      const moved = await admin.put(org.name, { url: `${receiver.base}/after-move`, rotate_secret: true });
      const secret = assertEnvelope(moved, { status: 200 }).data.secret;
      assert.ok(secret && secret !== org.secret);
      const retry = await eventually(() => receiver.at("/after-move")[0], "the retry at the new URL");
      assert.equal(retry.headers["webhook-id"], first.headers["webhook-id"]);
      assert.equal(retry.body, first.body);
      assert.equal(new Webhook(secret).verify(retry.body, retry.headers).type, "group.join");
      assert.throws(() => new Webhook(org.secret).verify(retry.body, retry.headers), "not signed with the old secret");
      assert.equal(receiver.at("/before-move").length, 1, "the old URL got nothing more");
      const [delivered] = await eventually(async () => {
        const list = await admin.deliveries(org.name);
        return list[0]?.state === "delivered" && list;
      }, "delivered");
      assert.equal(delivered.attempts, 2);
    });

    test("a retry that comes due with no endpoint ends the delivery failed (no_endpoint)", async () => {
      const org = await admin.create("/going");
      receiver.plan("/going", [503]);
      await raise(app, org);
      const [first] = await eventually(() => receiver.at("/going").length > 0 && receiver.at("/going"), "the first attempt");
      assertEnvelope(await app.admin("DELETE", `/v1/admin/orgs/${org.name}/webhook`), { status: 200 });
      const id = first.headers["webhook-id"];
      await eventually(
        () => app.logs.some((line) => line.includes("the org has no endpoint") && line.includes(id)),
        "the retry finding no endpoint",
      );
      // A new endpoint shows the log: the delivery ended, and is not sent to the new URL.
      assertEnvelope(await admin.put(org.name, { url: `${receiver.base}/came-back` }), { status: 200 });
      const [ended] = await admin.deliveries(org.name);
      assert.equal(ended.delivery_id, id);
      assert.deepEqual([ended.state, ended.last_error, ended.attempts], ["failed", "no_endpoint", 1]);
      assert.equal(receiver.at("/came-back").length, 0);
      assert.equal(receiver.at("/going").length, 1);
    });

    test("the receiver's answer body is not read: a 200 whose body never ends is delivered", async () => {
      const org = await admin.create("/endless");
      receiver.plan("/endless", ["stream"]);
      const raisedAt = await raise(app, org);
      const [delivered] = await eventually(async () => {
        const list = await admin.deliveries(org.name);
        return list[0]?.state !== "pending" && list;
      }, "the attempt recorded", 20_000);
      assert.deepEqual([delivered.state, delivered.attempts, delivered.last_status], ["delivered", 1, 200]);
      // Well within the attempt's 10 s: the status was enough.
      assert.ok(Date.now() - raisedAt < 8_000, `${Date.now() - raisedAt} ms`);
    });
  });
});
