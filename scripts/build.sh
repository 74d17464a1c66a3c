#!/usr/bin/env bash
# Builds the release Worker into build/ (index.js + index_bg.wasm) with local tools only,
# then checks the size budget: the build fails when the gzipped wasm exceeds 340 KB.
# `--names` keeps the wasm's function names for a CPU profile (bench/profile.mjs): that
# build is larger than the budget and is not checked against it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export WASM_BINDGEN_BIN=wasm-bindgen
export ESBUILD_BIN=node_modules/.bin/esbuild
export WASM_OPT_BIN=node_modules/.bin/wasm-opt
# The API reference page (/docs) is static assets: Swagger UI comes from its npm package,
# copied next to the page, never from a CDN.
mkdir -p public/docs/vendor
cp node_modules/swagger-ui-dist/{swagger-ui.css,swagger-ui-bundle.js,LICENSE} public/docs/vendor/
worker-build --release
if [ "${1:-}" = "--names" ]; then
  echo "kept the wasm's function names (for bench/profile.mjs; not a build to ship)"
  exit 0
fi
# worker-build runs wasm-opt -O with --debuginfo, which keeps the function-name section
# (~110 KB raw, ~30 KB gzip; panic messages carry their source location without it). A
# second pass strips it and optimises for size (-Oz: another ~4 KB gzip, no measurable
# difference in the benchmark; --converge repeats it until nothing shrinks: 0.2 KB more).
# --low-memory-unused lets wasm-opt fold constant address offsets into loads and stores
# (~2.5 KB gzip): rustc's layout puts the stack below 1 MiB and the data above it, so the
# lowest 1 KiB of memory is only ever reached by a stack overflow (emscripten passes it too).
node_modules/.bin/wasm-opt build/index_bg.wasm --low-memory-unused -Oz --converge --strip-debug -o build/index_bg.wasm
node scripts/wasm-size.mjs --check
