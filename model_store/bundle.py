"""Bundle files ↔ :class:`recommender.model.RecommenderModel`.

Layout of one bundle directory (documented in docs/bundle-format.md):

``manifest.json``        schema version, version id, created_at, config, metrics, sha256+size of each file
``user_emb.npy``         float32 (n_users, dim)
``item_emb.npy``         float32 (n_items, dim)
``index.faiss``          the retrieval index, ``faiss.write_index``
``tables.safetensors``   feature tables, normalisation, seen-items CSR, popularity, co-occurrence (optional)
``ids.json``             external user and item ids, in row order
``model.json``           feature names, item attributes, serving defaults
``ranker.safetensors`` + ``ranker.json``  the ranking tower's weights and constructor config (optional)

Numeric arrays use ``.npy`` (read with ``allow_pickle=False``) and safetensors; metadata is JSON.
Nothing in a bundle can execute code when loaded.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import safetensors.numpy
import safetensors.torch

from model_store.backends import fsync_dir
from model_store.errors import BundleError, InconsistentBundle, MissingFile
from model_store.manifest import MANIFEST, SCHEMA_VERSION, file_entries, read_manifest, verify_files
from recommender.features import FeatureAssembler
from recommender.idmap import IdMap
from recommender.model import RecommenderModel
from recommender.ranker import DeepFeatureRanking
from recommender.retrieval import ItemIndex


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=1, sort_keys=True))


def write_bundle(
    model: RecommenderModel,
    directory: Path,
    training_config: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    data_fingerprint: str | None = None,
) -> dict[str, Any]:
    """Write every file of ``model`` plus its manifest into ``directory`` (created, must be empty).

    Files are fsynced so that a rename of the directory afterwards publishes complete data.
    Returns the manifest.
    """
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        raise BundleError(f"{directory}: bundle directory is not empty", str(directory))
    np.save(directory / "user_emb.npy", np.ascontiguousarray(model.user_emb, np.float32))
    np.save(directory / "item_emb.npy", np.ascontiguousarray(model.item_emb, np.float32))
    faiss.write_index(model.index.index, str(directory / "index.faiss"))
    f = model.features
    tables = {
        "user_features": f.user_features,
        "item_features": f.item_features,
        "user_profile": f.user_profile,
        "item_tags": f.item_tags,
        "feature_mean": f.mean,
        "feature_std": f.std,
        "seen_indptr": model.seen_indptr.astype(np.int64),
        "seen_indices": model.seen_indices.astype(np.int64),
        "popularity": model.popularity.astype(np.float32),
    }
    if f.cooc_neighbours is not None and f.cooc_weights is not None:  # optional group
        tables["cooc_neighbours"] = f.cooc_neighbours
        tables["cooc_weights"] = f.cooc_weights
    safetensors.numpy.save_file(
        {k: np.ascontiguousarray(v) for k, v in tables.items()}, str(directory / "tables.safetensors")
    )
    _write_json(directory / "ids.json", {"users": model.user_ids.ids, "items": model.item_ids.ids})
    _write_json(
        directory / "model.json",
        {
            "index_kind": model.index.kind,
            "ef_search": model.index.ef_search,
            "index_params": model.index.params(),
            "n_candidates": model.n_candidates,
            "user_feature_names": f.user_feature_names,
            "item_feature_names": f.item_feature_names,
            "item_attributes": model.item_attributes,
            "metadata": model.metadata,
            # issue 22's history groups: switches only, their tables are the embeddings and tags
            "history_features": {
                "window": f.history_window,
                "hist_similarity": f.hist_similarity,
                "genre_recency": f.genre_recency,
            },
        },
    )
    names = ["user_emb.npy", "item_emb.npy", "index.faiss", "tables.safetensors", "ids.json", "model.json"]
    if model.ranker is not None:
        state = {k: v.detach().contiguous() for k, v in model.ranker.state_dict().items()}
        safetensors.torch.save_file(state, str(directory / "ranker.safetensors"))
        _write_json(directory / "ranker.json", model.ranker.config())
        names += ["ranker.safetensors", "ranker.json"]
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "version": model.version,
        "created_at": datetime.now(UTC).isoformat(),
        "training_config": training_config or {},
        "data_fingerprint": data_fingerprint,
        "metrics": metrics or {},
        "dims": {"n_users": model.n_users, "n_items": model.n_items, "dim": int(model.item_emb.shape[1])},
        "files": file_entries(directory, names),
    }
    _write_json(directory / MANIFEST, manifest)
    for name in [*names, MANIFEST]:
        fd = os.open(directory / name, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fsync_dir(directory)
    return manifest


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise MissingFile(f"{path}: missing", str(path)) from exc
    except ValueError as exc:
        raise InconsistentBundle(f"{path}: not valid JSON ({exc})", str(path)) from exc


def read_bundle(
    directory: Path, verify: bool = True, mmap: bool = False
) -> tuple[RecommenderModel, dict[str, Any]]:
    """Load a bundle; with ``verify`` (the default) every checksum is checked first.

    ``mmap``: the embeddings and the index's vectors are memory-mapped read-only from the bundle's
    files instead of copied into this process, so N worker processes serving the same bundle
    share one copy in the page cache (``recserve serve --workers N``): at 1M items × 64 dims that
    is 256 MB of embeddings and 256 MB of index vectors not duplicated per worker. The HNSW graph
    links are still read into each process (faiss maps only the flat codes). Bundles are immutable
    once published, so the mapped files never change under a worker.

    Raises a :class:`~model_store.errors.BundleError` subclass naming the bad file; any lower-level
    failure while decoding verified files is wrapped as :class:`InconsistentBundle`.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    if verify:
        verify_files(directory, manifest)
    try:
        return _decode(directory, manifest, mmap), manifest
    except BundleError:
        raise
    except Exception as exc:  # a verified but unusable bundle must not crash the caller
        raise InconsistentBundle(f"{directory}: cannot decode bundle: {exc}", str(directory)) from exc


