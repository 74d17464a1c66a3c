// Shared pieces of the simulator's front ends: the Answer type, path matching, and the
// shapes the two WhatsApp libraries underneath the real servers give (whatsmeow, Baileys).
//
// A front end module's default export is
//   { kind, prefix,
//     identify(ctx, env)   -> { session, route, match }  world key (or null) and canonical
//                                                         route name, known at arrival
//     authorized(ctx, env) -> boolean                    the kind's credential is present
//     respond(ctx, env)    -> Answer                     the normal answer (auth, routing,
//                                                         presence, validation, operation)
//     waFault(ctx, code)   -> Answer }                   WhatsApp `code` for ctx's operation
// where ctx = { method, segments, query, headers, path, body: {value}|{invalid}, id, authorized }
// (segments and path are relative to the prefix) and env = { worldOf, credentials, token }.

import { createHash, timingSafeEqual } from 'node:crypto';
import { WA_TEXT } from '../catalogue.mjs';
import { INVITE_LINK_PREFIX, WaError, selfJid, selfLid } from '../world.mjs';

export { WaError, selfJid, selfLid };

/** An answer the simulator sends. `type`: json (body is a value), text (body is a string) or empty. */
export class Answer {
  constructor(status, body, { headers = {}, type = 'json', contentType } = {}) {
    this.status = status;
    this.body = body;
    this.headers = headers;
    this.type = type;
    this.contentType = contentType;
  }
}

export const json = (status, body, headers) => new Answer(status, body, { headers });
export const text = (status, body, contentType = 'text/plain; charset=utf-8', headers) =>
  new Answer(status, body, { type: 'text', contentType, headers });
export const empty = (status, headers) => new Answer(status, '', { type: 'empty', headers });

export const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
export const isNonEmptyString = (v) => typeof v === 'string' && v.length > 0;

/**
 * Match decoded path segments against a route table. Patterns are arrays of literal
 * segments and `:name` parameters (non-empty). Returns { route, params } or null.
 */
export function matchPath(routes, segments) {
  if (!segments) return null;
  for (const route of routes) {
    if (route.path.length !== segments.length) continue;
    const params = {};
    let matched = true;
    for (let i = 0; i < segments.length && matched; i++) {
      const want = route.path[i];
      if (want.startsWith(':')) {
        if (segments[i] === '') matched = false;
        else params[want.slice(1)] = segments[i];
      } else if (want !== segments[i]) {
        matched = false;
      }
    }
    if (matched) return { route, params };
  }
  return null;
}

/** Constant-time string comparison; hashing first makes the lengths equal. */
export function secretMatches(given, expected) {
  if (typeof given !== 'string' || typeof expected !== 'string') return false;
  const h = (s) => createHash('sha256').update(s).digest();
  return timingSafeEqual(h(given), h(expected));
}

