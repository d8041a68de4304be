"""Writes the PixelCNN++ import fixture from the PyTorch port
pclucas14/pixel-cnn-pp: two small models of the port's own PixelCNN, their
state dicts as the port saves them, four images each and the port's own
loss of each image, for a test that imports the .pth and must reproduce
those likelihoods.

usage: pixelcnnpp-port-fixture.py PORT_DIR OUT_DIR

PORT_DIR: a checkout of the port (imported from there at run time, nothing
of it is copied). The committed fixture
crates/pixelcnn-core/tests/fixtures/pixelcnnpp-port/ was written from the
port at commit 7cb4436f062fda9b63ecc9e3b75d2c2dcb379931 with torch 2.11 on
the CPU:

    git --git-dir=<bare clone> archive 7cb4436f | tar -x -C /tmp/pcpp
    source scripts/env.sh
    "$PIXELCNN_PYTHON" scripts/pixelcnnpp-port-fixture.py /tmp/pcpp crates/pixelcnn-core/tests/fixtures/pixelcnnpp-port

For each NAME (`rgb`: input_channels 3; `gray`: input_channels 1; both
nr_resnet 1, nr_filters 4, nr_logistic_mix 2), with torch.manual_seed fixed:
- NAME.pth: torch.save(model.state_dict()) of the port's PixelCNN after every
  parameter (each weight_g, weight_v, bias) was moved by 0.1 * randn off its
  init; float32, no `module.` prefix (the port's main.py does not wrap the
  model in nn.DataParallel);
- NAME.images.bin: 4 images of 8x8, uint8, N x H x W x C, values over 0..255
  with 0 and 255 in every channel of every image;
- NAME.expected.json: the configuration and nll_per_image[n], the port's
  loss of image n alone in nats (utils.discretized_mix_logistic_loss for
  RGB, discretized_mix_logistic_loss_1d for grayscale, as its main.py picks
  them), the model in eval mode on the image rescaled as main.py does,
  (v / 255 - 0.5) * 2, computed in float64 (the float32 weights upcast).

Two shims, neither of which changes a value: the port's utils.py holds a
Python-2 statement (`print e`, in load_part_of_model), so it is compiled
with that one line as `print(e)`; and its losses add
`torch.zeros(...).cuda()` to the data, so Tensor.cuda is the identity while
they run, everything staying on the CPU."""

import contextlib
import json
import os
import sys
import types
import warnings

import numpy as np
import torch

NR_RESNET, NR_FILTERS, NR_MIX, SIZE, COUNT = 1, 4, 2, 8, 4


def import_port(port_dir):
    """The port's model and utils modules (its files import each other by
    `from utils import *`, so utils goes into sys.modules under that name)."""
    path = os.path.join(port_dir, "utils.py")
    source = open(path).read()
    assert source.count("print e\n") == 1, "the port's utils.py is not the one this script knows"
    utils = types.ModuleType("utils")
    utils.__file__ = path
    exec(compile(source.replace("print e\n", "print(e)\n"), path, "exec"), utils.__dict__)
    sys.modules["utils"] = utils
    sys.path.insert(0, port_dir)
    import model  # noqa: E402  (the port's model.py)
    return model, utils


@contextlib.contextmanager
def cuda_is_identity():
    original = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.Tensor.cuda = original


def images(generator, channels):
    """COUNT x SIZE x SIZE x channels uint8: uniform values, then the first
    pixel of each row 0 or 255 in turn, so both edge bins occur in every
    channel of every image."""
    x = torch.randint(0, 256, (COUNT, SIZE, SIZE, channels), generator=generator, dtype=torch.uint8)
    x[:, 0::2, 0, :] = 0
    x[:, 1::2, 0, :] = 255
    return x


def write(name, channels, port_model, utils, out_dir, seed):
    torch.manual_seed(seed)
    model = port_model.PixelCNN(nr_resnet=NR_RESNET, nr_filters=NR_FILTERS,
                                nr_logistic_mix=NR_MIX, input_channels=channels)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    model.eval()
    torch.save(model.state_dict(), os.path.join(out_dir, f"{name}.pth"))

    pixels = images(torch.Generator().manual_seed(seed + 1), channels)
    pixels.numpy().tofile(os.path.join(out_dir, f"{name}.images.bin"))

    model.double()
    loss = utils.discretized_mix_logistic_loss if channels == 3 else utils.discretized_mix_logistic_loss_1d
    x = (pixels.permute(0, 3, 1, 2).double() / 255.0 - 0.5) * 2.0
    nll = []
    with torch.no_grad(), cuda_is_identity():
        for n in range(COUNT):
            # One image a call: the port caches its column of ones
            # (init_padding) at the first call's batch size.
            out = model(x[n:n + 1])
            assert out.dtype == torch.float64
            nll.append(float(loss(x[n:n + 1], out)))
    expected = {"nr_resnet": NR_RESNET, "nr_filters": NR_FILTERS, "nr_logistic_mix": NR_MIX,
                "input_channels": channels, "height": SIZE, "width": SIZE, "count": COUNT,
                "precision": "float64", "nll_per_image": nll}
    with open(os.path.join(out_dir, f"{name}.expected.json"), "w") as f:
        json.dump(expected, f, indent=2)
        f.write("\n")
    print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters, nll per image {nll}")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    port_dir, out_dir = sys.argv[1:]
    os.makedirs(out_dir, exist_ok=True)
    # The port uses torch.nn.utils.weight_norm and F.sigmoid / F.tanh, which
    # torch 2 deprecates with a warning each.
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    port_model, utils = import_port(port_dir)
    write("rgb", 3, port_model, utils, out_dir, seed=0)
    write("gray", 1, port_model, utils, out_dir, seed=10)


if __name__ == "__main__":
    main()
