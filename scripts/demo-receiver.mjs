#!/usr/bin/env node
// A webhook receiver for the local run: it verifies each event's Standard Webhooks
// signature with the `standardwebhooks` package and prints the verified event (or why it
// was refused). The secret is read from the file the seeding script writes when it registers
// this receiver for the demo org. Loopback only; never for production.
//
//   node scripts/demo-receiver.mjs --port 8790 --secret-file .wrangler/demo-webhook-secret
import http from "node:http";
import { readFileSync } from "node:fs";
import { Webhook } from "standardwebhooks";

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1] : fallback;
};
const port = Number(flag("port", "8790"));
const secretFile = flag("secret-file", ".wrangler/demo-webhook-secret");

const server = http.createServer((req, res) => {
  let body = "";
  req.on("data", (chunk) => (body += chunk));
  req.on("end", () => {
    let secret;
    try {
      secret = readFileSync(secretFile, "utf8").trim();
    } catch {
      res.writeHead(503);
      return res.end();
    }
    try {
      const event = new Webhook(secret).verify(body, req.headers);
      process.stdout.write(`[webhook] verified ${event.type} ${req.headers["webhook-id"]} ${JSON.stringify(event.data)}\n`);
      res.writeHead(204);
    } catch (error) {
      process.stdout.write(`[webhook] refused: ${error.message}\n`);
      res.writeHead(400);
    }
    res.end();
  });
});
server.listen(port, "127.0.0.1", () => {
  process.stdout.write(`[webhook] demo receiver on http://127.0.0.1:${port}/events\n`);
});
for (const signal of ["SIGINT", "SIGTERM"]) process.once(signal, () => server.close(() => process.exit(0)));
