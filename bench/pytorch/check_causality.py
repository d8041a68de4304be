"""Checks the PyTorch modules' receptive fields and parameter counts; exits
non-zero on any failure.

- GatedPixelCNN (unconditional and with 3 classes) on a 9x9 image: the logit
  of pixel i depends on every pixel j < i in raster order (no blind spot) and
  on no pixel j >= i (causal).
- PixelCNN (the seed architecture) on the same image: causal (it has a blind
  spot by design, reported but not an error).
- Colour models (channels 3, both architectures, each output kind, on an
  8x7 image with every weight and bias perturbed, masked taps included):
  Bernoulli and categorical predict sub-pixel by sub-pixel, so the outputs of
  sub-pixel (pixel i, channel c) depend on every channel of the pixels
  before i and on the channels before c of pixel i, nothing else; the
  logistic mixture's outputs at pixel i depend only on the pixels before i.
  Gated: every allowed input reached; seed: every allowed input of the same
  pixel reached (its blind spot is elsewhere).
- Conditional models: the labels change the logits once the class biases are
  nonzero, and those biases start at zero.
- PixelCNNPP (architecture "pixelcnn++") on 8x8 and 12x8 images, every
  parameter perturbed: grayscale, colour (Bernoulli and categorical with the
  masked pixel_link, sub-pixel by sub-pixel; the mixture, whole pixels),
  with and without weight norm, and with 3 classes: causal and no blind spot.
- Parameter counts: seed PixelCNN() = 532,673; the gated preset = 553,793;
  PixelCNN++ for CIFAR-10 (32x32x3, R=5, F=160, K=10, weight norm) =
  53,659,080, as the port pclucas14/pixel-cnn-pp's PixelCNN() counts.

usage: check_causality.py"""

import sys

import torch

from pixelcnn_pp_torch import PixelCNNPP
from pixelcnn_torch import GatedPixelCNN, PixelCNN

SIZE = 9
failures = []


def check(ok, message):
    print(("ok    " if ok else "FAIL  ") + message)
    if not ok:
        failures.append(message)


def raster(t):
    """(N, C, H, W) -> (N, H*W*C): sub-pixel (pixel i, channel c) at i*C + c."""
    return t.permute(0, 2, 3, 1).reshape(t.shape[0], -1)


def dependencies(model, labels=None, images=4, height=SIZE, width=SIZE):
    """deps[u, v]: whether output unit u has a nonzero gradient with respect
    to input sub-pixel v (raster order, channels fastest) in at least one of
    `images` random images (several images so that a ReLU that happens to be
    off at one pixel of one image cannot hide a real connection). An output
    unit is one sub-pixel's outputs (pixel i, group s at i*G + s: the outC/G
    output channels of channel s) for a model with G = 3 channel groups, and
    all outputs of pixel i for one group; the unit's outputs are summed."""
    generator = torch.Generator().manual_seed(1)
    shape = (images, model.channels, height, width)
    if model.output_kind == "bernoulli":
        x = (torch.rand(shape, generator=generator, dtype=torch.float64) < 0.5).double()
    else:
        x = torch.randint(0, 256, shape, generator=generator).double()
    x.requires_grad_(True)
    out = model(x, labels)  # (N, outC, H, W), outC = G * per-unit outputs
    units = raster(out.unflatten(1, (model.groups, -1)).sum(dim=2))
    deps = torch.zeros(units.shape[1], x[0].numel(), dtype=torch.bool)
    for u in range(units.shape[1]):
        # Image n's outputs depend only on image n, so one backward pass of the
        # sum over images gives every image's gradient at once.
        (grad,) = torch.autograd.grad(units[:, u].sum(), x, retain_graph=True)
        deps[u] = (raster(grad) != 0).any(dim=0)
    return deps


def allowed(model, height=SIZE, width=SIZE):
    """allowed[u, v]: output unit u (see `dependencies`) may read input
    sub-pixel v: v's pixel is before u's in raster order, or with three
    groups the same pixel and an earlier channel. With one channel that is
    pixel j < i."""
    g, c = model.groups, model.channels
    u = torch.arange(height * width * g)[:, None]
    v = torch.arange(height * width * c)[None, :]
    pixel_u, pixel_v = u // g, v // c
    # With one group u % g is 0: no channel is earlier, whole pixels only.
    return (pixel_v < pixel_u) | ((pixel_v == pixel_u) & (v % c < u % g))


def check_receptive_field(name, model, labels=None, blind_spot_allowed=False, height=SIZE, width=SIZE, images=4):
    deps = dependencies(model, labels, images, height, width)
    past = allowed(model, height, width)
    what = "output" if model.channels > 1 else "logit"
    leaks = (deps & ~past).nonzero().tolist()
    check(not leaks, f"{name}: causal ({what} i depends on no input j it must not)"
          + (f"; first leaks (i, j): {leaks[:5]}" if leaks else ""))
    blind = (past & ~deps).nonzero().tolist()
    if blind_spot_allowed:
        print(f"info  {name}: {len(blind)} of {int(past.sum())} allowed (i, j) pairs not reached (blind spot or beyond the receptive field)")
        if model.groups > 1:
            # The seed's blind spot is up and to the right; inside the pixel
            # every earlier channel must be read.
            pixel_u = torch.arange(past.shape[0])[:, None] // model.groups
            pixel_v = torch.arange(past.shape[1])[None, :] // model.channels
            same = past & (pixel_u == pixel_v)
            missing = (same & ~deps).nonzero().tolist()
            check(not missing, f"{name}: each sub-pixel reads every earlier channel of its pixel"
                  + (f"; {len(missing)} missing, first (i, j): {missing[:5]}" if missing else ""))
    else:
        check(not blind, f"{name}: no blind spot ({what} i depends on every allowed input j)"
              + (f"; {len(blind)} missing, first (i, j): {blind[:5]}" if blind else ""))


