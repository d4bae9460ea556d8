"""The momentum-filtered optimizer (ktools.train.mofo): AdamW at fraction 1, a filtered step below it."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from ktools.train.config import TrainConfig  # noqa: E402
from ktools.train.mofo import SAMPLE, MomentumFilteredAdamW, top_fraction_mask  # noqa: E402


def _quadratic_problem(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(40, 30, generator=gen), torch.randn(40, 30, generator=gen)


def _run(optimizer_cls, steps: int = 6, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    start, target = _quadratic_problem()
    weight = torch.nn.Parameter(start.clone())
    optimizer = optimizer_cls([weight], **kwargs)
    for _ in range(steps):
        optimizer.zero_grad()
        ((weight - target) ** 3).abs().sum().backward()   # per-entry gradients of different sizes
        optimizer.step()
    return start, weight.detach()


def test_fraction_one_is_adamw_step_for_step() -> None:
    _, ours = _run(MomentumFilteredAdamW, lr=0.05, weight_decay=0.1, fraction=1.0)
    _, reference = _run(torch.optim.AdamW, lr=0.05, weight_decay=0.1)
    assert torch.allclose(ours, reference, atol=1e-6)


def test_one_step_moves_only_the_largest_momentum_entries() -> None:
    start, target = _quadratic_problem()
    weight = torch.nn.Parameter(start.clone())
    optimizer = MomentumFilteredAdamW([weight], lr=0.01, fraction=0.1)
    loss = ((weight - target) ** 3).abs().sum()
    loss.backward()
    grad = weight.grad.clone()
    optimizer.step()
    moved = weight.detach() != start
    assert moved.sum() == 120                               # 10 % of 1,200 entries
    # the first momentum is (1 - beta1) * grad: the moved entries are the largest gradients
    assert grad.abs()[moved].min() >= grad.abs()[~moved].max()


def test_entries_left_out_keep_their_moments_and_move_later() -> None:
    _, weight = _run(MomentumFilteredAdamW, steps=30, lr=0.01, fraction=0.1)
    start, _ = _quadratic_problem()
    share = (weight != start).float().mean().item()
    assert 0.1 < share < 1.0                                # more than one step's 10 %, not everything


def test_large_tensor_threshold_from_a_sample_is_close_and_repeatable() -> None:
    values = torch.randn(4 * SAMPLE, generator=torch.Generator().manual_seed(3))
    mask = top_fraction_mask(values, 0.1, step=7)
    assert abs(mask.float().mean().item() - 0.1) < 0.01
    assert torch.equal(mask, top_fraction_mask(values, 0.1, step=7))   # a resumed run picks the same
    assert values.abs()[mask].min() >= values.abs()[~mask].max()


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5, float("nan")])
def test_bad_fraction_is_refused_by_optimizer_and_config(fraction: float) -> None:
    with pytest.raises(ValueError, match="fraction"):
        MomentumFilteredAdamW([torch.nn.Parameter(torch.zeros(2))], fraction=fraction)
    with pytest.raises(ValueError, match="update_fraction"):
        TrainConfig(update_fraction=fraction)


def test_update_fraction_is_part_of_the_checkpoint_fingerprint() -> None:
    plain = TrainConfig()
    assert plain.update_fraction == 1.0
    assert plain.fingerprint() != plain.replace(update_fraction=0.1).fingerprint()
