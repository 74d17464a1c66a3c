// Session backends of every kind (contract section 9), end to end in workerd: the outcome
// matrix (every catalogue outcome x every kind x every operation), what each kind cannot do,
// session states, credentials (sealed, never shown, bound to their session and backend),
// an invalid SESSION_BACKEND_URL, and backend faults (down, slow, garbage, 5xx, an answer
// cut off or over 1 MiB) with the breaker, on every kind.
import { describe, test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { createCipheriv, randomBytes } from "node:crypto";
import { startJoingate, assertEnvelope, KINDS, ADMIN_TOKEN, CREDENTIALS_KEY, BACKEND_FAULTS } from "./helpers.mjs";
import { DEMO, PARTICIPANT_FAILURES } from "../sim/catalogue.mjs";
import { SIM_CREDENTIALS } from "../sim/simulator.mjs";

const UNLIMITED = {
  join: { per_minute: 6000, burst: 1000 },
  manage: { per_minute: 6000, burst: 1000 },
  read: { per_minute: 6000, burst: 1000 },
};
const ADMIN = DEMO.admin.group_jid;
const MEMBER = DEMO.member.group_jid;
const OUTSIDER = DEMO.outsider.group_jid;

/** What WhatsApp answers, per catalogue entry, on a join (contract sections 2 and 9). */
const JOIN = {
  open: ["ok", "joined"],
  approval: ["ok", "pending_approval"],
  member: ["ok", "already_member"],
  revoked: ["err", 410, "invite_revoked", 410],
  invalid: ["err", 400, "invite_invalid", 406],
  full: ["err", 409, "group_full", 419],
  communityFull: ["err", 409, "group_full", 412],
  removed: ["err", 403, "join_not_allowed", 403],
  notAllowed: ["err", 403, "join_not_allowed", 401],
  notFound: ["err", 404, "group_not_found", 404],
  rateLimited: ["err", 429, "upstream_rate_limited", 429],
};

/**
 * wuzapi answers every failure with `{"code":500,"success":true}` and nothing else: no
 * kind can read a WhatsApp code from it, so joingate answers backend_error (the status route
 * showed the session connected). Its "already a member" is such a failure too.
 */
const SILENT = [502, "backend_error", undefined];

function expectedJoin(kind, name) {
  const [shape, ...rest] = JOIN[name];
  if (kind === "wuzapi" && !(name === "open" || name === "approval")) return ["err", ...SILENT];
  return [shape, ...rest];
}

describe("session backends of every kind", () => {
  let app;
  let token;

  before(async () => {
    app = await startJoingate({ orgLimit: 100000 });
    token = await app.token("acme", ["join", "read", "manage"]);
  });
  after(() => app.close());
  beforeEach(() => app.sim.reset());

  const fresh = (kind, prefix = "bk", backend) => app.kindSession(kind, prefix, { limits: UNLIMITED, backend });
  const get = (path) => app.request("GET", path, { token });
  const post = (path, json) => app.request("POST", path, { token, json });
  const routesOf = (sid) => app.sim.calls(sid).map((c) => c.route);

  describe("join: every catalogue outcome on every kind", () => {
    for (const kind of KINDS) {
      test(kind, async () => {
        for (const name of Object.keys(JOIN)) {
          const sid = await fresh(kind);
          const res = await app.join(sid, token, { invite: `https://chat.whatsapp.com/${DEMO[name].code}` });
          const [shape, ...rest] = expectedJoin(kind, name);
          if (shape === "ok") {
            const body = assertEnvelope(res, { status: 200 });
            assert.deepEqual(body.data, { group_jid: DEMO[name].group_jid, status: rest[0] }, `${kind} ${name}`);
          } else {
            const [status, code, wa] = rest;
            const body = assertEnvelope(res, { status, code });
            assert.equal(body.error.details?.wa_code, wa, `${kind} ${name}: wa_code`);
          }
          // Every call of the exchange went to this kind's front end, authorised.
          const calls = app.sim.calls(sid);
          assert.ok(calls.length >= 1, `${kind} ${name} reached the simulator`);
          for (const call of calls) {
            assert.equal(call.kind, kind, `${kind} ${name}`);
            assert.equal(call.authorized, true, `${kind} ${name}`);
          }
        }
      });
    }

    test("pending approval is told apart with each server's own means", async () => {
      const expected = {
        joingate: ["join"],
        waha: ["invite_preview", "join"],
        evolution: ["join", "invite_preview"],
        wuzapi: ["invite_preview", "join"],
        gowa: ["join", "group_info"],
      };
      for (const kind of KINDS) {
        const sid = await fresh(kind);
        const res = await app.join(sid, token, { invite: DEMO.approval.code });
        assert.equal(assertEnvelope(res, { status: 200 }).data.status, "pending_approval", kind);
        assert.deepEqual(routesOf(sid), expected[kind], kind);
      }
      // WAHA's GOWS engine names the group even for a request: the preview decides.
      const gows = await fresh("waha", "gows");
      const res = await app.join(gows, token, { invite: DEMO.approval.code });
      assert.deepEqual(assertEnvelope(res, { status: 200 }).data, { group_jid: DEMO.approval.group_jid, status: "pending_approval" });
      const open = await app.join(gows, token, { invite: DEMO.open.code });
      assert.equal(assertEnvelope(open, { status: 200 }).data.status, "joined");
    });

    test("a second join of an open group is already_member (wuzapi: cannot tell)", async () => {
      for (const kind of KINDS) {
        const sid = await fresh(kind);
        assertEnvelope(await app.join(sid, token, { invite: DEMO.open.code }), { status: 200 });
        const again = await app.join(sid, token, { invite: DEMO.open.code });
        if (kind === "wuzapi") {
          assertEnvelope(again, { status: 502, code: "backend_error" });
        } else {
          assert.deepEqual(assertEnvelope(again, { status: 200 }).data, { group_jid: DEMO.open.group_jid, status: "already_member" }, kind);
        }
      }
    });

    test("a multi-step join is one rate-limit token and one queue turn", async () => {
      for (const kind of ["waha", "wuzapi", "gowa", "evolution"]) {
        const sid = await app.kindSession(kind, "one", { limits: { join: { per_minute: 1, burst: 1 } } });
        assertEnvelope(await app.join(sid, token, { invite: DEMO.approval.code }), { status: 200 });
        assert.ok(app.sim.calls(sid).length >= 2, `${kind} made several requests`);
        const second = await app.join(sid, token, { invite: DEMO.open.code });
        assertEnvelope(second, { status: 429, code: "rate_limited" });
        assert.equal(app.sim.stats().max_concurrency[sid], 1, kind);
      }
    });

    test("WhatsApp rate-overlimit without a Retry-After: a join cools down for its strike, a preview waits 60 s", async () => {
      for (const kind of ["waha", "evolution", "gowa"]) {
        const sid = await fresh(kind);
        const res = await app.join(sid, token, { invite: DEMO.rateLimited.code });
        assertEnvelope(res, { status: 429, code: "upstream_rate_limited" });
        // Strike 1's cooldown: COOLDOWN_S' first value (1 s in the tests' pace, 1 h deployed).
        assert.equal(res.headers.get("retry-after"), "1", kind);
        // Evolution drops a failed preview's cause (its "No invite info"): no 429 there.
        if (kind === "evolution") continue;
        const preview = await get(`/v1/sessions/${await fresh(kind)}/invites/${DEMO.rateLimited.code}`);
        assertEnvelope(preview, { status: 429, code: "upstream_rate_limited" });
        assert.equal(preview.headers.get("retry-after"), "60", kind);
      }
    });

    test("join by invite message is 501 on every kind but joingate, before any request", async () => {
      const message = { code: DEMO.open.code, group_jid: DEMO.open.group_jid, inviter_jid: "15551234567@s.whatsapp.net" };
      for (const kind of KINDS) {
        const sid = await fresh(kind);
        const res = await app.join(sid, token, message);
        if (kind === "joingate") {
          assert.deepEqual(assertEnvelope(res, { status: 200 }).data, { group_jid: DEMO.open.group_jid, status: "joined" });
          continue;
        }
        const body = assertEnvelope(res, { status: 501, code: "not_implemented" });
        assert.deepEqual(body.error.details, { backend_kind: kind, operation: "join_by_message" });
        assert.equal(app.sim.calls(sid).length, 0, kind);
      }
    });

    test("evolution takes only 22-character codes: others are refused at the edge", async () => {
      const sid = await fresh("evolution");
      const res = await app.join(sid, token, { invite: "AbCdEfGhIjKlMnOpQr" });
      assert.equal(assertEnvelope(res, { status: 400, code: "validation_error" }).error.details.field, "invite");
      assert.equal(app.sim.calls(sid).length, 0);
    });
  });

  describe("preview on every kind", () => {
    const previewOf = (sid, name) => get(`/v1/sessions/${sid}/invites/${DEMO[name].code}`);

    test("the same fields on every kind; requires_approval null where the server cannot tell", async () => {
      for (const kind of KINDS) {
        for (const name of ["open", "approval", "communityFull"]) {
          const sid = await fresh(kind);
          const { data } = assertEnvelope(await previewOf(sid, name), { status: 200 });
          const entry = DEMO[name];
          assert.equal(data.group_jid, entry.group_jid, `${kind} ${name}`);
          assert.equal(data.subject, entry.subject, `${kind} ${name}`);
          assert.equal(data.requires_approval, kind === "gowa" ? null : entry.requires_approval, `${kind} ${name}`);
          assert.equal(data.description, entry.description, `${kind} ${name}`);
          assert.equal(data.created_at, entry.created_at, `${kind} ${name}`);
          assert.equal(data.size, entry.size, `${kind} ${name}`);
        }
      }
    });

    test("WhatsApp errors map as for join; Evolution drops the cause", async () => {
      const cases = [
        ["revoked", 410, "invite_revoked", 410],
        ["invalid", 400, "invite_invalid", 406],
        ["notFound", 404, "group_not_found", 404],
        ["rateLimited", 429, "upstream_rate_limited", 429],
      ];
      for (const kind of KINDS) {
        for (const [name, status, code, wa] of cases) {
          const res = await previewOf(await fresh(kind), name);
          if (kind === "wuzapi") {
            assertEnvelope(res, { status: 502, code: "backend_error" });
          } else if (kind === "evolution") {
            // Evolution drops the cause: an answer that says nothing usable (the state route
            // showed the instance open).
            const body = assertEnvelope(res, { status: 502, code: "backend_error" });
            assert.equal(body.error.details.reason, "no_invite_info");
            assert.equal(body.error.details.wa_code, undefined);
            assert.ok(!res.text.includes(DEMO[name].code), "the echoed code is not passed on");
          } else {
            const body = assertEnvelope(res, { status, code });
            assert.equal(body.error.details.wa_code, wa, `${kind} ${name}`);
          }
        }
      }
    });
  });

  describe("leave on every kind", () => {
    test("left, not_in_group, group_not_found", async () => {
      for (const kind of KINDS) {
        const sid = await fresh(kind);
        const member = await post(`/v1/sessions/${sid}/groups/${MEMBER}/leave`);
        assert.deepEqual(assertEnvelope(member, { status: 200 }).data, { group_jid: MEMBER, status: "left" }, kind);
        const outsider = await post(`/v1/sessions/${sid}/groups/${OUTSIDER}/leave`);
        const gone = await post(`/v1/sessions/${sid}/groups/${DEMO.notFound.group_jid}/leave`);
        if (kind === "wuzapi") {
          assertEnvelope(outsider, { status: 502, code: "backend_error" });
          assertEnvelope(gone, { status: 502, code: "backend_error" });
          continue;
        }
        assert.equal(assertEnvelope(outsider, { status: 403, code: "not_in_group" }).error.details.wa_code, 403, kind);
        assert.equal(assertEnvelope(gone, { status: 404, code: "group_not_found" }).error.details.wa_code, 404, kind);
      }
    });
  });

  describe("invite reset on every kind", () => {
    test("a code and a link whatever the server answers; admin errors mapped", async () => {
      for (const kind of KINDS) {
        for (const prefix of kind === "waha" ? ["bk", "gows"] : ["bk"]) {
          const sid = await fresh(kind, prefix);
          const { data } = assertEnvelope(await post(`/v1/sessions/${sid}/groups/${ADMIN}/invite/reset`), { status: 200 });
          assert.match(data.invite_code, /^[A-Za-z0-9]{22}$/, `${kind} ${prefix}`);
          assert.equal(data.invite_link, `https://chat.whatsapp.com/${data.invite_code}`);
          // The old code is revoked: a join with it now fails (wuzapi: without a reason).
          const old = await app.join(sid, token, { invite: DEMO.admin.code });
          assertEnvelope(old, kind === "wuzapi" ? { status: 502 } : { status: 410, code: "invite_revoked" });
        }
        const sid = await fresh(kind);
        const member = await post(`/v1/sessions/${sid}/groups/${MEMBER}/invite/reset`);
        const outsider = await post(`/v1/sessions/${sid}/groups/${OUTSIDER}/invite/reset`);
        if (kind === "wuzapi") {
          assertEnvelope(member, { status: 502, code: "backend_error" });
          continue;
        }
        assert.equal(assertEnvelope(member, { status: 403, code: "not_group_admin" }).error.details.wa_code, 401, kind);
        assert.equal(assertEnvelope(outsider, { status: 403, code: "not_in_group" }).error.details.wa_code, 403, kind);
      }
    });
  });

  describe("join requests where the server has them", () => {
    const list = (sid, group = ADMIN) => get(`/v1/sessions/${sid}/groups/${group}/join-requests`);
    const act = (sid, action, participants) => post(`/v1/sessions/${sid}/groups/${ADMIN}/join-requests/${action}`, { participants });

    test("evolution, wuzapi and a WAHA older than 2026.8 answer 501 for all three", async () => {
      for (const [kind, prefix, calls] of [["evolution", "bk", 0], ["wuzapi", "bk", 0], ["waha", "legacy", 1]]) {
        for (const name of ["list_join_requests", "approve_join_requests", "reject_join_requests"]) {
          const sid = await fresh(kind, prefix);
          const participants = ["15550000001@s.whatsapp.net"];
          const answer = name === "list_join_requests" ? await list(sid) : await act(sid, name.split("_")[0], participants);
          const body = assertEnvelope(answer, { status: 501, code: "not_implemented" });
          assert.deepEqual(body.error.details, { backend_kind: kind, operation: name });
          assert.equal(app.sim.calls(sid).length, calls, `${kind} ${name}`);
        }
      }
    });

    test("list on joingate, waha (both engines) and gowa", async () => {
      for (const [kind, prefix] of [["joingate", "bk"], ["waha", "bk"], ["waha", "gows"], ["gowa", "bk"]]) {
        const sid = await fresh(kind, prefix);
        const { data } = assertEnvelope(await list(sid), { status: 200 });
        assert.deepEqual(data.requests.map((r) => r.jid), DEMO.admin.pending_requests.map((r) => r.jid), `${kind} ${prefix}`);
        for (const request of data.requests) {
          const listed = DEMO.admin.pending_requests.find((r) => r.jid === request.jid);
          if (request.requested_at !== undefined) assert.equal(request.requested_at, listed.requested_at, `${kind} ${prefix}`);
          if (request.phone_number !== undefined) assert.match(request.phone_number, /^\+\d+$/);
        }
        assert.equal(assertEnvelope(await list(sid, MEMBER), { status: 403, code: "not_group_admin" }).error.details.wa_code, 401);
        assert.equal(assertEnvelope(await list(sid, OUTSIDER), { status: 403, code: "not_in_group" }).error.details.wa_code, 403);
      }
    });

    test("approve and reject with per-item failures; gowa refuses @lid per item", async () => {
      const failing = Object.keys(PARTICIPANT_FAILURES).filter((jid) => [401, 403, 409, 412].includes(PARTICIPANT_FAILURES[jid]));
      for (const [kind, prefix] of [["joingate", "bk"], ["waha", "bk"], ["waha", "gows"], ["gowa", "bk"]]) {
        const sid = await fresh(kind, prefix);
        const participants = ["15550000001@s.whatsapp.net", "98765432109876@lid", ...failing];
        const { data } = assertEnvelope(await act(sid, "approve", participants), { status: 200 });
        const lid = data.failed.find((f) => f.jid === "98765432109876@lid");
        if (kind === "gowa") {
          assert.deepEqual(lid.error.code, "not_supported");
          assert.deepEqual(data.approved, ["15550000001@s.whatsapp.net"]);
        } else {
          assert.deepEqual(data.approved, ["15550000001@s.whatsapp.net", "98765432109876@lid"], `${kind} ${prefix}`);
        }
        for (const jid of failing) {
          const item = data.failed.find((f) => f.jid === jid);
          assert.equal(item?.error.wa_code, PARTICIPANT_FAILURES[jid], `${kind} ${prefix} ${jid}`);
        }
        const codes = Object.fromEntries(data.failed.map((f) => [f.jid, f.error.code]));
        assert.equal(codes[failing.find((j) => PARTICIPANT_FAILURES[j] === 401)], "not_group_admin");
        assert.equal(codes[failing.find((j) => PARTICIPANT_FAILURES[j] === 412)], "limit_reached");
        // Approved requests are gone; rejecting one again is request_not_found.
        const again = assertEnvelope(await act(sid, "reject", ["15550000001@s.whatsapp.net"]), { status: 200 }).data;
        assert.deepEqual(again.rejected, []);
        assert.equal(again.failed[0].error.code, "request_not_found", `${kind} ${prefix}`);
      }
      // Only @lid participants on gowa: nothing is sent at all.
      const sid = await fresh("gowa");
      const { data } = assertEnvelope(await act(sid, "reject", ["98765432109876@lid"]), { status: 200 });
      assert.deepEqual(data, { rejected: [], failed: [{ jid: "98765432109876@lid", error: data.failed[0].error }] });
      assert.equal(data.failed[0].error.code, "not_supported");
      assert.equal(app.sim.calls(sid).length, 0);
    });
  });

  describe("session states on every kind", () => {
    test("status comes from the server's own route, with backend_kind", async () => {
      for (const kind of KINDS) {
        const up = await fresh(kind);
        const { data } = assertEnvelope(await get(`/v1/sessions/${up}`), { status: 200 });
        assert.equal(data.connected, true, kind);
        assert.equal(data.backend_kind, kind);
        assert.deepEqual(routesOf(up), ["session_status"], kind);
        const down = await fresh(kind, "offline");
        const status = assertEnvelope(await get(`/v1/sessions/${down}`), { status: 200 });
        assert.equal(status.data.connected, false, kind);
      }
    });

    test("a session that is not connected is session_not_connected on every operation", async () => {
      for (const kind of KINDS) {
        const sid = await fresh(kind, "offline");
        for (const res of [
          await app.join(sid, token, { invite: DEMO.open.code }),
          await get(`/v1/sessions/${sid}/invites/${DEMO.open.code}`),
          await post(`/v1/sessions/${sid}/groups/${MEMBER}/leave`),
          await post(`/v1/sessions/${sid}/groups/${ADMIN}/invite/reset`),
        ]) {
          assertEnvelope(res, { status: 409, code: "session_not_connected" });
        }
      }
    });

    test("a session the server does not know is session_not_connected", async () => {
      for (const kind of ["joingate", "waha", "evolution", "gowa"]) {
        const sid = await fresh(kind, "ghost");
        assertEnvelope(await app.join(sid, token, { invite: DEMO.open.code }), { status: 409, code: "session_not_connected" });
      }
      // wuzapi's user without a client: "no session", and its status says not connected.
      const sid = await fresh("wuzapi", "ghost");
      assertEnvelope(await app.join(sid, token, { invite: DEMO.open.code }), { status: 409, code: "session_not_connected" });
      assert.equal(assertEnvelope(await get(`/v1/sessions/${sid}`), { status: 200 }).data.connected, false);
    });
  });

  describe("credentials", () => {
    test("a refused credential is backend_error credential_rejected, on every kind", async () => {
      for (const kind of KINDS) {
        const sid = await fresh(kind, "bk", { credential: kind === "gowa" ? "gowa:wrong" : "wrong-credential" });
        const res = await app.join(sid, token, { invite: DEMO.open.code });
        const body = assertEnvelope(res, { status: 502, code: "backend_error" });
        assert.equal(body.error.details.reason, "credential_rejected", kind);
        // wuzapi's token names its user: a refused one names no session.
        const refused = app.sim.calls().filter((c) => c.kind === kind && !c.authorized);
        assert.ok(refused.length >= 1, `${kind}: the front end refused the credential`);
      }
    });

    test("never in an answer, in KV in plain text, or in a log line", async () => {
      const secret = "waha-key";
      const sid = `secret-${Date.now()}`;
      const backend = app.backendFor("waha", sid);
      const put = await app.admin("PUT", `/v1/admin/sessions/${sid}`, { org: "acme", backend });
      const { data } = assertEnvelope(put, { status: 200 });
      assert.deepEqual(data.backend, { kind: "waha", url: app.sim.urls.waha, has_credential: true });
      const got = await app.admin("GET", `/v1/admin/sessions/${sid}`);
      assert.deepEqual(assertEnvelope(got, { status: 200 }).data, data);
      assertEnvelope(await app.join(sid, token, { invite: DEMO.open.code }), { status: 200 });
      for (const text of [put.text, got.text]) assert.ok(!text.includes(secret));
      const kv = await app.mf.getKVNamespace("JOINGATE_KV");
      const stored = await kv.get(`session:${sid}`);
      assert.ok(stored && !stored.includes(secret), "KV holds the record, sealed");
      assert.ok(JSON.parse(stored).backend.credential.ct, "a ciphertext is kept");
      for (const { name } of (await kv.list()).keys) {
        assert.ok(!((await kv.get(name)) ?? "").includes(secret), `KV ${name}`);
      }
      assert.ok(app.logs.length > 0);
      for (const line of app.logs) assert.ok(!line.includes(secret), line);
    });

    test("a ciphertext copied to another session's record does not decrypt", async () => {
      const kv = await app.mf.getKVNamespace("JOINGATE_KV");
      const source = await fresh("waha");
      const target = await fresh("waha");
      const record = JSON.parse(await kv.get(`session:${source}`));
      await kv.put(`session:${target}`, JSON.stringify(record));
      const res = await app.join(target, token, { invite: DEMO.open.code });
      assertEnvelope(res, { status: 500, code: "internal_error" });
      assert.equal(app.sim.calls(target).length, 0, "nothing was sent with it");
      // The original still works.
      assertEnvelope(await app.join(source, token, { invite: DEMO.open.code }), { status: 200 });
    });

    test("a ciphertext left in its record but pointed at another server, kind or remote session does not decrypt", async () => {
      const kv = await app.mf.getKVNamespace("JOINGATE_KV");
      const port = new URL(app.sim.url).port;
      for (const change of [
        // The same simulator under another name: the credential would reach it.
        { url: `http://localhost:${port}/waha` },
        { url: `${app.sim.urls.waha}/v2` },
        { remote_session: "another-account" },
        { kind: "evolution", url: app.sim.urls.evolution },
      ]) {
        const sid = await fresh("waha");
        const record = JSON.parse(await kv.get(`session:${sid}`));
        await kv.put(`session:${sid}`, JSON.stringify({ ...record, backend: { ...record.backend, ...change } }));
        // Any session's calls (the credential could reach another name), but for the
        // membership checks of earlier tests' pending requests, which come on their own.
        const joinCalls = () => app.sim.calls().filter((c) => !["group_info", "group_list"].includes(c.route)).length;
        const sent = joinCalls();
        const res = await app.join(sid, token, { invite: DEMO.open.code });
        assertEnvelope(res, { status: 500, code: "internal_error" });
        assert.equal(joinCalls(), sent, `nothing was sent with it: ${JSON.stringify(change)}`);
        // Its own record opens again.
        await kv.put(`session:${sid}`, JSON.stringify(record));
        assertEnvelope(await app.join(sid, token, { invite: DEMO.open.code }), { status: 200 });
      }
    });

    test("a credential sealed before v1.2 (bound to the session id only) still opens, in its own session only", async () => {
      const kv = await app.mf.getKVNamespace("JOINGATE_KV");
      const sid = await fresh("waha");
      const other = await fresh("waha");
      // As joingate sealed it before v1.2: AES-256-GCM, the session id as additional data, no version.
      const iv = randomBytes(12);
      const cipher = createCipheriv("aes-256-gcm", Buffer.from(CREDENTIALS_KEY, "base64"), iv);
      cipher.setAAD(Buffer.from(`joingate credential for session ${sid}`));
      const ct = Buffer.concat([cipher.update(SIM_CREDENTIALS.waha, "utf8"), cipher.final(), cipher.getAuthTag()]);
      const legacy = { iv: iv.toString("base64"), ct: ct.toString("base64") };
      for (const id of [sid, other]) {
        const record = JSON.parse(await kv.get(`session:${id}`));
        await kv.put(`session:${id}`, JSON.stringify({ ...record, backend: { ...record.backend, credential: legacy } }));
      }
      assertEnvelope(await app.join(sid, token, { invite: DEMO.open.code }), { status: 200 });
      assert.ok(app.sim.calls(sid).length > 0 && app.sim.calls(sid).every((c) => c.authorized), "sent, and accepted");
      assert.ok(app.logs.some((l) => l.includes("sealed before v1.2") && l.includes(sid)), "the log says to seal it again");
      assertEnvelope(await app.join(other, token, { invite: DEMO.open.code }), { status: 500, code: "internal_error" });
      assert.equal(app.sim.calls(other).length, 0);
      // A PUT with the credential seals it the new way.
      await app.admin("PUT", `/v1/admin/sessions/${sid}`, { org: "acme", limits: UNLIMITED, backend: app.backendFor("waha", sid) });
      assert.equal(JSON.parse(await kv.get(`session:${sid}`)).backend.credential.v, 2);
    });

    test("a session without backend is kind joingate at SESSION_BACKEND_URL, as before", async () => {
      const sid = await app.freshSession("plain", UNLIMITED);
      const got = assertEnvelope(await app.admin("GET", `/v1/admin/sessions/${sid}`), { status: 200 });
      assert.equal(got.data.backend, null);
      assertEnvelope(await app.join(sid, token, { invite: DEMO.open.code }), { status: 200 });
      assert.deepEqual(app.sim.calls(sid).map((c) => [c.kind, c.path]), [["joingate", `/sessions/${sid}/groups/join`]]);
    });
  });

  describe("bad backend values", () => {
    const cases = [
      ["not an object", "waha", "backend"],
      ["unknown kind", { kind: "wappi", url: "https://x.example" }, "backend.kind"],
      ["kind missing", { url: "https://x.example" }, "backend.kind"],
      ["url missing", { kind: "waha" }, "backend.url"],
      ["http on a public host", { kind: "waha", url: "http://waha.example.com" }, "backend.url"],
      ["userinfo", { kind: "waha", url: "https://u:p@waha.example.com" }, "backend.url"],
      ["query", { kind: "waha", url: "https://waha.example.com/?x=1" }, "backend.url"],
      ["fragment", { kind: "waha", url: "https://waha.example.com/#x" }, "backend.url"],
      ["not a URL", { kind: "waha", url: "waha" }, "backend.url"],
      ["url a number", { kind: "waha", url: 5 }, "backend.url"],
      ["remote_session with /", { kind: "waha", url: "https://w.example", remote_session: "a/b" }, "backend.remote_session"],
      ["remote_session too long", { kind: "waha", url: "https://w.example", remote_session: "x".repeat(101) }, "backend.remote_session"],
      ["empty credential", { kind: "waha", url: "https://w.example", credential: "" }, "backend.credential"],
      ["credential too long", { kind: "waha", url: "https://w.example", credential: "x".repeat(513) }, "backend.credential"],
      ["credential not ASCII", { kind: "waha", url: "https://w.example", credential: "clé" }, "backend.credential"],
      ["unknown field", { kind: "waha", url: "https://w.example", apikey: "x" }, "backend.apikey"],
    ];
    for (const [what, backend, field] of cases) {
      test(`${what} → 400 field ${field}`, async () => {
        const res = await app.admin("PUT", "/v1/admin/sessions/bad-backend", { org: "acme", backend });
        const body = assertEnvelope(res, { status: 400, code: "validation_error" });
        assert.equal(body.error.details.field, field);
        if (typeof backend === "object" && backend.credential) assert.ok(!res.text.includes(backend.credential));
        assertEnvelope(await app.admin("GET", "/v1/admin/sessions/bad-backend"), { status: 404 });
      });
    }

    test("backend null is the default backend; a url keeps its path prefix, without the trailing /", async () => {
      const nul = await app.admin("PUT", "/v1/admin/sessions/null-backend", { org: "acme", backend: null });
      assert.equal(assertEnvelope(nul, { status: 200 }).data.backend, null);
      const res = await app.admin("PUT", "/v1/admin/sessions/prefix-backend", {
        org: "acme",
        backend: { kind: "evolution", url: "https://EVO.example.com/api/", remote_session: "inst-1" },
      });
      assert.deepEqual(assertEnvelope(res, { status: 200 }).data.backend, {
        kind: "evolution",
        url: "https://evo.example.com/api",
        remote_session: "inst-1",
        has_credential: false,
      });
    });
  });

  describe("backend faults on every kind", () => {
    test("garbage, 5xx, hangs (before or during the answer), refused connections and a cut answer", async () => {
      for (const kind of KINDS) {
        for (const [mode, status, code] of [
          ...BACKEND_FAULTS,
          ["bad_shape", 502, "backend_error"],
          // The status line and half the body, then nothing: the deadline covers the body.
          ["stall", 504, "backend_timeout"],
          ["cut", 502, "backend_error"],
          // 5 MB of valid JSON: read up to 1 MiB only.
          ["huge", 502, "backend_error"],
        ]) {
          const sid = await fresh(kind);
          app.sim.setFault({ session: sid, mode });
          const res = await get(`/v1/sessions/${sid}/invites/${DEMO.open.code}`);
          const body = assertEnvelope(res, { status, code });
          if (mode === "status500") assert.equal(body.error.details.backend_status, 500, kind);
          if (mode === "cut") assert.equal(body.error.details.reason, "answer_cut_off", kind);
          if (mode === "huge") assert.equal(body.error.details.reason, "answer_too_large", kind);
          app.sim.setFault({ session: sid, mode: "none" });
          // The session works again afterwards.
          assertEnvelope(await get(`/v1/sessions/${sid}/invites/${DEMO.open.code}`), { status: 200 });
        }
      }
    });

    test("a server that is down is backend_unavailable with the token refunded", async () => {
      for (const kind of KINDS) {
        const sid = await app.kindSession(kind, "down", {
          limits: { join: { per_minute: 1, burst: 1 } },
          backend: { url: kind === "joingate" ? "http://127.0.0.1:9" : `http://127.0.0.1:9/${kind}` },
        });
        for (let i = 0; i < 2; i++) {
          const res = await app.join(sid, token, { invite: DEMO.open.code });
          assertEnvelope(res, { status: 503, code: "backend_unavailable" });
        }
      }
    });

    test("an answer cut off after its status line, or a timeout, keeps the token spent", async () => {
      for (const kind of KINDS) {
        const sid = await app.kindSession(kind, "cut", { limits: { join: { per_minute: 1, burst: 1 } } });
        app.sim.setFault({ session: sid, mode: "cut", count: 1 });
        const cut = await app.join(sid, token, { invite: DEMO.open.code });
        assert.equal(assertEnvelope(cut, { status: 502, code: "backend_error" }).error.details.reason, "answer_cut_off", kind);
        const next = await app.join(sid, token, { invite: DEMO.open.code });
        assertEnvelope(next, { status: 429, code: "rate_limited" });
        const slow = await app.kindSession(kind, "slow", { limits: { join: { per_minute: 1, burst: 1 } } });
        app.sim.setFault({ session: slow, mode: "hang", count: 1 });
        assertEnvelope(await app.join(slow, token, { invite: DEMO.open.code }), { status: 504, code: "backend_timeout" });
        assertEnvelope(await app.join(slow, token, { invite: DEMO.open.code }), { status: 429, code: "rate_limited" });
      }
    });

    test("an answer over 1 MiB is answer_too_large: the token stays spent, the key is released", async () => {
      for (const kind of KINDS) {
        const sid = await app.kindSession(kind, "huge", { limits: { join: { per_minute: 2, burst: 2 } } });
        app.sim.setFault({ session: sid, mode: "huge", count: 1 });
        const headers = { "Idempotency-Key": `huge-${kind}` };
        const huge = await app.join(sid, token, { invite: DEMO.open.code }, headers);
        const body = assertEnvelope(huge, { status: 502, code: "backend_error" });
        assert.equal(body.error.details.reason, "answer_too_large", kind);
        assert.equal(body.error.details.backend_status, 200, kind);
        // Not stored: the same key runs again (the fault is spent), and is no replay.
        const again = await app.join(sid, token, { invite: DEMO.open.code }, headers);
        assertEnvelope(again, { status: 200 });
        assert.equal(again.headers.get("idempotent-replayed"), null, kind);
        // Both calls spent their token.
        assertEnvelope(await app.join(sid, token, { invite: DEMO.member.code }), { status: 429, code: "rate_limited" });
      }
    });

    test("the breaker opens after 5 transport failures, on every kind", async () => {
      for (const kind of KINDS) {
        const sid = await fresh(kind);
        app.sim.setFault({ session: sid, mode: "drop" });
        for (let i = 0; i < 5; i++) {
          assertEnvelope(await get(`/v1/sessions/${sid}/invites/${DEMO.open.code}`), { status: 503, code: "backend_unavailable" });
        }
        const before = app.sim.calls(sid).length;
        const open = await get(`/v1/sessions/${sid}/invites/${DEMO.open.code}`);
        assert.equal(assertEnvelope(open, { status: 503, code: "backend_unavailable" }).error.details.circuit, "open", kind);
        assert.equal(app.sim.calls(sid).length, before, `${kind}: the open circuit sends nothing`);
      }
    });
  });

  test("another org's session with a backend is not_found, and nothing is sent", async () => {
    const sid = await fresh("waha");
    const other = await app.token("other-org", ["join", "read", "manage"]);
    const res = await app.request("POST", `/v1/sessions/${sid}/groups/join`, { token: other, json: { invite: DEMO.open.code } });
    assertEnvelope(res, { status: 404, code: "not_found" });
    assert.equal(app.sim.calls(sid).length, 0);
  });
});

describe("a SESSION_BACKEND_URL that fails the backend.url rules", () => {
  for (const [what, url] of [
    ["http:// to a host that is not loopback", "http://example.com"],
    ["another scheme", "ftp://x"],
    ["a user name and password in it", "https://joingate:s3cret-in-url@backend.example"],
  ]) {
    test(`${what}: default-backend sessions answer 503 backend_url_invalid, others work`, async () => {
      const app = await startJoingate({ vars: { SESSION_BACKEND_URL: url } });
      try {
        const token = await app.token("acme", ["join", "read"]);
        const sid = await app.freshSession("default", { join: { per_minute: 1, burst: 1 } });
        for (let i = 0; i < 2; i++) {
          // Never sent: no token spent, so the second call is no 429.
          const res = await app.join(sid, token, { invite: DEMO.open.code });
          const body = assertEnvelope(res, { status: 503, code: "backend_unavailable" });
          assert.equal(body.error.details.reason, "backend_url_invalid");
        }
        const own = await app.kindSession("waha", "own");
        assertEnvelope(await app.join(own, token, { invite: DEMO.open.code }), { status: 200 });
        const said = app.logs.filter((l) => l.includes("SESSION_BACKEND_URL") && l.includes("backend_url_invalid"));
        assert.ok(said.length > 0, "it is logged");
        for (const line of app.logs) {
          assert.ok(!line.includes("s3cret-in-url") && !line.includes("example.com") && !line.includes("ftp://x"), line);
        }
      } finally {
        await app.close();
      }
    });
  }
});

describe("a credential without CREDENTIALS_KEY", () => {
  let app;
  before(async () => {
    app = await startJoingate({ vars: { CREDENTIALS_KEY: "" } });
  });
  after(() => app.close());

  test("is refused with a validation_error that says so; a backend without one is fine", async () => {
    const backend = app.backendFor("waha", "nokey");
    const res = await app.request("PUT", "/v1/admin/sessions/nokey", { token: ADMIN_TOKEN, json: { org: "acme", backend } });
    const body = assertEnvelope(res, { status: 400, code: "validation_error" });
    assert.equal(body.error.details.field, "backend.credential");
    assert.match(body.error.message, /CREDENTIALS_KEY/);
    assert.ok(!res.text.includes(backend.credential));
    const { credential, ...without } = backend;
    void credential;
    const ok = await app.request("PUT", "/v1/admin/sessions/nokey", { token: ADMIN_TOKEN, json: { org: "acme", backend: without } });
    assert.equal(assertEnvelope(ok, { status: 200 }).data.backend.has_credential, false);
  });
});
