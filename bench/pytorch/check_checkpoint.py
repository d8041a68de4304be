"""Loads a pixelcnn checkpoint (either architecture, conditional or not) into
the PyTorch module by name and writes its per-pixel probabilities for images
given as raw bytes, so a test can compare them with the library's own
predict().

usage: check_checkpoint.py [--log-probs] MODEL.safetensors IMAGES.bin COUNT OUT.f32 [LABELS.bin]

IMAGES.bin: COUNT x H x W x C uint8 pixel values (0/1, or 0-255 for an 8-bit
model: categorical or logistic-mixture); for a token-grid model (config
`vocabulary`) COUNT x H x W little-endian int32 tokens. LABELS.bin: COUNT raw uint8 class labels (required for a
conditional model, refused otherwise); for a model with `conditionSize` D,
COUNT x D little-endian float32 condition vectors instead. OUT.f32: COUNT x H x W x C little-endian
float32, sigmoid probabilities, or with --log-probs log p(x_i | x_<i) of each
sub-pixel's value (every output kind; for colour, each channel's value given
the earlier pixels and the pixel's earlier channels, so a pixel's C values sum
to log p(pixel))."""

import sys

import numpy as np
import torch

from pixelcnn_torch import load_checkpoint, log_probs


def main():
    args = sys.argv[1:]
    want_log_probs = "--log-probs" in args
    args = [a for a in args if a != "--log-probs"]
    if len(args) not in (4, 5):
        sys.exit(__doc__)
    path, images_path, count, out_path = args[0], args[1], int(args[2]), args[3]
    labels_path = args[4] if len(args) == 5 else None

    model = load_checkpoint(path).eval()

    h, w, c = model.height, model.width, model.channels
    tokens = getattr(model, "vocabulary", None) is not None
    pixels = np.fromfile(images_path, dtype="<i4" if tokens else np.uint8)
    if pixels.size != count * h * w * c:
        sys.exit(f"{images_path}: {pixels.size} values, expected {count}x{h}x{w}x{c}")
    x = torch.from_numpy(pixels.astype(np.float32).reshape(count, h, w, c)).permute(0, 3, 1, 2)

    labels = None
    vectors = getattr(model, "condition_size", None)
    if labels_path is not None and vectors is not None:
        raw = np.fromfile(labels_path, dtype="<f4")
        if raw.size != count * vectors:
            sys.exit(f"{labels_path}: {raw.size} values, expected {count}x{vectors} conditions")
        labels = torch.from_numpy(raw.reshape(count, vectors))
    elif labels_path is not None:
        raw = np.fromfile(labels_path, dtype=np.uint8)
        if raw.size != count:
            sys.exit(f"{labels_path}: {raw.size} bytes, expected {count} labels")
        labels = torch.from_numpy(raw.astype(np.int64))
    if (labels is None) != (model.classes is None and vectors is None):
        sys.exit(f"the model has classes={model.classes}: "
                 + ("pass LABELS.bin" if labels is None else "it takes no labels"))

    with torch.no_grad():
        per_sub_pixel = log_probs(model, x, labels) if want_log_probs else torch.sigmoid(model(x, labels))
        probs = per_sub_pixel.permute(0, 2, 3, 1).contiguous().numpy()
    probs.astype("<f4").tofile(out_path)


if __name__ == "__main__":
    main()
