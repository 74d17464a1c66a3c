// The simulator on its own (no Worker): the group book's open groups and the policy groups
// preview and join like `open` on every front end; invite codes are shared by every session
// (a reset through one revokes the old code for all), membership is not; the recorded calls
// tell a preview from a join and carry the invite code.
import { describe, test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { startSimulator, wuzapiToken, gowaAuthorization } from "../sim/simulator.mjs";
import { DEMO } from "../sim/catalogue.mjs";

const NEW_GROUPS = ["book1", "book2", "book3", "book4", "book5", "book6", "casino", "big"];
const LINK = (code) => `https://chat.whatsapp.com/${code}`;

describe("simulator world", () => {
  let sim;
  before(async () => {
    sim = await startSimulator({ port: 0 });
  });
  after(() => sim.close());
  beforeEach(() => sim.reset());

  async function call(method, path, { headers = {}, json } = {}) {
    const res = await fetch(`${sim.url}${path}`, {
      method,
      headers: { ...headers, ...(json === undefined ? {} : { "Content-Type": "application/json" }) },
      body: json === undefined ? undefined : JSON.stringify(json),
    });
    const text = await res.text();
    let body = text;
    try {
      body = JSON.parse(text);
    } catch {
      // a text answer (WAHA's revoke) stays a string
    }
    return { status: res.status, body };
  }

  /**
   * Per kind: preview(s, code) -> { group_jid, subject, size } read from the kind's own shape,
   * join(s, code) -> the answer. Each sends a link where the server takes one.
   */
  const KINDS = {
    joingate: {
      preview: async (s, code) => {
        const r = await call("GET", `/sessions/${s}/invites/${code}`);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        return { group_jid: r.body.group_jid, subject: r.body.subject, size: r.body.size, requires_approval: r.body.requires_approval };
      },
      join: (s, code) => call("POST", `/sessions/${s}/groups/join`, { json: { code } }),
      joined: (r, gjid) => r.status === 200 && r.body.status === "joined" && r.body.group_jid === gjid,
    },
    waha: {
      preview: async (s, code) => {
        const r = await call("GET", `/waha/api/${s}/groups/join-info?code=${encodeURIComponent(LINK(code))}`, { headers: { "X-Api-Key": "waha-key" } });
        assert.equal(r.status, 200, JSON.stringify(r.body));
        return { group_jid: r.body.id, subject: r.body.subject, size: r.body.size, requires_approval: r.body.joinApprovalMode };
      },
      join: (s, code) => call("POST", `/waha/api/${s}/groups/join`, { headers: { "X-Api-Key": "waha-key" }, json: { code: LINK(code) } }),
      joined: (r, gjid) => r.status === 201 && r.body.id === gjid,
    },
    evolution: {
      preview: async (s, code) => {
        const r = await call("GET", `/evolution/group/inviteInfo/${s}?inviteCode=${code}`, { headers: { apikey: "evolution-key" } });
        assert.equal(r.status, 200, JSON.stringify(r.body));
        return { group_jid: r.body.id, subject: r.body.subject, size: r.body.size, requires_approval: r.body.joinApprovalMode };
      },
      join: (s, code) => call("GET", `/evolution/group/acceptInviteCode/${s}?inviteCode=${code}`, { headers: { apikey: "evolution-key" } }),
      joined: (r, gjid) => r.status === 200 && r.body.accepted === true && r.body.groupJid === gjid,
    },
    wuzapi: {
      preview: async (s, code) => {
        const r = await call("POST", "/wuzapi/group/inviteinfo", { headers: { token: wuzapiToken(s) }, json: { Code: LINK(code) } });
        assert.equal(r.status, 200, JSON.stringify(r.body));
        const d = r.body.data;
        return { group_jid: d.JID, subject: d.Name, size: d.ParticipantCount, requires_approval: d.IsJoinApprovalRequired };
      },
      join: (s, code) => call("POST", "/wuzapi/group/join", { headers: { token: wuzapiToken(s) }, json: { Code: code } }),
      joined: (r) => r.status === 200 && r.body.success === true,
    },
    gowa: {
      preview: async (s, code) => {
        const r = await call("GET", `/gowa/group/info-from-link?link=${encodeURIComponent(LINK(code))}`, {
          headers: { Authorization: gowaAuthorization(), "X-Device-Id": s },
        });
        assert.equal(r.status, 200, JSON.stringify(r.body));
        const d = r.body.results;
        return { group_jid: d.group_id, subject: d.name, size: d.participant_count, requires_approval: false };
      },
      join: (s, code) =>
        call("POST", "/gowa/group/join-with-link", { headers: { Authorization: gowaAuthorization(), "X-Device-Id": s }, json: { link: LINK(code) } }),
      joined: (r, gjid) => r.status === 200 && r.body.results?.group_id === gjid,
    },
  };

  test("the catalogue's new groups are open, distinct and ordinary", () => {
    const codes = new Set();
    const jids = new Set();
    for (const name of NEW_GROUPS) {
      const g = DEMO[name];
      assert.match(g.code, /^[A-Za-z0-9]{22}$/, name);
      assert.equal(g.requires_approval, false, name);
      assert.equal(g.role, "none", name);
      assert.equal(g.join_error, undefined, name);
      codes.add(g.code);
      jids.add(g.group_jid);
      if (name.startsWith("book")) {
        assert.ok(g.size < 500, name);
        assert.ok(!/casino|crypto/i.test(g.subject), name);
      }
    }
    assert.equal(codes.size, NEW_GROUPS.length);
    assert.equal(jids.size, NEW_GROUPS.length);
    assert.equal(DEMO.casino.subject, "Lucky CASINO Night");
    assert.equal(DEMO.casino.size, 40);
    assert.equal(DEMO.big.subject, "Big Community");
    assert.equal(DEMO.big.size, 5000);
  });

  for (const [kind, k] of Object.entries(KINDS)) {
    test(`${kind}: the new groups preview and join like open`, async () => {
      const s = `world-${kind}`;
      for (const name of [...NEW_GROUPS, "open"]) {
        const g = DEMO[name];
        const p = await k.preview(s, g.code);
        assert.deepEqual(p, { group_jid: g.group_jid, subject: g.subject, size: g.size, requires_approval: false }, `${kind} ${name}`);
        const r = await k.join(s, g.code);
        assert.ok(k.joined(r, g.group_jid), `${kind} ${name}: ${r.status} ${JSON.stringify(r.body)}`);
        const state = sim.sessionState(s).groups.find((x) => x.group_jid === g.group_jid);
        assert.equal(state.role, "member", `${kind} ${name}`);
        assert.equal(state.size, g.size + 1, `${kind} ${name}`);
      }
    });
  }

  test("the calls log tells a preview from a join, with the invite code, on every kind", async () => {
    for (const [kind, k] of Object.entries(KINDS)) {
      const s = `calls-${kind}`;
      await k.preview(s, DEMO.book1.code);
      await k.join(s, DEMO.book1.code);
      const calls = sim.calls(s).map((c) => ({ kind: c.kind, route: c.route, code: c.code }));
      assert.deepEqual(
        calls,
        [
          { kind, route: "invite_preview", code: DEMO.book1.code },
          { kind, route: "join", code: DEMO.book1.code },
        ],
        kind,
      );
    }
    // Other routes carry no code; an invite message's code is recorded too.
    await call("POST", `/sessions/calls-msg/groups/${DEMO.book1.group_jid}/leave`);
    await call("POST", "/sessions/calls-msg/groups/join-by-message", {
      json: { code: "AbCdEfGh12345678", group_jid: DEMO.book2.group_jid, inviter_jid: "15550009000@s.whatsapp.net" },
    });
    const [leave, byMessage] = sim.calls("calls-msg");
    assert.equal(leave.route, "leave");
    assert.equal(leave.code, null);
    assert.equal(byMessage.route, "join_by_message");
    assert.equal(byMessage.code, "AbCdEfGh12345678");
    // The same over HTTP.
    const r = await call("GET", "/__sim/calls?session=calls-waha");
    assert.deepEqual(r.body.calls.map((c) => [c.route, c.code]), [["invite_preview", DEMO.book1.code], ["join", DEMO.book1.code]]);
  });

  test("an invite reset is global: the old code is revoked and the new one opens the group for every session", async () => {
    const before = "shared-before";
    await KINDS.joingate.preview(before, DEMO.admin.code); // this world exists before the reset
    const reset = await call("POST", `/sessions/shared-a/groups/${DEMO.admin.group_jid}/invite/reset`);
    assert.equal(reset.status, 200);
    const fresh = reset.body.invite_code;
    assert.match(fresh, /^[A-Za-z0-9]{22}$/);
    for (const s of ["shared-a", before, "shared-after"]) {
      const old = await call("GET", `/sessions/${s}/invites/${DEMO.admin.code}`);
      assert.equal(old.status, 410, s);
      assert.equal(old.body.error.wa_code, 410, s);
      assert.equal((await KINDS.joingate.preview(s, fresh)).group_jid, DEMO.admin.group_jid, s);
      assert.equal(sim.sessionState(s).groups.find((g) => g.group_jid === DEMO.admin.group_jid).invite_code, fresh, s);
    }
    // Through another kind too (WAHA NOWEB: a revoked code is Boom's `gone`).
    const waha = await call("POST", "/waha/api/shared-w/groups/join", { headers: { "X-Api-Key": "waha-key" }, json: { code: DEMO.admin.code } });
    assert.equal(waha.status, 500);
    assert.equal(waha.body.exception.data, 410);
    // A second reset, from another session, revokes the first new code for everyone.
    const again = await call("POST", `/sessions/${before}/groups/${DEMO.admin.group_jid}/invite/reset`);
    assert.equal(again.status, 200);
    assert.notEqual(again.body.invite_code, fresh);
    assert.equal((await call("GET", `/sessions/shared-a/invites/${fresh}`)).status, 410);
    assert.deepEqual((await call("GET", `/__sim/invite?group_jid=${DEMO.admin.group_jid}`)).body, {
      group_jid: DEMO.admin.group_jid,
      invite_code: again.body.invite_code,
    });
    // /__sim/reset brings the catalogue's codes back.
    sim.reset();
    assert.equal((await KINDS.joingate.preview("shared-a", DEMO.admin.code)).group_jid, DEMO.admin.group_jid);
  });

  test("membership stays per session: a reset or a join in one session changes no other", async () => {
    const a = "member-a";
    const b = "member-b";
    const code = (await call("POST", `/sessions/${a}/groups/${DEMO.admin.group_jid}/invite/reset`)).body.invite_code;
    // b is still admin of its own copy and a member nowhere new.
    assert.equal(sim.sessionState(b).groups.find((g) => g.group_jid === DEMO.admin.group_jid).role, "admin");
    // b joins a book group with a's knowledge of nothing: a stays outside.
    assert.ok(KINDS.joingate.joined(await KINDS.joingate.join(b, DEMO.book1.code), DEMO.book1.group_jid));
    assert.equal(sim.sessionState(a).groups.find((g) => g.group_jid === DEMO.book1.group_jid).role, "none");
    assert.equal(sim.sessionState(a).groups.find((g) => g.group_jid === DEMO.book1.group_jid).size, DEMO.book1.size);
    // The new admin code works in b as the old one did (already_member for an admin).
    const r = await KINDS.joingate.join(b, code);
    assert.deepEqual(r.body, { group_jid: DEMO.admin.group_jid, status: "already_member" });
  });

  test("the control API: GET /__sim/invite and POST /__sim/invite/reset (the owner resets the link)", async () => {
    assert.deepEqual((await call("GET", `/__sim/invite?group_jid=${DEMO.book3.group_jid}&session=any`)).body, {
      group_jid: DEMO.book3.group_jid,
      invite_code: DEMO.book3.code,
    });
    const member = "owner-reset";
    assert.ok(KINDS.joingate.joined(await KINDS.joingate.join(member, DEMO.book3.code), DEMO.book3.group_jid));
    const r = await call("POST", "/__sim/invite/reset", { json: { group_jid: DEMO.book3.group_jid } });
    assert.equal(r.status, 200);
    assert.equal(r.body.ok, true);
    assert.match(r.body.invite_code, /^[A-Za-z0-9]{22}$/);
    assert.equal((await call("GET", `/sessions/other/invites/${DEMO.book3.code}`)).status, 410);
    assert.ok(KINDS.joingate.joined(await KINDS.joingate.join("other", r.body.invite_code), DEMO.book3.group_jid));
    // The member stays a member.
    assert.equal(sim.sessionState(member).groups.find((g) => g.group_jid === DEMO.book3.group_jid).role, "member");
    assert.deepEqual(sim.currentInvite(DEMO.book3.group_jid), { group_jid: DEMO.book3.group_jid, invite_code: r.body.invite_code });
    // Bad input and unknown groups.
    assert.equal((await call("GET", "/__sim/invite")).status, 400);
    assert.equal((await call("GET", "/__sim/invite?group_jid=nope")).status, 400);
    assert.equal((await call("GET", `/__sim/invite?group_jid=${DEMO.notFound.group_jid}`)).status, 404);
    assert.equal((await call("POST", "/__sim/invite/reset", { json: { group_jid: "999@g.us" } })).status, 404);
  });
});
