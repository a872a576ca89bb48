r"""The training loop on a GPU: per-epoch times against a DataLoader loop, and Algorithm 2 end to end.

    python benchmarks/gpu.py --output RESULTS_gpu.md                       # on a machine with a GPU
    python benchmarks/gpu.py --device cpu --epochs 1 --algorithm2-epochs 2 --output -   # a smoke test

In one process, on one device, it times

- for the thesis's autoencoder (batch 512, Adam 3e-4, MSE) and the standard VAE (batch 128, Adam 1e-3,
  ELBO): seconds per epoch of :func:`thesis_lib.runtime.training.fit` (the training set resident on the device,
  each step replayed from a CUDA graph) and of the loop a user would write (``torchvision``'s MNIST with
  ``ToTensor``, a shuffling ``DataLoader``, each batch copied to the device, ``torch.optim.Adam``), the
  median over ``--epochs`` epochs after a warm-up epoch, and their ratio;
- Algorithm 2 end to end: the ``ae_thesis`` experiment's recipe through :func:`thesis_lib.runtime.runs.train_or_load`
  (the path the chapters use: data on the device, evaluation on the test set every tenth epoch, a
  checkpoint every 50 epochs) for ``--algorithm2-epochs`` epochs (1000 by default), with its wall time and
  final losses beside those of the committed CPU checkpoint;
- with ``--ten-thousand DIR``, also the ``ae_thesis_10000`` experiment (10,000 epochs), its checkpoint
  written to ``DIR`` for the repository.

It writes a Markdown table (``--output``; ``-`` prints it only). TF32 stays off
(:func:`thesis_lib.runtime.process.tune_process`), so the GPU computes in full fp32 as the CPU does.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the benchmark's own modules beside it

from pytorch_examples_vae import loss_function  # noqa: E402  (the recipe's loss, defined once)

from thesis_lib.runtime import data  # noqa: E402
from thesis_lib.reproduction import experiments  # noqa: E402
from thesis_lib.runtime.checkpoints import load_checkpoint  # noqa: E402
from thesis_lib.ground.config import ModelSpec, TrainConfig  # noqa: E402
from thesis_lib.ground.files import atomic_write_text  # noqa: E402
from thesis_lib.runtime.models import build_model  # noqa: E402
from thesis_lib.ground.paths import default_checkpoint_dir, default_data_dir  # noqa: E402
from thesis_lib.runtime.process import tune_process  # noqa: E402
from thesis_lib.runtime.runs import Store, train_or_load  # noqa: E402
from thesis_lib.runtime.training import Loop, fit, make_objective, make_optimizer  # noqa: E402

CASES = {  # name -> (model, batch size, learning rate, loss)
    "thesis AE 784-128-64-12-3": (ModelSpec("fc_autoencoder", {"widths": [784, 128, 64, 12, 3]}), 512, 3e-4, "mse"),
    "VAE 784-400-20": (ModelSpec("vae", {"input_dim": 784, "hidden": [400], "latent_dim": 20}), 128, 1e-3, "elbo"),
}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def library_seconds(case: str, x: torch.Tensor, epochs: int) -> list[float]:
    """Seconds of each epoch of ``fit`` (its own timing: the epoch's steps up to the one read-back)."""
    spec, batch, lr, loss = CASES[case]
    torch.manual_seed(0)
    model = build_model(spec).to(x.device)
    opt = make_optimizer("adam", model.parameters(), lr)
    history = fit(model, make_objective(loss), opt, TrainConfig(epochs=epochs + 1, batch_size=batch), x,
                  loop=Loop(progress=False))
    return history["seconds"][1:]  # the first epoch warms up (and follows the graphs' capture)


def reference_seconds(case: str, root: Path, device: torch.device, epochs: int, images: int) -> list[float]:
    """Seconds of each epoch of the DataLoader loop over the first ``images`` training images, each batch
    copied to ``device``."""
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    spec, batch, lr, loss = CASES[case]
    torch.manual_seed(0)
    model = build_model(spec).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    mnist = datasets.MNIST(str(root), train=True, download=False, transform=transforms.ToTensor())
    loader = DataLoader(Subset(mnist, range(images)) if images < len(mnist) else mnist, batch_size=batch,
                        shuffle=True)
    times = []
    for _ in range(epochs + 1):
        model.train()
        synchronize(device)
        t0 = time.perf_counter()
        for x, _ in loader:
            x = x.to(device).view(-1, 784)
            opt.zero_grad()
            if loss == "elbo":  # pytorch/examples vae/main.py's loss_function
                recon, mu, logvar = model(x)
                value = loss_function(recon, x, mu, logvar)
            else:
                value = F.mse_loss(model(x), x)
            value.backward()
            opt.step()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return times[1:]


def algorithm2(name: str, epochs: int, tensors: dict, device: torch.device, folder: Path) -> dict:
    """Train experiment ``name``'s recipe for ``epochs`` epochs through train_or_load; wall time and losses."""
    exp = experiments.get(name)
    config = exp.full.replace(epochs=epochs)
    synchronize(device)
    t0 = time.perf_counter()
    result = train_or_load(exp.spec, config, (tensors["x_train"], tensors["y_train"]), tensors["x_test"],
                           store=Store(folder / f"{name}.pt", retrain=True, every=50, include_optimizer=False),
                           device=str(device), loop=Loop(progress=False, eval_every=max(1, exp.full.epochs // 100)))
    synchronize(device)
    return {"name": name, "epochs": epochs, "seconds": time.perf_counter() - t0,
            "train_loss": result.history.last("train_loss"), "test_loss": result.history.last("test_loss")}


def committed_losses(name: str) -> tuple[float, float]:
    path = default_checkpoint_dir() / f"{name}.pt"
    if not path.is_file():
        return math.nan, math.nan
    final = load_checkpoint(path).get("provenance", {}).get("final", {})
    return final.get("train_loss", math.nan), final.get("test_loss", math.nan)


def report(device: torch.device, rows: list[dict], runs: list[dict], epochs: int, images: int) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    lines = [f"Measured {time.strftime('%Y-%m-%d')} on {name} ({device.type}), torch {torch.__version__}, Python "
             f"{platform.python_version()}; median of {epochs} epochs of {images:,} images after one warm-up epoch; "
             "TF32 off. `thesis_lib`: `fit` with the training set on the device and each step replayed from a "
             "CUDA graph; `DataLoader`: torchvision's MNIST with `ToTensor`, a shuffling `DataLoader`, each "
             "batch copied to the device, `torch.optim.Adam`.", "",
             "| model | loop | s / epoch | images / s | speed-up over the DataLoader loop |",
             "| --- | --- | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['loop']} | {r['sec']:.4f} | {images / r['sec']:,.0f} | "
                     f"{r['speedup']:.1f}x |")
    lines += ["", "Algorithm 2 end to end (`train_or_load`: evaluation on the 10,000 test images every tenth "
                  "epoch of the 1000-epoch recipe, a checkpoint every 50 epochs):", "",
              "| experiment | epochs | wall time | final train loss | final test loss | committed CPU run: "
              "train, test |",
              "| --- | ---: | ---: | ---: | ---: | --- |"]
    for r in runs:
        train, test = committed_losses(r["name"]) if r["epochs"] == experiments.get(r["name"]).full.epochs \
            else (math.nan, math.nan)
        lines.append(f"| {r['name']} | {r['epochs']} | {r['seconds']:.1f} s | {r['train_loss']:.3f} | "
                     f"{r['test_loss']:.3f} | {train:.3f}, {test:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per loop, after a warm-up (default 5)")
    parser.add_argument("--algorithm2-epochs", type=int, default=1000, help="default 1000 (Algorithm 2's code)")
    parser.add_argument("--ten-thousand", type=Path, default=None, metavar="DIR",
                        help="also train ae_thesis_10000 and keep its checkpoint in DIR")
    parser.add_argument("--images", type=int, default=60_000, help="training images per epoch (default: all)")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--output", default=str(HERE / "RESULTS_gpu.md"), help="the Markdown table ('-': print only)")
    args = parser.parse_args(argv)
    for flag, value in (("--epochs", args.epochs), ("--algorithm2-epochs", args.algorithm2_epochs),
                        ("--images", args.images)):
        if value < 1:
            parser.error(f"{flag} must be a positive integer; got {value}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible to torch here (--device cpu runs the smoke test)")
    tune_process()
    device = torch.device(args.device)
    root = args.data_dir or default_data_dir()
    x_train, y_train = data.load("mnist", "train", root, limit=args.images, device=device)
    x_test, y_test = data.load("mnist", "test", root, device=device)
    tensors = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    rows = []
    for case in CASES:
        lib = statistics.median(library_seconds(case, x_train, args.epochs))
        ref = statistics.median(reference_seconds(case, root, device, args.epochs, len(x_train)))
        rows += [{"model": case, "loop": "DataLoader", "sec": ref, "speedup": 1.0},
                 {"model": case, "loop": "thesis_lib", "sec": lib, "speedup": ref / lib}]
        print(f"{case}: thesis_lib {lib:.4f} s/epoch, DataLoader {ref:.4f} s/epoch, {ref / lib:.1f}x", flush=True)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        runs.append(algorithm2("ae_thesis", args.algorithm2_epochs, tensors, device, Path(tmp)))
        print(f"Algorithm 2, {args.algorithm2_epochs} epochs: {runs[-1]['seconds']:.1f} s", flush=True)
    if args.ten_thousand is not None:
        args.ten_thousand.mkdir(parents=True, exist_ok=True)
        runs.append(algorithm2("ae_thesis_10000", 10_000, tensors, device, args.ten_thousand))
        print(f"Algorithm 2, 10,000 epochs: {runs[-1]['seconds']:.1f} s", flush=True)
    text = report(device, rows, runs, args.epochs, len(x_train))
    print(text)
    if args.output != "-":
        atomic_write_text(Path(args.output), text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
