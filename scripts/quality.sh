#!/usr/bin/env bash
# Quality side by side on what runs without a network: the bundled MNIST digits
# (9,003 / 997), the demo's recipe (Adam 1e-3, batch 128, seed 7) for the same
# number of epochs, for the seed network, Gated PixelCNN and a class-conditional
# Gated PixelCNN. Prints each run's history and test likelihood, and writes the
# training curves and sample grids (one row per class for the conditional model)
# into OUT (default quality/). Usage: bash scripts/quality.sh [EPOCHS] [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
epochs="${1:-5}"
out="${2:-quality}"
mkdir -p "$out"
bash scripts/ensure-built.sh >/dev/null
cli=(node dist/cli.js)
# fp32 explicitly: the default precision, auto, trains in bf16 on CPUs with native bf16, and the
# recorded quality figures are fp32 ones.
common=(--data mnist-bundled --epochs "$epochs" --batch-size 128 --learning-rate 1e-3 --seed 7 --device cpu --checkpoint-every 0 --precision fp32)
for run in "seed:--preset seed" "gated:--preset gated" "gated-conditional:--preset gated --conditional"; do
  name="${run%%:*}"
  read -r -a flags <<< "${run#*:}"
  echo "## $name (${flags[*]})"
  "${cli[@]}" train "${common[@]}" "${flags[@]}" --out "$out/$name.safetensors"
  "${cli[@]}" eval --model "$out/$name.safetensors" --data mnist-bundled
done
"${cli[@]}" sample --model "$out/gated-conditional.safetensors" --per-class 10 --seed 1 --out "$out/gated-conditional-per-class.png"
"${cli[@]}" sample --model "$out/gated.safetensors" --count 100 --seed 1 --out "$out/gated-samples.png"
"${cli[@]}" sample --model "$out/seed.safetensors" --count 100 --seed 1 --out "$out/seed-samples.png"
