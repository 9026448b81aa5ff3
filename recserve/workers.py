"""``recserve serve --workers N``: what the worker processes share, set up before they start.

* The model: loaded once by the supervisor, which then forks the workers (:func:`serve_forked`),
  so they share it copy-on-write; ``RECSERVE_MMAP_BUNDLE=true`` (unless set) so a model loaded
  later by a hot swap maps the bundle's embeddings and index vectors from the same files in
  every worker instead of holding its own copy.
* The metrics: ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode), so whichever
  worker answers a scrape reports the sums over all of them. The directory must be empty when the
  workers start (files of an earlier run would be added to this run's counters), so it is emptied
  here; one this command created is removed when it returns.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ENV = "PROMETHEUS_MULTIPROC_DIR"
log = logging.getLogger("recserve.workers")


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


def preload_model(settings: Any) -> bool:
    """Load the store's CURRENT bundle in the supervisor, before the workers are forked.

    Forked workers then share every page of it copy-on-write: the index (HNSW links included:
    faiss maps only the vectors from the file), the id maps, the feature tables, the ranker, and
    the interpreter's own heap (torch, faiss, FastAPI imported once). ``gc.freeze()`` keeps the
    collector from writing to those objects' headers in each worker, which would copy the pages.
    No OpenMP parallel region runs here (no warm-up: each worker warms its own copy), since GNU
    OpenMP's thread pool does not survive a fork. Returns False (the workers load it themselves)
    if the store cannot be read now.
    """
    from model_store import open_store
    from service.state import LoadedModel, preload

    try:
        store = open_store(settings.store_uri, cache_dir=settings.store_cache_dir)
        version = store.current_version()
        model, manifest = store.load(version, mmap=settings.mmap_bundle)
    except Exception as exc:  # the workers will load (and report) it themselves
        log.warning("supervisor could not preload the model (%s); each worker loads its own", exc)
        return False
    preload(LoadedModel(model, manifest))
    gc.collect()
    gc.freeze()
    return True


def serve_forked(settings: Any, workers: int, config_kwargs: dict[str, Any]) -> int:
    """``recserve serve --workers N``: bind once, load the model once, fork N uvicorn workers.

    uvicorn's own ``--workers`` spawns fresh interpreters that each import torch and load their
    own model (measured at 100k items: 2 workers held 1.9× one worker's PSS even with the bundle
    mapped). Forking after the load shares all of it; see :func:`preload_model`. A worker that
    dies is replaced; SIGTERM/SIGINT stop every worker and then the supervisor.
    """
    import uvicorn

    config = uvicorn.Config("service.app:create_app", host=settings.host, port=settings.port, **config_kwargs)
    sock = config.bind_socket()
    from service.app import create_app

    preload_model(settings)
    children: dict[int, int] = {}
    stopping = False

    def start(slot: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0
            try:
                worker = uvicorn.Config(create_app(settings), **config_kwargs)
                uvicorn.Server(worker).run(sockets=[sock])
            except BaseException:  # a worker must never return into the supervisor's loop
                log.exception("worker %d failed", slot)
                code = 1
            finally:
                os._exit(code)
        children[pid] = slot

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for slot in range(workers):
        start(slot)
    log.info("supervisor %d: %d forked workers on %s:%d", os.getpid(), workers, settings.host, settings.port)
    restarts = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        slot = children.pop(pid, None)
        if slot is None or stopping:
            continue
        restarts += 1
        log.warning("worker %d (pid %d) exited with status %d; starting another", slot, pid, status)
        if restarts > 10 * workers:  # a worker that cannot start would otherwise loop forever
            log.error("workers keep dying; stopping")
            stop(signal.SIGTERM, None)
            continue
        start(slot)
    sock.close()
    return 0
