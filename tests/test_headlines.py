"""The headline results of chapters 4 and 5 (thesis_lib.reproduction.headlines): seed 0 recomputed from the committed
checkpoints against the committed reproduction/runs/seeds.json, the names the chapters' tables over seeds show, and
the pieces the chapters call."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from thesis_lib.ground.config import ChapterConfig
from thesis_lib.ground.paths import default_checkpoint_dir
from thesis_lib.publishing import seeds
from thesis_lib.reproduction import experiments, headlines, tasks
from thesis_lib.runtime import data
from thesis_lib.runtime.checkpoints import load_checkpoint
from thesis_lib.runtime.models import build_model
from thesis_lib.runtime.training import History

ROOT = Path(__file__).resolve().parent.parent
COUNTS = {f"{name}_active_units" for name in headlines.NLL_NAMES}  # integers: equal, not close


def _committed_or_skip() -> None:
    cfg = ChapterConfig.from_parameters(chapter="05")
    if data.verify(cfg.data_dir) or data.verify(cfg.data_dir, "fashion_mnist"):
        pytest.skip("MNIST or Fashion-MNIST not fetched")
    folder = default_checkpoint_dir()
    missing = [n for n in headlines.EXPERIMENTS_READ if not (folder / f"{n}.pt").is_file()]
    # without its cache a likelihood takes ten minutes, and would be written beside the committed checkpoint
    missing += [f"{n} (likelihood cache)" for n in headlines.LIKELIHOODS_READ
                if "test" not in tasks.committed_likelihoods(n, folder).get("likelihoods", {})]
    if missing:
        pytest.skip(f"not committed here: {', '.join(missing)}")


@pytest.mark.data
def test_seed_0_is_reproduced_from_the_committed_checkpoints():
    """Every headline result, computed from the committed checkpoints (the parameters of the chapters' first
    cell: full profile, seed 0, the committed checkpoints), against the value seeds.json holds for seed 0,
    harvested from the chapters executed on an Intel Xeon. float32 kernels of another CPU differ at rounding
    level (measured on an AMD EPYC: 2.2e-7 relative at most, an AUC one rank pair apart); counts are equal."""
    _committed_or_skip()
    cfg = ChapterConfig.from_parameters(chapter="05", profile="full", seed=0)
    found = headlines.headlines(cfg)
    committed = seeds.load()
    assert list(found) == list(headlines.HEADLINE_NAMES)
    for name, value in found.items():
        if name in COUNTS:
            assert value == committed[name][0], name
        else:
            assert value == pytest.approx(committed[name][0], rel=1e-5, abs=1e-12), name


def test_the_committed_file_holds_every_headline_result_for_three_seeds():
    over = seeds.load()
    assert list(over) == list(headlines.HEADLINE_NAMES) and len(over) == 46
    assert all(sorted(by_seed) == [0, 1, 2] for by_seed in over.values())
    assert all(v == int(v) and 0 <= v <= 50 for n in COUNTS for v in over[n].values())


def test_seed_0_of_the_committed_file_came_from_the_committed_checkpoints():
    """seeds.json records the SHA-256 of the weights behind each seed's results: seed 0's are the committed
    checkpoints', so the tables over seeds and the chapters describe the same models."""
    raw = json.loads(seeds.SEEDS_FILE.read_text())
    assert raw["profile"] == "full" and "tests/test_headlines.py" in raw["note"]
    for name in headlines.EXPERIMENTS_READ:
        path = default_checkpoint_dir() / f"{name}.pt"
        if not path.is_file():
            pytest.skip(f"no committed checkpoint {path}")
        model = build_model(experiments.get(name).spec)
        model.load_state_dict(load_checkpoint(path)["model"])
        assert raw["weights_sha256"][name]["0"] == tasks.weights_sha256(model), name


