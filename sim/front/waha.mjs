// WAHA front end (devlikeapro/waha, a NestJS app), under the /waha prefix.
//
// Models WAHA Plus (any session name) at 2026.8. The engine follows the session name:
// one containing `gows` is the GOWS engine (whatsmeow), any other NOWEB (Baileys). A
// session name containing `legacy` is a WAHA older than 2026.8, without join-request routes.

import { WA_TEXT } from '../catalogue.mjs';
import * as W from '../world.mjs';
import {
  attempt, baileysGroupMetadata, baileysSelf, codeFromLink, empty, fromCUs, header, isNonEmptyString,
  isObject, json, matchPath, secretMatches, selfJid, text, toCUs, whatsmeowGroupInfo, whatsmeowText,
} from './common.mjs';

const WAHA_VERSION = '2026.2.1';

const ROUTES = [
  { op: 'session_status', method: 'GET', path: ['api', 'sessions', ':s'] },
  { op: 'restriction_status', method: 'GET', since: '2026.8', path: ['api', 'sessions', ':s', 'timelock'] },
  { op: 'join', method: 'POST', path: ['api', ':s', 'groups', 'join'] },
  { op: 'invite_preview', method: 'GET', path: ['api', ':s', 'groups', 'join-info'] },
  { op: 'leave', method: 'POST', path: ['api', ':s', 'groups', ':g', 'leave'] },
  { op: 'invite_reset', method: 'POST', path: ['api', ':s', 'groups', ':g', 'invite-code', 'revoke'] },
  { op: 'join_requests_list', method: 'GET', since: '2026.8', path: ['api', ':s', 'groups', ':g', 'participants', 'join-requests'] },
  { op: 'join_requests_action', action: 'approve', method: 'POST', since: '2026.8', path: ['api', ':s', 'groups', ':g', 'participants', 'join-requests', 'approve'] },
  { op: 'join_requests_action', action: 'reject', method: 'POST', since: '2026.8', path: ['api', ':s', 'groups', ':g', 'participants', 'join-requests', 'reject'] },
  // Last: `:g` would take the literal segments above (Nest orders its own routes the same way).
  { op: 'group_info', method: 'GET', path: ['api', ':s', 'groups', ':g'] },
];

const engineOf = (session) => (session.includes('gows') ? 'GOWS' : 'NOWEB');

// Nest's own 404 for a route it does not have (the method is part of the route).
const cannot = (ctx) =>
  json(404, { message: `Cannot ${ctx.method} ${ctx.path}`, error: 'Not Found', statusCode: 404 });

// class-validator through Nest's ValidationPipe.
const validation = (messages) => json(400, { message: messages, error: 'Bad Request', statusCode: 400 });

const queryObject = (query) => Object.fromEntries(query);

/**
 * An engine exception through WAHA's AllExceptionsFilter: HTTP 500, the serialized error.
 * NOWEB throws Baileys' Boom (WhatsApp's text as message, the code as data); GOWS bodies are
 * unverified: modelled as a plain Error whose message is whatsmeow's text, without data.
 */
function engineError(ctx, engine, code) {
  const exception =
    engine === 'GOWS'
      ? plainError(whatsmeowText(ctx.id.route, code))
      : {
          message: WA_TEXT[code] ?? 'error',
          data: code,
          isBoom: true,
          isServer: true,
          output: {
            statusCode: 500,
            payload: { statusCode: 500, error: 'Internal Server Error', message: 'An internal server error occurred' },
            headers: {},
          },
          name: 'Error',
        };
  return exceptionAnswer(ctx, engine, exception);
}

// A plain `new Error(text)` as serializeError writes it (own properties and name; the stack
// is left out).
const plainError = (message) => ({ message, name: 'Error' });

/** Any exception through AllExceptionsFilter: HTTP 500 and the serialized error. */
function exceptionAnswer(ctx, engine, exception) {
  return json(500, {
    statusCode: 500,
    timestamp: new Date().toISOString(),
    exception,
    request: {
      path: ctx.path,
      method: ctx.method,
      body: isObject(ctx.body.value) ? ctx.body.value : {},
      query: queryObject(ctx.query),
    },
    version: { version: WAHA_VERSION, engine, tier: 'PLUS', browser: null },
  });
}

/**
 * The account's reach-out timelock as WAHA shows it: whatsmeow's event fields, the end as
 * unix seconds in a string (Go's jsontime.UnixString); null while there is none.
 */
function timelock(world) {
  const until = W.restrictedUntil(world);
  if (until === null) return null;
  return { isActive: true, timeEnforcementEnds: String(until), enforcementType: 'RESTRICT_ALL_COMPANIONS' };
}

function statusBody(session, presence, world) {
  const working = presence === 'connected';
  const me = { id: `${W.SESSION_ME.phone}@c.us`, pushName: W.SESSION_ME.push_name };
  // A WAHA before 2026.8 shows no timelock at all.
  if (!session.includes('legacy')) me.reachoutTimelock = timelock(world);
  return {
    name: session,
    status: working ? 'WORKING' : 'SCAN_QR_CODE',
    me: working ? me : null,
    engine: { engine: engineOf(session) },
  };
}

function joinRequestItem(r) {
  const item = { requesterId: toCUs(r.jid) };
  // WhatsApp adds the phone number to a request when it knows it (always for a LID).
  if (r.phone_number) item.requesterPn = `${r.phone_number.replace(/^\+/, '')}@c.us`;
  item.addedById = null;
  item.parentGroupId = null;
  item.requestMethod = 'invite_link';
  if (r.requested_at !== undefined) item.timestamp = r.requested_at;
  return item;
}

