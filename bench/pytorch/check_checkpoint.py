"""Loads a pixelcnn checkpoint into the PyTorch module by name and prints
its per-pixel probabilities for images given as raw bytes, so a test can
compare them with the library's own predict().

usage: check_checkpoint.py MODEL.safetensors IMAGES.bin COUNT OUT.f32"""

import sys

import numpy as np
import torch

import json

from pixelcnn_torch import load_checkpoint, read_safetensors

path, images_path, count, out_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
model = load_checkpoint(path).eval()
config = json.loads(read_safetensors(path)[1]["config"])
h, w = config["height"], config["width"]
pixels = np.fromfile(images_path, dtype=np.uint8).astype(np.float32)
x = torch.from_numpy(pixels.reshape(count, h, w, 1)).permute(0, 3, 1, 2)
with torch.no_grad():
    probs = torch.sigmoid(model(x)).permute(0, 2, 3, 1).contiguous().numpy()
probs.astype("<f4").tofile(out_path)
