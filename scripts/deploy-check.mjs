// Proves the deployable bundle builds, offline: `wrangler deploy --dry-run --outdir` (no
// account, no network), then checks the upload against the Workers Free plan's size limit
// (3 MB after compression; 10 MB on paid plans). Run by the test command after the build.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { ROOT } from "./miniflare-options.mjs";

const FREE_PLAN_LIMIT = 3 * 1024 * 1024;
const outdir = mkdtempSync(path.join(tmpdir(), "joingate-deploy-"));
try {
  const run = spawnSync(path.join(ROOT, "node_modules/.bin/wrangler"), ["deploy", "--dry-run", "--outdir", outdir], {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", CI: "true" },
  });
  if (run.status !== 0) {
    console.error(run.stdout, run.stderr);
    throw new Error(`wrangler deploy --dry-run exited with ${run.status}`);
  }
  // What is uploaded: the modules (the entry, the wasm, the OpenAPI text), not source maps.
  const files = readdirSync(outdir).filter((f) => !f.endsWith(".map") && f !== "README.md");
  if (!files.some((f) => f.endsWith(".wasm")) || !files.includes("entry.js")) {
    throw new Error(`the bundle lacks its entry or wasm: ${files.join(", ")}`);
  }
  let raw = 0;
  let gzip = 0;
  for (const file of files) {
    const bytes = readFileSync(path.join(outdir, file));
    raw += statSync(path.join(outdir, file)).size;
    gzip += gzipSync(bytes, { level: 9 }).length;
  }
  const reported = run.stdout.match(/Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/);
  const kib = (n) => (n / 1024).toFixed(1);
  console.log(
    `deploy bundle: ${files.length} modules, ${kib(raw)} KiB raw, ${kib(gzip)} KiB gzip` +
      (reported ? ` (wrangler: ${reported[1]} / ${reported[2]} KiB)` : "") +
      `; the Free plan allows ${kib(FREE_PLAN_LIMIT)} KiB`,
  );
  const worst = Math.max(gzip, reported ? Number(reported[2]) * 1024 : 0);
  if (worst > FREE_PLAN_LIMIT) throw new Error("over the Workers Free plan's 3 MB limit");
} finally {
  rmSync(outdir, { recursive: true, force: true });
}
