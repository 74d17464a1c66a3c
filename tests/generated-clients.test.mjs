// Clients generated from docs/openapi.json: scripts/generate-clients.sh runs openapi-python-client
// and openapi-typescript and fails on any warning of either; then the generated TypeScript
// types type-check with typed, required `data`, and the generated Python client (run with the
// generator's virtualenv) joins a group and reads a job from a local joingate on a real port.
//
// The generators are installed by scripts/setup.sh (bash scripts/generate-clients.sh
// --install-only). Without them this file skips, saying so, unless CI is set: there it fails.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { startJoingate, ROOT } from "./helpers.mjs";
import { DEMO } from "../sim/catalogue.mjs";

const VENV = path.join(ROOT, ".venv-clients");
const PYTHON = path.join(VENV, "bin/python");
const GENERATORS = [path.join(VENV, "bin/openapi-python-client"), path.join(ROOT, "node_modules/.bin/openapi-typescript")];
const missing = GENERATORS.filter((file) => !existsSync(file)).map((file) => path.relative(ROOT, file));
const skip =
  missing.length > 0 && !process.env.CI
    ? `client generators not installed (${missing.join(", ")}): run bash scripts/setup.sh or bash scripts/generate-clients.sh --install-only`
    : false;

/** Runs scripts/generate-clients.sh into `out` (optionally on another document). */
function generate(out, doc) {
  const started = Date.now();
  const run = spawnSync("bash", [path.join(ROOT, "scripts/generate-clients.sh")], {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, CLIENTS_OUT: out, ...(doc ? { CLIENTS_DOC: doc } : {}) },
    timeout: 120_000,
  });
  const log = (name) => (existsSync(path.join(out, name)) ? readFileSync(path.join(out, name), "utf8") : "");
  return { ...run, ms: Date.now() - started, python: log("python.log"), typescript: log("typescript.log") };
}