def _decode(directory: Path, manifest: dict[str, Any], mmap: bool = False) -> RecommenderModel:
    mode = "r" if mmap else None
    user_emb = np.load(directory / "user_emb.npy", allow_pickle=False, mmap_mode=mode)
    item_emb = np.load(directory / "item_emb.npy", allow_pickle=False, mmap_mode=mode)
    meta = _load_json(directory / "model.json")
    ids = _load_json(directory / "ids.json")
    io_flags = faiss.IO_FLAG_MMAP_IFC if mmap else 0  # zero-copy: the flat codes stay in the file
    params = meta.get("index_params") or {}  # absent from bundles written before the IVF-PQ option
    index = ItemIndex(
        faiss.read_index(str(directory / "index.faiss"), io_flags),
        meta["index_kind"],
        mips_transform=bool(params.get("mips_transform", False)),
        vectors=item_emb,
        refine=int(params.get("refine") or 4),
    )
    if meta.get("ef_search"):
        index.set_ef_search(int(meta["ef_search"]))
    if params.get("nprobe"):
        index.set_nprobe(int(params["nprobe"]))
    t = safetensors.numpy.load_file(str(directory / "tables.safetensors"))
    hist = meta.get("history_features") or {}  # absent in bundles written before the groups
    features = FeatureAssembler(
        user_features=t["user_features"],
        item_features=t["item_features"],
        user_profile=t["user_profile"],
        item_tags=t["item_tags"],
        user_feature_names=list(meta["user_feature_names"]),
        item_feature_names=list(meta["item_feature_names"]),
        mean=t["feature_mean"],
        std=t["feature_std"],
        cooc_neighbours=t.get("cooc_neighbours"),  # absent in bundles written before issue 22
        cooc_weights=t.get("cooc_weights"),
        history_window=int(hist.get("window", 0)),
        hist_similarity=bool(hist.get("hist_similarity", False)),
        genre_recency=bool(hist.get("genre_recency", False)),
        item_vectors=item_emb if hist.get("hist_similarity") else None,
    )
    ranker = None
    if (directory / "ranker.json").exists():
        ranker = DeepFeatureRanking(**_load_json(directory / "ranker.json"))
        ranker.load_state_dict(safetensors.torch.load_file(str(directory / "ranker.safetensors")))
    try:
        return RecommenderModel(
            version=str(manifest["version"]),
            user_ids=IdMap(ids["users"]),
            item_ids=IdMap(ids["items"]),
            user_emb=user_emb,
            item_emb=item_emb,
            index=index,
            features=features,
            ranker=ranker,
            seen_indptr=t["seen_indptr"],
            seen_indices=t["seen_indices"],
            popularity=t["popularity"],
            n_candidates=int(meta["n_candidates"]),
            item_attributes=meta.get("item_attributes", {}),
            metadata=meta.get("metadata", {}),
        )
    except ValueError as exc:
        raise InconsistentBundle(f"{directory}: {exc}", str(directory)) from exc
