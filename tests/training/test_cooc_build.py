"""The co-occurrence builder against a brute-force count, and its bounds."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from training.cooc import build_cooc


def _log(seed: int = 0, n_users: int = 25, n_items: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, 300)
    items = rng.integers(0, n_items, 300)
    return users, items, rng.permutation(300).astype(np.float64)


def _brute(users, items, times, n_items, max_history):
    by_user: dict[int, list[tuple[float, int]]] = {}
    for u, i, t in zip(users.tolist(), items.tolist(), times.tolist(), strict=True):
        by_user.setdefault(u, []).append((t, i))
    pair, per_item = Counter(), Counter()
    for events in by_user.values():
        last: dict[int, float] = {}
        for t, i in sorted(events):
            last[i] = t
        kept = [i for i, _ in sorted(last.items(), key=lambda x: x[1])][-max_history:]
        per_item.update(kept)
        pair.update((a, b) for a, b in itertools.permutations(kept, 2))
    return {(a, b): c / np.sqrt(per_item[a] * per_item[b]) for (a, b), c in pair.items()}


@pytest.mark.parametrize("max_history", [3, 50])
def test_top_neighbours_are_the_heaviest_cosine_partners(max_history: int) -> None:
    users, items, times = _log()
    nb, w = build_cooc(users, items, 25, 20, n_neighbours=4, max_history=max_history, times=times)
    weights = _brute(users, items, times, 20, max_history)
    for i in range(20):
        partners = sorted(((-v, j) for (a, j), v in weights.items() if a == i))[:4]
        want = [j for _, j in partners]
        assert nb[i][nb[i] >= 0].tolist() == want
        np.testing.assert_allclose(w[i][: len(want)], [-v for v, _ in partners], rtol=1e-6)


def test_chunked_counting_equals_one_pass_and_the_table_is_bounded() -> None:
    users, items, times = _log(1)
    one = build_cooc(users, items, 25, 20, n_neighbours=3, times=times)
    chunked = build_cooc(users, items, 25, 20, n_neighbours=3, times=times, chunk_pairs=10)
    for a, b in zip(one, chunked, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert one[0].shape == (20, 3) and one[0].dtype == np.int32 and one[1].dtype == np.float32


def test_users_with_one_item_add_no_pairs() -> None:
    nb, w = build_cooc(np.arange(5), np.arange(5), 5, 5, n_neighbours=2)
    assert (nb == -1).all() and not w.any()
