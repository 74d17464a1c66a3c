// Waits for a local joingate, seeds the demo org, session and token through the admin API
// and prints ready-to-paste curls. Usage: node scripts/seed.mjs BASE_URL ADMIN_TOKEN
import { DEMO } from "../sim/catalogue.mjs";
import { callJson, waitUntilUp } from "./local-client.mjs";

const [base, adminToken] = process.argv.slice(2);
const admin = { Authorization: `Bearer ${adminToken}` };
const call = (method, path, body) => callJson(method, `${base}${path}`, admin, body);

const waited = await waitUntilUp(base);
await call("PUT", "/v1/admin/sessions/demo", { org: "demo" });
const { token, token_id } = await call("POST", "/v1/admin/tokens", {
  org: "demo",
  capabilities: ["join", "read", "manage"],
  label: "local demo",
});

console.log(`
joingate is up at ${base} (answered after ${(waited / 1000).toFixed(1)} s)
  demo org "demo", session "demo", token ${token_id}
  admin token: ${adminToken}

Join a demo group (open group; see docs/simulator.md for every outcome):

curl -s -X POST ${base}/v1/sessions/demo/groups/join \\
  -H 'Authorization: Bearer ${token}' \\
  -H 'Content-Type: application/json' \\
  -d '{"invite":"https://chat.whatsapp.com/${DEMO.open.code}"}'

Preview the approval-required group:

curl -s ${base}/v1/sessions/demo/invites/${DEMO.approval.code} -H 'Authorization: Bearer ${token}'

List, approve and reject join requests of the group where the demo session is admin:

curl -s ${base}/v1/sessions/demo/groups/${DEMO.admin.group_jid}/join-requests -H 'Authorization: Bearer ${token}'
curl -s -X POST ${base}/v1/sessions/demo/groups/${DEMO.admin.group_jid}/join-requests/approve \\
  -H 'Authorization: Bearer ${token}' -H 'Content-Type: application/json' \\
  -d '{"participants":["15550000001@s.whatsapp.net","15550000002@s.whatsapp.net"]}'
curl -s -X POST ${base}/v1/sessions/demo/groups/${DEMO.admin.group_jid}/join-requests/reject \\
  -H 'Authorization: Bearer ${token}' -H 'Content-Type: application/json' \\
  -d '{"participants":["98765432109876@lid"]}'

Reset the admin group's invite link, leave the open group, and look at the session:

curl -s -X POST ${base}/v1/sessions/demo/groups/${DEMO.admin.group_jid}/invite/reset -H 'Authorization: Bearer ${token}'
curl -s -X POST ${base}/v1/sessions/demo/groups/${DEMO.open.group_jid}/leave -H 'Authorization: Bearer ${token}'
curl -s ${base}/v1/sessions/demo -H 'Authorization: Bearer ${token}'
`);
