#!/usr/bin/env bash
# The CUDA check, in two steps (see ../shared/GPU.md for the device machine):
#   bash scripts/gpu-check.sh pack
#       here: builds .gpu/ with what must travel (the addon, the check bundled
#       into one JS file, the PyTorch script, this machine's node, xz-compressed);
#   bash scripts/gpu-check.sh run [--device cuda] [--quick]
#       there (or here with --device cpu as a dry run): CPU-vs-device agreement
#       of predict and of the samplers, then training and sampling speed, peak
#       GPU memory, the same in bf16, and PyTorch eager (fp32, autocast bf16,
#       torch.compile) on the same model in the same call; data-parallel
#       training over NCCL (1 rank on cuda:0; 2 ranks, one GPU each, where
#       there are 2 GPUs), each rank a child process whose failure is a row.
#       Prints one short table; full logs go to $OUT.
# With the device tool: run(command: "bash scripts/gpu-check.sh run", carry: [".gpu"]).
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-}"; shift || true

if [ "$mode" = pack ]; then
  bash scripts/ensure-built.sh
  rm -rf .gpu && mkdir -p .gpu
  cp native/pixelcnn.linux-x64-gnu.node .gpu/
  npx esbuild bench/gpu-check.ts --bundle --platform=node --target=node20 --log-level=warning \
    --external:*.node --outfile=.gpu/gpu-check.js
  sed -i "s#require(\"./pixelcnn.linux-x64-gnu.node\")#require(__dirname + \"/pixelcnn.linux-x64-gnu.node\")#g" .gpu/gpu-check.js
  xz -T2 -c "$(command -v node)" > .gpu/node.xz
  du -sh .gpu
  exit 0
fi
[ "$mode" = run ] || { echo "usage: $0 pack | run [--device cuda] [--quick]" >&2; exit 2; }

device=cuda; quick=""
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --quick) quick=--quick; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
OUT="${OUT:-$(mktemp -d)}"; export OUT
node_bin="$(command -v node || true)"
if [ -z "$node_bin" ]; then
  xz -d -c .gpu/node.xz > .gpu/node && chmod +x .gpu/node
  node_bin=.gpu/node
fi
python_bin="${PIXELCNN_PYTHON:-python3}"
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
  "$python_bin" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' || true
} > "$OUT/machine.txt" 2>&1
mem_pid=""
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$OUT/gpu-memory.log" &
  mem_pid=$!
