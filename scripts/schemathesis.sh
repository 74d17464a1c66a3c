#!/usr/bin/env bash
# Fuzzes a throwaway local joingate with schemathesis (OpenAPI property-based testing) against
# docs/openapi.json as served at /v1/openapi.json. See docs/schemathesis.md.
#
# Installs schemathesis into .venv-schemathesis/ when missing, builds the Worker only when
# build/index_bg.wasm is missing, starts the simulator and `wrangler dev` on 127.0.0.1 with
# fresh state, seeds an org, sessions and a token, then runs schemathesis twice:
#   1. the API routes (everything but /v1/admin/*) with the API token;
#   2. the admin routes with the admin token, after run 1, so that their mutations
#      (PUT/DELETE of sessions, token revocation) can never pull the seeded session or the
#      fuzzing token away from under run 1.
# Exits non-zero when schemathesis reports a failure. Background processes are always stopped.
#
# Environment (all optional):
#   JOINGATE_PORT (18787), SIMULATOR_PORT (18788)
#   ST_MAX_EXAMPLES   max test cases per operation and phase (default 300: about 1.5 min)
#   ST_STATEFUL       false skips the stateful phase (default true)
#   ST_SEED           hypothesis seed (default: random; printed so a run can be repeated)
#   ST_CHECKS         comma-separated schemathesis checks (default: see CHECKS below)
#   ST_WORKERS        schemathesis workers (default 1: Python 3.11.7 raises a spurious
#                     "AST constructor recursion depth mismatch" with 2, CPython gh-106905)
#   ST_EXTRA_ARGS     extra arguments for both `st run` invocations
#   ST_REPORT_DIR     logs, JUnit reports and HAR recordings (default .wrangler/schemathesis)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="$HOME/.cargo/bin:$PATH"
export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false

SCHEMATHESIS_VERSION=4.32.5
VENV=$ROOT/.venv-schemathesis
JOINGATE_PORT=${JOINGATE_PORT:-18787}
SIMULATOR_PORT=${SIMULATOR_PORT:-18788}
ST_MAX_EXAMPLES=${ST_MAX_EXAMPLES:-300}
ST_WORKERS=${ST_WORKERS:-1}
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,missing_required_header,ignored_auth,unsupported_method,allow_header_conformance
ST_CHECKS=${ST_CHECKS:-$CHECKS}
ST_SEED=${ST_SEED:-$(( (RANDOM << 15) | RANDOM ))}
REPORT_DIR=${ST_REPORT_DIR:-$ROOT/.wrangler/schemathesis}
ORG=fuzz
SID=demo
BASE=http://127.0.0.1:$JOINGATE_PORT
say() { printf '[schemathesis] %s\n' "$*"; }
started=$(date +%s)

# --- schemathesis in a project-local virtualenv ------------------------------------------
if [ "$("$VENV/bin/st" --version 2>/dev/null | awk '{print $NF}')" = "$SCHEMATHESIS_VERSION" ]; then
  say "schemathesis $SCHEMATHESIS_VERSION: present"
else
  say "installing schemathesis $SCHEMATHESIS_VERSION into .venv-schemathesis/"
  python3 -m venv "$VENV"
  # Keep the virtualenv out of git without touching the repository's .gitignore.
  echo '*' > "$VENV/.gitignore"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

# --- the Worker ----------------------------------------------------------------------------
if [ ! -f build/index_bg.wasm ]; then
  say "build/index_bg.wasm missing: setting up and building"
  bash scripts/setup.sh
  bash scripts/build.sh
fi

# --- throwaway state, config and processes ---------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/joingate-schemathesis.XXXXXX")
mkdir -p "$REPORT_DIR"
rm -f "$REPORT_DIR"/api.har "$REPORT_DIR"/admin.har "$REPORT_DIR"/junit-api.xml "$REPORT_DIR"/junit-admin.xml
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for port in "$JOINGATE_PORT" "$SIMULATOR_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port on 127.0.0.1 is already in use (set JOINGATE_PORT / SIMULATOR_PORT)" >&2
    exit 1
  fi
