"""PixelCNN++ (Salimans et al. 2017) as a plain PyTorch nn.Module, architecture
"pixelcnn++" of pixelcnn's checkpoints: a read-only reference (eval only:
the config's `dropout` is not applied) whose state-dict names are the
checkpoint's tensor names, which are those of the PyTorch port
pclucas14/pixel-cnn-pp (model.py, layers.py). `from_port_state_dict` maps
a state dict saved by that port to this layout.

Causality without masks: the u stream sees only the rows above (down-shifted
convolutions, kernels (2, 3) padded on top and both sides, and an initial
shift down by one row), the ul stream the rows above and the pixels to the
left (down-right-shifted (2, 2) kernels padded top and left, fed from u and
an initial shift right). The stride-2 convolutions and transposed
convolutions keep the same one-sidedness; the logits read ul alone.

Colour with a per-sub-pixel output (Bernoulli, categorical) adds
`pixel_link`: a 1x1 convolution, masked by channel group, of the current
pixel's own network input, so that the outputs of channel c also see the
pixel's channels before c. The logistic mixture couples the channels in its
distribution instead (pixelcnn_torch.mixture_log_prob)."""

import torch
from torch import nn
import torch.nn.functional as F

from pixelcnn_torch import (add_class_bias, channel_groups, check_labels, condition_map_input, map_conv_module, model_input,
                            output_channels, setup_conditioning, token_embedding)


# ---------------------------------------------------------------------------
# layers: `weight` or (weight norm) `weight_g`, `weight_v`, always `bias`


class Weighted(nn.Module):
    """The parameters of `layer` (a freshly initialised nn.Conv2d,
    nn.ConvTranspose2d or nn.Linear), stored as torch.nn.utils.weight_norm
    stores them (dim 0: per output channel for Conv2d and Linear, per INPUT
    channel for ConvTranspose2d, whose weight is (in, out, kh, kw)), with g
    starting at ||v|| so the effective weight starts as the layer's own."""

    def __init__(self, layer, weight_norm):
        super().__init__()
        w = layer.weight.detach().clone()
        self.bias = nn.Parameter(layer.bias.detach().clone())
        self.weight_norm = weight_norm
        if weight_norm:
            self.weight_g = nn.Parameter(norm_except_dim0(w))
            self.weight_v = nn.Parameter(w)
        else:
            self.weight = nn.Parameter(w)

    def effective_weight(self):
        """g * v / ||v||, the norm over every dim but 0."""
        if not self.weight_norm:
            return self.weight
        return self.weight_g * self.weight_v / norm_except_dim0(self.weight_v)


def norm_except_dim0(v):
    return torch.linalg.vector_norm(v, dim=tuple(range(1, v.dim())), keepdim=True)


class Conv(Weighted):
    def __init__(self, cin, cout, kernel, stride, weight_norm):
        super().__init__(nn.Conv2d(cin, cout, kernel, stride), weight_norm)
        self.stride = stride

    def forward(self, x):
        return F.conv2d(x, self.effective_weight(), self.bias, self.stride)


class Deconv(Weighted):
    """ConvTranspose2d(kernel, stride 2, output_padding 1): (H, W) -> (2H + kh - 1, 2W + kw - 1)."""

    def __init__(self, cin, cout, kernel, weight_norm):
        super().__init__(nn.ConvTranspose2d(cin, cout, kernel, 2, output_padding=1), weight_norm)

    def forward(self, x):
        return F.conv_transpose2d(x, self.effective_weight(), self.bias, 2, output_padding=1)


class Linear(Weighted):
    def __init__(self, cin, cout, weight_norm):
        super().__init__(nn.Linear(cin, cout), weight_norm)

    def forward(self, x):
        return F.linear(x, self.effective_weight(), self.bias)


