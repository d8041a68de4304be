#!/usr/bin/env bash
# `npm run test:package`: packs the release tarballs, installs them into a new
# project with no Rust toolchain on PATH, and there trains a tiny model,
# samples and writes a PNG; then checks that with no libtorch to be found the
# import fails with the documented message, not a dynamic-linker error.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
work="$(mktemp -d "${TMPDIR:-/tmp}/pixelcnn-package.XXXXXX")"
trap 'rm -rf "$work"' EXIT

bash scripts/release-pack.sh "$work/pack"
readelf -d "$work/pack/npm/linux-x64-gnu/pixelcnn.linux-x64-gnu.node" | grep -q -E 'RPATH|RUNPATH' &&
  { echo "FAIL: the release addon carries an rpath to this machine's libtorch" >&2; exit 1; }

# PATH without cargo/rustc, without the project's PyTorch environment.
clean_path="$(printf '%s' "$PATH" | tr ':' '\n' | grep -v -E '\.cargo|rustup|pixelcnn/torch-' | paste -sd: -)"
if PATH="$clean_path" command -v cargo >/dev/null || PATH="$clean_path" command -v rustc >/dev/null; then
  echo "FAIL: could not take the Rust toolchain off PATH" >&2; exit 1
fi
mkdir "$work/app"
cd "$work/app"
npm init -y >/dev/null
env -u VIRTUAL_ENV PATH="$clean_path" npm install --no-audit --no-fund --silent \
  "$work"/pack/pixelcnn-0.*.tgz "$work"/pack/pixelcnn-linux-x64-gnu-0.*.tgz
cat > app.js <<'JS'
const { PixelCNN, writeImageGrid, libtorchInfo } = require('pixelcnn')
const data = new Uint8Array(64 * 8 * 8).map((_, i) => (Math.floor(i / 8) % 2))
;(async () => {
  const model = await PixelCNN.train({
    data: { train: { count: 64, height: 8, width: 8, channels: 1, data } },
    model: { preset: 'small', height: 8, width: 8, filters: 8 }, epochs: 2, batchSize: 16, device: 'cpu',
  })
  const images = await model.sample({ count: 4, seed: 1 })
  await writeImageGrid(images, 'samples.png')
  console.log(`trained ${model.history.length} epochs, loss ${model.history[1].trainLoss.toFixed(3)}, sampled ${images.count}; libtorch threads ${libtorchInfo().threads}`)
})().catch((e) => { console.error(e); process.exit(1) })
JS
echo "== installed package, libtorch from the setup environment in the cache"
env -u VIRTUAL_ENV -u LIBTORCH -u LD_LIBRARY_PATH PATH="$clean_path" node app.js
test "$(head -c 4 samples.png | tail -c 3)" = "PNG" || { echo "FAIL: samples.png is not a PNG" >&2; exit 1; }

echo "== another libtorch-linked addon already in the process (the development build)"
env -u VIRTUAL_ENV -u LIBTORCH PATH="$clean_path" node -e "
  require('$root/native/pixelcnn.linux-x64-gnu.node')
  require('./app.js')"

echo "== no libtorch anywhere"
set +e
out="$(env -u VIRTUAL_ENV -u LIBTORCH -u PIXELCNN_LIBTORCH PATH="$clean_path" PIXELCNN_CACHE_DIR="$work/empty-cache" node app.js 2>&1)"
code=$?
set -e
echo "$out" | head -8
if [ $code -eq 0 ] || ! echo "$out" | grep -q 'npx pixelcnn setup' || echo "$out" | grep -q 'cannot open shared object'; then
  echo "FAIL: expected the documented LibtorchError naming \`npx pixelcnn setup\`" >&2; exit 1
fi
echo "package test passed"
