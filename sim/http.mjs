// HTTP plumbing of the simulator: reading requests, sending answers (faulty ones included),
// and the redaction used by log lines.

import { isObject } from './front/common.mjs';

export const JSON_TYPE = 'application/json; charset=utf-8';
const MAX_BODY_BYTES = 1024 * 1024;
// Invite codes in paths are 16-32 alphanumerics with at least one letter (JIDs have '@').
const INVITE_LIKE_RE = /^(?=.*[A-Za-z])[A-Za-z0-9]{16,32}$/;

/** Unix epoch milliseconds with sub-millisecond precision, for ordering calls. */
export const nowMs = () => Math.round((performance.timeOrigin + performance.now()) * 1000) / 1000;

/** Split a path into percent-decoded segments; null when the encoding is broken. */
export function decodeSegments(pathname) {
  try {
    return pathname.split('/').slice(1).map(decodeURIComponent);
  } catch {
    return null;
  }
}

/** Read the whole body; resolves null when it is larger than allowed (answered as bad_request). */
export function readBody(req) {
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
export function parseJson(text) {
  if (text.trim() === '') return { value: null };
  try {
    return { value: JSON.parse(text) };
  } catch {
    return { invalid: true };
  }
}

/**
 * A path fit for logs: the segment after `invites/`, and anything else shaped like an
 * invite code, is cut to its first 4 characters. (Query strings are never logged.)
 */
export function redactPath(pathname) {
  const segments = pathname.split('/');
  return segments
    .map((seg, i) => (segments[i - 1] === 'invites' || INVITE_LIKE_RE.test(seg) ? shortCode(seg) : seg))
    .join('/');
}

export const shortCode = (code) => (typeof code === 'string' ? `${code.slice(0, 4)}…` : String(code));

export function sendJson(res, status, body, headers = {}) {
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

export function sendText(res, status, contentType, text, headers = {}) {
  if (res.destroyed || res.writableEnded) return false;
  const length = { 'Content-Length': Buffer.byteLength(text) };
  res.writeHead(status, contentType ? { 'Content-Type': contentType, ...length, ...headers } : { ...length, ...headers });
  res.end(text);
  return true;
}

/** Send a front end's Answer. */
export function sendAnswer(res, answer) {
  if (answer.type === 'json') return sendJson(res, answer.status, answer.body, answer.headers);
  if (answer.type === 'text') return sendText(res, answer.status, answer.contentType, answer.body, answer.headers);
  return sendText(res, answer.status, undefined, '', answer.headers);
}

/**
 * The `cut` fault: status 200, JSON headers and the Content-Length of the whole answer,
 * then only its first half, then the socket is destroyed. An empty answer counts as `{}`,
 * so that something is cut. With `stall`, the socket stays open instead and the rest
 * never comes (the `stall` fault: a backend that hangs mid-answer).
 */
export function sendCut(res, answer, { stall = false } = {}) {
  if (res.destroyed || res.writableEnded) return false;
  let full = answer.type === 'json' ? JSON.stringify(answer.body) : String(answer.body ?? '');
  if (full === '') full = '{}';
  const bytes = Buffer.from(full, 'utf8');
  res.writeHead(200, { 'Content-Type': JSON_TYPE, 'Content-Length': bytes.length, 'Cache-Control': 'no-store' });
  res.write(bytes.subarray(0, Math.floor(bytes.length / 2)), () => {
    if (!stall) res.socket?.destroy();
  });
  return true;
}

/** How much JSON whitespace the `huge` fault puts before the answer: 5 MB. */
export const HUGE_PADDING_BYTES = 5 * 1024 * 1024;

/**
 * The `huge` fault: the answer the request would have had (status, headers and body), its
 * body preceded by 5 MB of spaces, so still valid JSON, sent in 64 KiB chunks without a
 * Content-Length (chunked), so that only a reader that counts what arrives can stop it. A
 * client that goes away stops the writing.
 */
export async function sendHuge(res, answer) {
  if (res.destroyed || res.writableEnded) return false;
  const full = answer.type === 'json' ? JSON.stringify(answer.body) : String(answer.body ?? '');
  const contentType = answer.type === 'text' ? answer.contentType : JSON_TYPE;
  res.writeHead(answer.status, { ...(contentType ? { 'Content-Type': contentType } : {}), 'Cache-Control': 'no-store', ...answer.headers });
  const chunk = Buffer.alloc(64 * 1024, 0x20);
  for (let sent = 0; sent < HUGE_PADDING_BYTES && !res.destroyed; sent += chunk.length) {
    if (!res.write(chunk)) {
      await new Promise((resolve) => {
        const done = () => {
          res.off('drain', done);
          res.off('close', done);
          resolve();
        };
        res.on('drain', done);
        res.on('close', done);
      });
    }
  }
  if (!res.destroyed) res.end(full);
  return true;
}

/** A short note on an answer for the log line. */
export function answerNote(answer) {
  const b = answer.type === 'json' && isObject(answer.body) ? answer.body : null;
  if (!b) return '';
  if (typeof b.status === 'string') return ` ${b.status}`;
  if (isObject(b.error) && b.error.kind) return ` ${b.error.kind}${b.error.wa_code ? ` ${b.error.wa_code}` : ''}`;
  return '';
}

/** The invite code (or link) a request carries, wherever its kind puts it, for the log line. */
export function codeOf(body, query) {
  const fromBody = isObject(body) ? (body.code ?? body.Code ?? body.link) : undefined;
  return fromBody ?? query.get('code') ?? query.get('inviteCode') ?? query.get('link') ?? undefined;
}
