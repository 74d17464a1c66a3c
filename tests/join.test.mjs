// The join route end to end: every WhatsApp outcome, both body forms, every bad input
// (answered at the edge, never reaching the backend) and every backend fault.
import { describe, test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { startJoingate, assertEnvelope, eventually, BACKEND_FAULTS } from "./helpers.mjs";
import { DEMO } from "../sim/catalogue.mjs";

const UNLIMITED = { join: { per_minute: 6000, burst: 1000 }, read: { per_minute: 6000, burst: 1000 } };

describe("join", () => {
  let app;
  let token;

  before(async () => {
    app = await startJoingate();
    token = await app.token("acme", ["join", "read"]);
  });
  after(() => app.close());
  beforeEach(() => app.sim.reset());

  const freshSession = () => app.freshSession("join", UNLIMITED);

  test("every WhatsApp outcome maps to its contract code", async () => {
    const cases = [
      ["open", 200, null, "joined"],
      ["approval", 200, null, "pending_approval"],
      ["member", 200, null, "already_member"],
      ["revoked", 410, "invite_revoked", 410],
      ["invalid", 400, "invite_invalid", 406],
      ["full", 409, "group_full", 419],
      ["communityFull", 409, "group_full", 412],
      ["removed", 403, "join_not_allowed", 403],
      ["notAllowed", 403, "join_not_allowed", 401],
      ["notFound", 404, "group_not_found", 404],
      ["rateLimited", 429, "upstream_rate_limited", 429],
    ];
    for (const [name, status, code, expected] of cases) {
      const sid = await freshSession();
      const res = await app.join(sid, token, { invite: `https://chat.whatsapp.com/${DEMO[name].code}?mode=ems_copy_t` });
      const body = assertEnvelope(res, { status, code: code ?? undefined });
      if (code) {
        assert.equal(body.error.details.wa_code, expected, name);
      } else {
        assert.deepEqual(body.data, { group_jid: DEMO[name].group_jid, status: expected }, name);
      }
    }
  });

  test("WhatsApp rate-overlimit passes the backend's Retry-After on", async () => {
    const res = await app.join(await freshSession(), token, { invite: DEMO.rateLimited.code });
    assertEnvelope(res, { status: 429, code: "upstream_rate_limited" });
    assert.equal(res.headers.get("retry-after"), "30");
  });

  test("a second join of an open group is already_member", async () => {
    const sid = await freshSession();
    assert.equal((await app.join(sid, token, { invite: DEMO.open.code })).body.data.status, "joined");
    assert.equal((await app.join(sid, token, { invite: DEMO.open.code })).body.data.status, "already_member");
  });

  test("every invite form reaches the backend as the bare code", async () => {
    const code = DEMO.open.code;
    const forms = [
      code,
      `${code}/`,
      `  https://chat.whatsapp.com/${code}  `,
      `http://CHAT.WhatsApp.com/invite/${code}/#x`,
      `chat.whatsapp.com/${code}`,
      `https://web.whatsapp.com/accept?code=${code}`,
      `whatsapp://chat?code=${code}`,
    ];
    const sid = await freshSession();
    for (const invite of forms) {
      assertEnvelope(await app.join(sid, token, { invite }), { status: 200 });
    }
    const bodies = app.sim.calls(sid).map((c) => c.body);
    assert.deepEqual(bodies, forms.map(() => ({ code })));
  });

  test("an invite message joins through join-by-message", async () => {
    const sid = await freshSession();
    const message = {
      code: DEMO.approval.code,
      group_jid: DEMO.approval.group_jid,
      inviter_jid: "15551234567@s.whatsapp.net",
      expiration: Math.floor(Date.now() / 1000) + 3600,
    };
    const res = await app.join(sid, token, message);
    assert.deepEqual(assertEnvelope(res, { status: 200 }).data, { group_jid: DEMO.approval.group_jid, status: "pending_approval" });
    const [call] = app.sim.calls(sid);
    assert.equal(call.path, `/sessions/${sid}/groups/join-by-message`);
    assert.deepEqual(call.body, message);
    assert.equal(call.authorized, true, "SESSION_BACKEND_TOKEN is sent");
    assert.equal(call.request_id, res.headers.get("x-request-id"), "X-Request-Id is forwarded");
  });

  test("a whole-number expiration written as a float is accepted", async () => {
    const sid = await freshSession();
    const body = `{"code":"${DEMO.open.code}","group_jid":"${DEMO.open.group_jid}","inviter_jid":"15551234567@s.whatsapp.net","expiration":4102444800.0}`;
    const res = await app.request("POST", `/v1/sessions/${sid}/groups/join`, { token, body, headers: { "Content-Type": "application/json" } });
    assert.equal(assertEnvelope(res, { status: 200 }).data.status, "joined");
    assert.equal(app.sim.calls(sid)[0].body.expiration, 4102444800);
  });

  test("a client X-Request-Id reaches the backend", async () => {
    const sid = await freshSession();
    const res = await app.join(sid, token, { invite: DEMO.open.code }, { "X-Request-Id": "client-id.42:x" });
    assert.equal(assertEnvelope(res, { status: 200 }).request_id, "client-id.42:x");
    assert.equal(app.sim.calls(sid)[0].request_id, "client-id.42:x");
  });

  describe("bad input is answered at the edge and never reaches the backend", () => {
    const now = () => Math.floor(Date.now() / 1000);
    const message = (extra) => ({ code: "Xy12ab", group_jid: DEMO.open.group_jid, inviter_jid: "15551234567@s.whatsapp.net", ...extra });
    const cases = [
      ["no content type", { body: JSON.stringify({ invite: DEMO.open.code }) }, 415, "unsupported_media_type"],
      ["text/plain", { body: "{}", headers: { "Content-Type": "text/plain" } }, 415, "unsupported_media_type"],
      ["form encoded", { body: "invite=x", headers: { "Content-Type": "application/x-www-form-urlencoded" } }, 415, "unsupported_media_type"],
      ["invalid JSON", { body: "{invite:", headers: { "Content-Type": "application/json" } }, 400, "validation_error", "body"],
      ["empty body", { body: "", headers: { "Content-Type": "application/json" } }, 400, "validation_error", "body"],
      ["JSON array", { json: [DEMO.open.code] }, 400, "validation_error", "body"],
      ["JSON string", { json: DEMO.open.code }, 400, "validation_error", "body"],
      ["empty object", { json: {} }, 400, "validation_error", "invite"],
      ["invite not a string", { json: { invite: 42 } }, 400, "validation_error", "invite"],
      ["invite null", { json: { invite: null } }, 400, "validation_error", "invite"],
      ["invite empty", { json: { invite: "" } }, 400, "invite_malformed", "invite"],
      ["invite look-alike host", { json: { invite: `https://chat.whatsapp.com.evil.example/${DEMO.open.code}` } }, 400, "invite_malformed", "invite"],
      ["invite with port", { json: { invite: `https://chat.whatsapp.com:443/${DEMO.open.code}` } }, 400, "invite_malformed", "invite"],
      ["invite with userinfo", { json: { invite: `https://u@chat.whatsapp.com/${DEMO.open.code}` } }, 400, "invite_malformed", "invite"],
      ["invite too short", { json: { invite: "abc" } }, 400, "invite_malformed", "invite"],
      ["both body forms", { json: { invite: DEMO.open.code, ...message() } }, 400, "validation_error", "code"],
      ["unknown field", { json: { invite: DEMO.open.code, force: true } }, 400, "validation_error", "force"],
      ["message without inviter", { json: { code: "Xy", group_jid: DEMO.open.group_jid } }, 400, "validation_error", "inviter_jid"],
      ["message bad group JID", { json: message({ group_jid: "12345@s.whatsapp.net" }) }, 400, "validation_error", "group_jid"],
      ["message bad inviter JID", { json: message({ inviter_jid: "+1555@s.whatsapp.net" }) }, 400, "validation_error", "inviter_jid"],
      ["message code with space", { json: message({ code: "has space" }) }, 400, "validation_error", "code"],
      ["message code too long", { json: message({ code: "x".repeat(65) }) }, 400, "validation_error", "code"],
      ["message expiration string", { json: message({ expiration: "tomorrow" }) }, 400, "validation_error", "expiration"],
      ["expired invite message", { json: message({ expiration: now() - 60 }) }, 410, "invite_expired", "expiration"],
      ["20 KiB body", { json: { invite: DEMO.open.code, pad: "x".repeat(20 * 1024) } }, 413, "payload_too_large"],
    ];
    for (const [name, init, status, code, field] of cases) {
      test(name, async () => {
        const sid = await freshSession();
        const res = await app.request("POST", `/v1/sessions/${sid}/groups/join`, { token, ...init });
        const body = assertEnvelope(res, { status, code });
        if (field) assert.equal(body.error.details.field, field);
        assert.deepEqual(app.sim.calls(sid), [], "backend not called");
      });
    }

    test("a bad session id names the field", async () => {
      for (const sid of ["has.dot", "x".repeat(65), "%zz", "a%2Fb"]) {
        const res = await app.join(sid, token, { invite: DEMO.open.code });
        assert.equal(assertEnvelope(res, { status: 400, code: "validation_error" }).error.details.field, "sid", sid);
      }
      assert.equal(app.sim.stats().total, 0);
    });

    test("a chunked body over 16 KiB without Content-Length is refused", async () => {
      const sid = await freshSession();
      const chunks = new ReadableStream({
        start(controller) {
          for (let i = 0; i < 20; i++) controller.enqueue(new TextEncoder().encode("x".repeat(1024)));
          controller.close();
        },
      });
      const res = await app.mf.dispatchFetch(`http://joingate.test/v1/sessions/${sid}/groups/join`, {
        method: "POST",
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body: chunks,
        duplex: "half",
      });
      assert.equal(res.status, 413);
      assert.equal((await res.json()).error.code, "payload_too_large");
      assert.deepEqual(app.sim.calls(sid), []);
    });
  });

  describe("backend faults get their documented error and the session keeps working", () => {
    const faults = [...BACKEND_FAULTS, ["bad_shape", 502, "backend_error"]];
    for (const [mode, status, code] of faults) {
      test(mode, async () => {
        const sid = await freshSession();
        app.sim.setFault({ session: sid, mode, count: 1 });
        assertEnvelope(await app.join(sid, token, { invite: DEMO.open.code }), { status, code });
        const after = await app.join(sid, token, { invite: DEMO.open.code });
        assert.equal(assertEnvelope(after, { status: 200 }).data.status, "joined");
      });
    }

    test("an unmapped WhatsApp code is backend_error with wa_code", async () => {
      const sid = await freshSession();
      app.sim.setFault({ session: sid, mode: "whatsapp", wa_code: 999, count: 1 });
      const body = assertEnvelope(await app.join(sid, token, { invite: DEMO.open.code }), { status: 502, code: "backend_error" });
      assert.equal(body.error.details.wa_code, 999);
    });

    test("a disconnected or unknown session is session_not_connected", async () => {
      for (const sid of ["offline-1", "ghost-1"]) {
        await app.session(sid, "acme", UNLIMITED);
        assertEnvelope(await app.join(sid, token, { invite: DEMO.open.code }), { status: 409, code: "session_not_connected" });
      }
    });

    test("a timed-out call is aborted and the queue moves on", async () => {
      const sid = await freshSession();
      app.sim.setFault({ session: sid, mode: "hang", count: 1 });
      const [slow, next] = await Promise.all([
        app.join(sid, token, { invite: DEMO.open.code }),
        // Sent once the first hangs at the backend, so that the fault is surely the first's.
        eventually(() => app.sim.calls(sid).length === 1, "the first call at the backend").then(() =>
          app.join(sid, token, { invite: DEMO.member.code }),
        ),
      ]);
      assertEnvelope(slow, { status: 504, code: "backend_timeout" });
      assert.equal(assertEnvelope(next, { status: 200 }).data.status, "already_member");
      const [hung, served] = app.sim.calls(sid);
      assert.equal(hung.client_aborted, true, "the deadline aborted the backend request");
      assert.ok(served.started_at >= hung.finished_at, "the next call started after the aborted one ended");
    });
  });
});

describe("join with the backend down", () => {
  let app;
  before(async () => {
    // Port 9 (discard) is closed on this machine: the connection is refused.
    app = await startJoingate({ vars: { SESSION_BACKEND_URL: "http://127.0.0.1:9" } });
  });
  after(() => app.close());

  test("connection refused is backend_unavailable with Retry-After, and the token is refunded", async () => {
    await app.session("down-1", "acme", { join: { per_minute: 1, burst: 1 } });
    const token = await app.token("acme", ["join"]);
    for (let i = 0; i < 3; i++) {
      // With burst 1, a spent token would make the second try a 429: refunds keep it 503.
      const res = await app.join("down-1", token, { invite: DEMO.open.code });
      assertEnvelope(res, { status: 503, code: "backend_unavailable" });
    }
  });
});
