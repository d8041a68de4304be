#!/usr/bin/env bash
# The core's Rust tests: causality, sampler equivalence, learning, checkpoints.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo test --release -p pixelcnn-core "$@"
