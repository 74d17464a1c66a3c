#!/usr/bin/env bash
# Runs every test of joingate on a fresh or prepared machine: installs what is missing,
# checks formatting and lints, runs the native tests of the pure core, builds the Worker
# (with its size budget), runs the end-to-end suite in workerd through Miniflare, and points
# schemathesis at the OpenAPI document of a local `wrangler dev`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
step() { printf '\n== %s\n' "$*"; }

step "setup"
bash scripts/setup.sh
step "cargo fmt --check"
cargo fmt --check
step "cargo clippy"
cargo clippy --all-targets -- -D warnings
cargo clippy --lib --target wasm32-unknown-unknown -- -D warnings
step "cargo test (native)"
cargo test
step "build the Worker"
bash scripts/build.sh
step "deploy bundle (wrangler deploy --dry-run, offline)"
node scripts/deploy-check.mjs
step "end-to-end tests (miniflare)"
node --test --test-concurrency=4 tests/*.test.mjs
step "schemathesis against wrangler dev (fixed seed)"
ST_SEED=20261122 ST_MAX_EXAMPLES=100 bash scripts/schemathesis.sh
