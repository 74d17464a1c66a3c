#!/usr/bin/env node
// A demo identity provider for the local run (never for production): it makes one ES256
// key pair at start, serves its public half as a JWKS, and mints login tokens for the demo
// org on request, so that `Signing in people with your identity provider` can be tried
// without a real front end. Loopback only.
//
//   node scripts/demo-idp.mjs --port 8789 [--issuer URL] [--audience AUD]
//   GET /.well-known/jwks.json            the JWKS joingate fetches (JWT_JWKS_URL)
//   GET /mint?role=member&org=demo&sub=u1 a login token valid for 1 hour
import http from "node:http";
import { SignJWT, exportJWK, generateKeyPair } from "jose";

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1] : fallback;
};
const port = Number(flag("port", "8789"));
const issuer = flag("issuer", `http://127.0.0.1:${port}`);
const audience = flag("audience", "joingate-demo");

const { publicKey, privateKey } = await generateKeyPair("ES256");
const kid = `demo-${Date.now().toString(36)}`;
const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid, alg: "ES256", use: "sig" }] };

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, issuer);
  if (url.pathname === "/.well-known/jwks.json") {
    res.writeHead(200, { "Content-Type": "application/json", "Cache-Control": "public, max-age=300" });
    return res.end(JSON.stringify(jwks));
  }
  if (url.pathname === "/mint") {
    const q = (name, fallback) => url.searchParams.get(name) ?? fallback;
    const token = await new SignJWT({ org: q("org", "demo"), role: q("role", "member") })
      .setProtectedHeader({ alg: "ES256", kid })
      .setIssuer(issuer)
      .setAudience(audience)
      .setSubject(q("sub", "demo-person"))
      .setIssuedAt()
      .setExpirationTime("1h")
      .sign(privateKey);
    res.writeHead(200, { "Content-Type": "text/plain" });
    return res.end(`${token}\n`);
  }
  res.writeHead(404, { "Content-Type": "text/plain" });
  res.end("not found\n");
});
server.listen(port, "127.0.0.1", () => {
  process.stdout.write(`demo identity provider on http://127.0.0.1:${port} (issuer ${issuer}, audience ${audience})\n`);
});
for (const signal of ["SIGINT", "SIGTERM"]) process.once(signal, () => server.close(() => process.exit(0)));
