#!/usr/bin/env bash
# The whole test suite, as CI runs it: provision the real programs the tests talk to,
# build, typecheck, lint, check for import cycles, then unit, golden and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/provision.sh
echo "test: lint"
npx eslint .
echo "test: import cycles"
npx madge --circular --extensions ts --ts-config tsconfig.json src
echo "test: layering (imports point down the pipeline)"
node scripts/check-layers.mjs
echo "test: unit and golden"
node scripts/run-tests.mjs unit golden
echo "test: end to end"
node scripts/run-tests.mjs e2e
