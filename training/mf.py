"""Matrix-factorisation trainer with BPR, sampled Softmax (SL) and SoftmaxLoss@K (SL@K) losses.

Everything per batch is vectorised in torch: one ``(B, n_items)`` score matmul, negatives drawn with
``torch.randint`` and read from that score matrix with ``gather``. For a 1,200-item catalogue the full
matmul is cheaper than gathering ``(B, N, dim)`` negative embeddings; for catalogues of millions of items the
gather path (score only sampled items) would be the one to add.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from training.losses import bpr_loss, slatk_loss, softmax_loss

LOSSES = ("bpr", "sl", "slatk")


@dataclass
class MFConfig:
    """Hyper-parameters of one MF training run. Defaults follow the SL@K authors' run script where known."""

    dim: int = 64
    loss: str = "sl"  # "bpr" | "sl" | "slatk"
    epochs: int = 30
    batch_size: int = 1024
    lr: float = 1e-2
    weight_decay: float = 0.0
    n_negatives: int = 256
    tau: float = 0.2  # softmax temperature (tau_d), SL and SL@K
    tau_w: float = 1.0  # SL@K weight temperature; authors' run_nni default tau_beta=1.0
    k: int = 20  # SL@K top-K
    cosine: bool = True  # score = cosine similarity (normalised embeddings), as in the authors' SL/SL@K
    seed: int = 0
    init: str = "auto"  # "normal" (N(0,1), nn.Embedding default) | "xavier" | "auto": xavier if not cosine
    slatk_detach_weight: bool = True  # False = authors' code (gradient through w); experiment only
    quantile_samples: int = 256  # SL@K: how many sampled negatives estimate beta (top-k cost vs accuracy)
    eval_every: int = 1  # call eval_fn every this many epochs
    select_metric: str | None = None  # e.g. "ndcg@20": return the best-epoch embeddings (VALIDATION only)
    patience: int | None = None  # early stop after this many evaluations without improvement


@dataclass
class MFResult:
    """Trained embeddings, ready for inner-product retrieval (normalised when the config is cosine)."""

    user_emb: np.ndarray
    item_emb: np.ndarray
    history: list[dict[str, float]]
    config: MFConfig
    best_epoch: int | None = None
    extra: dict[str, float] = field(default_factory=dict)


