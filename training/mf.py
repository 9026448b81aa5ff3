"""Matrix-factorisation trainer with BPR, sampled Softmax (SL) and SoftmaxLoss@K (SL@K) losses.

Memory is O(interactions + (users + items) · dim) at any catalogue size: the training positives
live in a CSR :class:`~training.sampling.PositiveIndex` (no users × items mask) and each batch
scores only a pool of items (:class:`~training.sampling.PoolSampler`). Two regimes, chosen
automatically by size (``MFConfig.sampler="auto"``):

* ``exact`` (at most ``exact_max_items`` = 8,192 items, e.g. Health 1,200, ML-100K 1,682): the
  pool is the whole catalogue, one ``(B, n_items)`` matmul (at most 32 MB for B = 1,024) and
  per-row uniform negatives read with ``gather``; cheaper than gathering ``(B, N, dim)`` item rows,
  and the same draws as the former dense trainer, so the documented results hold.
* ``sampled`` (larger catalogues): ``n_negatives`` (default 1,000, the SL@K authors' recipe)
  uniform items per batch shared by its rows, scored by one ``(B, dim) @ (dim, N)`` matmul.

The optimiser is Adam over the full tables while users + items ≤ ``dense_max_rows`` (50,000), else
``SparseAdam`` over the rows a batch touched: a dense Adam step over a 1.2M-row table costs more
than the batch itself.

Uniform sampling needs no log-Q correction here: with proposal ``q = 1/n_items`` the correction
adds the same ``log(n_items / N)`` to every negative's logit, and in the authors' negatives-only SL
form (:mod:`training.losses`) that only shifts the loss by a constant; the gradients are unchanged.
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

from training.losses import bpr_loss, estimate_topk_quantile, slatk_loss, softmax_loss
from training.sampling import PoolSampler, PositiveIndex

LOSSES = ("bpr", "sl", "slatk")
SAMPLERS = ("auto", "exact", "sampled")


@dataclass
class MFConfig:
    """Hyper-parameters of one MF training run. Defaults follow the SL@K authors' run script where known."""

    dim: int = 64
    loss: str = "sl"  # "bpr" | "sl" | "slatk"
    epochs: int = 30
    batch_size: int = 1024
    lr: float = 1e-2
    weight_decay: float = 0.0  # Adam's; with SparseAdam an L2 term on the batch's rows instead
    n_negatives: int = 1000  # the SL@K authors' run_nni neg_num
    tau: float = 0.2  # softmax temperature (tau_d), SL and SL@K
    tau_w: float = 1.0  # SL@K weight temperature; authors' run_nni default tau_beta=1.0
    k: int = 20  # SL@K top-K
    cosine: bool = True  # score = cosine similarity (normalised embeddings), as in the authors' SL/SL@K
    seed: int = 0
    init: str = "auto"  # "normal" (N(0,1), nn.Embedding default) | "xavier" | "auto": xavier if not cosine
    slatk_detach_weight: bool = True  # False = authors' code (gradient through w); experiment only
    quantile_samples: int = 256  # SL@K: how many sampled negatives estimate beta (top-k cost vs accuracy)
    # SL@K beta: 0 = per batch from the batch's negatives; R > 0 = a per-user buffer refreshed every
    # R epochs from ``quantile_samples`` uniform non-positive items (authors: 5, buffer starts at 0).
    beta_refresh_epochs: int = 0
    sampler: str = "auto"  # "exact" | "sampled" | "auto": exact up to exact_max_items
    exact_max_items: int = 8192
    pool_size: int = 1000  # sampled regime: items scored per batch (>= n_negatives)
    dense_max_rows: int = 50_000  # users + items above this: SparseAdam on the touched rows
    max_batches: int | None = None  # stop each epoch after this many batches (benchmarks)
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


def _export(user_w: torch.Tensor, item_w: torch.Tensor, cosine: bool) -> tuple[np.ndarray, np.ndarray]:
    """Float32 copies for retrieval; normalised when training scored by cosine, so inner product = score."""
    with torch.no_grad():
        u, i = user_w.detach(), item_w.detach()
        if cosine:
            u, i = F.normalize(u, dim=1), F.normalize(i, dim=1)
        return u.numpy().astype(np.float32, copy=True), i.numpy().astype(np.float32, copy=True)


