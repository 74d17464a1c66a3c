// Demo catalogue of the session backend simulator: the groups and invite codes it knows,
// and the answer WhatsApp would give for each. Tests import codes and JIDs from here by
// name (DEMO.open.code, DEMO.admin.group_jid, ...) instead of copying strings around.
//
// Every session starts from this same picture; the simulator keeps a per-session copy so
// that joins, leaves and approvals in one session never leak into another. Invite codes are
// the exception: as in WhatsApp, a reset revokes a group's code for everyone (sim/world.mjs).

/** Text WhatsApp sends with each error code (the XMPP error condition names). */
export const WA_TEXT = Object.freeze({
  304: 'not-modified',
  400: 'bad-request',
  401: 'not-authorized',
  403: 'forbidden',
  404: 'item-not-found',
  405: 'not-allowed',
  406: 'not-acceptable',
  408: 'request-timeout',
  409: 'conflict',
  410: 'gone',
  412: 'precondition-failed',
  419: 'resource-limit',
  429: 'rate-overlimit',
  463: 'account_reachout_restricted',
  500: 'internal-server-error',
  503: 'service-unavailable',
});

/** Seconds the simulator asks the caller to wait after a WhatsApp 429 (rate-overlimit). */
export const RATE_OVERLIMIT_RETRY_AFTER_S = 30;

