"""benchmarks/pytorch_examples_vae.py, the recipe behind chapter 5's anchor: its loss is the negative ELBO
(checked against torch.distributions), its model has the script's shapes, and it refuses bad arguments."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from thesis_lib.runtime import data
from thesis_lib.ground.config import ChapterConfig

_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "pytorch_examples_vae.py"
_spec = importlib.util.spec_from_file_location("pytorch_examples_vae", _PATH)
recipe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(recipe)


def test_the_loss_is_the_summed_negative_elbo_against_torch_distributions():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 784, generator=g)
    recon = torch.rand(5, 784, generator=g) * 0.98 + 0.01
    mu, logvar = torch.randn(5, 20, generator=g), torch.randn(5, 20, generator=g) * 0.3
    want = (-(x * recon.log() + (1 - x) * (1 - recon).log()).sum()  # Bernoulli cross-entropy on grey levels
            + kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum())
    torch.testing.assert_close(recipe.loss_function(recon, x, mu, logvar), want)
    xb = (x > 0.5).float()  # on binary images the first term is the Bernoulli log-likelihood
    torch.testing.assert_close(recipe.loss_function(recon, xb, mu, torch.zeros_like(mu)) -
                               0.5 * mu.pow(2).sum(), -Bernoulli(probs=recon).log_prob(xb).sum())


def test_the_model_has_the_scripts_layers_and_samples_in_eval_mode_too():
    model = recipe.ExamplesVAE()
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters() if n.endswith("weight")}
    assert shapes == {"fc1.weight": (400, 784), "fc21.weight": (20, 400), "fc22.weight": (20, 400),
                      "fc3.weight": (400, 20), "fc4.weight": (784, 400)}
    model.eval()
    x = torch.rand(3, 1, 28, 28)
    assert not torch.equal(model(x)[0], model(x)[0])  # the test loss uses a sampled z, as the script does


def test_bad_arguments_are_refused(capsys):
    with pytest.raises(SystemExit):
        recipe.main(["--epochs", "0"])
    assert "--epochs and --threads must be positive" in capsys.readouterr().err


def test_one_short_run_writes_its_losses(tmp_path):
    root = ChapterConfig.from_parameters(chapter="05").data_dir
    if data.verify(root):
        pytest.skip("MNIST not fetched")
    out = tmp_path / "r.json"
    # its own process: the command is an entry point and sets its process's threads
    subprocess.run([sys.executable, str(_PATH), "--seeds", "1", "--epochs", "1", "--out", str(out), "--data-dir",
                    str(root)], check=True, capture_output=True)
    body = json.loads(out.read_text())
    (run,) = body["runs"]
    assert run["seed"] == 1 and [e["epoch"] for e in run["epochs"]] == [1]
    assert 100 < run["epochs"][0]["test_loss"] < 140 < run["epochs"][0]["train_loss"] + 30
    assert body["threads"] == 1 and body["torch"] == torch.__version__
