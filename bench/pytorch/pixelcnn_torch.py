"""The pixelcnn model family as PyTorch nn.Modules whose state-dict names match
pixelcnn's .safetensors checkpoints, plus a dependency-free reader of that
format. Used to check that checkpoints load in PyTorch and to benchmark
PyTorch eager against the libtorch core on the same networks.

Three architectures (checkpoint metadata `config.architecture`):
- "pixelcnn" (`PixelCNN`): the seed network, a mask-A convolution, residual
  blocks around mask-B convolutions, then 1x1 layers;
- "gated" (`GatedPixelCNN`): the Gated PixelCNN of van den Oord et al. (2016),
  with separate vertical and horizontal stacks and so no blind spot;
- "pixelcnn++" (`pixelcnn_pp_torch.PixelCNNPP`): PixelCNN++ (Salimans et
  al. 2017) in the names of the PyTorch port pclucas14/pixel-cnn-pp.
Each may be class-conditional (`classes=K`): every conv then has a learned
per-class bias `class_bias` of shape (K, cout) (for "gated": per gate,
`v_class_bias` / `h_class_bias`; for "pixelcnn++": per gated ResNet block,
(K, 2F), on its last conv) whose row `labels[n]` is added to image n's
pre-activation, broadcast over all pixels.

Colour (`channels: 3`). A Bernoulli or categorical colour model predicts a
pixel sub-pixel by sub-pixel, R -> G -> B (PixelRNN, section 3.4): every
layer's channels are split into three groups (see `channel_groups`) and the
taps that read the current pixel are masked by group, so the outputs of
channel c see the pixel's channels before c only. The logistic mixture
predicts the whole pixel from earlier pixels (one group, networks as for
grayscale) and couples the channels inside its distribution
(`mixture_log_prob`). With one group every network is exactly the
grayscale one, so older checkpoints load and compute as before."""

import json
import struct

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


class Cond:
    """A batch's conditioning with a condition map (config `conditionMap`):
    the global part (condition vectors (N, D), or None) and the map's
    features (N, C, Hm, Wm): its values, or a token map's embedding rows."""

    def __init__(self, global_part, map_features):
        self.global_part, self.map_features = global_part, map_features


def resize(m, height, width):
    """The map at height x width: as it is, nearest-neighbour upsampled, or
    averaged over each output cell's area (as the library resizes it)."""
    h, w = m.shape[2], m.shape[3]
    if (h, w) == (height, width):
        return m
    if h <= height and w <= width:
        return F.interpolate(m, size=(height, width), mode="nearest")
    return F.adaptive_avg_pool2d(m, (height, width))


def add_class_bias(t, class_bias, labels, map_conv=None):
    """t (N, C, H, W) plus row labels[n] of class_bias (K, C) for image n, the
    same at every pixel; for condition vectors (float (N, D), config
    `conditionSize`) their product with it instead, of which a class is the
    one-hot case; with a condition map (labels a `Cond`) also the 1x1
    projection `map_conv` of the map resized to t's size. A no-op for an
    unconditional layer."""
    if labels is None:
        return t
    global_part, features = (labels.global_part, labels.map_features) if isinstance(labels, Cond) else (labels, None)
    if class_bias is not None and global_part is not None:
        rows = class_bias[global_part] if global_part.dtype == torch.long else global_part @ class_bias
        t = t + rows[:, :, None, None]
    if map_conv is not None and features is not None:
        t = t + F.conv2d(resize(features, t.shape[2], t.shape[3]), map_conv.weight)
    return t


def map_conv_module(map_features, cout):
    """The zero-initialised 1x1 projection (cout, C_m) of a condition map,
    `<layer>.map_conv.weight`; None without a map."""
    if map_features is None:
        return None
    conv = nn.Conv2d(map_features, cout, 1, bias=False)
    nn.init.zeros_(conv.weight)
    return conv


