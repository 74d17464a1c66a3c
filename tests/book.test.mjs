// The group book and recovery onto another number (contract section 15), end to end: what
// a join, a pending request and a leave write into the org's book, its listing (paging,
// newest first, allow-lists, tenancy, capabilities), that the kept invite code never leaves
// joingate, and a join job built from the book of another session ("from_session"), on
// every kind, with the skips, the errors, an invite reset in between and a deleted session.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startJoingate, assertEnvelope, assertInvalid, eventually, sleep, BASE, KINDS, backendOps, fixture, FAST_LIMITS } from "./helpers.mjs";
import { DEMO } from "../sim/catalogue.mjs";

const FAST = FAST_LIMITS;
// Job items one to two seconds apart.
const VARS = { JOB_MIN_INTERVAL_S: "1" };
const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;
const ENTRY_KEYS = new Set(["group_jid", "subject", "sessions", "invite_known", "updated_at"]);
const INVITER = "15551234567@s.whatsapp.net";

/** Checks one book entry against the contract's shape; returns it. */
function assertEntry(entry) {
  for (const key of Object.keys(entry)) assert.ok(ENTRY_KEYS.has(key), `unexpected field ${key} in ${JSON.stringify(entry)}`);
  assert.match(entry.group_jid, /^\d+(-\d+)?@g\.us$/);
  assert.equal(typeof entry.invite_known, "boolean");
  assert.match(entry.updated_at, RFC3339);
  if ("subject" in entry) assert.equal(typeof entry.subject, "string");
  assert.ok(Array.isArray(entry.sessions) && entry.sessions.length > 0, "an entry names its sessions");
  for (const s of entry.sessions) {
    assert.deepEqual(Object.keys(s).sort(), ["session_id", "since", "state"]);
    assert.ok(["member", "pending", "left", "removed"].includes(s.state), s.state);
    assert.match(s.since, RFC3339);
  }
  return entry;
}

const stateOf = (entry, sid) => entry?.sessions.find((s) => s.session_id === sid)?.state;
const finished = (job) => job.status === "completed" || job.status === "cancelled";

let orgCount = 0;
/**
 * A new org of its own (the book is per org, so tests never see each other's entries),
 * with a token of every capability and helpers bound to it.
 */
async function newOrg(app, prefix) {
  orgCount += 1;
  const org = `${prefix}-${orgCount}`;
  const token = await app.token(org, ["join", "read", "manage"]);
  const o = {
    org,
    token,
    /** Registers session `${org}-${name}` of `kind` (the default backend for joingate). */
    async register(name, kind = "joingate") {
      const sid = `${org}-${name}`;
      const body = { org, limits: FAST, ...(kind === "joingate" ? {} : { backend: app.backendFor(kind, sid) }) };
      assertEnvelope(await app.admin("PUT", `/v1/admin/sessions/${sid}`, body), { status: 200 });
      return sid;
    },
    join: (sid, json, tok = token) => app.join(sid, tok, json),
    async joined(sid, entry, status = "joined") {
      const res = await app.join(sid, token, { invite: entry.code });
      assert.equal(assertEnvelope(res, { status: 200 }).data.status, status, res.text);
      return res;
    },
    list: (query = "", tok = token) => app.request("GET", `/v1/groups${query}`, { token: tok }),
    get: (gjid, tok = token) => app.request("GET", `/v1/groups/${gjid}`, { token: tok }),
    submit: (sid, json, tok = token) => app.request("POST", `/v1/sessions/${sid}/join-jobs`, { token: tok, json }),
    /** Waits until the book's entry for `gjid` shows `sid` in `state`; returns the entry. */
    waitState: (gjid, sid, state) =>
      eventually(async () => {
        const res = await app.request("GET", `/v1/groups/${gjid}`, { token });
        return res.status === 200 && stateOf(res.body.data, sid) === state && res.body.data;
      }, `${sid} ${state} in ${gjid}`),
    async waitJob(sid, jobId, done = finished, timeoutMs = 40_000) {
      let job;
      await eventually(async () => {
        job = assertEnvelope(await app.request("GET", `/v1/sessions/${sid}/join-jobs/${jobId}`, { token }), { status: 200 }).data;
        return done(job);
      }, `job ${jobId} done`, timeoutMs);
      return job;
    },
  };
  return o;
}

