// Native front end: joingate's own session backend protocol (API.md section 7), at the root.
// Its answers are the simulator's historical ones, byte for byte.

import http from 'node:http';
import { RATE_OVERLIMIT_RETRY_AFTER_S, WA_TEXT } from '../catalogue.mjs';
import * as W from '../world.mjs';
import { Answer, attempt, isNonEmptyString, isObject, matchPath, secretMatches } from './common.mjs';

const ok = (body) => new Answer(200, body);

/** A WhatsApp error as the backend reports it; the HTTP status is informative only. */
export function waError(waCode) {
  // Non-standard codes (419, 304, ...) are not meaningful HTTP statuses: send 400.
  const status = waCode >= 400 && waCode <= 599 && http.STATUS_CODES[waCode] ? waCode : 400;
  const headers = waCode === 429 ? { 'Retry-After': String(RATE_OVERLIMIT_RETRY_AFTER_S) } : {};
  const text = WA_TEXT[waCode] ?? 'error';
  return new Answer(status, { error: { kind: 'whatsapp', wa_code: waCode, text } }, { headers });
}

const kindError = (status, kind, text) => new Answer(status, { error: text ? { kind, text } : { kind } });
const badRequest = (text) => kindError(400, 'bad_request', text);

const joinAnswer = (r) => ok({ group_jid: r.group_jid, status: r.status });

const ROUTES = [
  {
    name: 'session_status',
    path: ['sessions', ':sid'],
    // The one route an offline session answers: it says it is offline. v1.2: the end of
    // the account's restriction while there is one (absent otherwise, as before).
    GET: ({ world, presence }) => {
      const until = W.restrictedUntil(world);
      return ok(until === null ? { connected: presence !== 'offline' } : { connected: presence !== 'offline', restricted_until: until });
    },
  },
  {
    name: 'join',
    path: ['sessions', ':sid', 'groups', 'join'],
    POST: ({ world, body }) => {
      if (!isObject(body) || !isNonEmptyString(body.code)) return badRequest('code is required');
      return joinAnswer(W.joinByCode(world, body.code));
    },
  },
  {
    name: 'join_by_message',
    path: ['sessions', ':sid', 'groups', 'join-by-message'],
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
      return joinAnswer(W.joinByMessage(world, body.code, body.group_jid));
    },
  },
  {
    // v1.2 membership check (section 14): a pending request is not membership; an unknown
    // or deleted group is "not a member" too.
    name: 'group_info',
    path: ['sessions', ':sid', 'groups', ':gjid'],
    GET: ({ world, params }) => ok({ member: W.isMemberOf(world, params.gjid) }),
  },
  {
    name: 'invite_preview',
    path: ['sessions', ':sid', 'invites', ':code'],
    GET: ({ world, params }) => {
      const info = W.previewInvite(world, params.code);
      const preview = { group_jid: info.group_jid, subject: info.subject };
      if (info.description !== undefined) preview.description = info.description;
      preview.size = info.size;
      if (info.created_at !== undefined) preview.created_at = info.created_at;
      preview.requires_approval = info.requires_approval;
      return ok(preview);
    },
  },
  {
    name: 'leave',
    path: ['sessions', ':sid', 'groups', ':gjid', 'leave'],
    POST: ({ world, params, body }) => {
      if (body !== null && !isObject(body)) return badRequest('body must be an object');
      return ok(W.leaveGroup(world, params.gjid));
    },
  },
  {
    name: 'join_requests',
    // Recorded calls name the two operations apart.
    name_by_method: { GET: 'join_requests_list', POST: 'join_requests_action' },
    path: ['sessions', ':sid', 'groups', ':gjid', 'join-requests'],
    GET: ({ world, params }) => ok({ requests: W.listJoinRequests(world, params.gjid) }),
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
      return ok({ results: W.actOnJoinRequests(world, params.gjid, body.action, body.participants) });
    },
  },
  {
    name: 'invite_reset',
    path: ['sessions', ':sid', 'groups', ':gjid', 'invite', 'reset'],
    POST: ({ world, params, body }) => {
      if (body !== null && !isObject(body)) return badRequest('body must be an object');
      return ok({ invite_code: W.resetInvite(world, params.gjid) });
    },
  },
];

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];

/** Bearer check; without a configured token every request is authorized. */
function bearerMatches(headerValue, expected) {
  const m = /^Bearer ([^\s]+)$/i.exec(headerValue ?? '');
  return m !== null && secretMatches(m[1], expected);
}

export default {
  kind: 'joingate',
  prefix: '',

  identify({ method, segments }) {
    const session = segments && segments[0] === 'sessions' && segments[1] ? segments[1] : null;
    const match = matchPath(ROUTES, segments);
    const route = match ? (match.route.name_by_method?.[method] ?? match.route.name) : null;
    return { session, route, match };
  },

  authorized({ headers }, { token }) {
    return token === undefined || bearerMatches(headers.authorization, token);
  },

  /** Auth, route, method, body, session, then the operation itself. */
  respond(ctx, env) {
    const { method, id, body } = ctx;
    if (!ctx.authorized) return kindError(401, 'unauthorized');
    const match = id.match;
    if (!match) return kindError(404, 'not_found');
    const handler = match.route[method];
    if (typeof handler !== 'function') {
      const allow = METHODS.filter((m) => typeof match.route[m] === 'function').join(', ');
      return new Answer(405, { error: { kind: 'method_not_allowed' } }, { headers: { Allow: allow } });
    }
    if (body.invalid) return badRequest(body.tooLarge ? 'body is over 1 MiB' : 'body is not valid JSON');
    const sid = match.params.sid;
    const presence = W.presenceOf(sid);
    if (presence === 'not_found') return kindError(404, 'session_not_found');
    if (presence === 'offline' && match.route.name !== 'session_status') {
      return kindError(409, 'session_not_connected');
    }
    return attempt(
      () => handler({ world: env.worldOf(sid), sid, params: match.params, body: body.value, presence }),
      waError,
    );
  },

  // The native protocol has one WhatsApp error shape for every route.
  waFault(_ctx, code) {
    return waError(code);
  },
};
