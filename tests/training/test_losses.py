"""Loss shapes, hand-computed values, and the SL@K weight being a detached sigmoid((s - beta) / tau_w)."""

import math

import pytest
import torch

from training.losses import bpr_loss, estimate_topk_quantile, slatk_loss, slatk_weights, softmax_loss


def test_bpr_value_by_hand() -> None:
    pos = torch.tensor([1.0, 0.0])
    neg = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    # pairs: d = neg - pos -> [-1, 0], [0, 0]; softplus = log(1 + e^d)
    expected = (math.log(1 + math.exp(-1)) + 3 * math.log(2)) / 4
    loss = bpr_loss(pos, neg)
    assert loss.shape == ()
    assert loss.item() == pytest.approx(expected)


def test_softmax_value_by_hand_negatives_only() -> None:
    pos = torch.tensor([0.5])
    neg = torch.tensor([[0.3, 0.1]])
    tau = 0.2
    expected = math.log(math.exp((0.3 - 0.5) / tau) + math.exp((0.1 - 0.5) / tau))
    assert softmax_loss(pos, neg, tau).item() == pytest.approx(expected, rel=1e-6)


def test_softmax_ignores_minus_inf_negatives() -> None:
    pos = torch.tensor([0.5])
    with_pad = torch.tensor([[0.3, float("-inf")]])
    assert softmax_loss(pos, with_pad, 0.5).item() == pytest.approx((0.3 - 0.5) / 0.5, rel=1e-6)


def test_quantile_estimate_is_scaled_order_statistic() -> None:
    scores = torch.arange(10.0).flip(0).unsqueeze(0)  # 9, 8, ..., 0
    # K=2 of a 20-item catalogue sampled with M=10 -> rank ceil(2*10/20) = 1 -> largest = 9
    assert estimate_topk_quantile(scores, k=2, n_items=20).item() == 9.0
    # K=4 of 10 items fully observed -> 4th largest = 6
    assert estimate_topk_quantile(scores, k=4, n_items=10).item() == 6.0
    # padding (-inf) shrinks M: 5 valid of a 10-item catalogue, K=4 -> rank 2 -> 8
    padded = torch.tensor([[9.0, 8.0, 7.0, 6.0, 5.0, float("-inf"), float("-inf")]])
    assert estimate_topk_quantile(padded, k=4, n_items=10).item() == 8.0


def test_slatk_weight_is_detached_sigmoid_and_loss_matches() -> None:
    pos = torch.tensor([0.9, 0.1], requires_grad=True)
    neg = torch.tensor([[0.5, 0.2, 0.0, -0.1], [0.6, 0.4, 0.3, 0.2]], requires_grad=True)
    tau, tau_w, k, n_items = 0.2, 0.5, 1, 4
    beta = estimate_topk_quantile(neg, k, n_items)  # K=1 of 4 fully observed -> max
    assert torch.allclose(beta, torch.tensor([0.5, 0.6]))
    w = slatk_weights(pos, beta, tau_w)
    assert not w.requires_grad
    assert torch.allclose(w, torch.sigmoid((pos.detach() - beta) / tau_w))

    loss = slatk_loss(pos, neg, tau, tau_w, k, n_items)
    sl_terms = torch.logsumexp((neg - pos.unsqueeze(1)) / tau, dim=1)
    assert loss.item() == pytest.approx((w * sl_terms).mean().item(), rel=1e-6)

    # gradient equals the weighted SL gradient: nothing flows through beta or w
    loss.backward()
    pos_ref = pos.detach().clone().requires_grad_(True)
    neg_ref = neg.detach().clone().requires_grad_(True)
    (w * torch.logsumexp((neg_ref - pos_ref.unsqueeze(1)) / tau, dim=1)).mean().backward()
    assert torch.allclose(pos.grad, pos_ref.grad)
    assert torch.allclose(neg.grad, neg_ref.grad)


def test_slatk_explicit_quantile_scores_and_shapes() -> None:
    pos = torch.zeros(3)
    neg = torch.zeros(3, 5)
    q = torch.full((3, 7), 10.0)  # beta = 10 -> weight sigmoid(-10 / tau_w) is tiny
    loss = slatk_loss(pos, neg, tau=1.0, tau_w=1.0, k=1, n_items=7, quantile_scores=q)
    assert loss.shape == ()
    assert loss.item() == pytest.approx(torch.sigmoid(torch.tensor(-10.0)).item() * math.log(5), rel=1e-5)
