"""Ways a published bundle can go bad, applied to a local store's files (shared by store tests and
the hot-swap test). Each fault leaves the rest of the bundle intact, as real damage would."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np

from model_store.manifest import MANIFEST, sha256_file

FAULTS = ("checksum", "truncated", "missing_file", "missing_manifest", "schema", "dims", "pickle")


def _rehash(bundle: Path, name: str) -> None:
    """Make the manifest agree with a replaced file, so only the loader can catch the fault."""
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["files"][name] = {"sha256": sha256_file(bundle / name), "size": (bundle / name).stat().st_size}
    (bundle / MANIFEST).write_text(json.dumps(manifest))


def damage(bundle: Path, fault: str) -> str:
    """Apply ``fault`` to the bundle directory; returns the file a verifier should name."""
    if fault == "checksum":  # one flipped byte, same size
        path = bundle / "item_emb.npy"
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        return "item_emb.npy"
    if fault == "truncated":
        path = bundle / "index.faiss"
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return "index.faiss"
    if fault == "missing_file":
        (bundle / "tables.safetensors").unlink()
        return "tables.safetensors"
    if fault == "missing_manifest":
        (bundle / MANIFEST).unlink()
        return MANIFEST
    if fault == "schema":
        manifest = json.loads((bundle / MANIFEST).read_text())
        manifest["schema_version"] = 99
        (bundle / MANIFEST).write_text(json.dumps(manifest))
        return MANIFEST
    if fault == "dims":  # an index of another dimension, with checksums that match it
        n_items = np.load(bundle / "item_emb.npy").shape[0]
        index = faiss.IndexHNSWFlat(7, 8, faiss.METRIC_INNER_PRODUCT)
        index.add(np.random.default_rng(0).normal(size=(n_items, 7)).astype(np.float32))
        faiss.write_index(index, str(bundle / "index.faiss"))
        _rehash(bundle, "index.faiss")
        return "index.faiss"
    if fault == "pickle":  # an object array: loading it would unpickle (run code) if allowed
        np.save(bundle / "user_emb.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
        _rehash(bundle, "user_emb.npy")
        return "user_emb.npy"
    raise ValueError(f"unknown fault {fault!r}")
