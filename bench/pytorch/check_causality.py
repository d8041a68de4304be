"""Checks the PyTorch modules' receptive fields and parameter counts; exits
non-zero on any failure.

- GatedPixelCNN (unconditional and with 3 classes) on a 9x9 image: the logit
  of pixel i depends on every pixel j < i in raster order (no blind spot) and
  on no pixel j >= i (causal).
- PixelCNN (the seed architecture) on the same image: causal (it has a blind
  spot by design, reported but not an error).
- Conditional models: the labels change the logits once the class biases are
  nonzero, and those biases start at zero.
- Parameter counts: seed PixelCNN() = 532,673; the gated preset = 553,793.

usage: check_causality.py"""

import sys

import torch

from pixelcnn_torch import GatedPixelCNN, PixelCNN

SIZE = 9
failures = []


def check(ok, message):
    print(("ok    " if ok else "FAIL  ") + message)
    if not ok:
        failures.append(message)


def dependencies(model, labels=None, images=4):
    """deps[i, j]: whether the logit of pixel i has a nonzero gradient with
    respect to input pixel j in at least one of `images` random images
    (several images so that a ReLU that happens to be off at one pixel of one
    image cannot hide a real connection)."""
    generator = torch.Generator().manual_seed(1)
    x = (torch.rand(images, 1, SIZE, SIZE, generator=generator, dtype=torch.float64) < 0.5).double()
    x.requires_grad_(True)
    logits = model(x, labels).reshape(images, SIZE * SIZE)
    deps = torch.zeros(SIZE * SIZE, SIZE * SIZE, dtype=torch.bool)
    for i in range(SIZE * SIZE):
        # Image n's logits depend only on image n, so one backward pass of the
        # sum over images gives every image's gradient at once.
        (grad,) = torch.autograd.grad(logits[:, i].sum(), x, retain_graph=True)
        deps[i] = (grad.reshape(images, SIZE * SIZE) != 0).any(dim=0)
    return deps


def check_receptive_field(name, model, labels=None, blind_spot_allowed=False):
    deps = dependencies(model, labels)
    past = torch.ones(SIZE * SIZE, SIZE * SIZE, dtype=torch.bool).tril(diagonal=-1)  # j < i
    leaks = (deps & ~past).nonzero().tolist()
    check(not leaks, f"{name}: causal (logit i depends on no pixel j >= i)"
          + (f"; first leaks (i, j): {leaks[:5]}" if leaks else ""))
    blind = (past & ~deps).nonzero().tolist()
    if blind_spot_allowed:
        print(f"info  {name}: {len(blind)} of {int(past.sum())} (i, j < i) pairs not reached (blind spot or beyond the receptive field)")
    else:
        check(not blind, f"{name}: no blind spot (logit i depends on every pixel j < i)"
              + (f"; {len(blind)} missing, first (i, j): {blind[:5]}" if blind else ""))


def check_conditioning(name, model, classes):
    biases = [p for n, p in model.named_parameters() if n.endswith("class_bias")]
    check(bool(biases) and all(bool((p == 0).all()) for p in biases), f"{name}: class biases exist and start at zero")
    x = (torch.rand(classes, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(2)) < 0.5).double()
    x = x[:1].expand(classes, -1, -1, -1)  # one image under every label
    with torch.no_grad():
        for p in biases:
            p.normal_(0, 0.5)
        logits = model(x, torch.arange(classes))
    differs = all(not torch.equal(logits[0], logits[k]) for k in range(1, classes))
    check(differs, f"{name}: different labels give different logits")


def count(model):
    return sum(p.numel() for p in model.parameters())


torch.manual_seed(0)
small = dict(height=SIZE, width=SIZE, filters=8, layers=3, inputKernel=7, kernel=7)
check_receptive_field("gated", GatedPixelCNN(**small).double())
labels = torch.tensor([0, 1, 2, 1])
gated_conditional = GatedPixelCNN(**small, classes=3).double()
check_receptive_field("gated, 3 classes", gated_conditional, labels)
check_conditioning("gated, 3 classes", gated_conditional, 3)

seed_small = dict(height=SIZE, width=SIZE, filters=8, residualBlocks=2, inputKernel=7, residualKernel=3)
check_receptive_field("pixelcnn", PixelCNN(**seed_small).double(), blind_spot_allowed=True)
pixelcnn_conditional = PixelCNN(**seed_small, classes=3).double()
check_receptive_field("pixelcnn, 3 classes", pixelcnn_conditional, labels, blind_spot_allowed=True)
check_conditioning("pixelcnn, 3 classes", pixelcnn_conditional, 3)

seed = count(PixelCNN())
check(seed == 532_673, f"seed PixelCNN() has {seed:,} parameters (expected 532,673)")
gated = count(GatedPixelCNN(filters=64, layers=6, inputKernel=7, kernel=3, outputLayers=2))
check(gated == 553_793, f"gated preset has {gated:,} parameters (expected 553,793)")
print(f"info  with 10 classes: seed {count(PixelCNN(classes=10)):,}, "
      f"gated {count(GatedPixelCNN(filters=64, layers=6, inputKernel=7, kernel=3, outputLayers=2, classes=10)):,}")

if failures:
    print(f"{len(failures)} check(s) failed", file=sys.stderr)
    sys.exit(1)
print("all checks passed")
