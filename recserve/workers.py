"""``recserve serve --workers N``: what the worker processes share, set up before they start.

* The model: ``RECSERVE_MMAP_BUNDLE=true`` (unless set) so each worker maps the bundle's
  embeddings and index vectors from the same files instead of holding its own copy.
* The metrics: ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode), so whichever
  worker answers a scrape reports the sums over all of them. The directory must be empty when the
  workers start (files of an earlier run would be added to this run's counters), so it is emptied
  here; one this command created is removed when it returns.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"


def clean_multiproc_dir(path: Path) -> None:
    """Delete the metric files (``*.db``) of an earlier run; anything else is left alone."""
    path.mkdir(parents=True, exist_ok=True)
    for f in path.glob("*.db"):
        f.unlink()


@contextlib.contextmanager
def shared_worker_env(workers: int) -> Iterator[dict[str, str]]:
    """Set the environment the workers inherit (only for ``workers > 1``); yields what was set."""
    if workers <= 1:
        yield {}
        return
    set_now: dict[str, str] = {}
    created: Path | None = None
    given = os.environ.get(ENV)
    if given:
        path = Path(given)
    else:
        created = path = Path(tempfile.mkdtemp(prefix="recserve-metrics-"))
        os.environ[ENV] = set_now[ENV] = str(path)
    clean_multiproc_dir(path)
    if "RECSERVE_MMAP_BUNDLE" not in os.environ:
        os.environ["RECSERVE_MMAP_BUNDLE"] = set_now["RECSERVE_MMAP_BUNDLE"] = "true"
    try:
        yield set_now
    finally:
        for key in set_now:
            os.environ.pop(key, None)
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