def _beta_buffer(
    user_w: torch.Tensor,
    item_w: torch.Tensor,
    positives: PositiveIndex,
    config: MFConfig,
    gen: torch.Generator,
    chunk: int = 4096,
) -> torch.Tensor:
    """Every user's beta_u^K from ``quantile_samples`` uniform items (their positives masked), in chunks.

    O(users + chunk · M) memory; the Top-ceil(K·M/n_items) order statistic as in
    :func:`~training.losses.estimate_topk_quantile`.
    """
    n_users, n_items = user_w.shape[0], item_w.shape[0]
    out = torch.empty(n_users)
    with torch.no_grad():
        for lo in range(0, n_users, chunk):
            users = torch.arange(lo, min(lo + chunk, n_users))
            items = torch.unique(torch.randint(0, n_items, (config.quantile_samples,), generator=gen))
            ue, ie = user_w[users], item_w[items]
            if config.cosine:
                ue, ie = F.normalize(ue, dim=1), F.normalize(ie, dim=1)
            scores = (ue @ ie.T).masked_fill(positives.mask(users, items), float("-inf"))
            out[users] = estimate_topk_quantile(scores, config.k, n_items)
    return out


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
    if config.sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {config.sampler!r}; expected one of {SAMPLERS}")
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
    sparse = n_users + n_items > config.dense_max_rows
    if sparse:
        opt: torch.optim.Optimizer = torch.optim.SparseAdam([user_w, item_w], lr=config.lr)
    else:
        opt = torch.optim.Adam([user_w, item_w], lr=config.lr, weight_decay=config.weight_decay)

    u_all = torch.from_numpy(np.asarray(users, dtype=np.int64))
    i_all = torch.from_numpy(np.asarray(items, dtype=np.int64))
    positives = PositiveIndex(u_all.numpy(), i_all.numpy(), n_users)
    exact = config.sampler == "exact" or (config.sampler == "auto" and n_items <= config.exact_max_items)
    n_neg = 1 if config.loss == "bpr" and config.n_negatives <= 0 else config.n_negatives
    sampler = PoolSampler(positives, n_items, gen, exact, max(config.pool_size, n_neg))
    beta_buf: torch.Tensor | None = None

    history: list[dict[str, float]] = []
    best_value, best_epoch, best_emb, bad_evals = -np.inf, None, None, 0
    n_batches_epoch = -(-len(u_all) // config.batch_size)
    if config.max_batches is not None:
        n_batches_epoch = min(n_batches_epoch, config.max_batches)
    epochs = tqdm(range(1, config.epochs + 1), desc=f"MF[{config.loss}]", disable=not progress, leave=False)
    for epoch in epochs:
        t0 = time.perf_counter()
        if (
            config.loss == "slatk"
            and config.beta_refresh_epochs > 0
            and (epoch - 1) % config.beta_refresh_epochs == 0
        ):
            beta_buf = _beta_buffer(user_w.detach(), item_w.detach(), positives, config, gen)
        perm = torch.randperm(len(u_all), generator=gen)
        total, n_batches = 0.0, 0
        batches = tqdm(
            range(n_batches_epoch),
            desc=f"epoch {epoch}",
            unit="batch",
            disable=not progress or n_batches_epoch < 200,
            leave=False,
        )
        for b in batches:
            idx = perm[b * config.batch_size : (b + 1) * config.batch_size]
            bu, bi = u_all[idx], i_all[idx]
            pool = sampler.pool()
            if sparse:
                ue_raw = F.embedding(bu, user_w, sparse=True)
                pool_raw = F.embedding(pool, item_w, sparse=True)
                pos_raw = F.embedding(bi, item_w, sparse=True)
            else:
                ue_raw, pool_raw = user_w[bu], item_w if exact else item_w[pool]
                pos_raw = None if exact else item_w[bi]
            ue, ie = ue_raw, pool_raw
            if config.cosine:
                ue, ie = F.normalize(ue, dim=1), F.normalize(ie, dim=1)
            scores = ue @ ie.T  # (B, pool)
            if exact and not sparse:
                pos = scores.gather(1, bi.unsqueeze(1)).squeeze(1)
            else:
                pe = F.normalize(pos_raw, dim=1) if config.cosine else pos_raw
                pos = (ue * pe).sum(dim=1)
            cols, still_pos = sampler.negatives(bu, pool, n_neg)
            neg = scores if cols is None else scores.gather(1, cols)
            if config.loss == "bpr":
                loss = bpr_loss(pos, neg.masked_fill(still_pos, float("-inf")) if cols is None else neg)
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
                        beta=None if beta_buf is None else beta_buf[bu],
                    )
            if sparse and config.weight_decay > 0:
                rows = (ue_raw.pow(2).sum() + pool_raw.pow(2).sum() + pos_raw.pow(2).sum()) / len(bu)
                loss = loss + 0.5 * config.weight_decay * rows
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach())
            n_batches += 1
        elapsed = time.perf_counter() - t0
        entry: dict[str, float] = {
            "epoch": float(epoch),
            "loss": total / max(n_batches, 1),
            "seconds": elapsed,
            "interactions_per_s": min(len(u_all), n_batches * config.batch_size) / max(elapsed, 1e-9),
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
    extra = {
        "exact": float(exact),
        "sparse_optimizer": float(sparse),
        "positive_index_bytes": positives.nbytes,
    }
    return MFResult(u_np, i_np, history, copy.deepcopy(config), best_epoch, extra)
