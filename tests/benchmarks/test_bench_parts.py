"""Smoke tests of the benchmark parts on a tiny catalogue: they run and report sane figures.

No timing assertions: speed is what the benchmark prints, not what a unit test checks.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import report
from benchmarks.catalogue import Catalogue, embeddings, ensure_catalogue
from benchmarks.retrieval import recall_at, run_retrieval
from benchmarks.stages import MODEL_STAGES, run_stages
from model_store import LocalStore


def test_catalogue_is_a_loadable_bundle_with_realistic_norms(tiny_catalogue: Catalogue) -> None:
    TINY = tiny_catalogue.spec
    model, manifest = LocalStore(tiny_catalogue.store_root).load()
    assert model.n_items == TINY.n_items and model.n_users == TINY.n_users
    assert model.item_emb.shape[1] == 64 and model.ranker is not None
    assert model.ranker.hidden_units == 64 and model.ranker.num_layers == 2  # the default size
    norms = np.linalg.norm(model.item_emb, axis=1)
    assert norms.std() / norms.mean() > 0.2  # log-normal spread, not unit vectors
    assert manifest["dims"]["n_items"] == TINY.n_items
    assert tiny_catalogue.index_bytes > 0 and tiny_catalogue.embedding_bytes > 0


def test_catalogue_is_reused_not_rebuilt(tiny_catalogue: Catalogue) -> None:
    root = tiny_catalogue.store_root.parent.parent
    again = ensure_catalogue(
        tiny_catalogue.spec, root, log=lambda _: pytest.fail("rebuilt a cached catalogue")
    )
    assert again.store_root == tiny_catalogue.store_root
    assert len(LocalStore(again.store_root).list_versions()) == 1


def test_embeddings_are_seeded(tiny_catalogue: Catalogue) -> None:
    a = embeddings(tiny_catalogue.spec)[1]
    b = embeddings(tiny_catalogue.spec)[1]
    np.testing.assert_array_equal(a, b)


def test_recall_at_counts_overlap() -> None:
    exact = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    approx = np.array([[4, 3, 9, -1], [5, 6, 7, 8]])
    assert recall_at(approx, exact) == pytest.approx((2 / 4 + 4 / 4) / 2)


def test_retrieval_reports_recall_and_speedup(tiny_catalogue: Catalogue) -> None:
    r = run_retrieval(tiny_catalogue, n_queries=20, ef_sweep=(8, 128), budget_s=0.05)
    efs = [row["ef_search"] for row in r["sweep"]]
    assert efs == sorted(efs) and tiny_catalogue.spec.hnsw_ef_search in efs and 8 in efs
    for row in r["sweep"]:
        assert 0.0 <= row["recall@100"] <= 1.0 and row["qps"] > 0 and row["speedup"] > 0
    # On 400 items a beam of 256 visits most of the graph: HNSW must be (nearly) exact there.
    assert r["recall@100"] >= 0.95
    assert r["bytes_per_item"] > 64 * 4  # the index stores the vectors plus the graph
    assert r["recall@100"] == next(x for x in r["sweep"] if x["ef_search"] == r["ef_search"])["recall@100"]
    pq = r["compressed"]  # the compressed option, same queries: a fraction of the bytes
    assert pq["kind"] == "ivfpq" and 0.0 < pq["recall@100"] <= 1.0 and pq["qps"] > 0
    assert pq["bytes_per_item"] < r["bytes_per_item"]


def test_stages_name_the_slowest(tiny_catalogue: Catalogue) -> None:
    r = run_stages(tiny_catalogue, n_requests=6)
    rec = r["recommend_us"]
    assert set(MODEL_STAGES) <= set(rec) and {"response", "serialization", "total"} <= set(rec)
    assert all(v >= 0 for v in rec.values()) and rec["total"] > 0
    assert r["slowest"] in rec and r["slowest"] != "total"
    assert rec[r["slowest"]] == max(v for k, v in rec.items() if k != "total")


def test_report_table_and_targets_from_results(tiny_catalogue: Catalogue) -> None:
    n = str(tiny_catalogue.spec.n_items)
    results = {
        "sizes": [tiny_catalogue.spec.n_items],
        "concurrencies": [8],
        "retrieval": {n: run_retrieval(tiny_catalogue, n_queries=10, ef_sweep=(64,), budget_s=0.02)},
        "service": {
            n: {
                "recommend": {
                    "p99_ms": 12.0,
                    "ratio_to_baseline": 0.3,
                    "ratio_to_limit": 0.9,
                    "limit_rps": 11.0,
                    "retrieval_us": 400.0,
                    "by_concurrency": {
                        "8": {"rps": 10, "p50_ms": 1, "p95_ms": 2, "p99_ms": 12.0, "ratio_to_baseline": 0.3}
                    },
                },
            }
        },
        "rss_mb": {n: 700.0},
        "raw_mb": {n: 50.0},
    }
    checks = {c["target"]: c for c in report.targets(results)}
    assert checks["/recommend computed p99 @c=8 (ms)"]["met"] is False
    assert checks["/recommend computed / limit"]["met"] is True
    assert checks["RSS - (embeddings + index) (MB)"]["value"] == pytest.approx(650.0)
    assert checks["/recommend cache hit / baseline"]["met"] is None  # not measured: n/a, not a pass
    text = report.table(results)
    assert "| measure | 400 |" in text and "/recommend computed c=8" in text and "30%" in text
    assert "90% of 11 rps (search 400 µs)" in text
    json.dumps(results)  # the --json line must be serialisable


def test_limit_is_baseline_cpu_plus_search_per_core() -> None:
    from benchmarks.suite import add_limits

    summary = {"baseline": {"cpu_us_per_req": 100.0, "rps": 7000.0}, "recommend": {"rps": 500.0}}
    summary["similar"] = {"rps": 2000.0}
    stages = {"recommend_us": {"retrieval": 400.0}, "similar_us": {"retrieval": 150.0}}
    add_limits(summary, stages, cores=1)
    assert summary["recommend"]["limit_rps"] == pytest.approx(2000.0)  # 1 / 500 µs
    assert summary["recommend"]["ratio_to_limit"] == pytest.approx(0.25)
    assert summary["similar"]["limit_rps"] == pytest.approx(4000.0)  # 1 / 250 µs: its own search
    assert summary["similar"]["ratio_to_limit"] == pytest.approx(0.5)
    add_limits(summary, stages, cores=2)  # two workers on two cores: twice the floor's rate
    assert summary["recommend"]["limit_rps"] == pytest.approx(4000.0)
    bare = {"baseline": {"cpu_us_per_req": 100.0}, "recommend": {"rps": 500.0}}
    add_limits(bare, None, cores=1)  # no stage timings: no limit, not a made-up one
    assert "ratio_to_limit" not in bare["recommend"]


def test_targets_checked_at_100k_and_1m() -> None:
    results = {
        "sizes": [10_000, 100_000, 1_000_000],
        "service": {"100000": {"recommend": {"ratio_to_limit": 0.85}}, "1000000": {"recommend": {}}},
    }
    checks = [c for c in report.targets(results) if c["target"] == "/recommend computed / limit"]
    assert [(c["n_items"], c["met"]) for c in checks] == [(100_000, True), (1_000_000, None)]


@pytest.mark.slow
def test_workers_memory_measures_each_setting(tiny_catalogue: Catalogue) -> None:
    from benchmarks.workers_memory import measure

    root = tiny_catalogue.store_root.parent.parent
    rows = measure(tiny_catalogue.spec, root)
    assert [(r["workers"], r["mmap"]) for r in rows] == [(1, False), (1, True), (2, False), (2, True)]
    for r in rows:
        assert 0 < r["pss_mb"] <= r["rss_mb"]  # a shared page counts fully in RSS, partly in PSS
    one, two = rows[0], rows[2]
    assert two["rss_mb"] > one["rss_mb"]  # two workers are two processes, each with its interpreter


def test_catalogue_build_resumes_across_turns(tmp_path, monkeypatch) -> None:
    """A build stopped at its budget keeps its progress on disk; the next call finishes it."""
    import benchmarks.catalogue as catalogue
    from benchmarks.catalogue import BuildUnfinished, CatalogueSpec

    monkeypatch.setattr(catalogue, "CHUNK", 100)
    spec = CatalogueSpec(n_items=400, n_users=30, n_clusters=8, seen_per_user=5, seed=5, hnsw_m=8)
    folder = tmp_path / spec.key()
    with pytest.raises(BuildUnfinished, match="of 400 items"):
        ensure_catalogue(spec, tmp_path, budget_s=0.0, log=lambda _: None)
    assert (folder / "partial.faiss").is_file() and not (folder / "bench.json").exists()
    cat = ensure_catalogue(spec, tmp_path, log=lambda _: None)
    assert not (folder / "partial.faiss").exists()
    model, _ = LocalStore(cat.store_root).load()
    assert model.index.n_items == 400
    stored = model.index.index.reconstruct_n(0, 400)
    np.testing.assert_array_equal(stored, model.item_emb)  # every chunk, in order
    _, idx = model.index.search(model.user_emb[:10], 10)
    assert recall_at(idx, np.argsort(-(model.user_emb[:10] @ model.item_emb.T), axis=1)[:, :10]) >= 0.9
