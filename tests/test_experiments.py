"""The experiment registry: every model of chapters 4 and 5 builds, trains in the quick profile, and caches."""

from __future__ import annotations


import pytest
import torch

from thesis_lib.runtime import data
from thesis_lib.reproduction import experiments
from thesis_lib.ground.config import ChapterConfig, TrainConfig
from thesis_lib.runtime.models import build_model


@pytest.mark.parametrize("name", sorted(experiments.EXPERIMENTS))
def test_every_experiment_builds_and_runs_a_batch(name):
    exp = experiments.get(name)
    model = build_model(exp.spec)
    dim = 1568 if exp.data == "mnist_canvas" else 784
    x = torch.rand(4, dim)
    from thesis_lib.runtime.training import make_objective

    cfg = exp.full
    losses = make_objective(cfg.loss, cfg.beta, cfg.binarize, cfg.iw_samples)(model, x, None)
    assert losses.shape == (4,) and torch.isfinite(losses).all()


def test_profiles():
    exp = experiments.get("ae_thesis")
    assert exp.config("full") == TrainConfig(epochs=1000, batch_size=512, lr=3e-4, loss="mse")  # Algorithm 2
    quick = exp.config("quick", seed=3)
    assert quick.epochs == exp.quick_epochs and quick.train_limit == experiments.QUICK_TRAIN_LIMIT and quick.seed == 3


def test_warm_starts_name_an_earlier_experiment_of_the_same_architecture():
    names = list(experiments.EXPERIMENTS)
    warm = [e for e in experiments.EXPERIMENTS.values() if e.init_from]
    assert warm, "the registry has a warm-started experiment (vae_nll_long)"
    for exp in warm:
        parent = experiments.get(exp.init_from)
        assert parent.spec == exp.spec and names.index(parent.name) < names.index(exp.name)
        for field in ("validation", "exclude_class", "train_limit"):  # the images it fits are its parent's
            assert getattr(parent.full, field) == getattr(exp.full, field), (exp.name, field)


def test_runs_whose_recipe_was_chosen_by_results_hold_out_a_validation_split():
    burda = [n for n, e in experiments.EXPERIMENTS.items() if e.spec == experiments.get("vae_nll").spec]
    assert sorted(burda) == ["iwae_nll_long", "vae_nll", "vae_nll_decay", "vae_nll_long"]
    for name in burda:
        assert experiments.get(name).full.validation == 10_000
        assert 0 < experiments.get(name).config("quick").validation < experiments.QUICK_TRAIN_LIMIT


def test_warm_start_in_the_full_profile_and_from_scratch_in_the_quick_one(tmp_path, monkeypatch):
    from thesis_lib.runtime import runs

    seen = []
    real = runs.train_or_load
    monkeypatch.setattr(experiments, "train_or_load", lambda *a, **kw: seen.append(kw["init"]) or real(*a, **kw))
    x = torch.rand(300, 784)  # the quick profile holds out 256 of them for validation
    tensors = {"x_train": x, "y_train": torch.zeros(300, dtype=torch.long), "x_test": x[:8], "y_test": torch.zeros(8)}
    quick = ChapterConfig.from_parameters(chapter="05", profile="quick", checkpoint_dir=tmp_path)
    experiments.run("vae_nll_long", quick, tensors=tensors)
    full = ChapterConfig.from_parameters(chapter="05", checkpoint_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="vae_nll.pt"):  # the parent must be trained first
        experiments.run("vae_nll_long", full, tensors=tensors)
    assert seen == [None, tmp_path / "vae_nll.pt"]


def test_unknown_experiment():
    with pytest.raises(ValueError, match="experiment must be one of"):
        experiments.get("gan")


def test_quick_run_saves_nothing_and_full_run_saves(tmp_path):
    if data.verify(ChapterConfig.from_parameters(chapter="04").data_dir):
        pytest.skip("MNIST not fetched")
    quick = ChapterConfig.from_parameters(chapter="04", profile="quick", checkpoint_dir=tmp_path)
    res = experiments.run("linear_ae_2", quick)
    assert res.trained and not any(tmp_path.iterdir())
    assert experiments.checkpoint_path(experiments.get("linear_ae_2"), quick) is None


def test_compose_canvas_places_digits_side_by_side():
    x = torch.rand(10, 784)
    y = torch.arange(10)
    canvas, labels = data.compose_canvas(x, y, n_digits=2, seed=0, count=5)
    assert canvas.shape == (5, 1568)
    img = canvas.reshape(5, 28, 56)
    first, second = labels // 10, labels % 10
    assert torch.equal(img[:, :, :28], x[first].reshape(5, 28, 28))
    assert torch.equal(img[:, :, 28:], x[second].reshape(5, 28, 28))
    with pytest.raises(ValueError, match="n_digits"):
        data.compose_canvas(x, y, n_digits=0)


def test_binarize_is_fixed_and_has_the_right_mean():
    x = torch.full((200, 784), 0.3)
    b = data.binarize(x, seed=1)
    assert torch.equal(b, data.binarize(x, seed=1))
    assert set(b.unique().tolist()) <= {0.0, 1.0}
    assert abs(float(b.mean()) - 0.3) < 0.01


def test_exclude_class_needs_labels_and_removes_the_class(tmp_path):
    from thesis_lib.ground.config import ModelSpec
    from thesis_lib.runtime.runs import train_or_load
    from thesis_lib.runtime.training import Loop

    spec = ModelSpec("fc_autoencoder", {"widths": [16, 4]})
    cfg = TrainConfig(epochs=1, batch_size=8, exclude_class=3)
    x = torch.rand(40, 16)
    with pytest.raises(ValueError, match="exclude_class needs the labels"):
        train_or_load(spec, cfg, x, loop=Loop(progress=False))
    seen = []
    y = torch.arange(40) % 5
    import thesis_lib.runtime.runs as runs

    orig = runs.fit

    def spy(model, objective, optimizer, config, train, *a, **k):
        seen.append(len(train[0]))
        return orig(model, objective, optimizer, config, train, *a, **k)

    runs.fit = spy
    try:
        train_or_load(spec, cfg, (x, y), loop=Loop(progress=False))
    finally:
        runs.fit = orig
    assert seen == [32]


def test_train_config_new_fields_validate():
    with pytest.raises(ValueError, match="binarize"):
        TrainConfig(binarize="yes")
    with pytest.raises(ValueError, match="exclude_class"):
        TrainConfig(exclude_class=-2)