done

ADMIN_TOKEN=st-admin-$(node -e 'console.log(require("crypto").randomBytes(12).toString("hex"))')

# Serve a snapshot of the Worker (build/, js/, public/, docs/openapi.json, wrangler.toml) from the
# temporary directory:
# `wrangler dev` hot-reloads on file changes, and a rebuild of build/ during the run would
# otherwise restart the server mid-run (or catch a half-written wasm).
# The snapshot is taken when build/index_bg.wasm has not changed for 2 s, before or during the copy.
stamp() { stat -c '%s %Y' build/index_bg.wasm build/index.js 2>/dev/null; }
for attempt in $(seq 1 20); do
  before=$(stamp)
  rm -rf "$WORK/app" && mkdir -p "$WORK/app"
  mkdir -p "$WORK/app/docs" && cp -R build js public "$WORK/app/" && cp docs/openapi.json "$WORK/app/docs/"
  newest=$(stat -c %Y build/index_bg.wasm build/index.js | sort -n | tail -1)
  if [ "$before" = "$(stamp)" ] && [ $(( $(date +%s) - newest )) -ge 2 ] \
    && [ "$(head -c 4 "$WORK/app/build/index_bg.wasm" | od -An -tx1 | tr -d ' ')" = 0061736d ]; then
    break
  fi
  [ "$attempt" = 20 ] && { echo "build/ keeps changing (a build in progress?)" >&2; exit 1; }
  say "build/ is being rewritten; retrying the snapshot in 3 s"
  sleep 3
done
# The org-wide limit (100/min by default) would answer most fuzzing calls with 429 after the
# first minute's hundred: --var raises it below. Its stand-in, the [[ratelimits]] binding,
# is not a var; the snapshot's wrangler.toml raises that too. So does it the admin throttle
# (ADMIN_LIMITER, 10 failed authentications a minute): schemathesis checks that every admin
# route without the right token is 401, dozens of times (tests/admin-api.test.mjs tests the
# throttle itself).
sed -e 's#^simple = { limit = 100, period = 60 }#simple = { limit = 1000000, period = 60 }#' \
  -e 's#^simple = { limit = 10, period = 60 }#simple = { limit = 1000000, period = 60 }#' \
  wrangler.toml > "$WORK/app/wrangler.toml"
[ "$(grep -c "limit = 1000000" "$WORK/app/wrangler.toml")" = 2 ] || { echo "could not raise the org limit and the admin throttle in a copy of wrangler.toml" >&2; exit 1; }

node sim/simulator.mjs --port "$SIMULATOR_PORT" > "$REPORT_DIR/simulator.log" 2>&1 &
pids+=($!)
node_modules/.bin/wrangler dev -c "$WORK/app/wrangler.toml" --ip 127.0.0.1 --port "$JOINGATE_PORT" \
  --persist-to "$WORK/state" --log-level warn --show-interactive-dev-session=false \
  --var "ADMIN_TOKEN:$ADMIN_TOKEN" --var "SESSION_BACKEND_URL:http://127.0.0.1:$SIMULATOR_PORT" \
  --var JOIN_PER_MINUTE:6000 --var JOIN_BURST:1000 \
  --var MANAGE_PER_MINUTE:6000 --var MANAGE_BURST:1000 \
  --var READ_PER_MINUTE:6000 --var READ_BURST:1000 \
  --var ORG_PER_MINUTE:1000000 --var ORG_BURST:1000000 \
  > "$REPORT_DIR/wrangler.log" 2>&1 < /dev/null &
wrangler_pid=$!
pids+=("$wrangler_pid")

# Wait for the port, but give up at once when wrangler dies (its log says why).
for _ in $(seq 1 240); do
  (exec 3<>"/dev/tcp/127.0.0.1/$JOINGATE_PORT") 2>/dev/null && break
  if ! kill -0 "$wrangler_pid" 2>/dev/null; then
    echo "wrangler dev exited; the end of $REPORT_DIR/wrangler.log:" >&2
    tail -20 "$REPORT_DIR/wrangler.log" >&2
    exit 1
  fi
  sleep 0.5
