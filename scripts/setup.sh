#!/usr/bin/env bash
# Installs meshd's npm dependencies (on a fresh checkout) and builds it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm dependencies"
  npm ci --no-audit --no-fund
fi
echo "setup: building"
npx tsc -p tsconfig.json