def perturbed(model):
    """The model with every parameter redrawn, masked taps and class biases
    included: the masks, not the weights' values, must cut what is cut."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            # Small biases: a ReLU whose bias is far below zero in every image
            # would hide a real connection of these narrow test networks.
            p.normal_(0, 0.3 if name.endswith(("weight", "weight_g", "weight_v")) else 0.05)
    return model


def check_conditioning(name, model, classes, height=SIZE, width=SIZE):
    biases = [p for n, p in model.named_parameters() if n.endswith("class_bias")]
    check(bool(biases) and all(bool((p == 0).all()) for p in biases), f"{name}: class biases exist and start at zero")
    x = (torch.rand(classes, 1, height, width, generator=torch.Generator().manual_seed(2)) < 0.5).double()
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

# Colour: 8x7 (not square, so a swapped height and width shows), a reach
# that covers the image (gated: 3 + 2*2 columns), 8 images and 8 channels a
# group (4 in the masked convs) so that a group's ReLUs cannot all be off,
# each model seeded on its own so its weights do not depend on the order of
# the checks.
COLOUR = dict(height=8, width=7, channels=3, filters=24, outputLayers=2)
for output, extra in (("bernoulli", {}), ("categorical", {}), ("logistic-mixture", {"mixtures": 4})):
    torch.manual_seed(3)
    gated_colour = GatedPixelCNN(**COLOUR, layers=2, inputKernel=7, kernel=5, output=output, **extra)
    check_receptive_field(f"gated, colour {output}", perturbed(gated_colour.double()), images=8, height=8, width=7)
    torch.manual_seed(3)
    seed_colour = PixelCNN(**COLOUR, residualBlocks=2, inputKernel=7, residualKernel=3, output=output, **extra)
    check_receptive_field(f"pixelcnn, colour {output}", perturbed(seed_colour.double()), images=8,
                          blind_spot_allowed=True, height=8, width=7)
torch.manual_seed(3)
gated_colour = GatedPixelCNN(**COLOUR, layers=2, inputKernel=7, kernel=5, output="categorical", classes=3)
check_receptive_field("gated, colour categorical, 3 classes", perturbed(gated_colour.double()), labels[:2].repeat(4),
                      images=8, height=8, width=7)

# PixelCNN++: sizes that are multiples of 4 (two stride-2 stages), 12x8 not
# square; two blocks a stage reach every earlier pixel of these images (one
# does not quite: pixel (r+1, 0) misses (r, 7) and (r+1, 7) misses (r+1, 0)
# for even r, corners beyond its reach, not leaks).
for height, width in ((8, 8), (12, 8)):
    pp = dict(height=height, width=width, filters=8, resnetBlocks=2)
    for channels, output, extra in ((1, "bernoulli", {}), (1, "logistic-mixture", {"mixtures": 2}),
                                    (3, "bernoulli", {}), (3, "categorical", {}),
                                    (3, "logistic-mixture", {"mixtures": 2})):
        torch.manual_seed(4)
        model = PixelCNNPP(**pp, channels=channels, output=output, **extra)
        check_receptive_field(f"pixelcnn++ {height}x{width}, {channels} channel(s) {output}",
                              perturbed(model.double()), height=height, width=width)
torch.manual_seed(4)
pp_plain = PixelCNNPP(height=8, width=8, channels=3, output="categorical", filters=8, resnetBlocks=2, weightNorm=False)
check_receptive_field("pixelcnn++ 8x8, colour categorical, no weight norm", perturbed(pp_plain.double()), height=8, width=8)
torch.manual_seed(4)
pp_conditional = PixelCNNPP(height=12, width=8, channels=1, filters=8, resnetBlocks=2, classes=3).double()
check_receptive_field("pixelcnn++ 12x8, 3 classes", pp_conditional, labels, height=12, width=8)
check_conditioning("pixelcnn++ 12x8, 3 classes", pp_conditional, 3, height=12, width=8)

seed = count(PixelCNN())
check(seed == 532_673, f"seed PixelCNN() has {seed:,} parameters (expected 532,673)")
gated = count(GatedPixelCNN(filters=64, layers=6, inputKernel=7, kernel=3, outputLayers=2))
check(gated == 553_793, f"gated preset has {gated:,} parameters (expected 553,793)")
cifar = count(PixelCNNPP(height=32, width=32, channels=3, output="logistic-mixture", mixtures=10, filters=160,
                         resnetBlocks=5, weightNorm=True))
check(cifar == 53_659_080, f"PixelCNN++ CIFAR-10 has {cifar:,} parameters (expected 53,659,080)")
print(f"info  with 10 classes: seed {count(PixelCNN(classes=10)):,}, "
      f"gated {count(GatedPixelCNN(filters=64, layers=6, inputKernel=7, kernel=3, outputLayers=2, classes=10)):,}")

if failures:
    print(f"{len(failures)} check(s) failed", file=sys.stderr)
    sys.exit(1)
print("all checks passed")
