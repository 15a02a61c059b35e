"""Quantization-aware fine-tuning: train through the rounding the INT8 export will apply.

Static INT8 (``export/quantize_int8.py``) rounds every convolution's weights to 8 bits per output
channel and every activation to 8 bits per tensor. A network trained in float has never seen
that rounding; on the shipped ``truncated`` it cost 0.30 dB at σ = 25 however the activation
ranges were calibrated (docs/models.md). Fine-tuning with the rounding *simulated* in the
forward pass (fake quantization) and passed straight through in the backward pass lets the
weights settle where rounding hurts least (Jacob et al., CVPR 2018; the straight-through
estimator of ``torch.fake_quantize_*``).

What is simulated mirrors what the export quantizes:

* every ``Conv2d``'s weights, symmetric INT8 per output channel, scale max|w| / 127.5, recomputed
  each step from the current weights (as the export computes it from the final ones);
* every ``Conv2d``'s input and output and every ``LeakyReLU``'s output, UINT8 per tensor over
  the range between the 0.01st and 99.99th percentiles, measured once on the first batches
  (:data:`CALIBRATION_BATCHES`) and then fixed: the export's ``percentile:99.99`` calibration,
  cut on each side;
* except the output head (the last convolution), which the export keeps in float.

The weights saved in checkpoints stay plain float, so ``n2nkit export`` quantizes them as any
model, calibrating afresh; validation during the run scores the *simulated INT8* network, so
``best.pt`` is the checkpoint whose INT8 is best. Ranges are measured again when a run resumes.
Where the export would equalize per-channel ranges first (:mod:`n2nkit.training.equalize`; n2n,
truncated, deeper), the trainer equalizes the ``--init`` weights before attaching the
simulation, so the simulated network is the one the export quantizes; the export quantizes a
``--qat`` checkpoint as it is, without equalizing it again.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator

import torch
from torch import nn

CALIBRATION_BATCHES = 4  # training batches whose activations set the fixed ranges
PERCENTILE = 99.99  # each side's cut, as the export's percentile:99.99 calibration
SAMPLE = 1 << 20  # values per tensor and batch kept for the percentiles (torch.quantile limit)
WEIGHT_LEVELS = 127.5  # symmetric INT8: scale = max|w| / 127.5 (onnxruntime's per-channel rule)


def fake_quant_weight(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` (O×I×kh×kw) rounded to symmetric INT8 per output channel; gradients pass."""
    w = weight.float()
    scale = w.detach().abs().amax(dim=(1, 2, 3)).clamp_min(1e-8) / WEIGHT_LEVELS
    zero = torch.zeros(w.shape[0], dtype=torch.int32, device=w.device)
    return torch.fake_quantize_per_channel_affine(w, scale, zero, 0, -128, 127).to(weight.dtype)


class ActivationRange:
    """One tensor's UINT8 grid: observed on calibration batches, then fixed."""

    def __init__(self) -> None:
        self.low: list[float] = []
        self.high: list[float] = []
        self.scale = 0.0
        self.zero_point = 0

    def observe(self, x: torch.Tensor) -> None:
        flat = x.detach().float().reshape(-1)
        if flat.numel() > SAMPLE:
            flat = flat[torch.randint(flat.numel(), (SAMPLE,), device=flat.device)]
        cut = torch.tensor([1 - PERCENTILE / 100, PERCENTILE / 100], device=flat.device)
        low, high = torch.quantile(flat, cut).tolist()
        self.low.append(low)
        self.high.append(high)

    def freeze(self) -> None:
        """The grid over the mean observed range, widened to hold 0 (as onnxruntime's). A
        tensor the calibration batches never reached stays unquantized."""
        if not self.low:
            return
        low = min(0.0, sum(self.low) / len(self.low))
        high = max(0.0, sum(self.high) / len(self.high))
        self.scale = max(high - low, 1e-8) / 255.0
        self.zero_point = int(round(-low / self.scale))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.scale:
            self.observe(x)
            return x
        # float32 out: bfloat16 holds 8 significant bits, too few for 256 levels over a range
        return torch.fake_quantize_per_tensor_affine(x.float(), self.scale, self.zero_point, 0, 255)


def _quantized_conv_forward(self: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    return self._conv_forward(x, fake_quant_weight(self.weight), self.bias)


def _output_head(model: nn.Module) -> nn.Module | None:
    """The last convolution: the export keeps it (and the residual add) in float."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1] if convs else None


class Simulation:
    """The fake-quantizers attached to a model; :meth:`calibrate` fixes the ranges."""

    def __init__(self, ranges: dict[str, ActivationRange]) -> None:
        self.ranges = ranges

    @property
    def calibrated(self) -> bool:
        return all(r.scale for r in self.ranges.values())

    def calibrate(self, batches: Iterator[torch.Tensor], forward: Callable) -> None:
        """Run ``forward`` on ``batches`` without gradients, then fix every range."""
        with torch.no_grad():
            for batch in batches:
                forward(batch)
        for r in self.ranges.values():
            r.freeze()


def simulate_int8(model: nn.Module) -> Simulation:
    """Attach INT8 fake quantization to ``model`` in place (module names as in its state dict).

    Every convolution's input (where the export quantizes a concatenation of skip and upsampled
    features as one tensor), weights and output, and every LeakyReLU's output; not the head.
    """
    head = _output_head(model)
    ranges: dict[str, ActivationRange] = {}
    for name, module in model.named_modules():
        if module is head or type(module) not in (nn.Conv2d, nn.LeakyReLU):
            continue
        if isinstance(module, nn.Conv2d):
            module.forward = types.MethodType(_quantized_conv_forward, module)
            grid_in = ranges[f"{name}:in"] = ActivationRange()
            module.register_forward_pre_hook(lambda _m, args, grid=grid_in: (grid(args[0]),))
        grid = ranges[name] = ActivationRange()
        module.register_forward_hook(lambda _m, _i, out, grid=grid: grid(out))
    return Simulation(ranges)