describe("the group book", () => {
  let app;
  before(async () => {
    app = await startJoingate({ orgLimit: 100_000, vars: VARS });
  });
  after(() => app.close());

  test("a join, a pending request and a leave through joingate write the book; the code is never shown", async () => {
    const book1 = fixture("book1");
    const o = await newOrg(app, "entry");
    const a = await o.register("A");
    const before = Date.now();
    await o.joined(a, book1);
    const entry = assertEntry(await o.waitState(book1.group_jid, a, "member"));
    assert.equal(entry.group_jid, book1.group_jid);
    assert.equal(entry.invite_known, true, "the code that joined is kept (sealed)");
    assert.equal(entry.sessions.length, 1);
    const since = Date.parse(entry.sessions[0].since);
    assert.ok(since >= before - 2000 && since <= Date.now() + 2000, `since ${entry.sessions[0].since}`);
    assert.ok(Date.parse(entry.updated_at) >= since - 1000);
    if ("subject" in entry) assert.equal(entry.subject, book1.subject);

    const list = await o.list();
    const listed = assertEnvelope(list, { status: 200 }).data;
    assert.deepEqual(listed.groups, [entry]);
    assert.equal("next_cursor" in listed, false);
    const one = await o.get(book1.group_jid);
    assert.deepEqual(assertEnvelope(one, { status: 200 }).data, entry);

    // A pending request shows "pending".
    await o.joined(a, DEMO.approval, "pending_approval");
    const pending = assertEntry(await o.waitState(DEMO.approval.group_jid, a, "pending"));
    assert.deepEqual(pending.sessions.map((s) => s.session_id), [a]);

    // A leave through joingate shows "left", since the leave.
    const leave = await app.request("POST", `/v1/sessions/${a}/groups/${book1.group_jid}/leave`, { token: o.token });
    assert.equal(assertEnvelope(leave, { status: 200 }).data.status, "left");
    const left = assertEntry(await o.waitState(book1.group_jid, a, "left"));
    assert.ok(Date.parse(left.sessions[0].since) >= since, "since moves to the leave");
    assert.ok(Date.parse(left.updated_at) >= Date.parse(entry.updated_at));
    const all = await o.list();
    assert.deepEqual(assertEnvelope(all, { status: 200 }).data.groups.map((g) => g.group_jid).sort(), [book1.group_jid, DEMO.approval.group_jid].sort());

    // No answer holds the code, nor does any log line.
    for (const res of [list, one, all, await o.get(book1.group_jid), await o.list(`?session=${a}`)]) {
      assert.ok(!res.text.includes(book1.code), `the code in ${res.text}`);
      assert.ok(!res.text.includes(DEMO.approval.code), `the code in ${res.text}`);
    }
    assert.ok(!app.logs.some((l) => l.includes(book1.code)), "no code in the logs");

    // An unknown group is not_found; a malformed one is a validation_error naming gjid.
    assertEnvelope(await o.get(fixture("book6").group_jid), { status: 404, code: "not_found" });
    assertEnvelope(await o.get("120363999999999999@g.us"), { status: 404, code: "not_found" });
    for (const bad of ["not-a-jid", "123@s.whatsapp.net", "12a@g.us"]) {
      assertInvalid(await o.get(bad), "gjid");
    }
  });

  test("paging: newest first, limit and cursor, no duplicates; bad limit or cursor is a validation_error", async () => {
    const o = await newOrg(app, "paging");
    const a = await o.register("A");
    const books = [1, 2, 3, 4, 5].map((n) => fixture(`book${n}`));
    for (const [i, entry] of books.entries()) {
      // Apart by more than a second, so that updated_at orders them whatever its precision.
      if (i > 0) await sleep(1100);
      await o.joined(a, entry);
      await o.waitState(entry.group_jid, a, "member");
    }
    const newestFirst = books.map((b) => b.group_jid).reverse();

    const whole = assertEnvelope(await o.list(), { status: 200 }).data;
    assert.deepEqual(whole.groups.map((g) => g.group_jid), newestFirst);
    assert.equal("next_cursor" in whole, false, "all of them fit the default limit (50)");
    whole.groups.forEach(assertEntry);
    for (let i = 1; i < whole.groups.length; i++) {
      assert.ok(Date.parse(whole.groups[i - 1].updated_at) >= Date.parse(whole.groups[i].updated_at), "newest first by updated_at");
    }

    const seen = [];
    let cursor;
    const sizes = [];
    for (let page = 0; page < 5; page++) {
      const res = await o.list(`?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
      const data = assertEnvelope(res, { status: 200 }).data;
      sizes.push(data.groups.length);
      seen.push(...data.groups.map((g) => g.group_jid));
      cursor = data.next_cursor;
      if (cursor === undefined) break;
      assert.equal(typeof cursor, "string");
    }
    assert.deepEqual(sizes, [2, 2, 1]);
    assert.deepEqual(seen, newestFirst, "the pages, in order, without duplicates");
    const capped = assertEnvelope(await o.list("?limit=200"), { status: 200 }).data;
    assert.equal(capped.groups.length, 5);
    const single = assertEnvelope(await o.list("?limit=1"), { status: 200 }).data;
    assert.deepEqual(single.groups.map((g) => g.group_jid), [newestFirst[0]]);
    assert.ok(single.next_cursor);

    for (const limit of ["0", "201", "abc", "1.5", "-1"]) {
      assertInvalid(await o.list(`?limit=${limit}`), "limit");
    }
    for (const bad of ["garbage", "not-a-cursor!", "%7B%7D"]) {
      assertInvalid(await o.list(`?cursor=${bad}`), "cursor");
    }
  });

  test("the book holds at most 10,000 groups: those no session is in go first, then the oldest", async () => {
    const o = await newOrg(app, "bound");
    const sid = `${o.org}-A`;
    // Facts handed to the org's object as a session's events hand them (no backend could
    // join 10,000 groups in a test), in order of their time.
    const ns = await app.mf.getDurableObjectNamespace("ORGS");
    const stub = ns.get(ns.idFromName(o.org));
    const gjid = (n) => `120363${String(n).padStart(12, "0")}@g.us`;
    const base = Date.now() - 3_600_000;
    const hand = async (updates) => {
      for (let i = 0; i < updates.length; i += 1000) {
        const res = await stub.fetch(`https://org/${o.org}`, { method: "POST", body: JSON.stringify({ type: "book", book: updates.slice(i, i + 1000) }) });
        assert.equal(res.status, 200, await res.text());
      }
    };
    const fact = (n, change, at_ms) => ({ group_jid: gjid(n), session: sid, change, at_ms });
    // Five groups the session joined and left (no member), newer than every other entry.
    const left = [0, 1, 2, 3, 4].map((i) => 20_000 + i);
    await hand(left.flatMap((n) => [fact(n, "member", base + n), fact(n, "left", base + n + 10)]));
    // 10,000 groups it is in, the oldest first.
    await hand(Array.from({ length: 10_000 }, (_, n) => fact(n, "member", base + n)));
    for (const n of left) assertEnvelope(await o.get(gjid(n)), { status: 404, code: "not_found" });
    assertEnvelope(await o.get(gjid(0)), { status: 200 });
    // One more: the oldest group it is in goes.
    await hand([fact(30_000, "member", base + 30_000)]);
    assertEnvelope(await o.get(gjid(0)), { status: 404, code: "not_found" });
    for (const n of [1, 9_999, 30_000]) assertEnvelope(await o.get(gjid(n)), { status: 200 });
    // The whole book, page by page: exactly 10,000.
    let count = 0;
    let cursor;
    do {
      const data = assertEnvelope(await o.list(`?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`), { status: 200 }).data;
      count += data.groups.length;
      cursor = data.next_cursor;
    } while (cursor);
    assert.equal(count, 10_000);
  });

  test("allow-lists, other orgs, bearer and capability", async () => {
    const [book1, book2, book3] = [1, 2, 3].map((n) => fixture(`book${n}`));
    const o = await newOrg(app, "tenancy");
    const a = await o.register("A");
    const b = await o.register("B");
    await o.joined(a, book1);
    await o.joined(b, book2);
    await o.joined(a, book3);
    await o.joined(b, book3);
    await o.waitState(book1.group_jid, a, "member");
    await o.waitState(book2.group_jid, b, "member");
    await o.waitState(book3.group_jid, a, "member");
    await o.waitState(book3.group_jid, b, "member");

    // The org's token sees everything; ?session= filters.
    const full = assertEnvelope(await o.list(), { status: 200 }).data.groups;
    assert.deepEqual(full.map((g) => g.group_jid).sort(), [book1.group_jid, book2.group_jid, book3.group_jid].sort());
    const both = full.find((g) => g.group_jid === book3.group_jid);
    assert.deepEqual(both.sessions.map((s) => s.session_id).sort(), [a, b].sort());
    const onlyB = assertEnvelope(await o.list(`?session=${b}`), { status: 200 }).data.groups;
    assert.deepEqual(onlyB.map((g) => g.group_jid).sort(), [book2.group_jid, book3.group_jid].sort());

    // A token allow-listed to A sees only entries naming A, and only A in them.
    const limited = await app.token(o.org, ["join", "read"], { sessions: [a] });
    const seen = assertEnvelope(await o.list("", limited), { status: 200 }).data.groups;
    assert.deepEqual(seen.map((g) => g.group_jid).sort(), [book1.group_jid, book3.group_jid].sort());
    for (const entry of seen) assert.deepEqual(entry.sessions.map((s) => s.session_id), [a], JSON.stringify(entry));
    const shared = assertEnvelope(await o.get(book3.group_jid, limited), { status: 200 }).data;
    assert.deepEqual(shared.sessions.map((s) => s.session_id), [a]);
    assertEnvelope(await o.get(book2.group_jid, limited), { status: 404, code: "not_found" });
    assertEnvelope(await o.list(`?session=${b}`, limited), { status: 404, code: "not_found" });
    const own = assertEnvelope(await o.list(`?session=${a}`, limited), { status: 200 }).data.groups;
    assert.deepEqual(own.map((g) => g.group_jid).sort(), [book1.group_jid, book3.group_jid].sort());

    // Another org's token sees nothing of this org.
    const other = await app.token(`${o.org}-other`, ["join", "read", "manage"]);
    const nothing = assertEnvelope(await o.list("", other), { status: 200 }).data;
    assert.deepEqual(nothing.groups, []);
    assert.equal("next_cursor" in nothing, false);
    for (const entry of [book1, book2, book3]) {
      assertEnvelope(await o.get(entry.group_jid, other), { status: 404, code: "not_found" });
    }
    assertEnvelope(await o.list(`?session=${a}`, other), { status: 404, code: "not_found" });

    // Bearer and capability.
    for (const path of ["/v1/groups", `/v1/groups/${book1.group_jid}`]) {
      assertEnvelope(await app.request("GET", path), { status: 401, code: "unauthorized" });
      assertEnvelope(await app.request("GET", path, { token: "jg_live_not_a_real_token" }), { status: 401, code: "unauthorized" });
      for (const caps of [["join"], ["manage"], ["join", "manage"]]) {
        const without = await app.token(o.org, caps);
        assertEnvelope(await app.request("GET", path, { token: without }), { status: 403, code: "forbidden" });
      }
      const reader = await app.token(o.org, ["read"]);
      assertEnvelope(await app.request("GET", path, { token: reader }), { status: 200 });
    }
  });
});

