"""Per-channel activation equalization before INT8: the same function, ranges 8 bits can hold.

The INT8 export quantizes the equalized network, and ``--qat`` trains it (so it lives with
training, which the export may import).

Why: onnxruntime quantizes each activation tensor with one scale for all its channels, so a
channel whose values span a tenth of the tensor's range gets a tenth of its 256 codes, and a
channel that only some content drives hard sets the range for all. Measured on the shipped
truncated: the median channel used 6.5-7 of the 8 bits, and one encoder channel that the
training photos drive to 0.39 reached 0.90 on a saturated close-up (15 % of its pixels above
the tensor's calibrated maximum of 0.53), doubling INT8's error there (0.75 -> 1.64 grey levels
RMS from that tensor alone) while leaving other photos untouched.

How: a convolution followed by LeakyReLU, max-pooling, nearest upsampling and concatenation
reaches the convolutions that read it with every channel kept apart, and all of these commute
with a positive per-channel factor (LeakyReLU(x / s) = LeakyReLU(x) / s). So output channel c of
the producing convolution is divided by s_c (weights and bias) and the matching input channel
of every consuming convolution multiplied by s_c: the network computes the same function (to
float rounding) while each channel now spans the same range (Nagel et al., "Data-Free
Quantization Through Weight Equalization and Bias Correction", ICCV 2019, equalize weights
this way; here the activations are). The ranges come from noisy crops of the training photos
*and of the same photos with their colour channels reordered*, so colour-selective channels are
measured over colours the photos lack.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

EQUALIZE_CROPS = 192
EQUALIZE_SIDE = 64  # noisy crops of this side, in batches of EQUALIZE_BATCH
EQUALIZE_BATCH = 8
MIN_FACTOR = 1.0 / 16  # a channel is scaled up at most 16×: near-dead channels stay sane
Consumers = list[tuple[Any, int]]  # (Conv2d reading the channels, offset of its first one)


def _convs(block: Any) -> list[Any]:
    import torch

    return [m for m in block.modules() if isinstance(m, torch.nn.Conv2d)]


def equalization_pairs(model: Any) -> list[tuple[Any, Consumers]] | None:
    """(producing convolution, its consumers) for every activation tensor between two
    convolutions of a :class:`~n2nkit.training.models.UNet` with plain convolution blocks and
    nearest upsampling (n2n, truncated, deeper); ``None`` for any other network (Inception and
    FFT blocks mix channels before the next convolution, HLS upsamples by a transposed one)."""
    from n2nkit.training.models import UNet

    config = getattr(model, "config", {})
    if not isinstance(model, UNet) or (config.get("encoder"), config.get("upsample")) != (
        "conv",
        "nearest",
    ):
        return None
    width, depth = config["width"], len(model.encoders)
    pairs: list[tuple[Any, Consumers]] = []

    def chain(block: Any) -> list[Any]:
        convs = _convs(block)  # a block's convolutions in the order they run
        pairs.extend((a, [(b, 0)]) for a, b in itertools.pairwise(convs))
        return convs

    encoders = [chain(block) for block in model.encoders]
    bottleneck = chain(model.bottleneck)
    decoders = [chain(block) for block in model.decoders]
    head = chain(model.head)
    # Encoder k's pooled output is skips[k + 1]: the next encoder (or the bottleneck) reads it,
    # and so does decoders[k], as the second half of Concat(upsampled, skip).
    for k in range(depth):
        if k + 1 < depth:
            pairs.append((encoders[k][-1], [(encoders[k + 1][0], 0), (decoders[k][0], width)]))
        else:
            pairs.append((encoders[k][-1], [(bottleneck[0], 0)]))
    # Upsampled features are the first half of the next level's concatenation.
    pairs.append((bottleneck[-1], [(decoders[-1][0] if decoders else head[0], 0)]))
    for j, block in enumerate(decoders):
        pairs.append((block[-1], [(decoders[j - 1][0] if j > 0 else head[0], 0)]))
    return pairs


def colour_diverse_batches(noise: str, size_multiple: int, seed: int = 0) -> list[Any]:
    """Noisy crops of the built-in training photos and of their five other RGB orders."""
    from n2nkit.runtime.tiling import round_up
    from n2nkit.training.data import load_builtin_images
    from n2nkit.training.noisy_crops import noisy_crop_batches

    photos = load_builtin_images("train")
    orders = list(itertools.permutations(range(3)))
    images = [photo[..., list(order)] for photo in photos for order in orders]
    side = round_up(EQUALIZE_SIDE, max(size_multiple, 1))
    return noisy_crop_batches(noise, side, EQUALIZE_CROPS, EQUALIZE_BATCH, seed, images)


def equalize_activations(model: Any, batches: list[Any]) -> Any | None:
    """A copy of ``model`` whose inner activations span equal per-channel ranges over
    ``batches`` (float32 N×3×H×W), computing the same function; ``None`` when
    :func:`equalization_pairs` does not apply. A channel's range is the larger of its
    convolution output's maximum and minus its minimum: both sides are quantized (the
    convolution's output before the LeakyReLU, its positive side after)."""
    import torch

    model = copy.deepcopy(model).eval()  # the pairs name the copy's modules
    pairs = equalization_pairs(model)
    if pairs is None:
        return None
    extent: dict[Any, Any] = {}

    def record(module: Any, _inputs: Any, output: Any) -> None:
        span = torch.maximum(output.amax((0, 2, 3)), -output.amin((0, 2, 3)))
        extent[module] = span if module not in extent else torch.maximum(extent[module], span)

    hooks = [producer.register_forward_hook(record) for producer, _ in pairs]
    try:
        with torch.no_grad():
            for batch in batches:
                model(torch.from_numpy(batch))
    finally:
        for hook in hooks:
            hook.remove()
    with torch.no_grad():
        for producer, consumers in pairs:
            span = extent[producer].clamp(min=1e-12)
            factor = (span / span.max()).clamp(min=MIN_FACTOR)  # channel c is divided by it
            producer.weight.div_(factor.view(-1, 1, 1, 1))
            if producer.bias is not None:
                producer.bias.div_(factor)
            for consumer, offset in consumers:
                consumer.weight[:, offset : offset + len(factor)].mul_(factor.view(1, -1, 1, 1))
    return model
