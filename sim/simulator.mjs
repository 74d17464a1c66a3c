#!/usr/bin/env node
// Session backend simulator for joingate.
//
// Speaks the backend protocol of the API contract (API.md, section 7) over plain HTTP, answers from the
// demo catalogue (sim/catalogue.mjs) with the outcomes real WhatsApp gives, keeps
// per-session state in memory, and adds a control API under /__sim for tests: fault
// injection, call recording and concurrency statistics. Node 20 built-ins only.
//
// Library: const sim = await startSimulator({ port: 0 }); ... await sim.close();
// CLI:     node sim/simulator.mjs --port 8788 [--host 127.0.0.1] [--token T] [--log]

import http from 'node:http';
import { createHash, randomInt, timingSafeEqual } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  CATALOGUE,
  PARTICIPANT_FAILURES,
  RATE_OVERLIMIT_RETRY_AFTER_S,
  WA_TEXT,
} from './catalogue.mjs';

const JSON_TYPE = 'application/json; charset=utf-8';
const MAX_BODY_BYTES = 1024 * 1024;
const CODE_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const FAULT_MODES = new Set([
  'latency', 'hang', 'status500', 'status503', 'garbage', 'bad_shape', 'drop', 'whatsapp', 'none',
]);
const DEFAULT_FAULT_LATENCY_MS = 1000;
// What a crashed app behind a proxy typically sends: not JSON at all.
const HTML_500 =
  '<html><head><title>500 Internal Server Error</title></head><body><h1>Internal Server Error</h1></body></html>\n';
const USER_JID_RE = /^\d{1,20}@(s\.whatsapp\.net|lid)$/;
// Invite codes in paths are 16-32 alphanumerics with at least one letter (JIDs have '@').
const INVITE_LIKE_RE = /^(?=.*[A-Za-z])[A-Za-z0-9]{16,32}$/;

// ---------------------------------------------------------------------------------------
// Answers

/** An answer the simulator sends: HTTP status, JSON body, extra headers. */
class Answer {
  constructor(status, body, headers = {}) {
    this.status = status;
    this.body = body;
    this.headers = headers;
  }
}

const ok = (body) => new Answer(200, body);

/** A WhatsApp error as the backend reports it; the HTTP status is informative only. */
function waError(waCode) {
  // Non-standard codes (419, 304, ...) are not meaningful HTTP statuses: send 400.
  const status = waCode >= 400 && waCode <= 599 && http.STATUS_CODES[waCode] ? waCode : 400;
  const headers = waCode === 429 ? { 'Retry-After': String(RATE_OVERLIMIT_RETRY_AFTER_S) } : {};
  const text = WA_TEXT[waCode] ?? 'error';
  return new Answer(status, { error: { kind: 'whatsapp', wa_code: waCode, text } }, headers);
}

const kindError = (status, kind, text) =>
  new Answer(status, { error: text ? { kind, text } : { kind } });
const badRequest = (text) => kindError(400, 'bad_request', text);
const notFound = () => kindError(404, 'not_found');

// ---------------------------------------------------------------------------------------
// Per-session world: group roles, pending requests, invite codes (catalogue + resets).

function newWorld() {
  const groups = new Map(); // group_jid -> { entry, role, size, pending: Map(jid -> request) }
  const codes = new Map(); // invite code -> catalogue entry
  const currentCode = new Map(); // group_jid -> the code that currently opens it
  for (const entry of CATALOGUE) {
    codes.set(entry.code, entry);
    if (entry.group_jid === null || entry.group_exists === false) continue;
    currentCode.set(entry.group_jid, entry.code);
    groups.set(entry.group_jid, {
      entry,
      role: entry.role, // admin | member | pending | none
      size: entry.size,
      pending: new Map((entry.pending_requests ?? []).map((r) => [r.jid, { ...r }])),
    });
  }
  return { groups, codes, currentCode, revoked: new Set() };
}

const isMember = (group) => group.role === 'admin' || group.role === 'member';

