// Request bodies stay bounded (contract section 1, v1.2): over the route's limit is 413
// whether or not the request says its length, and joingate stops reading at limit + 1
// bytes; a join-job submit takes up to 256 KiB and an org's record up to 512 KiB.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { startJoingate, assertEnvelope, ADMIN_TOKEN } from "./helpers.mjs";

/**
 * Sends `total` bytes as a chunked body (no Content-Length) in 16 KiB chunks, each written
 * only once the one before has drained, and stops writing as soon as an answer arrives.
 * Returns the answer and how many bytes had been written by then.
 */
async function chunked(app, pathname, token, total) {
  const base = await app.mf.ready;
  return new Promise((resolve, reject) => {
    let written = 0;
    let answered = false;
    const req = http.request(new URL(pathname, base), {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json", "Transfer-Encoding": "chunked" },
    });
    req.on("response", (res) => {
      answered = true;
      const at = written;
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (text += c));
      res.on("end", () => {
        req.destroy();
        resolve({ status: res.statusCode, body: JSON.parse(text), writtenWhenAnswered: at });
      });
    });
    req.on("error", (error) => (answered ? undefined : reject(error)));
    const chunk = Buffer.alloc(16 * 1024, 0x20); // spaces: valid JSON padding
    const pump = () => {
      while (!answered && written < total) {
        written += chunk.length;
        if (!req.write(chunk)) return req.once("drain", () => setTimeout(pump, 5));
      }
      if (!answered) req.end();
    };
    pump();
  });
}

describe("request bodies", () => {
  let app;
  let token;
  before(async () => {
    app = await startJoingate({ orgLimit: 100_000, serve: true });
    token = await app.token("acme", ["join", "read"]);
  });
  after(() => app.close());

  test("a chunked 1 MB body without Content-Length is 413, answered before the sender is done", async () => {
    const sid = await app.freshSession("chunked");
    const res = await chunked(app, `/v1/sessions/${sid}/groups/join`, token, 1024 * 1024);
    assert.equal(res.status, 413);
    assert.equal(res.body.error.code, "payload_too_large");
    assert.ok(res.writtenWhenAnswered < 1024 * 1024, `answered after ${res.writtenWhenAnswered} bytes of 1 MiB were sent`);
    assert.equal(app.sim.calls(sid).length, 0);
  });

  test("a job of 500 items of the longest form (over 16 KiB) is taken; over 256 KiB is 413", async () => {
    const sid = await app.freshSession("bigjob");
    const invites = Array.from({ length: 500 }, (_, i) => ({
      code: `${"C".repeat(60)}${String(i).padStart(4, "0")}`,
      group_jid: `${"1".repeat(32)}-${"2".repeat(32)}@g.us`,
      inviter_jid: `${"3".repeat(32)}@s.whatsapp.net`,
    }));
    const json = { invites, label: "L".repeat(200), interval_s: 86400 };
    assert.ok(JSON.stringify(json).length > 64 * 1024);
    const res = await app.request("POST", `/v1/sessions/${sid}/join-jobs`, { token, json });
    assert.equal(assertEnvelope(res, { status: 202 }).data.counts.total, 500);
    const padded = JSON.stringify(json) + " ".repeat(256 * 1024);
    const tooLarge = await app.request("POST", `/v1/sessions/${sid}/join-jobs`, {
      token,
      body: padded,
      headers: { "Content-Type": "application/json" },
    });
    assertEnvelope(tooLarge, { status: 413, code: "payload_too_large" });
    const chunkedTooLarge = await chunked(app, `/v1/sessions/${sid}/join-jobs`, token, 512 * 1024);
    assert.equal(chunkedTooLarge.status, 413);
  });

  test("an org's record takes up to 512 KiB; a session's 16 KiB", async () => {
    const padded = (json, size) => JSON.stringify(json) + " ".repeat(size);
    const put = (path, body) =>
      app.request("PUT", path, { token: ADMIN_TOKEN, body, headers: { "Content-Type": "application/json" } });
    assertEnvelope(await put("/v1/admin/orgs/bodies", padded({ limits: {} }, 400 * 1024)), { status: 200 });
    assertEnvelope(await put("/v1/admin/orgs/bodies", padded({ limits: {} }, 512 * 1024)), { status: 413, code: "payload_too_large" });
    assertEnvelope(await put("/v1/admin/sessions/bodies", padded({ org: "acme" }, 16 * 1024)), { status: 413, code: "payload_too_large" });
    assertEnvelope(await put("/v1/admin/sessions/bodies", padded({ org: "acme" }, 1024)), { status: 200 });
  });
});
