"""PyTorch eager training the CIFAR-shaped network of bench/cifar.ts: 32x32x3,
Gated PixelCNN (64 filters, 6 layers, inputKernel 7, kernel 3, outputLayers 2)
with PixelCNN++'s 10-component logistic mixture, on random 8-bit RGB images,
batch 32, Adam; warm-up, then the median of several steps. The loss is the
float32 mixture likelihood of pixelcnn_torch (the published formula). Prints a
JSON object on its last line.

With --shape prior, the prior-shaped network of bench/cifar.ts instead: the
same gated stacks over a 32x32 grid of 512 tokens read through an embedding
of 64, a categorical over the tokens, on random tokens.

With --bf16, the forward pass and the loss under torch.autocast to bfloat16
(PyTorch's mixed-precision recipe), training and the forward pass alike.

usage: bench_cifar.py [--threads N] [--device cpu|cuda] [--repeats N] [--shape cifar|prior] [--bf16]"""

import argparse
import json
import resource

import torch

from bench import timed
from pixelcnn_torch import GatedPixelCNN, log_probs, mixture_log_prob, network_input

MODEL = dict(height=32, width=32, channels=3, filters=64, layers=6, inputKernel=7, kernel=3,
             outputLayers=2, output="logistic-mixture", mixtures=10)
PRIOR_MODEL = dict(height=32, width=32, channels=1, filters=64, layers=6, inputKernel=7, kernel=3,
                   outputLayers=2, output="categorical", vocabulary=512, embedding=64)
BATCH = 32


def mixture_nll(model, xs):
    return -mixture_log_prob(model(xs), network_input("logistic-mixture", xs), 10)


def token_nll(model, xs):
    return -log_probs(model, xs)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shape", choices=("cifar", "prior"), default="cifar")
    parser.add_argument("--bf16", action="store_true")
    args = parser.parse_args()
    prior = args.shape == "prior"
    spec, nll = (PRIOR_MODEL, token_nll) if prior else (MODEL, mixture_nll)
    channels, levels = (1, 512) if prior else (3, 256)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    x = torch.randint(0, levels, (BATCH, channels, 32, 32), generator=gen).float().to(device)
    x64 = torch.randint(0, levels, (64, channels, 32, 32), generator=gen).float().to(device)

    result = {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(device), "batchSize": BATCH}
    best = None
    for name, fmt in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
        model = GatedPixelCNN(**spec).to(device).to(memory_format=fmt)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        xs = x.to(memory_format=fmt)

        def step():
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
                loss = nll(model, xs).float().mean()
            loss.backward()
            opt.step()

        rate = BATCH / timed(step, device, args.repeats)
        result[f"trainImagesPerSecond_{name}"] = rate
        if best is None or rate > best[1]:
            best = (name, rate, model, fmt)
    result["trainImagesPerSecond"] = best[1]
    result["memoryFormat"] = best[0]
    model, fmt = best[2].eval(), best[3]
    result["parameterCount"] = sum(p.numel() for p in model.parameters())
    inputs = x64.to(memory_format=fmt)
    with torch.no_grad():
        def forward():
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
                return nll(model, inputs)

        result["forwardSeconds64"] = timed(forward, device, args.repeats)
    result["bf16"] = args.bf16
    result["peakRssMiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


if __name__ == "__main__":
    main()
