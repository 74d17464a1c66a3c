// The admin command line (npm run admin -- ...), run as a separate process against a
// served joingate: tokens, sessions (the backend and its credential on standard input),
// org limits, join policies (API.md section 15) and webhooks; plain text and --json; errors exit non-zero with the envelope's
// message; no credential or token shows where it should not.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startJoingate, assertEnvelope, ADMIN_TOKEN } from "./helpers.mjs";
import { DEMO } from "../sim/catalogue.mjs";

const CLI = fileURLToPath(new URL("../scripts/admin.mjs", import.meta.url));

describe("admin command line", () => {
  let app;
  /** Runs the CLI; resolves { code, stdout, stderr }. */
  const run = (args, { stdin, env = {} } = {}) =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [CLI, ...args], {
        env: { PATH: process.env.PATH, JOINGATE_URL: app.url, JOINGATE_ADMIN_TOKEN: ADMIN_TOKEN, ...env },
        stdio: ["pipe", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (c) => (stdout += c));
      child.stderr.on("data", (c) => (stderr += c));
      child.on("error", reject);
      child.on("close", (code) => resolve({ code, stdout, stderr }));
      child.stdin.end(stdin ?? "");
    });
  const json = async (args, options) => {
    const result = await run(["--json", ...args], options);
    assert.equal(result.code, 0, result.stderr);
    return JSON.parse(result.stdout);
  };

  before(async () => {
    app = await startJoingate({ serve: true });
  });
  after(() => app.close());

  test("token create prints the token once; it works until token revoke", async () => {
    const created = await run(["token", "create", "--org", "cli-org", "--cap", "read,join", "--label", "ci bot"]);
    assert.equal(created.code, 0, created.stderr);
    const token = created.stdout.match(/^token: (jg_\S+)$/m)?.[1];
    const tokenId = created.stdout.match(/^token_id: (\S+)$/m)?.[1];
    assert.ok(token && tokenId, created.stdout);
    assert.match(created.stdout, /^capabilities: read, join$/m);
    assert.match(created.stdout, /^org: cli-org$/m);
    const sid = "cli-token-check";
    assert.equal((await run(["session", "put", sid, "--org", "cli-org"])).code, 0);
    assertEnvelope(await app.request("GET", `/v1/sessions/${sid}/invites/${DEMO.open.code}`, { token }), { status: 200 });
    const revoked = await json(["token", "revoke", tokenId]);
    assert.equal(revoked.token_id, tokenId);
    assertEnvelope(await app.request("GET", `/v1/sessions/${sid}/invites/${DEMO.open.code}`, { token }), { status: 401 });
    // No revoke answer, no later output, carries the token again.
    assert.ok(!JSON.stringify(revoked).includes(token));
  });

  test("session put reads the backend and its credential from standard input; show hides it", async () => {
    const sid = "cli-waha";
    const backend = app.backendFor("waha", sid);
    const put = await json(["session", "put", sid, "--org", "cli-org", "--limits", '{"join":{"per_minute":2}}', "--backend", "-"], {
      stdin: JSON.stringify(backend),
    });
    assert.equal(put.session_id, sid);
    assert.equal(put.backend.kind, "waha");
    assert.equal(put.backend.has_credential, true);
    assert.equal(put.limits.join.per_minute, 2);
    const shown = await run(["session", "show", sid]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /^backend\.kind: waha$/m);
    assert.match(shown.stdout, /^backend\.has_credential: true$/m);
    assert.ok(!shown.stdout.includes(backend.credential), "the credential is never printed");
    // The session really fronts the WAHA simulator.
    const token = await app.token("cli-org", ["read"]);
    assertEnvelope(await app.request("GET", `/v1/sessions/${sid}/invites/${DEMO.open.code}`, { token }), { status: 200 });
    const deleted = await json(["session", "delete", sid]);
    assert.equal(deleted.deleted, true);
    const gone = await run(["session", "show", sid]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /^error: not_found: /m);
  });

  test("session put sets protection and the join caps; --no-window turns the window off", async () => {
    const sid = "cli-protected";
    const put = await json([
      "session", "put", sid, "--org", "cli-org",
      "--number-since", "2024-03-01", "--timezone", "Europe/Berlin", "--window", "08:00-21:00",
      "--per-day", "25", "--per-hour", "6", "--limits", '{"join":{"burst":1},"read":{"per_minute":90}}',
    ]);
    assert.deepEqual(put.protection, { number_since: "2024-03-01", timezone: "Europe/Berlin", window: { start: "08:00", end: "21:00" } });
    assert.deepEqual(put.limits.join, { per_minute: 4, burst: 1, per_day: 25, per_hour: 6 }, "merged with --limits");
    assert.equal(put.limits.read.per_minute, 90);
    const shown = await run(["session", "show", sid]);
    assert.match(shown.stdout, /^protection\.window\.start: 08:00$/m);
    assert.match(shown.stdout, /^limits\.join\.per_day: 25$/m);
    const off = await json(["session", "put", sid, "--org", "cli-org", "--no-window"]);
    assert.deepEqual(off.protection, { window: null }, "a put replaces protection as sent");
    assert.deepEqual(off.limits.join, { per_minute: 4, burst: 4 });
    // The server's verdicts reach the terminal with the field; command-line mistakes exit 2.
    const future = await run(["session", "put", sid, "--org", "cli-org", "--number-since", "2999-01-01"]);
    assert.equal(future.code, 1);
    assert.match(future.stderr, /^error: validation_error: .+\(protection\.number_since\)$/m);
    const zone = await run(["session", "put", sid, "--org", "cli-org", "--timezone", "Mars/Olympus_Mons"]);
    assert.match(zone.stderr, /\(protection\.timezone\)$/m);
    const reversed = await run(["session", "put", sid, "--org", "cli-org", "--window", "21:00-08:00"]);
    assert.match(reversed.stderr, /\(protection\.window\)$/m);
    for (const args of [["--window", "08:00"], ["--window", "08:00-21:00", "--no-window"], ["--per-day", "ten"]]) {
      const refused = await run(["session", "put", sid, "--org", "cli-org", ...args]);
      assert.equal(refused.code, 2, args.join(" "));
    }
    assert.deepEqual((await json(["session", "show", sid])).protection, { window: null }, "the refused puts changed nothing");
  });

  test("a credential on the command line is refused before anything is sent", async () => {
    const result = await run(["session", "put", "cli-never", "--org", "cli-org", "--backend", '{"kind":"waha","credential":"s3cret"}']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /standard input only/);
    assertEnvelope(await app.admin("GET", "/v1/admin/sessions/cli-never"), { status: 404 });
    const garbage = await run(["session", "put", "cli-never", "--org", "cli-org", "--backend", "-"], { stdin: "{nope" });
    assert.equal(garbage.code, 2);
    assert.match(garbage.stderr, /must be JSON/);
  });

  test("org set and show; webhook set, show, deliveries and delete", async () => {
    assert.deepEqual((await json(["org", "set", "cli-org", "--per-minute", "30", "--burst", "10"])).limits, { per_minute: 30, burst: 10 });
    assert.match((await run(["org", "show", "cli-org"])).stdout, /^limits\.per_minute: 30$/m);
    assert.deepEqual((await json(["org", "set", "cli-org"])).limits, { per_minute: 100, burst: 100 });

    const set = await json(["webhook", "set", "cli-org", "http://127.0.0.1:9/hooks", "--events", "group.join,group.leave"]);
    assert.equal(set.url, "http://127.0.0.1:9/hooks");
    assert.deepEqual(set.events, ["group.join", "group.leave"]);
    assert.match(set.secret, /^whsec_/, "the secret is shown on create");
    const shown = await json(["webhook", "show", "cli-org"]);
    assert.equal(shown.secret, undefined, "and never again");
    assert.equal(shown.url, set.url);
    const rotated = await json(["webhook", "set", "cli-org", "http://127.0.0.1:9/hooks", "--rotate-secret"]);
    assert.notEqual(rotated.secret, set.secret);
    assert.deepEqual((await json(["webhook", "deliveries", "cli-org"])).deliveries, []);
    assert.equal((await json(["webhook", "delete", "cli-org"])).deleted, true);
    const gone = await run(["webhook", "show", "cli-org"]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /^error: not_found: /m);
  });

  test("org policy puts the join policy as named, keeps the limits; org set keeps the policy; --clear clears it", async () => {
    const org = "cli-policy";
    const dir = mkdtempSync(path.join(tmpdir(), "joingate-cli-"));
    const file = path.join(dir, "groups.txt");
    writeFileSync(file, `# the book\n${DEMO.book1.group_jid}\n\n  ${DEMO.book2.group_jid}  # book 2\n${DEMO.book1.group_jid}\n`);
    assert.deepEqual((await json(["org", "set", org, "--per-minute", "30"])).limits, { per_minute: 30, burst: 100 });

    const put = await json([
      "org", "policy", org, "--allowed-groups-file", file, "--allowed-groups", `${DEMO.book3.group_jid},${DEMO.casino.group_jid}`,
      "--blocked-terms", "casino, crypto", "--max-size", "800", "--preview-first", "always",
    ]);
    assert.equal(put.org, org);
    assert.deepEqual(put.policy, {
      allowed_groups: [DEMO.book1.group_jid, DEMO.book2.group_jid, DEMO.book3.group_jid, DEMO.casino.group_jid],
      blocked_subject_terms: ["casino", "crypto"],
      max_size: 800,
      preview_first: "always",
    }, "the file (comments, blank lines and repeats dropped), then the flag");
    assert.deepEqual(put.limits, { per_minute: 30, burst: 100 }, "a PUT without limits keeps them");
    const shown = await run(["org", "show", org]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /^policy\.max_size: 800$/m);
    assert.match(shown.stdout, /^policy\.preview_first: always$/m);
    assert.match(shown.stdout, /^policy\.blocked_subject_terms: casino, crypto$/m);
    assert.match(shown.stdout, new RegExp(`^policy\\.allowed_groups: ${DEMO.book1.group_jid}, ${DEMO.book2.group_jid}, `, "m"));
    const set = await json(["org", "set", org, "--burst", "50"]);
    assert.deepEqual(set.policy, put.policy, "a PUT without policy keeps it");
    // The limit a PUT names is whole: its fields left out are the defaults (section 4).
    assert.deepEqual(set.limits, { per_minute: 100, burst: 50 });

    // A put replaces the policy with the rules it names; it applies from its answer on.
    const blocked = await json(["org", "policy", org, "--blocked-terms", "casino"]);
    assert.deepEqual(blocked.policy, { blocked_subject_terms: ["casino"] });
    assert.deepEqual(blocked.limits, { per_minute: 100, burst: 50 }, "a PUT without limits keeps them");
    const sid = "cli-policy-s1";
    assert.equal((await run(["session", "put", sid, "--org", org, "--limits", '{"join":{"per_minute":60,"burst":20}}'])).code, 0);
    const token = await app.token(org, ["join", "read"]);
    const refused = assertEnvelope(await app.join(sid, token, { invite: DEMO.casino.code }), { status: 403, code: "join_refused_by_policy" });
    assert.equal(refused.error.details.rule, "blocked_subject_terms");
    assertEnvelope(await app.join(sid, token, { invite: DEMO.book1.code }), { status: 200 });
    const sized = await json(["org", "policy", org, "--max-size", "800"]);
    assert.deepEqual(sized.policy, { max_size: 800 });
    const big = assertEnvelope(await app.join(sid, token, { invite: DEMO.big.code }), { status: 403, code: "join_refused_by_policy" });
    assert.equal(big.error.details.rule, "max_size");

    const cleared = await json(["org", "policy", org, "--clear"]);
    assert.deepEqual(cleared.policy, {}, '"policy": {} clears it');
    assert.deepEqual(cleared.limits, { per_minute: 100, burst: 50 });
    assert.match((await run(["org", "show", org])).stdout, /^policy: \(none\)$/m);
    assertEnvelope(await app.join(sid, token, { invite: DEMO.casino.code }), { status: 200 });
    // Neither flag of org set: the limit goes back to the default, the policy stays cleared.
    const reset = await json(["org", "set", org]);
    assert.deepEqual(reset.limits, { per_minute: 100, burst: 100 });
    assert.deepEqual(reset.policy, {});

    // Command-line mistakes exit 2 and send nothing; the server's verdicts name the field.
    const noFile = path.join(dir, "missing.txt");
    const notJid = path.join(dir, "bad.txt");
    writeFileSync(notJid, `${DEMO.book1.group_jid}\n# fine\nchat.whatsapp.com/${DEMO.book2.code}\n`);
    const empty = path.join(dir, "empty.txt");
    writeFileSync(empty, "# nothing yet\n\n");
    for (const [args, message] of [
      [[], /name at least one rule/],
      [["--clear", "--max-size", "10"], /--clear excludes --max-size/],
      [["--preview-first", "sometimes"], /--preview-first must be jobs, always, never/],
      [["--max-size", "ten"], /--max-size must be a whole number/],
      [["--blocked-terms", ","], /--blocked-terms needs at least one term/],
      [["--allowed-groups-file", noFile], /cannot read .*missing\.txt: ENOENT/],
      [["--allowed-groups-file", notJid], /bad\.txt:3: not a group JID/],
      [["--allowed-groups-file", empty], /empty\.txt names no group/],
    ]) {
      const refused = await run(["org", "policy", org, ...args]);
      assert.equal(refused.code, 2, args.join(" "));
      assert.match(refused.stderr, message, args.join(" "));
    }
    const noOrg = await run(["org", "policy"]);
    assert.equal(noOrg.code, 2);
    assert.match(noOrg.stderr, /missing ORG/);
    assert.deepEqual((await json(["org", "show", org])).policy, {}, "the refused commands changed nothing");
    const zero = await run(["org", "policy", org, "--max-size", "0"]);
    assert.equal(zero.code, 1);
    assert.match(zero.stderr, /^error: validation_error: .+\(policy\.max_size\)$/m);
    // The groups can come from standard input.
    const piped = await json(["org", "policy", org, "--allowed-groups-file", "-"], { stdin: `${DEMO.book4.group_jid}\n` });
    assert.deepEqual(piped.policy, { allowed_groups: [DEMO.book4.group_jid] });
  });

  test("errors exit non-zero with the envelope's message", async () => {
    const bad = await run(["token", "create", "--org", "cli-org", "--cap", "fly"]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^error: validation_error: .+\(capabilities/m);
    const wrongToken = await run(["session", "show", "x"], { env: { JOINGATE_ADMIN_TOKEN: "wrong" } });
    assert.equal(wrongToken.code, 1);
    assert.match(wrongToken.stderr, /^error: unauthorized: /m);
    const noToken = await run(["session", "show", "x"], { env: { JOINGATE_ADMIN_TOKEN: "" } });
    assert.equal(noToken.code, 2);
    const down = await run(["session", "show", "x"], { env: { JOINGATE_URL: "http://127.0.0.1:9" } });
    assert.equal(down.code, 1);
    assert.match(down.stderr, /^error: cannot reach http:\/\/127\.0\.0\.1:9/m);
    const unknown = await run(["dance"]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command: dance/);
    // The flag works as well as the environment, and a base URL with a trailing slash.
    const flagged = await run(["--base-url", `${app.url}/`, "--admin-token", ADMIN_TOKEN, "org", "show", "cli-org"], {
      env: { JOINGATE_URL: "", JOINGATE_ADMIN_TOKEN: "" },
    });
    assert.equal(flagged.code, 0, flagged.stderr);
  });
});