function newInviteCode(world) {
  for (;;) {
    let code = '';
    for (let i = 0; i < 22; i++) code += CODE_ALPHABET[randomInt(CODE_ALPHABET.length)];
    if (!world.codes.has(code) && !world.revoked.has(code)) return code;
  }
}

/** Resolve an invite code to its catalogue entry, or throw the WhatsApp answer. */
function lookupCode(world, code) {
  if (world.revoked.has(code)) throw waError(410);
  const entry = world.codes.get(code);
  if (!entry) throw waError(406);
  return entry;
}

function join(world, entry) {
  if (entry.join_error) throw waError(entry.join_error);
  const group = world.groups.get(entry.group_jid);
  if (!group) throw waError(404);
  // WhatsApp answers 304/409 here; a backend reports that as a successful already_member.
  if (isMember(group)) return ok({ group_jid: entry.group_jid, status: 'already_member' });
  if (entry.requires_approval) {
    group.role = 'pending';
    return ok({ group_jid: entry.group_jid, status: 'pending_approval' });
  }
  group.role = 'member';
  group.size += 1;
  return ok({ group_jid: entry.group_jid, status: 'joined' });
}

/** The group for an admin-side route, or throw 404 / 403 (not in group) / 401 (not admin). */
function adminGroup(world, gjid) {
  const group = world.groups.get(gjid);
  if (!group) throw waError(404);
  if (!isMember(group)) throw waError(403);
  if (group.role !== 'admin') throw waError(401);
  return group;
}

// ---------------------------------------------------------------------------------------
// Backend routes (API.md section 7)

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const isNonEmptyString = (v) => typeof v === 'string' && v.length > 0;

const ROUTES = [
  {
    name: 'session_status',
    pattern: ['sessions', ':sid'],
    // The one route an offline session answers: it says it is offline.
    GET: ({ presence }) => ok({ connected: presence !== 'offline' }),
  },
  {
    name: 'join',
    pattern: ['sessions', ':sid', 'groups', 'join'],
    POST: ({ world, body }) => {
      if (!isObject(body) || !isNonEmptyString(body.code)) return badRequest('code is required');
      return join(world, lookupCode(world, body.code));
    },
  },
  {
    name: 'join_by_message',
    pattern: ['sessions', ':sid', 'groups', 'join-by-message'],
    POST: ({ world, body }) => {
      if (
        !isObject(body) ||
        !isNonEmptyString(body.code) ||
        !isNonEmptyString(body.group_jid) ||
        !isNonEmptyString(body.inviter_jid) ||
        (body.expiration !== undefined && body.expiration !== null && !Number.isFinite(body.expiration))
      ) {
        return badRequest('code, group_jid and inviter_jid are required');
      }
      // `expiration` is deliberately not checked: joingate rejects expired invite messages
      // at the edge, and the recorded calls show whether one got through anyway.
      const entry = lookupCode(world, body.code);
      // An invite message names its group; WhatsApp rejects a code/group mismatch as 400.
      if (entry.group_jid !== null && entry.group_jid !== body.group_jid) throw waError(400);
      return join(world, entry);
    },
  },
  {
    name: 'invite_preview',
    pattern: ['sessions', ':sid', 'invites', ':code'],
    GET: ({ world, params }) => {
      const entry = lookupCode(world, params.code);
      if (entry.preview_error) throw waError(entry.preview_error);
      const group = world.groups.get(entry.group_jid);
      if (!group) throw waError(404);
      const preview = { group_jid: entry.group_jid, subject: entry.subject };
      if (entry.description !== undefined) preview.description = entry.description;
      preview.size = group.size;
      if (entry.created_at !== undefined) preview.created_at = entry.created_at;
      preview.requires_approval = entry.requires_approval;
      return ok(preview);
    },
  },
  {
    name: 'leave',
    pattern: ['sessions', ':sid', 'groups', ':gjid', 'leave'],
    POST: ({ world, params, body }) => {
      if (body !== null && !isObject(body)) return badRequest('body must be an object');
      const group = world.groups.get(params.gjid);
      if (!group) throw waError(404);
      if (!isMember(group)) throw waError(403);
      group.role = 'none';
      group.size = Math.max(0, group.size - 1);
      return ok({});
    },
  },
  {
    name: 'join_requests',
    // Recorded calls name the two operations apart.
    name_by_method: { GET: 'join_requests_list', POST: 'join_requests_action' },
    pattern: ['sessions', ':sid', 'groups', ':gjid', 'join-requests'],
    GET: ({ world, params }) => {
      const group = adminGroup(world, params.gjid);
      return ok({ requests: [...group.pending.values()].map((r) => ({ ...r })) });
    },
    POST: ({ world, params, body }) => {
      if (
        !isObject(body) ||
        (body.action !== 'approve' && body.action !== 'reject') ||
        !Array.isArray(body.participants) ||
        body.participants.length === 0 ||
        !body.participants.every((p) => typeof p === 'string')
      ) {
        return badRequest('action (approve|reject) and a non-empty participants list are required');
      }
      const group = adminGroup(world, params.gjid);
      const results = body.participants.map((jid) => {
        if (Object.hasOwn(PARTICIPANT_FAILURES, jid)) {
          return { jid, ok: false, wa_code: PARTICIPANT_FAILURES[jid] };
        }
        if (!USER_JID_RE.test(jid)) return { jid, ok: false, wa_code: 400 };
        // Not (or no longer) pending: the requester withdrew, or it was handled already.
        if (!group.pending.delete(jid)) return { jid, ok: false, wa_code: 404 };
        if (body.action === 'approve') group.size += 1;
        return { jid, ok: true };
      });
      return ok({ results });
    },
  },
  {
    name: 'invite_reset',
    pattern: ['sessions', ':sid', 'groups', ':gjid', 'invite', 'reset'],
    POST: ({ world, params, body }) => {
      if (body !== null && !isObject(body)) return badRequest('body must be an object');
      adminGroup(world, params.gjid);
      const old = world.currentCode.get(params.gjid);
      const entry = world.codes.get(old);
      world.codes.delete(old);
      world.revoked.add(old);
      const code = newInviteCode(world);
      world.codes.set(code, entry);
      world.currentCode.set(params.gjid, code);
      return ok({ invite_code: code });
    },
  },
];

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];

