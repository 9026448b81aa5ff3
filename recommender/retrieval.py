"""First stage: nearest items by inner product, through FAISS.

Three index kinds, all answering "the top-n items by inner product with the query":

* ``flat`` — ``IndexFlatIP``, exact (small catalogues; the reference when measuring recall).
* ``hnsw`` — an HNSW graph on inner product (the serving default; M and the beams were chosen
  on measurement: docs/performance-notes.md). ``HNSWParams(mips_transform=True)`` builds it
  instead over the MIPS→L2 transform (Bachrach et al. 2014: each item gets one more coordinate
  ``sqrt(R² − |x|²)``, ``R`` the largest norm, the query a 0, so the L2 order is the
  inner-product order): kept because it is the textbook answer, not the default because on
  norm-skewed embeddings it measured far worse (100k bench items, M=32, efSearch 256: recall@100
  0.67 against 0.93 for the inner-product graph).
* ``ivfpq`` — the compressed option for catalogues beyond memory: IVF lists with product-quantised
  codes (``pq_m`` bytes + an 8-byte id per item, about 41 bytes at the defaults); the
  ``refine × n`` best by PQ score are re-scored exactly from the item embeddings (memory-mapped
  from the bundle, so only the rows read are paged in) and the best ``n`` kept.

A bundle records the kind and these parameters in ``model.json`` (``index_kind``,
``index_params``); bundles written before ``index_params`` existed hold an inner-product HNSW and
load as one.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass

import faiss
import numpy as np
from tqdm import tqdm

KINDS = ("hnsw", "flat", "ivfpq")


@dataclass(frozen=True)
class HNSWParams:
    """HNSW graph parameters, chosen on measurement (sweep and reasons: docs/performance-notes.md).

    Larger ``m`` / ``ef_*`` buy recall with memory and time: ``m`` links per node (8·m bytes per
    item at level 0), ``ef_construction`` the build beam, ``ef_search`` the serving beam (at least
    the number of candidates asked for). ``mips_transform``: build over the MIPS→L2 transform
    (module doc); False builds the older inner-product graph.
    """

    m: int = 64
    ef_construction: int = 200
    ef_search: int = 256
    mips_transform: bool = False


@dataclass(frozen=True)
class IVFPQParams:
    """IVF-PQ parameters: ``nlist`` lists (default ``4·√n``), ``pq_m`` one-byte codes per item,
    ``nprobe`` lists searched per query (default an eighth of them: inner-product top lists spread
    over many directions, so far more lists must be read than for L2 neighbours), ``refine``: PQ
    results re-scored exactly per wanted one.

    ``mips_transform`` False (the default) partitions by direction (spherical k-means, inner
    product to unit centroids); True clusters the MIPS→L2-transformed vectors instead. On the
    bench embeddings the spherical lists need fewer probes for the same recall (sweep in
    docs/performance-notes.md); on isotropic toy data the transform can win, so both are kept.
    """

    nlist: int | None = None
    pq_m: int = 32
    nprobe: int | None = None  # default nlist / 8: the share of lists a recall@100 of 0.9 needs
    refine: int = 4
    mips_transform: bool = False


def mips_augment(emb: np.ndarray, radius: float, width: int | None = None) -> np.ndarray:
    """Items → ``[x, sqrt(R² − |x|²), 0…]``: all on the sphere of radius ``R`` (float32).

    ``width`` pads with zero columns (PQ needs a dimension its code count divides; a zero column
    changes no distance).
    """
    emb = np.asarray(emb, np.float32)
    d = emb.shape[1]
    out = np.zeros((emb.shape[0], max(width or 0, d + 1)), np.float32)
    out[:, :d] = emb
    sq = np.einsum("ij,ij->i", emb, emb, dtype=np.float64)
    out[:, d] = np.sqrt(np.maximum(radius * radius - sq, 0.0))
    return out


def _row_chunks(emb: np.ndarray, step: int = 50_000) -> Iterable[np.ndarray]:
    """``emb`` in contiguous pieces: each ``add`` is still parallel inside, and a bar can move."""
    for lo in range(0, emb.shape[0], step):
        yield np.ascontiguousarray(emb[lo : lo + step])


def _add_all(
    index: faiss.Index, chunks: Iterable[np.ndarray], n: int, desc: str, progress: bool, threads: int | None
) -> None:
    """Add every chunk with ``threads`` OpenMP threads (default: every core), behind a progress bar.

    A million 64-d items take about 4 minutes on 2 cores with the default graph, so the build
    shows where it is. FAISS's previous thread setting is restored afterwards, so a caller that
    searches single-threaded (the service) keeps doing so.
    """
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads or os.cpu_count() or 1)
    try:
        with tqdm(total=n, desc=desc, unit="item", disable=not progress, leave=False) as bar:
            for rows in chunks:
                index.add(rows)
                bar.update(len(rows))
    finally:
        faiss.omp_set_num_threads(before)


def _augmented_rows(emb: np.ndarray, radius: float, width: int | None = None, step: int = 1 << 16):
    """``mips_augment`` in chunks: a 1M-row catalogue never needs a second full copy at once."""
    for lo in range(0, emb.shape[0], step):
        yield mips_augment(emb[lo : lo + step], radius, width)


_BEAMS: dict[int, faiss.SearchParametersHNSW] = {}


def _beam(ef: int) -> faiss.SearchParametersHNSW:
    """The search parameters of a beam width, made once (~7 µs each; a search only reads them,
    so calls and threads share them)."""
    params = _BEAMS.get(ef)
    if params is None:
        params = _BEAMS[ef] = faiss.SearchParametersHNSW(efSearch=ef)
    return params


class ItemIndex:
    """Inner-product search over item embeddings (see the module doc for the kinds).

    ``search`` returns ``(scores, indices)`` best first, scores being inner products; rows with
    fewer than ``n`` results are padded with index ``-1`` and score ``-inf`` (FAISS's convention).
    ``vectors`` (the item embeddings) are needed by ``ivfpq`` for its exact re-scoring.
    """

    def __init__(
        self,
        index: faiss.Index,
        kind: str,
        *,
        mips_transform: bool = False,
        vectors: np.ndarray | None = None,
        refine: int = 4,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if kind == "ivfpq" and vectors is None:
            raise ValueError("an ivfpq index needs the item embeddings (vectors) for exact re-scoring")
        if kind == "ivfpq" and vectors is not None:
            d, width = int(vectors.shape[1]), int(index.d)
            if width != d and not (mips_transform and width > d):
                raise ValueError(f"index dimension {width} does not match item embeddings ({d})")
        self.index = index
        self.kind = kind
        self.mips_transform = bool(mips_transform)
        self.vectors = vectors
        self.refine = max(1, int(refine))
        self.radius_sq = 0.0
        if self.mips_transform and kind == "hnsw" and index.ntotal:
            # every stored vector has norm R by construction; one read gives R² for the scores
            self.radius_sq = float(np.square(index.reconstruct(0).astype(np.float64)).sum())

    @classmethod
    def build(
        cls,
        item_emb: np.ndarray,
        kind: str = "hnsw",
        params: HNSWParams | IVFPQParams | None = None,
        progress: bool = False,
        threads: int | None = None,
    ) -> ItemIndex:
        """The index over ``item_emb``; graph and list builds use ``threads`` cores (default all)
        and show a progress bar when ``progress`` (see ``_add_all``)."""
        emb = np.asarray(item_emb, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[0] == 0:
            raise ValueError(f"item embeddings must be a non-empty (n_items, dim) matrix, got {emb.shape}")
        n, d = emb.shape
        if kind == "flat":
            index: faiss.Index = faiss.IndexFlatIP(d)
            index.add(np.ascontiguousarray(emb))
            return cls(index, kind)
        radius = float(np.sqrt(np.einsum("ij,ij->i", emb, emb, dtype=np.float64).max()))
        if kind == "hnsw":
            p = params if isinstance(params, HNSWParams) else HNSWParams()
            if not p.mips_transform:
                index = faiss.IndexHNSWFlat(d, p.m, faiss.METRIC_INNER_PRODUCT)
                index.hnsw.efConstruction = p.ef_construction
                index.hnsw.efSearch = p.ef_search
                _add_all(index, _row_chunks(emb), n, "hnsw index", progress, threads)
                return cls(index, kind)
            index = faiss.IndexHNSWFlat(d + 1, p.m, faiss.METRIC_L2)
            index.hnsw.efConstruction = p.ef_construction
            index.hnsw.efSearch = p.ef_search
            _add_all(index, _augmented_rows(emb, radius), n, "hnsw index", progress, threads)
            return cls(index, kind, mips_transform=True)
        if kind == "ivfpq":
            p = params if isinstance(params, IVFPQParams) else IVFPQParams()
            nlist = p.nlist or max(1, min(n // 39, int(4 * math.sqrt(n))))  # ≥ 39 training points a list
            nbits = 8 if n >= 256 * 39 else 4  # 256 codewords need ~10k training rows; tiny catalogues get 16
            dd = -(-(d + 1) // p.pq_m) * p.pq_m if p.mips_transform else d  # d + 1, up to a multiple
            if p.mips_transform:
                quantizer: faiss.Index = faiss.IndexFlatL2(dd)
                index = faiss.IndexIVFPQ(quantizer, dd, nlist, p.pq_m, nbits)
            else:
                # Inner product with unit centroids (spherical k-means): an item joins the list of
                # its direction, and a query probes the lists whose directions it scores best.
                quantizer = faiss.IndexFlatIP(d)
                index = faiss.IndexIVFPQ(quantizer, d, nlist, p.pq_m, nbits, faiss.METRIC_INNER_PRODUCT)
                index.cp.spherical = True
            rng = np.random.default_rng(0)
            sample = np.sort(rng.choice(n, size=min(n, max(256 * 39, nlist * 64)), replace=False))
            rows = emb[sample]
            index.train(mips_augment(rows, radius, dd) if p.mips_transform else np.ascontiguousarray(rows))
            chunks = (
                _augmented_rows(emb, radius, dd)
                if p.mips_transform
                else (np.ascontiguousarray(emb[lo : lo + (1 << 16)]) for lo in range(0, n, 1 << 16))
            )
            _add_all(index, chunks, n, "ivfpq index", progress, threads)
            index.nprobe = min(p.nprobe or max(1, nlist // 8), nlist)
            return cls(index, kind, mips_transform=p.mips_transform, vectors=item_emb, refine=p.refine)
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")

    @property
    def dim(self) -> int:
        """The embeddings' dimension, read off the FAISS index (larger by one under the MIPS
        transform), so a bundle whose index does not fit its embeddings is refused at load. IVF-PQ
        pads its width to a multiple of ``pq_m``: its vectors give the dimension, checked against
        the index when it is made."""
        if self.kind == "ivfpq" and self.vectors is not None:
            return int(self.vectors.shape[1])
        return int(self.index.d) - (1 if self.mips_transform else 0)

    def _faiss_queries(self, q: np.ndarray) -> np.ndarray:
        """Queries in the index's space: ``[q, 0, …]`` under the MIPS transform."""
        if not self.mips_transform:
            return q
        fq = np.zeros((q.shape[0], int(self.index.d)), np.float32)
        fq[:, : q.shape[1]] = q
        return fq

    @property
    def n_items(self) -> int:
        return int(self.index.ntotal)

    @property
    def ef_search(self) -> int | None:
        """The HNSW beam (``None`` for the other kinds: they have no beam to narrow per query)."""
        return int(self.index.hnsw.efSearch) if self.kind == "hnsw" else None

    def set_ef_search(self, ef: int) -> None:
        if self.kind == "hnsw":
            self.index.hnsw.efSearch = int(ef)

    @property
    def nprobe(self) -> int | None:
        return int(self.index.nprobe) if self.kind == "ivfpq" else None

    def set_nprobe(self, nprobe: int) -> None:
        if self.kind == "ivfpq":
            self.index.nprobe = max(1, min(int(nprobe), int(self.index.nlist)))

    def params(self) -> dict[str, int | bool | None]:
        """What the bundle's ``model.json`` records to rebuild this object around the faiss file."""
        return {"mips_transform": self.mips_transform, "nprobe": self.nprobe, "refine": self.refine}

    def search(
        self, queries: np.ndarray, n: int, ef_search: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``n`` items per query row: ``(scores (q, n) float32, indices (q, n) int64)``.

        ``ef_search`` overrides the HNSW beam width for this call only (never below ``n``);
        ignored by the other kinds.
        """
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        if q.shape[1] != self.dim:
            raise ValueError(f"query dimension {q.shape[1]} does not match index dimension {self.dim}")
        n = max(1, min(int(n), self.n_items))
        if self.kind == "ivfpq":
            return self._search_refined(q, n)
        fq = self._faiss_queries(q)
        current = self.index.hnsw.efSearch if self.kind == "hnsw" else None
        ef = max(n, ef_search or current or 0)
        if current is not None and ef != current:
            # HNSW cannot return more than efSearch results: the beam is set for this call only.
            scores, idx = self.index.search(fq, n, params=_beam(ef))
        else:
            scores, idx = self.index.search(fq, n)
        if self.mips_transform:  # L2² → inner product: ⟨q, x⟩ = (|q|² + R² − d²) / 2
            qn = np.einsum("ij,ij->i", q, q)[:, None]
            scores = (qn + np.float32(self.radius_sq) - scores) * np.float32(0.5)
        scores[idx < 0] = -np.inf
        return scores, idx

    def _search_refined(self, q: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """IVF-PQ: ``refine·n`` by PQ distance, re-scored exactly from the embeddings, best ``n``."""
        fq = self._faiss_queries(q)
        wide = min(self.n_items, n * self.refine)
        _, cand = self.index.search(fq, wide)
        out_s = np.full((q.shape[0], n), -np.inf, np.float32)
        out_i = np.full((q.shape[0], n), -1, np.int64)
        assert self.vectors is not None
        for r in range(q.shape[0]):
            row = cand[r][cand[r] >= 0]
            if len(row) == 0:
                continue
            order = np.sort(row)  # ascending offsets: sequential reads from a mapped file
            sc = np.asarray(self.vectors[order], np.float32) @ q[r]
            take = min(n, len(order))
            top = np.argpartition(-sc, take - 1)[:take] if take < len(order) else np.arange(len(order))
            top = top[np.argsort(-sc[top], kind="stable")]
            out_i[r, :take] = order[top]
            out_s[r, :take] = sc[top]
        return out_s, out_i
