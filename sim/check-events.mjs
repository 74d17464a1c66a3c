#!/usr/bin/env node
// The simulator's own check of section 14's pieces: membership checks through every front
// end, the control API's approve / reject / remove, and the servers' events it sends.
//
// Starts a simulator in-process and a local HTTP receiver, configures one session per event
// kind, makes each change through that kind's own front end (or the control API), and checks
// what arrives: the signature with an implementation of its own (node:crypto, not the
// simulator's code), the event's name and the group and own account in it, the retries and a
// byte-identical replay. Prints one PASS/FAIL line per check; exits 1 on any FAIL.
//
// node sim/check-events.mjs [--dump DIR]   (DIR: every event received, as files, for readers
// in other languages: <n>.body, <n>.json = { kind, format, type, headers, secret, expect })

import { createHmac, timingSafeEqual } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join as joinPath } from 'node:path';
import { DEMO } from './catalogue.mjs';
import { SIM_CREDENTIALS, gowaAuthorization, startSimulator, wuzapiToken } from './simulator.mjs';

const OWN_PN = '15550001111@s.whatsapp.net';
const OWN_CUS = '15550001111@c.us';
const OWN_LID = '201234567890123@lid';
const SECRET = 'whsec_c2VjcmV0LWJ5dGVzLXNlY3JldC1ieXRlcy0zMi0=';

const args = process.argv.slice(2);
const dumpDir = args[0] === '--dump' ? args[1] : null;
if (args.length && !dumpDir) {
  process.stderr.write('usage: node sim/check-events.mjs [--dump DIR]\n');
  process.exit(2);
}

let failures = 0;
function check(name, ok, detail = '') {
  if (!ok) failures += 1;
  process.stdout.write(`${ok ? 'PASS' : 'FAIL'} ${name}${!ok && detail ? ` -- ${detail}` : ''}\n`);
}

// ---------------------------------------------------------------------------------------
// Independent signature checks (what each server's receiver would do)

const hex = (alg, key, body) => createHmac(alg, key).update(body).digest('hex');
const same = (a, b) => typeof a === 'string' && a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

const VERIFY = {
  joingate(h, body) {
    const id = h['webhook-id'];
    const ts = h['webhook-timestamp'];
    if (!/^msg_[0-9a-f]{24}$/.test(id ?? '') || !/^\d+$/.test(ts ?? '')) return false;
    if (Math.abs(Date.now() / 1000 - Number(ts)) > 300) return false;
    const key = Buffer.from(SECRET.split('_')[1], 'base64');
    const want = createHmac('sha256', key).update(`${id}.${ts}.${body}`).digest('base64');
    return (h['webhook-signature'] ?? '').split(' ').some((s) => s.startsWith('v1,') && same(s.slice(3), want));
  },
  waha: (h, body) => h['x-webhook-hmac-algorithm'] === 'sha512' && same(h['x-webhook-hmac'], hex('sha512', SECRET, body)),
  evolution: () => true, // Evolution signs nothing
  wuzapi: (h, body) => same(h['x-hmac-signature'], hex('sha256', SECRET, body)),
  gowa: (h, body) => same(h['x-hub-signature-256'], `sha256=${hex('sha256', SECRET, body)}`),
};

// ---------------------------------------------------------------------------------------
// Independent readers: an event to [{ joined | left, group, actor_is_own? }] (own account only)

const isOwn = (id) => [OWN_PN, OWN_CUS, OWN_LID].includes(id);

