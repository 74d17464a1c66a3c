// Keeps docs/openapi.json honest without starting the Worker: its routes are the Rust route
// table, its error codes are the Rust error codes, and every example in it validates against
// its schema (with a small JSON-Schema validator below, itself tested on failing cases).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual } from "node:util";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const read = (rel) => readFileSync(path.join(ROOT, rel), "utf8");
const DOC_TEXT = read("docs/openapi.json");
const DOC = JSON.parse(DOC_TEXT);
const METHODS = ["get", "put", "post", "delete", "patch", "options", "head", "trace"];

// ------------------------------------------------------------------ the Rust side

/** The rows of `pub const ROUTES: [RouteSpec; N] = [ row(RouteId::X, Get, "/x", …), … ];` as "GET /x". */
function rustRoutes() {
  const source = read("src/core/route.rs");
  const decl = source.match(/pub const ROUTES:\s*\[RouteSpec;\s*(\d+)\]\s*=\s*\[([\s\S]*?)\n\];/);
  assert.ok(decl, "pub const ROUTES not found in src/core/route.rs");
  const rows = [...decl[2].matchAll(/\b(?:row|session|job)\(\s*RouteId::\w+,\s*(Get|Post|Put|Delete),\s*"([^"]+)"/g)];
  const pairs = rows.map((m) => `${m[1].toUpperCase()} ${m[2]}`);
  assert.equal(pairs.length, Number(decl[1]), "every ROUTES row was parsed");
  return pairs;
}

/** The body of `fn name` (up to the next `fn` at the same or outer level; good enough here). */
function fnBody(source, signature) {
  const start = source.indexOf(signature);
  assert.ok(start >= 0, `${signature} not found`);
  const next = source.slice(start + signature.length).search(/\n\s*(pub )?fn /);
  return source.slice(start, next < 0 ? undefined : start + signature.length + next);
}

/** ErrorCode variant -> wire name, from `fn as_str`, and -> HTTP status, from `fn status`. */
function rustErrorCodes() {
  const source = read("src/core/error.rs");
  const names = new Map(
    [...fnBody(source, "pub fn as_str(self)").matchAll(/Self::(\w+)\s*=>\s*"([a-z_]+)"/g)].map((m) => [m[1], m[2]]),
  );
  const statuses = new Map();
  for (const arm of fnBody(source, "pub fn status(self) -> u16").matchAll(/((?:\|?\s*Self::\w+\s*)+)=>\s*(\d{3})/g)) {
    for (const variant of arm[1].matchAll(/Self::(\w+)/g)) statuses.set(variant[1], Number(arm[2]));
  }
  const byCode = new Map();
  for (const [variant, name] of names) {
    assert.ok(statuses.has(variant), `no status for ${variant}`);
    byCode.set(name, statuses.get(variant));
  }
  return byCode;
}

/** Per-item codes of approve/reject, from `fn item_error_code` and `ITEM_NOT_SUPPORTED`. */
function rustItemCodes() {
  const source = read("src/core/backend/whatsapp.rs");
  const body = fnBody(source, "pub fn item_error_code");
  const codes = [...body.matchAll(/=>\s*\(\s*"([a-z_]+)"/g)].map((m) => m[1]);
  const notSupported = source.match(/pub const ITEM_NOT_SUPPORTED[^=]*=\s*\(\s*"([a-z_]+)"/);
  assert.ok(notSupported, "ITEM_NOT_SUPPORTED not found");
  return [...codes, notSupported[1]];
}

// ------------------------------------------------------------------ a small JSON-Schema validator

/** Keywords the validator checks, and annotations it may ignore. */
const ASSERTIONS = new Set([
  "$ref", "type", "enum", "const", "properties", "required", "additionalProperties", "items",
  "minItems", "maxItems", "pattern", "minLength", "maxLength", "minimum", "maximum", "oneOf",
  "anyOf", "allOf", "format",
]);
const ANNOTATIONS = new Set(["description", "title", "example", "examples", "deprecated"]);

function pointer(root, ref) {
  assert.ok(ref.startsWith("#/"), `only local refs are supported: ${ref}`);
  let node = root;
  for (const raw of ref.slice(2).split("/")) {
    const key = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    assert.ok(node && typeof node === "object" && key in node, `unresolved $ref ${ref}`);
    node = node[key];
  }
  return node;
}

function typeOf(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value;
}

function hasType(value, type) {
  switch (type) {
    case "integer":
      return Number.isInteger(value);
    case "number":
      return typeof value === "number" && Number.isFinite(value);
    default:
      return typeOf(value) === type;
  }
}

const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** Returns a list of error strings (empty when `value` is valid against `schema`). */
export function validate(schema, value, root = DOC, at = "$") {
  if (schema === true) return [];
  if (schema === false) return [`${at}: nothing is allowed here`];
  const errors = [];
  const fail = (message) => errors.push(`${at}: ${message}`);
  for (const key of Object.keys(schema)) {
    if (!ASSERTIONS.has(key) && !ANNOTATIONS.has(key)) fail(`unsupported schema keyword "${key}"`);
  }
  if (schema.$ref) errors.push(...validate(pointer(root, schema.$ref), value, root, at));
  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? schema.type : [schema.type];
    if (!types.some((t) => hasType(value, t))) fail(`expected ${types.join("|")}, got ${typeOf(value)}`);
  }
  if (schema.enum && !schema.enum.some((v) => isDeepStrictEqual(v, value))) fail(`${JSON.stringify(value)} is not one of ${JSON.stringify(schema.enum)}`);
  if ("const" in schema && !isDeepStrictEqual(schema.const, value)) fail(`expected ${JSON.stringify(schema.const)}`);
  if (typeof value === "string") {
    const length = [...value].length;
    if (schema.minLength !== undefined && length < schema.minLength) fail(`shorter than ${schema.minLength}`);
    if (schema.maxLength !== undefined && length > schema.maxLength) fail(`longer than ${schema.maxLength}`);
    if (schema.pattern !== undefined && !new RegExp(schema.pattern, "u").test(value)) fail(`${JSON.stringify(value)} does not match ${schema.pattern}`);
    if (schema.format === "date-time" && !DATE_TIME.test(value)) fail(`${JSON.stringify(value)} is not a date-time`);
  }
  if (typeof value === "number") {
    if (schema.minimum !== undefined && value < schema.minimum) fail(`below ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) fail(`above ${schema.maximum}`);
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) fail(`fewer than ${schema.minItems} items`);
    if (schema.maxItems !== undefined && value.length > schema.maxItems) fail(`more than ${schema.maxItems} items`);
    if (schema.items !== undefined) value.forEach((item, i) => errors.push(...validate(schema.items, item, root, `${at}[${i}]`)));
  }
  if (typeOf(value) === "object") {
    for (const key of schema.required ?? []) if (!(key in value)) fail(`missing required "${key}"`);
    const properties = schema.properties ?? {};
    for (const [key, item] of Object.entries(value)) {
      if (key in properties) errors.push(...validate(properties[key], item, root, `${at}.${key}`));
      else if (schema.additionalProperties !== undefined) errors.push(...validate(schema.additionalProperties, item, root, `${at}.${key}`));
    }
  }
  if (schema.allOf) schema.allOf.forEach((sub, i) => errors.push(...validate(sub, value, root, `${at}/allOf[${i}]`)));
  if (schema.anyOf && !schema.anyOf.some((sub) => validate(sub, value, root, at).length === 0)) fail("matches none of anyOf");
  if (schema.oneOf) {
    const matches = schema.oneOf.filter((sub) => validate(sub, value, root, at).length === 0).length;
    if (matches !== 1) fail(`matches ${matches} of oneOf, not exactly 1`);
  }
  return errors;
}

// ------------------------------------------------------------------ walking the document

const resolve = (node, root = DOC) => {
  let current = node;
  for (let hops = 0; current && current.$ref; hops++) {
    assert.ok(hops < 10, "$ref loop");
    current = pointer(root, current.$ref);
  }
  return current;
};

function* operations(doc = DOC) {
  for (const [template, item] of Object.entries(doc.paths ?? {})) {
    for (const method of METHODS) if (item[method]) yield { template, method, item, op: item[method] };
  }
}

/** Every (where, schema, value) example of a parameter, header or media type in the document. */
function collectExamples(doc = DOC) {
  const found = [];
  const holder = (where, node) => {
    const h = resolve(node, doc);
    if (!h || !h.schema) return;
    if ("example" in h) found.push({ where: `${where} example`, schema: h.schema, value: h.example });
    for (const [name, ex] of Object.entries(h.examples ?? {})) {
      const example = resolve(ex, doc);
      if ("value" in example) found.push({ where: `${where} examples.${name}`, schema: h.schema, value: example.value });
    }
  };
  const response = (where, node) => {
    const r = resolve(node, doc);
    for (const [name, header] of Object.entries(r.headers ?? {})) holder(`${where} header ${name}`, header);
    for (const [type, media] of Object.entries(r.content ?? {})) holder(`${where} ${type}`, media);
  };
  for (const { template, method, item, op } of operations(doc)) {
    const where = `${method.toUpperCase()} ${template}`;
    for (const p of [...(item.parameters ?? []), ...(op.parameters ?? [])]) holder(`${where} parameter ${resolve(p, doc).name}`, p);
    if (op.requestBody) {
      for (const [type, media] of Object.entries(resolve(op.requestBody, doc).content ?? {})) holder(`${where} body ${type}`, media);
    }
    for (const [status, r] of Object.entries(op.responses ?? {})) response(`${where} ${status}`, r);
  }
  const c = doc.components ?? {};
  for (const [name, p] of Object.entries(c.parameters ?? {})) holder(`components.parameters.${name}`, p);
  for (const [name, h] of Object.entries(c.headers ?? {})) holder(`components.headers.${name}`, h);
  for (const [name, r] of Object.entries(c.responses ?? {})) response(`components.responses.${name}`, r);
  return found;
}

/** Every JSON-Schema object in the document (to check the validator knows its keywords). */
function collectSchemas(doc = DOC) {
  const out = [];
  const visitSchema = (s) => {
    if (!s || typeof s !== "object") return;
    out.push(s);
    for (const key of ["items", "additionalProperties"]) if (typeof s[key] === "object") visitSchema(s[key]);
    for (const key of ["oneOf", "anyOf", "allOf"]) (s[key] ?? []).forEach(visitSchema);
    Object.values(s.properties ?? {}).forEach(visitSchema);
  };
  Object.values(doc.components?.schemas ?? {}).forEach(visitSchema);
  const visit = (node) => {
    if (!node || typeof node !== "object") return;
    for (const [key, value] of Object.entries(node)) {
      if (key === "schema") visitSchema(value);
      else if (key !== "schemas") visit(value);
    }
  };
  visit({ paths: doc.paths, components: { ...doc.components, schemas: undefined } });
  return out;
}

// ------------------------------------------------------------------ tests

test("the document is OpenAPI 3.1 and reasonably small", () => {
  assert.match(DOC.openapi, /^3\.1\./);
  assert.ok(DOC.info?.title && DOC.info?.version, "info.title and info.version");
  // js/entry.mjs bundles it as a Text module beside the wasm (not in it, nor in the wasm's
  // size budget); it still ships in the Worker bundle, so it stays bounded.
  const bytes = Buffer.byteLength(DOC_TEXT, "utf8");
  assert.ok(bytes < 150_000, `docs/openapi.json is ${bytes} bytes`);
});

test("paths x methods are exactly the Rust route table", () => {
  const rust = rustRoutes().sort();
  const documented = [...operations()].map(({ method, template }) => `${method.toUpperCase()} ${template}`).sort();
  assert.deepEqual(documented, rust);
  const ids = [...operations()].map(({ op }) => op.operationId);
  assert.equal(new Set(ids).size, ids.length, "operationIds are unique");
  assert.ok(ids.every(Boolean), "every operation has an operationId");
});

test("every path template parameter is declared, required and in the path", () => {
  for (const { template, method, item, op } of operations()) {
    const declared = new Map();
    for (const p of [...(item.parameters ?? []), ...(op.parameters ?? [])].map((x) => resolve(x))) {
      if (p.in === "path") declared.set(p.name, p);
    }
    const names = [...template.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
    assert.deepEqual([...declared.keys()].sort(), [...names].sort(), `${method} ${template}`);
    for (const p of declared.values()) assert.equal(p.required, true, `${p.name} is required`);
  }
  const param = (name) => resolve(DOC.components.parameters[name]).schema;
  const cases = {
    sid: [["s1", "sess_01-AB", "a".repeat(64)], ["", "a b", "a.b", "a".repeat(65)]],
    gjid: [["120363000000000001@g.us", "15550009999-1600000003@g.us"], ["1--2@g.us", "1-2-3@g.us", "1@s.whatsapp.net", `${"9".repeat(33)}@g.us`]],
    token_id: [["tok_0123456789abcdef"], ["tok_0123456789ABCDEF", "tok_0123456789abcde", "tik_0123456789abcdef"]],
    invite: [["OpenGroupDemo000000001"], [42]],
  };
  for (const [name, [good, bad]] of Object.entries(cases)) {
    for (const v of good) assert.deepEqual(validate(param(name), v), [], `${name} accepts ${v}`);
    for (const v of bad) assert.notDeepEqual(validate(param(name), v), [], `${name} refuses ${v}`);
  }
});

test("the validator checks what it claims (failing cases fail)", () => {
  const S = (name) => ({ $ref: `#/components/schemas/${name}` });
  const bad = [
    [S("Participants"), { participants: [] }],
    [S("Participants"), { participants: ["15550000001"] }],
    [S("Participants"), { participants: Array.from({ length: 51 }, (_, i) => `${i}@lid`) }],
    [S("Participants"), { participants: ["1@lid"], all: true }],
    [S("JoinBody"), {}],
    [S("JoinBody"), { invite: "OpenGroupDemo000000001", code: "x" }],
    [S("JoinBody"), { invite: 5 }],
    [S("JoinBody"), { code: "has space", group_jid: "1@g.us", inviter_jid: "1@lid" }],
    [S("JoinBody"), { code: "x", group_jid: "1@g.us", inviter_jid: "1@lid", expiration: 1.5 }],
    [S("JoinBody"), { code: "x", group_jid: "1@g.us", inviter_jid: "1@lid", expected_group_jid: "1@g.us" }],
    [S("JoinBody"), { invite: "OpenGroupDemo000000001", expected_group_jid: "1@s.whatsapp.net" }],
    [S("JobSubmit"), { invites: ["OpenGroupDemo000000001"], from_session: "s1" }],
    [S("JobSubmit"), { from_session: "a b" }],
    [S("JobSubmit"), { invites: [{ invite: "OpenGroupDemo000000001" }] }],
    [S("OrgBody"), { policy: { allowed_groups: [] } }],
    [S("OrgBody"), { policy: { blocked_subject_terms: [""] } }],
    [S("OrgBody"), { policy: { max_size: 100001 } }],
    [S("OrgBody"), { policy: { preview_first: "sometimes" } }],
    [S("OrgBody"), { policy: { blocked_terms: ["x"] } }],
    [S("GroupBookEntry"), { group_jid: "1@g.us", sessions: [{ session_id: "s1", state: "joined", since: "2026-06-15T12:00:00Z" }], invite_known: true, updated_at: "2026-06-15T12:00:00Z" }],
    [S("GroupBookEntry"), { group_jid: "1@g.us", sessions: [], invite_known: true, updated_at: "2026-06-15T12:00:00Z", invite: "OpenGroupDemo000000001" }],
    [S("TokenBody"), { org: "acme", capabilities: [] }],
    [S("TokenBody"), { org: "acme", capabilities: ["admin"] }],
    [S("TokenBody"), { org: "a b", capabilities: ["join"] }],
    [S("TokenBody"), { org: "acme", capabilities: ["join"], label: "a\u0007b" }],
    [S("SessionBody"), { org: "acme", limits: { join: { burst: 0 } } }],
    [S("SessionBody"), { org: "acme", limits: { manage: { per_minute: 6001 } } }],
    [S("SessionBody"), { org: "acme", limits: { joins: {} } }],
    [S("SessionBody"), { org: "acme", limits: { read: { per_day: 5 } } }],
    [S("SessionBody"), { org: "acme", limits: { join: { per_hour: 201 } } }],
    [S("SessionBody"), { org: "acme", protection: { window: { start: "21:00" } } }],
    [S("SessionBody"), { org: "acme", protection: { number_since: "1 March 2024" } }],
    [S("SessionBody"), { org: "acme", protection: { skip_warmup: true } }],
    [S("Error"), { success: false, error: { code: "nope", message: "x" }, request_id: "r1", timestamp: "2026-06-15T12:00:00Z" }],
    [S("Error"), { success: false, error: { code: "not_found", message: "x" }, request_id: "r1" }],
    [S("Error"), { success: false, error: { code: "not_found", message: "x" }, request_id: "r1", timestamp: "yesterday" }],
    [S("JoinResultOk"), { success: true, data: { group_jid: "1@g.us", status: "maybe" }, request_id: "r1" }],
    [S("JoinResultOk"), { success: false, data: { status: "joined" }, request_id: "r1" }],
    [S("JoinResultOk"), { success: true, data: { status: "joined" }, request_id: "r1", extra: 1 }],
    [S("JobOk"), { success: true, request_id: "r1" }],
    [S("GroupBookOk"), { success: true, data: { groups: [], extra: 1 }, request_id: "r1" }],
    [S("ApprovedOk"), { success: true, data: { approved: [], failed: [{ jid: "1@lid", error: { code: "boom", message: "m", wa_code: 1 } }] }, request_id: "r1" }],
    [S("SessionStatusOk"), { success: true, data: { session_id: "s1", connected: true, queue_depth: -1, limits: { join: { per_minute: 4, burst: 4 }, manage: { per_minute: 30, burst: 10 }, read: { per_minute: 60, burst: 20 } }, tokens: { join: 1, manage: 1, read: 1 }, circuit: "closed" }, request_id: "r1" }],
  ];
  for (const [schema, value] of bad) {
    assert.notDeepEqual(validate(schema, value), [], `must fail: ${schema.$ref} ${JSON.stringify(value)}`);
  }
  const good = [
    [S("JoinBody"), { invite: "https://chat.whatsapp.com/OpenGroupDemo000000001" }],
    [S("JoinBody"), { code: "x", group_jid: "1-2@g.us", inviter_jid: "1@lid", expiration: null }],
    [S("SessionBody"), { org: "acme", limits: { join: { burst: 2 }, read: null } }],
    [S("JoinBody"), { invite: "OpenGroupDemo000000001", expected_group_jid: "1-2@g.us" }],
    [S("JobSubmit"), { invites: ["OpenGroupDemo000000001", { invite: "OpenGroupDemo000000002", expected_group_jid: "1@g.us" }] }],
    [S("JobSubmit"), { from_session: "s1", label: "recovery", interval_s: 60 }],
    [S("OrgBody"), { limits: {}, policy: {} }],
    [S("JoinResultOk"), { success: true, data: { status: "already_member" }, request_id: "r1" }],
  ];
  for (const [schema, value] of good) assert.deepEqual(validate(schema, value), [], `must pass: ${JSON.stringify(value)}`);
  // Keywords on a synthetic schema, one by one.
  const synthetic = {
    type: ["object"],
    required: ["n"],
    properties: { n: { type: ["integer", "null"], minimum: 1, maximum: 3 }, s: { type: "string", minLength: 2, maxLength: 3 }, k: { const: "k" } },
    anyOf: [{ required: ["s"] }, { required: ["k"] }],
    allOf: [{ properties: { n: { enum: [1, 2, null] } } }],
  };
  assert.deepEqual(validate(synthetic, { n: 2, s: "ab" }), []);
  assert.deepEqual(validate(synthetic, { n: null, k: "k" }), []);
  for (const v of [{ n: 3, s: "ab" }, { n: 0, s: "ab" }, { n: 1.5, s: "ab" }, { n: 1, s: "a" }, { n: 1, s: "abcd" }, { n: 1, k: "j" }, { n: 1 }, { s: "ab" }, []]) {
    assert.notDeepEqual(validate(synthetic, v), [], `synthetic must fail: ${JSON.stringify(v)}`);
  }
  assert.notDeepEqual(validate({ maxProperties: 1 }, {}), [], "an unknown keyword is reported, not ignored");
  // And the walk really validates the document's examples: a broken copy is caught.
  const broken = structuredClone(DOC);
  const media = broken.paths["/v1/sessions/{sid}/groups/join"].post.responses["200"].content["application/json"];
  Object.values(media.examples)[0].value.data.status = "maybe";
  const failing = (doc) => collectExamples(doc).filter(({ schema, value }) => validate(schema, value, doc).length > 0).map((e) => e.where);
  const before = failing(DOC);
  const after = failing(broken);
  assert.equal(after.length, before.length + 1, "the broken example is caught");
  assert.ok(after.some((where) => where.startsWith("POST /v1/sessions/{sid}/groups/join 200")), after.join("\n"));
});

// Client generators (openapi-python-client, openapi-typescript; tests/generated-clients.test.mjs
// runs them) make one model per named schema: an envelope written as allOf of a shared
// Success schema made each generate its own "SuccessData", and openapi-python-client dropped
// all but one of them. So each success answer is its own named envelope, written out.
const TAGS = ["sessions", "groups", "membership", "jobs", "book", "admin", "webhooks"];

test("every operation has one tag, each tag is declared and described", () => {
  const declared = (DOC.tags ?? []).map((t) => t.name);
  assert.equal(new Set(declared).size, declared.length, "tag names are unique");
  for (const name of TAGS) assert.ok(declared.includes(name), `tag ${name} is declared`);
  for (const tag of DOC.tags) assert.ok(tag.description?.length > 10, `tag ${tag.name} has a description`);
  const used = new Set();
  for (const { template, method, op } of operations()) {
    const where = `${method.toUpperCase()} ${template}`;
    assert.ok(Array.isArray(op.tags) && op.tags.length === 1, `${where} has exactly one tag`);
    assert.ok(declared.includes(op.tags[0]), `${where}: tag ${op.tags[0]} is declared`);
    used.add(op.tags[0]);
  }
  assert.deepEqual(declared.filter((name) => !used.has(name)), [], "every declared tag is used");
  const tagOf = (method, template) => DOC.paths[template][method].tags[0];
  assert.equal(tagOf("post", "/v1/sessions/{sid}/groups/join"), "groups");
  assert.equal(tagOf("get", "/v1/sessions/{sid}/join-jobs/{job_id}"), "jobs");
  assert.equal(tagOf("get", "/v1/sessions/{sid}/groups/{gjid}"), "membership");
  assert.equal(tagOf("get", "/v1/groups"), "book");
  assert.equal(tagOf("post", "/v1/admin/tokens"), "admin");
  assert.equal(tagOf("get", "/v1/admin/orgs/{org}/webhook/deliveries"), "webhooks");
});

test("each success answer is one named envelope with typed, required data (one model each)", () => {
  const schemas = DOC.components.schemas;
  const envelopes = new Set();
  for (const { template, method, op } of operations()) {
    const where = `${method.toUpperCase()} ${template}`;
    const [status, response] = Object.entries(op.responses).find(([s]) => /^2/.test(s));
    const schema = resolve(response).content["application/json"].schema;
    if (template === "/v1/openapi.json") continue; // the document itself, not enveloped
    const name = schema.$ref?.match(/^#\/components\/schemas\/(\w+)$/)?.[1];
    assert.ok(name, `${where} ${status}: the schema is a $ref to a named schema`);
    envelopes.add(name);
  }
  assert.ok(envelopes.size >= 25, `${envelopes.size} success envelopes`);
  for (const name of envelopes) {
    const envelope = schemas[name];
    assert.match(name, /Ok$/, `${name}: success envelopes are named *Ok`);
    assert.deepEqual(
      { type: envelope.type, required: envelope.required, keys: Object.keys(envelope.properties), additional: envelope.additionalProperties },
      { type: "object", required: ["success", "data", "request_id"], keys: ["success", "data", "request_id"], additional: false },
      `${name} is the envelope written out`,
    );
    assert.ok(!("allOf" in envelope || "anyOf" in envelope || "oneOf" in envelope), `${name}: no composition`);
    assert.deepEqual(envelope.properties.success, { const: true }, `${name}.success`);
    assert.deepEqual(envelope.properties.request_id, { $ref: "#/components/schemas/RequestId" }, `${name}.request_id`);
    // data is a named object schema of its own (its model), never a bare object.
    const dataRef = envelope.properties.data.$ref?.match(/^#\/components\/schemas\/(\w+)$/)?.[1];
    assert.ok(dataRef && Object.keys(envelope.properties.data).length === 1, `${name}.data is a $ref to a named schema`);
    const data = schemas[dataRef];
    assert.equal(data.type, "object", `${name}.data (${dataRef}) is an object`);
    assert.ok(data.properties && Object.keys(data.properties).length > 0, `${dataRef} has properties`);
    assert.ok(!("allOf" in data), `${dataRef}: no allOf`);
  }
  // Every *Ok schema is one of those envelopes (none left over in the old allOf shape).
  assert.deepEqual(Object.keys(schemas).filter((n) => /Ok$/.test(n) && !envelopes.has(n)), []);
  assert.ok(!("Success" in schemas), "no shared Success schema to compose envelopes from");
  // A $ref names a whole component, never a part of one (generators resolve only those).
  for (const [, ref] of DOC_TEXT.matchAll(/"\$ref":"([^"]+)"/g)) {
    assert.match(ref, /^#\/components\/\w+\/\w+$/, `${ref} points into a component`);
  }
});

test("every schema keyword in the document is one the validator knows", () => {
  const schemas = collectSchemas();
  assert.ok(schemas.length > 50, `found ${schemas.length} schemas`);
  for (const s of schemas) {
    for (const key of Object.keys(s)) assert.ok(ASSERTIONS.has(key) || ANNOTATIONS.has(key), `unsupported keyword ${key}`);
  }
});

test("every $ref resolves and every component example is used", () => {
  const refs = [...DOC_TEXT.matchAll(/"\$ref":"([^"]+)"/g)].map((m) => m[1]);
  assert.ok(refs.length > 100);
  for (const ref of new Set(refs)) pointer(DOC, ref);
  for (const name of Object.keys(DOC.components.examples ?? {})) {
    assert.ok(refs.includes(`#/components/examples/${name}`), `components.examples.${name} is not used`);
  }
});

test("every example validates against its schema", () => {
  const examples = collectExamples();
  assert.ok(examples.length >= 40, `only ${examples.length} examples found`);
  for (const { where, schema, value } of examples) {
    assert.deepEqual(validate(schema, value), [], where);
  }
});

test("every request body and every success response has an example", () => {
  const hasExample = (media) => "example" in media || Object.keys(media.examples ?? {}).length > 0;
  for (const { template, method, op } of operations()) {
    const where = `${method.toUpperCase()} ${template}`;
    if (op.requestBody) {
      for (const media of Object.values(resolve(op.requestBody).content)) assert.ok(hasExample(media), `${where} request body`);
    }
    const success = Object.entries(op.responses).filter(([status]) => /^2\d\d$/.test(status));
    assert.equal(success.length, 1, `${where} has one success status`);
    for (const media of Object.values(resolve(success[0][1]).content)) assert.ok(hasExample(media), `${where} ${success[0][0]}`);
  }
});

test("error codes are exactly the Rust ones, with their statuses", () => {
  const rust = rustErrorCodes();
  assert.equal(rust.size, 34);
  const documented = DOC.components.schemas.ErrorCode.enum;
  for (const code of rust.keys()) assert.ok(documented.includes(code), `${code} is missing from the ErrorCode enum`);
  assert.deepEqual([...documented].sort(), [...rust.keys()].sort(), "no extra codes");
  const errorSchema = resolve(DOC.components.schemas.Error.properties.error.properties.code);
  assert.equal(errorSchema, DOC.components.schemas.ErrorCode, "error.code uses the ErrorCode enum");
  assert.deepEqual([...DOC.components.schemas.ItemErrorCode.enum].sort(), rustItemCodes().sort(), "per-item codes");

  for (const { template, method, op } of operations()) {
    const where = `${method.toUpperCase()} ${template}`;
    const errorStatuses = Object.keys(op.responses).filter((s) => !/^2/.test(s));
    // The description lists the codes per status: "Errors: 400 a b; 401 c; …".
    const listed = new Map();
    const text = op.description?.match(/Errors: ([^.]*)\./)?.[1];
    for (const part of text ? text.split("; ") : []) {
      const [status, ...codes] = part.split(" ");
      listed.set(status, codes);
      for (const code of codes) assert.equal(String(rust.get(code)), status, `${where}: ${code} is not ${status}`);
    }
    if (text) assert.deepEqual([...listed.keys()].sort(), errorStatuses.sort(), `${where}: listed statuses`);
    else assert.deepEqual(errorStatuses, ["500"], `${where} lists no error codes`);
    for (const status of errorStatuses) {
      const response = resolve(op.responses[status]);
      const media = response.content["application/json"];
      assert.equal(resolve(media.schema), DOC.components.schemas.Error, `${where} ${status} uses the error envelope`);
      for (const ex of Object.values(media.examples ?? {})) {
        const code = resolve(ex).value.error.code;
        assert.equal(String(rust.get(code)), status, `${where} ${status}: example ${code}`);
      }
    }
  }
});

test("security, headers and idempotency per route", () => {
  const schemes = DOC.components.securitySchemes;
  for (const name of ["apiToken", "adminToken", "loginToken"]) assert.deepEqual([schemes[name].type, schemes[name].scheme], ["http", "bearer"]);
  for (const { template, method, item, op } of operations()) {
    const where = `${method.toUpperCase()} ${template}`;
    const session = template.startsWith("/v1/sessions/");
    const admin = template.startsWith("/v1/admin/");
    // Tenant routes outside a session (the org's group book, section 16's token and
    // session list) take the same tokens.
    const described = template === "/v1/token";
    const tenant = session || template === "/v1/groups" || template.startsWith("/v1/groups/") || template === "/v1/sessions" || described;
    const expected = tenant ? [{ apiToken: [] }, { loginToken: [] }] : admin ? [{ adminToken: [] }] : [];
    assert.deepEqual(op.security, expected, `${where} security`);
    if (tenant || admin) assert.ok(op.responses["401"], `${where} answers 401`);
    // A login token may be uncheckable (no key set): 503 auth_unavailable. The lists of
    // section 16 name no session (no 404), and GET /v1/token needs no capability (no 403).
    const listed = described || template === "/v1/sessions";
    const tenantStatuses = ["403", "404", "429", "503"].filter((s) => !(listed && s === "404") && !(described && s === "403"));
    if (tenant) for (const status of tenantStatuses) assert.ok(op.responses[status], `${where} answers ${status}`);
    assert.ok(op.responses["500"], `${where} answers 500`);
    for (const [status, ref] of Object.entries(op.responses)) {
      const headers = resolve(ref).headers ?? {};
      assert.ok(headers["X-Request-Id"], `${where} ${status}: X-Request-Id`);
      if (status === "429" || status === "503") assert.equal(resolve(headers["Retry-After"])?.required, true, `${where} ${status}: Retry-After`);
      // Job routes (and the pending-joins list) spend no session bucket: no RateLimit fields there.
      const bucketless = template.includes("/join-jobs") || template.endsWith("/pending-joins");
      if (session && !bucketless && (/^2/.test(status) || status === "429")) {
        assert.ok(headers["RateLimit-Policy"] && headers.RateLimit, `${where} ${status}: RateLimit headers`);
      }
      if (session && method === "post" && /^2/.test(status)) assert.ok(headers["Idempotent-Replayed"], `${where} ${status}: Idempotent-Replayed`);
      if (!session) assert.ok(!headers.RateLimit && !headers["Idempotent-Replayed"], `${where} ${status}: no session headers`);
    }
    const params = [...(item.parameters ?? []), ...(op.parameters ?? [])].map((p) => resolve(p));
    const idem = params.find((p) => p.in === "header" && p.name === "Idempotency-Key");
    assert.equal(Boolean(idem), session && method === "post", `${where}: Idempotency-Key parameter`);
    if (session && method === "post") {
      for (const status of ["400", "409", "422"]) assert.ok(op.responses[status], `${where} answers ${status}`);
      for (const status of ["413", "415"]) assert.ok(op.responses[status], `${where} answers ${status}`);
    }
    // Routes that call the backend answer its failures; job routes only store and read.
    const backend = session && !template.includes("/join-jobs") && !template.endsWith("/pending-joins");
    if (backend) for (const status of ["502", "504"]) assert.ok(op.responses[status], `${where} answers ${status}`);
  }
});
