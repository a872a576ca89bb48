"""Likelihoods of the trained VAEs (thesis_lib.reproduction.likelihoods): the images of each split, the cache beside the
checkpoint, the estimates' shape, and the command line's refusals."""

from __future__ import annotations

import json

import pytest
import torch

from thesis_lib.mathematics import metrics
from thesis_lib.runtime import data
from thesis_lib.reproduction import experiments, likelihoods
from thesis_lib.ground.config import ChapterConfig


def _tensors(n_train: int = 2400, n_test: int = 400) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x, xt = torch.rand(n_train, 784, generator=g), torch.rand(n_test, 784, generator=g)
    return {"x_train": x, "y_train": torch.arange(n_train) % 10, "x_test": (xt > 0.5).float(),
            "y_test": torch.arange(n_test) % 10}


def test_cached_metric_recomputes_only_for_a_new_checkpoint(tmp_path):
    cfg = ChapterConfig.from_parameters(chapter="04", checkpoint_dir=tmp_path)
    calls = []
    ckpt = tmp_path / "ae_thesis.pt"
    ckpt.write_bytes(b"weights v1")
    f = lambda: calls.append(1) or 42.5  # noqa: E731
    assert likelihoods.cached_metric(cfg, "ae_thesis", "nll", f) == 42.5
    assert likelihoods.cached_metric(cfg, "ae_thesis", "nll", f) == 42.5
    assert len(calls) == 1
    stored = json.loads((tmp_path / "ae_thesis.metrics.json").read_text())
    assert stored["values"] == {"nll": 42.5}
    ckpt.write_bytes(b"weights v2")  # retrained
    likelihoods.cached_metric(cfg, "ae_thesis", "nll", f)
    assert len(calls) == 2


def test_a_value_cached_while_another_was_computed_is_kept(tmp_path):
    """Two processes estimating two splits of one model write the same cache: each adds its value to what
    the cache holds when it finishes, so neither loses the other's (here the second finishes inside the
    first's computation). A value cached for older weights is dropped all the same."""
    cfg = ChapterConfig.from_parameters(chapter="04", checkpoint_dir=tmp_path)
    (tmp_path / "ae_thesis.pt").write_bytes(b"weights v1")
    likelihoods.cached_metric(cfg, "ae_thesis", "old", lambda: 1.0)
    (tmp_path / "ae_thesis.pt").write_bytes(b"weights v2")

    def slow() -> float:
        assert likelihoods.cached_metric(cfg, "ae_thesis", "validation", lambda: 2.0) == 2.0
        return 3.0

    assert likelihoods.cached_metric(cfg, "ae_thesis", "test", slow) == 3.0
    stored = json.loads((tmp_path / "ae_thesis.metrics.json").read_text())
    assert stored["values"] == {"validation": 2.0, "test": 3.0}
    assert likelihoods.cached_metric(cfg, "ae_thesis", "validation", lambda: 0.0) == 2.0  # from the cache


def test_the_splits_are_the_held_out_the_fitted_and_the_test_images():
    t = _tensors()
    quick = ChapterConfig.from_parameters(chapter="05", profile="quick")
    config = experiments.get("vae_nll").config("quick")  # 2048 images, the last 256 held out
    val = likelihoods.split_images("vae_nll", quick, "validation", t)
    train = likelihoods.split_images("vae_nll", quick, "train", t)
    assert torch.equal(val, data.binarize(t["x_train"][2048 - config.validation:2048][:300], seed=1))
    assert torch.equal(train, data.binarize(t["x_train"][:300], seed=2))
    assert torch.equal(likelihoods.split_images("vae_nll", quick, "test", t), t["x_test"][:300])
    full = ChapterConfig.from_parameters(chapter="05")
    assert len(likelihoods.split_images("vae_nll", full, "validation", _tensors(12_000))) == 10_000
    with pytest.raises(ValueError, match="split must be 'test' or 'train' for vae_standard"):
        likelihoods.split_images("vae_standard", quick, "validation", t)
    with pytest.raises(ValueError, match="split must be one of"):
        likelihoods.split_images("vae_nll", quick, "training", t)


def test_nll_estimate_quick_profile_is_a_curve_in_k_below_the_elbo():
    t = _tensors()
    quick = ChapterConfig.from_parameters(chapter="05", profile="quick")
    out = likelihoods.nll_estimate("vae_standard", quick, "test", tensors=t)
    assert out["ks"] == [1, 10, 50] and out["images"] == 300 and len(out["per_image"]) == 300
    assert out["mean"][0] > out["mean"][1] > out["mean"][2]  # tighter with every k
    assert out["mean"][-1] == pytest.approx(sum(out["per_image"]) / 300, abs=1e-3)
    assert all(0 < se < m for se, m in zip(out["stderr"], out["mean"]))
    model = experiments.run("vae_standard", quick, tensors=t).model  # deterministically retrained
    nelbo = metrics.anomaly_scores(model, t["x_test"][:300], 10, torch.Generator().manual_seed(1)).mean().item()
    assert out["mean"][-1] < nelbo
    with pytest.raises(ValueError, match="name must be a VAE experiment; ae_thesis is a fc_autoencoder"):
        likelihoods.nll_estimate("ae_thesis", quick, "test", tensors=t)


def test_cli_refuses_non_vaes_and_unknown_splits(capsys):
    with pytest.raises(SystemExit):
        likelihoods._main(["ae_thesis"])
    assert "NAME must be one of the VAE experiments" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        likelihoods._main(["vae_nll", "--split", "training"])
    assert "invalid choice: 'training'" in capsys.readouterr().err


def test_the_pytorch_examples_runs_are_read_and_recorded(tmp_path, monkeypatch):
    from thesis_lib.publishing.reads import READS_LOG_ENV, log_reads

    log, runs = tmp_path / "reads.txt", tmp_path / "r.json"
    monkeypatch.setattr("thesis_lib.ground.files._READ_HOOKS", [])
    log_reads({READS_LOG_ENV: str(log)})
    with pytest.raises(FileNotFoundError, match="run benchmarks/pytorch_examples_vae.py first"):
        likelihoods.pytorch_examples_runs(runs)
    runs.write_text(json.dumps({"runs": [{"seed": 1, "epochs": [{"epoch": 1, "test_loss": 105.0}]}]}))
    assert likelihoods.pytorch_examples_runs(runs)["runs"][0]["seed"] == 1
    assert log.read_text().splitlines() == [str(runs.resolve())]