const READ = {
  joingate(body) {
    const e = JSON.parse(body);
    const what = { 'group.joined': 'joined', 'group.left': 'left', 'group.removed': 'removed' }[e.type];
    return what ? [{ what, group: e.data.group_jid, name: e.type }] : [];
  },
  waha(body) {
    const e = JSON.parse(body);
    if (!(e.me?.id === OWN_CUS && e.me?.lid === OWN_LID)) return [{ what: 'bad me' }];
    if (e.event === 'group.v2.join') return [{ what: 'joined', group: e.payload.group.id, name: e.event }];
    if (e.event === 'group.v2.leave') return [{ what: 'left', group: e.payload.group.id, name: e.event }];
    if (e.event === 'group.v2.participants' && e.payload.type === 'leave' && e.payload.participants.some((p) => isOwn(p.id))) {
      return [{ what: 'left', group: e.payload.group.id, name: e.event }];
    }
    return [];
  },
  evolution(body) {
    const e = JSON.parse(body);
    if (e.sender !== OWN_PN) return [{ what: 'bad sender' }];
    if (e.event === 'groups.upsert') return e.data.map((g) => ({ what: 'joined', group: g.id, name: e.event }));
    if (e.event === 'group-participants.update' && e.data.action === 'remove' && e.data.participants.some((p) => isOwn(p.id ?? p) || isOwn(p.lid))) {
      return [{ what: 'left', group: e.data.id, actorOwn: isOwn(e.data.author), name: e.event }];
    }
    return [];
  },
  wuzapi(body, format) {
    let message;
    if (format === 'json') {
      message = JSON.parse(body);
      if (!message.userID || !message.instanceName) return [{ what: 'no userID/instanceName' }];
    } else {
      const form = new URLSearchParams(body);
      if (!form.get('userID') || !form.get('instanceName')) return [{ what: 'no userID/instanceName' }];
      message = JSON.parse(form.get('jsonData'));
    }
    if (message.type === 'JoinedGroup') return [{ what: 'joined', group: message.event.JID, name: message.type }];
    if (message.type === 'GroupInfo' && (message.event.Leave ?? []).some(isOwn)) {
      return [{ what: 'left', group: message.event.JID, actorOwn: isOwn(message.event.Sender), name: message.type }];
    }
    return [];
  },
  gowa(body) {
    const e = JSON.parse(body);
    if (e.device_id !== OWN_PN) return [{ what: 'bad device_id' }];
    if (e.event === 'group.joined') return [{ what: 'joined', group: e.payload.chat_id, name: e.event }];
    if (e.event === 'group.participants' && e.payload.type === 'leave' && e.payload.jids.some(isOwn)) {
      return [{ what: 'left', group: e.payload.chat_id, name: e.event }];
    }
    return [];
  },
};

// ---------------------------------------------------------------------------------------
// Each kind's own API, as joingate's adapters call it

