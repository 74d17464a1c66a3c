#!/usr/bin/env bash
# Generates typed clients from docs/openapi.json and fails on any warning of either generator:
#   - a Python client with openapi-python-client (pinned below), into
#     .wrangler/clients/python/joingate_client/ (import joingate_client with that directory on
#     sys.path; it needs httpx and attrs, both in the generator's virtualenv);
#   - TypeScript types with openapi-typescript (an npm dev dependency), into
#     .wrangler/clients/typescript/joingate.d.ts.
# .wrangler/ is git-ignored. Each generator's output is kept in .wrangler/clients/*.log.
# tests/generated-clients.test.mjs runs this script, then uses the Python client against a
# local joingate. See docs/clients.md.
#
# Installs openapi-python-client into .venv-clients/ when it is missing or another version
# (a virtualenv of its own beside .venv-schemathesis/, so that neither pins the other's
# dependencies), and the npm packages when openapi-typescript is missing.
#
#   bash scripts/generate-clients.sh                 install what is missing, then generate
#   bash scripts/generate-clients.sh --install-only  install what is missing (scripts/setup.sh)
#
# Environment (optional): CLIENTS_DOC (docs/openapi.json), CLIENTS_OUT (.wrangler/clients),
# CLIENTS_VENV (.venv-clients).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

OPENAPI_PYTHON_CLIENT_VERSION=0.29.1
VENV=${CLIENTS_VENV:-$ROOT/.venv-clients}
OUT=${CLIENTS_OUT:-$ROOT/.wrangler/clients}
DOC=$(realpath "${CLIENTS_DOC:-$ROOT/docs/openapi.json}")
say() { printf '[clients] %s\n' "$*"; }
# The lines of a generator's log that are not its normal output (colour codes removed).
unexpected() { sed 's/\x1b\[[0-9;]*m//g' "$1" | grep -v "${@:2}" | grep '[^[:space:]]'; }

# --- the generators --------------------------------------------------------------------------
if [ "$("$VENV/bin/openapi-python-client" --version 2>/dev/null | awk '{print $NF}')" = "$OPENAPI_PYTHON_CLIENT_VERSION" ]; then
  say "openapi-python-client $OPENAPI_PYTHON_CLIENT_VERSION: present"
else
  say "installing openapi-python-client $OPENAPI_PYTHON_CLIENT_VERSION into ${VENV#"$ROOT"/}/"
  python3 -m venv "$VENV"
  # Keep the virtualenv out of git without touching the repository's .gitignore.
  echo '*' > "$VENV/.gitignore"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "openapi-python-client==$OPENAPI_PYTHON_CLIENT_VERSION"
fi
if [ -x node_modules/.bin/openapi-typescript ]; then
  say "openapi-typescript $(node -p 'require("./node_modules/openapi-typescript/package.json").version'): present"
else
  say "openapi-typescript missing: installing npm packages (npm ci)"
  npm ci --no-audit --no-fund
fi
[ "${1:-}" = "--install-only" ] && exit 0

# --- generation ------------------------------------------------------------------------------
started=$(date +%s%N)
rm -rf "$OUT/python" "$OUT/typescript"
mkdir -p "$OUT/python" "$OUT/typescript"
status=0

# --fail-on-warning: any schema or operation it cannot turn into code (it would leave it out)
# and a missing post-hook (ruff, from the virtualenv: hence PATH) exit non-zero. Its normal
# output is the one line "Generating joingate_client"; anything else is a warning here too.
if ! (cd "$OUT/python" && PATH="$VENV/bin:$PATH" "$VENV/bin/openapi-python-client" generate \
  --path "$DOC" --output-path joingate_client --meta none --fail-on-warning) > "$OUT/python.log" 2>&1; then
  status=1
fi
if unexpected "$OUT/python.log" -x -e 'Generating joingate_client' > /dev/null; then
  say "openapi-python-client warned (or failed); ${OUT#"$ROOT"/}/python.log:"
  cat "$OUT/python.log" >&2
  status=1
fi

# openapi-typescript lints the document first: its errors exit non-zero, its warnings are
# lines with ⚠ on stderr. Its normal output is a banner line (✨) and one line per file (🚀).
if ! node_modules/.bin/openapi-typescript "$DOC" --output "$OUT/typescript/joingate.d.ts" > "$OUT/typescript.log" 2>&1; then
  status=1
fi
if unexpected "$OUT/typescript.log" -e '^✨ openapi-typescript ' -e '^🚀 ' > /dev/null; then
  say "openapi-typescript warned (or failed); ${OUT#"$ROOT"/}/typescript.log:"
  cat "$OUT/typescript.log" >&2
  status=1
fi

elapsed_ms=$(( ($(date +%s%N) - started) / 1000000 ))
if [ "$status" = 0 ]; then
  models=$(find "$OUT/python/joingate_client/models" -name '*.py' ! -name '__init__.py' | wc -l)
  operations=$(find "$OUT/python/joingate_client/api" -name '*.py' ! -name '__init__.py' | wc -l)
  say "no warnings; Python client: $operations operations, $models models; TypeScript: $(wc -l < "$OUT/typescript/joingate.d.ts") lines; ${elapsed_ms} ms; in ${OUT#"$ROOT"/}/"
else
  say "FAILED after ${elapsed_ms} ms"
fi
exit "$status"