/** The operation itself, for a matched route on a WORKING session. */
function operate(ctx, route, params, world, engine) {
  const body = ctx.body.value;
  const wa = (code) => engineError(ctx, engine, code);
  switch (route.op) {
    case 'join': {
      const code = isObject(body) ? body.code : undefined;
      if (!isNonEmptyString(code)) return validation(['code should not be empty', 'code must be a string']);
      return attempt(() => {
        const r = W.joinByCode(world, codeFromLink(code));
        if (r.status === 'already_member') return wa(409);
        // Baileys returns no JID for a membership request; whatsmeow returns the group's either way.
        if (r.status === 'pending_approval' && engine === 'NOWEB') return json(201, {});
        return json(201, { id: r.group_jid });
      }, wa);
    }
    case 'restriction_status':
      return json(200, timelock(world) ?? { isActive: false });
    case 'invite_preview': {
      const code = ctx.query.get('code');
      if (!code) return validation(['code should not be empty', 'code must be a string']);
      return attempt(() => {
        const info = W.previewInvite(world, codeFromLink(code));
        return json(200, engine === 'GOWS' ? whatsmeowGroupInfo(info) : baileysGroupMetadata(info));
      }, wa);
    }
    case 'leave':
      return attempt(() => {
        W.leaveGroup(world, params.g);
        return empty(201);
      }, wa);
    case 'invite_reset':
      return attempt(() => {
        const code = W.resetInvite(world, params.g);
        // A string return value goes out as is, not as JSON (Express would label it text/html).
        return text(201, engine === 'GOWS' ? `${W.INVITE_LINK_PREFIX}${code}` : code);
      }, wa);
    case 'join_requests_list':
      return attempt(() => json(200, W.listJoinRequests(world, params.g).map(joinRequestItem)), wa);
    case 'join_requests_action': {
      const list = isObject(body) ? body.participants : undefined;
      if (!Array.isArray(list) || list.length === 0 || !list.every((p) => isObject(p) && isNonEmptyString(p.id))) {
        return validation(['participants must contain at least 1 elements', 'each participant must have an id']);
      }
      return attempt(() => {
        const results = W.actOnJoinRequests(world, params.g, route.action, list.map((p) => fromCUs(p.id)));
        return json(
          200,
          results.map((r) => (r.ok ? { requesterId: toCUs(r.jid), success: true } : { requesterId: toCUs(r.jid), success: false, error: r.wa_code })),
        );
      }, wa);
    }
    case 'group_info':
      // The membership check. NOWEB looks the id up in its store of the groups the account
      // is in (a pending request is not there) and throws a plain Error when it is missing;
      // GOWS asks WhatsApp (whatsmeow GetGroupInfo), which refuses a non-participant.
      if (engine === 'NOWEB') {
        if (!W.isMemberOf(world, params.g)) return exceptionAnswer(ctx, engine, plainError(`Group with id '${params.g}' not found`));
        const info = W.groupInfo(world, params.g);
        return json(200, baileysGroupMetadata(info, [baileysSelf(info.role)]));
      }
      return attempt(() => {
        const info = W.groupInfo(world, params.g);
        return json(200, whatsmeowGroupInfo(info, [{ jid: selfJid(), admin: info.role === 'admin' }]));
      }, wa);
    default:
      return cannot(ctx);
  }
}

export default {
  kind: 'waha',
  prefix: '/waha',

  identify({ segments }) {
    const match = matchPath(ROUTES, segments);
    if (match) return { session: match.params.s, route: match.route.op, match };
    // An unknown route still names its session where the path has one.
    let session = null;
    if (segments && segments[0] === 'api' && segments[1]) {
      session = segments[1] === 'sessions' ? segments[2] || null : segments[1];
    }
    return { session, route: null, match: null };
  },

  authorized({ headers }, { credentials }) {
    return secretMatches(header(headers, 'x-api-key'), credentials.waha);
  },

  // Auth (a global guard), routing, then the session, body validation, the operation.
  respond(ctx, env) {
    if (!ctx.authorized) return json(401, { message: 'Unauthorized', statusCode: 401 });
    const match = ctx.id.match;
    if (!match || match.route.method !== ctx.method) return cannot(ctx);
    const { route, params } = match;
    const session = params.s;
    if (route.since && session.includes('legacy')) return cannot(ctx);
    if (ctx.body.invalid) {
      return json(400, { message: ctx.body.tooLarge ? 'request entity too large' : 'Unexpected token in JSON', error: 'Bad Request', statusCode: 400 });
    }
    const presence = W.presenceOf(session);
    if (route.op === 'session_status') {
      if (presence === 'not_found') return json(404, { message: 'Session not found', error: 'Not Found', statusCode: 404 });
      return json(200, statusBody(session, presence, env.worldOf(session)));
    }
    if (presence === 'not_found') return json(422, { error: `Session "${session}" does not exist`, session });
    // Real WAHA first waits up to 10 s for WORKING; the simulator answers at once.
    if (presence === 'offline') {
      return json(422, {
        error: 'Session status is not as expected. Try again later or restart the session',
        session,
        status: 'SCAN_QR_CODE',
        expected: ['WORKING'],
      });
    }
    return operate(ctx, route, params, env.worldOf(session), engineOf(session));
  },

  waFault(ctx, code) {
    return engineError(ctx, engineOf(ctx.id.session ?? ''), code);
  },
};
