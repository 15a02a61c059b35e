"""Noise specs: parsing, round trips, statistics of every kind, independence of draws."""

from __future__ import annotations

import pytest
import torch

from n2nkit.errors import UnknownNameError, UserInputError
from n2nkit.training.noise import add_noise, noise_kinds, parse_noise, quantize


def flat(value: float = 0.5, n: int = 16, side: int = 64) -> torch.Tensor:
    return torch.full((n, 3, side, side), value)


@pytest.mark.parametrize(
    "spec",
    [
        "gaussian:25",
        "gaussian:0-50",
        "gaussian:12.5",
        "poisson:30",
        "bernoulli:0.5",
        "impulse:0.3",
        "text:0.2",
        "pixelate:4",
        "pixelate:2-8",
    ],
)
def test_specs_round_trip(spec: str) -> None:
    parsed = parse_noise(spec)
    assert str(parsed) == spec
    assert parse_noise(str(parsed)) == parsed


def test_an_exponent_is_a_level_not_a_range() -> None:
    """`poisson:1e-3`, the documented minimum, was read as the range 1e to 3."""
    assert parse_noise("poisson:1e-3") == parse_noise("poisson:0.001")
    assert str(parse_noise("poisson:1e-3-0.5")) == "poisson:0.001-0.5"
    assert str(parse_noise("gaussian:2E1-3e1")) == "gaussian:20-30"


def test_kind_alone_takes_its_default_level() -> None:
    assert str(parse_noise("gaussian")) == "gaussian:25"
    assert set(noise_kinds()) == {"gaussian", "poisson", "bernoulli", "impulse", "text", "pixelate"}


def test_unknown_kind_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownNameError) as err:
        parse_noise("speckle:3")
    for kind in noise_kinds():
        assert kind in str(err.value)


@pytest.mark.parametrize(
    "spec",
    ["gaussian:x", "gaussian:-5", "bernoulli:1.5", "pixelate:2.5", "gaussian:50-10", "",
     "gaussian:1e30", "gaussian:300", "bernoulli:1", "impulse:1"],  # nothing left to learn from
)  # fmt: skip
def test_malformed_specs_are_user_errors(spec: str) -> None:
    with pytest.raises(UserInputError):
        parse_noise(spec)


def test_gaussian_std_matches_sigma_and_draws_are_independent() -> None:
    x = flat()
    g = torch.Generator().manual_seed(0)
    spec = parse_noise("gaussian:25")
    n1, n2 = spec.apply(x, g) - x, spec.apply(x, g) - x
    assert abs(n1.std().item() - 25 / 255) < 0.002
    assert abs(n1.mean().item()) < 0.002
    corr = torch.corrcoef(torch.stack([n1.flatten(), n2.flatten()]))[0, 1]
    assert abs(corr.item()) < 0.02  # two calls: independent
    per_image = n1.flatten(1)
    assert abs(torch.corrcoef(per_image[:2])[0, 1].item()) < 0.05  # two images: independent


def test_range_draws_a_level_per_image() -> None:
    x = flat(n=64)
    stds = (parse_noise("gaussian:0-50").apply(x, torch.Generator().manual_seed(1)) - x).std(
        dim=(1, 2, 3)
    )
    assert stds.min() < 15 / 255 and stds.max() > 35 / 255
    assert stds.max() < 52 / 255


def test_same_seed_same_draw() -> None:
    x = flat(n=2)
    a = add_noise(x, "poisson:30", torch.Generator().manual_seed(7))
    b = add_noise(x, "poisson:30", torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_poisson_is_unbiased_with_shot_variance() -> None:
    x = flat(0.4)
    y = parse_noise("poisson:30").apply(x, torch.Generator().manual_seed(0))
    assert abs(y.mean().item() - 0.4) < 0.005
    assert abs(y.var().item() - 0.4 / 30) < 0.001


@pytest.mark.parametrize("kind,p", [("bernoulli", 0.5), ("impulse", 0.3), ("text", 0.2)])
def test_fraction_of_corrupted_pixels(kind: str, p: float) -> None:
    x = flat(0.5, n=8)
    y = parse_noise(f"{kind}:{p}").apply(x, torch.Generator().manual_seed(0))
    changed = (y != x).any(dim=1).float().mean().item()
    tolerance = 0.03 if kind != "text" else 0.12  # text grows in whole glyph layers
    assert abs(changed - p) < tolerance
    assert y.min() >= 0 and y.max() <= 1


def test_bernoulli_drops_all_channels_of_a_pixel() -> None:
    x = flat(0.5, n=2)
    y = parse_noise("bernoulli:0.5").apply(x, torch.Generator().manual_seed(0))
    dropped = y == 0
    assert torch.equal(dropped.all(dim=1), dropped.any(dim=1))


def test_pixelate_makes_blocks_and_keeps_the_mean() -> None:
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    spec = parse_noise("pixelate:4")
    y = spec.apply(x, torch.Generator().manual_seed(1))
    assert abs(y.mean().item() - x.mean().item()) < 1e-4
    # each row holds at most 32/4 + 1 distinct runs of values (the grid offset is random)
    runs = (y[..., 1:] != y[..., :-1]).sum(-1) + 1
    assert runs.max().item() <= 9
    y2 = spec.apply(x, torch.Generator().manual_seed(2))
    assert not torch.equal(y, y2)  # the grid moves between draws: realisations differ


def test_add_noise_clips_and_quantizes_like_a_photo() -> None:
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    y = add_noise(x, "gaussian:50", torch.Generator().manual_seed(0))
    assert y.min() >= 0 and y.max() <= 1
    assert torch.allclose(y * 255, torch.round(y * 255), atol=1e-4)
    raw = add_noise(x, "gaussian:50", torch.Generator().manual_seed(0), clip=False)
    assert raw.min() < 0 < 1 < raw.max()
    assert torch.equal(quantize(raw), y)