def condition_map_input(model, labels):
    """labels (N, D + Hm*Wm*Cm) of a model with a condition map -> a `Cond`:
    the vector part and the map's features (N, C, Hm, Wm) (a token map through
    `model.condition_map.embedding`); labels as they are otherwise."""
    spec = getattr(model, "condition_map_spec", None)
    if spec is None or labels is None:
        return labels
    d = model.condition_size_only or 0
    n = labels.shape[0]
    values = labels[:, d:].reshape(n, spec["height"], spec["width"], spec["channels"])
    if spec.get("vocabulary"):
        values = model.condition_map.embedding(values[..., 0].long())
    return Cond(labels[:, :d] if d else None, values.permute(0, 3, 1, 2))


class ConditionMapInput(nn.Module):
    """Holds a token condition map's `embedding` (state-dict name `condition_map.embedding.weight`)."""

    def __init__(self, spec):
        super().__init__()
        self.embedding = nn.Embedding(spec["vocabulary"], spec["embedding"])


def setup_conditioning(model, classes, conditionSize, conditionMap):
    """Records a model's conditioning; returns (rows of the global weights, the map's features per position)."""
    model.condition_map_spec = conditionMap
    model.condition_size_only = conditionSize
    map_values = conditionMap["height"] * conditionMap["width"] * conditionMap["channels"] if conditionMap else 0
    model.condition_size = (conditionSize or 0) + map_values or None
    if conditionMap and conditionMap.get("vocabulary"):
        model.condition_map = ConditionMapInput(conditionMap)
    if conditionMap is None:
        return classes or conditionSize, None
    features = conditionMap["embedding"] if conditionMap.get("vocabulary") else conditionMap["channels"]
    return classes or conditionSize, features


def check_labels(classes, labels, x, condition_size=None):
    """labels as int64 on x's device (an index tensor, never a uint8 mask);
    for a model with `conditionSize` D, condition vectors (N, D) as float32."""
    if condition_size is not None:
        if labels is None:
            raise ValueError(f"this model is conditional on vectors of {condition_size}: pass them")
        labels = torch.as_tensor(labels, dtype=torch.float32, device=x.device)
        if labels.shape != (x.shape[0], condition_size):
            raise ValueError(f"expected conditions of shape ({x.shape[0]}, {condition_size}), got {tuple(labels.shape)}")
        return labels
    if classes is None:
        if labels is not None:
            raise ValueError("this model is unconditional: do not pass labels")
        return None
    if labels is None:
        raise ValueError(f"this model is conditional on {classes} classes: pass labels")
    labels = torch.as_tensor(labels, dtype=torch.long, device=x.device)
    if labels.shape != (x.shape[0],):
        raise ValueError(f"expected {x.shape[0]} labels, got shape {tuple(labels.shape)}")
    return labels


def class_bias_parameter(classes, cout):
    """The (K, cout) per-class bias of a conditional layer, zero at first so a
    new conditional model computes the same as an unconditional one."""
    return nn.Parameter(torch.zeros(classes, cout)) if classes is not None else None


# ---------------------------------------------------------------------------
# channel groups: the order of the sub-pixels inside one pixel
#
# p(pixel) = p(R | x_<i) p(G | R, x_<i) p(B | R, G, x_<i). Channel j of a
# layer with n channels belongs to group floor(j * G / n) (contiguous thirds
# for G = 3). At the centre tap, the only one that reads the pixel being
# predicted, input group a feeds output group b when a < b (mask A: the
# first layer, which reads the image) or a <= b (mask B: every later layer,
# 1x1 ones included, since they too mix channels of the same pixel). The
# image's own channels are groups 0, 1, 2 and the output channels are laid
# out channel by channel, so the outputs of channel c depend on the pixel's
# channels before c only; taps of earlier pixels are unrestricted. With one
# group every channel is in group 0, so mask A drops the centre and mask B
# keeps it: the plain masks.


def channel_groups(channels, output):
    """3 for a colour model predicted sub-pixel by sub-pixel (Bernoulli,
    categorical), 1 otherwise (grayscale, and the mixture: whole pixels)."""
    return 3 if channels == 3 and output in ("bernoulli", "categorical") else 1


def group_of(index, count, groups):
    """The group of channel `index` (an int tensor) of `count`: integer
    arithmetic, so thirds that do not divide evenly split as the core's do."""
    return index * groups // count


