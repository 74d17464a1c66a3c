#!/usr/bin/env node
// joingate's admin command line: tokens, sessions, org limits, join policies and webhooks
// over the admin API, without writing a curl. `npm run admin -- help` lists the commands.
//
// Secrets stay off the command line: a session's backend (with its credential) is read
// from standard input, and the admin token is best given in JOINGATE_ADMIN_TOKEN (a flag is
// visible to every user of the machine through the process list).
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

const USAGE = `usage: npm run admin -- [options] <command> [arguments]

commands:
  token create --org ORG --cap join,read[,manage] [--session SID]... [--expires RFC3339] [--label TEXT]
  token revoke TOKEN_ID
  session put SID --org ORG [--limits JSON] [--backend -]   (the backend JSON, with its
                                                           credential, from standard input)
      [--per-day N] [--per-hour N]                         (the session's own join caps)
      [--number-since YYYY-MM-DD] [--timezone ZONE]        (protection: the number's age,
      [--window HH:MM-HH:MM | --no-window]                  its zone, job hours or none)
                                                           (a put replaces the record: give
                                                            every setting each time)
  session show SID
  session delete SID
  org show ORG                                              (limits and join policy)
  org set ORG [--per-minute N] [--burst N]                  (neither: back to the default;
                                                           the policy is kept)
  org policy ORG [--allowed-groups-file FILE] [--allowed-groups GJID,GJID]
      [--blocked-terms casino,crypto] [--max-size N]       (the join policy: a put replaces
      [--preview-first jobs|always|never]                   it, naming every rule each time;
  org policy ORG --clear                                    the limits are kept; FILE: one
                                                            group JID a line, # comments,
                                                            - for standard input)
  webhook set ORG URL [--events a,b] [--rotate-secret]
  webhook show ORG
  webhook delete ORG
  webhook deliveries ORG
  webhook redeliver ORG DELIVERY_ID

options:
  --base-url URL       joingate's address (JOINGATE_URL; default http://127.0.0.1:8787)
  --admin-token TOKEN  the ADMIN_TOKEN secret (better: JOINGATE_ADMIN_TOKEN)
  --json               print the answer's data as JSON instead of plain text
  -h, --help           this text`;

const OPTIONS = {
  "base-url": { type: "string" },
  "admin-token": { type: "string" },
  json: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
  org: { type: "string" },
  cap: { type: "string" },
  session: { type: "string", multiple: true },
  expires: { type: "string" },
  label: { type: "string" },
  limits: { type: "string" },
  backend: { type: "string" },
  "per-minute": { type: "string" },
  burst: { type: "string" },
  "per-day": { type: "string" },
  "per-hour": { type: "string" },
  "number-since": { type: "string" },
  timezone: { type: "string" },
  window: { type: "string" },
  "no-window": { type: "boolean", default: false },
  events: { type: "string" },
  "allowed-groups-file": { type: "string" },
  "allowed-groups": { type: "string" },
  "blocked-terms": { type: "string" },
  "max-size": { type: "string" },
  "preview-first": { type: "string" },
  clear: { type: "boolean", default: false },
  "rotate-secret": { type: "boolean", default: false },
};

/** A mistake in how the command was called: exit 2 with the usage. */
class UsageError extends Error {}

function need(value, what) {
  if (value === undefined || value === "") throw new UsageError(`missing ${what}`);
  return value;
}

function list(text) {
  return text.split(",").map((s) => s.trim()).filter(Boolean);
}

function integer(text, flag) {
  if (!/^\d+$/.test(text)) throw new UsageError(`${flag} must be a whole number`);
  return Number(text);
}

function jsonArgument(text, flag) {
  try {
    return JSON.parse(text);
  } catch {
    throw new UsageError(`${flag} must be JSON`);
  }
}

async function readStdin(what = "--backend - reads the backend JSON from standard input; pipe it in") {
  if (process.stdin.isTTY) throw new UsageError(what);
  let text = "";
  for await (const chunk of process.stdin) text += chunk;
  return text;
}

const enc = encodeURIComponent;

/** `protection` from --number-since, --timezone, --window / --no-window; none: undefined. */
function protectionFrom(flags) {
  if (flags.window !== undefined && flags["no-window"]) throw new UsageError("--window and --no-window exclude each other");
  const protection = {};
  if (flags["number-since"] !== undefined) protection.number_since = flags["number-since"];
  if (flags.timezone !== undefined) protection.timezone = flags.timezone;
  if (flags["no-window"]) protection.window = null;
  if (flags.window !== undefined) {
    const match = /^\s*([^-\s]+)\s*-\s*([^-\s]+)\s*$/.exec(flags.window);
    if (!match) throw new UsageError("--window must be HH:MM-HH:MM, such as 08:00-21:00");
    protection.window = { start: match[1], end: match[2] };
  }
  return Object.keys(protection).length ? protection : undefined;
}

