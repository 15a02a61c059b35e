"""The report's variants: exact parameter counts, any valid size, registry behaviour."""

from __future__ import annotations

import math

import pytest
import torch

from n2nkit.errors import UnknownNameError
from n2nkit.training.models import (
    FrequencySplit,
    count_macs,
    count_parameters,
    create_model,
    variant_names,
)

REPORT_COUNTS = {"n2n": 488_739, "truncated": 320_211, "deeper": 675_795}


@pytest.mark.parametrize(("name", "expected"), REPORT_COUNTS.items())
def test_parameter_counts_match_the_report(name: str, expected: int) -> None:
    assert count_parameters(create_model(name)) == expected


def test_all_report_variants_are_registered() -> None:
    assert set(variant_names()) >= {"n2n", "truncated", "deeper", "hls", "fft", "inception"}


@pytest.mark.parametrize("name", variant_names())
@pytest.mark.parametrize("hw", [(32, 32), (64, 96)])
def test_every_variant_keeps_the_input_shape(name: str, hw: tuple[int, int]) -> None:
    model = create_model(name).eval()
    x = torch.rand(2, 3, *hw)
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", variant_names())
def test_size_multiple_is_what_the_pools_need(name: str) -> None:
    model = create_model(name)
    m = model.size_multiple
    assert m >= 1 and (m & (m - 1)) == 0  # a power of two
    with torch.no_grad():
        model.eval()(torch.rand(1, 3, 2 * max(m, 8), 3 * max(m, 8)))


def test_unknown_variant_lists_the_choices() -> None:
    with pytest.raises(UnknownNameError) as err:
        create_model("resnet")
    for name in ("n2n", "truncated"):
        assert name in str(err.value)


def test_frequency_split_equals_fft_mask_and_inverse() -> None:
    x = torch.rand(2, 3, 16, 24, dtype=torch.float64)
    out = FrequencySplit(0.25)(x.float()).double()
    spectrum = torch.fft.fft2(x)
    fy = torch.fft.fftfreq(16).abs()[:, None]
    fx = torch.fft.fftfreq(24).abs()[None, :]
    low = torch.fft.ifft2(spectrum * ((fy <= 0.25) & (fx <= 0.25))).real
    assert torch.allclose(out[:, :3], low, atol=1e-4)
    assert torch.allclose(out[:, :3] + out[:, 3:], x, atol=1e-4)


def test_macs_scale_with_pixels() -> None:
    model = create_model("truncated")
    small, large = count_macs(model, 32, 32), count_macs(model, 64, 64)
    assert math.isclose(large / small, 4.0, rel_tol=0.01)


def test_residual_option_adds_the_input_and_no_parameters() -> None:
    torch.manual_seed(0)
    plain = create_model("n2n").eval()
    residual = create_model("n2n", residual=True).eval()
    residual.load_state_dict(plain.state_dict())  # same weights: the same layers
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        assert torch.allclose(residual(x), plain(x) + x, atol=1e-6)
    assert count_parameters(residual) == count_parameters(plain) == 488_739
