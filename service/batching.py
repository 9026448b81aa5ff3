"""Dynamic micro-batching: the requests that arrive while a batch runs are the next batch.

What Triton's dynamic batcher and Ray Serve's ``@serve.batch`` do, without their fixed wait:
the event loop parses requests and queues them; one worker thread takes *everything queued* (at
most ``max_batch``), answers it and hands each request its own result. An idle service answers
a lone request at once (a batch of one); under load, the requests that came in during one
batch's ~1 ms of search make the next. Two things are gained:

* the lists a batch must compute go through **one** FAISS search (which spreads its queries over
  the OpenMP threads, i.e. the second core), one feature assembly and one ranker forward;
* the worker thread releases the GIL in FAISS, numpy, torch and socket reads, so the event loop
  keeps doing HTTP on the other core meanwhile; the fresh events of a batch's users are one
  Redis round trip (``get_many``), and so are the stored lists its requests read.

Per-request results are those of the unbatched path: each request runs its own code
(:meth:`Serving.recommend_steps`, a generator) up to the one list it must compute (a
:class:`Need`); needs that can share a model call (the same model, list length and options, no
filter or diversity, and for HNSW every row's search inside the same beam, so the graph walk is
the one a lone query makes) are computed together, any other alone
(``tests/service/test_batching.py`` compares batched and lone answers).

Metrics: with batching, a stage's latency observation (``recserve_stage_latency_seconds``) is
one model call, batched or not, and ``recserve_batch_size`` counts how many lists each call
computed. Requests of a traced service are not batched (a stage span belongs to one request).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import defaultdict
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from recommender.model import Recommendations, RecommenderModel
from service.lists import CachedLists, Read

if TYPE_CHECKING:
    from service.answers import ListAnswer
    from service.state import LoadedModel
    from service.strategies import Serving

EMPTY = np.zeros(0, np.int64)


@dataclass
class Need:
    """The one list a request must compute: ``run(n)`` alone, or in a shared model call when
    ``plain`` (see :func:`group_key`). ``subject``: the user (``rec``) or item (``sim``) index;
    ``drop``: the request's own exclusions; ``own``: how many seen items it excludes."""

    model: RecommenderModel
    kind: str  # rec | sim
    subject: int
    n: int
    run: Callable[[int], Recommendations]
    plain: bool
    exclude_seen: bool = True
    drop: np.ndarray = field(default_factory=lambda: EMPTY)
    own: int = 0


Result = tuple["LoadedModel", "ListAnswer"]
Steps = Generator["Need | Read", Any, Result]


def run_alone(steps: Steps, lists: CachedLists) -> Result:
    """Drive one request's steps by itself (the unbatched path): its read, then its list."""
    value: Any = None
    while True:
        try:
            wanted = steps.send(value)
        except StopIteration as done:
            return done.value
        if isinstance(wanted, Read):
            assert lists.cache is not None
            value = lists.cache.backend.get(wanted.key, wanted.n_items)
        else:
            value = wanted.run(wanted.n)


def group_key(need: Need) -> tuple[Any, ...] | None:
    """Needs with the same key give, in one call, each the list it would get alone; None: alone.

    For HNSW the search asks for C + (the batch's longest exclusion list) results; the walk is
    the same for every row as long as that stays within the beam (efSearch), since FAISS then
    keeps the beam and returns the best of it. Other index kinds group by exclusion length.
    """
    if not need.plain:
        return None
    if need.kind == "sim":
        return (id(need.model), "sim", need.n)
    model = need.model
    extra = need.own + len(need.drop)
    c = min(max(need.n, model.n_candidates), model.n_items)
    ef = model.stages.retriever.index.ef_search
    beam = "beam" if ef is not None and c + extra <= ef else extra
    return (id(model), "rec", need.n, need.exclude_seen, beam)


def compute_group(needs: Sequence[Need], timings: dict[str, float]) -> list[Recommendations]:
    """One model call for needs of one :func:`group_key`."""
    first = needs[0]
    subjects = np.array([x.subject for x in needs], np.int64)
    if first.kind == "sim":
        return first.model.similar_items(subjects, first.n, timings=timings)
    strategy = first.model.strategies.personalized
    return strategy.recommend(
        subjects,
        first.n,
        exclude_seen=first.exclude_seen,
        exclude_rows=[x.drop for x in needs],
        timings=timings,
    )