function clients(base) {
  const call = async (method, path, { headers = {}, body } = {}) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      // empty or text answers
    }
    return { status: res.status, json, text };
  };
  const enc = encodeURIComponent;
  const wahaKey = { 'X-Api-Key': SIM_CREDENTIALS.waha };
  const evoKey = { apikey: SIM_CREDENTIALS.evolution };
  return {
    joingate: {
      join: (s, code) => call('POST', `/sessions/${s}/groups/join`, { body: { code } }),
      leave: (s, g) => call('POST', `/sessions/${s}/groups/${enc(g)}/leave`, { body: {} }),
      async member(s, g) {
        const r = await call('GET', `/sessions/${s}/groups/${enc(g)}`);
        return { member: r.status === 200 && r.json?.member === true, notMember: r.status === 200 && r.json?.member === false, r };
      },
    },
    waha: {
      join: (s, code) => call('POST', `/waha/api/${s}/groups/join`, { headers: wahaKey, body: { code } }),
      leave: (s, g) => call('POST', `/waha/api/${s}/groups/${enc(g)}/leave`, { headers: wahaKey }),
      async member(s, g) {
        const r = await call('GET', `/waha/api/${s}/groups/${enc(g)}`, { headers: wahaKey });
        const text = r.json?.exception?.message ?? '';
        const notMember =
          r.status === 500 &&
          (s.includes('gows') ? text === "you're not participating in that group" : text === `Group with id '${g}' not found`);
        const id = s.includes('gows') ? r.json?.JID : r.json?.id;
        return { member: r.status === 200 && id === g, notMember, r };
      },
    },
    evolution: {
      join: (s, code) => call('GET', `/evolution/group/acceptInviteCode/${s}?inviteCode=${enc(code)}`, { headers: evoKey }),
      leave: (s, g) => call('DELETE', `/evolution/group/leaveGroup/${s}?groupJid=${enc(g)}`, { headers: evoKey }),
      async member(s, g) {
        const r = await call('GET', `/evolution/group/findGroupInfos/${s}?groupJid=${enc(g)}`, { headers: evoKey });
        const m = r.json?.response?.message;
        const notMember = r.status === 404 && r.json?.status === 404 && Array.isArray(m) && m[0] === 'Error fetching group' && m[1] === 'Error: forbidden';
        return { member: r.status === 200 && r.json?.id === g, notMember, r };
      },
    },
    wuzapi: {
      join: (s, code) => call('POST', '/wuzapi/group/join', { headers: { token: wuzapiToken(s) }, body: { Code: code } }),
      leave: (s, g) => call('POST', '/wuzapi/group/leave', { headers: { token: wuzapiToken(s) }, body: { GroupJID: g } }),
      async member(s, g) {
        const r = await call('GET', '/wuzapi/group/list', { headers: { token: wuzapiToken(s) } });
        const groups = r.json?.data?.Groups;
        const ok = r.status === 200 && r.json?.code === 200 && r.json?.success === true && (groups === null || Array.isArray(groups));
        const listed = ok && (groups ?? []).some((x) => x.JID === g);
        return { member: listed, notMember: ok && !listed, r };
      },
    },
    gowa: {
      join: (s, code) => call('POST', '/gowa/group/join-with-link', { headers: gowaHeaders(s), body: { link: `https://chat.whatsapp.com/${code}` } }),
      leave: (s, g) => call('POST', '/gowa/group/leave', { headers: gowaHeaders(s), body: { group_id: g } }),
      async member(s, g) {
        const r = await call('GET', `/gowa/group/info?group_id=${enc(g)}`, { headers: gowaHeaders(s) });
        const notMember = r.status === 500 && r.json?.code === 'INTERNAL_SERVER_ERROR' && r.json?.message === "you're not participating in that group";
        return { member: r.status === 200 && r.json?.results?.JID === g, notMember, r };
      },
    },
    control: (path, body) => call(body === undefined ? 'GET' : 'POST', `/__sim/${path}`, { body }),
  };
}

const gowaHeaders = (s) => ({ Authorization: gowaAuthorization(), 'X-Device-Id': s });

// ---------------------------------------------------------------------------------------
// The receiver

function startReceiver() {
  const received = []; // { path, headers, body, status }
  const failNext = new Map(); // path -> how many next attempts answer 500
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const n = failNext.get(req.url) ?? 0;
      const status = n > 0 ? 500 : 204;
      if (n > 0) failNext.set(req.url, n - 1);
      received.push({ path: req.url, headers: req.headers, body, status });
      res.writeHead(status);
      res.end();
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({ server, received, failNext, url: `http://127.0.0.1:${server.address().port}` }));
  });
}

const delay = (ms) => new Promise((r) => setTimeout(r, ms));

/** The accepted (2xx) events of `path` after index `from`, waiting up to 3 s for `count`. */
async function eventsOf(rx, path, from, count) {
  for (let waited = 0; ; waited += 25) {
    const got = rx.received.slice(from).filter((e) => e.path === path && e.status < 300);
    if (got.length >= count || waited >= 3000) {
      // A little longer, so that an unexpected extra event is seen too.
      await delay(150);
      return rx.received.slice(from).filter((e) => e.path === path && e.status < 300);
    }
    await delay(25);
  }
}

// ---------------------------------------------------------------------------------------
// The scenario, per kind

