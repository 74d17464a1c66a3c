// Waits for a local joingate, seeds the demo org, its sessions (one on the native protocol,
// one per WhatsApp server kind the simulator speaks, and "demo-b", the number that takes over
// when one is lost) and a token through the admin API, and prints ready-to-paste curls. Usage: node scripts/seed.mjs BASE_URL ADMIN_TOKEN SIMULATOR_URL
import { DEMO } from "../sim/catalogue.mjs";
import { SIM_CREDENTIALS, wuzapiToken } from "../sim/credentials.mjs";
import { writeFileSync } from "node:fs";
import { callJson, waitUntilUp } from "./local-client.mjs";

const [base, adminToken, simulatorUrl = "http://127.0.0.1:8788", idpUrl, receiverUrl] = process.argv.slice(2);
const admin = { Authorization: `Bearer ${adminToken}` };
const call = (method, path, body) => callJson(method, `${base}${path}`, admin, body);

const waited = await waitUntilUp(base);
// Section 14: every demo session takes its server's events, and the simulator sends them
// there, signed as that server signs. The hook is rotated on every run (local state is kept
// between runs, and a hook's URL and secret are shown only by the PUT that makes them).
async function putSession(sid, body, kind = "joingate") {
  const { events_hook } = await call("PUT", `/v1/admin/sessions/${sid}`, { ...body, events: true, rotate_events_secret: true });
  await callJson("POST", `${simulatorUrl}/__sim/events`, {}, { session: sid, kind, url: events_hook.url, secret: events_hook.secret });
}
// The demo numbers have been in use for years, so their joins have the largest caps
// (section 13); "demo-new" is a number of today: 5 joins a day (its hour cap raised, so
// that the demo reaches the day cap at once).
const OLD_NUMBER = { number_since: "2020-01-01" };
// The groups of the recovery walk-through printed at the end.
const BOOK = ["book1", "book2", "book3"];
await putSession("demo", { org: "demo", protection: OLD_NUMBER });
await putSession("demo-jobs", { org: "demo", protection: OLD_NUMBER });
await putSession("demo-new", {
  org: "demo",
  limits: { join: { per_minute: 60, burst: 10, per_hour: 10 } },
});
// Section 15: "demo-b" is the new number the demo org recovers its groups onto when "demo"
// is lost (a few weeks old: 40 joins a day).
await putSession("demo-b", { org: "demo", protection: { number_since: "2026-11-01" } });
// The demo org's webhook: the local receiver verifies and prints every event.
if (receiverUrl) {
  // Rotated on every run: local state is kept between runs, and only a new secret is shown.
  const { secret } = await call("PUT", "/v1/admin/orgs/demo/webhook", { url: receiverUrl, rotate_secret: true });
  writeFileSync(".wrangler/demo-webhook-secret", `${secret}\n`, { mode: 0o600 });
}
// One session per server kind, each on the simulator's front end for that kind, with the
// credential that front end checks (sealed with CREDENTIALS_KEY before it is stored).
const KIND_SESSIONS = {
  waha: { remote_session: "demo-waha", credential: SIM_CREDENTIALS.waha },
  evolution: { remote_session: "demo-evolution", credential: SIM_CREDENTIALS.evolution },
  wuzapi: { credential: wuzapiToken("demo-wuzapi") },
  gowa: { remote_session: "demo-gowa", credential: SIM_CREDENTIALS.gowa },
};
for (const [kind, backend] of Object.entries(KIND_SESSIONS)) {
  await putSession(
    `demo-${kind}`,
    { org: "demo", backend: { kind, url: `${simulatorUrl}/${kind}`, ...backend }, protection: OLD_NUMBER },
    kind,
  );
}
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

Ask to join the approval-required group: the answer is pending_approval, and joingate follows
the request (contract section 14). Approve it in the simulator (as a group admin would): the
server's event reaches joingate within a second, and the receiver here prints group.join with
"approved": true. An unanswered request ends group.join_request.expired after 7 days.

curl -s -X POST ${base}/v1/sessions/demo/groups/join -H 'Authorization: Bearer ${token}' \\
  -H 'Content-Type: application/json' -d '{"invite":"${DEMO.approval.code}"}'
curl -s ${base}/v1/sessions/demo/pending-joins -H 'Authorization: Bearer ${token}'
curl -s -X POST ${simulatorUrl}/__sim/approve -d '{"session":"demo","group_jid":"${DEMO.approval.group_jid}"}'
curl -s ${base}/v1/sessions/demo/groups/${DEMO.approval.group_jid} -H 'Authorization: Bearer ${token}'

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

A new number's day is short (account protection): demo-new may join 5 times in 24 hours;
the sixth join answers 429 rate_limited with details.window "day" and the exact Retry-After,
and its status shows the budget (protection.used_last_24h against protection.per_day):

for i in 1 2 3 4 5 6; do curl -s -X POST ${base}/v1/sessions/demo-new/groups/join \
  -H 'Authorization: Bearer ${token}' -H 'Content-Type: application/json' \
  -d '{"invite":"${DEMO.open.code}"}'; echo; done
curl -s ${base}/v1/sessions/demo-new -H 'Authorization: Bearer ${token}'

