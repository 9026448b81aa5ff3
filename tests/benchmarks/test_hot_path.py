"""The serving hot-path changes made for speed keep their exact behaviour."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

import recommender.candidates as candidates_mod
import recommender.selector as selector_mod
from recommender.model import RecommenderModel
from recommender.ranker import DeepFeatureRanking, FrozenRanker
from recommender.retrieval import ItemIndex
from recommender.selector import TopKRecommendationSelector
from service.app import create_app
from service.settings import Settings


def _ranker(activation: str, layers: int = 2) -> DeepFeatureRanking:
    torch.manual_seed(0)
    r = DeepFeatureRanking(7, hidden_units=16, num_layers=layers, activation=activation)
    for m in r.modules():  # non-trivial BatchNorm statistics, so folding them is actually tested
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.2, 3)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return r.eval()


@pytest.mark.parametrize("activation", ["relu", "tanh", "selu"])
@pytest.mark.parametrize("layers", [0, 1, 2])
def test_frozen_ranker_scores_like_the_module(activation: str, layers: int) -> None:
    r = _ranker(activation, layers)
    frozen = FrozenRanker(r)
    for shape in ((3, 11, 7), (5, 7)):
        x = torch.randn(*shape)
        with torch.inference_mode():
            torch.testing.assert_close(frozen(x), r(x), rtol=1e-5, atol=1e-5)


def test_frozen_ranker_rejects_training_mode_and_bad_width() -> None:
    r = _ranker("relu")
    with pytest.raises(ValueError, match="7 features"):
        FrozenRanker(r)(torch.randn(2, 6))
    with pytest.raises(ValueError, match="eval"):
        FrozenRanker(r.train())


def test_frozen_ranker_goes_stale_when_weights_change() -> None:
    r = _ranker("relu")
    frozen = FrozenRanker(r)
    assert frozen.is_current(r)
    assert not frozen.is_current(_ranker("relu"))
    with torch.no_grad():
        r.out.bias.add_(1.0)
    assert not frozen.is_current(r)


def test_model_rank_follows_in_place_weight_changes(trained: tuple[RecommenderModel, dict]) -> None:
    model, _ = trained
    users = np.arange(3)
    emb, feats, profiles = model.user_inputs(users)
    cand, cscore, _ = model.retrieve(emb, 20)
    rank = model.stages.ranking.score
    before = rank(feats, profiles, cand, cscore)
    rows = model.features.assemble(feats, profiles, cand, cscore)
    with torch.inference_mode():
        np.testing.assert_allclose(before, model.ranker(torch.from_numpy(rows))[..., 0].numpy(), atol=1e-5)
    saved = model.ranker.out.bias.detach().clone()  # the model is the session's: restore exactly
    try:
        with torch.no_grad():
            model.ranker.out.bias.add_(2.0)
        np.testing.assert_allclose(rank(feats, profiles, cand, cscore), before + 2.0, atol=1e-4)
    finally:
        with torch.no_grad():
            model.ranker.out.bias.copy_(saved)
    np.testing.assert_array_equal(rank(feats, profiles, cand, cscore), before)


def test_sorted_selection_matches_the_partition_path(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    cases = []
    for t in range(400):
        b, n = int(rng.integers(1, 4)), int(rng.integers(1, 30))
        dtype = (np.float32, np.float64, np.int64)[t % 3]
        scores = rng.integers(-3, 4, (b, n)).astype(dtype)  # few distinct values: many ties
        if dtype != np.int64:
            scores[rng.random((b, n)) < 0.15] = np.nan
            scores[rng.random((b, n)) < 0.1] = -np.inf
        mask = rng.random((b, n)) < 0.3 if t % 2 else None
        cases.append((int(rng.integers(1, n + 1)), scores, mask))
        cases.append((int(rng.integers(1, n + 1)), scores[0], None if mask is None else mask[0]))
    fast = [TopKRecommendationSelector(k)(s, mask=m) for k, s, m in cases]
    monkeypatch.setattr(selector_mod, "SORT_MAX_N", 0)  # force the argpartition path
    slow = [TopKRecommendationSelector(k)(s, mask=m) for k, s, m in cases]
    for (fi, fv), (si, sv) in zip(fast, slow, strict=True):
        np.testing.assert_array_equal(fi, si)
        np.testing.assert_array_equal(fv, sv)
        assert fv.dtype == sv.dtype


def test_baseline_endpoint_only_when_enabled(published_store) -> None:
    on = create_app(Settings(store_uri=str(published_store), bench_endpoints=True, _env_file=None))
    with TestClient(on) as c:
        r = c.get("/bench/baseline")
        assert r.status_code == 200 and r.json() == {"status": "ok", "items": []}
    off = create_app(Settings(store_uri=str(published_store), _env_file=None))
    with TestClient(off) as c:
        r = c.get("/bench/baseline")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("m", [0, 1, 20, 64, 65, 300])
def test_short_exclusion_compare_matches_isin(m: int) -> None:
    rng = np.random.default_rng(m)
    values = rng.integers(0, 500, 220)
    excluded = rng.integers(0, 500, m)
    np.testing.assert_array_equal(candidates_mod._isin(values, excluded), np.isin(values, excluded))


def test_search_beam_override_is_per_call(trained: tuple[RecommenderModel, dict]) -> None:
    model, _ = trained
    index = model.index
    before = index.ef_search
    q = model.user_emb[:4]
    _, wide_idx = index.search(q, 10, ef_search=model.n_items)  # beam over everything
    exact = ItemIndex.build(model.item_emb, "flat")
    _, exact_idx = exact.search(q, 10)
    np.testing.assert_array_equal(np.sort(wide_idx, axis=1), np.sort(exact_idx, axis=1))
    _, narrow_idx = index.search(q, 30, ef_search=5)  # a beam below n is widened to n
    assert (narrow_idx >= 0).all() and narrow_idx.shape == (4, 30)
    assert index.ef_search == before  # nothing stuck on the index


def test_similar_uses_a_narrower_beam_and_still_answers_k(trained: tuple[RecommenderModel, dict]) -> None:
    model, _ = trained
    bundle_ef = model.index.ef_search
    similar_ef = model.stages.retriever.similar_ef
    assert similar_ef(11) <= bundle_ef and similar_ef(11) >= 11
    assert similar_ef(bundle_ef + 5) == bundle_ef + 5  # never fewer than asked for
    rec = model.similar(3, 10)
    assert len(rec.items) == 10 and 3 not in rec.items.tolist()
    assert np.all(np.diff(rec.scores) <= 1e-6)  # best first