const SETUPS = [
  { label: 'joingate', kind: 'joingate', session: 'chk-native' },
  { label: 'waha NOWEB', kind: 'waha', session: 'chk-waha' },
  { label: 'waha GOWS', kind: 'waha', session: 'chk-gows' },
  { label: 'evolution', kind: 'evolution', session: 'chk-evolution' },
  { label: 'wuzapi form', kind: 'wuzapi', session: 'chk-wuzapi-form' },
  { label: 'wuzapi json', kind: 'wuzapi', session: 'chk-wuzapi-json', format: 'json' },
  { label: 'gowa', kind: 'gowa', session: 'chk-gowa' },
];

// How many events one leave or removal makes: WAHA sends group.v2.leave and group.v2.participants.
const LEAVE_EVENTS = { waha: 2 };

let dumped = 0;
function dump(setup, e, expect) {
  if (!dumpDir) return;
  dumped += 1;
  writeFileSync(joinPath(dumpDir, `${dumped}.body`), e.body);
  writeFileSync(
    joinPath(dumpDir, `${dumped}.json`),
    JSON.stringify({ kind: setup.kind, format: setup.format ?? null, headers: e.headers, secret: SECRET, expect }, null, 1),
  );
}

async function scenario(setup, api, rx) {
  const { kind, session: s, label } = setup;
  const k = api[kind];
  const path = `/${s}`;
  const t = (name) => `${label}: ${name}`;
  const cfg = await api.control('events', { session: s, kind, url: `${rx.url}${path}`, secret: SECRET, ...(setup.format ? { format: setup.format } : {}) });
  check(t('POST /__sim/events configures'), cfg.status === 200, cfg.text);

  /** Expect `n` events after `from`, each signed, all read as `what` of group `g`. */
  async function expectEvents(name, from, n, what, g, { actorOwn } = {}) {
    const got = await eventsOf(rx, path, from, n);
    check(t(`${name}: ${n} event(s)`), got.length === n, `got ${got.length}: ${got.map((e) => e.body.slice(0, 80)).join(' | ')}`);
    for (const e of got) {
      check(t(`${name}: signature verifies`), VERIFY[kind](e.headers, e.body));
      const read = READ[kind](e.body, setup.format ?? 'form');
      const ok = read.length === 1 && read[0].what === what && read[0].group === g && (actorOwn === undefined || read[0].actorOwn === undefined || read[0].actorOwn === actorOwn);
      check(t(`${name}: reads as ${what} ${g}${read[0]?.name ? ` (${read[0].name})` : ''}`), ok, JSON.stringify(read));
      dump(setup, e, { what: what === 'joined' ? 'joined' : 'left', group_jid: g, actor_own: actorOwn ?? null });
    }
    return got;
  }

  // A join that answers joined: the own-join event.
  let from = rx.received.length;
  let r = await k.join(s, DEMO.open.code);
  check(t('join open answers'), r.status < 300, r.text);
  await expectEvents('join', from, 1, 'joined', DEMO.open.group_jid);
  check(t('membership check: member after the join'), (await k.member(s, DEMO.open.group_jid)).member);

  // A second join (already a member) and a pending request: no event.
  from = rx.received.length;
  await k.join(s, DEMO.open.code);
  r = await k.join(s, DEMO.approval.code);
  check(t('join approval answers (pending)'), r.status < 300, r.text);
  await expectEvents('already member and pending', from, 0);
  const pending = await k.member(s, DEMO.approval.group_jid);
  check(t('membership check: pending is not a member'), pending.notMember, `${pending.r.status} ${pending.r.text.slice(0, 160)}`);

  // An admin approves: the same own-join event.
  from = rx.received.length;
  r = await api.control('approve', { session: s, group_jid: DEMO.approval.group_jid });
  check(t('POST /__sim/approve answers'), r.status === 200 && r.json?.role === 'member', r.text);
  await expectEvents('approval', from, 1, 'joined', DEMO.approval.group_jid);
  check(t('membership check: member after the approval'), (await k.member(s, DEMO.approval.group_jid)).member);
  r = await api.control('approve', { session: s, group_jid: DEMO.approval.group_jid });
  check(t('a second approve is 409'), r.status === 409, r.text);

  // The account leaves through the API: the leave event(s), acted by the own account.
  from = rx.received.length;
  r = await k.leave(s, DEMO.open.group_jid);
  check(t('leave answers'), r.status < 300, r.text);
  await expectEvents('leave', from, LEAVE_EVENTS[kind] ?? 1, 'left', DEMO.open.group_jid, { actorOwn: true });
  check(t('membership check: not a member after the leave'), (await k.member(s, DEMO.open.group_jid)).notMember);

  // An admin removes the account: the same event(s), acted by someone else.
  from = rx.received.length;
  r = await api.control('remove', { session: s, group_jid: DEMO.approval.group_jid });
  check(t('POST /__sim/remove answers'), r.status === 200 && r.json?.role === 'none', r.text);
  await expectEvents('removal', from, LEAVE_EVENTS[kind] ?? 1, kind === 'joingate' ? 'removed' : 'left', DEMO.approval.group_jid, { actorOwn: false });
  check(t('membership check: not a member after the removal'), (await k.member(s, DEMO.approval.group_jid)).notMember);

  // A rejection: nothing at all.
  from = rx.received.length;
  await k.join(s, DEMO.outsider.code);
  r = await api.control('reject', { session: s, group_jid: DEMO.outsider.group_jid });
  check(t('POST /__sim/reject answers'), r.status === 200 && r.json?.role === 'none', r.text);
  await expectEvents('rejection', from, 0);
  check(t('membership check: not a member after the rejection'), (await k.member(s, DEMO.outsider.group_jid)).notMember);

  // The sent log and a byte-identical replay.
  const sent = (await api.control(`events/sent?session=${s}`)).json.events;
  const expected = 2 + 2 * (LEAVE_EVENTS[kind] ?? 1);
  check(
    t(`GET /__sim/events/sent lists ${expected} events, delivered at once`),
    sent.length === expected && sent.every((e) => e.state === 'delivered' && e.attempts === 1 && e.status === 204 && e.kind === kind),
    JSON.stringify(sent.map((e) => [e.type, e.state, e.attempts, e.status])),
  );
  check(t('the sent log holds no secret'), !JSON.stringify(sent).includes(SECRET));
  from = rx.received.length;
  r = await api.control('events/replay', { session: s });
  const again = rx.received.slice(from).filter((e) => e.path === path);
  const last = rx.received.slice(0, from).filter((e) => e.path === path).at(-1);
  const stripped = (h) => JSON.stringify(Object.entries(h).filter(([n]) => !['host', 'connection'].includes(n)).sort());
  check(
    t('POST /__sim/events/replay re-sends the last event byte for byte, same headers'),
    r.status === 200 && r.json?.event?.replay_of === sent.at(-1).seq && again.length === 1 && again[0].body === last.body && stripped(again[0].headers) === stripped(last.headers),
    r.text,
  );
}

