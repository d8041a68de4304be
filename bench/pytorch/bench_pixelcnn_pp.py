"""PyTorch training and running PixelCNN++ (pixelcnn_pp_torch.PixelCNNPP), the
network of bench/pixelcnn-pp.ts, measured as that script measures this
library: the presets pixelcnn++-small (1 block, 32 filters, 5 mixtures) and
pixelcnn++ (the paper's CIFAR-10 network: 5 blocks, 160 filters, 10
mixtures), 32x32x3, weight normalisation, on random 8-bit RGB images drawn
by the same generator with the same seeds as the TS side (mulberry32, so the
very same batch), training batch 16 (the paper's per GPU), Adam (--lr, 5e-4;
bench/run.ts passes 1e-4 for the full preset, as the TS side uses there).

Dropout (p = 0.5) is part of training, as in the library and the paper:
nn.Dropout in every gated ResNet block after the second concat_elu, before
conv_out (pixelcnn_pp_torch's module is a reference for evaluation and has
none; `add_dropout` puts it there, the state dict is unchanged).

Configurations (--modes): `eager` (fp32), `compile` (torch.compile, default
mode), `bf16` (torch.autocast to bfloat16 around the forward pass and the
loss, PyTorch's AMP recipe) and `compile+bf16`. The bf16 ones are dropped
unless the CPU has native bf16 (avx512_bf16 or amx_bf16 in /proc/cpuinfo):
elsewhere autocast bf16 is emulated and says nothing. Each: a warm-up step
(for compile: the compilation, reported as firstStepSeconds; with a
work-around for an inductor bug that otherwise fails to compile this
network, see work_around_inductor_fusion_bug), then --steps steps timed one
by one (median: steady state); then in eval mode one
forward pass of 64 images plus the mixture log-likelihood (what the
library's logProbs computes; median of --forward-repeats after a warm-up).
The naive sampler is 1024 such passes (one per pixel; the mixture draws the
3 channels of a pixel at once), reported as sample64Seconds, extrapolated.

Each mode runs in every memory format of --formats (default both, NCHW and
channels-last), in one process, and the one that trains faster is kept
(modes[mode], with its memoryFormat; each format's own under mode/format);
peakRssMiB is the process's, over both.

Prints a JSON object on its last line.

usage: bench_pixelcnn_pp.py [--preset pixelcnn++-small|pixelcnn++] [--threads N] [--device cpu|cuda]
                            [--steps N] [--lr LR] [--forward-warmup N] [--forward-repeats N] [--modes eager,compile,bf16,compile+bf16]
                            [--formats contiguous,channels_last]"""

import argparse
import json
import resource
import statistics
import time

import torch
from torch import nn

from pixelcnn_pp_torch import GatedResnet, PixelCNNPP, concat_elu
from pixelcnn_torch import mixture_log_prob, network_input

PRESETS = {
    "pixelcnn++": dict(filters=160, resnetBlocks=5, mixtures=10),
    "pixelcnn++-small": dict(filters=32, resnetBlocks=1, mixtures=5),
}
BATCH = 16
SAMPLES = 64
DROPOUT = 0.5


def mulberry32(seed):
    """src/data/binarize.ts's generator, value for value."""
    a = seed & 0xFFFFFFFF
    mask = 0xFFFFFFFF

    def imul(x, y):
        return (x * y) & mask

    def draw():
        nonlocal a
        a = (a + 0x6D2B79F5) & mask
        t = a
        t = imul(t ^ (t >> 15), t | 1)
        t ^= (t + imul(t ^ (t >> 7), t | 61)) & mask
        return ((t ^ (t >> 14)) & mask) / 4294967296

    return draw


def random_rgb(count, seed):
    """The TS side's randomRgb(count, seed): count x 32 x 32 x 3 bytes, as (N, 3, 32, 32) floats 0-255."""
    draw = mulberry32(seed)
    data = torch.tensor([int(draw() * 256) for _ in range(count * 32 * 32 * 3)], dtype=torch.float32)
    return data.view(count, 32, 32, 3).permute(0, 3, 1, 2).contiguous()


class DropoutGatedResnet(GatedResnet):
    """GatedResnet with dropout on concat_elu(c), as the library's pixelcnn_pp.rs Block."""

    def forward(self, x, a=None, labels=None):
        c = self.conv_input(concat_elu(x))
        if a is not None:
            c = c + self.nin_skip(concat_elu(a))
        c2 = self.conv_out(self.dropout(concat_elu(c)))
        if labels is not None:
            c2 = c2 + self.class_bias[labels][:, :, None, None]
        f = x.shape[1]
        return x + c2[:, :f] * torch.sigmoid(c2[:, f:])


def add_dropout(model, p):
    for module in model.modules():
        if type(module) is GatedResnet:
            module.__class__ = DropoutGatedResnet
            module.dropout = nn.Dropout(p)
    return model


