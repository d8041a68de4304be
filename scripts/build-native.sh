#!/usr/bin/env bash
# Builds the addon into native/ (pixelcnn.<platform>.node plus the generated
# loader native/index.js and types native/index.d.ts, which are committed).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
npx napi build --platform --release -p pixelcnn-node \
  --manifest-path crates/pixelcnn-node/Cargo.toml --package-json-path package.json \
  --output-dir native --js index.js --dts index.d.ts "$@"
