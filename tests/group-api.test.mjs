// The rest of the group API: preview, leave, join requests (list, approve, reject) and
// invite reset, each with its WhatsApp outcomes, bad input and backend faults.
import { describe, test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { startJoingate, assertEnvelope, BACKEND_FAULTS } from "./helpers.mjs";
import { DEMO, PARTICIPANT_FAILURES } from "../sim/catalogue.mjs";

const UNLIMITED = {
  join: { per_minute: 6000, burst: 1000 },
  manage: { per_minute: 6000, burst: 1000 },
  read: { per_minute: 6000, burst: 1000 },
};
const ADMIN = DEMO.admin.group_jid;

describe("group API", () => {
  let app;
  let token;
  const fresh = () => app.freshSession("grp", UNLIMITED);
  const get = (path) => app.request("GET", path, { token });
  const post = (path, json, headers) => app.request("POST", path, { token, json, headers });

  before(async () => {
    app = await startJoingate();
    token = await app.token("acme", ["join", "read", "manage"]);
  });
  after(() => app.close());
  beforeEach(() => app.sim.reset());

  describe("preview", () => {
    test("a bare code and a percent-encoded link both preview", async () => {
      const sid = await fresh();
      for (const invite of [DEMO.approval.code, encodeURIComponent(`https://chat.whatsapp.com/${DEMO.approval.code}?mode=x`)]) {
        const body = assertEnvelope(await get(`/v1/sessions/${sid}/invites/${invite}`), { status: 200 });
        assert.equal(body.data.group_jid, DEMO.approval.group_jid);
        assert.equal(body.data.requires_approval, true);
        assert.equal(typeof body.data.subject, "string");
      }
      assert.deepEqual(app.sim.calls(sid).map((c) => c.path), Array(2).fill(`/sessions/${sid}/invites/${DEMO.approval.code}`));
    });

    test("optional fields are left out when WhatsApp has none", async () => {
      const body = assertEnvelope(await get(`/v1/sessions/${await fresh()}/invites/${DEMO.communityFull.code}`), { status: 200 });
      assert.equal("description" in body.data, false);
      assert.equal("created_at" in body.data, false);
    });

    test("WhatsApp errors map as for join", async () => {
      const sid = await fresh();
      for (const [name, status, code, wa] of [
        ["revoked", 410, "invite_revoked", 410],
        ["invalid", 400, "invite_invalid", 406],
        ["notFound", 404, "group_not_found", 404],
        ["rateLimited", 429, "upstream_rate_limited", 429],
      ]) {
        const body = assertEnvelope(await get(`/v1/sessions/${sid}/invites/${DEMO[name].code}`), { status, code });
        assert.equal(body.error.details.wa_code, wa);
      }
    });

    test("a malformed invite never reaches the backend", async () => {
      const sid = await fresh();
      for (const invite of ["short", encodeURIComponent(`https://evil.example/${DEMO.open.code}`), "%E0%A4%A", "%C3%28"]) {
        assertEnvelope(await get(`/v1/sessions/${sid}/invites/${invite}`), { status: 400, code: "invite_malformed" });
      }
      assert.equal(app.sim.calls(sid).length, 0);
    });
  });

  describe("leave", () => {
    test("leaves a group joined before", async () => {
      const sid = await fresh();
      assertEnvelope(await app.join(sid, token, { invite: DEMO.open.code }), { status: 200 });
      const body = assertEnvelope(await post(`/v1/sessions/${sid}/groups/${DEMO.open.group_jid}/leave`), { status: 200 });
      assert.deepEqual(body.data, { group_jid: DEMO.open.group_jid, status: "left" });
    });

    test("accepts {} as application/json, and a legacy group JID", async () => {
      const sid = await fresh();
      const res = await post(`/v1/sessions/${sid}/groups/${DEMO.member.group_jid}/leave`, {});
      assertEnvelope(res, { status: 200 });
      // A percent-encoded JID (encodeURIComponent turns @ into %40) is the same group.
      const encoded = await post(`/v1/sessions/${sid}/groups/${encodeURIComponent(DEMO.open.group_jid)}/leave`);
      assert.equal(assertEnvelope(encoded, { status: 403, code: "not_in_group" }).error.details.wa_code, 403);
      assert.equal(app.sim.calls(sid).at(-1).path, `/sessions/${sid}/groups/${DEMO.open.group_jid}/leave`);
    });

    test("not in the group is not_in_group; an unknown group is group_not_found", async () => {
      const sid = await fresh();
      const body = assertEnvelope(await post(`/v1/sessions/${sid}/groups/${DEMO.outsider.group_jid}/leave`), { status: 403, code: "not_in_group" });
      assert.equal(body.error.details.wa_code, 403);
      assertEnvelope(await post(`/v1/sessions/${sid}/groups/${DEMO.notFound.group_jid}/leave`), { status: 404, code: "group_not_found" });
    });

    test("bad bodies and bad JIDs are refused at the edge", async () => {
      const sid = await fresh();
      const path = `/v1/sessions/${sid}/groups/${DEMO.open.group_jid}/leave`;
      assertEnvelope(await post(path, { now: true }), { status: 400, code: "validation_error" });
      assertEnvelope(await app.request("POST", path, { token, body: "x", headers: { "Content-Type": "text/plain" } }), { status: 415 });
      assertEnvelope(await app.request("POST", path, { token, body: "{", headers: { "Content-Type": "application/json" } }), { status: 400 });
      assertEnvelope(await post(path, { pad: "x".repeat(17 * 1024) }), { status: 413, code: "payload_too_large" });
      for (const gjid of ["123@s.whatsapp.net", "abc@g.us", "123@G.US", "1-2-3@g.us"]) {
        const body = assertEnvelope(await post(`/v1/sessions/${sid}/groups/${gjid}/leave`), { status: 400, code: "validation_error" });
        assert.equal(body.error.details.field, "gjid");
      }
      assert.equal(app.sim.calls(sid).length, 0);
    });
  });

  describe("join requests", () => {
    test("lists the pending requests", async () => {
      const body = assertEnvelope(await get(`/v1/sessions/${await fresh()}/groups/${ADMIN}/join-requests`), { status: 200 });
      assert.equal(body.data.requests.length, 4);
      assert.deepEqual(body.data.requests[0], { jid: "15550000001@s.whatsapp.net", phone_number: "+15550000001", requested_at: 1760000001 });
      assert.deepEqual(body.data.requests[3], { jid: "15550000004@s.whatsapp.net" });
    });

    test("approve sends duplicates once and reports per-item failures", async () => {
      const sid = await fresh();
      const participants = [
        "15550000001@s.whatsapp.net",
        "98765432109876@lid",
        "15550000001@s.whatsapp.net",
        "15550000099@s.whatsapp.net",
      ];
      const body = assertEnvelope(await post(`/v1/sessions/${sid}/groups/${ADMIN}/join-requests/approve`, { participants }), { status: 200 });
      assert.deepEqual(body.data.approved, ["15550000001@s.whatsapp.net", "98765432109876@lid"]);
      assert.equal(body.data.failed.length, 1);
      assert.equal(body.data.failed[0].jid, "15550000099@s.whatsapp.net");
      assert.equal(body.data.failed[0].error.code, "request_not_found");
      assert.equal(body.data.failed[0].error.wa_code, 404);
      const [call] = app.sim.calls(sid);
      assert.deepEqual(call.body, { action: "approve", participants: ["15550000001@s.whatsapp.net", "98765432109876@lid", "15550000099@s.whatsapp.net"] });
    });

    test("every per-item WhatsApp code has its own code", async () => {
      const expected = {
        400: "request_not_found",
        401: "not_group_admin",
        403: "not_allowed",
        408: "temporarily_blocked",
        409: "conflict",
        412: "limit_reached",
        500: "limit_reached",
        503: "whatsapp_error",
      };
      const participants = Object.keys(PARTICIPANT_FAILURES);
      assert.deepEqual(Object.values(PARTICIPANT_FAILURES).map(String).sort(), Object.keys(expected).sort());
      const body = assertEnvelope(await post(`/v1/sessions/${await fresh()}/groups/${ADMIN}/join-requests/reject`, { participants }), { status: 200 });
      assert.deepEqual(body.data.rejected, []);
      for (const item of body.data.failed) {
        assert.equal(item.error.code, expected[item.error.wa_code], item.jid);
        assert.equal(typeof item.error.message, "string");
      }
      assert.equal(body.data.failed.length, participants.length);
    });

    test("reject removes the request", async () => {
      const sid = await fresh();
      const path = `/v1/sessions/${sid}/groups/${ADMIN}/join-requests`;
      const body = assertEnvelope(await post(`${path}/reject`, { participants: ["15550000002@s.whatsapp.net"] }), { status: 200 });
      assert.deepEqual(body.data, { rejected: ["15550000002@s.whatsapp.net"], failed: [] });
      const list = assertEnvelope(await get(path), { status: 200 });
      assert.ok(!list.data.requests.some((r) => r.jid === "15550000002@s.whatsapp.net"));
    });

    test("not admin, not in group and unknown group map to their codes", async () => {
      const sid = await fresh();
      for (const [gjid, status, code, wa] of [
        [DEMO.member.group_jid, 403, "not_group_admin", 401],
        [DEMO.outsider.group_jid, 403, "not_in_group", 403],
        [DEMO.notFound.group_jid, 404, "group_not_found", 404],
      ]) {
        const list = assertEnvelope(await get(`/v1/sessions/${sid}/groups/${gjid}/join-requests`), { status, code });
        assert.equal(list.error.details.wa_code, wa);
        const approve = await post(`/v1/sessions/${sid}/groups/${gjid}/join-requests/approve`, { participants: ["15550000001@s.whatsapp.net"] });
        assertEnvelope(approve, { status, code });
      }
    });

    test("the participant list is never empty, never 'all', at most 50", async () => {
      const sid = await fresh();
      const path = `/v1/sessions/${sid}/groups/${ADMIN}/join-requests/approve`;
      const many = Array.from({ length: 51 }, (_, i) => `1555000${String(i).padStart(4, "0")}@s.whatsapp.net`);
      for (const [json, field] of [
        [{}, "participants"],
        [{ participants: null }, "participants"],
        [{ participants: [] }, "participants"],
        [{ participants: "all" }, "participants"],
        [{ participants: many }, "participants"],
        [{ participants: [5] }, "participants[0]"],
        [{ participants: ["15550000001@s.whatsapp.net", "15550000001@g.us"] }, "participants[1]"],
        [{ participants: ["15550000001@s.whatsapp.net"], all: true }, "all"],
      ]) {
        const body = assertEnvelope(await post(path, json), { status: 400, code: "validation_error" });
        assert.equal(body.error.details.field, field, JSON.stringify(json).slice(0, 80));
      }
      assertEnvelope(await app.request("POST", path, { token, body: "{}" }), { status: 415 });
      assert.equal(app.sim.calls(sid).length, 0);
    });

    test("exactly 50 participants are accepted", async () => {
      const many = Array.from({ length: 50 }, (_, i) => `1555000${String(i).padStart(4, "0")}@s.whatsapp.net`);
      const body = assertEnvelope(await post(`/v1/sessions/${await fresh()}/groups/${ADMIN}/join-requests/approve`, { participants: many }), { status: 200 });
      assert.equal(body.data.approved.length + body.data.failed.length, 50);
    });
  });

  describe("invite reset", () => {
    test("answers the new code and link; the old code is revoked from then on", async () => {
      const sid = await fresh();
      const body = assertEnvelope(await post(`/v1/sessions/${sid}/groups/${ADMIN}/invite/reset`), { status: 200 });
      assert.match(body.data.invite_code, /^[A-Za-z0-9]{16,32}$/);
      assert.equal(body.data.invite_link, `https://chat.whatsapp.com/${body.data.invite_code}`);
      assertEnvelope(await get(`/v1/sessions/${sid}/invites/${DEMO.admin.code}`), { status: 410, code: "invite_revoked" });
      assertEnvelope(await get(`/v1/sessions/${sid}/invites/${body.data.invite_code}`), { status: 200 });
    });

    test("not admin is not_group_admin", async () => {
      const body = assertEnvelope(await post(`/v1/sessions/${await fresh()}/groups/${DEMO.member.group_jid}/invite/reset`), { status: 403, code: "not_group_admin" });
      assert.equal(body.error.details.wa_code, 401);
    });

    test("an idempotent reset is replayed, not repeated", async () => {
      const sid = await fresh();
      const path = `/v1/sessions/${sid}/groups/${ADMIN}/invite/reset`;
      const first = await post(path, undefined, { "Idempotency-Key": "rotate-1" });
      const again = await post(path, undefined, { "Idempotency-Key": "rotate-1" });
      assert.equal(again.text, first.text);
      assert.equal(again.headers.get("idempotent-replayed"), "true");
      assert.equal(app.sim.calls(sid).length, 1);
    });
  });

  describe("backend faults on every operation", () => {
    const operations = [
      ["preview", (sid) => get(`/v1/sessions/${sid}/invites/${DEMO.open.code}`)],
      ["leave", (sid) => post(`/v1/sessions/${sid}/groups/${DEMO.member.group_jid}/leave`)],
      ["list", (sid) => get(`/v1/sessions/${sid}/groups/${ADMIN}/join-requests`)],
      ["approve", (sid) => post(`/v1/sessions/${sid}/groups/${ADMIN}/join-requests/approve`, { participants: ["15550000001@s.whatsapp.net"] })],
      ["reset", (sid) => post(`/v1/sessions/${sid}/groups/${ADMIN}/invite/reset`)],
      ["status", (sid) => get(`/v1/sessions/${sid}`)],
    ];
    for (const [name, call] of operations) {
      test(name, async () => {
        const sid = await fresh();
        for (const [mode, status, code] of [
          ...BACKEND_FAULTS,
          // Leave's answer carries no data, so any JSON object will do for it.
          ["bad_shape", name === "leave" ? 200 : 502, name === "leave" ? undefined : "backend_error"],
        ]) {
          app.sim.setFault({ session: sid, mode, count: 1 });
          assertEnvelope(await call(sid), { status, code });
        }
        assertEnvelope(await call(sid), { status: 200 });
        for (const [prefix, code] of [["offline", "session_not_connected"], ["ghost", "session_not_connected"]]) {
          const other = `${prefix}-${name}`;
          await app.session(other, "acme", UNLIMITED);
          if (name !== "status" || prefix === "ghost") assertEnvelope(await call(other), { status: 409, code });
        }
      });
    }
  });
});
