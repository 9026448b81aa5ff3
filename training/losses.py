"""Recommendation losses used by the MF trainer.

Every function takes the score of one positive item per row, ``pos_scores`` of shape ``(B,)``, and the
scores of that row's sampled negatives, ``neg_scores`` of shape ``(B, N)``, and returns the scalar mean loss
over the batch. A negative score of ``-inf`` marks a padded / excluded slot: it contributes nothing to the
softmax sums, which lets the trainer drop sampled "negatives" that are really training positives without
changing tensor shapes.

The definitions follow the SL@K authors' public code (Tiny-Snow/IR-Benchmark-SLatK, ``optim_Softmax.py``,
``optim_SLatK.py``), not a textbook cross-entropy: the softmax sum runs over the negatives only, i.e.
``log sum_j exp((s_j - s_i) / tau)``. This differs from ``-log softmax`` including the positive by the
``log(1 + ...)`` term; we keep the authors' form because that is the recipe the paper's figures came from.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def bpr_loss(pos_scores: Tensor, neg_scores: Tensor) -> Tensor:
    """BPR: mean of ``-log sigmoid(s_pos - s_neg)`` over all (positive, negative) pairs.

    ``softplus(s_neg - s_pos)`` is the numerically stable form of ``-log sigmoid(s_pos - s_neg)``. Excluded
    negatives (``-inf``) give ``softplus(-inf) = 0`` but still count in the mean; the trainer resamples
    collisions for BPR so this never happens there.
    """
    diff = neg_scores - pos_scores.unsqueeze(1)
    return F.softplus(diff).mean()


def _softmax_terms(pos_scores: Tensor, neg_scores: Tensor, tau: float) -> Tensor:
    """Per-row ``log sum_j exp((s_j - s_i)/tau)`` over the negatives: the SL term shared by SL and SL@K."""
    diff = (neg_scores - pos_scores.unsqueeze(1)) / tau
    return torch.logsumexp(diff, dim=1)


def softmax_loss(pos_scores: Tensor, neg_scores: Tensor, tau: float) -> Tensor:
    """Sampled Softmax Loss (SL): mean over rows of ``log sum_{j in negatives} exp((s_j - s_i) / tau)``.

    SL upper-bounds ``-log NDCG`` (full ranking): the strong baseline SL@K builds on.
    """
    return _softmax_terms(pos_scores, neg_scores, tau).mean()


def estimate_topk_quantile(quantile_scores: Tensor, k: int, n_items: int) -> Tensor:
    """Monte-Carlo estimate of each row's Top-K score quantile beta_u^K (no gradient).

    ``quantile_scores`` (B, M) holds scores of a sample of the user's items; ``-inf`` slots are padding and
    do not count towards M. If the M valid scores are a uniform sample of the ``n_items`` catalogue, the
    Top-K quantile of the catalogue is estimated by the Top-ceil(K * M / n_items) order statistic of the
    sample (the slides' "sample quantile estimation"). When M >= n_items (the sample is the whole catalogue)
    this is exactly the K-th largest score.
    """
    scores = quantile_scores.detach()
    valid = torch.isfinite(scores).sum(dim=1).clamp(min=1)  # (B,)
    rank = torch.ceil(valid.to(scores.dtype) * (k / n_items)).long().clamp(min=1)
    rank = torch.minimum(rank, valid)
    max_rank = int(rank.max().item())
    top = torch.topk(scores, max_rank, dim=1).values  # (B, max_rank), descending
    return top.gather(1, (rank - 1).unsqueeze(1)).squeeze(1)


def slatk_weights(pos_scores: Tensor, beta: Tensor, tau_w: float, detach: bool = True) -> Tensor:
    """SL@K weight ``w_ui = sigmoid((s_ui - beta_u^K) / tau_w)``, detached.

    The weight is a smooth stand-in for the Top-K indicator ``I(s_ui >= beta_u^K)``; we treat it as a constant
    (stop-gradient) so that the gradient direction is the SL gradient re-weighted per positive. Letting the
    gradient flow through ``w`` would push positive scores *down* whenever the SL term is positive, which is
    the opposite of what a ranking loss wants.
    """
    scores = pos_scores.detach() if detach else pos_scores
    return torch.sigmoid((scores - beta.detach()) / tau_w)


def slatk_loss(
    pos_scores: Tensor,
    neg_scores: Tensor,
    tau: float,
    tau_w: float,
    k: int,
    n_items: int,
    quantile_scores: Tensor | None = None,
    *,
    detach_weight: bool = True,
    beta: Tensor | None = None,
) -> Tensor:
    """SoftmaxLoss@K: each positive's SL term, weighted by how likely it is in the user's Top-K.

    ``L = mean_i  sigmoid((s_ui - beta_u^K)/tau_w) * log sum_j exp((s_uj - s_ui)/tau)``.

    beta_u^K is estimated per row by :func:`estimate_topk_quantile` from ``quantile_scores`` (B, M): the
    scores of M items drawn uniformly from the user's *negatives* (non-training items), taking the
    ceil(K * M / n_items)-th largest. This is the slides' "negative sampling trick": positives and negatives
    have very different score distributions, and the Top-K that test NDCG@K measures is taken over
    non-training items (training items are masked at evaluation), so the negatives' quantile is the threshold
    that matters. The MF trainer passes (a prefix of) the same sampled negatives used in the SL term. If
    ``quantile_scores`` is None, ``neg_scores`` is used. A given ``beta`` (B,) is used as is instead (the
    trainer's per-user buffer refreshed every few epochs, as in the authors' code). No gradient flows
    through beta or the weight.
    """
    if beta is None:
        beta = estimate_topk_quantile(neg_scores if quantile_scores is None else quantile_scores, k, n_items)
    weights = slatk_weights(pos_scores, beta, tau_w, detach=detach_weight)
    return (weights * _softmax_terms(pos_scores, neg_scores, tau)).mean()