/** A header value (Node lower-cases names); the first one when repeated. */
export function header(headers, name) {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** The bare code of an invite link; anything else is returned unchanged (whatsmeow does the same). */
export function codeFromLink(s) {
  if (typeof s !== 'string') return s;
  for (const prefix of [INVITE_LINK_PREFIX, 'http://chat.whatsapp.com/', 'chat.whatsapp.com/']) {
    if (s.startsWith(prefix)) return s.slice(prefix.length);
  }
  return s;
}

/** The canonical routes that carry an invite code (see inviteCodeOf). */
const INVITE_ROUTES = new Set(['join', 'join_by_message', 'invite_preview']);

/**
 * The invite code a join or preview request carries, as the operation reads it (a
 * chat.whatsapp.com link cut to its code), for the recorded calls; null for any other route
 * or when the request has none. Wherever the kind puts it: the native preview's path
 * segment, a body's `code` / `Code` (native, WAHA, wuzapi) or `link` (gowa), the query's
 * `code` (WAHA), `inviteCode` (Evolution) or `link` (gowa).
 */
export function inviteCodeOf(ctx) {
  if (!INVITE_ROUTES.has(ctx.id?.route)) return null;
  const body = ctx.body && !ctx.body.invalid ? ctx.body.value : undefined;
  const value =
    ctx.id.match?.params?.code ??
    goField(body, 'code') ??
    (isObject(body) ? body.link : undefined) ??
    ctx.query.get('code') ??
    ctx.query.get('inviteCode') ??
    ctx.query.get('link') ??
    undefined;
  return typeof value === 'string' && value !== '' ? codeFromLink(value) : null;
}

/** Unix seconds as Go's time.Time marshals it (RFC 3339, UTC); undefined is Go's zero time. */
export function rfc3339(unix) {
  if (unix === undefined || unix === null) return '0001-01-01T00:00:00Z';
  return new Date(unix * 1000).toISOString().replace('.000Z', 'Z');
}

/** `digits@s.whatsapp.net` written the way WAHA writes phone JIDs (`digits@c.us`). */
export const toCUs = (jid) => (typeof jid === 'string' ? jid.replace(/@s\.whatsapp\.net$/, '@c.us') : jid);
export const fromCUs = (jid) => (typeof jid === 'string' ? jid.replace(/@c\.us$/, '@s.whatsapp.net') : jid);

/** Phone digits of a request: its phone_number, or the user part of a phone JID. */
export function phoneDigits(request) {
  if (request.phone_number) return request.phone_number.replace(/^\+/, '');
  const m = /^(\d+)@s\.whatsapp\.net$/.exec(request.jid);
  return m ? m[1] : undefined;
}

/** A value of a Go-decoded JSON object: Go's encoding/json matches keys without regard to case. */
export function goField(body, name) {
  if (!isObject(body)) return undefined;
  if (Object.hasOwn(body, name)) return body[name];
  const lower = name.toLowerCase();
  const key = Object.keys(body).find((k) => k.toLowerCase() === lower);
  return key === undefined ? undefined : body[key];
}

// ---------------------------------------------------------------------------------------
// whatsmeow (wuzapi, go-whatsapp-web-multidevice, WAHA GOWS)

/**
 * The error text whatsmeow gives for a WhatsApp code in one operation. Some calls wrap
 * the IQ error in a sentence (and then the text carries no number); the rest print
 * `info query returned status N: text`. Read from whatsmeow group.go / errors.go
 * (2026-08-21): JoinGroupWithLink and GetGroupInfoFromLink wrap 410 and 406,
 * GetGroupInviteLink wraps 401, 404 and 403, GetGroupInfo wraps 404 and 403.
 */
const WRAPPED = {
  link: {
    410: 'that group invite link has been revoked',
    406: 'that group invite link is not valid',
  },
  invite: {
    401: "you don't have the permission to get the group's invite link",
    404: 'that group does not exist',
    403: "you're not participating in that group",
  },
  info: {
    404: 'that group does not exist',
    403: "you're not participating in that group",
  },
};
const WRAPPING_BY_OP = {
  join: 'link',
  invite_preview: 'link',
  invite_reset: 'invite',
  invite_link: 'invite',
  group_info: 'info',
};

export function whatsmeowText(op, code) {
  const wrapped = WRAPPED[WRAPPING_BY_OP[op]]?.[code];
  return wrapped ?? `info query returned status ${code}: ${WA_TEXT[code] ?? 'error'}`;
}

/**
 * whatsmeow's types.GroupInfo as Go's encoding/json writes it: no JSON tags, so the keys are
 * the Go field names, embedded structs (GroupName, GroupTopic, ...) flattened, JIDs as
 * strings ("" when empty), times RFC 3339. `participants` is a list of { jid, admin }.
 */
export function whatsmeowGroupInfo(info, participants = []) {
  return {
    JID: info.group_jid,
    OwnerJID: info.owner ?? '',
    OwnerPN: '',
    Name: info.subject ?? '',
    NameSetAt: rfc3339(info.created_at),
    NameSetBy: info.owner ?? '',
    NameSetByPN: '',
    Topic: info.description ?? '',
    TopicID: info.description ? 'AF5D7E3C0B1A2F4E' : '',
    TopicSetAt: rfc3339(info.description ? info.created_at : undefined),
    TopicSetBy: info.description ? info.owner : '',
    TopicSetByPN: '',
    TopicDeleted: false,
    IsLocked: false,
    IsAnnounce: false,
    AnnounceVersionID: '',
    IsEphemeral: false,
    DisappearingTimer: 0,
    IsIncognito: false,
    IsParent: false,
    DefaultMembershipApprovalMode: '',
    LinkedParentJID: '',
    IsDefaultSubGroup: false,
    IsJoinApprovalRequired: info.requires_approval === true,
    AddressingMode: 'pn',
    GroupCreated: rfc3339(info.created_at),
    CreatorCountryCode: '',
    ParticipantVersionID: '',
    Participants: participants.map((p) => ({
      JID: p.jid,
      PhoneNumber: '',
      LID: '',
      IsAdmin: p.admin,
      IsSuperAdmin: false,
      DisplayName: '',
      Error: 0,
      AddRequest: null,
    })),
    ParticipantCount: info.size,
    MemberAddMode: 'admin_add',
    Suspended: false,
  };
}

// ---------------------------------------------------------------------------------------
// Baileys (Evolution API, WAHA NOWEB)

/**
 * Baileys' GroupMetadata as groupGetInviteInfo (and, with `participants`, groupMetadata and
 * the group notifications: extractGroupMetadata) returns it; undefined fields vanish in JSON.
 */
export function baileysGroupMetadata(info, participants = []) {
  return {
    id: info.group_jid,
    addressingMode: 'pn',
    subject: info.subject,
    subjectOwner: info.owner,
    subjectTime: info.created_at,
    size: info.size,
    creation: info.created_at,
    owner: info.owner,
    desc: info.description,
    descId: info.description === undefined ? undefined : 'AF5D7E3C0B1A2F4E',
    restrict: false,
    announce: false,
    isCommunity: false,
    isCommunityAnnounce: false,
    joinApprovalMode: info.requires_approval === true,
    memberAddMode: false,
    participants,
  };
}

/**
 * The own account as a Baileys v7 participant of a phone-addressed group: `id` its phone
 * JID, `lid` beside it (extractGroupMetadata), `admin` "admin" or null.
 */
export const baileysSelf = (role) => ({ id: selfJid(), lid: selfLid(), admin: role === 'admin' ? 'admin' : null });

/** Run a world operation; a WaError becomes the front end's rendering of it. */
export function attempt(fn, renderWa) {
  try {
    return fn();
  } catch (err) {
    if (err instanceof WaError) return renderWa(err.code);
    throw err;
  }
}
