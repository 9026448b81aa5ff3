"""Training the DeepFeatureRanking tower on retrieved candidate lists (listwise softmax).

Why listwise softmax: at serving time the ranker only reorders one user's candidate list, so the
loss compares items *within* a list — exactly the decision it makes online. Lists with no
positive carry no signal and are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from recommender.ranker import DeepFeatureRanking


@dataclass
class RankerConfig:
    hidden_units: int = 64
    num_layers: int = 2
    dropout_rate: float = 0.2
    activation: str = "relu"
    l2_reg: float = 1e-4
    epochs: int = 8
    lists_per_batch: int = 32
    lr: float = 3e-3
    seed: int = 0
    # Early stopping: this share of the lists (whole users) is kept out of training; after each
    # epoch NDCG@10 within those lists is measured and the best epoch's weights are kept.
    # 0 disables it (all lists train, the last epoch is kept).
    val_fraction: float = 0.0
    patience: int = 3
    # "softmax": listwise (each list's positives against all its candidates); "pairwise": BPR,
    # log-sigmoid of (positive − negative) over every such pair of a list. Chosen on validation.
    loss: str = "softmax"


def train_ranker(
    rows: np.ndarray,
    labels: np.ndarray,
    valid: np.ndarray,
    config: RankerConfig,
    progress: bool = True,
    history: list[float] | None = None,
) -> DeepFeatureRanking:
    """``rows`` (L, C, F) normalised features, ``labels`` (L, C) 0/1, ``valid`` (L, C) bool.

    With ``val_fraction`` > 0, the validation NDCG@10 of each epoch is appended to ``history``.
    """
    torch.manual_seed(config.seed)
    keep = np.flatnonzero((labels * valid).sum(axis=1) > 0)
    n_val = round(len(keep) * config.val_fraction) if config.val_fraction > 0 else 0
    if n_val:
        shuffled = np.random.default_rng(config.seed).permutation(keep)
        val, keep = np.sort(shuffled[:n_val]), np.sort(shuffled[n_val:])
        xv = torch.from_numpy(rows[val])
        yv = (labels * valid)[val]
        vv = torch.from_numpy(valid[val])
    x = torch.from_numpy(rows[keep])
    y = torch.from_numpy((labels * valid)[keep].astype(np.float32))
    v = torch.from_numpy(valid[keep])
    model = DeepFeatureRanking(
        input_dim=rows.shape[-1],
        hidden_units=config.hidden_units,
        num_layers=config.num_layers,
        dropout_rate=config.dropout_rate,
        activation=config.activation,
        l2_reg=config.l2_reg,
    )
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    gen = torch.Generator().manual_seed(config.seed)
    best_score, best_state, since_best = -1.0, None, 0
    history = history if history is not None else []
    for _ in tqdm(range(config.epochs), desc="ranker", disable=not progress, leave=False):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        for b in range(0, len(perm), config.lists_per_batch):
            sel = perm[b : b + config.lists_per_batch]
            if len(sel) < 2:
                continue
            loss = list_loss(config.loss, model(x[sel])[..., 0], y[sel], v[sel]) + model.l2_penalty()
            opt.zero_grad()
            loss.backward()
            opt.step()
        if n_val:
            score = list_ndcg(model, xv, yv, vv)
            history.append(score)
            if score > best_score:
                best_score, since_best = score, 0
                best_state = {k: t.detach().clone() for k, t in model.state_dict().items()}
            else:
                since_best += 1
                if since_best >= config.patience:
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model


def list_loss(kind: str, scores: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean loss over a batch of lists: ``scores``/``labels`` (B, C), padding masked by ``valid``."""
    if kind == "softmax":
        logp = F.log_softmax(scores.masked_fill(~valid, -1e9), dim=1)
        return -((labels / labels.sum(dim=1, keepdim=True)) * logp).sum(dim=1).mean()
    if kind == "pairwise":
        pos = labels > 0
        neg = valid & ~pos
        pairs = (pos[:, :, None] & neg[:, None, :]).float()  # (B, C, C): positive i, negative j
        diff = scores[:, :, None] - scores[:, None, :]
        per_list = (F.softplus(-diff) * pairs).sum(dim=(1, 2)) / pairs.sum(dim=(1, 2)).clamp(min=1)
        return per_list.mean()
    raise ValueError(f"ranker loss must be 'softmax' or 'pairwise', got {kind!r}")


def list_ndcg(
    model: DeepFeatureRanking, x: torch.Tensor, labels: np.ndarray, valid: torch.Tensor, k: int = 10
) -> float:
    """Mean NDCG@k of the ranker's order within each candidate list (the decision it serves)."""
    model.eval()
    with torch.inference_mode():
        scores = model(x)[..., 0].masked_fill(~valid, -torch.inf).numpy()
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    gains = np.take_along_axis(labels, top, axis=1)
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.array([disc[: int(min(n, k))].sum() for n in labels.sum(axis=1)])
    return float(np.mean((gains * disc).sum(axis=1) / ideal))


def sample_label_users(
    users: np.ndarray, items: np.ndarray, max_users: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The (user, item) label pairs of at most ``max_users`` users (a uniform sample drawn with
    ``seed``; all pairs when there are fewer users)."""
    distinct = np.unique(users)
    if max_users is None or len(distinct) <= max_users:
        return users, items
    chosen = np.random.default_rng(seed).choice(distinct, max_users, replace=False)
    keep = np.isin(users, chosen)
    return users[keep], items[keep]


def normalisation(rows: np.ndarray, valid: np.ndarray, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (std 1 where below 1e-6) over the valid rows, as ``fit_normalisation``
    computes them, in two float64 passes over ``chunk`` lists at a time instead of one float64
    copy of every row."""
    n_feat = rows.shape[-1]
    total, count = np.zeros(n_feat), 0
    for b in range(0, len(rows), chunk):
        sel = rows[b : b + chunk][valid[b : b + chunk]].astype(np.float64)
        total += sel.sum(axis=0)
        count += len(sel)
    mean = total / max(count, 1)
    squares = np.zeros(n_feat)
    for b in range(0, len(rows), chunk):
        sel = rows[b : b + chunk][valid[b : b + chunk]].astype(np.float64)
        squares += ((sel - mean) ** 2).sum(axis=0)
    std = np.sqrt(squares / max(count, 1))
    return mean, np.where(std > 1e-6, std, 1.0)
