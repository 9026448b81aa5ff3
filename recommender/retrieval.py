"""First stage: nearest items by inner product, through FAISS."""

from __future__ import annotations

import os
from dataclasses import dataclass

import faiss
import numpy as np
from tqdm import tqdm


@dataclass(frozen=True)
class HNSWParams:
    """HNSW graph parameters. Larger ``m`` / ``ef_*`` buy recall with memory and time."""

    m: int = 32
    ef_construction: int = 200
    ef_search: int = 256


class ItemIndex:
    """Inner-product search over item embeddings.

    ``kind="hnsw"`` builds ``faiss.IndexHNSWFlat`` (approximate, sub-linear: the serving default);
    ``kind="flat"`` builds ``faiss.IndexFlatIP`` (exact: small catalogues, and the reference when
    measuring HNSW recall). Both return ``(scores, indices)`` best first; rows that have fewer
    than ``n`` results are padded with index ``-1`` (FAISS's convention) and score ``-inf``.
    """

    def __init__(self, index: faiss.Index, kind: str) -> None:
        if kind not in ("hnsw", "flat"):
            raise ValueError(f"kind must be 'hnsw' or 'flat', got {kind!r}")
        self.index = index
        self.kind = kind

    @classmethod
    def build(
        cls,
        item_emb: np.ndarray,
        kind: str = "hnsw",
        params: HNSWParams | None = None,
        progress: bool = False,
        threads: int | None = None,
        chunk: int = 50_000,
    ) -> ItemIndex:
        """The index over ``item_emb``; vectors are added in ``chunk``-row pieces behind a progress bar.

        The build uses ``threads`` OpenMP threads (default: every core; a million 64-d items take
        about 4 minutes on 2 cores with the default graph) and restores FAISS's previous setting
        afterwards, so a caller that searches single-threaded keeps doing so. Chunked adds let the
        bar move; each ``add`` is still parallel inside.
        """
        emb = np.ascontiguousarray(item_emb, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[0] == 0:
            raise ValueError(f"item embeddings must be a non-empty (n_items, dim) matrix, got {emb.shape}")
        d = emb.shape[1]
        if kind == "flat":
            index: faiss.Index = faiss.IndexFlatIP(d)
        elif kind == "hnsw":
            p = params or HNSWParams()
            index = faiss.IndexHNSWFlat(d, p.m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = p.ef_construction
            index.hnsw.efSearch = p.ef_search
        else:
            raise ValueError(f"kind must be 'hnsw' or 'flat', got {kind!r}")
        before = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(threads or os.cpu_count() or 1)
        try:
            with tqdm(
                total=len(emb), desc=f"{kind} index", unit="item", disable=not progress, leave=False
            ) as bar:
                for lo in range(0, len(emb), chunk):
                    index.add(emb[lo : lo + chunk])
                    bar.update(min(chunk, len(emb) - lo))
        finally:
            faiss.omp_set_num_threads(before)
        return cls(index, kind)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    @property
    def n_items(self) -> int:
        return int(self.index.ntotal)

    @property
    def ef_search(self) -> int | None:
        return int(self.index.hnsw.efSearch) if self.kind == "hnsw" else None

    def set_ef_search(self, ef: int) -> None:
        if self.kind == "hnsw":
            self.index.hnsw.efSearch = int(ef)

    def search(
        self, queries: np.ndarray, n: int, ef_search: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``n`` items per query row: ``(scores (q, n) float32, indices (q, n) int64)``.

        ``ef_search`` overrides the HNSW beam width for this call only (never below ``n``);
        ignored by exact indexes.
        """
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        if q.shape[1] != self.dim:
            raise ValueError(f"query dimension {q.shape[1]} does not match index dimension {self.dim}")
        n = max(1, min(int(n), self.n_items))
        current = self.index.hnsw.efSearch if self.kind == "hnsw" else None
        ef = max(n, ef_search or current or 0)
        if current is not None and ef != current:
            # HNSW cannot return more than efSearch results: the beam is set for this call only.
            params = faiss.SearchParametersHNSW(efSearch=ef)
            scores, idx = self.index.search(q, n, params=params)
        else:
            scores, idx = self.index.search(q, n)
        scores[idx < 0] = -np.inf
        return scores, idx
