// Evolution API v2 front end (an Express app over Baileys), under the /evolution prefix.
// Paths are /{group|instance}/{action}/{instance}; the instance is the world key.
// Shapes read from Evolution API 2.3.6 (group.router.ts, abstract.router.ts, the Baileys
// service, the guards and main.ts' error handlers).

import { WA_TEXT } from '../catalogue.mjs';
import * as W from '../world.mjs';
import { attempt, baileysGroupMetadata, baileysSelf, header, json, matchPath, secretMatches } from './common.mjs';

const ROUTES = [
  { op: 'join', method: 'GET', path: ['group', 'acceptInviteCode', ':i'] },
  { op: 'invite_preview', method: 'GET', path: ['group', 'inviteInfo', ':i'] },
  { op: 'leave', method: 'DELETE', path: ['group', 'leaveGroup', ':i'] },
  { op: 'invite_reset', method: 'POST', path: ['group', 'revokeInviteCode', ':i'] },
  { op: 'session_status', method: 'GET', path: ['instance', 'connectionState', ':i'] },
  { op: 'group_info', method: 'GET', path: ['group', 'findGroupInfos', ':i'] },
];

const INVITE_CODE_RE = /^[a-zA-Z0-9]{22}$/;

// Every thrown exception goes out as { status, error, response: { message } }.
const failure = (status, error, message) => json(status, { status, error, response: { message } });
const notFound = (...message) => failure(404, 'Not Found', message);
const badRequest = (...message) => failure(400, 'Bad Request', message);

// The service catches the Baileys error and rethrows it with its own first line;
// only `error.toString()` survives ("Error: not-authorized"), the number is lost.
const OP_FAILURE = {
  join: (cause) => notFound('Accept invite error', cause),
  invite_reset: (cause) => notFound('Revoke error', cause),
  leave: (cause) => badRequest('Unable to leave the group', cause),
  // findGroup: any failure of groupMetadata (WhatsApp refuses a non-participant) is a 404.
  group_info: (cause) => notFound('Error fetching group', cause),
};

function waFailure(op, cause, ctx) {
  // The preview drops the cause and names the code it was asked about.
  if (op === 'invite_preview') return notFound('No invite info', ctx.query.get('inviteCode') ?? '');
  const render = OP_FAILURE[op];
  return render ? render(cause) : failure(500, 'Internal Server Error', cause);
}

const waCause = (code) => `Error: ${WA_TEXT[code] ?? 'error'}`;

/** inviteCodeValidate: the query must hold a bare 22-character code (jsonschema pattern). */
function inviteCodeOf(ctx) {
  const code = ctx.query.get('inviteCode');
  if (!code) {
    return {
      error: badRequest(
        'The group invite code id needs to be informed in the query',
        'ex: "inviteCode=F1EX5QZxO181L3TMVP31gY" (Obtained from group join link)',
      ),
    };
  }
  if (!INVITE_CODE_RE.test(code)) {
    // jsonschema's stack line, "instance." stripped, with the property alongside.
    return {
      error: badRequest({ property: 'inviteCode', message: 'inviteCode does not match pattern "^[a-zA-Z0-9]{22}$"' }),
    };
  }
  return { code };
}

/** groupValidate: groupJid from the body or the query; `@g.us` appended when missing. */
function groupJidOf(ctx) {
  const body = ctx.body.value;
  let gjid = body && typeof body === 'object' && typeof body.groupJid === 'string' ? body.groupJid : ctx.query.get('groupJid');
  if (!gjid) return { error: badRequest('The group id needs to be informed in the query', 'ex: "groupJid=120362@g.us"') };
  if (!gjid.endsWith('@g.us')) gjid += '@g.us';
  return { gjid };
}

