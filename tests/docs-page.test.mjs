// The API reference page (GET /docs): Swagger UI served as Workers static assets, checked in
// a real headless Chromium (Debian's package) driven by puppeteer-core. It must load with no
// console error and no request leaving the local run, list every route of the document, and
// make a "try it" preview call with a token entered once through Authorize.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import puppeteer from "puppeteer-core";
import { startJoingate } from "./helpers.mjs";
import { DEMO } from "../sim/catalogue.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const METHODS = ["get", "put", "post", "delete"];
const spec = JSON.parse(readFileSync(new URL("../docs/openapi.json", import.meta.url), "utf8"));
const operations = Object.entries(spec.paths).flatMap(([p, item]) =>
  METHODS.filter((m) => item[m]).map((m) => ({ method: m.toUpperCase(), path: p, id: item[m].operationId })),
);

describe("API reference page", () => {
  let app;
  let browser;
  let page;
  const consoleErrors = [];
  const foreign = [];
  let token;

  before(async () => {
    app = await startJoingate({ serve: true, assets: true });
    await app.session("docs-demo", "acme");
    token = await app.token("acme", ["read"]);
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      // Root in a container has no user namespace for Chromium's sandbox.
      args: ["--no-sandbox", "--disable-dev-shm-usage"],
    });
    page = await browser.newPage();
    page.on("console", (msg) => {
      if (msg.type() === "error") consoleErrors.push(msg.text());
    });
    page.on("pageerror", (error) => consoleErrors.push(String(error)));
    // Offline: any request for anything but the local run fails the test (a CDN, a
    // validator, telemetry).
    await page.setRequestInterception(true);
    page.on("request", (request) => {
      const url = new URL(request.url());
      if (url.protocol === "data:" || url.origin === app.url) return request.continue();
      foreign.push(request.url());
      return request.abort();
    });
    await page.goto(`${app.url}/docs`, { waitUntil: "networkidle0" });
    await page.waitForSelector(".opblock", { timeout: 30_000 });
  });

  after(async () => {
    await browser?.close();
    await app?.close();
  });

  test("loads with no console error, from the local run only", async () => {
    assert.equal(await page.title(), "joingate API reference");
    assert.deepEqual(foreign, []);
    assert.deepEqual(consoleErrors, []);
  });

  test("lists every route of the document", async () => {
    const shown = await page.$$eval(".opblock", (blocks) =>
      blocks.map((b) => ({
        method: b.querySelector(".opblock-summary-method")?.textContent.trim(),
        path: b.querySelector(".opblock-summary-path")?.getAttribute("data-path"),
      })),
    );
    const key = (o) => `${o.method} ${o.path}`;
    assert.deepEqual(shown.map(key).sort(), operations.map(key).sort());
    assert.ok(shown.length >= 28, `${shown.length} operations`);
  });

  test("a token entered once through Authorize makes a try-it preview answer 200", async () => {
    await page.click(".auth-wrapper .authorize");
    await page.waitForSelector(".modal-ux");
    // One form per scheme; the API token's is the first (apiToken).
    const forms = await page.$$(".modal-ux .auth-container");
    const names = await Promise.all(forms.map((f) => f.$eval("h4, h6", (h) => h.textContent)));
    const index = names.findIndex((n) => n.includes("apiToken"));
    assert.ok(index >= 0, `schemes: ${names}`);
    await (await forms[index].$("input")).type(token);
    await (await forms[index].$("button.authorize")).click();
    await page.click(".modal-ux .btn-done");

    const block = "#operations-groups-previewInvite";
    await page.click(`${block} .opblock-summary`);
    await page.waitForSelector(`${block} .try-out__btn`);
    await page.click(`${block} .try-out__btn`);
    // Swagger UI fills the inputs with the document's examples: replace them.
    for (const [name, value] of [["sid", "docs-demo"], ["invite", DEMO.open.code]]) {
      const input = await page.$(`${block} tr[data-param-name="${name}"] input`);
      await input.click();
      await page.keyboard.down("Control");
      await page.keyboard.press("KeyA");
      await page.keyboard.up("Control");
      await page.keyboard.press("Backspace");
      await input.type(value);
    }
    await page.click(`${block} .execute`);
    await page.waitForSelector(`${block} .live-responses-table tbody .response-col_status`, { timeout: 15_000 });
    const status = await page.$eval(`${block} .live-responses-table tbody .response-col_status`, (c) => c.textContent.trim());
    const body = await page.$eval(`${block} .live-responses-table .microlight, ${block} .live-responses-table pre`, (c) => c.textContent);
    const curl = await page.$eval(`${block} .curl-command, ${block} .curl`, (c) => c.textContent).catch(() => "");
    assert.equal(status, "200", `${curl}\n${body}`);
    assert.equal(JSON.parse(body).success, true);
    // The call went to this run with the token, and nothing else was needed.
    assert.ok(app.logs.some((l) => l.includes("previewInvite") || l.includes("/invites/")), "the Worker logged the call");
    assert.deepEqual(foreign, []);
    assert.deepEqual(consoleErrors, []);
  });
});
