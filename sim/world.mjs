// The simulator's one world: per-session catalogue state and the WhatsApp operations on it.
//
// Every front end (sim/front/*.mjs) speaks some server's wire format but acts on this same
// model, so a join through the WAHA front end and a join through the native one change the
// world in the same way. Operations return plain results or throw a WaError carrying the
// numeric code WhatsApp itself answers; rendering that code is each front end's business.
//
// Membership, roles, sizes and pending requests are per session (one world per session);
// invite codes are not: every world of a simulator shares one registry (newInvites), so a
// reset through one session revokes the old code, and opens the group with the new one,
// for all of them.

import { randomInt } from 'node:crypto';
import { CATALOGUE, PARTICIPANT_FAILURES, WA_TEXT } from './catalogue.mjs';

const CODE_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const USER_JID_RE = /^\d{1,20}@(s\.whatsapp\.net|lid)$/;

/**
 * The account every simulated session is logged in as (servers that show "me" use it):
 * its phone number and its LID (the privacy id WhatsApp also knows it by), user parts only.
 */
export const SESSION_ME = Object.freeze({ phone: '15550001111', lid: '201234567890123', push_name: 'Demo' });
// Catalogue entries name no owner; groups with a modern JID get this one (any user JID would do).
const DEFAULT_OWNER_PHONE = '15550009000';
export const INVITE_LINK_PREFIX = 'https://chat.whatsapp.com/';

/** A WhatsApp error: `code` is the IQ error code, `text` its condition name. */
export class WaError extends Error {
  constructor(code) {
    const text = WA_TEXT[code] ?? 'error';
    super(text);
    this.name = 'WaError';
    this.code = code;
    this.text = text;
  }
}

/** Whether a world key (session name) is known and connected, decided by its prefix. */
export function presenceOf(key) {
  if (key.startsWith('ghost')) return 'not_found';
  if (key.startsWith('offline')) return 'offline';
  return 'connected';
}

/**
 * The invite codes of every group, shared by all the worlds of one simulator: in WhatsApp a
 * code belongs to the group, not to whoever looks at it, so a reset through any session
 * revokes the old code and opens the group with the new one for every session.
 */
export function newInvites() {
  const codes = new Map(); // invite code -> catalogue entry
  const currentCode = new Map(); // group_jid -> the code that currently opens it
  for (const entry of CATALOGUE) {
    codes.set(entry.code, entry);
    if (entry.group_jid !== null && entry.group_exists !== false) currentCode.set(entry.group_jid, entry.code);
  }
  return { codes, currentCode, revoked: new Set() };
}

/**
 * A fresh copy of the catalogue for one session. `invites` is the simulator's shared code
 * registry (newInvites()); a world made without one has codes of its own.
 */
export function newWorld(invites = newInvites()) {
  const groups = new Map(); // group_jid -> { entry, role, size, pending: Map(jid -> request) }
  for (const entry of CATALOGUE) {
    if (entry.group_jid === null || entry.group_exists === false) continue;
    groups.set(entry.group_jid, {
      entry,
      role: entry.role, // admin | member | pending | none
      size: entry.size,
      pending: new Map((entry.pending_requests ?? []).map((r) => [r.jid, { ...r }])),
    });
  }
  // restriction: null, or { until_s } while WhatsApp restricts the account (control API).
  // changes: the own account's membership changes not yet handed to the events hub
  // (sim/events.mjs); the simulator drains them after each answer.
  return { groups, invites, restriction: null, changes: [] };
}

/**
 * A change of the own account's membership, as WhatsApp tells the account (the servers'
 * events come from it): `change` joined | left | removed, `via` join | approval | leave |
 * removal, `actor` the user JID that made it (the own account, or the admin).
 */
function recordChange(world, group, change, via, actor) {
  world.changes.push({ change, via, actor, group_jid: group.entry.group_jid, info: describe(group.entry, group), at_ms: Date.now() });
}

/** A control API refusal: the world is not in the state the call needs (HTTP `status`). */
export class WorldStateError extends Error {
  constructor(status, kind, text) {
    super(text);
    this.name = 'WorldStateError';
    this.status = status;
    this.kind = kind;
  }
}

/**
 * The end (unix seconds) of the account's WhatsApp restriction while it lasts, else null.
 * A restriction whose end has passed is over, as if cleared.
 */
export function restrictedUntil(world, nowMs = Date.now()) {
  const r = world.restriction;
  return r !== null && r.until_s * 1000 > nowMs ? r.until_s : null;
}

/** A restricted account's joins are refused with 463 (account_reachout_restricted). */
function checkRestriction(world) {
  if (restrictedUntil(world) !== null) throw new WaError(463);
}

const isMember = (group) => group.role === 'admin' || group.role === 'member';

