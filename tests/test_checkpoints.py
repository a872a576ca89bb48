"""Checkpoints: atomic, weights-only, refused on mismatch, and resumable on the same trajectory."""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch

from thesis_lib.runtime import checkpoints
from thesis_lib.runtime.checkpoints import CheckpointMismatchError, check_matches, load_checkpoint, save_checkpoint
from thesis_lib.runtime.runs import Store, train_or_load
from thesis_lib.runtime.training import Loop
from thesis_lib.ground.config import ModelSpec, TrainConfig

AE = ModelSpec("fc_autoencoder", {"widths": [64, 16, 4]})
VAE = ModelSpec("vae", {"input_dim": 64, "hidden": [16], "latent_dim": 2})


def _x(n=96, d=64, seed=0):
    return torch.rand(n, d, generator=torch.Generator().manual_seed(seed))


def _flat(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_train_save_load_round_trip(tmp_path):
    path = tmp_path / "ae.pt"
    cfg = TrainConfig(epochs=3, batch_size=32, lr=1e-3)
    first = train_or_load(AE, cfg, _x(), _x(32, seed=1), store=Store(path), loop=Loop(progress=False))
    assert first.trained and path.is_file()
    ckpt = load_checkpoint(path)
    assert ckpt["epoch"] == 3 and ckpt["train_config"] == cfg.to_dict() and ckpt["model_spec"] == AE.to_dict()
    assert ckpt["provenance"]["device"] == "cpu" and "wall_seconds" in ckpt["provenance"]
    again = train_or_load(AE, cfg, _x(), store=Store(path), loop=Loop(progress=False))
    assert not again.trained
    assert torch.equal(_flat(first.model), _flat(again.model))
    assert again.history.metrics == first.history.metrics


@pytest.mark.parametrize("spec", [AE, VAE], ids=["autoencoder", "vae"])
def test_resumed_run_equals_uninterrupted_run(tmp_path, spec):
    loss = "elbo" if spec.kind == "vae" else "mse"  # the VAE also draws noise: its RNG state must be restored
    cfg4 = TrainConfig(epochs=4, batch_size=32, lr=1e-3, loss=loss, seed=3)
    straight = train_or_load(spec, cfg4, _x(), loop=Loop(progress=False))
    path = tmp_path / "run.pt"
    train_or_load(spec, cfg4.replace(epochs=2), _x(), store=Store(path), loop=Loop(progress=False))
    resumed = train_or_load(spec, cfg4, _x(), store=Store(path), loop=Loop(progress=False))
    assert resumed.trained
    assert torch.equal(_flat(straight.model), _flat(resumed.model))
    assert resumed.history["train_loss"] == straight.history["train_loss"]


def test_mismatch_is_refused_naming_the_field(tmp_path):
    path = tmp_path / "ae.pt"
    cfg = TrainConfig(epochs=2, batch_size=32)
    train_or_load(AE, cfg, _x(), store=Store(path), loop=Loop(progress=False))
    with pytest.raises(CheckpointMismatchError, match="lr"):
        train_or_load(AE, cfg.replace(lr=1e-2), _x(), store=Store(path), loop=Loop(progress=False))
    with pytest.raises(CheckpointMismatchError, match="model_spec"):
        train_or_load(ModelSpec("fc_autoencoder", {"widths": [64, 16, 5]}), cfg, _x(), store=Store(path),
                      loop=Loop(progress=False))
    with pytest.raises(CheckpointMismatchError, match="epochs"):
        train_or_load(AE, cfg.replace(epochs=1), _x(), store=Store(path), loop=Loop(progress=False))
    # retrain=True overwrites it instead
    res = train_or_load(AE, cfg.replace(lr=1e-2), _x(), store=Store(path, retrain=True), loop=Loop(progress=False))
    assert res.trained and load_checkpoint(path)["train_config"]["lr"] == 1e-2


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    cfg = TrainConfig(epochs=1, batch_size=32)
    train_or_load(AE, cfg, _x(), store=Store(path), loop=Loop(progress=False))
    before = path.read_bytes()

    def broken_save(obj, fh):
        fh.write(b"half a checkpoint")
        raise KeyboardInterrupt  # the process is killed mid-write

    monkeypatch.setattr(checkpoints.torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, load_checkpoint(path))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_loading_uses_weights_only(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo owned",))

    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "payload": Evil()}, path)
    with pytest.raises(Exception, match="(?i)weights_only|unsupported|global"):
        load_checkpoint(path)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="not a thesis_lib checkpoint"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def test_check_matches_accepts_equal_config():
    cfg = TrainConfig(epochs=5)
    ckpt = {"model_spec": AE.to_dict(), "train_config": cfg.to_dict(), "epoch": 5}
    check_matches(ckpt, AE, cfg)  # no error
    check_matches({**ckpt, "epoch": 3, "train_config": cfg.replace(epochs=3).to_dict()}, AE, cfg)  # resumable


