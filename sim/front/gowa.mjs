// go-whatsapp-web-multidevice ("gowa") front end (Go: Fiber v3 over whatsmeow), under /gowa.
//
// HTTP Basic auth; the device is the X-Device-Id header (else the device_id query, else the
// only device, "default") and is the world key. Envelope { code, message, results }, with
// `results` omitted when empty (Go omitempty). Read from the 2026-08 source (ui/rest/group.go,
// usecase/group.go, middleware/device.go and recovery.go, pkg/error).

import * as W from '../world.mjs';
import {
  attempt, codeFromLink, header, isNonEmptyString, isObject, json, matchPath, phoneDigits,
  rfc3339, secretMatches, selfJid, text, whatsmeowGroupInfo, whatsmeowText,
} from './common.mjs';

const ROUTES = [
  { op: 'join', method: 'POST', path: ['group', 'join-with-link'] },
  { op: 'invite_preview', method: 'GET', path: ['group', 'info-from-link'] },
  { op: 'leave', method: 'POST', path: ['group', 'leave'] },
  // Without reset=true this only reads the current link (canonical route invite_link).
  { op: 'invite_reset', method: 'GET', path: ['group', 'invite-link'] },
  { op: 'join_requests_list', method: 'GET', path: ['group', 'participant-requests'] },
  { op: 'join_requests_action', action: 'approve', method: 'POST', path: ['group', 'participant-requests', 'approve'] },
  { op: 'join_requests_action', action: 'reject', method: 'POST', path: ['group', 'participant-requests', 'reject'] },
  { op: 'session_status', method: 'GET', path: ['app', 'status'] },
  { op: 'group_info', method: 'GET', path: ['group', 'info'] },
];

const envelope = (status, code, message, results) =>
  json(status, results === undefined ? { code, message } : { code, message, results });
const success = (message, results) => envelope(200, 'SUCCESS', message, results);
// A whatsmeow error panics up to the Recovery middleware: 500 with the error's text.
const internal = (message) => envelope(500, 'INTERNAL_SERVER_ERROR', message);
const notConnected = () => envelope(401, 'AUTHENTICATION_ERROR', 'you are not connect to services server, please reconnect');
// ozzo-validation's message: "field: cannot be blank." (several joined by "; ").
const blank = (...fields) => envelope(400, 'VALIDATION_ERROR', `${fields.map((f) => `${f}: cannot be blank`).join('; ')}.`);

function deviceOf(headers, query) {
  let id = (header(headers, 'x-device-id') ?? '').trim();
  try {
    id = decodeURIComponent(id.replace(/\+/g, ' '));
  } catch {
    // Go keeps the raw value when it does not unescape.
  }
  if (id === '') id = (query.get('device_id') ?? '').trim();
  return id === '' ? 'default' : id;
}

function basicMatches(value, userPass) {
  const m = /^Basic\s+(\S+)$/i.exec(value ?? '');
  if (!m) return false;
  const given = Buffer.from(m[1], 'base64').toString('utf8');
  return secretMatches(given, userPass);
}

const parseBool = (s) => ['1', 't', 'T', 'TRUE', 'true', 'True'].includes(s);