# ("rec", RecommendQuery) | ("sim", SimilarQuery), and the request's context when queued by the
# batcher: its steps run in it, so what they log carries the request's id (the request log's
# contextvar) although the worker thread, not the request's task, runs them.
Job = tuple[Any, ...]


def _in(ctx: contextvars.Context | None, fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args) if ctx is None else ctx.run(fn, *args)


def run_batch(serving: Serving, jobs: Sequence[Job]) -> list[Result | BaseException]:
    """Answer ``jobs`` (in the worker thread): each request runs its own steps; the stored lists
    they read are one round trip, the lists they compute one model call per :func:`group_key`.
    A call made for several requests runs in the context of the first of them (its log lines
    carry that request's id)."""
    results: list[Result | BaseException | None] = [None] * len(jobs)
    ctxs: list[contextvars.Context | None] = [job[2] if len(job) > 2 else None for job in jobs]
    users = [job[1].user_id for job in jobs if job[0] == "rec"]
    lead = ctxs[0] if ctxs else None
    fresh = iter(_in(lead, serving.fresh.get_many, users) if serving.fresh is not None and users else [])
    todo: list[tuple[int, Steps, Any]] = []
    for i, job in enumerate(jobs):
        kind, query = job[0], job[1]
        try:
            rec = kind == "rec"
            steps = serving.recommend_steps(query, next(fresh, [])) if rec else serving.similar_steps(query)
        except Exception as exc:
            results[i] = exc
            continue
        todo.append((i, steps, None))
    while todo:
        reads: dict[int, list[tuple[int, Steps, Read]]] = defaultdict(list)
        groups: dict[Any, list[tuple[int, Steps, Need]]] = defaultdict(list)
        for i, steps, value in todo:
            try:
                wanted = _in(ctxs[i], steps.send, value)
            except StopIteration as done:
                results[i] = done.value
                continue
            except Exception as exc:  # the request's own error (404, 422, 503): its answer
                results[i] = exc
                continue
            if isinstance(wanted, Read):
                reads[wanted.n_items].append((i, steps, wanted))
            else:
                key = group_key(wanted)
                groups[key if key is not None else ("alone", i)].append((i, steps, wanted))
        todo = []
        for n_items, members in reads.items():
            assert serving.lists.cache is not None
            keys = [read.key for _, _, read in members]
            stored = _in(ctxs[members[0][0]], serving.lists.cache.get_many, keys, n_items)
            todo += [(i, steps, entry) for (i, steps, _), entry in zip(members, stored, strict=True)]
        for members in groups.values():
            try:
                recs = _in(ctxs[members[0][0]], _compute, serving, [need for _, _, need in members])
            except Exception as exc:
                for i, steps, _ in members:
                    steps.close()
                    results[i] = exc
                continue
            todo += [(i, steps, rec) for (i, steps, _), rec in zip(members, recs, strict=True)]
    return results  # type: ignore[return-value]


def _compute(serving: Serving, needs: list[Need]) -> list[Recommendations]:
    if len(needs) == 1:
        recs = [needs[0].run(needs[0].n)]
    else:
        timings: dict[str, float] = {}
        recs = compute_group(needs, timings)
        serving.metrics.observe_stages(timings)
    serving.metrics.batch_size.labels(needs[0].kind).observe(len(needs))
    return recs


class MicroBatcher:
    """Queue requests on the event loop; one worker thread answers whatever queued, in batches."""

    def __init__(
        self,
        run: Callable[[list[Job]], list[Any]],
        max_batch: int,
        initializer: Callable[[], None] | None = None,
    ) -> None:
        self._run = run
        self._max = max_batch
        self._queue: list[tuple[Job, asyncio.Future[Any]]] = []
        self._busy = False
        self._task: asyncio.Task[None] | None = None  # referenced: the loop keeps tasks weakly
        self._initializer = initializer
        self._executor: ThreadPoolExecutor | None = None  # made on first use, again after close()

    async def submit(self, kind: str, query: Any) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append(((kind, query, contextvars.copy_context()), future))
        if not self._busy:
            self._busy = True
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                batch, self._queue = self._queue[: self._max], self._queue[self._max :]
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(1, "recserve-batch", self._initializer)
                try:
                    results = await loop.run_in_executor(self._executor, self._run, [job for job, _ in batch])
                except Exception as exc:  # every waiting request gets it
                    results = [exc] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._busy = False

    def close(self) -> None:
        """Stop the worker thread (the app's lifespan ends); a later request starts a new one."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