describe("the group book follows section 14's facts", () => {
  let app;
  before(async () => {
    // A request expires 4 s after it was made; its checks come at 1 s and 2 s.
    // Served: the simulator sends the server's events to the session's hook.
    app = await startJoingate({ orgLimit: 100_000, serve: true, vars: { ...VARS, MEMBERSHIP_CHECKS_S: "1,2", PENDING_TTL_S: "4" } });
  });
  after(() => app.close());

  const control = (action, body) =>
    fetch(`${app.sim.url}/__sim/${action}`, { method: "POST", body: JSON.stringify(body) }).then((res) => {
      assert.equal(res.status, 200, `the simulator's ${action}`);
    });

  test("an approval makes the pending seat a member, a removal by the group's admin removed, an expiry drops the seat", async () => {
    const o = await newOrg(app, "facts");
    const a = await o.register("A");
    const b = await o.register("B");
    const approval = DEMO.approval;
    await o.joined(a, approval, "pending_approval");
    await o.joined(b, approval, "pending_approval");
    await o.waitState(approval.group_jid, a, "pending");
    // An admin approves A: the alarm's check sees it, and the book follows.
    await control("approve", { session: a, group_jid: approval.group_jid });
    const approved = await o.waitState(approval.group_jid, a, "member");
    assert.equal(approved.invite_known, true, "the code of the request is kept");
    // B's request is never answered: it expires, and B leaves the entry.
    const expired = await eventually(async () => {
      const entry = assertEnvelope(await o.get(approval.group_jid), { status: 200 }).data;
      return stateOf(entry, b) === undefined && entry;
    }, "B's seat to go at the expiry", 20_000);
    assert.equal(stateOf(expired, a), "member");
    // A member of book6 is removed by the group's admin; the server's event says so.
    const book6 = fixture("book6");
    await o.joined(a, book6);
    await o.waitState(book6.group_jid, a, "member");
    const removed = await app.admin("PUT", `/v1/admin/sessions/${a}`, { org: o.org, limits: FAST, events: true });
    const hook = assertEnvelope(removed, { status: 200 }).data.events_hook;
    app.sim.setEvents({ session: a, kind: "joingate", url: hook.url.replace(BASE, app.url), secret: hook.secret });
    await control("remove", { session: a, group_jid: book6.group_jid });
    await o.waitState(book6.group_jid, a, "removed");
  });
});