const GROUP_JID_RE = /^\d+(-\d+)?@g\.us$/;
const PREVIEW_FIRST = ["jobs", "always", "never"];

/** Group JIDs of an --allowed-groups-file: one a line; blank lines and # comments ignored. */
async function groupsFile(file) {
  let text;
  if (file === "-") text = await readStdin("--allowed-groups-file - reads the group JIDs from standard input; pipe them in");
  else {
    try {
      text = readFileSync(file, "utf8");
    } catch (error) {
      throw new UsageError(`cannot read ${file}: ${error.code ?? error.message}`);
    }
  }
  const groups = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const jid = line.replace(/#.*/, "").trim();
    if (jid === "") return;
    if (!GROUP_JID_RE.test(jid)) throw new UsageError(`${file}:${i + 1}: not a group JID: ${jid}`);
    groups.push(jid);
  });
  if (!groups.length) throw new UsageError(`${file} names no group`);
  return groups;
}

/** `policy` from the flags of org policy: only the rules named; --clear: {}. */
async function policyFrom(flags) {
  const named = ["allowed-groups-file", "allowed-groups", "blocked-terms", "max-size", "preview-first"].filter(
    (flag) => flags[flag] !== undefined,
  );
  if (flags.clear) {
    if (named.length) throw new UsageError(`--clear excludes --${named.join(", --")}`);
    return {};
  }
  if (!named.length) throw new UsageError("name at least one rule (--allowed-groups-file, --allowed-groups, --blocked-terms, --max-size, --preview-first), or --clear");
  const policy = {};
  if (flags["allowed-groups-file"] !== undefined || flags["allowed-groups"] !== undefined) {
    const groups = [];
    if (flags["allowed-groups-file"] !== undefined) groups.push(...(await groupsFile(need(flags["allowed-groups-file"], "--allowed-groups-file FILE"))));
    if (flags["allowed-groups"] !== undefined) {
      const given = list(flags["allowed-groups"]);
      if (!given.length) throw new UsageError("--allowed-groups needs at least one group JID");
      groups.push(...given);
    }
    policy.allowed_groups = [...new Set(groups)];
  }
  if (flags["blocked-terms"] !== undefined) {
    const terms = list(flags["blocked-terms"]);
    if (!terms.length) throw new UsageError("--blocked-terms needs at least one term");
    policy.blocked_subject_terms = terms;
  }
  if (flags["max-size"] !== undefined) policy.max_size = integer(flags["max-size"], "--max-size");
  if (flags["preview-first"] !== undefined) {
    if (!PREVIEW_FIRST.includes(flags["preview-first"])) throw new UsageError(`--preview-first must be ${PREVIEW_FIRST.join(", ")}`);
    policy.preview_first = flags["preview-first"];
  }
  return policy;
}

