#!/usr/bin/env node
// Session backend simulator for joingate.
//
// One simulated WhatsApp world (sim/world.mjs, seeded from sim/catalogue.mjs), several
// front ends that speak real servers' wire formats over plain HTTP:
//   /            joingate's own backend protocol (API.md section 7)   sim/front/native.mjs
//   /waha        WAHA                                                  sim/front/waha.mjs
//   /evolution   Evolution API v2                                      sim/front/evolution.mjs
//   /wuzapi      wuzapi                                                sim/front/wuzapi.mjs
//   /gowa        go-whatsapp-web-multidevice                           sim/front/gowa.mjs
// plus a control API under /__sim for tests: fault injection, account restrictions, call
// recording and concurrency statistics, shared by every front end; what other people do to
// the account (an admin approves or rejects its request, or removes it); and the servers'
// events out (sim/events.mjs): where a session's changes are sent, signed as each server
// signs them. Node 20 built-ins only.
//
// Library: const sim = await startSimulator({ port: 0 }); ... await sim.close();
// CLI:     node sim/simulator.mjs --port 8788 [--host 127.0.0.1] [--token T] [--log]

import http from 'node:http';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CATALOGUE } from './catalogue.mjs';
import { resolveCredentials } from './credentials.mjs';
import {
  WorldStateError, approveOwnRequest, describeWorld, newInvites, newWorld, promoteOwnAccount, rejectOwnRequest, removeOwnAccount,
  resetGroupCode, restrictedUntil, takeChanges,
} from './world.mjs';
import { EventsInputError, createEventHub } from './events.mjs';
import native from './front/native.mjs';
import waha from './front/waha.mjs';
import evolution from './front/evolution.mjs';
import wuzapi from './front/wuzapi.mjs';
import gowa from './front/gowa.mjs';
import { inviteCodeOf, isNonEmptyString, isObject } from './front/common.mjs';
import {
  JSON_TYPE, answerNote, codeOf, decodeSegments, nowMs, parseJson, readBody, redactPath, sendAnswer,
  sendCut, sendHuge, sendJson, sendText, shortCode,
} from './http.mjs';

export { SIM_CREDENTIALS, wuzapiToken, gowaAuthorization } from './credentials.mjs';

const FAULT_MODES = new Set([
  'latency', 'hang', 'status500', 'status503', 'garbage', 'bad_shape', 'drop', 'cut', 'stall', 'huge', 'whatsapp', 'none',
]);
const DEFAULT_FAULT_LATENCY_MS = 1000;
// What a crashed app behind a proxy typically sends: not JSON at all.
const HTML_500 =
  '<html><head><title>500 Internal Server Error</title></head><body><h1>Internal Server Error</h1></body></html>\n';

/** The server front ends by path prefix; anything else is the native protocol at the root. */
const PREFIXED_FRONTS = [waha, evolution, wuzapi, gowa];
/** Every `kind` a recorded call can have, with the path prefix of its front end. */
export const FRONT_END_PREFIXES = Object.freeze(
  Object.fromEntries([native, ...PREFIXED_FRONTS].map((f) => [f.kind, f.prefix])),
);

function pickFront(pathname) {
  for (const front of PREFIXED_FRONTS) {
    if (pathname === front.prefix || pathname.startsWith(`${front.prefix}/`)) {
      return { front, rest: pathname.slice(front.prefix.length) || '/' };
    }
  }
  return { front: native, rest: pathname };
}

// ---------------------------------------------------------------------------------------
// The simulator

/**
 * Start a simulator. Resolves once it listens.
 * @param {{host?: string, port?: number, token?: string, log?: boolean,
 *          credentials?: {waha?: string, evolution?: string, wuzapi?: string, gowa?: string}}} [options]
 */