/** Match a decoded path against the route table. */
function matchRoute(segments) {
  for (const route of ROUTES) {
    if (route.pattern.length !== segments.length) continue;
    const params = {};
    let matched = true;
    for (let i = 0; i < segments.length; i++) {
      const want = route.pattern[i];
      if (want.startsWith(':')) {
        if (segments[i] === '') matched = false;
        else params[want.slice(1)] = segments[i];
      } else if (want !== segments[i]) {
        matched = false;
      }
      if (!matched) break;
    }
    if (matched) return { route, params };
  }
  return null;
}

const routeName = (route, method) => route.name_by_method?.[method] ?? route.name;

/** Split a path into percent-decoded segments; null when the encoding is broken. */
function decodeSegments(pathname) {
  try {
    return pathname.split('/').slice(1).map(decodeURIComponent);
  } catch {
    return null;
  }
}

/** Whether a session id is known and connected, decided by its prefix. */
function presenceOf(sid) {
  if (sid.startsWith('ghost')) return 'not_found';
  if (sid.startsWith('offline')) return 'offline';
  return 'connected';
}

// ---------------------------------------------------------------------------------------
// Helpers

/** Unix epoch milliseconds with sub-millisecond precision, for ordering calls. */
const nowMs = () => Math.round((performance.timeOrigin + performance.now()) * 1000) / 1000;

function sha256(s) {
  return createHash('sha256').update(s).digest();
}

/** Constant-time bearer check; hashing first makes the lengths equal. */
function bearerMatches(header, expected) {
  const m = /^Bearer ([^\s]+)$/i.exec(header ?? '');
  return m !== null && timingSafeEqual(sha256(m[1]), sha256(expected));
}