done

# Sessions, all in org $ORG so that the one token reaches each of them:
#   demo               the main target (a connected session of the simulator)
#   wa-main            the sid of the OpenAPI examples, so the examples phase reaches a session
#   offline-demo, ghost-demo   the simulator's disconnected and unknown sessions (409)
#   fault-*            permanent simulator faults: a 500 page, a non-JSON 200, an unexpected
#                      shape, a dropped connection (503, then the open circuit), WhatsApp 429
#                      and an unmapped WhatsApp 500; so 502/503/429 answers are checked too
SESSIONS=("$SID" wa-main offline-demo ghost-demo fault-500=status500 fault-garbage=garbage
  fault-shape=bad_shape fault-drop=drop fault-wa429=whatsapp:429 fault-wa500=whatsapp:500)
SEEDED=$(SIMULATOR_URL=http://127.0.0.1:$SIMULATOR_PORT node scripts/schemathesis-seed.mjs "$BASE" "$ADMIN_TOKEN" "$ORG" "${SESSIONS[@]}")
API_TOKEN=$(node -e 'console.log(JSON.parse(process.argv[1]).token)' "$SEEDED")
say "joingate up at $BASE; org $ORG, ${#SESSIONS[@]} sessions, token $(node -e 'console.log(JSON.parse(process.argv[1]).token_id)' "$SEEDED")"

# --- schemathesis configuration ----------------------------------------------------------------
# Dictionaries steer part of the generated values to what the seeded state and the simulator
# know (sessions, catalogue groups, invite codes, pending requesters, per-item failure JIDs);
# the rest stays random, so unregistered sids (404) and unknown groups are fuzzed too.
node --input-type=module - "$ROOT" "${SESSIONS[@]%%=*}" > "$WORK/dictionaries.toml" <<'EOF'
const [root, main, ...others] = process.argv.slice(2);
const { DEMO, PARTICIPANT_FAILURES } = await import(`${root}/sim/catalogue.mjs`);
const groups = Object.values(DEMO);
const codes = groups.map((g) => g.code);
const jids = groups.map((g) => g.group_jid).filter(Boolean);
const admin = DEMO.admin.group_jid;
const pending = groups.flatMap((g) => (g.pending_requests ?? []).map((r) => r.jid));
const links = codes.flatMap((c) => [
  c,
  `https://chat.whatsapp.com/${c}`,
  `https://chat.whatsapp.com/${c}?mode=ems_copy_t`,
  `chat.whatsapp.com/invite/${c}/`,
  `https://web.whatsapp.com/accept?code=${c}`,
  `whatsapp://chat?code=${c}`,
]);
const dict = (name, values) => `[dictionaries.${name}]\nvalues = ${JSON.stringify(values)}\n`;
process.stdout.write(
  [
    // The main session weighs as much as all the others together.
    dict("sids", [...Array(others.length).fill(main), ...others]),
    // The admin group (where every group route answers 200) weighs as much as the others.
    dict("gjids", [...jids, ...Array(jids.length).fill(admin)]),
    dict("codes", codes),
    dict("invites", links),
    dict("participants", [...pending, ...Object.keys(PARTICIPANT_FAILURES)]),
  ].join("\n"),
);
EOF

cat > "$WORK/hooks.py" <<'EOF'
import schemathesis


@schemathesis.check
def backend_failure_only_from_faulty_sessions(ctx, response, case):
    """502/503/504 only from the sessions whose simulator backend is broken on purpose."""
    status = response.status_code
    if status in (502, 503, 504) and not str(case.path_parameters.get("sid", "")).startswith("fault-"):
        raise AssertionError(f"{status} from a session whose backend is healthy: {response.text[:300]}")
    return None
EOF

cat > "$WORK/schemathesis.toml" <<EOF
hooks = "$WORK/hooks.py"
workers = $ST_WORKERS
seed = $ST_SEED
request-timeout = 30
color = false

[cache]
enabled = false

# Tokens are throwaway (this server dies with the script): show them, so that every
# "Reproduce with" curl is complete.
[output.sanitization]
enabled = false

[generation]
max-examples = $ST_MAX_EXAMPLES
database = "none"

[checks]
enabled = false
$(for check in ${ST_CHECKS//,/ }; do echo "$check.enabled = true"; done)
# 502/503/504 are the documented answers to a broken backend (the fault-* sessions); the
# hook check below fails them everywhere else. 500 (internal_error) always fails.
not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "502", "503", "504"]
backend_failure_only_from_faulty_sessions.enabled = true
# A body over 16 KiB is refused as 413 before its shape is read (the contract's check order:
# 413 before 400), so 413 is a rejection too.
negative_data_rejection.expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]

[auth.openapi.apiToken]
bearer = "\${JG_API_TOKEN}"

[auth.openapi.adminToken]
bearer = "\${JG_ADMIN_TOKEN}"

[phases.stateful]
enabled = ${ST_STATEFUL:-true}

[[operations]]
include-path-regex = "^/v1/sessions/"
parameters = { "path.sid" = { dictionary = "sids", probability = 0.7 }, "path.gjid" = { dictionary = "gjids", probability = 0.7 }, "path.invite" = { dictionary = "codes", probability = 0.6 }, "body.invite" = { dictionary = "invites", probability = 0.6 }, "body.code" = { dictionary = "codes", probability = 0.6 }, "body.group_jid" = { dictionary = "gjids", probability = 0.6 }, "body.participants[*]" = { dictionary = "participants", probability = 0.6 } }

$(cat "$WORK/dictionaries.toml")
EOF

export JG_API_TOKEN=$API_TOKEN JG_ADMIN_TOKEN=$ADMIN_TOKEN
# Hypothesis keeps caches in ./.hypothesis unless told otherwise: keep the tree clean.
export HYPOTHESIS_STORAGE_DIRECTORY=$WORK/hypothesis
st_run() { # NAME, then filters
  local name=$1; shift
  local cmd=("$VENV/bin/st" --config-file "$WORK/schemathesis.toml" run "$BASE/v1/openapi.json"
    "$@" --report junit,har --report-junit-path "$REPORT_DIR/junit-$name.xml" --report-har-path "$REPORT_DIR/$name.har" ${ST_EXTRA_ARGS:-})
  say "run $name: ${cmd[*]}"
  # In the background and waited for, so that INT/TERM reach the traps at once.
  "${cmd[@]}" &
  local pid=$!
  pids+=("$pid")
  wait "$pid"
}

say "seed $ST_SEED, max examples $ST_MAX_EXAMPLES per operation and phase, $ST_WORKERS workers"
status=0
st_run api --exclude-path-regex '^/v1/admin/' || status=$?
# No generated webhook endpoint is registered: its events would be posted to whatever host
# the fuzzer wrote (the webhook tests use a loopback receiver).
st_run admin --include-path-regex '^/v1/admin/' --exclude-operation-id putWebhook || status=$?
# What reached the server, by status (from the HAR recordings).
"$VENV/bin/python" - "$REPORT_DIR/api.har" "$REPORT_DIR/admin.har" <<'EOF' || true
import collections, json, os, sys
statuses = collections.Counter()
for path in sys.argv[1:]:
    if os.path.exists(path):
        statuses.update(e["response"]["status"] for e in json.load(open(path))["log"]["entries"])
print(f"[schemathesis] {sum(statuses.values())} requests sent; by status:",
      " ".join(f"{status}x{count}" for status, count in sorted(statuses.items())))
EOF
say "done in $(( $(date +%s) - started )) s; exit $status; logs, JUnit and HAR in ${REPORT_DIR#"$ROOT"/}"
exit "$status"
