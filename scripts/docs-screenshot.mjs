// Takes the README's screenshot of the API reference page (docs/img/api-reference.png) in
// headless Chromium against a local joingate: node scripts/docs-screenshot.mjs
import puppeteer from "puppeteer-core";
import { startJoingate } from "../tests/helpers.mjs";

const app = await startJoingate({ serve: true, assets: true });
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  await page.goto(`${app.url}/docs`, { waitUntil: "networkidle0" });
  await page.waitForSelector(".opblock");
  await page.click("#operations-groups-previewInvite .opblock-summary");
  await page.waitForSelector("#operations-groups-previewInvite .try-out__btn");
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: "docs/img/api-reference.png" });
  console.log("docs/img/api-reference.png");
} finally {
  await browser.close();
  await app.close();
}
