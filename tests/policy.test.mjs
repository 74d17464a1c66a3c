// The org's join policy and the expected group (contract section 15), end to end: the
// policy through PUT/GET /v1/admin/orgs/{org} and its validation, each rule refusing a
// client join and a job item after a preview and before any join request (so the refusal
// costs the account nothing and counts toward no cap), invite messages checked without a
// preview, invite_mismatch, preview_first, and the refusal on every kind.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startJoingate, assertEnvelope, assertInvalid, eventually, KINDS, ADMIN_TOKEN, backendOps, fixture, FAST_LIMITS, BACKEND_FAULTS } from "./helpers.mjs";
import { DEMO } from "../sim/catalogue.mjs";

const FAST = FAST_LIMITS;
// Job items one to two seconds apart.
const VARS = { JOB_MIN_INTERVAL_S: "1" };
const INVITER = "15551234567@s.whatsapp.net";
const finished = (job) => job.status === "completed" || job.status === "cancelled";
/** The preview and join calls only (a kind may also ask for its status or a membership). */
const previewsAndJoins = async (app, sid) => (await backendOps(app, sid)).filter((c) => c.op === "preview" || c.op === "join");

/**
 * A policy as answered, compared with what was set: `preview_first` may be shown at its
 * default ("jobs") when it was not set; nothing else may be added.
 */
function assertPolicy(actual, expected) {
  assert.ok(actual !== null && typeof actual === "object" && !Array.isArray(actual), `policy is an object: ${JSON.stringify(actual)}`);
  const shown = { ...actual };
  if (!("preview_first" in expected) && shown.preview_first === "jobs") delete shown.preview_first;
  assert.deepEqual(shown, expected);
}

let orgCount = 0;
/**
 * A new org with `policy` set (none when null), a token of every capability, and helpers
 * bound to them.
 */
async function policyOrg(app, prefix, policy) {
  orgCount += 1;
  const org = `${prefix}-${orgCount}`;
  if (policy !== null) {
    const put = await app.admin("PUT", `/v1/admin/orgs/${org}`, { policy });
    assertPolicy(assertEnvelope(put, { status: 200 }).data.policy, policy);
  }
  const token = await app.token(org, ["join", "read", "manage"]);
  let sessions = 0;
  return {
    org,
    token,
    async register(kind = "joingate", limits = FAST) {
      sessions += 1;
      const sid = `${org}-${kind}-${sessions}`;
      const body = { org, limits, ...(kind === "joingate" ? {} : { backend: app.backendFor(kind, sid) }) };
      assertEnvelope(await app.admin("PUT", `/v1/admin/sessions/${sid}`, body), { status: 200 });
      return sid;
    },
    join: (sid, json) => app.join(sid, token, json),
    submit: (sid, json) => app.request("POST", `/v1/sessions/${sid}/join-jobs`, { token, json }),
    async protection(sid) {
      return assertEnvelope(await app.request("GET", `/v1/sessions/${sid}`, { token }), { status: 200 }).data.protection;
    },
    async waitJob(sid, jobId) {
      let job;
      await eventually(async () => {
        job = assertEnvelope(await app.request("GET", `/v1/sessions/${sid}/join-jobs/${jobId}`, { token }), { status: 200 }).data;
        return finished(job);
      }, `job ${jobId} finished`, 40_000);
      return job;
    },
  };
}

/** Asserts a 403 join_refused_by_policy naming `rule`. */
function assertRefused(res, rule) {
  const body = assertEnvelope(res, { status: 403, code: "join_refused_by_policy" });
  assert.equal(body.error.details?.rule, rule, res.text);
}