def centre_mask(out_groups, cin, groups, strict):
    """(cout, cin) 0/1: whether the centre tap connects input channel i (of
    cin) to output channel o, given each output channel's group; `strict` is
    mask A (earlier groups only), otherwise mask B (the same group too)."""
    in_groups = group_of(torch.arange(cin), cin, groups)
    keep = in_groups[None, :] < out_groups[:, None] if strict else in_groups[None, :] <= out_groups[:, None]
    return keep.float()


# ---------------------------------------------------------------------------
# architecture "pixelcnn": the seed network


class MaskedConv2d(nn.Conv2d):
    """A same-padded convolution whose kernel is multiplied by a fixed causal
    mask: 'A' keeps taps strictly before the centre in raster order, 'B' also
    the centre. With three channel groups the centre tap is kept per
    (output, input) channel pair by group instead (mask (cout, cin, k, k));
    with one group the mask is (1, 1, k, k), broadcast over channels."""

    def __init__(self, cin, cout, k, mask_type, groups=1):
        super().__init__(cin, cout, k, padding=k // 2)
        mask = torch.zeros(1, 1, k, k)
        mask[..., : k // 2, :] = 1
        mask[..., k // 2, : k // 2 + (mask_type == "B")] = 1
        if groups > 1:
            mask = mask.repeat(cout, cin, 1, 1)
            out_groups = group_of(torch.arange(cout), cout, groups)
            mask[:, :, k // 2, k // 2] = centre_mask(out_groups, cin, groups, strict=mask_type == "A")
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


def pointwise_conv(cin, cout, groups):
    """A 1x1 convolution: plain with one group; with three its single tap is
    the centre, so it is mask B by group (a 1x1 MaskedConv2d)."""
    return nn.Conv2d(cin, cout, 1) if groups == 1 else MaskedConv2d(cin, cout, 1, "B", groups)


def conditional_conv(conv, classes, cout, map_features=None):
    """Gives `conv` the parameter `class_bias` (K, cout) when conditional, so
    its state-dict name is `<conv>.class_bias`, and with a condition map its
    `map_conv`."""
    conv.class_bias = class_bias_parameter(classes, cout)
    conv.map_conv = map_conv_module(map_features, cout)
    return conv


class ResidualBlock(nn.Module):
    def __init__(self, f, k, classes=None, groups=1, map_features=None):
        super().__init__()
        self.conv1 = conditional_conv(pointwise_conv(f, f, groups), classes, f, map_features)
        self.masked_conv = conditional_conv(MaskedConv2d(f, f // 2, k, "B", groups), classes, f // 2, map_features)
        self.conv2 = conditional_conv(pointwise_conv(f // 2, f, groups), classes, f, map_features)

    def forward(self, x, labels=None):
        t = x
        for conv in (self.conv1, self.masked_conv, self.conv2):
            t = torch.relu(add_class_bias(conv(t), conv.class_bias, labels, conv.map_conv))
        return x + t


class PixelCNN(nn.Module):
    """The seed network (architecture "pixelcnn"). Keyword arguments are the
    checkpoint config's camelCase keys; `layers` and `kernel` belong to the
    gated architecture and are ignored."""

    def __init__(self, height=28, width=28, channels=1, filters=128, residualBlocks=5,
                 inputKernel=7, residualKernel=3, outputLayers=2, classes=None,
                 architecture="pixelcnn", layers=None, kernel=None, output="bernoulli", mixtures=None,
                 vocabulary=None, embedding=None, conditionSize=None, conditionMap=None):
        super().__init__()
        if architecture not in (None, "pixelcnn"):
            raise ValueError(f"PixelCNN cannot build architecture {architecture!r}")
        self.height, self.width, self.channels, self.classes = height, width, channels, classes
        classes, mf = setup_conditioning(self, classes, conditionSize, conditionMap)  # a class is a one-hot condition
        self.output_kind, self.mixtures = output, mixtures
        self.groups = g = channel_groups(channels, output)
        out = output_channels(output, channels, mixtures, vocabulary)
        self.vocabulary, self.embedding = vocabulary, token_embedding(vocabulary, embedding)
        cin = embedding if vocabulary else channels
        self.input_conv = conditional_conv(MaskedConv2d(cin, filters, inputKernel, "A", g), classes, filters, mf)
        self.blocks = nn.ModuleList(ResidualBlock(filters, residualKernel, classes, g, mf) for _ in range(residualBlocks))
        self.head = nn.ModuleList(conditional_conv(pointwise_conv(filters, filters, g), classes, filters, mf)
                                  for _ in range(outputLayers))
        self.output = conditional_conv(pointwise_conv(filters, out, g), classes, out, mf)

    def forward(self, x, labels=None):  # (N, C, H, W) pixel values, labels (N,) -> logits (N, outC, H, W)
        labels = check_labels(self.classes, labels, x, self.condition_size)
        x = model_input(self, x)
        labels = condition_map_input(self, labels)
        h = torch.relu(add_class_bias(self.input_conv(x), self.input_conv.class_bias, labels, self.input_conv.map_conv))
        for block in self.blocks:
            h = block(h, labels)
        for layer in self.head:
            h = torch.relu(add_class_bias(layer(h), layer.class_bias, labels, layer.map_conv))
        return add_class_bias(self.output(h), self.output.class_bias, labels, self.output.map_conv)


# ---------------------------------------------------------------------------
# architecture "gated": Gated PixelCNN
#
# Causality. Two stacks of feature maps, both of the image's size:
# - the vertical stack v: v[r, c] depends only on input rows above r (any
#   column within reach), never on row r itself;
# - the horizontal stack h: h[r, c] depends only on pixels of row r strictly
#   left of c, and (through the link from v[r, c]) on rows above r.
# So h[r, c] sees exactly the pixels before (r, c) in raster order and the
# logits are read from h alone. Each convolution below is made one-sided by
# zero padding on both sides and then keeping only the first H rows (for the
# vertical convs) or the first W columns (for the horizontal ones): output
# row r of a conv with kernel height kh and top padding P reads input rows
# r - P .. r - P + kh - 1, so choosing kh = P (+ 1) ends the window just
# above (at) row r. The columns work the same way.
#
# With three channel groups h[r, c] may also see the earlier channels of
# pixel (r, c) itself: the first horizontal conv then reads columns
# c-p0 .. c, its last column (the current pixel) under mask A by group, and
# every h_conv's last column is under mask B by group (column c of h holds
# only the pixel's earlier channels for each group, so same-group is safe).
# The 1x1 convs on h's path (skip, residual, head, output) are mask-B
# grouped; the link from v needs no mask, v holding nothing of row r.


class CentreMaskedConv2d(nn.Conv2d):
    """A horizontal (1, kw) convolution of a three-group gated model whose
    last kernel column, the tap at the current pixel (with left padding
    kw - 1, output column c reads input columns c-kw+1 .. c), keeps only the
    (output, input) pairs of `centre` (cout, cin); earlier columns are
    unrestricted."""

    def __init__(self, cin, cout, kw, padding, centre):
        super().__init__(cin, cout, (1, kw), padding=padding)
        mask = torch.ones(cout, cin, 1, kw)
        mask[:, :, 0, kw - 1] = centre
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


def first_rows(t, n):
    return t[:, :, :n, :]


def first_columns(t, n):
    return t[:, :, :, :n]


class GatedLayer(nn.Module):
    """One gated layer (`layers.{i}`): kernel k odd, p = k // 2."""

    def __init__(self, f, k, classes=None, groups=1, map_features=None):
        super().__init__()
        p = k // 2
        # v[r, c] <- v rows r-p .. r, cols c-p .. c+p. Row r of v itself only
        # saw rows above r, so the new v still does.
        self.v_conv = nn.Conv2d(f, 2 * f, (p + 1, k), padding=(p, p))
        # h[r, c] <- h row r, cols c-p .. c. Column c of h itself only saw
        # columns left of c (and, with three groups, the pixel's earlier
        # channels: then its centre column is mask B over the gate's 2F
        # outputs, whose two halves share the groups of the F gated channels).
        if groups == 1:
            self.h_conv = nn.Conv2d(f, 2 * f, (1, p + 1), padding=(0, p))
        else:
            gate_groups = group_of(torch.arange(2 * f) % f, f, groups)
            self.h_conv = CentreMaskedConv2d(f, 2 * f, p + 1, (0, p), centre_mask(gate_groups, f, groups, strict=False))
        # The vertical stack's view of the rows above, fed into h at the same
        # pixel (allowed: v[r, c] saw only rows above r). Never the other way.
        self.link = nn.Conv2d(2 * f, 2 * f, 1)
        self.skip = pointwise_conv(f, f, groups)
        self.residual = pointwise_conv(f, f, groups)
        self.v_class_bias = class_bias_parameter(classes, 2 * f)
        self.h_class_bias = class_bias_parameter(classes, 2 * f)
        self.v_map_conv = map_conv_module(map_features, 2 * f)
        self.h_map_conv = map_conv_module(map_features, 2 * f)

    def forward(self, v, h, skip, labels=None):
        height, width = v.shape[2], v.shape[3]
        v_features = first_rows(self.v_conv(v), height)
        h_features = first_columns(self.h_conv(h), width)

        a = add_class_bias(v_features, self.v_class_bias, labels, self.v_map_conv)
        b = add_class_bias(h_features + self.link(v_features), self.h_class_bias, labels, self.h_map_conv)
        v_next = gate(a)
        g = gate(b)
        return v_next, h + self.residual(g), skip + self.skip(g)


def gate(t):
    """tanh of the first half of the channels times sigmoid of the second."""
    f = t.shape[1] // 2
    return torch.tanh(t[:, :f]) * torch.sigmoid(t[:, f:])


class GatedPixelCNN(nn.Module):
    """Gated PixelCNN (architecture "gated"). Keyword arguments are the
    checkpoint config's camelCase keys; `residualBlocks` and `residualKernel`
    belong to the seed architecture and are ignored."""

    def __init__(self, height=28, width=28, channels=1, filters=64, layers=6, inputKernel=7,
                 kernel=3, outputLayers=2, classes=None, architecture="gated",
                 residualBlocks=None, residualKernel=None, output="bernoulli", mixtures=None,
                 vocabulary=None, embedding=None, conditionSize=None, conditionMap=None):
        super().__init__()
        if architecture != "gated":
            raise ValueError(f"GatedPixelCNN cannot build architecture {architecture!r}")
        if inputKernel < 3 or inputKernel % 2 == 0 or kernel < 1 or kernel % 2 == 0:
            raise ValueError("inputKernel must be odd and >= 3, kernel odd")
        self.height, self.width, self.channels, self.classes = height, width, channels, classes
        classes, mf = setup_conditioning(self, classes, conditionSize, conditionMap)  # a class is a one-hot condition
        self.output_kind, self.mixtures = output, mixtures
        self.groups = g = channel_groups(channels, output)
        out = output_channels(output, channels, mixtures, vocabulary)
        self.vocabulary, self.embedding = vocabulary, token_embedding(vocabulary, embedding)
        channels = embedding if vocabulary else channels  # what the first layers read
        p0 = inputKernel // 2
        # v[r, c] <- input rows r-p0 .. r-1 (strictly above), cols c-p0 .. c+p0.
        self.input_v = nn.Conv2d(channels, filters, (p0, inputKernel), padding=(p0, p0))
        if g == 1:
            # h[r, c] <- input row r, cols c-p0 .. c-1 (strictly left: not the pixel itself).
            self.input_h = nn.Conv2d(channels, filters, (1, p0), padding=(0, p0))
        else:
            # h[r, c] <- input row r, cols c-p0 .. c: the pixel itself too, but
            # at that column only channels of earlier groups (mask A).
            feature_groups = group_of(torch.arange(filters), filters, g)
            self.input_h = CentreMaskedConv2d(channels, filters, p0 + 1, (0, p0),
                                              centre_mask(feature_groups, channels, g, strict=True))
        self.layers = nn.ModuleList(GatedLayer(filters, kernel, classes, g, mf) for _ in range(layers))
        self.head = nn.ModuleList(conditional_conv(pointwise_conv(filters, filters, g), classes, filters, mf)
                                  for _ in range(outputLayers))
        self.output = conditional_conv(pointwise_conv(filters, out, g), classes, out, mf)

    def forward(self, x, labels=None):  # (N, C, H, W) pixel values, labels (N,) -> logits (N, outC, H, W)
        labels = condition_map_input(self, check_labels(self.classes, labels, x, self.condition_size))
        x = model_input(self, x)
        height, width = x.shape[2], x.shape[3]
        v = first_rows(self.input_v(x), height)
        h = first_columns(self.input_h(x), width)
        skip = torch.zeros_like(h)
        for layer in self.layers:
            v, h, skip = layer(v, h, skip, labels)
        s = torch.relu(skip)
        for layer in self.head:
            s = torch.relu(add_class_bias(layer(s), layer.class_bias, labels, layer.map_conv))
        return add_class_bias(self.output(s), self.output.class_bias, labels, self.output.map_conv)


# ---------------------------------------------------------------------------
# output distributions


def output_channels(output, channels, mixtures=None, vocabulary=None):
    """One logit per sub-pixel (bernoulli), 256 (categorical: level k of
    channel c at c*256 + k; a token grid: one per token of the vocabulary), or for a mixture of K logistics K component
    logits, then C*K means and C*K log-scales (channel by channel) and, for
    colour, 3*K coupling coefficients: K*(1 + 2C), K*10 for C = 3."""
    if output == "bernoulli":
        return channels
    if output == "categorical":
        return channels * (vocabulary or 256)
    if output == "logistic-mixture":
        return mixtures * (1 + 2 * channels + (3 if channels == 3 else 0))
    raise ValueError(f"unknown output {output!r}")


def network_input(output, x):
    """Binary values as they are; 8-bit values scaled to [-1, 1]."""
    return x if output == "bernoulli" else x * (2.0 / 255.0) - 1.0


def token_embedding(vocabulary, embedding):
    """Token grids (config `vocabulary`): each token's learned row, an
    nn.Embedding (V, E) named `embedding`, as the library stores it."""
    return None if vocabulary is None else nn.Embedding(vocabulary, embedding)


def model_input(model, x):
    """What the first layer reads from x (N, C, H, W): pixels scaled as
    `network_input`, or a token grid's embedding rows (N, E, H, W)."""
    if model.embedding is None:
        return network_input(model.output_kind, x)
    return model.embedding(x[:, 0].long()).permute(0, 3, 1, 2)


def log_probs(model, x, labels=None):
    """log p(x_i | x_<i) of each sub-pixel's value, (N, C, H, W), for x of
    pixel values; in colour sub-pixel (i, c) is also conditioned on the
    channels before c of pixel i, so the C values of a pixel sum to log p(pixel)."""
    logits = model(x, labels)
    if model.output_kind == "bernoulli":
        return -torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none")
    if model.output_kind == "logistic-mixture":
        # In float64: the published formula subtracts two sigmoids, which in
        # float32 is off by about 2e-5 nats; in float64 it is exact enough to
        # be the reference for the library's cancellation-free float32 form.
        return mixture_log_prob(logits.double(), x.double() * (2.0 / 255.0) - 1.0, model.mixtures).float()
    n, _, h, w = logits.shape
    levels = torch.log_softmax(logits.view(n, model.channels, model.vocabulary or 256, h, w), dim=2)
    return levels.gather(2, x.long().unsqueeze(2)).squeeze(2)


def discretized_logistic_log_prob(x, means, log_scales):
    """log P(x's bin | component) (N, K, H, W) of one channel's values x
    (N, 1, H, W) on [-1, 1] under K logistics (N, K, H, W), as in PixelCNN++'s
    published discretized_mix_logistic_loss: the CDF over the bin of width
    2/255 around x, the edge bins open to -inf and +inf."""
    centered = x - means
    inv_stdv = torch.exp(-log_scales)
    plus_in = inv_stdv * (centered + 1.0 / 255.0)
    cdf_plus = torch.sigmoid(plus_in)
    min_in = inv_stdv * (centered - 1.0 / 255.0)
    cdf_min = torch.sigmoid(min_in)
    log_cdf_plus = plus_in - torch.nn.functional.softplus(plus_in)
    log_one_minus_cdf_min = -torch.nn.functional.softplus(min_in)
    cdf_delta = cdf_plus - cdf_min
    mid_in = inv_stdv * centered
    log_pdf_mid = mid_in - log_scales - 2.0 * torch.nn.functional.softplus(mid_in)
    inner_inner = torch.where(cdf_delta > 1e-5, torch.log(torch.clamp(cdf_delta, min=1e-12)), log_pdf_mid - np.log(127.5))
    inner = torch.where(x > 0.999, log_one_minus_cdf_min, inner_inner)
    return torch.where(x < -0.999, log_cdf_plus, inner)


def mixture_parts(out, x, k):
    """The mixture's parts from the network's outputs (N, outC, H, W) for
    pixel values x (N, C, H, W) on [-1, 1]: log weights (N, K, H, W), and
    each channel's means and clamped log-scales (N, C, K, H, W). Layout: K
    logits, C*K means, C*K log-scales, for colour 3*K tanh coefficients
    (G on R, B on R, B on G). The colour means are PixelCNN++'s linear
    coupling m_G = mu_G + c0 x_R, m_B = mu_B + c1 x_R + c2 x_G with the true
    values of the earlier channels (only those are read)."""
    c = x.shape[1]
    log_weights = torch.log_softmax(out[:, :k], dim=1)
    means = out[:, k:k + c * k].unflatten(1, (c, k))
    log_scales = torch.clamp(out[:, k + c * k:k + 2 * c * k].unflatten(1, (c, k)), min=-7.0)
    if c == 3:
        coeffs = torch.tanh(out[:, k + 2 * c * k:k + 2 * c * k + 3 * k].unflatten(1, (3, k)))
        x_r, x_g = x[:, 0:1], x[:, 1:2]  # (N, 1, H, W) against (N, K, H, W)
        means = torch.stack([means[:, 0],
                             means[:, 1] + coeffs[:, 0] * x_r,
                             means[:, 2] + coeffs[:, 1] * x_r + coeffs[:, 2] * x_g], dim=1)
    return log_weights, means, log_scales


def mixture_log_prob(out, x, k):
    """PixelCNN++'s discretized logistic mixture likelihood, x (N, C, H, W)
    on [-1, 1], as per-channel conditionals (N, C, H, W). The joint
    p(pixel) = sum_k w_k prod_c P_c(x_c | k) splits exactly into
    conditionals: with L_c = logsumexp_k(log w_k + sum_{c' <= c} log P_c'(x_c' | k)),
    log p(x_c | x_<c of the pixel) = L_c - L_{c-1} (L_{-1} = 0); for one
    channel that is the mixture's log-likelihood itself."""
    log_weights, means, log_scales = mixture_parts(out, x, k)
    running, previous, per_channel = log_weights, None, []
    for c in range(x.shape[1]):
        running = running + discretized_logistic_log_prob(x[:, c:c + 1], means[:, c], log_scales[:, c])
        joint = torch.logsumexp(running, dim=1, keepdim=True)  # L_c (N, 1, H, W)
        per_channel.append(joint if previous is None else joint - previous)
        previous = joint
    return torch.cat(per_channel, dim=1)


# ---------------------------------------------------------------------------
# checkpoints


def build_model(config):
    """The module a checkpoint's `config` (dict of camelCase keys) describes.
    Version-1 configs have no `architecture` (so "pixelcnn") and no `classes`."""
    config = dict(config)
    architecture = config.pop("architecture", None) or "pixelcnn"
    if architecture == "pixelcnn":
        return PixelCNN(**config)
    if architecture == "gated":
        return GatedPixelCNN(**config)
    if architecture == "pixelcnn++":
        from pixelcnn_pp_torch import PixelCNNPP  # imports this module's helpers
        return PixelCNNPP(**config)
    raise ValueError(f"unknown architecture {architecture!r}")


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
    """The checkpoint's network with its weights loaded by name (strict: every
    parameter present, nothing extra besides the optimizer's moments)."""
    tensors, metadata = read_safetensors(path)
    model = build_model(json.loads(metadata["config"]))
    weights = {k: v for k, v in tensors.items() if not k.startswith("optimizer.")}
    model.load_state_dict(weights, strict=True)
    return model
