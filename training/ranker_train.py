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


def train_ranker(
    rows: np.ndarray,
    labels: np.ndarray,
    valid: np.ndarray,
    config: RankerConfig,
    progress: bool = True,
) -> DeepFeatureRanking:
    """``rows`` (L, C, F) normalised features, ``labels`` (L, C) 0/1, ``valid`` (L, C) bool."""
    torch.manual_seed(config.seed)
    keep = (labels * valid).sum(axis=1) > 0
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
    model.train()
    for _ in tqdm(range(config.epochs), desc="ranker", disable=not progress, leave=False):
        perm = torch.randperm(len(x), generator=gen)
        for b in range(0, len(perm), config.lists_per_batch):
            sel = perm[b : b + config.lists_per_batch]
            if len(sel) < 2:
                continue
            logits = model(x[sel])[..., 0].masked_fill(~v[sel], -1e9)
            logp = F.log_softmax(logits, dim=1)
            target = y[sel] / y[sel].sum(dim=1, keepdim=True)
            loss = -(target * logp).sum(dim=1).mean() + model.l2_penalty()
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return model