function operate(ctx, op, instance, world, presence) {
  const wa = (code) => waFailure(op, waCause(code), ctx);
  // No guard checks the connection: a closed socket (Boom "Connection Closed") fails inside the call.
  const closed = () => waFailure(op, 'Error: Connection Closed', ctx);
  switch (op) {
    case 'session_status':
      return json(200, { instance: { instanceName: instance, state: presence === 'connected' ? 'open' : 'close' } });
    case 'join': {
      const { code, error } = inviteCodeOf(ctx);
      if (error) return error;
      if (presence === 'offline') return closed();
      return attempt(() => {
        const r = W.joinByCode(world, code);
        if (r.status === 'already_member') return wa(409);
        // Baileys gives no JID for a membership request: groupJid is then absent.
        return json(200, r.status === 'pending_approval' ? { accepted: true } : { accepted: true, groupJid: r.group_jid });
      }, wa);
    }
    case 'invite_preview': {
      const { code, error } = inviteCodeOf(ctx);
      if (error) return error;
      if (presence === 'offline') return closed();
      return attempt(() => json(200, baileysGroupMetadata(W.previewInvite(world, code))), wa);
    }
    case 'leave': {
      const { gjid, error } = groupJidOf(ctx);
      if (error) return error;
      if (presence === 'offline') return closed();
      return attempt(() => {
        W.leaveGroup(world, gjid);
        return json(200, { groupJid: gjid, leave: true });
      }, wa);
    }
    case 'invite_reset': {
      const { gjid, error } = groupJidOf(ctx);
      if (error) return error;
      if (presence === 'offline') return closed();
      return attempt(() => json(201, { revoked: true, inviteCode: W.resetInvite(world, gjid) }), wa);
    }
    case 'group_info': {
      const { gjid, error } = groupJidOf(ctx);
      if (error) return error;
      if (presence === 'offline') return closed();
      return attempt(() => json(200, findGroupAnswer(W.groupInfo(world, gjid))), wa);
    }
    default:
      return null;
  }
}

/**
 * findGroup's answer: picked fields of Baileys' groupMetadata plus the picture URL (null when
 * there is none). Upstream's `size` counts the participants WhatsApp lists; the simulator
 * lists only the session's own account and gives the world's size.
 */
function findGroupAnswer(info) {
  const m = baileysGroupMetadata(info, [baileysSelf(info.role)]);
  return {
    id: m.id,
    subject: m.subject,
    subjectOwner: m.subjectOwner,
    subjectTime: m.subjectTime,
    pictureUrl: null,
    size: m.size,
    creation: m.creation,
    owner: m.owner,
    desc: m.desc,
    descId: m.descId,
    restrict: m.restrict,
    announce: m.announce,
    participants: m.participants,
    isCommunity: m.isCommunity,
    isCommunityAnnounce: m.isCommunityAnnounce,
    linkedParent: undefined,
  };
}

// Express' last handler for a path no router took.
const cannot = (ctx) => notFound(`Cannot ${ctx.method} ${ctx.path}`);

export default {
  kind: 'evolution',
  prefix: '/evolution',

  identify({ segments }) {
    const match = matchPath(ROUTES, segments);
    if (match) return { session: match.params.i, route: match.route.op, match };
    const session = segments && segments.length === 3 && ['group', 'instance'].includes(segments[0]) && segments[2] ? segments[2] : null;
    return { session, route: null, match: null };
  },

  authorized({ headers }, { credentials }) {
    return secretMatches(header(headers, 'apikey'), credentials.evolution);
  },

  // Route, then the guards in their order (instance exists, then the key), then validation.
  respond(ctx, env) {
    const match = ctx.id.match;
    if (!match || match.route.method !== ctx.method) return cannot(ctx);
    const instance = match.params.i;
    const presence = W.presenceOf(instance);
    if (presence === 'not_found') return notFound(`The "${instance}" instance does not exist`);
    if (!ctx.authorized) return failure(401, 'Unauthorized', 'Unauthorized');
    if (ctx.body.invalid) return badRequest(ctx.body.tooLarge ? 'request entity too large' : 'Unexpected token in JSON');
    return operate(ctx, match.route.op, instance, env.worldOf(instance), presence);
  },

  waFault(ctx, code) {
    return waFailure(ctx.id.route, waCause(code), ctx);
  },
};
