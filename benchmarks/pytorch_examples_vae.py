"""The VAE recipe of pytorch/examples (``vae/main.py``), run as that script runs it, for chapter 5's anchor.

pytorch/examples publishes no number for its VAE; the figure people quote is whatever the script prints.
So this script runs the recipe itself, independently of ``thesis_lib``: its own model (784-400-20,
ReLU, sigmoid output), torchvision's MNIST through ``ToTensor`` and a shuffling ``DataLoader`` of
batch 128, Adam with step 1e-3, 10 epochs, and its test loss, the summed binary cross-entropy plus KL
divergence with one sample of ``z`` per image, divided by the 10,000 test images. It does this for
several seeds (the script's default is 1) and writes every epoch's train and test loss to
``benchmarks/pytorch_examples_vae.json``, which chapter 5 reads::

    .venv/bin/python benchmarks/pytorch_examples_vae.py --seeds 1 2 3      # about a minute per seed
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from thesis_lib.ground.files import atomic_write_text
from thesis_lib.ground.paths import default_data_dir
from thesis_lib.runtime.process import tune_process
from thesis_lib.runtime.provenance import cpu_model

OUT = Path(__file__).resolve().parent / "pytorch_examples_vae.json"
EPOCHS, BATCH, LR = 10, 128, 1e-3


class ExamplesVAE(nn.Module):
    """pytorch/examples' ``VAE``: fc1 784-400, fc21/fc22 400-20, fc3 20-400, fc4 400-784."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h1 = F.relu(self.fc1(x.view(-1, 784)))
        mu, logvar = self.fc21(h1), self.fc22(h1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)  # sampled in training and in testing alike
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar


def loss_function(recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    bce = F.binary_cross_entropy(recon, x.view(-1, 784), reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


def run_recipe(seed: int, root: Path, epochs: int = EPOCHS) -> dict:
    """One run of the script: per epoch, the mean training loss and the test loss per image (nats)."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    torch.manual_seed(seed)
    train = DataLoader(datasets.MNIST(str(root), train=True, download=False, transform=transforms.ToTensor()),
                       batch_size=BATCH, shuffle=True)
    test = DataLoader(datasets.MNIST(str(root), train=False, download=False, transform=transforms.ToTensor()),
                      batch_size=BATCH, shuffle=False)
    model = ExamplesVAE()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    rows, t0 = [], time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        total = 0.0
        for x, _ in train:
            opt.zero_grad()
            recon, mu, logvar = model(x)
            loss = loss_function(recon, x, mu, logvar)
            loss.backward()
            total += loss.item()
            opt.step()
        model.eval()
        test_loss = 0.0
        with torch.no_grad():
            for x, _ in test:
                recon, mu, logvar = model(x)
                test_loss += loss_function(recon, x, mu, logvar).item()
        rows.append({"epoch": epoch, "train_loss": total / len(train.dataset),
                     "test_loss": test_loss / len(test.dataset)})
        print(f"seed {seed} epoch {epoch}: train {rows[-1]['train_loss']:.4f}, test {rows[-1]['test_loss']:.4f}",
              flush=True)
    return {"seed": seed, "epochs": rows, "wall_seconds": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-dir", default=None, help="default: $THESIS_DATA_DIR or the cache")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.threads < 1 or any(s < 0 for s in args.seeds):
        parser.error(f"--epochs and --threads must be positive and --seeds non-negative; got --epochs {args.epochs}, "
                     f"--threads {args.threads}, --seeds {args.seeds}")
    root = Path(args.data_dir).expanduser() if args.data_dir else default_data_dir()
    tune_process(args.threads)
    runs = [run_recipe(seed, root, args.epochs) for seed in args.seeds]
    body = {"recipe": "pytorch/examples vae/main.py: 784-400-20, batch 128, Adam 1e-3, test loss per image",
            "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"), "torch": torch.__version__,
            "cpu": cpu_model(), "threads": args.threads, "runs": runs}
    atomic_write_text(args.out, json.dumps(body, indent=1) + "\n")
    final = [r["epochs"][-1]["test_loss"] for r in runs]
    print(f"test loss after {args.epochs} epochs: " + ", ".join(f"{v:.2f}" for v in final) + f"; in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
