// Takes the README's screenshot of the operator console (docs/img/console.png) in headless
// Chromium against a local joingate, with a demo org whose join job is running:
// node scripts/console-screenshot.mjs
import puppeteer from "puppeteer-core";
import { startJoingate, eventually } from "../tests/helpers.mjs";
import { DEMO } from "../sim/catalogue.mjs";

// The deployment's day caps by the number's age (wrangler.toml), so that the bars mean what
// they would: a number of today joins 5 times a day, one of years 40.
const TIERS = '[{"from_days":0,"per_day":5,"per_hour":2},{"from_days":3,"per_day":10,"per_hour":3},{"from_days":7,"per_day":20,"per_hour":5},{"from_days":14,"per_day":30,"per_hour":8},{"from_days":30,"per_day":40,"per_hour":10}]';
const app = await startJoingate({ serve: true, assets: true, vars: { PROTECTION_TIERS: TIERS } });
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
try {
  const call = async (method, path, token, json) => {
    const res = await app.request(method, path, { token, json });
    if (!res.body?.success) throw new Error(`${method} ${path}: ${res.text}`);
    return res.body.data;
  };
  const old = { number_since: "2020-01-01" };
  await app.admin("PUT", "/v1/admin/sessions/demo", { org: "demo", protection: old });
  await app.admin("PUT", "/v1/admin/sessions/demo-jobs", { org: "demo", protection: old });
  await app.admin("PUT", "/v1/admin/sessions/demo-new", { org: "demo", limits: { join: { per_minute: 60, burst: 10, per_hour: 10 } } });
  const token = await app.token("demo", ["join", "read", "manage"], { label: "local demo" });
  for (const invite of [DEMO.open.code, DEMO.approval.code]) await call("POST", "/v1/sessions/demo/groups/join", token, { invite });
  for (const name of ["book1", "book2", "book3"]) await call("POST", "/v1/sessions/demo-new/groups/join", token, { invite: DEMO[name].code });
  // A short job that completes, then a long one that keeps running (an hour or two a join).
  const short = await call("POST", "/v1/sessions/demo-jobs/join-jobs", token, {
    invites: [DEMO.member.code, DEMO.revoked.code],
    label: "welcome groups",
    interval_s: 5,
  });
  const long = await call("POST", "/v1/sessions/demo-jobs/join-jobs", token, {
    invites: [DEMO.open.code, DEMO.book1.code, DEMO.book2.code, DEMO.book3.code, DEMO.approval.code],
    label: "partner groups",
    interval_s: 3600,
  });
  await eventually(async () => (await call("GET", `/v1/sessions/demo-jobs/join-jobs/${short.job_id}`, token)).status === "completed", "the short job", 30_000);
  await eventually(async () => (await call("GET", `/v1/sessions/demo-jobs/join-jobs/${long.job_id}`, token)).counts.pending === 4, "the long job's first item", 30_000);

  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 1180 });
  await page.goto(`${app.url}/console`, { waitUntil: "networkidle0" });
  await page.type("#token-input", token);
  await page.keyboard.press("Enter");
  await page.waitForSelector('button[data-key="select-demo-jobs"]');
  await page.click('button[data-key="select-demo-jobs"]');
  await page.waitForSelector(`li[data-job="${long.job_id}"] progress`);
  await page.click(`li[data-job="${long.job_id}"] button[data-action="items"]`);
  await page.waitForSelector(`li[data-job="${long.job_id}"] tr[data-item]`);
  await page.waitForNetworkIdle();
  await page.mouse.move(1, 1);
  await page.evaluate(() => {
    document.activeElement?.blur();
    window.scrollTo(0, 0);
  });
  await page.screenshot({ path: "docs/img/console.png" });
  console.log("docs/img/console.png");
} finally {
  await browser.close();
  await app.close();
}
