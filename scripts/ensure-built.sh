#!/usr/bin/env bash
# Makes a fresh clone runnable: npm packages, the PyTorch environment (once per
# machine, in the user's cache), the native addon and the compiled TypeScript.
# Each step is skipped or incremental when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules/@napi-rs/cli ] || [ ! -d node_modules/ava ]; then
  echo "pixelcnn: installing npm packages" >&2
  npm ci --no-audit --no-fund >&2
fi
bash scripts/build-native.sh >&2
npx tsc -p tsconfig.json