Join three groups at a safe pace with a join job (5 s apart here; 60 s or more for a real
account), then follow its progress item by item:

curl -s -X POST ${base}/v1/sessions/demo-jobs/join-jobs \\
  -H 'Authorization: Bearer ${token}' -H 'Content-Type: application/json' \\
  -d '{"invites":["${DEMO.open.code}","${DEMO.approval.code}","${DEMO.revoked.code}"],"label":"demo","interval_s":5}'
curl -s ${base}/v1/sessions/demo-jobs/join-jobs -H 'Authorization: Bearer ${token}'
curl -s ${base}/v1/sessions/demo-jobs/join-jobs/JOB_ID -H 'Authorization: Bearer ${token}'   # JOB_ID from the first answer

The same API in front of the WhatsApp servers people run (docs/backends.md): the sessions
demo-waha, demo-evolution, demo-wuzapi and demo-gowa each talk to the simulator's front end
for that server. Join the approval-required group through each (pending_approval on every
kind, told apart with each server's own means):
${Object.keys(KIND_SESSIONS)
  .map(
    (kind) => `
curl -s -X POST ${base}/v1/sessions/demo-${kind}/groups/join \\
  -H 'Authorization: Bearer ${token}' -H 'Content-Type: application/json' \\
  -d '{"invite":"https://chat.whatsapp.com/${DEMO.approval.code}"}'`,
  )
  .join("\n")}

What a kind cannot do answers 501 before anything is sent, e.g. join requests on Evolution:

curl -s ${base}/v1/sessions/demo-evolution/groups/${DEMO.admin.group_jid}/join-requests -H 'Authorization: Bearer ${token}'

${
  receiverUrl
    ? `Every join, leave, job completion and cooldown of the demo org is posted, signed, to the
receiver at ${receiverUrl}, which prints each verified event in this terminal. The
delivery log:

curl -s ${base}/v1/admin/orgs/demo/webhook/deliveries -H 'Authorization: Bearer ${adminToken}'

`
    : ""
}A session's record shows its backend without the credential:

curl -s ${base}/v1/admin/sessions/demo-gowa -H 'Authorization: Bearer ${adminToken}'

The API reference, to try every call in a browser (Authorize with the token above):

${base}/docs

The operator console: the demo org's sessions, join jobs (pause, resume, cancel), pending
joins and group book; paste this token (or the admin token, for tokens and webhooks):

${base}/console
${token}

The admin command line does the admin routes without a curl:

export JOINGATE_URL=${base} JOINGATE_ADMIN_TOKEN=${adminToken}
npm run admin -- session show demo-gowa
npm run admin -- token create --org demo --cap read --label "from the command line"
npm run admin -- webhook deliveries demo
${
  idpUrl
    ? `
Sign in a person with a login token (a JWT of the demo identity provider at ${idpUrl};
role member may join and read, viewer only read, owner everything):

JWT=$(curl -s '${idpUrl}/mint?role=member&org=demo&sub=alice')
curl -s ${base}/v1/sessions/demo -H "Authorization: Bearer $JWT"
curl -s -X POST ${base}/v1/sessions/demo/groups/${DEMO.member.group_jid}/invite/reset -H "Authorization: Bearer $JWT"   # 403: a member may not manage
`
    : ""
}
Recover a lost number (contract section 15): the org keeps a book of the groups its sessions
joined, with the invite that joined each (sealed). The demo session joins three groups:
${BOOK.map(
  (name) => `
curl -s -X POST ${base}/v1/sessions/demo/groups/join -H 'Authorization: Bearer ${token}' \\
  -H 'Content-Type: application/json' -d '{"invite":"${DEMO[name].code}"}'`,
).join("")}

The book shows them (and any other group demo joined above), without the codes:

curl -s ${base}/v1/groups -H 'Authorization: Bearer ${token}'

The number of "demo" is lost; "demo-b" is the new one. One call builds a join job from the
book, one item per group where demo is a member (5 s apart here), then follow it:

curl -s -X POST ${base}/v1/sessions/demo-b/join-jobs \\
  -H 'Authorization: Bearer ${token}' -H 'Content-Type: application/json' \\
  -d '{"from_session":"demo","interval_s":5}'
curl -s ${base}/v1/sessions/demo-b/join-jobs/JOB_ID -H 'Authorization: Bearer ${token}'   # JOB_ID: the first answer's job_id

Join policy: refuse groups whose subject holds "casino". The open group "${DEMO.casino.subject}"
then answers 403 join_refused_by_policy (details.rule "blocked_subject_terms"), before any
join request reaches WhatsApp; --clear lifts the policy:

JOINGATE_URL=${base} JOINGATE_ADMIN_TOKEN=${adminToken} node scripts/admin.mjs org policy demo --blocked-terms casino
curl -s -X POST ${base}/v1/sessions/demo/groups/join -H 'Authorization: Bearer ${token}' \\
  -H 'Content-Type: application/json' -d '{"invite":"${DEMO.casino.code}"}'
JOINGATE_URL=${base} JOINGATE_ADMIN_TOKEN=${adminToken} node scripts/admin.mjs org policy demo --clear
`);