fi
PIXELCNN_PYTHON_FOR_TORCH="$python_bin" "$node_bin" .gpu/gpu-check.js --device "$device" $quick > "$OUT/pixelcnn.log" 2>&1
torch_args=(--device "$device" --modes compile,bf16,compile+bf16)
[ -n "$quick" ] && torch_args+=(--repeats 1 --sample-passes 2)
"$python_bin" bench/pytorch/bench.py "${torch_args[@]}" > "$OUT/pytorch.log" 2>&1
[ -n "$mem_pid" ] && kill "$mem_pid"
"$node_bin" -e '
  const fs = require("fs"), out = process.env.OUT
  const last = (f) => JSON.parse(fs.readFileSync(`${out}/${f}`, "utf8").trim().split("\n").pop())
  const ours = last("pixelcnn.log"), torch = last("pytorch.log")
  let peak = "n/a"
  try { peak = Math.max(...fs.readFileSync(`${out}/gpu-memory.log`, "utf8").trim().split("\n").map(Number)) + " MiB (whole GPU, both runs)" } catch {}
  const nccl = (r) => r === undefined ? "–" : r.skipped ? "skipped: " + r.skipped : r.error ? "failed: " + r.error.replace(/[|\n]/g, " ") : f(r.imagesPerSecond, 1)
  const f = (x, d = 2) => typeof x === "number" ? (Number.isFinite(x) ? x.toFixed(d) : "–") : x === undefined ? "–" : String(x)
  const rows = [
    ["predict: largest CPU-vs-device probability difference", f(ours.predictMaxDiff, 7), "≤ 1e-4"],
    ["fast sampler = reference sampler (same draws)", ours.fastEqualsReference, "true"],
    ["gated, 10 classes: largest CPU-vs-device probability difference", f(ours.gatedpredictMaxDiff, 7), "≤ 1e-4"],
    ["gated, 10 classes: fast sampler = reference sampler", ours.gatedfastEqualsReference, "true"],
    ["training images/s, seed preset, batch 128", f(ours.trainImagesPerSecond, 1), `PyTorch eager: ${f(torch.trainImagesPerSecond, 1)} (${f(ours.trainImagesPerSecond / torch.trainImagesPerSecond)}×)`],
    ["training images/s, gated preset, batch 128", f(ours.gatedTrainImagesPerSecond, 1), ""],
    ["60,000-image epoch (s)", f(ours.epochSeconds60k, 1), "target ≤ 5"],
    ["sampling 81 images (s)", f(ours.sample81Seconds, 3), `PyTorch naive loop: ${f(torch.sample81Seconds, 1)} (extrapolated)`],
    ["sampling 10,000 images (s)", f(ours.sample10000Seconds ?? ours.sample256Seconds, 2), ours.sample10000Seconds ? "target ≤ 10" : "(--quick: 256 images)"],
    ["bf16: largest probability difference from fp32 (on the device)", ours.bf16Error ? "failed: " + ours.bf16Error : f(ours.bf16PredictMaxDiff, 5), "≤ 0.01 on CPU"],
    ["bf16 training images/s, seed preset", f(ours.bf16TrainImagesPerSecond, 1), `${f(ours.bf16TrainImagesPerSecond / ours.trainImagesPerSecond)}× fp32; PyTorch autocast bf16: ${f(torch.modes?.bf16?.trainImagesPerSecond, 1)}`],
    ["bf16 training images/s, gated preset", f(ours.bf16GatedTrainImagesPerSecond, 1), `${f(ours.bf16GatedTrainImagesPerSecond / ours.gatedTrainImagesPerSecond)}× fp32`],
    ["bf16 sampling 10,000 images (s)", f(ours.bf16SampleManySeconds, 2), ""],
    ["PyTorch torch.compile fp32 / compile+bf16, images/s", `${f(torch.modes?.compile?.trainImagesPerSecond, 1)} / ${f(torch.modes?.["compile+bf16"]?.trainImagesPerSecond, 1)}`, "seed preset"],
    ["pixelcnn++-small: largest CPU-vs-device log-probability difference", ours.ppError ? "failed: " + ours.ppError.replace(/[|\n]/g, " ") : f(ours.ppLogProbsMaxDiff, 6), "≤ 1e-3"],
    ["pixelcnn++ (8×8): fast sampler = reference sampler", ours.ppFastEqualsReference, "true"],
    ["training images/s, pixelcnn++-small / pixelcnn++, 32×32×3, batch 16", `${f(ours.ppSmallTrainImagesPerSecond, 1)} / ${f(ours.ppTrainImagesPerSecond, 1)}`, ""],
    ["sampling 64 images of 32×32×3 (s), pixelcnn++-small / pixelcnn++", `${f(ours.ppSmallSample64Seconds, 2)} / ${f(ours.ppSample64Seconds, 2)}`, ""],
    ["peak GPU memory", peak, ""],
    ["NCCL, 1 rank on the device: training images/s, seed preset, batch 128", nccl(ours.ncclWorld1), ours.ncclWorld1?.imagesPerSecond ? `${f(ours.ncclWorld1.imagesPerSecond / ours.trainImagesPerSecond)}× no group` : ""],
    ["NCCL, 2 ranks (cuda:0, cuda:1): training images/s, global batch 128", nccl(ours.ncclWorld2), ours.ncclWorld2?.imagesPerSecond ? `${f(ours.ncclWorld2.imagesPerSecond / ours.trainImagesPerSecond)}× one GPU alone` : ""],
  ]
  console.log(`| ${process.argv[1]} | pixelcnn | note |\n|---|---:|---|`)
  for (const r of rows) console.log(`| ${r.join(" | ")} |`)
' "$device" | tee "$OUT/table.md"
