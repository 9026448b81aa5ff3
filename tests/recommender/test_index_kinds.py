"""The index kinds answer the same question: top-n items by inner product (scores exact)."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from recommender.retrieval import HNSWParams, ItemIndex, IVFPQParams


@pytest.fixture(scope="module")
def skewed() -> tuple[np.ndarray, np.ndarray]:
    """Clustered directions with log-normal norms: the inner-product skew of MF embeddings."""
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((40, 16))
    items = centres[rng.integers(0, 40, 20_000)] + 0.6 * rng.standard_normal((20_000, 16))
    items /= np.linalg.norm(items, axis=1, keepdims=True)
    items *= rng.lognormal(0, 0.35, (20_000, 1))
    queries = rng.standard_normal((50, 16))
    return queries.astype(np.float32), items.astype(np.float32)


def _recall(approx: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(np.intersect1d(a, e)) / len(e) for a, e in zip(approx, exact, strict=True)]))


@pytest.mark.parametrize(
    ("kind", "params", "floor"),
    [
        ("hnsw", HNSWParams(m=16, ef_construction=80, ef_search=256), 0.85),
        ("hnsw", HNSWParams(m=16, ef_construction=80, ef_search=128, mips_transform=True), 0.5),
        ("ivfpq", IVFPQParams(pq_m=8, nprobe=128, refine=8), 0.9),
        ("ivfpq", IVFPQParams(pq_m=8, nprobe=64, refine=8, mips_transform=True), 0.9),
    ],
)
def test_kinds_find_the_exact_top_and_score_it_exactly(skewed, kind, params, floor) -> None:
    queries, items = skewed
    _, exact_idx = ItemIndex.build(items, "flat").search(queries, 50)
    index = ItemIndex.build(items, kind, params)
    sc, idx = index.search(queries, 50)
    assert sc.shape == idx.shape == (50, 50)
    assert _recall(idx, exact_idx) >= floor
    # scores are the inner products of the returned items, best first
    np.testing.assert_allclose(sc, np.einsum("qd,qnd->qn", queries, items[idx]), rtol=1e-4, atol=1e-4)
    assert np.all(np.diff(sc, axis=1) <= 1e-5)


def test_ivfpq_is_compact_and_pads_short_rows() -> None:
    rng = np.random.default_rng(0)
    items = rng.standard_normal((12_000, 32)).astype(np.float32)
    index = ItemIndex.build(items, "ivfpq", IVFPQParams(pq_m=16, nprobe=1, refine=1))
    raw = index.index
    fixed = 4 * (raw.nlist * raw.d + raw.pq.M * raw.pq.ksub * raw.pq.dsub)  # centroids and codebooks
    per_item = (faiss.serialize_index(raw).nbytes - fixed) / len(items)
    assert per_item <= 16 + 8 + 1  # one byte per code, the 8-byte id, list headers
    index.set_nprobe(1)
    sc, idx = index.search(items[:2], 12_000)  # one list cannot hold every item
    assert (idx == -1).any() and np.all(np.isneginf(sc[idx == -1]))
    assert index.nprobe == 1 and index.ef_search is None


def test_ivfpq_needs_the_embeddings() -> None:
    rng = np.random.default_rng(0)
    items = rng.standard_normal((12_000, 8)).astype(np.float32)
    built = ItemIndex.build(items, "ivfpq", IVFPQParams(pq_m=4))
    with pytest.raises(ValueError, match="item embeddings"):
        ItemIndex(built.index, "ivfpq")