/** Read the whole body; resolves null when it is larger than allowed (answered as bad_request). */
function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) tooLarge = true;
      else chunks.push(chunk);
    });
    const finish = () => resolve(tooLarge ? null : Buffer.concat(chunks).toString('utf8'));
    req.on('end', finish);
    // A client that goes away mid-body never sends 'end'; do not wait for it forever.
    req.on('close', finish);
    req.on('error', reject);
  });
}

/** Parse a JSON body: { value } on success (null for an empty body), or { invalid: true }. */
function parseJson(text) {
  if (text.trim() === '') return { value: null };
  try {
    return { value: JSON.parse(text) };
  } catch {
    return { invalid: true };
  }
}

/**
 * A path fit for logs: the segment after `invites/`, and anything else shaped like an
 * invite code, is cut to its first 4 characters.
 */
function redactPath(pathname) {
  const segments = pathname.split('/');
  return segments
    .map((seg, i) => (segments[i - 1] === 'invites' || INVITE_LIKE_RE.test(seg) ? shortCode(seg) : seg))
    .join('/');
}

const shortCode = (code) => (typeof code === 'string' ? `${code.slice(0, 4)}…` : String(code));

function sendJson(res, status, body, headers = {}) {
  if (res.destroyed || res.writableEnded) return false;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': JSON_TYPE,
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(text);
  return true;
}

function sendText(res, status, contentType, text) {
  if (res.destroyed || res.writableEnded) return false;
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
  return true;
}

// ---------------------------------------------------------------------------------------
// The simulator

/**
 * Start a simulator. Resolves once it listens.
 * @param {{host?: string, port?: number, token?: string, log?: boolean}} [options]
 */
