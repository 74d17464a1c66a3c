#!/usr/bin/env bash
# Runs joingate locally: installs what is missing, builds the Worker, starts the session
# backend simulator and `wrangler dev` on 127.0.0.1, seeds a demo org, session and token
# through the admin API and prints a ready-to-paste curl. Ctrl-C stops everything.
#   JOINGATE_PORT (8787), SIMULATOR_PORT (8788), IDP_PORT (8789), RECEIVER_PORT (8790),
#   ADMIN_TOKEN (random per run) may be set.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
JOINGATE_PORT=${JOINGATE_PORT:-8787}
SIMULATOR_PORT=${SIMULATOR_PORT:-8788}
IDP_PORT=${IDP_PORT:-8789}
RECEIVER_PORT=${RECEIVER_PORT:-8790}
ADMIN_TOKEN=${ADMIN_TOKEN:-dev-admin-$(node -e 'console.log(require("crypto").randomBytes(12).toString("hex"))')}
# Seals the demo sessions' backend credentials (32 bytes, base64; random per run).
CREDENTIALS_KEY=${CREDENTIALS_KEY:-$(node -e 'console.log(require("crypto").randomBytes(32).toString("base64"))')}
export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false

bash scripts/setup.sh
bash scripts/build.sh

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

mkdir -p .wrangler
node sim/simulator.mjs --port "$SIMULATOR_PORT" > .wrangler/simulator.log 2>&1 &
pids+=($!)
# A demo identity provider: its JWKS signs in people with login tokens (scripts/demo-idp.mjs).
node scripts/demo-idp.mjs --port "$IDP_PORT" > .wrangler/idp.log 2>&1 &
pids+=($!)
# A webhook receiver for the demo org: it prints each verified event here, in the terminal.
rm -f .wrangler/demo-webhook-secret
node scripts/demo-receiver.mjs --port "$RECEIVER_PORT" --secret-file .wrangler/demo-webhook-secret &
pids+=($!)
# The demo's pace is brisker than a deployment's (wrangler.toml: joins 1 a minute, burst 2;
# job items 60 s apart at least, 08:00-21:00, with breaks), so that its curls answer at once.
node_modules/.bin/wrangler dev --ip 127.0.0.1 --port "$JOINGATE_PORT" \
  --var "ADMIN_TOKEN:$ADMIN_TOKEN" --var "SESSION_BACKEND_URL:http://127.0.0.1:$SIMULATOR_PORT" \
  --var "CREDENTIALS_KEY:$CREDENTIALS_KEY" \
  --var "JWT_ISSUER:http://127.0.0.1:$IDP_PORT" --var "JWT_AUDIENCE:joingate-demo" \
  --var "JWT_JWKS_URL:http://127.0.0.1:$IDP_PORT/.well-known/jwks.json" \
  --var JOIN_PER_MINUTE:4 --var JOIN_BURST:4 \
  --var JOB_MIN_INTERVAL_S:5 --var JOB_WINDOW:off --var JOB_BREAK_S:0-0 \
  > .wrangler/wrangler.log 2>&1 &
pids+=($!)

node scripts/seed.mjs "http://127.0.0.1:$JOINGATE_PORT" "$ADMIN_TOKEN" "http://127.0.0.1:$SIMULATOR_PORT" "http://127.0.0.1:$IDP_PORT" "http://127.0.0.1:$RECEIVER_PORT/events"
echo "Logs: .wrangler/wrangler.log (joingate), .wrangler/simulator.log (simulator), .wrangler/idp.log (demo identity provider); verified webhook events print here. Ctrl-C stops everything."
wait -n "${pids[@]}"