class _NegativeSampler:
    """Uniform negatives excluding the user's training positives, drawn for a whole batch at once.

    Draws with replacement, then redraws the (rare: Health density is 2%) collisions with positives a few
    times; anything still colliding is flagged so the loss can mask it out with ``-inf``.
    """

    def __init__(self, pos_mask: torch.Tensor, generator: torch.Generator, rounds: int = 8) -> None:
        self.pos_mask = pos_mask
        self.n_items = pos_mask.shape[1]
        self.generator = generator
        self.rounds = rounds

    def sample(self, users: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(neg_items (B, n), still_positive (B, n) bool)``."""
        neg = torch.randint(0, self.n_items, (len(users), n), generator=self.generator)
        user_mask = self.pos_mask[users]  # (B, n_items): row gather, then a cheap per-row gather
        bad = user_mask.gather(1, neg)
        for _ in range(self.rounds):
            n_bad = int(bad.sum())
            if n_bad == 0:
                break
            neg[bad] = torch.randint(0, self.n_items, (n_bad,), generator=self.generator)
            bad = user_mask.gather(1, neg)
        return neg, bad


def _export(user_w: torch.Tensor, item_w: torch.Tensor, cosine: bool) -> tuple[np.ndarray, np.ndarray]:
    """Float32 copies for retrieval; normalised when training scored by cosine, so inner product = score."""
    with torch.no_grad():
        u, i = user_w.detach(), item_w.detach()
        if cosine:
            u, i = F.normalize(u, dim=1), F.normalize(i, dim=1)
        return u.numpy().astype(np.float32, copy=True), i.numpy().astype(np.float32, copy=True)


def train_mf(
    users: np.ndarray,
    items: np.ndarray,
    n_users: int,
    n_items: int,
    config: MFConfig,
    eval_fn: Callable[[np.ndarray, np.ndarray], dict[str, float]] | None = None,
    progress: bool = True,
) -> MFResult:
    """Train MF embeddings on (user, item) interactions with the configured loss.

    One epoch = one pass over the shuffled training interactions in batches of ``batch_size``; each row is
    (user, positive item, ``n_negatives`` sampled negatives). ``eval_fn(user_emb, item_emb)`` is called every
    ``eval_every`` epochs and its metrics are added to the history; with ``select_metric`` the embeddings of
    the best evaluated epoch are returned (pass a validation slice here, never test).
    """
    if config.loss not in LOSSES:
        raise ValueError(f"unknown loss {config.loss!r}; expected one of {LOSSES}")
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    user_w = torch.empty(n_users, config.dim)
    item_w = torch.empty(n_items, config.dim)
    init = config.init if config.init != "auto" else ("normal" if config.cosine else "xavier")
    for w in (user_w, item_w):
        if init == "xavier":
            torch.nn.init.xavier_normal_(w, generator=gen)
        else:
            torch.nn.init.normal_(w, generator=gen)
    user_w.requires_grad_(True)
    item_w.requires_grad_(True)
    opt = torch.optim.Adam([user_w, item_w], lr=config.lr, weight_decay=config.weight_decay)

    u_all = torch.from_numpy(np.asarray(users, dtype=np.int64))
    i_all = torch.from_numpy(np.asarray(items, dtype=np.int64))
    pos_mask = torch.zeros(n_users, n_items, dtype=torch.bool)
    pos_mask[u_all, i_all] = True
    sampler = _NegativeSampler(pos_mask, gen)
    n_neg = 1 if config.loss == "bpr" and config.n_negatives <= 0 else config.n_negatives

    history: list[dict[str, float]] = []
    best_value, best_epoch, best_emb, bad_evals = -np.inf, None, None, 0
    epochs = tqdm(range(1, config.epochs + 1), desc=f"MF[{config.loss}]", disable=not progress, leave=False)
    for epoch in epochs:
        t0 = time.perf_counter()
        perm = torch.randperm(len(u_all), generator=gen)
        total, n_batches = 0.0, 0
        for start in range(0, len(perm), config.batch_size):
            idx = perm[start : start + config.batch_size]
            bu, bi = u_all[idx], i_all[idx]
            ue, ie = user_w[bu], item_w
            if config.cosine:
                ue, ie = F.normalize(ue, dim=1), F.normalize(ie, dim=1)
            scores = ue @ ie.T  # (B, n_items)
            pos = scores.gather(1, bi.unsqueeze(1)).squeeze(1)
            neg_idx, still_pos = sampler.sample(bu, n_neg)
            neg = scores.gather(1, neg_idx)
            if config.loss == "bpr":
                loss = bpr_loss(pos, neg)
            else:
                neg = neg.masked_fill(still_pos, float("-inf"))
                if config.loss == "sl":
                    loss = softmax_loss(pos, neg, config.tau)
                else:
                    # beta from the sampled negatives only (slides' negative-sampling trick), see losses.py
                    q_scores = neg.detach()[:, : config.quantile_samples]
                    loss = slatk_loss(
                        pos,
                        neg,
                        config.tau,
                        config.tau_w,
                        config.k,
                        n_items,
                        q_scores,
                        detach_weight=config.slatk_detach_weight,
                    )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach())
            n_batches += 1
        entry: dict[str, float] = {
            "epoch": float(epoch),
            "loss": total / max(n_batches, 1),
            "seconds": time.perf_counter() - t0,
        }
        if eval_fn is not None and (epoch % config.eval_every == 0 or epoch == config.epochs):
            u_np, i_np = _export(user_w, item_w, config.cosine)
            entry.update(eval_fn(u_np, i_np))
            if config.select_metric is not None:
                value = entry[config.select_metric]
                if value > best_value:
                    best_value, best_epoch, best_emb, bad_evals = value, epoch, (u_np, i_np), 0
                else:
                    bad_evals += 1
        history.append(entry)
        if progress:
            epochs.set_postfix({k: round(v, 4) for k, v in entry.items() if k != "epoch"})
        if config.patience is not None and bad_evals >= config.patience:
            break
    if best_emb is not None:
        u_np, i_np = best_emb
    else:
        u_np, i_np = _export(user_w, item_w, config.cosine)
    return MFResult(u_np, i_np, history, copy.deepcopy(config), best_epoch)