class Nin(nn.Module):
    """A Linear over the channels of (N, C, H, W): a 1x1 convolution."""

    def __init__(self, cin, cout, wn):
        super().__init__()
        self.lin_a = Linear(cin, cout, wn)

    def forward(self, x):
        return self.lin_a(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def down_shift(x):
    """Drop the last row, pad one zero row on top."""
    return F.pad(x[:, :, :-1, :], (0, 0, 1, 0))


def right_shift(x):
    """Drop the last column, pad one zero column on the left."""
    return F.pad(x[:, :, :, :-1], (1, 0, 0, 0))


class DownShiftedConv2d(nn.Module):
    """Output (r, c) reads rows r-kh+1 .. r, columns c-(kw-1)/2 .. c+(kw-1)/2 (stride 1)."""

    def __init__(self, cin, cout, wn, filter_size=(2, 3), stride=1, shift_output_down=False):
        super().__init__()
        kh, kw = filter_size
        self.pad = ((kw - 1) // 2, (kw - 1) // 2, kh - 1, 0)  # left, right, top, bottom
        self.conv = Conv(cin, cout, filter_size, stride, wn)
        self.shift_output_down = shift_output_down

    def forward(self, x):
        x = self.conv(F.pad(x, self.pad))
        return down_shift(x) if self.shift_output_down else x


class DownRightShiftedConv2d(nn.Module):
    """Output (r, c) reads rows r-kh+1 .. r, columns c-kw+1 .. c (stride 1)."""

    def __init__(self, cin, cout, wn, filter_size=(2, 2), stride=1, shift_output_right=False):
        super().__init__()
        kh, kw = filter_size
        self.pad = (kw - 1, 0, kh - 1, 0)
        self.conv = Conv(cin, cout, filter_size, stride, wn)
        self.shift_output_right = shift_output_right

    def forward(self, x):
        x = self.conv(F.pad(x, self.pad))
        return right_shift(x) if self.shift_output_right else x


class DownShiftedDeconv2d(nn.Module):
    """Stride-2 upsampling, cropped to rows [: H_out - kh + 1], columns
    [(kw-1)/2 : W_out - (kw-1)/2]: (H, W) -> (2H, 2W)."""

    def __init__(self, cin, cout, wn, filter_size=(2, 3)):
        super().__init__()
        self.filter_size = filter_size
        self.deconv = Deconv(cin, cout, filter_size, wn)

    def forward(self, x):
        x = self.deconv(x)
        kh, kw = self.filter_size
        return x[:, :, : x.shape[2] - kh + 1, (kw - 1) // 2 : x.shape[3] - (kw - 1) // 2]


class DownRightShiftedDeconv2d(nn.Module):
    """Stride-2 upsampling cropped to rows [: H_out - kh + 1], columns [: W_out - kw + 1]."""

    def __init__(self, cin, cout, wn, filter_size=(2, 2)):
        super().__init__()
        self.filter_size = filter_size
        self.deconv = Deconv(cin, cout, filter_size, wn)

    def forward(self, x):
        x = self.deconv(x)
        kh, kw = self.filter_size
        return x[:, :, : x.shape[2] - kh + 1, : x.shape[3] - kw + 1]


def concat_elu(x):
    return F.elu(torch.cat([x, -x], dim=1))


class GatedResnet(nn.Module):
    """x + a * sigmoid(b), (a, b) = conv_out(concat_elu(conv_input(concat_elu(x))
    [+ nin_skip(concat_elu(skip input))])) [+ class_bias[labels]], split in halves."""

    def __init__(self, f, conv_op, skip, wn, classes=None, map_features=None):
        super().__init__()
        self.conv_input = conv_op(2 * f, f, wn)
        if skip > 0:
            self.nin_skip = Nin(2 * skip * f, f, wn)
        self.conv_out = conv_op(2 * f, 2 * f, wn)
        self.class_bias = nn.Parameter(torch.zeros(classes, 2 * f)) if classes is not None else None
        self.map_conv = map_conv_module(map_features, 2 * f)

    def forward(self, x, a=None, labels=None):
        c = self.conv_input(concat_elu(x))
        if a is not None:
            c = c + self.nin_skip(concat_elu(a))
        c2 = self.conv_out(concat_elu(c))
        c2 = add_class_bias(c2, self.class_bias, labels, self.map_conv)
        f = x.shape[1]
        return x + c2[:, :f] * torch.sigmoid(c2[:, f:])


class Layer(nn.Module):
    """One stage: `u_stream.{j}` (down-shifted) and `ul_stream.{j}` (down-right-shifted) blocks."""

    def __init__(self, blocks, f, u_skip, ul_skip, wn, classes, map_features=None):
        super().__init__()
        self.u_stream = nn.ModuleList(GatedResnet(f, DownShiftedConv2d, u_skip, wn, classes, map_features) for _ in range(blocks))
        self.ul_stream = nn.ModuleList(GatedResnet(f, DownRightShiftedConv2d, ul_skip, wn, classes, map_features) for _ in range(blocks))


def strided(conv_op, wn, f):
    return conv_op(f, f, wn, stride=2)


# ---------------------------------------------------------------------------
# the network


class PixelCNNPP(nn.Module):
    """Architecture "pixelcnn++". Keyword arguments are the checkpoint config's
    camelCase keys (filters = nr_filters, resnetBlocks = nr_resnet, mixtures
    = nr_logistic_mix); those of the other architectures are ignored."""

    def __init__(self, height=32, width=32, channels=3, output="bernoulli", mixtures=None, classes=None,
                 filters=160, resnetBlocks=5, dropout=None, weightNorm=True, architecture="pixelcnn++",
                 inputKernel=None, outputLayers=None, residualBlocks=None, residualKernel=None,
                 layers=None, kernel=None, vocabulary=None, embedding=None, conditionSize=None, conditionMap=None):
        super().__init__()
        if architecture != "pixelcnn++":
            raise ValueError(f"PixelCNNPP cannot build architecture {architecture!r}")
        if height % 4 or width % 4:
            raise ValueError("height and width must be multiples of 4 (two stride-2 stages)")
        self.height, self.width, self.channels, self.classes = height, width, channels, classes
        classes, mf = setup_conditioning(self, classes, conditionSize, conditionMap)  # a class is a one-hot condition
        self.output_kind, self.mixtures = output, mixtures
        self.groups = channel_groups(channels, output)
        c, f, r, wn = channels, filters, resnetBlocks, weightNorm
        out = output_channels(output, channels, mixtures, vocabulary)
        self.vocabulary, self.embedding = vocabulary, token_embedding(vocabulary, embedding)
        cin = embedding if vocabulary else c  # what the first layers read

        self.u_init = DownShiftedConv2d(cin + 1, f, wn, (2, 3), shift_output_down=True)
        self.ul_init = nn.ModuleList([DownShiftedConv2d(cin + 1, f, wn, (1, 3), shift_output_down=True),
                                      DownRightShiftedConv2d(cin + 1, f, wn, (2, 1), shift_output_right=True)])
        self.up_layers = nn.ModuleList(Layer(r, f, 0, 1, wn, classes, mf) for _ in range(3))
        self.down_layers = nn.ModuleList(Layer(n, f, 1, 2, wn, classes, mf) for n in (r, r + 1, r + 1))
        self.downsize_u_stream = nn.ModuleList(strided(DownShiftedConv2d, wn, f) for _ in range(2))
        self.downsize_ul_stream = nn.ModuleList(strided(DownRightShiftedConv2d, wn, f) for _ in range(2))
        self.upsize_u_stream = nn.ModuleList(DownShiftedDeconv2d(f, f, wn) for _ in range(2))
        self.upsize_ul_stream = nn.ModuleList(DownRightShiftedDeconv2d(f, f, wn) for _ in range(2))
        self.nin_out = Nin(f, out, wn)
        if self.groups == 3:
            # Output channel o (group o // (out / 3)) reads the pixel's input
            # channels < its group; zero at first, as the library starts it.
            self.pixel_link = nn.Conv2d(c, out, 1, bias=False)
            nn.init.zeros_(self.pixel_link.weight)
            groups = torch.arange(out) // (out // 3)
            self.register_buffer("pixel_link_mask", (torch.arange(c)[None, :] < groups[:, None]).float()[:, :, None, None],
                                 persistent=False)

    def forward(self, x, labels=None):  # (N, C, H, W) pixel values, labels (N,) -> logits (N, outC, H, W)
        labels = condition_map_input(self, check_labels(self.classes, labels, x, self.condition_size))
        x_in = model_input(self, x)
        x = torch.cat([x_in, torch.ones_like(x_in[:, :1])], dim=1)

        u_list = [self.u_init(x)]
        ul_list = [self.ul_init[0](x) + self.ul_init[1](x)]
        for i in range(3):
            layer = self.up_layers[i]
            u, ul = u_list[-1], ul_list[-1]
            for u_block, ul_block in zip(layer.u_stream, layer.ul_stream):
                u = u_block(u, labels=labels)
                ul = ul_block(ul, a=u, labels=labels)
                u_list.append(u)
                ul_list.append(ul)
            if i != 2:
                u_list.append(self.downsize_u_stream[i](u_list[-1]))
                ul_list.append(self.downsize_ul_stream[i](ul_list[-1]))

        u, ul = u_list.pop(), ul_list.pop()
        for i in range(3):
            layer = self.down_layers[i]
            for u_block, ul_block in zip(layer.u_stream, layer.ul_stream):
                u = u_block(u, a=u_list.pop(), labels=labels)
                ul = ul_block(ul, a=torch.cat([u, ul_list.pop()], dim=1), labels=labels)
            if i != 2:
                u = self.upsize_u_stream[i](u)
                ul = self.upsize_ul_stream[i](ul)
        assert not u_list and not ul_list

        logits = self.nin_out(F.elu(ul))
        if self.groups == 3:
            logits = logits + F.conv2d(x_in, self.pixel_link.weight * self.pixel_link_mask)
        return logits


# ---------------------------------------------------------------------------
# the port's checkpoints


def port_output_rows(channels, mixtures):
    """perm with library row r = port row perm[r] of `nin_out`. The port's
    outputs (utils.discretized_mix_logistic_loss) are K logits, then for each
    channel c a block of 3K: K means, K log-scales, K coefficients (the block
    of channel j holds coefficient j: G on R, B on R, B on G). The library's:
    K logits, then for each kind t (means, log-scales, coefficients) a block
    of 3K, channel by channel. So library row K + t*3K + c*K + k is port row
    K + c*3K + t*K + k: the (channel, kind) axes transposed. Grayscale (the
    port's num_mix 3, discretized_mix_logistic_loss_1d): K logits, K means,
    K log-scales in both, the identity."""
    k = mixtures
    if channels == 1:
        return torch.arange(3 * k)
    rest = torch.arange(9 * k).view(3, 3, k)  # port: [channel c][kind t][k]
    return torch.cat([torch.arange(k), k + rest.transpose(0, 1).reshape(-1)])


def from_port_state_dict(state_dict, channels, mixtures, weight_norm=True):
    """A pclucas14/pixel-cnn-pp state dict (torch.save(model.state_dict()),
    with or without nn.DataParallel's `module.` prefix) in the layout of a
    "pixelcnn++" checkpoint with output "logistic-mixture", mixtures K: the
    same names, and nin_out's output rows (weight_g, weight_v, bias: weight
    norm on a Linear is per row) permuted by `port_output_rows`.

    weight_norm False folds every (weight_g, weight_v) into its effective
    `weight`, for a weightNorm false checkpoint computing the same. Needed
    for a state dict of the port before its commit 16c8b2f (2019-04-17,
    "Fixed weight_norm bug"; its published pretrained models are older):
    there the shifted convolutions (`...conv.`) have a plain `weight` while
    the `deconv`s and `lin_a`s have weight_g and weight_v."""
    perm = port_output_rows(channels, mixtures)
    converted = {}
    for name, tensor in state_dict.items():
        name = name[len("module."):] if name.startswith("module.") else name
        converted[name] = tensor[perm] if name.startswith("nin_out.lin_a.") else tensor
    if not weight_norm:
        for name in [n for n in converted if n.endswith(".weight_g")]:
            base = name[: -len("_g")]
            g, v = converted.pop(name), converted.pop(base + "_v")
            converted[base] = g * v / norm_except_dim0(v)
    return converted