async function retries(api, rx) {
  const s = 'chk-retry';
  const path = `/${s}`;
  await api.control('events', { session: s, kind: 'gowa', url: `${rx.url}${path}`, secret: SECRET });
  rx.failNext.set(path, 2);
  const from = rx.received.length;
  await api.gowa.join(s, DEMO.open.code);
  await delay(1000);
  const got = rx.received.slice(from).filter((e) => e.path === path);
  const sent = (await api.control(`events/sent?session=${s}`)).json.events;
  check(
    'retries: two 500 answers, then delivered on the third attempt with the same bytes',
    got.length === 3 && got.map((e) => e.status).join() === '500,500,204' && new Set(got.map((e) => e.body)).size === 1 &&
      sent.length === 1 && sent[0].attempts === 3 && sent[0].state === 'delivered' && sent[0].status === 204,
    JSON.stringify([got.map((e) => e.status), sent.map((e) => [e.attempts, e.state, e.status])]),
  );
  rx.failNext.set(path, 5);
  await api.gowa.leave(s, DEMO.open.group_jid);
  await delay(1000);
  const failed = (await api.control(`events/sent?session=${s}`)).json.events.at(-1);
  check('retries: three failures make the event failed (3 attempts, status 500)', failed.state === 'failed' && failed.attempts === 3 && failed.status === 500, JSON.stringify(failed));
  rx.failNext.delete(path);
  // Events off: nothing more.
  await api.control('events', { session: s, url: null });
  const before = rx.received.length;
  await api.gowa.join(s, DEMO.open.code);
  await delay(300);
  check('url null turns a session\'s events off', rx.received.length === before);
}

