#!/usr/bin/env bash
# Installs what building and testing joingate needs, skipping whatever is already there:
# the wasm32 Rust target, worker-build, the wasm-bindgen CLI matching Cargo.lock, and the
# npm packages of package-lock.json (wrangler, miniflare, esbuild, binaryen's wasm-opt,
# swagger-ui-dist, puppeteer-core, openapi-typescript), Debian's chromium for the docs page's
# browser test, and openapi-python-client in .venv-clients/ for tests/generated-clients.test.mjs.
# Nothing is downloaded from GitHub: worker-build is pointed at these local tools.
set -euo pipefail
cd "$(dirname "$0")/.."

WORKER_BUILD_VERSION=0.8.7
say() { printf '[setup] %s\n' "$*"; }

command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)"; exit 1; }
command -v node >/dev/null || { echo "Node.js 20 or later is required"; exit 1; }
export PATH="$HOME/.cargo/bin:$PATH"

if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  say "rust target wasm32-unknown-unknown: present"
else
  say "adding rust target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

if [ "$(worker-build --version 2>/dev/null | awk '{print $NF}')" = "$WORKER_BUILD_VERSION" ]; then
  say "worker-build $WORKER_BUILD_VERSION: present"
else
  say "installing worker-build $WORKER_BUILD_VERSION (takes a few minutes once)"
  # --force: cargo may still list it as installed when only the binary is gone.
  cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked --force --debug
fi

# The CLI must equal the wasm-bindgen crate in Cargo.lock exactly.
[ -f Cargo.lock ] || cargo generate-lockfile
BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" = "$BINDGEN_VERSION" ]; then
  say "wasm-bindgen-cli $BINDGEN_VERSION: present"
else
  say "installing wasm-bindgen-cli $BINDGEN_VERSION (takes a few minutes once)"
  # Not --locked: one of its locked dependencies is missing from the registry index.
  cargo install wasm-bindgen-cli --version "$BINDGEN_VERSION" --force --debug
fi

if [ -f node_modules/.package-lock.json ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
  say "npm packages: present"
else
  say "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund
fi

# Chromium for the API reference page's browser test (Debian's package; puppeteer-core
# downloads no browser of its own).
CHROMIUM=${CHROMIUM_PATH:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then
  say "chromium: present"
elif command -v apt-get >/dev/null; then
  say "installing chromium (apt)"
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
else
  echo "Chromium is required for tests/docs-page.test.mjs: install it, or set CHROMIUM_PATH"; exit 1
fi

# The client generators of tests/generated-clients.test.mjs: openapi-python-client into its
# own virtualenv (openapi-typescript is an npm dev dependency, installed above).
bash scripts/generate-clients.sh --install-only
