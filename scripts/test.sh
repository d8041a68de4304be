#!/usr/bin/env bash
# `npm test`: builds what is missing, then the core's Rust tests and the ava specs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-built.sh
source scripts/env.sh   # PIXELCNN_PYTHON: the PyTorch used by the checkpoint-interop spec
# precision 'auto' (the default) trains in bf16 on a CPU with native bf16: the
# suite pins it to fp32 so that its expected figures hold on any CI machine;
# the tests of 'auto' set PIXELCNN_AUTO_BF16 themselves.
export PIXELCNN_AUTO_BF16="${PIXELCNN_AUTO_BF16:-0}"
bash scripts/test-rust.sh
npx ava "$@"
