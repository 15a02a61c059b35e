"""The report's U-Net variants, created by name through one registry.

Reads top to bottom: building blocks, the U-Net, then one small factory per variant. Every
variant is fully convolutional; ``model.size_multiple`` is the factor both input sides must be a
multiple of (2**pools for stride-2 pooling).

Table 1 of the reference report, as built by :func:`n2n`::

    ENC1: conv 3→48, conv 48→48, pool      (then ENC2..ENC5: conv 48→48 ×2, pool)
    MID:  conv1x1 48→48 at 1×1
    DEC5..DEC2: upsample ×2 (nearest), concat with the pool output of the same size,
                conv 96→48, conv 48→48
    DEC1: upsample, concat with the input, conv 51→64, conv 64→32, conv 32→3 (no activation)

Choices the report leaves open are documented on each factory.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from n2nkit.errors import UnknownNameError

NEGATIVE_SLOPE = 0.1  # the Noise2Noise paper's LeakyReLU


# --------------------------------------------------------------------------- building blocks
def conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1)


class ConvBlock(nn.Sequential):
    """``n`` 3×3 convolutions, each followed by LeakyReLU(0.1)."""

    def __init__(self, cin: int, cout: int, n: int) -> None:
        layers: list[nn.Module] = []
        for i in range(n):
            layers += [conv3x3(cin if i == 0 else cout, cout), nn.LeakyReLU(NEGATIVE_SLOPE)]
        super().__init__(*layers)


class InceptionModule(nn.Module):
    """Szegedy et al.'s module: 1×1, 1×1→3×3, 1×1→5×5 and avg-pool→1×1 branches side by side.

    Each branch is ``width`` wide; a 1×1 projection brings the concatenation back to ``cout`` so
    the module drops into the U-Net where a 3×3 convolution was.
    """

    def __init__(self, cin: int, cout: int, width: int) -> None:
        super().__init__()
        act = nn.LeakyReLU(NEGATIVE_SLOPE)
        self.b1 = nn.Sequential(nn.Conv2d(cin, width, 1), act)
        self.b3 = nn.Sequential(
            nn.Conv2d(cin, width, 1), act, nn.Conv2d(width, width, 3, padding=1), act
        )
        self.b5 = nn.Sequential(
            nn.Conv2d(cin, width, 1), act, nn.Conv2d(width, width, 5, padding=2), act
        )
        self.bp = nn.Sequential(
            nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
            nn.Conv2d(cin, width, 1),
            act,
        )
        self.project = nn.Sequential(nn.Conv2d(4 * width, cout, 1), act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], 1))


class InceptionBlock(nn.Sequential):
    """``n`` inception modules in a row: the encoder block of the Inception variant."""

    def __init__(self, cin: int, cout: int, n: int, width: int = 48) -> None:
        super().__init__(*[InceptionModule(cin if i == 0 else cout, cout, width) for i in range(n)])


def _lowpass_matrix(n: int, cutoff: float, like: torch.Tensor) -> torch.Tensor:
    """Real n×n matrix A with A·x = iFFT(mask·FFT(x)) for the ideal low-pass |f| <= cutoff.

    Built from cos/sin DFT matrices at run time from the tensor's own size, so the same graph
    exports to ONNX and TensorRT (neither has a portable FFT) for any input size.
    """
    idx = torch.arange(n, device=like.device, dtype=torch.float32)
    freq = torch.minimum(idx, n - idx) / n  # |frequency| in cycles per pixel
    keep = (freq <= cutoff).to(torch.float32)
    angle = (2 * math.pi / n) * idx[:, None] * idx[None, :]
    cos, sin = torch.cos(angle), torch.sin(angle)
    matrix = (cos * keep) @ cos.T + (sin * keep) @ sin.T
    return (matrix / n).to(like.dtype)


class FrequencySplit(nn.Module):
    """Split each channel into its low- and high-frequency parts (2C channels out).

    The report takes the 2D FFT of every channel, separates the centre of the (unshifted)
    spectrum, i.e. the high frequencies, from its border (the low ones) and inverts each part.
    Choice: the border is the box |fy|, |fx| <= ``cutoff`` cycles/pixel (0.25: half the band on
    each axis); high = x - low, which is exactly the complement.
    """

    def __init__(self, cutoff: float = 0.25) -> None:
        super().__init__()
        self.cutoff = cutoff

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        a_h = _lowpass_matrix(h, self.cutoff, x)
        a_w = _lowpass_matrix(w, self.cutoff, x)
        low = a_h @ x @ a_w  # both matrices are symmetric
        return torch.cat([low, x - low], 1)


class FFTBlock(nn.Sequential):
    """Frequency split, then the usual convolutions on the 2C channels."""

    def __init__(self, cin: int, cout: int, n: int, cutoff: float = 0.25) -> None:
        super().__init__(FrequencySplit(cutoff), *ConvBlock(2 * cin, cout, n))


class Upsample(nn.Module):
    """Nearest-neighbour ×``factor`` (size-agnostic, so ONNX keeps it dynamic)."""

    def __init__(self, factor: int) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=float(self.factor), mode="nearest")


# --------------------------------------------------------------------------- the U-Net
ENCODER_BLOCKS: dict[str, Callable[..., nn.Module]] = {
    "conv": ConvBlock,
    "inception": InceptionBlock,
    "fft": FFTBlock,
}


class UNet(nn.Module):
    """Noise2Noise U-Net with the knobs the report's variants turn.

    Args:
        depth: number of pooling stages (5 in Noise2Noise, 3 in Truncated).
        width: feature channels everywhere but the last decoder block (48).
        convs: 3×3 convolutions per encoder/decoder block (2; 3 in Deeper).
        bottleneck: ``"conv1x1"`` (Table 1's MID) or ``"block"`` (another encoder block, as the
            Truncated variant's ENC4).
        pool_stride: 2, or 1 for the HLS variant (sides shrink by one pixel per pool).
        upsample: ``"nearest"`` or ``"transposed"`` (HLS: a 2×2 stride-1 transposed conv).
        encoder: ``"conv"``, ``"inception"`` or ``"fft"`` encoder blocks.
        residual: add the input to the output, so the layers learn the noise to remove
            (DnCNN's residual learning). No parameters are added; the report's networks
            predict the image directly (``False``).
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        depth: int = 5,
        width: int = 48,
        convs: int = 2,
        bottleneck: str = "conv1x1",
        pool_stride: int = 2,
        upsample: str = "nearest",
        encoder: str = "conv",
        residual: bool = False,
    ) -> None:
        super().__init__()
        if encoder not in ENCODER_BLOCKS:
            raise UnknownNameError("encoder block", encoder, list(ENCODER_BLOCKS))
        self.config: dict[str, Any] = dict(
            in_channels=in_channels,
            out_channels=out_channels,
            depth=depth,
            width=width,
            convs=convs,
            bottleneck=bottleneck,
            pool_stride=pool_stride,
            upsample=upsample,
            encoder=encoder,
            residual=residual,
        )
        self.in_channels = in_channels
        self.residual = residual and in_channels == out_channels
        self.size_multiple = pool_stride**depth if pool_stride > 1 else 1
        # The smallest side it takes: one multiple, or for stride-1 pooling (each 2×2 pool
        # takes a pixel off) depth + 1 pixels.
        self.min_side = self.size_multiple if pool_stride > 1 else depth + 1
        block = ENCODER_BLOCKS[encoder]

        self.encoders = nn.ModuleList(
            block(in_channels if i == 0 else width, width, convs) for i in range(depth)
        )
        self.pool = nn.MaxPool2d(2, stride=pool_stride)
        if bottleneck == "conv1x1":
            self.bottleneck = nn.Sequential(
                nn.Conv2d(width, width, 1), nn.LeakyReLU(NEGATIVE_SLOPE)
            )
        elif bottleneck == "block":
            self.bottleneck = ConvBlock(width, width, 2)
        else:
            raise UnknownNameError("bottleneck", bottleneck, ["conv1x1", "block"])

        if upsample == "nearest":
            self.ups = nn.ModuleList(Upsample(pool_stride) for _ in range(depth))
        elif upsample == "transposed":
            self.ups = nn.ModuleList(
                nn.ConvTranspose2d(width, width, 2, stride=pool_stride) for _ in range(depth)
            )
        else:
            raise UnknownNameError("upsampling", upsample, ["nearest", "transposed"])

        # decoders[i] rebuilds level i; level 0 (DEC1) is the report's 64→32→out head.
        self.decoders = nn.ModuleList(ConvBlock(2 * width, width, convs) for _ in range(1, depth))
        self.head = nn.Sequential(
            conv3x3(width + in_channels, 64),
            nn.LeakyReLU(NEGATIVE_SLOPE),
            conv3x3(64, 32),
            nn.LeakyReLU(NEGATIVE_SLOPE),
            conv3x3(32, out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [x]
        h = x
        for encoder in self.encoders:
            h = self.pool(encoder(h))
            skips.append(h)
        h = self.bottleneck(skips.pop())
        for level in reversed(range(len(self.encoders))):
            h = torch.cat([self.ups[level](h), skips[level]], 1)
            h = self.decoders[level - 1](h) if level > 0 else self.head(h)
        return x + h if self.residual else h


# --------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class Variant:
    name: str
    factory: Callable[..., UNet]
    description: str


_REGISTRY: dict[str, Variant] = {}


def register(description: str) -> Callable[[Callable[..., UNet]], Callable[..., UNet]]:
    """Decorator: register a factory under its function name."""

    def wrap(factory: Callable[..., UNet]) -> Callable[..., UNet]:
        _REGISTRY[factory.__name__] = Variant(factory.__name__, factory, description)
        return factory

    return wrap


def variant_names() -> list[str]:
    return list(_REGISTRY)


def create_model(name: str, **kwargs: Any) -> UNet:
    """Build a variant by name; ``kwargs`` override its defaults (e.g. ``in_channels``)."""
    try:
        variant = _REGISTRY[name]
    except KeyError:
        raise UnknownNameError("model variant", name, variant_names()) from None
    model = variant.factory(**kwargs)
    model.variant = name
    model.variant_kwargs = dict(kwargs)
    return model


@register("Noise2Noise U-Net, Table 1 of the report (5 pools)")
def n2n(**kw: Any) -> UNet:
    return UNet(**kw)


@register("3 pools, ENC4 as the bottleneck: the report's phone-sized pick")
def truncated(**kw: Any) -> UNet:
    return UNet(**{"depth": 3, "bottleneck": "block", **kw})


@register("3 convolutions per block (all but the last decoder block)")
def deeper(**kw: Any) -> UNet:
    return UNet(**{"convs": 3, **kw})


@register("Higher latent space: stride-1 pools, 2×2 transposed-conv upsampling")
def hls(**kw: Any) -> UNet:
    """Choices: MaxPool 2×2 with stride 1 (each side shrinks by one pixel per pool) and a 2×2
    stride-1 transposed convolution in place of each nearest-neighbour upsampling; the decoder
    convolutions stay. Any input side of at least ``depth + 1`` pixels works."""
    return UNet(**{"pool_stride": 1, "upsample": "transposed", **kw})


@register("Low/high frequency split before every encoder block")
def fft(**kw: Any) -> UNet:
    """Choices: the split (see :class:`FrequencySplit`, cutoff 0.25 cycles/pixel) doubles the
    channels entering each encoder block's first convolution."""
    return UNet(**{"encoder": "fft", **kw})


@register("Inception modules in the encoder blocks")
def inception(**kw: Any) -> UNet:
    """Choices: each encoder convolution becomes an inception module (branches 48 wide, 1×1
    projection back to 48), which lands near the report's "3 times more parameters"."""
    return UNet(**{"encoder": "inception", **kw})


# --------------------------------------------------------------------------- accounting
def parse_variants(spec: str, option: str = "--variant") -> list[str]:
    """``n2n``, ``n2n,truncated`` or ``all`` -> registered variant names, in order, no repeats."""
    from n2nkit.errors import UserInputError

    if spec.strip() == "all":
        return variant_names()
    names = [v.strip() for v in spec.split(",") if v.strip()]
    if not names:
        raise UserInputError(f"{option} is empty; name a variant, a comma list, or all")
    if "all" in names:
        raise UserInputError(f"{option}: 'all' stands alone (all, or a comma list of variants)")
    for name in names:
        if name not in variant_names():
            raise UnknownNameError("model variant", name, [*variant_names(), "all"])
    return list(dict.fromkeys(names))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, height: int = 32, width: int = 32) -> int:
    """Multiply-accumulates for one ``height``×``width`` image (convolutions and matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, getattr(model, "in_channels", 3), height, width)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    return counter.get_total_flops() // 2


@dataclass(frozen=True)
class VariantInfo:
    name: str
    parameters: int
    macs: int
    size_multiple: int
    description: str


def describe_variants(size: int = 32) -> list[VariantInfo]:
    rows = []
    for variant in _REGISTRY.values():
        model = create_model(variant.name).eval()
        rows.append(
            VariantInfo(
                variant.name,
                count_parameters(model),
                count_macs(model, size, size),
                model.size_multiple,
                variant.description,
            )
        )
    return rows
