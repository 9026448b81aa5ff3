"""The sparse positive check and the pool sampler: correct, and sized by the batch, not users × items."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from training.sampling import PoolSampler, PositiveIndex

REPO = Path(__file__).resolve().parents[2]


def _log(n_users: int, n_items: int, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_users, n), rng.integers(0, n_items, n)


def test_mask_matches_a_dense_reference() -> None:
    users, items = _log(50, 300, 2000)
    index = PositiveIndex(users, items, 50)
    dense = np.zeros((50, 300), bool)
    dense[users, items] = True
    batch = torch.tensor([3, 7, 7, 0, 49, 12])
    columns = torch.unique(torch.randint(0, 300, (120,), generator=torch.Generator().manual_seed(1)))
    got = index.mask(batch, columns).numpy()
    assert got.shape == (6, len(columns))
    np.testing.assert_array_equal(got, dense[batch.numpy()][:, columns.numpy()])
    assert got.any()  # the check can fail: some sampled columns are positives


def test_mask_of_heavy_users_matches_a_dense_reference() -> None:
    """Users with more items than columns are searched the other way round (columns in their row):
    same answer, including columns past the largest training item and users without items."""
    rng = np.random.default_rng(3)
    degrees = [0, 3, 40, 400, 900, 5]  # columns below: ~60, so users 2-4 are heavy
    users = np.repeat(np.arange(6), degrees)
    items = np.concatenate([rng.choice(1000, d, replace=False) for d in degrees])
    index = PositiveIndex(users, items, 6)
    dense = np.zeros((6, 1200), bool)
    dense[users, items] = True
    batch = torch.tensor([4, 2, 0, 3, 4, 1, 5, 2])
    for seed in range(5):
        draw = torch.randint(0, 1200, (60,), generator=torch.Generator().manual_seed(seed))
        columns = torch.unique(torch.cat([draw, torch.tensor([int(items.max()), 1199])]))
        got = index.mask(batch, columns).numpy()
        np.testing.assert_array_equal(got, dense[batch.numpy()][:, columns.numpy()])
    assert index.nbytes == 8 * len(items) * 2 + 8 * 7  # the sorted keys were built for the heavy users


def test_users_without_interactions_have_empty_rows() -> None:
    index = PositiveIndex(np.array([0, 0, 2]), np.array([5, 1, 5]), 4)
    row, item = index.rows(torch.tensor([1, 3, 0, 2]))
    assert row.tolist() == [2, 2, 3] and item.tolist() == [1, 5, 5]


def test_negatives_avoid_positives_or_are_flagged() -> None:
    users, items = _log(40, 60, 1500)  # dense: about half of each row is positive
    index = PositiveIndex(users, items, 40)
    dense = np.zeros((40, 60), bool)
    dense[users, items] = True
    batch = torch.arange(40)
    for exact in (True, False):
        sampler = PoolSampler(index, 60, torch.Generator().manual_seed(0), exact=exact, pool_size=50)
        pool = sampler.pool()
        cols, flagged = sampler.negatives(batch, pool, 16)
        assert cols is not None and cols.shape == flagged.shape == (40, 16)
        is_pos = dense[batch.numpy()[:, None], pool.numpy()[cols.numpy()]]
        np.testing.assert_array_equal(is_pos, flagged.numpy())
        assert flagged.float().mean() < 0.05  # redraws removed nearly all collisions


def test_sampler_allocations_do_not_grow_with_users_times_items() -> None:
    """Same number of interactions, catalogue 100,000 vs 100,000,000 items (users × items 1,000×
    larger): every structure the sampler holds or returns is sized by the interactions or the batch."""
    sizes = []
    for n_items in (100_000, 100_000_000):
        users, items = _log(2_000, n_items, 20_000)
        index = PositiveIndex(users, items, 2_000)
        sampler = PoolSampler(index, n_items, torch.Generator().manual_seed(0), exact=False, pool_size=500)
        batch = torch.from_numpy(users[:256])
        pool = sampler.pool()
        cols, flagged = sampler.negatives(batch, pool, 500)
        assert cols is None  # the whole pool is every row's negatives
        sizes.append((index.nbytes, pool.numel(), flagged.numel()))
    assert sizes[0][0] == sizes[1][0] == 20_000 * 8 + 2_001 * 8
    for _, pool_n, mask_n in sizes:  # a few duplicate draws may shrink the pool, nothing grows it
        assert 490 <= pool_n <= 500 and mask_n == 256 * pool_n  # batch × pool, not batch × catalogue


_PEAK = """
import json, resource, sys
import numpy as np, torch
torch.set_num_threads(1)
from training.mf import MFConfig, train_mf
n_users, n_items = 2_000, int(sys.argv[1])
rng = np.random.default_rng(0)
u, i = rng.integers(0, n_users, 20_000), rng.integers(0, n_items, 20_000)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
cfg = MFConfig(dim=4, epochs=1, n_negatives=200, pool_size=200)
res = train_mf(u, i, n_users, n_items, cfg, progress=False)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"grew_kb": after - before, "sparse": res.extra["sparse_optimizer"]}))
"""


def _peak_growth_kb(n_items: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _PEAK, str(n_items)], cwd=REPO, capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_training_peak_memory_is_linear_in_items_not_users_times_items() -> None:
    """2,000 users × 4M items: a dense bool mask alone would be 8 GB; the trainer's peak growth is
    the item table (4M × dim 4 × 4 bytes × 3 for Adam's state, ~190 MB), its export and little else."""
    small, big = _peak_growth_kb(10_000), _peak_growth_kb(4_000_000)
    assert big["sparse"] == 1.0
    users_x_items_kb = 2_000 * 4_000_000 / 1024
    assert big["grew_kb"] - small["grew_kb"] < 0.1 * users_x_items_kb  # measured ~300 MB; dense: 8 GB