describe("the group book without CREDENTIALS_KEY", () => {
  test("no code is kept: invite_known is false, and there is nothing to recover", async () => {
    const app = await startJoingate({ orgLimit: 100_000, vars: { ...VARS, CREDENTIALS_KEY: "" } });
    try {
      const book1 = fixture("book1");
      const o = await newOrg(app, "nokey");
      const a = await o.register("A");
      const b = await o.register("B");
      await o.joined(a, book1);
      const entry = assertEntry(await o.waitState(book1.group_jid, a, "member"));
      assert.equal(entry.invite_known, false);
      assertInvalid(await o.submit(b, { from_session: a }), "from_session");
    } finally {
      await app.close();
    }
  });
});

describe("recovery onto another number", () => {
  let app;
  before(async () => {
    app = await startJoingate({ orgLimit: 100_000, vars: VARS });
  });
  after(() => app.close());

  test("A's five groups, one invite reset in between: B joins all five with the current codes, each previewed first", async () => {
    const books = [1, 2, 3, 4, 5].map((n) => fixture(`book${n}`));
    const book2 = books[1];
    const o = await newOrg(app, "recover");
    const a = await o.register("A");
    const b = await o.register("B");
    for (const entry of books) await o.joined(a, entry);
    for (const entry of books) await o.waitState(entry.group_jid, a, "member");

    // A group admin makes A an admin of book2 (only admins may reset an invite), and A
    // resets book2's invite through joingate: the book keeps the new code.
    const promoted = await fetch(`${app.sim.url}/__sim/promote`, {
      method: "POST",
      body: JSON.stringify({ session: a, group_jid: book2.group_jid }),
    });
    assert.equal(promoted.status, 200, "the simulator's promote");
    const reset = await app.request("POST", `/v1/sessions/${a}/groups/${book2.group_jid}/invite/reset`, { token: o.token });
    const newCode = assertEnvelope(reset, { status: 200 }).data.invite_code;
    assert.match(newCode, /^[A-Za-z0-9]{16,32}$/);
    assert.notEqual(newCode, book2.code);
    const current = books.map((e) => (e === book2 ? newCode : e.code));
    // The book takes the new code after the answer: book2's entry is then the newest.
    const bookOrder = await eventually(async () => {
      const groups = assertEnvelope(await o.list(`?session=${a}`), { status: 200 }).data.groups.map((g) => g.group_jid);
      return groups[0] === book2.group_jid && groups;
    }, "the book to take the new code");
    const submit = await o.submit(b, { from_session: a, label: "recovery", interval_s: 1 });
    const job = assertEnvelope(submit, { status: 202 }).data;
    assert.deepEqual(job.source, { from_session: a, skipped_no_invite: 0, skipped_member: 0, skipped_over_limit: 0 });
    assert.equal(job.session_id, b);
    assert.equal(job.label, "recovery");
    assert.equal(job.counts.total, 5);
    assert.equal(job.items.length, 5);
    for (const item of job.items) {
      assert.equal(item.invite, "…", "a recovered item shows no part of its code");
      assert.match(item.group_jid ?? "", /@g\.us$/, "group_jid from the start");
    }
    assert.deepEqual(job.items.map((i) => i.group_jid), bookOrder, "newest first, as the book lists them");
    for (const code of [...current, book2.code]) assert.ok(!submit.text.includes(code), "no code in the job");

    const done = await o.waitJob(b, job.job_id);
    assert.equal(done.status, "completed");
    assert.deepEqual(done.items.map((i) => i.status), ["joined", "joined", "joined", "joined", "joined"], JSON.stringify(done.items));
    assert.deepEqual(done.source, job.source, "every answer of the job carries its source");
    const got = await app.request("GET", `/v1/sessions/${b}/join-jobs/${job.job_id}`, { token: o.token });
    for (const code of [...current, book2.code]) assert.ok(!got.text.includes(code), "no code in the job");

    // B's backend got exactly the five current codes (book2's new one, never the old), each
    // previewed before its join (every item carries its expected group).
    const ops = (await backendOps(app, b)).filter((c) => c.op === "preview" || c.op === "join");
    const joins = ops.filter((c) => c.op === "join");
    assert.deepEqual(joins.map((c) => c.code).sort(), [...current].sort());
    assert.ok(!ops.some((c) => c.code === book2.code), "the revoked code never reached B's backend");
    for (const [i, call] of ops.entries()) {
      if (call.op !== "join") continue;
      assert.deepEqual(ops[i - 1], { op: "preview", code: call.code }, `a preview right before the join of ${call.code.slice(0, 4)}…`);
    }

    // The book shows B a member of all five, beside A.
    for (const entry of books) {
      const seen = await o.waitState(entry.group_jid, b, "member");
      assert.equal(stateOf(seen, a), "member");
    }
    const bs = assertEnvelope(await o.list(`?session=${b}`), { status: 200 }).data.groups;
    assert.deepEqual(bs.map((g) => g.group_jid).sort(), books.map((e) => e.group_jid).sort());
    assert.ok(!app.logs.some((l) => [...current, book2.code].some((code) => l.includes(code))), "no code in the logs");

    // Nothing left to join: a validation_error naming from_session.
    assertInvalid(await o.submit(b, { from_session: a }), "from_session");
  });
});

