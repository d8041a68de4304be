#!/usr/bin/env bash
# `npm test`: builds what is missing, then the core's Rust tests and the ava specs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-built.sh
source scripts/env.sh   # PIXELCNN_PYTHON: the PyTorch used by the checkpoint-interop spec
bash scripts/test-rust.sh
npx ava "$@"