describe("join policy: the admin route", () => {
  let app;
  before(async () => {
    app = await startJoingate({ orgLimit: 100_000, vars: VARS });
  });
  after(() => app.close());

  test("PUT sets the policy, GET shows it, a PUT changes only what it names, {} clears it", async () => {
    const book1 = fixture("book1");
    const org = "policy-admin";
    const put = (body) => app.admin("PUT", `/v1/admin/orgs/${org}`, body);
    const get = async () => assertEnvelope(await app.admin("GET", `/v1/admin/orgs/${org}`), { status: 200 }).data;
    const defaults = (await get()).limits;

    const policy = { allowed_groups: [book1.group_jid], blocked_subject_terms: ["casino", "night club"], max_size: 800, preview_first: "always" };
    const set = assertEnvelope(await put({ policy }), { status: 200 }).data;
    assert.deepEqual(Object.keys(set).sort(), ["limits", "org", "policy"]);
    assert.equal(set.org, org);
    assert.deepEqual(set.policy, policy);
    assert.deepEqual(set.limits, defaults, "a PUT without limits keeps them");
    assert.deepEqual(await get(), set);

    // Only limits: the policy stays.
    const limited = assertEnvelope(await put({ limits: { per_minute: 6, burst: 3 } }), { status: 200 }).data;
    assert.deepEqual(limited.limits, { per_minute: 6, burst: 3 });
    assert.deepEqual(limited.policy, policy);
    assert.deepEqual((await get()).policy, policy);

    // A policy replaces the policy, and keeps the limits.
    const smaller = assertEnvelope(await put({ policy: { max_size: 10 } }), { status: 200 }).data;
    assertPolicy(smaller.policy, { max_size: 10 });
    assert.deepEqual(smaller.limits, { per_minute: 6, burst: 3 });
    // "limits": {} returns the limit to the default, the policy stays.
    const back = assertEnvelope(await put({ limits: {} }), { status: 200 }).data;
    assert.deepEqual(back.limits, defaults);
    assertPolicy(back.policy, { max_size: 10 });
    // "policy": {} clears it.
    const cleared = assertEnvelope(await put({ policy: {} }), { status: 200 }).data;
    assertPolicy(cleared.policy, {});
    assertPolicy((await get()).policy, {});
    // An org never given one shows none.
    assertPolicy(assertEnvelope(await app.admin("GET", "/v1/admin/orgs/policy-never-set"), { status: 200 }).data.policy, {});
  });

  test("every field is validated, naming it; nothing is stored by a bad PUT", async () => {
    const book1 = fixture("book1");
    const org = "policy-valid";
    const put = (body) => app.admin("PUT", `/v1/admin/orgs/${org}`, body);
    const good = { blocked_subject_terms: ["casino"] };
    assertEnvelope(await put({ policy: good }), { status: 200 });
    const groups = (n) => Array.from({ length: n }, (_, i) => `1203630${String(i).padStart(11, "0")}@g.us`);
    const terms = (n) => Array.from({ length: n }, (_, i) => `term ${i}`);
    const cases = [
      [{ policy: 5 }, "policy"],
      [{ policy: [] }, "policy"],
      [{ policy: { allowed_groups: [] } }, "policy.allowed_groups"],
      [{ policy: { allowed_groups: book1.group_jid } }, "policy.allowed_groups"],
      [{ policy: { allowed_groups: ["nope"] } }, "policy.allowed_groups[0]"],
      [{ policy: { allowed_groups: [book1.group_jid, "15551234567@s.whatsapp.net"] } }, "policy.allowed_groups[1]"],
      [{ policy: { allowed_groups: [book1.group_jid, 7] } }, "policy.allowed_groups[1]"],
      [{ policy: { allowed_groups: groups(10_001) } }, "policy.allowed_groups"],
      [{ policy: { blocked_subject_terms: ["x".repeat(101)] } }, "policy.blocked_subject_terms[0]"],
      [{ policy: { blocked_subject_terms: ["casino", ""] } }, "policy.blocked_subject_terms[1]"],
      [{ policy: { blocked_subject_terms: ["casino", 3] } }, "policy.blocked_subject_terms[1]"],
      [{ policy: { blocked_subject_terms: terms(101) } }, "policy.blocked_subject_terms"],
      [{ policy: { blocked_subject_terms: "casino" } }, "policy.blocked_subject_terms"],
      [{ policy: { max_size: 0 } }, "policy.max_size"],
      [{ policy: { max_size: 100_001 } }, "policy.max_size"],
      [{ policy: { max_size: "x" } }, "policy.max_size"],
      [{ policy: { max_size: 10.5 } }, "policy.max_size"],
      [{ policy: { preview_first: "sometimes" } }, "policy.preview_first"],
      [{ policy: { preview_first: true } }, "policy.preview_first"],
      [{ policy: { colour: "red" } }, "policy.colour"],
    ];
    for (const [body, field] of cases) {
      assertInvalid(await put(body), field);
    }
    const kept = assertEnvelope(await app.admin("GET", `/v1/admin/orgs/${org}`), { status: 200 }).data.policy;
    assertPolicy(kept, good);

    // The bounds themselves are accepted: 100 terms of 100 characters (not bytes), sizes 1 and 100,000.
    const longest = [...terms(99).map((t) => t.padEnd(100, "x")), "é".repeat(100)];
    assertPolicy(assertEnvelope(await put({ policy: { blocked_subject_terms: longest } }), { status: 200 }).data.policy, { blocked_subject_terms: longest });
    for (const max_size of [1, 100_000]) {
      assertPolicy(assertEnvelope(await put({ policy: { max_size } }), { status: 200 }).data.policy, { max_size });
    }
    for (const preview_first of ["jobs", "always", "never"]) {
      assert.equal(assertEnvelope(await put({ policy: { preview_first } }), { status: 200 }).data.policy.preview_first, preview_first);
    }
  });

  test("the org PUT takes up to 512 KiB: a 400 KiB list of 10,000 groups is accepted, more is 413", async () => {
    const org = "policy-large";
    const list = Array.from({ length: 10_000 }, (_, i) => `1555${String(i).padStart(7, "0")}-1600000000@g.us`);
    // Pretty-printed, as a person's tooling might send it.
    const text = JSON.stringify({ policy: { allowed_groups: list } }, null, 4);
    assert.ok(text.length >= 400 * 1024 && text.length < 512 * 1024, `${text.length} bytes`);
    const res = await app.request("PUT", `/v1/admin/orgs/${org}`, { token: ADMIN_TOKEN, body: text, headers: { "Content-Type": "application/json" } });
    const data = assertEnvelope(res, { status: 200 }).data;
    assert.equal(data.policy.allowed_groups.length, 10_000);
    assert.deepEqual(data.policy.allowed_groups, list);
    const shown = assertEnvelope(await app.admin("GET", `/v1/admin/orgs/${org}`), { status: 200 }).data.policy;
    assert.deepEqual(shown.allowed_groups, list);

    const over = JSON.stringify({ policy: {} }) + " ".repeat(512 * 1024);
    const tooLarge = await app.request("PUT", `/v1/admin/orgs/${org}`, { token: ADMIN_TOKEN, body: over, headers: { "Content-Type": "application/json" } });
    assertEnvelope(tooLarge, { status: 413, code: "payload_too_large" });
    // Nothing changed.
    const still = assertEnvelope(await app.admin("GET", `/v1/admin/orgs/${org}`), { status: 200 }).data.policy;
    assert.equal(still.allowed_groups.length, 10_000);
  });
});