// Field meanings:
//   code               invite code, 22 chars of [A-Za-z0-9] like real WhatsApp codes
//   group_jid          group the code points at (null: the code never existed)
//   group_exists       false when the group has been deleted (WhatsApp 404)
//   subject, description, size, created_at, requires_approval   the invite preview
//   role               the session's starting place in the group: admin | member | none
//   join_error         WhatsApp code answered to a join with this code (no state change)
//   preview_error      WhatsApp code answered to a preview of this code
//   pending_requests   membership requests waiting for an admin (admin-side routes)
//   outcome            one line for docs and test names
export const DEMO = deepFreeze({
  open: {
    code: 'OpenGroupDemo000000001',
    group_jid: '120363000000000001@g.us',
    subject: 'Joingate Open Demo',
    description: 'Anyone with the link can join.',
    size: 12,
    created_at: 1700000001,
    requires_approval: false,
    role: 'none',
    outcome: 'joined (a second join: already_member)',
  },
  approval: {
    code: 'ApprovalGroupDemo00002',
    group_jid: '120363000000000002@g.us',
    subject: 'Joingate Approval Demo',
    description: 'Admins approve every new member.',
    size: 48,
    created_at: 1700000002,
    requires_approval: true,
    role: 'none',
    outcome: 'pending_approval (again on a second join)',
  },
  // A legacy-style group JID (creator phone + creation time) so the `digits-digits@g.us`
  // form of the contract is exercised too.
  member: {
    code: 'MemberGroupDemo0000003',
    group_jid: '15550009999-1600000003@g.us',
    subject: 'Joingate Member Demo',
    description: 'The session is an ordinary member here.',
    size: 7,
    created_at: 1600000003,
    requires_approval: false,
    role: 'member',
    outcome: 'already_member; admin routes answer WhatsApp 401 (member, not admin)',
  },
  admin: {
    code: 'AdminGroupDemo00000004',
    group_jid: '120363000000000004@g.us',
    subject: 'Joingate Admin Demo',
    description: 'The session is an admin here, with join requests waiting.',
    size: 25,
    created_at: 1700000004,
    requires_approval: true,
    role: 'admin',
    pending_requests: [
      { jid: '15550000001@s.whatsapp.net', phone_number: '+15550000001', requested_at: 1760000001 },
      { jid: '15550000002@s.whatsapp.net', phone_number: '+15550000002', requested_at: 1760000602 },
      // Requests from privacy-mode users arrive under a LID; WhatsApp adds the phone number.
      { jid: '98765432109876@lid', phone_number: '+15550000003', requested_at: 1760001203 },
      // Optional fields absent, as the contract allows.
      { jid: '15550000004@s.whatsapp.net' },
    ],
    outcome: 'already_member; admin routes work (4 pending join requests)',
  },
  outsider: {
    code: 'OutsiderGroupDemo00005',
    group_jid: '120363000000000005@g.us',
    subject: 'Joingate Outsider Demo',
    description: 'The session is not in this group.',
    size: 31,
    created_at: 1700000005,
    // Approval-gated, so a join attempt leaves the session outside and the 403 cases hold.
    requires_approval: true,
    role: 'none',
    outcome: 'pending_approval; leave and admin routes answer WhatsApp 403 (not in group)',
  },
  revoked: {
    code: 'RevokedLinkDemo0000006',
    group_jid: '120363000000000006@g.us',
    subject: 'Joingate Revoked Demo',
    description: 'This link was reset by an admin.',
    size: 9,
    created_at: 1700000006,
    requires_approval: false,
    role: 'none',
    join_error: 410,
    preview_error: 410,
    outcome: 'WhatsApp 410 (link revoked), on join and preview',
  },
  invalid: {
    code: 'InvalidCodeDemo0000007',
    group_jid: null,
    join_error: 406,
    preview_error: 406,
    outcome: 'WhatsApp 406 (no such code), on join and preview; so does any uncatalogued code',
  },
  full: {
    code: 'GroupFullDemo000000008',
    group_jid: '120363000000000008@g.us',
    subject: 'Joingate Full Demo',
    description: 'At the member limit.',
    size: 1024,
    created_at: 1700000008,
    requires_approval: false,
    role: 'none',
    join_error: 419,
    outcome: 'WhatsApp 419 (group full) on join; preview works',
  },
  // No description or created_at: exercises the optional preview fields.
  communityFull: {
    code: 'CommunityFullDemo00009',
    group_jid: '120363000000000009@g.us',
    subject: 'Joingate Community Announcements',
    size: 2000,
    requires_approval: false,
    role: 'none',
    join_error: 412,
    outcome: 'WhatsApp 412 (community full) on join; preview works',
  },
  removed: {
    code: 'RemovedBeforeDemo00010',
    group_jid: '120363000000000010@g.us',
    subject: 'Joingate Removed Demo',
    description: 'The session was removed from this group before.',
    size: 40,
    created_at: 1700000010,
    requires_approval: false,
    role: 'none',
    join_error: 403,
    outcome: 'WhatsApp 403 (removed before) on join; preview works',
  },
  notAllowed: {
    code: 'NotAllowedDemo00000011',
    group_jid: '120363000000000011@g.us',
    subject: 'Joingate Restricted Demo',
    description: 'Joining is not allowed for this account.',
    size: 15,
    created_at: 1700000011,
    requires_approval: false,
    role: 'none',
    join_error: 401,
    outcome: 'WhatsApp 401 (not allowed) on join; preview works',
  },
  notFound: {
    code: 'GroupGoneDemo000000012',
    group_jid: '120363000000000012@g.us',
    group_exists: false,
    join_error: 404,
    preview_error: 404,
    outcome: 'WhatsApp 404 (group deleted), on join, preview and every group route',
  },
  rateLimited: {
    code: 'RateOverlimitDemo00013',
    group_jid: '120363000000000013@g.us',
    subject: 'Joingate Busy Demo',
    size: 5,
    created_at: 1700000013,
    requires_approval: false,
    role: 'none',
    join_error: 429,
    preview_error: 429,
    outcome: 'WhatsApp 429 (rate-overlimit) with Retry-After: 30, on join and preview',
  },
  // Open groups for the group book and recovery onto another number (API.md section 15):
  // each joins like `open`, so one session can build a book of several groups.
  book1: {
    code: 'BookGroupDemo000000001',
    group_jid: '120363000000000021@g.us',
    subject: 'Joingate Book Demo 1',
    description: 'An open group for the group book (1 of 6).',
    size: 21,
    created_at: 1700000021,
    requires_approval: false,
    role: 'none',
    outcome: 'joined, like open (group book demo 1)',
  },
  book2: {
    code: 'BookGroupDemo000000002',
    group_jid: '120363000000000022@g.us',
    subject: 'Joingate Book Demo 2',
    description: 'An open group for the group book (2 of 6).',
    size: 34,
    created_at: 1700000022,
    requires_approval: false,
    role: 'none',
    outcome: 'joined, like open (group book demo 2)',
  },
  book3: {
    code: 'BookGroupDemo000000003',
    group_jid: '120363000000000023@g.us',
    subject: 'Joingate Book Demo 3',
    description: 'An open group for the group book (3 of 6).',
    size: 55,
    created_at: 1700000023,
    requires_approval: false,
    role: 'none',
    outcome: 'joined, like open (group book demo 3)',
  },
  book4: {
    code: 'BookGroupDemo000000004',
    group_jid: '120363000000000024@g.us',
    subject: 'Joingate Book Demo 4',
    description: 'An open group for the group book (4 of 6).',
    size: 89,
    created_at: 1700000024,
    requires_approval: false,
    role: 'none',
    outcome: 'joined, like open (group book demo 4)',
  },
  book5: {
    code: 'BookGroupDemo000000005',
    group_jid: '120363000000000025@g.us',
    subject: 'Joingate Book Demo 5',
    description: 'An open group for the group book (5 of 6).',
    size: 144,
    created_at: 1700000025,
    requires_approval: false,
    role: 'none',
    outcome: 'joined, like open (group book demo 5)',
  },
  book6: {
    code: 'BookGroupDemo000000006',
    group_jid: '120363000000000026@g.us',
    subject: 'Joingate Book Demo 6',
    description: 'An open group for the group book (6 of 6).',
    size: 233,
    created_at: 1700000026,
    requires_approval: false,
    role: 'none',
    outcome: 'joined, like open (group book demo 6)',
  },
  // Open groups that trip the join policy's rules: a blocked subject term (matched without
  // regard to case) and a size over any sensible max_size.
  casino: {
    code: 'LuckyCasinoDemo0000027',
    group_jid: '120363000000000027@g.us',
    subject: 'Lucky CASINO Night',
    description: 'Chips on the house every Friday.',
    size: 40,
    created_at: 1700000027,
    requires_approval: false,
    role: 'none',
    outcome: 'joined, like open (subject "Lucky CASINO Night": policy blocked_subject_terms)',
  },
  big: {
    code: 'BigCommunityDemo000028',
    group_jid: '120363000000000028@g.us',
    subject: 'Big Community',
    description: 'Everyone in town.',
    size: 5000,
    created_at: 1700000028,
    requires_approval: false,
    role: 'none',
    outcome: 'joined, like open (size 5000: policy max_size)',
  },
});