def _table_rows(stem: str) -> list[str]:
    """The names in the rows that chapter ``stem`` passes to ``seeds.table``: its table cell executed with a
    ``seeds`` that records them (and the chapter's own ``nll_names``)."""
    text = (ROOT / "notebooks" / f"{stem}.md").read_text(encoding="utf-8")
    cells = re.findall(r"```\{code-cell\} ipython3\n(.*?)```", text, flags=re.S)
    (cell,) = ["\n".join(ln for ln in c.splitlines() if not ln.startswith(":")) for c in cells if "seeds.table(" in c]
    names: list[str] = []

    class Recorder:
        load = staticmethod(dict)

        @staticmethod
        def table(over, rows, **_):
            names.extend(name for _, name in rows)
            return ""

    namespace = {"seeds": Recorder, "experiments": experiments, "checkpoint_dir": None, "print": lambda *a: None}
    for line in re.findall(r"^nll_names = .*$", text, flags=re.M):
        exec(line, namespace)
    exec(cell, namespace)
    return names


def test_every_row_of_the_chapters_tables_over_seeds_is_a_headline_result_and_every_one_is_shown():
    shown = {stem: _table_rows(stem) for stem in ("04_autoencoders", "05_variational_autoencoders")}
    assert all(len(names) > 10 for names in shown.values())
    for stem, names in shown.items():
        assert not set(names) - set(headlines.HEADLINE_NAMES), stem
    assert set(shown["04_autoencoders"] + shown["05_variational_autoencoders"]) == set(headlines.HEADLINE_NAMES)


def test_the_trend_is_a_least_squares_line_in_log_epochs_over_the_second_half():
    epochs = np.arange(1, 101)
    curve = 30 - 2 * np.log10(epochs)
    test = [v if e % 10 == 0 else math.nan for e, v in zip(epochs, curve + 1)]  # measured every tenth epoch
    fits = headlines.trend_fits(History({"train_loss": list(curve), "test_loss": test}))
    assert list(fits) == ["train_loss", "test_loss"]
    assert fits["train_loss"][0] == pytest.approx(-2) and fits["train_loss"][1] == pytest.approx(30 - 2 * 3)
    assert fits["test_loss"][0] == pytest.approx(-2) and fits["test_loss"][1] == pytest.approx(31 - 2 * 3)


def test_the_images_that_are_not_digits_and_their_aucs():
    cfg = ChapterConfig.from_parameters(chapter="05", seed=3, device="cpu")
    x = torch.rand(6, 784, generator=torch.Generator().manual_seed(0))
    sets = headlines.out_of_distribution(x, cfg, fashion=torch.zeros(6, 784))
    assert list(sets) == list(headlines.OOD_LABELS)
    assert torch.equal(sets["inverted"], 1 - x) and 0 <= sets["noisy"].min() and sets["noisy"].max() <= 1
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(3 + headlines.NOISY_OFFSET))
    assert torch.equal(sets["noisy"], (x + headlines.NOISE_SD * noise).clamp(0, 1))  # the chapter's gen(13)
    assert torch.equal(sets["rotated 90°"].reshape(6, 28, 28)[:, 0, :], x.reshape(6, 28, 28)[:, :, -1])
    assert list(headlines.out_of_distribution(x, cfg)) == list(headlines.OOD_LABELS[1:])  # no Fashion-MNIST
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    scores = {0: {"test": torch.tensor([5.0, 6.0, 1.0, 2.0, 3.0, 4.0]), "noisy": torch.tensor([9.0, 0.0])}}
    assert headlines.anomaly_aucs(scores, y) == {0: {"held-out digit 0": 1.0, "noisy": 0.5}}
    assert [headlines.auc_name(9, label) for label in ("held-out digit 9", *headlines.OOD_LABELS)] == [
        "auc_without_9_held_out", "auc_without_9_fashion_mnist", "auc_without_9_inverted", "auc_without_9_noisy",
        "auc_without_9_rotated_90"]