describe("generated clients", { skip }, () => {
  let work;
  let out;
  let generation;

  before(() => {
    // Under CI a missing generator is a failure, never a skip.
    assert.deepEqual(missing, [], `client generators not installed: ${missing.join(", ")} (scripts/setup.sh installs them)`);
    work = mkdtempSync(path.join(os.tmpdir(), "joingate-clients-"));
    out = path.join(work, "clients");
    generation = generate(out);
  });

  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test("openapi-python-client and openapi-typescript generate with no warning", () => {
    const report = `${generation.stdout}${generation.stderr}`;
    assert.equal(generation.status, 0, report);
    assert.match(generation.stdout, /\[clients\] no warnings;/);
    // The generators' whole output is their normal lines (the script checks it too).
    assert.equal(generation.python.trim(), "Generating joingate_client", generation.python);
    const tsLines = generation.typescript.replace(/\x1b\[[0-9;]*m/g, "").trim().split("\n");
    assert.equal(tsLines.length, 2, generation.typescript);
    assert.match(tsLines[0], /^✨ openapi-typescript 7\./);
    assert.match(tsLines[1], /^🚀 .*joingate\.d\.ts/);
    assert.doesNotMatch(generation.python + generation.typescript, /warn|⚠/i);

    // One model per success envelope, none of them lost or duplicated.
    const doc = JSON.parse(readFileSync(path.join(ROOT, "docs/openapi.json"), "utf8"));
    const snake = (name) => name.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toLowerCase();
    const models = readdirSync(path.join(out, "python/joingate_client/models"));
    const envelopes = Object.keys(doc.components.schemas).filter((name) => name.endsWith("Ok"));
    assert.ok(envelopes.length >= 25);
    for (const name of envelopes) assert.ok(models.includes(`${snake(name)}.py`), `model ${name}`);
    assert.deepEqual(models.filter((file) => /success_data/.test(file)), []);
    // Operations are grouped by tag.
    const groups = readdirSync(path.join(out, "python/joingate_client/api")).filter((f) => !f.endsWith(".py"));
    assert.deepEqual(groups.sort(), doc.tags.map((t) => t.name).sort());
    const types = readFileSync(path.join(out, "typescript/joingate.d.ts"), "utf8");
    assert.match(types, /JoinResultOk: \{\s*\/\*\* @constant \*\/\s*success: true;\s*data: components\["schemas"\]\["JoinResult"\];/);
  });

  test("a warning fails the generation (an envelope in the old allOf shape)", () => {
    const doc = JSON.parse(readFileSync(path.join(ROOT, "docs/openapi.json"), "utf8"));
    const schemas = doc.components.schemas;
    schemas.Success = { type: "object", required: ["success", "data", "request_id"], properties: { success: { const: true }, data: { type: "object" }, request_id: { $ref: "#/components/schemas/RequestId" } } };
    for (const [name, data] of [["JoinResultOk", "JoinResult"], ["JobOk", "Job"]]) {
      schemas[name] = { allOf: [{ $ref: "#/components/schemas/Success" }], properties: { data: { $ref: `#/components/schemas/${data}` } } };
    }
    const broken = path.join(work, "allof.json");
    writeFileSync(broken, JSON.stringify(doc));
    const run = generate(path.join(work, "broken"), broken);
    assert.notEqual(run.status, 0, `${run.stdout}${run.stderr}`);
    assert.match(run.python, /duplicate models with name "SuccessData"/);
    assert.match(run.stdout, /\[clients\] FAILED/);
  });

  test("the TypeScript types type-check, with data required and typed", () => {
    const file = path.join(out, "typescript/usage.ts");
    writeFileSync(
      file,
      `import type { components, paths } from "./joingate";
type JoinOk = paths["/v1/sessions/{sid}/groups/join"]["post"]["responses"][200]["content"]["application/json"];
type JobOk = paths["/v1/sessions/{sid}/join-jobs/{job_id}"]["get"]["responses"][200]["content"]["application/json"];
export function statusOf(ok: JoinOk): "joined" | "pending_approval" | "already_member" {
  const success: true = ok.success;
  return success && ok.data.status;
}
export function totalOf(ok: JobOk): number {
  const job: components["schemas"]["Job"] = ok.data;
  return job.counts.total;
}
// @ts-expect-error data is required
export const withoutData: JoinOk = { success: true, request_id: "r1" };
// @ts-expect-error status is one of three
export const badStatus: JoinOk = { success: true, data: { status: "maybe" }, request_id: "r1" };
`,
    );
    const tsc = spawnSync(process.execPath, [path.join(ROOT, "node_modules/typescript/bin/tsc"), "--noEmit", "--strict", "--skipLibCheck", "false", "--target", "es2022", "--module", "nodenext", file], {
      cwd: ROOT,
      encoding: "utf8",
      timeout: 60_000,
    });
    assert.equal(tsc.status, 0, `${tsc.stdout}${tsc.stderr}`);
  });

  test("the Python client joins a group and reads a job against a local joingate", async () => {
    const app = await startJoingate({ serve: true });
    try {
      const sid = "py-client";
      await app.session(sid, "acme");
      const token = await app.token("acme", ["join", "read", "manage"]);
      const args = {
        base: app.url,
        token,
        sid,
        join_code: DEMO.open.code,
        join_gjid: DEMO.open.group_jid,
        job_code: DEMO.approval.code,
      };
      const script = `
import datetime, json, sys
from joingate_client import AuthenticatedClient
from joingate_client.api.groups import join_group
from joingate_client.api.jobs import get_join_job, submit_join_job
from joingate_client.models import (
    Error, ErrorCode, JobOk, JobStatus, JobSubmitInvites, JoinByInvite, JoinResultOk, JoinResultStatus,
)

args = json.loads(sys.argv[1])
# An answer with a status the document does not list raises (errors.UnexpectedStatus).
client = AuthenticatedClient(base_url=args["base"], token=args["token"], raise_on_unexpected_status=True)
with client as c:
    result = join_group.sync(args["sid"], client=c, body=JoinByInvite(invite=args["join_code"]))
    assert isinstance(result, JoinResultOk), result
    assert result.success is True
    assert result.data.status == "joined" and result.data.status is JoinResultStatus.JOINED
    assert result.data.group_jid == args["join_gjid"]

    refused = join_group.sync(args["sid"], client=c, body=JoinByInvite(invite="not an invite"))
    assert isinstance(refused, Error), refused
    assert refused.error.code is ErrorCode.INVITE_MALFORMED

    submitted = submit_join_job.sync(args["sid"], client=c, body=JobSubmitInvites(invites=[args["job_code"]]))
    assert isinstance(submitted, JobOk), submitted
    job = get_join_job.sync(args["sid"], submitted.data.job_id, client=c)
    assert isinstance(job, JobOk), job
    assert job.data.job_id == submitted.data.job_id
    assert job.data.session_id == args["sid"]
    assert isinstance(job.data.status, JobStatus)
    assert job.data.counts.total == 1
    assert isinstance(job.data.created_at, datetime.datetime)

print(json.dumps({
    "join": {"status": result.data.status.value, "group_jid": result.data.group_jid, "request_id": result.request_id},
    "refused": refused.error.code.value,
    "job": {"job_id": job.data.job_id, "status": job.data.status.value, "total": job.data.counts.total},
}))
`;
      // Asynchronously: the simulator behind joingate runs in this process and must answer.
      const run = await new Promise((resolve) => {
        const env = { ...process.env, PYTHONPATH: path.join(out, "python"), PYTHONDONTWRITEBYTECODE: "1" };
        execFile(PYTHON, ["-c", script, JSON.stringify(args)], { env, timeout: 60_000 }, (error, stdout, stderr) =>
          resolve({ status: error ? (error.code ?? 1) : 0, stdout, stderr }),
        );
      });
      assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
      const seen = JSON.parse(run.stdout);
      assert.equal(seen.join.status, "joined");
      assert.equal(seen.join.group_jid, DEMO.open.group_jid);
      assert.equal(seen.refused, "invite_malformed");
      assert.match(seen.job.job_id, /^job_[0-9a-f]{16}$/);
      assert.equal(seen.job.total, 1);
      // The server saw the same job.
      const direct = await app.request("GET", `/v1/sessions/${sid}/join-jobs/${seen.job.job_id}`, { token });
      assert.equal(direct.status, 200, direct.text);
      assert.equal(direct.body.data.counts.total, 1);
    } finally {
      await app.close();
    }
  });
});