function newInviteCode(invites) {
  for (;;) {
    let code = '';
    for (let i = 0; i < 22; i++) code += CODE_ALPHABET[randomInt(CODE_ALPHABET.length)];
    if (!invites.codes.has(code) && !invites.revoked.has(code)) return code;
  }
}

/** Resolve an invite code to its catalogue entry, or throw WhatsApp's answer. */
function lookupCode(world, code) {
  if (world.invites.revoked.has(code)) throw new WaError(410);
  const entry = world.invites.codes.get(code);
  if (!entry) throw new WaError(406);
  return entry;
}

function join(world, entry) {
  if (entry.join_error) throw new WaError(entry.join_error);
  const group = world.groups.get(entry.group_jid);
  if (!group) throw new WaError(404);
  // WhatsApp answers 409 (conflict) here; each front end renders it as its server does.
  if (isMember(group)) return { group_jid: entry.group_jid, status: 'already_member' };
  if (entry.requires_approval) {
    group.role = 'pending';
    return { group_jid: entry.group_jid, status: 'pending_approval' };
  }
  group.role = 'member';
  group.size += 1;
  recordChange(world, group, 'joined', 'join', selfJid());
  return { group_jid: entry.group_jid, status: 'joined' };
}

/** The group for an admin-side operation, or throw 404 / 403 (not in group) / 401 (not admin). */
function adminGroup(world, gjid) {
  const group = world.groups.get(gjid);
  if (!group) throw new WaError(404);
  if (!isMember(group)) throw new WaError(403);
  if (group.role !== 'admin') throw new WaError(401);
  return group;
}

/** The own account's phone JID. */
export const selfJid = () => `${SESSION_ME.phone}@s.whatsapp.net`;
/** The own account's LID. */
export const selfLid = () => `${SESSION_ME.lid}@lid`;

/** The group's creator (a user JID), also the admin who approves and removes in the world. */
export function ownerOf(gjid) {
  const legacy = /^(\d+)-\d+@g\.us$/.exec(gjid);
  return `${legacy ? legacy[1] : DEFAULT_OWNER_PHONE}@s.whatsapp.net`;
}

/** What a front end may show of a group; optional catalogue fields stay undefined. */
function describe(entry, group) {
  return {
    group_jid: entry.group_jid,
    subject: entry.subject,
    description: entry.description,
    size: group.size,
    created_at: entry.created_at,
    requires_approval: entry.requires_approval,
    owner: ownerOf(entry.group_jid),
  };
}

// ---------------------------------------------------------------------------------------
// Operations

/** Join by invite code: { group_jid, status: joined | pending_approval | already_member }. */
export function joinByCode(world, code) {
  checkRestriction(world);
  return join(world, lookupCode(world, code));
}

/** Join by invite message: as joinByCode, but the code must open `groupJid` (else 400). */
export function joinByMessage(world, code, groupJid) {
  checkRestriction(world);
  const entry = lookupCode(world, code);
  // An invite message names its group; WhatsApp rejects a code/group mismatch as 400.
  if (entry.group_jid !== null && entry.group_jid !== groupJid) throw new WaError(400);
  return join(world, entry);
}

/** The invite preview of a code: { group_jid, subject, description?, size, created_at?, requires_approval, owner }. */
export function previewInvite(world, code) {
  const entry = lookupCode(world, code);
  if (entry.preview_error) throw new WaError(entry.preview_error);
  const group = world.groups.get(entry.group_jid);
  if (!group) throw new WaError(404);
  return describe(entry, group);
}

export function leaveGroup(world, gjid) {
  const group = world.groups.get(gjid);
  if (!group) throw new WaError(404);
  if (!isMember(group)) throw new WaError(403);
  group.role = 'none';
  group.size = Math.max(0, group.size - 1);
  recordChange(world, group, 'left', 'leave', selfJid());
  return {};
}

/** Pending join requests of a group the session administers: [{ jid, phone_number?, requested_at? }]. */
export function listJoinRequests(world, gjid) {
  return [...adminGroup(world, gjid).pending.values()].map((r) => ({ ...r }));
}

/**
 * Approve or reject pending requests: one result per participant, in order,
 * { jid, ok: true } or { jid, ok: false, wa_code }. Whole-call checks throw first.
 */
export function actOnJoinRequests(world, gjid, action, participants) {
  const group = adminGroup(world, gjid);
  return participants.map((jid) => {
    if (Object.hasOwn(PARTICIPANT_FAILURES, jid)) return { jid, ok: false, wa_code: PARTICIPANT_FAILURES[jid] };
    if (!USER_JID_RE.test(jid)) return { jid, ok: false, wa_code: 400 };
    // Not (or no longer) pending: the requester withdrew, or it was handled already.
    if (!group.pending.delete(jid)) return { jid, ok: false, wa_code: 404 };
    if (action === 'approve') group.size += 1;
    return { jid, ok: true };
  });
}