def build(preset):
    torch.manual_seed(0)
    config = PRESETS[preset]
    model = PixelCNNPP(height=32, width=32, channels=3, output="logistic-mixture", mixtures=config["mixtures"],
                       filters=config["filters"], resnetBlocks=config["resnetBlocks"], weightNorm=True)
    return add_dropout(model, DROPOUT), config["mixtures"]


def work_around_inductor_fusion_bug():
    """torch 2.11's inductor fails on this network on the CPU: CppScheduling.fuse
    asserts `vars1 == vars2` ((16, 1024, 32) against (16, 32, 1024), apparently the Nin
    layers' permute, linear, permute back beside a convolution's output:
    loops of equal size and different shapes), the assertion of the open
    pytorch/pytorch#195963 (a fused node's loop ranges recomputed, its stale
    grouping kept). Turning off only that kind of fusion (nodes of
    different but compatible loop ranges, no reduction) compiles it; every
    other fusion stays. Returns what was patched."""
    from torch._inductor.codegen.cpp import CppScheduling
    CppScheduling._can_fuse_nodes_with_compatible_ranges = lambda self, node1, node2: False
    return "CppScheduling._can_fuse_nodes_with_compatible_ranges -> False (pytorch/pytorch#195963)"


def native_bf16():
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def each_timed(fn, device, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def measure(mode, preset, fmt, x, x64, device, args):
    parts = set(mode.split("+"))
    try:
        model, k = build(preset)
        model = model.to(device).to(memory_format=fmt)
        opt = torch.optim.Adam(model.parameters(), lr=args.lr)
        workaround = work_around_inductor_fusion_bug() if "compile" in parts else None
        run = torch.compile(model) if "compile" in parts else model
        xs = x.to(device).to(memory_format=fmt)
        target = network_input("logistic-mixture", xs)
        amp = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled="bf16" in parts)

        def step():
            opt.zero_grad(set_to_none=True)
            with amp():
                out = run(xs)
                loss = -mixture_log_prob(out.float(), target, k).mean()
            loss.backward()
            opt.step()

        model.train()
        first = each_timed(step, device, 1)[0]  # warm-up; for compile, the compilation
        cpu, wall = time.process_time(), time.perf_counter()
        steps = each_timed(step, device, args.steps)
        cpu_per_wall = (time.process_time() - cpu) / (time.perf_counter() - wall)
        result = {"trainImagesPerSecond": BATCH / statistics.median(steps), "stepSeconds": steps, "firstStepSeconds": first,
                  "trainCpuPerWall": cpu_per_wall, "workaround": workaround, "parameterCount": sum(p.numel() for p in model.parameters())}
        if args.forward_repeats > 0:
            model.eval()
            inputs = x64.to(device).to(memory_format=fmt)
            target64 = network_input("logistic-mixture", inputs)

            def forward():
                with torch.no_grad(), amp():
                    return mixture_log_prob(run(inputs).float(), target64, k)

            if args.forward_warmup > 0:  # for compile, the compilation of the eval graph
                result["forwardFirstSeconds"] = each_timed(forward, device, args.forward_warmup)[0]
            times = each_timed(forward, device, args.forward_repeats)
            result["forwardSeconds64"] = statistics.median(times)
            result["forwardTimes"] = times
            # The naive loop: one full forward pass of the 64 images per pixel.
            result["sample64Seconds"] = result["forwardSeconds64"] * 32 * 32
        return result
    except Exception as error:  # noqa: BLE001 - a benchmark row, not a crash
        return {"error": f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", choices=sorted(PRESETS), default="pixelcnn++-small")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--lr", type=float, default=5e-4, help="Adam's step size (bench/run.ts: 1e-4 for the full preset, as the TS side)")
    parser.add_argument("--forward-repeats", type=int, default=3)
    parser.add_argument("--forward-warmup", type=int, default=1)
    parser.add_argument("--modes", default="eager,compile,bf16,compile+bf16")
    parser.add_argument("--formats", default="contiguous,channels_last", help="memory formats to try, each mode in each: contiguous, channels_last (the faster training one is kept)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    x = random_rgb(BATCH, 1)  # bench/pixelcnn-pp.ts: randomRgb(16, 1) is its training batch
    x64 = random_rgb(SAMPLES, 3)
    bf16 = device.type == "cuda" or native_bf16()
    modes = [m for m in args.modes.split(",") if m]
    skipped = [m for m in modes if "bf16" in m and not bf16]
    modes = [m for m in modes if m not in skipped]

    result = {"preset": args.preset, "torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(device),
              "batchSize": BATCH, "nativeBf16": bf16, "skippedModes": skipped, "dropout": DROPOUT, "modes": {}}
    formats = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
    for mode in modes:
        best = None
        for name in [f for f in args.formats.split(",") if f]:
            r = measure(mode, args.preset, formats[name], x, x64, device, args)
            result["modes"][f"{mode}/{name}"] = r
            if "error" not in r and (best is None or r["trainImagesPerSecond"] > best[1]["trainImagesPerSecond"]):
                best = (name, r)
        result["modes"][mode] = {**best[1], "memoryFormat": best[0]} if best else r
    result["peakRssMiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


if __name__ == "__main__":
    main()
