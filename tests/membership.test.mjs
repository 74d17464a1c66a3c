// Section 14 end to end, on every kind: pending joins kept and listed, the servers' own
// events (signed as each server signs them, sent by the simulator to the session's hook),
// membership checks when no event comes, expiry, leaves and removals, and what the org's
// webhook receives. The check schedule and the TTL are shrunk to seconds.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { startJoingate, startReceiver, assertEnvelope, eventually, KINDS, BASE, BACKEND_FAULTS } from "./helpers.mjs";
import { DEMO } from "../sim/catalogue.mjs";

const TTL_S = 8;
const VARS = {
  MEMBERSHIP_CHECKS_S: "1,2",
  PENDING_TTL_S: String(TTL_S),
  EVENTS_PER_MINUTE: "40",
  JOIN_PER_MINUTE: "600",
  JOIN_BURST: "100",
  READ_PER_MINUTE: "6000",
  READ_BURST: "1000",
};

describe("membership after pending_approval (section 14)", () => {
  let app;
  let token;
  let receiver;

  before(async () => {
    app = await startJoingate({ serve: true, vars: VARS, orgLimit: 100_000 });
    token = await app.token("acme", ["join", "read", "manage"]);
    receiver = await startReceiver();
    const hook = await app.admin("PUT", "/v1/admin/orgs/acme/webhook", { url: `${receiver.base}/acme` });
    assert.equal(hook.status, 200, hook.text);
  });
  after(async () => {
    await receiver.close();
    await app.close();
  });

  /** The org's events about one session, as delivered: [{ type, data }]. */
  const delivered = (sid, type) =>
    receiver
      .at("/acme")
      .map((r) => JSON.parse(r.body))
      .filter((e) => e.data.session_id === sid && (!type || e.type === type));
  /**
   * Every event the org's object has recorded so far has reached the receiver (a server
   * event is applied, and its org events recorded, before the hook answers).
   */
  const settled = () =>
    eventually(async () => {
      const log = assertEnvelope(await app.admin("GET", "/v1/admin/orgs/acme/webhook/deliveries"), { status: 200 }).data.deliveries;
      return log.every((d) => d.state === "delivered");
    }, "the org's deliveries delivered");
  const waitFor = (sid, type, what, count = 1) =>
    eventually(() => delivered(sid, type).length >= count && delivered(sid, type), what, 15_000);

  /** A session of `kind` with its events on: the sid and its hook (URL on the served port). */
  async function withEvents(kind, prefix, { simEvents = true } = {}) {
    const sid = await app.kindSession(kind, prefix);
    const put = await app.admin("PUT", `/v1/admin/sessions/${sid}`, {
      org: "acme",
      backend: app.backendFor(kind, sid),
      events: true,
    });
    const data = assertEnvelope(put, { status: 200 }).data;
    assert.equal(data.events, true);
    const hook = data.events_hook;
    assert.match(hook.url, new RegExp(`^${BASE}/v1/hooks/${sid}/[0-9a-f]{32}$`));
    assert.match(hook.secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
    const url = hook.url.replace(BASE, app.url);
    if (simEvents) app.sim.setEvents({ session: sid, kind, url, secret: hook.secret });
    return { sid, url, secret: hook.secret };
  }

  const pendingJoins = async (sid) =>
    assertEnvelope(await app.request("GET", `/v1/sessions/${sid}/pending-joins`, { token }), { status: 200 }).data.pending;

  async function joinPending(sid, entry = DEMO.approval) {
    const res = await app.join(sid, token, { invite: entry.code });
    const body = assertEnvelope(res, { status: 200 });
    assert.equal(body.data.status, "pending_approval");
    return body.request_id;
  }

  for (const kind of KINDS) {
    describe(kind, () => {
      test("an approval by the server's event reaches the org as group.join approved, and the list shows it", async () => {
        const { sid } = await withEvents(kind, "approve");
        const requestId = await joinPending(sid);
        const [entry] = await pendingJoins(sid);
        assert.equal(entry.state, "pending");
        assert.equal(entry.group_jid, DEMO.approval.group_jid);
        assert.equal(entry.request_id, requestId);
        assert.ok(Date.parse(entry.requested_at) > 0);
        assert.equal("resolved_at" in entry, false);

        app.sim.approve({ session: sid, group_jid: DEMO.approval.group_jid });
        const [approved] = await waitFor(sid, "group.join", "the approval's group.join", 2).then((list) => list.filter((e) => e.data.approved));
        assert.deepEqual(
          { ...approved.data, requested_at: undefined },
          { session_id: sid, group_jid: DEMO.approval.group_jid, status: "joined", approved: true, source: "client", request_id: requestId, requested_at: undefined },
        );
        assert.equal(approved.data.requested_at, entry.requested_at);
        const [resolved] = await pendingJoins(sid);
        assert.equal(resolved.state, "approved");
        assert.ok(Date.parse(resolved.resolved_at) >= Date.parse(resolved.requested_at));
        // The session's membership check agrees.
        const check = assertEnvelope(await app.request("GET", `/v1/sessions/${sid}/groups/${DEMO.approval.group_jid}`, { token }), { status: 200 });
        assert.deepEqual(check.data, { group_jid: DEMO.approval.group_jid, membership: "member" });
      });

      test("a repeated event is applied once; a bad signature is 401 and changes nothing; an unknown token is 404", async () => {
        const { sid, url } = await withEvents(kind, "repeat");
        await joinPending(sid);
        // Before the approval: a forged joined event (wrong signature) changes nothing.
        const sent = app.sim.sentEvents(sid);
        assert.equal(sent.length, 0, "a pending join sends no event");
        app.sim.approve({ session: sid, group_jid: DEMO.approval.group_jid });
        await waitFor(sid, "group.join", "the approval", 2);
        const [event] = app.sim.sentEvents(sid);
        const again = await app.sim.replayEvent(sid);
        assert.equal(again.status, 200, "the repeat is accepted");
        await settled();
        assert.equal(delivered(sid, "group.join").filter((e) => e.data.approved).length, 1, "one approval event");
        assert.equal(delivered(sid).length, 2, "the join and its approval, nothing more");

        const forged = await fetch(url, { method: "POST", headers: tamper(kind, event.headers), body: event.body });
        if (kind === "evolution") {
          // Evolution signs nothing: the hook token is its only credential.
          assert.equal(forged.status, 200);
        } else {
          assert.equal(forged.status, 401);
          assert.equal((await forged.json()).error.code, "unauthorized");
        }
        const unknown = await fetch(url.replace(/[0-9a-f]{32}$/, "0".repeat(32)), { method: "POST", headers: event.headers, body: event.body });
        assert.equal(unknown.status, 404);
        assert.equal((await unknown.json()).error.code, "not_found");
        assert.equal(delivered(sid).length, 2, "still nothing more");
      });

      test("an approval seen only by a membership check (events off) gives the same group.join and moves the job item", async () => {
        const sid = await app.kindSession(kind, "checked");
        const submit = await app.request("POST", `/v1/sessions/${sid}/join-jobs`, { token, json: { invites: [DEMO.approval.code] } });
        const jobId = assertEnvelope(submit, { status: 202 }).data.job_id;
        const job = () => app.request("GET", `/v1/sessions/${sid}/join-jobs/${jobId}`, { token }).then((r) => r.body.data);
        await eventually(async () => (await job()).items[0].status === "pending_approval", "the item pending approval");
        const [entry] = await pendingJoins(sid);
        assert.equal(entry.job_id, jobId);
        assert.equal("request_id" in entry, false);
        app.sim.approve({ session: sid, group_jid: DEMO.approval.group_jid });
        const approvals = await eventually(() => delivered(sid, "group.join").filter((e) => e.data.approved).length > 0 && delivered(sid, "group.join").filter((e) => e.data.approved), "the check's approval");
        assert.equal(approvals.length, 1);
        assert.equal(approvals[0].data.source, "job");
        assert.equal(approvals[0].data.job_id, jobId);
        const done = await job();
        assert.equal(done.items[0].status, "joined");
        assert.ok(Date.parse(done.items[0].approved_at) > 0);
        assert.equal(done.counts.joined, 1);
        assert.equal(done.counts.pending_approval, 0);
        assert.ok(app.sim.calls(sid).some((c) => c.route === "group_info" || c.route === "group_list"), "the server was asked");
      });

      test("a rejected request ends expired after the TTL", async () => {
        const sid = await app.kindSession(kind, "rejected");
        await joinPending(sid, DEMO.outsider);
        app.sim.reject({ session: sid, group_jid: DEMO.outsider.group_jid });
        const [expired] = await eventually(() => delivered(sid, "group.join_request.expired").length > 0 && delivered(sid, "group.join_request.expired"), "the expiry", (TTL_S + 10) * 1000);
        assert.deepEqual(Object.keys(expired.data).sort(), ["group_jid", "requested_at", "session_id"]);
        assert.equal(expired.data.group_jid, DEMO.outsider.group_jid);
        const [entry] = await pendingJoins(sid);
        assert.equal(entry.state, "expired");
        const ms = Date.parse(entry.resolved_at) - Date.parse(entry.requested_at);
        assert.ok(ms >= TTL_S * 1000, `expired after ${ms} ms`);
        const check = assertEnvelope(await app.request("GET", `/v1/sessions/${sid}/groups/${DEMO.outsider.group_jid}`, { token }), { status: 200 });
        assert.equal(check.data.membership, "not_member");
      });

      test("a removal and a leave by the server's event give group.leave with their reason; joingate's own leave is not repeated", async () => {
        const { sid } = await withEvents(kind, "leave");
        // A join joingate made, then its echo: one group.join, from the client.
        assertEnvelope(await app.join(sid, token, { invite: DEMO.open.code }), { status: 200 });
        await waitFor(sid, "group.join", "the join");
        await eventually(() => app.sim.sentEvents(sid).some((e) => e.state === "delivered"), "the join's echo delivered");
        await settled();
        assert.deepEqual(delivered(sid, "group.join").map((e) => e.data.source), ["client"]);
        // Removed by an admin: one group.leave from the server.
        app.sim.remove({ session: sid, group_jid: DEMO.open.group_jid });
        const [removed] = await waitFor(sid, "group.leave", "the removal");
        const reason = kind === "waha" || kind === "gowa" ? "unknown" : "removed";
        assert.deepEqual(removed.data, { session_id: sid, group_jid: DEMO.open.group_jid, reason, source: "server" });
        // A leave through joingate: its own event, and the server's echo raises nothing.
        const admin = DEMO.member.group_jid;
        const leave = await app.request("POST", `/v1/sessions/${sid}/groups/${admin}/leave`, { token });
        const requestId = assertEnvelope(leave, { status: 200 }).request_id;
        await eventually(() => app.sim.sentEvents(sid).filter((e) => e.state === "delivered").length >= (kind === "waha" ? 5 : 3), "the echo delivered");
        await settled();
        const leaves = delivered(sid, "group.leave");
        assert.equal(leaves.length, 2);
        assert.deepEqual(leaves[1].data, { session_id: sid, group_jid: admin, request_id: requestId, reason: "left", source: "client" });
      });
    });
  }

  test("the membership check route answers every backend fault in the contract's codes, on every kind", async () => {
    for (const kind of KINDS) {
      for (const [mode, status, code] of BACKEND_FAULTS) {
        const sid = await app.kindSession(kind, `faults-${mode}`);
        app.sim.setFault({ session: sid, mode });
        const res = await app.request("GET", `/v1/sessions/${sid}/groups/${DEMO.member.group_jid}`, { token });
        assertEnvelope(res, { status, code });
        app.sim.setFault({ session: sid, mode: "none" });
        const ok = assertEnvelope(await app.request("GET", `/v1/sessions/${sid}/groups/${DEMO.member.group_jid}`, { token }), { status: 200 });
        assert.equal(ok.data.membership, "member", `${kind} after ${mode}`);
        // A check that finds an old membership raises nothing: only a server's event does.
        assert.equal(delivered(sid).length, 0, `${kind}: no event from a membership check`);
      }
      const offline = await app.kindSession(kind, "offline-check");
      assertEnvelope(await app.request("GET", `/v1/sessions/${offline}/groups/${DEMO.member.group_jid}`, { token }), { status: 409, code: "session_not_connected" });
    }
  });

  test("a check that fails runs again later: a server down for a while still finds the approval", async () => {
    const sid = await app.kindSession("wuzapi", "flaky");
    await joinPending(sid);
    app.sim.setFault({ session: sid, mode: "status500" });
    app.sim.approve({ session: sid, group_jid: DEMO.approval.group_jid });
    await eventually(() => app.sim.calls(sid).filter((c) => c.route === "group_list").length >= 2, "two failed checks");
    assert.equal(delivered(sid, "group.join").filter((e) => e.data.approved).length, 0);
    assert.equal((await pendingJoins(sid))[0].state, "pending");
    app.sim.setFault({ session: sid, mode: "none" });
    await eventually(() => delivered(sid, "group.join").some((e) => e.data.approved), "the approval after the server came back");
  });

  test("the server's echo that arrives while joingate's own join is still at the server raises nothing", async () => {
    // gowa's join is two requests (the join, then a membership check): each answer 500 ms
    // late, the server's group.joined arrives between them.
    const { sid } = await withEvents("gowa", "echo");
    // The object's status call for the account's ids comes first, not under the fault.
    await eventually(() => app.sim.calls(sid).some((c) => c.route === "session_status"), "the status call");
    app.sim.setFault({ session: sid, mode: "latency", delay_ms: 500, count: 2 });
    const res = assertEnvelope(await app.join(sid, token, { invite: DEMO.open.code }), { status: 200 });
    assert.equal(res.data.status, "joined");
    await eventually(() => app.sim.sentEvents(sid).some((e) => e.state === "delivered"), "the echo delivered");
    // Every event the org's object recorded has reached the receiver.
    await settled();
    assert.deepEqual(delivered(sid, "group.join").map((e) => e.data.source), ["client"]);
  });

  test("a request at its TTL has a last check: an approval just before it is approved, not expired", async () => {
    const sid = await app.kindSession("joingate", "last-check");
    await joinPending(sid);
    // Checks at 1, 2, 4 and 6 s; the next comes at the TTL (8 s).
    await eventually(() => app.sim.calls(sid).filter((c) => c.route === "group_info").length >= 4, "four checks", 10_000);
    app.sim.approve({ session: sid, group_jid: DEMO.approval.group_jid });
    await eventually(() => delivered(sid, "group.join").some((e) => e.data.approved), "the approval at the last check", 10_000);
    assert.equal(delivered(sid, "group.join_request.expired").length, 0);
    assert.equal((await pendingJoins(sid))[0].state, "approved");
  });

  test("a join the server reports that joingate did not make is group.join with source server", async () => {
    const { sid } = await withEvents("joingate", "server-join");
    // Joined through the server itself (the simulator's native API), not through joingate.
    const res = await fetch(`${app.sim.url}/sessions/${sid}/groups/join`, {
      method: "POST",
      headers: { Authorization: "Bearer backend-secret", "Content-Type": "application/json" },
      body: JSON.stringify({ code: DEMO.open.code }),
    });
    assert.equal(res.status, 200);
    const [join] = await waitFor(sid, "group.join", "the server's join");
    assert.deepEqual(join.data, { session_id: sid, group_jid: DEMO.open.group_jid, status: "joined", source: "server" });
  });

  test("a later join of the same group resolves the request: its own group.join says approved", async () => {
    const sid = await app.kindSession("joingate", "rejoin");
    await joinPending(sid);
    app.sim.approve({ session: sid, group_jid: DEMO.approval.group_jid });
    // Joined again before any check or event could tell: already_member resolves it.
    const again = assertEnvelope(await app.join(sid, token, { invite: DEMO.approval.code }), { status: 200 });
    assert.equal(again.data.status, "already_member");
    const joins = await waitFor(sid, "group.join", "two joins", 2);
    // Past the request's first check (1 s): had the join not resolved it, the check would
    // have raised an approval of its own.
    await eventually(() => app.sim.calls(sid).some((c) => c.route === "group_info") || Date.now() - Date.parse(joins[0].timestamp) > 3000, "a check's time");
    await settled();
    const approved = delivered(sid, "group.join").filter((e) => e.data.approved);
    assert.equal(approved.length, 1, "only the later join's own event");
    assert.equal(approved[0].data.request_id, again.request_id);
    assert.equal(approved[0].data.status, "already_member");
    assert.equal(joins[0].data.status, "pending_approval");
    assert.equal((await pendingJoins(sid))[0].state, "approved");
  });

  test("the hook route's checks, in order: 404, 429, 413, 401, 400", async () => {
    const { sid, url, secret } = await withEvents("gowa", "checks", { simEvents: false });
    const sign = (body) => `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
    const post = (target, body, headers = {}) =>
      fetch(target, { method: "POST", headers: { "Content-Type": "application/json", "X-Hub-Signature-256": sign(body), ...headers }, body });
    const event = JSON.stringify({ event: "group.joined", device_id: "15550001111@s.whatsapp.net", payload: { chat_id: DEMO.open.group_jid, type: "join", jids: ["15550001111@s.whatsapp.net"] } });
    const codeOf = async (res) => [res.status, (await res.json()).error?.code];

    // Malformed sid, or a token of another session: one 404.
    assert.deepEqual(await codeOf(await post(url.replace(`/hooks/${sid}/`, "/hooks/bad%20sid/"), event)), [404, "not_found"]);
    const other = await withEvents("gowa", "checks-other", { simEvents: false });
    assert.deepEqual(await codeOf(await post(other.url.replace(`/hooks/${other.sid}/`, `/hooks/${sid}/`), event)), [404, "not_found"]);
    assert.deepEqual(await codeOf(await post(url.replace(`/hooks/${sid}/`, `/hooks/${other.sid}/`), event)), [404, "not_found"]);
    // Too large, a bad signature, not an event: 413, 401, 400; nothing applied.
    const big = JSON.stringify({ event: "group.joined", pad: "x".repeat(65 * 1024) });
    assert.deepEqual(await codeOf(await post(url, big)), [413, "payload_too_large"]);
    assert.deepEqual(await codeOf(await post(url, event, { "X-Hub-Signature-256": "sha256=00" })), [401, "unauthorized"]);
    assert.deepEqual(await codeOf(await post(url, "[1,2]")), [400, "validation_error"]);
    assert.equal(delivered(sid).length, 0);
    // A good one: accepted, once; an event type joingate does not use: 200, 0.
    const ok = await post(url, event);
    assert.equal(ok.status, 200);
    assert.deepEqual((await ok.json()).data, { accepted: 1 });
    const other_type = JSON.stringify({ event: "message", payload: {} });
    const ignored = await post(url, other_type);
    assert.deepEqual([ignored.status, (await ignored.json()).data], [200, { accepted: 0 }]);
    // Form-encoded bodies are taken (wuzapi's default); 415 does not apply here.
    const form = await post(url, "a=b", { "Content-Type": "application/x-www-form-urlencoded" });
    assert.equal(form.status, 400);
    // Over EVENTS_PER_MINUTE (40 here): 429 with scope events and Retry-After.
    let limited;
    for (let i = 0; i < 45 && !limited; i++) {
      const res = await post(url, other_type);
      if (res.status === 429) limited = res;
      else await res.body?.cancel();
    }
    assert.ok(limited, "the session's event rate is bounded");
    const body = await limited.json();
    assert.equal(body.error.code, "rate_limited");
    assert.equal(body.error.details.scope, "events");
    assert.ok(Number(limited.headers.get("Retry-After")) >= 1);
  });

  test("events on, rotated and off through the admin record; the hook secret and token never reach a log or a view", async () => {
    const { sid, url, secret } = await withEvents("waha", "admin", { simEvents: false });
    const view = assertEnvelope(await app.admin("GET", `/v1/admin/sessions/${sid}`), { status: 200 }).data;
    assert.equal(view.events, true);
    assert.equal("events_hook" in view, false);
    // A PUT without `events` keeps the hook and shows it no more.
    const kept = assertEnvelope(await app.admin("PUT", `/v1/admin/sessions/${sid}`, { org: "acme", backend: app.backendFor("waha", sid) }), { status: 200 }).data;
    assert.equal(kept.events, true);
    assert.equal("events_hook" in kept, false);
    const body = JSON.stringify({ event: "session.status", me: { id: "15550001111@c.us" }, payload: {} });
    const signed = (key) => ({ "Content-Type": "application/json", "X-Webhook-Hmac": createHmac("sha512", key).update(body).digest("hex") });
    assert.equal((await fetch(url, { method: "POST", headers: signed(secret), body })).status, 200);
    // A rotation renews both.
    const rotated = assertEnvelope(
      await app.admin("PUT", `/v1/admin/sessions/${sid}`, { org: "acme", backend: app.backendFor("waha", sid), rotate_events_secret: true }),
      { status: 200 },
    ).data.events_hook;
    assert.notEqual(rotated.secret, secret);
    const fresh = rotated.url.replace(BASE, app.url);
    assert.notEqual(fresh, url);
    assert.equal((await fetch(url, { method: "POST", headers: signed(rotated.secret), body })).status, 404);
    assert.equal((await fetch(fresh, { method: "POST", headers: signed(secret), body })).status, 401);
    assert.equal((await fetch(fresh, { method: "POST", headers: signed(rotated.secret), body })).status, 200);
    const kv = await app.mf.getKVNamespace("JOINGATE_KV");
    const record = JSON.parse(await kv.get(`session:${sid}`));
    assert.match(record.events.token_hash, /^[0-9a-f]{64}$/);
    const stored = await Promise.all((await kv.list()).keys.map((k) => kv.get(k.name)));
    // Off forgets them.
    const off = assertEnvelope(await app.admin("PUT", `/v1/admin/sessions/${sid}`, { org: "acme", events: false }), { status: 200 }).data;
    assert.equal(off.events, false);
    assert.equal((await fetch(fresh, { method: "POST", headers: signed(rotated.secret), body })).status, 404);
    // Bad input.
    const bad = await app.admin("PUT", `/v1/admin/sessions/${sid}`, { org: "acme", events: "yes" });
    assert.equal(assertEnvelope(bad, { status: 400, code: "validation_error" }).error.details.field, "events");
    const rotateOff = await app.admin("PUT", `/v1/admin/sessions/${sid}`, { org: "acme", rotate_events_secret: true });
    assert.equal(assertEnvelope(rotateOff, { status: 400 }).error.details.field, "rotate_events_secret");
    // Neither secret nor token ever appears in a log line, nor in KV (the record keeps the
    // token's SHA-256 and the secret sealed).
    for (const text of [secret, rotated.secret, url.split("/").pop(), fresh.split("/").pop()]) {
      assert.equal(app.logs.some((line) => line.includes(text)), false);
      assert.equal(stored.some((value) => value.includes(text) || value.includes(text.slice(6))), false);
    }
  });

  test("events need CREDENTIALS_KEY", async () => {
    const bare = await startJoingate({ vars: { CREDENTIALS_KEY: "" } });
    try {
      const res = await bare.admin("PUT", "/v1/admin/sessions/no-key", { org: "acme", events: true });
      assert.equal(assertEnvelope(res, { status: 400, code: "validation_error" }).error.details.field, "events");
    } finally {
      await bare.close();
    }
  });

  test("pending joins and membership checks belong to the session's org", async () => {
    const sid = await app.kindSession("joingate", "tenancy");
    const otherToken = await app.token("globex", ["join", "read", "manage"]);
    for (const path of [`/v1/sessions/${sid}/pending-joins`, `/v1/sessions/${sid}/groups/${DEMO.open.group_jid}`]) {
      assertEnvelope(await app.request("GET", path, { token: otherToken }), { status: 404, code: "not_found" });
      assertEnvelope(await app.request("GET", path, { token: "jg_live_bad" }), { status: 401 });
    }
    assertEnvelope(await app.request("GET", `/v1/sessions/${sid}/groups/not-a-jid`, { token }), { status: 400, code: "validation_error" });
  });
});

/** The event's headers with its signature made wrong (evolution's: nothing to make wrong). */
function tamper(kind, headers) {
  const name = { waha: "x-webhook-hmac", wuzapi: "x-hmac-signature", gowa: "x-hub-signature-256", joingate: "webhook-signature" }[kind];
  const out = {};
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() !== name) out[key] = value;
    else if (kind === "joingate") out[key] = `v1,AAAA${value.slice(7)}`;
    else out[key] = value.slice(0, -2) + (value.endsWith("00") ? "11" : "00");
  }
  return out;
}
