"""Matrix factorisation trained with a sampled-softmax loss (first version; SL@K comes next)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm


@dataclass
class MFConfig:
    dim: int = 64
    loss: str = "sl"
    epochs: int = 30
    batch_size: int = 1024
    lr: float = 1e-2
    weight_decay: float = 0.0
    n_negatives: int = 256
    tau: float = 0.2
    tau_w: float = 1.0
    k: int = 20
    cosine: bool = True
    seed: int = 0


@dataclass
class MFResult:
    user_emb: np.ndarray
    item_emb: np.ndarray
    history: list[dict[str, float]] = field(default_factory=list)
    config: MFConfig = field(default_factory=MFConfig)


def train_mf(
    users: np.ndarray,
    items: np.ndarray,
    n_users: int,
    n_items: int,
    config: MFConfig,
    eval_fn: Callable[[np.ndarray, np.ndarray], dict[str, float]] | None = None,
    progress: bool = True,
) -> MFResult:
    """Sampled softmax over cosine scores: each positive against ``n_negatives`` uniform items."""
    if config.loss != "sl":
        raise ValueError(f"loss {config.loss!r} is not available yet (only 'sl')")
    gen = torch.Generator().manual_seed(config.seed)
    U = torch.nn.Parameter(torch.randn(n_users, config.dim, generator=gen) * 0.1)
    V = torch.nn.Parameter(torch.randn(n_items, config.dim, generator=gen) * 0.1)
    opt = torch.optim.Adam([U, V], lr=config.lr, weight_decay=config.weight_decay)
    u_all = torch.from_numpy(users.astype(np.int64))
    i_all = torch.from_numpy(items.astype(np.int64))
    history: list[dict[str, float]] = []
    for epoch in tqdm(range(config.epochs), desc=f"MF ({config.loss})", disable=not progress, leave=False):
        start = time.perf_counter()
        perm = torch.randperm(len(u_all), generator=gen)
        total = 0.0
        for b in range(0, len(perm), config.batch_size):
            sel = perm[b : b + config.batch_size]
            u, i = u_all[sel], i_all[sel]
            neg = torch.randint(0, n_items, (config.n_negatives,), generator=gen)
            ue = F.normalize(U[u], dim=1) if config.cosine else U[u]
            pe = F.normalize(V[i], dim=1) if config.cosine else V[i]
            ne = F.normalize(V[neg], dim=1) if config.cosine else V[neg]
            pos = (ue * pe).sum(1, keepdim=True)
            logits = torch.cat([pos, ue @ ne.T], dim=1) / config.tau
            loss = -F.log_softmax(logits, dim=1)[:, 0].mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(sel)
        row: dict[str, float] = {
            "epoch": epoch + 1,
            "loss": total / len(perm),
            "seconds": time.perf_counter() - start,
        }
        if eval_fn is not None:
            ue_np, ie_np = _export(U, V, config.cosine)
            row.update(eval_fn(ue_np, ie_np))
        history.append(row)
    ue_np, ie_np = _export(U, V, config.cosine)
    return MFResult(ue_np, ie_np, history, config)


def _export(U: torch.Tensor, V: torch.Tensor, cosine: bool) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        u = F.normalize(U, dim=1) if cosine else U
        v = F.normalize(V, dim=1) if cosine else V
        return u.numpy().astype(np.float32).copy(), v.numpy().astype(np.float32).copy()
