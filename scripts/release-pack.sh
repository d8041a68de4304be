#!/usr/bin/env bash
# `npm run release:pack [OUT]`: the release layout as `npm pack` tarballs in OUT
# (default target/release-pack):
# - pixelcnn-<version>.tgz: the TypeScript API (dist/), the generated loader
#   (native/index.js), the libtorch setup script; optionalDependencies on the
#   per-platform packages, as napi-rs packages are published;
# - pixelcnn-linux-x64-gnu-<version>.tgz: the prebuilt addon, linked without an
#   rpath: libtorch is found and preloaded at run time (src/libtorch.ts).
# The other declared targets (package.json napi.targets) get their package
# folders too; only linux-x64-gnu can be built and packed on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
out="$(mkdir -p "${1:-target/release-pack}" && cd "${1:-target/release-pack}" && pwd)"
rm -rf "$out"/{build,npm,pixelcnn,*.tgz}
source scripts/env.sh
npx tsc -p tsconfig.json
PIXELCNN_RPATH=0 npx napi build --platform --release -p pixelcnn-node \
  --manifest-path crates/pixelcnn-node/Cargo.toml --package-json-path package.json \
  --output-dir "$out/build" --no-js --dts index.d.ts >&2
cp package.json "$out/package.json"
(cd "$out" && npx --prefix "$root" napi create-npm-dirs --npm-dir npm >&2)
rm "$out/package.json"
cp "$out/build/pixelcnn.linux-x64-gnu.node" "$out/npm/linux-x64-gnu/"

mkdir -p "$out/pixelcnn/native" "$out/pixelcnn/scripts"
cp -r dist "$out/pixelcnn/"
cp native/index.js native/index.d.ts "$out/pixelcnn/native/"
cp scripts/setup-libtorch.sh "$out/pixelcnn/scripts/"
cp README.md "$out/pixelcnn/"
node -e '
  const fs = require("fs")
  const [root, out] = process.argv.slice(1)
  const pkg = JSON.parse(fs.readFileSync(root + "/package.json", "utf8"))
  const platforms = fs.readdirSync(out + "/npm")
  const release = {
    name: pkg.name, version: pkg.version, description: pkg.description, license: pkg.license,
    main: pkg.main, types: pkg.types, bin: pkg.bin, engines: pkg.engines, files: pkg.files,
    dependencies: pkg.dependencies,
    optionalDependencies: Object.fromEntries(platforms.map((p) => [`${pkg.name}-${p}`, pkg.version])),
    napi: pkg.napi,
  }
  fs.writeFileSync(out + "/pixelcnn/package.json", JSON.stringify(release, null, 2) + "\n")
' "$root" "$out"
(cd "$out" && npm pack --silent ./pixelcnn ./npm/linux-x64-gnu >/dev/null)
ls -l "$out"/*.tgz | awk '{ printf "%s\t%.1f MB\n", $NF, $5 / 1e6 }'