/** The request of a command: [method, path, body?]. */
async function requestFor(words, flags) {
  const [group, action, ...rest] = words;
  const arg = (i, what) => need(rest[i], what);
  switch (`${group} ${action}`) {
    case "token create": {
      const body = { org: need(flags.org, "--org"), capabilities: list(need(flags.cap, "--cap")) };
      if (flags.session) body.sessions = flags.session;
      if (flags.expires) body.expires_at = flags.expires;
      if (flags.label) body.label = flags.label;
      return ["POST", "/v1/admin/tokens", body];
    }
    case "token revoke":
      return ["DELETE", `/v1/admin/tokens/${enc(arg(0, "TOKEN_ID"))}`];
    case "session put": {
      const body = { org: need(flags.org, "--org") };
      if (flags.limits) body.limits = jsonArgument(flags.limits, "--limits");
      const caps = {};
      if (flags["per-day"] !== undefined) caps.per_day = integer(flags["per-day"], "--per-day");
      if (flags["per-hour"] !== undefined) caps.per_hour = integer(flags["per-hour"], "--per-hour");
      if (Object.keys(caps).length) {
        const limits = body.limits && typeof body.limits === "object" ? body.limits : {};
        const join = limits.join && typeof limits.join === "object" ? limits.join : {};
        body.limits = { ...limits, join: { ...join, ...caps } };
      }
      const protection = protectionFrom(flags);
      if (protection) body.protection = protection;
      if (flags.backend !== undefined) {
        if (flags.backend !== "-") {
          throw new UsageError("the backend is read from standard input only (--backend -): a credential on the command line would be seen by every user of the machine");
        }
        body.backend = jsonArgument(await readStdin(), "the backend on standard input");
      }
      return ["PUT", `/v1/admin/sessions/${enc(arg(0, "SID"))}`, body];
    }
    case "session show":
      return ["GET", `/v1/admin/sessions/${enc(arg(0, "SID"))}`];
    case "session delete":
      return ["DELETE", `/v1/admin/sessions/${enc(arg(0, "SID"))}`];
    case "org show":
      return ["GET", `/v1/admin/orgs/${enc(arg(0, "ORG"))}`];
    case "org set": {
      const limits = {};
      if (flags["per-minute"] !== undefined) limits.per_minute = integer(flags["per-minute"], "--per-minute");
      if (flags.burst !== undefined) limits.burst = integer(flags.burst, "--burst");
      // v1.2: a PUT keeps what it leaves out, so the default is asked for with "limits": {}.
      return ["PUT", `/v1/admin/orgs/${enc(arg(0, "ORG"))}`, { limits }];
    }
    case "org policy": {
      const org = arg(0, "ORG");
      return ["PUT", `/v1/admin/orgs/${enc(org)}`, { policy: await policyFrom(flags) }];
    }
    case "webhook set": {
      const body = { url: arg(1, "URL") };
      if (flags.events) body.events = list(flags.events);
      if (flags["rotate-secret"]) body.rotate_secret = true;
      return ["PUT", `/v1/admin/orgs/${enc(arg(0, "ORG"))}/webhook`, body];
    }
    case "webhook show":
      return ["GET", `/v1/admin/orgs/${enc(arg(0, "ORG"))}/webhook`];
    case "webhook delete":
      return ["DELETE", `/v1/admin/orgs/${enc(arg(0, "ORG"))}/webhook`];
    case "webhook deliveries":
      return ["GET", `/v1/admin/orgs/${enc(arg(0, "ORG"))}/webhook/deliveries`];
    case "webhook redeliver":
      return ["POST", `/v1/admin/orgs/${enc(arg(0, "ORG"))}/webhook/deliveries/${enc(arg(1, "DELIVERY_ID"))}/redeliver`];
    default:
      throw new UsageError(words.length ? `unknown command: ${words.join(" ")}` : "no command");
  }
}

/** Plain text: one `key: value` line per field, nested fields dotted, lists one per line. */
function plain(value, prefix = "") {
  if (Array.isArray(value)) {
    if (value.every((v) => v === null || typeof v !== "object")) return [`${prefix}: ${value.join(", ")}`];
    return value.flatMap((v, i) => plain(v, `${prefix}[${i}]`));
  }
  if (value !== null && typeof value === "object") {
    // An empty object (a cleared policy) still shows its name.
    if (prefix && Object.keys(value).length === 0) return [`${prefix}: (none)`];
    return Object.entries(value).flatMap(([k, v]) => plain(v, prefix ? `${prefix}.${k}` : k));
  }
  return [`${prefix}: ${value}`];
}

async function main(argv) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(error.message);
  }
  const { values: flags, positionals } = parsed;
  if (flags.help || positionals[0] === "help") {
    console.log(USAGE);
    return 0;
  }
  const [method, path, body] = await requestFor(positionals, flags);
  const base = (flags["base-url"] ?? process.env.JOINGATE_URL ?? "http://127.0.0.1:8787").replace(/\/+$/, "");
  const token = flags["admin-token"] ?? process.env.JOINGATE_ADMIN_TOKEN;
  if (!token) throw new UsageError("no admin token: set JOINGATE_ADMIN_TOKEN (or --admin-token)");
  let response;
  try {
    response = await fetch(`${base}${path}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
  } catch (error) {
    console.error(`error: cannot reach ${base}: ${error.cause?.code ?? error.message}`);
    return 1;
  }
  const text = await response.text();
  let envelope;
  try {
    envelope = JSON.parse(text);
  } catch {
    console.error(`error: HTTP ${response.status}, not a joingate answer`);
    return 1;
  }
  if (!envelope.success) {
    const error = envelope.error ?? {};
    const field = error.details?.field ? ` (${error.details.field})` : "";
    console.error(`error: ${error.code ?? `HTTP ${response.status}`}: ${error.message ?? "no message"}${field}`);
    return 1;
  }
  if (flags.json) console.log(JSON.stringify(envelope.data, null, 2));
  else console.log(plain(envelope.data).join("\n"));
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (error) => {
    if (!(error instanceof UsageError)) throw error;
    console.error(`error: ${error.message}\n\n${USAGE}`);
    process.exitCode = 2;
  },
);