export async function startSimulator({ host = '127.0.0.1', port = 0, token = undefined, log = false } = {}) {
  const worlds = new Map(); // sid -> world
  const faults = new Map(); // sid or '*' -> { mode, delay_ms, remaining, wa_code }
  const config = { latency_ms: 0 };
  const timers = new Set();
  let calls = [];
  let seq = 0;
  let total = 0;
  // Actual in-flight counts survive /__sim/reset (those requests are still running);
  // the maxima restart from them.
  const inFlight = new Map();
  let inFlightOverall = 0;
  let maxConcurrency = new Map();
  let maxOverall = 0;

  const worldOf = (sid) => {
    let w = worlds.get(sid);
    if (!w) worlds.set(sid, (w = newWorld()));
    return w;
  };

  const sleep = (ms) =>
    ms > 0
      ? new Promise((resolve) => {
          const t = setTimeout(() => {
            timers.delete(t);
            resolve();
          }, ms);
          timers.add(t);
        })
      : Promise.resolve();

  const logLine = (line) => {
    if (log) process.stderr.write(`[simulator] ${line}\n`);
  };

  /** Take the fault for this request (a session-specific one wins over '*'), spending one use. */
  function takeFault(sid) {
    for (const key of sid === null ? ['*'] : [sid, '*']) {
      const fault = faults.get(key);
      if (!fault) continue;
      if (fault.remaining !== null && --fault.remaining <= 0) faults.delete(key);
      return fault;
    }
    return null;
  }

  function trackStart(sid) {
    total += 1;
    inFlightOverall += 1;
    maxOverall = Math.max(maxOverall, inFlightOverall);
    if (sid === null) return;
    const n = (inFlight.get(sid) ?? 0) + 1;
    inFlight.set(sid, n);
    maxConcurrency.set(sid, Math.max(maxConcurrency.get(sid) ?? 0, n));
  }

  function trackEnd(sid) {
    inFlightOverall -= 1;
    if (sid !== null) inFlight.set(sid, inFlight.get(sid) - 1);
  }

  // --- control API ---------------------------------------------------------------------

  function reset() {
    worlds.clear();
    faults.clear();
    config.latency_ms = 0;
    calls = [];
    seq = 0;
    total = 0;
    maxConcurrency = new Map([...inFlight].filter(([, n]) => n > 0));
    maxOverall = inFlightOverall;
  }

  /** Install (or with mode "none", clear) the fault for one session or '*'. Throws on bad input. */
  function setFault({ session, mode, delay_ms, count, wa_code } = {}) {
    if (!isNonEmptyString(session)) throw new Error('session must be a session id or "*"');
    if (!FAULT_MODES.has(mode)) throw new Error(`mode must be one of ${[...FAULT_MODES].join(', ')}`);
    if (delay_ms !== undefined && !(Number.isInteger(delay_ms) && delay_ms >= 0)) {
      throw new Error('delay_ms must be a non-negative integer');
    }
    if (count !== undefined && count !== null && !(Number.isInteger(count) && count >= 1)) {
      throw new Error('count must be a positive integer');
    }
    if (wa_code !== undefined && !(Number.isInteger(wa_code) && wa_code >= 100 && wa_code <= 999)) {
      throw new Error('wa_code must be an integer 100-999');
    }
    if (mode === 'none') {
      faults.delete(session);
      return;
    }
    faults.set(session, {
      mode,
      delay_ms: delay_ms ?? (mode === 'latency' ? DEFAULT_FAULT_LATENCY_MS : 0),
      remaining: count ?? null,
      wa_code: wa_code ?? 429,
    });
  }

  function setConfig({ latency_ms } = {}) {
    if (latency_ms !== undefined) {
      if (!(Number.isInteger(latency_ms) && latency_ms >= 0)) {
        throw new Error('latency_ms must be a non-negative integer');
      }
      config.latency_ms = latency_ms;
    }
  }

  const listCalls = (session) =>
    calls.filter((c) => session === undefined || session === null || c.session === session).map((c) => ({ ...c }));

  function stats() {
    const inFlightObj = {};
    for (const sid of new Set([...maxConcurrency.keys(), ...inFlight.keys()])) {
      const n = inFlight.get(sid) ?? 0;
      if (n > 0 || maxConcurrency.has(sid)) inFlightObj[sid] = n;
    }
    return {
      total,
      max_concurrency: Object.fromEntries(maxConcurrency),
      max_concurrency_overall: maxOverall,
      in_flight: inFlightObj,
      in_flight_overall: inFlightOverall,
    };
  }

  function listFaults() {
    return [...faults].map(([session, f]) => ({
      session,
      mode: f.mode,
      delay_ms: f.delay_ms,
      remaining: f.remaining,
      ...(f.mode === 'whatsapp' ? { wa_code: f.wa_code } : {}),
    }));
  }

  /** A readable dump of one session's world (debugging aid; invite codes included). */
  function sessionState(sid) {
    const world = worldOf(sid);
    return {
      session: sid,
      state: presenceOf(sid),
      groups: [...world.groups].map(([jid, g]) => ({
        group_jid: jid,
        name: g.entry.name,
        role: g.role,
        size: g.size,
        invite_code: world.currentCode.get(jid),
        pending_requests: [...g.pending.values()],
      })),
      revoked_codes: [...world.revoked],
    };
  }

  async function handleControl(req, res, url) {
    const action = `${req.method} ${url.pathname}`;
    const done = (status, body) => {
      sendJson(res, status, body);
      logLine(`${action} -> ${status}`);
    };
    let body = null;
    if (req.method === 'POST') {
      const text = await readBody(req);
      const parsed = text === null ? { invalid: true } : parseJson(text);
      if (parsed.invalid || (parsed.value !== null && !isObject(parsed.value))) {
        return done(400, { error: { kind: 'bad_request', text: 'body must be a JSON object' } });
      }
      body = parsed.value ?? {};
    }
    try {
      switch (action) {
        case 'POST /__sim/reset':
          reset();
          return done(200, { ok: true });
        case 'POST /__sim/faults':
          setFault(body);
          return done(200, { ok: true });
        case 'GET /__sim/faults':
          return done(200, { faults: listFaults() });
        case 'POST /__sim/config':
          setConfig(body);
          return done(200, { ok: true, latency_ms: config.latency_ms });
        case 'GET /__sim/config':
          return done(200, { latency_ms: config.latency_ms });
        case 'GET /__sim/calls':
          return done(200, { calls: listCalls(url.searchParams.get('session') || undefined) });
        case 'GET /__sim/stats':
          return done(200, stats());
        case 'GET /__sim/state': {
          const sid = url.searchParams.get('session');
          if (!sid) return done(400, { error: { kind: 'bad_request', text: 'session is required' } });
          return done(200, sessionState(sid));
        }
        case 'GET /__sim/catalogue':
          return done(200, { catalogue: CATALOGUE });
        default:
          return done(404, { error: { kind: 'not_found' } });
      }
    } catch (err) {
      return done(400, { error: { kind: 'bad_request', text: err.message } });
    }
  }

  // --- backend routes ------------------------------------------------------------------

  async function handleBackend(req, res, url) {
    const segments = decodeSegments(url.pathname);
    const sid = segments && segments[0] === 'sessions' && segments[1] ? segments[1] : null;
    const match = segments ? matchRoute(segments) : null;
    const authorized = token === undefined || bearerMatches(req.headers.authorization, token);
    const call = {
      seq: ++seq,
      session: sid,
      method: req.method,
      path: req.url,
      route: match ? routeName(match.route, req.method) : null,
      body: null,
      request_id: req.headers['x-request-id'] ?? null,
      authorized,
      fault: null,
      status: null,
      client_aborted: false,
      started_at: nowMs(),
      finished_at: null,
    };
    calls.push(call);
    trackStart(sid);
    res.once('close', () => {
      trackEnd(sid);
      if (!res.writableFinished && call.fault !== 'drop') call.client_aborted = true;
      call.finished_at = nowMs();
    });

    // Chosen at arrival so that `count` is spent in arrival order.
    const fault = takeFault(sid);
    call.fault = fault?.mode ?? null;

    const text = await readBody(req);
    const parsed = text === null ? { invalid: true, tooLarge: true } : parseJson(text);
    call.body = parsed.invalid ? null : parsed.value;

    const logDone = (status, note = '') => {
      if (!log) return;
      const redacted = redactPath(url.pathname);
      const code = isObject(call.body) && call.body.code !== undefined ? ` code=${shortCode(call.body.code)}` : '';
      const ms = (nowMs() - call.started_at).toFixed(0);
      logLine(`${req.method} ${redacted}${code} -> ${status}${note} (${ms} ms)`);
    };

    if (fault?.mode === 'hang') {
      logDone('hang');
      return; // keep the socket open until the client gives up or close() runs
    }

    await sleep(config.latency_ms + (fault?.delay_ms ?? 0));

    switch (fault?.mode) {
      case 'drop':
        req.socket.destroy();
        return logDone('drop');
      case 'status500':
        if (sendText(res, 500, 'text/html; charset=utf-8', HTML_500)) call.status = 500;
        return logDone(500, ' (fault)');
      case 'status503':
        if (sendJson(res, 503, { status: 'unavailable', message: 'upstream session service is restarting' })) {
          call.status = 503;
        }
        return logDone(503, ' (fault)');
      case 'garbage':
        // Claims JSON but is not: the caller must not trust Content-Type alone.
        if (sendText(res, 200, JSON_TYPE, '<<simulator garbage>> {"group_jid": "1203630')) call.status = 200;
        return logDone(200, ' garbage (fault)');
      case 'bad_shape':
        if (sendJson(res, 200, { foo: 1 })) call.status = 200;
        return logDone(200, ' bad_shape (fault)');
      default:
        break;
    }

    let answer;
    if (fault?.mode === 'whatsapp') answer = waError(fault.wa_code);
    else answer = dispatch(req.method, match, parsed, authorized);
    // A client that gave up during a delay gets nothing, but the effect has happened,
    // as it would on a real backend that finished its WhatsApp call.
    if (sendJson(res, answer.status, answer.body, answer.headers)) call.status = answer.status;
    const note = answer.body?.status ? ` ${answer.body.status}`
      : answer.body?.error ? ` ${answer.body.error.kind}${answer.body.error.wa_code ? ` ${answer.body.error.wa_code}` : ''}` : '';
    logDone(answer.status, `${note}${fault ? ` (fault ${fault.mode})` : ''}`);
  }

  /** Auth, route, body, session, then the operation itself. */
  function dispatch(method, match, parsed, authorized) {
    if (!authorized) return kindError(401, 'unauthorized');
    if (!match) return notFound();
    const handler = match.route[method];
    if (typeof handler !== 'function') {
      const allow = METHODS.filter((m) => typeof match.route[m] === 'function').join(', ');
      return new Answer(405, { error: { kind: 'method_not_allowed' } }, { Allow: allow });
    }
    if (parsed.invalid) return badRequest(parsed.tooLarge ? 'body is over 1 MiB' : 'body is not valid JSON');
    const sid = match.params.sid;
    const presence = presenceOf(sid);
    if (presence === 'not_found') return kindError(404, 'session_not_found');
    if (presence === 'offline' && match.route.name !== 'session_status') {
      return kindError(409, 'session_not_connected');
    }
    try {
      return handler({ world: worldOf(sid), sid, params: match.params, body: parsed.value, presence });
    } catch (err) {
      if (err instanceof Answer) return err;
      throw err;
    }
  }

  const server = http.createServer((req, res) => {
    let url;
    try {
      url = new URL(req.url, 'http://simulator.invalid');
    } catch {
      return sendJson(res, 400, { error: { kind: 'bad_request' } });
    }
    const handler = url.pathname === '/__sim' || url.pathname.startsWith('/__sim/') ? handleControl : handleBackend;
    handler(req, res, url).catch((err) => {
      // A simulator bug: answer something a test can see rather than leaving the socket open.
      process.stderr.write(`[simulator] internal error: ${err?.stack ?? err}\n`);
      sendJson(res, 500, { error: { kind: 'simulator_internal_error' } });
    });
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });

  const address = server.address();
  const urlHost = address.family === 'IPv6' || address.family === 6 ? `[${address.address}]` : address.address;
  let closing = null;

  return {
    url: `http://${urlHost}:${address.port}`,
    host: address.address,
    port: address.port,
    /** Stop listening and destroy every open socket, hung requests included. */
    close() {
      closing ??= new Promise((resolve) => {
        for (const t of timers) clearTimeout(t);
        timers.clear();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
    // The control API, callable without HTTP.
    reset,
    setFault,
    setConfig,
    calls: listCalls,
    stats,
    faults: listFaults,
    sessionState,
  };
}

// ---------------------------------------------------------------------------------------
// CLI

function parseArgs(argv) {
  const opts = { host: '127.0.0.1', port: 8788, token: process.env.SIMULATOR_TOKEN || undefined, log: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
      return argv[++i];
    };
    switch (arg) {
      case '--port': {
        const v = value();
        opts.port = Number(v);
        if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw new Error(`bad port: ${v}`);
        break;
      }
      case '--host':
        opts.host = value();
        break;
      case '--token':
        opts.token = value();
        break;
      case '--log':
        opts.log = true;
        break;
      case '-h':
      case '--help':
        opts.help = true;
        break;
      default:
        throw new Error(`unknown argument: ${arg}`);
    }
  }
  return opts;
}

async function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${err.message}\nusage: node sim/simulator.mjs [--port 8788] [--host 127.0.0.1] [--token T] [--log]\n`);
    process.exit(2);
  }
  if (opts.help) {
    process.stdout.write('usage: node sim/simulator.mjs [--port 8788] [--host 127.0.0.1] [--token T] [--log]\n' +
      'See docs/simulator.md. SIMULATOR_TOKEN in the environment stands in for --token.\n');
    return;
  }
  const sim = await startSimulator(opts);
  process.stdout.write(`simulator listening on ${sim.url}\n`);
  const stop = async () => {
    await sim.close();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

const isMain = (() => {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
})();

if (isMain) {
  main().catch((err) => {
    process.stderr.write(`simulator: ${err.message}\n`);
    process.exit(1);
  });
}
