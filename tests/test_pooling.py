"""The shared suite every pooler must pass: shape, padding invariance, no in-place edits, gradients."""

from __future__ import annotations

import pytest
import torch

from poolbert.pooling import POOLERS, Pooler, make_pooler

H, LAYERS = 16, 3


def inputs(pooler: Pooler, batch: int = 3, length: int = 7, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, LAYERS, length, H) if pooler.uses_all_layers else (batch, length, H)
    hidden = torch.randn(*shape, generator=gen)
    lengths = torch.tensor([length, 4, 1])[:batch]
    mask = (torch.arange(length)[None, :] < lengths[:, None]).long()  # (B, T)
    return hidden, mask


def pad(hidden: torch.Tensor, mask: torch.Tensor, extra: int):
    """Append `extra` padding positions filled with large junk values."""
    junk_shape = list(hidden.shape)
    junk_shape[-2] = extra
    junk = torch.full(junk_shape, 1e4)
    no_tokens = torch.zeros(mask.shape[0], extra, dtype=mask.dtype)
    return torch.cat([hidden, junk], dim=-2), torch.cat([mask, no_tokens], dim=1)


@pytest.fixture(params=sorted(POOLERS))
def pooler(request) -> Pooler:
    torch.manual_seed(0)
    module = make_pooler(request.param, H, num_layers=LAYERS)
    with torch.no_grad():  # non-trivial parameters, so a pooler that ignores the mask shows it
        for param in module.parameters():
            param.add_(torch.randn_like(param) * 0.5)
    return module.eval()


def test_output_shape_matches_output_dim(pooler):
    hidden, mask = inputs(pooler)
    out = pooler(hidden, mask)
    assert out.shape == (3, pooler.output_dim)
    assert torch.isfinite(out).all()


def test_extra_padding_changes_nothing(pooler):
    hidden, mask = inputs(pooler)
    padded_hidden, padded_mask = pad(hidden, mask, extra=5)
    torch.testing.assert_close(pooler(padded_hidden, padded_mask), pooler(hidden, mask))


def test_padding_positions_are_ignored(pooler):
    """Changing what sits under the padding must not change the output."""
    hidden, mask = inputs(pooler)
    noisy = hidden.clone()
    pad_positions = (mask == 0)
    if pooler.uses_all_layers:
        noisy[pad_positions[:, None, :].expand(-1, LAYERS, -1)] = -777.0
    else:
        noisy[pad_positions] = -777.0
    torch.testing.assert_close(pooler(noisy, mask), pooler(hidden, mask))


def test_inputs_not_modified(pooler):
    hidden, mask = inputs(pooler)
    hidden_before, mask_before = hidden.clone(), mask.clone()
    pooler(hidden, mask)
    assert torch.equal(hidden, hidden_before)
    assert torch.equal(mask, mask_before)


def test_gradients_reach_the_inputs_and_parameters(pooler):
    hidden, mask = inputs(pooler)
    hidden.requires_grad_(True)
    pooler.train()
    pooler(hidden, mask).pow(2).sum().backward()
    assert hidden.grad is not None and hidden.grad.abs().sum() > 0
    for name, param in pooler.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_config_round_trips(pooler):
    rebuilt = type(pooler)(**pooler.get_config())
    assert rebuilt.output_dim == pooler.output_dim
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in pooler.state_dict().items()
    }


def test_batch_items_are_independent(pooler):
    """Each row's output depends on that row alone (no leakage across the batch)."""
    hidden, mask = inputs(pooler)
    full = pooler(hidden, mask)
    for i in range(hidden.shape[0]):
        torch.testing.assert_close(pooler(hidden[i : i + 1], mask[i : i + 1])[0], full[i])


def test_mean_max_is_mean_and_max_of_real_tokens():
    hidden = torch.tensor([[[1.0, -2.0], [3.0, 4.0], [100.0, 100.0]]])  # (1, 3, 2)
    mask = torch.tensor([[1, 1, 0]])
    out = make_pooler("mean_max", 2)(hidden, mask)
    torch.testing.assert_close(out, torch.tensor([[2.0, 1.0, 3.0, 4.0]]))


def test_attention_weights_follow_scores():
    """With w = e_0, the token with the largest first feature dominates the weighted sum."""
    pooler = make_pooler("attention", 2)
    with torch.no_grad():
        pooler.score.weight.copy_(torch.tensor([[50.0, 0.0]]))
    hidden = torch.tensor([[[0.0, 1.0], [1.0, 7.0], [9.0, 9.0]]])
    out = pooler(hidden, torch.tensor([[1, 1, 0]]))  # the third token is padding
    torch.testing.assert_close(out, torch.tensor([[1.0, 7.0]]), atol=1e-4, rtol=0)


def test_unknown_pooler_is_refused():
    with pytest.raises(ValueError, match="unknown pooling 'median'"):
        make_pooler("median", 8)
