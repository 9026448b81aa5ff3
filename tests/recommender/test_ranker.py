"""DeepFeatureRanking: shapes, activations, layer order, l2 penalty, train vs eval."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from recommender.ranker import ACTIVATIONS, DeepFeatureRanking


def test_three_dim_input_gives_one_score_per_item() -> None:
    model = DeepFeatureRanking(input_dim=12, hidden_units=8, num_layers=2).eval()
    assert model(torch.randn(4, 30, 12)).shape == (4, 30, 1)


def test_two_dim_input_gives_one_score_per_row() -> None:
    model = DeepFeatureRanking(input_dim=12, hidden_units=8, num_layers=3).eval()
    assert model(torch.randn(50, 12)).shape == (50, 1)


def test_both_shapes_give_the_same_scores_in_eval() -> None:
    model = DeepFeatureRanking(input_dim=6, hidden_units=8).eval()
    x = torch.randn(3, 5, 6)
    with torch.no_grad():
        assert torch.allclose(model(x).reshape(-1), model(x.reshape(15, 6)).reshape(-1))


def test_hidden_layer_order_is_linear_batchnorm_dropout_activation() -> None:
    model = DeepFeatureRanking(input_dim=4, hidden_units=8, num_layers=2, activation="tanh")
    kinds = [type(m) for m in model.hidden]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.Dropout, nn.Tanh] * 2
    assert model.out.out_features == 1


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_documented_activation_works(activation: str) -> None:
    model = DeepFeatureRanking(input_dim=4, activation=activation).eval()
    assert torch.isfinite(model(torch.randn(10, 4))).all()


def test_unknown_activation_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"activation.*gelu"):
        DeepFeatureRanking(input_dim=4, activation="gelu")


def test_wrong_feature_width_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="expected 4 features"):
        DeepFeatureRanking(input_dim=4).eval()(torch.randn(2, 5))


def test_eval_mode_is_deterministic_and_train_mode_is_not() -> None:
    torch.manual_seed(0)
    model = DeepFeatureRanking(input_dim=8, hidden_units=32, dropout_rate=0.5)
    x = torch.randn(64, 8)
    model.train()
    assert not torch.allclose(model(x), model(x))  # dropout active
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


def test_l2_penalty_is_l2_reg_times_squared_linear_weights() -> None:
    model = DeepFeatureRanking(input_dim=3, hidden_units=4, num_layers=1, l2_reg=0.5)
    expected = 0.5 * sum(m.weight.pow(2).sum() for m in model.modules() if isinstance(m, nn.Linear))
    assert torch.allclose(model.l2_penalty(), expected)
    assert DeepFeatureRanking(input_dim=3, l2_reg=0.0).l2_penalty().item() == 0.0


def test_l2_penalty_has_gradient_shrinking_weights() -> None:
    model = DeepFeatureRanking(input_dim=3, hidden_units=4, num_layers=1, l2_reg=1.0)
    model.l2_penalty().backward()
    w = model.out.weight
    assert torch.allclose(w.grad, 2 * w.detach())


def test_config_round_trips() -> None:
    model = DeepFeatureRanking(input_dim=5, hidden_units=7, num_layers=3, dropout_rate=0.1, activation="elu")
    assert DeepFeatureRanking(**model.config()).config() == model.config()


@pytest.mark.parametrize(
    "kwargs", [{"dropout_rate": 1.0}, {"l2_reg": -1.0}, {"num_layers": -1}, {"hidden_units": 0}]
)
def test_invalid_hyperparameters_are_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        DeepFeatureRanking(input_dim=4, **kwargs)