def test_lr_decay_follows_the_epoch_and_survives_resuming(tmp_path, monkeypatch):
    import thesis_lib.runtime.runs as runs

    seen = []
    orig = runs.fit

    def spy(model, objective, optimizer, *a, **k):
        hook = k["loop"].on_epoch_end

        def record(epoch, hist):
            hook(epoch, hist)  # fit has stepped the schedule: the step size of epoch + 1
            seen.append((epoch, optimizer.param_groups[0]["lr"]))

        k["loop"] = dataclasses.replace(k["loop"], on_epoch_end=record)
        seen.append(("start", optimizer.param_groups[0]["lr"]))
        return orig(model, objective, optimizer, *a, **k)

    monkeypatch.setattr(runs, "fit", spy)
    cfg = TrainConfig(epochs=4, batch_size=32, lr=1e-2, lr_decay=0.5)
    straight = train_or_load(AE, cfg, _x(), loop=Loop(progress=False))
    # epoch e trains with 1e-2 * 0.5**(e-1): the lr read at the end of epoch e is the one set for e + 1
    assert seen == [("start", 1e-2), (1, 5e-3), (2, 2.5e-3), (3, 1.25e-3), (4, 6.25e-4)]
    seen.clear()
    path = tmp_path / "d.pt"
    train_or_load(AE, cfg.replace(epochs=2), _x(), store=Store(path), loop=Loop(progress=False))
    resumed = train_or_load(AE, cfg, _x(), store=Store(path), loop=Loop(progress=False))
    assert seen[-3] == ("start", 2.5e-3)
    assert torch.equal(_flat(straight.model), _flat(resumed.model))
    with pytest.raises(ValueError, match="lr_decay"):
        TrainConfig(lr_decay=0.0)


def test_checkpoint_without_a_newer_field_reads_as_its_default():
    cfg = TrainConfig(epochs=5)
    old = {k: v for k, v in cfg.to_dict().items() if k != "lr_decay"}  # written before lr_decay existed
    check_matches({"model_spec": AE.to_dict(), "train_config": old, "epoch": 5}, AE, cfg)
    with pytest.raises(CheckpointMismatchError, match="lr_decay"):
        check_matches({"model_spec": AE.to_dict(), "train_config": old, "epoch": 5}, AE, cfg.replace(lr_decay=0.9))


# ----------------------------------------------------------------------------------- warm starts
def test_warm_start_begins_at_the_parent_weights_and_records_it(tmp_path):
    parent_path = tmp_path / "parent.pt"
    cfg = TrainConfig(epochs=2, batch_size=32, lr=1e-3)
    parent = train_or_load(AE, cfg, _x(), store=Store(parent_path), loop=Loop(progress=False))
    # zero epochs of change is impossible (epochs >= 1), so compare against training the parent's weights by hand
    child_path = tmp_path / "child.pt"
    child = train_or_load(AE, cfg.replace(epochs=1, lr=1e-9), _x(), store=Store(child_path), loop=Loop(progress=False),
                          init=parent_path)
    # with a step size of 1e-9 the child's weights stay at the parent's (and far from a fresh model's)
    assert torch.allclose(_flat(child.model), _flat(parent.model), atol=1e-6)
    fresh = train_or_load(AE, cfg.replace(epochs=1, lr=1e-9), _x(), loop=Loop(progress=False))
    assert (_flat(fresh.model) - _flat(parent.model)).abs().max() > 1e-3
    ckpt = load_checkpoint(child_path)
    import hashlib

    assert ckpt["init_from"]["sha256"] == hashlib.sha256(parent_path.read_bytes()).hexdigest()
    assert ckpt["init_from"]["epoch"] == 2 and ckpt["init_from"]["file"] == "parent.pt"
    # loading it again with the same parent works and does not train
    again = train_or_load(AE, cfg.replace(epochs=1, lr=1e-9), _x(), store=Store(child_path), loop=Loop(progress=False),
                          init=parent_path)
    assert not again.trained


def test_warm_start_is_refused_when_the_parent_changed_or_is_missing(tmp_path):
    parent_path = tmp_path / "parent.pt"
    cfg = TrainConfig(epochs=1, batch_size=32, lr=1e-3)
    train_or_load(AE, cfg, _x(), store=Store(parent_path), loop=Loop(progress=False))
    child_path = tmp_path / "child.pt"
    train_or_load(AE, cfg, _x(), store=Store(child_path), loop=Loop(progress=False), init=parent_path)
    # a new parent
    train_or_load(AE, cfg.replace(seed=5), _x(), store=Store(parent_path, retrain=True), loop=Loop(progress=False))
    with pytest.raises(CheckpointMismatchError, match="was trained from the weights"):
        train_or_load(AE, cfg, _x(), store=Store(child_path), loop=Loop(progress=False), init=parent_path)
    with pytest.raises(CheckpointMismatchError, match="was trained from the weights"):
        train_or_load(AE, cfg, _x(), store=Store(child_path), loop=Loop(progress=False))  # asked without a warm start
    with pytest.raises(FileNotFoundError, match="init must be an existing checkpoint"):
        train_or_load(AE, cfg, _x(), store=Store(tmp_path / "other.pt"), loop=Loop(progress=False),
                      init=tmp_path / "nope.pt")
    with pytest.raises(CheckpointMismatchError, match="another architecture"):
        train_or_load(ModelSpec("fc_autoencoder", {"widths": [64, 8, 4]}), cfg, _x(),
                      loop=Loop(progress=False), init=parent_path)
    assert not (tmp_path / "other.pt").exists()  # nothing half-made
