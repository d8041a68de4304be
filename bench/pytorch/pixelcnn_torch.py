"""The seed PixelCNN as a PyTorch nn.Module whose state-dict names match
pixelcnn's .safetensors checkpoints, plus a dependency-free reader of that
format. Used to check that checkpoints load in PyTorch and to benchmark
PyTorch eager against the libtorch core on the same network."""

import json
import struct

import numpy as np
import torch
from torch import nn


class MaskedConv2d(nn.Conv2d):
    """A same-padded convolution whose kernel is multiplied by a fixed causal
    mask: 'A' keeps taps strictly before the centre in raster order, 'B' also
    the centre."""

    def __init__(self, cin, cout, k, mask_type):
        super().__init__(cin, cout, k, padding=k // 2)
        mask = torch.zeros(1, 1, k, k)
        mask[..., : k // 2, :] = 1
        mask[..., k // 2, : k // 2 + (mask_type == "B")] = 1
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x):
        return nn.functional.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class ResidualBlock(nn.Module):
    def __init__(self, f, k):
        super().__init__()
        self.conv1 = nn.Conv2d(f, f, 1)
        self.masked_conv = MaskedConv2d(f, f // 2, k, "B")
        self.conv2 = nn.Conv2d(f // 2, f, 1)

    def forward(self, x):
        t = torch.relu(self.conv1(x))
        t = torch.relu(self.masked_conv(t))
        t = torch.relu(self.conv2(t))
        return x + t


class PixelCNN(nn.Module):
    def __init__(self, height=28, width=28, channels=1, filters=128, residualBlocks=5,
                 inputKernel=7, residualKernel=3, outputLayers=2):
        super().__init__()
        self.input_conv = MaskedConv2d(channels, filters, inputKernel, "A")
        self.blocks = nn.ModuleList(ResidualBlock(filters, residualKernel) for _ in range(residualBlocks))
        self.head = nn.ModuleList(nn.Conv2d(filters, filters, 1) for _ in range(outputLayers))
        self.output = nn.Conv2d(filters, channels, 1)

    def forward(self, x):  # (N, 1, H, W) in {0, 1} -> logits (N, 1, H, W)
        h = torch.relu(self.input_conv(x))
        for block in self.blocks:
            h = block(h)
        for layer in self.head:
            h = torch.relu(layer(h))
        return self.output(h)


def read_safetensors(path):
    """(tensors, metadata) of a .safetensors file: 8-byte little-endian header
    length, a JSON header, then the raw little-endian data."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    metadata = header.pop("__metadata__", {})
    data = raw[8 + n :]
    tensors = {}
    for name, info in header.items():
        assert info["dtype"] == "F32", name
        start, end = info["data_offsets"]
        tensors[name] = torch.from_numpy(np.frombuffer(data[start:end], dtype="<f4").copy()).reshape(info["shape"])
    return tensors, metadata


def load_checkpoint(path):
    tensors, metadata = read_safetensors(path)
    model = PixelCNN(**json.loads(metadata["config"]))
    weights = {k: v for k, v in tensors.items() if not k.startswith("optimizer.")}
    model.load_state_dict(weights, strict=True)
    return model