function operate(ctx, route, device, world, presence) {
  const op = route.op;
  const body = isObject(ctx.body.value) ? ctx.body.value : {};
  const q = (name) => ctx.query.get(name) ?? '';
  const wa = (code) => internal(whatsmeowText(op, code));
  const login = () => (presence === 'connected' ? null : notConnected());
  switch (op) {
    case 'session_status': {
      const connected = presence === 'connected';
      return success('Connection status retrieved', {
        is_connected: connected,
        is_logged_in: connected,
        device_id: device,
        jid: connected ? selfJid() : '',
      });
    }
    case 'join': {
      if (!isNonEmptyString(body.link)) return blank('link');
      return login() ?? attempt(() => {
        const r = W.joinByCode(world, codeFromLink(body.link));
        if (r.status === 'already_member') return wa(409);
        // whatsmeow returns the group JID for a membership request too.
        return success('Success joined group', { group_id: r.group_jid });
      }, wa);
    }
    case 'invite_preview': {
      if (!q('link')) return blank('link');
      return login() ?? attempt(() => {
        const info = W.previewInvite(world, codeFromLink(q('link')));
        return success('Success get group info from link', {
          group_id: info.group_jid,
          name: info.subject ?? '',
          topic: info.description ?? '',
          created_at: rfc3339(info.created_at),
          // Upstream counts the participants listed in the answer; the simulator gives the size.
          participant_count: info.size,
          is_locked: false,
          is_announce: false,
          is_ephemeral: false,
          description: info.description ?? '',
        });
      }, wa);
    }
    case 'leave': {
      if (!isNonEmptyString(body.group_id)) return blank('group_id');
      return login() ?? attempt(() => {
        W.leaveGroup(world, body.group_id);
        return success('Success leave group');
      }, wa);
    }
    case 'invite_reset': {
      if (!q('group_id')) return blank('group_id');
      const reset = parseBool(q('reset'));
      const opName = reset ? 'invite_reset' : 'invite_link';
      return login() ?? attempt(() => {
        const code = reset ? W.resetInvite(world, q('group_id')) : W.currentInvite(world, q('group_id'));
        return success('Success get group invite link', { invite_link: `${W.INVITE_LINK_PREFIX}${code}`, group_id: q('group_id') });
      }, (code) => internal(whatsmeowText(opName, code)));
    }
    case 'join_requests_list': {
      if (!q('group_id')) return envelope(400, 'INVALID_GROUP_ID', 'Group ID cannot be empty');
      return login() ?? attempt(() => {
        const list = W.listJoinRequests(world, q('group_id')).map((r) => ({
          jid: r.jid,
          phone_number: phoneDigits(r) ?? '',
          requested_at: rfc3339(r.requested_at),
        }));
        // A Go nil slice: an empty list is `null`.
        return success('Success getting list requested participants', list.length ? list : null);
      }, wa);
    }
    case 'join_requests_action': {
      const list = body.participants;
      const missing = [];
      if (!isNonEmptyString(body.group_id)) missing.push('group_id');
      if (!Array.isArray(list) || list.length === 0 || !list.every(isNonEmptyString)) missing.push('participants');
      if (missing.length) return blank(...missing);
      const action = route.action;
      return login() ?? (() => {
        // The server appends @s.whatsapp.net and checks the number is on WhatsApp.
        if (!list.every((p) => /^\d{1,20}$/.test(p))) return envelope(400, 'INVALID_JID', 'user is not registered');
        return attempt(() => {
          const results = W.actOnJoinRequests(world, body.group_id, action, list.map((p) => `${p}@s.whatsapp.net`));
          return success(
            `Success ${action} requested participants`,
            results.map((r) => ({
              participant: r.jid,
              status: r.ok ? 'success' : 'error',
              message: r.ok ? `Action ${action} success` : `Action ${action} failed (code ${r.wa_code})`,
            })),
          );
        }, wa);
      })();
    }
    case 'group_info': {
      if (!q('group_id')) return blank('group_id');
      return login() ?? attempt(() => {
        const info = W.groupInfo(world, q('group_id'));
        return success('Success get group info', whatsmeowGroupInfo(info, [{ jid: selfJid(), admin: info.role === 'admin' }]));
      }, wa);
    }
    default:
      return null;
  }
}

export default {
  kind: 'gowa',
  prefix: '/gowa',

  identify({ segments, query, headers }) {
    const session = deviceOf(headers, query);
    const match = matchPath(ROUTES, segments);
    let route = match ? match.route.op : null;
    if (route === 'invite_reset' && !parseBool(query.get('reset') ?? '')) route = 'invite_link';
    return { session, route, match };
  },

  authorized({ headers }, { credentials }) {
    return basicMatches(header(headers, 'authorization'), credentials.gowa);
  },

  // Basic auth (global), the device middleware, Fiber's router, body binding and
  // validation, then the login check inside the use case, then the operation.
  respond(ctx, env) {
    if (!ctx.authorized) {
      return text(401, 'Unauthorized', 'text/plain; charset=utf-8', { 'WWW-Authenticate': 'Basic realm="Restricted"' });
    }
    const device = ctx.id.session;
    const presence = W.presenceOf(device);
    if (presence === 'not_found') {
      return envelope(404, 'DEVICE_NOT_FOUND', 'device not found; create a device first from /api/devices or provide a valid X-Device-Id', { device_id: device });
    }
    const match = ctx.id.match;
    const pathname = ctx.path.split('?')[0];
    if (!match) return text(404, `Cannot ${ctx.method} ${pathname}`);
    if (match.route.method !== ctx.method) return text(405, 'Method Not Allowed');
    // Unverified: a body Fiber cannot bind panics into the generic 500.
    if (ctx.body.invalid) return internal('failed to decode request body as JSON');
    return operate(ctx, match.route, device, env.worldOf(device), presence);
  },

  waFault(ctx, code) {
    return internal(whatsmeowText(ctx.id.route, code));
  },
};
