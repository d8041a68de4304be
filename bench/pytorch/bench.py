"""PyTorch eager running a pixelcnn network, measured the way bench/run.ts
measures the libtorch core: same network, same random binary inputs, warm-up
first, medians of several repetitions. Prints a JSON object on its last line.

--architecture pixelcnn (default): the seed preset, PixelCNN().
--architecture gated: the gated preset, GatedPixelCNN(filters=64, layers=6,
  inputKernel=7, kernel=3, outputLayers=2).
Both unconditional, 28x28x1.

usage: bench.py [--architecture pixelcnn|gated] [--threads N] [--device cpu|cuda]
                [--repeats N] [--sample-passes N] [--profile] [--modes compile,bf16,compile+bf16]"""

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


def measure_mode(name, args, fmt, train_x, device):
    """Training images/s and forward seconds (batch 81) of one configuration:
    `compile` (torch.compile, default mode), `bf16` (torch.autocast to
    bfloat16 around the forward pass and the loss, as PyTorch's AMP recipe
    does), or both, e.g. `compile+bf16`. Errors are reported, not raised."""
    parts = set(name.split("+"))
    try:
        torch.manual_seed(0)
        model = PRESETS[args.architecture]().to(device).to(memory_format=fmt)
        opt = torch.optim.Adam(model.parameters(), lr=5e-4, eps=1e-7)
        run = torch.compile(model) if "compile" in parts else model
        x = train_x.to(memory_format=fmt)
        amp = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled="bf16" in parts)

        def step():
            opt.zero_grad(set_to_none=True)
            with amp():
                loss = torch.nn.functional.binary_cross_entropy_with_logits(run(x).float(), x)
            loss.backward()
            opt.step()

        compile_started = time.perf_counter()
        step()  # compiles, if compiling
        compile_seconds = time.perf_counter() - compile_started
        train = 128 / timed(step, device, args.repeats)
        x81 = random_binary(81, torch.Generator().manual_seed(1), device).to(memory_format=fmt)
        with torch.no_grad(), amp():
            run(x81)
            forward = timed(lambda: run(x81), device, max(args.repeats, 5))
        return {"trainImagesPerSecond": train, "forwardSeconds81": forward, "firstStepSeconds": compile_seconds}
    except Exception as error:  # noqa: BLE001 - a benchmark row, not a crash
        return {"error": f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"}


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
    parser.add_argument("--modes", default="", help="comma-separated extra configurations: compile, bf16, compile+bf16")
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

    if args.modes.strip(","):
        fmt = torch.channels_last if best[0] == "channels_last" else torch.contiguous_format
        result["modes"] = {name: measure_mode(name, args, fmt, train_x, device) for name in args.modes.split(",") if name}

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