/** Revoke a group's invite code and make a new one (admin only); returns the new code. */
export function resetInvite(world, gjid) {
  adminGroup(world, gjid);
  return resetGroupCode(world.invites, gjid);
}

/**
 * Revoke the group's current code for every session and register a new one (no role check:
 * the caller is an admin, or the control API playing one). Returns the new code.
 */
export function resetGroupCode(invites, gjid) {
  const old = invites.currentCode.get(gjid);
  const entry = invites.codes.get(old);
  invites.codes.delete(old);
  invites.revoked.add(old);
  const code = newInviteCode(invites);
  invites.codes.set(code, entry);
  invites.currentCode.set(gjid, code);
  return code;
}

/** The current invite code of a group, without a reset (WhatsApp shows it to admins only). */
export function currentInvite(world, gjid) {
  adminGroup(world, gjid);
  return world.invites.currentCode.get(gjid);
}

/**
 * Group metadata as a member sees it: 404 for an unknown or deleted group, 403 when the
 * session is not a member (a pending request is not membership).
 */
export function groupInfo(world, gjid) {
  const group = world.groups.get(gjid);
  if (!group) throw new WaError(404);
  if (!isMember(group)) throw new WaError(403);
  return { ...describe(group.entry, group), role: group.role };
}

/** Whether the session is in the group (admin or member; a pending request is not membership). */
export function isMemberOf(world, gjid) {
  const group = world.groups.get(gjid);
  return group !== undefined && isMember(group);
}

/** The groups the session is in, as groupInfo describes each (a server's "joined groups" list). */
export function joinedGroups(world) {
  return [...world.groups.values()].filter(isMember).map((g) => ({ ...describe(g.entry, g), role: g.role }));
}

// ---------------------------------------------------------------------------------------
// What other people do (control API): an admin handles the own request, or removes the account.

function ownGroup(world, gjid, key) {
  const group = world.groups.get(gjid);
  if (!group) throw new WorldStateError(404, 'not_found', `no group ${gjid} in session ${key}`);
  return group;
}

/** An admin approves the session's own pending request: it becomes a member (size + 1). */
export function approveOwnRequest(world, gjid, key) {
  const group = ownGroup(world, gjid, key);
  if (group.role !== 'pending') {
    throw new WorldStateError(409, 'not_pending', `session ${key} has no pending request for ${gjid} (role: ${group.role})`);
  }
  group.role = 'member';
  group.size += 1;
  recordChange(world, group, 'joined', 'approval', ownerOf(gjid));
  return { group_jid: gjid, role: group.role, size: group.size };
}

/** An admin rejects the session's own pending request. WhatsApp tells the requester nothing. */
export function rejectOwnRequest(world, gjid, key) {
  const group = ownGroup(world, gjid, key);
  if (group.role !== 'pending') {
    throw new WorldStateError(409, 'not_pending', `session ${key} has no pending request for ${gjid} (role: ${group.role})`);
  }
  group.role = 'none';
  return { group_jid: gjid, role: group.role, size: group.size };
}

/** An admin removes the session's account from a group it is in (size - 1). */
export function removeOwnAccount(world, gjid, key) {
  const group = ownGroup(world, gjid, key);
  if (!isMember(group)) {
    throw new WorldStateError(409, 'not_member', `session ${key} is not in ${gjid} (role: ${group.role})`);
  }
  group.role = 'none';
  group.size = Math.max(0, group.size - 1);
  recordChange(world, group, 'removed', 'removal', ownerOf(gjid));
  return { group_jid: gjid, role: group.role, size: group.size };
}

/** An admin makes the session's account an admin of a group it is in (so that it may reset the invite). */
export function promoteOwnAccount(world, gjid, key) {
  const group = ownGroup(world, gjid, key);
  if (!isMember(group)) {
    throw new WorldStateError(409, 'not_member', `session ${key} is not in ${gjid} (role: ${group.role})`);
  }
  group.role = 'admin';
  return { group_jid: gjid, role: group.role, size: group.size };
}

/** Take the membership changes recorded since the last call, oldest first. */
export function takeChanges(world) {
  return world.changes.splice(0);
}

/** A readable dump of one session's world (debugging aid; invite codes included). */
export function describeWorld(world, key) {
  return {
    session: key,
    state: presenceOf(key),
    groups: [...world.groups].map(([jid, g]) => ({
      group_jid: jid,
      name: g.entry.name,
      role: g.role,
      size: g.size,
      invite_code: world.invites.currentCode.get(jid),
      pending_requests: [...g.pending.values()],
    })),
    revoked_codes: [...world.invites.revoked],
    restricted_until: restrictedUntil(world),
  };
}
