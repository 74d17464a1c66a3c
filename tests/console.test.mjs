// The operator console (GET /console, contract section 16): static assets, checked in a real
// headless Chromium (Debian's package) driven by puppeteer-core. Every figure it shows must
// be the API's; it must ask only what its token may ask, at most 12 requests a minute, with
// no request leaving the local run, no failing answer and no console error; the token stays
// in sessionStorage, never in localStorage or a URL.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import puppeteer from "puppeteer-core";
import { SignJWT, exportJWK, generateKeyPair } from "jose";
import { startJoingate, startReceiver, assertEnvelope, eventually, ADMIN_TOKEN } from "./helpers.mjs";
import { DEMO } from "../sim/catalogue.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ISS = "https://id.console.test";
const AUD = "joingate-console";
const ORG = "demo";
const BUDGET = 12;

/** A JWKS of one ES256 key on loopback, and login tokens signed with it. */
async function startIdp() {
  const { publicKey, privateKey } = await generateKeyPair("ES256", { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: "console-1", alg: "ES256", use: "sig" };
  const server = http.createServer((req, res) => {
    res.writeHead(200, { "Content-Type": "application/json", "Cache-Control": "public, max-age=600" });
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/.well-known/jwks.json`,
    sign: (claims) => {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ iss: ISS, aud: AUD, sub: "operator-1", org: ORG, iat: now, exp: now + 3600, ...claims })
        .setProtectedHeader({ alg: "ES256", kid: "console-1" })
        .sign(privateKey);
    },
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
}

/**
 * The most requests that fell inside any 60 s. The times are when the test's handler saw
 * each request, which may lag the page's send by a moment: a window of 59.5 s keeps that
 * lag from counting a request the page sent just after its minute as inside it.
 */
function busiestMinute(times) {
  let most = 0;
  for (let i = 0; i < times.length; i += 1) {
    const within = times.filter((t) => t >= times[i] && t < times[i] + 59_500).length;
    most = Math.max(most, within);
  }
  return most;
}

describe("operator console", () => {
  let app;
  let browser;
  let receiver;
  let idp;
  let tenantToken;
  let jobId;
  const pages = [];

  const api = async (method, path, token = tenantToken, json) => assertEnvelope(await app.request(method, path, { token, json }), {}).data;

  /**
   * A new tab (its own sessionStorage) on /console, watched: requests leaving the run are
   * refused and recorded, every API request is recorded with its time, every API answer
   * of 400 or more and every console error too.
   */
  async function openConsole() {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    const watch = { page, foreign: [], api: [], failed: [], errors: [] };
    page.on("console", (msg) => {
      if (msg.type() === "error") watch.errors.push(msg.text());
    });
    page.on("pageerror", (error) => watch.errors.push(String(error)));
    await page.setRequestInterception(true);
    page.on("request", (request) => {
      const url = new URL(request.url());
      if (url.protocol === "data:") return request.continue();
      if (url.origin !== app.url) {
        watch.foreign.push(request.url());
        return request.abort();
      }
      if (url.pathname.startsWith("/v1/")) {
        watch.api.push({ at: Date.now(), method: request.method(), path: url.pathname + url.search, auth: request.headers().authorization });
      }
      return request.continue();
    });
    page.on("response", (response) => {
      const url = new URL(response.url());
      if (url.origin === app.url && response.status() >= 400) watch.failed.push(`${response.request().method()} ${url.pathname} ${response.status()}`);
    });
    await page.goto(`${app.url}/console`, { waitUntil: "networkidle0" });
    pages.push(watch);
    return watch;
  }

  async function signIn(page, token) {
    await page.waitForSelector("#token-input");
    await page.type("#token-input", token);
    await page.keyboard.press("Enter");
  }

  /**
   * Chooses session `sid` once every row of the table has its status (the table is drawn
   * again as each status arrives).
   */
  async function choose(page, sid) {
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll("tr[data-session]")];
      return rows.length > 0 && rows.every((r) => r.querySelector("progress"));
    });
    await page.click(`button[data-key="select-${sid}"]`);
  }

  /** What every visit must hold: nothing foreign, no failure, no console error, the budget. */
  function assertClean(watch, { allowFailed = [] } = {}) {
    assert.deepEqual(watch.foreign, [], "no request leaves the local run");
    assert.deepEqual(watch.failed.filter((f) => !allowFailed.includes(f)), [], "no API answer fails");
    const errors = watch.errors.filter((e) => !(allowFailed.length && e.includes("404")));
    assert.deepEqual(errors, [], "no console error");
    const most = busiestMinute(watch.api.map((r) => r.at));
    assert.ok(most <= BUDGET, `${most} requests in one minute`);
  }

  before(async () => {
    receiver = await startReceiver();
    idp = await startIdp();
    app = await startJoingate({
      serve: true,
      assets: true,
      // The test reads everything the pages show through the API too: no org limit meets it.
      orgLimit: 100_000,
      vars: { JWT_ISSUER: ISS, JWT_AUDIENCE: AUD, JWT_JWKS_URL: idp.url },
    });
    // The demo org: a webhook, two sessions, a pending join and a book, and a running job.
    assertEnvelope(await app.admin("PUT", `/v1/admin/orgs/${ORG}/webhook`, { url: `${receiver.base}/events` }), { status: 200 });
    await app.session("demo", ORG);
    await app.session("demo-jobs", ORG);
    await app.session("other-org-session", "elsewhere");
    tenantToken = await app.token(ORG, ["join", "read"]);
    for (const invite of [DEMO.open.code, DEMO.approval.code]) {
      assertEnvelope(await app.join("demo", tenantToken, { invite }), { status: 200 });
    }
    // Several items, an hour or more apart: the first runs at once, the job stays running.
    const job = await api("POST", "/v1/sessions/demo-jobs/join-jobs", tenantToken, {
      invites: [DEMO.open.code, DEMO.book1.code, DEMO.book2.code, DEMO.book3.code],
      label: "console test",
      interval_s: 3600,
    });
    jobId = job.job_id;
    await eventually(async () => {
      const now = await api("GET", `/v1/sessions/demo-jobs/join-jobs/${jobId}`);
      return now.status === "running" && now.counts.pending === now.counts.total - 1;
    }, "the job's first item");
    await eventually(async () => (await api("GET", `/v1/admin/orgs/${ORG}/webhook/deliveries`, ADMIN_TOKEN)).deliveries.some((d) => d.state === "delivered"), "a delivered webhook");
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      // Root in a container has no user namespace for Chromium's sandbox.
      args: ["--no-sandbox", "--disable-dev-shm-usage"],
    });
  });

  after(async () => {
    await browser?.close();
    await app?.close();
    await receiver?.close();
    await idp?.close();
  });

  test("GET /console is the page, from static assets; it is not an API route", async () => {
    const res = await fetch(`${app.url}/console`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type"), /^text\/html/);
    const html = await res.text();
    assert.match(html, /<title>joingate operator console<\/title>/);
    assert.ok(!/https?:\/\//.test(html.replace(/<!--[\s\S]*?-->/g, "")), "no absolute URL in the page");
    for (const asset of ["/console/console.js", "/console/console.css"]) {
      assert.equal((await fetch(`${app.url}${asset}`)).status, 200, asset);
    }
    const spec = await (await fetch(`${app.url}/v1/openapi.json`)).json();
    assert.ok(!Object.keys(spec.paths).some((p) => p.includes("console")));
  });

  test("an API token: the org's sessions and a running job's progress, as the API says", async () => {
    const watch = await openConsole();
    const { page } = watch;
    await signIn(page, tenantToken);
    await page.waitForSelector('[data-field="org"]');
    assert.equal(await page.$eval('[data-field="org"]', (e) => e.textContent), ORG);
    assert.equal(await page.$eval('[data-field="capabilities"]', (e) => e.textContent), "join, read");

    // Sessions: the list of GET /v1/sessions, each row's figures those of its status.
    const listed = (await api("GET", "/v1/sessions")).sessions;
    assert.deepEqual(listed.map((s) => s.session_id), ["demo", "demo-jobs"]);
    await page.waitForFunction((n) => document.querySelectorAll("tr[data-session] progress").length === n, {}, listed.length);
    for (const s of listed) {
      const status = await api("GET", `/v1/sessions/${s.session_id}`);
      const row = await page.$eval(`tr[data-session="${s.session_id}"]`, (tr) => ({
        cells: [...tr.children].map((c) => c.textContent.trim()),
        used: tr.querySelector("progress").dataset.used,
        cap: tr.querySelector("progress").dataset.cap,
        value: tr.querySelector("progress").value,
        max: tr.querySelector("progress").max,
      }));
      assert.equal(row.cells[0].replace(/^▸ /, ""), s.session_id);
      assert.equal(row.cells[1], s.backend_kind);
      assert.equal(row.cells[2], status.connected ? "connected" : "not connected");
      assert.equal(row.cells[3], status.cooldown_until === null ? "none" : row.cells[3]);
      assert.equal(Number(row.used), status.protection.used_last_24h, `${s.session_id} used`);
      assert.equal(Number(row.cap), status.protection.per_day, `${s.session_id} cap`);
      assert.equal(row.max, status.protection.per_day);
      assert.equal(row.cells[4], `${status.protection.used_last_24h} of ${status.protection.per_day}`);
    }

    // Pending joins of "demo", the first session, chosen at first (the approval group), and
    // the org's book.
    assert.equal(await page.$eval('button[data-key="select-demo"]', (b) => b.getAttribute("aria-pressed")), "true");
    await page.waitForFunction(() => [...document.querySelectorAll("#session td code")].some((c) => c.textContent.endsWith("@g.us")));
    const pending = (await api("GET", "/v1/sessions/demo/pending-joins")).pending;
    assert.ok(pending.some((p) => p.group_jid === DEMO.approval.group_jid && p.state === "pending"));
    const shownPending = await page.$$eval("#session table tbody tr", (rows) => rows.map((r) => [r.children[0].textContent, r.children[1].textContent]));
    assert.deepEqual(shownPending, pending.map((p) => [p.group_jid, p.state]));
    const book = (await api("GET", "/v1/groups")).groups;
    assert.ok(book.length >= 2);
    const shownBook = await page.$$eval("#book tbody tr", (rows) => rows.map((r) => r.children[0].textContent));
    assert.deepEqual(shownBook, book.map((g) => g.group_jid));

    // The job's bar: finished = total - pending, against total, as GET …/join-jobs/{id} says.
    await choose(page, "demo-jobs");
    const card = `li[data-job="${jobId}"]`;
    await page.waitForSelector(`${card} progress`);
    const shown = await page.$eval(card, (li) => ({
      value: li.querySelector("progress").value,
      max: li.querySelector("progress").max,
      text: li.querySelector('[data-field="progress"]').textContent,
      status: li.dataset.status,
      buttons: [...li.querySelectorAll("button")].map((b) => b.textContent),
    }));
    const job = await api("GET", `/v1/sessions/demo-jobs/join-jobs/${jobId}`);
    assert.equal(job.status, "running");
    assert.equal(shown.status, job.status);
    assert.equal(shown.max, job.counts.total);
    assert.equal(shown.value, job.counts.total - job.counts.pending);
    assert.equal(shown.text, `${job.counts.total - job.counts.pending} of ${job.counts.total} finished`);
    assert.ok(shown.max >= 4 && shown.value >= 1, JSON.stringify(shown));
    assert.deepEqual(shown.buttons, ["Pause", "Cancel", "Show items"]);

    // Its items with their outcomes.
    await page.click(`${card} button[data-action="items"]`);
    await page.waitForSelector(`${card} tr[data-item]`);
    const items = await page.$$eval(`${card} tr[data-item]`, (rows) => rows.map((r) => ({ index: Number(r.dataset.item), outcome: r.children[2].textContent, invite: r.children[1].textContent })));
    assert.deepEqual(items, job.items.map((i) => ({ index: i.index, outcome: i.status.replaceAll("_", " "), invite: i.invite })));

    // Only what a tenant token may ask; the token only ever in the header.
    for (const r of watch.api) {
      assert.ok(!r.path.startsWith("/v1/admin"), r.path);
      assert.ok(!r.path.includes(tenantToken), "never in a URL");
      assert.equal(r.auth, `Bearer ${tenantToken}`);
    }
    assertClean(watch);
    await page.close();
  });

  test("pause and resume from the page: the API then shows paused, then running", async () => {
    const watch = await openConsole();
    const { page } = watch;
    await signIn(page, tenantToken);
    await choose(page, "demo-jobs");
    const card = `li[data-job="${jobId}"]`;
    await page.waitForSelector(`${card} button[data-action="pause"]`);
    await page.click(`${card} button[data-action="pause"]`);
    await page.waitForSelector(`${card}[data-status="paused"]`);
    assert.equal((await api("GET", `/v1/sessions/demo-jobs/join-jobs/${jobId}`)).status, "paused");
    // Resume with the keyboard: the focus stayed on the button, which now says Resume.
    const focused = await page.evaluate(() => document.activeElement?.textContent);
    assert.equal(focused, "Resume");
    await page.keyboard.press("Enter");
    await page.waitForSelector(`${card}:not([data-status="paused"])`);
    const resumed = await api("GET", `/v1/sessions/demo-jobs/join-jobs/${jobId}`);
    assert.equal(resumed.status, "running");
    assert.equal(await page.$eval(card, (li) => li.dataset.status), resumed.status);
    const posts = watch.api.filter((r) => r.method === "POST").map((r) => r.path);
    assert.deepEqual(posts, [`/v1/sessions/demo-jobs/join-jobs/${jobId}/pause`, `/v1/sessions/demo-jobs/join-jobs/${jobId}/resume`]);
    assertClean(watch);
    await page.close();
  });

  test("a page left open polls gently, only while visible; the token in sessionStorage only", async () => {
    const watch = await openConsole();
    const { page } = watch;
    await signIn(page, tenantToken);
    // The first session is chosen at first: its status and jobs are read again every 15 s
    // while the budget has room for them and two clicks (the first minute's load is 7).
    await page.waitForSelector('dl[data-status="demo"]');
    await new Promise((resolve) => setTimeout(resolve, 33_000));
    const polls = watch.api.filter((r) => r.path === "/v1/sessions/demo" || r.path === "/v1/sessions/demo/join-jobs");
    assert.ok(polls.length >= 4, `the selected session is refreshed: ${polls.length}`);
    assertClean(watch);
    // Hidden: no more requests.
    await page.evaluate(() => {
      Object.defineProperty(document, "visibilityState", { value: "hidden", configurable: true });
      document.dispatchEvent(new Event("visibilitychange"));
    });
    const before = watch.api.length;
    await new Promise((resolve) => setTimeout(resolve, 16_000));
    assert.equal(watch.api.length, before, "nothing while hidden");

    // The token is in this tab's sessionStorage only; a reload keeps the tab signed in (and
    // its request budget: the reload's requests wait for room).
    const stored = await page.evaluate(() => ({
      session: Object.keys(sessionStorage).map((k) => sessionStorage.getItem(k)),
      local: localStorage.length,
      url: location.href,
    }));
    assert.ok(stored.session.includes(tenantToken));
    assert.equal(stored.local, 0);
    assert.ok(!stored.url.includes(tenantToken));
    assert.deepEqual(await page.cookies(), []);
    await page.reload({ waitUntil: "domcontentloaded" });
    await page.waitForSelector('dl[data-status="demo"]', { timeout: 70_000 });
    // "Forget token" takes it out of the tab's storage.
    await page.click("#forget");
    await page.waitForSelector("#token-input");
    assert.equal(await page.evaluate((t) => Object.keys(sessionStorage).some((k) => sessionStorage.getItem(k) === t), tenantToken), false);
    assert.equal(await page.evaluate(() => localStorage.length), 0);
    assertClean(watch);
    await page.close();
  });

  test("a viewer's login token sees the org but may not pause; a token without read sees only itself", async () => {
    const watch = await openConsole();
    const { page } = watch;
    await signIn(page, await idp.sign({ role: "viewer" }));
    await page.waitForSelector('[data-field="org"]');
    assert.match(await page.$eval("#who-text", (e) => e.textContent), /^Login token of org demo/);
    await choose(page, "demo-jobs");
    await page.waitForSelector(`li[data-job="${jobId}"] progress`);
    const buttons = await page.$$eval(`li[data-job="${jobId}"] button`, (b) => b.map((x) => x.textContent));
    assert.deepEqual(buttons, ["Show items"]);
    assertClean(watch);
    await page.close();

    const joinOnly = await app.token(ORG, ["join"]);
    const second = await openConsole();
    await signIn(second.page, joinOnly);
    await second.page.waitForSelector("#no-read");
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.deepEqual(second.api.map((r) => r.path), ["/v1/token"]);
    assertClean(second);
    await second.page.close();
  });

  test("an unknown token: the envelope's message, back on the form", async () => {
    const watch = await openConsole();
    const { page } = watch;
    await signIn(page, "jg_not-a-real-token");
    await page.waitForSelector("#signin-error:not([hidden])");
    const expected = (await app.request("GET", "/v1/token", { token: "jg_not-a-real-token" })).body.error.message;
    assert.equal(await page.$eval("#signin-error", (e) => e.textContent), expected);
    assert.equal(await page.evaluate(() => sessionStorage.length), 1, "only the request log is kept");
    await page.close();
  });

  test("the admin token: tokens minted (shown once) and revoked, sessions, an org's webhook", async () => {
    const watch = await openConsole();
    const { page } = watch;
    await signIn(page, ADMIN_TOKEN);
    await page.waitForSelector('div[data-table="tokens"]');
    await page.waitForSelector('div[data-table="admin-sessions"]');

    // The lists as the API answers them.
    const tokens = (await api("GET", "/v1/admin/tokens", ADMIN_TOKEN)).tokens;
    const shownTokens = await page.$$eval("tr[data-token]", (rows) => rows.map((r) => [r.dataset.token, r.dataset.revoked]));
    assert.deepEqual(shownTokens, tokens.map((t) => [t.token_id, String(t.revoked)]));
    const sessions = (await api("GET", "/v1/admin/sessions", ADMIN_TOKEN)).sessions;
    const shownSessions = await page.$$eval('div[data-table="admin-sessions"] tbody tr', (rows) => rows.map((r) => [r.children[0].textContent, r.children[1].textContent]));
    assert.deepEqual(shownSessions, sessions.map((s) => [s.session_id, s.org]));
    // Filtered by an org: that org's sessions only, as the API lists them.
    const ours = (await api("GET", `/v1/admin/sessions?org=${ORG}`, ADMIN_TOKEN)).sessions.map((s) => s.session_id);
    assert.ok(ours.length > 0 && ours.length < sessions.length, "the filter has something to leave out");
    await page.type("#sessions-org", ORG);
    await page.click('button[data-key="sessions-filter"]');
    await page.waitForFunction(
      (want) => {
        const rows = [...document.querySelectorAll('div[data-table="admin-sessions"] tbody tr')];
        return rows.length > 0 && rows.map((r) => r.children[0].textContent).join(",") === want;
      },
      {},
      ours.join(","),
    );

    // Mint, with Enter in the form: the token is shown once.
    await page.type("#mint-org", ORG);
    await page.click("#mint-cap-join");
    await page.type("#mint-label", "minted in the console");
    await page.keyboard.press("Enter");
    await page.waitForSelector("#minted-token");
    const minted = await page.$eval("#minted-token", (e) => e.value);
    assert.match(minted, /^jg_/);
    const info = await api("GET", "/v1/token", minted);
    assert.deepEqual([info.org, [...info.capabilities].sort()], [ORG, ["join", "read"]]);
    const listed = (await api("GET", `/v1/admin/tokens?org=${ORG}`, ADMIN_TOKEN)).tokens.find((t) => t.label === "minted in the console");
    assert.ok(listed, "the API lists it");
    assert.equal(listed.revoked, false);
    await page.waitForSelector(`tr[data-token="${listed.token_id}"][data-revoked="false"]`);
    await page.click('button[data-key="minted-done"]');
    assert.equal(await page.evaluate((t) => document.documentElement.outerHTML.includes(t), minted), false, "forgotten once done");
    assert.equal(await page.evaluate((t) => Object.keys(sessionStorage).some((k) => sessionStorage.getItem(k).includes(t)), minted), false);

    // Revoke it from its row (with a confirmation): the API lists it revoked.
    await page.click(`button[data-key="revoke-${listed.token_id}"]`);
    await page.click(`button[data-key="revoke-yes-${listed.token_id}"]`);
    await page.waitForSelector(`tr[data-token="${listed.token_id}"][data-revoked="true"]`);
    const after = (await api("GET", `/v1/admin/tokens?org=${ORG}`, ADMIN_TOKEN)).tokens.find((t) => t.token_id === listed.token_id);
    assert.equal(after.revoked, true);

    // The demo org's webhook and its deliveries; redeliver one.
    await page.type("#webhook-org", ORG);
    await page.keyboard.press("Enter");
    await page.waitForSelector('div[data-table="deliveries"]');
    const hook = await api("GET", `/v1/admin/orgs/${ORG}/webhook`, ADMIN_TOKEN);
    assert.equal(await page.$eval(`dl[data-webhook="${ORG}"] dd code`, (e) => e.textContent), hook.url);
    const deliveries = (await api("GET", `/v1/admin/orgs/${ORG}/webhook/deliveries`, ADMIN_TOKEN)).deliveries;
    const shownDeliveries = await page.$$eval("tr[data-delivery]", (rows) => rows.map((r) => r.dataset.delivery));
    assert.deepEqual(shownDeliveries, deliveries.map((d) => d.delivery_id));
    const target = deliveries.find((d) => d.state === "delivered");
    await page.click(`button[data-key="redeliver-${target.delivery_id}"]`);
    await eventually(async () => {
      const now = (await api("GET", `/v1/admin/orgs/${ORG}/webhook/deliveries`, ADMIN_TOKEN)).deliveries.find((d) => d.delivery_id === target.delivery_id);
      return now.attempts > target.attempts;
    }, "the redelivery");

    // Only admin routes, with the admin token.
    for (const r of watch.api) {
      assert.ok(r.path.startsWith("/v1/admin/"), r.path);
      assert.equal(r.auth, `Bearer ${ADMIN_TOKEN}`);
    }
    assert.equal(await page.evaluate(() => localStorage.length), 0);
    assertClean(watch);
  });

  test("an org with no webhook: asked only once picked, its 404 shown as the empty state", async () => {
    const watch = pages.at(-1);
    const { page } = watch;
    await page.click("#webhook-org", { count: 3 });
    await page.keyboard.press("Backspace");
    await page.type("#webhook-org", "elsewhere");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.querySelector("#webhook .empty")?.textContent.includes("has no webhook"));
    assert.ok(!watch.api.some((r) => r.path.includes("/orgs/elsewhere/webhook/deliveries")), "no deliveries asked");
    assertClean(watch, { allowFailed: ["GET /v1/admin/orgs/elsewhere/webhook 404"] });
  });
});
