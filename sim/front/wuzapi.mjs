// wuzapi front end (asternic/wuzapi, Go: gorilla/mux over whatsmeow), under the /wuzapi prefix.
//
// One wuzapi user is one WhatsApp session: the `token` header names the user, and the user
// name is the world key. So there is no "unknown session" here: a token the server does not
// know is a 401. Envelope { code, data, success }; request keys matched without regard to case.

import { WUZAPI_USER_RE } from '../credentials.mjs';
import * as W from '../world.mjs';
import {
  attempt, codeFromLink, empty, goField, header, isNonEmptyString, isObject, json, matchPath,
  selfJid, text, whatsmeowGroupInfo,
} from './common.mjs';

const ROUTES = [
  { op: 'join', method: 'POST', path: ['group', 'join'] },
  { op: 'invite_preview', method: 'POST', path: ['group', 'inviteinfo'] },
  { op: 'leave', method: 'POST', path: ['group', 'leave'] },
  // Without reset=true this only reads the current link (canonical route invite_link).
  { op: 'invite_reset', method: 'GET', path: ['group', 'invitelink'] },
  { op: 'session_status', method: 'GET', path: ['session', 'status'] },
  // The membership check: whatsmeow GetJoinedGroups (handlers.go ListGroups).
  { op: 'group_list', method: 'GET', path: ['group', 'list'] },
];

const okData = (data) => json(200, { code: 200, data, success: true });
const failure = (code, error) => json(code, { code, error, success: false });
// Upstream bug: these handlers pass a string (not an error) to Respond on failure, which then
// finds no JSON in it: HTTP 500, "success": true, and no text at all.
const emptyFailure = () => json(500, { code: 500, success: true });

/** Go's strconv.ParseBool; undefined for anything else. */
function parseBool(s) {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(s)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(s)) return false;
  return undefined;
}

function userOf(headers, prefix) {
  const token = header(headers, 'token');
  if (typeof token !== 'string' || !token.startsWith(prefix)) return null;
  const name = token.slice(prefix.length);
  return WUZAPI_USER_RE.test(name) ? name : null;
}

function statusData(user, connected) {
  // Older releases answer { Connected, LoggedIn }; 2025+ releases { connected, loggedIn, jid,
  // name, ... }. Both spellings are sent so either reading works.
  return {
    Connected: connected,
    LoggedIn: connected,
    connected,
    loggedIn: connected,
    jid: connected ? selfJid() : '',
    name: user,
  };
}

/** The decoded JSON body, or the 400 wuzapi answers when there is none. */
function decoded(ctx) {
  const v = ctx.body.value;
  if (ctx.body.invalid || !isObject(v)) return { error: failure(400, 'could not decode Payload') };
  return { value: v };
}

function operate(ctx, op, user, world) {
  switch (op) {
    case 'session_status':
      return okData(statusData(user, true));
    case 'join':
    case 'invite_preview': {
      const { value, error } = decoded(ctx);
      if (error) return error;
      const code = goField(value, 'Code');
      // Message texts of the validation answers are unverified (not in the source read).
      if (!isNonEmptyString(code)) return failure(400, 'missing Code in Payload');
      return attempt(() => {
        if (op === 'invite_preview') return okData(whatsmeowGroupInfo(W.previewInvite(world, codeFromLink(code))));
        const r = W.joinByCode(world, codeFromLink(code));
        // whatsmeow reports a conflict for a member; a pending request looks like a join.
        if (r.status === 'already_member') return emptyFailure();
        return okData({ Details: 'Group joined successfully' });
      }, emptyFailure);
    }
    case 'leave': {
      const { value, error } = decoded(ctx);
      if (error) return error;
      const gjid = goField(value, 'GroupJID');
      if (!isNonEmptyString(gjid)) return failure(400, 'missing GroupJID in Payload');
      return attempt(() => {
        W.leaveGroup(world, gjid);
        return okData({ Details: 'Group left successfully' });
      }, emptyFailure);
    }
    case 'invite_reset': {
      const gjid = ctx.query.get('groupJID');
      if (!gjid) return failure(400, 'Missing groupJID parameter');
      const resetParam = ctx.query.get('reset');
      const reset = resetParam ? parseBool(resetParam) : false;
      if (reset === undefined) return failure(400, 'Invalid reset parameter, must be true or false');
      if (!gjid.includes('@')) return failure(400, 'Could not parse Group JID');
      return attempt(() => {
        const code = reset ? W.resetInvite(world, gjid) : W.currentInvite(world, gjid);
        return okData({ InviteLink: `${W.INVITE_LINK_PREFIX}${code}` });
      }, emptyFailure);
    }
    case 'group_list': {
      const groups = W.joinedGroups(world).map((info) => whatsmeowGroupInfo(info, [{ jid: selfJid(), admin: info.role === 'admin' }]));
      // A Go nil slice: no groups is `null`.
      return okData({ Groups: groups.length ? groups : null });
    }
    default:
      return null;
  }
}

export default {
  kind: 'wuzapi',
  prefix: '/wuzapi',

  identify({ segments, query, headers }, { credentials }) {
    const session = userOf(headers, credentials.wuzapi);
    const match = matchPath(ROUTES, segments);
    let route = match ? match.route.op : null;
    if (route === 'invite_reset' && parseBool(query.get('reset') ?? '') !== true) route = 'invite_link';
    return { session, route, match };
  },

  authorized(ctx) {
    return ctx.id.session !== null;
  },

  // gorilla/mux routes first (404 text, 405 empty), then the token middleware, then the handler.
  respond(ctx, env) {
    const match = ctx.id.match;
    if (!match) return text(404, '404 page not found\n');
    if (match.route.method !== ctx.method) return empty(405);
    if (!ctx.authorized) return failure(401, 'unauthorized');
    const user = ctx.id.session;
    const presence = W.presenceOf(user);
    if (presence !== 'connected') {
      // offline*: a client that is not connected, whose flags the status route reads.
      // ghost*: a user without any client, so the status route fails too. Every other
      // route needs a live client. (Older releases write "No session".)
      if (match.route.op === 'session_status' && presence === 'offline') return okData(statusData(user, false));
      return failure(500, 'no session');
    }
    return operate(ctx, match.route.op, user, env.worldOf(user));
  },

  // Every WhatsApp failure of every route is the same empty 500.
  waFault() {
    return emptyFailure();
  },
};
