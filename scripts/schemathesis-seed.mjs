// Seeds a throwaway joingate for scripts/schemathesis.sh: waits until it answers, registers
// the sessions given (all in one org) through the admin API, mints one token with every
// capability, and installs simulator faults for the sessions that name one.
// Prints `{"token": "...", "token_id": "..."}` on stdout, nothing else.
//
// Usage: node scripts/schemathesis-seed.mjs BASE_URL ADMIN_TOKEN ORG SESSION [SESSION...]
//   SESSION is a sid, or SID=MODE[:WA_CODE] to also give that sid a permanent simulator fault
//   (docs/simulator.md, "Faults"); SIMULATOR_URL must then be set.
import { callJson, waitUntilUp } from "./local-client.mjs";

const [base, adminToken, org, ...specs] = process.argv.slice(2);
if (!base || !adminToken || !org || specs.length === 0) {
  console.error("usage: node scripts/schemathesis-seed.mjs BASE_URL ADMIN_TOKEN ORG SESSION [SESSION...]");
  process.exit(2);
}
const simulator = process.env.SIMULATOR_URL;
const admin = { Authorization: `Bearer ${adminToken}` };
const call = callJson;

await waitUntilUp(base);
for (const spec of specs) {
  const [sid, fault] = spec.split("=");
  await call("PUT", `${base}/v1/admin/sessions/${sid}`, admin, { org });
  if (fault) {
    if (!simulator) throw new Error(`SIMULATOR_URL is needed for the fault of ${sid}`);
    const [mode, waCode] = fault.split(":");
    await call("POST", `${simulator}/__sim/faults`, {}, {
      session: sid,
      mode,
      ...(waCode ? { wa_code: Number(waCode) } : {}),
    });
  }
}
const { token, token_id } = await call("POST", `${base}/v1/admin/tokens`, admin, {
  org,
  capabilities: ["join", "read", "manage"],
  label: "schemathesis",
});
console.log(JSON.stringify({ token, token_id }));