export async function startSimulator({
  host = '127.0.0.1',
  port = 0,
  token = undefined,
  log = false,
  credentials: credentialOverrides = undefined,
} = {}) {
  const credentials = resolveCredentials(credentialOverrides);
  const worlds = new Map(); // world key (session name) -> world, shared by every front end
  // The groups' invite codes, one registry for every world (a reset is global, as in WhatsApp).
  let invites = newInvites();
  const faults = new Map(); // world key or '*' -> { mode, delay_ms, remaining, wa_code }
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
    if (!w) worlds.set(sid, (w = newWorld(invites)));
    return w;
  };
  const env = { worldOf, credentials, token };

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

  const events = createEventHub({ sleep, log: logLine });

  /** Hand every world's recorded membership changes to the events hub (after an answer). */
  function flushChanges() {
    for (const [key, world] of worlds) {
      if (world.changes.length > 0) events.emit(key, takeChanges(world));
    }
  }

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
    events.reset();
    worlds.clear();
    invites = newInvites();
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

  /**
   * Restrict one session's WhatsApp account until `until_s` (unix seconds), or with
   * `active: false` lift the restriction. Throws on bad input.
   */
  function setRestriction({ session, until_s, active = true } = {}) {
    if (!isNonEmptyString(session) || session === '*') throw new Error('session must be a session id');
    if (typeof active !== 'boolean') throw new Error('active must be a boolean');
    if (!active) {
      worldOf(session).restriction = null;
      return;
    }
    if (!(Number.isSafeInteger(until_s) && until_s > 0)) {
      throw new Error('until_s must be a positive integer (unix seconds)');
    }
    worldOf(session).restriction = { until_s };
  }

  /** The sessions restricted now, with the end of each. */
  const listRestrictions = () =>
    [...worlds]
      .map(([session, world]) => ({ session, until_s: restrictedUntil(world) }))
      .filter((r) => r.until_s !== null);

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
  const sessionState = (sid) => describeWorld(worldOf(sid), sid);

  /** The group's current invite code (the same for every session). Throws on bad input. */
  function groupInvite(gjid) {
    if (!isNonEmptyString(gjid) || !gjid.endsWith('@g.us')) throw new Error('group_jid must be a group JID (…@g.us)');
    const code = invites.currentCode.get(gjid);
    if (code === undefined) throw new WorldStateError(404, 'not_found', `no group ${gjid} in the catalogue`);
    return { group_jid: gjid, invite_code: code };
  }

  /** The group's owner resets its invite outside any session: the old code is revoked for all. */
  function resetGroupInvite({ group_jid } = {}) {
    groupInvite(group_jid);
    return { group_jid, invite_code: resetGroupCode(invites, group_jid) };
  }

  /**
   * What an admin does to the session's account: `approve` or `reject` its own pending
   * request for a group, or `remove` it from a group it is in. Throws on bad input (400) or
   * when the world is not in that state (409; 404 for a group the world does not have).
   */
  function adminAction(action, { session, group_jid } = {}) {
    if (!isNonEmptyString(session) || session === '*') throw new Error('session must be a session id');
    if (!isNonEmptyString(group_jid) || !group_jid.endsWith('@g.us')) throw new Error('group_jid must be a group JID (…@g.us)');
    const world = worldOf(session);
    const op = { approve: approveOwnRequest, reject: rejectOwnRequest, remove: removeOwnAccount, promote: promoteOwnAccount }[action];
    const result = op(world, group_jid, session);
    flushChanges();
    return result;
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
        case 'POST /__sim/restrictions':
          setRestriction(body);
          return done(200, { ok: true });
        case 'GET /__sim/restrictions':
          return done(200, { restrictions: listRestrictions() });
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
        case 'GET /__sim/invite':
          return done(200, groupInvite(url.searchParams.get('group_jid')));
        case 'POST /__sim/invite/reset':
          return done(200, { ok: true, ...resetGroupInvite(body) });
        case 'GET /__sim/catalogue':
          return done(200, { catalogue: CATALOGUE });
        case 'POST /__sim/approve':
        case 'POST /__sim/reject':
        case 'POST /__sim/remove':
        case 'POST /__sim/promote':
          return done(200, { ok: true, ...adminAction(url.pathname.slice('/__sim/'.length), body) });
        case 'POST /__sim/events':
          events.configure(body);
          return done(200, { ok: true });
        case 'GET /__sim/events':
          return done(200, { configs: events.list() });
        case 'GET /__sim/events/sent':
          return done(200, { events: events.sent(url.searchParams.get('session') || undefined) });
        case 'POST /__sim/events/replay':
          return done(200, { ok: true, event: await events.replay(body.session) });
        default:
          return done(404, { error: { kind: 'not_found' } });
      }
    } catch (err) {
      // A world or hub refusal names its own status and kind; anything else is bad input.
      if (err instanceof WorldStateError || err instanceof EventsInputError) {
        return done(err.status, { error: { kind: err.kind, text: err.message } });
      }
      return done(400, { error: { kind: 'bad_request', text: err.message } });
    }
  }

  // --- backend routes (every front end) --------------------------------------------------

  async function handleBackend(req, res, url) {
    const { front, rest } = pickFront(url.pathname);
    const ctx = {
      method: req.method,
      segments: decodeSegments(rest),
      query: url.searchParams,
      headers: req.headers,
      // The request target as that server sees it (no kind prefix), query included.
      path: rest + url.search,
      body: null,
      id: null,
      authorized: false,
    };
    ctx.id = front.identify(ctx, env);
    ctx.authorized = front.authorized(ctx, env);
    const sid = ctx.id.session;
    const call = {
      seq: ++seq,
      kind: front.kind,
      session: sid,
      method: req.method,
      path: req.url,
      route: ctx.id.route,
      code: null,
      body: null,
      request_id: req.headers['x-request-id'] ?? null,
      authorized: ctx.authorized,
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
      // drop and cut end the answer on purpose; that is not the client going away.
      if (!res.writableFinished && call.fault !== 'drop' && call.fault !== 'cut') call.client_aborted = true;
      call.finished_at = nowMs();
    });

    // Chosen at arrival so that `count` is spent in arrival order.
    const fault = takeFault(sid);
    call.fault = fault?.mode ?? null;

    const text = await readBody(req);
    const parsed = text === null ? { invalid: true, tooLarge: true } : parseJson(text);
    call.body = parsed.invalid ? null : parsed.value;
    ctx.body = parsed;
    call.code = inviteCodeOf(ctx);

    const logDone = (status, note = '') => {
      if (!log) return;
      const redacted = redactPath(url.pathname);
      const code = codeOf(call.body, url.searchParams);
      const ms = (nowMs() - call.started_at).toFixed(0);
      logLine(`${req.method} ${redacted}${code !== undefined ? ` code=${shortCode(code)}` : ''} -> ${status}${note} (${ms} ms)`);
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

    // A client that gave up during a delay gets nothing, but the effect has happened,
    // as it would on a real backend that finished its WhatsApp call. So do `cut`, `stall`
    // and `huge`.
    const answer = fault?.mode === 'whatsapp' ? front.waFault(ctx, fault.wa_code) : front.respond(ctx, env);
    // The world may have changed: its events leave once the answer is out (or lost).
    try {
      if (fault?.mode === 'cut' || fault?.mode === 'stall') {
        if (sendCut(res, answer, { stall: fault.mode === 'stall' })) call.status = 200;
        return logDone(200, ` ${fault.mode} of ${answer.status} (fault)`);
      }
      if (fault?.mode === 'huge') {
        call.status = answer.status;
        await sendHuge(res, answer);
        return logDone(answer.status, ` huge (fault)`);
      }
      if (sendAnswer(res, answer)) call.status = answer.status;
      logDone(answer.status, `${answerNote(answer)}${fault ? ` (fault ${fault.mode})` : ''}`);
    } finally {
      flushChanges();
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
  const baseUrl = `http://${urlHost}:${address.port}`;
  let closing = null;

  return {
    url: baseUrl,
    host: address.address,
    port: address.port,
    /** The backend base URL per kind: { joingate, waha, evolution, wuzapi, gowa }. */
    urls: Object.freeze(Object.fromEntries(Object.entries(FRONT_END_PREFIXES).map(([k, p]) => [k, `${baseUrl}${p}`]))),
    /** The credentials in force (defaults merged with the `credentials` option). */
    credentials,
    /** Stop listening and destroy every open socket, hung requests included. */
    close() {
      closing ??= new Promise((resolve) => {
        events.close();
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
    setRestriction,
    restrictions: listRestrictions,
    setConfig,
    calls: listCalls,
    stats,
    faults: listFaults,
    sessionState,
    /** GET /__sim/invite: { group_jid, invite_code }, the group's current code for every session. */
    currentInvite: (gjid) => groupInvite(gjid),
    /** POST /__sim/invite/reset: the owner resets the group's invite; { group_jid, invite_code }. */
    resetInvite: (args) => resetGroupInvite(args),
    /** POST /__sim/approve: the session's own pending request for group_jid is approved. */
    approve: (args) => adminAction('approve', args),
    /** POST /__sim/reject: the session's own pending request is rejected (no event). */
    reject: (args) => adminAction('reject', args),
    /** POST /__sim/remove: an admin removes the session's account from the group. */
    remove: (args) => adminAction('remove', args),
    /** POST /__sim/events: where a session's server events go (url null: nowhere). */
    setEvents: (config) => events.configure(config),
    /** The configs of GET /__sim/events (no secrets). */
    eventConfigs: () => events.list(),
    /** The events array of GET /__sim/events/sent. */
    sentEvents: (session) => events.sent(session),
    /** POST /__sim/events/replay: resolves to the new record once delivered or failed. */
    replayEvent: (session) => events.replay(session),
  };
}

// ---------------------------------------------------------------------------------------
// CLI

const USAGE =
  'usage: node sim/simulator.mjs [--port 8788] [--host 127.0.0.1] [--token T] [--log]\n' +
  '         [--waha-key K] [--evolution-key K] [--wuzapi-prefix P] [--gowa-auth user:pass]\n';

function parseArgs(argv) {
  const opts = { host: '127.0.0.1', port: 8788, token: process.env.SIMULATOR_TOKEN || undefined, log: false, credentials: {} };
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
      case '--waha-key':
        opts.credentials.waha = value();
        break;
      case '--evolution-key':
        opts.credentials.evolution = value();
        break;
      case '--wuzapi-prefix':
        opts.credentials.wuzapi = value();
        break;
      case '--gowa-auth':
        opts.credentials.gowa = value();
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
    process.stderr.write(`${err.message}\n${USAGE}`);
    process.exit(2);
  }
  if (opts.help) {
    process.stdout.write(`${USAGE}See docs/simulator.md. SIMULATOR_TOKEN in the environment stands in for --token.\n`);
    return;
  }
  const sim = await startSimulator(opts);
  // Scripts look for this first line; keep its form.
  process.stdout.write(`simulator listening on ${sim.url}\n`);
  process.stdout.write(`front ends: ${Object.entries(sim.urls).map(([k, u]) => `${k} ${u}`).join(', ')}\n`);
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
