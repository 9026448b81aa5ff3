"""Stored values: a packed list blob and the ``ready`` marker.

A list is ``header | int32 item indices[n] | float32 scores[n]``, little endian: 8 + 8n bytes,
decoded with two ``np.frombuffer`` calls and about 5x smaller than JSON with external ids
(``python -m benchmarks.precompute_rate``). Indices are the model's internal item rows; they
are only meaningful for the version in the key, which is exactly the version the reader holds.
"""

from __future__ import annotations

import json
import struct

import numpy as np

FORMAT_VERSION = 1
_HEADER = struct.Struct("<BxxxI")  # format version, 3 pad bytes (keeps arrays 4-aligned), count


class DecodeError(ValueError):
    """A cached value that is not a list this build wrote (truncated, other format, bad index)."""


def encode_list(items: np.ndarray, scores: np.ndarray) -> bytes:
    """Pack a list as ``header | int32 indices[n] | float32 scores[n]`` (8 + 8n bytes)."""
    items = np.asarray(items)
    scores = np.asarray(scores)
    if items.shape != scores.shape or items.ndim != 1:
        raise ValueError(f"items and scores must be 1-D and equally long, got {items.shape}, {scores.shape}")
    return (
        _HEADER.pack(FORMAT_VERSION, len(items))
        + items.astype("<i4", copy=False).tobytes()
        + scores.astype("<f4", copy=False).tobytes()
    )


def decode_list(blob: bytes, n_items: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_list`; with ``n_items``, also reject indices outside the catalogue."""
    if len(blob) < _HEADER.size:
        raise DecodeError(f"value of {len(blob)} bytes is shorter than the header")
    fmt, n = _HEADER.unpack_from(blob)
    if fmt != FORMAT_VERSION:
        raise DecodeError(f"unknown list format {fmt}")
    if len(blob) != _HEADER.size + 8 * n:
        raise DecodeError(f"value of {len(blob)} bytes does not hold {n} items")
    items = np.frombuffer(blob, "<i4", n, _HEADER.size)
    scores = np.frombuffer(blob, "<f4", n, _HEADER.size + 4 * n)
    if n_items is not None and n and (items.min() < 0 or items.max() >= n_items):
        raise DecodeError(f"item index outside 0..{n_items - 1}")
    return items, scores


def ready_marker(n: int, users: int, items: int, seconds: float) -> bytes:
    """The ``ready`` marker's value: what was written, for operators reading Redis by hand."""
    return json.dumps(
        {"n": n, "users": users, "items": items, "seconds": round(seconds, 3), "format": FORMAT_VERSION},
        sort_keys=True,
    ).encode()
