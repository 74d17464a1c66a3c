// Credentials the simulator's server front ends accept by default. Override any of them
// with startSimulator({ credentials: { waha: '...' } }). The native front end keeps its
// own `token` option (Authorization: Bearer), unset by default.

export const SIM_CREDENTIALS = Object.freeze({
  /** WAHA: header `X-Api-Key`. */
  waha: 'waha-key',
  /** Evolution API: header `apikey` (the global key). */
  evolution: 'evolution-key',
  /** wuzapi: header `token` is this prefix followed by the user name, which is the session. */
  wuzapi: 'wuzapi-',
  /** go-whatsapp-web-multidevice: HTTP Basic `user:password`. */
  gowa: 'gowa:gowa-pass',
});

/** A wuzapi user name: the part of a token after the prefix. */
export const WUZAPI_USER_RE = /^[A-Za-z0-9_-]+$/;

/** The wuzapi token of user (session) `name`. */
export function wuzapiToken(name, prefix = SIM_CREDENTIALS.wuzapi) {
  if (typeof name !== 'string' || !WUZAPI_USER_RE.test(name)) {
    throw new Error('a wuzapi user name is one or more of [A-Za-z0-9_-]');
  }
  return `${prefix}${name}`;
}

/** The `Authorization` header value for go-whatsapp-web-multidevice. */
export function gowaAuthorization(userPass = SIM_CREDENTIALS.gowa) {
  return `Basic ${Buffer.from(userPass).toString('base64')}`;
}

/** Defaults merged with overrides; throws on a value that is not a non-empty string. */
export function resolveCredentials(overrides = {}) {
  const out = { ...SIM_CREDENTIALS };
  for (const [kind, value] of Object.entries(overrides ?? {})) {
    if (!Object.hasOwn(SIM_CREDENTIALS, kind)) throw new Error(`credentials: unknown kind ${kind}`);
    if (typeof value !== 'string' || value === '') throw new Error(`credentials.${kind} must be a non-empty string`);
    if (kind === 'gowa' && !/^[^:]+:.+$/.test(value)) throw new Error('credentials.gowa must be "user:password"');
    out[kind] = value;
  }
  return Object.freeze(out);
}