describe("recovery: skips, errors, deleted sessions, every kind", () => {
  let app;
  before(async () => {
    app = await startJoingate({ orgLimit: 100_000, vars: VARS });
  });
  after(() => app.close());

  test("a group whose code is not kept and a group B is in already are skipped and counted", async () => {
    const [book1, book3, book4] = [1, 3, 4].map((n) => fixture(`book${n}`));
    const o = await newOrg(app, "skips");
    const a = await o.register("A");
    const b = await o.register("B");
    await o.joined(a, book1);
    // By invite message: A is a member, but its code is not kept.
    const message = { code: book3.code, group_jid: book3.group_jid, inviter_jid: INVITER };
    assert.equal(assertEnvelope(await o.join(a, message), { status: 200 }).data.status, "joined");
    await o.joined(a, book4);
    await o.joined(b, book4);
    await o.waitState(book1.group_jid, a, "member");
    await o.waitState(book3.group_jid, a, "member");
    await o.waitState(book4.group_jid, a, "member");
    await o.waitState(book4.group_jid, b, "member");

    const job = assertEnvelope(await o.submit(b, { from_session: a, interval_s: 1 }), { status: 202 }).data;
    assert.deepEqual(job.source, { from_session: a, skipped_no_invite: 1, skipped_member: 1, skipped_over_limit: 0 });
    assert.equal(job.counts.total, 1);
    assert.deepEqual(job.items.map((i) => [i.group_jid, i.invite]), [[book1.group_jid, "…"]]);
    const done = await o.waitJob(b, job.job_id);
    assert.equal(done.items[0].status, "joined");
    const joins = (await backendOps(app, b)).filter((c) => c.op === "join").map((c) => c.code);
    assert.deepEqual(joins, [book4.code, book1.code], "B's own join, then the recovered one; never book3");
  });

  test("from_session: another org's, an unknown one, one outside the allow-list are not_found; with invites a validation_error", async () => {
    const book1 = fixture("book1");
    const o = await newOrg(app, "rec-errors");
    const a = await o.register("A");
    const b = await o.register("B");
    await o.joined(a, book1);
    await o.waitState(book1.group_jid, a, "member");

    assertInvalid(await o.submit(b, { from_session: a, invites: [book1.code] }), "from_session");
    assertInvalid(await o.submit(b, { invites: [book1.code], from_session: a }), "from_session");
    assertEnvelope(await o.submit(b, { from_session: `${o.org}-nobody` }), { status: 404, code: "not_found" });
    // B is registered, but the book has nothing of it.
    assertEnvelope(await o.submit(a, { from_session: b }), { status: 404, code: "not_found" });

    // Another org, through its own session: A is not in its book.
    const other = await newOrg(app, "rec-errors-other");
    const c = await other.register("C");
    assertEnvelope(await other.submit(c, { from_session: a }), { status: 404, code: "not_found" });
    // A token allow-listed to B cannot read A's part of the book.
    const limited = await app.token(o.org, ["join", "read"], { sessions: [b] });
    assertEnvelope(await o.submit(b, { from_session: a }, limited), { status: 404, code: "not_found" });
    // None of these stored a job.
    const jobs = assertEnvelope(await app.request("GET", `/v1/sessions/${b}/join-jobs`, { token: o.token }), { status: 200 }).data.jobs;
    assert.deepEqual(jobs, []);
    assert.deepEqual(assertEnvelope(await app.request("GET", `/v1/sessions/${c}/join-jobs`, { token: other.token }), { status: 200 }).data.jobs, []);

    // The control: the org's own token may.
    const job = assertEnvelope(await o.submit(b, { from_session: a, interval_s: 1 }), { status: 202 }).data;
    assert.equal(job.counts.total, 1);
    assert.equal(job.source.from_session, a);
  });

  test("DELETE of a session keeps the book: B still recovers from the deleted A", async () => {
    const [book1, book3] = [1, 3].map((n) => fixture(`book${n}`));
    const o = await newOrg(app, "deleted");
    const a = await o.register("A");
    const b = await o.register("B");
    await o.joined(a, book1);
    await o.joined(a, book3);
    await o.waitState(book1.group_jid, a, "member");
    await o.waitState(book3.group_jid, a, "member");
    const before = assertEnvelope(await o.list(), { status: 200 }).data.groups;

    assertEnvelope(await app.admin("DELETE", `/v1/admin/sessions/${a}`), { status: 200 });
    const after = assertEnvelope(await o.list(), { status: 200 }).data.groups;
    assert.deepEqual(after, before, "the book is not touched by a DELETE");

    const job = assertEnvelope(await o.submit(b, { from_session: a, interval_s: 1 }), { status: 202 }).data;
    assert.equal(job.counts.total, 2);
    assert.deepEqual(job.source, { from_session: a, skipped_no_invite: 0, skipped_member: 0, skipped_over_limit: 0 });
    const done = await o.waitJob(b, job.job_id);
    assert.deepEqual(done.items.map((i) => i.status), ["joined", "joined"]);
    await o.waitState(book1.group_jid, b, "member");
    await o.waitState(book3.group_jid, b, "member");
    const joins = (await backendOps(app, b)).filter((c) => c.op === "join").map((c) => c.code);
    assert.deepEqual(joins.sort(), [book1.code, book3.code].sort());
  });

  for (const kind of KINDS.filter((k) => k !== "joingate")) {
    test(`${kind}: B recovers A's groups, each previewed before its join, and the book shows it`, async () => {
      const [book1, book3] = [1, 3].map((n) => fixture(`book${n}`));
      const o = await newOrg(app, `rec-${kind}`);
      const a = await o.register("A", kind);
      const b = await o.register("B", kind);
      await o.joined(a, book1);
      await o.joined(a, book3);
      const entry = await o.waitState(book1.group_jid, a, "member");
      assert.equal(entry.invite_known, true);
      await o.waitState(book3.group_jid, a, "member");

      const job = assertEnvelope(await o.submit(b, { from_session: a, interval_s: 1 }), { status: 202 }).data;
      assert.deepEqual(job.source, { from_session: a, skipped_no_invite: 0, skipped_member: 0, skipped_over_limit: 0 });
      assert.equal(job.counts.total, 2);
      assert.ok(job.items.every((i) => i.invite === "…" && /@g\.us$/.test(i.group_jid)));
      const done = await o.waitJob(b, job.job_id);
      assert.deepEqual(done.items.map((i) => i.status), ["joined", "joined"], JSON.stringify(done.items));
      const ops = (await backendOps(app, b)).filter((c) => c.op === "preview" || c.op === "join");
      const joins = ops.filter((c) => c.op === "join");
      assert.deepEqual(joins.map((c) => c.code).sort(), [book1.code, book3.code].sort());
      for (const [i, call] of ops.entries()) {
        if (call.op === "join") assert.deepEqual(ops[i - 1], { op: "preview", code: call.code });
      }
      await o.waitState(book1.group_jid, b, "member");
      await o.waitState(book3.group_jid, b, "member");
    });
  }
});