/**
 * Participants whose approve/reject answers a fixed per-item WhatsApp code, whatever the
 * pending list says, so each per-item mapping of the contract can be tested. Any other
 * participant that is not pending answers 404 (the requester withdrew).
 */
export const PARTICIPANT_FAILURES = Object.freeze({
  '15559990400@s.whatsapp.net': 400,
  '15559990401@s.whatsapp.net': 401,
  '15559990403@s.whatsapp.net': 403,
  '15559990408@s.whatsapp.net': 408,
  '15559990409@s.whatsapp.net': 409,
  '15559990412@s.whatsapp.net': 412,
  '15559990500@s.whatsapp.net': 500,
  '15559990503@s.whatsapp.net': 503,
});

// Tests share these objects; freezing them keeps one test from changing another's world.
function deepFreeze(value) {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Catalogue entries as a list, each with its key as `name`. */
export const CATALOGUE = Object.freeze(
  Object.entries(DEMO).map(([name, entry]) => Object.freeze({ name, ...entry })),
);

export const INVITE_CODE_RE = /^[A-Za-z0-9]{22}$/;

// Fail at import time rather than with a confusing test failure later.
{
  const codes = new Set();
  const jids = new Set();
  for (const e of CATALOGUE) {
    if (!INVITE_CODE_RE.test(e.code)) throw new Error(`catalogue: bad code for ${e.name}`);
    if (codes.has(e.code)) throw new Error(`catalogue: duplicate code ${e.name}`);
    codes.add(e.code);
    if (e.group_jid !== null) {
      if (!/^\d+(-\d+)?@g\.us$/.test(e.group_jid)) throw new Error(`catalogue: bad JID for ${e.name}`);
      if (jids.has(e.group_jid)) throw new Error(`catalogue: duplicate JID ${e.name}`);
      jids.add(e.group_jid);
    }
  }
}