async function controlInput(api) {
  const bad = [
    ['approve', { group_jid: DEMO.approval.group_jid }],
    ['approve', { session: 's', group_jid: 'nope' }],
    ['remove', { session: 's' }],
    ['events', { session: 's', kind: 'nope', url: 'http://127.0.0.1:1/' }],
    ['events', { session: 's', kind: 'waha', url: 'ftp://x/' }],
    ['events', { session: 's', kind: 'joingate', url: 'http://127.0.0.1:1/', secret: 'plain' }],
    ['events', { session: 's', kind: 'gowa', url: 'http://127.0.0.1:1/', format: 'json' }],
    ['events', { session: 's', kind: 'wuzapi', url: 'http://127.0.0.1:1/', format: 'xml' }],
    ['events/replay', {}],
  ];
  const answers = await Promise.all(bad.map(([p, b]) => api.control(p, b)));
  check('control API: invalid input answers 400 bad_request', answers.every((r) => r.status === 400 && r.json?.error?.kind === 'bad_request'), JSON.stringify(answers.map((r) => r.status)));
  const notPending = await api.control('reject', { session: 'chk-input', group_jid: DEMO.open.group_jid });
  const notMember = await api.control('remove', { session: 'chk-input', group_jid: DEMO.open.group_jid });
  const unknown = await api.control('approve', { session: 'chk-input', group_jid: '120363999999999999@g.us' });
  const nothing = await api.control('events/replay', { session: 'chk-input' });
  check(
    'control API: wrong state answers 409 (not_pending, not_member, conflict), unknown group 404',
    notPending.status === 409 && notPending.json.error.kind === 'not_pending' && notMember.status === 409 && notMember.json.error.kind === 'not_member' &&
      nothing.status === 409 && unknown.status === 404,
    [notPending, notMember, nothing, unknown].map((r) => r.text).join(' | '),
  );
  const configs = (await api.control('events')).json.configs;
  check('GET /__sim/events lists configs without secrets', configs.length > 0 && configs.every((c) => c.has_secret !== undefined && !('secret' in c)) && !JSON.stringify(configs).includes(SECRET));
  const calls = (await api.control('calls')).json.calls;
  const routes = new Set(calls.map((c) => `${c.kind} ${c.route}`));
  check(
    'membership checks are recorded calls (group_info, wuzapi group_list)',
    ['joingate group_info', 'waha group_info', 'evolution group_info', 'wuzapi group_list', 'gowa group_info'].every((r) => routes.has(r)),
    [...routes].join(', '),
  );
  await api.control('reset', {});
  const after = [(await api.control('events')).json.configs.length, (await api.control('events/sent')).json.events.length];
  check('POST /__sim/reset clears configs and the sent log', after[0] === 0 && after[1] === 0, JSON.stringify(after));
}

async function main() {
  if (dumpDir) mkdirSync(dumpDir, { recursive: true });
  const sim = await startSimulator({ port: 0 });
  const rx = await startReceiver();
  const api = clients(sim.url);
  try {
    for (const setup of SETUPS) await scenario(setup, api, rx);
    await retries(api, rx);
    await controlInput(api);
  } finally {
    await sim.close();
    rx.server.close();
  }
  process.stdout.write(`${failures === 0 ? 'ALL PASS' : `${failures} FAILED`}${dumpDir ? ` (${dumped} events in ${dumpDir})` : ''}\n`);
  process.exit(failures === 0 ? 0 : 1);
}

main().catch((err) => {
  process.stderr.write(`check-events: ${err.stack ?? err}\n`);
  process.exit(1);
});