describe("join policy: joins", () => {
  let app;
  before(async () => {
    app = await startJoingate({ orgLimit: 100_000, vars: VARS });
  });
  after(() => app.close());

  test("blocked_subject_terms: refused after the preview, before any join; it counts toward no cap; another group joins", async () => {
    const [casino, book1] = [fixture("casino"), fixture("book1")];
    assert.match(casino.subject, /casino/i, "the fixture's subject names the term");
    const p = await policyOrg(app, "terms", { blocked_subject_terms: ["casino"] });
    const sid = await p.register();
    assertRefused(await p.join(sid, { invite: casino.code }), "blocked_subject_terms");
    assertRefused(await p.join(sid, { invite: `https://chat.whatsapp.com/${casino.code}?mode=ems_copy_t` }), "blocked_subject_terms");
    assert.deepEqual(await previewsAndJoins(app, sid), [
      { op: "preview", code: casino.code },
      { op: "preview", code: casino.code },
    ]);
    const refused = await p.protection(sid);
    assert.equal(refused.used_last_hour, 0, "a refusal before the join request is not counted");
    assert.equal(refused.used_last_24h, 0);
    // The org never joined it: the book has no entry.
    assertEnvelope(await app.request("GET", `/v1/groups/${casino.group_jid}`, { token: p.token }), { status: 404, code: "not_found" });

    const ok = await p.join(sid, { invite: book1.code });
    assert.equal(assertEnvelope(ok, { status: 200 }).data.status, "joined");
    assert.deepEqual((await previewsAndJoins(app, sid)).slice(2), [
      { op: "preview", code: book1.code },
      { op: "join", code: book1.code },
    ], "a rule set: every join previews first");
    const joined = await p.protection(sid);
    assert.equal(joined.used_last_hour, 1);
    assert.equal(joined.used_last_24h, 1);
  });

  test("terms match case-insensitively, anywhere in the subject", async () => {
    const casino = fixture("casino");
    const p = await policyOrg(app, "terms-case", { blocked_subject_terms: ["sports", "CaSiNo N"] });
    const sid = await p.register();
    assertRefused(await p.join(sid, { invite: casino.code }), "blocked_subject_terms");
    assert.ok(!(await previewsAndJoins(app, sid)).some((c) => c.op === "join"));
  });

  test("max_size: a group above it is refused after the preview; a smaller one joins", async () => {
    const [big, book1] = [fixture("big"), fixture("book1")];
    assert.ok(big.size > 800 && book1.size <= 800, "the fixtures' sizes");
    const p = await policyOrg(app, "size", { max_size: 800 });
    const sid = await p.register();
    assertRefused(await p.join(sid, { invite: big.code }), "max_size");
    assert.deepEqual(await previewsAndJoins(app, sid), [{ op: "preview", code: big.code }]);
    assert.equal((await p.protection(sid)).used_last_hour, 0);
    assert.equal(assertEnvelope(await p.join(sid, { invite: book1.code }), { status: 200 }).data.status, "joined");
  });

  test("allowed_groups: another group is refused after the preview; the allowed one joins", async () => {
    const [book1, book2] = [fixture("book1"), fixture("book2")];
    const p = await policyOrg(app, "allowed", { allowed_groups: [book1.group_jid] });
    const sid = await p.register();
    assertRefused(await p.join(sid, { invite: book2.code }), "allowed_groups");
    assert.deepEqual(await previewsAndJoins(app, sid), [{ op: "preview", code: book2.code }]);
    assert.equal((await p.protection(sid)).used_last_hour, 0);
    assert.equal(assertEnvelope(await p.join(sid, { invite: book1.code }), { status: 200 }).data.status, "joined");
    assert.deepEqual((await previewsAndJoins(app, sid)).filter((c) => c.op === "join"), [{ op: "join", code: book1.code }]);
  });

  test("invite messages: allowed_groups by the message's group_jid without a preview; the other rules refuse them", async () => {
    const [book1, book2] = [fixture("book1"), fixture("book2")];
    const message = (entry) => ({ code: entry.code, group_jid: entry.group_jid, inviter_jid: INVITER });

    const allowed = await policyOrg(app, "msg-allowed", { allowed_groups: [book1.group_jid] });
    const sid = await allowed.register();
    assertRefused(await allowed.join(sid, message(book2)), "allowed_groups");
    assert.deepEqual(await backendOps(app, sid), [], "no backend call at all");
    assert.equal((await allowed.protection(sid)).used_last_hour, 0);
    assert.equal(assertEnvelope(await allowed.join(sid, message(book1)), { status: 200 }).data.status, "joined");
    assert.deepEqual(await previewsAndJoins(app, sid), [{ op: "join", code: book1.code }], "checked by its group_jid, not previewed");

    for (const [rule, policy] of [
      ["blocked_subject_terms", { blocked_subject_terms: ["casino"] }],
      ["max_size", { max_size: 800 }],
    ]) {
      const p = await policyOrg(app, `msg-${rule}`, policy);
      const other = await p.register();
      assertRefused(await p.join(other, message(book1)), rule);
      assert.deepEqual(await backendOps(app, other), [], `${rule}: no backend call at all`);
      assert.equal((await p.protection(other)).used_last_hour, 0);
    }
  });

  test("a refused invite message reached nothing: its token comes back and its key is not kept", async () => {
    const [book1, book2] = [fixture("book1"), fixture("book2")];
    const message = (entry) => ({ code: entry.code, group_jid: entry.group_jid, inviter_jid: INVITER });
    const p = await policyOrg(app, "msg-unsent", { allowed_groups: [book1.group_jid] });
    // One join token a minute: a refusal that kept it would leave the next call a 429.
    const sid = await p.register("joingate", { ...FAST, join: { per_minute: 1, burst: 1 } });
    const key = { "Idempotency-Key": "msg-unsent-1" };
    assertRefused(await app.join(sid, p.token, message(book2), key), "allowed_groups");
    assertRefused(await app.join(sid, p.token, message(book2)), "allowed_groups");
    // The policy now lets book2 in: the same key runs again (nothing was kept under it).
    const widened = { allowed_groups: [book1.group_jid, book2.group_jid] };
    assertEnvelope(await app.admin("PUT", `/v1/admin/orgs/${p.org}`, { policy: widened }), { status: 200 });
    const joined = await app.join(sid, p.token, message(book2), key);
    assert.equal(assertEnvelope(joined, { status: 200 }).data.status, "joined");
    assert.equal(joined.headers.get("idempotent-replayed"), null);
    assert.deepEqual(await previewsAndJoins(app, sid), [{ op: "join", code: book2.code }]);
  });

  test("expected_group_jid: another group is 409 invite_mismatch after the preview, before any join; the right one joins", async () => {
    const [book1, book2] = [fixture("book1"), fixture("book2")];
    const p = await policyOrg(app, "expected", null);
    const sid = await p.register();
    const mismatch = await p.join(sid, { invite: book1.code, expected_group_jid: book2.group_jid });
    const body = assertEnvelope(mismatch, { status: 409, code: "invite_mismatch" });
    assert.equal(body.error.details.group_jid, book1.group_jid);
    assert.deepEqual(await previewsAndJoins(app, sid), [{ op: "preview", code: book1.code }]);
    const unused = await p.protection(sid);
    assert.equal(unused.used_last_hour, 0, "a mismatch before the join request is not counted");
    assert.equal(unused.used_last_24h, 0);

    const right = await p.join(sid, { invite: `https://chat.whatsapp.com/${book1.code}`, expected_group_jid: book1.group_jid });
    assert.deepEqual(assertEnvelope(right, { status: 200 }).data, { group_jid: book1.group_jid, status: "joined" });
    assert.deepEqual((await previewsAndJoins(app, sid)).slice(1), [
      { op: "preview", code: book1.code },
      { op: "join", code: book1.code },
    ]);

    // In the invite-message form, or not a group JID: a validation_error naming it.
    const message = { code: book1.code, group_jid: book1.group_jid, inviter_jid: INVITER, expected_group_jid: book1.group_jid };
    assertInvalid(await p.join(sid, message), "expected_group_jid");
    for (const bad of ["nope", 7, "", "15551234567@s.whatsapp.net"]) {
      assertInvalid(await p.join(sid, { invite: book1.code, expected_group_jid: bad }), "expected_group_jid");
    }
    assert.equal((await previewsAndJoins(app, sid)).length, 3, "the invalid bodies reached no backend");
  });

  test("backend faults on the preview, on every kind: the fault's answer, and no join request follows", async () => {
    const book1 = fixture("book1");
    const p = await policyOrg(app, "faults", { blocked_subject_terms: ["casino"] });
    for (const kind of KINDS) {
      for (const [mode, status, code] of BACKEND_FAULTS) {
        const sid = await p.register(kind);
        app.sim.setFault({ session: sid, mode, count: 1 });
        const res = await p.join(sid, { invite: book1.code, expected_group_jid: book1.group_jid });
        assertEnvelope(res, { status, code });
        const ops = await previewsAndJoins(app, sid);
        assert.equal(ops.filter((c) => c.op === "join").length, 0, `${kind} ${mode}: no join after a failed preview`);
        // The fault is spent: the same call previews, is allowed, and joins.
        const again = await p.join(sid, { invite: book1.code, expected_group_jid: book1.group_jid });
        assert.equal(assertEnvelope(again, { status: 200 }).data.status, "joined", `${kind} ${mode}`);
      }
    }
  });

  test("the preview and the join are one call: one join token, no read token", async () => {
    const [book1, book3, book4] = [fixture("book1"), fixture("book3"), fixture("book4")];
    const p = await policyOrg(app, "one-call", { blocked_subject_terms: ["casino"] });
    const limits = { join: { per_minute: 1, burst: 2 }, read: { per_minute: 1, burst: 1 }, manage: FAST.manage };
    const sid = await p.register("joingate", limits);
    assert.equal(assertEnvelope(await p.join(sid, { invite: book1.code }), { status: 200 }).data.status, "joined");
    assert.equal(assertEnvelope(await p.join(sid, { invite: book3.code }), { status: 200 }).data.status, "joined");
    const third = assertEnvelope(await p.join(sid, { invite: book4.code }), { status: 429, code: "rate_limited" });
    assert.equal(third.error.details.scope, "session");
    assert.deepEqual((await previewsAndJoins(app, sid)).map((c) => c.op), ["preview", "join", "preview", "join"], "two joins, each previewed once");
    // The read bucket (burst 1) is untouched by the previews: one read still passes, then none.
    assertEnvelope(await app.request("GET", `/v1/sessions/${sid}/invites/${book4.code}`, { token: p.token }), { status: 200 });
    assertEnvelope(await app.request("GET", `/v1/sessions/${sid}/invites/${book4.code}`, { token: p.token }), { status: 429, code: "rate_limited" });
  });

  test("preview_first \"jobs\" (the default): a job item's revoked invite fails on the preview; a client join is not previewed", async () => {
    const book1 = fixture("book1");
    const p = await policyOrg(app, "preview-jobs", null);
    const sid = await p.register();
    const job = assertEnvelope(await p.submit(sid, { invites: [DEMO.revoked.code], interval_s: 1 }), { status: 202 }).data;
    const done = await p.waitJob(sid, job.job_id);
    assert.equal(done.items[0].status, "failed");
    assert.equal(done.items[0].error.code, "invite_revoked");
    assert.deepEqual(await previewsAndJoins(app, sid), [{ op: "preview", code: DEMO.revoked.code }], "no join attempt");

    assert.equal(assertEnvelope(await p.join(sid, { invite: book1.code }), { status: 200 }).data.status, "joined");
    assert.deepEqual((await previewsAndJoins(app, sid)).slice(1), [{ op: "join", code: book1.code }]);
  });

  test("preview_first \"always\": a client join is previewed first; a revoked invite never reaches a join", async () => {
    const book1 = fixture("book1");
    const p = await policyOrg(app, "preview-always", { preview_first: "always" });
    const sid = await p.register();
    assert.equal(assertEnvelope(await p.join(sid, { invite: book1.code }), { status: 200 }).data.status, "joined");
    assert.deepEqual(await previewsAndJoins(app, sid), [
      { op: "preview", code: book1.code },
      { op: "join", code: book1.code },
    ]);
    assertEnvelope(await p.join(sid, { invite: DEMO.revoked.code }), { status: 410, code: "invite_revoked" });
    assert.deepEqual((await previewsAndJoins(app, sid)).slice(2), [{ op: "preview", code: DEMO.revoked.code }]);
  });

  test("preview_first \"never\": a job item without rules is not previewed; with a rule it still is", async () => {
    const [book1, casino] = [fixture("book1"), fixture("casino")];
    const p = await policyOrg(app, "preview-never", { preview_first: "never" });
    const sid = await p.register();
    const job = assertEnvelope(await p.submit(sid, { invites: [book1.code], interval_s: 1 }), { status: 202 }).data;
    const done = await p.waitJob(sid, job.job_id);
    assert.equal(done.items[0].status, "joined");
    assert.deepEqual(await previewsAndJoins(app, sid), [{ op: "join", code: book1.code }]);

    const ruled = await policyOrg(app, "preview-never-rule", { preview_first: "never", blocked_subject_terms: ["casino"] });
    const other = await ruled.register();
    const refused = assertEnvelope(await ruled.submit(other, { invites: [casino.code], interval_s: 1 }), { status: 202 }).data;
    const end = await ruled.waitJob(other, refused.job_id);
    assert.equal(end.items[0].error?.code, "join_refused_by_policy");
    assert.deepEqual(await previewsAndJoins(app, other), [{ op: "preview", code: casino.code }]);
  });

  test("job items: a refused group and a mismatched one fail definitely, without a join; the others join", async () => {
    const [book1, book3, book4, book5, casino] = ["book1", "book3", "book4", "book5", "casino"].map(fixture);
    const p = await policyOrg(app, "job-items", { blocked_subject_terms: ["casino"] });
    const sid = await p.register();
    const job = assertEnvelope(await p.submit(sid, { invites: [book1.code, casino.code], interval_s: 1 }), { status: 202 }).data;
    const done = await p.waitJob(sid, job.job_id);
    assert.equal(done.status, "completed");
    assert.deepEqual(done.items.map((i) => i.status), ["joined", "failed"]);
    assert.equal(done.items[1].error.code, "join_refused_by_policy");
    assert.ok(done.items[1].attempts <= 1, "a definite outcome: not retried");
    assert.deepEqual([done.counts.joined, done.counts.failed], [1, 1]);
    const joins = (await previewsAndJoins(app, sid)).filter((c) => c.op === "join");
    assert.deepEqual(joins, [{ op: "join", code: book1.code }]);
    assert.ok((await previewsAndJoins(app, sid)).some((c) => c.op === "preview" && c.code === casino.code));
    assert.equal((await p.protection(sid)).used_last_hour, 1, "the refused item is not counted");

    // Item objects with an expected group.
    const plain = await policyOrg(app, "job-expected", null);
    const other = await plain.register();
    const items = [
      { invite: book3.code, expected_group_jid: book4.group_jid },
      { invite: `https://chat.whatsapp.com/${book5.code}`, expected_group_jid: book5.group_jid },
    ];
    const mixed = assertEnvelope(await plain.submit(other, { invites: items, interval_s: 1 }), { status: 202 }).data;
    assert.deepEqual(mixed.items.map((i) => i.invite), [`${book3.code.slice(0, 4)}…`, `${book5.code.slice(0, 4)}…`]);
    const end = await plain.waitJob(other, mixed.job_id);
    assert.deepEqual(end.items.map((i) => i.status), ["failed", "joined"]);
    assert.equal(end.items[0].error.code, "invite_mismatch");
    assert.ok(end.items[0].attempts <= 1, "a definite outcome: not retried");
    const calls = await previewsAndJoins(app, other);
    assert.deepEqual(calls.filter((c) => c.op === "join"), [{ op: "join", code: book5.code }]);
    assert.ok(calls.some((c) => c.op === "preview" && c.code === book3.code), "the mismatch was found by a preview");

    // Item objects are checked at the edge like a join body.
    const message = { code: book1.code, group_jid: book1.group_jid, inviter_jid: INVITER, expected_group_jid: book1.group_jid };
    for (const [invites, field] of [
      [[book1.code, { invite: book3.code, expected_group_jid: "nope" }], "invites[1].expected_group_jid"],
      [[message], "invites[0].expected_group_jid"],
    ]) {
      assertInvalid(await plain.submit(other, { invites }), field);
    }
  });

  for (const kind of KINDS) {
    test(`${kind}: a policy refusal and a mismatch send no join; another group joins`, async () => {
      const [casino, book1, book2] = [fixture("casino"), fixture("book1"), fixture("book2")];
      const p = await policyOrg(app, `kind-${kind}`, { blocked_subject_terms: ["casino"] });
      const sid = await p.register(kind);
      assertRefused(await p.join(sid, { invite: casino.code }), "blocked_subject_terms");
      const mismatch = await p.join(sid, { invite: book1.code, expected_group_jid: book2.group_jid });
      assert.equal(assertEnvelope(mismatch, { status: 409, code: "invite_mismatch" }).error.details.group_jid, book1.group_jid);
      const calls = await previewsAndJoins(app, sid);
      assert.ok(calls.some((c) => c.op === "preview" && c.code === casino.code), `${kind}: the refusal was previewed`);
      assert.deepEqual(calls.filter((c) => c.op === "join"), [], `${kind}: no join request`);
      assert.equal((await p.protection(sid)).used_last_hour, 0);

      assert.equal(assertEnvelope(await p.join(sid, { invite: book1.code }), { status: 200 }).data.status, "joined");
      assert.deepEqual((await previewsAndJoins(app, sid)).filter((c) => c.op === "join"), [{ op: "join", code: book1.code }]);
      assert.equal((await p.protection(sid)).used_last_hour, 1);
    });
  }
});
