// The servers' events out of the simulator: where each session's world sends them (control
// API `/__sim/events`), what each server kind sends (body and signature headers), and the
// delivery (a short delay after the answer, a few retries, a record of every event sent).
//
// The rendering lives here, one function per kind, rather than in the front ends: an event
// comes out of the world, not in through a front end. A session configured for gowa events
// gets gowa's event whichever front end made the join (or the control API's approve), so the
// rendering is chosen by the configured kind; and the kinds share what the front ends do not
// (Go's JSON encoding, the signatures, the delivery). The shapes were read from each server's
// source; see shared/notes/server-events.md and the comment on each render function.
//
// Each world change (sim/world.mjs `changes`) is { change: joined | left | removed,
// via: join | approval | leave | removal, actor, group_jid, info, at_ms }.

import { createHash, createHmac, randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { SESSION_ME, selfJid, selfLid } from './world.mjs';
import { baileysGroupMetadata, baileysSelf, isNonEmptyString, rfc3339, toCUs, whatsmeowGroupInfo } from './front/common.mjs';

/** Every kind a session's events can be rendered as. */
export const EVENT_KINDS = Object.freeze(['joingate', 'waha', 'evolution', 'wuzapi', 'gowa']);
/** How long after the answer that changed the world its events leave. */
export const EVENT_DELAY_MS = 20;
/** Attempts per event (real servers make 5-15, with seconds between; tests want it short). */
export const EVENT_ATTEMPTS = 3;
/** The pause between two attempts of one event. */
export const EVENT_RETRY_MS = 200;
/** How long one attempt may take before it counts as a network error. */
export const EVENT_ATTEMPT_TIMEOUT_MS = 5000;

const WAHA_VERSION = '2026.2.1';
// Evolution's SERVER_URL default; it is only reported, never called.
const EVOLUTION_SERVER_URL = 'http://localhost:8080';
// GOWA's default secret when none is configured (config/settings.go).
const GOWA_DEFAULT_SECRET = 'secret';

// ---------------------------------------------------------------------------------------
// Encodings the servers use

/**
 * JSON as Go's encoding/json writes it: the value's own key order (a struct's field order;
 * pass Go maps through goMap first), and <, >, &, U+2028 and U+2029 escaped.
 */
export function goJson(value) {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/** A Go map[string]any: Go writes its keys sorted (one level). */
export function goMap(obj) {
  return Object.fromEntries(Object.entries(obj).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** JSON decoded into Go's map[string]interface{} and written again: every level's keys sorted. */
function goMapsDeep(value) {
  if (Array.isArray(value)) return value.map(goMapsDeep);
  if (value !== null && typeof value === 'object') {
    return goMap(Object.fromEntries(Object.entries(value).map(([k, v]) => [k, goMapsDeep(v)])));
  }
  return value;
}

/** Go's url.QueryEscape: only [A-Za-z0-9-_.~] stay, a space becomes `+`. */
function goQueryEscape(s) {
  return encodeURIComponent(s)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%20/g, '+');
}

/** Go's url.Values.Encode() of single-valued fields: keys sorted, `k=v` joined by `&`. */
export function goFormEncode(fields) {
  return Object.keys(fields)
    .sort()
    .map((k) => `${goQueryEscape(k)}=${goQueryEscape(fields[k])}`)
    .join('&');
}

const hmacHex = (algorithm, key, body) => createHmac(algorithm, key).update(body, 'utf8').digest('hex');

const CROCKFORD = '0123456789abcdefghjkmnpqrstvwxyz';

/** A lower-case ULID (WAHA's event ids are `evt_` + one): 48 bits of ms time, 80 random bits. */
function ulid(ms) {
  let time = '';
  for (let t = ms, i = 0; i < 10; i++, t = Math.floor(t / 32)) time = CROCKFORD[t % 32] + time;
  const bytes = randomBytes(16);
  let rand = '';
  for (let i = 0; i < 16; i++) rand += CROCKFORD[bytes[i] % 32];
  return time + rand;
}

// ---------------------------------------------------------------------------------------
// Rendering: one function per kind, (change, config) -> [{ type, body, headers, sign? }]
// `headers` are final; `sign(nowS)` (native only) gives fresh signature headers per attempt.

const WHATSMEOW_SELF = (info) => [{ jid: selfJid(), admin: info.role === 'admin' }];

/**
 * joingate's own protocol (API.md sections 7 and 11): Standard Webhooks, keyed with the
 * base64-decoded part of the `whsec_` secret, signed over `id.timestamp.body`.
 */
function renderJoingate(c, config) {
  const type = { joined: 'group.joined', left: 'group.left', removed: 'group.removed' }[c.change];
  const body = JSON.stringify({ type, timestamp: rfc3339(Math.floor(c.at_ms / 1000)), data: { group_jid: c.group_jid } });
  const id = `msg_${randomBytes(12).toString('hex')}`;
  const key = Buffer.from(config.secret.slice('whsec_'.length), 'base64');
  const sign = (nowS) => ({
    'webhook-id': id,
    'webhook-timestamp': String(nowS),
    'webhook-signature': `v1,${createHmac('sha256', key).update(`${id}.${nowS}.${body}`, 'utf8').digest('base64')}`,
  });
  return [{ type, body, headers: { 'Content-Type': 'application/json' }, sign }];
}

/**
 * WAHA (WebhookSender.ts, manager.abc.ts populateSessionInfo, groups.noweb.ts and
 * groups.gows.ts): the envelope { id, timestamp (ms), event, session, me, payload, engine,
 * environment }, JSON.stringify'd; `X-Webhook-Hmac` hex HMAC-SHA512 of the body keyed with the
 * configured hmac key string, when one is set. The engine follows the session name, as in
 * the front end. A leave or removal is two events, as WAHA sends both: group.v2.leave and
 * group.v2.participants (type leave).
 */
function renderWaha(c, config) {
  const gows = c.session.includes('gows');
  const engine = gows ? 'GOWS' : 'NOWEB';
  const own = toCUs(selfJid());
  // NOWEB: Baileys creds.me; GOWS adds the device JID.
  const me = gows
    ? { id: own, pushName: SESSION_ME.push_name, lid: selfLid(), jid: `${SESSION_ME.phone}:12@s.whatsapp.net` }
    : { id: own, pushName: SESSION_ME.push_name, lid: selfLid() };
  const events = [];
  if (c.change === 'joined') {
    let group;
    let data;
    if (gows) {
      data = whatsmeowJoinedGroup(c);
      group = {
        id: c.group_jid,
        subject: data.Name,
        description: data.Topic,
        participants: data.Participants.map((p) => ({ id: toCUs(p.JID), role: p.IsAdmin ? 'admin' : 'participant' })),
        membersCanAddNewMember: data.MemberAddMode === 'all_member_add',
        membersCanSendMessages: data.IsAnnounce,
        newMembersApprovalRequired: data.IsJoinApprovalRequired,
      };
    } else {
      const metadata = baileysGroupMetadata(c.info, [baileysSelf(c.info.role)]);
      data = { ...metadata, author: c.actor };
      group = {
        id: metadata.id,
        subject: metadata.subject,
        description: metadata.desc,
        participants: metadata.participants.map((p) => ({ id: toCUs(p.id), role: p.admin === 'admin' ? 'admin' : 'participant' })),
        membersCanAddNewMember: metadata.memberAddMode,
        membersCanSendMessages: metadata.announce,
        newMembersApprovalRequired: metadata.joinApprovalMode,
      };
    }
    events.push(['group.v2.join', { timestamp: c.at_ms, group, _data: data }]);
  } else {
    // NOWEB: Baileys' group-participants.update (participants as WAHA's fork types them:
    // JID strings); GOWS: whatsmeow's events.GroupInfo.
    const data = gows
      ? whatsmeowGroupInfoEvent(c)
      : { id: c.group_jid, author: c.actor, participants: [selfJid()], action: 'remove' };
    events.push(['group.v2.leave', { timestamp: c.at_ms, group: { id: c.group_jid }, _data: data }]);
    events.push([
      'group.v2.participants',
      { group: { id: c.group_jid }, type: 'leave', timestamp: c.at_ms, participants: [{ id: own, role: 'left' }], _data: data },
    ]);
  }
  return events.map(([type, payload]) => {
    const envelope = {
      id: `evt_${ulid(c.at_ms)}`,
      timestamp: c.at_ms,
      event: type,
      session: c.session,
      me,
      payload,
      engine,
      environment: { version: WAHA_VERSION, engine, tier: 'PLUS', browser: null, platform: 'linux/x64', worker: { id: null } },
    };
    const body = JSON.stringify(envelope);
    const headers = {
      'content-type': 'application/json',
      'User-Agent': `WAHA/${WAHA_VERSION}`,
      'X-Webhook-Request-Id': `${c.at_ms.toString(16)}${randomBytes(4).toString('hex')}`,
      'X-Webhook-Timestamp': String(c.at_ms),
    };
    if (isNonEmptyString(config.secret)) {
      headers['X-Webhook-Hmac'] = hmacHex('sha512', config.secret, body);
      headers['X-Webhook-Hmac-Algorithm'] = 'sha512';
    }
    return { type, body, headers };
  });
}

/**
 * Evolution API 2.3.6 (event.manager/webhook.controller emit, the Baileys service's
 * groupHandler): { event, instance, data, destination, date_time, sender, server_url,
 * apikey }, unsigned. A join is Baileys' groups.upsert (the `<create>` notification's
 * metadata plus its author); a leave or removal is the raw group-participants.update (the
 * "enhanced" path fails for the own account, which can no longer read the group).
 */
function renderEvolution(c, config) {
  const [type, data] =
    c.change === 'joined'
      ? ['groups.upsert', [{ ...baileysGroupMetadata(c.info, [baileysSelf(c.info.role)]), author: c.actor }]]
      : [
          'group-participants.update',
          { id: c.group_jid, author: c.actor, participants: [{ id: selfJid(), lid: selfLid(), admin: null }], action: 'remove' },
        ];
  const body = JSON.stringify({
    event: type,
    instance: c.session,
    data,
    destination: config.url,
    // `new Date(Date.now() - tzoffset).toISOString()`: local time written with a Z; UTC here.
    date_time: new Date(c.at_ms).toISOString(),
    sender: selfJid(),
    server_url: EVOLUTION_SERVER_URL,
    apikey: null,
  });
  return [{ type, body, headers: { 'Content-Type': 'application/json' } }];
}

/** whatsmeow's events.JoinedGroup (Go field names, types.GroupInfo embedded and flattened). */
function whatsmeowJoinedGroup(c) {
  return {
    // "invite" for a join by link; what an approval's <create> carries is unverified.
    Reason: c.via === 'join' ? 'invite' : '',
    Type: '',
    CreateKey: '',
    Sender: c.via === 'join' ? null : c.actor,
    SenderPN: null,
    Notify: '',
    ...whatsmeowGroupInfo(c.info, WHATSMEOW_SELF(c.info)),
  };
}

/** whatsmeow's events.GroupInfo for the own account's removal (`Leave`), made by `actor`. */
function whatsmeowGroupInfoEvent(c) {
  return {
    JID: c.group_jid,
    Notify: '',
    Sender: c.actor,
    SenderPN: null,
    Timestamp: rfc3339(Math.floor(c.at_ms / 1000)),
    Name: null,
    Topic: null,
    Locked: null,
    Announce: null,
    Ephemeral: null,
    MembershipApprovalMode: null,
    Delete: null,
    Link: null,
    Unlink: null,
    NewInviteLink: null,
    PrevParticipantVersionID: '',
    ParticipantVersionID: '',
    JoinReason: '',
    Join: null,
    Leave: [selfJid()],
    Promote: null,
    Demote: null,
    Suspended: false,
    Unsuspended: false,
    UnknownChanges: null,
  };
}

/** The wuzapi user id of a user (session) name: stable, 32 hex digits like wuzapi's. */
const wuzapiUserId = (name) => createHash('md5').update(name).digest('hex');

/**
 * wuzapi (wmiau.go myEventHandler / sendEventWithWebHook, helpers.go callHookWithHmac):
 * postmap { event: <whatsmeow struct>, type } Go-marshalled into `jsonData`; sent as a form
 * (default) `instanceName=…&jsonData=…&userID=…` (url.Values.Encode), or with
 * WEBHOOK_FORMAT=json as jsonData decoded into a map, plus instanceName and userID, marshalled
 * again (so every level's keys come sorted). `x-hmac-signature`: hex HMAC-SHA256 of exactly
 * those bytes, keyed with the configured HMAC key string, when one is set.
 */
function renderWuzapi(c, config) {
  const [type, event] = c.change === 'joined' ? ['JoinedGroup', whatsmeowJoinedGroup(c)] : ['GroupInfo', whatsmeowGroupInfoEvent(c)];
  const jsonData = goJson(goMap({ event, type }));
  const fields = { jsonData, userID: wuzapiUserId(c.session), instanceName: c.session };
  let body;
  let contentType;
  if (config.format === 'json') {
    body = goJson(goMapsDeep({ ...JSON.parse(jsonData), instanceName: fields.instanceName, userID: fields.userID }));
    contentType = 'application/json';
  } else {
    body = goFormEncode(fields);
    contentType = 'application/x-www-form-urlencoded';
  }
  const headers = { 'Content-Type': contentType };
  if (isNonEmptyString(config.secret)) headers['x-hmac-signature'] = hmacHex('sha256', config.secret, body);
  return [{ type, body, headers }];
}

/**
 * go-whatsapp-web-multidevice (event_group.go, webhook_forward.go addWebhookSessionID,
 * webhook.go submitWebhook): a Go map, so keys sorted: { device_id (own JID), event, payload,
 * session_id (the device id registered), timestamp (RFC 3339) }. `X-Hub-Signature-256:
 * sha256=<hex HMAC-SHA256 of the body>`, keyed with the secret string (default "secret").
 */
function renderGowa(c, config) {
  let type;
  let payload;
  if (c.change === 'joined') {
    type = 'group.joined';
    const reason = c.via === 'join' ? 'invite' : '';
    payload = { chat_id: c.group_jid, type: 'join', jids: [selfJid()], reason };
    if (c.info.subject) payload.group_name = c.info.subject;
  } else {
    type = 'group.participants';
    payload = { chat_id: c.group_jid, type: 'leave', jids: [selfJid()] };
  }
  const body = goJson(
    goMap({
      payload: goMap(payload),
      event: type,
      timestamp: rfc3339(Math.floor(c.at_ms / 1000)),
      device_id: selfJid(),
      session_id: c.session,
    }),
  );
  const secret = isNonEmptyString(config.secret) ? config.secret : GOWA_DEFAULT_SECRET;
  return [{ type, body, headers: { 'Content-Type': 'application/json', 'X-Hub-Signature-256': `sha256=${hmacHex('sha256', secret, body)}` } }];
}

const RENDER = { joingate: renderJoingate, waha: renderWaha, evolution: renderEvolution, wuzapi: renderWuzapi, gowa: renderGowa };

/**
 * The events one world change sends for a configuration: [{ type, body, headers, sign? }].
 * A rejection is no change at all (WhatsApp never tells the requester), so it renders nothing.
 * @param {{session: string, change: string, via: string, actor: string, group_jid: string, info: object, at_ms: number}} change
 * @param {{kind: string, url: string, secret?: string, format?: string}} config
 */
export function renderEvents(change, config) {
  return RENDER[config.kind](change, config);
}

// ---------------------------------------------------------------------------------------
// Delivery

function postOnce(url, body, headers, signal) {
  return new Promise((resolve) => {
    let target;
    try {
      target = new URL(url);
    } catch {
      resolve({ status: null, error: 'bad url' });
      return;
    }
    const lib = target.protocol === 'https:' ? https : http;
    const data = Buffer.from(body, 'utf8');
    const req = lib.request(target, {
      method: 'POST',
      headers: { ...headers, 'Content-Length': data.length },
      timeout: EVENT_ATTEMPT_TIMEOUT_MS,
      signal,
    });
    req.on('response', (res) => {
      res.resume(); // the receiver's answer body is not read
      res.on('end', () => resolve({ status: res.statusCode, error: null }));
      res.on('error', () => resolve({ status: res.statusCode, error: null }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ status: null, error: err.message || String(err) }));
    req.end(data);
  });
}

/** Thrown by the hub's checks; `status` is the control API's answer status. */
export class EventsInputError extends Error {
  constructor(text, status = 400, kind = 'bad_request') {
    super(text);
    this.status = status;
    this.kind = kind;
  }
}

/**
 * The events hub of one simulator: per-session configurations, delivery and the sent log.
 * @param {{sleep: (ms: number) => Promise<void>, log?: (line: string) => void}} deps
 */
export function createEventHub({ sleep, log = () => {} }) {
  const configs = new Map(); // session -> { kind, url, secret, format }
  let sent = [];
  let seq = 0;
  // A reset abandons deliveries under way: they neither retry nor record any more.
  let generation = 0;
  const controllers = new Set();
  // Per session, the tail of its delivery chain: a session's events leave in order.
  let chains = new Map();

  /** Set (or with url null, clear) where a session's events go. Throws on bad input. */
  function configure({ session, kind, url, secret, format } = {}) {
    if (!isNonEmptyString(session) || session === '*') throw new EventsInputError('session must be a session id');
    if (url === null) {
      configs.delete(session);
      return;
    }
    if (!EVENT_KINDS.includes(kind)) throw new EventsInputError(`kind must be one of ${EVENT_KINDS.join(', ')}`);
    let parsed;
    try {
      parsed = new URL(url);
    } catch {
      parsed = null;
    }
    if (typeof url !== 'string' || !parsed || !['http:', 'https:'].includes(parsed.protocol)) {
      throw new EventsInputError('url must be an absolute http(s) URL, or null to turn events off');
    }
    if (secret !== undefined && secret !== null && !isNonEmptyString(secret)) throw new EventsInputError('secret must be a non-empty string');
    if (kind === 'joingate') {
      const key = typeof secret === 'string' && secret.startsWith('whsec_') ? Buffer.from(secret.slice(6), 'base64') : null;
      if (!key || key.length === 0) throw new EventsInputError('secret must be a whsec_ secret (whsec_ + base64) for kind joingate');
    }
    if (format !== undefined && format !== null) {
      if (kind !== 'wuzapi') throw new EventsInputError('format is for kind wuzapi only');
      if (format !== 'json' && format !== 'form') throw new EventsInputError('format must be "json" or "form"');
    }
    configs.set(session, {
      kind,
      url,
      secret: secret ?? undefined,
      ...(kind === 'wuzapi' ? { format: format ?? 'form' } : {}),
    });
  }

  /** The configurations, without secrets. */
  const list = () =>
    [...configs].map(([session, c]) => ({
      session,
      kind: c.kind,
      url: c.url,
      ...(c.format ? { format: c.format } : {}),
      has_secret: c.secret !== undefined,
    }));

  const copy = (e) => ({ ...e, headers: { ...e.headers } });
  const listSent = (session) => sent.filter((e) => session === undefined || session === null || e.session === session).map(copy);

  /** Make the attempts of one recorded event; resolves when it is delivered or failed. */
  async function deliver(record, sign, gen) {
    for (let attempt = 1; attempt <= EVENT_ATTEMPTS; attempt++) {
      if (gen !== generation) return;
      if (sign) Object.assign(record.headers, sign(Math.floor(Date.now() / 1000)));
      const controller = new AbortController();
      controllers.add(controller);
      const { status, error } = await postOnce(record.url, record.body, record.headers, controller.signal);
      controllers.delete(controller);
      if (gen !== generation) return;
      record.attempts = attempt;
      record.status = status;
      record.error = error;
      if (status !== null && status >= 200 && status < 300) {
        record.state = 'delivered';
        break;
      }
      if (attempt < EVENT_ATTEMPTS) await sleep(EVENT_RETRY_MS);
    }
    if (record.state !== 'delivered') record.state = 'failed';
    record.finished_at = Date.now();
    log(`event ${record.kind} ${record.type} (${record.session}) -> ${record.status ?? record.error} after ${record.attempts} attempt(s)`);
  }

  function enqueue(session, run) {
    const tail = (chains.get(session) ?? Promise.resolve()).then(run, run);
    chains.set(session, tail);
    return tail;
  }

  function newRecord(session, config, event, extra = {}) {
    const record = {
      seq: ++seq,
      session,
      kind: config.kind,
      type: event.type,
      url: config.url,
      ...(config.format ? { format: config.format } : {}),
      headers: { ...event.headers },
      body: event.body,
      state: 'pending',
      attempts: 0,
      status: null,
      error: null,
      created_at: Date.now(),
      finished_at: null,
      ...extra,
    };
    sent.push(record);
    return record;
  }

  /**
   * Hand over one session's world changes: each configured session's events are rendered
   * now and sent after EVENT_DELAY_MS, in order. Nothing happens without a configuration.
   */
  function emit(session, changes) {
    const config = configs.get(session);
    if (!config || changes.length === 0) return;
    const gen = generation;
    const planned = [];
    for (const change of changes) {
      for (const event of renderEvents({ ...change, session }, config)) {
        planned.push({ record: newRecord(session, config, event), sign: event.sign });
      }
    }
    enqueue(session, async () => {
      await sleep(EVENT_DELAY_MS);
      for (const { record, sign } of planned) await deliver(record, sign, gen);
    });
  }

  /**
   * Send the last event of a session again, byte for byte with the same headers, to the
   * same URL; resolves to its new record once delivered or failed.
   */
  async function replay(session) {
    if (!isNonEmptyString(session)) throw new EventsInputError('session must be a session id');
    const last = [...sent].reverse().find((e) => e.session === session && e.replay_of === undefined);
    if (!last) throw new EventsInputError(`no event was sent for session ${session}`, 409, 'conflict');
    const config = { kind: last.kind, url: last.url, format: last.format };
    const record = newRecord(session, config, { type: last.type, body: last.body, headers: last.headers }, { replay_of: last.seq });
    const gen = generation;
    await enqueue(session, () => deliver(record, null, gen));
    return copy(record);
  }

  function reset() {
    generation += 1;
    for (const c of controllers) c.abort();
    controllers.clear();
    configs.clear();
    chains = new Map();
    sent = [];
    seq = 0;
  }

  return { configure, list, sent: listSent, emit, replay, reset, close: reset };
}
