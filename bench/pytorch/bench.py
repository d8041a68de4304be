"""PyTorch eager running a pixelcnn network, measured the way bench/run.ts
measures the libtorch core: same network, same random binary inputs, warm-up
first, medians of several repetitions. Prints a JSON object on its last line.

--architecture pixelcnn (default): the seed preset, PixelCNN().
--architecture gated: the gated preset, GatedPixelCNN(filters=64, layers=6,
  inputKernel=7, kernel=3, outputLayers=2).
Both unconditional, 28x28x1.

usage: bench.py [--architecture pixelcnn|gated] [--threads N] [--device cpu|cuda]
                [--repeats N] [--sample-passes N] [--profile]"""

import argparse
import json
import resource
import statistics
import time

import torch

from pixelcnn_torch import GatedPixelCNN, PixelCNN

PRESETS = {
    "pixelcnn": lambda: PixelCNN(),
    "gated": lambda: GatedPixelCNN(filters=64, layers=6, inputKernel=7, kernel=3, outputLayers=2),
}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeats):
    fn()  # warm-up
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def random_binary(n, generator, device):
    return (torch.rand(n, 1, 28, 28, generator=generator) < 0.3).float().to(device)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--architecture", choices=sorted(PRESETS), default="pixelcnn")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sample-passes", type=int, default=20)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)

    result = {"architecture": args.architecture, "torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(device)}
    train_x = random_binary(128, gen, device)
    best = None
    for fmt_name, fmt in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
        model = PRESETS[args.architecture]().to(device).to(memory_format=fmt)
        opt = torch.optim.Adam(model.parameters(), lr=5e-4, eps=1e-7)
        x = train_x.to(memory_format=fmt)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), x)
            loss.backward()
            opt.step()

        seconds = timed(step, device, args.repeats)
        result[f"trainImagesPerSecond_{fmt_name}"] = 128 / seconds
        if best is None or 128 / seconds > best[1]:
            best = (fmt_name, 128 / seconds, model, x, step)
    result["trainImagesPerSecond"] = best[1]
    result["bestMemoryFormat"] = best[0]
    result["parameterCount"] = sum(p.numel() for p in best[2].parameters())

    model = best[2].eval()
    fmt = torch.channels_last if best[0] == "channels_last" else torch.contiguous_format
    x81 = random_binary(81, gen, device).to(memory_format=fmt)
    with torch.no_grad():
        forward = timed(lambda: model(x81), device, max(args.repeats, 5))
    result["forwardSeconds81"] = forward

    # The seed's naive sampling loop, for either architecture: one full
    # forward pass per pixel. Measured over `sample_passes` pixels and
    # extrapolated to all 784.
    with torch.no_grad():
        pixels = torch.zeros(81, 1, 28, 28, device=device).to(memory_format=fmt)
        sync(device)
        start = time.perf_counter()
        for i in range(args.sample_passes):
            r, c = divmod(i, 28)
            probs = torch.sigmoid(model(pixels)[:, 0, r, c])
            pixels[:, 0, r, c] = (torch.rand(81, device=device) < probs).float()
        sync(device)
        per_pass = (time.perf_counter() - start) / args.sample_passes
    result["sample81Seconds"] = per_pass * 784
    result["sampleExtrapolatedFromPasses"] = args.sample_passes

    if args.profile:
        model.train()
        step = best[4]
        step()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            step()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14))

    result["peakRssMiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


if __name__ == "__main__":
    main()
