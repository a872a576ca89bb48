"""Configuration dataclasses reject bad values before any work, naming the parameter."""

from __future__ import annotations

import pytest

from thesis_lib.ground.config import ChapterConfig, ModelSpec, TrainConfig


def test_chapter_config_defaults_and_pick(tmp_path):
    cfg = ChapterConfig.from_parameters(chapter="04", profile="quick", data_dir=tmp_path)
    assert cfg.quick and cfg.pick(quick=2, full=1000) == 2
    assert cfg.data_dir == tmp_path
    assert ChapterConfig.from_parameters(chapter="04").pick(quick=2, full=1000) == 1000


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"profile": "fast"}, "profile"),
        ({"chapter": "9"}, "chapter"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"device": "tpu"}, "device"),
        ({"retrain": "yes"}, "retrain"),
    ],
)
def test_chapter_config_rejects(kwargs, name):
    args = {"chapter": "01", **kwargs}
    with pytest.raises(ValueError, match=name):
        ChapterConfig.from_parameters(**args)


def test_profile_error_lists_allowed_values():
    with pytest.raises(ValueError, match="'quick', 'full'"):
        ChapterConfig.from_parameters(chapter="01", profile="fast")


def test_train_config_defaults_are_algorithm_2():
    c = TrainConfig()
    assert (c.lr, c.batch_size, c.optimizer, c.loss, c.epochs) == (3e-4, 512, "adam", "mse", 1000)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"epochs": 0}, "epochs"),
        ({"epochs": -5}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": 0.0}, "lr"),
        ({"lr": -1e-3}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"loss": "hinge"}, "loss"),
        ({"beta": -1.0}, "beta"),
        ({"train_limit": -1}, "train_limit"),
    ],
)
def test_train_config_rejects(kwargs, name):
    with pytest.raises(ValueError, match=name):
        TrainConfig(**kwargs)


def test_model_spec_round_trip_and_unknown_kind():
    spec = ModelSpec("fc_autoencoder", {"widths": (784, 128, 3)})
    assert spec.params["widths"] == [784, 128, 3]
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="kind"):
        ModelSpec("transformer")
